//! The org's daily API budget, read from `Sforce-Limit-Info` on every answer.
//!
//! An org's 24-hour request allowance is shared by every integration and user in it; a sync that
//! spends it all breaks the customer's other tools until the window frees requests. So the
//! client tracks `api-usage=<used>/<max>` as the org reports it, slows down once a configured
//! share is used, and stops (with [`crate::SalesforceError::BudgetExhausted`]) before a second
//! configured share, well before Salesforce's own hard `REQUEST_LIMIT_EXCEEDED`.

use std::sync::Mutex;
use std::time::Duration;

use crate::SalesforceError;

/// Requests used and allowed in the org's rolling 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

impl ApiUsage {
    /// `used / max` (1.0 when `max` is 0).
    pub fn share(&self) -> f64 {
        if self.max == 0 {
            1.0
        } else {
            self.used as f64 / self.max as f64
        }
    }
}

/// Reads `api-usage=18/5000` from a `Sforce-Limit-Info` value (which may also carry
/// `; per-app-api-usage=17/250(appName=…)`).
pub fn parse_limit_info(value: &str) -> Option<ApiUsage> {
    value.split(';').find_map(|part| {
        let rest = part.trim().strip_prefix("api-usage=")?;
        let (used, max) = rest.split_once('/')?;
        let max: String = max.chars().take_while(char::is_ascii_digit).collect();
        Some(ApiUsage {
            used: used.trim().parse().ok()?,
            max: max.parse().ok()?,
        })
    })
}

/// When to slow down and when to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetPolicy {
    /// Share of the daily allowance (0..=1) from which every call waits [`Self::slow_down_delay`].
    pub slow_down_at: f64,
    /// Share from which no call is sent.
    pub stop_at: f64,
    /// The wait added before each call while slowed down.
    pub slow_down_delay: Duration,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        Self {
            slow_down_at: 0.8,
            stop_at: 0.95,
            slow_down_delay: Duration::from_secs(1),
        }
    }
}

impl BudgetPolicy {
    /// Checks `0 < slow_down_at <= stop_at <= 1`.
    pub fn validate(&self) -> Result<(), SalesforceError> {
        let ok = self.slow_down_at > 0.0
            && self.slow_down_at <= self.stop_at
            && self.stop_at <= 1.0
            && self.slow_down_at.is_finite()
            && self.stop_at.is_finite();
        if ok {
            Ok(())
        } else {
            Err(SalesforceError::Config(format!(
                "API budget shares must satisfy 0 < slow_down_at ({}) <= stop_at ({}) <= 1",
                self.slow_down_at, self.stop_at
            )))
        }
    }
}

/// What to do before the next call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BudgetDecision {
    Go,
    SlowDown(Duration),
    Stop(ApiUsage),
}

/// The latest usage the org reported.
#[derive(Debug, Default)]
pub struct UsageTracker {
    latest: Mutex<Option<ApiUsage>>,
}

impl UsageTracker {
    /// Records a reported usage. Answers can arrive out of order; usage only grows within a
    /// window, so the larger `used` wins unless the allowance itself changed.
    pub fn record(&self, usage: ApiUsage) {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        *latest = match *latest {
            Some(prev) if prev.max == usage.max && prev.used > usage.used => Some(prev),
            _ => Some(usage),
        };
    }

    /// The latest usage, if any answer carried one.
    pub fn latest(&self) -> Option<ApiUsage> {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides about the next call.
    pub fn decide(&self, policy: &BudgetPolicy) -> BudgetDecision {
        match self.latest() {
            Some(u) if u.share() >= policy.stop_at => BudgetDecision::Stop(u),
            Some(u) if u.share() >= policy.slow_down_at => {
                BudgetDecision::SlowDown(policy.slow_down_delay)
            }
            _ => BudgetDecision::Go,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_info_parses_with_and_without_per_app_usage() {
        assert_eq!(
            parse_limit_info("api-usage=18/5000"),
            Some(ApiUsage {
                used: 18,
                max: 5000
            })
        );
        assert_eq!(
            parse_limit_info(
                "api-usage=18/5000; per-app-api-usage=17/250(appName=sample-connected-app)"
            ),
            Some(ApiUsage {
                used: 18,
                max: 5000
            })
        );
        assert_eq!(
            parse_limit_info("per-app-api-usage=17/250(appName=x); api-usage=3/15000"),
            Some(ApiUsage {
                used: 3,
                max: 15000
            })
        );
        assert_eq!(parse_limit_info("garbage"), None);
        assert_eq!(parse_limit_info("api-usage=x/5"), None);
    }

    #[test]
    fn decisions_follow_the_shares() {
        let policy = BudgetPolicy {
            slow_down_at: 0.5,
            stop_at: 0.9,
            slow_down_delay: Duration::from_millis(5),
        };
        let t = UsageTracker::default();
        assert_eq!(t.decide(&policy), BudgetDecision::Go, "nothing known yet");
        t.record(ApiUsage { used: 10, max: 100 });
        assert_eq!(t.decide(&policy), BudgetDecision::Go);
        t.record(ApiUsage { used: 60, max: 100 });
        assert_eq!(
            t.decide(&policy),
            BudgetDecision::SlowDown(Duration::from_millis(5))
        );
        // An older answer arriving late does not lower the usage.
        t.record(ApiUsage { used: 20, max: 100 });
        assert_eq!(t.latest(), Some(ApiUsage { used: 60, max: 100 }));
        t.record(ApiUsage { used: 90, max: 100 });
        assert!(matches!(t.decide(&policy), BudgetDecision::Stop(_)));
    }

    #[test]
    fn nonsensical_policies_are_refused() {
        for (slow, stop) in [(0.0, 0.5), (0.9, 0.5), (0.5, 1.5), (f64::NAN, 0.5)] {
            let p = BudgetPolicy {
                slow_down_at: slow,
                stop_at: stop,
                ..BudgetPolicy::default()
            };
            assert!(p.validate().is_err(), "{slow} {stop}");
        }
        assert!(BudgetPolicy::default().validate().is_ok());
    }
}
