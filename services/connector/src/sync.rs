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
//!
//! # Configured objects
//! Objects of the configured mappings ([`crate::custom`]) go through the same path — watermark,
//! tombstones, Bulk, quarantine — with their SOQL built from the names describe answered. All of
//! a run's objects are resolved (described and checked) before the first is read, so a mapping
//! that does not fit the org stops the sync before any data moves. Data Cloud objects are read
//! with Query API v2 from a watermark on their configured modstamp and key columns.

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

use crate::custom::{
    MappingConfigError, ObjectMapping, ResolvedMapping, SourceKind, check_data_cloud_columns,
    resolve_data_cloud, resolve_salesforce,
};
use crate::db::{Db, Watermark, WatermarkKind};
use crate::jobs::{Jobs, SyncProgress};
use crate::mapping::{MappingError, fields_of, to_batch_lenient};
use sextant_salesforce::datacloud::DataCloudClient;

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
    /// A configured object mapping does not fit the org (a missing field, a wrong type…).
    #[error("{0}")]
    MappingConfig(#[from] MappingConfigError),
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
    pub http: &'a sextant_service_kit::internal_auth::InternalClient,
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
    /// The configured object mappings (custom and Data Cloud objects).
    pub mappings: &'a [ObjectMapping],
    /// The org's Data Cloud, for mappings of Data Cloud objects.
    pub data_cloud: Option<&'a DataCloudClient>,
}

/// The objects synced by default: the built-ins in dependency order, then the configured
/// mappings' sources.
pub fn default_objects(mappings: &[ObjectMapping]) -> Vec<String> {
    crate::mapping::OBJECTS
        .iter()
        .map(|(o, _)| (*o).to_owned())
        .chain(mappings.iter().map(|m| m.source.clone()))
        .collect()
}

/// How one object is read and mapped.
#[derive(Debug, Clone)]
enum Source {
    /// A built-in object: its SOQL field list and its mapping in [`crate::mapping`].
    BuiltIn(&'static str),
    /// A configured mapping, checked against the org.
    Mapped(Box<ResolvedMapping>),
}

impl Source {
    fn fields(&self) -> String {
        match self {
            Self::BuiltIn(f) => (*f).to_owned(),
            Self::Mapped(m) => m.field_list(),
        }
    }
    /// The key and incremental columns.
    fn keys(&self) -> (&str, &str) {
        match self {
            Self::BuiltIn(_) => ("SystemModstamp", "Id"),
            Self::Mapped(m) => (&m.modstamp_field, &m.id_field),
        }
    }
    fn ingest_object(&self, object: &str) -> Option<IngestObject> {
        match self {
            Self::BuiltIn(_) => ingest_object(object),
            Self::Mapped(m) => Some(m.target.ingest_object()),
        }
    }
    /// The object a `record` mapping's ingest requests name (`IngestRequest::record_object`).
    fn record_object(&self) -> Option<String> {
        match self {
            Self::Mapped(m) if m.target.ingest_object() == IngestObject::Record => {
                Some(m.source.clone())
            }
            _ => None,
        }
    }
}

/// A datetime as a SOQL literal.
fn soql_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `(SystemModstamp, Id)` of a row.
fn position(rec: &Map<String, Value>) -> Option<(DateTime<Utc>, String)> {
    position_by(rec, ("SystemModstamp", "Id"))
}

/// `(stamp, id)` of a row by the names of its incremental and key columns.
fn position_by(
    rec: &Map<String, Value>,
    (stamp, id): (&str, &str),
) -> Option<(DateTime<Utc>, String)> {
    let stamp = rec
        .get(stamp)
        .and_then(Value::as_str)
        .and_then(parse_datetime)?;
    let id = rec.get(id).and_then(Value::as_str)?;
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
        // Every object is resolved (configured ones described and checked) before anything is
        // read: a mapping that does not fit the org fails the sync before any data moves.
        let mut sources = Vec::with_capacity(self.objects.len());
        for object in self.objects {
            sources.push(self.resolve(object).await?);
        }
        for (object, source) in self.objects.iter().zip(&sources) {
            state.progress.current_object = Some(object.clone());
            self.checkpoint(&mut state).await?;
            if self.full {
                self.db.clear_watermarks(self.org, object).await?;
            }
            let written = if matches!(source, Source::Mapped(m) if m.kind == SourceKind::DataCloud)
            {
                let Source::Mapped(m) = source else {
                    unreachable!("matched above")
                };
                self.sync_data_cloud(object, m, &mut state).await?
            } else {
                let written = self.sync_records(object, source, &mut state).await?;
                self.sync_deletions(object, source, &mut state).await?;
                written
            };
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

    /// How an object is read: a built-in, or a configured mapping checked against the org
    /// (describe for Salesforce objects, the reported column types for Data Cloud ones).
    async fn resolve(&self, object: &str) -> Result<Source, SyncError> {
        if let Some(fields) = fields_of(object) {
            return Ok(Source::BuiltIn(fields));
        }
        let Some(m) = self
            .mappings
            .iter()
            .find(|m| m.source.eq_ignore_ascii_case(object))
        else {
            return Err(SyncError::UnknownObject(object.to_owned()));
        };
        m.validate()?;
        match m.kind {
            SourceKind::Salesforce => {
                let describe = match self.sf.describe(&m.source).await {
                    Ok(d) => d,
                    Err(SalesforceError::Api { status: 404, .. }) => {
                        return Err(MappingConfigError {
                            object: m.source.clone(),
                            problem: format!(
                                "the org has no object {} (or the integration user cannot see it)",
                                m.source
                            ),
                        }
                        .into());
                    }
                    Err(e) => return Err(e.into()),
                };
                Ok(Source::Mapped(Box::new(resolve_salesforce(m, &describe)?)))
            }
            SourceKind::DataCloud => {
                let resolved = resolve_data_cloud(m)?;
                let Some(dc) = self.data_cloud else {
                    return Err(MappingConfigError {
                        object: m.source.clone(),
                        problem: "Data Cloud is not configured for this connector".into(),
                    }
                    .into());
                };
                // One row is enough for Query API v2 to report every column's type.
                let probe = format!(
                    "SELECT {} FROM {} LIMIT 1",
                    resolved.field_list(),
                    resolved.source
                );
                let mut q = dc.query(&probe);
                match q.next_batch().await {
                    Ok(_) => {}
                    Err(SalesforceError::DataCloud {
                        status: 400,
                        message,
                    }) => {
                        return Err(MappingConfigError {
                            object: m.source.clone(),
                            problem: format!(
                                "Data Cloud refused the mapped columns ({}): {message}",
                                resolved.field_list()
                            ),
                        }
                        .into());
                    }
                    Err(e) => return Err(e.into()),
                }
                check_data_cloud_columns(&resolved, q.columns())?;
                Ok(Source::Mapped(Box::new(resolved)))
            }
        }
    }

    /// Reads a Data Cloud object from its watermark with Query API v2, batch by batch, and
    /// ingests it. Query API v2 has no deleted rows, so there are no tombstones here.
    async fn sync_data_cloud(
        &self,
        object: &str,
        m: &ResolvedMapping,
        state: &mut RunState,
    ) -> Result<u64, SyncError> {
        let Some(dc) = self.data_cloud else {
            return Err(SyncError::UnknownObject(object.to_owned()));
        };
        let mut wm = self
            .db
            .watermark(self.org, object, WatermarkKind::Records)
            .await?;
        let sql = m.data_cloud_sql(wm.as_ref().map(|w| w.stamp - self.settings.lookback));
        let source = Source::Mapped(Box::new(m.clone()));
        let names: Vec<String> = m.columns().into_iter().map(str::to_owned).collect();
        let mut query = dc.query(&sql);
        let mut written = 0;
        while let Some(batch) = query.next_batch().await? {
            state.progress.pages += 1;
            // Columns by the mapping's names (Data Cloud may spell them in another case).
            let index: Vec<Option<usize>> = names
                .iter()
                .map(|n| {
                    query
                        .columns()
                        .iter()
                        .position(|c| c.name.eq_ignore_ascii_case(n))
                })
                .collect();
            for chunk in batch.chunks(MAX_INGEST_RECORDS) {
                let rows: Vec<Map<String, Value>> = chunk
                    .iter()
                    .map(|row| {
                        names
                            .iter()
                            .zip(&index)
                            .map(|(n, i)| {
                                let v = i.and_then(|i| row.get(i)).cloned();
                                (n.clone(), v.unwrap_or(Value::Null))
                            })
                            .collect()
                    })
                    .collect();
                written += self
                    .ingest_rows(object, &source, rows, &mut wm, state)
                    .await?;
            }
            self.checkpoint(state).await?;
        }
        Ok(written)
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
        source: &Source,
        state: &mut RunState,
    ) -> Result<u64, SyncError> {
        let fields = source.fields();
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
                .ingest_rows(object, source, page.records, &mut wm, state)
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
                    .bulk_records(object, source, &soql(wm.as_ref()), &mut wm, state)
                    .await?;
                return Ok(written);
            }
        }
        Ok(written)
    }

    async fn bulk_records(
        &self,
        object: &str,
        source: &Source,
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
                written += self
                    .ingest_rows(object, source, chunk.to_vec(), wm, state)
                    .await?;
            }
        }
        Ok(written)
    }

    /// Ingests the rows after the watermark and moves the watermark to the last row once the
    /// feature store answered.
    async fn ingest_rows(
        &self,
        object: &str,
        source: &Source,
        rows: Vec<Map<String, Value>>,
        wm: &mut Option<Watermark>,
        state: &mut RunState,
    ) -> Result<u64, SyncError> {
        let mut fresh = Vec::with_capacity(rows.len());
        let mut last: Option<(DateTime<Utc>, String)> = None;
        let keys = source.keys();
        for rec in rows {
            let pos = position_by(&rec, keys);
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
        let (batch, unmapped, excluded): (IngestBatch, _, _) = match source {
            Source::BuiltIn(_) => {
                let (batch, unmapped) = to_batch_lenient(object, &fresh)?;
                (batch, unmapped, Vec::new())
            }
            Source::Mapped(m) => m.to_batch(&fresh),
        };
        for e in unmapped {
            state
                .quarantine
                .add(object, Some(e.id.clone()), e.to_string());
        }
        // Every row quarantined: nothing to send, but the watermark still moves past them.
        let answer = if batch.is_empty() && excluded.is_empty() {
            IngestResponse {
                object: batch.object(),
                received: 0,
                written: 0,
                unchanged: 0,
                rejected: Vec::new(),
                accounts_refreshed: 0,
            }
        } else {
            let mut request =
                IngestRequest::from_batch(None, &batch).map_err(|e| MappingError {
                    object: object.to_owned(),
                    id: String::new(),
                    problem: e.to_string(),
                })?;
            // Rows a mapping's filter leaves out leave the store (see `custom::Filter`).
            request.deletions = excluded;
            self.ingest(&request).await?
        };
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

    async fn sync_deletions(
        &self,
        object: &str,
        source: &Source,
        state: &mut RunState,
    ) -> Result<(), SyncError> {
        let Some(ingest_object) = source.ingest_object(object) else {
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
                    record_object: source.record_object(),
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
