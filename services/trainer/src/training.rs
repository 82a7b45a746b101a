//! One churn training run: split, normalise, fit with Adam on binary cross-entropy, evaluate on
//! the held-out part, export.
//!
//! The split is rule-based (an account goes to the test part when a hash of its id is 0 mod 5),
//! so the same account always lands on the same side across runs and retrains, and Python
//! baselines can reproduce it.

use std::collections::BTreeMap;

use burn::module::AutodiffModule;
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::Backend;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::cast::ToElement;
use burn::tensor::{Int, Tensor, TensorData};
use serde_json::json;
use sextant_contracts::ModelVersion;
use sextant_contracts::api::{ModelMetrics, TrainingSet};
use sextant_models::ChurnArtifact;
use sextant_models::artifact::{fit_normalisation, standardise};
use sextant_models::metrics::{accuracy, log_loss, roc_auc, roc_curve};

use crate::model::ChurnMlp;

/// Hyper-parameters of a run.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: u32,
    pub hidden: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            hidden: 8,
            learning_rate: 0.01,
            seed: 42,
        }
    }
}

/// Why a run could not produce a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// Too few rows, or a class missing from one side of the split.
    #[error("insufficient data: {0}")]
    InsufficientData(String),
}

/// A trained model with its evaluation.
#[derive(Debug, Clone)]
pub struct Trained {
    pub artifact: ChurnArtifact,
    pub metrics: ModelMetrics,
    pub config: BTreeMap<String, serde_json::Value>,
    /// ROC curve of the held-out part.
    pub roc: Vec<(f64, f64)>,
    /// Training loss after each epoch.
    pub losses: Vec<f64>,
}

/// FNV-1a, 64-bit: a stable hash for the split (std's hasher is randomly seeded).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether an account belongs to the held-out part.
pub fn is_test(account_id: &str) -> bool {
    fnv1a(account_id).is_multiple_of(5)
}

fn matrix<B: Backend>(rows: &[Vec<f32>], width: usize, device: &B::Device) -> Tensor<B, 2> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), width]), device)
}

/// Trains on `set` with backend `B`, reporting `(epoch, loss)` after each epoch.
pub fn train<B: AutodiffBackend>(
    set: &TrainingSet,
    config: &TrainConfig,
    version: ModelVersion,
    device: &B::Device,
    mut progress: impl FnMut(u32, f64),
) -> Result<Trained, TrainError> {
    let width = set.header.feature_names.len();
    let (train_rows, test_rows): (Vec<_>, Vec<_>) = set
        .rows
        .iter()
        .partition(|r| !is_test(r.account_id.as_str()));
    let positives =
        |rows: &[&sextant_contracts::api::TrainingRow]| rows.iter().filter(|r| r.churned).count();
    if train_rows.len() < 20 || test_rows.len() < 5 {
        return Err(TrainError::InsufficientData(format!(
            "{} training and {} test rows; need at least 20 and 5",
            train_rows.len(),
            test_rows.len()
        )));
    }
    for (name, rows) in [("training", &train_rows), ("test", &test_rows)] {
        let p = positives(rows);
        if p == 0 || p == rows.len() {
            return Err(TrainError::InsufficientData(format!(
                "the {name} part has only one class"
            )));
        }
    }

    B::seed(device, config.seed);
    let raw_train: Vec<Vec<f64>> = train_rows.iter().map(|r| r.features.clone()).collect();
    let (means, stds) = fit_normalisation(&raw_train, width);
    let x_train: Vec<Vec<f32>> = raw_train
        .iter()
        .map(|f| standardise(f, &means, &stds).unwrap_or_default())
        .collect();
    let y_train: Vec<i64> = train_rows.iter().map(|r| i64::from(r.churned)).collect();

    let x = matrix::<B>(&x_train, width, device);
    let y: Tensor<B, 2, Int> =
        Tensor::from_data(TensorData::new(y_train.clone(), [y_train.len(), 1]), device);
    let loss_fn = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(device);
    let mut model = ChurnMlp::<B>::new(width, config.hidden, device);
    let mut optim = AdamConfig::new().init();
    let mut losses = Vec::with_capacity(config.epochs as usize);
    for epoch in 1..=config.epochs {
        let logits = model.forward(x.clone());
        let loss = loss_fn.forward(logits, y.clone());
        let value = f64::from(loss.clone().into_scalar().to_f32());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(config.learning_rate, model, grads);
        losses.push(value);
        progress(epoch, value);
    }

    let valid = model.valid();
    let artifact = valid.to_artifact(version, set.header.feature_names.clone(), means, stds);
    let scores: Vec<f64> = test_rows
        .iter()
        .map(|r| artifact.predict(&r.features).unwrap_or(0.5))
        .collect();
    let labels: Vec<bool> = test_rows.iter().map(|r| r.churned).collect();
    let auc = roc_auc(&scores, &labels).unwrap_or(0.5);
    let metrics = ModelMetrics {
        auc,
        accuracy: accuracy(&scores, &labels, 0.5),
        log_loss: log_loss(&scores, &labels),
        base_rate: labels.iter().filter(|l| **l).count() as f64 / labels.len() as f64,
        n_train: train_rows.len() as u64,
        n_test: test_rows.len() as u64,
    };
    let config_json = BTreeMap::from([
        ("model".to_owned(), json!("mlp")),
        ("hidden".to_owned(), json!(config.hidden)),
        ("epochs".to_owned(), json!(config.epochs)),
        ("learning_rate".to_owned(), json!(config.learning_rate)),
        ("optimizer".to_owned(), json!("adam")),
        ("seed".to_owned(), json!(config.seed)),
        ("cutoffs".to_owned(), json!(set.header.cutoffs)),
        ("horizon_days".to_owned(), json!(set.header.horizon_days)),
        ("feature_set".to_owned(), json!(set.header.feature_set)),
        (
            "training_set_fingerprint".to_owned(),
            json!(set.fingerprint),
        ),
        ("training_rows".to_owned(), json!(set.rows.len())),
        (
            "split".to_owned(),
            json!("test when fnv1a64(account_id) % 5 == 0"),
        ),
        ("backend".to_owned(), json!(std::any::type_name::<B>())),
    ]);
    Ok(Trained {
        artifact,
        metrics,
        config: config_json,
        roc: roc_curve(&scores, &labels),
        losses,
    })
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use chrono::NaiveDate;
    use sextant_contracts::SalesforceId;
    use sextant_contracts::api::TrainingRow;

    use super::*;

    type B = Autodiff<Flex>;

    /// A synthetic set where churn is driven by recency: learnable, with noise.
    fn synthetic(n: u64) -> TrainingSet {
        let rows = (0..n)
            .map(|i| {
                let recency = (i * 37 % 300) as f64;
                let frequency = 1.0 + (i * 13 % 20) as f64;
                let noise = (i * 7919 % 100) as f64 / 100.0;
                TrainingRow {
                    account_id: SalesforceId::from_parts("001", "5g", i + 1),
                    cutoff: NaiveDate::from_ymd_opt(2011, 9, 1).unwrap_or_default(),
                    sequence: None,
                    attributes: std::collections::BTreeMap::new(),
                    features: vec![
                        recency,
                        frequency,
                        frequency * 20.0,
                        20.0,
                        300.0,
                        (90.0 - recency).max(0.0) / 30.0,
                    ],
                    churned: recency / 300.0 + 0.3 * noise > 0.6,
                }
            })
            .collect();
        TrainingSet {
            header: sextant_contracts::api::TrainingSetHeader {
                feature_set: "test".into(),
                feature_names: sextant_contracts_feature_names(),
                sequence_channels: vec![],
                sequence_weeks: 0,
                horizon_days: 90,
                cutoffs: vec![NaiveDate::from_ymd_opt(2011, 9, 1).unwrap_or_default()],
            },
            rows,
            fingerprint: "test".into(),
        }
    }

    fn sextant_contracts_feature_names() -> Vec<String> {
        [
            "recency_days",
            "frequency",
            "monetary_total",
            "monetary_mean",
            "tenure_days",
            "orders_last_90d",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    #[test]
    fn learns_a_learnable_signal_and_exports_faithfully() {
        let set = synthetic(400);
        let device = Default::default();
        let mut epochs_seen = 0;
        let config = TrainConfig {
            epochs: 150,
            ..TrainConfig::default()
        };
        let trained = train::<B>(
            &set,
            &config,
            ModelVersion::parse("churn-v1").expect("v"),
            &device,
            |e, _| epochs_seen = e,
        )
        .expect("trains");
        assert_eq!(epochs_seen, 150);
        assert!(
            trained.losses.last() < trained.losses.first(),
            "loss falls: {:?}",
            (trained.losses.first(), trained.losses.last())
        );
        assert!(trained.metrics.auc > 0.85, "AUC {}", trained.metrics.auc);
        assert_eq!(trained.metrics.n_train + trained.metrics.n_test, 400);
        trained.artifact.validate().expect("consistent artefact");

        // The exported forward pass agrees with Burn's on the same weights.
        let row = &set.rows[3];
        let x = trained.artifact.preprocess(&row.features).expect("width");
        let served = trained.artifact.predict(&row.features).expect("scores");
        let burn_logit = {
            let m = rebuild(&trained.artifact, &device);
            let t = Tensor::<Flex, 2>::from_data(TensorData::new(x, [1, 6]), &device);
            f64::from(m.forward(t).into_scalar().to_f32())
        };
        let burn_p = 1.0 / (1.0 + (-burn_logit).exp());
        assert!((served - burn_p).abs() < 1e-5, "{served} vs {burn_p}");
    }

    /// Loads the artefact's weights back into a Burn module.
    fn rebuild(a: &ChurnArtifact, device: &burn::backend::flex::FlexDevice) -> ChurnMlp<Flex> {
        use burn::module::Param;
        let mut m = ChurnMlp::<Flex>::new(a.layers[0].inputs, a.layers[0].outputs, device);
        let set = |l: &mut burn::nn::Linear<Flex>, d: &sextant_models::Dense| {
            l.weight = Param::from_tensor(Tensor::from_data(
                TensorData::new(d.weights.clone(), [d.inputs, d.outputs]),
                device,
            ));
            l.bias = Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(d.bias.clone(), [d.outputs]),
                device,
            )));
        };
        let (h, o) = m.layers_mut();
        set(h, &a.layers[0]);
        set(o, &a.layers[1]);
        m
    }

    #[test]
    fn refuses_sets_it_cannot_learn_from() {
        let mut set = synthetic(400);
        set.rows.iter_mut().for_each(|r| r.churned = true);
        let err = train::<B>(
            &set,
            &TrainConfig::default(),
            ModelVersion::parse("churn-v1").expect("v"),
            &Default::default(),
            |_, _| {},
        )
        .expect_err("one class");
        assert!(matches!(err, TrainError::InsufficientData(_)));
        let set = synthetic(10);
        assert!(
            train::<B>(
                &set,
                &TrainConfig::default(),
                ModelVersion::parse("churn-v1").expect("v"),
                &Default::default(),
                |_, _| {}
            )
            .is_err()
        );
    }

    #[test]
    fn the_split_is_stable_and_about_a_fifth() {
        let ids: Vec<String> = (1..=1000)
            .map(|i| SalesforceId::from_parts("001", "5g", i).to_string())
            .collect();
        let test = ids.iter().filter(|id| is_test(id)).count();
        assert!((150..=250).contains(&test), "{test}");
        // The split must not change between releases: FNV-1a 64 reference values.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
