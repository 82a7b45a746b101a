//! The declared, versioned aggregate feature set `rfmt-v2`: recency, frequency, monetary value
//! and tenure over 30/90/365-day windows, inter-purchase times, trends, returns, category mix,
//! support cases and their tone, and engagement.
//!
//! Why a declared set: a model records the feature set (name and version) it was trained on, and
//! the gateway refuses to score a vector of another set, so a change of definition can never be
//! silently mixed with an old model. A new definition is a new version (`rfmt-v3`), never an edit.
//!
//! Every feature is a pure function of one customer's [`History`] as of a cut-off `D` (the history
//! already holds only rows whose event time and known time are before `D`; the feature store
//! guarantees that). The same function builds training sets (past cut-offs) and the online store
//! (cut-off = the end of today), so training and serving cannot drift apart.
//!
//! A customer with no purchase before `D` has **no** feature vector ([`aggregate_features`]
//! returns `None`): a vector of zeros would look like a customer who bought today.

use chrono::NaiveDate;

/// The feature set's name and version.
pub const FEATURE_SET: &str = "rfmt-v2";

/// The feature names, in the order of every vector.
pub const FEATURE_NAMES: [&str; 25] = [
    "recency_days",
    "tenure_days",
    "frequency",
    "monetary_total",
    "monetary_mean",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "spend_30d",
    "spend_90d",
    "spend_365d",
    "ipt_mean_days",
    "ipt_std_days",
    "overdue_ratio",
    "single_purchase",
    "spend_trend_8w",
    "orders_trend_8w",
    "return_share_365d",
    "items_per_order",
    "category_count",
    "top_category_share",
    "cases_90d",
    "cases_365d",
    "negative_case_share_365d",
    "engagement_90d",
];

/// Number of features.
pub const WIDTH: usize = FEATURE_NAMES.len();

/// Weeks compared by the trend features (the last N weeks against the N before).
pub const TREND_WEEKS: i64 = 8;

/// One purchase (an order whose status counts as a purchase), reduced to what features need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PurchaseFact {
    /// The order's effective date.
    pub date: NaiveDate,
    /// Amount of its positive lines (quantity × unit price).
    pub amount: f64,
    /// Items bought (sum of positive quantities).
    pub items: f64,
    /// Amount of its negative lines (returns), as a positive number.
    pub returned: f64,
}

/// One support case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseFact {
    /// When it was opened.
    pub date: NaiveDate,
    /// Whether its text reads as negative (sentiment model, else lexicon).
    pub negative: bool,
}

/// What one customer did before the cut-off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Purchases, in any order.
    pub purchases: Vec<PurchaseFact>,
    /// Support cases, in any order.
    pub cases: Vec<CaseFact>,
    /// Spend per product category (positive lines).
    pub category_spend: Vec<(String, f64)>,
    /// Dates of engagement events.
    pub engagement: Vec<NaiveDate>,
}

fn days(from: NaiveDate, to: NaiveDate) -> f64 {
    (to - from).num_days() as f64
}

/// The `rfmt-v2` vector of one customer as of `as_of`, or `None` when it has no purchase before
/// `as_of` (rows on or after `as_of` are ignored, so a caller cannot leak the future by mistake).
#[must_use]
pub fn aggregate_features(history: &History, as_of: NaiveDate) -> Option<Vec<f64>> {
    let mut purchases: Vec<PurchaseFact> = history
        .purchases
        .iter()
        .copied()
        .filter(|p| p.date < as_of)
        .collect();
    if purchases.is_empty() {
        return None;
    }
    purchases.sort_by_key(|p| p.date);
    let first = purchases.first()?.date;
    let last = purchases.last()?.date;
    let age = |d: NaiveDate| days(d, as_of);
    let within = |p: &&PurchaseFact, n: f64| age(p.date) <= n;

    let frequency = purchases.len() as f64;
    let total: f64 = purchases.iter().map(|p| p.amount).sum();
    let window = |n: f64| -> (f64, f64) {
        purchases
            .iter()
            .filter(|p| within(p, n))
            .fold((0.0, 0.0), |(c, s), p| (c + 1.0, s + p.amount))
    };
    let (o30, s30) = window(30.0);
    let (o90, s90) = window(90.0);
    let (o365, s365) = window(365.0);

    // Inter-purchase times over distinct purchase days.
    let mut purchase_days: Vec<NaiveDate> = purchases.iter().map(|p| p.date).collect();
    purchase_days.dedup();
    let gaps: Vec<f64> = purchase_days.windows(2).map(|w| days(w[0], w[1])).collect();
    let recency = age(last);
    let (ipt_mean, ipt_std, overdue, single) = if gaps.is_empty() {
        (0.0, 0.0, 0.0, 1.0)
    } else {
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt(), recency / mean.max(1.0), 0.0)
    };

    // Trend: the last TREND_WEEKS weeks against the TREND_WEEKS before.
    let span = (TREND_WEEKS * 7) as f64;
    let (mut recent_spend, mut prior_spend, mut recent_orders, mut prior_orders) =
        (0.0, 0.0, 0.0, 0.0);
    for p in &purchases {
        let a = age(p.date);
        if a <= span {
            recent_spend += p.amount;
            recent_orders += 1.0;
        } else if a <= 2.0 * span {
            prior_spend += p.amount;
            prior_orders += 1.0;
        }
    }
    let spend_trend = ((recent_spend.max(0.0) + 1.0) / (prior_spend.max(0.0) + 1.0)).ln();

    let (gross_365, returned_365) = purchases
        .iter()
        .filter(|p| within(p, 365.0))
        .fold((0.0, 0.0), |(g, r), p| (g + p.amount, r + p.returned));
    let return_share = if gross_365 + returned_365 > 0.0 {
        returned_365 / (gross_365 + returned_365)
    } else {
        0.0
    };
    let items: f64 = purchases.iter().map(|p| p.items).sum();

    let category_total: f64 = history.category_spend.iter().map(|(_, s)| s.max(0.0)).sum();
    let categories = history
        .category_spend
        .iter()
        .filter(|(_, s)| *s > 0.0)
        .count() as f64;
    let top_share = if category_total > 0.0 {
        history
            .category_spend
            .iter()
            .map(|(_, s)| s.max(0.0))
            .fold(0.0, f64::max)
            / category_total
    } else {
        0.0
    };

    let cases: Vec<&CaseFact> = history.cases.iter().filter(|c| c.date < as_of).collect();
    let cases_90 = cases.iter().filter(|c| age(c.date) <= 90.0).count() as f64;
    let cases_365: Vec<&&CaseFact> = cases.iter().filter(|c| age(c.date) <= 365.0).collect();
    let negative_share = if cases_365.is_empty() {
        0.0
    } else {
        cases_365.iter().filter(|c| c.negative).count() as f64 / cases_365.len() as f64
    };
    let engagement_90 = history
        .engagement
        .iter()
        .filter(|d| **d < as_of && age(**d) <= 90.0)
        .count() as f64;

    Some(vec![
        recency,
        age(first),
        frequency,
        total,
        total / frequency,
        o30,
        o90,
        o365,
        s30,
        s90,
        s365,
        ipt_mean,
        ipt_std,
        overdue,
        single,
        spend_trend,
        recent_orders - prior_orders,
        return_share,
        items / frequency,
        categories,
        top_share,
        cases_90,
        cases_365.len() as f64,
        negative_share,
        engagement_90,
    ])
}

/// Words that make a support text read as negative when no sentiment model is loaded.
const NEGATIVE_WORDS: &[&str] = &[
    "angry",
    "annoyed",
    "awful",
    "bad",
    "broken",
    "cancel",
    "complain",
    "complaint",
    "damaged",
    "defective",
    "delay",
    "delayed",
    "disappointed",
    "disappointing",
    "error",
    "fail",
    "failed",
    "failure",
    "faulty",
    "frustrated",
    "frustrating",
    "hate",
    "horrible",
    "late",
    "missing",
    "never",
    "poor",
    "problem",
    "refund",
    "return",
    "rude",
    "slow",
    "terrible",
    "unacceptable",
    "unhappy",
    "useless",
    "waste",
    "worst",
    "wrong",
];

const POSITIVE_WORDS: &[&str] = &[
    "amazing",
    "awesome",
    "excellent",
    "fantastic",
    "good",
    "great",
    "happy",
    "love",
    "perfect",
    "pleased",
    "recommend",
    "satisfied",
    "thanks",
    "wonderful",
];

const NEGATORS: &[&str] = &[
    "not", "no", "never", "don't", "didn't", "isn't", "wasn't", "won't",
];

/// The lexicon fallback: whether a text reads as negative (more negative than positive words,
/// with a negator flipping the word after it). Used only when no sentiment model is loaded.
#[must_use]
pub fn lexicon_is_negative(text: &str) -> bool {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    let mut score = 0i32;
    for (i, w) in words.iter().enumerate() {
        let polarity = if NEGATIVE_WORDS.contains(w) {
            -1
        } else if POSITIVE_WORDS.contains(w) {
            1
        } else {
            continue;
        };
        let negated = i > 0 && NEGATORS.contains(&words[i - 1]);
        score += if negated { -polarity } else { polarity };
    }
    score < 0
}

/// Derives a product category from the catalogue when no family is set: the last significant
/// word of the name, upper-cased (e.g. "WHITE HANGING HEART T-LIGHT HOLDER" → "HOLDER").
#[must_use]
pub fn derive_category(family: Option<&str>, name: &str) -> String {
    if let Some(f) = family.map(str::trim).filter(|f| !f.is_empty()) {
        return f.to_uppercase();
    }
    name.split(|c: char| !c.is_alphabetic())
        .rev()
        .find(|w| w.chars().count() >= 3)
        .map_or_else(|| "OTHER".to_owned(), str::to_uppercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
    }

    fn p(date: &str, amount: f64) -> PurchaseFact {
        PurchaseFact {
            date: d(date),
            amount,
            items: 2.0,
            returned: 0.0,
        }
    }

    fn get(v: &[f64], name: &str) -> f64 {
        let i = FEATURE_NAMES
            .iter()
            .position(|n| *n == name)
            .unwrap_or(usize::MAX);
        v.get(i).copied().unwrap_or(f64::NAN)
    }

    #[test]
    fn no_purchase_before_the_cutoff_is_no_history_not_zeros() {
        let h = History {
            purchases: vec![p("2024-03-01", 10.0)],
            cases: vec![CaseFact {
                date: d("2024-01-01"),
                negative: true,
            }],
            ..History::default()
        };
        assert_eq!(aggregate_features(&h, d("2024-03-01")), None);
        assert_eq!(
            aggregate_features(&History::default(), d("2024-03-01")),
            None
        );
        assert!(aggregate_features(&h, d("2024-03-02")).is_some());
    }

    #[test]
    fn windows_gaps_trend_and_returns() {
        let as_of = d("2024-04-01");
        let mut h = History {
            purchases: vec![
                p("2023-01-01", 100.0), // 456 days: outside 365
                p("2024-01-01", 50.0),  // 91 days
                p("2024-03-02", 30.0),  // 30 days
                p("2024-03-31", 20.0),  // 1 day
                p("2024-04-01", 999.0), // on the cut-off: invisible
            ],
            ..History::default()
        };
        h.purchases[2].returned = 10.0;
        let v = aggregate_features(&h, as_of).unwrap_or_default();
        assert_eq!(v.len(), WIDTH);
        assert_eq!(get(&v, "recency_days"), 1.0);
        assert_eq!(get(&v, "tenure_days"), 456.0);
        assert_eq!(get(&v, "frequency"), 4.0);
        assert_eq!(get(&v, "monetary_total"), 200.0);
        assert_eq!(get(&v, "orders_30d"), 2.0);
        assert_eq!(get(&v, "spend_90d"), 50.0);
        assert_eq!(get(&v, "orders_365d"), 3.0);
        // gaps: 365, 61, 29 days
        assert!((get(&v, "ipt_mean_days") - 455.0 / 3.0).abs() < 1e-9);
        assert_eq!(get(&v, "single_purchase"), 0.0);
        // last 56 days: 30 + 20 (2 orders); the 56 before: 50 (2024-01-01, 91 days back)
        assert!(get(&v, "spend_trend_8w").abs() < 1e-9);
        assert_eq!(get(&v, "orders_trend_8w"), 1.0);
        assert!((get(&v, "return_share_365d") - 10.0 / 110.0).abs() < 1e-9);
        assert_eq!(get(&v, "items_per_order"), 2.0);
    }

    #[test]
    fn cases_categories_and_engagement() {
        let as_of = d("2024-04-01");
        let h = History {
            purchases: vec![p("2024-03-01", 10.0)],
            cases: vec![
                CaseFact {
                    date: d("2024-03-20"),
                    negative: true,
                },
                CaseFact {
                    date: d("2023-10-01"),
                    negative: false,
                },
                CaseFact {
                    date: d("2024-04-02"),
                    negative: true,
                },
            ],
            category_spend: vec![("MUG".into(), 30.0), ("BAG".into(), 10.0)],
            engagement: vec![d("2024-03-30"), d("2023-01-01")],
        };
        let v = aggregate_features(&h, as_of).unwrap_or_default();
        assert_eq!(get(&v, "cases_90d"), 1.0);
        assert_eq!(get(&v, "cases_365d"), 2.0);
        assert_eq!(get(&v, "negative_case_share_365d"), 0.5);
        assert_eq!(get(&v, "category_count"), 2.0);
        assert_eq!(get(&v, "top_category_share"), 0.75);
        assert_eq!(get(&v, "engagement_90d"), 1.0);
        assert_eq!(get(&v, "single_purchase"), 1.0);
    }

    #[test]
    fn lexicon_reads_negation() {
        assert!(lexicon_is_negative("The parcel arrived broken and late."));
        assert!(!lexicon_is_negative("Not bad at all, great service"));
        assert!(lexicon_is_negative("I am not happy with this"));
        assert!(!lexicon_is_negative("Where is my invoice?"));
    }

    #[test]
    fn categories_from_family_or_name() {
        assert_eq!(derive_category(Some(" Hardware "), "x"), "HARDWARE");
        assert_eq!(
            derive_category(None, "WHITE HANGING HEART T-LIGHT HOLDER"),
            "HOLDER"
        );
        assert_eq!(derive_category(Some(""), "SET OF 6 MUGS"), "MUGS");
        assert_eq!(derive_category(None, "12 x"), "OTHER");
    }
}
