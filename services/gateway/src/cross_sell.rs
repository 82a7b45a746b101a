//! `POST /v1/cross-sell`: for up to 200 accounts, the products each is likely to buy next (each
//! with the purchase that suggests it) and the likeliest category of their next order.
//!
//! The answer is computed here from the current cross-sell model (followed in the background like
//! every model family) and the accounts' recent purchases, read from the feature store in one call
//! per request. Nothing is precomputed per account, so a new model or a new order changes the
//! next answer.

use actix_web::{post, web};
use serde::{Deserialize, Serialize};
use sextant_contracts::api::{PurchaseHistory, PurchaseHistoryRequest};
use sextant_contracts::{ErrorBody, ErrorCode, ModelVersion, SalesforceId};
use sextant_models::recommend::{
    Basis, CategoryGuess, CrossSellModel, PastOrder, RecommendError, Suggestion,
};
use sextant_service_kit::ApiError;
use sextant_service_kit::http::read_json;

use crate::AppState;
use crate::model_cache::CachedModel;
use crate::rate_limit::LimitedCaller;

/// The most products suggested per account.
pub const MAX_ITEMS: u32 = 20;
/// Orders of an account the answer reads (the most recent).
const HISTORY_ORDERS: u32 = 50;

/// The current cross-sell model, with its registry version parsed.
#[derive(Debug, Deserialize)]
#[serde(try_from = "CrossSellModel")]
pub struct ServedCrossSell {
    pub version: ModelVersion,
    pub model: CrossSellModel,
}

impl TryFrom<CrossSellModel> for ServedCrossSell {
    type Error = String;
    fn try_from(model: CrossSellModel) -> Result<Self, String> {
        let version = ModelVersion::parse(&model.version)
            .map_err(|e| format!("cross-sell artefact version `{}`: {e}", model.version))?;
        Ok(Self { version, model })
    }
}

impl CachedModel for ServedCrossSell {
    type Wire = Self;
    const LABEL: &'static str = "cross-sell model";
    const ROUTE: &'static str = "/v1/cross-sell/models";
    fn version(&self) -> &ModelVersion {
        &self.version
    }
    fn check(&self) -> Result<(), String> {
        self.model.validate().map_err(|e| e.to_string())
    }
    fn from_wire(wire: Self, _version: &ModelVersion) -> Result<Self, String> {
        Ok(wire)
    }
}

/// A day count for the model (only differences between days matter to it).
fn day_number(d: chrono::NaiveDate) -> i64 {
    i64::from(chrono::Datelike::num_days_from_ce(&d))
}

/// Asks for cross-sell suggestions.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrossSellRequest {
    /// Account ids, 15 or 18 characters; at most 200.
    #[schema(schema_with = sextant_contracts::ids::account_ids_schema)]
    pub record_ids: Vec<String>,
    /// Products per account, 1..=20 (default 5).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 20)]
    pub limit: Option<u32>,
    /// Also suggest products the account already bought (repeat purchases); default false.
    #[serde(default)]
    pub include_bought: bool,
}

/// The suggestions for one account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountCrossSell {
    pub record_id: SalesforceId,
    /// Best first.
    pub items: Vec<Suggestion>,
    /// `history`: from the account's purchases; `popularity`: the account has no purchase the
    /// model knows, so these are the most popular products.
    pub basis: Basis,
    /// The likeliest categories of the next order, best first (at most 3).
    pub next_category: Vec<CategoryGuess>,
    /// Purchased products the model does not know (newer than the model), ignored.
    pub unknown_items: Vec<String>,
    /// Orders read for the answer (the most recent, at most 50).
    pub orders_considered: usize,
}

/// The answer: one entry per requested account, in request order (duplicates once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CrossSellResponse {
    #[schema(value_type = String)]
    pub model_version: ModelVersion,
    pub results: Vec<AccountCrossSell>,
}

/// Products each account is likely to buy next, each with the past purchase that most suggests
/// it ("customers who bought X also buy Y"), and the likeliest category of the next order, by the
/// current cross-sell model from the accounts' recent purchases (orders whose status counts as a
/// purchase). Without a trained cross-sell model the call is refused (`no_model`).
#[utoipa::path(
    request_body = CrossSellRequest,
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "One entry per account, in request order", body = CrossSellResponse),
        (status = 400, description = "empty_request, too_many_records (over 200), invalid_record_id (not an Account id), invalid_parameter (limit out of 1..=20) or invalid_json", body = ErrorBody),
        (status = 401, description = "Missing or invalid JWT (code unauthorized)", body = ErrorBody),
        (status = 429, description = "The caller (JWT sub) exceeded its rate limit (code rate_limited); retry after the Retry-After seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Whole seconds (at least 1) until the caller may call again"))),
        (status = 502, description = "The feature store is unavailable, or the trainer is and no model is cached", body = ErrorBody),
        (status = 503, description = "No cross-sell model trained yet (code no_model)", body = ErrorBody),
    )
)]
#[post("/v1/cross-sell")]
pub async fn cross_sell(
    state: web::Data<AppState>,
    LimitedCaller(_caller): LimitedCaller,
    req: web::Json<CrossSellRequest>,
) -> Result<web::Json<CrossSellResponse>, ApiError> {
    let req = req.into_inner();
    let prepared = prepare(&state, &req.record_ids, req.limit, 5, MAX_ITEMS).await?;
    let exclude_bought = !req.include_bought;
    let model_version = prepared.served.version.clone();
    let results = per_account(
        "cross-sell",
        prepared,
        move |served, today, limit, account_id, orders| {
            let answer = served.model.answer(orders, today, limit, exclude_bought)?;
            Ok(AccountCrossSell {
                record_id: account_id,
                items: answer.items,
                basis: answer.basis,
                next_category: answer.next_category,
                unknown_items: answer.unknown_items,
                orders_considered: orders.len(),
            })
        },
    )
    .await?;
    Ok(web::Json(CrossSellResponse {
        model_version,
        results,
    }))
}

/// The most categories one answer lists per account.
pub const MAX_CATEGORIES: u32 = 10;

/// Asks for the likeliest categories of each account's next order.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NextCategoryRequest {
    /// Account ids, 15 or 18 characters; at most 200.
    #[schema(schema_with = sextant_contracts::ids::account_ids_schema)]
    pub record_ids: Vec<String>,
    /// Categories per account, 1..=10 (default 3; fewer when the model knows fewer).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10)]
    pub limit: Option<u32>,
}

/// The next-category answer for one account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountNextCategory {
    pub record_id: SalesforceId,
    /// Likeliest first; shares are of the model's total score over every category.
    pub categories: Vec<CategoryGuess>,
    /// `history`: from the account's orders; `popularity`: the account has no purchase yet, so
    /// these are the categories most orders are in.
    pub basis: Basis,
    /// Orders read for the answer (the most recent, at most 50).
    pub orders_considered: usize,
}

/// The answer: one entry per requested account, in request order (duplicates once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NextCategoryResponse {
    #[schema(value_type = String)]
    pub model_version: ModelVersion,
    pub results: Vec<AccountNextCategory>,
}

/// The likeliest product categories of each account's next order, each with its share and its
/// reason (`habit`, `follows_last_order` or `popular`), by the next-category part of the current
/// cross-sell model, from the accounts' recent purchases. The same model and history as
/// `POST /v1/cross-sell`, for callers that need only the category (a campaign segment, a
/// record-page badge). Without a trained cross-sell model the call is refused (`no_model`).
#[utoipa::path(
    request_body = NextCategoryRequest,
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "One entry per account, in request order", body = NextCategoryResponse),
        (status = 400, description = "empty_request, too_many_records (over 200), invalid_record_id (not an Account id), invalid_parameter (limit out of 1..=10) or invalid_json", body = ErrorBody),
        (status = 401, description = "Missing or invalid JWT (code unauthorized)", body = ErrorBody),
        (status = 429, description = "The caller (JWT sub) exceeded its rate limit (code rate_limited); retry after the Retry-After seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Whole seconds (at least 1) until the caller may call again"))),
        (status = 502, description = "The feature store is unavailable, or the trainer is and no model is cached", body = ErrorBody),
        (status = 503, description = "No cross-sell model trained yet (code no_model)", body = ErrorBody),
    )
)]
#[post("/v1/next-category")]
pub async fn next_category(
    state: web::Data<AppState>,
    LimitedCaller(_caller): LimitedCaller,
    req: web::Json<NextCategoryRequest>,
) -> Result<web::Json<NextCategoryResponse>, ApiError> {
    let req = req.into_inner();
    let prepared = prepare(&state, &req.record_ids, req.limit, 3, MAX_CATEGORIES).await?;
    let model_version = prepared.served.version.clone();
    let results = per_account(
        "next-category",
        prepared,
        |served, today, limit, account_id, orders| {
            Ok(AccountNextCategory {
                record_id: account_id,
                categories: served.model.next_categories(orders, today, limit)?,
                basis: if orders.is_empty() {
                    Basis::Popularity
                } else {
                    Basis::History
                },
                orders_considered: orders.len(),
            })
        },
    )
    .await?;
    Ok(web::Json(NextCategoryResponse {
        model_version,
        results,
    }))
}

/// `answer` for each account of `prepared` (in request order) from its recent purchases, on the
/// blocking pool: the model's work stays off the async workers. `what` names the route in errors.
async fn per_account<T, F>(
    what: &'static str,
    prepared: Prepared,
    answer: F,
) -> Result<Vec<T>, ApiError>
where
    T: Send + 'static,
    F: Fn(&ServedCrossSell, i64, usize, SalesforceId, &[PastOrder]) -> Result<T, RecommendError>
        + Send
        + 'static,
{
    let Prepared {
        served,
        history,
        today,
        limit,
    } = prepared;
    web::block(move || -> Result<Vec<T>, RecommendError> {
        history
            .accounts
            .into_iter()
            .map(|a| {
                let orders = past_orders(&a.orders);
                answer(&served, today, limit as usize, a.account_id, &orders)
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError::internal(&format!("{what} task"), e))?
    .map_err(|e| ApiError::internal(&format!("{what} model"), e))
}

/// What both routes answer from.
struct Prepared {
    served: std::sync::Arc<ServedCrossSell>,
    history: PurchaseHistory,
    /// Today's day number.
    today: i64,
    limit: u32,
}

/// The checks and reads both routes share: the account ids, `limit` (default `default`, at most
/// `max`), the current cross-sell model (`no_model` without one) and the accounts' recent
/// purchases.
async fn prepare(
    state: &AppState,
    record_ids: &[String],
    limit: Option<u32>,
    default: u32,
    max: u32,
) -> Result<Prepared, ApiError> {
    let ids = crate::api::parse_ids(record_ids)?;
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            format!("limit must be between 1 and {max}, got {limit}"),
        ));
    }
    let served = state
        .cross_sell_models
        .get()
        .map_err(crate::api::unavailable)?;
    let history = recent_purchases(state, &ids).await?;
    Ok(Prepared {
        served,
        history,
        today: day_number(chrono::Utc::now().date_naive()),
        limit,
    })
}

/// The recent purchases (at most [`HISTORY_ORDERS`] orders) of each account, in request order,
/// from the feature store in one call.
async fn recent_purchases(
    state: &AppState,
    ids: &[SalesforceId],
) -> Result<PurchaseHistory, ApiError> {
    let resp = state
        .http
        .post(format!("{}/v1/purchases/history", state.feature_store_url))
        .json(&PurchaseHistoryRequest {
            account_ids: ids.to_vec(),
            max_orders: Some(HISTORY_ORDERS),
            org_id: None,
        })
        .send()
        .await
        .map_err(|e| ApiError::upstream("feature store", e))?;
    let history: PurchaseHistory = read_json(resp)
        .await
        .map_err(|e| ApiError::upstream("feature store", e))?;
    if history.accounts.len() != ids.len() {
        return Err(ApiError::upstream(
            "feature store",
            format!(
                "answered {} accounts for {} asked",
                history.accounts.len(),
                ids.len()
            ),
        ));
    }
    Ok(history)
}

/// An account's orders as the model reads them.
fn past_orders(orders: &[sextant_contracts::api::PurchasedOrder]) -> Vec<PastOrder> {
    orders
        .iter()
        .map(|o| PastOrder {
            day: day_number(o.date),
            items: o.product_ids.clone(),
        })
        .collect()
}
