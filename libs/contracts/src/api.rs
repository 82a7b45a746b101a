//! Request and response bodies of the services' HTTP APIs.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::records::{
    AccountRecord, CaseRecord, ContactRecord, EngagementEventRecord, ObjectRecord, OrderItemRecord,
    OrderRecord, ProductRecord,
};
use crate::{ModelVersion, SalesforceId};

/// The most records one scoring or online-feature call accepts: the size of an Apex trigger
/// chunk, so one trigger batch is one callout.
pub const MAX_RECORDS_PER_CALL: usize = 200;

// ---------------------------------------------------------------- feature store

/// The objects the feature store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum IngestObject {
    Account,
    Contact,
    Product2,
    Order,
    OrderItem,
    Case,
    EngagementEvent,
    /// Records of any object (`IngestRequest::record_object` names it), for prediction
    /// definitions: see [`ObjectRecord`].
    Record,
}

impl IngestObject {
    /// Every built-in object, parents before children (not [`IngestObject::Record`], which is
    /// one per synced object).
    pub const ALL: [Self; 7] = [
        Self::Account,
        Self::Contact,
        Self::Product2,
        Self::Order,
        Self::OrderItem,
        Self::Case,
        Self::EngagementEvent,
    ];

    /// The Salesforce object name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "Account",
            Self::Contact => "Contact",
            Self::Product2 => "Product2",
            Self::Order => "Order",
            Self::OrderItem => "OrderItem",
            Self::Case => "Case",
            Self::EngagementEvent => "EngagementEvent",
            Self::Record => "Record",
        }
    }
}

/// Typed records of one object, as the connector builds them (see [`IngestRequest::from_batch`]).
#[derive(Debug, Clone, PartialEq)]
pub enum IngestBatch {
    Account(Vec<AccountRecord>),
    Contact(Vec<ContactRecord>),
    Product2(Vec<ProductRecord>),
    Order(Vec<OrderRecord>),
    OrderItem(Vec<OrderItemRecord>),
    Case(Vec<CaseRecord>),
    EngagementEvent(Vec<EngagementEventRecord>),
    /// Records of the object named first (an API name such as `Loan__c`).
    Record(String, Vec<ObjectRecord>),
}

impl IngestBatch {
    /// The object.
    pub fn object(&self) -> IngestObject {
        match self {
            Self::Account(_) => IngestObject::Account,
            Self::Contact(_) => IngestObject::Contact,
            Self::Product2(_) => IngestObject::Product2,
            Self::Order(_) => IngestObject::Order,
            Self::OrderItem(_) => IngestObject::OrderItem,
            Self::Case(_) => IngestObject::Case,
            Self::EngagementEvent(_) => IngestObject::EngagementEvent,
            Self::Record(..) => IngestObject::Record,
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
            Self::EngagementEvent(r) => r.len(),
            Self::Record(_, r) => r.len(),
        }
    }
    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A record deleted in Salesforce (from `queryAll` with `IsDeleted = true`, or the deleted-records
/// endpoint): from `deleted_at` on, it no longer counts in any feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Deletion {
    /// The deleted record (Salesforce Id; for engagement events, the source's id), 1 to 255
    /// characters. Checked per deletion, like records: one that is not is answered in `rejected`.
    pub id: String,
    /// When the org deleted it (`deletedDate` or the tombstone's `SystemModstamp`): its known time.
    pub deleted_at: DateTime<Utc>,
}

/// `POST /v1/ingest`: records and tombstones of one object, for one org.
///
/// Idempotent and order-independent: a version of a record is kept by its known time
/// (`system_modstamp`), so a replayed or older batch changes nothing. Each record is validated on
/// its own: the good ones are stored and the rest answered in `rejected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IngestRequest {
    /// The org the records belong to (`00D…`); the store's default org when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^00D[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$", format = "salesforce-org-id")]
    pub org_id: Option<crate::OrgId>,
    pub object: IngestObject,
    /// With `object: Record`, the object's API name (`Loan__c`, `Opportunity`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_]{0,79}$")]
    pub record_object: Option<String>,
    /// Records in the object's shape (see the `*Record` schemas); at most 10,000.
    #[serde(default)]
    /// Each is checked on its own: a malformed one (a non-object included) is answered in
    /// `rejected` and the rest is stored.
    #[schema(value_type = Vec<serde_json::Value>, max_items = 10000)]
    pub records: Vec<serde_json::Value>,
    /// Deleted records; at most 10,000.
    #[serde(default)]
    #[schema(max_items = 10000)]
    pub deletions: Vec<Deletion>,
}

/// The most records (or deletions) one ingest call accepts.
pub const MAX_INGEST_RECORDS: usize = 10_000;

impl IngestRequest {
    /// Builds a request from typed records.
    ///
    /// # Errors
    /// Only if a record cannot be serialised (never for the types here).
    pub fn from_batch(
        org_id: Option<crate::OrgId>,
        batch: &IngestBatch,
    ) -> Result<Self, serde_json::Error> {
        fn values<T: Serialize>(r: &[T]) -> Result<Vec<serde_json::Value>, serde_json::Error> {
            r.iter().map(serde_json::to_value).collect()
        }
        let records = match batch {
            IngestBatch::Account(r) => values(r)?,
            IngestBatch::Contact(r) => values(r)?,
            IngestBatch::Product2(r) => values(r)?,
            IngestBatch::Order(r) => values(r)?,
            IngestBatch::OrderItem(r) => values(r)?,
            IngestBatch::Case(r) => values(r)?,
            IngestBatch::EngagementEvent(r) => values(r)?,
            IngestBatch::Record(_, r) => values(r)?,
        };
        let record_object = match batch {
            IngestBatch::Record(object, _) => Some(object.clone()),
            _ => None,
        };
        Ok(Self {
            org_id,
            object: batch.object(),
            record_object,
            records,
            deletions: Vec::new(),
        })
    }
}

/// A record of a batch that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RejectedRecord {
    /// Position in `records` (or in `deletions` when `deletion` is true).
    pub index: u64,
    /// The record's id when it could be read.
    pub id: Option<String>,
    #[serde(default)]
    pub deletion: bool,
    pub code: crate::ErrorCode,
    pub message: String,
}

/// The outcome of one ingest call; everything it reports was committed before it was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IngestResponse {
    pub object: IngestObject,
    /// Records and deletions received.
    pub received: u64,
    /// New versions stored (new records, newer versions, deletions).
    pub written: u64,
    /// Records whose version was already stored, or older than the one stored: nothing changed.
    pub unchanged: u64,
    /// Records and deletions refused, with their reasons.
    pub rejected: Vec<RejectedRecord>,
    /// Accounts whose online features this batch made stale: queued, in the batch's transaction,
    /// for the store's background refresh (a lookup recomputes any still queued, so none is ever
    /// served stale).
    pub accounts_refreshed: u64,
}

/// One (customer, cut-off) pair of an explicit training-set request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrainingExample {
    pub account_id: SalesforceId,
    pub cutoff: NaiveDate,
}

/// Asks for a point-in-time training set, streamed as NDJSON.
///
/// Either `cutoffs` (every account with a purchase before each cut-off; several cut-offs are
/// stacked, for out-of-time validation) or `examples` (explicit pairs). Features use only rows whose
/// event time and known time are both before the cut-off; the label looks at `[cutoff, cutoff +
/// horizon_days)`, which must end by today.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainingSetRequest {
    /// One or more cut-offs (at most 104).
    #[serde(default)]
    #[schema(max_items = 104)]
    pub cutoffs: Vec<NaiveDate>,
    /// Explicit (account, cut-off) pairs (at most 100,000) instead of `cutoffs`.
    #[serde(default)]
    #[schema(max_items = 100000)]
    pub examples: Vec<TrainingExample>,
    /// Label window length, 1..=3650 days.
    #[schema(minimum = 1, maximum = 3650)]
    pub horizon_days: u32,
    /// Also stream each row's weekly sequence.
    #[serde(default)]
    pub include_sequences: bool,
    /// The org; the store's default org when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^00D[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$", format = "salesforce-org-id")]
    pub org_id: Option<crate::OrgId>,
}

/// First line of a streamed training set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainingSetHeader {
    /// The declared feature set, e.g. `rfmt-v2`.
    pub feature_set: String,
    pub feature_names: Vec<String>,
    /// Channels of each week of a sequence (when sequences are included).
    pub sequence_channels: Vec<String>,
    /// Weeks per sequence (when included).
    pub sequence_weeks: u32,
    pub horizon_days: u32,
    pub cutoffs: Vec<NaiveDate>,
}

/// One labelled example (one NDJSON line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainingRow {
    pub account_id: SalesforceId,
    pub cutoff: NaiveDate,
    /// In the order of `feature_names`.
    pub features: Vec<f64>,
    /// `sequence_weeks` rows, oldest week first, each in the order of `sequence_channels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<Vec<Vec<f64>>>,
    /// Static attributes (country, industry) for embeddings.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// `true` when the account places no purchase in the label window.
    pub churned: bool,
}

/// Last line of a streamed training set: how many rows and their fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainingSetTrailer {
    pub rows: u64,
    /// SHA-256 over the header and every row as sent: a model records exactly what it learned from.
    pub fingerprint: String,
}

/// One line of the NDJSON stream: a header, rows, then a trailer (or an error that ends it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrainingSetLine {
    Header(TrainingSetHeader),
    Row(TrainingRow),
    Trailer(TrainingSetTrailer),
    /// The stream failed part-way: discard what came before.
    Error(crate::ErrorBody),
}

/// A whole training set, assembled by a client from the stream (small sets, tests).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainingSet {
    pub header: TrainingSetHeader,
    pub rows: Vec<TrainingRow>,
    pub fingerprint: String,
}

/// Asks for the latest features of up to 200 accounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OnlineFeaturesRequest {
    #[schema(max_items = 200, min_items = 1)]
    pub account_ids: Vec<SalesforceId>,
    /// Also return each account's weekly sequence.
    #[serde(default)]
    pub include_sequences: bool,
    /// The org; the store's default org when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^00D[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$", format = "salesforce-org-id")]
    pub org_id: Option<crate::OrgId>,
}

/// The most predictions one log call takes.
pub const MAX_PREDICTIONS_PER_CALL: usize = 1000;

/// One churn score the gateway served, as the prediction log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictionRecord {
    pub account_id: SalesforceId,
    pub model_version: ModelVersion,
    /// When the score was served.
    pub scored_at: DateTime<Utc>,
    /// Churn probability, 0..1.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    /// The next best action's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The model's horizon: churn = no purchase within this many days of `scored_at`.
    #[schema(minimum = 1, maximum = 730)]
    pub horizon_days: u32,
}

/// A batch of served predictions for the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictionBatch {
    /// The org; the store's default org when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^00D[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$", format = "salesforce-org-id")]
    pub org_id: Option<crate::OrgId>,
    #[schema(min_items = 1, max_items = 1000)]
    pub predictions: Vec<PredictionRecord>,
}

/// What a log call stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PredictionBatchResponse {
    /// New rows (a prediction already logged is not stored twice).
    pub stored: u64,
}

/// How one week of a model's predictions turned out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RealisedWeek {
    /// Monday of the week the scores were served.
    pub week_start: NaiveDate,
    /// Matured predictions (their horizon has passed).
    pub predictions: u64,
    /// Of those, accounts that did churn (no purchase within the horizon).
    pub churned: u64,
    /// ROC-AUC of the scores against what happened; absent when one outcome is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roc_auc: Option<f64>,
    /// Mean predicted churn probability (calibration: compare with `churn_rate`).
    pub mean_score: f64,
    /// Share that churned.
    pub churn_rate: f64,
}

/// Realised accuracy of one model version over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RealisedAccuracy {
    pub model_version: ModelVersion,
    /// The store's today: predictions whose horizon ends after it are not judged yet.
    pub as_of: NaiveDate,
    /// Oldest week first.
    pub weeks: Vec<RealisedWeek>,
    /// Matured predictions read (at most `max_rows`, oldest first).
    pub rows_read: u64,
    /// Whether `max_rows` cut the report short.
    pub truncated: bool,
}

/// Names a shadow (challenger) model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowRequest {
    pub version: ModelVersion,
}

/// The current and the shadow churn model side by side, on the scores the gateway served with
/// each (the shadow's were computed for the same requests and not returned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShadowComparison {
    pub current: RealisedAccuracy,
    pub shadow: RealisedAccuracy,
}

/// Asks for the recent purchases of up to 200 accounts (the cross-sell model's input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseHistoryRequest {
    #[schema(max_items = 200, min_items = 1)]
    pub account_ids: Vec<SalesforceId>,
    /// The most recent orders returned per account, 1..=100 (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub max_orders: Option<u32>,
    /// The org; the store's default org when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^00D[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$", format = "salesforce-org-id")]
    pub org_id: Option<crate::OrgId>,
}

/// One purchase (an order whose status counts as a purchase) and its products.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PurchasedOrder {
    pub order_id: String,
    /// The order's date (EffectiveDate).
    pub date: NaiveDate,
    /// Product ids of its current lines with a positive quantity (repeats kept).
    pub product_ids: Vec<String>,
}

/// The recent purchases of one account, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccountPurchases {
    pub account_id: SalesforceId,
    /// At most `max_orders`, the most recent ones, oldest first; empty for an account without
    /// purchases.
    pub orders: Vec<PurchasedOrder>,
}

/// The answer to a [`PurchaseHistoryRequest`], in request order (duplicates once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PurchaseHistory {
    pub accounts: Vec<AccountPurchases>,
}

/// Whether an account has purchase history to compute features from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryStatus {
    /// At least one purchase before the as-of day: `features` is set.
    Ok,
    /// No purchase yet: there are no features to score, and none are made up.
    NoHistory,
}

/// Features of one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FeatureRow {
    pub account_id: SalesforceId,
    pub status: HistoryStatus,
    /// In the order of `feature_names`; absent when `status` is `no_history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<f64>>,
    /// Oldest week first (when asked for and there is history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<Vec<Vec<f64>>>,
    /// Static attributes (country, industry).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The day the features describe (purchases strictly before it).
    pub as_of: NaiveDate,
    /// When the materialised row was computed.
    pub computed_at: DateTime<Utc>,
}

/// The latest features, as of the store's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OnlineFeatures {
    pub as_of: NaiveDate,
    pub feature_set: String,
    pub feature_names: Vec<String>,
    pub sequence_channels: Vec<String>,
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
    /// Label window after each cut-off, 1..=3650 days.
    #[schema(minimum = 1, maximum = 3650)]
    pub horizon_days: u32,
    /// Passes over the training set, 1..=10000; default 100.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10_000)]
    pub epochs: Option<u32>,
    /// Seed for initialisation, 0..=2^53−1 (exact in every JSON client); default 42.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9_007_199_254_740_991_u64)]
    pub seed: Option<u64>,
    /// Days between stacked training cut-offs (out-of-time validation); default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 7, maximum = 365)]
    pub cutoff_step_days: Option<u32>,
    /// How far back the training cut-offs reach, in days before the last one, 0..=720 (at most
    /// 104 cut-offs at the smallest step); default 180.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 720)]
    pub cutoff_span_days: Option<u32>,
}

/// The largest seed a request may name: 2^53 − 1, the largest integer every JSON client
/// (JavaScript's numbers included) holds exactly.
pub const MAX_SEED: u64 = 9_007_199_254_740_991;

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
    /// Whether the model is served (`current`), waiting (`candidate`) or replaced (`retired`).
    /// Absent on models stored before the promotion gate existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ModelStatus>,
    /// The latest promotion decision about this model, with its reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionDecision>,
}

/// Where a model stands in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    /// The model the gateway serves.
    Current,
    /// Trained and stored, never served (or not yet): the promotion gate kept it back.
    Candidate,
    /// Served once, then replaced by another version.
    Retired,
}

/// Why a model was, or was not, made current.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PromotionDecision {
    pub promoted: bool,
    /// `gate` (automatic, after training) or `manual` (`POST /v1/models/{version}/promote`).
    pub by: String,
    pub reason: String,
    /// The model that was current when the decision was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compared_with: Option<ModelVersion>,
    /// This model's ROC-AUC on the evaluation set of the decision (gate only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_auc: Option<f64>,
    /// The then-current model's ROC-AUC on the same evaluation set (gate only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_auc: Option<f64>,
    pub decided_at: DateTime<Utc>,
}

/// Starts a CLV training job: the BTYD summaries of every account as of `cutoff` are fitted,
/// and the fit is evaluated on the purchases of `[cutoff, cutoff + horizon_days)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClvJobRequest {
    /// The calibration cut-off.
    pub cutoff: NaiveDate,
    /// The holdout (evaluation) window, 7..=730 days; it must end before the store's today.
    #[schema(minimum = 7, maximum = 730)]
    pub horizon_days: u32,
}

/// Held-out evaluation of a CLV model (purchase counts are purchase *days*, as in BTYD).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClvMetrics {
    /// Mean absolute error of the predicted purchases in the holdout window, per account.
    pub holdout_mae_purchases: f64,
    /// Mean actual purchases per account in the holdout window.
    pub holdout_mean_actual: f64,
    /// Mean predicted purchases per account in the holdout window.
    pub holdout_mean_predicted: f64,
    /// ROC-AUC of P(any purchase in the holdout window) against whether one happened; absent
    /// when every account (or none) purchased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout_auc_any_purchase: Option<f64>,
    /// Share of accounts that purchased in the holdout window.
    pub holdout_purchase_rate: f64,
    pub holdout_weeks: f64,
    /// Accounts fitted and evaluated.
    pub n_accounts: u64,
    /// Accounts with a repeat purchase (the Gamma-Gamma fit's customers).
    pub n_repeat_buyers: u64,
    /// Accounts with a calibration row but none at the end of the holdout window (deleted
    /// meanwhile); left out of the fit and the evaluation.
    pub n_missing_at_window_end: u64,
    /// `bgnbd`, `pareto_nbd` or `nbd`: the purchase model used (see `config.fallback`).
    pub purchase_model: String,
    /// Log-likelihood of the purchase model on the calibration summaries.
    pub log_likelihood: f64,
}

/// What a CLV model is, how it was fitted, and how well it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClvModelMetadata {
    pub version: ModelVersion,
    pub created_at: DateTime<Utc>,
    pub metrics: ClvMetrics,
    /// Fit configuration (cut-off, holdout, feature mapping, parameters, fallback, tiers…).
    #[schema(value_type = Object)]
    pub config: BTreeMap<String, serde_json::Value>,
    /// SHA-256 of the training set the model was fitted on (the stream's trailer).
    pub training_set_fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ModelStatus>,
    /// The latest promotion decision. For the CLV gate `candidate_auc` / `current_auc` are the
    /// P(any purchase) ROC-AUCs; the gate itself compares the holdout MAE (see `reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionDecision>,
}

/// A version of a model family whose evaluation is a set of named figures (sentiment, …): what it
/// learned from, how it did, and where it stands in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelCard {
    pub version: ModelVersion,
    pub created_at: DateTime<Utc>,
    /// Held-out figures by name (e.g. `weighted_f1`, `accuracy`, and the baseline's as
    /// `baseline_weighted_f1`).
    #[schema(value_type = Object)]
    pub metrics: BTreeMap<String, f64>,
    /// The figure the promotion gate compares (higher is better), a key of `metrics`.
    pub gate_metric: String,
    /// Training configuration (seed, sizes, architecture, evaluation protocol…).
    #[schema(value_type = Object)]
    pub config: BTreeMap<String, serde_json::Value>,
    /// SHA-256 of the training data the model learned from.
    pub training_set_fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ModelStatus>,
    /// The latest promotion decision, with the compared figures in its `reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionDecision>,
}

// ---------------------------------------------------------------- gateway

/// Asks for churn scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScoreRequest {
    /// Account ids, 15 or 18 characters; at most 200.
    #[schema(schema_with = crate::ids::account_ids_schema)]
    pub record_ids: Vec<String>,
}

/// The churn score of one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordScore {
    pub record_id: SalesforceId,
    /// Probability of churn in the model's horizon, 0..1.
    pub score: f64,
    /// Risk band of the score (thresholds chosen by the model at training time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<RiskBand>,
    /// What moved the score most, strongest first (at most 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<ScoreFactor>,
    /// The same list as `factors`, under the name the Salesforce package reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_factors: Vec<ScoreFactor>,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_best_action: Option<NextBestAction>,
    /// Customer lifetime value and P(alive) from the current CLV model, or why they are
    /// unavailable (never a zero standing in for a missing model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clv: Option<RecordClv>,
}

/// A record's customer lifetime value, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RecordClv {
    /// Computed by the current CLV model from the account's online features.
    Available(ClvEstimate),
    /// No CLV model is loaded, or it could not value this account.
    Unavailable(ClvUnavailable),
}

/// Expected value of a customer over a horizon, with what it is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClvEstimate {
    /// Discounted expected spend over the horizon (currency of the orders), ≥ 0.
    pub value: f64,
    pub horizon_months: u32,
    /// Yearly discount rate (0.10 = 10 %), converted to a monthly rate for the sum.
    pub discount_rate_annual: f64,
    /// Probability that the customer is still active (has not silently left), 0..1.
    pub p_alive: f64,
    /// Expected purchases (purchase days) over the horizon.
    pub expected_purchases: f64,
    /// Expected spend per purchase day (Gamma-Gamma).
    pub expected_spend_per_purchase: f64,
    /// The value tier: quantiles of the CLV of the training customers (`high` = top 20%,
    /// `medium` = next 30%), at the horizon and rate the model recorded.
    pub value_tier: ValueTier,
    pub model_version: ModelVersion,
    /// What makes this customer worth more or less than the typical customer the model was
    /// fitted on, strongest first (at most 3). Absent for a model trained before typical
    /// customers were recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<ClvFactor>,
}

/// Which way a factor moves a customer's value, compared with the typical customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueDirection {
    RaisesValue,
    LowersValue,
}

/// One reason behind a CLV, in a form a record page can show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClvFactor {
    /// `repeat_purchases`, `days_since_last_purchase`, `tenure_days` or `spend_per_purchase`.
    pub factor: String,
    pub direction: ValueDirection,
    /// E.g. "last purchase 120 days ago (typical: 35)".
    pub text: String,
    /// Change of the value when this input is set to the typical customer's (value − that
    /// value), in the currency of the orders.
    pub impact: f64,
}

/// Why a record has no CLV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClvUnavailable {
    pub reason: String,
}

/// A CLV value tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueTier {
    Low,
    Medium,
    High,
}

impl ValueTier {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// A value tier's lower bound: CLVs at or above `min_value` (and below the next tier's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValueTierThreshold {
    pub name: ValueTier,
    pub min_value: f64,
}

/// A churn risk band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RiskBand {
    Low,
    Medium,
    High,
}

impl RiskBand {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// Which way a factor moves a score, compared with a typical customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FactorDirection {
    RaisesRisk,
    LowersRisk,
}

/// One reason behind a score, in a form a record page can show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScoreFactor {
    /// A feature name (e.g. `spend_trend_8w`) or a block of weeks (e.g. `weeks_1_4`).
    pub factor: String,
    pub direction: FactorDirection,
    /// E.g. "spend down 60% over the last 8 weeks (typical: up 5%)".
    pub text: String,
    /// Change of the score when this factor is set to its typical value (score − occluded score).
    pub impact: f64,
}

/// The recommended next step for a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NextBestAction {
    /// Stable code, e.g. `retention_call`.
    pub code: String,
    /// What to do, e.g. "Schedule a retention call".
    pub action: String,
    /// Why: the band and the top factor (and the value tier, when a CLV model is loaded).
    pub reason: String,
    /// What the action is worth pursuing for, in the currency of the orders: by default the
    /// CLV at stake (CLV × churn probability) for retention actions, the CLV kept (CLV × (1 −
    /// churn probability)) for growth actions. Absent without a CLV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_value: Option<f64>,
}

/// A risk band's lower bound: scores at or above `min_score` (and below the next band's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BandThreshold {
    pub name: RiskBand,
    pub min_score: f64,
}

/// A record that could not be scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecordError {
    pub record_id: SalesforceId,
    pub code: crate::ErrorCode,
    pub message: String,
    /// The action for a record that has no score but still needs one (`no_history` →
    /// onboarding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_best_action: Option<NextBestAction>,
}

/// Scores, in request order, with the model that made them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScoreResponse {
    pub model_version: ModelVersion,
    pub scores: Vec<RecordScore>,
    /// Records that are valid ids but could not be scored (e.g. unknown to the feature store).
    pub errors: Vec<RecordError>,
    /// The model's risk bands, highest threshold first (absent for models without bands).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<BandThreshold>,
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
    /// Records that could not be mapped or that the feature store refused, with their reasons
    /// (the first 1,000; `quarantined_count` has them all). The rest of the sync went on.
    #[serde(default)]
    pub quarantined: Vec<QuarantinedRecord>,
    #[serde(default)]
    pub quarantined_count: u64,
}

/// A record a sync set aside, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuarantinedRecord {
    pub object: String,
    /// Its Salesforce Id, when it could be read.
    pub id: Option<String>,
    pub reason: String,
}

/// The most quarantined records a sync report lists.
pub const MAX_QUARANTINE_LISTED: usize = 1000;

/// Liveness/readiness answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    pub service: String,
    pub version: String,
}

// ---------------------------------------------------------------- gateway: sentiment

/// The longest text one sentiment call scores, in characters (a long case description; the
/// model reads word and character n-grams, so more adds cost, not accuracy).
pub const MAX_SENTIMENT_TEXT_CHARS: usize = 20_000;

/// Asks for the sentiment of texts: case subjects and descriptions, emails, survey answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SentimentRequest {
    /// 1 to 200 texts, each at most 20,000 characters and not blank.
    #[schema(schema_with = sentiment_texts_schema)]
    pub texts: Vec<String>,
}

/// A character that is not Unicode `White_Space` (what `str::trim` removes): a text must hold
/// one to be scored.
pub const NOT_BLANK_PATTERN: &str = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

fn sentiment_texts_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_SENTIMENT_TEXT_CHARS))
                .pattern(Some(NOT_BLANK_PATTERN)),
        )
        .min_items(Some(1))
        .max_items(Some(MAX_RECORDS_PER_CALL))
        .description(Some(
            "1 to 200 texts, each at most 20,000 characters and not blank.",
        ))
        .build()
}

/// The sentiment of one text, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TextSentiment {
    /// `negative`, `neutral` or `positive`: the most probable class.
    pub label: String,
    /// Probability of each class; they sum to 1.
    pub negative: f64,
    pub neutral: f64,
    pub positive: f64,
    /// How negative (−1) to positive (1) the text reads.
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub intensity: f64,
    /// The words that moved the intensity most, strongest first (at most 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<WordFactor>,
}

/// One word's part in a text's sentiment, by occlusion: the intensity with every occurrence of
/// the word minus the intensity without it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WordFactor {
    /// The word, lower-cased, as it appears in the text.
    pub word: String,
    /// Intensity with the word minus without it: negative pushes the text towards negative.
    #[schema(minimum = -2.0, maximum = 2.0)]
    pub effect: f64,
    /// A sentence a person can read, e.g. `"refund" makes it read more negative`.
    pub text: String,
}

/// The sentiment of each text, by the current sentiment model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SentimentResponse {
    /// The sentiment model that scored the texts, e.g. `sentiment-v3`.
    pub model_version: String,
    pub results: Vec<TextSentiment>,
}

// ---------------------------------------------------------------- gateway: propensity

/// Records of a prediction definition's object to score, as field → value maps (strings,
/// numbers, booleans or null for blank), like the object's export the model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PropensityScoreRequest {
    /// 1 to 200 records; an `Id` field, when present, is echoed back.
    #[schema(min_items = 1, max_items = 200, value_type = Vec<Object>)]
    pub records: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// The likelihood of a definition's outcome for one record, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PropensityScore {
    /// Position of the record in the request.
    pub index: usize,
    /// The record's `Id`, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// Probability of the outcome.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub score: f64,
    /// The strongest fields, strongest first: each against its typical training value.
    pub factors: Vec<ScoreFactor>,
}

/// A record that could not be scored (e.g. text in a numeric field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PropensityRecordError {
    pub index: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    pub code: crate::ErrorCode,
    pub message: String,
}

/// Scores of one prediction definition's records, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PropensityScoreResponse {
    pub definition: String,
    /// The model that scored, e.g. `upsell-v3`.
    pub model_version: String,
    pub scores: Vec<PropensityScore>,
    pub errors: Vec<PropensityRecordError>,
}
