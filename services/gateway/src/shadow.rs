//! Shadow (challenger) scoring: when the trainer names a shadow churn model, the gateway scores
//! every scoring request's accounts with it too, after answering, and sends those scores to the
//! prediction log under the shadow's version. Nobody sees them; the registry's comparison
//! (`GET /v1/models/shadow/comparison` on the trainer) reads both versions' realised accuracy on
//! the same requests.
//!
//! Why bounded: a shadow doubles the scoring work. At most one shadow batch runs at a time; a
//! request that arrives while one runs is not shadowed, counted in
//! `sextant_gateway_shadow_skipped_total`, so the shadow can never slow the answers down.

use std::sync::Arc;

use sextant_contracts::api::{FeatureRow, PredictionRecord};
use sextant_models::churn_serving::{CustomerInput, ServedChurnModel};

use crate::AppState;

/// One shadow batch at a time, and what was skipped.
#[derive(Debug)]
pub struct ShadowRunner {
    permit: Arc<tokio::sync::Semaphore>,
    skipped: Option<sextant_service_kit::metrics::Counter<0>>,
}

impl ShadowRunner {
    /// A runner counting skipped batches in `metrics`.
    #[must_use]
    pub fn new(metrics: Option<&sextant_service_kit::metrics::Metrics>) -> Self {
        Self {
            permit: Arc::new(tokio::sync::Semaphore::new(1)),
            skipped: metrics.and_then(|m| {
                m.counter(
                    "sextant_gateway_shadow_skipped_total",
                    "Scoring requests not shadowed because a shadow batch was still running.",
                    [],
                )
                .inspect_err(|e| tracing::error!(error = %e, "Metric not registered."))
                .ok()
            }),
        }
    }
}

/// Scores `rows` with `shadow` in the background and logs the scores (see the module docs).
pub fn score_in_background(state: &AppState, shadow: Arc<ServedChurnModel>, rows: Vec<FeatureRow>) {
    let ServedChurnModel::Sequence(_) = &*shadow else {
        return;
    };
    let Ok(permit) = Arc::clone(&state.shadow.permit).try_acquire_owned() else {
        if let Some(c) = &state.shadow.skipped {
            c.inc([]);
        }
        return;
    };
    let log = Arc::clone(&state.prediction_log);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let ServedChurnModel::Sequence(m) = &*shadow else {
            return;
        };
        let no_features: Vec<f64> = Vec::new();
        let no_sequence: Vec<Vec<f64>> = Vec::new();
        let inputs: Vec<CustomerInput<'_>> = rows
            .iter()
            .map(|r| CustomerInput {
                features: r.features.as_deref().unwrap_or(&no_features),
                sequence: r.sequence.as_deref().unwrap_or(&no_sequence),
                category: r.attributes.get(&m.category_attribute).map(String::as_str),
            })
            .collect();
        match m.score_batch(&inputs, 1) {
            Ok(scores) => {
                let now = chrono::Utc::now();
                for (r, score) in rows.iter().zip(scores) {
                    log.record(PredictionRecord {
                        account_id: r.account_id.clone(),
                        model_version: m.version.clone(),
                        scored_at: now,
                        score,
                        band: Some(m.band(score).as_str().to_owned()),
                        action: None,
                        horizon_days: m.horizon_days,
                    });
                }
            }
            Err(e) => {
                tracing::warn!(version = %m.version, error = %e, "Shadow model could not score a batch.");
            }
        }
    });
}
