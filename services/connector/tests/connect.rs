//! `sextant connect` end to end against the org simulator: the browser approves, the loopback
//! callback is caught, the refresh token is sealed, and it logs in through the refresh flow.

use std::net::TcpListener;
use std::time::Duration;

use secrecy::ExposeSecret;
use sextant_connector::connect::{ConnectError, ConnectOptions, connect, open_token_file};
use sextant_contracts::time::system_clock;
use sextant_org_sim::credentials::generate;
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSim, OrgSimConfig};
use sextant_salesforce::auth::refresh_token_login;

const CLIENT_ID: &str = "3MVG9connector.connect";

#[tokio::test]
async fn connect_stores_an_encrypted_refresh_token_that_logs_in()
-> Result<(), Box<dyn std::error::Error>> {
    let creds = generate("connect-test")?;
    // A free loopback port for the callback, registered on the connected app.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/OauthRedirect");
    let mut config = OrgSimConfig::new(CLIENT_ID, "u@example.com", &creds.certificate_pem);
    config.callback_urls = vec![redirect_uri.clone()];
    let (sim, server) = OrgSim::start(
        config,
        OrgData::embedded_sample()?,
        system_clock(),
        TcpListener::bind("127.0.0.1:0")?,
    )?;
    tokio::spawn(server);
    let dir = tempfile::tempdir()?;
    let opts = ConnectOptions {
        login_url: sim.base_url.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: None,
        redirect_uri,
        scope: "api refresh_token".into(),
        key_path: dir.path().join("token.key"),
        token_path: dir.path().join("org.token"),
        timeout: Duration::from_secs(20),
    };
    let http = sextant_salesforce::http::client(&Default::default())?;
    // The "browser": follows the authorisation URL, the org's redirect, and lands on our port.
    let outcome = connect(&opts, &http, |url| {
        let url = url.to_owned();
        tokio::spawn(async move {
            let browser = reqwest::Client::new();
            let _ = browser.get(url).send().await;
        });
    })
    .await?;
    assert!(outcome.key_created);
    assert_eq!(outcome.instance_url, sim.base_url);
    let stored = std::fs::read_to_string(&opts.token_path)?;
    let refresh = open_token_file(&opts.token_path, &opts.key_path, None)?;
    assert!(
        !stored.contains(refresh.refresh_token.expose_secret()),
        "the refresh token is not stored in clear"
    );
    let token = refresh_token_login(&http, &refresh).await?;
    assert_eq!(token.instance_url, sim.base_url);
    Ok(())
}

#[tokio::test]
async fn connect_refuses_a_non_loopback_redirect() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let opts = ConnectOptions {
        login_url: "https://login.salesforce.com".into(),
        client_id: CLIENT_ID.into(),
        client_secret: None,
        redirect_uri: "https://example.com/callback".into(),
        scope: "api refresh_token".into(),
        key_path: dir.path().join("token.key"),
        token_path: dir.path().join("org.token"),
        timeout: Duration::from_secs(1),
    };
    let http = sextant_salesforce::http::client(&Default::default())?;
    let err = connect(&opts, &http, |_| {})
        .await
        .err()
        .ok_or("accepted")?;
    assert!(
        matches!(err, ConnectError::Config(ref m) if m.contains("loopback")),
        "{err}"
    );
    Ok(())
}
