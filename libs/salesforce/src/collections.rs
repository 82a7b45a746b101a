//! sObject Collections upsert: up to 200 records per call, `allOrNone: false`, one result per
//! record in request order.
//!
//! Item errors carry `statusCode` (not `errorCode` as REST errors do). An item that failed for a
//! transient reason (`UNABLE_TO_LOCK_ROW`, …) is sent again, alone with the other transient ones,
//! with backoff; any other item error is final and reported with its record. A whole call that
//! fails transiently is retried by [`SalesforceClient::send`]; a whole call that fails for good
//! fails every record of it, with the reason. So every record ends written or failed with a
//! reason — nothing is dropped.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::SalesforceError;
use crate::client::{ApiRequest, SalesforceClient};
use crate::retry::is_transient_error_code;

/// The most records one collections call takes.
pub const MAX_COLLECTION_RECORDS: usize = 200;

/// One item error of a collections answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemError {
    pub status_code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// One item of a collections answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ItemResult {
    #[serde(default)]
    pub id: Option<String>,
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<ItemError>,
    #[serde(default)]
    pub created: Option<bool>,
}

/// What happened to one record of an upsert, after retries.
#[derive(Debug, Clone, PartialEq)]
pub struct UpsertOutcome {
    /// Position in the records given.
    pub index: usize,
    /// The record's Salesforce Id when written.
    pub id: Option<String>,
    /// Whether the upsert created it (false: updated).
    pub created: Option<bool>,
    /// The final error, when it failed.
    pub error: Option<ItemError>,
    /// Calls that carried it.
    pub attempts: u32,
}

impl SalesforceClient {
    /// One collections upsert call (≤ 200 records; `attributes.type` is added).
    pub async fn upsert_collection(
        &self,
        object: &str,
        external_id_field: &str,
        records: &[Map<String, Value>],
    ) -> Result<Vec<ItemResult>, SalesforceError> {
        if records.len() > MAX_COLLECTION_RECORDS {
            return Err(SalesforceError::Config(format!(
                "a collections call takes at most {MAX_COLLECTION_RECORDS} records, not {}",
                records.len()
            )));
        }
        let items: Vec<Value> = records
            .iter()
            .map(|r| {
                let mut m = Map::new();
                m.insert("attributes".into(), json!({"type": object}));
                m.extend(r.clone());
                Value::Object(m)
            })
            .collect();
        let path = format!(
            "/services/data/v{}/composite/sobjects/{object}/{external_id_field}",
            self.api_version()
        );
        let body = json!({"allOrNone": false, "records": items});
        let results: Vec<ItemResult> = self
            .send(&ApiRequest::json(Method::PATCH, path, &body))
            .await?
            .json()?;
        if results.len() != records.len() {
            return Err(SalesforceError::Unexpected {
                status: 200,
                detail: format!("{} results for {} records", results.len(), records.len()),
            });
        }
        Ok(results)
    }

    /// Upserts any number of records, 200 per call; items failing transiently are retried up to
    /// `max_attempts` calls in all. Returns one outcome per record, in order. `on_call` is told
    /// after each call how many outcomes are final.
    pub async fn upsert_records(
        &self,
        object: &str,
        external_id_field: &str,
        records: &[Map<String, Value>],
        max_attempts: u32,
        mut on_call: impl FnMut(usize),
    ) -> Vec<UpsertOutcome> {
        let mut outcomes: Vec<UpsertOutcome> = (0..records.len())
            .map(|index| UpsertOutcome {
                index,
                id: None,
                created: None,
                error: None,
                attempts: 0,
            })
            .collect();
        let mut final_count = 0;
        for chunk_start in (0..records.len()).step_by(MAX_COLLECTION_RECORDS) {
            let chunk_end = (chunk_start + MAX_COLLECTION_RECORDS).min(records.len());
            let mut pending: Vec<usize> = (chunk_start..chunk_end).collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                attempt += 1;
                let batch: Vec<Map<String, Value>> =
                    pending.iter().map(|&i| records[i].clone()).collect();
                let answer = self
                    .upsert_collection(object, external_id_field, &batch)
                    .await;
                let mut retry = Vec::new();
                match answer {
                    Ok(results) => {
                        for (&i, r) in pending.iter().zip(results) {
                            let o = &mut outcomes[i];
                            o.attempts = attempt;
                            if r.success {
                                o.id = r.id;
                                o.created = r.created;
                                o.error = None;
                                final_count += 1;
                                continue;
                            }
                            let error = r.errors.into_iter().next().unwrap_or(ItemError {
                                status_code: "UNKNOWN".into(),
                                message: "the item failed without an error".into(),
                                fields: Vec::new(),
                            });
                            let transient = is_transient_error_code(&error.status_code);
                            o.error = Some(error);
                            if transient && attempt < max_attempts {
                                retry.push(i);
                            } else {
                                final_count += 1;
                            }
                        }
                    }
                    Err(e) => {
                        // The whole call failed for good (the client already retried transient
                        // failures): every record of it failed, with the reason.
                        let code = match &e {
                            SalesforceError::Api { error_code, .. } => error_code.clone(),
                            _ => "CALL_FAILED".into(),
                        };
                        for &i in &pending {
                            outcomes[i].attempts = attempt;
                            outcomes[i].error = Some(ItemError {
                                status_code: code.clone(),
                                message: e.to_string(),
                                fields: Vec::new(),
                            });
                            final_count += 1;
                        }
                    }
                }
                on_call(final_count);
                if !retry.is_empty() {
                    let wait = self.retry_policy().wait(attempt - 1, None);
                    tokio::time::sleep(wait.unwrap_or_default()).await;
                }
                pending = retry;
            }
        }
        outcomes
    }
}
