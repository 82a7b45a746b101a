//! Bulk API 2.0 ingest jobs, as the simulator serves them (`/services/data/vNN.N/jobs/ingest`).
//!
//! - `POST …/jobs/ingest` `{"object", "operation", "externalIdFieldName", "contentType": "CSV",
//!   "lineEnding"}` → JobInfo in state `Open` with its `contentUrl`. Operations: `upsert`
//!   (needs `externalIdFieldName`: `Id` or a field flagged external id) and `update` (by `Id`);
//!   others are refused with `INVALIDJOB` as the simulator does not write them.
//! - `PUT …/jobs/ingest/{id}/batches` (`text/csv`, header row first) → **201** with no body;
//!   only while the job is `Open`, once (the client uploads once per job), at most
//!   [`MAX_UPLOAD_BYTES`].
//! - `PATCH …/jobs/ingest/{id}` `{"state": "UploadComplete"}` (or `"Aborted"`) → JobInfo.
//! - `GET …/jobs/ingest/{id}`: each poll moves an `UploadComplete` job on (`InProgress`, then
//!   `JobComplete` after [`crate::OrgSimConfig::bulk_polls_to_complete`] polls); the rows are
//!   written when it completes, with the same rules and injected record errors as collections
//!   upsert. [`crate::RunningOrgSim::fail_next_ingest_job`] makes the next job end `Failed`
//!   with an `errorMessage` after processing only its first rows.
//! - `GET …/successfulResults/` (`"sf__Id","sf__Created",` then the uploaded columns),
//!   `…/failedResults/` (`"sf__Id","sf__Error",…`, the error as `CODE:message:fields --`) and
//!   `…/unprocessedrecords/` (the uploaded columns), as CSV; refused before the job is finished.
//! - A CSV cell `#N/A` sets the field to null; an empty cell leaves it unchanged.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};
use sextant_contracts::SalesforceId;

use crate::data::FieldType;
use crate::server::{State, authorise, lock, read_org, rest_error};

/// The most raw CSV one upload may carry (150 MB once base64-encoded).
pub const MAX_UPLOAD_BYTES: usize = 100 * 1024 * 1024;

/// An ingest job.
#[derive(Debug, Clone)]
pub(crate) struct IngestJob {
    id: String,
    version: String,
    object: String,
    operation: String,
    external_id: String,
    created: String,
    state: String,
    polls: u32,
    uploaded: bool,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    successful: Vec<Vec<String>>,
    failed: Vec<Vec<String>>,
    unprocessed: Vec<Vec<String>>,
    error_message: Option<String>,
}

/// An injected failure of the next ingest job: it ends `Failed` after `processed` rows.
#[derive(Debug, Clone)]
pub(crate) struct IngestFailure {
    pub(crate) message: String,
    pub(crate) processed: usize,
}

fn job_info(job: &IngestJob) -> Value {
    let mut v = json!({
        "id": job.id,
        "operation": job.operation,
        "object": job.object,
        "createdById": "0055g00000000001AAA",
        "createdDate": job.created,
        "systemModstamp": job.created,
        "state": job.state,
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": job.version.parse::<f64>().unwrap_or(62.0),
        "contentUrl": format!("services/data/v{}/jobs/ingest/{}/batches", job.version, job.id),
        "lineEnding": "LF",
        "columnDelimiter": "COMMA",
    });
    if job.operation == "upsert" {
        v["externalIdFieldName"] = json!(job.external_id);
    }
    if matches!(job.state.as_str(), "JobComplete" | "Failed" | "Aborted") {
        v["jobType"] = json!("V2Ingest");
        v["numberRecordsProcessed"] = json!(job.successful.len() + job.failed.len());
        v["numberRecordsFailed"] = json!(job.failed.len());
        v["retries"] = json!(0);
        v["totalProcessingTime"] = json!(42);
    }
    if let Some(m) = &job.error_message {
        v["errorMessage"] = json!(m);
    }
    v
}

fn not_found() -> HttpResponse {
    rest_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// `POST /services/data/vNN.N/jobs/ingest`.
pub(crate) async fn create_job(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let version = path.into_inner();
    if let Err(resp) = authorise(&state, &req, &version) {
        return *resp;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "The request body is not valid JSON.",
        );
    };
    let invalid = |m: &str| rest_error(StatusCode::BAD_REQUEST, "INVALIDJOB", m);
    let operation = body["operation"].as_str().unwrap_or("").to_owned();
    let external_id = match operation.as_str() {
        "upsert" => match body["externalIdFieldName"].as_str() {
            Some(f) if !f.is_empty() => f.to_owned(),
            _ => return invalid("InvalidJob : External ID was blank for upsert"),
        },
        "update" => "Id".to_owned(),
        _ => return invalid("InvalidJob : the simulator writes with upsert or update"),
    };
    if body["contentType"].as_str().is_some_and(|c| c != "CSV") {
        return invalid("InvalidJob : contentType must be CSV");
    }
    let Some(object) = body["object"].as_str() else {
        return invalid("InvalidJob : object is required");
    };
    let Some(object) = read_org(&state).object(object).map(|o| o.name.to_owned()) else {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "INVALIDENTITY",
            &format!("InvalidEntity : Entity '{object}' is not supported by the Bulk API."),
        );
    };
    let serial = state
        .next_cursor
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = SalesforceId::from_parts("750", "5h", serial)
        .as_str()
        .to_owned();
    let job = IngestJob {
        id: id.clone(),
        version,
        object,
        operation,
        external_id,
        created: state.stamp_now(),
        state: "Open".into(),
        polls: 0,
        uploaded: false,
        header: Vec::new(),
        rows: Vec::new(),
        successful: Vec::new(),
        failed: Vec::new(),
        unprocessed: Vec::new(),
        error_message: None,
    };
    let info = job_info(&job);
    lock(&state.ingest_jobs).insert(id, job);
    HttpResponse::Ok().json(info)
}

/// `PUT /services/data/vNN.N/jobs/ingest/{id}/batches`.
pub(crate) async fn upload(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (version, id) = path.into_inner();
    if let Err(resp) = authorise(&state, &req, &version) {
        return *resp;
    }
    let content_type = req
        .headers()
        .get("Content-Type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("text/csv") {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "INVALIDBATCH",
            "InvalidBatch : the upload must be text/csv",
        );
    }
    if body.len() > MAX_UPLOAD_BYTES {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "INVALIDBATCH",
            "InvalidBatch : Exceeded max size limit of 150 MB of base64-encoded content",
        );
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(&body[..]);
    let bad = |e: csv::Error| {
        rest_error(
            StatusCode::BAD_REQUEST,
            "INVALIDBATCH",
            &format!("InvalidBatch : the CSV does not parse: {e}"),
        )
    };
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_owned).collect(),
        Err(e) => return bad(e),
    };
    let mut rows = Vec::new();
    for r in reader.records() {
        match r {
            Ok(r) => rows.push(r.iter().map(str::to_owned).collect::<Vec<_>>()),
            Err(e) => return bad(e),
        }
    }
    let mut jobs = lock(&state.ingest_jobs);
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    if job.state != "Open" || job.uploaded {
        return rest_error(
            StatusCode::CONFLICT,
            "INVALIDJOBSTATE",
            "InvalidJobState : data can only be uploaded once, to an Open job",
        );
    }
    if !header
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&job.external_id))
    {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "INVALIDBATCH",
            &format!(
                "InvalidBatch : Field name not found : {} is required in the header",
                job.external_id
            ),
        );
    }
    job.header = header;
    job.rows = rows;
    job.uploaded = true;
    HttpResponse::Created().finish()
}

/// `PATCH /services/data/vNN.N/jobs/ingest/{id}` `{"state": "UploadComplete"|"Aborted"}`.
pub(crate) async fn set_state(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (version, id) = path.into_inner();
    if let Err(resp) = authorise(&state, &req, &version) {
        return *resp;
    }
    let wanted = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["state"].as_str().map(str::to_owned));
    let mut jobs = lock(&state.ingest_jobs);
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    match wanted.as_deref() {
        Some("UploadComplete") if job.state == "Open" && job.uploaded => {
            job.state = "UploadComplete".into();
        }
        Some("UploadComplete") => {
            return rest_error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOBSTATE",
                "InvalidJobState : only an Open job with uploaded data can be closed",
            );
        }
        Some("Aborted") if !matches!(job.state.as_str(), "JobComplete" | "Failed") => {
            job.state = "Aborted".into();
            job.unprocessed = std::mem::take(&mut job.rows);
        }
        _ => {
            return rest_error(
                StatusCode::BAD_REQUEST,
                "INVALIDJOBSTATE",
                "InvalidJobState : the state can be set to UploadComplete or Aborted",
            );
        }
    }
    HttpResponse::Ok().json(job_info(job))
}

/// A CSV cell as a JSON value for a field of `kind`: `#N/A` is null, numbers and booleans
/// parsed; `None` for an empty cell (leave the field as it is).
fn cell_value(cell: &str, kind: Option<FieldType>) -> Option<Value> {
    if cell.is_empty() {
        return None;
    }
    if cell == "#N/A" {
        return Some(Value::Null);
    }
    Some(match kind {
        Some(FieldType::Double | FieldType::Currency | FieldType::Percent) => {
            match cell.parse::<f64>() {
                Ok(x) => Value::from(x),
                // Not a number: the write fails on the field's type check.
                Err(_) => Value::from(cell),
            }
        }
        Some(FieldType::Boolean) => match cell.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::from(cell),
        },
        _ => Value::from(cell),
    })
}

/// Writes a completed job's rows (`limit` of them when a failure was injected).
fn process(state: &State, job: &mut IngestJob, limit: Option<usize>) {
    let kinds: Vec<Option<FieldType>> = {
        let org = read_org(state);
        let object = org.object(&job.object);
        job.header
            .iter()
            .map(|h| object.and_then(|o| o.field(h)).map(|f| f.kind))
            .collect()
    };
    let rows = std::mem::take(&mut job.rows);
    let cut = limit.unwrap_or(rows.len()).min(rows.len());
    let (now, later) = rows.split_at(cut);
    let records: Vec<Value> = now
        .iter()
        .map(|row| {
            let mut m = Map::new();
            m.insert("attributes".into(), json!({"type": job.object}));
            for ((h, cell), kind) in job.header.iter().zip(row).zip(&kinds) {
                if let Some(v) = cell_value(cell, *kind) {
                    m.insert(h.clone(), v);
                }
            }
            Value::Object(m)
        })
        .collect();
    let results = if records.is_empty() {
        Ok(Vec::new())
    } else {
        crate::bulk::upsert_records(state, &job.object, &job.external_id, &records, false)
    };
    match results {
        Ok(results) => {
            for (row, r) in now.iter().zip(results) {
                if r["success"] == Value::Bool(true) {
                    let mut out = vec![
                        r["id"].as_str().unwrap_or_default().to_owned(),
                        r["created"].as_bool().unwrap_or(false).to_string(),
                    ];
                    out.extend(row.iter().cloned());
                    job.successful.push(out);
                } else {
                    let e = &r["errors"][0];
                    let fields: Vec<&str> = e["fields"]
                        .as_array()
                        .map(|f| f.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let mut out = vec![
                        String::new(),
                        format!(
                            "{}:{}:{} --",
                            e["statusCode"].as_str().unwrap_or("UNKNOWN_EXCEPTION"),
                            e["message"].as_str().unwrap_or(""),
                            fields.join(",")
                        ),
                    ];
                    out.extend(row.iter().cloned());
                    job.failed.push(out);
                }
            }
        }
        Err(_) => {
            // The whole job cannot be written (unknown key field): every row failed.
            for row in now {
                let mut out = vec![
                    String::new(),
                    format!(
                        "INVALID_FIELD:Provided external ID field does not exist or is not accessible: {}:{} --",
                        job.external_id, job.external_id
                    ),
                ];
                out.extend(row.iter().cloned());
                job.failed.push(out);
            }
        }
    }
    job.unprocessed = later.to_vec();
}

/// `GET /services/data/vNN.N/jobs/ingest/{id}`: each poll moves the job on.
pub(crate) async fn get_job(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (version, id) = path.into_inner();
    if let Err(resp) = authorise(&state, &req, &version) {
        return *resp;
    }
    let mut jobs = lock(&state.ingest_jobs);
    let Some(job) = jobs.get_mut(&id) else {
        return not_found();
    };
    if job.state == "UploadComplete" || job.state == "InProgress" {
        job.polls += 1;
        if job.polls >= state.config.bulk_polls_to_complete {
            let failure = lock(&state.ingest_failures).pop();
            match failure {
                Some(f) => {
                    process(&state, job, Some(f.processed));
                    job.state = "Failed".into();
                    job.error_message = Some(f.message);
                }
                None => {
                    process(&state, job, None);
                    job.state = "JobComplete".into();
                }
            }
        } else {
            job.state = "InProgress".into();
        }
    }
    HttpResponse::Ok().json(job_info(job))
}

fn csv_line(cells: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let mut line = cells
        .into_iter()
        .map(|c| format!("\"{}\"", c.as_ref().replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

/// `GET …/jobs/ingest/{id}/{successfulResults|failedResults|unprocessedrecords}/`.
pub(crate) async fn results(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> HttpResponse {
    let (version, id, which) = path.into_inner();
    if let Err(resp) = authorise(&state, &req, &version) {
        return *resp;
    }
    let jobs = lock(&state.ingest_jobs);
    let Some(job) = jobs.get(&id) else {
        return not_found();
    };
    if job.version != version {
        return rest_error(
            StatusCode::CONFLICT,
            "API_VERSION_MISMATCH",
            "The job was created with another API version",
        );
    }
    let (prefix, rows): (&[&str], &[Vec<String>]) = match which.as_str() {
        "successfulResults" => (&["sf__Id", "sf__Created"], &job.successful),
        "failedResults" => (&["sf__Id", "sf__Error"], &job.failed),
        "unprocessedrecords" => (&[], &job.unprocessed),
        _ => return not_found(),
    };
    let finished = matches!(job.state.as_str(), "JobComplete" | "Failed" | "Aborted");
    if !finished {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOBSTATE",
            "InvalidJobState : results are available once the job is JobComplete, Failed or Aborted",
        );
    }
    let mut body = csv_line(
        prefix
            .iter()
            .map(|s| (*s).to_owned())
            .chain(job.header.clone()),
    );
    for r in rows {
        body.push_str(&csv_line(r));
    }
    HttpResponse::Ok().content_type("text/csv").body(body)
}
