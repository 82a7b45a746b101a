//! Internal service tokens over real HTTP on loopback: a guarded service refuses calls without a
//! valid token (401 `unauthorized`, never echoing what was presented, in the body or the log),
//! answers those with one, and keeps its probes, metrics and API description open; during a key
//! rotation it accepts the previous key's tokens, chosen by their `kid`, and refuses unknown kids.

use std::sync::{Arc, Mutex, OnceLock};

use actix_web::{HttpResponse, web};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{Value, json};
use sextant_service_kit::internal_auth::{
    InternalAuth, InternalClient, InternalKey, InternalVerifier, mint,
};
use sextant_service_kit::metrics::Metrics;
use sextant_service_kit::server::Service;

const KEY: &str = "test-internal-key-0123456789-abcdefghij";
const OTHER: &str = "another-internal-key-9876543210-zyxwvu";

/// Everything the services log, for the "never in the log" checks.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Self;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        logs
    })
}

fn key(s: &str) -> InternalKey {
    InternalKey::new(SecretString::from(s.to_owned())).expect("key")
}

fn start(verifier: Option<InternalVerifier>) -> String {
    let service = Service::start_guarded(
        "test",
        "127.0.0.1",
        0,
        1 << 10,
        utoipa::openapi::OpenApiBuilder::new().build(),
        Metrics::new("test"),
        verifier,
        |cfg: &mut web::ServiceConfig| {
            cfg.route(
                "/v1/echo",
                web::get().to(|| async { HttpResponse::Ok().json(json!({"ok": true})) }),
            )
            .route("/healthz", web::get().to(HttpResponse::Ok))
            .route("/readyz", web::get().to(HttpResponse::Ok));
        },
    )
    .expect("starts");
    let url = format!("http://127.0.0.1:{}", service.port());
    tokio::spawn(service.run_until_stopped());
    url
}

async fn call(req: reqwest::RequestBuilder) -> (u16, String) {
    let resp = req.send().await.expect("sent");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        .try_into()
        .expect("fits")
}

#[tokio::test]
async fn a_guarded_service_answers_only_valid_internal_tokens() {
    let logs = logs();
    let base = start(Some(InternalVerifier::new(key(KEY))));
    let http = reqwest::Client::new();
    let echo = format!("{base}/v1/echo");

    // The probes, metrics and API description are open to anyone.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let (status, body) = call(http.get(format!("{base}{path}"))).await;
        assert_eq!(status, 200, "{path}: {body}");
    }

    // No token at all.
    let (status, body) = call(http.get(&echo)).await;
    assert_eq!(status, 401, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["code"], "unauthorized", "{body}");

    // Tokens that must be refused, each for its reason.
    let t = now();
    let wrong_key = mint(&key(OTHER), "trainer", t, 60).expect("mint");
    let expired = mint(&key(KEY), "trainer", t - 700, 300).expect("mint");
    let too_long = mint(&key(KEY), "trainer", t, 86_400).expect("mint");
    let wrong_aud = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": "trainer", "aud": "sextant-gateway", "iat": t, "exp": t + 60}),
        &EncodingKey::from_secret(KEY.as_bytes()),
    )
    .expect("encode");
    let forged_kid = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key(KEY).kid().to_owned());
        jsonwebtoken::encode(
            &header,
            &json!({"iss": "trainer", "aud": "sextant-internal", "iat": t, "exp": t + 60}),
            &EncodingKey::from_secret(OTHER.as_bytes()),
        )
        .expect("encode")
    };
    let none_alg = {
        // An unsigned token claiming to be fine.
        let claims = r#"{"iss":"x","aud":"sextant-internal","iat":0,"exp":99999999999}"#;
        use std::fmt::Write as _;
        let b64 = |s: &str| {
            // base64url without padding, by hand: the test needs no extra dependency.
            const A: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let bytes = s.as_bytes();
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
                for i in 0..=chunk.len() {
                    let idx = usize::try_from((n >> (18 - 6 * i)) & 63).expect("6 bits");
                    out.push(char::from(A[idx]));
                }
            }
            out
        };
        let mut t = String::new();
        let _ = write!(t, "{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims));
        t
    };
    let refused = [
        (
            "another deployment's key (unknown kid)",
            wrong_key.clone(),
            "does not accept (kid)",
        ),
        (
            "our kid, signed with another key",
            forged_kid.clone(),
            "not valid",
        ),
        ("expired", expired.clone(), "expired"),
        ("lifetime over 10 minutes", too_long.clone(), "lifetime"),
        ("wrong audience", wrong_aud.clone(), "sextant-internal"),
        ("unsigned", none_alg.clone(), "not valid"),
        ("garbage", "not-a-token".to_owned(), "not valid"),
        ("the key with a suffix", format!("{KEY}x"), "not valid"),
    ];
    for (what, token, says) in &refused {
        let (status, body) = call(http.get(&echo).bearer_auth(token)).await;
        assert_eq!(status, 401, "{what}: {body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["code"], "unauthorized", "{what}: {body}");
        assert!(
            v["message"].as_str().expect("message").contains(says),
            "{what}: {body}"
        );
        assert!(
            !body.contains(token.as_str()),
            "{what}: the body echoes the token"
        );
        assert!(!body.contains(KEY), "{what}: the body shows the key");
    }

    // A service's token is accepted, and so is the raw key (the chart's CronJobs send it).
    let auth = InternalAuth::new("connector", key(KEY));
    let valid = auth.token().expect("mint");
    let client = InternalClient::new(reqwest::Client::new(), Some(auth));
    let (status, body) = call(client.get(&echo)).await;
    assert_eq!((status, body.as_str()), (200, r#"{"ok":true}"#));
    let (status, _) = call(http.get(&echo).bearer_auth(KEY)).await;
    assert_eq!(status, 200, "the raw shared key");
    // Past the guard, unknown routes are the usual 404.
    let (status, _) = call(client.get(format!("{base}/v1/nothing"))).await;
    assert_eq!(status, 404);
    // Refused calls are counted like any other.
    let (_, metrics) = call(http.get(format!("{base}/metrics"))).await;
    assert!(
        metrics.contains(r#"route="/v1/echo",status="4xx""#),
        "{metrics}"
    );

    // The log says why calls were refused, and never shows a token or the key.
    let logged = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(logged.contains("Internal call refused."), "{logged}");
    assert!(logged.contains("expired"), "{logged}");
    assert!(!logged.contains(&valid), "the log shows a valid token");
    for (what, token, _) in &refused {
        assert!(
            !logged.contains(token.as_str()),
            "{what}: the log shows the token"
        );
    }
    assert!(!logged.contains(KEY), "the log shows the key");
}

/// A token the way callers signed them before tokens named their key: no `kid`.
fn without_kid(secret: &str, t: i64) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": "gateway", "aud": "sextant-internal", "iat": t, "exp": t + 60}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

#[tokio::test]
async fn during_key_rotation_the_previous_key_is_accepted_by_kid() {
    const NEW: &str = "the-new-internal-key-after-rotation-0001";
    const RETIRED: &str = "a-retired-internal-key-nobody-holds-0002";
    // The chart passes previous keys as one variable: comma- or whitespace-separated.
    let verifier = InternalVerifier::from_settings(
        Some(&SecretString::from(NEW.to_owned())),
        Some(&SecretString::from(format!(" {KEY},\n"))),
    )
    .expect("valid keys")
    .expect("a current key");
    assert_eq!(verifier.kids(), vec![key(NEW).kid(), key(KEY).kid()]);
    let base = start(Some(verifier));
    let echo = format!("{base}/v1/echo");
    let http = reqwest::Client::new();
    let t = now();

    // A caller that still signs with the previous key (its pod not rolled yet) gets through, and
    // so does one with the new key; callers sign with their current key and name it.
    for (what, signer) in [("previous key", KEY), ("current key", NEW)] {
        let auth = InternalAuth::new("gateway", key(signer));
        let token = auth.token().expect("mint");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.kid.as_deref(), Some(key(signer).kid()), "{what}");
        let client = InternalClient::new(http.clone(), Some(auth));
        let (status, body) = call(client.get(&echo)).await;
        assert_eq!((status, body.as_str()), (200, r#"{"ok":true}"#), "{what}");
    }
    let (status, _) = call(http.get(&echo).bearer_auth(KEY)).await;
    assert_eq!(
        status, 200,
        "the previous raw key (a CronJob started before the roll)"
    );

    // A key the service does not hold: 401, saying the kid is unknown.
    let retired = mint(&key(RETIRED), "gateway", t, 60).expect("mint");
    let (status, body) = call(http.get(&echo).bearer_auth(&retired)).await;
    assert_eq!(status, 401, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["code"], "unauthorized", "{body}");
    assert!(
        v["message"].as_str().expect("message").contains("(kid)"),
        "{body}"
    );
    assert!(!body.contains(&retired) && !body.contains(NEW) && !body.contains(KEY));

    // No kid (a caller from before kids): checked against the current key only.
    let (status, _) = call(http.get(&echo).bearer_auth(without_kid(NEW, t))).await;
    assert_eq!(status, 200, "no kid, current key");
    let (status, _) = call(http.get(&echo).bearer_auth(without_kid(KEY, t))).await;
    assert_eq!(status, 401, "no kid, previous key");
}

#[test]
fn previous_keys_are_checked_like_the_current_one() {
    let long = || SecretString::from("a-long-enough-internal-key-0123456789".to_owned());
    let err = InternalVerifier::from_settings(None, Some(&long())).expect_err("no current key");
    assert!(err.to_string().contains("without internal_token"), "{err}");
    let err = InternalVerifier::from_settings(
        Some(&long()),
        Some(&SecretString::from("short-one".to_owned())),
    )
    .expect_err("short");
    assert!(err.to_string().contains("at least 32"), "{err}");
    assert!(!err.to_string().contains("short-one"), "{err}");
    assert!(
        InternalVerifier::from_settings(None, Some(&SecretString::from(" , ".to_owned())))
            .expect("blank is none")
            .is_none()
    );
    // The kid names the key without revealing it, and differs between keys.
    let k = key(KEY);
    assert_eq!(k.kid().len(), 16);
    assert!(!KEY.contains(k.kid()) && !format!("{k:?}").contains(KEY));
    assert_ne!(k.kid(), key(OTHER).kid());
}

#[tokio::test]
async fn without_a_key_the_service_is_open_and_says_so() {
    let logs = logs();
    let base = start(None);
    let (status, _) = call(reqwest::Client::new().get(format!("{base}/v1/echo"))).await;
    assert_eq!(status, 200);
    let logged = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(logged.contains("NO INTERNAL TOKEN CONFIGURED"), "{logged}");
}

#[test]
fn a_short_key_is_refused_at_startup() {
    let err = InternalKey::new(SecretString::from("short".to_owned())).expect_err("short");
    assert!(err.to_string().contains("at least 32"), "{err}");
}
