//! Score write-back jobs: scores go back to Salesforce, and every record ends `written` or
//! `failed` with its reason — nothing is dropped silently.
//!
//! A job's records are stored when it is accepted (`pending`), then written in the background;
//! each record's outcome (the Salesforce Id and whether it was created, or the error's
//! `statusCode` and message) is stored as the answers arrive. Two ways to write:
//!
//! - **sObject Collections upsert** (200 records per call, `allOrNone: false`) for small jobs and
//!   for every retry. Items that fail for a transient reason (`UNABLE_TO_LOCK_ROW`) are retried
//!   with backoff, alone; other item errors are final.
//! - **Bulk API 2.0 ingest** when a job has at least the configured threshold of records
//!   (`writeback_bulk_threshold`, default 10,000): the pending records go up as CSV (one ingest
//!   job per 100 MB), and each comes back in the job's successful or failed results, or as
//!   unprocessed (the ingest job failed or was aborted). Rows that failed transiently and
//!   unprocessed rows stay pending with one attempt counted, and go through collections for the
//!   remaining attempts; other failures are final. The ingest job ids are listed on the job.
//!
//! A job left running by a connector that stopped resumes with its pending records (records an
//! interrupted ingest job had already written are upserted again with the same values: upsert
//! is idempotent).

use chrono::{DateTime, Utc};
use sea_orm::{DbErr, QueryResult, Value as DbValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use sextant_salesforce::SalesforceClient;
use sextant_salesforce::ingest::{IngestOperation, IngestOptions, IngestOutcome};
use sextant_salesforce::retry::is_transient_error_code;

use crate::db::{Db, from_us, to_us};
use crate::jobs::JobState;

/// The most scores one write-back job takes.
pub const MAX_WRITEBACK_RECORDS: usize = 50_000;
/// Records upserted per round (memory holds one round).
const CHUNK: i64 = 2_000;
/// Records sent per round of Bulk API 2.0 ingest (memory holds one round; a job holds at most
/// [`MAX_WRITEBACK_RECORDS`], so one round today).
const BULK_ROUND: i64 = 100_000;

/// One score to write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScoreToWrite {
    /// The record's key: its Salesforce Id, or its external id when `external_id_field` is not `Id`.
    #[schema(min_length = 1, max_length = 255, format = "salesforce-id")]
    pub id: String,
    /// The score (a finite number).
    pub score: f64,
}

/// `POST /v1/writebacks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WriteBackRequest {
    /// The object written (default `Account`).
    #[serde(default = "default_object")]
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_]{0,79}$")]
    pub object: String,
    /// The upsert key: `Id` (default) or an external-id field.
    #[serde(default = "default_key")]
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_]{0,79}$")]
    pub external_id_field: String,
    /// The field that receives the score (default `Churn_Score__c`).
    #[serde(default = "default_score_field")]
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_]{0,79}$")]
    pub score_field: String,
    /// The field that receives the model version, when `model_version` is given (default
    /// `Sextant_Model_Version__c`).
    #[serde(default = "default_version_field")]
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_]{0,79}$")]
    pub model_version_field: String,
    #[serde(default)]
    pub model_version: Option<String>,
    /// 1 to 50,000.
    #[schema(min_items = 1, max_items = 50000)]
    pub scores: Vec<ScoreToWrite>,
}

fn default_object() -> String {
    "Account".into()
}
fn default_key() -> String {
    "Id".into()
}
fn default_score_field() -> String {
    "Churn_Score__c".into()
}
fn default_version_field() -> String {
    "Sextant_Model_Version__c".into()
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordOutcome {
    Pending,
    Written,
    Failed,
}

/// One record of a write-back job.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WriteBackRecord {
    /// The key sent.
    pub id: String,
    pub outcome: RecordOutcome,
    /// The Salesforce Id written.
    pub salesforce_id: Option<String>,
    /// Whether the upsert created the record.
    pub created: Option<bool>,
    /// The item's `statusCode` when it failed (e.g. `FIELD_CUSTOM_VALIDATION_EXCEPTION`).
    pub status_code: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
    /// Calls that carried it.
    pub attempts: u32,
}

/// A write-back job.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WriteBackJob {
    pub id: String,
    pub state: JobState,
    pub object: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub total: u64,
    pub written: u64,
    pub failed: u64,
    /// Salesforce API calls made.
    pub api_calls: u64,
    /// Bulk API 2.0 ingest jobs used (empty when every record went by collections upsert).
    pub bulk_jobs: Vec<String>,
    pub error: Option<String>,
    /// Records from `offset` (at most `limit`), in request order.
    pub records: Vec<WriteBackRecord>,
}

/// A record to upsert and its key.
pub type KeyedRecord = (String, Map<String, Value>);

/// Why a write-back request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteBackRefusal {
    #[error("no scores given")]
    Empty,
    #[error("{0} scores given; a job takes at most 50000")]
    TooMany(usize),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("score {index}: {problem}")]
    InvalidRecord { index: usize, problem: String },
}

fn api_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 80
        && !name.contains("__c__")
}

impl WriteBackRequest {
    /// Checks names and keys; returns the records to upsert.
    pub fn records(&self) -> Result<Vec<KeyedRecord>, WriteBackRefusal> {
        if self.scores.is_empty() {
            return Err(WriteBackRefusal::Empty);
        }
        if self.scores.len() > MAX_WRITEBACK_RECORDS {
            return Err(WriteBackRefusal::TooMany(self.scores.len()));
        }
        for (what, name) in [
            ("object", &self.object),
            ("external_id_field", &self.external_id_field),
            ("score_field", &self.score_field),
            ("model_version_field", &self.model_version_field),
        ] {
            if !api_name(name) {
                return Err(WriteBackRefusal::InvalidParameter(format!(
                    "{what} {name:?} is not a Salesforce API name"
                )));
            }
        }
        let by_id = self.external_id_field.eq_ignore_ascii_case("Id");
        let mut out = Vec::with_capacity(self.scores.len());
        for (index, s) in self.scores.iter().enumerate() {
            let bad = |problem: String| WriteBackRefusal::InvalidRecord { index, problem };
            if s.id.is_empty() || s.id.len() > 255 {
                return Err(bad("the id is empty or longer than 255 characters".into()));
            }
            let key = if by_id {
                sextant_contracts::SalesforceId::parse(&s.id)
                    .map_err(|e| bad(e.to_string()))?
                    .as_str()
                    .to_owned()
            } else {
                s.id.clone()
            };
            if !s.score.is_finite() {
                return Err(bad("the score is not a finite number".into()));
            }
            let mut rec = Map::new();
            rec.insert(self.external_id_field.clone(), Value::from(key.clone()));
            rec.insert(self.score_field.clone(), Value::from(s.score));
            if let Some(v) = &self.model_version {
                rec.insert(self.model_version_field.clone(), Value::from(v.as_str()));
            }
            out.push((key, rec));
        }
        Ok(out)
    }
}

/// The write-back jobs of one org.
#[derive(Debug)]
pub struct WriteBacks {
    db: Db,
    org: String,
}

fn job_from_row(r: &QueryResult) -> Result<WriteBackJob, DbErr> {
    let finished: Option<i64> = r.try_get("", "finished_us")?;
    let count = |c: &str| -> Result<u64, DbErr> {
        Ok(u64::try_from(r.try_get::<i64>("", c)?).unwrap_or(0))
    };
    Ok(WriteBackJob {
        id: r.try_get("", "id")?,
        state: JobState::parse(&r.try_get::<String>("", "state")?),
        object: r.try_get("", "object")?,
        started_at: from_us(r.try_get("", "started_us")?),
        finished_at: finished.map(from_us),
        total: count("total")?,
        written: count("written")?,
        failed: count("failed")?,
        api_calls: count("api_calls")?,
        bulk_jobs: match r.try_get::<Option<String>>("", "bulk_jobs")? {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                DbErr::Custom(format!(
                    "write-back job: stored bulk_jobs do not parse: {e}"
                ))
            })?,
            None => Vec::new(),
        },
        error: r.try_get("", "error")?,
        records: Vec::new(),
    })
}

/// A pending record as stored: its index, key and payload.
#[derive(Debug, Clone)]
pub struct PendingRecord {
    pub idx: i64,
    pub payload: Map<String, Value>,
    /// Calls that already carried it (a bulk ingest counts as one).
    pub attempts: u32,
}

impl WriteBacks {
    /// The write-backs of `org` in `db`.
    pub fn new(db: Db, org: String) -> Self {
        Self { db, org }
    }

    /// Stores a new job and its records (all pending).
    pub async fn create(
        &self,
        req: &WriteBackRequest,
        records: &[KeyedRecord],
        now: DateTime<Utc>,
    ) -> Result<String, DbErr> {
        let tag: u32 = rand::random();
        let id = format!("writeback-{}-{tag:08x}", now.format("%Y%m%dT%H%M%S"));
        self.db
            .exec(
                "INSERT INTO conn_writeback_job (id, org, state, object, started_us, finished_us, \
                 total, written, failed, api_calls, error) \
                 VALUES ($1, $2, 'running', $3, $4, NULL, $5, 0, 0, 0, NULL)",
                vec![
                    id.clone().into(),
                    self.org.clone().into(),
                    format!("{}/{}", req.object, req.external_id_field).into(),
                    to_us(now).into(),
                    (records.len() as i64).into(),
                ],
            )
            .await?;
        for (chunk_no, chunk) in records.chunks(200).enumerate() {
            let mut sql = String::from(
                "INSERT INTO conn_writeback_record (job_id, idx, record_id, payload, outcome, \
                 created, status_code, reason, attempts) VALUES ",
            );
            let mut values: Vec<DbValue> = Vec::with_capacity(chunk.len() * 4);
            for (i, (key, rec)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let n = values.len();
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, 'pending', NULL, NULL, NULL, 0)",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4
                ));
                values.push(id.clone().into());
                values.push(((chunk_no * 200 + i) as i64).into());
                values.push(key.clone().into());
                values.push(serde_json::to_string(rec).unwrap_or_default().into());
            }
            self.db.exec(&sql, values).await?;
        }
        Ok(id)
    }

    /// The next pending records of a job, at most one chunk, and the object/key they go to.
    pub async fn pending(&self, id: &str) -> Result<Vec<PendingRecord>, DbErr> {
        self.pending_from(id, -1, CHUNK, false).await
    }

    /// Pending records after `after_idx`, at most `limit`; only those no call carried yet when
    /// `fresh_only`.
    async fn pending_from(
        &self,
        id: &str,
        after_idx: i64,
        limit: i64,
        fresh_only: bool,
    ) -> Result<Vec<PendingRecord>, DbErr> {
        let fresh = if fresh_only { " AND attempts = 0" } else { "" };
        let rows = self
            .db
            .rows(
                &format!(
                    "SELECT idx, payload, attempts FROM conn_writeback_record WHERE job_id = $1 \
                     AND outcome = 'pending' AND idx > $2{fresh} ORDER BY idx LIMIT $3"
                ),
                vec![id.into(), after_idx.into(), limit.into()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let payload: String = r.try_get("", "payload")?;
                let idx: i64 = r.try_get("", "idx")?;
                let attempts: i32 = r.try_get("", "attempts")?;
                Ok(PendingRecord {
                    idx,
                    payload: serde_json::from_str(&payload).map_err(|e| {
                        DbErr::Custom(format!(
                            "write-back job {id}: stored record {idx} does not parse: {e}"
                        ))
                    })?,
                    attempts: u32::try_from(attempts).unwrap_or(0),
                })
            })
            .collect()
    }

    /// How many records of a job no call has carried yet.
    pub async fn count_fresh(&self, id: &str) -> Result<u64, DbErr> {
        let rows = self
            .db
            .rows(
                "SELECT COUNT(*) AS n FROM conn_writeback_record WHERE job_id = $1 \
                 AND outcome = 'pending' AND attempts = 0",
                vec![id.into()],
            )
            .await?;
        let n: i64 = match rows.first() {
            Some(r) => r.try_get("", "n")?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Adds a Bulk API 2.0 ingest job to a write-back job's list.
    pub async fn add_bulk_job(&self, id: &str, ingest_job: &str) -> Result<(), DbErr> {
        let mut jobs = self
            .get(id, 0, 0)
            .await?
            .map(|j| j.bulk_jobs)
            .unwrap_or_default();
        jobs.push(ingest_job.to_owned());
        self.db
            .exec(
                "UPDATE conn_writeback_job SET bulk_jobs = $1 WHERE id = $2",
                vec![
                    serde_json::to_string(&jobs).unwrap_or_default().into(),
                    id.into(),
                ],
            )
            .await?;
        Ok(())
    }

    /// Stores one record's outcome.
    #[expect(clippy::too_many_arguments, reason = "one column each")]
    pub async fn record_outcome(
        &self,
        id: &str,
        idx: i64,
        outcome: RecordOutcome,
        salesforce_id: Option<String>,
        created: Option<bool>,
        status_code: Option<String>,
        reason: Option<String>,
        attempts: u32,
    ) -> Result<(), DbErr> {
        let outcome = match outcome {
            RecordOutcome::Pending => "pending",
            RecordOutcome::Written => "written",
            RecordOutcome::Failed => "failed",
        };
        self.db
            .exec(
                "UPDATE conn_writeback_record SET outcome = $1, created = $2, status_code = $3, \
                 reason = $4, attempts = $5, salesforce_id = $8 WHERE job_id = $6 AND idx = $7",
                vec![
                    outcome.into(),
                    created.into(),
                    status_code.into(),
                    reason.into(),
                    i32::try_from(attempts).unwrap_or(i32::MAX).into(),
                    id.into(),
                    idx.into(),
                    salesforce_id.into(),
                ],
            )
            .await?;
        Ok(())
    }

    /// Recounts a job's written and failed records and adds API calls.
    pub async fn update_counts(&self, id: &str, api_calls: u64) -> Result<(), DbErr> {
        self.db
            .exec(
                "UPDATE conn_writeback_job SET \
                 written = (SELECT COUNT(*) FROM conn_writeback_record WHERE job_id = $1 AND outcome = 'written'), \
                 failed = (SELECT COUNT(*) FROM conn_writeback_record WHERE job_id = $1 AND outcome = 'failed'), \
                 api_calls = api_calls + $2 WHERE id = $1",
                vec![id.into(), (api_calls as i64).into()],
            )
            .await?;
        Ok(())
    }

    /// Ends a job.
    pub async fn finish(
        &self,
        id: &str,
        state: JobState,
        error: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        self.db
            .exec(
                "UPDATE conn_writeback_job SET state = $1, error = $2, finished_us = $3 WHERE id = $4",
                vec![state.as_str().into(), error.into(), to_us(now).into(), id.into()],
            )
            .await?;
        Ok(())
    }

    /// The object and key a job writes (`Object/KeyField`).
    pub async fn target(&self, id: &str) -> Result<Option<(String, String)>, DbErr> {
        Ok(self.get(id, 0, 0).await?.and_then(|j| {
            j.object
                .split_once('/')
                .map(|(o, k)| (o.to_owned(), k.to_owned()))
        }))
    }

    /// One job with its records from `offset` (at most `limit`).
    pub async fn get(
        &self,
        id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Option<WriteBackJob>, DbErr> {
        let rows = self
            .db
            .rows(
                "SELECT id, state, object, started_us, finished_us, total, written, failed, \
                 api_calls, error, bulk_jobs FROM conn_writeback_job WHERE id = $1 AND org = $2",
                vec![id.into(), self.org.clone().into()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let mut job = job_from_row(row)?;
        if limit > 0 {
            let recs = self
                .db
                .rows(
                    "SELECT record_id, outcome, salesforce_id, created, status_code, reason, attempts \
                     FROM conn_writeback_record WHERE job_id = $1 ORDER BY idx LIMIT $2 OFFSET $3",
                    vec![id.into(), (limit as i64).into(), (offset as i64).into()],
                )
                .await?;
            for r in &recs {
                let outcome = match r.try_get::<String>("", "outcome")?.as_str() {
                    "written" => RecordOutcome::Written,
                    "failed" => RecordOutcome::Failed,
                    _ => RecordOutcome::Pending,
                };
                let status_code: Option<String> = r.try_get("", "status_code")?;
                let salesforce_id: Option<String> = r.try_get("", "salesforce_id")?;
                let reason: Option<String> = r.try_get("", "reason")?;
                let attempts: i32 = r.try_get("", "attempts")?;
                job.records.push(WriteBackRecord {
                    id: r.try_get("", "record_id")?,
                    outcome,
                    salesforce_id,
                    created: r.try_get("", "created")?,
                    status_code,
                    reason,
                    attempts: u32::try_from(attempts).unwrap_or(0),
                });
            }
        }
        Ok(Some(job))
    }

    /// The newest jobs (without records).
    pub async fn list(&self, limit: u64) -> Result<Vec<WriteBackJob>, DbErr> {
        let rows = self
            .db
            .rows(
                "SELECT id, state, object, started_us, finished_us, total, written, failed, \
                 api_calls, error, bulk_jobs FROM conn_writeback_job WHERE org = $1 \
                 ORDER BY started_us DESC, id DESC LIMIT $2",
                vec![self.org.clone().into(), (limit as i64).into()],
            )
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Jobs left running (to resume).
    pub async fn running(&self) -> Result<Vec<String>, DbErr> {
        let rows = self
            .db
            .rows(
                "SELECT id FROM conn_writeback_job WHERE org = $1 AND state = 'running'",
                vec![self.org.clone().into()],
            )
            .await?;
        rows.iter().map(|r| r.try_get("", "id")).collect()
    }
}

/// How write-back jobs write.
#[derive(Debug, Clone)]
pub struct WriteBackOptions {
    /// Calls a record may take when its errors are transient (a bulk ingest counts as one).
    pub max_attempts: u32,
    /// Jobs with at least this many unsent records go through Bulk API 2.0 ingest; `None`:
    /// always collections.
    pub bulk_threshold: Option<u64>,
    /// How ingest jobs are polled and split.
    pub ingest: IngestOptions,
}

/// Runs a write-back job to the end: a bulk ingest first when the job is large, then pending
/// records a chunk at a time with collections upsert; outcomes stored as they come.
pub async fn run(
    sf: &SalesforceClient,
    store: &WriteBacks,
    id: &str,
    options: &WriteBackOptions,
) -> Result<(), DbErr> {
    let Some((object, key)) = store.target(id).await? else {
        return Ok(());
    };
    let max_attempts = options.max_attempts.max(1);
    if let Some(threshold) = options.bulk_threshold {
        let fresh = store.count_fresh(id).await?;
        if fresh > 0 && fresh >= threshold {
            bulk_round(sf, store, id, &object, &key, options).await?;
        }
    }
    loop {
        let pending = store.pending(id).await?;
        if pending.is_empty() {
            return Ok(());
        }
        let calls_before = sf.stats().requests;
        // Records that already had calls (after a bulk ingest) get only the attempts left.
        let mut groups: Vec<(u32, Vec<&PendingRecord>)> = Vec::new();
        for p in &pending {
            match groups.iter_mut().find(|(a, _)| *a == p.attempts) {
                Some((_, g)) => g.push(p),
                None => groups.push((p.attempts, vec![p])),
            }
        }
        for (prior, group) in groups {
            let payloads: Vec<Map<String, Value>> =
                group.iter().map(|p| p.payload.clone()).collect();
            let left = max_attempts.saturating_sub(prior).max(1);
            let outcomes = sf
                .upsert_records(&object, &key, &payloads, left, |_| {})
                .await;
            for (p, o) in group.iter().zip(outcomes) {
                let attempts = prior + o.attempts;
                match o.error {
                    None => {
                        store
                            .record_outcome(
                                id,
                                p.idx,
                                RecordOutcome::Written,
                                o.id,
                                o.created,
                                None,
                                None,
                                attempts,
                            )
                            .await?
                    }
                    Some(e) => {
                        let reason = reason_of(&e);
                        store
                            .record_outcome(
                                id,
                                p.idx,
                                RecordOutcome::Failed,
                                None,
                                None,
                                Some(e.status_code),
                                Some(reason),
                                attempts,
                            )
                            .await?
                    }
                }
            }
        }
        store
            .update_counts(id, sf.stats().requests - calls_before)
            .await?;
    }
}

fn reason_of(e: &sextant_salesforce::collections::ItemError) -> String {
    if e.fields.is_empty() {
        e.message.clone()
    } else {
        format!("{} (fields: {})", e.message, e.fields.join(", "))
    }
}

/// Sends every record no call carried yet through Bulk API 2.0 ingest, a round at a time.
async fn bulk_round(
    sf: &SalesforceClient,
    store: &WriteBacks,
    id: &str,
    object: &str,
    key: &str,
    options: &WriteBackOptions,
) -> Result<(), DbErr> {
    let operation = IngestOperation::Upsert {
        external_id_field: key.to_owned(),
    };
    let retry_allowed = options.max_attempts > 1;
    let mut after = -1;
    loop {
        let round = store.pending_from(id, after, BULK_ROUND, true).await?;
        let Some(last) = round.last() else {
            return Ok(());
        };
        after = last.idx;
        let calls_before = sf.stats().requests;
        let payloads: Vec<Map<String, Value>> = round.iter().map(|p| p.payload.clone()).collect();
        let report = match sf
            .bulk_ingest(object, &operation, &payloads, &options.ingest)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // Nothing was sent (a record without its key): collections will say per record.
                tracing::warn!(job = %id, error = %e, "Bulk ingest refused the records; using collections.");
                continue;
            }
        };
        for j in &report.job_ids {
            store.add_bulk_job(id, j).await?;
        }
        for (p, outcome) in round.iter().zip(report.outcomes) {
            match outcome {
                IngestOutcome::Written { id: sf_id, created } => {
                    store
                        .record_outcome(
                            id,
                            p.idx,
                            RecordOutcome::Written,
                            Some(sf_id),
                            created,
                            None,
                            None,
                            1,
                        )
                        .await?
                }
                IngestOutcome::Failed(e) => {
                    let transient = is_transient_error_code(&e.status_code);
                    let outcome = if transient && retry_allowed {
                        RecordOutcome::Pending
                    } else {
                        RecordOutcome::Failed
                    };
                    let reason = reason_of(&e);
                    store
                        .record_outcome(
                            id,
                            p.idx,
                            outcome,
                            None,
                            None,
                            Some(e.status_code),
                            Some(reason),
                            1,
                        )
                        .await?
                }
                IngestOutcome::Unprocessed { reason } => {
                    let outcome = if retry_allowed {
                        RecordOutcome::Pending
                    } else {
                        RecordOutcome::Failed
                    };
                    store
                        .record_outcome(
                            id,
                            p.idx,
                            outcome,
                            None,
                            None,
                            Some("BULK_UNPROCESSED".into()),
                            Some(reason),
                            1,
                        )
                        .await?
                }
            }
        }
        store
            .update_counts(id, sf.stats().requests - calls_before)
            .await?;
    }
}
