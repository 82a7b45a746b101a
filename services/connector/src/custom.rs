//! Configured object mappings: any object a customer keeps behaviour in — a standard or custom
//! (`__c`) Salesforce object, or a Data Cloud object (`…__dlm`, `…__dll`) — synced into the
//! feature store as engagement events; and any Salesforce object a prediction definition trains
//! on, synced as **records** (target `record`: the Id, `SystemModstamp` and the named fields as
//! Salesforce sent them), which the trainer reads back from the store's
//! `GET /v1/records/{object}`.
//!
//! # Why describe first
//! Sextant runs on orgs nobody here has seen, so a mapping is a claim about someone else's
//! schema. At the start of every sync the connector describes each configured Salesforce
//! object and checks the object is queryable and that every named field exists with a
//! compatible type (a reference or id for the account, a date or datetime for the event time,
//! a number for the value, text for the type). A mapping that does not fit fails the sync with
//! the object and field named — never a silent skip, and never a sync that writes zeros. A Data
//! Cloud object is checked the same way against the column types Query API v2 reports.
//!
//! # Why names are validated, not quoted
//! SOQL has no identifier quoting. Every object and field name in a mapping must be an API name
//! (a letter, then letters, digits and underscores, at most 80 characters), checked when the
//! settings load, and the SOQL/SQL is then built from the names describe answered (the org's
//! own spelling). Anything else — spaces, quotes, parentheses — is refused with the offending
//! name, so no configuration can smuggle a clause into a query.
//!
//! # Rows
//! Rows are read with the same machinery as the built-in objects (watermark on
//! `SystemModstamp, Id`, `queryAll` tombstones, Bulk API 2.0 above the threshold, quarantine;
//! see [`crate::sync`]). A row without an account reference or an event time is quarantined
//! with its reason; an empty value field is `None`, never 0.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use sextant_contracts::SalesforceId;
use sextant_contracts::api::{Deletion, IngestBatch, IngestObject};
pub use sextant_contracts::records::is_api_name;
use sextant_contracts::records::{EngagementEventRecord, ObjectRecord};
use sextant_salesforce::wire::{FieldError, Record, SObjectDescribe, parse_datetime};

use crate::mapping::MappingError;

/// The store entity a mapping feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// `EngagementEventRecord`: id, account, event type, event time, optional value.
    EngagementEvent,
    /// `ObjectRecord`: the record's Id, known time and the mapping's `fields` as wire values
    /// (what a prediction definition on the object trains on).
    Record,
}

impl Target {
    /// The ingest object of the entity.
    pub fn ingest_object(self) -> IngestObject {
        match self {
            Self::EngagementEvent => IngestObject::EngagementEvent,
            Self::Record => IngestObject::Record,
        }
    }
}

/// Where a mapping reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A Salesforce object (standard or custom), read with SOQL or Bulk API 2.0.
    #[default]
    Salesforce,
    /// A Data Cloud object (DMO `…__dlm` or DLO `…__dll`), read with Query API v2.
    DataCloud,
}

/// One configured mapping (`[[object_mappings]]` in the connector's settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectMapping {
    /// The source object's API name: `Web_Visit__c`, `Task`, `ssot__Engagement__dlm`…
    pub source: String,
    /// `salesforce` (default) or `data_cloud`.
    #[serde(default)]
    pub kind: SourceKind,
    /// The store entity it feeds (`engagement_event` or `record`).
    pub target: Target,
    /// Engagement events: the field holding the Account Id (a reference to Account, or an id).
    #[serde(default)]
    pub account: String,
    /// Engagement events: the field holding when the event happened (date or datetime).
    #[serde(default)]
    pub occurred_at: String,
    /// Records: the fields to sync (any type but compound and binary ones), e.g. the label and
    /// features of a prediction definition; the Id and `SystemModstamp` always come along.
    #[serde(default)]
    pub fields: Vec<String>,
    /// The field holding the event's magnitude (a number, currency or percent); optional.
    #[serde(default)]
    pub value: Option<String>,
    /// A constant event type (`web_visit`), 1..=80 characters…
    #[serde(default)]
    pub event_type: Option<String>,
    /// …or the field holding it (text or picklist); exactly one of the two.
    #[serde(default)]
    pub event_type_field: Option<String>,
    /// Data Cloud only: the key column (a Salesforce object's key is always `Id`).
    #[serde(default)]
    pub id_field: Option<String>,
    /// Data Cloud only: the column a sync is incremental on (last-modified time; a Salesforce
    /// object always uses `SystemModstamp`).
    #[serde(default)]
    pub modstamp_field: Option<String>,
    /// Only rows whose `field` is one of `values` are events (e.g. a status picklist).
    #[serde(default)]
    pub filter: Option<Filter>,
}

/// Which rows count: `field` (text or picklist) equal to one of `values`.
///
/// Applied by the connector, not in SOQL: every row is read, and a row that does not match is
/// sent as a tombstone at its modstamp, so a record whose status moves out of the filter
/// leaves the store on the next incremental sync instead of staying there at its old version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub field: String,
    pub values: Vec<String>,
}

/// Mappings from the settings file (a `[[object_mappings]]` array) or from one environment
/// variable holding the same array as JSON (`SEXTANT_CONNECTOR__OBJECT_MAPPINGS='[{…}]'`).
pub fn list_or_json<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ObjectMapping>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<ObjectMapping>),
        Json(String),
    }
    match Either::deserialize(d)? {
        Either::List(l) => Ok(l),
        Either::Json(s) if s.trim().is_empty() => Ok(Vec::new()),
        Either::Json(s) => serde_json::from_str(&s).map_err(serde::de::Error::custom),
    }
}

/// A mapping that cannot work, with the object (and field) named.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("object mapping {object}: {problem}")]
pub struct MappingConfigError {
    pub object: String,
    pub problem: String,
}

fn config_error(object: &str, problem: impl Into<String>) -> MappingConfigError {
    MappingConfigError {
        object: object.chars().take(100).collect(),
        problem: problem.into(),
    }
}

fn check_name(object: &str, what: &str, name: &str) -> Result<(), MappingConfigError> {
    if is_api_name(name) {
        Ok(())
    } else {
        Err(config_error(
            object,
            format!(
                "{what} {:?} is not an API name (a letter, then letters, digits and underscores, \
                 at most 80 characters); refused so it cannot change the query",
                name.chars().take(100).collect::<String>()
            ),
        ))
    }
}

impl ObjectMapping {
    /// The fields a mapping names, with what each is for.
    fn named_fields(&self) -> Vec<(&'static str, &str)> {
        let mut out = match self.target {
            Target::EngagementEvent => vec![
                ("account", self.account.as_str()),
                ("occurred_at", self.occurred_at.as_str()),
            ],
            Target::Record => self.fields.iter().map(|f| ("fields", f.as_str())).collect(),
        };
        if let Some(v) = &self.value {
            out.push(("value", v));
        }
        if let Some(t) = &self.event_type_field {
            out.push(("event_type_field", t));
        }
        if let Some(f) = &self.id_field {
            out.push(("id_field", f));
        }
        if let Some(f) = &self.modstamp_field {
            out.push(("modstamp_field", f));
        }
        if let Some(f) = &self.filter {
            out.push(("filter", &f.field));
        }
        out
    }

    /// Checks what can be checked without the org: names, the event type, Data Cloud keys.
    pub fn validate(&self) -> Result<(), MappingConfigError> {
        let o = self.source.as_str();
        check_name(o, "source", o)?;
        if crate::mapping::fields_of(o).is_some() {
            return Err(config_error(
                o,
                "is a built-in synced object; map a different object",
            ));
        }
        for (what, name) in self.named_fields() {
            check_name(o, what, name)?;
        }
        if self.target == Target::Record {
            return self.validate_record();
        }
        if !self.fields.is_empty() {
            return Err(config_error(
                o,
                "fields is for target record; an engagement_event mapping names account, occurred_at…",
            ));
        }
        match (&self.event_type, &self.event_type_field) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(config_error(
                    o,
                    "set exactly one of event_type (a constant) and event_type_field",
                ));
            }
            (Some(t), None) if t.trim().is_empty() || t.chars().count() > 80 => {
                return Err(config_error(o, "event_type must be 1..=80 characters"));
            }
            _ => {}
        }
        if self.filter.as_ref().is_some_and(|f| f.values.is_empty()) {
            return Err(config_error(
                o,
                "filter.values is empty: no row would count",
            ));
        }
        match self.kind {
            SourceKind::Salesforce => {
                if self.id_field.is_some() || self.modstamp_field.is_some() {
                    return Err(config_error(
                        o,
                        "id_field and modstamp_field are for Data Cloud objects (a Salesforce \
                         object is keyed by Id and synced on SystemModstamp)",
                    ));
                }
            }
            SourceKind::DataCloud => {
                if self.id_field.is_none() || self.modstamp_field.is_none() {
                    return Err(config_error(
                        o,
                        "a Data Cloud mapping needs id_field (its key) and modstamp_field (the \
                         column syncs are incremental on)",
                    ));
                }
            }
        }
        Ok(())
    }
}

impl ObjectMapping {
    /// The rest of [`ObjectMapping::validate`] for a `record` mapping.
    fn validate_record(&self) -> Result<(), MappingConfigError> {
        let o = self.source.as_str();
        if self.kind != SourceKind::Salesforce {
            return Err(config_error(
                o,
                "target record reads Salesforce objects (Data Cloud objects feed engagement events)",
            ));
        }
        if self.fields.is_empty() {
            return Err(config_error(
                o,
                "a record mapping names its fields (at least one)",
            ));
        }
        if self.fields.len() > 800 {
            return Err(config_error(o, "a record mapping names at most 800 fields"));
        }
        let mut seen = HashSet::new();
        for f in &self.fields {
            if ["id", "systemmodstamp", "isdeleted"].contains(&f.to_ascii_lowercase().as_str()) {
                return Err(config_error(
                    o,
                    format!("{f} always comes along with a record; do not list it in fields"),
                ));
            }
            if !seen.insert(f.to_ascii_lowercase()) {
                return Err(config_error(o, format!("field {f} is listed twice")));
            }
        }
        let event_settings = [
            ("account", !self.account.is_empty()),
            ("occurred_at", !self.occurred_at.is_empty()),
            ("value", self.value.is_some()),
            ("event_type", self.event_type.is_some()),
            ("event_type_field", self.event_type_field.is_some()),
            ("id_field", self.id_field.is_some()),
            ("modstamp_field", self.modstamp_field.is_some()),
        ];
        if let Some((name, _)) = event_settings.iter().find(|(_, set)| *set) {
            return Err(config_error(
                o,
                format!("{name} is for engagement_event mappings, not target record"),
            ));
        }
        if self.filter.as_ref().is_some_and(|f| f.values.is_empty()) {
            return Err(config_error(
                o,
                "filter.values is empty: no row would count",
            ));
        }
        Ok(())
    }
}

/// Checks a list of mappings (each alone, and no source twice).
pub fn validate_all(mappings: &[ObjectMapping]) -> Result<(), MappingConfigError> {
    let mut seen = HashSet::new();
    for m in mappings {
        m.validate()?;
        if !seen.insert(m.source.to_ascii_lowercase()) {
            return Err(config_error(&m.source, "is mapped twice"));
        }
    }
    Ok(())
}

/// What a column of the source may be for one role.
#[derive(Debug, Clone, Copy)]
enum Role {
    Account,
    Time,
    Value,
    Text,
    Key,
}

impl Role {
    fn of(what: &str) -> Self {
        match what {
            "account" => Self::Account,
            "occurred_at" | "modstamp_field" => Self::Time,
            "value" => Self::Value,
            "id_field" => Self::Key,
            _ => Self::Text,
        }
    }
    fn expected(self) -> &'static str {
        match self {
            Self::Account => "a reference to Account or an id",
            Self::Time => "a date or datetime",
            Self::Value => "a number, currency or percent",
            Self::Text | Self::Key => "text or a picklist",
        }
    }
    /// Whether a describe `type` fits.
    fn accepts_salesforce(self, t: &str) -> bool {
        match self {
            Self::Account => matches!(t, "reference" | "id"),
            Self::Time => matches!(t, "date" | "datetime"),
            Self::Value => matches!(t, "double" | "currency" | "percent" | "int" | "long"),
            Self::Text | Self::Key => matches!(
                t,
                "string" | "picklist" | "textarea" | "id" | "reference" | "email" | "url"
            ),
        }
    }
    /// Whether a Query API v2 column type (`VARCHAR`, `DECIMAL`, `TIMESTAMP`…) fits.
    fn accepts_data_cloud(self, t: &str) -> bool {
        let t = t.to_ascii_uppercase();
        match self {
            Self::Account | Self::Text | Self::Key => {
                matches!(t.as_str(), "VARCHAR" | "CHAR" | "TEXT" | "STRING")
            }
            Self::Time => t.starts_with("TIMESTAMP") || t == "DATE",
            Self::Value => matches!(
                t.as_str(),
                "DECIMAL"
                    | "NUMERIC"
                    | "NUMBER"
                    | "DOUBLE"
                    | "FLOAT"
                    | "REAL"
                    | "INTEGER"
                    | "BIGINT"
                    | "SMALLINT"
            ),
        }
    }
}

/// A mapping checked against the org: the names as the org spells them, ready to query and map.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedMapping {
    pub source: String,
    pub kind: SourceKind,
    pub target: Target,
    /// The key and incremental columns (`Id`, `SystemModstamp` for Salesforce objects).
    pub id_field: String,
    pub modstamp_field: String,
    pub account: String,
    pub occurred_at: String,
    pub value: Option<String>,
    pub event_type: EventType,
    /// The filter column (as the org spells it) and the values that count.
    pub filter: Option<(String, Vec<String>)>,
    /// Target `record`: the synced fields as the org spells them (the event columns above are
    /// then empty).
    pub fields: Vec<String>,
}

/// The event type: a constant or a field.
#[derive(Debug, Clone, PartialEq)]
pub enum EventType {
    Constant(String),
    Field(String),
}

impl ResolvedMapping {
    /// The columns read, key and incremental column first, without repeats.
    pub fn columns(&self) -> Vec<&str> {
        let mut candidates: Vec<&str> = vec![&self.id_field, &self.modstamp_field];
        if self.target == Target::Record {
            candidates.extend(self.fields.iter().map(String::as_str));
        } else {
            candidates.extend([self.account.as_str(), self.occurred_at.as_str()]);
        }
        if let Some(v) = &self.value {
            candidates.push(v);
        }
        if let EventType::Field(f) = &self.event_type {
            candidates.push(f);
        }
        if let Some((f, _)) = &self.filter {
            candidates.push(f);
        }
        let mut out: Vec<&str> = Vec::with_capacity(candidates.len());
        for c in candidates {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(c)) {
                out.push(c);
            }
        }
        out
    }

    /// The SOQL field list.
    pub fn field_list(&self) -> String {
        self.columns().join(", ")
    }

    /// The Data Cloud SQL from the watermark's stamp (inclusive; the caller drops rows the
    /// watermark covers), in `modstamp, id` order.
    pub fn data_cloud_sql(&self, from: Option<DateTime<Utc>>) -> String {
        let filter = from
            .map(|t| {
                format!(
                    " WHERE {} >= '{}'",
                    self.modstamp_field,
                    t.format("%Y-%m-%dT%H:%M:%S%.3fZ")
                )
            })
            .unwrap_or_default();
        format!(
            "SELECT {} FROM {}{filter} ORDER BY {}, {}",
            self.field_list(),
            self.source,
            self.modstamp_field,
            self.id_field
        )
    }

    /// Maps rows into a batch of the target; the rows that cannot be mapped come back with
    /// their reasons (to be quarantined), and the rows the filter leaves out as tombstones.
    pub fn to_batch(
        &self,
        rows: &[Map<String, Value>],
    ) -> (IngestBatch, Vec<MappingError>, Vec<Deletion>) {
        let mut errors = Vec::new();
        let mut excluded = Vec::new();
        let mut events = Vec::with_capacity(rows.len());
        let mut records = Vec::new();
        for row in rows {
            if let Some((field, values)) = &self.filter {
                let value = row.get(field).and_then(Value::as_str).unwrap_or_default();
                if !values.iter().any(|v| v == value) {
                    let id = row.get(&self.id_field).and_then(Value::as_str);
                    let at = time_value(&Record(row), &self.modstamp_field)
                        .ok()
                        .flatten();
                    match (id, at) {
                        (Some(id), Some(deleted_at)) if !id.is_empty() => {
                            excluded.push(Deletion {
                                id: self.event_id(id.to_owned()),
                                deleted_at,
                            });
                        }
                        _ => errors.push(MappingError {
                            object: self.source.clone(),
                            id: id.unwrap_or("?").to_owned(),
                            problem: format!(
                                "left out by the filter on {field}, but without an id and \
                                 modstamp to remove it by"
                            ),
                        }),
                    }
                    continue;
                }
            }
            let mapped = match self.target {
                Target::EngagementEvent => self.event(Record(row)).map(|e| events.push(e)),
                Target::Record => self.record(Record(row), row).map(|r| records.push(r)),
            };
            match mapped {
                Ok(()) => {}
                Err(e) => errors.push(MappingError {
                    object: self.source.clone(),
                    id: row
                        .get(&self.id_field)
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_owned(),
                    problem: e.to_string(),
                }),
            }
        }
        match self.target {
            Target::EngagementEvent => (IngestBatch::EngagementEvent(events), errors, excluded),
            Target::Record => (
                IngestBatch::Record(self.source.clone(), records),
                errors,
                excluded,
            ),
        }
    }

    /// The store id of a row's key: Salesforce Ids are unique across objects; Data Cloud keys
    /// are unique only within their object, so they are qualified by it (two DMOs may both
    /// have a key `1`).
    fn event_id(&self, key: String) -> String {
        match self.kind {
            SourceKind::Salesforce => key,
            SourceKind::DataCloud => format!("{}/{key}", self.source),
        }
    }

    /// A row as a record: its Id, `SystemModstamp` and each field's wire value as Salesforce
    /// sent it (null, or absent from a Bulk API CSV row, is a missing value; an empty Bulk CSV
    /// cell is one too, never an empty string or 0).
    fn record(&self, r: Record<'_>, row: &Map<String, Value>) -> Result<ObjectRecord, FieldError> {
        let bad = |field: &str, problem: String| FieldError {
            field: field.to_owned(),
            problem,
        };
        let raw = non_empty(r.opt_str(&self.id_field)?)
            .ok_or_else(|| bad(&self.id_field, "no id".into()))?;
        let id = SalesforceId::parse(&raw)
            .map_err(|e| bad(&self.id_field, format!("not a Salesforce Id: {e}")))?;
        let fields = self
            .fields
            .iter()
            .map(|f| {
                let v = match row.get(f) {
                    None => Value::Null,
                    Some(Value::String(s)) if s.is_empty() => Value::Null,
                    Some(v) => v.clone(),
                };
                (f.clone(), v)
            })
            .collect();
        Ok(ObjectRecord {
            id,
            system_modstamp: time_value(&r, &self.modstamp_field)?,
            fields,
        })
    }

    fn event(&self, r: Record<'_>) -> Result<EngagementEventRecord, FieldError> {
        let bad = |field: &str, problem: String| FieldError {
            field: field.to_owned(),
            problem,
        };
        let key = non_empty(r.opt_str(&self.id_field)?)
            .ok_or_else(|| bad(&self.id_field, "no id".into()))?;
        let id = self.event_id(key);
        if id.chars().count() > 255 {
            return Err(bad(&self.id_field, "longer than 255 characters".into()));
        }
        let account_raw = non_empty(r.opt_str(&self.account)?)
            .ok_or_else(|| bad(&self.account, "no account reference".into()))?;
        let account_id = SalesforceId::parse(&account_raw)
            .map_err(|e| bad(&self.account, format!("not an account id: {e}")))?;
        let occurred_at = time_value(&r, &self.occurred_at)?
            .ok_or_else(|| bad(&self.occurred_at, "no event time".into()))?;
        let value = match &self.value {
            None => None,
            // An empty value is unknown, not zero.
            Some(f) => match r.opt_str(f) {
                Ok(Some(s)) if s.trim().is_empty() => None,
                _ => r.opt_f64(f)?,
            },
        };
        let event_type = match &self.event_type {
            EventType::Constant(c) => c.clone(),
            EventType::Field(f) => non_empty(r.opt_str(f)?)
                .ok_or_else(|| bad(f, "no event type".into()))?
                .chars()
                .take(80)
                .collect(),
        };
        Ok(EngagementEventRecord {
            id,
            account_id,
            event_type,
            occurred_at,
            value,
            system_modstamp: time_value(&r, &self.modstamp_field)?,
        })
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// A date or datetime column (a date is its midnight UTC); an empty one is `None`.
fn time_value(r: &Record<'_>, field: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
    let Some(raw) = non_empty(r.opt_str(field)?) else {
        return Ok(None);
    };
    if let Some(t) = parse_datetime(&raw) {
        return Ok(Some(t));
    }
    NaiveDate::parse_from_str(&raw, "%Y-%m-%d")
        .map(|d| Some(d.and_time(NaiveTime::MIN).and_utc()))
        .map_err(|_| FieldError {
            field: field.to_owned(),
            problem: format!("not a date or datetime: {raw}"),
        })
}

/// Checks a Salesforce mapping against the object's describe, answering the org's spelling.
pub fn resolve_salesforce(
    m: &ObjectMapping,
    describe: &SObjectDescribe,
) -> Result<ResolvedMapping, MappingConfigError> {
    let o = describe.name.as_str();
    if !describe.queryable {
        return Err(config_error(o, "is not queryable by the integration user"));
    }
    let resolved = |what: &'static str, name: &str| -> Result<String, MappingConfigError> {
        let role = Role::of(what);
        let Some(f) = describe.field(name) else {
            return Err(config_error(
                o,
                format!("field {name} ({what}) does not exist on {o}"),
            ));
        };
        if f.deprecated_and_hidden {
            return Err(config_error(
                o,
                format!("field {} ({what}) is deprecated and hidden", f.name),
            ));
        }
        if !role.accepts_salesforce(&f.field_type) {
            return Err(config_error(
                o,
                format!(
                    "field {} ({what}) is of type {}, expected {}",
                    f.name,
                    f.field_type,
                    role.expected()
                ),
            ));
        }
        if matches!(role, Role::Account)
            && f.field_type == "reference"
            && !f.reference_to.is_empty()
            && !f.reference_to.iter().any(|t| t == "Account")
        {
            return Err(config_error(
                o,
                format!(
                    "field {} ({what}) refers to {}, not to Account",
                    f.name,
                    f.reference_to.join(", ")
                ),
            ));
        }
        Ok(f.name.clone())
    };
    for system in ["Id", "SystemModstamp", "IsDeleted"] {
        if describe.field(system).is_none() {
            return Err(config_error(
                o,
                format!("has no {system} field, which incremental syncs need"),
            ));
        }
    }
    if m.target == Target::Record {
        return resolve_record(m, describe);
    }
    let account = resolved("account", &m.account)?;
    let occurred_at = resolved("occurred_at", &m.occurred_at)?;
    let value = m
        .value
        .as_deref()
        .map(|v| resolved("value", v))
        .transpose()?;
    let event_type = match (&m.event_type, &m.event_type_field) {
        (_, Some(f)) => EventType::Field(resolved("event_type_field", f)?),
        (Some(c), None) => EventType::Constant(c.trim().to_owned()),
        (None, None) => return Err(config_error(o, "no event type")),
    };
    let filter = m
        .filter
        .as_ref()
        .map(|f| Ok::<_, MappingConfigError>((resolved("filter", &f.field)?, f.values.clone())))
        .transpose()?;
    Ok(ResolvedMapping {
        source: o.to_owned(),
        kind: SourceKind::Salesforce,
        target: m.target,
        id_field: "Id".into(),
        modstamp_field: "SystemModstamp".into(),
        account,
        occurred_at,
        value,
        event_type,
        filter,
        fields: Vec::new(),
    })
}

/// Describe types whose values are not one scalar a record can carry: compound fields (read
/// through their components), binary data and polymorphic values.
const UNSYNCABLE_TYPES: [&str; 5] = ["address", "location", "base64", "complexvalue", "anyType"];

/// A `record` mapping checked against the describe: every field exists, is visible and holds
/// one scalar; the names as the org spells them.
fn resolve_record(
    m: &ObjectMapping,
    describe: &SObjectDescribe,
) -> Result<ResolvedMapping, MappingConfigError> {
    let o = describe.name.as_str();
    let mut fields = Vec::with_capacity(m.fields.len());
    for name in &m.fields {
        let Some(f) = describe.field(name) else {
            return Err(config_error(
                o,
                format!("field {name} (fields) does not exist on {o}"),
            ));
        };
        if f.deprecated_and_hidden {
            return Err(config_error(
                o,
                format!("field {} (fields) is deprecated and hidden", f.name),
            ));
        }
        if UNSYNCABLE_TYPES.contains(&f.field_type.as_str()) {
            return Err(config_error(
                o,
                format!(
                    "field {} (fields) is of type {}, which holds no single value; map its components",
                    f.name, f.field_type
                ),
            ));
        }
        fields.push(f.name.clone());
    }
    let filter = match &m.filter {
        None => None,
        Some(flt) => {
            let Some(f) = describe.field(&flt.field) else {
                return Err(config_error(
                    o,
                    format!("field {} (filter) does not exist on {o}", flt.field),
                ));
            };
            Some((f.name.clone(), flt.values.clone()))
        }
    };
    Ok(ResolvedMapping {
        source: o.to_owned(),
        kind: SourceKind::Salesforce,
        target: Target::Record,
        id_field: "Id".into(),
        modstamp_field: "SystemModstamp".into(),
        account: String::new(),
        occurred_at: String::new(),
        value: None,
        event_type: EventType::Constant(String::new()),
        filter,
        fields,
    })
}

/// A Data Cloud mapping with the names as configured (checked against the first answer's
/// column types by [`check_data_cloud_columns`]).
pub fn resolve_data_cloud(m: &ObjectMapping) -> Result<ResolvedMapping, MappingConfigError> {
    let o = m.source.as_str();
    let (Some(id), Some(stamp)) = (&m.id_field, &m.modstamp_field) else {
        return Err(config_error(o, "needs id_field and modstamp_field"));
    };
    Ok(ResolvedMapping {
        source: m.source.clone(),
        kind: SourceKind::DataCloud,
        target: m.target,
        id_field: id.clone(),
        modstamp_field: stamp.clone(),
        account: m.account.clone(),
        occurred_at: m.occurred_at.clone(),
        value: m.value.clone(),
        event_type: match (&m.event_type, &m.event_type_field) {
            (_, Some(f)) => EventType::Field(f.clone()),
            (Some(c), None) => EventType::Constant(c.trim().to_owned()),
            (None, None) => return Err(config_error(o, "no event type")),
        },
        filter: m
            .filter
            .as_ref()
            .map(|f| (f.field.clone(), f.values.clone())),
        fields: Vec::new(),
    })
}

/// Checks the column types Query API v2 reported for a Data Cloud mapping's query.
pub fn check_data_cloud_columns(
    m: &ResolvedMapping,
    columns: &[sextant_salesforce::datacloud::Column],
) -> Result<(), MappingConfigError> {
    let o = m.source.as_str();
    let mut roles: Vec<(&'static str, &str)> = vec![
        ("id_field", &m.id_field),
        ("modstamp_field", &m.modstamp_field),
        ("account", &m.account),
        ("occurred_at", &m.occurred_at),
    ];
    if let Some(v) = &m.value {
        roles.push(("value", v));
    }
    if let EventType::Field(f) = &m.event_type {
        roles.push(("event_type_field", f));
    }
    if let Some((f, _)) = &m.filter {
        roles.push(("filter", f));
    }
    for (what, name) in roles {
        let Some(c) = columns.iter().find(|c| c.name.eq_ignore_ascii_case(name)) else {
            return Err(config_error(
                o,
                format!("column {name} ({what}) is not in Data Cloud's answer for {o}"),
            ));
        };
        let role = Role::of(what);
        if !role.accepts_data_cloud(&c.type_name) {
            return Err(config_error(
                o,
                format!(
                    "column {} ({what}) is of type {}, expected {}",
                    c.name,
                    c.type_name,
                    role.expected()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> ObjectMapping {
        ObjectMapping {
            source: "Web_Visit__c".into(),
            kind: SourceKind::Salesforce,
            target: Target::EngagementEvent,
            account: "Account__c".into(),
            occurred_at: "Visit_Date__c".into(),
            value: Some("Duration_Seconds__c".into()),
            event_type: Some("web_visit".into()),
            event_type_field: None,
            id_field: None,
            modstamp_field: None,
            filter: None,
            fields: Vec::new(),
        }
    }

    #[test]
    fn names_that_could_change_a_query_are_refused() {
        assert!(mapping().validate().is_ok());
        for bad in [
            "Web_Visit__c WHERE Id != null",
            "Visit'--",
            "a,b",
            "",
            "1Field",
            "Field)",
        ] {
            let mut m = mapping();
            m.occurred_at = bad.into();
            let e = m.validate().expect_err(bad);
            assert!(e.problem.contains("not an API name"), "{e}");
            assert!(e.to_string().contains("Web_Visit__c"), "{e}");
        }
        let mut m = mapping();
        m.source = "Account".into();
        assert!(m.validate().is_err(), "built-ins are not remapped");
        let mut m = mapping();
        m.event_type_field = Some("Channel__c".into());
        assert!(m.validate().is_err(), "two event types");
        assert!(validate_all(&[mapping(), mapping()]).is_err(), "twice");
    }

    #[test]
    fn rows_without_account_or_time_are_refused_and_empty_values_are_none() {
        let r = ResolvedMapping {
            source: "Web_Visit__c".into(),
            kind: SourceKind::Salesforce,
            target: Target::EngagementEvent,
            id_field: "Id".into(),
            modstamp_field: "SystemModstamp".into(),
            account: "Account__c".into(),
            occurred_at: "Visit_Date__c".into(),
            value: Some("Duration_Seconds__c".into()),
            event_type: EventType::Field("Channel__c".into()),
            filter: None,
            fields: Vec::new(),
        };
        let row = |id: &str, account: Value, at: Value, value: Value| {
            serde_json::json!({"Id": id, "SystemModstamp": "2011-01-10T09:00:00.000+0000",
                "Account__c": account, "Visit_Date__c": at, "Duration_Seconds__c": value,
                "Channel__c": "Web"})
            .as_object()
            .cloned()
            .unwrap_or_default()
        };
        let rows = [
            row(
                "a0V5g0000000001",
                "0015g0000000001".into(),
                "2011-01-09".into(),
                Value::Null,
            ),
            // Bulk API CSV: an empty cell.
            row(
                "a0V5g0000000002",
                "0015g0000000001".into(),
                "2011-01-09T10:00:00.000Z".into(),
                "".into(),
            ),
            row(
                "a0V5g0000000003",
                "0015g0000000001".into(),
                "2011-01-09T10:00:00.000Z".into(),
                "12.5".into(),
            ),
            row(
                "a0V5g0000000004",
                Value::Null,
                "2011-01-09".into(),
                1.into(),
            ),
            row(
                "a0V5g0000000005",
                "0015g0000000001".into(),
                Value::Null,
                1.into(),
            ),
        ];
        let (IngestBatch::EngagementEvent(events), errors, _) = r.to_batch(&rows) else {
            panic!("engagement events");
        };
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].value, None, "null is unknown, not 0");
        assert_eq!(events[1].value, None, "an empty cell is unknown, not 0");
        assert_eq!(events[2].value, Some(12.5));
        assert_eq!(events[0].event_type, "Web");
        assert_eq!(
            events[0].occurred_at.to_rfc3339(),
            "2011-01-09T00:00:00+00:00"
        );
        assert_eq!(errors.len(), 2);
        assert!(
            errors[0].id.ends_with("4") && errors[0].problem.contains("no account reference"),
            "{}",
            errors[0]
        );
        assert!(errors[1].problem.contains("no event time"), "{}", errors[1]);
        assert_eq!(
            r.field_list(),
            "Id, SystemModstamp, Account__c, Visit_Date__c, Duration_Seconds__c, Channel__c"
        );
        assert_eq!(events[0].id, "a0V5g0000000001", "a Salesforce Id as it is");
        let dc = ResolvedMapping {
            kind: SourceKind::DataCloud,
            source: "ssot__Engagement__dlm".into(),
            ..r
        };
        let (IngestBatch::EngagementEvent(events), _, _) = dc.to_batch(&rows[..1]) else {
            panic!("engagement events");
        };
        assert_eq!(
            events[0].id, "ssot__Engagement__dlm/a0V5g0000000001",
            "a Data Cloud key qualified by its object"
        );
        assert_eq!(
            dc.data_cloud_sql(parse_datetime("2011-01-10T09:00:00.000+0000")),
            "SELECT Id, SystemModstamp, Account__c, Visit_Date__c, Duration_Seconds__c, \
             Channel__c FROM ssot__Engagement__dlm WHERE SystemModstamp >= \
             '2011-01-10T09:00:00.000Z' ORDER BY SystemModstamp, Id"
        );
    }

    #[test]
    fn record_rows_keep_wire_values_and_refuse_rows_without_an_id() {
        let r = ResolvedMapping {
            source: "Loan__c".into(),
            kind: SourceKind::Salesforce,
            target: Target::Record,
            id_field: "Id".into(),
            modstamp_field: "SystemModstamp".into(),
            account: String::new(),
            occurred_at: String::new(),
            value: None,
            event_type: EventType::Constant(String::new()),
            filter: None,
            fields: vec!["Defaulted__c".into(), "Amount__c".into(), "Grade__c".into()],
        };
        assert_eq!(
            r.field_list(),
            "Id, SystemModstamp, Defaulted__c, Amount__c, Grade__c"
        );
        let row = |v: Value| v.as_object().cloned().unwrap_or_default();
        let rows = [
            row(
                serde_json::json!({"Id": "a0L5g0000000001", "SystemModstamp": "2011-01-10T09:00:00.000+0000",
                "Defaulted__c": true, "Amount__c": null, "Grade__c": "A"}),
            ),
            // Bulk API CSV: text, and an empty cell for a missing amount.
            row(
                serde_json::json!({"Id": "a0L5g0000000002", "SystemModstamp": "2011-01-10T09:00:00.000Z",
                "Defaulted__c": "false", "Amount__c": "", "Grade__c": "B"}),
            ),
            row(
                serde_json::json!({"Id": "", "SystemModstamp": "2011-01-10T09:00:00.000Z",
                "Defaulted__c": "false", "Amount__c": "1", "Grade__c": "B"}),
            ),
        ];
        let (IngestBatch::Record(object, records), errors, _) = r.to_batch(&rows) else {
            panic!("records");
        };
        assert_eq!(object, "Loan__c");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].fields["Defaulted__c"], Value::Bool(true));
        assert_eq!(records[0].fields["Amount__c"], Value::Null);
        assert_eq!(
            records[1].fields["Amount__c"],
            Value::Null,
            "empty is missing, not 0"
        );
        assert_eq!(
            records[1].system_modstamp.map(|t| t.to_rfc3339()),
            Some("2011-01-10T09:00:00+00:00".into())
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].problem.contains("no id"), "{}", errors[0]);
    }
}
