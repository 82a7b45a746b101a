//! The feature store over HTTP, on SQLite and — when `SEXTANT_TEST_POSTGRES_URL` names a server
//! (CI sets it to 127.0.0.1:5432) — on PostgreSQL, each test in a fresh database.

use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use sextant_contracts::SalesforceId;
use sextant_contracts::api::{IngestBatch, IngestResponse, OnlineFeatures, TrainingSet};
use sextant_contracts::records::{AccountRecord, OrderItemRecord, OrderRecord};
use sextant_contracts::time::FixedClock;
use sextant_feature_store::{Application, Settings};

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

/// Database URLs to run each test against: SQLite always, PostgreSQL when configured.
async fn databases() -> Vec<String> {
    let mut urls = vec!["sqlite::memory:".to_owned()];
    match std::env::var("SEXTANT_TEST_POSTGRES_URL") {
        Ok(base) => {
            let name = format!("sextant_test_{}", uuid_like());
            let admin = Database::connect(&base)
                .await
                .expect("PostgreSQL reachable at SEXTANT_TEST_POSTGRES_URL");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create database");
            let (prefix, _) = base.rsplit_once('/').expect("url has a database name");
            urls.push(format!("{prefix}/{name}"));
        }
        Err(_) => eprintln!("SKIPPED PostgreSQL variant: SEXTANT_TEST_POSTGRES_URL is not set"),
    }
    urls
}

fn uuid_like() -> String {
    let n: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{:x}{:x}", n, std::process::id())
}

async fn spawn(database_url: &str, today: &str) -> TestApp {
    let settings = Settings {
        port: 0,
        database_url: database_url.to_owned(),
        ..Settings::default()
    };
    let day = NaiveDate::parse_from_str(today, "%Y-%m-%d").expect("date");
    let clock = Arc::new(FixedClock(
        Utc.from_utc_datetime(&day.and_hms_opt(12, 0, 0).expect("time")),
    ));
    let app = Application::build(&settings, clock).await.expect("starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        http: reqwest::Client::new(),
    }
}

fn account(n: u64, name: &str) -> AccountRecord {
    AccountRecord {
        id: SalesforceId::from_parts("001", "5g", n),
        name: name.to_owned(),
        billing_country: Some("United Kingdom".into()),
        industry: None,
        created_date: Utc
            .with_ymd_and_hms(2010, 12, 1, 0, 0, 0)
            .single()
            .expect("t"),
        last_modified_date: Utc
            .with_ymd_and_hms(2011, 1, 1, 0, 0, 0)
            .single()
            .expect("t"),
    }
}

fn order(n: u64, account: u64, date: &str) -> OrderRecord {
    OrderRecord {
        id: SalesforceId::from_parts("801", "5g", n),
        account_id: SalesforceId::from_parts("001", "5g", account),
        effective_date: NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("date"),
        status: "Activated".into(),
        order_number: Some(format!("5{n:05}")),
        last_modified_date: Utc
            .with_ymd_and_hms(2011, 1, 1, 0, 0, 0)
            .single()
            .expect("t"),
    }
}

fn item(n: u64, order: u64, qty: f64, price: f64) -> OrderItemRecord {
    OrderItemRecord {
        id: SalesforceId::from_parts("802", "5g", n),
        order_id: SalesforceId::from_parts("801", "5g", order),
        product_id: None,
        quantity: qty,
        unit_price: price,
        last_modified_date: Utc
            .with_ymd_and_hms(2011, 1, 1, 0, 0, 0)
            .single()
            .expect("t"),
    }
}

/// Accounts 1..=3; account 1 orders before and after the cutoff (2011-06-01), account 2 only
/// before, account 3 never.
async fn load(app: &TestApp) {
    let batches = [
        IngestBatch::Account(vec![account(1, "A"), account(2, "B"), account(3, "C")]),
        IngestBatch::Order(vec![
            order(1, 1, "2011-01-10"),
            order(2, 1, "2011-06-20"),
            order(3, 2, "2011-03-01"),
        ]),
        IngestBatch::OrderItem(vec![
            item(1, 1, 2.0, 5.0),
            item(2, 1, 1.0, 10.0),
            item(3, 2, 1.0, 99.0),
            item(4, 3, 4.0, 2.5),
        ]),
    ];
    for b in batches {
        let (status, body) = app
            .post("/v1/ingest", &serde_json::to_value(&b).expect("json"))
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn ingest_is_an_idempotent_upsert() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        load(&app).await;
        load(&app).await;
        let renamed = IngestBatch::Account(vec![account(1, "A renamed")]);
        let (status, body) = app
            .post("/v1/ingest", &serde_json::to_value(&renamed).expect("json"))
            .await;
        assert_eq!(status, 200, "{db}: {body}");
        let resp: IngestResponse = serde_json::from_value(body).expect("response");
        assert_eq!(
            (resp.upserted, resp.total),
            (1, 3),
            "{db}: re-ingesting adds nothing"
        );
        let (_, body) = app
            .post("/v1/ingest", &json!({"object": "OrderItem", "records": []}))
            .await;
        assert_eq!(body["total"], 4, "{db}");
    }
}

#[tokio::test]
async fn training_sets_are_point_in_time() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        load(&app).await;
        let (status, body) = app
            .post(
                "/v1/training-sets",
                &json!({"cutoff": "2011-06-01", "horizon_days": 90}),
            )
            .await;
        assert_eq!(status, 200, "{db}: {body}");
        let set: TrainingSet = serde_json::from_value(body).expect("set");
        assert_eq!(
            set.rows.len(),
            2,
            "{db}: only accounts with history before the cutoff"
        );
        let a1 = &set.rows[0];
        assert_eq!(a1.account_id, SalesforceId::from_parts("001", "5g", 1));
        assert!(
            !a1.churned,
            "{db}: account 1 ordered within 90 days of the cutoff"
        );
        // Features see only the January order (amount 20), not the June one (99).
        let names = &set.feature_names;
        let at = |n: &str| names.iter().position(|x| x == n).expect("feature");
        assert_eq!(a1.features[at("frequency")], 1.0);
        assert_eq!(a1.features[at("monetary_total")], 20.0);
        assert_eq!(a1.features[at("recency_days")], 142.0);
        assert!(set.rows[1].churned, "{db}: account 2 did not order again");
        let (status, body) = app
            .post(
                "/v1/training-sets",
                &json!({"cutoff": "2011-06-01", "horizon_days": 0}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_parameter")),
            "{db}"
        );
    }
}

#[tokio::test]
async fn online_features_are_as_of_today_and_bounded() {
    for db in databases().await {
        let app = spawn(&db, "2011-12-10").await;
        load(&app).await;
        let a1 = SalesforceId::from_parts("001", "5g", 1).to_string();
        let a3 = SalesforceId::from_parts("001", "5g", 3).to_string();
        let unknown = SalesforceId::from_parts("001", "5g", 99).to_string();
        let (status, body) = app
            .post(
                "/v1/features/online",
                &json!({"account_ids": [a3, a1, unknown, a1]}),
            )
            .await;
        assert_eq!(status, 200, "{db}: {body}");
        let f: OnlineFeatures = serde_json::from_value(body).expect("features");
        assert_eq!(f.as_of.to_string(), "2011-12-10");
        assert_eq!(
            f.rows.len(),
            2,
            "{db}: duplicates collapse, unknown ids are reported"
        );
        assert_eq!(
            f.rows[0].account_id.as_str(),
            a3,
            "{db}: request order is kept"
        );
        assert_eq!(
            f.rows[1].features[1], 2.0,
            "{db}: both orders of account 1 are history now"
        );
        assert_eq!(f.missing.len(), 1);

        let too_many: Vec<String> = (1..=201)
            .map(|n| SalesforceId::from_parts("001", "5g", n).to_string())
            .collect();
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
