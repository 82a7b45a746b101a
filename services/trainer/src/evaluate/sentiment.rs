//! `sextant evaluate sentiment`.

use std::path::Path;

use super::{EvalError, EvalOptions, Evaluation, Task};

/// Runs the sentiment protocol on `data`.
///
/// # Errors
/// See [`EvalError`].
pub fn evaluate(_data: &Path, _options: &EvalOptions) -> Result<Evaluation, EvalError> {
    Err(super::not_built(Task::Sentiment))
}
