//! Load benchmark of the gateway: requests per second and latency of `POST /v1/scores` over
//! loopback, with a production-sized churn model and features materialised, and the failed
//! requests while the current model changes under load.
//!
//! `cargo bench -p sextant-gateway --bench load -- [--seconds 10] [--rps 2000] [--accounts 100000]
//! [--concurrency 32] [--peer PYTHON]` (`scripts/bench/gateway_vs_python.sh` sets up the peer's
//! Python and runs it).
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
//! models under load: every non-200 answer is counted; (4) one-record calls, `--concurrency` at a
//! time as fast as they are answered: the most requests per second.
//!
//! With `--peer PYTHON` (a Python with `benches/peer/requirements.txt` installed) the same run
//! starts `benches/peer/server.py`, the same scoring written with FastAPI and PyTorch against the
//! same feature store and model, checks that it gives the gateway's scores and factors for the
//! same accounts, and runs phases (4) and (2) against both servers taking turns (two turns each
//! of half a phase, so that a change in the shared host's speed weighs on both alike).
//!
//! The load generator shares the machine with the server under test, as an Apex org would not:
//! figures are a lower bound for the server alone.

/// The allocator the service binaries run with.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

fn arg_str(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
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
            // One account in ten has no country: the model's unknown category.
            let mut r = row(id, n);
            if n % 10 == 0 {
                r.attributes.clear();
            }
            r
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
    fn absorb(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.failed += other.failed;
        self.shed += other.shed;
        self.versions.extend(other.versions);
    }

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

/// The load phases' HTTP/1.1 client: keep-alive connections from a pool, a request written as
/// bytes and the answer read by its `Content-Length`. The generator shares the cores with the
/// server under test, so it must cost little per call: this costs a fraction of `reqwest`'s
/// layers, and the same for every server it loads.
#[derive(Default)]
struct Lean {
    idle: std::sync::Mutex<Vec<(String, tokio::net::TcpStream)>>,
}

type Http = Arc<Lean>;

impl Lean {
    /// `POST` of a JSON body to `url` (`http://host:port/path`): the status and the body. When a
    /// pooled connection fails before any byte of the answer (the server closed it while idle,
    /// its keep-alive timeout), the request is sent once more on a new connection, as HTTP
    /// clients do for idempotent-enough calls; scoring is. An answer with `Connection: close`
    /// does not go back to the pool. Chunked answers are not read (neither server sends them).
    async fn post(&self, url: &str, token: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("not an http URL: {url}"))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        let reused = {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            idle.iter()
                .position(|(h, _)| h == host)
                .map(|i| idle.swap_remove(i).1)
        };
        let (stream, answer) = match reused {
            Some(stream) => match exchange(stream, &request).await {
                Err(Exchange::Closed) => exchange(connect(host).await?, &request).await,
                other => other,
            },
            None => exchange(connect(host).await?, &request).await,
        }
        .map_err(|e| match e {
            Exchange::Closed => "the server closed the connection".to_owned(),
            Exchange::Failed(e) => e,
        })?;
        let (status, body, keep) = answer;
        if keep {
            self.idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((host.to_owned(), stream));
        }
        Ok((status, body))
    }
}

async fn connect(host: &str) -> Result<tokio::net::TcpStream, String> {
    let s = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(s)
}

/// Why an exchange failed: closed before any byte of the answer (safe to send again), or not.
enum Exchange {
    Closed,
    Failed(String),
}

/// Writes `request` and reads one answer: the stream back, with the status, the body and
/// whether the connection may be used again.
async fn exchange(
    mut stream: tokio::net::TcpStream,
    request: &[u8],
) -> Result<(tokio::net::TcpStream, (u16, Vec<u8>, bool)), Exchange> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let failed = |e: std::io::Error| Exchange::Failed(e.to_string());
    if stream.write_all(request).await.is_err() {
        return Err(Exchange::Closed);
    }
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16384];
    let (status, head_len, length, keep) = loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) if buf.is_empty() => return Err(Exchange::Closed),
            Ok(0) => return Err(Exchange::Failed("the server closed mid-answer".into())),
            Ok(n) => n,
            Err(e) => return Err(failed(e)),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]);
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| Exchange::Failed(format!("no status line in {head:?}")))?;
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .ok_or_else(|| Exchange::Failed(format!("no Content-Length in {head:?}")))?;
            let close = head.lines().any(|l| {
                l.split_once(':').is_some_and(|(k, v)| {
                    k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close")
                })
            });
            break (status, end + 4, length, !close);
        }
    };
    while buf.len() < head_len + length {
        let n = stream.read(&mut chunk).await.map_err(failed)?;
        if n == 0 {
            return Err(Exchange::Failed("the server closed mid-answer".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if buf.len() > head_len + length {
        return Err(Exchange::Failed(format!(
            "{} bytes past the answer's Content-Length",
            buf.len() - head_len - length
        )));
    }
    buf.drain(..head_len);
    Ok((stream, (status, buf, keep)))
}

async fn call(
    http: &Http,
    url: &str,
    token: &str,
    ids: &[SalesforceId],
) -> Result<(Duration, String), String> {
    let started = Instant::now();
    let request = serde_json::to_vec(&json!({ "record_ids": ids })).map_err(|e| e.to_string())?;
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(30), http.post(url, token, &request))
            .await
            .map_err(|_| "no answer within 30 s".to_owned())??;
    let elapsed = started.elapsed();
    if status != 200 {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
    }
    // What the generator needs of the answer, no more: its parsing shares the cores.
    #[derive(serde::Deserialize)]
    struct Answer {
        model_version: String,
        scores: Vec<serde::de::IgnoredAny>,
    }
    let answer: Answer = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    if answer.scores.len() != ids.len() {
        return Err(format!(
            "not every record scored: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok((elapsed, answer.model_version))
}

/// The scores of `ids` as one server answers them: per record id, the score and the names of
/// its top factors.
async fn scored(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    ids: &[SalesforceId],
) -> Result<std::collections::HashMap<String, (f64, Vec<String>)>, String> {
    let body: serde_json::Value = http
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "record_ids": ids }))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let scores = body["scores"]
        .as_array()
        .ok_or_else(|| format!("no scores in {body}"))?;
    Ok(scores
        .iter()
        .map(|s| {
            let factors = s["factors"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .map(|x| x["factor"].as_str().unwrap_or("").to_owned())
                        .collect()
                })
                .unwrap_or_default();
            (
                s["record_id"].as_str().unwrap_or("").to_owned(),
                (s["score"].as_f64().unwrap_or(f64::NAN), factors),
            )
        })
        .collect())
}

/// Starts the FastAPI + PyTorch peer on a free port and waits for it (importing torch takes
/// seconds): its scores URL, and the child to stop.
async fn start_peer(
    python: &str,
    store_url: &str,
    trainer_url: &str,
) -> Result<(String, std::process::Child), Box<dyn std::error::Error>> {
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer/server.py");
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let mut child = std::process::Command::new(python)
        .arg(script)
        .args(["--port", &port.to_string(), "--store", store_url])
        .args(["--trainer", trainer_url, "--secret", SECRET])
        .args(["--workers", &workers.to_string()])
        .spawn()
        .map_err(|e| format!("could not start the peer with {python}: {e}"))?;
    let health = format!("http://127.0.0.1:{port}/healthz");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(format!("the peer exited at start-up: {status}").into());
        }
        if http
            .get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("the peer did not answer /healthz within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((format!("http://127.0.0.1:{port}/v1/scores"), child))
}

/// One-record calls offered at `rps` for `seconds` (open loop).
async fn open_loop(
    http: &Http,
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

/// Calls of `records` records, `concurrency` at a time, for `seconds`.
async fn closed_loop(
    http: &Http,
    url: &str,
    token: &str,
    accounts: u64,
    (records, concurrency): (u64, usize),
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
                let ids: Vec<SalesforceId> = (0..records)
                    .map(|i| account((k + i * 7919) % accounts))
                    .collect();
                k += records * 7919;
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
    let concurrency = usize::try_from(arg("--concurrency", 32))?;
    let peer = arg_str("--peer");
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
        settings.feature_store_url = store_url.clone();
        settings.trainer_url = trainer_url.clone();
        settings.model_refresh_secs = 1;
        let app = Application::build(&settings).await?;
        let url = format!("http://127.0.0.1:{}/v1/scores", app.port());
        tokio::spawn(app.run_until_stopped());

        let checker = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let http = Http::default();
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
        let mut batch = closed_loop(&http, &url, &token, accounts, (200, 4), seconds).await;
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

        // (4) The most requests per second, one record a call.
        let mut most =
            closed_loop(&http, &url, &token, accounts, (1, concurrency), seconds).await;
        let most_line = most.line(
            &format!("1 record, {concurrency} concurrent"),
            seconds as f64,
            1,
        );
        println!("{most_line}");

        let Some(python) = peer else {
            println!(
                "FastAPI + PyTorch peer: not run (give --peer PYTHON, or run scripts/bench/gateway_vs_python.sh)"
            );
            return Ok(());
        };
        // Both servers must score the same model: hold the trainer at churn-v1.
        up.flip.store(false, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(5);
        while call(&http, &url, &token, &[account(7)])
            .await
            .map(|(_, v)| v)
            .unwrap_or_default()
            != "churn-v1"
        {
            if Instant::now() > deadline {
                return Err("the gateway did not return to churn-v1".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (peer_url, child) = start_peer(&python, &store_url, &trainer_url).await?;
        let outcome = versus_peer(
            (&checker, &http),
            (&url, &peer_url),
            &token,
            accounts,
            (concurrency, seconds),
        )
        .await;
        stop(child);
        outcome
    })
}

/// Checks that the peer scores as the gateway does, then loads it as the gateway was loaded
/// and prints the two side by side.
async fn versus_peer(
    (checker, http): (&reqwest::Client, &Http),
    (url, peer_url): (&str, &str),
    token: &str,
    accounts: u64,
    (concurrency, seconds): (usize, u64),
) -> Result<(), Box<dyn std::error::Error>> {
    let ids: Vec<SalesforceId> = (0..50).map(|i| account(i * 7919 % accounts)).collect();
    let ours = scored(checker, url, token, &ids).await?;
    let theirs = scored(checker, peer_url, token, &ids).await?;
    let (mut largest, mut same_factors) = (0.0f64, 0);
    for (id, (score, factors)) in &ours {
        let (s, f) = theirs
            .get(id)
            .ok_or_else(|| format!("the peer did not score {id}"))?;
        largest = largest.max((score - s).abs());
        same_factors += usize::from(factors == f);
    }
    println!(
        "peer check: {} accounts, largest score difference from the gateway {largest:.1e}, same top factors for {same_factors}",
        ours.len()
    );
    if ours.len() != ids.len() || largest.is_nan() || largest > 1e-4 || same_factors != ours.len() {
        return Err(
            "the peer does not give the gateway's scores and factors: not the same model".into(),
        );
    }
    // Warm up: torch's first passes allocate.
    let _ = closed_loop(http, peer_url, token, accounts, (1, 4), 2).await;
    // The two servers take turns, so that a change in the machine's speed (the host is shared)
    // weighs on both alike: two turns each of half a phase, for one record and for 200.
    let half = (seconds / 2).max(1);
    let mut tallies: [Tally; 4] = Default::default();
    for shape in [(1, concurrency), (200, 4)] {
        let at = if shape.0 == 1 { 0 } else { 2 };
        for _ in 0..2 {
            for (k, target) in [url, peer_url].into_iter().enumerate() {
                let t = closed_loop(http, target, token, accounts, shape, half).await;
                tallies[at + k].absorb(t);
            }
        }
    }
    let span = (2 * half) as f64;
    let [ours, theirs, ours_batch, theirs_batch] = &mut tallies;
    for (t, name, records) in [
        (
            &mut *ours,
            format!("gateway: 1 record, {concurrency} concurrent"),
            1,
        ),
        (
            &mut *theirs,
            format!("peer: 1 record, {concurrency} concurrent"),
            1,
        ),
        (
            &mut *ours_batch,
            "gateway: 200 records, 4 concurrent".into(),
            200,
        ),
        (
            &mut *theirs_batch,
            "peer: 200 records, 4 concurrent".into(),
            200,
        ),
    ] {
        println!("{}", t.line(&name, span, records));
    }
    let rate = |t: &Tally| t.latencies_us.len() as f64 / span;
    println!(
        "side by side, in turns (requests per second; same model, features, machine and load generator): 1 record {:.0} vs {:.0} = {:.1}×; 200 records {:.1} vs {:.1} = {:.1}×",
        rate(ours),
        rate(theirs),
        rate(ours) / rate(theirs),
        rate(ours_batch),
        rate(theirs_batch),
        rate(ours_batch) / rate(theirs_batch)
    );
    Ok(())
}

/// Stops the peer and its uvicorn workers: SIGTERM (uvicorn stops its workers on it), then a
/// kill after five seconds.
fn stop(mut child: std::process::Child) {
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}
