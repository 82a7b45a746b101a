//! A declared path called with a method its document does not declare answers `405
//! method_not_allowed` with `Allow`; an unknown path still answers `404 not_found` — on a real
//! server on loopback.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::Value;
use sextant_service_kit::server::Service;

fn spec() -> utoipa::openapi::OpenApi {
    serde_json::from_value(serde_json::json!({
        "openapi": "3.1.0",
        "info": {"title": "405 test", "version": "1"},
        "paths": {
            "/v1/items/{id}": {"get": {"responses": {"200": {"description": "item"}}}},
            "/v1/items/special": {"put": {"responses": {"200": {"description": "set"}}}}
        }
    }))
    .expect("spec")
}

#[tokio::test]
async fn an_undeclared_method_gets_405_with_allow_and_an_unknown_path_404() {
    let service = Service::start(
        "kit-405-test",
        "127.0.0.1",
        0,
        1 << 16,
        spec(),
        |cfg: &mut web::ServiceConfig| {
            cfg.route(
                "/v1/items/special",
                web::put().to(|| async { HttpResponse::Ok().body("set") }),
            )
            .route(
                "/v1/items/{id}",
                web::get().to(|| async { HttpResponse::Ok().body("item") }),
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

    let ok = http
        .get(format!("{base}/v1/items/7"))
        .send()
        .await
        .expect("get");
    assert_eq!(ok.status(), 200);

    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/v1/items/7", "GET"),
        (reqwest::Method::PATCH, "/v1/items/7", "GET"),
        (reqwest::Method::POST, "/v1/items/special", "PUT"),
        (reqwest::Method::PATCH, "/metrics", "GET"),
    ] {
        let resp = http
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(
            resp.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        let body: Value = resp.json().await.expect("json body");
        assert_eq!(body["code"], "method_not_allowed", "{body}");
        assert!(
            body["message"].as_str().unwrap_or_default().contains(allow),
            "{body}"
        );
    }

    for path in ["/v1/nothing", "/v1/items/7/extra", "/v1/items/"] {
        let resp = http
            .delete(format!("{base}{path}"))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), 404, "{path}");
        let body: Value = resp.json().await.expect("json body");
        assert_eq!(body["code"], "not_found", "{body}");
    }

    handle.stop(true).await;
    let _ = server.await;
}
