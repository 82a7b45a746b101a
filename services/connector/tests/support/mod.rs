//! What the connector's end-to-end suites share: a real feature store on loopback, connector
//! settings for the org simulator's connected app, and starting the simulator and the connector.

use std::net::TcpListener;
use std::path::Path;

use chrono::NaiveDate;
use sextant_connector::custom::ObjectMapping;
use sextant_connector::{Application, SalesforceSettings, Settings};
use sextant_contracts::time::SharedClock;
use sextant_org_sim::credentials::ConnectedAppCredentials;
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSim, OrgSimConfig, RunningOrgSim};

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A feature store on loopback over a SQLite file in `dir`, its today `today`, on `clock`: its
/// base URL.
pub async fn start_store(dir: &Path, today: NaiveDate, clock: SharedClock) -> Res<String> {
    let fs = sextant_feature_store::Settings {
        port: 0,
        database_url: format!(
            "sqlite://{}?mode=rwc",
            dir.join("features.sqlite").display()
        ),
        today: Some(today),
        ..Default::default()
    };
    let app = sextant_feature_store::Application::build(&fs, clock).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Ok(url)
}

/// Connector settings for the simulator's connected app `client_id` / `username` (JWT bearer with
/// `creds`' key, written into `dir`): port 0, its SQLite in `dir`, the store at `store`, the
/// object `mappings`. The login URL is set by [`start_org_and_connector`].
pub fn settings(
    dir: &Path,
    creds: &ConnectedAppCredentials,
    (client_id, username): (&str, &str),
    store: &str,
    mappings: Vec<ObjectMapping>,
) -> Res<Settings> {
    let key_path = dir.join("key.pem");
    std::fs::write(&key_path, &creds.private_key_pem)?;
    let mut settings = Settings::with_salesforce(SalesforceSettings {
        login_url: String::new(),
        audience: Some("https://login.salesforce.com".into()),
        client_id: client_id.into(),
        username: username.into(),
        private_key_path: key_path,
        api_version: "62.0".into(),
    });
    settings.port = 0;
    settings.feature_store_url = store.to_owned();
    settings.database_url = format!(
        "sqlite://{}?mode=rwc",
        dir.join("connector.sqlite").display()
    );
    settings.object_mappings = mappings;
    Ok(settings)
}

/// Starts the org simulator on `config` and `data`, then the connector on `settings` logging in
/// to it: the simulator and the connector's base URL.
pub async fn start_org_and_connector(
    config: OrgSimConfig,
    data: OrgData,
    clock: SharedClock,
    mut settings: Settings,
) -> Res<(RunningOrgSim, String)> {
    let (org, server) = OrgSim::start(
        config,
        data,
        clock.clone(),
        TcpListener::bind("127.0.0.1:0")?,
    )?;
    tokio::spawn(server);
    settings.salesforce.login_url = org.base_url.clone();
    let app = Application::build(&settings, clock).await?;
    let connector = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Ok((org, connector))
}
