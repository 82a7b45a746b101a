//! Request and response bodies of the services' HTTP APIs.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::records::{
    AccountRecord, CaseRecord, ContactRecord, OrderItemRecord, OrderRecord, ProductRecord,
};
use crate::{ModelVersion, SalesforceId};

/// The most records one scoring or online-feature call accepts: the size of an Apex trigger
/// chunk, so one trigger batch is one callout.
pub const MAX_RECORDS_PER_CALL: usize = 200;

// ---------------------------------------------------------------- feature store

/// A batch of records of one Salesforce object, upserted by Salesforce Id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "object", content = "records")]
pub enum IngestBatch {
    Account(Vec<AccountRecord>),
    Contact(Vec<ContactRecord>),
    Product2(Vec<ProductRecord>),
    Order(Vec<OrderRecord>),
    OrderItem(Vec<OrderItemRecord>),
    Case(Vec<CaseRecord>),
}

impl IngestBatch {
    /// The Salesforce object name.
    pub fn object(&self) -> &'static str {
        match self {
            Self::Account(_) => "Account",
            Self::Contact(_) => "Contact",
            Self::Product2(_) => "Product2",
            Self::Order(_) => "Order",
            Self::OrderItem(_) => "OrderItem",
            Self::Case(_) => "Case",
        }
    }
    /// How many records the batch holds.
    pub fn len(&self) -> usize {
        match self {
            Self::Account(r) => r.len(),
            Self::Contact(r) => r.len(),
            Self::Product2(r) => r.len(),
            Self::Order(r) => r.len(),
            Self::OrderItem(r) => r.len(),
            Self::Case(r) => r.len(),
        }
    }
    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The outcome of one ingest call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IngestResponse {
    pub object: String,
    /// Records in the batch; all were written (upserted) in one transaction.
    pub upserted: u64,
    /// Records of this object now in the store.
    pub total: u64,
}

/// Asks for a point-in-time training set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainingSetRequest {
    /// Features use only orders dated strictly before this day.
    pub cutoff: NaiveDate,
    /// Label: `true` (churned) when the account places no order in `[cutoff, cutoff + horizon_days)`.
    pub horizon_days: u32,
}

/// One labelled example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainingRow {
    pub account_id: SalesforceId,
    /// In the order of `feature_names`.
    pub features: Vec<f64>,
    pub churned: bool,
}

/// A point-in-time-correct training set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainingSet {
    pub cutoff: NaiveDate,
    pub horizon_days: u32,
    pub feature_names: Vec<String>,
    /// Accounts with at least one order before the cutoff.
    pub rows: Vec<TrainingRow>,
}

/// Asks for the latest features of up to 200 accounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OnlineFeaturesRequest {
    #[schema(max_items = 200, min_items = 1)]
    pub account_ids: Vec<SalesforceId>,
}

/// Features of one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FeatureRow {
    pub account_id: SalesforceId,
    pub features: Vec<f64>,
}

/// The latest features, as of the store's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OnlineFeatures {
    pub as_of: NaiveDate,
    pub feature_names: Vec<String>,
    pub rows: Vec<FeatureRow>,
    /// Requested ids that are not accounts in the store.
    pub missing: Vec<SalesforceId>,
}

/// A page of account ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccountPage {
    pub account_ids: Vec<SalesforceId>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<SalesforceId>,
}

// ---------------------------------------------------------------- trainer

/// Starts a training job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainJobRequest {
    pub cutoff: NaiveDate,
    pub horizon_days: u32,
    /// Passes over the training set; default 100.
    #[serde(default)]
    pub epochs: Option<u32>,
    /// Seed for initialisation; default 42.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
}

/// A training job and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainJob {
    pub id: String,
    pub state: JobState,
    pub epochs_done: u32,
    pub epochs_total: u32,
    /// Training loss after the last finished epoch.
    pub loss: Option<f64>,
    pub model_version: Option<ModelVersion>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Held-out evaluation of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelMetrics {
    pub auc: f64,
    pub accuracy: f64,
    pub log_loss: f64,
    /// Churn rate in the held-out part.
    pub base_rate: f64,
    pub n_train: u64,
    pub n_test: u64,
}

/// What a model is, how it was trained, and how well it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelMetadata {
    pub version: ModelVersion,
    pub created_at: DateTime<Utc>,
    pub feature_names: Vec<String>,
    pub metrics: ModelMetrics,
    /// Training configuration (cutoff, horizon, epochs, seed, architecture, learning rate…).
    #[schema(value_type = Object)]
    pub config: BTreeMap<String, serde_json::Value>,
}

// ---------------------------------------------------------------- gateway

/// Asks for churn scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScoreRequest {
    /// Account ids, 15 or 18 characters; at most 200.
    #[schema(max_items = 200, min_items = 1)]
    pub record_ids: Vec<String>,
}

/// The churn score of one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordScore {
    pub record_id: SalesforceId,
    /// Probability of churn in the model's horizon, 0..1.
    pub score: f64,
}

/// A record that could not be scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordError {
    pub record_id: SalesforceId,
    pub code: crate::ErrorCode,
    pub message: String,
}

/// Scores, in request order, with the model that made them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScoreResponse {
    pub model_version: ModelVersion,
    pub scores: Vec<RecordScore>,
    /// Records that are valid ids but could not be scored (e.g. unknown to the feature store).
    pub errors: Vec<RecordError>,
}

// ---------------------------------------------------------------- connector

/// Counts of one sync run, per object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SyncReport {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Records read from Salesforce and written to the feature store, by object.
    pub objects: BTreeMap<String, u64>,
    /// SOQL pages fetched (follows every `nextRecordsUrl`).
    pub pages: u64,
}

/// Liveness/readiness answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub service: String,
    pub version: String,
}
