//! Batch feature computation for Sextant, set-based and columnar: the `rfmt-v2` aggregates and the
//! 104-week × 4-channel weekly sequences as DataFusion SQL over Parquet exports of the feature
//! store's versioned tables.
//!
//! Why a separate engine: the feature store computes features a page of accounts at a time for
//! training sets and the online store. A full rebuild for 25M customers / 2.5B order lines is a
//! batch job that wants a columnar engine over files, and when one machine is not enough, the same
//! SQL runs unchanged on Apache Ballista (DataFusion's distributed scheduler and executors). The
//! query calls three vectorised aggregate functions of its own ([`functions`]), so the cluster
//! runs this crate's scheduler and executor processes (`sextant-engine scheduler|executor`),
//! which register them; stock Ballista images cannot decode its plans.
//!
//! - [`schema`]: the Arrow schemas of the exported tables (one directory of Parquet files per
//!   table, the columns of `services/feature-store/src/migration.rs`).
//! - [`generate`]: a deterministic synthetic org (versions, late-known rows, deletions) for tests
//!   and benchmarks.
//! - [`query`]: the feature SQL for an org, a cut-off and the purchase statuses.
//! - [`functions`]: the weekly-sequence, purchase-gap and category aggregates, and their
//!   registration on local sessions, the Ballista scheduler and the executors.
//! - [`engine`]: registering the tables on a local or Ballista session, streaming the result to
//!   Parquet, reading it back.
//! - [`cluster`]: the Ballista scheduler and executor processes of the `sextant-engine` binary.

pub mod cluster;
pub mod engine;
pub mod functions;
pub mod generate;
pub mod query;
pub mod schema;

pub use engine::{
    EngineError, FeatureReader, FeatureRow, Target, Written, compute_to_parquet, read_features,
    session,
};
pub use query::{FeatureQuery, QueryError};
