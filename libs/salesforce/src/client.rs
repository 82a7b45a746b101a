//! An authenticated Salesforce REST client.
//!
//! Holds the current access token; a call that answers 401 `INVALID_SESSION_ID` logs in again
//! once and is retried once against the *new* `instance_url` (never a loop: a second 401 is
//! returned to the caller).

use secrecy::ExposeSecret;
use sextant_contracts::time::SharedClock;
use tokio::sync::RwLock;

use crate::SalesforceError;
use crate::auth::{AccessToken, JwtBearerConfig, jwt_bearer_login};
use crate::wire::{QueryPage, RestError};

/// What a complete SOQL read returned.
#[derive(Debug, Clone)]
pub struct QueryOutcome {
    pub records: Vec<serde_json::Map<String, serde_json::Value>>,
    /// `totalSize` as Salesforce reported it.
    pub total_size: u64,
    /// Pages fetched, the first included.
    pub pages: u64,
}

/// A logged-in client for one org.
#[derive(Debug)]
pub struct SalesforceClient {
    http: reqwest::Client,
    auth: JwtBearerConfig,
    clock: SharedClock,
    api_version: String,
    token: RwLock<Option<AccessToken>>,
}

impl SalesforceClient {
    /// A client that logs in lazily, on its first call.
    pub fn new(
        http: reqwest::Client,
        auth: JwtBearerConfig,
        clock: SharedClock,
        api_version: &str,
    ) -> Self {
        Self {
            http,
            auth,
            clock,
            api_version: api_version.trim_start_matches('v').to_owned(),
            token: RwLock::new(None),
        }
    }

    /// Logs in now (also used to check the configuration at start-up).
    pub async fn login(&self) -> Result<AccessToken, SalesforceError> {
        let token = jwt_bearer_login(&self.http, &self.auth, &self.clock).await?;
        tracing::info!(instance_url = %token.instance_url, "Logged in to Salesforce.");
        *self.token.write().await = Some(token.clone());
        Ok(token)
    }

    async fn current_token(&self) -> Result<AccessToken, SalesforceError> {
        if let Some(t) = self.token.read().await.clone() {
            return Ok(t);
        }
        self.login().await
    }

    /// GETs a path relative to the instance URL, re-authenticating once on an invalid session.
    async fn get_json(&self, path_and_query: &str) -> Result<serde_json::Value, SalesforceError> {
        let mut token = self.current_token().await?;
        for attempt in 0..2 {
            let url = format!("{}{}", token.instance_url, path_and_query);
            let resp = self
                .http
                .get(&url)
                .bearer_auth(token.access_token.expose_secret())
                .header("Accept", "application/json")
                .send()
                .await?;
            let status = resp.status().as_u16();
            let body = resp.text().await?;
            if (200..300).contains(&status) {
                return serde_json::from_str(&body).map_err(|e| SalesforceError::Unexpected {
                    status,
                    detail: e.to_string(),
                });
            }
            let err = rest_error(status, &body);
            let session_expired = matches!(&err, SalesforceError::Api { error_code, .. } if error_code == "INVALID_SESSION_ID");
            if session_expired && attempt == 0 {
                tracing::info!("Salesforce session expired; logging in again.");
                token = self.login().await?;
                continue;
            }
            return Err(err);
        }
        Err(SalesforceError::Unexpected {
            status: 401,
            detail: "session invalid after re-authentication".into(),
        })
    }

    /// Runs a SOQL query and follows every `nextRecordsUrl` until `done`.
    pub async fn query_all(&self, soql: &str) -> Result<QueryOutcome, SalesforceError> {
        let encoded: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        let mut path = format!("/services/data/v{}/query?q={encoded}", self.api_version);
        let mut records = Vec::new();
        let mut pages = 0;
        loop {
            let value = self.get_json(&path).await?;
            let page: QueryPage =
                serde_json::from_value(value).map_err(|e| SalesforceError::Unexpected {
                    status: 200,
                    detail: format!("query page: {e}"),
                })?;
            pages += 1;
            records.extend(page.records);
            match (page.done, page.next_records_url) {
                (true, _) => {
                    return Ok(QueryOutcome {
                        records,
                        total_size: page.total_size,
                        pages,
                    });
                }
                (false, Some(next)) => path = next,
                (false, None) => {
                    return Err(SalesforceError::Unexpected {
                        status: 200,
                        detail: "done is false but there is no nextRecordsUrl".into(),
                    });
                }
            }
        }
    }
}

/// Turns a REST error body (`[{message, errorCode}]`) into an error.
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
