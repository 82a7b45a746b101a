//! The churn model artefact: `log1p` → standardise → dense ReLU layers → sigmoid.

use serde::{Deserialize, Serialize};
use sextant_contracts::ModelVersion;

/// Why a model could not score.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The feature vector does not have the model's width.
    #[error("the model takes {expected} features, got {got}")]
    Width { expected: usize, got: usize },
    /// The artefact is inconsistent (layer shapes do not chain).
    #[error("inconsistent artefact: {0}")]
    Inconsistent(String),
}

/// A dense layer `y = x · W + b`, with `W` stored row-major as `[inputs][outputs]` (Burn's
/// `Linear` layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Dense {
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut y = self.bias.clone();
        for (i, xi) in x.iter().enumerate() {
            let row = &self.weights[i * self.outputs..(i + 1) * self.outputs];
            for (yo, w) in y.iter_mut().zip(row) {
                *yo += xi * w;
            }
        }
        y
    }
}

/// A trained churn model, ready to score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChurnArtifact {
    pub version: ModelVersion,
    pub feature_names: Vec<String>,
    /// Mean of each `log1p(feature)` over the training part.
    pub means: Vec<f32>,
    /// Standard deviation of each `log1p(feature)` over the training part (never 0).
    pub stds: Vec<f32>,
    /// Hidden layers use ReLU; the last layer has one output, a logit.
    pub layers: Vec<Dense>,
}

impl ChurnArtifact {
    /// Checks that the shapes chain from the features to one logit.
    pub fn validate(&self) -> Result<(), ModelError> {
        let n = self.feature_names.len();
        if self.means.len() != n || self.stds.len() != n {
            return Err(ModelError::Inconsistent(
                "normalisation width differs from the features".into(),
            ));
        }
        let mut width = n;
        for (i, l) in self.layers.iter().enumerate() {
            if l.inputs != width
                || l.weights.len() != l.inputs * l.outputs
                || l.bias.len() != l.outputs
            {
                return Err(ModelError::Inconsistent(format!("layer {i} does not fit")));
            }
            width = l.outputs;
        }
        if width != 1 || self.layers.is_empty() {
            return Err(ModelError::Inconsistent(
                "the last layer must have one output".into(),
            ));
        }
        Ok(())
    }

    /// The model input for raw features (see [`standardise`]).
    pub fn preprocess(&self, features: &[f64]) -> Result<Vec<f32>, ModelError> {
        standardise(features, &self.means, &self.stds)
    }

    /// The churn probability for raw features.
    pub fn predict(&self, features: &[f64]) -> Result<f64, ModelError> {
        let mut x = self.preprocess(features)?;
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x);
            if i < last {
                x.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        let logit = f64::from(
            *x.first()
                .ok_or_else(|| ModelError::Inconsistent("no output".into()))?,
        );
        Ok(1.0 / (1.0 + (-logit).exp()))
    }
}

/// The model input for raw features: `(log1p(max(x, 0)) - mean) / std`. Training and serving
/// both go through this, so they transform features identically.
pub fn standardise(features: &[f64], means: &[f32], stds: &[f32]) -> Result<Vec<f32>, ModelError> {
    if features.len() != means.len() {
        return Err(ModelError::Width {
            expected: means.len(),
            got: features.len(),
        });
    }
    Ok(features
        .iter()
        .zip(means.iter().zip(stds))
        .map(|(x, (m, s))| ((x.max(0.0).ln_1p() as f32) - m) / s)
        .collect())
}

/// Per-feature mean and standard deviation of `log1p(x)` over `rows` (the training part).
pub fn fit_normalisation(rows: &[Vec<f64>], width: usize) -> (Vec<f32>, Vec<f32>) {
    let n = rows.len().max(1) as f64;
    let mut means = vec![0.0f64; width];
    for r in rows {
        for (m, x) in means.iter_mut().zip(r) {
            *m += x.max(0.0).ln_1p() / n;
        }
    }
    let mut vars = vec![0.0f64; width];
    for r in rows {
        for ((v, x), m) in vars.iter_mut().zip(r).zip(&means) {
            *v += (x.max(0.0).ln_1p() - m).powi(2) / n;
        }
    }
    let stds = vars
        .iter()
        .map(|v| if *v > 1e-12 { v.sqrt() as f32 } else { 1.0 })
        .collect();
    (means.iter().map(|m| *m as f32).collect(), stds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ChurnArtifact {
        ChurnArtifact {
            version: ModelVersion::parse("churn-v1").expect("v"),
            feature_names: vec!["a".into(), "b".into()],
            means: vec![0.0, 0.0],
            stds: vec![1.0, 1.0],
            layers: vec![
                // hidden: h0 = x0 - x1, h1 = x1 - x0
                Dense {
                    inputs: 2,
                    outputs: 2,
                    weights: vec![1.0, -1.0, -1.0, 1.0],
                    bias: vec![0.0, 0.0],
                },
                Dense {
                    inputs: 2,
                    outputs: 1,
                    weights: vec![2.0, -3.0],
                    bias: vec![0.5],
                },
            ],
        }
    }

    #[test]
    fn forward_pass_by_hand() {
        let m = tiny();
        m.validate().expect("valid");
        // x = ln(1+e-1) = 1, ln(1+0) = 0 → h = relu(1, -1) = (1, 0) → logit = 2 + 0.5
        let p = m
            .predict(&[std::f64::consts::E - 1.0, 0.0])
            .expect("scores");
        assert!((p - 1.0 / (1.0 + (-2.5f64).exp())).abs() < 1e-6, "{p}");
        // h = relu(-1, 1) = (0, 1) → logit = -3 + 0.5
        let p = m
            .predict(&[0.0, std::f64::consts::E - 1.0])
            .expect("scores");
        assert!((p - 1.0 / (1.0 + 2.5f64.exp())).abs() < 1e-6, "{p}");
        assert_eq!(
            m.predict(&[1.0]),
            Err(ModelError::Width {
                expected: 2,
                got: 1
            })
        );
    }

    #[test]
    fn inconsistent_artefacts_are_refused() {
        let mut m = tiny();
        m.layers[1].inputs = 3;
        assert!(m.validate().is_err());
        let mut m = tiny();
        m.layers.pop();
        assert!(m.validate().is_err());
    }

    #[test]
    fn normalisation_of_log1p() {
        let rows = vec![
            vec![0.0, 5.0],
            vec![std::f64::consts::E * std::f64::consts::E - 1.0, 5.0],
        ];
        let (means, stds) = fit_normalisation(&rows, 2);
        assert!(
            (means[0] - 1.0).abs() < 1e-6 && (stds[0] - 1.0).abs() < 1e-6,
            "{means:?} {stds:?}"
        );
        assert_eq!(stds[1], 1.0, "a constant feature keeps std 1");
    }
}
