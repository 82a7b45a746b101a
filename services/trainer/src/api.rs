//! HTTP handlers and the OpenAPI description of the trainer.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use sextant_contracts::api::{Health, ModelMetadata, TrainJob, TrainJobRequest};
use sextant_contracts::{ErrorBody, ErrorCode, ModelVersion};
use sextant_models::ChurnArtifact;
use sextant_service_kit::ApiError;
use utoipa::OpenApi;

use crate::AppState;
use crate::training::TrainConfig;

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
        .service(healthz)
        .service(readyz);
}

fn registry_error(e: crate::registry::RegistryError) -> ApiError {
    ApiError::internal("registry", e)
}

fn parse_version(raw: &str) -> Result<ModelVersion, ApiError> {
    ModelVersion::parse(raw)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidParameter, e.to_string()))
}

/// Starts a churn training job; poll it with `GET /v1/jobs/{id}`.
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
    let config = TrainConfig {
        epochs,
        seed: req.seed.unwrap_or(42),
        ..TrainConfig::default()
    };
    let job = state.jobs.start(req, config);
    Ok(HttpResponse::Accepted().json(job))
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
    responses((status = 200, description = "Artefact", body = ChurnArtifact), (status = 400, description = "Malformed version", body = ErrorBody), (status = 404, description = "Unknown version", body = ErrorBody))
)]
#[get("/v1/models/{version}/artifact")]
async fn get_artifact(
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<web::Json<ChurnArtifact>, ApiError> {
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
