//! Point-in-time customer features and churn labels, computed from orders.
//!
//! Everything here is a pure function of a list of orders and a date, so the same code builds
//! training sets (features as of a past cutoff, label from the window after it) and online
//! features (as of today) — the classic source of training/serving skew is one function, not
//! two.
//!
//! **Point-in-time rule**: features as of day `D` see only orders dated strictly before `D`.
//! The churn label for cutoff `D` and horizon `H` looks only at `[D, D + H)`. A row therefore
//! never sees its own future.

pub mod aggregates;
pub mod drift;
pub mod sequence;

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use sextant_contracts::SalesforceId;

/// The feature names, in the order of every feature vector.
pub const FEATURE_NAMES: [&str; 6] = [
    "recency_days",
    "frequency",
    "monetary_total",
    "monetary_mean",
    "tenure_days",
    "orders_last_90d",
];

/// One order, reduced to what the features need.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderFact {
    pub account_id: SalesforceId,
    pub date: NaiveDate,
    /// Sum of the order's lines (quantity × unit price).
    pub amount: f64,
}

/// Recency, frequency, monetary value and tenure of one account as of a date.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rfm {
    /// Days since the last order (as of the date); `tenure_days` when there is none.
    pub recency_days: f64,
    /// Orders before the date.
    pub frequency: f64,
    pub monetary_total: f64,
    pub monetary_mean: f64,
    /// Days since the first order; 0 when there is none.
    pub tenure_days: f64,
    /// Orders in the 90 days before the date.
    pub orders_last_90d: f64,
}

impl Rfm {
    /// The feature vector, in [`FEATURE_NAMES`] order.
    pub fn to_vec(&self) -> Vec<f64> {
        vec![
            self.recency_days,
            self.frequency,
            self.monetary_total,
            self.monetary_mean,
            self.tenure_days,
            self.orders_last_90d,
        ]
    }
}

/// A customer with no order before the date.
const NO_HISTORY: Rfm = Rfm {
    recency_days: 0.0,
    frequency: 0.0,
    monetary_total: 0.0,
    monetary_mean: 0.0,
    tenure_days: 0.0,
    orders_last_90d: 0.0,
};

/// RFM features as of `as_of` for each of `accounts` (accounts without orders get zeros).
pub fn rfm_as_of<'a>(
    accounts: impl IntoIterator<Item = &'a SalesforceId>,
    orders: &[OrderFact],
    as_of: NaiveDate,
) -> BTreeMap<SalesforceId, Rfm> {
    let mut by_account: HashMap<&SalesforceId, Vec<&OrderFact>> = HashMap::new();
    for o in orders.iter().filter(|o| o.date < as_of) {
        by_account.entry(&o.account_id).or_default().push(o);
    }
    accounts
        .into_iter()
        .map(|id| {
            let rfm = match by_account.get(id) {
                None => NO_HISTORY,
                Some(list) => {
                    let first = list.iter().map(|o| o.date).min().unwrap_or(as_of);
                    let last = list.iter().map(|o| o.date).max().unwrap_or(as_of);
                    let total: f64 = list.iter().map(|o| o.amount).sum();
                    let n = list.len() as f64;
                    let recent = list
                        .iter()
                        .filter(|o| (as_of - o.date).num_days() <= 90)
                        .count() as f64;
                    Rfm {
                        recency_days: (as_of - last).num_days() as f64,
                        frequency: n,
                        monetary_total: total,
                        monetary_mean: total / n,
                        tenure_days: (as_of - first).num_days() as f64,
                        orders_last_90d: recent,
                    }
                }
            };
            (id.clone(), rfm)
        })
        .collect()
}

/// Churn labels for a cutoff: for every account with at least one order before `cutoff`,
/// `true` when it places no order in `[cutoff, cutoff + horizon_days)`.
pub fn churn_labels(
    orders: &[OrderFact],
    cutoff: NaiveDate,
    horizon_days: u32,
) -> BTreeMap<SalesforceId, bool> {
    let end = cutoff + chrono::Duration::days(i64::from(horizon_days));
    let mut labels: BTreeMap<SalesforceId, bool> = BTreeMap::new();
    for o in orders.iter().filter(|o| o.date < cutoff) {
        labels.entry(o.account_id.clone()).or_insert(true);
    }
    for o in orders.iter().filter(|o| o.date >= cutoff && o.date < end) {
        if let Some(churned) = labels.get_mut(&o.account_id) {
            *churned = false;
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> SalesforceId {
        SalesforceId::from_parts("001", "5g", n)
    }
    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }
    fn order(n: u64, date: &str, amount: f64) -> OrderFact {
        OrderFact {
            account_id: id(n),
            date: d(date),
            amount,
        }
    }

    #[test]
    fn rfm_sees_only_the_past() {
        let orders = vec![
            order(1, "2011-01-01", 10.0),
            order(1, "2011-03-01", 30.0),
            order(1, "2011-06-01", 1000.0), // on the as-of day: not yet visible
            order(2, "2011-05-31", 5.0),
        ];
        let f = rfm_as_of([&id(1), &id(2), &id(3)], &orders, d("2011-06-01"));
        let a = f[&id(1)];
        assert_eq!(a.frequency, 2.0);
        assert_eq!(a.monetary_total, 40.0);
        assert_eq!(a.monetary_mean, 20.0);
        assert_eq!(a.recency_days, 92.0); // 2011-03-01 .. 2011-06-01
        assert_eq!(a.tenure_days, 151.0);
        assert_eq!(a.orders_last_90d, 0.0);
        assert_eq!(f[&id(2)].recency_days, 1.0);
        assert_eq!(f[&id(2)].orders_last_90d, 1.0);
        assert_eq!(f[&id(3)], NO_HISTORY);
        assert_eq!(a.to_vec().len(), FEATURE_NAMES.len());
    }

    #[test]
    fn labels_look_only_at_the_horizon() {
        let orders = vec![
            order(1, "2011-01-01", 1.0),
            order(1, "2011-06-15", 1.0), // inside [06-01, 06-31)
            order(2, "2011-01-01", 1.0),
            order(2, "2011-08-01", 1.0), // after the horizon: still churned
            order(3, "2011-06-02", 1.0), // first order after the cutoff: no row
        ];
        let labels = churn_labels(&orders, d("2011-06-01"), 30);
        assert_eq!(labels.len(), 2);
        assert!(!labels[&id(1)]);
        assert!(labels[&id(2)]);
        assert!(!labels.contains_key(&id(3)));
    }
}
