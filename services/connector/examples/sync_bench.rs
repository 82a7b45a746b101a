//! Sync throughput, simulator → connector → a stand-in feature store that only counts, for REST
//! paging and for Bulk API 2.0, on the embedded sample plus N generated order lines.
//!
//! `cargo run --release -p sextant-connector --example sync_bench -- [EXTRA_ORDER_LINES]`
//!
//! Prints records/s per mode and the process's peak resident memory (VmHWM, which includes the
//! simulator holding the whole org and its cursors in memory — an upper bound for the connector).

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::{App, HttpServer, web};
use sextant_connector::{Application, SalesforceSettings, Settings};
use sextant_contracts::api::{IngestRequest, IngestResponse};
use sextant_contracts::time::system_clock;
use sextant_org_sim::credentials::generate;
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSim, OrgSimConfig};

async fn ingest(
    count: web::Data<Arc<AtomicU64>>,
    body: web::Json<IngestRequest>,
) -> web::Json<IngestResponse> {
    let req = body.into_inner();
    let n = (req.records.len() + req.deletions.len()) as u64;
    count.fetch_add(n, Ordering::Relaxed);
    web::Json(IngestResponse {
        object: req.object,
        received: n,
        written: n,
        unchanged: 0,
        rejected: Vec::new(),
        accounts_refreshed: 0,
    })
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let extra: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let creds = generate("bench")?;
    let data = OrgData::embedded_sample()?.with_extra_order_lines(extra);
    // The records a default sync reads (the built-in objects).
    let counts = data.counts();
    let total: usize = sextant_connector::mapping::OBJECTS
        .iter()
        .map(|(o, _)| counts.get(*o).copied().unwrap_or(0))
        .sum();
    println!(
        "org: {total} records ({} order lines)",
        data.counts()["OrderItem"]
    );
    for (mode, threshold) in [("rest", 0u64), ("bulk", 10_000)] {
        let mut config =
            OrgSimConfig::new("3MVG9bench", "bench@example.com", &creds.certificate_pem);
        config.api_request_limit = u64::MAX / 2;
        config.bulk_polls_to_complete = 1;
        config.bulk_page_size = 50_000;
        let (org, server) = OrgSim::start(
            config,
            data.clone(),
            system_clock(),
            TcpListener::bind("127.0.0.1:0")?,
        )?;
        tokio::spawn(server);
        let count = Arc::new(AtomicU64::new(0));
        let c = web::Data::new(count.clone());
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let store_url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let store = HttpServer::new(move || {
            App::new()
                .app_data(c.clone())
                .app_data(web::JsonConfig::default().limit(256 << 20))
                .route("/v1/ingest", web::post().to(ingest))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        tokio::spawn(store);
        let dir = tempfile::tempdir()?;
        let key = dir.path().join("key.pem");
        std::fs::write(&key, &creds.private_key_pem)?;
        let mut settings = Settings::with_salesforce(SalesforceSettings {
            login_url: org.base_url.clone(),
            audience: None,
            client_id: "3MVG9bench".into(),
            username: "bench@example.com".into(),
            private_key_path: key,
            api_version: "62.0".into(),
        });
        settings.port = 0;
        settings.feature_store_url = store_url;
        settings.bulk_threshold = threshold;
        settings.bulk_poll_ms = 20;
        let app = Application::build(&settings, system_clock()).await?;
        let url = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let started = Instant::now();
        // A whole sync is one request here; bounded so a stuck run fails instead of hanging.
        let resp = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(1800))
            .build()?
            .post(format!("{url}/v1/sync"))
            .send()
            .await?;
        let status = resp.status();
        let report: serde_json::Value = resp.json().await?;
        let secs = started.elapsed().as_secs_f64();
        let n = count.load(Ordering::Relaxed);
        println!(
            "{mode}: {n} records in {secs:.1} s = {:.0} records/s (HTTP {status}, {} pages), peak RSS so far {:.0} MB",
            n as f64 / secs,
            report["pages"],
            peak_rss_mb().unwrap_or(f64::NAN)
        );
        org.stop().await;
    }
    Ok(())
}
