//! The model the gateway scores with, fetched from the trainer and swapped atomically.
//!
//! Scoring reads the current artefact through an `ArcSwap`, so a model promotion never blocks
//! or tears a request. The trainer is asked which version is current at most once per
//! `refresh` interval; a new version's artefact is fetched, validated and swapped in. If the
//! trainer is unreachable, the last good model keeps serving.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use sextant_contracts::api::ModelMetadata;
use sextant_models::ChurnArtifact;
use sextant_service_kit::http::{UpstreamError, read_json};
use tokio::sync::Mutex;

#[derive(Debug)]
struct Loaded {
    artifact: Arc<ChurnArtifact>,
    checked_at: Instant,
}

/// Why no model is available.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelUnavailable {
    /// The trainer has no model yet.
    #[error("no model has been trained yet")]
    NoModel,
    /// The trainer could not be asked and nothing is cached.
    #[error("trainer: {0}")]
    Upstream(String),
}

/// The cached current model.
#[derive(Debug)]
pub struct ModelCache {
    http: reqwest::Client,
    trainer_url: String,
    refresh: Duration,
    current: ArcSwapOption<Loaded>,
    /// One refresh at a time; other requests keep using the current model meanwhile.
    refreshing: Mutex<()>,
}

impl ModelCache {
    /// A cache over the trainer at `trainer_url`.
    pub fn new(http: reqwest::Client, trainer_url: &str, refresh: Duration) -> Self {
        Self {
            http,
            trainer_url: trainer_url.trim_end_matches('/').to_owned(),
            refresh,
            current: ArcSwapOption::empty(),
            refreshing: Mutex::new(()),
        }
    }

    /// The model to score with.
    pub async fn get(&self) -> Result<Arc<ChurnArtifact>, ModelUnavailable> {
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        let _guard = self.refreshing.lock().await;
        // Requests that queued behind a refresh use its result instead of refreshing again.
        if let Some(fresh) = self.fresh() {
            return Ok(fresh);
        }
        match self.refresh_now().await {
            Ok(artifact) => Ok(artifact),
            Err(e) => match self.current.load_full() {
                Some(stale) => {
                    tracing::warn!(error = %e, version = %stale.artifact.version, "Trainer unavailable; serving the last model.");
                    Ok(stale.artifact.clone())
                }
                None => Err(e),
            },
        }
    }

    /// The current model, if it was checked within the refresh interval.
    fn fresh(&self) -> Option<Arc<ChurnArtifact>> {
        self.current
            .load_full()
            .filter(|loaded| loaded.checked_at.elapsed() < self.refresh)
            .map(|loaded| loaded.artifact.clone())
    }

    async fn refresh_now(&self) -> Result<Arc<ChurnArtifact>, ModelUnavailable> {
        let upstream = |e: UpstreamError| match e.status() {
            Some(404) => ModelUnavailable::NoModel,
            _ => ModelUnavailable::Upstream(e.to_string()),
        };
        let transport = |e: reqwest::Error| ModelUnavailable::Upstream(e.to_string());
        let resp = self
            .http
            .get(format!("{}/v1/models/current", self.trainer_url))
            .send()
            .await
            .map_err(transport)?;
        let meta: ModelMetadata = read_json(resp).await.map_err(upstream)?;
        let cached = self.current.load_full();
        let artifact = match cached {
            Some(c) if c.artifact.version == meta.version => c.artifact.clone(),
            _ => {
                let resp = self
                    .http
                    .get(format!(
                        "{}/v1/models/{}/artifact",
                        self.trainer_url, meta.version
                    ))
                    .send()
                    .await
                    .map_err(transport)?;
                let artifact: ChurnArtifact = read_json(resp).await.map_err(upstream)?;
                artifact.validate().map_err(|e| {
                    ModelUnavailable::Upstream(format!("artefact {}: {e}", meta.version))
                })?;
                tracing::info!(version = %artifact.version, "Loaded model.");
                Arc::new(artifact)
            }
        };
        self.current.store(Some(Arc::new(Loaded {
            artifact: artifact.clone(),
            checked_at: Instant::now(),
        })));
        Ok(artifact)
    }
}
