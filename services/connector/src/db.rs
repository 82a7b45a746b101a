//! The connector's own database (sea-orm: SQLite by default, PostgreSQL when configured): sync
//! and write-back jobs, per-object watermarks, and the per-org lock row.
//!
//! Why a database and not memory: a connector that restarts must resume where it stopped (the
//! watermark of each object says which rows the feature store has confirmed), a job list must
//! survive restarts, and two replicas of the connector must never sync the same org at once —
//! only a row both can see (a lease with an owner and an expiry) can promise that.
//!
//! Every table is prefixed `conn_` and the migrations are frozen: a change is a new migration.
//! Times are stored as integer microseconds since the epoch, so comparisons are exact and the same
//! on SQLite and PostgreSQL.

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, QueryResult,
    Statement, Value,
};
use sea_orm_migration::prelude::*;

/// The connector's migrations, recorded in `conn_seaql_migrations` (so the connector can share
/// a database with another service without mixing their migration histories).
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001ConnectorState),
            Box::new(M0002ScheduleAndBulk),
        ]
    }
    fn migration_table_name() -> DynIden {
        Alias::new("conn_seaql_migrations").into_iden()
    }
}

/// Jobs, watermarks, the lock row, write-back results. Frozen.
#[derive(Debug)]
struct M0001ConnectorState;

impl MigrationName for M0001ConnectorState {
    fn name(&self) -> &'static str {
        "m0001_connector_state"
    }
}

fn col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
}

#[async_trait::async_trait]
impl MigrationTrait for M0001ConnectorState {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("conn_sync_job"))
                    .if_not_exists()
                    .col(col("id").string().not_null().primary_key())
                    .col(col("org").string().not_null())
                    .col(col("state").string().not_null())
                    .col(col("started_us").big_integer().not_null())
                    .col(col("finished_us").big_integer().null())
                    .col(col("objects").text().not_null())
                    .col(col("full_sync").boolean().not_null())
                    .col(col("progress").text().not_null())
                    .col(col("report").text().null())
                    .col(col("error").text().null())
                    .col(col("cancel_requested").boolean().not_null())
                    .col(col("runs").integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("conn_sync_job_started")
                    .table(Alias::new("conn_sync_job"))
                    .col(Alias::new("started_us"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("conn_watermark"))
                    .if_not_exists()
                    .col(col("org").string().not_null())
                    .col(col("object").string().not_null())
                    .col(col("kind").string().not_null())
                    .col(col("stamp_us").big_integer().not_null())
                    .col(col("last_id").string().not_null())
                    .col(col("updated_us").big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("org"))
                            .col(Alias::new("object"))
                            .col(Alias::new("kind")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("conn_lock"))
                    .if_not_exists()
                    .col(col("org").string().not_null().primary_key())
                    .col(col("owner").string().not_null())
                    .col(col("job_id").string().not_null())
                    .col(col("expires_us").big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("conn_writeback_job"))
                    .if_not_exists()
                    .col(col("id").string().not_null().primary_key())
                    .col(col("org").string().not_null())
                    .col(col("state").string().not_null())
                    .col(col("object").string().not_null())
                    .col(col("started_us").big_integer().not_null())
                    .col(col("finished_us").big_integer().null())
                    .col(col("total").big_integer().not_null())
                    .col(col("written").big_integer().not_null())
                    .col(col("failed").big_integer().not_null())
                    .col(col("api_calls").big_integer().not_null())
                    .col(col("error").text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("conn_writeback_record"))
                    .if_not_exists()
                    .col(col("job_id").string().not_null())
                    .col(col("idx").big_integer().not_null())
                    .col(col("record_id").string().not_null())
                    .col(col("payload").text().not_null())
                    .col(col("outcome").string().not_null())
                    .col(col("salesforce_id").string().null())
                    .col(col("created").boolean().null())
                    .col(col("status_code").string().null())
                    .col(col("reason").text().null())
                    .col(col("attempts").integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(Alias::new("job_id"))
                            .col(Alias::new("idx")),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "conn_writeback_record",
            "conn_writeback_job",
            "conn_lock",
            "conn_watermark",
            "conn_sync_job",
        ] {
            manager
                .drop_table(Table::drop().table(Alias::new(t)).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// The sync schedule's last claimed slot (per org), the slot a scheduled sync job ran for, and
/// the Bulk API 2.0 ingest jobs a write-back used. Frozen.
#[derive(Debug)]
struct M0002ScheduleAndBulk;

impl MigrationName for M0002ScheduleAndBulk {
    fn name(&self) -> &'static str {
        "m0002_schedule_and_bulk_ingest"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002ScheduleAndBulk {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("conn_schedule"))
                    .if_not_exists()
                    .col(col("org").string().not_null().primary_key())
                    .col(col("cron").text().not_null())
                    .col(col("last_slot_us").big_integer().not_null())
                    .col(col("last_job_id").string().null())
                    .col(col("updated_us").big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("conn_sync_job"))
                    .add_column(col("scheduled_for_us").big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("conn_writeback_job"))
                    .add_column(col("bulk_jobs").text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("conn_writeback_job"))
                    .drop_column(Alias::new("bulk_jobs"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("conn_sync_job"))
                    .drop_column(Alias::new("scheduled_for_us"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Alias::new("conn_schedule")).to_owned())
            .await
    }
}

/// A SQL statement with `$1`-style placeholders, rewritten for SQLite (`?1`).
pub(crate) fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// Microseconds since the epoch.
pub fn to_us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The time of `us` microseconds since the epoch.
pub fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// The connector's database.
#[derive(Debug, Clone)]
pub struct Db {
    conn: DatabaseConnection,
    backend: DbBackend,
}

/// A watermark: everything up to `(stamp, last_id)` in `SystemModstamp, Id` order is confirmed
/// by the feature store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    pub stamp: DateTime<Utc>,
    pub last_id: String,
}

/// Which watermark of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatermarkKind {
    /// Live records (`query`).
    Records,
    /// Deleted records (`queryAll … IsDeleted = true`).
    Deletions,
}

impl WatermarkKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Records => "records",
            Self::Deletions => "deletions",
        }
    }
}

impl Db {
    /// Connects and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options.sqlx_logging(false);
        if url.starts_with("sqlite") {
            // One connection keeps an in-memory database alive and shared; a file database is
            // shared with other replicas through SQLite's own locking.
            options.max_connections(1);
        }
        let conn = Database::connect(options).await?;
        let backend = conn.get_database_backend();
        if backend == DbBackend::Sqlite {
            for pragma in ["PRAGMA journal_mode=WAL", "PRAGMA busy_timeout=10000"] {
                conn.execute_raw(Statement::from_string(backend, pragma))
                    .await?;
            }
        }
        Migrator::up(&conn, None).await?;
        Ok(Self { conn, backend })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn.ping().await
    }

    pub(crate) async fn exec(&self, sql: &str, values: Vec<Value>) -> Result<u64, DbErr> {
        Ok(self
            .conn
            .execute_raw(stmt(self.backend, sql, values))
            .await?
            .rows_affected())
    }

    pub(crate) async fn rows(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Vec<QueryResult>, DbErr> {
        self.conn
            .query_all_raw(stmt(self.backend, sql, values))
            .await
    }

    // ------------------------------------------------------------ lock

    /// Takes the org's lock for `owner`'s job until `expires` (or renews it for the same owner
    /// and job); false when another owner or job holds an unexpired lease. One statement, so two replicas racing cannot both win.
    pub async fn acquire_lock(
        &self,
        org: &str,
        owner: &str,
        job_id: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let n = self
            .exec(
                "INSERT INTO conn_lock (org, owner, job_id, expires_us) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (org) DO UPDATE SET owner = excluded.owner, job_id = excluded.job_id, \
                 expires_us = excluded.expires_us \
                 WHERE conn_lock.expires_us < $5 \
                 OR (conn_lock.owner = excluded.owner AND conn_lock.job_id = excluded.job_id)",
                vec![
                    org.into(),
                    owner.into(),
                    job_id.into(),
                    to_us(expires).into(),
                    to_us(now).into(),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Extends the lease; false when it was lost (expired and taken by another owner).
    pub async fn renew_lock(
        &self,
        org: &str,
        owner: &str,
        expires: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let n = self
            .exec(
                "UPDATE conn_lock SET expires_us = $1 WHERE org = $2 AND owner = $3",
                vec![to_us(expires).into(), org.into(), owner.into()],
            )
            .await?;
        Ok(n == 1)
    }

    /// Gives the lock back.
    pub async fn release_lock(&self, org: &str, owner: &str) -> Result<(), DbErr> {
        self.exec(
            "DELETE FROM conn_lock WHERE org = $1 AND owner = $2",
            vec![org.into(), owner.into()],
        )
        .await?;
        Ok(())
    }

    /// Who holds the org's lock now (owner, job), if anyone holds an unexpired one.
    pub async fn lock_holder(
        &self,
        org: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, String)>, DbErr> {
        let rows = self
            .rows(
                "SELECT owner, job_id FROM conn_lock WHERE org = $1 AND expires_us >= $2",
                vec![org.into(), to_us(now).into()],
            )
            .await?;
        match rows.first() {
            Some(r) => Ok(Some((r.try_get("", "owner")?, r.try_get("", "job_id")?))),
            None => Ok(None),
        }
    }

    // ------------------------------------------------------------ watermarks

    /// An object's watermark.
    pub async fn watermark(
        &self,
        org: &str,
        object: &str,
        kind: WatermarkKind,
    ) -> Result<Option<Watermark>, DbErr> {
        let rows = self
            .rows(
                "SELECT stamp_us, last_id FROM conn_watermark WHERE org = $1 AND object = $2 AND kind = $3",
                vec![org.into(), object.into(), kind.as_str().into()],
            )
            .await?;
        match rows.first() {
            Some(r) => Ok(Some(Watermark {
                stamp: from_us(r.try_get("", "stamp_us")?),
                last_id: r.try_get("", "last_id")?,
            })),
            None => Ok(None),
        }
    }

    /// Moves an object's watermark (only ever called after the feature store confirmed the rows
    /// up to it).
    pub async fn set_watermark(
        &self,
        org: &str,
        object: &str,
        kind: WatermarkKind,
        wm: &Watermark,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        self.exec(
            "INSERT INTO conn_watermark (org, object, kind, stamp_us, last_id, updated_us) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org, object, kind) DO UPDATE SET \
             stamp_us = excluded.stamp_us, last_id = excluded.last_id, updated_us = excluded.updated_us",
            vec![
                org.into(),
                object.into(),
                kind.as_str().into(),
                to_us(wm.stamp).into(),
                wm.last_id.clone().into(),
                to_us(now).into(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Forgets an object's watermarks (the next sync of it is a full one).
    pub async fn clear_watermarks(&self, org: &str, object: &str) -> Result<(), DbErr> {
        self.exec(
            "DELETE FROM conn_watermark WHERE org = $1 AND object = $2",
            vec![org.into(), object.into()],
        )
        .await?;
        Ok(())
    }
}
