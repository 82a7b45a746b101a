//! The value-aware next best action: a configurable policy over churn band × CLV value tier.
//!
//! Why a table over two axes: the churn model says how likely a customer is to leave, the CLV
//! model what they are worth; what to spend on them depends on both. A premium retention offer
//! is worth it for a valuable customer at high risk, not for a low-value one; a valuable customer
//! at low risk is a cross-sell opportunity rather than a retention case. The churn model's own
//! action (band × its top factor, [`crate::churn_serving::next_best_action`]) stays the answer
//! where the table says so, and whenever no CLV is available.
//!
//! # Defaults ([`ActionPolicy::default`])
//!
//! | band \ tier | high | medium | low |
//! |---|---|---|---|
//! | high | `retention_offer_premium` (CLV at stake) | `retention_offer` (at stake) | the churn model's action (at stake) |
//! | medium | `account_manager_check_in` (at stake) | the churn model's action (at stake) | the churn model's action (at stake) |
//! | low | `cross_sell` (CLV kept) | `cross_sell` (kept) | the churn model's action, `keep_cadence` (kept) |
//!
//! Accounts without purchase history get `onboarding`. `expected_value` is the CLV at stake
//! (CLV × churn probability) or the CLV kept (CLV × (1 − churn probability)), per rule.
//!
//! The cross-sell action does not name a product: the recommender is not served by the gateway
//! yet.

use serde::{Deserialize, Serialize};
use sextant_contracts::api::{ClvEstimate, NextBestAction, RiskBand, ValueTier};

/// What a rule's `expected_value` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueBasis {
    /// CLV × churn probability: the value a retention action tries to save.
    #[default]
    AtRisk,
    /// CLV × (1 − churn probability): the value a growth action builds on.
    Retained,
}

/// One cell of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    pub band: RiskBand,
    pub tier: ValueTier,
    /// The action's stable code; with `action`, or neither (then the churn model's own action).
    #[serde(default)]
    pub code: Option<String>,
    /// The action's text.
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub expected_value: ValueBasis,
}

/// An action without a rule cell (onboarding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedAction {
    pub code: String,
    pub action: String,
}

/// The policy (gateway setting `action_policy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionPolicy {
    /// One rule per (band, tier): 9 in all.
    pub rules: Vec<PolicyRule>,
    /// The action of accounts with no purchase history.
    pub no_history: FixedAction,
}

/// Why a policy is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A (band, tier) cell has no rule, or more than one.
    #[error("action policy: band {band} × tier {tier} has {count} rules; exactly one is needed")]
    Cell {
        band: &'static str,
        tier: &'static str,
        count: usize,
    },
    /// A rule or action is malformed.
    #[error("action policy: {0}")]
    Rule(String),
}

fn rule(
    band: RiskBand,
    tier: ValueTier,
    fixed: Option<(&str, &str)>,
    basis: ValueBasis,
) -> PolicyRule {
    PolicyRule {
        band,
        tier,
        code: fixed.map(|(c, _)| c.to_owned()),
        action: fixed.map(|(_, a)| a.to_owned()),
        expected_value: basis,
    }
}

impl Default for ActionPolicy {
    fn default() -> Self {
        use RiskBand as B;
        use ValueBasis::{AtRisk, Retained};
        use ValueTier as T;
        let premium = Some((
            "retention_offer_premium",
            "Offer the top retention tier: an account-manager call and a loyalty discount",
        ));
        let offer = Some(("retention_offer", "Send a retention offer"));
        let check_in = Some((
            "account_manager_check_in",
            "Have the account manager check in",
        ));
        let cross_sell = Some(("cross_sell", "Recommend the best cross-sell product"));
        Self {
            rules: vec![
                rule(B::High, T::High, premium, AtRisk),
                rule(B::High, T::Medium, offer, AtRisk),
                rule(B::High, T::Low, None, AtRisk),
                rule(B::Medium, T::High, check_in, AtRisk),
                rule(B::Medium, T::Medium, None, AtRisk),
                rule(B::Medium, T::Low, None, AtRisk),
                rule(B::Low, T::High, cross_sell, Retained),
                rule(B::Low, T::Medium, cross_sell, Retained),
                rule(B::Low, T::Low, None, Retained),
            ],
            no_history: FixedAction {
                code: "onboarding".into(),
                action: "Start onboarding: a welcome call and a first-order offer".into(),
            },
        }
    }
}

fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl ActionPolicy {
    /// Checks that every (band, tier) cell has exactly one rule, and that codes are
    /// `snake_case` with a non-empty text.
    ///
    /// # Errors
    /// [`PolicyError`] naming the first problem.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for band in [RiskBand::High, RiskBand::Medium, RiskBand::Low] {
            for tier in [ValueTier::High, ValueTier::Medium, ValueTier::Low] {
                let count = self
                    .rules
                    .iter()
                    .filter(|r| r.band == band && r.tier == tier)
                    .count();
                if count != 1 {
                    return Err(PolicyError::Cell {
                        band: band.as_str(),
                        tier: tier.as_str(),
                        count,
                    });
                }
            }
        }
        for r in &self.rules {
            match (&r.code, &r.action) {
                (None, None) => {}
                (Some(c), Some(a)) if valid_code(c) && !a.trim().is_empty() => {}
                _ => {
                    return Err(PolicyError::Rule(format!(
                        "the rule for band {} × tier {} needs both a snake_case code and an action text, or neither (the churn model's action)",
                        r.band.as_str(),
                        r.tier.as_str()
                    )));
                }
            }
        }
        if !valid_code(&self.no_history.code) || self.no_history.action.trim().is_empty() {
            return Err(PolicyError::Rule(
                "no_history needs a snake_case code and an action text".into(),
            ));
        }
        Ok(())
    }

    /// The action for a scored record: the rule of its band and value tier, or the churn
    /// model's action (`churn_action`) when the rule says so or there is no CLV.
    #[must_use]
    pub fn decide(
        &self,
        band: RiskBand,
        churn_probability: f64,
        churn_action: &NextBestAction,
        clv: Option<&ClvEstimate>,
    ) -> NextBestAction {
        let Some(clv) = clv else {
            return churn_action.clone();
        };
        let rule = self
            .rules
            .iter()
            .find(|r| r.band == band && r.tier == clv.value_tier);
        let p = churn_probability.clamp(0.0, 1.0);
        let basis = rule.map_or(ValueBasis::AtRisk, |r| r.expected_value);
        let expected_value = match basis {
            ValueBasis::AtRisk => clv.value * p,
            ValueBasis::Retained => clv.value * (1.0 - p),
        };
        let (code, action) = match rule.and_then(|r| r.code.as_ref().zip(r.action.as_ref())) {
            Some((c, a)) => (c.clone(), a.clone()),
            None => (churn_action.code.clone(), churn_action.action.clone()),
        };
        let basis_text = match basis {
            ValueBasis::AtRisk => "at stake",
            ValueBasis::Retained => "kept",
        };
        NextBestAction {
            code,
            action,
            reason: format!(
                "{}; {} value (CLV {:.2} over {} months, {:.2} {basis_text})",
                churn_action.reason,
                clv.value_tier.as_str(),
                clv.value,
                clv.horizon_months,
                expected_value
            ),
            expected_value: Some(expected_value),
        }
    }

    /// The action for an account without purchase history.
    #[must_use]
    pub fn onboarding(&self) -> NextBestAction {
        NextBestAction {
            code: self.no_history.code.clone(),
            action: self.no_history.action.clone(),
            reason: "no purchase history yet: nothing to score, so start the relationship".into(),
            expected_value: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use sextant_contracts::ModelVersion;

    use super::*;

    fn clv(tier: ValueTier, value: f64) -> ClvEstimate {
        ClvEstimate {
            value,
            horizon_months: 12,
            discount_rate_annual: 0.1,
            p_alive: 0.8,
            expected_purchases: 3.0,
            expected_spend_per_purchase: value / 3.0,
            value_tier: tier,
            model_version: ModelVersion::parse("clv-v1").expect("v"),
            factors: Vec::new(),
        }
    }

    fn churn_action(code: &str) -> NextBestAction {
        NextBestAction {
            code: code.into(),
            action: "from the churn model".into(),
            reason: "high churn risk; main reason: no purchase for 120 days".into(),
            expected_value: None,
        }
    }

    #[test]
    fn the_default_table_follows_band_and_tier() {
        let p = ActionPolicy::default();
        p.validate().expect("the defaults are valid");
        let a = p.decide(
            RiskBand::High,
            0.6,
            &churn_action("retention_call"),
            Some(&clv(ValueTier::High, 1000.0)),
        );
        assert_eq!(a.code, "retention_offer_premium");
        assert_eq!(a.expected_value, Some(600.0));
        assert!(
            a.reason.contains("high value") && a.reason.contains("no purchase"),
            "{}",
            a.reason
        );
        // Low value at high risk: the churn model's own (cheap, factor-driven) action.
        let a = p.decide(
            RiskBand::High,
            0.6,
            &churn_action("retention_call"),
            Some(&clv(ValueTier::Low, 10.0)),
        );
        assert_eq!(a.code, "retention_call");
        assert_eq!(a.expected_value, Some(6.0));
        // Low risk, high value: cross-sell, valued on what is kept.
        let a = p.decide(
            RiskBand::Low,
            0.1,
            &churn_action("keep_cadence"),
            Some(&clv(ValueTier::High, 1000.0)),
        );
        assert_eq!(a.code, "cross_sell");
        assert!((a.expected_value.expect("value") - 900.0).abs() < 1e-9);
        // Without a CLV the churn model's action is returned unchanged.
        let a = p.decide(RiskBand::Low, 0.1, &churn_action("keep_cadence"), None);
        assert_eq!(a, churn_action("keep_cadence"));
        assert_eq!(p.onboarding().code, "onboarding");
    }

    #[test]
    fn a_configured_policy_is_read_and_checked() {
        let mut p = ActionPolicy::default();
        p.rules.pop();
        assert!(matches!(
            p.validate(),
            Err(PolicyError::Cell {
                band: "low",
                tier: "low",
                count: 0
            })
        ));
        let mut p = ActionPolicy::default();
        p.rules[0].action = None;
        assert!(matches!(p.validate(), Err(PolicyError::Rule(_))));
        let mut p = ActionPolicy::default();
        p.rules[0].code = Some("Bad Code".into());
        assert!(p.validate().is_err());

        let json = serde_json::json!({
            "rules": ActionPolicy::default().rules.iter().map(|r| {
                let mut v = serde_json::to_value(r).expect("rule");
                if r.band == RiskBand::Medium && r.tier == ValueTier::High {
                    v["code"] = "vip_call".into();
                    v["action"] = "Call the customer".into();
                }
                v
            }).collect::<Vec<_>>(),
            "no_history": {"code": "welcome", "action": "Send the welcome pack"},
        });
        let p: ActionPolicy = serde_json::from_value(json).expect("parses");
        p.validate().expect("valid");
        let a = p.decide(
            RiskBand::Medium,
            0.3,
            &churn_action("win_back_offer"),
            Some(&clv(ValueTier::High, 100.0)),
        );
        assert_eq!(
            (a.code.as_str(), a.action.as_str()),
            ("vip_call", "Call the customer")
        );
        assert_eq!(p.onboarding().code, "welcome");
    }
}
