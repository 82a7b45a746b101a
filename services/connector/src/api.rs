//! HTTP handlers and the OpenAPI description of the connector.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use serde::Deserialize;
use sextant_contracts::api::{Health, SyncReport};
use sextant_contracts::{ErrorBody, ErrorCode};
use sextant_service_kit::ApiError;
use sextant_service_kit::error::in_range;
use utoipa::{OpenApi, ToSchema};

use crate::AppState;
use crate::jobs::{JobState, SyncJob, SyncProgress};
use crate::schedule::ScheduleStatus;
use crate::sync::{JobContext, SyncError, SyncRun, default_objects};
use crate::writeback::{
    RecordOutcome, ScoreToWrite, WriteBackJob, WriteBackRecord, WriteBackRefusal, WriteBackRequest,
};

/// The OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sextant connector",
        description = "Reads Salesforce through a connected app and feeds the feature store; writes scores back."
    ),
    paths(
        sync,
        start_sync,
        get_sync,
        cancel_sync,
        list_syncs,
        start_writeback,
        get_writeback,
        list_writebacks,
        org_status,
        healthz
    ),
    components(schemas(
        SyncJob,
        SyncProgress,
        JobState,
        StartSync,
        WriteBackRequest,
        ScoreToWrite,
        WriteBackJob,
        WriteBackRecord,
        RecordOutcome,
        OrgStatus,
        ScheduleStatus
    ))
)]
struct ApiDoc;

/// The OpenAPI document of this service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    sextant_service_kit::internal_auth::document(ApiDoc::openapi())
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(sync)
        .service(start_sync)
        .service(list_syncs)
        .service(get_sync)
        .service(cancel_sync)
        .service(start_writeback)
        .service(list_writebacks)
        .service(get_writeback)
        .service(org_status)
        .service(healthz);
}

/// What to sync (every field optional; an empty body syncs every object from its watermark).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct StartSync {
    /// Objects to sync, in order (default: Account, Contact, Product2, Order, OrderItem, Case,
    /// then the sources of the configured object mappings).
    #[serde(default)]
    #[schema(schema_with = sync_objects_schema)]
    pub objects: Option<Vec<String>>,
    /// Re-read everything, ignoring (and resetting) the watermarks.
    #[serde(default)]
    pub full: bool,
}

/// `objects`: null, or 1 or more of the built-in objects (a deployment with object mappings also
/// takes their source objects, which a static document cannot list).
fn sync_objects_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(crate::mapping::OBJECTS.iter().map(|(o, _)| *o))),
        )
        .min_items(Some(1))
        .description(Some("Objects to sync, in order (default: Account, Contact, Product2, Order, OrderItem, Case, then the sources of the configured object mappings, which this list also takes)."))
        .build()
}

fn db_error(e: sea_orm::DbErr) -> ApiError {
    ApiError::internal("connector database", e)
}

fn busy(job: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::SyncInProgress,
        format!("a sync of this org is already running (job {job})"),
    )
}

/// The optional body of a sync request: none (empty or `null`) or a [`StartSync`]; anything
/// else is `400 invalid_json` (never read as "no body").
fn start_sync_body(body: &[u8]) -> Result<Option<StartSync>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<Option<StartSync>>(body)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidJson, e.to_string()))
}

/// Checks the request and takes the org's lock for a new job; the job is recorded as running.
async fn begin(state: &AppState, body: Option<StartSync>) -> Result<SyncJob, ApiError> {
    let body = body.unwrap_or_default();
    let objects = match body.objects {
        Some(list) if list.is_empty() => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidParameter,
                "objects is empty; leave it out to sync every object",
            ));
        }
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            let known = default_objects(&state.mappings);
            for o in list {
                let Some(name) = known.iter().find(|n| n.eq_ignore_ascii_case(&o)) else {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidParameter,
                        format!(
                            "{:?} is not a synced object (one of {})",
                            o.chars().take(80).collect::<String>(),
                            known.join(", ")
                        ),
                    ));
                };
                out.push(name.clone());
            }
            out
        }
        None => default_objects(&state.mappings),
    };
    let now = state.clock.now();
    let id = state.jobs.new_id(now);
    if !take_lock(state, &id).await? {
        let holder = state
            .db
            .lock_holder(&state.org, now)
            .await
            .map_err(db_error)?;
        return Err(busy(holder.map(|(_, j)| j).as_deref().unwrap_or("unknown")));
    }
    match state.jobs.create(id, now, &objects, body.full, None).await {
        Ok(job) => Ok(job),
        Err(e) => {
            let _ = state.db.release_lock(&state.org, &state.owner).await;
            Err(db_error(e))
        }
    }
}

/// Takes the org's lock for job `id`; false when another job holds it.
async fn take_lock(state: &AppState, id: &str) -> Result<bool, ApiError> {
    let now = state.clock.now();
    state
        .db
        .acquire_lock(&state.org, &state.owner, id, now, now + state.sync.lease)
        .await
        .map_err(db_error)
}

/// One check of the sync schedule: when a slot is due and the org's lock is free, claims the
/// slot (one replica wins) and starts an incremental sync of every object for it. Answers the
/// job started, if any. Called every `schedule_check_ms` by each replica.
pub async fn schedule_tick(state: &web::Data<AppState>) -> Result<Option<SyncJob>, sea_orm::DbErr> {
    let Some(schedule) = &state.schedule else {
        return Ok(None);
    };
    let now = state.clock.now();
    let stored = match state.db.schedule(&state.org).await? {
        Some(s) if s.cron == schedule.as_str() => s,
        _ => {
            state
                .db
                .init_schedule(&state.org, schedule.as_str(), now)
                .await?
        }
    };
    let Some(next) = schedule.next_after(stored.last_slot) else {
        return Ok(None);
    };
    if next > now {
        return Ok(None);
    }
    // Slots missed while no connector ran fold into the latest one.
    let slot = schedule.latest_due(now).unwrap_or(next).max(next);
    let id = state.jobs.new_id(now);
    let acquired = state
        .db
        .acquire_lock(&state.org, &state.owner, &id, now, now + state.sync.lease)
        .await?;
    if !acquired {
        // A sync is running: the slot waits for it.
        return Ok(None);
    }
    if !state
        .db
        .claim_slot(&state.org, stored.last_slot, slot, &id, now)
        .await?
    {
        // Another replica ran this slot.
        state.db.release_lock(&state.org, &state.owner).await?;
        return Ok(None);
    }
    let job = match state
        .jobs
        .create(
            id,
            now,
            &default_objects(&state.mappings),
            false,
            Some(slot),
        )
        .await
    {
        Ok(job) => job,
        Err(e) => {
            let _ = state.db.release_lock(&state.org, &state.owner).await;
            return Err(e);
        }
    };
    tracing::info!(job = %job.id, %slot, "Scheduled sync started.");
    let st = state.clone();
    let running = job.clone();
    state.spawn(async move {
        let _ = run_job(&st, &running).await;
    });
    Ok(Some(job))
}

/// Runs a job to its end under the lock it holds, records the outcome and releases the lock.
async fn run_job(state: &AppState, job: &SyncJob) -> Result<SyncReport, SyncError> {
    let run = SyncRun {
        sf: &state.salesforce,
        http: &state.http,
        feature_store_url: &state.feature_store_url,
        clock: &state.clock,
        db: &state.db,
        org: &state.org,
        settings: &state.sync,
        objects: &job.objects,
        full: job.full,
        job: Some(JobContext {
            jobs: &state.jobs,
            id: &job.id,
            owner: &state.owner,
        }),
        mappings: &state.mappings,
        data_cloud: Some(&state.data_cloud),
    };
    state.jobs.flag(&job.id);
    let outcome = run.run().await;
    let now = state.clock.now();
    let progress = state
        .jobs
        .get(&job.id)
        .await
        .ok()
        .flatten()
        .map(|j| j.progress)
        .unwrap_or_default();
    let (final_state, error) = match &outcome {
        Ok(_) => (JobState::Succeeded, None),
        Err(SyncError::Cancelled) => (JobState::Cancelled, None),
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "Sync job failed.");
            (JobState::Failed, Some(e.to_string()))
        }
    };
    if let Err(e) = state
        .jobs
        .finish(&job.id, final_state, error, &progress, now)
        .await
    {
        tracing::error!(job = %job.id, error = %e, "Could not record the end of a sync job.");
    }
    if !matches!(outcome, Err(SyncError::LeaseLost))
        && let Err(e) = state.db.release_lock(&state.org, &state.owner).await
    {
        tracing::error!(error = %e, "Could not release the org's sync lock; it expires on its own.");
    }
    outcome
}

/// Resumes the jobs a stopped connector left running: each waits for the org's lock (the dead
/// owner's lease runs out) and continues from the watermarks. Write-backs resume their pending
/// records.
pub async fn resume_interrupted(state: &web::Data<AppState>) -> Result<(), sea_orm::DbErr> {
    for job in state.jobs.running().await? {
        let st = state.clone();
        state.spawn(async move {
            let pause = std::time::Duration::from_millis(
                (st.sync.lease.num_milliseconds() / 4).clamp(100, 5_000) as u64,
            );
            loop {
                match st.jobs.get(&job.id).await {
                    Ok(Some(j)) if j.state == JobState::Running => {}
                    _ => return,
                }
                let now = st.clock.now();
                match st
                    .db
                    .acquire_lock(&st.org, &st.owner, &job.id, now, now + st.sync.lease)
                    .await
                {
                    Ok(true) => break,
                    Ok(false) => tokio::time::sleep(pause).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "Cannot take the sync lock to resume a job.");
                        tokio::time::sleep(pause).await;
                    }
                }
            }
            tracing::info!(job = %job.id, "Resuming an interrupted sync job.");
            if let Err(e) = st.jobs.restarted(&job.id).await {
                tracing::warn!(error = %e, "Could not count the resumed run.");
            }
            let _ = run_job(&st, &job).await;
        });
    }
    for id in state.writebacks.running().await? {
        let st = state.clone();
        state.spawn(async move { finish_writeback(&st, &id).await });
    }
    Ok(())
}

/// Runs a sync now and answers its report (the demo's path; `POST /v1/syncs` runs it in the
/// background). Incremental: each object from its watermark.
#[utoipa::path(
    request_body(content = Option<StartSync>, description = "What to sync; may be empty"),
    responses(
        (status = 200, description = "Records synced per object", body = SyncReport),
        (status = 400, description = "An unknown object (code invalid_parameter) or a body that is not a sync request (code invalid_json)", body = ErrorBody),
        (status = 409, description = "A sync of this org is running, here or on another replica (code sync_in_progress)", body = ErrorBody),
        (status = 422, description = "A configured object mapping does not fit the org: a missing object or field, a wrong type (code invalid_parameter; the object and field are named)", body = ErrorBody),
        (status = 502, description = "Salesforce or the feature store failed (codes salesforce_error, upstream_unavailable)", body = ErrorBody),
    )
)]
#[post("/v1/sync")]
async fn sync(
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<web::Json<SyncReport>, ApiError> {
    let job = begin(&state, start_sync_body(&body)?).await?;
    run_job(&state, &job)
        .await
        .map(web::Json)
        .map_err(sync_error)
}

fn sync_error(e: SyncError) -> ApiError {
    match e {
        SyncError::Salesforce(e) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::SalesforceError,
            e.to_string(),
        ),
        SyncError::Mapping(e) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::SalesforceError,
            e.to_string(),
        ),
        SyncError::FeatureStore(e) => ApiError::upstream("feature store", e),
        SyncError::Database(e) => db_error(e),
        SyncError::Locked { job, .. } => busy(&job),
        SyncError::LeaseLost | SyncError::Cancelled => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::SyncInProgress,
            e.to_string(),
        ),
        SyncError::UnknownObject(o) => ApiError::bad_request(
            ErrorCode::InvalidParameter,
            format!("{o} is not a synced object"),
        ),
        // The connector's configuration does not fit the org's schema.
        SyncError::MappingConfig(e) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidParameter,
            e.to_string(),
        ),
    }
}

/// Starts a sync in the background; poll `GET /v1/syncs/{id}`.
#[utoipa::path(
    request_body(content = Option<StartSync>, description = "What to sync; may be empty"),
    responses(
        (status = 202, description = "Started", body = SyncJob),
        (status = 400, description = "An unknown object (code invalid_parameter) or a body that is not a sync request (code invalid_json)", body = ErrorBody),
        (status = 409, description = "A sync of this org is running, here or on another replica (code sync_in_progress)", body = ErrorBody),
    )
)]
#[post("/v1/syncs")]
async fn start_sync(
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let job = begin(&state, start_sync_body(&body)?).await?;
    let st = state.clone();
    let running = job.clone();
    state.spawn(async move {
        let _ = run_job(&st, &running).await;
    });
    Ok(HttpResponse::Accepted().json(job))
}

/// Paging of lists.
#[derive(Debug, Deserialize)]
struct ListParams {
    limit: Option<u64>,
}

/// The newest sync jobs (default 100, at most 1000), newest first.
#[utoipa::path(
    params(("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "How many (default 100, at most 1000)")),
    responses(
        (status = 200, description = "Jobs", body = [SyncJob]),
        (status = 400, description = "limit outside 1..=1000 or not a number (code invalid_parameter)", body = ErrorBody),
    )
)]
#[get("/v1/syncs")]
async fn list_syncs(
    state: web::Data<AppState>,
    q: web::Query<ListParams>,
) -> Result<web::Json<Vec<SyncJob>>, ApiError> {
    let limit = in_range("limit", q.limit.unwrap_or(100), 1, 1000)?;
    Ok(web::Json(state.jobs.list(limit).await.map_err(db_error)?))
}

/// One sync job: state and progress.
#[utoipa::path(
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = SyncJob),
        (status = 404, description = "No such job (code not_found)", body = ErrorBody),
    )
)]
#[get("/v1/syncs/{id}")]
async fn get_sync(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<SyncJob>, ApiError> {
    state
        .jobs
        .get(&id)
        .await
        .map_err(db_error)?
        .map(web::Json)
        .ok_or_else(|| ApiError::not_found(format!("no sync job {id}")))
}

/// Asks a running sync to stop between two pages (what it ingested stays, with its watermark).
#[utoipa::path(
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 202, description = "Cancellation requested", body = SyncJob),
        (status = 404, description = "No such job (code not_found)", body = ErrorBody),
    )
)]
#[post("/v1/syncs/{id}/cancel")]
async fn cancel_sync(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = state
        .jobs
        .cancel(&id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::not_found(format!("no sync job {id}")))?;
    Ok(HttpResponse::Accepted().json(job))
}

async fn finish_writeback(state: &AppState, id: &str) {
    let outcome =
        crate::writeback::run(&state.salesforce, &state.writebacks, id, &state.writeback).await;
    let now = state.clock.now();
    let (st, error) = match outcome {
        Ok(()) => (JobState::Succeeded, None),
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "Write-back job failed.");
            (JobState::Failed, Some(e.to_string()))
        }
    };
    if let Err(e) = state.writebacks.finish(id, st, error, now).await {
        tracing::error!(job = %id, error = %e, "Could not record the end of a write-back job.");
    }
}

/// Writes scores back to Salesforce in the background (sObject Collections upsert, 200 per call,
/// `allOrNone=false`; Bulk API 2.0 ingest from the configured size, default 10,000 records);
/// poll `GET /v1/writebacks/{id}` for every record's outcome.
#[utoipa::path(
    request_body = WriteBackRequest,
    responses(
        (status = 202, description = "Accepted; every record is pending", body = WriteBackJob),
        (status = 400, description = "No scores (empty_request), more than 50,000 (too_many_records), a bad id (invalid_record_id) or field name (invalid_parameter)", body = ErrorBody),
    )
)]
#[post("/v1/writebacks")]
async fn start_writeback(
    state: web::Data<AppState>,
    body: web::Json<WriteBackRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let records = req.records().map_err(|e| {
        let code = match &e {
            WriteBackRefusal::Empty => ErrorCode::EmptyRequest,
            WriteBackRefusal::TooMany(_) => ErrorCode::TooManyRecords,
            WriteBackRefusal::InvalidParameter(_) => ErrorCode::InvalidParameter,
            WriteBackRefusal::InvalidRecord { .. } => {
                if req.external_id_field.eq_ignore_ascii_case("Id") {
                    ErrorCode::InvalidRecordId
                } else {
                    ErrorCode::InvalidRecord
                }
            }
        };
        ApiError::bad_request(code, e.to_string())
    })?;
    let id = state
        .writebacks
        .create(&req, &records, state.clock.now())
        .await
        .map_err(db_error)?;
    let job = state
        .writebacks
        .get(&id, 0, 0)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::internal("write-back", "the job vanished"))?;
    let st = state.clone();
    let run_id = id.clone();
    state.spawn(async move { finish_writeback(&st, &run_id).await });
    Ok(HttpResponse::Accepted().json(job))
}

#[derive(Debug, Deserialize)]
struct RecordParams {
    offset: Option<u64>,
    limit: Option<u64>,
}

/// One write-back job with its records' outcomes (`offset`, `limit` ≤ 10,000, default 1,000).
#[utoipa::path(
    params(
        ("id" = String, Path, description = "Job id"),
        ("offset" = Option<u64>, Query, minimum = 0, maximum = 1_000_000_000, description = "First record listed"),
        ("limit" = Option<u64>, Query, minimum = 0, maximum = 10_000, description = "Records listed (default 1000, at most 10000; 0 for the job alone)"),
    ),
    responses(
        (status = 200, description = "The job", body = WriteBackJob),
        (status = 400, description = "offset or limit out of range or not a number (code invalid_parameter)", body = ErrorBody),
        (status = 404, description = "No such job (code not_found)", body = ErrorBody),
    )
)]
#[get("/v1/writebacks/{id}")]
async fn get_writeback(
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<RecordParams>,
) -> Result<web::Json<WriteBackJob>, ApiError> {
    let limit = in_range("limit", q.limit.unwrap_or(1000), 0, 10_000)?;
    let offset = in_range("offset", q.offset.unwrap_or(0), 0, 1_000_000_000)?;
    state
        .writebacks
        .get(&id, offset, limit)
        .await
        .map_err(db_error)?
        .map(web::Json)
        .ok_or_else(|| ApiError::not_found(format!("no write-back job {id}")))
}

/// The newest write-back jobs (without their records), newest first.
#[utoipa::path(
    params(("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "How many (default 100, at most 1000)")),
    responses(
        (status = 200, description = "Jobs", body = [WriteBackJob]),
        (status = 400, description = "limit outside 1..=1000 or not a number (code invalid_parameter)", body = ErrorBody),
    )
)]
#[get("/v1/writebacks")]
async fn list_writebacks(
    state: web::Data<AppState>,
    q: web::Query<ListParams>,
) -> Result<web::Json<Vec<WriteBackJob>>, ApiError> {
    let limit = in_range("limit", q.limit.unwrap_or(100), 1, 1000)?;
    Ok(web::Json(
        state.writebacks.list(limit).await.map_err(db_error)?,
    ))
}

/// The org this connector serves: its schedule and the sync holding its lock.
#[derive(Debug, Clone, PartialEq, serde::Serialize, ToSchema)]
pub struct OrgStatus {
    /// The org's key in the connector's database (`<username>@<login host>` unless configured).
    pub org: String,
    /// The sync schedule and its next run; absent when syncs run only on request.
    pub schedule: Option<ScheduleStatus>,
    /// The sync job holding the org's lock now, on any replica.
    pub running_job: Option<String>,
    /// Write-backs of at least this many records use Bulk API 2.0 ingest (absent: never).
    pub writeback_bulk_threshold: Option<u64>,
}

/// The org: its sync schedule (next run, last slot and its job) and the running sync.
#[utoipa::path(responses((status = 200, description = "The org", body = OrgStatus)))]
#[get("/v1/org")]
async fn org_status(state: web::Data<AppState>) -> Result<web::Json<OrgStatus>, ApiError> {
    let now = state.clock.now();
    let schedule = match &state.schedule {
        None => None,
        Some(s) => {
            let stored = match state.db.schedule(&state.org).await.map_err(db_error)? {
                Some(stored) if stored.cron == s.as_str() => stored,
                // Not checked yet (or the expression just changed): it starts now.
                _ => crate::schedule::StoredSchedule {
                    cron: s.as_str().to_owned(),
                    last_slot: now,
                    last_job_id: None,
                },
            };
            Some(crate::schedule::status(s, &stored))
        }
    };
    let running_job = state
        .db
        .lock_holder(&state.org, now)
        .await
        .map_err(db_error)?
        .map(|(_, job)| job);
    Ok(web::Json(OrgStatus {
        org: state.org.clone(),
        schedule,
        running_job,
        writeback_bulk_threshold: state.writeback.bulk_threshold,
    }))
}

/// Liveness.
#[utoipa::path(responses((status = 200, description = "Alive", body = Health)))]
#[get("/healthz")]
async fn healthz() -> web::Json<Health> {
    web::Json(sextant_service_kit::health::alive("connector"))
}
