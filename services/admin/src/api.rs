//! The console's routes: the page and its script, and `/api/…`, which reads and acts on the
//! other services over HTTP.
//!
//! Reads fan out to every upstream at once and each panel carries its own outcome, so a
//! connector that is down leaves the model table usable. Actions (start a sync, promote a model)
//! pass the upstream's answer through unchanged — status and `{code, message}` body — so the page
//! shows the service's own reason (`sync_in_progress`, `not_found`, …); only a failed transport
//! becomes 502 `upstream_unavailable`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Serialize;
use serde_json::Value;
use sextant_contracts::api::Health;
use sextant_contracts::{ErrorBody, ErrorCode};
use sextant_service_kit::ApiError;
use sextant_service_kit::internal_auth::{InternalAuth, InternalKey};
use utoipa::{OpenApi, ToSchema};

use crate::auth::AdminToken;
use crate::{Settings, StartError};

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

/// No inline script, no third-party origin; plots are drawn from blob: URLs the script makes.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The services the console calls.
#[derive(Debug, Clone)]
pub struct Upstreams {
    connector: String,
    trainer: String,
    gateway: String,
    /// Signs the internal tokens the console's calls carry.
    internal: Option<InternalAuth>,
}

impl Upstreams {
    /// Checks the URLs.
    pub fn new(s: &Settings) -> Result<Self, StartError> {
        let check = |name: &'static str, url: &str| {
            let u = url.trim_end_matches('/');
            if u.starts_with("http://") || u.starts_with("https://") {
                Ok(u.to_owned())
            } else {
                Err(StartError::BadUrl { name })
            }
        };
        Ok(Self {
            connector: check("connector_url", &s.connector_url)?,
            trainer: check("trainer_url", &s.trainer_url)?,
            gateway: check("gateway_url", &s.gateway_url)?,
            internal: InternalKey::from_setting(s.internal_token.as_ref())?
                .map(|k| InternalAuth::new("admin", k)),
        })
    }
}

/// Shared by the handlers.
#[derive(Debug)]
pub struct AppState {
    pub http: reqwest::Client,
    pub upstreams: Upstreams,
}

impl AppState {
    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, url);
        match self.upstreams.internal.as_ref().map(InternalAuth::header) {
            Some(Ok(h)) => rb.header(reqwest::header::AUTHORIZATION, h),
            Some(Err(e)) => {
                // The upstream answers 401, which the panel reports.
                tracing::error!(error = %e, "Could not mint an internal token.");
                rb
            }
            None => rb,
        }
    }

    /// GET `url`, JSON expected: the panel for it.
    async fn panel(&self, what: &str, url: String) -> Panel {
        match self.request(reqwest::Method::GET, url).send().await {
            Ok(resp) => {
                let status = resp.status();
                match resp.json::<Value>().await {
                    Ok(body) if status.is_success() => Panel::ok(body),
                    Ok(body) => Panel::failed(format!(
                        "{what} answered {}: {}",
                        status.as_u16(),
                        body.get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("no message")
                    )),
                    Err(_) => {
                        Panel::failed(format!("{what} answered {} without JSON", status.as_u16()))
                    }
                }
            }
            Err(e) => {
                tracing::warn!(upstream = what, error = %e, "Upstream call failed.");
                Panel::failed(format!("{what} is unavailable"))
            }
        }
    }
}

/// One upstream's part of the overview.
#[derive(Debug, Serialize, ToSchema)]
pub struct Panel {
    /// Whether the upstream answered.
    pub ok: bool,
    /// What it answered.
    #[schema(value_type = Object)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Why there is no data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Panel {
    fn ok(data: Value) -> Self {
        Self {
            ok: true,
            data: Some(data),
            error: None,
        }
    }
    fn failed(error: String) -> Self {
        Self {
            ok: false,
            data: None,
            error: Some(error),
        }
    }
}

/// Everything the page shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    /// Sync runs, newest first (connector `GET /v1/syncs`).
    pub syncs: Panel,
    /// Models with metrics and promotion state (trainer `GET /v1/models`).
    pub models: Panel,
    /// Gateway health: `{alive, ready, ready_reason, scores_requests, counters}`.
    pub gateway: Panel,
}

/// The OpenAPI document of the console's API.
#[derive(OpenApi, Debug)]
#[openapi(
    info(
        title = "Sextant admin console",
        description = "The admin console's API: an overview of syncs, models and the gateway, and the actions the page offers. Every /api/ call needs the admin token as a bearer token."
    ),
    paths(overview, start_sync, promote, plot, healthz),
    components(schemas(Overview, Panel, ErrorBody, ErrorCode, Health)),
    modifiers(&AdminTokenScheme)
)]
pub struct ApiDoc;

/// Declares the `admin_token` bearer scheme the `/api/` operations name.
struct AdminTokenScheme;

impl utoipa::Modify for AdminTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(page))
        .route("/app.js", web::get().to(script))
        .route("/style.css", web::get().to(style))
        // Browsers ask for one; there is none, and a 404 would only add noise to their console.
        .route("/favicon.ico", web::get().to(HttpResponse::NoContent))
        .service(overview)
        .service(start_sync)
        .service(promote)
        .service(plot)
        .service(healthz);
}

fn static_response(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

async fn page() -> HttpResponse {
    static_response("text/html; charset=utf-8", PAGE)
}
async fn script() -> HttpResponse {
    static_response("text/javascript; charset=utf-8", SCRIPT)
}
async fn style() -> HttpResponse {
    static_response("text/css; charset=utf-8", STYLE)
}

/// Syncs, models and gateway health in one answer; each part says whether its service answered.
#[utoipa::path(
    responses(
        (status = 200, description = "The overview", body = Overview),
        (status = 401, description = "No or wrong admin token (unauthorized)", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[get("/api/overview")]
async fn overview(
    req: HttpRequest,
    token: web::Data<AdminToken>,
    state: web::Data<AppState>,
) -> Result<web::Json<Overview>, ApiError> {
    token.check(&req)?;
    let up = &state.upstreams;
    let (syncs, models, gateway) = futures_util::future::join3(
        state.panel("the connector", format!("{}/v1/syncs", up.connector)),
        state.panel("the trainer", format!("{}/v1/models", up.trainer)),
        gateway_panel(&state),
    )
    .await;
    Ok(web::Json(Overview {
        syncs,
        models,
        gateway,
    }))
}

/// The gateway's liveness, readiness and request counters (from its `/metrics`).
async fn gateway_panel(state: &AppState) -> Panel {
    let base = &state.upstreams.gateway;
    let get = |path: &str| state.http.get(format!("{base}{path}")).send();
    let (alive, ready, metrics) =
        futures_util::future::join3(get("/healthz"), get("/readyz"), get("/metrics")).await;
    let alive = match alive {
        Ok(r) => r.status().is_success(),
        Err(e) => {
            tracing::warn!(upstream = "gateway", error = %e, "Upstream call failed.");
            return Panel::failed("the gateway is unavailable".into());
        }
    };
    let (ready, ready_reason) = match ready {
        Ok(r) if r.status().is_success() => (true, None),
        Ok(r) => {
            let reason = r
                .json::<ErrorBody>()
                .await
                .map(|b| b.message)
                .unwrap_or_else(|_| "not ready".into());
            (false, Some(reason))
        }
        Err(_) => (false, Some("no answer".into())),
    };
    let text = match metrics {
        Ok(r) if r.status().is_success() => r.text().await.ok(),
        _ => None,
    };
    let mut data =
        serde_json::json!({"alive": alive, "ready": ready, "ready_reason": ready_reason});
    if let Some(text) = text {
        let (scores, counters) = gateway_counters(&text);
        data["scores_requests"] = scores;
        data["counters"] = counters;
    }
    Panel::ok(data)
}

/// From the gateway's metrics: scoring requests by status class, and the gateway's own
/// `sextant_gateway_*` samples summed by name.
fn gateway_counters(text: &str) -> (Value, Value) {
    let mut scores = serde_json::Map::new();
    let mut counters = serde_json::Map::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if name == "sextant_http_requests_total" && series.contains("route=\"/v1/scores\"") {
            let class = series
                .split("status=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("other");
            let e = scores.entry(class.to_owned()).or_insert(Value::from(0.0));
            *e = Value::from(e.as_f64().unwrap_or(0.0) + value);
        } else if name.starts_with("sextant_gateway_") && !name.ends_with("_bucket") {
            let e = counters.entry(name.to_owned()).or_insert(Value::from(0.0));
            *e = Value::from(e.as_f64().unwrap_or(0.0) + value);
        }
    }
    (Value::Object(scores), Value::Object(counters))
}

/// Passes an upstream answer through: its status, content type and body.
async fn relay(what: &str, sent: Result<reqwest::Response, reqwest::Error>) -> HttpResponse {
    let resp = match sent {
        Ok(r) => r,
        Err(e) => return actix_web::ResponseError::error_response(&ApiError::upstream(what, e)),
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    match resp.bytes().await {
        Ok(body) => HttpResponse::build(status)
            .content_type(content_type)
            .body(body),
        Err(e) => actix_web::ResponseError::error_response(&ApiError::upstream(what, e)),
    }
}

/// Starts a sync (connector `POST /v1/syncs`); the connector's answer is passed through.
#[utoipa::path(
    responses(
        (status = 202, description = "Started: the connector's sync job", body = Object),
        (status = 401, description = "No or wrong admin token (unauthorized)", body = ErrorBody),
        (status = 409, description = "A sync is already running (sync_in_progress)", body = ErrorBody),
        (status = 502, description = "The connector did not answer (upstream_unavailable)", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[post("/api/syncs")]
async fn start_sync(
    req: HttpRequest,
    token: web::Data<AdminToken>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    token.check(&req)?;
    let url = format!("{}/v1/syncs", state.upstreams.connector);
    tracing::info!("Sync started from the admin console.");
    Ok(relay(
        "the connector",
        state.request(reqwest::Method::POST, url).send().await,
    )
    .await)
}

/// A model version as the registry names it (`churn-v3`): letters, digits, `.`, `_`, `-`.
fn checked_version(v: &str) -> Result<&str, ApiError> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !v.starts_with('.');
    if ok {
        Ok(v)
    } else {
        Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            "a model version has 1 to 64 letters, digits, '.', '_' or '-'",
        ))
    }
}

/// Makes a model current (trainer `POST /v1/models/{version}/promote`); the trainer's answer is
/// passed through, including 404 when the version, or promotion itself, is unknown to it.
#[utoipa::path(
    params(("version" = String, Path, description = "Model version, e.g. churn-v3")),
    responses(
        (status = 200, description = "Promoted: the trainer's model metadata", body = Object),
        (status = 400, description = "Malformed version (invalid_parameter)", body = ErrorBody),
        (status = 401, description = "No or wrong admin token (unauthorized)", body = ErrorBody),
        (status = 404, description = "Unknown version, or a trainer without promotion (not_found)", body = ErrorBody),
        (status = 502, description = "The trainer did not answer (upstream_unavailable)", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[post("/api/models/{version}/promote")]
async fn promote(
    req: HttpRequest,
    token: web::Data<AdminToken>,
    state: web::Data<AppState>,
    version: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    token.check(&req)?;
    let v = checked_version(&version)?;
    let url = format!("{}/v1/models/{v}/promote", state.upstreams.trainer);
    tracing::info!(version = v, "Promotion requested from the admin console.");
    Ok(relay(
        "the trainer",
        state.request(reqwest::Method::POST, url).send().await,
    )
    .await)
}

/// A model's plot (SVG) from the trainer.
#[utoipa::path(
    params(
        ("version" = String, Path, description = "Model version"),
        ("name" = String, Path, description = "Plot file, e.g. roc.svg or learning_curve.svg"),
    ),
    responses(
        (status = 200, description = "SVG image", content_type = "image/svg+xml", body = String),
        (status = 400, description = "Malformed version or name (invalid_parameter)", body = ErrorBody),
        (status = 401, description = "No or wrong admin token (unauthorized)", body = ErrorBody),
        (status = 404, description = "No such model or plot (not_found)", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[get("/api/models/{version}/plots/{name}")]
async fn plot(
    req: HttpRequest,
    token: web::Data<AdminToken>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    token.check(&req)?;
    let (version, name) = path.into_inner();
    let v = checked_version(&version)?;
    let plain = name.strip_suffix(".svg").is_some_and(|stem| {
        !stem.is_empty()
            && stem.len() <= 40
            && stem
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    });
    if !plain {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidParameter,
            "a plot name is lower-case letters, digits and '_' ending in .svg",
        ));
    }
    let url = format!("{}/v1/models/{v}/plots/{name}", state.upstreams.trainer);
    Ok(relay(
        "the trainer",
        state.request(reqwest::Method::GET, url).send().await,
    )
    .await)
}

/// Liveness.
#[utoipa::path(responses((status = 200, description = "Alive", body = Health)))]
#[get("/healthz")]
async fn healthz() -> web::Json<Health> {
    web::Json(sextant_service_kit::health::alive("admin"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_gateway_counters() {
        assert!(checked_version("churn-v3").is_ok());
        assert!(checked_version("../etc").is_err());
        assert!(checked_version("a/b").is_err());
        assert!(checked_version("").is_err());
        let text = "# TYPE sextant_http_requests_total counter\n\
            sextant_http_requests_total{method=\"POST\",route=\"/v1/scores\",status=\"2xx\"} 7\n\
            sextant_http_requests_total{method=\"POST\",route=\"/v1/scores\",status=\"4xx\"} 2\n\
            sextant_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"2xx\"} 40\n\
            sextant_gateway_scores_total{outcome=\"scored\"} 5\n\
            sextant_gateway_scores_total{outcome=\"no_history\"} 1\n";
        let (scores, counters) = gateway_counters(text);
        assert_eq!(scores["2xx"], 7.0);
        assert_eq!(scores["4xx"], 2.0);
        assert_eq!(counters["sextant_gateway_scores_total"], 6.0);
    }
}
