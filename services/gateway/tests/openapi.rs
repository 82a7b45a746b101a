//! The committed spec (`openapi/gateway.json`) must equal the generated one.

#[test]
fn committed_spec_matches_the_code() {
    sextant_service_kit::openapi::assert_committed(&sextant_gateway::api::openapi(), "gateway");
}
