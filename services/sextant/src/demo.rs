//! `sextant demo`: the whole loop on a laptop.
//!
//! Starts the suite against the org simulator (loaded with real UCI Online Retail customers),
//! trains the case sentiment model on the shipped rated snippets (the feature store follows the
//! trainer's current sentiment model, so the synced cases are judged by it), syncs the org
//! through the connector, trains the sequence churn model (stacked cut-offs up to
//! 90 days before 2011-09-09, evaluated out of time on 2011-09-09; churn = no order in the next
//! 90 days), fits the CLV model (BG/NBD or its fallback and Gamma-Gamma on the purchase summaries
//! as of 2011-09-09, evaluated on the next 90 days' purchases), scores every account through the
//! gateway with a JWT — score, risk band, top factors, CLV and P(alive), the value-aware next best
//! action — and reports.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use serde::Serialize;
use sextant_contracts::api::{
    AccountPage, BandThreshold, ClvJobRequest, ClvMetrics, ClvModelMetadata, JobState, ModelCard,
    ModelMetadata, ModelMetrics, PromotionDecision, RecordClv, RecordScore, ScoreRequest,
    ScoreResponse, SyncReport, TrainJob, TrainJobRequest,
};
use sextant_service_kit::http::read_json;
use sextant_service_kit::internal_auth::InternalClient;

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
    /// The CLV model the scores were valued with.
    pub clv: ClvReport,
    /// The sentiment model that judged the synced cases.
    pub sentiment: ModelCard,
    /// The cross-sell model trained on the synced purchases, and its first answers.
    pub cross_sell: CrossSellReport,
}

/// The cross-sell model of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct CrossSellReport {
    pub card: ModelCard,
    /// The gateway's `POST /v1/cross-sell` answer for the first accounts.
    pub suggestions: serde_json::Value,
}

/// The CLV model of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct ClvReport {
    pub model_version: String,
    pub promotion: Option<PromotionDecision>,
    pub metrics: ClvMetrics,
    /// Why the purchase model is not BG/NBD, when it is not.
    pub fallback: Option<serde_json::Value>,
    /// The holdout plot: the registry file, then the trainer's URL.
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
    // Internal calls carry the suite's internal token; the gateway's go with a Salesforce-style
    // token on the plain client.
    let http = suite.internal_client(Duration::from_secs(300));
    let urls = &suite.urls;
    let sentiment = train_sentiment(&http, suite, options).await?;
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
    let clv = train_clv(&http, suite, options).await?;
    let cross_sell = train_cross_sell(&http, suite, options).await?;

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
            http.plain()
                .post(format!("{}/v1/scores", urls.gateway))
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
        clv,
        sentiment,
        cross_sell,
    })
}

/// Polls a trainer job until it ends.
async fn wait_for(http: &InternalClient, trainer: &str, job: &mut TrainJob) -> anyhow::Result<()> {
    while matches!(job.state, JobState::Queued | JobState::Running) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        *job = read_json(
            http.get(format!("{trainer}/v1/jobs/{}", job.id))
                .send()
                .await?,
        )
        .await?;
    }
    Ok(())
}

/// Trains the case sentiment model on the shipped rated snippets through the trainer, and waits
/// until the feature store judges case text with it (so the sync that follows is scored by it).
async fn train_sentiment(
    http: &InternalClient,
    suite: &Suite,
    options: &DemoOptions,
) -> anyhow::Result<ModelCard> {
    let urls = &suite.urls;
    say(
        options.progress,
        "● training the case sentiment model on the shipped rated snippets…",
    );
    let mut job: TrainJob = read_json(
        http.post(format!("{}/v1/sentiment/jobs", urls.trainer))
            .header("content-type", "text/tab-separated-values")
            .body(sextant_org_sim::data::case_snippets())
            .send()
            .await?,
    )
    .await
    .context("starting the sentiment job")?;
    wait_for(http, &urls.trainer, &mut job).await?;
    if job.state == JobState::Failed {
        bail!(
            "sentiment training failed: {}",
            job.error.unwrap_or_default()
        );
    }
    let card: ModelCard = read_json(
        http.get(format!("{}/v1/sentiment/models/current", urls.trainer))
            .send()
            .await?,
    )
    .await
    .context("the current sentiment model")?;
    let m = |k: &str| card.metrics.get(k).copied().unwrap_or(f64::NAN);
    say(
        options.progress,
        &format!(
            "  {}: held-out weighted F1 {:.3} (TF-IDF + LR {:.3}, lexicon {:.3}) on {} sentences",
            card.version,
            m("weighted_f1"),
            m("baseline_weighted_f1"),
            m("lexicon_weighted_f1"),
            card.config.get("n_test").cloned().unwrap_or_default()
        ),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = http
            .get(format!("{}/metrics", urls.feature_store))
            .send()
            .await?
            .text()
            .await?;
        let loaded = metrics.lines().find_map(|l| {
            l.strip_prefix("sextant_feature_store_sentiment_model_loaded ")?
                .trim()
                .parse::<f64>()
                .ok()
        });
        if loaded == Some(1.0) {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the feature store did not load sentiment model {} within 30 s",
                card.version
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(card)
}

/// Fits the CLV model through the trainer, and waits until the gateway values accounts with it.
async fn train_clv(
    http: &InternalClient,
    suite: &Suite,
    options: &DemoOptions,
) -> anyhow::Result<ClvReport> {
    let urls = &suite.urls;
    say(
        options.progress,
        &format!(
            "● fitting CLV (purchases before {}, evaluated on the next {} days)…",
            options.cutoff, options.horizon_days
        ),
    );
    let mut job: TrainJob = read_json(
        http.post(format!("{}/v1/clv/jobs", urls.trainer))
            .json(&ClvJobRequest {
                cutoff: options.cutoff,
                horizon_days: options.horizon_days,
            })
            .send()
            .await?,
    )
    .await
    .context("starting the CLV job")?;
    wait_for(http, &urls.trainer, &mut job).await?;
    if job.state == JobState::Failed {
        bail!("CLV fit failed: {}", job.error.unwrap_or_default());
    }
    let version = job.model_version.map(|v| v.to_string()).unwrap_or_default();
    let meta: ClvModelMetadata = read_json(
        http.get(format!("{}/v1/clv/models/{version}", urls.trainer))
            .send()
            .await?,
    )
    .await?;
    let m = &meta.metrics;
    say(
        options.progress,
        &format!(
            "  {version} ({}): holdout MAE {:.3} purchases/account, P(any purchase) ROC-AUC {}",
            m.purchase_model,
            m.holdout_mae_purchases,
            m.holdout_auc_any_purchase
                .map_or_else(|| "n/a".to_owned(), |a| format!("{a:.3}"))
        ),
    );
    if let Some(p) = &meta.promotion {
        say(
            options.progress,
            &format!(
                "  {version} {}: {}",
                if p.promoted {
                    "promoted"
                } else {
                    "kept as a candidate"
                },
                p.reason
            ),
        );
    }
    // The gateway refreshes in the background; wait until it values accounts with a CLV model.
    suite
        .wait_gateway_ready(std::time::Duration::from_secs(60))
        .await?;
    let token = suite.gateway_token(120)?;
    let first: AccountPage = read_json(
        http.get(format!("{}/v1/accounts?limit=1", urls.feature_store))
            .send()
            .await?,
    )
    .await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Some(id) = first.account_ids.first() {
        let resp: ScoreResponse = read_json(
            http.plain()
                .post(format!("{}/v1/scores", urls.gateway))
                .bearer_auth(&token)
                .json(&ScoreRequest {
                    record_ids: vec![id.to_string()],
                })
                .send()
                .await?,
        )
        .await
        .context("scoring")?;
        let loaded = resp
            .scores
            .iter()
            .any(|s| matches!(&s.clv, Some(RecordClv::Available(_))))
            || resp.errors.iter().any(|e| e.record_id == *id);
        if loaded {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the gateway did not load a CLV model within 30 s: {:?}",
                resp.scores.first().and_then(|s| s.clv.clone())
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dir = suite.data_dir.join("models").join("clv").join(&version);
    Ok(ClvReport {
        fallback: meta
            .config
            .get("fallback")
            .filter(|f| !f.is_null())
            .cloned(),
        plots: vec![
            dir.join("holdout.svg").display().to_string(),
            format!("{}/v1/clv/models/{version}/plots/holdout.svg", urls.trainer),
        ],
        model_version: version,
        promotion: meta.promotion,
        metrics: meta.metrics,
    })
}

/// Trains the cross-sell model on the feature store's purchases through the trainer, and asks
/// the gateway for the first accounts' suggestions once it serves the model.
async fn train_cross_sell(
    http: &InternalClient,
    suite: &Suite,
    options: &DemoOptions,
) -> anyhow::Result<CrossSellReport> {
    let urls = &suite.urls;
    say(
        options.progress,
        "● training cross-sell and next category on the synced purchases…",
    );
    let mut job: TrainJob = read_json(
        http.post(format!(
            "{}/v1/cross-sell/jobs?source=feature_store",
            urls.trainer
        ))
        .send()
        .await?,
    )
    .await
    .context("starting the cross-sell job")?;
    wait_for(http, &urls.trainer, &mut job).await?;
    if job.state == JobState::Failed {
        bail!(
            "cross-sell training failed: {}",
            job.error.unwrap_or_default()
        );
    }
    let version = job.model_version.map(|v| v.to_string()).unwrap_or_default();
    let card: ModelCard = read_json(
        http.get(format!("{}/v1/cross-sell/models/{version}", urls.trainer))
            .send()
            .await?,
    )
    .await?;
    let m = |k: &str| card.metrics.get(k).copied().unwrap_or(f64::NAN);
    say(
        options.progress,
        &format!(
            "  {version}: test-period NDCG@10 {:.3} (popularity {:.3}), next-category top-1 {:.3} (last category {:.3})",
            m("ndcg_at_10"),
            m("popularity_ndcg_at_10"),
            m("top1_accuracy"),
            m("last_category_top1_accuracy")
        ),
    );
    let token = suite.gateway_token(120)?;
    let first: AccountPage = read_json(
        http.get(format!("{}/v1/accounts?limit=3", urls.feature_store))
            .send()
            .await?,
    )
    .await?;
    let ids: Vec<String> = first.account_ids.iter().map(ToString::to_string).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let suggestions = loop {
        let resp = http
            .plain()
            .post(format!("{}/v1/cross-sell", urls.gateway))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "record_ids": ids }))
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        // 503 no_model: the gateway has not loaded the new model yet.
        if status.is_success() && body["model_version"] == version.as_str() {
            break body;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the gateway did not serve cross-sell model {version} within 30 s: {status} {body}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    Ok(CrossSellReport { card, suggestions })
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
    let sm = |k: &str| report.sentiment.metrics.get(k).copied().unwrap_or(f64::NAN);
    out.push_str(&format!(
        "Sentiment model {} (judges case text for the churn features): held-out weighted F1 {:.3} vs TF-IDF + LR {:.3} and the lexicon {:.3}\n",
        report.sentiment.version,
        sm("weighted_f1"),
        sm("baseline_weighted_f1"),
        sm("lexicon_weighted_f1")
    ));
    let c = &report.clv.metrics;
    out.push_str(&format!(
        "CLV model {} ({}): holdout ({:.0} weeks) MAE {:.3} purchases per account (actual mean {:.3}, predicted {:.3}), P(any purchase) ROC-AUC {}; {} accounts, {} repeat buyers\n",
        report.clv.model_version,
        c.purchase_model,
        c.holdout_weeks,
        c.holdout_mae_purchases,
        c.holdout_mean_actual,
        c.holdout_mean_predicted,
        c.holdout_auc_any_purchase.map_or_else(|| "n/a".to_owned(), |a| format!("{a:.3}")),
        c.n_accounts,
        c.n_repeat_buyers
    ));
    if let Some(f) = &report.clv.fallback {
        out.push_str(&format!("CLV fallback: {f}\n"));
    }
    if let Some(p) = &report.clv.promotion {
        out.push_str(&format!("CLV promotion gate: {}\n", p.reason));
    }
    let xm = |k: &str| {
        report
            .cross_sell
            .card
            .metrics
            .get(k)
            .copied()
            .unwrap_or(f64::NAN)
    };
    out.push_str(&format!(
        "Cross-sell model {}: test-period NDCG@10 {:.3}, HR@10 {:.3} (popularity {:.3} / {:.3}); next category top-1 {:.3} (last category {:.3}, popularity {:.3})\n",
        report.cross_sell.card.version,
        xm("ndcg_at_10"),
        xm("hr_at_10"),
        xm("popularity_ndcg_at_10"),
        xm("popularity_hr_at_10"),
        xm("top1_accuracy"),
        xm("last_category_top1_accuracy"),
        xm("popularity_top1_accuracy")
    ));
    for r in report.cross_sell.suggestions["results"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let items: Vec<String> = r["items"]
            .as_array()
            .into_iter()
            .flatten()
            .take(3)
            .map(|i| match i["because"]["name"].as_str() {
                Some(b) => format!("{} (bought {b})", i["name"].as_str().unwrap_or("?")),
                None => i["name"].as_str().unwrap_or("?").to_owned(),
            })
            .collect();
        out.push_str(&format!(
            "  {} may buy next: {}; next order's category: {}\n",
            r["record_id"].as_str().unwrap_or("?"),
            items.join(", "),
            r["next_category"][0]["category"].as_str().unwrap_or("?")
        ));
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
            "  {}  {:>5.1}%  {:<6} {:<20} {}\n",
            s.record_id,
            s.score * 100.0,
            s.band.map_or("", |b| b.as_str()),
            bar(s.score),
            clv_text(s.clv.as_ref())
        ));
        for f in &s.factors {
            let arrow = match f.direction {
                sextant_contracts::api::FactorDirection::RaisesRisk => "▲",
                sextant_contracts::api::FactorDirection::LowersRisk => "▼",
            };
            out.push_str(&format!("      {arrow} {}\n", f.text));
        }
        if let Some(a) = &s.next_best_action {
            match a.expected_value {
                Some(v) => out.push_str(&format!("      → {} (expected value {v:.2})\n", a.action)),
                None => out.push_str(&format!("      → {}\n", a.action)),
            }
        }
    }
    let mut valued: Vec<(&RecordScore, f64)> = report
        .scores
        .iter()
        .filter_map(|s| match &s.clv {
            Some(RecordClv::Available(c)) => Some((s, c.value)),
            _ => None,
        })
        .collect();
    valued.sort_by(|a, b| b.1.total_cmp(&a.1));
    out.push_str(&format!(
        "Valued {} of {} accounts. Highest CLV:\n",
        valued.len(),
        report.scores.len()
    ));
    for (s, _) in valued.iter().take(5) {
        out.push_str(&format!(
            "  {}  {}  churn {:>5.1}% → {}\n",
            s.record_id,
            clv_text(s.clv.as_ref()),
            s.score * 100.0,
            s.next_best_action.as_ref().map_or("", |a| a.code.as_str())
        ));
    }
    out.push_str("Plots (ROC curve, learning curve, CLV holdout):\n");
    for p in report
        .plots
        .iter()
        .take(2)
        .chain(report.clv.plots.iter().take(1))
    {
        out.push_str(&format!("  {p}\n"));
    }
    out
}

fn clv_text(clv: Option<&RecordClv>) -> String {
    match clv {
        Some(RecordClv::Available(c)) => format!(
            "CLV {:>9.2} ({} months, {} value), P(alive) {:.2}",
            c.value,
            c.horizon_months,
            c.value_tier.as_str(),
            c.p_alive
        ),
        Some(RecordClv::Unavailable(u)) => format!("CLV unavailable: {}", u.reason),
        None => String::new(),
    }
}

fn bar(p: f64) -> String {
    "█".repeat((p * 20.0).round() as usize)
}
