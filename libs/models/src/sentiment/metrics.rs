//! Multi-class F1 (weighted, macro, micro) and Pearson's r, as scikit-learn defines them.
//!
//! Weighted F1 is the headline figure of the sentiment anchors (`ml-anchors.md` §2e): per-class
//! F1 averaged with the true class counts as weights, so the rare neutral class counts for less
//! than in macro F1. A class with no predictions has precision 0 (scikit-learn's `zero_division=0`).

/// F1 scores of a multi-class prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct F1Scores {
    /// Per-class F1, in class order.
    pub per_class: Vec<f64>,
    /// Mean of per-class F1 weighted by the true class counts.
    pub weighted: f64,
    /// Unweighted mean of per-class F1 over the classes present in truth or prediction.
    pub macro_: f64,
    /// F1 of the pooled counts; for single-label data this equals accuracy.
    pub micro: f64,
}

/// F1 scores of `predicted` against `truth`, classes `0..classes`. `None` when the lengths
/// differ, the input is empty, or a label is out of range.
#[must_use]
pub fn f1_scores(truth: &[usize], predicted: &[usize], classes: usize) -> Option<F1Scores> {
    if truth.len() != predicted.len() || truth.is_empty() {
        return None;
    }
    let mut tp = vec![0usize; classes];
    let mut n_true = vec![0usize; classes];
    let mut n_pred = vec![0usize; classes];
    for (&t, &p) in truth.iter().zip(predicted) {
        if t >= classes || p >= classes {
            return None;
        }
        n_true[t] += 1;
        n_pred[p] += 1;
        if t == p {
            tp[t] += 1;
        }
    }
    let per_class: Vec<f64> = (0..classes)
        .map(|c| {
            let denom = n_true[c] + n_pred[c];
            if denom == 0 {
                0.0
            } else {
                2.0 * tp[c] as f64 / denom as f64
            }
        })
        .collect();
    let n = truth.len() as f64;
    let weighted = per_class
        .iter()
        .zip(&n_true)
        .map(|(f, &k)| f * k as f64 / n)
        .sum();
    let present: Vec<f64> = (0..classes)
        .filter(|&c| n_true[c] + n_pred[c] > 0)
        .map(|c| per_class[c])
        .collect();
    let macro_ = present.iter().sum::<f64>() / present.len().max(1) as f64;
    let micro = tp.iter().sum::<usize>() as f64 / n;
    Some(F1Scores {
        per_class,
        weighted,
        macro_,
        micro,
    })
}

/// Pearson's correlation; `None` for fewer than two points, unequal lengths or a constant side.
#[must_use]
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    Some(sxy / (sxx * syy).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_matches_scikit_learn_on_a_known_case() {
        // Worked by hand (scikit-learn's definitions):
        // class 0: tp 1, 3 true, 3 predicted -> F1 2/6; class 1: tp 2, 2 true, 3 predicted -> 4/5;
        // class 2: tp 3, 5 true, 4 predicted -> 6/9. Weighted (3/10, 2/10, 5/10) = 0.59333…;
        // macro 0.6; micro = accuracy = 0.6.
        let truth = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2];
        let pred = [0, 1, 2, 1, 1, 2, 2, 2, 0, 0];
        let Some(f) = f1_scores(&truth, &pred, 3) else {
            panic!("valid input");
        };
        let expect = [1.0 / 3.0, 0.8, 2.0 / 3.0];
        for (got, want) in f.per_class.iter().zip(expect) {
            assert!((got - want).abs() < 1e-12, "{:?}", f.per_class);
        }
        assert!(
            (f.weighted - 0.593_333_333_333_333_3).abs() < 1e-12,
            "{}",
            f.weighted
        );
        assert!((f.macro_ - 0.6).abs() < 1e-12, "{}", f.macro_);
        assert!((f.micro - 0.6).abs() < 1e-12, "{}", f.micro);
    }

    #[test]
    fn a_never_predicted_class_scores_zero_and_bad_input_is_refused() {
        let Some(f) = f1_scores(&[0, 1, 1], &[1, 1, 1], 3) else {
            panic!("valid input");
        };
        assert_eq!(f.per_class[0], 0.0);
        assert!((f.per_class[1] - 0.8).abs() < 1e-12);
        // Class 2 appears nowhere: left out of macro, weight 0 in weighted.
        assert!((f.macro_ - 0.4).abs() < 1e-12);
        assert!((f.weighted - 0.8 * 2.0 / 3.0).abs() < 1e-12);
        assert!(f1_scores(&[0, 1], &[0], 2).is_none());
        assert!(f1_scores(&[], &[], 2).is_none());
        assert!(f1_scores(&[0, 3], &[0, 1], 3).is_none());
    }

    #[test]
    fn pearson_on_known_values() {
        let Some(r) = pearson(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 5.0, 9.0]) else {
            panic!("valid input");
        };
        // sxy 11, sxx 5, syy 26: r = 11 / sqrt(130).
        assert!((r - 11.0 / 130f64.sqrt()).abs() < 1e-12, "{r}");
        assert!(pearson(&[1.0, 1.0], &[1.0, 2.0]).is_none());
        assert!(pearson(&[1.0], &[1.0]).is_none());
    }
}
