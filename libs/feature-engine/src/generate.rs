//! A deterministic synthetic org in the export format, for tests and benchmarks.
//!
//! Why synthetic: the benchmark needs 10M+ order lines and the equality tests need every
//! point-in-time rule exercised, which no public data set does. Given a seed the output is the
//! same on every machine. What it contains, so that every rule of the feature definitions is hit:
//!
//! - accounts created over three and a half years (some after any sensible cut-off), a few known
//!   long after their creation, a few edited later and a few deleted (tombstones);
//! - products with families, some without (their category is derived from the name as the
//!   feature store does at ingest), a few re-classified or deleted later;
//! - orders with mixed statuses (`Activated` in three spellings, `Draft`, `Cancelled`), some known
//!   late, some changing status, day or account in a later version, some deleted; a few ids also
//!   exist in a second org and must be ignored;
//! - 1–9 lines per order with returns (negative quantities), a few zero quantities, lines without
//!   a product, later quantity edits and deletions;
//! - support cases (negative, positive, unknown tone, some late-known or deleted) and engagement
//!   events.
//!
//! Prices are multiples of 0.25, so every sum of amounts is exact in binary floating point: the
//! single-node and the distributed results can then be compared bit for bit, whatever order the
//! partitions are summed in. The engine does not rely on it.
//!
//! Rows are written in batches of [`BATCH_ROWS`] and files are rolled every [`FILE_ROWS`] rows, so
//! memory stays flat whatever the number of lines.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::properties::WriterProperties;
use sextant_features::aggregates::derive_category;

use crate::schema::{DAY_US, table_schema};

/// Rows buffered per table before they are written.
pub const BATCH_ROWS: usize = 65_536;
/// Rows per Parquet file before the next file is started.
pub const FILE_ROWS: usize = 2_000_000;

/// The org the generated data belongs to.
pub const ORG: &str = "default";
/// A second org sharing some record ids; features of [`ORG`] must never see its rows.
pub const OTHER_ORG: &str = "globex";

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// Creating a directory or file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Building a batch failed.
    #[error("cannot build a record batch: {0}")]
    Arrow(#[from] ArrowError),
    /// Writing Parquet failed.
    #[error("cannot write Parquet: {0}")]
    Parquet(#[from] ParquetError),
    /// A parameter is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Generated {
    /// Order lines (first versions of `fs_order_item` rows of [`ORG`]).
    pub lines: u64,
    /// Orders (first versions).
    pub orders: u64,
    /// Accounts.
    pub accounts: u64,
    /// Products.
    pub products: u64,
    /// Rows written over all tables, versions included.
    pub rows: u64,
}

/// First day of the generated history.
#[must_use]
pub fn start_day() -> i32 {
    day(2021, 1, 1)
}

/// Last day (exclusive) of the generated history.
#[must_use]
pub fn end_day() -> i32 {
    day(2024, 7, 1)
}

fn day(y: i32, m: u32, d: u32) -> i32 {
    let date = NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
    i32::try_from((date - NaiveDate::default()).num_days()).unwrap_or(0)
}

/// SplitMix64: small, fast and the same everywhere.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = u64::try_from(hi - lo).unwrap_or(1);
        lo + i64::try_from(self.next_u64() % span).unwrap_or(0)
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// One value of a row.
#[derive(Debug, Clone, Copy)]
enum V<'a> {
    S(Option<&'a str>),
    I32(Option<i32>),
    I64(Option<i64>),
    F64(Option<f64>),
    B(Option<bool>),
}

#[derive(Debug)]
enum Col {
    S(StringBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    B(BooleanBuilder),
}

impl Col {
    fn new(t: &DataType) -> Self {
        match t {
            DataType::Int32 => Self::I32(Int32Builder::new()),
            DataType::Int64 => Self::I64(Int64Builder::new()),
            DataType::Float64 => Self::F64(Float64Builder::new()),
            DataType::Boolean => Self::B(BooleanBuilder::new()),
            _ => Self::S(StringBuilder::new()),
        }
    }
    fn push(&mut self, v: V<'_>) -> Result<(), GenerateError> {
        match (self, v) {
            (Self::S(b), V::S(x)) => b.append_option(x),
            (Self::I32(b), V::I32(x)) => b.append_option(x),
            (Self::I64(b), V::I64(x)) => b.append_option(x),
            (Self::F64(b), V::F64(x)) => b.append_option(x),
            (Self::B(b), V::B(x)) => b.append_option(x),
            (c, v) => {
                return Err(GenerateError::Invalid(format!(
                    "value {v:?} does not fit column {c:?}"
                )));
            }
        }
        Ok(())
    }
    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::S(b) => Arc::new(b.finish()),
            Self::I32(b) => Arc::new(b.finish()),
            Self::I64(b) => Arc::new(b.finish()),
            Self::F64(b) => Arc::new(b.finish()),
            Self::B(b) => Arc::new(b.finish()),
        }
    }
}

/// Buffered rows of one table, written to rolling Parquet files under `<out>/<table>/`.
struct TableWriter {
    dir: PathBuf,
    schema: SchemaRef,
    cols: Vec<Col>,
    buffered: usize,
    in_file: usize,
    files: usize,
    writer: Option<ArrowWriter<File>>,
    rows: u64,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("dir", &self.dir)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl TableWriter {
    fn new(out: &Path, table: &str) -> Result<Self, GenerateError> {
        let schema = table_schema(table)
            .ok_or_else(|| GenerateError::Invalid(format!("unknown table {table}")))?;
        let dir = out.join(table);
        std::fs::create_dir_all(&dir).map_err(|source| GenerateError::Io {
            path: dir.clone(),
            source,
        })?;
        let cols = schema
            .fields()
            .iter()
            .map(|f| Col::new(f.data_type()))
            .collect();
        Ok(Self {
            dir,
            schema,
            cols,
            buffered: 0,
            in_file: 0,
            files: 0,
            writer: None,
            rows: 0,
        })
    }

    /// Appends one version: the key columns, then the table's own columns.
    fn row(
        &mut self,
        org: &str,
        id: &str,
        known_us: i64,
        deleted: bool,
        values: &[V<'_>],
    ) -> Result<(), GenerateError> {
        if values.len() + 5 != self.cols.len() {
            return Err(GenerateError::Invalid(format!(
                "{} values for {} columns in {}",
                values.len() + 5,
                self.cols.len(),
                self.dir.display()
            )));
        }
        let keys = [
            V::S(Some(org)),
            V::S(Some(id)),
            V::I64(Some(known_us)),
            V::B(Some(deleted)),
            V::I64(Some(known_us)),
        ];
        for (col, v) in self.cols.iter_mut().zip(keys.iter().chain(values)) {
            col.push(*v)?;
        }
        self.buffered += 1;
        self.rows += 1;
        if self.buffered >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// A tombstone: the key and `is_deleted`, every other column null.
    fn tombstone(&mut self, org: &str, id: &str, known_us: i64) -> Result<(), GenerateError> {
        let nulls: Vec<V<'_>> = self
            .schema
            .fields()
            .iter()
            .skip(5)
            .map(|f| match f.data_type() {
                DataType::Int32 => V::I32(None),
                DataType::Int64 => V::I64(None),
                DataType::Float64 => V::F64(None),
                DataType::Boolean => V::B(None),
                _ => V::S(None),
            })
            .collect();
        self.row(org, id, known_us, true, &nulls)
    }

    fn flush(&mut self) -> Result<(), GenerateError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = self.cols.iter_mut().map(Col::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        if self.writer.is_none() {
            let path = self.dir.join(format!("part-{:05}.parquet", self.files));
            let file = File::create(&path).map_err(|source| GenerateError::Io {
                path: path.clone(),
                source,
            })?;
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build();
            self.writer = Some(ArrowWriter::try_new(
                file,
                self.schema.clone(),
                Some(props),
            )?);
            self.files += 1;
        }
        if let Some(w) = self.writer.as_mut() {
            w.write(&batch)?;
        }
        self.in_file += self.buffered;
        self.buffered = 0;
        if self.in_file >= FILE_ROWS {
            self.close_file()?;
        }
        Ok(())
    }

    fn close_file(&mut self) -> Result<(), GenerateError> {
        if let Some(w) = self.writer.take() {
            w.close()?;
        }
        self.in_file = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<u64, GenerateError> {
        self.flush()?;
        if self.files == 0 {
            // An empty table is still a table: write a file with its schema and no rows.
            let path = self.dir.join("part-00000.parquet");
            let file = File::create(&path).map_err(|source| GenerateError::Io {
                path: path.clone(),
                source,
            })?;
            ArrowWriter::try_new(file, self.schema.clone(), None)?.close()?;
        }
        self.close_file()?;
        Ok(self.rows)
    }
}

const FAMILIES: [&str; 10] = [
    "Stationery",
    "Kitchen",
    "Garden",
    "Toys",
    "Lighting",
    "Textiles",
    "Decor",
    "Bags",
    "Party",
    "Christmas",
];
const COLOURS: [&str; 6] = ["RED", "WHITE", "BLUE", "PINK", "GREEN", "IVORY"];
const THINGS: [&str; 8] = [
    "HEART T-LIGHT HOLDER",
    "LUNCH BAG",
    "CAKE CASES",
    "ALARM CLOCK",
    "DOORMAT",
    "JUMBO BAG",
    "MUG",
    "12 x",
];
const COUNTRIES: [&str; 5] = ["United Kingdom", "France", "Germany", "EIRE", "Spain"];
const SUBJECTS: [(&str, Option<bool>); 5] = [
    ("Parcel arrived broken and late", Some(true)),
    ("Great service, thanks", Some(false)),
    ("Where is my invoice?", Some(false)),
    ("Refund for the damaged item, very disappointed", Some(true)),
    ("Question about delivery", None),
];

fn account_id(i: u64) -> String {
    format!("001{i:015}")
}
fn product_id(i: u64) -> String {
    format!("01t{i:015}")
}

/// Writes `lines` order lines of synthetic org data (with their orders, accounts, products,
/// cases and engagement events) under `out`, one directory per table.
///
/// # Errors
/// [`GenerateError`] when a file cannot be written or `lines` is 0.
pub fn generate(out: &Path, lines: u64, seed: u64) -> Result<Generated, GenerateError> {
    if lines == 0 {
        return Err(GenerateError::Invalid("--lines must be at least 1".into()));
    }
    let mut rng = Rng(seed ^ 0x0053_4558_5441_4E54);
    let mut w = Writers::new(out)?;
    let (start, end) = (i64::from(start_day()), i64::from(end_day()));
    let n_accounts = (lines / 100).max(20);
    let n_products = (lines / 2_000).clamp(30, 5_000);

    // Accounts: created over [start − 1 year, end − 30 days).
    let mut created = Vec::with_capacity(usize::try_from(n_accounts).unwrap_or(0));
    for i in 0..n_accounts {
        let id = account_id(i);
        let c = rng.range(start - 365, end - 30);
        created.push(c);
        // A few accounts reach the store long after they were created (a late first sync): as of
        // a cut-off between the two, the earliest version stands in for them.
        let late = if rng.chance(0.05) {
            rng.range(30, 900) * DAY_US
        } else {
            0
        };
        let known = c * DAY_US + rng.range(0, DAY_US) + late;
        let name = format!("Customer {i}");
        let country = COUNTRIES[rng.range(0, COUNTRIES.len() as i64) as usize];
        let c32 = i32::try_from(c).unwrap_or(0);
        let vals = |country: &'static str| {
            [
                V::S(Some(&name)),
                V::S(Some(country)),
                V::S(None),
                V::I32(Some(c32)),
            ]
        };
        w.account.row(ORG, &id, known, false, &vals(country))?;
        if rng.chance(0.03) {
            let later = known + rng.range(1, 400) * DAY_US;
            w.account.row(ORG, &id, later, false, &vals("France"))?;
        }
        if rng.chance(0.015) {
            let gone = known + rng.range(1, 1_000) * DAY_US;
            w.account.tombstone(ORG, &id, gone)?;
        }
        if i % 40 == 0 {
            // The same id in another org, created long before: must not resurrect anything.
            w.account.row(
                OTHER_ORG,
                &id,
                (start - 400) * DAY_US,
                false,
                &vals("Spain"),
            )?;
        }
    }

    // Products: known before the history starts; some re-classified or deleted later.
    for i in 0..n_products {
        let id = product_id(i);
        let name = format!(
            "{} {}",
            COLOURS[rng.range(0, COLOURS.len() as i64) as usize],
            THINGS[rng.range(0, THINGS.len() as i64) as usize]
        );
        let family = rng
            .chance(0.85)
            .then(|| FAMILIES[rng.range(0, FAMILIES.len() as i64) as usize]);
        let category = derive_category(family, &name);
        let code = format!("P{i}");
        let known = (start - 30) * DAY_US;
        w.product.row(
            ORG,
            &id,
            known,
            false,
            &[
                V::S(Some(&name)),
                V::S(Some(&code)),
                V::S(family),
                V::S(Some(&category)),
            ],
        )?;
        if rng.chance(0.05) {
            let f2 = FAMILIES[rng.range(0, FAMILIES.len() as i64) as usize];
            let c2 = derive_category(Some(f2), &name);
            let later = rng.range(start, end) * DAY_US;
            w.product.row(
                ORG,
                &id,
                later,
                false,
                &[
                    V::S(Some(&name)),
                    V::S(Some(&code)),
                    V::S(Some(f2)),
                    V::S(Some(&c2)),
                ],
            )?;
        } else if rng.chance(0.02) {
            w.product
                .tombstone(ORG, &id, rng.range(start, end) * DAY_US)?;
        }
    }

    let mut g = Generated {
        accounts: n_accounts,
        products: n_products,
        ..Generated::default()
    };
    let mut order_n = 0u64;
    let mut line_n = 0u64;
    let mut case_n = 0u64;
    let mut event_n = 0u64;
    while line_n < lines {
        let order_id = format!("801{order_n:015}");
        order_n += 1;
        // Skewed choice of account: a few accounts buy a lot.
        let a = ((rng.unit().powf(1.6)) * n_accounts as f64) as u64;
        let a = a.min(n_accounts - 1);
        let acc = account_id(a);
        let acc_created = created.get(a as usize).copied().unwrap_or(start);
        let d = rng.range(acc_created.max(start - 200), end);
        let d32 = i32::try_from(d).unwrap_or(0);
        let status = match rng.range(0, 100) {
            0..78 => "Activated",
            78..82 => "activated",
            82 => "ACTIVATED",
            83..93 => "Draft",
            _ => "Cancelled",
        };
        let number = format!("{order_n}");
        let late = if rng.chance(0.05) {
            rng.range(5, 90) * DAY_US
        } else {
            0
        };
        let known = d * DAY_US + rng.range(0, 3 * DAY_US) + late;
        w.order.row(
            ORG,
            &order_id,
            known,
            false,
            &[
                V::S(Some(&acc)),
                V::I32(Some(d32)),
                V::S(Some(status)),
                V::S(Some(&number)),
            ],
        )?;
        let roll = rng.range(0, 1_000);
        let later = known + rng.range(1, 60) * DAY_US;
        match roll {
            0..40 => {
                // Status change: drafts get activated, some activated orders get cancelled.
                let s2 = if status == "Draft" {
                    "Activated"
                } else {
                    "Cancelled"
                };
                w.order.row(
                    ORG,
                    &order_id,
                    later,
                    false,
                    &[
                        V::S(Some(&acc)),
                        V::I32(Some(d32)),
                        V::S(Some(s2)),
                        V::S(Some(&number)),
                    ],
                )?;
            }
            40..50 => {
                let d2 = i32::try_from(d + rng.range(-30, 31)).unwrap_or(d32);
                w.order.row(
                    ORG,
                    &order_id,
                    later,
                    false,
                    &[
                        V::S(Some(&acc)),
                        V::I32(Some(d2)),
                        V::S(Some(status)),
                        V::S(Some(&number)),
                    ],
                )?;
            }
            50..60 => w.order.tombstone(ORG, &order_id, later)?,
            60..65 => {
                let other = account_id(rng.range(0, n_accounts as i64) as u64);
                w.order.row(
                    ORG,
                    &order_id,
                    later,
                    false,
                    &[
                        V::S(Some(&other)),
                        V::I32(Some(d32)),
                        V::S(Some(status)),
                        V::S(Some(&number)),
                    ],
                )?;
            }
            65..75 => {
                // The same order id in another org, activated and early.
                w.order.row(
                    OTHER_ORG,
                    &order_id,
                    (start - 10) * DAY_US,
                    false,
                    &[
                        V::S(Some(&acc)),
                        V::I32(Some(i32::try_from(start - 20).unwrap_or(0))),
                        V::S(Some("Activated")),
                        V::S(None),
                    ],
                )?;
            }
            _ => {}
        }
        g.orders += 1;

        let n_lines = rng
            .range(1, 10)
            .min(i64::try_from(lines - line_n).unwrap_or(1));
        for _ in 0..n_lines {
            let line_id = format!("802{line_n:015}");
            line_n += 1;
            let product =
                (!rng.chance(0.01)).then(|| product_id(rng.range(0, n_products as i64) as u64));
            let quantity = match rng.range(0, 1_000) {
                0..50 => -(rng.range(1, 4) as f64),
                50..55 => 0.0,
                _ => rng.range(1, 13) as f64,
            };
            let price = rng.range(1, 200) as f64 * 0.25;
            let lknown = known + rng.range(0, 3_600_000_000);
            w.line.row(
                ORG,
                &line_id,
                lknown,
                false,
                &[
                    V::S(Some(&order_id)),
                    V::S(product.as_deref()),
                    V::F64(Some(quantity)),
                    V::F64(Some(price)),
                ],
            )?;
            match rng.range(0, 100) {
                0..2 => {
                    let q2 = rng.range(1, 6) as f64;
                    w.line.row(
                        ORG,
                        &line_id,
                        lknown + rng.range(1, 60) * DAY_US,
                        false,
                        &[
                            V::S(Some(&order_id)),
                            V::S(product.as_deref()),
                            V::F64(Some(q2)),
                            V::F64(Some(price)),
                        ],
                    )?;
                }
                2 => w
                    .line
                    .tombstone(ORG, &line_id, lknown + rng.range(1, 100) * DAY_US)?,
                _ => {}
            }
        }

        if rng.chance(0.12) {
            let case_id = format!("500{case_n:015}");
            case_n += 1;
            let cd = d + rng.range(0, 30);
            let late = if rng.chance(0.05) {
                rng.range(10, 60) * DAY_US
            } else {
                0
            };
            let cknown = cd * DAY_US + rng.range(0, 2 * DAY_US) + late;
            let (subject, tone) = SUBJECTS[rng.range(0, SUBJECTS.len() as i64) as usize];
            let case_acc = (!rng.chance(0.01)).then_some(acc.as_str());
            w.case.row(
                ORG,
                &case_id,
                cknown,
                false,
                &[
                    V::S(case_acc),
                    V::I32(Some(i32::try_from(cd).unwrap_or(0))),
                    V::S(Some(subject)),
                    V::S(None),
                    V::S(Some("New")),
                    V::B(tone),
                ],
            )?;
            if rng.chance(0.02) {
                w.case
                    .tombstone(ORG, &case_id, cknown + rng.range(1, 90) * DAY_US)?;
            }
        }
        if rng.chance(0.4) {
            let event_id = format!("evt-{event_n}");
            event_n += 1;
            let ed = d - rng.range(0, 20);
            let occurred = ed * DAY_US + rng.range(0, DAY_US);
            let eknown = occurred + rng.range(0, 3_600_000_000);
            w.event.row(
                ORG,
                &event_id,
                eknown,
                false,
                &[
                    V::S(Some(&acc)),
                    V::S(Some(if rng.chance(0.5) {
                        "email_open"
                    } else {
                        "web_visit"
                    })),
                    V::I32(Some(i32::try_from(ed).unwrap_or(0))),
                    V::I64(Some(occurred)),
                    V::F64(Some(1.0)),
                ],
            )?;
            if rng.chance(0.02) {
                w.event
                    .tombstone(ORG, &event_id, eknown + rng.range(1, 30) * DAY_US)?;
            }
        }
    }
    g.lines = line_n;
    g.rows = w.finish()?;
    Ok(g)
}

#[derive(Debug)]
struct Writers {
    account: TableWriter,
    product: TableWriter,
    order: TableWriter,
    line: TableWriter,
    case: TableWriter,
    event: TableWriter,
}

impl Writers {
    fn new(out: &Path) -> Result<Self, GenerateError> {
        Ok(Self {
            account: TableWriter::new(out, "fs_account")?,
            product: TableWriter::new(out, "fs_product")?,
            order: TableWriter::new(out, "fs_order")?,
            line: TableWriter::new(out, "fs_order_item")?,
            case: TableWriter::new(out, "fs_case")?,
            event: TableWriter::new(out, "fs_engagement_event")?,
        })
    }

    fn finish(self) -> Result<u64, GenerateError> {
        Ok(self.account.finish()?
            + self.product.finish()?
            + self.order.finish()?
            + self.line.finish()?
            + self.case.finish()?
            + self.event.finish()?)
    }
}
