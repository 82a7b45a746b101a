//! One token manager per org: the current access token, and a single-flight re-login.
//!
//! Core Salesforce tokens carry no expiry; a call learns its session is gone when it answers 401
//! `INVALID_SESSION_ID`. When many calls run at once they all learn it together, and a naive
//! client then logs in once per call (jsforce#39, #1168). Here every token has a *generation*:
//! a caller that saw generation `g` fail asks for a token newer than `g`; the first such caller
//! logs in under a mutex, and everyone queued behind it finds generation `g + 1` already there
//! and reuses it. Exactly one login per expiry, however many calls noticed.

use std::sync::atomic::{AtomicU64, Ordering};

use sextant_contracts::time::SharedClock;
use tokio::sync::{Mutex, RwLock};

use crate::SalesforceError;
use crate::auth::{
    AccessToken, ClientCredentialsConfig, JwtBearerConfig, RefreshTokenConfig,
    client_credentials_login, jwt_bearer_login, refresh_token_login,
};

/// How the manager (re-)logs in.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LoginFlow {
    /// Server-to-server with a certificate (no refresh token; re-run on expiry).
    JwtBearer(JwtBearerConfig),
    /// A stored refresh token from the web-server flow (`sextant connect`).
    RefreshToken(RefreshTokenConfig),
    /// Client credentials on the org's My Domain host, with a run-as user.
    ClientCredentials(ClientCredentialsConfig),
}

/// A token and its generation.
#[derive(Debug, Clone)]
pub struct Issued {
    pub generation: u64,
    pub token: AccessToken,
}

/// The current token of one org.
#[derive(Debug)]
pub struct TokenManager {
    http: reqwest::Client,
    flow: LoginFlow,
    clock: SharedClock,
    current: RwLock<Option<Issued>>,
    login_lock: Mutex<()>,
    logins: AtomicU64,
}

impl TokenManager {
    /// A manager that logs in lazily, on first use. `http` must have timeouts (see
    /// [`crate::http::client`]).
    pub fn new(http: reqwest::Client, flow: LoginFlow, clock: SharedClock) -> Self {
        Self {
            http,
            flow,
            clock,
            current: RwLock::new(None),
            login_lock: Mutex::new(()),
            logins: AtomicU64::new(0),
        }
    }

    /// How many logins this manager has performed.
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// The current token, logging in if there is none yet.
    pub async fn current(&self) -> Result<Issued, SalesforceError> {
        if let Some(issued) = self.current.read().await.clone() {
            return Ok(issued);
        }
        self.renew(None).await
    }

    /// A token newer than generation `stale` (or any token when `stale` is `None` and one exists).
    /// Concurrent callers that saw the same stale generation share one login.
    pub async fn renew(&self, stale: Option<u64>) -> Result<Issued, SalesforceError> {
        let _single_flight = self.login_lock.lock().await;
        if let Some(issued) = self.current.read().await.clone() {
            let newer = match stale {
                None => true,
                Some(g) => issued.generation > g,
            };
            if newer {
                return Ok(issued);
            }
        }
        let token = self.login_now().await?;
        let mut current = self.current.write().await;
        let generation = current.as_ref().map_or(1, |i| i.generation + 1);
        let issued = Issued { generation, token };
        *current = Some(issued.clone());
        Ok(issued)
    }

    /// Forces a fresh login now (start-up checks, `sextant connect`).
    pub async fn force_login(&self) -> Result<Issued, SalesforceError> {
        let stale = self.current.read().await.as_ref().map(|i| i.generation);
        match stale {
            Some(g) => self.renew(Some(g)).await,
            None => self.renew(None).await,
        }
    }

    async fn login_now(&self) -> Result<AccessToken, SalesforceError> {
        self.logins.fetch_add(1, Ordering::Relaxed);
        let token = match &self.flow {
            LoginFlow::JwtBearer(c) => jwt_bearer_login(&self.http, c, &self.clock).await?,
            LoginFlow::RefreshToken(c) => refresh_token_login(&self.http, c).await?,
            LoginFlow::ClientCredentials(c) => client_credentials_login(&self.http, c).await?,
        };
        tracing::info!(instance_url = %token.instance_url, "Logged in to Salesforce.");
        Ok(token)
    }
}
