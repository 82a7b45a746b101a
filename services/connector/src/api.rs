//! HTTP handlers and the OpenAPI description of the connector.

use actix_web::http::StatusCode;
use actix_web::{get, post, web};
use sextant_contracts::api::{Health, SyncReport};
use sextant_contracts::{ErrorBody, ErrorCode};
use sextant_service_kit::ApiError;
use utoipa::OpenApi;

use crate::AppState;
use crate::jobs::{JobState, SyncJob, SyncProgress};
use crate::sync::{SyncError, SyncObserver, full_sync, full_sync_observed};

/// The OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sextant connector",
        description = "Reads Salesforce through a connected app and feeds the feature store."
    ),
    paths(sync, start_sync, get_sync, cancel_sync, list_syncs, healthz),
    components(schemas(SyncJob, SyncProgress, JobState))
)]
struct ApiDoc;

/// The OpenAPI document of this service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(sync)
        .service(start_sync)
        .service(list_syncs)
        .service(get_sync)
        .service(cancel_sync)
        .service(healthz);
}

/// Runs a full sync now: Account, Contact, Product2, Order, OrderItem and Case, every page.
#[utoipa::path(responses(
    (status = 200, description = "Records synced per object", body = SyncReport),
    (status = 409, description = "A sync is already running (code sync_in_progress)", body = ErrorBody),
    (status = 502, description = "Salesforce or the feature store failed (codes salesforce_error, upstream_unavailable)", body = ErrorBody),
))]
#[post("/v1/sync")]
async fn sync(state: web::Data<AppState>) -> Result<web::Json<SyncReport>, ApiError> {
    let Ok(_running) = state.sync_lock.try_lock() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::SyncInProgress,
            "a sync is already running",
        ));
    };
    full_sync(
        &state.salesforce,
        &state.http,
        &state.feature_store_url,
        &state.clock,
    )
    .await
    .map(web::Json)
    .map_err(sync_error)
}

fn sync_error(e: SyncError) -> ApiError {
    {
        tracing::warn!(error = %e, "Sync failed.");
        match e {
            SyncError::Salesforce(e) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                ErrorCode::SalesforceError,
                e.to_string(),
            ),
            SyncError::Mapping(e) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                ErrorCode::SalesforceError,
                e.to_string(),
            ),
            SyncError::FeatureStore(e) => ApiError::upstream("feature store", e),
            SyncError::Cancelled => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::SyncInProgress,
                "the sync was cancelled",
            ),
        }
    }
}

struct JobObserver {
    state: web::Data<AppState>,
    id: String,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SyncObserver for JobObserver {
    fn object_started(&self, object: &str) {
        self.state
            .jobs
            .progress(&self.id, |p| p.current_object = Some(object.to_owned()));
    }
    fn page_ingested(&self, rows: u64, api_calls: u64) {
        self.state.jobs.progress(&self.id, |p| {
            p.rows += rows;
            p.pages += 1;
            p.api_calls = api_calls;
        });
    }
    fn object_done(&self, _object: &str) {
        self.state.jobs.progress(&self.id, |p| p.objects_done += 1);
    }
    fn cancelled(&self) -> bool {
        self.cancel.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Starts a full sync in the background; poll `GET /v1/syncs/{id}`.
#[utoipa::path(responses(
    (status = 202, description = "Started", body = SyncJob),
    (status = 409, description = "A sync is already running (code sync_in_progress)", body = ErrorBody),
))]
#[post("/v1/syncs")]
async fn start_sync(state: web::Data<AppState>) -> Result<actix_web::HttpResponse, ApiError> {
    let busy = || {
        ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::SyncInProgress,
            "a sync is already running",
        )
    };
    if state.sync_lock.try_lock().is_err() {
        return Err(busy());
    }
    let (id, cancel) = state.jobs.start(state.clock.now()).map_err(|_| busy())?;
    let job = state.jobs.get(&id);
    let task_state = state.clone();
    tokio::spawn(async move {
        let state = task_state;
        let _one_at_a_time = state.sync_lock.lock().await;
        let observer = JobObserver {
            state: state.clone(),
            id: id.clone(),
            cancel,
        };
        let outcome = full_sync_observed(
            &state.salesforce,
            &state.http,
            &state.feature_store_url,
            &state.clock,
            &observer,
        )
        .await;
        let now = state.clock.now();
        match outcome {
            Ok(_) => state.jobs.finish(&id, JobState::Succeeded, None, now),
            Err(SyncError::Cancelled) => state.jobs.finish(&id, JobState::Cancelled, None, now),
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "Sync job failed.");
                state
                    .jobs
                    .finish(&id, JobState::Failed, Some(e.to_string()), now);
            }
        }
    });
    Ok(actix_web::HttpResponse::Accepted().json(job))
}

/// Every sync job, newest first.
#[utoipa::path(responses((status = 200, description = "Jobs", body = [SyncJob])))]
#[get("/v1/syncs")]
async fn list_syncs(state: web::Data<AppState>) -> web::Json<Vec<SyncJob>> {
    web::Json(state.jobs.list())
}

/// One sync job: state and progress.
#[utoipa::path(
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = SyncJob),
        (status = 404, description = "No such job (code not_found)", body = ErrorBody),
    )
)]
#[get("/v1/syncs/{id}")]
async fn get_sync(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<SyncJob>, ApiError> {
    state
        .jobs
        .get(&id)
        .map(web::Json)
        .ok_or_else(|| ApiError::not_found(format!("no sync job {id}")))
}

/// Asks a running sync to stop between two pages (what it ingested stays).
#[utoipa::path(
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 202, description = "Cancellation requested", body = SyncJob),
        (status = 404, description = "No such job (code not_found)", body = ErrorBody),
    )
)]
#[post("/v1/syncs/{id}/cancel")]
async fn cancel_sync(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<actix_web::HttpResponse, ApiError> {
    let job = state
        .jobs
        .cancel(&id)
        .ok_or_else(|| ApiError::not_found(format!("no sync job {id}")))?;
    Ok(actix_web::HttpResponse::Accepted().json(job))
}

/// Liveness.
#[utoipa::path(responses((status = 200, description = "Alive", body = Health)))]
#[get("/healthz")]
async fn healthz() -> web::Json<Health> {
    web::Json(sextant_service_kit::health::alive("connector"))
}
