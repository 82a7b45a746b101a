//! Authentication and rate limits of the real gateway over loopback HTTP, with real RSA keys
//! (generated per run) and a JWKS served by a real actix server.
//!
//! A call that passes authentication and the rate limit reaches the handler, which answers
//! `400 empty_request` to `{"record_ids": []}` without calling any upstream: that is how these
//! tests see "accepted" without a trainer or feature store.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, get, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use secrecy::SecretString;
use serde_json::{Value, json};
use sextant_gateway::auth::{AuthConfigError, AuthSettings, Rs256Key};
use sextant_gateway::rate_limit::{Clock, ManualClock, RateLimitSettings};
use sextant_gateway::{Application, Settings, StartError};

const ISS: &str = "salesforce";
const AUD: &str = "sextant-gateway";
const SECRET: &str = "a-development-secret-of-at-least-32-bytes!";

/// An RSA key pair as the tests need it.
struct TestKey {
    private_pem: String,
    public_pem: String,
    n: String,
    e: String,
}

/// Three 2048-bit keys, generated once per test binary.
fn keys() -> &'static [TestKey] {
    static KEYS: OnceLock<Vec<TestKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = rand::thread_rng();
        (0..3)
            .map(|_| {
                let private = RsaPrivateKey::new(&mut rng, 2048).expect("rsa key");
                let public = RsaPublicKey::from(&private);
                TestKey {
                    private_pem: private
                        .to_pkcs8_pem(LineEnding::LF)
                        .expect("pem")
                        .to_string(),
                    public_pem: public.to_public_key_pem(LineEnding::LF).expect("pem"),
                    n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                    e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
                }
            })
            .collect()
    })
}

fn claims(lifetime: i64) -> Value {
    let now = Utc::now().timestamp();
    json!({"iss": ISS, "aud": AUD, "sub": "apex", "iat": now, "exp": now + lifetime})
}

fn rs256(key: &TestKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).expect("key"),
    )
    .expect("token")
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("token")
}

fn key_list(which: &[(&str, usize)]) -> Vec<Rs256Key> {
    which
        .iter()
        .map(|(kid, i)| Rs256Key {
            kid: (*kid).to_owned(),
            pem: keys()[*i].public_pem.clone(),
        })
        .collect()
}

fn settings(auth: AuthSettings) -> Settings {
    let mut s = Settings::with_auth(AuthSettings {
        leeway_secs: 0,
        ..auth
    });
    s.port = 0;
    // Nothing listens there: no model is ever loaded, and no test needs one.
    s.trainer_url = "http://127.0.0.1:9".into();
    s.feature_store_url = "http://127.0.0.1:9".into();
    s.model_refresh_secs = 3600;
    s
}

async fn start(settings: &Settings) -> String {
    start_with_clock(settings, Arc::new(ManualClock::new())).await
}

async fn start_with_clock(settings: &Settings, clock: Arc<dyn Clock>) -> String {
    let app = Application::build_with_clock(settings, clock)
        .await
        .expect("gateway starts");
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    url
}

/// One scoring call with `authorization` as the header (none if `None`): status, body,
/// `Retry-After`.
async fn call(gateway: &str, authorization: Option<&str>) -> (u16, Value, Option<String>) {
    let mut req = reqwest::Client::new()
        .post(format!("{gateway}/v1/scores"))
        .json(&json!({"record_ids": []}));
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body, retry)
}

/// Calls with `Bearer <token>` and checks the answer; returns the body.
async fn expect(gateway: &str, token: &str, status: u16, code: &str) -> Value {
    let (got, body, _) = call(gateway, Some(&format!("Bearer {token}"))).await;
    assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
    // Nothing secret comes back: not the token, not the development secret.
    let text = body.to_string();
    assert!(!text.contains(token) && !text.contains(SECRET), "{text}");
    body
}

async fn accepted(gateway: &str, token: &str) {
    expect(gateway, token, 400, "empty_request").await;
}

async fn refused(gateway: &str, token: &str, message: &str) {
    let body = expect(gateway, token, 401, "unauthorized").await;
    assert_eq!(body["message"].as_str(), Some(message), "{body}");
}

#[tokio::test]
async fn two_keys_are_selected_by_kid() {
    let k = keys();
    let gw = start(&settings(AuthSettings {
        rs256_keys: key_list(&[("2025-01", 0), ("2026-01", 1)]),
        ..AuthSettings::new(ISS, AUD)
    }))
    .await;
    accepted(&gw, &rs256(&k[0], Some("2025-01"), &claims(300))).await;
    accepted(&gw, &rs256(&k[1], Some("2026-01"), &claims(300))).await;
    // Signed with one key but naming the other.
    refused(
        &gw,
        &rs256(&k[0], Some("2026-01"), &claims(300)),
        "bad signature",
    )
    .await;
    refused(
        &gw,
        &rs256(&k[2], Some("2027-01"), &claims(300)),
        "unknown key id (kid)",
    )
    .await;
    refused(
        &gw,
        &rs256(&k[0], None, &claims(300)),
        "the token names no key id (kid) and several RS256 keys are configured",
    )
    .await;
}

#[tokio::test]
async fn one_key_verifies_tokens_without_kid_as_before() {
    let k = keys();
    // The original setting: one certificate or key, whatever the token's kid.
    let gw = start(&settings(AuthSettings {
        rs256_public_key_pem: Some(k[0].public_pem.clone()),
        ..AuthSettings::new(ISS, AUD)
    }))
    .await;
    accepted(&gw, &rs256(&k[0], None, &claims(300))).await;
    accepted(&gw, &rs256(&k[0], Some("anything"), &claims(300))).await;
    refused(&gw, &rs256(&k[1], None, &claims(300)), "bad signature").await;
    // A one-entry key list: a token without kid uses that key.
    let gw = start(&settings(AuthSettings {
        rs256_keys: key_list(&[("only", 1)]),
        ..AuthSettings::new(ISS, AUD)
    }))
    .await;
    accepted(&gw, &rs256(&k[1], None, &claims(300))).await;
    accepted(&gw, &rs256(&k[1], Some("only"), &claims(300))).await;
    refused(
        &gw,
        &rs256(&k[1], Some("other"), &claims(300)),
        "unknown key id (kid)",
    )
    .await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let k = keys();
    let gw = start(&settings(AuthSettings {
        rs256_keys: key_list(&[("a", 0)]),
        ..AuthSettings::new(ISS, AUD)
    }))
    .await;
    let token = rs256(&k[0], Some("a"), &claims(300));
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let (status, body, _) = call(&gw, Some(&format!("{scheme} {token}"))).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("empty_request")),
            "{scheme}: {body}"
        );
    }
    for header in [
        format!("Basic {token}"),
        token.clone(),
        "Bearer ".to_owned(),
    ] {
        let (status, body, _) = call(&gw, Some(&header)).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
        assert!(!body.to_string().contains(&token), "{body}");
    }
    let (status, _, _) = call(&gw, None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn tokens_living_longer_than_the_maximum_are_refused() {
    let k = keys();
    let gw = start(&settings(AuthSettings {
        rs256_keys: key_list(&[("a", 0)]),
        max_token_lifetime_secs: 300,
        ..AuthSettings::new(ISS, AUD)
    }))
    .await;
    accepted(&gw, &rs256(&k[0], Some("a"), &claims(300))).await;
    refused(
        &gw,
        &rs256(&k[0], Some("a"), &claims(3600)),
        "token lifetime (exp - iat) exceeds the maximum of 300 s",
    )
    .await;
    let mut no_iat = claims(60);
    no_iat.as_object_mut().expect("object").remove("iat");
    refused(&gw, &rs256(&k[0], Some("a"), &no_iat), "missing claim iat").await;
}

#[tokio::test]
async fn hs256_is_refused_when_an_rs256_key_is_configured() {
    let k = keys();
    let gw = start(&settings(AuthSettings {
        rs256_keys: key_list(&[("a", 0)]),
        ..AuthSettings::new(ISS, AUD)
    }))
    .await;
    refused(
        &gw,
        &hs256(SECRET.as_bytes(), &claims(300)),
        "tokens signed with HS256 are not accepted",
    )
    .await;
    // The classic confusion: HS256 "signed" with the public key as the shared secret.
    refused(
        &gw,
        &hs256(k[0].public_pem.as_bytes(), &claims(300)),
        "tokens signed with HS256 are not accepted",
    )
    .await;

    // Both configured: the gateway does not start, and says why without the secret.
    let mixed = settings(AuthSettings {
        rs256_keys: key_list(&[("a", 0)]),
        hs256_secret: Some(SecretString::from(SECRET.to_owned())),
        ..AuthSettings::new(ISS, AUD)
    });
    let err = Application::build(&mixed)
        .await
        .err()
        .expect("mixed algorithms refused");
    assert!(
        matches!(err, StartError::Auth(AuthConfigError::MixedAlgorithms)),
        "{err}"
    );
    assert!(
        err.to_string().contains("allow_hs256_with_rs256") && !err.to_string().contains(SECRET),
        "{err}"
    );
    // With the development flag both are accepted.
    let mut dev = mixed;
    dev.auth.allow_hs256_with_rs256 = true;
    let gw = start(&dev).await;
    accepted(&gw, &hs256(SECRET.as_bytes(), &claims(300))).await;
    accepted(&gw, &rs256(&k[0], Some("a"), &claims(300))).await;
}

/// A JWKS endpoint whose key set the test changes; counts fetches; can be made to fail.
#[derive(Debug, Default)]
struct JwksServer {
    keys: Mutex<Vec<(String, usize)>>,
    fetches: AtomicUsize,
    failing: AtomicBool,
}

#[get("/jwks")]
async fn jwks_route(s: web::Data<JwksServer>) -> HttpResponse {
    s.fetches.fetch_add(1, Ordering::SeqCst);
    if s.failing.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().body("down");
    }
    let set: Vec<Value> = s
        .keys
        .lock()
        .expect("lock")
        .iter()
        .map(|(kid, i)| {
            let k = &keys()[*i];
            json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": k.n, "e": k.e})
        })
        .collect();
    // An encryption key and an EC key are published too; the gateway skips them.
    HttpResponse::Ok().json(json!({"keys": set.into_iter().chain([
        json!({"kty": "RSA", "use": "enc", "kid": "enc", "n": keys()[2].n, "e": keys()[2].e}),
        json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"}),
    ]).collect::<Vec<_>>()}))
}

fn jwks_server(initial: &[(&str, usize)]) -> (String, Arc<JwksServer>) {
    let state = Arc::new(JwksServer::default());
    *state.keys.lock().expect("lock") =
        initial.iter().map(|(k, i)| ((*k).to_owned(), *i)).collect();
    let data = web::Data::from(Arc::clone(&state));
    let server = HttpServer::new(move || App::new().app_data(data.clone()).service(jwks_route))
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind");
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (format!("http://127.0.0.1:{port}/jwks"), state)
}

fn jwks_settings(url: &str, min_refresh: u64) -> Settings {
    settings(AuthSettings {
        jwks_url: Some(url.to_owned()),
        jwks_refresh_secs: 3600,
        jwks_min_refresh_secs: min_refresh,
        jwks_connect_timeout_secs: 2,
        jwks_timeout_secs: 2,
        ..AuthSettings::new(ISS, AUD)
    })
}

async fn metrics(gateway: &str) -> String {
    reqwest::get(format!("{gateway}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

#[tokio::test]
async fn keys_rotate_through_the_jwks() {
    let k = keys();
    let (url, jwks) = jwks_server(&[("old", 0)]);
    let gw = start(&jwks_settings(&url, 0)).await;
    accepted(&gw, &rs256(&k[0], Some("old"), &claims(300))).await;
    // One published key: a token without kid uses it.
    accepted(&gw, &rs256(&k[0], None, &claims(300))).await;

    // The provider publishes the new key next to the old one and starts signing with it: the
    // first token naming it makes the gateway fetch the set again.
    jwks.keys.lock().expect("lock").push(("new".to_owned(), 1));
    accepted(&gw, &rs256(&k[1], Some("new"), &claims(300))).await;
    accepted(&gw, &rs256(&k[0], Some("old"), &claims(300))).await;
    refused(
        &gw,
        &rs256(&k[0], None, &claims(300)),
        "the token names no key id (kid) and several RS256 keys are configured",
    )
    .await;

    // The old key is withdrawn; the next refresh (here caused by another unknown kid) drops it.
    jwks.keys
        .lock()
        .expect("lock")
        .retain(|(kid, _)| kid != "old");
    refused(
        &gw,
        &rs256(&k[2], Some("never-published"), &claims(300)),
        "unknown key id (kid)",
    )
    .await;
    refused(
        &gw,
        &rs256(&k[0], Some("old"), &claims(300)),
        "unknown key id (kid)",
    )
    .await;
    accepted(&gw, &rs256(&k[1], Some("new"), &claims(300))).await;

    // The provider fails: the last good set stays in use, and the failure is counted.
    jwks.failing.store(true, Ordering::SeqCst);
    refused(
        &gw,
        &rs256(&k[2], Some("during-outage"), &claims(300)),
        "unknown key id (kid)",
    )
    .await;
    accepted(&gw, &rs256(&k[1], Some("new"), &claims(300))).await;
    let m = metrics(&gw).await;
    assert!(
        m.contains("sextant_gateway_jwks_refreshes_total{outcome=\"error\"} 1"),
        "{m}"
    );
    assert!(m.contains("sextant_gateway_jwks_keys 1"), "{m}");
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_jwks_at_most_once_per_interval() {
    let k = keys();
    let (url, jwks) = jwks_server(&[("a", 0)]);
    let gw = start(&jwks_settings(&url, 3600)).await;
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        1,
        "fetched at start-up"
    );
    for kid in ["x", "y", "z"] {
        refused(
            &gw,
            &rs256(&k[1], Some(kid), &claims(300)),
            "unknown key id (kid)",
        )
        .await;
    }
    assert_eq!(
        jwks.fetches.load(Ordering::SeqCst),
        2,
        "made-up kids cause one extra fetch, not one each"
    );
    accepted(&gw, &rs256(&k[0], Some("a"), &claims(300))).await;
}

#[tokio::test]
async fn callers_over_their_rate_get_429_with_retry_after_then_pass_again() {
    let k = keys();
    let clock = Arc::new(ManualClock::new());
    let mut s = settings(AuthSettings {
        rs256_keys: key_list(&[("a", 0)]),
        ..AuthSettings::new(ISS, AUD)
    });
    s.rate_limit = RateLimitSettings {
        requests_per_sec: 0.5,
        burst: 2,
        ..RateLimitSettings::default()
    };
    let gw = start_with_clock(&s, Arc::clone(&clock) as Arc<dyn Clock>).await;
    let token_of = |sub: &str| {
        let mut c = claims(300);
        c["sub"] = sub.into();
        rs256(&k[0], Some("a"), &c)
    };
    let apex = token_of("apex");
    accepted(&gw, &apex).await;
    accepted(&gw, &apex).await;
    let (status, body, retry) = call(&gw, Some(&format!("Bearer {apex}"))).await;
    assert_eq!(
        (status, body["code"].as_str(), retry.as_deref()),
        (429, Some("rate_limited"), Some("2")),
        "{body}"
    );
    assert!(!body.to_string().contains(&apex));
    // Another caller has its own bucket; a refused token takes nothing from anyone.
    accepted(&gw, &token_of("batch")).await;
    let (status, _, _) = call(&gw, Some("Bearer not.a.jwt")).await;
    assert_eq!(status, 401, "authentication comes before the rate limit");

    clock.advance(Duration::from_secs(1));
    let (status, _, retry) = call(&gw, Some(&format!("Bearer {apex}"))).await;
    assert_eq!((status, retry.as_deref()), (429, Some("1")));
    clock.advance(Duration::from_secs(1));
    accepted(&gw, &apex).await;

    let m = metrics(&gw).await;
    assert!(m.contains("sextant_gateway_rate_limited_total 2"), "{m}");
}

#[test]
fn settings_load_from_the_environment_as_the_chart_renders_them() {
    let pem = &keys()[0].public_pem;
    let keys_json = json!([{"kid": "2025-01", "pem": pem}, {"kid": "2026-01", "pem": pem}]);
    let env: std::collections::HashMap<String, String> = [
        ("SEXTANT_GATEWAY__AUTH__ISSUER", ISS.to_owned()),
        ("SEXTANT_GATEWAY__AUTH__AUDIENCE", AUD.to_owned()),
        ("SEXTANT_GATEWAY__AUTH__RS256_KEYS", keys_json.to_string()),
        (
            "SEXTANT_GATEWAY__AUTH__JWKS_URL",
            "https://idp.example.com/jwks".to_owned(),
        ),
        ("SEXTANT_GATEWAY__AUTH__JWKS_REFRESH_SECS", "60".to_owned()),
        (
            "SEXTANT_GATEWAY__AUTH__MAX_TOKEN_LIFETIME_SECS",
            "600".to_owned(),
        ),
        (
            "SEXTANT_GATEWAY__AUTH__ALLOW_HS256_WITH_RS256",
            "false".to_owned(),
        ),
        (
            "SEXTANT_GATEWAY__RATE_LIMIT__REQUESTS_PER_SEC",
            "2.5".to_owned(),
        ),
        ("SEXTANT_GATEWAY__RATE_LIMIT__BURST", "10".to_owned()),
        (
            "SEXTANT_GATEWAY__RATE_LIMIT__MAX_CALLERS",
            "10000".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let s: Settings =
        sextant_service_kit::config::load_from("SEXTANT_GATEWAY", None, Some(env)).expect("loads");
    let kids: Vec<_> = s.auth.rs256_keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, ["2025-01", "2026-01"], "kids keep their case");
    assert_eq!(&s.auth.rs256_keys[0].pem, pem, "the PEM's newlines survive");
    assert_eq!(
        s.auth.jwks_url.as_deref(),
        Some("https://idp.example.com/jwks")
    );
    assert_eq!(
        (s.auth.jwks_refresh_secs, s.auth.max_token_lifetime_secs),
        (60, 600)
    );
    assert!(!s.auth.allow_hs256_with_rs256);
    assert_eq!(
        s.rate_limit,
        RateLimitSettings {
            requests_per_sec: 2.5,
            burst: 10,
            max_callers: 10_000
        }
    );
    // The defaults: no limit, no JWKS, no key list.
    let minimal: std::collections::HashMap<String, String> = [
        ("SEXTANT_GATEWAY__AUTH__ISSUER", ISS),
        ("SEXTANT_GATEWAY__AUTH__AUDIENCE", AUD),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let s: Settings =
        sextant_service_kit::config::load_from("SEXTANT_GATEWAY", None, Some(minimal))
            .expect("loads");
    assert!(s.auth.rs256_keys.is_empty() && s.auth.jwks_url.is_none());
    assert_eq!(s.auth.max_token_lifetime_secs, 0);
    assert_eq!(s.rate_limit, RateLimitSettings::default());

    // A TOML file lists the keys as tables.
    let dir = std::env::temp_dir().join(format!("sextant-gateway-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("gateway.toml");
    std::fs::write(
        &file,
        format!(
            "[auth]\nissuer = \"{ISS}\"\naudience = \"{AUD}\"\n\n[[auth.rs256_keys]]\nkid = \"Key-A\"\npem = '''\n{pem}'''\n\n[rate_limit]\nrequests_per_sec = 1\n"
        ),
    )
    .expect("write");
    let s: Settings = sextant_service_kit::config::load_from(
        "SEXTANT_GATEWAY",
        Some(&file),
        Some(std::collections::HashMap::new()),
    )
    .expect("loads");
    assert_eq!(s.auth.rs256_keys.len(), 1);
    assert_eq!(s.auth.rs256_keys[0].kid, "Key-A");
    assert_eq!(&s.auth.rs256_keys[0].pem, pem);
    assert!((s.rate_limit.requests_per_sec - 1.0).abs() < f64::EPSILON);
    let _ = std::fs::remove_dir_all(dir);
}
