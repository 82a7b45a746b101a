//! CRM records as the connector hands them to the feature store.
//!
//! These are the Salesforce fields Sextant reads, already typed: the connector turns the SOQL
//! JSON (`attributes`, explicit nulls, `+0000` datetimes) into these, so the feature store never
//! sees Salesforce's wire quirks.

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
}

/// A Product2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProductRecord {
    pub id: SalesforceId,
    pub name: String,
    pub product_code: Option<String>,
    pub last_modified_date: DateTime<Utc>,
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
}
