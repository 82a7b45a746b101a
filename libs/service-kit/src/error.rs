//! The one API error type at the HTTP edge.
//!
//! Every handler returns `Result<_, ApiError>`. Each error carries an HTTP status and a stable
//! [`ErrorCode`]; internal failures are logged here, once, and answered with a generic message
//! so nothing internal (paths, SQL, secrets) leaks to callers.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use sextant_contracts::{ErrorBody, ErrorCode};

/// An error answered to an API caller.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    /// 400 with the given code.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }
    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
    /// 502 `upstream_unavailable`: a service we call failed.
    pub fn upstream(what: &str, err: impl fmt::Display) -> Self {
        tracing::warn!(upstream = what, error = %err, "Upstream call failed.");
        Self::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::UpstreamUnavailable,
            format!("{what} is unavailable"),
        )
    }
    /// 500 `internal`; the detail is logged, not returned.
    pub fn internal(context: &str, err: impl fmt::Display) -> Self {
        tracing::error!(context, error = %err, "Internal error.");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; see the server log",
        )
    }
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }
    /// The message returned to the caller.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody {
            code: self.code,
            message: self.message.clone(),
        })
    }
}

/// JSON body extractor settings: malformed or mistyped bodies become `400 invalid_json` with
/// serde's description of what was wrong, and bodies are capped at `limit` bytes.
pub fn json_config(limit: usize) -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| {
            ApiError::bad_request(ErrorCode::InvalidJson, err.to_string()).into()
        })
}

/// Query-string extractor settings: `400 invalid_parameter`.
pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::bad_request(ErrorCode::InvalidParameter, err.to_string()).into()
    })
}

/// Path extractor settings: `400 invalid_parameter`.
pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default().error_handler(|err, _req| {
        ApiError::bad_request(ErrorCode::InvalidParameter, err.to_string()).into()
    })
}

/// Registers the three extractor configurations on an app or scope.
pub fn configure_extractors(cfg: &mut actix_web::web::ServiceConfig, json_limit: usize) {
    cfg.app_data(json_config(json_limit))
        .app_data(query_config())
        .app_data(path_config());
}

/// A handler for unknown routes: `404 not_found` in the usual body.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found("no such endpoint"))
}
