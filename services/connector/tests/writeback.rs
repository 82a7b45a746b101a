//! Score write-back jobs: every record ends written or failed with its reason; transient item
//! errors are retried; bad requests get stable codes.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::{Value, json};
use sextant_connector::{Application, SalesforceSettings, Settings};
use sextant_contracts::time::system_clock;
use sextant_org_sim::credentials::generate;
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSim, OrgSimConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CLIENT_ID: &str = "3MVG9connector.writeback";
const USERNAME: &str = "integration@example.com";

#[tokio::test]
async fn every_score_ends_written_or_failed_with_its_reason() -> TestResult {
    let creds = generate("writeback")?;
    let (org, server) = OrgSim::start(
        OrgSimConfig::new(CLIENT_ID, USERNAME, &creds.certificate_pem),
        OrgData::embedded_sample()?,
        system_clock(),
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
    let app = Application::build(&settings, system_clock()).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();

    let ids: Vec<String> = org
        .data()
        .object("Account")
        .ok_or("a")?
        .rows
        .iter()
        .filter_map(|r| r["Id"].as_str().map(str::to_owned))
        .collect();
    org.inject_record_error(
        &ids[5],
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
        &[],
        1,
    );
    org.inject_record_error(
        &ids[230],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Churn score needs review",
        &["Churn_Score__c"],
        99,
    );
    let mut scores: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"id": id, "score": (i % 100) as f64 / 100.0}))
        .collect();
    scores.push(json!({"id": "001000000000000AAA", "score": 0.5}));
    let resp = http
        .post(format!("{url}/v1/writebacks"))
        .json(&json!({"model_version": "churn-v7", "scores": scores}))
        .send()
        .await?;
    assert_eq!(resp.status(), 202);
    let job: Value = resp.json().await?;
    assert_eq!(job["total"], ids.len() + 1);
    let id = job["id"].as_str().ok_or("id")?.to_owned();
    let mut done = Value::Null;
    for _ in 0..300 {
        done = http
            .get(format!("{url}/v1/writebacks/{id}?limit=10000"))
            .send()
            .await?
            .json()
            .await?;
        if done["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done["state"], "succeeded", "{done}");
    let records = done["records"].as_array().ok_or("records")?;
    assert_eq!(records.len(), ids.len() + 1, "every record listed");
    assert_eq!(done["written"], ids.len() - 1);
    assert_eq!(done["failed"], 2);
    assert!(records.iter().all(
        |r| r["outcome"] == "written" || (r["outcome"] == "failed" && r["reason"].is_string())
    ));
    assert_eq!(
        records[5]["outcome"], "written",
        "the locked row was retried: {}",
        records[5]
    );
    assert_eq!(records[5]["attempts"], 2);
    assert_eq!(records[230]["outcome"], "failed");
    assert_eq!(
        records[230]["status_code"],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    );
    assert!(
        records[230]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("Churn score needs review")
    );
    assert_eq!(
        records[ids.len()]["status_code"],
        "INVALID_CROSS_REFERENCE_KEY"
    );
    let acc = org.record("Account", &ids[7]).ok_or("acc")?;
    assert_eq!(acc["Churn_Score__c"], json!(0.07));
    assert_eq!(acc["Sextant_Model_Version__c"], "churn-v7");
    // ≤ 200 records per call: 272 records → 2 calls, plus 1 retry.
    let calls = org
        .requests()
        .iter()
        .filter(|r| r.path.contains("/composite/sobjects/Account/Id"))
        .count();
    assert_eq!(calls, 3);
    let list: Vec<Value> = http
        .get(format!("{url}/v1/writebacks"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(list.len(), 1);

    for (body, code) in [
        (json!({"scores": []}), "empty_request"),
        (
            json!({"scores": [{"id": "not-an-id", "score": 0.1}]}),
            "invalid_record_id",
        ),
        (
            json!({"score_field": "Bad Field; DROP", "scores": [{"id": ids[0], "score": 0.1}]}),
            "invalid_parameter",
        ),
    ] {
        let resp = http
            .post(format!("{url}/v1/writebacks"))
            .json(&body)
            .send()
            .await?;
        assert_eq!(resp.status(), 400, "{body}");
        let b: Value = resp.json().await?;
        assert_eq!(b["code"], code, "{b}");
    }
    let missing = http.get(format!("{url}/v1/writebacks/nope")).send().await?;
    assert_eq!(missing.status(), 404);
    Ok(())
}

#[tokio::test]
async fn a_large_write_back_goes_through_bulk_ingest_and_retries_by_collections() -> TestResult {
    let creds = generate("writeback-bulk")?;
    let (org, server) = OrgSim::start(
        OrgSimConfig::new(CLIENT_ID, USERNAME, &creds.certificate_pem),
        OrgData::embedded_sample()?,
        system_clock(),
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
    settings.writeback_bulk_threshold = 100;
    settings.bulk_poll_ms = 10;
    let app = Application::build(&settings, system_clock()).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let org_status: Value = http
        .get(format!("{url}/v1/org"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(org_status["writeback_bulk_threshold"], 100);

    let ids: Vec<String> = org
        .data()
        .object("Account")
        .ok_or("a")?
        .rows
        .iter()
        .filter_map(|r| r["Id"].as_str().map(str::to_owned))
        .collect();
    // A lock error in the ingest job (transient: retried by collections), a validation error
    // (final), and an ingest job that fails after 200 rows (the rest unprocessed: retried).
    org.inject_record_error(
        &ids[5],
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
        &[],
        1,
    );
    org.inject_record_error(
        &ids[100],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Churn score needs review",
        &["Churn_Score__c"],
        99,
    );
    org.fail_next_ingest_job("InvalidBatch : the org's bulk capacity ran out", 200);
    let mut scores: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"id": id, "score": (i % 100) as f64 / 100.0}))
        .collect();
    scores.push(json!({"id": "001000000000000AAA", "score": 0.5}));
    let resp = http
        .post(format!("{url}/v1/writebacks"))
        .json(&json!({"model_version": "churn-v8", "scores": scores}))
        .send()
        .await?;
    assert_eq!(resp.status(), 202);
    let job: Value = resp.json().await?;
    let id = job["id"].as_str().ok_or("id")?.to_owned();
    let mut done = Value::Null;
    for _ in 0..300 {
        done = http
            .get(format!("{url}/v1/writebacks/{id}?limit=10000"))
            .send()
            .await?
            .json()
            .await?;
        if done["state"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done["state"], "succeeded", "{done}");
    let records = done["records"].as_array().ok_or("records")?;
    assert_eq!(records.len(), ids.len() + 1, "every record listed");
    assert_eq!(done["written"], ids.len() - 1, "{}", done["written"]);
    assert_eq!(done["failed"], 2);
    assert_eq!(
        done["bulk_jobs"].as_array().map(Vec::len),
        Some(1),
        "{done}"
    );
    assert!(records.iter().all(
        |r| r["outcome"] == "written" || (r["outcome"] == "failed" && r["reason"].is_string())
    ));
    // Written by the ingest job on its first attempt, with the record's own Id.
    assert_eq!(records[10]["outcome"], "written");
    assert_eq!(records[10]["attempts"], 1);
    assert_eq!(records[10]["salesforce_id"], ids[10].as_str());
    // Failed transiently in the ingest job, then written by collections.
    assert_eq!(records[5]["outcome"], "written", "{}", records[5]);
    assert_eq!(records[5]["attempts"], 2);
    // Unprocessed by the failed ingest job, then written by collections.
    assert_eq!(records[250]["outcome"], "written", "{}", records[250]);
    assert_eq!(records[250]["attempts"], 2);
    // A final error from the ingest job's failed results, with its reason and field.
    assert_eq!(records[100]["outcome"], "failed");
    assert_eq!(records[100]["attempts"], 1);
    assert_eq!(
        records[100]["status_code"],
        "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    );
    let reason = records[100]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("Churn score needs review"), "{reason}");
    assert!(reason.contains("Churn_Score__c"), "{reason}");
    assert_eq!(
        records[ids.len()]["status_code"],
        "INVALID_CROSS_REFERENCE_KEY"
    );
    let acc = org.record("Account", &ids[250]).ok_or("acc")?;
    assert_eq!(acc["Churn_Score__c"], json!(0.5));
    assert_eq!(acc["Sextant_Model_Version__c"], "churn-v8");
    // One CSV upload; the 73 records left pending (1 locked + 72 unprocessed) in one
    // collections call.
    let requests = org.requests();
    let uploads = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/batches"))
        .count();
    assert_eq!(uploads, 1);
    let calls = requests
        .iter()
        .filter(|r| r.path.contains("/composite/sobjects/Account/Id"))
        .count();
    assert_eq!(calls, 1);
    Ok(())
}
