//! A `record` mapping end to end: the org simulator holds a custom object `Loan__c` (a checkbox
//! label, a picklist, a number with missing values) → the connector (describe check, REST then
//! Bulk API 2.0, `queryAll` tombstones, watermarks) → the real feature store on loopback
//! (SQLite) → `GET /v1/records/Loan__c` as CSV, exactly the org's live rows.

use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};
use serde_json::{Map, Value, json};
use sextant_connector::Settings;
use sextant_connector::custom::{ObjectMapping, SourceKind, Target};
use sextant_contracts::SalesforceId;
use sextant_contracts::time::{FixedClock, SharedClock};
use sextant_org_sim::credentials::{ConnectedAppCredentials as Credentials, generate};
use sextant_org_sim::data::{FieldType, OrgData};
use sextant_org_sim::{OrgSimConfig, RunningOrgSim};

type TestResult = Result<(), Box<dyn std::error::Error>>;
mod support;

use support::Res;

const CLIENT_ID: &str = "3MVG9connector.records";
const USERNAME: &str = "integration@example.com";
const LOANS: u64 = 90;

fn loans_mapping() -> ObjectMapping {
    ObjectMapping {
        source: "Loan__c".into(),
        kind: SourceKind::Salesforce,
        target: Target::Record,
        account: String::new(),
        occurred_at: String::new(),
        fields: vec![
            "Defaulted__c".into(),
            // Spelt otherwise than the org does: describe answers the org's spelling.
            "grade__c".into(),
            "Amount__c".into(),
        ],
        value: None,
        event_type: None,
        event_type_field: None,
        id_field: None,
        modstamp_field: None,
        filter: None,
    }
}

fn loan_id(n: u64) -> String {
    SalesforceId::from_parts("a0L", "5g", n).to_string()
}

/// A small org plus `Loan__c`: a checkbox, a picklist, a number missing on every fifth loan
/// (and a text field the mapping does not sync).
fn org_with_loans() -> Res<OrgData> {
    let modified = Utc
        .with_ymd_and_hms(2011, 1, 5, 9, 0, 0)
        .single()
        .ok_or("time")?;
    let rows: Vec<Map<String, Value>> = (1..=LOANS)
        .map(|n| {
            let amount = if n % 5 == 0 {
                Value::Null
            } else {
                json!(1000.25 + n as f64 * 12.5)
            };
            let grade = ["A", "B", "C"][(n % 3) as usize];
            json!({
                "Id": loan_id(n),
                "Name": format!("L-{n:04}"),
                "Defaulted__c": n % 3 == 0,
                "Grade__c": grade,
                "Amount__c": amount,
                "Notes__c": "not synced",
                "LastModifiedDate": format!("2011-01-05T09:{:02}:00.000+0000", n % 60),
                "SystemModstamp": format!("2011-01-05T09:{:02}:{:02}.000+0000", n / 60, n % 60),
            })
            .as_object()
            .cloned()
            .unwrap_or_default()
        })
        .collect();
    Ok(OrgData::embedded_sample_head(200)?.with_object(
        "Loan__c",
        "a0L",
        &[
            ("Name", FieldType::String),
            ("Defaulted__c", FieldType::Boolean),
            ("Grade__c", FieldType::Picklist),
            ("Amount__c", FieldType::Currency),
            ("Notes__c", FieldType::TextArea),
        ],
        rows,
        &modified,
    ))
}

struct Suite {
    org: RunningOrgSim,
    connector: String,
    store: String,
    _dir: tempfile::TempDir,
}

async fn start(
    data: OrgData,
    mappings: Vec<ObjectMapping>,
    tweak: impl FnOnce(&mut OrgSimConfig, &mut Settings),
) -> Res<Suite> {
    let dir = tempfile::tempdir()?;
    let creds: Credentials = generate("connected-app")?;
    let clock: SharedClock = Arc::new(FixedClock(
        Utc.with_ymd_and_hms(2011, 2, 1, 0, 0, 0)
            .single()
            .ok_or("time")?,
    ));
    let mut config = OrgSimConfig::new(CLIENT_ID, USERNAME, &creds.certificate_pem);
    config.api_request_limit = 1_000_000;

    let today = NaiveDate::from_ymd_opt(2011, 2, 2).ok_or("date")?;
    let store = support::start_store(dir.path(), today, clock.clone()).await?;
    let mut settings =
        support::settings(dir.path(), &creds, (CLIENT_ID, USERNAME), &store, mappings)?;
    tweak(&mut config, &mut settings);
    let (org, connector) = support::start_org_and_connector(config, data, clock, settings).await?;
    Ok(Suite {
        org,
        connector,
        store,
        _dir: dir,
    })
}

impl Suite {
    async fn sync(&self, objects: &[&str]) -> Res<(u16, Value)> {
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/sync", self.connector))
            .json(&json!({ "objects": objects }))
            .send()
            .await?;
        Ok((resp.status().as_u16(), resp.json().await?))
    }

    /// The store's export of the loans, as lines after the header.
    async fn exported(&self) -> Res<Vec<String>> {
        let text = reqwest::Client::new()
            .get(format!("{}/v1/records/Loan__c", self.store))
            .query(&[("fields", "Defaulted__c,Grade__c,Amount__c")])
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let mut lines = text.lines().map(str::to_owned);
        assert_eq!(
            lines.next().as_deref(),
            Some("Id,Defaulted__c,Grade__c,Amount__c")
        );
        Ok(lines.collect())
    }

    /// What the export must hold: the org's live loans, in Id order, missing amounts empty.
    fn expected(&self) -> Vec<String> {
        let data = self.org.data();
        let mut rows: Vec<String> = data
            .object("Loan__c")
            .map(|o| {
                o.rows
                    .iter()
                    .filter(|r| r["IsDeleted"] != Value::Bool(true))
                    .map(|r| {
                        let amount = match &r["Amount__c"] {
                            Value::Null => String::new(),
                            v => v.to_string(),
                        };
                        format!(
                            "{},{},{},{amount}",
                            r["Id"].as_str().unwrap_or_default(),
                            r["Defaulted__c"],
                            r["Grade__c"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        rows.sort();
        rows
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_custom_object_syncs_as_records_with_tombstones_and_exports_as_the_org_holds_it()
-> TestResult {
    let suite = start(
        org_with_loans()?,
        vec![loans_mapping()],
        |config, settings| {
            // Small pages and a low threshold: the loans are read partly over REST and the rest
            // with Bulk API 2.0 (CSV: empty cells for missing amounts, "true"/"false" checkboxes).
            config.batch_size = 25;
            settings.bulk_threshold = 40;
            settings.bulk_poll_ms = 10;
        },
    )
    .await?;
    let (status, report) = suite.sync(&["Loan__c"]).await?;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["objects"]["Loan__c"], LOANS, "{report}");
    assert_eq!(report["quarantined_count"], 0, "{report}");
    let exported = suite.exported().await?;
    assert_eq!(exported.len() as u64, LOANS);
    assert_eq!(
        exported,
        suite.expected(),
        "the store holds the org's loans"
    );
    assert!(
        exported.iter().any(|l| l.ends_with(",")),
        "a missing amount is an empty cell: {exported:?}"
    );
    assert!(
        exported.iter().all(|l| !l.contains("not synced")),
        "only the mapped fields"
    );

    // The org deletes a loan and edits another; an incremental sync reads only the edit, and
    // the deletion as a tombstone.
    let change = json!({"Defaulted__c": true, "Amount__c": null})
        .as_object()
        .cloned()
        .unwrap_or_default();
    suite
        .org
        .update_record("Loan__c", &loan_id(7), &change)
        .ok_or("update")?;
    suite
        .org
        .delete_record("Loan__c", &loan_id(8))
        .ok_or("delete")?;
    let (status, report) = suite.sync(&["Loan__c"]).await?;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["objects"]["Loan__c"], 1,
        "the edited row (the deletion comes from queryAll): {report}"
    );
    let exported = suite.exported().await?;
    assert_eq!(exported.len() as u64, LOANS - 1, "the deleted loan left");
    assert_eq!(exported, suite.expected());
    assert!(
        exported.contains(&format!("{},true,B,", loan_id(7))),
        "the edit, its amount now missing: {exported:?}"
    );

    // Nothing new: nothing read.
    let (_, report) = suite.sync(&["Loan__c"]).await?;
    assert_eq!(report["objects"]["Loan__c"], 0, "{report}");
    Ok(())
}

#[tokio::test]
async fn a_record_mapping_is_checked_against_describe_at_each_sync() -> TestResult {
    let mut missing = loans_mapping();
    missing.fields.push("Term__c".into());
    let suite = start(org_with_loans()?, vec![missing], |_, _| {}).await?;
    let (status, body) = suite.sync(&["Loan__c"]).await?;
    assert_eq!(
        (status, &body["code"]),
        (422, &json!("invalid_parameter")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Loan__c") && message.contains("Term__c"),
        "{body}"
    );

    // Settings that make no sense for a record mapping are refused with the object named.
    let mut m = loans_mapping();
    m.account = "Account__c".into();
    let e = m.validate().expect_err("account on a record mapping");
    assert!(
        e.to_string().contains("Loan__c") && e.problem.contains("account"),
        "{e}"
    );
    let mut m = loans_mapping();
    m.fields = vec!["Id".into()];
    assert!(m.validate().is_err(), "Id always comes along");
    let mut m = loans_mapping();
    m.fields = vec!["Amount__c) FROM User --".into()];
    assert!(
        m.validate()
            .expect_err("injection")
            .problem
            .contains("not an API name")
    );
    let mut m = loans_mapping();
    m.fields.clear();
    assert!(m.validate().is_err(), "no fields");
    Ok(())
}
