//! The cross-sell registry over HTTP: a job trained on uploaded purchase lines (the UCI Online
//! Retail sample shipped with the org simulator, CC BY 4.0, see `libs/org-sim/data/ATTRIBUTION.md`),
//! the gate against the current model on the same test period, promotion, rollback, the artefact
//! the gateway serves, and clear errors for bad uploads.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use sextant_contracts::time::system_clock;
use sextant_models::recommend::{Basis, CrossSellModel, PastOrder};
use sextant_trainer::{Application, Settings};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn sample() -> Result<String, std::io::Error> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../libs/org-sim/data/online_retail_sample.csv.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path)?).read_to_string(&mut text)?;
    Ok(text)
}

/// The same purchases plus 1,500 made-up customers who bought random products in the training
/// period only: the real customers' histories and test purchases are unchanged, but the
/// co-purchases a model learns are mostly noise.
fn with_noise_customers(data: &str) -> Result<String, Box<dyn std::error::Error>> {
    let mut reader = csv::Reader::from_reader(data.as_bytes());
    let header = reader.headers()?.clone();
    let mut products: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&header)?;
    for r in reader.records() {
        let r = r?;
        if seen.insert(r[1].to_owned()) {
            products.push((r[1].to_owned(), r[2].to_owned()));
        }
        writer.write_record(&r)?;
    }
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for c in 0..1500u64 {
        for o in 0..3u64 {
            let month = 1 + (next() % 8);
            for _ in 0..5 {
                let (code, name) = &products[(next() % products.len() as u64) as usize];
                let invoice = format!("9{c:05}{o}");
                let date = format!("2011-{month:02}-10 10:00:00");
                let customer = format!("{}", 900_000 + c);
                let row: Vec<&str> = vec![
                    &invoice,
                    code,
                    name,
                    "1",
                    &date,
                    "1.0",
                    &customer,
                    "United Kingdom",
                ];
                writer.write_record(&row[..header.len()])?;
            }
        }
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}

struct Trainer {
    url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn trainer() -> Result<Trainer, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let settings = Settings {
        port: 0,
        registry_dir: dir.path().to_owned(),
        ..Settings::default()
    };
    let service = Application::build(&settings, system_clock()).await?;
    let url = format!("http://127.0.0.1:{}", service.port());
    tokio::spawn(service.run_until_stopped());
    Ok(Trainer {
        url,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        _dir: dir,
    })
}

impl Trainer {
    async fn get(&self, path: &str) -> Result<(u16, Value), reqwest::Error> {
        let resp = self.http.get(format!("{}{path}", self.url)).send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Result<(u16, Value), reqwest::Error> {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    async fn wait(&self, job: &Value) -> Result<Value, Box<dyn std::error::Error>> {
        let id = job["id"].as_str().ok_or("job id")?.to_owned();
        for _ in 0..1500 {
            let (_, job) = self.get(&format!("/v1/jobs/{id}")).await?;
            match job["state"].as_str() {
                Some("succeeded" | "failed") => return Ok(job),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Err("the cross-sell job did not end in 300 s".into())
    }

    async fn train(&self, data: &str) -> Result<Value, Box<dyn std::error::Error>> {
        let (status, job) = self
            .post("/v1/cross-sell/jobs?seed=7", data.as_bytes().to_vec())
            .await?;
        assert_eq!(status, 202, "{job}");
        self.wait(&job).await
    }
}

#[tokio::test]
async fn a_cross_sell_job_is_measured_gated_served_and_rolled_back() -> TestResult {
    let t = trainer().await?;
    let data = sample()?;

    let (status, body) = t.get("/v1/cross-sell/models/current").await?;
    assert_eq!((status, body["code"].as_str()), (404, Some("no_model")));

    // First model: promoted, and better than popularity on the test period.
    let job = t.train(&data).await?;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["model_version"], "cross_sell-v1");
    let (status, card) = t.get("/v1/cross-sell/models/current").await?;
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["status"], "current");
    assert_eq!(card["gate_metric"], "ndcg_at_10");
    let m = &card["metrics"];
    let f = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
    assert!(f("ndcg_at_10") > f("popularity_ndcg_at_10"), "{m}");
    assert!(
        f("top1_accuracy") >= f("popularity_top1_accuracy"),
        "next category at least popularity: {m}"
    );
    assert_eq!(
        card["training_set_fingerprint"].as_str().map(str::len),
        Some(64)
    );

    // The artefact answers as the gateway would: suggestions with the purchase behind them.
    let resp = t
        .http
        .get(format!("{}/v1/cross-sell/models/current/artifact", t.url))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let model: CrossSellModel = resp.json().await?;
    assert_eq!(model.version, "cross_sell-v1");
    model.validate()?;
    let first_line: Vec<&str> = data.lines().nth(1).ok_or("no lines")?.split(',').collect();
    let answer = model.answer(
        &[PastOrder {
            day: 0,
            items: vec![first_line[1].to_owned()],
        }],
        30,
        5,
        true,
    )?;
    assert_eq!(answer.basis, Basis::History);
    assert_eq!(answer.items.len(), 5);
    assert!(
        answer.items.iter().any(|s| s.because.is_some()),
        "{answer:?}"
    );
    assert!(!answer.next_category.is_empty());

    let resp = t
        .http
        .get(format!(
            "{}/v1/cross-sell/models/cross_sell-v1/plots/hit_rate.svg",
            t.url
        ))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await?.contains("popularity"));

    // A model fitted with noise customers loses on the same customers: kept as a candidate.
    let job = t.train(&with_noise_customers(&data)?).await?;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["model_version"], "cross_sell-v2");
    let (_, v2) = t.get("/v1/cross-sell/models/cross_sell-v2").await?;
    assert_eq!(v2["status"], "candidate", "{v2}");
    let reason = v2["promotion"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("cross_sell-v1") && reason.contains("kept as a candidate"),
        "{reason}"
    );
    let (_, current) = t.get("/v1/cross-sell/models/current").await?;
    assert_eq!(current["version"], "cross_sell-v1");

    // Manual promotion, then rollback: one call each.
    let (status, body) = t
        .post("/v1/cross-sell/models/cross_sell-v2/promote", Vec::new())
        .await?;
    assert_eq!(status, 200, "{body}");
    let (_, current) = t.get("/v1/cross-sell/models/current").await?;
    assert_eq!(current["version"], "cross_sell-v2");
    let (status, _) = t
        .post("/v1/cross-sell/models/cross_sell-v1/promote", Vec::new())
        .await?;
    assert_eq!(status, 200);
    let (_, current) = t.get("/v1/cross-sell/models/current").await?;
    assert_eq!(current["version"], "cross_sell-v1");
    let (_, list) = t.get("/v1/cross-sell/models").await?;
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    // The families do not mix.
    let (status, _) = t.get("/v1/sentiment/models/current").await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn bad_purchase_uploads_get_stable_errors() -> TestResult {
    let t = trainer().await?;
    for (body, code) in [
        ("", "empty_request"),
        ("a,b\n1,2\n", "invalid_parameter"),
        (
            "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID\n1,A,MUG,1,2011-01-01 10:00:00,1.0,5\n",
            "insufficient_data",
        ),
    ] {
        let (status, err) = t
            .post("/v1/cross-sell/jobs", body.as_bytes().to_vec())
            .await?;
        assert_eq!(status, 400, "{body:?}: {err}");
        assert_eq!(err["code"], code, "{body:?}: {err}");
        assert!(
            !err["message"].as_str().unwrap_or_default().contains("/tmp"),
            "{err}"
        );
    }
    let (status, err) = t
        .post("/v1/cross-sell/jobs?source=feature_store", b"x".to_vec())
        .await?;
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("invalid_parameter"))
    );
    let (status, _) = t.get("/v1/cross-sell/models/nope").await?;
    assert_eq!(status, 400);
    let (status, _) = t.get("/v1/cross-sell/models/cross_sell-v9").await?;
    assert_eq!(status, 404);
    Ok(())
}
