//! The cross-sell family's served model: from one customer's past orders it answers both "what
//! else will they buy" (items, each with the purchase that suggests it) and "which category will
//! their next order be".
//!
//! Why one artefact for two models: both read the same input (the customer's orders with their
//! products), are trained by the same job on the same purchase lines and time split, and a record
//! page shows them together; one version keeps them consistent with each other (the categories of
//! the recommended items are the next-category model's categories).
//!
//! Why every suggestion carries `because`: a salesperson acts on "customers who bought the
//! LUNCH BAG also buy this", not on a bare score. For an item-item scorer the contribution of each
//! bought item to a suggestion is exact (`w(i) · S[i][j]`), so the strongest one is the
//! explanation, no approximation involved.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Basis, CrossSellArtifact, RecommendError};
use crate::next_category::{Basket, CategoryReason, NextCategoryModel};

/// What the trainer stores as a `cross-sell-vN` artefact and the gateway serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossSellModel {
    /// Format version of this structure.
    pub format: u32,
    /// The registry version (`cross-sell-v3`).
    pub version: String,
    /// Item-item recommender over the catalogue's product ids.
    pub recommend: CrossSellArtifact,
    /// Product name per item of `recommend` (same order), for readable answers.
    pub names: Vec<String>,
    /// Category (index into `next_category.scheme`) per item of `recommend`.
    pub item_categories: Vec<u32>,
    /// The next-purchase-category model.
    pub next_category: NextCategoryModel,
}

/// One past order: its day number (any consistent day count, e.g. days since 1970) and the
/// product ids on it (repeats allowed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PastOrder {
    /// Day of the order.
    pub day: i64,
    /// Product ids of its lines.
    pub items: Vec<String>,
}

/// The bought item that most suggests a recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Because {
    /// Its product id.
    pub item: String,
    /// Its name.
    pub name: String,
}

/// One suggested product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Suggestion {
    /// Product id.
    pub item: String,
    /// Product name.
    pub name: String,
    /// Its category.
    pub category: String,
    /// Score, comparable within one answer only.
    pub score: f32,
    /// The past purchase contributing most (absent for popularity answers and repeat-purchase
    /// suggestions driven by the item itself).
    pub because: Option<Because>,
}

/// One candidate next category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CategoryGuess {
    /// Category name (`other` for everything outside the kept categories).
    pub category: String,
    /// Share of the model's total score over all categories (0..1; comparable within one answer).
    pub share: f64,
    /// Why: `habit` (the customer buys it often), `follows_last_order` (it usually follows
    /// orders like their last one) or `popular` (most follow-up orders are).
    pub because: CategoryReason,
}

/// The answer for one customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CrossSellAnswer {
    /// Best first.
    pub items: Vec<Suggestion>,
    /// What the items are based on.
    pub basis: Basis,
    /// Products in the history the model does not know (new products), ignored.
    pub unknown_items: Vec<String>,
    /// The three likeliest next categories, best first.
    pub next_category: Vec<CategoryGuess>,
}

impl CrossSellModel {
    /// The current format version.
    pub const FORMAT: u32 = 1;

    /// Checks that the parts agree with each other.
    ///
    /// # Errors
    /// [`RecommendError::BadArtifact`] naming the first disagreement.
    pub fn validate(&self) -> Result<(), RecommendError> {
        if self.format != Self::FORMAT {
            return Err(RecommendError::BadArtifact(format!(
                "cross-sell format {} (this build reads {})",
                self.format,
                Self::FORMAT
            )));
        }
        let n = self.recommend.items.len();
        if self.names.len() != n || self.item_categories.len() != n {
            return Err(RecommendError::BadArtifact(format!(
                "{n} items, {} names, {} categories",
                self.names.len(),
                self.item_categories.len()
            )));
        }
        let categories = self.next_category.scheme.len();
        if self
            .next_category
            .scheme
            .categories
            .last()
            .map(String::as_str)
            != Some(crate::next_category::OTHER)
        {
            return Err(RecommendError::BadArtifact(format!(
                "the last category must be `{}`",
                crate::next_category::OTHER
            )));
        }
        if let Some(c) = self
            .item_categories
            .iter()
            .find(|&&c| c as usize >= categories)
        {
            return Err(RecommendError::BadArtifact(format!(
                "item category {c} out of range ({categories} categories)"
            )));
        }
        if self.next_category.transitions.len() != categories
            || self.next_category.popularity.len() != categories
            || self
                .next_category
                .transitions
                .iter()
                .any(|r| r.len() != categories)
        {
            return Err(RecommendError::BadArtifact(
                "next-category tables do not match its categories".into(),
            ));
        }
        Ok(())
    }

    /// Suggestions (at most `limit`) and the likeliest next categories for a customer with
    /// `orders`, as of day `today`. With `exclude_bought`, products already bought are not
    /// suggested. A customer without orders (or only unknown products) gets the most popular
    /// products, with `basis: popularity`.
    ///
    /// # Errors
    /// Inconsistent artefact tables (a model that passed [`Self::validate`] has none).
    pub fn answer(
        &self,
        orders: &[PastOrder],
        today: i64,
        limit: usize,
        exclude_bought: bool,
    ) -> Result<CrossSellAnswer, RecommendError> {
        let a = &self.recommend;
        // Weight of a bought item = the number of orders containing it (the training weight).
        let mut counts: HashMap<&str, f32> = HashMap::new();
        for o in orders {
            let mut seen: Vec<&str> = o.items.iter().map(String::as_str).collect();
            seen.sort_unstable();
            seen.dedup();
            for item in seen {
                *counts.entry(item).or_default() += 1.0;
            }
        }
        let mut history: Vec<(String, f32)> =
            counts.into_iter().map(|(k, w)| (k.to_owned(), w)).collect();
        history.sort_by(|x, y| x.0.cmp(&y.0));
        let recs = a.recommend(&history, limit, exclude_bought)?;
        let known: Vec<(u32, f32)> = history
            .iter()
            .filter_map(|(id, w)| a.position(id).map(|k| (k, *w)))
            .collect();
        let items = recs
            .items
            .into_iter()
            .filter_map(|s| {
                let j = a.position(&s.item)?;
                let because = (recs.basis == Basis::History)
                    .then(|| self.strongest_reason(&known, j))
                    .flatten();
                Some(Suggestion {
                    name: self.names[j as usize].clone(),
                    category: self.category_name(self.item_categories[j as usize] as usize),
                    item: s.item,
                    score: s.score,
                    because,
                })
            })
            .collect();

        let next_category = self.next_categories(orders, today, 3)?;
        Ok(CrossSellAnswer {
            items,
            basis: recs.basis,
            unknown_items: recs.unknown_items,
            next_category,
        })
    }

    /// The `k` likeliest categories of the next order of a customer with `orders`, as of day
    /// `today`, best first, each with its share of the model's score and its reason. A customer
    /// without orders gets the categories most orders follow with (`popular`).
    ///
    /// # Errors
    /// Inconsistent artefact tables (a model that passed [`Self::validate`] has none).
    pub fn next_categories(
        &self,
        orders: &[PastOrder],
        today: i64,
        k: usize,
    ) -> Result<Vec<CategoryGuess>, RecommendError> {
        let a = &self.recommend;
        let mut sorted: Vec<&PastOrder> = orders.iter().collect();
        sorted.sort_by_key(|o| o.day);
        let other = self.next_category.scheme.other();
        let baskets: Vec<Basket> = sorted
            .iter()
            .map(|o| Basket {
                day: o.day,
                categories: o
                    .items
                    .iter()
                    .map(|i| {
                        a.position(i)
                            .map_or(other, |k| self.item_categories[k as usize] as usize)
                    })
                    .collect(),
            })
            .collect();
        let scores = self
            .next_category
            .top(&baskets, today, self.next_category.scheme.len())
            .map_err(|e| RecommendError::BadArtifact(e.to_string()))?;
        let total: f64 = scores.iter().map(|s| s.1.max(0.0)).sum();
        scores
            .into_iter()
            .take(k)
            .map(|(c, s)| {
                Ok(CategoryGuess {
                    category: self.category_name(c),
                    share: if total > 0.0 { s.max(0.0) / total } else { 0.0 },
                    because: self
                        .next_category
                        .reason(&baskets, today, c)
                        .map_err(|e| RecommendError::BadArtifact(e.to_string()))?,
                })
            })
            .collect::<Result<Vec<_>, RecommendError>>()
    }

    fn category_name(&self, c: usize) -> String {
        self.next_category
            .scheme
            .categories
            .get(c)
            .cloned()
            .unwrap_or_else(|| crate::next_category::OTHER.to_owned())
    }

    /// The bought item with the largest contribution `w(i) · S[i][j]` to item `j`'s score.
    fn strongest_reason(&self, known: &[(u32, f32)], j: u32) -> Option<Because> {
        let scorer = &self.recommend.scorer;
        let mut best: Option<(u32, f32)> = None;
        for &(i, raw) in known {
            if i == j {
                continue;
            }
            let Some(row) = scorer.neighbours.get(i as usize) else {
                continue;
            };
            let Some(&(_, s)) = row.iter().find(|(n, _)| *n == j) else {
                continue;
            };
            let c = scorer.weighting.apply(raw) * s;
            if c > 0.0 && best.is_none_or(|(_, b)| c > b) {
                best = Some((i, c));
            }
        }
        best.map(|(i, _)| Because {
            item: self.recommend.items[i as usize].clone(),
            name: self.names[i as usize].clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::next_category::{self, CategoryScheme, NextCategoryConfig};
    use crate::recommend::{ItemItem, Weighting};

    fn model() -> Result<CrossSellModel, Box<dyn std::error::Error>> {
        let recommend = CrossSellArtifact::new(
            "ease",
            vec!["BAG".into(), "MUG".into(), "CARD".into()],
            ItemItem {
                n_items: 3,
                weighting: Weighting::Binary,
                self_weight: 0.0,
                // A bag suggests mugs strongly and cards a little; a mug suggests cards.
                neighbours: vec![vec![(1, 0.9), (2, 0.1)], vec![(2, 0.5)], vec![]],
            },
            vec![1.0, 2.0, 3.0],
        )?;
        let mut counts = HashMap::new();
        counts.insert("BAG".to_owned(), 10);
        counts.insert("MUG".to_owned(), 5);
        let scheme = CategoryScheme::from_counts(&counts, 2);
        let bag = scheme.index_of(Some("BAG"));
        let mug = scheme.index_of(Some("MUG"));
        // Customers alternate: bags are followed by mugs, mugs by bags.
        let histories: Vec<Vec<Basket>> = (0..10)
            .map(|c| {
                (0..6)
                    .map(|k| Basket {
                        day: i64::from(k) * 30,
                        categories: vec![if (k + c) % 2 == 0 { bag } else { mug }],
                    })
                    .collect()
            })
            .collect();
        let nc = next_category::fit(
            &scheme,
            &histories,
            NextCategoryConfig {
                half_life_days: Some(30.0),
                transition_weight: 4.0,
                popularity_weight: 0.05,
            },
        )?;
        let item_categories = vec![bag as u32, mug as u32, scheme.other() as u32];
        Ok(CrossSellModel {
            format: CrossSellModel::FORMAT,
            version: "cross-sell-v1".into(),
            recommend,
            names: vec!["LUNCH BAG".into(), "TEA MUG".into(), "GREETING CARD".into()],
            item_categories,
            next_category: nc,
        })
    }

    #[test]
    fn suggestions_name_the_purchase_behind_them() -> Result<(), Box<dyn std::error::Error>> {
        let m = model()?;
        m.validate()?;
        let orders = vec![PastOrder {
            day: 100,
            items: vec!["BAG".into(), "BAG".into(), "NEW".into()],
        }];
        let a = m.answer(&orders, 120, 2, true)?;
        assert_eq!(a.basis, Basis::History);
        assert_eq!(a.unknown_items, vec!["NEW".to_owned()]);
        let first = &a.items[0];
        assert_eq!(
            (first.item.as_str(), first.name.as_str()),
            ("MUG", "TEA MUG")
        );
        assert_eq!(first.category, "MUG");
        assert_eq!(
            first.because.as_ref().map(|b| b.name.as_str()),
            Some("LUNCH BAG")
        );
        // After a bag order, the next order is a mug order, because of that bag order.
        assert_eq!(a.next_category[0].category, "MUG");
        assert_eq!(a.next_category[0].because, CategoryReason::FollowsLastOrder);
        let total: f64 = a.next_category.iter().map(|g| g.share).sum();
        assert!(total > 0.0 && total <= 1.0 + 1e-9, "{total}");
        Ok(())
    }

    #[test]
    fn the_strongest_contribution_wins() -> Result<(), Box<dyn std::error::Error>> {
        let m = model()?;
        // Both a bag (0.1) and a mug (0.5) suggest cards: the mug is the reason.
        let orders = vec![
            PastOrder {
                day: 1,
                items: vec!["BAG".into()],
            },
            PastOrder {
                day: 2,
                items: vec!["MUG".into()],
            },
        ];
        let a = m.answer(&orders, 3, 5, true)?;
        let card = a
            .items
            .iter()
            .find(|s| s.item == "CARD")
            .ok_or("no card suggested")?;
        assert_eq!(card.because.as_ref().map(|b| b.item.as_str()), Some("MUG"));
        Ok(())
    }

    #[test]
    fn no_history_is_popularity_without_reasons() -> Result<(), Box<dyn std::error::Error>> {
        let m = model()?;
        let a = m.answer(&[], 10, 3, true)?;
        assert_eq!(a.basis, Basis::Popularity);
        assert_eq!(a.items[0].item, "CARD");
        assert!(a.items.iter().all(|s| s.because.is_none()));
        assert_eq!(a.next_category.len(), 3);
        assert!(
            a.next_category
                .iter()
                .all(|g| g.because == CategoryReason::Popular),
            "without history only popularity speaks: {:?}",
            a.next_category
        );
        Ok(())
    }

    #[test]
    fn inconsistent_artefacts_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let mut m = model()?;
        m.item_categories[0] = 99;
        assert!(matches!(m.validate(), Err(RecommendError::BadArtifact(s)) if s.contains("99")));
        let mut m = model()?;
        m.names.pop();
        assert!(m.validate().is_err());
        let m = model()?;
        let json = serde_json::to_string(&m)?;
        let back: CrossSellModel = serde_json::from_str(&json)?;
        back.validate()?;
        assert_eq!(
            back.next_category.scheme.index_of(Some("MUG")),
            m.next_category.scheme.index_of(Some("MUG")),
            "a stored scheme still maps names"
        );
        assert_eq!(
            back.answer(&[], 1, 3, true)?,
            m.answer(&[], 1, 3, true)?,
            "a deserialised model answers like the original"
        );
        Ok(())
    }
}
