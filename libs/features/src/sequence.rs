//! Weekly behaviour sequences and aggregate RFM features per customer, as of a cut-off.
//!
//! The sequence churn model reads a customer's recent history week by week instead of six
//! aggregates, so that it can see *shape* (a customer slowing down, a burst of support cases)
//! that RFM flattens away. This module is the reference definition: the feature store computes
//! the same numbers set-based in SQL and its tests compare against these functions, so every
//! definition below is meant to be unambiguous.
//!
//! # Definitions
//! - **Cut-off** `D`: a date. Only transactions dated **strictly before** `D` are visible; a
//!   transaction on or after `D` never changes any feature (point-in-time rule, as in the crate
//!   root).
//! - **Week `w`** (`w = 0, 1, …, weeks − 1`): the seven days `[D − 7(w + 1), D − 7w)`. Week 0 is
//!   the week just before the cut-off; week `weeks − 1` the oldest. Transactions older than the
//!   oldest week fall outside the sequence (they still count in the aggregates).
//! - **Channels** per week, in [`WEEK_CHANNELS`] order:
//!   - `orders`: number of [`Activity::Order`] transactions in the week (the caller decides what
//!     one order is; the Online Retail evaluation passes one per customer-day);
//!   - `spend`: sum of their `spend`;
//!   - `items`: sum of their `items`;
//!   - `cases`: number of [`Activity::Case`] transactions (support cases) in the week.
//! - **Aggregates** ([`Rfm`], same meaning as [`crate::rfm_as_of`]), over **all** visible orders
//!   (not limited to the sequence window); cases do not count:
//!   `recency_days` = `D` − date of the last order; `frequency` = number of orders;
//!   `monetary_total` = sum of spend; `monetary_mean` = total / frequency; `tenure_days` = `D` −
//!   date of the first order; `orders_last_90d` = orders with `D − date ≤ 90` days.
//! - **Population**: a customer has a history as of `D` when it has at least one visible order.
//!   Customers with only cases (or nothing) before `D` get no entry.
//! - **Label window** ([`ordered_within`]): customers with at least one order in `[D, D + h)`.
//!
//! Everything is a single pass over an iterator, with memory proportional to customers × weeks,
//! never to the number of transactions.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate};

use crate::Rfm;

/// The longest sequence the model family takes (two years of weeks).
pub const MAX_WEEKS: usize = 104;

/// The per-week channels, in the order of every week's values.
pub const WEEK_CHANNELS: [&str; 4] = ["orders", "spend", "items", "cases"];

/// Number of channels per week.
pub const CHANNELS: usize = WEEK_CHANNELS.len();

/// What happened in one transaction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activity {
    /// One order with its total spend (quantity × unit price summed) and number of items.
    Order {
        /// Amount spent.
        spend: f64,
        /// Items bought (sum of quantities).
        items: f64,
    },
    /// One support case opened.
    Case,
}

/// One dated transaction of a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction<C> {
    /// The customer (account) key.
    pub customer: C,
    /// The day it happened.
    pub date: NaiveDate,
    /// What happened.
    pub activity: Activity,
}

/// Why sequences cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceError {
    /// `weeks` must be between 1 and [`MAX_WEEKS`].
    #[error("sequence length {0} weeks is outside 1..={MAX_WEEKS}")]
    Weeks(usize),
}

/// A customer's weekly sequence: `weeks × CHANNELS` values, week 0 (most recent) first.
#[derive(Debug, Clone, PartialEq)]
pub struct WeeklySequence {
    weeks: usize,
    values: Vec<f64>,
}

impl WeeklySequence {
    fn zeros(weeks: usize) -> Self {
        Self {
            weeks,
            values: vec![0.0; weeks * CHANNELS],
        }
    }

    /// Number of weeks.
    #[must_use]
    pub fn weeks(&self) -> usize {
        self.weeks
    }

    /// The channels of week `w` (0 = just before the cut-off), or `None` past the end.
    #[must_use]
    pub fn week(&self, w: usize) -> Option<&[f64]> {
        self.values.get(w * CHANNELS..(w + 1) * CHANNELS)
    }

    /// All values, week 0 first, [`WEEK_CHANNELS`] within each week.
    #[must_use]
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Sum of one channel over all weeks.
    #[must_use]
    pub fn total(&self, channel: usize) -> f64 {
        self.values.iter().skip(channel).step_by(CHANNELS).sum()
    }
}

/// Everything the sequence model knows about one customer as of a cut-off.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerHistory {
    /// The weekly sequence.
    pub sequence: WeeklySequence,
    /// Aggregate RFM features over all visible orders.
    pub rfm: Rfm,
}

/// Running aggregates of one customer while the iterator is consumed.
#[derive(Debug)]
struct Acc {
    sequence: WeeklySequence,
    first: Option<NaiveDate>,
    last: Option<NaiveDate>,
    orders: f64,
    spend: f64,
    recent: f64,
}

/// Weekly sequences and RFM aggregates as of `cutoff` for every customer with at least one order
/// before it (see the module docs for the exact definitions).
///
/// # Errors
/// [`SequenceError::Weeks`] when `weeks` is 0 or above [`MAX_WEEKS`].
pub fn histories_as_of<C: Ord>(
    transactions: impl IntoIterator<Item = Transaction<C>>,
    cutoff: NaiveDate,
    weeks: usize,
) -> Result<BTreeMap<C, CustomerHistory>, SequenceError> {
    if weeks == 0 || weeks > MAX_WEEKS {
        return Err(SequenceError::Weeks(weeks));
    }
    let mut accs: BTreeMap<C, Acc> = BTreeMap::new();
    for t in transactions {
        if t.date >= cutoff {
            continue;
        }
        let age_days = (cutoff - t.date).num_days(); // ≥ 1
        let week = usize::try_from((age_days - 1) / 7).unwrap_or(usize::MAX);
        let acc = accs.entry(t.customer).or_insert_with(|| Acc {
            sequence: WeeklySequence::zeros(weeks),
            first: None,
            last: None,
            orders: 0.0,
            spend: 0.0,
            recent: 0.0,
        });
        let slot = (week < weeks).then(|| week * CHANNELS);
        match t.activity {
            Activity::Order { spend, items } => {
                if let Some(s) = slot {
                    acc.sequence.values[s] += 1.0;
                    acc.sequence.values[s + 1] += spend;
                    acc.sequence.values[s + 2] += items;
                }
                acc.first = Some(acc.first.map_or(t.date, |f| f.min(t.date)));
                acc.last = Some(acc.last.map_or(t.date, |l| l.max(t.date)));
                acc.orders += 1.0;
                acc.spend += spend;
                if age_days <= 90 {
                    acc.recent += 1.0;
                }
            }
            Activity::Case => {
                if let Some(s) = slot {
                    acc.sequence.values[s + 3] += 1.0;
                }
            }
        }
    }
    Ok(accs
        .into_iter()
        .filter_map(|(customer, acc)| {
            let (first, last) = (acc.first?, acc.last?);
            let rfm = Rfm {
                recency_days: (cutoff - last).num_days() as f64,
                frequency: acc.orders,
                monetary_total: acc.spend,
                monetary_mean: acc.spend / acc.orders,
                tenure_days: (cutoff - first).num_days() as f64,
                orders_last_90d: acc.recent,
            };
            Some((
                customer,
                CustomerHistory {
                    sequence: acc.sequence,
                    rfm,
                },
            ))
        })
        .collect())
}

/// Customers with at least one order in `[cutoff, cutoff + horizon_days)` (the label window).
pub fn ordered_within<C: Ord>(
    transactions: impl IntoIterator<Item = Transaction<C>>,
    cutoff: NaiveDate,
    horizon_days: u32,
) -> BTreeSet<C> {
    let end = cutoff + Duration::days(i64::from(horizon_days));
    transactions
        .into_iter()
        .filter(|t| {
            matches!(t.activity, Activity::Order { .. }) && t.date >= cutoff && t.date < end
        })
        .map(|t| t.customer)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") else {
            panic!("bad test date {s}");
        };
        date
    }
    fn order(c: u32, date: &str, spend: f64, items: f64) -> Transaction<u32> {
        Transaction {
            customer: c,
            date: d(date),
            activity: Activity::Order { spend, items },
        }
    }
    fn case(c: u32, date: &str) -> Transaction<u32> {
        Transaction {
            customer: c,
            date: d(date),
            activity: Activity::Case,
        }
    }

    // Cut-off Thursday 2011-09-08: week 0 = 09-01..09-07, week 1 = 08-25..08-31, …
    const CUTOFF: &str = "2011-09-08";

    fn sample() -> Vec<Transaction<u32>> {
        vec![
            order(1, "2011-09-07", 10.0, 2.0),  // week 0 (last day)
            order(1, "2011-09-01", 5.0, 1.0),   // week 0 (first day)
            order(1, "2011-08-31", 7.0, 3.0),   // week 1
            case(1, "2011-08-30"),              // week 1
            order(1, "2011-01-02", 100.0, 9.0), // week 35: outside 4 weeks, inside the aggregates
            order(1, "2011-09-08", 1e6, 1e6),   // on the cut-off: invisible
            order(1, "2011-10-01", 1e6, 1e6),   // after: invisible
            case(2, "2011-09-02"),              // only a case: no history
            order(3, "2011-09-08", 1.0, 1.0),   // first order on the cut-off: no history
        ]
    }

    #[test]
    fn weeks_are_counted_back_from_the_cutoff() -> Result<(), SequenceError> {
        let h = histories_as_of(sample(), d(CUTOFF), 4)?;
        assert_eq!(h.keys().copied().collect::<Vec<_>>(), vec![1]);
        let s = &h[&1].sequence;
        assert_eq!(s.weeks(), 4);
        assert_eq!(s.week(0), Some(&[2.0, 15.0, 3.0, 0.0][..]));
        assert_eq!(s.week(1), Some(&[1.0, 7.0, 3.0, 1.0][..]));
        assert_eq!(s.week(2), Some(&[0.0; 4][..]));
        assert_eq!(s.week(4), None);
        assert_eq!(s.total(1), 22.0);
        assert_eq!(s.values().len(), 16);
        Ok(())
    }

    #[test]
    fn aggregates_cover_all_visible_orders_but_not_cases() -> Result<(), SequenceError> {
        let h = histories_as_of(sample(), d(CUTOFF), 4)?;
        let r = h[&1].rfm;
        assert_eq!(r.frequency, 4.0);
        assert_eq!(r.monetary_total, 122.0);
        assert_eq!(r.monetary_mean, 30.5);
        assert_eq!(r.recency_days, 1.0);
        assert_eq!(r.tenure_days, 249.0); // 2011-01-02 .. 2011-09-08
        assert_eq!(r.orders_last_90d, 3.0);
        Ok(())
    }

    #[test]
    fn nothing_on_or_after_the_cutoff_leaks() -> Result<(), SequenceError> {
        let base = histories_as_of(sample(), d(CUTOFF), 8)?;
        let mut more = sample();
        more.push(order(1, CUTOFF, 5.0, 5.0));
        more.push(case(1, CUTOFF));
        more.push(order(4, "2012-01-01", 5.0, 5.0));
        assert_eq!(histories_as_of(more, d(CUTOFF), 8)?, base);
        Ok(())
    }

    #[test]
    fn agrees_with_the_rfm_of_the_crate_root() -> Result<(), SequenceError> {
        use sextant_contracts::SalesforceId;
        let id = |n: u32| SalesforceId::from_parts("001", "5g", u64::from(n));
        let txns = sample();
        let orders: Vec<crate::OrderFact> = txns
            .iter()
            .filter_map(|t| match t.activity {
                Activity::Order { spend, .. } => Some(crate::OrderFact {
                    account_id: id(t.customer),
                    date: t.date,
                    amount: spend,
                }),
                Activity::Case => None,
            })
            .collect();
        let root = crate::rfm_as_of([&id(1)], &orders, d(CUTOFF));
        let h = histories_as_of(txns, d(CUTOFF), 2)?;
        assert_eq!(Some(&h[&1].rfm), root.get(&id(1)));
        Ok(())
    }

    #[test]
    fn sequence_length_is_checked() {
        assert_eq!(
            histories_as_of(sample(), d(CUTOFF), 0),
            Err(SequenceError::Weeks(0))
        );
        assert_eq!(
            histories_as_of(sample(), d(CUTOFF), MAX_WEEKS + 1),
            Err(SequenceError::Weeks(MAX_WEEKS + 1))
        );
        assert!(histories_as_of(sample(), d(CUTOFF), MAX_WEEKS).is_ok());
    }

    #[test]
    fn label_window_is_half_open_and_ignores_cases() {
        let txns = vec![
            order(1, "2011-09-08", 1.0, 1.0), // first day of the window
            order(2, "2011-12-09", 1.0, 1.0), // cut-off + 92: outside
            order(3, "2011-12-08", 1.0, 1.0), // last day inside
            case(4, "2011-09-10"),            // a case is not a purchase
            order(5, "2011-09-07", 1.0, 1.0), // before the window
        ];
        let active = ordered_within(txns, d(CUTOFF), 92);
        assert_eq!(active.into_iter().collect::<Vec<_>>(), vec![1, 3]);
    }
}
