//! `sextant evaluate propensity --data <csv>`: propensity on any object, measured on a CSV with a
//! yes/no outcome column (the IBM Telco churn file's format), against a classical logistic regression
//! run on the same folds in the same run.
//!
//! The file is read as a prediction definition would see an object's export, with no per-data-set
//! code:
//! - **Label column**: the last column whose name, lower-cased with non-alphanumerics removed, is one
//!   of `churn`, `churned`, `label`, `target`, `converted`, `isconverted`, `outcome`, `won`, `iswon`,
//!   `exited`, `attrition`, `class`, `y`; it must have exactly two distinct non-missing values. When no
//!   column is so named, the last column with exactly two distinct non-missing values.
//! - **Positive value**: the one of the two that reads as "yes" (`yes`, `true`, `1`, `y`, `t`, `won`,
//!   `converted`, `churned`, `positive`), else the other of one that reads as "no" (`no`, `false`, `0`,
//!   `n`, `f`, `lost`, `negative`), else the rarer value (said in the notes).
//! - **Id columns**: a column whose values are present and distinct in every row and not all numbers
//!   (e.g. `customerID`) is excluded; the notes name it. Every other column is a feature, its kind
//!   inferred by the [`TabularEncoder`] (numeric when every present value is a number).
//! - Rows whose label is blank are left out of training and scoring (counted in the notes).
//!
//! Protocol (ml-anchors §1 and §2c): data row `i` (0-based, header excluded) is in fold `i mod 5`;
//! each fold in turn is the test fold. The model ([`crate::propensity::train_propensity`]) chooses its
//! architecture and penalty by inner cross-validation on the four training folds only. The baseline is
//! the anchor's logistic regression: `StandardScaler` on the numeric columns (blank → 0), one-hot on
//! the others, L2 with `C = 1` (scikit-learn's objective, fitted exactly by Newton's method).
//!
//! Metrics (5-fold means unless said): `roc_auc` (+ `roc_auc_std`, population, and `roc_auc_folds`),
//! `log_loss`, `pr_auc` (average precision), `f1` and `accuracy` at 0.5, `calibration_error` (expected
//! calibration error over 10 equal-width probability bins), `lift_top_decile` (pooled out of fold:
//! the positive rate of the top tenth by score over the overall rate). Plots (with `plot_dir`, SVG):
//! the pooled out-of-fold ROC curve of the model, a reliability diagram and the cumulative gains
//! (lift) curve of both models, and a learning curve: fold 0's test AUC of both with every 8th, 4th
//! and 2nd training row and with all of them (the same pipeline, inner selection included).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use burn::backend::{Autodiff, Flex};
use serde_json::{Map, Value, json};
use sextant_models::metrics::{accuracy, log_loss, roc_auc, roc_curve, roc_svg};
use sextant_models::tabular::{
    Cell, CsvColumns, EncoderConfig, LabelRule, PredictionDefinition, Record, TOP_FACTORS,
    TabularEncoder, TabularError, fit_logistic_newton, sigmoid,
};

use super::{Baseline, EvalError, EvalOptions, Evaluation, Task};
use crate::propensity::{PropensityConfig, encode_rows, train_propensity};

type B = Autodiff<Flex>;

/// Folds of the protocol (row `i` → fold `i mod FOLDS`).
const FOLDS: usize = 5;

/// Column names (normalised) that mark the label.
const LABEL_NAMES: [&str; 13] = [
    "churn",
    "churned",
    "label",
    "target",
    "converted",
    "isconverted",
    "outcome",
    "won",
    "iswon",
    "exited",
    "attrition",
    "class",
    "y",
];
const POSITIVE_WORDS: [&str; 9] = [
    "yes",
    "true",
    "1",
    "y",
    "t",
    "won",
    "converted",
    "churned",
    "positive",
];
const NEGATIVE_WORDS: [&str; 7] = ["no", "false", "0", "n", "f", "lost", "negative"];

/// The parsed file.
struct Table {
    columns: CsvColumns,
    rows: Vec<Vec<String>>,
}

fn read_csv(path: &Path) -> Result<Table, EvalError> {
    let mut rows = Vec::new();
    let columns = for_each_row(path, |_, _, record| {
        rows.push(record.iter().map(str::to_owned).collect());
        Ok(())
    })?;
    Ok(Table { columns, rows })
}

/// Reads the header and hands every row (with its line) to `row`, one at a time, checking that
/// each has one value per column; refuses a file without a header or rows. Returns the header.
fn for_each_row(
    path: &Path,
    mut row: impl FnMut(&CsvColumns, usize, &csv::StringRecord) -> Result<(), EvalError>,
) -> Result<CsvColumns, EvalError> {
    let file = std::fs::File::open(path).map_err(|source| EvalError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(std::io::BufReader::new(file));
    let bad = |line: usize, message: String| EvalError::BadRow {
        path: path.to_owned(),
        line,
        message,
    };
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| bad(1, format!("unreadable header: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    if header.iter().all(|h| h.trim().is_empty()) {
        return Err(EvalError::Empty {
            path: path.to_owned(),
        });
    }
    let columns = CsvColumns::new(&header).map_err(|e| bad(1, e.to_string()))?;
    let mut rows = 0usize;
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e
                .position()
                .map_or(0, |p| usize::try_from(p.line()).unwrap_or(0));
            bad(line, e.to_string())
        })?;
        let line = record
            .position()
            .map_or(0, |p| usize::try_from(p.line()).unwrap_or(0));
        if record.len() != header.len() {
            return Err(bad(
                line,
                format!(
                    "{} values, the header has {} columns",
                    record.len(),
                    header.len()
                ),
            ));
        }
        row(&columns, line, &record)?;
        rows += 1;
    }
    if rows == 0 {
        return Err(EvalError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(columns)
}

fn normalised(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// What the file's columns were read as.
struct Plan {
    definition: PredictionDefinition,
    notes: Vec<String>,
}

/// Distinct non-missing levels of column `c` (as the encoder would level them).
fn levels(table: &Table, c: usize) -> (BTreeMap<String, usize>, usize) {
    let mut counts = BTreeMap::new();
    let mut missing = 0;
    for r in &table.rows {
        let cell = Cell::parse(&r[c]);
        if cell == Cell::Missing {
            missing += 1;
        } else {
            *counts.entry(cell.level().into_owned()).or_insert(0) += 1;
        }
    }
    (counts, missing)
}

fn plan(path: &Path, table: &Table) -> Result<Plan, EvalError> {
    let names = table.columns.names();
    let unusable = |message: String| EvalError::Unusable {
        path: path.to_owned(),
        message,
    };
    let mut notes = Vec::new();
    let named = names
        .iter()
        .rposition(|n| LABEL_NAMES.contains(&normalised(n).as_str()));
    let (label, label_levels) = if let Some(c) = named {
        let (lv, _) = levels(table, c);
        match lv.len() {
            2 => (c, lv),
            0 | 1 => {
                return Err(unusable(format!(
                    "the label column `{}` has only one class ({}); a propensity model needs both",
                    names[c],
                    lv.keys().next().map_or("all blank", String::as_str)
                )));
            }
            n => {
                return Err(unusable(format!(
                    "the label column `{}` has {n} distinct values; it must be yes/no (two values)",
                    names[c]
                )));
            }
        }
    } else {
        let found = (0..names.len())
            .rev()
            .map(|c| (c, levels(table, c).0))
            .find(|(_, lv)| lv.len() == 2);
        match found {
            Some(f) => f,
            None => {
                return Err(EvalError::MissingColumn {
                    path: path.to_owned(),
                    column: "label".into(),
                    expected: format!(
                        "a yes/no column named like {} (case-insensitive), or any column with \
                         exactly two distinct values",
                        LABEL_NAMES.join("/")
                    ),
                });
            }
        }
    };
    let values: Vec<(&String, usize)> = label_levels.iter().map(|(k, v)| (k, *v)).collect();
    let reads = |words: &[&str], v: &str| words.iter().any(|w| w.eq_ignore_ascii_case(v));
    let (a, b) = (values[0], values[1]);
    let positive = match (
        reads(&POSITIVE_WORDS, a.0),
        reads(&POSITIVE_WORDS, b.0),
        reads(&NEGATIVE_WORDS, a.0),
        reads(&NEGATIVE_WORDS, b.0),
    ) {
        (true, false, _, _) | (false, false, false, true) => a.0.clone(),
        (false, true, _, _) | (false, false, true, false) => b.0.clone(),
        _ => {
            let rarer = if b.1 < a.1 { b.0 } else { a.0 };
            notes.push(format!(
                "neither `{}` nor `{}` reads as yes/no: the rarer, `{rarer}`, is the positive class",
                a.0, b.0
            ));
            rarer.clone()
        }
    };
    notes.push(format!(
        "label: `{}` {} (positive `{positive}`)",
        names[label],
        if named.is_some() {
            "(named like a label)"
        } else {
            "(last two-valued column)"
        }
    ));
    let n = table.rows.len();
    let mut features = Vec::new();
    for (c, name) in names.iter().enumerate() {
        if c == label {
            continue;
        }
        let mut seen = HashSet::with_capacity(n);
        let mut text = false;
        let mut unique = true;
        for r in &table.rows {
            let cell = Cell::parse(&r[c]);
            match cell {
                Cell::Missing => {
                    unique = false;
                    break;
                }
                Cell::Text(_) => text = true,
                Cell::Number(_) => {}
            }
            if !seen.insert(r[c].trim()) {
                unique = false;
                break;
            }
        }
        if unique && text && n > 1 {
            notes.push(format!(
                "`{name}` excluded: an id (present and distinct in every row)"
            ));
        } else {
            features.push(name.clone());
        }
    }
    if features.is_empty() {
        return Err(unusable(
            "no feature columns besides the label and ids".into(),
        ));
    }
    Ok(Plan {
        definition: PredictionDefinition {
            object: path
                .file_stem()
                .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned()),
            label_field: names[label].clone(),
            label: LabelRule::Values {
                positive: vec![positive],
            },
            features,
            kinds: BTreeMap::new(),
        },
        notes,
    })
}

/// Average precision (area under the precision-recall curve, scikit-learn's step definition).
fn average_precision(scores: &[f64], labels: &[bool]) -> f64 {
    let n_pos = labels.iter().filter(|l| **l).count();
    if n_pos == 0 {
        return 0.0;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut ap, mut last_recall) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            if labels[k] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
        }
        let recall = tp / n_pos as f64;
        ap += (recall - last_recall) * tp / (tp + fp);
        last_recall = recall;
        i = j + 1;
    }
    ap
}

/// F1 of the positive class at a threshold.
fn f1_at(scores: &[f64], labels: &[bool], threshold: f64) -> f64 {
    let (mut tp, mut fp, mut fneg) = (0.0, 0.0, 0.0);
    for (s, l) in scores.iter().zip(labels) {
        match (*s >= threshold, *l) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fneg += 1.0,
            (false, false) => {}
        }
    }
    if tp == 0.0 {
        0.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fneg)
    }
}

/// Per non-empty bin of 10 equal-width probability bins: (mean predicted, observed rate, count).
type Bins = Vec<(f64, f64, usize)>;

/// The reliability bins of `scores`.
fn reliability(scores: &[f64], labels: &[bool]) -> Bins {
    let mut bins = vec![(0.0, 0.0, 0usize); 10];
    for (s, l) in scores.iter().zip(labels) {
        let b = ((s * 10.0).floor().max(0.0) as usize).min(9);
        bins[b].0 += s;
        bins[b].1 += f64::from(u8::from(*l));
        bins[b].2 += 1;
    }
    bins.into_iter()
        .filter(|b| b.2 > 0)
        .map(|(p, y, n)| (p / n as f64, y / n as f64, n))
        .collect()
}

/// Expected calibration error: the count-weighted mean gap between predicted and observed rates.
fn calibration_error(scores: &[f64], labels: &[bool]) -> f64 {
    let n = labels.len().max(1) as f64;
    reliability(scores, labels)
        .iter()
        .map(|(p, y, c)| (p - y).abs() * *c as f64 / n)
        .sum()
}

/// Metrics of one fold.
#[derive(Debug, Clone, Copy)]
struct FoldMetrics {
    auc: f64,
    log_loss: f64,
    pr_auc: f64,
    f1: f64,
    accuracy: f64,
    calibration_error: f64,
}

fn fold_metrics(scores: &[f64], labels: &[bool]) -> FoldMetrics {
    FoldMetrics {
        auc: roc_auc(scores, labels).unwrap_or(f64::NAN),
        log_loss: log_loss(scores, labels),
        pr_auc: average_precision(scores, labels),
        f1: f1_at(scores, labels, 0.5),
        accuracy: accuracy(scores, labels, 0.5),
        calibration_error: calibration_error(scores, labels),
    }
}

fn summarise(folds: &[FoldMetrics]) -> Map<String, Value> {
    let n = folds.len().max(1) as f64;
    let mean = |f: fn(&FoldMetrics) -> f64| folds.iter().map(f).sum::<f64>() / n;
    let auc = mean(|m| m.auc);
    let std = (folds.iter().map(|m| (m.auc - auc).powi(2)).sum::<f64>() / n).sqrt();
    let mut out = Map::new();
    out.insert("roc_auc".into(), json!(auc));
    out.insert("roc_auc_std".into(), json!(std));
    out.insert(
        "roc_auc_folds".into(),
        json!(folds.iter().map(|m| m.auc).collect::<Vec<_>>()),
    );
    out.insert("log_loss".into(), json!(mean(|m| m.log_loss)));
    out.insert("pr_auc".into(), json!(mean(|m| m.pr_auc)));
    out.insert("f1".into(), json!(mean(|m| m.f1)));
    out.insert("accuracy".into(), json!(mean(|m| m.accuracy)));
    out.insert(
        "calibration_error".into(),
        json!(mean(|m| m.calibration_error)),
    );
    out
}

/// A line chart of `(x, y)` series on the unit square or given ranges, with an optional dashed
/// diagonal (perfect calibration, random targeting) and the ranges' end values on the axes.
struct Chart<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    x_range: (f64, f64),
    y_range: (f64, f64),
    diagonal: bool,
}

/// One line of a chart: name, colour, points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

fn chart_svg(chart: &Chart<'_>, series: &[Series<'_>]) -> String {
    let (w, h, m) = (440.0, 420.0, 55.0);
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;");
    let span = |r: (f64, f64)| {
        if (r.1 - r.0).abs() < 1e-12 {
            1.0
        } else {
            r.1 - r.0
        }
    };
    let x = |v: f64| m + (v - chart.x_range.0) / span(chart.x_range) * (w - 2.0 * m);
    let y = |v: f64| h - m - (v - chart.y_range.0) / span(chart.y_range) * (h - 2.0 * m);
    let mut body = String::new();
    if chart.diagonal {
        body.push_str(&format!(
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#bbb\" stroke-dasharray=\"4 4\"/>",
            x(chart.x_range.0),
            y(chart.y_range.0),
            x(chart.x_range.1),
            y(chart.y_range.1)
        ));
    }
    for (i, (name, colour, points)) in series.iter().enumerate() {
        let pts: Vec<String> = points
            .iter()
            .map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b)))
            .collect();
        body.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            pts.join(" ")
        ));
        if points.len() <= 20 {
            for (a, b) in points {
                body.push_str(&format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                    x(*a),
                    y(*b)
                ));
            }
        }
        body.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"{colour}\">{}</text>",
            m + 10.0,
            m + 18.0 + 16.0 * i as f64,
            esc(name)
        ));
    }
    for (v, anchor, px, py) in [
        (chart.x_range.0, "start", x(chart.x_range.0), h - m + 15.0),
        (chart.x_range.1, "end", x(chart.x_range.1), h - m + 15.0),
        (chart.y_range.0, "end", m - 5.0, y(chart.y_range.0)),
        (chart.y_range.1, "end", m - 5.0, y(chart.y_range.1) + 10.0),
    ] {
        body.push_str(&format!(
            "<text x=\"{px:.1}\" y=\"{py:.1}\" font-size=\"11\" text-anchor=\"{anchor}\">{}</text>",
            format!("{v:.3}")
                .trim_end_matches('0')
                .trim_end_matches('.')
        ));
    }
    format!(
        concat!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text x=\"{cx}\" y=\"24\" font-size=\"14\" text-anchor=\"middle\">{title}</text>",
            "<rect x=\"{m}\" y=\"{m}\" width=\"{iw}\" height=\"{ih}\" fill=\"none\" stroke=\"#888\"/>",
            "{body}",
            "<text x=\"{cx}\" y=\"{xl}\" font-size=\"12\" text-anchor=\"middle\">{xlab}</text>",
            "<text x=\"14\" y=\"{cy}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 {cy})\">{ylab}</text>",
            "</svg>\n"
        ),
        w = w,
        h = h,
        m = m,
        iw = w - 2.0 * m,
        ih = h - 2.0 * m,
        cx = w / 2.0,
        cy = h / 2.0,
        xl = h - 12.0,
        title = esc(chart.title),
        xlab = esc(chart.x_label),
        ylab = esc(chart.y_label),
        body = body,
    )
}

/// A reliability diagram: observed rate against mean predicted probability, per model.
fn calibration_svg(series: &[(&str, &str, Bins)]) -> String {
    let series: Vec<Series<'_>> = series
        .iter()
        .map(|(n, c, bins)| (*n, *c, bins.iter().map(|(p, o, _)| (*p, *o)).collect()))
        .collect();
    chart_svg(
        &Chart {
            title: "propensity — calibration (10 bins, out of fold)",
            x_label: "mean predicted probability",
            y_label: "observed positive rate",
            x_range: (0.0, 1.0),
            y_range: (0.0, 1.0),
            diagonal: true,
        },
        &series,
    )
}

/// The cumulative gains curve: share of all positives among the top `q` share of rows by score, at
/// every 2 % (ties broken by row order, which the scores do not depend on).
fn gains(scores: &[f64], labels: &[bool]) -> Vec<(f64, f64)> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let n_pos = labels.iter().filter(|l| **l).count().max(1) as f64;
    let n = idx.len();
    let mut out = vec![(0.0, 0.0)];
    let mut hits = 0usize;
    let mut next = 1;
    for (rank, &i) in idx.iter().enumerate() {
        hits += usize::from(labels[i]);
        while next <= 50 && (rank + 1) * 50 >= next * n {
            out.push((next as f64 / 50.0, hits as f64 / n_pos));
            next += 1;
        }
    }
    out
}

/// Lift of the top tenth by score: its positive rate over the overall rate.
fn top_decile_lift(scores: &[f64], labels: &[bool]) -> f64 {
    let g = gains(scores, labels);
    // The gains point at 10 % is the share of positives captured there; lift = that / 0.1.
    g.iter()
        .find(|(q, _)| (*q - 0.1).abs() < 1e-9)
        .map_or(f64::NAN, |(_, share)| share / 0.1)
}

/// The anchor's logistic regression fitted on `train`, scored on `test`.
fn baseline_scores<R: Record>(
    definition: &PredictionDefinition,
    train: &[R],
    test: &[R],
) -> Result<Vec<f64>, TabularError> {
    let encoder = TabularEncoder::fit(definition, &EncoderConfig::standard(), train)?;
    let (x, y, _) = encode_rows(definition, &encoder, train)?;
    let net = fit_logistic_newton(&x.data, x.cols, &y, 1.0)?;
    test.iter()
        .map(|r| encoder.encode(r).and_then(|v| net.logit(&v)).map(sigmoid))
        .collect()
}

/// A propensity model trained for the registry by [`train_held_out`], with its evaluation.
#[derive(Debug, Clone)]
pub struct HeldOutPropensity {
    /// Trained on the training rows (what is stored and served).
    pub artifact: sextant_models::tabular::PropensityArtifact,
    /// Held-out figures: `roc_auc`, `pr_auc`, `log_loss`, `calibration_error`, `lift_top_decile`,
    /// `positive_rate`, and the logistic-regression baseline's `baseline_roc_auc` and
    /// `baseline_pr_auc` on the same rows.
    pub metrics: BTreeMap<String, f64>,
    /// The selection, the encoded features, sizes and the protocol.
    pub config: BTreeMap<String, Value>,
    /// Held-out ROC curve of the model.
    pub roc: Vec<(f64, f64)>,
    /// The current model's ROC-AUC on the same held-out rows, or why it could not be measured;
    /// `None` without a current model.
    pub current_auc: Option<Result<f64, String>>,
    /// Labelled held-out rows.
    pub n_test: usize,
}

/// The held-out rows of the registry job: row `i` with `i mod 5 == 4`.
fn is_held_out(i: usize) -> bool {
    i % FOLDS == FOLDS - 1
}

/// Checks an object export for a definition without training: the header names the label and
/// every feature, every row parses, and the held-out rows and the training rows both hold both
/// outcomes. Returns the number of rows.
///
/// # Errors
/// [`EvalError::BadRow`] (line 1 for the header), [`EvalError::Empty`] or
/// [`EvalError::Unusable`].
pub fn check_export(data: &Path, definition: &PredictionDefinition) -> Result<usize, EvalError> {
    // One pass, one row in memory at a time: the request that uploads the export waits on this.
    let bad = |line: usize, message: String| EvalError::BadRow {
        path: data.to_owned(),
        line,
        message,
    };
    definition.validate().map_err(|e| bad(1, e.to_string()))?;
    let mut counts = [[0usize; 2]; 2];
    let mut i = 0usize;
    for_each_row(data, |columns, line, record| {
        if i == 0 {
            columns
                .check(definition)
                .map_err(|e| bad(1, e.to_string()))?;
        }
        let values: Vec<&str> = record.iter().collect();
        let row = columns.row(&values).map_err(|e| bad(line, e.to_string()))?;
        if let Some(l) = definition
            .label_of(&row)
            .map_err(|e| bad(line, e.to_string()))?
        {
            counts[usize::from(is_held_out(i))][usize::from(l)] += 1;
        }
        i += 1;
        Ok(())
    })?;
    check_split(data, counts).map(|()| i)
}

fn held_out_labels(
    data: &Path,
    table: &Table,
    definition: &PredictionDefinition,
) -> Result<Vec<Option<bool>>, EvalError> {
    let bad = |line: usize, message: String| EvalError::BadRow {
        path: data.to_owned(),
        line,
        message,
    };
    definition.validate().map_err(|e| bad(1, e.to_string()))?;
    table
        .columns
        .check(definition)
        .map_err(|e| bad(1, e.to_string()))?;
    let mut labels = Vec::with_capacity(table.rows.len());
    let (mut counts, mut line) = ([[0usize; 2]; 2], 1usize);
    for (i, raw) in table.rows.iter().enumerate() {
        line += 1;
        let row = table
            .columns
            .row(raw)
            .map_err(|e| bad(line, e.to_string()))?;
        let label = definition
            .label_of(&row)
            .map_err(|e| bad(line, e.to_string()))?;
        if let Some(l) = label {
            counts[usize::from(is_held_out(i))][usize::from(l)] += 1;
        }
        labels.push(label);
    }
    check_split(data, counts).map(|()| labels)
}

/// Refuses a split whose training rows or held-out rows (`[training, held out][negative,
/// positive]` counts) lack an outcome.
fn check_split(data: &Path, counts: [[usize; 2]; 2]) -> Result<(), EvalError> {
    let [train, test] = counts;
    if train.contains(&0) || test.contains(&0) {
        return Err(EvalError::Unusable {
            path: data.to_owned(),
            message: format!(
                "the training rows have {} positive and {} negative outcomes, the held-out rows \
                 (every fifth) {} and {}; both need both",
                train[1], train[0], test[1], test[0]
            ),
        });
    }
    Ok(())
}

/// The registry job's protocol on an object export (CSV with a header of field names) for a
/// definition: row `i` with `i mod 5 == 4` is held out; the model is trained on the other rows
/// (its architecture and penalty chosen by inner cross-validation on them, as in [`evaluate`])
/// and measured on the held-out rows next to the logistic-regression baseline and `current`
/// (the model being served), all on the same rows. The model that was measured is the one
/// stored.
///
/// # Errors
/// Those of [`check_export`]; [`EvalError::Model`] when training fails.
pub fn train_held_out(
    data: &Path,
    definition: &PredictionDefinition,
    options: &EvalOptions,
    current: Option<&sextant_models::tabular::PropensityArtifact>,
) -> Result<HeldOutPropensity, EvalError> {
    let table = read_csv(data)?;
    let labels = held_out_labels(data, &table, definition)?;
    let model_error = |message: String| EvalError::Model {
        task: Task::Propensity.name().into(),
        message,
    };
    let rows: Vec<_> = table
        .rows
        .iter()
        .map(|r| table.columns.row(r))
        .collect::<Result<_, _>>()
        .map_err(|e| model_error(e.to_string()))?;
    let train: Vec<_> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| !is_held_out(*i))
        .map(|(_, r)| *r)
        .collect();
    let test: Vec<_> = rows
        .iter()
        .zip(&labels)
        .enumerate()
        .filter(|(i, _)| is_held_out(*i))
        .filter_map(|(_, (r, l))| l.map(|l| (*r, l)))
        .collect();
    let test_rows: Vec<_> = test.iter().map(|(r, _)| *r).collect();
    let y: Vec<bool> = test.iter().map(|(_, l)| *l).collect();
    let config = PropensityConfig {
        seed: options.seed,
        ..PropensityConfig::default()
    };
    let device = Default::default();
    let trained = train_propensity::<B, _, _>(definition, &train, &config, &device, |m| {
        if options.progress {
            eprintln!("propensity: {m}");
        }
    })
    .map_err(|e| model_error(e.to_string()))?;
    let scores: Vec<f64> = test_rows
        .iter()
        .map(|r| trained.artifact.score(r))
        .collect::<Result<_, _>>()
        .map_err(|e| model_error(e.to_string()))?;
    let labelled_train: Vec<_> = train
        .iter()
        .filter(|r| matches!(definition.label_of(*r), Ok(Some(_))))
        .copied()
        .collect();
    let base = baseline_scores(definition, &labelled_train, &test_rows)
        .map_err(|e| model_error(format!("baseline: {e}")))?;
    let current_auc = current.map(|a| {
        a.validate()
            .map_err(|e| format!("the current model does not load: {e}"))
            .and_then(|()| {
                test_rows
                    .iter()
                    .map(|r| a.score(r))
                    .collect::<Result<Vec<f64>, _>>()
                    .map_err(|e| format!("the current model cannot score these rows: {e}"))
            })
            .and_then(|s| roc_auc(&s, &y).ok_or_else(|| "no ROC-AUC on the held-out rows".into()))
    });
    let auc = roc_auc(&scores, &y).ok_or_else(|| model_error("no ROC-AUC".into()))?;
    let positives = y.iter().filter(|l| **l).count();
    let metrics = [
        ("roc_auc", auc),
        ("pr_auc", average_precision(&scores, &y)),
        ("log_loss", log_loss(&scores, &y)),
        ("calibration_error", calibration_error(&scores, &y)),
        ("lift_top_decile", top_decile_lift(&scores, &y)),
        ("positive_rate", positives as f64 / y.len() as f64),
        ("baseline_roc_auc", roc_auc(&base, &y).unwrap_or(f64::NAN)),
        ("baseline_pr_auc", average_precision(&base, &y)),
    ]
    .into_iter()
    .filter(|(_, v)| v.is_finite())
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let kinds: Vec<String> = trained
        .artifact
        .encoder
        .kinds()
        .iter()
        .map(|(f, k)| format!("{f}:{}", format!("{k:?}").to_lowercase()))
        .collect();
    let dropped: Vec<String> = trained
        .artifact
        .encoder
        .dropped
        .iter()
        .map(|(f, why)| format!("{f}: {why}"))
        .collect();
    let config = [
        ("seed", json!(options.seed)),
        ("object", json!(definition.object)),
        ("chosen", json!(trained.selection.chosen)),
        ("inner_auc", json!(trained.selection.inner_auc)),
        ("features", json!(kinds)),
        ("dropped", json!(dropped)),
        ("n_train", json!(trained.rows)),
        ("n_unlabelled", json!(trained.unlabelled)),
        ("n_test", json!(y.len())),
        (
            "baseline",
            json!("logistic regression, C = 1 (standardised numerics, one-hot levels)"),
        ),
        (
            "protocol",
            json!(
                "row i held out when i mod 5 == 4; the model chosen by inner cross-validation on \
                 the rest; the measured model is the stored one"
            ),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Ok(HeldOutPropensity {
        roc: roc_curve(&scores, &y),
        artifact: trained.artifact,
        metrics,
        config,
        current_auc,
        n_test: y.len(),
    })
}

/// Runs the propensity protocol on `data`.
///
/// # Errors
/// See [`EvalError`]: unreadable, empty, ragged rows, no label column, one class only, or a fold
/// without both classes.
pub fn evaluate(data: &Path, options: &EvalOptions) -> Result<Evaluation, EvalError> {
    let config = PropensityConfig {
        seed: options.seed,
        ..PropensityConfig::default()
    };
    evaluate_with(data, options, &config)
}

/// [`evaluate`] with the model's settings given (`options.seed` is not used: `config.seed` is).
///
/// # Errors
/// See [`evaluate`].
pub fn evaluate_with(
    data: &Path,
    options: &EvalOptions,
    config: &PropensityConfig,
) -> Result<Evaluation, EvalError> {
    let progress = |m: &str| {
        if options.progress {
            eprintln!("propensity: {m}");
        }
    };
    let table = read_csv(data)?;
    let Plan {
        definition,
        mut notes,
    } = plan(data, &table)?;
    let model_error = |message: String| EvalError::Model {
        task: Task::Propensity.name().into(),
        message,
    };
    let unusable = |message: String| EvalError::Unusable {
        path: data.to_owned(),
        message,
    };
    let rows: Vec<_> = table
        .rows
        .iter()
        .map(|r| table.columns.row(r))
        .collect::<Result<_, _>>()
        .map_err(|e| model_error(e.to_string()))?;
    let labels: Vec<Option<bool>> = rows
        .iter()
        .map(|r| definition.label_of(r))
        .collect::<Result<_, _>>()
        .map_err(|e| model_error(e.to_string()))?;
    let unlabelled = labels.iter().filter(|l| l.is_none()).count();
    if unlabelled > 0 {
        notes.push(format!(
            "{unlabelled} rows with a blank label left out of training and scoring"
        ));
    }
    let device = Default::default();
    // Every test fold needs both classes; check them all before training anything.
    for fold in 0..FOLDS {
        let (mut pos, mut neg) = (0, 0);
        for l in labels.iter().skip(fold).step_by(FOLDS).flatten() {
            if *l { pos += 1 } else { neg += 1 }
        }
        if pos == 0 || neg == 0 {
            return Err(unusable(format!(
                "test fold {fold} (rows i mod {FOLDS} = {fold}) has only one class ({pos} positive, \
                 {neg} negative); every fold needs both"
            )));
        }
    }
    let (mut model_folds, mut base_folds) = (Vec::new(), Vec::new());
    let (mut pooled_model, mut pooled_base, mut pooled_labels) =
        (Vec::new(), Vec::new(), Vec::new());
    for fold in 0..FOLDS {
        let train: Vec<_> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| i % FOLDS != fold)
            .map(|(_, r)| *r)
            .collect();
        let test: Vec<(usize, bool)> = labels
            .iter()
            .enumerate()
            .filter(|(i, _)| i % FOLDS == fold)
            .filter_map(|(i, l)| l.map(|l| (i, l)))
            .collect();
        let y_test: Vec<bool> = test.iter().map(|t| t.1).collect();
        progress(&format!(
            "fold {}/{FOLDS}: training on {} rows",
            fold + 1,
            train.len()
        ));
        let trained = train_propensity::<B, _, _>(&definition, &train, config, &device, |m| {
            progress(&format!("fold {}/{FOLDS}: {m}", fold + 1));
        })
        .map_err(|e| model_error(e.to_string()))?;
        if fold == 0 {
            notes.extend(
                trained
                    .artifact
                    .encoder
                    .dropped
                    .iter()
                    .map(|(f, why)| format!("`{f}` dropped: {why}")),
            );
            let kinds: Vec<String> = trained
                .artifact
                .encoder
                .kinds()
                .iter()
                .map(|(f, k)| format!("{f}:{}", format!("{k:?}").to_lowercase()))
                .collect();
            notes.push(format!(
                "features ({} encoded columns): {}",
                trained.artifact.encoder.width(),
                kinds.join(", ")
            ));
        }
        notes.push(format!(
            "fold {fold}: chose {} by inner CV ({})",
            trained.selection.chosen,
            trained
                .selection
                .inner_auc
                .iter()
                .map(|(n, a)| format!("{n} {a:.4}"))
                .collect::<Vec<_>>()
                .join("; ")
        ));
        let scores: Vec<f64> = test
            .iter()
            .map(|(i, _)| trained.artifact.score(&rows[*i]))
            .collect::<Result<_, _>>()
            .map_err(|e| model_error(e.to_string()))?;
        if fold == 0
            && let Some((i, _)) = test.first()
        {
            // What a record page would show for the first test row.
            let explained = trained
                .artifact
                .explain(&rows[*i], TOP_FACTORS)
                .map_err(|e| model_error(e.to_string()))?;
            notes.push(format!(
                "factors of data row {i} (score {:.3}): {}",
                explained.score,
                serde_json::to_string(&explained.factors).unwrap_or_default()
            ));
        }

        // The anchor's baseline on the same training rows.
        let test_rows: Vec<_> = test.iter().map(|(i, _)| rows[*i]).collect();
        let base_scores = baseline_scores(&definition, &train, &test_rows)
            .map_err(|e| model_error(format!("baseline: {e}")))?;

        let m = fold_metrics(&scores, &y_test);
        let b = fold_metrics(&base_scores, &y_test);
        progress(&format!(
            "fold {}/{FOLDS}: AUC model {:.4}, baseline {:.4}",
            fold + 1,
            m.auc,
            b.auc
        ));
        model_folds.push(m);
        base_folds.push(b);
        pooled_model.extend(scores);
        pooled_base.extend(base_scores);
        pooled_labels.extend(y_test);
    }
    let mut metrics = summarise(&model_folds);
    let n_labelled = pooled_labels.len();
    metrics.insert("rows".into(), json!(n_labelled));
    metrics.insert(
        "positive_rate".into(),
        json!(pooled_labels.iter().filter(|l| **l).count() as f64 / n_labelled.max(1) as f64),
    );
    metrics.insert(
        "lift_top_decile".into(),
        json!(top_decile_lift(&pooled_model, &pooled_labels)),
    );
    let mut base_metrics = summarise(&base_folds);
    base_metrics.insert(
        "lift_top_decile".into(),
        json!(top_decile_lift(&pooled_base, &pooled_labels)),
    );
    let mut plots = Vec::new();
    if let Some(dir) = &options.plot_dir {
        let io = |path: &Path, source| EvalError::Io {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let roc_path = dir.join("propensity_roc.svg");
        let pooled_auc = roc_auc(&pooled_model, &pooled_labels).unwrap_or(f64::NAN);
        let svg = roc_svg(
            &roc_curve(&pooled_model, &pooled_labels),
            pooled_auc,
            "propensity (out of fold)",
        );
        std::fs::write(&roc_path, svg).map_err(|e| io(&roc_path, e))?;
        plots.push(roc_path);
        let cal_path = dir.join("propensity_calibration.svg");
        let svg = calibration_svg(&[
            (
                "model",
                "#0b6bcb",
                reliability(&pooled_model, &pooled_labels),
            ),
            (
                "baseline (logistic regression)",
                "#c2410c",
                reliability(&pooled_base, &pooled_labels),
            ),
        ]);
        std::fs::write(&cal_path, svg).map_err(|e| io(&cal_path, e))?;
        plots.push(cal_path);
        let lift_path = dir.join("propensity_lift.svg");
        let svg = chart_svg(
            &Chart {
                title: "propensity — cumulative gains (out of fold)",
                x_label: "share of rows targeted (highest scores first)",
                y_label: "share of positives captured",
                x_range: (0.0, 1.0),
                y_range: (0.0, 1.0),
                diagonal: true,
            },
            &[
                ("model", "#0b6bcb", gains(&pooled_model, &pooled_labels)),
                (
                    "baseline (logistic regression)",
                    "#c2410c",
                    gains(&pooled_base, &pooled_labels),
                ),
            ],
        );
        std::fs::write(&lift_path, svg).map_err(|e| io(&lift_path, e))?;
        plots.push(lift_path);
        // Learning curve on fold 0: the same pipeline on every 8th, 4th and 2nd training row, then
        // all of them (already measured above).
        let train: Vec<_> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| i % FOLDS != 0)
            .map(|(_, r)| *r)
            .collect();
        let test: Vec<(usize, bool)> = labels
            .iter()
            .enumerate()
            .filter(|(i, _)| i % FOLDS == 0)
            .filter_map(|(i, l)| l.map(|l| (i, l)))
            .collect();
        let test_rows: Vec<_> = test.iter().map(|(i, _)| rows[*i]).collect();
        let y_test: Vec<bool> = test.iter().map(|t| t.1).collect();
        let (mut model_curve, mut base_curve) = (Vec::new(), Vec::new());
        for step in [8usize, 4, 2] {
            let subset: Vec<_> = train.iter().step_by(step).copied().collect();
            progress(&format!("learning curve: {} training rows", subset.len()));
            let trained =
                train_propensity::<B, _, _>(&definition, &subset, config, &device, |_| {})
                    .map_err(|e| model_error(format!("learning curve: {e}")))?;
            let scores: Vec<f64> = test_rows
                .iter()
                .map(|r| trained.artifact.score(r))
                .collect::<Result<_, _>>()
                .map_err(|e| model_error(e.to_string()))?;
            let base = baseline_scores(&definition, &subset, &test_rows)
                .map_err(|e| model_error(format!("baseline: {e}")))?;
            let n = trained.rows as f64;
            model_curve.push((n, roc_auc(&scores, &y_test).unwrap_or(f64::NAN)));
            base_curve.push((n, roc_auc(&base, &y_test).unwrap_or(f64::NAN)));
        }
        let full = train
            .iter()
            .filter(|r| definition.label_of(*r).ok().flatten().is_some())
            .count() as f64;
        model_curve.push((full, model_folds[0].auc));
        base_curve.push((full, base_folds[0].auc));
        notes.push(format!(
            "learning curve (fold 0 test AUC by training rows, model / baseline): {}",
            model_curve
                .iter()
                .zip(&base_curve)
                .map(|(m, b)| format!("{:.0}: {:.4} / {:.4}", m.0, m.1, b.1))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let lo = model_curve
            .iter()
            .chain(&base_curve)
            .map(|p| p.1)
            .fold(1.0, f64::min);
        let curve_path = dir.join("propensity_learning_curve.svg");
        let svg = chart_svg(
            &Chart {
                title: "propensity — learning curve (fold 0)",
                x_label: "training rows",
                y_label: "test ROC-AUC",
                x_range: (0.0, full),
                y_range: (
                    ((lo - 0.01) * 100.0).floor() / 100.0,
                    1.0_f64.min(
                        ((model_curve
                            .iter()
                            .chain(&base_curve)
                            .map(|p| p.1)
                            .fold(0.0, f64::max)
                            + 0.01)
                            * 100.0)
                            .ceil()
                            / 100.0,
                    ),
                ),
                diagonal: false,
            },
            &[
                ("model", "#0b6bcb", model_curve),
                ("baseline (logistic regression)", "#c2410c", base_curve),
            ],
        );
        std::fs::write(&curve_path, svg).map_err(|e| io(&curve_path, e))?;
        plots.push(curve_path);
    }
    Ok(Evaluation {
        task: Task::Propensity.name().into(),
        data: data.display().to_string(),
        protocol: format!(
            "row i -> fold i mod {FOLDS}; 5-fold means; model chosen by {}-fold inner CV on the \
             training folds only; baseline = StandardScaler + one-hot + L2 logistic regression (C=1)",
            config.inner_folds
        ),
        metrics,
        baseline: Baseline {
            name: "logistic_regression".into(),
            metrics: base_metrics,
        },
        plots,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_precision_matches_sklearn() {
        // sklearn.metrics.average_precision_score([0,0,1,1],[0.1,0.4,0.35,0.8]) == 0.8333…
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]);
        assert!((ap - 5.0 / 6.0).abs() < 1e-12, "{ap}");
        // With a tie: ([1,0,1], [0.5,0.5,0.2]) == 0.5·(1/2) + 0.5·(2/3) = 0.5833…
        let ap = average_precision(&[0.5, 0.5, 0.2], &[true, false, true]);
        assert!((ap - (0.25 + 1.0 / 3.0)).abs() < 1e-12, "{ap}");
    }

    #[test]
    fn f1_and_calibration_by_hand() {
        let s = [0.9, 0.6, 0.4, 0.1];
        let l = [true, false, true, false];
        // tp 1, fp 1, fn 1 → 2/(2+1+1)
        assert!((f1_at(&s, &l, 0.5) - 0.5).abs() < 1e-12);
        // Bins: 0.9→1, 0.6→0, 0.4→1, 0.1→0: gaps 0.1, 0.6, 0.6, 0.1 → mean 0.35.
        assert!((calibration_error(&s, &l) - 0.35).abs() < 1e-12);
        let perfect = calibration_error(&[0.25; 4], &[true, false, false, false]);
        assert!(perfect.abs() < 1e-12);
    }

    #[test]
    fn gains_and_lift_by_hand() {
        // 20 rows, 4 positives; the top 2 rows (10 %) hold 2 of them → lift (2/4)/0.1 = 5.
        let scores: Vec<f64> = (0..20).map(|i| 1.0 - f64::from(i) / 20.0).collect();
        let labels: Vec<bool> = (0..20).map(|i| [0, 1, 7, 15].contains(&i)).collect();
        assert!((top_decile_lift(&scores, &labels) - 5.0).abs() < 1e-12);
        let g = gains(&scores, &labels);
        assert_eq!(g.first(), Some(&(0.0, 0.0)));
        assert_eq!(g.last(), Some(&(1.0, 1.0)));
        assert_eq!(g.len(), 51);
        assert!(g.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn label_names_are_normalised() {
        assert_eq!(normalised("Is_Converted"), "isconverted");
        assert!(LABEL_NAMES.contains(&normalised("Churn").as_str()));
    }
}
