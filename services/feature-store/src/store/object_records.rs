//! Records of any object (standard or custom) that a prediction definition trains on: versioned
//! ingest into `fs_record` and keyset-paged reads of the current rows.
//!
//! The rules are the other objects' (see [`crate::store`]): a version is kept by its known time
//! (`SystemModstamp`, else the ingest time) with `ON CONFLICT DO NOTHING`, so a replay or an
//! older version changes nothing current; a deletion is a version with `is_deleted`; each
//! record is checked on its own and refused with its reason. The fields are kept as JSON text
//! of wire values because the objects and fields are the org's own. Every field name ingested
//! is added to `fs_record_field`, the object's field catalogue, which is what a reader's field
//! list is checked against before any row is streamed. These records feed no account features,
//! so an ingest queues no online refresh.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, TransactionTrait};
use sextant_contracts::api::{IngestObject, IngestRequest, IngestResponse, RejectedRecord};
use sextant_contracts::records::ObjectRecord;
pub use sextant_contracts::records::is_api_name;
use sextant_contracts::{ErrorCode, SalesforceId};

use super::{INSERT_CHUNK, Q, Store, micros};

/// The most fields one record may carry (Salesforce allows at most 800 custom fields).
pub const MAX_FIELDS: usize = 800;

/// One checked record version.
struct Version {
    id: String,
    known_us: i64,
    fields: String,
}

/// Parses and checks one record: an Id, API-name fields (not `Id` again, no name twice in other
/// letter case), scalar values.
fn check(raw: &serde_json::Value, now_us: i64) -> Result<(Version, Vec<String>), String> {
    let r: ObjectRecord = super::parse(raw)?;
    if r.fields.len() > MAX_FIELDS {
        return Err(format!(
            "{} fields; at most {MAX_FIELDS} per record",
            r.fields.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for (name, value) in &r.fields {
        if !is_api_name(name) {
            return Err(format!(
                "field name {:?} is not an API name",
                name.chars().take(100).collect::<String>()
            ));
        }
        if name.eq_ignore_ascii_case("Id") {
            return Err("`Id` is the record's id, not one of its fields".into());
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(format!(
                "field {name} is given twice (API names ignore case)"
            ));
        }
        if value.is_array() || value.is_object() {
            return Err(format!(
                "field {name} holds a list or an object; only strings, numbers, booleans and null are wire values"
            ));
        }
    }
    let fields = serde_json::to_string(&r.fields).map_err(|e| e.to_string())?;
    Ok((
        Version {
            id: r.id.to_string(),
            known_us: r.system_modstamp.map_or(now_us, micros),
            fields,
        },
        r.fields.into_keys().collect(),
    ))
}

/// The current rows of one object, a page at a time: `(id, fields as JSON text)`.
pub type RecordPage = Vec<(String, String)>;

impl Store {
    /// Stores records and deletions of the object `req.record_object` names, in one
    /// transaction, with their field names in the catalogue.
    pub(super) async fn ingest_object_records(
        &self,
        org: &str,
        req: &IngestRequest,
        now: DateTime<Utc>,
    ) -> Result<IngestResponse, DbErr> {
        let now_us = micros(now);
        let received = (req.records.len() + req.deletions.len()) as u64;
        let mut rejected = Vec::new();
        let object = req
            .record_object
            .as_deref()
            .filter(|o| is_api_name(o))
            .map(str::to_owned);
        let Some(object) = object else {
            // The handler answers 400 before this; kept so no path stores an unnamed object.
            let reject = |index: usize, id: Option<String>, deletion: bool| RejectedRecord {
                index: index as u64,
                id,
                deletion,
                code: ErrorCode::InvalidRecord,
                message: "record_object must name the object by its API name".into(),
            };
            rejected.extend(
                req.records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| reject(i, super::record_id(r), false)),
            );
            rejected.extend(
                req.deletions
                    .iter()
                    .enumerate()
                    .map(|(i, d)| reject(i, Some(d.id.clone()), true)),
            );
            return Ok(IngestResponse {
                object: IngestObject::Record,
                received,
                written: 0,
                unchanged: 0,
                rejected,
                accounts_refreshed: 0,
            });
        };
        let mut versions = Vec::with_capacity(req.records.len());
        let mut names = BTreeSet::new();
        for (i, raw) in req.records.iter().enumerate() {
            match check(raw, now_us) {
                Ok((v, fields)) => {
                    versions.push(v);
                    names.extend(fields);
                }
                Err(message) => rejected.push(RejectedRecord {
                    index: i as u64,
                    id: super::record_id(raw),
                    deletion: false,
                    code: ErrorCode::InvalidRecord,
                    message: format!("{object}: {message}"),
                }),
            }
        }
        let mut tombstones = Vec::with_capacity(req.deletions.len());
        for (i, d) in req.deletions.iter().enumerate() {
            match SalesforceId::parse(&d.id) {
                Ok(id) => tombstones.push((id.to_string(), micros(d.deleted_at))),
                Err(e) => rejected.push(RejectedRecord {
                    index: i as u64,
                    id: Some(d.id.chars().take(255).collect()),
                    deletion: true,
                    code: ErrorCode::InvalidRecord,
                    message: format!("{object}: deletion id: {e}"),
                }),
            }
        }

        let txn = self.db.begin().await?;
        let mut written = 0u64;
        for chunk in versions.chunks(INSERT_CHUNK) {
            let mut q = Q::new(self.backend);
            let mut tuples = Vec::with_capacity(chunk.len());
            for v in chunk {
                let p = [
                    q.bind(org.to_owned()),
                    q.bind(object.clone()),
                    q.bind(v.id.clone()),
                    q.bind(v.known_us),
                    q.bind(false),
                    q.bind(now_us),
                    q.bind(v.fields.clone()),
                ];
                tuples.push(format!("({})", p.join(", ")));
            }
            q.sql = format!(
                "INSERT INTO fs_record (org_id, object, id, known_us, is_deleted, ingested_us, fields) \
                 VALUES {} ON CONFLICT (org_id, object, id, known_us) DO NOTHING",
                tuples.join(", ")
            );
            written += txn.execute_raw(q.statement()).await?.rows_affected();
        }
        for chunk in tombstones.chunks(INSERT_CHUNK) {
            let mut q = Q::new(self.backend);
            let mut tuples = Vec::with_capacity(chunk.len());
            for (id, known_us) in chunk {
                let p = [
                    q.bind(org.to_owned()),
                    q.bind(object.clone()),
                    q.bind(id.clone()),
                    q.bind(*known_us),
                    q.bind(true),
                    q.bind(now_us),
                ];
                tuples.push(format!("({})", p.join(", ")));
            }
            q.sql = format!(
                "INSERT INTO fs_record (org_id, object, id, known_us, is_deleted, ingested_us) \
                 VALUES {} ON CONFLICT (org_id, object, id, known_us) DO NOTHING",
                tuples.join(", ")
            );
            written += txn.execute_raw(q.statement()).await?.rows_affected();
        }
        let names: Vec<String> = names.into_iter().collect();
        for chunk in names.chunks(INSERT_CHUNK) {
            let mut q = Q::new(self.backend);
            let mut tuples = Vec::with_capacity(chunk.len());
            for name in chunk {
                let p = [
                    q.bind(org.to_owned()),
                    q.bind(object.clone()),
                    q.bind(name.clone()),
                ];
                tuples.push(format!("({})", p.join(", ")));
            }
            q.sql = format!(
                "INSERT INTO fs_record_field (org_id, object, field) VALUES {} \
                 ON CONFLICT (org_id, object, field) DO NOTHING",
                tuples.join(", ")
            );
            txn.execute_raw(q.statement()).await?;
        }
        txn.commit().await?;
        self.keep_statistics("fs_record", written);
        Ok(IngestResponse {
            object: IngestObject::Record,
            received,
            written,
            unchanged: received - rejected.len() as u64 - written,
            rejected,
            accounts_refreshed: 0,
        })
    }

    /// The object as stored (API names ignore case; the exact spelling is preferred) and its
    /// field catalogue, lower-cased name → stored name; `None` when nothing of it was ingested.
    pub async fn record_fields(
        &self,
        org: &str,
        object: &str,
    ) -> Result<Option<(String, BTreeMap<String, String>)>, DbErr> {
        let mut q = Q::new(self.backend);
        let o = q.bind(org.to_owned());
        let name = q.bind(object.to_owned());
        let lower = q.bind(object.to_ascii_lowercase());
        // The catalogue holds one row per field of each object: small, read whole.
        q.sql = format!(
            "SELECT object, field FROM fs_record_field WHERE org_id = {o} \
             AND (object = {name} OR LOWER(object) = {lower}) ORDER BY object, field"
        );
        let rows = Self::rows(&self.db, q).await?;
        let mut by_object: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for r in rows {
            let stored: String = r.try_get("", "object")?;
            let field: String = r.try_get("", "field")?;
            by_object
                .entry(stored)
                .or_default()
                .insert(field.to_ascii_lowercase(), field);
        }
        if let Some(exact) = by_object.remove(object) {
            return Ok(Some((object.to_owned(), exact)));
        }
        Ok(by_object.into_iter().next())
    }

    /// Up to `limit` current (latest, not deleted) records of `object` with ids after `after`, in
    /// id order: one page of a keyset walk over the primary key.
    pub async fn current_records(
        &self,
        org: &str,
        object: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, DbErr> {
        let mut q = Q::new(self.backend);
        let o = q.bind(org.to_owned());
        let obj = q.bind(object.to_owned());
        let from = after.map_or_else(String::new, |a| {
            format!("AND f.id > {}", q.bind(a.to_owned()))
        });
        let n = q.bind(i64::try_from(limit).unwrap_or(i64::MAX));
        q.sql = format!(
            "SELECT f.id AS id, f.fields AS fields FROM fs_record f \
             WHERE f.org_id = {o} AND f.object = {obj} {from} \
               AND f.known_us = (SELECT MAX(g.known_us) FROM fs_record g \
                                 WHERE g.org_id = f.org_id AND g.object = f.object AND g.id = f.id) \
               AND NOT f.is_deleted \
             ORDER BY f.id LIMIT {n}"
        );
        let mut out = Vec::new();
        for r in Self::rows(&self.db, q).await? {
            let id: String = r.try_get("", "id")?;
            let fields: Option<String> = r.try_get("", "fields")?;
            out.push((id, fields.unwrap_or_else(|| "{}".to_owned())));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_checked_one_by_one() {
        let id = SalesforceId::from_parts("a01", "5g", 1).to_string();
        let ok = serde_json::json!({"id": id, "fields": {"Amount__c": 3.5, "Paid__c": true, "Note__c": null}});
        let (v, names) = check(&ok, 7).expect("valid");
        assert_eq!((v.known_us, names.len()), (7, 3));
        for (fields, why) in [
            (serde_json::json!({"Bad Name": 1}), "not an API name"),
            (serde_json::json!({"Id": "x"}), "record's id"),
            (serde_json::json!({"A__c": 1, "a__c": 2}), "twice"),
            (serde_json::json!({"A__c": [1]}), "list or an object"),
        ] {
            let raw = serde_json::json!({"id": id, "fields": fields});
            let err = check(&raw, 0).err().unwrap_or_default();
            assert!(err.contains(why), "{err}");
        }
        let bad_id = serde_json::json!({"id": "nope", "fields": {}});
        assert!(check(&bad_id, 0).is_err());
    }
}
