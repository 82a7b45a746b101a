//! Data Cloud: the a360 token exchange and Query API v2.
//!
//! - **Exchange** (`POST {core instance_url}/services/a360/token`, form fields, optional
//!   `dataspace`): the core session becomes a Data Cloud token with an `expires_in` (kept until
//!   60 s before it) and a tenant endpoint **without a scheme** (the scheme is added here:
//!   `https` unless configured, for loopback tests). An HTML page instead of JSON is the login
//!   redirect Salesforce sends when the core session is not accepted: the core token is renewed
//!   once and the exchange tried again, then [`SalesforceError::DataCloudLoginPage`] is surfaced.
//!   The core token is never revoked here (other components share it).
//! - **Query API v2** (`POST /api/v2/query`, then `GET /api/v2/query/{nextBatchId}`): the loop
//!   stops on `done` alone — a last page may still carry a `nextBatchId` (empty or not), and a
//!   middle page may be empty — the batch id is opaque and sent as one encoded path segment,
//!   columns are ordered by `placeInOrder` (the metadata is a JSON object), 429 and 5xx are
//!   retried with backoff, a 401 gets one fresh exchange, and an expired cursor is reported as
//!   [`SalesforceError::DataCloudCursorExpired`] (the query must be run again).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sextant_contracts::time::SharedClock;

use crate::SalesforceError;
use crate::retry::{RetryPolicy, is_transient_status};
use crate::token::TokenManager;

/// How the Data Cloud client behaves.
#[derive(Debug, Clone)]
pub struct DataCloudOptions {
    /// The data space the token is scoped to (`None`: the default one).
    pub dataspace: Option<String>,
    /// Scheme added to the tenant endpoint when it has none (`https`; `http` only for loopback
    /// tests).
    pub scheme: String,
    pub retry: RetryPolicy,
}

impl Default for DataCloudOptions {
    fn default() -> Self {
        Self {
            dataspace: None,
            scheme: "https".into(),
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Debug, Clone)]
struct DcToken {
    access_token: SecretString,
    base_url: String,
    refresh_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct ExchangeBody {
    access_token: String,
    instance_url: String,
    #[serde(default)]
    expires_in: Option<i64>,
}

/// A column of a Query API v2 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_name: String,
    pub type_code: i64,
}

#[derive(Deserialize)]
struct ColumnMeta {
    #[serde(rename = "type", default)]
    type_name: String,
    #[serde(rename = "placeInOrder")]
    place_in_order: i64,
    #[serde(rename = "typeCode", default)]
    type_code: i64,
}

#[derive(Deserialize)]
struct QueryPage {
    #[serde(default)]
    data: Vec<Vec<Value>>,
    #[serde(default)]
    done: bool,
    #[serde(rename = "nextBatchId", default)]
    next_batch_id: Option<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
    #[serde(rename = "queryId", default)]
    query_id: Option<String>,
}

/// A Data Cloud client sharing the org's core token manager.
#[derive(Debug)]
pub struct DataCloudClient {
    http: reqwest::Client,
    core: Arc<TokenManager>,
    clock: SharedClock,
    options: DataCloudOptions,
    token: tokio::sync::Mutex<Option<DcToken>>,
}

impl DataCloudClient {
    /// A client over `http` (which carries timeouts) using the org's core tokens.
    pub fn new(
        http: reqwest::Client,
        core: Arc<TokenManager>,
        clock: SharedClock,
        options: DataCloudOptions,
    ) -> Self {
        Self {
            http,
            core,
            clock,
            options,
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// The tenant endpoint with a scheme.
    fn base_url(&self, instance: &str) -> String {
        if instance.contains("://") {
            instance.trim_end_matches('/').to_owned()
        } else {
            format!(
                "{}://{}",
                self.options.scheme,
                instance.trim_end_matches('/')
            )
        }
    }

    /// A valid Data Cloud token (exchanging when none is cached, it is near expiry, or `force`).
    async fn token(&self, force: bool) -> Result<DcToken, SalesforceError> {
        let mut slot = self.token.lock().await;
        if !force
            && let Some(t) = slot.as_ref()
            && self.clock.now() < t.refresh_at
        {
            return Ok(t.clone());
        }
        let t = self.exchange().await?;
        *slot = Some(t.clone());
        Ok(t)
    }

    async fn exchange(&self) -> Result<DcToken, SalesforceError> {
        let mut issued = self.core.current().await?;
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let url = format!("{}/services/a360/token", issued.token.instance_url);
            let mut form = vec![
                (
                    "grant_type",
                    "urn:salesforce:grant-type:external:cdp".to_owned(),
                ),
                (
                    "subject_token",
                    issued.token.access_token.expose_secret().to_owned(),
                ),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token".to_owned(),
                ),
            ];
            if let Some(ds) = &self.options.dataspace {
                form.push(("dataspace", ds.clone()));
            }
            let resp = self.http.post(&url).form(&form).send().await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) if attempt < self.options.retry.max_attempts => {
                    tracing::warn!(error = %e, "Data Cloud token exchange failed; retrying.");
                    tokio::time::sleep(self.options.retry.backoff(attempt - 1)).await;
                    continue;
                }
                Err(e) => return Err(SalesforceError::Transport(e)),
            };
            let status = resp.status().as_u16();
            let html = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.contains("html"));
            let body = resp.text().await.map_err(SalesforceError::Transport)?;
            let html = html || body.trim_start().starts_with('<');
            if html {
                if renewed {
                    return Err(SalesforceError::DataCloudLoginPage);
                }
                // The core session was not accepted: one fresh login, then one more exchange.
                renewed = true;
                issued = self.core.renew(Some(issued.generation)).await?;
                continue;
            }
            if (200..300).contains(&status) {
                let b: ExchangeBody =
                    serde_json::from_str(&body).map_err(|e| SalesforceError::Unexpected {
                        status,
                        detail: format!("a360 token body: {e}"),
                    })?;
                // No expires_in: assume the documented two hours.
                let ttl = b.expires_in.unwrap_or(7200);
                return Ok(DcToken {
                    access_token: SecretString::from(b.access_token),
                    base_url: self.base_url(&b.instance_url),
                    refresh_at: self.clock.now() + chrono::Duration::seconds((ttl - 60).max(0)),
                });
            }
            if is_transient_status(status) && attempt < self.options.retry.max_attempts {
                tokio::time::sleep(self.options.retry.backoff(attempt - 1)).await;
                continue;
            }
            return Err(oauth_or_dc_error(status, &body));
        }
    }

    /// Starts a query; read it with [`DcQuery::next_batch`].
    pub fn query(&self, sql: &str) -> DcQuery<'_> {
        DcQuery {
            client: self,
            sql: Some(sql.to_owned()),
            next: None,
            done: false,
            columns: Vec::new(),
            rows: 0,
            batches: 0,
            query_id: None,
        }
    }

    /// One call with retries (429, 5xx, transport) and one re-exchange on 401.
    async fn call(&self, body: Option<&Value>, path: &str) -> Result<QueryPage, SalesforceError> {
        let mut token = self.token(false).await?;
        let mut reexchanged = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let url = format!("{}{path}", token.base_url);
            let req = match body {
                Some(b) => self.http.post(&url).json(b),
                None => self.http.get(&url),
            }
            .bearer_auth(token.access_token.expose_secret())
            .header("Accept", "application/json");
            let (status, text, retry_after) = match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let ra = r
                        .headers()
                        .get("Retry-After")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    match r.text().await {
                        Ok(t) => (status, t, ra),
                        Err(e) => (0, e.to_string(), None),
                    }
                }
                Err(e) => (0, e.to_string(), None),
            };
            if (200..300).contains(&status) {
                return serde_json::from_str(&text).map_err(|e| SalesforceError::Unexpected {
                    status,
                    detail: format!("Query API answer is not the expected JSON: {e}"),
                });
            }
            if status == 401 && !reexchanged {
                reexchanged = true;
                token = self.token(true).await?;
                continue;
            }
            let transient = status == 0 || is_transient_status(status);
            if transient && attempt < self.options.retry.max_attempts {
                let wait = self
                    .options
                    .retry
                    .wait(attempt - 1, retry_after)
                    .unwrap_or_else(|| self.options.retry.backoff(attempt - 1));
                tracing::warn!(
                    status,
                    attempt,
                    ?wait,
                    "Data Cloud query call failed; retrying."
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            let message = dc_message(&text);
            if body.is_none()
                && (400..500).contains(&status)
                && status != 401
                && status != 429
                && (message.to_lowercase().contains("expired")
                    || message.to_lowercase().contains("not found"))
            {
                return Err(SalesforceError::DataCloudCursorExpired(message));
            }
            return Err(SalesforceError::DataCloud { status, message });
        }
    }
}

/// The `message` of a Data Cloud error body, else its start (plain text, HTML).
fn dc_message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| {
                    v.get("error_description")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
        })
        .unwrap_or_else(|| text.chars().take(200).collect())
}

fn oauth_or_dc_error(status: u16, body: &str) -> SalesforceError {
    match serde_json::from_str::<crate::wire::OAuthError>(body) {
        Ok(e) => SalesforceError::Auth {
            error: e.error,
            description: e.error_description,
        },
        Err(_) => SalesforceError::DataCloud {
            status,
            message: dc_message(body),
        },
    }
}

/// A running Query API v2 query.
#[derive(Debug)]
pub struct DcQuery<'a> {
    client: &'a DataCloudClient,
    sql: Option<String>,
    next: Option<String>,
    done: bool,
    columns: Vec<Column>,
    rows: u64,
    batches: u64,
    query_id: Option<String>,
}

impl DcQuery<'_> {
    /// The next batch's rows (arrays in column order; possibly empty in the middle), or `None`
    /// once a batch said `done`.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Vec<Value>>>, SalesforceError> {
        if self.done {
            return Ok(None);
        }
        let page = if let Some(sql) = self.sql.take() {
            self.client
                .call(Some(&json!({"sql": sql})), "/api/v2/query")
                .await?
        } else {
            let Some(id) = self.next.take() else {
                return Err(SalesforceError::Unexpected {
                    status: 200,
                    detail: "done is false but there is no nextBatchId".into(),
                });
            };
            let encoded: String = url::form_urlencoded::byte_serialize(id.as_bytes())
                .collect::<String>()
                .replace('+', "%20");
            self.client
                .call(None, &format!("/api/v2/query/{encoded}"))
                .await?
        };
        self.batches += 1;
        if self.columns.is_empty() && !page.metadata.is_empty() {
            let mut cols: Vec<(i64, Column)> = page
                .metadata
                .iter()
                .filter_map(|(name, v)| {
                    let m: ColumnMeta = serde_json::from_value(v.clone()).ok()?;
                    Some((
                        m.place_in_order,
                        Column {
                            name: name.clone(),
                            type_name: m.type_name,
                            type_code: m.type_code,
                        },
                    ))
                })
                .collect();
            cols.sort_by_key(|(p, _)| *p);
            self.columns = cols.into_iter().map(|(_, c)| c).collect();
        }
        if self.query_id.is_none() {
            self.query_id = page.query_id.clone();
        }
        self.rows += page.data.len() as u64;
        // `done` decides, whatever nextBatchId says.
        if page.done {
            self.done = true;
        } else {
            self.next = page.next_batch_id.filter(|s| !s.is_empty());
        }
        Ok(Some(page.data))
    }

    /// Columns in `placeInOrder` order (known after the first batch).
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }
    /// Rows received so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }
    /// Batches received so far.
    pub fn batches(&self) -> u64 {
        self.batches
    }
    /// The query's id, once known.
    pub fn query_id(&self) -> Option<&str> {
        self.query_id.as_deref()
    }
}
