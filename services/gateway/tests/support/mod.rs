//! Test support shared by the gateway's integration tests.

pub mod churn;
