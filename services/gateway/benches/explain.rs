//! Wall time of one scoring call without HTTP, as the gateway makes it (a batch split over up to
//! 4 threads): the churn score alone, and the score with its explanations (occlusion over every
//! feature and block of weeks), for 1, 8 and 200 records of the load benchmark's
//! production-sized model.
//!
//! `cargo bench -p sextant-gateway --bench explain -- [--seconds 3] [--records N]`
//!
//! Why: the load benchmark's figures mix the gateway with the load generator and the stand-ins
//! on the same cores; this one isolates the model's share of a request.

use std::time::{Duration, Instant};

/// The allocator the service binaries run with.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use sextant_models::churn_serving::{CustomerInput, ServedChurnModel};

#[path = "../tests/support/churn.rs"]
mod churn;

fn arg(name: &str) -> Option<u64> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|v| v.parse().ok())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds = arg("--seconds").unwrap_or(3);
    let sizes =
        arg("--records").map_or_else(|| vec![1, 8, 200], |n| vec![n.clamp(1, 200) as usize]);
    let ServedChurnModel::Sequence(m) = churn::model("churn-v1", 1) else {
        return Err("the bench model is a sequence model".into());
    };
    let rows: Vec<_> = (0..200u64)
        .map(|n| churn::row(&churn::account(n), n * 7919))
        .collect();
    let attributes: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.attributes.get("country").map(String::as_str))
        .collect();
    let inputs: Vec<CustomerInput<'_>> = rows
        .iter()
        .zip(&attributes)
        .map(|(r, c)| CustomerInput {
            features: r.features.as_deref().unwrap_or_default(),
            sequence: r.sequence.as_deref().unwrap_or_default(),
            category: *c,
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    println!(
        "model: GRU hidden {} over {} weeks, {} features, {} blocks of weeks; {threads} threads for a batch",
        churn::HIDDEN,
        churn::WEEKS,
        churn::FEATURES,
        m.reference.week_blocks.len()
    );
    for n in sizes {
        let batch = &inputs[..n];
        let per_call = |f: &dyn Fn() -> Result<(), sextant_models::ModelError>| {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let (mut calls, started) = (0u32, Instant::now());
            while Instant::now() < deadline {
                f()?;
                calls += 1;
            }
            Ok::<_, sextant_models::ModelError>(started.elapsed() / calls.max(1))
        };
        let score = per_call(&|| m.score_batch(batch, threads).map(|_| ()))?;
        let explain = per_call(&|| m.explain_batch(batch, threads).map(|_| ()))?;
        println!(
            "{n:>3} records: score {:>9.1} µs ({:>6.1} µs a record), score + explanations {:>9.1} µs ({:>6.1} µs a record)",
            score.as_secs_f64() * 1e6,
            score.as_secs_f64() * 1e6 / n as f64,
            explain.as_secs_f64() * 1e6,
            explain.as_secs_f64() * 1e6 / n as f64,
        );
    }
    Ok(())
}
