//! HTTP handlers and the OpenAPI description of the gateway.

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use sextant_contracts::api::{
    ClvEstimate, ClvUnavailable, FeatureRow, Health, MAX_RECORDS_PER_CALL,
    MAX_SENTIMENT_TEXT_CHARS, OnlineFeatures, OnlineFeaturesRequest, PredictionRecord,
    PropensityRecordError, PropensityScore, PropensityScoreRequest, PropensityScoreResponse,
    RecordClv, RecordError, RecordScore, ScoreRequest, ScoreResponse, SentimentRequest,
    SentimentResponse, TextSentiment,
};
use sextant_contracts::{ErrorBody, ErrorCode, SalesforceId};
use sextant_models::ModelError;
use sextant_models::action_policy::ActionPolicy;
use sextant_models::churn_serving::{CustomerInput, ServedChurnModel};
use sextant_models::clv::serving::{BtydLayout, ClvArtifact, ValueHorizon};
use sextant_service_kit::ApiError;
use sextant_service_kit::http::read_json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::model_cache::ModelUnavailable;
use crate::rate_limit::LimitedCaller;

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
    paths(
        scores,
        sentiment,
        propensity_scores,
        crate::cross_sell::cross_sell,
        crate::cross_sell::next_category,
        healthz,
        readyz
    ),
    modifiers(&BearerJwt)
)]
struct ApiDoc;

/// The OpenAPI document of this service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(scores)
        .service(sentiment)
        .service(propensity_scores)
        .service(crate::cross_sell::cross_sell)
        .service(crate::cross_sell::next_category)
        .service(healthz)
        .service(readyz);
}

/// A model family with nothing to serve: 503 `no_model` when the trainer has none, 502 when it
/// could not be asked and nothing is cached.
pub(crate) fn unavailable(e: ModelUnavailable) -> ApiError {
    match e {
        ModelUnavailable::NoModel(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NoModel,
            e.to_string(),
        ),
        ModelUnavailable::Upstream(detail) => ApiError::upstream("trainer", detail),
    }
}

/// Parses and de-duplicates the requested ids (request order kept); any invalid id refuses
/// the whole call, naming the first offender.
pub(crate) fn parse_ids(raw: &[String]) -> Result<Vec<SalesforceId>, ApiError> {
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
        // Exactly as sent: the documented pattern has no surrounding blanks.
        let id = SalesforceId::parse(r)
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
///
/// With the sequence model each score carries its risk `band` (thresholds chosen at training
/// time: the riskiest fifth of the training customers is `high`, the next three tenths
/// `medium`), the three `factors` that moved it most (occlusion: each feature or block of weeks
/// set to its typical training value; `direction` raises_risk / lowers_risk; `text` compares the
/// actual value with the typical one) and a `next_best_action` from a rule table over the band
/// and the top factor. A model stored before bands existed answers bare scores.
///
/// Each score also carries `clv`: with a current CLV model, `status: available` with the
/// expected value over the configured horizon (`horizon_months`, `discount_rate_annual`),
/// P(alive), expected purchases and spend, the value tier and the CLV model's version; without
/// one (or when it cannot value the account), `status: unavailable` with the `reason` — never a
/// zero. The `next_best_action` then comes from the configured policy over band × value tier,
/// with `expected_value` (CLV at stake or kept); without a CLV it is the churn model's action.
/// Accounts without purchase history are listed in `errors` (`no_history`) with the onboarding
/// action.
#[utoipa::path(
    request_body = ScoreRequest,
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "One score per known record, with its CLV or why it is unavailable; unknown records and records without history (with the onboarding action) are listed in errors", body = ScoreResponse),
        (status = 400, description = "empty_request, too_many_records, invalid_record_id or invalid_json", body = ErrorBody),
        (status = 401, description = "Missing or invalid JWT (code unauthorized): bad signature, unknown kid, expired, lifetime too long, algorithm not accepted", body = ErrorBody),
        (status = 429, description = "The caller (JWT sub) exceeded its rate limit (code rate_limited); retry after the Retry-After seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Whole seconds (at least 1) until the caller may call again"))),
        (status = 502, description = "Feature store or trainer unavailable, or their answers do not fit the model", body = ErrorBody),
        (status = 503, description = "No model trained yet (code no_model)", body = ErrorBody),
    )
)]
#[post("/v1/scores")]
async fn scores(
    state: web::Data<AppState>,
    LimitedCaller(caller): LimitedCaller,
    req: web::Json<ScoreRequest>,
) -> Result<web::Json<ScoreResponse>, ApiError> {
    let ids = parse_ids(&req.record_ids)?;
    let model = state.models.get().map_err(unavailable)?;
    let resp = state
        .http
        .post(format!("{}/v1/features/online", state.feature_store_url))
        .json(&OnlineFeaturesRequest {
            account_ids: ids.clone(),
            include_sequences: model.needs_sequences(),
            org_id: None,
        })
        .send()
        .await
        .map_err(|e| ApiError::upstream("feature store", e))?;
    let features: OnlineFeatures = read_json(resp)
        .await
        .map_err(|e| ApiError::upstream("feature store", e))?;
    if features.feature_names != model.feature_names() {
        return Err(ApiError::upstream(
            "feature store",
            format!(
                "serves features {:?}, model {} expects {:?}",
                features.feature_names,
                model.version(),
                model.feature_names()
            ),
        ));
    }
    if let ServedChurnModel::Sequence(m) = &*model
        && features.sequence_channels != m.sequence_channels
    {
        return Err(ApiError::upstream(
            "feature store",
            format!(
                "serves weekly channels {:?}, model {} expects {:?}",
                features.sequence_channels, m.version, m.sequence_channels
            ),
        ));
    }
    let mut rows: HashMap<SalesforceId, FeatureRow> = features
        .rows
        .into_iter()
        .map(|r| (r.account_id.clone(), r))
        .collect();
    let mut scorable = Vec::with_capacity(ids.len());
    let mut errors = Vec::new();
    for id in ids {
        match rows.remove(&id) {
            Some(row) if row.features.is_some() => scorable.push(row),
            Some(_) => errors.push(RecordError {
                record_id: id,
                code: ErrorCode::NoHistory,
                message: "the account has no purchase history yet: there is nothing to score it on"
                    .into(),
                next_best_action: Some(state.policy.onboarding()),
            }),
            None => errors.push(RecordError {
                record_id: id,
                code: ErrorCode::NotFound,
                message: "no such account in the feature store (not synced yet?)".into(),
                next_best_action: None,
            }),
        }
    }
    let version = model.version().clone();
    let bands = match &*model {
        ServedChurnModel::Sequence(m) => m.bands.clone(),
        ServedChurnModel::Mlp(_) => Vec::new(),
    };
    // The CLV model is optional: without it (or when it cannot read these features) every
    // record says why, and the churn score is served as usual.
    let clv = state
        .clv_models
        .get()
        .map_err(|e| e.to_string())
        .and_then(|m| {
            if m.feature_set != features.feature_set {
                return Err(format!(
                    "CLV model {} reads feature set {}, the feature store serves {}",
                    m.version, m.feature_set, features.feature_set
                ));
            }
            let layout = BtydLayout::new(&features.feature_set, &features.feature_names)
                .map_err(|e| e.to_string())?;
            Ok((m, layout))
        });
    // A shadow (challenger) scores the same rows after the answer, off the request path.
    let shadow = state.shadow_models.get().ok().filter(|sh| {
        sh.version() != model.version() && sh.feature_names() == model.feature_names()
    });
    let shadow_rows = shadow.as_ref().map(|_| scorable.clone());
    // The label window the log judges each score by; models stored before sequences had none.
    let log_horizon = match &*model {
        ServedChurnModel::Sequence(m) => Some(m.horizon_days),
        ServedChurnModel::Mlp(_) => None,
    };
    let horizon = state.clv_horizon;
    let policy = state.policy.clone();
    let inline = scorable.len() <= INLINE_RECORDS;
    let work = move || {
        let values = value_rows(&clv, &scorable, &horizon);
        score_rows(&model, &scorable, values, &policy)
    };
    let scored = if inline {
        // As the blocking pool would, a panic fails this request, not the worker's others.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .map_err(|_| ApiError::internal("scoring", "the scoring code panicked"))?
    } else {
        web::block(work)
            .await
            .map_err(|e| ApiError::internal("scoring task", e))?
    }
    .map_err(|e| match e {
        ModelError::Width { .. } => ApiError::upstream(
            "feature store",
            format!("a feature row does not fit model {version}: {e}"),
        ),
        other => ApiError::internal("scoring", other),
    })?;
    if let Some(horizon_days) = log_horizon {
        let now = chrono::Utc::now();
        for s in &scored {
            state.prediction_log.record(PredictionRecord {
                account_id: s.record_id.clone(),
                model_version: version.clone(),
                scored_at: now,
                score: s.score,
                band: s.band.map(|b| b.as_str().to_owned()),
                action: s.next_best_action.as_ref().map(|a| a.code.clone()),
                horizon_days,
            });
        }
    }
    tracing::info!(caller = caller.sub.as_deref().unwrap_or("-"), scored = scored.len(), unscored = errors.len(), version = %version, "Scored records.");
    if let (Some(sh), Some(rows)) = (shadow, shadow_rows) {
        crate::shadow::score_in_background(&state, sh, rows);
    }
    Ok(web::Json(ScoreResponse {
        model_version: version,
        scores: scored,
        errors,
        bands,
    }))
}

/// Calls with at most this many records are scored on the worker that took the request (a
/// record with its explanations and CLV is 0.1–0.25 ms of CPU): the hand-off to the blocking
/// pool and back costs two thread switches, a good part of the scoring itself. Larger calls go
/// to the pool, so that a 200-record call never holds a worker. A panic in inline scoring is
/// caught and fails that request only, as the pool would.
const INLINE_RECORDS: usize = 2;

/// Threads one scoring call uses (the occlusion passes of 200 records are worth splitting).
fn scoring_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// The CLV of each row (in order), or why there is none.
fn value_rows(
    clv: &Result<(std::sync::Arc<ClvArtifact>, BtydLayout), String>,
    rows: &[FeatureRow],
    horizon: &ValueHorizon,
) -> Vec<RecordClv> {
    let unavailable = |reason: String| RecordClv::Unavailable(ClvUnavailable { reason });
    let (model, layout) = match clv {
        Ok(pair) => pair,
        Err(why) => {
            return rows
                .iter()
                .map(|_| unavailable(format!("no CLV: {why}")))
                .collect();
        }
    };
    let tier_horizon = model.tier_horizon();
    rows.iter()
        .map(|r| {
            let estimate = (|| {
                let features = r.features.as_deref().unwrap_or_default();
                let (summary, spend) = layout.summary(features)?;
                let v = model.value(&summary, &spend, horizon)?;
                let at_tier = if tier_horizon == *horizon {
                    v.value
                } else {
                    model.value(&summary, &spend, &tier_horizon)?.value
                };
                // A value stands without its reasons: a closed form failing at an occluded
                // input loses the factors (said in the log), never the value.
                let factors = model
                    .factors(&summary, &spend, horizon, v.value)
                    .unwrap_or_else(|e| {
                        tracing::warn!(
                            model = %model.version,
                            error = %e,
                            "CLV factors could not be computed; the value is served without them"
                        );
                        Vec::new()
                    });
                Ok::<_, sextant_models::clv::serving::ClvServingError>(ClvEstimate {
                    value: v.value,
                    horizon_months: horizon.months,
                    discount_rate_annual: horizon.discount_rate_annual,
                    p_alive: v.p_alive,
                    expected_purchases: v.expected_purchases,
                    expected_spend_per_purchase: v.spend_per_purchase,
                    value_tier: model.tier(at_tier),
                    model_version: model.version.clone(),
                    factors,
                })
            })();
            match estimate {
                Ok(e) => RecordClv::Available(e),
                Err(e) => unavailable(format!(
                    "CLV model {} cannot value this account: {e}",
                    model.version
                )),
            }
        })
        .collect()
}

/// Scores rows that have features, in order: bare scores with an MLP, explained scores with the
/// sequence model; each with its CLV (`values`, in the same order) and, with bands, the
/// policy's next best action.
fn score_rows(
    model: &ServedChurnModel,
    rows: &[FeatureRow],
    values: Vec<RecordClv>,
    policy: &ActionPolicy,
) -> Result<Vec<RecordScore>, ModelError> {
    let no_features: Vec<f64> = Vec::new();
    let no_sequence: Vec<Vec<f64>> = Vec::new();
    match model {
        ServedChurnModel::Mlp(m) => rows
            .iter()
            .zip(values)
            .map(|(r, clv)| {
                Ok(RecordScore {
                    record_id: r.account_id.clone(),
                    score: m.predict(r.features.as_deref().unwrap_or(&no_features))?,
                    band: None,
                    factors: Vec::new(),
                    top_factors: Vec::new(),
                    next_best_action: None,
                    clv: Some(clv),
                })
            })
            .collect(),
        ServedChurnModel::Sequence(m) => {
            let inputs: Vec<CustomerInput<'_>> = rows
                .iter()
                .map(|r| CustomerInput {
                    features: r.features.as_deref().unwrap_or(&no_features),
                    sequence: r.sequence.as_deref().unwrap_or(&no_sequence),
                    category: r.attributes.get(&m.category_attribute).map(String::as_str),
                })
                .collect();
            let explained = m.explain_batch(&inputs, scoring_threads())?;
            Ok(rows
                .iter()
                .zip(explained)
                .zip(values)
                .map(|((r, e), clv)| {
                    let estimate = match &clv {
                        RecordClv::Available(c) => Some(c),
                        RecordClv::Unavailable(_) => None,
                    };
                    let action = policy.decide(e.band, e.score, &e.next_best_action, estimate);
                    RecordScore {
                        record_id: r.account_id.clone(),
                        score: e.score,
                        band: Some(e.band),
                        top_factors: e.factors.clone(),
                        factors: e.factors,
                        next_best_action: Some(action),
                        clv: Some(clv),
                    }
                })
                .collect())
        }
    }
}

/// The sentiment of up to 200 texts (case subjects and descriptions, emails, survey answers)
/// by the current sentiment model — the one the feature store judges cases with — in request
/// order: the most probable class, each class's probability, an intensity from −1 (negative)
/// to 1 (positive), and the (at most three) words that moved it most, by leaving each out.
/// Without a trained sentiment model the call is refused (`no_model`), never
/// answered by a fallback.
#[utoipa::path(
    request_body = SentimentRequest,
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "One result per text, in request order", body = SentimentResponse),
        (status = 400, description = "empty_request (no texts), too_many_records (over 200), invalid_parameter (a blank or over-long text) or invalid_json", body = ErrorBody),
        (status = 401, description = "Missing or invalid JWT (code unauthorized)", body = ErrorBody),
        (status = 429, description = "The caller (JWT sub) exceeded its rate limit (code rate_limited); retry after the Retry-After seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Whole seconds (at least 1) until the caller may call again"))),
        (status = 502, description = "The trainer is unavailable and no sentiment model is cached", body = ErrorBody),
        (status = 503, description = "No sentiment model trained yet (code no_model)", body = ErrorBody),
    )
)]
#[post("/v1/sentiment")]
async fn sentiment(
    state: web::Data<AppState>,
    LimitedCaller(_caller): LimitedCaller,
    req: web::Json<SentimentRequest>,
) -> Result<web::Json<SentimentResponse>, ApiError> {
    let texts = req.into_inner().texts;
    if texts.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::EmptyRequest,
            "texts must name at least one text",
        ));
    }
    if texts.len() > MAX_RECORDS_PER_CALL {
        return Err(ApiError::bad_request(
            ErrorCode::TooManyRecords,
            format!(
                "{} texts; at most {MAX_RECORDS_PER_CALL} per call",
                texts.len()
            ),
        ));
    }
    for (i, t) in texts.iter().enumerate() {
        if t.trim().is_empty() {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                format!("texts[{i}] is blank"),
            ));
        }
        if t.chars().count() > MAX_SENTIMENT_TEXT_CHARS {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                format!("texts[{i}] is longer than {MAX_SENTIMENT_TEXT_CHARS} characters"),
            ));
        }
    }
    let model = state.sentiment_models.get().map_err(unavailable)?;
    let version = model.version.to_string();
    // Validated when the cache loaded it; scoring runs off the request threads.
    let results = web::block(move || {
        texts
            .iter()
            .map(|t| {
                model
                    .artifact
                    .explain_validated(t, 3)
                    .map(|(s, factors)| TextSentiment {
                        label: s.label.name().to_owned(),
                        negative: s.probabilities[0],
                        neutral: s.probabilities[1],
                        positive: s.probabilities[2],
                        intensity: s.intensity.clamp(-1.0, 1.0),
                        factors,
                    })
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| ApiError::internal("sentiment task", e))?
    .map_err(|e| ApiError::internal("sentiment model", e))?;
    Ok(web::Json(SentimentResponse {
        model_version: version,
        results,
    }))
}

/// The likelihood of a prediction definition's outcome for up to 200 records of its object
/// (field → value, like the export the model was trained on), each with its strongest factors in
/// the record's own values ("StageName = Negotiation raises the likelihood of IsWon = true by
/// 12.3 points (typical: Prospecting)"). A record that cannot be scored (text in a numeric field)
/// is listed in `errors` with its index; the others are scored. A definition without a trained
/// model — or one created on the trainer since the gateway last listed them (every refresh
/// interval) — is answered `no_model`.
#[utoipa::path(
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_]{0,39}$", description = "Prediction definition name, e.g. upsell")),
    request_body = PropensityScoreRequest,
    security(("bearer_jwt" = [])),
    responses(
        (status = 200, description = "Scores in request order, and the records that could not be scored", body = PropensityScoreResponse),
        (status = 400, description = "empty_request, too_many_records or invalid_json", body = ErrorBody),
        (status = 401, description = "Missing or invalid JWT (code unauthorized)", body = ErrorBody),
        (status = 404, description = "No model for this definition (code no_model)", body = ErrorBody),
        (status = 429, description = "The caller (JWT sub) exceeded its rate limit (code rate_limited); retry after the Retry-After seconds", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Whole seconds (at least 1) until the caller may call again"))),
        (status = 502, description = "The trainer is unavailable and the definition's model is not cached", body = ErrorBody),
    )
)]
#[post("/v1/propensity/{name}/scores")]
async fn propensity_scores(
    state: web::Data<AppState>,
    LimitedCaller(_caller): LimitedCaller,
    name: web::Path<String>,
    req: web::Json<PropensityScoreRequest>,
) -> Result<web::Json<PropensityScoreResponse>, ApiError> {
    let name = name.into_inner();
    let records = req.into_inner().records;
    if records.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::EmptyRequest,
            "records must hold at least one record",
        ));
    }
    if records.len() > MAX_RECORDS_PER_CALL {
        return Err(ApiError::bad_request(
            ErrorCode::TooManyRecords,
            format!(
                "{} records; at most {MAX_RECORDS_PER_CALL} per call",
                records.len()
            ),
        ));
    }
    let no_model = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NoModel,
            format!("no propensity model for definition `{name}` is served yet"),
        )
    };
    let model = state
        .propensity
        .get(&name)
        .ok_or_else(no_model)?
        .get()
        .map_err(|e| match e {
            ModelUnavailable::NoModel(_) => no_model(),
            ModelUnavailable::Upstream(detail) => ApiError::upstream("trainer", detail),
        })?;
    let version = model.version.to_string();
    let (scored, errors) = web::block(move || {
        let mut scored = Vec::new();
        let mut errors = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let record_id = record
                .get("Id")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
            match model
                .artifact
                .explain(record, sextant_models::tabular::TOP_FACTORS)
            {
                Ok(e) => scored.push(PropensityScore {
                    index,
                    record_id,
                    score: e.score,
                    factors: e.factors,
                }),
                Err(e) => errors.push(PropensityRecordError {
                    index,
                    record_id,
                    code: ErrorCode::InvalidRecord,
                    message: e.to_string(),
                }),
            }
        }
        (scored, errors)
    })
    .await
    .map_err(|e| ApiError::internal("propensity task", e))?;
    Ok(web::Json(PropensityScoreResponse {
        definition: name,
        model_version: version,
        scores: scored,
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
