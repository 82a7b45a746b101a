//! The trainer: trains churn models with Burn (and fits CLV models) and keeps them in versioned
//! registries.
//!
//! A job fetches a point-in-time training set with weekly sequences at stacked cut-offs from the
//! feature store over HTTP, trains the sequence (GRU) churn model with Burn (CPU by default, CUDA
//! with the `cuda` feature) on the earlier cut-offs, evaluates it out of time on the latest, and
//! stores the artefact, its metrics and config, and its plots (ROC curve, learning curve) as a
//! new version; a promotion gate makes it current only when it is at least as good as the
//! current model on the same evaluation. The gateway fetches artefacts from here.
//!
//! A CLV job does the same for customer lifetime value: BTYD models fitted on each account's
//! purchase summary at a cut-off, evaluated on the next window's purchases, in their own
//! registry (`/v1/clv/models`) with their own gate (holdout MAE).
//!
//! # Layout
//! - [`model`]: the Burn module.
//! - [`churn_job`]: the churn job: stacked cut-offs with sequences, the sequence model trained on
//!   the earlier ones and evaluated out of time on the latest, the serving wrapper, the gate.
//! - [`training`]: the earlier MLP run on aggregates (split, normalise, fit, evaluate, export).
//! - [`clv_job`]: the CLV job: BTYD summaries from a point-in-time set at the cut-off and the end
//!   of the holdout window, BG/NBD (or its fallback) and Gamma-Gamma, holdout evaluation, value
//!   tiers, the gate.
//! - [`registry`]: versioned artefacts on disk, one registry per model family (churn, CLV,
//!   sentiment) with the same layout, promotion and rollback.
//! - [`sentiment`]: the sentiment network of support text (Burn) and its export.
//! - [`jobs`]: background jobs with progress.
//! - [`propensity_registry`]: prediction definitions by name, each with its own registry.
//! - [`propensity`]: propensity on any object (prediction definitions): logistic regression,
//!   wide-and-deep network averaged over seeds, or a blend of the two, chosen by inner
//!   cross-validation.
//! - [`evaluate`]: `sextant evaluate`, each model's protocol against its baseline on a data file.
//! - [`api`]: HTTP handlers and the OpenAPI description.

pub mod api;
pub mod churn_job;
pub mod clv_job;
pub mod evaluate;
pub mod jobs;
pub mod model;
pub mod propensity;
pub mod propensity_registry;
pub mod registry;
pub mod sentiment;
pub mod sequence_model;
pub mod training;

use std::path::PathBuf;
use std::time::Duration;

use actix_web::web;
use serde::Deserialize;
use sextant_contracts::time::SharedClock;
use sextant_service_kit::internal_auth::{
    InternalAuth, InternalAuthError, InternalClient, InternalKey, InternalVerifier,
};
use sextant_service_kit::metrics::Metrics;
use sextant_service_kit::server::Service;

/// Trainer settings (`SEXTANT_TRAINER__…`).
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Address to bind.
    #[serde(default = "default_host")]
    pub host: String,
    /// Port to bind; 0 picks a free one.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Where the feature store listens.
    #[serde(default = "default_feature_store_url")]
    pub feature_store_url: String,
    /// Directory of the model registry.
    #[serde(default = "default_registry_dir")]
    pub registry_dir: PathBuf,
    /// Epochs when a job does not say.
    #[serde(default = "default_epochs")]
    pub default_epochs: u32,
    /// The deployment's internal key (`SEXTANT_TRAINER__INTERNAL_TOKEN`, at least 32 bytes):
    /// when set, every API call needs an internal token signed with it, and the trainer's calls
    /// to the feature store carry one. Unset: open (local development only; a warning says so).
    #[serde(default)]
    pub internal_token: Option<secrecy::SecretString>,
    /// Keys accepted besides `internal_token` while it is rotated (`…__INTERNAL_TOKEN_PREVIOUS`,
    /// comma- or whitespace-separated, each at least 32 bytes); tokens name theirs by `kid`.
    #[serde(default)]
    pub internal_token_previous: Option<secrecy::SecretString>,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    8083
}
fn default_feature_store_url() -> String {
    "http://127.0.0.1:8082".into()
}
fn default_registry_dir() -> PathBuf {
    PathBuf::from("sextant-models")
}
fn default_epochs() -> u32 {
    100
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: default_host(),
            port: default_port(),
            feature_store_url: default_feature_store_url(),
            registry_dir: default_registry_dir(),
            default_epochs: default_epochs(),
            internal_token: None,
            internal_token_previous: None,
        }
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The registry directory is unusable.
    #[error("registry: {0}")]
    Registry(#[from] registry::RegistryError),
    /// The port could not be bound.
    #[error("bind: {0}")]
    Bind(#[from] std::io::Error),
    /// The internal token is unusable (too short).
    #[error("internal_token: {0}")]
    InternalToken(#[from] InternalAuthError),
}

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub registry: registry::Registry<registry::Churn>,
    pub clv_registry: registry::Registry<registry::Clv>,
    pub sentiment_registry: registry::Registry<registry::Sentiment>,
    pub cross_sell_registry: registry::Registry<registry::CrossSell>,
    pub propensity: propensity_registry::PropensityRegistries,
    pub jobs: jobs::Jobs,
    pub default_epochs: u32,
    pub clock: SharedClock,
}

/// Builds the service: checks its settings, opens what it needs, binds the port.
#[derive(Debug)]
pub struct Application;

impl Application {
    /// Opens the registry and binds the port.
    pub async fn build(settings: &Settings, clock: SharedClock) -> Result<Service, StartError> {
        let registry = registry::Registry::open(&settings.registry_dir)?;
        let clv_registry = registry::Registry::open(&settings.registry_dir)?;
        let sentiment_registry = registry::Registry::open(&settings.registry_dir)?;
        let cross_sell_registry = registry::Registry::open(&settings.registry_dir)?;
        let propensity = propensity_registry::PropensityRegistries::new(&settings.registry_dir)?;
        let internal_key = InternalKey::from_setting(settings.internal_token.as_ref())?;
        let verifier = InternalVerifier::from_settings(
            settings.internal_token.as_ref(),
            settings.internal_token_previous.as_ref(),
        )?;
        let http = InternalClient::new(
            sextant_service_kit::http::client(Duration::from_secs(120)),
            internal_key
                .clone()
                .map(|k| InternalAuth::new("trainer", k)),
        );
        let jobs = jobs::Jobs::new(
            http,
            &settings.feature_store_url,
            registry.clone(),
            clv_registry.clone(),
            sentiment_registry.clone(),
            clock.clone(),
        );
        let state = web::Data::new(AppState {
            registry,
            clv_registry,
            sentiment_registry,
            cross_sell_registry,
            propensity,
            jobs,
            default_epochs: settings.default_epochs,
            clock,
        });
        let service = Service::start_guarded(
            "trainer",
            &settings.host,
            settings.port,
            1 << 20,
            api::openapi(),
            Metrics::new("trainer"),
            verifier,
            move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(state.clone()).configure(api::routes);
            },
        )?;
        Ok(service)
    }
}
