//! Exports of the versioned tables to Parquet, in the feature engine's layout: one directory per
//! table (`fs_account/`, `fs_order_item/`, …) of files `part-00000.parquet`, `part-00001.parquet`,
//! … with exactly the columns of `sextant-table-schema`, which the engine (`sextant-engine`,
//! DataFusion locally or on Ballista) reads. So an operator can rebuild every feature of every
//! account from the store's own data, as a batch job, off the store.
//!
//! Why like this:
//!
//! - **Streamed.** Each table is read in keyset pages over its primary key `(org_id, id,
//!   known_us)` (an index range scan per page, never `OFFSET`, never the whole table), turned into
//!   an Arrow record batch and handed through a channel of two batches to a blocking thread that
//!   encodes Parquet. Memory is bounded by a few pages plus one row group, whatever the table's
//!   size, and the database reads overlap the encoding.
//! - **A consistent cut.** Only versions ingested up to the export's start are written
//!   (`ingested_us`), so an export taken while ingest runs never holds an order line without the
//!   order that arrived in the same later batch; `known_before` additionally keeps only the
//!   versions known before an instant (an as-of snapshot). No long transaction: on SQLite the
//!   store has a single connection, which ingest shares page by page.
//! - **All or nothing.** Files go to a hidden sibling directory `.<name>.partial-<id>` that is
//!   renamed to the target only when every table is written and synced; a failed export removes
//!   it and reports why, so a directory with the target's name is always a complete export.
//! - **Confined.** The target is a relative path under the configured export root; absolute
//!   paths, `..` and symbolic links that lead outside it are refused (`path_outside_root`).
//! - **One at a time** (`export_in_progress`): an export reads every table; two would only
//!   compete for the same database.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, SchemaRef};
use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, Value};
use serde::{Deserialize, Serialize};
use sextant_contracts::{ErrorBody, ErrorCode};
use sextant_service_kit::ApiError;
use sextant_table_schema::{TABLES, table_schema};
use tokio::sync::mpsc;

use crate::AppState;
use crate::store::{Store, micros};

/// Rows per keyset page read from the database (one record batch).
pub const PAGE_ROWS: usize = 4096;
/// Rows per Parquet row group: what the writer buffers before it encodes.
pub const ROW_GROUP_ROWS: usize = 65_536;
/// Rows per file when the request does not say.
pub const DEFAULT_FILE_ROWS: u64 = 1_000_000;
/// The most rows per file a request may ask for.
pub const MAX_FILE_ROWS: u64 = 10_000_000;
/// Finished exports remembered for `GET /v1/exports/{id}`.
const KEEP_JOBS: usize = 100;

/// Asks for an export of the versioned tables.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Where to write, relative to the store's export root (`export_root`), e.g. `2024-06-30/all`.
    /// It must not exist yet; missing parent directories are created.
    #[schema(min_length = 1, max_length = 1024)]
    pub directory: String,
    /// Only this org (`default` for records ingested without an org); every org when absent.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pub org_id: Option<String>,
    /// Only versions known before this instant: the data as the store held it then. Every version
    /// when absent. (Today's training set for a cut-off also counts accounts synced after it, from
    /// their creation, and reads products' latest categories; export without this bound to
    /// rebuild those.)
    #[serde(default)]
    pub known_before: Option<DateTime<Utc>>,
    /// Rows per Parquet file, 1..=10,000,000 (default 1,000,000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub max_file_rows: Option<u64>,
}

/// Where an export stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportState {
    /// Writing.
    Running,
    /// Complete: the directory holds every table.
    Succeeded,
    /// Stopped: nothing was left at the target; `error` says why.
    Failed,
}

/// What one table's export has written so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TableProgress {
    /// The table, which is also its directory's name.
    pub table: String,
    /// Row versions written.
    pub rows: u64,
    /// Files completed.
    pub files: u64,
    /// Bytes of the completed files.
    pub bytes: u64,
    /// Whether the table is complete.
    pub done: bool,
}

/// An export job: its request, state and progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExportStatus {
    /// The job's id.
    pub id: String,
    /// Running, succeeded or failed.
    pub state: ExportState,
    /// The target, relative to the export root, as requested.
    pub directory: String,
    /// The org exported; absent for every org.
    pub org_id: Option<String>,
    /// Only versions known before this instant were exported.
    pub known_before: Option<DateTime<Utc>>,
    /// Versions ingested after this instant (the export's start) are left out.
    pub ingested_until: DateTime<Utc>,
    /// Rows per file.
    pub max_file_rows: u64,
    /// When the job started.
    pub started_at: DateTime<Utc>,
    /// When it succeeded or failed.
    pub finished_at: Option<DateTime<Utc>>,
    /// Row versions written, over all tables.
    pub rows: u64,
    /// Files completed, over all tables.
    pub files: u64,
    /// Bytes of the completed files.
    pub bytes: u64,
    /// Per table, in export order.
    pub tables: Vec<TableProgress>,
    /// Why the export failed.
    pub error: Option<String>,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading a page failed.
    #[error("database: {0}")]
    Database(#[from] DbErr),
    /// A file or directory could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Building a record batch failed (a stored value does not fit the engine's schema).
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    /// Encoding Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] ParquetError),
    /// The writer thread stopped without saying why (it panicked or was cancelled).
    #[error("the Parquet writer stopped: {0}")]
    Writer(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The export jobs of this process and the root they write under.
#[derive(Debug, Clone)]
pub struct Exports {
    root: PathBuf,
    jobs: Arc<Mutex<VecDeque<ExportStatus>>>,
}

impl Exports {
    /// Jobs writing under `root` (created on the first export).
    #[must_use]
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            jobs: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<ExportStatus>> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The job `id`, if this process still remembers it.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<ExportStatus> {
        self.lock().iter().find(|j| j.id == id).cloned()
    }

    /// Registers `job` unless another one is running.
    fn start(&self, job: ExportStatus) -> Result<(), ApiError> {
        let mut jobs = self.lock();
        if let Some(running) = jobs.iter().find(|j| j.state == ExportState::Running) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::ExportInProgress,
                format!(
                    "export {} is still running; one export runs at a time",
                    running.id
                ),
            ));
        }
        while jobs.len() >= KEEP_JOBS {
            jobs.pop_front();
        }
        jobs.push_back(job);
        Ok(())
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut ExportStatus)) {
        if let Some(job) = self.lock().iter_mut().find(|j| j.id == id) {
            f(job);
        }
    }

    /// Adds to one table's counters (and the totals).
    fn progress(&self, id: &str, table: &str, rows: u64, files: u64, bytes: u64, done: bool) {
        self.update(id, |job| {
            job.rows += rows;
            job.files += files;
            job.bytes += bytes;
            if let Some(t) = job.tables.iter_mut().find(|t| t.table == table) {
                t.rows += rows;
                t.files += files;
                t.bytes += bytes;
                t.done |= done;
            }
        });
    }
}

/// Why a target directory is refused.
fn refuse_outside(directory: &str) -> ApiError {
    ApiError::bad_request(
        ErrorCode::PathOutsideRoot,
        format!(
            "directory {directory:?} is not under the export root: give a relative path without `..` that stays inside it"
        ),
    )
}

/// The target of `directory` under `root` (canonical), or why not: absolute paths, `..`, and
/// existing symbolic links that resolve outside the root are refused; so are hidden names (a
/// partial export's), an existing target and a file where a directory must be.
fn resolve(root: &Path, directory: &str) -> Result<PathBuf, ApiError> {
    let bad = |m: String| ApiError::bad_request(ErrorCode::InvalidParameter, m);
    if directory.trim().is_empty() || directory.len() > 1024 {
        return Err(bad("directory must be 1 to 1024 characters".into()));
    }
    if directory.chars().any(char::is_control) {
        return Err(bad("directory must not contain control characters".into()));
    }
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(directory).components() {
        match c {
            Component::Normal(p) => {
                // NAME_MAX: a longer name is the caller's mistake, not a server failure.
                if p.len() > 255 {
                    return Err(bad(format!(
                        "directory {directory:?}: each name is at most 255 bytes"
                    )));
                }
                if p.to_string_lossy().starts_with('.') {
                    return Err(bad(format!(
                        "directory {directory:?}: names starting with '.' are reserved for exports in progress"
                    )));
                }
                parts.push(p);
            }
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(refuse_outside(directory));
            }
        }
    }
    if parts.is_empty() {
        return Err(refuse_outside(directory));
    }
    std::fs::create_dir_all(root).map_err(|e| ApiError::internal("export root", e))?;
    let root = root
        .canonicalize()
        .map_err(|e| ApiError::internal("export root", e))?;
    let mut at = root.clone();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(_) => {
                // It exists: wherever it leads (through links) must stay under the root.
                let real = at
                    .canonicalize()
                    .map_err(|e| ApiError::internal("export directory", e))?;
                if !real.starts_with(&root) {
                    return Err(refuse_outside(directory));
                }
                if i + 1 == parts.len() {
                    return Err(ApiError::new(
                        actix_web::http::StatusCode::CONFLICT,
                        ErrorCode::AlreadyExists,
                        format!(
                            "directory {directory:?} already exists; an export never overwrites one"
                        ),
                    ));
                }
                if !real.is_dir() {
                    return Err(bad(format!(
                        "directory {directory:?}: {} is not a directory",
                        part.to_string_lossy()
                    )));
                }
                at = real;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Nothing below exists yet: the rest is created inside `at`, under the root.
                for rest in &parts[i + 1..] {
                    at.push(rest);
                }
                return Ok(at);
            }
            Err(e) => return Err(ApiError::internal("export directory", e)),
        }
    }
    Ok(at)
}

/// Starts an export of the versioned tables to Parquet under the export root, in the feature
/// engine's layout (a directory per table of `part-NNNNN.parquet` files). Poll
/// `GET /v1/exports/{id}` for its progress; the directory appears, complete, when it succeeds.
#[utoipa::path(
    request_body = ExportRequest,
    responses(
        (status = 202, description = "Export started; its status (poll `GET /v1/exports/{id}`)", body = ExportStatus),
        (status = 400, description = "Directory outside the export root (path_outside_root); hidden or malformed directory (a name over 255 bytes), bad org or max_file_rows (invalid_parameter)", body = ErrorBody),
        (status = 409, description = "Another export is running (export_in_progress), or the directory already exists (already_exists)", body = ErrorBody),
    )
)]
#[post("/v1/exports")]
pub async fn start_export(
    state: web::Data<AppState>,
    req: web::Json<ExportRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = req.into_inner();
    let bad = |m: &str| ApiError::bad_request(ErrorCode::InvalidParameter, m);
    let max_file_rows = req.max_file_rows.unwrap_or(DEFAULT_FILE_ROWS);
    if !(1..=MAX_FILE_ROWS).contains(&max_file_rows) {
        return Err(bad("max_file_rows must be between 1 and 10000000"));
    }
    if let Some(org) = &req.org_id
        && (org.is_empty() || org.len() > 255 || org.chars().any(char::is_control))
    {
        return Err(bad("org_id must be 1 to 255 printable characters"));
    }
    let exports = state.exports.clone();
    let target = resolve(&exports.root, &req.directory)?;
    let now = state.clock.now();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let status = ExportStatus {
        id: id.clone(),
        state: ExportState::Running,
        directory: req.directory.clone(),
        org_id: req.org_id.clone(),
        known_before: req.known_before,
        ingested_until: now,
        max_file_rows,
        started_at: now,
        finished_at: None,
        rows: 0,
        files: 0,
        bytes: 0,
        tables: TABLES
            .iter()
            .map(|t| TableProgress {
                table: (*t).to_owned(),
                rows: 0,
                files: 0,
                bytes: 0,
                done: false,
            })
            .collect(),
        error: None,
    };
    exports.start(status.clone())?;
    tracing::info!(export = %id, directory = %req.directory, org = ?req.org_id, known_before = ?req.known_before, "Export started.");
    let plan = Plan {
        id,
        target,
        org: req.org_id,
        known_before_us: req.known_before.map(micros),
        ingested_until_us: micros(now),
        max_file_rows,
    };
    let store = state.store.clone();
    let clock = state.clock.clone();
    tokio::spawn(async move {
        let id = plan.id.clone();
        let outcome = run(&store, &exports, &plan).await;
        let finished = clock.now();
        match outcome {
            Ok(()) => {
                tracing::info!(export = %id, "Export complete.");
                exports.update(&id, |job| {
                    job.state = ExportState::Succeeded;
                    job.finished_at = Some(finished);
                });
            }
            Err(e) => {
                tracing::error!(export = %id, error = %e, "Export failed; its partial files were removed.");
                exports.update(&id, |job| {
                    job.state = ExportState::Failed;
                    job.finished_at = Some(finished);
                    job.error = Some(e.to_string());
                });
            }
        }
    });
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/v1/exports/{}", status.id)))
        .json(status))
}

/// An export's state and progress: rows, files and bytes per table, and the error if it failed.
/// Jobs are kept in memory (the latest 100) and forgotten on restart.
#[utoipa::path(
    params(("id" = String, Path, description = "The export's id")),
    responses(
        (status = 200, description = "The export's status", body = ExportStatus),
        (status = 404, description = "No such export (not_found)", body = ErrorBody),
    )
)]
#[get("/v1/exports/{id}")]
pub async fn export_status(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<ExportStatus>, ApiError> {
    state
        .exports
        .get(&id)
        .map(web::Json)
        .ok_or_else(|| ApiError::not_found(format!("no export {id}")))
}

/// A validated export.
#[derive(Debug, Clone)]
struct Plan {
    id: String,
    /// Canonical target directory (absent).
    target: PathBuf,
    org: Option<String>,
    known_before_us: Option<i64>,
    ingested_until_us: i64,
    max_file_rows: u64,
}

/// Writes every table into a hidden sibling of the target, then renames it into place. On any
/// failure the sibling is removed.
async fn run(store: &Store, exports: &Exports, plan: &Plan) -> Result<(), ExportError> {
    let (parent, name) = match (plan.target.parent(), plan.target.file_name()) {
        (Some(p), Some(n)) => (p.to_path_buf(), n.to_string_lossy().into_owned()),
        _ => {
            return Err(ExportError::Writer(format!(
                "{} has no parent directory",
                plan.target.display()
            )));
        }
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let partial = parent.join(format!(".{name}.partial-{}", plan.id));
    std::fs::create_dir(&partial).map_err(io(&partial))?;
    let written = write_tables(store, exports, plan, &partial).await;
    let finished = written.and_then(|()| {
        sync_dir(&partial)?;
        std::fs::rename(&partial, &plan.target).map_err(io(&plan.target))?;
        sync_dir(&parent)
    });
    if finished.is_err() {
        let cleanup = partial.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(cleanup)).await;
    }
    finished
}

/// Makes a directory's entries (new files, a rename) durable.
fn sync_dir(dir: &Path) -> Result<(), ExportError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// What the reader hands the writer thread.
#[derive(Debug)]
enum Msg {
    /// The next table starts.
    Table(&'static str),
    /// A page of the current table.
    Rows(RecordBatch),
    /// Every table was read.
    Done,
}

/// Reads every table page by page and feeds the writer thread.
async fn write_tables(
    store: &Store,
    exports: &Exports,
    plan: &Plan,
    dir: &Path,
) -> Result<(), ExportError> {
    let (tx, rx) = mpsc::channel::<Msg>(2);
    let writer = {
        let dir = dir.to_path_buf();
        let exports = exports.clone();
        let id = plan.id.clone();
        let max_file_rows = plan.max_file_rows;
        tokio::task::spawn_blocking(move || write_files(rx, &dir, max_file_rows, &exports, &id))
    };
    let read = feed(store, plan, &tx).await;
    drop(tx);
    let written = writer
        .await
        .map_err(|e| ExportError::Writer(e.to_string()))?;
    // A reader failure explains a writer that stopped early, not the other way round.
    match read {
        Err(Fed::Failed(e)) => Err(e),
        Err(Fed::WriterGone) | Ok(()) => written,
    }
}

/// Why feeding stopped.
enum Fed {
    /// Reading failed.
    Failed(ExportError),
    /// The writer hung up (it failed; its result says why).
    WriterGone,
}

async fn feed(store: &Store, plan: &Plan, tx: &mpsc::Sender<Msg>) -> Result<(), Fed> {
    let send = |m: Msg| async move { tx.send(m).await.map_err(|_| Fed::WriterGone) };
    for table in TABLES {
        let Some(schema) = table_schema(table) else {
            continue;
        };
        send(Msg::Table(table)).await?;
        let mut after: Option<Cursor> = None;
        loop {
            let (batch, last) = read_page(store, table, &schema, plan, after.as_ref())
                .await
                .map_err(Fed::Failed)?;
            let n = batch.num_rows();
            if n > 0 {
                send(Msg::Rows(batch)).await?;
            }
            match last {
                Some(c) if n == PAGE_ROWS => after = Some(c),
                _ => break,
            }
        }
    }
    send(Msg::Done).await
}

/// The primary key of the last row of a page: where the next page starts.
#[derive(Debug, Clone)]
struct Cursor {
    org_id: String,
    id: String,
    known_us: i64,
}

/// Numbered placeholders for either database.
struct Binds {
    backend: DbBackend,
    values: Vec<Value>,
}

impl Binds {
    fn bind(&mut self, v: impl Into<Value>) -> String {
        self.values.push(v.into());
        match self.backend {
            DbBackend::Postgres => format!("${}", self.values.len()),
            _ => format!("?{}", self.values.len()),
        }
    }
}

/// One page of `table` after `after`, in primary-key order, as a record batch of the engine's
/// schema, with the key of its last row.
async fn read_page(
    store: &Store,
    table: &str,
    schema: &SchemaRef,
    plan: &Plan,
    after: Option<&Cursor>,
) -> Result<(RecordBatch, Option<Cursor>), ExportError> {
    let db = store.connection();
    let mut b = Binds {
        backend: db.get_database_backend(),
        values: Vec::new(),
    };
    let mut conditions = vec![format!("ingested_us <= {}", b.bind(plan.ingested_until_us))];
    if let Some(org) = &plan.org {
        conditions.push(format!("org_id = {}", b.bind(org.clone())));
    }
    if let Some(k) = plan.known_before_us {
        conditions.push(format!("known_us < {}", b.bind(k)));
    }
    if let Some(c) = after {
        // A row-value comparison on the primary key: an index range scan on both databases.
        conditions.push(if plan.org.is_some() {
            format!(
                "(id, known_us) > ({}, {})",
                b.bind(c.id.clone()),
                b.bind(c.known_us)
            )
        } else {
            format!(
                "(org_id, id, known_us) > ({}, {}, {})",
                b.bind(c.org_id.clone()),
                b.bind(c.id.clone()),
                b.bind(c.known_us)
            )
        });
    }
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("\"{}\"", f.name()))
        .collect();
    let limit = b.bind(i64::try_from(PAGE_ROWS).unwrap_or(i64::MAX));
    let sql = format!(
        "SELECT {} FROM {table} WHERE {} ORDER BY org_id, id, known_us LIMIT {limit}",
        columns.join(", "),
        conditions.join(" AND ")
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(b.backend, sql, b.values))
        .await?;
    let last = match rows.last() {
        Some(r) => Some(Cursor {
            org_id: r.try_get_by_index(0)?,
            id: r.try_get_by_index(1)?,
            known_us: r.try_get_by_index(2)?,
        }),
        None => None,
    };
    Ok((to_batch(schema, &rows)?, last))
}

/// A column being filled.
enum Column {
    Str(StringBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
}

/// Rows → a record batch of `schema`; a stored value of another type, or a NULL in a non-null
/// column, is an error (never a silent default).
fn to_batch(schema: &SchemaRef, rows: &[QueryResult]) -> Result<RecordBatch, ExportError> {
    let mut columns: Vec<Column> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Int32 => Ok(Column::I32(Int32Builder::with_capacity(rows.len()))),
            DataType::Int64 => Ok(Column::I64(Int64Builder::with_capacity(rows.len()))),
            DataType::Float64 => Ok(Column::F64(Float64Builder::with_capacity(rows.len()))),
            DataType::Boolean => Ok(Column::Bool(BooleanBuilder::with_capacity(rows.len()))),
            DataType::Utf8 => Ok(Column::Str(StringBuilder::with_capacity(
                rows.len(),
                rows.len() * 16,
            ))),
            other => Err(ArrowError::NotYetImplemented(format!(
                "export of a {other} column"
            ))),
        })
        .collect::<Result<_, _>>()?;
    for row in rows {
        for (i, column) in columns.iter_mut().enumerate() {
            match column {
                Column::Str(c) => c.append_option(row.try_get_by_index::<Option<String>>(i)?),
                Column::I32(c) => c.append_option(row.try_get_by_index::<Option<i32>>(i)?),
                Column::I64(c) => c.append_option(row.try_get_by_index::<Option<i64>>(i)?),
                Column::F64(c) => c.append_option(row.try_get_by_index::<Option<f64>>(i)?),
                Column::Bool(c) => c.append_option(row.try_get_by_index::<Option<bool>>(i)?),
            }
        }
    }
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|c| -> ArrayRef {
            match c {
                Column::Str(mut c) => Arc::new(c.finish()),
                Column::I32(mut c) => Arc::new(c.finish()),
                Column::I64(mut c) => Arc::new(c.finish()),
                Column::F64(mut c) => Arc::new(c.finish()),
                Column::Bool(mut c) => Arc::new(c.finish()),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(Arc::clone(schema), arrays)?)
}

/// The files of one table being written.
struct TableFiles<'a> {
    table: &'static str,
    dir: PathBuf,
    schema: SchemaRef,
    max_file_rows: u64,
    writer: Option<ArrowWriter<File>>,
    /// Rows in the open file.
    in_file: u64,
    /// Files started.
    parts: u32,
    exports: &'a Exports,
    id: &'a str,
}

impl<'a> TableFiles<'a> {
    fn new(
        root: &Path,
        table: &'static str,
        max_file_rows: u64,
        exports: &'a Exports,
        id: &'a str,
    ) -> Result<Self, ExportError> {
        let schema = table_schema(table)
            .ok_or_else(|| ExportError::Writer(format!("{table} has no export schema")))?;
        let dir = root.join(table);
        std::fs::create_dir(&dir).map_err(io(&dir))?;
        Ok(Self {
            table,
            dir,
            schema,
            max_file_rows,
            writer: None,
            in_file: 0,
            parts: 0,
            exports,
            id,
        })
    }

    fn open(&mut self) -> Result<&mut ArrowWriter<File>, ExportError> {
        if self.writer.is_none() {
            let path = self.dir.join(format!("part-{:05}.parquet", self.parts));
            let file = File::create(&path).map_err(io(&path))?;
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .build();
            self.writer = Some(ArrowWriter::try_new(
                file,
                Arc::clone(&self.schema),
                Some(props),
            )?);
            self.parts += 1;
            self.in_file = 0;
        }
        self.writer
            .as_mut()
            .ok_or_else(|| ExportError::Writer("no open file".into()))
    }

    /// Finishes the open file: footer, fsync, size.
    fn close(&mut self) -> Result<(), ExportError> {
        if let Some(writer) = self.writer.take() {
            let file = writer.into_inner()?;
            let path = self.dir.join(format!("part-{:05}.parquet", self.parts - 1));
            file.sync_all().map_err(io(&path))?;
            let bytes = file.metadata().map_err(io(&path))?.len();
            self.exports
                .progress(self.id, self.table, 0, 1, bytes, false);
        }
        Ok(())
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), ExportError> {
        let total = batch.num_rows();
        let mut offset = 0;
        while offset < total {
            let max = self.max_file_rows;
            let in_file = self.in_file;
            let room = usize::try_from(max - in_file).unwrap_or(usize::MAX);
            let take = room.min(total - offset);
            self.open()?.write(&batch.slice(offset, take))?;
            self.in_file += take as u64;
            offset += take;
            self.exports
                .progress(self.id, self.table, take as u64, 0, 0, false);
            if self.in_file >= self.max_file_rows {
                self.close()?;
            }
        }
        Ok(())
    }

    /// Closes the last file; a table without rows still gets one (empty, with the schema), so
    /// the engine finds every table.
    fn finish(mut self) -> Result<(), ExportError> {
        if self.parts == 0 {
            self.open()?;
        }
        self.close()?;
        sync_dir(&self.dir)?;
        self.exports.progress(self.id, self.table, 0, 0, 0, true);
        Ok(())
    }
}

/// The writer thread: encodes what the reader sends, table after table.
fn write_files(
    mut rx: mpsc::Receiver<Msg>,
    dir: &Path,
    max_file_rows: u64,
    exports: &Exports,
    id: &str,
) -> Result<(), ExportError> {
    let mut current: Option<TableFiles<'_>> = None;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Table(table) => {
                if let Some(t) = current.take() {
                    t.finish()?;
                }
                current = Some(TableFiles::new(dir, table, max_file_rows, exports, id)?);
            }
            Msg::Rows(batch) => match current.as_mut() {
                Some(t) => t.write(&batch)?,
                None => return Err(ExportError::Writer("rows before a table".into())),
            },
            Msg::Done => {
                if let Some(t) = current.take() {
                    t.finish()?;
                }
                return Ok(());
            }
        }
    }
    // The reader hung up before the end: it failed, and says why.
    Err(ExportError::Writer(
        "the reader stopped before the end".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<PathBuf, ApiError>) -> ErrorCode {
        match r {
            Ok(p) => panic!("accepted {}", p.display()),
            Err(e) => e.code(),
        }
    }

    #[test]
    fn targets_stay_under_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("exports");
        let outside = dir.path().join("elsewhere");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::create_dir_all(&root).expect("mkdir");
        for escape in ["../elsewhere/x", "/tmp/x", "a/../../x", ".", "./"] {
            assert_eq!(
                code(resolve(&root, escape)),
                ErrorCode::PathOutsideRoot,
                "{escape}"
            );
        }
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");
        assert_eq!(code(resolve(&root, "link/x")), ErrorCode::PathOutsideRoot);
        let too_long = format!("a/{}", "x".repeat(256));
        for refused in ["", " ", "a/.hidden", "a\nb", too_long.as_str()] {
            assert_eq!(
                code(resolve(&root, refused)),
                ErrorCode::InvalidParameter,
                "{refused:?}"
            );
        }
        std::fs::create_dir_all(root.join("done/2024")).expect("mkdir");
        assert_eq!(code(resolve(&root, "done/2024")), ErrorCode::AlreadyExists);
        std::fs::write(root.join("file"), b"x").expect("write");
        assert_eq!(code(resolve(&root, "file/x")), ErrorCode::InvalidParameter);
        let real = root.canonicalize().expect("root");
        assert_eq!(
            resolve(&root, "./done/2025/all").expect("inside"),
            real.join("done/2025/all")
        );
        std::os::unix::fs::symlink(real.join("done"), root.join("inner")).expect("symlink");
        assert_eq!(
            resolve(&root, "inner/new").expect("a link inside the root"),
            real.join("done/new")
        );
    }

    fn job(id: &str, state: ExportState) -> ExportStatus {
        ExportStatus {
            id: id.into(),
            state,
            directory: id.into(),
            org_id: None,
            known_before: None,
            ingested_until: Utc::now(),
            max_file_rows: 1,
            started_at: Utc::now(),
            finished_at: None,
            rows: 0,
            files: 0,
            bytes: 0,
            tables: Vec::new(),
            error: None,
        }
    }

    #[test]
    fn one_export_runs_at_a_time_and_finished_ones_are_remembered() {
        let exports = Exports::new(PathBuf::from("unused"));
        exports
            .start(job("a", ExportState::Running))
            .expect("first");
        let busy = exports
            .start(job("b", ExportState::Running))
            .expect_err("second while the first runs");
        assert_eq!(busy.code(), ErrorCode::ExportInProgress);
        exports.update("a", |j| j.state = ExportState::Failed);
        exports
            .start(job("b", ExportState::Running))
            .expect("after it ended");
        exports.update("b", |j| j.state = ExportState::Succeeded);
        for i in 0..KEEP_JOBS {
            exports
                .start(job(&format!("j{i}"), ExportState::Succeeded))
                .expect("finished jobs never block");
        }
        assert!(exports.get("a").is_none(), "the oldest is forgotten");
        assert!(exports.get(&format!("j{}", KEEP_JOBS - 1)).is_some());
    }
}
