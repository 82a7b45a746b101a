//! A full sync: read every synced object from Salesforce and hand it to the feature store.
//!
//! Objects go in dependency order. Each SOQL page streams straight into the feature store as it
//! arrives (one ingest call, one transaction there), so memory holds one page whatever the size
//! of the org; the rows received are checked against the query's `totalSize` at the end.
//! Transient Salesforce failures (503, 429, resets) are retried by the client; a failure that
//! persists stops the sync and is reported. Ingest is idempotent by Salesforce Id and known time,
//! so running the sync again is always safe.

use std::collections::BTreeMap;

use sextant_contracts::api::{
    IngestBatch, IngestRequest, IngestResponse, MAX_QUARANTINE_LISTED, QuarantinedRecord,
    SyncReport,
};
use sextant_contracts::time::SharedClock;
use sextant_salesforce::{SalesforceClient, SalesforceError};
use sextant_service_kit::http::{UpstreamError, read_json};

use crate::mapping::{MappingError, OBJECTS, to_batch_lenient};

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
    /// The sync was cancelled between two pages.
    #[error("cancelled")]
    Cancelled,
}

/// What a sync reports as it goes, and whether it should stop.
pub trait SyncObserver: Send + Sync {
    /// An object starts.
    fn object_started(&self, _object: &str) {}
    /// A page was ingested: its rows, and the API calls made so far by this sync.
    fn page_ingested(&self, _rows: u64, _api_calls: u64) {}
    /// An object is done.
    fn object_done(&self, _object: &str) {}
    /// Checked between pages: stop when true.
    fn cancelled(&self) -> bool {
        false
    }
}

/// An observer that watches nothing.
#[derive(Debug)]
pub struct NoObserver;
impl SyncObserver for NoObserver {}

/// Reads everything and ingests it.
pub async fn full_sync(
    sf: &SalesforceClient,
    http: &reqwest::Client,
    feature_store_url: &str,
    clock: &SharedClock,
) -> Result<SyncReport, SyncError> {
    full_sync_observed(sf, http, feature_store_url, clock, &NoObserver).await
}

/// Reads everything and ingests it, reporting progress and stopping between pages when asked.
pub async fn full_sync_observed(
    sf: &SalesforceClient,
    http: &reqwest::Client,
    feature_store_url: &str,
    clock: &SharedClock,
    observer: &dyn SyncObserver,
) -> Result<SyncReport, SyncError> {
    let calls_before = sf.stats().requests;
    let started_at = clock.now();
    let mut objects = BTreeMap::new();
    let mut pages = 0;
    let mut quarantine = Quarantine::default();
    for (object, soql) in OBJECTS {
        observer.object_started(object);
        let mut pager = sf.query_pages(soql, false);
        let mut written = 0u64;
        loop {
            if observer.cancelled() {
                return Err(SyncError::Cancelled);
            }
            let Some(page) = pager.next_page().await? else {
                break;
            };
            let chunk = &page.records;
            let (batch, unmapped): (IngestBatch, _) = to_batch_lenient(object, chunk)?;
            for e in unmapped {
                quarantine.add(object, Some(e.id.clone()), e.to_string());
            }
            let request = IngestRequest::from_batch(None, &batch).map_err(|e| MappingError {
                object: object.to_owned(),
                id: String::new(),
                problem: e.to_string(),
            })?;
            let resp = http
                .post(format!("{feature_store_url}/v1/ingest"))
                .json(&request)
                .send()
                .await
                .map_err(UpstreamError::from)?;
            let answer: IngestResponse = read_json(resp).await?;
            for r in &answer.rejected {
                quarantine.add(
                    object,
                    r.id.clone(),
                    format!(
                        "feature store refused it ({}): {}",
                        r.code.as_str(),
                        r.message
                    ),
                );
            }
            written += answer.written + answer.unchanged;
            observer.page_ingested(
                answer.written + answer.unchanged,
                sf.stats().requests - calls_before,
            );
        }
        observer.object_done(object);
        pages += pager.pages();
        tracing::info!(
            object,
            records = written,
            pages = pager.pages(),
            "Synced object."
        );
        objects.insert(object.to_owned(), written);
    }
    if quarantine.count > 0 {
        tracing::warn!(
            quarantined = quarantine.count,
            "Records were quarantined; see the sync report."
        );
    }
    Ok(SyncReport {
        started_at,
        finished_at: clock.now(),
        objects,
        pages,
        quarantined: quarantine.listed,
        quarantined_count: quarantine.count,
    })
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
