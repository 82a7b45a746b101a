//! Feature build throughput and peak memory of the DataFusion single-node path.
//!
//! `cargo bench -p sextant-feature-engine --bench features -- [LINES] [DATA_DIR] [--cutoff YYYY-MM-DD] [--partitions N]
//!  [--explain] [--print-sql] [--sql FILE] [--set datafusion.KEY=VALUE]…`
//!
//! Generates `LINES` order lines (default 10,000,000; seed 42) under `DATA_DIR` (default
//! `target/engine-bench/<LINES>`) unless an export is already there, then computes the rfmt-v2
//! features and weekly sequences of every account as of the cut-off (default 2024-01-01) into
//! `DATA_DIR/features-datafusion.parquet` and prints one JSON object: order lines per second and
//! the peak resident memory of the computation (VmHWM, reset after generation through
//! /proc/self/clear_refs). `scripts/bench/features_engine.sh` runs this next to Polars.
//!
//! Profiling: `--explain` prints `EXPLAIN ANALYZE` (per-operator rows, compute time, memory) to
//! stderr instead of timing a run; `--print-sql` prints the query text; `--sql FILE` runs another
//! query text (a variant under study) on the same tables; `--set` changes a session setting (e.g.
//! `datafusion.execution.target_partitions=4`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use chrono::NaiveDate;
use sextant_feature_engine::engine::sql_to_parquet;
use sextant_feature_engine::generate::{ORG, generate};
use sextant_feature_engine::query::DEFAULT_PURCHASE_STATUS;
use sextant_feature_engine::{FeatureQuery, Target, session};

fn vm_hwm_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn run() -> Result<(), String> {
    let mut positional = Vec::new();
    let mut cutoff = NaiveDate::from_ymd_opt(2024, 1, 1).ok_or("bad default cut-off")?;
    let mut partitions = 0usize;
    let mut explain = false;
    let mut print_sql = false;
    let mut sql_file: Option<String> = None;
    let mut settings: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--explain" => explain = true,
            "--print-sql" => print_sql = true,
            "--sql" => sql_file = Some(args.next().ok_or("--sql needs a file")?),
            "--set" => settings.push(args.next().ok_or("--set needs key=value")?),
            "--cutoff" => {
                let v = args.next().ok_or("--cutoff needs a date")?;
                cutoff = NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                    .map_err(|e| format!("--cutoff {v}: {e}"))?;
            }
            "--partitions" => {
                let v = args.next().ok_or("--partitions needs a number")?;
                partitions = v.parse().map_err(|e| format!("--partitions {v}: {e}"))?;
            }
            _ => positional.push(a),
        }
    }
    let lines: u64 = match positional.first() {
        Some(v) => v.parse().map_err(|e| format!("LINES {v}: {e}"))?,
        None => 10_000_000,
    };
    let data = positional.get(1).map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/engine-bench")
                .join(lines.to_string())
        },
        PathBuf::from,
    );
    if !data.join("fs_order_item").is_dir() {
        let t = Instant::now();
        let g = generate(&data, lines, 42).map_err(|e| e.to_string())?;
        eprintln!(
            "generated {} lines ({} rows) under {} in {:.1} s",
            g.lines,
            g.rows,
            data.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let query = FeatureQuery::new(ORG, cutoff, &[DEFAULT_PURCHASE_STATUS.to_owned()])
        .map_err(|e| e.to_string())?;
    let out = data.join("features-datafusion.parquet");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let sql = match &sql_file {
        Some(f) => std::fs::read_to_string(f).map_err(|e| format!("--sql {f}: {e}"))?,
        None => query.sql(),
    };
    let open = || async {
        let ctx = session(&Target::Local { partitions }, &data).await?;
        for s in &settings {
            let (key, value) = s.split_once('=').unwrap_or((s.as_str(), ""));
            ctx.sql(&format!("SET {key} = '{value}'")).await?;
        }
        Ok::<_, sextant_feature_engine::EngineError>(ctx)
    };
    if print_sql {
        println!("{sql}");
        return Ok(());
    }
    if explain {
        // Only the plan with per-operator metrics (rows, elapsed compute, memory), on stderr.
        let plan = runtime
            .block_on(async {
                let ctx = open().await?;
                let df = ctx.sql(&format!("EXPLAIN ANALYZE {sql}")).await?;
                Ok::<_, sextant_feature_engine::EngineError>(df.collect().await?)
            })
            .map_err(|e| e.to_string())?;
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
            .map_err(|e| e.to_string())?;
        eprintln!("{text}");
        return Ok(());
    }
    // Peak memory of the computation only, not of the generation before it.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let started = Instant::now();
    let written = runtime
        .block_on(async {
            let ctx = open().await?;
            sql_to_parquet(&ctx, &sql, &out).await
        })
        .map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "{{\"engine\": \"datafusion 55.2.0\", \"lines\": {lines}, \"accounts\": {}, \"seconds\": {seconds:.3}, \"lines_per_s\": {:.0}, \"peak_rss_mib\": {:.1}, \"peak_rss_reset\": {reset}, \"threads\": {threads}, \"out\": {:?}}}",
        written.rows,
        lines as f64 / seconds,
        vm_hwm_mib().unwrap_or(f64::NAN),
        out.display().to_string()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("features bench: {e}");
            ExitCode::FAILURE
        }
    }
}
