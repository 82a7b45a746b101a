//! Gamma-Gamma spend model (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value", note 025).
//!
//! A customer's transaction values are Gamma(p, ν) with ν ~ Gamma(q, γ) across customers, independent
//! of the purchase process. It is fitted on customers with at least one repeat purchase and a positive
//! mean repeat spend `m_x` (a zero or negative mean, e.g. free goods or refunds, has no Gamma density).

use serde::{Deserialize, Serialize};
use statrs::function::gamma::ln_gamma;

use super::optimise::{at_bound, minimise};
use super::{ClvError, FitOutcome};

/// Gamma-Gamma parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GammaGammaParams {
    /// Gamma shape of a transaction's value.
    pub p: f64,
    /// Gamma shape of the customers' rate ν.
    pub q: f64,
    /// Gamma scale of the customers' rate ν.
    pub gamma: f64,
}

/// One customer's spend: repeat purchases `x` and their mean value `m_x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spend {
    /// Repeat purchases (> 0 to enter the fit).
    pub x: f64,
    /// Mean value of those purchases.
    pub mean: f64,
}

impl GammaGammaParams {
    /// Log-likelihood of one customer's mean spend (x > 0, m_x > 0).
    #[must_use]
    pub fn log_likelihood_one(&self, c: &Spend) -> f64 {
        let Self { p, q, gamma } = *self;
        let (x, m) = (c.x, c.mean);
        ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q)
            + q * gamma.ln()
            + (p * x - 1.0) * m.ln()
            + p * x * x.ln()
            - (p * x + q) * (gamma + x * m).ln()
    }

    /// Sum of the log-likelihoods of the customers that enter the fit.
    #[must_use]
    pub fn log_likelihood(&self, data: &[Spend]) -> f64 {
        data.iter()
            .filter(|c| usable(c))
            .map(|c| self.log_likelihood_one(c))
            .sum()
    }

    /// E[M] of a customer never seen buying: `p γ / (q - 1)`.
    ///
    /// # Errors
    /// [`ClvError::Numerical`] when `q <= 1` (the mean spend is infinite).
    pub fn population_mean_spend(&self) -> Result<f64, ClvError> {
        if self.q <= 1.0 {
            return Err(ClvError::Numerical(format!(
                "Gamma-Gamma q = {} <= 1: the population mean spend is infinite",
                self.q
            )));
        }
        Ok(self.p * self.gamma / (self.q - 1.0))
    }

    /// E[M | x, m_x] = `p (γ + x m_x) / (p x + q - 1)`: a weighted mean of the population mean and
    /// the customer's own mean. Customers with x = 0 (or no positive mean) get the population mean.
    ///
    /// # Errors
    /// As [`Self::population_mean_spend`].
    pub fn conditional_expected_spend(&self, c: &Spend) -> Result<f64, ClvError> {
        if !usable(c) {
            return self.population_mean_spend();
        }
        let Self { p, q, gamma } = *self;
        let denominator = p * c.x + q - 1.0;
        if denominator <= 0.0 {
            return Err(ClvError::Numerical(format!(
                "Gamma-Gamma conditional spend undefined: p x + q - 1 = {denominator} <= 0"
            )));
        }
        Ok(p * (gamma + c.x * c.mean) / denominator)
    }
}

fn usable(c: &Spend) -> bool {
    c.x > 0.0 && c.mean > 0.0 && c.x.is_finite() && c.mean.is_finite()
}

/// Fits the Gamma-Gamma model on the customers with `x > 0` and `m_x > 0` (the others are skipped).
///
/// # Errors
/// [`ClvError::NoData`] when no customer qualifies; [`ClvError::Optimiser`] when the search fails.
pub fn fit(data: &[Spend]) -> Result<FitOutcome<GammaGammaParams>, ClvError> {
    let used: Vec<Spend> = data.iter().copied().filter(usable).collect();
    if used.is_empty() {
        return Err(ClvError::NoData(
            "no customer with a repeat purchase of positive value: Gamma-Gamma cannot be fitted"
                .into(),
        ));
    }
    let n = used.len() as f64;
    let nll = |lp: &[f64]| {
        let p = GammaGammaParams {
            p: lp[0].exp(),
            q: lp[1].exp(),
            gamma: lp[2].exp(),
        };
        -used.iter().map(|c| p.log_likelihood_one(c)).sum::<f64>() / n
    };
    let m = minimise(&nll, &[0.0, 0.0, 0.0])?;
    let lp = &m.log_params;
    let params = GammaGammaParams {
        p: lp[0].exp(),
        q: lp[1].exp(),
        gamma: lp[2].exp(),
    };
    let mut why = Vec::new();
    let bound = at_bound(lp, &["p", "q", "gamma"]);
    if !bound.is_empty() {
        why.push(format!("at the search bound: {}", bound.join(", ")));
    }
    if params.q <= 1.0 {
        why.push(format!(
            "q = {:.4} <= 1: infinite population mean spend",
            params.q
        ));
    }
    if !m.converged {
        why.push("the optimiser did not converge".into());
    }
    Ok(FitOutcome {
        params,
        log_likelihood: -m.cost * n,
        converged: m.converged,
        iterations: m.iterations,
        degenerate: (!why.is_empty())
            .then(|| format!("Gamma-Gamma degenerate: {}", why.join("; "))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_spend_matches_hardies_sheet() -> Result<(), ClvError> {
        // The recomputed MLE (ml-anchors §2a); the sheet's rounded 6.25/3.74/15.44 agree within 0.05.
        let p = GammaGammaParams {
            p: 6.2488,
            q: 3.7446,
            gamma: 15.4477,
        };
        // Customers 1, 2 of cdnow_customers_summary_with_transactions.csv, and a one-time buyer.
        for (x, m, want) in [
            (2.0, 22.35, 24.6586),
            (1.0, 11.77, 18.9115),
            (0.0, 0.0, 35.1710),
        ] {
            let got = p.conditional_expected_spend(&Spend { x, mean: m })?;
            assert!((got - want).abs() < 0.01, "x={x} m={m}: {got} vs {want}");
        }
        assert!(
            GammaGammaParams { q: 0.9, ..p }
                .population_mean_spend()
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn skips_customers_without_a_positive_repeat_mean() {
        let empty = [Spend { x: 0.0, mean: 0.0 }, Spend { x: 2.0, mean: 0.0 }];
        assert!(matches!(fit(&empty), Err(ClvError::NoData(_))));
        let p = GammaGammaParams {
            p: 2.0,
            q: 3.0,
            gamma: 10.0,
        };
        let one = Spend { x: 3.0, mean: 12.0 };
        assert_eq!(
            p.log_likelihood(&[one, empty[0], empty[1]]),
            p.log_likelihood_one(&one)
        );
    }

    #[test]
    fn likelihood_is_the_gamma_mixture_density_of_the_mean() {
        // x = 1: m ~ Gamma(p, ν), ν ~ Gamma(q, γ) → compound density
        // f(m) = Γ(p+q)/(Γ(p)Γ(q)) γ^q m^(p-1) / (γ+m)^(p+q).
        let (p, q, g, m) = (2.0_f64, 3.0_f64, 10.0_f64, 4.0_f64);
        let want = ln_gamma(p + q) - ln_gamma(p) - ln_gamma(q) + q * g.ln() + (p - 1.0) * m.ln()
            - (p + q) * (g + m).ln();
        let got =
            GammaGammaParams { p, q, gamma: g }.log_likelihood_one(&Spend { x: 1.0, mean: m });
        assert!((got - want).abs() < 1e-12);
    }
}
