//! The HTTP client every Salesforce call goes through: connect and request timeouts always set.
//!
//! A hung TCP connect or a server that stops sending mid-body must fail (and then be retried as
//! transient), not hang a sync forever.

use std::time::Duration;

use crate::SalesforceError;

/// Connect and whole-request timeouts.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    /// Establishing the TCP + TLS connection.
    pub connect: Duration,
    /// One request, from sending to the last byte of the answer.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(120),
        }
    }
}

/// Builds a client with both timeouts; redirects are not followed (an org never redirects an API
/// call, and following one could carry the bearer token to another host).
pub fn client(timeouts: &Timeouts) -> Result<reqwest::Client, SalesforceError> {
    if timeouts.connect.is_zero() || timeouts.request.is_zero() {
        return Err(SalesforceError::Config(
            "HTTP timeouts must be greater than zero".into(),
        ));
    }
    Ok(reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}
