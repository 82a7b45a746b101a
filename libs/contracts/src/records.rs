//! CRM records as the connector hands them to the feature store.
//!
//! These are the Salesforce fields Sextant reads, already typed: the connector turns the SOQL
//! JSON (`attributes`, explicit nulls, `+0000` datetimes) into these, so the feature store never
//! sees Salesforce's wire quirks.
//!
//! Every record may carry its `system_modstamp` (Salesforce's `SystemModstamp`): the moment the org
//! knew this version of the record. The feature store uses it as the record's **known time** (point-
//! in-time correctness) and to refuse a replayed older version; without it, the ingest time is used.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::SalesforceId;

/// An Account (a customer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccountRecord {
    pub id: SalesforceId,
    pub name: String,
    pub billing_country: Option<String>,
    pub industry: Option<String>,
    pub created_date: DateTime<Utc>,
    pub last_modified_date: DateTime<Utc>,
    /// `SystemModstamp`: when the org knew this version (the known time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

/// A Contact of an Account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContactRecord {
    pub id: SalesforceId,
    pub account_id: Option<SalesforceId>,
    pub first_name: Option<String>,
    pub last_name: String,
    pub email: Option<String>,
    pub last_modified_date: DateTime<Utc>,
    /// `SystemModstamp`: when the org knew this version (the known time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

/// A Product2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProductRecord {
    pub id: SalesforceId,
    pub name: String,
    pub product_code: Option<String>,
    /// `Family`: the catalogue's product family; the product's category when present.
    #[serde(default)]
    pub family: Option<String>,
    pub last_modified_date: DateTime<Utc>,
    /// `SystemModstamp`: when the org knew this version (the known time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

/// An Order placed by an Account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderRecord {
    pub id: SalesforceId,
    pub account_id: SalesforceId,
    pub effective_date: NaiveDate,
    pub status: String,
    pub order_number: Option<String>,
    pub last_modified_date: DateTime<Utc>,
    /// `SystemModstamp`: when the org knew this version (the known time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

/// One line of an Order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderItemRecord {
    pub id: SalesforceId,
    pub order_id: SalesforceId,
    pub product_id: Option<SalesforceId>,
    pub quantity: f64,
    pub unit_price: f64,
    pub last_modified_date: DateTime<Utc>,
    /// `SystemModstamp`: when the org knew this version (the known time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

/// A support Case, with its free-text description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CaseRecord {
    pub id: SalesforceId,
    pub account_id: Option<SalesforceId>,
    pub subject: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub created_date: DateTime<Utc>,
    pub last_modified_date: DateTime<Utc>,
    /// `SystemModstamp`: when the org knew this version (the known time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

/// A generic engagement event (web visit, email open, Data Cloud engagement…) of an Account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EngagementEventRecord {
    /// The event's id in its source (Salesforce Id, Data Cloud key…), 1..=255 characters.
    #[schema(min_length = 1, max_length = 255)]
    pub id: String,
    pub account_id: SalesforceId,
    /// Free-form type, e.g. `email_open`, `web_visit`; 1..=80 characters.
    #[schema(min_length = 1, max_length = 80)]
    pub event_type: String,
    /// When it happened (the event time).
    pub occurred_at: DateTime<Utc>,
    /// Optional magnitude (duration, amount…).
    #[serde(default)]
    pub value: Option<f64>,
    /// When the source knew it (the known time); the ingest time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_modstamp: Option<DateTime<Utc>>,
}

/// One record of any object — standard or custom (`Loan__c`) — that a prediction definition
/// trains on: its Id, its known time and the synced fields as Salesforce sent them.
///
/// Why wire values in a JSON object, not typed columns: the objects and fields are the org's
/// own, unknown when Sextant is built; the store keeps what was synced and the reader (the
/// propensity model's inference of numeric and categorical columns) decides what a value means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ObjectRecord {
    pub id: SalesforceId,
    /// `SystemModstamp`: the known time; the ingest time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_modstamp: Option<DateTime<Utc>>,
    /// Field API name → wire value: a string, number, boolean or null (a missing value). At most
    /// 800 fields; names are API names.
    #[schema(value_type = Object)]
    pub fields: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Whether `name` is a Salesforce API name (object or field): a letter, then letters, digits and
/// underscores, at most 80 characters. SOQL has no identifier quoting, so names are checked
/// against this before they go into a query, a table key or a URL.
#[must_use]
pub fn is_api_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.len() <= 80
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
