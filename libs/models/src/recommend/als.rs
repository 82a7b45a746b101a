//! Implicit-feedback ALS (Hu, Koren & Volinsky 2008) solved by conjugate gradient (Takács, Pilászy &
//! Tikk 2011), following the `implicit` library's CPU solver step for step: confidence
//! `c = alpha · w` on observed pairs (preference 1), `YᵀY + reg·I` shared by all rows, a few CG
//! steps per row warm-started from the previous iterate, factors initialised uniformly in
//! `[0, 0.01)`. It is the strongest classical baseline in `ml-anchors.md` §2d, and its item factors
//! are the embeddings that [`super::clusters`] groups.

use super::{Interactions, RecommendError, SplitMix64};

/// ALS settings (the anchor's are the [`Default`]: 64 factors, reg 0.05, alpha 1, 20 iterations).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlsConfig {
    /// Latent dimensions.
    pub factors: usize,
    /// L2 penalty on both factor matrices.
    pub regularization: f32,
    /// Confidence per unit of input weight.
    pub alpha: f32,
    /// Alternating sweeps (users then items).
    pub iterations: usize,
    /// Conjugate-gradient steps per row and sweep.
    pub cg_steps: usize,
    /// Seed of the initial factors.
    pub seed: u64,
}

impl Default for AlsConfig {
    fn default() -> Self {
        Self {
            factors: 64,
            regularization: 0.05,
            alpha: 1.0,
            iterations: 20,
            cg_steps: 3,
            seed: 42,
        }
    }
}

/// Fitted factors, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct AlsModel {
    /// Latent dimensions.
    pub factors: usize,
    /// `users × factors`.
    pub user_factors: Vec<f32>,
    /// `items × factors`.
    pub item_factors: Vec<f32>,
}

impl AlsModel {
    /// One item's vector.
    #[must_use]
    pub fn item(&self, item: usize) -> &[f32] {
        &self.item_factors[item * self.factors..(item + 1) * self.factors]
    }

    /// Scores every item for a training user into `out` (dot products of the factors).
    pub fn score_user(&self, user: usize, out: &mut [f32]) {
        let f = self.factors;
        let Some(xu) = self.user_factors.get(user * f..(user + 1) * f) else {
            out.fill(0.0);
            return;
        };
        for (j, o) in out.iter_mut().enumerate() {
            *o = self
                .item_factors
                .get(j * f..(j + 1) * f)
                .map_or(0.0, |y| dot(xu, y));
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// `YᵀY + reg·I`, row-major `f × f`.
fn gram(y: &[f32], f: usize, reg: f32) -> Vec<f32> {
    let mut g = vec![0f32; f * f];
    for row in y.chunks_exact(f) {
        for a in 0..f {
            let ra = row[a];
            axpy(ra, row, &mut g[a * f..(a + 1) * f]);
        }
    }
    for a in 0..f {
        g[a * f + a] += reg;
    }
    g
}

fn symv(g: &[f32], x: &[f32], out: &mut [f32]) {
    let f = x.len();
    for (a, o) in out.iter_mut().enumerate() {
        *o = dot(&g[a * f..(a + 1) * f], x);
    }
}

/// One half-sweep: re-solves every row of `x` given the fixed `y` (`c` holds the confidences).
fn least_squares_cg(c: &Interactions, x: &mut [f32], y: &[f32], f: usize, reg: f32, steps: usize) {
    let yty = gram(y, f, reg);
    let (mut r, mut p, mut ap) = (vec![0f32; f], vec![0f32; f], vec![0f32; f]);
    for (u, xu) in x.chunks_exact_mut(f).enumerate() {
        let (items, confs) = c.row(u);
        symv(&yty, xu, &mut r);
        r.iter_mut().for_each(|v| *v = -*v);
        for (&i, &conf) in items.iter().zip(confs) {
            let yi = &y[i as usize * f..(i as usize + 1) * f];
            let (target, c_abs) = if conf > 0.0 {
                (conf, conf)
            } else {
                (0.0, -conf)
            };
            axpy(target - (c_abs - 1.0) * dot(yi, xu), yi, &mut r);
        }
        p.copy_from_slice(&r);
        let mut rsold = dot(&r, &r);
        if rsold < 1e-20 {
            continue;
        }
        for _ in 0..steps {
            symv(&yty, &p, &mut ap);
            for (&i, &conf) in items.iter().zip(confs) {
                let yi = &y[i as usize * f..(i as usize + 1) * f];
                axpy((conf.abs() - 1.0) * dot(yi, &p), yi, &mut ap);
            }
            let pap = dot(&p, &ap);
            if pap.abs() < f32::MIN_POSITIVE {
                break;
            }
            let alpha = rsold / pap;
            axpy(alpha, &p, xu);
            axpy(-alpha, &ap, &mut r);
            let rsnew = dot(&r, &r);
            if rsnew < 1e-20 {
                break;
            }
            let beta = rsnew / rsold;
            for (pi, ri) in p.iter_mut().zip(&r) {
                *pi = ri + beta * *pi;
            }
            rsold = rsnew;
        }
    }
}

/// Fits ALS on weights `x` (e.g. BM25-weighted counts); confidence is `alpha · x`.
///
/// # Errors
/// No interactions, or settings out of their domain.
pub fn fit(x: &Interactions, config: &AlsConfig) -> Result<AlsModel, RecommendError> {
    if x.nnz() == 0 {
        return Err(RecommendError::Empty);
    }
    if config.factors == 0 || config.cg_steps == 0 {
        return Err(RecommendError::BadParameter(
            "factors and cg_steps must be at least 1".into(),
        ));
    }
    if !(config.regularization.is_finite()
        && config.regularization >= 0.0
        && config.alpha.is_finite())
    {
        return Err(RecommendError::BadParameter(
            "regularization and alpha must be finite, reg ≥ 0".into(),
        ));
    }
    let f = config.factors;
    let cui = x.map_values(|v| config.alpha * v);
    let ciu = cui.transpose();
    let mut rng = SplitMix64::new(config.seed);
    let mut init =
        |n: usize| -> Vec<f32> { (0..n * f).map(|_| (rng.next_f64() * 0.01) as f32).collect() };
    let mut users = init(x.n_users());
    let mut items = init(x.n_items());
    for _ in 0..config.iterations {
        least_squares_cg(
            &cui,
            &mut users,
            &items,
            f,
            config.regularization,
            config.cg_steps,
        );
        least_squares_cg(
            &ciu,
            &mut items,
            &users,
            f,
            config.regularization,
            config.cg_steps,
        );
    }
    if users.iter().chain(&items).any(|v| !v.is_finite()) {
        return Err(RecommendError::Linalg(
            "ALS diverged (non-finite factors)".into(),
        ));
    }
    Ok(AlsModel {
        factors: f,
        user_factors: users,
        item_factors: items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommend::top_k;

    #[test]
    fn recovers_two_blocks() -> Result<(), RecommendError> {
        // users 0-4 buy items 0-2, users 5-9 buy items 3-5; user 0 has not bought item 2 yet.
        let mut t = Vec::new();
        for u in 0..10u32 {
            let base = if u < 5 { 0 } else { 3 };
            for i in base..base + 3 {
                if !(u == 0 && i == 2) {
                    t.push((u, i, 1.0));
                }
            }
        }
        let x = Interactions::from_triples(10, 6, &t)?;
        let m = fit(
            &x,
            &AlsConfig {
                factors: 4,
                iterations: 15,
                ..AlsConfig::default()
            },
        )?;
        let mut s = vec![0.0; 6];
        m.score_user(0, &mut s);
        s[0] = f32::NEG_INFINITY;
        s[1] = f32::NEG_INFINITY;
        assert_eq!(top_k(&s, 1), vec![2], "{s:?}");
        // deterministic given the seed
        let again = fit(
            &x,
            &AlsConfig {
                factors: 4,
                iterations: 15,
                ..AlsConfig::default()
            },
        )?;
        assert_eq!(m, again);
        Ok(())
    }
}
