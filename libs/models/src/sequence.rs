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
//! [`SequenceArtifact::predict_batch`] splits the batch over threads (whole blocks each). Inside a
//! thread, a block of customers sits **one customer per SIMD lane** (two vectors of lanes: 16
//! customers with AVX2), so that every gate, `exp` included, is plain vector arithmetic with no
//! shuffles, and every customer of the block advances one week at a time together:
//! - the recurrent weights are repacked once per call into tiles of two hidden units
//!   (`[k][r | z | n][unit]`), and a tile's 2 units × 3 gates × 2 vectors = 12 accumulators stay in
//!   registers over the whole `k` loop (one broadcast weight feeds two FMAs, one loaded hidden
//!   vector feeds six), which is what a GEMM micro-kernel does;
//! - the input projection of a week (4 channels) is folded into the same accumulators for `r` and
//!   `z` (their input and recurrent biases summed), so there is no separate `[weeks, 3h]` pass;
//! - the hidden state is double-buffered in contiguous `f32` vectors (`[unit][lane]`);
//! - `exp` is a branch-free Cephes polynomial written with SIMD operations (2^n from the exponent
//!   bits), so sigmoid and tanh vectorise.
//!
//! The kernels run under [`pulp::Arch::dispatch`], which compiles them for AVX2+FMA when the CPU
//! has it (detected at run time) without any `unsafe` here. A hidden width that is not a multiple
//! of the tile is padded with units whose weights are zero: such a unit's state stays exactly 0.

use pulp::Simd;
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
    /// The "wide" part of a wide-and-deep model: a linear map of the standardised aggregates to
    /// one logit, added to the head's. Absent in artefacts written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wide: Option<Dense>,
}

/// Where an input's GRU run comes from, in [`SequenceArtifact::predict_batch_resumed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunSource {
    /// Its own run over every week.
    Own,
    /// The run of input `j` (an [`RunSource::Own`] input with exactly this sequence).
    Same(usize),
    /// The run of input `leader` (an [`RunSource::Own`] input) for the first `step` steps of the
    /// pass (oldest week first), then its own: its sequence equals the leader's in every week
    /// the pass reads before `step`.
    ResumeAfter { leader: usize, step: usize },
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

/// Hidden units per register tile.
const TILE_UNITS: usize = 2;
/// SIMD vectors of customers per block.
const TILE_VECS: usize = 2;
/// Thread shares are whole multiples of this many customers (a block is 16 with AVX2, 2 on the
/// scalar fallback; 16 is a multiple of both).
const SHARE_ROWS: usize = 16;
/// Cost of one customer-week on the row kernel in customer-weeks (lanes) of the block kernel,
/// measured at hidden width 64 with the ignored test `row_step_cost` (`cargo test --release -p
/// sextant-models --lib row_step_cost -- --ignored --nocapture`; the block kernel keeps its
/// weights in registers, the row kernel loads a weight per multiply-add).
const ROW_STEP_COST: f64 = 1.5;

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
        if let Some(w) = &self.wide
            && (!dense_ok(w) || w.inputs != a || w.outputs != 1)
        {
            return bad("the wide layer must map the aggregates to one logit");
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
        self.check_inputs(inputs)?;
        let mut out = vec![0.0f64; inputs.len()];
        if inputs.is_empty() {
            return Ok(out);
        }
        let packed = Packed::new(&self.gru);
        // Whole shares of SHARE_ROWS customers per thread, as even as possible.
        let per = inputs.len().div_ceil(threads.max(1)).div_ceil(SHARE_ROWS) * SHARE_ROWS;
        if per >= inputs.len() {
            self.score_chunk(&packed, inputs, &mut out);
            return Ok(out);
        }
        std::thread::scope(|s| {
            for (xs, ys) in inputs.chunks(per).zip(out.chunks_mut(per)) {
                let packed = &packed;
                s.spawn(move || self.score_chunk(packed, xs, ys));
            }
        });
        Ok(out)
    }

    /// Probabilities of a batch in which inputs share sequences: `same_sequence_as[i]` is the
    /// index of an input with exactly input `i`'s sequence (itself, or an earlier one that names
    /// itself). The GRU — almost all of the cost — runs once per distinct sequence, and only the
    /// head runs per input: what explanations need, where most variants of a customer change an
    /// aggregate feature and keep the weeks. Equal to [`Self::predict_batch`] on the same inputs.
    ///
    /// # Errors
    /// As [`Self::predict_batch`], and [`ModelError::Inconsistent`] when `same_sequence_as` does
    /// not name, for every input, an input that names itself.
    pub fn predict_batch_shared(
        &self,
        inputs: &[SequenceInput<'_>],
        same_sequence_as: &[usize],
        threads: usize,
    ) -> Result<Vec<f64>, ModelError> {
        if same_sequence_as.len() != inputs.len() {
            return Err(ModelError::Inconsistent(
                "every input must share the sequence of an input that names itself".into(),
            ));
        }
        let sources: Vec<RunSource> = same_sequence_as
            .iter()
            .enumerate()
            .map(|(i, &j)| {
                if i == j {
                    RunSource::Own
                } else {
                    RunSource::Same(j)
                }
            })
            .collect();
        self.predict_batch_resumed(inputs, &sources, threads)
    }

    /// Probabilities of a batch whose inputs reuse each other's GRU runs (see [`RunSource`]):
    /// an input that differs from another only in its more recent weeks resumes that input's
    /// run from the state before the first week that differs, instead of running every week
    /// again. Equal to [`Self::predict_batch`] on the same inputs.
    ///
    /// # Errors
    /// As [`Self::predict_batch`], and [`ModelError::Inconsistent`] when a source names an input
    /// that is not [`RunSource::Own`] or a step past the pass.
    pub fn predict_batch_resumed(
        &self,
        inputs: &[SequenceInput<'_>],
        sources: &[RunSource],
        threads: usize,
    ) -> Result<Vec<f64>, ModelError> {
        self.check_inputs(inputs)?;
        let own = |j: usize| sources.get(j) == Some(&RunSource::Own);
        if sources.len() != inputs.len()
            || sources.iter().any(|s| match *s {
                RunSource::Own => false,
                RunSource::Same(j) => !own(j),
                RunSource::ResumeAfter { leader, step } => !own(leader) || step > self.weeks,
            })
        {
            return Err(ModelError::Inconsistent(
                "every input must reuse the run of an input with its own run, within the pass"
                    .into(),
            ));
        }
        let planned = self.cheaper_sources(sources);
        if self.rows_cheaper(sources, &planned) {
            return Ok(self.run_rows(inputs, sources));
        }
        self.run_resumed(inputs, &planned, threads)
    }

    /// Whether the row kernel ([`Self::run_rows`]) costs less than the block kernel for these
    /// sources. The block kernel runs [`SHARE_ROWS`] customers per block whatever their number
    /// and resumes only where whole blocks are saved ([`Self::cheaper_sources`]); the row kernel
    /// runs each input's own weeks exactly, but a row-step costs [`ROW_STEP_COST`] block
    /// lane-steps. A one-record call (a customer and its few variants of recent weeks) fills a
    /// fraction of a block, so the row kernel wins there; full batches stay on blocks.
    /// `planned` is [`Self::cheaper_sources`] of `sources`: what the block kernel would run.
    fn rows_cheaper(&self, sources: &[RunSource], planned: &[RunSource]) -> bool {
        let w = self.weeks;
        let run = |s: &RunSource| match *s {
            RunSource::Own => w,
            RunSource::Same(_) => 0,
            RunSource::ResumeAfter { step, .. } => w - step,
        };
        let row_steps: usize = sources.iter().map(run).sum();
        let blocks = |n: usize| n.div_ceil(SHARE_ROWS);
        let leaders = planned.iter().filter(|s| **s == RunSource::Own).count();
        let mut block_steps = blocks(leaders) * w;
        let mut steps: Vec<usize> = planned
            .iter()
            .filter_map(|s| match *s {
                RunSource::ResumeAfter { step, .. } => Some(step),
                _ => None,
            })
            .collect();
        steps.sort_unstable();
        let mut k = 0;
        while k < steps.len() {
            let step = steps[k];
            let n = steps[k..].iter().take_while(|s| **s == step).count();
            block_steps += blocks(n) * (w - step);
            k += n;
        }
        (row_steps as f64) * ROW_STEP_COST < (block_steps * SHARE_ROWS) as f64
    }

    /// [`Self::predict_batch_resumed`] on checked inputs and sources with the row kernel, on
    /// this thread: every resumption exact, no lane idle.
    fn run_rows(&self, inputs: &[SequenceInput<'_>], sources: &[RunSource]) -> Vec<f64> {
        let hd = self.gru.hidden;
        let packed = RowPacked::new(&self.gru);
        let mut states = vec![0.0f32; inputs.len() * hd];
        pulp::Arch::new().dispatch(RowRun {
            model: self,
            packed: &packed,
            inputs,
            sources,
            states: &mut states,
        });
        let mut head = HeadScratch::default();
        inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let j = match sources[i] {
                    RunSource::Same(j) => j,
                    _ => i,
                };
                self.head_probability(&states[j * hd..(j + 1) * hd], input, &mut head)
            })
            .collect()
    }

    /// [`Self::predict_batch_resumed`] on checked inputs and sources, every resumption taken as
    /// given.
    fn run_resumed(
        &self,
        inputs: &[SequenceInput<'_>],
        sources: &[RunSource],
        threads: usize,
    ) -> Result<Vec<f64>, ModelError> {
        let own = |j: usize| sources.get(j) == Some(&RunSource::Own);
        let hd = self.gru.hidden;
        let packed = Packed::new(&self.gru);
        let leaders: Vec<usize> = (0..inputs.len()).filter(|&i| own(i)).collect();
        let mut slot = vec![usize::MAX; inputs.len()];
        for (k, &i) in leaders.iter().enumerate() {
            slot[i] = k;
        }
        let mut steps: Vec<usize> = sources
            .iter()
            .filter_map(|s| match *s {
                RunSource::ResumeAfter { step, .. } => Some(step),
                _ => None,
            })
            .collect();
        steps.sort_unstable();
        steps.dedup();
        let lead_inputs: Vec<SequenceInput<'_>> = leaders.iter().map(|&i| inputs[i]).collect();
        let (lead_states, captured) =
            self.run_states(&packed, &lead_inputs, 0, None, &steps, threads);
        // Per step: the inputs that resume there, from their leaders' states then.
        let mut resumed: Vec<(usize, usize)> = vec![(usize::MAX, 0); inputs.len()];
        let mut follow_states: Vec<Vec<f32>> = Vec::with_capacity(steps.len());
        for (k, &step) in steps.iter().enumerate() {
            let followers: Vec<usize> = (0..inputs.len())
                .filter(
                    |&i| matches!(sources[i], RunSource::ResumeAfter { step: s, .. } if s == step),
                )
                .collect();
            let mut init = Vec::with_capacity(followers.len() * hd);
            for &i in &followers {
                if let RunSource::ResumeAfter { leader, .. } = sources[i] {
                    let at = (slot[leader] * steps.len() + k) * hd;
                    init.extend_from_slice(&captured[at..at + hd]);
                }
            }
            let xs: Vec<SequenceInput<'_>> = followers.iter().map(|&i| inputs[i]).collect();
            let (finals, _) = self.run_states(&packed, &xs, step, Some(&init), &[], threads);
            for (n, &i) in followers.iter().enumerate() {
                resumed[i] = (k, n);
            }
            follow_states.push(finals);
        }
        let mut head = HeadScratch::default();
        Ok(inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let state = match sources[i] {
                    RunSource::Own => &lead_states[slot[i] * hd..(slot[i] + 1) * hd],
                    RunSource::Same(j) => &lead_states[slot[j] * hd..(slot[j] + 1) * hd],
                    RunSource::ResumeAfter { .. } => {
                        let (k, n) = resumed[i];
                        &follow_states[k][n * hd..(n + 1) * hd]
                    }
                };
                self.head_probability(state, input, &mut head)
            })
            .collect())
    }

    /// `sources` with the resumptions that would cost more than running in the full pass turned
    /// into full runs (costed in blocks of [`SHARE_ROWS`] customers, the kernel's block on AVX2;
    /// wider units only move the break-even). The kernel runs customers in whole blocks whatever
    /// their number, so a few customers resuming at one step cost a whole block for the rest of the
    /// pass, while they could have filled the leaders' last block for free.
    fn cheaper_sources(&self, sources: &[RunSource]) -> Vec<RunSource> {
        let blocks = |n: usize| n.div_ceil(SHARE_ROWS);
        let mut out = sources.to_vec();
        let mut leaders = out.iter().filter(|s| **s == RunSource::Own).count();
        let mut steps: Vec<usize> = out
            .iter()
            .filter_map(|s| match *s {
                RunSource::ResumeAfter { step, .. } => Some(step),
                _ => None,
            })
            .collect();
        steps.sort_unstable();
        steps.dedup();
        // Latest steps first: the shortest resumptions gain least from running apart.
        for &step in steps.iter().rev() {
            let n = out
                .iter()
                .filter(|s| matches!(s, RunSource::ResumeAfter { step: t, .. } if *t == step))
                .count();
            let apart = blocks(n) * (self.weeks - step);
            let joined = (blocks(leaders + n) - blocks(leaders)) * self.weeks;
            if joined <= apart {
                for s in &mut out {
                    if matches!(s, RunSource::ResumeAfter { step: t, .. } if *t == step) {
                        *s = RunSource::Own;
                    }
                }
                leaders += n;
            }
        }
        out
    }

    /// Final GRU states of `inputs` (`hidden` values each), the pass starting at `start` from
    /// `init` (zeros when `None`), and the states before each step of `capture` (ascending):
    /// `[input][capture][hidden]`. Split over up to `threads` threads.
    fn run_states(
        &self,
        packed: &Packed,
        inputs: &[SequenceInput<'_>],
        start: usize,
        init: Option<&[f32]>,
        capture: &[usize],
        threads: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let hd = self.gru.hidden;
        let nc = capture.len();
        let mut finals = vec![0.0f32; inputs.len() * hd];
        let mut captured = vec![0.0f32; inputs.len() * nc * hd];
        if inputs.is_empty() {
            return (finals, captured);
        }
        let per = inputs.len().div_ceil(threads.max(1)).div_ceil(SHARE_ROWS) * SHARE_ROWS;
        if per >= inputs.len() {
            // One share: no thread to start (a one-record call must not pay for one).
            pulp::Arch::new().dispatch(StateChunk {
                model: self,
                packed,
                inputs,
                start,
                init,
                capture,
                captured: &mut captured,
                states: &mut finals,
            });
            return (finals, captured);
        }
        std::thread::scope(|s| {
            let mut caps = captured.chunks_mut((per * nc * hd).max(1));
            for (n, (xs, hs)) in inputs
                .chunks(per)
                .zip(finals.chunks_mut(per * hd))
                .enumerate()
            {
                let cap: &mut [f32] = if nc == 0 {
                    &mut []
                } else {
                    caps.next().unwrap_or_default()
                };
                let init = init.map(|v| &v[n * per * hd..(n * per + xs.len()) * hd]);
                s.spawn(move || {
                    pulp::Arch::new().dispatch(StateChunk {
                        model: self,
                        packed,
                        inputs: xs,
                        start,
                        init,
                        capture,
                        captured: cap,
                        states: hs,
                    });
                });
            }
        });
        (finals, captured)
    }

    /// Checks a batch against the artefact.
    fn check_inputs(&self, inputs: &[SequenceInput<'_>]) -> Result<(), ModelError> {
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
        Ok(())
    }

    /// Scores `inputs` into `out` (same length), block by block, with the kernels compiled for the
    /// best instruction set the CPU has.
    fn score_chunk(&self, packed: &Packed, inputs: &[SequenceInput<'_>], out: &mut [f64]) {
        pulp::Arch::new().dispatch(Chunk {
            model: self,
            packed,
            inputs,
            out,
        });
    }

    /// The head (embedding, aggregate layer, dense layers, wide part) of one customer whose final
    /// hidden state is `h`: its churn probability.
    #[inline(always)]
    fn head_probability(&self, h: &[f32], input: &SequenceInput<'_>, s: &mut HeadScratch) -> f64 {
        let z = &mut s.z;
        z.clear();
        z.extend_from_slice(h);
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
        let mut logit = f64::from(z.first().copied().unwrap_or(0.0));
        if let Some(w) = &self.wide {
            dense_into(w, &s.a, &mut s.b);
            logit += f64::from(s.b.first().copied().unwrap_or(0.0));
        }
        1.0 / (1.0 + (-logit).exp())
    }
}

/// Several networks with the same inputs (normalisation, vocabulary, aggregates, head depth)
/// merged into **one** artefact whose logit is the mean of theirs: an ensemble the serving pass
/// scores as a single, wider network.
///
/// Exact, because a GRU unit depends on the other units only through `W_h`: the members' GRUs
/// side by side with a block-diagonal `W_h` are the members' GRUs. Embeddings and aggregate
/// layers are concatenated, each hidden head layer is block-diagonal over the members' blocks,
/// and the last layer (and the wide part) is the members' divided by their number.
///
/// # Errors
/// [`ModelError::Inconsistent`] for no members, an invalid member, or members whose inputs or
/// head depth differ.
pub fn merge_members(members: &[SequenceArtifact]) -> Result<SequenceArtifact, ModelError> {
    let bad = |what: &str| Err(ModelError::Inconsistent(what.to_owned()));
    let Some(first) = members.first() else {
        return bad("an ensemble needs at least one member");
    };
    for m in members {
        m.validate()?;
        if m.weeks != first.weeks
            || m.channel_names != first.channel_names
            || m.channel_means != first.channel_means
            || m.channel_stds != first.channel_stds
            || m.categories != first.categories
            || m.aggregate_names != first.aggregate_names
            || m.aggregate_means != first.aggregate_means
            || m.aggregate_stds != first.aggregate_stds
            || m.head.len() != first.head.len()
            || m.wide.is_some() != first.wide.is_some()
        {
            return bad("ensemble members differ in their inputs or head depth");
        }
    }
    let k = members.len() as f32;
    let c = first.channels();
    let hidden: usize = members.iter().map(|m| m.gru.hidden).sum();
    let h3 = 3 * hidden;
    // Unit offset of each member in the merged GRU.
    let offsets: Vec<usize> = members
        .iter()
        .scan(0, |o, m| {
            let at = *o;
            *o += m.gru.hidden;
            Some(at)
        })
        .collect();
    let mut w_x = vec![0.0f32; c * h3];
    let mut b_x = vec![0.0f32; h3];
    let mut w_h = vec![0.0f32; hidden * h3];
    let mut b_h = vec![0.0f32; h3];
    for (m, &o) in members.iter().zip(&offsets) {
        let hd = m.gru.hidden;
        for gate in 0..3 {
            for u in 0..hd {
                let (src, dst) = (gate * hd + u, gate * hidden + o + u);
                for ch in 0..c {
                    w_x[ch * h3 + dst] = m.gru.w_x[ch * 3 * hd + src];
                }
                b_x[dst] = m.gru.b_x[src];
                b_h[dst] = m.gru.b_h[src];
                for kk in 0..hd {
                    w_h[(o + kk) * h3 + dst] = m.gru.w_h[kk * 3 * hd + src];
                }
            }
        }
    }
    // Embedding rows and aggregate layers side by side.
    let embedding_dim: usize = members.iter().map(|m| m.embedding_dim).sum();
    let mut embedding = Vec::with_capacity(first.categories.len() * embedding_dim);
    for level in 0..first.categories.len() {
        for m in members {
            let e = m.embedding_dim;
            embedding.extend_from_slice(&m.embedding[level * e..(level + 1) * e]);
        }
    }
    let aggregate_layer = side_by_side(
        &members
            .iter()
            .map(|m| &m.aggregate_layer)
            .collect::<Vec<_>>(),
    );
    // The head's input is [h | embedding | aggregate features]; each member's block of each
    // part feeds only that member's first head layer.
    let mut input_blocks: Vec<Vec<(usize, usize)>> = Vec::new(); // per member: (merged row, member row)
    let (mut e_at, mut a_at) = (hidden, hidden + embedding_dim);
    for (m, &o) in members.iter().zip(&offsets) {
        let mut rows = Vec::new();
        let hd = m.gru.hidden;
        rows.extend((0..hd).map(|i| (o + i, i)));
        rows.extend((0..m.embedding_dim).map(|i| (e_at + i, hd + i)));
        rows.extend((0..m.aggregate_layer.outputs).map(|i| (a_at + i, hd + m.embedding_dim + i)));
        e_at += m.embedding_dim;
        a_at += m.aggregate_layer.outputs;
        input_blocks.push(rows);
    }
    let depth = first.head.len();
    let mut head = Vec::with_capacity(depth);
    for layer in 0..depth {
        let last = layer + 1 == depth;
        let outputs = if last {
            1
        } else {
            members.iter().map(|m| m.head[layer].outputs).sum()
        };
        let inputs = if layer == 0 {
            hidden + embedding_dim + aggregate_layer.outputs
        } else {
            members.iter().map(|m| m.head[layer - 1].outputs).sum()
        };
        let mut weights = vec![0.0f32; inputs * outputs];
        let mut bias = vec![0.0f32; outputs];
        let (mut in_at, mut out_at) = (0usize, 0usize);
        for (mi, m) in members.iter().enumerate() {
            let l = &m.head[layer];
            let rows: Vec<(usize, usize)> = if layer == 0 {
                input_blocks[mi].clone()
            } else {
                (0..l.inputs).map(|i| (in_at + i, i)).collect()
            };
            for (merged, own) in rows {
                for o in 0..l.outputs {
                    let w = l.weights[own * l.outputs + o];
                    if last {
                        weights[merged * outputs] += w / k;
                    } else {
                        weights[merged * outputs + out_at + o] = w;
                    }
                }
            }
            for o in 0..l.outputs {
                if last {
                    bias[0] += l.bias[o] / k;
                } else {
                    bias[out_at + o] = l.bias[o];
                }
            }
            in_at += l.inputs;
            out_at += l.outputs;
        }
        head.push(Dense {
            inputs,
            outputs,
            weights,
            bias,
        });
    }
    let wide = first.wide.as_ref().map(|w| {
        let mut merged = Dense {
            inputs: w.inputs,
            outputs: 1,
            weights: vec![0.0; w.inputs],
            bias: vec![0.0],
        };
        for m in members {
            if let Some(mw) = &m.wide {
                for (a, b) in merged.weights.iter_mut().zip(&mw.weights) {
                    *a += b / k;
                }
                merged.bias[0] += mw.bias[0] / k;
            }
        }
        merged
    });
    let merged = SequenceArtifact {
        weeks: first.weeks,
        channel_names: first.channel_names.clone(),
        channel_means: first.channel_means.clone(),
        channel_stds: first.channel_stds.clone(),
        gru: GruWeights {
            inputs: c,
            hidden,
            w_x,
            b_x,
            w_h,
            b_h,
        },
        categories: first.categories.clone(),
        embedding_dim,
        embedding,
        aggregate_names: first.aggregate_names.clone(),
        aggregate_means: first.aggregate_means.clone(),
        aggregate_stds: first.aggregate_stds.clone(),
        aggregate_layer,
        head,
        wide,
    };
    merged.validate()?;
    Ok(merged)
}

/// Dense layers on the same input, outputs concatenated.
fn side_by_side(layers: &[&Dense]) -> Dense {
    let inputs = layers.first().map_or(0, |l| l.inputs);
    let outputs: usize = layers.iter().map(|l| l.outputs).sum();
    let mut weights = Vec::with_capacity(inputs * outputs);
    for i in 0..inputs {
        for l in layers {
            weights.extend_from_slice(&l.weights[i * l.outputs..(i + 1) * l.outputs]);
        }
    }
    Dense {
        inputs,
        outputs,
        weights,
        bias: layers.iter().flat_map(|l| l.bias.iter().copied()).collect(),
    }
}

/// The GRU's weights rearranged for the kernel, hidden width padded to whole tiles.
#[derive(Debug)]
struct Packed {
    /// Real hidden width.
    hidden: usize,
    /// Padded hidden width (a multiple of [`TILE_UNITS`]).
    padded: usize,
    channels: usize,
    /// `[tile][k < padded][gate r, z, n][unit < TILE_UNITS]`.
    w_h: Vec<f32>,
    /// `[tile][channel][gate r, z, n][unit < TILE_UNITS]`.
    w_x: Vec<f32>,
    /// `[tile][gate r, z][unit]`: input and recurrent biases summed.
    b_rz: Vec<f32>,
    /// `[padded]`: input bias of the candidate gate.
    b_xn: Vec<f32>,
    /// `[padded]`: recurrent bias of the candidate gate (inside `r ⊙ (…)`).
    b_hn: Vec<f32>,
}

impl Packed {
    fn new(g: &GruWeights) -> Self {
        let hd = g.hidden;
        let h3 = 3 * hd;
        let padded = hd.div_ceil(TILE_UNITS) * TILE_UNITS;
        let tiles = padded / TILE_UNITS;
        let c = g.inputs;
        let unit = |t: usize, i: usize| {
            let u = t * TILE_UNITS + i;
            (u < hd).then_some(u)
        };
        let mut w_h = Vec::with_capacity(tiles * padded * 3 * TILE_UNITS);
        let mut w_x = Vec::with_capacity(tiles * c * 3 * TILE_UNITS);
        let mut b_rz = Vec::with_capacity(tiles * 2 * TILE_UNITS);
        for t in 0..tiles {
            for k in 0..padded {
                for gate in 0..3 {
                    for i in 0..TILE_UNITS {
                        w_h.push(match unit(t, i) {
                            Some(u) if k < hd => g.w_h[k * h3 + gate * hd + u],
                            _ => 0.0,
                        });
                    }
                }
            }
            for ch in 0..c {
                for gate in 0..3 {
                    for i in 0..TILE_UNITS {
                        w_x.push(unit(t, i).map_or(0.0, |u| g.w_x[ch * h3 + gate * hd + u]));
                    }
                }
            }
            for gate in 0..2 {
                for i in 0..TILE_UNITS {
                    b_rz.push(
                        unit(t, i).map_or(0.0, |u| g.b_x[gate * hd + u] + g.b_h[gate * hd + u]),
                    );
                }
            }
        }
        let padded_bias = |b: &[f32]| -> Vec<f32> {
            (0..padded)
                .map(|u| if u < hd { b[2 * hd + u] } else { 0.0 })
                .collect()
        };
        Self {
            hidden: hd,
            padded,
            channels: c,
            w_h,
            w_x,
            b_rz,
            b_xn: padded_bias(&g.b_x),
            b_hn: padded_bias(&g.b_h),
        }
    }
}

/// One thread's share of a batch. A `WithSimd` type rather than a closure: pulp inlines its
/// generic `with_simd` (and every `#[inline(always)]` kernel under it) into a function compiled
/// with the detected target features; a closure body stays a separate, baseline-ISA function.
struct Chunk<'m, 'p, 'i, 'o> {
    model: &'m SequenceArtifact,
    packed: &'p Packed,
    inputs: &'i [SequenceInput<'i>],
    out: &'o mut [f64],
}

/// Per-customer working memory of the head.
#[derive(Default)]
struct HeadScratch {
    z: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    h: Vec<f32>,
}

impl pulp::WithSimd for Chunk<'_, '_, '_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let m = self.model;
        let p = self.packed;
        let lanes = S::F32_LANES;
        let rows = lanes * TILE_VECS;
        let c = p.channels;
        // x: [week][channel][vector][lane]; h, h_next: [unit][vector][lane].
        let mut x = vec![0.0f32; m.weeks * c * rows];
        let mut h = vec![0.0f32; p.padded * rows];
        let mut h_next = vec![0.0f32; p.padded * rows];
        let mut head = HeadScratch::default();
        for (xs, ys) in self.inputs.chunks(rows).zip(self.out.chunks_mut(rows)) {
            fill_inputs(m, xs, rows, &mut x);
            h.iter_mut().for_each(|v| *v = 0.0);
            for t in 0..m.weeks {
                let xt = &x[t * c * rows..(t + 1) * c * rows];
                gru_step(simd, p, xt, &h, &mut h_next);
                std::mem::swap(&mut h, &mut h_next);
            }
            for (r, (input, y)) in xs.iter().zip(ys.iter_mut()).enumerate() {
                let mut state = std::mem::take(&mut head.h);
                state.clear();
                state.extend((0..p.hidden).map(|u| h[u * rows + r]));
                *y = m.head_probability(&state, input, &mut head);
                head.h = state;
            }
        }
    }
}

/// One thread's share of the distinct sequences of a batch: their final GRU states
/// (`states`: `hidden` values per input), for [`SequenceArtifact::predict_batch_shared`].
struct StateChunk<'m, 'p, 'i, 'o> {
    model: &'m SequenceArtifact,
    packed: &'p Packed,
    inputs: &'i [SequenceInput<'i>],
    /// The first step of the pass (0: the oldest week).
    start: usize,
    /// The state before `start` of each input (`hidden` values each); zeros when `None`.
    init: Option<&'i [f32]>,
    /// Steps (ascending) before which the state is saved into `captured`.
    capture: &'i [usize],
    captured: &'o mut [f32],
    states: &'o mut [f32],
}

impl pulp::WithSimd for StateChunk<'_, '_, '_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let m = self.model;
        let p = self.packed;
        let rows = S::F32_LANES * TILE_VECS;
        let c = p.channels;
        let hd = p.hidden;
        let mut x = vec![0.0f32; m.weeks * c * rows];
        let mut h = vec![0.0f32; p.padded * rows];
        let mut h_next = vec![0.0f32; p.padded * rows];
        let nc = self.capture.len();
        for (b, (xs, hs)) in self
            .inputs
            .chunks(rows)
            .zip(self.states.chunks_mut(rows * hd))
            .enumerate()
        {
            fill_inputs(m, xs, rows, &mut x);
            h.iter_mut().for_each(|v| *v = 0.0);
            if let Some(init) = self.init {
                for r in 0..xs.len() {
                    let g = b * rows + r;
                    for u in 0..hd {
                        h[u * rows + r] = init[g * hd + u];
                    }
                }
            }
            let mut k = 0;
            for t in self.start..m.weeks {
                while k < nc && self.capture[k] <= t {
                    save_state(&h, rows, hd, xs.len(), b * rows, nc, k, self.captured);
                    k += 1;
                }
                let xt = &x[t * c * rows..(t + 1) * c * rows];
                gru_step(simd, p, xt, &h, &mut h_next);
                std::mem::swap(&mut h, &mut h_next);
            }
            while k < nc {
                save_state(&h, rows, hd, xs.len(), b * rows, nc, k, self.captured);
                k += 1;
            }
            for (r, state) in hs.chunks_mut(hd).enumerate().take(xs.len()) {
                for (u, v) in state.iter_mut().enumerate() {
                    *v = h[u * rows + r];
                }
            }
        }
    }
}

/// Copies the block's states (`[unit][row]`, `n` rows from input `first`) into `captured`
/// (`[input][capture][hidden]`) as capture `k` of `nc`.
#[inline(always)]
#[expect(
    clippy::too_many_arguments,
    reason = "a kernel helper inlined into the SIMD loop; a struct would add a copy"
)]
fn save_state(
    h: &[f32],
    rows: usize,
    hd: usize,
    n: usize,
    first: usize,
    nc: usize,
    k: usize,
    captured: &mut [f32],
) {
    for r in 0..n {
        let at = ((first + r) * nc + k) * hd;
        for u in 0..hd {
            captured[at + u] = h[u * rows + r];
        }
    }
}

/// Standardised inputs of a block, oldest week first, one customer per lane; lanes past the
/// block's customers are zero (their outputs are not read).
#[inline(always)]
fn fill_inputs(m: &SequenceArtifact, xs: &[SequenceInput<'_>], rows: usize, x: &mut [f32]) {
    let c = m.channels();
    if xs.len() < rows {
        x.iter_mut().for_each(|v| *v = 0.0);
    }
    // log1p(0) standardised, per channel: most weeks of most customers are empty.
    let zero: Vec<f32> = (0..c)
        .map(|ch| -m.channel_means[ch] / m.channel_stds[ch])
        .collect();
    for (r, input) in xs.iter().enumerate() {
        for t in 0..m.weeks {
            let week = m.weeks - 1 - t;
            let raw = &input.sequence[week * c..(week + 1) * c];
            for (ch, v) in raw.iter().enumerate() {
                x[(t * c + ch) * rows + r] = if *v > 0.0 {
                    ((v.ln_1p() as f32) - m.channel_means[ch]) / m.channel_stds[ch]
                } else {
                    zero[ch]
                };
            }
        }
    }
}

/// One week of the GRU for a block: `h_next` from `h` and the week's inputs `xt`
/// (`[channel][vector][lane]`).
#[inline(always)]
fn gru_step<S: Simd>(simd: S, p: &Packed, xt: &[f32], h: &[f32], h_next: &mut [f32]) {
    const TU: usize = TILE_UNITS;
    const TV: usize = TILE_VECS;
    let (xt, _) = S::as_simd_f32s(xt);
    let (hv, _) = S::as_simd_f32s(h);
    let (hn_out, _) = S::as_mut_simd_f32s(h_next);
    let c = p.channels;
    let per_k = 3 * TU;
    let zero = simd.splat_f32s(0.0);
    for tile in 0..p.padded / TU {
        let mut acc_r = [[zero; TU]; TV];
        let mut acc_z = [[zero; TU]; TV];
        let mut acc_n = [[zero; TU]; TV];
        let b_rz = &p.b_rz[tile * 2 * TU..(tile + 1) * 2 * TU];
        for i in 0..TU {
            let br = simd.splat_f32s(b_rz[i]);
            let bz = simd.splat_f32s(b_rz[TU + i]);
            let bn = simd.splat_f32s(p.b_hn[tile * TU + i]);
            for v in 0..TV {
                acc_r[v][i] = br;
                acc_z[v][i] = bz;
                acc_n[v][i] = bn;
            }
        }
        let wx = &p.w_x[tile * c * per_k..(tile + 1) * c * per_k];
        for ch in 0..c {
            let w = &wx[ch * per_k..(ch + 1) * per_k];
            for v in 0..TV {
                let xv = xt[ch * TV + v];
                for i in 0..TU {
                    acc_r[v][i] = simd.mul_add_e_f32s(simd.splat_f32s(w[i]), xv, acc_r[v][i]);
                    acc_z[v][i] = simd.mul_add_e_f32s(simd.splat_f32s(w[TU + i]), xv, acc_z[v][i]);
                }
            }
        }
        let wh = &p.w_h[tile * p.padded * per_k..(tile + 1) * p.padded * per_k];
        for (w, hk) in wh.chunks_exact(per_k).zip(hv.chunks_exact(TV)) {
            for i in 0..TU {
                let wr = simd.splat_f32s(w[i]);
                let wz = simd.splat_f32s(w[TU + i]);
                let wn = simd.splat_f32s(w[2 * TU + i]);
                for v in 0..TV {
                    acc_r[v][i] = simd.mul_add_e_f32s(wr, hk[v], acc_r[v][i]);
                    acc_z[v][i] = simd.mul_add_e_f32s(wz, hk[v], acc_z[v][i]);
                    acc_n[v][i] = simd.mul_add_e_f32s(wn, hk[v], acc_n[v][i]);
                }
            }
        }
        let one = simd.splat_f32s(1.0);
        for i in 0..TU {
            let u = tile * TU + i;
            for v in 0..TV {
                let mut xn = simd.splat_f32s(p.b_xn[u]);
                for ch in 0..c {
                    let w = simd.splat_f32s(wx[ch * per_k + 2 * TU + i]);
                    xn = simd.mul_add_e_f32s(w, xt[ch * TV + v], xn);
                }
                let r = sigmoid_s(simd, acc_r[v][i], one);
                let z = sigmoid_s(simd, acc_z[v][i], one);
                let n = tanh_s(simd, simd.mul_add_e_f32s(r, acc_n[v][i], xn), one);
                // h' = (1 − z) ⊙ n + z ⊙ h = n + z ⊙ (h − n)
                let prev = hv[u * TV + v];
                hn_out[u * TV + v] = simd.mul_add_e_f32s(z, simd.sub_f32s(prev, n), n);
            }
        }
    }
}

/// Units per gate in [`RowPacked`] are padded to a multiple of this (a whole number of SIMD
/// vectors at every width pulp dispatches to).
const ROW_PAD: usize = 16;

/// Output vectors of one gate computed together in [`row_step`] (their accumulators stay in
/// registers over the `k` loop).
const ROW_GROUP: usize = 4;

/// The GRU's weights for the row kernel: one customer at a time, SIMD lanes over hidden units.
/// The stored layout (`[k][r | z | n][unit]`) with each gate padded to whole vectors, so that
/// a row of `W_h` feeds the three gates of a vector of units from contiguous memory.
#[derive(Debug)]
struct RowPacked {
    /// Real hidden width (rows of `w_h`).
    hidden: usize,
    /// Units per gate, padded to [`ROW_PAD`].
    padded: usize,
    channels: usize,
    /// `[k < hidden][gate r, z, n][unit < padded]`.
    w_h: Vec<f32>,
    /// `[channel][gate r, z, n][unit < padded]`.
    w_x: Vec<f32>,
    /// `[gate r, z][unit]`: input and recurrent biases summed.
    b_rz: Vec<f32>,
    /// `[unit]`: input bias of the candidate gate.
    b_xn: Vec<f32>,
    /// `[unit]`: recurrent bias of the candidate gate (inside `r ⊙ (…)`).
    b_hn: Vec<f32>,
}

impl RowPacked {
    fn new(g: &GruWeights) -> Self {
        let hd = g.hidden;
        let h3 = 3 * hd;
        let padded = hd.div_ceil(ROW_PAD) * ROW_PAD;
        let gates = |w: &[f32], rows: usize| -> Vec<f32> {
            let mut out = vec![0.0f32; rows * 3 * padded];
            for k in 0..rows {
                for gate in 0..3 {
                    let to = (k * 3 + gate) * padded;
                    let from = k * h3 + gate * hd;
                    out[to..to + hd].copy_from_slice(&w[from..from + hd]);
                }
            }
            out
        };
        let bias = |f: &dyn Fn(usize) -> f32| -> Vec<f32> {
            (0..padded)
                .map(|u| if u < hd { f(u) } else { 0.0 })
                .collect()
        };
        let mut b_rz = bias(&|u| g.b_x[u] + g.b_h[u]);
        b_rz.extend(bias(&|u| g.b_x[hd + u] + g.b_h[hd + u]));
        Self {
            hidden: hd,
            padded,
            channels: g.inputs,
            w_h: gates(&g.w_h, hd),
            w_x: gates(&g.w_x, g.inputs),
            b_rz,
            b_xn: bias(&|u| g.b_x[2 * hd + u]),
            b_hn: bias(&|u| g.b_h[2 * hd + u]),
        }
    }
}

/// The GRU runs of a small batch, one customer at a time (see
/// [`SequenceArtifact::predict_batch_resumed`]): every input with a run of its own advances
/// week by week, and an input that resumes another's run starts at its step from the other's
/// state then. `states` receives `hidden` values per input (the final state of its run; left as
/// is for [`RunSource::Same`] inputs).
struct RowRun<'m, 'p, 'i, 'o> {
    model: &'m SequenceArtifact,
    packed: &'p RowPacked,
    inputs: &'i [SequenceInput<'i>],
    sources: &'i [RunSource],
    states: &'o mut [f32],
}

impl pulp::WithSimd for RowRun<'_, '_, '_, '_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let m = self.model;
        let p = self.packed;
        let (hp, hd, c) = (p.padded, p.hidden, p.channels);
        let n = self.inputs.len();
        let start = |i: usize| match self.sources[i] {
            RunSource::Own => Some(0),
            RunSource::ResumeAfter { step, .. } => Some(step),
            RunSource::Same(_) => None,
        };
        let zero: Vec<f32> = (0..c)
            .map(|ch| -m.channel_means[ch] / m.channel_stds[ch])
            .collect();
        let mut h = vec![0.0f32; n * hp];
        let mut next = vec![0.0f32; hp];
        let mut x = vec![0.0f32; c];
        for t in 0..m.weeks {
            // Resumptions first, from their leaders' states before this step.
            for i in 0..n {
                if let RunSource::ResumeAfter { leader, step } = self.sources[i]
                    && step == t
                {
                    h.copy_within(leader * hp..(leader + 1) * hp, i * hp);
                }
            }
            let week = m.weeks - 1 - t;
            for i in 0..n {
                if start(i).is_none_or(|s| s > t) {
                    continue;
                }
                let raw = &self.inputs[i].sequence[week * c..(week + 1) * c];
                for (ch, v) in raw.iter().enumerate() {
                    x[ch] = if *v > 0.0 {
                        ((v.ln_1p() as f32) - m.channel_means[ch]) / m.channel_stds[ch]
                    } else {
                        zero[ch]
                    };
                }
                row_step(simd, p, &x, &h[i * hp..(i + 1) * hp], &mut next);
                h[i * hp..(i + 1) * hp].copy_from_slice(&next);
            }
        }
        // A resumption after the last step runs no week of its own: its leader's final state.
        for i in 0..n {
            if let RunSource::ResumeAfter { leader, step } = self.sources[i]
                && step >= m.weeks
            {
                h.copy_within(leader * hp..(leader + 1) * hp, i * hp);
            }
        }
        for i in 0..n {
            if start(i).is_some() {
                self.states[i * hd..(i + 1) * hd].copy_from_slice(&h[i * hp..i * hp + hd]);
            }
        }
    }
}

/// One week of one customer's GRU: `next` from `h` (both `padded` units) and the week's
/// standardised inputs `x`, [`ROW_GROUP`] vectors of units at a time.
#[inline(always)]
fn row_step<S: Simd>(simd: S, p: &RowPacked, x: &[f32], h: &[f32], next: &mut [f32]) {
    let vecs = p.padded / S::F32_LANES;
    let mut j = 0;
    while j + ROW_GROUP <= vecs {
        row_units::<S, ROW_GROUP>(simd, p, x, h, next, j);
        j += ROW_GROUP;
    }
    while j < vecs {
        row_units::<S, 1>(simd, p, x, h, next, j);
        j += 1;
    }
}

/// The `G` vectors from vector `j` of each gate's block (`[r | z | n]`, `vecs` each) of `w`, as
/// arrays: no bounds check in the loops that read them.
#[inline(always)]
fn gate_group<T, const G: usize>(w: &[T], vecs: usize, j: usize) -> Option<[&[T; G]; 3]> {
    Some([
        w.get(j..j + G)?.try_into().ok()?,
        w.get(vecs + j..vecs + j + G)?.try_into().ok()?,
        w.get(2 * vecs + j..2 * vecs + j + G)?.try_into().ok()?,
    ])
}

/// [`row_step`] for the `G` vectors of units from vector `j`.
#[inline(always)]
fn row_units<S: Simd, const G: usize>(
    simd: S,
    p: &RowPacked,
    x: &[f32],
    h: &[f32],
    next: &mut [f32],
    j: usize,
) {
    let vecs = p.padded / S::F32_LANES;
    let (wh, _) = S::as_simd_f32s(&p.w_h);
    let (wx, _) = S::as_simd_f32s(&p.w_x);
    let (b_rz, _) = S::as_simd_f32s(&p.b_rz);
    let (b_xn, _) = S::as_simd_f32s(&p.b_xn);
    let (b_hn, _) = S::as_simd_f32s(&p.b_hn);
    let (hv, _) = S::as_simd_f32s(h);
    let mut r: [S::f32s; G] = std::array::from_fn(|g| b_rz[j + g]);
    let mut z: [S::f32s; G] = std::array::from_fn(|g| b_rz[vecs + j + g]);
    let mut xn: [S::f32s; G] = std::array::from_fn(|g| b_xn[j + g]);
    let mut hn: [S::f32s; G] = std::array::from_fn(|g| b_hn[j + g]);
    for (xc, w) in x.iter().zip(wx.chunks_exact(3 * vecs)) {
        let Some([wr, wz, wn]) = gate_group::<_, G>(w, vecs, j) else {
            // `row_step` keeps j + G within the vectors of a gate.
            unreachable!("a group of units past the gate's vectors");
        };
        let xc = simd.splat_f32s(*xc);
        for g in 0..G {
            r[g] = simd.mul_add_e_f32s(xc, wr[g], r[g]);
            z[g] = simd.mul_add_e_f32s(xc, wz[g], z[g]);
            xn[g] = simd.mul_add_e_f32s(xc, wn[g], xn[g]);
        }
    }
    for (hk, w) in h.iter().zip(wh.chunks_exact(3 * vecs)).take(p.hidden) {
        let Some([wr, wz, wn]) = gate_group::<_, G>(w, vecs, j) else {
            // `row_step` keeps j + G within the vectors of a gate.
            unreachable!("a group of units past the gate's vectors");
        };
        let hk = simd.splat_f32s(*hk);
        for g in 0..G {
            r[g] = simd.mul_add_e_f32s(hk, wr[g], r[g]);
            z[g] = simd.mul_add_e_f32s(hk, wz[g], z[g]);
            hn[g] = simd.mul_add_e_f32s(hk, wn[g], hn[g]);
        }
    }
    let one = simd.splat_f32s(1.0);
    let (out, _) = S::as_mut_simd_f32s(next);
    for g in 0..G {
        let r = sigmoid_s(simd, r[g], one);
        let z = sigmoid_s(simd, z[g], one);
        let n = tanh_s(simd, simd.mul_add_e_f32s(r, hn[g], xn[g]), one);
        // h' = (1 − z) ⊙ n + z ⊙ h = n + z ⊙ (h − n)
        out[j + g] = simd.mul_add_e_f32s(z, simd.sub_f32s(hv[j + g], n), n);
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
        let w = &l.weights[i * l.outputs..(i + 1) * l.outputs];
        for (yi, wi) in y.iter_mut().zip(w) {
            *yi += xi * wi;
        }
    }
}

/// `1.5 · 2^23`: adding it rounds an `f32` of magnitude below 2^22 to an integer, which then
/// sits in the low mantissa bits.
const ROUNDER: f32 = 12_582_912.0;

/// `e^x` on SIMD lanes, branch-free (Cephes `expf` polynomial, relative error about 2e-7 on the
/// clamped range `[-87, 88]`); `2^n` is built from the exponent bits.
#[inline(always)]
fn exp_s<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    let x = simd.min_f32s(
        simd.max_f32s(x, simd.splat_f32s(-87.0)),
        simd.splat_f32s(88.0),
    );
    let t = simd.mul_add_e_f32s(
        x,
        simd.splat_f32s(std::f32::consts::LOG2_E),
        simd.splat_f32s(ROUNDER),
    );
    let n = simd.sub_f32s(t, simd.splat_f32s(ROUNDER));
    let r = simd.mul_add_e_f32s(n, simd.splat_f32s(-0.693_359_4), x);
    let r = simd.mul_add_e_f32s(n, simd.splat_f32s(2.121_944_4e-4), r);
    let mut p = simd.splat_f32s(1.987_569_1e-4);
    for k in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_6e-1,
        0.5,
    ] {
        p = simd.mul_add_e_f32s(p, r, simd.splat_f32s(k));
    }
    let y = simd.add_f32s(
        simd.mul_add_e_f32s(simd.mul_f32s(p, r), r, r),
        simd.splat_f32s(1.0),
    );
    // n + 127 in [1, 254] (after the clamp), shifted into the exponent field.
    let biased = simd.sub_u32s(
        simd.transmute_u32s_f32s(t),
        simd.splat_u32s(ROUNDER.to_bits() - 127),
    );
    let scale = simd.transmute_f32s_u32s(simd.wrapping_dyn_shl_u32s(biased, simd.splat_u32s(23)));
    simd.mul_f32s(y, scale)
}

#[inline(always)]
fn sigmoid_s<S: Simd>(simd: S, x: S::f32s, one: S::f32s) -> S::f32s {
    simd.div_f32s(
        one,
        simd.add_f32s(one, exp_s(simd, simd.sub_f32s(simd.splat_f32s(0.0), x))),
    )
}

#[inline(always)]
fn tanh_s<S: Simd>(simd: S, x: S::f32s, one: S::f32s) -> S::f32s {
    let e = exp_s(simd, simd.mul_f32s(x, simd.splat_f32s(-2.0)));
    simd.sub_f32s(
        simd.div_f32s(simd.splat_f32s(2.0), simd.add_f32s(one, e)),
        one,
    )
}

/// Scalar `e^x` through the SIMD code path (for tests).
#[cfg(test)]
fn exp(x: f32) -> f32 {
    struct One(f32);
    impl pulp::WithSimd for One {
        type Output = f32;
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> f32 {
            let mut out = vec![0.0f32; S::F32_LANES];
            let (o, _) = S::as_mut_simd_f32s(&mut out);
            o[0] = exp_s(simd, simd.splat_f32s(self.0));
            out[0]
        }
    }
    pulp::Arch::new().dispatch(One(x))
}

#[cfg(test)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[cfg(test)]
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
            wide: Some(dense(1, 1, 9)),
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
        let wide = m.wide.as_ref().map_or(0.0, |w| lin(w, &a)[0]);
        sig(z[0] + wide)
    }

    #[test]
    fn batched_pass_matches_the_equations_on_every_thread_count() -> Result<(), ModelError> {
        let m = model(6, 5);
        m.validate()?;
        let seqs: Vec<Vec<f64>> = (0..40)
            .map(|i| {
                (0..12)
                    .map(|j| ((i * 7 + j * 3) % 11) as f64 * 3.5)
                    .collect()
            })
            .collect();
        let aggs: Vec<Vec<f64>> = (0..40).map(|i| vec![f64::from(i) * 10.0]).collect();
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
    fn merged_members_score_the_mean_logit() -> Result<(), ModelError> {
        let a = model(4, 3);
        let mut b = model(4, 5);
        b.gru.w_h = pseudo(5 * 15, 11);
        b.gru.w_x = pseudo(2 * 15, 12);
        b.embedding = pseudo(6, 13);
        b.head = vec![dense(5 + 2 + 2, 4, 14), dense(4, 1, 15)];
        b.wide = Some(dense(1, 1, 16));
        let merged = merge_members(&[a.clone(), b.clone()])?;
        assert_eq!(merged.gru.hidden, 8);
        let seq: Vec<f64> = (0..8).map(|j| f64::from(j % 3) * 2.0).collect();
        let agg = vec![7.0];
        for category in 0..3 {
            let x = SequenceInput {
                sequence: &seq,
                category,
                aggregates: &agg,
            };
            let logit = |p: f64| (p / (1.0 - p)).ln();
            let want =
                1.0 / (1.0 + (-(logit(reference(&a, &x)) + logit(reference(&b, &x))) / 2.0).exp());
            let got = merged.predict(&x)?;
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
            assert!((reference(&merged, &x) - want).abs() < 1e-9);
        }
        let mut other = b;
        other.weeks = 5;
        assert!(merge_members(&[a, other]).is_err());
        assert!(merge_members(&[]).is_err());
        Ok(())
    }

    #[test]
    fn shared_sequences_score_as_the_full_pass() -> Result<(), ModelError> {
        let m = model(7, 9);
        let seqs: Vec<Vec<f64>> = (0..3)
            .map(|k| {
                (0..14)
                    .map(|i| f64::from((i * 7 + k * 3) % 5) * 0.7)
                    .collect()
            })
            .collect();
        let aggs: Vec<Vec<f64>> = (0..40).map(|i| vec![f64::from(i) * 0.3]).collect();
        // 40 inputs over 3 sequences: leaders 0, 1, 2; the rest copy one of them.
        let same: Vec<usize> = (0..40).map(|i| if i < 3 { i } else { i % 3 }).collect();
        let inputs: Vec<SequenceInput<'_>> = (0..40)
            .map(|i| SequenceInput {
                sequence: &seqs[same[i]],
                category: i % 3,
                aggregates: &aggs[i],
            })
            .collect();
        for threads in [1, 2, 3] {
            let full = m.predict_batch(&inputs, threads)?;
            let shared = m.predict_batch_shared(&inputs, &same, threads)?;
            for (a, b) in full.iter().zip(&shared) {
                assert!((a - b).abs() < 1e-9, "{a} vs {b}");
            }
        }
        let mut bad = same.clone();
        bad[5] = 7; // input 7 copies input 1: not a leader
        assert!(m.predict_batch_shared(&inputs, &bad, 1).is_err());
        Ok(())
    }

    #[test]
    fn resumed_runs_score_as_the_full_pass() -> Result<(), ModelError> {
        let (weeks, c) = (7, 2);
        let m = model(weeks, 9);
        let base: Vec<f64> = (0..weeks * c)
            .map(|i| f64::from(u32::try_from((i * 5) % 7).unwrap_or(0)) * 0.6)
            .collect();
        // Variants of the base changing the most recent weeks 0..=last (week 0 is the last
        // step of the pass): the pass reads the same weeks before step weeks - 1 - last.
        let mut seqs = vec![base.clone()];
        let mut sources = vec![RunSource::Own];
        for last in 0..weeks {
            let mut v = base.clone();
            for w in 0..=last {
                v[w * c] += 1.5;
                v[w * c + 1] = 0.0;
            }
            seqs.push(v);
            sources.push(RunSource::ResumeAfter {
                leader: 0,
                step: weeks - 1 - last,
            });
        }
        seqs.push(base.clone());
        sources.push(RunSource::Same(0));
        let aggs: Vec<Vec<f64>> = (0..seqs.len()).map(|i| vec![i as f64 * 0.2]).collect();
        // Enough customers for several SIMD blocks and threads: the group repeated.
        let mut inputs = Vec::new();
        let mut all_sources = Vec::new();
        for r in 0..9 {
            let off = r * seqs.len();
            for (i, src) in sources.iter().enumerate() {
                inputs.push(SequenceInput {
                    sequence: &seqs[i],
                    category: (i + r) % 3,
                    aggregates: &aggs[i],
                });
                all_sources.push(match *src {
                    RunSource::Own => RunSource::Own,
                    RunSource::Same(j) => RunSource::Same(off + j),
                    RunSource::ResumeAfter { leader, step } => RunSource::ResumeAfter {
                        leader: off + leader,
                        step,
                    },
                });
            }
        }
        for threads in [1, 2, 3] {
            let full = m.predict_batch(&inputs, threads)?;
            // Every resumption as given (the kernel path), and as the public call plans it.
            let resumed = m.run_resumed(&inputs, &all_sources, threads)?;
            let planned = m.predict_batch_resumed(&inputs, &all_sources, threads)?;
            for ((a, b), c) in full.iter().zip(&resumed).zip(&planned) {
                assert!((a - b).abs() < 1e-6, "{a} vs {b}");
                assert!((a - c).abs() < 1e-6, "{a} vs {c}");
            }
        }
        // The plan keeps a resumption only where it saves work: one customer's block variants
        // fill the leader's block for free, two hundred customers' do not.
        let one = [
            RunSource::Own,
            RunSource::ResumeAfter { leader: 0, step: 6 },
            RunSource::ResumeAfter { leader: 0, step: 0 },
        ];
        assert!(m.cheaper_sources(&one).iter().all(|s| *s == RunSource::Own));
        let mut many = vec![RunSource::Own; 200];
        many.extend((0..200).map(|leader| RunSource::ResumeAfter { leader, step: 6 }));
        let planned = m.cheaper_sources(&many);
        assert!(
            planned[200..]
                .iter()
                .all(|s| matches!(s, RunSource::ResumeAfter { step: 6, .. }))
        );
        let mut bad = all_sources.clone();
        bad[1] = RunSource::ResumeAfter { leader: 2, step: 1 };
        assert!(m.predict_batch_resumed(&inputs, &bad, 1).is_err());
        Ok(())
    }

    #[test]
    fn the_row_kernel_follows_the_equations_and_takes_small_batches_only() -> Result<(), ModelError>
    {
        // A hidden width that is no whole number of SIMD vectors: the padded units must stay 0.
        let (weeks, c) = (9, 2);
        let m = model(weeks, 37);
        let seqs: Vec<Vec<f64>> = (0..4)
            .map(|v| {
                (0..weeks * c)
                    .map(|i| f64::from(u32::try_from((i * 3 + v) % 5).unwrap_or(0)) * 0.7)
                    .collect()
            })
            .collect();
        // Variant v changes weeks 0..v (the most recent): it resumes at weeks - v.
        let mut seqs = seqs;
        for v in 1..4 {
            for w in v..weeks {
                let same = seqs[0][w * c..(w + 1) * c].to_vec();
                seqs[v][w * c..(w + 1) * c].copy_from_slice(&same);
            }
        }
        let aggs = [vec![0.5], vec![2.0], vec![0.0], vec![7.0], vec![1.0]];
        let mut inputs: Vec<SequenceInput<'_>> = (0..4)
            .map(|v| SequenceInput {
                sequence: &seqs[v],
                category: v % 3,
                aggregates: &aggs[v],
            })
            .collect();
        inputs.push(SequenceInput {
            sequence: &seqs[0],
            category: 1,
            aggregates: &aggs[4],
        });
        let sources = [
            RunSource::Own,
            RunSource::ResumeAfter {
                leader: 0,
                step: weeks - 1,
            },
            RunSource::ResumeAfter {
                leader: 0,
                step: weeks - 2,
            },
            RunSource::ResumeAfter {
                leader: 0,
                step: weeks - 3,
            },
            RunSource::Same(0),
            // Its weeks are all the leader's: it resumes after the last step.
            RunSource::ResumeAfter {
                leader: 0,
                step: weeks,
            },
        ];
        inputs.push(SequenceInput {
            sequence: &seqs[0],
            category: 2,
            aggregates: &aggs[3],
        });
        let rows = m.run_rows(&inputs, &sources);
        for (x, got) in inputs.iter().zip(&rows) {
            let want = reference(&m, x);
            assert!((want - got).abs() < 1e-5, "{want} vs {got}");
        }
        // One customer and its variants fill a fraction of a block: rows. Sixty-four
        // customers fill blocks: blocks.
        assert!(m.rows_cheaper(&sources, &m.cheaper_sources(&sources)));
        let mut many = Vec::new();
        for k in 0..64 {
            many.extend(sources.iter().map(|s| match *s {
                RunSource::Own => RunSource::Own,
                RunSource::Same(j) => RunSource::Same(sources.len() * k + j),
                RunSource::ResumeAfter { leader, step } => RunSource::ResumeAfter {
                    leader: sources.len() * k + leader,
                    step,
                },
            }));
        }
        assert!(!m.rows_cheaper(&many, &m.cheaper_sources(&many)));
        Ok(())
    }

    /// Not a test of behaviour: the timings `ROW_STEP_COST` was set from. Run with
    /// `cargo test --release -p sextant-models --lib row_step_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "prints timings"]
    fn row_step_cost() -> Result<(), ModelError> {
        let (weeks, hidden, c) = (104, 64, 2);
        let m = model(weeks, hidden);
        let seq: Vec<f64> = (0..weeks * c).map(|i| ((i * 7) % 5) as f64).collect();
        let agg = vec![1.0];
        for n in [1usize, 2, 4, 8, 16, 32] {
            let mut inputs = Vec::new();
            let mut sources = Vec::new();
            for _ in 0..n {
                let own = inputs.len();
                let x = SequenceInput {
                    sequence: &seq,
                    category: 0,
                    aggregates: &agg,
                };
                inputs.push(x);
                sources.push(RunSource::Own);
                for last in [3usize, 7, 12, 25, 51] {
                    inputs.push(x);
                    sources.push(RunSource::ResumeAfter {
                        leader: own,
                        step: weeks - 1 - last,
                    });
                }
            }
            let planned = m.cheaper_sources(&sources);
            let runs = 20;
            let t = std::time::Instant::now();
            for _ in 0..runs {
                std::hint::black_box(m.run_resumed(&inputs, &planned, 1)?);
            }
            let blocks = t.elapsed().as_secs_f64() * 1e6 / f64::from(runs);
            let t = std::time::Instant::now();
            for _ in 0..runs {
                std::hint::black_box(m.run_rows(&inputs, &sources));
            }
            let rows = t.elapsed().as_secs_f64() * 1e6 / f64::from(runs);
            println!(
                "{n:>3} customers with 5 block variants: blocks {blocks:>8.1} µs, rows {rows:>8.1} µs, chosen: {}",
                if m.rows_cheaper(&sources, &planned) {
                    "rows"
                } else {
                    "blocks"
                }
            );
        }
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
