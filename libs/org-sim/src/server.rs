//! The simulator's HTTP server: the OAuth token endpoint and the REST query endpoints.
//!
//! Login host and instance host are the same loopback server here; the token response's
//! `instance_url` points back at it, so a client that (correctly) sends REST calls to
//! `instance_url` rather than the login host works unchanged against a real org.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::Rng;
use serde_json::{Value, json};
use sextant_contracts::SalesforceId;
use sextant_contracts::time::SharedClock;

use crate::data::OrgData;
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
    /// Daily API request allowance reported in `Sforce-Limit-Info`.
    pub api_request_limit: u64,
    /// The org id (`00D…`).
    pub org_id: SalesforceId,
    /// The integration user's id (`005…`).
    pub user_id: SalesforceId,
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
            api_request_limit: 15_000,
            org_id: SalesforceId::from_parts("00D", "5g", 1),
            user_id: SalesforceId::from_parts("005", "5g", 1),
        }
    }
}

/// One request the simulator received (for assertions in tests).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
}

struct Cursor {
    object: &'static str,
    version: String,
    rows: Vec<serde_json::Map<String, Value>>,
    batch: usize,
}

struct State {
    config: OrgSimConfig,
    org: OrgData,
    decoding_key: DecodingKey,
    clock: SharedClock,
    base_url: Mutex<String>,
    sessions: Mutex<HashMap<String, ()>>,
    cursors: Mutex<HashMap<String, Cursor>>,
    /// Serial number of the next query locator.
    next_cursor: std::sync::atomic::AtomicU64,
    api_usage: Mutex<u64>,
    requests: Mutex<Vec<RecordedRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
    handle: ServerHandle,
    state: Arc<State>,
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
        let decoding_key = DecodingKey::from_rsa_pem(config.certificate_pem.as_bytes())
            .map_err(|e| OrgSimError::Certificate(e.to_string()))?;
        let port = listener.local_addr()?.port();
        let base_url = format!("http://127.0.0.1:{port}");
        let state = Arc::new(State {
            config,
            org,
            decoding_key,
            clock,
            base_url: Mutex::new(base_url.clone()),
            sessions: Mutex::new(HashMap::new()),
            cursors: Mutex::new(HashMap::new()),
            next_cursor: std::sync::atomic::AtomicU64::new(1),
            api_usage: Mutex::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .wrap_fn(|req, srv| {
                    if let Some(state) = req.app_data::<web::Data<State>>() {
                        lock(&state.requests).push(RecordedRequest {
                            method: req.method().to_string(),
                            path: req.path().to_owned(),
                            query: req.query_string().to_owned(),
                        });
                    }
                    actix_web::dev::Service::call(srv, req)
                })
                .route("/services/oauth2/token", web::post().to(token))
                .route("/services/data", web::get().to(versions))
                .route("/services/data/", web::get().to(versions))
                .route("/services/data/v{version}/query", web::get().to(query))
                .route("/services/data/v{version}/queryAll", web::get().to(query))
                .route(
                    "/services/data/v{version}/query/{locator}",
                    web::get().to(query_more),
                )
                .default_service(web::to(not_found))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        let running = RunningOrgSim {
            base_url,
            port,
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
    if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant type not supported",
        );
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
            lock(&state.sessions).insert(token.clone(), ());
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

fn rest_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
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
fn authorise(state: &State, req: &HttpRequest, version: &str) -> Result<u64, Box<HttpResponse>> {
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

fn limit_header(state: &State, used: u64) -> (&'static str, String) {
    (
        "Sforce-Limit-Info",
        format!("api-usage={used}/{}", state.config.api_request_limit),
    )
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
    let used = match authorise(&state, &req, &version) {
        Ok(u) => u,
        Err(resp) => return *resp,
    };
    let Some(q) = params.q.as_deref() else {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string must be provided.",
        );
    };
    let result = match soql::execute(&state.org, q) {
        Ok(r) => r,
        Err(e) => return rest_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    let cursor = Cursor {
        object: result.object,
        version,
        rows: result.rows,
        batch: batch_size(&state, &req),
    };
    page(&state, cursor, 0, used)
}

async fn query_more(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (version, locator) = path.into_inner();
    let used = match authorise(&state, &req, &version) {
        Ok(u) => u,
        Err(resp) => return *resp,
    };
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
    page(&state, cursor, offset, used)
}

/// Answers one page of a cursor, keeping the cursor when more pages remain.
fn page(state: &State, cursor: Cursor, offset: usize, used: u64) -> HttpResponse {
    let total = cursor.rows.len();
    let end = (offset + cursor.batch).min(total);
    let version = cursor.version.clone();
    let records: Vec<Value> = cursor.rows[offset.min(total)..end]
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
        body["nextRecordsUrl"] = Value::from(format!(
            "/services/data/v{version}/query/{locator_id}-{end}"
        ));
        lock(&state.cursors).insert(locator_id, cursor);
    }
    HttpResponse::Ok()
        .insert_header(limit_header(state, used))
        .content_type("application/json;charset=UTF-8")
        .json(body)
}
