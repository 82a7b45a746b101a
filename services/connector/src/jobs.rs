//! Syncs as background jobs: `POST /v1/syncs` answers 202 with a job id at once, the sync runs on
//! its own task, and its state and progress (objects, rows, pages, API calls) are read with
//! `GET /v1/syncs/{id}`; `POST /v1/syncs/{id}/cancel` stops it between two pages.
//!
//! The job registry lives in memory, one sync at a time per connector. Not done yet (see the
//! module's notes in the report): job state and watermarks in the connector's own database,
//! and a lock row so two replicas never sync the same org at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// How far a sync got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct SyncProgress {
    /// Objects finished.
    pub objects_done: u64,
    /// The object being read.
    pub current_object: Option<String>,
    /// Rows ingested (written or unchanged).
    pub rows: u64,
    /// SOQL pages read.
    pub pages: u64,
    /// Salesforce API calls made by this sync (retries included).
    pub api_calls: u64,
}

/// A sync job.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SyncJob {
    pub id: String,
    pub state: JobState,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub progress: SyncProgress,
    /// Why it failed.
    pub error: Option<String>,
}

#[derive(Debug)]
struct Entry {
    job: SyncJob,
    cancel: Arc<AtomicBool>,
}

/// The connector's jobs.
#[derive(Debug, Default)]
pub struct Jobs {
    entries: Mutex<BTreeMap<String, Entry>>,
    serial: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Jobs {
    /// Registers a new running job, unless one is running (then its id is the error).
    pub fn start(&self, now: DateTime<Utc>) -> Result<(String, Arc<AtomicBool>), String> {
        let mut entries = lock(&self.entries);
        if let Some(running) = entries.values().find(|e| e.job.state == JobState::Running) {
            return Err(running.job.id.clone());
        }
        let n = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("sync-{}-{n}", now.format("%Y%m%dT%H%M%S"));
        let cancel = Arc::new(AtomicBool::new(false));
        entries.insert(
            id.clone(),
            Entry {
                job: SyncJob {
                    id: id.clone(),
                    state: JobState::Running,
                    started_at: now,
                    finished_at: None,
                    progress: SyncProgress::default(),
                    error: None,
                },
                cancel: cancel.clone(),
            },
        );
        Ok((id, cancel))
    }

    /// Updates a job's progress.
    pub fn progress(&self, id: &str, f: impl FnOnce(&mut SyncProgress)) {
        if let Some(e) = lock(&self.entries).get_mut(id) {
            f(&mut e.job.progress);
        }
    }

    /// Ends a job.
    pub fn finish(&self, id: &str, state: JobState, error: Option<String>, now: DateTime<Utc>) {
        if let Some(e) = lock(&self.entries).get_mut(id) {
            e.job.state = state;
            e.job.error = error;
            e.job.finished_at = Some(now);
            e.job.progress.current_object = None;
        }
    }

    /// Asks a running job to stop; `None` when there is no such job.
    pub fn cancel(&self, id: &str) -> Option<SyncJob> {
        let entries = lock(&self.entries);
        let e = entries.get(id)?;
        e.cancel.store(true, Ordering::SeqCst);
        Some(e.job.clone())
    }

    /// One job.
    pub fn get(&self, id: &str) -> Option<SyncJob> {
        lock(&self.entries).get(id).map(|e| e.job.clone())
    }

    /// Every job, newest first.
    pub fn list(&self) -> Vec<SyncJob> {
        let mut jobs: Vec<SyncJob> = lock(&self.entries)
            .values()
            .map(|e| e.job.clone())
            .collect();
        jobs.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        jobs
    }
}
