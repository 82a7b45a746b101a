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
