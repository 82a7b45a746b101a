//! The feature store: CRM records synced from Salesforce, and point-in-time features over them.
//!
//! It keeps every version of each record, keyed by org, Salesforce Id and **known time**
//! (SystemModstamp, else the ingest time), in SQLite by default or PostgreSQL in production. So
//! re-ingesting is harmless, an older version arriving late changes nothing current, and it can
//! answer two questions honestly: "what did each account look like as of a past cut-off, as far as
//! anyone knew then, and did it churn afterwards?" (training sets, streamed) and "what does each of
//! these accounts look like now?" (online features, materialised per account: an ingest queues
//! the accounts it touched, a background worker recomputes them, and a lookup recomputes any
//! still queued, so a read is never stale). Both use the same declared feature set (`sextant-features`), so
//! training and serving cannot drift apart.
//!
//! # Layout
//! - [`migration`]: the tables, frozen migration by migration.
//! - [`store`]: versioned ingest, point-in-time reads (set-based SQL), the online store.
//! - [`sentiment`]: whether a case reads as negative (the trained model when loaded, else the
//!   lexicon), decided at ingest and recorded per case.
//! - [`training`]: the NDJSON training-set stream with its fingerprint.
//! - [`records`]: records of any synced object (standard or custom) as a streamed CSV, what
//!   propensity jobs train on.
//! - [`api`]: the HTTP handlers and the OpenAPI description.
//! - [`export`]: the versioned tables to Parquet, in the feature engine's layout (an HTTP job).
//! - [`Application`]: binds the port (0 in tests) and runs the server.

pub mod api;
pub mod export;
pub mod migration;
pub mod predictions;
pub mod purchases;
pub mod records;
pub mod sentiment;
pub mod store;
pub mod training;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use chrono::NaiveDate;
use sextant_contracts::time::SharedClock;
use sextant_service_kit::internal_auth::{
    InternalAuth, InternalClient, InternalKey, InternalVerifier,
};
use sextant_service_kit::metrics::{Counter, Gauge, Metrics};
use sextant_service_kit::server::Service;
use tokio::sync::Notify;

pub use settings::{Settings, redact_password, redact_url};

/// Settings and their redacted `Debug`.
mod settings {
    use chrono::NaiveDate;
    use serde::Deserialize;

    /// Feature store settings (`SEXTANT_FEATURE_STORE__…`).
    #[derive(Clone, Deserialize)]
    pub struct Settings {
        /// Address to bind.
        #[serde(default = "default_host")]
        pub host: String,
        /// Port to bind; 0 picks a free one.
        #[serde(default = "default_port")]
        pub port: u16,
        /// `sqlite::memory:`, `sqlite://path?mode=rwc` or `postgres://user@host/db`.
        /// A password in this URL is never logged.
        #[serde(default = "default_database_url")]
        pub database_url: String,
        /// Pins "today" for online features (historical data such as the demo's); unset in
        /// production, where today is the system date.
        #[serde(default)]
        pub today: Option<NaiveDate>,
        /// Order statuses that count as a purchase, comma-separated (case-insensitive). Draft,
        /// cancelled and other orders are not purchases.
        #[serde(default = "default_purchase_statuses")]
        pub purchase_statuses: String,
        /// A trained sentiment model (JSON artefact) for case text: `http(s)://…` (the trainer's
        /// artefact URL) or `file:///…`. Unset: the lexicon judges cases (recorded per case).
        #[serde(default)]
        pub sentiment_model_url: Option<String>,
        /// Seconds between re-reads of `sentiment_model_url`.
        #[serde(default = "default_sentiment_refresh_secs")]
        pub sentiment_refresh_secs: u64,
        /// The deployment's internal key (`SEXTANT_FEATURE_STORE__INTERNAL_TOKEN`, at least 32
        /// bytes): when set, every API call needs an internal token signed with it, and the
        /// store's own calls (the trainer's sentiment model) carry one. Unset: open (local
        /// development only; a warning says so at startup).
        #[serde(default)]
        pub internal_token: Option<secrecy::SecretString>,
        /// Keys accepted besides `internal_token` while it is rotated (`…__INTERNAL_TOKEN_PREVIOUS`,
        /// comma- or whitespace-separated, each at least 32 bytes); tokens name theirs by `kid`.
        #[serde(default)]
        pub internal_token_previous: Option<secrecy::SecretString>,
        /// Days the prediction log keeps a served score (older rows are swept hourly).
        #[serde(default = "default_prediction_retention_days")]
        pub prediction_retention_days: u32,
        /// The directory Parquet exports (`POST /v1/exports`) are written under; created on the
        /// first export. Requests name a path relative to it and cannot leave it.
        #[serde(default = "default_export_root")]
        pub export_root: std::path::PathBuf,
    }

    fn default_prediction_retention_days() -> u32 {
        400
    }

    fn default_export_root() -> std::path::PathBuf {
        "exports".into()
    }

    fn default_sentiment_refresh_secs() -> u64 {
        300
    }

    /// A URL without its query string and credentials, for logs.
    pub fn redact_url(url: &str) -> String {
        let base = url.split(['?', '#']).next().unwrap_or(url);
        redact_password(base)
    }

    fn default_purchase_statuses() -> String {
        "Activated".into()
    }

    impl Settings {
        /// The purchase statuses as a list.
        pub fn purchase_status_list(&self) -> Vec<String> {
            self.purchase_statuses
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }
    }

    fn default_host() -> String {
        "127.0.0.1".into()
    }
    fn default_port() -> u16 {
        8082
    }
    fn default_database_url() -> String {
        "sqlite://sextant-features.sqlite?mode=rwc".into()
    }

    impl std::fmt::Debug for Settings {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Settings")
                .field("host", &self.host)
                .field("port", &self.port)
                .field("database_url", &redact_password(&self.database_url))
                .field("today", &self.today)
                .field("purchase_statuses", &self.purchase_statuses)
                .field(
                    "sentiment_model_url",
                    &self.sentiment_model_url.as_deref().map(redact_url),
                )
                .field("sentiment_refresh_secs", &self.sentiment_refresh_secs)
                .field("export_root", &self.export_root)
                .field(
                    "internal_token",
                    &self.internal_token.as_ref().map(|_| "***"),
                )
                .field(
                    "internal_token_previous",
                    &self.internal_token_previous.as_ref().map(|_| "***"),
                )
                .finish()
        }
    }

    /// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
    pub fn redact_password(url: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.to_owned();
        };
        let Some((credentials, host)) = rest.rsplit_once('@') else {
            return url.to_owned();
        };
        match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        }
    }

    impl Default for Settings {
        fn default() -> Self {
            Self {
                host: default_host(),
                port: default_port(),
                database_url: default_database_url(),
                today: None,
                purchase_statuses: default_purchase_statuses(),
                sentiment_model_url: None,
                sentiment_refresh_secs: default_sentiment_refresh_secs(),
                prediction_retention_days: default_prediction_retention_days(),
                export_root: default_export_root(),
                internal_token: None,
                internal_token_previous: None,
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn passwords_never_print() {
            let s = Settings {
                database_url: "postgres://sextant:hunter2@db:5432/f".into(),
                ..Settings::default()
            };
            let shown = format!("{s:?}");
            assert!(
                !shown.contains("hunter2") && shown.contains("postgres://sextant:***@db:5432/f"),
                "{shown}"
            );
            assert_eq!(redact_password("sqlite::memory:"), "sqlite::memory:");
            assert_eq!(
                redact_password("postgres://postgres@127.0.0.1/test"),
                "postgres://postgres@127.0.0.1/test"
            );
        }
    }
}

/// Loads the settings: defaults, the optional file, `SEXTANT_FEATURE_STORE__…` variables, and
/// the conventional `DATABASE_URL` when `SEXTANT_FEATURE_STORE__DATABASE_URL` is not set.
pub fn load_settings(
    file: Option<&std::path::Path>,
) -> Result<Settings, sextant_service_kit::config::ConfigError> {
    let mut settings: Settings = sextant_service_kit::config::load("SEXTANT_FEATURE_STORE", file)?;
    if std::env::var_os("SEXTANT_FEATURE_STORE__DATABASE_URL").is_none()
        && let Ok(url) = std::env::var("DATABASE_URL")
    {
        settings.database_url = url;
    }
    Ok(settings)
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The port could not be bound.
    #[error("bind: {0}")]
    Bind(#[from] std::io::Error),
}

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: store::Store,
    pub clock: SharedClock,
    /// Wakes the online refresher after an ingest queued accounts.
    pub refresh_wanted: Arc<Notify>,
    /// Parquet export jobs.
    pub exports: export::Exports,
}

impl AppState {
    /// Today's date, by the injected clock.
    pub fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }

    /// The online store's cut-off: the end of today, so today's orders count.
    pub fn online_as_of(&self) -> NaiveDate {
        self.today() + chrono::Duration::days(1)
    }
}

/// Builds the service: checks its settings, opens what it needs, binds the port.
#[derive(Debug)]
pub struct Application;

impl Application {
    /// Connects the database, migrates it and binds the port.
    pub async fn build(settings: &Settings, clock: SharedClock) -> Result<Service, StartError> {
        let statuses = settings.purchase_status_list();
        if statuses.is_empty() {
            return Err(StartError::Config(
                "purchase_statuses names no order status: nothing would count as a purchase".into(),
            ));
        }
        if settings.sentiment_refresh_secs == 0 {
            return Err(StartError::Config(
                "sentiment_refresh_secs must be at least 1".into(),
            ));
        }
        let internal_key = InternalKey::from_setting(settings.internal_token.as_ref())
            .map_err(|e| StartError::Config(e.to_string()))?;
        let verifier = InternalVerifier::from_settings(
            settings.internal_token.as_ref(),
            settings.internal_token_previous.as_ref(),
        )
        .map_err(|e| StartError::Config(format!("internal_token_previous: {e}")))?;
        let store = store::Store::connect(&settings.database_url, &statuses).await?;
        let state = web::Data::new(AppState {
            store,
            clock,
            refresh_wanted: Arc::new(Notify::new()),
            exports: export::Exports::new(settings.export_root.clone()),
        });
        let metrics = Metrics::new("feature-store");
        let refresher = RefreshMetrics {
            queued: metrics
                .gauge(
                    "sextant_feature_store_refresh_queue_accounts",
                    "Accounts waiting for their post-ingest online refresh (counted up to 10000).",
                    [],
                )
                .map_err(|e| StartError::Config(format!("metrics: {e}")))?,
            refreshed: metrics
                .counter(
                    "sextant_feature_store_online_refreshed_total",
                    "Online rows recomputed by the background refresher.",
                    [],
                )
                .map_err(|e| StartError::Config(format!("metrics: {e}")))?,
        };
        // Stops with the runtime; a page it was writing is one transaction, so nothing is
        // half-written, and marks left behind are picked up on the next start or by a lookup.
        tokio::spawn(refresh_online_queue(state.clone().into_inner(), refresher));
        tokio::spawn(predictions::sweep(
            state.clone().into_inner(),
            settings.prediction_retention_days.max(1),
        ));
        if let Some(url) = settings.sentiment_model_url.clone() {
            let watch = SentimentMetrics {
                loaded: metrics
                    .gauge(
                        "sextant_feature_store_sentiment_model_loaded",
                        "1 when a trained sentiment model judges case text, 0 while the lexicon does.",
                        [],
                    )
                    .map_err(|e| StartError::Config(format!("metrics: {e}")))?,
                failures: metrics
                    .counter(
                        "sextant_feature_store_sentiment_refresh_failures_total",
                        "Failed loads of the sentiment model (the last good one, or the lexicon, stays).",
                        [],
                    )
                    .map_err(|e| StartError::Config(format!("metrics: {e}")))?,
            };
            let http = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| StartError::Config(format!("HTTP client: {e}")))?;
            let http = InternalClient::new(
                http,
                internal_key
                    .clone()
                    .map(|k| InternalAuth::new("feature-store", k)),
            );
            tokio::spawn(follow_sentiment_model(
                Arc::clone(state.store.sentiment()),
                http,
                url,
                Duration::from_secs(settings.sentiment_refresh_secs),
                watch,
            ));
            let rescored = metrics
                .counter(
                    "sextant_feature_store_cases_rescored_total",
                    "Stored case versions re-judged by a newly loaded sentiment model.",
                    [],
                )
                .map_err(|e| StartError::Config(format!("metrics: {e}")))?;
            tokio::spawn(rescore_cases(state.clone().into_inner(), rescored));
        }
        let service = Service::start_guarded(
            "feature-store",
            &settings.host,
            settings.port,
            64 << 20,
            api::openapi(),
            metrics,
            verifier,
            move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(state.clone()).configure(api::routes);
            },
        )?;
        Ok(service)
    }
}

/// What the refresher reports on `/metrics`.
struct RefreshMetrics {
    queued: Gauge<0>,
    refreshed: Counter<0>,
}

/// Drains the online refresh queue: a page at a time while there is work, then waits for an
/// ingest's wake-up (or a second, for marks left by another replica or a previous run). A
/// database error is logged and retried with a growing pause, never swallowed into stale rows:
/// lookups recompute queued accounts themselves meanwhile.
async fn refresh_online_queue(state: Arc<AppState>, metrics: RefreshMetrics) {
    let mut pause = Duration::from_millis(100);
    loop {
        let now = state.clock.now();
        match state
            .store
            .refresh_queued(store::PAGE, state.online_as_of(), now)
            .await
        {
            Ok(0) => {
                pause = Duration::from_millis(100);
                metrics.queued.set([], 0.0);
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), state.refresh_wanted.notified())
                        .await;
            }
            Ok(n) => {
                pause = Duration::from_millis(100);
                metrics.refreshed.inc_by([], n);
                if let Ok(left) = state.store.queued(10_000).await {
                    metrics.queued.set([], left as f64);
                }
                tracing::debug!(accounts = n, "Refreshed queued online rows.");
                tokio::task::yield_now().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "Online refresh failed; retrying.");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Re-judges stored cases whenever a new sentiment model has loaded: one pass over the case
/// versions another scorer judged, a page (one transaction) at a time, each changed flag queueing
/// its account's online refresh. A pass interrupted by a newer model starts over for it; a
/// database error is logged and retried with a growing pause; a restart repeats only what is
/// left (judged rows no longer match).
async fn rescore_cases(state: Arc<AppState>, rescored: Counter<0>) {
    let sentiment = Arc::clone(state.store.sentiment());
    let mut done: Option<String> = None;
    let mut pass: Option<(String, Option<store::CaseKey>)> = None;
    let mut pause = Duration::from_millis(100);
    loop {
        let label = sentiment.current().label();
        if !sentiment.has_model() || done.as_deref() == Some(label.as_str()) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let cursor = match &pass {
            Some((l, cursor)) if *l == label => cursor.clone(),
            _ => {
                tracing::info!(scorer = %label, "Re-judging stored cases with the new sentiment model.");
                None
            }
        };
        match state
            .store
            .rescore_cases(cursor.as_ref(), store::PAGE, state.clock.now())
            .await
        {
            Ok((n, Some(next))) => {
                pause = Duration::from_millis(100);
                rescored.inc_by([], n);
                pass = Some((label, Some(next)));
                state.refresh_wanted.notify_one();
                tokio::task::yield_now().await;
            }
            Ok((_, None)) => {
                tracing::info!(scorer = %label, "Every stored case is judged by the current sentiment model.");
                done = Some(label);
                pass = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "Re-judging cases failed; retrying.");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// What the sentiment follower reports on `/metrics`.
struct SentimentMetrics {
    loaded: Gauge<0>,
    failures: Counter<0>,
}

/// Loads the sentiment model at `url` now and every `every`: a new version replaces the scorer,
/// a failure keeps the last good one (or the lexicon) and says why in the log and metrics.
async fn follow_sentiment_model(
    sentiment: Arc<sentiment::CaseSentiment>,
    http: InternalClient,
    url: String,
    every: Duration,
    metrics: SentimentMetrics,
) {
    let shown = redact_url(&url);
    metrics.loaded.set([], 0.0);
    loop {
        let loaded = sentiment::load(&http, &url).await.and_then(|artifact| {
            let version = artifact.version.clone();
            sentiment
                .set_model(artifact)
                .map(|changed| (changed, version))
        });
        match loaded {
            Ok((changed, version)) => {
                if changed {
                    tracing::info!(url = %shown, %version, "Sentiment model loaded: it judges case text from now on.");
                }
                metrics.loaded.set([], 1.0);
            }
            Err(e) => {
                metrics.failures.inc([]);
                if sentiment.has_model() {
                    tracing::warn!(url = %shown, error = %e, "Sentiment model refresh failed; the loaded model stays.");
                } else {
                    tracing::error!(url = %shown, error = %e, "No sentiment model: the lexicon judges case text (recorded per case).");
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}
