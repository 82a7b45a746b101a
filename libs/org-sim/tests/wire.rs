//! The simulator against the real client: JWT bearer login, SOQL paging, and Salesforce's
//! error bodies, over HTTP on loopback.

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};

use secrecy::SecretString;
use serde_json::Value;
use sextant_contracts::time::{SharedClock, SystemClock};
use sextant_org_sim::credentials::{ConnectedAppCredentials, generate};
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSim, OrgSimConfig, RunningOrgSim};
use sextant_salesforce::auth::sign_assertion;
use sextant_salesforce::{JwtBearerConfig, SalesforceClient, SalesforceError};

const CLIENT_ID: &str = "3MVG9sextant.test.client";
const USERNAME: &str = "integration@sextant.example";

fn creds() -> &'static ConnectedAppCredentials {
    static CREDS: OnceLock<ConnectedAppCredentials> = OnceLock::new();
    CREDS.get_or_init(|| generate("sextant-test").expect("credentials"))
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

async fn start(batch_size: usize) -> RunningOrgSim {
    let mut config = OrgSimConfig::new(CLIENT_ID, USERNAME, &creds().certificate_pem);
    config.batch_size = batch_size;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (running, server) = OrgSim::start(
        config,
        OrgData::embedded_sample().expect("data"),
        clock(),
        listener,
    )
    .expect("start");
    tokio::spawn(server);
    running
}

fn auth(sim: &RunningOrgSim, private_key_pem: &str) -> JwtBearerConfig {
    JwtBearerConfig {
        login_url: sim.base_url.clone(),
        audience: "https://login.salesforce.com".into(),
        client_id: CLIENT_ID.into(),
        username: USERNAME.into(),
        private_key_pem: SecretString::from(private_key_pem.to_owned()),
    }
}

#[tokio::test]
async fn jwt_bearer_login_and_paged_query() {
    let sim = start(200).await;
    let client = SalesforceClient::new(
        reqwest::Client::new(),
        auth(&sim, &creds().private_key_pem),
        clock(),
        "62.0",
    );
    let token = client.login().await.expect("login");
    assert_eq!(token.instance_url, sim.base_url);
    assert!(token.org_id().is_some_and(|o| o.starts_with("00D")));

    let out = client
        .query_all("SELECT Id, Name, Industry, CreatedDate FROM Account")
        .await
        .expect("query");
    assert_eq!(out.records.len(), 271);
    assert_eq!(out.total_size, 271);
    assert_eq!(out.pages, 2, "271 rows at 200 a page");
    let first = &out.records[0];
    assert_eq!(first["attributes"]["type"], "Account");
    assert!(
        first["attributes"]["url"]
            .as_str()
            .unwrap_or("")
            .ends_with(first["Id"].as_str().unwrap_or("?"))
    );
    assert_eq!(first["Industry"], Value::Null, "explicit nulls");
    assert!(
        first["CreatedDate"]
            .as_str()
            .unwrap_or("")
            .ends_with(".000+0000"),
        "{}",
        first["CreatedDate"]
    );
    let follow_ups = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("/query/01g"))
        .count();
    assert_eq!(follow_ups, 1, "the client followed nextRecordsUrl once");
}

#[tokio::test]
async fn an_expired_session_is_renewed_once() {
    let sim = start(2000).await;
    let client = SalesforceClient::new(
        reqwest::Client::new(),
        auth(&sim, &creds().private_key_pem),
        clock(),
        "62.0",
    );
    client.login().await.expect("login");
    sim.expire_all_sessions();
    let out = client
        .query_all("SELECT Id FROM Case")
        .await
        .expect("re-authenticates");
    assert_eq!(out.records.len(), 149);
    let logins = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/services/oauth2/token")
        .count();
    assert_eq!(logins, 2);
}

#[tokio::test]
async fn bad_assertions_get_salesforce_errors() {
    let sim = start(2000).await;
    // Signed with a key whose certificate is not the connected app's.
    let stranger = generate("stranger").expect("other key");
    let client = SalesforceClient::new(
        reqwest::Client::new(),
        auth(&sim, &stranger.private_key_pem),
        clock(),
        "62.0",
    );
    match client.login().await {
        Err(SalesforceError::Auth { error, description }) => {
            assert_eq!(
                (error.as_str(), description.as_str()),
                ("invalid_grant", "invalid assertion")
            );
        }
        other => panic!("{other:?}"),
    }
    let mut wrong_aud = auth(&sim, &creds().private_key_pem);
    wrong_aud.audience = "https://example.com".into();
    let client = SalesforceClient::new(reqwest::Client::new(), wrong_aud, clock(), "62.0");
    assert!(
        matches!(client.login().await, Err(SalesforceError::Auth { description, .. }) if description == "audience is invalid")
    );
    let mut wrong_iss = auth(&sim, &creds().private_key_pem);
    wrong_iss.client_id = "someone-else".into();
    let client = SalesforceClient::new(reqwest::Client::new(), wrong_iss, clock(), "62.0");
    assert!(
        matches!(client.login().await, Err(SalesforceError::Auth { error, .. }) if error == "invalid_client_id")
    );

    // An assertion that expired a minute ago (signed by a clock in the past).
    let past: SharedClock = Arc::new(sextant_contracts::time::FixedClock(
        chrono::Utc::now() - chrono::Duration::minutes(4),
    ));
    let assertion = sign_assertion(&auth(&sim, &creds().private_key_pem), &past).expect("sign");
    let resp = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", sim.base_url))
        .query(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(
        resp.status(),
        400,
        "parameters in the query string are read too"
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error_description"], "expired access/refresh token");
}

#[tokio::test]
async fn rest_errors_are_arrays() {
    let sim = start(2000).await;
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{}/services/data/v62.0/query", sim.base_url))
        .query(&[("q", "SELECT Id FROM Account")])
        .bearer_auth("00Dnotatoken")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");

    let client = SalesforceClient::new(
        http.clone(),
        auth(&sim, &creds().private_key_pem),
        clock(),
        "62.0",
    );
    match client.query_all("SELECT Id, Nmae FROM Account").await {
        Err(SalesforceError::Api {
            status: 400,
            error_code,
            message,
        }) => {
            assert_eq!(error_code, "INVALID_FIELD");
            assert!(message.contains("ERROR at Row:1:Column:12"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let token = client.login().await.expect("login");
    let resp = http
        .get(format!(
            "{}/services/data/v62.0/query/01gBOGUS-200",
            sim.base_url
        ))
        .bearer_auth(secrecy::ExposeSecret::expose_secret(&token.access_token))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().contains_key("content-type"));
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body[0]["errorCode"], "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn describe_lists_a_custom_objects_fields_and_refuses_an_unknown_object() {
    let sim = start(200).await;
    let client = SalesforceClient::new(
        reqwest::Client::new(),
        auth(&sim, &creds().private_key_pem),
        clock(),
        "62.0",
    );
    let d = client.describe("Web_Visit__c").await.expect("describe");
    assert!(d.custom && d.queryable, "{d:?}");
    let kind = |f: &str| d.field(f).map(|f| f.field_type.clone());
    assert_eq!(kind("Account__c").as_deref(), Some("reference"));
    assert_eq!(
        d.field("Account__c").map(|f| f.reference_to.clone()),
        Some(vec!["Account".to_owned()])
    );
    assert_eq!(kind("Visit_Date__c").as_deref(), Some("datetime"));
    assert_eq!(kind("Duration_Seconds__c").as_deref(), Some("double"));
    assert_eq!(kind("Channel__c").as_deref(), Some("picklist"));
    assert_eq!(kind("SystemModstamp").as_deref(), Some("datetime"));
    assert!(d.field("Channel__c").is_some_and(|f| f.custom));
    // The custom object is queryable like any other, and its `__c` fields come back.
    let rows = client
        .query_all(
            "SELECT Id, Account__c, Duration_Seconds__c FROM Web_Visit__c WHERE Channel__c = 'Web'",
        )
        .await
        .expect("query");
    assert!(rows.total_size > 0);
    assert!(rows.records.iter().all(|r| r.contains_key("Account__c")));
    match client.describe("Web_Visits__c").await {
        Err(SalesforceError::Api {
            status: 404,
            error_code,
            ..
        }) => assert_eq!(error_code, "NOT_FOUND"),
        other => panic!("expected 404 NOT_FOUND, got {other:?}"),
    }
}
