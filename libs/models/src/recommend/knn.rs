//! Item-kNN with cosine similarity on binary purchases (Sarwar et al. 2001; the `implicit`
//! library's `CosineRecommender`): the classical "customers who bought this also bought" baseline.
//! Each item keeps its `k` most similar items, itself included (cosine 1), so repeat purchases score.

use super::{Interactions, ItemItem, RecommendError, Weighting, top_pairs};

/// Fits cosine item-kNN with `k` neighbours per item.
///
/// # Errors
/// No interactions, or `k == 0`.
pub fn fit(x: &Interactions, k: usize) -> Result<ItemItem, RecommendError> {
    if x.nnz() == 0 {
        return Err(RecommendError::Empty);
    }
    if k == 0 {
        return Err(RecommendError::BadParameter("k must be at least 1".into()));
    }
    let n = x.n_items();
    // Co-occurrence counts, one sparse row per item, via the users who bought it.
    let xt = x.transpose();
    let df: Vec<f32> = x.item_user_counts().iter().map(|&c| c as f32).collect();
    let mut acc = vec![0f32; n];
    let mut touched: Vec<u32> = Vec::new();
    let mut neighbours = Vec::with_capacity(n);
    for i in 0..n {
        for &u in xt.row(i).0 {
            for &j in x.row(u as usize).0 {
                if acc[j as usize] == 0.0 {
                    touched.push(j);
                }
                acc[j as usize] += 1.0;
            }
        }
        let cand: Vec<(u32, f32)> = touched
            .iter()
            .map(|&j| (j, acc[j as usize] / (df[i] * df[j as usize]).sqrt()))
            .collect();
        for &j in &touched {
            acc[j as usize] = 0.0;
        }
        touched.clear();
        neighbours.push(top_pairs(cand, k));
    }
    Ok(ItemItem {
        n_items: n,
        weighting: Weighting::Binary,
        self_weight: 0.0,
        neighbours,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_neighbours_include_self_and_co_bought() -> Result<(), RecommendError> {
        // users 0,1 buy items 0 and 1; user 2 buys 1 and 2.
        let x = Interactions::from_triples(
            3,
            3,
            &[
                (0, 0, 1.0),
                (0, 1, 1.0),
                (1, 0, 1.0),
                (1, 1, 1.0),
                (2, 1, 1.0),
                (2, 2, 1.0),
            ],
        )?;
        let m = fit(&x, 2)?;
        // item 0: self 1, item 1: 2/sqrt(2*3)
        assert_eq!(m.neighbours[0][0], (0, 1.0));
        assert_eq!(m.neighbours[0][1].0, 1);
        assert!((m.neighbours[0][1].1 - 2.0 / 6f32.sqrt()).abs() < 1e-6);
        assert_eq!(m.neighbours[0].len(), 2);
        assert_eq!(
            fit(&x, 0).err(),
            Some(RecommendError::BadParameter("k must be at least 1".into()))
        );
        Ok(())
    }
}
