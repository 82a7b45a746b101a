//! A propensity job on the feature store's synced records (`?source=feature_store`): a real
//! feature store on loopback holds versions of a custom object's records, the trainer reads
//! `GET /v1/records/{object}` and trains exactly as on the same export uploaded; a store that
//! refuses, or an export cut short, fails the job with the reason instead of training on less.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use sextant_contracts::SalesforceId;
use sextant_contracts::time::{FixedClock, system_clock};
use sextant_trainer::{Application, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Trainer {
    url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn trainer(feature_store_url: &str) -> Result<Trainer, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let settings = Settings {
        port: 0,
        registry_dir: dir.path().to_owned(),
        feature_store_url: feature_store_url.to_owned(),
        ..Settings::default()
    };
    let service = Application::build(&settings, system_clock()).await?;
    let url = format!("http://127.0.0.1:{}", service.port());
    tokio::spawn(service.run_until_stopped());
    Ok(Trainer {
        url,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?,
        _dir: dir,
    })
}

/// A feature store on SQLite in memory, on a free loopback port.
async fn feature_store() -> Result<String, Box<dyn std::error::Error>> {
    let settings = sextant_feature_store::Settings {
        port: 0,
        database_url: "sqlite::memory:".into(),
        ..sextant_feature_store::Settings::default()
    };
    let clock = Arc::new(FixedClock(
        Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0)
            .single()
            .ok_or("time")?,
    ));
    let app = sextant_feature_store::Application::build(&settings, clock).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Ok(url)
}

impl Trainer {
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value), reqwest::Error> {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    async fn define(&self, name: &str, object: &str) -> TestResult {
        let (status, body) = self
            .send(
                self.http
                    .put(format!("{}/v1/propensity/{name}", self.url))
                    .json(&json!({
                        "object": object,
                        "label_field": "Defaulted__c",
                        "label": {"rule": "values", "positive": ["true"]},
                        "features": ["Amount__c", "Grade__c", "Term_Months__c"]
                    })),
            )
            .await?;
        assert_eq!(status, 200, "{body}");
        Ok(())
    }

    /// Starts a job and waits for it to end.
    async fn run(&self, path: &str, body: &str) -> Result<Value, Box<dyn std::error::Error>> {
        let (status, job) = self
            .send(
                self.http
                    .post(format!("{}{path}", self.url))
                    .header("content-type", "text/csv")
                    .body(body.to_owned()),
            )
            .await?;
        assert_eq!(status, 202, "{job}");
        let id = job["id"].as_str().ok_or("job id")?.to_owned();
        for _ in 0..1200 {
            let (_, job) = self
                .send(self.http.get(format!("{}/v1/jobs/{id}", self.url)))
                .await?;
            match job["state"].as_str() {
                Some("succeeded" | "failed") => return Ok(job),
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        Err("the propensity job did not end in 300 s".into())
    }
}

/// `Loan__c` records as the connector syncs them: a checkbox label, a grade picklist, an amount
/// missing on every seventh loan, a term; grade and amount drive defaults.
fn loans(n: u64) -> Vec<Value> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 10_000) as f64 / 10_000.0
    };
    (0..n)
        .map(|i| {
            let grade = ["A", "B", "C"][(i % 3) as usize];
            let amount = 1_000.0 + 9_000.0 * next();
            let logit = match grade {
                "C" => 1.5,
                "B" => 0.0,
                _ => -1.5,
            } + (amount - 5_500.0) / 2_500.0;
            let defaulted = next() < 1.0 / (1.0 + (-logit).exp());
            let amount = if i % 7 == 3 {
                Value::Null
            } else {
                json!((amount * 100.0).round() / 100.0)
            };
            let term = [12, 24, 36][(i % 3) as usize];
            json!({
                "id": SalesforceId::from_parts("a01", "5g", i + 1).to_string(),
                "system_modstamp": "2024-05-01T10:00:00Z",
                "fields": {
                    "Defaulted__c": defaulted,
                    "Amount__c": amount,
                    "Grade__c": grade,
                    "Term_Months__c": term,
                    "Name": format!("L-{i:05}")
                }
            })
        })
        .collect()
}

#[tokio::test]
async fn a_job_on_the_stores_records_trains_as_the_same_export_uploaded() -> TestResult {
    let store = feature_store().await?;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{store}/v1/ingest"))
        .json(&json!({"object": "Record", "record_object": "Loan__c", "records": loans(500)}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    // One loan is deleted in the org: the job must not train on it.
    let deleted = SalesforceId::from_parts("a01", "5g", 1).to_string();
    let resp = http
        .post(format!("{store}/v1/ingest"))
        .json(&json!({"object": "Record", "record_object": "Loan__c",
            "deletions": [{"id": deleted, "deleted_at": "2024-05-02T00:00:00Z"}]}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);

    let t = trainer(&store).await?;
    t.define("loans", "Loan__c").await?;
    let job = t
        .run("/v1/propensity/loans/jobs?source=feature_store&seed=3", "")
        .await?;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (status, card) = t
        .send(
            t.http
                .get(format!("{}/v1/propensity/loans/models/current", t.url)),
        )
        .await?;
    assert_eq!(status, 200, "{card}");
    assert_eq!(
        card["config"]["n_test"], 99,
        "every fifth of the 499 live loans"
    );
    let auc = card["metrics"]["roc_auc"].as_f64().ok_or("roc_auc")?;
    assert!(auc > 0.7, "grade and amount predict defaults: {card}");

    // The same export, uploaded to a twin definition, gives the same fingerprint and metrics.
    let export = http
        .get(format!("{store}/v1/records/Loan__c"))
        .query(&[("fields", "Defaulted__c,Amount__c,Grade__c,Term_Months__c")])
        .send()
        .await?
        .text()
        .await?;
    assert!(
        !export.contains(&deleted),
        "the deleted loan is not exported"
    );
    t.define("loans_upload", "Loan__c").await?;
    let job = t
        .run("/v1/propensity/loans_upload/jobs?seed=3", &export)
        .await?;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, uploaded) = t
        .send(t.http.get(format!(
            "{}/v1/propensity/loans_upload/models/current",
            t.url
        )))
        .await?;
    assert_eq!(
        card["training_set_fingerprint"], uploaded["training_set_fingerprint"],
        "{card} {uploaded}"
    );
    assert_eq!(card["metrics"], uploaded["metrics"]);

    // A definition over an object the store never synced: the job fails with the store's reason.
    t.define("leases", "Lease__c").await?;
    let job = t
        .run("/v1/propensity/leases/jobs?source=feature_store", "")
        .await?;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(error.contains("404") && error.contains("Lease__c"), "{job}");

    // A body with source=feature_store, or a definition the store cannot key, is refused.
    let (status, body) = t
        .send(
            t.http
                .post(format!(
                    "{}/v1/propensity/loans/jobs?source=feature_store",
                    t.url
                ))
                .body("Id,Defaulted__c\n"),
        )
        .await?;
    assert_eq!(
        (status, &body["code"]),
        (400, &json!("invalid_parameter")),
        "{body}"
    );
    t.define("file", "loans.csv").await?;
    let (status, body) = t
        .send(t.http.post(format!(
            "{}/v1/propensity/file/jobs?source=feature_store",
            t.url
        )))
        .await?;
    assert_eq!(
        (status, &body["code"]),
        (400, &json!("invalid_parameter")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap_or("").contains("loans.csv"),
        "{body}"
    );
    Ok(())
}

/// A store that sends a chunked CSV and drops the connection before its last chunk.
async fn cut_store() -> Result<String, Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = vec![0u8; 8192];
            let _ = socket.read(&mut request).await;
            let mut body = String::from("Id,Defaulted__c,Amount__c,Grade__c,Term_Months__c\n");
            for i in 0..400u64 {
                let id = SalesforceId::from_parts("a01", "5g", i + 1);
                body.push_str(&format!("{id},{},{},A,12\n", i % 2 == 0, 1000 + i));
            }
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\ntransfer-encoding: chunked\r\n\r\n";
            let chunk = format!("{:x}\r\n{body}\r\n", body.len());
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(chunk.as_bytes()).await;
            // No terminating zero-length chunk: the transfer is cut.
            let _ = socket.shutdown().await;
        }
    });
    Ok(url)
}

#[tokio::test]
async fn an_export_cut_short_fails_the_job_instead_of_training_on_less() -> TestResult {
    let t = trainer(&cut_store().await?).await?;
    t.define("loans", "Loan__c").await?;
    let job = t
        .run("/v1/propensity/loans/jobs?source=feature_store", "")
        .await?;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap_or_default()
            .contains("cut short"),
        "{job}"
    );
    let (status, _) = t
        .send(
            t.http
                .get(format!("{}/v1/propensity/loans/models/current", t.url)),
        )
        .await?;
    assert_eq!(status, 404, "no model from a partial export");
    Ok(())
}
