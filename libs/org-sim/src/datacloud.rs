//! Data Cloud as the simulator serves it: the a360 token exchange on the instance host and Query
//! API v2 on the tenant endpoint, with the quirks real clients tripped over.
//!
//! - `POST /services/a360/token` (form body or query string): the three fixed fields are checked,
//!   the subject token must be a live core session — otherwise the answer is the **HTML login
//!   redirect** page (or, when configured, a JSON `invalid_grant`) — an unknown `dataspace` is a
//!   JSON error, and success returns a JWT-shaped token (payload with `audienceTenantId` and
//!   `exp`), `issued_token_type`, `expires_in` and the tenant endpoint **without a scheme**.
//! - `POST /api/v2/query` `{"sql"}` and `GET /api/v2/query/{nextBatchId}`: rows as arrays, a
//!   `metadata` object with `placeInOrder`/`typeCode`, per-batch `rowCount`, `done`, opaque batch
//!   ids of the `<queryId>_<n>` style containing a `+` (so clients must encode them), optional
//!   empty middle batches, a stale `nextBatchId` left on the last page, cursors that expire on
//!   demand, 429 beyond the configured concurrent queries, 401 with the real body when the Data
//!   Cloud token is unknown or expired, and 400 with a JSON `message` for bad SQL.
//!
//! SQL: `SELECT cols FROM <Object>__dll [WHERE …] [ORDER BY …] [LIMIT n]` over the org's objects
//! (the simulator's SOQL subset), or the same over the org's Data Cloud objects by their own
//! names (`ssot__Engagement__dlm`), where a timestamp may be compared with a quoted string.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::data::FieldType;
use crate::server::{State, lock, read_org};
use crate::soql;

/// A Query API v2 cursor.
#[derive(Debug, Clone)]
pub(crate) struct DcCursor {
    query_id: String,
    columns: Vec<(String, FieldType)>,
    rows: Vec<Vec<Value>>,
    offset: usize,
    chunk: usize,
    empty_sent: bool,
}

fn dc_error(status: StatusCode, error: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "timestamp": "2026-01-01T00:00:00.000+0000",
        "error": error,
        "message": message,
        "internalErrorCode": "COMMON_ERROR_GENERIC",
        "details": {"status": message, "statusCode": status.as_u16()},
    }))
}

fn b64url(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// `POST /services/a360/token`.
pub(crate) async fn a360_token(
    state: web::Data<State>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let mut params: HashMap<String, String> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    params
        .extend(serde_urlencoded::from_bytes::<HashMap<String, String>>(&body).unwrap_or_default());
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let oauth = |error: &str, description: &str| {
        HttpResponse::BadRequest().json(json!({"error": error, "error_description": description}))
    };
    if get("grant_type") != "urn:salesforce:grant-type:external:cdp" {
        return oauth("unsupported_grant_type", "grant type not supported");
    }
    if get("subject_token_type") != "urn:ietf:params:oauth:token-type:access_token" {
        return oauth("invalid_request", "invalid subject_token_type");
    }
    let live = lock(&state.sessions).contains_key(&get("subject_token"));
    if !live {
        if state.config.a360_html_errors {
            // What Salesforce sends: a page that sends the browser to the login page.
            return HttpResponse::Ok().content_type("text/html;charset=UTF-8").body(
                "<html><head><script>window.location.href='/?ec=302&startURL=%2Fservices%2Fa360%2Ftoken';</script></head><body></body></html>",
            );
        }
        return oauth("invalid_grant", "invalid subject token");
    }
    let dataspace = params.get("dataspace").cloned();
    if let Some(ds) = &dataspace
        && !state.config.dataspaces.contains(ds)
    {
        return oauth("invalid_request", "invalid dataspace");
    }
    let ttl = state.config.dc_token_ttl_secs;
    let exp = state.clock.now().timestamp() + ttl;
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(
        json!({"audienceTenantId": format!("a360/sim/{}", state.config.org_id), "exp": exp,
               "dataspace": dataspace.unwrap_or_else(|| "default".into())})
        .to_string()
        .as_bytes(),
    );
    let token = format!("{header}.{payload}.{}", b64url(&rand::random::<[u8; 24]>()));
    lock(&state.dc_tokens).insert(token.clone(), exp);
    let host = lock(&state.base_url).clone();
    let tenant = host
        .split_once("://")
        .map(|(_, h)| h.to_owned())
        .unwrap_or(host);
    HttpResponse::Ok().json(json!({
        "access_token": token,
        "instance_url": tenant,
        "token_type": "Bearer",
        "issued_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "expires_in": ttl,
    }))
}

fn check_dc_token(state: &State, req: &HttpRequest) -> Result<(), Box<HttpResponse>> {
    let token = req
        .headers()
        .get("Authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    let exp = lock(&state.dc_tokens).get(token).copied();
    match exp {
        Some(exp) if exp > state.clock.now().timestamp() => Ok(()),
        _ => Err(Box::new(dc_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Authorization header verification failed",
        ))),
    }
}

fn type_of(kind: FieldType) -> (&'static str, i64) {
    match kind {
        FieldType::Double | FieldType::Currency | FieldType::Percent => ("DECIMAL", 3),
        FieldType::Boolean => ("BOOLEAN", 16),
        FieldType::Date => ("DATE", 91),
        FieldType::DateTime => ("TIMESTAMP", 93),
        _ => ("VARCHAR", 12),
    }
}

fn batch(state: &State, cursor: &mut DcCursor) -> Value {
    let start = state.clock.now();
    let empty = state.config.dc_empty_middle_batch && !cursor.empty_sent && cursor.offset > 0;
    let (data, end) = if empty {
        cursor.empty_sent = true;
        (Vec::new(), cursor.offset)
    } else {
        let end = (cursor.offset + cursor.chunk).min(cursor.rows.len());
        (cursor.rows[cursor.offset..end].to_vec(), end)
    };
    cursor.offset = end;
    let done = end >= cursor.rows.len() && !empty;
    let metadata: serde_json::Map<String, Value> = cursor
        .columns
        .iter()
        .enumerate()
        .map(|(i, (name, kind))| {
            let (t, code) = type_of(*kind);
            (
                name.clone(),
                json!({"type": t, "placeInOrder": i, "typeCode": code}),
            )
        })
        .collect();
    let serial = state
        .next_cursor
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let next = if done {
        if state.config.dc_stale_next_batch_id {
            format!("{}_{serial}+stale", cursor.query_id)
        } else {
            String::new()
        }
    } else {
        format!("{}_{serial}+b", cursor.query_id)
    };
    json!({
        "data": data,
        "startTime": start.to_rfc3339(),
        "endTime": state.clock.now().to_rfc3339(),
        "rowCount": data.len(),
        "queryId": cursor.query_id,
        "nextBatchId": next,
        "done": done,
        "metadata": metadata,
    })
}

/// `POST /api/v2/query`.
pub(crate) async fn query_v2(
    state: web::Data<State>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(resp) = check_dc_token(&state, &req) {
        return *resp;
    }
    if lock(&state.dc_cursors).len() >= state.config.dc_max_concurrent {
        return dc_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "Too many concurrent queries",
        );
    }
    let sql = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["sql"].as_str().map(str::to_owned));
    let Some(sql) = sql else {
        return dc_error(StatusCode::BAD_REQUEST, "Bad Request", "sql is required");
    };
    // Data Cloud objects are queried by their own names and columns.
    if let Ok(parsed) = soql::parse(&sql) {
        let org = read_org(&state);
        if let Some(object) = org.dc_object(&parsed.object.0) {
            let result = match soql::execute_dc(&org, &sql) {
                Ok(r) => r,
                Err(e) => return dc_error(StatusCode::BAD_REQUEST, "Bad Request", &e.message),
            };
            let columns: Vec<(String, FieldType)> = parsed
                .fields
                .iter()
                .filter_map(|(n, _)| object.field(n).map(|f| (f.name.to_owned(), f.kind)))
                .collect();
            let all = result.into_rows();
            let rows = dc_rows(&all.slice(0, all.len()), &columns, |c| c.to_owned());
            drop(org);
            return open_cursor(&state, columns, rows);
        }
    }
    // `<Object>__dll` tables are the org's objects.
    let soql_text = sql.replace("__dll", "");
    let parsed = match soql::parse(&soql_text) {
        Ok(p) => p,
        Err(e) => return dc_error(StatusCode::BAD_REQUEST, "Bad Request", &e.message),
    };
    let org = read_org(&state);
    let result = match soql::execute(&org, &soql_text) {
        Ok(r) => r,
        Err(e) => return dc_error(StatusCode::BAD_REQUEST, "Bad Request", &e.message),
    };
    let Some(object) = org.object(result.object) else {
        return dc_error(StatusCode::BAD_REQUEST, "Bad Request", "unknown table");
    };
    let columns: Vec<(String, FieldType)> = parsed
        .fields
        .iter()
        .filter_map(|(n, _)| object.field(n).map(|f| (format!("{}__c", f.name), f.kind)))
        .collect();
    let names: Vec<String> = parsed
        .fields
        .iter()
        .filter_map(|(n, _)| object.field(n).map(|f| f.name.to_owned()))
        .collect();
    let all = result.clone().into_rows();
    let rows = dc_rows(&all.slice(0, all.len()), &columns, |c| {
        names_of(&names, &columns, c)
    });
    drop(org);
    open_cursor(&state, columns, rows)
}

/// The source row key of a `…__c` column of an org object.
fn names_of(names: &[String], columns: &[(String, FieldType)], column: &str) -> String {
    columns
        .iter()
        .position(|(c, _)| c == column)
        .and_then(|i| names.get(i).cloned())
        .unwrap_or_default()
}

/// Rows as Query API v2 sends them: arrays in column order, DECIMAL as a string, timestamps
/// with a colon in the offset.
fn dc_rows(
    rows: &[serde_json::Map<String, Value>],
    columns: &[(String, FieldType)],
    key: impl Fn(&str) -> String,
) -> Vec<Vec<Value>> {
    let keys: Vec<String> = columns.iter().map(|(c, _)| key(c)).collect();
    rows.iter()
        .map(|r| {
            keys.iter()
                .zip(columns)
                .map(|(n, (_, kind))| match (r.get(n), kind) {
                    (
                        Some(Value::Number(x)),
                        FieldType::Double | FieldType::Currency | FieldType::Percent,
                    ) => Value::from(x.to_string()),
                    (Some(Value::String(s)), FieldType::DateTime) => {
                        Value::from(s.replace("+0000", "+00:00"))
                    }
                    (Some(v), _) => v.clone(),
                    (None, _) => Value::Null,
                })
                .collect()
        })
        .collect()
}

/// Opens a cursor over the rows and answers its first batch.
fn open_cursor(
    state: &State,
    columns: Vec<(String, FieldType)>,
    rows: Vec<Vec<Value>>,
) -> HttpResponse {
    let n = state
        .next_cursor
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut cursor = DcCursor {
        query_id: format!("20260101_000000_{n:05}_sim"),
        columns,
        rows,
        offset: 0,
        chunk: state.config.dc_batch_size.max(1),
        empty_sent: false,
    };
    let answer = batch(state, &mut cursor);
    if answer["done"] == Value::Bool(false)
        && let Some(next) = answer["nextBatchId"].as_str()
    {
        lock(&state.dc_cursors).insert(next.to_owned(), cursor);
    }
    HttpResponse::Ok().json(answer)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /api/v2/query/{nextBatchId}`.
pub(crate) async fn query_v2_next(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    if let Err(resp) = check_dc_token(&state, &req) {
        return *resp;
    }
    let raw = req
        .path()
        .strip_prefix("/api/v2/query/")
        .unwrap_or_default();
    let id = percent_decode(raw);
    let Some(mut cursor) = lock(&state.dc_cursors).remove(&id) else {
        return dc_error(
            StatusCode::NOT_FOUND,
            "Not Found",
            "The batch id is not found or the query cursor expired",
        );
    };
    let answer = batch(&state, &mut cursor);
    if answer["done"] == Value::Bool(false)
        && let Some(next) = answer["nextBatchId"].as_str()
    {
        lock(&state.dc_cursors).insert(next.to_owned(), cursor);
    }
    HttpResponse::Ok().json(answer)
}
