//! `sextant evaluate <task> --data <file>`: the full measurement protocol of each model on a file in
//! the same format as the public data sets (so a data scientist can run it on their own export).
//!
//! Each task lives in its own module and returns an [`Evaluation`]: the model's metrics next to its
//! classical baseline, on the same split, in the same run. Protocols (splits, metrics) follow
//! `shared/docs/ml-anchors.md` and are rule-based (date cut-offs, `i mod k`), so Python and Rust select
//! identical rows.

use std::path::Path;

pub use sextant_models::{Baseline, EvalError, Evaluation};

pub mod churn;
pub mod clv;
pub mod cross_sell;
pub mod next_category;
pub mod propensity;
pub mod recommend;
pub mod sentiment;

/// The tasks `sextant evaluate` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Churn from weekly behaviour sequences (Online Retail format).
    Churn,
    /// BG/NBD, Pareto/NBD, Gamma-Gamma (CDNOW or Online Retail format).
    Clv,
    /// Propensity on any object (Telco format: a CSV with a yes/no label column).
    Propensity,
    /// Cross-sell recommendations (Online Retail format).
    Recommend,
    /// Sentiment of support text (VADER Amazon snippets format).
    Sentiment,
    /// Next purchase category (Online Retail format).
    NextCategory,
}

impl Task {
    /// The task's name as the CLI and the JSON output spell it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Churn => "churn",
            Self::Clv => "clv",
            Self::Propensity => "propensity",
            Self::Recommend => "recommend",
            Self::Sentiment => "sentiment",
            Self::NextCategory => "next-category",
        }
    }
}

/// Options shared by every task.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Seed for model initialisation and shuffling (splits are rule-based and ignore it).
    pub seed: u64,
    /// Where plots go; `None` writes none.
    pub plot_dir: Option<std::path::PathBuf>,
    /// Print progress to stderr.
    pub progress: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            seed: 42,
            plot_dir: None,
            progress: false,
        }
    }
}

/// What a user can fix in uploaded data, without the server's temporary path.
#[must_use]
pub fn upload_error_text(e: &EvalError) -> String {
    match e {
        EvalError::BadRow { line, message, .. } => format!("line {line}: {message}"),
        EvalError::Empty { .. } => "no data rows".to_owned(),
        EvalError::Unusable { message, .. } => message.clone(),
        EvalError::MissingColumn {
            column, expected, ..
        } => format!("missing column `{column}` (expected columns: {expected})"),
        EvalError::Io { source, .. } => format!("reading the upload: {source}"),
        other => other.to_string(),
    }
}

/// Runs one task's protocol on `data`.
///
/// # Errors
/// A clear [`EvalError`] naming the file and the problem (missing column, empty, bad row, unusable).
pub fn run(task: Task, data: &Path, options: &EvalOptions) -> Result<Evaluation, EvalError> {
    match task {
        Task::Churn => churn::evaluate(data, options),
        Task::Clv => clv::evaluate(data, options),
        Task::Propensity => propensity::evaluate(data, options),
        Task::Recommend => recommend::evaluate(data, options),
        Task::Sentiment => sentiment::evaluate(data, options),
        Task::NextCategory => next_category::evaluate(data, options),
    }
}
