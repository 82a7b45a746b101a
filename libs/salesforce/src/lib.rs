//! A Salesforce REST client: OAuth 2.0 JWT bearer login and SOQL reads that follow every page.
//!
//! The wire formats are Salesforce's own (see `../shared/docs/salesforce-api.md`): token bodies
//! without `expires_in`, error bodies that are an object for OAuth and an array for REST,
//! `nextRecordsUrl` paging relative to `instance_url`, explicit `null`s, and datetimes with a
//! `+0000` offset. The tests parse the real responses recorded in `../shared/fixtures/salesforce/`.
//!
//! # Layout
//! - [`wire`]: serde types for Salesforce's bodies and the datetime parser.
//! - [`auth`]: the JWT bearer flow.
//! - [`client`]: an authenticated client that re-authenticates once on `INVALID_SESSION_ID`.

pub mod auth;
pub mod client;
pub mod wire;

pub use auth::{AccessToken, JwtBearerConfig};
pub use client::{QueryOutcome, SalesforceClient};

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
    /// Could not reach Salesforce.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
}
