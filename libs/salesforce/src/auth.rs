//! The OAuth 2.0 flows Sextant uses against a core org.
//!
//! - **JWT bearer** (server-to-server, recommended): we sign `{iss: client_id, sub: username,
//!   aud, exp: now + 3 min}` with the private key whose certificate is uploaded to the connected
//!   app. The `aud` is `https://login.salesforce.com` (production) or
//!   `https://test.salesforce.com` (sandbox) *even when the token is requested from the org's My
//!   Domain*: a My Domain `aud` is refused by Salesforce (§10 "JWT aud confusion"), so
//!   [`jwt_audience_for`] derives it from the login URL and [`JwtBearerConfig::validate`] refuses
//!   a My Domain audience up front.
//! - **Client credentials**: only on the org's My Domain host; `login.`/`test.salesforce.com`
//!   answer "request not supported on this domain", so [`client_credentials_login`] refuses them
//!   before sending the secret anywhere.
//! - **Refresh token**: a refresh token stored by `sextant connect`.
//! - **Web server + PKCE (S256)**: [`Pkce`], [`authorize_url`], [`exchange_code`].
//!
//! Core answers carry no expiry: the client logs in again when a call answers 401
//! `INVALID_SESSION_ID` (see [`crate::token`]).

use std::fmt;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sextant_contracts::time::SharedClock;

use crate::SalesforceError;
use crate::wire::{OAuthError, TokenResponse};

/// The production login host; also the JWT `aud` for production and its My Domains.
pub const PRODUCTION_LOGIN: &str = "https://login.salesforce.com";
/// The sandbox login host; also the JWT `aud` for sandboxes and their My Domains.
pub const SANDBOX_LOGIN: &str = "https://test.salesforce.com";

/// The host of a URL, lower-cased (`None` when it is not a URL).
fn host_of(raw: &str) -> Option<String> {
    url::Url::parse(raw)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
}

/// Whether a URL is one of Salesforce's shared login hosts (not an org's My Domain).
pub fn is_shared_login_host(raw: &str) -> bool {
    matches!(
        host_of(raw).as_deref(),
        Some("login.salesforce.com" | "test.salesforce.com")
    )
}

/// The JWT `aud` for a login URL: `https://test.salesforce.com` for the sandbox login host and
/// sandbox My Domains (`*.sandbox.my.salesforce.com`, `*--<sandbox>.my.salesforce.com`),
/// `https://login.salesforce.com` for everything else (production and its My Domain).
pub fn jwt_audience_for(login_url: &str) -> &'static str {
    let host = host_of(login_url).unwrap_or_default();
    let sandbox = host == "test.salesforce.com"
        || host.ends_with(".sandbox.my.salesforce.com")
        || (host.ends_with(".my.salesforce.com")
            && host.split('.').next().is_some_and(|l| l.contains("--")));
    if sandbox {
        SANDBOX_LOGIN
    } else {
        PRODUCTION_LOGIN
    }
}

/// How long the signed assertion is valid. Salesforce wants "minutes"; clients use 2 to 5.
const ASSERTION_LIFETIME_SECS: i64 = 180;

/// What the JWT bearer flow needs.
#[derive(Clone)]
pub struct JwtBearerConfig {
    /// The login host, e.g. `https://login.salesforce.com` or the org's My Domain.
    pub login_url: String,
    /// `aud`: `https://login.salesforce.com` (production) or `https://test.salesforce.com`.
    pub audience: String,
    /// The connected app's consumer key (`iss`).
    pub client_id: String,
    /// The pre-authorised integration user (`sub`).
    pub username: String,
    /// PEM private key matching the connected app's certificate.
    pub private_key_pem: SecretString,
}

impl JwtBearerConfig {
    /// Refuses an `aud` that Salesforce will refuse: anything on a `*.my.salesforce.com` (My
    /// Domain) host. Other values (`login`, `test`, an Experience Cloud site) are accepted.
    pub fn validate(&self) -> Result<(), SalesforceError> {
        let host = host_of(&self.audience).ok_or_else(|| {
            SalesforceError::Config(format!("JWT audience {:?} is not a URL", self.audience))
        })?;
        if host.ends_with(".my.salesforce.com") || host.ends_with(".my.salesforce.mil") {
            return Err(SalesforceError::Config(format!(
                "JWT audience {} is a My Domain URL; Salesforce expects {} (or {} for a \
                 sandbox) even when logging in through My Domain",
                self.audience, PRODUCTION_LOGIN, SANDBOX_LOGIN
            )));
        }
        Ok(())
    }
}

impl fmt::Debug for JwtBearerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtBearerConfig")
            .field("login_url", &self.login_url)
            .field("audience", &self.audience)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("private_key_pem", &"[redacted]")
            .finish()
    }
}

/// A core access token and where to use it.
#[derive(Clone)]
pub struct AccessToken {
    pub access_token: SecretString,
    /// Every REST call goes here, never to the login host.
    pub instance_url: String,
    /// Identity URL, `…/id/<orgId>/<userId>`.
    pub id: String,
    pub scope: Option<String>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("access_token", &"[redacted]")
            .field("instance_url", &self.instance_url)
            .field("id", &self.id)
            .finish()
    }
}

impl AccessToken {
    /// The org id, read from the identity URL.
    pub fn org_id(&self) -> Option<&str> {
        let mut parts = self.id.rsplit('/');
        let _user = parts.next()?;
        parts.next()
    }
}

impl From<TokenResponse> for AccessToken {
    fn from(t: TokenResponse) -> Self {
        Self {
            access_token: SecretString::from(t.access_token),
            instance_url: t.instance_url.trim_end_matches('/').to_owned(),
            id: t.id,
            scope: t.scope,
        }
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
}

/// Signs the RS256 assertion for the JWT bearer flow.
pub fn sign_assertion(
    config: &JwtBearerConfig,
    clock: &SharedClock,
) -> Result<String, SalesforceError> {
    let now = clock.now().timestamp();
    let claims = Claims {
        iss: &config.client_id,
        sub: &config.username,
        aud: &config.audience,
        exp: now + ASSERTION_LIFETIME_SECS,
        iat: now,
    };
    // The key error never contains key material, only its kind.
    let key = EncodingKey::from_rsa_pem(config.private_key_pem.expose_secret().as_bytes())
        .map_err(|e| SalesforceError::Signing(e.to_string()))?;
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
        .map_err(|e| SalesforceError::Signing(e.to_string()))
}

/// Logs in with the JWT bearer flow.
pub async fn jwt_bearer_login(
    http: &reqwest::Client,
    config: &JwtBearerConfig,
    clock: &SharedClock,
) -> Result<AccessToken, SalesforceError> {
    config.validate()?;
    let assertion = sign_assertion(config, clock)?;
    let url = format!(
        "{}/services/oauth2/token",
        config.login_url.trim_end_matches('/')
    );
    let resp = http
        .post(url)
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ])
        .send()
        .await?;
    read_token_response(resp).await
}

/// Reads a token endpoint answer: the token on 200, the OAuth error on any 4xx.
pub async fn read_token_response(resp: reqwest::Response) -> Result<AccessToken, SalesforceError> {
    let status = resp.status().as_u16();
    let body = resp.text().await?;
    parse_token_body(status, &body)
}

/// Parses a token endpoint body given its status.
pub fn parse_token_body(status: u16, body: &str) -> Result<AccessToken, SalesforceError> {
    parse_token_response(status, body).map(AccessToken::from)
}

/// Parses a token endpoint body into the full response (with `refresh_token` when granted).
pub fn parse_token_response(status: u16, body: &str) -> Result<TokenResponse, SalesforceError> {
    if (200..300).contains(&status) {
        return serde_json::from_str::<TokenResponse>(body).map_err(|e| {
            SalesforceError::Unexpected {
                status,
                detail: format!("token body: {e}"),
            }
        });
    }
    match serde_json::from_str::<OAuthError>(body) {
        Ok(err) => Err(SalesforceError::Auth {
            error: err.error,
            description: err.error_description,
        }),
        Err(_) => Err(SalesforceError::Unexpected {
            status,
            detail: body.chars().take(200).collect(),
        }),
    }
}

fn token_url(base: &str) -> String {
    format!("{}/services/oauth2/token", base.trim_end_matches('/'))
}

async fn post_token_form(
    http: &reqwest::Client,
    base: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> Result<TokenResponse, SalesforceError> {
    let mut req = http.post(token_url(base)).form(form);
    if let Some((user, pass)) = basic {
        req = req.basic_auth(user, Some(pass));
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let body = resp.text().await?;
    parse_token_response(status, &body)
}

/// The client-credentials flow: a connected app with a run-as user, on the org's My Domain.
#[derive(Clone)]
pub struct ClientCredentialsConfig {
    /// `https://<name>.my.salesforce.com` (never `login.`/`test.salesforce.com`).
    pub my_domain_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
}

impl fmt::Debug for ClientCredentialsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsConfig")
            .field("my_domain_url", &self.my_domain_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

/// Logs in with client credentials (HTTP Basic, as simple-salesforce does). Refuses the shared
/// login hosts before sending the secret: Salesforce serves this grant only on My Domain.
pub async fn client_credentials_login(
    http: &reqwest::Client,
    config: &ClientCredentialsConfig,
) -> Result<AccessToken, SalesforceError> {
    if is_shared_login_host(&config.my_domain_url) {
        return Err(SalesforceError::Config(format!(
            "the client-credentials flow works only on the org's My Domain \
             (https://<name>.my.salesforce.com), not {}",
            config.my_domain_url
        )));
    }
    post_token_form(
        http,
        &config.my_domain_url,
        &[("grant_type", "client_credentials")],
        Some((&config.client_id, config.client_secret.expose_secret())),
    )
    .await
    .map(AccessToken::from)
}

/// The refresh-token flow: a refresh token from the web-server flow.
#[derive(Clone)]
pub struct RefreshTokenConfig {
    /// Where the refresh token was issued (login host or My Domain).
    pub login_url: String,
    pub client_id: String,
    /// Only when the connected app requires the secret for refresh.
    pub client_secret: Option<SecretString>,
    pub refresh_token: SecretString,
}

impl fmt::Debug for RefreshTokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenConfig")
            .field("login_url", &self.login_url)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("refresh_token", &"[redacted]")
            .finish()
    }
}

/// Mints a new access token from a refresh token.
pub async fn refresh_token_login(
    http: &reqwest::Client,
    config: &RefreshTokenConfig,
) -> Result<AccessToken, SalesforceError> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", config.refresh_token.expose_secret()),
        ("client_id", config.client_id.as_str()),
    ];
    if let Some(secret) = &config.client_secret {
        form.push(("client_secret", secret.expose_secret()));
    }
    post_token_form(http, &config.login_url, &form, None)
        .await
        .map(AccessToken::from)
}

/// A PKCE verifier and its S256 challenge (RFC 7636).
#[derive(Clone)]
pub struct Pkce {
    /// 43 characters of base64url (32 random bytes); sent only to the token endpoint.
    pub verifier: SecretString,
    /// `base64url(SHA-256(verifier))`, no padding; sent in the authorisation URL.
    pub challenge: String,
}

impl fmt::Debug for Pkce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkce")
            .field("verifier", &"[redacted]")
            .field("challenge", &self.challenge)
            .finish()
    }
}

impl Pkce {
    /// A fresh random verifier.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self::from_verifier(&base64url(&bytes))
    }

    /// The pair for a given verifier.
    pub fn from_verifier(verifier: &str) -> Self {
        Self {
            challenge: s256_challenge(verifier),
            verifier: SecretString::from(verifier.to_owned()),
        }
    }
}

/// `base64url(SHA-256(verifier))` without padding.
pub fn s256_challenge(verifier: &str) -> String {
    use sha2::Digest;
    base64url(&sha2::Sha256::digest(verifier.as_bytes()))
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A random `state` value for the authorisation request (CSRF protection).
pub fn random_state() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64url(&bytes)
}

/// The browser URL of the web-server flow.
pub fn authorize_url(
    login_url: &str,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    state: &str,
    pkce: &Pkce,
) -> Result<String, SalesforceError> {
    let base = format!(
        "{}/services/oauth2/authorize",
        login_url.trim_end_matches('/')
    );
    let url = url::Url::parse_with_params(
        &base,
        &[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", scope),
            ("state", state),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .map_err(|e| SalesforceError::Config(format!("login URL {login_url}: {e}")))?;
    Ok(url.into())
}

/// Exchanges an authorisation code (web-server flow) for tokens; the answer carries the
/// `refresh_token` when the `refresh_token` scope was granted.
pub async fn exchange_code(
    http: &reqwest::Client,
    login_url: &str,
    client_id: &str,
    client_secret: Option<&SecretString>,
    redirect_uri: &str,
    code: &str,
    pkce: &Pkce,
) -> Result<TokenResponse, SalesforceError> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("code_verifier", pkce.verifier.expose_secret()),
    ];
    if let Some(secret) = client_secret {
        form.push(("client_secret", secret.expose_secret()));
    }
    post_token_form(http, login_url, &form, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_audience_is_login_or_test_never_my_domain() {
        assert_eq!(
            jwt_audience_for("https://login.salesforce.com"),
            PRODUCTION_LOGIN
        );
        assert_eq!(
            jwt_audience_for("https://test.salesforce.com/"),
            SANDBOX_LOGIN
        );
        assert_eq!(
            jwt_audience_for("https://acme.my.salesforce.com"),
            PRODUCTION_LOGIN
        );
        assert_eq!(
            jwt_audience_for("https://acme--uat.sandbox.my.salesforce.com"),
            SANDBOX_LOGIN
        );
        assert_eq!(
            jwt_audience_for("https://acme--uat.my.salesforce.com"),
            SANDBOX_LOGIN
        );
        let mut c = JwtBearerConfig {
            login_url: "https://acme.my.salesforce.com".into(),
            audience: "https://acme.my.salesforce.com".into(),
            client_id: "x".into(),
            username: "u".into(),
            private_key_pem: SecretString::from(String::new()),
        };
        assert!(matches!(c.validate(), Err(SalesforceError::Config(m)) if m.contains("My Domain")));
        c.audience = PRODUCTION_LOGIN.into();
        assert!(c.validate().is_ok());
    }

    #[test]
    fn pkce_matches_the_rfc_7636_example() {
        // RFC 7636 appendix B.
        let p = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(p.challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        let fresh = Pkce::generate();
        assert_eq!(fresh.verifier.expose_secret().len(), 43);
        assert_ne!(fresh.challenge, p.challenge);
    }

    #[test]
    fn authorize_url_carries_the_s256_challenge() {
        let p = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        let u = authorize_url(
            "https://login.salesforce.com/",
            "cid",
            "http://127.0.0.1:1717/callback",
            "api refresh_token",
            "st",
            &p,
        );
        let Ok(u) = u else { panic!("{u:?}") };
        let parsed = url::Url::parse(&u).map_err(|e| e.to_string());
        let Ok(parsed) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(parsed.path(), "/services/oauth2/authorize");
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], p.challenge);
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:1717/callback");
        assert_eq!(q["response_type"], "code");
    }
}
