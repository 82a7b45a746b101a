//! Customer lifetime value for non-contractual businesses: the "buy till you die" models.
//!
//! Why these and not a learned model: with only purchase dates and amounts, BG/NBD, Pareto/NBD and
//! Gamma-Gamma are the published baselines every CLV model is judged against (ml-anchors §2a), they
//! need no features, and their closed forms (P(alive), expected purchases, expected spend) are what a
//! CRM shows. They are plain Rust here (no Burn) so the gateway can serve them.
//!
//! - [`summary`]: per-customer `(x, t_x, T)` in **weeks** from a transaction log (same-day merge,
//!   calibration/holdout cut).
//! - [`bgnbd`], [`pareto_nbd`], [`nbd`]: purchase models; [`gamma_gamma`]: spend; [`value`]:
//!   discounted CLV with an explicit month → model-time conversion.
//! - [`fit_purchase_models`]: fits all three purchase models and picks the one to use. BG/NBD and
//!   Pareto/NBD can **degenerate** to the NBD when the data show no dropout (Online Retail does:
//!   `a -> 0, b -> ∞`); that is detected, reported in [`FitOutcome::degenerate`], and the next model
//!   is used instead, never silently.
//! - [`special`]: the hypergeometric function 2F1 (statrs has none); [`plot`]: the holdout chart.
//! - [`serving`]: the artefact the trainer publishes and the gateway serves (features → summary,
//!   value, P(alive), value tiers).
//!
//! Fitting is maximum likelihood by Nelder–Mead on log-parameters (see [`optimise`]).

pub mod bgnbd;
pub mod gamma_gamma;
pub mod nbd;
pub mod optimise;
pub mod pareto_nbd;
pub mod plot;
pub mod serving;
pub mod special;
pub mod summary;
pub mod value;

use serde::Serialize;

pub use bgnbd::BgNbdParams;
pub use gamma_gamma::{GammaGammaParams, Spend};
pub use nbd::NbdParams;
pub use pareto_nbd::ParetoNbdParams;
pub use summary::{CalibrationHoldout, CustomerRecord, Summary, SummaryBuilder};
pub use value::Horizon;

/// Why a CLV computation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClvError {
    /// A customer summary breaks the model's assumptions.
    #[error("customer {index}: {message}")]
    InvalidSummary {
        /// Position of the customer in the input.
        index: usize,
        /// The broken rule.
        message: String,
    },
    /// Nothing to fit or predict.
    #[error("no data: {0}")]
    NoData(String),
    /// A special function or closed form is undefined or did not converge at these values.
    #[error("numerical failure: {0}")]
    Numerical(String),
    /// The optimiser failed.
    #[error("optimiser failure: {0}")]
    Optimiser(String),
}

/// A maximum-likelihood fit and what a reader must know about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitOutcome<P> {
    /// The parameters at the best point found.
    pub params: P,
    /// The total log-likelihood there.
    pub log_likelihood: f64,
    /// The search stopped on its tolerance and restarts no longer improved it.
    pub converged: bool,
    /// Nelder–Mead iterations over all restarts.
    pub iterations: u64,
    /// Why the fit should not be used as this model (boundary, negligible dropout, no convergence).
    pub degenerate: Option<String>,
}

impl<P> FitOutcome<P> {
    /// Converged and not degenerate.
    #[must_use]
    pub fn usable(&self) -> bool {
        self.converged && self.degenerate.is_none()
    }
}

/// The purchase model chosen for predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PurchaseModel {
    /// BG/NBD.
    BgNbd(BgNbdParams),
    /// Pareto/NBD.
    ParetoNbd(ParetoNbdParams),
    /// NBD (no dropout).
    Nbd(NbdParams),
}

impl PurchaseModel {
    /// `bgnbd`, `pareto_nbd` or `nbd`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::BgNbd(_) => "bgnbd",
            Self::ParetoNbd(_) => "pareto_nbd",
            Self::Nbd(_) => "nbd",
        }
    }

    /// E[Y(t) | x, t_x, T].
    ///
    /// # Errors
    /// [`ClvError::Numerical`] when the closed form fails at these values.
    pub fn conditional_expected_purchases(&self, s: &Summary, t: f64) -> Result<f64, ClvError> {
        match self {
            Self::BgNbd(p) => p.conditional_expected_purchases(s, t),
            Self::ParetoNbd(p) => p.conditional_expected_purchases(s, t),
            Self::Nbd(p) => Ok(p.conditional_expected_purchases(s, t)),
        }
    }

    /// P(alive at T | x, t_x, T) (1 for the NBD, which has no dropout).
    ///
    /// # Errors
    /// As [`Self::conditional_expected_purchases`].
    pub fn p_alive(&self, s: &Summary) -> Result<f64, ClvError> {
        match self {
            Self::BgNbd(p) => Ok(p.p_alive(s)),
            Self::ParetoNbd(p) => p.p_alive(s),
            Self::Nbd(_) => Ok(1.0),
        }
    }
}

/// The three purchase-model fits and the one chosen.
#[derive(Debug, Clone)]
pub struct PurchaseFits {
    /// BG/NBD.
    pub bgnbd: FitOutcome<BgNbdParams>,
    /// Pareto/NBD, or why it could not be fitted at all.
    pub pareto_nbd: Result<FitOutcome<ParetoNbdParams>, ClvError>,
    /// NBD.
    pub nbd: FitOutcome<NbdParams>,
    /// The model for predictions: BG/NBD if usable, else Pareto/NBD if usable, else the NBD.
    pub chosen: PurchaseModel,
    /// What was degenerate and what was used instead, for people.
    pub notes: Vec<String>,
}

/// Fits BG/NBD, Pareto/NBD and the NBD, and chooses the first usable one in that order.
///
/// # Errors
/// [`ClvError`] when the data are invalid, or when not even the NBD converges.
pub fn fit_purchase_models(data: &[Summary]) -> Result<PurchaseFits, ClvError> {
    let bg = bgnbd::fit(data)?;
    let pareto = pareto_nbd::fit(data);
    let nbd_fit = nbd::fit(data)?;
    let mut notes = Vec::new();
    let chosen = if bg.usable() {
        PurchaseModel::BgNbd(bg.params)
    } else {
        notes.push(bg.degenerate.clone().unwrap_or_default());
        match &pareto {
            Ok(p) if p.usable() => {
                notes.push("fell back to Pareto/NBD".into());
                PurchaseModel::ParetoNbd(p.params)
            }
            other => {
                match other {
                    Ok(p) => notes.push(p.degenerate.clone().unwrap_or_default()),
                    Err(e) => notes.push(format!("Pareto/NBD could not be fitted: {e}")),
                }
                if !nbd_fit.usable() {
                    return Err(ClvError::Optimiser(format!(
                        "no purchase model is usable: {}",
                        nbd_fit.degenerate.clone().unwrap_or_default()
                    )));
                }
                notes.push("fell back to the NBD (no dropout)".into());
                PurchaseModel::Nbd(nbd_fit.params)
            }
        }
    };
    Ok(PurchaseFits {
        bgnbd: bg,
        pareto_nbd: pareto,
        nbd: nbd_fit,
        chosen,
        notes,
    })
}

/// Like [`fit_purchase_models`], but fits Pareto/NBD only when BG/NBD is not usable (the job
/// that serves a model need not pay for a fit it will not use; Pareto/NBD's likelihood is the
/// costly one). `pareto_nbd` then says it was not fitted.
///
/// # Errors
/// As [`fit_purchase_models`].
pub fn fit_purchase_models_lazily(data: &[Summary]) -> Result<PurchaseFits, ClvError> {
    let bg = bgnbd::fit(data)?;
    if !bg.usable() {
        return fit_purchase_models(data);
    }
    let nbd_fit = nbd::fit(data)?;
    Ok(PurchaseFits {
        chosen: PurchaseModel::BgNbd(bg.params),
        bgnbd: bg,
        pareto_nbd: Err(ClvError::NoData("not fitted: BG/NBD was usable".into())),
        nbd: nbd_fit,
        notes: Vec::new(),
    })
}

/// `ln(e^a + e^b)` without overflow.
pub(crate) fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// Mean of `values` per calibration-frequency bin `0, 1, …, cap-1, cap+` (the BTYD holdout table).
///
/// Returns, per bin, the bin's label, its number of customers and the mean of each series.
#[must_use]
pub fn frequency_bins(frequency: &[f64], series: &[&[f64]], cap: usize) -> Vec<FrequencyBin> {
    let mut bins: Vec<FrequencyBin> = (0..=cap)
        .map(|k| FrequencyBin {
            label: if k == cap {
                format!("{k}+")
            } else {
                k.to_string()
            },
            customers: 0,
            means: vec![0.0; series.len()],
        })
        .collect();
    for (i, &f) in frequency.iter().enumerate() {
        let k = (f.max(0.0) as usize).min(cap);
        bins[k].customers += 1;
        for (j, s) in series.iter().enumerate() {
            bins[k].means[j] += s.get(i).copied().unwrap_or(0.0);
        }
    }
    for b in &mut bins {
        if b.customers > 0 {
            let n = b.customers as f64;
            b.means.iter_mut().for_each(|m| *m /= n);
        }
    }
    bins
}

/// One row of the holdout table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrequencyBin {
    /// `0`, `1`, …, `7+`.
    pub label: String,
    /// Customers in the bin.
    pub customers: usize,
    /// Mean of each series, in the order given.
    pub means: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cap_and_average() {
        let f = [0.0, 0.0, 1.0, 9.0, 12.0];
        let a = [1.0, 3.0, 2.0, 10.0, 20.0];
        let bins = frequency_bins(&f, &[&a], 2);
        assert_eq!(bins.len(), 3);
        assert_eq!((bins[0].customers, bins[0].means[0]), (2, 2.0));
        assert_eq!((bins[1].customers, bins[1].means[0]), (1, 2.0));
        assert_eq!(bins[2].label, "2+");
        assert_eq!((bins[2].customers, bins[2].means[0]), (2, 15.0));
    }

    #[test]
    fn log_add_exp_is_stable() {
        assert!((log_add_exp(1000.0, 1000.0) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(log_add_exp(f64::NEG_INFINITY, 0.0), 0.0);
    }
}
