//! The client's parsers against real Salesforce responses (`../shared/fixtures/salesforce/`).

use std::path::PathBuf;

use sextant_salesforce::SalesforceError;
use sextant_salesforce::auth::parse_token_body;
use sextant_salesforce::client::rest_error;
use sextant_salesforce::wire::{QueryPage, Record};

fn fixture(name: &str) -> Option<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/salesforce");
    match std::fs::read_to_string(dir.join(name)) {
        Ok(s) => Some(s),
        Err(_) => {
            eprintln!(
                "SKIPPED: fixture {name} not found under {} (shared/ is absent)",
                dir.display()
            );
            None
        }
    }
}

#[test]
fn token_success_bodies_parse() {
    let Some(body) = fixture("oauth_token_success_password_flow.json") else {
        return;
    };
    let token = parse_token_body(200, &body).expect("parses");
    assert!(token.instance_url.starts_with("https://"));
    assert!(
        token.org_id().is_some_and(|o| o.starts_with("00D")),
        "{:?}",
        token.org_id()
    );
    let Some(body) = fixture("oauth_token_success_refresh_flow_cdp_scopes.json") else {
        return;
    };
    let token = parse_token_body(200, &body).expect("parses");
    assert!(token.scope.as_deref().unwrap_or_default().contains("api"));
}

#[test]
fn token_error_bodies_become_auth_errors() {
    let Some(body) = fixture("oauth_token_error_400_invalid_grant_auth_failure.json") else {
        return;
    };
    match parse_token_body(400, &body) {
        Err(SalesforceError::Auth { error, description }) => {
            assert_eq!(error, "invalid_grant");
            assert!(
                description.starts_with("authentication failure"),
                "{description}"
            );
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    let Some(body) = fixture("oauth_refresh_error_400_invalid_grant_expired.json") else {
        return;
    };
    assert!(matches!(
        parse_token_body(400, &body),
        Err(SalesforceError::Auth { .. })
    ));
    // A non-JSON error page is reported, not mistaken for a token.
    assert!(matches!(
        parse_token_body(400, "<html>"),
        Err(SalesforceError::Unexpected { status: 400, .. })
    ));
}

#[test]
fn rest_error_arrays_parse() {
    let Some(body) = fixture("rest_error_401_invalid_session_id.json") else {
        return;
    };
    match rest_error(401, &body) {
        SalesforceError::Api {
            status, error_code, ..
        } => {
            assert_eq!((status, error_code.as_str()), (401, "INVALID_SESSION_ID"));
        }
        other => panic!("{other:?}"),
    }
    let Some(body) = fixture("rest_error_400_invalid_field.json") else {
        return;
    };
    assert!(
        matches!(rest_error(400, &body), SalesforceError::Api { error_code, .. } if error_code == "INVALID_FIELD")
    );
}

#[test]
fn query_pages_parse_with_paging_and_nulls() {
    let Some(body) = fixture("soql_query_page1_not_done.json") else {
        return;
    };
    let page: QueryPage = serde_json::from_str(&body).expect("page 1");
    assert!(!page.done);
    let next = page.next_records_url.expect("next url");
    assert!(next.starts_with("/services/data/v"), "{next}");
    assert!(page.total_size >= page.records.len() as u64);
    let Some(body) = fixture("soql_query_page2_done.json") else {
        return;
    };
    let page2: QueryPage = serde_json::from_str(&body).expect("page 2");
    assert!(page2.done);
    assert_eq!(
        page2.total_size, page.total_size,
        "totalSize is the same on every page"
    );

    let Some(body) = fixture("soql_query_aggregate_with_null.json") else {
        return;
    };
    let agg: QueryPage = serde_json::from_str(&body).expect("aggregate");
    let nulls = agg
        .records
        .iter()
        .filter(|r| r.values().any(|v| v.is_null()))
        .count();
    assert!(nulls > 0, "explicit nulls are kept");
    for r in &agg.records {
        assert_eq!(
            Record(r).attributes().expect("attributes").object_type,
            "AggregateResult"
        );
    }
}

#[test]
fn record_fields_and_datetimes_read() {
    let Some(body) = fixture("sobject_record_get_with_null_field.json") else {
        return;
    };
    let record: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&body).expect("record");
    let r = Record(&record);
    assert!(r.attributes().is_ok());
    // Every datetime-looking string in the fixture parses.
    let mut seen = 0;
    for (field, value) in &record {
        if let Some(s) = value.as_str()
            && s.len() >= 24
            && s.as_bytes()[10] == b'T'
        {
            r.datetime(field).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen > 0, "the fixture has datetimes");
    let null_field = record
        .iter()
        .find(|(_, v)| v.is_null())
        .map(|(k, _)| k.clone())
        .expect("a null field");
    assert_eq!(r.opt_str(&null_field).expect("null is fine"), None);
    assert!(
        r.str(&null_field).is_err(),
        "a required null field is an error"
    );
}

#[test]
fn a_custom_object_describe_parses() {
    let Some(body) = fixture("sobject_describe_custom_object.json") else {
        return;
    };
    let d: sextant_salesforce::wire::SObjectDescribe = serde_json::from_str(&body).expect("parses");
    assert_eq!(d.name, "Whizbang");
    assert!(d.queryable);
    let id = d.field("id").expect("case-insensitive lookup");
    assert_eq!((id.name.as_str(), id.field_type.as_str()), ("Id", "id"));
    let owner = d.field("OwnerId").expect("owner");
    assert_eq!(owner.field_type, "reference");
    assert_eq!(owner.reference_to, ["Group", "User"]);
    assert!(d.field("Nope__c").is_none());
}
