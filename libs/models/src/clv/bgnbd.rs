//! BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way").
//!
//! While alive a customer buys as a Poisson process with rate λ ~ Gamma(r, α); after each purchase
//! they drop out with probability p ~ Beta(a, b). Time unit: whatever the summaries use (weeks here).

use serde::{Deserialize, Serialize};
use statrs::function::beta::ln_beta;
use statrs::function::gamma::ln_gamma;

use super::optimise::{Grouped, at_bound, minimise};
use super::special::hyp2f1;
use super::{ClvError, FitOutcome, Summary, log_add_exp};

/// BG/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BgNbdParams {
    /// Gamma shape of the purchase rate.
    pub r: f64,
    /// Gamma scale (in time units) of the purchase rate.
    pub alpha: f64,
    /// Beta shape a of the dropout probability.
    pub a: f64,
    /// Beta shape b of the dropout probability.
    pub b: f64,
}

/// Below this mean dropout probability per purchase the model is "no dropout" (NBD).
pub const NEGLIGIBLE_DROPOUT: f64 = 1e-4;

impl BgNbdParams {
    /// Log-likelihood of one customer.
    #[must_use]
    pub fn log_likelihood_one(&self, s: &Summary) -> f64 {
        self.ln_gamma_terms(s.x) + self.timing_terms(s)
    }

    /// The part of the log-likelihood that depends on x only (the Gamma functions): the fit computes
    /// it once per distinct x instead of once per customer.
    fn ln_gamma_terms(&self, x: f64) -> f64 {
        let Self { r, alpha, a, b } = *self;
        ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + ln_gamma(a + b) + ln_gamma(b + x)
            - ln_gamma(b)
            - ln_gamma(a + b + x)
    }

    fn timing_terms(&self, s: &Summary) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let x = s.x;
        let a3 = -(r + x) * (alpha + s.t).ln();
        if x > 0.0 {
            let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + s.t_x).ln();
            log_add_exp(a3, a4)
        } else {
            a3
        }
    }

    /// Sum of the customers' log-likelihoods.
    #[must_use]
    pub fn log_likelihood(&self, data: &[Summary]) -> f64 {
        data.iter().map(|s| self.log_likelihood_one(s)).sum()
    }

    /// P(alive at T | x, t_x, T).
    #[must_use]
    pub fn p_alive(&self, s: &Summary) -> f64 {
        if s.x == 0.0 {
            return 1.0;
        }
        let Self { r, alpha, a, b } = *self;
        let ln_odds =
            a.ln() - (b + s.x - 1.0).ln() + (r + s.x) * ((alpha + s.t) / (alpha + s.t_x)).ln();
        1.0 / (1.0 + ln_odds.exp())
    }

    /// E[X(t)]: expected purchases of a new customer in `(0, t]`.
    ///
    /// # Errors
    /// [`ClvError::Numerical`] when `a` is 1 (the closed form divides by `a - 1`) or 2F1 fails.
    pub fn expected_purchases_new(&self, t: f64) -> Result<f64, ClvError> {
        let Self { r, alpha, a, b } = *self;
        check_a(a)?;
        let z = t / (alpha + t);
        let f = hyp2f1(r, b, a + b - 1.0, z)?;
        Ok((a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)).powf(r) * f))
    }

    /// E[Y(t) | x, t_x, T]: expected purchases in the next `t` time units of a customer with `s`.
    ///
    /// # Errors
    /// As [`Self::expected_purchases_new`].
    pub fn conditional_expected_purchases(&self, s: &Summary, t: f64) -> Result<f64, ClvError> {
        let Self { r, alpha, a, b } = *self;
        check_a(a)?;
        let x = s.x;
        let z = t / (alpha + s.t + t);
        let f = hyp2f1(r + x, b + x, a + b + x - 1.0, z)?;
        let head = (a + b + x - 1.0) / (a - 1.0)
            * (1.0 - ((alpha + s.t) / (alpha + s.t + t)).powf(r + x) * f);
        Ok(head * self.p_alive(s))
    }

    /// P(X(t) = n) for a new customer (FHL 2005, eq. 8).
    #[must_use]
    pub fn pmf(&self, t: f64, n: u32) -> f64 {
        let Self { r, alpha, a, b } = *self;
        let x = f64::from(n);
        let lb = ln_beta(a, b);
        let p = alpha / (alpha + t);
        let q = t / (alpha + t);
        let first = (ln_beta(a, b + x) - lb + ln_gamma(r + x) - ln_gamma(r) - ln_gamma(x + 1.0)
            + r * p.ln()
            + x * q.ln())
        .exp();
        if n == 0 {
            return first;
        }
        let mut partial = 0.0;
        for j in 0..n {
            let j = f64::from(j);
            partial +=
                (ln_gamma(r + j) - ln_gamma(r) - ln_gamma(j + 1.0) + r * p.ln() + j * q.ln()).exp();
        }
        first + (ln_beta(a + 1.0, b + x - 1.0) - lb).exp() * (1.0 - partial)
    }
}

fn check_a(a: f64) -> Result<(), ClvError> {
    if (a - 1.0).abs() < 1e-9 {
        return Err(ClvError::Numerical(
            "BG/NBD expectation is undefined at a = 1 (division by a - 1)".into(),
        ));
    }
    Ok(())
}

/// Fits BG/NBD by maximum likelihood.
///
/// Degeneracy (reported, not hidden): when the mean dropout probability `a / (a + b)` is below
/// [`NEGLIGIBLE_DROPOUT`] or a parameter sits on the search bound, the data show no dropout and the
/// model has collapsed to the NBD; its predictions should not be used as a BG/NBD.
///
/// # Errors
/// [`ClvError`] for invalid summaries, no data, or an optimiser failure.
pub fn fit(data: &[Summary]) -> Result<FitOutcome<BgNbdParams>, ClvError> {
    let g = Grouped::new(data)?;
    let n = g.customers;
    let mut xs: Vec<f64> = g.rows.iter().map(|(s, _)| s.x).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let row_x: Vec<usize> = g
        .rows
        .iter()
        .map(|(s, _)| xs.partition_point(|v| *v < s.x))
        .collect();
    let nll = |lp: &[f64]| {
        let p = BgNbdParams {
            r: lp[0].exp(),
            alpha: lp[1].exp(),
            a: lp[2].exp(),
            b: lp[3].exp(),
        };
        let per_x: Vec<f64> = xs.iter().map(|&x| p.ln_gamma_terms(x)).collect();
        -g.rows
            .iter()
            .zip(&row_x)
            .map(|((s, w), &k)| w * (per_x[k] + p.timing_terms(s)))
            .sum::<f64>()
            / n
    };
    let m = minimise(&nll, &[0.0, 0.0, 0.0, 0.0])?;
    let lp = &m.log_params;
    let params = BgNbdParams {
        r: lp[0].exp(),
        alpha: lp[1].exp(),
        a: lp[2].exp(),
        b: lp[3].exp(),
    };
    let mut why = Vec::new();
    let dropout = params.a / (params.a + params.b);
    if dropout < NEGLIGIBLE_DROPOUT {
        why.push(format!(
            "mean dropout probability per purchase a/(a+b) = {dropout:.2e} (no visible dropout: the model is the NBD)"
        ));
    }
    let bound = at_bound(lp, &["r", "alpha", "a", "b"]);
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
        degenerate: (!why.is_empty()).then(|| format!("BG/NBD degenerate: {}", why.join("; "))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FHL 2005 / Hardie's spreadsheet parameters as refitted by `lifetimes` (ml-anchors §2a).
    const FITTED: BgNbdParams = BgNbdParams {
        r: 0.242_593,
        alpha: 4.413_532,
        a: 0.792_886,
        b: 2.425_753,
    };

    #[test]
    fn expected_purchases_match_hardies_sheet() -> Result<(), ClvError> {
        for (t, want) in [
            (0.1429, 0.0078),
            (1.0, 0.0532),
            (3.0, 0.1506),
            (31.8571, 1.0405),
            (32.0, 1.0437),
            (78.0, 1.8576),
        ] {
            let got = FITTED.expected_purchases_new(t)?;
            assert!((got - want).abs() < 5e-4, "E[X({t})] = {got}, want {want}");
        }
        let got = FITTED.expected_purchases_new(52.0)?;
        assert!((got - 1.444_02).abs() < 1e-4, "E[X(52)] = {got}");
        Ok(())
    }

    #[test]
    fn conditional_expectation_and_p_alive_match_the_references() -> Result<(), ClvError> {
        let s = Summary {
            x: 2.0,
            t_x: 30.43,
            t: 38.86,
        };
        let got = FITTED.conditional_expected_purchases(&s, 39.0)?;
        assert!((got - 1.226).abs() < 1e-3, "{got}");
        let s = Summary {
            x: 26.0,
            t_x: 30.857,
            t: 31.0,
        };
        let got = FITTED.conditional_expected_purchases(&s, 52.0)?;
        assert!((got - 25.7578).abs() < 2e-3, "{got}");
        let got = FITTED.p_alive(&s);
        assert!((got - 0.96886).abs() < 1e-4, "{got}");
        // No repeat purchase: alive by construction of the BG/NBD story.
        assert_eq!(
            FITTED.p_alive(&Summary {
                x: 0.0,
                t_x: 0.0,
                t: 10.0
            }),
            1.0
        );
        Ok(())
    }

    #[test]
    fn pmf_matches_btyd_and_sums_to_one() {
        let paper = BgNbdParams {
            r: 0.243,
            alpha: 4.414,
            a: 0.793,
            b: 2.426,
        };
        let p0 = paper.pmf(39.0, 0);
        assert!((p0 - 0.573_786_4).abs() < 1e-5, "{p0}");
        let p10 = paper.pmf(2.0, 10);
        assert!((p10 / 1.078_69e-7 - 1.0).abs() < 1e-4, "{p10}");
        let total: f64 = (0..400).map(|n| paper.pmf(39.0, n)).sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
    }

    #[test]
    fn likelihood_of_a_one_time_buyer_by_hand() {
        let p = BgNbdParams {
            r: 1.0,
            alpha: 2.0,
            a: 1.5,
            b: 3.0,
        };
        // x = 0: Γ(r)/Γ(r) α^r / (α+T)^r = 2 / (2 + 4).
        let ll = p.log_likelihood_one(&Summary {
            x: 0.0,
            t_x: 0.0,
            t: 4.0,
        });
        assert!((ll - (2.0_f64 / 6.0).ln()).abs() < 1e-12, "{ll}");
        assert!(p.expected_purchases_new(1.0).is_ok());
        let one = BgNbdParams { a: 1.0, ..p };
        assert!(one.expected_purchases_new(1.0).is_err());
    }

    #[test]
    fn recovers_parameters_from_exact_cohort_and_flags_no_dropout() -> Result<(), ClvError> {
        // A cohort where everyone keeps buying at ~1 a week (x ≈ T, t_x ≈ T): no dropout in sight.
        let data: Vec<Summary> = (0..200)
            .map(|i| {
                let t = 20.0 + f64::from(i % 10);
                let x = (t * (0.5 + f64::from(i % 7) / 6.0)).round();
                Summary { x, t_x: t - 0.5, t }
            })
            .collect();
        let fit = fit(&data)?;
        assert!(fit.degenerate.is_some(), "{fit:?}");
        Ok(())
    }
}
