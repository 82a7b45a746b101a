//! `POST /v1/exports` over HTTP: the Parquet files hold exactly the stored versions (every
//! version, tombstones, late-known rows, other orgs unless one is named), in the engine's schema;
//! `known_before` and `org_id` cut the snapshot; files roll at `max_file_rows`; a failed export
//! leaves nothing at its target and says why; bad requests get 4xx with stable codes. On SQLite,
//! and on PostgreSQL too when `SEXTANT_TEST_POSTGRES_URL` names a server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow_array::{
    Array, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::DataType;
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use sextant_contracts::SalesforceId;
use sextant_feature_store::Settings;
use sextant_table_schema::{TABLES, table_schema};

const OTHER_ORG: &str = "00D5g0000000001";

struct TestApp {
    base: String,
    http: reqwest::Client,
    root: tempfile::TempDir,
    db: DatabaseConnection,
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

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn ingest(&self, body: Value) {
        let (status, answer) = self.post("/v1/ingest", &body).await;
        assert_eq!(status, 200, "{body}: {answer}");
        assert_eq!(answer["rejected"], json!([]), "{answer}");
    }

    /// Starts an export and waits until it is no longer running; returns its final status.
    async fn export(&self, body: Value) -> Value {
        let (status, job) = self.post("/v1/exports", &body).await;
        assert_eq!(status, 202, "{job}");
        assert_eq!(job["state"], "running");
        let id = job["id"].as_str().expect("id").to_owned();
        for _ in 0..600 {
            let (status, job) = self.get(&format!("/v1/exports/{id}")).await;
            assert_eq!(status, 200, "{job}");
            if job["state"] != "running" {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("export {id} still running after 15 s");
    }
}

/// A file-backed SQLite database (the test reads it through its own connection) and, when
/// configured, a fresh PostgreSQL database.
async fn databases(dir: &Path) -> Vec<String> {
    support::databases(format!(
        "sqlite://{}?mode=rwc",
        dir.join(format!("{}.sqlite", support::unique_name()))
            .display()
    ))
    .await
}

mod support;

async fn spawn(database_url: &str) -> TestApp {
    sextant_service_kit::telemetry::init();
    let root = tempfile::tempdir().expect("tempdir");
    let settings = Settings {
        port: 0,
        database_url: database_url.to_owned(),
        export_root: root.path().to_path_buf(),
        ..Settings::default()
    };
    let day = NaiveDate::from_ymd_opt(2024, 1, 1).expect("date");
    let base = support::start(&settings, day).await;
    let db = Database::connect(database_url)
        .await
        .expect("second connection");
    TestApp {
        base,
        http: reqwest::Client::new(),
        root,
        db,
    }
}

fn aid(n: u64) -> String {
    SalesforceId::from_parts("001", "5g", n).to_string()
}
fn oid(n: u64) -> String {
    SalesforceId::from_parts("801", "5g", n).to_string()
}

fn account(n: u64, name: &str, known: &str) -> Value {
    json!({"id": aid(n), "name": name, "billing_country": "United Kingdom", "industry": null,
        "created_date": "2010-12-01T00:00:00Z", "last_modified_date": format!("{known}T08:00:00Z"),
        "system_modstamp": format!("{known}T08:00:00Z")})
}

/// A small org: an account with three versions, one deleted, one known late, an order with a
/// later version, lines (one deleted), a product, a case, an engagement event; and a second org.
async fn seed(app: &TestApp) {
    app.ingest(json!({"object": "Account", "records": [
        account(1, "Acme", "2011-01-01"),
        account(1, "Acme Ltd", "2012-01-01"),
        account(1, "Acme Group", "2013-01-01"),
        account(2, "Gone", "2011-01-01"),
        // Created in 2010, first known (synced) in 2020.
        account(3, "Late", "2020-06-01"),
    ]}))
    .await;
    app.ingest(json!({"object": "Account", "deletions": [
        {"id": aid(2), "deleted_at": "2012-06-01T00:00:00Z"}
    ]}))
    .await;
    app.ingest(json!({"object": "Product2", "records": [
        {"id": SalesforceId::from_parts("01t", "5g", 1).to_string(), "name": "Blue Mug", "product_code": "M1",
         "family": "Kitchen", "last_modified_date": "2011-01-01T00:00:00Z"}
    ]}))
    .await;
    let order = |status: &str, known: &str| {
        json!({"id": oid(1), "account_id": aid(1), "effective_date": "2011-02-01", "status": status,
            "order_number": "000001", "last_modified_date": format!("{known}T12:00:00Z"),
            "system_modstamp": format!("{known}T12:00:00Z")})
    };
    app.ingest(json!({"object": "Order", "records": [order("Draft", "2011-02-01"), order("Activated", "2011-02-03")]}))
        .await;
    let line = |n: u64, qty: f64| {
        json!({"id": SalesforceId::from_parts("802", "5g", n).to_string(), "order_id": oid(1),
            "product_id": if n == 1 { json!(SalesforceId::from_parts("01t", "5g", 1).to_string()) } else { Value::Null },
            "quantity": qty, "unit_price": 2.5,
            "last_modified_date": "2011-02-01T12:00:00Z", "system_modstamp": "2011-02-01T12:00:00Z"})
    };
    app.ingest(json!({"object": "OrderItem", "records": [line(1, 3.0), line(2, -1.0)]}))
        .await;
    app.ingest(json!({"object": "OrderItem", "deletions": [
        {"id": SalesforceId::from_parts("802", "5g", 2).to_string(), "deleted_at": "2011-03-01T00:00:00Z"}
    ]}))
    .await;
    app.ingest(json!({"object": "Case", "records": [
        {"id": SalesforceId::from_parts("500", "5g", 1).to_string(), "account_id": aid(1),
         "subject": "Broken", "description": "Terrible, I want a refund", "status": "New",
         "created_date": "2011-04-01T00:00:00Z", "last_modified_date": "2011-04-01T00:00:00Z"}
    ]}))
    .await;
    app.ingest(json!({"object": "EngagementEvent", "records": [
        {"id": "ev-1", "account_id": aid(1), "event_type": "email_open",
         "occurred_at": "2011-05-01T10:00:00Z", "value": 2.0}
    ]}))
    .await;
    app.ingest(json!({"org_id": OTHER_ORG, "object": "Account", "records": [account(1, "Other", "2011-01-01")]}))
        .await;
}

/// One value, printed the same way from Parquet and from the database.
fn cell(batch: &RecordBatch, column: usize, row: usize) -> String {
    let a = batch.column(column);
    if a.is_null(row) {
        return "NULL".into();
    }
    match a.data_type() {
        DataType::Utf8 => a
            .as_any()
            .downcast_ref::<StringArray>()
            .map(|c| c.value(row).to_owned()),
        DataType::Int32 => a
            .as_any()
            .downcast_ref::<Int32Array>()
            .map(|c| c.value(row).to_string()),
        DataType::Int64 => a
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|c| c.value(row).to_string()),
        DataType::Float64 => a
            .as_any()
            .downcast_ref::<Float64Array>()
            .map(|c| format!("{:?}", c.value(row))),
        DataType::Boolean => a
            .as_any()
            .downcast_ref::<BooleanArray>()
            .map(|c| c.value(row).to_string()),
        other => panic!("unexpected column type {other}"),
    }
    .expect("array of its type")
}

/// Every row of one exported table, with the number of files, checking each file's schema.
fn read_table(dir: &Path, table: &str) -> (Vec<Vec<String>>, usize) {
    let want = table_schema(table).expect("schema");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(table))
        .expect("table directory")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut rows = Vec::new();
    for (i, f) in files.iter().enumerate() {
        assert_eq!(
            f.file_name().and_then(|n| n.to_str()),
            Some(format!("part-{i:05}.parquet").as_str())
        );
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f).expect("open"))
                .expect("parquet");
        assert_eq!(
            reader.schema().fields(),
            want.fields(),
            "{table}: the file's schema is the engine's"
        );
        for batch in reader.build().expect("reader") {
            let batch = batch.expect("batch");
            for r in 0..batch.num_rows() {
                rows.push(
                    (0..batch.num_columns())
                        .map(|c| cell(&batch, c, r))
                        .collect(),
                );
            }
        }
    }
    (rows, files.len())
}

/// The stored versions of `table` under `filter`, in primary-key order, printed like [`cell`].
async fn stored(db: &DatabaseConnection, table: &str, filter: &str) -> Vec<Vec<String>> {
    let schema = table_schema(table).expect("schema");
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .collect();
    let sql = format!(
        "SELECT {} FROM {table} WHERE {filter} ORDER BY org_id, id, known_us",
        columns.join(", ")
    );
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query");
    rows.iter()
        .map(|r| {
            schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let v = match f.data_type() {
                        DataType::Utf8 => r.try_get_by_index::<Option<String>>(i),
                        DataType::Int32 => r
                            .try_get_by_index::<Option<i32>>(i)
                            .map(|v| v.map(|x| x.to_string())),
                        DataType::Int64 => r
                            .try_get_by_index::<Option<i64>>(i)
                            .map(|v| v.map(|x| x.to_string())),
                        DataType::Float64 => r
                            .try_get_by_index::<Option<f64>>(i)
                            .map(|v| v.map(|x| format!("{x:?}"))),
                        DataType::Boolean => r
                            .try_get_by_index::<Option<bool>>(i)
                            .map(|v| v.map(|x| x.to_string())),
                        other => panic!("unexpected column type {other}"),
                    };
                    v.expect("value").unwrap_or_else(|| "NULL".into())
                })
                .collect()
        })
        .collect()
}

fn micros(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("instant")
        .timestamp_micros()
}

#[tokio::test]
async fn an_export_holds_exactly_the_stored_versions_in_the_engines_schema() {
    let scratch = tempfile::tempdir().expect("tempdir");
    for url in databases(scratch.path()).await {
        let app = spawn(&url).await;
        seed(&app).await;

        // Everything, every org.
        let job = app.export(json!({"directory": "2024/all"})).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        let dir = app.root.path().join("2024/all");
        let mut total = 0u64;
        for (i, table) in TABLES.iter().enumerate() {
            let (rows, files) = read_table(&dir, table);
            assert_eq!(rows, stored(&app.db, table, "1 = 1").await, "{url} {table}");
            assert_eq!(
                files, 1,
                "{table}: one file (an empty one for an empty table)"
            );
            assert_eq!(job["tables"][i]["table"], *table);
            assert_eq!(job["tables"][i]["rows"], rows.len() as u64, "{job}");
            assert_eq!(job["tables"][i]["files"], 1);
            assert_eq!(job["tables"][i]["done"], true);
            total += rows.len() as u64;
        }
        assert_eq!(job["rows"], total);
        assert!(job["bytes"].as_u64().expect("bytes") > 0);
        // What the planted rows look like in the export.
        let (accounts, _) = read_table(&dir, "fs_account");
        let acme: Vec<&Vec<String>> = accounts
            .iter()
            .filter(|r| r[0] == "default" && r[1] == aid(1))
            .collect();
        assert_eq!(acme.len(), 3, "every version of Acme");
        assert_eq!(
            acme.iter().map(|r| r[5].as_str()).collect::<Vec<_>>(),
            ["Acme", "Acme Ltd", "Acme Group"]
        );
        assert!(
            accounts.iter().any(|r| r[1] == aid(2)
                && r[3] == "true"
                && r[2] == micros("2012-06-01T00:00:00Z").to_string()),
            "the tombstone, at its known time"
        );
        assert!(
            accounts
                .iter()
                .any(|r| r[1] == aid(3) && r[2] == micros("2020-06-01T08:00:00Z").to_string()),
            "the late-known account, at its known time"
        );
        assert!(
            accounts.iter().any(|r| r[0].starts_with(OTHER_ORG)),
            "the other org"
        );
        assert!(
            std::fs::read_dir(app.root.path().join("2024"))
                .expect("parent")
                .all(|e| !e
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')),
            "no partial directory is left behind"
        );

        // One org, known before 2012-03-01, a row per file.
        let job = app
            .export(json!({"directory": "asof", "org_id": "default",
                "known_before": "2012-03-01T00:00:00Z", "max_file_rows": 1}))
            .await;
        assert_eq!(job["state"], "succeeded", "{job}");
        let dir = app.root.path().join("asof");
        let k = micros("2012-03-01T00:00:00Z");
        for table in TABLES {
            let (rows, files) = read_table(&dir, table);
            let want = stored(
                &app.db,
                table,
                &format!("org_id = 'default' AND known_us < {k}"),
            )
            .await;
            assert_eq!(rows, want, "{url} {table} as of 2012-03-01");
            assert_eq!(files, rows.len().max(1), "{table}: a file per row");
        }
        let (accounts, _) = read_table(&dir, "fs_account");
        assert_eq!(
            accounts
                .iter()
                .map(|r| (r[1].clone(), r[5].clone()))
                .collect::<Vec<_>>(),
            [
                (aid(1), "Acme".to_owned()),
                (aid(1), "Acme Ltd".to_owned()),
                (aid(2), "Gone".to_owned())
            ],
            "versions known by then, neither the later ones, the tombstone, the late account nor the other org"
        );
    }
}

#[tokio::test]
async fn a_failed_export_leaves_nothing_and_says_why() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        scratch.path().join("broken.sqlite").display()
    );
    let app = spawn(&url).await;
    seed(&app).await;
    // SQLite keeps what it is given: a day that is not a number cannot become an Int32.
    app.db
        .execute_unprepared(
            "INSERT INTO fs_order (org_id, id, known_us, is_deleted, ingested_us, account_id, event_day, status) \
             VALUES ('default', 'broken', 1, FALSE, 1, 'x', 'not a day', 'Activated')",
        )
        .await
        .expect("insert");
    let job = app
        .export(json!({"directory": "broken", "max_file_rows": 2}))
        .await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .is_some_and(|e| e.contains("database")),
        "{job}"
    );
    assert!(job["finished_at"].is_string());
    let left: Vec<String> = std::fs::read_dir(app.root.path())
        .expect("root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.is_empty(),
        "nothing at the target, no partial directory: {left:?}"
    );
    // The next export runs (the failed one does not hold the slot).
    app.db
        .execute_unprepared("DELETE FROM fs_order WHERE id = 'broken'")
        .await
        .expect("delete");
    let job = app.export(json!({"directory": "broken"})).await;
    assert_eq!(job["state"], "succeeded", "{job}");
}

#[tokio::test]
async fn bad_export_requests_get_4xx_with_stable_codes() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        scratch.path().join("s.sqlite").display()
    );
    let app = spawn(&url).await;
    let outside = scratch.path().join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::os::unix::fs::symlink(&outside, app.root.path().join("link")).expect("symlink");
    for (body, status, code) in [
        (json!({"directory": "../escape"}), 400, "path_outside_root"),
        (
            json!({"directory": "a/../../escape"}),
            400,
            "path_outside_root",
        ),
        (
            json!({"directory": outside.join("x").display().to_string()}),
            400,
            "path_outside_root",
        ),
        (json!({"directory": "link/x"}), 400, "path_outside_root"),
        (json!({"directory": ""}), 400, "invalid_parameter"),
        (json!({"directory": ".hidden"}), 400, "invalid_parameter"),
        (json!({"directory": "link"}), 400, "path_outside_root"),
        (
            json!({"directory": "x", "max_file_rows": 0}),
            400,
            "invalid_parameter",
        ),
        (
            json!({"directory": "x", "org_id": ""}),
            400,
            "invalid_parameter",
        ),
        (
            json!({"directory": "x", "known_before": "yesterday"}),
            400,
            "invalid_json",
        ),
        (
            json!({"directory": "x", "format": "csv"}),
            400,
            "invalid_json",
        ),
    ] {
        let (got, answer) = app.post("/v1/exports", &body).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    assert!(
        std::fs::read_dir(&outside)
            .expect("outside")
            .next()
            .is_none(),
        "nothing was written outside the root"
    );
    let job = app.export(json!({"directory": "done"})).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (got, answer) = app.post("/v1/exports", &json!({"directory": "done"})).await;
    assert_eq!(
        (got, answer["code"].as_str()),
        (409, Some("already_exists")),
        "an existing directory: {answer}"
    );
    let (got, answer) = app.get("/v1/exports/no-such-export").await;
    assert_eq!(
        (got, answer["code"].as_str()),
        (404, Some("not_found")),
        "{answer}"
    );
}
