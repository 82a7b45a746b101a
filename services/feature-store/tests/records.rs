//! Records of any object (`object: Record`) over HTTP: versioned ingest with the other objects'
//! rules, and `GET /v1/records/{object}` streaming the current rows as CSV — on SQLite and, when
//! `SEXTANT_TEST_POSTGRES_URL` names a server, on PostgreSQL, each test in a fresh database.

use serde_json::{Value, json};
use sextant_contracts::SalesforceId;
use sextant_feature_store::Settings;

struct TestApp {
    base: String,
    http: reqwest::Client,
}

impl TestApp {
    async fn ingest(&self, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/ingest", self.base))
            .json(body)
            .send()
            .await
            .expect("sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The export's status and body text.
    async fn export(&self, object: &str, fields: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}/v1/records/{object}", self.base))
            .query(&[("fields", fields)])
            .send()
            .await
            .expect("sent");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }
}

mod support;

/// SQLite in memory, and PostgreSQL when configured.
async fn databases() -> Vec<String> {
    support::databases("sqlite::memory:".to_owned()).await
}

async fn spawn(database_url: &str) -> TestApp {
    let settings = Settings {
        port: 0,
        database_url: database_url.to_owned(),
        ..Settings::default()
    };
    let day = chrono::NaiveDate::from_ymd_opt(2024, 6, 1).expect("date");
    let base = support::start(&settings, day).await;
    TestApp {
        base,
        http: reqwest::Client::new(),
    }
}

fn lid(n: u64) -> String {
    SalesforceId::from_parts("a01", "5g", n).to_string()
}

fn loan(n: u64, known: &str, fields: Value) -> Value {
    json!({"id": lid(n), "system_modstamp": format!("{known}T12:00:00Z"), "fields": fields})
}

fn records(object: &str, records: Vec<Value>) -> Value {
    json!({"object": "Record", "record_object": object, "records": records})
}

#[tokio::test]
async fn records_are_versioned_idempotent_and_exported_as_csv() {
    for db in databases().await {
        let app = spawn(&db).await;
        let (status, body) = app
            .ingest(&records(
                "Loan__c",
                vec![
                    loan(
                        1,
                        "2024-01-01",
                        json!({"Defaulted__c": false, "Grade__c": "A", "Amount__c": 1500.5}),
                    ),
                    loan(
                        2,
                        "2024-01-01",
                        json!({"Defaulted__c": true, "Grade__c": "C, low", "Amount__c": null}),
                    ),
                    loan(
                        3,
                        "2024-01-01",
                        json!({"Defaulted__c": false, "Grade__c": "B", "Amount__c": 0}),
                    ),
                ],
            ))
            .await;
        assert_eq!(status, 200, "{db}: {body}");
        assert_eq!(
            (&body["object"], &body["written"], &body["unchanged"]),
            (&json!("Record"), &json!(3), &json!(0)),
            "{db}: {body}"
        );

        // A replay stores nothing; a newer version replaces loan 1; an older one arriving
        // afterwards changes nothing.
        let (_, again) = app
            .ingest(&records(
                "Loan__c",
                vec![loan(
                    3,
                    "2024-01-01",
                    json!({"Defaulted__c": false, "Grade__c": "B", "Amount__c": 0}),
                )],
            ))
            .await;
        assert_eq!(
            (&again["written"], &again["unchanged"]),
            (&json!(0), &json!(1)),
            "{db}"
        );
        let (_, newer) = app
            .ingest(&records(
                "Loan__c",
                vec![loan(
                    1,
                    "2024-03-01",
                    json!({"Defaulted__c": true, "Grade__c": "A", "Amount__c": 1700}),
                )],
            ))
            .await;
        assert_eq!(newer["written"], 1, "{db}");
        let (_, older) = app
            .ingest(&records(
                "Loan__c",
                vec![loan(
                    1,
                    "2024-02-01",
                    json!({"Defaulted__c": false, "Grade__c": "Z", "Amount__c": 1}),
                )],
            ))
            .await;
        assert_eq!(older["written"], 1, "{db}: stored as history");

        // Loan 3 is deleted; a version of it older than the deletion arriving late stays deleted.
        let (status, body) = app
            .ingest(&json!({"object": "Record", "record_object": "Loan__c",
                "deletions": [{"id": lid(3), "deleted_at": "2024-04-01T00:00:00Z"}]}))
            .await;
        assert_eq!((status, &body["written"]), (200, &json!(1)), "{db}: {body}");
        app.ingest(&records(
            "Loan__c",
            vec![loan(
                3,
                "2024-03-15",
                json!({"Defaulted__c": false, "Grade__c": "B", "Amount__c": 5}),
            )],
        ))
        .await;

        // Another object of the same org is kept apart.
        app.ingest(&records(
            "Opportunity",
            vec![json!({"id": SalesforceId::from_parts("006", "5g", 1).to_string(), "fields": {"Amount": 9}})],
        ))
        .await;

        let (status, csv) = app
            .export("Loan__c", "Defaulted__c,Amount__c,Grade__c")
            .await;
        assert_eq!(status, 200, "{db}: {csv}");
        assert_eq!(
            csv,
            format!(
                "Id,Defaulted__c,Amount__c,Grade__c\n{},true,1700,A\n{},true,,\"C, low\"\n",
                lid(1),
                lid(2)
            ),
            "{db}: the latest versions, the deleted loan left out, a null amount an empty cell (never 0)"
        );
        // API names ignore case: the header keeps the caller's spelling.
        let (status, csv) = app.export("loan__c", "amount__c").await;
        assert_eq!(status, 200, "{db}: {csv}");
        assert!(csv.starts_with("Id,amount__c\n"), "{db}: {csv}");
    }
}

#[tokio::test]
async fn the_export_pages_through_more_rows_than_one_page() {
    for db in databases().await {
        let app = spawn(&db).await;
        let n = 1_234u64;
        let batch: Vec<Value> = (1..=n)
            .map(|i| loan(i, "2024-01-01", json!({"Amount__c": i, "Tier__c": if i % 2 == 0 { json!("even") } else { Value::Null }})))
            .collect();
        let (status, body) = app.ingest(&records("Loan__c", batch)).await;
        assert_eq!((status, &body["written"]), (200, &json!(n)), "{db}: {body}");
        let (status, csv) = app.export("Loan__c", "Amount__c,Tier__c").await;
        assert_eq!(status, 200, "{db}");
        let lines: Vec<&str> = csv.lines().skip(1).collect();
        assert_eq!(lines.len() as u64, n, "{db}: every current row, once");
        let ids: Vec<&str> = lines
            .iter()
            .map(|l| l.split(',').next().unwrap_or(""))
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted, "{db}: in Id order, no repeats across pages");
        assert_eq!(lines[0], format!("{},1,", lid(1)), "{db}");
        assert_eq!(lines[1], format!("{},2,even", lid(2)), "{db}");
    }
}

#[tokio::test]
async fn bad_records_are_refused_one_by_one_and_bad_requests_named() {
    for db in databases().await {
        let app = spawn(&db).await;
        let (status, body) = app
            .ingest(
                &json!({"object": "Record", "record_object": "Loan__c", "records": [
                loan(1, "2024-01-01", json!({"Amount__c": 1})),
                {"id": "not-an-id", "fields": {}},
                loan(2, "2024-01-01", json!({"Bad Field": 1})),
                loan(3, "2024-01-01", json!({"Nested__c": {"a": 1}})),
            ], "deletions": [{"id": "x", "deleted_at": "2024-01-01T00:00:00Z"}]}),
            )
            .await;
        assert_eq!(status, 200, "{db}: {body}");
        assert_eq!(body["written"], 1, "{db}: {body}");
        let rejected = body["rejected"].as_array().cloned().unwrap_or_default();
        let indexes: Vec<(u64, bool)> = rejected
            .iter()
            .map(|r| {
                (
                    r["index"].as_u64().unwrap_or(99),
                    r["deletion"] == json!(true),
                )
            })
            .collect();
        assert_eq!(
            indexes,
            vec![(1, false), (2, false), (3, false), (0, true)],
            "{db}: {body}"
        );
        assert!(
            rejected.iter().all(|r| r["code"] == "invalid_record"),
            "{db}: {body}"
        );

        for (request, why) in [
            (json!({"object": "Record", "records": []}), "record_object"),
            (
                json!({"object": "Record", "record_object": "Loan__c; DROP", "records": []}),
                "not an API name",
            ),
            (
                json!({"object": "Account", "record_object": "Loan__c", "records": []}),
                "only for object Record",
            ),
        ] {
            let (status, body) = app.ingest(&request).await;
            assert_eq!(
                (status, &body["code"]),
                (400, &json!("invalid_parameter")),
                "{db}: {body}"
            );
            assert!(
                body["message"].as_str().unwrap_or("").contains(why),
                "{db}: {body}"
            );
        }

        for (object, fields, want, why) in [
            (
                "Loan__c",
                "Amount__c,Grade__c,Term__c",
                400,
                "Grade__c, Term__c",
            ),
            ("Loan__c", "", 400, "no field"),
            ("Loan__c", "Amount__c,amount__c", 400, "twice"),
            ("Loan__c", "Id,Amount__c", 400, "first column"),
            ("Loan__c", "Amount__c)", 400, "not an API name"),
            ("Loan%20c", "Amount__c", 400, "not an API name"),
            ("Lease__c", "Amount__c", 404, "Lease__c"),
        ] {
            let (status, text) = app.export(object, fields).await;
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert_eq!(status, want, "{db} {object} {fields}: {text}");
            let code = if want == 404 {
                "not_found"
            } else {
                "invalid_parameter"
            };
            assert_eq!(body["code"], code, "{db}: {text}");
            assert!(
                body["message"].as_str().unwrap_or("").contains(why),
                "{db}: {text}"
            );
        }
    }
}
