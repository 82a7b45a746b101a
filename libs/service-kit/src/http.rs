//! The HTTP client services use to call each other, and small helpers around it.
//!
//! One configured client (timeouts set) rather than `reqwest::Client::new()` scattered around:
//! a call to a hung upstream must fail, not hang a request forever.

use std::time::Duration;

use serde::de::DeserializeOwned;
use sextant_contracts::ErrorBody;

/// A client with connect and overall timeouts.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .build()
        .unwrap_or_default()
}

/// Why a call to another Sextant service failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// Could not connect, or the call timed out.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The service answered with an error body.
    #[error("{status}: {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
}

impl UpstreamError {
    /// The HTTP status, when the service answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            Self::Transport(_) => None,
        }
    }
}

/// Reads a JSON body on success, or the Sextant error body otherwise.
pub async fn read_json<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, UpstreamError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp.json().await?);
    }
    let text = resp.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => (body.code.as_str().to_owned(), body.message),
        Err(_) => ("unknown".to_owned(), text.chars().take(200).collect()),
    };
    Err(UpstreamError::Api {
        status: status.as_u16(),
        code,
        message,
    })
}
