//! `sextant evaluate next-category`.

use std::path::Path;

use super::{EvalError, EvalOptions, Evaluation, Task};

/// Runs the next-category protocol on `data`.
///
/// # Errors
/// See [`EvalError`].
pub fn evaluate(_data: &Path, _options: &EvalOptions) -> Result<Evaluation, EvalError> {
    Err(super::not_built(Task::NextCategory))
}
