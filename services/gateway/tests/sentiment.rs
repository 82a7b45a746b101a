//! `POST /v1/sentiment` over real HTTP on loopback: a stand-in trainer serves (or does not yet
//! serve) a sentiment model, and the gateway is the real application.
//!
//! - Without a trained model the call is refused with `no_model` (no fallback answer).
//! - Once the trainer has one, the gateway loads it in the background and scores each text in
//!   request order with that model's version.
//! - Bad requests get stable codes; the call needs a JWT like scoring does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, get, web};
use chrono::Utc;
use secrecy::SecretString;
use serde_json::{Value, json};
use sextant_gateway::auth::AuthSettings;
use sextant_gateway::{Application, Settings};
use sextant_models::Dense;
use sextant_models::sentiment::{FeatureConfig, LEXICON_FEATURES, OUTPUTS, SentimentArtifact};

const SECRET: &str = "a-development-secret-of-at-least-32-bytes!";

/// A model that reads every text as negative, with intensity pushed down: what no lexicon says
/// of "Thanks, works great", so the answer shows the model judged it.
fn all_negative() -> SentimentArtifact {
    let dim = 2;
    SentimentArtifact {
        version: "sentiment-v4".into(),
        features: FeatureConfig::default(),
        dim,
        rows: vec![],
        vectors: vec![],
        lexicon_means: vec![0.0; LEXICON_FEATURES],
        lexicon_stds: vec![1.0; LEXICON_FEATURES],
        layers: vec![Dense {
            inputs: dim + LEXICON_FEATURES,
            outputs: OUTPUTS,
            weights: vec![0.0; (dim + LEXICON_FEATURES) * OUTPUTS],
            bias: vec![5.0, 0.0, 0.0, -2.0],
        }],
    }
}

struct Trainer {
    has_model: AtomicBool,
}

#[get("/v1/sentiment/models/current")]
async fn current(t: web::Data<Trainer>) -> HttpResponse {
    if t.has_model.load(Ordering::SeqCst) {
        HttpResponse::Ok().json(json!({"version": "sentiment-v4"}))
    } else {
        HttpResponse::NotFound()
            .json(json!({"code": "no_model", "message": "no sentiment model has been trained yet"}))
    }
}

#[get("/v1/sentiment/models/sentiment-v4/artifact")]
async fn artifact() -> HttpResponse {
    HttpResponse::Ok().json(all_negative())
}

fn trainer() -> (String, Arc<Trainer>) {
    let state = Arc::new(Trainer {
        has_model: AtomicBool::new(false),
    });
    let data = web::Data::from(Arc::clone(&state));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .service(current)
            .service(artifact)
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (format!("http://127.0.0.1:{port}"), state)
}

fn token() -> String {
    let now = Utc::now().timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"iss": "sextant-test", "aud": "sextant-gateway", "sub": "apex", "exp": now + 300, "iat": now}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token")
}

async fn post(gateway: &str, body: &Value, auth: bool) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{gateway}/v1/sentiment"))
        .json(body);
    if auth {
        req = req.bearer_auth(token());
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn texts_are_scored_by_the_current_sentiment_model_and_only_by_it() {
    let (upstream, state) = trainer();
    let mut settings = Settings::with_auth(AuthSettings {
        rs256_public_key_pem: None,
        hs256_secret: Some(SecretString::from(SECRET.to_owned())),
        leeway_secs: 30,
        ..AuthSettings::new("sextant-test", "sextant-gateway")
    });
    settings.port = 0;
    settings.feature_store_url = upstream.clone();
    settings.trainer_url = upstream;
    settings.model_refresh_secs = 1;
    let app = Application::build(&settings).await.expect("gateway starts");
    let gateway = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    let texts = json!({"texts": ["Thanks, works great", "The unit arrived broken"]});
    let (status, body) = post(&gateway, &texts, true).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("no_model")),
        "{body}"
    );

    let (status, body) = post(&gateway, &texts, false).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));

    state.has_model.store(true, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = post(&gateway, &texts, true).await;
        if status == 200 {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sentiment model never loaded: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["model_version"], "sentiment-v4");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["label"], "negative", "{r}");
        let total: f64 = ["negative", "neutral", "positive"]
            .iter()
            .map(|k| r[*k].as_f64().expect("probability"))
            .sum();
        assert!((total - 1.0).abs() < 1e-9, "{r}");
        assert!(r["negative"].as_f64().expect("p") > 0.9, "{r}");
        assert!(
            r["factors"].is_null(),
            "a model that reads no word names no word: {r}"
        );
        let intensity = r["intensity"].as_f64().expect("intensity");
        assert!((-1.0..0.0).contains(&intensity), "{r}");
    }

    for (body, code) in [
        (json!({"texts": []}), "empty_request"),
        (json!({"texts": vec!["fine"; 201]}), "too_many_records"),
        (json!({"texts": ["ok", "   "]}), "invalid_parameter"),
        (json!({"texts": ["x".repeat(20_001)]}), "invalid_parameter"),
        (json!({"text": "one"}), "invalid_json"),
    ] {
        let (status, answer) = post(&gateway, &body, true).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{answer}"
        );
    }
}
