//! The OAuth 2.0 JWT bearer flow: a server-to-server login with no user interaction.
//!
//! We sign `{iss: client_id, sub: username, aud: login audience, exp: now + 3 min}` with the
//! private key whose certificate is uploaded to the connected app, and post it to
//! `{login_url}/services/oauth2/token`. The answer carries no refresh token and no expiry: the
//! client logs in again when a call answers 401 `INVALID_SESSION_ID`.

use std::fmt;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sextant_contracts::time::SharedClock;

use crate::SalesforceError;
use crate::wire::{OAuthError, TokenResponse};

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
    if (200..300).contains(&status) {
        return serde_json::from_str::<TokenResponse>(body)
            .map(AccessToken::from)
            .map_err(|e| SalesforceError::Unexpected {
                status,
                detail: format!("token body: {e}"),
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
