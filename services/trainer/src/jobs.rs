//! Training jobs: started over HTTP, run in the background one at a time, observable while
//! they run (epoch and loss), and published to the registry when they succeed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sextant_contracts::ModelVersion;
use sextant_contracts::api::{
    ClvJobRequest, ClvModelMetadata, JobState, ModelCard, ModelMetadata, TrainJob, TrainJobRequest,
    TrainingSet, TrainingSetRequest,
};
use sextant_contracts::time::SharedClock;
use sextant_models::metrics::confusion_svg;
use sextant_models::sentiment::SentimentClass;

use crate::churn_job::{self, ChurnJobConfig};
use crate::clv_job::{self, ClvJobConfig};
use crate::registry::{Churn, Clv, Registry, Sentiment};

/// The backend training runs on: Burn's pure-Rust CPU backend, or CUDA with `--features cuda`.
#[cfg(not(feature = "cuda"))]
pub type TrainBackend = burn::backend::Autodiff<burn::backend::Flex>;
/// The backend training runs on: Burn's pure-Rust CPU backend, or CUDA with `--features cuda`.
#[cfg(feature = "cuda")]
pub type TrainBackend = burn::backend::Autodiff<burn::backend::Cuda>;

/// Jobs by id, and the lock that runs them one at a time.
#[derive(Debug, Clone)]
pub struct Jobs {
    table: Arc<Mutex<HashMap<String, TrainJob>>>,
    /// Held for a whole run: one training at a time keeps version numbers ordered and the
    /// CPU free for serving.
    run_lock: Arc<tokio::sync::Mutex<()>>,
    http: sextant_service_kit::internal_auth::InternalClient,
    feature_store_url: String,
    registry: Registry<Churn>,
    clv_registry: Registry<Clv>,
    sentiment_registry: Registry<Sentiment>,
    clock: SharedClock,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Jobs {
    /// A job table that trains from `feature_store_url` into `registry` (churn) and
    /// `clv_registry` (CLV) and `sentiment_registry`.
    pub fn new(
        http: sextant_service_kit::internal_auth::InternalClient,
        feature_store_url: &str,
        registry: Registry<Churn>,
        clv_registry: Registry<Clv>,
        sentiment_registry: Registry<Sentiment>,
        clock: SharedClock,
    ) -> Self {
        Self {
            table: Arc::default(),
            run_lock: Arc::default(),
            http,
            feature_store_url: feature_store_url.trim_end_matches('/').to_owned(),
            registry,
            clv_registry,
            sentiment_registry,
            clock,
        }
    }

    /// A job by id.
    pub fn get(&self, id: &str) -> Option<TrainJob> {
        lock(&self.table).get(id).cloned()
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut TrainJob)) {
        if let Some(job) = lock(&self.table).get_mut(id) {
            f(job);
        }
    }

    /// Queues a job of `kind` and runs `run` in the background once no other job runs (one at a
    /// time keeps version numbers ordered and the CPU free for serving); its state and result,
    /// or its error, land in the table. A job of one step counts it done when it succeeds.
    fn spawn<F, Fut>(&self, kind: &'static str, steps: u32, run: F) -> TrainJob
    where
        F: FnOnce(Jobs, String) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(ModelVersion, String), String>> + Send + 'static,
    {
        let job = TrainJob {
            id: uuid::Uuid::new_v4().to_string(),
            state: JobState::Queued,
            epochs_done: 0,
            epochs_total: steps,
            loss: None,
            model_version: None,
            error: None,
            created_at: self.clock.now(),
        };
        lock(&self.table).insert(job.id.clone(), job.clone());
        let this = self.clone();
        let id = job.id.clone();
        tokio::spawn(async move {
            let _running = this.run_lock.lock().await;
            this.update(&id, |j| j.state = JobState::Running);
            match run(this.clone(), id.clone()).await {
                Ok((version, summary)) => {
                    tracing::info!(job = %id, kind, %version, %summary, "Training job succeeded.");
                    this.update(&id, |j| {
                        j.state = JobState::Succeeded;
                        if steps == 1 {
                            j.epochs_done = 1;
                        }
                        j.model_version = Some(version);
                    });
                }
                Err(e) => {
                    tracing::warn!(job = %id, kind, error = %e, "Training job failed.");
                    this.update(&id, |j| {
                        j.state = JobState::Failed;
                        j.error = Some(e);
                    });
                }
            }
        });
        job
    }

    /// Queues a churn job and starts it in the background.
    pub fn start(&self, req: TrainJobRequest, config: ChurnJobConfig) -> TrainJob {
        let epochs = config.max_epochs;
        self.spawn("churn", epochs, move |jobs, id| async move {
            jobs.run(&id, req, config)
                .await
                .map(|m| (m.version, format!("ROC-AUC {:.4}", m.metrics.auc)))
        })
    }

    /// Fetches the stacked training set with sequences, trains the sequence model, stores it as
    /// a candidate and runs the promotion gate against the model current when the job started.
    async fn run(
        &self,
        id: &str,
        req: TrainJobRequest,
        config: ChurnJobConfig,
    ) -> Result<ModelMetadata, String> {
        let (current_version, current) = self
            .registry
            .current_with_artifact()
            .map_err(|e| e.to_string())?;
        let cutoffs = churn_job::cutoffs(
            req.cutoff,
            req.horizon_days,
            config.cutoff_step_days,
            config.cutoff_span_days,
        );
        let set = churn_job::fetch(
            &self.http,
            &self.feature_store_url,
            &TrainingSetRequest {
                cutoffs,
                examples: Vec::new(),
                horizon_days: req.horizon_days,
                include_sequences: true,
                org_id: None,
            },
            config.weeks,
            current.as_ref(),
        )
        .await
        .map_err(|e| e.to_string())?;
        drop(current);
        let (_, n_test) = set.sizes();
        let version = self.registry.next_version().map_err(|e| e.to_string())?;
        let progress_jobs = self.clone();
        let progress_id = id.to_owned();
        let trained = tokio::task::spawn_blocking(move || {
            let device = Default::default();
            churn_job::train::<TrainBackend>(set, &config, version, &device, |epoch, loss| {
                progress_jobs.update(&progress_id, |j| {
                    j.epochs_done = epoch;
                    j.loss = Some(loss);
                });
            })
        })
        .await
        .map_err(|e| format!("training task: {e}"))?
        .map_err(|e| e.to_string())?;
        let artifact = &trained.publication.artifact;
        let metadata = ModelMetadata {
            version: artifact.version().clone(),
            created_at: self.clock.now(),
            feature_names: artifact.feature_names().to_vec(),
            metrics: trained.metrics.clone(),
            config: trained.config.clone(),
            status: None,
            promotion: None,
        };
        self.registry
            .publish(&trained.publication, &metadata)
            .map_err(|e| e.to_string())?;
        let decision = churn_job::gate(
            trained.metrics.auc,
            current_version.as_ref(),
            &trained.current_auc,
            &format!(
                "out-of-time evaluation at {}, {n_test} accounts",
                req.cutoff
            ),
            self.clock.now(),
        );
        tracing::info!(version = %metadata.version, promoted = decision.promoted, reason = %decision.reason, "Promotion gate.");
        self.registry
            .decide(&metadata.version, decision)
            .map_err(|e| e.to_string())
    }
}

impl Jobs {
    /// Queues a CLV job and starts it in the background (one job of any kind runs at a time).
    /// Its progress is one step: `epochs_done` goes from 0 to 1 when the fit is stored.
    pub fn start_clv(&self, req: ClvJobRequest, config: ClvJobConfig) -> TrainJob {
        self.spawn("clv", 1, move |jobs, _| async move {
            jobs.run_clv(req, config).await.map(|m| {
                (
                    m.version,
                    format!("holdout MAE {:.4}", m.metrics.holdout_mae_purchases),
                )
            })
        })
    }

    /// Streams the set, fits and evaluates in a blocking task, stores the version as a
    /// candidate and runs the CLV gate against the model current when the job started.
    async fn run_clv(
        &self,
        req: ClvJobRequest,
        config: ClvJobConfig,
    ) -> Result<ClvModelMetadata, String> {
        let registry = &self.clv_registry;
        let (current_version, current) = registry
            .current_with_artifact()
            .map_err(|e| e.to_string())?;
        let set = clv_job::fetch(
            &self.http,
            &self.feature_store_url,
            req.cutoff,
            req.horizon_days,
            &config,
        )
        .await
        .map_err(|e| e.to_string())?;
        let version = registry.next_version().map_err(|e| e.to_string())?;
        let trained = tokio::task::spawn_blocking(move || {
            clv_job::fit(&set, &config, version, current.as_ref())
        })
        .await
        .map_err(|e| format!("CLV fit task: {e}"))?
        .map_err(|e| e.to_string())?;
        let metadata = ClvModelMetadata {
            version: trained.publication.artifact.version.clone(),
            created_at: self.clock.now(),
            metrics: trained.metrics.clone(),
            config: trained.config.clone(),
            training_set_fingerprint: trained.fingerprint.clone(),
            status: None,
            promotion: None,
        };
        registry
            .publish(&trained.publication, &metadata)
            .map_err(|e| e.to_string())?;
        let candidate = clv_job::HoldoutFigures {
            mae: trained.metrics.holdout_mae_purchases,
            mean_predicted: trained.metrics.holdout_mean_predicted,
            auc_any_purchase: trained.metrics.holdout_auc_any_purchase,
        };
        let decision = clv_job::gate(
            &candidate,
            current_version.as_ref(),
            &trained.current,
            &format!(
                "holdout {} – {}, {} accounts",
                req.cutoff,
                clv_job::window_end(req.cutoff, req.horizon_days),
                trained.metrics.n_accounts
            ),
            self.clock.now(),
        );
        tracing::info!(version = %metadata.version, promoted = decision.promoted, reason = %decision.reason, "CLV promotion gate.");
        registry
            .decide(&metadata.version, decision)
            .map_err(|e| e.to_string())
    }
}

/// Labelled support text handed to a sentiment job: the uploaded file (removed when the job
/// ends), its SHA-256 and the seed.
#[derive(Debug)]
pub struct SentimentData {
    pub file: tempfile::TempPath,
    pub fingerprint: String,
    pub seed: u64,
}

impl Jobs {
    /// Queues a sentiment job and starts it in the background (one job of any kind runs at a
    /// time). Its progress is one step: `epochs_done` goes from 0 to 1 when the model is stored.
    pub fn start_sentiment(&self, data: SentimentData) -> TrainJob {
        self.spawn("sentiment", 1, move |jobs, _| async move {
            jobs.run_sentiment(data).await.map(|card| {
                let f1 = card.metrics.get("weighted_f1").copied().unwrap_or(f64::NAN);
                (card.version, format!("weighted F1 {f1:.4}"))
            })
        })
    }

    /// Trains and measures on the held-out rows (next to the current model on the same rows),
    /// stores the version as a candidate and runs the gate on weighted F1.
    async fn run_sentiment(&self, data: SentimentData) -> Result<ModelCard, String> {
        let registry = &self.sentiment_registry;
        let (current_version, current) = registry
            .current_with_artifact()
            .map_err(|e| e.to_string())?;
        let version = registry.next_version().map_err(|e| e.to_string())?;
        let SentimentData {
            file,
            fingerprint,
            seed,
        } = data;
        let options = crate::evaluate::EvalOptions {
            seed,
            plot_dir: None,
            progress: false,
        };
        let trained = tokio::task::spawn_blocking(move || {
            let out = crate::evaluate::sentiment::train_held_out(&file, &options, current.as_ref());
            drop(file);
            out
        })
        .await
        .map_err(|e| format!("sentiment training task: {e}"))?
        .map_err(|e| crate::evaluate::upload_error_text(&e))?;
        let mut artifact = trained.artifact;
        artifact.version = version.to_string();
        let candidate = trained.metrics.get("weighted_f1").copied().unwrap_or(0.0);
        let card = ModelCard {
            version: version.clone(),
            created_at: self.clock.now(),
            metrics: trained.metrics,
            gate_metric: "weighted_f1".to_owned(),
            config: trained.config,
            training_set_fingerprint: fingerprint,
            status: None,
            promotion: None,
        };
        let classes: Vec<&str> = SentimentClass::ALL.iter().map(|c| c.name()).collect();
        let confusion = confusion_svg(
            &classes,
            &trained
                .confusion
                .iter()
                .map(|r| r.to_vec())
                .collect::<Vec<_>>(),
            &format!("{version} — held-out confusion, weighted F1 {candidate:.3}"),
        );
        registry
            .publish(
                &crate::registry::Publication {
                    artifact,
                    plots: vec![("confusion.svg", confusion)],
                },
                &card,
            )
            .map_err(|e| e.to_string())?;
        let current_f1 = trained
            .current_f1
            .unwrap_or_else(|| Err("no current model".to_owned()));
        let decision = crate::registry::gate(
            "weighted F1",
            candidate,
            current_version.as_ref(),
            &current_f1,
            &format!("{} held-out sentences (every fifth row)", trained.n_test),
            self.clock.now(),
        );
        tracing::info!(version = %version, promoted = decision.promoted, reason = %decision.reason, "Sentiment promotion gate.");
        registry
            .decide(&version, decision)
            .map_err(|e| e.to_string())
    }
}

/// An object export handed to a propensity job.
#[derive(Debug)]
pub struct PropensityData {
    /// The definition's registry.
    pub registry: crate::registry::Registry<crate::registry::Propensity>,
    pub definition: sextant_models::tabular::PredictionDefinition,
    /// The uploaded CSV (removed when the job ends), its SHA-256 and the seed.
    pub file: tempfile::TempPath,
    pub fingerprint: String,
    pub seed: u64,
}

impl Jobs {
    /// Queues a propensity job and starts it in the background (one job of any kind runs at a
    /// time). Its progress is one step.
    pub fn start_propensity(&self, data: PropensityData) -> TrainJob {
        self.spawn("propensity", 1, move |jobs, _| async move {
            jobs.run_propensity(data).await.map(|card| {
                let auc = card.metrics.get("roc_auc").copied().unwrap_or(f64::NAN);
                (card.version, format!("ROC-AUC {auc:.4}"))
            })
        })
    }

    /// Trains and measures on the held-out rows (next to the current model on the same rows),
    /// stores the version as a candidate and runs the gate on ROC-AUC.
    async fn run_propensity(&self, data: PropensityData) -> Result<ModelCard, String> {
        let PropensityData {
            registry,
            definition,
            file,
            fingerprint,
            seed,
        } = data;
        let (current_version, current) = registry
            .current_with_artifact()
            .map_err(|e| e.to_string())?;
        let version = registry.next_version().map_err(|e| e.to_string())?;
        let options = crate::evaluate::EvalOptions {
            seed,
            plot_dir: None,
            progress: false,
        };
        let trained = tokio::task::spawn_blocking(move || {
            let out = crate::evaluate::propensity::train_held_out(
                &file,
                &definition,
                &options,
                current.as_ref(),
            );
            drop(file);
            out
        })
        .await
        .map_err(|e| format!("propensity training task: {e}"))?
        .map_err(|e| crate::evaluate::upload_error_text(&e))?;
        let auc = trained.metrics.get("roc_auc").copied().unwrap_or(0.0);
        let card = ModelCard {
            version: version.clone(),
            created_at: self.clock.now(),
            metrics: trained.metrics,
            gate_metric: "roc_auc".to_owned(),
            config: trained.config,
            training_set_fingerprint: fingerprint,
            status: None,
            promotion: None,
        };
        registry
            .publish(
                &crate::registry::Publication {
                    artifact: trained.artifact,
                    plots: vec![(
                        "roc.svg",
                        sextant_models::metrics::roc_svg(&trained.roc, auc, &version.to_string()),
                    )],
                },
                &card,
            )
            .map_err(|e| e.to_string())?;
        let current_auc = trained
            .current_auc
            .unwrap_or_else(|| Err("no current model".to_owned()));
        let mut decision = crate::registry::gate(
            "ROC-AUC",
            auc,
            current_version.as_ref(),
            &current_auc,
            &format!("{} held-out rows (every fifth)", trained.n_test),
            self.clock.now(),
        );
        decision.candidate_auc = Some(auc);
        decision.current_auc = current_version
            .as_ref()
            .and(current_auc.as_ref().ok().copied());
        tracing::info!(version = %version, promoted = decision.promoted, reason = %decision.reason, "Propensity promotion gate.");
        registry
            .decide(&version, decision)
            .map_err(|e| e.to_string())
    }
}

/// Reads a streamed (NDJSON) training set: a header, rows, a trailer with the fingerprint.
///
/// The stream is read a chunk at a time and parsed line by line; a stream that ends without its
/// trailer, or with an error line, is refused (a truncated set must never be trained on).
pub async fn fetch_training_set(
    http: &sextant_service_kit::internal_auth::InternalClient,
    feature_store_url: &str,
    request: &TrainingSetRequest,
) -> Result<TrainingSet, String> {
    let mut resp = http
        .post(format!("{feature_store_url}/v1/training-sets"))
        .json(request)
        .send()
        .await
        .map_err(|e| format!("feature store unreachable: {e}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(format!("feature store answered {status}: {body}"));
    }
    let mut parser = sextant_contracts::stream::TrainingSetParser::default();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("feature store stream: {e}"))?
    {
        parser.push(&chunk)?;
    }
    parser.finish()
}

/// Purchase lines handed to a cross-sell job: the file (an upload, or the feature store's
/// purchase export spooled to disk; removed when the job ends), its SHA-256, the seed and the
/// registry.
#[derive(Debug)]
pub struct CrossSellData {
    pub registry: crate::registry::Registry<crate::registry::CrossSell>,
    pub file: tempfile::TempPath,
    pub fingerprint: String,
    pub seed: u64,
}

impl Jobs {
    /// Queues a cross-sell job and starts it in the background (one job of any kind runs at a
    /// time). Its progress is one step.
    pub fn start_cross_sell(&self, data: CrossSellData) -> TrainJob {
        self.spawn("cross_sell", 1, move |jobs, _| async move {
            jobs.run_cross_sell(data).await.map(|card| {
                let ndcg = card.metrics.get("ndcg_at_10").copied().unwrap_or(f64::NAN);
                let top1 = card
                    .metrics
                    .get("top1_accuracy")
                    .copied()
                    .unwrap_or(f64::NAN);
                (
                    card.version,
                    format!("NDCG@10 {ndcg:.4}, next-category top-1 {top1:.4}"),
                )
            })
        })
    }

    /// Trains both models and measures them on the test period (next to the current model on the
    /// same customers), stores the version as a candidate and runs the gate: the new version
    /// becomes current only when both its NDCG@10 and its next-category top-1 accuracy are at
    /// least the current model's.
    async fn run_cross_sell(&self, data: CrossSellData) -> Result<ModelCard, String> {
        let CrossSellData {
            registry,
            file,
            fingerprint,
            seed,
        } = data;
        let (current_version, current) = registry
            .current_with_artifact()
            .map_err(|e| e.to_string())?;
        let version = registry.next_version().map_err(|e| e.to_string())?;
        let options = crate::evaluate::EvalOptions {
            seed,
            plot_dir: None,
            progress: false,
        };
        let trained = tokio::task::spawn_blocking(move || {
            let out =
                crate::evaluate::cross_sell::train_held_out(&file, &options, current.as_ref());
            drop(file);
            out
        })
        .await
        .map_err(|e| format!("cross-sell training task: {e}"))?
        .map_err(|e| crate::evaluate::upload_error_text(&e))?;
        let ndcg = trained.metrics.get("ndcg_at_10").copied().unwrap_or(0.0);
        let top1 = trained.metrics.get("top1_accuracy").copied().unwrap_or(0.0);
        let mut model = trained.model;
        model.version = version.to_string();
        let card = ModelCard {
            version: version.clone(),
            created_at: self.clock.now(),
            metrics: trained.metrics,
            gate_metric: "ndcg_at_10".to_owned(),
            config: trained.config,
            training_set_fingerprint: fingerprint,
            status: None,
            promotion: None,
        };
        let plot = crate::evaluate::cross_sell::hit_rate_svg(
            &trained.hit_curve,
            &format!("{version} — test-period hit rate at k"),
        );
        registry
            .publish(
                &crate::registry::Publication {
                    artifact: model,
                    plots: vec![("hit_rate.svg", plot)],
                },
                &card,
            )
            .map_err(|e| e.to_string())?;
        let current = trained
            .current
            .unwrap_or_else(|| Err("no current model".to_owned()));
        let (users, customers) = trained.n_test;
        let by_ndcg = crate::registry::gate(
            "NDCG@10",
            ndcg,
            current_version.as_ref(),
            &current.clone().map(|c| c.0),
            &format!("{users} test-period customers"),
            self.clock.now(),
        );
        let by_top1 = crate::registry::gate(
            "next-category top-1 accuracy",
            top1,
            current_version.as_ref(),
            &current.map(|c| c.1),
            &format!("{customers} test-period customers"),
            self.clock.now(),
        );
        let decision = sextant_contracts::api::PromotionDecision {
            promoted: by_ndcg.promoted && by_top1.promoted,
            reason: format!("{}; {}", by_ndcg.reason, by_top1.reason),
            ..by_ndcg
        };
        tracing::info!(version = %version, promoted = decision.promoted, reason = %decision.reason, "Cross-sell promotion gate.");
        registry
            .decide(&version, decision)
            .map_err(|e| e.to_string())
    }
}

impl Jobs {
    /// Queues a cross-sell job on the feature store's purchases: the job reads the store's
    /// purchase export (`GET /v1/purchases`) to a temporary file a chunk at a time, hashing it
    /// as it goes, checks it, then trains as on an upload.
    pub fn start_cross_sell_from_store(
        &self,
        registry: crate::registry::Registry<crate::registry::CrossSell>,
        seed: u64,
    ) -> TrainJob {
        self.spawn("cross_sell", 1, move |jobs, _| async move {
            let (file, fingerprint) = jobs.spool_purchases().await?;
            let file = tokio::task::spawn_blocking(move || {
                crate::evaluate::cross_sell::check_purchases(&file).map(|_| file)
            })
            .await
            .map_err(|e| format!("checking the purchases: {e}"))?
            .map_err(|e| {
                format!(
                    "the feature store's purchases: {}",
                    crate::evaluate::upload_error_text(&e)
                )
            })?;
            let card = jobs
                .run_cross_sell(CrossSellData {
                    registry,
                    file,
                    fingerprint,
                    seed,
                })
                .await?;
            let ndcg = card.metrics.get("ndcg_at_10").copied().unwrap_or(f64::NAN);
            let top1 = card
                .metrics
                .get("top1_accuracy")
                .copied()
                .unwrap_or(f64::NAN);
            Ok((
                card.version,
                format!("NDCG@10 {ndcg:.4}, next-category top-1 {top1:.4}"),
            ))
        })
    }

    /// Reads the store's purchase export into a temporary file; returns it with its SHA-256. A
    /// stream cut short (the store fails mid-way and aborts the response) is an error, never a
    /// shorter training set; an export over the upload limit is refused (the job reads the file
    /// into memory).
    async fn spool_purchases(&self) -> Result<(tempfile::TempPath, String), String> {
        let url = format!("{}/v1/purchases", self.feature_store_url);
        self.spool(
            self.http.get(&url),
            "the feature store's purchases",
            crate::api::MAX_CROSS_SELL_UPLOAD,
            "train on a sample of accounts uploaded to POST /v1/cross-sell/jobs",
        )
        .await
    }

    /// Reads a response body into a temporary file a chunk at a time, hashing it as it goes;
    /// returns it with its SHA-256. A non-success status is an error with the store's answer, a
    /// body cut short is an error (never a shorter file), and a body over `limit` bytes is
    /// refused with `hint` (the jobs read the file into memory).
    async fn spool(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
        limit: usize,
        hint: &str,
    ) -> Result<(tempfile::TempPath, String), String> {
        use sha2::Digest as _;
        use std::io::Write as _;
        let mut resp = request.send().await.map_err(|e| format!("{what}: {e}"))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(format!("{what}: HTTP {status}: {body}"));
        }
        let mut file = tempfile::NamedTempFile::new()
            .map_err(|e| format!("temporary file for {what}: {e}"))?;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0usize;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("{what} cut short: {e}"))?
        {
            size += chunk.len();
            if size > limit {
                return Err(format!(
                    "{what} exceed {} MiB, more than a job reads into memory; {hint}",
                    limit >> 20
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .map_err(|e| format!("writing {what}: {e}"))?;
        }
        file.flush().map_err(|e| format!("writing {what}: {e}"))?;
        Ok((file.into_temp_path(), format!("{:x}", hasher.finalize())))
    }

    /// Queues a propensity job on the feature store's synced records of the definition's
    /// object: the job reads `GET /v1/records/{object}?fields=<label, features>` to a temporary
    /// file (hashing it, at most 256 MiB), checks it exactly as an upload is checked, then
    /// trains as on an upload.
    pub fn start_propensity_from_store(
        &self,
        registry: crate::registry::Registry<crate::registry::Propensity>,
        definition: sextant_models::tabular::PredictionDefinition,
        seed: u64,
    ) -> TrainJob {
        self.spawn("propensity", 1, move |jobs, _| async move {
            let mut fields = vec![definition.label_field.clone()];
            fields.extend(definition.features.iter().cloned());
            let what = format!("the feature store's {} records", definition.object);
            let mut url = reqwest::Url::parse(&jobs.feature_store_url)
                .map_err(|e| format!("feature store URL: {e}"))?;
            url.path_segments_mut()
                .map_err(|()| "feature store URL cannot take a path".to_owned())?
                .pop_if_empty()
                .extend(["v1", "records", definition.object.as_str()]);
            url.query_pairs_mut()
                .append_pair("fields", &fields.join(","));
            let (file, fingerprint) = jobs
                .spool(
                    jobs.http.get(url),
                    &what,
                    crate::api::MAX_PROPENSITY_UPLOAD,
                    "train on a sample of the records uploaded to POST /v1/propensity/{name}/jobs",
                )
                .await?;
            let checked = definition.clone();
            let (file, rows) = tokio::task::spawn_blocking(move || {
                crate::evaluate::propensity::check_export(&file, &checked).map(|rows| (file, rows))
            })
            .await
            .map_err(|e| format!("checking {what}: {e}"))?
            .map_err(|e| format!("{what}: {}", crate::evaluate::upload_error_text(&e)))?;
            tracing::info!(object = %definition.object, rows, fingerprint = %fingerprint, "Propensity records read from the feature store.");
            let card = jobs
                .run_propensity(PropensityData {
                    registry,
                    definition,
                    file,
                    fingerprint,
                    seed,
                })
                .await?;
            let auc = card.metrics.get("roc_auc").copied().unwrap_or(f64::NAN);
            Ok((card.version, format!("ROC-AUC {auc:.4}")))
        })
    }
}

impl Jobs {
    /// A model version's realised accuracy from the feature store's prediction log.
    pub async fn realised(
        &self,
        version: &ModelVersion,
    ) -> Result<sextant_contracts::api::RealisedAccuracy, String> {
        let resp = self
            .http
            .get(format!(
                "{}/v1/predictions/realised",
                self.feature_store_url
            ))
            .query(&[("model_version", version.to_string())])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        sextant_service_kit::http::read_json(resp)
            .await
            .map_err(|e| e.to_string())
    }
}
