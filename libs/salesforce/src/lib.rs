//! A Salesforce REST client that survives what production orgs do to it.
//!
//! The wire formats are Salesforce's own (see `../shared/docs/salesforce-api.md`): token bodies
//! without `expires_in`, error bodies that are an object for OAuth and an array for REST,
//! `nextRecordsUrl` paging relative to `instance_url`, explicit `null`s, and datetimes with a
//! `+0000` offset. The tests parse the real responses recorded in `../shared/fixtures/salesforce/`
//! and run the client against the org simulator (`sextant-org-sim`) with faults injected.
//!
//! Why the client is shaped the way it is (each point is a failure seen in real client libraries,
//! §10 of the API notes):
//! - **Retries only for what is transient** ([`retry`]): 429, 5xx, connection resets and timeouts,
//!   `UNABLE_TO_LOCK_ROW`; jittered exponential backoff with a cap, `Retry-After` respected. A 4xx
//!   that will fail again is returned at once.
//! - **One token manager per org** ([`token`]): concurrent 401s cause one re-login, each request
//!   re-authenticates at most once and then surfaces the error (no refresh loops), and a retried
//!   request is rebuilt from the *new* `instance_url`.
//! - **The token never leaves the org's host**: a `nextRecordsUrl` (or any follow-up URL the org
//!   hands us) that points elsewhere is refused ([`client::resolve_follow_up`]).
//! - **The org's daily API budget is shared** with every other integration: `Sforce-Limit-Info` is
//!   read on every answer ([`limits`]); the client slows down at a configured share and stops
//!   before the limit with a clear error.
//! - Every HTTP client has connect and request timeouts ([`http`]).
//!
//! # Layout
//! - [`wire`]: serde types for Salesforce's bodies and the datetime parser.
//! - [`auth`]: the OAuth 2.0 flows (JWT bearer, client credentials, refresh token, web server +
//!   PKCE).
//! - [`token`]: the per-org token manager (single-flight re-login).
//! - [`retry`], [`limits`], [`http`]: backoff, API budget, timeouts.
//! - [`client`]: the authenticated client: requests with retry and re-auth, streamed SOQL pages.
//! - [`bulk`], [`ingest`]: Bulk API 2.0 query jobs (large reads) and ingest jobs (large writes).
//! - [`collections`]: sObject Collections upsert, 200 records per call.

pub mod auth;
pub mod bulk;
pub mod client;
pub mod collections;
pub mod datacloud;
pub mod http;
pub mod ingest;
pub mod limits;
pub mod retry;
pub mod token;
pub mod wire;

pub use auth::{AccessToken, JwtBearerConfig};
pub use client::{ClientOptions, QueryOutcome, QueryPager, SalesforceClient};
pub use limits::{ApiUsage, BudgetPolicy};
pub use retry::RetryPolicy;
pub use token::{LoginFlow, TokenManager};

/// Why a Salesforce call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SalesforceError {
    /// The token endpoint refused the login (`{"error","error_description"}`).
    #[error("login refused: {error}: {description}")]
    Auth { error: String, description: String },
    /// A REST call returned an error array (`[{"message","errorCode"}]`).
    #[error("Salesforce answered {status}: {error_code}: {message}")]
    Api {
        status: u16,
        error_code: String,
        message: String,
    },
    /// The body was not what Salesforce sends.
    #[error("unexpected response from Salesforce ({status}): {detail}")]
    Unexpected { status: u16, detail: String },
    /// The private key could not be used to sign the assertion.
    #[error("cannot sign the JWT assertion: {0}")]
    Signing(String),
    /// Could not reach Salesforce, the connection broke, or the call timed out.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The session was refused again right after a fresh login: the error is surfaced instead of
    /// logging in forever (restricted tokens, "High Assurance" sessions, a wrong host).
    #[error(
        "Salesforce refused the session again after a fresh login ({message}); not retrying: \
         check the integration user (expired password, session security level) and the login URL"
    )]
    SessionRejected { message: String },
    /// A follow-up URL handed to us by the org points outside the org's instance; the token is
    /// never sent there.
    #[error("refusing to follow {url}: it is not on the org's instance {instance}")]
    ForeignUrl { url: String, instance: String },
    /// The configured share of the org's daily API budget is used up.
    #[error(
        "the org's daily API budget is used up to the configured stop: {used}/{max} requests \
         (stop at {stop_percent}%); the sync resumes when the 24-hour window frees requests"
    )]
    BudgetExhausted {
        used: u64,
        max: u64,
        stop_percent: u32,
    },
    /// A transient failure persisted through every retry.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        attempts: u32,
        last: Box<SalesforceError>,
    },
    /// A query ended with fewer or more rows than its `totalSize`.
    #[error("query returned {received} rows but Salesforce announced totalSize {total_size}")]
    RowCountMismatch { total_size: u64, received: u64 },
    /// A Bulk API 2.0 job ended `Failed` or `Aborted`, or did not complete in time.
    #[error("bulk job {id} ended {state}: {message}")]
    BulkJob {
        id: String,
        state: String,
        message: String,
    },
    /// Data Cloud refused or failed (token exchange or Query API).
    #[error("Data Cloud answered {status}: {message}")]
    DataCloud { status: u16, message: String },
    /// The Data Cloud token exchange answered with an HTML login page: the core token is not
    /// valid for Data Cloud (expired, revoked, or the user lacks Data Cloud access).
    #[error(
        "the Data Cloud token exchange answered with a login page: the core session is not \
         accepted (expired, or the integration user lacks Data Cloud permissions)"
    )]
    DataCloudLoginPage,
    /// A Data Cloud query cursor expired between two batches (over 3 minutes between calls or
    /// 1 hour in all): the query must be started again.
    #[error("the Data Cloud query cursor expired: {0}")]
    DataCloudCursorExpired(String),
    /// The client was configured wrongly (a bad option, not a Salesforce answer).
    #[error("configuration: {0}")]
    Config(String),
}

impl SalesforceError {
    /// Whether trying the same call again later may succeed: 429, 5xx, transport failures,
    /// `UNABLE_TO_LOCK_ROW` (and `SERVER_UNAVAILABLE`, whatever its status).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api {
                status, error_code, ..
            } => retry::is_transient_status(*status) || retry::is_transient_error_code(error_code),
            Self::Unexpected { status, .. } => retry::is_transient_status(*status),
            Self::Transport(e) => retry::is_transient_transport(e),
            Self::DataCloud { status, .. } => retry::is_transient_status(*status),
            _ => false,
        }
    }

    /// The HTTP status, when Salesforce answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Unexpected { status, .. } => Some(*status),
            Self::Transport(e) => e.status().map(|s| s.as_u16()),
            Self::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }
}
