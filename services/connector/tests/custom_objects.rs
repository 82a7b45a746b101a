//! Configured object mappings end to end: the org simulator (a custom object `Web_Visit__c`
//! with `__c` fields, and a Data Cloud object `ssot__Engagement__dlm`) → the connector → the
//! real feature store on loopback (SQLite) → the store's engagement features
//! (`engagement_90d`) for those accounts. Bad mappings fail with the object and field named.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use sextant_connector::Settings;
use sextant_connector::custom::{Filter, ObjectMapping, SourceKind, Target};
use sextant_contracts::time::{FixedClock, SharedClock};
use sextant_org_sim::credentials::{ConnectedAppCredentials as Credentials, generate};
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSimConfig, RunningOrgSim};
use sextant_salesforce::wire::parse_datetime;

type TestResult = Result<(), Box<dyn std::error::Error>>;
mod support;

use support::Res;

const CLIENT_ID: &str = "3MVG9connector.custom";
const USERNAME: &str = "integration@example.com";
const DMO: &str = "ssot__Engagement__dlm";

fn visits_mapping() -> ObjectMapping {
    ObjectMapping {
        source: "Web_Visit__c".into(),
        kind: SourceKind::Salesforce,
        target: Target::EngagementEvent,
        account: "Account__c".into(),
        occurred_at: "Visit_Date__c".into(),
        value: Some("Duration_Seconds__c".into()),
        event_type: None,
        event_type_field: Some("Channel__c".into()),
        id_field: None,
        modstamp_field: None,
        // Bounced visits are not engagement.
        filter: Some(Filter {
            field: "Status__c".into(),
            values: vec!["Completed".into()],
        }),
        fields: Vec::new(),
    }
}

fn data_cloud_mapping() -> ObjectMapping {
    ObjectMapping {
        source: DMO.into(),
        kind: SourceKind::DataCloud,
        target: Target::EngagementEvent,
        account: "ssot__AccountId__c".into(),
        occurred_at: "ssot__EngagementDateTm__c".into(),
        value: Some("ssot__Value__c".into()),
        event_type: None,
        event_type_field: Some("ssot__EngagementChannel__c".into()),
        id_field: Some("ssot__Id__c".into()),
        modstamp_field: Some("ssot__LastModifiedDate__c".into()),
        filter: None,
        fields: Vec::new(),
    }
}

/// The org, the feature store and a connector over them.
struct Suite {
    org: RunningOrgSim,
    connector: String,
    store: String,
    /// The store's "today"; online features are as of the day after.
    today: NaiveDate,
    _dir: tempfile::TempDir,
}

/// A small org (the sample's first weeks) and the store's "today": two days after its last order.
/// The org's and connector's clock is midnight before that last order's day, after every web
/// visit (a visit is a day before its order): what the org stamps then is newer than every
/// visit, and known before the cut-off of the point-in-time check ([`Suite::cutoff`]).
fn small_org() -> Res<(OrgData, NaiveDate)> {
    let data = OrgData::embedded_sample_head(1500)?;
    let last = data
        .object("Order")
        .ok_or("orders")?
        .rows
        .iter()
        .filter_map(|r| r["EffectiveDate"].as_str())
        .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .max()
        .ok_or("no orders")?;
    Ok((data, last + chrono::Duration::days(2)))
}

async fn start(
    data: OrgData,
    today: NaiveDate,
    mappings: Vec<ObjectMapping>,
    tweak: impl FnOnce(&mut OrgSimConfig, &mut Settings),
    with_store: bool,
) -> Res<Suite> {
    let dir = tempfile::tempdir()?;
    let creds: Credentials = generate("connected-app")?;
    let clock: SharedClock = Arc::new(FixedClock(
        (today - chrono::Duration::days(2))
            .and_hms_opt(0, 0, 0)
            .ok_or("time")?
            .and_utc(),
    ));
    let mut config = OrgSimConfig::new(CLIENT_ID, USERNAME, &creds.certificate_pem);
    config.api_request_limit = 1_000_000;

    let store = if with_store {
        // The store's "today" is its clock's day.
        let store_clock: SharedClock = Arc::new(FixedClock(
            today.and_hms_opt(12, 0, 0).ok_or("time")?.and_utc(),
        ));
        support::start_store(dir.path(), today, store_clock).await?
    } else {
        "http://127.0.0.1:9".to_owned()
    };

    let mut settings =
        support::settings(dir.path(), &creds, (CLIENT_ID, USERNAME), &store, mappings)?;
    settings.data_cloud_scheme = "http".into();
    tweak(&mut config, &mut settings);
    let (org, connector) = support::start_org_and_connector(config, data, clock, settings).await?;
    Ok(Suite {
        org,
        connector,
        store,
        today,
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

    fn account_ids(&self) -> Vec<String> {
        self.org
            .data()
            .object("Account")
            .map(|o| {
                o.rows
                    .iter()
                    .filter_map(|r| r["Id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `engagement_90d` of every account with history, from the store's online features.
    async fn engagement(&self) -> Res<BTreeMap<String, f64>> {
        let ids = self.account_ids();
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(200) {
            let body: Value = reqwest::Client::new()
                .post(format!("{}/v1/features/online", self.store))
                .json(&json!({ "account_ids": chunk }))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let at = body["feature_names"]
                .as_array()
                .and_then(|n| n.iter().position(|n| n == "engagement_90d"))
                .ok_or("engagement_90d is a feature")?;
            for row in body["rows"].as_array().ok_or("rows")? {
                if let (Some(id), Some(v)) = (
                    row["account_id"].as_str(),
                    row["features"].get(at).and_then(Value::as_f64),
                ) {
                    out.insert(id.to_owned(), v);
                }
            }
        }
        Ok(out)
    }

    /// The cut-off of point-in-time checks: yesterday (a one-day label window must have ended).
    fn cutoff(&self) -> NaiveDate {
        self.today - chrono::Duration::days(1)
    }

    /// `engagement_90d` of every account with history as of [`Suite::cutoff`], computed by the
    /// store from its versions (a training set of explicit examples): exactly what it holds.
    async fn engagement_at_cutoff(&self) -> Res<BTreeMap<String, f64>> {
        let cutoff = self.cutoff();
        let examples: Vec<Value> = self
            .account_ids()
            .iter()
            .map(|a| json!({"account_id": a, "cutoff": cutoff}))
            .collect();
        let text = reqwest::Client::new()
            .post(format!("{}/v1/training-sets", self.store))
            .json(&json!({"examples": examples, "horizon_days": 1}))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let mut at = None;
        let mut out = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)?;
            match v["kind"].as_str() {
                Some("header") => {
                    at = v["feature_names"]
                        .as_array()
                        .and_then(|n| n.iter().position(|n| n == "engagement_90d"));
                }
                Some("row") => {
                    let i = at.ok_or("header first")?;
                    let id = v["account_id"].as_str().ok_or("id")?.to_owned();
                    out.insert(id, v["features"][i].as_f64().ok_or("number")?);
                }
                Some("trailer") => {}
                _ => return Err(format!("training set: {line}").into()),
            }
        }
        Ok(out)
    }

    /// What `engagement_90d` must be from the source rows: live rows with an account and an
    /// event time before `as_of` and at most 90 days before it.
    fn expected_at(
        &self,
        rows: &[(Option<String>, Option<DateTime<Utc>>)],
        as_of: NaiveDate,
    ) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        for (account, at) in rows {
            let (Some(a), Some(at)) = (account, at) else {
                continue;
            };
            let day = at.date_naive();
            if day < as_of && (as_of - day).num_days() <= 90 {
                *out.entry(a.clone()).or_default() += 1.0;
            }
        }
        out
    }

    /// [`Suite::expected_at`] the online store's as-of day (the day after "today").
    fn expected(&self, rows: &[(Option<String>, Option<DateTime<Utc>>)]) -> BTreeMap<String, f64> {
        self.expected_at(rows, self.today + chrono::Duration::days(1))
    }
}

/// Live, completed `(account, visit time)` of every Web_Visit__c in the org.
fn live_visits(org: &RunningOrgSim) -> Vec<(Option<String>, Option<DateTime<Utc>>)> {
    org.data()
        .object("Web_Visit__c")
        .map(|o| {
            o.rows
                .iter()
                .filter(|r| r["IsDeleted"] != Value::Bool(true) && r["Status__c"] == "Completed")
                .map(|r| {
                    (
                        r["Account__c"].as_str().map(str::to_owned),
                        r["Visit_Date__c"].as_str().and_then(parse_datetime),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Accounts' values compared with what the source says (accounts without events are 0).
fn assert_engagement(
    got: &BTreeMap<String, f64>,
    want: &BTreeMap<String, f64>,
    context: &str,
) -> TestResult {
    assert!(!got.is_empty(), "{context}: no account has features");
    for (account, value) in got {
        let expected = want.get(account).copied().unwrap_or(0.0);
        assert_eq!(*value, expected, "{context}: account {account}");
    }
    let without: Vec<_> = want.keys().filter(|a| !got.contains_key(*a)).collect();
    assert!(
        without.is_empty(),
        "{context}: accounts with events but no features: {without:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_custom_object_syncs_incrementally_and_quarantines_rows_without_an_account() -> TestResult
{
    let (mut data, today) = small_org()?;
    // One visit has no account: it must be quarantined, not dropped silently or sent.
    let orphan = {
        let visits = data.object_mut("Web_Visit__c").ok_or("custom object")?;
        let row = &mut visits.rows[3];
        row.insert("Account__c".into(), Value::Null);
        row["Id"].as_str().ok_or("id")?.to_owned()
    };
    let suite = start(
        data,
        today,
        vec![visits_mapping()],
        |config, settings| {
            // Small pages and a low threshold: the custom object is read partly over REST and
            // the rest with Bulk API 2.0 (CSV: empty cells, `Z` datetimes).
            config.batch_size = 25;
            settings.bulk_threshold = 40;
            settings.bulk_poll_ms = 10;
        },
        true,
    )
    .await?;
    let objects = ["Account", "Order", "OrderItem", "Web_Visit__c"];
    let (status, report) = suite.sync(&objects).await?;
    assert_eq!(status, 200, "{report}");
    let visits = live_visits(&suite.org);
    assert!(
        visits.len() > 40,
        "enough visits for Bulk: {}",
        visits.len()
    );
    let all = suite.org.data().counts()["Web_Visit__c"] as u64;
    assert!(visits.len() < all as usize, "some visits bounced");
    assert_eq!(
        report["objects"]["Web_Visit__c"].as_u64(),
        Some(all - 1),
        "every visit but the orphan (bounced ones as tombstones): {report}"
    );
    let quarantined = report["quarantined"].as_array().ok_or("list")?;
    assert_eq!(report["quarantined_count"], 1, "{report}");
    assert_eq!(quarantined[0]["object"], "Web_Visit__c");
    assert_eq!(quarantined[0]["id"].as_str(), Some(orphan.as_str()));
    assert!(
        quarantined[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Account__c") && r.contains("no account reference")),
        "{report}"
    );
    assert_engagement(
        &suite.engagement().await?,
        &suite.expected(&visits),
        "after the first sync",
    )?;

    // Edits and deletions in the org: one visit moves to another account, one moves out of
    // the 90-day window, one is deleted, one bounces (leaves the mapping's filter).
    let rows = suite
        .org
        .data()
        .object("Web_Visit__c")
        .ok_or("visits")?
        .rows
        .clone();
    let id = |i: usize| rows[i]["Id"].as_str().unwrap_or_default().to_owned();
    let other_account = rows
        .iter()
        .filter_map(|r| r["Account__c"].as_str())
        .find(|a| Some(*a) != rows[0]["Account__c"].as_str())
        .ok_or("two accounts")?
        .to_owned();
    let change = |k: &str, v: Value| json!({ k: v }).as_object().cloned().unwrap_or_default();
    suite
        .org
        .update_record(
            "Web_Visit__c",
            &id(0),
            &change("Account__c", other_account.clone().into()),
        )
        .ok_or("update")?;
    suite
        .org
        .update_record(
            "Web_Visit__c",
            &id(1),
            &change("Visit_Date__c", "2010-01-01T10:00:00.000+0000".into()),
        )
        .ok_or("update")?;
    suite
        .org
        .delete_record("Web_Visit__c", &id(2))
        .ok_or("delete")?;
    assert_eq!(rows[4]["Status__c"], "Completed");
    suite
        .org
        .update_record(
            "Web_Visit__c",
            &id(4),
            &change("Status__c", "Bounced".into()),
        )
        .ok_or("update")?;
    let before = suite.engagement_at_cutoff().await?;

    let (status, report) = suite.sync(&["Web_Visit__c"]).await?;
    assert_eq!(status, 200, "{report}");
    // Incremental: only the three edited rows are read again (the bounced one is sent as a
    // tombstone, like the deletion).
    assert_eq!(report["objects"]["Web_Visit__c"], 3, "{report}");
    assert_eq!(report["quarantined_count"], 0, "{report}");
    let after = suite.engagement_at_cutoff().await?;
    assert_ne!(before, after, "the edits changed the features");
    // The store ends with exactly the source rows (the orphan was never sent), computed from
    // its versions. (Its online row of the account the visit moved away from is not
    // re-queued by the store — a feature-store issue reported separately — so the exact
    // check reads a point-in-time set.)
    let visits = live_visits(&suite.org);
    assert_engagement(
        &after,
        &suite.expected_at(&visits, suite.cutoff()),
        "after edits and a deletion",
    )?;

    // A third sync reads nothing new.
    let (status, report) = suite.sync(&["Web_Visit__c"]).await?;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["objects"]["Web_Visit__c"], 0, "{report}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_cloud_rows_arrive_as_engagement_events() -> TestResult {
    let (data, today) = small_org()?;
    let suite = start(
        data,
        today,
        vec![data_cloud_mapping()],
        |config, _| {
            // Query API v2's quirks: several batches, an empty middle one, a stale
            // `nextBatchId` on the last.
            config.dc_batch_size = 7;
            config.dc_empty_middle_batch = true;
            config.dc_stale_next_batch_id = true;
        },
        true,
    )
    .await?;
    let rows: Vec<(Option<String>, Option<DateTime<Utc>>)> = suite
        .org
        .data()
        .dc_object(DMO)
        .ok_or("DMO")?
        .rows
        .iter()
        .map(|r| {
            (
                r["ssot__AccountId__c"].as_str().map(str::to_owned),
                r["ssot__EngagementDateTm__c"]
                    .as_str()
                    .and_then(parse_datetime),
            )
        })
        .collect();
    // The small org's accounts: engagements of others are refused by nobody (the store keeps
    // events of any account id), so only count the ones whose accounts exist.
    let accounts: HashSet<String> = suite.account_ids().into_iter().collect();
    let (status, report) = suite.sync(&["Account", "Order", "OrderItem", DMO]).await?;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["objects"][DMO].as_u64(),
        Some(rows.len() as u64),
        "every Data Cloud row: {report}"
    );
    assert_eq!(report["quarantined_count"], 0, "{report}");
    let mine: Vec<_> = rows
        .iter()
        .filter(|(a, _)| a.as_ref().is_some_and(|a| accounts.contains(a)))
        .cloned()
        .collect();
    let want = suite.expected(&mine);
    assert!(
        want.values().any(|v| *v > 0.0),
        "some engagements fall in the window: {want:?}"
    );
    assert_engagement(&suite.engagement().await?, &want, "Data Cloud")?;

    // Incremental on the modstamp column: nothing new the second time.
    let (status, report) = suite.sync(&[DMO]).await?;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["objects"][DMO], 0, "{report}");
    Ok(())
}

#[tokio::test]
async fn a_mapping_naming_a_missing_field_or_object_fails_with_its_name() -> TestResult {
    let (data, today) = small_org()?;
    let mut missing_field = visits_mapping();
    missing_field.occurred_at = "Visit_Dat__c".into();
    let mut missing_object = visits_mapping();
    missing_object.source = "Web_Visits__c".into();
    let mut dc_missing = data_cloud_mapping();
    dc_missing.value = Some("ssot__Amount__c".into());
    let suite = start(
        data,
        today,
        vec![missing_field, missing_object, dc_missing],
        |_, _| {},
        false,
    )
    .await?;
    for (object, names) in [
        ("Web_Visit__c", ["Web_Visit__c", "Visit_Dat__c"]),
        ("Web_Visits__c", ["Web_Visits__c", "Web_Visits__c"]),
        (DMO, [DMO, "ssot__Amount__c"]),
    ] {
        let (status, body) = suite.sync(&[object]).await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("invalid_parameter")),
            "{body}"
        );
        let message = body["message"].as_str().unwrap_or_default();
        for n in names {
            assert!(message.contains(n), "{object}: {message}");
        }
    }
    // Nothing was read: the feature store (unreachable here) was never called, or the answer
    // would be 502 upstream_unavailable.
    Ok(())
}

#[tokio::test]
async fn a_type_mismatch_fails_with_the_field_and_its_type() -> TestResult {
    let (data, today) = small_org()?;
    let mut value_is_text = visits_mapping();
    value_is_text.value = Some("Channel__c".into());
    let mut dc_time_is_text = data_cloud_mapping();
    dc_time_is_text.occurred_at = "ssot__EngagementChannel__c".into();
    let suite = start(
        data,
        today,
        vec![value_is_text, dc_time_is_text],
        |_, _| {},
        false,
    )
    .await?;
    let (status, body) = suite.sync(&["Web_Visit__c"]).await?;
    assert_eq!(status, 422, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Channel__c")
            && message.contains("picklist")
            && message.contains("expected a number"),
        "{message}"
    );
    let (status, body) = suite.sync(&[DMO]).await?;
    assert_eq!(status, 422, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("ssot__EngagementChannel__c")
            && message.contains("VARCHAR")
            && message.contains("expected a date or datetime"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn an_injection_attempt_in_a_mapping_stops_start_up_with_the_name() -> TestResult {
    let (data, today) = small_org()?;
    let mut evil = visits_mapping();
    evil.occurred_at = "Visit_Date__c FROM Account WHERE Name != null".into();
    let Err(e) = start(data, today, vec![evil], |_, _| {}, false).await else {
        panic!("start-up must refuse the mapping");
    };
    let message = e.to_string();
    assert!(
        message.contains("Web_Visit__c")
            && message.contains("not an API name")
            && message.contains("Visit_Date__c FROM Account"),
        "{message}"
    );
    Ok(())
}

#[test]
fn mappings_load_from_a_settings_file_or_one_json_variable() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("connector.toml");
    std::fs::write(
        &file,
        r#"
[salesforce]
login_url = "https://login.salesforce.com"
client_id = "x"
username = "u@example.com"
private_key_path = "/k.pem"

[[object_mappings]]
source = "Web_Visit__c"
target = "engagement_event"
account = "Account__c"
occurred_at = "Visit_Date__c"
value = "Duration_Seconds__c"
event_type = "web_visit"
filter = { field = "Status__c", values = ["Completed"] }

[[object_mappings]]
source = "ssot__Engagement__dlm"
kind = "data_cloud"
target = "engagement_event"
id_field = "ssot__Id__c"
modstamp_field = "ssot__LastModifiedDate__c"
account = "ssot__AccountId__c"
occurred_at = "ssot__EngagementDateTm__c"
event_type_field = "ssot__EngagementChannel__c"
"#,
    )?;
    let s: Settings =
        sextant_service_kit::config::load_from("SEXTANT_CONNECTOR_TEST_NONE", Some(&file), None)?;
    assert_eq!(s.object_mappings.len(), 2);
    assert_eq!(
        s.object_mappings[0].event_type.as_deref(),
        Some("web_visit")
    );
    assert_eq!(s.object_mappings[1].kind, SourceKind::DataCloud);
    assert_eq!(
        s.object_mappings[0]
            .filter
            .as_ref()
            .map(|f| f.values.clone()),
        Some(vec!["Completed".to_owned()])
    );
    let env: std::collections::HashMap<String, String> = [
        (
            "P__SALESFORCE__LOGIN_URL",
            "https://login.salesforce.com".to_owned(),
        ),
        ("P__SALESFORCE__CLIENT_ID", "x".to_owned()),
        ("P__SALESFORCE__USERNAME", "u@example.com".to_owned()),
        ("P__SALESFORCE__PRIVATE_KEY_PATH", "/k.pem".to_owned()),
        (
            "P__OBJECT_MAPPINGS",
            serde_json::to_string(&[visits_mapping()])?,
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let v: Settings = sextant_service_kit::config::load_from("P", None, Some(env))?;
    assert_eq!(v.object_mappings, [visits_mapping()]);
    Ok(())
}
