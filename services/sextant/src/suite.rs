//! The whole suite on loopback: the org simulator and the four services, each on its own
//! random port, wired to each other by URL exactly as they are in a cluster.
//!
//! The umbrella binary links the four service libraries only to start them in one process for
//! local use; they still talk to each other over HTTP and share nothing in memory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;
use jsonwebtoken::{EncodingKey, Header};
use rand::Rng;
use secrecy::SecretString;
use serde::Serialize;
use sextant_contracts::time::{FixedClock, SharedClock, system_clock};
use sextant_org_sim::credentials::generate;
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSim, OrgSimConfig, RunningOrgSim};
use sextant_service_kit::internal_auth::{InternalAuth, InternalClient, InternalKey};

/// The connected app's consumer key in the simulated org.
pub const CLIENT_ID: &str = "3MVG9sextant.local.demo";
/// The integration user in the simulated org.
pub const USERNAME: &str = "integration@sextant.local";
/// `iss` of the tokens the gateway accepts in local runs.
pub const ISSUER: &str = "sextant-local";
/// `aud` of the tokens the gateway accepts.
pub const AUDIENCE: &str = "sextant-gateway";

/// Where the suite keeps its files.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// SQLite file, model registry and connected-app key go here.
    pub data_dir: PathBuf,
    /// "Today" for online features (the sample ends on 2011-12-09).
    pub today: NaiveDate,
    /// SOQL page size of the simulator (Salesforce's default is 2000).
    pub batch_size: usize,
}

/// URLs of the running services.
#[derive(Debug, Clone, Serialize)]
pub struct Urls {
    pub org: String,
    pub connector: String,
    pub feature_store: String,
    pub trainer: String,
    pub gateway: String,
}

/// The running suite.
#[derive(Debug)]
pub struct Suite {
    pub urls: Urls,
    /// Where the suite keeps its files (the model registry is `models/` below it).
    pub data_dir: PathBuf,
    pub org: RunningOrgSim,
    /// The development HS256 secret the gateway accepts (generated per run).
    gateway_secret: String,
    /// The internal key every service is configured with (random per start).
    internal_token: String,
    handles: Vec<actix_web::dev::ServerHandle>,
}

fn fixed_clock(day: NaiveDate) -> SharedClock {
    Arc::new(FixedClock(
        day.and_hms_opt(12, 0, 0).unwrap_or_default().and_utc(),
    ))
}

fn bind() -> anyhow::Result<TcpListener> {
    TcpListener::bind("127.0.0.1:0").context("binding a loopback port")
}

impl Suite {
    /// Starts the org simulator and the four services.
    pub async fn start(options: &SuiteOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("creating {}", options.data_dir.display()))?;
        let creds = generate("sextant-local-connected-app")
            .context("generating connected-app credentials")?;
        let key_path = options.data_dir.join("connected-app.key");
        write_private(&key_path, &creds.private_key_pem)?;
        std::fs::write(
            options.data_dir.join("connected-app.crt"),
            &creds.certificate_pem,
        )?;

        let mut org_config = OrgSimConfig::new(CLIENT_ID, USERNAME, &creds.certificate_pem);
        org_config.batch_size = options.batch_size;
        let (org, org_server) = OrgSim::start(
            org_config,
            OrgData::embedded_sample()?,
            system_clock(),
            bind()?,
        )?;
        tokio::spawn(org_server);

        let mut handles = Vec::new();
        macro_rules! keep {
            ($app:expr) => {
                handles.push($app.handle())
            };
        }

        // The store follows the trainer's current sentiment model, and the trainer reads the
        // store's training sets: the trainer's port is chosen first.
        let trainer_port = bind()?.local_addr()?.port();
        // Every service requires (and sends) internal tokens signed with this key, as in a
        // deployment: the demo runs with enforcement on.
        let internal_token: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(48)
            .map(char::from)
            .collect();
        let internal = || Some(SecretString::from(internal_token.clone()));
        let db = options.data_dir.join("features.sqlite");
        let _ = std::fs::remove_file(&db);
        let fs_settings = sextant_feature_store::Settings {
            port: 0,
            database_url: format!("sqlite://{}?mode=rwc", db.display()),
            today: Some(options.today),
            sentiment_model_url: Some(format!(
                "http://127.0.0.1:{trainer_port}/v1/sentiment/models/current/artifact"
            )),
            sentiment_refresh_secs: 1,
            internal_token: internal(),
            ..Default::default()
        };
        let fs_app =
            sextant_feature_store::Application::build(&fs_settings, fixed_clock(options.today))
                .await?;
        let feature_store = format!("http://127.0.0.1:{}", fs_app.port());
        keep!(fs_app);
        tokio::spawn(fs_app.run_until_stopped());

        let registry = options.data_dir.join("models");
        let _ = std::fs::remove_dir_all(&registry);
        let trainer_settings = sextant_trainer::Settings {
            port: trainer_port,
            feature_store_url: feature_store.clone(),
            registry_dir: registry,
            internal_token: internal(),
            ..Default::default()
        };
        let trainer_app =
            sextant_trainer::Application::build(&trainer_settings, system_clock()).await?;
        let trainer = format!("http://127.0.0.1:{}", trainer_app.port());
        keep!(trainer_app);
        tokio::spawn(trainer_app.run_until_stopped());

        let gateway_secret: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(48)
            .map(char::from)
            .collect();
        let mut gw_settings =
            sextant_gateway::Settings::with_auth(sextant_gateway::auth::AuthSettings {
                rs256_public_key_pem: None,
                hs256_secret: Some(SecretString::from(gateway_secret.clone())),
                leeway_secs: 30,
                ..sextant_gateway::auth::AuthSettings::new(ISSUER, AUDIENCE)
            });
        gw_settings.port = 0;
        gw_settings.feature_store_url = feature_store.clone();
        gw_settings.trainer_url = trainer.clone();
        // On one machine asking the trainer is cheap: a promotion or rollback shows within seconds.
        gw_settings.model_refresh_secs = 2;
        gw_settings.internal_token = internal();
        let gw_app = sextant_gateway::Application::build(&gw_settings).await?;
        let gateway = format!("http://127.0.0.1:{}", gw_app.port());
        keep!(gw_app);
        tokio::spawn(gw_app.run_until_stopped());

        let mut conn_settings =
            sextant_connector::Settings::with_salesforce(sextant_connector::SalesforceSettings {
                login_url: org.base_url.clone(),
                audience: Some("https://login.salesforce.com".into()),
                client_id: CLIENT_ID.into(),
                username: USERNAME.into(),
                private_key_path: key_path,
                api_version: "62.0".into(),
            });
        conn_settings.port = 0;
        conn_settings.feature_store_url = feature_store.clone();
        conn_settings.internal_token = internal();
        let conn_app =
            sextant_connector::Application::build(&conn_settings, system_clock()).await?;
        let connector = format!("http://127.0.0.1:{}", conn_app.port());
        keep!(conn_app);
        tokio::spawn(conn_app.run_until_stopped());

        Ok(Self {
            urls: Urls {
                org: org.base_url.clone(),
                connector,
                feature_store,
                trainer,
                gateway,
            },
            data_dir: options.data_dir.clone(),
            org,
            gateway_secret,
            internal_token,
            handles,
        })
    }

    /// A gateway token (HS256, the development secret) valid for `ttl_secs`.
    pub fn gateway_token(&self, ttl_secs: i64) -> anyhow::Result<String> {
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            aud: &'a str,
            sub: &'a str,
            exp: i64,
            iat: i64,
        }
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER,
            aud: AUDIENCE,
            sub: "sextant-demo",
            exp: now + ttl_secs,
            iat: now,
        };
        Ok(jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(self.gateway_secret.as_bytes()),
        )?)
    }

    /// Waits until the gateway reports ready (a model is loaded, which its background refresher
    /// does within a second or so of a model becoming current), for at most `timeout`.
    pub async fn wait_gateway_ready(&self, timeout: std::time::Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let ready = http
                .get(format!("{}/readyz", self.urls.gateway))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("the gateway loaded no model within {timeout:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// A client whose requests carry an internal token (as `sextant-demo`) for the connector,
    /// feature store and trainer; its [`InternalClient::plain`] is for the gateway.
    pub fn internal_client(&self, timeout: std::time::Duration) -> InternalClient {
        let auth = InternalKey::new(SecretString::from(self.internal_token.clone()))
            .ok()
            .map(|k| InternalAuth::new("sextant-demo", k));
        InternalClient::new(sextant_service_kit::http::client(timeout), auth)
    }

    /// The internal key the services share (tests call the services by hand with it).
    pub fn internal_token_for_tests(&self) -> &str {
        &self.internal_token
    }

    /// The development HS256 secret (tests forge expired or misaddressed tokens with it).
    pub fn gateway_secret_for_tests(&self) -> &str {
        &self.gateway_secret
    }

    /// Stops every service.
    pub async fn stop(&self) {
        for handle in &self.handles {
            handle.stop(true).await;
        }
        self.org.stop().await;
    }
}

/// Writes a private key readable by the owner only.
fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
