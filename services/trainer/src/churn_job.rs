//! The churn training run the service performs: the sequence (GRU) model on stacked cut-offs,
//! evaluated out of time, wrapped for serving, and compared with the current model.
//!
//! # Protocol
//! - **Cut-offs.** The job's cut-off `D` is the *evaluation* cut-off. Training cut-offs end one
//!   label window earlier (`D − horizon`), so every training label was known by `D` (no label
//!   looks past the evaluation date), and go back every `cutoff_step_days` over
//!   `cutoff_span_days`. One training-set request asks for all of them with sequences.
//! - **Split.** Rows at `D` are the out-of-time test set; earlier rows are split by account
//!   (`fnv1a64(id) % 5 == 0` → validation, for early stopping and the stacking layer that
//!   weighs the network's deep part against its wide part, `sequence_model`), so one account's
//!   cut-offs never straddle training and validation. The model is the one `sextant evaluate
//!   churn` measures, on the feature store's `rfmt-v2` aggregates (which include the rhythm
//!   aggregates that evaluation adds to RFM).
//! - **Gate.** While the stream is read, the model that is current when the job starts scores the
//!   test rows too (a few hundred at a time, so only its scores are kept); the candidate is
//!   promoted only when its ROC-AUC on the same rows is at least the current model's.
//!
//! The stream is parsed line by line and each row is reduced at once to what training needs
//! (the network's recent weeks, the features, the category); the rows of the set are then held
//! in memory for training, which is what a demo- to department-sized org needs.

use std::collections::BTreeMap;

use burn::tensor::backend::AutodiffBackend;
use chrono::{Duration, NaiveDate};
use serde_json::json;
use sextant_contracts::ModelVersion;
use sextant_contracts::api::{
    ModelMetrics, PromotionDecision, TrainingRow, TrainingSetHeader, TrainingSetLine,
    TrainingSetRequest,
};
use sextant_models::churn_serving::{
    self, CustomerInput, Reference, SEQUENCE_KIND, SequenceChurnArtifact, ServedChurnModel,
    WEEK_BLOCKS, WeekBlock, fit_bands, network_aggregate_names,
};
use sextant_models::metrics::{accuracy, log_loss, roc_auc, roc_curve};

use crate::registry::{Churn, Publication, churn_publication};
use crate::sequence_model::{self, SequenceExample, SequenceTrainConfig, SetLayout};
use crate::training::is_test;

/// The attribute used as the network's category.
pub const CATEGORY_ATTRIBUTE: &str = "country";

/// The category of a row without the attribute (the network's unknown level).
pub const MISSING_CATEGORY: &str = churn_serving::MISSING_CATEGORY;

/// Rows the current model scores at a time while the stream is read.
const GATE_BATCH: usize = 256;

/// Settings of one churn job.
#[derive(Debug, Clone, PartialEq)]
pub struct ChurnJobConfig {
    /// Most epochs (training stops earlier when the validation AUC stalls for `patience`).
    pub max_epochs: u32,
    /// Weeks of history the network reads (the most recent ones).
    pub weeks: usize,
    /// Days between training cut-offs.
    pub cutoff_step_days: u32,
    /// Days from the latest training cut-off back to the earliest.
    pub cutoff_span_days: u32,
    /// The network and its optimiser.
    pub net: SequenceTrainConfig,
}

impl Default for ChurnJobConfig {
    fn default() -> Self {
        Self {
            max_epochs: 100,
            weeks: 52,
            cutoff_step_days: 30,
            cutoff_span_days: 180,
            net: SequenceTrainConfig {
                hidden: 16,
                embedding_dim: 4,
                aggregate_dim: 16,
                head_dim: 16,
                batch_size: 64,
                learning_rate: 5e-3,
                patience: 6,
                min_category_count: 10,
                ..SequenceTrainConfig::default()
            },
        }
    }
}

/// Why a churn job could not produce a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ChurnJobError {
    /// The feature store failed or sent a malformed or truncated stream.
    #[error("training set: {0}")]
    TrainingSet(String),
    /// Too few rows, or one class only, in a part of the split.
    #[error("insufficient data: {0}")]
    InsufficientData(String),
    /// Training or export failed.
    #[error("training: {0}")]
    Training(String),
}

/// The training cut-offs and the evaluation cut-off, oldest first (the last one is `evaluation`).
#[must_use]
pub fn cutoffs(
    evaluation: NaiveDate,
    horizon_days: u32,
    step_days: u32,
    span_days: u32,
) -> Vec<NaiveDate> {
    let latest_training = evaluation - Duration::days(i64::from(horizon_days));
    let step = i64::from(step_days.max(1));
    let count = i64::from(span_days) / step + 1;
    let mut out: Vec<NaiveDate> = (0..count)
        .map(|k| latest_training - Duration::days(k * step))
        .collect();
    out.reverse();
    out.push(evaluation);
    out
}

/// One reduced row.
#[derive(Debug, Clone)]
struct Row {
    account_id: String,
    /// Raw features (the network's extra inputs are appended after the split is known).
    example: SequenceExample,
}

/// The reduced training set.
#[derive(Debug)]
pub struct ChurnSet {
    header: TrainingSetHeader,
    evaluation: NaiveDate,
    earlier: Vec<Row>,
    test: Vec<Row>,
    /// The current model's scores of the test rows, in order (when it could score them).
    current_scores: Result<Vec<f64>, String>,
    fingerprint: String,
}

impl ChurnSet {
    /// Rows at earlier cut-offs and at the evaluation cut-off.
    #[must_use]
    pub fn sizes(&self) -> (usize, usize) {
        (self.earlier.len(), self.test.len())
    }
}

/// Reads the NDJSON stream line by line into a [`ChurnSet`], scoring test rows with `current`.
#[derive(Debug)]
pub struct ChurnSetReader<'m> {
    pending: Vec<u8>,
    header: Option<TrainingSetHeader>,
    evaluation: NaiveDate,
    weeks: usize,
    current: Option<&'m ServedChurnModel>,
    gate_buffer: Vec<TrainingRow>,
    current_scores: Result<Vec<f64>, String>,
    earlier: Vec<Row>,
    test: Vec<Row>,
    trailer: Option<(u64, String)>,
    rows_seen: u64,
}

impl<'m> ChurnSetReader<'m> {
    /// A reader for a set whose last cut-off is `evaluation`, keeping `weeks` recent weeks.
    #[must_use]
    pub fn new(evaluation: NaiveDate, weeks: usize, current: Option<&'m ServedChurnModel>) -> Self {
        Self {
            pending: Vec::new(),
            header: None,
            evaluation,
            weeks,
            current,
            gate_buffer: Vec::new(),
            current_scores: if current.is_some() {
                Ok(Vec::new())
            } else {
                Err("no current model".into())
            },
            earlier: Vec::new(),
            test: Vec::new(),
            trailer: None,
            rows_seen: 0,
        }
    }

    /// Feeds bytes; complete lines are parsed.
    ///
    /// # Errors
    /// A malformed line, a row before the header or after the trailer, an error line.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), ChurnJobError> {
        let bad = |m: String| ChurnJobError::TrainingSet(m);
        self.pending.extend_from_slice(bytes);
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if self.trailer.is_some() {
                return Err(bad("data after the trailer".into()));
            }
            let parsed: TrainingSetLine =
                serde_json::from_slice(line).map_err(|e| bad(format!("bad line: {e}")))?;
            match parsed {
                TrainingSetLine::Header(h) => {
                    if self.header.is_some() {
                        return Err(bad("second header".into()));
                    }
                    if h.sequence_channels.is_empty() || (h.sequence_weeks as usize) < self.weeks {
                        return Err(bad(format!(
                            "the set has {} weeks of {} channels; the model needs {} weeks",
                            h.sequence_weeks,
                            h.sequence_channels.len(),
                            self.weeks
                        )));
                    }
                    self.header = Some(h);
                }
                TrainingSetLine::Row(r) => self.row(r)?,
                TrainingSetLine::Trailer(t) => self.trailer = Some((t.rows, t.fingerprint)),
                TrainingSetLine::Error(e) => {
                    return Err(bad(format!(
                        "the feature store failed mid-stream: {} {}",
                        e.code.as_str(),
                        e.message
                    )));
                }
            }
        }
        Ok(())
    }

    fn row(&mut self, r: TrainingRow) -> Result<(), ChurnJobError> {
        let bad = |m: String| ChurnJobError::TrainingSet(m);
        let (width, weeks_sent, channels) = self
            .header
            .as_ref()
            .map(|h| {
                (
                    h.feature_names.len(),
                    h.sequence_weeks as usize,
                    h.sequence_channels.len(),
                )
            })
            .ok_or_else(|| bad("row before the header".into()))?;
        self.rows_seen += 1;
        let seq = r
            .sequence
            .as_deref()
            .ok_or_else(|| bad(format!("row of {} has no sequence", r.account_id)))?;
        if r.features.len() != width || seq.len() != weeks_sent {
            return Err(bad(format!(
                "row of {} does not fit the header's widths",
                r.account_id
            )));
        }
        let sequence = churn_serving::recent_first(seq, self.weeks, channels)
            .map_err(|e| bad(format!("row of {}: {e}", r.account_id)))?;
        let row = Row {
            account_id: r.account_id.to_string(),
            example: SequenceExample {
                sequence,
                category: r
                    .attributes
                    .get(CATEGORY_ATTRIBUTE)
                    .cloned()
                    .unwrap_or_else(|| MISSING_CATEGORY.to_owned()),
                aggregates: r.features.clone(),
                churned: r.churned,
            },
        };
        if r.cutoff == self.evaluation {
            self.test.push(row);
            if self.current.is_some() && self.current_scores.is_ok() {
                self.gate_buffer.push(r);
                if self.gate_buffer.len() >= GATE_BATCH {
                    self.flush_gate();
                }
            }
        } else {
            self.earlier.push(row);
        }
        Ok(())
    }

    /// Scores the buffered test rows with the current model.
    fn flush_gate(&mut self) {
        let rows = std::mem::take(&mut self.gate_buffer);
        let (Some(model), Ok(scores)) = (self.current, self.current_scores.as_mut()) else {
            return;
        };
        let names = self
            .header
            .as_ref()
            .map(|h| h.feature_names.as_slice())
            .unwrap_or_default();
        if model.feature_names() != names {
            self.current_scores = Err(format!(
                "the current model {} reads other features",
                model.version()
            ));
            return;
        }
        let result: Result<Vec<f64>, sextant_models::ModelError> = match model {
            ServedChurnModel::Mlp(m) => rows.iter().map(|r| m.predict(&r.features)).collect(),
            ServedChurnModel::Sequence(m) => {
                let empty: Vec<Vec<f64>> = Vec::new();
                let inputs: Vec<CustomerInput<'_>> = rows
                    .iter()
                    .map(|r| CustomerInput {
                        features: &r.features,
                        sequence: r.sequence.as_deref().unwrap_or(&empty),
                        category: r.attributes.get(&m.category_attribute).map(String::as_str),
                    })
                    .collect();
                m.score_batch(&inputs, 2)
            }
        };
        match result {
            Ok(s) => scores.extend(s),
            Err(e) => {
                self.current_scores = Err(format!(
                    "the current model {} cannot score this set: {e}",
                    model.version()
                ));
            }
        }
    }

    /// The set, once the trailer has arrived and its row count matches.
    ///
    /// # Errors
    /// A stream without header or trailer, or whose count differs.
    pub fn finish(mut self) -> Result<ChurnSet, ChurnJobError> {
        let bad = |m: String| ChurnJobError::TrainingSet(m);
        self.flush_gate();
        let header = self.header.ok_or_else(|| bad("no header".into()))?;
        let (rows, fingerprint) = self
            .trailer
            .ok_or_else(|| bad("the stream ended without its trailer (truncated)".into()))?;
        if rows != self.rows_seen {
            return Err(bad(format!(
                "the trailer says {rows} rows, {} arrived",
                self.rows_seen
            )));
        }
        Ok(ChurnSet {
            header,
            evaluation: self.evaluation,
            earlier: self.earlier,
            test: self.test,
            current_scores: self.current_scores,
            fingerprint,
        })
    }
}

/// Streams the training set of `request` from the feature store.
///
/// # Errors
/// [`ChurnJobError::TrainingSet`] when the store is unreachable, refuses, or the stream is bad.
pub async fn fetch(
    http: &sextant_service_kit::internal_auth::InternalClient,
    feature_store_url: &str,
    request: &TrainingSetRequest,
    weeks: usize,
    current: Option<&ServedChurnModel>,
) -> Result<ChurnSet, ChurnJobError> {
    let bad = |m: String| ChurnJobError::TrainingSet(m);
    let evaluation = request
        .cutoffs
        .iter()
        .max()
        .copied()
        .ok_or_else(|| bad("no cut-off".into()))?;
    let mut resp = http
        .post(format!("{feature_store_url}/v1/training-sets"))
        .json(request)
        .send()
        .await
        .map_err(|e| bad(format!("feature store unreachable: {e}")))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(bad(format!("feature store answered {status}: {body}")));
    }
    let mut reader = ChurnSetReader::new(evaluation, weeks, current);
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| bad(format!("feature store stream: {e}")))?
    {
        reader.push(&chunk)?;
    }
    reader.finish()
}

/// The model trained by [`train`], with what the registry and the gate need.
#[derive(Debug, Clone)]
pub struct TrainedChurn {
    pub publication: Publication<Churn>,
    pub metrics: ModelMetrics,
    pub config: BTreeMap<String, serde_json::Value>,
    /// The current model's AUC on the same test rows, or why it could not be measured.
    pub current_auc: Result<f64, String>,
}

fn check(name: &str, rows: &[Row], least: usize) -> Result<(), ChurnJobError> {
    let positives = rows.iter().filter(|r| r.example.churned).count();
    if rows.len() < least || positives == 0 || positives == rows.len() {
        return Err(ChurnJobError::InsufficientData(format!(
            "the {name} part has {} rows ({positives} churned); it needs at least {least} and both classes",
            rows.len()
        )));
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

/// Trains the sequence model on `set` (see the module docs), reporting `(epoch, loss)`.
///
/// # Errors
/// [`ChurnJobError::InsufficientData`] when a part is too small or has one class; training errors.
pub fn train<B: AutodiffBackend>(
    set: ChurnSet,
    config: &ChurnJobConfig,
    version: ModelVersion,
    device: &B::Device,
    mut progress: impl FnMut(u32, f64),
) -> Result<TrainedChurn, ChurnJobError> {
    let ChurnSet {
        header,
        evaluation,
        earlier,
        test,
        current_scores,
        fingerprint,
    } = set;
    let (valid_rows, train_rows): (Vec<Row>, Vec<Row>) =
        earlier.into_iter().partition(|r| is_test(&r.account_id));
    check("training", &train_rows, 20)?;
    check("validation", &valid_rows, 5)?;
    check("out-of-time test", &test, 5)?;
    let width = header.feature_names.len();
    // Features that go negative in training (trends) also enter as their negative part.
    let signed: Vec<usize> = (0..width)
        .filter(|&i| train_rows.iter().any(|r| r.example.aggregates[i] < 0.0))
        .collect();
    let reference = Reference {
        feature_typical: (0..width)
            .map(|i| median(train_rows.iter().map(|r| r.example.aggregates[i]).collect()))
            .collect(),
        week_blocks: week_blocks(&train_rows, config.weeks, header.sequence_channels.len()),
    };
    let extend = |rows: Vec<Row>| -> Vec<SequenceExample> {
        rows.into_iter()
            .map(|mut r| {
                r.example.aggregates =
                    churn_serving::network_aggregates(&r.example.aggregates, &signed);
                r.example
            })
            .collect()
    };
    let n_train = train_rows.len() + valid_rows.len();
    let train_set = extend(train_rows);
    let valid_set = extend(valid_rows);
    let test_set = extend(test);
    let layout = SetLayout {
        weeks: config.weeks,
        channel_names: header.sequence_channels.clone(),
        aggregate_names: network_aggregate_names(&header.feature_names, &signed),
    };
    let net = SequenceTrainConfig {
        max_epochs: config.max_epochs as usize,
        ..config.net.clone()
    };
    let trained = sequence_model::train::<B>(&layout, &train_set, &valid_set, &net, device, |r| {
        progress(r.epoch as u32, r.train_loss);
    })
    .map_err(|e| match e {
        sequence_model::SequenceTrainError::InsufficientData(m) => {
            ChurnJobError::InsufficientData(m)
        }
        other => ChurnJobError::Training(other.to_string()),
    })?;
    let network = trained.artifact;
    let score = |rows: &[SequenceExample]| {
        sequence_model::score(&network, rows, net.threads)
            .map_err(|e| ChurnJobError::Training(e.to_string()))
    };
    let train_scores = score(&train_set)?;
    let test_scores = score(&test_set)?;
    let labels: Vec<bool> = test_set.iter().map(|e| e.churned).collect();
    let auc = roc_auc(&test_scores, &labels)
        .ok_or_else(|| ChurnJobError::InsufficientData("the test part has one class".into()))?;
    let current_auc = current_scores.and_then(|s| {
        if s.len() == labels.len() {
            roc_auc(&s, &labels).ok_or_else(|| "one class".to_owned())
        } else {
            Err(format!("scored {} of {} rows", s.len(), labels.len()))
        }
    });
    let metrics = ModelMetrics {
        auc,
        accuracy: accuracy(&test_scores, &labels, 0.5),
        log_loss: log_loss(&test_scores, &labels),
        base_rate: labels.iter().filter(|l| **l).count() as f64 / labels.len() as f64,
        n_train: n_train as u64,
        n_test: labels.len() as u64,
    };
    let bands = fit_bands(&train_scores);
    let artifact = SequenceChurnArtifact {
        kind: SEQUENCE_KIND.to_owned(),
        version,
        feature_set: header.feature_set.clone(),
        feature_names: header.feature_names.clone(),
        sequence_channels: header.sequence_channels.clone(),
        sequence_weeks: header.sequence_weeks as usize,
        category_attribute: CATEGORY_ATTRIBUTE.to_owned(),
        signed_features: signed.clone(),
        horizon_days: header.horizon_days,
        bands: bands.clone(),
        reference,
        network,
    };
    artifact
        .validate()
        .map_err(|e| ChurnJobError::Training(format!("exported artefact: {e}")))?;
    let training_cutoffs: Vec<NaiveDate> = header
        .cutoffs
        .iter()
        .copied()
        .filter(|c| *c != evaluation)
        .collect();
    let config_json = BTreeMap::from([
        ("model".to_owned(), json!(SEQUENCE_KIND)),
        (
            "architecture".to_owned(),
            json!(format!(
                "GRU({}) over {} weeks × {} channels + {}-d embedding of {} + dense({}) on {} aggregates → dense({}) → logit",
                net.hidden,
                config.weeks,
                header.sequence_channels.len(),
                net.embedding_dim,
                CATEGORY_ATTRIBUTE,
                net.aggregate_dim,
                layout.aggregate_names.len(),
                net.head_dim
            )),
        ),
        ("weeks".to_owned(), json!(config.weeks)),
        ("hidden".to_owned(), json!(net.hidden)),
        ("max_epochs".to_owned(), json!(net.max_epochs)),
        ("epochs_run".to_owned(), json!(trained.history.len())),
        ("best_epoch".to_owned(), json!(trained.best_epoch)),
        (
            "stacking".to_owned(),
            json!(trained.stack.map(|[deep, wide, bias]| json!({
                "deep": deep,
                "wide": wide,
                "bias": bias,
                "fitted_on": "the validation accounts, scored by the network selected on the training accounts",
            }))),
        ),
        ("rank_weight".to_owned(), json!(net.rank_weight)),
        ("patience".to_owned(), json!(net.patience)),
        ("batch_size".to_owned(), json!(net.batch_size)),
        ("learning_rate".to_owned(), json!(net.learning_rate)),
        (
            "optimizer".to_owned(),
            json!("adam, gradient norm clipped at 1"),
        ),
        ("seed".to_owned(), json!(net.seed)),
        ("evaluation_cutoff".to_owned(), json!(evaluation)),
        ("training_cutoffs".to_owned(), json!(training_cutoffs)),
        ("cutoffs".to_owned(), json!(header.cutoffs)),
        ("horizon_days".to_owned(), json!(header.horizon_days)),
        ("feature_set".to_owned(), json!(header.feature_set)),
        (
            "signed_features".to_owned(),
            json!(
                signed
                    .iter()
                    .map(|&i| &header.feature_names[i])
                    .collect::<Vec<_>>()
            ),
        ),
        ("training_set_fingerprint".to_owned(), json!(fingerprint)),
        ("training_rows".to_owned(), json!(n_train + labels.len())),
        (
            "validation".to_owned(),
            json!(format!(
                "out of time: trained on cut-offs up to {}, tested on {evaluation}; early stopping on accounts with fnv1a64(id) % 5 == 0 of the training cut-offs",
                training_cutoffs
                    .last()
                    .map_or_else(String::new, ToString::to_string)
            )),
        ),
        (
            "bands".to_owned(),
            json!({"rule": "quantiles of the training rows' scores: high ≥ p80, medium ≥ p50", "thresholds": bands}),
        ),
        (
            "explanations".to_owned(),
            json!(
                "occlusion: one feature (to its training median) or one block of weeks (to the mean training week) at a time; top 3 by |score change|"
            ),
        ),
        ("backend".to_owned(), json!(std::any::type_name::<B>())),
    ]);
    Ok(TrainedChurn {
        publication: churn_publication(
            ServedChurnModel::Sequence(Box::new(artifact)),
            auc,
            &roc_curve(&test_scores, &labels),
            &trained
                .history
                .iter()
                .map(|r| r.train_loss)
                .collect::<Vec<_>>(),
        ),
        metrics,
        config: config_json,
        current_auc,
    })
}

/// The blocks of [`WEEK_BLOCKS`] inside `weeks`, with the mean training week of each.
fn week_blocks(rows: &[Row], weeks: usize, channels: usize) -> Vec<WeekBlock> {
    WEEK_BLOCKS
        .iter()
        .filter(|(first, _)| *first < weeks)
        .map(|&(first, last)| {
            let last = last.min(weeks - 1);
            let mut typical_week = vec![0.0; channels];
            let n = (rows.len() * (last - first + 1)).max(1) as f64;
            for r in rows {
                for w in first..=last {
                    for (ch, t) in typical_week.iter_mut().enumerate() {
                        *t += r.example.sequence[w * channels + ch] / n;
                    }
                }
            }
            WeekBlock {
                name: format!("weeks_{}_{}", first + 1, last + 1),
                first,
                last,
                typical_week,
            }
        })
        .collect()
}

/// The churn promotion gate ([`crate::registry::gate`] on the out-of-time ROC-AUC), with both
/// AUCs recorded in the decision's own fields.
#[must_use]
pub fn gate(
    candidate_auc: f64,
    current: Option<&ModelVersion>,
    current_auc: &Result<f64, String>,
    evaluation: &str,
    decided_at: chrono::DateTime<chrono::Utc>,
) -> PromotionDecision {
    let mut decision = crate::registry::gate(
        "ROC-AUC",
        candidate_auc,
        current,
        current_auc,
        evaluation,
        decided_at,
    );
    decision.candidate_auc = Some(candidate_auc);
    decision.current_auc = current.and(current_auc.as_ref().ok().copied());
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_cutoffs_end_one_label_window_before_the_evaluation() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let c = cutoffs(d("2011-09-09"), 90, 30, 60);
        assert_eq!(
            c,
            vec![
                d("2011-04-12"),
                d("2011-05-12"),
                d("2011-06-11"),
                d("2011-09-09")
            ]
        );
        assert_eq!(cutoffs(d("2011-09-09"), 90, 30, 0).len(), 2);
    }

    #[test]
    fn the_gate_promotes_only_a_model_at_least_as_good_as_the_current_one() {
        let now = chrono::Utc::now();
        let v1 = ModelVersion::parse("churn-v1").expect("v");
        let first = gate(0.6, None, &Err("no current model".into()), "e", now);
        assert!(first.promoted && first.compared_with.is_none());
        let better = gate(0.72, Some(&v1), &Ok(0.70), "e", now);
        assert!(better.promoted, "{}", better.reason);
        assert_eq!(better.current_auc, Some(0.70));
        let tie = gate(0.70, Some(&v1), &Ok(0.70), "e", now);
        assert!(tie.promoted, "at least as good");
        let worse = gate(0.69, Some(&v1), &Ok(0.70), "e", now);
        assert!(!worse.promoted);
        assert!(
            worse.reason.contains("churn-v1") && worse.reason.contains("0.6900"),
            "{}",
            worse.reason
        );
        let incomparable = gate(
            0.6,
            Some(&v1),
            &Err("reads other features".into()),
            "e",
            now,
        );
        assert!(incomparable.promoted && incomparable.reason.contains("reads other features"));
    }

    #[test]
    fn medians() {
        assert!((median(vec![3.0, 1.0, 2.0]) - 2.0).abs() < 1e-12);
        assert!((median(vec![4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-12);
        assert!(median(Vec::new()).abs() < 1e-12);
    }
}
