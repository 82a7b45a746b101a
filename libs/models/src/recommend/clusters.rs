//! Product clusters: groups of items that the same customers buy ("customers who bought these also
//! buy…"), for merchandising and for labelling recommendations.
//!
//! Items are embedded by implicit ALS (items bought by the same customers get nearby factor vectors),
//! normalised to unit length, and grouped by spherical k-means (cosine distance) with k-means++
//! seeding. Everything random comes from a seeded [`SplitMix64`], so the same data and seed give
//! the same clusters on every machine. Items nobody bought are left unassigned rather than being
//! forced into a cluster.

use super::als::{self, AlsConfig};
use super::{Interactions, RecommendError, SplitMix64};

/// Clustering settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterConfig {
    /// Number of clusters.
    pub k: usize,
    /// Seed of both the embedding and the k-means++ seeding.
    pub seed: u64,
    /// Most Lloyd iterations.
    pub max_iterations: usize,
    /// Items listed per cluster.
    pub top: usize,
    /// Embedding dimensions (ALS factors).
    pub factors: usize,
    /// ALS sweeps.
    pub als_iterations: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            k: 20,
            seed: 42,
            max_iterations: 100,
            top: 10,
            factors: 32,
            als_iterations: 10,
        }
    }
}

/// One cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductCluster {
    /// Cluster number (0-based, by decreasing size).
    pub id: usize,
    /// Items in it.
    pub size: usize,
    /// Its most-bought items `(item, distinct buyers)`, best first.
    pub top_items: Vec<(u32, u32)>,
}

/// Clusters and the cluster of every item (`None`: never bought).
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    /// The clusters, largest first.
    pub clusters: Vec<ProductCluster>,
    /// Cluster id per item.
    pub assignment: Vec<Option<usize>>,
}

fn normalise(v: &mut [f32]) -> bool {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 && n.is_finite() {
        v.iter_mut().for_each(|x| *x /= n);
        true
    } else {
        false
    }
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Spherical k-means of unit vectors (`points`, row-major, `dim` wide). Returns the cluster of each
/// point.
///
/// # Errors
/// `k` is 0 or larger than the number of points, or `dim` does not divide the data.
pub fn kmeans(
    points: &[f32],
    dim: usize,
    k: usize,
    seed: u64,
    max_iterations: usize,
) -> Result<Vec<usize>, RecommendError> {
    if dim == 0 || !points.len().is_multiple_of(dim) {
        return Err(RecommendError::BadParameter(format!(
            "{} values are not rows of {dim}",
            points.len()
        )));
    }
    let n = points.len() / dim;
    if k == 0 || k > n {
        return Err(RecommendError::BadParameter(format!(
            "k = {k} with {n} points"
        )));
    }
    let row = |i: usize| &points[i * dim..(i + 1) * dim];
    let mut rng = SplitMix64::new(seed);
    // k-means++ on the cosine distance 1 − cos.
    let mut centres: Vec<f32> = Vec::with_capacity(k * dim);
    let first = (rng.next_u64() % n as u64) as usize;
    centres.extend_from_slice(row(first));
    let mut d2: Vec<f64> = (0..n)
        .map(|i| f64::from((1.0 - cos(row(i), row(first))).max(0.0)).powi(2))
        .collect();
    while centres.len() < k * dim {
        let total: f64 = d2.iter().sum();
        let pick = if total > 0.0 {
            let target = rng.next_f64() * total;
            let mut acc = 0.0;
            d2.iter()
                .position(|&d| {
                    acc += d;
                    acc > target
                })
                .unwrap_or(n - 1)
        } else {
            // All points coincide with a centre: any point will do.
            (rng.next_u64() % n as u64) as usize
        };
        centres.extend_from_slice(row(pick));
        for (i, d) in d2.iter_mut().enumerate() {
            let nd = f64::from((1.0 - cos(row(i), row(pick))).max(0.0)).powi(2);
            if nd < *d {
                *d = nd;
            }
        }
    }
    let mut assign = vec![usize::MAX; n];
    for _ in 0..max_iterations.max(1) {
        let mut changed = false;
        for (i, a) in assign.iter_mut().enumerate() {
            let p = row(i);
            let mut best = (0usize, f32::NEG_INFINITY);
            for c in 0..k {
                let s = cos(p, &centres[c * dim..(c + 1) * dim]);
                if s > best.1 {
                    best = (c, s);
                }
            }
            if *a != best.0 {
                *a = best.0;
                changed = true;
            }
        }
        if !changed {
            break;
        }
        let mut sums = vec![0f32; k * dim];
        for (i, &a) in assign.iter().enumerate() {
            for (s, x) in sums[a * dim..(a + 1) * dim].iter_mut().zip(row(i)) {
                *s += x;
            }
        }
        for c in 0..k {
            // An empty cluster keeps its old centre.
            if normalise(&mut sums[c * dim..(c + 1) * dim]) {
                centres[c * dim..(c + 1) * dim].copy_from_slice(&sums[c * dim..(c + 1) * dim]);
            }
        }
    }
    Ok(assign)
}

/// Clusters the items of `x` by what customers buy together.
///
/// # Errors
/// No interactions, fewer bought items than `k`, or bad settings.
pub fn product_clusters(
    x: &Interactions,
    config: &ClusterConfig,
) -> Result<Clustering, RecommendError> {
    let model = als::fit(
        x,
        &AlsConfig {
            factors: config.factors,
            iterations: config.als_iterations,
            seed: config.seed,
            ..AlsConfig::default()
        },
    )?;
    let buyers = x.item_user_counts();
    let mut ids = Vec::new();
    let mut points = Vec::new();
    for (i, &b) in buyers.iter().enumerate() {
        let mut v = model.item(i).to_vec();
        if b > 0 && normalise(&mut v) {
            ids.push(i);
            points.extend_from_slice(&v);
        }
    }
    let raw = kmeans(
        &points,
        config.factors,
        config.k,
        config.seed,
        config.max_iterations,
    )?;
    // Renumber clusters by decreasing size (ties: lowest first member), so ids are stable.
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); config.k];
    for (p, &c) in raw.iter().enumerate() {
        members[c].push(ids[p]);
    }
    members.retain(|m| !m.is_empty());
    members.sort_by(|a, b| b.len().cmp(&a.len()).then(a.first().cmp(&b.first())));
    let mut assignment = vec![None; x.n_items()];
    let clusters = members
        .iter()
        .enumerate()
        .map(|(id, m)| {
            for &i in m {
                assignment[i] = Some(id);
            }
            let mut top: Vec<(u32, u32)> = m
                .iter()
                .map(|&i| (u32::try_from(i).unwrap_or(u32::MAX), buyers[i]))
                .collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            top.truncate(config.top);
            ProductCluster {
                id,
                size: m.len(),
                top_items: top,
            }
        })
        .collect();
    Ok(Clustering {
        clusters,
        assignment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three groups of five items; each customer buys 3-4 items of one group.
    fn blocks() -> Result<Interactions, RecommendError> {
        let mut t = Vec::new();
        let mut rng = SplitMix64::new(1);
        for u in 0..60u32 {
            let g = u % 3;
            for i in 0..5u32 {
                if rng.next_f64() < 0.75 {
                    t.push((u, g * 5 + i, 1.0));
                }
            }
            t.push((u, g * 5 + u % 5, 1.0));
        }
        // item 15 is in the catalogue but never bought.
        Interactions::from_triples(60, 16, &t)
    }

    #[test]
    fn groups_co_bought_items_and_is_deterministic() -> Result<(), RecommendError> {
        let x = blocks()?;
        let cfg = ClusterConfig {
            k: 3,
            seed: 7,
            factors: 8,
            top: 3,
            ..ClusterConfig::default()
        };
        let c = product_clusters(&x, &cfg)?;
        assert_eq!(c.clusters.len(), 3);
        for g in 0..3usize {
            let first = c.assignment[g * 5];
            assert!(first.is_some());
            for i in 0..5 {
                assert_eq!(
                    c.assignment[g * 5 + i],
                    first,
                    "group {g}: {:?}",
                    c.assignment
                );
            }
        }
        assert_ne!(c.assignment[0], c.assignment[5]);
        assert_ne!(c.assignment[5], c.assignment[10]);
        assert_eq!(c.assignment[15], None);
        assert!(
            c.clusters
                .iter()
                .all(|k| k.size == 5 && k.top_items.len() == 3)
        );
        assert_eq!(product_clusters(&x, &cfg)?, c);
        Ok(())
    }

    #[test]
    fn refuses_more_clusters_than_items() -> Result<(), RecommendError> {
        let x = blocks()?;
        let cfg = ClusterConfig {
            k: 16,
            factors: 4,
            ..ClusterConfig::default()
        };
        assert!(matches!(
            product_clusters(&x, &cfg),
            Err(RecommendError::BadParameter(_))
        ));
        Ok(())
    }
}
