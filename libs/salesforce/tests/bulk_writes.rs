//! Bulk API 2.0 query jobs and sObject Collections upsert: the client against the org simulator,
//! and the collections answer against the real fixture's shape.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Map, Value, json};
use sextant_contracts::time::{SharedClock, SystemClock};
use sextant_org_sim::credentials::{ConnectedAppCredentials, generate};
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSim, OrgSimConfig, RunningOrgSim};
use sextant_salesforce::bulk::BulkOptions;
use sextant_salesforce::collections::ItemResult;
use sextant_salesforce::{
    ClientOptions, JwtBearerConfig, LoginFlow, RetryPolicy, SalesforceClient, SalesforceError,
};

const CLIENT_ID: &str = "3MVG9sextant.bulk";
const USERNAME: &str = "integration@sextant.example";

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn creds() -> &'static ConnectedAppCredentials {
    static CREDS: OnceLock<ConnectedAppCredentials> = OnceLock::new();
    CREDS.get_or_init(|| match generate("sextant-bulk") {
        Ok(c) => c,
        Err(e) => panic!("credentials: {e}"),
    })
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

async fn start(
    edit: impl FnOnce(&mut OrgSimConfig),
) -> Result<RunningOrgSim, Box<dyn std::error::Error>> {
    let mut config = OrgSimConfig::new(CLIENT_ID, USERNAME, &creds().certificate_pem);
    edit(&mut config);
    let (running, server) = OrgSim::start(
        config,
        OrgData::embedded_sample()?,
        clock(),
        TcpListener::bind("127.0.0.1:0")?,
    )?;
    tokio::spawn(server);
    Ok(running)
}

fn client(sim: &RunningOrgSim) -> Result<SalesforceClient, SalesforceError> {
    let flow = LoginFlow::JwtBearer(JwtBearerConfig {
        login_url: sim.base_url.clone(),
        audience: "https://login.salesforce.com".into(),
        client_id: CLIENT_ID.into(),
        username: USERNAME.into(),
        private_key_pem: SecretString::from(creds().private_key_pem.clone()),
    });
    let options = ClientOptions {
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        },
        ..ClientOptions::default()
    };
    SalesforceClient::build(flow, clock(), options)
}

fn fast() -> BulkOptions {
    BulkOptions {
        poll_initial: Duration::from_millis(10),
        poll_max: Duration::from_millis(40),
        timeout: Duration::from_secs(30),
        max_records: 5_000,
    }
}

#[tokio::test]
async fn bulk_results_are_read_by_locator_until_the_literal_null() -> TestResult {
    let sim = start(|c| c.bulk_polls_to_complete = 3).await?;
    let sf = client(&sim)?;
    let job = sf
        .bulk_query(
            "SELECT Id, OrderId, Quantity, UnitPrice, SystemModstamp FROM OrderItem ORDER BY SystemModstamp, Id",
            false,
            &fast(),
        )
        .await?;
    assert_eq!(job.info.state, "JobComplete");
    assert!(job.polls >= 3, "polled until complete: {}", job.polls);
    let mut results = job.results(&sf, &fast());
    let mut ids = HashSet::new();
    let mut pages = 0;
    let mut last_stamp = String::new();
    while let Some(rows) = results.next_page().await? {
        pages += 1;
        for r in rows {
            // CSV values are text; datetimes in the bulk `Z` form, still in order.
            let stamp = r["SystemModstamp"].as_str().unwrap_or_default().to_owned();
            assert!(stamp.ends_with('Z'), "{stamp}");
            assert!(stamp >= last_stamp);
            last_stamp = stamp;
            assert!(
                r["Quantity"]
                    .as_str()
                    .is_some_and(|q| q.parse::<f64>().is_ok())
            );
            ids.insert(r["Id"].as_str().unwrap_or_default().to_owned());
        }
    }
    let total = sim.data().counts()["OrderItem"];
    assert_eq!(ids.len(), total, "every row once");
    assert_eq!(
        pages,
        total.div_ceil(5_000),
        "every page, not only the first"
    );
    let locators: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/results"))
        .map(|r| r.query.clone())
        .collect();
    assert!(locators[0].starts_with("maxRecords=5000") && !locators[0].contains("locator"));
    assert!(
        locators[1..].iter().all(|q| q.contains("&locator=")),
        "{locators:?}"
    );
    // No double slash in any results path (forcedotcom/cli#2968).
    assert!(sim.requests().iter().all(|r| !r.path.contains("//")));
    Ok(())
}

#[tokio::test]
async fn a_bulk_query_with_no_rows_ends_cleanly() -> TestResult {
    let sim = start(|_| {}).await?;
    let sf = client(&sim)?;
    let job = sf
        .bulk_query(
            "SELECT Id FROM Account WHERE Name = 'nobody at all'",
            false,
            &fast(),
        )
        .await?;
    let mut results = job.results(&sf, &fast());
    let first = results.next_page().await?.ok_or("a first page")?;
    assert!(first.is_empty());
    assert!(results.next_page().await?.is_none());
    Ok(())
}

#[tokio::test]
async fn a_failed_bulk_job_is_reported_with_its_message() -> TestResult {
    let sim = start(|_| {}).await?;
    let sf = client(&sim)?;
    sim.fail_next_bulk_job("InternalServerError : retry later");
    let err = sf
        .bulk_query("SELECT Id FROM Account", false, &fast())
        .await
        .expect_err("failed job");
    assert!(
        matches!(&err, SalesforceError::BulkJob { state, message, .. } if state == "Failed" && message.contains("retry later")),
        "{err}"
    );
    // Aggregates are refused at creation, as Bulk does.
    let err = sf
        .bulk_query("SELECT COUNT() FROM Account", false, &fast())
        .await
        .expect_err("refused");
    assert_eq!(err.status(), Some(400), "{err}");
    Ok(())
}

#[tokio::test]
async fn the_collections_fixture_parses_as_item_results_with_status_codes() -> TestResult {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/salesforce/sobject_collections_allornone_rolled_back.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("SKIPPED: fixture {} is absent", path.display());
        return Ok(());
    };
    let items: Vec<ItemResult> = serde_json::from_str(&text)?;
    assert!(!items.is_empty());
    assert!(items.iter().all(|i| !i.success));
    assert!(
        items
            .iter()
            .flat_map(|i| &i.errors)
            .any(|e| e.status_code == "ALL_OR_NONE_OPERATION_ROLLED_BACK")
    );
    Ok(())
}

fn score(id: &str, s: f64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("Id".into(), json!(id));
    m.insert("Churn_Score__c".into(), json!(s));
    m
}

#[tokio::test]
async fn upserts_go_200_per_call_retry_only_transient_items_and_report_the_rest() -> TestResult {
    let sim = start(|_| {}).await?;
    let sf = client(&sim)?;
    let ids: Vec<String> = sim.data().object("Account").ok_or("a")?.rows[..250]
        .iter()
        .filter_map(|r| r["Id"].as_str().map(str::to_owned))
        .collect();
    sim.inject_record_error(
        &ids[3],
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
        &[],
        2,
    );
    sim.inject_record_error(
        &ids[210],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Score must be reviewed",
        &["Churn_Score__c"],
        99,
    );
    let mut records: Vec<Map<String, Value>> = ids.iter().map(|id| score(id, 0.25)).collect();
    records.push(score("001000000000000AAA", 0.5));
    let mut calls = 0;
    let outcomes = sf
        .upsert_records("Account", "Id", &records, 4, |_| calls += 1)
        .await;
    assert_eq!(outcomes.len(), 251);
    assert_eq!(
        calls, 4,
        "two chunks of ≤ 200, and two retries of the locked row"
    );
    let written = outcomes.iter().filter(|o| o.error.is_none()).count();
    assert_eq!(written, 249);
    assert_eq!(outcomes[3].attempts, 3, "retried twice, then written");
    assert!(outcomes[3].error.is_none());
    assert_eq!(outcomes[3].created, Some(false));
    let failed = outcomes[210].error.as_ref().ok_or("failed")?;
    assert_eq!(failed.status_code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert_eq!(outcomes[210].attempts, 1, "not retried");
    assert_eq!(
        outcomes[250].error.as_ref().map(|e| e.status_code.as_str()),
        Some("INVALID_CROSS_REFERENCE_KEY")
    );
    let rec = sim.record("Account", &ids[0]).ok_or("record")?;
    assert_eq!(rec["Churn_Score__c"], json!(0.25));
    assert_eq!(
        sim.record("Account", &ids[210]).ok_or("r")?["Churn_Score__c"],
        Value::Null
    );
    // Every call asked for allOrNone=false and at most 200 records.
    let calls = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("/composite/sobjects/Account/Id"))
        .count();
    assert_eq!(calls, 4);
    // A bad upsert key is refused for the whole call, and every record says so.
    let out = sf
        .upsert_records("Account", "NoSuchKey__c", &[score(&ids[0], 0.1)], 4, |_| {})
        .await;
    assert_eq!(
        out[0].error.as_ref().map(|e| e.status_code.as_str()),
        Some("NOT_FOUND")
    );
    Ok(())
}

#[tokio::test]
async fn upsert_by_external_id_creates_and_updates() -> TestResult {
    let sim = start(|_| {}).await?;
    let sf = client(&sim)?;
    let mut a = Map::new();
    a.insert("AccountNumber".into(), json!("NEW-1"));
    a.insert("Name".into(), json!("New customer"));
    let first = sf
        .upsert_collection("Account", "AccountNumber", &[a.clone()])
        .await?;
    assert_eq!((first[0].success, first[0].created), (true, Some(true)));
    let second = sf
        .upsert_collection("Account", "AccountNumber", &[a])
        .await?;
    assert_eq!((second[0].success, second[0].created), (true, Some(false)));
    assert_eq!(first[0].id, second[0].id);
    let too_many: Vec<Map<String, Value>> =
        (0..201).map(|i| score(&format!("x{i}"), 0.1)).collect();
    assert!(matches!(
        sf.upsert_collection("Account", "Id", &too_many).await,
        Err(SalesforceError::Config(_))
    ));
    Ok(())
}
