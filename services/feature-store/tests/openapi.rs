//! The committed spec (`openapi/feature-store.json`) must equal the generated one.
//! Regenerate with `UPDATE_OPENAPI=1 cargo test -p sextant-feature-store --test openapi`.

#[test]
fn committed_spec_matches_the_code() {
    sextant_service_kit::openapi::assert_committed(
        &sextant_feature_store::api::openapi(),
        "feature-store",
    );
}
