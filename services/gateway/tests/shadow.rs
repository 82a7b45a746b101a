//! A shadow (challenger) churn model over real HTTP on loopback: the stand-in trainer names
//! `churn-v2` the shadow of `churn-v1`; the gateway answers with `churn-v1` only, scores the same
//! accounts with `churn-v2` in the background and sends both versions' scores to the prediction
//! log; when the trainer stops naming a shadow, the gateway stops shadowing.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, get, post, web};
use chrono::{NaiveDate, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use sextant_contracts::api::{OnlineFeatures, OnlineFeaturesRequest, PredictionBatch};
use sextant_gateway::auth::AuthSettings;
use sextant_gateway::{Application, Settings};
use support::churn::{CHANNELS, account, feature_names, model, row};

const SECRET: &str = "a-development-secret-of-at-least-32-bytes!";

struct Upstream {
    shadow_on: AtomicBool,
    /// Model versions of the logged predictions, in arrival order.
    logged: Mutex<Vec<String>>,
}

#[get("/v1/models/current")]
async fn current() -> HttpResponse {
    HttpResponse::Ok().json(json!({"version": "churn-v1"}))
}

#[get("/v1/models/shadow")]
async fn shadow(up: web::Data<Upstream>) -> HttpResponse {
    if up.shadow_on.load(Ordering::SeqCst) {
        HttpResponse::Ok().json(json!({"version": "churn-v2"}))
    } else {
        HttpResponse::NotFound()
            .json(json!({"code": "no_model", "message": "no churn shadow model is named"}))
    }
}

#[get("/v1/models/{version}/artifact")]
async fn artifact(v: web::Path<String>) -> HttpResponse {
    let seed = if v.as_str() == "churn-v1" { 1 } else { 2 };
    HttpResponse::Ok().json(model(&v, seed))
}

#[post("/v1/features/online")]
async fn online(req: web::Json<OnlineFeaturesRequest>) -> HttpResponse {
    let rows = req
        .account_ids
        .iter()
        .enumerate()
        .map(|(n, id)| row(id, n as u64))
        .collect();
    HttpResponse::Ok().json(OnlineFeatures {
        as_of: NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"),
        feature_set: "rfmt-v2".into(),
        feature_names: feature_names(),
        sequence_channels: CHANNELS.iter().map(|s| (*s).to_owned()).collect(),
        rows,
        missing: Vec::new(),
    })
}

#[post("/v1/predictions")]
async fn predictions(up: web::Data<Upstream>, req: web::Json<PredictionBatch>) -> HttpResponse {
    let mut logged = up.logged.lock().expect("lock");
    logged.extend(req.predictions.iter().map(|p| p.model_version.to_string()));
    HttpResponse::Ok().json(json!({"stored": req.predictions.len()}))
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

async fn score(gateway: &str) -> Value {
    let ids: Vec<String> = (1..=3).map(|n| account(n).to_string()).collect();
    let resp = reqwest::Client::new()
        .post(format!("{gateway}/v1/scores"))
        .bearer_auth(token())
        .json(&json!({ "record_ids": ids }))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.expect("json")
}

#[tokio::test]
async fn a_shadow_scores_the_same_requests_unseen_and_stops_when_unnamed() {
    let up = Arc::new(Upstream {
        shadow_on: AtomicBool::new(true),
        logged: Mutex::new(Vec::new()),
    });
    let data = web::Data::from(Arc::clone(&up));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::JsonConfig::default().limit(8 << 20))
            .service(current)
            .service(shadow)
            .service(artifact)
            .service(online)
            .service(predictions)
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let upstream = format!("http://127.0.0.1:{}", server.addrs()[0].port());
    tokio::spawn(server.run());
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

    // Wait until both versions' scores reach the log; answers always come from churn-v1.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let readiness = reqwest::get(format!("{gateway}/readyz"))
            .await
            .expect("readyz");
        if readiness.status().is_success() {
            let body = score(&gateway).await;
            assert_eq!(body["model_version"], "churn-v1", "{body}");
            let logged = up.logged.lock().expect("lock").clone();
            if logged.iter().any(|v| v == "churn-v2") && logged.iter().any(|v| v == "churn-v1") {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shadow's scores never reached the log: {:?}",
            up.logged.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The trainer stops naming a shadow: after a refresh, only churn-v1 is logged.
    up.shadow_on.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(4)).await;
    up.logged.lock().expect("lock").clear();
    for _ in 0..3 {
        let body = score(&gateway).await;
        assert_eq!(body["model_version"], "churn-v1");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let logged = up.logged.lock().expect("lock").clone();
    assert_eq!(logged.len(), 9, "three calls of three accounts: {logged:?}");
    assert!(logged.iter().all(|v| v == "churn-v1"), "{logged:?}");
}
