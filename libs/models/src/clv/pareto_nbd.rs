//! Pareto/NBD (Schmittlein, Morrison & Colombo 1987), in the form of Fader & Hardie's note
//! "Deriving an expression for P(X(t) = x) under the Pareto/NBD model" / "A note on deriving the
//! Pareto/NBD model and related expressions" (2005).
//!
//! While alive a customer buys as a Poisson process with rate λ ~ Gamma(r, α); lifetimes are
//! exponential with rate μ ~ Gamma(s, β). The likelihood and P(alive) need
//! `A0 = 2F1(r+s+x, c; r+s+x+1; z1)/(m+t_x)^(r+s+x) - 2F1(r+s+x, c; r+s+x+1; z2)/(m+T)^(r+s+x)`
//! (m = max(α, β)); it is computed in logs because its parts overflow for heavy buyers.

use serde::{Deserialize, Serialize};
use statrs::function::gamma::ln_gamma;

use super::optimise::{Grouped, at_bound, minimise};
use super::special::ln_hyp2f1_c_eq_a_plus_1;
use super::{ClvError, FitOutcome, Summary, log_add_exp};

/// Pareto/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParetoNbdParams {
    /// Gamma shape of the purchase rate.
    pub r: f64,
    /// Gamma scale of the purchase rate.
    pub alpha: f64,
    /// Gamma shape of the dropout rate.
    pub s: f64,
    /// Gamma scale of the dropout rate.
    pub beta: f64,
}

/// Below this probability of dropping out over the longest observed age, dropout is negligible.
pub const NEGLIGIBLE_DROPOUT: f64 = 1e-4;

impl ParetoNbdParams {
    /// `ln A0`, or `None` when `A0 = 0` (t_x = T: no time in which the customer could have died unseen).
    fn ln_a0(&self, s: &Summary) -> Result<Option<f64>, ClvError> {
        let Self {
            r,
            alpha,
            s: sh,
            beta,
        } = *self;
        let x = s.x;
        let (lo, hi, c) = if alpha < beta {
            (alpha, beta, r + x)
        } else {
            (beta, alpha, sh + 1.0)
        };
        let d = hi - lo;
        let a = r + sh + x;
        if d / (hi + s.t_x) > SERIES_MAX_Z {
            // The series needs O(1/(1-z)) terms here; integrate A0 = (r+s+x) ∫ directly instead.
            return Ok(ln_timing_integral(self, s)?.map(|ln_i| a.ln() + ln_i));
        }
        let p1 = ln_hyp2f1_c_eq_a_plus_1(a, c, d / (hi + s.t_x))? - a * (hi + s.t_x).ln();
        let p2 = ln_hyp2f1_c_eq_a_plus_1(a, c, d / (hi + s.t))? - a * (hi + s.t).ln();
        let diff = p2 - p1;
        if diff >= 0.0 {
            return Ok(None);
        }
        Ok(Some(p1 + ln_one_minus_exp(diff)))
    }

    /// Log-likelihood of one customer.
    ///
    /// # Errors
    /// [`ClvError::Numerical`] when the hypergeometric series does not converge.
    pub fn log_likelihood_one(&self, s: &Summary) -> Result<f64, ClvError> {
        let Self {
            r,
            alpha,
            s: sh,
            beta,
        } = *self;
        let x = s.x;
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + sh * beta.ln();
        let a3 = -(r + x) * (alpha + s.t).ln() - sh * (beta + s.t).ln();
        Ok(match self.ln_a0(s)? {
            Some(ln_a0) => a1 + log_add_exp(a3, sh.ln() + ln_a0 - (r + sh + x).ln()),
            None => a1 + a3,
        })
    }

    /// Sum of the customers' log-likelihoods.
    ///
    /// # Errors
    /// As [`Self::log_likelihood_one`].
    pub fn log_likelihood(&self, data: &[Summary]) -> Result<f64, ClvError> {
        data.iter().map(|s| self.log_likelihood_one(s)).sum()
    }

    /// P(alive at T | x, t_x, T).
    ///
    /// # Errors
    /// As [`Self::log_likelihood_one`].
    pub fn p_alive(&self, s: &Summary) -> Result<f64, ClvError> {
        let Self {
            r,
            alpha,
            s: sh,
            beta,
        } = *self;
        let x = s.x;
        let Some(ln_a0) = self.ln_a0(s)? else {
            return Ok(1.0);
        };
        let ln_odds = sh.ln() - (r + sh + x).ln()
            + (r + x) * (alpha + s.t).ln()
            + sh * (beta + s.t).ln()
            + ln_a0;
        Ok(1.0 / (1.0 + ln_odds.exp()))
    }

    /// E[X(t)] for a new customer.
    #[must_use]
    pub fn expected_purchases_new(&self, t: f64) -> f64 {
        let Self { r, alpha, s, beta } = *self;
        r * beta / alpha * lifetime_factor(s, beta, t)
    }

    /// E[Y(t) | x, t_x, T].
    ///
    /// # Errors
    /// As [`Self::log_likelihood_one`].
    pub fn conditional_expected_purchases(&self, s: &Summary, t: f64) -> Result<f64, ClvError> {
        let Self {
            r,
            alpha,
            s: sh,
            beta,
        } = *self;
        let rate = (r + s.x) * (beta + s.t) / (alpha + s.t);
        Ok(rate * lifetime_factor(sh, beta + s.t, t) * self.p_alive(s)?)
    }
}

/// Above this argument the 2F1 series is slow (its terms shrink like z^n); A0 is integrated instead.
const SERIES_MAX_Z: f64 = 0.99;

/// `ln ∫_{t_x}^{T} (α+τ)^-(r+x) (β+τ)^-(s+1) dτ`, the probability-weighted time in which the
/// customer may have died unseen, by adaptive Simpson on the integrand scaled by its value at t_x
/// (it is positive and decreasing, so the scaled values lie in (0, 1] and nothing underflows early).
/// `Ok(None)` when t_x = T.
///
/// # Errors
/// [`ClvError::Numerical`] when the integral needs more than [`QUADRATURE_BUDGET`] evaluations.
fn ln_timing_integral(p: &ParetoNbdParams, s: &Summary) -> Result<Option<f64>, ClvError> {
    let (lo, hi) = (s.t_x, s.t);
    if hi <= lo {
        return Ok(None);
    }
    let (k1, k2) = (p.r + s.x, p.s + 1.0);
    let (a0, b0) = (p.alpha + lo, p.beta + lo);
    let f = |tau: f64| (-k1 * ((p.alpha + tau) / a0).ln() - k2 * ((p.beta + tau) / b0).ln()).exp();
    let (fa, fm, fb) = (f(lo), f(0.5 * (lo + hi)), f(hi));
    let whole = (hi - lo) / 6.0 * (fa + 4.0 * fm + fb);
    let mut q = Quadrature {
        f: &f,
        budget: QUADRATURE_BUDGET,
    };
    let integral = q.simpson([lo, hi], [fa, fm, fb], whole, 1e-11 * whole, 40);
    if q.budget == 0 {
        return Err(ClvError::Numerical(format!(
            "Pareto/NBD: the dropout-time integral did not converge in {QUADRATURE_BUDGET} evaluations"
        )));
    }
    Ok((integral > 0.0).then(|| integral.ln() - k1 * a0.ln() - k2 * b0.ln()))
}

/// Integrand evaluations allowed per integral.
const QUADRATURE_BUDGET: u32 = 20_000;

/// Adaptive Simpson with Richardson extrapolation and an evaluation budget.
struct Quadrature<'a> {
    f: &'a dyn Fn(f64) -> f64,
    budget: u32,
}

impl Quadrature<'_> {
    fn simpson(
        &mut self,
        [a, b]: [f64; 2],
        [fa, fm, fb]: [f64; 3],
        whole: f64,
        tol: f64,
        depth: u32,
    ) -> f64 {
        let m = 0.5 * (a + b);
        let (lm, rm) = (0.5 * (a + m), 0.5 * (m + b));
        self.budget = self.budget.saturating_sub(2);
        let (flm, frm) = ((self.f)(lm), (self.f)(rm));
        let left = (m - a) / 6.0 * (fa + 4.0 * flm + fm);
        let right = (b - m) / 6.0 * (fm + 4.0 * frm + fb);
        let delta = left + right - whole;
        // Stop on the tolerance, at the depth limit, out of budget, or when the tolerance has fallen
        // below what f64 can resolve on this piece (otherwise every branch recurses to the bottom).
        if depth == 0
            || self.budget == 0
            || delta.abs() <= 15.0 * tol
            || tol < 1e-15 * (left + right).abs()
        {
            return left + right + delta / 15.0;
        }
        self.simpson([a, m], [fa, flm, fm], left, tol / 2.0, depth - 1)
            + self.simpson([m, b], [fm, frm, fb], right, tol / 2.0, depth - 1)
    }
}

/// `∫0^t E[e^{-μτ}] dτ / β` in closed form: `(1 - (β/(β+t))^(s-1)) / (s-1)`, or its limit
/// `ln((β+t)/β)` at s = 1.
fn lifetime_factor(s: f64, beta: f64, t: f64) -> f64 {
    if (s - 1.0).abs() < 1e-8 {
        ((beta + t) / beta).ln()
    } else {
        -((s - 1.0) * (beta / (beta + t)).ln()).exp_m1() / (s - 1.0)
    }
}

/// `ln(1 - e^d)` for `d < 0`, accurate at both ends.
fn ln_one_minus_exp(d: f64) -> f64 {
    if d > -std::f64::consts::LN_2 {
        (-d.exp_m1()).ln()
    } else {
        (-d.exp()).ln_1p()
    }
}

/// Fits Pareto/NBD by maximum likelihood.
///
/// Degeneracy: when the probability of dropping out within the longest observed age,
/// `1 - (β/(β+T_max))^s`, is below [`NEGLIGIBLE_DROPOUT`], or a parameter is on the search bound,
/// the fit is the NBD in disguise and is reported as degenerate.
///
/// # Errors
/// [`ClvError`] for invalid summaries, no data, or an optimiser failure.
pub fn fit(data: &[Summary]) -> Result<FitOutcome<ParetoNbdParams>, ClvError> {
    let g = Grouped::new(data)?;
    let n = g.customers;
    let t_max = data.iter().map(|s| s.t).fold(0.0, f64::max);
    let nll = |lp: &[f64]| {
        let p = ParetoNbdParams {
            r: lp[0].exp(),
            alpha: lp[1].exp(),
            s: lp[2].exp(),
            beta: lp[3].exp(),
        };
        let mut total = 0.0;
        for (s, w) in &g.rows {
            match p.log_likelihood_one(s) {
                Ok(ll) => total += w * ll,
                Err(_) => return f64::INFINITY,
            }
        }
        -total / n
    };
    let m = minimise(&nll, &[0.0, 0.0, 0.0, 0.0])?;
    let lp = &m.log_params;
    let params = ParetoNbdParams {
        r: lp[0].exp(),
        alpha: lp[1].exp(),
        s: lp[2].exp(),
        beta: lp[3].exp(),
    };
    let mut why = Vec::new();
    let p_drop = -(params.s * (params.beta / (params.beta + t_max)).ln()).exp_m1();
    if p_drop < NEGLIGIBLE_DROPOUT {
        why.push(format!(
            "P(drop out within {t_max:.1} time units) = {p_drop:.2e} (no visible dropout: the model is the NBD)"
        ));
    }
    let bound = at_bound(lp, &["r", "alpha", "s", "beta"]);
    if !bound.is_empty() {
        why.push(format!("at the search bound: {}", bound.join(", ")));
    }
    if !m.converged {
        why.push("the optimiser did not converge".into());
    }
    Ok(FitOutcome {
        params,
        log_likelihood: -m.cost * n,
        converged: m.converged,
        iterations: m.iterations,
        degenerate: (!why.is_empty()).then(|| format!("Pareto/NBD degenerate: {}", why.join("; "))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BTYD walkthrough's fit on CDNOW (ml-anchors §2a).
    const BTYD: ParetoNbdParams = ParetoNbdParams {
        r: 0.553_243_9,
        alpha: 10.578_326,
        s: 0.606_216_5,
        beta: 11.669_206,
    };

    #[test]
    fn closed_forms_match_the_btyd_walkthrough() -> Result<(), ClvError> {
        let s = Summary {
            x: 26.0,
            t_x: 30.857,
            t: 31.0,
        };
        let e = BTYD.conditional_expected_purchases(&s, 52.0)?;
        assert!((e - 25.456).abs() < 0.01, "{e}");
        let pa = BTYD.p_alive(&s)?;
        assert!((pa - 0.997_874).abs() < 1e-4, "{pa}");
        let new = BTYD.expected_purchases_new(52.0);
        assert!((new - 1.4734).abs() < 2e-3, "{new}");
        Ok(())
    }

    #[test]
    fn likelihood_without_unseen_time_is_the_survivor_term() -> Result<(), ClvError> {
        // t_x = T: the customer cannot have died unseen, so L = Γ(r+x)/Γ(r) α^r β^s /((α+T)^(r+x) (β+T)^s).
        let p = ParetoNbdParams {
            r: 1.0,
            alpha: 2.0,
            s: 1.0,
            beta: 3.0,
        };
        let ll = p.log_likelihood_one(&Summary {
            x: 1.0,
            t_x: 4.0,
            t: 4.0,
        })?;
        let want = (2.0_f64 * 3.0 / (36.0 * 7.0)).ln();
        assert!((ll - want).abs() < 1e-12, "{ll} vs {want}");
        assert_eq!(
            p.p_alive(&Summary {
                x: 1.0,
                t_x: 4.0,
                t: 4.0
            })?,
            1.0
        );
        Ok(())
    }

    #[test]
    fn integral_and_series_agree_where_both_apply() -> Result<(), ClvError> {
        for (p, sm) in [
            (
                ParetoNbdParams {
                    r: 0.55,
                    alpha: 10.6,
                    s: 0.6,
                    beta: 11.7,
                },
                Summary {
                    x: 3.0,
                    t_x: 12.0,
                    t: 38.0,
                },
            ),
            (
                ParetoNbdParams {
                    r: 1.9,
                    alpha: 3.1,
                    s: 40.0,
                    beta: 300.0,
                },
                Summary {
                    x: 30.0,
                    t_x: 20.0,
                    t: 40.0,
                },
            ),
            (
                ParetoNbdParams {
                    r: 0.7,
                    alpha: 40.0,
                    s: 0.3,
                    beta: 2.0,
                },
                Summary {
                    x: 0.0,
                    t_x: 0.0,
                    t: 25.0,
                },
            ),
        ] {
            let Some(series) = p.ln_a0(&sm)? else {
                panic!("A0 > 0 expected");
            };
            let Some(ln_i) = ln_timing_integral(&p, &sm)? else {
                panic!("integral > 0 expected");
            };
            let integral = (p.r + p.s + sm.x).ln() + ln_i;
            assert!(
                (series - integral).abs() < 1e-9,
                "{p:?}: {series} vs {integral}"
            );
        }
        // Far past the series' comfort zone (z ≈ 0.9997): finite, and P(alive) in (0, 1).
        let p = ParetoNbdParams {
            r: 1.95,
            alpha: 3.15,
            s: 2190.0,
            beta: 113_001.0,
        };
        let sm = Summary {
            x: 5.0,
            t_x: 10.0,
            t: 39.0,
        };
        assert!(p.log_likelihood_one(&sm)?.is_finite());
        let alive = p.p_alive(&sm)?;
        assert!(alive > 0.0 && alive < 1.0, "{alive}");
        Ok(())
    }

    #[test]
    fn likelihood_matches_numerical_integration() -> Result<(), ClvError> {
        // L = Γ(r+x)/Γ(r) α^r β^s [ (α+T)^-(r+x) (β+T)^-s + s ∫_{t_x}^T (α+τ)^-(r+x) (β+τ)^-(s+1) dτ ].
        for (p, sm) in [
            (
                ParetoNbdParams {
                    r: 0.55,
                    alpha: 10.6,
                    s: 0.6,
                    beta: 11.7,
                },
                Summary {
                    x: 3.0,
                    t_x: 12.0,
                    t: 38.0,
                },
            ),
            (
                ParetoNbdParams {
                    r: 0.7,
                    alpha: 9.4,
                    s: 0.3,
                    beta: 185.0,
                },
                Summary {
                    x: 20.0,
                    t_x: 5.0,
                    t: 40.0,
                },
            ),
            (
                ParetoNbdParams {
                    r: 2.0,
                    alpha: 40.0,
                    s: 1.3,
                    beta: 2.0,
                },
                Summary {
                    x: 1.0,
                    t_x: 0.5,
                    t: 20.0,
                },
            ),
        ] {
            let (r, al, s, be, x) = (p.r, p.alpha, p.s, p.beta, sm.x);
            let f = |tau: f64| (al + tau).powf(-(r + x)) * (be + tau).powf(-(s + 1.0));
            // Composite Simpson with many panels: plenty for these smooth integrands.
            let n = 200_000;
            let h = (sm.t - sm.t_x) / f64::from(n);
            let mut integral = f(sm.t_x) + f(sm.t);
            for i in 1..n {
                let w = if i % 2 == 1 { 4.0 } else { 2.0 };
                integral += w * f(sm.t_x + h * f64::from(i));
            }
            integral *= h / 3.0;
            let head = ln_gamma(r + x) - ln_gamma(r) + r * al.ln() + s * be.ln();
            let want =
                head + ((al + sm.t).powf(-(r + x)) * (be + sm.t).powf(-s) + s * integral).ln();
            let got = p.log_likelihood_one(&sm)?;
            assert!((got - want).abs() < 1e-8, "{p:?} {sm:?}: {got} vs {want}");
        }
        Ok(())
    }
}
