//! The console against the real suite on loopback (org simulator and the four services): the
//! token guards every `/api/` call, the overview reads each service and survives one being
//! down, and the actions reach the services and pass their answers through.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use sextant::suite::{Suite, SuiteOptions};

const TOKEN: &str = "console-test-admin-token-0123456789";

fn admin(suite: &Suite, connector_url: Option<&str>) -> (String, actix_web::dev::ServerHandle) {
    admin_with(suite, connector_url, Some(suite.internal_token_for_tests()))
}

/// A console whose calls carry internal tokens signed with `internal_key` (none: no token).
fn admin_with(
    suite: &Suite,
    connector_url: Option<&str>,
    internal_key: Option<&str>,
) -> (String, actix_web::dev::ServerHandle) {
    let mut s = sextant_admin::Settings::with_token(SecretString::from(TOKEN));
    s.internal_token = internal_key.map(|k| SecretString::from(k.to_owned()));
    s.port = 0;
    s.connector_url = connector_url.unwrap_or(&suite.urls.connector).to_owned();
    s.trainer_url = suite.urls.trainer.clone();
    s.gateway_url = suite.urls.gateway.clone();
    let app = sextant_admin::Application::build(&s).expect("admin starts");
    let url = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    (url, handle)
}

async fn overview(http: &reqwest::Client, base: &str) -> Value {
    let resp = http
        .get(format!("{base}/api/overview"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("overview");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

#[tokio::test]
async fn console_reads_and_acts_on_the_suite_over_http() {
    let dir = std::env::temp_dir().join(format!("sextant-admin-test-{}", std::process::id()));
    let suite = Suite::start(&SuiteOptions {
        data_dir: dir.clone(),
        today: chrono::NaiveDate::from_ymd_opt(2011, 12, 10).expect("date"),
        batch_size: 2000,
    })
    .await
    .expect("suite");
    let (base, handle) = admin(&suite, None);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    // The page and its script are public and carry a strict CSP; the API is not.
    let page = http.get(format!("{base}/")).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(page.text().await.expect("body").contains("id=\"models\""));
    for auth in [
        None,
        Some("Bearer wrong-token-wrong-token-wrong"),
        Some(TOKEN),
    ] {
        let mut rb = http.get(format!("{base}/api/overview"));
        if let Some(a) = auth {
            rb = rb.header("Authorization", a); // a bare token, without "Bearer ", is refused too
        }
        let resp = rb.send().await.expect("call");
        assert_eq!(resp.status(), 401, "{auth:?}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["code"], "unauthorized");
        assert!(!body.to_string().contains(TOKEN));
    }

    // A scoring call without a token: the gateway refuses it, and its request counter shows it.
    let refused = http
        .post(format!("{}/v1/scores", suite.urls.gateway))
        .json(&serde_json::json!({"record_ids": ["001000000000001AAA"]}))
        .send()
        .await
        .expect("score");
    assert_eq!(refused.status(), 401);

    let o = overview(&http, &base).await;
    assert_eq!(o["syncs"]["ok"], true, "{o}");
    assert_eq!(o["models"]["ok"], true, "{o}");
    assert_eq!(o["models"]["data"], serde_json::json!([]), "{o}");
    assert_eq!(o["gateway"]["ok"], true, "{o}");
    assert_eq!(o["gateway"]["data"]["alive"], true, "{o}");
    assert_eq!(o["gateway"]["data"]["ready"], false, "{o}");
    assert_eq!(o["gateway"]["data"]["scores_requests"]["4xx"], 1.0, "{o}");

    // A console without the deployment's internal key is refused by the connector and trainer
    // (the suite enforces internal tokens), and says so in its panels.
    let (unkeyed, unkeyed_handle) = admin_with(&suite, None, None);
    let o = overview(&http, &unkeyed).await;
    for panel in ["syncs", "models"] {
        assert_eq!(o[panel]["ok"], false, "{o}");
        assert!(
            o[panel]["error"]
                .as_str()
                .unwrap_or_default()
                .contains("401"),
            "{o}"
        );
    }
    unkeyed_handle.stop(true).await;

    // Start a sync through the console: the connector's job shows up in the overview.
    let started = http
        .post(format!("{base}/api/syncs"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("start sync");
    assert_eq!(started.status(), 202);
    let job: Value = started.json().await.expect("job");
    let id = job["id"].as_str().expect("job id").to_owned();
    let mut state = String::new();
    for _ in 0..600 {
        let o = overview(&http, &base).await;
        let jobs = o["syncs"]["data"].as_array().cloned().unwrap_or_default();
        if let Some(j) = jobs.iter().find(|j| j["id"] == id.as_str()) {
            state = j["state"].as_str().unwrap_or_default().to_owned();
            if state != "queued" && state != "running" {
                assert!(j["progress"]["api_calls"].as_u64().unwrap_or(0) > 0, "{j}");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "succeeded");

    // Promotion of a version the trainer does not have: its 404 is passed through.
    let missing = http
        .post(format!("{base}/api/models/churn-v999/promote"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("promote");
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["code"], "not_found", "{body}");
    // A malformed version never reaches the trainer.
    let bad = http
        .post(format!("{base}/api/models/churn%2F..%2Fx/promote"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("promote");
    assert_eq!(bad.status(), 400);
    let bad_plot = http
        .get(format!("{base}/api/models/churn-v1/plots/..%2Fconfig.json"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("plot");
    assert_eq!(bad_plot.status(), 400);

    // With the connector unreachable, its panel says so and the rest still answers.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://127.0.0.1:{}", l.local_addr().expect("addr").port())
    };
    let (base2, handle2) = admin(&suite, Some(&dead));
    let o = overview(&http, &base2).await;
    assert_eq!(o["syncs"]["ok"], false, "{o}");
    assert_eq!(o["syncs"]["error"], "the connector is unavailable", "{o}");
    assert_eq!(o["models"]["ok"], true, "{o}");
    let sync = http
        .post(format!("{base2}/api/syncs"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("start sync");
    assert_eq!(sync.status(), 502);

    // The console has its own /metrics, like every service.
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            "sextant_http_requests_total{method=\"GET\",route=\"/api/overview\",status=\"4xx\"} 3"
        ),
        "{metrics}"
    );

    handle.stop(true).await;
    handle2.stop(true).await;
    suite.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_committed_openapi_document_matches_the_code() {
    sextant_service_kit::openapi::assert_committed(&sextant_admin::api::openapi(), "admin");
}

#[test]
fn refuses_weak_tokens_and_bad_urls() {
    let weak = sextant_admin::Settings::with_token(SecretString::from("short"));
    assert!(matches!(
        sextant_admin::Application::build(&weak),
        Err(sextant_admin::StartError::WeakToken { .. })
    ));
    let mut bad = sextant_admin::Settings::with_token(SecretString::from(TOKEN));
    bad.trainer_url = "ftp://trainer".into();
    assert!(matches!(
        sextant_admin::Application::build(&bad),
        Err(sextant_admin::StartError::BadUrl { .. })
    ));
}
