//! HTTP handlers and the OpenAPI description of the feature store.

use std::collections::{BTreeSet, HashSet};

use actix_web::{HttpResponse, get, post, web};
use chrono::NaiveDate;
use serde::Deserialize;
use sextant_contracts::api::{
    AccountPage, FeatureRow, Health, IngestObject, IngestRequest, IngestResponse,
    MAX_INGEST_RECORDS, MAX_RECORDS_PER_CALL, OnlineFeatures, OnlineFeaturesRequest,
    TrainingSetLine, TrainingSetRequest,
};
use sextant_contracts::records::{
    AccountRecord, CaseRecord, ContactRecord, EngagementEventRecord, ObjectRecord, OrderItemRecord,
    OrderRecord, ProductRecord,
};
use sextant_contracts::{ErrorBody, ErrorCode, OrgId, SalesforceId};
use sextant_features::aggregates::{FEATURE_NAMES, FEATURE_SET};
use sextant_features::drift::{DriftLevel, Reference, psi};
use sextant_features::sequence::WEEK_CHANNELS;
use sextant_service_kit::ApiError;
use utoipa::OpenApi;

use crate::AppState;
use crate::export::{__path_export_status, __path_start_export, export_status, start_export};
use crate::migration::DEFAULT_ORG;
use crate::store;

/// The OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sextant feature store",
        description = "CRM records synced from Salesforce (versioned by known time), point-in-time training sets streamed as NDJSON, and materialised online features."
    ),
    paths(
        ingest,
        training_set,
        online_features,
        accounts,
        drift,
        crate::purchases::export_purchases,
        crate::purchases::purchase_history,
        crate::records::export_records,
        crate::predictions::log_predictions,
        crate::predictions::realised,
        start_export,
        export_status,
        healthz,
        readyz
    ),
    components(schemas(
        AccountRecord,
        ContactRecord,
        ProductRecord,
        OrderRecord,
        OrderItemRecord,
        CaseRecord,
        EngagementEventRecord,
        ObjectRecord,
        TrainingSetLine
    ))
)]
struct ApiDoc;

/// The OpenAPI document of this service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    sextant_service_kit::internal_auth::document(ApiDoc::openapi())
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(ingest)
        .service(training_set)
        .service(online_features)
        .service(accounts)
        .service(drift)
        .service(crate::purchases::export_purchases)
        .service(crate::purchases::purchase_history)
        .service(crate::records::export_records)
        .service(crate::predictions::log_predictions)
        .service(crate::predictions::realised)
        .service(start_export)
        .service(export_status)
        .service(healthz)
        .service(readyz);
}

fn db_error(e: sea_orm::DbErr) -> ApiError {
    ApiError::internal("database", e)
}

fn org_of(org: Option<&OrgId>) -> String {
    org.map_or_else(|| DEFAULT_ORG.to_owned(), ToString::to_string)
}

/// Stores records and tombstones of one object (idempotent, order-independent), and refreshes
/// the online features of the accounts they touch, in one transaction.
#[utoipa::path(
    request_body = IngestRequest,
    responses(
        (status = 200, description = "Batch committed; per-record refusals in `rejected`", body = IngestResponse),
        (status = 400, description = "Malformed body (invalid_json), too many records (too_many_records), or object Record without a valid record_object, or record_object with another object (invalid_parameter)", body = ErrorBody),
    )
)]
#[post("/v1/ingest")]
async fn ingest(
    state: web::Data<AppState>,
    req: web::Json<IngestRequest>,
) -> Result<web::Json<IngestResponse>, ApiError> {
    for (what, n) in [
        ("records", req.records.len()),
        ("deletions", req.deletions.len()),
    ] {
        if n > MAX_INGEST_RECORDS {
            return Err(ApiError::bad_request(
                ErrorCode::TooManyRecords,
                format!("at most {MAX_INGEST_RECORDS} {what} per call, got {n}"),
            ));
        }
    }
    match (req.object, req.record_object.as_deref()) {
        (IngestObject::Record, None) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                "object Record needs record_object: the object's API name",
            ));
        }
        (IngestObject::Record, Some(o)) if !crate::store::object_records::is_api_name(o) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                format!(
                    "record_object {:?} is not an API name (a letter, then letters, digits and underscores, at most 80 characters)",
                    o.chars().take(100).collect::<String>()
                ),
            ));
        }
        (IngestObject::Record, Some(_)) | (_, None) => {}
        (object, Some(_)) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                format!(
                    "record_object is only for object Record, not {}",
                    object.as_str()
                ),
            ));
        }
    }
    let org = org_of(req.org_id.as_ref());
    let answer = state
        .store
        .ingest(&org, &req, state.clock.now())
        .await
        .map_err(db_error)?;
    if answer.accounts_refreshed > 0 {
        state.refresh_wanted.notify_one();
    }
    tracing::info!(
        object = req.object.as_str(),
        written = answer.written,
        unchanged = answer.unchanged,
        rejected = answer.rejected.len(),
        queued = answer.accounts_refreshed,
        "Ingested batch."
    );
    Ok(web::Json(answer))
}

/// The longest label window accepted, in days.
const MAX_HORIZON_DAYS: u32 = 3650;
/// The most cut-offs one request stacks.
const MAX_CUTOFFS: usize = 104;
/// The most explicit examples one request names.
const MAX_EXAMPLES: usize = 100_000;

/// Streams a point-in-time training set as NDJSON: a header line, one line per (account,
/// cut-off) with history before the cut-off, and a trailer with the row count and a SHA-256
/// fingerprint. Features see only rows whose event time and known time are before the cut-off;
/// the label looks at the window after it, which must have ended by today.
#[utoipa::path(
    request_body = TrainingSetRequest,
    responses(
        (status = 200, description = "NDJSON stream of `TrainingSetLine`s: header, rows, trailer (or an error line that ends it)", content_type = "application/x-ndjson", body = TrainingSetLine),
        (status = 400, description = "Bad horizon, cut-offs or examples (invalid_parameter); label window not over (label_window_open)", body = ErrorBody),
    )
)]
#[post("/v1/training-sets")]
async fn training_set(
    state: web::Data<AppState>,
    req: web::Json<TrainingSetRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = req.into_inner();
    if req.horizon_days == 0 || req.horizon_days > MAX_HORIZON_DAYS {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            format!("horizon_days must be between 1 and {MAX_HORIZON_DAYS}"),
        ));
    }
    match (req.cutoffs.is_empty(), req.examples.is_empty()) {
        (true, true) | (false, false) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                "give either cutoffs or examples (exactly one of them, not empty)",
            ));
        }
        _ => {}
    }
    if req.cutoffs.len() > MAX_CUTOFFS || req.examples.len() > MAX_EXAMPLES {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            format!("at most {MAX_CUTOFFS} cutoffs or {MAX_EXAMPLES} examples per request"),
        ));
    }
    let today = state.today();
    let all_cutoffs: BTreeSet<NaiveDate> = req
        .cutoffs
        .iter()
        .copied()
        .chain(req.examples.iter().map(|e| e.cutoff))
        .collect();
    for c in &all_cutoffs {
        let end = *c + chrono::Duration::days(i64::from(req.horizon_days));
        if end > today {
            return Err(ApiError::bad_request(
                ErrorCode::LabelWindowOpen,
                format!(
                    "the label window of cut-off {c} ends on {end}, after today ({today}): its labels are not known yet"
                ),
            ));
        }
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(16);
    let store = state.store.clone();
    tokio::spawn(async move {
        crate::training::produce(store, req, tx).await;
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(body))
}

/// Asks how far today's online values have drifted from a model's training set.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftRequest {
    /// The feature set the references describe; must be the store's.
    feature_set: String,
    /// One reference per feature to compare (1..=200), from the model's training set.
    #[schema(min_items = 1, max_items = 200)]
    references: Vec<Reference>,
    /// The most online rows to read (1..=200000; default 50000), in account-id order.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 200000)]
    max_rows: Option<usize>,
    /// The org; the default org when absent.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^00D[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$", format = "salesforce-org-id")]
    org_id: Option<OrgId>,
}

/// PSI of one feature.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct FeatureDrift {
    feature: String,
    psi: f64,
    level: DriftLevel,
}

/// The drift report.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DriftReport {
    feature_set: String,
    /// Online rows (accounts with history) compared.
    rows_compared: u64,
    /// Accounts whose online row was still waiting for its post-ingest refresh when the rows
    /// were read (counted up to 10,000): their previous values were compared.
    pending_refresh: u64,
    features: Vec<FeatureDrift>,
}

/// Pages of the online refresh queue a drift request works off before it reads (so a small or
/// quiet org compares exactly today's values; a large backlog is left to the background worker
/// and reported in `pending_refresh`).
const DRIFT_REFRESH_PAGES: usize = 20;

/// Population stability index of each referenced feature between a model's training set (its
/// bins) and the materialised online values, read a page at a time up to `max_rows`.
#[utoipa::path(
    request_body = DriftRequest,
    responses(
        (status = 200, description = "PSI per feature with its conventional level", body = DriftReport),
        (status = 400, description = "Unknown feature, other feature set, malformed reference (invalid_parameter)", body = ErrorBody),
        (status = 422, description = "No online rows to compare (insufficient_data)", body = ErrorBody),
    )
)]
#[post("/v1/drift")]
async fn drift(
    state: web::Data<AppState>,
    req: web::Json<DriftRequest>,
) -> Result<web::Json<DriftReport>, ApiError> {
    let bad = |m: String| ApiError::bad_request(ErrorCode::InvalidParameter, m);
    if req.feature_set != FEATURE_SET {
        return Err(bad(format!(
            "feature_set {} is not the store's ({FEATURE_SET})",
            req.feature_set
        )));
    }
    if req.references.is_empty() || req.references.len() > 200 {
        return Err(bad("give 1 to 200 references".into()));
    }
    let max_rows = req.max_rows.unwrap_or(50_000);
    if !(1..=200_000).contains(&max_rows) {
        return Err(bad("max_rows must be between 1 and 200000".into()));
    }
    let mut columns = Vec::with_capacity(req.references.len());
    for r in &req.references {
        let Some(i) = FEATURE_NAMES.iter().position(|n| *n == r.feature) else {
            return Err(bad(format!("unknown feature {}", r.feature)));
        };
        if r.fractions.len() != r.edges.len() + 1
            || r.edges.windows(2).any(|w| w[0] > w[1])
            || r.edges.iter().chain(&r.fractions).any(|v| !v.is_finite())
        {
            return Err(bad(format!(
                "reference of {} needs ascending finite edges and one fraction per bin",
                r.feature
            )));
        }
        columns.push(i);
    }
    let org = org_of(req.org_id.as_ref());
    for _ in 0..DRIFT_REFRESH_PAGES {
        let n = state
            .store
            .refresh_queued(store::PAGE, state.online_as_of(), state.clock.now())
            .await
            .map_err(db_error)?;
        if n == 0 {
            break;
        }
    }
    let pending_refresh = state.store.queued(10_000).await.map_err(db_error)?;
    let mut values: Vec<Vec<f64>> = vec![Vec::new(); columns.len()];
    let mut after: Option<String> = None;
    let mut rows = 0usize;
    while rows < max_rows {
        let page = state
            .store
            .online_vectors(
                &org,
                FEATURE_SET,
                after.as_deref(),
                1000.min(max_rows - rows),
            )
            .await
            .map_err(db_error)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        for (_, v) in &page {
            for (slot, &i) in values.iter_mut().zip(&columns) {
                if let Some(x) = v.get(i) {
                    slot.push(*x);
                }
            }
        }
        rows += page.len();
    }
    if rows == 0 {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InsufficientData,
            "no online rows with history to compare",
        ));
    }
    let features = req
        .references
        .iter()
        .zip(&values)
        .filter_map(|(r, v)| {
            psi(r, v).map(|p| FeatureDrift {
                feature: r.feature.clone(),
                psi: p,
                level: DriftLevel::of(p),
            })
        })
        .collect();
    Ok(web::Json(DriftReport {
        feature_set: FEATURE_SET.to_owned(),
        rows_compared: rows as u64,
        pending_refresh,
        features,
    }))
}

/// The latest features of up to 200 accounts, from the materialised online store (rows
/// materialised for an earlier day are recomputed first).
#[utoipa::path(
    request_body = OnlineFeaturesRequest,
    responses(
        (status = 200, description = "Features of the known accounts (`no_history` when they have never purchased); unknown ids in missing", body = OnlineFeatures),
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
    let ids: Vec<String> = requested.iter().map(ToString::to_string).collect();
    let as_of = state.online_as_of();
    let org = org_of(req.org_id.as_ref());
    let rows = state
        .store
        .online(&org, &ids, as_of, state.clock.now())
        .await
        .map_err(db_error)?;
    let found: HashSet<&str> = rows.iter().map(|r| r.account_id.as_str()).collect();
    let missing = requested
        .iter()
        .filter(|id| !found.contains(id.as_str()))
        .cloned()
        .collect();
    let rows = rows
        .into_iter()
        .filter_map(|r| {
            Some(FeatureRow {
                account_id: SalesforceId::parse(&r.account_id).ok()?,
                status: r.status,
                features: r.features,
                sequence: if req.include_sequences {
                    r.sequence
                } else {
                    None
                },
                attributes: r.attributes,
                as_of: r.as_of,
                computed_at: r.computed_at,
            })
        })
        .collect();
    Ok(web::Json(OnlineFeatures {
        as_of,
        feature_set: FEATURE_SET.to_owned(),
        feature_names: FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect(),
        sequence_channels: WEEK_CHANNELS.iter().map(|s| (*s).to_owned()).collect(),
        rows,
        missing,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct PageQuery {
    /// Return ids after this one.
    after: Option<SalesforceId>,
    /// Page size, 1..=2000 (default 200).
    #[param(minimum = 1, maximum = 2000)]
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
    let ids: Vec<SalesforceId> = state
        .store
        .account_page(
            DEFAULT_ORG,
            q.after.as_ref().map(SalesforceId::as_str),
            limit,
        )
        .await
        .map_err(db_error)?
        .iter()
        .filter_map(|id| SalesforceId::parse(id).ok())
        .collect();
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
