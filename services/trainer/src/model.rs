//! The churn network: `features → Linear → ReLU → Linear → logit`.
//!
//! Small on purpose: the walking skeleton's features are six RFM aggregates. Sequence models
//! (LSTM over weekly activity) replace it once the feature store serves sequences.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::Backend;
use burn::tensor::Tensor;
use sextant_contracts::ModelVersion;
use sextant_models::{ChurnArtifact, Dense};

/// A two-layer perceptron scoring churn.
#[derive(Module, Debug)]
pub struct ChurnMlp<B: Backend> {
    hidden: Linear<B>,
    output: Linear<B>,
    activation: Relu,
}

impl<B: Backend> ChurnMlp<B> {
    /// A freshly initialised network.
    pub fn new(inputs: usize, hidden: usize, device: &B::Device) -> Self {
        Self {
            hidden: LinearConfig::new(inputs, hidden).init(device),
            output: LinearConfig::new(hidden, 1).init(device),
            activation: Relu::new(),
        }
    }

    /// `x: [batch, inputs]` → logits `[batch, 1]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.output
            .forward(self.activation.forward(self.hidden.forward(x)))
    }

    /// Exports the weights into the serving artefact.
    pub fn to_artifact(
        &self,
        version: ModelVersion,
        feature_names: Vec<String>,
        means: Vec<f32>,
        stds: Vec<f32>,
    ) -> ChurnArtifact {
        ChurnArtifact {
            version,
            feature_names,
            means,
            stds,
            layers: vec![dense(&self.hidden), dense(&self.output)],
        }
    }
}

fn dense<B: Backend>(l: &Linear<B>) -> Dense {
    let [inputs, outputs] = l.weight.shape().dims();
    let weights = l
        .weight
        .val()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap_or_default();
    let bias = match &l.bias {
        Some(b) => b
            .val()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap_or_default(),
        None => vec![0.0; outputs],
    };
    Dense {
        inputs,
        outputs,
        weights,
        bias,
    }
}

impl<B: Backend> ChurnMlp<B> {
    /// Mutable access to the two layers (to load exported weights back, in tests and tools).
    pub fn layers_mut(&mut self) -> (&mut Linear<B>, &mut Linear<B>) {
        (&mut self.hidden, &mut self.output)
    }
}
