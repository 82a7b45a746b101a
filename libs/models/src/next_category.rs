//! Next purchase category: which product category will a customer buy in their next order?
//!
//! Why this design: a catalogue rarely carries a clean taxonomy, so categories are derived from what
//! every catalogue has (see [`CategoryScheme`]); and the signal for "what next" in order histories is
//! mostly habit (what the customer buys, recently weighted) plus sequence (what tends to follow the
//! categories of their last order), with overall popularity as a prior. The model is the weighted sum
//! of those three scores — no gradient training, three interpretable weights chosen on a validation
//! period — so it is cheap to refit per org and easy to explain on a record page.
//!
//! # Categories
//! When the catalogue has a product family (Salesforce `Product2.Family`), that is the raw category.
//! Otherwise the raw category is the *head word* of the product name ([`head_word`]): the last word of
//! at least three letters after dropping stop words and generic modifiers (colours, sizes, "design",
//! "assorted"…), with a plural `S` removed — for English product names ("WHITE HANGING HEART T-LIGHT
//! HOLDER", "LUNCH BAG RED RETROSPOT") that is the product noun or the collection name. Raw categories
//! are ranked by the number of order lines in the training period; the `N` most frequent are kept and
//! everything else is `other`.
//!
//! # Label of an order
//! An order has many lines, and `other` is the largest group in almost every order, so "the category
//! of an order" is its most frequent *named* category (ties: the more popular one); only an order
//! without any named line is `other`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The name of the catch-all category.
pub const OTHER: &str = "other";

/// Words that never name a category.
const STOP_WORDS: &[&str] = &["AND", "FOR", "THE", "WITH", "SET", "PACK", "OF"];

/// Generic modifiers: colours, sizes and style words that qualify the product noun.
const MODIFIERS: &[&str] = &[
    "DESIGN", "DESIGNS", "PATTERN", "STYLE", "PRINT", "ASSORTED", "COLOUR", "COLOURS", "COLOR",
    "COLORS", "FINISH", "RED", "PINK", "BLUE", "WHITE", "GREEN", "CREAM", "IVORY", "BLACK",
    "YELLOW", "ORANGE", "PURPLE", "BROWN", "GREY", "GRAY", "GOLD", "SILVER", "NATURAL", "SMALL",
    "LARGE", "MEDIUM", "MINI", "JUMBO", "BIG", "GIANT", "TINY",
];

/// Why a next-category fit or prediction is unusable.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NextCategoryError {
    /// No orders to learn from.
    #[error("no orders to learn from")]
    Empty,
    /// A category index is not in the scheme.
    #[error("category index {index} out of range ({n} categories)")]
    BadCategory {
        /// The index.
        index: usize,
        /// Categories in the scheme, `other` included.
        n: usize,
    },
    /// A setting is outside its domain.
    #[error("bad parameter: {0}")]
    BadParameter(String),
}

/// The head word of a product name (see the module docs), or `None` when nothing qualifies.
#[must_use]
pub fn head_word(description: &str) -> Option<String> {
    let upper = description.to_uppercase();
    let word = upper
        .split(|c: char| !c.is_alphabetic())
        .rev()
        .find(|w| w.chars().count() >= 3 && !STOP_WORDS.contains(w) && !MODIFIERS.contains(w))?;
    let singular = if word.chars().count() > 3 && word.ends_with('S') && !word.ends_with("SS") {
        &word[..word.len() - 1]
    } else {
        word
    };
    Some(singular.to_owned())
}

/// The kept categories, most frequent first, with `other` last.
/// Deserialising rebuilds the name index, so a stored scheme maps names like a fresh one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredScheme")]
pub struct CategoryScheme {
    /// Category names; the last one is [`OTHER`].
    pub categories: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

/// The stored fields of [`CategoryScheme`].
#[derive(Deserialize)]
struct StoredScheme {
    categories: Vec<String>,
}

impl From<StoredScheme> for CategoryScheme {
    fn from(s: StoredScheme) -> Self {
        Self::from_names(s.categories)
    }
}

impl CategoryScheme {
    /// Keeps the `n` most frequent raw categories (ties by name) and adds `other`.
    #[must_use]
    pub fn from_counts(counts: &HashMap<String, u64>, n: usize) -> Self {
        let mut all: Vec<(&String, u64)> = counts
            .iter()
            .filter(|(k, _)| k.as_str() != OTHER)
            .map(|(k, &v)| (k, v))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut categories: Vec<String> = all.into_iter().take(n).map(|(k, _)| k.clone()).collect();
        categories.push(OTHER.to_owned());
        Self::from_names(categories)
    }

    fn from_names(categories: Vec<String>) -> Self {
        let index = categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        Self { categories, index }
    }

    /// Number of categories, `other` included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.categories.len()
    }

    /// Whether there are no categories at all (never true for a built scheme: `other` is always there).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty()
    }

    /// Index of `other`.
    #[must_use]
    pub fn other(&self) -> usize {
        self.categories.len().saturating_sub(1)
    }

    /// Index of a raw category (`None` or unknown → `other`).
    #[must_use]
    pub fn index_of(&self, raw: Option<&str>) -> usize {
        raw.and_then(|r| self.index.get(r).copied())
            .unwrap_or_else(|| self.other())
    }
}

/// One order: its day (any monotone day number) and the category of each of its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Basket {
    /// Day number of the order.
    pub day: i64,
    /// Category index per line.
    pub categories: Vec<usize>,
}

/// The label of an order (see the module docs): its most frequent named category, ties to the lower
/// (more popular) index; `other` only when no line is named.
#[must_use]
pub fn basket_label(categories: &[usize], other: usize) -> usize {
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for &c in categories {
        if c != other {
            *counts.entry(c).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map_or(other, |(c, _)| c)
}

/// Why a category is expected next: the part of the model that gives it most of its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CategoryReason {
    /// The customer buys it often (recently weighted).
    Habit,
    /// It usually follows orders like the customer's last one.
    FollowsLastOrder,
    /// It is what most follow-up orders are.
    Popular,
}

/// The three weights of the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NextCategoryConfig {
    /// Half-life of an order's weight in the habit score, in days; `None`: no decay.
    pub half_life_days: Option<f64>,
    /// Weight of the transition score.
    pub transition_weight: f64,
    /// Weight of the popularity prior.
    pub popularity_weight: f64,
}

impl NextCategoryConfig {
    /// The grid searched by [`tune`].
    #[must_use]
    pub fn grid() -> Vec<Self> {
        let mut g = Vec::new();
        for half_life_days in [Some(30.0), Some(90.0), Some(365.0), None] {
            for transition_weight in [0.0, 0.5, 1.0, 2.0, 4.0, 8.0] {
                for popularity_weight in [0.05, 0.2, 0.5, 1.0, 2.0] {
                    g.push(Self {
                        half_life_days,
                        transition_weight,
                        popularity_weight,
                    });
                }
            }
        }
        g
    }
}

/// The fitted model: transition counts, popularity and weights. Serialisable for the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextCategoryModel {
    /// The categories.
    pub scheme: CategoryScheme,
    /// `transitions[a][b]`: how often an order containing `a` was followed by an order labelled `b`.
    pub transitions: Vec<Vec<f64>>,
    /// Share of follow-up orders labelled with each category.
    pub popularity: Vec<f64>,
    /// The weights.
    pub config: NextCategoryConfig,
}

fn check(history: &[Basket], n: usize) -> Result<(), NextCategoryError> {
    for b in history {
        if let Some(&index) = b.categories.iter().find(|&&c| c >= n) {
            return Err(NextCategoryError::BadCategory { index, n });
        }
    }
    Ok(())
}

/// Fits transitions and popularity from customers' order histories (each sorted by day; only the
/// training period).
///
/// # Errors
/// No consecutive orders to learn from, a category out of range, or a bad setting.
pub fn fit(
    scheme: &CategoryScheme,
    histories: &[Vec<Basket>],
    config: NextCategoryConfig,
) -> Result<NextCategoryModel, NextCategoryError> {
    let n = scheme.len();
    if let Some(h) = config.half_life_days
        && !(h.is_finite() && h > 0.0)
    {
        return Err(NextCategoryError::BadParameter(format!("half-life {h}")));
    }
    if !(config.transition_weight.is_finite() && config.popularity_weight.is_finite()) {
        return Err(NextCategoryError::BadParameter(
            "weights must be finite".into(),
        ));
    }
    let other = scheme.other();
    let mut transitions = vec![vec![0.0; n]; n];
    let mut labels = vec![0.0; n];
    let mut pairs = 0usize;
    for h in histories {
        check(h, n)?;
        for w in h.windows(2) {
            let next = basket_label(&w[1].categories, other);
            let mut from = w[0].categories.clone();
            from.sort_unstable();
            from.dedup();
            for a in from {
                transitions[a][next] += 1.0;
            }
            labels[next] += 1.0;
            pairs += 1;
        }
    }
    if pairs == 0 {
        return Err(NextCategoryError::Empty);
    }
    let popularity = labels.iter().map(|c| c / pairs as f64).collect();
    Ok(NextCategoryModel {
        scheme: scheme.clone(),
        transitions,
        popularity,
        config,
    })
}

impl NextCategoryModel {
    /// The same fit with other weights (transitions and popularity do not depend on them).
    #[must_use]
    pub fn with_config(&self, config: NextCategoryConfig) -> Self {
        Self {
            config,
            ..self.clone()
        }
    }

    /// Score of every category for a customer's history (sorted by day) as of `day`.
    ///
    /// # Errors
    /// A category index out of range.
    pub fn scores(&self, history: &[Basket], day: i64) -> Result<Vec<f64>, NextCategoryError> {
        let (habit, trans) = self.parts(history, day)?;
        Ok((0..self.scheme.len())
            .map(|c| {
                habit[c]
                    + self.config.transition_weight * trans[c]
                    + self.config.popularity_weight * self.popularity[c]
            })
            .collect())
    }

    /// Which of the three weighted parts gives category `c` most of its score: the reason a
    /// record page shows next to the category.
    ///
    /// # Errors
    /// A category index out of range.
    pub fn reason(
        &self,
        history: &[Basket],
        day: i64,
        c: usize,
    ) -> Result<CategoryReason, NextCategoryError> {
        let (habit, trans) = self.parts(history, day)?;
        let n = self.scheme.len();
        if c >= n {
            return Err(NextCategoryError::BadCategory { index: c, n });
        }
        let parts = [
            (CategoryReason::Habit, habit[c]),
            (
                CategoryReason::FollowsLastOrder,
                self.config.transition_weight * trans[c],
            ),
            (
                CategoryReason::Popular,
                self.config.popularity_weight * self.popularity[c],
            ),
        ];
        Ok(parts
            .iter()
            .fold(parts[2], |best, p| if p.1 > best.1 { *p } else { best })
            .0)
    }

    /// The habit and sequence parts of the score, each a distribution over categories.
    fn parts(
        &self,
        history: &[Basket],
        day: i64,
    ) -> Result<(Vec<f64>, Vec<f64>), NextCategoryError> {
        let n = self.scheme.len();
        check(history, n)?;
        let other = self.scheme.other();
        // Habit: recency-weighted share of each named category in the customer's orders.
        let mut habit = vec![0.0; n];
        for b in history {
            let named: Vec<usize> = b
                .categories
                .iter()
                .copied()
                .filter(|&c| c != other)
                .collect();
            if named.is_empty() {
                continue;
            }
            let age = (day - b.day).max(0) as f64;
            let w = self
                .config
                .half_life_days
                .map_or(1.0, |h| (-age * std::f64::consts::LN_2 / h).exp());
            for c in &named {
                habit[*c] += w / named.len() as f64;
            }
        }
        let total: f64 = habit.iter().sum();
        if total > 0.0 {
            habit.iter_mut().for_each(|v| *v /= total);
        }
        // Sequence: what followed orders with the categories of the last order.
        let mut trans = vec![0.0; n];
        if let Some(last) = history.last() {
            let mut from = last.categories.clone();
            from.sort_unstable();
            from.dedup();
            let mut mass = 0.0;
            for a in from {
                for (t, v) in trans.iter_mut().zip(&self.transitions[a]) {
                    *t += v;
                    mass += v;
                }
            }
            if mass > 0.0 {
                trans.iter_mut().for_each(|v| *v /= mass);
            }
        }
        Ok((habit, trans))
    }

    /// The `k` most likely next categories with their scores, best first (ties: more popular first).
    ///
    /// # Errors
    /// A category index out of range.
    pub fn top(
        &self,
        history: &[Basket],
        day: i64,
        k: usize,
    ) -> Result<Vec<(usize, f64)>, NextCategoryError> {
        let s = self.scores(history, day)?;
        let mut idx: Vec<usize> = (0..s.len()).collect();
        idx.sort_by(|&a, &b| {
            s[b].total_cmp(&s[a])
                .then(self.popularity[b].total_cmp(&self.popularity[a]))
                .then(a.cmp(&b))
        });
        Ok(idx.into_iter().take(k).map(|c| (c, s[c])).collect())
    }

    /// The most likely next category.
    ///
    /// # Errors
    /// A category index out of range.
    pub fn predict(&self, history: &[Basket], day: i64) -> Result<usize, NextCategoryError> {
        Ok(self
            .top(history, day, 1)?
            .first()
            .map_or(self.scheme.other(), |p| p.0))
    }

    /// Baseline: the most frequent label of follow-up orders, for everyone.
    #[must_use]
    pub fn popularity_prediction(&self) -> usize {
        let mut best = 0;
        for (c, p) in self.popularity.iter().enumerate() {
            if *p > self.popularity[best] {
                best = c;
            }
        }
        best
    }
}

/// Baseline: the label of the customer's last order (`None` without orders).
#[must_use]
pub fn last_category(history: &[Basket], other: usize) -> Option<usize> {
    history.last().map(|b| basket_label(&b.categories, other))
}

/// One evaluation case: a history, the day of the prediction, and the label of the next order.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Orders before the cut, sorted by day.
    pub history: Vec<Basket>,
    /// The cut (day of prediction).
    pub day: i64,
    /// Label of the first order on or after the cut.
    pub label: usize,
}

/// Share of cases whose prediction equals the label.
///
/// # Errors
/// A category index out of range in a history.
pub fn top1_accuracy(
    cases: &[Case],
    mut predict: impl FnMut(&Case) -> Result<usize, NextCategoryError>,
) -> Result<f64, NextCategoryError> {
    if cases.is_empty() {
        return Ok(0.0);
    }
    let mut right = 0usize;
    for c in cases {
        if predict(c)? == c.label {
            right += 1;
        }
    }
    Ok(right as f64 / cases.len() as f64)
}

/// Picks the weights with the best top-1 accuracy on validation `cases` (ties: first in the grid).
///
/// # Errors
/// As [`NextCategoryModel::scores`]; [`NextCategoryError::Empty`] for an empty grid or no cases.
pub fn tune(
    model: &NextCategoryModel,
    cases: &[Case],
    grid: &[NextCategoryConfig],
) -> Result<(NextCategoryConfig, f64), NextCategoryError> {
    if cases.is_empty() {
        return Err(NextCategoryError::Empty);
    }
    let mut best: Option<(NextCategoryConfig, f64)> = None;
    for &cfg in grid {
        let m = model.with_config(cfg);
        let acc = top1_accuracy(cases, |c| m.predict(&c.history, c.day))?;
        if best.is_none_or(|(_, b)| acc > b) {
            best = Some((cfg, acc));
        }
    }
    best.ok_or(NextCategoryError::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_words_skip_modifiers_stop_words_and_plurals() {
        assert_eq!(
            head_word("WHITE HANGING HEART T-LIGHT HOLDER").as_deref(),
            Some("HOLDER")
        );
        assert_eq!(
            head_word("LUNCH BAG RED RETROSPOT").as_deref(),
            Some("RETROSPOT")
        );
        assert_eq!(
            head_word("SET OF 3 CAKE TINS PANTRY DESIGN").as_deref(),
            Some("PANTRY")
        );
        assert_eq!(
            head_word("PACK OF 72 RETROSPOT CAKE CASES").as_deref(),
            Some("CASE")
        );
        assert_eq!(head_word("Wine Glass").as_deref(), Some("GLASS"));
        assert_eq!(head_word("12 PENCILS SMALL TUBE RED"), Some("TUBE".into()));
        assert_eq!(head_word("RED 12"), None);
        assert_eq!(head_word(""), None);
    }

    fn scheme() -> CategoryScheme {
        let counts: HashMap<String, u64> = [("MUG", 10), ("BAG", 30), ("CARD", 20), ("TIN", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        CategoryScheme::from_counts(&counts, 3)
    }

    #[test]
    fn scheme_keeps_the_most_frequent_and_maps_the_rest_to_other() {
        let s = scheme();
        assert_eq!(s.categories, vec!["BAG", "CARD", "MUG", "other"]);
        assert_eq!(s.index_of(Some("CARD")), 1);
        assert_eq!(s.index_of(Some("TIN")), 3);
        assert_eq!(s.index_of(None), 3);
    }

    #[test]
    fn labels_prefer_named_categories() {
        assert_eq!(basket_label(&[3, 3, 3, 2], 3), 2);
        assert_eq!(basket_label(&[2, 1, 2, 1], 3), 1);
        assert_eq!(basket_label(&[3, 3], 3), 3);
        assert_eq!(basket_label(&[], 3), 3);
    }

    fn b(day: i64, cats: &[usize]) -> Basket {
        Basket {
            day,
            categories: cats.to_vec(),
        }
    }

    #[test]
    fn model_uses_habit_sequence_and_beats_both_baselines_on_a_pattern()
    -> Result<(), NextCategoryError> {
        let s = scheme();
        // Everyone alternates BAG-orders and MUG-orders; popularity says CARD (many one-off CARD pairs).
        let mut train = Vec::new();
        for _ in 0..10 {
            train.push(vec![b(0, &[0]), b(10, &[2]), b(20, &[0]), b(30, &[2])]);
        }
        for _ in 0..30 {
            train.push(vec![b(0, &[1]), b(10, &[1])]);
        }
        let cfg = NextCategoryConfig {
            half_life_days: Some(30.0),
            transition_weight: 2.0,
            popularity_weight: 0.05,
        };
        let m = fit(&s, &train, cfg)?;
        assert_eq!(m.popularity_prediction(), 1);
        // last order BAG → next MUG; the last-category baseline says BAG, popularity says CARD.
        let cases = vec![Case {
            history: vec![b(0, &[2]), b(10, &[0])],
            day: 15,
            label: 2,
        }];
        assert_eq!(
            top1_accuracy(&cases, |c| m.predict(&c.history, c.day))?,
            1.0
        );
        assert_eq!(
            top1_accuracy(&cases, |_| Ok(m.popularity_prediction()))?,
            0.0
        );
        assert_eq!(
            top1_accuracy(&cases, |c| Ok(last_category(&c.history, 3).unwrap_or(3)))?,
            0.0
        );
        // Without the sequence term, habit ties BAG and MUG with recency favouring BAG.
        let habit_only = m.with_config(NextCategoryConfig {
            transition_weight: 0.0,
            ..cfg
        });
        assert_eq!(habit_only.predict(&cases[0].history, 15)?, 0);
        // With a weak prior only the sequence term gets the case right, and tuning finds it.
        let weak_prior: Vec<NextCategoryConfig> = NextCategoryConfig::grid()
            .into_iter()
            .filter(|c| c.popularity_weight < 0.1)
            .collect();
        let (best, acc) = tune(&m, &cases, &weak_prior)?;
        assert_eq!(acc, 1.0);
        assert!(best.transition_weight > 0.0);
        Ok(())
    }

    #[test]
    fn bad_input_is_refused() {
        let s = scheme();
        assert_eq!(
            fit(
                &s,
                &[vec![b(0, &[9]), b(1, &[0])]],
                NextCategoryConfig::grid()[0]
            )
            .err(),
            Some(NextCategoryError::BadCategory { index: 9, n: 4 })
        );
        assert_eq!(
            fit(&s, &[vec![b(0, &[1])]], NextCategoryConfig::grid()[0]).err(),
            Some(NextCategoryError::Empty)
        );
        let bad = NextCategoryConfig {
            half_life_days: Some(-1.0),
            transition_weight: 0.0,
            popularity_weight: 0.0,
        };
        assert!(matches!(
            fit(&s, &[], bad),
            Err(NextCategoryError::BadParameter(_))
        ));
    }
}
