//! Population stability index (PSI): how far today's feature values have moved from the values a
//! model was trained on.
//!
//! Why PSI: it is the measure credit-risk and marketing teams already read, with conventional
//! thresholds (below 0.1 stable, 0.1–0.25 moderate shift, above 0.25 significant), and it needs only
//! the training set's bin edges and fractions — a few numbers per feature that travel with the model
//! — not the training set itself.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Smallest fraction used in the logarithm, so an empty bin does not make the index infinite.
const FLOOR: f64 = 1e-4;

/// A feature's reference distribution: interior bin edges (ascending) and the share of the
/// reference population in each of the `edges.len() + 1` bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Reference {
    pub feature: String,
    pub edges: Vec<f64>,
    pub fractions: Vec<f64>,
}

/// How much a feature moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftLevel {
    /// PSI below 0.1.
    Stable,
    /// PSI from 0.1 to 0.25.
    Moderate,
    /// PSI above 0.25.
    Significant,
}

impl DriftLevel {
    /// The conventional reading of a PSI value.
    #[must_use]
    pub fn of(psi: f64) -> Self {
        if psi < 0.1 {
            Self::Stable
        } else if psi <= 0.25 {
            Self::Moderate
        } else {
            Self::Significant
        }
    }
}

/// Builds a reference from training values: up to `bins` quantile bins (ties merged, so a feature
/// with few distinct values gets fewer bins). `None` for no values or non-finite ones.
#[must_use]
pub fn reference(feature: &str, values: &[f64], bins: usize) -> Option<Reference> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) || bins == 0 {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..bins)
        .map(|i| sorted[(i * sorted.len() / bins).min(sorted.len() - 1)])
        .collect();
    edges.dedup();
    // An edge equal to the minimum would leave the first bin empty by construction.
    edges.retain(|e| *e > sorted[0]);
    let fractions = fractions(&edges, values);
    Some(Reference {
        feature: feature.to_owned(),
        edges,
        fractions,
    })
}

/// Bin of a value: the number of edges at or below it (bins are `(-inf, e0), [e0, e1), …`).
fn bin(edges: &[f64], v: f64) -> usize {
    edges.partition_point(|e| *e <= v)
}

/// Share of `values` in each bin of `edges`.
#[must_use]
pub fn fractions(edges: &[f64], values: &[f64]) -> Vec<f64> {
    let mut counts = vec![0.0; edges.len() + 1];
    for v in values {
        counts[bin(edges, *v)] += 1.0;
    }
    let n = values.len().max(1) as f64;
    counts.iter().map(|c| c / n).collect()
}

/// PSI of `actual` values against a reference; `None` when the reference is malformed (fractions
/// not one per bin) or there are no values to compare.
#[must_use]
pub fn psi(reference: &Reference, actual: &[f64]) -> Option<f64> {
    if reference.fractions.len() != reference.edges.len() + 1 || actual.is_empty() {
        return None;
    }
    let observed = fractions(&reference.edges, actual);
    Some(
        reference
            .fractions
            .iter()
            .zip(&observed)
            .map(|(e, a)| {
                let (e, a) = (e.max(FLOOR), a.max(FLOOR));
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_distribution_is_stable_and_a_shift_is_not() {
        let train: Vec<f64> = (0..1000).map(f64::from).collect();
        let r = reference("x", &train, 10).unwrap_or_else(|| panic!("reference"));
        assert_eq!(r.edges.len(), 9);
        assert!(r.fractions.iter().all(|f| (f - 0.1).abs() < 1e-9), "{r:?}");
        let same = psi(&r, &train).unwrap_or(f64::NAN);
        assert!(same.abs() < 1e-12, "{same}");
        assert_eq!(DriftLevel::of(same), DriftLevel::Stable);
        let shifted: Vec<f64> = (0..1000).map(|i| f64::from(i) + 300.0).collect();
        let p = psi(&r, &shifted).unwrap_or(f64::NAN);
        assert!(p > 0.25, "{p}");
        assert_eq!(DriftLevel::of(p), DriftLevel::Significant);
    }

    #[test]
    fn hand_computed_psi() {
        let r = Reference {
            feature: "x".into(),
            edges: vec![1.0],
            fractions: vec![0.5, 0.5],
        };
        // 3 of 4 below 1: (0.75-0.5)ln(1.5) + (0.25-0.5)ln(0.5)
        let p = psi(&r, &[0.0, 0.0, 0.5, 2.0]).unwrap_or(f64::NAN);
        let expected = 0.25 * 1.5f64.ln() - 0.25 * 0.5f64.ln();
        assert!((p - expected).abs() < 1e-12, "{p} vs {expected}");
        assert_eq!(psi(&r, &[]), None);
        let bad = Reference {
            fractions: vec![1.0],
            ..r
        };
        assert_eq!(psi(&bad, &[1.0]), None);
    }

    #[test]
    fn few_distinct_values_get_few_bins() {
        let r = reference("flag", &[0.0, 0.0, 0.0, 1.0], 10).unwrap_or_else(|| panic!("ref"));
        assert_eq!(r.edges, vec![1.0]);
        assert_eq!(r.fractions, vec![0.75, 0.25]);
        assert!(reference("x", &[f64::NAN], 10).is_none());
    }
}
