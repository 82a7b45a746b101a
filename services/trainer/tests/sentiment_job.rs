//! The sentiment registry over HTTP: a job trained on uploaded labelled text, the gate against
//! the current model on the same held-out rows, promotion, rollback, and clear errors for bad
//! uploads. Data: the VADER Amazon snippets shipped with the org simulator (MIT, see
//! `libs/org-sim/data/ATTRIBUTION.md`).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use sextant_contracts::time::system_clock;
use sextant_models::sentiment::SentimentArtifact;
use sextant_trainer::{Application, Settings};
use sha2::{Digest, Sha256};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn snippets() -> Result<String, std::io::Error> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../libs/org-sim/data/case_snippets.tsv");
    std::fs::read_to_string(path)
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
            .header("content-type", "text/tab-separated-values")
            .body(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// Starts a job and waits for it to end; returns the finished job.
    async fn train(&self, data: &str) -> Result<Value, Box<dyn std::error::Error>> {
        let (status, job) = self
            .post("/v1/sentiment/jobs?seed=7", data.as_bytes().to_vec())
            .await?;
        assert_eq!(status, 202, "{job}");
        let id = job["id"].as_str().ok_or("job id")?.to_owned();
        for _ in 0..600 {
            let (_, job) = self.get(&format!("/v1/jobs/{id}")).await?;
            match job["state"].as_str() {
                Some("succeeded" | "failed") => return Ok(job),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Err("the sentiment job did not end in 120 s".into())
    }
}

/// The same file with the rating of every training row (not the held-out ones, `i mod 5 == 4`)
/// negated: a model that learns sentiment backwards.
fn inverted_training_rows(data: &str) -> String {
    data.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let mut f = line.splitn(3, '\t');
            let (id, rating, text) = (
                f.next().unwrap_or(""),
                f.next().unwrap_or("0"),
                f.next().unwrap_or(""),
            );
            let rating: f64 = rating.parse().unwrap_or(0.0);
            let rating = if i % 5 == 4 { rating } else { -rating };
            format!("{id}\t{rating}\t{text}\n")
        })
        .collect()
}

#[tokio::test]
async fn a_sentiment_job_is_measured_gated_served_and_rolled_back() -> TestResult {
    let t = trainer().await?;
    let data = snippets()?;

    let (status, body) = t.get("/v1/sentiment/models/current").await?;
    assert_eq!((status, body["code"].as_str()), (404, Some("no_model")));
    let (status, _) = t.get("/v1/sentiment/models/current/artifact").await?;
    assert_eq!(status, 404, "no artefact before the first model");

    // First model: no current one, so the gate promotes it.
    let job = t.train(&data).await?;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["model_version"], "sentiment-v1");
    let (status, card) = t.get("/v1/sentiment/models/current").await?;
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["version"], "sentiment-v1");
    assert_eq!(card["status"], "current");
    assert_eq!(card["gate_metric"], "weighted_f1");
    assert_eq!(
        card["training_set_fingerprint"],
        format!("{:x}", Sha256::digest(data.as_bytes()))
    );
    let f1 = card["metrics"]["weighted_f1"]
        .as_f64()
        .ok_or("weighted_f1")?;
    assert!((0.0..=1.0).contains(&f1), "{card}");
    for key in ["baseline_weighted_f1", "lexicon_weighted_f1", "pearson_r"] {
        assert!(card["metrics"][key].is_number(), "{key} in {card}");
    }
    assert_eq!(card["config"]["n_test"], 29, "every fifth of 149 rows");
    assert_eq!(card["config"]["seed"], 7);
    assert!(
        card["promotion"]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("no current model; weighted F1")),
        "{card}"
    );

    // The current artefact is what the feature store loads: it validates and names its version.
    let resp = t
        .http
        .get(format!("{}/v1/sentiment/models/current/artifact", t.url))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let artifact: SentimentArtifact = resp.json().await?;
    artifact.validate()?;
    assert_eq!(artifact.version, "sentiment-v1");
    let scored = artifact.predict("the screen cracked and support never answered")?;
    let total: f64 = scored.probabilities.iter().sum();
    assert!((total - 1.0).abs() < 1e-6, "{scored:?}");

    let resp = t
        .http
        .get(format!(
            "{}/v1/sentiment/models/sentiment-v1/plots/confusion.svg",
            t.url
        ))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/svg+xml")
    );
    assert!(resp.text().await?.contains("held-out confusion"));

    // A model that learned sentiment backwards is measured on the same held-out rows as the
    // current one, loses, and stays a candidate.
    let job = t.train(&inverted_training_rows(&data)).await?;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["model_version"], "sentiment-v2");
    let (_, v2) = t.get("/v1/sentiment/models/sentiment-v2").await?;
    assert_eq!(v2["status"], "candidate", "{v2}");
    assert_eq!(v2["promotion"]["promoted"], false);
    assert_eq!(v2["promotion"]["compared_with"], "sentiment-v1");
    assert!(
        v2["promotion"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("< ") && r.contains("kept as a candidate")),
        "{v2}"
    );
    let (_, current) = t.get("/v1/sentiment/models/current").await?;
    assert_eq!(current["version"], "sentiment-v1");

    // Manual promotion, then rollback: one call each.
    let (status, promoted) = t
        .post("/v1/sentiment/models/sentiment-v2/promote", Vec::new())
        .await?;
    assert_eq!(
        (status, &promoted["status"]),
        (200, &Value::from("current"))
    );
    let (status, rolled) = t
        .post("/v1/sentiment/models/sentiment-v1/promote", Vec::new())
        .await?;
    assert_eq!((status, &rolled["status"]), (200, &Value::from("current")));
    let (_, list) = t.get("/v1/sentiment/models").await?;
    let statuses: Vec<(&str, &str)> = list
        .as_array()
        .ok_or("list")?
        .iter()
        .filter_map(|m| Some((m["version"].as_str()?, m["status"].as_str()?)))
        .collect();
    assert_eq!(
        statuses,
        vec![("sentiment-v1", "current"), ("sentiment-v2", "retired")]
    );

    // Families do not mix.
    let (status, _) = t
        .post("/v1/sentiment/models/churn-v1/promote", Vec::new())
        .await?;
    assert_eq!(status, 404);
    let (status, _) = t.get("/v1/models/sentiment-v1").await?;
    assert_eq!(status, 404);
    let (status, body) = t.get("/v1/sentiment/models/not-a-version").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_parameter"))
    );
    let (status, _) = t
        .get("/v1/sentiment/models/sentiment-v1/plots/roc.svg")
        .await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn bad_uploads_are_refused_before_a_job_starts() -> TestResult {
    let t = trainer().await?;
    let data = snippets()?;

    let mut broken: Vec<&str> = data.lines().collect();
    broken[2] = "3_3\tthis line has no rating";
    let (status, body) = t
        .post("/v1/sentiment/jobs", broken.join("\n").into_bytes())
        .await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_parameter");
    let message = body["message"].as_str().ok_or("message")?;
    assert!(message.starts_with("line 3:"), "{message}");
    assert!(!message.contains("/tmp"), "no server path: {message}");

    let (status, body) = t.post("/v1/sentiment/jobs", Vec::new()).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("empty_request"))
    );

    let few: String = data.lines().take(20).map(|l| format!("{l}\n")).collect();
    let (status, body) = t.post("/v1/sentiment/jobs", few.into_bytes()).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("insufficient_data")),
        "{body}"
    );

    // Class words are a valid rating; a word that is not a class is named.
    let words: String = data
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let (id, rating, text) = (f.next(), f.next(), f.next());
            let r: f64 = rating.and_then(|r| r.parse().ok()).unwrap_or(0.0);
            let class = if r / 4.0 >= 0.05 {
                "positive"
            } else if r / 4.0 <= -0.05 {
                "Negative"
            } else {
                "neutral"
            };
            format!("{}\t{class}\t{}\n", id.unwrap_or(""), text.unwrap_or(""))
        })
        .collect();
    let job = t.train(&words).await?;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (status, body) = t
        .post(
            "/v1/sentiment/jobs",
            words.replacen("positive", "great", 1).into_bytes(),
        )
        .await?;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("`great`")),
        "{body}"
    );

    let huge = vec![b'a'; sextant_trainer::api::MAX_SENTIMENT_UPLOAD + 1];
    let (status, body) = t.post("/v1/sentiment/jobs", huge).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    Ok(())
}
