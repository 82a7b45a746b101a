//! Arrow schemas of the feature store's versioned tables as exported to Parquet: one directory of
//! Parquet files per table, with exactly the columns of the store's tables
//! (`services/feature-store/src/migration.rs`) that the features read.
//!
//! Why a crate of its own: the feature store writes these files (its export) and the feature
//! engine reads them (DataFusion, Ballista). Both must agree on every column, name, type and
//! nullability, but the store must not compile DataFusion to know them. This crate depends on
//! `arrow-schema` alone (the version DataFusion uses, so its `DataType` is DataFusion's).
//!
//! Every table starts with the version key and bookkeeping columns: `org_id`, `id`, `known_us`
//! (when the version became known, microseconds since the epoch), `is_deleted` (a tombstone: the
//! record is gone from its known time on) and `ingested_us`. Event times are `event_day`, days
//! since 1970-01-01.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// Microseconds in a day.
pub const DAY_US: i64 = 86_400_000_000;

/// The tables the features read, by directory name.
pub const TABLES: [&str; 6] = [
    "fs_account",
    "fs_product",
    "fs_order",
    "fs_order_item",
    "fs_case",
    "fs_engagement_event",
];

fn keys() -> Vec<Field> {
    vec![
        Field::new("org_id", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("known_us", DataType::Int64, false),
        Field::new("is_deleted", DataType::Boolean, false),
        Field::new("ingested_us", DataType::Int64, false),
    ]
}

fn with_keys(columns: &[(&str, DataType)]) -> SchemaRef {
    let mut fields = keys();
    fields.extend(
        columns
            .iter()
            .map(|(name, t)| Field::new(*name, t.clone(), true)),
    );
    Arc::new(Schema::new(fields))
}

/// The schema of one exported table, or `None` for a table the features do not read.
#[must_use]
pub fn table_schema(table: &str) -> Option<SchemaRef> {
    use DataType::{Boolean, Float64, Int32, Int64, Utf8};
    let columns: &[(&str, DataType)] = match table {
        "fs_account" => &[
            ("name", Utf8),
            ("billing_country", Utf8),
            ("industry", Utf8),
            ("event_day", Int32),
        ],
        "fs_product" => &[
            ("name", Utf8),
            ("product_code", Utf8),
            ("family", Utf8),
            ("category", Utf8),
        ],
        "fs_order" => &[
            ("account_id", Utf8),
            ("event_day", Int32),
            ("status", Utf8),
            ("order_number", Utf8),
        ],
        "fs_order_item" => &[
            ("order_id", Utf8),
            ("product_id", Utf8),
            ("quantity", Float64),
            ("unit_price", Float64),
        ],
        "fs_case" => &[
            ("account_id", Utf8),
            ("event_day", Int32),
            ("subject", Utf8),
            ("description", Utf8),
            ("status", Utf8),
            ("negative", Boolean),
        ],
        "fs_engagement_event" => &[
            ("account_id", Utf8),
            ("event_type", Utf8),
            ("event_day", Int32),
            ("occurred_us", Int64),
            ("value", Float64),
        ],
        _ => return None,
    };
    Some(with_keys(columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_the_version_keys_first() {
        for t in TABLES {
            let s = table_schema(t).expect("known table");
            let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(
                names[..5],
                ["org_id", "id", "known_us", "is_deleted", "ingested_us"]
            );
        }
        assert!(table_schema("fs_contact_typo").is_none());
    }
}
