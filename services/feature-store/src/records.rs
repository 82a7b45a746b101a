//! Records of any object as CSV: what a propensity job trains on when a prediction definition's
//! object is synced instead of uploaded.
//!
//! Why CSV with a header of field names: it is exactly the export the trainer's propensity job
//! already reads from an upload, so the store's export and a data scientist's file train the
//! same way and the trainer keeps one reader. Why the field list is checked first: a field no
//! record has (a typo, a field the sync does not map) must be an error naming it, and an HTTP
//! status can only say so before the first byte; the object's field catalogue
//! (`fs_record_field`) answers without reading the records. Why streamed: an object can be
//! larger than memory; rows are read a page at a time (keyset on the record Id) into a bounded
//! channel, and a database failure mid-way aborts the response, so a reader can tell a cut
//! export from a complete one.

use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use serde_json::Value;
use sextant_contracts::{ErrorBody, ErrorCode, OrgId};
use sextant_service_kit::ApiError;

use crate::AppState;
use crate::migration::DEFAULT_ORG;
use crate::store::object_records::{MAX_FIELDS, is_api_name};
use crate::store::{PAGE, Store};

/// A CSV field, quoted when it needs to be.
fn field(out: &mut String, v: &str) {
    if v.contains([',', '"', '\n', '\r']) || v.starts_with(' ') || v.ends_with(' ') {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(v);
    }
}

/// One wire value as a cell: a missing value is an empty cell (never 0).
fn cell(out: &mut String, v: Option<&Value>) {
    match v {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => field(out, s),
        Some(Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::Number(n)) => out.push_str(&n.to_string()),
        // Ingest refuses lists and objects; written as JSON rather than dropped if one is there.
        Some(other) => field(out, &other.to_string()),
    }
}

/// One row: the Id, then each requested field by its stored name.
fn row(out: &mut String, id: &str, fields: &str, stored: &[String]) -> Result<(), String> {
    let values: serde_json::Map<String, Value> =
        serde_json::from_str(fields).map_err(|e| format!("record {id}: stored fields: {e}"))?;
    field(out, id);
    for name in stored {
        out.push(',');
        cell(out, values.get(name));
    }
    out.push('\n');
    Ok(())
}

type Tx = tokio::sync::mpsc::Sender<Result<web::Bytes, std::io::Error>>;

async fn produce(
    store: Store,
    org: String,
    object: String,
    stored: Vec<String>,
    header: String,
    tx: Tx,
) {
    if tx.send(Ok(web::Bytes::from(header))).await.is_err() {
        return;
    }
    let mut after: Option<String> = None;
    loop {
        let page = match store
            .current_records(&org, &object, after.as_deref(), PAGE)
            .await
        {
            Ok(p) => p,
            Err(e) => return fail(&tx, &e.to_string()).await,
        };
        let Some((last, _)) = page.last() else {
            return;
        };
        let last = last.clone();
        let mut chunk = String::with_capacity(page.len() * 16 * (stored.len() + 1));
        for (id, fields) in &page {
            if let Err(e) = row(&mut chunk, id, fields, &stored) {
                return fail(&tx, &e).await;
            }
        }
        if tx.send(Ok(web::Bytes::from(chunk))).await.is_err() {
            tracing::info!(%object, "Record export reader went away; stopped.");
            return;
        }
        after = Some(last);
    }
}

/// Ends the response with an error, which aborts it: the reader sees a cut transfer.
async fn fail(tx: &Tx, message: &str) {
    tracing::error!(%message, "Record export failed mid-stream.");
    let _ = tx
        .send(Err(std::io::Error::other(
            "record export failed; see the store's log",
        )))
        .await;
}

/// Which fields of which org.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RecordsQuery {
    /// The fields to export, comma-separated API names (1..=800), e.g.
    /// `Defaulted__c,Amount__c,Grade__c`; the header is `Id` and then these, as spelt here.
    #[param(pattern = r"^\s*[A-Za-z][A-Za-z0-9_]{0,79}\s*(,\s*[A-Za-z][A-Za-z0-9_]{0,79}\s*)*$")]
    fields: String,
    /// The org; the store's default org when absent.
    #[param(value_type = Option<String>, pattern = "^00D[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$", format = "salesforce-org-id")]
    org_id: Option<OrgId>,
}

fn bad(message: String) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidParameter, message)
}

/// The current records (latest version, not deleted) of one synced object as CSV, streamed in
/// Id order: a header of `Id` and the requested fields, one row per record; a missing value is
/// an empty cell, never 0. The trainer's propensity job reads it
/// (`POST /v1/propensity/{name}/jobs?source=feature_store`). API names ignore case. A failure
/// part-way aborts the transfer (never a clean, shorter file).
#[utoipa::path(
    params(("object" = String, Path, pattern = "^[A-Za-z][A-Za-z0-9_]{0,79}$", description = "The object's API name, e.g. Loan__c"), RecordsQuery),
    responses(
        (status = 200, description = "Records", content_type = "text/csv", body = String),
        (status = 400, description = "A malformed object or field name, no fields, a field given twice or `Id`, or a field no record of the object has — each named (invalid_parameter)", body = ErrorBody),
        (status = 404, description = "No record of the object was ever synced (not_found)", body = ErrorBody),
    )
)]
#[get("/v1/records/{object}")]
pub async fn export_records(
    state: web::Data<AppState>,
    object: web::Path<String>,
    query: web::Query<RecordsQuery>,
) -> Result<HttpResponse, ApiError> {
    let object = object.into_inner();
    if !is_api_name(&object) {
        return Err(bad(format!(
            "object {:?} is not an API name (a letter, then letters, digits and underscores, at most 80 characters)",
            object.chars().take(100).collect::<String>()
        )));
    }
    let requested: Vec<&str> = query.fields.split(',').map(str::trim).collect();
    if query.fields.trim().is_empty() {
        return Err(bad("fields names no field".into()));
    }
    if requested.len() > MAX_FIELDS {
        return Err(bad(format!(
            "{} fields; at most {MAX_FIELDS}",
            requested.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for f in &requested {
        if !is_api_name(f) {
            return Err(bad(format!(
                "field {:?} is not an API name",
                f.chars().take(100).collect::<String>()
            )));
        }
        if f.eq_ignore_ascii_case("Id") {
            return Err(bad(
                "`Id` is always the first column; do not request it".into()
            ));
        }
        if !seen.insert(f.to_ascii_lowercase()) {
            return Err(bad(format!("field {f} is requested twice")));
        }
    }
    let org = query
        .org_id
        .as_ref()
        .map_or_else(|| DEFAULT_ORG.to_owned(), ToString::to_string);
    let Some((stored_object, catalogue)) = state
        .store
        .record_fields(&org, &object)
        .await
        .map_err(|e| ApiError::internal("database", e))?
    else {
        return Err(ApiError::not_found(format!(
            "no record of {object} has been synced"
        )));
    };
    let mut stored = Vec::with_capacity(requested.len());
    let mut unknown = Vec::new();
    for f in &requested {
        match catalogue.get(&f.to_ascii_lowercase()) {
            Some(name) => stored.push(name.clone()),
            None => unknown.push(*f),
        }
    }
    if !unknown.is_empty() {
        return Err(bad(format!(
            "no record of {stored_object} has the field{} {}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
        )));
    }
    let mut header = String::from("Id");
    for f in &requested {
        header.push(',');
        header.push_str(f);
    }
    header.push('\n');
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(produce(
        state.store.clone(),
        org,
        stored_object,
        stored,
        header,
        tx,
    ));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_keep_missing_values_empty_and_quote_what_csv_needs() {
        let mut out = String::new();
        let stored = ["Amount__c", "Grade__c", "Paid__c", "Note__c", "Gone__c"].map(String::from);
        let fields = r#"{"Amount__c": 1500.5, "Grade__c": "B, \"prime\"", "Paid__c": false, "Note__c": null}"#;
        row(&mut out, "a01000000000001AAA", fields, &stored).expect("row");
        assert_eq!(
            out,
            "a01000000000001AAA,1500.5,\"B, \"\"prime\"\"\",false,,\n"
        );
    }
}
