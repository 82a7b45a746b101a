//! The inference gateway: explained, versioned churn scores for Salesforce.
//!
//! Apex (through a Named Credential) and the record page call `POST /v1/scores` with up to 200
//! Account ids and a JWT. The gateway verifies the token, fetches the accounts' latest features
//! from the feature store, scores them with the current churn model from the trainer, values
//! them with the current CLV model (lifetime value, P(alive)), and answers one score per record
//! with the model versions and a value-aware next best action — all over HTTP, so each service
//! scales and deploys on its own. The CLV model is optional: without it the churn score is
//! served and each record says why its `clv` is unavailable.
//!
//! # Layout
//! - [`auth`]: JWT verification (RS256 keys or certificates selected by `kid`, HS256 secret for
//!   development), token lifetime.
//! - [`jwks`]: RS256 keys from a JWKS URL, cached and refreshed in the background.
//! - [`rate_limit`]: per-caller (`sub`) token buckets on scoring calls (429 with `Retry-After`).
//! - [`model_cache`]: the current churn and CLV models, refreshed from the trainer and swapped
//!   atomically.
//! - [`api`]: HTTP handlers and the OpenAPI description.

pub mod api;
pub mod auth;
pub mod cross_sell;
pub mod jwks;
pub mod model_cache;
pub mod prediction_log;
pub mod propensity;
pub mod rate_limit;
pub mod shadow;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use serde::Deserialize;
use sextant_models::action_policy::{ActionPolicy, PolicyError};
use sextant_models::churn_serving::ServedChurnModel;
use sextant_models::clv::serving::{ClvArtifact, ValueHorizon};
use sextant_service_kit::metrics::Metrics;
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
    /// Per-caller limits of scoring calls (`SEXTANT_GATEWAY__RATE_LIMIT__REQUESTS_PER_SEC`, …;
    /// off by default).
    #[serde(default)]
    pub rate_limit: rate_limit::RateLimitSettings,
    /// The CLV shown with each score (`SEXTANT_GATEWAY__CLV__HORIZON_MONTHS`, …).
    #[serde(default)]
    pub clv: ClvSettings,
    /// The next-best-action table over churn band × CLV tier (a TOML table in the
    /// `SEXTANT_CONFIG` file; the defaults are documented in
    /// `sextant_models::action_policy`).
    #[serde(default)]
    pub action_policy: ActionPolicy,
    /// The deployment's internal key (`SEXTANT_GATEWAY__INTERNAL_TOKEN`, at least 32 bytes):
    /// calls to the feature store and trainer carry an internal token signed with it.
    #[serde(default)]
    pub internal_token: Option<secrecy::SecretString>,
}

/// How CLV is computed for scores.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClvSettings {
    /// Months of expected purchases valued, 1..=120 (default 12).
    #[serde(default = "default_clv_months")]
    pub horizon_months: u32,
    /// Yearly discount rate, 0..=1 (default 0.10 = 10 % a year).
    #[serde(default = "default_clv_rate")]
    pub discount_rate_annual: f64,
}

fn default_clv_months() -> u32 {
    12
}
fn default_clv_rate() -> f64 {
    0.10
}

impl Default for ClvSettings {
    fn default() -> Self {
        Self {
            horizon_months: default_clv_months(),
            discount_rate_annual: default_clv_rate(),
        }
    }
}

impl ClvSettings {
    /// Checks the ranges.
    ///
    /// # Errors
    /// A message naming the setting.
    pub fn validate(&self) -> Result<ValueHorizon, String> {
        if !(1..=120).contains(&self.horizon_months) {
            return Err(format!(
                "clv.horizon_months must be 1..=120, got {}",
                self.horizon_months
            ));
        }
        if !(0.0..=1.0).contains(&self.discount_rate_annual) {
            return Err(format!(
                "clv.discount_rate_annual must be 0..=1 (0.10 = 10 % a year), got {}",
                self.discount_rate_annual
            ));
        }
        Ok(ValueHorizon {
            months: self.horizon_months,
            discount_rate_annual: self.discount_rate_annual,
        })
    }
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
            rate_limit: rate_limit::RateLimitSettings::default(),
            clv: ClvSettings::default(),
            action_policy: ActionPolicy::default(),
            internal_token: None,
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
    /// The rate-limit settings are unusable.
    #[error("{0}")]
    RateLimit(#[from] rate_limit::RateLimitConfigError),
    /// The port could not be bound.
    #[error("bind: {0}")]
    Bind(#[from] std::io::Error),
    /// The CLV settings are out of range.
    #[error("{0}")]
    Clv(String),
    /// The action policy is incomplete or malformed.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The internal token is unusable (too short).
    #[error("internal_token: {0}")]
    InternalToken(#[from] sextant_service_kit::internal_auth::InternalAuthError),
}

/// Shared state of the handlers.
#[derive(Debug)]
pub struct AppState {
    /// Calls to the feature store and trainer (with the internal token).
    pub http: sextant_service_kit::internal_auth::InternalClient,
    pub feature_store_url: String,
    pub models: Arc<model_cache::ModelCache<ServedChurnModel>>,
    pub clv_models: Arc<model_cache::ModelCache<ClvArtifact>>,
    pub sentiment_models: Arc<model_cache::ModelCache<model_cache::ServedSentiment>>,
    pub cross_sell_models: Arc<model_cache::ModelCache<cross_sell::ServedCrossSell>>,
    /// The shadow (challenger) churn model, when the trainer names one.
    pub shadow_models: Arc<model_cache::ModelCache<ServedChurnModel>>,
    pub shadow: shadow::ShadowRunner,
    /// Every served churn score goes to the feature store's prediction log.
    pub prediction_log: Arc<prediction_log::PredictionLog>,
    pub propensity: Arc<propensity::PropensityModels>,
    pub clv_horizon: ValueHorizon,
    pub policy: ActionPolicy,
}

/// Builds the service: checks its settings, opens what it needs, binds the port.
#[derive(Debug)]
pub struct Application;

impl Application {
    /// Checks the settings and binds the port.
    pub async fn build(settings: &Settings) -> Result<Service, StartError> {
        Self::build_with_clock(settings, Arc::new(rate_limit::SystemClock::new())).await
    }

    /// [`Application::build`] with the clock the rate limiter reads (tests move it by hand).
    pub async fn build_with_clock(
        settings: &Settings,
        clock: Arc<dyn rate_limit::Clock>,
    ) -> Result<Service, StartError> {
        let metrics = Metrics::new("gateway");
        let verifier = auth::Verifier::with_metrics(&settings.auth, Some(&metrics))?;
        let limiter = web::Data::new(rate_limit::RateLimiter::new(
            &settings.rate_limit,
            clock,
            Some(&metrics),
        )?);
        if let Some(jwks) = verifier.jwks() {
            // One fetch before serving, so the first calls find the keys; a failure is logged
            // and counted, and the refresher keeps trying (tokens are refused meanwhile).
            let ok = jwks.refresh().await.is_ok();
            tokio::spawn(Arc::clone(jwks).run_refresher(ok));
        }
        let verifier = web::Data::new(verifier);
        let clv_horizon = settings.clv.validate().map_err(StartError::Clv)?;
        settings.action_policy.validate()?;
        // Apex allows 120 s for a whole transaction; an upstream call must fail well before.
        let internal_key = sextant_service_kit::internal_auth::InternalKey::from_setting(
            settings.internal_token.as_ref(),
        )?;
        if internal_key.is_none() {
            tracing::warn!(
                "No internal token configured: calls to the feature store and trainer carry none, and fail where they require one."
            );
        }
        let http = sextant_service_kit::internal_auth::InternalClient::new(
            sextant_service_kit::http::client(Duration::from_secs(20)),
            internal_key
                .map(|k| sextant_service_kit::internal_auth::InternalAuth::new("gateway", k)),
        );
        let models = Arc::new(model_cache::ModelCache::new(
            http.clone(),
            &settings.trainer_url,
            Duration::from_secs(settings.model_refresh_secs),
        ));
        // Stops with the runtime; the server owns nothing it would need to wait for.
        let clv_models = Arc::new(model_cache::ModelCache::new(
            http.clone(),
            &settings.trainer_url,
            Duration::from_secs(settings.model_refresh_secs),
        ));
        let sentiment_models = Arc::new(model_cache::ModelCache::new(
            http.clone(),
            &settings.trainer_url,
            Duration::from_secs(settings.model_refresh_secs),
        ));
        tokio::spawn(Arc::clone(&models).run_refresher());
        tokio::spawn(Arc::clone(&clv_models).run_refresher());
        tokio::spawn(Arc::clone(&sentiment_models).run_refresher());
        let cross_sell_models = Arc::new(model_cache::ModelCache::new(
            http.clone(),
            &settings.trainer_url,
            Duration::from_secs(settings.model_refresh_secs),
        ));
        tokio::spawn(Arc::clone(&cross_sell_models).run_refresher());
        let shadow_models = Arc::new(model_cache::ModelCache::shadow(
            http.clone(),
            &settings.trainer_url,
            Duration::from_secs(settings.model_refresh_secs),
        ));
        tokio::spawn(Arc::clone(&shadow_models).run_refresher());
        let propensity = Arc::new(propensity::PropensityModels::new(
            http.clone(),
            &settings.trainer_url,
            Duration::from_secs(settings.model_refresh_secs),
        ));
        tokio::spawn(Arc::clone(&propensity).run_follower());
        let state = web::Data::new(AppState {
            http: http.clone(),
            feature_store_url: settings.feature_store_url.trim_end_matches('/').to_owned(),
            models: Arc::clone(&models),
            clv_models,
            sentiment_models,
            cross_sell_models,
            shadow_models,
            shadow: shadow::ShadowRunner::new(Some(&metrics)),
            prediction_log: Arc::new(prediction_log::PredictionLog::start(
                http.clone(),
                &settings.feature_store_url,
                Some(&metrics),
            )),
            propensity,
            clv_horizon,
            policy: settings.action_policy.clone(),
        });
        let service = Service::start_with_metrics(
            "gateway",
            &settings.host,
            settings.port,
            256 << 10,
            api::openapi(),
            metrics,
            move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(state.clone())
                    .app_data(verifier.clone())
                    .app_data(limiter.clone())
                    .configure(api::routes);
            },
        )?;
        Ok(service)
    }
}
