//! Feature-store benchmark: prints its figures; never a timed test.
//!
//! Generates a synthetic org (a product catalogue with families, accounts, orders with mixed
//! statuses, order lines with returns; a weekly rhythm with churners), ingests it in the
//! connector's batch size, and measures:
//! - ingest throughput (records/s) per tenth of the order lines, to show whether it stays flat
//!   as the tables grow (first tenth against the last);
//! - online feature build: the refresh queue the ingest left, drained (order lines/s);
//! - online lookup latency (p50/p99) for 1 and 200 accounts, in-process and over HTTP on
//!   loopback (the service itself, bound to port 0, on the same database);
//! - training-set build throughput (order lines/s) for one cut-off with 104-week sequences,
//!   streamed as the service streams it;
//! - peak resident memory of the whole run.
//!
//! `cargo bench -p sextant-feature-store --bench store -- [ORDER_LINES] [DATABASE_URL]`
//! (defaults: 200000 lines, a SQLite file in a temporary directory). With a PostgreSQL URL the
//! same figures come from PostgreSQL (the bench drops and recreates the `fs_*` tables there: give
//! it a scratch database).

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use serde_json::json;
use sextant_contracts::SalesforceId;
use sextant_contracts::api::{IngestObject, IngestRequest, TrainingSetRequest};
use sextant_contracts::time::FixedClock;
use sextant_feature_store::store::{PAGE, Store};
use sextant_feature_store::{Application, Settings};

const BATCH: usize = 2000;
const LINES_PER_ORDER: usize = 4;
const ORDERS_PER_ACCOUNT: usize = 10;
const PRODUCTS: u64 = 500;
const FAMILIES: [&str; 5] = ["Kitchen", "Garden", "Toys", "Lighting", "Stationery"];

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

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

fn id(prefix: &str, n: u64) -> String {
    SalesforceId::from_parts(prefix, "5g", n).to_string()
}

/// Drops the feature store's tables on a PostgreSQL scratch database so each run starts empty.
async fn reset_postgres(url: &str) -> BenchResult<()> {
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(url).await?;
    for t in [
        "fs_account",
        "fs_contact",
        "fs_product",
        "fs_order",
        "fs_order_item",
        "fs_case",
        "fs_engagement_event",
        "fs_online_feature",
        "fs_online_dirty",
        "seaql_migrations",
    ] {
        db.execute_unprepared(&format!("DROP TABLE IF EXISTS {t} CASCADE"))
            .await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let lines: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("sextant-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.join("bench.sqlite").display()));
    if url.starts_with("postgres") {
        reset_postgres(&url).await?;
    }
    let store = Store::connect(&url, &["Activated".to_owned()]).await?;
    let orders = lines / LINES_PER_ORDER;
    let accounts = (orders / ORDERS_PER_ACCOUNT).max(1);
    let backend = url.split("://").next().unwrap_or("?").to_owned();
    println!(
        "feature-store bench: {lines} order lines, {orders} orders, {accounts} accounts, {PRODUCTS} products on {backend}"
    );
    let start_day = NaiveDate::from_ymd_opt(2022, 1, 3).ok_or("date")?;
    let now = Utc
        .with_ymd_and_hms(2024, 1, 10, 12, 0, 0)
        .single()
        .ok_or("time")?;
    let as_of = NaiveDate::from_ymd_opt(2024, 1, 11).ok_or("date")?;
    let stamp = |d: NaiveDate| format!("{d}T12:00:00Z");
    let send = |object: IngestObject, records: Vec<serde_json::Value>| IngestRequest {
        org_id: None,
        object,
        record_object: None,
        records,
        deletions: Vec::new(),
    };

    let products: Vec<serde_json::Value> = (1..=PRODUCTS)
        .map(|n| {
            json!({"id": id("01t", n), "name": format!("Product {n}"), "product_code": format!("P{n}"),
                "family": FAMILIES[(n % FAMILIES.len() as u64) as usize], "last_modified_date": "2021-01-01T00:00:00Z",
                "system_modstamp": "2021-01-01T00:00:00Z"})
        })
        .collect();
    store
        .ingest("default", &send(IngestObject::Product2, products), now)
        .await?;

    let t = Instant::now();
    for chunk in (1..=accounts as u64).collect::<Vec<_>>().chunks(BATCH) {
        let records = chunk
            .iter()
            .map(|n| {
                json!({"id": id("001", *n), "name": format!("A{n}"),
                    "billing_country": if n % 3 == 0 { "France" } else { "United Kingdom" }, "industry": null,
                    "created_date": "2021-01-01T00:00:00Z", "last_modified_date": "2021-01-01T00:00:00Z",
                    "system_modstamp": "2021-01-01T00:00:00Z"})
            })
            .collect();
        store
            .ingest("default", &send(IngestObject::Account, records), now)
            .await?;
    }
    println!("accounts: {accounts} in {:.1} s", t.elapsed().as_secs_f64());

    // Orders: account a's k-th order is on day start + (a*7 mod 30 + k*gap); a quarter of the
    // accounts buy often and stop early (churners); one order in twelve is a draft.
    let order_day = |o: usize| -> NaiveDate {
        let a = o % accounts;
        let k = o / accounts;
        let gap = if a.is_multiple_of(4) { 20 } else { 60 };
        start_day + Duration::days(((a * 7) % 30 + k * gap) as i64)
    };
    let t = Instant::now();
    for chunk in (0..orders).collect::<Vec<_>>().chunks(BATCH) {
        let records = chunk
            .iter()
            .map(|o| {
                let d = order_day(*o);
                json!({"id": id("801", *o as u64 + 1),
                    "account_id": id("001", (*o % accounts) as u64 + 1),
                    "effective_date": d.to_string(),
                    "status": if o % 12 == 5 { "Draft" } else { "Activated" }, "order_number": null,
                    "last_modified_date": stamp(d), "system_modstamp": stamp(d)})
            })
            .collect();
        store
            .ingest("default", &send(IngestObject::Order, records), now)
            .await?;
    }
    println!(
        "orders: {orders} in {:.1} s ({:.0} records/s)",
        t.elapsed().as_secs_f64(),
        orders as f64 / t.elapsed().as_secs_f64()
    );

    let mut segment_rates = Vec::new();
    let tenth = (lines / 10).max(BATCH);
    let mut seg_start = Instant::now();
    let mut seg_count = 0usize;
    let t = Instant::now();
    let mut next = 0usize;
    while next < lines {
        let end = (next + BATCH).min(lines);
        let records = (next..end)
            .map(|l| {
                let o = l / LINES_PER_ORDER;
                let d = order_day(o);
                let quantity = if l % 53 == 7 {
                    -1.0
                } else {
                    (l % 5 + 1) as f64
                };
                json!({"id": id("802", l as u64 + 1), "order_id": id("801", o as u64 + 1),
                    "product_id": id("01t", (l as u64 * 7919) % PRODUCTS + 1),
                    "quantity": quantity, "unit_price": 2.5 + (l % 7) as f64,
                    "last_modified_date": stamp(d), "system_modstamp": stamp(d)})
            })
            .collect();
        store
            .ingest("default", &send(IngestObject::OrderItem, records), now)
            .await?;
        seg_count += end - next;
        next = end;
        if seg_count >= tenth {
            let rate = seg_count as f64 / seg_start.elapsed().as_secs_f64();
            println!("  order lines {next:>10}: {rate:.0} records/s over the last tenth");
            segment_rates.push(rate);
            seg_start = Instant::now();
            seg_count = 0;
        }
    }
    let total = t.elapsed().as_secs_f64();
    println!(
        "order lines: {lines} in {total:.1} s = {:.0} records/s (touched accounts queued for the online refresh)",
        lines as f64 / total
    );
    if let (Some(first), Some(last)) = (segment_rates.first(), segment_rates.last()) {
        let rates: Vec<String> = segment_rates.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "  per tenth: {} records/s; first {first:.0}, last {last:.0} (ratio {:.2})",
            rates.join(" "),
            last / first
        );
    }

    // The online feature build: drain the queue the ingest left (what the service's background
    // refresher does), a page at a time.
    let t = Instant::now();
    let mut refreshed = 0u64;
    loop {
        let n = store.refresh_queued(PAGE, as_of, now).await?;
        if n == 0 {
            break;
        }
        refreshed += n;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "online feature build: {refreshed} accounts (25 features + 104-week sequence) in {secs:.1} s = {:.0} accounts/s, {:.0} order lines/s",
        refreshed as f64 / secs,
        lines as f64 / secs
    );

    // Online lookups: materialised rows, read by primary key.
    let ids: Vec<String> = (1..=accounts as u64).map(|n| id("001", n)).collect();
    let slices = |batch: usize| -> Vec<&[String]> {
        (0..300)
            .map(|i| {
                let from = (i * 7919) % ids.len().saturating_sub(batch).max(1);
                &ids[from..(from + batch).min(ids.len())]
            })
            .collect()
    };
    for batch in [1usize, 200] {
        let mut times = Vec::new();
        for slice in slices(batch) {
            let t = Instant::now();
            let rows = store.online("default", slice, as_of, now).await?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            if rows.len() != slice.len() {
                return Err(format!("online: {} of {} rows", rows.len(), slice.len()).into());
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "online lookup, {batch:>3} account(s), in-process: p50 {:.3} ms, p99 {:.3} ms",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }

    // The same over HTTP: the service on loopback, port 0, same database.
    let settings = Settings {
        host: "127.0.0.1".into(),
        port: 0,
        database_url: url.clone(),
        ..Settings::default()
    };
    // "Today" is the day before the online cut-off, as the service computes it.
    let clock = Arc::new(FixedClock(now));
    let service = Application::build(&settings, clock).await?;
    let base = format!("http://127.0.0.1:{}", service.port());
    let handle = service.handle();
    let server = tokio::spawn(service.run_until_stopped());
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    for batch in [1usize, 200] {
        let mut times = Vec::new();
        for (i, slice) in slices(batch).into_iter().enumerate() {
            let body = json!({"account_ids": slice, "include_sequences": i % 2 == 0});
            let t = Instant::now();
            let resp = http
                .post(format!("{base}/v1/features/online"))
                .json(&body)
                .send()
                .await?;
            let status = resp.status();
            let bytes = resp.bytes().await?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            if !status.is_success() {
                return Err(format!(
                    "online over HTTP: {status}: {}",
                    String::from_utf8_lossy(&bytes)
                )
                .into());
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "online lookup, {batch:>3} account(s), HTTP loopback: p50 {:.3} ms, p99 {:.3} ms",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    handle.stop(true).await;
    let _ = server.await;

    // Training set: one cut-off with sequences, streamed through a channel and counted.
    let cutoff = NaiveDate::from_ymd_opt(2023, 6, 1).ok_or("date")?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let req = TrainingSetRequest {
        cutoffs: vec![cutoff],
        examples: Vec::new(),
        horizon_days: 90,
        include_sequences: true,
        org_id: None,
    };
    let t = Instant::now();
    let producer = tokio::spawn(sextant_feature_store::training::produce(
        store.clone(),
        req,
        tx,
    ));
    let (mut rows, mut bytes) = (0u64, 0usize);
    while let Some(Ok(line)) = rx.recv().await {
        rows += 1;
        bytes += line.len();
    }
    producer.await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "training set (cut-off {cutoff}, 104-week sequences): {} rows, {:.1} MB NDJSON in {secs:.1} s = {:.0} rows/s, {:.0} order lines/s",
        rows.saturating_sub(2),
        bytes as f64 / 1e6,
        rows.saturating_sub(2) as f64 / secs,
        lines as f64 / secs
    );
    println!("peak resident memory: {}", peak_rss());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
