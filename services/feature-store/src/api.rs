//! HTTP handlers and the OpenAPI description of the feature store.

use std::collections::{BTreeSet, HashSet};

use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;
use sextant_contracts::api::{
    AccountPage, FeatureRow, Health, IngestBatch, IngestResponse, MAX_RECORDS_PER_CALL,
    OnlineFeatures, OnlineFeaturesRequest, TrainingRow, TrainingSet, TrainingSetRequest,
};
use sextant_contracts::{ErrorBody, ErrorCode, SalesforceId};
use sextant_features::{FEATURE_NAMES, churn_labels, rfm_as_of};
use sextant_service_kit::ApiError;
use utoipa::OpenApi;

use crate::AppState;

/// The OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sextant feature store",
        description = "CRM records synced from Salesforce, point-in-time training sets and online features."
    ),
    paths(ingest, training_set, online_features, accounts, healthz, readyz)
)]
struct ApiDoc;

/// The OpenAPI document of this service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(ingest)
        .service(training_set)
        .service(online_features)
        .service(accounts)
        .service(healthz)
        .service(readyz);
}

fn db_error(e: sea_orm::DbErr) -> ApiError {
    ApiError::internal("database", e)
}

/// Upserts a batch of records of one object by Salesforce Id (idempotent).
#[utoipa::path(
    request_body = IngestBatch,
    responses(
        (status = 200, description = "Batch upserted", body = IngestResponse),
        (status = 400, description = "Malformed batch (code invalid_json)", body = ErrorBody),
    )
)]
#[post("/v1/ingest")]
async fn ingest(
    state: web::Data<AppState>,
    batch: web::Json<IngestBatch>,
) -> Result<web::Json<IngestResponse>, ApiError> {
    let (upserted, total) = state.store.ingest(&batch).await.map_err(db_error)?;
    tracing::info!(object = batch.object(), upserted, total, "Ingested batch.");
    Ok(web::Json(IngestResponse {
        object: batch.object().to_owned(),
        upserted,
        total,
    }))
}

/// The longest churn horizon accepted, in days.
const MAX_HORIZON_DAYS: u32 = 3650;

/// Builds a point-in-time training set: features from orders before `cutoff`, label from the
/// `horizon_days` after it.
#[utoipa::path(
    request_body = TrainingSetRequest,
    responses(
        (status = 200, description = "Labelled rows, one per account with history before the cutoff", body = TrainingSet),
        (status = 400, description = "Bad horizon (code invalid_parameter)", body = ErrorBody),
    )
)]
#[post("/v1/training-sets")]
async fn training_set(
    state: web::Data<AppState>,
    req: web::Json<TrainingSetRequest>,
) -> Result<web::Json<TrainingSet>, ApiError> {
    if req.horizon_days == 0 || req.horizon_days > MAX_HORIZON_DAYS {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            format!("horizon_days must be between 1 and {MAX_HORIZON_DAYS}"),
        ));
    }
    let orders = state.store.order_facts(None).await.map_err(db_error)?;
    let labels = churn_labels(&orders, req.cutoff, req.horizon_days);
    let features = rfm_as_of(labels.keys(), &orders, req.cutoff);
    let rows = labels
        .iter()
        .filter_map(|(id, churned)| {
            features.get(id).map(|f| TrainingRow {
                account_id: id.clone(),
                features: f.to_vec(),
                churned: *churned,
            })
        })
        .collect();
    Ok(web::Json(TrainingSet {
        cutoff: req.cutoff,
        horizon_days: req.horizon_days,
        feature_names: FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect(),
        rows,
    }))
}

/// The latest features of up to 200 accounts, as of today.
#[utoipa::path(
    request_body = OnlineFeaturesRequest,
    responses(
        (status = 200, description = "Features of the known accounts; unknown ids in missing", body = OnlineFeatures),
        (status = 400, description = "No ids, more than 200, or an invalid id", body = ErrorBody),
    )
)]
#[post("/v1/features/online")]
async fn online_features(
    state: web::Data<AppState>,
    req: web::Json<OnlineFeaturesRequest>,
) -> Result<web::Json<OnlineFeatures>, ApiError> {
    if req.account_ids.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::EmptyRequest,
            "account_ids is empty",
        ));
    }
    if req.account_ids.len() > MAX_RECORDS_PER_CALL {
        return Err(ApiError::bad_request(
            ErrorCode::TooManyRecords,
            format!(
                "at most {MAX_RECORDS_PER_CALL} account ids per call, got {}",
                req.account_ids.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    let requested: Vec<SalesforceId> = req
        .account_ids
        .iter()
        .filter(|id| seen.insert((*id).clone()))
        .cloned()
        .collect();
    let existing: BTreeSet<SalesforceId> = state
        .store
        .existing_accounts(&requested)
        .await
        .map_err(db_error)?
        .into_iter()
        .collect();
    let found: Vec<SalesforceId> = requested
        .iter()
        .filter(|id| existing.contains(id))
        .cloned()
        .collect();
    let orders = state
        .store
        .order_facts(Some(&found))
        .await
        .map_err(db_error)?;
    let as_of = state.today();
    let features = rfm_as_of(found.iter(), &orders, as_of);
    Ok(web::Json(OnlineFeatures {
        as_of,
        feature_names: FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect(),
        rows: found
            .iter()
            .filter_map(|id| {
                features.get(id).map(|f| FeatureRow {
                    account_id: id.clone(),
                    features: f.to_vec(),
                })
            })
            .collect(),
        missing: requested
            .into_iter()
            .filter(|id| !existing.contains(id))
            .collect(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct PageQuery {
    /// Return ids after this one.
    after: Option<SalesforceId>,
    /// Page size, 1..=2000 (default 200).
    limit: Option<u64>,
}

/// Account ids in Id order, a page at a time.
#[utoipa::path(params(PageQuery), responses((status = 200, description = "A page of ids", body = AccountPage), (status = 400, description = "Bad limit or after", body = ErrorBody)))]
#[get("/v1/accounts")]
async fn accounts(
    state: web::Data<AppState>,
    q: web::Query<PageQuery>,
) -> Result<web::Json<AccountPage>, ApiError> {
    let limit = q.limit.unwrap_or(200);
    if !(1..=2000).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            "limit must be between 1 and 2000",
        ));
    }
    let ids = state
        .store
        .account_page(q.after.as_ref(), limit)
        .await
        .map_err(db_error)?;
    let next_after = if ids.len() as u64 == limit {
        ids.last().cloned()
    } else {
        None
    };
    Ok(web::Json(AccountPage {
        account_ids: ids,
        next_after,
    }))
}

/// Liveness.
#[utoipa::path(responses((status = 200, description = "Alive", body = Health)))]
#[get("/healthz")]
async fn healthz() -> web::Json<Health> {
    web::Json(sextant_service_kit::health::alive("feature-store"))
}

/// Readiness: the database answers.
#[utoipa::path(responses((status = 200, description = "Ready", body = Health), (status = 503, description = "Database unavailable", body = ErrorBody)))]
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    sextant_service_kit::health::readiness(
        "feature-store",
        state.store.ping().await,
        ErrorCode::UpstreamUnavailable,
        "database unavailable",
    )
}
