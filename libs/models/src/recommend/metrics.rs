//! Ranking metrics over full rankings (every candidate item scored; no sampled negatives), as in
//! `shared/docs/ml-anchors.md` §2d, so the figures are comparable with the ALS anchor.
//!
//! - HR@k: 1 if any ground-truth item is in the top k.
//! - NDCG@k: binary gain `1 / log2(rank + 1)` (rank from 1), divided by the ideal DCG over
//!   `min(|GT|, k)` hits.
//! - Recall@k: hits in the top k divided by `|GT|` (not by `min(|GT|, k)`).

use serde::{Deserialize, Serialize};

use super::{Interactions, top_k};

/// One user's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserMetrics {
    /// HR@10 for this user (0 or 1).
    pub hit_at_10: f64,
    /// NDCG@10.
    pub ndcg_at_10: f64,
    /// Recall@20.
    pub recall_at_20: f64,
}

/// Mean figures over users.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankingMetrics {
    /// Users evaluated (those with a non-empty ground truth).
    pub users: usize,
    /// Share of users with at least one hit in the top 10.
    pub hr_at_10: f64,
    /// Mean NDCG@10.
    pub ndcg_at_10: f64,
    /// Mean Recall@20.
    pub recall_at_20: f64,
}

impl RankingMetrics {
    /// As a JSON object with the contract keys.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("hr_at_10".into(), self.hr_at_10.into());
        m.insert("ndcg_at_10".into(), self.ndcg_at_10.into());
        m.insert("recall_at_20".into(), self.recall_at_20.into());
        m.insert("users".into(), self.users.into());
        m
    }
}

/// Hit rate at `k`: 1 if any of the first `k` ranked items is in `truth` (sorted ascending).
#[must_use]
pub fn hit_rate_at(ranked: &[u32], truth: &[u32], k: usize) -> f64 {
    if ranked
        .iter()
        .take(k)
        .any(|i| truth.binary_search(i).is_ok())
    {
        1.0
    } else {
        0.0
    }
}

/// NDCG at `k` with binary gains; `truth` sorted ascending. 0 for an empty truth.
#[must_use]
pub fn ndcg_at(ranked: &[u32], truth: &[u32], k: usize) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, i)| truth.binary_search(i).is_ok())
        .map(|(r, _)| 1.0 / (r as f64 + 2.0).log2())
        .sum();
    let idcg: f64 = (0..truth.len().min(k))
        .map(|r| 1.0 / (r as f64 + 2.0).log2())
        .sum();
    dcg / idcg
}

/// Recall at `k`: hits in the first `k` over `|truth|`; `truth` sorted ascending.
#[must_use]
pub fn recall_at(ranked: &[u32], truth: &[u32], k: usize) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let hits = ranked
        .iter()
        .take(k)
        .filter(|i| truth.binary_search(i).is_ok())
        .count();
    hits as f64 / truth.len() as f64
}

/// The three figures for one ranking (at least 20 long where possible).
#[must_use]
pub fn user_metrics(ranked: &[u32], truth: &[u32]) -> UserMetrics {
    UserMetrics {
        hit_at_10: hit_rate_at(ranked, truth, 10),
        ndcg_at_10: ndcg_at(ranked, truth, 10),
        recall_at_20: recall_at(ranked, truth, 20),
    }
}

/// Ground truth of one user: sorted, distinct item indices.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// The user (row of the training matrix).
    pub user: u32,
    /// Items bought in the test period.
    pub items: Vec<u32>,
}

/// Ranks all items for every user in `truths` with `score` (which fills one score per item) and
/// averages the metrics. With `exclude`, each user's training items are removed from the ranking
/// (the "new items" protocol). Users with an empty truth are skipped.
pub fn evaluate_rankings(
    n_items: usize,
    truths: &[Truth],
    exclude: Option<&Interactions>,
    mut score: impl FnMut(u32, &mut [f32]),
) -> RankingMetrics {
    let mut scores = vec![0f32; n_items];
    let (mut hr, mut ndcg, mut rec, mut n) = (0.0, 0.0, 0.0, 0usize);
    for t in truths {
        if t.items.is_empty() {
            continue;
        }
        score(t.user, &mut scores);
        if let Some(x) = exclude {
            for &i in x.row(t.user as usize).0 {
                if let Some(s) = scores.get_mut(i as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        let ranked = top_k(&scores, 20);
        let m = user_metrics(&ranked, &t.items);
        hr += m.hit_at_10;
        ndcg += m.ndcg_at_10;
        rec += m.recall_at_20;
        n += 1;
    }
    let d = n.max(1) as f64;
    RankingMetrics {
        users: n,
        hr_at_10: hr / d,
        ndcg_at_10: ndcg / d,
        recall_at_20: rec / d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn known_values() {
        // truth {2, 5, 9}; ranking hits at ranks 2 and 4.
        let ranked = [7, 2, 8, 5, 1];
        let truth = [2, 5, 9];
        assert_eq!(hit_rate_at(&ranked, &truth, 10), 1.0);
        assert_eq!(hit_rate_at(&ranked, &truth, 1), 0.0);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
        assert!(close(ndcg_at(&ranked, &truth, 10), dcg / idcg));
        assert!(close(recall_at(&ranked, &truth, 20), 2.0 / 3.0));
        assert!(close(recall_at(&ranked, &truth, 2), 1.0 / 3.0));
        // a perfect ranking has NDCG 1, even when |GT| > k (ideal DCG over min(|GT|, k)).
        assert!(close(ndcg_at(&[1, 2], &[1, 2, 3], 2), 1.0));
        assert_eq!(ndcg_at(&[1], &[], 10), 0.0);
        assert_eq!(recall_at(&[1], &[], 10), 0.0);
    }

    #[test]
    fn evaluation_averages_and_excludes() -> Result<(), super::super::RecommendError> {
        // Two users, three items; the scorer always ranks 0 > 1 > 2.
        let train = Interactions::from_triples(2, 3, &[(0, 0, 1.0)])?;
        let truths = vec![
            Truth {
                user: 0,
                items: vec![1],
            },
            Truth {
                user: 1,
                items: vec![0],
            },
            Truth {
                user: 1,
                items: vec![],
            },
        ];
        let score = |_: u32, s: &mut [f32]| s.copy_from_slice(&[3.0, 2.0, 1.0]);
        let all = evaluate_rankings(3, &truths, None, score);
        assert_eq!(all.users, 2);
        assert!(close(all.hr_at_10, 1.0));
        // user 0: hit at rank 2 -> 1/log2(3); user 1: rank 1 -> 1.
        assert!(close(all.ndcg_at_10, (1.0 / 3f64.log2() + 1.0) / 2.0));
        // excluding user 0's item 0 moves item 1 to rank 1.
        let new = evaluate_rankings(3, &truths, Some(&train), score);
        assert!(close(new.ndcg_at_10, 1.0));
        Ok(())
    }
}
