//! `sextant demo`: the whole loop on a laptop.
//!
//! Starts the suite against the org simulator (loaded with real UCI Online Retail customers),
//! syncs the org through the connector, trains the sequence churn model (stacked cut-offs up to
//! 90 days before 2011-09-09, evaluated out of time on 2011-09-09; churn = no order in the next
//! 90 days), scores every account through the gateway with a JWT — score, risk band, top factors,
//! next best action — and reports.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use serde::Serialize;
use sextant_contracts::api::{
    AccountPage, BandThreshold, JobState, ModelMetadata, ModelMetrics, PromotionDecision,
    RecordScore, ScoreRequest, ScoreResponse, SyncReport, TrainJob, TrainJobRequest,
};
use sextant_service_kit::http::read_json;

use crate::suite::{Suite, Urls};

/// What the demo does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub cutoff: NaiveDate,
    pub horizon_days: u32,
    pub epochs: u32,
    /// Print progress lines to stderr.
    pub progress: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            cutoff: NaiveDate::from_ymd_opt(2011, 9, 9).unwrap_or_default(),
            horizon_days: 90,
            epochs: 30,
            progress: true,
        }
    }
}

/// The demo's result (`sextant demo --once --json` prints this).
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub accounts_synced: u64,
    pub sync: SyncReport,
    pub model_version: String,
    /// Whether the trained version became current, and why (the promotion gate).
    pub promotion: Option<PromotionDecision>,
    pub metrics: ModelMetrics,
    /// The model's risk bands, highest threshold first.
    pub bands: Vec<BandThreshold>,
    pub scores: Vec<RecordScore>,
    pub urls: Urls,
    /// Plots of the model: files in the registry, then the trainer's URLs for them.
    pub plots: Vec<String>,
}

fn say(on: bool, line: &str) {
    if on {
        let mut err = std::io::stderr();
        let _ = writeln!(err, "{line}");
    }
}

/// Runs the loop against a started suite.
pub async fn run(suite: &Suite, options: &DemoOptions) -> anyhow::Result<DemoReport> {
    let http = sextant_service_kit::http::client(Duration::from_secs(300));
    let urls = &suite.urls;
    say(
        options.progress,
        &format!(
            "● org simulator at {}; syncing through the connector…",
            urls.org
        ),
    );
    let sync: SyncReport = read_json(
        http.post(format!("{}/v1/sync", urls.connector))
            .send()
            .await?,
    )
    .await
    .context("sync")?;
    let accounts_synced = sync.objects.get("Account").copied().unwrap_or(0);
    say(
        options.progress,
        &format!("  synced {:?} in {} SOQL pages", sync.objects, sync.pages),
    );

    say(
        options.progress,
        &format!(
            "● training churn (features as of {}, churn = no order in {} days)…",
            options.cutoff, options.horizon_days
        ),
    );
    let request = TrainJobRequest {
        cutoff: options.cutoff,
        horizon_days: options.horizon_days,
        epochs: Some(options.epochs),
        seed: Some(42),
        cutoff_step_days: None,
        cutoff_span_days: None,
    };
    let mut job: TrainJob = read_json(
        http.post(format!("{}/v1/jobs", urls.trainer))
            .json(&request)
            .send()
            .await?,
    )
    .await
    .context("starting training")?;
    let mut last_report = 0;
    while matches!(job.state, JobState::Queued | JobState::Running) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        job = read_json(
            http.get(format!("{}/v1/jobs/{}", urls.trainer, job.id))
                .send()
                .await?,
        )
        .await?;
        if job.epochs_done >= last_report + 5
            || (job.epochs_done == job.epochs_total && job.epochs_done > last_report)
        {
            last_report = job.epochs_done;
            say(
                options.progress,
                &format!(
                    "  epoch {:>4}/{} loss {:.4}",
                    job.epochs_done,
                    job.epochs_total,
                    job.loss.unwrap_or(f64::NAN)
                ),
            );
        }
    }
    if job.state == JobState::Failed {
        bail!("training failed: {}", job.error.unwrap_or_default());
    }
    let trained: ModelMetadata = read_json(
        http.get(format!(
            "{}/v1/models/{}",
            urls.trainer,
            job.model_version
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        ))
        .send()
        .await?,
    )
    .await?;
    if let Some(p) = &trained.promotion {
        say(
            options.progress,
            &format!(
                "  {} {}: {}",
                trained.version,
                if p.promoted {
                    "promoted"
                } else {
                    "kept as a candidate"
                },
                p.reason
            ),
        );
    }
    let meta: ModelMetadata = read_json(
        http.get(format!("{}/v1/models/current", urls.trainer))
            .send()
            .await?,
    )
    .await?;

    say(
        options.progress,
        "● scoring every account through the gateway…",
    );
    suite
        .wait_gateway_ready(std::time::Duration::from_secs(60))
        .await?;
    let token = suite.gateway_token(600)?;
    let mut scores = Vec::new();
    let mut bands = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/accounts?limit=200", urls.feature_store);
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let page: AccountPage = read_json(http.get(url).send().await?).await?;
        if page.account_ids.is_empty() {
            break;
        }
        let req = ScoreRequest {
            record_ids: page.account_ids.iter().map(ToString::to_string).collect(),
        };
        let resp: ScoreResponse = read_json(
            http.post(format!("{}/v1/scores", urls.gateway))
                .bearer_auth(&token)
                .json(&req)
                .send()
                .await?,
        )
        .await
        .context("scoring")?;
        scores.extend(resp.scores);
        bands = resp.bands;
        match page.next_after {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    // The registry's files outlive the suite; the URLs work while it runs.
    let version_dir = suite
        .data_dir
        .join("models")
        .join("churn")
        .join(meta.version.to_string());
    let plots = ["roc.svg", "learning_curve.svg"]
        .iter()
        .map(|p| version_dir.join(p).display().to_string())
        .chain(
            ["roc.svg", "learning_curve.svg"]
                .iter()
                .map(|p| format!("{}/v1/models/{}/plots/{p}", urls.trainer, meta.version)),
        )
        .collect();
    Ok(DemoReport {
        accounts_synced,
        sync,
        model_version: meta.version.to_string(),
        promotion: trained.promotion,
        metrics: meta.metrics,
        bands,
        scores,
        urls: urls.clone(),
        plots,
    })
}

/// The human-readable summary.
pub fn summary(report: &DemoReport) -> String {
    let m = &report.metrics;
    let mut out = String::new();
    out.push_str(&format!(
        "\nSextant demo — {} accounts synced from the org simulator\n",
        report.accounts_synced
    ));
    out.push_str(&format!(
        "Model {}: out-of-time ROC-AUC {:.3}, accuracy {:.3} (base rate {:.1}% churn), log-loss {:.3}; {} training rows / {} test accounts\n",
        report.model_version, m.auc, m.accuracy, m.base_rate * 100.0, m.log_loss, m.n_train, m.n_test
    ));
    if let Some(p) = &report.promotion {
        out.push_str(&format!("Promotion gate: {}\n", p.reason));
    }
    if !report.bands.is_empty() {
        let bands: Vec<String> = report
            .bands
            .iter()
            .map(|b| format!("{} ≥ {:.3}", b.name.as_str(), b.min_score))
            .collect();
        out.push_str(&format!("Risk bands: {}\n", bands.join(", ")));
    }
    out.push_str(&format!(
        "Scored {} accounts. Highest churn risk:\n",
        report.scores.len()
    ));
    let mut top: Vec<&RecordScore> = report.scores.iter().collect();
    top.sort_by(|a, b| b.score.total_cmp(&a.score));
    for s in top.iter().take(10) {
        out.push_str(&format!(
            "  {}  {:>5.1}%  {:<6} {}\n",
            s.record_id,
            s.score * 100.0,
            s.band.map_or("", |b| b.as_str()),
            bar(s.score)
        ));
        for f in &s.factors {
            let arrow = match f.direction {
                sextant_contracts::api::FactorDirection::RaisesRisk => "▲",
                sextant_contracts::api::FactorDirection::LowersRisk => "▼",
            };
            out.push_str(&format!("      {arrow} {}\n", f.text));
        }
        if let Some(a) = &s.next_best_action {
            out.push_str(&format!("      → {}\n", a.action));
        }
    }
    out.push_str("Plots (ROC curve, learning curve):\n");
    for p in report.plots.iter().take(2) {
        out.push_str(&format!("  {p}\n"));
    }
    out
}

fn bar(p: f64) -> String {
    "█".repeat((p * 20.0).round() as usize)
}
