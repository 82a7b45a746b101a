//! Bulk API 2.0 query jobs and sObject Collections upsert, as the simulator serves them.
//!
//! **Query jobs** (`/services/data/vNN.N/jobs/query`): created `UploadComplete`, a job moves one
//! state per poll (`InProgress`, then `JobComplete` after [`OrgSimConfig::bulk_polls_to_complete`]
//! polls), or ends `Failed` with an `errorMessage` when a failure was injected. Results are CSV
//! pages (`maxRecords`), each with the header row, every value double-quoted, nulls empty and
//! datetimes in the `…Z` form bulk results use, with `Sforce-NumberOfRecords` and an opaque
//! `Sforce-Locator` that is the literal `null` on the last page. Results asked before the job is
//! complete, or with another API version than the job's, are refused. Aggregates (`COUNT()`) are
//! refused at creation as Bulk does.
//!
//! **Collections upsert** (`PATCH /composite/sobjects/{Object}/{Field}`): at most 200 records
//! (`EXCEEDED_ID_LIMIT`), the key must be `Id` or an external-id field, one result per record in
//! order with `created`, item errors with `statusCode`, `allOrNone` rollback, and per-record
//! error injection by key ([`crate::RunningOrgSim::inject_record_error`]).
//!
//! [`OrgSimConfig::bulk_polls_to_complete`]: crate::OrgSimConfig::bulk_polls_to_complete

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};
use sextant_contracts::SalesforceId;

use crate::data::FieldType;
use crate::server::{State, authorise, lock, read_org, rest_error, write_org};
use crate::soql;

/// A query job.
#[derive(Debug, Clone)]
pub(crate) struct BulkJob {
    id: String,
    version: String,
    operation: String,
    object: String,
    created: String,
    state: String,
    polls: u32,
    columns: Vec<String>,
    kinds: Vec<FieldType>,
    rows: soql::Rows,
    error_message: Option<String>,
}

/// A per-record write error waiting for its record.
#[derive(Debug, Clone)]
pub(crate) struct RecordError {
    pub(crate) status_code: String,
    pub(crate) message: String,
    pub(crate) fields: Vec<String>,
    pub(crate) times: u32,
}

/// Fields the simulator's objects flag `externalId` (upsert keys besides `Id`).
const EXTERNAL_IDS: [(&str, &str); 2] = [("Account", "AccountNumber"), ("Product2", "ProductCode")];

fn job_info(job: &BulkJob) -> Value {
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
        "lineEnding": "LF",
        "columnDelimiter": "COMMA",
    });
    if job.state == "JobComplete" || job.state == "Failed" {
        v["jobType"] = json!("V2Query");
        v["numberRecordsProcessed"] = json!(if job.state == "JobComplete" {
            job.rows.len()
        } else {
            0
        });
        v["retries"] = json!(0);
        v["totalProcessingTime"] = json!(42);
        v["isPkChunkingSupported"] = json!(true);
    }
    if let Some(m) = &job.error_message {
        v["errorMessage"] = json!(m);
    }
    v
}

/// `POST /services/data/vNN.N/jobs/query`.
pub(crate) async fn create_query_job(
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
    let operation = body["operation"].as_str().unwrap_or("").to_owned();
    if operation != "query" && operation != "queryAll" {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOB",
            "InvalidJob : Invalid operation; must be query or queryAll",
        );
    }
    let Some(q) = body["query"].as_str() else {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOB",
            "InvalidJob : query is required",
        );
    };
    let parsed = match soql::parse(q) {
        Ok(p) => p,
        Err(e) => return rest_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    if parsed.count {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "API_ERROR",
            "Aggregate Relationships and COUNT() are not supported by the Bulk API",
        );
    }
    let org = read_org(&state);
    let result = match soql::execute_with(&org, q, operation == "queryAll") {
        Ok(r) => r,
        Err(e) => return rest_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    let Some(object) = org.object(result.object) else {
        return rest_error(StatusCode::BAD_REQUEST, "INVALIDENTITY", "unknown object");
    };
    let mut columns = Vec::new();
    let mut kinds = Vec::new();
    for (name, _) in &parsed.fields {
        if let Some(f) = object.field(name) {
            columns.push(f.name.to_owned());
            kinds.push(f.kind);
        }
    }
    drop(org);
    let serial = state
        .next_cursor
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = SalesforceId::from_parts("750", "5g", serial)
        .as_str()
        .to_owned();
    let job = BulkJob {
        id: id.clone(),
        version,
        operation,
        object: result.object.to_owned(),
        created: state.stamp_now(),
        state: "UploadComplete".into(),
        polls: 0,
        columns,
        kinds,
        rows: result.into_rows(),
        error_message: None,
    };
    let info = job_info(&job);
    lock(&state.bulk_jobs).insert(id, job);
    HttpResponse::Ok().json(info)
}

/// `GET /services/data/vNN.N/jobs/query/{id}`: each poll moves the job on.
pub(crate) async fn get_query_job(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (version, id) = path.into_inner();
    if let Err(resp) = authorise(&state, &req, &version) {
        return *resp;
    }
    let fail = lock(&state.bulk_failures).pop();
    let mut jobs = lock(&state.bulk_jobs);
    let Some(job) = jobs.get_mut(&id) else {
        return rest_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        );
    };
    if job.state == "UploadComplete" || job.state == "InProgress" {
        job.polls += 1;
        if let Some(message) = fail {
            job.state = "Failed".into();
            job.error_message = Some(message);
        } else if job.polls >= state.config.bulk_polls_to_complete {
            job.state = "JobComplete".into();
        } else {
            job.state = "InProgress".into();
        }
    } else if let Some(message) = fail {
        // Not used by this job: keep it for the next.
        lock(&state.bulk_failures).push(message);
    }
    HttpResponse::Ok().json(job_info(job))
}

/// `PATCH /services/data/vNN.N/jobs/query/{id}` `{"state":"Aborted"}`.
pub(crate) async fn abort_query_job(
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
    if wanted.as_deref() != Some("Aborted") {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "INVALIDJOBSTATE",
            "InvalidJobState : a query job can only be set to Aborted",
        );
    }
    let mut jobs = lock(&state.bulk_jobs);
    let Some(job) = jobs.get_mut(&id) else {
        return rest_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        );
    };
    job.state = "Aborted".into();
    HttpResponse::Ok().json(job_info(job))
}

#[derive(serde::Deserialize)]
pub(crate) struct ResultParams {
    locator: Option<String>,
    #[serde(rename = "maxRecords")]
    max_records: Option<usize>,
}

fn csv_value(v: &Value, kind: FieldType) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) if kind == FieldType::DateTime => s.replace("+0000", "Z"),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `GET /services/data/vNN.N/jobs/query/{id}/results?locator=&maxRecords=`.
pub(crate) async fn query_results(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    params: web::Query<ResultParams>,
) -> HttpResponse {
    let (version, id) = path.into_inner();
    if let Err(resp) = authorise(&state, &req, &version) {
        return *resp;
    }
    let jobs = lock(&state.bulk_jobs);
    let Some(job) = jobs.get(&id) else {
        return rest_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        );
    };
    if job.version != version {
        return rest_error(
            StatusCode::CONFLICT,
            "API_VERSION_MISMATCH",
            "The job was created with another API version",
        );
    }
    if job.state != "JobComplete" {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "JOB_NOT_COMPLETE",
            "Job is not complete; results are available once its state is JobComplete",
        );
    }
    let offset = match params.locator.as_deref() {
        None => 0,
        Some(l) => match l
            .strip_prefix("MjA")
            .and_then(|n| usize::from_str_radix(n, 36).ok())
        {
            Some(n) => n,
            None => {
                return rest_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_LOCATOR",
                    "Invalid locator",
                );
            }
        },
    };
    let max = params
        .max_records
        .unwrap_or(state.config.bulk_page_size)
        .clamp(1, state.config.bulk_page_size.max(1));
    let end = (offset + max).min(job.rows.len());
    let mut body = job
        .columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(",");
    body.push('\n');
    for row in &job.rows.slice(offset, end) {
        let line: Vec<String> = job
            .columns
            .iter()
            .zip(&job.kinds)
            .map(|(c, k)| quote(&csv_value(row.get(c).unwrap_or(&Value::Null), *k)))
            .collect();
        body.push_str(&line.join(","));
        body.push('\n');
    }
    let locator = if end < job.rows.len() {
        format!("MjA{}", to_base36(end))
    } else {
        "null".into()
    };
    HttpResponse::Ok()
        .content_type("text/csv")
        .insert_header((
            "Sforce-NumberOfRecords",
            (end - offset.min(end)).to_string(),
        ))
        .insert_header(("Sforce-Locator", locator))
        .body(body)
}

fn to_base36(mut n: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[n % 36]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn item_error(code: &str, message: &str, fields: &[String]) -> Value {
    json!({"success": false, "errors": [{"statusCode": code, "message": message, "fields": fields}]})
}

/// `PATCH /services/data/vNN.N/composite/sobjects/{Object}/{ExternalIdField}`.
pub(crate) async fn upsert_collection(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (version, object_name, key_field) = path.into_inner();
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
    let all_or_none = body["allOrNone"].as_bool().unwrap_or(false);
    let Some(records) = body["records"].as_array() else {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "records is required",
        );
    };
    if records.len() > 200 {
        return rest_error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        );
    }
    match upsert_records(&state, &object_name, &key_field, records, all_or_none) {
        Ok(results) => HttpResponse::Ok().json(results),
        Err(resp) => *resp,
    }
}

/// Upserts records (each with `attributes.type`) into an object by `key_field`, as one
/// transaction when `all_or_none`: one result per record in order (`{id, success, errors,
/// created}`), or the whole request's error answer (unknown object, key not an external id).
pub(crate) fn upsert_records(
    state: &State,
    object_name: &str,
    key_field: &str,
    records: &[Value],
    all_or_none: bool,
) -> Result<Vec<Value>, Box<HttpResponse>> {
    let stamp = state.stamp_now();
    let mut org = write_org(state);
    let Some(object) = org.object_mut(object_name) else {
        return Err(Box::new(rest_error(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            &format!("sObject type '{object_name}' is not supported."),
        )));
    };
    let by_id = key_field.eq_ignore_ascii_case("Id");
    let external = EXTERNAL_IDS
        .iter()
        .any(|(o, f)| o.eq_ignore_ascii_case(object.name) && f.eq_ignore_ascii_case(key_field));
    if !by_id && !external {
        return Err(Box::new(rest_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Provided external ID field does not exist or is not accessible: {key_field}"),
        )));
    }
    let key_name = if by_id {
        "Id"
    } else {
        object
            .field(key_field)
            .map(|f| f.name)
            .unwrap_or("AccountNumber")
    };
    // Work on a copy so allOrNone can roll back.
    let mut rows = object.rows.clone();
    let fields: HashMap<String, (&'static str, FieldType)> = object
        .fields
        .iter()
        .map(|f| (f.name.to_ascii_lowercase(), (f.name, f.kind)))
        .collect();
    let prefix = object.key_prefix;
    let type_name = object.name;
    let mut results = Vec::with_capacity(records.len());
    let mut any_failed = false;
    let mut injected = lock(&state.record_errors);
    for rec in records {
        let Some(rec) = rec.as_object() else {
            results.push(item_error(
                "INVALID_FIELD",
                "a record must be an object",
                &[],
            ));
            any_failed = true;
            continue;
        };
        let declared = rec
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if !declared.eq_ignore_ascii_case(type_name) {
            results.push(item_error(
                "INVALID_TYPE",
                "attributes.type must be the object of the URL",
                &[],
            ));
            any_failed = true;
            continue;
        }
        let Some(key) = rec.get(key_name).and_then(Value::as_str).map(str::to_owned) else {
            results.push(item_error(
                "MISSING_ARGUMENT",
                &format!("{key_name} not specified"),
                &[key_name.to_owned()],
            ));
            any_failed = true;
            continue;
        };
        if let Some(e) = injected.get_mut(&key)
            && e.times > 0
        {
            e.times -= 1;
            results.push(item_error(&e.status_code, &e.message, &e.fields));
            any_failed = true;
            continue;
        }
        let mut problem = None;
        let mut changes = Map::new();
        for (k, v) in rec {
            if k == "attributes" || k.eq_ignore_ascii_case(key_name) {
                continue;
            }
            match fields.get(&k.to_ascii_lowercase()) {
                None => {
                    problem = Some(item_error(
                        "INVALID_FIELD",
                        &format!("No such column '{k}' on sobject of type {type_name}"),
                        std::slice::from_ref(k),
                    ));
                    break;
                }
                Some((name, kind)) => {
                    let ok = match kind {
                        FieldType::Double | FieldType::Currency | FieldType::Percent => {
                            v.is_number() || v.is_null()
                        }
                        FieldType::Boolean => v.is_boolean(),
                        _ => v.is_string() || v.is_null(),
                    };
                    if !ok || ["Id", "SystemModstamp", "IsDeleted", "CreatedDate"].contains(name) {
                        problem = Some(item_error(
                            "INVALID_FIELD_FOR_INSERT_UPDATE",
                            &format!("Unable to create/update fields: {name}."),
                            &[(*name).to_owned()],
                        ));
                        break;
                    }
                    changes.insert((*name).to_owned(), v.clone());
                }
            }
        }
        if let Some(p) = problem {
            results.push(p);
            any_failed = true;
            continue;
        }
        let existing = rows.iter_mut().find(|r| {
            r.get(key_name).and_then(Value::as_str) == Some(key.as_str())
                && r.get("IsDeleted") != Some(&Value::Bool(true))
        });
        match existing {
            Some(row) => {
                row.extend(changes);
                row.insert("LastModifiedDate".into(), Value::from(stamp.clone()));
                row.insert("SystemModstamp".into(), Value::from(stamp.clone()));
                let id = row.get("Id").cloned().unwrap_or(Value::Null);
                results.push(json!({"id": id, "success": true, "errors": [], "created": false}));
            }
            None if by_id => {
                results.push(item_error(
                    "INVALID_CROSS_REFERENCE_KEY",
                    "invalid cross reference id",
                    &["Id".to_owned()],
                ));
                any_failed = true;
            }
            None => {
                let serial = state
                    .next_cursor
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    + 1_000_000;
                let id = SalesforceId::from_parts(prefix, "5g", serial)
                    .as_str()
                    .to_owned();
                let mut row: Map<String, Value> = fields
                    .values()
                    .map(|(n, _)| ((*n).to_owned(), Value::Null))
                    .collect();
                row.extend(changes);
                row.insert("Id".into(), Value::from(id.clone()));
                row.insert(key_name.into(), Value::from(key.clone()));
                row.insert("IsDeleted".into(), Value::Bool(false));
                for f in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
                    row.insert(f.into(), Value::from(stamp.clone()));
                }
                rows.push(row);
                results.push(json!({"id": id, "success": true, "errors": [], "created": true}));
            }
        }
    }
    drop(injected);
    if all_or_none && any_failed {
        let rolled: Vec<Value> = results
            .into_iter()
            .map(|r| {
                if r["success"] == Value::Bool(true) {
                    item_error(
                        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                        "Record rolled back because not all records were valid and the request was using AllOrNone header",
                        &[],
                    )
                } else {
                    r
                }
            })
            .collect();
        return Ok(rolled);
    }
    object.rows = rows;
    Ok(results)
}
