//! The whole chain — org simulator → connector → feature store → trainer → gateway — over HTTP
//! on random loopback ports, driven as Apex or an operator would drive it.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use sextant::demo::{DemoOptions, run};
use sextant::suite::{AUDIENCE, ISSUER, Suite, SuiteOptions};

async fn suite(dir: &tempfile::TempDir) -> Suite {
    let options = SuiteOptions {
        data_dir: dir.path().to_owned(),
        today: chrono::NaiveDate::from_ymd_opt(2011, 12, 10).expect("date"),
        // Small pages so the connector must follow nextRecordsUrl many times.
        batch_size: 200,
    };
    Suite::start(&options).await.expect("suite starts")
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_synced_account_gets_a_score() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = suite(&dir).await;
    let http = reqwest::Client::new();
    let svc = s.internal_client(Duration::from_secs(300));

    let (status, sync) = call(svc.post(format!("{}/v1/sync", s.urls.connector))).await;
    assert_eq!(status, 200, "{sync}");

    // Enforcement is on: the connector, store and trainer refuse calls without an internal
    // token or with one signed by another key, never echoing it; their probes stay open.
    let forged = {
        use sextant_service_kit::internal_auth::{InternalKey, mint};
        let other =
            InternalKey::new("another-key-another-key-another-key".to_owned().into()).expect("key");
        mint(&other, "intruder", chrono::Utc::now().timestamp(), 60).expect("mint")
    };
    for url in [
        format!("{}/v1/syncs", s.urls.connector),
        format!("{}/v1/accounts?limit=1", s.urls.feature_store),
        format!("{}/v1/models", s.urls.trainer),
    ] {
        let (status, body) = call(http.get(&url)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("unauthorized")),
            "{url}: {body}"
        );
        let (status, body) = call(http.get(&url).bearer_auth(&forged)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("unauthorized")),
            "{url}: {body}"
        );
        assert!(!body.to_string().contains(&forged), "{body}");
        let (status, body) = call(svc.get(&url)).await;
        assert_eq!(status, 200, "{url}: {body}");
    }
    for base in [&s.urls.connector, &s.urls.feature_store, &s.urls.trainer] {
        let (status, _) = call(http.get(format!("{base}/healthz"))).await;
        assert_eq!(status, 200, "{base}/healthz is open");
    }
    assert_eq!(sync["objects"]["Account"], 271);
    assert_eq!(sync["objects"]["OrderItem"], 23_264);
    assert!(
        sync["pages"].as_u64().expect("pages") > 100,
        "followed nextRecordsUrl: {sync}"
    );
    // The connector logged in with the JWT bearer flow and read from instance_url.
    assert!(
        s.org
            .requests()
            .iter()
            .any(|r| r.path == "/services/oauth2/token")
    );

    // Before any model exists the gateway says so, with a stable code.
    let token = s.gateway_token(300).expect("token");
    let account_ids: Vec<String> = {
        let (_, page) =
            call(svc.get(format!("{}/v1/accounts?limit=2000", s.urls.feature_store))).await;
        page["account_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(account_ids.len(), 271);
    let (status, body) = call(
        http.post(format!("{}/v1/scores", s.urls.gateway))
            .bearer_auth(&token)
            .json(&json!({"record_ids": [account_ids[0]]})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (503, Some("no_model")));
    let (status, body) = call(http.get(format!("{}/readyz", s.urls.gateway))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("no_model")),
        "a gateway without a model is not ready"
    );

    let (status, job) = call(
        svc.post(format!("{}/v1/jobs", s.urls.trainer))
            .json(&json!({"cutoff": "2011-09-09", "horizon_days": 90, "epochs": 60})),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().expect("job id").to_owned();
    let job = loop {
        let (_, job) = call(svc.get(format!("{}/v1/jobs/{id}", s.urls.trainer))).await;
        if job["state"] == "succeeded" || job["state"] == "failed" {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["state"], "succeeded", "{job}");
    // Early stopping on the validation AUC may end training before the most epochs asked for.
    assert_eq!(job["epochs_total"], 60);
    let epochs = job["epochs_done"].as_u64().expect("epochs");
    assert!((1..=60).contains(&epochs), "{job}");
    let version = job["model_version"].as_str().expect("version").to_owned();
    let (_, meta) = call(svc.get(format!("{}/v1/models/current", s.urls.trainer))).await;
    assert_eq!(meta["version"], version.as_str());
    // The first model is promoted (nothing to compare with), out-of-time on the job's cut-off.
    assert_eq!(meta["status"], "current", "{meta}");
    assert_eq!(meta["promotion"]["promoted"], true, "{meta}");
    assert_eq!(meta["config"]["model"], "sequence_gru", "{meta}");
    assert_eq!(meta["config"]["evaluation_cutoff"], "2011-09-09");
    assert!(
        meta["config"]["training_cutoffs"]
            .as_array()
            .is_some_and(|c| c.len() > 1 && c.iter().all(|d| d.as_str() < Some("2011-06-12"))),
        "training cut-offs end one horizon before the evaluation: {meta}"
    );
    s.wait_gateway_ready(Duration::from_secs(60))
        .await
        .expect("the gateway loads the new model in the background");
    let auc = meta["metrics"]["auc"].as_f64().expect("auc");
    assert!(
        auc > 0.55 && auc < 0.95,
        "held-out AUC {auc} is better than chance and not suspiciously high"
    );
    let plot = svc
        .get(format!(
            "{}/v1/models/{version}/plots/roc.svg",
            s.urls.trainer
        ))
        .send()
        .await
        .expect("plot");
    assert_eq!(plot.headers()["content-type"], "image/svg+xml");

    // Score every account, 200 at a time, as an Apex batch would.
    let mut scored = HashSet::new();
    let mut bands_seen = HashSet::new();
    let mut factor_names = HashSet::new();
    for chunk in account_ids.chunks(200) {
        let (status, body) = call(
            http.post(format!("{}/v1/scores", s.urls.gateway))
                .bearer_auth(&token)
                .json(&json!({"record_ids": chunk})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["model_version"], version.as_str());
        assert_eq!(body["errors"], json!([]));
        assert_eq!(
            body["bands"].as_array().map(|b| b
                .iter()
                .map(|b| b["name"].as_str().unwrap_or("").to_owned())
                .collect::<Vec<_>>()),
            Some(vec![
                "high".to_owned(),
                "medium".to_owned(),
                "low".to_owned()
            ]),
            "{}",
            body["bands"]
        );
        for s in body["scores"].as_array().expect("scores") {
            let p = s["score"].as_f64().expect("score");
            assert!((0.0..=1.0).contains(&p), "{s}");
            scored.insert(s["record_id"].as_str().expect("id").to_owned());
            let band = s["band"].as_str().expect("band");
            bands_seen.insert(band.to_owned());
            let factors = s["factors"].as_array().expect("factors");
            assert!(factors.len() <= 3, "{s}");
            assert_eq!(
                s["top_factors"], s["factors"],
                "the Salesforce package's name"
            );
            let mut last = f64::INFINITY;
            for f in factors {
                let impact = f["impact"].as_f64().expect("impact");
                assert!(impact.abs() <= last + 1e-12, "strongest first: {s}");
                last = impact.abs();
                let direction = f["direction"].as_str().expect("direction");
                assert_eq!(
                    direction,
                    if impact >= 0.0 {
                        "raises_risk"
                    } else {
                        "lowers_risk"
                    },
                    "{f}"
                );
                assert!(
                    f["text"].as_str().is_some_and(|t| t.contains("typical")),
                    "{f}"
                );
                factor_names.insert(f["factor"].as_str().expect("factor").to_owned());
            }
            // No CLV model has been trained here: each record says so, with no number.
            assert_eq!(s["clv"]["status"], "unavailable", "{s}");
            assert!(
                s["clv"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("no CLV model")),
                "{s}"
            );
            let action = &s["next_best_action"];
            assert!(
                action["action"].as_str().is_some_and(|a| !a.is_empty()),
                "{s}"
            );
            assert!(
                action.get("expected_value").is_none(),
                "no CLV, no value: {s}"
            );
            if band == "low" {
                assert_eq!(action["code"], "keep_cadence", "{s}");
            } else {
                assert_ne!(action["code"], "keep_cadence", "{s}");
            }
        }
    }
    assert_eq!(
        bands_seen.len(),
        3,
        "the training-time quantiles put accounts in every band: {bands_seen:?}"
    );
    assert!(
        factor_names.len() >= 3,
        "explanations differ between accounts: {factor_names:?}"
    );
    assert_eq!(
        scored,
        account_ids.iter().cloned().collect::<HashSet<_>>(),
        "every synced account has a score"
    );

    // A 15-character id is accepted and answered in the 18-character form; unknown accounts
    // are reported per record.
    let short = &account_ids[5][..15];
    let unknown = sextant_contracts::SalesforceId::from_parts("001", "9z", 1).to_string();
    let (status, body) = call(
        http.post(format!("{}/v1/scores", s.urls.gateway))
            .bearer_auth(&token)
            .json(&json!({"record_ids": [short, unknown]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scores"][0]["record_id"], account_ids[5].as_str());
    assert_eq!(body["errors"][0]["code"], "not_found");

    // A second model goes through the promotion gate against the first on the same evaluation.
    let (status, job) = call(
        svc.post(format!("{}/v1/jobs", s.urls.trainer))
            .json(&json!({"cutoff": "2011-09-09", "horizon_days": 90, "epochs": 2, "seed": 7})),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().expect("job id").to_owned();
    let job = loop {
        let (_, job) = call(svc.get(format!("{}/v1/jobs/{id}", s.urls.trainer))).await;
        if job["state"] == "succeeded" || job["state"] == "failed" {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["state"], "succeeded", "{job}");
    let v2 = job["model_version"].as_str().expect("version").to_owned();
    assert_ne!(v2, version);
    let (_, m2) = call(svc.get(format!("{}/v1/models/{v2}", s.urls.trainer))).await;
    let decision = &m2["promotion"];
    assert_eq!(decision["by"], "gate");
    assert_eq!(decision["compared_with"], version.as_str());
    let (cand, cur) = (
        decision["candidate_auc"].as_f64().expect("candidate auc"),
        decision["current_auc"].as_f64().expect("current auc"),
    );
    assert_eq!(decision["promoted"], cand >= cur, "{decision}");
    assert_eq!(
        m2["status"],
        if cand >= cur { "current" } else { "candidate" }
    );
    assert!(
        decision["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&version)),
        "{decision}"
    );

    // Rollback (or manual promotion): one call makes the other version current, and the
    // gateway follows.
    let (_, now) = call(svc.get(format!("{}/v1/models/current", s.urls.trainer))).await;
    let other = if now["version"] == version.as_str() {
        v2.clone()
    } else {
        version.clone()
    };
    let (status, promoted) =
        call(svc.post(format!("{}/v1/models/{other}/promote", s.urls.trainer))).await;
    assert_eq!(status, 200, "{promoted}");
    assert_eq!(promoted["status"], "current");
    assert_eq!(promoted["promotion"]["by"], "manual");
    let (_, list) = call(svc.get(format!("{}/v1/models", s.urls.trainer))).await;
    let statuses: Vec<(String, String)> = list
        .as_array()
        .expect("models")
        .iter()
        .map(|m| {
            (
                m["version"].as_str().unwrap_or("").to_owned(),
                m["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|(_, st)| st == "current").count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(other.clone(), "current".to_owned())),
        "{statuses:?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = call(
            http.post(format!("{}/v1/scores", s.urls.gateway))
                .bearer_auth(&token)
                .json(&json!({"record_ids": [account_ids[0]]})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        if body["model_version"] == other.as_str() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gateway still serves {}",
            body["model_version"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) =
        call(svc.post(format!("{}/v1/models/churn-v99/promote", s.urls.trainer))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = call(svc.post(format!(
        "{}/v1/models/not-a-version/promote",
        s.urls.trainer
    )))
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_parameter")),
        "{body}"
    );
    s.stop().await;
}

fn token_with(secret: &str, iss: &str, aud: &str, exp_offset: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims =
        json!({"iss": iss, "aud": aud, "sub": "apex", "exp": now + exp_offset, "iat": now});
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

#[tokio::test]
async fn the_gateway_refuses_unauthenticated_and_bad_requests() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = suite(&dir).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/scores", s.urls.gateway);
    let good = s.gateway_token(300).expect("token");
    let id = sextant_contracts::SalesforceId::from_parts("001", "5g", 1).to_string();
    let body = json!({"record_ids": [id]});

    let (status, b) = call(http.post(&url).json(&body)).await;
    assert_eq!(
        (status, b["code"].as_str()),
        (401, Some("unauthorized")),
        "no token"
    );
    let (status, _) = call(
        http.post(&url)
            .header("Authorization", format!("Basic {good}"))
            .json(&body),
    )
    .await;
    assert_eq!(status, 401, "not a bearer token");
    let wrong_key = token_with(
        "this-is-not-the-gateway-secret-at-all-0123456789",
        ISSUER,
        AUDIENCE,
        300,
    );
    let (status, b) = call(http.post(&url).bearer_auth(wrong_key).json(&body)).await;
    assert_eq!(
        (status, b["message"].as_str()),
        (401, Some("bad signature"))
    );
    let (status, b) = call(http.post(&url).bearer_auth("not.a.jwt").json(&body)).await;
    assert_eq!(status, 401, "{b}");
    // Signed with the right secret but expired, or for someone else.
    let secret = s.gateway_secret_for_tests();
    let (status, b) = call(
        http.post(&url)
            .bearer_auth(token_with(secret, ISSUER, AUDIENCE, -120))
            .json(&body),
    )
    .await;
    assert_eq!(
        (status, b["message"].as_str()),
        (401, Some("token expired"))
    );
    let (status, b) = call(
        http.post(&url)
            .bearer_auth(token_with(secret, ISSUER, "someone-else", 300))
            .json(&body),
    )
    .await;
    assert_eq!(
        (status, b["message"].as_str()),
        (401, Some("wrong audience"))
    );
    let (status, b) = call(
        http.post(&url)
            .bearer_auth(token_with(secret, "intruder", AUDIENCE, 300))
            .json(&body),
    )
    .await;
    assert_eq!((status, b["message"].as_str()), (401, Some("wrong issuer")));

    // Authenticated but malformed.
    let too_many: Vec<String> = (1..=201)
        .map(|n| sextant_contracts::SalesforceId::from_parts("001", "5g", n).to_string())
        .collect();
    for (payload, code) in [
        (json!({"record_ids": too_many}), "too_many_records"),
        (json!({"record_ids": []}), "empty_request"),
        (
            json!({"record_ids": ["001-not-an-id"]}),
            "invalid_record_id",
        ),
        (
            json!({"record_ids": ["001D000000IqhSLAAA"]}),
            "invalid_record_id",
        ),
        (
            json!({"record_ids": [sextant_contracts::SalesforceId::from_parts("003", "5g", 1).to_string()]}),
            "invalid_record_id",
        ),
        (json!({"ids": []}), "invalid_json"),
    ] {
        let (status, b) = call(http.post(&url).bearer_auth(&good).json(&payload)).await;
        assert_eq!(
            (status, b["code"].as_str()),
            (400, Some(code)),
            "{payload}: {b}"
        );
    }
    let resp = http
        .post(&url)
        .bearer_auth(&good)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 400);
    s.stop().await;
}

#[tokio::test]
async fn the_gateway_verifies_rs256_tokens_against_a_certificate() {
    // The way Salesforce signs Named Credential JWTs: RS256 with the org's certificate.
    let creds =
        sextant_org_sim::credentials::generate("salesforce-named-credential").expect("creds");
    let mut settings = sextant_gateway::Settings::with_auth(sextant_gateway::auth::AuthSettings {
        rs256_public_key_pem: Some(creds.certificate_pem.clone()),
        hs256_secret: None,
        leeway_secs: 0,
        ..sextant_gateway::auth::AuthSettings::new("00D5g0000000001", AUDIENCE)
    });
    settings.port = 0;
    settings.trainer_url = "http://127.0.0.1:9".into(); // nothing listens: no model
    let app = sextant_gateway::Application::build(&settings)
        .await
        .expect("starts");
    let url = format!("http://127.0.0.1:{}/v1/scores", app.port());
    tokio::spawn(app.run_until_stopped());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": "00D5g0000000001", "aud": AUDIENCE, "sub": "apex", "exp": now + 60});
    let key = EncodingKey::from_rsa_pem(creds.private_key_pem.as_bytes()).expect("key");
    let token = jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key)
        .expect("sign");
    let http = reqwest::Client::new();
    let id = sextant_contracts::SalesforceId::from_parts("001", "5g", 1).to_string();
    let (status, b) = call(
        http.post(&url)
            .bearer_auth(&token)
            .json(&json!({"record_ids": [id]})),
    )
    .await;
    // Authentication passed; the trainer is unreachable, which is a 502, never a 500.
    assert_eq!(
        (status, b["code"].as_str()),
        (502, Some("upstream_unavailable")),
        "{b}"
    );
    // A token from another key, or an HS256 token when only RS256 is configured, is refused.
    let other = sextant_org_sim::credentials::generate("other").expect("creds");
    let forged = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(other.private_key_pem.as_bytes()).expect("key"),
    )
    .expect("sign");
    let (status, _) = call(
        http.post(&url)
            .bearer_auth(forged)
            .json(&json!({"record_ids": [id]})),
    )
    .await;
    assert_eq!(status, 401);
    let hs = token_with(
        "a-secret-that-is-long-enough-for-hs256-tokens",
        "00D5g0000000001",
        AUDIENCE,
        60,
    );
    let (status, b) = call(
        http.post(&url)
            .bearer_auth(hs)
            .json(&json!({"record_ids": [id]})),
    )
    .await;
    assert_eq!(status, 401, "{b}");
}

#[tokio::test]
async fn the_demo_report_has_a_score_per_synced_account() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = suite(&dir).await;
    let report = run(
        &s,
        &DemoOptions {
            epochs: 10,
            progress: false,
            ..DemoOptions::default()
        },
    )
    .await
    .expect("demo runs");
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["accounts_synced"], 271);
    assert_eq!(json["scores"].as_array().map(Vec::len), Some(271));
    assert!(json["metrics"]["auc"].as_f64().is_some());
    assert_eq!(json["promotion"]["promoted"], true);
    assert_eq!(json["bands"].as_array().map(Vec::len), Some(3));
    let first = &json["scores"][0];
    assert!(first["band"].is_string(), "{first}");
    assert!(first["next_best_action"]["action"].is_string(), "{first}");
    let summary = sextant::demo::summary(&report);
    assert!(summary.contains("Risk bands: high"), "{summary}");

    // The sentiment model was trained first, and the store judged every synced case with it.
    let sentiment = &json["sentiment"];
    assert_eq!(sentiment["version"], "sentiment-v1", "{sentiment}");
    assert_eq!(sentiment["status"], "current", "{sentiment}");
    assert!(
        sentiment["metrics"]["weighted_f1"]
            .as_f64()
            .is_some_and(|f| f > 0.0 && f <= 1.0),
        "{sentiment}"
    );
    assert!(
        summary.contains("Sentiment model sentiment-v1"),
        "{summary}"
    );
    // The gateway serves the same model to Apex and record pages.
    let token = s.gateway_token(60).expect("token");
    let (status, answer) = call(
        reqwest::Client::new()
            .post(format!("{}/v1/sentiment", s.urls.gateway))
            .bearer_auth(&token)
            .json(&json!({"texts": [
                "The replacement arrived broken again and nobody answers.",
                "Great service, thank you!"
            ]})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["model_version"], "sentiment-v1");
    assert_eq!(
        answer["results"].as_array().map(Vec::len),
        Some(2),
        "{answer}"
    );
    // The trained model names the words behind each judgement.
    let praise = &answer["results"][1];
    assert!(
        praise["factors"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["word"] == "great" && f["effect"].as_f64().is_some_and(|e| e > 0.0)),
        "{praise}"
    );
    {
        use sea_orm::{ConnectionTrait, Database, Statement};
        let db = Database::connect(format!(
            "sqlite://{}?mode=ro",
            dir.path().join("features.sqlite").display()
        ))
        .await
        .expect("feature store database");
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT sentiment_scorer, COUNT(*) AS n FROM fs_case GROUP BY sentiment_scorer",
            ))
            .await
            .expect("cases");
        let judged: Vec<(Option<String>, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.try_get("", "sentiment_scorer").expect("scorer"),
                    r.try_get("", "n").expect("n"),
                )
            })
            .collect();
        // Every served churn score reaches the prediction log (sent in the background).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let logged: i64 = db
                .query_one_raw(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT COUNT(*) AS n FROM fs_prediction WHERE model_version LIKE 'churn-v%'",
                ))
                .await
                .expect("prediction log")
                .and_then(|r| r.try_get("", "n").ok())
                .unwrap_or(0);
            if logged >= 271 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{logged} of 271 scores logged"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert_eq!(judged.len(), 1, "one scorer judged every case: {judged:?}");
        assert_eq!(judged[0].0.as_deref(), Some("model:sentiment-v1"));
        assert!(judged[0].1 > 0, "cases were synced: {judged:?}");
    }
    assert!(
        json["model_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("churn-v"))
    );

    // The cross-sell model: trained on the store's purchase export, promoted (the first one),
    // better than popularity on the test period, and served by the gateway with reasons.
    let xs = &json["cross_sell"];
    assert_eq!(xs["card"]["version"], "cross_sell-v1", "{xs}");
    assert_eq!(xs["card"]["status"], "current", "{xs}");
    let xm = |k: &str| xs["card"]["metrics"][k].as_f64().unwrap_or(f64::NAN);
    assert!(
        xm("ndcg_at_10") > xm("popularity_ndcg_at_10"),
        "cross-sell beats popularity on the synced purchases: {xs}"
    );
    let results = xs["suggestions"]["results"].as_array().expect("results");
    assert_eq!(results.len(), 3, "{xs}");
    for r in results {
        assert_eq!(r["items"].as_array().map(Vec::len), Some(5), "{r}");
        assert!(r["next_category"][0]["category"].is_string(), "{r}");
        if r["basis"] == "history" {
            assert!(
                r["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|i| i["because"]["name"].is_string()),
                "a suggestion from history names the purchase behind it: {r}"
            );
        }
    }
    assert!(
        summary.contains("Cross-sell model cross_sell-v1"),
        "{summary}"
    );

    // The CLV model: fitted, evaluated on the holdout window, promoted (the first one), and
    // every scored account valued with sane figures.
    let clv = &json["clv"];
    let clv_version = clv["model_version"]
        .as_str()
        .expect("clv version")
        .to_owned();
    assert!(clv_version.starts_with("clv-v"), "{clv}");
    assert_eq!(clv["promotion"]["promoted"], true, "{clv}");
    let m = &clv["metrics"];
    assert!(m["n_accounts"].as_u64().is_some_and(|n| n > 100), "{m}");
    assert!(
        m["holdout_mae_purchases"]
            .as_f64()
            .is_some_and(|v| v.is_finite() && v >= 0.0),
        "{m}"
    );
    assert!(
        m["holdout_auc_any_purchase"]
            .as_f64()
            .is_some_and(|a| a > 0.55 && a < 0.99),
        "P(any purchase) ranks the holdout buyers better than chance: {m}"
    );
    assert!(
        ["bgnbd", "pareto_nbd", "nbd"].contains(&m["purchase_model"].as_str().unwrap_or("")),
        "{m}"
    );
    if m["purchase_model"] != "bgnbd" {
        assert!(clv["fallback"].is_array(), "a fallback is explained: {clv}");
    }
    let mut tiers = HashSet::new();
    let mut codes = HashSet::new();
    for sc in json["scores"].as_array().expect("scores") {
        let c = &sc["clv"];
        assert_eq!(c["status"], "available", "{sc}");
        assert_eq!(c["model_version"], clv_version.as_str());
        let value = c["value"].as_f64().expect("value");
        let p_alive = c["p_alive"].as_f64().expect("p_alive");
        assert!(value.is_finite() && value >= 0.0, "{sc}");
        assert!((0.0..=1.0).contains(&p_alive), "{sc}");
        assert!(
            c["expected_purchases"]
                .as_f64()
                .is_some_and(|v| v.is_finite() && v >= 0.0),
            "{sc}"
        );
        assert_eq!(c["horizon_months"], 12);
        tiers.insert(c["value_tier"].as_str().expect("tier").to_owned());
        let action = &sc["next_best_action"];
        let ev = action["expected_value"].as_f64().expect("expected value");
        assert!(ev.is_finite() && ev >= 0.0 && ev <= value + 1e-9, "{sc}");
        codes.insert(action["code"].as_str().expect("code").to_owned());
        if sc["band"] == "high" && c["value_tier"] == "high" {
            assert_eq!(action["code"], "retention_offer_premium", "{sc}");
        }
        if sc["band"] == "low" && c["value_tier"] != "low" {
            assert_eq!(action["code"], "cross_sell", "{sc}");
        }
    }
    assert_eq!(
        tiers.len(),
        3,
        "the training-time quantiles put accounts in every tier: {tiers:?}"
    );
    assert!(
        codes.len() >= 3,
        "the policy gives different actions: {codes:?}"
    );
    assert!(summary.contains("CLV model clv-v"), "{summary}");

    // A second CLV job on another window goes through the gate against the first; rollback is
    // one call.
    let svc = s.internal_client(Duration::from_secs(300));
    let (status, job) = call(
        svc.post(format!("{}/v1/clv/jobs", s.urls.trainer))
            .json(&json!({"cutoff": "2011-08-01", "horizon_days": 120})),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().expect("job id").to_owned();
    let job = loop {
        let (_, job) = call(svc.get(format!("{}/v1/jobs/{id}", s.urls.trainer))).await;
        if job["state"] == "succeeded" || job["state"] == "failed" {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["state"], "succeeded", "{job}");
    let v2 = job["model_version"].as_str().expect("version").to_owned();
    let (_, m2) = call(svc.get(format!("{}/v1/clv/models/{v2}", s.urls.trainer))).await;
    let decision = &m2["promotion"];
    assert_eq!(decision["by"], "gate");
    assert_eq!(decision["compared_with"], clv_version.as_str());
    assert!(
        decision["reason"]
            .as_str()
            .is_some_and(|r| r.contains("MAE") && r.contains(&clv_version)),
        "{decision}"
    );
    assert_eq!(
        m2["status"],
        if decision["promoted"] == true {
            "current"
        } else {
            "candidate"
        },
        "{m2}"
    );
    assert!(
        m2["training_set_fingerprint"]
            .as_str()
            .is_some_and(|f| f.len() == 64),
        "{m2}"
    );
    let (status, back) = call(svc.post(format!(
        "{}/v1/clv/models/{clv_version}/promote",
        s.urls.trainer
    )))
    .await;
    assert_eq!(status, 200, "{back}");
    let (_, current) = call(svc.get(format!("{}/v1/clv/models/current", s.urls.trainer))).await;
    assert_eq!(current["version"], clv_version.as_str());
    let plot = svc
        .get(format!(
            "{}/v1/clv/models/{v2}/plots/holdout.svg",
            s.urls.trainer
        ))
        .send()
        .await
        .expect("plot");
    assert_eq!(plot.headers()["content-type"], "image/svg+xml");
    let (status, body) =
        call(svc.post(format!("{}/v1/clv/models/churn-v1/promote", s.urls.trainer))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = call(
        svc.post(format!("{}/v1/clv/jobs", s.urls.trainer))
            .json(&json!({"cutoff": "2011-08-01", "horizon_days": 2})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_parameter")),
        "{body}"
    );
    s.stop().await;
}

/// An opportunity export where the stage and the amount drive the outcome (deterministic).
fn opportunity_export(rows: usize) -> String {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 10_000) as f64 / 10_000.0
    };
    let mut out = String::from("Id,Amount,StageName,IsWon\n");
    for i in 0..rows {
        let stage = ["Prospecting", "Negotiation", "Proposal"][i % 3];
        let amount = 100.0 + 900.0 * next();
        let logit = match stage {
            "Negotiation" => 1.5,
            "Proposal" => 0.0,
            _ => -1.5,
        } + (amount - 550.0) / 250.0;
        let won = next() < 1.0 / (1.0 + (-logit).exp());
        out.push_str(&format!("006{i:012},{amount:.2},{stage},{won}\n"));
    }
    out
}

#[tokio::test]
async fn a_propensity_definition_is_trained_on_the_trainer_and_scored_by_the_gateway() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = suite(&dir).await;
    let http = reqwest::Client::new();
    let svc = s.internal_client(Duration::from_secs(300));
    let (status, _) = call(
        svc.put(format!("{}/v1/propensity/win", s.urls.trainer))
            .json(&json!({
                "object": "Opportunity",
                "label_field": "IsWon",
                "label": {"rule": "values", "positive": ["true"]},
                "features": ["Amount", "StageName"]
            })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, job) = call(
        svc.post(format!("{}/v1/propensity/win/jobs", s.urls.trainer))
            .header("content-type", "text/csv")
            .body(opportunity_export(400)),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    let mut done = Value::Null;
    for _ in 0..600 {
        let (_, j) = call(svc.get(format!("{}/v1/jobs/{id}", s.urls.trainer))).await;
        if j["state"] == "succeeded" || j["state"] == "failed" {
            done = j;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(done["state"], "succeeded", "{done}");

    // The gateway finds the new definition on its next listing and serves its model.
    let token = s.gateway_token(120).expect("token");
    let body = json!({"records": [
        {"Id": "006000000000901", "Amount": 950, "StageName": "Negotiation"},
        {"Id": "006000000000902", "Amount": "120", "StageName": "Prospecting"},
        {"Id": "006000000000903", "Amount": "lots", "StageName": "Proposal"}
    ]});
    let mut answer = Value::Null;
    for _ in 0..150 {
        let (status, a) = call(
            http.post(format!("{}/v1/propensity/win/scores", s.urls.gateway))
                .bearer_auth(&token)
                .json(&body),
        )
        .await;
        if status == 200 {
            answer = a;
            break;
        }
        assert_eq!((status, a["code"].as_str()), (404, Some("no_model")), "{a}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(answer["model_version"], "win-v1", "{answer}");
    let scores = answer["scores"].as_array().expect("scores");
    assert_eq!(scores.len(), 2, "{answer}");
    assert_eq!(scores[0]["record_id"], "006000000000901");
    assert!(
        scores[0]["score"].as_f64() > scores[1]["score"].as_f64(),
        "a late-stage large deal is likelier to be won: {answer}"
    );
    assert!(
        scores[0]["factors"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "{answer}"
    );
    assert_eq!(answer["errors"][0]["index"], 2, "{answer}");
    assert_eq!(answer["errors"][0]["code"], "invalid_record");

    let (status, a) = call(
        http.post(format!("{}/v1/propensity/nothing/scores", s.urls.gateway))
            .bearer_auth(&token)
            .json(&body),
    )
    .await;
    assert_eq!((status, a["code"].as_str()), (404, Some("no_model")));
}
