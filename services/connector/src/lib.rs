//! The connector: Sextant's connected app in a Salesforce org.
//!
//! It logs in with the OAuth 2.0 JWT bearer flow (a private key whose certificate is uploaded to
//! the connected app; no password, no user interaction), reads CRM objects with SOQL following
//! every `nextRecordsUrl`, and ingests them into the feature store over HTTP.
//!
//! # Layout
//! - [`mapping`]: SOQL per object and record mapping.
//! - [`sync`]: a full sync.
//! - [`api`]: HTTP handlers and the OpenAPI description.
//! - [`jobs`]: syncs as background jobs (start, watch, cancel, list).
//! - [`connect`]: `sextant connect` (web-server flow + PKCE) and the encrypted refresh token.

pub mod api;
pub mod connect;
pub mod jobs;
pub mod mapping;
pub mod sync;

use std::path::PathBuf;
use std::time::Duration;

use actix_web::web;
use secrecy::SecretString;
use serde::Deserialize;
use sextant_contracts::time::SharedClock;
use sextant_salesforce::auth::jwt_audience_for;
use sextant_salesforce::{
    BudgetPolicy, ClientOptions, JwtBearerConfig, LoginFlow, SalesforceClient, SalesforceError,
};
use sextant_service_kit::server::Service;

/// The connected app (`SEXTANT_CONNECTOR__SALESFORCE__…`).
#[derive(Debug, Clone, Deserialize)]
pub struct SalesforceSettings {
    /// `https://login.salesforce.com`, `https://test.salesforce.com` or the org's My Domain.
    pub login_url: String,
    /// JWT `aud`; defaults to `https://login.salesforce.com`, or `https://test.salesforce.com`
    /// for the sandbox login host and sandbox My Domains (never the My Domain URL itself).
    #[serde(default)]
    pub audience: Option<String>,
    /// The connected app's consumer key.
    pub client_id: String,
    /// The integration user.
    pub username: String,
    /// PEM private key file matching the connected app's certificate.
    pub private_key_path: PathBuf,
    /// REST API version.
    #[serde(default = "default_api_version")]
    pub api_version: String,
}

fn default_api_version() -> String {
    "62.0".into()
}

/// Connector settings (`SEXTANT_CONNECTOR__…`).
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
    /// The Salesforce org.
    pub salesforce: SalesforceSettings,
    /// Share of the org's daily API allowance from which calls are slowed down.
    #[serde(default = "default_slow_down_at")]
    pub api_budget_slow_down_at: f64,
    /// Share of the org's daily API allowance at which syncs stop with `BudgetExhausted`.
    #[serde(default = "default_stop_at")]
    pub api_budget_stop_at: f64,
}

fn default_slow_down_at() -> f64 {
    BudgetPolicy::default().slow_down_at
}
fn default_stop_at() -> f64 {
    BudgetPolicy::default().stop_at
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    8081
}
fn default_feature_store_url() -> String {
    "http://127.0.0.1:8082".into()
}

impl Settings {
    /// Settings with defaults for everything but the org.
    pub fn with_salesforce(salesforce: SalesforceSettings) -> Self {
        Self {
            host: default_host(),
            port: default_port(),
            feature_store_url: default_feature_store_url(),
            salesforce,
            api_budget_slow_down_at: default_slow_down_at(),
            api_budget_stop_at: default_stop_at(),
        }
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The private key file could not be read (its content is never printed).
    #[error("reading the private key {path}: {source}")]
    Key {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The port could not be bound.
    #[error("bind: {0}")]
    Bind(#[from] std::io::Error),
    /// The Salesforce settings cannot work (a My Domain JWT audience, a nonsensical budget).
    #[error("Salesforce settings: {0}")]
    Salesforce(#[from] SalesforceError),
}

/// Shared state of the handlers.
#[derive(Debug)]
pub struct AppState {
    pub salesforce: SalesforceClient,
    pub http: reqwest::Client,
    pub feature_store_url: String,
    pub clock: SharedClock,
    /// One sync at a time.
    pub sync_lock: tokio::sync::Mutex<()>,
    /// Background sync jobs.
    pub jobs: jobs::Jobs,
}

/// Builds the service: checks its settings, opens what it needs, binds the port.
#[derive(Debug)]
pub struct Application;

impl Application {
    /// Reads the key and binds the port; the first Salesforce login happens on the first sync.
    pub async fn build(settings: &Settings, clock: SharedClock) -> Result<Service, StartError> {
        let sf = &settings.salesforce;
        let key =
            std::fs::read_to_string(&sf.private_key_path).map_err(|source| StartError::Key {
                path: sf.private_key_path.clone(),
                source,
            })?;
        let auth = JwtBearerConfig {
            login_url: sf.login_url.clone(),
            audience: sf
                .audience
                .clone()
                .unwrap_or_else(|| jwt_audience_for(&sf.login_url).to_owned()),
            client_id: sf.client_id.clone(),
            username: sf.username.clone(),
            private_key_pem: SecretString::from(key),
        };
        // Refuse a configuration Salesforce will refuse, at start-up rather than at first sync.
        auth.validate()?;
        let options = ClientOptions {
            api_version: sf.api_version.clone(),
            budget: BudgetPolicy {
                slow_down_at: settings.api_budget_slow_down_at,
                stop_at: settings.api_budget_stop_at,
                ..BudgetPolicy::default()
            },
            ..ClientOptions::default()
        };
        let salesforce =
            SalesforceClient::build(LoginFlow::JwtBearer(auth), clock.clone(), options)?;
        let http = sextant_service_kit::http::client(Duration::from_secs(120));
        let state = web::Data::new(AppState {
            salesforce,
            http,
            feature_store_url: settings.feature_store_url.trim_end_matches('/').to_owned(),
            clock,
            sync_lock: tokio::sync::Mutex::new(()),
            jobs: jobs::Jobs::default(),
        });
        let service = Service::start(
            "connector",
            &settings.host,
            settings.port,
            1 << 20,
            api::openapi(),
            move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(state.clone()).configure(api::routes);
            },
        )?;
        Ok(service)
    }
}
