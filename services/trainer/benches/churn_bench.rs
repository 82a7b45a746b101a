//! Speed of the sequence churn model: Burn training steps/s and inference sequences/s (Burn and the
//! plain-Rust serving pass), at hidden 64, 104 weeks, batch 256.
//!
//! Run with the thread count fixed for Burn's pool (the serving pass takes its own count):
//! `RAYON_NUM_THREADS=2 cargo bench -p sextant-trainer --bench churn_bench`
//! (`-- --steps N --batches N --threads N` to change the defaults 10, 40 and 2). The PyTorch peer
//! is `scripts/bench/churn_torch.py` (same architecture and sizes).

use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::Backend;
use sextant_trainer::sequence_model::{
    ArtifactFrame, NetShape, SequenceChurnNet, SequenceExample, SetLayout, batch, score,
};

const WEEKS: usize = 104;
const HIDDEN: usize = 64;
const BATCH: usize = 256;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Deterministic synthetic customers: about a third of the weeks active.
fn examples(n: usize) -> Vec<SequenceExample> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            let mut sequence = vec![0.0; WEEKS * 4];
            for w in 0..WEEKS {
                if next() % 3 == 0 {
                    let orders = 1.0 + (next() % 3) as f64;
                    sequence[w * 4] = orders;
                    sequence[w * 4 + 1] = orders * (10.0 + (next() % 500) as f64);
                    sequence[w * 4 + 2] = orders * (1.0 + (next() % 40) as f64);
                    sequence[w * 4 + 3] = f64::from(u8::from(next() % 20 == 0));
                }
            }
            let orders: f64 = sequence.iter().step_by(4).sum();
            SequenceExample {
                aggregates: vec![
                    (next() % 300) as f64,
                    orders,
                    orders * 120.0,
                    120.0,
                    700.0,
                    (next() % 5) as f64,
                ],
                sequence,
                category: ["UK", "FR", "DE", "ES", "NL"][i % 5].into(),
                churned: next() % 2 == 0,
            }
        })
        .collect()
}

fn main() {
    let steps = arg("--steps", 10);
    let batches = arg("--batches", 40);
    let threads = arg("--threads", 2);
    let rayon = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset (all cores)".into());
    println!(
        "sequence churn model: GRU hidden {HIDDEN}, {WEEKS} weeks x 4 channels, batch {BATCH}; RAYON_NUM_THREADS={rayon}; serving threads {threads}"
    );
    let layout = SetLayout {
        weeks: WEEKS,
        channel_names: ["orders", "spend", "items", "cases"]
            .map(String::from)
            .to_vec(),
        aggregate_names: sextant_features::FEATURE_NAMES.map(String::from).to_vec(),
    };
    let data = examples(BATCH * 4);
    let frame = ArtifactFrame::fit(&layout, &data, 1);
    let shape = NetShape {
        channels: 4,
        hidden: HIDDEN,
        categories: frame.categories().len(),
        embedding_dim: 4,
        aggregates: 6,
        aggregate_dim: 16,
        head_dim: 32,
    };

    // Training: forward, backward and an Adam step per batch.
    type Ad = Autodiff<Flex>;
    let device = Default::default();
    Ad::seed(&device, 42);
    let mut model = SequenceChurnNet::<Ad>::new(shape, &device);
    let mut optim = AdamConfig::new().init();
    let loss_fn = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(&device);
    let chunks: Vec<Vec<&SequenceExample>> =
        data.chunks(BATCH).map(|c| c.iter().collect()).collect();
    let mut step = |model: SequenceChurnNet<Ad>, i: usize| {
        let b = batch::<Ad>(&frame, &chunks[i % chunks.len()], &device);
        let loss = loss_fn.forward(model.forward(b.seq, b.category, b.aggregates), b.labels);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optim.step(1e-3, model, grads)
    };
    for i in 0..2 {
        model = step(model, i);
    }
    let t = Instant::now();
    for i in 0..steps {
        model = step(model, i);
    }
    let per_step = t.elapsed().as_secs_f64() / steps.max(1) as f64;
    println!(
        "burn flex training:  {:8.2} steps/s  ({:.1} ms/step, {:.0} sequences/s)",
        1.0 / per_step,
        per_step * 1e3,
        BATCH as f64 / per_step
    );

    // Burn inference (no autodiff).
    let valid = model.valid();
    let flex_device: burn::backend::flex::FlexDevice = Default::default();
    let infer = |i: usize| {
        let b = batch::<Flex>(&frame, &chunks[i % chunks.len()], &flex_device);
        valid.forward(b.seq, b.category, b.aggregates)
    };
    std::hint::black_box(infer(0));
    let t = Instant::now();
    let burn_batches = (batches / 4).max(2);
    for i in 0..burn_batches {
        std::hint::black_box(infer(i));
    }
    let burn_rate = (burn_batches * BATCH) as f64 / t.elapsed().as_secs_f64();
    println!(
        "burn flex inference: {burn_rate:8.0} sequences/s (batch {BATCH}, tensors built from raw values)"
    );

    // The plain-Rust serving pass on the same weights.
    let artifact = match valid.export(&frame) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("export failed: {e}");
            std::process::exit(1);
        }
    };
    for th in [1, threads] {
        if let Err(e) = score(&artifact, &data[..BATCH], th) {
            eprintln!("scoring failed: {e}");
            std::process::exit(1);
        }
        let t = Instant::now();
        for i in 0..batches {
            let start = (i * BATCH) % data.len();
            if score(&artifact, &data[start..start + BATCH], th).is_err() {
                std::process::exit(1);
            }
        }
        let rate = (batches * BATCH) as f64 / t.elapsed().as_secs_f64();
        println!(
            "plain-rust inference: {rate:8.0} sequences/s (batch {BATCH}, {th} thread(s), from raw values)"
        );
    }
}
