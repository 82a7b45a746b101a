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

/// `value` of the parameter `name` if it lies in `min..=max`, else `400 invalid_parameter`
/// naming the range (out-of-range values are refused, never clamped: the caller learns the limit).
pub fn in_range<T: PartialOrd + fmt::Display>(
    name: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ApiError> {
    if value < min || value > max {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            format!("{name} must be in {min}..={max}, got {value}"),
        ));
    }
    Ok(value)
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

/// The paths a service's OpenAPI document declares and the methods each answers. actix routes
/// by path *and* method, so a call with an undeclared method on a declared path falls through to
/// the default service like an unknown path; this table lets that service answer `405
/// method_not_allowed` with `Allow` (RFC 9110) for the one and `404 not_found` for the other.
#[derive(Debug, Clone, Default)]
pub struct DeclaredRoutes(std::sync::Arc<Vec<(Vec<Segment>, String)>>);

/// One segment of a declared path: literal text or a `{parameter}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must equal the request's segment.
    Literal(String),
    /// Matches any non-empty segment.
    Parameter,
}

impl DeclaredRoutes {
    /// The routes of `spec`, with each path's declared methods as an `Allow` value.
    pub fn from_spec(spec: &utoipa::openapi::OpenApi) -> Self {
        let routes = spec
            .paths
            .paths
            .iter()
            .filter_map(|(path, item)| {
                let methods: Vec<&str> = [
                    ("GET", item.get.is_some()),
                    ("PUT", item.put.is_some()),
                    ("POST", item.post.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("OPTIONS", item.options.is_some()),
                    ("HEAD", item.head.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("TRACE", item.trace.is_some()),
                ]
                .into_iter()
                .filter_map(|(m, declared)| declared.then_some(m))
                .collect();
                if methods.is_empty() {
                    return None;
                }
                let segments = path
                    .trim_start_matches('/')
                    .split('/')
                    .map(|s| {
                        if s.starts_with('{') && s.ends_with('}') {
                            Segment::Parameter
                        } else {
                            Segment::Literal(s.to_owned())
                        }
                    })
                    .collect();
                Some((segments, methods.join(", ")))
            })
            .collect();
        Self(std::sync::Arc::new(routes))
    }

    /// The `Allow` value of the declared path `path` matches, if any; where several match
    /// (`/v1/models/shadow` and `/v1/models/{version}`), the one with the most literal segments.
    pub fn allow(&self, path: &str) -> Option<&str> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.0
            .iter()
            .filter(|(segments, _)| {
                segments.len() == parts.len()
                    && segments.iter().zip(&parts).all(|(seg, part)| match seg {
                        Segment::Literal(l) => l == part,
                        Segment::Parameter => !part.is_empty(),
                    })
            })
            .max_by_key(|(segments, _)| {
                segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count()
            })
            .map(|(_, allow)| allow.as_str())
    }
}

/// The default service: `405 method_not_allowed` with `Allow` for a declared path called with
/// another method, `404 not_found` for anything else.
pub async fn unrouted(
    req: actix_web::HttpRequest,
    routes: actix_web::web::Data<DeclaredRoutes>,
) -> actix_web::HttpResponse {
    match routes.allow(req.path()) {
        Some(allow) => {
            let err = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                format!("{} is not allowed here; allowed: {allow}", req.method()),
            );
            let mut res = err.error_response();
            if let Ok(value) = actix_web::http::header::HeaderValue::from_str(allow) {
                res.headers_mut()
                    .insert(actix_web::http::header::ALLOW, value);
            }
            res
        }
        None => ApiError::not_found("no such endpoint").error_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> DeclaredRoutes {
        let spec: utoipa::openapi::OpenApi = serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/v1/models/{version}": {"get": {"responses": {}}},
                "/v1/models/shadow": {
                    "put": {"responses": {}},
                    "delete": {"responses": {}}
                },
                "/healthz": {"get": {"responses": {}}}
            }
        }))
        .expect("spec");
        DeclaredRoutes::from_spec(&spec)
    }

    #[test]
    fn a_declared_path_gives_its_methods_and_an_unknown_one_none() {
        let r = routes();
        assert_eq!(r.allow("/healthz"), Some("GET"));
        assert_eq!(r.allow("/v1/models/shadow"), Some("PUT, DELETE"));
        assert_eq!(r.allow("/v1/models/churn-v3"), Some("GET"));
        assert_eq!(r.allow("/v1/models/"), None, "a parameter is never empty");
        assert_eq!(r.allow("/v1/models/churn-v3/extra"), None);
        assert_eq!(r.allow("/v1/nothing"), None);
        assert_eq!(r.allow("/"), None);
    }
}
