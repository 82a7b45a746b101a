//! The engine against the reference definitions, and Ballista against the single-node engine.
//!
//! (a) DataFusion single-node results equal `sextant_features::aggregates::aggregate_features` and
//!     the weekly sequence builder, computed here in plain Rust from the same generated Parquet
//!     files with the feature store's point-in-time rules, for every account (floats within 1e-9
//!     relative, no vector ↔ no row).
//! (b) A scheduler and two executors, started as real `sextant-engine` processes on free loopback
//!     ports, compute the same data set; the result equals the single-node one bit for bit.
//! (c) The command line refuses bad input with a message and a non-zero exit code.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sextant_feature_engine::generate::{ORG, generate};
use sextant_feature_engine::{
    FeatureQuery, FeatureRow, Target, compute_to_parquet, read_features, session,
};
use sextant_features::aggregates::{
    CaseFact, FEATURE_NAMES, History, PurchaseFact, aggregate_features,
};
use sextant_features::sequence::{Activity, MAX_WEEKS, Transaction, histories_as_of};

const LINES: u64 = 20_000;
const SEED: u64 = 7;
const DAY_US: i64 = 86_400_000_000;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

fn day_date(n: i64) -> NaiveDate {
    NaiveDate::default() + chrono::Duration::days(n)
}

/// The generated data set, written once per test binary.
fn data() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "feature-engine-{}-{LINES}-{SEED}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let g = generate(&dir, LINES, SEED).expect("generate test data");
        assert_eq!(g.lines, LINES);
        dir
    })
}

// ---------------------------------------------------------------------------------------------
// The reference: the feature store's point-in-time rules in plain Rust over every row.

/// One version of a record: key, known time, tombstone flag and the columns by name.
#[derive(Debug, Clone)]
struct Version {
    org: String,
    id: String,
    known_us: i64,
    deleted: bool,
    s: HashMap<String, Option<String>>,
    n: HashMap<String, Option<f64>>,
    b: HashMap<String, Option<bool>>,
}

impl Version {
    fn str(&self, c: &str) -> Option<&str> {
        self.s.get(c).and_then(|v| v.as_deref())
    }
    fn num(&self, c: &str) -> Option<f64> {
        self.n.get(c).copied().flatten()
    }
}

fn read_table(data: &Path, table: &str) -> Vec<Version> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join(table))
        .expect("table dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&f).expect("open"))
            .expect("parquet")
            .build()
            .expect("reader");
        for batch in reader {
            out.extend(versions(&batch.expect("batch")));
        }
    }
    out
}

fn versions(batch: &RecordBatch) -> Vec<Version> {
    let schema = batch.schema();
    let mut rows: Vec<Version> = (0..batch.num_rows())
        .map(|_| Version {
            org: String::new(),
            id: String::new(),
            known_us: 0,
            deleted: false,
            s: HashMap::new(),
            n: HashMap::new(),
            b: HashMap::new(),
        })
        .collect();
    for (field, col) in schema.fields().iter().zip(batch.columns()) {
        let name = field.name().as_str();
        match col.data_type() {
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
                let c = cast(col, &DataType::Utf8).expect("cast");
                let c = c.as_string::<i32>();
                for (i, r) in rows.iter_mut().enumerate() {
                    let v = c.is_valid(i).then(|| c.value(i).to_owned());
                    match name {
                        "org_id" => r.org = v.unwrap_or_default(),
                        "id" => r.id = v.unwrap_or_default(),
                        _ => {
                            r.s.insert(name.to_owned(), v);
                        }
                    }
                }
            }
            DataType::Int64 => {
                let c = col.as_primitive::<Int64Type>();
                for (i, r) in rows.iter_mut().enumerate() {
                    let v = c.is_valid(i).then(|| c.value(i));
                    if name == "known_us" {
                        r.known_us = v.expect("known_us");
                    } else {
                        r.n.insert(name.to_owned(), v.map(|x| x as f64));
                    }
                }
            }
            DataType::Int32 => {
                let c = col.as_primitive::<Int32Type>();
                for (i, r) in rows.iter_mut().enumerate() {
                    r.n.insert(
                        name.to_owned(),
                        c.is_valid(i).then(|| f64::from(c.value(i))),
                    );
                }
            }
            DataType::Float64 => {
                let c = col.as_primitive::<Float64Type>();
                for (i, r) in rows.iter_mut().enumerate() {
                    r.n.insert(name.to_owned(), c.is_valid(i).then(|| c.value(i)));
                }
            }
            DataType::Boolean => {
                let c = col.as_boolean();
                for (i, r) in rows.iter_mut().enumerate() {
                    let v = c.is_valid(i).then(|| c.value(i));
                    if name == "is_deleted" {
                        r.deleted = v.expect("is_deleted");
                    } else {
                        r.b.insert(name.to_owned(), v);
                    }
                }
            }
            other => panic!("unexpected column type {other}"),
        }
    }
    rows
}

/// The state of every record of `org` as of known time `k`: the latest version known before `k`,
/// unless that version is a tombstone.
fn current(versions: &[Version], org: &str, k: i64) -> HashMap<String, Version> {
    let mut latest: HashMap<String, &Version> = HashMap::new();
    for v in versions.iter().filter(|v| v.org == org && v.known_us < k) {
        let e = latest.entry(v.id.clone()).or_insert(v);
        if v.known_us > e.known_us {
            *e = v;
        }
    }
    latest
        .into_iter()
        .filter(|(_, v)| !v.deleted)
        .map(|(id, v)| (id, v.clone()))
        .collect()
}

type Expected = BTreeMap<String, (Vec<f64>, Vec<f64>)>;

/// Features and dense sequences of every account with history, as `sextant_features` computes
/// them from histories built with the feature store's rules.
fn reference(data: &Path, org: &str, cutoff: NaiveDate, statuses: &[&str]) -> Expected {
    let cut = (cutoff - NaiveDate::default()).num_days();
    let k = cut * DAY_US;
    let statuses: Vec<String> = statuses.iter().map(|s| s.to_lowercase()).collect();

    // Accounts alive as of the cut-off (latest known before it, else the earliest version).
    let mut by_id: HashMap<String, Vec<Version>> = HashMap::new();
    for v in read_table(data, "fs_account")
        .into_iter()
        .filter(|v| v.org == org)
    {
        by_id.entry(v.id.clone()).or_default().push(v);
    }
    let alive: std::collections::HashSet<String> = by_id
        .into_iter()
        .filter_map(|(id, vs)| {
            let before = vs
                .iter()
                .filter(|v| v.known_us < k)
                .max_by_key(|v| v.known_us);
            let chosen = before.or_else(|| vs.iter().min_by_key(|v| v.known_us))?;
            let created_ok = chosen.num("event_day").is_none_or(|e| (e as i64) < cut);
            (!chosen.deleted && created_ok).then_some(id)
        })
        .collect();

    let orders = current(&read_table(data, "fs_order"), org, k);
    let live: HashMap<String, (String, i64)> = orders
        .into_iter()
        .filter_map(|(id, v)| {
            let day = v.num("event_day")? as i64;
            let status = v.str("status")?.to_lowercase();
            let account = v.str("account_id")?.to_owned();
            (day < cut && statuses.contains(&status) && alive.contains(&account))
                .then_some((id, (account, day)))
        })
        .collect();

    // Products: latest version whatever its known time (as the feature store reads categories).
    let mut product_latest: HashMap<String, Version> = HashMap::new();
    for v in read_table(data, "fs_product")
        .into_iter()
        .filter(|v| v.org == org)
    {
        match product_latest.get(&v.id) {
            Some(e) if e.known_us >= v.known_us => {}
            _ => {
                product_latest.insert(v.id.clone(), v);
            }
        }
    }

    let mut facts: HashMap<String, PurchaseFact> = live
        .iter()
        .map(|(id, (_, day))| {
            (
                id.clone(),
                PurchaseFact {
                    date: day_date(*day),
                    amount: 0.0,
                    items: 0.0,
                    returned: 0.0,
                },
            )
        })
        .collect();
    let mut order_category: HashMap<(String, Option<String>), f64> = HashMap::new();
    for (_, line) in current(&read_table(data, "fs_order_item"), org, k) {
        let Some(order) = line.str("order_id") else {
            continue;
        };
        let Some(fact) = facts.get_mut(order) else {
            continue;
        };
        let q = line.num("quantity").expect("quantity");
        let p = line.num("unit_price").expect("unit_price");
        let category = line
            .str("product_id")
            .and_then(|pid| product_latest.get(pid))
            .and_then(|pv| pv.str("category"))
            .map(str::to_owned);
        if q > 0.0 {
            fact.amount += q * p;
            fact.items += q;
            *order_category
                .entry((order.to_owned(), category))
                .or_default() += q * p;
        } else if q < 0.0 {
            fact.returned += -q * p;
        }
    }
    let mut histories: HashMap<String, History> = HashMap::new();
    for ((order, category), amount) in order_category {
        if let Some(cat) = category
            && amount > 0.0
        {
            let account = &live[&order].0;
            let h = histories.entry(account.clone()).or_default();
            match h.category_spend.iter_mut().find(|(c, _)| *c == cat) {
                Some((_, s)) => *s += amount,
                None => h.category_spend.push((cat, amount)),
            }
        }
    }
    for (order, fact) in facts {
        let account = &live[&order].0;
        histories
            .entry(account.clone())
            .or_default()
            .purchases
            .push(fact);
    }
    for (_, c) in current(&read_table(data, "fs_case"), org, k) {
        let (Some(account), Some(day)) = (c.str("account_id"), c.num("event_day")) else {
            continue;
        };
        if (day as i64) < cut {
            histories
                .entry(account.to_owned())
                .or_default()
                .cases
                .push(CaseFact {
                    date: day_date(day as i64),
                    negative: c.b.get("negative").copied().flatten().unwrap_or(false),
                });
        }
    }
    for (_, e) in current(&read_table(data, "fs_engagement_event"), org, k) {
        let (Some(account), Some(day)) = (e.str("account_id"), e.num("event_day")) else {
            continue;
        };
        if (day as i64) < cut {
            histories
                .entry(account.to_owned())
                .or_default()
                .engagement
                .push(day_date(day as i64));
        }
    }

    let mut out = Expected::new();
    for (account, h) in histories {
        if !alive.contains(&account) {
            continue;
        }
        let Some(features) = aggregate_features(&h, cutoff) else {
            continue;
        };
        let txns = h
            .purchases
            .iter()
            .map(|p| Transaction {
                customer: 0u8,
                date: p.date,
                activity: Activity::Order {
                    spend: p.amount,
                    items: p.items,
                },
            })
            .chain(h.cases.iter().map(|c| Transaction {
                customer: 0u8,
                date: c.date,
                activity: Activity::Case,
            }));
        let seq = histories_as_of(txns, cutoff, MAX_WEEKS).expect("sequence");
        let values = seq[&0u8].sequence.values().to_vec();
        out.insert(account, (features, values));
    }
    out
}

fn rows(path: &Path) -> BTreeMap<String, FeatureRow> {
    read_features(path)
        .expect("open result")
        .map(|r| {
            let r = r.expect("row");
            (r.account_id.clone(), r)
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

async fn single_node(cutoff: NaiveDate, statuses: &[&str], out: &Path) {
    let statuses: Vec<String> = statuses.iter().map(|s| (*s).to_owned()).collect();
    let query = FeatureQuery::new(ORG, cutoff, &statuses).expect("query");
    let ctx = session(&Target::Local { partitions: 2 }, data())
        .await
        .expect("session");
    compute_to_parquet(&ctx, &query, out)
        .await
        .expect("compute");
}

async fn check_against_reference(cutoff: &str, statuses: &[&str]) {
    let cutoff = d(cutoff);
    let out = data().join(format!("features-{cutoff}-{}.parquet", statuses.join("+")));
    single_node(cutoff, statuses, &out).await;
    let got = rows(&out);
    let want = reference(data(), ORG, cutoff, statuses);
    assert!(want.len() > 50, "the test data should give many accounts");
    let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "accounts differ: missing {missing:?}, extra {extra:?}"
    );
    let mut nonzero_seq = 0;
    for (account, (features, sequence)) in &want {
        let row = &got[account];
        for (i, (a, b)) in row.features.iter().zip(features).enumerate() {
            assert!(
                close(*a, *b),
                "{account} {}: engine {a} vs reference {b}",
                FEATURE_NAMES[i]
            );
        }
        let dense = row.dense_sequence();
        assert_eq!(dense.len(), sequence.len());
        for (i, (a, b)) in dense.iter().zip(sequence).enumerate() {
            assert!(
                close(*a, *b),
                "{account} sequence week {} channel {}: engine {a} vs reference {b}",
                i / 4,
                i % 4
            );
        }
        nonzero_seq += usize::from(!row.sequence.is_empty());
    }
    assert!(nonzero_seq > 0, "some sequences must be non-empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_equals_the_reference_definitions() {
    check_against_reference("2024-01-01", &["Activated"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_equals_the_reference_at_an_early_cutoff_with_more_statuses() {
    check_against_reference("2022-09-15", &["activated", "DRAFT"]).await;
}

// ---------------------------------------------------------------------------------------------
// Ballista: a scheduler and two executors as real processes.

/// A child process that is killed when dropped.
#[derive(Debug)]
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn spawn(args: &[&str], log: PathBuf) -> Proc {
    let out = File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_sextant-engine"))
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn sextant-engine");
    Proc { child, log }
}

fn logs(procs: &[&Proc]) -> String {
    procs
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            let tail: String = text
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            format!("--- {}\n{tail}", p.log.display())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn wait_for_port(port: u16, procs: &[&Proc]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "port {port} never opened\n{}",
            logs(procs)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` on the scheduler's REST API (same port as its gRPC service).
fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

#[test]
fn ballista_with_two_executor_processes_equals_single_node() {
    let tmp = data().join("ballista");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let sched_port = free_port();
    let sp = sched_port.to_string();
    let scheduler = spawn(
        &["scheduler", "--bind-host", "127.0.0.1", "--bind-port", &sp],
        tmp.join("scheduler.log"),
    );
    wait_for_port(sched_port, &[&scheduler]);
    let mut executors = Vec::new();
    let mut work_dirs = Vec::new();
    for i in 0..2 {
        let (flight, grpc) = (free_port(), free_port());
        let work = tmp.join(format!("executor-{i}"));
        std::fs::create_dir_all(&work).expect("work dir");
        let e = spawn(
            &[
                "executor",
                "--scheduler-host",
                "127.0.0.1",
                "--scheduler-port",
                &sp,
                "--bind-host",
                "127.0.0.1",
                "--external-host",
                "127.0.0.1",
                "--bind-port",
                &flight.to_string(),
                "--bind-grpc-port",
                &grpc.to_string(),
                "--concurrent-tasks",
                "2",
                "--work-dir",
                work.to_str().expect("utf-8 path"),
            ],
            tmp.join(format!("executor-{i}.log")),
        );
        wait_for_port(flight, &[&scheduler, &e]);
        executors.push(e);
        work_dirs.push(work);
    }
    let all: Vec<&Proc> = std::iter::once(&scheduler).chain(&executors).collect();
    // Both executors registered with the scheduler.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = http_get(sched_port, "/api/executors");
        let json = body.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let registered = serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            .unwrap_or(0);
        if registered == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "executors did not register: {body}\n{}",
            logs(&all)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let cutoff = "2024-01-01";
    let distributed = tmp.join("features-ballista.parquet");
    let output = Command::new(env!("CARGO_BIN_EXE_sextant-engine"))
        .args([
            "compute",
            "--data",
            data().to_str().expect("utf-8 path"),
            "--cutoff",
            cutoff,
            "--scheduler",
            &format!("127.0.0.1:{sched_port}"),
            "--out",
            distributed.to_str().expect("utf-8 path"),
        ])
        .output()
        .expect("run compute");
    assert!(
        output.status.success(),
        "compute on Ballista failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        logs(&all)
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("\"engine\": \"ballista\""), "{summary}");

    let local = tmp.join("features-local.parquet");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(single_node(d(cutoff), &["Activated"], &local));

    let (a, b) = (rows(&distributed), rows(&local));
    assert!(a.len() > 50, "the distributed result has {} rows", a.len());
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same accounts"
    );
    for (account, row) in &a {
        let other = &b[account];
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&row.features),
            bits(&other.features),
            "{account}: features differ"
        );
        assert_eq!(
            bits(&row.dense_sequence()),
            bits(&other.dense_sequence()),
            "{account}: sequences differ"
        );
    }
    // Both executors ran tasks: each wrote shuffle files for the job into its work dir.
    for w in &work_dirs {
        let entries = std::fs::read_dir(w).map(Iterator::count).unwrap_or(0);
        assert!(
            entries > 0,
            "executor work dir {} is empty: it ran no task\n{}",
            w.display(),
            logs(&all)
        );
    }
    drop(all);
}

// ---------------------------------------------------------------------------------------------
// The command line.

#[test]
fn cli_refuses_bad_input_with_a_message() {
    let bin = env!("CARGO_BIN_EXE_sextant-engine");
    let empty = data().join("no-such-export");
    std::fs::create_dir_all(&empty).expect("dir");
    let out = Command::new(bin)
        .args([
            "compute",
            "--data",
            empty.to_str().expect("utf-8"),
            "--cutoff",
            "2024-01-01",
            "--out",
            data().join("x.parquet").to_str().expect("utf-8"),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fs_account not found"), "{err}");

    let out = Command::new(bin)
        .args([
            "compute",
            "--data",
            data().to_str().expect("utf-8"),
            "--cutoff",
            "2024-13-01",
            "--out",
            "x.parquet",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "clap rejects a bad date");

    let out = Command::new(bin)
        .args([
            "compute",
            "--data",
            data().to_str().expect("utf-8"),
            "--cutoff",
            "2024-01-01",
            "--purchase-statuses",
            "",
            "--out",
            data().join("y.parquet").to_str().expect("utf-8"),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("purchase statuses"));

    // No scheduler listening: an error, not a hang or a panic.
    let closed = free_port().to_string();
    let out = Command::new(bin)
        .args([
            "compute",
            "--data",
            data().to_str().expect("utf-8"),
            "--cutoff",
            "2024-01-01",
            "--scheduler",
            &format!("127.0.0.1:{closed}"),
            "--out",
            data().join("z.parquet").to_str().expect("utf-8"),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("query failed"));

    let out = Command::new(bin)
        .args(["generate", "--lines", "0", "--out", "unused"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn generation_is_deterministic_and_has_every_case() {
    let a = data().join("det-a");
    let b = data().join("det-b");
    let ga = generate(&a, 3_000, 99).expect("generate a");
    let gb = generate(&b, 3_000, 99).expect("generate b");
    assert_eq!(ga, gb);
    for t in sextant_feature_engine::schema::TABLES {
        let fa = std::fs::read(a.join(t).join("part-00000.parquet")).expect("file a");
        let fb = std::fs::read(b.join(t).join("part-00000.parquet")).expect("file b");
        assert_eq!(fa, fb, "{t} differs between two runs with the same seed");
    }
    let orders = read_table(data(), "fs_order");
    assert!(orders.iter().any(|v| v.deleted), "order tombstones");
    assert!(orders.iter().any(|v| v.org != ORG), "another org");
    let statuses: std::collections::BTreeSet<&str> =
        orders.iter().filter_map(|v| v.str("status")).collect();
    for s in ["Activated", "activated", "Draft", "Cancelled"] {
        assert!(statuses.contains(s), "status {s}");
    }
    let lines = read_table(data(), "fs_order_item");
    assert!(
        lines
            .iter()
            .any(|v| v.num("quantity").is_some_and(|q| q < 0.0)),
        "returns"
    );
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for v in &lines {
        *seen.entry(v.id.as_str()).or_default() += 1;
    }
    assert!(seen.values().any(|n| *n > 1), "line versions");
}
