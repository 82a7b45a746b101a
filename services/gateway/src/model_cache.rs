//! The models the gateway scores with, fetched from the trainer and swapped atomically.
//!
//! Scoring reads the current artefact through an `ArcSwap`, so a model promotion never blocks
//! or tears a request, and the request path never waits on the trainer: a background task asks
//! the trainer which version is current every `refresh` interval, fetches, validates and swaps in
//! a new version's artefact, and after a failure retries with doubling backoff while the last good
//! model keeps serving. One cache per model family: the churn model (`/v1/models`, readiness
//! means it is loaded), the CLV model (`/v1/clv/models`, optional: without it scores carry
//! `clv` unavailable with the reason this cache gives) and the sentiment model
//! (`/v1/sentiment/models`, optional: without it `POST /v1/sentiment` answers `no_model`).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sextant_contracts::ModelVersion;
use sextant_models::churn_serving::ServedChurnModel;
use sextant_models::clv::serving::ClvArtifact;
use sextant_models::sentiment::SentimentArtifact;
use sextant_models::tabular::PropensityArtifact;
use sextant_service_kit::http::{UpstreamError, read_json};
use tokio::sync::Notify;

/// A model family the cache can hold.
pub trait CachedModel: Sized + Send + Sync + std::fmt::Debug + 'static {
    /// What the trainer's artefact route answers.
    type Wire: DeserializeOwned;
    /// What people call it in messages (`model`, `CLV model`).
    const LABEL: &'static str;
    /// The trainer's route prefix of the family (`/v1/models`).
    const ROUTE: &'static str;
    /// The artefact's version.
    fn version(&self) -> &ModelVersion;
    /// Whether the artefact can be served.
    fn check(&self) -> Result<(), String>;
    /// The cached model from the artefact the trainer served as `version`.
    ///
    /// # Errors
    /// Why the artefact cannot be this family's model.
    fn from_wire(wire: Self::Wire, version: &ModelVersion) -> Result<Self, String>;
}

impl CachedModel for ServedChurnModel {
    type Wire = Self;
    const LABEL: &'static str = "model";
    const ROUTE: &'static str = "/v1/models";
    fn version(&self) -> &ModelVersion {
        ServedChurnModel::version(self)
    }
    fn check(&self) -> Result<(), String> {
        self.validate().map_err(|e| e.to_string())
    }
    fn from_wire(wire: Self, _version: &ModelVersion) -> Result<Self, String> {
        Ok(wire)
    }
}

impl CachedModel for ClvArtifact {
    type Wire = Self;
    const LABEL: &'static str = "CLV model";
    const ROUTE: &'static str = "/v1/clv/models";
    fn version(&self) -> &ModelVersion {
        &self.version
    }
    fn check(&self) -> Result<(), String> {
        self.validate().map_err(|e| e.to_string())
    }
    fn from_wire(wire: Self, _version: &ModelVersion) -> Result<Self, String> {
        Ok(wire)
    }
}

/// The current sentiment model of support text, with its registry version parsed.
#[derive(Debug, Deserialize)]
#[serde(try_from = "SentimentArtifact")]
pub struct ServedSentiment {
    pub version: ModelVersion,
    pub artifact: SentimentArtifact,
}

impl TryFrom<SentimentArtifact> for ServedSentiment {
    type Error = String;
    fn try_from(artifact: SentimentArtifact) -> Result<Self, String> {
        let version = ModelVersion::parse(&artifact.version)
            .map_err(|e| format!("sentiment artefact version `{}`: {e}", artifact.version))?;
        Ok(Self { version, artifact })
    }
}

impl CachedModel for ServedSentiment {
    type Wire = Self;
    const LABEL: &'static str = "sentiment model";
    const ROUTE: &'static str = "/v1/sentiment/models";
    fn version(&self) -> &ModelVersion {
        &self.version
    }
    fn check(&self) -> Result<(), String> {
        self.artifact.validate().map_err(|e| e.to_string())
    }
    fn from_wire(wire: Self, _version: &ModelVersion) -> Result<Self, String> {
        Ok(wire)
    }
}

/// A propensity model of one prediction definition. Its artefact carries no version, so the
/// version is the one the trainer served it as.
#[derive(Debug)]
pub struct ServedPropensity {
    pub version: ModelVersion,
    pub artifact: PropensityArtifact,
}

impl CachedModel for ServedPropensity {
    type Wire = PropensityArtifact;
    const LABEL: &'static str = "propensity model";
    const ROUTE: &'static str = "/v1/propensity";
    fn version(&self) -> &ModelVersion {
        &self.version
    }
    fn check(&self) -> Result<(), String> {
        self.artifact.validate().map_err(|e| e.to_string())
    }
    fn from_wire(artifact: PropensityArtifact, version: &ModelVersion) -> Result<Self, String> {
        Ok(Self {
            version: version.clone(),
            artifact,
        })
    }
}

/// Why no model is available.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelUnavailable {
    /// The trainer has no model of the family yet.
    #[error("no {0} has been trained yet")]
    NoModel(&'static str),
    /// The trainer could not be asked and nothing is cached.
    #[error("trainer: {0}")]
    Upstream(String),
}

/// What the cache needs of `GET …/current`.
#[derive(Debug, Deserialize)]
struct Current {
    version: ModelVersion,
}

/// The cached current model of one family, refreshed in the background.
#[derive(Debug)]
pub struct ModelCache<M> {
    http: sextant_service_kit::internal_auth::InternalClient,
    trainer_url: String,
    /// The trainer's route prefix of the models (`/v1/models`, `/v1/propensity/{name}/models`).
    route: String,
    /// Which of the family's versions it follows: `current`, or `shadow` (the challenger, which
    /// is dropped as soon as the trainer names none).
    pointer: &'static str,
    refresh: Duration,
    current: ArcSwapOption<M>,
    /// Why the last refresh failed (cleared by a success); what a request without a model hears.
    last_error: ArcSwapOption<String>,
    /// Whether the trainer said it has no model (as opposed to being unreachable).
    no_model: std::sync::atomic::AtomicBool,
    /// Wakes the refresher early (a request found no model).
    wake: Notify,
}

/// Retry delays of the refresher after a failure: doubling from this, capped at the refresh
/// interval (and at [`MAX_BACKOFF`]).
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl<M: CachedModel> ModelCache<M> {
    /// A cache over the trainer at `trainer_url`; call [`ModelCache::run_refresher`] to keep it
    /// fresh.
    pub fn new(
        http: sextant_service_kit::internal_auth::InternalClient,
        trainer_url: &str,
        refresh: Duration,
    ) -> Self {
        Self::with_route(http, trainer_url, M::ROUTE, refresh)
    }

    /// A cache of the family's shadow (challenger) version: empty while the trainer names none,
    /// emptied when it stops naming one.
    pub fn shadow(
        http: sextant_service_kit::internal_auth::InternalClient,
        trainer_url: &str,
        refresh: Duration,
    ) -> Self {
        Self {
            pointer: "shadow",
            ..Self::with_route(http, trainer_url, M::ROUTE, refresh)
        }
    }

    /// A cache of the models under `route` (for families with one registry per member).
    pub fn with_route(
        http: sextant_service_kit::internal_auth::InternalClient,
        trainer_url: &str,
        route: &str,
        refresh: Duration,
    ) -> Self {
        Self {
            http,
            trainer_url: trainer_url.trim_end_matches('/').to_owned(),
            route: route.to_owned(),
            pointer: "current",
            refresh,
            current: ArcSwapOption::empty(),
            last_error: ArcSwapOption::empty(),
            no_model: std::sync::atomic::AtomicBool::new(true),
            wake: Notify::new(),
        }
    }

    /// The model to score with. Never waits on the trainer: without a model loaded it answers at
    /// once (and wakes the refresher).
    pub fn get(&self) -> Result<Arc<M>, ModelUnavailable> {
        if let Some(loaded) = self.current.load_full() {
            return Ok(loaded);
        }
        self.wake.notify_one();
        if self.no_model.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ModelUnavailable::NoModel(M::LABEL));
        }
        Err(ModelUnavailable::Upstream(
            self.last_error
                .load_full()
                .map_or_else(|| format!("{} not loaded yet", M::LABEL), |e| (*e).clone()),
        ))
    }

    /// Whether a model is loaded (readiness).
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// Keeps the model fresh until the task is dropped: asks the trainer every `refresh`; after a
    /// failure retries with doubling backoff, keeping the last good model meanwhile.
    pub async fn run_refresher(self: Arc<Self>) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let delay = match self.refresh_now().await {
                Ok(_) => {
                    backoff = MIN_BACKOFF;
                    self.last_error.store(None);
                    self.refresh
                }
                Err(e) => {
                    let unloaded = !self.is_loaded();
                    if let ModelUnavailable::NoModel(_) = e {
                        if self.pointer == "shadow" && !unloaded {
                            tracing::info!(
                                model = M::LABEL,
                                "Shadow model no longer named; dropped."
                            );
                            self.current.store(None);
                        }
                        self.no_model
                            .store(!self.is_loaded(), std::sync::atomic::Ordering::Relaxed);
                    } else {
                        self.no_model
                            .store(false, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(model = M::LABEL, error = %e, retry_in_ms = backoff.as_millis() as u64, "Model refresh failed; keeping the last model.");
                    }
                    self.last_error.store(Some(Arc::new(e.to_string())));
                    let d = backoff;
                    backoff = (backoff * 2).min(self.refresh.min(MAX_BACKOFF));
                    d
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.wake.notified(), if !self.is_loaded() => {}
            }
        }
    }

    async fn refresh_now(&self) -> Result<Arc<M>, ModelUnavailable> {
        let upstream = |e: UpstreamError| match e.status() {
            Some(404) => ModelUnavailable::NoModel(M::LABEL),
            _ => ModelUnavailable::Upstream(e.to_string()),
        };
        let transport = |e: reqwest::Error| ModelUnavailable::Upstream(e.to_string());
        let resp = self
            .http
            .get(format!(
                "{}{}/{}",
                self.trainer_url, self.route, self.pointer
            ))
            .send()
            .await
            .map_err(transport)?;
        let meta: Current = read_json(resp).await.map_err(upstream)?;
        let cached = self.current.load_full();
        let artifact = match cached {
            Some(c) if *c.version() == meta.version => c,
            _ => {
                let resp = self
                    .http
                    .get(format!(
                        "{}{}/{}/artifact",
                        self.trainer_url, self.route, meta.version
                    ))
                    .send()
                    .await
                    .map_err(transport)?;
                let wire: M::Wire = read_json(resp).await.map_err(upstream)?;
                let artifact = M::from_wire(wire, &meta.version).map_err(|e| {
                    ModelUnavailable::Upstream(format!("artefact {}: {e}", meta.version))
                })?;
                artifact.check().map_err(|e| {
                    ModelUnavailable::Upstream(format!("artefact {}: {e}", meta.version))
                })?;
                tracing::info!(model = M::LABEL, version = %artifact.version(), "Loaded model.");
                Arc::new(artifact)
            }
        };
        self.current.store(Some(artifact.clone()));
        Ok(artifact)
    }
}
