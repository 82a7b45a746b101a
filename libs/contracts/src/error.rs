//! The error body every Sextant API returns, and its stable codes.
//!
//! Callers (Apex, the LWC, other services) branch on `code`, never on `message`: codes are part
//! of the contract and never change meaning; messages may be reworded.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Stable, machine-readable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request body is not valid JSON or does not match the schema.
    InvalidJson,
    /// A query-string or path parameter is malformed.
    InvalidParameter,
    /// A record id is not a valid Salesforce id of the expected object.
    InvalidRecordId,
    /// More records than one call accepts.
    TooManyRecords,
    /// The request names no records.
    EmptyRequest,
    /// No bearer token, or it failed validation.
    Unauthorized,
    /// The caller made more calls than its rate limit allows; retry after `Retry-After` seconds.
    RateLimited,
    /// The thing asked for does not exist.
    NotFound,
    /// No model has been trained yet.
    NoModel,
    /// A training job could not be started or failed.
    TrainingFailed,
    /// Not enough labelled data to train or evaluate.
    InsufficientData,
    /// A service this one depends on failed or is unreachable.
    UpstreamUnavailable,
    /// Salesforce refused a call.
    SalesforceError,
    /// A sync is already running.
    SyncInProgress,
    /// One record of a batch is malformed or invalid (answered per record; the rest is stored).
    InvalidRecord,
    /// The record has no purchase history: there is nothing to score it on (answered per record).
    NoHistory,
    /// A training set's label window (cut-off + horizon) ends after today: its labels are unknown.
    LabelWindowOpen,
    /// The request body is larger than the endpoint accepts.
    PayloadTooLarge,
    /// A file system path names a place outside the directory the service may write to.
    PathOutsideRoot,
    /// An export is already running; one runs at a time.
    ExportInProgress,
    /// The thing to create exists already (e.g. an export's target directory).
    AlreadyExists,
    /// The path exists but does not answer this HTTP method (`Allow` lists those it does).
    MethodNotAllowed,
    /// Anything unexpected; details are in the server log, never in the response.
    Internal,
}

impl ErrorCode {
    /// The snake_case string form used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidParameter => "invalid_parameter",
            Self::InvalidRecordId => "invalid_record_id",
            Self::TooManyRecords => "too_many_records",
            Self::EmptyRequest => "empty_request",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited => "rate_limited",
            Self::NotFound => "not_found",
            Self::NoModel => "no_model",
            Self::TrainingFailed => "training_failed",
            Self::InsufficientData => "insufficient_data",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::SalesforceError => "salesforce_error",
            Self::SyncInProgress => "sync_in_progress",
            Self::InvalidRecord => "invalid_record",
            Self::NoHistory => "no_history",
            Self::LabelWindowOpen => "label_window_open",
            Self::PayloadTooLarge => "payload_too_large",
            Self::PathOutsideRoot => "path_outside_root",
            Self::ExportInProgress => "export_in_progress",
            Self::AlreadyExists => "already_exists",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Internal => "internal",
        }
    }
}

/// `{"code": "...", "message": "..."}`: the body of every 4xx and 5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation; may change between releases.
    pub message: String,
}
