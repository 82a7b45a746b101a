//! Arrow schemas of the exported versioned tables: one directory of Parquet files per table, with
//! exactly the columns of the feature store's tables (`services/feature-store/src/migration.rs`).
//! The feature store writes them (`POST /v1/exports`); the generator here writes the same.
//!
//! The definitions live in `sextant-table-schema` (arrow-schema only), shared with the feature
//! store's exporter, so the two cannot disagree; this module re-exports them.

pub use sextant_table_schema::{DAY_US, TABLES, table_schema};
