//! Load benchmark of the gateway: requests per second and latency of `POST /v1/scores` over
//! loopback, with a production-sized churn model and features materialised, and the failed
//! requests while the current model changes under load.
//!
//! `cargo bench -p sextant-gateway --bench load -- [--seconds 10] [--rps 2000] [--accounts 100000]`
//!
//! What runs, all in this process on loopback:
//! - the real gateway (`Application::build`, its actix workers, JWT check, rate limiter off);
//! - a stand-in feature store that answers `POST /v1/features/online` from precomputed rows (the
//!   materialised online store; its own lookup cost is in `cargo bench -p sextant-feature-store
//!   --bench store`): 22 aggregates, 104 weeks × 4 channels and a country per account;
//! - a stand-in trainer serving a sequence churn model of the trained model's size (GRU hidden
//!   64 over 104 weeks, embedding, aggregate layer, head, wide part; deterministic weights) as
//!   `churn-v1` and `churn-v2`.
//!
//! Phases: (1) one-record calls offered at `--rps` (open loop: a call is sent on schedule whether
//! or not the earlier ones have answered); (2) 200-record calls, 4 at a time, as fast as they are
//! answered; (3) one-record calls at half the rate while the trainer's current version flips
//! between `churn-v1` and `churn-v2` every 500 ms and the gateway (refreshing every second) swaps
//! models under load: every non-200 answer is counted. The load generator shares the machine with
//! the gateway, as an Apex org would not: figures are a lower bound for the gateway alone.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, get, post, web};
use chrono::{NaiveDate, Utc};
use secrecy::SecretString;
use serde_json::json;
use sextant_contracts::SalesforceId;
use sextant_contracts::api::{OnlineFeatures, OnlineFeaturesRequest};
use sextant_gateway::auth::AuthSettings;
use sextant_gateway::{Application, Settings};

#[path = "../tests/support/churn.rs"]
mod churn;

use churn::{CHANNELS, FEATURES, HIDDEN, WEEKS, account, feature_names, model, row};

const SECRET: &str = "a-development-secret-of-at-least-32-bytes!";
/// Most calls the open loop keeps waiting at once; beyond it a due call is not sent but counted.
const MAX_IN_FLIGHT: u64 = 256;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Upstream {
    models: [String; 2],
    flip: AtomicBool,
}

#[post("/v1/features/online")]
async fn online(req: web::Json<OnlineFeaturesRequest>) -> HttpResponse {
    let rows = req
        .account_ids
        .iter()
        .map(|id| {
            let n = id
                .to_string()
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
            row(id, n)
        })
        .collect();
    HttpResponse::Ok().json(OnlineFeatures {
        as_of: NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"),
        feature_set: "rfmt-v2".into(),
        feature_names: feature_names(),
        sequence_channels: CHANNELS.iter().map(|s| (*s).to_owned()).collect(),
        rows,
        missing: Vec::new(),
    })
}

/// The prediction log: accepted and dropped (its cost is the store's, not the gateway's).
#[post("/v1/predictions")]
async fn predictions(req: web::Json<sextant_contracts::api::PredictionBatch>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"stored": req.predictions.len()}))
}

#[get("/v1/models/current")]
async fn current(up: web::Data<Upstream>) -> HttpResponse {
    let v = if up.flip.load(Ordering::Relaxed) {
        "churn-v2"
    } else {
        "churn-v1"
    };
    HttpResponse::Ok().json(json!({ "version": v }))
}

#[get("/v1/models/{version}/artifact")]
async fn artifact(up: web::Data<Upstream>, v: web::Path<String>) -> HttpResponse {
    match v.as_str() {
        "churn-v1" => HttpResponse::Ok()
            .content_type("application/json")
            .body(up.models[0].clone()),
        "churn-v2" => HttpResponse::Ok()
            .content_type("application/json")
            .body(up.models[1].clone()),
        _ => HttpResponse::NotFound().finish(),
    }
}

fn token() -> String {
    let now = Utc::now().timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"iss": "sextant-bench", "aud": "sextant-gateway", "sub": "apex", "exp": now + 3600, "iat": now}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token")
}

/// Latencies and outcomes of one phase.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    failed: u64,
    /// Calls not sent because `MAX_IN_FLIGHT` were already waiting (the gateway fell behind).
    shed: u64,
    versions: HashSet<String>,
}

impl Tally {
    fn line(&mut self, name: &str, seconds: f64, records_per_call: usize) -> String {
        self.latencies_us.sort_unstable();
        let n = self.latencies_us.len();
        let q = |p: f64| {
            if n == 0 {
                f64::NAN
            } else {
                self.latencies_us[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0
            }
        };
        format!(
            "{name:<34} {:>9.0} req/s {:>10.0} records/s   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>8.2} ms   failed {}   not sent (over {MAX_IN_FLIGHT} in flight) {}",
            n as f64 / seconds,
            (n * records_per_call) as f64 / seconds,
            q(0.50),
            q(0.99),
            q(1.0),
            self.failed,
            self.shed
        )
    }
}

async fn call(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    ids: &[SalesforceId],
) -> Result<(Duration, String), String> {
    let started = Instant::now();
    let resp = http
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "record_ids": ids }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {body}"));
    }
    let elapsed = started.elapsed();
    if body["scores"].as_array().map(Vec::len) != Some(ids.len()) {
        return Err(format!("not every record scored: {body}"));
    }
    Ok((
        elapsed,
        body["model_version"].as_str().unwrap_or("").to_owned(),
    ))
}

/// One-record calls offered at `rps` for `seconds` (open loop).
async fn open_loop(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    accounts: u64,
    rps: u64,
    seconds: u64,
) -> Tally {
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let sent = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(AtomicU64::new(0));
    let mut shed = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let total = rps * seconds;
    let mut tasks = Vec::with_capacity(total as usize);
    while sent.load(Ordering::Relaxed) < total {
        tick.tick().await;
        // How many calls are due by now.
        let due = ((started.elapsed().as_secs_f64() * rps as f64) as u64).min(total);
        while sent.load(Ordering::Relaxed) < due {
            let n = sent.fetch_add(1, Ordering::Relaxed);
            if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                shed += 1;
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (http, url, token, tally, flying) = (
                http.clone(),
                url.to_owned(),
                token.to_owned(),
                Arc::clone(&tally),
                Arc::clone(&in_flight),
            );
            tasks.push(tokio::spawn(async move {
                let id = account(n.wrapping_mul(2_654_435_761) % accounts);
                let out = call(&http, &url, &token, &[id]).await;
                flying.fetch_sub(1, Ordering::Relaxed);
                let mut t = tally
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match out {
                    Ok((d, v)) => {
                        t.latencies_us.push(d.as_micros() as u64);
                        t.versions.insert(v);
                    }
                    Err(e) => {
                        if t.failed < 3 {
                            eprintln!("failed call: {e}");
                        }
                        t.failed += 1;
                    }
                }
            }));
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut out = Arc::try_unwrap(tally)
        .ok()
        .map(|m| m.into_inner().unwrap_or_default())
        .unwrap_or_default();
    out.shed = shed;
    out
}

/// 200-record calls, `concurrency` at a time, for `seconds`.
async fn closed_loop(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    accounts: u64,
    concurrency: usize,
    seconds: u64,
) -> Tally {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (http, url, token) = (http.clone(), url.to_owned(), token.to_owned());
        workers.push(tokio::spawn(async move {
            let mut t = Tally::default();
            let mut k = w as u64 * 1_000_003;
            while Instant::now() < deadline {
                let ids: Vec<SalesforceId> = (0..200)
                    .map(|i| account((k + i * 7919) % accounts))
                    .collect();
                k += 200 * 7919;
                match call(&http, &url, &token, &ids).await {
                    Ok((d, v)) => {
                        t.latencies_us.push(d.as_micros() as u64);
                        t.versions.insert(v);
                    }
                    Err(e) => {
                        eprintln!("failed call: {e}");
                        t.failed += 1;
                    }
                }
            }
            t
        }));
    }
    let mut all = Tally::default();
    for w in workers {
        if let Ok(t) = w.await {
            all.latencies_us.extend(t.latencies_us);
            all.failed += t.failed;
            all.versions.extend(t.versions);
        }
    }
    all
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds = arg("--seconds", 10);
    let rps = arg("--rps", 2000);
    let accounts = arg("--accounts", 100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let up = web::Data::new(Upstream {
            models: [
                serde_json::to_string(&model("churn-v1", 1))?,
                serde_json::to_string(&model("churn-v2", 2))?,
            ],
            flip: AtomicBool::new(false),
        });
        // The feature store and the trainer stand-ins are separate servers, as they are
        // separate services: a busy store must not delay the gateway's model refresh.
        let store = HttpServer::new(move || {
            App::new()
                .app_data(web::JsonConfig::default().limit(1 << 20))
                .service(online)
                .service(predictions)
        })
        .workers(1)
        .bind(("127.0.0.1", 0))?;
        let store_url = format!("http://127.0.0.1:{}", store.addrs()[0].port());
        tokio::spawn(store.run());
        let data = up.clone();
        let trainer = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .service(current)
                .service(artifact)
        })
        .workers(1)
        .bind(("127.0.0.1", 0))?;
        let trainer_url = format!("http://127.0.0.1:{}", trainer.addrs()[0].port());
        tokio::spawn(trainer.run());

        let mut settings = Settings::with_auth(AuthSettings {
            rs256_public_key_pem: None,
            hs256_secret: Some(SecretString::from(SECRET.to_owned())),
            leeway_secs: 30,
            ..AuthSettings::new("sextant-bench", "sextant-gateway")
        });
        settings.port = 0;
        settings.feature_store_url = store_url;
        settings.trainer_url = trainer_url;
        settings.model_refresh_secs = 1;
        let app = Application::build(&settings).await?;
        let url = format!("http://127.0.0.1:{}/v1/scores", app.port());
        tokio::spawn(app.run_until_stopped());

        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .timeout(Duration::from_secs(30))
            .build()?;
        let token = token();
        // Wait for the model, and warm up.
        let deadline = Instant::now() + Duration::from_secs(30);
        while call(&http, &url, &token, &[account(1)]).await.is_err() {
            if Instant::now() > deadline {
                return Err("the gateway loaded no model in 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = open_loop(&http, &url, &token, accounts, rps / 4, 2).await;

        println!(
            "gateway load, loopback, {} cores; model: GRU hidden {HIDDEN} over {WEEKS} weeks × {} channels, {FEATURES} aggregates; {accounts} accounts; {seconds} s per phase",
            std::thread::available_parallelism().map_or(0, usize::from),
            CHANNELS.len()
        );
        let mut one = open_loop(&http, &url, &token, accounts, rps, seconds).await;
        println!(
            "{}",
            one.line(&format!("1 record, offered {rps} req/s"), seconds as f64, 1)
        );
        let mut batch = closed_loop(&http, &url, &token, accounts, 4, seconds).await;
        println!(
            "{}",
            batch.line("200 records, 4 concurrent", seconds as f64, 200)
        );

        // Promotions under load: the current version flips every 500 ms.
        let flipping = Arc::new(AtomicBool::new(true));
        let (f, u) = (Arc::clone(&flipping), up.clone());
        let flipper = tokio::spawn(async move {
            let mut flips = 0u64;
            while f.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                u.flip.fetch_xor(true, Ordering::Relaxed);
                flips += 1;
            }
            flips
        });
        let mut swap = open_loop(&http, &url, &token, accounts, rps / 2, seconds).await;
        flipping.store(false, Ordering::Relaxed);
        let flips = flipper.await.unwrap_or(0);
        println!(
            "{}",
            swap.line(
                &format!("1 record, {} req/s, model flipping", rps / 2),
                seconds as f64,
                1
            )
        );
        // After the last flip the gateway must serve the trainer's current version.
        let want = if up.flip.load(Ordering::Relaxed) {
            "churn-v2"
        } else {
            "churn-v1"
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let served = loop {
            let v = call(&http, &url, &token, &[account(7)])
                .await
                .map(|(_, v)| v)
                .unwrap_or_default();
            if v == want || Instant::now() > deadline {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        println!("after the flips: trainer's current {want}, gateway serves {served}");
        let mut seen: Vec<_> = swap.versions.iter().cloned().collect();
        seen.sort();
        println!(
            "promotions under load: {flips} flips of the current version, versions served {seen:?}, failed requests {}",
            swap.failed
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
