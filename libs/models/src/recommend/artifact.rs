//! The serving artefact of the cross-sell model and its "top N for this history" call.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{ItemItem, RecommendError, top_k};

/// What the trainer stores and the gateway loads (JSON via serde). Item ids are the catalogue's own
/// (e.g. StockCode or Product2 Id), so callers never see internal indices. Deserialising checks
/// the artefact and rebuilds its id index, however it is loaded (alone or inside another model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawArtifact")]
pub struct CrossSellArtifact {
    /// Format version of this structure.
    pub format: u32,
    /// Which fit produced the scorer (`ease`, `item_knn`).
    pub model: String,
    /// Item ids; position = internal index.
    pub items: Vec<String>,
    /// The scorer.
    pub scorer: ItemItem,
    /// Distinct buyers per item: the answer for a history with no known item.
    pub popularity: Vec<f32>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

/// The stored fields of [`CrossSellArtifact`], before the checks.
#[derive(Deserialize)]
struct RawArtifact {
    format: u32,
    model: String,
    items: Vec<String>,
    scorer: ItemItem,
    popularity: Vec<f32>,
}

impl TryFrom<RawArtifact> for CrossSellArtifact {
    type Error = RecommendError;
    fn try_from(r: RawArtifact) -> Result<Self, RecommendError> {
        let mut a = Self {
            format: r.format,
            model: r.model,
            items: r.items,
            scorer: r.scorer,
            popularity: r.popularity,
            index: HashMap::new(),
        };
        a.prepare()?;
        Ok(a)
    }
}

/// One recommended item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredItem {
    /// The item id.
    pub item: String,
    /// Its score (comparable within one answer only).
    pub score: f32,
}

/// What a recommendation was based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The customer's known purchases.
    History,
    /// No purchase in the history is known to the model: the most popular items (cold start).
    Popularity,
}

/// The answer to one history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendations {
    /// Best first.
    pub items: Vec<ScoredItem>,
    /// What the scores are based on.
    pub basis: Basis,
    /// History items the model does not know (new products), ignored for scoring.
    pub unknown_items: Vec<String>,
}

impl CrossSellArtifact {
    /// The current format version.
    pub const FORMAT: u32 = 1;

    /// Builds an artefact and checks its consistency.
    ///
    /// # Errors
    /// [`RecommendError::BadArtifact`] when sizes disagree, ids repeat, or weights are not finite.
    pub fn new(
        model: &str,
        items: Vec<String>,
        scorer: ItemItem,
        popularity: Vec<f32>,
    ) -> Result<Self, RecommendError> {
        let mut a = Self {
            format: Self::FORMAT,
            model: model.to_owned(),
            items,
            scorer,
            popularity,
            index: HashMap::new(),
        };
        a.prepare()?;
        Ok(a)
    }

    /// Loads an artefact from JSON and checks it.
    ///
    /// # Errors
    /// [`RecommendError::BadArtifact`] for malformed JSON, an unknown format or inconsistent content.
    pub fn from_json(json: &str) -> Result<Self, RecommendError> {
        serde_json::from_str(json)
            .map_err(|e| RecommendError::BadArtifact(format!("not a cross-sell artefact: {e}")))
    }

    /// The internal index of an item id, if the model knows it.
    #[must_use]
    pub fn position(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// Serialises to JSON.
    ///
    /// # Errors
    /// Only if serde fails (it does not for this structure).
    pub fn to_json(&self) -> Result<String, RecommendError> {
        serde_json::to_string(self).map_err(|e| RecommendError::BadArtifact(e.to_string()))
    }

    fn prepare(&mut self) -> Result<(), RecommendError> {
        if self.format != Self::FORMAT {
            return Err(RecommendError::BadArtifact(format!(
                "format {} (this build reads {})",
                self.format,
                Self::FORMAT
            )));
        }
        if self.items.len() != self.scorer.n_items || self.popularity.len() != self.items.len() {
            return Err(RecommendError::BadArtifact(format!(
                "{} items, scorer for {}, {} popularity values",
                self.items.len(),
                self.scorer.n_items,
                self.popularity.len()
            )));
        }
        if self.popularity.iter().any(|p| !p.is_finite()) {
            return Err(RecommendError::BadArtifact(
                "popularity is not finite".into(),
            ));
        }
        self.scorer.validate()?;
        self.index.clear();
        for (k, id) in self.items.iter().enumerate() {
            let k = u32::try_from(k)
                .map_err(|_| RecommendError::BadArtifact("too many items".into()))?;
            if self.index.insert(id.clone(), k).is_some() {
                return Err(RecommendError::BadArtifact(format!(
                    "item id {id:?} appears twice"
                )));
            }
        }
        Ok(())
    }

    /// Top `n` items for a purchase history of `(item id, weight)` pairs, where the weight is the
    /// number of orders containing the item (the training weight). With `exclude_bought`, items in
    /// the history are not recommended again.
    ///
    /// # Errors
    /// A weight that is not positive and finite.
    pub fn recommend(
        &self,
        history: &[(String, f32)],
        n: usize,
        exclude_bought: bool,
    ) -> Result<Recommendations, RecommendError> {
        let mut items = Vec::with_capacity(history.len());
        let mut weights = Vec::with_capacity(history.len());
        let mut unknown = Vec::new();
        for (id, w) in history {
            if !(w.is_finite() && *w > 0.0) {
                return Err(RecommendError::BadWeight { weight: *w });
            }
            match self.index.get(id) {
                Some(&k) => {
                    items.push(k);
                    weights.push(*w);
                }
                None => unknown.push(id.clone()),
            }
        }
        let (mut scores, basis) = if items.is_empty() {
            (self.popularity.clone(), Basis::Popularity)
        } else {
            let mut s = vec![0f32; self.items.len()];
            self.scorer.score_into(&items, &weights, &mut s);
            (s, Basis::History)
        };
        if exclude_bought {
            for &k in &items {
                scores[k as usize] = f32::NEG_INFINITY;
            }
        }
        let items = top_k(&scores, n)
            .into_iter()
            .map(|k| ScoredItem {
                item: self.items[k as usize].clone(),
                score: scores[k as usize],
            })
            .collect();
        Ok(Recommendations {
            items,
            basis,
            unknown_items: unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommend::Weighting;

    fn artefact() -> Result<CrossSellArtifact, RecommendError> {
        CrossSellArtifact::new(
            "ease",
            vec!["A".into(), "B".into(), "C".into()],
            ItemItem {
                n_items: 3,
                weighting: Weighting::Binary,
                self_weight: 1.0,
                neighbours: vec![vec![(1, 0.5), (2, 0.25)], vec![(2, 2.0)], vec![]],
            },
            vec![1.0, 3.0, 2.0],
        )
    }

    #[test]
    fn recommends_from_history_and_excludes_bought() -> Result<(), RecommendError> {
        let a = artefact()?;
        let r = a.recommend(&[("A".into(), 2.0), ("NEW".into(), 1.0)], 2, false)?;
        assert_eq!(r.basis, Basis::History);
        assert_eq!(r.unknown_items, vec!["NEW".to_owned()]);
        let ids: Vec<&str> = r.items.iter().map(|s| s.item.as_str()).collect();
        assert_eq!(ids, vec!["A", "B"]);
        let r = a.recommend(&[("A".into(), 2.0)], 5, true)?;
        let ids: Vec<&str> = r.items.iter().map(|s| s.item.as_str()).collect();
        assert_eq!(ids, vec!["B", "C"]);
        assert_eq!(r.items[0].score, 0.5);
        Ok(())
    }

    #[test]
    fn cold_start_is_popularity_and_says_so() -> Result<(), RecommendError> {
        let r = artefact()?.recommend(&[], 2, true)?;
        assert_eq!(r.basis, Basis::Popularity);
        assert_eq!(r.items[0].item, "B");
        Ok(())
    }

    #[test]
    fn round_trips_through_json_and_rejects_bad_input() -> Result<(), RecommendError> {
        let a = artefact()?;
        let back = CrossSellArtifact::from_json(&a.to_json()?)?;
        assert_eq!(
            back.recommend(&[("B".into(), 1.0)], 3, false)?,
            a.recommend(&[("B".into(), 1.0)], 3, false)?
        );
        assert!(matches!(
            a.recommend(&[("A".into(), f32::NAN)], 3, false),
            Err(RecommendError::BadWeight { .. })
        ));
        assert!(matches!(
            CrossSellArtifact::from_json("{}"),
            Err(RecommendError::BadArtifact(_))
        ));
        let dup = CrossSellArtifact::new(
            "ease",
            vec!["A".into(), "A".into(), "C".into()],
            a.scorer.clone(),
            vec![0.0; 3],
        );
        assert!(matches!(dup, Err(RecommendError::BadArtifact(m)) if m.contains("twice")));
        Ok(())
    }
}
