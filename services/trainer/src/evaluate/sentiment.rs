//! `sextant evaluate sentiment --data FILE`: the sentiment model of support text against its
//! baselines on sentences with human intensity ratings (the VADER Amazon snippets format).
//!
//! Format: no header; one sentence per line, `id<TAB>mean rating (−4 … 4)<TAB>text` (CRLF or
//! LF). The 3-class gold label is `mean / 4` against ±0.05 (`ml-anchors.md` §1). A rating may
//! also be a class word, `negative`, `neutral` or `positive` (read as −4, 0 and 4), for labelled
//! support text that carries classes rather than ratings.
//!
//! Protocol (`ml-anchors.md` §1, §2e): row i (0-based) goes to half `i mod 2`; train on one half,
//! test on the other, both ways; figures are the mean of the two halves. Within a training half,
//! every fifth row (position `k mod 5 == 4`) is an inner validation set that picks the
//! hyper-parameters — the model's width and epochs, the baseline's `C` — and the chosen setting
//! is then refitted on the whole half. The test half is touched once, at the end. Training is
//! seeded; the same seed gives the same figures.
//!
//! Metrics (model and baselines alike): `weighted_f1` (the headline), `micro_f1`, `macro_f1`,
//! and `pearson_r` of a predicted intensity against `mean / 4`. The model predicts the intensity
//! directly; the TF-IDF baseline's intensity is `P(positive) − P(negative)`; the lexicon's is
//! VADER's compound. Baseline: TF-IDF (1–2-grams, sublinear tf) + logistic regression
//! (anchor weighted F1 0.6406); `baseline.metrics.vader_lexicon` holds the lexicon scorer
//! (anchor 0.6079 on all rows).

mod baseline;

use std::io::BufRead;
use std::path::Path;

use burn::backend::{Autodiff, Flex};
use serde_json::{Map, Value, json};
use sextant_models::sentiment::metrics::{f1_scores, pearson};
use sextant_models::sentiment::{
    EncodedText, FeatureConfig, Lexicon, SentimentArtifact, SentimentClass, encode,
};

use super::{Baseline, EvalError, EvalOptions, Evaluation, Task};
use crate::sentiment::{SentimentConfig, TrainingData, train};
use baseline::{Logistic, SparseRow, Tfidf};

type B = Autodiff<Flex>;

/// The fewest rows the protocol can run on (each training half keeps an inner validation fifth).
const MIN_ROWS: usize = 40;

/// One rated sentence.
#[derive(Debug, Clone)]
struct Row {
    /// Mean rating divided by 4: `[-1, 1]`.
    intensity: f64,
    text: String,
}

impl Row {
    fn class(&self) -> usize {
        SentimentClass::from_intensity(self.intensity).index()
    }
}

fn bad_row(path: &Path, line: usize, message: impl Into<String>) -> EvalError {
    EvalError::BadRow {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// Reads `id<TAB>mean<TAB>text` lines; blank lines are skipped.
fn read_rows(path: &Path) -> Result<Vec<Row>, EvalError> {
    let file = std::fs::File::open(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rows = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_no = n + 1;
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => bad_row(path, line_no, "not UTF-8 text"),
            _ => EvalError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.splitn(3, '\t').collect();
        let [_id, mean, text] = fields[..] else {
            return Err(bad_row(
                path,
                line_no,
                format!(
                    "expected 3 tab-separated fields (id, mean rating -4..4, text), found {}",
                    fields.len()
                ),
            ));
        };
        let mean: f64 = match mean.trim().to_ascii_lowercase().as_str() {
            // Labelled support text often carries a class, not a rating: the class's end of
            // the scale (neutral is 0), so the label and the intensity target agree.
            "negative" => -4.0,
            "neutral" => 0.0,
            "positive" => 4.0,
            other => other.parse().map_err(|_| {
                bad_row(
                    path,
                    line_no,
                    format!(
                        "rating `{mean}` is neither a number (-4..4) nor negative, neutral or positive"
                    ),
                )
            })?,
        };
        if !mean.is_finite() || !(-4.0..=4.0).contains(&mean) {
            return Err(bad_row(
                path,
                line_no,
                format!("mean rating {mean} is outside -4..4"),
            ));
        }
        if text.trim().is_empty() {
            return Err(bad_row(path, line_no, "empty text"));
        }
        rows.push(Row {
            intensity: mean / 4.0,
            text: text.to_owned(),
        });
    }
    if rows.is_empty() {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(rows)
}

/// Scores of one prediction set on one test half.
#[derive(Debug, Clone, Copy, Default)]
struct Scores {
    weighted_f1: f64,
    micro_f1: f64,
    macro_f1: f64,
    pearson_r: f64,
}

impl Scores {
    fn of(truth: &[usize], predicted: &[usize], gold: &[f64], intensity: &[f64]) -> Self {
        let f = f1_scores(truth, predicted, 3);
        Self {
            weighted_f1: f.as_ref().map_or(0.0, |f| f.weighted),
            micro_f1: f.as_ref().map_or(0.0, |f| f.micro),
            macro_f1: f.as_ref().map_or(0.0, |f| f.macro_),
            pearson_r: pearson(gold, intensity).unwrap_or(0.0),
        }
    }

    fn mean(a: &Self, b: &Self) -> Self {
        Self {
            weighted_f1: (a.weighted_f1 + b.weighted_f1) / 2.0,
            micro_f1: (a.micro_f1 + b.micro_f1) / 2.0,
            macro_f1: (a.macro_f1 + b.macro_f1) / 2.0,
            pearson_r: (a.pearson_r + b.pearson_r) / 2.0,
        }
    }

    fn json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("weighted_f1".into(), json!(self.weighted_f1));
        m.insert("micro_f1".into(), json!(self.micro_f1));
        m.insert("macro_f1".into(), json!(self.macro_f1));
        m.insert("pearson_r".into(), json!(self.pearson_r));
        m
    }
}

/// The model settings the inner validation chooses among (epochs are chosen per setting).
fn candidates(seed: u64) -> Vec<SentimentConfig> {
    let base = SentimentConfig {
        features: FeatureConfig::default(),
        dim: 16,
        hidden: 0,
        epochs: MAX_EPOCHS,
        batch_size: 32,
        learning_rate: 0.01,
        intensity_weight: 1.0,
        seed,
    };
    vec![base.clone(), SentimentConfig { hidden: 32, ..base }]
}

/// Upper bound of the epochs the inner validation tries.
const MAX_EPOCHS: usize = 12;
/// Stop trying more epochs after this many without a better validation score.
const PATIENCE: usize = 3;
/// The baseline's inverse regularisation strengths tried by inner validation.
const BASELINE_C: [f64; 3] = [1.0, 4.0, 16.0];
/// L-BFGS iterations of the baseline.
const BASELINE_ITER: usize = 300;

fn argmax(p: &[f64]) -> usize {
    (0..p.len()).fold(0, |b, c| if p[c] > p[b] { c } else { b })
}

/// The model's classes and intensities on `texts` (the serving path's plain-Rust forward pass).
fn model_predictions(
    artifact: &SentimentArtifact,
    texts: &[&EncodedText],
) -> Result<(Vec<usize>, Vec<f64>), EvalError> {
    Ok(artifact
        .predict_encoded_many(texts)
        .map_err(|e| model_error(&e))?
        .into_iter()
        .map(|s| (s.label.index(), s.intensity))
        .unzip())
}

fn model_error(e: &dyn std::fmt::Display) -> EvalError {
    EvalError::Model {
        task: Task::Sentiment.name().into(),
        message: e.to_string(),
    }
}

/// The inner split of a training half: position `k mod 5 == 4` validates, the rest trains.
fn inner_split(train_idx: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut train = Vec::with_capacity(train_idx.len());
    let mut validation = Vec::with_capacity(train_idx.len() / 5 + 1);
    for (k, &i) in train_idx.iter().enumerate() {
        if k % 5 == 4 {
            validation.push(i);
        } else {
            train.push(i);
        }
    }
    (train, validation)
}

/// What the inner validation chose for one training half, and the model refitted with it.
struct Fitted {
    artifact: SentimentArtifact,
    config: SentimentConfig,
    inner_f1: f64,
}

/// Chooses a setting and its epochs on the inner split of `train_idx`, refits on all of it.
fn fit_model(
    rows: &[Row],
    encoded: &[EncodedText],
    train_idx: &[usize],
    options: &EvalOptions,
) -> Result<Fitted, EvalError> {
    let (inner_train, inner_val) = inner_split(train_idx);
    let device = Default::default();
    let val_texts: Vec<EncodedText> = inner_val.iter().map(|&i| encoded[i].clone()).collect();
    let val_truth: Vec<usize> = inner_val.iter().map(|&i| rows[i].class()).collect();
    let (texts, labels, intensities) = training_arrays(rows, encoded, &inner_train);
    let mut best: Option<(f64, SentimentConfig)> = None;
    for candidate in candidates(options.seed) {
        let mut best_epoch = (f64::NEG_INFINITY, 0usize);
        train::<B>(
            TrainingData {
                texts: &texts,
                labels: &labels,
                intensities: &intensities,
            },
            &candidate,
            "sentiment-inner",
            &device,
            &val_texts,
            |epoch, outputs| {
                let pred: Vec<usize> = outputs
                    .iter()
                    .map(|o| argmax(&[f64::from(o[0]), f64::from(o[1]), f64::from(o[2])]))
                    .collect();
                let f = f1_scores(&val_truth, &pred, 3).map_or(0.0, |f| f.weighted);
                if f > best_epoch.0 {
                    best_epoch = (f, epoch);
                }
                epoch < best_epoch.1 + PATIENCE
            },
        )
        .map_err(|e| model_error(&e))?;
        if options.progress {
            eprintln!(
                "sentiment: dim {} hidden {}: inner validation weighted F1 {:.4} at epoch {}",
                candidate.dim, candidate.hidden, best_epoch.0, best_epoch.1
            );
        }
        let chosen = SentimentConfig {
            epochs: best_epoch.1.max(1),
            ..candidate
        };
        if best.as_ref().is_none_or(|(f, _)| best_epoch.0 > *f) {
            best = Some((best_epoch.0, chosen));
        }
    }
    let Some((inner_f1, config)) = best else {
        return Err(model_error(&"no model setting to try"));
    };
    let (texts, labels, intensities) = training_arrays(rows, encoded, train_idx);
    let artifact = train::<B>(
        TrainingData {
            texts: &texts,
            labels: &labels,
            intensities: &intensities,
        },
        &config,
        "sentiment-eval",
        &device,
        &[],
        |_, _| true,
    )
    .map_err(|e| model_error(&e))?;
    Ok(Fitted {
        artifact,
        config,
        inner_f1,
    })
}

fn training_arrays(
    rows: &[Row],
    encoded: &[EncodedText],
    idx: &[usize],
) -> (Vec<EncodedText>, Vec<usize>, Vec<f32>) {
    (
        idx.iter().map(|&i| encoded[i].clone()).collect(),
        idx.iter().map(|&i| rows[i].class()).collect(),
        idx.iter().map(|&i| rows[i].intensity as f32).collect(),
    )
}

/// TF-IDF + logistic regression with `C` chosen on the inner split; returns classes,
/// intensities (`P(pos) − P(neg)`) on `test_idx`, and the chosen `C`.
fn fit_baseline(
    rows: &[Row],
    train_idx: &[usize],
    test_idx: &[usize],
) -> (Vec<usize>, Vec<f64>, f64) {
    let fit = |idx: &[usize], c: f64| {
        let texts: Vec<&str> = idx.iter().map(|&i| rows[i].text.as_str()).collect();
        let tfidf = Tfidf::fit(&texts);
        let x: Vec<SparseRow> = texts.iter().map(|t| tfidf.transform(t)).collect();
        let y: Vec<usize> = idx.iter().map(|&i| rows[i].class()).collect();
        let lr = Logistic::fit(&x, &y, 3, tfidf.width(), c, BASELINE_ITER);
        (tfidf, lr)
    };
    let predict = |tfidf: &Tfidf, lr: &Logistic, idx: &[usize]| -> (Vec<usize>, Vec<f64>) {
        idx.iter()
            .map(|&i| {
                let p = lr.probabilities(&tfidf.transform(&rows[i].text));
                (argmax(&p), p[2] - p[0])
            })
            .unzip()
    };
    let (inner_train, inner_val) = inner_split(train_idx);
    let val_truth: Vec<usize> = inner_val.iter().map(|&i| rows[i].class()).collect();
    let mut best = (f64::NEG_INFINITY, BASELINE_C[0]);
    for c in BASELINE_C {
        let (tfidf, lr) = fit(&inner_train, c);
        let (pred, _) = predict(&tfidf, &lr, &inner_val);
        let f = f1_scores(&val_truth, &pred, 3).map_or(0.0, |f| f.weighted);
        if f > best.0 {
            best = (f, c);
        }
    }
    let (tfidf, lr) = fit(train_idx, best.1);
    let (classes, intensities) = predict(&tfidf, &lr, test_idx);
    (classes, intensities, best.1)
}

/// Trains the deployable model on **every** labelled row of `data` (same format and checks as
/// [`evaluate`]; setting and epochs chosen on the same inner split the protocol uses), for the
/// feature store's `sentiment_model_url`. Its version names the data and seed
/// (`sentiment-<FNV-1a 64 of the file's bytes, 16 hex>-s<seed>`: a name, not a security
/// digest), so the store's per-case record says which model judged a case.
///
/// # Errors
/// Those of [`evaluate`] for a bad file; [`EvalError::Model`] when training fails.
pub fn train_deployable(
    data: &Path,
    options: &EvalOptions,
) -> Result<SentimentArtifact, EvalError> {
    let rows = read_rows(data)?;
    let mut classes: Vec<usize> = rows.iter().map(Row::class).collect();
    classes.sort_unstable();
    classes.dedup();
    if rows.len() < MIN_ROWS || classes.len() < 2 {
        return Err(EvalError::Unusable {
            path: data.to_path_buf(),
            message: format!(
                "{} rows in {} classes; a model needs at least {MIN_ROWS} rows and two classes",
                rows.len(),
                classes.len()
            ),
        });
    }
    let bytes = std::fs::read(data).map_err(|e| EvalError::Unusable {
        path: data.to_path_buf(),
        message: e.to_string(),
    })?;
    let fnv = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let hex = format!("{fnv:016x}");
    let lexicon = Lexicon::vader().map_err(|e| model_error(&e))?;
    let features = FeatureConfig::default();
    let encoded: Vec<EncodedText> = rows
        .iter()
        .map(|r| encode(&r.text, &features, lexicon))
        .collect();
    let all: Vec<usize> = (0..rows.len()).collect();
    let mut artifact = fit_model(&rows, &encoded, &all, options)?.artifact;
    artifact.version = format!("sentiment-{hex}-s{}", options.seed);
    artifact.validate().map_err(|e| model_error(&e))?;
    Ok(artifact)
}

/// The registry job's split: row `i` is held out when `i mod 5 == 4`. Refused unless there are
/// enough rows and two classes on each side.
fn held_out_split(data: &Path, rows: &[Row]) -> Result<(Vec<usize>, Vec<usize>), EvalError> {
    let test_idx: Vec<usize> = (0..rows.len()).filter(|i| i % 5 == 4).collect();
    let train_idx: Vec<usize> = (0..rows.len()).filter(|i| i % 5 != 4).collect();
    let distinct = |idx: &[usize]| {
        let mut c: Vec<usize> = idx.iter().map(|&i| rows[i].class()).collect();
        c.sort_unstable();
        c.dedup();
        c.len()
    };
    if rows.len() < MIN_ROWS || distinct(&train_idx) < 2 || distinct(&test_idx) < 2 {
        return Err(EvalError::Unusable {
            path: data.to_path_buf(),
            message: format!(
                "{} rows; a model needs at least {MIN_ROWS}, with two classes among the training \
                 rows and among the held-out rows (every fifth)",
                rows.len()
            ),
        });
    }
    Ok((train_idx, test_idx))
}

/// Checks labelled text for [`train_held_out`] without training: every row parses and the
/// held-out split is usable. Returns the number of rows.
///
/// # Errors
/// The first bad row (with its line), an empty file, or an unusable split.
pub fn check_labelled(data: &Path) -> Result<usize, EvalError> {
    let rows = read_rows(data)?;
    held_out_split(data, &rows)?;
    Ok(rows.len())
}

/// A model trained for the registry by [`train_held_out`], with its evaluation.
#[derive(Debug, Clone)]
pub struct HeldOutModel {
    /// Trained on the training rows; `version` is left for the registry to set.
    pub artifact: SentimentArtifact,
    /// Held-out figures: `weighted_f1`, `micro_f1`, `macro_f1`, `pearson_r`, and the same for the
    /// TF-IDF baseline (`baseline_…`) and the lexicon (`lexicon_…`) on the same rows.
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// The chosen setting and the protocol.
    pub config: std::collections::BTreeMap<String, Value>,
    /// Held-out confusion matrix, `[truth][predicted]`, classes negative, neutral, positive.
    pub confusion: [[usize; 3]; 3],
    /// The current model's weighted F1 on the same held-out rows, or why it could not be
    /// measured; `None` when there is no current model.
    pub current_f1: Option<Result<f64, String>>,
    /// Held-out rows.
    pub n_test: usize,
}

/// The registry job's protocol: row `i` with `i mod 5 == 4` is held out, the model (setting and
/// epochs chosen by inner validation on the other rows, as in [`evaluate`]) is trained on the
/// rest and measured on the held-out rows next to the TF-IDF baseline, the lexicon, and
/// `current` (the model being served), all on the same rows. The model that was measured is the
/// one stored: what the gate compares is what would be served.
///
/// # Errors
/// Those of [`evaluate`]: a bad file, too few rows, a training part or held-out part with a
/// single class, a model that failed to train.
pub fn train_held_out(
    data: &Path,
    options: &EvalOptions,
    current: Option<&SentimentArtifact>,
) -> Result<HeldOutModel, EvalError> {
    let rows = read_rows(data)?;
    let (train_idx, test_idx) = held_out_split(data, &rows)?;
    let lexicon = Lexicon::vader().map_err(|e| model_error(&e))?;
    let features = FeatureConfig::default();
    let encoded: Vec<EncodedText> = rows
        .iter()
        .map(|r| encode(&r.text, &features, lexicon))
        .collect();
    let truth: Vec<usize> = test_idx.iter().map(|&i| rows[i].class()).collect();
    let gold: Vec<f64> = test_idx.iter().map(|&i| rows[i].intensity).collect();
    let test_texts: Vec<&EncodedText> = test_idx.iter().map(|&i| &encoded[i]).collect();

    let fitted = fit_model(&rows, &encoded, &train_idx, options)?;
    let (pred, intensity) = model_predictions(&fitted.artifact, &test_texts)?;
    let model = Scores::of(&truth, &pred, &gold, &intensity);
    let (b_pred, b_intensity, c) = fit_baseline(&rows, &train_idx, &test_idx);
    let baseline = Scores::of(&truth, &b_pred, &gold, &b_intensity);
    let compound: Vec<f64> = test_texts.iter().map(|e| e.vader.compound).collect();
    let v_pred: Vec<usize> = compound
        .iter()
        .map(|c| SentimentClass::from_intensity(*c).index())
        .collect();
    let vader = Scores::of(&truth, &v_pred, &gold, &compound);
    let current_f1 = current.map(|a| {
        a.validate()
            .map_err(|e| format!("the current model does not load: {e}"))
            .and_then(|()| model_predictions(a, &test_texts).map_err(|e| e.to_string()))
            .and_then(|(p, _)| {
                f1_scores(&truth, &p, 3)
                    .map(|f| f.weighted)
                    .ok_or_else(|| "no F1 on the held-out rows".to_owned())
            })
    });

    let mut confusion = [[0usize; 3]; 3];
    for (t, p) in truth.iter().zip(&pred) {
        confusion[*t][*p] += 1;
    }
    let mut metrics = std::collections::BTreeMap::new();
    for (prefix, scores) in [("", &model), ("baseline_", &baseline), ("lexicon_", &vader)] {
        for (k, v) in scores.json() {
            if let Some(v) = v.as_f64() {
                metrics.insert(format!("{prefix}{k}"), v);
            }
        }
    }
    let config = [
        ("seed", json!(options.seed)),
        ("dim", json!(fitted.config.dim)),
        ("hidden", json!(fitted.config.hidden)),
        ("epochs", json!(fitted.config.epochs)),
        ("learning_rate", json!(fitted.config.learning_rate)),
        ("inner_validation_weighted_f1", json!(fitted.inner_f1)),
        ("embedding_rows", json!(fitted.artifact.rows.len())),
        ("feature_scheme", json!(fitted.artifact.features.scheme)),
        (
            "baseline",
            json!(format!("TF-IDF (1-2-grams) + logistic regression, C = {c}")),
        ),
        ("n_train", json!(train_idx.len())),
        ("n_test", json!(test_idx.len())),
        (
            "protocol",
            json!(
                "row i held out when i mod 5 == 4; setting and epochs by inner validation on the \
                 rest (every fifth training row); label = rating/4 vs ±0.05; the measured model is \
                 the stored one"
            ),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Ok(HeldOutModel {
        artifact: fitted.artifact,
        metrics,
        config,
        confusion,
        current_f1,
        n_test: test_idx.len(),
    })
}

/// Runs the sentiment protocol on `data`.
///
/// # Errors
/// See [`EvalError`]: unreadable file, no rows, a malformed row, too few rows or a training
/// half with a single class, or a model that failed to train.
pub fn evaluate(data: &Path, options: &EvalOptions) -> Result<Evaluation, EvalError> {
    let rows = read_rows(data)?;
    if rows.len() < MIN_ROWS {
        return Err(EvalError::Unusable {
            path: data.to_path_buf(),
            message: format!(
                "{} rows; the two-half protocol with inner validation needs at least {MIN_ROWS}",
                rows.len()
            ),
        });
    }
    for half in 0..2 {
        let mut classes: Vec<usize> = (0..rows.len())
            .filter(|i| i % 2 != half)
            .map(|i| rows[i].class())
            .collect();
        classes.sort_unstable();
        classes.dedup();
        if classes.len() < 2 {
            return Err(EvalError::Unusable {
                path: data.to_path_buf(),
                message: format!(
                    "the training half {} has only {} sentences (mean/4 vs ±0.05); need two classes",
                    1 - half,
                    classes
                        .first()
                        .map_or("no", |c| SentimentClass::ALL[*c].name())
                ),
            });
        }
    }
    let started = std::time::Instant::now();
    let lexicon = Lexicon::vader().map_err(|e| model_error(&e))?;
    let features = FeatureConfig::default();
    let encoded: Vec<EncodedText> = rows
        .iter()
        .map(|r| encode(&r.text, &features, lexicon))
        .collect();
    if options.progress {
        eprintln!(
            "sentiment: {} rows encoded in {:.1?}",
            rows.len(),
            started.elapsed()
        );
    }

    let mut model_halves = Vec::new();
    let mut tfidf_halves = Vec::new();
    let mut vader_halves = Vec::new();
    let mut notes = Vec::new();
    let mut per_half = Map::new();
    for half in 0..2usize {
        let test_idx: Vec<usize> = (0..rows.len()).filter(|i| i % 2 == half).collect();
        let train_idx: Vec<usize> = (0..rows.len()).filter(|i| i % 2 != half).collect();
        let truth: Vec<usize> = test_idx.iter().map(|&i| rows[i].class()).collect();
        let gold: Vec<f64> = test_idx.iter().map(|&i| rows[i].intensity).collect();
        if options.progress {
            eprintln!(
                "sentiment: half {half}: training on {} rows, testing on {}",
                train_idx.len(),
                test_idx.len()
            );
        }

        let started = std::time::Instant::now();
        let fitted = fit_model(&rows, &encoded, &train_idx, options)?;
        if options.progress {
            eprintln!(
                "sentiment: half {half}: model fitted in {:.1?}",
                started.elapsed()
            );
        }
        let test_texts: Vec<&EncodedText> = test_idx.iter().map(|&i| &encoded[i]).collect();
        let (pred, intensity) = model_predictions(&fitted.artifact, &test_texts)?;
        let model = Scores::of(&truth, &pred, &gold, &intensity);

        let started = std::time::Instant::now();
        let (b_pred, b_intensity, c) = fit_baseline(&rows, &train_idx, &test_idx);
        if options.progress {
            eprintln!(
                "sentiment: half {half}: baseline fitted in {:.1?}",
                started.elapsed()
            );
        }
        let tfidf = Scores::of(&truth, &b_pred, &gold, &b_intensity);

        let compound: Vec<f64> = test_idx
            .iter()
            .map(|&i| encoded[i].vader.compound)
            .collect();
        let v_pred: Vec<usize> = compound
            .iter()
            .map(|c| SentimentClass::from_intensity(*c).index())
            .collect();
        let vader = Scores::of(&truth, &v_pred, &gold, &compound);

        notes.push(format!(
            "test half {half}: model dim {} hidden {} epochs {} (inner validation weighted F1 {:.4}; {} embedding rows); TF-IDF C = {c}",
            fitted.config.dim,
            fitted.config.hidden,
            fitted.config.epochs,
            fitted.inner_f1,
            fitted.artifact.rows.len()
        ));
        let mut h = model.json();
        h.insert("n_test".into(), json!(test_idx.len()));
        h.insert("n_train".into(), json!(train_idx.len()));
        per_half.insert(format!("test_half_{half}"), Value::Object(h));
        model_halves.push(model);
        tfidf_halves.push(tfidf);
        vader_halves.push(vader);
    }

    let model = Scores::mean(&model_halves[0], &model_halves[1]);
    let tfidf = Scores::mean(&tfidf_halves[0], &tfidf_halves[1]);
    let vader = Scores::mean(&vader_halves[0], &vader_halves[1]);
    let mut metrics = model.json();
    metrics.insert("halves".into(), Value::Object(per_half));
    let mut baseline_metrics = tfidf.json();
    let mut v = vader.json();
    let all_truth: Vec<usize> = rows.iter().map(Row::class).collect();
    let all_pred: Vec<usize> = encoded
        .iter()
        .map(|e| SentimentClass::from_intensity(e.vader.compound).index())
        .collect();
    v.insert(
        "weighted_f1_all_rows".into(),
        json!(f1_scores(&all_truth, &all_pred, 3).map_or(0.0, |f| f.weighted)),
    );
    baseline_metrics.insert("vader_lexicon".into(), Value::Object(v));
    notes.push(
        "baseline.vader_lexicon: the VADER 3.3.2 lexicon rules (no training) on the same test halves; \
         weighted_f1_all_rows is on every row (anchor 0.6079)"
            .into(),
    );
    notes.push(
        "pearson_r: model intensity head vs mean/4; TF-IDF baseline uses P(positive) - P(negative); \
         lexicon uses VADER's compound"
            .into(),
    );
    Ok(Evaluation {
        task: Task::Sentiment.name().into(),
        data: data.display().to_string(),
        protocol: "row i -> half i mod 2; train on one half, test on the other, both ways; mean of halves; \
                   label = mean/4 vs ±0.05; hyper-parameters by inner validation (every 5th training row)"
            .into(),
        metrics,
        baseline: Baseline {
            name: "tfidf_logistic_regression".into(),
            metrics: baseline_metrics,
        },
        plots: Vec::new(),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file(content: &[u8]) -> Result<tempfile::NamedTempFile, std::io::Error> {
        let mut f = tempfile::NamedTempFile::new()?;
        f.write_all(content)?;
        Ok(f)
    }

    #[test]
    fn the_deployable_model_learns_every_row_and_names_its_data()
    -> Result<(), Box<dyn std::error::Error>> {
        // Made-up words the lexicon does not know, so only the learned embeddings can tell them.
        let mut text = String::new();
        let mut examples = Vec::new();
        for i in 0..150 {
            let (mean, class, words) = match i % 3 {
                0 => (-3.0, SentimentClass::Negative, "zorbly quexed grunting"),
                1 => (3.0, SentimentClass::Positive, "flimmer vantic glowing"),
                _ => (0.0, SentimentClass::Neutral, "plain arrived tuesday"),
            };
            text.push_str(&format!("{i}\t{mean}\t{words} {i}\n"));
            examples.push((format!("{words} {i}"), class));
        }
        let f = file(text.as_bytes())?;
        let options = EvalOptions::default();
        let a = train_deployable(f.path(), &options)?;
        assert!(
            a.version.starts_with("sentiment-") && a.version.ends_with("-s42"),
            "{}",
            a.version
        );
        assert_eq!(a.version.len(), "sentiment-".len() + 16 + "-s42".len());
        // Trained on every row: it reproduces (nearly) all of their labels.
        let right = examples
            .iter()
            .filter(|(t, c)| a.predict(t).is_ok_and(|s| s.label == *c))
            .count();
        assert!(
            right * 10 >= examples.len() * 9,
            "{right} of {}",
            examples.len()
        );
        let again: SentimentArtifact = serde_json::from_str(&serde_json::to_string(&a)?)?;
        assert_eq!(again, a, "round-trips as the JSON the feature store loads");
        // One class only: refused with the reason.
        let f = file("1\t3\tgood\n".repeat(50).as_bytes())?;
        let Err(EvalError::Unusable { message, .. }) = train_deployable(f.path(), &options) else {
            panic!("one class must be refused");
        };
        assert!(message.contains("two classes"), "{message}");
        Ok(())
    }

    #[test]
    fn reads_crlf_rows_with_tabs_in_text() -> Result<(), Box<dyn std::error::Error>> {
        let f = file(b"1_1\t-0.9\tno picture.\r\n\r\n1_2\t2.5\tgreat\tvalue\r\n")?;
        let rows = read_rows(f.path())?;
        assert_eq!(rows.len(), 2);
        assert!((rows[0].intensity + 0.225).abs() < 1e-12);
        assert_eq!(rows[0].class(), 0);
        assert_eq!(rows[1].text, "great\tvalue");
        assert_eq!(rows[1].class(), 2);
        Ok(())
    }

    #[test]
    fn bad_files_get_errors_naming_the_problem() -> Result<(), Box<dyn std::error::Error>> {
        let options = EvalOptions::default();
        // Empty.
        let f = file(b"\r\n  \n")?;
        assert!(matches!(
            evaluate(f.path(), &options),
            Err(EvalError::Empty { .. })
        ));
        // A CSV instead of tab-separated.
        let f = file(b"id,mean,text\n1_1,0.5,good\n")?;
        let Err(EvalError::BadRow { line, message, .. }) = evaluate(f.path(), &options) else {
            panic!("a CSV must be refused");
        };
        assert_eq!(line, 1);
        assert!(message.contains("3 tab-separated fields"), "{message}");
        // A header line.
        let f = file(b"id\tmean\ttext\n1_1\t0.5\tgood\n")?;
        let Err(EvalError::BadRow {
            line: 1, message, ..
        }) = evaluate(f.path(), &options)
        else {
            panic!("a header must be refused");
        };
        assert!(message.contains("`mean`"), "{message}");
        // Out of range rating, on line 2.
        let f = file(b"1_1\t0.5\tgood\n1_2\t7\tbad\n")?;
        let Err(EvalError::BadRow {
            line: 2, message, ..
        }) = evaluate(f.path(), &options)
        else {
            panic!("a rating outside -4..4 must be refused");
        };
        assert!(message.contains("outside"), "{message}");
        // Empty text.
        let f = file(b"1_1\t0.5\t  \n")?;
        assert!(matches!(
            evaluate(f.path(), &options),
            Err(EvalError::BadRow { line: 1, .. })
        ));
        // Not UTF-8.
        let f = file(b"1_1\t0.5\tgood \xff\xfe\n")?;
        let Err(EvalError::BadRow { message, .. }) = evaluate(f.path(), &options) else {
            panic!("invalid UTF-8 must be refused");
        };
        assert!(message.contains("UTF-8"), "{message}");
        // Missing file.
        let missing = std::env::temp_dir().join("sextant-no-such-sentiment-file.txt");
        assert!(matches!(
            evaluate(&missing, &options),
            Err(EvalError::Io { .. })
        ));
        // Too few rows.
        let f = file(b"1_1\t0.5\tgood\n1_2\t-0.5\tbad\n")?;
        let Err(EvalError::Unusable { message, .. }) = evaluate(f.path(), &options) else {
            panic!("two rows cannot support the protocol");
        };
        assert!(message.contains("at least"), "{message}");
        // One class only in a training half.
        let mut one_class = Vec::new();
        for i in 0..60 {
            // Even rows (the training half of test half 1) are all positive.
            let mean = if i % 4 == 3 { -2.0 } else { 2.0 };
            writeln!(one_class, "{i}\t{mean}\tsentence {i}")?;
        }
        let f = file(&one_class)?;
        let Err(EvalError::Unusable { message, .. }) = evaluate(f.path(), &options) else {
            panic!("a one-class training half must be refused");
        };
        assert!(message.contains("only positive"), "{message}");
        Ok(())
    }
}
