//! The bodies of `/healthz` and `/readyz`, the same in every service.

use actix_web::HttpResponse;
use sextant_contracts::api::Health;
use sextant_contracts::{ErrorBody, ErrorCode};

/// The liveness body of `service`.
pub fn alive(service: &str) -> Health {
    health("ok", service)
}

/// 200 with the readiness body when `check` passed; otherwise 503 with `code` and `message`
/// (the cause is logged, not returned).
pub fn readiness(
    service: &str,
    check: Result<(), impl std::fmt::Display>,
    code: ErrorCode,
    message: &str,
) -> HttpResponse {
    match check {
        Ok(()) => HttpResponse::Ok().json(health("ready", service)),
        Err(e) => {
            tracing::warn!(service, error = %e, "Not ready: {message}.");
            HttpResponse::ServiceUnavailable().json(ErrorBody {
                code,
                message: message.to_owned(),
            })
        }
    }
}

fn health(status: &str, service: &str) -> Health {
    Health {
        status: status.into(),
        service: service.into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}
