//! The admin console: one page where an admin sees and does what otherwise needs curl — sync
//! runs with their progress and the org's API budget, starting a sync; models with their metrics,
//! plots and promotion state, promoting one; the gateway's health and request rate.
//!
//! It is a service of its own so that no service has to link another: it only calls the
//! connector, trainer and gateway over HTTP, like any other client (with the internal token when
//! one is configured), and stays useful when one of them is down — each panel reports its own
//! upstream's state. Everything under `/api/` needs the admin token (a bearer token compared in
//! constant time); the page and its script carry no data and are served to anyone.

pub mod api;
pub mod auth;

use std::time::Duration;

use actix_web::web;
use secrecy::SecretString;
use serde::Deserialize;
use sextant_service_kit::server::Service;

/// Admin console settings (`SEXTANT_ADMIN__…`).
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Address to bind.
    #[serde(default = "default_host")]
    pub host: String,
    /// Port to bind; 0 picks a free one.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The token an admin types into the page (at least 24 characters).
    pub admin_token: SecretString,
    /// Where the connector listens.
    #[serde(default = "default_connector_url")]
    pub connector_url: String,
    /// Where the trainer listens.
    #[serde(default = "default_trainer_url")]
    pub trainer_url: String,
    /// Where the gateway listens.
    #[serde(default = "default_gateway_url")]
    pub gateway_url: String,
    /// The suite's internal bearer token, sent to the connector and trainer when set.
    #[serde(default)]
    pub internal_token: Option<SecretString>,
    /// Time limit of each call to another service, in seconds.
    #[serde(default = "default_upstream_timeout_secs")]
    pub upstream_timeout_secs: u64,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    8085
}
fn default_connector_url() -> String {
    "http://127.0.0.1:8081".into()
}
fn default_trainer_url() -> String {
    "http://127.0.0.1:8083".into()
}
fn default_gateway_url() -> String {
    "http://127.0.0.1:8084".into()
}
fn default_upstream_timeout_secs() -> u64 {
    10
}

impl Settings {
    /// Settings with the given token and the default addresses.
    pub fn with_token(admin_token: SecretString) -> Self {
        Self {
            host: default_host(),
            port: default_port(),
            admin_token,
            connector_url: default_connector_url(),
            trainer_url: default_trainer_url(),
            gateway_url: default_gateway_url(),
            internal_token: None,
            upstream_timeout_secs: default_upstream_timeout_secs(),
        }
    }
}

/// Why the console did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The admin token is too short to resist guessing.
    #[error("admin_token must be at least {min} characters")]
    WeakToken { min: usize },
    /// A service URL is not an http(s) URL.
    #[error("{name} must be an http:// or https:// URL")]
    BadUrl { name: &'static str },
    /// Binding the port failed.
    #[error("binding: {0}")]
    Io(#[from] std::io::Error),
    /// The internal token is unusable (too short).
    #[error("internal_token: {0}")]
    InternalToken(#[from] sextant_service_kit::internal_auth::InternalAuthError),
}

/// Builds the console: checks its settings and binds the port.
#[derive(Debug)]
pub struct Application;

impl Application {
    /// Checks the settings and binds the port.
    pub fn build(settings: &Settings) -> Result<Service, StartError> {
        let token = auth::AdminToken::new(&settings.admin_token)?;
        let upstreams = api::Upstreams::new(settings)?;
        let state = web::Data::new(api::AppState {
            http: sextant_service_kit::http::client(Duration::from_secs(
                settings.upstream_timeout_secs.max(1),
            )),
            upstreams,
        });
        let token = web::Data::new(token);
        let service = Service::start(
            "admin",
            &settings.host,
            settings.port,
            16 << 10,
            api::openapi(),
            move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(state.clone())
                    .app_data(token.clone())
                    .configure(api::routes);
            },
        )?;
        Ok(service)
    }
}
