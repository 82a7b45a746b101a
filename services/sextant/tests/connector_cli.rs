//! `sextant sync …` / `sextant writeback …` against a connector on a loopback port: argument
//! errors exit 2 before anything is sent, a refused request exits 3 with the connector's code,
//! an unreachable connector exits 4, a sync followed with `--wait` exits 0, and a write-back
//! with a failed record exits 1 and lists it with its reason.

use std::net::TcpListener;
use std::process::{Command, Output};

use actix_web::{App, HttpServer, web};
use serde_json::Value;
use sextant_connector::{Application, SalesforceSettings, Settings};
use sextant_contracts::api::{IngestRequest, IngestResponse};
use sextant_contracts::time::system_clock;
use sextant_org_sim::credentials::generate;
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSim, OrgSimConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn sextant(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sextant"));
    c.env_remove("RUST_LOG")
        .env_remove("SEXTANT_CONNECTOR_URL")
        .env_remove("SEXTANT_INTERNAL_TOKEN")
        .args(args);
    match c.output() {
        Ok(o) => o,
        Err(e) => panic!("running sextant: {e}"),
    }
}

async fn run(args: Vec<String>) -> Output {
    match tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        sextant(&refs)
    })
    .await
    {
        Ok(o) => o,
        Err(e) => panic!("joining: {e}"),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn argument_errors_exit_2_and_an_unreachable_connector_exits_4() {
    for args in [
        vec!["sync"],
        vec!["sync", "start", "--bogus"],
        vec!["writeback", "start"],
        vec!["sync", "list", "--limit", "many"],
    ] {
        let out = sextant(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("scores.csv");
    std::fs::write(&bad, "id,score\n001000000000000AAA,high\n").expect("write");
    let out = sextant(&[
        "writeback",
        "start",
        "--scores",
        bad.to_str().unwrap_or_default(),
        "--connector-url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("line 2"),
        "{}",
        text(&out.stderr)
    );
    let out = sextant(&["writeback", "start", "--scores", "/no/such/file.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/no/such/file.csv"));
    let out = sextant(&["sync", "list", "--connector-url", "ftp://example.com"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // Nothing listens on port 9 of loopback.
    let out = sextant(&["sync", "list", "--connector-url", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("cannot reach the connector"));
}

/// The deployment's internal key in this test: the connector requires tokens signed with it, and
/// the stand-in store below refuses ingests without one, as the real store does.
const INTERNAL_KEY: &str = "cli-test-internal-key-0123456789abcdef";

async fn ingest(
    http: actix_web::HttpRequest,
    body: web::Json<IngestRequest>,
) -> actix_web::Result<web::Json<IngestResponse>> {
    use sextant_service_kit::internal_auth::{InternalKey, InternalVerifier};
    let key = InternalKey::new(secrecy::SecretString::from(INTERNAL_KEY.to_owned()))
        .map_err(actix_web::error::ErrorInternalServerError)?;
    let header = http
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    InternalVerifier::new(key)
        .verify(header)
        .map_err(actix_web::error::ErrorUnauthorized)?;
    let req = body.into_inner();
    let n = (req.records.len() + req.deletions.len()) as u64;
    Ok(web::Json(IngestResponse {
        object: req.object,
        received: n,
        written: n,
        unchanged: 0,
        rejected: Vec::new(),
        accounts_refreshed: 0,
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_and_write_back_through_a_running_connector() -> TestResult {
    let creds = generate("cli-test")?;
    let (org, server) = OrgSim::start(
        OrgSimConfig::new("3MVG9cli", "cli@example.com", &creds.certificate_pem),
        OrgData::embedded_sample()?,
        system_clock(),
        TcpListener::bind("127.0.0.1:0")?,
    )?;
    tokio::spawn(server);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let store_url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let store = HttpServer::new(|| {
        App::new()
            .app_data(web::JsonConfig::default().limit(64 << 20))
            .route("/v1/ingest", web::post().to(ingest))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tokio::spawn(store);
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("key.pem");
    std::fs::write(&key, &creds.private_key_pem)?;
    let mut settings = Settings::with_salesforce(SalesforceSettings {
        login_url: org.base_url.clone(),
        audience: None,
        client_id: "3MVG9cli".into(),
        username: "cli@example.com".into(),
        private_key_path: key,
        api_version: "62.0".into(),
    });
    settings.port = 0;
    settings.feature_store_url = store_url;
    settings.internal_token = Some(secrecy::SecretString::from(INTERNAL_KEY.to_owned()));
    let app = Application::build(&settings, system_clock()).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let without_key = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        v.push("--connector-url".into());
        v.push(url.clone());
        v
    };
    let with_url = |args: &[&str]| -> Vec<String> {
        let mut v = without_key(args);
        v.push("--internal-token".into());
        v.push(INTERNAL_KEY.into());
        v
    };

    // The connector requires internal tokens: without the key the CLI is refused (exit 3, the
    // connector's code); a too-short key is an argument error.
    let out = run(without_key(&["sync", "list"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("unauthorized"),
        "{}",
        text(&out.stderr)
    );
    let mut short = without_key(&["sync", "list"]);
    short.extend(["--internal-token".to_owned(), "short".to_owned()]);
    let out = run(short).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("at least 32"),
        "{}",
        text(&out.stderr)
    );
    // `sextant internal-token` prints a token an admin can call the API with by hand.
    let out = run(vec![
        "internal-token".into(),
        "--key".into(),
        INTERNAL_KEY.into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let resp = reqwest::Client::new()
        .get(format!("{url}/v1/syncs"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);

    let out = run(with_url(&[
        "sync",
        "start",
        "--wait",
        "--json",
        "--poll-ms",
        "50",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let job: Value = serde_json::from_str(text(&out.stdout).trim())?;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["progress"]["objects_done"], 6);
    let id = job["id"].as_str().ok_or("id")?.to_owned();

    let out = run(with_url(&["sync", "status", &id])).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains(&id) && text(&out.stdout).contains("succeeded"));
    let out = run(with_url(&["sync", "list"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains(&id));
    let out = run(with_url(&["sync", "schedule"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("no schedule"),
        "{}",
        text(&out.stdout)
    );

    // Refused by the connector: its code is shown, exit 3.
    let out = run(with_url(&["sync", "start", "--object", "Opportunity"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("invalid_parameter"),
        "{}",
        text(&out.stderr)
    );
    let out = run(with_url(&["sync", "status", "sync-nope"])).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("not_found"));

    // A write-back with one unknown record: written and failed listed, exit 1.
    let ids: Vec<String> = org
        .data()
        .object("Account")
        .ok_or("accounts")?
        .rows
        .iter()
        .take(3)
        .filter_map(|r| r["Id"].as_str().map(str::to_owned))
        .collect();
    let scores = dir.path().join("scores.csv");
    std::fs::write(
        &scores,
        format!(
            "id,score\n{},0.1\n{},0.2\n{},0.3\n001000000000000AAA,0.9\n",
            ids[0], ids[1], ids[2]
        ),
    )?;
    let scores_path = scores.to_str().ok_or("path")?.to_owned();
    let out = run(with_url(&[
        "writeback",
        "start",
        "--scores",
        &scores_path,
        "--model-version",
        "churn-v3",
        "--wait",
        "--poll-ms",
        "50",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("3 written, 1 failed of 4"), "{stdout}");
    assert!(
        stdout.contains("failed 001000000000000AAA: INVALID_CROSS_REFERENCE_KEY"),
        "{stdout}"
    );
    let acc = org.record("Account", &ids[1]).ok_or("account")?;
    assert_eq!(acc["Churn_Score__c"], 0.2);
    assert_eq!(acc["Sextant_Model_Version__c"], "churn-v3");
    let out = run(with_url(&["writeback", "list", "--json"])).await;
    assert_eq!(out.status.code(), Some(0));
    let list: Value = serde_json::from_str(text(&out.stdout).trim())?;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    Ok(())
}
