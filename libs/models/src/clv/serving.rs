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
use sextant_contracts::api::{ValueTier, ValueTierThreshold};

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
}

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

    #[test]
    fn a_yearly_rate_becomes_the_equivalent_monthly_rate() {
        let h = ValueHorizon {
            months: 12,
            discount_rate_annual: 0.1,
        };
        assert!(((1.0 + h.monthly_rate()).powi(12) - 1.1).abs() < 1e-12);
    }
}
