//! The sentiment network, trained with Burn: a fastText-style bag of hashed word, bigram,
//! negation-scope and character n-gram embeddings next to VADER's lexicon scores, then dense
//! layers to three class logits and an intensity.
//!
//! Why this shape: support text is short and the labelled sets an org has are small (thousands
//! of sentences), so a bag of n-gram embeddings trains in seconds on a CPU and generalises as
//! well as heavier encoders at this size; the lexicon scores carry prior knowledge of sentiment
//! words (with negation and intensifier rules) that a few thousand sentences cannot teach. The
//! hashing trick means no vocabulary file; the intensity head (mean rating / 4, `tanh`) is a
//! second target that regularises the classifier and feeds "how negative" to the churn features.
//!
//! Inputs are built by [`sextant_models::sentiment::encode`], the function the serving path
//! uses, and the trained network is exported to a [`SentimentArtifact`] whose plain-Rust forward
//! pass is checked against this one in the tests.
//!
//! Embedding rows start at zero: a bucket no training text hits would stay exactly zero under
//! Adam, so the table Burn trains holds only the buckets the training texts use (plus one zero
//! row for anything else). That is the same model as the full hashed table at a fraction of the
//! cost per Adam step, unseen n-grams add nothing at serving time, and the artefact stores only
//! the rows that moved.

use burn::module::{AutodiffModule, Initializer, Module, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, Relu};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::Backend;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use sextant_models::Dense;
use sextant_models::sentiment::{
    EncodedText, FeatureConfig, LEXICON_FEATURES, OUTPUTS, SentimentArtifact,
};

/// Hyper-parameters of one training run.
#[derive(Debug, Clone, PartialEq)]
pub struct SentimentConfig {
    /// How texts become hashed features.
    pub features: FeatureConfig,
    /// Width of an embedding row.
    pub dim: usize,
    /// Width of the hidden ReLU layer; 0 for none (the head is linear).
    pub hidden: usize,
    /// Passes over the training texts.
    pub epochs: usize,
    /// Texts per Adam step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Weight of the intensity loss (squared error on mean/4) next to the class cross-entropy.
    pub intensity_weight: f64,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
}

impl Default for SentimentConfig {
    fn default() -> Self {
        Self {
            features: FeatureConfig::default(),
            dim: 16,
            hidden: 0,
            epochs: 10,
            batch_size: 32,
            learning_rate: 0.01,
            intensity_weight: 1.0,
            seed: 42,
        }
    }
}

/// Why a run could not produce a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SentimentTrainError {
    /// Texts, labels and intensities differ in number, or there are none.
    #[error("bad training data: {0}")]
    Data(String),
    /// A hyper-parameter is unusable.
    #[error("bad configuration: {0}")]
    Config(String),
    /// Burn returned data of an unexpected type or shape.
    #[error("cannot export the model: {0}")]
    Export(String),
}

/// The network.
#[derive(Module, Debug)]
pub struct SentimentNet<B: Backend> {
    embedding: Embedding<B>,
    layers: Vec<Linear<B>>,
    activation: Relu,
}

impl<B: Backend> SentimentNet<B> {
    /// A freshly initialised network with `rows` embedding rows (at zero). Dense layers are
    /// drawn from `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with the run's own generator seeded by
    /// `config.seed`, not Burn's process-wide one, so concurrent runs cannot disturb each other
    /// and a seed always gives the same model.
    pub fn new(config: &SentimentConfig, rows: usize, device: &B::Device) -> Self {
        let embedding = EmbeddingConfig::new(rows.max(1), config.dim)
            .with_initializer(Initializer::Zeros)
            .init(device);
        let input = config.dim + LEXICON_FEATURES;
        let shapes = if config.hidden == 0 {
            vec![(input, OUTPUTS)]
        } else {
            vec![(input, config.hidden), (config.hidden, OUTPUTS)]
        };
        let mut rng = SplitMix(config.seed ^ 0x1a7e_5eed);
        let layers = shapes
            .into_iter()
            .map(|(i, o)| {
                let mut layer = LinearConfig::new(i, o).init(device);
                let bound = 1.0 / (i as f64).sqrt();
                let mut draw = |n: usize| -> Vec<f32> {
                    (0..n)
                        .map(|_| ((rng.unit() * 2.0 - 1.0) * bound) as f32)
                        .collect()
                };
                layer.weight = Param::from_tensor(Tensor::from_data(
                    TensorData::new(draw(i * o), [i, o]),
                    device,
                ));
                layer.bias = Some(Param::from_tensor(Tensor::from_data(
                    TensorData::new(draw(o), [o]),
                    device,
                )));
                layer
            })
            .collect();
        Self {
            embedding,
            layers,
            activation: Relu::new(),
        }
    }

    /// Raw outputs `[batch, 4]`: three class logits and the pre-`tanh` intensity.
    pub fn forward(&self, batch: &Batch<B>) -> Tensor<B, 2> {
        let [n, len] = batch.ids.shape().dims();
        let dim = self.embedding.weight.shape().dims::<2>()[1];
        let bag = if len == 0 {
            Tensor::zeros([n, dim], &batch.ids.device())
        } else {
            // Weighted sum of the rows as a batched matmul: [n, 1, len] × [n, len, dim].
            // (A broadcast multiply and sum over `len` walks strided memory, several times slower.)
            let e = self.embedding.forward(batch.ids.clone());
            batch
                .weights
                .clone()
                .unsqueeze_dim::<3>(1)
                .matmul(e)
                .reshape([n, dim])
        };
        let mut x = Tensor::cat(vec![bag, batch.lexicon.clone()], 1);
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = self.activation.forward(x);
            }
        }
        x
    }

    /// Exports the weights into the serving artefact.
    ///
    /// # Errors
    /// [`SentimentTrainError::Export`] if Burn hands back data of another type.
    pub fn to_artifact(
        &self,
        version: &str,
        config: &SentimentConfig,
        index: &RowIndex,
        lexicon_means: Vec<f32>,
        lexicon_stds: Vec<f32>,
    ) -> Result<SentimentArtifact, SentimentTrainError> {
        let table = to_vec(self.embedding.weight.val())?;
        let dim = config.dim;
        let mut rows = Vec::new();
        let mut vectors = Vec::new();
        // Rows beyond the index (the zero row for unseen buckets) are not buckets.
        for (bucket, v) in index.buckets.iter().zip(table.chunks_exact(dim)) {
            if v.iter().any(|x| *x != 0.0) {
                rows.push(*bucket);
                vectors.extend_from_slice(v);
            }
        }
        let layers = self
            .layers
            .iter()
            .map(dense)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SentimentArtifact {
            version: version.into(),
            features: config.features.clone(),
            dim,
            rows,
            vectors,
            lexicon_means,
            lexicon_stds,
            layers,
        })
    }
}

fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>, SentimentTrainError> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| SentimentTrainError::Export(format!("{e:?}")))
}

fn dense<B: Backend>(l: &Linear<B>) -> Result<Dense, SentimentTrainError> {
    let [inputs, outputs] = l.weight.shape().dims();
    let bias = match &l.bias {
        Some(b) => to_vec(b.val())?,
        None => vec![0.0; outputs],
    };
    Ok(Dense {
        inputs,
        outputs,
        weights: to_vec(l.weight.val())?,
        bias,
    })
}

/// A padded batch of encoded texts.
#[derive(Debug, Clone)]
pub struct Batch<B: Backend> {
    /// Feature rows, `[n, longest]`, padded with row 0 at weight 0.
    pub ids: Tensor<B, 2, Int>,
    /// Feature weights, `[n, longest]`.
    pub weights: Tensor<B, 2>,
    /// Standardised lexicon features, `[n, LEXICON_FEATURES]`.
    pub lexicon: Tensor<B, 2>,
}

impl<B: Backend> Batch<B> {
    /// Pads and stacks `texts`, mapping buckets to table rows through `index` and standardising
    /// the lexicon features with `means`/`stds`.
    pub fn new(
        texts: &[&EncodedText],
        index: &RowIndex,
        means: &[f32],
        stds: &[f32],
        device: &B::Device,
    ) -> Self {
        let prepared: Vec<Prepared> = texts
            .iter()
            .map(|t| Prepared::new(t, index, means, stds))
            .collect();
        let refs: Vec<&Prepared> = prepared.iter().collect();
        Self::stack(&refs, device)
    }

    fn stack(texts: &[&Prepared], device: &B::Device) -> Self {
        let n = texts.len();
        let len = texts.iter().map(|t| t.rows.len()).max().unwrap_or(0);
        let mut ids = vec![0i64; n * len];
        let mut weights = vec![0f32; n * len];
        let mut lexicon = Vec::with_capacity(n * LEXICON_FEATURES);
        for (r, t) in texts.iter().enumerate() {
            ids[r * len..r * len + t.rows.len()].copy_from_slice(&t.rows);
            weights[r * len..r * len + t.weights.len()].copy_from_slice(&t.weights);
            lexicon.extend_from_slice(&t.lexicon);
        }
        Self {
            ids: Tensor::from_data(TensorData::new(ids, [n, len]), device),
            weights: Tensor::from_data(TensorData::new(weights, [n, len]), device),
            lexicon: Tensor::from_data(TensorData::new(lexicon, [n, LEXICON_FEATURES]), device),
        }
    }
}

/// One text mapped to table rows, with its standardised lexicon features (built once per run,
/// not once per batch).
#[derive(Debug, Clone)]
struct Prepared {
    rows: Vec<i64>,
    weights: Vec<f32>,
    lexicon: [f32; LEXICON_FEATURES],
}

impl Prepared {
    fn new(t: &EncodedText, index: &RowIndex, means: &[f32], stds: &[f32]) -> Self {
        let mut lexicon = [0f32; LEXICON_FEATURES];
        for (j, (out, v)) in lexicon.iter_mut().zip(t.lexicon).enumerate() {
            *out = (v - means[j]) / stds[j];
        }
        Self {
            rows: t
                .hashed
                .ids
                .iter()
                .map(|&id| index.row(id) as i64)
                .collect(),
            weights: t.hashed.weights.clone(),
            lexicon,
        }
    }
}

/// The buckets the training texts use, in ascending order: table row `k` is bucket
/// `buckets[k]`, and row `buckets.len()` is a zero row for every other bucket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowIndex {
    /// Ascending, distinct bucket ids.
    pub buckets: Vec<u32>,
}

impl RowIndex {
    /// The buckets used by `texts`.
    #[must_use]
    pub fn of(texts: &[EncodedText]) -> Self {
        let mut buckets: Vec<u32> = texts
            .iter()
            .flat_map(|t| t.hashed.ids.iter().copied())
            .collect();
        buckets.sort_unstable();
        buckets.dedup();
        Self { buckets }
    }

    /// Rows of the table: one per bucket plus the zero row.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.buckets.len() + 1
    }

    /// The table row of a bucket (the zero row when the bucket is not indexed).
    #[must_use]
    pub fn row(&self, bucket: u32) -> usize {
        self.buckets
            .binary_search(&bucket)
            .unwrap_or(self.buckets.len())
    }
}

/// Mean and standard deviation (floored at 1e-6) of each lexicon feature over `texts`.
#[must_use]
pub fn lexicon_normalisation(texts: &[EncodedText]) -> (Vec<f32>, Vec<f32>) {
    let n = texts.len().max(1) as f64;
    let mut means = [0f64; LEXICON_FEATURES];
    for t in texts {
        for (m, v) in means.iter_mut().zip(t.lexicon) {
            *m += f64::from(v) / n;
        }
    }
    let mut vars = [0f64; LEXICON_FEATURES];
    for t in texts {
        for ((s, v), m) in vars.iter_mut().zip(t.lexicon).zip(means) {
            *s += (f64::from(v) - m).powi(2) / n;
        }
    }
    (
        means.iter().map(|m| *m as f32).collect(),
        vars.iter().map(|v| (v.sqrt() as f32).max(1e-6)).collect(),
    )
}

/// SplitMix64: a small, seeded generator for the shuffles (reproducible across platforms).
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Training texts with their targets.
#[derive(Debug, Clone, Copy)]
pub struct TrainingData<'a> {
    /// Encoded texts.
    pub texts: &'a [EncodedText],
    /// Class of each text (0 negative, 1 neutral, 2 positive).
    pub labels: &'a [usize],
    /// Normalised intensity of each text (mean rating / 4, in `[-1, 1]`).
    pub intensities: &'a [f32],
}

/// Trains a network on `data`. After each epoch `after_epoch(epoch, outputs)` sees the
/// network's raw outputs on `validation` (Burn's forward pass, one row per text; empty when
/// `validation` is) for validation-based epoch selection; it returns `false` to stop early.
///
/// # Errors
/// [`SentimentTrainError`] for inconsistent data or configuration.
pub fn train<B: AutodiffBackend>(
    data: TrainingData<'_>,
    config: &SentimentConfig,
    version: &str,
    device: &B::Device,
    validation: &[EncodedText],
    mut after_epoch: impl FnMut(usize, &[[f32; OUTPUTS]]) -> bool,
) -> Result<SentimentArtifact, SentimentTrainError> {
    let n = data.texts.len();
    if n == 0 || data.labels.len() != n || data.intensities.len() != n {
        return Err(SentimentTrainError::Data(format!(
            "{n} texts, {} labels, {} intensities",
            data.labels.len(),
            data.intensities.len()
        )));
    }
    if let Some(l) = data.labels.iter().find(|l| **l >= 3) {
        return Err(SentimentTrainError::Data(format!(
            "label {l} is not 0, 1 or 2"
        )));
    }
    if config.dim == 0 || config.batch_size == 0 || config.features.buckets == 0 {
        return Err(SentimentTrainError::Config(
            "dim, batch_size and buckets must be positive".into(),
        ));
    }
    if data
        .texts
        .iter()
        .chain(validation)
        .flat_map(|t| &t.hashed.ids)
        .any(|&id| id >= config.features.buckets)
    {
        return Err(SentimentTrainError::Data(
            "texts were encoded with more buckets than the configuration has".into(),
        ));
    }
    let (means, stds) = lexicon_normalisation(data.texts);
    let index = RowIndex::of(data.texts);
    let prepared: Vec<Prepared> = data
        .texts
        .iter()
        .map(|t| Prepared::new(t, &index, &means, &stds))
        .collect();
    let validation: Vec<Prepared> = validation
        .iter()
        .map(|t| Prepared::new(t, &index, &means, &stds))
        .collect();
    let validation_batch = {
        let refs: Vec<&Prepared> = validation.iter().collect();
        Batch::<B::InnerBackend>::stack(&refs, device)
    };
    let mut model = SentimentNet::<B>::new(config, index.rows(), device);
    let mut optim = AdamConfig::new().init();
    let ce = CrossEntropyLossConfig::new().init(device);
    let mut rng = SplitMix(config.seed ^ 0x5e47_1e47);
    let mut order: Vec<usize> = (0..n).collect();
    for epoch in 1..=config.epochs {
        rng.shuffle(&mut order);
        for chunk in order.chunks(config.batch_size) {
            let texts: Vec<&Prepared> = chunk.iter().map(|&i| &prepared[i]).collect();
            let batch = Batch::<B>::stack(&texts, device);
            let m = chunk.len();
            let labels: Vec<i64> = chunk.iter().map(|&i| data.labels[i] as i64).collect();
            let targets: Tensor<B, 1, Int> =
                Tensor::from_data(TensorData::new(labels, [m]), device);
            let intensity: Vec<f32> = chunk.iter().map(|&i| data.intensities[i]).collect();
            let intensity: Tensor<B, 2> =
                Tensor::from_data(TensorData::new(intensity, [m, 1]), device);
            let out = model.forward(&batch);
            let logits = out.clone().slice([0..m, 0..3]);
            let predicted = out.slice([0..m, 3..4]).tanh();
            let loss = ce.forward(logits, targets)
                + (predicted - intensity)
                    .powi_scalar(2)
                    .mean()
                    .mul_scalar(config.intensity_weight);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(config.learning_rate, model, grads);
        }
        let outputs = if validation.is_empty() {
            Vec::new()
        } else {
            rows_of(to_vec(model.valid().forward(&validation_batch))?)
        };
        if !after_epoch(epoch, &outputs) {
            break;
        }
    }
    model
        .valid()
        .to_artifact(version, config, &index, means, stds)
}

fn rows_of(flat: Vec<f32>) -> Vec<[f32; OUTPUTS]> {
    flat.chunks_exact(OUTPUTS)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect()
}

/// The network's raw outputs for `texts` (Burn's forward pass; for checks against the artefact).
///
/// # Errors
/// [`SentimentTrainError::Export`] if Burn hands back data of another type.
pub fn burn_outputs<B: Backend>(
    model: &SentimentNet<B>,
    texts: &[&EncodedText],
    index: &RowIndex,
    means: &[f32],
    stds: &[f32],
    device: &B::Device,
) -> Result<Vec<[f32; OUTPUTS]>, SentimentTrainError> {
    let out = to_vec(model.forward(&Batch::new(texts, index, means, stds, device)))?;
    Ok(rows_of(out))
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};
    use sextant_models::sentiment::{Lexicon, encode};

    use super::*;

    type B = Autodiff<Flex>;

    /// Hand-written support sentences with a gold intensity (−1 … 1).
    const TEXTS: &[(&str, f32)] = &[
        ("the replacement arrived quickly and works perfectly", 0.7),
        ("support was friendly and solved it in minutes", 0.6),
        ("thanks, the firmware update fixed the problem", 0.5),
        ("great product, easy setup, love it!", 0.8),
        ("the screen is bright and the sound is excellent", 0.6),
        ("still broken after three calls, very frustrating", -0.7),
        ("the device stopped working after a week", -0.5),
        ("nobody answered my ticket, this is unacceptable", -0.8),
        ("not happy at all, the battery dies in an hour", -0.6),
        ("refund please, it never worked", -0.6),
        ("the manual lists the ports on page four", 0.0),
        ("i called on tuesday about the order number", 0.0),
        ("the unit ships with a remote and two cables", 0.02),
        ("which adapter do i need for the wall mount", 0.0),
    ];

    type Data = (Vec<EncodedText>, Vec<usize>, Vec<f32>);

    fn data(config: &SentimentConfig) -> Result<Data, String> {
        let lexicon = Lexicon::vader().map_err(|e| e.to_string())?;
        let texts = TEXTS
            .iter()
            .map(|(t, _)| encode(t, &config.features, lexicon))
            .collect();
        let labels = TEXTS
            .iter()
            .map(|(_, y)| {
                sextant_models::sentiment::SentimentClass::from_intensity(f64::from(*y)).index()
            })
            .collect();
        let intensities = TEXTS.iter().map(|(_, y)| *y).collect();
        Ok((texts, labels, intensities))
    }

    fn small() -> SentimentConfig {
        SentimentConfig {
            features: FeatureConfig {
                buckets: 4096,
                ..FeatureConfig::default()
            },
            dim: 8,
            hidden: 6,
            epochs: 30,
            batch_size: 4,
            learning_rate: 0.02,
            ..SentimentConfig::default()
        }
    }

    #[test]
    fn plain_rust_forward_agrees_with_burn() -> Result<(), String> {
        let config = small();
        let (texts, labels, intensities) = data(&config)?;
        let device = Default::default();
        // Train a little so the weights are not at their initial values, then rebuild the
        // network from the same seed and steps to compare forward passes on equal weights.
        let td = TrainingData {
            texts: &texts,
            labels: &labels,
            intensities: &intensities,
        };
        let artifact =
            train::<B>(td, &config, "t", &device, &[], |_, _| true).map_err(|e| e.to_string())?;
        assert!(!artifact.rows.is_empty(), "training moves embedding rows");
        let (model, index) = load::<Flex>(&artifact, &device);
        // The training texts and one with n-grams no training text has.
        let lexicon = Lexicon::vader().map_err(|e| e.to_string())?;
        let unseen = encode(
            "Zyxel firmware reboots randomly; warranty claim denied!",
            &config.features,
            lexicon,
        );
        let mut texts = texts.clone();
        texts.push(unseen);
        let refs: Vec<&EncodedText> = texts.iter().collect();
        let burn = burn_outputs(
            &model,
            &refs,
            &index,
            &artifact.lexicon_means,
            &artifact.lexicon_stds,
            &device,
        )
        .map_err(|e| e.to_string())?;
        for (t, b) in texts.iter().zip(&burn) {
            let plain = artifact.outputs(t).map_err(|e| e.to_string())?;
            for (p, q) in plain.iter().zip(b) {
                assert!((p - q).abs() < 1e-4, "plain {plain:?} burn {b:?}");
            }
        }
        // And the model learnt the training sentences.
        let correct = texts
            .iter()
            .zip(&labels)
            .filter(|(t, l)| {
                artifact
                    .predict_encoded(t)
                    .is_ok_and(|s| s.label.index() == **l)
            })
            .count();
        assert!(correct >= 12, "{correct}/14 training sentences right");
        assert_eq!(burn.len(), 15);
        Ok(())
    }

    /// Rebuilds a Burn network from an artefact: a table of its stored rows plus the zero row.
    fn load<Bk: Backend>(
        a: &SentimentArtifact,
        device: &Bk::Device,
    ) -> (SentimentNet<Bk>, RowIndex) {
        let config = SentimentConfig {
            features: a.features.clone(),
            dim: a.dim,
            hidden: if a.layers.len() > 1 {
                a.layers[0].outputs
            } else {
                0
            },
            ..SentimentConfig::default()
        };
        let index = RowIndex {
            buckets: a.rows.clone(),
        };
        let mut net = SentimentNet::<Bk>::new(&config, index.rows(), device);
        let mut table = a.vectors.clone();
        table.extend(std::iter::repeat_n(0.0, a.dim));
        net.embedding.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(table, [index.rows(), a.dim]),
            device,
        ));
        for (layer, d) in net.layers.iter_mut().zip(&a.layers) {
            layer.weight = Param::from_tensor(Tensor::from_data(
                TensorData::new(d.weights.clone(), [d.inputs, d.outputs]),
                device,
            ));
            layer.bias = Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(d.bias.clone(), [d.outputs]),
                device,
            )));
        }
        (net, index)
    }

    #[test]
    fn training_is_deterministic_for_a_seed() -> Result<(), String> {
        let config = SentimentConfig {
            epochs: 5,
            ..small()
        };
        let (texts, labels, intensities) = data(&config)?;
        let td = TrainingData {
            texts: &texts,
            labels: &labels,
            intensities: &intensities,
        };
        let device = Default::default();
        let a =
            train::<B>(td, &config, "t", &device, &[], |_, _| true).map_err(|e| e.to_string())?;
        let b =
            train::<B>(td, &config, "t", &device, &[], |_, _| true).map_err(|e| e.to_string())?;
        assert_eq!(a, b, "same seed, same artefact");
        let c = train::<B>(
            td,
            &SentimentConfig {
                seed: 7,
                ..config.clone()
            },
            "t",
            &device,
            &[],
            |_, _| true,
        )
        .map_err(|e| e.to_string())?;
        assert_ne!(a, c, "another seed, another model");
        // Early stop after the second epoch.
        let mut seen = Vec::new();
        train::<B>(td, &config, "t", &device, &[], |e, _| {
            seen.push(e);
            e < 2
        })
        .map_err(|e| e.to_string())?;
        assert_eq!(seen, vec![1, 2]);
        Ok(())
    }

    #[test]
    fn bad_data_and_configuration_are_refused() -> Result<(), String> {
        let config = small();
        let (texts, labels, intensities) = data(&config)?;
        let device = Default::default();
        let short = TrainingData {
            texts: &texts,
            labels: &labels[1..],
            intensities: &intensities,
        };
        assert!(matches!(
            train::<B>(short, &config, "t", &device, &[], |_, _| true),
            Err(SentimentTrainError::Data(_))
        ));
        let td = TrainingData {
            texts: &texts,
            labels: &labels,
            intensities: &intensities,
        };
        let fewer_buckets = SentimentConfig {
            features: FeatureConfig {
                buckets: 16,
                ..config.features.clone()
            },
            ..config.clone()
        };
        assert!(matches!(
            train::<B>(td, &fewer_buckets, "t", &device, &[], |_, _| true),
            Err(SentimentTrainError::Data(_))
        ));
        let zero_dim = SentimentConfig { dim: 0, ..config };
        assert!(matches!(
            train::<B>(td, &zero_dim, "t", &device, &[], |_, _| true),
            Err(SentimentTrainError::Config(_))
        ));
        Ok(())
    }
}
