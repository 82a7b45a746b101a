//! The simulator's HTTP server: the OAuth token endpoint and the REST query endpoints.
//!
//! Login host and instance host are the same loopback server here; the token response's
//! `instance_url` points back at it, so a client that (correctly) sends REST calls to
//! `instance_url` rather than the login host works unchanged against a real org.
//!
//! The server can listen on several ports ("hosts"); [`RunningOrgSim::move_instance`] moves the
//! org to another one, as a pod migration or My Domain change does: sessions end, the old host
//! answers 401 on REST paths, and the next login returns the new `instance_url`. Every
//! `/services/data` answer carries `Sforce-Limit-Info`. Faults are injected with
//! [`RunningOrgSim::inject`] (see [`crate::faults`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU16};
use std::sync::{Arc, Mutex};

use actix_web::dev::{ServerHandle, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::Rng;
use serde_json::{Value, json};
use sextant_contracts::SalesforceId;
use sextant_contracts::time::SharedClock;

use crate::data::OrgData;
use crate::faults::{self, FaultRule};
use crate::soql;

/// How the simulated org is set up.
#[derive(Debug, Clone)]
pub struct OrgSimConfig {
    /// The connected app's consumer key (`iss` of the assertion).
    pub client_id: String,
    /// The pre-authorised integration user (`sub`).
    pub username: String,
    /// PEM X.509 certificate uploaded to the connected app; assertions must verify against it.
    pub certificate_pem: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// The furthest in the future an assertion's `exp` may lie, in seconds.
    pub max_assertion_lifetime_secs: i64,
    /// Default SOQL page size (Salesforce: 2000).
    pub batch_size: usize,
    /// The most rows a page holds whatever the client asked for: `batchSize` is only a hint
    /// (Force.com-JavaScript-REST-Toolkit#91). `None` honours the hint.
    pub server_batch_cap: Option<usize>,
    /// Daily API request allowance reported in `Sforce-Limit-Info`.
    pub api_request_limit: u64,
    /// The org id (`00D…`).
    pub org_id: SalesforceId,
    /// The integration user's id (`005…`).
    pub user_id: SalesforceId,
    /// The connected app's consumer secret: required by client credentials, checked whenever a
    /// client sends it (web-server and refresh grants).
    pub client_secret: String,
    /// Whether the connected app has a client-credentials "run as" user.
    pub client_credentials_user: bool,
    /// The connected app's callback URLs (`redirect_uri` must equal one of them).
    pub callback_urls: Vec<String>,
    /// How long an authorisation code lives, in seconds (single use).
    pub code_ttl_secs: i64,
    /// Polls after which a Bulk API 2.0 query job is `JobComplete`.
    pub bulk_polls_to_complete: u32,
    /// The most rows of a Bulk API 2.0 result page (and the page size without `maxRecords`).
    pub bulk_page_size: usize,
    /// The a360 exchange answers a refused subject token with the HTML login page (true) or a
    /// JSON `invalid_grant` (false).
    pub a360_html_errors: bool,
    /// Data spaces a Data Cloud token may be scoped to.
    pub dataspaces: Vec<String>,
    /// `expires_in` of Data Cloud tokens.
    pub dc_token_ttl_secs: i64,
    /// Rows per Query API v2 batch.
    pub dc_batch_size: usize,
    /// Send one empty batch (`data: []`, `done: false`) in the middle of each query.
    pub dc_empty_middle_batch: bool,
    /// Leave a (stale) `nextBatchId` on the last batch instead of `""`.
    pub dc_stale_next_batch_id: bool,
    /// Concurrent queries before 429.
    pub dc_max_concurrent: usize,
}

impl OrgSimConfig {
    /// A configuration for the given connected app, with Salesforce's defaults.
    pub fn new(client_id: &str, username: &str, certificate_pem: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            username: username.to_owned(),
            certificate_pem: certificate_pem.to_owned(),
            audiences: vec![
                "https://login.salesforce.com".into(),
                "https://test.salesforce.com".into(),
            ],
            max_assertion_lifetime_secs: 300,
            batch_size: 2000,
            server_batch_cap: None,
            api_request_limit: 15_000,
            org_id: SalesforceId::from_parts("00D", "5g", 1),
            user_id: SalesforceId::from_parts("005", "5g", 1),
            client_secret: "sextant-sim-consumer-secret".into(),
            client_credentials_user: true,
            callback_urls: vec!["http://localhost:1717/OauthRedirect".into()],
            code_ttl_secs: 900,
            bulk_polls_to_complete: 2,
            bulk_page_size: 10_000,
            a360_html_errors: true,
            dataspaces: vec!["default".into()],
            dc_token_ttl_secs: 7200,
            dc_batch_size: 1000,
            dc_empty_middle_batch: false,
            dc_stale_next_batch_id: false,
            dc_max_concurrent: 15,
        }
    }
}

/// One request the simulator received (for assertions in tests).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The port (host) the request arrived on.
    pub port: u16,
    /// Request headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Cursor {
    object: &'static str,
    version: String,
    rows: soql::Rows,
    batch: usize,
}

pub(crate) struct State {
    pub(crate) config: OrgSimConfig,
    /// The org's records; written by tests (updates, deletions) while syncs read.
    pub(crate) org: std::sync::RwLock<OrgData>,
    pub(crate) decoding_key: DecodingKey,
    pub(crate) clock: SharedClock,
    pub(crate) base_url: Mutex<String>,
    pub(crate) sessions: Mutex<HashMap<String, ()>>,
    cursors: Mutex<HashMap<String, Cursor>>,
    /// Serial number of the next query locator.
    pub(crate) next_cursor: std::sync::atomic::AtomicU64,
    pub(crate) api_usage: Mutex<u64>,
    pub(crate) requests: Mutex<Vec<RecordedRequest>>,
    pub(crate) faults: Mutex<Vec<FaultRule>>,
    /// The port REST calls must arrive on (the current instance host).
    pub(crate) instance_port: AtomicU16,
    /// Logins succeed but their sessions are refused (expired password, High Assurance).
    pub(crate) restricted_sessions: AtomicBool,
    /// Where `nextRecordsUrl` points when set (a hostile or broken org, for client tests).
    pub(crate) next_records_url_base: Mutex<Option<String>>,
    /// Live refresh tokens.
    pub(crate) refresh_tokens: Mutex<HashMap<String, ()>>,
    /// Authorisation codes not yet redeemed.
    codes: Mutex<HashMap<String, PendingCode>>,
    /// A port that acts as the shared login host (`login.salesforce.com`), where only the JWT,
    /// refresh and web-server grants are served (0 = none).
    pub(crate) login_only_port: AtomicU16,
    /// The last `SystemModstamp` handed out, in epoch milliseconds.
    pub(crate) last_stamp_ms: Mutex<i64>,
    /// Bulk API 2.0 query jobs by id.
    pub(crate) bulk_jobs: Mutex<HashMap<String, crate::bulk::BulkJob>>,
    /// Messages of bulk jobs to fail at their next poll.
    pub(crate) bulk_failures: Mutex<Vec<String>>,
    /// Bulk API 2.0 ingest jobs by id.
    pub(crate) ingest_jobs: Mutex<HashMap<String, crate::ingest::IngestJob>>,
    /// Failures for the next ingest jobs to complete.
    pub(crate) ingest_failures: Mutex<Vec<crate::ingest::IngestFailure>>,
    /// Per-record write errors by record key.
    pub(crate) record_errors: Mutex<HashMap<String, crate::bulk::RecordError>>,
    /// Data Cloud tokens and their expiry (epoch seconds).
    pub(crate) dc_tokens: Mutex<HashMap<String, i64>>,
    /// Query API v2 cursors by the batch id that reads them next.
    pub(crate) dc_cursors: Mutex<HashMap<String, crate::datacloud::DcCursor>>,
}

struct PendingCode {
    redirect_uri: String,
    challenge: Option<String>,
    scope: String,
    expires_at: i64,
}

type Reply = Pin<Box<dyn Future<Output = Result<ServiceResponse, actix_web::Error>>>>;

pub(crate) fn read_org(state: &State) -> std::sync::RwLockReadGuard<'_, OrgData> {
    state
        .org
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn write_org(state: &State) -> std::sync::RwLockWriteGuard<'_, OrgData> {
    state
        .org
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The simulator, ready to start.
#[derive(Debug)]
pub struct OrgSim;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrgSimError {
    /// The connected app certificate is not a usable RSA certificate or public key.
    #[error("connected app certificate: {0}")]
    Certificate(String),
    /// The port could not be bound.
    #[error("bind: {0}")]
    Bind(#[from] std::io::Error),
}

/// A running simulator.
#[derive(Debug, Clone)]
pub struct RunningOrgSim {
    /// `http://127.0.0.1:<port>`: both the login URL and the instance URL.
    pub base_url: String,
    pub port: u16,
    /// Every host the server listens on (`base_url` first).
    pub hosts: Vec<String>,
    handle: ServerHandle,
    state: Arc<State>,
}

impl State {
    /// Now as a `SystemModstamp` (millisecond precision, `+0000`), strictly after any stamp this
    /// simulator handed out before, as Salesforce's are per record.
    pub(crate) fn stamp_now(&self) -> String {
        let now = self.clock.now().timestamp_millis();
        let mut last = lock(&self.last_stamp_ms);
        let ms = now.max(*last + 1);
        *last = ms;
        let dt = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        crate::data::sf_datetime(&dt)
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

impl RunningOrgSim {
    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }
    /// Invalidates every issued access token (as "revoke all sessions" in Setup does).
    pub fn expire_all_sessions(&self) {
        lock(&self.state.sessions).clear();
    }
    /// Invalidates one access token now.
    pub fn expire_session(&self, access_token: &str) {
        lock(&self.state.sessions).remove(access_token);
    }
    /// Queues a fault (see [`crate::faults`]).
    pub fn inject(&self, rule: FaultRule) {
        lock(&self.state.faults).push(rule);
    }
    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        lock(&self.state.faults).clear();
    }
    /// Sets the org's API requests used in the current 24 hours.
    pub fn set_api_usage(&self, used: u64) {
        *lock(&self.state.api_usage) = used;
    }
    /// API requests used in the current 24 hours.
    pub fn api_usage(&self) -> u64 {
        *lock(&self.state.api_usage)
    }
    /// When on, logins succeed but every REST call answers 401 `INVALID_SESSION_ID` (a
    /// restricted token after a password expired, or a High Assurance session policy).
    pub fn restrict_sessions(&self, on: bool) {
        self.state
            .restricted_sessions
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }
    /// Moves the org's instance to `hosts[index]`: sessions end, REST calls on any other host
    /// answer 401, and logins return the new `instance_url`.
    pub fn move_instance(&self, index: usize) -> Option<String> {
        let host = self.hosts.get(index)?.clone();
        let port = host.rsplit(':').next()?.parse::<u16>().ok()?;
        *lock(&self.state.base_url) = host.clone();
        self.state
            .instance_port
            .store(port, std::sync::atomic::Ordering::SeqCst);
        lock(&self.state.sessions).clear();
        Some(host)
    }
    /// Makes `hosts[index]` behave as the shared login host (`login.salesforce.com`): the
    /// client-credentials grant is refused there ("request not supported on this domain").
    pub fn set_login_only_host(&self, index: usize) -> Option<String> {
        let host = self.hosts.get(index)?.clone();
        let port = host.rsplit(':').next()?.parse::<u16>().ok()?;
        self.state
            .login_only_port
            .store(port, std::sync::atomic::Ordering::SeqCst);
        Some(host)
    }
    /// Issues a refresh token directly (as if a user had approved the app earlier).
    pub fn issue_refresh_token(&self) -> String {
        let token = format!(
            "5Aep861{}",
            mint_token(&self.state.config.org_id).split_off(16)
        );
        lock(&self.state.refresh_tokens).insert(token.clone(), ());
        token
    }
    /// Revokes every refresh token (a user revoked the app's access).
    pub fn revoke_refresh_tokens(&self) {
        lock(&self.state.refresh_tokens).clear();
    }
    /// Makes `nextRecordsUrl` absolute on `base` (e.g. another host), or relative again (`None`).
    pub fn set_next_records_url_base(&self, base: Option<String>) {
        *lock(&self.state.next_records_url_base) = base;
    }
    /// Changes fields of a record as a user would: `LastModifiedDate` and `SystemModstamp` become
    /// now. Returns the new `SystemModstamp`, or `None` when there is no such live record.
    pub fn update_record(
        &self,
        object: &str,
        id: &str,
        changes: &serde_json::Map<String, Value>,
    ) -> Option<String> {
        let stamp = self.state.stamp_now();
        let mut org = write_org(&self.state);
        let o = org.object_mut(object)?;
        let row = o
            .rows
            .iter_mut()
            .find(|r| r.get("Id").and_then(Value::as_str) == Some(id))?;
        if row.get("IsDeleted") == Some(&Value::Bool(true)) {
            return None;
        }
        for (k, v) in changes {
            row.insert(k.clone(), v.clone());
        }
        row.insert("LastModifiedDate".into(), Value::from(stamp.clone()));
        row.insert("SystemModstamp".into(), Value::from(stamp.clone()));
        Some(stamp)
    }
    /// Deletes a record (to the recycle bin): `query` no longer returns it, `queryAll` returns it
    /// with `IsDeleted = true` and a new `SystemModstamp`. Returns that stamp.
    pub fn delete_record(&self, object: &str, id: &str) -> Option<String> {
        let stamp = self.state.stamp_now();
        let mut org = write_org(&self.state);
        let row = org
            .object_mut(object)?
            .rows
            .iter_mut()
            .find(|r| r.get("Id").and_then(Value::as_str) == Some(id))?;
        row.insert("IsDeleted".into(), Value::Bool(true));
        row.insert("SystemModstamp".into(), Value::from(stamp.clone()));
        Some(stamp)
    }
    /// Fails the next Bulk API 2.0 query job polled (`Failed`, with this `errorMessage`).
    pub fn fail_next_bulk_job(&self, message: &str) {
        lock(&self.state.bulk_failures).push(message.to_owned());
    }
    /// Makes the next Bulk API 2.0 ingest job end `Failed` with this `errorMessage` after
    /// writing only its first `processed` rows (the rest are listed in `unprocessedrecords`).
    pub fn fail_next_ingest_job(&self, message: &str, processed: usize) {
        lock(&self.state.ingest_failures).push(crate::ingest::IngestFailure {
            message: message.to_owned(),
            processed,
        });
    }
    /// Makes the next `times` writes of the record with this key (its Id or external id) fail
    /// with the item error `status_code` (e.g. `UNABLE_TO_LOCK_ROW`,
    /// `FIELD_CUSTOM_VALIDATION_EXCEPTION`).
    pub fn inject_record_error(
        &self,
        key: &str,
        status_code: &str,
        message: &str,
        fields: &[&str],
        times: u32,
    ) {
        lock(&self.state.record_errors).insert(
            key.to_owned(),
            crate::bulk::RecordError {
                status_code: status_code.to_owned(),
                message: message.to_owned(),
                fields: fields.iter().map(|f| (*f).to_owned()).collect(),
                times,
            },
        );
    }
    /// Expires every open Query API v2 cursor (as 3 idle minutes or an hour would).
    pub fn expire_dc_cursors(&self) {
        lock(&self.state.dc_cursors).clear();
    }
    /// Expires every Data Cloud token now.
    pub fn expire_dc_tokens(&self) {
        lock(&self.state.dc_tokens).clear();
    }
    /// A copy of one record (deleted ones included).
    pub fn record(&self, object: &str, id: &str) -> Option<serde_json::Map<String, Value>> {
        read_org(&self.state)
            .object(object)?
            .rows
            .iter()
            .find(|r| r.get("Id").and_then(Value::as_str) == Some(id))
            .cloned()
    }
    /// A copy of the org's records now.
    pub fn data(&self) -> OrgData {
        read_org(&self.state).clone()
    }
    /// Stops the server.
    pub async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

impl OrgSim {
    /// Binds `listener` and serves the org on it; the returned future completes when stopped.
    pub fn start(
        config: OrgSimConfig,
        org: OrgData,
        clock: SharedClock,
        listener: TcpListener,
    ) -> Result<(RunningOrgSim, actix_web::dev::Server), OrgSimError> {
        Self::start_on(config, org, clock, vec![listener])
    }

    /// Serves the org on several listeners (hosts); the first is the login and instance host.
    pub fn start_on(
        config: OrgSimConfig,
        org: OrgData,
        clock: SharedClock,
        listeners: Vec<TcpListener>,
    ) -> Result<(RunningOrgSim, actix_web::dev::Server), OrgSimError> {
        let decoding_key = DecodingKey::from_rsa_pem(config.certificate_pem.as_bytes())
            .map_err(|e| OrgSimError::Certificate(e.to_string()))?;
        let mut hosts = Vec::with_capacity(listeners.len());
        for l in &listeners {
            hosts.push(format!("http://127.0.0.1:{}", l.local_addr()?.port()));
        }
        let Some(first) = listeners.first() else {
            return Err(OrgSimError::Bind(std::io::Error::other(
                "no listener given",
            )));
        };
        let port = first.local_addr()?.port();
        let base_url = format!("http://127.0.0.1:{port}");
        let state = Arc::new(State {
            config,
            org: std::sync::RwLock::new(org),
            decoding_key,
            clock,
            base_url: Mutex::new(base_url.clone()),
            sessions: Mutex::new(HashMap::new()),
            cursors: Mutex::new(HashMap::new()),
            next_cursor: std::sync::atomic::AtomicU64::new(1),
            api_usage: Mutex::new(0),
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            instance_port: AtomicU16::new(port),
            restricted_sessions: AtomicBool::new(false),
            next_records_url_base: Mutex::new(None),
            refresh_tokens: Mutex::new(HashMap::new()),
            codes: Mutex::new(HashMap::new()),
            login_only_port: AtomicU16::new(0),
            last_stamp_ms: Mutex::new(0),
            bulk_jobs: Mutex::new(HashMap::new()),
            bulk_failures: Mutex::new(Vec::new()),
            ingest_jobs: Mutex::new(HashMap::new()),
            ingest_failures: Mutex::new(Vec::new()),
            record_errors: Mutex::new(HashMap::new()),
            dc_tokens: Mutex::new(HashMap::new()),
            dc_cursors: Mutex::new(HashMap::new()),
        });
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .wrap_fn(|req, srv| {
                    let Some(state) = req.app_data::<web::Data<State>>().cloned() else {
                        return Box::pin(actix_web::dev::Service::call(srv, req)) as Reply;
                    };
                    let port = req.app_config().local_addr().port();
                    lock(&state.requests).push(RecordedRequest {
                        method: req.method().to_string(),
                        path: req.path().to_owned(),
                        query: req.query_string().to_owned(),
                        port,
                        headers: req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect(),
                    });
                    let data_path = req.path().starts_with("/services/data/v");
                    let fault =
                        faults::take(&mut lock(&state.faults), req.method().as_str(), req.path());
                    let delay = match &fault {
                        Some(faults::Fault::Delay(d)) => Some(*d),
                        _ => None,
                    };
                    if let Some(resp) = fault.as_ref().and_then(faults::Fault::response) {
                        let res = req.into_response(resp);
                        return Box::pin(async move { Ok(res) });
                    }
                    let instance = state
                        .instance_port
                        .load(std::sync::atomic::Ordering::SeqCst);
                    if data_path && port != instance {
                        // This host no longer serves the org.
                        let res = req.into_response(rest_error(
                            StatusCode::UNAUTHORIZED,
                            "INVALID_SESSION_ID",
                            "Session expired or invalid",
                        ));
                        return Box::pin(async move { Ok(res) });
                    }
                    let fut = actix_web::dev::Service::call(srv, req);
                    Box::pin(async move {
                        if let Some(d) = delay {
                            tokio::time::sleep(d).await;
                        }
                        let mut res = fut.await?;
                        if data_path {
                            let used = *lock(&state.api_usage);
                            let value =
                                format!("api-usage={used}/{}", state.config.api_request_limit);
                            if let Ok(v) = HeaderValue::from_str(&value) {
                                res.headers_mut()
                                    .insert(HeaderName::from_static("sforce-limit-info"), v);
                            }
                        }
                        Ok(res)
                    })
                })
                .route("/services/oauth2/token", web::post().to(token))
                .route("/services/oauth2/authorize", web::get().to(authorize))
                .route("/services/oauth2/revoke", web::post().to(revoke))
                .route("/services/data", web::get().to(versions))
                .route("/services/data/", web::get().to(versions))
                .route("/services/data/v{version}/query", web::get().to(query))
                .route("/services/data/v{version}/queryAll", web::get().to(query))
                .route(
                    "/services/data/v{version}/query/{locator}",
                    web::get().to(query_more),
                )
                .route(
                    "/services/data/v{version}/sobjects/{object}/describe",
                    web::get().to(describe),
                )
                .route(
                    "/services/a360/token",
                    web::post().to(crate::datacloud::a360_token),
                )
                .route("/api/v2/query", web::post().to(crate::datacloud::query_v2))
                .route(
                    "/api/v2/query/{batch:.*}",
                    web::get().to(crate::datacloud::query_v2_next),
                )
                .route(
                    "/services/data/v{version}/jobs/query",
                    web::post().to(crate::bulk::create_query_job),
                )
                .route(
                    "/services/data/v{version}/jobs/query/{id}",
                    web::get().to(crate::bulk::get_query_job),
                )
                .route(
                    "/services/data/v{version}/jobs/query/{id}",
                    web::patch().to(crate::bulk::abort_query_job),
                )
                .route(
                    "/services/data/v{version}/jobs/query/{id}/results",
                    web::get().to(crate::bulk::query_results),
                )
                .route(
                    "/services/data/v{version}/jobs/ingest",
                    web::post().to(crate::ingest::create_job),
                )
                .service(
                    web::resource("/services/data/v{version}/jobs/ingest/{id}/batches")
                        .guard(actix_web::guard::Put())
                        .app_data(web::PayloadConfig::new(
                            crate::ingest::MAX_UPLOAD_BYTES + (1 << 20),
                        ))
                        .route(web::put().to(crate::ingest::upload)),
                )
                .route(
                    "/services/data/v{version}/jobs/ingest/{id}",
                    web::get().to(crate::ingest::get_job),
                )
                .route(
                    "/services/data/v{version}/jobs/ingest/{id}",
                    web::patch().to(crate::ingest::set_state),
                )
                .route(
                    "/services/data/v{version}/jobs/ingest/{id}/{which}",
                    web::get().to(crate::ingest::results),
                )
                .route(
                    "/services/data/v{version}/jobs/ingest/{id}/{which}/",
                    web::get().to(crate::ingest::results),
                )
                .route(
                    "/services/data/v{version}/composite/sobjects/{object}/{field}",
                    web::patch().to(crate::bulk::upsert_collection),
                )
                .default_service(web::to(not_found))
        })
        .workers(2)
        .disable_signals();
        let mut server = server;
        for l in listeners {
            server = server.listen(l)?;
        }
        let server = server.run();
        let running = RunningOrgSim {
            base_url,
            port,
            hosts,
            handle: server.handle(),
            state,
        };
        Ok((running, server))
    }
}

// ------------------------------------------------------------------ OAuth

fn oauth_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": error, "error_description": description}))
}

/// `POST /services/oauth2/token`: parameters from the form body and the query string.
async fn token(state: web::Data<State>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let mut params: HashMap<String, String> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    params.extend(form);
    let grant = params.get("grant_type").map(String::as_str).unwrap_or("");
    let port = req.app_config().local_addr().port();
    let outcome = match grant {
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => None,
        "refresh_token" => Some(refresh_grant(&state, &params)),
        "client_credentials" => Some(client_credentials_grant(&state, &req, &params, port)),
        "authorization_code" => Some(code_grant(&state, &params)),
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant type not supported",
            );
        }
    };
    if let Some(outcome) = outcome {
        return match outcome {
            Ok(body) => HttpResponse::Ok().json(body),
            Err((error, description)) => oauth_error(StatusCode::BAD_REQUEST, error, description),
        };
    }
    let Some(assertion) = params.get("assertion") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing required parameter: assertion",
        );
    };
    match verify_assertion(&state, assertion) {
        Ok(()) => {
            let token = mint_token(&state.config.org_id);
            if !state
                .restricted_sessions
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                lock(&state.sessions).insert(token.clone(), ());
            }
            let base = lock(&state.base_url).clone();
            HttpResponse::Ok().json(json!({
                "access_token": token,
                "scope": "api",
                "instance_url": base,
                "id": format!("{base}/id/{}/{}", state.config.org_id, state.config.user_id),
                "token_type": "Bearer",
            }))
        }
        Err((error, description)) => oauth_error(StatusCode::BAD_REQUEST, error, description),
    }
}

type GrantResult = Result<Value, (&'static str, &'static str)>;

/// A session body for the refresh, web-server and client-credentials grants: like the JWT one
/// plus `issued_at` (epoch milliseconds as a string) and `signature`; never `expires_in`.
fn session_body(state: &State, scope: &str) -> Value {
    let token = mint_token(&state.config.org_id);
    if !state
        .restricted_sessions
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        lock(&state.sessions).insert(token.clone(), ());
    }
    let base = lock(&state.base_url).clone();
    let id = format!("{base}/id/{}/{}", state.config.org_id, state.config.user_id);
    let issued_at = state.clock.now().timestamp_millis().to_string();
    let signature = {
        use rsa::sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(state.config.client_secret.as_bytes());
        h.update(id.as_bytes());
        h.update(issued_at.as_bytes());
        base64_std(&h.finalize())
    };
    json!({
        "access_token": token,
        "signature": signature,
        "scope": scope,
        "instance_url": base,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
    })
}

fn base64_std(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64url_nopad(bytes: &[u8]) -> String {
    base64_std(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn check_client(
    state: &State,
    params: &HashMap<String, String>,
) -> Result<(), (&'static str, &'static str)> {
    match params.get("client_id") {
        Some(c) if *c == state.config.client_id => {}
        _ => return Err(("invalid_client_id", "client identifier invalid")),
    }
    if let Some(secret) = params.get("client_secret")
        && *secret != state.config.client_secret
    {
        return Err(("invalid_client", "invalid client credentials"));
    }
    Ok(())
}

fn refresh_grant(state: &State, params: &HashMap<String, String>) -> GrantResult {
    check_client(state, params)?;
    let token = params.get("refresh_token").ok_or((
        "invalid_request",
        "missing required parameter: refresh_token",
    ))?;
    if !lock(&state.refresh_tokens).contains_key(token) {
        return Err(("invalid_grant", "expired access/refresh token"));
    }
    Ok(session_body(state, "refresh_token api"))
}

fn client_credentials_grant(
    state: &State,
    req: &HttpRequest,
    params: &HashMap<String, String>,
    port: u16,
) -> GrantResult {
    if port
        == state
            .login_only_port
            .load(std::sync::atomic::Ordering::SeqCst)
    {
        return Err(("invalid_grant", "request not supported on this domain"));
    }
    // HTTP Basic (simple-salesforce) or form fields (cdp-connector, datacloud-jdbc).
    let basic = req
        .headers()
        .get("Authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(decode_basic);
    let (id, secret) = match basic {
        Some(pair) => pair,
        None => (
            params.get("client_id").cloned().unwrap_or_default(),
            params.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    if id != state.config.client_id {
        return Err(("invalid_client_id", "client identifier invalid"));
    }
    if secret != state.config.client_secret {
        return Err(("invalid_client", "invalid client credentials"));
    }
    if !state.config.client_credentials_user {
        return Err(("invalid_grant", "no client credentials user enabled"));
    }
    Ok(session_body(state, "api"))
}

fn decode_basic(b64: &str) -> Option<(String, String)> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in b64.trim().bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn code_grant(state: &State, params: &HashMap<String, String>) -> GrantResult {
    check_client(state, params)?;
    let code = params
        .get("code")
        .ok_or(("invalid_request", "missing required parameter: code"))?;
    // Single use: removed whatever happens next.
    let pending = lock(&state.codes)
        .remove(code)
        .ok_or(("invalid_grant", "invalid authorization code"))?;
    if pending.expires_at <= state.clock.now().timestamp() {
        return Err(("invalid_grant", "expired authorization code"));
    }
    if params.get("redirect_uri") != Some(&pending.redirect_uri) {
        return Err((
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        ));
    }
    if let Some(challenge) = &pending.challenge {
        let Some(verifier) = params.get("code_verifier") else {
            return Err(("invalid_grant", "invalid code verifier"));
        };
        use rsa::sha2::{Digest, Sha256};
        if base64url_nopad(&Sha256::digest(verifier.as_bytes())) != *challenge {
            return Err(("invalid_request", "invalid code verifier"));
        }
    }
    let mut body = session_body(state, &pending.scope);
    let scopes: Vec<&str> = pending.scope.split_whitespace().collect();
    if scopes.contains(&"refresh_token") || scopes.contains(&"offline_access") {
        let refresh = format!("5Aep861{}", mint_token(&state.config.org_id).split_off(16));
        lock(&state.refresh_tokens).insert(refresh.clone(), ());
        body["refresh_token"] = Value::from(refresh);
    }
    Ok(body)
}

/// `GET /services/oauth2/authorize`: the user is taken to approve at once (auto-approval),
/// and the browser is redirected to `redirect_uri?code=…&state=…`.
async fn authorize(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    let params: HashMap<String, String> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let redirect_uri = get("redirect_uri");
    // Errors before the redirect URI is trusted are shown as a page, never redirected.
    if get("client_id") != state.config.client_id {
        return HttpResponse::BadRequest()
            .content_type("text/html")
            .body("<html><body>error=invalid_client_id&amp;error_description=client identifier invalid</body></html>");
    }
    if !state.config.callback_urls.contains(&redirect_uri) {
        return HttpResponse::BadRequest()
            .content_type("text/html")
            .body("<html><body>error=redirect_uri_mismatch&amp;error_description=redirect_uri must match configuration</body></html>");
    }
    let redirect = |query: Vec<(&str, String)>| {
        let q = serde_urlencoded::to_string(query).unwrap_or_default();
        HttpResponse::Found()
            .insert_header(("Location", format!("{redirect_uri}?{q}")))
            .finish()
    };
    let st = get("state");
    if get("response_type") != "code" {
        return redirect(vec![
            ("error", "unsupported_response_type".into()),
            ("error_description", "response type not supported".into()),
            ("state", st),
        ]);
    }
    let challenge = params.get("code_challenge").cloned();
    if challenge.is_some()
        && params.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return redirect(vec![
            ("error", "invalid_request".into()),
            ("error_description", "invalid code_challenge_method".into()),
            ("state", st),
        ]);
    }
    if challenge.as_ref().is_some_and(|c| c.len() != 43) {
        return redirect(vec![
            ("error", "invalid_request".into()),
            ("error_description", "invalid code_challenge".into()),
            ("state", st),
        ]);
    }
    let code = format!("aPrx{}", mint_token(&state.config.org_id).split_off(40));
    lock(&state.codes).insert(
        code.clone(),
        PendingCode {
            redirect_uri: redirect_uri.clone(),
            challenge,
            scope: if get("scope").is_empty() {
                "api".into()
            } else {
                get("scope")
            },
            expires_at: state.clock.now().timestamp() + state.config.code_ttl_secs,
        },
    );
    redirect(vec![("code", code), ("state", st)])
}

/// `POST /services/oauth2/revoke` (body or query `token`): 200 and the token is dead; revoking
/// a refresh token ends its sessions too (here: every session).
async fn revoke(state: web::Data<State>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let mut params: HashMap<String, String> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    params
        .extend(serde_urlencoded::from_bytes::<HashMap<String, String>>(&body).unwrap_or_default());
    let Some(token) = params.get("token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing required parameter: token",
        );
    };
    if lock(&state.refresh_tokens).remove(token).is_some() {
        lock(&state.sessions).clear();
        return HttpResponse::Ok().finish();
    }
    if lock(&state.sessions).remove(token).is_some() {
        return HttpResponse::Ok().finish();
    }
    oauth_error(
        StatusCode::BAD_REQUEST,
        "unsupported_token_type",
        "this token type is not supported",
    )
}

fn verify_assertion(state: &State, assertion: &str) -> Result<(), (&'static str, &'static str)> {
    // Signature first; claims are then checked one by one so each failure gets the error
    // Salesforce gives for it. `exp` may be a number or a numeric string (simple-salesforce).
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Value>(assertion, &state.decoding_key, &validation)
        .map_err(|_| ("invalid_grant", "invalid assertion"))?;
    let claims = data.claims;
    let text = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    if text("iss") != state.config.client_id {
        return Err(("invalid_client_id", "client identifier invalid"));
    }
    if !state
        .config
        .audiences
        .iter()
        .any(|a| a.trim_end_matches('/') == text("aud").trim_end_matches('/'))
    {
        return Err(("invalid_grant", "audience is invalid"));
    }
    if !text("sub").eq_ignore_ascii_case(&state.config.username) {
        return Err(("invalid_grant", "user hasn't approved this consumer"));
    }
    let exp = match claims.get("exp") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or(("invalid_grant", "invalid assertion"))?;
    let now = state.clock.now().timestamp();
    if exp <= now {
        return Err(("invalid_grant", "expired access/refresh token"));
    }
    if exp > now + state.config.max_assertion_lifetime_secs {
        return Err(("invalid_grant", "invalid assertion"));
    }
    Ok(())
}

fn mint_token(org_id: &SalesforceId) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
    let mut rng = rand::thread_rng();
    let tail: String = (0..96)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{}!{tail}", &org_id.as_str()[..15])
}

// ------------------------------------------------------------------ REST

pub(crate) fn rest_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!([{"message": message, "errorCode": code}]))
}

async fn not_found() -> HttpResponse {
    rest_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

const VERSIONS: [&str; 6] = ["58.0", "59.0", "60.0", "61.0", "62.0", "64.0"];

async fn versions() -> HttpResponse {
    let list: Vec<Value> = VERSIONS
        .iter()
        .map(|v| json!({"label": format!("API {v}"), "url": format!("/services/data/v{v}"), "version": v}))
        .collect();
    HttpResponse::Ok().json(list)
}

/// Checks the bearer token and the API version, and counts the call against the limit.
pub(crate) fn authorise(
    state: &State,
    req: &HttpRequest,
    version: &str,
) -> Result<u64, Box<HttpResponse>> {
    let token = req
        .headers()
        .get("Authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("OAuth "))
        })
        .unwrap_or("");
    if !lock(&state.sessions).contains_key(token) {
        return Err(Box::new(rest_error(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )));
    }
    if !VERSIONS.contains(&version) {
        return Err(Box::new(rest_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )));
    }
    let mut usage = lock(&state.api_usage);
    *usage += 1;
    if *usage > state.config.api_request_limit {
        return Err(Box::new(rest_error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )));
    }
    Ok(*usage)
}

/// `GET /sobjects/{object}/describe`: the object's fields in describe order, with the keys
/// of Salesforce's body that clients read (see `sobject_describe_custom_object.json`); an
/// unknown object is `404 NOT_FOUND`.
async fn describe(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (version, name) = path.into_inner();
    if let Err(resp) = authorise(&state, &req, &version) {
        return *resp;
    }
    let org = read_org(&state);
    let Some(object) = org.object(&name) else {
        return rest_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        );
    };
    let fields: Vec<Value> = object
        .fields
        .iter()
        .map(|f| {
            let system = matches!(
                f.name,
                "Id" | "IsDeleted" | "CreatedDate" | "LastModifiedDate" | "SystemModstamp"
            );
            json!({
                "name": f.name,
                "type": f.describe_type(),
                "label": f.name.trim_end_matches("__c").replace('_', " "),
                "custom": f.name.ends_with("__c"),
                "nillable": !system && f.name != "Name",
                "createable": !system,
                "updateable": !system,
                "filterable": true,
                "sortable": true,
                "externalId": false,
                "idLookup": f.name == "Id",
                "calculated": false,
                "deprecatedAndHidden": false,
                "referenceTo": f.reference_to().into_iter().collect::<Vec<_>>(),
                "relationshipName": f.reference_to().map(|_| f.name.replace("__c", "__r").trim_end_matches("Id").to_owned()),
                "picklistValues": [],
            })
        })
        .collect();
    HttpResponse::Ok()
        .content_type("application/json;charset=UTF-8")
        .json(json!({
            "name": object.name,
            "label": object.name.trim_end_matches("__c").replace('_', " "),
            "custom": object.name.ends_with("__c"),
            "keyPrefix": object.key_prefix,
            "queryable": true,
            "retrieveable": true,
            "createable": true,
            "updateable": true,
            "deletable": true,
            "replicateable": true,
            "searchable": true,
            "urls": {
                "describe": format!("/services/data/v{version}/sobjects/{}/describe", object.name),
            },
            "fields": fields,
        }))
}

/// `Sforce-Query-Options: batchSize=N` (200..2000) is a hint; out-of-range values are ignored.
fn batch_size(state: &State, req: &HttpRequest) -> usize {
    req.headers()
        .get("Sforce-Query-Options")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.split(',')
                .find_map(|p| p.trim().strip_prefix("batchSize="))
        })
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (200..=2000).contains(n))
        .unwrap_or(state.config.batch_size)
        .min(state.config.server_batch_cap.unwrap_or(usize::MAX))
        .max(1)
}

#[derive(serde::Deserialize)]
struct QueryParams {
    q: Option<String>,
}

async fn query(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
    params: web::Query<QueryParams>,
) -> HttpResponse {
    let version = path.into_inner();
    if let Err(resp) = authorise(&state, &req, &version) {
        return *resp;
    }
    let Some(q) = params.q.as_deref() else {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string must be provided.",
        );
    };
    let include_deleted = req.path().contains("/queryAll");
    let result = match soql::execute_with(&read_org(&state), q, include_deleted) {
        Ok(r) => r,
        Err(e) => return rest_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    if let Some(n) = result.count {
        return HttpResponse::Ok()
            .content_type("application/json;charset=UTF-8")
            .json(json!({"totalSize": n, "done": true, "records": []}));
    }
    let cursor = Cursor {
        object: result.object,
        version,
        rows: result.into_rows(),
        batch: batch_size(&state, &req),
    };
    page(&state, cursor, 0)
}

async fn query_more(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (version, locator) = path.into_inner();
    if let Err(resp) = authorise(&state, &req, &version) {
        return *resp;
    }
    let invalid = || {
        rest_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )
    };
    let Some((id, offset)) = locator.rsplit_once('-') else {
        return invalid();
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return invalid();
    };
    let Some(cursor) = lock(&state.cursors).remove(id) else {
        return invalid();
    };
    if cursor.version != version {
        return invalid();
    }
    page(&state, cursor, offset)
}

/// Answers one page of a cursor, keeping the cursor when more pages remain.
fn page(state: &State, cursor: Cursor, offset: usize) -> HttpResponse {
    let total = cursor.rows.len();
    let end = (offset + cursor.batch).min(total);
    let version = cursor.version.clone();
    let records: Vec<Value> = cursor
        .rows
        .slice(offset, end)
        .iter()
        .map(|r| {
            let mut out = serde_json::Map::new();
            let id = r.get("Id").and_then(Value::as_str).unwrap_or("");
            out.insert(
                "attributes".into(),
                json!({"type": cursor.object, "url": format!("/services/data/v{version}/sobjects/{}/{id}", cursor.object)}),
            );
            out.extend(r.clone());
            Value::Object(out)
        })
        .collect();
    let mut body = json!({"totalSize": total, "done": end >= total, "records": records});
    if end < total {
        // Locators look like Salesforce's: `01g` + 12 more id characters, then `-<offset>`.
        let serial = state
            .next_cursor
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let locator_id = SalesforceId::from_parts("01g", "5g", serial).as_str()[..15].to_owned();
        let base = lock(&state.next_records_url_base)
            .clone()
            .unwrap_or_default();
        body["nextRecordsUrl"] = Value::from(format!(
            "{base}/services/data/v{version}/query/{locator_id}-{end}"
        ));
        lock(&state.cursors).insert(locator_id, cursor);
    }
    HttpResponse::Ok()
        .content_type("application/json;charset=UTF-8")
        .json(body)
}
