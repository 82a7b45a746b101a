//! The admin token: a bearer token on every `/api/` call, compared in constant time.
//!
//! Both sides are hashed with SHA-256 first and the digests compared with `subtle`, so neither
//! the content nor the length of the configured token leaks through response timing. The token
//! stays a `SecretString`; it is never logged or echoed.

use actix_web::HttpRequest;
use secrecy::{ExposeSecret, SecretString};
use sextant_service_kit::ApiError;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::StartError;

/// The shortest admin token accepted.
pub const MIN_TOKEN_LEN: usize = 24;

/// The configured admin token, kept only as its digest.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    /// Accepts a token of at least [`MIN_TOKEN_LEN`] characters.
    pub fn new(token: &SecretString) -> Result<Self, StartError> {
        let t = token.expose_secret();
        if t.trim().chars().count() < MIN_TOKEN_LEN {
            return Err(StartError::WeakToken { min: MIN_TOKEN_LEN });
        }
        Ok(Self {
            digest: Sha256::digest(t.as_bytes()).into(),
        })
    }

    /// Whether `candidate` is the token (constant time).
    pub fn matches(&self, candidate: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        d.ct_eq(&self.digest).into()
    }

    /// `Ok` when the request carries `Authorization: Bearer <token>`; 401 `unauthorized`
    /// otherwise (the same answer for a missing and a wrong token).
    pub fn check(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let presented = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(t) if self.matches(t) => Ok(()),
            _ => Err(ApiError::unauthorized("a valid admin token is required")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_token_and_refuses_short_ones() {
        let token = AdminToken::new(&SecretString::from("correct horse battery staple"))
            .expect("long enough");
        assert!(token.matches("correct horse battery staple"));
        assert!(!token.matches("correct horse battery stapl"));
        assert!(!token.matches(""));
        assert!(matches!(
            AdminToken::new(&SecretString::from("short")),
            Err(StartError::WeakToken { .. })
        ));
        assert!(!format!("{token:?}").contains("horse"));
    }
}
