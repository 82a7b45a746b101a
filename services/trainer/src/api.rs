//! HTTP handlers and the OpenAPI description of the trainer.

use std::io::Write;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, post, put, web};
use futures_util::StreamExt;
use serde::Deserialize;
use sextant_contracts::api::{
    ClvJobRequest, ClvModelMetadata, Health, MAX_SEED, ModelCard, ModelMetadata, PromotionDecision,
    ShadowComparison, ShadowRequest, TrainJob, TrainJobRequest,
};
use sextant_contracts::time::SharedClock;
use sextant_contracts::{ErrorBody, ErrorCode, ModelVersion};
use sextant_models::churn_serving::ServedChurnModel;
use sextant_models::clv::serving::ClvArtifact;
use sextant_models::evaluation::EvalError;
use sextant_models::sentiment::SentimentArtifact;
use sextant_models::tabular::{ColumnKind, LabelRule, PredictionDefinition, PropensityArtifact};
use sextant_service_kit::ApiError;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, OpenApi};

use crate::AppState;
use crate::churn_job::ChurnJobConfig;
use crate::clv_job::ClvJobConfig;
use crate::jobs::{CrossSellData, PropensityData, SentimentData};
use crate::propensity_registry::DefinitionError;
use crate::registry::{Governed, ModelKind, Registry, RegistryError};

/// The OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sextant trainer",
        description = "Burn training jobs and the model registry."
    ),
    paths(
        start_job,
        get_job,
        list_models,
        current_model,
        get_model,
        get_artifact,
        get_plot,
        promote_model,
        put_shadow,
        delete_shadow,
        shadow_comparison,
        start_clv_job,
        list_clv_models,
        current_clv_model,
        get_clv_model,
        get_clv_artifact,
        get_clv_plot,
        promote_clv_model,
        start_sentiment_job,
        list_sentiment_models,
        current_sentiment_model,
        get_sentiment_model,
        get_sentiment_artifact,
        get_sentiment_plot,
        promote_sentiment_model,
        list_definitions,
        put_definition,
        get_definition,
        start_propensity_job,
        list_propensity_models,
        get_propensity_model,
        get_propensity_artifact,
        get_propensity_plot,
        promote_propensity_model,
        start_cross_sell_job,
        list_cross_sell_models,
        get_cross_sell_model,
        get_cross_sell_artifact,
        get_cross_sell_plot,
        promote_cross_sell_model,
        healthz,
        readyz
    ),
    components(schemas(PredictionDefinition, LabelRule, ColumnKind, PurchaseSource))
)]
struct ApiDoc;

/// The OpenAPI document of this service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    sextant_service_kit::internal_auth::document(ApiDoc::openapi())
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(start_job)
        .service(get_job)
        .service(list_models)
        .service(current_model)
        .service(get_model)
        .service(get_artifact)
        .service(get_plot)
        .service(promote_model)
        .service(put_shadow)
        .service(delete_shadow)
        .service(shadow_comparison)
        .service(start_clv_job)
        .service(list_clv_models)
        .service(current_clv_model)
        .service(get_clv_model)
        .service(get_clv_artifact)
        .service(get_clv_plot)
        .service(promote_clv_model)
        .service(start_sentiment_job)
        .service(list_sentiment_models)
        .service(current_sentiment_model)
        .service(get_sentiment_model)
        .service(get_sentiment_artifact)
        .service(get_sentiment_plot)
        .service(promote_sentiment_model)
        .service(list_definitions)
        .service(put_definition)
        .service(get_definition)
        .service(start_propensity_job)
        .service(list_propensity_models)
        .service(get_propensity_model)
        .service(get_propensity_artifact)
        .service(get_propensity_plot)
        .service(promote_propensity_model)
        .service(start_cross_sell_job)
        .service(list_cross_sell_models)
        .service(get_cross_sell_model)
        .service(get_cross_sell_artifact)
        .service(get_cross_sell_plot)
        .service(promote_cross_sell_model)
        .service(healthz)
        .service(readyz);
}

fn registry_error(e: RegistryError) -> ApiError {
    match &e {
        RegistryError::UnknownVersion(v) => ApiError::not_found(format!("no model {v}")),
        RegistryError::ShadowIsCurrent(_) => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::InvalidParameter,
            e.to_string(),
        ),
        other => ApiError::internal("registry", other),
    }
}

fn parse_version(raw: &str) -> Result<ModelVersion, ApiError> {
    ModelVersion::parse(raw)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidParameter, e.to_string()))
}

fn no_model<K: ModelKind>() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NoModel,
        format!("no {} model has been trained yet", K::NAME),
    )
}

fn unknown<K: ModelKind>(v: &ModelVersion) -> ApiError {
    ApiError::not_found(format!("no {} model {v}", K::NAME))
}

/// A family's versions, oldest first.
fn list<K: ModelKind>(registry: &Registry<K>) -> Result<web::Json<Vec<K::Metadata>>, ApiError> {
    registry.list().map(web::Json).map_err(registry_error)
}

/// The version a path names: a version of the family, `current`, or `shadow`.
fn resolve<K: ModelKind>(registry: &Registry<K>, raw: &str) -> Result<ModelVersion, ApiError> {
    match raw {
        "current" => registry
            .current()
            .map_err(registry_error)?
            .ok_or_else(no_model::<K>),
        "shadow" => registry.shadow().map_err(registry_error)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NoModel,
                format!("no {} shadow model is named", K::NAME),
            )
        }),
        _ => parse_version(raw),
    }
}

/// The metadata of the version a path names (`current` included).
fn metadata<K: ModelKind>(
    registry: &Registry<K>,
    raw: &str,
) -> Result<web::Json<K::Metadata>, ApiError> {
    let v = resolve(registry, raw)?;
    registry
        .metadata(&v)
        .map_err(registry_error)?
        .map(web::Json)
        .ok_or_else(|| unknown::<K>(&v))
}

/// The artefact of the version a path names (`current` included).
fn artifact<K: ModelKind>(
    registry: &Registry<K>,
    raw: &str,
) -> Result<web::Json<K::Artifact>, ApiError> {
    let v = resolve(registry, raw)?;
    registry
        .artifact(&v)
        .map_err(registry_error)?
        .map(web::Json)
        .ok_or_else(|| unknown::<K>(&v))
}

/// One of a version's plots, as SVG.
fn plot<K: ModelKind>(
    registry: &Registry<K>,
    raw: &str,
    name: &str,
) -> Result<HttpResponse, ApiError> {
    let v = resolve(registry, raw)?;
    let svg = registry
        .plot(&v, name)
        .map_err(registry_error)?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no plot {name} of {} model {v} (plots: {})",
                K::NAME,
                K::PLOTS.join(", ")
            ))
        })?;
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
}

/// A manual promotion or rollback through `route` (the path it was called on, for the record).
async fn promote<K: ModelKind>(
    registry: &Registry<K>,
    raw: &str,
    clock: &SharedClock,
    route: &str,
) -> Result<web::Json<K::Metadata>, ApiError> {
    let v = parse_version(raw)?;
    let registry = registry.clone();
    let previous = registry.current().map_err(registry_error)?;
    let decision = PromotionDecision {
        promoted: true,
        by: "manual".to_owned(),
        reason: match &previous {
            Some(p) if *p == v => format!("{v} is already current"),
            Some(p) => format!("promoted by POST {route}, replacing {p}"),
            None => format!("promoted by POST {route}"),
        },
        compared_with: previous,
        candidate_auc: None,
        current_auc: None,
        decided_at: clock.now(),
    };
    let meta = web::block(move || registry.promote(&v, decision))
        .await
        .map_err(|e| ApiError::internal("promotion task", e))?
        .map_err(registry_error)?;
    tracing::info!(family = K::NAME, version = %meta.version(), "Model promoted by request.");
    Ok(web::Json(meta))
}

/// Starts a churn training job; poll it with `GET /v1/jobs/{id}`.
///
/// The job trains the sequence model on cut-offs before `cutoff − horizon_days` and evaluates it
/// out of time at `cutoff`; the new version becomes current only when its ROC-AUC there is at
/// least the current model's on the same accounts (see the version's `promotion`).
#[utoipa::path(
    request_body = TrainJobRequest,
    responses(
        (status = 202, description = "Job queued", body = TrainJob),
        (status = 400, description = "Bad parameters", body = ErrorBody),
    )
)]
#[post("/v1/jobs")]
async fn start_job(
    state: web::Data<AppState>,
    req: web::Json<TrainJobRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = req.into_inner();
    let epochs = req.epochs.unwrap_or(state.default_epochs);
    if !(1..=10_000).contains(&epochs) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            "epochs must be between 1 and 10000",
        ));
    }
    if !(1..=3650).contains(&req.horizon_days) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            "horizon_days must be between 1 and 3650",
        ));
    }
    let defaults = ChurnJobConfig::default();
    let step = req.cutoff_step_days.unwrap_or(defaults.cutoff_step_days);
    let span = req.cutoff_span_days.unwrap_or(defaults.cutoff_span_days);
    if !(7..=365).contains(&step) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            "cutoff_step_days must be between 7 and 365",
        ));
    }
    // 720 days at the smallest step (7) is 104 cut-offs, what one training set takes.
    if span > 720 {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            "cutoff_span_days must be at most 720",
        ));
    }
    let seed = seed_of(req.seed)?;
    let config = ChurnJobConfig {
        max_epochs: epochs,
        cutoff_step_days: step,
        cutoff_span_days: span,
        net: sequence_net(defaults.net, seed),
        ..defaults
    };
    let job = state.jobs.start(req, config);
    Ok(HttpResponse::Accepted().json(job))
}

fn sequence_net(
    net: crate::sequence_model::SequenceTrainConfig,
    seed: u64,
) -> crate::sequence_model::SequenceTrainConfig {
    crate::sequence_model::SequenceTrainConfig { seed, ..net }
}

/// A job's state and progress.
#[utoipa::path(
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = TrainJob), (status = 404, description = "No such job", body = ErrorBody))
)]
#[get("/v1/jobs/{id}")]
async fn get_job(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<TrainJob>, ApiError> {
    state
        .jobs
        .get(&id)
        .map(web::Json)
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

/// Every stored model, oldest first.
#[utoipa::path(responses((status = 200, description = "Models", body = Vec<ModelMetadata>)))]
#[get("/v1/models")]
async fn list_models(
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<ModelMetadata>>, ApiError> {
    list(&state.registry)
}

/// The model being served.
#[utoipa::path(responses(
    (status = 200, description = "The current model", body = ModelMetadata),
    (status = 404, description = "No model yet (code no_model)", body = ErrorBody),
))]
#[get("/v1/models/current")]
async fn current_model(state: web::Data<AppState>) -> Result<web::Json<ModelMetadata>, ApiError> {
    metadata(&state.registry, "current")
}

/// One model's metadata.
#[utoipa::path(
    params(("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "Model version, e.g. churn-v3")),
    responses((status = 200, description = "Metadata", body = ModelMetadata), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown version", body = ErrorBody))
)]
#[get("/v1/models/{version}")]
async fn get_model(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ModelMetadata>, ApiError> {
    metadata(&state.registry, &version)
}

/// One model's artefact: the input transform and weights, scored by the gateway.
#[utoipa::path(
    params(("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "Model version, e.g. churn-v3, or `current`")),
    responses((status = 200, description = "Artefact: the sequence model (kind sequence_gru) with its bands and typical values, or a churn MLP stored before it", body = ServedChurnModel), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown version", body = ErrorBody))
)]
#[get("/v1/models/{version}/artifact")]
async fn get_artifact(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ServedChurnModel>, ApiError> {
    artifact(&state.registry, &version)
}

/// A model's plots: `roc.svg` (held-out ROC curve) or `learning_curve.svg` (loss per epoch).
#[utoipa::path(
    params(("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "Model version"), ("name" = String, Path, description = "roc.svg or learning_curve.svg")),
    responses((status = 200, description = "SVG image", content_type = "image/svg+xml", body = String), (status = 400, description = "A malformed version or definition name (code invalid_parameter)", body = ErrorBody), (status = 404, description = "Unknown version or plot", body = ErrorBody))
)]
#[get("/v1/models/{version}/plots/{name}")]
async fn get_plot(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    plot(&state.registry, &path.0, &path.1)
}

/// Makes a version current: a manual promotion of a candidate, or a rollback to an earlier
/// version. The version it replaces is retired; the gateway picks the change up on its next
/// refresh. Promoting the current version only records the call.
#[utoipa::path(
    params(("version" = String, Path, pattern = "^[a-z0-9_]+-v[1-9][0-9]{0,8}$", description = "Model version, e.g. churn-v3")),
    responses(
        (status = 200, description = "The version, now current, with the decision recorded", body = ModelMetadata),
        (status = 400, description = "Malformed version (invalid_parameter)", body = ErrorBody),
        (status = 404, description = "Unknown version (not_found)", body = ErrorBody),
    )
)]
#[post("/v1/models/{version}/promote")]
async fn promote_model(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ModelMetadata>, ApiError> {
    let route = format!("/v1/models/{version}/promote");
    promote(&state.registry, &version, &state.clock, &route).await
}

/// Starts a CLV training job; poll it with `GET /v1/jobs/{id}`.
///
/// The job fits BG/NBD (falling back to Pareto/NBD or the NBD when it degenerates, with the
/// reason in the version's `config.fallback`) and Gamma-Gamma on every account's purchase
/// summary as of `cutoff`, and evaluates them on the purchases of `[cutoff, cutoff +
/// horizon_days)`. The new version becomes current only when its holdout MAE is at most the
/// current CLV model's on the same accounts (see the version's `promotion`).
#[utoipa::path(
    request_body = ClvJobRequest,
    responses(
        (status = 202, description = "Job queued", body = TrainJob),
        (status = 400, description = "Bad parameters (invalid_parameter)", body = ErrorBody),
    )
)]
#[post("/v1/clv/jobs")]
async fn start_clv_job(
    state: web::Data<AppState>,
    req: web::Json<ClvJobRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = req.into_inner();
    if !(7..=730).contains(&req.horizon_days) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            "horizon_days must be between 7 and 730",
        ));
    }
    let job = state.jobs.start_clv(req, ClvJobConfig::default());
    Ok(HttpResponse::Accepted().json(job))
}

/// Every stored CLV model, oldest first.
#[utoipa::path(responses((status = 200, description = "CLV models", body = Vec<ClvModelMetadata>)))]
#[get("/v1/clv/models")]
async fn list_clv_models(
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<ClvModelMetadata>>, ApiError> {
    list(&state.clv_registry)
}

/// The CLV model being served.
#[utoipa::path(responses(
    (status = 200, description = "The current CLV model", body = ClvModelMetadata),
    (status = 404, description = "No CLV model yet (code no_model)", body = ErrorBody),
))]
#[get("/v1/clv/models/current")]
async fn current_clv_model(
    state: web::Data<AppState>,
) -> Result<web::Json<ClvModelMetadata>, ApiError> {
    metadata(&state.clv_registry, "current")
}

/// One CLV model's metadata: metrics, fit configuration (parameters of every model tried,
/// fallback reasons, the feature mapping, tiers), fingerprint, status and promotion.
#[utoipa::path(
    params(("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "CLV model version, e.g. clv-v2")),
    responses((status = 200, description = "Metadata", body = ClvModelMetadata), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown version", body = ErrorBody))
)]
#[get("/v1/clv/models/{version}")]
async fn get_clv_model(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ClvModelMetadata>, ApiError> {
    metadata(&state.clv_registry, &version)
}

/// One CLV model's artefact (purchase and spend parameters, value tiers), served by the gateway.
#[utoipa::path(
    params(("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "CLV model version, e.g. clv-v2, or `current`")),
    responses((status = 200, description = "Artefact", body = ClvArtifact), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown version", body = ErrorBody))
)]
#[get("/v1/clv/models/{version}/artifact")]
async fn get_clv_artifact(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ClvArtifact>, ApiError> {
    artifact(&state.clv_registry, &version)
}

/// A CLV model's plot: `holdout.svg` (mean actual and predicted holdout purchases per
/// calibration repeat-purchase count).
#[utoipa::path(
    params(("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "CLV model version"), ("name" = String, Path, description = "holdout.svg")),
    responses((status = 200, description = "SVG image", content_type = "image/svg+xml", body = String), (status = 400, description = "A malformed version or definition name (code invalid_parameter)", body = ErrorBody), (status = 404, description = "Unknown version or plot", body = ErrorBody))
)]
#[get("/v1/clv/models/{version}/plots/{name}")]
async fn get_clv_plot(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    plot(&state.clv_registry, &path.0, &path.1)
}

/// Makes a CLV version current: a manual promotion of a candidate, or a rollback. The version
/// it replaces is retired; the gateway picks the change up on its next refresh.
#[utoipa::path(
    params(("version" = String, Path, pattern = "^[a-z0-9_]+-v[1-9][0-9]{0,8}$", description = "CLV model version, e.g. clv-v1")),
    responses(
        (status = 200, description = "The version, now current, with the decision recorded", body = ClvModelMetadata),
        (status = 400, description = "Malformed version (invalid_parameter)", body = ErrorBody),
        (status = 404, description = "Unknown version (not_found)", body = ErrorBody),
    )
)]
#[post("/v1/clv/models/{version}/promote")]
async fn promote_clv_model(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ClvModelMetadata>, ApiError> {
    let route = format!("/v1/clv/models/{version}/promote");
    promote(&state.clv_registry, &version, &state.clock, &route).await
}

/// Streams a request body to a temporary file, hashing it (SHA-256) on the way; refuses bodies
/// over `max` bytes with 413 `payload_too_large`.
async fn receive_upload(
    body: &mut web::Payload,
    max: usize,
) -> Result<(tempfile::TempPath, String, usize), ApiError> {
    let mut file = tempfile::NamedTempFile::new()
        .map_err(|e| ApiError::internal("temporary file for the upload", e))?;
    let mut hasher = Sha256::new();
    let mut size = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidParameter,
                format!("reading the body: {e}"),
            )
        })?;
        size += chunk.len();
        if size > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("upload over {} MiB", max >> 20),
            ));
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .map_err(|e| ApiError::internal("writing the upload", e))?;
    }
    file.flush()
        .map_err(|e| ApiError::internal("writing the upload", e))?;
    Ok((
        file.into_temp_path(),
        format!("{:x}", hasher.finalize()),
        size,
    ))
}

/// The largest labelled-text upload a sentiment job takes.
pub const MAX_SENTIMENT_UPLOAD: usize = 64 << 20;

/// Options of a job on uploaded data (sentiment, propensity).
#[derive(Debug, Deserialize, IntoParams)]
struct JobQuery {
    /// Seed of initialisation and shuffling (default 42); same data and seed, same model.
    #[param(minimum = 0, maximum = 9_007_199_254_740_991_u64)]
    seed: Option<u64>,
}

/// A job's seed: 42 by default, at most [`MAX_SEED`].
fn seed_of(seed: Option<u64>) -> Result<u64, ApiError> {
    match seed {
        None => Ok(42),
        Some(s) if s <= MAX_SEED => Ok(s),
        Some(_) => Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            format!("seed must be at most {MAX_SEED}"),
        )),
    }
}

/// What a user can fix in uploaded labelled text, without the server's temporary path.
fn upload_error(e: EvalError) -> ApiError {
    match e {
        EvalError::BadRow { line, message, .. } => ApiError::bad_request(
            ErrorCode::InvalidParameter,
            format!("line {line}: {message}"),
        ),
        EvalError::Empty { .. } => {
            ApiError::bad_request(ErrorCode::EmptyRequest, "no data rows in the body")
        }
        EvalError::MissingColumn {
            column, expected, ..
        } => ApiError::bad_request(
            ErrorCode::InvalidParameter,
            format!("missing column `{column}` (expected columns: {expected})"),
        ),
        EvalError::Unusable { message, .. } => {
            ApiError::bad_request(ErrorCode::InsufficientData, message)
        }
        other => ApiError::internal("reading the upload", other),
    }
}

/// Starts a sentiment job on labelled support text in the body; poll it with
/// `GET /v1/jobs/{id}`.
///
/// Body: one sentence per line, `id<TAB>rating<TAB>text`, where the rating is a number from −4
/// to 4 (the VADER snippets format; the class is rating/4 against ±0.05) or a class word,
/// `negative`, `neutral` or `positive`; no header; at most 64 MiB. Every line is checked before
/// the job starts (a bad one is answered with its line number). Every fifth row is held out; the
/// model is trained on the rest (setting and epochs by inner validation) and measured on the
/// held-out rows next to the TF-IDF baseline, the lexicon and the current model. It becomes
/// current only when its weighted F1 there is at least the current model's (see the version's
/// `promotion`). The feature store follows `GET /v1/sentiment/models/current/artifact`.
#[utoipa::path(
    params(JobQuery),
    request_body(content = String, content_type = "text/tab-separated-values", description = "id<TAB>rating (-4..4 or negative|neutral|positive)<TAB>text, one per line"),
    responses(
        (status = 202, description = "Job queued", body = TrainJob),
        (status = 400, description = "A malformed line (invalid_parameter, with its number), no lines (empty_request), or too few rows or classes to hold out (insufficient_data)", body = ErrorBody),
        (status = 413, description = "Body over 64 MiB (payload_too_large)", body = ErrorBody),
    )
)]
#[post("/v1/sentiment/jobs")]
async fn start_sentiment_job(
    state: web::Data<AppState>,
    query: web::Query<JobQuery>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let seed = seed_of(query.seed)?;
    let (path, fingerprint, size) = receive_upload(&mut body, MAX_SENTIMENT_UPLOAD).await?;
    let (path, rows) = web::block(move || {
        crate::evaluate::sentiment::check_labelled(&path).map(|rows| (path, rows))
    })
    .await
    .map_err(|e| ApiError::internal("checking the upload", e))?
    .map_err(upload_error)?;
    tracing::info!(rows, size, fingerprint = %fingerprint, "Sentiment job data received.");
    let job = state.jobs.start_sentiment(SentimentData {
        file: path,
        fingerprint,
        seed,
    });
    Ok(HttpResponse::Accepted().json(job))
}

/// Every stored sentiment model, oldest first.
#[utoipa::path(responses((status = 200, description = "Sentiment models", body = Vec<ModelCard>)))]
#[get("/v1/sentiment/models")]
async fn list_sentiment_models(
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<ModelCard>>, ApiError> {
    list(&state.sentiment_registry)
}

/// The sentiment model being served.
#[utoipa::path(responses(
    (status = 200, description = "The current sentiment model", body = ModelCard),
    (status = 404, description = "No sentiment model yet (code no_model)", body = ErrorBody),
))]
#[get("/v1/sentiment/models/current")]
async fn current_sentiment_model(
    state: web::Data<AppState>,
) -> Result<web::Json<ModelCard>, ApiError> {
    metadata(&state.sentiment_registry, "current")
}

/// One sentiment model's card: held-out metrics (and the baseline's and lexicon's on the same
/// rows), configuration, fingerprint of the data, status and promotion.
#[utoipa::path(
    params(("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "Sentiment model version, e.g. sentiment-v2, or `current`")),
    responses((status = 200, description = "Card", body = ModelCard), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown version, or no current model (no_model)", body = ErrorBody))
)]
#[get("/v1/sentiment/models/{version}")]
async fn get_sentiment_model(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ModelCard>, ApiError> {
    metadata(&state.sentiment_registry, &version)
}

/// One sentiment model's artefact; `current` follows promotions (the feature store's
/// `sentiment_model_url`).
#[utoipa::path(
    params(("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "Sentiment model version, e.g. sentiment-v2, or `current`")),
    responses((status = 200, description = "Artefact", body = SentimentArtifact), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown version, or no current model (no_model)", body = ErrorBody))
)]
#[get("/v1/sentiment/models/{version}/artifact")]
async fn get_sentiment_artifact(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<SentimentArtifact>, ApiError> {
    artifact(&state.sentiment_registry, &version)
}

/// A sentiment model's plot: `confusion.svg` (held-out confusion matrix).
#[utoipa::path(
    params(("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "Sentiment model version"), ("name" = String, Path, description = "confusion.svg")),
    responses((status = 200, description = "SVG image", content_type = "image/svg+xml", body = String), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown version or plot", body = ErrorBody))
)]
#[get("/v1/sentiment/models/{version}/plots/{name}")]
async fn get_sentiment_plot(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    plot(&state.sentiment_registry, &path.0, &path.1)
}

/// Makes a sentiment version current: a manual promotion of a candidate, or a rollback. The
/// feature store picks it up on its next refresh.
#[utoipa::path(
    params(("version" = String, Path, pattern = "^[a-z0-9_]+-v[1-9][0-9]{0,8}$", description = "Sentiment model version, e.g. sentiment-v1")),
    responses(
        (status = 200, description = "The version, now current, with the decision recorded", body = ModelCard),
        (status = 400, description = "Malformed version (invalid_parameter)", body = ErrorBody),
        (status = 404, description = "Unknown version (not_found)", body = ErrorBody),
    )
)]
#[post("/v1/sentiment/models/{version}/promote")]
async fn promote_sentiment_model(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ModelCard>, ApiError> {
    let route = format!("/v1/sentiment/models/{version}/promote");
    promote(&state.sentiment_registry, &version, &state.clock, &route).await
}

/// The largest object export a propensity job takes.
pub const MAX_PROPENSITY_UPLOAD: usize = 256 << 20;

fn definition_error(e: DefinitionError) -> ApiError {
    match e {
        DefinitionError::Name(_) | DefinitionError::Invalid(_) => {
            ApiError::bad_request(ErrorCode::InvalidParameter, e.to_string())
        }
        DefinitionError::InUse(_) => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::InvalidParameter,
            e.to_string(),
        ),
        DefinitionError::Unknown(_) => ApiError::not_found(e.to_string()),
        DefinitionError::Registry(r) => registry_error(r),
    }
}

/// A prediction definition with the version its registry serves.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct DefinitionEntry {
    name: String,
    definition: PredictionDefinition,
    /// The served version, if any.
    current: Option<String>,
}

/// Every prediction definition, by name, with its current version.
#[utoipa::path(responses((status = 200, description = "Definitions", body = Vec<DefinitionEntry>)))]
#[get("/v1/propensity")]
async fn list_definitions(
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<DefinitionEntry>>, ApiError> {
    let defs = &state.propensity;
    let mut out = Vec::new();
    for name in defs.names().map_err(registry_error)? {
        let definition = defs.definition(&name).map_err(definition_error)?;
        let current = defs
            .registry(&name)
            .map_err(definition_error)?
            .current()
            .map_err(registry_error)?
            .map(|v| v.to_string());
        out.push(DefinitionEntry {
            name,
            definition,
            current,
        });
    }
    Ok(web::Json(out))
}

/// Creates (or repeats) a prediction definition — like Einstein Prediction Builder's: the object,
/// the label field and what counts as the positive outcome (`{"rule": "values", "positive":
/// ["Closed Won"]}` or `{"rule": "threshold", "above": 1000}`), the feature fields, and optional
/// kind overrides. A definition with trained models cannot change (409): ask a new question
/// under a new name.
#[utoipa::path(
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", description = "Definition name: a lower-case letter, then lower-case letters, digits or _ (at most 40)")),
    request_body = PredictionDefinition,
    responses(
        (status = 200, description = "Stored (or unchanged)", body = PredictionDefinition),
        (status = 400, description = "Bad name or an inconsistent definition (invalid_parameter), or malformed JSON (invalid_json)", body = ErrorBody),
        (status = 409, description = "Models exist for a different definition under this name (invalid_parameter)", body = ErrorBody),
    )
)]
#[put("/v1/propensity/{name}")]
async fn put_definition(
    state: web::Data<AppState>,
    name: web::Path<String>,
    definition: web::Json<PredictionDefinition>,
) -> Result<web::Json<PredictionDefinition>, ApiError> {
    let definition = definition.into_inner();
    let changed = state
        .propensity
        .put(&name, &definition)
        .map_err(definition_error)?;
    if changed {
        tracing::info!(definition = %name, object = %definition.object, "Prediction definition stored.");
    }
    Ok(web::Json(definition))
}

/// One prediction definition.
#[utoipa::path(
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", description = "Definition name")),
    responses((status = 200, description = "The definition", body = PredictionDefinition), (status = 400, description = "Bad name", body = ErrorBody), (status = 404, description = "No such definition", body = ErrorBody))
)]
#[get("/v1/propensity/{name}")]
async fn get_definition(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<web::Json<PredictionDefinition>, ApiError> {
    state
        .propensity
        .definition(&name)
        .map(web::Json)
        .map_err(definition_error)
}

/// Where a propensity job reads its object's records.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RecordSource {
    /// The request body: a CSV export of the object.
    Upload,
    /// The feature store's synced records of the definition's object
    /// (`GET /v1/records/{object}`); the body must be empty.
    FeatureStore,
}

/// Options of a propensity job.
#[derive(Debug, Deserialize, IntoParams)]
struct PropensityQuery {
    /// Seed of initialisation and shuffling (default 42); same data and seed, same model.
    #[param(minimum = 0, maximum = 9_007_199_254_740_991_u64)]
    seed: Option<u64>,
    /// `upload` (default): the export in the body; `feature_store`: the records of the
    /// definition's object that the connector synced into the feature store.
    source: Option<RecordSource>,
}

/// Trains a propensity model for a definition on an export of its object; poll it with
/// `GET /v1/jobs/{id}`.
///
/// Body: CSV with a header row of field names (at least the label field and every feature),
/// one record per row, at most 256 MiB; blank cells are missing values, and rows with a blank
/// label are not trained on. The export is checked before the job starts. With
/// `source=feature_store` there is no body: the job reads the current records of the
/// definition's object from the feature store (`GET /v1/records/{object}` with the label and
/// feature fields, synced by a connector `record` mapping), checks them the same way and trains
/// on them exactly as on an upload; a store that refuses (an object never synced, a field no
/// record has), an export cut short or one over 256 MiB fails the job with the reason. Every
/// fifth row is held out; the model (logistic regression, a wide-and-deep network or a blend,
/// chosen by inner cross-validation on the other rows) is measured there next to a
/// logistic-regression baseline and the current model, and becomes current only when its
/// ROC-AUC is at least the current model's on the same rows.
#[utoipa::path(
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", description = "Definition name"), PropensityQuery),
    request_body(content = String, content_type = "text/csv", description = "Object export: header of field names, one record per row (empty with source=feature_store)"),
    responses(
        (status = 202, description = "Job queued", body = TrainJob),
        (status = 400, description = "A missing column or malformed row (invalid_parameter, with its line), no rows (empty_request), a side of the held-out split without both outcomes (insufficient_data); with source=feature_store, a body, or a definition whose object or fields are not API names (invalid_parameter)", body = ErrorBody),
        (status = 404, description = "No such definition", body = ErrorBody),
        (status = 413, description = "Body over 256 MiB (payload_too_large)", body = ErrorBody),
    )
)]
#[post("/v1/propensity/{name}/jobs")]
async fn start_propensity_job(
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<PropensityQuery>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let seed = seed_of(query.seed)?;
    let definition = state
        .propensity
        .definition(&name)
        .map_err(definition_error)?;
    let registry = state.propensity.registry(&name).map_err(definition_error)?;
    let (path, fingerprint, size) = receive_upload(&mut body, MAX_PROPENSITY_UPLOAD).await?;
    if query.source == Some(RecordSource::FeatureStore) {
        if size > 0 {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                "source=feature_store reads the feature store's records of the definition's object; send no body",
            ));
        }
        let names = std::iter::once(&definition.object)
            .chain(std::iter::once(&definition.label_field))
            .chain(&definition.features);
        for n in names {
            if !sextant_contracts::records::is_api_name(n) {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidParameter,
                    format!(
                        "source=feature_store reads synced Salesforce objects: {:?} in definition {name} is not an API name",
                        n.chars().take(100).collect::<String>()
                    ),
                ));
            }
        }
        tracing::info!(definition = %name, object = %definition.object, "Propensity job on the feature store's records.");
        let job = state
            .jobs
            .start_propensity_from_store(registry, definition, seed);
        return Ok(HttpResponse::Accepted().json(job));
    }
    let checked = definition.clone();
    let (path, rows) = web::block(move || {
        crate::evaluate::propensity::check_export(&path, &checked).map(|rows| (path, rows))
    })
    .await
    .map_err(|e| ApiError::internal("checking the upload", e))?
    .map_err(upload_error)?;
    tracing::info!(definition = %name, rows, size, fingerprint = %fingerprint, "Propensity job data received.");
    let job = state.jobs.start_propensity(PropensityData {
        registry,
        definition,
        file: path,
        fingerprint,
        seed,
    });
    Ok(HttpResponse::Accepted().json(job))
}

/// Every version of a definition's model, oldest first.
#[utoipa::path(
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", description = "Definition name")),
    responses((status = 200, description = "Model cards", body = Vec<ModelCard>), (status = 400, description = "A malformed version or definition name (code invalid_parameter)", body = ErrorBody), (status = 404, description = "No such definition", body = ErrorBody))
)]
#[get("/v1/propensity/{name}/models")]
async fn list_propensity_models(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<web::Json<Vec<ModelCard>>, ApiError> {
    list(&state.propensity.registry(&name).map_err(definition_error)?)
}

/// One version's card: held-out metrics (and the baseline's on the same rows), the selection,
/// the encoded features, the data's SHA-256, status and promotion.
#[utoipa::path(
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", description = "Definition name"), ("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "Version, e.g. upsell-v2, or `current`")),
    responses((status = 200, description = "Card", body = ModelCard), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown definition or version, or no current model (no_model)", body = ErrorBody))
)]
#[get("/v1/propensity/{name}/models/{version}")]
async fn get_propensity_model(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<ModelCard>, ApiError> {
    metadata(
        &state
            .propensity
            .registry(&path.0)
            .map_err(definition_error)?,
        &path.1,
    )
}

/// One version's artefact: the definition, the fitted encoder and the model, which the gateway
/// scores records with (top factors by occlusion against each field's typical value).
#[utoipa::path(
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", description = "Definition name"), ("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "Version, e.g. upsell-v2, or `current`")),
    responses((status = 200, description = "Artefact (JSON)", body = Object), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown definition or version, or no current model (no_model)", body = ErrorBody))
)]
#[get("/v1/propensity/{name}/models/{version}/artifact")]
async fn get_propensity_artifact(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<PropensityArtifact>, ApiError> {
    artifact(
        &state
            .propensity
            .registry(&path.0)
            .map_err(definition_error)?,
        &path.1,
    )
}

/// A version's plot: `roc.svg` (held-out ROC curve).
#[utoipa::path(
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", description = "Definition name"), ("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "Version"), ("plot" = String, Path, description = "roc.svg")),
    responses((status = 200, description = "SVG image", content_type = "image/svg+xml", body = String), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown definition, version or plot", body = ErrorBody))
)]
#[get("/v1/propensity/{name}/models/{version}/plots/{plot}")]
async fn get_propensity_plot(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    plot(
        &state
            .propensity
            .registry(&path.0)
            .map_err(definition_error)?,
        &path.1,
        &path.2,
    )
}

/// Makes a version of a definition's model current: a manual promotion or a rollback.
#[utoipa::path(
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", description = "Definition name"), ("version" = String, Path, pattern = "^[a-z0-9_]+-v[1-9][0-9]{0,8}$", description = "Version, e.g. upsell-v1")),
    responses(
        (status = 200, description = "The version, now current, with the decision recorded", body = ModelCard),
        (status = 400, description = "Malformed version (invalid_parameter)", body = ErrorBody),
        (status = 404, description = "Unknown definition or version (not_found)", body = ErrorBody),
    )
)]
#[post("/v1/propensity/{name}/models/{version}/promote")]
async fn promote_propensity_model(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<web::Json<ModelCard>, ApiError> {
    let registry = state
        .propensity
        .registry(&path.0)
        .map_err(definition_error)?;
    let route = format!("/v1/propensity/{}/models/{}/promote", path.0, path.1);
    promote(&registry, &path.1, &state.clock, &route).await
}

/// Liveness.
#[utoipa::path(responses((status = 200, description = "Alive", body = Health)))]
#[get("/healthz")]
async fn healthz() -> web::Json<Health> {
    web::Json(sextant_service_kit::health::alive("trainer"))
}

/// Readiness: the registry is readable.
#[utoipa::path(responses((status = 200, description = "Ready", body = Health), (status = 503, description = "Registry unreadable", body = ErrorBody)))]
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    sextant_service_kit::health::readiness(
        "trainer",
        state.registry.versions().map(|_| ()),
        ErrorCode::Internal,
        "model registry unreadable",
    )
}

/// The largest purchase-lines upload a cross-sell job takes.
pub const MAX_CROSS_SELL_UPLOAD: usize = 256 << 20;

/// Where a cross-sell job reads its purchase lines.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum PurchaseSource {
    /// The request body.
    Upload,
    /// The feature store's purchase export (`GET /v1/purchases`); the body must be empty.
    FeatureStore,
}

/// Options of a cross-sell job.
#[derive(Debug, Deserialize, IntoParams)]
struct CrossSellQuery {
    /// Seed (default 42); same data and seed, same model.
    #[param(minimum = 0, maximum = 9_007_199_254_740_991_u64)]
    seed: Option<u64>,
    /// `upload` (default): purchase lines in the body; `feature_store`: the store's purchases.
    source: Option<PurchaseSource>,
}

/// Trains the cross-sell model (recommendations and next category) on purchase lines; poll it
/// with `GET /v1/jobs/{id}`.
///
/// Purchase lines are CSV in the Online Retail format (`InvoiceNo, StockCode, Description,
/// Quantity, InvoiceDate, UnitPrice, CustomerID`, optional `Family`): the body (at most 256 MiB,
/// checked before the job starts), or with `source=feature_store` the feature store's purchase
/// export, read by the job. The last quarter of the purchases' time span is the test period;
/// both models are chosen on a validation period before it, fitted before the cut and measured
/// on the test period next to popularity, item-kNN and last-category baselines and the current
/// model. The version becomes current only when its NDCG@10 and its next-category top-1
/// accuracy are both at least the current model's on the same customers.
#[utoipa::path(
    params(CrossSellQuery),
    request_body(content = String, content_type = "text/csv", description = "Purchase lines, Online Retail columns (empty with source=feature_store)"),
    responses(
        (status = 202, description = "Job queued", body = TrainJob),
        (status = 400, description = "A missing column or malformed row (invalid_parameter, with its line), no rows (empty_request), too short a time span (insufficient_data), or a body with source=feature_store (invalid_parameter)", body = ErrorBody),
        (status = 413, description = "Body over 256 MiB (payload_too_large)", body = ErrorBody),
    )
)]
#[post("/v1/cross-sell/jobs")]
async fn start_cross_sell_job(
    state: web::Data<AppState>,
    query: web::Query<CrossSellQuery>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let seed = seed_of(query.seed)?;
    let registry = state.cross_sell_registry.clone();
    let (path, fingerprint, size) = receive_upload(&mut body, MAX_CROSS_SELL_UPLOAD).await?;
    if query.source == Some(PurchaseSource::FeatureStore) {
        if size > 0 {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                "source=feature_store reads the feature store's purchases; send no body",
            ));
        }
        let job = state.jobs.start_cross_sell_from_store(registry, seed);
        return Ok(HttpResponse::Accepted().json(job));
    }
    let (path, rows) = web::block(move || {
        crate::evaluate::cross_sell::check_purchases(&path).map(|rows| (path, rows))
    })
    .await
    .map_err(|e| ApiError::internal("checking the upload", e))?
    .map_err(upload_error)?;
    tracing::info!(rows, size, fingerprint = %fingerprint, "Cross-sell job data received.");
    let job = state.jobs.start_cross_sell(CrossSellData {
        registry,
        file: path,
        fingerprint,
        seed,
    });
    Ok(HttpResponse::Accepted().json(job))
}

/// Every stored cross-sell model, oldest first.
#[utoipa::path(responses((status = 200, description = "Cross-sell models", body = Vec<ModelCard>)))]
#[get("/v1/cross-sell/models")]
async fn list_cross_sell_models(
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<ModelCard>>, ApiError> {
    list(&state.cross_sell_registry)
}

/// One cross-sell model's card (test-period figures next to the baselines'; `current` follows
/// promotions).
#[utoipa::path(
    params(("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "Cross-sell model version, e.g. cross_sell-v2, or `current`")),
    responses((status = 200, description = "Model card", body = ModelCard), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown version, or no current model (no_model)", body = ErrorBody))
)]
#[get("/v1/cross-sell/models/{version}")]
async fn get_cross_sell_model(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ModelCard>, ApiError> {
    metadata(&state.cross_sell_registry, &version)
}

/// One cross-sell model's artefact (the recommender, product names and the next-category model);
/// `current` follows promotions (the gateway's source).
#[utoipa::path(
    params(("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "Cross-sell model version, or `current`")),
    responses((status = 200, description = "Artefact", body = Object), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown version, or no current model (no_model)", body = ErrorBody))
)]
#[get("/v1/cross-sell/models/{version}/artifact")]
async fn get_cross_sell_artifact(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<sextant_models::recommend::CrossSellModel>, ApiError> {
    artifact(&state.cross_sell_registry, &version)
}

/// A cross-sell model's plot: `hit_rate.svg` (test-period hit rate at k, next to popularity).
#[utoipa::path(
    params(("version" = String, Path, pattern = "^(current|shadow|[a-z0-9_]+-v[1-9][0-9]{0,8})$", description = "Cross-sell model version"), ("name" = String, Path, description = "hit_rate.svg")),
    responses((status = 200, description = "SVG", content_type = "image/svg+xml", body = String), (status = 400, description = "A malformed version or definition name (code invalid_parameter)", body = ErrorBody), (status = 404, description = "No such plot", body = ErrorBody))
)]
#[get("/v1/cross-sell/models/{version}/plots/{name}")]
async fn get_cross_sell_plot(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    plot(&state.cross_sell_registry, &path.0, &path.1)
}

/// Makes a cross-sell version current: a manual promotion of a candidate, or a rollback. The
/// gateway picks it up on its next refresh.
#[utoipa::path(
    params(("version" = String, Path, pattern = "^[a-z0-9_]+-v[1-9][0-9]{0,8}$", description = "Cross-sell model version, e.g. cross_sell-v1")),
    responses(
        (status = 200, description = "The version, now current, with the decision recorded", body = ModelCard),
        (status = 400, description = "Malformed version (invalid_parameter)", body = ErrorBody),
        (status = 404, description = "Unknown version (not_found)", body = ErrorBody),
    )
)]
#[post("/v1/cross-sell/models/{version}/promote")]
async fn promote_cross_sell_model(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ModelCard>, ApiError> {
    let route = format!("/v1/cross-sell/models/{version}/promote");
    promote(&state.cross_sell_registry, &version, &state.clock, &route).await
}

/// Names the shadow (challenger) churn model: the gateway scores every request with it too,
/// without returning its scores, and logs them next to the current model's, so
/// `GET /v1/models/shadow/comparison` can show both versions' realised accuracy on the same
/// requests. Promoting the shadow ends the shadowing.
#[utoipa::path(
    request_body = ShadowRequest,
    responses(
        (status = 200, description = "The shadow version's metadata", body = ModelMetadata),
        (status = 400, description = "Malformed body (invalid_json)", body = ErrorBody),
        (status = 404, description = "Unknown version (not_found)", body = ErrorBody),
        (status = 409, description = "The version is the current model (invalid_parameter)", body = ErrorBody),
    )
)]
#[put("/v1/models/shadow")]
async fn put_shadow(
    state: web::Data<AppState>,
    req: web::Json<ShadowRequest>,
) -> Result<web::Json<ModelMetadata>, ApiError> {
    let registry = state.registry.clone();
    let version = req.into_inner().version;
    let v = version.clone();
    web::block(move || registry.set_shadow(&v))
        .await
        .map_err(|e| ApiError::internal("shadow task", e))?
        .map_err(registry_error)?;
    tracing::info!(version = %version, "Shadow model named.");
    metadata(&state.registry, &version.to_string())
}

/// Stops shadowing (the gateway drops the shadow on its next refresh).
#[utoipa::path(responses(
    (status = 204, description = "No shadow now"),
))]
#[delete("/v1/models/shadow")]
async fn delete_shadow(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let registry = state.registry.clone();
    let was = web::block(move || registry.clear_shadow())
        .await
        .map_err(|e| ApiError::internal("shadow task", e))?
        .map_err(registry_error)?;
    tracing::info!(was = ?was.map(|v| v.to_string()), "Shadow model cleared.");
    Ok(HttpResponse::NoContent().finish())
}

/// The current and the shadow churn model side by side: each version's realised accuracy by week
/// of serving (from the feature store's prediction log: realised ROC-AUC, churn rate against the
/// mean score) on the requests both scored.
#[utoipa::path(responses(
    (status = 200, description = "Both versions' realised accuracy", body = ShadowComparison),
    (status = 404, description = "No current or no shadow model (no_model)", body = ErrorBody),
    (status = 502, description = "The feature store is unavailable (upstream_unavailable)", body = ErrorBody),
))]
#[get("/v1/models/shadow/comparison")]
async fn shadow_comparison(
    state: web::Data<AppState>,
) -> Result<web::Json<ShadowComparison>, ApiError> {
    let current = resolve(&state.registry, "current")?;
    let shadow = resolve(&state.registry, "shadow")?;
    let current = state
        .jobs
        .realised(&current)
        .await
        .map_err(|e| ApiError::upstream("feature store", e))?;
    let shadow = state
        .jobs
        .realised(&shadow)
        .await
        .map_err(|e| ApiError::upstream("feature store", e))?;
    Ok(web::Json(ShadowComparison { current, shadow }))
}
