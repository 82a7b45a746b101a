//! Schema migrations, frozen once released: a change is a new migration, never an edit, and no
//! migration is built from today's entity definitions (that would silently change what an old
//! migration creates). Each one spells out its tables.
//!
//! - `migration` (the walking skeleton's, named after its file as sea-orm derived it): the `sf_*` tables, one row per
//!   record, no org, no known time.
//! - `m0002_versioned_tables`: every object becomes an append-only table of **versions** keyed by
//!   `(org_id, id, known_us)`. `known_us` is the record's known time (SystemModstamp, else the ingest
//!   time) in microseconds since the epoch, `event_day` its event time in days since the epoch:
//!   integers compare exactly and identically on SQLite and PostgreSQL, which the point-in-time
//!   queries depend on. Deletions are versions with `is_deleted`. The online store
//!   (`fs_online_feature`) holds the materialised latest vector per account. Rows of the `sf_*`
//!   tables are copied into the default org, then those tables are dropped.
//! - `m0003_online_refresh_queue`: `fs_online_dirty`, the accounts whose online row an ingest
//!   made stale, with the time they were marked. Ingest only marks (one cheap upsert per touched
//!   account, in the batch's transaction); a background worker recomputes marked accounts in
//!   pages, and a lookup recomputes a marked account itself, so a read never sees a stale row.
//! - `m0004_order_item_product_index`: order lines by `(org_id, product_id)`. A product whose
//!   category changes changes the category features of every account that bought it; ingest
//!   finds those accounts through this index (a probe per product, not a scan of the lines).
//! - `m0005_case_sentiment_scorer`: `fs_case.sentiment_scorer`, which scorer judged the case's
//!   `negative` flag (`lexicon` or `model:<version>`); NULL for versions stored before it (the
//!   lexicon judged those).
//! - `m0006_prediction_log`: `fs_prediction`, every churn score the gateway served (account,
//!   model version, when, score, band, action, horizon), keyed so a replayed batch inserts
//!   nothing twice, with an index by `(org_id, model_version, scored_us)` for the realised-
//!   accuracy report and one by `scored_us` for the retention sweep.
//! - `m0007_object_records`: `fs_record`, versions of records of any object a prediction
//!   definition names (standard or custom), keyed by `(org_id, object, id, known_us)` like the
//!   other versioned tables, with the synced fields as one JSON text of wire values (the objects
//!   and fields are the org's own, so they cannot be columns); and `fs_record_field`, every field
//!   name ingested per object, so a reader asking for a field no record has is told before the
//!   stream starts instead of after reading the whole object.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::prelude::*;

/// The org that records without an explicit org belong to.
pub const DEFAULT_ORG: &str = "default";

/// The feature store's migrations, in order.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateCrmTables),
            Box::new(VersionedTables),
            Box::new(OnlineRefreshQueue),
            Box::new(OrderItemProductIndex),
            Box::new(CaseSentimentScorer),
            Box::new(PredictionLog),
            Box::new(ObjectRecords),
        ]
    }
}

/// The walking skeleton's tables, as they were released.
#[derive(Debug)]
struct CreateCrmTables;

impl MigrationName for CreateCrmTables {
    // The name sea-orm derived (from the file stem) for the released migration: it is what
    // databases created by the skeleton have recorded, so it must never change.
    fn name(&self) -> &'static str {
        "migration"
    }
}

fn id_col() -> ColumnDef {
    ColumnDef::new(Alias::new("id"))
        .string()
        .not_null()
        .primary_key()
        .to_owned()
}
fn col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
}

#[async_trait::async_trait]
impl MigrationTrait for CreateCrmTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables: Vec<(&str, Vec<ColumnDef>)> = vec![
            (
                "sf_account",
                vec![
                    id_col(),
                    col("name").string().not_null().to_owned(),
                    col("billing_country").string().null().to_owned(),
                    col("industry").string().null().to_owned(),
                    col("created_date")
                        .timestamp_with_time_zone()
                        .not_null()
                        .to_owned(),
                    col("last_modified_date")
                        .timestamp_with_time_zone()
                        .not_null()
                        .to_owned(),
                ],
            ),
            (
                "sf_contact",
                vec![
                    id_col(),
                    col("account_id").string().null().to_owned(),
                    col("first_name").string().null().to_owned(),
                    col("last_name").string().not_null().to_owned(),
                    col("email").string().null().to_owned(),
                    col("last_modified_date")
                        .timestamp_with_time_zone()
                        .not_null()
                        .to_owned(),
                ],
            ),
            (
                "sf_product",
                vec![
                    id_col(),
                    col("name").string().not_null().to_owned(),
                    col("product_code").string().null().to_owned(),
                    col("last_modified_date")
                        .timestamp_with_time_zone()
                        .not_null()
                        .to_owned(),
                ],
            ),
            (
                "sf_order",
                vec![
                    id_col(),
                    col("account_id").string().not_null().to_owned(),
                    col("effective_date").date().not_null().to_owned(),
                    col("status").string().not_null().to_owned(),
                    col("order_number").string().null().to_owned(),
                    col("last_modified_date")
                        .timestamp_with_time_zone()
                        .not_null()
                        .to_owned(),
                ],
            ),
            (
                "sf_order_item",
                vec![
                    id_col(),
                    col("order_id").string().not_null().to_owned(),
                    col("product_id").string().null().to_owned(),
                    col("quantity").double().not_null().to_owned(),
                    col("unit_price").double().not_null().to_owned(),
                    col("last_modified_date")
                        .timestamp_with_time_zone()
                        .not_null()
                        .to_owned(),
                ],
            ),
            (
                "sf_case",
                vec![
                    id_col(),
                    col("account_id").string().null().to_owned(),
                    col("subject").string().null().to_owned(),
                    col("description").text().null().to_owned(),
                    col("status").string().null().to_owned(),
                    col("created_date")
                        .timestamp_with_time_zone()
                        .not_null()
                        .to_owned(),
                    col("last_modified_date")
                        .timestamp_with_time_zone()
                        .not_null()
                        .to_owned(),
                ],
            ),
        ];
        for (name, columns) in tables {
            let mut t = Table::create();
            t.table(Alias::new(name)).if_not_exists();
            for mut c in columns {
                t.col(&mut c);
            }
            manager.create_table(t.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "sf_case",
            "sf_order_item",
            "sf_order",
            "sf_product",
            "sf_contact",
            "sf_account",
        ] {
            manager
                .drop_table(Table::drop().table(Alias::new(t)).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Versioned tables with org, event time and known time; the materialised online store.
#[derive(Debug)]
struct VersionedTables;

impl MigrationName for VersionedTables {
    fn name(&self) -> &'static str {
        "m0002_versioned_tables"
    }
}

/// The key and bookkeeping columns every versioned table starts with.
fn version_keys() -> Vec<ColumnDef> {
    vec![
        col("org_id").string().not_null().to_owned(),
        col("id").string().not_null().to_owned(),
        col("known_us").big_integer().not_null().to_owned(),
        col("is_deleted").boolean().not_null().to_owned(),
        col("ingested_us").big_integer().not_null().to_owned(),
    ]
}

const VERSIONED: [(&str, &[(&str, Kind)]); 7] = [
    (
        "fs_account",
        &[
            ("name", Kind::Str),
            ("billing_country", Kind::Str),
            ("industry", Kind::Str),
            ("event_day", Kind::Int),
        ],
    ),
    (
        "fs_contact",
        &[
            ("account_id", Kind::Str),
            ("first_name", Kind::Str),
            ("last_name", Kind::Str),
            ("email", Kind::Str),
        ],
    ),
    (
        "fs_product",
        &[
            ("name", Kind::Str),
            ("product_code", Kind::Str),
            ("family", Kind::Str),
            ("category", Kind::Str),
        ],
    ),
    (
        "fs_order",
        &[
            ("account_id", Kind::Str),
            ("event_day", Kind::Int),
            ("status", Kind::Str),
            ("order_number", Kind::Str),
        ],
    ),
    (
        "fs_order_item",
        &[
            ("order_id", Kind::Str),
            ("product_id", Kind::Str),
            ("quantity", Kind::Float),
            ("unit_price", Kind::Float),
        ],
    ),
    (
        "fs_case",
        &[
            ("account_id", Kind::Str),
            ("event_day", Kind::Int),
            ("subject", Kind::Str),
            ("description", Kind::Text),
            ("status", Kind::Str),
            ("negative", Kind::Bool),
        ],
    ),
    (
        "fs_engagement_event",
        &[
            ("account_id", Kind::Str),
            ("event_type", Kind::Str),
            ("event_day", Kind::Int),
            ("occurred_us", Kind::BigInt),
            ("value", Kind::Float),
        ],
    ),
];

/// Indexes that the point-in-time reads use: by parent within an org.
const INDEXES: [(&str, &str, &[&str]); 5] = [
    ("fs_order_account", "fs_order", &["org_id", "account_id"]),
    (
        "fs_order_item_order",
        "fs_order_item",
        &["org_id", "order_id"],
    ),
    ("fs_case_account", "fs_case", &["org_id", "account_id"]),
    (
        "fs_engagement_account",
        "fs_engagement_event",
        &["org_id", "account_id"],
    ),
    (
        "fs_contact_account",
        "fs_contact",
        &["org_id", "account_id"],
    ),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Text,
    Int,
    BigInt,
    Float,
    Bool,
}

#[async_trait::async_trait]
impl MigrationTrait for VersionedTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, columns) in VERSIONED {
            let mut t = Table::create();
            t.table(Alias::new(table)).if_not_exists();
            for mut c in version_keys() {
                t.col(&mut c);
            }
            for (name, kind) in columns {
                let mut c = col(name);
                match kind {
                    Kind::Str => c.string(),
                    Kind::Text => c.text(),
                    Kind::Int => c.integer(),
                    Kind::BigInt => c.big_integer(),
                    Kind::Float => c.double(),
                    Kind::Bool => c.boolean(),
                };
                t.col(c.null());
            }
            t.primary_key(
                Index::create()
                    .col(Alias::new("org_id"))
                    .col(Alias::new("id"))
                    .col(Alias::new("known_us")),
            );
            manager.create_table(t.to_owned()).await?;
        }
        for (name, table, columns) in INDEXES {
            let mut i = Index::create();
            i.name(name).table(Alias::new(table)).if_not_exists();
            for c in columns {
                i.col(Alias::new(*c));
            }
            manager.create_index(i.to_owned()).await?;
        }
        let mut online = Table::create();
        online
            .table(Alias::new("fs_online_feature"))
            .if_not_exists()
            .col(col("org_id").string().not_null())
            .col(col("account_id").string().not_null())
            .col(col("feature_set").string().not_null())
            .col(col("as_of_day").integer().not_null())
            .col(col("has_history").boolean().not_null())
            .col(col("features").text().null())
            .col(col("sequence").text().null())
            .col(col("attributes").text().not_null())
            .col(col("computed_us").big_integer().not_null())
            .primary_key(
                Index::create()
                    .col(Alias::new("org_id"))
                    .col(Alias::new("account_id")),
            );
        manager.create_table(online.to_owned()).await?;

        copy_skeleton_rows(manager).await?;
        for t in [
            "sf_case",
            "sf_order_item",
            "sf_order",
            "sf_product",
            "sf_contact",
            "sf_account",
        ] {
            manager
                .drop_table(Table::drop().table(Alias::new(t)).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "m0002_versioned_tables cannot be undone: the skeleton's tables held no known times"
                .into(),
        ))
    }
}

/// Moves the skeleton's rows into the default org, with their last modification as known time.
async fn copy_skeleton_rows(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = db.get_database_backend();
    // Day and microsecond numbers from the skeleton's timestamp and date columns.
    let (us, day) = match backend {
        DbBackend::Postgres => (
            "(EXTRACT(EPOCH FROM {c}) * 1000000)::BIGINT",
            "(CAST({c} AS DATE) - DATE '1970-01-01')",
        ),
        _ => (
            "CAST((julianday({c}) - 2440587.5) * 86400000000 AS INTEGER)",
            "CAST(julianday({c}) - 2440587.5 AS INTEGER)",
        ),
    };
    let us = |c: &str| us.replace("{c}", c);
    let day = |c: &str| day.replace("{c}", c);
    let lm = us("last_modified_date");
    let statements = [
        format!(
            "INSERT INTO fs_account (org_id, id, known_us, is_deleted, ingested_us, name, billing_country, industry, event_day) \
             SELECT '{DEFAULT_ORG}', id, {lm}, FALSE, {lm}, name, billing_country, industry, {} FROM sf_account",
            day("created_date")
        ),
        format!(
            "INSERT INTO fs_contact (org_id, id, known_us, is_deleted, ingested_us, account_id, first_name, last_name, email) \
             SELECT '{DEFAULT_ORG}', id, {lm}, FALSE, {lm}, account_id, first_name, last_name, email FROM sf_contact"
        ),
        format!(
            "INSERT INTO fs_product (org_id, id, known_us, is_deleted, ingested_us, name, product_code, family, category) \
             SELECT '{DEFAULT_ORG}', id, {lm}, FALSE, {lm}, name, product_code, NULL, NULL FROM sf_product"
        ),
        format!(
            "INSERT INTO fs_order (org_id, id, known_us, is_deleted, ingested_us, account_id, event_day, status, order_number) \
             SELECT '{DEFAULT_ORG}', id, {lm}, FALSE, {lm}, account_id, {}, status, order_number FROM sf_order",
            day("effective_date")
        ),
        format!(
            "INSERT INTO fs_order_item (org_id, id, known_us, is_deleted, ingested_us, order_id, product_id, quantity, unit_price) \
             SELECT '{DEFAULT_ORG}', id, {lm}, FALSE, {lm}, order_id, product_id, quantity, unit_price FROM sf_order_item"
        ),
        format!(
            "INSERT INTO fs_case (org_id, id, known_us, is_deleted, ingested_us, account_id, event_day, subject, description, status, negative) \
             SELECT '{DEFAULT_ORG}', id, {lm}, FALSE, {lm}, account_id, {}, subject, description, status, NULL FROM sf_case",
            day("created_date")
        ),
    ];
    for sql in statements {
        db.execute_raw(Statement::from_string(backend, sql)).await?;
    }
    Ok(())
}

/// The online store's refresh queue (see the module docs).
#[derive(Debug)]
struct OnlineRefreshQueue;

impl MigrationName for OnlineRefreshQueue {
    fn name(&self) -> &'static str {
        "m0003_online_refresh_queue"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for OnlineRefreshQueue {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("fs_online_dirty"))
                    .if_not_exists()
                    .col(col("org_id").string().not_null())
                    .col(col("account_id").string().not_null())
                    .col(col("marked_us").big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("org_id"))
                            .col(Alias::new("account_id")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("fs_online_dirty_marked")
                    .table(Alias::new("fs_online_dirty"))
                    .if_not_exists()
                    .col(Alias::new("marked_us"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("fs_online_dirty"))
                    .to_owned(),
            )
            .await
    }
}

/// Order lines by product within an org (see the module doc).
#[derive(Debug)]
struct OrderItemProductIndex;

impl MigrationName for OrderItemProductIndex {
    fn name(&self) -> &'static str {
        "m0004_order_item_product_index"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for OrderItemProductIndex {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("fs_order_item_product")
                    .table(Alias::new("fs_order_item"))
                    .if_not_exists()
                    .col(Alias::new("org_id"))
                    .col(Alias::new("product_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("fs_order_item_product")
                    .table(Alias::new("fs_order_item"))
                    .to_owned(),
            )
            .await
    }
}

/// Which scorer judged a case (see the module doc).
#[derive(Debug)]
struct CaseSentimentScorer;

impl MigrationName for CaseSentimentScorer {
    fn name(&self) -> &'static str {
        "m0005_case_sentiment_scorer"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CaseSentimentScorer {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("fs_case"))
                    .add_column(col("sentiment_scorer").string().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("fs_case"))
                    .drop_column(Alias::new("sentiment_scorer"))
                    .to_owned(),
            )
            .await
    }
}

/// The prediction log (see the module doc).
#[derive(Debug)]
struct PredictionLog;

impl MigrationName for PredictionLog {
    fn name(&self) -> &'static str {
        "m0006_prediction_log"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for PredictionLog {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("fs_prediction"))
                    .if_not_exists()
                    .col(col("org_id").string().not_null())
                    .col(col("account_id").string().not_null())
                    .col(col("model_version").string().not_null())
                    .col(col("scored_us").big_integer().not_null())
                    .col(col("score").double().not_null())
                    .col(col("band").string().null())
                    .col(col("action").string().null())
                    .col(col("horizon_days").integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("org_id"))
                            .col(Alias::new("account_id"))
                            .col(Alias::new("model_version"))
                            .col(Alias::new("scored_us")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("fs_prediction_version_time")
                    .table(Alias::new("fs_prediction"))
                    .if_not_exists()
                    .col(Alias::new("org_id"))
                    .col(Alias::new("model_version"))
                    .col(Alias::new("scored_us"))
                    .to_owned(),
            )
            .await?;
        // The retention sweep deletes by time across versions: a range on this index, not a
        // scan of the log.
        manager
            .create_index(
                Index::create()
                    .name("fs_prediction_time")
                    .table(Alias::new("fs_prediction"))
                    .if_not_exists()
                    .col(Alias::new("scored_us"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new("fs_prediction")).to_owned())
            .await
    }
}

/// Records of any object and their field catalogue (see the module doc).
#[derive(Debug)]
struct ObjectRecords;

impl MigrationName for ObjectRecords {
    fn name(&self) -> &'static str {
        "m0007_object_records"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ObjectRecords {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("fs_record"))
                    .if_not_exists()
                    .col(col("org_id").string().not_null())
                    .col(col("object").string().not_null())
                    .col(col("id").string().not_null())
                    .col(col("known_us").big_integer().not_null())
                    .col(col("is_deleted").boolean().not_null())
                    .col(col("ingested_us").big_integer().not_null())
                    .col(col("fields").text().null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("org_id"))
                            .col(Alias::new("object"))
                            .col(Alias::new("id"))
                            .col(Alias::new("known_us")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("fs_record_field"))
                    .if_not_exists()
                    .col(col("org_id").string().not_null())
                    .col(col("object").string().not_null())
                    .col(col("field").string().not_null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("org_id"))
                            .col(Alias::new("object"))
                            .col(Alias::new("field")),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in ["fs_record_field", "fs_record"] {
            manager
                .drop_table(Table::drop().table(Alias::new(t)).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
