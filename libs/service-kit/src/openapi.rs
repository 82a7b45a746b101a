//! Serving a service's OpenAPI document and an API docs page that works offline (Swagger UI is
//! vendored into the binary; the page loads nothing from the internet).

use utoipa_swagger_ui::SwaggerUi;

/// `/openapi.json` and the docs page at `/docs/`.
pub fn docs(spec: utoipa::openapi::OpenApi) -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", spec)
}

/// `spec` with the paths [`crate::server::Service::start`] adds to every service (`/metrics`),
/// so the served and committed documents describe them too.
pub fn with_operational_paths(mut spec: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    spec.merge(crate::metrics::MetricsDoc::openapi());
    spec
}

/// The spec as committed under `openapi/`: pretty JSON with a trailing newline.
pub fn to_committed_json(spec: &utoipa::openapi::OpenApi) -> String {
    let mut s = spec.to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}

/// Fails (panics, for tests) when `openapi/<name>.json` at the workspace root differs from
/// `spec`; rewrites it instead when `UPDATE_OPENAPI=1`.
pub fn assert_committed(spec: &utoipa::openapi::OpenApi, name: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../openapi")
        .join(format!("{name}.json"));
    let generated = to_committed_json(&with_operational_paths(spec.clone()));
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with the code: run `UPDATE_OPENAPI=1 cargo test --workspace --test openapi` and commit the result",
        path.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_document_describes_metrics_as_prometheus_text() {
        let spec = with_operational_paths(utoipa::openapi::OpenApi::default());
        let json: serde_json::Value =
            serde_json::from_str(&to_committed_json(&spec)).expect("valid json");
        let get = &json["paths"]["/metrics"]["get"];
        assert_eq!(get["operationId"], "metrics");
        assert!(
            get["responses"]["200"]["content"]["text/plain; version=0.0.4; charset=utf-8"]
                .is_object(),
            "{json}"
        );
        if std::env::var("PRINT_OPERATIONAL_PATHS").is_ok() {
            println!("{}", to_committed_json(&spec));
        }
    }
}
