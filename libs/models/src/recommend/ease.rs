//! EASE^R (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).
//!
//! Each item is regressed on all other items with an L2 penalty λ and a zero diagonal, which has the
//! closed form `B = I − P · diag(1 / diag(P))` with `P = (XᵀX + λI)⁻¹`, i.e. `B_ij = −P_ij / P_jj`
//! off the diagonal. It has one hyper-parameter, no random initialisation, and on retail baskets it
//! is consistently stronger than factor models, which is why it is the shipped cross-sell model.
//! The `n × n` solve (n = items) is done once by a Cholesky factorisation in `faer`; serving uses the
//! pruned rows (see [`super::ItemItem`]), never the dense matrix.
//!
//! The zero diagonal means EASE never recommends an item *because* it was bought; in retail, repeat
//! purchases are a large share of what customers buy next, so the scorer adds `self_weight · w(j)`
//! for items already in the history (tuned on a validation period, 0 disables it).

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};

use super::{Interactions, ItemItem, RecommendError, Weighting, prune_rows};

/// EASE settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EaseConfig {
    /// L2 penalty λ, in units of the mean diagonal of `XᵀX` (the mean squared item weight mass),
    /// so that one setting means the same on small and large catalogues.
    pub relative_lambda: f64,
    /// How counts become inputs.
    pub weighting: Weighting,
    /// Neighbours kept per item in the serving scorer.
    pub keep: usize,
    /// Score added for an item already bought, per unit weight.
    pub self_weight: f32,
}

/// The dense EASE weights, row-major `n × n` (`row i` = what item `i` says about every item).
#[derive(Debug, Clone)]
pub struct EaseWeights {
    /// Number of items.
    pub n_items: usize,
    /// The absolute λ used.
    pub lambda: f64,
    /// How counts became inputs.
    pub weighting: Weighting,
    /// `B`, row-major.
    pub b: Vec<f32>,
}

impl EaseWeights {
    /// The serving scorer: the `keep` strongest positive neighbours per item.
    #[must_use]
    pub fn prune(&self, keep: usize, self_weight: f32) -> ItemItem {
        ItemItem {
            n_items: self.n_items,
            weighting: self.weighting,
            self_weight,
            neighbours: prune_rows(&self.b, self.n_items, keep, false),
        }
    }
}

/// `XᵀX` of the weighted matrix, dense and symmetric, accumulated from the sparse rows.
fn gram(x: &Interactions, weighting: Weighting) -> Mat<f64> {
    let n = x.n_items();
    let mut g = Mat::<f64>::zeros(n, n);
    for u in 0..x.n_users() {
        let (items, ws) = x.row(u);
        let w: Vec<f64> = ws.iter().map(|&r| f64::from(weighting.apply(r))).collect();
        for (a, &i) in items.iter().enumerate() {
            for (b, &j) in items.iter().enumerate() {
                g[(j as usize, i as usize)] += w[a] * w[b];
            }
        }
    }
    g
}

/// Fits the dense EASE weights.
///
/// # Errors
/// No interactions, a non-positive λ, or a failed factorisation.
pub fn fit_weights(
    x: &Interactions,
    relative_lambda: f64,
    weighting: Weighting,
) -> Result<EaseWeights, RecommendError> {
    let n = x.n_items();
    if x.nnz() == 0 || n == 0 {
        return Err(RecommendError::Empty);
    }
    if !(relative_lambda.is_finite() && relative_lambda > 0.0) {
        return Err(RecommendError::BadParameter(format!(
            "relative_lambda must be positive, got {relative_lambda}"
        )));
    }
    let mut g = gram(x, weighting);
    let mean_diag = (0..n).map(|i| g[(i, i)]).sum::<f64>() / n as f64;
    let lambda = relative_lambda * mean_diag;
    for i in 0..n {
        g[(i, i)] += lambda;
    }
    let llt = g
        .llt(Side::Lower)
        .map_err(|e| RecommendError::Linalg(format!("Cholesky of XᵀX + λI failed: {e:?}")))?;
    drop(g);
    let p = llt.inverse();
    let mut b = vec![0f32; n * n];
    for j in 0..n {
        let pjj = p[(j, j)];
        if !(pjj.is_finite() && pjj > 0.0) {
            return Err(RecommendError::Linalg(format!("P[{j},{j}] = {pjj}")));
        }
        for i in 0..n {
            if i != j {
                // P is symmetric; read it down column j (contiguous) and write B[i][j].
                b[i * n + j] = (-p[(i, j)] / pjj) as f32;
            }
        }
    }
    Ok(EaseWeights {
        n_items: n,
        lambda,
        weighting,
        b,
    })
}

/// Fits EASE and prunes it to the serving scorer.
///
/// # Errors
/// See [`fit_weights`].
pub fn fit(x: &Interactions, config: &EaseConfig) -> Result<ItemItem, RecommendError> {
    Ok(fit_weights(x, config.relative_lambda, config.weighting)?
        .prune(config.keep, config.self_weight))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_closed_form_on_a_tiny_matrix() -> Result<(), RecommendError> {
        // 3 users, 2 items: XᵀX = [[2, 1], [1, 2]] with binary weights.
        let x = Interactions::from_triples(
            3,
            2,
            &[(0, 0, 1.0), (1, 1, 1.0), (2, 0, 1.0), (2, 1, 5.0)],
        )?;
        let w = fit_weights(&x, 0.5, Weighting::Binary)?;
        // mean diag = 2, λ = 1: G = [[3, 1], [1, 3]], P = [[3, -1], [-1, 3]] / 8,
        // B_01 = -P_01 / P_11 = 1/3.
        assert!((w.lambda - 1.0).abs() < 1e-12);
        assert!((w.b[1] - 1.0 / 3.0).abs() < 1e-6, "{:?}", w.b);
        assert!((w.b[2] - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(w.b[0], 0.0);
        let s = w.prune(5, 0.0);
        assert_eq!(s.neighbours[0], vec![(1, w.b[1])]);
        Ok(())
    }

    #[test]
    fn co_bought_items_get_positive_weights_and_strangers_none() -> Result<(), RecommendError> {
        // items 0,1 always bought together; item 2 alone.
        let mut t = Vec::new();
        for u in 0..10 {
            t.push((u, 0, 1.0));
            t.push((u, 1, 1.0));
        }
        for u in 10..15 {
            t.push((u, 2, 1.0));
        }
        let x = Interactions::from_triples(15, 3, &t)?;
        let s = fit(
            &x,
            &EaseConfig {
                relative_lambda: 0.1,
                weighting: Weighting::Binary,
                keep: 10,
                self_weight: 0.0,
            },
        )?;
        assert_eq!(s.neighbours[0].first().map(|p| p.0), Some(1));
        assert!(s.neighbours[2].is_empty(), "{:?}", s.neighbours[2]);
        Ok(())
    }

    #[test]
    fn refuses_empty_input_and_bad_lambda() -> Result<(), RecommendError> {
        let empty = Interactions::from_triples(1, 2, &[])?;
        assert_eq!(
            fit_weights(&empty, 1.0, Weighting::Binary).err(),
            Some(RecommendError::Empty)
        );
        let x = Interactions::from_triples(1, 1, &[(0, 0, 1.0)])?;
        assert!(matches!(
            fit_weights(&x, 0.0, Weighting::Binary),
            Err(RecommendError::BadParameter(_))
        ));
        Ok(())
    }
}
