//! The sequence churn network in Burn, its training loop, and its export to the plain-Rust
//! [`SequenceArtifact`].
//!
//! Why a GRU over weeks and not only RFM: six aggregates cannot tell a customer who is slowing
//! down from one with a steady rhythm and the same totals. The network reads up to 104 weeks of
//! orders, spend, items and cases (see `sextant_features::sequence`), adds a learned embedding of a
//! static category (country) and the RFM aggregates through a dense layer, and scores churn from
//! the concatenation (BCE with logits).
//!
//! The GRU is written out here (one `[in, 3h]` input projection for all weeks at once, one
//! `[h, 3h]` matmul per week) instead of using `burn::nn::Gru`, whose per-gate `Linear`s and
//! per-step `slice_assign` cost several times more per step; the equations are exactly those of
//! `sextant_models::sequence` (PyTorch's `reset_after` form), which is what makes the export exact.
//!
//! Training is seeded and deterministic: Burn's RNG is seeded, batches are shuffled with a seeded
//! SplitMix64, and the model is selected on a separate validation set (early stopping on its
//! ROC-AUC), never on the test data.
//!
//! Why a stacking layer (on by default, [`SequenceTrainConfig::stack`]): the deep and wide parts
//! are trained together with an implicit 1 : 1 weight, which is what fits the *training* rows.
//! When the validation set is later in time (as in `sextant evaluate churn`), a two-feature
//! logistic regression of its labels on the selected network's deep and wide logits measures how
//! far the recurrent part's extra signal carries forward; on Online Retail it keeps about half of
//! it, and that is what made the model beat logistic regression on RFM out of time. The layer is
//! folded into the weights (head output scaled, wide part scaled and shifted), so the trained
//! network is still one [`SequenceArtifact`] and serving does not change.

use burn::module::{AutodiffModule, Module, Param};
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::Backend;
use burn::tensor::activation::{log_sigmoid, relu, sigmoid};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::cast::ToElement;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use sextant_models::artifact::{Dense, fit_normalisation};
use sextant_models::metrics::roc_auc;
use sextant_models::sequence::{GruWeights, SequenceArtifact, SequenceInput};

/// Name of the "not seen in training" category level (embedding row 0).
pub const UNKNOWN_CATEGORY: &str = "<unknown>";

/// The network. Shapes are documented on [`SequenceChurnNet::forward`].
#[derive(Module, Debug)]
pub struct SequenceChurnNet<B: Backend> {
    /// `[channels, 3h]`, gate blocks `[r | z | n]`.
    w_x: Param<Tensor<B, 2>>,
    b_x: Param<Tensor<B, 1>>,
    /// `[h, 3h]`.
    w_h: Param<Tensor<B, 2>>,
    b_h: Param<Tensor<B, 1>>,
    /// `[categories, embedding_dim]`.
    embedding: Param<Tensor<B, 2>>,
    aggregate: Linear<B>,
    head_hidden: Linear<B>,
    head_out: Linear<B>,
    /// The wide part: standardised aggregates → one logit, added to the head's.
    wide: Option<Linear<B>>,
    hidden: usize,
}

/// Architecture sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetShape {
    /// Channels per week.
    pub channels: usize,
    /// GRU hidden width.
    pub hidden: usize,
    /// Category levels, including the unknown level 0.
    pub categories: usize,
    /// Embedding width.
    pub embedding_dim: usize,
    /// Aggregate features in.
    pub aggregates: usize,
    /// Aggregate dense layer width.
    pub aggregate_dim: usize,
    /// Head hidden width.
    pub head_dim: usize,
}

fn uniform<B: Backend, const D: usize>(
    shape: [usize; D],
    bound: f64,
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    Param::from_tensor(Tensor::random(
        shape,
        Distribution::Uniform(-bound, bound),
        device,
    ))
}

impl<B: Backend> SequenceChurnNet<B> {
    /// A freshly initialised network (GRU weights `U(−1/√h, 1/√h)` as PyTorch does).
    pub fn new(s: NetShape, device: &B::Device) -> Self {
        let k = 1.0 / (s.hidden as f64).sqrt();
        let h3 = 3 * s.hidden;
        Self {
            w_x: uniform([s.channels, h3], k, device),
            b_x: uniform([h3], k, device),
            w_h: uniform([s.hidden, h3], k, device),
            b_h: uniform([h3], k, device),
            embedding: uniform([s.categories, s.embedding_dim], 0.1, device),
            aggregate: LinearConfig::new(s.aggregates, s.aggregate_dim).init(device),
            head_hidden: LinearConfig::new(
                s.hidden + s.embedding_dim + s.aggregate_dim,
                s.head_dim,
            )
            .init(device),
            head_out: LinearConfig::new(s.head_dim, 1).init(device),
            wide: None,
            hidden: s.hidden,
        }
    }

    /// Adds a wide part (a linear map of the standardised aggregates to one logit, added to the
    /// head's) starting at `weights` (one per aggregate) and `bias`, and zeroes the head's output
    /// layer, so that the network starts as exactly that linear model (e.g. a fitted logistic
    /// regression) and the recurrent part learns what it leaves unexplained.
    #[must_use]
    pub fn with_wide(mut self, weights: &[f32], bias: f32, device: &B::Device) -> Self {
        let mut wide = LinearConfig::new(weights.len(), 1).init(device);
        wide.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(weights.to_vec(), [weights.len(), 1]),
            device,
        ));
        wide.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![bias], [1]),
            device,
        )));
        self.wide = Some(wide);
        let [rows, cols] = self.head_out.weight.dims();
        self.head_out.weight = Param::from_tensor(Tensor::zeros([rows, cols], device));
        self.head_out.bias = Some(Param::from_tensor(Tensor::zeros([cols], device)));
        self
    }

    /// `seq: [weeks, batch, channels]` (time-major, **oldest week first**, already standardised),
    /// `category: [batch]`, `aggregates: [batch, aggregates]` (standardised) → logits `[batch, 1]`.
    pub fn forward(
        &self,
        seq: Tensor<B, 3>,
        category: Tensor<B, 1, Int>,
        aggregates: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let [weeks, batch, channels] = seq.dims();
        let hd = self.hidden;
        let h3 = 3 * hd;
        let device = seq.device();
        let gx_all = (seq
            .reshape([weeks * batch, channels])
            .matmul(self.w_x.val())
            + self.b_x.val().unsqueeze::<2>())
        .reshape([weeks, batch, h3]);
        let w_h = self.w_h.val();
        let b_h = self.b_h.val().unsqueeze::<2>();
        let mut h: Tensor<B, 2> = Tensor::zeros([batch, hd], &device);
        for t in 0..weeks {
            let gx: Tensor<B, 2> = gx_all.clone().narrow(0, t, 1).reshape([batch, h3]);
            let gh = h.clone().matmul(w_h.clone()) + b_h.clone();
            let r = sigmoid(gx.clone().narrow(1, 0, hd) + gh.clone().narrow(1, 0, hd));
            let z = sigmoid(gx.clone().narrow(1, hd, hd) + gh.clone().narrow(1, hd, hd));
            let n = (gx.narrow(1, 2 * hd, hd) + r * gh.narrow(1, 2 * hd, hd)).tanh();
            // h' = (1 − z) ⊙ n + z ⊙ h = n + z ⊙ (h − n)
            h = n.clone() + z * (h - n);
        }
        let emb = self.embedding.val().select(0, category);
        let agg = relu(self.aggregate.forward(aggregates.clone()));
        let joined = Tensor::cat(vec![h, emb, agg], 1);
        let deep = self
            .head_out
            .forward(relu(self.head_hidden.forward(joined)));
        match &self.wide {
            Some(w) => deep + w.forward(aggregates),
            None => deep,
        }
    }

    /// The weights as the serving artefact (normalisation and vocabulary supplied by the caller).
    ///
    /// # Errors
    /// When a tensor cannot be read back as `f32`.
    pub fn export(&self, frame: &ArtifactFrame) -> Result<SequenceArtifact, SequenceTrainError> {
        let channels = self.w_x.dims()[0];
        let [categories, embedding_dim] = self.embedding.dims();
        if categories != frame.categories.len() {
            return Err(SequenceTrainError::Export(format!(
                "{categories} embedding rows for {} category levels",
                frame.categories.len()
            )));
        }
        Ok(SequenceArtifact {
            weeks: frame.weeks,
            channel_names: frame.channel_names.clone(),
            channel_means: frame.channel_means.clone(),
            channel_stds: frame.channel_stds.clone(),
            gru: GruWeights {
                inputs: channels,
                hidden: self.hidden,
                w_x: values(self.w_x.val())?,
                b_x: values(self.b_x.val())?,
                w_h: values(self.w_h.val())?,
                b_h: values(self.b_h.val())?,
            },
            categories: frame.categories.clone(),
            embedding_dim,
            embedding: values(self.embedding.val())?,
            aggregate_names: frame.aggregate_names.clone(),
            aggregate_means: frame.aggregate_means.clone(),
            aggregate_stds: frame.aggregate_stds.clone(),
            aggregate_layer: dense(&self.aggregate)?,
            head: vec![dense(&self.head_hidden)?, dense(&self.head_out)?],
            wide: self.wide.as_ref().map(dense).transpose()?,
        })
    }
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>, SequenceTrainError> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| SequenceTrainError::Export(format!("{e:?}")))
}

fn dense<B: Backend>(l: &Linear<B>) -> Result<Dense, SequenceTrainError> {
    let [inputs, outputs] = l.weight.dims();
    Ok(Dense {
        inputs,
        outputs,
        weights: values(l.weight.val())?,
        bias: match &l.bias {
            Some(b) => values(b.val())?,
            None => vec![0.0; outputs],
        },
    })
}

/// Why training failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceTrainError {
    /// The examples cannot support training (empty, one class, inconsistent widths).
    #[error("insufficient data: {0}")]
    InsufficientData(String),
    /// The weights could not be exported.
    #[error("export failed: {0}")]
    Export(String),
    /// The exported model refused to score.
    #[error("scoring failed: {0}")]
    Score(#[from] sextant_models::ModelError),
}

/// One training or evaluation example.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceExample {
    /// `weeks × channels` raw values, week 0 (most recent) first.
    pub sequence: Vec<f64>,
    /// The static category level (e.g. the country).
    pub category: String,
    /// Raw aggregate features.
    pub aggregates: Vec<f64>,
    /// The label: churned (no purchase in the horizon).
    pub churned: bool,
}

/// Names and widths shared by every example of a set.
#[derive(Debug, Clone, PartialEq)]
pub struct SetLayout {
    /// Weeks per sequence.
    pub weeks: usize,
    /// Channel names.
    pub channel_names: Vec<String>,
    /// Aggregate feature names.
    pub aggregate_names: Vec<String>,
}

/// Everything of the artefact that is not a weight: fitted on the training examples only.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactFrame {
    weeks: usize,
    channel_names: Vec<String>,
    channel_means: Vec<f32>,
    channel_stds: Vec<f32>,
    categories: Vec<String>,
    aggregate_names: Vec<String>,
    aggregate_means: Vec<f32>,
    aggregate_stds: Vec<f32>,
}

impl ArtifactFrame {
    /// Fits the normalisation (mean and std of `log1p` per channel and per aggregate) and the
    /// category vocabulary (levels with at least `min_category_count` training examples, most
    /// frequent first, ties by name; the rest score as unknown) on `train`.
    #[must_use]
    pub fn fit(layout: &SetLayout, train: &[SequenceExample], min_category_count: usize) -> Self {
        let refs: Vec<&SequenceExample> = train.iter().collect();
        Self::fit_refs(layout, &refs, min_category_count)
    }

    /// [`Self::fit`] on borrowed examples.
    #[must_use]
    pub fn fit_refs(
        layout: &SetLayout,
        train: &[&SequenceExample],
        min_category_count: usize,
    ) -> Self {
        let c = layout.channel_names.len();
        let mut sum = vec![0.0f64; c];
        let mut sq = vec![0.0f64; c];
        let mut n = 0.0f64;
        for e in train {
            for week in e.sequence.chunks(c) {
                for ((s, q), v) in sum.iter_mut().zip(sq.iter_mut()).zip(week) {
                    let l = v.max(0.0).ln_1p();
                    *s += l;
                    *q += l * l;
                }
                n += 1.0;
            }
        }
        let n = n.max(1.0);
        let channel_means: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let channel_stds: Vec<f32> = sum
            .iter()
            .zip(&sq)
            .map(|(s, q)| {
                let var = q / n - (s / n).powi(2);
                if var > 1e-12 { var.sqrt() as f32 } else { 1.0 }
            })
            .collect();
        let rows: Vec<Vec<f64>> = train.iter().map(|e| e.aggregates.clone()).collect();
        let (aggregate_means, aggregate_stds) =
            fit_normalisation(&rows, layout.aggregate_names.len());
        let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for e in train {
            *counts.entry(e.category.as_str()).or_default() += 1;
        }
        let mut levels: Vec<(&str, usize)> = counts
            .into_iter()
            .filter(|(_, k)| *k >= min_category_count.max(1))
            .collect();
        levels.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let categories = std::iter::once(UNKNOWN_CATEGORY.to_owned())
            .chain(levels.into_iter().map(|(l, _)| l.to_owned()))
            .collect();
        Self {
            weeks: layout.weeks,
            channel_names: layout.channel_names.clone(),
            channel_means,
            channel_stds,
            categories,
            aggregate_names: layout.aggregate_names.clone(),
            aggregate_means,
            aggregate_stds,
        }
    }

    /// Category levels, the unknown level first.
    #[must_use]
    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// `(log1p(max(x, 0)) − mean) / std` per aggregate, as the artefact computes it.
    fn standardise_aggregates<'a>(&'a self, raw: &'a [f64]) -> impl Iterator<Item = f32> + 'a {
        raw.iter()
            .zip(self.aggregate_means.iter().zip(&self.aggregate_stds))
            .map(|(x, (m, s))| ((x.max(0.0).ln_1p() as f32) - m) / s)
    }

    fn category_index(&self, level: &str) -> usize {
        self.categories
            .iter()
            .skip(1)
            .position(|c| c == level)
            .map_or(0, |i| i + 1)
    }
}

/// Hyper-parameters. Defaults are fixed a priori, not tuned on any test data.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceTrainConfig {
    pub hidden: usize,
    pub embedding_dim: usize,
    pub aggregate_dim: usize,
    pub head_dim: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Most epochs; training stops earlier when the validation AUC has not improved for
    /// `patience` epochs, and the best epoch's weights are kept.
    pub max_epochs: usize,
    pub patience: usize,
    /// Category levels rarer than this in training share the unknown embedding.
    pub min_category_count: usize,
    pub seed: u64,
    /// Threads for scoring the validation set with the exported artefact.
    pub threads: usize,
    /// Wide and deep: add a linear map of the aggregates to the logit, started at the L2 logistic
    /// regression (C = [`Self::wide_c`]) fitted on the training set, with the head's output layer
    /// zeroed, so that training starts from that model and the GRU learns the residual.
    pub wide: bool,
    /// Inverse L2 strength of the logistic regression that starts the wide part.
    pub wide_c: f64,
    /// After choosing the number of epochs on the validation set, train afresh (same seed) on the
    /// training and validation sets together for that many epochs and return that network: the
    /// most recent examples, which the validation set holds out of time, then inform the model.
    pub refit: bool,
    /// Networks trained with seeds `seed, seed + 1, …`, each with its own epoch count chosen on
    /// the validation set, merged into one artefact whose logit is their mean
    /// ([`sextant_models::sequence::merge_members`]). `best_epoch` and `history` describe the
    /// first.
    pub ensemble: usize,
    /// Weight of a pairwise ranking term added to the cross-entropy: the mean over the batch's
    /// (churned, retained) pairs of `−log σ(s_churned − s_retained)`, a smooth surrogate of
    /// 1 − ROC-AUC (0 = cross-entropy only).
    pub rank_weight: f64,
    /// Out-of-time stacking: after the epoch is chosen, a logistic layer on the selected
    /// network's two logits (deep part and wide part, as two features) is fitted on the
    /// validation set, which that network never trained on, and folded into the returned
    /// artefact (the head's output layer scaled by the deep weight, the wide part by the wide
    /// weight, the layer's bias added to the wide bias): how far to trust the recurrent part
    /// over the linear one is learned out of time instead of assumed to be 1 : 1.
    pub stack: bool,
}

impl Default for SequenceTrainConfig {
    fn default() -> Self {
        Self {
            hidden: 32,
            embedding_dim: 4,
            aggregate_dim: 16,
            head_dim: 32,
            batch_size: 128,
            learning_rate: 2e-3,
            max_epochs: 30,
            patience: 5,
            min_category_count: 10,
            seed: 42,
            threads: 2,
            wide: true,
            wide_c: 1.0,
            refit: true,
            ensemble: 1,
            rank_weight: 0.0,
            stack: true,
        }
    }
}

/// Per-epoch record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// ROC-AUC of churn on the validation set.
    pub valid_auc: f64,
}

/// The selected model and how training went.
#[derive(Debug, Clone)]
pub struct TrainedSequence {
    /// The weights of the epoch with the best validation AUC.
    pub artifact: SequenceArtifact,
    pub best_epoch: usize,
    pub history: Vec<EpochRecord>,
    /// With [`SequenceTrainConfig::refit`]: the examples (training and validation) the returned
    /// artefact was trained on for `best_epoch` epochs.
    pub refit_examples: Option<usize>,
    /// Networks (seeds) merged into the artefact (see [`SequenceTrainConfig::ensemble`]).
    pub members: usize,
    /// With [`SequenceTrainConfig::stack`]: the stacking layer folded into the artefact.
    pub stack: Option<StackWeights>,
    /// With [`SequenceTrainConfig::stack`]: the validation ROC-AUC of the selected network(s)
    /// with the stacking layer (fitted on that same set: three parameters).
    pub stack_valid_auc: Option<f64>,
}

/// SplitMix64: a tiny, seeded, platform-independent generator for shuffling.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Tensors of one batch, as [`SequenceChurnNet::forward`] takes them.
#[derive(Debug)]
pub struct Batch<B: Backend> {
    /// `[weeks, batch, channels]`, oldest week first, standardised.
    pub seq: Tensor<B, 3>,
    /// `[batch]` embedding rows.
    pub category: Tensor<B, 1, Int>,
    /// `[batch, aggregates]`, standardised.
    pub aggregates: Tensor<B, 2>,
    /// `[batch, 1]`, 1 = churned.
    pub labels: Tensor<B, 2, Int>,
}

/// Builds the tensors of `examples` with the frame's normalisation and vocabulary.
pub fn batch<B: Backend>(
    frame: &ArtifactFrame,
    examples: &[&SequenceExample],
    device: &B::Device,
) -> Batch<B> {
    let n = examples.len();
    let c = frame.channel_names.len();
    let w = frame.weeks;
    let mut seq = vec![0.0f32; w * n * c];
    for (b, e) in examples.iter().enumerate() {
        for t in 0..w {
            let week = w - 1 - t;
            for ch in 0..c {
                let v = e.sequence[week * c + ch].max(0.0).ln_1p() as f32;
                seq[(t * n + b) * c + ch] = (v - frame.channel_means[ch]) / frame.channel_stds[ch];
            }
        }
    }
    let a = frame.aggregate_names.len();
    let aggs: Vec<f32> = examples
        .iter()
        .flat_map(|e| frame.standardise_aggregates(&e.aggregates))
        .collect();
    let cats: Vec<i64> = examples
        .iter()
        .map(|e| frame.category_index(&e.category) as i64)
        .collect();
    let labels: Vec<i64> = examples.iter().map(|e| i64::from(e.churned)).collect();
    Batch {
        seq: Tensor::from_data(TensorData::new(seq, [w, n, c]), device),
        category: Tensor::from_data(TensorData::new(cats, [n]), device),
        aggregates: Tensor::from_data(TensorData::new(aggs, [n, a]), device),
        labels: Tensor::from_data(TensorData::new(labels, [n, 1]), device),
    }
}

/// Checks that every example fits the layout.
fn check(
    layout: &SetLayout,
    name: &str,
    set: &[SequenceExample],
) -> Result<(), SequenceTrainError> {
    let width = layout.weeks * layout.channel_names.len();
    if let Some(e) = set
        .iter()
        .find(|e| e.sequence.len() != width || e.aggregates.len() != layout.aggregate_names.len())
    {
        return Err(SequenceTrainError::InsufficientData(format!(
            "a {name} example has {} sequence values and {} aggregates; the layout needs {width} and {}",
            e.sequence.len(),
            e.aggregates.len(),
            layout.aggregate_names.len()
        )));
    }
    let positives = set.iter().filter(|e| e.churned).count();
    if positives == 0 || positives == set.len() {
        return Err(SequenceTrainError::InsufficientData(format!(
            "the {name} set ({} examples) does not have both classes",
            set.len()
        )));
    }
    Ok(())
}

/// L2-penalised logistic regression fitted to its optimum by Newton's method (IRLS): minimises
/// `Σ log-loss + ‖w‖² / (2C)` with the bias unpenalised (scikit-learn's `LogisticRegression(C)`).
/// `x` is row-major `rows × width`; returns the weights with the bias last.
///
/// # Errors
/// [`SequenceTrainError::InsufficientData`] for no rows, mismatched shapes, `C ≤ 0` or a
/// singular system.
pub fn fit_logistic(
    x: &[f32],
    width: usize,
    y: &[bool],
    c: f64,
) -> Result<Vec<f64>, SequenceTrainError> {
    let d = width + 1;
    if y.is_empty() || x.len() != y.len() * width || c <= 0.0 {
        return Err(SequenceTrainError::InsufficientData(
            "logistic regression needs rows, matching labels and C > 0".into(),
        ));
    }
    let mut beta = vec![0.0f64; d];
    let mut xi = vec![0.0f64; d];
    for _ in 0..50 {
        let mut grad = vec![0.0f64; d];
        let mut hess = vec![0.0f64; d * d];
        for (row, &yi) in x.chunks_exact(width).zip(y) {
            for (a, b) in xi
                .iter_mut()
                .zip(row.iter().map(|v| f64::from(*v)).chain([1.0]))
            {
                *a = b;
            }
            let z: f64 = xi.iter().zip(&beta).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            let w = (p * (1.0 - p)).max(1e-12);
            let r = p - f64::from(u8::from(yi));
            for j in 0..d {
                grad[j] += r * xi[j];
                for k in 0..d {
                    hess[j * d + k] += w * xi[j] * xi[k];
                }
            }
        }
        for j in 0..width {
            grad[j] += beta[j] / c;
            hess[j * d + j] += 1.0 / c;
        }
        let step = solve(&mut hess, &mut grad, d).ok_or_else(|| {
            SequenceTrainError::InsufficientData("logistic regression: singular Hessian".into())
        })?;
        let mut change = 0.0f64;
        for (b, s) in beta.iter_mut().zip(&step) {
            *b -= s;
            change = change.max(s.abs());
        }
        if change < 1e-10 {
            break;
        }
    }
    Ok(beta)
}

/// Solves `a · s = b` (`a` is `d × d`, row-major) by Gaussian elimination with partial pivoting.
fn solve(a: &mut [f64], b: &mut [f64], d: usize) -> Option<Vec<f64>> {
    for col in 0..d {
        let pivot =
            (col..d).max_by(|&i, &j| a[i * d + col].abs().total_cmp(&a[j * d + col].abs()))?;
        if a[pivot * d + col].abs() < 1e-14 {
            return None;
        }
        for k in 0..d {
            a.swap(col * d + k, pivot * d + k);
        }
        b.swap(col, pivot);
        for row in col + 1..d {
            let f = a[row * d + col] / a[col * d + col];
            for k in col..d {
                a[row * d + k] -= f * a[col * d + k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut s = vec![0.0; d];
    for row in (0..d).rev() {
        let tail: f64 = (row + 1..d).map(|k| a[row * d + k] * s[k]).sum();
        s[row] = (b[row] - tail) / a[row * d + row];
    }
    Some(s)
}

/// Scores examples with an exported artefact (the serving path).
///
/// # Errors
/// When the artefact refuses an example.
pub fn score(
    artifact: &SequenceArtifact,
    examples: &[SequenceExample],
    threads: usize,
) -> Result<Vec<f64>, sextant_models::ModelError> {
    let inputs: Vec<SequenceInput<'_>> = examples
        .iter()
        .map(|e| SequenceInput {
            sequence: &e.sequence,
            category: artifact.category_index(&e.category),
            aggregates: &e.aggregates,
        })
        .collect();
    artifact.predict_batch(&inputs, threads)
}

/// Trains on `train`, selects the epoch by ROC-AUC on `valid`, and returns that epoch's artefact;
/// with [`SequenceTrainConfig::refit`], a network trained afresh on `train` and `valid` together
/// for the selected number of epochs instead. `progress` is called after each epoch of the
/// selection run.
///
/// # Errors
/// [`SequenceTrainError::InsufficientData`] when a set is empty, has one class or does not fit the
/// layout; export or scoring failures otherwise.
pub fn train<B: AutodiffBackend>(
    layout: &SetLayout,
    train: &[SequenceExample],
    valid: &[SequenceExample],
    config: &SequenceTrainConfig,
    device: &B::Device,
    mut progress: impl FnMut(&EpochRecord),
) -> Result<TrainedSequence, SequenceTrainError> {
    check(layout, "training", train)?;
    check(layout, "validation", valid)?;
    let train_refs: Vec<&SequenceExample> = train.iter().collect();
    let all: Vec<&SequenceExample> = train.iter().chain(valid).collect();
    let mut first: Option<(usize, Vec<EpochRecord>)> = None;
    let mut members = Vec::new();
    // The selected (training-set-only) networks, which the stacking layer is fitted on.
    let mut selected_members = Vec::new();
    for k in 0..config.ensemble.max(1) {
        let member_config = SequenceTrainConfig {
            seed: config.seed.wrapping_add(k as u64),
            ..config.clone()
        };
        let selection = run::<B>(
            layout,
            &train_refs,
            Some(valid),
            config.max_epochs.max(1),
            &member_config,
            device,
            &mut progress,
        )?;
        let Some((_, best_epoch, selected)) = selection.best else {
            return Err(SequenceTrainError::InsufficientData("no epoch ran".into()));
        };
        if config.refit {
            members.push(
                run::<B>(
                    layout,
                    &all,
                    None,
                    best_epoch,
                    &member_config,
                    device,
                    &mut |_| {},
                )?
                .last,
            );
            selected_members.push(selected);
        } else {
            selected_members.push(selected.clone());
            members.push(selected);
        }
        first.get_or_insert((best_epoch, selection.history));
    }
    let Some((best_epoch, history)) = first else {
        return Err(SequenceTrainError::InsufficientData(
            "no member trained".into(),
        ));
    };
    let merge = |mut m: Vec<SequenceArtifact>| {
        if m.len() == 1 {
            Ok(m.swap_remove(0))
        } else {
            sextant_models::sequence::merge_members(&m)
        }
    };
    let mut artifact = merge(members)?;
    let (stack, stack_valid_auc) = if config.stack {
        let mut selected = merge(selected_members)?;
        let weights = fit_stack(&selected, valid, config.threads)?;
        apply_stack(&mut artifact, weights)?;
        apply_stack(&mut selected, weights)?;
        let labels: Vec<bool> = valid.iter().map(|e| e.churned).collect();
        let auc = roc_auc(&score(&selected, valid, config.threads)?, &labels);
        (Some(weights), auc)
    } else {
        (None, None)
    };
    Ok(TrainedSequence {
        artifact,
        best_epoch,
        history,
        refit_examples: config.refit.then_some(all.len()),
        members: config.ensemble.max(1),
        stack,
        stack_valid_auc,
    })
}

/// The weights of the stacking layer: `[deep, wide, bias]` (see [`SequenceTrainConfig::stack`]).
pub type StackWeights = [f64; 3];

/// The deep part's and the wide part's logits of each example under `artifact` (the wide logit
/// is 0 without a wide part).
///
/// # Errors
/// When the artefact refuses an example.
pub fn split_logits(
    artifact: &SequenceArtifact,
    examples: &[SequenceExample],
    threads: usize,
) -> Result<Vec<(f64, f64)>, SequenceTrainError> {
    let p = score(artifact, examples, threads)?;
    Ok(p.iter()
        .zip(examples)
        .map(|(p, e)| {
            let p = p.clamp(1e-12, 1.0 - 1e-12);
            let total = (p / (1.0 - p)).ln();
            let wide = artifact.wide.as_ref().map_or(0.0, |w| {
                let z: f64 = e
                    .aggregates
                    .iter()
                    .zip(
                        artifact
                            .aggregate_means
                            .iter()
                            .zip(&artifact.aggregate_stds),
                    )
                    .zip(&w.weights)
                    .map(|((x, (m, sd)), wt)| {
                        f64::from(((x.max(0.0).ln_1p() as f32) - m) / sd) * f64::from(*wt)
                    })
                    .sum();
                z + f64::from(w.bias.first().copied().unwrap_or(0.0))
            });
            (total - wide, wide)
        })
        .collect())
}

/// Fits the stacking layer on `valid` (examples the selected network did not train on): a
/// logistic regression of the label on the deep and wide logits, nearly unpenalised
/// (C = 100: two features, thousands of rows).
fn fit_stack(
    selected: &SequenceArtifact,
    valid: &[SequenceExample],
    threads: usize,
) -> Result<StackWeights, SequenceTrainError> {
    let logits = split_logits(selected, valid, threads)?;
    let y: Vec<bool> = valid.iter().map(|e| e.churned).collect();
    if selected.wide.is_some() {
        let x: Vec<f32> = logits
            .iter()
            .flat_map(|(d, w)| [*d as f32, *w as f32])
            .collect();
        let b = fit_logistic(&x, 2, &y, 100.0)?;
        Ok([b[0], b[1], b[2]])
    } else {
        let x: Vec<f32> = logits.iter().map(|(d, _)| *d as f32).collect();
        let b = fit_logistic(&x, 1, &y, 100.0)?;
        Ok([b[0], 0.0, b[1]])
    }
}

/// Folds the stacking layer into the artefact: the head's output layer scaled by the deep
/// weight, the wide part by the wide weight, the bias added to the wide part's (a wide part with
/// zero weights is added when the artefact has none).
fn apply_stack(
    artifact: &mut SequenceArtifact,
    [deep, wide, bias]: StackWeights,
) -> Result<(), SequenceTrainError> {
    let Some(out) = artifact.head.last_mut() else {
        return Err(SequenceTrainError::Export(
            "the artefact has no head".into(),
        ));
    };
    out.weights.iter_mut().for_each(|w| *w *= deep as f32);
    out.bias.iter_mut().for_each(|b| *b *= deep as f32);
    let inputs = artifact.aggregate_names.len();
    let w = artifact.wide.get_or_insert_with(|| Dense {
        inputs,
        outputs: 1,
        weights: vec![0.0; inputs],
        bias: vec![0.0],
    });
    w.weights.iter_mut().for_each(|v| *v *= wide as f32);
    w.bias
        .iter_mut()
        .for_each(|b| *b = *b * wide as f32 + bias as f32);
    Ok(())
}

/// What one training run produced.
struct Run {
    /// The artefact after the last epoch.
    last: SequenceArtifact,
    history: Vec<EpochRecord>,
    /// With a validation set: (AUC, epoch, artefact) of the best epoch.
    best: Option<(f64, usize, SequenceArtifact)>,
}

/// One seeded training run on `train` from a fresh network (normalisation, vocabulary and the
/// wide part's logistic regression fitted on `train`): `epochs` epochs, or fewer when `valid` is
/// given and its AUC has not improved for `patience` epochs.
fn run<B: AutodiffBackend>(
    layout: &SetLayout,
    train: &[&SequenceExample],
    valid: Option<&[SequenceExample]>,
    epochs: usize,
    config: &SequenceTrainConfig,
    device: &B::Device,
    progress: &mut dyn FnMut(&EpochRecord),
) -> Result<Run, SequenceTrainError> {
    B::seed(device, config.seed);
    let frame = ArtifactFrame::fit_refs(layout, train, config.min_category_count);
    let shape = NetShape {
        channels: layout.channel_names.len(),
        hidden: config.hidden,
        categories: frame.categories.len(),
        embedding_dim: config.embedding_dim,
        aggregates: layout.aggregate_names.len(),
        aggregate_dim: config.aggregate_dim,
        head_dim: config.head_dim,
    };
    let mut model = SequenceChurnNet::<B>::new(shape, device);
    if config.wide {
        let a = layout.aggregate_names.len();
        let x: Vec<f32> = train
            .iter()
            .flat_map(|e| frame.standardise_aggregates(&e.aggregates))
            .collect();
        let y: Vec<bool> = train.iter().map(|e| e.churned).collect();
        let beta = fit_logistic(&x, a, &y, config.wide_c)?;
        let weights: Vec<f32> = beta[..a].iter().map(|v| *v as f32).collect();
        model = model.with_wide(&weights, beta[a] as f32, device);
    }
    let mut optim = AdamConfig::new()
        .with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)))
        .init();
    let loss_fn = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(device);
    let mut rng = SplitMix(config.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let valid_labels: Vec<bool> = valid
        .unwrap_or_default()
        .iter()
        .map(|e| e.churned)
        .collect();
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, SequenceArtifact)> = None;
    for epoch in 1..=epochs {
        rng.shuffle(&mut order);
        let mut total = 0.0;
        let mut batches = 0usize;
        for idx in order.chunks(config.batch_size.max(1)) {
            let examples: Vec<&SequenceExample> = idx.iter().map(|&i| train[i]).collect();
            let b = batch::<B>(&frame, &examples, device);
            let logits = model.forward(b.seq, b.category, b.aggregates);
            let loss = if config.rank_weight > 0.0 {
                let y = b.labels.clone().float();
                let n = examples.len();
                // [n, n]: s_i − s_j, weighted by (i churned) · (j retained).
                let diff = logits.clone() - logits.clone().reshape([1, n]);
                let pairs = y.clone() * (y.ones_like() - y).reshape([1, n]);
                let count = pairs.clone().sum().clamp_min(1.0);
                let rank = (log_sigmoid(diff).neg() * pairs).sum() / count;
                loss_fn.forward(logits, b.labels) + rank.mul_scalar(config.rank_weight)
            } else {
                loss_fn.forward(logits, b.labels)
            };
            total += f64::from(loss.clone().into_scalar().to_f32());
            batches += 1;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(config.learning_rate, model, grads);
        }
        let train_loss = total / batches.max(1) as f64;
        let Some(valid) = valid else {
            history.push(EpochRecord {
                epoch,
                train_loss,
                valid_auc: f64::NAN,
            });
            continue;
        };
        let artifact = model.valid().export(&frame)?;
        let scores = score(&artifact, valid, config.threads)?;
        let valid_auc = roc_auc(&scores, &valid_labels).unwrap_or(0.5);
        let record = EpochRecord {
            epoch,
            train_loss,
            valid_auc,
        };
        progress(&record);
        history.push(record);
        let improved = best.as_ref().is_none_or(|(auc, _, _)| valid_auc > *auc);
        if improved {
            best = Some((valid_auc, epoch, artifact));
        } else if best
            .as_ref()
            .is_some_and(|(_, e, _)| epoch - e >= config.patience.max(1))
        {
            break;
        }
    }
    Ok(Run {
        last: model.valid().export(&frame)?,
        history,
        best,
    })
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, Flex};

    use super::*;

    type B = Autodiff<Flex>;

    fn layout(weeks: usize) -> SetLayout {
        SetLayout {
            weeks,
            channel_names: vec!["orders".into(), "spend".into()],
            aggregate_names: vec!["frequency".into()],
        }
    }

    /// Churn is driven by activity in the most recent weeks (which the aggregate does not show)
    /// and by the category.
    fn synthetic(n: usize, weeks: usize, salt: usize) -> Vec<SequenceExample> {
        (0..n)
            .map(|i| {
                let k = i * 7919 + salt * 104_729;
                let recent_active = !k.is_multiple_of(3);
                let mut seq = vec![0.0; weeks * 2];
                for w in 0..weeks {
                    let active = if w < 3 {
                        recent_active
                    } else {
                        (k >> w).is_multiple_of(2)
                    };
                    if active {
                        seq[w * 2] = 1.0;
                        seq[w * 2 + 1] = 20.0 + (k % 50) as f64;
                    }
                }
                let category = if k.is_multiple_of(5) { "FR" } else { "UK" };
                let noise = (k / 7).is_multiple_of(10);
                SequenceExample {
                    aggregates: vec![seq.iter().step_by(2).sum()],
                    sequence: seq,
                    category: category.into(),
                    churned: (!recent_active || category == "FR") != noise,
                }
            })
            .collect()
    }

    fn small_config() -> SequenceTrainConfig {
        SequenceTrainConfig {
            hidden: 8,
            embedding_dim: 2,
            aggregate_dim: 4,
            head_dim: 8,
            batch_size: 64,
            learning_rate: 1e-2,
            max_epochs: 12,
            patience: 4,
            min_category_count: 1,
            ..SequenceTrainConfig::default()
        }
    }

    #[test]
    fn learns_recent_weeks_and_the_export_agrees_with_burn() -> Result<(), SequenceTrainError> {
        let weeks = 6;
        let train_set = synthetic(600, weeks, 1);
        let valid_set = synthetic(200, weeks, 2);
        let device = Default::default();
        let mut epochs = 0;
        let trained = train::<B>(
            &layout(weeks),
            &train_set,
            &valid_set,
            &small_config(),
            &device,
            |_| epochs += 1,
        )?;
        assert_eq!(epochs, trained.history.len());
        let best = trained
            .history
            .iter()
            .find(|r| r.epoch == trained.best_epoch)
            .map_or(0.0, |r| r.valid_auc);
        assert!(best > 0.85, "validation AUC {best}: {:?}", trained.history);
        let first = trained.history.first().map_or(0.0, |r| r.train_loss);
        let last = trained.history.last().map_or(0.0, |r| r.train_loss);
        assert!(last < first, "loss falls: {first} → {last}");
        trained.artifact.validate()?;
        assert_eq!(trained.artifact.categories[0], UNKNOWN_CATEGORY);

        // Burn's forward pass on the exported weights agrees with the plain-Rust one to 1e-4.
        let a = &trained.artifact;
        let net = load::<Flex>(a, &device);
        let refs: Vec<&SequenceExample> = valid_set.iter().collect();
        let frame = ArtifactFrame {
            weeks: a.weeks,
            channel_names: a.channel_names.clone(),
            channel_means: a.channel_means.clone(),
            channel_stds: a.channel_stds.clone(),
            categories: a.categories.clone(),
            aggregate_names: a.aggregate_names.clone(),
            aggregate_means: a.aggregate_means.clone(),
            aggregate_stds: a.aggregate_stds.clone(),
        };
        let b = batch::<Flex>(&frame, &refs, &device);
        let logits = net.forward(b.seq, b.category, b.aggregates);
        let burn_p: Vec<f32> = sigmoid(logits)
            .into_data()
            .to_vec::<f32>()
            .map_err(|e| SequenceTrainError::Export(format!("{e:?}")))?;
        let plain = score(a, &valid_set, 2)?;
        assert_eq!(burn_p.len(), plain.len());
        let worst = burn_p
            .iter()
            .zip(&plain)
            .map(|(b, p)| (f64::from(*b) - p).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-4, "largest difference {worst}");
        Ok(())
    }

    /// Loads an artefact's weights back into a Burn network.
    fn load<Bk: Backend>(a: &SequenceArtifact, device: &Bk::Device) -> SequenceChurnNet<Bk> {
        let t1 = |v: &[f32]| {
            Param::from_tensor(Tensor::<Bk, 1>::from_data(
                TensorData::new(v.to_vec(), [v.len()]),
                device,
            ))
        };
        let t2 = |v: &[f32], r: usize, c: usize| {
            Param::from_tensor(Tensor::<Bk, 2>::from_data(
                TensorData::new(v.to_vec(), [r, c]),
                device,
            ))
        };
        let lin = |d: &Dense| {
            let mut l = LinearConfig::new(d.inputs, d.outputs).init::<Bk>(device);
            l.weight = t2(&d.weights, d.inputs, d.outputs);
            l.bias = Some(t1(&d.bias));
            l
        };
        let g = &a.gru;
        SequenceChurnNet {
            w_x: t2(&g.w_x, g.inputs, 3 * g.hidden),
            b_x: t1(&g.b_x),
            w_h: t2(&g.w_h, g.hidden, 3 * g.hidden),
            b_h: t1(&g.b_h),
            embedding: t2(&a.embedding, a.categories.len(), a.embedding_dim),
            aggregate: lin(&a.aggregate_layer),
            head_hidden: lin(&a.head[0]),
            head_out: lin(&a.head[1]),
            wide: a.wide.as_ref().map(lin),
            hidden: g.hidden,
        }
    }

    #[test]
    fn the_stacking_layer_is_folded_into_the_artefact_exactly() -> Result<(), SequenceTrainError> {
        let weeks = 6;
        let train_set = synthetic(400, weeks, 1);
        let valid_set = synthetic(200, weeks, 2);
        let device = Default::default();
        let config = SequenceTrainConfig {
            max_epochs: 3,
            rank_weight: 1.0,
            stack: false,
            ..small_config()
        };
        let plain = train::<B>(
            &layout(weeks),
            &train_set,
            &valid_set,
            &config,
            &device,
            |_| {},
        )?;
        assert!(plain.stack.is_none() && plain.stack_valid_auc.is_none());
        let stacked = train::<B>(
            &layout(weeks),
            &train_set,
            &valid_set,
            &SequenceTrainConfig {
                stack: true,
                ..config
            },
            &device,
            |_| {},
        )?;
        // Same seed, same networks: the stacked artefact's logit is deep·a + wide·b + c of the
        // plain one's two logits.
        let Some([a, b, c]) = stacked.stack else {
            panic!("no stacking layer");
        };
        assert!(a.is_finite() && b.is_finite() && c.is_finite());
        let parts = split_logits(&plain.artifact, &valid_set, 2)?;
        let p = score(&stacked.artifact, &valid_set, 2)?;
        for ((d, w), p) in parts.iter().zip(&p) {
            let want = 1.0 / (1.0 + (-(a * d + b * w + c)).exp());
            assert!((want - p).abs() < 1e-4, "{want} vs {p}");
        }
        // The layer is fitted where it is reported: its validation AUC is the stacked scores'.
        assert!(stacked.stack_valid_auc.is_some_and(|auc| auc > 0.5));
        // Without a wide part, the layer is a recalibration of the deep logit: ranks unchanged.
        let deep_only = SequenceTrainConfig {
            wide: false,
            ..config
        };
        let plain = train::<B>(
            &layout(weeks),
            &train_set,
            &valid_set,
            &deep_only,
            &device,
            |_| {},
        )?;
        let stacked = train::<B>(
            &layout(weeks),
            &train_set,
            &valid_set,
            &SequenceTrainConfig {
                stack: true,
                ..deep_only
            },
            &device,
            |_| {},
        )?;
        let labels: Vec<bool> = valid_set.iter().map(|e| e.churned).collect();
        let auc =
            |a: &SequenceArtifact| roc_auc(&score(a, &valid_set, 2).unwrap_or_default(), &labels);
        let (before, after) = (auc(&plain.artifact), auc(&stacked.artifact));
        assert!(
            before.zip(after).is_some_and(|(x, y)| (x - y).abs() < 1e-3),
            "{before:?} {after:?}"
        );
        Ok(())
    }

    #[test]
    fn refuses_sets_it_cannot_learn_from() {
        let weeks = 4;
        let mut one_class = synthetic(50, weeks, 1);
        one_class.iter_mut().for_each(|e| e.churned = true);
        let valid_set = synthetic(50, weeks, 2);
        let device = Default::default();
        let err = train::<B>(
            &layout(weeks),
            &one_class,
            &valid_set,
            &small_config(),
            &device,
            |_| {},
        );
        assert!(
            matches!(err, Err(SequenceTrainError::InsufficientData(_))),
            "{err:?}"
        );
        let mut short = synthetic(50, weeks, 1);
        short[3].sequence.pop();
        let err = train::<B>(
            &layout(weeks),
            &short,
            &valid_set,
            &small_config(),
            &device,
            |_| {},
        );
        assert!(
            matches!(err, Err(SequenceTrainError::InsufficientData(_))),
            "{err:?}"
        );
    }

    #[test]
    fn vocabulary_keeps_frequent_levels_and_shuffling_is_seeded() {
        let mut set = synthetic(40, 2, 3);
        set[0].category = "rare".into();
        let frame = ArtifactFrame::fit(&layout(2), &set, 2);
        assert_eq!(frame.categories()[0], UNKNOWN_CATEGORY);
        assert!(frame.categories().iter().any(|c| c == "UK"));
        assert!(!frame.categories().iter().any(|c| c == "rare"));
        assert_eq!(frame.category_index("rare"), 0);
        let (mut a, mut b) = ((0..20).collect::<Vec<_>>(), (0..20).collect::<Vec<_>>());
        SplitMix(7).shuffle(&mut a);
        SplitMix(7).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..20).collect::<Vec<_>>());
    }
}
