//! The feature store's own Parquet export, computed by the engine, against the store's training
//! sets: for every account and cut-off, the engine's `rfmt-v2` vector and weekly sequence equal
//! what the store serves in `POST /v1/training-sets` (floats within 1e-9 relative; the same
//! accounts).
//!
//! The org is generated here and ingested over HTTP, so it holds what real syncs leave behind:
//! several versions of accounts, orders, lines and products, tombstones, records known long after
//! their event (late SystemModstamps), purchase statuses in three spellings next to drafts and
//! cancellations, returns and zero quantities, lines without a product, cases the lexicon reads as
//! negative, engagement events, and a second org sharing the ids. Runs on SQLite, and on
//! PostgreSQL too when `SEXTANT_TEST_POSTGRES_URL` names a server.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use sextant_contracts::SalesforceId;
use sextant_contracts::api::TrainingSetLine;
use sextant_contracts::time::FixedClock;
use sextant_feature_engine::{
    FeatureQuery, FeatureRow, Target, compute_to_parquet, read_features, session,
};
use sextant_feature_store::{Application, Settings};
use sextant_features::aggregates::FEATURE_NAMES;

const TODAY: &str = "2025-01-01";
const OTHER_ORG: &str = "00D5g0000000001";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

/// SplitMix64: the same org on every machine.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn id(prefix: &str, n: u64) -> String {
    SalesforceId::from_parts(prefix, "5g", n).to_string()
}
fn day(n: i64) -> NaiveDate {
    NaiveDate::default() + chrono::Duration::days(n)
}
fn stamp(n: i64) -> String {
    format!("{}T09:30:00Z", day(n))
}

/// Records per object, in ingest order (parents first), and deletions.
#[derive(Default)]
struct Org {
    records: BTreeMap<&'static str, Vec<Value>>,
    deletions: BTreeMap<&'static str, Vec<Value>>,
}

impl Org {
    fn add(&mut self, object: &'static str, v: Value) {
        self.records.entry(object).or_default().push(v);
    }
    /// What a sync before `k` (microseconds) would have delivered: records and deletions whose
    /// SystemModstamp or deletion time is before it.
    fn known_before(&self, k: i64) -> Self {
        let before = |v: &Value, field: &str| {
            v[field]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t.timestamp_micros() < k)
        };
        Self {
            records: self
                .records
                .iter()
                .map(|(o, rs)| {
                    (
                        *o,
                        rs.iter()
                            .filter(|v| before(v, "system_modstamp"))
                            .cloned()
                            .collect(),
                    )
                })
                .collect(),
            deletions: self
                .deletions
                .iter()
                .map(|(o, ds)| {
                    (
                        *o,
                        ds.iter()
                            .filter(|v| before(v, "deleted_at"))
                            .cloned()
                            .collect(),
                    )
                })
                .collect(),
        }
    }

    fn delete(&mut self, object: &'static str, id: &str, at: i64) {
        self.deletions
            .entry(object)
            .or_default()
            .push(json!({"id": id, "deleted_at": stamp(at)}));
    }
}

fn generate(seed: u64) -> Org {
    let mut r = Rng(seed);
    let mut org = Org::default();
    let start = (d("2020-01-01") - NaiveDate::default()).num_days();
    let span = 365 * 4;
    let families = [Some("Hardware"), Some("Software"), None];
    for p in 0..12u64 {
        let family = families[(p % 3) as usize];
        let name = ["Blue Mug", "Desk Lamp", "Gift Card", "Tea Set"][(p % 4) as usize];
        org.add(
            "Product2",
            json!({"id": id("01t", p), "name": format!("{name} {p}"), "product_code": format!("P{p}"),
                "family": family, "last_modified_date": stamp(start), "system_modstamp": stamp(start)}),
        );
        if p % 5 == 0 {
            // Re-classified later: the features read a product's latest category.
            org.add(
                "Product2",
                json!({"id": id("01t", p), "name": format!("{name} {p}"), "product_code": format!("P{p}"),
                    "family": "Services", "last_modified_date": stamp(start + 700), "system_modstamp": stamp(start + 700)}),
            );
        }
    }
    let statuses = ["Activated", "activated", "ACTIVATED", "Draft", "Cancelled"];
    let (mut order_n, mut line_n, mut case_n, mut event_n) = (0u64, 0u64, 0u64, 0u64);
    for a in 0..80u64 {
        let created = start + i64::try_from(r.below(span)).unwrap_or(0) - 200;
        // A few accounts are known only long after their creation (a late first sync).
        let known = if r.chance(10) { created + 400 } else { created };
        let account = |name: &str, at: i64| {
            json!({"id": id("001", a), "name": name, "billing_country": "France", "industry": null,
                "created_date": stamp(created), "last_modified_date": stamp(at), "system_modstamp": stamp(at)})
        };
        org.add("Account", account(&format!("Account {a}"), known));
        if r.chance(20) {
            org.add(
                "Account",
                account(&format!("Account {a} renamed"), known + 300),
            );
        }
        if r.chance(8) {
            org.delete("Account", &id("001", a), known + 500);
        }
        for _ in 0..r.below(14) {
            let o = order_n;
            order_n += 1;
            let date = created + i64::try_from(r.below(1200)).unwrap_or(0);
            let status = statuses[usize::try_from(r.below(5)).unwrap_or(0)];
            let known = if r.chance(10) { date + 45 } else { date };
            let order = |status: &str, date: i64, at: i64| {
                json!({"id": id("801", o), "account_id": id("001", a), "effective_date": day(date).to_string(),
                    "status": status, "order_number": format!("{o:06}"), "last_modified_date": stamp(at),
                    "system_modstamp": stamp(at)})
            };
            org.add("Order", order(status, date, known));
            if r.chance(10) {
                // A later version changes the status and moves the day.
                org.add("Order", order("Activated", date - 3, known + 20));
            }
            if r.chance(4) {
                org.delete("Order", &id("801", o), known + 60);
            }
            for _ in 0..=r.below(4) {
                let l = line_n;
                line_n += 1;
                let quantity =
                    [3.0, 1.0, 2.0, -1.0, 0.0, 5.0][usize::try_from(r.below(6)).unwrap_or(0)];
                let price = f64::from(u32::try_from(r.below(400)).unwrap_or(0) + 1) * 0.25;
                let product = if r.chance(10) {
                    Value::Null
                } else {
                    json!(id("01t", r.below(12)))
                };
                let line = |q: f64, at: i64| {
                    json!({"id": id("802", l), "order_id": id("801", o), "product_id": product,
                        "quantity": q, "unit_price": price, "last_modified_date": stamp(at),
                        "system_modstamp": stamp(at)})
                };
                org.add("OrderItem", line(quantity, known));
                if r.chance(8) {
                    org.add("OrderItem", line(quantity + 1.0, known + 10));
                }
                if r.chance(5) {
                    org.delete("OrderItem", &id("802", l), known + 30);
                }
            }
        }
        for _ in 0..r.below(4) {
            let c = case_n;
            case_n += 1;
            let date = created + i64::try_from(r.below(1200)).unwrap_or(0);
            let known = if r.chance(15) { date + 30 } else { date };
            let (subject, description) = if r.chance(50) {
                (
                    "Broken and late",
                    "Terrible service, I want a refund, very angry",
                )
            } else {
                ("Question", "Thanks, all good")
            };
            org.add(
                "Case",
                json!({"id": id("500", c), "account_id": id("001", a), "subject": subject,
                    "description": description, "status": "Closed", "created_date": stamp(date),
                    "last_modified_date": stamp(known), "system_modstamp": stamp(known)}),
            );
            if r.chance(5) {
                org.delete("Case", &id("500", c), known + 5);
            }
        }
        for _ in 0..r.below(5) {
            let e = event_n;
            event_n += 1;
            let date = created + i64::try_from(r.below(1200)).unwrap_or(0);
            org.add(
                "EngagementEvent",
                json!({"id": format!("ev-{e}"), "account_id": id("001", a), "event_type": "email_open",
                    "occurred_at": stamp(date), "value": 1.0, "system_modstamp": stamp(date)}),
            );
        }
    }
    org
}

struct App {
    base: String,
    http: reqwest::Client,
    root: tempfile::TempDir,
}

impl App {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn ingest(&self, org_id: Option<&str>, org: &Org) {
        for object in [
            "Account",
            "Product2",
            "Order",
            "OrderItem",
            "Case",
            "EngagementEvent",
        ] {
            for chunk in org
                .records
                .get(object)
                .map_or(&[][..], Vec::as_slice)
                .chunks(2000)
            {
                let mut body = json!({"object": object, "records": chunk});
                if let Some(o) = org_id {
                    body["org_id"] = json!(o);
                }
                let (status, answer) = self.post("/v1/ingest", &body).await;
                assert_eq!(status, 200, "{answer}");
                assert_eq!(answer["rejected"], json!([]), "{object}: {answer}");
            }
            if let Some(deletions) = org.deletions.get(object) {
                let mut body = json!({"object": object, "deletions": deletions});
                if let Some(o) = org_id {
                    body["org_id"] = json!(o);
                }
                let (status, answer) = self.post("/v1/ingest", &body).await;
                assert_eq!(status, 200, "{answer}");
            }
        }
    }

    /// Exports and waits for the job; returns the export's directory.
    async fn export(&self, body: Value) -> std::path::PathBuf {
        let (status, job) = self.post("/v1/exports", &body).await;
        assert_eq!(status, 202, "{job}");
        let id = job["id"].as_str().expect("id").to_owned();
        for _ in 0..600 {
            let job: Value = self
                .http
                .get(format!("{}/v1/exports/{id}", self.base))
                .send()
                .await
                .expect("sent")
                .json()
                .await
                .expect("json");
            match job["state"].as_str() {
                Some("running") => tokio::time::sleep(Duration::from_millis(50)).await,
                Some("succeeded") => {
                    return self
                        .root
                        .path()
                        .join(body["directory"].as_str().expect("directory"));
                }
                _ => panic!("export did not succeed: {job}"),
            }
        }
        panic!("export {id} still running after 30 s");
    }

    /// The store's training set at `cutoff`: features and the sequence (week 0 first).
    async fn training_set(&self, cutoff: NaiveDate) -> BTreeMap<String, (Vec<f64>, Vec<f64>)> {
        let text = self
            .http
            .post(format!("{}/v1/training-sets", self.base))
            .json(&json!({"cutoffs": [cutoff], "horizon_days": 90, "include_sequences": true}))
            .send()
            .await
            .expect("sent")
            .text()
            .await
            .expect("body");
        let mut out = BTreeMap::new();
        let mut trailer = false;
        for line in text.lines() {
            match serde_json::from_str::<TrainingSetLine>(line).expect("a training-set line") {
                TrainingSetLine::Row(row) => {
                    let dense: Vec<f64> = row
                        .sequence
                        .expect("sequence asked for")
                        .iter()
                        .rev()
                        .flatten()
                        .copied()
                        .collect();
                    out.insert(row.account_id.to_string(), (row.features, dense));
                }
                TrainingSetLine::Trailer(_) => trailer = true,
                TrainingSetLine::Error(e) => panic!("training set failed: {e:?}"),
                TrainingSetLine::Header(_) => {}
            }
        }
        assert!(trailer, "the stream ends with its trailer");
        out
    }
}

async fn spawn(database_url: &str) -> App {
    let root = tempfile::tempdir().expect("tempdir");
    let settings = Settings {
        port: 0,
        database_url: database_url.to_owned(),
        export_root: root.path().to_path_buf(),
        ..Settings::default()
    };
    let clock = Arc::new(FixedClock(
        Utc.from_utc_datetime(&d(TODAY).and_hms_opt(12, 0, 0).expect("time")),
    ));
    let app = Application::build(&settings, clock).await.expect("starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    App {
        base,
        http: reqwest::Client::new(),
        root,
    }
}

/// SQLite always (a file, as in production); PostgreSQL in a fresh database when configured.
async fn databases(dir: &Path) -> Vec<String> {
    let mut urls = vec![format!(
        "sqlite://{}?mode=rwc",
        dir.join("store.sqlite").display()
    )];
    match std::env::var("SEXTANT_TEST_POSTGRES_URL") {
        Ok(base) => {
            let n: u64 = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let name = format!("sextant_test_{n:x}{:x}", std::process::id());
            let admin = Database::connect(&base)
                .await
                .expect("PostgreSQL reachable at SEXTANT_TEST_POSTGRES_URL");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create database");
            let (prefix, _) = base.rsplit_once('/').expect("url has a database name");
            urls.push(format!("{prefix}/{name}"));
        }
        Err(_) => eprintln!("SKIPPED PostgreSQL variant: SEXTANT_TEST_POSTGRES_URL is not set"),
    }
    urls
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The engine's features of the default org at `cutoff` from the export in `data`.
async fn engine(data: &Path, cutoff: NaiveDate, out: &Path) -> BTreeMap<String, FeatureRow> {
    let query = FeatureQuery::new("default", cutoff, &["Activated".to_owned()]).expect("query");
    let ctx = session(&Target::Local { partitions: 2 }, data)
        .await
        .expect("the export registers as the engine's tables");
    compute_to_parquet(&ctx, &query, out)
        .await
        .expect("compute");
    read_features(out)
        .expect("read")
        .map(|r| {
            let r = r.expect("row");
            (r.account_id.clone(), r)
        })
        .collect()
}

fn assert_same(
    what: &str,
    got: &BTreeMap<String, FeatureRow>,
    want: &BTreeMap<String, (Vec<f64>, Vec<f64>)>,
) {
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: accounts differ: the engine lacks {missing:?}, has extra {extra:?}"
    );
    for (account, (features, sequence)) in want {
        let row = &got[account];
        assert_eq!(row.features.len(), features.len());
        for (i, (a, b)) in row.features.iter().zip(features).enumerate() {
            assert!(
                close(*a, *b),
                "{what}: {account} {}: engine {a} vs store {b}",
                FEATURE_NAMES[i]
            );
        }
        let dense = row.dense_sequence();
        assert_eq!(
            dense.len(),
            sequence.len(),
            "{what}: {account} sequence length"
        );
        for (i, (a, b)) in dense.iter().zip(sequence).enumerate() {
            assert!(
                close(*a, *b),
                "{what}: {account} sequence week {} channel {}: engine {a} vs store {b}",
                i / 4,
                i % 4
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_on_the_stores_export_equals_the_stores_training_sets() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let org = generate(7);
    // The other org shares every id with different data; the default org must never see it.
    let other = generate(8);
    for (n, url) in databases(scratch.path()).await.into_iter().enumerate() {
        let app = spawn(&url).await;
        app.ingest(None, &org).await;
        app.ingest(Some(OTHER_ORG), &other).await;
        let all = app
            .export(json!({"directory": "everything", "max_file_rows": 700}))
            .await;
        for cutoff in [d("2021-07-01"), d("2022-10-15"), d("2024-03-01")] {
            let want = app.training_set(cutoff).await;
            assert!(
                want.len() > 15,
                "{cutoff}: the test org should give many accounts, got {}",
                want.len()
            );
            let got = engine(
                &all,
                cutoff,
                &scratch.path().join(format!("f-{cutoff}.parquet")),
            )
            .await;
            assert_same(&format!("{url} full export, {cutoff}"), &got, &want);

            // An as-of export of the org alone, known before the cut-off, is what the store held
            // then: the engine on it equals the training set of a store that received only what
            // was known before the cut-off. (Not the full store's: its training sets count an
            // account synced after the cut-off from its creation, and read a product's latest
            // category, by design.)
            let dir = format!("asof-{cutoff}");
            let known_before =
                Utc.from_utc_datetime(&cutoff.and_hms_opt(0, 0, 0).expect("midnight"));
            let asof = app
                .export(
                    json!({"directory": dir, "org_id": "default", "known_before": known_before}),
                )
                .await;
            let got = engine(
                &asof,
                cutoff,
                &scratch.path().join(format!("g-{cutoff}.parquet")),
            )
            .await;
            let then = spawn(&format!(
                "sqlite://{}?mode=rwc",
                scratch
                    .path()
                    .join(format!("then-{cutoff}-{n}.sqlite"))
                    .display()
            ))
            .await;
            then.ingest(None, &org.known_before(known_before.timestamp_micros()))
                .await;
            let want_then = then.training_set(cutoff).await;
            assert!(
                want_then.len() > 15,
                "{cutoff}: {} accounts then",
                want_then.len()
            );
            assert_same(&format!("{url} as-of export, {cutoff}"), &got, &want_then);
        }
    }
}
