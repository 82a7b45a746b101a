//! The connector: Sextant's connected app in a Salesforce org.
//!
//! It logs in with the OAuth 2.0 JWT bearer flow (a private key whose certificate is uploaded to
//! the connected app; no password, no user interaction), reads CRM objects with SOQL following
//! every `nextRecordsUrl`, and ingests them into the feature store over HTTP.
//!
//! # Layout
//! - [`mapping`]: the fields read per built-in object and record mapping.
//! - [`custom`]: configured mappings of custom and Data Cloud objects, checked against the org.
//! - [`sync`]: incremental syncs by watermark, deletions as tombstones, REST or Bulk API 2.0.
//! - [`db`]: the connector's database (jobs, watermarks, the per-org lock row).
//! - [`jobs`]: syncs as background jobs (start, watch, cancel, list, resume after a restart).
//! - [`schedule`]: incremental syncs on a cron schedule, one per slot across restarts and replicas.
//! - [`writeback`]: score write-back jobs (sObject Collections upsert; Bulk API 2.0 ingest when
//!   large).
//! - [`api`]: HTTP handlers and the OpenAPI description.
//! - [`connect`]: `sextant connect` (web-server flow + PKCE) and the encrypted refresh token.

pub mod api;
pub mod connect;
pub mod custom;
pub mod db;
pub mod jobs;
pub mod mapping;
pub mod schedule;
pub mod sync;
pub mod writeback;

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
use sextant_service_kit::internal_auth::{
    InternalAuth, InternalClient, InternalKey, InternalVerifier,
};
use sextant_service_kit::metrics::Metrics;
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
    /// The connector's own database (jobs, watermarks, lock): `sqlite://…?mode=rwc`,
    /// `sqlite::memory:` or `postgres://…`. Replicas must share one to share the lock.
    #[serde(default = "default_database_url")]
    pub database_url: String,
    /// The key of the org in that database (lock and watermarks); default
    /// `<username>@<login host>`.
    #[serde(default)]
    pub org_key: Option<String>,
    /// Objects with more rows to read than this are read with Bulk API 2.0; 0 turns Bulk off.
    #[serde(default = "default_bulk_threshold")]
    pub bulk_threshold: u64,
    /// First wait between two polls of a bulk job, in milliseconds (doubled up to 10 s).
    #[serde(default = "default_bulk_poll_ms")]
    pub bulk_poll_ms: u64,
    /// A bulk job not complete after this many seconds is aborted.
    #[serde(default = "default_bulk_timeout_secs")]
    pub bulk_timeout_secs: u64,
    /// Rows per Bulk API 2.0 result page (`maxRecords`).
    #[serde(default = "default_bulk_max_records")]
    pub bulk_max_records: u32,
    /// How far before an object's watermark a sync re-reads, in seconds.
    #[serde(default)]
    pub watermark_lookback_secs: u64,
    /// Lease of the org's lock row, in seconds (renewed after every page).
    #[serde(default = "default_lock_lease_secs")]
    pub lock_lease_secs: u64,
    /// Calls a write-back record may take when its errors are transient.
    #[serde(default = "default_writeback_attempts")]
    pub writeback_max_attempts: u32,
    /// Write-backs with at least this many records go through Bulk API 2.0 ingest (0 = never;
    /// smaller ones, and every retry, use sObject Collections upsert).
    #[serde(default = "default_writeback_bulk_threshold")]
    pub writeback_bulk_threshold: u64,
    /// Incremental syncs on a schedule: a cron expression in UTC (`minute hour day month
    /// weekday`, e.g. `*/30 * * * *`; an optional leading seconds field). None: only on request.
    #[serde(default)]
    pub schedule: Option<String>,
    /// How often each replica checks whether a scheduled slot is due, in milliseconds.
    #[serde(default = "default_schedule_check_ms")]
    pub schedule_check_ms: u64,
    /// Further objects to sync (custom objects, Data Cloud objects) and how their fields fill
    /// the store's entities: `[[object_mappings]]` in the settings file, or the same list as
    /// JSON in `SEXTANT_CONNECTOR__OBJECT_MAPPINGS`. See [`custom`].
    #[serde(default, deserialize_with = "custom::list_or_json")]
    pub object_mappings: Vec<custom::ObjectMapping>,
    /// The Data Cloud data space the org's Data Cloud mappings read (default: the default one).
    #[serde(default)]
    pub data_cloud_dataspace: Option<String>,
    /// Scheme of the Data Cloud tenant endpoint (which Salesforce sends without one): `https`;
    /// `http` only for a local simulator.
    #[serde(default = "default_data_cloud_scheme")]
    pub data_cloud_scheme: String,
    /// The deployment's internal key (`SEXTANT_CONNECTOR__INTERNAL_TOKEN`, at least 32 bytes):
    /// when set, every API call needs an internal token signed with it, and ingests into the
    /// feature store carry one. Unset: open (local development only; a warning says so).
    #[serde(default)]
    pub internal_token: Option<secrecy::SecretString>,
    /// Keys accepted besides `internal_token` while it is rotated (`…__INTERNAL_TOKEN_PREVIOUS`,
    /// comma- or whitespace-separated, each at least 32 bytes); tokens name theirs by `kid`.
    #[serde(default)]
    pub internal_token_previous: Option<secrecy::SecretString>,
}

fn default_data_cloud_scheme() -> String {
    "https".into()
}

fn default_database_url() -> String {
    "sqlite://sextant-connector.sqlite?mode=rwc".into()
}
fn default_bulk_threshold() -> u64 {
    100_000
}
fn default_bulk_poll_ms() -> u64 {
    500
}
fn default_bulk_timeout_secs() -> u64 {
    3600
}
fn default_bulk_max_records() -> u32 {
    50_000
}
fn default_lock_lease_secs() -> u64 {
    120
}
fn default_writeback_attempts() -> u32 {
    4
}
fn default_writeback_bulk_threshold() -> u64 {
    10_000
}
fn default_schedule_check_ms() -> u64 {
    10_000
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
    /// Settings with defaults for everything but the org, and an in-memory database (for
    /// embedding: tests and the demo).
    pub fn with_salesforce(salesforce: SalesforceSettings) -> Self {
        Self {
            host: default_host(),
            port: default_port(),
            feature_store_url: default_feature_store_url(),
            salesforce,
            api_budget_slow_down_at: default_slow_down_at(),
            api_budget_stop_at: default_stop_at(),
            database_url: "sqlite::memory:".into(),
            org_key: None,
            bulk_threshold: default_bulk_threshold(),
            bulk_poll_ms: default_bulk_poll_ms(),
            bulk_timeout_secs: default_bulk_timeout_secs(),
            bulk_max_records: default_bulk_max_records(),
            watermark_lookback_secs: 0,
            lock_lease_secs: default_lock_lease_secs(),
            writeback_max_attempts: default_writeback_attempts(),
            writeback_bulk_threshold: default_writeback_bulk_threshold(),
            schedule: None,
            schedule_check_ms: default_schedule_check_ms(),
            object_mappings: Vec::new(),
            data_cloud_dataspace: None,
            data_cloud_scheme: default_data_cloud_scheme(),
            internal_token: None,
            internal_token_previous: None,
        }
    }

    /// How write-back jobs write.
    pub fn writeback_options(&self) -> writeback::WriteBackOptions {
        writeback::WriteBackOptions {
            max_attempts: self.writeback_max_attempts.max(1),
            bulk_threshold: (self.writeback_bulk_threshold > 0)
                .then_some(self.writeback_bulk_threshold),
            ingest: sextant_salesforce::ingest::IngestOptions {
                poll_initial: Duration::from_millis(self.bulk_poll_ms.max(1)),
                poll_max: Duration::from_secs(10).max(Duration::from_millis(self.bulk_poll_ms)),
                timeout: Duration::from_secs(self.bulk_timeout_secs),
                ..Default::default()
            },
        }
    }

    /// The org's key in the connector's database.
    pub fn org_key(&self) -> String {
        self.org_key.clone().unwrap_or_else(|| {
            let host = url::Url::parse(&self.salesforce.login_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| self.salesforce.login_url.clone());
            format!("{}@{host}", self.salesforce.username)
        })
    }

    /// How syncs behave.
    pub fn sync_settings(&self) -> sync::SyncSettings {
        sync::SyncSettings {
            bulk_threshold: (self.bulk_threshold > 0).then_some(self.bulk_threshold),
            lookback: chrono::Duration::seconds(
                i64::try_from(self.watermark_lookback_secs).unwrap_or(i64::MAX / 1_000_000),
            ),
            bulk: sextant_salesforce::bulk::BulkOptions {
                poll_initial: Duration::from_millis(self.bulk_poll_ms.max(1)),
                poll_max: Duration::from_secs(10).max(Duration::from_millis(self.bulk_poll_ms)),
                timeout: Duration::from_secs(self.bulk_timeout_secs),
                max_records: self.bulk_max_records.max(1),
            },
            lease: chrono::Duration::seconds(
                i64::try_from(self.lock_lease_secs.max(1)).unwrap_or(120),
            ),
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
    /// The connector's database could not be opened or migrated (the URL's password is never
    /// printed).
    #[error("connector database: {0}")]
    Database(String),
    /// A setting cannot work (an invalid cron schedule).
    #[error("configuration: {0}")]
    Config(String),
}

/// Shared state of the handlers.
#[derive(Debug)]
pub struct AppState {
    pub salesforce: SalesforceClient,
    /// Calls to the feature store (with the internal token); Salesforce has its own client.
    pub http: InternalClient,
    pub feature_store_url: String,
    pub clock: SharedClock,
    /// The connector's database.
    pub db: db::Db,
    /// The org's key (lock, watermarks, jobs).
    pub org: String,
    /// This replica's identity in the lock row (random per process).
    pub owner: String,
    pub sync: sync::SyncSettings,
    /// Sync jobs (in the database).
    pub jobs: jobs::Jobs,
    /// Write-back jobs (in the database).
    pub writebacks: writeback::WriteBacks,
    pub writeback: writeback::WriteBackOptions,
    /// The sync schedule, when configured.
    pub schedule: Option<schedule::Schedule>,
    /// Configured object mappings (checked for names at start-up, against the org per sync).
    pub mappings: Vec<custom::ObjectMapping>,
    /// The org's Data Cloud (shares the core tokens; used by Data Cloud mappings).
    pub data_cloud: sextant_salesforce::datacloud::DataCloudClient,
    /// Background tasks of this replica (aborted by [`ConnectorHandle::abort_background`]).
    pub tasks: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

impl AppState {
    /// Runs `fut` in the background, remembering it so it can be aborted.
    pub fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(fut);
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle.abort_handle());
    }
}

/// A handle on a running connector's background work.
#[derive(Debug, Clone)]
pub struct ConnectorHandle {
    state: web::Data<AppState>,
}

impl ConnectorHandle {
    /// Stops every background job of this replica at once, as a killed process would: nothing
    /// is finished, released or recorded (tests of crash recovery).
    pub fn abort_background(&self) {
        let tasks = std::mem::take(
            &mut *self
                .state
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for t in tasks {
            t.abort();
        }
    }

    /// The shared state.
    pub fn state(&self) -> &web::Data<AppState> {
        &self.state
    }
}

/// Builds the service: checks its settings, opens what it needs, binds the port.
#[derive(Debug)]
pub struct Application;

impl Application {
    /// Reads the key, opens the database and binds the port; the first Salesforce login happens
    /// on the first sync. Jobs a previous connector left running are resumed.
    pub async fn build(settings: &Settings, clock: SharedClock) -> Result<Service, StartError> {
        Ok(Self::build_with_handle(settings, clock).await?.0)
    }

    /// [`Application::build`], with a handle on the background work.
    pub async fn build_with_handle(
        settings: &Settings,
        clock: SharedClock,
    ) -> Result<(Service, ConnectorHandle), StartError> {
        let sf = &settings.salesforce;
        let schedule = match settings.schedule.as_deref() {
            None => None,
            Some(text) => Some(
                schedule::Schedule::parse(text)
                    .map_err(|e| StartError::Config(format!("schedule: {e}")))?,
            ),
        };
        // Names and shapes of the mappings are checked before anything starts; the org's
        // schema is checked at the start of each sync (it can change under a running connector).
        custom::validate_all(&settings.object_mappings)
            .map_err(|e| StartError::Config(e.to_string()))?;
        if settings
            .data_cloud_dataspace
            .as_deref()
            .is_some_and(|d| !custom::is_api_name(d))
        {
            return Err(StartError::Config(
                "data_cloud_dataspace is not a data space API name".into(),
            ));
        }
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
        let data_cloud = sextant_salesforce::datacloud::DataCloudClient::new(
            http.clone(),
            salesforce.tokens().clone(),
            clock.clone(),
            sextant_salesforce::datacloud::DataCloudOptions {
                dataspace: settings.data_cloud_dataspace.clone(),
                scheme: settings.data_cloud_scheme.clone(),
                ..Default::default()
            },
        );
        // Data Cloud is Salesforce: the plain client above. The feature store gets the token.
        let internal_key = InternalKey::from_setting(settings.internal_token.as_ref())
            .map_err(|e| StartError::Config(format!("internal_token: {e}")))?;
        let verifier = InternalVerifier::from_settings(
            settings.internal_token.as_ref(),
            settings.internal_token_previous.as_ref(),
        )
        .map_err(|e| StartError::Config(format!("internal_token_previous: {e}")))?;
        let http = InternalClient::new(
            http,
            internal_key
                .clone()
                .map(|k| InternalAuth::new("connector", k)),
        );
        let db = db::Db::connect(&settings.database_url)
            .await
            .map_err(|e| StartError::Database(redact(&e.to_string(), &settings.database_url)))?;
        let org = settings.org_key();
        let owner = format!("connector-{:016x}", rand::random::<u64>());
        let state = web::Data::new(AppState {
            salesforce,
            http,
            feature_store_url: settings.feature_store_url.trim_end_matches('/').to_owned(),
            clock,
            jobs: jobs::Jobs::new(db.clone(), org.clone()),
            writebacks: writeback::WriteBacks::new(db.clone(), org.clone()),
            db,
            org,
            owner,
            sync: settings.sync_settings(),
            writeback: settings.writeback_options(),
            schedule,
            mappings: settings.object_mappings.clone(),
            data_cloud,
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        api::resume_interrupted(&state)
            .await
            .map_err(|e| StartError::Database(e.to_string()))?;
        if state.schedule.is_some() {
            let st = state.clone();
            let every = Duration::from_millis(settings.schedule_check_ms.max(10));
            state.spawn(async move {
                loop {
                    if let Err(e) = api::schedule_tick(&st).await {
                        tracing::warn!(error = %e, "Could not check the sync schedule.");
                    }
                    tokio::time::sleep(every).await;
                }
            });
        }
        let handle = ConnectorHandle {
            state: state.clone(),
        };
        let service = Service::start_guarded(
            "connector",
            &settings.host,
            settings.port,
            // A write-back of 50,000 scores with 255-character keys.
            16 << 20,
            api::openapi(),
            Metrics::new("connector"),
            verifier,
            move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(state.clone()).configure(api::routes);
            },
        )?;
        Ok((service, handle))
    }
}

/// An error message with the database URL's password (if it appears) masked.
fn redact(message: &str, url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match u.password() {
            Some(pw) if !pw.is_empty() => message.replace(pw, "***"),
            _ => message.to_owned(),
        },
        Err(_) => message.to_owned(),
    }
}
