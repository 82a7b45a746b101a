//! Per-caller rate limits on scoring calls.
//!
//! One misbehaving integration (a runaway trigger, a batch job without a governor) must not
//! starve the other callers of the feature store and the model. Each verified caller — the
//! token's `sub` — gets a token bucket: `requests_per_sec` tokens a second up to `burst`; a call
//! takes one or is answered `429 rate_limited` with `Retry-After` (whole seconds, at least 1)
//! saying when the next token is there. The limit is per gateway replica: with N replicas behind
//! a load balancer a caller gets at most N times the rate, which is fine for a safety valve and
//! needs no shared store. Tokens without `sub` share one bucket (the empty caller).
//!
//! Memory is bounded: a bucket idle long enough to be full again is the same as no bucket, so
//! such buckets are dropped whenever the table is full; should every one of `max_callers`
//! buckets still be busy, the least recently seen caller is dropped (it starts again with a full
//! bucket), never the process's memory.
//!
//! Time comes from a [`Clock`] so tests can move it instead of sleeping.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use sextant_contracts::{ErrorBody, ErrorCode};
use sextant_service_kit::metrics::{Counter, Metrics};

use crate::auth::Caller;

/// A monotonic clock: the time since an arbitrary origin.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Time elapsed since the clock's origin; never goes backwards.
    fn now(&self) -> Duration;
}

/// The process's monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock at its origin.
    pub fn new() -> Self {
        Self::default()
    }
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// Per-caller limits of scoring calls (`SEXTANT_GATEWAY__RATE_LIMIT__…`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Sustained scoring calls per second per caller (`sub`); 0 turns the limit off (default).
    #[serde(default)]
    pub requests_per_sec: f64,
    /// Calls a caller may make at once after being idle (bucket size); 0 means
    /// `max(1, ceil(requests_per_sec))`.
    #[serde(default)]
    pub burst: u32,
    /// Callers tracked at once (memory bound); default 10 000.
    #[serde(default = "default_max_callers")]
    pub max_callers: usize,
}

fn default_max_callers() -> usize {
    10_000
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            requests_per_sec: 0.0,
            burst: 0,
            max_callers: default_max_callers(),
        }
    }
}

/// Why the rate-limit settings are unusable.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum RateLimitConfigError {
    /// The rate is negative or not a number.
    #[error("rate_limit.requests_per_sec must be a finite number >= 0 (0 = off), got {0}")]
    BadRate(f64),
    /// No caller could be tracked.
    #[error("rate_limit.max_callers must be at least 1")]
    NoCallers,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Duration,
}

/// The rate limiter of scoring calls.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    max_callers: usize,
    clock: Arc<dyn Clock>,
    buckets: Mutex<HashMap<String, Bucket>>,
    rejected: Option<Counter<0>>,
    evicted: Option<Counter<0>>,
}

/// A call refused by the rate limit: `429 rate_limited` with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// Whole seconds until the caller has a token again (at least 1).
    pub retry_after_secs: u64,
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "too many scoring calls from this caller; retry in {} s",
            self.retry_after_secs
        )
    }
}

impl ResponseError for RateLimited {
    fn status_code(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::TooManyRequests()
            .insert_header((RETRY_AFTER, self.retry_after_secs.to_string()))
            .json(ErrorBody {
                code: ErrorCode::RateLimited,
                message: self.to_string(),
            })
    }
}

impl RateLimiter {
    /// A limiter from settings; `None` when the limit is off. Registers its metrics on
    /// `metrics` when given.
    ///
    /// # Errors
    /// A negative or non-finite rate, or no room for any caller.
    pub fn new(
        settings: &RateLimitSettings,
        clock: Arc<dyn Clock>,
        metrics: Option<&Metrics>,
    ) -> Result<Option<Self>, RateLimitConfigError> {
        let rate = settings.requests_per_sec;
        if !rate.is_finite() || rate < 0.0 {
            return Err(RateLimitConfigError::BadRate(rate));
        }
        if rate == 0.0 {
            return Ok(None);
        }
        if settings.max_callers == 0 {
            return Err(RateLimitConfigError::NoCallers);
        }
        let burst = if settings.burst == 0 {
            rate.ceil().max(1.0)
        } else {
            f64::from(settings.burst)
        };
        let register = |name: &str, help: &str| {
            metrics.and_then(|m| {
                m.counter(name, help, [])
                    .inspect_err(|e| tracing::error!(error = %e, "Metric not registered."))
                    .ok()
            })
        };
        Ok(Some(Self {
            rate,
            burst,
            max_callers: settings.max_callers,
            clock,
            buckets: Mutex::new(HashMap::new()),
            rejected: register(
                "sextant_gateway_rate_limited_total",
                "Scoring calls refused with 429 by the per-caller rate limit.",
            ),
            evicted: register(
                "sextant_gateway_rate_limit_evictions_total",
                "Busy callers dropped from the rate-limit table because it was full.",
            ),
        }))
    }

    /// Takes a token from `caller`'s bucket, or says how long until there is one.
    ///
    /// # Errors
    /// [`RateLimited`] when the bucket is empty.
    pub fn check(&self, caller: &str) -> Result<(), RateLimited> {
        let now = self.clock.now();
        // A std mutex: the critical section is short and never awaits.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if !buckets.contains_key(caller) && buckets.len() >= self.max_callers {
            self.make_room(&mut buckets, now);
        }
        let bucket = buckets.entry(caller.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_sub(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.rate;
        drop(buckets);
        if let Some(c) = &self.rejected {
            c.inc([]);
        }
        // `wait` is positive and at most 1/rate; Retry-After is whole seconds, at least 1.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive wait in seconds, far below u64::MAX"
        )]
        let retry_after_secs = (wait.ceil() as u64).max(1);
        Err(RateLimited { retry_after_secs })
    }

    /// Callers tracked now.
    pub fn tracked_callers(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Drops buckets that would be full by now; if none, the least recently seen one.
    fn make_room(&self, buckets: &mut HashMap<String, Bucket>, now: Duration) {
        let refill = Duration::from_secs_f64(self.burst / self.rate);
        buckets.retain(|_, b| now.saturating_sub(b.at) < refill);
        if buckets.len() < self.max_callers {
            return;
        }
        let oldest = buckets
            .iter()
            .min_by_key(|(_, b)| b.at)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            buckets.remove(&k);
            if let Some(c) = &self.evicted {
                c.inc([]);
            }
        }
    }
}

/// A verified caller that passed the rate limit: the extractor of scoring routes.
///
/// Authentication runs first (an unauthenticated call is 401 and takes no token), then the
/// caller's bucket is charged before the body is read.
#[derive(Debug, Clone)]
pub struct LimitedCaller(pub Caller);

impl FromRequest for LimitedCaller {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limiter = req.app_data::<web::Data<Option<RateLimiter>>>().cloned();
        let auth = Caller::from_request(req, payload);
        Box::pin(async move {
            let caller = auth.await?;
            if let Some(limiter) = limiter.as_ref().and_then(|d| d.get_ref().as_ref()) {
                limiter
                    .check(caller.sub.as_deref().unwrap_or_default())
                    .inspect_err(|e| {
                        tracing::info!(
                            retry_after_secs = e.retry_after_secs,
                            "Rate-limited a scoring call."
                        );
                    })?;
            }
            Ok(Self(caller))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: u32, max: usize) -> (RateLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let l = RateLimiter::new(
            &RateLimitSettings {
                requests_per_sec: rate,
                burst,
                max_callers: max,
            },
            Arc::clone(&clock) as Arc<dyn Clock>,
            None,
        )
        .expect("valid")
        .expect("on");
        (l, clock)
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let (l, clock) = limiter(0.5, 3, 10);
        for _ in 0..3 {
            assert!(l.check("a").is_ok());
        }
        // Empty: one token takes 2 s at 0.5/s.
        assert_eq!(
            l.check("a"),
            Err(RateLimited {
                retry_after_secs: 2
            })
        );
        // Another caller has its own bucket.
        assert!(l.check("b").is_ok());
        clock.advance(Duration::from_millis(1500));
        assert_eq!(
            l.check("a"),
            Err(RateLimited {
                retry_after_secs: 1
            })
        );
        clock.advance(Duration::from_millis(500));
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_err());
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let (l, _clock) = limiter(100.0, 1, 10);
        assert!(l.check("a").is_ok());
        assert_eq!(
            l.check("a"),
            Err(RateLimited {
                retry_after_secs: 1
            })
        );
    }

    #[test]
    fn off_and_invalid_settings() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let off = RateLimitSettings::default();
        assert!(matches!(
            RateLimiter::new(&off, Arc::clone(&clock), None),
            Ok(None)
        ));
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let s = RateLimitSettings {
                requests_per_sec: bad,
                ..off
            };
            assert!(matches!(
                RateLimiter::new(&s, Arc::clone(&clock), None),
                Err(RateLimitConfigError::BadRate(_))
            ));
        }
        let s = RateLimitSettings {
            requests_per_sec: 1.0,
            max_callers: 0,
            ..off
        };
        assert_eq!(
            RateLimiter::new(&s, clock, None).err(),
            Some(RateLimitConfigError::NoCallers)
        );
    }

    #[test]
    fn memory_stays_bounded_and_idle_callers_go_first() {
        let (l, clock) = limiter(1.0, 2, 3);
        l.check("a").expect("a");
        clock.advance(Duration::from_secs(1));
        l.check("b").expect("b");
        l.check("c").expect("c");
        // a has been idle 1 s of the 2 s it needs to refill: still busy; all three are busy,
        // so the least recently seen (a) makes room.
        l.check("d").expect("d");
        assert_eq!(l.tracked_callers(), 3);
        // After 2 s every bucket is full again: they all go, and only e is tracked.
        clock.advance(Duration::from_secs(2));
        l.check("e").expect("e");
        assert_eq!(l.tracked_callers(), 1);
        for i in 0..100 {
            let _ = l.check(&format!("caller-{i}"));
            assert!(l.tracked_callers() <= 3);
        }
    }
}
