//! Syncs as background jobs, stored in the connector's database: `POST /v1/syncs` answers 202
//! with a job id at once, the sync runs on its own task, and its state and progress (objects,
//! rows, pages, API calls) are read with `GET /v1/syncs/{id}` — from any replica, since the job
//! lives in the database. `POST /v1/syncs/{id}/cancel` stops it between two pages (the flag is
//! stored, so a cancel sent to another replica reaches the one running it).
//!
//! A job left `running` by a connector that died is resumed when a connector starts again (same
//! id, `runs` counts the starts); the watermarks make it continue after the last page the feature
//! store confirmed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::{DbErr, QueryResult};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{Db, from_us, to_us};

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "cancelled" => Self::Cancelled,
            _ => Self::Failed,
        }
    }
}

/// How far a sync got.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct SyncProgress {
    /// Objects finished.
    pub objects_done: u64,
    /// The object being read.
    pub current_object: Option<String>,
    /// Rows ingested (written or unchanged), deletions included.
    pub rows: u64,
    /// Deletions sent as tombstones.
    #[serde(default)]
    pub deletions: u64,
    /// Result pages read (SOQL pages and Bulk 2.0 result pages).
    pub pages: u64,
    /// Salesforce API calls made by this sync (retries included).
    pub api_calls: u64,
    /// Objects read with Bulk API 2.0 instead of REST.
    #[serde(default)]
    pub bulk_objects: Vec<String>,
}

/// A sync job.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SyncJob {
    pub id: String,
    pub state: JobState,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The objects it syncs, in order.
    pub objects: Vec<String>,
    /// Whether it ignores the watermarks and re-reads everything.
    pub full: bool,
    pub progress: SyncProgress,
    /// How many times a connector started it (more than 1 after a resume).
    pub runs: u32,
    /// Why it failed.
    pub error: Option<String>,
    /// The schedule slot it ran for (absent for syncs started by a request).
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// The jobs of one org, in the database; cancel flags of the jobs this replica runs in memory.
#[derive(Debug)]
pub struct Jobs {
    db: Db,
    org: String,
    flags: Mutex<HashMap<String, Arc<AtomicBool>>>,
    serial: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

const COLUMNS: &str = "id, state, started_us, finished_us, objects, full_sync, progress, error, \
                       runs, scheduled_for_us";

fn from_row(r: &QueryResult) -> Result<SyncJob, DbErr> {
    let objects: String = r.try_get("", "objects")?;
    let progress: String = r.try_get("", "progress")?;
    let finished: Option<i64> = r.try_get("", "finished_us")?;
    let runs: i32 = r.try_get("", "runs")?;
    let id: String = r.try_get("", "id")?;
    // A stored column that does not parse is corruption to report, not an empty list (an
    // empty object list would read as "every object").
    let bad = |what: &str, e: serde_json::Error| {
        DbErr::Custom(format!("sync job {id}: stored {what} do not parse: {e}"))
    };
    let objects = serde_json::from_str(&objects).map_err(|e| bad("objects", e))?;
    let progress = serde_json::from_str(&progress).map_err(|e| bad("progress", e))?;
    Ok(SyncJob {
        id,
        state: JobState::parse(&r.try_get::<String>("", "state")?),
        started_at: from_us(r.try_get("", "started_us")?),
        finished_at: finished.map(from_us),
        objects,
        full: r.try_get("", "full_sync")?,
        progress,
        runs: u32::try_from(runs).unwrap_or(0),
        error: r.try_get("", "error")?,
        scheduled_for: r
            .try_get::<Option<i64>>("", "scheduled_for_us")?
            .map(from_us),
    })
}

impl Jobs {
    /// The jobs of `org` in `db`.
    pub fn new(db: Db, org: String) -> Self {
        Self {
            db,
            org,
            flags: Mutex::new(HashMap::new()),
            serial: AtomicU64::new(0),
        }
    }

    /// A new job id, unique across replicas and restarts: time, a random tag and a serial.
    pub fn new_id(&self, now: DateTime<Utc>) -> String {
        let n = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        let tag: u32 = rand::random();
        format!("sync-{}-{tag:08x}-{n}", now.format("%Y%m%dT%H%M%S"))
    }

    /// Records a new running job.
    pub async fn create(
        &self,
        id: String,
        now: DateTime<Utc>,
        objects: &[String],
        full: bool,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> Result<SyncJob, DbErr> {
        let job = SyncJob {
            id: id.clone(),
            state: JobState::Running,
            started_at: now,
            finished_at: None,
            objects: objects.to_vec(),
            full,
            progress: SyncProgress::default(),
            runs: 1,
            error: None,
            scheduled_for,
        };
        self.db
            .exec(
                "INSERT INTO conn_sync_job (id, org, state, started_us, finished_us, objects, \
                 full_sync, progress, report, error, cancel_requested, runs, scheduled_for_us) \
                 VALUES ($1, $2, 'running', $3, NULL, $4, $5, $6, NULL, NULL, $7, 1, $8)",
                vec![
                    id.into(),
                    self.org.clone().into(),
                    to_us(now).into(),
                    serde_json::to_string(objects).unwrap_or_default().into(),
                    full.into(),
                    serde_json::to_string(&job.progress)
                        .unwrap_or_default()
                        .into(),
                    false.into(),
                    scheduled_for.map(to_us).into(),
                ],
            )
            .await?;
        Ok(job)
    }

    /// The cancel flag of a job run by this replica.
    pub fn flag(&self, id: &str) -> Arc<AtomicBool> {
        lock(&self.flags)
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(AtomicBool::new(false)))
            .clone()
    }

    /// Marks a resumed job as started once more.
    pub async fn restarted(&self, id: &str) -> Result<(), DbErr> {
        self.db
            .exec(
                "UPDATE conn_sync_job SET runs = runs + 1 WHERE id = $1",
                vec![id.into()],
            )
            .await?;
        Ok(())
    }

    /// Stores a job's progress.
    pub async fn save_progress(&self, id: &str, p: &SyncProgress) -> Result<(), DbErr> {
        self.db
            .exec(
                "UPDATE conn_sync_job SET progress = $1 WHERE id = $2",
                vec![
                    serde_json::to_string(p).unwrap_or_default().into(),
                    id.into(),
                ],
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
        progress: &SyncProgress,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let mut p = progress.clone();
        p.current_object = None;
        self.db
            .exec(
                "UPDATE conn_sync_job SET state = $1, error = $2, finished_us = $3, progress = $4 \
                 WHERE id = $5",
                vec![
                    state.as_str().into(),
                    error.into(),
                    to_us(now).into(),
                    serde_json::to_string(&p).unwrap_or_default().into(),
                    id.into(),
                ],
            )
            .await?;
        lock(&self.flags).remove(id);
        Ok(())
    }

    /// Asks a running job to stop; `None` when there is no such job.
    pub async fn cancel(&self, id: &str) -> Result<Option<SyncJob>, DbErr> {
        let Some(job) = self.get(id).await? else {
            return Ok(None);
        };
        if job.state == JobState::Running {
            self.db
                .exec(
                    "UPDATE conn_sync_job SET cancel_requested = $1 WHERE id = $2",
                    vec![true.into(), id.into()],
                )
                .await?;
            if let Some(f) = lock(&self.flags).get(id) {
                f.store(true, Ordering::SeqCst);
            }
        }
        Ok(Some(job))
    }

    /// Whether someone asked the job to stop (on any replica).
    pub async fn cancel_requested(&self, id: &str) -> Result<bool, DbErr> {
        if lock(&self.flags)
            .get(id)
            .is_some_and(|f| f.load(Ordering::SeqCst))
        {
            return Ok(true);
        }
        let rows = self
            .db
            .rows(
                "SELECT cancel_requested FROM conn_sync_job WHERE id = $1",
                vec![id.into()],
            )
            .await?;
        Ok(match rows.first() {
            Some(r) => r.try_get("", "cancel_requested")?,
            None => false,
        })
    }

    /// One job.
    pub async fn get(&self, id: &str) -> Result<Option<SyncJob>, DbErr> {
        let rows = self
            .db
            .rows(
                &format!("SELECT {COLUMNS} FROM conn_sync_job WHERE id = $1 AND org = $2"),
                vec![id.into(), self.org.clone().into()],
            )
            .await?;
        rows.first().map(from_row).transpose()
    }

    /// The newest `limit` jobs, newest first.
    pub async fn list(&self, limit: u64) -> Result<Vec<SyncJob>, DbErr> {
        let rows = self
            .db
            .rows(
                &format!(
                    "SELECT {COLUMNS} FROM conn_sync_job WHERE org = $1 \
                     ORDER BY started_us DESC, id DESC LIMIT $2"
                ),
                vec![self.org.clone().into(), (limit as i64).into()],
            )
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Jobs still marked running (after a crash: to resume).
    pub async fn running(&self) -> Result<Vec<SyncJob>, DbErr> {
        let rows = self
            .db
            .rows(
                &format!(
                    "SELECT {COLUMNS} FROM conn_sync_job WHERE org = $1 AND state = 'running' \
                     ORDER BY started_us"
                ),
                vec![self.org.clone().into()],
            )
            .await?;
        rows.iter().map(from_row).collect()
    }
}
