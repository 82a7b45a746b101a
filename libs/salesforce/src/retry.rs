//! What is worth retrying, and how long to wait before the next try.
//!
//! Only failures that a later identical call may not hit are retried: 429 (throttled), 5xx
//! (maintenance, overload, a gateway between us and the org), broken or timed-out connections,
//! and `UNABLE_TO_LOCK_ROW` (another transaction holds the row). Every other 4xx is a property of
//! the request (bad SOQL, missing permission, unknown field) and fails the same way again, so it
//! is returned at once: retrying it only burns the org's API budget.
//!
//! Waits grow exponentially with "equal jitter" (half fixed, half random) so that many clients
//! failing together do not retry together, and are capped. A `Retry-After` header is obeyed as
//! long as it is within [`RetryPolicy::max_retry_after`]; a longer one ends the retries (the
//! caller decides when to come back, e.g. the next scheduled sync).

use std::time::Duration;

use rand::Rng;

/// How many times and how patiently a call is retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Wait before the first retry (before jitter).
    pub base_delay: Duration,
    /// Largest wait between two attempts.
    pub max_delay: Duration,
    /// Largest `Retry-After` obeyed; a longer one stops retrying.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before retry number `retry` (0 = the first retry), without a `Retry-After`:
    /// `d = min(max_delay, base_delay * 2^retry)`, then a uniform draw in `[d/2, d]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX);
        let d = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let half = d / 2;
        let extra_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if extra_nanos == 0 {
            0
        } else {
            rand::thread_rng().gen_range(0..=extra_nanos)
        };
        half + Duration::from_nanos(jitter)
    }

    /// The wait before retry number `retry` given the server's `Retry-After`, or `None` when the
    /// server asks for longer than [`Self::max_retry_after`] (stop retrying).
    pub fn wait(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        match retry_after {
            Some(ra) if ra > self.max_retry_after => None,
            // Obey the server, never less than our own backoff.
            Some(ra) => Some(ra.max(self.backoff(retry))),
            None => Some(self.backoff(retry)),
        }
    }
}

/// 429 and 5xx are transient.
pub fn is_transient_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// Salesforce error codes that mean "try again later" whatever the HTTP status.
pub fn is_transient_error_code(code: &str) -> bool {
    matches!(code, "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE")
}

/// Connection refused/reset, timeouts and broken bodies are transient; a request we could not
/// even build (bad URL, redirect loop) is not.
pub fn is_transient_transport(e: &reqwest::Error) -> bool {
    if let Some(status) = e.status() {
        return is_transient_status(status.as_u16());
    }
    e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() || e.is_decode()
}

/// Reads `Retry-After` as seconds (what Salesforce and its gateways send) or an HTTP date.
pub fn parse_retry_after(raw: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let raw = raw.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(raw).ok()?;
    let delta = at.with_timezone(&chrono::Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5),
        };
        for retry in 0..8u32 {
            let full = (Duration::from_millis(100) * 2u32.pow(retry)).min(Duration::from_secs(1));
            for _ in 0..50 {
                let d = p.backoff(retry);
                assert!(
                    d >= full / 2 && d <= full,
                    "retry {retry}: {d:?} vs {full:?}"
                );
            }
        }
        // Jitter: 50 draws of the same retry are not all equal.
        let draws: std::collections::HashSet<Duration> = (0..50).map(|_| p.backoff(3)).collect();
        assert!(draws.len() > 1, "no jitter");
        // Huge retry numbers do not overflow.
        assert!(p.backoff(u32::MAX) <= Duration::from_secs(1));
    }

    #[test]
    fn retry_after_is_obeyed_up_to_its_cap() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        };
        let w = p.wait(0, Some(Duration::from_secs(3)));
        assert!(w.is_some_and(|w| w >= Duration::from_secs(3)), "{w:?}");
        assert_eq!(p.wait(0, Some(Duration::from_secs(3600))), None);
        assert!(
            p.wait(0, None)
                .is_some_and(|w| w <= Duration::from_millis(10))
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .map(|d| d.with_timezone(&chrono::Utc));
        let Ok(now) = now else {
            panic!("fixed date parses")
        };
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn only_transient_statuses_and_codes_are_retried() {
        for s in [429, 500, 502, 503, 504] {
            assert!(is_transient_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 413] {
            assert!(!is_transient_status(s), "{s}");
        }
        assert!(is_transient_error_code("UNABLE_TO_LOCK_ROW"));
        assert!(!is_transient_error_code("INVALID_FIELD"));
        assert!(!is_transient_error_code("REQUEST_LIMIT_EXCEEDED"));
    }
}
