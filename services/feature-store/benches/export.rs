//! Export benchmark: prints its figures; never a timed test.
//!
//! Fills a SQLite file (or a PostgreSQL scratch database) with ORDER_LINES order lines — five per
//! order, ten orders per account, each table written set-based in one statement so the set-up
//! stays short — then runs `POST /v1/exports` through the service on loopback, polls
//! `GET /v1/exports/{id}` until it is done and prints rows/s over every table, files, bytes and
//! the peak resident memory of the whole process (which holds the database pages SQLite caches,
//! too).
//!
//! `cargo bench -p sextant-feature-store --bench export -- [ORDER_LINES] [DATABASE_URL]`
//! (defaults: 1000000 lines, a SQLite file in a temporary directory).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use sextant_contracts::time::FixedClock;
use sextant_feature_store::{Application, Settings};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `n` rows of a recursive counter, as SQL both databases run.
fn counter(n: u64) -> String {
    format!("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {n} - 1)")
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let lines: u64 = args.first().map_or(Ok(1_000_000), |s| s.parse())?;
    let scratch = tempfile::tempdir()?;
    let url = args.get(1).cloned().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            scratch.path().join("bench.sqlite").display()
        )
    });
    let settings = Settings {
        port: 0,
        database_url: url.clone(),
        export_root: scratch.path().join("exports"),
        ..Settings::default()
    };
    let clock = Arc::new(FixedClock(
        Utc.with_ymd_and_hms(2024, 7, 1, 12, 0, 0)
            .single()
            .ok_or("time")?,
    ));
    let app = Application::build(&settings, clock).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    let db = Database::connect(&url).await?;
    let orders = lines.div_ceil(5);
    let accounts = orders.div_ceil(10);
    let started = Instant::now();
    // Ids by number (plain concatenation, the same SQL on both databases); a version per row, known and ingested in 2023.
    for sql in [
        format!(
            "{} INSERT INTO fs_account (org_id, id, known_us, is_deleted, ingested_us, name, billing_country, industry, event_day) \
             SELECT 'default', '0015g' || i, 1672531200000000, FALSE, 1672531200000000, \
                    'Account ' || i, 'France', NULL, 18000 + i % 1000 FROM n",
            counter(accounts)
        ),
        format!(
            "{} INSERT INTO fs_order (org_id, id, known_us, is_deleted, ingested_us, account_id, event_day, status, order_number) \
             SELECT 'default', '8015g' || i, 1672531200000000 + i, FALSE, 1672531200000000, \
                    '0015g' || (i / 10), 18500 + i % 1000, 'Activated', 'N' || i FROM n",
            counter(orders)
        ),
        format!(
            "{} INSERT INTO fs_order_item (org_id, id, known_us, is_deleted, ingested_us, order_id, product_id, quantity, unit_price) \
             SELECT 'default', '8025g' || i, 1672531200000000 + i, FALSE, 1672531200000000, \
                    '8015g' || (i / 5), '01t5g' || (i % 500), \
                    1.0 + i % 4, 2.5 + i % 7 FROM n",
            counter(lines)
        ),
    ] {
        db.execute_unprepared(&sql).await?;
    }
    let rows = accounts + orders + lines;
    println!(
        "set-up: {lines} order lines, {orders} orders, {accounts} accounts ({rows} rows) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let http = reqwest::Client::new();
    let started = Instant::now();
    let job: Value = http
        .post(format!("{base}/v1/exports"))
        .json(&json!({"directory": "bench"}))
        .send()
        .await?
        .json()
        .await?;
    let id = job["id"]
        .as_str()
        .ok_or_else(|| format!("no export: {job}"))?
        .to_owned();
    let job = loop {
        let job: Value = http
            .get(format!("{base}/v1/exports/{id}"))
            .send()
            .await?
            .json()
            .await?;
        if job["state"] != "running" {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    if job["state"] != "succeeded" {
        return Err(format!("export failed: {job}").into());
    }
    let exported = job["rows"].as_u64().unwrap_or(0);
    println!(
        "export: {exported} rows in {seconds:.2} s = {:.0} rows/s; {} files, {:.1} MiB; peak RSS {}",
        exported as f64 / seconds,
        job["files"],
        job["bytes"].as_u64().unwrap_or(0) as f64 / 1_048_576.0,
        peak_rss()
    );
    for t in job["tables"].as_array().into_iter().flatten() {
        println!(
            "  {}: {} rows, {} files, {} bytes",
            t["table"], t["rows"], t["files"], t["bytes"]
        );
    }
    Ok(())
}
