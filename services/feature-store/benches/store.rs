//! Feature-store benchmark: prints its figures; never a timed test.
//!
//! Generates a synthetic org (accounts, orders, order lines with a weekly rhythm and churners),
//! ingests it in the connector's batch size, and measures:
//! - ingest throughput (records/s) on the first and the last tenth of the order lines, to show
//!   whether it stays flat as the tables grow;
//! - online lookup latency (p50/p99) for 1 and 200 accounts, in-process, from the materialised
//!   store;
//! - training-set build throughput (order lines/s) for one cut-off with sequences, streamed.
//!
//! `cargo bench -p sextant-feature-store --bench store -- [ORDER_LINES] [DATABASE_URL]`
//! (defaults: 200000 lines, a SQLite file in a temporary directory). With a PostgreSQL URL the
//! same figures come from PostgreSQL.

use std::time::Instant;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use serde_json::json;
use sextant_contracts::SalesforceId;
use sextant_contracts::api::{IngestObject, IngestRequest, TrainingSetRequest};
use sextant_feature_store::store::Store;

const BATCH: usize = 2000;
const LINES_PER_ORDER: usize = 4;
const ORDERS_PER_ACCOUNT: usize = 10;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    let store = Store::connect(&url, &["Activated".to_owned()]).await?;
    let orders = lines / LINES_PER_ORDER;
    let accounts = (orders / ORDERS_PER_ACCOUNT).max(1);
    println!(
        "feature-store bench: {lines} order lines, {orders} orders, {accounts} accounts on {}",
        url.split("://").next().unwrap_or("?")
    );
    let start_day = NaiveDate::from_ymd_opt(2022, 1, 3).unwrap_or_default();
    let now = Utc
        .with_ymd_and_hms(2024, 1, 10, 12, 0, 0)
        .single()
        .unwrap_or_default();
    let as_of = NaiveDate::from_ymd_opt(2024, 1, 11).unwrap_or_default();
    let stamp = |d: NaiveDate| format!("{d}T12:00:00Z");

    let send = |object: IngestObject, records: Vec<serde_json::Value>| IngestRequest {
        org_id: None,
        object,
        records,
        deletions: Vec::new(),
    };
    let t = Instant::now();
    for chunk in (1..=accounts as u64).collect::<Vec<_>>().chunks(BATCH) {
        let records = chunk
            .iter()
            .map(|n| {
                json!({"id": SalesforceId::from_parts("001", "5g", *n).to_string(), "name": format!("A{n}"),
                    "billing_country": if n % 3 == 0 { "France" } else { "United Kingdom" }, "industry": null,
                    "created_date": "2021-01-01T00:00:00Z", "last_modified_date": "2021-01-01T00:00:00Z",
                    "system_modstamp": "2021-01-01T00:00:00Z"})
            })
            .collect();
        store
            .ingest("default", &send(IngestObject::Account, records), now, as_of)
            .await?;
    }
    println!("accounts: {accounts} in {:.1} s", t.elapsed().as_secs_f64());

    // Orders: account a's k-th order is on day start + (a*7 + k*45 [+ churners stop early]).
    let order_day = |o: usize| -> NaiveDate {
        let a = o % accounts;
        let k = o / accounts;
        let churner = a.is_multiple_of(4);
        let gap = if churner { 20 } else { 60 };
        start_day + Duration::days(((a * 7) % 30 + k * gap) as i64)
    };
    let t = Instant::now();
    for chunk in (0..orders).collect::<Vec<_>>().chunks(BATCH) {
        let records = chunk
            .iter()
            .map(|o| {
                let d = order_day(*o);
                json!({"id": SalesforceId::from_parts("801", "5g", *o as u64 + 1).to_string(),
                    "account_id": SalesforceId::from_parts("001", "5g", (*o % accounts) as u64 + 1).to_string(),
                    "effective_date": d.to_string(), "status": "Activated", "order_number": null,
                    "last_modified_date": stamp(d), "system_modstamp": stamp(d)})
            })
            .collect();
        store
            .ingest("default", &send(IngestObject::Order, records), now, as_of)
            .await?;
    }
    println!(
        "orders: {orders} in {:.1} s ({:.0} records/s, with online refresh)",
        t.elapsed().as_secs_f64(),
        orders as f64 / t.elapsed().as_secs_f64()
    );

    let mut segment_rates = Vec::new();
    let tenth = (lines / 10).max(BATCH);
    let mut seg_start = Instant::now();
    let mut seg_count = 0usize;
    let t = Instant::now();
    for chunk in (0..lines).collect::<Vec<_>>().chunks(BATCH) {
        let records = chunk
            .iter()
            .map(|l| {
                let o = l / LINES_PER_ORDER;
                let d = order_day(o);
                json!({"id": SalesforceId::from_parts("802", "5g", *l as u64 + 1).to_string(),
                    "order_id": SalesforceId::from_parts("801", "5g", o as u64 + 1).to_string(),
                    "product_id": null, "quantity": (l % 5 + 1) as f64, "unit_price": 2.5 + (l % 7) as f64,
                    "last_modified_date": stamp(d), "system_modstamp": stamp(d)})
            })
            .collect();
        store
            .ingest(
                "default",
                &send(IngestObject::OrderItem, records),
                now,
                as_of,
            )
            .await?;
        seg_count += chunk.len();
        if seg_count >= tenth {
            segment_rates.push(seg_count as f64 / seg_start.elapsed().as_secs_f64());
            seg_start = Instant::now();
            seg_count = 0;
        }
    }
    let total = t.elapsed().as_secs_f64();
    println!(
        "order lines: {lines} in {total:.1} s ({:.0} records/s overall, with online refresh of the touched accounts)",
        lines as f64 / total
    );
    if let (Some(first), Some(last)) = (segment_rates.first(), segment_rates.last()) {
        println!(
            "  first tenth {first:.0} records/s, last tenth {last:.0} records/s (ratio {:.2})",
            last / first
        );
    }

    // Online lookups: materialised rows, read by primary key.
    let ids: Vec<String> = (1..=accounts as u64)
        .map(|n| SalesforceId::from_parts("001", "5g", n).to_string())
        .collect();
    for batch in [1usize, 200] {
        let mut times = Vec::new();
        for i in 0..300 {
            let from = (i * 7919) % ids.len().saturating_sub(batch).max(1);
            let slice = &ids[from..(from + batch).min(ids.len())];
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

    // Training set: one cut-off with sequences, streamed through a channel and counted.
    let cutoff = NaiveDate::from_ymd_opt(2023, 6, 1).unwrap_or_default();
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
        "training set (cut-off {cutoff}, 104-week sequences): {} rows, {:.1} MB NDJSON in {secs:.1} s = {:.0} order lines/s",
        rows.saturating_sub(2),
        bytes as f64 / 1e6,
        lines as f64 / secs
    );
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM"))
    {
        println!(
            "peak resident memory: {}",
            line.trim_start_matches("VmHWM:").trim()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
