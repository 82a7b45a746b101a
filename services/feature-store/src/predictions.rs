//! The prediction log and the realised accuracy of each model version.
//!
//! Why here: the gateway has no database, and the outcome of a churn score (did the account buy
//! within the horizon?) is in the store's orders. The gateway posts the scores it served in
//! batches; once a score's horizon has passed, `GET /v1/predictions/realised` judges it against
//! the orders known now (labels may use what is known now, as training labels do) and reports,
//! per week of serving, how many were judged, the realised ROC-AUC and the mean score against the
//! churn rate (calibration). The report reads at most `max_rows` matured predictions, oldest
//! first, a page at a time through the version-time index, and judges each page with one query
//! per (day, horizon): never a scan of the log or of the orders. Old rows are deleted after
//! `prediction_retention_days` by a background sweep.

use std::collections::BTreeMap;

use actix_web::{get, post, web};
use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use sextant_contracts::api::{
    MAX_PREDICTIONS_PER_CALL, PredictionBatch, PredictionBatchResponse, RealisedAccuracy,
    RealisedWeek,
};
use sextant_contracts::{ErrorBody, ErrorCode, ModelVersion, OrgId};
use sextant_service_kit::ApiError;

use crate::AppState;
use crate::migration::DEFAULT_ORG;
use crate::store::{LoggedPrediction, PAGE, micros};

/// The default and largest number of matured predictions one report reads.
const DEFAULT_ROWS: usize = 50_000;
const MAX_ROWS: usize = 200_000;

fn org_of(org: Option<&OrgId>) -> String {
    org.map_or_else(|| DEFAULT_ORG.to_owned(), ToString::to_string)
}

/// Logs churn scores the gateway served (idempotent: a prediction already logged is skipped).
#[utoipa::path(
    request_body = PredictionBatch,
    responses(
        (status = 200, description = "Logged", body = PredictionBatchResponse),
        (status = 400, description = "No predictions (empty_request), over 1000 (too_many_records), a score outside 0..1 or a horizon outside 1..730 (invalid_parameter), malformed body (invalid_json)", body = ErrorBody),
    )
)]
#[post("/v1/predictions")]
pub async fn log_predictions(
    state: web::Data<AppState>,
    req: web::Json<PredictionBatch>,
) -> Result<web::Json<PredictionBatchResponse>, ApiError> {
    let req = req.into_inner();
    if req.predictions.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::EmptyRequest,
            "predictions is empty",
        ));
    }
    if req.predictions.len() > MAX_PREDICTIONS_PER_CALL {
        return Err(ApiError::bad_request(
            ErrorCode::TooManyRecords,
            format!(
                "at most {MAX_PREDICTIONS_PER_CALL} predictions per call, got {}",
                req.predictions.len()
            ),
        ));
    }
    let mut rows = Vec::with_capacity(req.predictions.len());
    for (i, p) in req.predictions.iter().enumerate() {
        if !(0.0..=1.0).contains(&p.score) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                format!("predictions[{i}].score {} is not in 0..1", p.score),
            ));
        }
        if !(1..=730).contains(&p.horizon_days) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                format!(
                    "predictions[{i}].horizon_days {} is not in 1..730",
                    p.horizon_days
                ),
            ));
        }
        rows.push(LoggedPrediction {
            account_id: p.account_id.to_string(),
            model_version: p.model_version.to_string(),
            scored_us: micros(p.scored_at),
            score: p.score,
            band: p.band.clone(),
            action: p.action.clone(),
            horizon_days: i32::try_from(p.horizon_days).unwrap_or(i32::MAX),
        });
    }
    let stored = state
        .store
        .log_predictions(&org_of(req.org_id.as_ref()), &rows)
        .await
        .map_err(|e| ApiError::internal("database", e))?;
    Ok(web::Json(PredictionBatchResponse { stored }))
}

/// Which model's realised accuracy to report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RealisedQuery {
    /// The model version, e.g. `churn-v3`.
    #[param(value_type = ModelVersion)]
    model_version: String,
    /// The most matured predictions to read, 1..=200000 (default 50000), oldest first.
    #[param(minimum = 1, maximum = 200_000)]
    max_rows: Option<usize>,
    /// The org; the default org when absent.
    #[param(value_type = Option<String>, pattern = "^00D[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$", format = "salesforce-org-id")]
    org_id: Option<OrgId>,
}

/// ROC-AUC by ranks (Mann–Whitney, ties averaged); `None` without both outcomes.
fn roc_auc(pairs: &mut [(f64, bool)]) -> Option<f64> {
    let positives = pairs.iter().filter(|p| p.1).count();
    let negatives = pairs.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j + 1 < pairs.len() && pairs[j + 1].0 == pairs[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let mean_rank = (i + j + 2) as f64 / 2.0;
        rank_sum += mean_rank * pairs[i..=j].iter().filter(|p| p.1).count() as f64;
        i = j + 1;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// How a model version's served churn scores turned out: for each week of serving, the
/// predictions whose horizon has passed (as of the store's today), how many of those accounts
/// churned (no purchase within the horizon), the realised ROC-AUC, and the mean score against
/// the churn rate.
#[utoipa::path(
    params(RealisedQuery),
    responses(
        (status = 200, description = "Realised accuracy by week of serving", body = RealisedAccuracy),
        (status = 400, description = "Malformed model version or max_rows out of 1..=200000 (invalid_parameter)", body = ErrorBody),
    )
)]
#[get("/v1/predictions/realised")]
pub async fn realised(
    state: web::Data<AppState>,
    query: web::Query<RealisedQuery>,
) -> Result<web::Json<RealisedAccuracy>, ApiError> {
    let version = ModelVersion::parse(&query.model_version)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidParameter, e.to_string()))?;
    let max_rows = query.max_rows.unwrap_or(DEFAULT_ROWS);
    if !(1..=MAX_ROWS).contains(&max_rows) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            format!("max_rows must be between 1 and {MAX_ROWS}"),
        ));
    }
    let org = org_of(query.org_id.as_ref());
    let today = state.today();
    // Served before today's start, and matured: day served + horizon ≤ today (checked per row).
    let before = micros(Utc.from_utc_datetime(&today.and_hms_opt(0, 0, 0).unwrap_or_default()));
    let mut weeks: BTreeMap<NaiveDate, Vec<(f64, bool)>> = BTreeMap::new();
    let mut after: Option<(i64, String)> = None;
    let mut read = 0usize;
    let mut truncated = false;
    loop {
        let page = state
            .store
            .predictions_page(&org, &version.to_string(), before, after.clone(), PAGE)
            .await
            .map_err(|e| ApiError::internal("database", e))?;
        let Some(last) = page.last() else { break };
        after = Some((last.scored_us, last.account_id.clone()));
        let full = page.len() == PAGE;
        // Judge the matured ones, one query per (day served, horizon).
        let mut groups: BTreeMap<(NaiveDate, i32), Vec<&LoggedPrediction>> = BTreeMap::new();
        for p in &page {
            let day = Utc
                .timestamp_micros(p.scored_us)
                .single()
                .map_or(today, |t| t.date_naive());
            if day + Duration::days(i64::from(p.horizon_days)) <= today {
                groups.entry((day, p.horizon_days)).or_default().push(p);
            }
        }
        for ((day, horizon), rows) in groups {
            if read >= max_rows {
                truncated = true;
                break;
            }
            let rows = &rows[..rows.len().min(max_rows - read)];
            let accounts: Vec<String> = rows.iter().map(|p| p.account_id.clone()).collect();
            let bought = state
                .store
                .purchased_within(&org, &accounts, day, u32::try_from(horizon).unwrap_or(0))
                .await
                .map_err(|e| ApiError::internal("database", e))?;
            let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
            let week = weeks.entry(monday).or_default();
            for p in rows {
                week.push((p.score, !bought.contains(&p.account_id)));
            }
            read += rows.len();
        }
        if truncated || read >= max_rows {
            truncated = truncated || full;
            break;
        }
        if !full {
            break;
        }
    }
    let weeks = weeks
        .into_iter()
        .map(|(week_start, mut pairs)| {
            let n = pairs.len();
            let churned = pairs.iter().filter(|p| p.1).count();
            let mean_score = pairs.iter().map(|p| p.0).sum::<f64>() / n.max(1) as f64;
            RealisedWeek {
                week_start,
                predictions: n as u64,
                churned: churned as u64,
                roc_auc: roc_auc(&mut pairs),
                mean_score,
                churn_rate: churned as f64 / n.max(1) as f64,
            }
        })
        .collect();
    Ok(web::Json(RealisedAccuracy {
        model_version: version,
        as_of: today,
        weeks,
        rows_read: read as u64,
        truncated,
    }))
}

/// Deletes logged predictions older than `retention_days`, now and then every hour.
pub async fn sweep(state: std::sync::Arc<AppState>, retention_days: u32) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let cut = state.clock.now() - Duration::days(i64::from(retention_days));
        match state.store.purge_predictions(micros(cut)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, retention_days, "Old predictions deleted."),
            Err(e) => tracing::error!(error = %e, "Prediction retention sweep failed."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_by_ranks_handles_ties_and_one_class() {
        let mut perfect = vec![(0.9, true), (0.8, true), (0.2, false), (0.1, false)];
        assert_eq!(roc_auc(&mut perfect), Some(1.0));
        let mut reversed = vec![(0.1, true), (0.9, false)];
        assert_eq!(roc_auc(&mut reversed), Some(0.0));
        let mut tied = vec![(0.5, true), (0.5, false)];
        assert_eq!(roc_auc(&mut tied), Some(0.5));
        let mut one_class = vec![(0.5, true), (0.7, true)];
        assert_eq!(roc_auc(&mut one_class), None);
    }
}
