//! Bulk API 2.0 ingest: the client against the org simulator's ingest jobs — every record ends
//! written, failed with Salesforce's reason, or unprocessed; large sets are split over jobs by
//! upload size; transient failures of the calls are retried.

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Map, Value};
use sextant_contracts::time::{SharedClock, SystemClock};
use sextant_org_sim::credentials::{ConnectedAppCredentials, generate};
use sextant_org_sim::data::OrgData;
use sextant_org_sim::faults::{Fault, FaultRule};
use sextant_org_sim::{OrgSim, OrgSimConfig, RunningOrgSim};
use sextant_salesforce::ingest::{IngestOperation, IngestOptions, IngestOutcome};
use sextant_salesforce::{
    ClientOptions, JwtBearerConfig, LoginFlow, RetryPolicy, SalesforceClient, SalesforceError,
};

const CLIENT_ID: &str = "3MVG9sextant.ingest";
const USERNAME: &str = "integration@sextant.example";

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn creds() -> &'static ConnectedAppCredentials {
    static CREDS: OnceLock<ConnectedAppCredentials> = OnceLock::new();
    CREDS.get_or_init(|| match generate("sextant-ingest") {
        Ok(c) => c,
        Err(e) => panic!("credentials: {e}"),
    })
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

async fn start() -> Result<RunningOrgSim, Box<dyn std::error::Error>> {
    let (running, server) = OrgSim::start(
        OrgSimConfig::new(CLIENT_ID, USERNAME, &creds().certificate_pem),
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

fn fast(max_upload_bytes: usize) -> IngestOptions {
    IngestOptions {
        poll_initial: Duration::from_millis(5),
        poll_max: Duration::from_millis(20),
        timeout: Duration::from_secs(30),
        max_upload_bytes,
    }
}

fn rec(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn account_numbers(sim: &RunningOrgSim) -> Vec<(String, String)> {
    sim.data()
        .object("Account")
        .map(|o| {
            o.rows
                .iter()
                .filter_map(|r| {
                    Some((
                        r["Id"].as_str()?.to_owned(),
                        r["AccountNumber"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn upsert_by_external_id_reports_every_record_over_several_jobs() -> TestResult {
    let sim = start().await?;
    let sf = client(&sim)?;
    let accounts = account_numbers(&sim);
    assert!(accounts.len() > 50);
    sim.inject_record_error(
        &accounts[3].1,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Churn score: needs review",
        &["Churn_Score__c"],
        1,
    );
    let mut records: Vec<Map<String, Value>> = accounts[..40]
        .iter()
        .enumerate()
        .map(|(i, (_, number))| {
            rec(&[
                ("AccountNumber", Value::from(number.as_str())),
                ("Churn_Score__c", Value::from(i as f64 / 100.0)),
                (
                    "Sextant_Model_Version__c",
                    Value::from("churn-v9, \"quoted\""),
                ),
            ])
        })
        .collect();
    // Not a number: the simulator refuses the field, as Salesforce does.
    records[7].insert("Churn_Score__c".into(), Value::from("high"));
    // A new key: created.
    records.push(rec(&[
        ("AccountNumber", Value::from("NEW-0001")),
        ("Churn_Score__c", Value::from(0.5)),
    ]));
    let report = sf
        .bulk_ingest(
            "Account",
            &IngestOperation::Upsert {
                external_id_field: "AccountNumber".into(),
            },
            &records,
            &fast(600),
        )
        .await?;
    assert_eq!(
        report.outcomes.len(),
        records.len(),
        "one outcome per record"
    );
    assert!(
        report.job_ids.len() >= 3,
        "600-byte uploads split 41 records over several jobs: {:?}",
        report.job_ids
    );
    for (i, o) in report.outcomes.iter().enumerate() {
        match (i, o) {
            (3, IngestOutcome::Failed(e)) => {
                assert_eq!(e.status_code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
                assert_eq!(e.message, "Churn score: needs review");
                assert_eq!(e.fields, vec!["Churn_Score__c".to_owned()]);
            }
            (7, IngestOutcome::Failed(e)) => {
                assert_eq!(e.status_code, "INVALID_FIELD_FOR_INSERT_UPDATE", "{e:?}");
            }
            (40, IngestOutcome::Written { id, created }) => {
                assert!(id.starts_with("001"), "{id}");
                assert_eq!(*created, Some(true));
            }
            (i, IngestOutcome::Written { id, created }) if i != 3 && i != 7 => {
                assert_eq!(id, &accounts[i].0, "matched back to its own record");
                assert_eq!(*created, Some(false));
            }
            (i, other) => panic!("record {i}: unexpected {other:?}"),
        }
    }
    let written = sim.record("Account", &accounts[10].0).ok_or("account")?;
    assert_eq!(written["Churn_Score__c"], 0.1);
    assert_eq!(written["Sextant_Model_Version__c"], "churn-v9, \"quoted\"");
    // The wire: CSV uploads with PUT, closed with PATCH, results read as CSV.
    let requests = sim.requests();
    let uploads: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/batches"))
        .collect();
    assert_eq!(uploads.len(), report.job_ids.len());
    assert!(
        uploads
            .iter()
            .all(|r| r.header("content-type") == Some("text/csv"))
    );
    assert!(requests.iter().any(|r| r.path.ends_with("/failedResults/")));
    Ok(())
}

#[tokio::test]
async fn null_clears_a_field_and_empty_cells_leave_others_unchanged() -> TestResult {
    let sim = start().await?;
    let sf = client(&sim)?;
    let (id, number) = account_numbers(&sim).remove(0);
    let op = IngestOperation::Upsert {
        external_id_field: "AccountNumber".into(),
    };
    let first = vec![rec(&[
        ("AccountNumber", Value::from(number.as_str())),
        ("Churn_Score__c", Value::from(0.9)),
        ("Sextant_Model_Version__c", Value::from("churn-v1")),
    ])];
    sf.bulk_ingest("Account", &op, &first, &fast(1 << 20))
        .await?;
    // A second write: the version cleared (#N/A); a second record sets only the score so the
    // version column is empty for it.
    let (id2, number2) = account_numbers(&sim).remove(1);
    sf.bulk_ingest(
        "Account",
        &IngestOperation::Update,
        &[rec(&[
            ("Id", Value::from(id2.as_str())),
            ("Sextant_Model_Version__c", Value::from("keep")),
        ])],
        &fast(1 << 20),
    )
    .await?;
    let second = vec![
        rec(&[
            ("AccountNumber", Value::from(number.as_str())),
            ("Sextant_Model_Version__c", Value::Null),
        ]),
        rec(&[
            ("AccountNumber", Value::from(number2.as_str())),
            ("Churn_Score__c", Value::from(0.2)),
        ]),
    ];
    let report = sf
        .bulk_ingest("Account", &op, &second, &fast(1 << 20))
        .await?;
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| matches!(o, IngestOutcome::Written { .. })),
        "{report:?}"
    );
    let a = sim.record("Account", &id).ok_or("a")?;
    assert_eq!(
        a["Sextant_Model_Version__c"],
        Value::Null,
        "#N/A cleared it"
    );
    assert_eq!(a["Churn_Score__c"], 0.9, "a field not sent is unchanged");
    let b = sim.record("Account", &id2).ok_or("b")?;
    assert_eq!(
        b["Sextant_Model_Version__c"], "keep",
        "an empty cell is unchanged"
    );
    assert_eq!(b["Churn_Score__c"], 0.2);
    Ok(())
}

#[tokio::test]
async fn a_failed_job_lists_its_unprocessed_records_and_transient_calls_are_retried() -> TestResult
{
    let sim = start().await?;
    let sf = client(&sim)?;
    let accounts = account_numbers(&sim);
    sim.fail_next_ingest_job("InvalidBatch : the org ran out of bulk capacity", 4);
    // The upload meets a 503 once and the close a lock error once: both retried by the client.
    sim.inject(FaultRule::new("/batches", 1, Fault::unavailable()).method("PUT"));
    sim.inject(FaultRule::new("/jobs/ingest/", 1, Fault::html_503()).method("PATCH"));
    let records: Vec<Map<String, Value>> = accounts[..10]
        .iter()
        .map(|(id, _)| {
            rec(&[
                ("Id", Value::from(id.as_str())),
                ("Churn_Score__c", Value::from(0.42)),
            ])
        })
        .collect();
    let report = sf
        .bulk_ingest(
            "Account",
            &IngestOperation::Update,
            &records,
            &fast(1 << 20),
        )
        .await?;
    assert_eq!(report.job_ids.len(), 1);
    for (i, o) in report.outcomes.iter().enumerate() {
        if i < 4 {
            assert!(matches!(o, IngestOutcome::Written { .. }), "{i}: {o:?}");
        } else {
            match o {
                IngestOutcome::Unprocessed { reason } => {
                    assert!(reason.contains("Failed"), "{reason}");
                    assert!(reason.contains("ran out of bulk capacity"), "{reason}");
                }
                other => panic!("{i}: {other:?}"),
            }
        }
    }
    assert!(sf.stats().retries >= 2, "{:?}", sf.stats());
    // A record without its key is refused before any job is created.
    let err = sf
        .bulk_ingest(
            "Account",
            &IngestOperation::Update,
            &[rec(&[("Churn_Score__c", Value::from(0.1))])],
            &fast(1 << 20),
        )
        .await;
    assert!(matches!(err, Err(SalesforceError::Config(_))), "{err:?}");
    Ok(())
}
