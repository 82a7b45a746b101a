//! `sextant-engine`: batch feature computation with DataFusion, single-node or on Apache Ballista.
//!
//! A thin command line over `sextant_feature_engine`:
//! `scheduler`, `executor` (a Ballista cluster), `generate` (synthetic org data as Parquet) and
//! `compute` (features of an org as of a cut-off, locally or through a scheduler).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use sextant_feature_engine::cluster::{
    ExecutorOptions, SchedulerOptions, run_executor, run_scheduler,
};
use sextant_feature_engine::generate::generate;
use sextant_feature_engine::query::DEFAULT_PURCHASE_STATUS;
use sextant_feature_engine::{FeatureQuery, Target, compute_to_parquet, session};

#[derive(Debug, Parser)]
#[command(
    name = "sextant-engine",
    version,
    about = "Sextant batch feature computation (DataFusion / Ballista)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a Ballista scheduler.
    Scheduler {
        #[arg(long, default_value = "127.0.0.1")]
        bind_host: String,
        #[arg(long, default_value_t = 50050)]
        bind_port: u16,
        /// The name executors and clients reach it by (default: the bind host).
        #[arg(long)]
        external_host: Option<String>,
    },
    /// Run a Ballista executor.
    Executor {
        #[arg(long, default_value = "localhost")]
        scheduler_host: String,
        #[arg(long, default_value_t = 50050)]
        scheduler_port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        bind_host: String,
        /// Arrow Flight port.
        #[arg(long, default_value_t = 50051)]
        bind_port: u16,
        /// gRPC port (default: the Flight port + 1).
        #[arg(long)]
        bind_grpc_port: Option<u16>,
        /// The name the scheduler and other executors reach it by (the pod IP on Kubernetes).
        #[arg(long)]
        external_host: Option<String>,
        /// Tasks at once (0 = one per core).
        #[arg(long, default_value_t = 0)]
        concurrent_tasks: usize,
        /// Directory for shuffle files.
        #[arg(long)]
        work_dir: Option<String>,
    },
    /// Write N order lines of synthetic org data as Parquet, one directory per table.
    Generate {
        #[arg(long)]
        lines: u64,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Compute the rfmt-v2 features and weekly sequences of an org as of a cut-off.
    Compute {
        /// Directory with one directory of Parquet files per table.
        #[arg(long)]
        data: PathBuf,
        /// Cut-off day (YYYY-MM-DD): only what happened and was known before it counts.
        #[arg(long)]
        cutoff: NaiveDate,
        /// Ballista scheduler HOST:PORT; without it the query runs in this process.
        #[arg(long)]
        scheduler: Option<String>,
        /// Result Parquet file.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "default")]
        org: String,
        /// Order statuses that count as purchases (case-insensitive), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = DEFAULT_PURCHASE_STATUS)]
        purchase_statuses: Vec<String>,
        /// Local partitions (0 = one per core).
        #[arg(long, default_value_t = 0)]
        partitions: usize,
    },
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Scheduler {
            bind_host,
            bind_port,
            external_host,
        } => {
            init_logging("info");
            run_scheduler(&SchedulerOptions {
                bind_host,
                bind_port,
                external_host,
            })
            .await
            .map_err(|e| e.to_string())
        }
        Command::Executor {
            scheduler_host,
            scheduler_port,
            bind_host,
            bind_port,
            bind_grpc_port,
            external_host,
            concurrent_tasks,
            work_dir,
        } => {
            init_logging("info");
            let bind_grpc_port = match bind_grpc_port {
                Some(p) => p,
                None => bind_port
                    .checked_add(1)
                    .ok_or("--bind-port 65535 leaves no port for gRPC; give --bind-grpc-port")?,
            };
            run_executor(&ExecutorOptions {
                scheduler_host,
                scheduler_port,
                bind_host,
                bind_port,
                bind_grpc_port,
                external_host,
                concurrent_tasks,
                work_dir,
            })
            .await
            .map_err(|e| e.to_string())
        }
        Command::Generate { lines, out, seed } => {
            init_logging("warn");
            let started = Instant::now();
            let g = generate(&out, lines, seed).map_err(|e| e.to_string())?;
            println!(
                "{{\"lines\": {}, \"orders\": {}, \"accounts\": {}, \"products\": {}, \"rows\": {}, \"seconds\": {:.3}, \"out\": {:?}}}",
                g.lines,
                g.orders,
                g.accounts,
                g.products,
                g.rows,
                started.elapsed().as_secs_f64(),
                out.display().to_string()
            );
            Ok(())
        }
        Command::Compute {
            data,
            cutoff,
            scheduler,
            out,
            org,
            purchase_statuses,
            partitions,
        } => {
            init_logging("warn");
            let query =
                FeatureQuery::new(&org, cutoff, &purchase_statuses).map_err(|e| e.to_string())?;
            let target = match scheduler {
                Some(s) => Target::Ballista { scheduler: s },
                None => Target::Local { partitions },
            };
            let started = Instant::now();
            let ctx = session(&target, &data).await.map_err(|e| e.to_string())?;
            let written = compute_to_parquet(&ctx, &query, &out)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{{\"accounts\": {}, \"seconds\": {:.3}, \"engine\": \"{}\", \"out\": {:?}}}",
                written.rows,
                started.elapsed().as_secs_f64(),
                if matches!(target, Target::Local { .. }) {
                    "datafusion"
                } else {
                    "ballista"
                },
                out.display().to_string()
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sextant-engine: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sextant-engine: {e}");
            ExitCode::FAILURE
        }
    }
}
