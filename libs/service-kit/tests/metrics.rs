//! `/metrics` on a real server on loopback: the counters move with the requests made, routes are
//! labelled by pattern (never by the id in the path), and a service's own metrics appear beside
//! the standard ones.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use sextant_service_kit::metrics::Metrics;
use sextant_service_kit::server::Service;

#[derive(utoipa::OpenApi)]
#[openapi(info(title = "metrics test"))]
struct Doc;

/// The value of the sample line that starts with `prefix ` (name and labels), if any.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(http: &reqwest::Client, base: &str) -> String {
    let resp = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(resp.status(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    resp.text().await.expect("body")
}

#[tokio::test]
async fn counters_move_with_requests_and_labels_carry_patterns_not_ids() {
    let metrics = Metrics::new("kit-test");
    let served = metrics
        .counter(
            "sextant_test_items_served_total",
            "Items served by the test route.",
            ["outcome"],
        )
        .expect("register");
    let service = Service::start_with_metrics(
        "kit-test",
        "127.0.0.1",
        0,
        1 << 16,
        <Doc as utoipa::OpenApi>::openapi(),
        metrics,
        move |cfg: &mut web::ServiceConfig| {
            let served = served.clone();
            cfg.route(
                "/v1/items/{id}",
                web::get().to(move |id: web::Path<u32>| {
                    let served = served.clone();
                    async move {
                        if *id == 0 {
                            served.inc(["refused"]);
                            HttpResponse::BadRequest().finish()
                        } else {
                            served.inc(["ok"]);
                            HttpResponse::Ok().body("item")
                        }
                    }
                }),
            );
        },
    )
    .expect("start");
    let base = format!("http://127.0.0.1:{}", service.port());
    let handle = service.handle();
    let server = tokio::spawn(service.run_until_stopped());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    let before = scrape(&http, &base).await;
    assert!(
        before.contains("sextant_build_info{service=\"kit-test\",version=\""),
        "{before}"
    );
    // The scrape itself is in flight while the registry is rendered.
    assert_eq!(
        sample(&before, "sextant_http_requests_in_flight"),
        Some(1.0)
    );

    for id in [17, 4242, 0] {
        http.get(format!("{base}/v1/items/{id}"))
            .send()
            .await
            .expect("call");
    }
    http.get(format!("{base}/no/such/path/secret-ish-0015"))
        .send()
        .await
        .expect("call");

    let after = scrape(&http, &base).await;
    let ok = "sextant_http_requests_total{method=\"GET\",route=\"/v1/items/{id}\",status=\"2xx\"}";
    let bad = "sextant_http_requests_total{method=\"GET\",route=\"/v1/items/{id}\",status=\"4xx\"}";
    assert_eq!(sample(&after, ok), Some(2.0), "{after}");
    assert_eq!(sample(&after, bad), Some(1.0), "{after}");
    assert_eq!(
        sample(
            &after,
            "sextant_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"4xx\"}"
        ),
        Some(1.0),
        "{after}"
    );
    // The first scrape was counted too, under its own route.
    assert_eq!(
        sample(
            &after,
            "sextant_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"2xx\"}"
        ),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "sextant_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/items/{id}\",status=\"2xx\"}"
        ),
        Some(2.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "sextant_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/items/{id}\",status=\"2xx\",le=\"+Inf\"}"
        ),
        Some(2.0),
        "{after}"
    );
    // The scrape itself is in flight while the registry is rendered.
    assert_eq!(sample(&after, "sextant_http_requests_in_flight"), Some(1.0));
    assert_eq!(
        sample(&after, "sextant_test_items_served_total{outcome=\"ok\"}"),
        Some(2.0),
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "sextant_test_items_served_total{outcome=\"refused\"}"
        ),
        Some(1.0),
        "{after}"
    );
    // Concrete paths never become labels.
    assert!(!after.contains("4242"), "{after}");
    assert!(!after.contains("secret-ish"), "{after}");

    // The served OpenAPI document describes /metrics.
    let spec: serde_json::Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .expect("spec")
        .json()
        .await
        .expect("json");
    assert!(
        spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
            ["text/plain; version=0.0.4; charset=utf-8"]
            .is_object(),
        "{spec}"
    );

    handle.stop(true).await;
    server.await.expect("join").expect("server");
}
