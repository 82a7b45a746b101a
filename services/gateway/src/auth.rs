//! JWT authentication of scoring calls.
//!
//! Salesforce calls the gateway through a Named Credential that signs a JWT with the org's
//! certificate (RS256); the gateway verifies it with the matching public key or certificate.
//! Every call must carry a token whose signature, `exp`, `iss` and `aud` check out; there is no
//! unauthenticated mode.
//!
//! # Keys and rotation
//! Certificates expire, so the verification key must be replaceable without downtime. RS256 keys
//! come from three places:
//!
//! - `rs256_public_key_pem`: one key or certificate, no `kid` — the original setting. It is
//!   then the only RS256 key (it cannot be combined with the two below) and verifies every RS256
//!   token, whatever `kid` it names.
//! - `rs256_keys`: a list of `{kid, pem}`. To rotate, add the new certificate under a new `kid`,
//!   switch the signer over (its tokens name the new `kid` in the header), then remove the old
//!   entry.
//! - `jwks_url`: a JSON Web Key Set fetched and cached in the background ([`crate::jwks`]); a
//!   `kid` not yet in the cache triggers one rate-limited refresh.
//!
//! With several keys a token must name its key in `kid`; a token without `kid` is accepted only
//! while exactly one RS256 key is configured (or cached), and is verified with that key.
//!
//! # HS256
//! A shared HS256 secret exists for development. Since anyone holding it can mint tokens, it is
//! refused at start-up together with any RS256 key unless `allow_hs256_with_rs256` says this is a
//! development set-up; with RS256 alone, HS256 tokens are refused.
//!
//! # Token lifetime
//! `max_token_lifetime_secs` (0 = no limit) bounds `exp - iat`, so a leaked long-lived token is
//! not a standing credential. With a limit, tokens must carry `iat` (without it the lifetime is
//! unknown) and `iat` must not be in the future (beyond the leeway).
//!
//! Refusals are `401 unauthorized` with a short reason; neither tokens nor secrets ever appear
//! in errors or logs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use sextant_service_kit::ApiError;
use sextant_service_kit::metrics::Metrics;

use crate::jwks::{Jwks, JwksConfig};

/// How tokens are verified (`SEXTANT_GATEWAY__AUTH__…`).
#[derive(Clone, Deserialize)]
pub struct AuthSettings {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// One PEM public key or X.509 certificate for RS256 tokens, whatever their `kid`.
    /// Cannot be combined with `rs256_keys` or `jwks_url`.
    #[serde(default)]
    pub rs256_public_key_pem: Option<String>,
    /// RS256 keys selected by the token's `kid`: a list in the TOML file, or a JSON array
    /// `[{"kid": "...", "pem": "-----BEGIN ..."}]` in `SEXTANT_GATEWAY__AUTH__RS256_KEYS`.
    #[serde(default, deserialize_with = "list_or_json")]
    pub rs256_keys: Vec<Rs256Key>,
    /// A JWKS URL (`https://`; `http://` only to a loopback address) whose RSA signing keys
    /// verify RS256 tokens by `kid`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// How often the JWKS is fetched, in seconds (default 300).
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
    /// Least time between two fetches caused by an unknown `kid`, in seconds (default 30).
    #[serde(default = "default_jwks_min_refresh")]
    pub jwks_min_refresh_secs: u64,
    /// Connect timeout of a JWKS fetch, in seconds (default 3).
    #[serde(default = "default_jwks_connect_timeout")]
    pub jwks_connect_timeout_secs: u64,
    /// Whole-request timeout of a JWKS fetch, in seconds (default 5).
    #[serde(default = "default_jwks_timeout")]
    pub jwks_timeout_secs: u64,
    /// Shared secret for HS256 tokens (development). At least 32 bytes.
    #[serde(default)]
    pub hs256_secret: Option<SecretString>,
    /// Development only: accept HS256 tokens although an RS256 key is configured.
    #[serde(default)]
    pub allow_hs256_with_rs256: bool,
    /// Longest accepted `exp - iat`, in seconds; 0 = no limit (default). With a limit, tokens
    /// without `iat` are refused.
    #[serde(default)]
    pub max_token_lifetime_secs: u64,
    /// Clock skew tolerated on `exp`/`nbf`/`iat`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

/// An RS256 verification key and the `kid` tokens name it by.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rs256Key {
    /// The key id tokens carry in their header.
    pub kid: String,
    /// PEM public key or X.509 certificate.
    pub pem: String,
}

impl fmt::Debug for Rs256Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rs256Key")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A list, or (from an environment variable) a string holding the list as JSON.
fn list_or_json<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Rs256Key>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        List(Vec<Rs256Key>),
        Json(String),
    }
    match Form::deserialize(d)? {
        Form::List(keys) => Ok(keys),
        Form::Json(s) if s.trim().is_empty() => Ok(Vec::new()),
        Form::Json(s) => serde_json::from_str(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "auth.rs256_keys: expected a JSON array of {{\"kid\", \"pem\"}} objects: {e}"
            ))
        }),
    }
}

fn default_leeway() -> u64 {
    30
}
fn default_jwks_refresh() -> u64 {
    300
}
fn default_jwks_min_refresh() -> u64 {
    30
}
fn default_jwks_connect_timeout() -> u64 {
    3
}
fn default_jwks_timeout() -> u64 {
    5
}

impl AuthSettings {
    /// Settings for `issuer` and `audience` with no key yet and every other default.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            rs256_public_key_pem: None,
            rs256_keys: Vec::new(),
            jwks_url: None,
            jwks_refresh_secs: default_jwks_refresh(),
            jwks_min_refresh_secs: default_jwks_min_refresh(),
            jwks_connect_timeout_secs: default_jwks_connect_timeout(),
            jwks_timeout_secs: default_jwks_timeout(),
            hs256_secret: None,
            allow_hs256_with_rs256: false,
            max_token_lifetime_secs: 0,
            leeway_secs: default_leeway(),
        }
    }
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
            .field("rs256_keys", &self.rs256_keys)
            .field("jwks_url", &self.jwks_url)
            .field("jwks_refresh_secs", &self.jwks_refresh_secs)
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("allow_hs256_with_rs256", &self.allow_hs256_with_rs256)
            .field("max_token_lifetime_secs", &self.max_token_lifetime_secs)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

/// Why the authentication settings are unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthConfigError {
    /// Neither an RS256 key nor an HS256 secret is configured.
    #[error(
        "no verification key: set auth.rs256_public_key_pem, auth.rs256_keys, auth.jwks_url or auth.hs256_secret"
    )]
    NoKey,
    /// The RS256 key is not a PEM public key or certificate.
    #[error("auth.rs256_public_key_pem: {0}")]
    BadKey(String),
    /// An entry of `rs256_keys` is not a PEM public key or certificate.
    #[error("auth.rs256_keys[kid={kid:?}]: {reason}")]
    BadKeyOf {
        /// The entry's `kid`.
        kid: String,
        /// What is wrong with its PEM.
        reason: String,
    },
    /// An entry of `rs256_keys` has an empty `kid`.
    #[error("auth.rs256_keys: every key needs a non-empty kid")]
    EmptyKid,
    /// Two entries of `rs256_keys` have the same `kid`.
    #[error("auth.rs256_keys: kid {0:?} appears twice")]
    DuplicateKid(String),
    /// The single kid-less key is combined with keys selected by `kid`.
    #[error(
        "auth.rs256_public_key_pem cannot be combined with auth.rs256_keys or auth.jwks_url: move it into auth.rs256_keys with a kid"
    )]
    SingleKeyWithKeySet,
    /// HS256 and RS256 together without the development flag.
    #[error(
        "auth.hs256_secret is set together with an RS256 key: anyone with the shared secret could mint tokens; remove it, or set auth.allow_hs256_with_rs256=true in development"
    )]
    MixedAlgorithms,
    /// The HS256 secret is too short to be safe.
    #[error("auth.hs256_secret must be at least 32 bytes")]
    WeakSecret,
    /// The JWKS URL is not a usable URL.
    #[error("auth.jwks_url: {0}")]
    BadJwksUrl(String),
    /// A JWKS interval or timeout is 0.
    #[error("auth.{0} must be at least 1 second")]
    ZeroInterval(&'static str),
}

/// Why a token was refused (the message of the `401 unauthorized` answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No usable `Authorization` header.
    #[error("missing Authorization: Bearer <JWT>")]
    MissingHeader,
    /// The header is not `Bearer <JWT>`.
    #[error("the Authorization header must be Bearer <JWT>")]
    NotBearer,
    /// Not a compact JWT.
    #[error("malformed token")]
    Malformed,
    /// Signed with an algorithm the gateway does not accept (as configured).
    #[error("tokens signed with {0} are not accepted")]
    Algorithm(String),
    /// The token's `kid` names no configured or published key.
    #[error("unknown key id (kid)")]
    UnknownKid,
    /// Several keys are configured and the token does not say which one.
    #[error("the token names no key id (kid) and several RS256 keys are configured")]
    KidRequired,
    /// No RS256 key is available (the JWKS has not been fetched, or is empty).
    #[error("no RS256 key is available to verify this token")]
    NoRs256Key,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("token issued in the future (iat)")]
    IssuedInFuture,
    /// `exp - iat` exceeds the configured maximum.
    #[error("token lifetime (exp - iat) exceeds the maximum of {0} s")]
    LifetimeTooLong(u64),
    /// Wrong `iss`.
    #[error("wrong issuer")]
    WrongIssuer,
    /// Wrong `aud`.
    #[error("wrong audience")]
    WrongAudience,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// A required claim is missing.
    #[error("missing claim {0}")]
    MissingClaim(String),
    /// Anything else wrong with the token.
    #[error("invalid token")]
    Invalid,
}

/// Verifies bearer tokens.
#[derive(Clone)]
pub struct Verifier {
    /// `rs256_public_key_pem`: the only RS256 key when set.
    single: Option<DecodingKey>,
    /// `rs256_keys` by `kid`.
    keys: HashMap<String, DecodingKey>,
    jwks: Option<Arc<Jwks>>,
    hs256: Option<DecodingKey>,
    issuer: String,
    audience: String,
    leeway: u64,
    max_lifetime: Option<u64>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("kids", &kids)
            .field("jwks", &self.jwks)
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

/// The claims the gateway reads beyond what `jsonwebtoken` validates.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    iat: Option<f64>,
    #[serde(default)]
    exp: Option<f64>,
}

impl Verifier {
    /// Builds a verifier from settings (a JWKS, if any, is not fetched yet and has no metrics).
    ///
    /// # Errors
    /// Why the settings are unusable.
    pub fn new(settings: &AuthSettings) -> Result<Self, AuthConfigError> {
        Self::with_metrics(settings, None)
    }

    /// [`Verifier::new`], registering the JWKS metrics on `metrics`.
    ///
    /// # Errors
    /// Why the settings are unusable.
    pub fn with_metrics(
        settings: &AuthSettings,
        metrics: Option<&Metrics>,
    ) -> Result<Self, AuthConfigError> {
        let single = match &settings.rs256_public_key_pem {
            Some(pem) => Some(
                DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| AuthConfigError::BadKey(e.to_string()))?,
            ),
            None => None,
        };
        let mut keys = HashMap::new();
        for key in &settings.rs256_keys {
            if key.kid.trim().is_empty() {
                return Err(AuthConfigError::EmptyKid);
            }
            let decoded = DecodingKey::from_rsa_pem(key.pem.as_bytes()).map_err(|e| {
                AuthConfigError::BadKeyOf {
                    kid: key.kid.clone(),
                    reason: e.to_string(),
                }
            })?;
            if keys.insert(key.kid.clone(), decoded).is_some() {
                return Err(AuthConfigError::DuplicateKid(key.kid.clone()));
            }
        }
        let jwks = match &settings.jwks_url {
            Some(url) => Some(Arc::new(Jwks::new(jwks_config(settings, url)?, metrics))),
            None => None,
        };
        if single.is_some() && (!keys.is_empty() || jwks.is_some()) {
            return Err(AuthConfigError::SingleKeyWithKeySet);
        }
        let hs256 = match &settings.hs256_secret {
            Some(secret) if secret.expose_secret().len() < 32 => {
                return Err(AuthConfigError::WeakSecret);
            }
            Some(secret) => Some(DecodingKey::from_secret(secret.expose_secret().as_bytes())),
            None => None,
        };
        let any_rs256 = single.is_some() || !keys.is_empty() || jwks.is_some();
        if !any_rs256 && hs256.is_none() {
            return Err(AuthConfigError::NoKey);
        }
        if any_rs256 && hs256.is_some() && !settings.allow_hs256_with_rs256 {
            return Err(AuthConfigError::MixedAlgorithms);
        }
        if any_rs256 && hs256.is_some() {
            tracing::warn!(
                "HS256 tokens are accepted alongside RS256 (auth.allow_hs256_with_rs256): development only."
            );
        }
        Ok(Self {
            single,
            keys,
            jwks,
            hs256,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            leeway: settings.leeway_secs,
            max_lifetime: (settings.max_token_lifetime_secs > 0)
                .then_some(settings.max_token_lifetime_secs),
        })
    }

    /// The JWKS cache, when `jwks_url` is set (the caller starts its refresher).
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        self.jwks.as_ref()
    }

    /// The RS256 key for a token naming `kid`.
    async fn rs256_key(&self, kid: Option<&str>) -> Result<DecodingKey, AuthError> {
        if let Some(key) = &self.single {
            return Ok(key.clone());
        }
        let Some(kid) = kid else {
            let published = self.jwks.as_ref().map_or(0, |j| j.len());
            return match (self.keys.len(), published) {
                (1, 0) => self
                    .keys
                    .values()
                    .next()
                    .cloned()
                    .ok_or(AuthError::KidRequired),
                (0, 1) => self
                    .jwks
                    .as_ref()
                    .and_then(|j| j.only_key())
                    .ok_or(AuthError::KidRequired),
                (0, 0) => Err(AuthError::NoRs256Key),
                _ => Err(AuthError::KidRequired),
            };
        };
        if let Some(key) = self.keys.get(kid) {
            return Ok(key.clone());
        }
        let Some(jwks) = &self.jwks else {
            return Err(AuthError::UnknownKid);
        };
        if let Some(key) = jwks.get(kid) {
            return Ok(key.clone());
        }
        // A key published since the last refresh: fetch once (rate-limited) and look again.
        if jwks.refresh_for_unknown_kid().await
            && let Some(key) = jwks.get(kid)
        {
            return Ok(key.clone());
        }
        Err(AuthError::UnknownKid)
    }

    /// Verifies a compact JWT: algorithm, key, signature, `exp`, `nbf`, `iss`, `aud` and, with a
    /// maximum lifetime, `iat`.
    ///
    /// # Errors
    /// Why the token is refused.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let key = match header.alg {
            Algorithm::RS256
                if self.single.is_some() || !self.keys.is_empty() || self.jwks.is_some() =>
            {
                self.rs256_key(header.kid.as_deref()).await?
            }
            Algorithm::HS256 if self.hs256.is_some() => {
                self.hs256.clone().ok_or(AuthError::Invalid)?
            }
            other => return Err(AuthError::Algorithm(format!("{other:?}"))),
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        let mut required = vec!["exp", "iss", "aud"];
        if self.max_lifetime.is_some() {
            required.push("iat");
        }
        validation.set_required_spec_claims(&required);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::ExpiredSignature => AuthError::Expired,
                    K::InvalidIssuer => AuthError::WrongIssuer,
                    K::InvalidAudience => AuthError::WrongAudience,
                    K::InvalidSignature => AuthError::BadSignature,
                    K::ImmatureSignature => AuthError::NotYetValid,
                    K::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
                    _ => AuthError::Invalid,
                }
            })?;
        if let Some(max) = self.max_lifetime {
            let (Some(iat), Some(exp)) = (claims.iat, claims.exp) else {
                return Err(AuthError::MissingClaim("iat".into()));
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs_f64();
            #[expect(clippy::cast_precision_loss, reason = "seconds, far below 2^53")]
            let (leeway, max_f) = (self.leeway as f64, max as f64);
            if !iat.is_finite() || iat > now + leeway {
                return Err(AuthError::IssuedInFuture);
            }
            if exp - iat > max_f {
                return Err(AuthError::LifetimeTooLong(max));
            }
        }
        Ok(Caller { sub: claims.sub })
    }
}

fn jwks_config(settings: &AuthSettings, url: &str) -> Result<JwksConfig, AuthConfigError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| AuthConfigError::BadJwksUrl(e.to_string()))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(AuthConfigError::BadJwksUrl(
                "must be https:// (http:// only to a loopback address)".into(),
            ));
        }
    }
    let secs = |v: u64, name: &'static str| {
        if v == 0 {
            Err(AuthConfigError::ZeroInterval(name))
        } else {
            Ok(Duration::from_secs(v))
        }
    };
    Ok(JwksConfig {
        url: parsed,
        refresh: secs(settings.jwks_refresh_secs, "jwks_refresh_secs")?,
        // 0 is allowed here: every unknown kid may refresh (tests; a trusted provider).
        min_refresh: Duration::from_secs(settings.jwks_min_refresh_secs),
        connect_timeout: secs(
            settings.jwks_connect_timeout_secs,
            "jwks_connect_timeout_secs",
        )?,
        timeout: secs(settings.jwks_timeout_secs, "jwks_timeout_secs")?,
    })
}

/// The token of an `Authorization` header value: the scheme `Bearer` in any case, then the token.
fn bearer_token(header: &str) -> Result<&str, AuthError> {
    let (scheme, token) = header
        .trim()
        .split_once(char::is_whitespace)
        .ok_or(AuthError::NotBearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::NotBearer);
    }
    Ok(token)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<Verifier>>().cloned();
        let header = req
            .headers()
            .get("Authorization")
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        Box::pin(async move {
            let verifier = verifier
                .ok_or_else(|| ApiError::internal("auth", "verifier missing from app data"))?;
            let result = match header {
                None => Err(AuthError::MissingHeader),
                Some(h) => match bearer_token(&h) {
                    Ok(token) => verifier.verify(token).await,
                    Err(e) => Err(e),
                },
            };
            result.map_err(|reason| {
                tracing::info!(reason = %reason, "Refused a scoring call.");
                ApiError::unauthorized(reason.to_string())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn settings(rs: Option<&str>, hs: Option<&str>) -> AuthSettings {
        AuthSettings {
            rs256_public_key_pem: rs.map(str::to_owned),
            hs256_secret: hs.map(|s| SecretString::from(s.to_owned())),
            leeway_secs: 0,
            ..AuthSettings::new("iss", "aud")
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
        assert!(Verifier::new(&settings(None, Some(SECRET))).is_ok());
    }

    #[test]
    fn key_lists_and_urls_are_checked_at_start_up() {
        let with_keys = |keys: &[(&str, &str)]| AuthSettings {
            rs256_keys: keys
                .iter()
                .map(|(kid, pem)| Rs256Key {
                    kid: (*kid).into(),
                    pem: (*pem).into(),
                })
                .collect(),
            ..settings(None, None)
        };
        assert!(matches!(
            Verifier::new(&with_keys(&[("", "x")])),
            Err(AuthConfigError::EmptyKid)
        ));
        let err = Verifier::new(&with_keys(&[("k1", "not a pem")])).expect_err("bad pem");
        assert!(
            matches!(&err, AuthConfigError::BadKeyOf { kid, .. } if kid == "k1"),
            "{err}"
        );
        for (url, ok) in [
            ("https://idp.example.com/.well-known/jwks.json", true),
            ("http://127.0.0.1:9/jwks", true),
            ("http://localhost:9/jwks", true),
            ("http://[::1]:9/jwks", true),
            ("http://idp.example.com/jwks", false),
            ("ftp://idp.example.com/jwks", false),
            ("not a url", false),
        ] {
            let s = AuthSettings {
                jwks_url: Some(url.into()),
                ..settings(None, None)
            };
            assert_eq!(Verifier::new(&s).is_ok(), ok, "{url}");
        }
        let s = AuthSettings {
            jwks_url: Some("https://idp.example.com/jwks".into()),
            jwks_refresh_secs: 0,
            ..settings(None, None)
        };
        assert!(matches!(
            Verifier::new(&s),
            Err(AuthConfigError::ZeroInterval("jwks_refresh_secs"))
        ));
    }

    #[test]
    fn hs256_with_a_jwks_needs_the_development_flag() {
        let s = AuthSettings {
            jwks_url: Some("https://idp.example.com/jwks".into()),
            ..settings(None, Some(SECRET))
        };
        let err = Verifier::new(&s).expect_err("mixed");
        assert!(matches!(err, AuthConfigError::MixedAlgorithms));
        assert!(!err.to_string().contains(SECRET));
        let s = AuthSettings {
            allow_hs256_with_rs256: true,
            ..s
        };
        assert!(Verifier::new(&s).is_ok());
    }

    #[test]
    fn key_lists_come_from_toml_or_a_json_environment_variable() {
        let from_toml: AuthSettings = toml_like(serde_json::json!({
            "issuer": "i", "audience": "a",
            "rs256_keys": [{"kid": "k1", "pem": "P1"}, {"kid": "k2", "pem": "P2"}]
        }));
        let kids: Vec<_> = from_toml
            .rs256_keys
            .iter()
            .map(|k| k.kid.as_str())
            .collect();
        assert_eq!(kids, ["k1", "k2"]);
        let from_env: AuthSettings = toml_like(serde_json::json!({
            "issuer": "i", "audience": "a",
            "rs256_keys": "[{\"kid\": \"k1\", \"pem\": \"-----BEGIN\\nX\"}]"
        }));
        assert_eq!(from_env.rs256_keys.len(), 1);
        assert_eq!(from_env.rs256_keys[0].pem, "-----BEGIN\nX");
        let bad = serde_json::from_value::<AuthSettings>(serde_json::json!({
            "issuer": "i", "audience": "a", "rs256_keys": "[{\"id\": 1}]"
        }));
        assert!(bad.is_err());
    }

    fn toml_like(v: serde_json::Value) -> AuthSettings {
        serde_json::from_value(v).expect("settings")
    }

    #[test]
    fn secrets_do_not_print() {
        let shown = format!("{:?}", settings(None, Some(SECRET)));
        assert!(
            !shown.contains("0123456789abcdef") && shown.contains("[redacted]"),
            "{shown}"
        );
    }

    #[test]
    fn the_bearer_scheme_is_matched_without_regard_to_case() {
        for h in [
            "Bearer t.o.k",
            "bearer t.o.k",
            "BEARER  t.o.k ",
            "  bEaReR\tt.o.k",
        ] {
            assert_eq!(bearer_token(h), Ok("t.o.k"), "{h:?}");
        }
        for h in ["Basic t.o.k", "Bearer", "Bearer   ", "Bearert.o.k", ""] {
            assert_eq!(bearer_token(h), Err(AuthError::NotBearer), "{h:?}");
        }
    }

    #[tokio::test]
    async fn tokens_with_unaccepted_algorithms_are_refused() {
        let v = Verifier::new(&settings(None, Some(SECRET))).expect("verifier");
        // header {"alg":"none"} — never accepted.
        let unsigned =
            "eyJhbGciOiJub25lIn0.eyJpc3MiOiJpc3MiLCJhdWQiOiJhdWQiLCJleHAiOjk5OTk5OTk5OTl9.";
        assert!(v.verify(unsigned).await.is_err());
        let hs384 = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS384),
            &serde_json::json!({"iss": "iss", "aud": "aud", "exp": 9_999_999_999u64}),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode");
        assert_eq!(
            v.verify(&hs384).await.map(|_| ()),
            Err(AuthError::Algorithm("HS384".into()))
        );
        // RS256 without any RS256 key configured.
        let rs = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln";
        assert_eq!(
            v.verify(rs).await.map(|_| ()),
            Err(AuthError::Algorithm("RS256".into()))
        );
    }

    #[tokio::test]
    async fn the_lifetime_limit_needs_iat_and_bounds_exp_minus_iat() {
        let s = AuthSettings {
            max_token_lifetime_secs: 600,
            ..settings(None, Some(SECRET))
        };
        let v = Verifier::new(&s).expect("verifier");
        let now = chrono::Utc::now().timestamp();
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::HS256),
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .expect("encode")
        };
        let base = |iat: Option<i64>, exp: i64| {
            let mut c = serde_json::json!({"iss": "iss", "aud": "aud", "sub": "s", "exp": exp});
            if let Some(iat) = iat {
                c["iat"] = iat.into();
            }
            sign(c)
        };
        let ok = v
            .verify(&base(Some(now), now + 600))
            .await
            .expect("600 s is allowed");
        assert_eq!(ok.sub.as_deref(), Some("s"));
        assert_eq!(
            v.verify(&base(Some(now), now + 601)).await.map(|_| ()),
            Err(AuthError::LifetimeTooLong(600))
        );
        assert_eq!(
            v.verify(&base(None, now + 60)).await.map(|_| ()),
            Err(AuthError::MissingClaim("iat".into()))
        );
        // Issued "later" to look short-lived, but valid for years from now.
        assert_eq!(
            v.verify(&base(Some(now + 86_400 * 365), now + 86_400 * 365 + 60))
                .await
                .map(|_| ()),
            Err(AuthError::IssuedInFuture)
        );
    }
}
