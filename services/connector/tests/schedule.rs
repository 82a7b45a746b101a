//! Scheduled incremental syncs with an injected clock: the next run is computed from the last
//! slot stored in the database, so two replicas run a slot once, a restart neither skips a slot
//! that fell due while it was down nor runs one again, missed slots fold into one run, and an
//! invalid cron expression stops the start-up with a clear error.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sextant_connector::{Application, ConnectorHandle, SalesforceSettings, Settings, StartError};
use sextant_contracts::api::{IngestRequest, IngestResponse};
use sextant_contracts::time::{Clock, SharedClock};
use sextant_org_sim::credentials::generate;
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSim, OrgSimConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CLIENT_ID: &str = "3MVG9connector.schedule";
const USERNAME: &str = "integration@example.com";

/// A clock the test moves.
#[derive(Debug)]
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn set(&self, t: DateTime<Utc>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = t;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, h, m, s)
        .single()
        .unwrap_or_default()
}

async fn ingest(body: web::Json<IngestRequest>) -> web::Json<IngestResponse> {
    let req = body.into_inner();
    let n = (req.records.len() + req.deletions.len()) as u64;
    web::Json(IngestResponse {
        object: req.object,
        received: n,
        written: n,
        unchanged: 0,
        rejected: Vec::new(),
        accounts_refreshed: 0,
    })
}

fn feature_store() -> Result<String, Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let server = HttpServer::new(|| {
        App::new()
            .app_data(web::JsonConfig::default().limit(64 << 20))
            .route("/v1/ingest", web::post().to(ingest))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok(url)
}

struct Replica {
    url: String,
    handle: ConnectorHandle,
}

async fn replica(
    settings: &Settings,
    clock: SharedClock,
) -> Result<Replica, Box<dyn std::error::Error>> {
    let (app, handle) = Application::build_with_handle(settings, clock).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Ok(Replica { url, handle })
}

async fn jobs(http: &reqwest::Client, url: &str) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    Ok(http
        .get(format!("{url}/v1/syncs"))
        .send()
        .await?
        .json()
        .await?)
}

/// Waits until `count` jobs exist and none is running; then a few more checks of the schedule
/// pass, so a second (wrong) run would show.
async fn settle(
    http: &reqwest::Client,
    url: &str,
    count: usize,
) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    for _ in 0..600 {
        let list = jobs(http, url).await?;
        if list.len() >= count && list.iter().all(|j| j["state"] != "running") {
            tokio::time::sleep(Duration::from_millis(400)).await;
            return jobs(http, url).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{count} finished jobs did not appear in 30 s").into())
}

fn slot_of(job: &Value) -> Option<DateTime<Utc>> {
    job["scheduled_for"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

#[tokio::test]
async fn each_slot_runs_once_across_replicas_and_restarts() -> TestResult {
    let clock = Arc::new(TestClock(Mutex::new(at(10, 2, 0))));
    let shared: SharedClock = clock.clone();
    let creds = generate("schedule-test")?;
    let (org, server) = OrgSim::start(
        OrgSimConfig::new(CLIENT_ID, USERNAME, &creds.certificate_pem),
        OrgData::embedded_sample()?,
        shared.clone(),
        TcpListener::bind("127.0.0.1:0")?,
    )?;
    tokio::spawn(server);
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
    settings.feature_store_url = feature_store()?;
    settings.database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("connector.sqlite").display()
    );
    settings.schedule = Some("*/5 * * * *".into());
    settings.schedule_check_ms = 30;
    let http = reqwest::Client::new();

    // The schedule starts when first seen: nothing runs at once; the next slot is 10:05.
    let a = replica(&settings, shared.clone()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status: Value = http
        .get(format!("{}/v1/org", a.url))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(status["schedule"]["cron"], "*/5 * * * *", "{status}");
    assert_eq!(
        status["schedule"]["next_run_at"], "2026-03-02T10:05:00Z",
        "{status}"
    );
    assert!(jobs(&http, &a.url).await?.is_empty());

    // Two replicas on one database: the 10:05 slot runs once.
    let b = replica(&settings, shared.clone()).await?;
    clock.set(at(10, 5, 1));
    let list = settle(&http, &b.url, 1).await?;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["state"], "succeeded", "{}", list[0]);
    assert_eq!(slot_of(&list[0]), Some(at(10, 5, 0)));
    let status: Value = http
        .get(format!("{}/v1/org", a.url))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        status["schedule"]["next_run_at"], "2026-03-02T10:10:00Z",
        "{status}"
    );
    assert_eq!(status["schedule"]["last_job_id"], list[0]["id"]);

    // Both stop before 10:10 and a connector comes back after it: the slot still runs.
    clock.set(at(10, 9, 50));
    a.handle.abort_background();
    b.handle.abort_background();
    clock.set(at(10, 10, 20));
    let c = replica(&settings, shared.clone()).await?;
    let list = settle(&http, &c.url, 2).await?;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(slot_of(&list[0]), Some(at(10, 10, 0)));

    // A restart right after a slot ran does not run it again.
    c.handle.abort_background();
    clock.set(at(10, 11, 0));
    let d = replica(&settings, shared.clone()).await?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(jobs(&http, &d.url).await?.len(), 2);

    // Down across three slots: they fold into one run, for the latest (an incremental sync
    // reads everything since the watermarks anyway).
    d.handle.abort_background();
    clock.set(at(10, 27, 0));
    let e = replica(&settings, shared.clone()).await?;
    let list = settle(&http, &e.url, 3).await?;
    assert_eq!(list.len(), 3, "{list:?}");
    assert_eq!(slot_of(&list[0]), Some(at(10, 25, 0)));
    assert!(list.iter().all(|j| j["state"] == "succeeded"), "{list:?}");
    // Request-started syncs carry no slot.
    let manual: Value = http
        .post(format!("{}/v1/syncs", e.url))
        .json(&serde_json::json!({"objects": ["Account"]}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(manual["scheduled_for"], Value::Null, "{manual}");
    e.handle.abort_background();
    Ok(())
}

#[tokio::test]
async fn an_invalid_cron_expression_stops_the_start_up() -> TestResult {
    let creds = generate("schedule-bad")?;
    let dir = tempfile::tempdir()?;
    let key_path = dir.path().join("key.pem");
    std::fs::write(&key_path, &creds.private_key_pem)?;
    let mut settings = Settings::with_salesforce(SalesforceSettings {
        login_url: "https://login.salesforce.com".into(),
        audience: None,
        client_id: CLIENT_ID.into(),
        username: USERNAME.into(),
        private_key_path: key_path,
        api_version: "62.0".into(),
    });
    settings.port = 0;
    for bad in ["every five minutes", "*/5 * * *", "61 * * * *"] {
        settings.schedule = Some(bad.into());
        let clock: SharedClock = Arc::new(TestClock(Mutex::new(at(10, 0, 0))));
        match Application::build(&settings, clock).await {
            Err(StartError::Config(message)) => {
                assert!(message.contains("schedule"), "{message}");
                assert!(message.contains(bad), "{message}");
            }
            Err(other) => panic!("{bad}: {other}"),
            Ok(_) => panic!("{bad} was accepted"),
        }
    }
    Ok(())
}
