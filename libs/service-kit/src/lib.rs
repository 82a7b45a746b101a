//! Plumbing every Sextant service shares: the API error type at the HTTP edge, JSON extractor
//! configuration that turns malformed input into that error, configuration loading, telemetry,
//! the OpenAPI/docs endpoints, and the HTTP client used between services.
//!
//! Nothing here knows about Salesforce, features or models; it only keeps the four services'
//! edges identical, so a client sees one error format and one set of conventions everywhere.

pub mod config;
pub mod error;
pub mod health;
pub mod http;
pub mod internal_auth;
pub mod metrics;
pub mod openapi;
pub mod server;
pub mod telemetry;

pub use error::ApiError;
