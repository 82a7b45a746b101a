//! Cross-sell recommendations from implicit feedback (who bought what, how often).
//!
//! Why this shape: purchase data carry no ratings, only "bought / not seen", so every model here ranks
//! items for a customer from the items that customer already bought. The model that ships is an
//! item–item one (EASE^R, Steck 2019: a closed-form ridge regression of each item on all others),
//! pruned to its strongest neighbours so that the serving artefact is small and scoring a history is
//! a sparse sum — no matrix library and no per-customer state in the gateway. The classical
//! baselines it is measured against live next to it: popularity, cosine item-kNN and implicit ALS.
//!
//! # Layout
//! - [`Interactions`]: a users × items sparse matrix of positive weights (CSR), the training input.
//! - [`metrics`]: HR@k, NDCG@k and Recall@k over full rankings (no sampled negatives).
//! - [`ItemItem`]: a sparse item–item scorer (EASE after pruning, or item-kNN), serialisable.
//! - [`ease`], [`knn`], [`als`], [`popularity`]: the model fits.
//! - [`clusters`]: product clusters ("customers who bought these also buy…") by k-means.
//! - [`CrossSellArtifact`]: what the trainer stores and the gateway loads: item ids + scorer, with
//!   [`CrossSellArtifact::recommend`] answering "top N for this purchase history".
//! - [`CrossSellModel`]: the registry's `cross-sell` artefact — the recommender, product names and
//!   the next-category model — answering both questions for one customer's past orders, each
//!   suggestion with the purchase behind it.

pub mod als;
pub mod clusters;
pub mod ease;
pub mod knn;
pub mod metrics;
pub mod popularity;

mod artifact;
mod served;

pub use artifact::{Basis, CrossSellArtifact, Recommendations, ScoredItem};
pub use served::{Because, CategoryGuess, CrossSellAnswer, CrossSellModel, PastOrder, Suggestion};

use serde::{Deserialize, Serialize};

/// Why a recommendation input or fit is unusable.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecommendError {
    /// An item index is not below the number of items.
    #[error("item index {item} out of range ({n_items} items)")]
    ItemOutOfRange {
        /// The index.
        item: u32,
        /// How many items there are.
        n_items: usize,
    },
    /// A user index is not below the number of users.
    #[error("user index {user} out of range ({n_users} users)")]
    UserOutOfRange {
        /// The index.
        user: u32,
        /// How many users there are.
        n_users: usize,
    },
    /// A weight is zero, negative, NaN or infinite.
    #[error("weight {weight} is not a positive finite number")]
    BadWeight {
        /// The weight.
        weight: f32,
    },
    /// Nothing to fit on.
    #[error("no interactions to fit on")]
    Empty,
    /// A parameter is outside its domain.
    #[error("bad parameter: {0}")]
    BadParameter(String),
    /// The linear system could not be solved (e.g. not positive definite).
    #[error("linear algebra failed: {0}")]
    Linalg(String),
    /// A loaded artefact is inconsistent.
    #[error("inconsistent artefact: {0}")]
    BadArtifact(String),
}

/// How a raw purchase count becomes a model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// 1 for any purchase: what a customer bought, not how often.
    Binary,
    /// `ln(1 + count)`: repeat purchases count, with diminishing returns.
    Log1p,
}

impl Weighting {
    /// The transformed weight of a raw count.
    #[must_use]
    pub fn apply(self, raw: f32) -> f32 {
        match self {
            Self::Binary => 1.0,
            Self::Log1p => raw.ln_1p(),
        }
    }

    /// Its name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Binary => "binary",
            Self::Log1p => "log1p",
        }
    }
}

/// A users × items matrix of positive weights, compressed by row (CSR). Rows are sorted by item and
/// duplicates summed, so a row is a customer's purchase history.
#[derive(Debug, Clone, PartialEq)]
pub struct Interactions {
    n_items: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl Interactions {
    /// Builds the matrix from `(user, item, weight)` triples; duplicates are summed.
    ///
    /// # Errors
    /// An index out of range or a weight that is not positive and finite.
    pub fn from_triples(
        n_users: usize,
        n_items: usize,
        triples: &[(u32, u32, f32)],
    ) -> Result<Self, RecommendError> {
        let mut counts = vec![0usize; n_users + 1];
        for &(u, i, w) in triples {
            if u as usize >= n_users {
                return Err(RecommendError::UserOutOfRange { user: u, n_users });
            }
            if i as usize >= n_items {
                return Err(RecommendError::ItemOutOfRange { item: i, n_items });
            }
            if !(w.is_finite() && w > 0.0) {
                return Err(RecommendError::BadWeight { weight: w });
            }
            counts[u as usize + 1] += 1;
        }
        for k in 1..counts.len() {
            counts[k] += counts[k - 1];
        }
        let mut next = counts.clone();
        let mut entries = vec![(0u32, 0f32); triples.len()];
        for &(u, i, w) in triples {
            entries[next[u as usize]] = (i, w);
            next[u as usize] += 1;
        }
        let mut indptr = Vec::with_capacity(n_users + 1);
        let mut indices = Vec::with_capacity(triples.len());
        let mut values = Vec::with_capacity(triples.len());
        indptr.push(0);
        for u in 0..n_users {
            let row = &mut entries[counts[u]..counts[u + 1]];
            row.sort_by_key(|e| e.0);
            for &(i, w) in row.iter() {
                if indices.len() > indptr[u] && indices.last() == Some(&i) {
                    if let Some(v) = values.last_mut() {
                        *v += w;
                    }
                } else {
                    indices.push(i);
                    values.push(w);
                }
            }
            indptr.push(indices.len());
        }
        Ok(Self {
            n_items,
            indptr,
            indices,
            values,
        })
    }

    /// Number of users (rows).
    #[must_use]
    pub fn n_users(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Number of items (columns).
    #[must_use]
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Number of stored (user, item) pairs.
    #[must_use]
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// One user's items (ascending) and weights. Out-of-range users have an empty row.
    #[must_use]
    pub fn row(&self, user: usize) -> (&[u32], &[f32]) {
        if user + 1 >= self.indptr.len() {
            return (&[], &[]);
        }
        let (a, b) = (self.indptr[user], self.indptr[user + 1]);
        (&self.indices[a..b], &self.values[a..b])
    }

    /// Whether `user` bought `item`.
    #[must_use]
    pub fn contains(&self, user: usize, item: u32) -> bool {
        self.row(user).0.binary_search(&item).is_ok()
    }

    /// The items × users matrix.
    #[must_use]
    pub fn transpose(&self) -> Self {
        let mut counts = vec![0usize; self.n_items + 1];
        for &i in &self.indices {
            counts[i as usize + 1] += 1;
        }
        for k in 1..counts.len() {
            counts[k] += counts[k - 1];
        }
        let mut next = counts.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut values = vec![0f32; self.nnz()];
        for u in 0..self.n_users() {
            let (items, ws) = self.row(u);
            for (&i, &w) in items.iter().zip(ws) {
                let slot = next[i as usize];
                // Users are visited in ascending order, so each row of the transpose stays sorted.
                indices[slot] = u32::try_from(u).unwrap_or(u32::MAX);
                values[slot] = w;
                next[i as usize] += 1;
            }
        }
        Self {
            n_items: self.n_users(),
            indptr: counts,
            indices,
            values,
        }
    }

    /// The same pattern with every weight mapped through `f`.
    #[must_use]
    pub fn map_values(&self, f: impl Fn(f32) -> f32) -> Self {
        Self {
            n_items: self.n_items,
            indptr: self.indptr.clone(),
            indices: self.indices.clone(),
            values: self.values.iter().map(|&v| f(v)).collect(),
        }
    }

    /// Number of users who bought each item.
    #[must_use]
    pub fn item_user_counts(&self) -> Vec<u32> {
        let mut c = vec![0u32; self.n_items];
        for &i in &self.indices {
            c[i as usize] += 1;
        }
        c
    }

    /// BM25 re-weighting (Robertson & Zaragoza), as the `implicit` library applies it before ALS:
    /// `w · (K1 + 1) / (K1 · norm(user) + w) · idf(item)` with `idf = ln N − ln(1 + df)` and
    /// `norm = (1 − B) + B · rowsum / mean rowsum`.
    #[must_use]
    pub fn bm25(&self, k1: f32, b: f32) -> Self {
        let n = self.n_users() as f32;
        let df = self.item_user_counts();
        let idf: Vec<f32> = df.iter().map(|&d| n.ln() - (d as f32).ln_1p()).collect();
        let row_sums: Vec<f32> = (0..self.n_users())
            .map(|u| self.row(u).1.iter().sum())
            .collect();
        let mean = if row_sums.is_empty() {
            1.0
        } else {
            row_sums.iter().sum::<f32>() / row_sums.len() as f32
        };
        let mut out = self.clone();
        for (u, row_sum) in row_sums.iter().enumerate() {
            let norm = (1.0 - b) + b * row_sum / mean;
            for k in self.indptr[u]..self.indptr[u + 1] {
                let w = self.values[k];
                out.values[k] = w * (k1 + 1.0) / (k1 * norm + w) * idf[self.indices[k] as usize];
            }
        }
        out
    }
}

/// A sparse item–item scorer: `score(j) = Σ_i w(i) · S[i][j] + self_weight · w(j)` over the items
/// `i` of a history, with `w` the [`Weighting`] of the raw count. EASE and item-kNN both end here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemItem {
    /// Number of items.
    pub n_items: usize,
    /// How raw purchase counts are turned into weights.
    pub weighting: Weighting,
    /// Extra score of an item for having been bought itself (repeat purchases), per unit weight.
    pub self_weight: f32,
    /// For each item `i`, its strongest neighbours `(j, S[i][j])`.
    pub neighbours: Vec<Vec<(u32, f32)>>,
}

impl ItemItem {
    /// Scores every item for one history (`items` with raw counts `weights`) into `out`.
    ///
    /// Items out of range are skipped; callers validate histories first (see
    /// [`CrossSellArtifact::recommend`]).
    pub fn score_into(&self, items: &[u32], weights: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        for (&i, &raw) in items.iter().zip(weights) {
            let Some(row) = self.neighbours.get(i as usize) else {
                continue;
            };
            let w = self.weighting.apply(raw);
            for &(j, s) in row {
                if let Some(o) = out.get_mut(j as usize) {
                    *o += w * s;
                }
            }
            if let Some(o) = out.get_mut(i as usize) {
                *o += self.self_weight * w;
            }
        }
    }

    /// Checks that every neighbour index is in range and every weight finite.
    ///
    /// # Errors
    /// [`RecommendError::BadArtifact`] naming the first problem.
    pub fn validate(&self) -> Result<(), RecommendError> {
        if self.neighbours.len() != self.n_items {
            return Err(RecommendError::BadArtifact(format!(
                "{} neighbour lists for {} items",
                self.neighbours.len(),
                self.n_items
            )));
        }
        if !self.self_weight.is_finite() {
            return Err(RecommendError::BadArtifact(
                "self_weight is not finite".into(),
            ));
        }
        for (i, row) in self.neighbours.iter().enumerate() {
            for &(j, s) in row {
                if j as usize >= self.n_items || !s.is_finite() {
                    return Err(RecommendError::BadArtifact(format!(
                        "item {i}: neighbour ({j}, {s}) out of range or not finite"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Keeps, per row of a dense `n × n` row-major matrix, the `keep` largest positive off-diagonal
/// entries (ties by lower index), sorted by decreasing value.
#[must_use]
pub fn prune_rows(
    dense: &[f32],
    n: usize,
    keep: usize,
    include_diagonal: bool,
) -> Vec<Vec<(u32, f32)>> {
    (0..n)
        .map(|i| {
            let row = &dense[i * n..(i + 1) * n];
            let cand: Vec<(u32, f32)> = row
                .iter()
                .enumerate()
                .filter(|&(j, &v)| v > 0.0 && v.is_finite() && (include_diagonal || j != i))
                .map(|(j, &v)| (u32::try_from(j).unwrap_or(u32::MAX), v))
                .collect();
            top_pairs(cand, keep)
        })
        .collect()
}

/// The `k` pairs with the largest value (ties by lower index), sorted.
fn top_pairs(mut cand: Vec<(u32, f32)>, k: usize) -> Vec<(u32, f32)> {
    let cmp = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if cand.len() > k && k > 0 {
        cand.select_nth_unstable_by(k - 1, cmp);
        cand.truncate(k);
    } else if k == 0 {
        cand.clear();
    }
    cand.sort_by(cmp);
    cand
}

/// Indices of the `k` highest finite scores, best first; ties go to the lower index so rankings
/// are reproducible. `-inf` marks an excluded item.
#[must_use]
pub fn top_k(scores: &[f32], k: usize) -> Vec<u32> {
    let cand: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_finite())
        .map(|(j, &s)| (u32::try_from(j).unwrap_or(u32::MAX), s))
        .collect();
    top_pairs(cand, k).into_iter().map(|p| p.0).collect()
}

/// A small deterministic generator (SplitMix64): seeded fits give the same result on every
/// platform and crate version, which `rand`'s `StdRng` does not promise.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples_are_summed_sorted_and_checked() -> Result<(), RecommendError> {
        let x = Interactions::from_triples(
            2,
            3,
            &[(1, 2, 1.0), (0, 1, 2.0), (1, 0, 1.0), (1, 2, 3.0)],
        )?;
        assert_eq!(x.n_users(), 2);
        assert_eq!(x.nnz(), 3);
        assert_eq!(x.row(0), (&[1u32][..], &[2.0f32][..]));
        assert_eq!(x.row(1), (&[0u32, 2][..], &[1.0f32, 4.0][..]));
        assert!(x.contains(1, 2) && !x.contains(0, 2));
        let t = x.transpose();
        assert_eq!(t.n_users(), 3);
        assert_eq!(t.row(2), (&[1u32][..], &[4.0f32][..]));
        assert_eq!(x.item_user_counts(), vec![1, 1, 1]);
        assert_eq!(
            Interactions::from_triples(1, 1, &[(0, 1, 1.0)]),
            Err(RecommendError::ItemOutOfRange {
                item: 1,
                n_items: 1
            })
        );
        assert_eq!(
            Interactions::from_triples(1, 1, &[(0, 0, 0.0)]),
            Err(RecommendError::BadWeight { weight: 0.0 })
        );
        assert!(matches!(
            Interactions::from_triples(1, 1, &[(3, 0, 1.0)]),
            Err(RecommendError::UserOutOfRange { user: 3, .. })
        ));
        Ok(())
    }

    #[test]
    fn top_k_breaks_ties_by_index_and_skips_excluded() {
        let s = [0.5, 2.0, f32::NEG_INFINITY, 2.0, 1.0];
        assert_eq!(top_k(&s, 3), vec![1, 3, 4]);
        assert_eq!(top_k(&s, 10), vec![1, 3, 4, 0]);
        assert!(top_k(&s, 0).is_empty());
    }

    #[test]
    fn item_item_scores_sum_neighbours_and_self() {
        let m = ItemItem {
            n_items: 3,
            weighting: Weighting::Binary,
            self_weight: 0.5,
            neighbours: vec![vec![(1, 2.0)], vec![(2, 1.0), (0, 0.25)], vec![]],
        };
        let mut out = vec![0.0; 3];
        m.score_into(&[0, 1], &[3.0, 1.0], &mut out);
        // item 0: self 0.5 + from 1: 0.25; item 1: 2.0 + self 0.5; item 2: 1.0
        assert_eq!(out, vec![0.75, 2.5, 1.0]);
        assert!(m.validate().is_ok());
        let bad = ItemItem {
            neighbours: vec![vec![(7, 1.0)], vec![], vec![]],
            ..m
        };
        assert!(matches!(
            bad.validate(),
            Err(RecommendError::BadArtifact(_))
        ));
    }

    #[test]
    fn bm25_downweights_popular_items_and_long_rows() -> Result<(), RecommendError> {
        // item 0 bought by all three users, item 1 by one.
        let x = Interactions::from_triples(
            3,
            2,
            &[(0, 0, 1.0), (1, 0, 1.0), (2, 0, 1.0), (2, 1, 1.0)],
        )?;
        let w = x.bm25(100.0, 0.8);
        let (_, r2) = w.row(2);
        assert!(r2[1] > r2[0], "{r2:?}");
        // idf(item 0) = ln 3 - ln 4 < 0, as in `implicit`.
        assert!(r2[0] < 0.0);
        Ok(())
    }

    #[test]
    fn splitmix_is_reproducible() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let x = a.next_f64();
        assert!((0.0..1.0).contains(&x));
    }
}
