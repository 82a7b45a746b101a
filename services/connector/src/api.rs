//! HTTP handlers and the OpenAPI description of the connector.

use actix_web::http::StatusCode;
use actix_web::{get, post, web};
use sextant_contracts::api::{Health, SyncReport};
use sextant_contracts::{ErrorBody, ErrorCode};
use sextant_service_kit::ApiError;
use utoipa::OpenApi;

use crate::AppState;
use crate::sync::{SyncError, full_sync};

/// The OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sextant connector",
        description = "Reads Salesforce through a connected app and feeds the feature store."
    ),
    paths(sync, healthz)
)]
struct ApiDoc;

/// The OpenAPI document of this service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(sync).service(healthz);
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
    .map_err(|e| {
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
            rejected @ SyncError::Rejected { .. } => ApiError::new(
                StatusCode::BAD_GATEWAY,
                ErrorCode::InvalidRecord,
                rejected.to_string(),
            ),
        }
    })
}

/// Liveness.
#[utoipa::path(responses((status = 200, description = "Alive", body = Health)))]
#[get("/healthz")]
async fn healthz() -> web::Json<Health> {
    web::Json(sextant_service_kit::health::alive("connector"))
}
