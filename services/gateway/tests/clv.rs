//! The gateway's CLV and next-best-action behaviour over real HTTP on loopback: a stand-in
//! trainer and feature store (one actix server) answer what the real ones would, and the gateway
//! is the real application.
//!
//! - Without a CLV model the churn score is still served, and each record says `clv` is
//!   unavailable with the reason (never a zero).
//! - Once the trainer has a CLV model, the gateway loads it in the background and values each
//!   account from its online features: a recent, frequent buyer is worth more than a lapsed one.
//! - Accounts without history get the onboarding action; bad CLV or policy settings stop the
//!   gateway from starting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, get, post, web};
use chrono::{NaiveDate, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use sextant_contracts::api::{
    FeatureRow, HistoryStatus, OnlineFeatures, OnlineFeaturesRequest, ValueTier, ValueTierThreshold,
};
use sextant_contracts::{ModelVersion, SalesforceId};
use sextant_gateway::auth::AuthSettings;
use sextant_gateway::{Application, Settings, StartError};
use sextant_models::churn_serving::ServedChurnModel;
use sextant_models::clv::serving::{
    CLV_KIND, ClvArtifact, PurchaseParams, SpendParams, TypicalCustomer,
};
use sextant_models::{ChurnArtifact, Dense};

const SECRET: &str = "a-development-secret-of-at-least-32-bytes!";
const NAMES: [&str; 6] = [
    "recency_days",
    "tenure_days",
    "frequency",
    "monetary_total",
    "ipt_mean_days",
    "single_purchase",
];

fn id(n: u64) -> SalesforceId {
    SalesforceId::from_parts("001", "cl", n)
}

/// Account 1: 11 purchase days 20 days apart, the last 5 days ago. Account 2: 3 purchase days,
/// the last 300 days ago. Account 3: no purchase. Account 4: unknown to the store.
fn features_of(account: &SalesforceId) -> Option<Option<Vec<f64>>> {
    if *account == id(1) {
        Some(Some(vec![5.0, 205.0, 11.0, 1100.0, 20.0, 0.0]))
    } else if *account == id(2) {
        Some(Some(vec![300.0, 340.0, 3.0, 300.0, 20.0, 0.0]))
    } else if *account == id(3) {
        Some(None)
    } else {
        None
    }
}

#[derive(Debug)]
struct Upstream {
    clv: AtomicBool,
    clv_feature_set: String,
}

fn churn() -> ServedChurnModel {
    ServedChurnModel::Mlp(ChurnArtifact {
        version: ModelVersion::parse("churn-v1").expect("v"),
        feature_names: NAMES.iter().map(|s| (*s).to_owned()).collect(),
        means: vec![0.0; NAMES.len()],
        stds: vec![1.0; NAMES.len()],
        layers: vec![Dense {
            inputs: NAMES.len(),
            outputs: 1,
            weights: vec![0.3, 0.0, -0.2, 0.0, 0.0, 0.0],
            bias: vec![-0.5],
        }],
    })
}

fn clv_artifact(feature_set: &str) -> ClvArtifact {
    ClvArtifact {
        kind: CLV_KIND.into(),
        version: ModelVersion::parse("clv-v1").expect("v"),
        feature_set: feature_set.into(),
        purchase: PurchaseParams::Bgnbd {
            r: 0.243,
            alpha: 4.414,
            a: 0.793,
            b: 2.426,
        },
        spend: SpendParams {
            p: 6.25,
            q: 3.74,
            gamma: 15.44,
        },
        tier_horizon_months: 12,
        tier_discount_rate_annual: 0.1,
        tiers: vec![
            ValueTierThreshold {
                name: ValueTier::High,
                min_value: 200.0,
            },
            ValueTierThreshold {
                name: ValueTier::Medium,
                min_value: 50.0,
            },
            ValueTierThreshold {
                name: ValueTier::Low,
                min_value: 0.0,
            },
        ],
        typical: Some(TypicalCustomer {
            repeat_purchases: 1.0,
            weeks_since_last_purchase: 6.0,
            tenure_weeks: 26.0,
            spend_per_purchase: 30.0,
        }),
    }
}

#[get("/v1/models/current")]
async fn churn_current() -> HttpResponse {
    HttpResponse::Ok().json(json!({"version": "churn-v1"}))
}

#[get("/v1/models/churn-v1/artifact")]
async fn churn_artifact() -> HttpResponse {
    HttpResponse::Ok().json(churn())
}

#[get("/v1/clv/models/current")]
async fn clv_current(up: web::Data<Upstream>) -> HttpResponse {
    if up.clv.load(Ordering::SeqCst) {
        HttpResponse::Ok().json(json!({"version": "clv-v1"}))
    } else {
        HttpResponse::NotFound()
            .json(json!({"code": "no_model", "message": "no CLV model has been trained yet"}))
    }
}

#[get("/v1/clv/models/clv-v1/artifact")]
async fn clv_artifact_route(up: web::Data<Upstream>) -> HttpResponse {
    HttpResponse::Ok().json(clv_artifact(&up.clv_feature_set))
}

#[post("/v1/features/online")]
async fn online(req: web::Json<OnlineFeaturesRequest>) -> HttpResponse {
    let as_of = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for a in &req.account_ids {
        match features_of(a) {
            Some(features) => rows.push(FeatureRow {
                account_id: a.clone(),
                status: if features.is_some() {
                    HistoryStatus::Ok
                } else {
                    HistoryStatus::NoHistory
                },
                features,
                sequence: None,
                attributes: Default::default(),
                as_of,
                computed_at: Utc::now(),
            }),
            None => missing.push(a.clone()),
        }
    }
    HttpResponse::Ok().json(OnlineFeatures {
        as_of,
        feature_set: "rfmt-v2".into(),
        feature_names: NAMES.iter().map(|s| (*s).to_owned()).collect(),
        sequence_channels: Vec::new(),
        rows,
        missing,
    })
}

/// Starts the stand-in upstream; returns its URL and state.
fn upstream(clv_feature_set: &str) -> (String, Arc<Upstream>) {
    let state = Arc::new(Upstream {
        clv: AtomicBool::new(false),
        clv_feature_set: clv_feature_set.to_owned(),
    });
    let data = web::Data::from(Arc::clone(&state));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .service(churn_current)
            .service(churn_artifact)
            .service(clv_current)
            .service(clv_artifact_route)
            .service(online)
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (format!("http://127.0.0.1:{port}"), state)
}

fn settings(upstream: &str) -> Settings {
    let mut s = Settings::with_auth(AuthSettings {
        rs256_public_key_pem: None,
        hs256_secret: Some(SecretString::from(SECRET.to_owned())),
        leeway_secs: 30,
        ..AuthSettings::new("sextant-test", "sextant-gateway")
    });
    s.port = 0;
    s.feature_store_url = upstream.to_owned();
    s.trainer_url = upstream.to_owned();
    s.model_refresh_secs = 1;
    s
}

fn token() -> String {
    let now = Utc::now().timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"iss": "sextant-test", "aud": "sextant-gateway", "sub": "test", "exp": now + 300, "iat": now}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token")
}

async fn start(settings: &Settings) -> String {
    let app = Application::build(settings).await.expect("gateway starts");
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    url
}

async fn score(gateway: &str, ids: &[SalesforceId]) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{gateway}/v1/scores"))
        .bearer_auth(token())
        .json(&json!({"record_ids": ids.iter().map(ToString::to_string).collect::<Vec<_>>()}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.expect("json")
}

/// Scores until the churn model is loaded (the gateway loads it in the background).
async fn first_scores(gateway: &str, ids: &[SalesforceId]) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let resp = reqwest::Client::new()
            .post(format!("{gateway}/v1/scores"))
            .bearer_auth(token())
            .json(&json!({"record_ids": ids.iter().map(ToString::to_string).collect::<Vec<_>>()}))
            .send()
            .await
            .expect("sent");
        if resp.status().as_u16() == 200 {
            return resp.json().await.expect("json");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no churn model loaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn clv_is_explicitly_unavailable_without_a_model_and_served_once_there_is_one() {
    let (up_url, up) = upstream("rfmt-v2");
    let gateway = start(&settings(&up_url)).await;
    let ids = [id(1), id(2), id(3), id(4)];

    let body = first_scores(&gateway, &ids).await;
    let scores = body["scores"].as_array().expect("scores");
    assert_eq!(scores.len(), 2, "{body}");
    for s in scores {
        assert!(
            s["score"]
                .as_f64()
                .is_some_and(|p| (0.0..=1.0).contains(&p)),
            "{s}"
        );
        assert_eq!(s["clv"]["status"], "unavailable", "{s}");
        assert!(
            s["clv"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("no CLV model has been trained yet")),
            "{s}"
        );
        assert!(s["clv"].get("value").is_none(), "no number stands in: {s}");
    }
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{body}");
    assert_eq!(errors[0]["record_id"], id(3).to_string());
    assert_eq!(errors[0]["code"], "no_history");
    assert_eq!(
        errors[0]["next_best_action"]["code"], "onboarding",
        "{body}"
    );
    assert_eq!(errors[1]["code"], "not_found");
    assert!(errors[1].get("next_best_action").is_none());

    // The trainer gets a CLV model: the gateway picks it up in the background.
    up.clv.store(true, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let body = loop {
        let body = score(&gateway, &ids).await;
        if body["scores"][0]["clv"]["status"] == "available" {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the CLV model was not loaded: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let clv = |i: usize| body["scores"][i]["clv"].clone();
    for i in 0..2 {
        let c = clv(i);
        assert_eq!(c["status"], "available", "{c}");
        assert_eq!(c["model_version"], "clv-v1");
        assert_eq!(c["horizon_months"], 12);
        assert_eq!(c["discount_rate_annual"], 0.1);
        let value = c["value"].as_f64().expect("value");
        let p_alive = c["p_alive"].as_f64().expect("p_alive");
        assert!(value.is_finite() && value >= 0.0, "{c}");
        assert!((0.0..=1.0).contains(&p_alive), "{c}");
        assert!(
            c["expected_purchases"].as_f64().is_some_and(|v| v >= 0.0),
            "{c}"
        );
    }
    let (active, lapsed) = (clv(0), clv(1));
    assert!(
        active["value"].as_f64() > lapsed["value"].as_f64(),
        "a recent frequent buyer is worth more than a lapsed one: {active} vs {lapsed}"
    );
    assert!(active["p_alive"].as_f64() > lapsed["p_alive"].as_f64());
    assert_eq!(active["value_tier"], "high", "{active}");
    assert_eq!(lapsed["value_tier"], "low", "{lapsed}");
    // The value of a purchase is the Gamma-Gamma blend of the population's and the account's
    // own mean (100 per purchase day here), so it lies between them.
    let spend = active["expected_spend_per_purchase"]
        .as_f64()
        .expect("spend");
    let population: f64 = 6.25 * 15.44 / (3.74 - 1.0);
    assert!(
        spend > population.min(100.0) && spend < population.max(100.0),
        "{spend}"
    );
    // Each value says why, against the model's typical customer: the lapsed account's leading
    // reason is its long silence, and it lowers the value.
    let reasons = |c: &Value| -> Vec<(String, String)> {
        c["factors"]
            .as_array()
            .expect("factors")
            .iter()
            .map(|f| {
                assert!(f["impact"].as_f64().is_some_and(f64::is_finite), "{f}");
                assert!(
                    f["text"].as_str().is_some_and(|t| t.contains("typical")),
                    "{f}"
                );
                (
                    f["factor"].as_str().expect("factor").to_owned(),
                    f["direction"].as_str().expect("direction").to_owned(),
                )
            })
            .collect()
    };
    let lapsed_reasons = reasons(&lapsed);
    assert_eq!(
        lapsed_reasons[0],
        (
            "days_since_last_purchase".to_owned(),
            "lowers_value".to_owned()
        ),
        "{lapsed}"
    );
    assert!(
        reasons(&active)
            .iter()
            .any(|(f, d)| f == "spend_per_purchase" && d == "raises_value"),
        "{active}"
    );
}

#[tokio::test]
async fn a_clv_model_of_another_feature_set_is_reported_not_used() {
    let (up_url, up) = upstream("rfmt-v1");
    up.clv.store(true, Ordering::SeqCst);
    let gateway = start(&settings(&up_url)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let body = first_scores(&gateway, &[id(1)]).await;
        let reason = body["scores"][0]["clv"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if reason.contains("feature set rfmt-v1") {
            assert_eq!(body["scores"][0]["clv"]["status"], "unavailable");
            assert!(reason.contains("rfmt-v2"), "{reason}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn bad_clv_or_policy_settings_stop_the_gateway() {
    let mut s = settings("http://127.0.0.1:9");
    s.clv.horizon_months = 0;
    let err = Application::build(&s).await.err().expect("refused");
    assert!(matches!(err, StartError::Clv(_)), "{err}");
    assert!(err.to_string().contains("horizon_months"), "{err}");

    let mut s = settings("http://127.0.0.1:9");
    s.clv.discount_rate_annual = 10.0;
    assert!(matches!(
        Application::build(&s).await.err().expect("refused"),
        StartError::Clv(_)
    ));

    let mut s = settings("http://127.0.0.1:9");
    s.action_policy.rules.retain(|r| r.tier != ValueTier::High);
    let err = Application::build(&s).await.err().expect("refused");
    assert!(err.to_string().contains("exactly one"), "{err}");

    // The CLV settings as a config file gives them; an unknown key is refused, not ignored.
    let parsed: sextant_gateway::ClvSettings =
        serde_json::from_value(json!({"horizon_months": 24, "discount_rate_annual": 0.08}))
            .expect("clv settings");
    assert_eq!(parsed.horizon_months, 24);
    assert!(serde_json::from_value::<sextant_gateway::ClvSettings>(json!({"horizon": 3})).is_err());
}
