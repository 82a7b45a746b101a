//! Incremental, restart-safe syncs: each object is read from its watermark and handed to the
//! feature store page by page.
//!
//! # Watermarks
//! Each object has a watermark `(SystemModstamp, Id)` in the connector's database: every live row
//! at or before it (in `SystemModstamp, Id` order) has been confirmed by the feature store. A sync
//! asks for `WHERE SystemModstamp >= :stamp ORDER BY SystemModstamp, Id` — `>=`, not `>`, so rows
//! sharing the watermark's millisecond are never skipped (many rows of a bulk load share one
//! stamp) — and drops the rows at exactly the watermark's stamp whose Id is not after its Id.
//! An optional look-back (`watermark_lookback_secs`) re-reads rows stamped shortly before the
//! watermark, for transactions that commit after later ones were already read; the feature store
//! ignores versions it already holds, so re-reading is harmless.
//!
//! The watermark moves only after the feature store answered the page's ingest (it commits the
//! batch in one transaction before answering), so a sync killed at any point and run again
//! re-reads at most the unconfirmed page: no gap, and no duplicate (versions are keyed by Id and
//! known time in the store).
//!
//! Deletions come from `queryAll … WHERE IsDeleted = true` in the same way, with their own
//! watermark, and are sent as tombstones (`deletions: [{id, deleted_at}]`) with the row's
//! `SystemModstamp` as the deletion time. Salesforce keeps deleted rows in the recycle bin for
//! about 15 days: a connector that does not sync for longer misses deletions (a full re-sync
//! re-reads live rows but cannot see those).
//!
//! # REST or Bulk API 2.0
//! The first REST page says how many rows the query has (`totalSize`). Above the configured
//! threshold the rest of the object is read with a Bulk API 2.0 query job from the watermark that
//! first page left (the REST cursor is abandoned; it expires on its own).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sextant_contracts::api::{
    Deletion, IngestBatch, IngestObject, IngestRequest, IngestResponse, MAX_INGEST_RECORDS,
    MAX_QUARANTINE_LISTED, QuarantinedRecord, SyncReport,
};
use sextant_contracts::time::SharedClock;
use sextant_salesforce::bulk::BulkOptions;
use sextant_salesforce::wire::parse_datetime;
use sextant_salesforce::{SalesforceClient, SalesforceError};
use sextant_service_kit::http::{UpstreamError, read_json};

use crate::db::{Db, Watermark, WatermarkKind};
use crate::jobs::{Jobs, SyncProgress};
use crate::mapping::{MappingError, fields_of, to_batch_lenient};

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Salesforce refused the login or a query.
    #[error("Salesforce: {0}")]
    Salesforce(#[from] SalesforceError),
    /// A record did not have the expected shape.
    #[error("mapping: {0}")]
    Mapping(#[from] MappingError),
    /// The feature store refused or was unreachable.
    #[error("feature store: {0}")]
    FeatureStore(#[from] UpstreamError),
    /// The connector's database failed.
    #[error("connector database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// Another replica holds the org's lock (its owner and job).
    #[error("another connector is syncing this org (job {job})")]
    Locked { owner: String, job: String },
    /// The lock's lease ran out and another replica took it: this sync stops.
    #[error("the org's sync lock was lost (lease expired); another connector took over")]
    LeaseLost,
    /// The sync was cancelled between two pages.
    #[error("cancelled")]
    Cancelled,
    /// An object that is not synced was asked for.
    #[error("{0} is not a synced object")]
    UnknownObject(String),
}

/// How syncs behave (from the connector's settings).
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Objects with more rows to read than this go through Bulk API 2.0; `None`: never.
    pub bulk_threshold: Option<u64>,
    /// How far before the watermark a sync re-reads (late-committing transactions).
    pub lookback: chrono::Duration,
    /// Bulk query job options.
    pub bulk: BulkOptions,
    /// How long the org's lock is held without renewal (renewed after every page).
    pub lease: chrono::Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            bulk_threshold: Some(100_000),
            lookback: chrono::Duration::zero(),
            bulk: BulkOptions::default(),
            lease: chrono::Duration::seconds(120),
        }
    }
}

/// The job a sync runs as: where progress goes, the lease to renew, the cancel flag.
#[derive(Debug)]
pub struct JobContext<'a> {
    pub jobs: &'a Jobs,
    pub id: &'a str,
    pub owner: &'a str,
}

/// One sync of one org.
#[derive(Debug)]
pub struct SyncRun<'a> {
    pub sf: &'a SalesforceClient,
    pub http: &'a reqwest::Client,
    pub feature_store_url: &'a str,
    pub clock: &'a SharedClock,
    pub db: &'a Db,
    /// The org's key (lock and watermarks).
    pub org: &'a str,
    pub settings: &'a SyncSettings,
    /// Objects to sync, in order.
    pub objects: &'a [String],
    /// Ignore (and reset) the watermarks: re-read everything.
    pub full: bool,
    pub job: Option<JobContext<'a>>,
}

/// The objects synced by default, in dependency order.
pub fn default_objects() -> Vec<String> {
    crate::mapping::OBJECTS
        .iter()
        .map(|(o, _)| (*o).to_owned())
        .collect()
}

/// A datetime as a SOQL literal.
fn soql_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `(SystemModstamp, Id)` of a row.
fn position(rec: &Map<String, Value>) -> Option<(DateTime<Utc>, String)> {
    let stamp = rec
        .get("SystemModstamp")
        .and_then(Value::as_str)
        .and_then(parse_datetime)?;
    let id = rec.get("Id").and_then(Value::as_str)?;
    Some((stamp, id.to_owned()))
}

/// Whether a row is covered by the watermark (at its stamp and not after its Id).
fn covered(wm: Option<&Watermark>, pos: &(DateTime<Utc>, String)) -> bool {
    wm.is_some_and(|wm| pos.0 == wm.stamp && pos.1 <= wm.last_id)
}

impl SyncRun<'_> {
    /// Reads every requested object from its watermark and ingests it.
    pub async fn run(&self) -> Result<SyncReport, SyncError> {
        let started_at = self.clock.now();
        let mut state = RunState {
            calls_before: self.sf.stats().requests,
            progress: SyncProgress::default(),
            objects: BTreeMap::new(),
            quarantine: Quarantine::default(),
        };
        for object in self.objects {
            let Some(fields) = fields_of(object) else {
                return Err(SyncError::UnknownObject(object.clone()));
            };
            state.progress.current_object = Some(object.clone());
            self.checkpoint(&mut state).await?;
            if self.full {
                self.db.clear_watermarks(self.org, object).await?;
            }
            let written = self.sync_records(object, fields, &mut state).await?;
            self.sync_deletions(object, &mut state).await?;
            state.objects.insert(object.clone(), written);
            state.progress.objects_done += 1;
            tracing::info!(object, records = written, "Synced object.");
        }
        state.progress.current_object = None;
        state.progress.api_calls = self.sf.stats().requests - state.calls_before;
        if let Some(job) = &self.job {
            job.jobs.save_progress(job.id, &state.progress).await?;
        }
        if state.quarantine.count > 0 {
            tracing::warn!(
                quarantined = state.quarantine.count,
                "Records were quarantined; see the sync report."
            );
        }
        Ok(SyncReport {
            started_at,
            finished_at: self.clock.now(),
            objects: state.objects,
            pages: state.progress.pages,
            quarantined: state.quarantine.listed,
            quarantined_count: state.quarantine.count,
        })
    }

    /// The progress is stored, the lease renewed, and a cancel honoured.
    async fn checkpoint(&self, state: &mut RunState) -> Result<(), SyncError> {
        state.progress.api_calls = self.sf.stats().requests - state.calls_before;
        let Some(job) = &self.job else {
            return Ok(());
        };
        job.jobs.save_progress(job.id, &state.progress).await?;
        let expires = self.clock.now() + self.settings.lease;
        if !self.db.renew_lock(self.org, job.owner, expires).await? {
            return Err(SyncError::LeaseLost);
        }
        if job.jobs.cancel_requested(job.id).await? {
            return Err(SyncError::Cancelled);
        }
        Ok(())
    }

    async fn sync_records(
        &self,
        object: &str,
        fields: &str,
        state: &mut RunState,
    ) -> Result<u64, SyncError> {
        let mut wm = self
            .db
            .watermark(self.org, object, WatermarkKind::Records)
            .await?;
        let soql = |wm: Option<&Watermark>| {
            let filter = wm
                .map(|w| {
                    format!(
                        " WHERE SystemModstamp >= {}",
                        soql_datetime(w.stamp - self.settings.lookback)
                    )
                })
                .unwrap_or_default();
            format!("SELECT {fields} FROM {object}{filter} ORDER BY SystemModstamp, Id")
        };
        let mut written = 0;
        let mut pager = self.sf.query_pages(&soql(wm.as_ref()), false);
        while let Some(page) = pager.next_page().await? {
            state.progress.pages += 1;
            written += self
                .ingest_rows(object, page.records, &mut wm, state)
                .await?;
            self.checkpoint(state).await?;
            let big = self
                .settings
                .bulk_threshold
                .is_some_and(|t| pager.total_size().unwrap_or(0) > t);
            if big && !page.done {
                tracing::info!(
                    object,
                    total_size = pager.total_size(),
                    "Large object: reading the rest with Bulk API 2.0."
                );
                state.progress.bulk_objects.push(object.to_owned());
                written += self
                    .bulk_records(object, &soql(wm.as_ref()), &mut wm, state)
                    .await?;
                return Ok(written);
            }
        }
        Ok(written)
    }

    async fn bulk_records(
        &self,
        object: &str,
        soql: &str,
        wm: &mut Option<Watermark>,
        state: &mut RunState,
    ) -> Result<u64, SyncError> {
        let job = self.sf.bulk_query(soql, false, &self.settings.bulk).await?;
        let mut results = job.results(self.sf, &self.settings.bulk);
        let mut written = 0;
        loop {
            // The lease is renewed while the job runs and between result pages.
            self.checkpoint(state).await?;
            let Some(rows) = results.next_page().await? else {
                break;
            };
            state.progress.pages += 1;
            for chunk in rows.chunks(MAX_INGEST_RECORDS) {
                written += self.ingest_rows(object, chunk.to_vec(), wm, state).await?;
            }
        }
        Ok(written)
    }

    /// Ingests the rows after the watermark and moves the watermark to the last row once the
    /// feature store answered.
    async fn ingest_rows(
        &self,
        object: &str,
        rows: Vec<Map<String, Value>>,
        wm: &mut Option<Watermark>,
        state: &mut RunState,
    ) -> Result<u64, SyncError> {
        let mut fresh = Vec::with_capacity(rows.len());
        let mut last: Option<(DateTime<Utc>, String)> = None;
        for rec in rows {
            let pos = position(&rec);
            if let Some(p) = &pos {
                if covered(wm.as_ref(), p) {
                    continue;
                }
                last = pos;
            }
            fresh.push(rec);
        }
        if fresh.is_empty() {
            return Ok(0);
        }
        let (batch, unmapped): (IngestBatch, _) = to_batch_lenient(object, &fresh)?;
        for e in unmapped {
            state
                .quarantine
                .add(object, Some(e.id.clone()), e.to_string());
        }
        let request = IngestRequest::from_batch(None, &batch).map_err(|e| MappingError {
            object: object.to_owned(),
            id: String::new(),
            problem: e.to_string(),
        })?;
        let answer = self.ingest(&request).await?;
        for r in &answer.rejected {
            state.quarantine.add(
                object,
                r.id.clone(),
                format!(
                    "feature store refused it ({}): {}",
                    r.code.as_str(),
                    r.message
                ),
            );
        }
        let n = answer.written + answer.unchanged;
        state.progress.rows += n;
        if let Some((stamp, last_id)) = last {
            let next = Watermark { stamp, last_id };
            let ahead = wm
                .as_ref()
                .is_none_or(|w| (next.stamp, &next.last_id) > (w.stamp, &w.last_id));
            if ahead {
                self.db
                    .set_watermark(
                        self.org,
                        object,
                        WatermarkKind::Records,
                        &next,
                        self.clock.now(),
                    )
                    .await?;
                *wm = Some(next);
            }
        }
        Ok(n)
    }

    async fn ingest(&self, request: &IngestRequest) -> Result<IngestResponse, SyncError> {
        let resp = self
            .http
            .post(format!("{}/v1/ingest", self.feature_store_url))
            .json(request)
            .send()
            .await
            .map_err(UpstreamError::from)?;
        Ok(read_json(resp).await?)
    }

    async fn sync_deletions(&self, object: &str, state: &mut RunState) -> Result<(), SyncError> {
        let Some(ingest_object) = ingest_object(object) else {
            return Ok(());
        };
        let mut wm = self
            .db
            .watermark(self.org, object, WatermarkKind::Deletions)
            .await?;
        let filter = wm
            .as_ref()
            .map(|w| {
                format!(
                    " AND SystemModstamp >= {}",
                    soql_datetime(w.stamp - self.settings.lookback)
                )
            })
            .unwrap_or_default();
        let soql = format!(
            "SELECT Id, SystemModstamp FROM {object} WHERE IsDeleted = true{filter} \
             ORDER BY SystemModstamp, Id"
        );
        let mut pager = self.sf.query_pages(&soql, true);
        while let Some(page) = pager.next_page().await? {
            state.progress.pages += 1;
            let mut deletions = Vec::new();
            let mut last = None;
            for rec in &page.records {
                let Some(pos) = position(rec) else {
                    state.quarantine.add(
                        object,
                        rec.get("Id").and_then(Value::as_str).map(str::to_owned),
                        "deleted row without a readable Id and SystemModstamp".into(),
                    );
                    continue;
                };
                if covered(wm.as_ref(), &pos) {
                    continue;
                }
                deletions.push(Deletion {
                    id: pos.1.clone(),
                    deleted_at: pos.0,
                });
                last = Some(pos);
            }
            if !deletions.is_empty() {
                let request = IngestRequest {
                    org_id: None,
                    object: ingest_object,
                    records: Vec::new(),
                    deletions,
                };
                let answer = self.ingest(&request).await?;
                for r in &answer.rejected {
                    state.quarantine.add(
                        object,
                        r.id.clone(),
                        format!("feature store refused the deletion: {}", r.message),
                    );
                }
                state.progress.deletions += answer.written + answer.unchanged;
                state.progress.rows += answer.written + answer.unchanged;
            }
            if let Some((stamp, last_id)) = last {
                let next = Watermark { stamp, last_id };
                self.db
                    .set_watermark(
                        self.org,
                        object,
                        WatermarkKind::Deletions,
                        &next,
                        self.clock.now(),
                    )
                    .await?;
                wm = Some(next);
            }
            self.checkpoint(state).await?;
        }
        Ok(())
    }
}

fn ingest_object(object: &str) -> Option<IngestObject> {
    serde_json::from_value(Value::from(object)).ok()
}

struct RunState {
    calls_before: u64,
    progress: SyncProgress,
    objects: BTreeMap<String, u64>,
    quarantine: Quarantine,
}

/// Records set aside during a sync: all counted, the first [`MAX_QUARANTINE_LISTED`] listed.
#[derive(Debug, Default)]
struct Quarantine {
    listed: Vec<QuarantinedRecord>,
    count: u64,
}

impl Quarantine {
    fn add(&mut self, object: &str, id: Option<String>, reason: String) {
        self.count += 1;
        if self.listed.len() < MAX_QUARANTINE_LISTED {
            self.listed.push(QuarantinedRecord {
                object: object.to_owned(),
                id,
                reason,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_covers_only_its_own_stamp_up_to_its_id() {
        let t = |s: &str| parse_datetime(s).expect("datetime");
        let wm = Watermark {
            stamp: t("2011-01-10T09:00:00.000+0000"),
            last_id: "0015g0000000005AAA".into(),
        };
        let at = |s: &str, id: &str| (t(s), id.to_owned());
        assert!(covered(
            Some(&wm),
            &at("2011-01-10T09:00:00.000+0000", "0015g0000000005AAA")
        ));
        assert!(covered(
            Some(&wm),
            &at("2011-01-10T09:00:00.000+0000", "0015g0000000001AAA")
        ));
        assert!(!covered(
            Some(&wm),
            &at("2011-01-10T09:00:00.000+0000", "0015g0000000006AAA")
        ));
        // Later stamps, and earlier ones re-read by the look-back, are sent again.
        assert!(!covered(
            Some(&wm),
            &at("2011-01-10T09:00:00.001+0000", "0015g0000000001AAA")
        ));
        assert!(!covered(
            Some(&wm),
            &at("2011-01-10T08:59:59.999+0000", "0015g0000000009AAA")
        ));
        assert!(!covered(None, &at("2011-01-10T09:00:00.000+0000", "x")));
        assert_eq!(
            soql_datetime(t("2011-01-10T09:00:00.000+0000")),
            "2011-01-10T09:00:00.000Z"
        );
    }
}
