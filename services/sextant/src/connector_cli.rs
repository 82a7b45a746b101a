//! `sextant sync …` and `sextant writeback …`: the connector's jobs from a terminal, over the
//! connector's HTTP API (the same calls the admin console makes), with a progress bar while
//! `--wait` follows a job.
//!
//! Exit codes (stable, for scripts and CronJobs):
//! - `0`: done; with `--wait`, the sync succeeded / every score was written.
//! - `1`: with `--wait`, the job ended `failed` or `cancelled`, or some scores failed (each
//!   failed record is printed with its reason).
//! - `2`: bad arguments or an unreadable scores file (nothing was sent).
//! - `3`: the connector refused the request (its error code and message are printed: an
//!   unknown object, a sync already running, no such job…).
//! - `4`: the connector could not be reached, timed out, or failed (5xx, a body that is not
//!   its API's).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use sextant_service_kit::internal_auth::{InternalAuth, InternalClient, InternalKey};

/// Where the connector listens, and how to print.
#[derive(Args, Debug, Clone)]
pub struct ConnectorArgs {
    /// The connector's base URL.
    #[arg(
        long,
        env = "SEXTANT_CONNECTOR_URL",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    pub connector_url: String,
    /// Print the connector's JSON answers instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,
    /// How often `--wait` polls the job, in milliseconds.
    #[arg(long, default_value_t = 500, global = true, hide = true)]
    pub poll_ms: u64,
    /// The deployment's internal key (the chart's Secret key `internal-token`): each call
    /// carries a short-lived token signed with it. Needed where the connector requires one.
    #[arg(
        long = "internal-token",
        env = "SEXTANT_INTERNAL_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub internal_token: Option<String>,
}

/// `sextant sync …`.
#[derive(Subcommand, Debug)]
pub enum SyncCommand {
    /// Start an incremental sync (each object from its watermark) in the background.
    Start {
        /// An object to sync (repeat; default: Account, Contact, Product2, Order, OrderItem, Case).
        #[arg(long = "object")]
        objects: Vec<String>,
        /// Re-read everything, ignoring (and resetting) the watermarks.
        #[arg(long)]
        full: bool,
        /// Follow the job to its end with a progress bar; the exit code tells how it ended.
        #[arg(long)]
        wait: bool,
    },
    /// One sync job's state and progress.
    Status {
        id: String,
        /// Follow the job to its end.
        #[arg(long)]
        wait: bool,
    },
    /// Ask a running sync to stop between two pages.
    Cancel { id: String },
    /// The newest sync jobs, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// The sync schedule: cron expression, next run, last scheduled job.
    Schedule,
}

/// `sextant writeback …`.
#[derive(Subcommand, Debug)]
pub enum WritebackCommand {
    /// Write scores back to Salesforce (collections upsert; Bulk API 2.0 for large ones).
    Start {
        /// Scores: a CSV file with `id,score` columns (header first), or a JSON array of
        /// `{"id", "score"}`; `-` reads standard input.
        #[arg(long)]
        scores: PathBuf,
        /// The object written.
        #[arg(long, default_value = "Account")]
        object: String,
        /// The upsert key: `Id` or an external-id field.
        #[arg(long, default_value = "Id")]
        key: String,
        /// The field that receives the score.
        #[arg(long, default_value = "Churn_Score__c")]
        score_field: String,
        /// The model version written next to the score.
        #[arg(long)]
        model_version: Option<String>,
        /// Follow the job to its end; failed records are listed with their reasons.
        #[arg(long)]
        wait: bool,
    },
    /// One write-back job: counts, and its failed records with their reasons.
    Status {
        id: String,
        #[arg(long)]
        wait: bool,
    },
    /// The newest write-back jobs, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

/// Why a command stopped, with its exit code.
#[derive(Debug)]
enum Failure {
    /// 1: the job ended badly.
    Job(String),
    /// 2: bad input.
    Input(String),
    /// 3: the connector refused.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// 4: unreachable or failing.
    Unavailable(String),
}

impl Failure {
    fn exit(&self) -> ExitCode {
        let (code, text) = match self {
            Self::Job(m) => (1, m.clone()),
            Self::Input(m) => (2, m.clone()),
            Self::Refused {
                status,
                code,
                message,
            } => (
                3,
                format!("the connector refused ({status} {code}): {message}"),
            ),
            Self::Unavailable(m) => (4, m.clone()),
        };
        eprintln!("sextant: error: {text}");
        ExitCode::from(code)
    }
}

struct Connector {
    http: InternalClient,
    base: String,
}

impl Connector {
    fn new(args: &ConnectorArgs) -> Result<Self, Failure> {
        let base = args.connector_url.trim_end_matches('/').to_owned();
        match url::Url::parse(&base) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => {
                return Err(Failure::Input(format!(
                    "--connector-url {base:?} is not an http(s) URL"
                )));
            }
        }
        let auth = match &args.internal_token {
            Some(t) => Some(InternalAuth::new(
                "sextant-cli",
                InternalKey::new(secrecy::SecretString::from(t.clone()))
                    .map_err(|e| Failure::Input(format!("--internal-token: {e}")))?,
            )),
            None => None,
        };
        Ok(Self {
            http: InternalClient::new(
                sextant_service_kit::http::client(Duration::from_secs(60)),
                auth,
            ),
            base,
        })
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let resp = req.send().await.map_err(|e| {
            Failure::Unavailable(format!("cannot reach the connector at {}: {e}", self.base))
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| Failure::Unavailable(format!("the connector's answer broke off: {e}")))?;
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        match (status, parsed) {
            (200..=299, Some(v)) => Ok(v),
            (400..=499, Some(v)) if v["code"].is_string() => Err(Failure::Refused {
                status,
                code: v["code"].as_str().unwrap_or_default().to_owned(),
                message: v["message"].as_str().unwrap_or_default().to_owned(),
            }),
            (s, _) => Err(Failure::Unavailable(format!(
                "the connector answered {s}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ))),
        }
    }

    async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.call(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }
}

fn encode(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// Runs `sextant sync …`.
pub async fn sync(command: SyncCommand, args: ConnectorArgs) -> ExitCode {
    match sync_inner(command, &args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit(),
    }
}

/// Runs `sextant writeback …`.
pub async fn writeback(command: WritebackCommand, args: ConnectorArgs) -> ExitCode {
    match writeback_inner(command, &args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit(),
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string(v).unwrap_or_default());
}

fn sync_line(job: &Value) -> String {
    let p = &job["progress"];
    let slot = job["scheduled_for"]
        .as_str()
        .map(|s| format!(", scheduled for {s}"))
        .unwrap_or_default();
    let error = job["error"]
        .as_str()
        .map(|e| format!(" — {e}"))
        .unwrap_or_default();
    format!(
        "{id}  {state:<9}  {rows} rows, {deletions} deletions, {pages} pages, {calls} API calls, \
         {done}/{objects} objects{slot}{error}",
        id = job["id"].as_str().unwrap_or("?"),
        state = job["state"].as_str().unwrap_or("?"),
        rows = p["rows"],
        deletions = p["deletions"].as_u64().unwrap_or(0),
        pages = p["pages"],
        calls = p["api_calls"],
        done = p["objects_done"],
        objects = job["objects"].as_array().map_or(0, Vec::len),
    )
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

async fn follow_sync(c: &Connector, id: &str, args: &ConnectorArgs) -> Result<Value, Failure> {
    let path = format!("/v1/syncs/{}", encode(id));
    let mut job = c.get(&path).await?;
    let objects = job["objects"].as_array().map_or(0, Vec::len) as u64;
    let pb = bar(
        objects,
        "{spinner} sync [{bar:30}] {pos}/{len} objects  {msg} ({elapsed})",
    );
    while job["state"] == "running" {
        let p = &job["progress"];
        pb.set_position(p["objects_done"].as_u64().unwrap_or(0));
        pb.set_message(format!(
            "{}: {} rows, {} pages",
            p["current_object"].as_str().unwrap_or("-"),
            p["rows"],
            p["pages"]
        ));
        tokio::time::sleep(Duration::from_millis(args.poll_ms.max(10))).await;
        job = c.get(&path).await?;
    }
    pb.finish_and_clear();
    Ok(job)
}

fn sync_outcome(job: &Value, args: &ConnectorArgs) -> Result<(), Failure> {
    if args.json {
        print_json(job);
    } else {
        println!("{}", sync_line(job));
    }
    match job["state"].as_str() {
        Some("succeeded") => Ok(()),
        Some(s) => Err(Failure::Job(format!(
            "sync {} ended {s}{}",
            job["id"].as_str().unwrap_or("?"),
            job["error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ))),
        None => Err(Failure::Unavailable(format!(
            "the connector's job has no state: {job}"
        ))),
    }
}

async fn sync_inner(command: SyncCommand, args: &ConnectorArgs) -> Result<(), Failure> {
    let c = Connector::new(args)?;
    match command {
        SyncCommand::Start {
            objects,
            full,
            wait,
        } => {
            let mut body = json!({"full": full});
            if !objects.is_empty() {
                body["objects"] = json!(objects);
            }
            let job = c.post("/v1/syncs", &body).await?;
            let id = job["id"].as_str().unwrap_or_default().to_owned();
            if !wait {
                if args.json {
                    print_json(&job);
                } else {
                    println!("{}", sync_line(&job));
                }
                return Ok(());
            }
            eprintln!("Sync {id} started.");
            let done = follow_sync(&c, &id, args).await?;
            sync_outcome(&done, args)
        }
        SyncCommand::Status { id, wait } => {
            let job = if wait {
                follow_sync(&c, &id, args).await?
            } else {
                c.get(&format!("/v1/syncs/{}", encode(&id))).await?
            };
            if wait {
                return sync_outcome(&job, args);
            }
            if args.json {
                print_json(&job);
            } else {
                println!("{}", sync_line(&job));
            }
            Ok(())
        }
        SyncCommand::Cancel { id } => {
            let job = c
                .post(&format!("/v1/syncs/{}/cancel", encode(&id)), &json!({}))
                .await?;
            if args.json {
                print_json(&job);
            } else if job["state"] == "running" {
                println!("Cancellation of {id} requested; it stops after the current page.");
            } else {
                println!(
                    "{id} is not running ({}); nothing to cancel.",
                    job["state"].as_str().unwrap_or("?")
                );
            }
            Ok(())
        }
        SyncCommand::List { limit } => {
            let list = c
                .get(&format!("/v1/syncs?limit={}", limit.clamp(1, 1000)))
                .await?;
            if args.json {
                print_json(&list);
            } else {
                for job in list.as_array().into_iter().flatten() {
                    println!("{}", sync_line(job));
                }
            }
            Ok(())
        }
        SyncCommand::Schedule => {
            let org = c.get("/v1/org").await?;
            if args.json {
                print_json(&org);
            } else {
                match org["schedule"].as_object() {
                    None => println!(
                        "{}: no schedule; syncs run on request.",
                        org["org"].as_str().unwrap_or("?")
                    ),
                    Some(s) => println!(
                        "{}: schedule {:?} (UTC); next run {}; last slot {} (job {})",
                        org["org"].as_str().unwrap_or("?"),
                        s.get("cron").and_then(Value::as_str).unwrap_or("?"),
                        s.get("next_run_at")
                            .and_then(Value::as_str)
                            .unwrap_or("none"),
                        s.get("last_slot_at").and_then(Value::as_str).unwrap_or("?"),
                        s.get("last_job_id")
                            .and_then(Value::as_str)
                            .unwrap_or("none"),
                    ),
                }
                if let Some(j) = org["running_job"].as_str() {
                    println!("running: {j}");
                }
            }
            Ok(())
        }
    }
}

/// Reads scores from a CSV (`id,score`, header first) or a JSON array of `{id, score}`.
pub fn read_scores(path: &Path) -> Result<Vec<Value>, String> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("reading stdin: {e}"))?
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let v: Vec<Value> = serde_json::from_str(trimmed)
            .map_err(|e| format!("{}: not a JSON array of scores: {e}", path.display()))?;
        for (i, s) in v.iter().enumerate() {
            if !s["id"].is_string() || !s["score"].is_number() {
                return Err(format!(
                    "{}: score {i} needs a string \"id\" and a number \"score\"",
                    path.display()
                ));
            }
        }
        return Ok(v);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("{}: no {name:?} column in the header", path.display()))
    };
    let (id_col, score_col) = (col("id")?, col("score")?);
    let mut out = Vec::new();
    for (n, row) in reader.records().enumerate() {
        let row = row.map_err(|e| format!("{}: {e}", path.display()))?;
        let line = n + 2;
        let id = row.get(id_col).unwrap_or_default();
        let score: f64 = row
            .get(score_col)
            .unwrap_or_default()
            .parse()
            .map_err(|_| format!("{}: line {line}: the score is not a number", path.display()))?;
        out.push(json!({"id": id, "score": score}));
    }
    Ok(out)
}

fn writeback_line(job: &Value) -> String {
    let bulk = job["bulk_jobs"]
        .as_array()
        .filter(|b| !b.is_empty())
        .map(|b| format!(", {} Bulk API 2.0 job(s)", b.len()))
        .unwrap_or_default();
    format!(
        "{id}  {state:<9}  {object}: {written} written, {failed} failed of {total}, {calls} API calls{bulk}{error}",
        id = job["id"].as_str().unwrap_or("?"),
        state = job["state"].as_str().unwrap_or("?"),
        object = job["object"].as_str().unwrap_or("?"),
        written = job["written"],
        failed = job["failed"],
        total = job["total"],
        calls = job["api_calls"],
        error = job["error"]
            .as_str()
            .map(|e| format!(" — {e}"))
            .unwrap_or_default(),
    )
}

async fn follow_writeback(c: &Connector, id: &str, args: &ConnectorArgs) -> Result<Value, Failure> {
    let path = format!("/v1/writebacks/{}?limit=0", encode(id));
    let mut job = c.get(&path).await?;
    let pb = bar(
        job["total"].as_u64().unwrap_or(0),
        "{spinner} write-back [{bar:30}] {pos}/{len} records  {msg} ({elapsed})",
    );
    while job["state"] == "running" {
        let written = job["written"].as_u64().unwrap_or(0);
        let failed = job["failed"].as_u64().unwrap_or(0);
        pb.set_position(written + failed);
        pb.set_message(format!("{written} written, {failed} failed"));
        tokio::time::sleep(Duration::from_millis(args.poll_ms.max(10))).await;
        job = c.get(&path).await?;
    }
    pb.finish_and_clear();
    Ok(job)
}

/// Prints a finished write-back and its failed records (read a page at a time).
async fn writeback_outcome(
    c: &Connector,
    job: &Value,
    args: &ConnectorArgs,
) -> Result<(), Failure> {
    let id = job["id"].as_str().unwrap_or_default();
    if args.json {
        print_json(job);
    } else {
        println!("{}", writeback_line(job));
    }
    let failed = job["failed"].as_u64().unwrap_or(0);
    if failed > 0 && !args.json {
        let total = job["total"].as_u64().unwrap_or(0);
        let mut offset = 0;
        while offset < total {
            let page = c
                .get(&format!(
                    "/v1/writebacks/{}?offset={offset}&limit=10000",
                    encode(id)
                ))
                .await?;
            for r in page["records"].as_array().into_iter().flatten() {
                if r["outcome"] == "failed" {
                    println!(
                        "  failed {}: {}: {}",
                        r["id"].as_str().unwrap_or("?"),
                        r["status_code"].as_str().unwrap_or("?"),
                        r["reason"].as_str().unwrap_or("")
                    );
                }
            }
            offset += 10_000;
        }
    }
    match job["state"].as_str() {
        Some("succeeded") if failed == 0 => Ok(()),
        Some("succeeded") => Err(Failure::Job(format!(
            "write-back {id}: {failed} record(s) failed (listed above)"
        ))),
        Some(s) => Err(Failure::Job(format!(
            "write-back {id} ended {s}{}",
            job["error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ))),
        None => Err(Failure::Unavailable(format!(
            "the connector's job has no state: {job}"
        ))),
    }
}

async fn writeback_inner(command: WritebackCommand, args: &ConnectorArgs) -> Result<(), Failure> {
    match command {
        WritebackCommand::Start {
            scores,
            object,
            key,
            score_field,
            model_version,
            wait,
        } => {
            // The file is read before anything is sent: a bad file sends nothing.
            let list = read_scores(&scores).map_err(Failure::Input)?;
            if list.is_empty() {
                return Err(Failure::Input(format!(
                    "{}: no scores in the file",
                    scores.display()
                )));
            }
            let c = Connector::new(args)?;
            let mut body = json!({
                "object": object,
                "external_id_field": key,
                "score_field": score_field,
                "scores": list,
            });
            if let Some(v) = model_version {
                body["model_version"] = json!(v);
            }
            let job = c.post("/v1/writebacks", &body).await?;
            let id = job["id"].as_str().unwrap_or_default().to_owned();
            if !wait {
                if args.json {
                    print_json(&job);
                } else {
                    println!("{}", writeback_line(&job));
                }
                return Ok(());
            }
            eprintln!("Write-back {id} started.");
            let done = follow_writeback(&c, &id, args).await?;
            writeback_outcome(&c, &done, args).await
        }
        WritebackCommand::Status { id, wait } => {
            let c = Connector::new(args)?;
            let job = if wait {
                follow_writeback(&c, &id, args).await?
            } else {
                c.get(&format!("/v1/writebacks/{}?limit=0", encode(&id)))
                    .await?
            };
            if job["state"] == "running" {
                if args.json {
                    print_json(&job);
                } else {
                    println!("{}", writeback_line(&job));
                }
                return Ok(());
            }
            writeback_outcome(&c, &job, args).await
        }
        WritebackCommand::List { limit } => {
            let c = Connector::new(args)?;
            let list = c
                .get(&format!("/v1/writebacks?limit={}", limit.clamp(1, 1000)))
                .await?;
            if args.json {
                print_json(&list);
            } else {
                for job in list.as_array().into_iter().flatten() {
                    println!("{}", writeback_line(job));
                }
            }
            Ok(())
        }
    }
}
