//! Wire contracts shared by every Sextant service.
//!
//! Services talk to each other only over HTTP; this crate is where the request and response
//! bodies of those calls live, together with the identifiers that cross every boundary.
//!
//! # Layout
//! - [`ids`]: newtypes parsed at the boundary (`SalesforceId`, `OrgId`, `ModelVersion`), so an
//!   invalid identifier cannot reach a service's core.
//! - [`error`]: the one error body every service returns (`{code, message}`), with stable codes.
//! - [`records`]: the CRM records the connector hands to the feature store.
//! - [`api`]: request/response bodies of the feature store, trainer, gateway and connector.
//! - [`stream`]: the reader of the streamed (NDJSON) training set.
//! - [`time`]: the injected clock, so point-in-time logic and token expiry are testable.

pub mod api;
pub mod error;
pub mod ids;
pub mod records;
pub mod stream;
pub mod time;

pub use error::{ErrorBody, ErrorCode};
pub use ids::{IdError, ModelVersion, OrgId, SalesforceId};
