//! `sextant`: the umbrella CLI.
//!
//! - `sextant demo [--once] [--json]`: the whole loop on this machine, against the org simulator.
//! - `sextant org-sim`: the Salesforce org simulator alone.
//! - `sextant connect`: authorise Sextant in an org (web-server flow + PKCE); the refresh token
//!   is stored encrypted (AES-256-GCM) for the connector.
//! - `sextant serve <service>`: one service, configured from `SEXTANT_<SERVICE>__…` variables
//!   (`admin` is the admin console, the same as the `sextant-admin` binary, so the suite's one
//!   image runs it too).
//! - `sextant migrate feature-store`: applies the feature store's database migrations and exits
//!   (the Helm chart's pre-install/pre-upgrade Job, so replicas never race to migrate).
//! - `sextant openapi [--out DIR]`: writes the OpenAPI documents (four services, admin console).
//! - `sextant evaluate <task> --data FILE [--json]`: a model's full protocol against its baseline.
//! - `sextant sync start|status|cancel|list|schedule` and `sextant writeback start|status|list`:
//!   the connector's jobs over its HTTP API, `--wait` with a progress bar (exit codes in
//!   [`connector_cli`]).

/// mimalloc rather than glibc malloc: a request allocates many small buffers (JSON, feature
/// rows); the gateway served 11% more requests per second with it (`benches/load.rs`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod connector_cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use sextant::demo::{self, DemoOptions};
use sextant::suite::{Suite, SuiteOptions};

#[derive(Parser, Debug)]
#[command(
    name = "sextant",
    version,
    about = "Custom machine learning for Salesforce: churn scores on every account."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole suite locally: org simulator → connector → feature store → trainer → gateway.
    Demo {
        /// Exit after scoring instead of leaving the gateway running.
        #[arg(long)]
        once: bool,
        /// Print one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
        /// Where the SQLite file, model registry and connected-app key go.
        #[arg(long, default_value = ".sextant/demo")]
        data_dir: PathBuf,
        /// Training epochs.
        #[arg(long, default_value_t = 100)]
        epochs: u32,
    },
    /// Run the Salesforce org simulator alone (writes the connected app's key and certificate).
    OrgSim {
        /// Port to bind (0 = any free port).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Where to write `connected-app.key` and `connected-app.crt`.
        #[arg(long, default_value = ".sextant/org-sim")]
        data_dir: PathBuf,
    },
    /// Authorise Sextant in an org: prints the authorisation URL, catches the callback on a
    /// loopback port, and stores the refresh token encrypted. The consumer secret, when the
    /// connected app requires one, is read from SEXTANT_CONNECT_CLIENT_SECRET.
    Connect {
        /// `https://login.salesforce.com`, `https://test.salesforce.com` or the org's My Domain.
        #[arg(long, default_value = "https://login.salesforce.com")]
        login_url: String,
        /// The connected app's consumer key.
        #[arg(long, env = "SEXTANT_CONNECT_CLIENT_ID")]
        client_id: String,
        /// A loopback callback URL registered on the connected app.
        #[arg(long, default_value = "http://localhost:1717/OauthRedirect")]
        redirect_uri: String,
        /// OAuth scopes (must include refresh_token).
        #[arg(long, default_value = "api refresh_token")]
        scope: String,
        /// AES-256 key file (created with mode 0600 when absent).
        #[arg(long, default_value = ".sextant/connect/token.key")]
        key_file: PathBuf,
        /// Where the encrypted refresh token goes.
        #[arg(long, default_value = ".sextant/connect/org.token")]
        out: PathBuf,
        /// Seconds to wait for the browser.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Run one service with settings from the environment (`SEXTANT_<SERVICE>__…`, optional `SEXTANT_CONFIG` file).
    Serve { service: Service },
    /// Apply a service's database migrations and exit (same settings as `serve`).
    Migrate { service: MigrateService },
    /// Print a short-lived (5 min) internal service token signed with the deployment's internal
    /// key, for calling the feature store, trainer or connector by hand:
    /// `curl -H "Authorization: Bearer $(sextant internal-token)" …`.
    InternalToken {
        /// The internal key (the chart's Secret key `internal-token`).
        #[arg(long = "key", env = "SEXTANT_INTERNAL_TOKEN", hide_env_values = true)]
        key: String,
        /// Who the token says is calling (its `iss`).
        #[arg(long, default_value = "admin")]
        issuer: String,
    },
    /// Write the OpenAPI documents of the four services and the admin console.
    Openapi {
        #[arg(long, default_value = "openapi")]
        out: PathBuf,
    },
    /// The connector's sync jobs: start (`--wait` follows it with a progress bar), status,
    /// cancel, list, schedule. Exit codes: 0 done, 1 job failed or cancelled, 2 bad arguments,
    /// 3 refused by the connector, 4 connector unreachable or failing.
    Sync {
        #[command(subcommand)]
        command: connector_cli::SyncCommand,
        #[command(flatten)]
        connector: connector_cli::ConnectorArgs,
    },
    /// Score write-backs through the connector: start (from a CSV or JSON file), status, list.
    /// Exit codes as for `sync`; 1 also when some records failed (each is listed).
    Writeback {
        #[command(subcommand)]
        command: connector_cli::WritebackCommand,
        #[command(flatten)]
        connector: connector_cli::ConnectorArgs,
    },
    /// Measure a model on a data file (same format as the public data sets) against its baseline.
    Evaluate {
        /// Which model.
        task: EvalTask,
        /// The data file (e.g. Telco-Customer-Churn.csv, online_retail.csv.gz, CDNOW_master.txt).
        #[arg(long)]
        data: PathBuf,
        /// Print one JSON object on stdout instead of the table.
        #[arg(long)]
        json: bool,
        /// Seed for model initialisation (splits are rule-based).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Where to write plots (ROC, calibration, learning curves); none when absent.
        #[arg(long)]
        plots: Option<PathBuf>,
        /// sentiment only: also train the deployable model on every row and write its artefact
        /// (JSON) here, for the feature store's `sentiment_model_url` (`file://…`).
        #[arg(long)]
        save_model: Option<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum EvalTask {
    Churn,
    Clv,
    Propensity,
    Recommend,
    Sentiment,
    NextCategory,
}

impl From<EvalTask> for sextant_trainer::evaluate::Task {
    fn from(t: EvalTask) -> Self {
        match t {
            EvalTask::Churn => Self::Churn,
            EvalTask::Clv => Self::Clv,
            EvalTask::Propensity => Self::Propensity,
            EvalTask::Recommend => Self::Recommend,
            EvalTask::Sentiment => Self::Sentiment,
            EvalTask::NextCategory => Self::NextCategory,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Service {
    Connector,
    FeatureStore,
    Trainer,
    Gateway,
    /// The admin console (`SEXTANT_ADMIN__…`).
    Admin,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum MigrateService {
    FeatureStore,
}

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sextant: error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(async_main());
    // The services' background tasks (refreshers, database pools) are cancelled at exit; a
    // command that is done never waits on them for more than this.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    code
}

async fn async_main() -> ExitCode {
    let cli = Cli::parse();
    // The connector commands have their own exit codes.
    let cli = match cli.command {
        Command::Sync { command, connector } => {
            return connector_cli::sync(command, connector).await;
        }
        Command::Writeback { command, connector } => {
            return connector_cli::writeback(command, connector).await;
        }
        other => Cli { command: other },
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sextant: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo {
            once,
            json,
            data_dir,
            epochs,
        } => demo_command(once, json, data_dir, epochs).await,
        Command::OrgSim { port, data_dir } => org_sim(port, data_dir).await,
        Command::Connect {
            login_url,
            client_id,
            redirect_uri,
            scope,
            key_file,
            out,
            timeout_secs,
        } => {
            let opts = sextant_connector::connect::ConnectOptions {
                login_url,
                client_id,
                client_secret: std::env::var("SEXTANT_CONNECT_CLIENT_SECRET")
                    .ok()
                    .map(secrecy::SecretString::from),
                redirect_uri,
                scope,
                key_path: key_file,
                token_path: out,
                timeout: std::time::Duration::from_secs(timeout_secs),
            };
            let http = sextant_service_kit::http::client(std::time::Duration::from_secs(60));
            let outcome = sextant_connector::connect::connect(&opts, &http, |url| {
                eprintln!("Open this URL in a browser and approve Sextant:\n\n  {url}\n");
            })
            .await?;
            eprintln!(
                "Connected to {}. Refresh token encrypted in {} (key {}{}).",
                outcome.instance_url,
                outcome.token_path.display(),
                opts.key_path.display(),
                if outcome.key_created { ", created" } else { "" }
            );
            Ok(())
        }
        Command::Serve { service } => serve(service).await,
        Command::Migrate {
            service: MigrateService::FeatureStore,
        } => {
            sextant_service_kit::telemetry::init();
            let file = std::env::var_os("SEXTANT_CONFIG").map(PathBuf::from);
            let s = sextant_feature_store::load_settings(file.as_deref())?;
            // Connecting applies every pending migration.
            sextant_feature_store::store::Store::connect(
                &s.database_url,
                &s.purchase_status_list(),
            )
            .await
            .with_context(|| {
                format!(
                    "migrating the feature store database {}",
                    sextant_feature_store::redact_password(&s.database_url)
                )
            })?;
            tracing::info!("Feature store database migrated.");
            Ok(())
        }
        Command::Evaluate {
            task,
            data,
            json,
            seed,
            plots,
            save_model,
        } => {
            if save_model.is_some() && !matches!(task, EvalTask::Sentiment) {
                anyhow::bail!("--save-model is for `evaluate sentiment` only");
            }
            let options = sextant_trainer::evaluate::EvalOptions {
                seed,
                plot_dir: plots,
                progress: !json,
            };
            let eval = tokio::task::spawn_blocking(move || {
                let eval = sextant_trainer::evaluate::run(task.into(), &data, &options)?;
                if let Some(out) = save_model {
                    let artifact =
                        sextant_trainer::evaluate::sentiment::train_deployable(&data, &options)?;
                    let body = serde_json::to_vec(&artifact)?;
                    std::fs::write(&out, body).map_err(|e| {
                        anyhow::anyhow!("writing the sentiment model to {}: {e}", out.display())
                    })?;
                    eprintln!(
                        "sentiment model {} written to {} (feature store: sentiment_model_url = file://{})",
                        artifact.version,
                        out.display(),
                        std::fs::canonicalize(&out).unwrap_or(out.clone()).display()
                    );
                }
                Ok::<_, anyhow::Error>(eval)
            })
            .await??;
            if json {
                println!("{}", serde_json::to_string(&eval)?);
            } else {
                print!("{}", eval.table());
            }
            Ok(())
        }
        Command::Sync { .. } | Command::Writeback { .. } => {
            anyhow::bail!("the connector commands are run before this point")
        }
        Command::InternalToken { key, issuer } => {
            use sextant_service_kit::internal_auth::{InternalKey, TOKEN_TTL_SECS, mint};
            let key = InternalKey::new(secrecy::SecretString::from(key))?;
            let now = chrono::Utc::now().timestamp();
            println!("{}", mint(&key, &issuer, now, TOKEN_TTL_SECS)?);
            Ok(())
        }
        Command::Openapi { out } => {
            std::fs::create_dir_all(&out)?;
            for (name, spec) in [
                ("connector", sextant_connector::api::openapi()),
                ("feature-store", sextant_feature_store::api::openapi()),
                ("trainer", sextant_trainer::api::openapi()),
                ("gateway", sextant_gateway::api::openapi()),
                ("admin", sextant_admin::api::openapi()),
            ] {
                let path = out.join(format!("{name}.json"));
                std::fs::write(
                    &path,
                    sextant_service_kit::openapi::to_committed_json(&spec),
                )?;
                println!("wrote {}", path.display());
            }
            Ok(())
        }
    }
}

async fn demo_command(
    once: bool,
    json: bool,
    data_dir: PathBuf,
    epochs: u32,
) -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_none() {
        // Keep the demo's own progress lines readable; RUST_LOG=info shows the services' logs.
        tracing_off();
    }
    let options = SuiteOptions {
        data_dir,
        today: chrono::NaiveDate::from_ymd_opt(2011, 12, 10).context("date")?,
        batch_size: 2000,
    };
    let suite = Suite::start(&options).await.context("starting the suite")?;
    let report = demo::run(
        &suite,
        &DemoOptions {
            epochs,
            progress: !json,
            ..DemoOptions::default()
        },
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", demo::summary(&report));
    }
    if once {
        suite.stop().await;
        return Ok(());
    }
    let token = suite.gateway_token(3600)?;
    eprintln!(
        "The gateway is running at {gw} (API docs: {gw}/docs/). A token valid for one hour:\n\n  curl -s -X POST {gw}/v1/scores \\\n    -H 'Authorization: Bearer {token}' \\\n    -H 'Content-Type: application/json' \\\n    -d '{{\"record_ids\": [\"{id}\"]}}'\n\nPress Ctrl-C to stop.",
        gw = suite.urls.gateway,
        id = report
            .scores
            .first()
            .map(|s| s.record_id.to_string())
            .unwrap_or_default(),
    );
    tokio::signal::ctrl_c().await?;
    suite.stop().await;
    Ok(())
}

fn tracing_off() {
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
}

async fn org_sim(port: u16, data_dir: PathBuf) -> anyhow::Result<()> {
    use sextant_org_sim::{OrgSim, OrgSimConfig};
    sextant_service_kit::telemetry::init();
    std::fs::create_dir_all(&data_dir)?;
    let creds = sextant_org_sim::credentials::generate("sextant-org-sim")?;
    std::fs::write(data_dir.join("connected-app.key"), &creds.private_key_pem)?;
    std::fs::write(data_dir.join("connected-app.crt"), &creds.certificate_pem)?;
    let config = OrgSimConfig::new(
        sextant::suite::CLIENT_ID,
        sextant::suite::USERNAME,
        &creds.certificate_pem,
    );
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    let (running, server) = OrgSim::start(
        config,
        sextant_org_sim::data::OrgData::embedded_sample()?,
        sextant_contracts::time::system_clock(),
        listener,
    )?;
    eprintln!(
        "Org simulator at {url}\n  login URL: {url}\n  client id: {cid}\n  username:  {user}\n  key:       {key}\n  certificate: {crt}",
        url = running.base_url,
        cid = sextant::suite::CLIENT_ID,
        user = sextant::suite::USERNAME,
        key = data_dir.join("connected-app.key").display(),
        crt = data_dir.join("connected-app.crt").display(),
    );
    let handle = running.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        handle.stop().await;
    });
    server.await?;
    Ok(())
}

async fn serve(service: Service) -> anyhow::Result<()> {
    use sextant_service_kit::config::load;
    sextant_service_kit::telemetry::init();
    let file = std::env::var_os("SEXTANT_CONFIG").map(PathBuf::from);
    let file = file.as_deref();
    let clock = sextant_contracts::time::system_clock();
    macro_rules! run_app {
        ($app:expr) => {
            $app.run_until_signalled().await?
        };
    }
    match service {
        Service::Connector => {
            let s: sextant_connector::Settings = load("SEXTANT_CONNECTOR", file)?;
            run_app!(sextant_connector::Application::build(&s, clock).await?)
        }
        Service::FeatureStore => {
            let s = sextant_feature_store::load_settings(file)?;
            let clock: sextant_contracts::time::SharedClock = match s.today {
                Some(day) => std::sync::Arc::new(sextant_contracts::time::FixedClock(
                    day.and_hms_opt(12, 0, 0).context("date")?.and_utc(),
                )),
                None => clock,
            };
            run_app!(sextant_feature_store::Application::build(&s, clock).await?)
        }
        Service::Trainer => {
            let s: sextant_trainer::Settings = load("SEXTANT_TRAINER", file)?;
            run_app!(sextant_trainer::Application::build(&s, clock).await?)
        }
        Service::Gateway => {
            let s: sextant_gateway::Settings = load("SEXTANT_GATEWAY", file)?;
            run_app!(sextant_gateway::Application::build(&s).await?)
        }
        Service::Admin => {
            let s: sextant_admin::Settings = load("SEXTANT_ADMIN", file)?;
            run_app!(sextant_admin::Application::build(&s)?)
        }
    }
    Ok(())
}
