//! Speed of the sequence churn model: Burn training steps/s and inference sequences/s (Burn and the
//! plain-Rust serving pass), at hidden 64, 104 weeks, batch 256.
//!
//! Run with the thread count fixed for Burn's pool (the serving pass takes its own count):
//! `RAYON_NUM_THREADS=2 cargo bench -p sextant-trainer --bench churn_bench`
//! (`-- --steps N --batches N --threads N --rounds N` to change the defaults 10, 40, 2 and 3).
//!
//! In the same run it then starts the PyTorch peer, `scripts/bench/churn_torch.py` (same
//! architecture and sizes, `torch.set_num_threads(threads)`), with the Python named by
//! `SEXTANT_TORCH_PYTHON` (default `python3`; `--no-torch` skips it), and prints both side by side
//! with the time each would take to score 25 million customers. Inference figures are the best of
//! `--rounds` timed rounds on both sides, so a machine shared with other work is compared fairly.
//! Each side also reports sequences per CPU-second of the process (user + system time of all its
//! threads): on a machine that other work keeps busy, wall-clock rates measure the share of the
//! cores the bench got, while `seq/CPU-s × threads` is what that many dedicated cores would do
//! (PyTorch's OpenMP workers spin while waiting, which counts against it there).

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
/// Customers the serving pass must score (the 40-minute target on 2 cores is about 10.4k/s).
const CUSTOMERS: f64 = 25e6;

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
    let rounds = arg("--rounds", 3).max(1);
    let run_torch = !std::env::args().any(|a| a == "--no-torch");
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
    let mut rust_rate = 0.0;
    let mut rust_cpu = f64::NAN;
    for th in [1, threads] {
        if let Err(e) = score(&artifact, &data[..BATCH], th) {
            eprintln!("scoring failed: {e}");
            std::process::exit(1);
        }
        let mut best = 0.0f64;
        let cpu0 = cpu_seconds();
        for _ in 0..rounds {
            let t = Instant::now();
            for i in 0..batches {
                let start = (i * BATCH) % data.len();
                if score(&artifact, &data[start..start + BATCH], th).is_err() {
                    std::process::exit(1);
                }
            }
            best = best.max((batches * BATCH) as f64 / t.elapsed().as_secs_f64());
        }
        let per_cpu = match (cpu0, cpu_seconds()) {
            (Some(a), Some(b)) if b > a => (rounds * batches * BATCH) as f64 / (b - a),
            _ => f64::NAN,
        };
        println!(
            "plain-rust inference: {best:8.0} sequences/s (batch {BATCH}, {th} thread(s), from raw values, best of {rounds}); {per_cpu:.0} sequences per CPU-second"
        );
        rust_rate = best;
        rust_cpu = per_cpu;
    }
    let burn_train_steps = 1.0 / per_step;

    let torch = if run_torch {
        torch_peer(steps, batches, threads, rounds)
    } else {
        Err("skipped (--no-torch)".into())
    };
    println!("\nside by side ({threads} threads, hidden {HIDDEN}, {WEEKS} weeks, batch {BATCH}):");
    println!(
        "{:<26} {:>13} {:>16} {:>20} {:>16} {:>20}",
        "",
        "train steps/s",
        "inference seq/s",
        "25M customers (min)",
        "seq/CPU-s",
        "25M on dedicated (min)"
    );
    let row = |name: &str, train: f64, infer: f64, per_cpu: f64| {
        println!(
            "{name:<26} {train:>13.2} {infer:>16.0} {:>20.1} {per_cpu:>16.0} {:>20.1}",
            CUSTOMERS / infer / 60.0,
            CUSTOMERS / (per_cpu * threads as f64) / 60.0
        );
    };
    row(
        "burn (train) / plain-rust",
        burn_train_steps,
        rust_rate,
        rust_cpu,
    );
    match torch {
        Ok((train, infer, per_cpu)) => {
            row("pytorch (cpu)", train, infer, per_cpu);
            println!(
                "plain-rust / pytorch inference: {:.2}x wall clock, {:.2}x per CPU-second",
                rust_rate / infer,
                rust_cpu / per_cpu
            );
        }
        Err(why) => println!("{:<26} not run: {why}", "pytorch (cpu)"),
    }
    let target = CUSTOMERS / 2400.0;
    let verdict = |rate: f64| if rate >= target { "met" } else { "NOT met" };
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    println!(
        "25M customers in 40 min on {threads} cores needs {target:.0} seq/s: wall clock {} (1-min load average {load} on {} cores), CPU-time projection for {threads} dedicated cores {}",
        verdict(rust_rate),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        verdict(rust_cpu * threads as f64)
    );
}

/// User + system CPU seconds of this process so far (all threads), from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks / 100.0)
}

/// Runs `scripts/bench/churn_torch.py` and reads its `RESULT` line: (training steps/s, inference
/// sequences/s, inference sequences per CPU-second).
fn torch_peer(
    steps: usize,
    batches: usize,
    threads: usize,
    rounds: usize,
) -> Result<(f64, f64, f64), String> {
    let python = std::env::var("SEXTANT_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/bench/churn_torch.py"
    );
    let out = std::process::Command::new(&python)
        .arg(script)
        .args(["--steps", &steps.to_string()])
        .args(["--batches", &batches.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--rounds", &rounds.to_string()])
        .output()
        .map_err(|e| format!("cannot start {python}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines().filter(|l| !l.starts_with("RESULT")) {
        println!("{line}");
    }
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").to_owned();
        return Err(format!("{python} {script} failed: {last}"));
    }
    let result = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or("no RESULT line")?;
    let v: serde_json::Value = serde_json::from_str(result).map_err(|e| e.to_string())?;
    let get = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
    match (get("train_steps_per_s"), get("infer_seq_per_s")) {
        (Some(t), Some(i)) => Ok((t, i, get("infer_seq_per_cpu_s").unwrap_or(f64::NAN))),
        _ => Err(format!("unexpected RESULT line: {result}")),
    }
}
