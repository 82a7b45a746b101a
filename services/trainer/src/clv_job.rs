//! The CLV training run: BTYD summaries of every account from a point-in-time training set, the
//! purchase model (BG/NBD, or the model it degenerates to, with the reason) and Gamma-Gamma
//! fitted by maximum likelihood, evaluated on the purchases of the label window, and compared
//! with the current CLV model on the same evaluation.
//!
//! # Protocol
//! - **One stream, two cut-offs.** The job asks the feature store for a training set at the
//!   calibration cut-off `D` and at the end of the holdout window `E = D + horizon` (with a
//!   one-day label window, whose label is ignored). Each account's summary `(x, t_x, T)` and mean
//!   spend come from its `rfmt-v2` vector at `D` (the mapping, exact except for the mean spend, is
//!   in [`sextant_models::clv::serving`]); its holdout purchases (purchase *days* in `[D, E)`)
//!   are the difference of its purchase days at `E` and at `D`. Late-known orders dated before
//!   `D` but known only after it count as holdout purchases, and a purchase cancelled in the
//!   window lowers the count (clamped at 0): both are rare and said here rather than hidden.
//! - **Bounded memory.** The store sends a page of accounts at `D` and then the same page at `E`,
//!   so only one page of calibration rows waits for its partner; a row is reduced at once to its
//!   summary. What is kept per account is the summary (3 × f64), the mean spend and the holdout
//!   count (f32 each): 32 bytes, so 25 million accounts hold about 800 MB, and the evaluation adds
//!   a score and a label per account (about 225 MB more at that size). Nothing else of a row is
//!   kept. The fit itself works on the distinct summaries (whole days make them repeat);
//!   Pareto/NBD is fitted only when BG/NBD degenerates.
//! - **Evaluation.** On the holdout window: the mean absolute error of the predicted purchases,
//!   and the ROC-AUC of P(any purchase) against whether one happened.
//! - **Gate.** The current CLV model predicts the same accounts' holdout purchases from the same
//!   summaries; the candidate is promoted when its MAE is at most the current model's (lower is
//!   better), and otherwise kept as a candidate with the reason and both figures.
//! - **Tiers.** Value tiers are quantiles of the training accounts' CLV at the configured
//!   horizon and rate, computed on an evenly spaced sample of at most `max_tier_sample` accounts
//!   (each value needs a month-by-month sum of closed forms).

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration, NaiveDate};
use serde_json::json;
use sextant_contracts::api::{
    ClvMetrics, PromotionDecision, TrainingRow, TrainingSetHeader, TrainingSetLine,
    TrainingSetRequest,
};
use sextant_contracts::{ModelVersion, SalesforceId};
use sextant_models::clv::serving::{
    BtydLayout, CLV_KIND, ClvArtifact, PurchaseParams, REQUIRED_FEATURES, SpendParams,
    TypicalCustomer, ValueHorizon, fit_tiers, p_any_purchase, value_of,
};
use sextant_models::clv::{
    PurchaseModel, Spend, Summary, fit_purchase_models_lazily, frequency_bins, gamma_gamma,
    plot::holdout_bins_svg,
};
use sextant_models::metrics::roc_auc;

use crate::registry::{Clv, Publication};

/// Settings of one CLV job.
#[derive(Debug, Clone, PartialEq)]
pub struct ClvJobConfig {
    /// The horizon the value tiers are computed at.
    pub tier_horizon_months: u32,
    /// The yearly discount rate the value tiers are computed at.
    pub tier_discount_rate_annual: f64,
    /// Most accounts valued to place the tier thresholds.
    pub max_tier_sample: usize,
    /// Most accounts (share of the calibration set) allowed to lack a row at the window's end
    /// before the set is refused as inconsistent.
    pub max_missing_share: f64,
    /// Fewest accounts a fit needs.
    pub min_accounts: usize,
}

impl Default for ClvJobConfig {
    fn default() -> Self {
        Self {
            tier_horizon_months: 12,
            tier_discount_rate_annual: 0.10,
            max_tier_sample: 200_000,
            max_missing_share: 0.05,
            min_accounts: 20,
        }
    }
}

/// Why a CLV job could not produce a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClvJobError {
    /// The feature store failed or sent a malformed, truncated or inconsistent stream.
    #[error("training set: {0}")]
    TrainingSet(String),
    /// Too few accounts or repeat buyers to fit.
    #[error("insufficient data: {0}")]
    InsufficientData(String),
    /// A model could not be fitted or used.
    #[error("fit: {0}")]
    Fit(String),
}

/// The training-set request of a job: the calibration cut-off and the end of the holdout
/// window, in that order (the store streams each page of accounts at both, in request order).
#[must_use]
pub fn request(cutoff: NaiveDate, horizon_days: u32) -> TrainingSetRequest {
    TrainingSetRequest {
        cutoffs: vec![cutoff, window_end(cutoff, horizon_days)],
        examples: Vec::new(),
        horizon_days: 1,
        include_sequences: false,
        org_id: None,
    }
}

/// `cutoff + horizon_days`.
#[must_use]
pub fn window_end(cutoff: NaiveDate, horizon_days: u32) -> NaiveDate {
    cutoff + Duration::days(i64::from(horizon_days))
}

/// The reduced training set.
#[derive(Debug, Clone, Default)]
pub struct ClvSet {
    pub summaries: Vec<Summary>,
    /// Mean spend per purchase day (see the module docs), per account.
    pub spend: Vec<f32>,
    /// Purchase days in the holdout window, per account.
    pub holdout: Vec<f32>,
    /// Calibration accounts without a row at the window's end.
    pub missing: u64,
    pub header: Option<TrainingSetHeader>,
    pub fingerprint: String,
    pub calibration: NaiveDate,
    pub window_end: NaiveDate,
}

/// Reads the stream line by line, pairing each account's calibration row with its row at the
/// window's end (see the module docs).
#[derive(Debug)]
pub struct ClvSetReader {
    pending: Vec<u8>,
    layout: Option<BtydLayout>,
    /// Calibration rows of the current page waiting for their row at the window's end:
    /// summary, mean spend.
    open: HashMap<SalesforceId, (Summary, f64)>,
    last_was_end: bool,
    set: ClvSet,
    trailer: Option<u64>,
    rows_seen: u64,
}

impl ClvSetReader {
    /// A reader for the set of [`request`]`(calibration, horizon)`.
    #[must_use]
    pub fn new(calibration: NaiveDate, window_end: NaiveDate) -> Self {
        Self {
            pending: Vec::new(),
            layout: None,
            open: HashMap::new(),
            last_was_end: false,
            set: ClvSet {
                calibration,
                window_end,
                ..ClvSet::default()
            },
            trailer: None,
            rows_seen: 0,
        }
    }

    /// Feeds bytes; complete lines are parsed.
    ///
    /// # Errors
    /// A malformed line, a row before the header or after the trailer, an error line, a row at
    /// an unexpected cut-off, features that do not give a summary.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), ClvJobError> {
        let bad = ClvJobError::TrainingSet;
        self.pending.extend_from_slice(bytes);
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            let line = &line[..line.len() - 1];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if self.trailer.is_some() {
                return Err(bad("data after the trailer".into()));
            }
            let parsed: TrainingSetLine =
                serde_json::from_slice(line).map_err(|e| bad(format!("bad line: {e}")))?;
            match parsed {
                TrainingSetLine::Header(h) => {
                    if self.layout.is_some() {
                        return Err(bad("second header".into()));
                    }
                    self.layout = Some(
                        BtydLayout::new(&h.feature_set, &h.feature_names)
                            .map_err(|e| bad(e.to_string()))?,
                    );
                    self.set.header = Some(h);
                }
                TrainingSetLine::Row(r) => self.row(&r)?,
                TrainingSetLine::Trailer(t) => {
                    self.trailer = Some(t.rows);
                    self.set.fingerprint = t.fingerprint;
                }
                TrainingSetLine::Error(e) => {
                    return Err(bad(format!(
                        "the feature store failed mid-stream: {} {}",
                        e.code.as_str(),
                        e.message
                    )));
                }
            }
        }
        Ok(())
    }

    fn flush_open(&mut self) {
        self.set.missing += self.open.len() as u64;
        self.open.clear();
    }

    fn row(&mut self, r: &TrainingRow) -> Result<(), ClvJobError> {
        let bad = ClvJobError::TrainingSet;
        let layout = self
            .layout
            .ok_or_else(|| bad("row before the header".into()))?;
        self.rows_seen += 1;
        let (summary, spend) = layout
            .summary(&r.features)
            .map_err(|e| bad(format!("account {} at {}: {e}", r.account_id, r.cutoff)))?;
        if r.cutoff == self.set.calibration {
            if self.last_was_end {
                // A new page began: what is still open has no row at the window's end.
                self.flush_open();
                self.last_was_end = false;
            }
            self.open
                .insert(r.account_id.clone(), (summary, spend.mean));
        } else if r.cutoff == self.set.window_end {
            self.last_was_end = true;
            if let Some((s, mean)) = self.open.remove(&r.account_id) {
                let holdout = (summary.x - s.x).max(0.0);
                self.set.summaries.push(s);
                self.set.spend.push(mean as f32);
                self.set.holdout.push(holdout as f32);
            }
            // Else the account's first purchase is in the window: not in the calibration set.
        } else {
            return Err(bad(format!(
                "row at cut-off {}, expected {} or {}",
                r.cutoff, self.set.calibration, self.set.window_end
            )));
        }
        Ok(())
    }

    /// The reduced set, once the trailer has arrived and its row count matches.
    ///
    /// # Errors
    /// A truncated stream, a row count that does not match, too many accounts without a row at
    /// the window's end (the store did not stream the pages as this reader expects).
    pub fn finish(mut self, max_missing_share: f64) -> Result<ClvSet, ClvJobError> {
        let bad = ClvJobError::TrainingSet;
        if self.set.header.is_none() {
            return Err(bad("no header".into()));
        }
        let rows = self
            .trailer
            .ok_or_else(|| bad("the stream ended without its trailer (truncated)".into()))?;
        if rows != self.rows_seen {
            return Err(bad(format!(
                "trailer says {rows} rows, {} arrived",
                self.rows_seen
            )));
        }
        self.flush_open();
        let kept = self.set.summaries.len() as u64;
        let total = kept + self.set.missing;
        if total > 0 && self.set.missing as f64 > max_missing_share * total as f64 {
            return Err(bad(format!(
                "{} of {total} accounts at {} have no row at {}: more than {:.0}% (the store must stream each page at both cut-offs)",
                self.set.missing,
                self.set.calibration,
                self.set.window_end,
                max_missing_share * 100.0
            )));
        }
        Ok(self.set)
    }
}

/// Streams the set of a job from the feature store.
///
/// # Errors
/// [`ClvJobError::TrainingSet`] when the store is unreachable, refuses, or streams a bad set.
pub async fn fetch(
    http: &sextant_service_kit::internal_auth::InternalClient,
    feature_store_url: &str,
    cutoff: NaiveDate,
    horizon_days: u32,
    config: &ClvJobConfig,
) -> Result<ClvSet, ClvJobError> {
    let bad = ClvJobError::TrainingSet;
    let mut resp = http
        .post(format!("{feature_store_url}/v1/training-sets"))
        .json(&request(cutoff, horizon_days))
        .send()
        .await
        .map_err(|e| bad(format!("feature store unreachable: {e}")))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(bad(format!("feature store answered {status}: {body}")));
    }
    let mut reader = ClvSetReader::new(cutoff, window_end(cutoff, horizon_days));
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| bad(format!("feature store stream: {e}")))?
    {
        reader.push(&chunk)?;
    }
    reader.finish(config.max_missing_share)
}

/// A purchase model's figures on the holdout window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HoldoutFigures {
    pub mae: f64,
    pub mean_predicted: f64,
    pub auc_any_purchase: Option<f64>,
}

/// Evaluates `model` on the set's holdout window (weeks `holdout_weeks`).
///
/// # Errors
/// [`ClvJobError::Fit`] when a closed form fails for an account.
pub fn evaluate(
    model: &PurchaseModel,
    set: &ClvSet,
    holdout_weeks: f64,
) -> Result<HoldoutFigures, ClvJobError> {
    let n = set.summaries.len().max(1) as f64;
    let mut abs = 0.0;
    let mut predicted_sum = 0.0;
    let mut scores = Vec::with_capacity(set.summaries.len());
    let mut labels = Vec::with_capacity(set.summaries.len());
    for (s, actual) in set.summaries.iter().zip(&set.holdout) {
        let fail = |e: sextant_models::clv::ClvError| {
            ClvJobError::Fit(format!(
                "{} at x={}, t_x={:.2}, T={:.2}: {e}",
                model.name(),
                s.x,
                s.t_x,
                s.t
            ))
        };
        let predicted = model
            .conditional_expected_purchases(s, holdout_weeks)
            .map_err(fail)?;
        abs += (predicted - f64::from(*actual)).abs();
        predicted_sum += predicted;
        scores.push(p_any_purchase(model, s, holdout_weeks).map_err(fail)?);
        labels.push(*actual > 0.0);
    }
    Ok(HoldoutFigures {
        mae: abs / n,
        mean_predicted: predicted_sum / n,
        auc_any_purchase: roc_auc(&scores, &labels),
    })
}

/// The fitted model with what the registry and the gate need.
#[derive(Debug, Clone)]
pub struct TrainedClv {
    pub publication: Publication<Clv>,
    pub metrics: ClvMetrics,
    pub config: BTreeMap<String, serde_json::Value>,
    pub fingerprint: String,
    /// The current model's figures on the same evaluation, or why there are none.
    pub current: Result<HoldoutFigures, String>,
}

/// Fits and evaluates the CLV model on `set` (see the module docs).
///
/// # Errors
/// [`ClvJobError::InsufficientData`] for too few accounts or no repeat buyer;
/// [`ClvJobError::Fit`] when no purchase model is usable or the spend model has no finite mean.
pub fn fit(
    set: &ClvSet,
    config: &ClvJobConfig,
    version: ModelVersion,
    current: Option<&ClvArtifact>,
) -> Result<TrainedClv, ClvJobError> {
    let n = set.summaries.len();
    if n < config.min_accounts {
        return Err(ClvJobError::InsufficientData(format!(
            "{n} accounts have a purchase before {}; a CLV fit needs at least {}",
            set.calibration, config.min_accounts
        )));
    }
    let header = set
        .header
        .as_ref()
        .ok_or_else(|| ClvJobError::TrainingSet("no header".into()))?;
    let holdout_weeks = (set.window_end - set.calibration).num_days() as f64 / 7.0;
    let fits =
        fit_purchase_models_lazily(&set.summaries).map_err(|e| ClvJobError::Fit(e.to_string()))?;
    let chosen = fits.chosen;
    let spends: Vec<Spend> = set
        .summaries
        .iter()
        .zip(&set.spend)
        .map(|(s, m)| Spend {
            x: s.x,
            mean: f64::from(*m),
        })
        .collect();
    let repeat_buyers = spends.iter().filter(|s| s.x > 0.0 && s.mean > 0.0).count();
    let spend_fit = gamma_gamma::fit(&spends).map_err(|e| {
        ClvJobError::InsufficientData(format!("the spend model cannot be fitted: {e}"))
    })?;
    if !spend_fit.usable() || spend_fit.params.q <= 1.0 {
        return Err(ClvJobError::Fit(format!(
            "Gamma-Gamma fit unusable (q = {:.4}, converged {}): {}",
            spend_fit.params.q,
            spend_fit.converged,
            spend_fit
                .degenerate
                .clone()
                .unwrap_or_else(|| "q ≤ 1 gives an infinite mean spend".into())
        )));
    }
    drop(spends);
    let spend_model = spend_fit.params;

    let figures = evaluate(&chosen, set, holdout_weeks)?;
    let current_figures = match current {
        None => Err("no current CLV model".to_owned()),
        Some(c) => evaluate(&c.purchase.model(), set, holdout_weeks).map_err(|e| e.to_string()),
    };

    // Tiers on an evenly spaced sample.
    let tier_horizon = ValueHorizon {
        months: config.tier_horizon_months,
        discount_rate_annual: config.tier_discount_rate_annual,
    };
    let step = n.div_ceil(config.max_tier_sample.max(1)).max(1);
    let mut values = Vec::with_capacity(n / step + 1);
    for i in (0..n).step_by(step) {
        let s = &set.summaries[i];
        let spend = Spend {
            x: s.x,
            mean: f64::from(set.spend[i]),
        };
        let v = value_of(&chosen, &spend_model, s, &spend, &tier_horizon)
            .map_err(|e| ClvJobError::Fit(format!("valuing account {i}: {e}")))?;
        values.push(v.value);
    }
    let tiers = fit_tiers(&values);
    // The typical customer the value factors compare with, from the same sample.
    let typical = TypicalCustomer::from_sample(
        (0..n)
            .step_by(step)
            .map(|i| (&set.summaries[i], f64::from(set.spend[i]))),
    )
    .map_err(|e| tracing::warn!(error = %e, "no typical customer: this CLV model's values will carry no factors"))
    .ok();

    // The holdout chart: actual vs predicted purchases per calibration frequency.
    let frequency: Vec<f64> = set.summaries.iter().map(|s| s.x).collect();
    let actual: Vec<f64> = set.holdout.iter().map(|v| f64::from(*v)).collect();
    let predicted: Vec<f64> = set
        .summaries
        .iter()
        .map(|s| {
            chosen
                .conditional_expected_purchases(s, holdout_weeks)
                .unwrap_or(f64::NAN)
        })
        .collect();
    let bins = frequency_bins(&frequency, &[&actual, &predicted], 7);
    let holdout_svg = holdout_bins_svg(
        &bins,
        &["actual", &format!("{} ({version})", chosen.name())],
        &format!(
            "{version}: purchases in {} – {} by calibration repeat purchases",
            set.calibration, set.window_end
        ),
        "repeat purchase days before the cut-off",
    );
    drop((frequency, actual, predicted));

    let artifact = ClvArtifact {
        kind: CLV_KIND.to_owned(),
        version: version.clone(),
        feature_set: header.feature_set.clone(),
        purchase: PurchaseParams::from(chosen),
        spend: SpendParams::from(spend_model),
        tier_horizon_months: config.tier_horizon_months,
        tier_discount_rate_annual: config.tier_discount_rate_annual,
        tiers: tiers.clone(),
        typical,
    };
    artifact
        .validate()
        .map_err(|e| ClvJobError::Fit(e.to_string()))?;
    let n_f = n as f64;
    let log_likelihood = match chosen {
        PurchaseModel::BgNbd(_) => fits.bgnbd.log_likelihood,
        PurchaseModel::ParetoNbd(_) => fits
            .pareto_nbd
            .as_ref()
            .map_or(f64::NAN, |p| p.log_likelihood),
        PurchaseModel::Nbd(_) => fits.nbd.log_likelihood,
    };
    let metrics = ClvMetrics {
        holdout_mae_purchases: figures.mae,
        holdout_mean_actual: set.holdout.iter().map(|v| f64::from(*v)).sum::<f64>() / n_f,
        holdout_mean_predicted: figures.mean_predicted,
        holdout_auc_any_purchase: figures.auc_any_purchase,
        holdout_purchase_rate: set.holdout.iter().filter(|v| **v > 0.0).count() as f64 / n_f,
        holdout_weeks,
        n_accounts: n as u64,
        n_repeat_buyers: repeat_buyers as u64,
        n_missing_at_window_end: set.missing,
        purchase_model: chosen.name().to_owned(),
        log_likelihood,
    };
    let pareto = match &fits.pareto_nbd {
        Ok(p) => {
            json!({"params": p.params, "log_likelihood": p.log_likelihood, "converged": p.converged, "degenerate": p.degenerate})
        }
        Err(e) => json!({"error": e.to_string()}),
    };
    let config_map = BTreeMap::from([
        ("model".to_owned(), json!(CLV_KIND)),
        ("purchase_model".to_owned(), json!(chosen.name())),
        (
            "fallback".to_owned(),
            if fits.notes.is_empty() {
                json!(null)
            } else {
                json!(fits.notes)
            },
        ),
        (
            "fits".to_owned(),
            json!({
                "bgnbd": {"params": fits.bgnbd.params, "log_likelihood": fits.bgnbd.log_likelihood, "converged": fits.bgnbd.converged, "degenerate": fits.bgnbd.degenerate},
                "pareto_nbd": pareto,
                "nbd": {"params": fits.nbd.params, "log_likelihood": fits.nbd.log_likelihood, "converged": fits.nbd.converged},
                "gamma_gamma": {"params": spend_model, "log_likelihood": spend_fit.log_likelihood, "converged": spend_fit.converged},
            }),
        ),
        ("calibration_cutoff".to_owned(), json!(set.calibration)),
        ("holdout_end".to_owned(), json!(set.window_end)),
        (
            "holdout_days".to_owned(),
            json!((set.window_end - set.calibration).num_days()),
        ),
        ("time_unit".to_owned(), json!("week")),
        ("feature_set".to_owned(), json!(header.feature_set)),
        (
            "summary_mapping".to_owned(),
            json!({
                "features": REQUIRED_FEATURES,
                "T": "tenure_days / 7",
                "t_x": "(tenure_days − recency_days) / 7",
                "x": "round((tenure_days − recency_days) / ipt_mean_days) repeat purchase days; 0 when single_purchase = 1",
                "mean_spend": "monetary_total / (x + 1): includes the first purchase (approximation: Gamma-Gamma is defined on repeat purchases only)",
                "holdout_purchases": "purchase days at the holdout end − purchase days at the cut-off",
            }),
        ),
        (
            "tiers".to_owned(),
            json!({
                "rule": "quantiles of the training accounts' CLV: high ≥ p80, medium ≥ p50",
                "horizon_months": config.tier_horizon_months,
                "discount_rate_annual": config.tier_discount_rate_annual,
                "sampled_accounts": values.len(),
                "thresholds": tiers,
            }),
        ),
        (
            "training_set_fingerprint".to_owned(),
            json!(set.fingerprint),
        ),
        (
            "evaluation".to_owned(),
            json!(format!(
                "holdout {} – {}: MAE of purchase days per account, ROC-AUC of P(any purchase)",
                set.calibration, set.window_end
            )),
        ),
    ]);
    Ok(TrainedClv {
        publication: Publication {
            artifact,
            plots: vec![("holdout.svg", holdout_svg)],
        },
        metrics,
        config: config_map,
        fingerprint: set.fingerprint.clone(),
        current: current_figures,
    })
}

/// The CLV promotion gate: promote when there is no current model, when it cannot be evaluated
/// on the same accounts, or when the candidate's holdout MAE is at most the current model's;
/// otherwise keep the candidate back. The reason gives both MAEs (and ROC-AUCs).
#[must_use]
pub fn gate(
    candidate: &HoldoutFigures,
    current_version: Option<&ModelVersion>,
    current: &Result<HoldoutFigures, String>,
    evaluation: &str,
    decided_at: chrono::DateTime<chrono::Utc>,
) -> PromotionDecision {
    let auc = |a: Option<f64>| a.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.4}"));
    let mae = candidate.mae;
    let (promoted, reason, current_auc) = match (current_version, current) {
        (None, _) => (
            true,
            format!(
                "no current CLV model; holdout MAE {mae:.4}, ROC-AUC {} on {evaluation}",
                auc(candidate.auc_any_purchase)
            ),
            None,
        ),
        (Some(v), Err(why)) => (
            true,
            format!(
                "{v} cannot be compared ({why}); promoted with holdout MAE {mae:.4} on {evaluation}"
            ),
            None,
        ),
        (Some(v), Ok(c)) if mae <= c.mae => (
            true,
            format!(
                "holdout MAE {mae:.4} ≤ {:.4} of {v} on the same evaluation ({evaluation}); ROC-AUC {} vs {}",
                c.mae,
                auc(candidate.auc_any_purchase),
                auc(c.auc_any_purchase)
            ),
            c.auc_any_purchase,
        ),
        (Some(v), Ok(c)) => (
            false,
            format!(
                "holdout MAE {mae:.4} > {:.4} of {v} on the same evaluation ({evaluation}); kept as a candidate",
                c.mae
            ),
            c.auc_any_purchase,
        ),
    };
    PromotionDecision {
        promoted,
        by: "gate".to_owned(),
        reason,
        compared_with: current_version.cloned(),
        candidate_auc: candidate.auc_any_purchase,
        current_auc,
        decided_at,
    }
}

#[cfg(test)]
mod tests {
    use sextant_contracts::api::{TrainingSetLine, TrainingSetTrailer};

    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn id(n: u32) -> SalesforceId {
        SalesforceId::from_parts("001", "ab", u64::from(n))
    }

    fn names() -> Vec<String> {
        [
            "recency_days",
            "tenure_days",
            "frequency",
            "monetary_total",
            "ipt_mean_days",
            "single_purchase",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// A feature row: `days` distinct purchase days, each 10 days apart, the last `recency` days
    /// before the cut-off, 50 spent per day.
    fn features(days: u32, recency: f64) -> Vec<f64> {
        let gaps = f64::from(days.saturating_sub(1));
        let tenure = recency + gaps * 10.0;
        vec![
            recency,
            tenure,
            f64::from(days),
            50.0 * f64::from(days),
            if days > 1 { 10.0 } else { 0.0 },
            if days > 1 { 0.0 } else { 1.0 },
        ]
    }

    fn line(l: &TrainingSetLine) -> String {
        format!("{}\n", serde_json::to_string(l).expect("json"))
    }

    fn row(account: u32, cutoff: NaiveDate, f: Vec<f64>) -> TrainingSetLine {
        TrainingSetLine::Row(TrainingRow {
            account_id: id(account),
            cutoff,
            features: f,
            sequence: None,
            attributes: BTreeMap::new(),
            churned: false,
        })
    }

    fn header(c: &[NaiveDate]) -> TrainingSetLine {
        TrainingSetLine::Header(TrainingSetHeader {
            feature_set: "rfmt-v2".into(),
            feature_names: names(),
            sequence_channels: Vec::new(),
            sequence_weeks: 0,
            horizon_days: 1,
            cutoffs: c.to_vec(),
        })
    }

    #[test]
    fn pages_at_both_cutoffs_are_paired_and_holdout_purchases_counted() {
        let (cal, end) = (d("2011-06-01"), d("2011-08-30"));
        let mut body = line(&header(&[cal, end]));
        // Page 1: accounts 1, 2 at the cut-off, then at the window's end (1 bought twice more,
        // 2 did not; 3 first bought in the window).
        body += &line(&row(1, cal, features(3, 5.0)));
        body += &line(&row(2, cal, features(1, 40.0)));
        body += &line(&row(1, end, features(5, 3.0)));
        body += &line(&row(2, end, features(1, 130.0)));
        body += &line(&row(3, end, features(1, 10.0)));
        // Page 2: account 4 was deleted during the window (no row at its end).
        body += &line(&row(4, cal, features(2, 20.0)));
        body += &line(&row(5, cal, features(2, 20.0)));
        body += &line(&row(5, end, features(3, 1.0)));
        body += &line(&TrainingSetLine::Trailer(TrainingSetTrailer {
            rows: 8,
            fingerprint: "f".into(),
        }));
        let mut reader = ClvSetReader::new(cal, end);
        // Fed in awkward chunks, as a network would.
        for chunk in body.as_bytes().chunks(37) {
            reader.push(chunk).expect("parses");
        }
        let set = reader.finish(0.5).expect("set");
        assert_eq!(set.summaries.len(), 3);
        assert_eq!(set.holdout, vec![2.0, 0.0, 1.0]);
        assert_eq!(set.missing, 1);
        assert_eq!(set.summaries[0].x, 2.0);
        assert_eq!(set.fingerprint, "f");
        // The same set refused when too many accounts lack their partner row.
        let mut reader = ClvSetReader::new(cal, end);
        reader.push(body.as_bytes()).expect("parses");
        let err = reader.finish(0.1).expect_err("too many missing");
        assert!(err.to_string().contains("1 of 4"), "{err}");
    }

    #[test]
    fn truncated_or_unexpected_streams_are_refused() {
        let (cal, end) = (d("2011-06-01"), d("2011-08-30"));
        let mut reader = ClvSetReader::new(cal, end);
        reader
            .push(line(&header(&[cal, end])).as_bytes())
            .expect("header");
        reader
            .push(line(&row(1, cal, features(2, 3.0))).as_bytes())
            .expect("row");
        assert!(
            reader
                .finish(1.0)
                .expect_err("no trailer")
                .to_string()
                .contains("truncated")
        );
        let mut reader = ClvSetReader::new(cal, end);
        reader
            .push(line(&header(&[cal, end])).as_bytes())
            .expect("header");
        let err = reader
            .push(line(&row(1, d("2011-01-01"), features(2, 3.0))).as_bytes())
            .expect_err("other cut-off");
        assert!(err.to_string().contains("2011-01-01"), "{err}");
        let mut reader = ClvSetReader::new(cal, end);
        let mut h = header(&[cal, end]);
        if let TrainingSetLine::Header(h) = &mut h {
            h.feature_names.retain(|n| n != "ipt_mean_days");
        }
        let err = reader.push(line(&h).as_bytes()).expect_err("no ipt");
        assert!(err.to_string().contains("ipt_mean_days"), "{err}");
    }

    #[test]
    fn the_gate_promotes_only_a_model_at_least_as_good_as_the_current_one() {
        let now = chrono::Utc::now();
        let v1 = ModelVersion::parse("clv-v1").expect("v");
        let fig = |mae: f64| HoldoutFigures {
            mae,
            mean_predicted: 1.0,
            auc_any_purchase: Some(0.7),
        };
        let first = gate(&fig(0.5), None, &Err("none".into()), "e", now);
        assert!(first.promoted && first.compared_with.is_none());
        assert!(gate(&fig(0.5), Some(&v1), &Ok(fig(0.6)), "e", now).promoted);
        assert!(
            gate(&fig(0.5), Some(&v1), &Ok(fig(0.5)), "e", now).promoted,
            "a tie"
        );
        let worse = gate(&fig(0.7), Some(&v1), &Ok(fig(0.6)), "e", now);
        assert!(!worse.promoted);
        assert!(
            worse.reason.contains("clv-v1") && worse.reason.contains("0.7000"),
            "{}",
            worse.reason
        );
        assert_eq!(worse.current_auc, Some(0.7));
    }

    /// Simulated BG/NBD customers: the fit recovers a sensible model, its holdout predictions
    /// track the truth, and a deliberately wrong model does worse (the gate keeps it back).
    #[test]
    fn a_fit_on_simulated_customers_beats_a_wrong_model() {
        let (cal, end) = (d("2011-01-01"), d("2011-04-01"));
        let holdout_weeks = (end - cal).num_days() as f64 / 7.0;
        let mut rng: u64 = 7;
        let mut uniform = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut set = ClvSet {
            calibration: cal,
            window_end: end,
            header: match header(&[cal, end]) {
                TrainingSetLine::Header(h) => Some(h),
                _ => None,
            },
            fingerprint: "sim".into(),
            ..ClvSet::default()
        };
        for _ in 0..600 {
            // Weekly rate ~ 0.05..0.55, dropout 0..0.3 per purchase, born 10..52 weeks ago.
            let rate = 0.05 + 0.5 * uniform();
            let drop = 0.3 * uniform();
            let t_cal = (10.0 + 42.0 * uniform()).round();
            let (mut t, mut x, mut t_x, mut alive, mut hold) = (0.0, 0.0_f64, 0.0, true, 0.0);
            while alive {
                t += -uniform().max(1e-12).ln() / rate;
                if t > t_cal + holdout_weeks {
                    break;
                }
                if t <= t_cal {
                    x += 1.0;
                    t_x = t;
                } else {
                    hold += 1.0;
                }
                alive = uniform() >= drop;
            }
            set.summaries.push(Summary {
                x,
                t_x: t_x.round().min(t_cal),
                t: t_cal,
            });
            set.spend.push((20.0 + 60.0 * uniform()) as f32);
            set.holdout.push(hold as f32);
        }
        let version = ModelVersion::parse("clv-v2").expect("v");
        let wrong = ClvArtifact {
            kind: CLV_KIND.into(),
            version: ModelVersion::parse("clv-v1").expect("v"),
            feature_set: "rfmt-v2".into(),
            purchase: PurchaseParams::Nbd { r: 5.0, alpha: 1.0 },
            spend: SpendParams {
                p: 5.0,
                q: 3.0,
                gamma: 10.0,
            },
            tier_horizon_months: 12,
            tier_discount_rate_annual: 0.1,
            tiers: fit_tiers(&[1.0]),
            typical: None,
        };
        let trained = fit(&set, &ClvJobConfig::default(), version, Some(&wrong)).expect("fits");
        let m = &trained.metrics;
        assert_eq!(m.n_accounts, 600);
        let current = trained
            .current
            .clone()
            .expect("the wrong model is evaluated");
        assert!(
            m.holdout_mae_purchases < current.mae,
            "{m:?} vs {current:?}"
        );
        assert!(
            (m.holdout_mean_predicted - m.holdout_mean_actual).abs() < 0.35 * m.holdout_mean_actual,
            "{m:?}"
        );
        assert!(m.holdout_auc_any_purchase.is_some_and(|a| a > 0.6), "{m:?}");
        let tiers = &trained.publication.artifact.tiers;
        assert!(
            tiers[0].min_value > tiers[1].min_value && tiers[1].min_value > 0.0,
            "{tiers:?}"
        );
        assert!(trained.publication.plots[0].1.contains("<polyline"));
        assert!(trained.config["summary_mapping"]["mean_spend"].is_string());
        let decision = gate(
            &HoldoutFigures {
                mae: current.mae + 0.1,
                ..current
            },
            Some(&wrong.version),
            &Ok(current),
            "e",
            chrono::Utc::now(),
        );
        assert!(!decision.promoted);

        // Too few accounts: a clear refusal, not a model.
        let small = ClvSet {
            summaries: set.summaries[..5].to_vec(),
            spend: set.spend[..5].to_vec(),
            holdout: set.holdout[..5].to_vec(),
            ..set.clone()
        };
        let err = fit(
            &small,
            &ClvJobConfig::default(),
            ModelVersion::parse("clv-v3").expect("v"),
            None,
        )
        .expect_err("too few");
        assert!(matches!(err, ClvJobError::InsufficientData(_)), "{err}");
    }
}
