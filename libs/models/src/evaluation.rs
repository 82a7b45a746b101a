//! The result of `sextant evaluate`: one model measured on one data file against its baseline.
//!
//! Every task (churn, clv, propensity, recommend, sentiment, next-category) reports through this
//! one shape so that a data scientist, CI and the closing notes read the same figures. The JSON form
//! is a contract: `{"task", "data", "protocol", "metrics": {...}, "baseline": {"name", "metrics"}}`.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One evaluation run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    /// `churn`, `clv`, `propensity`, `recommend`, `sentiment` or `next-category`.
    pub task: String,
    /// The data file that was evaluated, as given.
    pub data: String,
    /// The split and metric protocol, in words (e.g. "Telco: row i -> fold i mod 5; 5-fold mean").
    pub protocol: String,
    /// The model's metrics (keys per task, see the module docs of each task).
    pub metrics: Map<String, Value>,
    /// The classical baseline, run on the same split in the same run.
    pub baseline: Baseline,
    /// Plot files written (ROC, calibration, learning curves…), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plots: Vec<PathBuf>,
    /// Things a reader must know (e.g. "BG/NBD degenerated to NBD: a -> 0; fell back to Pareto/NBD").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The baseline a model is compared with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Baseline {
    /// e.g. `bg_nbd`, `logistic_regression`, `als`, `tfidf_logistic_regression`, `popularity`.
    pub name: String,
    /// Same keys as the model's metrics where they are comparable.
    pub metrics: Map<String, Value>,
}

/// Why an evaluation could not run. Each names the problem a user can fix.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file has no data rows.
    #[error("{path} has no data rows")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A required column is missing from the header.
    #[error("{path}: missing column `{column}` (expected columns: {expected})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// All the columns the format needs.
        expected: String,
    },
    /// A row does not parse.
    #[error("{path}:{line}: {message}")]
    BadRow {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The data parse but cannot support the protocol (e.g. one class only, nothing before the cut-off).
    #[error("{path}: {message}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The model failed to train or fit.
    #[error("{task} model failed: {message}")]
    Model {
        /// The task.
        task: String,
        /// What failed.
        message: String,
    },
}

impl Evaluation {
    /// A readable table: metric, model, baseline.
    #[must_use]
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "task:     {}", self.task);
        let _ = writeln!(out, "data:     {}", self.data);
        let _ = writeln!(out, "protocol: {}", self.protocol);
        let mut rows: Vec<(String, String, String)> = Vec::new();
        flatten("", &Value::Object(self.metrics.clone()), &mut |k, v| {
            let base = lookup(&self.baseline.metrics, k).map_or_else(|| "—".into(), fmt_value);
            rows.push((k.to_owned(), fmt_value(v), base));
        });
        // Baseline-only metrics (e.g. a baseline reports a figure the model does not).
        flatten(
            "",
            &Value::Object(self.baseline.metrics.clone()),
            &mut |k, v| {
                if lookup(&self.metrics, k).is_none() {
                    rows.push((k.to_owned(), "—".into(), fmt_value(v)));
                }
            },
        );
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(6).max(6);
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(5).max(5);
        let baseline = format!("baseline ({})", self.baseline.name);
        let _ = writeln!(out, "\n{:<w0$}  {:>w1$}  {baseline}", "metric", "model");
        for (k, m, b) in rows {
            let _ = writeln!(out, "{k:<w0$}  {m:>w1$}  {b}");
        }
        for p in &self.plots {
            let _ = writeln!(out, "plot: {}", p.display());
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        out
    }
}

fn flatten(prefix: &str, v: &Value, f: &mut dyn FnMut(&str, &Value)) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, f);
            }
        }
        other => f(prefix, other),
    }
}

fn lookup<'a>(m: &'a Map<String, Value>, dotted: &str) -> Option<&'a Value> {
    let mut parts = dotted.split('.');
    let mut cur = m.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

fn fmt_value(v: &Value) -> String {
    match v {
        Value::Number(n) => n.as_f64().map_or_else(
            || n.to_string(),
            |x| {
                if x.fract() == 0.0 && x.abs() < 1e15 {
                    format!("{x:.0}")
                } else {
                    format!("{x:.4}")
                }
            },
        ),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_lines_up_model_and_baseline_by_nested_key() {
        let e = Evaluation {
            task: "clv".into(),
            data: "x.csv".into(),
            protocol: "p".into(),
            metrics: json!({"bgnbd": {"r": 0.2426}, "holdout_mae": 0.75})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            baseline: Baseline {
                name: "pareto".into(),
                metrics: json!({"holdout_mae": 0.7545, "extra": 3})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            },
            plots: vec![],
            notes: vec!["n1".into()],
        };
        let t = e.table();
        assert!(t.contains("bgnbd.r"), "{t}");
        assert!(t.contains("0.2426"), "{t}");
        let mae = t
            .lines()
            .find(|l| l.starts_with("holdout_mae"))
            .unwrap_or("");
        assert!(mae.contains("0.7500") && mae.contains("0.7545"), "{mae}");
        assert!(
            t.lines()
                .any(|l| l.starts_with("extra") && l.ends_with('3')),
            "{t}"
        );
        assert!(t.contains("note: n1"));
    }
}
