//! The committed spec (`openapi/trainer.json`) must equal the generated one.

#[test]
fn committed_spec_matches_the_code() {
    sextant_service_kit::openapi::assert_committed(&sextant_trainer::api::openapi(), "trainer");
}
