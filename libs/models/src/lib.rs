//! Model artefacts, the serving-side forward pass, and evaluation metrics.
//!
//! Training happens in the trainer with Burn; serving must not drag Burn into the gateway. So a
//! trained model is exported as a small, versioned JSON artefact (input transform + dense layer
//! weights) and scored here in plain Rust. The trainer's tests check that this forward pass
//! agrees with Burn's on the same weights.
//!
//! # Layout
//! - [`action_policy`]: the value-aware next best action (churn band × CLV tier, configurable).
//! - [`artifact`]: the churn artefact and its forward pass.
//! - [`churn_serving`]: the served sequence churn model: bands, occlusion factors, next best action.
//! - [`clv`]: BG/NBD, Pareto/NBD, Gamma-Gamma and discounted CLV (maximum likelihood, closed forms).
//! - [`evaluation`]: the result shape of `sextant evaluate` and its errors.
//! - [`metrics`]: ROC-AUC, accuracy, log-loss, the ROC curve, and an SVG plot of it.
//! - [`next_category`]: derived product categories and the next-purchase-category model.
//! - [`recommend`]: cross-sell (EASE, item-kNN, ALS, popularity), ranking metrics, product clusters.
//! - [`sentiment`]: the sentiment artefact and forward pass, the VADER lexicon scorer, F1 metrics.
//! - [`sequence`]: the sequence (GRU) churn artefact and its fast batched forward pass.
//! - [`tabular`]: propensity on any object: prediction definitions, the fitted tabular encoder, the
//!   artefact, its forward pass and per-prediction factors (occlusion per field).

pub mod action_policy;
pub mod artifact;
pub mod churn_serving;
pub mod clv;
pub mod evaluation;
pub mod metrics;
pub mod next_category;
pub mod recommend;
pub mod sentiment;
pub mod sequence;
pub mod tabular;

pub use artifact::{ChurnArtifact, Dense, ModelError};
pub use evaluation::{Baseline, EvalError, Evaluation};
