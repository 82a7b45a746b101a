//! Serving a service's OpenAPI document and an API docs page that works offline (Swagger UI is
//! vendored into the binary; the page loads nothing from the internet).

use utoipa_swagger_ui::SwaggerUi;

/// `/openapi.json` and the docs page at `/docs/`.
pub fn docs(spec: utoipa::openapi::OpenApi) -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", spec)
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
    let generated = to_committed_json(spec);
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
