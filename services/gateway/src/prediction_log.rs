//! Sends every churn score the gateway serves to the feature store's prediction log, where
//! realised accuracy per model version is computed once outcomes are known.
//!
//! Why off the request path: a score must not wait on the log. Scoring hands each prediction to a
//! bounded queue without waiting; one background task sends batches of up to 1,000 (or what
//! arrived within a second) to `POST /v1/predictions`, retrying a failed batch three times with
//! doubling backoff (the store skips what it already has, so a retry never duplicates). What
//! cannot be logged — the queue is full, or the store stayed unreachable — is counted in
//! `sextant_gateway_predictions_dropped_total` and logged with the reason, never silently lost;
//! logged rows are counted in `sextant_gateway_predictions_logged_total`.

use std::time::Duration;

use sextant_contracts::api::{MAX_PREDICTIONS_PER_CALL, PredictionBatch, PredictionRecord};
use sextant_service_kit::metrics::{Counter, Metrics};
use tokio::sync::mpsc;

/// Predictions waiting to be sent, at most.
const QUEUE: usize = 20_000;
/// Attempts per batch.
const ATTEMPTS: u32 = 4;

/// The sending half: cheap to call from a request.
#[derive(Debug)]
pub struct PredictionLog {
    tx: mpsc::Sender<PredictionRecord>,
    dropped: Option<Counter<0>>,
}

impl PredictionLog {
    /// Starts the background sender to `feature_store_url`.
    #[must_use]
    pub fn start(
        http: sextant_service_kit::internal_auth::InternalClient,
        feature_store_url: &str,
        metrics: Option<&Metrics>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let counter = |name: &str, help: &str| {
            metrics.and_then(|m| {
                m.counter(name, help, [])
                    .inspect_err(|e| tracing::error!(error = %e, "Metric not registered."))
                    .ok()
            })
        };
        let dropped = counter(
            "sextant_gateway_predictions_dropped_total",
            "Served predictions the prediction log could not take (queue full or store unreachable).",
        );
        let logged = counter(
            "sextant_gateway_predictions_logged_total",
            "Served predictions sent to the feature store's prediction log.",
        );
        tokio::spawn(send(
            rx,
            http,
            format!("{}/v1/predictions", feature_store_url.trim_end_matches('/')),
            logged,
            dropped.clone(),
        ));
        Self { tx, dropped }
    }

    /// Queues one served prediction; never waits.
    pub fn record(&self, p: PredictionRecord) {
        if let Err(e) = self.tx.try_send(p) {
            if let Some(c) = &self.dropped {
                c.inc([]);
            }
            tracing::warn!(reason = %e, "Prediction not logged: the log's queue is full or closed.");
        }
    }
}

async fn send(
    mut rx: mpsc::Receiver<PredictionRecord>,
    http: sextant_service_kit::internal_auth::InternalClient,
    url: String,
    logged: Option<Counter<0>>,
    dropped: Option<Counter<0>>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let window = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(window);
        while batch.len() < MAX_PREDICTIONS_PER_CALL {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(p) => batch.push(p),
                    None => break,
                },
                () = &mut window => break,
            }
        }
        let n = batch.len() as u64;
        let body = PredictionBatch {
            org_id: None,
            predictions: batch,
        };
        let mut delay = Duration::from_millis(500);
        let mut outcome = Err(String::new());
        for attempt in 1..=ATTEMPTS {
            outcome = match http.post(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(e.to_string()),
            };
            if outcome.is_ok() || attempt == ATTEMPTS {
                break;
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        match outcome {
            Ok(()) => {
                if let Some(c) = &logged {
                    c.inc_by([], n);
                }
            }
            Err(reason) => {
                if let Some(c) = &dropped {
                    c.inc_by([], n);
                }
                tracing::error!(predictions = n, %reason, "Predictions not logged after retries.");
            }
        }
    }
}
