//! Fault injection: what production orgs and the networks in front of them do to clients.
//!
//! A test queues [`FaultRule`]s on the running simulator; each matching request (by path
//! substring, optionally only on some methods) consumes one use of the rule and gets the fault
//! instead of (or before) the normal answer. Rules are checked in the order they were added.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::body::{BodySize, MessageBody};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use serde_json::json;

/// What happens to a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// A REST error array `[{message, errorCode}]` with this status (e.g. 503
    /// `SERVER_UNAVAILABLE`, 400 `UNABLE_TO_LOCK_ROW`, 400 `INVALID_FIELD`).
    Rest {
        status: u16,
        error_code: String,
        message: String,
    },
    /// A non-JSON body, as gateways and maintenance pages send (`text/html`, `text/plain`).
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
    /// 429 with an optional `Retry-After: <seconds>`.
    TooManyRequests { retry_after_secs: Option<u64> },
    /// Answer normally, but only after this long (beyond a client's timeout, say).
    Delay(Duration),
    /// Send the status line and headers, then break the connection in the middle of the body.
    ResetMidBody,
}

impl Fault {
    /// 503 `SERVER_UNAVAILABLE` as JSON.
    pub fn unavailable() -> Self {
        Self::Rest {
            status: 503,
            error_code: "SERVER_UNAVAILABLE".into(),
            message: "Server temporarily unavailable".into(),
        }
    }
    /// The HTML maintenance page a load balancer answers with.
    pub fn html_503() -> Self {
        Self::Raw {
            status: 503,
            content_type: "text/html; charset=UTF-8".into(),
            body: "<html><head><title>Maintenance</title></head><body>Salesforce is down for \
                   maintenance.</body></html>"
                .into(),
        }
    }
    /// `UNABLE_TO_LOCK_ROW` (another transaction holds the record).
    pub fn lock_row() -> Self {
        Self::Rest {
            status: 400,
            error_code: "UNABLE_TO_LOCK_ROW".into(),
            message: "unable to obtain exclusive access to this record or 1 records".into(),
        }
    }

    /// The response for faults that replace the answer; `None` for [`Fault::Delay`].
    pub(crate) fn response(&self) -> Option<HttpResponse> {
        let status = |s: u16| StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match self {
            Self::Rest {
                status: s,
                error_code,
                message,
            } => Some(
                HttpResponse::build(status(*s))
                    .json(json!([{"message": message, "errorCode": error_code}])),
            ),
            Self::Raw {
                status: s,
                content_type,
                body,
            } => Some(
                HttpResponse::build(status(*s))
                    .content_type(content_type.as_str())
                    .body(body.clone()),
            ),
            Self::TooManyRequests { retry_after_secs } => {
                let mut b = HttpResponse::build(StatusCode::TOO_MANY_REQUESTS);
                if let Some(s) = retry_after_secs {
                    b.insert_header(("Retry-After", s.to_string()));
                }
                Some(b.json(json!([{"message": "Too many requests", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])))
            }
            Self::Delay(_) => None,
            Self::ResetMidBody => Some(
                HttpResponse::Ok()
                    .content_type("application/json;charset=UTF-8")
                    .body(BrokenBody { sent: false }),
            ),
        }
    }
}

/// A rule: which requests, how many times, what fault.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// Matches when the request path contains this (e.g. `/query`, `/oauth2/token`, `/jobs/`).
    pub path_contains: String,
    /// Only these methods (upper case); empty = any.
    pub methods: Vec<String>,
    /// How many matching requests get the fault.
    pub times: u32,
    pub fault: Fault,
}

impl FaultRule {
    /// `fault` for the next `times` requests whose path contains `path_contains`.
    pub fn new(path_contains: &str, times: u32, fault: Fault) -> Self {
        Self {
            path_contains: path_contains.to_owned(),
            methods: Vec::new(),
            times,
            fault,
        }
    }
    /// Restricts the rule to one method.
    pub fn method(mut self, method: &str) -> Self {
        self.methods.push(method.to_ascii_uppercase());
        self
    }
}

/// Takes one use of the first rule matching the request.
pub(crate) fn take(rules: &mut Vec<FaultRule>, method: &str, path: &str) -> Option<Fault> {
    let i = rules.iter().position(|r| {
        r.times > 0
            && path.contains(&r.path_contains)
            && (r.methods.is_empty() || r.methods.iter().any(|m| m == method))
    })?;
    rules[i].times -= 1;
    let fault = rules[i].fault.clone();
    if rules[i].times == 0 {
        rules.remove(i);
    }
    Some(fault)
}

/// A body that sends a few bytes and then fails, which makes the server drop the connection.
struct BrokenBody {
    sent: bool,
}

impl MessageBody for BrokenBody {
    type Error = std::io::Error;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        if self.sent {
            Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected connection reset",
            ))))
        } else {
            self.sent = true;
            Poll::Ready(Some(Ok(Bytes::from_static(b"{\"totalSize\":"))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_consumed_in_order_and_by_method() {
        let mut rules = vec![
            FaultRule::new("/query", 2, Fault::unavailable()),
            FaultRule::new("/composite", 1, Fault::lock_row()).method("patch"),
        ];
        assert_eq!(
            take(&mut rules, "GET", "/services/data/v62.0/composite/sobjects"),
            None
        );
        assert_eq!(
            take(
                &mut rules,
                "PATCH",
                "/services/data/v62.0/composite/sobjects/A/B"
            ),
            Some(Fault::lock_row())
        );
        assert_eq!(
            take(&mut rules, "GET", "/services/data/v62.0/query"),
            Some(Fault::unavailable())
        );
        assert_eq!(
            take(&mut rules, "GET", "/services/data/v62.0/query"),
            Some(Fault::unavailable())
        );
        assert_eq!(take(&mut rules, "GET", "/services/data/v62.0/query"), None);
        assert!(rules.is_empty());
    }
}
