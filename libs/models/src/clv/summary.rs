//! Per-customer sufficient statistics built from a transaction log.
//!
//! The BTYD models see a customer only through `(x, t_x, T)`: x = repeat purchases in the calibration
//! period, t_x = time of the last purchase, T = time from the first purchase to the end of calibration.
//! How these are counted decides whether published figures reproduce, so the rules are fixed here once:
//!
//! - a "purchase" is a purchase **day**: all transactions of one customer on one day are merged
//!   (their amounts summed), as Fader, Hardie & Lee and `lifetimes` do;
//! - time is measured in **weeks** = days / 7 from the customer's first purchase day;
//! - calibration = days `<= calibration_end`; holdout = days in `(calibration_end, observation_end]`;
//! - a customer whose first purchase is after `calibration_end` is not in the calibration cohort;
//! - spend `m_x` = mean amount of the **repeat** purchase days in calibration (the first day is excluded,
//!   as in the Gamma-Gamma note), 0 when x = 0.
//!
//! [`SummaryBuilder`] takes transactions one at a time, so a caller can stream a file of any size; it
//! keeps one map entry per customer-day.

use std::collections::{BTreeMap, HashMap};

use super::ClvError;

/// Days per model time unit (the models work in weeks).
pub const DAYS_PER_WEEK: f64 = 7.0;

/// A customer's calibration statistics, in weeks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Repeat purchases in calibration (purchase days after the first).
    pub x: f64,
    /// Recency: weeks from the first to the last calibration purchase.
    pub t_x: f64,
    /// Age: weeks from the first purchase to the end of calibration ("T").
    pub t: f64,
}

impl Summary {
    /// Checks `x >= 0`, `0 <= t_x <= T`, all finite. `T = 0` is allowed: a customer whose first
    /// purchase is on the last calibration day carries no information (likelihood 1) but belongs to
    /// the cohort whose holdout is predicted.
    ///
    /// # Errors
    /// [`ClvError::InvalidSummary`] naming the customer's position and the broken rule.
    pub fn validate(&self, index: usize) -> Result<(), ClvError> {
        let ok = self.x.is_finite()
            && self.t_x.is_finite()
            && self.t.is_finite()
            && self.x >= 0.0
            && self.t >= 0.0
            && self.t_x >= 0.0
            && self.t_x <= self.t + 1e-9;
        if ok {
            Ok(())
        } else {
            Err(ClvError::InvalidSummary {
                index,
                message: format!(
                    "need x >= 0 and 0 <= t_x <= T (got x={}, t_x={}, T={})",
                    self.x, self.t_x, self.t
                ),
            })
        }
    }
}

/// One customer's calibration statistics, spend and holdout outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRecord {
    /// The customer's id as it appears in the log.
    pub id: String,
    /// Calibration statistics.
    pub summary: Summary,
    /// Mean amount of the repeat purchase days in calibration (0 when x = 0).
    pub mean_repeat_spend: f64,
    /// Purchase days in the holdout period.
    pub holdout_purchases: f64,
    /// Amount spent in the holdout period.
    pub holdout_spend: f64,
}

/// The calibration cohort and the holdout length.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationHoldout {
    /// Customers first seen on or before the calibration end, ordered by id.
    pub customers: Vec<CustomerRecord>,
    /// Holdout length t* in weeks.
    pub holdout_weeks: f64,
    /// Customers whose first purchase falls after the calibration end (not in the cohort).
    pub excluded_late_customers: usize,
}

/// Accumulates transactions (customer, day, amount), merging same-day purchases.
#[derive(Debug, Default)]
pub struct SummaryBuilder {
    days: HashMap<String, BTreeMap<i64, f64>>,
    transactions: usize,
}

impl SummaryBuilder {
    /// An empty builder.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one transaction. `day` is any day number (e.g. days since an epoch); `amount` is summed
    /// into the customer's day.
    pub fn add(&mut self, customer: &str, day: i64, amount: f64) {
        self.transactions += 1;
        if let Some(days) = self.days.get_mut(customer) {
            *days.entry(day).or_insert(0.0) += amount;
        } else {
            self.days
                .insert(customer.to_owned(), BTreeMap::from([(day, amount)]));
        }
    }

    /// Transactions added so far.
    #[must_use]
    pub fn transactions(&self) -> usize {
        self.transactions
    }

    /// Distinct customers so far.
    #[must_use]
    pub fn customers(&self) -> usize {
        self.days.len()
    }

    /// The first and last day seen, if any.
    #[must_use]
    pub fn day_range(&self) -> Option<(i64, i64)> {
        let first = self.days.values().filter_map(|d| d.keys().next()).min()?;
        let last = self
            .days
            .values()
            .filter_map(|d| d.keys().next_back())
            .max()?;
        Some((*first, *last))
    }

    /// Splits at `calibration_end` (inclusive) and counts the holdout up to `observation_end`
    /// (inclusive).
    ///
    /// # Errors
    /// [`ClvError::NoData`] when `observation_end <= calibration_end` or no customer starts by the
    /// calibration end.
    pub fn build(
        &self,
        calibration_end: i64,
        observation_end: i64,
    ) -> Result<CalibrationHoldout, ClvError> {
        if observation_end <= calibration_end {
            return Err(ClvError::NoData(format!(
                "the observation end (day {observation_end}) must be after the calibration end (day {calibration_end})"
            )));
        }
        let mut customers = Vec::new();
        let mut excluded = 0;
        for (id, days) in &self.days {
            let Some((&first, _)) = days.iter().next() else {
                continue;
            };
            if first > calibration_end {
                excluded += 1;
                continue;
            }
            let mut repeat = 0usize;
            let mut repeat_spend = 0.0;
            let mut last = first;
            let mut holdout = 0usize;
            let mut holdout_spend = 0.0;
            for (&day, &amount) in days {
                if day <= calibration_end {
                    if day != first {
                        repeat += 1;
                        repeat_spend += amount;
                        last = day;
                    }
                } else if day <= observation_end {
                    holdout += 1;
                    holdout_spend += amount;
                }
            }
            customers.push(CustomerRecord {
                id: id.clone(),
                summary: Summary {
                    x: repeat as f64,
                    t_x: (last - first) as f64 / DAYS_PER_WEEK,
                    t: (calibration_end - first) as f64 / DAYS_PER_WEEK,
                },
                mean_repeat_spend: if repeat > 0 {
                    repeat_spend / repeat as f64
                } else {
                    0.0
                },
                holdout_purchases: holdout as f64,
                holdout_spend,
            });
        }
        if customers.is_empty() {
            return Err(ClvError::NoData(format!(
                "no customer made a first purchase on or before the calibration end (day {calibration_end})"
            )));
        }
        customers.sort_by(|a, b| natural_order(&a.id, &b.id));
        Ok(CalibrationHoldout {
            customers,
            holdout_weeks: (observation_end - calibration_end) as f64 / DAYS_PER_WEEK,
            excluded_late_customers: excluded,
        })
    }
}

/// Numeric ids in numeric order, then anything else in text order (stable output for people).
fn natural_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_same_day_purchases_and_counts_weeks_from_the_first_day() -> Result<(), ClvError> {
        let mut b = SummaryBuilder::new();
        // Customer 7: day 0 (twice: one purchase), day 14, day 21 (calibration), day 30 and 40 (holdout).
        for (day, amount) in [
            (0, 5.0),
            (0, 5.0),
            (14, 20.0),
            (21, 30.0),
            (30, 7.0),
            (40, 3.0),
        ] {
            b.add("7", day, amount);
        }
        // Customer 2: one purchase on day 7, nothing else.
        b.add("2", 7, 1.0);
        // Customer 9: first seen after the cut: not in the cohort.
        b.add("9", 29, 1.0);
        let split = b.build(28, 42)?;
        assert_eq!(split.excluded_late_customers, 1);
        assert_eq!(split.holdout_weeks, 2.0);
        let ids: Vec<&str> = split.customers.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["2", "7"]);
        let c = &split.customers[1];
        assert_eq!(
            c.summary,
            Summary {
                x: 2.0,
                t_x: 3.0,
                t: 4.0
            }
        );
        assert_eq!(c.mean_repeat_spend, 25.0);
        assert_eq!((c.holdout_purchases, c.holdout_spend), (2.0, 10.0));
        let c = &split.customers[0];
        assert_eq!(
            c.summary,
            Summary {
                x: 0.0,
                t_x: 0.0,
                t: 3.0
            }
        );
        assert_eq!(c.mean_repeat_spend, 0.0);
        Ok(())
    }

    #[test]
    fn refuses_an_empty_cohort_or_a_backwards_split() {
        let mut b = SummaryBuilder::new();
        b.add("1", 100, 1.0);
        assert!(matches!(b.build(50, 200), Err(ClvError::NoData(_))));
        assert!(matches!(b.build(150, 150), Err(ClvError::NoData(_))));
    }

    #[test]
    fn validate_names_the_broken_rule() {
        let s = Summary {
            x: 1.0,
            t_x: 5.0,
            t: 4.0,
        };
        let Err(ClvError::InvalidSummary { index, message }) = s.validate(3) else {
            panic!("t_x > T must be refused");
        };
        assert_eq!(index, 3);
        assert!(message.contains("t_x"), "{message}");
        assert!(
            Summary {
                x: 0.0,
                t_x: 0.0,
                t: 1.0
            }
            .validate(0)
            .is_ok()
        );
    }
}
