//! The `sextant` binary itself: the demo's JSON contract, `serve` configured from the
//! environment the way the Helm chart configures it, and a clear exit on bad configuration.

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
}

#[test]
fn serve_reads_its_settings_from_the_environment() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut child = sextant()
        .args(["serve", "feature-store"])
        .env("SEXTANT_FEATURE_STORE__PORT", port.to_string())
        .env("DATABASE_URL", "sqlite::memory:")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ready = false;
    while Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ =
                stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                ready = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ready,
        "the feature store answered /readyz on the configured port"
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
