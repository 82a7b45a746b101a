//! Running the feature query: register the exported tables on a session (local DataFusion or a
//! Ballista cluster), stream the result into a Parquet file, read a result back.
//!
//! Why streaming everywhere: at 25M customers the result alone is gigabytes; the writer takes one
//! record batch at a time from the engine and the reader yields one row at a time, so neither
//! side ever holds the whole table. The engine itself hashes, joins and spills as it needs.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ballista::prelude::SessionContextExt;
use datafusion::arrow::array::{
    Array, AsArray, Float64Array, Int32Array, ListArray, RecordBatch, StringArray, StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::{
    ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use datafusion::parquet::basic::Compression;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{ParquetReadOptions, SessionConfig};
use futures_util::StreamExt;
use sextant_features::aggregates::{FEATURE_NAMES, WIDTH};
use sextant_features::sequence::{CHANNELS, MAX_WEEKS};

use crate::query::{FeatureQuery, SEQUENCE_COLUMN};
use crate::schema::TABLES;

/// Why a computation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The data directory lacks a table.
    #[error("{table} not found under {dir} (expected a directory of Parquet files per table)")]
    MissingTable {
        /// The table.
        table: &'static str,
        /// The data directory.
        dir: PathBuf,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Planning or execution failed (locally or on the cluster).
    #[error("query failed: {0}")]
    DataFusion(#[from] DataFusionError),
    /// Writing or reading Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] ParquetError),
    /// A batch did not have the expected shape.
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    /// A result file is not a feature file.
    #[error("not a feature file: {0}")]
    Format(String),
}

/// Where the query runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// In this process, on `partitions` partitions (0 = one per core).
    Local {
        /// Target partitions.
        partitions: usize,
    },
    /// On a Ballista cluster, through its scheduler at `host:port`.
    Ballista {
        /// The scheduler's address, `host:port`.
        scheduler: String,
    },
}

/// A session for `target` with the tables under `data` registered.
///
/// # Errors
/// [`EngineError::MissingTable`] when a table directory is missing; DataFusion's error when the
/// cluster cannot be reached or a file cannot be read.
pub async fn session(target: &Target, data: &Path) -> Result<SessionContext, EngineError> {
    let ctx = match target {
        Target::Local { partitions } => {
            let mut config = SessionConfig::new();
            if *partitions > 0 {
                config = config.with_target_partitions(*partitions);
            }
            // In one process every join collects its build side (the smaller, filtered side:
            // orders, products, multi-version ids) into one shared hash table instead of
            // repartitioning both sides by key: the millions of probe rows (order lines) are then
            // never hashed into partitions and copied. About 11% less CPU at 10M order lines
            // (README). A cluster keeps partitioned joins: a collected side goes to every task.
            config.options_mut().optimizer.repartition_joins = false;
            SessionContext::new_with_config(config)
        }
        Target::Ballista { scheduler } => {
            SessionContext::remote(&format!("df://{scheduler}")).await?
        }
    };
    // The query's own aggregate functions (the cluster's processes register them too).
    crate::functions::register(&ctx);
    // Executors resolve paths on their own machines: always register absolute ones.
    let data = std::path::absolute(data).map_err(|source| EngineError::Io {
        path: data.to_path_buf(),
        source,
    })?;
    for table in TABLES {
        let dir = data.join(table);
        if !dir.is_dir() {
            return Err(EngineError::MissingTable { table, dir: data });
        }
        let url = format!("{}/", dir.display());
        ctx.register_parquet(table, &url, ParquetReadOptions::default())
            .await?;
    }
    Ok(ctx)
}

/// What one computation wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Accounts with a feature row.
    pub rows: u64,
    /// Record batches received from the engine.
    pub batches: u64,
}

/// Runs `query` on `ctx` and streams the result into the Parquet file `out`, one record batch at
/// a time.
///
/// # Errors
/// [`EngineError`] when the query fails or the file cannot be written.
pub async fn compute_to_parquet(
    ctx: &SessionContext,
    query: &FeatureQuery,
    out: &Path,
) -> Result<Written, EngineError> {
    sql_to_parquet(ctx, &query.sql(), out).await
}

/// Runs the SQL text `sql` on `ctx` and streams its result into the Parquet file `out`, one
/// record batch at a time ([`compute_to_parquet`] with the feature query's text; profiling runs
/// variants through it).
///
/// # Errors
/// [`EngineError`] when the query fails or the file cannot be written.
pub async fn sql_to_parquet(
    ctx: &SessionContext,
    sql: &str,
    out: &Path,
) -> Result<Written, EngineError> {
    let df = ctx.sql(sql).await?;
    let mut stream = df.execute_stream().await?;
    let schema = stream.schema();
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| EngineError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let file = File::create(out).map_err(|source| EngineError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props))?;
    let mut written = Written::default();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        written.rows += batch.num_rows() as u64;
        written.batches += 1;
        writer.write(&batch)?;
    }
    writer.close()?;
    Ok(written)
}

/// One account's features as read back from a result file.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    /// The account.
    pub account_id: String,
    /// The `rfmt-v2` vector, in `FEATURE_NAMES` order.
    pub features: Vec<f64>,
    /// The non-empty weeks: `(week, [orders, spend, items, cases])`, week 0 first.
    pub sequence: Vec<(usize, [f64; CHANNELS])>,
}

impl FeatureRow {
    /// The dense sequence: `MAX_WEEKS × CHANNELS` values, week 0 (just before the cut-off) first,
    /// the order of `sextant_features::sequence::WeeklySequence::values`.
    #[must_use]
    pub fn dense_sequence(&self) -> Vec<f64> {
        let mut out = vec![0.0; MAX_WEEKS * CHANNELS];
        for (week, values) in &self.sequence {
            if let Some(slot) = out.get_mut(week * CHANNELS..(week + 1) * CHANNELS) {
                slot.copy_from_slice(values);
            }
        }
        out
    }
}

/// Reads a result file row by row (a batch in memory at a time).
#[derive(Debug)]
pub struct FeatureReader {
    batches: ParquetRecordBatchReader,
    current: Vec<FeatureRow>,
}

/// Opens a result file written by [`compute_to_parquet`].
///
/// # Errors
/// [`EngineError`] when the file cannot be opened or is not a feature file.
pub fn read_features(path: &Path) -> Result<FeatureReader, EngineError> {
    let file = File::open(path).map_err(|source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let batches = ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(4_096)
        .build()?;
    Ok(FeatureReader {
        batches,
        current: Vec::new(),
    })
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a Arc<dyn Array>, EngineError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| EngineError::Format(format!("no column {name}")))
}

fn rows_of(batch: &RecordBatch) -> Result<Vec<FeatureRow>, EngineError> {
    let ids = cast(column(batch, "account_id")?, &DataType::Utf8)?;
    let ids: &StringArray = ids.as_string::<i32>();
    let mut features: Vec<&Float64Array> = Vec::with_capacity(WIDTH);
    for name in FEATURE_NAMES {
        let c = column(batch, name)?
            .as_primitive_opt()
            .ok_or_else(|| EngineError::Format(format!("{name} is not Float64")))?;
        features.push(c);
    }
    let seq: &ListArray = column(batch, SEQUENCE_COLUMN)?
        .as_list_opt()
        .ok_or_else(|| EngineError::Format("sequence is not a list".into()))?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let mut sequence = Vec::new();
        if seq.is_valid(r) {
            let weeks = seq.value(r);
            let s: &StructArray = weeks
                .as_struct_opt()
                .ok_or_else(|| EngineError::Format("sequence items are not structs".into()))?;
            let week: &Int32Array = s
                .column_by_name("week")
                .and_then(|c| c.as_primitive_opt())
                .ok_or_else(|| EngineError::Format("sequence.week is not Int32".into()))?;
            let mut chans: Vec<&Float64Array> = Vec::with_capacity(CHANNELS);
            for name in ["orders", "spend", "items", "cases"] {
                chans.push(
                    s.column_by_name(name)
                        .and_then(|c| c.as_primitive_opt())
                        .ok_or_else(|| {
                            EngineError::Format(format!("sequence.{name} is not Float64"))
                        })?,
                );
            }
            for i in 0..s.len() {
                let w = usize::try_from(week.value(i))
                    .map_err(|_| EngineError::Format("negative week".into()))?;
                let mut v = [0.0; CHANNELS];
                for (dst, c) in v.iter_mut().zip(&chans) {
                    *dst = c.value(i);
                }
                sequence.push((w, v));
            }
        }
        out.push(FeatureRow {
            account_id: ids.value(r).to_owned(),
            features: features.iter().map(|c| c.value(r)).collect(),
            sequence,
        });
    }
    out.reverse();
    Ok(out)
}

impl Iterator for FeatureReader {
    type Item = Result<FeatureRow, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.current.pop() {
                return Some(Ok(row));
            }
            match self.batches.next()? {
                Ok(batch) => match rows_of(&batch) {
                    Ok(rows) => self.current = rows,
                    Err(e) => return Some(Err(e)),
                },
                Err(e) => return Some(Err(e.into())),
            }
        }
    }
}
