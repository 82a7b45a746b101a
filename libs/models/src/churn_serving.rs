//! The churn model as the gateway serves it: the sequence network ([`SequenceArtifact`]) wrapped
//! with everything a score needs to be shown on a record page — risk bands, top factors with a
//! human sentence, and a next best action.
//!
//! Why a wrapper and not more fields on the network: the network is the evaluation model (and is
//! improved on its own); serving adds the feature-store layout it reads (feature names, channels,
//! weeks, the category attribute), typical values fitted on the training rows, and band
//! thresholds fitted on the training scores. The gateway links no Burn: everything here is plain
//! Rust over the network's forward pass.
//!
//! # Explanations (occlusion)
//! A factor is one aggregate feature or one block of weeks. Its effect on a customer's score is
//! measured by *occlusion*: the factor is replaced by its typical training value (the training
//! median of the feature; the mean training week of each channel for a block of weeks) and the
//! customer is scored again. `impact = score − occluded score`: positive means the customer's
//! actual value raises the risk compared with a typical customer (`raises_risk`), negative that
//! it lowers it. The three factors with the largest |impact| are reported. All the occluded
//! variants of a batch are scored in one batched forward pass.
//!
//! # Bands
//! Thresholds are quantiles of the scores the model gives its own training rows: `high` is the
//! riskiest fifth (score ≥ the 80th percentile), `medium` the next three tenths (≥ the 50th
//! percentile), `low` the rest. So a band means "riskier than N% of the customers the model was
//! fitted on", which stays meaningful whatever the org's base rate.
//!
//! # Next best action
//! A small rule table over the band and the strongest factor that raises the risk (see
//! [`next_best_action`]): `low` never gets an intervention; otherwise the factor's family picks
//! the action (lapsed buying → call or win-back offer, falling spend → loyalty offer, support
//! trouble → escalate the cases, returns → review them, a single purchase → second-order offer,
//! low engagement → invite), and the band picks the stronger or the lighter version of it.

use serde::{Deserialize, Serialize};
use sextant_contracts::ModelVersion;
use sextant_contracts::api::{
    BandThreshold, FactorDirection, NextBestAction, RiskBand, ScoreFactor,
};

use crate::artifact::{ChurnArtifact, ModelError};
use crate::sequence::{RunSource, SequenceArtifact, SequenceInput};

/// The `kind` of a [`SequenceChurnArtifact`].
pub const SEQUENCE_KIND: &str = "sequence_gru";

/// The category of a customer without the category attribute (the network's unknown level, as
/// the trainer names it).
pub const MISSING_CATEGORY: &str = "<unknown>";

/// Factors reported per record.
pub const TOP_FACTORS: usize = 3;

/// Impacts smaller than this (in probability) are not reported as factors.
const MIN_IMPACT: f64 = 1e-3;

/// Blocks of weeks explained as one factor each: `(first, last)` week, 0 = the most recent.
pub const WEEK_BLOCKS: [(usize, usize); 5] = [(0, 3), (4, 7), (8, 12), (13, 25), (26, 51)];

/// A block of weeks and its typical activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WeekBlock {
    /// Factor name, e.g. `weeks_1_4`.
    pub name: String,
    /// First week of the block (0 = the week just before today).
    pub first: usize,
    /// Last week of the block (inclusive).
    pub last: usize,
    /// Per channel: the mean value of one week of the block over the training rows.
    pub typical_week: Vec<f64>,
}

/// Typical values, fitted on the training rows: what occlusion replaces a factor by, and what the
/// factor texts compare with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reference {
    /// Per feature (in `feature_names` order): the training median.
    pub feature_typical: Vec<f64>,
    /// Blocks of weeks within the network's window.
    pub week_blocks: Vec<WeekBlock>,
}

/// The served sequence churn model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SequenceChurnArtifact {
    /// Always [`SEQUENCE_KIND`].
    pub kind: String,
    pub version: ModelVersion,
    /// The declared feature set the model reads (e.g. `rfmt-v2`).
    pub feature_set: String,
    /// Aggregate features, in the order the feature store sends them.
    pub feature_names: Vec<String>,
    /// Channels of each week, in the order the feature store sends them.
    pub sequence_channels: Vec<String>,
    /// Weeks per sequence the feature store sends (oldest first); the network reads the most
    /// recent `network.weeks` of them.
    pub sequence_weeks: usize,
    /// The static attribute used as the category (e.g. `country`).
    pub category_attribute: String,
    /// Features that can be negative (trends): the network's inputs are `log1p(max(x, 0))`, so
    /// each of these also enters as a second input `max(−x, 0)` (named `<feature>:neg`).
    pub signed_features: Vec<usize>,
    /// Label window of the training set, in days.
    pub horizon_days: u32,
    /// Risk bands, highest threshold first.
    pub bands: Vec<BandThreshold>,
    pub reference: Reference,
    /// The network (see `sextant_models::sequence`).
    #[schema(value_type = Object)]
    pub network: SequenceArtifact,
}

/// What the trainer stores and the gateway loads: the sequence model, or a churn MLP stored
/// before it (scored without bands or factors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ServedChurnModel {
    Sequence(Box<SequenceChurnArtifact>),
    Mlp(ChurnArtifact),
}

impl ServedChurnModel {
    /// The model's version.
    #[must_use]
    pub fn version(&self) -> &ModelVersion {
        match self {
            Self::Sequence(a) => &a.version,
            Self::Mlp(a) => &a.version,
        }
    }

    /// The aggregate features it reads.
    #[must_use]
    pub fn feature_names(&self) -> &[String] {
        match self {
            Self::Sequence(a) => &a.feature_names,
            Self::Mlp(a) => &a.feature_names,
        }
    }

    /// Whether it reads weekly sequences.
    #[must_use]
    pub fn needs_sequences(&self) -> bool {
        matches!(self, Self::Sequence(_))
    }

    /// Checks the artefact.
    ///
    /// # Errors
    /// [`ModelError::Inconsistent`] naming what does not fit.
    pub fn validate(&self) -> Result<(), ModelError> {
        match self {
            Self::Sequence(a) => a.validate(),
            Self::Mlp(a) => a.validate(),
        }
    }
}

/// One customer as the feature store describes it.
#[derive(Debug, Clone, Copy)]
pub struct CustomerInput<'a> {
    /// Aggregate features, in `feature_names` order.
    pub features: &'a [f64],
    /// `sequence_weeks` rows, oldest week first, each in `sequence_channels` order.
    pub sequence: &'a [Vec<f64>],
    /// The category attribute's value, when the account has one.
    pub category: Option<&'a str>,
}

/// A score with its explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Explained {
    pub score: f64,
    pub band: RiskBand,
    /// Strongest first, at most [`TOP_FACTORS`].
    pub factors: Vec<ScoreFactor>,
    pub next_best_action: NextBestAction,
}

/// The network input built from one customer: owned, so occluded copies can be made.
#[derive(Debug, Clone)]
struct Prepared {
    /// `network.weeks × channels`, week 0 (most recent) first.
    sequence: Vec<f64>,
    category: usize,
    /// Raw features (occlusion edits these).
    features: Vec<f64>,
}

/// The negative part of signed features, appended to the raw features.
#[must_use]
pub fn network_aggregates(features: &[f64], signed: &[usize]) -> Vec<f64> {
    let mut out = features.to_vec();
    out.extend(
        signed
            .iter()
            .map(|&i| features.get(i).map_or(0.0, |v| (-v).max(0.0))),
    );
    out
}

/// Names of the network's aggregate inputs for `feature_names` and `signed` features.
#[must_use]
pub fn network_aggregate_names(feature_names: &[String], signed: &[usize]) -> Vec<String> {
    let mut out = feature_names.to_vec();
    out.extend(
        signed
            .iter()
            .filter_map(|&i| feature_names.get(i).map(|n| format!("{n}:neg"))),
    );
    out
}

/// The most recent `weeks` rows of an oldest-first sequence, flattened most recent week first
/// (the network's order).
///
/// # Errors
/// [`ModelError::Width`] when there are too few weeks or a week has the wrong width.
pub fn recent_first(
    oldest_first: &[Vec<f64>],
    weeks: usize,
    channels: usize,
) -> Result<Vec<f64>, ModelError> {
    if oldest_first.len() < weeks {
        return Err(ModelError::Width {
            expected: weeks,
            got: oldest_first.len(),
        });
    }
    let mut out = Vec::with_capacity(weeks * channels);
    for week in oldest_first.iter().rev().take(weeks) {
        if week.len() != channels {
            return Err(ModelError::Width {
                expected: channels,
                got: week.len(),
            });
        }
        out.extend_from_slice(week);
    }
    Ok(out)
}

impl SequenceChurnArtifact {
    /// Checks that the wrapper and the network agree.
    ///
    /// # Errors
    /// [`ModelError::Inconsistent`] naming what does not fit.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |what: String| Err(ModelError::Inconsistent(what));
        if self.kind != SEQUENCE_KIND {
            return bad(format!("kind {:?} is not {SEQUENCE_KIND}", self.kind));
        }
        self.network.validate()?;
        let n = &self.network;
        if n.channel_names != self.sequence_channels {
            return bad("the network's channels differ from the sequence channels".into());
        }
        if n.weeks > self.sequence_weeks {
            return bad(format!(
                "the network reads {} weeks of {}",
                n.weeks, self.sequence_weeks
            ));
        }
        if self
            .signed_features
            .iter()
            .any(|&i| i >= self.feature_names.len())
            || n.aggregate_names
                != network_aggregate_names(&self.feature_names, &self.signed_features)
        {
            return bad("the network's aggregate inputs differ from the features".into());
        }
        if self.reference.feature_typical.len() != self.feature_names.len() {
            return bad("typical values do not cover the features".into());
        }
        if self
            .reference
            .week_blocks
            .iter()
            .any(|b| b.first > b.last || b.last >= n.weeks || b.typical_week.len() != n.channels())
        {
            return bad("a block of weeks lies outside the network's window".into());
        }
        if self.bands.is_empty()
            || self
                .bands
                .windows(2)
                .any(|w| w[0].min_score < w[1].min_score)
        {
            return bad("bands must be given highest threshold first".into());
        }
        Ok(())
    }

    /// The band of a score.
    #[must_use]
    pub fn band(&self, score: f64) -> RiskBand {
        self.bands
            .iter()
            .find(|b| score >= b.min_score)
            .or(self.bands.last())
            .map_or(RiskBand::Low, |b| b.name)
    }

    fn prepare(&self, c: &CustomerInput<'_>) -> Result<Prepared, ModelError> {
        if c.features.len() != self.feature_names.len() {
            return Err(ModelError::Width {
                expected: self.feature_names.len(),
                got: c.features.len(),
            });
        }
        if c.sequence.len() != self.sequence_weeks {
            return Err(ModelError::Width {
                expected: self.sequence_weeks,
                got: c.sequence.len(),
            });
        }
        Ok(Prepared {
            sequence: recent_first(c.sequence, self.network.weeks, self.network.channels())?,
            category: self
                .network
                .category_index(c.category.unwrap_or(MISSING_CATEGORY)),
            features: c.features.to_vec(),
        })
    }

    fn score_prepared(&self, rows: &[Prepared], threads: usize) -> Result<Vec<f64>, ModelError> {
        self.score_prepared_resumed(rows, &vec![RunSource::Own; rows.len()], threads)
    }

    /// [`Self::score_prepared`] where rows reuse each other's GRU runs (see
    /// [`SequenceArtifact::predict_batch_resumed`]).
    fn score_prepared_resumed(
        &self,
        rows: &[Prepared],
        sources: &[RunSource],
        threads: usize,
    ) -> Result<Vec<f64>, ModelError> {
        let aggregates: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| network_aggregates(&r.features, &self.signed_features))
            .collect();
        let inputs: Vec<SequenceInput<'_>> = rows
            .iter()
            .zip(&aggregates)
            .map(|(r, a)| SequenceInput {
                sequence: &r.sequence,
                category: r.category,
                aggregates: a,
            })
            .collect();
        self.network
            .predict_batch_resumed(&inputs, sources, threads)
    }

    /// Churn probabilities of a batch.
    ///
    /// # Errors
    /// [`ModelError::Width`] when a customer's features or sequence do not fit the model.
    pub fn score_batch(
        &self,
        customers: &[CustomerInput<'_>],
        threads: usize,
    ) -> Result<Vec<f64>, ModelError> {
        let rows = customers
            .iter()
            .map(|c| self.prepare(c))
            .collect::<Result<Vec<_>, _>>()?;
        self.score_prepared(&rows, threads)
    }

    /// Scores, bands, top factors and next best actions of a batch (see the module docs).
    ///
    /// # Errors
    /// As [`Self::score_batch`].
    pub fn explain_batch(
        &self,
        customers: &[CustomerInput<'_>],
        threads: usize,
    ) -> Result<Vec<Explained>, ModelError> {
        let rows = customers
            .iter()
            .map(|c| self.prepare(c))
            .collect::<Result<Vec<_>, _>>()?;
        let channels = self.network.channels();
        let per = 1 + self.feature_names.len() + self.reference.week_blocks.len();
        // Each customer, then one occluded copy per feature, then one per block of weeks.
        // Feature occlusions keep the customer's weeks: they share its GRU run. A block of weeks
        // changes only the weeks from its oldest on (the pass reads the oldest week first), so
        // its variant resumes the customer's run from the state before that week. A customer
        // costs about two passes over the weeks, not one per variant.
        // Variants borrow the customer's weeks; only the block variants own edited copies.
        let weeks = self.network.weeks;
        let blocks = &self.reference.week_blocks;
        let mut block_weeks: Vec<Vec<f64>> = Vec::with_capacity(rows.len() * blocks.len());
        let mut aggregates: Vec<Vec<f64>> = Vec::with_capacity(rows.len() * per);
        for r in &rows {
            let own = network_aggregates(&r.features, &self.signed_features);
            aggregates.push(own.clone());
            let mut occluded = r.features.clone();
            for (i, typical) in self.reference.feature_typical.iter().enumerate() {
                occluded[i] = *typical;
                aggregates.push(network_aggregates(&occluded, &self.signed_features));
                occluded[i] = r.features[i];
            }
            for b in blocks {
                let mut v = r.sequence.clone();
                for w in b.first..=b.last {
                    v[w * channels..(w + 1) * channels].copy_from_slice(&b.typical_week);
                }
                block_weeks.push(v);
                aggregates.push(own.clone());
            }
        }
        let nb = blocks.len();
        let mut inputs = Vec::with_capacity(rows.len() * per);
        let mut sources = Vec::with_capacity(rows.len() * per);
        for (k, r) in rows.iter().enumerate() {
            let own = inputs.len();
            for v in 0..per {
                let (sequence, source) = if v == 0 {
                    (&r.sequence, RunSource::Own)
                } else if v < per - nb {
                    (&r.sequence, RunSource::Same(own))
                } else {
                    let b = v - (per - nb);
                    (
                        &block_weeks[k * nb + b],
                        RunSource::ResumeAfter {
                            leader: own,
                            step: weeks - 1 - blocks[b].last,
                        },
                    )
                };
                inputs.push(SequenceInput {
                    sequence,
                    category: r.category,
                    aggregates: &aggregates[own + v],
                });
                sources.push(source);
            }
        }
        let scores = self
            .network
            .predict_batch_resumed(&inputs, &sources, threads)?;
        let mut out = Vec::with_capacity(rows.len());
        for (r, s) in rows.iter().zip(scores.chunks(per)) {
            let score = s[0];
            let band = self.band(score);
            // Impacts of every factor (features, then blocks of weeks); texts only for the
            // reported ones.
            let nf = self.feature_names.len();
            let mut candidates: Vec<(f64, usize)> = (0..per - 1)
                .map(|k| (score - s[1 + k], k))
                .filter(|(impact, _)| impact.abs() >= MIN_IMPACT)
                .collect();
            candidates.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()).then(a.1.cmp(&b.1)));
            let factors: Vec<ScoreFactor> = candidates
                .into_iter()
                .take(TOP_FACTORS)
                .map(|(impact, k)| {
                    if k < nf {
                        let name = &self.feature_names[k];
                        let typical = self.reference.feature_typical[k];
                        factor(name, impact, feature_text(name, r.features[k], typical))
                    } else {
                        let b = &self.reference.week_blocks[k - nf];
                        factor(&b.name, impact, block_text(self, b, &r.sequence))
                    }
                })
                .collect();
            let next_best_action = next_best_action(band, &factors);
            out.push(Explained {
                score,
                band,
                factors,
                next_best_action,
            });
        }
        Ok(out)
    }
}

fn factor(name: &str, impact: f64, text: String) -> ScoreFactor {
    ScoreFactor {
        factor: name.to_owned(),
        direction: if impact >= 0.0 {
            FactorDirection::RaisesRisk
        } else {
            FactorDirection::LowersRisk
        },
        text,
        impact,
    }
}

/// A number for a sentence: integers without decimals, small values with one or two.
fn num(v: f64) -> String {
    let a = v.abs();
    if (v - v.round()).abs() < 1e-9 || a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// `1 order`, `3 orders`.
fn count(v: f64, one: &str, many: &str) -> String {
    if (v - 1.0).abs() < 1e-9 {
        format!("1 {one}")
    } else {
        format!("{} {many}", num(v))
    }
}

fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// `up 25%` / `down 60%` / `flat` for a relative change.
fn change(ratio_minus_one: f64) -> String {
    if ratio_minus_one.abs() < 0.005 {
        "flat".to_owned()
    } else if ratio_minus_one > 0.0 {
        format!("up {}", pct(ratio_minus_one))
    } else {
        format!("down {}", pct(-ratio_minus_one))
    }
}

/// The sentence of one aggregate feature: its actual value, then the typical one. Features of the
/// declared `rfmt-v2` set have their own wording; any other feature is described by name.
#[must_use]
pub fn feature_text(name: &str, value: f64, typical: f64) -> String {
    let t = num(typical);
    match name {
        "recency_days" => format!("no order for {} days (typical: {t})", num(value)),
        "tenure_days" => format!("customer for {} days (typical: {t})", num(value)),
        "frequency" => format!(
            "{} in total (typical: {t})",
            count(value, "order", "orders")
        ),
        "monetary_total" => format!("{} spent in total (typical: {t})", num(value)),
        "monetary_mean" => format!("{} per order on average (typical: {t})", num(value)),
        "orders_30d" | "orders_90d" | "orders_365d" => {
            let days = name.trim_start_matches("orders_").trim_end_matches('d');
            format!(
                "{} in the last {days} days (typical: {t})",
                count(value, "order", "orders")
            )
        }
        "spend_30d" | "spend_90d" | "spend_365d" => {
            let days = name.trim_start_matches("spend_").trim_end_matches('d');
            format!(
                "{} spent in the last {days} days (typical: {t})",
                num(value)
            )
        }
        "ipt_mean_days" => format!("orders every {} days on average (typical: {t})", num(value)),
        "ipt_std_days" => format!(
            "gaps between orders vary by {} days (typical: {t})",
            num(value)
        ),
        "overdue_ratio" => format!(
            "{}× the usual gap between orders since the last one (typical: {t}×)",
            num(value)
        ),
        "single_purchase" => {
            let says = |v: f64| {
                if v >= 0.5 {
                    "one purchase only"
                } else {
                    "a repeat customer"
                }
            };
            format!("{} (typical: {})", says(value), says(typical))
        }
        "spend_trend_8w" => format!(
            "spend {} over the last 8 weeks vs the 8 before (typical: {})",
            change(value.exp() - 1.0),
            change(typical.exp() - 1.0)
        ),
        "orders_trend_8w" => {
            let v = if value.abs() < 0.5 {
                "as many orders in the last 8 weeks as in the 8 before".to_owned()
            } else if value > 0.0 {
                format!(
                    "{} more orders in the last 8 weeks than in the 8 before",
                    num(value)
                )
            } else {
                format!(
                    "{} fewer orders in the last 8 weeks than in the 8 before",
                    num(-value)
                )
            };
            format!("{v} (typical: {})", num(typical))
        }
        "return_share_365d" => format!(
            "{} of last year's spend returned (typical: {})",
            pct(value),
            pct(typical)
        ),
        "items_per_order" => format!("{} items per order (typical: {t})", num(value)),
        "category_count" => format!(
            "buys in {} (typical: {t})",
            count(value, "category", "categories")
        ),
        "top_category_share" => format!(
            "{} of spend in one category (typical: {})",
            pct(value),
            pct(typical)
        ),
        "cases_90d" => format!(
            "{} support cases in the last 90 days (typical: {t})",
            num(value)
        ),
        "cases_365d" => format!(
            "{} support cases in the last year (typical: {t})",
            num(value)
        ),
        "negative_case_share_365d" => format!(
            "{} of last year's support cases read negative (typical: {})",
            pct(value),
            pct(typical)
        ),
        "engagement_90d" => format!(
            "{} engagement events in the last 90 days (typical: {t})",
            num(value)
        ),
        other => format!(
            "{} is {} (typical: {t})",
            other.replace('_', " "),
            num(value)
        ),
    }
}

fn week_span(b: &WeekBlock) -> String {
    if b.first == 0 {
        format!("the last {} weeks", b.last + 1)
    } else {
        format!("weeks {}–{} before today", b.first + 1, b.last + 1)
    }
}

/// The sentence of a block of weeks: orders and spend in it (the first two channels when they
/// are `orders` and `spend`, else every channel by name), against a typical customer.
fn block_text(a: &SequenceChurnArtifact, b: &WeekBlock, sequence: &[f64]) -> String {
    let c = a.network.channels();
    let weeks = (b.last - b.first + 1) as f64;
    let sum = |ch: usize| -> f64 {
        (b.first..=b.last)
            .map(|w| sequence.get(w * c + ch).copied().unwrap_or(0.0))
            .sum()
    };
    let parts: Vec<String> = a
        .sequence_channels
        .iter()
        .enumerate()
        .filter(|(_, n)| n.as_str() != "items")
        .map(|(ch, n)| {
            let typical = b.typical_week.get(ch).copied().unwrap_or(0.0) * weeks;
            match n.as_str() {
                "orders" => format!("{} orders (typical: {})", num(sum(ch)), num(typical)),
                "spend" => format!("{} spent (typical: {})", num(sum(ch)), num(typical)),
                "cases" => format!("{} support cases (typical: {})", num(sum(ch)), num(typical)),
                other => format!("{other} {} (typical: {})", num(sum(ch)), num(typical)),
            }
        })
        .collect();
    format!("in {}: {}", week_span(b), parts.join(", "))
}

/// The family of a factor, for the action table.
fn family(factor: &str) -> &'static str {
    match factor {
        "recency_days" | "overdue_ratio" | "orders_30d" | "orders_90d" | "orders_365d"
        | "orders_trend_8w" | "ipt_mean_days" | "ipt_std_days" => "lapsing",
        f if f.starts_with("weeks_") => "lapsing",
        "spend_trend_8w" | "spend_30d" | "spend_90d" | "spend_365d" | "monetary_total"
        | "monetary_mean" | "items_per_order" | "category_count" | "top_category_share" => "spend",
        "cases_90d" | "cases_365d" | "negative_case_share_365d" => "support",
        "return_share_365d" => "returns",
        "single_purchase" | "frequency" | "tenure_days" => "new",
        "engagement_90d" => "engagement",
        _ => "other",
    }
}

/// The action table (band × the family of the strongest factor that raises the risk):
///
/// | family | high | medium |
/// |---|---|---|
/// | lapsing (recency, overdue, orders, recent weeks) | `retention_call`: schedule a retention call | `win_back_offer`: send a win-back offer |
/// | spend (trend, totals, basket) | `retention_call` | `loyalty_offer`: offer a loyalty discount on the next order |
/// | support (cases, negative tone) | `escalate_cases`: have the account owner review open support cases | `follow_up_cases`: follow up on recent support cases |
/// | returns | `review_returns`: review the returned products with the customer | `review_returns` |
/// | new (single purchase, short tenure) | `second_order_offer`: send a second-order offer | `second_order_offer` |
/// | engagement | `retention_call` | `invite_engagement`: invite to an event or webinar |
/// | none / other | `retention_call` | `nurture`: add to the nurture campaign |
///
/// `low` is always `keep_cadence`: no intervention, keep the regular contact cadence.
#[must_use]
pub fn next_best_action(band: RiskBand, factors: &[ScoreFactor]) -> NextBestAction {
    let top = factors
        .iter()
        .find(|f| f.direction == FactorDirection::RaisesRisk);
    let why = top.map_or_else(
        || format!("{} churn risk", band.as_str()),
        |f| format!("{} churn risk; main reason: {}", band.as_str(), f.text),
    );
    let (code, action) = match (band, top.map_or("other", |f| family(&f.factor))) {
        (RiskBand::Low, _) => (
            "keep_cadence",
            "No intervention: keep the regular contact cadence",
        ),
        (RiskBand::High, "support") => (
            "escalate_cases",
            "Have the account owner review open support cases",
        ),
        (RiskBand::Medium, "support") => ("follow_up_cases", "Follow up on recent support cases"),
        (_, "returns") => (
            "review_returns",
            "Review the returned products with the customer",
        ),
        (_, "new") => ("second_order_offer", "Send a second-order offer"),
        (RiskBand::Medium, "lapsing") => ("win_back_offer", "Send a win-back offer"),
        (RiskBand::Medium, "spend") => (
            "loyalty_offer",
            "Offer a loyalty discount on the next order",
        ),
        (RiskBand::Medium, "engagement") => ("invite_engagement", "Invite to an event or webinar"),
        (RiskBand::Medium, _) => ("nurture", "Add to the nurture campaign"),
        (RiskBand::High, _) => ("retention_call", "Schedule a retention call"),
    };
    NextBestAction {
        code: code.to_owned(),
        action: action.to_owned(),
        reason: why,
        // The value of an action comes from the CLV model (`action_policy`).
        expected_value: None,
    }
}

/// Band thresholds from the scores of the training rows: `high` from the 80th percentile,
/// `medium` from the 50th, `low` from 0 (highest threshold first).
#[must_use]
pub fn fit_bands(scores: &[f64]) -> Vec<BandThreshold> {
    let mut s: Vec<f64> = scores.iter().copied().filter(|v| v.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    let q = |p: f64| -> f64 {
        if s.is_empty() {
            return p;
        }
        let i = ((s.len() - 1) as f64 * p).round() as usize;
        s[i.min(s.len() - 1)]
    };
    let high = q(0.8);
    let medium = q(0.5).min(high);
    vec![
        BandThreshold {
            name: RiskBand::High,
            min_score: high,
        },
        BandThreshold {
            name: RiskBand::Medium,
            min_score: medium,
        },
        BandThreshold {
            name: RiskBand::Low,
            min_score: 0.0,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_compare_the_actual_value_with_the_typical_one() {
        assert_eq!(
            feature_text("spend_trend_8w", (0.4f64).ln(), 0.0),
            "spend down 60% over the last 8 weeks vs the 8 before (typical: flat)"
        );
        assert_eq!(
            feature_text("recency_days", 120.0, 21.0),
            "no order for 120 days (typical: 21)"
        );
        assert_eq!(
            feature_text("orders_90d", 0.0, 2.0),
            "0 orders in the last 90 days (typical: 2)"
        );
        assert_eq!(
            feature_text("some_new_feature", 1.5, 0.25),
            "some new feature is 1.50 (typical: 0.25)"
        );
    }

    #[test]
    fn bands_are_quantiles_and_the_action_follows_band_and_factor() {
        let scores: Vec<f64> = (0..=100).map(|i| f64::from(i) / 100.0).collect();
        let bands = fit_bands(&scores);
        assert_eq!(bands[0].name, RiskBand::High);
        assert!((bands[0].min_score - 0.8).abs() < 1e-9);
        assert!((bands[1].min_score - 0.5).abs() < 1e-9);
        let f = |name: &str, d| ScoreFactor {
            factor: name.into(),
            direction: d,
            text: "t".into(),
            impact: 0.1,
        };
        let lapsing = [f("recency_days", FactorDirection::RaisesRisk)];
        assert_eq!(
            next_best_action(RiskBand::High, &lapsing).code,
            "retention_call"
        );
        assert_eq!(
            next_best_action(RiskBand::Medium, &lapsing).code,
            "win_back_offer"
        );
        assert_eq!(
            next_best_action(RiskBand::Low, &lapsing).code,
            "keep_cadence"
        );
        // The first factor that raises the risk decides, not one that lowers it.
        let support = [
            f("recency_days", FactorDirection::LowersRisk),
            f("cases_90d", FactorDirection::RaisesRisk),
        ];
        let nba = next_best_action(RiskBand::High, &support);
        assert_eq!(nba.code, "escalate_cases");
        assert!(nba.reason.starts_with("high churn risk"), "{}", nba.reason);
    }

    use crate::artifact::Dense;
    use crate::sequence::GruWeights;

    /// logit = log1p(recency) − log1p(frequency) − 2; the GRU has zero weights, so the weeks do
    /// not move the score.
    fn served() -> SequenceChurnArtifact {
        let hidden = 1;
        SequenceChurnArtifact {
            kind: SEQUENCE_KIND.into(),
            version: ModelVersion::parse("churn-v3").expect("v"),
            feature_set: "rfmt-v2".into(),
            feature_names: vec!["recency_days".into(), "frequency".into()],
            sequence_channels: vec!["orders".into(), "spend".into()],
            sequence_weeks: 3,
            category_attribute: "country".into(),
            signed_features: vec![],
            horizon_days: 90,
            bands: vec![
                BandThreshold {
                    name: RiskBand::High,
                    min_score: 0.5,
                },
                BandThreshold {
                    name: RiskBand::Medium,
                    min_score: 0.2,
                },
                BandThreshold {
                    name: RiskBand::Low,
                    min_score: 0.0,
                },
            ],
            reference: Reference {
                feature_typical: vec![20.0, 5.0],
                week_blocks: vec![WeekBlock {
                    name: "weeks_1_2".into(),
                    first: 0,
                    last: 1,
                    typical_week: vec![0.5, 10.0],
                }],
            },
            network: SequenceArtifact {
                weeks: 2,
                channel_names: vec!["orders".into(), "spend".into()],
                channel_means: vec![0.0, 0.0],
                channel_stds: vec![1.0, 1.0],
                gru: GruWeights {
                    inputs: 2,
                    hidden,
                    w_x: vec![0.0; 2 * 3 * hidden],
                    b_x: vec![0.0; 3 * hidden],
                    w_h: vec![0.0; hidden * 3 * hidden],
                    b_h: vec![0.0; 3 * hidden],
                },
                categories: vec![MISSING_CATEGORY.into(), "UK".into()],
                embedding_dim: 1,
                embedding: vec![0.0, 0.0],
                aggregate_names: vec!["recency_days".into(), "frequency".into()],
                aggregate_means: vec![0.0, 0.0],
                aggregate_stds: vec![1.0, 1.0],
                aggregate_layer: Dense {
                    inputs: 2,
                    outputs: 2,
                    weights: vec![1.0, 0.0, 0.0, 1.0],
                    bias: vec![0.0, 0.0],
                },
                head: vec![Dense {
                    inputs: hidden + 1 + 2,
                    outputs: 1,
                    weights: vec![0.0, 0.0, 1.0, -1.0],
                    bias: vec![-2.0],
                }],
                wide: None,
            },
        }
    }

    #[test]
    fn a_block_of_weeks_is_occluded_exactly_when_the_pass_resumes() {
        // The GRU reads the weeks and the head reads its state, so a block of weeks moves the
        // score; its impact must equal scoring the occluded customer in full.
        let mut m = served();
        m.network.gru.w_x = vec![0.8, -0.5, 0.3, 0.02, 0.01, -0.03];
        m.network.gru.b_x = vec![0.1, -0.2, 0.05];
        m.network.gru.w_h = vec![0.4, 0.3, -0.6];
        m.network.head[0].weights = vec![2.5, 0.0, 1.0, -1.0];
        m.validate().expect("valid");
        let weeks = vec![vec![0.0, 0.0], vec![3.0, 90.0], vec![2.0, 40.0]];
        let features = [30.0, 4.0];
        let customer = CustomerInput {
            features: &features,
            sequence: &weeks,
            category: Some("UK"),
        };
        let explained = m
            .explain_batch(std::slice::from_ref(&customer), 1)
            .expect("explains");
        let block = explained[0]
            .factors
            .iter()
            .find(|f| f.factor == "weeks_1_2")
            .expect("the block of weeks is a factor");
        // weeks_1_2 = the two most recent weeks (the last two rows, oldest first).
        let mut occluded_weeks = weeks.clone();
        occluded_weeks[1] = vec![0.5, 10.0];
        occluded_weeks[2] = vec![0.5, 10.0];
        let occluded = CustomerInput {
            features: &features,
            sequence: &occluded_weeks,
            category: Some("UK"),
        };
        let full = m.score_batch(&[customer, occluded], 1).expect("scores");
        assert!((explained[0].score - full[0]).abs() < 1e-9);
        assert!(
            (block.impact - (full[0] - full[1])).abs() < 1e-6,
            "{} vs {}",
            block.impact,
            full[0] - full[1]
        );
        assert!(
            block.impact.abs() > 0.01,
            "the weeks matter: {}",
            block.impact
        );
    }

    #[test]
    fn occlusion_finds_the_feature_that_moves_the_score_and_its_direction() {
        let m = served();
        m.validate().expect("valid");
        let weeks = vec![vec![1.0, 30.0]; 3];
        let lapsed = [200.0, 5.0];
        let loyal = [20.0, 40.0];
        let customers = [
            CustomerInput {
                features: &lapsed,
                sequence: &weeks,
                category: Some("UK"),
            },
            CustomerInput {
                features: &loyal,
                sequence: &weeks,
                category: None,
            },
        ];
        let out = m.explain_batch(&customers, 2).expect("explains");
        let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
        let want = sig(201f64.ln() - 6f64.ln() - 2.0);
        assert!(
            (out[0].score - want).abs() < 1e-5,
            "{} vs {want}",
            out[0].score
        );
        // Only recency differs from typical, and it raises the risk; the weeks do not matter.
        assert_eq!(out[0].factors.len(), 1, "{:?}", out[0].factors);
        let f = &out[0].factors[0];
        assert_eq!(f.factor, "recency_days");
        assert_eq!(f.direction, FactorDirection::RaisesRisk);
        assert_eq!(f.text, "no order for 200 days (typical: 20)");
        let typical = sig(21f64.ln() - 6f64.ln() - 2.0);
        assert!((f.impact - (want - typical)).abs() < 1e-5);
        assert_eq!(out[0].band, RiskBand::High);
        assert_eq!(out[0].next_best_action.code, "retention_call");
        // Many orders lower the risk.
        assert_eq!(out[1].factors[0].factor, "frequency");
        assert_eq!(out[1].factors[0].direction, FactorDirection::LowersRisk);
        assert!(out[1].factors[0].impact < 0.0);
        assert_eq!(out[1].band, RiskBand::Low);
        assert_eq!(out[1].next_best_action.code, "keep_cadence");
        // Scoring alone gives the same numbers.
        let plain = m.score_batch(&customers, 1).expect("scores");
        assert!((plain[0] - out[0].score).abs() < 1e-12);
    }

    #[test]
    fn inputs_and_artefacts_that_do_not_fit_are_refused() {
        let m = served();
        let short_weeks = vec![vec![1.0, 30.0]; 2];
        let features = [1.0, 2.0];
        let c = CustomerInput {
            features: &features,
            sequence: &short_weeks,
            category: None,
        };
        assert!(matches!(
            m.score_batch(&[c], 1),
            Err(ModelError::Width {
                expected: 3,
                got: 2
            })
        ));
        let mut bad = served();
        bad.reference.feature_typical.pop();
        assert!(bad.validate().is_err());
        let mut bad = served();
        bad.bands.reverse();
        assert!(bad.validate().is_err());
        let mut bad = served();
        bad.reference.week_blocks[0].last = 5;
        assert!(bad.validate().is_err());
        // The untagged wrapper reads back what it wrote.
        let wrapped = ServedChurnModel::Sequence(Box::new(served()));
        let json = serde_json::to_string(&wrapped).expect("json");
        let back: ServedChurnModel = serde_json::from_str(&json).expect("reads");
        assert!(back.needs_sequences());
        assert_eq!(back, wrapped);
    }

    #[test]
    fn sequences_are_cut_to_the_recent_weeks_most_recent_first() {
        let seq = vec![vec![1.0, 10.0], vec![2.0, 20.0], vec![3.0, 30.0]];
        assert_eq!(
            recent_first(&seq, 2, 2).expect("fits"),
            vec![3.0, 30.0, 2.0, 20.0]
        );
        assert!(recent_first(&seq, 4, 2).is_err());
        assert!(recent_first(&seq, 2, 3).is_err());
        assert_eq!(
            network_aggregates(&[1.0, -2.0, 3.0], &[1]),
            vec![1.0, -2.0, 3.0, 2.0]
        );
    }
}
