//! JWT authentication of scoring calls.
//!
//! Salesforce calls the gateway through a Named Credential that signs a JWT with the org's
//! certificate (RS256); the gateway verifies it with the matching public key or certificate.
//! For development a shared HS256 secret is accepted too. Every call must carry a token whose
//! signature, `exp`, `iss` and `aud` check out; there is no unauthenticated mode.

use std::fmt;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sextant_service_kit::ApiError;

/// How tokens are verified (`SEXTANT_GATEWAY__AUTH__…`).
#[derive(Clone, Deserialize)]
pub struct AuthSettings {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// PEM public key or X.509 certificate for RS256 tokens.
    #[serde(default)]
    pub rs256_public_key_pem: Option<String>,
    /// Shared secret for HS256 tokens (development). At least 32 bytes.
    #[serde(default)]
    pub hs256_secret: Option<SecretString>,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_leeway() -> u64 {
    30
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field(
                "rs256_public_key_pem",
                &self.rs256_public_key_pem.as_ref().map(|_| "[set]"),
            )
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Why the authentication settings are unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthConfigError {
    /// Neither an RS256 key nor an HS256 secret is configured.
    #[error("no verification key: set auth.rs256_public_key_pem or auth.hs256_secret")]
    NoKey,
    /// The RS256 key is not a PEM public key or certificate.
    #[error("auth.rs256_public_key_pem: {0}")]
    BadKey(String),
    /// The HS256 secret is too short to be safe.
    #[error("auth.hs256_secret must be at least 32 bytes")]
    WeakSecret,
}

/// Verifies bearer tokens.
#[derive(Clone)]
pub struct Verifier {
    rs256: Option<DecodingKey>,
    hs256: Option<DecodingKey>,
    issuer: String,
    audience: String,
    leeway: u64,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// The verified caller.
#[derive(Debug, Clone, Deserialize)]
pub struct Caller {
    /// `sub`: the Salesforce user or integration the token was issued for.
    #[serde(default)]
    pub sub: Option<String>,
}

impl Verifier {
    /// Builds a verifier from settings.
    pub fn new(settings: &AuthSettings) -> Result<Self, AuthConfigError> {
        let rs256 = match &settings.rs256_public_key_pem {
            Some(pem) => Some(
                DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| AuthConfigError::BadKey(e.to_string()))?,
            ),
            None => None,
        };
        let hs256 = match &settings.hs256_secret {
            Some(secret) if secret.expose_secret().len() < 32 => {
                return Err(AuthConfigError::WeakSecret);
            }
            Some(secret) => Some(DecodingKey::from_secret(secret.expose_secret().as_bytes())),
            None => None,
        };
        if rs256.is_none() && hs256.is_none() {
            return Err(AuthConfigError::NoKey);
        }
        Ok(Self {
            rs256,
            hs256,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway: settings.leeway_secs,
        })
    }

    /// Verifies a compact JWT: algorithm, signature, `exp`, `nbf`, `iss`, `aud`.
    pub fn verify(&self, token: &str) -> Result<Caller, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| "malformed token".to_owned())?;
        let key = match header.alg {
            Algorithm::RS256 => self.rs256.as_ref(),
            Algorithm::HS256 => self.hs256.as_ref(),
            _ => None,
        }
        .ok_or_else(|| format!("tokens signed with {:?} are not accepted", header.alg))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        jsonwebtoken::decode::<Caller>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::ExpiredSignature => "token expired".to_owned(),
                    K::InvalidIssuer => "wrong issuer".to_owned(),
                    K::InvalidAudience => "wrong audience".to_owned(),
                    K::InvalidSignature => "bad signature".to_owned(),
                    K::ImmatureSignature => "token not yet valid".to_owned(),
                    K::MissingRequiredClaim(c) => format!("missing claim {c}"),
                    _ => "invalid token".to_owned(),
                }
            })
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = (|| {
            let verifier = req
                .app_data::<web::Data<Verifier>>()
                .ok_or_else(|| ApiError::internal("auth", "verifier missing from app data"))?;
            let header = req
                .headers()
                .get("Authorization")
                .and_then(|h| h.to_str().ok())
                .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <JWT>"))?;
            let token = header.strip_prefix("Bearer ").ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be Bearer <JWT>")
            })?;
            verifier.verify(token.trim()).map_err(|reason| {
                tracing::info!(reason, "Refused a scoring call.");
                ApiError::unauthorized(reason)
            })
        })();
        std::future::ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rs: Option<&str>, hs: Option<&str>) -> AuthSettings {
        AuthSettings {
            issuer: "iss".into(),
            audience: "aud".into(),
            rs256_public_key_pem: rs.map(str::to_owned),
            hs256_secret: hs.map(|s| SecretString::from(s.to_owned())),
            leeway_secs: 0,
        }
    }

    #[test]
    fn the_gateway_never_runs_without_a_real_key() {
        assert!(matches!(
            Verifier::new(&settings(None, None)),
            Err(AuthConfigError::NoKey)
        ));
        assert!(matches!(
            Verifier::new(&settings(None, Some("short"))),
            Err(AuthConfigError::WeakSecret)
        ));
        assert!(matches!(
            Verifier::new(&settings(Some("not a pem"), None)),
            Err(AuthConfigError::BadKey(_))
        ));
        assert!(Verifier::new(&settings(None, Some("0123456789abcdef0123456789abcdef"))).is_ok());
    }

    #[test]
    fn secrets_do_not_print() {
        let shown = format!(
            "{:?}",
            settings(None, Some("0123456789abcdef0123456789abcdef"))
        );
        assert!(
            !shown.contains("0123456789abcdef") && shown.contains("[redacted]"),
            "{shown}"
        );
    }

    #[test]
    fn tokens_with_unaccepted_algorithms_are_refused() {
        let v = Verifier::new(&settings(None, Some("0123456789abcdef0123456789abcdef")))
            .expect("verifier");
        // header {"alg":"none"} — never accepted.
        let unsigned =
            "eyJhbGciOiJub25lIn0.eyJpc3MiOiJpc3MiLCJhdWQiOiJhdWQiLCJleHAiOjk5OTk5OTk5OTl9.";
        assert!(v.verify(unsigned).is_err());
        let hs384 = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS384),
            &serde_json::json!({"iss": "iss", "aud": "aud", "exp": 9_999_999_999u64}),
            &jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .expect("encode");
        assert_eq!(
            v.verify(&hs384).map(|_| ()),
            Err("tokens signed with HS384 are not accepted".to_owned())
        );
    }
}
