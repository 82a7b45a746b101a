//! The Ballista scheduler and executor processes of the `sextant-engine` binary.
//!
//! Why our own binary and not only the stock images: one artefact an admin can run anywhere the
//! suite runs (laptop, CI, the Sextant image), with the same flags as the stock
//! `ballista-scheduler` / `ballista-executor` (`--bind-host`, `--bind-port`, `--bind-grpc-port`,
//! `--external-host`, `--scheduler-host`, `--scheduler-port`, `--work-dir`, `--concurrent-tasks`),
//! so the Helm chart's settings fit both.
//!
//! Why the cluster must run this binary: the feature query calls three aggregate functions of its
//! own ([`crate::functions`]). The scheduler decodes the client's logical plan with its session's
//! functions and each executor decodes its tasks with its function registry, so ours register
//! them on both ([`crate::functions::session_state`], [`crate::functions::ballista_registry`]).
//! A stock `ballista-scheduler` or `ballista-executor` image does not know them and cannot decode
//! the query's plans.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;

/// Why a scheduler or executor stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The bind address is not an address.
    #[error("invalid bind address {0}")]
    Address(String),
    /// Ballista refused the configuration or failed while running.
    #[error("ballista: {0}")]
    Ballista(String),
}

/// Scheduler settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerOptions {
    /// Interface to listen on.
    pub bind_host: String,
    /// gRPC port (clients and executors).
    pub bind_port: u16,
    /// The name others reach it by (defaults to `bind_host`).
    pub external_host: Option<String>,
}

/// Runs a scheduler until the process is stopped.
///
/// # Errors
/// [`ClusterError`] when the address is invalid or the server fails.
pub async fn run_scheduler(opts: &SchedulerOptions) -> Result<(), ClusterError> {
    let addr: SocketAddr = format!("{}:{}", opts.bind_host, opts.bind_port)
        .parse()
        .map_err(|_| ClusterError::Address(format!("{}:{}", opts.bind_host, opts.bind_port)))?;
    let config = SchedulerConfig {
        bind_host: opts.bind_host.clone(),
        bind_port: opts.bind_port,
        external_host: opts
            .external_host
            .clone()
            .unwrap_or_else(|| opts.bind_host.clone()),
        // The feature query's functions, so that its plans decode here.
        override_session_builder: Some(Arc::new(crate::functions::session_state)),
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| ClusterError::Ballista(e.to_string()))?;
    start_server(cluster, addr, Arc::new(config))
        .await
        .map_err(|e| ClusterError::Ballista(e.to_string()))
}

/// Executor settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorOptions {
    /// The scheduler's host.
    pub scheduler_host: String,
    /// The scheduler's port.
    pub scheduler_port: u16,
    /// Interface to listen on.
    pub bind_host: String,
    /// Arrow Flight port (shuffle and result fetches).
    pub bind_port: u16,
    /// gRPC port (task launches from the scheduler).
    pub bind_grpc_port: u16,
    /// The name others reach it by (the pod IP on Kubernetes).
    pub external_host: Option<String>,
    /// Tasks run at once (0 = one per core).
    pub concurrent_tasks: usize,
    /// Directory for shuffle files (a temporary one when `None`).
    pub work_dir: Option<String>,
}

/// Runs an executor until the process is stopped.
///
/// # Errors
/// [`ClusterError`] when the configuration is refused or the executor fails.
pub async fn run_executor(opts: &ExecutorOptions) -> Result<(), ClusterError> {
    let config = ExecutorProcessConfig {
        bind_host: opts.bind_host.clone(),
        external_host: opts.external_host.clone(),
        port: opts.bind_port,
        grpc_port: opts.bind_grpc_port,
        scheduler_host: opts.scheduler_host.clone(),
        scheduler_port: opts.scheduler_port,
        // Retry the scheduler for a while: pods and test processes start in any order.
        scheduler_connect_timeout_seconds: 60,
        vcores: opts.concurrent_tasks,
        work_dir: opts.work_dir.clone(),
        print_thread_info: false,
        // The feature query's functions, so that its tasks decode here.
        override_function_registry: Some(Arc::new(crate::functions::ballista_registry())),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| ClusterError::Ballista(e.to_string()))
}
