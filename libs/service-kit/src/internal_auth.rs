//! Service-to-service authentication: the feature store, trainer and connector only answer
//! other Sextant services (and admins holding the deployment's internal key).
//!
//! Why a signed short-lived token rather than the shared secret itself: the secret never
//! crosses the wire on ordinary calls, so a captured header (a proxy log, a debug dump) is
//! worth at most five minutes and says which service made the call (`iss`).
//!
//! - The key is the Helm chart's `internal-token` (`SEXTANT_<SERVICE>__INTERNAL_TOKEN`, at least
//!   [`MIN_KEY_BYTES`] bytes), used as an HS256 key.
//! - A caller ([`InternalAuth`]) mints `{iss: <service>, aud: "sextant-internal", iat, exp: now +
//!   5 min}`, caches it and mints a new one a minute before it expires. [`InternalClient`] is a
//!   `reqwest::Client` that attaches it to every request it builds.
//! - A receiver ([`InternalVerifier`], installed by
//!   [`Service::start_guarded`](crate::server::Service::start_guarded)) answers every route except
//!   the operational ones ([`is_open_path`]) with `401 unauthorized` unless the bearer is such a
//!   token: valid signature, audience, `exp` (30 s leeway) and a lifetime of at most 10 minutes.
//! - The raw key is also accepted as a bearer (compared in constant time): the chart's CronJobs
//!   are plain `curl --oauth2-bearer "$SEXTANT_INTERNAL_TOKEN"` and have no way to sign.
//!
//! **Key rotation.** A receiver accepts the current key and any *previous* keys
//! (`SEXTANT_<SERVICE>__INTERNAL_TOKEN_PREVIOUS`, comma- or whitespace-separated); callers sign
//! with the current one only. Each token names its key in the JWT header's `kid`, so a receiver
//! checks exactly one signature: the key with that `kid`, and `401` for a `kid` it does not hold.
//! The `kid` is derived from the key ([`InternalKey::kid`]: a SHA-256 fingerprint, not the key),
//! so no key ids need to be configured or can be mismatched. A token without `kid` (signed by a
//! caller from before rotation existed, during a rolling upgrade) is checked against the current
//! key. Rotating without a single refused call takes two rollouts: add the new key as a previous
//! one, then make it current with the old one as previous (README, "Internal service tokens").
//!
//! Neither the key nor a presented token ever reaches a log line, an error body or a metric:
//! rejections say only *why* (missing, malformed, expired, wrong audience…).

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The `aud` of every internal token.
pub const AUDIENCE: &str = "sextant-internal";
/// The shortest key accepted.
pub const MIN_KEY_BYTES: usize = 32;
/// How long a minted token is valid.
pub const TOKEN_TTL_SECS: i64 = 300;
/// A cached token is replaced when it has less than this left.
const REMINT_BEFORE_SECS: i64 = 60;
/// The longest lifetime (`exp - iat`) a receiver accepts.
pub const MAX_LIFETIME_SECS: i64 = 600;
/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECS: u64 = 30;

/// Why an internal key or token could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InternalAuthError {
    /// The configured key is too short to be an HS256 key.
    #[error("the internal token must be at least {MIN_KEY_BYTES} bytes long (it has {0})")]
    KeyTooShort(usize),
    /// Signing failed (never expected: the claims always serialise).
    #[error("could not sign an internal token: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// The signed token did not form a header value (never expected: base64url and dots).
    #[error("an internal token is not a valid header value")]
    Header,
    /// Previous keys are configured without a current one.
    #[error("internal_token_previous is set without internal_token: set the current key too")]
    PreviousWithoutCurrent,
}

/// The deployment's shared internal key. Its `Debug` never shows it (only its [`kid`](Self::kid)).
#[derive(Clone)]
pub struct InternalKey(Arc<KeyInner>);

struct KeyInner {
    secret: SecretString,
    kid: String,
}

impl std::fmt::Debug for InternalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InternalKey(kid {}, ***)", self.0.kid)
    }
}

impl InternalKey {
    /// Checks the length (at least [`MIN_KEY_BYTES`] bytes).
    pub fn new(secret: SecretString) -> Result<Self, InternalAuthError> {
        let len = secret.expose_secret().len();
        if len < MIN_KEY_BYTES {
            return Err(InternalAuthError::KeyTooShort(len));
        }
        let kid = key_id(secret.expose_secret().as_bytes());
        Ok(Self(Arc::new(KeyInner { secret, kid })))
    }

    /// The key from a service's optional `internal_token` setting.
    pub fn from_setting(setting: Option<&SecretString>) -> Result<Option<Self>, InternalAuthError> {
        setting.map(|s| Self::new(s.clone())).transpose()
    }

    /// The keys of an `internal_token_previous` setting: comma- or whitespace-separated, each
    /// at least [`MIN_KEY_BYTES`] bytes; none when unset or blank.
    pub fn list_from_setting(
        setting: Option<&SecretString>,
    ) -> Result<Vec<Self>, InternalAuthError> {
        let Some(setting) = setting else {
            return Ok(Vec::new());
        };
        setting
            .expose_secret()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|k| !k.is_empty())
            .map(|k| Self::new(SecretString::from(k.to_owned())))
            .collect()
    }

    /// The key's id in the tokens it signs (JWT header `kid`): the first 16 hex digits of
    /// SHA-256 over a fixed prefix and the key. It identifies the key without revealing it.
    pub fn kid(&self) -> &str {
        &self.0.kid
    }

    fn bytes(&self) -> &[u8] {
        self.0.secret.expose_secret().as_bytes()
    }
}

fn key_id(key: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    let digest = Sha256::new()
        .chain_update(b"sextant-internal-kid:")
        .chain_update(key)
        .finalize();
    digest
        .iter()
        .take(8)
        .fold(String::with_capacity(16), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The claims of an internal token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Mints a token for `service` valid from `iat` for `ttl_secs` (tests forge expired ones),
/// with the key's [`kid`](InternalKey::kid) in its header.
pub fn mint(
    key: &InternalKey,
    service: &str,
    iat: i64,
    ttl_secs: i64,
) -> Result<String, InternalAuthError> {
    let claims = Claims {
        iss: service.to_owned(),
        aud: AUDIENCE.to_owned(),
        iat,
        exp: iat + ttl_secs,
    };
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid().to_owned());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(key.bytes()))
        .map_err(InternalAuthError::Sign)
}

/// The calling side: mints and caches the service's token.
#[derive(Clone)]
pub struct InternalAuth {
    service: &'static str,
    key: InternalKey,
    /// The current `Bearer …` header and its `exp`.
    cached: Arc<Mutex<Option<(HeaderValue, i64)>>>,
}

impl std::fmt::Debug for InternalAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalAuth")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl InternalAuth {
    /// Tokens for calls made by `service` (its `iss`).
    pub fn new(service: &'static str, key: InternalKey) -> Self {
        Self {
            service,
            key,
            cached: Arc::new(Mutex::new(None)),
        }
    }

    /// A valid token (the cached one unless it has under a minute left).
    pub fn token(&self) -> Result<String, InternalAuthError> {
        let header = self.header()?;
        Ok(header
            .to_str()
            .unwrap_or_default()
            .trim_start_matches("Bearer ")
            .to_owned())
    }

    /// `Authorization: Bearer <token>`, marked sensitive (never printed by reqwest's `Debug`).
    pub fn header(&self) -> Result<HeaderValue, InternalAuthError> {
        let now = now_secs();
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((header, exp)) = cached.as_ref()
            && exp - now > REMINT_BEFORE_SECS
        {
            return Ok(header.clone());
        }
        let token = mint(&self.key, self.service, now, TOKEN_TTL_SECS)?;
        // A JWT is base64url and dots: always a valid header value.
        let mut header = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| InternalAuthError::Header)?;
        header.set_sensitive(true);
        *cached = Some((header.clone(), now + TOKEN_TTL_SECS));
        Ok(header)
    }
}

/// A `reqwest::Client` for calls to other Sextant services: every request it builds carries
/// the caller's internal token (when one is configured). Calls to anything else (Salesforce)
/// must use a plain client, so the token never leaves the deployment.
#[derive(Debug, Clone)]
pub struct InternalClient {
    http: reqwest::Client,
    auth: Option<InternalAuth>,
}

impl InternalClient {
    /// `http` with `auth` attached to every request (none: requests go without a token).
    pub fn new(http: reqwest::Client, auth: Option<InternalAuth>) -> Self {
        Self { http, auth }
    }

    /// A request with the internal token.
    pub fn request<U: reqwest::IntoUrl>(
        &self,
        method: reqwest::Method,
        url: U,
    ) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, url);
        match &self.auth {
            Some(auth) => match auth.header() {
                Ok(h) => rb.header(AUTHORIZATION, h),
                Err(e) => {
                    // The receiver answers 401, which the caller reports.
                    tracing::error!(error = %e, "Could not mint an internal token.");
                    rb
                }
            },
            None => rb,
        }
    }

    /// GET with the internal token.
    pub fn get<U: reqwest::IntoUrl>(&self, url: U) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, url)
    }

    /// POST with the internal token.
    pub fn post<U: reqwest::IntoUrl>(&self, url: U) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, url)
    }

    /// PUT with the internal token.
    pub fn put<U: reqwest::IntoUrl>(&self, url: U) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::PUT, url)
    }

    /// DELETE with the internal token.
    pub fn delete<U: reqwest::IntoUrl>(&self, url: U) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::DELETE, url)
    }

    /// The underlying client, without the token.
    pub fn plain(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether requests carry a token.
    pub fn authenticated(&self) -> bool {
        self.auth.is_some()
    }
}

/// Why a call was refused; the text is what the caller and the log see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// No `Authorization: Bearer` header.
    #[error("this endpoint requires an internal service token (Authorization: Bearer)")]
    Missing,
    /// Not a token signed with the deployment's key.
    #[error("the internal service token is not valid")]
    Invalid,
    /// Signed, but expired.
    #[error("the internal service token has expired")]
    Expired,
    /// Signed, but for another audience.
    #[error("the internal service token is not for sextant-internal")]
    WrongAudience,
    /// Signed, but valid for longer than [`MAX_LIFETIME_SECS`] or issued in the future.
    #[error("the internal service token's lifetime is not acceptable")]
    Lifetime,
    /// Its `kid` names a key this service does not hold (retired, or another deployment's).
    #[error("the internal service token is signed with a key this service does not accept (kid)")]
    UnknownKey,
}

/// Who made an accepted call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Caller {
    /// A service's token (its `iss`).
    Service(String),
    /// The raw shared key (the chart's CronJobs).
    SharedKey,
}

/// The receiving side: checks bearers against the deployment's current key and its previous
/// ones, each token against the key its `kid` names.
#[derive(Clone)]
pub struct InternalVerifier {
    /// The current key first, then the previous ones; distinct kids.
    keys: Vec<(InternalKey, DecodingKey)>,
    validation: Validation,
}

impl std::fmt::Debug for InternalVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalVerifier(***)")
    }
}

impl InternalVerifier {
    /// A verifier for tokens signed with `key`.
    pub fn new(key: InternalKey) -> Self {
        Self::with_previous(key, Vec::new())
    }

    /// A verifier for tokens signed with `current` or any of `previous` (key rotation).
    pub fn with_previous(current: InternalKey, previous: Vec<InternalKey>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "iat"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        let mut keys: Vec<(InternalKey, DecodingKey)> = Vec::with_capacity(1 + previous.len());
        for key in std::iter::once(current).chain(previous) {
            if keys.iter().all(|(k, _)| k.kid() != key.kid()) {
                let decoding = DecodingKey::from_secret(key.bytes());
                keys.push((key, decoding));
            }
        }
        Self { keys, validation }
    }

    /// The verifier a service's settings describe: `internal_token` (the current key) and
    /// `internal_token_previous` (keys still accepted; see [`InternalKey::list_from_setting`]).
    /// None without a current key; previous keys without one are a configuration error.
    pub fn from_settings(
        current: Option<&SecretString>,
        previous: Option<&SecretString>,
    ) -> Result<Option<Self>, InternalAuthError> {
        let previous = InternalKey::list_from_setting(previous)?;
        match InternalKey::from_setting(current)? {
            Some(key) => Ok(Some(Self::with_previous(key, previous))),
            None if previous.is_empty() => Ok(None),
            None => Err(InternalAuthError::PreviousWithoutCurrent),
        }
    }

    /// The kids this verifier accepts, the current key's first.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|(k, _)| k.kid()).collect()
    }

    /// Checks an `Authorization` header value.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Caller, Rejection> {
        let Some(value) = authorization else {
            return Err(Rejection::Missing);
        };
        let Some(bearer) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Err(Rejection::Missing);
        };
        // A raw key, for the CronJobs; constant time, every key compared.
        let raw = self
            .keys
            .iter()
            .fold(subtle::Choice::from(0), |acc, (k, _)| {
                acc | bearer.as_bytes().ct_eq(k.bytes())
            });
        if bool::from(raw) {
            return Ok(Caller::SharedKey);
        }
        let header = jsonwebtoken::decode_header(bearer).map_err(|_| Rejection::Invalid)?;
        let decoding = match header.kid.as_deref() {
            Some(kid) => {
                &self
                    .keys
                    .iter()
                    .find(|(k, _)| k.kid() == kid)
                    .ok_or(Rejection::UnknownKey)?
                    .1
            }
            // Signed before tokens carried a kid: the current key.
            None => self
                .keys
                .first()
                .map(|(_, d)| d)
                .ok_or(Rejection::Invalid)?,
        };
        let data =
            jsonwebtoken::decode::<Claims>(bearer, decoding, &self.validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => Rejection::Expired,
                    ErrorKind::InvalidAudience => Rejection::WrongAudience,
                    _ => Rejection::Invalid,
                }
            })?;
        let c = data.claims;
        let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(0);
        if c.exp - c.iat > MAX_LIFETIME_SECS || c.iat > now_secs() + leeway {
            return Err(Rejection::Lifetime);
        }
        Ok(Caller::Service(c.iss))
    }
}

/// Paths every caller may reach: probes, metrics and the API description.
pub fn is_open_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
        || path == "/docs"
        || path.starts_with("/docs/")
}

/// `spec` describing the guard: an `internal_token` bearer scheme, required by every operation
/// whose path is not open ([`is_open_path`]), which may answer 401.
pub fn document(mut spec: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
    use utoipa::openapi::{RefOr, ResponseBuilder};
    let mut scheme = Http::new(HttpAuthScheme::Bearer);
    scheme.bearer_format = Some("JWT".into());
    scheme.description = Some(
        "An internal service token: HS256 over the deployment's internal key, aud sextant-internal, valid at most 10 minutes (`sextant internal-token` prints one). The raw key is also accepted."
            .into(),
    );
    spec.components
        .get_or_insert_with(Default::default)
        .add_security_scheme("internal_token", SecurityScheme::Http(scheme));
    for (path, item) in &mut spec.paths.paths {
        if is_open_path(path) {
            continue;
        }
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            op.security = Some(vec![SecurityRequirement::new(
                "internal_token",
                Vec::<String>::new(),
            )]);
            op.responses
                .responses
                .entry("401".into())
                .or_insert_with(|| {
                    RefOr::T(
                        ResponseBuilder::new()
                            .description("No valid internal service token (code `unauthorized`).")
                            .build(),
                    )
                });
        }
    }
    spec
}

/// The middleware [`Service::start_guarded`](crate::server::Service::start_guarded) installs:
/// with an [`InternalVerifier`] in the app data, every non-open path needs a valid bearer.
pub(crate) async fn require(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(verifier) = req.app_data::<InternalVerifier>()
        && !is_open_path(req.path())
    {
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match verifier.verify(header) {
            Ok(caller) => {
                tracing::debug!(?caller, path = req.path(), "Internal call accepted.");
            }
            Err(reason) => {
                tracing::warn!(
                    path = req.path(),
                    reason = %reason,
                    "Internal call refused."
                );
                return Err(ApiError::unauthorized(reason.to_string()).into());
            }
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> InternalKey {
        InternalKey::new(SecretString::from(s.to_owned())).expect("key")
    }

    const K: &str = "0123456789abcdef0123456789abcdef-key";

    #[test]
    fn short_keys_are_refused() {
        let err = InternalKey::new(SecretString::from("short".to_owned())).expect_err("short");
        assert!(matches!(err, InternalAuthError::KeyTooShort(5)), "{err:?}");
        assert!(
            !format!("{:?}", key(K)).contains("0123"),
            "Debug hides the key"
        );
    }

    #[test]
    fn minted_tokens_verify_and_are_cached() {
        let auth = InternalAuth::new("trainer", key(K));
        let v = InternalVerifier::new(key(K));
        let t1 = auth.token().expect("mint");
        let t2 = auth.token().expect("cached");
        assert_eq!(t1, t2, "cached until a minute before expiry");
        assert_eq!(
            v.verify(Some(&format!("Bearer {t1}"))),
            Ok(Caller::Service("trainer".into()))
        );
        assert!(auth.header().expect("header").is_sensitive());
    }

    #[test]
    fn bad_tokens_are_refused_for_the_right_reason() {
        let v = InternalVerifier::new(key(K));
        let other = key("another-key-another-key-another-key!");
        let now = now_secs();
        let bearer = |t: String| format!("Bearer {t}");
        assert_eq!(v.verify(None), Err(Rejection::Missing));
        assert_eq!(v.verify(Some("Basic abc")), Err(Rejection::Missing));
        assert_eq!(v.verify(Some("Bearer junk")), Err(Rejection::Invalid));
        let wrong_key = mint(&other, "x", now, 60).expect("mint");
        assert_eq!(
            v.verify(Some(&bearer(wrong_key))),
            Err(Rejection::UnknownKey)
        );
        let expired = mint(&key(K), "x", now - 400, 300).expect("mint");
        assert_eq!(v.verify(Some(&bearer(expired))), Err(Rejection::Expired));
        let long = mint(&key(K), "x", now, 3600).expect("mint");
        assert_eq!(v.verify(Some(&bearer(long))), Err(Rejection::Lifetime));
        let future = mint(&key(K), "x", now + 3600, 60).expect("mint");
        assert_eq!(v.verify(Some(&bearer(future))), Err(Rejection::Lifetime));
        let claims = Claims {
            iss: "x".into(),
            aud: "someone-else".into(),
            iat: now,
            exp: now + 60,
        };
        let wrong_aud = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256), // no kid: checked against the current key
            &claims,
            &EncodingKey::from_secret(K.as_bytes()),
        )
        .expect("encode");
        assert_eq!(
            v.verify(Some(&bearer(wrong_aud))),
            Err(Rejection::WrongAudience)
        );
        assert_eq!(v.verify(Some(&bearer(K.into()))), Ok(Caller::SharedKey));
        assert_eq!(
            v.verify(Some(&bearer(format!("{K}x")))),
            Err(Rejection::Invalid)
        );
    }

    #[test]
    fn probes_and_docs_are_open() {
        for p in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs/"] {
            assert!(is_open_path(p), "{p}");
        }
        for p in ["/v1/ingest", "/healthz/x", "/docsx", "/"] {
            assert!(!is_open_path(p), "{p}");
        }
    }
}
