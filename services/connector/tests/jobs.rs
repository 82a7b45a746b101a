//! Syncs as background jobs over HTTP: 202 + job id, progress, a transient 503 that no longer
//! aborts the sync, cancellation, and a re-run after a cancelled sync ending with exactly the
//! source's rows. The feature store is a stand-in that keeps the ids it was given.

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use serde_json::Value;
use sextant_connector::{Application, SalesforceSettings, Settings};
use sextant_contracts::api::{IngestRequest, IngestResponse};
use sextant_contracts::time::system_clock;
use sextant_org_sim::credentials::generate;
use sextant_org_sim::data::OrgData;
use sextant_org_sim::faults::{Fault, FaultRule};
use sextant_org_sim::{OrgSim, OrgSimConfig, RunningOrgSim};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Stored = Arc<Mutex<BTreeMap<String, HashSet<String>>>>;

const CLIENT_ID: &str = "3MVG9connector.jobs";
const USERNAME: &str = "integration@example.com";

async fn ingest(
    stored: web::Data<Stored>,
    body: web::Json<IngestRequest>,
) -> web::Json<IngestResponse> {
    let req = body.into_inner();
    let object = req.object.as_str().to_owned();
    let mut written = 0;
    {
        let mut map = stored
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ids = map.entry(object).or_default();
        for r in &req.records {
            if let Some(id) = r.get("id").and_then(Value::as_str)
                && ids.insert(id.to_owned())
            {
                written += 1;
            }
        }
    }
    let received = req.records.len() as u64;
    web::Json(IngestResponse {
        object: req.object,
        received,
        written,
        unchanged: received - written,
        rejected: Vec::new(),
        accounts_refreshed: 0,
    })
}

async fn setup() -> Result<(RunningOrgSim, String, Stored, OrgData), Box<dyn std::error::Error>> {
    let creds = generate("jobs-test")?;
    let mut config = OrgSimConfig::new(CLIENT_ID, USERNAME, &creds.certificate_pem);
    config.batch_size = 2000;
    let data = OrgData::embedded_sample()?;
    let (org, server) = OrgSim::start(
        config,
        data.clone(),
        system_clock(),
        TcpListener::bind("127.0.0.1:0")?,
    )?;
    tokio::spawn(server);

    let stored: Stored = Arc::default();
    let store_data = web::Data::new(stored.clone());
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let store_url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let store = HttpServer::new(move || {
        App::new()
            .app_data(store_data.clone())
            .app_data(web::JsonConfig::default().limit(64 << 20))
            .route("/v1/ingest", web::post().to(ingest))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tokio::spawn(store);

    let dir = tempfile::tempdir()?;
    let key_path = dir.path().join("key.pem");
    std::fs::write(&key_path, &creds.private_key_pem)?;
    let mut settings = Settings::with_salesforce(SalesforceSettings {
        login_url: org.base_url.clone(),
        audience: None,
        client_id: CLIENT_ID.into(),
        username: USERNAME.into(),
        private_key_path: key_path,
        api_version: "62.0".into(),
    });
    settings.port = 0;
    settings.feature_store_url = store_url;
    let app = Application::build(&settings, system_clock()).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    // The key file is read at start; the directory may go.
    drop(dir);
    Ok((org, url, stored, data))
}

async fn wait_done(
    http: &reqwest::Client,
    url: &str,
    id: &str,
) -> Result<Value, Box<dyn std::error::Error>> {
    for _ in 0..600 {
        let job: Value = http
            .get(format!("{url}/v1/syncs/{id}"))
            .send()
            .await?
            .json()
            .await?;
        if job["state"] != "running" {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the job did not finish in 60 s".into())
}

/// Rows of the objects a default sync reads (the built-ins; the org also holds a custom object
/// that only a configured mapping syncs).
fn source_total(data: &OrgData) -> u64 {
    let counts = data.counts();
    sextant_connector::mapping::OBJECTS
        .iter()
        .map(|(o, _)| counts.get(*o).copied().unwrap_or(0) as u64)
        .sum()
}

fn stored_total(stored: &Stored) -> u64 {
    stored
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .values()
        .map(|ids| ids.len() as u64)
        .sum()
}

#[tokio::test]
async fn a_sync_job_runs_in_the_background_and_survives_a_transient_503() -> TestResult {
    let (org, url, stored, data) = setup().await?;
    let http = reqwest::Client::new();
    // One transient failure in the middle of the sync (the third SOQL call).
    org.inject(FaultRule::new(
        "/services/data/v62.0/query",
        1,
        Fault::unavailable(),
    ));
    let resp = http.post(format!("{url}/v1/syncs")).send().await?;
    assert_eq!(resp.status(), 202);
    let job: Value = resp.json().await?;
    let id = job["id"].as_str().ok_or("no id")?.to_owned();
    assert_eq!(job["state"], "running");
    let done = wait_done(&http, &url, &id).await?;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["progress"]["objects_done"], 6);
    assert_eq!(done["progress"]["rows"].as_u64(), Some(source_total(&data)));
    assert!(done["progress"]["pages"].as_u64().is_some_and(|p| p >= 6));
    assert!(
        done["progress"]["api_calls"]
            .as_u64()
            .is_some_and(|c| c > done["progress"]["pages"].as_u64().unwrap_or(0)),
        "the retry is counted: {done}"
    );
    assert_eq!(stored_total(&stored), source_total(&data));

    let list: Vec<Value> = http
        .get(format!("{url}/v1/syncs"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(list.len(), 1);
    let missing = http.get(format!("{url}/v1/syncs/nope")).send().await?;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await?;
    assert_eq!(body["code"], "not_found");
    Ok(())
}

#[tokio::test]
async fn a_cancelled_sync_rerun_ends_with_exactly_the_source_rows() -> TestResult {
    let (org, url, stored, data) = setup().await?;
    let http = reqwest::Client::new();
    // Slow pages so the cancel lands part-way.
    org.inject(FaultRule::new(
        "/query",
        3,
        Fault::Delay(Duration::from_millis(400)),
    ));
    let job: Value = http
        .post(format!("{url}/v1/syncs"))
        .send()
        .await?
        .json()
        .await?;
    let id = job["id"].as_str().ok_or("no id")?.to_owned();
    // A second start while one runs is refused.
    let again = http.post(format!("{url}/v1/syncs")).send().await?;
    assert_eq!(again.status(), 409);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let resp = http
        .post(format!("{url}/v1/syncs/{id}/cancel"))
        .send()
        .await?;
    assert_eq!(resp.status(), 202);
    let done = wait_done(&http, &url, &id).await?;
    assert_eq!(done["state"], "cancelled", "{done}");
    let partial = stored_total(&stored);
    assert!(
        partial < source_total(&data),
        "cancelled part-way: {partial}"
    );

    let job: Value = http
        .post(format!("{url}/v1/syncs"))
        .send()
        .await?
        .json()
        .await?;
    let id2 = job["id"].as_str().ok_or("no id")?.to_owned();
    assert_ne!(id, id2);
    let done = wait_done(&http, &url, &id2).await?;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        stored_total(&stored),
        source_total(&data),
        "no record lost or duplicated"
    );
    Ok(())
}
