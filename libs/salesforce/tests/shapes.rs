//! What the org simulator answers has the same shape (keys and JSON types) as Salesforce's real
//! responses in `../shared/fixtures/salesforce/`: query pages, record attributes, token bodies
//! (refresh / web-server flow) and REST error arrays.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;

use serde_json::Value;
use sextant_contracts::time::system_clock;
use sextant_org_sim::credentials::generate;
use sextant_org_sim::data::OrgData;
use sextant_org_sim::{OrgSim, OrgSimConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn fixture(name: &str) -> Option<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/salesforce");
    match std::fs::read_to_string(dir.join(name)) {
        Ok(s) => serde_json::from_str(&s).ok(),
        Err(_) => {
            eprintln!("SKIPPED: fixture {name} not found under {}", dir.display());
            None
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Top-level keys and their JSON types.
fn keys(v: &Value) -> BTreeMap<String, &'static str> {
    v.as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), kind(v))).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn simulator_answers_have_the_shapes_of_the_real_fixtures() -> TestResult {
    let (Some(page), Some(token), Some(refresh), Some(error)) = (
        fixture("soql_query_page1_not_done.json"),
        fixture("oauth_token_success_password_flow.json"),
        fixture("oauth_token_success_refresh_flow_cdp_scopes.json"),
        fixture("rest_error_401_invalid_session_id.json"),
    ) else {
        return Ok(());
    };
    let creds = generate("shapes")?;
    let mut config = OrgSimConfig::new("cid", "u@example.com", &creds.certificate_pem);
    config.batch_size = 200;
    let (sim, server) = OrgSim::start(
        config,
        OrgData::embedded_sample()?,
        system_clock(),
        TcpListener::bind("127.0.0.1:0")?,
    )?;
    tokio::spawn(server);
    let http = reqwest::Client::new();

    // Token body of the refresh flow: the same keys and types as the real ones.
    let sim_token: Value = http
        .post(format!("{}/services/oauth2/token", sim.base_url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "cid"),
            ("refresh_token", sim.issue_refresh_token().as_str()),
        ])
        .send()
        .await?
        .json()
        .await?;
    let real: BTreeMap<_, _> = keys(&token).into_iter().chain(keys(&refresh)).collect();
    let ours = keys(&sim_token);
    assert_eq!(ours, keys(&refresh), "refresh-flow body");
    for (k, t) in &ours {
        assert_eq!(real.get(k), Some(t), "{k}");
    }
    assert!(
        !ours.contains_key("expires_in"),
        "core tokens carry no expiry"
    );

    // A query page: envelope keys and types, and record attributes.
    let access = sim_token["access_token"]
        .as_str()
        .ok_or("token")?
        .to_owned();
    let sim_page: Value = http
        .get(format!("{}/services/data/v62.0/query", sim.base_url))
        .query(&[("q", "SELECT Id, Name FROM Account")])
        .bearer_auth(&access)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(keys(&sim_page), keys(&page), "query page envelope");
    let real_rec = &page["records"][0];
    let sim_rec = &sim_page["records"][0];
    assert_eq!(keys(&sim_rec["attributes"]), keys(&real_rec["attributes"]));
    assert_eq!(kind(&sim_rec["Id"]), "string");
    let next = sim_page["nextRecordsUrl"].as_str().ok_or("next")?;
    let real_next = page["nextRecordsUrl"].as_str().ok_or("next")?;
    let prefix = |s: &str| s.rsplit_once('/').map(|(p, _)| p.split('/').count());
    assert_eq!(prefix(next), prefix(real_next), "{next} vs {real_next}");

    // The REST error array.
    let sim_error: Value = http
        .get(format!("{}/services/data/v62.0/query", sim.base_url))
        .query(&[("q", "SELECT Id FROM Account")])
        .bearer_auth("00Dnot!valid")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(kind(&sim_error), "array");
    assert_eq!(keys(&sim_error[0]), keys(&error[0]));
    assert_eq!(sim_error, error, "the same body, word for word");
    Ok(())
}
