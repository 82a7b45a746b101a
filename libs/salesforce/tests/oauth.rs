//! The four OAuth flows against the org simulator, with Salesforce's error bodies, and the
//! §10 pitfalls about them.

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};

use secrecy::SecretString;
use sextant_contracts::time::{SharedClock, SystemClock};
use sextant_org_sim::credentials::{ConnectedAppCredentials, generate};
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSim, OrgSimConfig, RunningOrgSim};
use sextant_salesforce::auth::{
    ClientCredentialsConfig, Pkce, RefreshTokenConfig, authorize_url, client_credentials_login,
    exchange_code, jwt_audience_for, jwt_bearer_login, refresh_token_login,
};
use sextant_salesforce::{JwtBearerConfig, SalesforceError};

const CLIENT_ID: &str = "3MVG9sextant.oauth";
const USERNAME: &str = "integration@sextant.example";
const CALLBACK: &str = "http://localhost:1717/OauthRedirect";

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn creds() -> &'static ConnectedAppCredentials {
    static CREDS: OnceLock<ConnectedAppCredentials> = OnceLock::new();
    CREDS.get_or_init(|| match generate("sextant-oauth") {
        Ok(c) => c,
        Err(e) => panic!("credentials: {e}"),
    })
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

fn secret() -> SecretString {
    SecretString::from(OrgSimConfig::new("x", "y", "z").client_secret)
}

async fn start(hosts: usize) -> Result<RunningOrgSim, Box<dyn std::error::Error>> {
    let config = OrgSimConfig::new(CLIENT_ID, USERNAME, &creds().certificate_pem);
    let listeners = (0..hosts)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let (running, server) =
        OrgSim::start_on(config, OrgData::embedded_sample()?, clock(), listeners)?;
    tokio::spawn(server);
    Ok(running)
}

fn http() -> Result<reqwest::Client, SalesforceError> {
    sextant_salesforce::http::client(&Default::default())
}

fn auth_error(r: Result<impl std::fmt::Debug, SalesforceError>) -> (String, String) {
    match r {
        Err(SalesforceError::Auth { error, description }) => (error, description),
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

#[tokio::test]
async fn pitfall_jwt_aud_is_login_or_test_never_my_domain() -> TestResult {
    let sim = start(1).await?;
    let mut config = JwtBearerConfig {
        // Logging in through the org's My Domain...
        login_url: sim.base_url.clone(),
        audience: "https://login.salesforce.com".into(),
        client_id: CLIENT_ID.into(),
        username: USERNAME.into(),
        private_key_pem: SecretString::from(creds().private_key_pem.clone()),
    };
    // ...the aud is still login.salesforce.com (production) or test.salesforce.com (sandbox).
    assert!(jwt_bearer_login(&http()?, &config, &clock()).await.is_ok());
    config.audience = "https://test.salesforce.com".into();
    assert!(jwt_bearer_login(&http()?, &config, &clock()).await.is_ok());
    assert_eq!(
        jwt_audience_for("https://acme.my.salesforce.com"),
        "https://login.salesforce.com"
    );
    assert_eq!(
        jwt_audience_for("https://acme--dev.sandbox.my.salesforce.com"),
        "https://test.salesforce.com"
    );
    // A My Domain aud is refused by the client before anything is sent...
    config.audience = "https://acme.my.salesforce.com".into();
    let before = sim.requests().len();
    assert!(matches!(
        jwt_bearer_login(&http()?, &config, &clock()).await,
        Err(SalesforceError::Config(m)) if m.contains("My Domain")
    ));
    assert_eq!(sim.requests().len(), before);
    // ...and by the org with Salesforce's error when another aud gets through.
    config.audience = "https://example.com".into();
    let (error, description) = auth_error(jwt_bearer_login(&http()?, &config, &clock()).await);
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_grant", "audience is invalid")
    );
    Ok(())
}

#[tokio::test]
async fn pitfall_client_credentials_on_the_login_host() -> TestResult {
    // hosts[0] plays login.salesforce.com, hosts[1] the org's My Domain.
    let sim = start(2).await?;
    let login = sim.set_login_only_host(0).ok_or("host")?;
    let my_domain = sim.move_instance(1).ok_or("host")?;
    let mut config = ClientCredentialsConfig {
        my_domain_url: login.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: secret(),
    };
    let (error, description) = auth_error(client_credentials_login(&http()?, &config).await);
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_grant", "request not supported on this domain")
    );
    config.my_domain_url = my_domain.clone();
    let token = client_credentials_login(&http()?, &config).await?;
    assert_eq!(token.instance_url, my_domain);
    // The client refuses the real shared login hosts without sending the secret.
    config.my_domain_url = "https://login.salesforce.com".into();
    assert!(matches!(
        client_credentials_login(&http()?, &config).await,
        Err(SalesforceError::Config(m)) if m.contains("My Domain")
    ));
    // A wrong secret is invalid_client.
    config.my_domain_url = my_domain;
    config.client_secret = SecretString::from("wrong".to_owned());
    let (error, _) = auth_error(client_credentials_login(&http()?, &config).await);
    assert_eq!(error, "invalid_client");
    Ok(())
}

#[tokio::test]
async fn refresh_token_flow_and_revocation() -> TestResult {
    let sim = start(1).await?;
    let config = RefreshTokenConfig {
        login_url: sim.base_url.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: None,
        refresh_token: SecretString::from(sim.issue_refresh_token()),
    };
    let token = refresh_token_login(&http()?, &config).await?;
    assert_eq!(token.instance_url, sim.base_url);
    sim.revoke_refresh_tokens();
    let (error, description) = auth_error(refresh_token_login(&http()?, &config).await);
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_grant", "expired access/refresh token")
    );
    Ok(())
}

/// Follows the authorisation URL (the simulator approves at once) and returns the callback's
/// query parameters.
async fn approve(
    url: &str,
) -> Result<std::collections::HashMap<String, String>, Box<dyn std::error::Error>> {
    let resp = http()?.get(url).send().await?;
    assert_eq!(resp.status(), 302);
    let location = resp
        .headers()
        .get("Location")
        .ok_or("no Location")?
        .to_str()?
        .to_owned();
    assert!(location.starts_with(CALLBACK), "{location}");
    Ok(url::Url::parse(&location)?
        .query_pairs()
        .into_owned()
        .collect())
}

#[tokio::test]
async fn web_server_flow_with_pkce() -> TestResult {
    let sim = start(1).await?;
    let pkce = Pkce::generate();
    let url = authorize_url(
        &sim.base_url,
        CLIENT_ID,
        CALLBACK,
        "api refresh_token",
        "st4te",
        &pkce,
    )?;
    let callback = approve(&url).await?;
    assert_eq!(callback.get("state").map(String::as_str), Some("st4te"));
    let code = callback.get("code").ok_or("no code")?;
    let tokens = exchange_code(
        &http()?,
        &sim.base_url,
        CLIENT_ID,
        None,
        CALLBACK,
        code,
        &pkce,
    )
    .await?;
    assert!(
        tokens.refresh_token.is_some(),
        "refresh_token scope granted"
    );
    assert!(
        tokens
            .issued_at
            .as_deref()
            .is_some_and(|t| t.parse::<u64>().is_ok())
    );
    assert!(tokens.signature.is_some());
    // The refresh token works for the refresh flow.
    let refreshed = refresh_token_login(
        &http()?,
        &RefreshTokenConfig {
            login_url: sim.base_url.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(secret()),
            refresh_token: SecretString::from(tokens.refresh_token.unwrap_or_default()),
        },
    )
    .await?;
    assert_eq!(refreshed.instance_url, sim.base_url);

    // Codes are single use.
    let (error, description) = auth_error(
        exchange_code(
            &http()?,
            &sim.base_url,
            CLIENT_ID,
            None,
            CALLBACK,
            code,
            &pkce,
        )
        .await,
    );
    assert_eq!(
        (error.as_str(), description.as_str()),
        ("invalid_grant", "invalid authorization code")
    );

    // A verifier that does not match the challenge is refused.
    let callback = approve(&authorize_url(
        &sim.base_url,
        CLIENT_ID,
        CALLBACK,
        "api",
        "s",
        &pkce,
    )?)
    .await?;
    let code = callback.get("code").ok_or("no code")?;
    let other = Pkce::generate();
    let (error, _) = auth_error(
        exchange_code(
            &http()?,
            &sim.base_url,
            CLIENT_ID,
            None,
            CALLBACK,
            code,
            &other,
        )
        .await,
    );
    assert_eq!(error, "invalid_request");

    // A different redirect_uri at the token endpoint is refused.
    let callback = approve(&authorize_url(
        &sim.base_url,
        CLIENT_ID,
        CALLBACK,
        "api",
        "s",
        &pkce,
    )?)
    .await?;
    let code = callback.get("code").ok_or("no code")?;
    let (error, _) = auth_error(
        exchange_code(
            &http()?,
            &sim.base_url,
            CLIENT_ID,
            None,
            "http://localhost:9/cb",
            code,
            &pkce,
        )
        .await,
    );
    assert_eq!(error, "redirect_uri_mismatch");

    // An unregistered callback is never redirected to.
    let resp = http()?
        .get(authorize_url(
            &sim.base_url,
            CLIENT_ID,
            "http://evil.example/cb",
            "api",
            "s",
            &pkce,
        )?)
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("Location").is_none());
    Ok(())
}
