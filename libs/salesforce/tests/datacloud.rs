//! Data Cloud against the org simulator: the a360 exchange (scheme-less tenant endpoint, data
//! space, expiry, the HTML login page) and Query API v2 paging with its quirks (empty middle
//! batches, a `nextBatchId` on the last page, opaque ids that need encoding, cursor expiry, 429).

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use secrecy::SecretString;
use sextant_contracts::time::{SharedClock, SystemClock};
use sextant_org_sim::credentials::{ConnectedAppCredentials, generate};
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSim, OrgSimConfig, RunningOrgSim};
use sextant_salesforce::datacloud::{DataCloudClient, DataCloudOptions};
use sextant_salesforce::{
    ClientOptions, JwtBearerConfig, LoginFlow, RetryPolicy, SalesforceClient, SalesforceError,
};

const CLIENT_ID: &str = "3MVG9sextant.dc";
const USERNAME: &str = "integration@sextant.example";

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn creds() -> &'static ConnectedAppCredentials {
    static CREDS: OnceLock<ConnectedAppCredentials> = OnceLock::new();
    CREDS.get_or_init(|| match generate("sextant-dc") {
        Ok(c) => c,
        Err(e) => panic!("credentials: {e}"),
    })
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

async fn start(
    edit: impl FnOnce(&mut OrgSimConfig),
) -> Result<RunningOrgSim, Box<dyn std::error::Error>> {
    let mut config = OrgSimConfig::new(CLIENT_ID, USERNAME, &creds().certificate_pem);
    config.dc_batch_size = 50;
    edit(&mut config);
    let (running, server) = OrgSim::start(
        config,
        OrgData::embedded_sample()?,
        clock(),
        TcpListener::bind("127.0.0.1:0")?,
    )?;
    tokio::spawn(server);
    Ok(running)
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

fn clients(
    sim: &RunningOrgSim,
    dataspace: Option<&str>,
) -> Result<(SalesforceClient, DataCloudClient), SalesforceError> {
    let flow = LoginFlow::JwtBearer(JwtBearerConfig {
        login_url: sim.base_url.clone(),
        audience: "https://login.salesforce.com".into(),
        client_id: CLIENT_ID.into(),
        username: USERNAME.into(),
        private_key_pem: SecretString::from(creds().private_key_pem.clone()),
    });
    let core = SalesforceClient::build(
        flow,
        clock(),
        ClientOptions {
            retry: retry(),
            ..ClientOptions::default()
        },
    )?;
    let http = sextant_salesforce::http::client(&sextant_salesforce::http::Timeouts::default())?;
    let dc = DataCloudClient::new(
        http,
        core.tokens().clone(),
        clock(),
        DataCloudOptions {
            dataspace: dataspace.map(str::to_owned),
            scheme: "http".into(),
            retry: retry(),
        },
    );
    Ok((core, dc))
}

const SQL: &str = "SELECT Id, Name, CreatedDate FROM Account__dll ORDER BY Id";

#[tokio::test]
async fn query_v2_pages_until_done_through_empty_batches_and_a_stale_next_batch_id() -> TestResult {
    let sim = start(|c| {
        c.dc_empty_middle_batch = true;
        c.dc_stale_next_batch_id = true;
    })
    .await?;
    let (_core, dc) = clients(&sim, Some("default"))?;
    let mut q = dc.query(SQL);
    let mut rows = Vec::new();
    let mut empty = 0;
    while let Some(batch) = q.next_batch().await? {
        if batch.is_empty() {
            empty += 1;
        }
        rows.extend(batch);
    }
    assert_eq!(rows.len(), 271, "every account once");
    assert_eq!(empty, 1, "the empty middle batch did not end the query");
    let names: Vec<&str> = q.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["Id__c", "Name__c", "CreatedDate__c"],
        "ordered by placeInOrder"
    );
    assert_eq!(q.columns()[2].type_code, 93);
    assert!(rows.windows(2).all(|w| w[0][0].as_str() < w[1][0].as_str()));
    // The opaque batch ids (with '+') went out encoded as one path segment; the tenant endpoint
    // had no scheme; the exchange went to the instance with the data space.
    let reqs = sim.requests();
    assert!(
        reqs.iter()
            .any(|r| r.path.starts_with("/api/v2/query/") && r.path.contains("%2B")),
        "encoded ids"
    );
    assert!(reqs.iter().any(|r| r.path == "/services/a360/token"));
    // One exchange for the whole query: the token is cached until its expiry.
    assert_eq!(
        reqs.iter()
            .filter(|r| r.path == "/services/a360/token")
            .count(),
        1
    );
    Ok(())
}

#[tokio::test]
async fn the_html_login_page_from_the_exchange_is_recognised_after_one_fresh_login() -> TestResult {
    let sim = start(|_| {}).await?;
    let (core, dc) = clients(&sim, None)?;
    core.login().await?;
    // Every core session is refused by the exchange (sessions are created but not accepted).
    sim.restrict_sessions(true);
    sim.expire_all_sessions();
    let err = dc.query(SQL).next_batch().await.expect_err("login page");
    assert!(matches!(err, SalesforceError::DataCloudLoginPage), "{err}");
    let logins = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/services/oauth2/token")
        .count();
    assert_eq!(logins, 2, "one fresh core login, no loop");
    Ok(())
}

#[tokio::test]
async fn an_unknown_data_space_and_bad_sql_are_clear_errors() -> TestResult {
    let sim = start(|_| {}).await?;
    let (_core, dc) = clients(&sim, Some("nowhere"))?;
    let err = dc.query(SQL).next_batch().await.expect_err("refused");
    assert!(err.to_string().contains("invalid dataspace"), "{err}");
    let (_core, dc) = clients(&sim, None)?;
    let err = dc
        .query("SELECT Nope FROM Account__dll")
        .next_batch()
        .await
        .expect_err("bad sql");
    assert!(
        matches!(&err, SalesforceError::DataCloud { status: 400, message } if message.contains("No such column")),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_cursor_and_an_expired_token_are_handled() -> TestResult {
    let sim = start(|_| {}).await?;
    let (_core, dc) = clients(&sim, None)?;
    // An expired Data Cloud token: one re-exchange, and the query goes on.
    let mut q = dc.query(SQL);
    q.next_batch().await?.ok_or("first")?;
    sim.expire_dc_tokens();
    q.next_batch().await?.ok_or("second")?;
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|r| r.path == "/services/a360/token")
            .count(),
        2
    );
    // The cursor expires between batches: a clear error, not an empty result.
    sim.expire_dc_cursors();
    let err = q.next_batch().await.expect_err("expired");
    assert!(
        matches!(err, SalesforceError::DataCloudCursorExpired(_)),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn too_many_concurrent_queries_get_429_which_is_retried_then_surfaced() -> TestResult {
    let sim = start(|c| c.dc_max_concurrent = 1).await?;
    let (_core, dc) = clients(&sim, None)?;
    let mut first = dc.query(SQL);
    first.next_batch().await?.ok_or("first")?;
    let err = dc.query(SQL).next_batch().await.expect_err("throttled");
    assert!(
        matches!(&err, SalesforceError::DataCloud { status: 429, .. }),
        "{err}"
    );
    let posts = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v2/query" && r.method == "POST")
        .count();
    assert_eq!(posts, 1 + 4, "the throttled query was tried 4 times");
    // Finishing the first query frees the slot.
    while first.next_batch().await?.is_some() {}
    let mut again = dc.query(SQL);
    assert!(again.next_batch().await?.is_some());
    Ok(())
}
