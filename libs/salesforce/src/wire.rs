//! Salesforce's response bodies, as they are on the wire.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A successful token response (JWT bearer, client credentials, refresh, web server).
///
/// Core Salesforce sends no `expires_in`; `issued_at` is a string of epoch milliseconds and is
/// usually absent in the JWT bearer flow.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub instance_url: String,
    pub id: String,
    /// `Bearer`; absent in some real bodies (restforce's password-flow fixture).
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub issued_at: Option<String>,
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// An OAuth error body: `{"error": "...", "error_description": "..."}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct OAuthError {
    pub error: String,
    #[serde(default)]
    pub error_description: String,
}

/// One element of a REST error array.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestError {
    pub message: String,
    pub error_code: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// The record `attributes` object.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Attributes {
    #[serde(rename = "type")]
    pub object_type: String,
    #[serde(default)]
    pub url: Option<String>,
}

/// One page of a SOQL query.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPage {
    /// Rows of the whole query, the same on every page.
    pub total_size: u64,
    pub done: bool,
    /// Present while `done` is false; relative to `instance_url`.
    #[serde(default)]
    pub next_records_url: Option<String>,
    pub records: Vec<Map<String, Value>>,
}

/// `GET /services/data/vXX.X/sobjects/{Object}/describe`: the parts of an object's metadata a
/// sync checks a configured mapping against (every other key of the body is ignored).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SObjectDescribe {
    /// The object's API name as the org spells it.
    pub name: String,
    #[serde(default)]
    pub custom: bool,
    /// Whether SOQL may read it (false for some setup objects and for the user's missing rights).
    #[serde(default)]
    pub queryable: bool,
    pub fields: Vec<FieldDescribe>,
}

impl SObjectDescribe {
    /// The field of that name, compared case-insensitively as Salesforce does.
    pub fn field(&self, name: &str) -> Option<&FieldDescribe> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// One field of a describe body.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FieldDescribe {
    pub name: String,
    /// `id`, `reference`, `string`, `picklist`, `double`, `currency`, `percent`, `int`, `date`,
    /// `datetime`, `boolean`, `textarea`…
    #[serde(rename = "type")]
    pub field_type: String,
    /// For references: the objects it may point at.
    #[serde(default)]
    pub reference_to: Vec<String>,
    #[serde(default)]
    pub custom: bool,
    #[serde(default)]
    pub deprecated_and_hidden: bool,
}

/// Parses Salesforce datetimes: `2011-07-07T00:37:00.000+0000`, `…+00:00` and `…Z`.
pub fn parse_datetime(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(raw) {
        return Some(dt.with_timezone(&Utc));
    }
    DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|dt| dt.with_timezone(&Utc))
}

/// Formats a datetime the way Salesforce does: milliseconds and a `+0000` offset.
pub fn format_datetime(dt: &DateTime<Utc>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// Why a field of a record could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field {field}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

/// Typed access to the fields of a SOQL record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a>(pub &'a Map<String, Value>);

impl<'a> Record<'a> {
    fn err(field: &str, problem: impl Into<String>) -> FieldError {
        FieldError {
            field: field.to_owned(),
            problem: problem.into(),
        }
    }
    fn get(&self, field: &str) -> Result<&'a Value, FieldError> {
        self.0
            .get(field)
            .ok_or_else(|| Self::err(field, "missing from the record"))
    }
    /// A string field that may be null.
    pub fn opt_str(&self, field: &str) -> Result<Option<String>, FieldError> {
        match self.get(field)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(Self::err(field, format!("expected a string, got {other}"))),
        }
    }
    /// A string field that must not be null.
    pub fn str(&self, field: &str) -> Result<String, FieldError> {
        self.opt_str(field)?
            .ok_or_else(|| Self::err(field, "is null"))
    }
    /// A number field that may be null (numbers are JSON numbers; DECIMAL may be a string).
    pub fn opt_f64(&self, field: &str) -> Result<Option<f64>, FieldError> {
        match self.get(field)? {
            Value::Null => Ok(None),
            Value::Number(n) => Ok(n.as_f64()),
            Value::String(s) => s
                .parse()
                .map(Some)
                .map_err(|_| Self::err(field, "not a number")),
            other => Err(Self::err(field, format!("expected a number, got {other}"))),
        }
    }
    /// A number field that must not be null.
    pub fn f64(&self, field: &str) -> Result<f64, FieldError> {
        self.opt_f64(field)?
            .ok_or_else(|| Self::err(field, "is null"))
    }
    /// A datetime field that must not be null.
    pub fn datetime(&self, field: &str) -> Result<DateTime<Utc>, FieldError> {
        let raw = self.str(field)?;
        parse_datetime(&raw).ok_or_else(|| Self::err(field, format!("not a datetime: {raw}")))
    }
    /// A datetime field that may be null.
    pub fn opt_datetime(&self, field: &str) -> Result<Option<DateTime<Utc>>, FieldError> {
        self.opt_str(field)?
            .map(|raw| {
                parse_datetime(&raw)
                    .ok_or_else(|| Self::err(field, format!("not a datetime: {raw}")))
            })
            .transpose()
    }
    /// A date field (`YYYY-MM-DD`) that must not be null.
    pub fn date(&self, field: &str) -> Result<NaiveDate, FieldError> {
        let raw = self.str(field)?;
        NaiveDate::parse_from_str(&raw, "%Y-%m-%d")
            .map_err(|_| Self::err(field, format!("not a date: {raw}")))
    }
    /// The `attributes` of the record.
    pub fn attributes(&self) -> Result<Attributes, FieldError> {
        serde_json::from_value(self.get("attributes")?.clone())
            .map_err(|e| Self::err("attributes", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn datetimes_in_every_offset_form() {
        let want = Utc
            .with_ymd_and_hms(2011, 7, 7, 0, 37, 0)
            .single()
            .expect("valid");
        for raw in [
            "2011-07-07T00:37:00.000+0000",
            "2011-07-07T00:37:00.000+00:00",
            "2011-07-07T00:37:00Z",
        ] {
            assert_eq!(parse_datetime(raw), Some(want), "{raw}");
        }
        assert_eq!(parse_datetime("2011-07-07T02:37:00.000+0200"), Some(want));
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(format_datetime(&want), "2011-07-07T00:37:00.000+0000");
    }
}
