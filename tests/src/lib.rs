//! End-to-end tests of Sextant live in `chain.rs`: the org simulator, connector, feature store,
//! trainer and gateway start on random loopback ports and the tests drive them over HTTP only.
