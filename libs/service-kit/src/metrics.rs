//! Prometheus metrics for every service, served at `/metrics` in the text exposition format
//! (version 0.0.4), so one ServiceMonitor scrapes the whole suite the same way.
//!
//! [`crate::server::Service::start`] records, for every request, a counter and a latency
//! histogram labelled by method, *route pattern* (`/v1/models/{version}`, never the concrete
//! path, so a record id cannot become a label) and status class (`2xx`…`5xx`), plus the number of
//! requests in flight and a `sextant_build_info` gauge. A service registers its own counters,
//! gauges and histograms on the same [`Metrics`] registry (for example the gateway's scores
//! served) and passes it to [`crate::server::Service::start_with_metrics`].
//!
//! Label *values* of service metrics are `&'static str`: they come from a fixed vocabulary in
//! the code, never from a request, so ids, tokens and other secrets cannot reach a label and the
//! number of series stays bounded. The registry is small and dependency-free on purpose: four
//! services need counters, gauges and histograms, not a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::HttpResponse;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets in seconds (Prometheus' defaults, which span a cached lookup to a slow
/// training-set stream).
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of a request that matched no route (one series for every unknown path).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The git revision compiled in (`SEXTANT_GIT_REVISION` at build time, set by the image
/// builds), or `unknown`.
pub const REVISION: &str = match option_env!("SEXTANT_GIT_REVISION") {
    Some(r) => r,
    None => "unknown",
};

/// Why a metric could not be registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricsError {
    /// The metric or a label name is not a valid Prometheus name.
    #[error("{0:?} is not a valid metric or label name")]
    InvalidName(String),
    /// The name is already registered as another kind or with other labels.
    #[error("metric {0:?} is already registered with another kind or other labels")]
    Conflict(String),
    /// Histogram buckets must be finite and strictly increasing.
    #[error("histogram {0:?}: buckets must be finite and strictly increasing")]
    InvalidBuckets(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Clone)]
struct HistogramValue {
    /// Non-cumulative counts per bucket; the last is +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug)]
enum Series {
    Scalar(BTreeMap<Vec<String>, f64>),
    Histogram {
        buckets: Vec<f64>,
        values: BTreeMap<Vec<String>, HistogramValue>,
    },
}

#[derive(Debug)]
struct Family {
    help: String,
    kind: Kind,
    labels: Vec<String>,
    series: Series,
}

#[derive(Debug)]
struct Registry {
    families: Mutex<BTreeMap<String, Family>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Family>> {
        // A panic while holding the lock leaves at worst one sample half-updated; metrics
        // must keep working rather than take the service down.
        self.families.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A service's metrics registry. Cheap to clone; clones share the same metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    http: Option<HttpMetrics>,
}

#[derive(Debug, Clone)]
struct HttpMetrics {
    requests: Handle,
    duration: Handle,
    in_flight: Handle,
}

impl Metrics {
    /// An empty registry with the standard HTTP metrics of `service` and its build info.
    pub fn new(service: &'static str) -> Self {
        let mut m = Self {
            registry: Arc::new(Registry {
                families: Mutex::new(BTreeMap::new()),
            }),
            http: None,
        };
        // The standard names are valid and registered once on an empty registry, so these
        // cannot fail; should they, the service still runs, without HTTP metrics.
        let http = (|| -> Result<HttpMetrics, MetricsError> {
            let requests = m.register(
                "sextant_http_requests_total",
                "HTTP requests answered, by method, route pattern and status class.",
                Kind::Counter,
                &["method", "route", "status"],
                None,
            )?;
            let duration = m.register(
                "sextant_http_request_duration_seconds",
                "Time from receiving a request to its response head, by method, route pattern and status class.",
                Kind::Histogram,
                &["method", "route", "status"],
                Some(DEFAULT_BUCKETS),
            )?;
            let in_flight = m.register(
                "sextant_http_requests_in_flight",
                "HTTP requests being handled now.",
                Kind::Gauge,
                &[],
                None,
            )?;
            in_flight.set_owned(Vec::new(), 0.0);
            let info = m.register(
                "sextant_build_info",
                "Always 1; the labels say which build of which service is running.",
                Kind::Gauge,
                &["service", "version", "revision"],
                None,
            )?;
            info.set_owned(
                vec![
                    service.to_owned(),
                    env!("CARGO_PKG_VERSION").to_owned(),
                    REVISION.to_owned(),
                ],
                1.0,
            );
            let start = m.register(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds.",
                Kind::Gauge,
                &[],
                None,
            )?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            start.set_owned(Vec::new(), now.floor());
            Ok(HttpMetrics {
                requests,
                duration,
                in_flight,
            })
        })();
        match http {
            Ok(h) => m.http = Some(h),
            Err(e) => tracing::error!(error = %e, "Standard metrics not registered."),
        }
        m
    }

    /// Registers (or returns the already registered) counter `name` with label names `labels`.
    pub fn counter<const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
    ) -> Result<Counter<N>, MetricsError> {
        self.register(name, help, Kind::Counter, &labels, None)
            .map(Counter)
    }

    /// Registers (or returns the already registered) gauge `name` with label names `labels`.
    pub fn gauge<const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
    ) -> Result<Gauge<N>, MetricsError> {
        self.register(name, help, Kind::Gauge, &labels, None)
            .map(Gauge)
    }

    /// Registers (or returns the already registered) histogram `name` with upper bounds
    /// `buckets` (finite, increasing; `+Inf` is added).
    pub fn histogram<const N: usize>(
        &self,
        name: &str,
        help: &str,
        labels: [&str; N],
        buckets: &[f64],
    ) -> Result<Histogram<N>, MetricsError> {
        self.register(name, help, Kind::Histogram, &labels, Some(buckets))
            .map(Histogram)
    }

    fn register(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[&str],
        buckets: Option<&[f64]>,
    ) -> Result<Handle, MetricsError> {
        if !valid_name(name, true) {
            return Err(MetricsError::InvalidName(name.to_owned()));
        }
        if let Some(bad) = labels.iter().find(|l| {
            !valid_name(l, false) || l.starts_with("__") || (kind == Kind::Histogram && **l == "le")
        }) {
            return Err(MetricsError::InvalidName((*bad).to_owned()));
        }
        let buckets = match buckets {
            Some(b) => {
                let ok = !b.is_empty()
                    && b.iter().all(|x| x.is_finite())
                    && b.windows(2).all(|w| w[0] < w[1]);
                if !ok {
                    return Err(MetricsError::InvalidBuckets(name.to_owned()));
                }
                Some(b.to_vec())
            }
            None => None,
        };
        let mut families = self.registry.lock();
        if let Some(existing) = families.get(name) {
            let same_buckets = match (&existing.series, &buckets) {
                (Series::Histogram { buckets: have, .. }, Some(want)) => have == want,
                (Series::Scalar(_), None) => true,
                _ => false,
            };
            if existing.kind != kind || existing.labels != labels || !same_buckets {
                return Err(MetricsError::Conflict(name.to_owned()));
            }
        } else {
            let series = match buckets {
                Some(buckets) => Series::Histogram {
                    buckets,
                    values: BTreeMap::new(),
                },
                None => Series::Scalar(BTreeMap::new()),
            };
            families.insert(
                name.to_owned(),
                Family {
                    help: help.to_owned(),
                    kind,
                    labels: labels.iter().map(|l| (*l).to_owned()).collect(),
                    series,
                },
            );
        }
        Ok(Handle {
            registry: Arc::clone(&self.registry),
            name: name.to_owned(),
        })
    }

    /// Everything registered, in the Prometheus text format.
    pub fn render(&self) -> String {
        let families = self.registry.lock();
        let mut out = String::new();
        for (name, f) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {name} {}", f.kind.as_str());
            match &f.series {
                Series::Scalar(values) => {
                    for (lv, v) in values {
                        let _ = writeln!(
                            out,
                            "{name}{} {}",
                            label_set(&f.labels, lv, None),
                            fmt_value(*v)
                        );
                    }
                }
                Series::Histogram { buckets, values } => {
                    for (lv, h) in values {
                        let mut cumulative = 0;
                        for (i, c) in h.counts.iter().enumerate() {
                            cumulative += c;
                            let le = buckets
                                .get(i)
                                .map_or_else(|| "+Inf".to_owned(), |b| fmt_value(*b));
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {cumulative}",
                                label_set(&f.labels, lv, Some(&le))
                            );
                        }
                        let ls = label_set(&f.labels, lv, None);
                        let _ = writeln!(out, "{name}_sum{ls} {}", fmt_value(h.sum));
                        let _ = writeln!(out, "{name}_count{ls} {}", h.count);
                    }
                }
            }
        }
        out
    }

    /// Records one answered request (called by the middleware in [`crate::server`]).
    fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let Some(http) = &self.http else { return };
        let labels = vec![
            method.to_owned(),
            route.to_owned(),
            status_class(status).to_owned(),
        ];
        http.duration.observe_owned(labels.clone(), seconds);
        http.requests.add_owned(labels, 1.0);
    }
}

/// `2xx`, `4xx`, …
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn valid_name(name: &str, colons: bool) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let ok = |c: char, first: bool| {
        c.is_ascii_alphabetic()
            || c == '_'
            || (colons && c == ':')
            || (!first && c.is_ascii_digit())
    };
    ok(first, true) && chars.all(|c| ok(c, false))
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_set(names: &[String], values: &[String], le: Option<&str>) -> String {
    if names.is_empty() && le.is_none() {
        return String::new();
    }
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape_label(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

/// A registered metric; the typed wrappers below fix its kind and label count.
#[derive(Debug, Clone)]
struct Handle {
    registry: Arc<Registry>,
    name: String,
}

impl Handle {
    fn update(&self, labels: Vec<String>, f: impl FnOnce(&mut Series, Vec<String>)) {
        let mut families = self.registry.lock();
        if let Some(family) = families.get_mut(&self.name) {
            f(&mut family.series, labels);
        }
    }

    fn add_owned(&self, labels: Vec<String>, by: f64) {
        self.update(labels, |s, l| {
            if let Series::Scalar(values) = s {
                *values.entry(l).or_insert(0.0) += by;
            }
        });
    }

    fn set_owned(&self, labels: Vec<String>, to: f64) {
        self.update(labels, |s, l| {
            if let Series::Scalar(values) = s {
                values.insert(l, to);
            }
        });
    }

    fn observe_owned(&self, labels: Vec<String>, v: f64) {
        self.update(labels, |s, l| {
            if let Series::Histogram { buckets, values } = s {
                let h = values.entry(l).or_insert_with(|| HistogramValue {
                    counts: vec![0; buckets.len() + 1],
                    sum: 0.0,
                    count: 0,
                });
                let i = buckets
                    .iter()
                    .position(|b| v <= *b)
                    .unwrap_or(buckets.len());
                if let Some(c) = h.counts.get_mut(i) {
                    *c += 1;
                }
                h.sum += v;
                h.count += 1;
            }
        });
    }
}

fn owned<const N: usize>(labels: [&'static str; N]) -> Vec<String> {
    labels.iter().map(|l| (*l).to_owned()).collect()
}

/// A monotonically increasing count.
#[derive(Debug, Clone)]
pub struct Counter<const N: usize>(Handle);

impl<const N: usize> Counter<N> {
    /// Adds one.
    pub fn inc(&self, labels: [&'static str; N]) {
        self.0.add_owned(owned(labels), 1.0);
    }
    /// Adds `by`.
    pub fn inc_by(&self, labels: [&'static str; N], by: u64) {
        // Counts of events stay far below 2^53, where f64 is exact.
        #[expect(clippy::cast_precision_loss, reason = "event counts stay below 2^53")]
        self.0.add_owned(owned(labels), by as f64);
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone)]
pub struct Gauge<const N: usize>(Handle);

impl<const N: usize> Gauge<N> {
    /// Sets the value.
    pub fn set(&self, labels: [&'static str; N], to: f64) {
        self.0.set_owned(owned(labels), to);
    }
    /// Adds `by` (negative to subtract).
    pub fn add(&self, labels: [&'static str; N], by: f64) {
        self.0.add_owned(owned(labels), by);
    }
}

/// A distribution of observations in fixed buckets.
#[derive(Debug, Clone)]
pub struct Histogram<const N: usize>(Handle);

impl<const N: usize> Histogram<N> {
    /// Records one observation.
    pub fn observe(&self, labels: [&'static str; N], value: f64) {
        self.0.observe_owned(owned(labels), value);
    }
}

/// Prometheus metrics of this service.
///
/// Request counts and latency by route pattern and status class, requests in flight, build info
/// and the service's own metrics. Labels never carry ids or secrets.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Metrics in the Prometheus text format (0.0.4)", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8")
    )
)]
pub async fn serve(req: actix_web::HttpRequest) -> HttpResponse {
    match req.app_data::<Metrics>() {
        Some(m) => HttpResponse::Ok()
            .content_type(CONTENT_TYPE)
            .body(m.render()),
        // Service::start always registers one; a hand-built app without it gets the usual error.
        None => actix_web::ResponseError::error_response(&crate::ApiError::not_found(
            "metrics are not enabled",
        )),
    }
}

/// The OpenAPI description of `/metrics`, merged into every service's document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(serve))]
pub(crate) struct MetricsDoc;

/// Decrements the in-flight gauge however the request ends (including a dropped connection,
/// which drops the handler's future).
struct InFlight<'a>(&'a Handle);

impl<'a> InFlight<'a> {
    fn enter(h: &'a Handle) -> Self {
        h.add_owned(Vec::new(), 1.0);
        Self(h)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.add_owned(Vec::new(), -1.0);
    }
}

/// The middleware [`crate::server::Service::start`] wraps every app in; it finds the registry
/// in the app data.
pub(crate) async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    // The pattern of the matched route (`/v1/models/{version}`), never the path itself.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let Some(metrics) = req.app_data::<Metrics>().cloned() else {
        return next.call(req).await;
    };
    let _guard = metrics.http.as_ref().map(|h| InFlight::enter(&h.in_flight));
    let result = next.call(req).await;
    let status = match &result {
        Ok(resp) => resp.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    metrics.observe_request(&method, &route, status, started.elapsed().as_secs_f64());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_histograms_render_in_the_text_format() {
        let m = Metrics::new("test");
        let c = m
            .counter("sextant_things_total", "Things.", ["kind"])
            .expect("register counter");
        c.inc(["a"]);
        c.inc_by(["a"], 2);
        c.inc(["b\"q"]);
        let g = m
            .gauge("sextant_level", "Level.", [])
            .expect("register gauge");
        g.set([], 2.5);
        g.add([], -1.0);
        let h = m
            .histogram("sextant_size", "Size.", ["k"], &[1.0, 10.0])
            .expect("register histogram");
        h.observe(["x"], 0.5);
        h.observe(["x"], 5.0);
        h.observe(["x"], 50.0);
        let text = m.render();
        assert!(
            text.contains("# TYPE sextant_things_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("sextant_things_total{kind=\"a\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("sextant_things_total{kind=\"b\\\"q\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("sextant_level 1.5\n"), "{text}");
        assert!(
            text.contains("sextant_size_bucket{k=\"x\",le=\"1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("sextant_size_bucket{k=\"x\",le=\"10\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("sextant_size_bucket{k=\"x\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("sextant_size_sum{k=\"x\"} 55.5\n"), "{text}");
        assert!(text.contains("sextant_size_count{k=\"x\"} 3\n"), "{text}");
        assert!(
            text.contains("sextant_build_info{service=\"test\",version=\""),
            "{text}"
        );
    }

    #[test]
    fn registration_is_idempotent_and_refuses_conflicts_and_bad_names() {
        let m = Metrics::new("test");
        let a = m.counter("sextant_x_total", "X.", ["k"]).expect("first");
        let b = m
            .counter("sextant_x_total", "X.", ["k"])
            .expect("same again");
        a.inc(["v"]);
        b.inc(["v"]);
        assert!(m.render().contains("sextant_x_total{k=\"v\"} 2\n"));
        assert_eq!(
            m.gauge("sextant_x_total", "X.", ["k"]).err(),
            Some(MetricsError::Conflict("sextant_x_total".into()))
        );
        assert_eq!(
            m.counter("sextant_x_total", "X.", ["other"]).err(),
            Some(MetricsError::Conflict("sextant_x_total".into()))
        );
        assert_eq!(
            m.counter("bad-name", "X.", []).err(),
            Some(MetricsError::InvalidName("bad-name".into()))
        );
        assert_eq!(
            m.counter("sextant_y", "Y.", ["0abc"]).err(),
            Some(MetricsError::InvalidName("0abc".into()))
        );
        assert_eq!(
            m.histogram("sextant_h", "H.", [], &[2.0, 1.0]).err(),
            Some(MetricsError::InvalidBuckets("sextant_h".into()))
        );
        assert_eq!(
            m.histogram("sextant_h", "H.", ["le"], &[1.0]).err(),
            Some(MetricsError::InvalidName("le".into()))
        );
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
    }
}
