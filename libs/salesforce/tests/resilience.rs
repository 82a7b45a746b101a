//! The client against the org simulator with faults injected: what is retried, what is not,
//! re-authentication without loops, the API budget, and one test per pitfall of
//! `../shared/docs/salesforce-api.md` §10 that concerns the REST client.

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use sextant_contracts::time::{SharedClock, SystemClock};
use sextant_org_sim::credentials::{ConnectedAppCredentials, generate};
use sextant_org_sim::data::OrgData;
use sextant_org_sim::faults::{Fault, FaultRule};
use sextant_org_sim::{OrgSim, OrgSimConfig, RunningOrgSim};
use sextant_salesforce::http::Timeouts;
use sextant_salesforce::{
    BudgetPolicy, ClientOptions, JwtBearerConfig, LoginFlow, RetryPolicy, SalesforceClient,
    SalesforceError,
};

const CLIENT_ID: &str = "3MVG9sextant.resilience";
const USERNAME: &str = "integration@sextant.example";
const ACCOUNTS: usize = 271;

fn creds() -> &'static ConnectedAppCredentials {
    static CREDS: OnceLock<ConnectedAppCredentials> = OnceLock::new();
    CREDS.get_or_init(|| match generate("sextant-resilience") {
        Ok(c) => c,
        Err(e) => panic!("credentials: {e}"),
    })
}

fn org() -> OrgData {
    static ORG: OnceLock<OrgData> = OnceLock::new();
    ORG.get_or_init(|| match OrgData::embedded_sample() {
        Ok(o) => o,
        Err(e) => panic!("sample: {e}"),
    })
    .clone()
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn start_with(
    hosts: usize,
    edit: impl FnOnce(&mut OrgSimConfig),
) -> Result<RunningOrgSim, Box<dyn std::error::Error>> {
    let mut config = OrgSimConfig::new(CLIENT_ID, USERNAME, &creds().certificate_pem);
    config.batch_size = 200;
    edit(&mut config);
    let listeners = (0..hosts)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let (running, server) = OrgSim::start_on(config, org(), clock(), listeners)?;
    tokio::spawn(server);
    Ok(running)
}

async fn start() -> Result<RunningOrgSim, Box<dyn std::error::Error>> {
    start_with(1, |_| {}).await
}

fn fast_options() -> ClientOptions {
    ClientOptions {
        api_version: "62.0".into(),
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        },
        budget: BudgetPolicy::default(),
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(10),
        },
        query_batch_size: None,
    }
}

fn client(
    sim: &RunningOrgSim,
    options: ClientOptions,
) -> Result<SalesforceClient, SalesforceError> {
    let flow = LoginFlow::JwtBearer(JwtBearerConfig {
        login_url: sim.base_url.clone(),
        audience: "https://login.salesforce.com".into(),
        client_id: CLIENT_ID.into(),
        username: USERNAME.into(),
        private_key_pem: SecretString::from(creds().private_key_pem.clone()),
    });
    SalesforceClient::build(flow, clock(), options)
}

const SOQL: &str = "SELECT Id, Name FROM Account";

fn count(sim: &RunningOrgSim, path_part: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path.contains(path_part))
        .count()
}

#[tokio::test]
async fn a_transient_503_is_retried_and_the_read_completes() -> TestResult {
    let sim = start().await?;
    let c = client(&sim, fast_options())?;
    sim.inject(FaultRule::new("/query", 2, Fault::unavailable()));
    let out = c.query_all(SOQL).await?;
    assert_eq!(out.records.len(), ACCOUNTS);
    assert_eq!(c.stats().retries, 2);
    // Two failed attempts, then page 1 and page 2.
    assert_eq!(count(&sim, "/query"), 4);
    Ok(())
}

#[tokio::test]
async fn unable_to_lock_row_is_transient() -> TestResult {
    let sim = start().await?;
    let c = client(&sim, fast_options())?;
    sim.inject(FaultRule::new("/query", 1, Fault::lock_row()));
    assert_eq!(c.query_all(SOQL).await?.records.len(), ACCOUNTS);
    assert_eq!(c.stats().retries, 1);
    Ok(())
}

#[tokio::test]
async fn a_4xx_that_will_fail_again_is_not_retried() -> TestResult {
    let sim = start().await?;
    let c = client(&sim, fast_options())?;
    match c.query_all("SELECT Id, Nmae FROM Account").await {
        Err(SalesforceError::Api {
            status: 400,
            error_code,
            ..
        }) => assert_eq!(error_code, "INVALID_FIELD"),
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&sim, "/query"), 1, "sent once");
    assert_eq!(c.stats().retries, 0);
    // An injected 404 is not retried either.
    sim.inject(FaultRule::new(
        "/query",
        1,
        Fault::Rest {
            status: 404,
            error_code: "NOT_FOUND".into(),
            message: "The requested resource does not exist".into(),
        },
    ));
    assert!(matches!(
        c.query_all(SOQL).await,
        Err(SalesforceError::Api { status: 404, .. })
    ));
    assert_eq!(count(&sim, "/query"), 2);
    Ok(())
}

#[tokio::test]
async fn retries_stop_at_the_cap_with_the_last_error() -> TestResult {
    let sim = start().await?;
    let c = client(&sim, fast_options())?;
    sim.inject(FaultRule::new("/query", 100, Fault::unavailable()));
    match c.query_all(SOQL).await {
        Err(SalesforceError::RetriesExhausted { attempts, last }) => {
            assert_eq!(attempts, 4);
            assert!(
                matches!(*last, SalesforceError::Api { status: 503, ref error_code, .. } if error_code == "SERVER_UNAVAILABLE")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&sim, "/query"), 4);
    Ok(())
}

#[tokio::test]
async fn retry_after_is_respected() -> TestResult {
    let sim = start().await?;
    let c = client(&sim, fast_options())?;
    sim.inject(FaultRule::new(
        "/query",
        1,
        Fault::TooManyRequests {
            retry_after_secs: Some(1),
        },
    ));
    let started = Instant::now();
    assert_eq!(c.query_all(SOQL).await?.records.len(), ACCOUNTS);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    // A Retry-After beyond the cap ends the retries at once instead of sleeping for an hour.
    sim.inject(FaultRule::new(
        "/query",
        1,
        Fault::TooManyRequests {
            retry_after_secs: Some(3600),
        },
    ));
    assert!(matches!(
        c.query_all(SOQL).await,
        Err(SalesforceError::RetriesExhausted { attempts: 1, .. })
    ));
    Ok(())
}

#[tokio::test]
async fn a_connection_reset_mid_body_is_retried() -> TestResult {
    let sim = start().await?;
    let c = client(&sim, fast_options())?;
    sim.inject(FaultRule::new("/query", 1, Fault::ResetMidBody));
    assert_eq!(c.query_all(SOQL).await?.records.len(), ACCOUNTS);
    assert_eq!(c.stats().retries, 1);
    Ok(())
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() -> TestResult {
    let sim = start().await?;
    let mut options = fast_options();
    options.timeouts.request = Duration::from_millis(300);
    let c = client(&sim, options)?;
    c.login().await?;
    sim.inject(FaultRule::new(
        "/query",
        1,
        Fault::Delay(Duration::from_secs(3)),
    ));
    assert_eq!(c.query_all(SOQL).await?.records.len(), ACCOUNTS);
    assert_eq!(c.stats().retries, 1);
    // Always slow: the timeout is reported after the last attempt, not waited out forever.
    sim.inject(FaultRule::new(
        "/query",
        4,
        Fault::Delay(Duration::from_secs(3)),
    ));
    match c.query_all(SOQL).await {
        Err(SalesforceError::RetriesExhausted { last, .. }) => {
            assert!(
                matches!(&*last, SalesforceError::Transport(e) if e.is_timeout()),
                "{last:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[test]
fn every_http_client_has_timeouts() {
    let zero = Timeouts {
        connect: Duration::ZERO,
        request: Duration::from_secs(1),
    };
    assert!(matches!(
        sextant_salesforce::http::client(&zero),
        Err(SalesforceError::Config(_))
    ));
    assert!(sextant_salesforce::http::client(&Timeouts::default()).is_ok());
}

#[tokio::test]
async fn api_usage_is_read_and_the_budget_slows_then_stops() -> TestResult {
    let sim = start_with(1, |c| c.api_request_limit = 1000).await?;
    let mut options = fast_options();
    options.budget = BudgetPolicy {
        slow_down_at: 0.5,
        stop_at: 0.9,
        slow_down_delay: Duration::from_millis(10),
    };
    let c = client(&sim, options)?;
    c.query_all(SOQL).await?;
    let usage = c.api_usage().ok_or("no Sforce-Limit-Info read")?;
    assert_eq!((usage.used, usage.max), (2, 1000), "two pages, two calls");
    assert_eq!(c.stats().throttled, 0);

    // Past half the budget: calls are slowed down but still made.
    sim.set_api_usage(600);
    c.query_all(SOQL).await?;
    assert_eq!(c.stats().throttled, 1, "page 2 waited");

    // The first page reports 95%: page 2 is never sent, and the error says why.
    sim.set_api_usage(949);
    match c.query_all(SOQL).await {
        Err(SalesforceError::BudgetExhausted {
            used,
            max,
            stop_percent,
        }) => {
            assert_eq!((used, max, stop_percent), (950, 1000, 90));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.api_usage(), 950, "nothing sent after the stop");
    Ok(())
}

#[tokio::test]
async fn pitfall_non_json_error_page_is_an_error_not_a_crash() -> TestResult {
    let sim = start().await?;
    let c = client(&sim, fast_options())?;
    // A maintenance page is transient: retried, then the read completes.
    sim.inject(FaultRule::new("/query", 1, Fault::html_503()));
    assert_eq!(c.query_all(SOQL).await?.records.len(), ACCOUNTS);
    // A plain-text 400 from a proxy is reported with the start of its body.
    sim.inject(FaultRule::new(
        "/query",
        1,
        Fault::Raw {
            status: 400,
            content_type: "text/plain".into(),
            body: "Bad Request: header too large".into(),
        },
    ));
    match c.query_all(SOQL).await {
        Err(SalesforceError::Unexpected { status, detail }) => {
            assert_eq!(status, 400);
            assert!(detail.contains("header too large"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn pitfall_sessions_silently_expire_and_concurrent_401s_log_in_once() -> TestResult {
    let sim = start().await?;
    let c = Arc::new(client(&sim, fast_options())?);
    c.login().await?;
    sim.expire_all_sessions();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.query_all("SELECT Id FROM Case").await
        }));
    }
    for t in tasks {
        assert_eq!(t.await??.records.len(), 149);
    }
    assert_eq!(
        c.tokens().logins(),
        2,
        "one start-up login and ONE re-login"
    );
    assert_eq!(count(&sim, "/services/oauth2/token"), 2);
    Ok(())
}

#[tokio::test]
async fn pitfall_refresh_loop_is_capped_and_surfaced() -> TestResult {
    let sim = start().await?;
    let c = client(&sim, fast_options())?;
    // An expired password: the login works, every session it gives is refused.
    sim.restrict_sessions(true);
    match c.query_all(SOQL).await {
        Err(e @ SalesforceError::SessionRejected { .. }) => {
            assert!(e.to_string().contains("not retrying"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        count(&sim, "/services/oauth2/token"),
        2,
        "first login + one re-login"
    );
    assert_eq!(count(&sim, "/query"), 2, "the call and its single retry");
    Ok(())
}

#[tokio::test]
async fn pitfall_retry_goes_to_the_new_instance_url() -> TestResult {
    let sim = start_with(2, |_| {}).await?;
    let c = client(&sim, fast_options())?;
    c.query_all(SOQL).await?;
    let new_host = sim.move_instance(1).ok_or("second host")?;
    let out = c.query_all(SOQL).await?;
    assert_eq!(out.records.len(), ACCOUNTS);
    assert_eq!(c.instance_url().await?, new_host);
    let new_port: u16 = new_host.rsplit(':').next().ok_or("port")?.parse()?;
    let queries: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/query"))
        .collect();
    // Old host: 2 pages + the 401; new host: the retried first page + page 2.
    assert_eq!(queries.len(), 5);
    assert!(
        queries[3..].iter().all(|r| r.port == new_port),
        "{queries:?}"
    );
    assert_eq!(c.tokens().logins(), 2);
    Ok(())
}

#[tokio::test]
async fn pitfall_next_records_url_is_relative() -> TestResult {
    let sim = start().await?;
    let c = client(&sim, fast_options())?;
    let out = c.query_all(SOQL).await?;
    assert_eq!(out.pages, 2);
    let follow = sim
        .requests()
        .into_iter()
        .find(|r| r.path.contains("/query/01g"))
        .ok_or("no follow-up request")?;
    assert_eq!(follow.port, sim.port, "followed on the instance host");
    assert!(
        follow
            .header("authorization")
            .is_some_and(|h| h.starts_with("Bearer "))
    );

    // An absolute URL on the instance itself is fine.
    sim.set_next_records_url_base(Some(sim.base_url.clone()));
    assert_eq!(c.query_all(SOQL).await?.records.len(), ACCOUNTS);

    // One that points at another host is refused before the token is sent there.
    let elsewhere = TcpListener::bind("127.0.0.1:0")?;
    let foreign = format!("http://127.0.0.1:{}", elsewhere.local_addr()?.port());
    sim.set_next_records_url_base(Some(foreign.clone()));
    match c.query_all(SOQL).await {
        Err(SalesforceError::ForeignUrl { url, instance }) => {
            assert!(url.starts_with(&foreign), "{url}");
            assert_eq!(instance, sim.base_url);
        }
        other => panic!("{other:?}"),
    }
    elsewhere.set_nonblocking(true)?;
    assert!(
        elsewhere.accept().is_err(),
        "nothing connected to the foreign host"
    );
    Ok(())
}

#[tokio::test]
async fn pitfall_batch_size_is_only_a_hint() -> TestResult {
    let sim = start_with(1, |c| c.server_batch_cap = Some(100)).await?;
    let mut options = fast_options();
    options.query_batch_size = Some(2000);
    let c = client(&sim, options)?;
    let out = c.query_all(SOQL).await?;
    assert_eq!(out.records.len(), ACCOUNTS);
    assert_eq!(out.total_size, ACCOUNTS as u64);
    assert_eq!(out.pages, 3, "the org chose 100 a page");
    let first = sim
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/query"))
        .ok_or("no query")?;
    assert_eq!(first.header("sforce-query-options"), Some("batchSize=2000"));
    Ok(())
}
