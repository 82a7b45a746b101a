//! The feature store over HTTP, on SQLite and — when `SEXTANT_TEST_POSTGRES_URL` names a server
//! (CI sets it to 127.0.0.1:5432) — on PostgreSQL, each test in a fresh database.

use chrono::NaiveDate;
use serde_json::{Value, json};
use sextant_contracts::api::{HistoryStatus, IngestResponse, OnlineFeatures, TrainingSet};
use sextant_contracts::{ErrorCode, SalesforceId};
use sextant_feature_store::Settings;

mod support;

/// SQLite in memory, and PostgreSQL when configured.
async fn databases() -> Vec<String> {
    support::databases("sqlite::memory:".to_owned()).await
}

struct TestApp {
    base: String,
    http: reqwest::Client,
}

impl TestApp {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

async fn spawn(database_url: &str, today: &str) -> TestApp {
    let settings = Settings {
        port: 0,
        database_url: database_url.to_owned(),
        ..Settings::default()
    };
    spawn_with(settings, today).await
}

async fn spawn_with(settings: Settings, today: &str) -> TestApp {
    let day = NaiveDate::parse_from_str(today, "%Y-%m-%d").expect("date");
    let base = support::start(&settings, day).await;
    TestApp {
        base,
        http: reqwest::Client::new(),
    }
}

fn aid(n: u64) -> String {
    SalesforceId::from_parts("001", "5g", n).to_string()
}
fn oid(n: u64) -> String {
    SalesforceId::from_parts("801", "5g", n).to_string()
}

fn account(n: u64, name: &str) -> Value {
    json!({"id": aid(n), "name": name, "billing_country": "United Kingdom", "industry": null,
        "created_date": "2010-12-01T00:00:00Z", "last_modified_date": "2011-01-01T00:00:00Z",
        "system_modstamp": "2010-12-01T00:00:00Z"})
}

/// An order known (SystemModstamp) at noon of `known`.
fn order_known(n: u64, account: u64, date: &str, status: &str, known: &str) -> Value {
    json!({"id": oid(n), "account_id": aid(account), "effective_date": date, "status": status,
        "order_number": format!("5{n:05}"), "last_modified_date": format!("{known}T12:00:00Z"),
        "system_modstamp": format!("{known}T12:00:00Z")})
}

fn order(n: u64, account: u64, date: &str) -> Value {
    order_known(n, account, date, "Activated", date)
}

fn item_known(n: u64, order: u64, qty: f64, price: f64, known: &str) -> Value {
    json!({"id": SalesforceId::from_parts("802", "5g", n).to_string(), "order_id": oid(order),
        "product_id": null, "quantity": qty, "unit_price": price,
        "last_modified_date": format!("{known}T12:00:00Z"), "system_modstamp": format!("{known}T12:00:00Z")})
}

fn item(n: u64, order: u64, qty: f64, price: f64) -> Value {
    item_known(n, order, qty, price, "2011-01-01")
}

async fn ingest(app: &TestApp, object: &str, records: Vec<Value>) -> IngestResponse {
    let (status, body) = app
        .post("/v1/ingest", &json!({"object": object, "records": records}))
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).expect("ingest response")
}

/// Accounts 1..=3; account 1 orders before and after the cutoff (2011-06-01), account 2 only
/// before, account 3 never.
async fn load(app: &TestApp) {
    ingest(
        app,
        "Account",
        vec![account(1, "A"), account(2, "B"), account(3, "C")],
    )
    .await;
    ingest(
        app,
        "Order",
        vec![
            order(1, 1, "2011-01-10"),
            order(2, 1, "2011-06-20"),
            order(3, 2, "2011-03-01"),
        ],
    )
    .await;
    ingest(
        app,
        "OrderItem",
        vec![
            item(1, 1, 2.0, 5.0),
            item(2, 1, 1.0, 10.0),
            item(3, 2, 1.0, 99.0),
            item(4, 3, 4.0, 2.5),
        ],
    )
    .await;
}

/// Reads a streamed training set and checks its framing.
async fn training_set(app: &TestApp, body: &Value) -> Result<TrainingSet, (u16, Value)> {
    let resp = app
        .http
        .post(format!("{}/v1/training-sets", app.base))
        .json(body)
        .send()
        .await
        .expect("sent");
    let status = resp.status().as_u16();
    if status != 200 {
        return Err((status, resp.json().await.unwrap_or(Value::Null)));
    }
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-ndjson")
    );
    let text = resp.text().await.expect("body");
    let mut parser = sextant_contracts::stream::TrainingSetParser::default();
    parser.push(text.as_bytes()).expect("well-formed stream");
    Ok(parser.finish().expect("complete stream"))
}

fn feature(set_names: &[String], row: &[f64], name: &str) -> f64 {
    let i = set_names.iter().position(|x| x == name).expect("feature");
    row[i]
}

#[tokio::test]
async fn ingest_is_idempotent_and_order_independent() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        load(&app).await;
        let again = ingest(&app, "Order", vec![order(1, 1, "2011-01-10")]).await;
        assert_eq!(
            (again.written, again.unchanged),
            (0, 1),
            "{db}: a replay stores nothing"
        );
        // A newer version moves order 3 to a cancelled state; the older one replayed afterwards
        // changes nothing.
        let newer = order_known(3, 2, "2011-03-01", "Cancelled", "2011-03-05");
        let r = ingest(&app, "Order", vec![newer]).await;
        assert_eq!(r.written, 1, "{db}");
        assert!(
            r.accounts_refreshed >= 1,
            "{db}: online row of account 2 refreshed"
        );
        let r = ingest(&app, "Order", vec![order(3, 2, "2011-03-01")]).await;
        assert_eq!((r.written, r.unchanged), (0, 1), "{db}");
        let f = online(&app, &[aid(2)]).await;
        assert_eq!(
            f.rows[0].status,
            HistoryStatus::NoHistory,
            "{db}: a cancelled order is no purchase, and the older Activated version does not win"
        );
    }
}

async fn online(app: &TestApp, ids: &[String]) -> OnlineFeatures {
    let (status, body) = app
        .post(
            "/v1/features/online",
            &json!({"account_ids": ids, "include_sequences": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).expect("online features")
}

#[tokio::test]
async fn bad_records_are_answered_one_by_one_and_the_rest_stored() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        ingest(&app, "Account", vec![account(1, "A")]).await;
        let r = ingest(
            &app,
            "Order",
            vec![
                order(1, 1, "2011-01-10"),
                json!({"id": oid(2), "account_id": aid(1), "status": "Activated"}),
                json!({"id": oid(3), "account_id": SalesforceId::from_parts("003", "5g", 1).to_string(),
                    "effective_date": "2011-01-10", "status": "Activated", "last_modified_date": "2011-01-10T00:00:00Z"}),
                json!("not a record"),
            ],
        )
        .await;
        assert_eq!(r.written, 1, "{db}");
        let rejected: Vec<u64> = r.rejected.iter().map(|x| x.index).collect();
        assert_eq!(rejected, vec![1, 2, 3], "{db}");
        assert_eq!(r.rejected[0].id.as_deref(), Some(oid(2).as_str()));
        assert!(
            r.rejected[0].message.contains("effective_date"),
            "{:?}",
            r.rejected[0]
        );
        assert!(
            r.rejected[1].message.contains("not an Account id"),
            "{:?}",
            r.rejected[1]
        );
        assert_eq!(r.rejected[2].code, ErrorCode::InvalidRecord);
        let (status, body) = app
            .post("/v1/ingest", &json!({"object": "Widget", "records": []}))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_json")),
            "{db}"
        );
    }
}

#[tokio::test]
async fn deletions_remove_rows_from_their_known_time_on() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        load(&app).await;
        // Order 3 (account 2's only order, 2011-03-01) is deleted on 2011-07-01.
        let (status, body) = app
            .post(
                "/v1/ingest",
                &json!({"object": "Order", "deletions": [{"id": oid(3), "deleted_at": "2011-07-01T00:00:00Z"}]}),
            )
            .await;
        assert_eq!(status, 200, "{db}: {body}");
        assert_eq!(body["written"], 1, "{db}");
        let f = online(&app, &[aid(2)]).await;
        assert_eq!(f.rows[0].status, HistoryStatus::NoHistory, "{db}: gone now");
        let before = training_set(
            &app,
            &json!({"cutoffs": ["2011-06-01"], "horizon_days": 90}),
        )
        .await
        .expect("set");
        assert!(
            before.rows.iter().any(|r| r.account_id.as_str() == aid(2)),
            "{db}: still there as of a cut-off before the deletion"
        );
        let after = training_set(
            &app,
            &json!({"cutoffs": ["2011-08-01"], "horizon_days": 90}),
        )
        .await
        .expect("set");
        assert!(
            !after.rows.iter().any(|r| r.account_id.as_str() == aid(2)),
            "{db}: absent from a cut-off after it"
        );
        // A tombstone that arrives before its record still wins over it.
        let (status, _) = app
            .post(
                "/v1/ingest",
                &json!({"object": "Order", "deletions": [{"id": oid(9), "deleted_at": "2011-02-01T00:00:00Z"}]}),
            )
            .await;
        assert_eq!(status, 200);
        ingest(
            &app,
            "Order",
            vec![order_known(9, 3, "2011-01-05", "Activated", "2011-01-05")],
        )
        .await;
        ingest(
            &app,
            "OrderItem",
            vec![item_known(9, 9, 1.0, 10.0, "2011-01-05")],
        )
        .await;
        let f = online(&app, &[aid(3)]).await;
        assert_eq!(
            f.rows[0].status,
            HistoryStatus::NoHistory,
            "{db}: out-of-order tombstone"
        );
    }
}

#[tokio::test]
async fn training_sets_are_point_in_time_and_leak_nothing() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        load(&app).await;
        // Plant every kind of leak around the cut-off 2011-06-01 for account 2:
        // - a late-arriving row: dated before the cut-off, known only after it;
        ingest(
            &app,
            "Order",
            vec![order_known(20, 2, "2011-05-20", "Activated", "2011-06-15")],
        )
        .await;
        ingest(
            &app,
            "OrderItem",
            vec![item_known(20, 20, 1.0, 1000.0, "2011-06-15")],
        )
        .await;
        // - a row edited after the cut-off: order 3's line re-priced on 2011-07-01;
        ingest(
            &app,
            "OrderItem",
            vec![item_known(4, 3, 4.0, 250.0, "2011-07-01")],
        )
        .await;
        // - a backdated order: entered in August with an April effective date;
        ingest(
            &app,
            "Order",
            vec![order_known(21, 2, "2011-04-01", "Activated", "2011-08-02")],
        )
        .await;
        ingest(
            &app,
            "OrderItem",
            vec![item_known(21, 21, 1.0, 500.0, "2011-08-02")],
        )
        .await;
        // - a deletion after the cut-off (order 1 of account 1, deleted 2011-09-01).
        app.post(
            "/v1/ingest",
            &json!({"object": "Order", "deletions": [{"id": oid(1), "deleted_at": "2011-09-01T00:00:00Z"}]}),
        )
        .await;

        let set = training_set(
            &app,
            &json!({"cutoffs": ["2011-06-01"], "horizon_days": 90}),
        )
        .await
        .expect("set");
        let names = &set.header.feature_names;
        assert_eq!(
            set.rows.len(),
            2,
            "{db}: only accounts with history before the cut-off"
        );
        let a1 = set
            .rows
            .iter()
            .find(|r| r.account_id.as_str() == aid(1))
            .expect("a1");
        let a2 = set
            .rows
            .iter()
            .find(|r| r.account_id.as_str() == aid(2))
            .expect("a2");
        assert!(
            !a1.churned,
            "{db}: account 1 ordered within 90 days of the cut-off"
        );
        assert_eq!(
            feature(names, &a1.features, "frequency"),
            1.0,
            "{db}: deletion after the cut-off does not reach back"
        );
        assert_eq!(feature(names, &a1.features, "monetary_total"), 20.0, "{db}");
        assert_eq!(feature(names, &a1.features, "recency_days"), 142.0, "{db}");
        assert_eq!(
            feature(names, &a2.features, "frequency"),
            1.0,
            "{db}: late and backdated orders are invisible"
        );
        assert_eq!(
            feature(names, &a2.features, "monetary_total"),
            10.0,
            "{db}: the edit after the cut-off is invisible"
        );
        assert!(a2.churned, "{db}: account 2 did not order in the window");

        // The same request gives the same fingerprint; another cut-off another one.
        let again = training_set(
            &app,
            &json!({"cutoffs": ["2011-06-01"], "horizon_days": 90}),
        )
        .await
        .expect("set");
        assert_eq!(set.fingerprint, again.fingerprint, "{db}");
        assert_eq!(set.fingerprint.len(), 64);
        // Stacked cut-offs and explicit examples.
        let stacked = training_set(
            &app,
            &json!({"cutoffs": ["2011-02-01", "2011-06-01"], "horizon_days": 90, "include_sequences": true}),
        )
        .await
        .expect("set");
        assert_eq!(
            stacked.rows.len(),
            3,
            "{db}: account 1 at both cut-offs, account 2 at the later"
        );
        assert_ne!(stacked.fingerprint, set.fingerprint);
        let seq = stacked.rows[0].sequence.as_ref().expect("sequence");
        assert_eq!(seq.len(), 104);
        assert_eq!(stacked.header.sequence_channels.len(), seq[0].len());
        let examples = training_set(
            &app,
            &json!({"examples": [{"account_id": aid(2), "cutoff": "2011-06-01"}, {"account_id": aid(3), "cutoff": "2011-06-01"}], "horizon_days": 30}),
        )
        .await
        .expect("set");
        assert_eq!(examples.rows.len(), 1, "{db}: account 3 has no history");

        for (req, code) in [
            (
                json!({"cutoffs": ["2011-06-01"], "horizon_days": 0}),
                "invalid_parameter",
            ),
            (
                json!({"cutoffs": [], "horizon_days": 30}),
                "invalid_parameter",
            ),
            (
                json!({"cutoffs": ["2011-11-01"], "horizon_days": 90}),
                "label_window_open",
            ),
        ] {
            let err = training_set(&app, &req).await.expect_err("refused");
            assert_eq!(
                (err.0, err.1["code"].as_str()),
                (400, Some(code)),
                "{db}: {req}"
            );
        }
    }
}

#[tokio::test]
async fn online_features_are_materialised_and_mark_no_history() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        load(&app).await;
        let unknown = SalesforceId::from_parts("001", "5g", 99).to_string();
        let f = online(&app, &[aid(3), aid(1), unknown.clone(), aid(1)]).await;
        assert_eq!(f.as_of.to_string(), "2011-12-11", "{db}: the end of today");
        assert_eq!(
            f.rows.len(),
            2,
            "{db}: duplicates collapse, unknown ids are reported"
        );
        assert_eq!(
            f.rows[0].account_id.as_str(),
            aid(3),
            "{db}: request order is kept"
        );
        assert_eq!(
            f.rows[0].status,
            HistoryStatus::NoHistory,
            "{db}: never purchased"
        );
        assert!(f.rows[0].features.is_none(), "{db}: no made-up zeros");
        let a1 = f.rows[1].features.as_ref().expect("features");
        assert_eq!(
            feature(&f.feature_names, a1, "frequency"),
            2.0,
            "{db}: both orders of account 1"
        );
        assert_eq!(f.missing, vec![SalesforceId::parse(&unknown).expect("id")]);
        assert_eq!(
            f.rows[1].attributes.get("country").map(String::as_str),
            Some("United Kingdom")
        );
        assert_eq!(f.rows[1].sequence.as_ref().map(Vec::len), Some(104));
        // A new order refreshes the materialised row through ingest.
        let r = ingest(&app, "Order", vec![order(30, 3, "2011-12-01")]).await;
        assert_eq!(r.accounts_refreshed, 1, "{db}");
        let r = ingest(&app, "OrderItem", vec![item(30, 30, 1.0, 7.0)]).await;
        assert_eq!(r.accounts_refreshed, 1, "{db}");
        let f = online(&app, &[aid(3)]).await;
        assert_eq!(f.rows[0].status, HistoryStatus::Ok, "{db}");
        let v = f.rows[0].features.as_ref().expect("features");
        assert_eq!(feature(&f.feature_names, v, "monetary_total"), 7.0, "{db}");
        assert_eq!(feature(&f.feature_names, v, "recency_days"), 10.0, "{db}");

        let too_many: Vec<String> = (1..=201).map(aid).collect();
        let (status, body) = app
            .post("/v1/features/online", &json!({"account_ids": too_many}))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("too_many_records")),
            "{db}"
        );
        let (status, body) = app
            .post("/v1/features/online", &json!({"account_ids": []}))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("empty_request")),
            "{db}"
        );
        let (status, body) = app
            .post("/v1/features/online", &json!({"account_ids": ["001BOGUS"]}))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_json")),
            "{db}"
        );
    }
}

#[tokio::test]
async fn only_purchase_statuses_count() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        ingest(&app, "Account", vec![account(1, "A")]).await;
        ingest(
            &app,
            "Order",
            vec![
                order_known(1, 1, "2011-03-01", "Draft", "2011-03-01"),
                order_known(2, 1, "2011-04-01", "activated", "2011-04-01"),
            ],
        )
        .await;
        ingest(
            &app,
            "OrderItem",
            vec![item(1, 1, 1.0, 100.0), item(2, 2, 1.0, 5.0)],
        )
        .await;
        let f = online(&app, &[aid(1)]).await;
        let v = f.rows[0].features.as_ref().expect("features");
        assert_eq!(
            feature(&f.feature_names, v, "frequency"),
            1.0,
            "{db}: the draft is no purchase"
        );
        assert_eq!(feature(&f.feature_names, v, "monetary_total"), 5.0, "{db}");
    }
}

#[tokio::test]
async fn bad_input_gets_stable_error_codes() {
    let app = spawn("sqlite::memory:", "2011-12-10").await;
    let resp = app
        .http
        .post(format!("{}/v1/ingest", app.base))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["code"], "invalid_json");
    let (status, body) = app
        .post("/v1/ingest", &json!({"object": "Widget", "records": []}))
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")));
    let resp = app
        .http
        .get(format!("{}/v1/nothing", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 404);
    let resp = app
        .http
        .get(format!("{}/v1/accounts?limit=0", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 400);
    let resp = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn accounts_page_through_every_id() {
    let app = spawn("sqlite::memory:", "2011-12-10").await;
    load(&app).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            Some(a) => format!("{}/v1/accounts?limit=2&after={a}", app.base),
            None => format!("{}/v1/accounts?limit=2", app.base),
        };
        let page: Value = app
            .http
            .get(url)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        seen.extend(
            page["account_ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|v| v.as_str().unwrap_or("").to_owned()),
        );
        match page["next_after"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3);
}

#[tokio::test]
async fn docs_are_served_offline() {
    let app = spawn("sqlite::memory:", "2011-12-10").await;
    let spec: Value = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(spec["openapi"], "3.1.0");
    let page = app
        .http
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("swagger") && !page.contains("https://"),
        "the docs page loads nothing from the internet"
    );
}

#[tokio::test]
async fn drift_compares_online_values_with_training_bins() {
    let app = spawn("sqlite::memory:", "2011-12-10").await;
    load(&app).await;
    // Both online accounts with history have frequency 2 and 1: a reference that puts everyone
    // below 1.5 sees half of them move; one that matches sees nothing.
    let (status, body) = app
        .post(
            "/v1/drift",
            &json!({"feature_set": "rfmt-v2", "references": [
                {"feature": "frequency", "edges": [1.5], "fractions": [1.0, 0.0]},
                {"feature": "monetary_total", "edges": [100.0], "fractions": [0.5, 0.5]}
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows_compared"], 2);
    assert_eq!(body["pending_refresh"], 0, "{body}");
    assert_eq!(body["features"][0]["level"], "significant", "{body}");
    assert_eq!(body["features"][1]["level"], "stable", "{body}");
    assert!(body["features"][1]["psi"].as_f64().unwrap_or(1.0).abs() < 1e-9);
    for (req, code) in [
        (
            json!({"feature_set": "rfmt-v1", "references": [{"feature": "frequency", "edges": [], "fractions": [1.0]}]}),
            "invalid_parameter",
        ),
        (
            json!({"feature_set": "rfmt-v2", "references": [{"feature": "nope", "edges": [], "fractions": [1.0]}]}),
            "invalid_parameter",
        ),
        (
            json!({"feature_set": "rfmt-v2", "references": [{"feature": "frequency", "edges": [2.0, 1.0], "fractions": [0.3, 0.3, 0.4]}]}),
            "invalid_parameter",
        ),
        (
            json!({"feature_set": "rfmt-v2", "references": []}),
            "invalid_parameter",
        ),
    ] {
        let (status, body) = app.post("/v1/drift", &req).await;
        assert_eq!((status, body["code"].as_str()), (400, Some(code)), "{req}");
    }
    let empty = spawn("sqlite::memory:", "2011-12-10").await;
    let (status, body) = empty
        .post(
            "/v1/drift",
            &json!({"feature_set": "rfmt-v2", "references": [{"feature": "frequency", "edges": [], "fractions": [1.0]}]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("insufficient_data"))
    );
}

#[tokio::test]
async fn accounts_edited_after_a_cutoff_still_count_if_created_before_it() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        // Account 1 was created in 2010 but the sync only ever saw its 2011-11 version; account 2
        // was created after the cut-off.
        let mut a1 = account(1, "A");
        a1["system_modstamp"] = json!("2011-11-01T00:00:00Z");
        let mut a2 = account(2, "B");
        a2["created_date"] = json!("2011-07-01T00:00:00Z");
        a2["system_modstamp"] = json!("2011-07-01T00:00:00Z");
        ingest(&app, "Account", vec![a1, a2]).await;
        ingest(
            &app,
            "Order",
            vec![order(1, 1, "2011-02-01"), order(2, 2, "2011-05-01")],
        )
        .await;
        ingest(
            &app,
            "OrderItem",
            vec![item(1, 1, 1.0, 5.0), item(2, 2, 1.0, 5.0)],
        )
        .await;
        let set = training_set(
            &app,
            &json!({"cutoffs": ["2011-06-01"], "horizon_days": 90}),
        )
        .await
        .expect("set");
        let ids: Vec<&str> = set.rows.iter().map(|r| r.account_id.as_str()).collect();
        assert_eq!(ids, vec![aid(1).as_str()], "{db}");
        assert_eq!(
            set.rows[0].attributes.get("country").map(String::as_str),
            Some("United Kingdom")
        );
    }
}

/// One sample of a metric without labels from `/metrics`.
async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn the_background_refresher_drains_what_ingest_queued() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        let before = metric(&app, "sextant_feature_store_online_refreshed_total")
            .await
            .unwrap_or(0.0);
        ingest(&app, "Account", vec![account(1, "A"), account(2, "B")]).await;
        let r = ingest(
            &app,
            "Order",
            vec![order(1, 1, "2011-03-01"), order(2, 2, "2011-04-01")],
        )
        .await;
        assert_eq!(r.accounts_refreshed, 2, "{db}: both accounts queued");
        // No lookup is made: only the background worker can move the counter and empty the
        // queue. Waits for the condition (bounded), it does not time anything.
        let mut drained = false;
        for _ in 0..200 {
            let refreshed = metric(&app, "sextant_feature_store_online_refreshed_total")
                .await
                .unwrap_or(0.0);
            let queued = metric(&app, "sextant_feature_store_refresh_queue_accounts").await;
            if refreshed >= before + 2.0 && queued == Some(0.0) {
                drained = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            drained,
            "{db}: the refresher recomputed both queued accounts"
        );
        let (status, body) = app
            .post(
                "/v1/drift",
                &json!({"feature_set": "rfmt-v2", "references": [
                    {"feature": "frequency", "edges": [1.5], "fractions": [1.0, 0.0]}]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["pending_refresh"], 0, "{db}: {body}");
        assert_eq!(body["rows_compared"], 2, "{db}: {body}");
    }
}

fn product(n: u64, family: &str, known: &str) -> Value {
    json!({"id": SalesforceId::from_parts("01t", "5g", n).to_string(), "name": format!("Product {n}"),
        "product_code": null, "family": family,
        "last_modified_date": format!("{known}T12:00:00Z"), "system_modstamp": format!("{known}T12:00:00Z")})
}

fn line_of(n: u64, order: u64, product: u64, price: f64) -> Value {
    let mut v = item(n, order, 1.0, price);
    v["product_id"] = json!(SalesforceId::from_parts("01t", "5g", product).to_string());
    v
}

#[tokio::test]
async fn a_recategorised_product_requeues_the_accounts_that_bought_it() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        ingest(
            &app,
            "Product2",
            vec![
                product(1, "Garden", "2011-01-01"),
                product(2, "Kitchen", "2011-01-01"),
            ],
        )
        .await;
        ingest(&app, "Account", vec![account(1, "A"), account(2, "B")]).await;
        ingest(
            &app,
            "Order",
            vec![order(1, 1, "2011-03-01"), order(2, 2, "2011-03-02")],
        )
        .await;
        // Account 1 bought both products, account 2 only product 1.
        ingest(
            &app,
            "OrderItem",
            vec![
                line_of(1, 1, 1, 10.0),
                line_of(2, 1, 2, 10.0),
                line_of(3, 2, 1, 5.0),
            ],
        )
        .await;
        let f = online(&app, &[aid(1), aid(2)]).await;
        let v = f.rows[0].features.as_ref().expect("features");
        assert_eq!(feature(&f.feature_names, v, "category_count"), 2.0, "{db}");
        assert_eq!(
            feature(&f.feature_names, v, "top_category_share"),
            0.5,
            "{db}"
        );

        // An edit that keeps the category, and a replay, queue nobody.
        let mut renamed = product(2, "Kitchen", "2011-05-01");
        renamed["name"] = json!("Kettle");
        let r = ingest(&app, "Product2", vec![renamed]).await;
        assert_eq!((r.written, r.accounts_refreshed), (1, 0), "{db}");
        let r = ingest(&app, "Product2", vec![product(2, "Kitchen", "2011-01-01")]).await;
        assert_eq!((r.written, r.accounts_refreshed), (0, 0), "{db}");

        // Product 2 moves to Garden: only its buyer (account 1) is queued, and a lookup sees it.
        let r = ingest(&app, "Product2", vec![product(2, "Garden", "2011-06-01")]).await;
        assert_eq!((r.written, r.accounts_refreshed), (1, 1), "{db}");
        let f = online(&app, &[aid(1)]).await;
        let v = f.rows[0].features.as_ref().expect("features");
        assert_eq!(feature(&f.feature_names, v, "category_count"), 1.0, "{db}");
        assert_eq!(
            feature(&f.feature_names, v, "top_category_share"),
            1.0,
            "{db}"
        );

        // An older version arriving late is not the latest: nothing changes.
        let r = ingest(&app, "Product2", vec![product(2, "Toys", "2011-02-01")]).await;
        assert_eq!((r.written, r.accounts_refreshed), (1, 0), "{db}");
    }
}

fn case(n: u64, account: u64, subject: &str, created: &str) -> Value {
    json!({"id": SalesforceId::from_parts("500", "5g", n).to_string(), "account_id": aid(account),
        "subject": subject, "description": null, "status": "New",
        "created_date": format!("{created}T09:00:00Z"), "last_modified_date": format!("{created}T09:00:00Z"),
        "system_modstamp": format!("{created}T09:00:00Z")})
}

#[tokio::test]
async fn a_loaded_sentiment_model_judges_case_text_and_the_lexicon_does_without_one() {
    let artifact = all_negative_model();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sentiment.json");
    std::fs::write(&path, serde_json::to_vec(&artifact).expect("json")).expect("write");
    for db in databases().await {
        for with_model in [true, false] {
            let settings = Settings {
                port: 0,
                database_url: db.clone(),
                sentiment_model_url: with_model.then(|| format!("file://{}", path.display())),
                ..Settings::default()
            };
            let app = spawn_with(settings, "2011-12-10").await;
            if with_model {
                let mut loaded = false;
                for _ in 0..200 {
                    if metric(&app, "sextant_feature_store_sentiment_model_loaded").await
                        == Some(1.0)
                    {
                        loaded = true;
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                }
                assert!(loaded, "{db}: the model file loads");
            } else {
                assert_eq!(
                    metric(&app, "sextant_feature_store_sentiment_model_loaded").await,
                    None,
                    "{db}: no model configured, no gauge"
                );
            }
            // PostgreSQL databases are shared by both rounds: distinct ids per round.
            let base = if with_model { 100 } else { 200 };
            ingest(&app, "Account", vec![account(base, "A")]).await;
            ingest(&app, "Order", vec![order(base, base, "2011-10-01")]).await;
            let r = ingest(
                &app,
                "Case",
                vec![case(base, base, "Thanks, works great", "2011-11-01")],
            )
            .await;
            assert_eq!(r.written, 1, "{db}");
            let f = online(&app, &[aid(base)]).await;
            let v = f.rows[0].features.as_ref().expect("features");
            let want = if with_model { 1.0 } else { 0.0 };
            assert_eq!(
                feature(&f.feature_names, v, "negative_case_share_365d"),
                want,
                "{db}: model loaded = {with_model}"
            );
        }
    }
}

#[tokio::test]
async fn a_model_that_arrives_later_rejudges_the_cases_the_lexicon_judged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sentiment.json");
    for (round, db) in databases().await.into_iter().enumerate() {
        let _ = std::fs::remove_file(&path);
        let settings = Settings {
            port: 0,
            database_url: db.clone(),
            // Not there yet: the lexicon judges what arrives until the trainer publishes.
            sentiment_model_url: Some(format!("file://{}", path.display())),
            sentiment_refresh_secs: 1,
            ..Settings::default()
        };
        let app = spawn_with(settings, "2011-12-10").await;
        let base = 300 + 10 * round as u64;
        ingest(
            &app,
            "Account",
            vec![account(base, "A"), account(base + 1, "B")],
        )
        .await;
        ingest(
            &app,
            "Order",
            vec![
                order(base, base, "2011-10-01"),
                order(base + 1, base + 1, "2011-10-01"),
            ],
        )
        .await;
        ingest(
            &app,
            "Case",
            vec![
                case(base, base, "Thanks, works great", "2011-11-01"),
                case(
                    base + 1,
                    base + 1,
                    "Broken and useless, terrible",
                    "2011-11-02",
                ),
            ],
        )
        .await;
        let share = |f: &OnlineFeatures, i: usize| {
            feature(
                &f.feature_names,
                f.rows[i].features.as_ref().expect("features"),
                "negative_case_share_365d",
            )
        };
        let ids = [aid(base), aid(base + 1)];
        let f = online(&app, &ids).await;
        assert_eq!(
            (share(&f, 0), share(&f, 1)),
            (0.0, 1.0),
            "{db}: the lexicon judged"
        );

        // The model arrives: stored cases are re-judged and their accounts' rows refreshed.
        std::fs::write(
            &path,
            serde_json::to_vec(&all_negative_model()).expect("json"),
        )
        .expect("write");
        let mut rejudged = false;
        for _ in 0..400 {
            let f = online(&app, &ids).await;
            if share(&f, 0) == 1.0 {
                rejudged = true;
                assert_eq!(share(&f, 1), 1.0, "{db}");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert!(rejudged, "{db}: the kind case was re-judged by the model");
        assert!(
            metric(&app, "sextant_feature_store_cases_rescored_total")
                .await
                .is_some_and(|n| n >= 2.0),
            "{db}: the re-judged versions are counted"
        );
    }
}

/// A model that reads every text as negative: what the word-list lexicon never says of
/// "Thanks, works great", so the feature shows which of the two judged the case.
fn all_negative_model() -> sextant_models::sentiment::SentimentArtifact {
    use sextant_models::Dense;
    use sextant_models::sentiment::{FeatureConfig, LEXICON_FEATURES, OUTPUTS, SentimentArtifact};
    let dim = 2;
    SentimentArtifact {
        version: "sentiment-test".into(),
        features: FeatureConfig::default(),
        dim,
        rows: vec![],
        vectors: vec![],
        lexicon_means: vec![0.0; LEXICON_FEATURES],
        lexicon_stds: vec![1.0; LEXICON_FEATURES],
        layers: vec![Dense {
            inputs: dim + LEXICON_FEATURES,
            outputs: OUTPUTS,
            weights: vec![0.0; (dim + LEXICON_FEATURES) * OUTPUTS],
            bias: vec![5.0, 0.0, 0.0, 0.0],
        }],
    }
}

fn pid(n: u64) -> String {
    SalesforceId::from_parts("01t", "5g", n).to_string()
}

fn catalogue_product(n: u64, name: &str, family: Option<&str>) -> Value {
    json!({"id": pid(n), "name": name, "product_code": null, "family": family,
        "last_modified_date": "2011-01-01T00:00:00Z", "system_modstamp": "2011-01-01T00:00:00Z"})
}

fn line(n: u64, order: u64, product: u64, qty: f64, known: &str) -> Value {
    json!({"id": SalesforceId::from_parts("802", "5g", n).to_string(), "order_id": oid(order),
        "product_id": pid(product), "quantity": qty, "unit_price": 2.5,
        "last_modified_date": format!("{known}T12:00:00Z"), "system_modstamp": format!("{known}T12:00:00Z")})
}

/// Account 1: two purchases and a draft; account 2: one purchase whose only line was later
/// deleted, and one with a returned (negative) line; account 3: nothing.
async fn load_purchases(app: &TestApp) {
    ingest(
        app,
        "Account",
        vec![account(1, "A"), account(2, "B"), account(3, "C")],
    )
    .await;
    ingest(
        app,
        "Product2",
        vec![
            catalogue_product(1, "LUNCH BAG, RED", Some("Bags")),
            catalogue_product(2, "TEA MUG", None),
        ],
    )
    .await;
    ingest(
        app,
        "Order",
        vec![
            order(1, 1, "2011-02-01"),
            order(2, 1, "2011-03-01"),
            order_known(3, 1, "2011-04-01", "Draft", "2011-04-01"),
            order(4, 2, "2011-02-15"),
            order(5, 2, "2011-05-01"),
        ],
    )
    .await;
    ingest(
        app,
        "OrderItem",
        vec![
            line(1, 1, 1, 1.0, "2011-02-01"),
            line(2, 1, 2, 2.0, "2011-02-01"),
            line(3, 2, 2, 1.0, "2011-03-01"),
            line(4, 3, 1, 5.0, "2011-04-01"),
            line(5, 4, 1, 1.0, "2011-02-15"),
            line(6, 5, 2, -1.0, "2011-05-01"),
            line(7, 5, 1, 3.0, "2011-05-01"),
        ],
    )
    .await;
    let (status, body) = app
        .post(
            "/v1/ingest",
            &json!({"object": "OrderItem", "deletions": [{"id": SalesforceId::from_parts("802", "5g", 5).to_string(), "deleted_at": "2011-06-01T00:00:00Z"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn purchases_export_and_history_hold_only_current_purchase_lines() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        load_purchases(&app).await;

        let csv = app
            .http
            .get(format!("{}/v1/purchases", app.base))
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("body");
        let mut lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines.remove(0),
            "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Family",
            "{db}"
        );
        let expected = [
            format!(
                "{},{},\"LUNCH BAG, RED\",1,2011-02-01 00:00:00,2.5,{},BAGS",
                oid(1),
                pid(1),
                aid(1)
            ),
            format!(
                "{},{},TEA MUG,2,2011-02-01 00:00:00,2.5,{},MUG",
                oid(1),
                pid(2),
                aid(1)
            ),
            format!(
                "{},{},TEA MUG,1,2011-03-01 00:00:00,2.5,{},MUG",
                oid(2),
                pid(2),
                aid(1)
            ),
            format!(
                "{},{},\"LUNCH BAG, RED\",3,2011-05-01 00:00:00,2.5,{},BAGS",
                oid(5),
                pid(1),
                aid(2)
            ),
        ];
        assert_eq!(
            lines,
            expected.iter().map(String::as_str).collect::<Vec<_>>(),
            "{db}: the draft, the deleted line and the return are not purchases"
        );

        let (status, body) = app
            .post(
                "/v1/purchases/history",
                &json!({"account_ids": [aid(2), aid(1), aid(3), aid(1)], "max_orders": 1}),
            )
            .await;
        assert_eq!(status, 200, "{db}: {body}");
        let accounts = body["accounts"].as_array().expect("accounts");
        assert_eq!(accounts.len(), 3, "{db}: duplicates once: {body}");
        assert_eq!(accounts[0]["account_id"], aid(2));
        assert_eq!(
            accounts[1]["orders"].as_array().map(Vec::len),
            Some(1),
            "{db}: max_orders keeps the latest"
        );
        assert_eq!(accounts[1]["orders"][0]["order_id"], oid(2));
        assert_eq!(accounts[1]["orders"][0]["date"], "2011-03-01");
        assert_eq!(accounts[1]["orders"][0]["product_ids"], json!([pid(2)]));
        assert_eq!(
            accounts[2]["orders"],
            json!([]),
            "{db}: no purchases, no orders"
        );
        let (_, body) = app
            .post("/v1/purchases/history", &json!({"account_ids": [aid(1)]}))
            .await;
        let orders = body["accounts"][0]["orders"].as_array().expect("orders");
        assert_eq!(orders.len(), 2, "{db}: {body}");
        assert_eq!(
            orders[0]["product_ids"],
            json!([pid(1), pid(2)]),
            "{db}: oldest first"
        );

        for (request, code) in [
            (json!({"account_ids": []}), "empty_request"),
            (
                json!({"account_ids": [aid(1)], "max_orders": 0}),
                "invalid_parameter",
            ),
            (
                json!({"account_ids": [aid(1)], "max_orders": 101}),
                "invalid_parameter",
            ),
            (
                json!({"account_ids": (0..201).map(aid).collect::<Vec<_>>()}),
                "too_many_records",
            ),
        ] {
            let (status, body) = app.post("/v1/purchases/history", &request).await;
            assert_eq!(status, 400, "{db}: {request}: {body}");
            assert_eq!(body["code"], code, "{db}: {request}");
        }
    }
}

#[tokio::test]
async fn the_prediction_log_judges_matured_scores_against_later_purchases() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        load(&app).await;
        let p = |account: u64, at: &str, score: f64, horizon: u32| {
            json!({"account_id": aid(account), "model_version": "churn-v3",
                "scored_at": format!("{at}T09:00:00Z"), "score": score, "band": "high",
                "action": "retention_offer", "horizon_days": horizon})
        };
        // Account 1 orders on 2011-06-20 (within 30 days of 2011-06-01), account 2 never again.
        let batch = json!({"predictions": [
            p(1, "2011-06-01", 0.1, 30),
            p(2, "2011-06-01", 0.8, 30),
            p(3, "2011-12-01", 0.5, 90),
        ]});
        let (status, body) = app.post("/v1/predictions", &batch).await;
        assert_eq!(
            (status, body["stored"].as_u64()),
            (200, Some(3)),
            "{db}: {body}"
        );
        let (status, body) = app.post("/v1/predictions", &batch).await;
        assert_eq!(
            (status, body["stored"].as_u64()),
            (200, Some(0)),
            "{db}: a replay stores nothing"
        );

        let (status, report) = get(&app, "/v1/predictions/realised?model_version=churn-v3").await;
        assert_eq!(status, 200, "{db}: {report}");
        assert_eq!(report["as_of"], "2011-12-10");
        assert_eq!(
            report["rows_read"], 2,
            "{db}: the December score has not matured: {report}"
        );
        assert_eq!(report["truncated"], false);
        let weeks = report["weeks"].as_array().expect("weeks");
        assert_eq!(weeks.len(), 1, "{db}: {report}");
        let w = &weeks[0];
        assert_eq!(w["week_start"], "2011-05-30");
        assert_eq!(
            (w["predictions"].as_u64(), w["churned"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(w["roc_auc"].as_f64(), Some(1.0), "{db}: {w}");
        assert!((w["mean_score"].as_f64().unwrap_or(0.0) - 0.45).abs() < 1e-9);
        assert_eq!(w["churn_rate"].as_f64(), Some(0.5));

        let (_, report) = get(&app, "/v1/predictions/realised?model_version=churn-v4").await;
        assert_eq!(report["weeks"], json!([]), "{db}: versions do not mix");
        for (path, code) in [
            (
                "/v1/predictions/realised?model_version=nope",
                "invalid_parameter",
            ),
            (
                "/v1/predictions/realised?model_version=churn-v3&max_rows=0",
                "invalid_parameter",
            ),
        ] {
            let (status, body) = get(&app, path).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (400, Some(code)),
                "{db}: {path}"
            );
        }
        for (request, code) in [
            (json!({"predictions": []}), "empty_request"),
            (
                json!({"predictions": [p(1, "2011-06-01", 1.5, 30)]}),
                "invalid_parameter",
            ),
            (
                json!({"predictions": [p(1, "2011-06-01", 0.5, 0)]}),
                "invalid_parameter",
            ),
        ] {
            let (status, body) = app.post("/v1/predictions", &request).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (400, Some(code)),
                "{db}: {request}"
            );
        }
    }
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let resp = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .expect("sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_record_that_moves_to_another_account_leaves_the_old_ones_features() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        load(&app).await;
        let before = online(&app, &[aid(2)]).await;
        assert_eq!(before.rows[0].status, HistoryStatus::Ok, "{db}");
        // Order 3 (account 2's only order) is re-parented to account 3.
        let mut moved = order_known(3, 3, "2011-03-01", "Activated", "2011-07-01");
        moved["account_id"] = json!(aid(3));
        ingest(&app, "Order", vec![moved]).await;
        let after = online(&app, &[aid(2), aid(3)]).await;
        assert_eq!(
            after.rows[0].status,
            HistoryStatus::NoHistory,
            "{db}: account 2 no longer has the order"
        );
        assert_eq!(after.rows[1].status, HistoryStatus::Ok, "{db}");
    }
}

#[tokio::test]
async fn an_account_deletion_is_stored_and_takes_the_account_out() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        load(&app).await;
        let (status, body) = app
            .post(
                "/v1/ingest",
                &json!({"object": "Account", "deletions": [{"id": aid(2), "deleted_at": "2011-08-01T00:00:00Z"}]}),
            )
            .await;
        assert_eq!(status, 200, "{db}: {body}");
        assert_eq!(body["written"], 1, "{body}");
        let (status, body) = app
            .post(
                "/v1/features/online",
                &json!({"account_ids": [aid(1), aid(2)]}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["missing"], json!([aid(2)]), "{db}: {body}");
        assert_eq!(body["rows"][0]["account_id"], aid(1));
    }
}
