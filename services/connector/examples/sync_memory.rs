//! Peak memory and throughput of large syncs: simulator → connector → the real feature store on
//! SQLite, for REST paging and for Bulk API 2.0, at several org sizes.
//!
//! `cargo run --release -p sextant-connector --example sync_memory -- [--store=sqlite|counting] [ORDER_LINES...]`
//! (default `--store=sqlite 1000000 2000000`).
//!
//! `--store=counting` replaces the feature store by a stand-in that only counts what it receives
//! (a child process too): the connector's own throughput and memory, without the store's
//! SQLite writes setting the pace.
//!
//! Each process is measured on its own: this program runs the org simulator (the stand-in for
//! Salesforce, not part of Sextant; it holds the sample org and makes the extra order lines on
//! demand by index — `OrgData::with_generated_order_lines` — so millions of lines fit in a few
//! megabytes of it), and starts the feature store (its own `sextant-feature-store` binary:
//! build it first) and the connector (this same binary, re-run with a role) as child processes,
//! so the connector's peak resident memory (`VmHWM` from
//! `/proc/<pid>/status`) is its own. Each size and mode gets a fresh feature store database and
//! a fresh connector. A sync is started with `POST /v1/syncs` and polled until it ends.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_contracts::time::system_clock;
use sextant_org_sim::credentials::generate;
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSim, OrgSimConfig};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const CLIENT_ID: &str = "3MVG9memory";
const USERNAME: &str = "memory@example.com";

/// `VmHWM` and `VmRSS` of a process, in MB.
fn memory_mb(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// A child process that prints `PORT <n>` once it listens.
struct Service {
    child: Child,
    url: String,
}

/// The feature store's own binary (`sextant-feature-store`, beside this example's directory in
/// the target folder, or `SEXTANT_FEATURE_STORE_BIN`): services never link each other, not even in
/// a bench, so the real store runs as the binary an admin runs.
fn feature_store_binary() -> Res<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("SEXTANT_FEATURE_STORE_BIN") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .ok_or("no target directory")?;
    let bin = dir.join("sextant-feature-store");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is missing: build it first (cargo build --release -p sextant-feature-store) or set SEXTANT_FEATURE_STORE_BIN",
            bin.display()
        )
        .into())
    }
}

/// Waits until the store accepts connections (its binary logs; it prints no port line).
fn wait_healthy(url: &str) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = url.trim_start_matches("http://");
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("the feature store at {url} did not start within 60 s").into())
}

impl Service {
    /// The real feature store, from its own binary, on a free port.
    fn feature_store(envs: &[(&str, String)]) -> Res<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut cmd = Command::new(feature_store_binary()?);
        cmd.env("SEXTANT_FEATURE_STORE__PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn()?;
        let url = format!("http://127.0.0.1:{port}");
        let service = Self { child, url };
        wait_healthy(&service.url)?;
        Ok(service)
    }

    fn start(role: &str, envs: &[(&str, String)]) -> Res<Self> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg(format!("--role={role}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .ok_or_else(|| format!("{role} did not start: {line:?}"))?
            .to_owned();
        Ok(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child roles: run one service, print its port, serve until killed.
async fn child(role: &str) -> Res<()> {
    let clock = system_clock();
    let service = match role {
        "counting-store" => {
            use actix_web::{App, HttpServer, web};
            async fn ingest(
                body: web::Json<sextant_contracts::api::IngestRequest>,
            ) -> web::Json<sextant_contracts::api::IngestResponse> {
                let req = body.into_inner();
                let n = (req.records.len() + req.deletions.len()) as u64;
                web::Json(sextant_contracts::api::IngestResponse {
                    object: req.object,
                    received: n,
                    written: n,
                    unchanged: 0,
                    rejected: Vec::new(),
                    accounts_refreshed: 0,
                })
            }
            let listener = TcpListener::bind("127.0.0.1:0")?;
            println!("PORT {}", listener.local_addr()?.port());
            HttpServer::new(|| {
                App::new()
                    .app_data(web::JsonConfig::default().limit(256 << 20))
                    .route("/v1/ingest", web::post().to(ingest))
            })
            .workers(1)
            .listen(listener)?
            .run()
            .await?;
            return Ok(());
        }
        "connector" => {
            let s: sextant_connector::Settings =
                sextant_service_kit::config::load("SEXTANT_CONNECTOR", None)?;
            sextant_connector::Application::build(&s, clock).await?
        }
        other => return Err(format!("unknown role {other}").into()),
    };
    println!("PORT {}", service.port());
    service.run_until_stopped().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(role) = args.iter().find_map(|a| a.strip_prefix("--role=")) {
        return child(role).await;
    }
    let counting = args.iter().any(|a| a == "--store=counting");
    let args: Vec<String> = args
        .into_iter()
        .filter(|a| !a.starts_with("--store="))
        .collect();
    let sizes: Vec<usize> = if args.is_empty() {
        vec![1_000_000, 2_000_000]
    } else {
        args.iter()
            .map(|a| a.parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("sizes must be numbers of order lines: {e}"))?
    };
    let creds = generate("memory-bench")?;
    let work = tempfile::tempdir()?;
    let key = work.path().join("key.pem");
    std::fs::write(&key, &creds.private_key_pem)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    println!(
        "feature store: {}",
        if counting {
            "a counting stand-in (child process)"
        } else {
            "sextant-feature-store on SQLite (child process)"
        }
    );
    println!(
        "| order lines | mode | records | seconds | records/s | connector peak RSS (MB) | feature store peak RSS (MB) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &lines in &sizes {
        let sample = OrgData::embedded_sample()?;
        let extra = lines.saturating_sub(sample.counts()["OrderItem"]);
        let data = sample.with_generated_order_lines(extra);
        for (mode, threshold) in [("rest", 0u64), ("bulk", 10_000)] {
            let mut config = OrgSimConfig::new(CLIENT_ID, USERNAME, &creds.certificate_pem);
            config.api_request_limit = u64::MAX / 2;
            config.bulk_polls_to_complete = 1;
            config.bulk_page_size = 50_000;
            let (org, server) = OrgSim::start(
                config,
                data.clone(),
                system_clock(),
                TcpListener::bind("127.0.0.1:0")?,
            )?;
            let server = tokio::spawn(server);
            let db = work.path().join(format!("fs-{lines}-{mode}.sqlite"));
            let store_env = [
                (
                    "SEXTANT_FEATURE_STORE__DATABASE_URL",
                    format!("sqlite://{}?mode=rwc", db.display()),
                ),
                ("RUST_LOG", "warn".into()),
            ];
            let store = if counting {
                Service::start("counting-store", &store_env)?
            } else {
                Service::feature_store(&store_env)?
            };
            let connector = Service::start(
                "connector",
                &[
                    ("SEXTANT_CONNECTOR__PORT", "0".into()),
                    ("SEXTANT_CONNECTOR__FEATURE_STORE_URL", store.url.clone()),
                    (
                        "SEXTANT_CONNECTOR__SALESFORCE__LOGIN_URL",
                        org.base_url.clone(),
                    ),
                    ("SEXTANT_CONNECTOR__SALESFORCE__CLIENT_ID", CLIENT_ID.into()),
                    ("SEXTANT_CONNECTOR__SALESFORCE__USERNAME", USERNAME.into()),
                    (
                        "SEXTANT_CONNECTOR__SALESFORCE__PRIVATE_KEY_PATH",
                        key.display().to_string(),
                    ),
                    (
                        "SEXTANT_CONNECTOR__DATABASE_URL",
                        format!(
                            "sqlite://{}?mode=rwc",
                            work.path()
                                .join(format!("conn-{lines}-{mode}.sqlite"))
                                .display()
                        ),
                    ),
                    ("SEXTANT_CONNECTOR__BULK_THRESHOLD", threshold.to_string()),
                    ("SEXTANT_CONNECTOR__BULK_POLL_MS", "20".into()),
                    ("RUST_LOG", "warn".into()),
                ],
            )?;
            let started = Instant::now();
            let job: Value = http
                .post(format!("{}/v1/syncs", connector.url))
                .json(&serde_json::json!({}))
                .send()
                .await?
                .json()
                .await?;
            let id = job["id"].as_str().ok_or_else(|| format!("no job: {job}"))?;
            let mut last_print = Instant::now();
            let done = loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let job: Value = http
                    .get(format!("{}/v1/syncs/{id}", connector.url))
                    .send()
                    .await?
                    .json()
                    .await?;
                if job["state"] != "running" {
                    break job;
                }
                if last_print.elapsed() > Duration::from_secs(30) {
                    last_print = Instant::now();
                    eprintln!(
                        "  {lines} {mode}: {} rows after {:.0} s, connector RSS {:.0} MB",
                        job["progress"]["rows"],
                        started.elapsed().as_secs_f64(),
                        memory_mb(connector.pid()).map_or(f64::NAN, |m| m.1)
                    );
                }
            };
            let secs = started.elapsed().as_secs_f64();
            let rows = done["progress"]["rows"].as_u64().unwrap_or(0);
            let (conn_peak, _) = memory_mb(connector.pid()).unwrap_or((f64::NAN, f64::NAN));
            let (store_peak, _) = memory_mb(store.pid()).unwrap_or((f64::NAN, f64::NAN));
            if done["state"] != "succeeded" {
                eprintln!("  the sync ended {}: {}", done["state"], done["error"]);
            }
            println!(
                "| {lines} | {mode} | {rows} | {secs:.1} | {:.0} | {conn_peak:.0} | {store_peak:.0} |",
                rows as f64 / secs
            );
            drop(connector);
            drop(store);
            org.stop().await;
            let _ = server.await;
            let _ = std::fs::remove_file(&db);
        }
    }
    Ok(())
}
