//! The sequence churn model's artefact and its plain-Rust, batched forward pass.
//!
//! Why a hand-written forward pass: the gateway must not link Burn, and a GRU step is small
//! enough (`[batch, hidden] × [hidden, 3·hidden]` plus element-wise gates) that a careful loop is
//! faster than a general tensor library on CPU. The trainer's tests check that this pass agrees
//! with Burn's on the same weights (to 1e-4).
//!
//! # The network
//! ```text
//! weekly sequence [weeks × channels] ── log1p → standardise ── GRU(hidden) ── h_T ─┐
//! static category (e.g. country)     ── embedding(dim) ──────────────────────────┼─ concat ── Dense+ReLU … ── Dense → logit
//! aggregates (RFM)                   ── log1p → standardise ── Dense + ReLU ──────┘
//! ```
//! - The sequence is given **week 0 (most recent) first**, as `sextant_features::sequence` builds
//!   it; the GRU reads it **oldest first**, so the most recent week is the last step and weighs most
//!   in the final state.
//! - GRU equations (PyTorch's and Burn's `reset_after` form), gate blocks packed `[r | z | n]`:
//!   `r = σ(x·Wxr + bxr + h·Whr + bhr)`, `z = σ(x·Wxz + bxz + h·Whz + bhz)`,
//!   `n = tanh(x·Wxn + bxn + r ⊙ (h·Whn + bhn))`, `h' = (1 − z) ⊙ n + z ⊙ h`; `h_0 = 0`.
//! - Matrices are row-major `[inputs][outputs]` (Burn's `Linear` layout).
//!
//! # Speed
//! [`SequenceArtifact::predict_batch`] splits the batch over threads, processes rows in blocks
//! that share each weight row while it is in L1, and evaluates `exp` with a branch-free polynomial
//! so the gate loops vectorise. The kernels run under [`pulp::Arch::dispatch`], which compiles them
//! for AVX2/AVX-512 when the CPU has it (detected at run time) without any `unsafe` here.

use serde::{Deserialize, Serialize};

use crate::artifact::{Dense, ModelError};

/// A GRU layer's weights, gate blocks packed `[r | z | n]` along the output axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GruWeights {
    /// Input width (channels per week).
    pub inputs: usize,
    /// Hidden width.
    pub hidden: usize,
    /// `[inputs][3·hidden]`.
    pub w_x: Vec<f32>,
    /// `[3·hidden]`.
    pub b_x: Vec<f32>,
    /// `[hidden][3·hidden]`.
    pub w_h: Vec<f32>,
    /// `[3·hidden]`.
    pub b_h: Vec<f32>,
}

/// A trained sequence churn model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceArtifact {
    /// Weeks per sequence.
    pub weeks: usize,
    /// Channel names per week (e.g. orders, spend, items, cases).
    pub channel_names: Vec<String>,
    /// Per channel: mean of `log1p(max(x, 0))` over the training sequences.
    pub channel_means: Vec<f32>,
    /// Per channel: its standard deviation (never 0).
    pub channel_stds: Vec<f32>,
    /// The recurrent layer.
    pub gru: GruWeights,
    /// The static category's levels; index 0 is reserved for "unknown / not seen in training".
    pub categories: Vec<String>,
    /// Embedding width.
    pub embedding_dim: usize,
    /// `[categories.len()][embedding_dim]`.
    pub embedding: Vec<f32>,
    /// Aggregate feature names.
    pub aggregate_names: Vec<String>,
    /// Per aggregate: mean of `log1p(max(x, 0))` over the training rows.
    pub aggregate_means: Vec<f32>,
    /// Per aggregate: its standard deviation (never 0).
    pub aggregate_stds: Vec<f32>,
    /// Aggregates → ReLU features.
    pub aggregate_layer: Dense,
    /// On `[h_T | embedding | aggregate features]`: ReLU between layers, the last gives one logit.
    pub head: Vec<Dense>,
}

/// One customer to score.
#[derive(Debug, Clone, Copy)]
pub struct SequenceInput<'a> {
    /// `weeks × channels` raw values, week 0 (most recent) first.
    pub sequence: &'a [f64],
    /// Index into [`SequenceArtifact::categories`] (see [`SequenceArtifact::category_index`]).
    pub category: usize,
    /// Raw aggregate features, in [`SequenceArtifact::aggregate_names`] order.
    pub aggregates: &'a [f64],
}

/// Rows processed together so that each weight row is reused while it sits in L1.
const BLOCK: usize = 8;

impl SequenceArtifact {
    /// Channels per week.
    #[must_use]
    pub fn channels(&self) -> usize {
        self.channel_names.len()
    }

    /// The embedding index of a category level; 0 (unknown) for a level not seen in training.
    #[must_use]
    pub fn category_index(&self, level: &str) -> usize {
        self.categories
            .iter()
            .skip(1)
            .position(|c| c == level)
            .map_or(0, |i| i + 1)
    }

    /// Checks that every shape chains from the inputs to one logit.
    ///
    /// # Errors
    /// [`ModelError::Inconsistent`] naming the first part that does not fit.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |what: &str| Err(ModelError::Inconsistent(what.to_owned()));
        let c = self.channels();
        let g = &self.gru;
        let h3 = 3 * g.hidden;
        if self.weeks == 0 || c == 0 || g.hidden == 0 {
            return bad("weeks, channels and hidden width must be positive");
        }
        if self.channel_means.len() != c || self.channel_stds.len() != c || g.inputs != c {
            return bad("channel normalisation or GRU input width differs from the channels");
        }
        if g.w_x.len() != c * h3
            || g.b_x.len() != h3
            || g.w_h.len() != g.hidden * h3
            || g.b_h.len() != h3
        {
            return bad("GRU weight shapes");
        }
        if self.categories.is_empty()
            || self.embedding.len() != self.categories.len() * self.embedding_dim
        {
            return bad("embedding shape");
        }
        let a = self.aggregate_names.len();
        if self.aggregate_means.len() != a || self.aggregate_stds.len() != a {
            return bad("aggregate normalisation width");
        }
        if !dense_ok(&self.aggregate_layer) || self.aggregate_layer.inputs != a {
            return bad("aggregate layer shape");
        }
        let mut width = g.hidden + self.embedding_dim + self.aggregate_layer.outputs;
        for l in &self.head {
            if !dense_ok(l) || l.inputs != width {
                return bad("head layers do not chain");
            }
            width = l.outputs;
        }
        if self.head.is_empty() || width != 1 {
            return bad("the last head layer must have one output");
        }
        Ok(())
    }

    /// Churn probability of one customer.
    ///
    /// # Errors
    /// As [`Self::predict_batch`].
    pub fn predict(&self, input: &SequenceInput<'_>) -> Result<f64, ModelError> {
        let p = self.predict_batch(std::slice::from_ref(input), 1)?;
        p.first()
            .copied()
            .ok_or_else(|| ModelError::Inconsistent("no output".into()))
    }

    /// Churn probabilities of a batch, computed on up to `threads` threads (at least one).
    ///
    /// # Errors
    /// [`ModelError::Width`] when an input's sequence or aggregates have the wrong length,
    /// [`ModelError::Inconsistent`] for an unknown category index or an invalid artefact.
    pub fn predict_batch(
        &self,
        inputs: &[SequenceInput<'_>],
        threads: usize,
    ) -> Result<Vec<f64>, ModelError> {
        self.validate()?;
        let seq_len = self.weeks * self.channels();
        for x in inputs {
            if x.sequence.len() != seq_len {
                return Err(ModelError::Width {
                    expected: seq_len,
                    got: x.sequence.len(),
                });
            }
            if x.aggregates.len() != self.aggregate_names.len() {
                return Err(ModelError::Width {
                    expected: self.aggregate_names.len(),
                    got: x.aggregates.len(),
                });
            }
            if x.category >= self.categories.len() {
                return Err(ModelError::Inconsistent(format!(
                    "category index {} is outside the {} levels",
                    x.category,
                    self.categories.len()
                )));
            }
        }
        let threads = threads.max(1).min(inputs.len().max(1));
        let mut out = vec![0.0f64; inputs.len()];
        if threads == 1 {
            self.score_chunk(inputs, &mut out);
            return Ok(out);
        }
        // Whole blocks per thread, as even as possible.
        let per = inputs.len().div_ceil(threads).div_ceil(BLOCK) * BLOCK;
        std::thread::scope(|s| {
            for (xs, ys) in inputs.chunks(per).zip(out.chunks_mut(per)) {
                s.spawn(move || self.score_chunk(xs, ys));
            }
        });
        Ok(out)
    }

    /// Scores `inputs` into `out` (same length), block by block, with the kernels compiled for the
    /// best instruction set the CPU has.
    fn score_chunk(&self, inputs: &[SequenceInput<'_>], out: &mut [f64]) {
        pulp::Arch::new().dispatch(Chunk {
            model: self,
            inputs,
            out,
        });
    }

    #[inline(always)]
    fn score_block(&self, xs: &[SequenceInput<'_>], ys: &mut [f64], s: &mut Scratch) {
        let c = self.channels();
        let hd = self.gru.hidden;
        let h3 = 3 * hd;
        let rows = xs.len();
        // Standardised inputs, time-major, oldest week first: x[t][row][channel].
        for (r, input) in xs.iter().enumerate() {
            for t in 0..self.weeks {
                let week = self.weeks - 1 - t;
                for ch in 0..c {
                    let v = input.sequence[week * c + ch].max(0.0).ln_1p() as f32;
                    s.x[(t * BLOCK + r) * c + ch] =
                        (v - self.channel_means[ch]) / self.channel_stds[ch];
                }
            }
        }
        s.h[..rows * hd].iter_mut().for_each(|v| *v = 0.0);
        let g = &self.gru;
        for t in 0..self.weeks {
            // gx = b_x + x_t · W_x ; gh = b_h + h · W_h
            for r in 0..rows {
                let gx = &mut s.gx[r * h3..(r + 1) * h3];
                gx.copy_from_slice(&g.b_x);
                let x = &s.x[(t * BLOCK + r) * c..(t * BLOCK + r + 1) * c];
                for (k, xk) in x.iter().enumerate() {
                    axpy(gx, *xk, &g.w_x[k * h3..(k + 1) * h3]);
                }
                s.gh[r * h3..(r + 1) * h3].copy_from_slice(&g.b_h);
            }
            for k in 0..hd {
                let w = &g.w_h[k * h3..(k + 1) * h3];
                for r in 0..rows {
                    let hk = s.h[r * hd + k];
                    axpy(&mut s.gh[r * h3..(r + 1) * h3], hk, w);
                }
            }
            for r in 0..rows {
                let gx = &s.gx[r * h3..(r + 1) * h3];
                let gh = &s.gh[r * h3..(r + 1) * h3];
                let h = &mut s.h[r * hd..(r + 1) * hd];
                gru_update(h, gx, gh, hd);
            }
        }
        for (r, (input, y)) in xs.iter().zip(ys.iter_mut()).enumerate() {
            let z = &mut s.z;
            z.clear();
            z.extend_from_slice(&s.h[r * hd..(r + 1) * hd]);
            let e = input.category * self.embedding_dim;
            z.extend_from_slice(&self.embedding[e..e + self.embedding_dim]);
            s.a.clear();
            s.a.extend(
                input
                    .aggregates
                    .iter()
                    .zip(self.aggregate_means.iter().zip(&self.aggregate_stds))
                    .map(|(x, (m, sd))| ((x.max(0.0).ln_1p() as f32) - m) / sd),
            );
            dense_into(&self.aggregate_layer, &s.a, &mut s.b);
            z.extend(s.b.iter().map(|v| v.max(0.0)));
            let last = self.head.len() - 1;
            for (i, l) in self.head.iter().enumerate() {
                dense_into(l, z, &mut s.b);
                z.clear();
                if i < last {
                    z.extend(s.b.iter().map(|v| v.max(0.0)));
                } else {
                    z.extend_from_slice(&s.b);
                }
            }
            let logit = f64::from(z.first().copied().unwrap_or(0.0));
            *y = 1.0 / (1.0 + (-logit).exp());
        }
    }
}

/// One thread's share of a batch. A `WithSimd` type rather than a closure: pulp inlines its
/// generic `with_simd` (and every `#[inline(always)]` kernel under it) into a function compiled
/// with the detected target features; a closure body stays a separate, baseline-ISA function.
struct Chunk<'m, 'i, 'o> {
    model: &'m SequenceArtifact,
    inputs: &'i [SequenceInput<'i>],
    out: &'o mut [f64],
}

impl pulp::WithSimd for Chunk<'_, '_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let mut scratch = Scratch::new(self.model);
        for (xs, ys) in self.inputs.chunks(BLOCK).zip(self.out.chunks_mut(BLOCK)) {
            self.model.score_block(xs, ys, &mut scratch);
        }
    }
}

/// Working memory of one thread.
struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    gx: Vec<f32>,
    gh: Vec<f32>,
    z: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
}

impl Scratch {
    fn new(m: &SequenceArtifact) -> Self {
        let h3 = 3 * m.gru.hidden;
        Self {
            x: vec![0.0; m.weeks * BLOCK * m.channels()],
            h: vec![0.0; BLOCK * m.gru.hidden],
            gx: vec![0.0; BLOCK * h3],
            gh: vec![0.0; BLOCK * h3],
            z: Vec::new(),
            a: Vec::new(),
            b: Vec::new(),
        }
    }
}

fn dense_ok(l: &Dense) -> bool {
    l.weights.len() == l.inputs * l.outputs && l.bias.len() == l.outputs
}

/// `y = x · W + b`.
#[inline(always)]
fn dense_into(l: &Dense, x: &[f32], y: &mut Vec<f32>) {
    y.clear();
    y.extend_from_slice(&l.bias);
    for (i, xi) in x.iter().enumerate() {
        axpy(y, *xi, &l.weights[i * l.outputs..(i + 1) * l.outputs]);
    }
}

/// `y += a · x`.
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// One GRU state update from the pre-activations `gx`, `gh` (`[r | z | n]` blocks).
#[inline(always)]
fn gru_update(h: &mut [f32], gx: &[f32], gh: &[f32], hd: usize) {
    let (xr, rest) = gx.split_at(hd);
    let (xz, xn) = rest.split_at(hd);
    let (hr, rest) = gh.split_at(hd);
    let (hz, hn) = rest.split_at(hd);
    for i in 0..hd {
        let r = sigmoid(xr[i] + hr[i]);
        let z = sigmoid(xz[i] + hz[i]);
        let n = tanh(xn[i] + r * hn[i]);
        h[i] = (1.0 - z) * n + z * h[i];
    }
}

/// `e^x` for `f32`, branch-free so loops over it vectorise (Cephes `expf` polynomial, relative
/// error about 2e-7 on the clamped range).
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_6e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n through the exponent bits; n is within [-126, 127] after the clamp.
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + exp(-2.0 * x)) - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense(inputs: usize, outputs: usize, seed: u32) -> Dense {
        Dense {
            inputs,
            outputs,
            weights: pseudo(inputs * outputs, seed),
            bias: pseudo(outputs, seed + 1),
        }
    }

    /// Deterministic values in [-0.5, 0.5).
    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let v = (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed * 97)
                    % 1000;
                v as f32 / 1000.0 - 0.5
            })
            .collect()
    }

    fn model(weeks: usize, hidden: usize) -> SequenceArtifact {
        let c = 2;
        SequenceArtifact {
            weeks,
            channel_names: vec!["orders".into(), "spend".into()],
            channel_means: vec![0.1, 0.5],
            channel_stds: vec![1.0, 2.0],
            gru: GruWeights {
                inputs: c,
                hidden,
                w_x: pseudo(c * 3 * hidden, 1),
                b_x: pseudo(3 * hidden, 2),
                w_h: pseudo(hidden * 3 * hidden, 3),
                b_h: pseudo(3 * hidden, 4),
            },
            categories: vec!["<unknown>".into(), "UK".into(), "FR".into()],
            embedding_dim: 2,
            embedding: pseudo(6, 5),
            aggregate_names: vec!["a".into()],
            aggregate_means: vec![0.0],
            aggregate_stds: vec![1.0],
            aggregate_layer: dense(1, 2, 6),
            head: vec![dense(hidden + 2 + 2, 3, 7), dense(3, 1, 8)],
        }
    }

    /// The equations of the module docs, written out in f64 one customer at a time.
    fn reference(m: &SequenceArtifact, x: &SequenceInput<'_>) -> f64 {
        let c = m.channels();
        let hd = m.gru.hidden;
        let h3 = 3 * hd;
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let mut h = vec![0.0f64; hd];
        for t in 0..m.weeks {
            let week = m.weeks - 1 - t;
            let xt: Vec<f64> = (0..c)
                .map(|ch| {
                    (x.sequence[week * c + ch].max(0.0).ln_1p() - f64::from(m.channel_means[ch]))
                        / f64::from(m.channel_stds[ch])
                })
                .collect();
            let pre = |w: &[f32], b: &[f32], v: &[f64]| -> Vec<f64> {
                (0..h3)
                    .map(|j| {
                        f64::from(b[j])
                            + v.iter()
                                .enumerate()
                                .map(|(k, vk)| vk * f64::from(w[k * h3 + j]))
                                .sum::<f64>()
                    })
                    .collect()
            };
            let gx = pre(&m.gru.w_x, &m.gru.b_x, &xt);
            let gh = pre(&m.gru.w_h, &m.gru.b_h, &h);
            h = (0..hd)
                .map(|i| {
                    let r = sig(gx[i] + gh[i]);
                    let z = sig(gx[hd + i] + gh[hd + i]);
                    let n = (gx[2 * hd + i] + r * gh[2 * hd + i]).tanh();
                    (1.0 - z) * n + z * h[i]
                })
                .collect();
        }
        let lin = |l: &Dense, v: &[f64]| -> Vec<f64> {
            (0..l.outputs)
                .map(|o| {
                    f64::from(l.bias[o])
                        + v.iter()
                            .enumerate()
                            .map(|(i, vi)| vi * f64::from(l.weights[i * l.outputs + o]))
                            .sum::<f64>()
                })
                .collect()
        };
        let mut z = h;
        let e = x.category * m.embedding_dim;
        z.extend(
            m.embedding[e..e + m.embedding_dim]
                .iter()
                .map(|v| f64::from(*v)),
        );
        let a: Vec<f64> = x
            .aggregates
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (v.max(0.0).ln_1p() - f64::from(m.aggregate_means[i]))
                    / f64::from(m.aggregate_stds[i])
            })
            .collect();
        z.extend(lin(&m.aggregate_layer, &a).into_iter().map(|v| v.max(0.0)));
        for (i, l) in m.head.iter().enumerate() {
            z = lin(l, &z);
            if i + 1 < m.head.len() {
                z.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        sig(z[0])
    }

    #[test]
    fn batched_pass_matches_the_equations_on_every_thread_count() -> Result<(), ModelError> {
        let m = model(6, 5);
        m.validate()?;
        let seqs: Vec<Vec<f64>> = (0..21)
            .map(|i| {
                (0..12)
                    .map(|j| ((i * 7 + j * 3) % 11) as f64 * 3.5)
                    .collect()
            })
            .collect();
        let aggs: Vec<Vec<f64>> = (0..21).map(|i| vec![f64::from(i) * 10.0]).collect();
        let inputs: Vec<SequenceInput<'_>> = seqs
            .iter()
            .zip(&aggs)
            .enumerate()
            .map(|(i, (s, a))| SequenceInput {
                sequence: s,
                category: i % 3,
                aggregates: a,
            })
            .collect();
        let want: Vec<f64> = inputs.iter().map(|x| reference(&m, x)).collect();
        for threads in [1, 2, 3, 8] {
            let got = m.predict_batch(&inputs, threads)?;
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "threads {threads}: {g} vs {w}");
            }
        }
        // Different inputs give different scores (the pass is not constant).
        assert!(want.iter().any(|w| (w - want[0]).abs() > 1e-3), "{want:?}");
        assert!((m.predict(&inputs[4])? - want[4]).abs() < 1e-5);
        Ok(())
    }

    #[test]
    fn fast_exp_is_accurate() {
        for i in -800..=800 {
            let x = i as f32 / 10.0;
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            assert!(
                ((got - want) / want).abs() < 1e-6,
                "exp({x}) = {got}, want {want}"
            );
        }
        assert!((tanh(0.0)).abs() < 1e-7 && (sigmoid(0.0) - 0.5).abs() < 1e-7);
        assert!(sigmoid(-200.0) >= 0.0 && sigmoid(200.0) <= 1.0 && tanh(50.0) <= 1.0);
    }

    #[test]
    fn bad_inputs_and_artefacts_are_refused() {
        let m = model(3, 4);
        let seq = vec![0.0; 6];
        let agg = vec![1.0];
        let ok = SequenceInput {
            sequence: &seq,
            category: 1,
            aggregates: &agg,
        };
        assert!(m.predict(&ok).is_ok());
        let short = SequenceInput {
            sequence: &seq[..5],
            ..ok
        };
        assert_eq!(
            m.predict(&short),
            Err(ModelError::Width {
                expected: 6,
                got: 5
            })
        );
        assert!(matches!(
            m.predict(&SequenceInput { category: 3, ..ok }),
            Err(ModelError::Inconsistent(_))
        ));
        assert_eq!(m.category_index("FR"), 2);
        assert_eq!(m.category_index("<unknown>"), 0);
        assert_eq!(m.category_index("DE"), 0);
        let mut broken = m.clone();
        broken.gru.w_h.pop();
        assert!(broken.validate().is_err());
        let mut broken = m;
        broken.head.pop();
        assert!(broken.validate().is_err());
    }
}
