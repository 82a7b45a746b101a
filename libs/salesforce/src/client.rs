//! The authenticated client: every call goes through [`SalesforceClient::send`], which
//!
//! 1. checks the org's API budget (slow down / stop, see [`crate::limits`]);
//! 2. builds the URL from the *current* token's `instance_url` (so a retry after a re-login goes
//!    to the new host, jsforce#196);
//! 3. on 401 `INVALID_SESSION_ID` asks the org's [`TokenManager`] for a newer token (one login
//!    however many calls noticed) and retries once; a second 401 is surfaced as
//!    [`SalesforceError::SessionRejected`], never another login;
//! 4. retries transient failures with jittered backoff (see [`crate::retry`]);
//! 5. records `Sforce-Limit-Info` from every answer.
//!
//! SOQL results are read page by page with a [`QueryPager`]: memory holds one page, each
//! `nextRecordsUrl` is checked to stay on the instance, and the rows received are compared with
//! `totalSize` when the query is done.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use sextant_contracts::time::SharedClock;

use crate::SalesforceError;
use crate::auth::{AccessToken, JwtBearerConfig};
use crate::http::Timeouts;
use crate::limits::{ApiUsage, BudgetDecision, BudgetPolicy, UsageTracker, parse_limit_info};
use crate::retry::{RetryPolicy, parse_retry_after};
use crate::token::{LoginFlow, TokenManager};
use crate::wire::{QueryPage, RestError};

/// What a complete SOQL read returned (for small reads; large ones use [`QueryPager`]).
#[derive(Debug, Clone)]
pub struct QueryOutcome {
    pub records: Vec<Map<String, Value>>,
    /// `totalSize` as Salesforce reported it.
    pub total_size: u64,
    /// Pages fetched, the first included.
    pub pages: u64,
}

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// REST API version, e.g. `62.0` (a leading `v` is accepted).
    pub api_version: String,
    pub retry: RetryPolicy,
    pub budget: BudgetPolicy,
    pub timeouts: Timeouts,
    /// `Sforce-Query-Options: batchSize` (200..=2000); a hint the org may ignore.
    pub query_batch_size: Option<u32>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            api_version: "62.0".into(),
            retry: RetryPolicy::default(),
            budget: BudgetPolicy::default(),
            timeouts: Timeouts::default(),
            query_batch_size: None,
        }
    }
}

/// Counters for progress reports and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ClientStats {
    /// HTTP requests sent to the instance (retries included, logins not).
    pub requests: u64,
    /// Retries after a transient failure.
    pub retries: u64,
    /// Re-authentications after `INVALID_SESSION_ID`.
    pub reauthentications: u64,
    /// Calls delayed because the API budget passed its slow-down share.
    pub throttled: u64,
}

/// One REST call: a path relative to the instance (`/services/data/…`), never a full URL.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    /// Content type and bytes; cloned for each attempt.
    pub body: Option<(&'static str, bytes_body::Body)>,
}

/// Re-export of the byte container used for bodies (no extra dependency for callers).
pub mod bytes_body {
    /// A cheaply clonable body.
    pub type Body = std::sync::Arc<Vec<u8>>;
}

impl ApiRequest {
    /// A GET of `path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }
    /// A call with a JSON body.
    pub fn json(method: Method, path: impl Into<String>, body: &Value) -> Self {
        Self {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Some((
                "application/json",
                Arc::new(serde_json::to_vec(body).unwrap_or_default()),
            )),
        }
    }
    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A successful (2xx) answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl ApiResponse {
    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, SalesforceError> {
        serde_json::from_slice(&self.body).map_err(|e| SalesforceError::Unexpected {
            status: self.status,
            detail: format!("body is not the expected JSON: {e}"),
        })
    }
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A logged-in client for one org.
#[derive(Debug)]
pub struct SalesforceClient {
    http: reqwest::Client,
    tokens: Arc<TokenManager>,
    clock: SharedClock,
    options: ClientOptions,
    usage: UsageTracker,
    requests: AtomicU64,
    retries: AtomicU64,
    reauths: AtomicU64,
    throttled: AtomicU64,
}

impl SalesforceClient {
    /// A JWT-bearer client with default retry and budget options over `http` (which should carry
    /// timeouts; see [`crate::http::client`]). Logs in lazily, on its first call.
    pub fn new(
        http: reqwest::Client,
        auth: JwtBearerConfig,
        clock: SharedClock,
        api_version: &str,
    ) -> Self {
        let tokens = Arc::new(TokenManager::new(
            http.clone(),
            LoginFlow::JwtBearer(auth),
            clock.clone(),
        ));
        let options = ClientOptions {
            api_version: api_version.to_owned(),
            ..ClientOptions::default()
        };
        Self::from_parts(http, tokens, clock, options)
    }

    /// A client with its own HTTP client (built with `options.timeouts`) and token manager.
    pub fn build(
        flow: LoginFlow,
        clock: SharedClock,
        options: ClientOptions,
    ) -> Result<Self, SalesforceError> {
        options.budget.validate()?;
        if options.retry.max_attempts == 0 {
            return Err(SalesforceError::Config(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        let http = crate::http::client(&options.timeouts)?;
        let tokens = Arc::new(TokenManager::new(http.clone(), flow, clock.clone()));
        Ok(Self::from_parts(http, tokens, clock, options))
    }

    /// A client sharing an org's token manager with other clients.
    pub fn from_parts(
        http: reqwest::Client,
        tokens: Arc<TokenManager>,
        clock: SharedClock,
        mut options: ClientOptions,
    ) -> Self {
        options.api_version = options.api_version.trim_start_matches('v').to_owned();
        Self {
            http,
            tokens,
            clock,
            options,
            usage: UsageTracker::default(),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            reauths: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
        }
    }

    /// The org's token manager.
    pub fn tokens(&self) -> &Arc<TokenManager> {
        &self.tokens
    }

    /// The retry policy (also used for per-record retries of collections).
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.options.retry
    }

    /// The REST API version (without `v`).
    pub fn api_version(&self) -> &str {
        &self.options.api_version
    }

    /// Logs in now (also used to check the configuration at start-up).
    pub async fn login(&self) -> Result<AccessToken, SalesforceError> {
        Ok(self.tokens.force_login().await?.token)
    }

    /// The org's API usage as last reported.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        self.usage.latest()
    }

    /// Counters since the client was built.
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            reauthentications: self.reauths.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }

    async fn check_budget(&self) -> Result<(), SalesforceError> {
        match self.usage.decide(&self.options.budget) {
            BudgetDecision::Go => Ok(()),
            BudgetDecision::SlowDown(d) => {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(?d, "API budget past its slow-down share; waiting.");
                tokio::time::sleep(d).await;
                Ok(())
            }
            BudgetDecision::Stop(u) => Err(SalesforceError::BudgetExhausted {
                used: u.used,
                max: u.max,
                stop_percent: (self.options.budget.stop_at * 100.0).round() as u32,
            }),
        }
    }

    /// Sends one call with budget checks, re-authentication and retries; answers 2xx bodies.
    pub async fn send(&self, req: &ApiRequest) -> Result<ApiResponse, SalesforceError> {
        let mut issued = self.tokens.current().await?;
        let mut reauthenticated = false;
        let mut attempt: u32 = 0;
        loop {
            self.check_budget().await?;
            attempt += 1;
            let outcome = self.attempt(req, &issued.token).await;
            let err = match outcome {
                Ok(resp) => return Ok(resp),
                Err(Attempt::Failed { error, .. }) if is_invalid_session(&error) => {
                    if reauthenticated {
                        let message = match &error {
                            SalesforceError::Api { message, .. } => message.clone(),
                            other => other.to_string(),
                        };
                        return Err(SalesforceError::SessionRejected { message });
                    }
                    reauthenticated = true;
                    self.reauths.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("Salesforce session expired or invalid; logging in again.");
                    issued = self.tokens.renew(Some(issued.generation)).await?;
                    // A re-login is not a retry of a transient failure.
                    attempt -= 1;
                    continue;
                }
                Err(Attempt::Failed { error, retry_after }) => (error, retry_after),
            };
            let (error, retry_after) = err;
            if !error.is_transient() {
                return Err(error);
            }
            if attempt >= self.options.retry.max_attempts {
                return Err(SalesforceError::RetriesExhausted {
                    attempts: attempt,
                    last: Box::new(error),
                });
            }
            let Some(wait) = self.options.retry.wait(attempt - 1, retry_after) else {
                tracing::warn!(
                    ?retry_after,
                    "Salesforce asked to wait longer than allowed."
                );
                return Err(SalesforceError::RetriesExhausted {
                    attempts: attempt,
                    last: Box::new(error),
                });
            };
            self.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %error, attempt, ?wait, "Transient Salesforce failure; retrying.");
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, req: &ApiRequest, token: &AccessToken) -> Result<ApiResponse, Attempt> {
        let url = format!("{}{}", token.instance_url, req.path);
        let mut builder = self
            .http
            .request(req.method.clone(), &url)
            .bearer_auth(token.access_token.expose_secret());
        if !req
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("Accept"))
        {
            builder = builder.header("Accept", "application/json");
        }
        for (name, value) in &req.headers {
            builder = builder.header(*name, value);
        }
        if let Some((content_type, body)) = &req.body {
            builder = builder
                .header("Content-Type", *content_type)
                .body(body.as_ref().clone());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = builder.send().await.map_err(Attempt::transport)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if let Some(u) = headers
            .get("Sforce-Limit-Info")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_limit_info)
        {
            self.usage.record(u);
        }
        let retry_after = headers
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.clock.now()));
        // A broken connection mid-body is as transient as one that never opened.
        let body = resp.bytes().await.map_err(Attempt::transport)?.to_vec();
        if (200..300).contains(&status) {
            return Ok(ApiResponse {
                status,
                headers,
                body,
            });
        }
        Err(Attempt::Failed {
            error: rest_error(status, &String::from_utf8_lossy(&body)),
            retry_after,
        })
    }

    /// Starts a SOQL query (`queryAll` when `include_deleted`), read page by page.
    pub fn query_pages(&self, soql: &str, include_deleted: bool) -> QueryPager<'_> {
        let encoded: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        let resource = if include_deleted { "queryAll" } else { "query" };
        QueryPager {
            client: self,
            next: Some(format!(
                "/services/data/v{}/{resource}?q={encoded}",
                self.options.api_version
            )),
            total_size: None,
            received: 0,
            pages: 0,
        }
    }

    /// Runs a SOQL query and collects every page (small reads only: it holds all rows).
    pub async fn query_all(&self, soql: &str) -> Result<QueryOutcome, SalesforceError> {
        let mut pager = self.query_pages(soql, false);
        let mut records = Vec::new();
        while let Some(page) = pager.next_page().await? {
            records.extend(page.records);
        }
        Ok(QueryOutcome {
            records,
            total_size: pager.total_size().unwrap_or(0),
            pages: pager.pages(),
        })
    }

    /// Describes an object (`GET /sobjects/{object}/describe`): its fields and their types. An
    /// object the org does not have (or the user cannot see) is Salesforce's `404 NOT_FOUND`.
    pub async fn describe(
        &self,
        object: &str,
    ) -> Result<crate::wire::SObjectDescribe, SalesforceError> {
        let encoded: String = url::form_urlencoded::byte_serialize(object.as_bytes()).collect();
        let resp = self
            .send(&ApiRequest::get(format!(
                "/services/data/v{}/sobjects/{encoded}/describe",
                self.options.api_version
            )))
            .await?;
        resp.json()
    }

    /// The instance URL of the current token (logging in if needed).
    pub async fn instance_url(&self) -> Result<String, SalesforceError> {
        Ok(self.tokens.current().await?.token.instance_url)
    }
}

enum Attempt {
    Failed {
        error: SalesforceError,
        retry_after: Option<Duration>,
    },
}

impl Attempt {
    fn transport(e: reqwest::Error) -> Self {
        Self::Failed {
            error: SalesforceError::Transport(e),
            retry_after: None,
        }
    }
}

/// 401 `INVALID_SESSION_ID`, except the variants that a new session will not fix (jsforce
/// `isSessionExpired`): those are surfaced at once.
fn is_invalid_session(e: &SalesforceError) -> bool {
    match e {
        SalesforceError::Api {
            status: 401,
            error_code,
            message,
        } => {
            error_code == "INVALID_SESSION_ID"
                && !message.contains("This session is not valid for use with the REST API")
                && !message.contains("Connected app is not attached to Agent")
        }
        _ => false,
    }
}

/// A SOQL result read one page at a time.
#[derive(Debug)]
pub struct QueryPager<'a> {
    client: &'a SalesforceClient,
    next: Option<String>,
    total_size: Option<u64>,
    received: u64,
    pages: u64,
}

impl QueryPager<'_> {
    /// The next page, or `None` after the last. After the last page the rows received are
    /// checked against `totalSize`.
    pub async fn next_page(&mut self) -> Result<Option<QueryPage>, SalesforceError> {
        let Some(path) = self.next.take() else {
            return Ok(None);
        };
        let mut req = ApiRequest::get(path);
        if let Some(n) = self.client.options.query_batch_size {
            req = req.header("Sforce-Query-Options", format!("batchSize={n}"));
        }
        let page: QueryPage = self.client.send(&req).await?.json()?;
        self.pages += 1;
        self.received += page.records.len() as u64;
        self.total_size = Some(page.total_size);
        if page.done {
            if self.received != page.total_size {
                return Err(SalesforceError::RowCountMismatch {
                    total_size: page.total_size,
                    received: self.received,
                });
            }
        } else {
            let next =
                page.next_records_url
                    .as_deref()
                    .ok_or_else(|| SalesforceError::Unexpected {
                        status: 200,
                        detail: "done is false but there is no nextRecordsUrl".into(),
                    })?;
            let instance = self.client.instance_url().await?;
            self.next = Some(resolve_follow_up(&instance, next)?);
        }
        Ok(Some(page))
    }

    /// `totalSize` once the first page arrived.
    pub fn total_size(&self) -> Option<u64> {
        self.total_size
    }
    /// Rows received so far.
    pub fn received(&self) -> u64 {
        self.received
    }
    /// Pages received so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }
}

/// Turns a follow-up URL the org handed us (`nextRecordsUrl`, a Bulk results link) into a path
/// on the instance. Relative paths (what Salesforce sends) must start with `/services/`; an
/// absolute URL is accepted only on the instance's own scheme, host and port. Anything else is
/// refused, so the bearer token never leaves the org's host.
pub fn resolve_follow_up(instance_url: &str, next: &str) -> Result<String, SalesforceError> {
    let foreign = || SalesforceError::ForeignUrl {
        url: next.chars().take(200).collect(),
        instance: instance_url.to_owned(),
    };
    if next.starts_with('/') && !next.starts_with("//") {
        if !next.starts_with("/services/") || next.contains("/../") || next.contains('\\') {
            return Err(foreign());
        }
        return Ok(next.to_owned());
    }
    let (Ok(base), Ok(url)) = (url::Url::parse(instance_url), url::Url::parse(next)) else {
        return Err(foreign());
    };
    if url.origin() != base.origin() || !url.path().starts_with("/services/") {
        return Err(foreign());
    }
    Ok(match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    })
}

/// Turns a REST error body (`[{message, errorCode}]`) into an error; anything else (an HTML
/// maintenance page, plain text from a gateway) becomes [`SalesforceError::Unexpected`] with
/// the start of the body, never a JSON parse panic.
pub fn rest_error(status: u16, body: &str) -> SalesforceError {
    match serde_json::from_str::<Vec<RestError>>(body) {
        Ok(errors) if !errors.is_empty() => {
            let first = &errors[0];
            SalesforceError::Api {
                status,
                error_code: first.error_code.clone(),
                message: first.message.clone(),
            }
        }
        _ => SalesforceError::Unexpected {
            status,
            detail: body.chars().take(200).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_up_urls_stay_on_the_instance() {
        let inst = "https://acme.my.salesforce.com";
        assert_eq!(
            resolve_follow_up(inst, "/services/data/v62.0/query/01gX-2000").ok(),
            Some("/services/data/v62.0/query/01gX-2000".to_owned())
        );
        assert_eq!(
            resolve_follow_up(
                inst,
                "https://acme.my.salesforce.com/services/data/v62.0/query/01gX-2000?x=1"
            )
            .ok(),
            Some("/services/data/v62.0/query/01gX-2000?x=1".to_owned())
        );
        for bad in [
            "https://evil.example.com/services/data/v62.0/query/01gX-2000",
            "//evil.example.com/services/data/v62.0/query/01gX",
            "http://acme.my.salesforce.com/services/data/v62.0/query/01gX",
            "https://acme.my.salesforce.com:8443/services/data/v62.0/query/01gX",
            "/services/../../etc",
            "/other/path",
            "query/01gX-2000",
        ] {
            assert!(
                matches!(
                    resolve_follow_up(inst, bad),
                    Err(SalesforceError::ForeignUrl { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn invalid_session_variants_that_a_login_cannot_fix_are_not_reauthenticated() {
        let e = |m: &str| SalesforceError::Api {
            status: 401,
            error_code: "INVALID_SESSION_ID".into(),
            message: m.into(),
        };
        assert!(is_invalid_session(&e("Session expired or invalid")));
        assert!(!is_invalid_session(&e(
            "This session is not valid for use with the REST API"
        )));
    }
}
