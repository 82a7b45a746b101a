//! Maximum likelihood by Nelder–Mead on log-parameters (the method of the BTYD references).
//!
//! All the model parameters are positive, so the search runs over their logarithms, inside a box
//! `|log θ| <= LOG_BOUND`: a model that wants a parameter at 0 or ∞ (BG/NBD's `a -> 0, b -> ∞` on data
//! without visible dropout) ends on the box edge, where [`at_bound`] reports it instead of drifting.
//! One Nelder–Mead run can stop early on a flat ridge, or crawl along a curved one, so the search is
//! a series of short runs, each restarted from the best point with a fresh simplex, until a run no
//! longer improves the objective.

use std::collections::HashMap;

use argmin::core::{CostFunction, Error, Executor, State};
use argmin::solver::neldermead::NelderMead;

use super::{ClvError, Summary};

/// Largest |log θ| searched (θ between 1.4e-11 and 7.2e10).
pub const LOG_BOUND: f64 = 25.0;

/// The cost given to points where the likelihood is not finite (argmin needs a number).
const PENALTY: f64 = 1e30;

/// Iterations per Nelder–Mead run. Runs are kept short and restarted from their best point: on the
/// long curved ridge of a degenerating model (BG/NBD's `a -> 0, b -> ∞`) one long run crawls for
/// tens of thousands of iterations, while restarts with a fresh simplex move along it quickly.
const MAX_ITERS: u64 = 600;

/// Runs at most.
const MAX_RUNS: usize = 30;

/// A run that improves the mean negative log-likelihood by less than this ends the search.
const FLAT: f64 = 1e-10;

/// Customers grouped by identical `(x, t_x, T)` with a count: the likelihood is a weighted sum, and
/// real cohorts share many rows (every one-time buyer of a given week has the same statistics).
#[derive(Debug, Clone)]
pub struct Grouped {
    /// Distinct rows and how many customers have each.
    pub rows: Vec<(Summary, f64)>,
    /// Number of customers.
    pub customers: f64,
}

impl Grouped {
    /// Validates and groups the summaries.
    ///
    /// # Errors
    /// [`ClvError::InvalidSummary`] for the first invalid row; [`ClvError::NoData`] when empty.
    pub fn new(data: &[Summary]) -> Result<Self, ClvError> {
        if data.is_empty() {
            return Err(ClvError::NoData("no customers to fit".into()));
        }
        let mut index: HashMap<(u64, u64, u64), usize> = HashMap::new();
        let mut rows: Vec<(Summary, f64)> = Vec::new();
        for (i, s) in data.iter().enumerate() {
            s.validate(i)?;
            let key = (s.x.to_bits(), s.t_x.to_bits(), s.t.to_bits());
            match index.get(&key) {
                Some(&k) => rows[k].1 += 1.0,
                None => {
                    index.insert(key, rows.len());
                    rows.push((*s, 1.0));
                }
            }
        }
        Ok(Self {
            rows,
            customers: data.len() as f64,
        })
    }
}

/// What the search found.
#[derive(Debug, Clone)]
pub struct Minimum {
    /// Best log-parameters.
    pub log_params: Vec<f64>,
    /// The objective there.
    pub cost: f64,
    /// A restart from the best point no longer improved the objective by [`FLAT`].
    pub converged: bool,
    /// Objective evaluations' iterations over all runs.
    pub iterations: u64,
}

struct Objective<'a> {
    f: &'a dyn Fn(&[f64]) -> f64,
}

impl CostFunction for Objective<'_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, p: &Self::Param) -> Result<f64, Error> {
        if p.iter().any(|v| !v.is_finite() || v.abs() > LOG_BOUND) {
            return Ok(PENALTY);
        }
        let v = (self.f)(p);
        Ok(if v.is_finite() { v } else { PENALTY })
    }
}

/// Minimises `f` (a negative mean log-likelihood over log-parameters) from `start`.
///
/// # Errors
/// [`ClvError::Optimiser`] when argmin fails or no finite point is ever found.
pub fn minimise(f: &dyn Fn(&[f64]) -> f64, start: &[f64]) -> Result<Minimum, ClvError> {
    let mut best = start.to_vec();
    let mut best_cost = f(start);
    if !best_cost.is_finite() {
        best_cost = PENALTY;
    }
    let mut iterations = 0;
    let mut converged = false;
    let mut step = 0.5;
    for run in 0..MAX_RUNS {
        let (param, cost, iters) = run_once(f, &best, step)?;
        iterations += iters;
        let improvement = best_cost - cost;
        if cost < best_cost {
            best = param;
            best_cost = cost;
        }
        // The first run may stop on its tolerance on a plateau far from the optimum; a restart
        // that no longer moves the objective is the stopping rule.
        if run > 0 && improvement.abs() < FLAT {
            converged = true;
            break;
        }
        step = 0.1;
    }
    if best_cost >= PENALTY {
        return Err(ClvError::Optimiser(
            "the likelihood is not finite anywhere the search went".into(),
        ));
    }
    Ok(Minimum {
        log_params: best,
        cost: best_cost,
        converged,
        iterations,
    })
}

fn run_once(
    f: &dyn Fn(&[f64]) -> f64,
    start: &[f64],
    step: f64,
) -> Result<(Vec<f64>, f64, u64), ClvError> {
    let mut simplex = vec![start.to_vec()];
    for i in 0..start.len() {
        let mut p = start.to_vec();
        p[i] += step;
        simplex.push(p);
    }
    let solver = NelderMead::new(simplex)
        .with_sd_tolerance(1e-13)
        .map_err(|e| ClvError::Optimiser(e.to_string()))?;
    let result = Executor::new(Objective { f }, solver)
        .configure(|state| state.max_iters(MAX_ITERS))
        .run()
        .map_err(|e| ClvError::Optimiser(e.to_string()))?;
    let state = result.state();
    let Some(param) = state.get_best_param().cloned() else {
        return Err(ClvError::Optimiser("Nelder-Mead returned no point".into()));
    };
    Ok((param, state.get_best_cost(), state.get_iter()))
}

/// Names of the parameters whose log sits within 1 of the search box edge.
#[must_use]
pub fn at_bound(log_params: &[f64], names: &[&str]) -> Vec<String> {
    log_params
        .iter()
        .zip(names)
        .filter(|(v, _)| v.abs() > LOG_BOUND - 1.0)
        .map(|(v, n)| format!("{n} = {:.3e}", v.exp()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_a_shifted_bowl() -> Result<(), ClvError> {
        let f = |p: &[f64]| (p[0] - 1.5).powi(2) + 3.0 * (p[1] + 0.5).powi(2) + 2.0;
        let m = minimise(&f, &[0.0, 0.0])?;
        assert!(m.converged);
        assert!((m.log_params[0] - 1.5).abs() < 1e-5, "{:?}", m.log_params);
        assert!((m.log_params[1] + 0.5).abs() < 1e-5, "{:?}", m.log_params);
        assert!((m.cost - 2.0).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn a_minimum_at_infinity_ends_on_the_box_edge() -> Result<(), ClvError> {
        // exp(-p) keeps falling as p grows: the search stops at the bound and says so.
        let f = |p: &[f64]| (-p[0]).exp() + p[1] * p[1];
        let m = minimise(&f, &[0.0, 1.0])?;
        assert_eq!(at_bound(&m.log_params, &["a", "b"]).len(), 1);
        Ok(())
    }

    #[test]
    fn nowhere_finite_is_an_error() {
        let f = |_: &[f64]| f64::NAN;
        assert!(matches!(minimise(&f, &[0.0]), Err(ClvError::Optimiser(_))));
    }

    #[test]
    fn grouping_counts_identical_rows_and_rejects_bad_ones() -> Result<(), ClvError> {
        let s = Summary {
            x: 1.0,
            t_x: 2.0,
            t: 3.0,
        };
        let g = Grouped::new(&[
            s,
            s,
            Summary {
                x: 0.0,
                t_x: 0.0,
                t: 3.0,
            },
        ])?;
        assert_eq!(g.rows.len(), 2);
        assert_eq!(g.rows[0].1, 2.0);
        assert_eq!(g.customers, 3.0);
        assert!(Grouped::new(&[]).is_err());
        assert!(
            Grouped::new(&[Summary {
                x: -1.0,
                t_x: 0.0,
                t: 1.0
            }])
            .is_err()
        );
        Ok(())
    }
}
