//! Propensity models on any object: train a logistic regression and a wide-and-deep network with
//! Burn on the [`TabularEncoder`]'s output, pick one (or a weighted blend of the two) by inner
//! cross-validation, and export a [`PropensityArtifact`] that the gateway scores in plain Rust.
//!
//! Why inner cross-validation: the caller's data are an unknown object in an unknown org, so no
//! architecture, penalty or blend weight can be fixed in advance; and an outer evaluation (e.g.
//! `sextant evaluate propensity`) must never see its test fold influence a choice. So every choice
//! here is made on the rows handed to [`train_propensity`] only: row `j` of them goes to inner fold
//! `j mod k`, each candidate is fitted on the other inner folds and scored on the held-out one, and
//! the candidate with the best pooled out-of-fold ROC-AUC is refitted on all the rows. Blends of the
//! best linear and the best non-linear candidate (weights in [`PropensityConfig::blend_weights`])
//! compete on the same out-of-fold scores and win only when strictly better.
//!
//! Why wide and deep, averaged over seeds: on tabular data a well-encoded logistic regression is hard
//! to beat (the Telco anchor's is 0.845); a network whose linear part carries the main effects and
//! whose small hidden layer adds interactions degrades gracefully to it, and averaging a few seeds
//! (each with its own early-stopping split) removes most of the run-to-run noise that makes a single
//! small network lose to the linear model.
//!
//! The networks stop early on a validation split taken from the rows they are fitted on (every fifth
//! row of a seeded shuffle) and keep their best epoch. Everything is seeded: same rows, same seed,
//! same model.

use burn::module::{AutodiffModule, Module};
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::Backend;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::Serialize;
use sextant_models::Dense;
use sextant_models::metrics::{log_loss, roc_auc};
use sextant_models::tabular::{
    EncoderConfig, Network, PredictionDefinition, PropensityArtifact, Record, TabularEncoder,
    TabularError, TabularModel,
};

/// Why a propensity model could not be trained.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PropensityError {
    /// The definition or the rows do not fit the encoder.
    #[error(transparent)]
    Tabular(#[from] TabularError),
    /// Too few labelled rows, or one class only.
    #[error("insufficient data: {0}")]
    InsufficientData(String),
}

/// A dense row-major matrix of encoded rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `rows × cols` values.
    pub data: Vec<f32>,
}

impl Matrix {
    /// Row `i`.
    #[must_use]
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows at `idx`, in that order.
    #[must_use]
    pub fn select(&self, idx: &[usize]) -> Self {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Self {
            rows: idx.len(),
            cols: self.cols,
            data,
        }
    }
}

/// One model family with its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "model")]
pub enum Candidate {
    /// Logistic regression; `l2` multiplies `½‖w‖²` added to the mean log-loss.
    Logistic {
        /// Penalty.
        l2: f64,
    },
    /// One hidden ReLU layer of `hidden` units; `l2` as for the logistic regression.
    Mlp {
        /// Hidden units.
        hidden: usize,
        /// Penalty (weight decay) on the weights, not the biases.
        l2: f64,
    },
    /// Wide and deep: a logistic regression on the input (the wide part) plus one hidden ReLU layer
    /// of `hidden` units, their logits summed; `l2` on every weight.
    WideDeep {
        /// Hidden units of the deep part.
        hidden: usize,
        /// Penalty (weight decay) on the weights, not the biases.
        l2: f64,
    },
}

impl Candidate {
    /// Whether the candidate is linear in the encoded columns.
    #[must_use]
    pub fn is_linear(self) -> bool {
        matches!(self, Self::Logistic { .. })
    }
}

impl std::fmt::Display for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Logistic { l2 } => write!(f, "logistic(l2={l2})"),
            Self::Mlp { hidden, l2 } => write!(f, "mlp(hidden={hidden}, l2={l2})"),
            Self::WideDeep { hidden, l2 } => write!(f, "wide_deep(hidden={hidden}, l2={l2})"),
        }
    }
}

/// Settings of [`select_and_fit`] and [`train_propensity`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PropensityConfig {
    /// Seeds initialisation, shuffling and the early-stopping split.
    pub seed: u64,
    /// Inner cross-validation folds (at least 2).
    pub inner_folds: usize,
    /// Candidates tried; at least one.
    pub candidates: Vec<Candidate>,
    /// Networks averaged per non-linear candidate, each with its own seed and early-stopping split
    /// (bagging over seeds: one small network is noisy enough to lose to the linear model that an
    /// average of a few beats). At least 1.
    pub seeds: usize,
    /// Weights of the best non-linear candidate tried in a blend with the best linear one (the
    /// probabilities averaged with weights `1 − w` and `w`); empty for no blends.
    pub blend_weights: Vec<f64>,
    /// Full-batch Adam steps of the logistic regression.
    pub logistic_steps: usize,
    /// Adam learning rate of the logistic regression.
    pub logistic_learning_rate: f64,
    /// Most MLP epochs.
    pub mlp_max_epochs: usize,
    /// MLP epochs without a better validation loss before stopping.
    pub mlp_patience: usize,
    /// MLP mini-batch size.
    pub mlp_batch: usize,
    /// Adam learning rate of the MLP.
    pub mlp_learning_rate: f64,
    /// The encoder the model is trained on.
    #[serde(skip)]
    pub encoder: EncoderConfig,
}

impl Default for PropensityConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            inner_folds: 3,
            candidates: vec![
                Candidate::Logistic { l2: 1e-4 },
                Candidate::WideDeep {
                    hidden: 16,
                    l2: 1e-3,
                },
            ],
            seeds: 5,
            blend_weights: vec![0.25, 0.5, 0.75],
            logistic_steps: 300,
            logistic_learning_rate: 0.05,
            mlp_max_epochs: 80,
            mlp_patience: 6,
            mlp_batch: 512,
            mlp_learning_rate: 5e-3,
            encoder: EncoderConfig::default(),
        }
    }
}

/// What the selection saw and chose.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    /// Pooled out-of-fold ROC-AUC of each candidate on the inner folds, then of each blend tried.
    pub inner_auc: Vec<(String, f64)>,
    /// The chosen candidate or blend.
    pub chosen: String,
}

/// A trained model with the record of how it was chosen.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The model on the encoded rows.
    pub model: TabularModel,
    /// The selection.
    pub selection: Selection,
}

/// The network trained with Burn: dense layers with ReLU between them, one logit out, and an optional
/// linear (wide) layer from the input added to the logit.
#[derive(Module, Debug)]
struct Net<B: Backend> {
    layers: Vec<Linear<B>>,
    wide: Option<Linear<B>>,
    activation: Relu,
}

impl<B: Backend> Net<B> {
    fn new(inputs: usize, candidate: Candidate, device: &B::Device) -> Self {
        let deep = |h: usize| {
            vec![
                LinearConfig::new(inputs, h).init(device),
                LinearConfig::new(h, 1).init(device),
            ]
        };
        let (layers, wide) = match candidate {
            Candidate::Logistic { .. } => (vec![LinearConfig::new(inputs, 1).init(device)], None),
            Candidate::Mlp { hidden, .. } => (deep(hidden), None),
            Candidate::WideDeep { hidden, .. } => (
                deep(hidden),
                Some(LinearConfig::new(inputs, 1).init(device)),
            ),
        };
        Self {
            layers,
            wide,
            activation: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.layers.len().saturating_sub(1);
        let wide = self.wide.as_ref().map(|w| w.forward(x.clone()));
        let mut x = x;
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(x);
            if i < last {
                x = self.activation.forward(x);
            }
        }
        match wide {
            Some(w) => x + w,
            None => x,
        }
    }

    /// `½ Σ w²` over the weights (not the biases).
    fn half_sq_weights(&self) -> Tensor<B, 1> {
        let mut total: Option<Tensor<B, 1>> = None;
        for l in self.layers.iter().chain(&self.wide) {
            let s = l.weight.val().powf_scalar(2.0).sum();
            total = Some(match total {
                Some(t) => t + s,
                None => s,
            });
        }
        total.map_or_else(
            || Tensor::zeros([1], &self.devices_or_default()),
            |t| t.mul_scalar(0.5),
        )
    }

    fn devices_or_default(&self) -> B::Device {
        self.devices().into_iter().next().unwrap_or_default()
    }

    fn export(&self, kind: &str) -> Network {
        Network {
            kind: kind.to_owned(),
            layers: self.layers.iter().map(dense).collect(),
            wide: self.wide.as_ref().map(dense),
        }
    }
}

fn dense<B: Backend>(l: &Linear<B>) -> Dense {
    let [inputs, outputs] = l.weight.shape().dims();
    let weights = l
        .weight
        .val()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap_or_default();
    let bias = l.bias.as_ref().map_or_else(
        || vec![0.0; outputs],
        |b| {
            b.val()
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap_or_default()
        },
    );
    Dense {
        inputs,
        outputs,
        weights,
        bias,
    }
}

/// SplitMix64: a tiny seeded generator for shuffles (the split rules themselves are not random).
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = usize::try_from(self.next() % (i as u64 + 1)).unwrap_or(0);
            v.swap(i, j);
        }
    }
}

fn tensors<B: Backend>(
    x: &Matrix,
    y: &[bool],
    idx: &[usize],
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 2, Int>) {
    let mut data = Vec::with_capacity(idx.len() * x.cols);
    for &i in idx {
        data.extend_from_slice(x.row(i));
    }
    let labels: Vec<i64> = idx.iter().map(|&i| i64::from(y[i])).collect();
    (
        Tensor::from_data(TensorData::new(data, [idx.len(), x.cols]), device),
        Tensor::from_data(TensorData::new(labels, [idx.len(), 1]), device),
    )
}

/// Fits one candidate on the rows `idx` of `x`: one network for a logistic regression, `seeds`
/// networks (to be averaged) otherwise.
fn fit_candidate<B: AutodiffBackend>(
    x: &Matrix,
    y: &[bool],
    idx: &[usize],
    candidate: Candidate,
    config: &PropensityConfig,
    seed: u64,
    device: &B::Device,
) -> Vec<Network> {
    match candidate {
        Candidate::Logistic { l2 } => {
            vec![fit_logistic::<B>(x, y, idx, l2, config, seed, device)]
        }
        Candidate::Mlp { l2, .. } | Candidate::WideDeep { l2, .. } => (0..config.seeds.max(1))
            .map(|s| {
                let seed = seed.wrapping_add(0x1_0000_0000 * s as u64);
                fit_network::<B>(x, y, idx, candidate, l2, config, seed, device)
            })
            .collect(),
    }
}

fn fit_logistic<B: AutodiffBackend>(
    x: &Matrix,
    y: &[bool],
    idx: &[usize],
    l2: f64,
    config: &PropensityConfig,
    seed: u64,
    device: &B::Device,
) -> Network {
    B::seed(device, seed);
    let loss_fn = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(device);
    let mut net = Net::<B>::new(x.cols, Candidate::Logistic { l2 }, device);
    let (xt, yt) = tensors::<B>(x, y, idx, device);
    let mut optim = AdamConfig::new().init();
    for _ in 0..config.logistic_steps {
        let loss = loss_fn.forward(net.forward(xt.clone()), yt.clone())
            + net.half_sq_weights().mul_scalar(l2);
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(config.logistic_learning_rate, net, grads);
    }
    net.valid().export("logistic")
}

/// Mini-batch Adam with early stopping on every fifth row of a seeded shuffle; the best epoch is kept.
#[expect(
    clippy::too_many_arguments,
    reason = "the fit's inputs; a struct would only rename them"
)]
fn fit_network<B: AutodiffBackend>(
    x: &Matrix,
    y: &[bool],
    idx: &[usize],
    candidate: Candidate,
    l2: f64,
    config: &PropensityConfig,
    seed: u64,
    device: &B::Device,
) -> Network {
    B::seed(device, seed);
    let kind = match candidate {
        Candidate::WideDeep { .. } => "wide_deep",
        _ => "mlp",
    };
    let loss_fn = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(device);
    let mut rng = SplitMix(seed ^ 0xA5A5_5A5A);
    let mut order = idx.to_vec();
    rng.shuffle(&mut order);
    // Every fifth shuffled row validates (at least one row on each side).
    let (mut fit, mut val) = (Vec::new(), Vec::new());
    for (j, &i) in order.iter().enumerate() {
        if j % 5 == 4 { val.push(i) } else { fit.push(i) }
    }
    if val.is_empty() || fit.is_empty() {
        fit = order.clone();
        val = order.clone();
    }
    let (xv, _) = tensors::<B::InnerBackend>(x, y, &val, device);
    let yv: Vec<bool> = val.iter().map(|&i| y[i]).collect();
    let mut net = Net::<B>::new(x.cols, candidate, device);
    let mut optim = AdamConfig::new().init();
    let mut best = (f64::INFINITY, net.valid().export(kind));
    let mut since_best = 0;
    for _ in 0..config.mlp_max_epochs {
        rng.shuffle(&mut fit);
        for batch in fit.chunks(config.mlp_batch.max(1)) {
            let (xb, yb) = tensors::<B>(x, y, batch, device);
            let loss = loss_fn.forward(net.forward(xb), yb) + net.half_sq_weights().mul_scalar(l2);
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(config.mlp_learning_rate, net, grads);
        }
        let logits = net.valid().forward(xv.clone());
        let probs: Vec<f64> = logits
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap_or_default()
            .into_iter()
            .map(|z| sextant_models::tabular::sigmoid(f64::from(z)))
            .collect();
        let val_loss = log_loss(&probs, &yv);
        if val_loss < best.0 - 1e-6 {
            best = (val_loss, net.valid().export(kind));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= config.mlp_patience {
                break;
            }
        }
    }
    best.1
}

/// Mean probability of `nets` on rows `idx` (plain-Rust forward pass, as the gateway scores).
fn predict(nets: &[Network], x: &Matrix, idx: &[usize]) -> Result<Vec<f64>, TabularError> {
    let n = nets.len().max(1) as f64;
    idx.iter()
        .map(|&i| {
            nets.iter()
                .map(|net| net.logit(x.row(i)).map(sextant_models::tabular::sigmoid))
                .sum::<Result<f64, _>>()
                .map(|p| p / n)
        })
        .collect()
}

/// What the selection chose: candidates with their blend weights.
type Choice = Vec<(usize, f64)>;

/// Chooses a model by inner cross-validation on `x`/`y` and refits it on all of them.
///
/// # Errors
/// [`PropensityError::InsufficientData`] when an inner fold lacks a class or the settings are empty.
pub fn select_and_fit<B: AutodiffBackend>(
    x: &Matrix,
    y: &[bool],
    config: &PropensityConfig,
    device: &B::Device,
    mut progress: impl FnMut(&str),
) -> Result<Fitted, PropensityError> {
    let k = config.inner_folds;
    if k < 2 || config.candidates.is_empty() {
        return Err(PropensityError::InsufficientData(
            "need at least 2 inner folds and one candidate".into(),
        ));
    }
    if x.rows != y.len() {
        return Err(PropensityError::InsufficientData(format!(
            "{} rows but {} labels",
            x.rows,
            y.len()
        )));
    }
    for f in 0..k {
        let held: Vec<bool> = (f..y.len()).step_by(k).map(|i| y[i]).collect();
        let pos = held.iter().filter(|v| **v).count();
        if pos == 0 || pos == held.len() {
            return Err(PropensityError::InsufficientData(format!(
                "inner fold {f} of {k} has only one class ({} rows)",
                held.len()
            )));
        }
    }
    // Out-of-fold probabilities of each candidate.
    let mut oof = vec![vec![0.0f64; y.len()]; config.candidates.len()];
    for f in 0..k {
        let train: Vec<usize> = (0..y.len()).filter(|i| i % k != f).collect();
        let held: Vec<usize> = (f..y.len()).step_by(k).collect();
        for (c, candidate) in config.candidates.iter().enumerate() {
            let seed = config.seed.wrapping_add((f * 1000 + c) as u64);
            let nets = fit_candidate::<B>(x, y, &train, *candidate, config, seed, device);
            for (&i, p) in held.iter().zip(predict(&nets, x, &held)?) {
                oof[c][i] = p;
            }
        }
        progress(&format!("inner fold {}/{k} done", f + 1));
    }
    let auc = |p: &[f64]| roc_auc(p, y).unwrap_or(0.5);
    let mut inner: Vec<(String, f64)> = config
        .candidates
        .iter()
        .zip(&oof)
        .map(|(c, p)| (c.to_string(), auc(p)))
        .collect();
    let mut choices: Vec<Choice> = (0..inner.len()).map(|c| vec![(c, 1.0)]).collect();
    let best_of = |linear: bool| {
        config
            .candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_linear() == linear)
            .max_by(|a, b| inner[a.0].1.total_cmp(&inner[b.0].1))
            .map(|(i, _)| i)
    };
    if let (Some(l), Some(m)) = (best_of(true), best_of(false)) {
        for &w in config
            .blend_weights
            .iter()
            .filter(|w| **w > 0.0 && **w < 1.0)
        {
            let blend: Vec<f64> = oof[l]
                .iter()
                .zip(&oof[m])
                .map(|(a, b)| (1.0 - w) * a + w * b)
                .collect();
            let name = format!(
                "blend({:.2}·{} + {w:.2}·{})",
                1.0 - w,
                inner[l].0,
                inner[m].0
            );
            inner.push((name, auc(&blend)));
            choices.push(vec![(l, 1.0 - w), (m, w)]);
        }
    }
    // The best; the first listed wins ties (single candidates, simpler ones first, then blends).
    let mut chosen = 0;
    for i in 1..inner.len() {
        if inner[i].1 > inner[chosen].1 {
            chosen = i;
        }
    }
    let all: Vec<usize> = (0..y.len()).collect();
    let mut members = Vec::new();
    for &(c, weight) in &choices[chosen] {
        let seed = config.seed.wrapping_add(999_000 + c as u64);
        let nets = fit_candidate::<B>(x, y, &all, config.candidates[c], config, seed, device);
        let share = weight / nets.len().max(1) as f64;
        members.extend(nets.into_iter().map(|n| (share, n)));
    }
    let chosen_name = inner[chosen].0.clone();
    progress(&format!("chose {chosen_name}"));
    Ok(Fitted {
        model: TabularModel { members },
        selection: Selection {
            inner_auc: inner,
            chosen: chosen_name,
        },
    })
}

/// Encodes labelled rows: the matrix and the labels; rows whose label is missing are skipped and
/// counted.
///
/// # Errors
/// A numeric field holding text, or a threshold label holding text.
pub fn encode_rows<R: Record>(
    definition: &PredictionDefinition,
    encoder: &TabularEncoder,
    rows: impl IntoIterator<Item = R>,
) -> Result<(Matrix, Vec<bool>, usize), TabularError> {
    let cols = encoder.width();
    let (mut data, mut labels, mut unlabelled) = (Vec::new(), Vec::new(), 0);
    for row in rows {
        match definition.label_of(&row)? {
            Some(l) => {
                encoder.encode_into(&row, &mut data)?;
                labels.push(l);
            }
            None => unlabelled += 1,
        }
    }
    Ok((
        Matrix {
            rows: labels.len(),
            cols,
            data,
        },
        labels,
        unlabelled,
    ))
}

/// A trained propensity artefact and how it came about.
#[derive(Debug, Clone)]
pub struct Trained {
    /// What the gateway loads.
    pub artifact: PropensityArtifact,
    /// The model selection.
    pub selection: Selection,
    /// Labelled rows trained on.
    pub rows: usize,
    /// Rows skipped because their label was missing.
    pub unlabelled: usize,
}

/// Trains a propensity model for `definition` on `rows` (iterated twice: once to fit the encoder in a
/// streaming pass, once to encode). Rows with a missing label are skipped (and counted).
///
/// # Errors
/// An invalid definition, values that do not fit the inferred kinds, fewer than 20 labelled rows, or
/// one class only.
pub fn train_propensity<B, R, I>(
    definition: &PredictionDefinition,
    rows: I,
    config: &PropensityConfig,
    device: &B::Device,
    progress: impl FnMut(&str),
) -> Result<Trained, PropensityError>
where
    B: AutodiffBackend,
    R: Record,
    I: IntoIterator<Item = R> + Clone,
{
    // Fit the encoder on labelled rows only, so it describes exactly what the model sees.
    definition.validate()?;
    let mut label_error = None;
    let (mut rows_seen, mut label_present, mut labelled_count) = (0usize, false, 0usize);
    let labelled = rows.clone().into_iter().filter(|r| {
        rows_seen += 1;
        label_present = label_present || r.has_field(&definition.label_field);
        match definition.label_of(r) {
            Ok(l) => {
                labelled_count += usize::from(l.is_some());
                l.is_some()
            }
            Err(e) => {
                label_error.get_or_insert(e);
                false
            }
        }
    });
    let encoder = TabularEncoder::fit(definition, &config.encoder, labelled);
    if let Some(e) = label_error {
        return Err(e.into());
    }
    if rows_seen > 0 && !label_present {
        return Err(TabularError::UnknownField(definition.label_field.clone()).into());
    }
    if labelled_count == 0 {
        return Err(PropensityError::InsufficientData(format!(
            "none of the {rows_seen} rows has a value in the label field `{}`",
            definition.label_field
        )));
    }
    let encoder = encoder?;
    let (x, y, unlabelled) = encode_rows(definition, &encoder, rows)?;
    let positives = y.iter().filter(|v| **v).count();
    if y.len() < 20 {
        return Err(PropensityError::InsufficientData(format!(
            "{} labelled rows; need at least 20",
            y.len()
        )));
    }
    if positives == 0 || positives == y.len() {
        return Err(PropensityError::InsufficientData(format!(
            "the label `{}` has one class only: all {} labelled rows are {}; a propensity model \
             needs both outcomes",
            definition.label_field,
            y.len(),
            if positives == 0 {
                "negative"
            } else {
                "positive"
            }
        )));
    }
    let fitted = select_and_fit::<B>(&x, &y, config, device, progress)?;
    Ok(Trained {
        artifact: PropensityArtifact {
            definition: definition.clone(),
            encoder,
            model: fitted.model,
        },
        selection: fitted.selection,
        rows: y.len(),
        unlabelled,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use burn::backend::{Autodiff, Flex};
    use serde_json::{Map, Value, json};
    use sextant_models::tabular::LabelRule;

    use super::*;

    type B = Autodiff<Flex>;

    /// Rows where the outcome depends on a number, a level and an interaction, with noise.
    fn synthetic(n: usize) -> Vec<Map<String, Value>> {
        let mut rng = SplitMix(7);
        (0..n)
            .filter_map(|i| {
                let usage = (rng.next() % 1000) as f64 / 10.0;
                let plan = ["basic", "plus", "pro"][i % 3];
                let noise = (rng.next() % 1000) as f64 / 1000.0;
                let score = usage / 100.0 + if plan == "basic" { 0.4 } else { 0.0 } + 0.5 * noise;
                let usage_cell = if i % 17 == 0 { json!("") } else { json!(usage) };
                json!({"Id": format!("001{i:05}"), "usage": usage_cell, "plan": plan,
                       "Won": if score > 0.9 { "Yes" } else { "No" }})
                .as_object()
                .cloned()
            })
            .collect()
    }

    fn definition() -> PredictionDefinition {
        PredictionDefinition {
            object: "Opportunity".into(),
            label_field: "Won".into(),
            label: LabelRule::Values {
                positive: vec!["Yes".into()],
            },
            features: vec!["usage".into(), "plan".into()],
            kinds: BTreeMap::new(),
        }
    }

    fn quick() -> PropensityConfig {
        PropensityConfig {
            candidates: vec![
                Candidate::Logistic { l2: 1e-3 },
                Candidate::Mlp {
                    hidden: 8,
                    l2: 1e-3,
                },
            ],
            seeds: 2,
            mlp_max_epochs: 30,
            ..PropensityConfig::default()
        }
    }

    #[test]
    fn learns_selects_and_exports_a_deterministic_artefact()
    -> Result<(), Box<dyn std::error::Error>> {
        let rows = synthetic(600);
        let (train, test) = rows.split_at(450);
        let device = Default::default();
        let trained = train_propensity::<B, _, _>(&definition(), train, &quick(), &device, |_| {})?;
        trained.artifact.validate()?;
        assert_eq!(trained.rows, 450);
        assert_eq!(
            trained.selection.inner_auc.len(),
            5,
            "two candidates + three blends"
        );
        let scores: Vec<f64> = test
            .iter()
            .map(|r| trained.artifact.score(r))
            .collect::<Result<_, _>>()?;
        let labels: Vec<bool> = test
            .iter()
            .filter_map(|r| definition().label_of(r).ok().flatten())
            .collect();
        let auc = roc_auc(&scores, &labels).unwrap_or(0.0);
        assert!(auc > 0.85, "held-out AUC {auc}");
        // Same seed, same rows → the same artefact.
        let again = train_propensity::<B, _, _>(&definition(), train, &quick(), &device, |_| {})?;
        assert_eq!(again.artifact, trained.artifact);
        // The artefact survives JSON.
        let back: PropensityArtifact =
            serde_json::from_str(&serde_json::to_string(&trained.artifact)?)?;
        assert_eq!(back.score(&test[0])?, trained.artifact.score(&test[0])?);
        Ok(())
    }

    #[test]
    fn burn_logistic_approaches_the_exact_newton_optimum() -> Result<(), Box<dyn std::error::Error>>
    {
        let rows = synthetic(400);
        let def = definition();
        let encoder = TabularEncoder::fit(&def, &EncoderConfig::default(), &rows)?;
        let (x, y, _) = encode_rows(&def, &encoder, &rows)?;
        let l2 = 1e-2;
        let all: Vec<usize> = (0..y.len()).collect();
        let config = PropensityConfig::default();
        let burn = fit_candidate::<B>(
            &x,
            &y,
            &all,
            Candidate::Logistic { l2 },
            &config,
            1,
            &Default::default(),
        );
        // Newton's C for the same objective: λ = 1/(C·n).
        let exact = sextant_models::tabular::fit_logistic_newton(
            &x.data,
            x.cols,
            &y,
            1.0 / (l2 * y.len() as f64),
        )?;
        let pb = predict(&burn, &x, &all)?;
        let pe = predict(std::slice::from_ref(&exact), &x, &all)?;
        let worst = pb
            .iter()
            .zip(&pe)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 0.02, "largest probability gap {worst}");
        Ok(())
    }

    #[test]
    fn refuses_data_it_cannot_learn_from() {
        let device = Default::default();
        let mut rows = synthetic(100);
        for r in &mut rows {
            r.insert("Won".into(), json!("No"));
        }
        let err = train_propensity::<B, _, _>(&definition(), &rows, &quick(), &device, |_| {});
        assert!(
            matches!(err, Err(PropensityError::InsufficientData(ref m))
                if m.contains("all 100 labelled rows are negative") && m.contains("`Won`")),
            "{err:?}"
        );
        let rows = synthetic(10);
        let err = train_propensity::<B, _, _>(&definition(), &rows, &quick(), &device, |_| {});
        assert!(
            matches!(err, Err(PropensityError::InsufficientData(_))),
            "{err:?}"
        );
        // A feature or a label that no row has is named.
        let rows = synthetic(100);
        let mut def = definition();
        def.features.push("Region__c".into());
        let err = train_propensity::<B, _, _>(&def, &rows, &quick(), &device, |_| {});
        assert!(
            matches!(err, Err(PropensityError::Tabular(TabularError::UnknownField(ref f))) if f == "Region__c"),
            "{err:?}"
        );
        let mut def = definition();
        def.label_field = "IsWon".into();
        let err = train_propensity::<B, _, _>(&def, &rows, &quick(), &device, |_| {});
        assert!(
            matches!(err, Err(PropensityError::Tabular(TabularError::UnknownField(ref f))) if f == "IsWon"),
            "{err:?}"
        );
        // A label that is blank everywhere.
        let mut blank = synthetic(100);
        for r in &mut blank {
            r.insert("Won".into(), json!(null));
        }
        let err = train_propensity::<B, _, _>(&definition(), &blank, &quick(), &device, |_| {});
        assert!(
            matches!(err, Err(PropensityError::InsufficientData(ref m)) if m.contains("label field `Won`")),
            "{err:?}"
        );
        let mut rows = synthetic(100);
        rows[3].insert("usage".into(), json!("lots"));
        let mut def = definition();
        def.kinds
            .insert("usage".into(), sextant_models::tabular::ColumnKind::Numeric);
        let err = train_propensity::<B, _, _>(&def, &rows, &quick(), &device, |_| {});
        assert!(
            matches!(
                err,
                Err(PropensityError::Tabular(TabularError::NotNumeric { .. }))
            ),
            "{err:?}"
        );
    }
}
