//! Bulk API 2.0 ingest jobs: for write-backs too large to send 200 records per call.
//!
//! The flow is Salesforce's (`/services/data/vNN.N/jobs/ingest`):
//! 1. `POST …/jobs/ingest` `{"object", "operation": "upsert"|"update"|"insert",
//!    "externalIdFieldName", "contentType": "CSV", "lineEnding": "LF"}` → JobInfo, state `Open`;
//! 2. `PUT …/jobs/ingest/{id}/batches` with `Content-Type: text/csv` — **one upload per job**, at
//!    most 150 MB once base64-encoded, so at most [`MAX_UPLOAD_BYTES`] (100 MB) of raw CSV: a
//!    larger write-back is split over several jobs ([`IngestOptions::max_upload_bytes`]);
//! 3. `PATCH …/jobs/ingest/{id}` `{"state": "UploadComplete"}`;
//! 4. poll `GET …/jobs/ingest/{id}` with backoff until `JobComplete`, `Failed` or `Aborted` (a job
//!    still running at the timeout is aborted);
//! 5. read `successfulResults/` (`sf__Id`, `sf__Created`, then the uploaded columns),
//!    `failedResults/` (`sf__Id`, `sf__Error`, then the uploaded columns) and
//!    `unprocessedrecords/` (the uploaded columns) — all CSV.
//!
//! Results carry no row number, so each result row is matched back to the record it came from by
//! its key column (the external-id field, or `Id`), in order when a key repeats. A record found
//! in none of the three lists is reported as failed (`BULK_RESULT_MISSING`), so every record
//! ends written, failed with a reason, or unprocessed — never dropped. `sf__Error` reads
//! `STATUS_CODE:message:fields --`; it is split into an [`ItemError`] like a collections item
//! error, so callers retry the transient ones (`UNABLE_TO_LOCK_ROW`) the same way.
//!
//! CSV cells: strings are quoted, numbers and booleans written as JSON writes them, and `null`
//! is `#N/A` — Bulk API 2.0 leaves a field unchanged when its cell is empty, and clears it only
//! for `#N/A`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::SalesforceError;
use crate::bulk::parse_csv;
use crate::client::{ApiRequest, SalesforceClient};
use crate::collections::ItemError;

/// The most raw CSV one upload may carry (Salesforce: 150 MB base64-encoded, i.e. 100 MB raw).
pub const MAX_UPLOAD_BYTES: usize = 100 * 1024 * 1024;

/// How ingest jobs are run.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestOptions {
    /// First wait between two polls; doubled up to `poll_max`.
    pub poll_initial: Duration,
    pub poll_max: Duration,
    /// A job not finished after this long is aborted; its records are reported unprocessed.
    pub timeout: Duration,
    /// Raw CSV bytes per job (one upload each); at most [`MAX_UPLOAD_BYTES`].
    pub max_upload_bytes: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            poll_initial: Duration::from_millis(500),
            poll_max: Duration::from_secs(10),
            timeout: Duration::from_secs(3600),
            max_upload_bytes: MAX_UPLOAD_BYTES,
        }
    }
}

/// What an ingest job does with its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOperation {
    /// Insert or update by an external-id field (or `Id`).
    Upsert { external_id_field: String },
    /// Update by `Id`.
    Update,
}

impl IngestOperation {
    /// The column that identifies a row.
    pub fn key_field(&self) -> &str {
        match self {
            Self::Upsert { external_id_field } => external_id_field,
            Self::Update => "Id",
        }
    }
}

/// An ingest job's `JobInfo` (the fields we use).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngestJobInfo {
    pub id: String,
    pub state: String,
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub operation: Option<String>,
    #[serde(default)]
    pub number_records_processed: Option<u64>,
    #[serde(default)]
    pub number_records_failed: Option<u64>,
    #[serde(default)]
    pub error_message: Option<String>,
}

/// What happened to one record of an ingest.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestOutcome {
    /// Written: its Salesforce Id and whether it was created.
    Written { id: String, created: Option<bool> },
    /// Failed with Salesforce's reason (transient or not: see
    /// [`crate::retry::is_transient_error_code`]).
    Failed(ItemError),
    /// Not processed (the job failed, was aborted or timed out before reaching it); `reason`
    /// says why. Safe to send again.
    Unprocessed { reason: String },
}

/// The outcome of [`SalesforceClient::bulk_ingest`]: one outcome per record, in order, and the
/// jobs used.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestReport {
    pub outcomes: Vec<IngestOutcome>,
    pub job_ids: Vec<String>,
}

/// Which result list of a finished job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    Successful,
    Failed,
    Unprocessed,
}

impl ResultKind {
    fn path(self) -> &'static str {
        match self {
            Self::Successful => "successfulResults/",
            Self::Failed => "failedResults/",
            Self::Unprocessed => "unprocessedrecords/",
        }
    }
}

/// Splits `sf__Error` (`STATUS_CODE:message:fields --`) into an item error.
pub fn parse_sf_error(text: &str) -> ItemError {
    let text = text.trim();
    let Some((code, rest)) = text.split_once(':') else {
        return ItemError {
            status_code: "UNKNOWN".into(),
            message: text.to_owned(),
            fields: Vec::new(),
        };
    };
    let code_ok = !code.is_empty()
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !code_ok {
        return ItemError {
            status_code: "UNKNOWN".into(),
            message: text.to_owned(),
            fields: Vec::new(),
        };
    }
    let rest = rest.strip_suffix("--").unwrap_or(rest).trim_end();
    // The field list follows the last ':' (empty when no field is named).
    let (message, fields) = match rest.rsplit_once(':') {
        Some((m, f)) if !f.contains(' ') || f.trim().split(',').all(is_api_name) => (
            m,
            f.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        _ => (rest, Vec::new()),
    };
    ItemError {
        status_code: code.to_owned(),
        message: message.trim().to_owned(),
        fields,
    }
}

fn is_api_name(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One CSV cell for an upload.
fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => "#N/A".into(),
        Value::String(s) => format!("\"{}\"", s.replace('"', "\"\"")),
        other => other.to_string(),
    }
}

/// The columns of a set of records: the key first, then every other field in first-seen order.
fn columns(records: &[Map<String, Value>], key: &str) -> Vec<String> {
    let mut out = vec![key.to_owned()];
    for r in records {
        for k in r.keys() {
            if !out.iter().any(|c| c == k) {
                out.push(k.clone());
            }
        }
    }
    out
}

/// Renders records as upload CSV, split into chunks of at most `max_bytes` each (a chunk holds
/// at least one record). Returns, per chunk, its CSV and the indexes of its records.
pub fn render_chunks(
    records: &[Map<String, Value>],
    key: &str,
    max_bytes: usize,
) -> Vec<(Vec<u8>, Vec<usize>)> {
    let cols = columns(records, key);
    let header = format!(
        "{}\n",
        cols.iter()
            .map(|c| csv_cell(&Value::from(c.as_str())))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut chunks = Vec::new();
    let mut body = header.clone().into_bytes();
    let mut members = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let line = cols
            .iter()
            .map(|c| match r.get(c) {
                // A field this record does not set stays unchanged (empty cell).
                None => String::new(),
                Some(v) => csv_cell(v),
            })
            .collect::<Vec<_>>()
            .join(",");
        if !members.is_empty() && body.len() + line.len() + 1 > max_bytes {
            chunks.push((std::mem::take(&mut body), std::mem::take(&mut members)));
            body = header.clone().into_bytes();
        }
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
        members.push(i);
    }
    if !members.is_empty() {
        chunks.push((body, members));
    }
    chunks
}

/// The text of a key cell as it comes back in a result CSV.
fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl SalesforceClient {
    fn ingest_path(&self) -> String {
        format!("/services/data/v{}/jobs/ingest", self.api_version())
    }

    /// Creates an ingest job (state `Open`).
    pub async fn create_ingest_job(
        &self,
        object: &str,
        operation: &IngestOperation,
    ) -> Result<IngestJobInfo, SalesforceError> {
        let mut body = json!({
            "object": object,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        });
        match operation {
            IngestOperation::Upsert { external_id_field } => {
                body["operation"] = json!("upsert");
                body["externalIdFieldName"] = json!(external_id_field);
            }
            IngestOperation::Update => body["operation"] = json!("update"),
        }
        self.send(&ApiRequest::json(Method::POST, self.ingest_path(), &body))
            .await?
            .json()
    }

    /// Uploads a job's CSV (once per job).
    pub async fn upload_ingest_data(
        &self,
        job_id: &str,
        csv: Vec<u8>,
    ) -> Result<(), SalesforceError> {
        if csv.len() > MAX_UPLOAD_BYTES {
            return Err(SalesforceError::Config(format!(
                "an ingest upload takes at most {MAX_UPLOAD_BYTES} bytes of CSV, not {}",
                csv.len()
            )));
        }
        let req = ApiRequest {
            method: Method::PUT,
            path: format!("{}/{job_id}/batches", self.ingest_path()),
            headers: Vec::new(),
            body: Some(("text/csv", std::sync::Arc::new(csv))),
        };
        self.send(&req).await?;
        Ok(())
    }

    /// Sets a job's state (`UploadComplete` to start it, `Aborted` to stop it).
    pub async fn set_ingest_state(
        &self,
        job_id: &str,
        state: &str,
    ) -> Result<IngestJobInfo, SalesforceError> {
        self.send(&ApiRequest::json(
            Method::PATCH,
            format!("{}/{job_id}", self.ingest_path()),
            &json!({"state": state}),
        ))
        .await?
        .json()
    }

    /// Polls a started job until it is `JobComplete`, `Failed` or `Aborted`; a job still running
    /// at the timeout is aborted (and answered `Aborted`, with the reason in `errorMessage`).
    pub async fn wait_ingest_job(
        &self,
        mut info: IngestJobInfo,
        options: &IngestOptions,
    ) -> Result<IngestJobInfo, SalesforceError> {
        let started = tokio::time::Instant::now();
        let mut wait = options.poll_initial;
        loop {
            if matches!(info.state.as_str(), "JobComplete" | "Failed" | "Aborted") {
                return Ok(info);
            }
            if started.elapsed() >= options.timeout {
                let message = format!(
                    "not finished after {} s; aborted",
                    options.timeout.as_secs()
                );
                match self.set_ingest_state(&info.id, "Aborted").await {
                    Ok(mut aborted) => {
                        aborted.error_message = Some(message);
                        return Ok(aborted);
                    }
                    Err(e) => {
                        tracing::warn!(job = %info.id, error = %e, "Could not abort the ingest job.");
                        return Err(SalesforceError::BulkJob {
                            id: info.id,
                            state: info.state,
                            message,
                        });
                    }
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(options.poll_max);
            info = self
                .send(&ApiRequest::get(format!(
                    "{}/{}",
                    self.ingest_path(),
                    info.id
                )))
                .await?
                .json()?;
        }
    }

    /// One result list of a finished job, as records (CSV header first).
    pub async fn ingest_results(
        &self,
        job_id: &str,
        kind: ResultKind,
    ) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        let resp = self
            .send(
                &ApiRequest::get(format!("{}/{job_id}/{}", self.ingest_path(), kind.path()))
                    .header("Accept", "text/csv"),
            )
            .await?;
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        parse_csv(&resp.body)
    }

    /// Writes records with Bulk API 2.0: one job per [`IngestOptions::max_upload_bytes`] of CSV,
    /// each created, uploaded, closed, polled and read back. Every record gets an outcome, in
    /// order. A job that cannot be created or uploaded leaves its records unprocessed with the
    /// reason (the caller may send them another way); only errors before any job exists are
    /// returned as `Err`.
    pub async fn bulk_ingest(
        &self,
        object: &str,
        operation: &IngestOperation,
        records: &[Map<String, Value>],
        options: &IngestOptions,
    ) -> Result<IngestReport, SalesforceError> {
        let key = operation.key_field().to_owned();
        if let Some(i) = records.iter().position(|r| {
            r.get(&key)
                .is_none_or(|v| v.is_null() || key_text(v).is_empty())
        }) {
            return Err(SalesforceError::Config(format!(
                "record {i} has no {key}: every ingest record needs its key"
            )));
        }
        let max = options.max_upload_bytes.clamp(1, MAX_UPLOAD_BYTES);
        let mut outcomes: Vec<Option<IngestOutcome>> = vec![None; records.len()];
        let mut job_ids = Vec::new();
        for (csv, members) in render_chunks(records, &key, max) {
            let outcome = self
                .run_ingest_job(object, operation, &key, records, csv, &members, options)
                .await;
            match outcome {
                Ok((id, results)) => {
                    job_ids.push(id);
                    for (i, o) in members.iter().zip(results) {
                        outcomes[*i] = Some(o);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "A Bulk API 2.0 ingest job could not run.");
                    for i in &members {
                        outcomes[*i] = Some(IngestOutcome::Unprocessed {
                            reason: e.to_string(),
                        });
                    }
                }
            }
        }
        Ok(IngestReport {
            outcomes: outcomes
                .into_iter()
                .map(|o| {
                    o.unwrap_or(IngestOutcome::Unprocessed {
                        reason: "not sent".into(),
                    })
                })
                .collect(),
            job_ids,
        })
    }

    #[expect(clippy::too_many_arguments, reason = "one job's inputs")]
    async fn run_ingest_job(
        &self,
        object: &str,
        operation: &IngestOperation,
        key: &str,
        records: &[Map<String, Value>],
        csv: Vec<u8>,
        members: &[usize],
        options: &IngestOptions,
    ) -> Result<(String, Vec<IngestOutcome>), SalesforceError> {
        let created = self.create_ingest_job(object, operation).await?;
        let id = created.id.clone();
        tracing::info!(job = %id, records = members.len(), bytes = csv.len(), "Bulk API 2.0 ingest job created.");
        let started = async {
            self.upload_ingest_data(&id, csv).await?;
            self.set_ingest_state(&id, "UploadComplete").await
        }
        .await;
        let info = match started {
            Ok(info) => info,
            Err(e) => {
                // Do not leave an open job behind.
                if let Err(abort) = self.set_ingest_state(&id, "Aborted").await {
                    tracing::warn!(job = %id, error = %abort, "Could not abort the ingest job.");
                }
                return Err(e);
            }
        };
        let done = self.wait_ingest_job(info, options).await?;
        // Rows to match: key text → positions in `members`, in order.
        let mut waiting: HashMap<String, VecDeque<usize>> = HashMap::new();
        for (pos, &i) in members.iter().enumerate() {
            let k = records[i].get(key).map(key_text).unwrap_or_default();
            waiting.entry(k).or_default().push_back(pos);
        }
        let mut results: Vec<Option<IngestOutcome>> = vec![None; members.len()];
        let mut take = |row: &Map<String, Value>| -> Option<usize> {
            let k = row.get(key).map(key_text).unwrap_or_default();
            waiting.get_mut(&k).and_then(VecDeque::pop_front)
        };
        for row in self.ingest_results(&id, ResultKind::Successful).await? {
            if let Some(pos) = take(&row) {
                let created = row
                    .get("sf__Created")
                    .and_then(Value::as_str)
                    .map(|s| s.eq_ignore_ascii_case("true"));
                results[pos] = Some(IngestOutcome::Written {
                    id: row
                        .get("sf__Id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    created,
                });
            }
        }
        for row in self.ingest_results(&id, ResultKind::Failed).await? {
            if let Some(pos) = take(&row) {
                let text = row
                    .get("sf__Error")
                    .and_then(Value::as_str)
                    .unwrap_or("UNKNOWN:the row failed without an error --");
                results[pos] = Some(IngestOutcome::Failed(parse_sf_error(text)));
            }
        }
        let job_reason = match done.state.as_str() {
            "JobComplete" => "the job completed without reaching this record".to_owned(),
            s => format!(
                "ingest job {id} ended {s}: {}",
                done.error_message.as_deref().unwrap_or("no message")
            ),
        };
        for row in self.ingest_results(&id, ResultKind::Unprocessed).await? {
            if let Some(pos) = take(&row) {
                results[pos] = Some(IngestOutcome::Unprocessed {
                    reason: job_reason.clone(),
                });
            }
        }
        let outcomes = results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    if done.state == "JobComplete" {
                        IngestOutcome::Failed(ItemError {
                            status_code: "BULK_RESULT_MISSING".into(),
                            message: format!(
                                "ingest job {id} completed but listed this record in no result"
                            ),
                            fields: Vec::new(),
                        })
                    } else {
                        IngestOutcome::Unprocessed {
                            reason: job_reason.clone(),
                        }
                    }
                })
            })
            .collect();
        Ok((id, outcomes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sf_error_splits_code_message_and_fields() {
        let e =
            parse_sf_error("REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --");
        assert_eq!(e.status_code, "REQUIRED_FIELD_MISSING");
        assert_eq!(e.message, "Required fields are missing: [Name]");
        assert_eq!(e.fields, vec!["Name".to_owned()]);
        let e = parse_sf_error(
            "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--",
        );
        assert_eq!(e.status_code, "UNABLE_TO_LOCK_ROW");
        assert_eq!(
            e.message,
            "unable to obtain exclusive access to this record"
        );
        assert!(e.fields.is_empty());
        let e = parse_sf_error("something odd happened");
        assert_eq!(e.status_code, "UNKNOWN");
        assert_eq!(e.message, "something odd happened");
    }

    #[test]
    fn chunks_respect_the_byte_limit_and_quote_cells() {
        let records: Vec<Map<String, Value>> = (0..10)
            .map(|i| {
                let mut m = Map::new();
                m.insert("Ext__c".into(), Value::from(format!("k\"{i}")));
                m.insert("Score__c".into(), Value::from(0.5));
                m.insert("Note__c".into(), Value::Null);
                m
            })
            .collect();
        let all = render_chunks(&records, "Ext__c", usize::MAX);
        assert_eq!(all.len(), 1);
        let text = String::from_utf8(all[0].0.clone()).expect("utf-8");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("\"Ext__c\",\"Score__c\",\"Note__c\""));
        assert_eq!(lines.next(), Some("\"k\"\"0\",0.5,#N/A"));
        let header_len = "\"Ext__c\",\"Score__c\",\"Note__c\"\n".len();
        let line_len = "\"k\"\"0\",0.5,#N/A\n".len();
        let small = render_chunks(&records, "Ext__c", header_len + 3 * line_len);
        assert_eq!(small.len(), 4, "3 + 3 + 3 + 1 records");
        assert!(
            small
                .iter()
                .all(|(b, _)| b.len() <= header_len + 3 * line_len)
        );
        let members: Vec<usize> = small.iter().flat_map(|(_, m)| m.clone()).collect();
        assert_eq!(members, (0..10).collect::<Vec<_>>());
        // Every chunk parses back with its header.
        for (b, m) in &small {
            assert_eq!(parse_csv(b).expect("csv").len(), m.len());
        }
    }
}
