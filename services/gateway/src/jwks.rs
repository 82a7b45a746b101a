//! RS256 verification keys from a JWKS URL, cached and refreshed in the background.
//!
//! An identity provider that publishes its signing keys as a JSON Web Key Set can rotate them
//! without touching the gateway: it adds the new key to the set, starts signing with it (tokens
//! name it in `kid`), and later removes the old one. The gateway keeps the last good set in an
//! `ArcSwap` (requests never wait on the provider) and:
//!
//! - refreshes it every `jwks_refresh_secs`; a failed fetch keeps the last good set, is logged
//!   and counted (`sextant_gateway_jwks_refreshes_total{outcome="error"}`), and is retried with
//!   doubling backoff from one second up to the refresh interval;
//! - on a token whose `kid` is not in the set, fetches once more right away — at most once per
//!   `jwks_min_refresh_secs`, so a stream of made-up `kid`s cannot turn the gateway into a load
//!   generator against the provider.
//!
//! Only RSA signing keys with a `kid` are taken from the set (`kty: RSA`, `use` absent or `sig`,
//! `alg` absent or `RS256`); others are skipped and counted in the log. A set larger than 1 MiB
//! or with more than [`MAX_KEYS`] usable keys is refused as a whole.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use sextant_service_kit::metrics::{Counter, Gauge, Metrics};

/// Most usable keys taken from one set.
pub const MAX_KEYS: usize = 100;
/// Largest JWKS document read, in bytes.
const MAX_BODY: usize = 1 << 20;

/// Where and how often keys are fetched.
#[derive(Debug, Clone)]
pub struct JwksConfig {
    /// `https://…` (plain `http://` only to a loopback address).
    pub url: reqwest::Url,
    /// Scheduled refresh interval.
    pub refresh: Duration,
    /// Least time between two refreshes caused by an unknown `kid`.
    pub min_refresh: Duration,
    /// TCP connect timeout of a fetch.
    pub connect_timeout: Duration,
    /// Whole-request timeout of a fetch.
    pub timeout: Duration,
}

/// Why a JWKS fetch failed (logged and counted; never shown to callers).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// Connecting, sending or reading failed or timed out.
    #[error("fetching the JWKS: {0}")]
    Transport(#[from] reqwest::Error),
    /// The provider answered with an error status.
    #[error("the JWKS URL answered HTTP {0}")]
    Status(u16),
    /// The document is larger than 1 MiB.
    #[error("the JWKS is larger than {MAX_BODY} bytes")]
    TooLarge,
    /// The document is not a JWKS.
    #[error("the JWKS is not valid JSON of the form {{\"keys\": [...]}}: {0}")]
    Malformed(String),
    /// More usable keys than [`MAX_KEYS`].
    #[error("the JWKS has more than {MAX_KEYS} usable RSA signing keys")]
    TooManyKeys,
}

/// One key of a JWKS, as much of it as the gateway reads.
#[derive(Debug, Deserialize)]
struct RawJwk {
    #[serde(default)]
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    key_use: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

/// The usable keys of a JWKS document by `kid`, and how many entries were skipped.
///
/// # Errors
/// [`JwksError::Malformed`] or [`JwksError::TooManyKeys`].
pub fn parse_jwks(body: &[u8]) -> Result<(HashMap<String, DecodingKey>, usize), JwksError> {
    let raw: RawJwks =
        serde_json::from_slice(body).map_err(|e| JwksError::Malformed(e.to_string()))?;
    let mut keys = HashMap::new();
    let mut skipped = 0;
    for value in raw.keys {
        let Ok(jwk) = serde_json::from_value::<RawJwk>(value) else {
            skipped += 1;
            continue;
        };
        let usable = jwk.kty == "RSA"
            && jwk.key_use.as_deref().is_none_or(|u| u == "sig")
            && jwk.alg.as_deref().is_none_or(|a| a == "RS256");
        let (Some(kid), Some(n), Some(e)) = (jwk.kid, jwk.n, jwk.e) else {
            skipped += 1;
            continue;
        };
        if !usable || kid.is_empty() {
            skipped += 1;
            continue;
        }
        match DecodingKey::from_rsa_components(&n, &e) {
            Ok(key) => {
                keys.insert(kid, key);
            }
            Err(_) => skipped += 1,
        }
        if keys.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys);
        }
    }
    Ok((keys, skipped))
}

/// The cached key set of one JWKS URL.
pub struct Jwks {
    config: JwksConfig,
    http: reqwest::Client,
    keys: ArcSwap<HashMap<String, DecodingKey>>,
    /// When the last refresh caused by an unknown `kid` started.
    last_forced: Mutex<Option<Instant>>,
    refreshes: Option<Counter<1>>,
    key_count: Option<Gauge<0>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.config.url.as_str())
            .field("keys", &self.keys.load().len())
            .finish_non_exhaustive()
    }
}

impl Jwks {
    /// An empty cache; call [`Jwks::refresh`] or [`Jwks::run_refresher`] to fill it.
    pub fn new(config: JwksConfig, metrics: Option<&Metrics>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .build()
            .unwrap_or_default();
        let refreshes = metrics.and_then(|m| {
            m.counter(
                "sextant_gateway_jwks_refreshes_total",
                "JWKS fetches by outcome (ok, error); after an error the last good key set stays in use.",
                ["outcome"],
            )
            .inspect_err(|e| tracing::error!(error = %e, "Metric not registered."))
            .ok()
        });
        let key_count = metrics.and_then(|m| {
            m.gauge(
                "sextant_gateway_jwks_keys",
                "RS256 keys in the cached JWKS.",
                [],
            )
            .inspect_err(|e| tracing::error!(error = %e, "Metric not registered."))
            .ok()
        });
        Self {
            config,
            http,
            keys: ArcSwap::from_pointee(HashMap::new()),
            last_forced: Mutex::new(None),
            refreshes,
            key_count,
        }
    }

    /// The cached key named `kid`.
    pub fn get(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.load().get(kid).cloned()
    }

    /// Keys cached now.
    pub fn len(&self) -> usize {
        self.keys.load().len()
    }

    /// Whether no key is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The only cached key, when there is exactly one.
    pub fn only_key(&self) -> Option<DecodingKey> {
        let keys = self.keys.load();
        if keys.len() == 1 {
            keys.values().next().cloned()
        } else {
            None
        }
    }

    /// Fetches the set and swaps it in; on failure the last good set stays.
    ///
    /// # Errors
    /// Why the fetch failed (already logged and counted).
    pub async fn refresh(&self) -> Result<(), JwksError> {
        match self.fetch().await {
            Ok((keys, skipped)) => {
                tracing::info!(
                    keys = keys.len(),
                    skipped,
                    "Refreshed the JWKS verification keys."
                );
                #[expect(clippy::cast_precision_loss, reason = "at most MAX_KEYS")]
                if let Some(g) = &self.key_count {
                    g.set([], keys.len() as f64);
                }
                self.keys.store(Arc::new(keys));
                if let Some(c) = &self.refreshes {
                    c.inc(["ok"]);
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, kept_keys = self.len(), "JWKS refresh failed; the last good keys stay in use.");
                if let Some(c) = &self.refreshes {
                    c.inc(["error"]);
                }
                Err(e)
            }
        }
    }

    /// Refreshes because a token named an unknown `kid`, unless such a refresh started less than
    /// `min_refresh` ago. Returns whether it refreshed successfully.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        {
            let mut last = self
                .last_forced
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < self.config.min_refresh) {
                return false;
            }
            *last = Some(now);
        }
        self.refresh().await.is_ok()
    }

    /// Refreshes every `refresh` interval forever, backing off (1 s, doubling, up to the
    /// interval) after failures. `last_ok` is the outcome of the fetch made before (at start-up).
    pub async fn run_refresher(self: Arc<Self>, mut last_ok: bool) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let wait = if last_ok {
                backoff = Duration::from_secs(1);
                self.config.refresh
            } else {
                let wait = backoff.min(self.config.refresh);
                backoff = (backoff * 2).min(self.config.refresh);
                wait
            };
            tokio::time::sleep(wait).await;
            last_ok = self.refresh().await.is_ok();
        }
    }

    async fn fetch(&self) -> Result<(HashMap<String, DecodingKey>, usize), JwksError> {
        let mut resp = self
            .http
            .get(self.config.url.clone())
            .header("accept", "application/json")
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(JwksError::Status(resp.status().as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(JwksError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rsa_signing_keys_with_a_kid_are_taken() {
        // A 2048-bit modulus is not needed to check the selection: from_rsa_components takes
        // any base64url integers.
        let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "a", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "b", "use": "sig", "alg": "RS256", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": n, "e": "AQAB"},
            {"kty": "RSA", "n": n, "e": "AQAB"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "x", "y": "y"},
            "not an object"
        ]});
        let (keys, skipped) = parse_jwks(doc.to_string().as_bytes()).expect("parses");
        let mut kids: Vec<_> = keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, ["a", "b"]);
        assert_eq!(skipped, 5);
    }

    #[test]
    fn malformed_and_oversized_sets_are_refused() {
        assert!(matches!(
            parse_jwks(b"{\"nokeys\": []}"),
            Err(JwksError::Malformed(_))
        ));
        assert!(matches!(
            parse_jwks(b"<html>"),
            Err(JwksError::Malformed(_))
        ));
        let many: Vec<_> = (0..=MAX_KEYS)
            .map(|i| serde_json::json!({"kty": "RSA", "kid": format!("k{i}"), "n": "AQAB", "e": "AQAB"}))
            .collect();
        let doc = serde_json::json!({ "keys": many });
        assert!(matches!(
            parse_jwks(doc.to_string().as_bytes()),
            Err(JwksError::TooManyKeys)
        ));
    }
}
