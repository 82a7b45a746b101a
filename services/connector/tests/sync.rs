//! The connector's failures are reported with stable codes and without secrets.

use std::net::TcpListener;

use serde_json::Value;
use sextant_connector::{Application, SalesforceSettings, Settings};
use sextant_contracts::time::system_clock;
use sextant_org_sim::credentials::generate;
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSim, OrgSimConfig};

const CLIENT_ID: &str = "3MVG9connector.test";
const USERNAME: &str = "integration@example.com";

async fn connector(
    org_cert: &str,
    key_pem: &str,
    feature_store_url: &str,
    dir: &tempfile::TempDir,
) -> String {
    let (org, server) = OrgSim::start(
        OrgSimConfig::new(CLIENT_ID, USERNAME, org_cert),
        OrgData::embedded_sample().expect("data"),
        system_clock(),
        TcpListener::bind("127.0.0.1:0").expect("bind"),
    )
    .expect("org");
    tokio::spawn(server);
    let key_path = dir.path().join("key.pem");
    std::fs::write(&key_path, key_pem).expect("key");
    let mut settings = Settings::with_salesforce(SalesforceSettings {
        login_url: org.base_url.clone(),
        audience: Some("https://login.salesforce.com".into()),
        client_id: CLIENT_ID.into(),
        username: USERNAME.into(),
        private_key_path: key_path,
        api_version: "62.0".into(),
    });
    settings.port = 0;
    settings.feature_store_url = feature_store_url.to_owned();
    let app = Application::build(&settings, system_clock())
        .await
        .expect("starts");
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    url
}

async fn sync(url: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/sync"))
        .send()
        .await
        .expect("sent");
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_refused_login_is_a_salesforce_error_without_key_material() {
    let dir = tempfile::tempdir().expect("tmp");
    let app = generate("connected-app").expect("creds");
    let wrong = generate("someone-else").expect("creds");
    let url = connector(
        &app.certificate_pem,
        &wrong.private_key_pem,
        "http://127.0.0.1:9",
        &dir,
    )
    .await;
    let (status, body) = sync(&url).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("salesforce_error")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("invalid_grant") && message.contains("invalid assertion"),
        "{message}"
    );
    assert!(
        !message.contains("PRIVATE KEY") && !message.contains("BEGIN"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unreachable_feature_store_is_an_upstream_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let app = generate("connected-app").expect("creds");
    let url = connector(
        &app.certificate_pem,
        &app.private_key_pem,
        "http://127.0.0.1:9",
        &dir,
    )
    .await;
    let (status, body) = sync(&url).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("upstream_unavailable")),
        "{body}"
    );
}

#[tokio::test]
async fn a_missing_key_file_stops_start_up_with_its_path() {
    let settings = Settings::with_salesforce(SalesforceSettings {
        login_url: "https://login.salesforce.com".into(),
        audience: None,
        client_id: CLIENT_ID.into(),
        username: USERNAME.into(),
        private_key_path: "/nonexistent/connected-app.key".into(),
        api_version: "62.0".into(),
    });
    let err = Application::build(&settings, system_clock())
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("/nonexistent/connected-app.key"),
        "{err}"
    );
}
