//! HTTP handlers and the OpenAPI description of the gateway.

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use sextant_contracts::api::{
    Health, MAX_RECORDS_PER_CALL, OnlineFeatures, OnlineFeaturesRequest, RecordError, RecordScore,
    ScoreRequest, ScoreResponse,
};
use sextant_contracts::{ErrorBody, ErrorCode, SalesforceId};
use sextant_service_kit::ApiError;
use sextant_service_kit::http::read_json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::auth::Caller;
use crate::model_cache::ModelUnavailable;

struct BearerJwt;

impl Modify for BearerJwt {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer_jwt", SecurityScheme::Http(scheme));
    }
}

/// The OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Sextant inference gateway", description = "Churn scores for Salesforce records, for Apex callouts and Lightning pages."),
    paths(scores, healthz, readyz),
    modifiers(&BearerJwt)
)]
struct ApiDoc;

/// The OpenAPI document of this service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(scores).service(healthz).service(readyz);
}

/// Parses and de-duplicates the requested ids (request order kept); any invalid id refuses
/// the whole call, naming the first offender.
fn parse_ids(raw: &[String]) -> Result<Vec<SalesforceId>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::EmptyRequest,
            "record_ids is empty",
        ));
    }
    if raw.len() > MAX_RECORDS_PER_CALL {
        return Err(ApiError::bad_request(
            ErrorCode::TooManyRecords,
            format!(
                "at most {MAX_RECORDS_PER_CALL} record ids per call, got {}",
                raw.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    let mut ids = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let id = SalesforceId::parse(r.trim())
            .and_then(|id| id.expect_object("Account", "001"))
            .map_err(|e| {
                ApiError::bad_request(
                    ErrorCode::InvalidRecordId,
                    format!("record_ids[{i}] {r:?}: {e}"),
                )
            })?;
        if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Churn scores for up to 200 Account ids, with the model version that produced them.
#[utoipa::path(
    request_body = ScoreRequest,
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "One score per known record; unknown records are listed in errors", body = ScoreResponse),
        (status = 400, description = "empty_request, too_many_records, invalid_record_id or invalid_json", body = ErrorBody),
        (status = 401, description = "Missing or invalid JWT", body = ErrorBody),
        (status = 502, description = "Feature store or trainer unavailable", body = ErrorBody),
        (status = 503, description = "No model trained yet (code no_model)", body = ErrorBody),
    )
)]
#[post("/v1/scores")]
async fn scores(
    state: web::Data<AppState>,
    caller: Caller,
    req: web::Json<ScoreRequest>,
) -> Result<web::Json<ScoreResponse>, ApiError> {
    let ids = parse_ids(&req.record_ids)?;
    let model = state.models.get().map_err(|e| match e {
        ModelUnavailable::NoModel => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NoModel,
            e.to_string(),
        ),
        ModelUnavailable::Upstream(detail) => ApiError::upstream("trainer", detail),
    })?;
    let resp = state
        .http
        .post(format!("{}/v1/features/online", state.feature_store_url))
        .json(&OnlineFeaturesRequest {
            account_ids: ids.clone(),
            include_sequences: false,
            org_id: None,
        })
        .send()
        .await
        .map_err(|e| ApiError::upstream("feature store", e))?;
    let features: OnlineFeatures = read_json(resp)
        .await
        .map_err(|e| ApiError::upstream("feature store", e))?;
    if features.feature_names != model.feature_names {
        return Err(ApiError::upstream(
            "feature store",
            format!(
                "serves features {:?}, model {} expects {:?}",
                features.feature_names, model.version, model.feature_names
            ),
        ));
    }
    let by_id: HashMap<&SalesforceId, Option<&Vec<f64>>> = features
        .rows
        .iter()
        .map(|r| (&r.account_id, r.features.as_ref()))
        .collect();
    let mut scores = Vec::with_capacity(ids.len());
    let mut errors = Vec::new();
    for id in ids {
        match by_id.get(&id).map(|f| f.map(|f| model.predict(f))) {
            Some(Some(Ok(score))) => scores.push(RecordScore {
                record_id: id,
                score,
            }),
            Some(Some(Err(e))) => return Err(ApiError::internal("scoring", e)),
            Some(None) => errors.push(RecordError {
                record_id: id,
                code: ErrorCode::NoHistory,
                message: "the account has no purchase history yet: there is nothing to score it on"
                    .into(),
            }),
            None => errors.push(RecordError {
                record_id: id,
                code: ErrorCode::NotFound,
                message: "no such account in the feature store (not synced yet?)".into(),
            }),
        }
    }
    tracing::info!(caller = caller.sub.as_deref().unwrap_or("-"), scored = scores.len(), unknown = errors.len(), version = %model.version, "Scored records.");
    Ok(web::Json(ScoreResponse {
        model_version: model.version.clone(),
        scores,
        errors,
    }))
}

/// Readiness: a model is loaded (the request path never waits for one).
#[utoipa::path(responses((status = 200, description = "A model is loaded", body = Health), (status = 503, description = "No model loaded yet (no_model)", body = ErrorBody)))]
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let check = if state.models.is_loaded() {
        Ok(())
    } else {
        Err("no model loaded")
    };
    sextant_service_kit::health::readiness(
        "gateway",
        check,
        ErrorCode::NoModel,
        "no model loaded yet",
    )
}

/// Liveness.
#[utoipa::path(responses((status = 200, description = "Alive", body = Health)))]
#[get("/healthz")]
async fn healthz() -> web::Json<Health> {
    web::Json(sextant_service_kit::health::alive("gateway"))
}
