//! Propensity on any object over HTTP: a prediction definition, a model trained on an uploaded
//! export of the object, measured on held-out rows against a logistic-regression baseline and the
//! current model, gated, served as an artefact that explains its scores, rolled back; and clear
//! errors for bad definitions and exports.

use std::time::Duration;

use serde_json::{Value, json};
use sextant_contracts::time::system_clock;
use sextant_models::tabular::{PropensityArtifact, Record};
use sextant_trainer::{Application, Settings};

type TestResult = Result<(), Box<dyn std::error::Error>>;

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
            .timeout(Duration::from_secs(120))
            .build()?,
        _dir: dir,
    })
}

impl Trainer {
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value), reqwest::Error> {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    async fn get(&self, path: &str) -> Result<(u16, Value), reqwest::Error> {
        self.send(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    async fn upload(&self, path: &str, csv: &str) -> Result<(u16, Value), reqwest::Error> {
        self.send(
            self.http
                .post(format!("{}{path}", self.url))
                .header("content-type", "text/csv")
                .body(csv.to_owned()),
        )
        .await
    }

    async fn train(&self, csv: &str) -> Result<Value, Box<dyn std::error::Error>> {
        let (status, job) = self
            .upload("/v1/propensity/upsell/jobs?seed=3", csv)
            .await?;
        assert_eq!(status, 202, "{job}");
        let id = job["id"].as_str().ok_or("job id")?.to_owned();
        for _ in 0..1200 {
            let (_, job) = self.get(&format!("/v1/jobs/{id}")).await?;
            match job["state"].as_str() {
                Some("succeeded" | "failed") => return Ok(job),
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        Err("the propensity job did not end in 300 s".into())
    }
}

/// An opportunity export: the stage and the amount drive the outcome, the region is noise,
/// every seventh amount is blank. With `invert_training`, the outcome of every training row (not
/// the held-out fifth) is flipped: a model that learns the question backwards.
fn export(rows: usize, invert_training: bool) -> String {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 10_000) as f64 / 10_000.0
    };
    let mut out = String::from("Id,Amount,StageName,Region,IsWon\n");
    for i in 0..rows {
        let stage = ["Prospecting", "Negotiation", "Proposal"][i % 3];
        let amount = 100.0 + 900.0 * next();
        let region = ["EMEA", "AMER", "APAC", "LATAM"][(next() * 4.0) as usize % 4];
        let logit = match stage {
            "Negotiation" => 1.5,
            "Proposal" => 0.0,
            _ => -1.5,
        } + (amount - 550.0) / 250.0;
        let won = next() < 1.0 / (1.0 + (-logit).exp());
        let won = if invert_training && i % 5 != 4 {
            !won
        } else {
            won
        };
        let amount = if i % 7 == 3 {
            String::new()
        } else {
            format!("{amount:.2}")
        };
        out.push_str(&format!("006{i:012},{amount},{stage},{region},{won}\n"));
    }
    out
}

fn definition() -> Value {
    json!({
        "object": "Opportunity",
        "label_field": "IsWon",
        "label": {"rule": "values", "positive": ["true"]},
        "features": ["Amount", "StageName", "Region"]
    })
}

/// One row of the export as a record the artefact can score.
struct Row<'a>(&'a [(&'a str, &'a str)]);

impl Record for Row<'_> {
    fn cell(&self, field: &str) -> sextant_models::tabular::Cell<'_> {
        self.0
            .iter()
            .find(|(f, _)| *f == field)
            .map_or(sextant_models::tabular::Cell::Missing, |(_, v)| {
                sextant_models::tabular::Cell::parse(v)
            })
    }
    fn has_field(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| *f == field)
    }
}

#[tokio::test]
async fn a_definition_trains_gates_serves_and_rolls_back() -> TestResult {
    let t = trainer().await?;
    let data = export(600, false);

    let (status, _) = t
        .send(
            t.http
                .put(format!("{}/v1/propensity/upsell", t.url))
                .json(&definition()),
        )
        .await?;
    assert_eq!(status, 200);
    let (status, stored) = t.get("/v1/propensity/upsell").await?;
    assert_eq!((status, &stored["label_field"]), (200, &json!("IsWon")));

    let job = t.train(&data).await?;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["model_version"], "upsell-v1");
    let (status, card) = t.get("/v1/propensity/upsell/models/current").await?;
    assert_eq!(status, 200, "{card}");
    assert_eq!(card["status"], "current");
    assert_eq!(card["gate_metric"], "roc_auc");
    assert_eq!(card["config"]["n_test"], 120, "every fifth of 600 rows");
    let auc = card["metrics"]["roc_auc"].as_f64().ok_or("roc_auc")?;
    let base = card["metrics"]["baseline_roc_auc"]
        .as_f64()
        .ok_or("baseline")?;
    assert!(auc > 0.7, "stage and amount predict the outcome: {card}");
    assert!(base > 0.7, "{card}");
    for key in ["pr_auc", "log_loss", "calibration_error", "positive_rate"] {
        assert!(card["metrics"][key].is_number(), "{key}: {card}");
    }

    // The served artefact scores a record and says why, in the record's own values.
    let resp = t
        .http
        .get(format!(
            "{}/v1/propensity/upsell/models/current/artifact",
            t.url
        ))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let artifact: PropensityArtifact = resp.json().await?;
    artifact.validate()?;
    let hot = Row(&[
        ("Amount", "990"),
        ("StageName", "Negotiation"),
        ("Region", "EMEA"),
    ]);
    let cold = Row(&[
        ("Amount", "120"),
        ("StageName", "Prospecting"),
        ("Region", "EMEA"),
    ]);
    assert!(artifact.score(&hot)? > artifact.score(&cold)?);
    // The two stages differ, so at most one of them is the typical stage: the other's is a factor.
    let (why_hot, why_cold) = (artifact.explain(&hot, 3)?, artifact.explain(&cold, 3)?);
    assert!(
        why_hot
            .factors
            .iter()
            .chain(&why_cold.factors)
            .any(|f| f.factor == "StageName" && f.text.starts_with("StageName = ")),
        "{why_hot:?} {why_cold:?}"
    );
    assert!(
        why_cold
            .factors
            .iter()
            .any(|f| f.factor == "Amount"
                && f.text.contains("lowers the likelihood of IsWon = true")),
        "{why_cold:?}"
    );
    let resp = t
        .http
        .get(format!(
            "{}/v1/propensity/upsell/models/upsell-v1/plots/roc.svg",
            t.url
        ))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await?.starts_with("<svg"));

    // A model that learned the outcome backwards loses to the current one on the same rows.
    let job = t.train(&export(600, true)).await?;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, v2) = t.get("/v1/propensity/upsell/models/upsell-v2").await?;
    assert_eq!(v2["status"], "candidate", "{v2}");
    assert_eq!(v2["promotion"]["compared_with"], "upsell-v1");
    assert!(
        v2["promotion"]["current_auc"].as_f64() > v2["promotion"]["candidate_auc"].as_f64(),
        "{v2}"
    );

    // The question is fixed once models exist; rollback and promotion are one call each.
    let mut changed = definition();
    changed["features"] = json!(["Amount", "StageName"]);
    let (status, body) = t
        .send(
            t.http
                .put(format!("{}/v1/propensity/upsell", t.url))
                .json(&changed),
        )
        .await?;
    assert_eq!(status, 409, "{body}");
    let (status, body) = t
        .send(t.http.post(format!(
            "{}/v1/propensity/upsell/models/upsell-v2/promote",
            t.url
        )))
        .await?;
    assert_eq!((status, &body["status"]), (200, &json!("current")));
    let (status, _) = t
        .send(t.http.post(format!(
            "{}/v1/propensity/upsell/models/upsell-v1/promote",
            t.url
        )))
        .await?;
    assert_eq!(status, 200);
    let (_, list) = t.get("/v1/propensity").await?;
    assert_eq!(list[0]["name"], "upsell");
    assert_eq!(list[0]["current"], "upsell-v1", "{list}");
    Ok(())
}

#[tokio::test]
async fn bad_definitions_and_exports_are_refused_with_their_reason() -> TestResult {
    let t = trainer().await?;
    let put = |name: &str, body: Value| {
        t.http
            .put(format!("{}/v1/propensity/{name}", t.url))
            .json(&body)
    };
    let (status, body) = t.send(put("Up-Sell", definition())).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_parameter"))
    );
    let mut leak = definition();
    leak["features"] = json!(["Amount", "IsWon"]);
    let (status, body) = t.send(put("leak", leak)).await?;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("IsWon")),
        "{body}"
    );

    let (status, _) = t
        .upload("/v1/propensity/nothing/jobs", "a,b\n1,2\n")
        .await?;
    assert_eq!(status, 404, "no such definition");

    let (status, _) = t.send(put("upsell", definition())).await?;
    assert_eq!(status, 200);
    let no_region = export(100, false).replace(",Region,", ",Territory,");
    let (status, body) = t.upload("/v1/propensity/upsell/jobs", &no_region).await?;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().ok_or("message")?;
    assert!(
        message.starts_with("line 1:") && message.contains("Region"),
        "{message}"
    );
    let ragged = format!("{}006x,1,Proposal\n", export(50, false));
    let (status, body) = t.upload("/v1/propensity/upsell/jobs", &ragged).await?;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("line 52:")),
        "{body}"
    );
    let one_class = export(100, false).replace(",true\n", ",false\n");
    let (status, body) = t.upload("/v1/propensity/upsell/jobs", &one_class).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("insufficient_data")),
        "{body}"
    );
    let (status, body) = t.upload("/v1/propensity/upsell/jobs", "").await?;
    assert_eq!(status, 400, "{body}");
    Ok(())
}
