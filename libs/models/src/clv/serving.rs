//! The CLV model as the trainer stores it and the gateway serves it: the fitted purchase model
//! (BG/NBD, or the model it fell back to) and Gamma-Gamma spend model, the value tiers fitted on
//! the training customers, and the mapping from the feature store's `rfmt-v2` vector to the BTYD
//! summary.
//!
//! # From `rfmt-v2` features to `(x, t_x, T)` and the mean spend
//! The feature store keeps no transaction log for serving, only the aggregate vector. The BTYD
//! summary is recovered from it (see [`BtydLayout::summary`]):
//!
//! - `T = tenure_days / 7` (weeks from the first purchase to the cut-off): exact.
//! - `t_x = (tenure_days − recency_days) / 7` (weeks from the first to the last purchase): exact.
//! - `x` (repeat purchase *days*): `ipt_mean_days` is the mean gap between distinct purchase days,
//!   so the number of gaps is `(tenure_days − recency_days) / ipt_mean_days`, rounded; 0 when
//!   `single_purchase` is 1 (one purchase day). Exact up to rounding of whole days. Orders placed
//!   on the same day count once, as BTYD requires (`frequency` counts orders and would not).
//! - mean spend per purchase day: `monetary_total / (x + 1)`. **An approximation**: Gamma-Gamma
//!   is defined on the mean of the *repeat* purchases, excluding the first, but the store does
//!   not keep the first day's amount apart, so the first purchase is averaged in. Returns are not
//!   subtracted (`monetary_total` counts positive lines).
//!
//! # Value and tiers
//! CLV is the discounted expected spend over a horizon ([`super::Horizon`]) with a monthly rate
//! derived from a yearly one (`(1 + annual)^(1/12) − 1`). Tiers are quantiles of the training
//! customers' CLV at the horizon and rate recorded in the artefact (`high` = top 20%, `medium` =
//! the next 30%), so a tier means "worth more than N% of the customers the model was fitted on"
//! whatever horizon the gateway is configured to show.

use serde::{Deserialize, Serialize};
use sextant_contracts::ModelVersion;
use sextant_contracts::api::{ClvFactor, ValueDirection, ValueTier, ValueTierThreshold};

use super::{
    BgNbdParams, ClvError, GammaGammaParams, Horizon, NbdParams, ParetoNbdParams, PurchaseModel,
    Spend, Summary,
};

/// The `kind` of a [`ClvArtifact`].
pub const CLV_KIND: &str = "btyd_clv";

/// The features the summary is read from.
pub const REQUIRED_FEATURES: [&str; 5] = [
    "recency_days",
    "tenure_days",
    "ipt_mean_days",
    "single_purchase",
    "monetary_total",
];

/// Days per model time unit (weeks).
const DAYS_PER_UNIT: f64 = 7.0;

/// The purchase model's parameters, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum PurchaseParams {
    /// BG/NBD (Fader, Hardie & Lee 2005).
    Bgnbd { r: f64, alpha: f64, a: f64, b: f64 },
    /// Pareto/NBD (Schmittlein, Morrison & Colombo 1987).
    ParetoNbd {
        r: f64,
        alpha: f64,
        s: f64,
        beta: f64,
    },
    /// NBD: no dropout (what BG/NBD and Pareto/NBD degenerate to when the data show none).
    Nbd { r: f64, alpha: f64 },
}

impl From<PurchaseModel> for PurchaseParams {
    fn from(m: PurchaseModel) -> Self {
        match m {
            PurchaseModel::BgNbd(p) => Self::Bgnbd {
                r: p.r,
                alpha: p.alpha,
                a: p.a,
                b: p.b,
            },
            PurchaseModel::ParetoNbd(p) => Self::ParetoNbd {
                r: p.r,
                alpha: p.alpha,
                s: p.s,
                beta: p.beta,
            },
            PurchaseModel::Nbd(p) => Self::Nbd {
                r: p.r,
                alpha: p.alpha,
            },
        }
    }
}

impl PurchaseParams {
    /// The model to compute with.
    #[must_use]
    pub fn model(&self) -> PurchaseModel {
        match *self {
            Self::Bgnbd { r, alpha, a, b } => PurchaseModel::BgNbd(BgNbdParams { r, alpha, a, b }),
            Self::ParetoNbd { r, alpha, s, beta } => {
                PurchaseModel::ParetoNbd(ParetoNbdParams { r, alpha, s, beta })
            }
            Self::Nbd { r, alpha } => PurchaseModel::Nbd(NbdParams { r, alpha }),
        }
    }

    fn values(&self) -> Vec<f64> {
        match *self {
            Self::Bgnbd { r, alpha, a, b } => vec![r, alpha, a, b],
            Self::ParetoNbd { r, alpha, s, beta } => vec![r, alpha, s, beta],
            Self::Nbd { r, alpha } => vec![r, alpha],
        }
    }
}

/// Gamma-Gamma parameters, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SpendParams {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

impl From<GammaGammaParams> for SpendParams {
    fn from(g: GammaGammaParams) -> Self {
        Self {
            p: g.p,
            q: g.q,
            gamma: g.gamma,
        }
    }
}

impl SpendParams {
    /// The model to compute with.
    #[must_use]
    pub fn model(&self) -> GammaGammaParams {
        GammaGammaParams {
            p: self.p,
            q: self.q,
            gamma: self.gamma,
        }
    }
}

/// A served CLV model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClvArtifact {
    /// Always [`CLV_KIND`].
    pub kind: String,
    pub version: ModelVersion,
    /// The feature set the summary is read from (`rfmt-v2`).
    pub feature_set: String,
    pub purchase: PurchaseParams,
    pub spend: SpendParams,
    /// The horizon and yearly rate the tiers were computed at.
    pub tier_horizon_months: u32,
    pub tier_discount_rate_annual: f64,
    /// Highest threshold first: `high`, `medium`, `low` (0).
    pub tiers: Vec<ValueTierThreshold>,
    /// The typical customer of the training set, against whom each value is explained
    /// ([`ClvArtifact::factors`]). Absent in artefacts from before factors existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typical: Option<TypicalCustomer>,
}

/// The median training customer, input by input, in the model's time unit (weeks).
///
/// # Why medians, one input at a time
/// A value factor answers "what about this customer makes them worth more or less than usual".
/// Each input of the BTYD summary (repeat purchases, time since the last purchase, tenure, spend
/// per purchase) is in turn replaced by the typical customer's and the value recomputed
/// (occlusion, as the churn factors do). Medians, not means: purchase counts and spend are
/// heavy-tailed, and a mean customer is nobody. Time since the last purchase is the median over
/// repeat buyers only (for a one-time buyer it is the tenure itself).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TypicalCustomer {
    pub repeat_purchases: f64,
    pub weeks_since_last_purchase: f64,
    pub tenure_weeks: f64,
    pub spend_per_purchase: f64,
}

impl TypicalCustomer {
    /// Medians of `(summary, spend)` pairs (a sample of the training customers).
    ///
    /// # Errors
    /// [`ClvServingError::Input`] when there is no customer to take them from.
    pub fn from_sample<'a>(
        sample: impl IntoIterator<Item = (&'a Summary, f64)>,
    ) -> Result<Self, ClvServingError> {
        let (mut x, mut gap, mut t, mut spend) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (s, mean) in sample {
            x.push(s.x);
            t.push(s.t);
            if s.x > 0.0 && s.t >= s.t_x {
                gap.push(s.t - s.t_x);
            }
            if mean.is_finite() && mean > 0.0 {
                spend.push(mean);
            }
        }
        let median = |v: &mut Vec<f64>, what: &str| -> Result<f64, ClvServingError> {
            v.retain(|a| a.is_finite());
            if v.is_empty() {
                return Err(ClvServingError::Input(format!(
                    "no training customer gives a typical {what}"
                )));
            }
            v.sort_by(f64::total_cmp);
            let n = v.len();
            Ok(if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            })
        };
        let tenure_weeks = median(&mut t, "tenure")?;
        Ok(Self {
            repeat_purchases: median(&mut x, "purchase count")?,
            // With no repeat buyer at all, "since the last purchase" is the tenure.
            weeks_since_last_purchase: if gap.is_empty() {
                tenure_weeks
            } else {
                median(&mut gap, "time since the last purchase")?
            },
            tenure_weeks,
            spend_per_purchase: median(&mut spend, "spend per purchase")?,
        })
    }
}

/// How many value factors an answer carries.
pub const MAX_VALUE_FACTORS: usize = 3;

/// Why an artefact or an input cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClvServingError {
    /// The artefact is malformed.
    #[error("CLV artefact {version}: {detail}")]
    Artifact { version: String, detail: String },
    /// The served features lack one the summary needs.
    #[error("the feature store's {feature_set} has no feature {name}")]
    MissingFeature { feature_set: String, name: String },
    /// A feature vector does not give a valid summary.
    #[error("{0}")]
    Input(String),
    /// The closed forms failed at these values.
    #[error(transparent)]
    Clv(#[from] ClvError),
}

/// A CLV horizon in business terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueHorizon {
    pub months: u32,
    /// Yearly discount rate (0.10 = 10 %).
    pub discount_rate_annual: f64,
}

impl ValueHorizon {
    /// The monthly rate equivalent to the yearly one: `(1 + annual)^(1/12) − 1`.
    #[must_use]
    pub fn monthly_rate(&self) -> f64 {
        (1.0 + self.discount_rate_annual).powf(1.0 / 12.0) - 1.0
    }

    /// The weekly-model horizon.
    #[must_use]
    pub fn horizon(&self) -> Horizon {
        Horizon::weekly_model(self.months, self.monthly_rate())
    }
}

/// One customer's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClvValue {
    /// Discounted expected spend over the horizon.
    pub value: f64,
    pub p_alive: f64,
    /// Expected purchase days over the horizon.
    pub expected_purchases: f64,
    /// Expected spend per purchase day.
    pub spend_per_purchase: f64,
}

/// Where the summary's inputs are in a feature vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BtydLayout {
    recency: usize,
    tenure: usize,
    ipt_mean: usize,
    single: usize,
    monetary: usize,
}

impl BtydLayout {
    /// Finds the [`REQUIRED_FEATURES`] in `names`.
    ///
    /// # Errors
    /// [`ClvServingError::MissingFeature`] naming the first one absent.
    pub fn new(feature_set: &str, names: &[String]) -> Result<Self, ClvServingError> {
        let find = |n: &str| {
            names
                .iter()
                .position(|x| x == n)
                .ok_or_else(|| ClvServingError::MissingFeature {
                    feature_set: feature_set.to_owned(),
                    name: n.to_owned(),
                })
        };
        Ok(Self {
            recency: find(REQUIRED_FEATURES[0])?,
            tenure: find(REQUIRED_FEATURES[1])?,
            ipt_mean: find(REQUIRED_FEATURES[2])?,
            single: find(REQUIRED_FEATURES[3])?,
            monetary: find(REQUIRED_FEATURES[4])?,
        })
    }

    /// The BTYD summary (weeks) and spend of one feature vector (see the module docs).
    ///
    /// # Errors
    /// [`ClvServingError::Input`] for a short vector or values no purchase history gives
    /// (negative ages, recency beyond tenure, non-finite values).
    pub fn summary(&self, features: &[f64]) -> Result<(Summary, Spend), ClvServingError> {
        let get = |i: usize, name: &str| -> Result<f64, ClvServingError> {
            match features.get(i) {
                Some(v) if v.is_finite() => Ok(*v),
                Some(v) => Err(ClvServingError::Input(format!("{name} is {v}"))),
                None => Err(ClvServingError::Input(format!(
                    "the feature vector has {} values; {name} is at {i}",
                    features.len()
                ))),
            }
        };
        let recency = get(self.recency, "recency_days")?;
        let tenure = get(self.tenure, "tenure_days")?;
        let ipt = get(self.ipt_mean, "ipt_mean_days")?;
        let single = get(self.single, "single_purchase")?;
        let monetary = get(self.monetary, "monetary_total")?;
        if recency < 0.0 || tenure < 0.0 || recency > tenure + 0.5 {
            return Err(ClvServingError::Input(format!(
                "recency_days {recency} and tenure_days {tenure} are not those of a purchase history"
            )));
        }
        let span = (tenure - recency).max(0.0);
        let x = if single >= 0.5 || ipt <= 0.0 || span <= 0.0 {
            0.0
        } else {
            (span / ipt).round().max(1.0)
        };
        let t = tenure / DAYS_PER_UNIT;
        let t_x = if x == 0.0 {
            0.0
        } else {
            (span / DAYS_PER_UNIT).min(t)
        };
        Ok((
            Summary { x, t_x, t },
            Spend {
                x,
                mean: monetary / (x + 1.0),
            },
        ))
    }
}

fn finite_positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

impl ClvArtifact {
    /// Checks kind, parameters (finite, positive, Gamma-Gamma `q > 1`) and tiers (high, medium,
    /// low, non-increasing).
    ///
    /// # Errors
    /// [`ClvServingError::Artifact`] naming the problem.
    pub fn validate(&self) -> Result<(), ClvServingError> {
        let bad = |detail: String| ClvServingError::Artifact {
            version: self.version.to_string(),
            detail,
        };
        if self.kind != CLV_KIND {
            return Err(bad(format!("kind {:?}, expected {CLV_KIND:?}", self.kind)));
        }
        if !self.purchase.values().into_iter().all(finite_positive) {
            return Err(bad(format!(
                "purchase parameters {:?} must be finite and positive",
                self.purchase
            )));
        }
        let s = self.spend;
        if !(finite_positive(s.p) && finite_positive(s.gamma) && s.q.is_finite() && s.q > 1.0) {
            return Err(bad(format!(
                "spend parameters {s:?}: p, γ must be positive and q > 1 (finite mean spend)"
            )));
        }
        let names: Vec<ValueTier> = self.tiers.iter().map(|t| t.name).collect();
        if names != [ValueTier::High, ValueTier::Medium, ValueTier::Low]
            || self
                .tiers
                .windows(2)
                .any(|w| w[0].min_value < w[1].min_value)
            || self.tiers.iter().any(|t| !t.min_value.is_finite())
        {
            return Err(bad(format!(
                "tiers must be high ≥ medium ≥ low, finite: {:?}",
                self.tiers
            )));
        }
        if self.tier_horizon_months == 0 || self.tier_discount_rate_annual <= -1.0 {
            return Err(bad("tier horizon must be ≥ 1 month, rate > −100 %".into()));
        }
        Ok(())
    }

    /// The value of a customer over `horizon`.
    ///
    /// # Errors
    /// [`ClvServingError::Clv`] when a closed form fails at these values.
    pub fn value(
        &self,
        summary: &Summary,
        spend: &Spend,
        horizon: &ValueHorizon,
    ) -> Result<ClvValue, ClvServingError> {
        value_of(
            &self.purchase.model(),
            &self.spend.model(),
            summary,
            spend,
            horizon,
        )
    }

    /// What moves this customer's value away from the typical customer's, strongest first (at
    /// most [`MAX_VALUE_FACTORS`]): each summary input in turn set to the typical customer's
    /// ([`TypicalCustomer`]), the value recomputed, impact = value − that value. Inputs that
    /// change nothing (a customer typical in that respect) are left out. Empty when the artefact
    /// records no typical customer.
    ///
    /// # Errors
    /// [`ClvServingError::Clv`] when a closed form fails at an occluded input.
    pub fn factors(
        &self,
        summary: &Summary,
        spend: &Spend,
        horizon: &ValueHorizon,
        value: f64,
    ) -> Result<Vec<ClvFactor>, ClvServingError> {
        let Some(typ) = self.typical else {
            return Ok(Vec::new());
        };
        let days = |weeks: f64| (weeks * DAYS_PER_UNIT).round();
        let repeat = summary.x > 0.0;
        let gap = if repeat {
            summary.t - summary.t_x
        } else {
            summary.t
        };
        let mut out = Vec::with_capacity(4);
        let mut push =
            |factor: &str, s: Summary, sp: Spend, text: String| -> Result<(), ClvServingError> {
                let occluded = self.value(&s, &sp, horizon)?.value;
                let impact = value - occluded;
                // Cents on a value: not a reason anybody can act on.
                if impact.abs() > 1e-6 * value.abs().max(1.0) {
                    out.push(ClvFactor {
                        factor: factor.to_owned(),
                        direction: if impact > 0.0 {
                            ValueDirection::RaisesValue
                        } else {
                            ValueDirection::LowersValue
                        },
                        text,
                        impact,
                    });
                }
                Ok(())
            };

        // Repeat purchases: the typical count, keeping the time of the last purchase (a
        // one-time buyer gets the typical gap since the last purchase).
        let x_typ = typ.repeat_purchases.round().max(0.0);
        let t_x = if x_typ == 0.0 {
            0.0
        } else if repeat {
            summary.t_x
        } else {
            (summary.t - typ.weeks_since_last_purchase).clamp(0.0, summary.t)
        };
        push(
            "repeat_purchases",
            Summary {
                x: x_typ,
                t_x,
                t: summary.t,
            },
            Spend {
                x: x_typ,
                mean: spend.mean,
            },
            format!(
                "{} repeat purchase {} (typical: {})",
                summary.x,
                if summary.x == 1.0 { "day" } else { "days" },
                x_typ
            ),
        )?;
        // Time since the last purchase: only a repeat buyer has one apart from the tenure.
        if repeat {
            push(
                "days_since_last_purchase",
                Summary {
                    x: summary.x,
                    t_x: (summary.t - typ.weeks_since_last_purchase).clamp(0.0, summary.t),
                    t: summary.t,
                },
                *spend,
                format!(
                    "last purchase {} days ago (typical: {})",
                    days(gap),
                    days(typ.weeks_since_last_purchase)
                ),
            )?;
        }
        // Tenure: the typical age, keeping the time since the last purchase.
        let t_typ = typ.tenure_weeks.max(gap);
        push(
            "tenure_days",
            Summary {
                x: summary.x,
                t_x: if repeat { t_typ - gap } else { 0.0 },
                t: if repeat { t_typ } else { typ.tenure_weeks },
            },
            *spend,
            format!(
                "customer for {} days (typical: {})",
                days(summary.t),
                days(typ.tenure_weeks)
            ),
        )?;
        push(
            "spend_per_purchase",
            *summary,
            Spend {
                x: spend.x,
                mean: typ.spend_per_purchase,
            },
            format!(
                "spends {:.2} per purchase day (typical: {:.2})",
                spend.mean, typ.spend_per_purchase
            ),
        )?;
        out.sort_by(|a, b| b.impact.abs().total_cmp(&a.impact.abs()));
        out.truncate(MAX_VALUE_FACTORS);
        Ok(out)
    }

    /// The tier of a CLV computed at the artefact's tier horizon and rate.
    #[must_use]
    pub fn tier(&self, value_at_tier_horizon: f64) -> ValueTier {
        tier_of(&self.tiers, value_at_tier_horizon)
    }

    /// The horizon the tiers were fitted at.
    #[must_use]
    pub fn tier_horizon(&self) -> ValueHorizon {
        ValueHorizon {
            months: self.tier_horizon_months,
            discount_rate_annual: self.tier_discount_rate_annual,
        }
    }
}

/// The value of a customer under a purchase and a spend model.
///
/// # Errors
/// [`ClvServingError::Clv`] when a closed form fails.
pub fn value_of(
    purchase: &PurchaseModel,
    spend_model: &GammaGammaParams,
    summary: &Summary,
    spend: &Spend,
    horizon: &ValueHorizon,
) -> Result<ClvValue, ClvServingError> {
    summary.validate(0)?;
    let spend_per_purchase = spend_model.conditional_expected_spend(spend)?;
    let h = horizon.horizon();
    let value = h.discounted_value(spend_per_purchase, &|t| {
        purchase.conditional_expected_purchases(summary, t)
    })?;
    let expected_purchases = purchase.conditional_expected_purchases(
        summary,
        f64::from(horizon.months) * h.model_units_per_month,
    )?;
    let p_alive = purchase.p_alive(summary)?;
    let out = ClvValue {
        value: value.max(0.0),
        p_alive: p_alive.clamp(0.0, 1.0),
        expected_purchases: expected_purchases.max(0.0),
        spend_per_purchase,
    };
    if [out.value, out.expected_purchases, out.spend_per_purchase]
        .iter()
        .any(|v| !v.is_finite())
    {
        return Err(ClvServingError::Clv(ClvError::Numerical(format!(
            "non-finite value at x={}, t_x={}, T={}",
            summary.x, summary.t_x, summary.t
        ))));
    }
    Ok(out)
}

/// P(at least one purchase in the next `t` time units | x, t_x, T).
///
/// Exact for BG/NBD (dropout happens only right after a purchase, so the first purchase of the
/// window needs only being alive now) and the NBD: `P(alive) · (1 − ((α+T)/(α+T+t))^(r+x))`.
/// For Pareto/NBD the same expression ignores dying *during* the window, an upper bound; it is
/// used for ranking (ROC-AUC), where that matters little.
///
/// # Errors
/// As [`PurchaseModel::p_alive`].
pub fn p_any_purchase(model: &PurchaseModel, s: &Summary, t: f64) -> Result<f64, ClvError> {
    let (r, alpha) = match model {
        PurchaseModel::BgNbd(p) => (p.r, p.alpha),
        PurchaseModel::ParetoNbd(p) => (p.r, p.alpha),
        PurchaseModel::Nbd(p) => (p.r, p.alpha),
    };
    let none_if_alive = ((alpha + s.t) / (alpha + s.t + t)).powf(r + s.x);
    Ok((model.p_alive(s)? * (1.0 - none_if_alive)).clamp(0.0, 1.0))
}

/// Tier thresholds from the training customers' values: `high` from the 80th percentile,
/// `medium` from the 50th, `low` from 0 (highest first).
#[must_use]
pub fn fit_tiers(values: &[f64]) -> Vec<ValueTierThreshold> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let q = |p: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        let i = ((v.len() - 1) as f64 * p).round() as usize;
        v[i.min(v.len() - 1)]
    };
    let high = q(0.8).max(0.0);
    let medium = q(0.5).clamp(0.0, high);
    vec![
        ValueTierThreshold {
            name: ValueTier::High,
            min_value: high,
        },
        ValueTierThreshold {
            name: ValueTier::Medium,
            min_value: medium,
        },
        ValueTierThreshold {
            name: ValueTier::Low,
            min_value: 0.0,
        },
    ]
}

fn tier_of(tiers: &[ValueTierThreshold], value: f64) -> ValueTier {
    tiers
        .iter()
        .find(|t| value >= t.min_value && t.name != ValueTier::Low)
        .map_or(ValueTier::Low, |t| t.name)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn artifact() -> ClvArtifact {
        ClvArtifact {
            kind: CLV_KIND.into(),
            version: ModelVersion::parse("clv-v1").expect("v"),
            feature_set: "rfmt-v2".into(),
            // CDNOW's published BG/NBD and Gamma-Gamma estimates.
            purchase: PurchaseParams::Bgnbd {
                r: 0.243,
                alpha: 4.414,
                a: 0.793,
                b: 2.426,
            },
            spend: SpendParams {
                p: 6.25,
                q: 3.74,
                gamma: 15.44,
            },
            tier_horizon_months: 12,
            tier_discount_rate_annual: 0.1,
            tiers: fit_tiers(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]),
            typical: Some(TypicalCustomer {
                repeat_purchases: 2.0,
                weeks_since_last_purchase: 8.0,
                tenure_weeks: 30.0,
                spend_per_purchase: 40.0,
            }),
        }
    }

    #[test]
    fn the_summary_is_recovered_from_the_aggregates() {
        let layout = BtydLayout::new("rfmt-v2", &names()).expect("layout");
        // First purchase 70 days ago, last 14 days ago, 4 gaps of 14 days on average, 500 spent.
        let (s, spend) = layout
            .summary(&[14.0, 70.0, 6.0, 500.0, 14.0, 0.0])
            .expect("summary");
        assert_eq!(s.x, 4.0, "distinct purchase days − 1, not orders − 1");
        assert!(
            (s.t - 10.0).abs() < 1e-12 && (s.t_x - 8.0).abs() < 1e-12,
            "{s:?}"
        );
        assert!((spend.mean - 100.0).abs() < 1e-12, "{spend:?}");
        // One purchase day (several orders that day): x = 0, t_x = 0.
        let (s, _) = layout
            .summary(&[30.0, 30.0, 3.0, 90.0, 0.0, 1.0])
            .expect("single");
        assert_eq!((s.x, s.t_x), (0.0, 0.0));
        assert!(layout.summary(&[40.0, 30.0, 1.0, 1.0, 0.0, 1.0]).is_err());
        assert!(layout.summary(&[1.0, 2.0]).is_err());
        let missing = BtydLayout::new("x", &names()[..3]).expect_err("missing");
        assert!(missing.to_string().contains("ipt_mean_days"), "{missing}");
    }

    #[test]
    fn value_grows_with_frequency_and_falls_with_recency() {
        let a = artifact();
        a.validate().expect("valid");
        let h = ValueHorizon {
            months: 12,
            discount_rate_annual: 0.1,
        };
        let v = |x: f64, t_x: f64| {
            a.value(&Summary { x, t_x, t: 40.0 }, &Spend { x, mean: 40.0 }, &h)
                .expect("value")
        };
        let active = v(6.0, 38.0);
        let lapsed = v(6.0, 5.0);
        let light = v(1.0, 38.0);
        assert!(active.value > light.value && active.value > lapsed.value);
        assert!(lapsed.p_alive < active.p_alive && (0.0..=1.0).contains(&lapsed.p_alive));
        // The value is the discounted sum of expected spend: below the undiscounted product.
        assert!(active.value < active.expected_purchases * active.spend_per_purchase);
        assert!(active.value > 0.9 * active.expected_purchases * active.spend_per_purchase);
        let p = p_any_purchase(
            &a.purchase.model(),
            &Summary {
                x: 6.0,
                t_x: 5.0,
                t: 40.0,
            },
            13.0,
        )
        .expect("p");
        assert!(p > 0.0 && p < lapsed.p_alive, "{p}");
    }

    #[test]
    fn tiers_are_quantiles_and_broken_artefacts_are_refused() {
        let a = artifact();
        assert_eq!(a.tier(9.5), ValueTier::High);
        assert_eq!(a.tier(5.0), ValueTier::Medium);
        assert_eq!(a.tier(4.9), ValueTier::Low);
        let mut bad = artifact();
        bad.spend.q = 0.9;
        assert!(bad.validate().is_err());
        let mut bad = artifact();
        bad.tiers.reverse();
        assert!(bad.validate().is_err());
        let mut bad = artifact();
        bad.kind = "sequence_gru".into();
        assert!(bad.validate().is_err());
        let json = serde_json::to_value(&a).expect("json");
        assert_eq!(json["purchase"]["model"], "bgnbd");
        let back: ClvArtifact = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, a);
    }

    fn factors_of(a: &ClvArtifact, s: Summary, mean: f64) -> Vec<ClvFactor> {
        let h = ValueHorizon {
            months: 12,
            discount_rate_annual: 0.1,
        };
        let spend = Spend { x: s.x, mean };
        let v = a.value(&s, &spend, &h).expect("value").value;
        let f = a.factors(&s, &spend, &h, v).expect("factors");
        // Each impact is exactly the value minus the value at that typical input.
        for w in f.windows(2) {
            assert!(w[0].impact.abs() >= w[1].impact.abs(), "{f:?}");
        }
        for x in &f {
            assert_eq!(
                x.direction == ValueDirection::RaisesValue,
                x.impact > 0.0,
                "{x:?}"
            );
        }
        f
    }

    #[test]
    fn value_factors_name_what_sets_a_customer_apart_from_the_typical_one() {
        let a = artifact();
        // Typical: 2 repeat days, last purchase 8 weeks ago, 30 weeks' tenure, 40 per day.
        // A frequent, recent, big spender: every input raises the value.
        let f = factors_of(
            &a,
            Summary {
                x: 12.0,
                t_x: 29.0,
                t: 30.0,
            },
            120.0,
        );
        assert_eq!(f.len(), MAX_VALUE_FACTORS, "{f:?}");
        assert!(
            f.iter().all(|x| x.direction == ValueDirection::RaisesValue),
            "{f:?}"
        );
        let names: Vec<&str> = f.iter().map(|x| x.factor.as_str()).collect();
        assert!(names.contains(&"repeat_purchases") && names.contains(&"spend_per_purchase"));
        let spend = f
            .iter()
            .find(|x| x.factor == "spend_per_purchase")
            .expect("spend");
        assert_eq!(
            spend.text,
            "spends 120.00 per purchase day (typical: 40.00)"
        );

        // Lapsed: bought often, but not for 25 weeks: recency lowers the value and leads.
        let f = factors_of(
            &a,
            Summary {
                x: 2.0,
                t_x: 5.0,
                t: 30.0,
            },
            40.0,
        );
        assert_eq!(f[0].factor, "days_since_last_purchase", "{f:?}");
        assert_eq!(f[0].direction, ValueDirection::LowersValue);
        assert_eq!(f[0].text, "last purchase 175 days ago (typical: 56)");
        // Typical count and spend change nothing, so they are not reasons.
        assert!(
            f.iter()
                .all(|x| x.factor != "repeat_purchases" && x.factor != "spend_per_purchase"),
            "{f:?}"
        );

        // A one-time buyer: no time since a *last* purchase apart from tenure, and their own
        // spend does not enter Gamma-Gamma (no repeat purchase), so neither is a factor.
        let f = factors_of(
            &a,
            Summary {
                x: 0.0,
                t_x: 0.0,
                t: 20.0,
            },
            500.0,
        );
        assert!(
            f.iter().all(|x| x.factor != "days_since_last_purchase" && x.factor != "spend_per_purchase"),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|x| x.factor == "repeat_purchases"
                    && x.direction == ValueDirection::LowersValue)
        );

        // An artefact without a typical customer explains nothing rather than guessing.
        let mut old = artifact();
        old.typical = None;
        assert!(
            factors_of(
                &old,
                Summary {
                    x: 12.0,
                    t_x: 29.0,
                    t: 30.0
                },
                120.0
            )
            .is_empty()
        );
        let json = serde_json::to_value(&old).expect("json");
        assert!(json.get("typical").is_none());
    }

    #[test]
    fn the_typical_customer_is_the_median_input_by_input() {
        let s = [
            Summary {
                x: 0.0,
                t_x: 0.0,
                t: 10.0,
            },
            Summary {
                x: 1.0,
                t_x: 4.0,
                t: 20.0,
            },
            Summary {
                x: 3.0,
                t_x: 28.0,
                t: 30.0,
            },
            Summary {
                x: 9.0,
                t_x: 39.0,
                t: 40.0,
            },
        ];
        let spend = [0.0, 10.0, 30.0, 1000.0];
        let t = TypicalCustomer::from_sample(s.iter().zip(spend)).expect("typical");
        assert_eq!(t.repeat_purchases, 2.0);
        assert_eq!(t.tenure_weeks, 25.0);
        // Repeat buyers' gaps 16, 2, 1 → 2; the one-time buyer is not one of them.
        assert_eq!(t.weeks_since_last_purchase, 2.0);
        // Spends above zero: 10, 30, 1000 → 30 (a mean would be 347).
        assert_eq!(t.spend_per_purchase, 30.0);
        assert!(TypicalCustomer::from_sample(std::iter::empty()).is_err());
    }

    #[test]
    fn a_yearly_rate_becomes_the_equivalent_monthly_rate() {
        let h = ValueHorizon {
            months: 12,
            discount_rate_annual: 0.1,
        };
        assert!(((1.0 + h.monthly_rate()).powi(12) - 1.1).abs() < 1e-12);
    }
}
