//! The `sextant` binary itself: the demo's JSON contract, `serve` configured from the
//! environment the way the Helm chart configures it (the admin console included), and a clear
//! exit on bad configuration.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sextant() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sextant"));
    c.env_remove("RUST_LOG");
    c
}

#[test]
fn demo_once_json_prints_one_object_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = sextant()
        .args(["demo", "--once", "--json", "--epochs", "40", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one JSON object on one line"
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(report["accounts_synced"], 271);
    assert!(
        report["model_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("churn-v"))
    );
    assert!(
        report["metrics"]["auc"]
            .as_f64()
            .is_some_and(|a| (0.0..=1.0).contains(&a))
    );
    let scores = report["scores"].as_array().expect("scores");
    assert_eq!(scores.len(), 271);
    assert!(
        scores
            .iter()
            .all(|s| s["record_id"].is_string() && s["score"].is_f64())
    );
    assert!(
        dir.path()
            .join("models/churn")
            .join(report["model_version"].as_str().unwrap_or("?"))
            .join("roc.svg")
            .exists()
    );
    // The CLV model is part of the contract: its version, plot, and a value per account.
    let clv_version = report["clv"]["model_version"].as_str().unwrap_or("?");
    assert!(clv_version.starts_with("clv-v"), "{}", report["clv"]);
    assert!(
        dir.path()
            .join("models/clv")
            .join(clv_version)
            .join("holdout.svg")
            .exists()
    );
    assert!(scores.iter().all(|s| {
        let c = &s["clv"];
        c["status"] == "available"
            && c["p_alive"]
                .as_f64()
                .is_some_and(|p| (0.0..=1.0).contains(&p))
            && c["value"]
                .as_f64()
                .is_some_and(|v| v.is_finite() && v >= 0.0)
    }));
}

#[test]
fn serve_reads_its_settings_from_the_environment() {
    let port = free_port();
    let mut child = sextant()
        .args(["serve", "feature-store"])
        .env("SEXTANT_FEATURE_STORE__PORT", port.to_string())
        .env("DATABASE_URL", "sqlite::memory:")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let ready = answers_200(port, "/readyz");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ready,
        "the feature store answered /readyz on the configured port"
    );
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Whether `GET path` on `port` answers 200 within 30 s (polled every 100 ms).
fn answers_200(port: u16, path: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http_get(port, path, None).starts_with("HTTP/1.1 200") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// One HTTP/1.1 GET on loopback; the whole answer (status line, headers, body), or "" when
/// nothing listens yet.
fn http_get(port: u16, path: &str, bearer: Option<&str>) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let _ = stream.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
    );
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn serve_admin_runs_the_console_the_chart_configures() {
    let port = free_port();
    let token = "cli-test-admin-token-0123456789";
    let mut child = sextant()
        .args(["serve", "admin"])
        .env("SEXTANT_ADMIN__HOST", "127.0.0.1")
        .env("SEXTANT_ADMIN__PORT", port.to_string())
        .env("SEXTANT_ADMIN__ADMIN_TOKEN", token)
        // Nothing listens there: the console starts anyway and reports each upstream's state.
        .env("SEXTANT_ADMIN__CONNECTOR_URL", "http://127.0.0.1:9")
        .env("SEXTANT_ADMIN__TRAINER_URL", "http://127.0.0.1:9")
        .env("SEXTANT_ADMIN__GATEWAY_URL", "http://127.0.0.1:9")
        .env("SEXTANT_ADMIN__UPSTREAM_TIMEOUT_SECS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let healthy = answers_200(port, "/healthz");
    let anonymous = http_get(port, "/api/overview", None);
    let wrong = http_get(
        port,
        "/api/overview",
        Some("not-the-admin-token-at-all-0000"),
    );
    let admin = http_get(port, "/api/overview", Some(token));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        healthy,
        "the console answered /healthz on the configured port"
    );
    for answer in [&anonymous, &wrong] {
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(answer.contains("\"unauthorized\""), "{answer}");
    }
    assert!(admin.starts_with("HTTP/1.1 200"), "{admin}");
}

#[test]
fn a_service_accepts_the_previous_internal_key_the_chart_passes_during_rotation() {
    use sextant_service_kit::internal_auth::{InternalKey, mint};
    const CURRENT: &str = "rotation-test-current-key-0123456789abc";
    const PREVIOUS: &str = "rotation-test-previous-key-0123456789ab";
    const RETIRED: &str = "rotation-test-retired-key-0123456789abc";
    let port = free_port();
    let mut child = sextant()
        .args(["serve", "feature-store"])
        .env("SEXTANT_FEATURE_STORE__PORT", port.to_string())
        .env("DATABASE_URL", "sqlite::memory:")
        // The variables the chart sets from its Secret.
        .env("SEXTANT_FEATURE_STORE__INTERNAL_TOKEN", CURRENT)
        .env("SEXTANT_FEATURE_STORE__INTERNAL_TOKEN_PREVIOUS", PREVIOUS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    answers_200(port, "/healthz");
    let token = |key: &str| {
        let key = InternalKey::new(secrecy::SecretString::from(key.to_owned())).expect("key");
        mint(&key, "test", chrono::Utc::now().timestamp(), 60).expect("mint")
    };
    // Past the guard an unknown route is 404; refused by it, 401.
    let previous = http_get(port, "/v1/nothing", Some(&token(PREVIOUS)));
    let current = http_get(port, "/v1/nothing", Some(&token(CURRENT)));
    let retired = http_get(port, "/v1/nothing", Some(&token(RETIRED)));
    let _ = child.kill();
    let _ = child.wait();
    assert!(previous.starts_with("HTTP/1.1 404"), "{previous}");
    assert!(current.starts_with("HTTP/1.1 404"), "{current}");
    assert!(retired.starts_with("HTTP/1.1 401"), "{retired}");
    assert!(retired.contains("(kid)"), "{retired}");
}

#[test]
fn an_admin_console_with_a_short_token_refuses_to_start_with_a_message() {
    let out = sextant()
        .args(["serve", "admin"])
        .env("SEXTANT_ADMIN__PORT", "0")
        .env("SEXTANT_ADMIN__ADMIN_TOKEN", "weak-token-xyz")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("admin_token must be at least 24 characters"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("weak-token-xyz"),
        "the token is never echoed: {stderr}"
    );
}

#[test]
fn a_gateway_without_a_key_refuses_to_start_with_a_message() {
    let out = sextant()
        .args(["serve", "gateway"])
        .env("SEXTANT_GATEWAY__PORT", "0")
        .env("SEXTANT_GATEWAY__AUTH__ISSUER", "salesforce")
        .env("SEXTANT_GATEWAY__AUTH__AUDIENCE", "sextant-gateway")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no verification key"), "{stderr}");
}

#[test]
fn evaluate_sentiment_saves_the_deployable_model_the_feature_store_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("labelled.txt");
    let mut text = String::new();
    for i in 0..90 {
        let (mean, words) = match i % 3 {
            0 => (-3.0, "terrible broken refund"),
            1 => (3.0, "great lovely works"),
            _ => (0.0, "arrived on tuesday"),
        };
        text.push_str(&format!("{i}\t{mean}\t{words} {i}\n"));
    }
    std::fs::write(&data, text).expect("write");
    let model = dir.path().join("sentiment.json");
    let out = sextant()
        .args(["evaluate", "sentiment", "--json", "--data"])
        .arg(&data)
        .arg("--save-model")
        .arg(&model)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(eval["task"], "sentiment");
    let artifact: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&model).expect("model written")).expect("JSON");
    let version = artifact["version"].as_str().expect("version");
    assert!(version.starts_with("sentiment-"), "{version}");
    assert!(stderr.contains("sentiment_model_url = file://"), "{stderr}");

    // Only sentiment has a deployable text model to save.
    let out = sextant()
        .args(["evaluate", "churn", "--data"])
        .arg(&data)
        .arg("--save-model")
        .arg(dir.path().join("x.json"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--save-model is for `evaluate sentiment` only"),
        "{stderr}"
    );
}
