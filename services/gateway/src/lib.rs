//! The inference gateway: explained, versioned churn scores for Salesforce.
//!
//! Apex (through a Named Credential) and the record page call `POST /v1/scores` with up to 200
//! Account ids and a JWT. The gateway verifies the token, fetches the accounts' latest features
//! from the feature store, scores them with the current model from the trainer, and answers
//! one score per record with the model version — all over HTTP, so each service scales and
//! deploys on its own.
//!
//! # Layout
//! - [`auth`]: JWT verification (RS256 key/certificate, HS256 secret for development).
//! - [`model_cache`]: the current model, refreshed from the trainer and swapped atomically.
//! - [`api`]: HTTP handlers and the OpenAPI description.

pub mod api;
pub mod auth;
pub mod model_cache;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use serde::Deserialize;
use sextant_service_kit::server::Service;

/// Gateway settings (`SEXTANT_GATEWAY__…`).
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
    /// Where the trainer listens.
    #[serde(default = "default_trainer_url")]
    pub trainer_url: String,
    /// How often to ask the trainer whether a newer model is current, in seconds.
    #[serde(default = "default_refresh")]
    pub model_refresh_secs: u64,
    /// Token verification.
    pub auth: auth::AuthSettings,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    8084
}
fn default_feature_store_url() -> String {
    "http://127.0.0.1:8082".into()
}
fn default_trainer_url() -> String {
    "http://127.0.0.1:8083".into()
}
fn default_refresh() -> u64 {
    30
}

impl Settings {
    /// Settings with the defaults and the given authentication.
    pub fn with_auth(auth: auth::AuthSettings) -> Self {
        Self {
            host: default_host(),
            port: default_port(),
            feature_store_url: default_feature_store_url(),
            trainer_url: default_trainer_url(),
            model_refresh_secs: default_refresh(),
            auth,
        }
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The authentication settings are unusable.
    #[error("auth: {0}")]
    Auth(#[from] auth::AuthConfigError),
    /// The port could not be bound.
    #[error("bind: {0}")]
    Bind(#[from] std::io::Error),
}

/// Shared state of the handlers.
#[derive(Debug)]
pub struct AppState {
    pub http: reqwest::Client,
    pub feature_store_url: String,
    pub models: Arc<model_cache::ModelCache>,
}

/// Builds the service: checks its settings, opens what it needs, binds the port.
#[derive(Debug)]
pub struct Application;

impl Application {
    /// Checks the settings and binds the port.
    pub async fn build(settings: &Settings) -> Result<Service, StartError> {
        let verifier = web::Data::new(auth::Verifier::new(&settings.auth)?);
        // Apex allows 120 s for a whole transaction; an upstream call must fail well before.
        let http = sextant_service_kit::http::client(Duration::from_secs(20));
        let models = Arc::new(model_cache::ModelCache::new(
            http.clone(),
            &settings.trainer_url,
            Duration::from_secs(settings.model_refresh_secs),
        ));
        // Stops with the runtime; the server owns nothing it would need to wait for.
        tokio::spawn(Arc::clone(&models).run_refresher());
        let state = web::Data::new(AppState {
            http: http.clone(),
            feature_store_url: settings.feature_store_url.trim_end_matches('/').to_owned(),
            models: Arc::clone(&models),
        });
        let service = Service::start(
            "gateway",
            &settings.host,
            settings.port,
            256 << 10,
            api::openapi(),
            move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(state.clone())
                    .app_data(verifier.clone())
                    .configure(api::routes);
            },
        )?;
        Ok(service)
    }
}
