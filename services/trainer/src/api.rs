//! HTTP handlers and the OpenAPI description of the trainer.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use sextant_contracts::api::{
    ClvJobRequest, ClvModelMetadata, Health, ModelMetadata, PromotionDecision, TrainJob,
    TrainJobRequest,
};
use sextant_contracts::{ErrorBody, ErrorCode, ModelVersion};
use sextant_models::churn_serving::ServedChurnModel;
use sextant_models::clv::serving::ClvArtifact;
use sextant_service_kit::ApiError;
use utoipa::OpenApi;

use crate::AppState;
use crate::churn_job::ChurnJobConfig;
use crate::clv_job::ClvJobConfig;
use crate::clv_registry::CLV_PLOTS;
use crate::registry::RegistryError;

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
        start_clv_job,
        list_clv_models,
        current_clv_model,
        get_clv_model,
        get_clv_artifact,
        get_clv_plot,
        promote_clv_model,
        healthz,
        readyz
    )
)]
struct ApiDoc;

/// The OpenAPI document of this service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
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
        .service(start_clv_job)
        .service(list_clv_models)
        .service(current_clv_model)
        .service(get_clv_model)
        .service(get_clv_artifact)
        .service(get_clv_plot)
        .service(promote_clv_model)
        .service(healthz)
        .service(readyz);
}

fn registry_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::UnknownVersion(v) => ApiError::not_found(format!("no model {v}")),
        other => ApiError::internal("registry", other),
    }
}

fn parse_version(raw: &str) -> Result<ModelVersion, ApiError> {
    ModelVersion::parse(raw)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidParameter, e.to_string()))
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
    if span > 1460 || span / step + 2 > 104 {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            "cutoff_span_days must be at most 1460 and give at most 103 training cut-offs",
        ));
    }
    let config = ChurnJobConfig {
        max_epochs: epochs,
        cutoff_step_days: step,
        cutoff_span_days: span,
        net: sequence_net(defaults.net, req.seed.unwrap_or(42)),
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
    let mut out = Vec::new();
    for v in state.registry.versions().map_err(registry_error)? {
        if let Some(m) = state.registry.metadata(&v).map_err(registry_error)? {
            out.push(m);
        }
    }
    Ok(web::Json(out))
}

fn no_model() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NoModel,
        "no model has been trained yet",
    )
}

/// The model being served.
#[utoipa::path(responses(
    (status = 200, description = "The current model", body = ModelMetadata),
    (status = 404, description = "No model yet (code no_model)", body = ErrorBody),
))]
#[get("/v1/models/current")]
async fn current_model(state: web::Data<AppState>) -> Result<web::Json<ModelMetadata>, ApiError> {
    let version = state
        .registry
        .current()
        .map_err(registry_error)?
        .ok_or_else(no_model)?;
    state
        .registry
        .metadata(&version)
        .map_err(registry_error)?
        .map(web::Json)
        .ok_or_else(no_model)
}

/// One model's metadata.
#[utoipa::path(
    params(("version" = String, Path, description = "Model version, e.g. churn-v3")),
    responses((status = 200, description = "Metadata", body = ModelMetadata), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown version", body = ErrorBody))
)]
#[get("/v1/models/{version}")]
async fn get_model(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ModelMetadata>, ApiError> {
    let v = parse_version(&version)?;
    state
        .registry
        .metadata(&v)
        .map_err(registry_error)?
        .map(web::Json)
        .ok_or_else(|| ApiError::not_found(format!("no model {v}")))
}

/// One model's artefact: the input transform and weights, scored by the gateway.
#[utoipa::path(
    params(("version" = String, Path, description = "Model version, e.g. churn-v3")),
    responses((status = 200, description = "Artefact: the sequence model (kind sequence_gru) with its bands and typical values, or a churn MLP stored before it", body = ServedChurnModel), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown version", body = ErrorBody))
)]
#[get("/v1/models/{version}/artifact")]
async fn get_artifact(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ServedChurnModel>, ApiError> {
    let v = parse_version(&version)?;
    state
        .registry
        .artifact(&v)
        .map_err(registry_error)?
        .map(web::Json)
        .ok_or_else(|| ApiError::not_found(format!("no model {v}")))
}

/// A model's plots: `roc.svg` (held-out ROC curve) or `learning_curve.svg` (loss per epoch).
#[utoipa::path(
    params(("version" = String, Path, description = "Model version"), ("name" = String, Path, description = "roc.svg or learning_curve.svg")),
    responses((status = 200, description = "SVG image", content_type = "image/svg+xml", body = String), (status = 404, description = "Unknown version or plot", body = ErrorBody))
)]
#[get("/v1/models/{version}/plots/{name}")]
async fn get_plot(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (version, name) = path.into_inner();
    let v = parse_version(&version)?;
    if !["roc.svg", "learning_curve.svg"].contains(&name.as_str()) {
        return Err(ApiError::not_found(format!("no plot {name}")));
    }
    let svg = state
        .registry
        .plot(&v, &name)
        .map_err(registry_error)?
        .ok_or_else(|| ApiError::not_found(format!("no model {v}")))?;
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
}

/// Makes a version current: a manual promotion of a candidate, or a rollback to an earlier
/// version. The version it replaces is retired; the gateway picks the change up on its next
/// refresh. Promoting the current version only records the call.
#[utoipa::path(
    params(("version" = String, Path, description = "Model version, e.g. churn-v3")),
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
    let v = parse_version(&version)?;
    let registry = state.registry.clone();
    let previous = registry.current().map_err(registry_error)?;
    let decision = PromotionDecision {
        promoted: true,
        by: "manual".to_owned(),
        reason: match &previous {
            Some(p) if *p == v => format!("{v} is already current"),
            Some(p) => format!("promoted by POST /v1/models/{v}/promote, replacing {p}"),
            None => format!("promoted by POST /v1/models/{v}/promote"),
        },
        compared_with: previous,
        candidate_auc: None,
        current_auc: None,
        decided_at: state.clock.now(),
    };
    let meta = web::block(move || registry.promote(&v, decision))
        .await
        .map_err(|e| ApiError::internal("promotion task", e))?
        .map_err(registry_error)?;
    tracing::info!(version = %meta.version, "Model promoted by request.");
    Ok(web::Json(meta))
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
    let mut out = Vec::new();
    for v in state.clv_registry.versions().map_err(registry_error)? {
        if let Some(m) = state.clv_registry.metadata(&v).map_err(registry_error)? {
            out.push(m);
        }
    }
    Ok(web::Json(out))
}

fn no_clv_model() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NoModel,
        "no CLV model has been trained yet",
    )
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
    let version = state
        .clv_registry
        .current()
        .map_err(registry_error)?
        .ok_or_else(no_clv_model)?;
    state
        .clv_registry
        .metadata(&version)
        .map_err(registry_error)?
        .map(web::Json)
        .ok_or_else(no_clv_model)
}

/// One CLV model's metadata: metrics, fit configuration (parameters of every model tried,
/// fallback reasons, the feature mapping, tiers), fingerprint, status and promotion.
#[utoipa::path(
    params(("version" = String, Path, description = "CLV model version, e.g. clv-v2")),
    responses((status = 200, description = "Metadata", body = ClvModelMetadata), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown version", body = ErrorBody))
)]
#[get("/v1/clv/models/{version}")]
async fn get_clv_model(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ClvModelMetadata>, ApiError> {
    let v = parse_version(&version)?;
    state
        .clv_registry
        .metadata(&v)
        .map_err(registry_error)?
        .map(web::Json)
        .ok_or_else(|| ApiError::not_found(format!("no CLV model {v}")))
}

/// One CLV model's artefact (purchase and spend parameters, value tiers), served by the gateway.
#[utoipa::path(
    params(("version" = String, Path, description = "CLV model version, e.g. clv-v2")),
    responses((status = 200, description = "Artefact", body = ClvArtifact), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown version", body = ErrorBody))
)]
#[get("/v1/clv/models/{version}/artifact")]
async fn get_clv_artifact(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ClvArtifact>, ApiError> {
    let v = parse_version(&version)?;
    state
        .clv_registry
        .artifact(&v)
        .map_err(registry_error)?
        .map(web::Json)
        .ok_or_else(|| ApiError::not_found(format!("no CLV model {v}")))
}

/// A CLV model's plot: `holdout.svg` (mean actual and predicted holdout purchases per
/// calibration repeat-purchase count).
#[utoipa::path(
    params(("version" = String, Path, description = "CLV model version"), ("name" = String, Path, description = "holdout.svg")),
    responses((status = 200, description = "SVG image", content_type = "image/svg+xml", body = String), (status = 404, description = "Unknown version or plot", body = ErrorBody))
)]
#[get("/v1/clv/models/{version}/plots/{name}")]
async fn get_clv_plot(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (version, name) = path.into_inner();
    let v = parse_version(&version)?;
    if !CLV_PLOTS.contains(&name.as_str())
        || state
            .clv_registry
            .metadata(&v)
            .map_err(registry_error)?
            .is_none()
    {
        return Err(ApiError::not_found(format!(
            "no plot {name} of CLV model {v}"
        )));
    }
    let svg = state
        .clv_registry
        .plot(&v, &name)
        .map_err(registry_error)?
        .ok_or_else(|| ApiError::not_found(format!("no CLV model {v}")))?;
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
}

/// Makes a CLV version current: a manual promotion of a candidate, or a rollback. The version
/// it replaces is retired; the gateway picks the change up on its next refresh.
#[utoipa::path(
    params(("version" = String, Path, description = "CLV model version, e.g. clv-v1")),
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
    let v = parse_version(&version)?;
    let registry = state.clv_registry.clone();
    let previous = registry.current().map_err(registry_error)?;
    let decision = PromotionDecision {
        promoted: true,
        by: "manual".to_owned(),
        reason: match &previous {
            Some(p) if *p == v => format!("{v} is already current"),
            Some(p) => format!("promoted by POST /v1/clv/models/{v}/promote, replacing {p}"),
            None => format!("promoted by POST /v1/clv/models/{v}/promote"),
        },
        compared_with: previous,
        candidate_auc: None,
        current_auc: None,
        decided_at: state.clock.now(),
    };
    let meta = web::block(move || registry.promote(&v, decision))
        .await
        .map_err(|e| ApiError::internal("promotion task", e))?
        .map_err(registry_error)?;
    tracing::info!(version = %meta.version, "CLV model promoted by request.");
    Ok(web::Json(meta))
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
