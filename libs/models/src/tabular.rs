//! Propensity on any object: prediction definitions, a fitted tabular encoder, and the plain-Rust
//! forward pass of the trained model.
//!
//! Why this exists: an admin should be able to say "predict `Churn = Yes` on this object from these
//! fields" (like Einstein Prediction Builder) and get a model without anyone writing per-data-set
//! code. So everything that depends on the data is *inferred and fitted* from the training rows and
//! stored in a serialisable artefact, and the gateway scores with that artefact alone (no Burn):
//!
//! - [`PredictionDefinition`]: the object, the label field and what counts as positive (values or a
//!   numeric threshold), the feature fields, and optional kind overrides (a numeric-looking field such
//!   as a status code can be declared categorical).
//! - [`TabularEncoder`]: fitted in **one streaming pass** over the rows (memory is bounded per column,
//!   never by the number of rows), it infers each field's kind and turns a record into a fixed-width
//!   vector:
//!   - numeric → robust standardisation `(x − median) / (IQR / 1.349)` (falls back to the standard
//!     deviation when the IQR is 0, e.g. a mostly-zero flag), optional `log1p` first for non-negative
//!     right-skewed fields, clipping, and a missing indicator when the field had missing values in
//!     training (a missing value is imputed at the centre, i.e. encodes to 0);
//!   - categorical → one-hot of the top-K levels + `<other>` + `<missing>`; a level not seen (or too
//!     rare) in training scores as `<other>`.
//! - [`PropensityArtifact`]: definition + encoder + [`TabularModel`] (a weighted average of the
//!   probabilities of logistic / MLP networks), with [`PropensityArtifact::score`].
//!
//! Records are anything implementing [`Record`]: `serde_json::Map` rows (what the Salesforce REST API
//! returns) and CSV string rows ([`CsvColumns::row`]). Blank, whitespace-only, `null` and `NaN` cells
//! (case-insensitive) are missing; so are JSON `null` and absent fields.
//!
//! Type inference rule: a field is numeric when every non-missing training value parses as a finite
//! number and the definition does not declare it categorical; otherwise it is categorical. A field that
//! is missing in every training row is dropped (listed in [`TabularEncoder::dropped`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use sextant_contracts::api::{FactorDirection, ScoreFactor};

use crate::artifact::Dense;

/// Factors returned per prediction by [`PropensityArtifact::explain`] unless asked otherwise.
pub const TOP_FACTORS: usize = 3;

/// Factors that move the score by less than this (probability) are not reported.
const MIN_IMPACT: f64 = 1e-3;

/// Why a definition, a fit or a score failed. Each names the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TabularError {
    /// The definition is not usable as written.
    #[error("invalid prediction definition: {0}")]
    Definition(String),
    /// A field the definition names is not in the data (CSV header).
    #[error("field `{0}` is not in the data")]
    UnknownField(String),
    /// A field declared (or fitted as) numeric holds a value that is not a number.
    #[error("field `{field}` is numeric but has the value {value:?}")]
    NotNumeric {
        /// The field.
        field: String,
        /// The offending value.
        value: String,
    },
    /// A CSV row does not have one value per column.
    #[error("row has {got} values, the header has {expected} columns")]
    Ragged {
        /// Columns in the header.
        expected: usize,
        /// Values in the row.
        got: usize,
    },
    /// No training rows (or no non-missing value in any feature).
    #[error("nothing to fit: {0}")]
    NoData(String),
    /// The artefact is internally inconsistent (widths do not chain).
    #[error("inconsistent artefact: {0}")]
    Inconsistent(String),
}

/// How a field is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Numbers: scaled, with a missing indicator.
    Numeric,
    /// Levels: one-hot of the most frequent ones.
    Categorical,
}

/// What makes a row positive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum LabelRule {
    /// Positive when the trimmed value equals one of these (ASCII case-insensitive), e.g. `["Yes"]`,
    /// `["Closed Won"]`, `["true", "1"]`; any other non-missing value is negative.
    Values {
        /// The positive values.
        positive: Vec<String>,
    },
    /// Positive when the value is a number strictly greater than `above` (e.g. revenue > 0).
    Threshold {
        /// The threshold.
        above: f64,
    },
}

/// What to predict, on which object, from which fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PredictionDefinition {
    /// The object (e.g. `Account`, `Opportunity`, or a file name).
    pub object: String,
    /// The field holding the outcome.
    pub label_field: String,
    /// What counts as the positive outcome.
    pub label: LabelRule,
    /// The fields the model may use (never the label).
    pub features: Vec<String>,
    /// Kind overrides; fields not listed are inferred.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kinds: BTreeMap<String, ColumnKind>,
}

impl PredictionDefinition {
    /// Checks the definition is self-consistent.
    ///
    /// # Errors
    /// [`TabularError::Definition`] naming the problem.
    pub fn validate(&self) -> Result<(), TabularError> {
        let bad = |m: String| Err(TabularError::Definition(m));
        if self.label_field.trim().is_empty() {
            return bad("the label field is empty".into());
        }
        if self.features.is_empty() {
            return bad("no feature fields".into());
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.features {
            if f == &self.label_field {
                return bad(format!("the label field `{f}` is also a feature"));
            }
            if !seen.insert(f) {
                return bad(format!("feature `{f}` is listed twice"));
            }
        }
        for k in self.kinds.keys() {
            if !seen.contains(k) {
                return bad(format!("kind given for `{k}`, which is not a feature"));
            }
        }
        match &self.label {
            LabelRule::Values { positive } if positive.iter().all(|p| p.trim().is_empty()) => {
                bad("no positive label value".into())
            }
            LabelRule::Threshold { above } if !above.is_finite() => {
                bad("the label threshold is not finite".into())
            }
            _ => Ok(()),
        }
    }

    /// The label of a row: `None` when the label is missing.
    ///
    /// # Errors
    /// [`TabularError::NotNumeric`] when a threshold rule meets a non-number.
    pub fn label_of<R: Record + ?Sized>(&self, row: &R) -> Result<Option<bool>, TabularError> {
        let cell = row.cell(&self.label_field);
        match (&self.label, cell) {
            (_, Cell::Missing) => Ok(None),
            (LabelRule::Values { positive }, cell) => {
                let text = cell.level();
                Ok(Some(
                    positive
                        .iter()
                        .any(|p| p.trim().eq_ignore_ascii_case(text.as_ref())),
                ))
            }
            (LabelRule::Threshold { above }, Cell::Number(x)) => Ok(Some(x > *above)),
            (LabelRule::Threshold { .. }, Cell::Text(t)) => Err(TabularError::NotNumeric {
                field: self.label_field.clone(),
                value: t.into_owned(),
            }),
        }
    }
}

/// One cell of a record, already classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// Blank, whitespace, `null`, `NaN`, JSON null or absent.
    Missing,
    /// A finite number.
    Number(f64),
    /// Anything else (trimmed).
    Text(Cow<'a, str>),
}

impl<'a> Cell<'a> {
    /// Classifies a raw string cell.
    #[must_use]
    pub fn parse(raw: &'a str) -> Self {
        let t = raw.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("null") || t.eq_ignore_ascii_case("nan") {
            return Cell::Missing;
        }
        match t.parse::<f64>() {
            Ok(x) if x.is_finite() => Cell::Number(x),
            _ => Cell::Text(Cow::Borrowed(t)),
        }
    }

    /// The cell as a categorical level. Numbers are written canonically (`84.0` and `84` are one level).
    #[must_use]
    pub fn level(&self) -> Cow<'_, str> {
        match self {
            Cell::Missing => Cow::Borrowed(""),
            Cell::Number(x) => Cow::Owned(format!("{x}")),
            Cell::Text(t) => Cow::Borrowed(t.as_ref()),
        }
    }
}

/// A row that can be asked for a field's value.
pub trait Record {
    /// The cell of `field`; [`Cell::Missing`] when absent.
    fn cell(&self, field: &str) -> Cell<'_>;

    /// Whether the row has `field` at all, blank or not (a JSON key, even `null`; a CSV column). A
    /// field that no training row has is a mistake in the definition, not a column of blanks.
    fn has_field(&self, field: &str) -> bool;
}

impl<T: Record + ?Sized> Record for &T {
    fn cell(&self, field: &str) -> Cell<'_> {
        (**self).cell(field)
    }

    fn has_field(&self, field: &str) -> bool {
        (**self).has_field(field)
    }
}

impl Record for Map<String, Value> {
    fn has_field(&self, field: &str) -> bool {
        self.contains_key(field)
    }

    fn cell(&self, field: &str) -> Cell<'_> {
        match self.get(field) {
            None | Some(Value::Null) => Cell::Missing,
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|x| x.is_finite())
                .map_or_else(|| Cell::Text(Cow::Owned(n.to_string())), Cell::Number),
            Some(Value::String(s)) => Cell::parse(s),
            Some(Value::Bool(b)) => Cell::Text(Cow::Borrowed(if *b { "true" } else { "false" })),
            Some(other) => Cell::Text(Cow::Owned(other.to_string())),
        }
    }
}

/// A CSV header: column name → position.
#[derive(Debug, Clone)]
pub struct CsvColumns {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl CsvColumns {
    /// From the header row (names are trimmed).
    ///
    /// # Errors
    /// [`TabularError::Definition`] when a name repeats.
    pub fn new<S: AsRef<str>>(header: &[S]) -> Result<Self, TabularError> {
        let names: Vec<String> = header
            .iter()
            .map(|s| s.as_ref().trim().to_owned())
            .collect();
        let mut index = HashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            if index.insert(n.clone(), i).is_some() {
                return Err(TabularError::Definition(format!(
                    "column `{n}` appears twice in the header"
                )));
            }
        }
        Ok(Self { names, index })
    }

    /// The column names in order.
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Checks that every field of `definition` is a column.
    ///
    /// # Errors
    /// [`TabularError::UnknownField`] for the first field that is not.
    pub fn check(&self, definition: &PredictionDefinition) -> Result<(), TabularError> {
        std::iter::once(&definition.label_field)
            .chain(&definition.features)
            .find(|f| !self.index.contains_key(f.as_str()))
            .map_or(Ok(()), |f| Err(TabularError::UnknownField(f.clone())))
    }

    /// A row of values under this header.
    ///
    /// # Errors
    /// [`TabularError::Ragged`] when the row does not have one value per column.
    pub fn row<'a, S: AsRef<str>>(
        &'a self,
        values: &'a [S],
    ) -> Result<CsvRow<'a, S>, TabularError> {
        if values.len() == self.names.len() {
            Ok(CsvRow {
                columns: self,
                values,
            })
        } else {
            Err(TabularError::Ragged {
                expected: self.names.len(),
                got: values.len(),
            })
        }
    }
}

/// One CSV row under its header.
#[derive(Debug)]
pub struct CsvRow<'a, S> {
    columns: &'a CsvColumns,
    values: &'a [S],
}

// Two references: copyable whatever the value type (a derive would demand `S: Copy`).
impl<S> Clone for CsvRow<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for CsvRow<'_, S> {}

impl<S: AsRef<str>> Record for CsvRow<'_, S> {
    fn has_field(&self, field: &str) -> bool {
        self.columns.index.contains_key(field)
    }

    fn cell(&self, field: &str) -> Cell<'_> {
        self.columns
            .index
            .get(field)
            .and_then(|&i| self.values.get(i))
            .map_or(Cell::Missing, |v| Cell::parse(v.as_ref()))
    }
}

/// How numeric fields are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// `(x − median) / (IQR / 1.349)`, standard deviation when the IQR is 0.
    Robust,
    /// `(x − mean) / std` (scikit-learn's `StandardScaler`).
    Standard,
}

/// What a missing numeric value becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingNumeric {
    /// Imputed at the centre (encodes to 0) plus a 0/1 indicator column when training had missing
    /// values.
    Indicator,
    /// Read as the raw value 0 before scaling, no indicator (the Telco anchor's "blank → 0").
    Zero,
}

/// Encoder settings. [`EncoderConfig::default`] is the propensity model's; [`EncoderConfig::standard`]
/// reproduces the classical baseline (scikit-learn `StandardScaler` + full one-hot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig {
    /// Levels kept per categorical field (the rest are `<other>`).
    pub top_k: usize,
    /// Levels seen fewer times than this in training are `<other>`.
    pub min_level_count: u64,
    /// Numeric scaling.
    pub scaling: Scaling,
    /// Missing numeric values.
    pub missing_numeric: MissingNumeric,
    /// Apply `log1p` to non-negative numeric fields whose sample skewness exceeds `skew_threshold`.
    pub log_skewed: bool,
    /// See `log_skewed`.
    pub skew_threshold: f64,
    /// Scaled numeric values are clipped to `±clip` (none when `None`).
    pub clip: Option<f64>,
    /// Add a second, robustly scaled `log1p(x)` column for non-negative fields with more than two
    /// distinct values that were not logged already: a linear model then sees both shapes.
    pub log_companion: bool,
    /// Hinge columns `max(z − knot, 0)` at this many interior quantiles of the scaled value (a
    /// piecewise-linear basis, so a linear model can bend); 0 for none. Fields with two or fewer
    /// distinct values get none.
    pub hinges: usize,
    /// Values kept per numeric field for the median / quartiles / skewness (reservoir sample); the
    /// quantiles are exact below this many rows.
    pub sample_size: usize,
    /// Distinct levels counted per field; later new levels are counted as `<other>`, which keeps
    /// memory bounded on id-like fields.
    pub max_tracked_levels: usize,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            top_k: 20,
            min_level_count: 5,
            scaling: Scaling::Robust,
            missing_numeric: MissingNumeric::Indicator,
            log_skewed: false,
            skew_threshold: 1.0,
            clip: Some(5.0),
            log_companion: true,
            hinges: 3,
            sample_size: 50_000,
            max_tracked_levels: 10_000,
        }
    }
}

impl EncoderConfig {
    /// The classical baseline's encoding: mean/std scaling with missing → 0, every level one-hot.
    #[must_use]
    pub fn standard() -> Self {
        Self {
            top_k: usize::MAX,
            min_level_count: 1,
            scaling: Scaling::Standard,
            missing_numeric: MissingNumeric::Zero,
            log_skewed: false,
            skew_threshold: f64::INFINITY,
            clip: None,
            log_companion: false,
            hinges: 0,
            ..Self::default()
        }
    }
}

/// How one field is encoded (fitted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ColumnEncoding {
    /// A numeric field.
    Numeric {
        /// The field.
        field: String,
        /// Whether `log1p` is applied before scaling.
        log1p: bool,
        /// Subtracted after the optional `log1p`.
        center: f64,
        /// Divided by after centring (never 0).
        scale: f64,
        /// Clip bound of the scaled value.
        clip: Option<f64>,
        /// What a missing value becomes.
        missing: MissingNumeric,
        /// `(center, scale)` of a `log1p(max(x, 0))` companion column, when there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log_companion: Option<(f64, f64)>,
        /// Knots of the hinge columns `max(z − knot, 0)` on the scaled value.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        knots: Vec<f64>,
        /// Whether a missing indicator column follows the value column.
        indicator: bool,
    },
    /// A categorical field.
    Categorical {
        /// The field.
        field: String,
        /// The one-hot levels, in column order; `<other>` and `<missing>` follow.
        levels: Vec<String>,
    },
}

impl ColumnEncoding {
    /// Output columns of this field.
    #[must_use]
    pub fn width(&self) -> usize {
        match self {
            Self::Numeric {
                indicator,
                log_companion,
                knots,
                ..
            } => 1 + usize::from(log_companion.is_some()) + knots.len() + usize::from(*indicator),
            Self::Categorical { levels, .. } => levels.len() + 2,
        }
    }

    /// The field.
    #[must_use]
    pub fn field(&self) -> &str {
        match self {
            Self::Numeric { field, .. } | Self::Categorical { field, .. } => field,
        }
    }

    /// The field's typical value in training: the centre of a numeric field (the median, or the mean
    /// under standard scaling; back through `log1p` when logged), the most frequent kept level of a
    /// categorical one (`None` when no level was kept: then `<other>` is typical).
    #[must_use]
    pub fn typical(&self) -> Option<Cell<'_>> {
        match self {
            Self::Numeric { log1p, center, .. } => {
                Some(Cell::Number(if *log1p { center.exp_m1() } else { *center }))
            }
            Self::Categorical { levels, .. } => levels
                .first()
                .map(|l| Cell::Text(Cow::Borrowed(l.as_str()))),
        }
    }

    /// Appends the encoding of the typical value (see [`Self::typical`]).
    fn encode_typical_into(&self, out: &mut Vec<f32>) -> Result<(), TabularError> {
        match self.typical() {
            Some(cell) => self.encode_into(&cell, out),
            None => {
                // No kept level: the `<other>` column.
                let start = out.len();
                out.resize(start + self.width(), 0.0);
                out[start + self.width() - 2] = 1.0;
                Ok(())
            }
        }
    }

    fn encode_into(&self, cell: &Cell<'_>, out: &mut Vec<f32>) -> Result<(), TabularError> {
        match self {
            Self::Numeric {
                field,
                log1p,
                center,
                scale,
                clip,
                missing,
                log_companion,
                knots,
                indicator,
            } => {
                let raw = match cell {
                    Cell::Number(x) => Some(*x),
                    Cell::Missing => None,
                    Cell::Text(t) => {
                        return Err(TabularError::NotNumeric {
                            field: field.clone(),
                            value: t.to_string(),
                        });
                    }
                };
                let value = match (raw, missing) {
                    (Some(x), _) => {
                        let x = if *log1p { x.max(0.0).ln_1p() } else { x };
                        let z = (x - center) / scale;
                        clip.map_or(z, |c| z.clamp(-c, c))
                    }
                    (None, MissingNumeric::Indicator) => 0.0,
                    (None, MissingNumeric::Zero) => (0.0 - center) / scale,
                };
                out.push(value as f32);
                if let Some((c, s)) = log_companion {
                    let z = raw.map_or(0.0, |x| (x.max(0.0).ln_1p() - c) / s);
                    out.push(clip.map_or(z, |k| z.clamp(-k, k)) as f32);
                }
                for k in knots {
                    out.push((value - k).max(0.0) as f32);
                }
                if *indicator {
                    out.push(if raw.is_none() { 1.0 } else { 0.0 });
                }
            }
            Self::Categorical { levels, .. } => {
                let start = out.len();
                out.resize(start + levels.len() + 2, 0.0);
                let slot = match cell {
                    Cell::Missing => levels.len() + 1,
                    other => {
                        let level = other.level();
                        levels
                            .iter()
                            .position(|l| l.as_str() == level.as_ref())
                            .unwrap_or(levels.len())
                    }
                };
                out[start + slot] = 1.0;
            }
        }
        Ok(())
    }
}

/// A fitted, serialisable record → vector transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TabularEncoder {
    /// Per used field, in the definition's order.
    pub columns: Vec<ColumnEncoding>,
    /// Fields left out, with the reason (e.g. missing in every training row).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<(String, String)>,
    /// Training rows the encoder was fitted on.
    pub rows_seen: u64,
}

/// Streaming statistics of one field during the fit.
#[derive(Debug)]
struct FieldStats {
    missing: u64,
    numbers: u64,
    texts: u64,
    first_text: Option<String>,
    min: f64,
    // Welford on the raw value and on log1p(max(x, 0)), for exact mean/std at any size.
    raw: Welford,
    log: Welford,
    sample: Reservoir,
    levels: HashMap<String, u64>,
    untracked: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Welford {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Welford {
    fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }
    fn std(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            (self.m2 / self.n as f64).sqrt()
        }
    }
}

/// Algorithm R with a fixed-seed SplitMix64, so fits are deterministic.
#[derive(Debug)]
struct Reservoir {
    cap: usize,
    seen: u64,
    state: u64,
    values: Vec<f64>,
}

impl Reservoir {
    fn new(cap: usize, seed: u64) -> Self {
        Self {
            cap: cap.max(1),
            seen: 0,
            state: seed,
            values: Vec::new(),
        }
    }
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn push(&mut self, x: f64) {
        self.seen += 1;
        if self.values.len() < self.cap {
            self.values.push(x);
        } else {
            let j = self.next() % self.seen;
            if let Ok(j) = usize::try_from(j)
                && j < self.cap
            {
                self.values[j] = x;
            }
        }
    }
}

impl FieldStats {
    fn new(config: &EncoderConfig, seed: u64) -> Self {
        Self {
            missing: 0,
            numbers: 0,
            texts: 0,
            first_text: None,
            min: f64::INFINITY,
            raw: Welford::default(),
            log: Welford::default(),
            sample: Reservoir::new(config.sample_size, seed),
            levels: HashMap::new(),
            untracked: 0,
        }
    }

    fn push(&mut self, cell: &Cell<'_>, max_levels: usize) {
        match cell {
            Cell::Missing => {
                self.missing += 1;
                return;
            }
            Cell::Number(x) => {
                self.numbers += 1;
                self.min = self.min.min(*x);
                self.raw.push(*x);
                self.log.push(x.max(0.0).ln_1p());
                self.sample.push(*x);
            }
            Cell::Text(t) => {
                self.texts += 1;
                if self.first_text.is_none() {
                    self.first_text = Some(t.to_string());
                }
            }
        }
        let level = cell.level();
        if let Some(c) = self.levels.get_mut(level.as_ref()) {
            *c += 1;
        } else if self.levels.len() < max_levels {
            self.levels.insert(level.into_owned(), 1);
        } else {
            self.untracked += 1;
        }
    }
}

/// Quantile `q` of sorted values (linear interpolation, as numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

fn skewness(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    if n < 3.0 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / n;
    let m2 = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let m3 = values.iter().map(|x| (x - mean).powi(3)).sum::<f64>() / n;
    if m2 <= 1e-24 { 0.0 } else { m3 / m2.powf(1.5) }
}

/// The scale of a robust standardisation: IQR / 1.349, else the standard deviation, else 1.
fn robust_scale(sorted: &[f64]) -> f64 {
    let iqr = quantile(sorted, 0.75) - quantile(sorted, 0.25);
    if iqr > 1e-12 {
        return iqr / 1.349;
    }
    let n = sorted.len().max(1) as f64;
    let mean = sorted.iter().sum::<f64>() / n;
    let std = (sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    if std > 1e-12 { std } else { 1.0 }
}

impl TabularEncoder {
    /// Fits the encoder on training rows, in one pass.
    ///
    /// # Errors
    /// An invalid definition; a field declared numeric holding text; no rows; every feature missing
    /// everywhere.
    pub fn fit<R: Record>(
        definition: &PredictionDefinition,
        config: &EncoderConfig,
        rows: impl IntoIterator<Item = R>,
    ) -> Result<Self, TabularError> {
        definition.validate()?;
        let mut stats: Vec<FieldStats> = (0..definition.features.len())
            .map(|i| FieldStats::new(config, 0x5EED_0000 + i as u64))
            .collect();
        let mut rows_seen = 0u64;
        let mut present = vec![false; definition.features.len()];
        for row in rows {
            rows_seen += 1;
            for ((field, s), p) in definition
                .features
                .iter()
                .zip(stats.iter_mut())
                .zip(present.iter_mut())
            {
                *p = *p || row.has_field(field);
                s.push(&row.cell(field), config.max_tracked_levels);
            }
        }
        if rows_seen == 0 {
            return Err(TabularError::NoData("no training rows".into()));
        }
        if let Some((field, _)) = definition.features.iter().zip(&present).find(|(_, p)| !**p) {
            return Err(TabularError::UnknownField(field.clone()));
        }
        let mut columns = Vec::new();
        let mut dropped = Vec::new();
        for (field, mut s) in definition.features.iter().cloned().zip(stats) {
            if s.numbers == 0 && s.texts == 0 {
                dropped.push((field, "missing in every training row".to_owned()));
                continue;
            }
            let kind = match definition.kinds.get(&field) {
                Some(k) => *k,
                None if s.texts == 0 => ColumnKind::Numeric,
                None => ColumnKind::Categorical,
            };
            match kind {
                ColumnKind::Numeric => {
                    if s.texts > 0 {
                        return Err(TabularError::NotNumeric {
                            field,
                            value: s.first_text.unwrap_or_default(),
                        });
                    }
                    columns.push(numeric_column(field, &mut s, config));
                }
                ColumnKind::Categorical => {
                    let mut levels: Vec<(String, u64)> = s
                        .levels
                        .into_iter()
                        .filter(|(_, c)| *c >= config.min_level_count)
                        .collect();
                    levels.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                    levels.truncate(config.top_k);
                    columns.push(ColumnEncoding::Categorical {
                        field,
                        levels: levels.into_iter().map(|(l, _)| l).collect(),
                    });
                }
            }
        }
        if columns.is_empty() {
            return Err(TabularError::NoData(
                "every feature is missing in every training row".into(),
            ));
        }
        Ok(Self {
            columns,
            dropped,
            rows_seen,
        })
    }

    /// Output width.
    #[must_use]
    pub fn width(&self) -> usize {
        self.columns.iter().map(ColumnEncoding::width).sum()
    }

    /// One name per output column: `field`, `field:missing`, `field=level`, `field=<other>`,
    /// `field=<missing>`.
    #[must_use]
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.width());
        for c in &self.columns {
            match c {
                ColumnEncoding::Numeric {
                    field,
                    indicator,
                    log_companion,
                    knots,
                    ..
                } => {
                    names.push(field.clone());
                    if log_companion.is_some() {
                        names.push(format!("{field}:log1p"));
                    }
                    names.extend(knots.iter().map(|k| format!("{field}:hinge({k:.3})")));
                    if *indicator {
                        names.push(format!("{field}:missing"));
                    }
                }
                ColumnEncoding::Categorical { field, levels } => {
                    names.extend(levels.iter().map(|l| format!("{field}={l}")));
                    names.push(format!("{field}=<other>"));
                    names.push(format!("{field}=<missing>"));
                }
            }
        }
        names
    }

    /// The kind each used field was given.
    #[must_use]
    pub fn kinds(&self) -> Vec<(&str, ColumnKind)> {
        self.columns
            .iter()
            .map(|c| match c {
                ColumnEncoding::Numeric { field, .. } => (field.as_str(), ColumnKind::Numeric),
                ColumnEncoding::Categorical { field, .. } => {
                    (field.as_str(), ColumnKind::Categorical)
                }
            })
            .collect()
    }

    /// Appends the encoding of `row` to `out` (exactly [`Self::width`] values).
    ///
    /// # Errors
    /// [`TabularError::NotNumeric`] when a numeric field holds text.
    pub fn encode_into<R: Record + ?Sized>(
        &self,
        row: &R,
        out: &mut Vec<f32>,
    ) -> Result<(), TabularError> {
        for c in &self.columns {
            c.encode_into(&row.cell(c.field()), out)?;
        }
        Ok(())
    }

    /// The encoding of `row`.
    ///
    /// # Errors
    /// See [`Self::encode_into`].
    pub fn encode<R: Record + ?Sized>(&self, row: &R) -> Result<Vec<f32>, TabularError> {
        let mut out = Vec::with_capacity(self.width());
        self.encode_into(row, &mut out)?;
        Ok(out)
    }
}

fn numeric_column(field: String, s: &mut FieldStats, config: &EncoderConfig) -> ColumnEncoding {
    let indicator = config.missing_numeric == MissingNumeric::Indicator && s.missing > 0;
    s.sample.values.sort_by(f64::total_cmp);
    let log1p =
        config.log_skewed && s.min >= 0.0 && skewness(&s.sample.values) > config.skew_threshold;
    let (center, scale) = match config.scaling {
        Scaling::Robust => {
            let mut v: Vec<f64> = if log1p {
                s.sample.values.iter().map(|x| x.ln_1p()).collect()
            } else {
                s.sample.values.clone()
            };
            if config.missing_numeric == MissingNumeric::Zero {
                // Missing cells are the value 0 (the sample is a uniform sample of the present ones;
                // add zeros in proportion).
                let share = s.missing as f64 / (s.missing + s.numbers) as f64;
                let zeros = (share * v.len() as f64 / (1.0 - share).max(1e-9)).round() as usize;
                v.extend(std::iter::repeat_n(0.0, zeros));
            }
            v.sort_by(f64::total_cmp);
            (quantile(&v, 0.5), robust_scale(&v))
        }
        Scaling::Standard => {
            let mut w = if log1p { s.log } else { s.raw };
            if config.missing_numeric == MissingNumeric::Zero {
                for _ in 0..s.missing {
                    w.push(0.0);
                }
            }
            let std = w.std();
            (w.mean, if std > 1e-12 { std } else { 1.0 })
        }
    };
    // More than two distinct values (a flag gets neither a companion nor hinges).
    let varied = s.sample.values.windows(2).filter(|w| w[0] != w[1]).count() >= 2;
    let log_companion = (config.log_companion && !log1p && s.min >= 0.0 && varied).then(|| {
        let logs: Vec<f64> = s.sample.values.iter().map(|x| x.ln_1p()).collect();
        (quantile(&logs, 0.5), robust_scale(&logs))
    });
    let mut knots = Vec::new();
    if config.hinges > 0 && varied {
        let mut z: Vec<f64> = s
            .sample
            .values
            .iter()
            .map(|x| {
                let x = if log1p { x.ln_1p() } else { *x };
                let z = (x - center) / scale;
                config.clip.map_or(z, |c| z.clamp(-c, c))
            })
            .collect();
        z.sort_by(f64::total_cmp);
        let (lo, hi) = (z.first().copied(), z.last().copied());
        for j in 1..=config.hinges {
            let k = quantile(&z, j as f64 / (config.hinges + 1) as f64);
            if Some(k) != lo && Some(k) != hi && knots.last().is_none_or(|p: &f64| *p < k) {
                knots.push(k);
            }
        }
    }
    ColumnEncoding::Numeric {
        field,
        log1p,
        center,
        scale,
        clip: config.clip,
        missing: config.missing_numeric,
        log_companion,
        knots,
        indicator,
    }
}

/// One network of a [`TabularModel`]: dense layers with ReLU between them and one logit out. A single
/// layer is a logistic regression. With `wide`, a linear layer straight from the input is added to the
/// logit (a wide-and-deep network: the linear part carries the main effects, the hidden layer the
/// interactions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// `logistic`, `mlp` or `wide_deep` (informational).
    pub kind: String,
    /// The layers, input first.
    pub layers: Vec<Dense>,
    /// A linear layer from the input to the logit, added to the layers' output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wide: Option<Dense>,
}

impl Network {
    /// The logit for an encoded row.
    ///
    /// # Errors
    /// [`TabularError::Inconsistent`] when the widths do not chain.
    pub fn logit(&self, x: &[f32]) -> Result<f64, TabularError> {
        let wide = match &self.wide {
            None => 0.0,
            Some(l) => {
                if x.len() != l.inputs
                    || l.outputs != 1
                    || l.weights.len() != l.inputs
                    || l.bias.len() != 1
                {
                    return Err(TabularError::Inconsistent(format!(
                        "{} wide layer takes {} inputs to {} outputs, got {}",
                        self.kind,
                        l.inputs,
                        l.outputs,
                        x.len()
                    )));
                }
                l.bias[0] + x.iter().zip(&l.weights).map(|(a, b)| a * b).sum::<f32>()
            }
        };
        let mut cur: Vec<f32> = x.to_vec();
        let last = self.layers.len().saturating_sub(1);
        for (i, l) in self.layers.iter().enumerate() {
            if cur.len() != l.inputs
                || l.weights.len() != l.inputs * l.outputs
                || l.bias.len() != l.outputs
            {
                return Err(TabularError::Inconsistent(format!(
                    "{} layer {i} takes {} inputs, got {}",
                    self.kind,
                    l.inputs,
                    cur.len()
                )));
            }
            let mut y = l.bias.clone();
            for (xi, row) in cur.iter().zip(l.weights.chunks_exact(l.outputs.max(1))) {
                for (yo, w) in y.iter_mut().zip(row) {
                    *yo += xi * w;
                }
            }
            if i < last {
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            cur = y;
        }
        match cur.as_slice() {
            [logit] => Ok(f64::from(*logit + wide)),
            _ => Err(TabularError::Inconsistent(format!(
                "{} must end in one output, has {}",
                self.kind,
                cur.len()
            ))),
        }
    }
}

/// A weighted average of the probabilities of one or more networks (one network = weight 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TabularModel {
    /// `(weight, network)`; weights are positive.
    pub members: Vec<(f64, Network)>,
}

impl TabularModel {
    /// The positive-class probability of an encoded row.
    ///
    /// # Errors
    /// [`TabularError::Inconsistent`] when a network does not fit the row or there is none.
    pub fn predict(&self, x: &[f32]) -> Result<f64, TabularError> {
        let total: f64 = self.members.iter().map(|(w, _)| *w).sum();
        if self.members.is_empty() || total <= 0.0 || !total.is_finite() {
            return Err(TabularError::Inconsistent(
                "the model has no positively weighted network".into(),
            ));
        }
        let mut p = 0.0;
        for (w, net) in &self.members {
            p += w * sigmoid(net.logit(x)?);
        }
        Ok(p / total)
    }
}

/// The logistic function.
#[must_use]
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Logistic regression with an L2 penalty, fitted to its exact optimum by Newton's method: minimises
/// `Σᵢ log-loss + ‖w‖² / (2C)` with the bias unpenalised — scikit-learn's `LogisticRegression(C)`
/// objective (equivalently the mean log-loss + `λ/2 ‖w‖²` with `λ = 1/(C·n)`). It is the classical
/// baseline that the learned models are compared with, so it must not depend on a learning rate.
///
/// `x` is row-major, `rows × width`.
///
/// # Errors
/// [`TabularError::NoData`] when the shapes disagree or there are no rows; [`TabularError::Inconsistent`]
/// when the system cannot be solved (a non-positive `c`).
pub fn fit_logistic_newton(
    x: &[f32],
    width: usize,
    y: &[bool],
    c: f64,
) -> Result<Network, TabularError> {
    let n = y.len();
    if n == 0 || x.len() != n * width {
        return Err(TabularError::NoData(format!(
            "{} labels for {} values of width {width}",
            n,
            x.len()
        )));
    }
    if c <= 0.0 || !c.is_finite() {
        return Err(TabularError::Inconsistent(format!(
            "C must be positive, got {c}"
        )));
    }
    let d = width + 1; // bias last
    let penalty = 1.0 / c;
    let mut beta = vec![0.0f64; d];
    let objective = |beta: &[f64]| -> f64 {
        let mut f = 0.0;
        for (row, &yi) in x.chunks_exact(width.max(1)).zip(y) {
            let z = beta[width]
                + row
                    .iter()
                    .zip(beta)
                    .map(|(a, b)| f64::from(*a) * b)
                    .sum::<f64>();
            // log(1 + e^z) − y z, computed stably.
            let softplus = if z > 0.0 {
                z + (-z).exp().ln_1p()
            } else {
                z.exp().ln_1p()
            };
            f += softplus - if yi { z } else { 0.0 };
        }
        f + 0.5 * penalty * beta[..width].iter().map(|b| b * b).sum::<f64>()
    };
    let mut current = objective(&beta);
    for _ in 0..100 {
        let mut grad = vec![0.0f64; d];
        let mut hess = vec![0.0f64; d * d];
        let mut xi = vec![0.0f64; d];
        for (row, &yi) in x.chunks_exact(width.max(1)).zip(y) {
            for (a, b) in xi.iter_mut().zip(row) {
                *a = f64::from(*b);
            }
            xi[width] = 1.0;
            let z: f64 = xi.iter().zip(&beta).map(|(a, b)| a * b).sum();
            let p = sigmoid(z);
            let r = p - f64::from(u8::from(yi));
            let w = (p * (1.0 - p)).max(1e-12);
            for j in 0..d {
                if xi[j] == 0.0 {
                    continue;
                }
                grad[j] += r * xi[j];
                let wj = w * xi[j];
                let hrow = &mut hess[j * d..(j + 1) * d];
                for (h, xk) in hrow[..=j].iter_mut().zip(&xi[..=j]) {
                    *h += wj * xk;
                }
            }
        }
        for j in 0..width {
            grad[j] += penalty * beta[j];
            hess[j * d + j] += penalty;
        }
        for j in 0..d {
            for k in 0..j {
                hess[k * d + j] = hess[j * d + k];
            }
        }
        let step = cholesky_solve(&mut hess, &grad, d).ok_or_else(|| {
            TabularError::Inconsistent("the Newton system is not positive definite".into())
        })?;
        // Damped step: halve until the objective does not increase.
        let mut t = 1.0;
        let mut next = beta.clone();
        let mut value = f64::INFINITY;
        for _ in 0..30 {
            for ((nb, b), s) in next.iter_mut().zip(&beta).zip(&step) {
                *nb = b - t * s;
            }
            value = objective(&next);
            if value <= current + 1e-12 {
                break;
            }
            t /= 2.0;
        }
        let moved = step.iter().map(|s| (t * s).abs()).fold(0.0, f64::max);
        if value <= current + 1e-12 {
            beta = next;
            current = value;
        }
        if moved < 1e-9 || grad.iter().map(|g| g.abs()).fold(0.0, f64::max) < 1e-9 {
            break;
        }
    }
    Ok(Network {
        kind: "logistic".into(),
        layers: vec![Dense {
            inputs: width,
            outputs: 1,
            weights: beta[..width].iter().map(|b| *b as f32).collect(),
            bias: vec![beta[width] as f32],
        }],
        wide: None,
    })
}

/// Solves `A s = b` for a symmetric positive definite `A` (overwritten by its Cholesky factor).
fn cholesky_solve(a: &mut [f64], b: &[f64], d: usize) -> Option<Vec<f64>> {
    for j in 0..d {
        let mut diag = a[j * d + j];
        for k in 0..j {
            diag -= a[j * d + k] * a[j * d + k];
        }
        if diag <= 0.0 || !diag.is_finite() {
            return None;
        }
        let l = diag.sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut v = a[i * d + j];
            for k in 0..j {
                v -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = v / l;
        }
    }
    let mut z = vec![0.0; d];
    for i in 0..d {
        let mut v = b[i];
        for k in 0..i {
            v -= a[i * d + k] * z[k];
        }
        z[i] = v / a[i * d + i];
    }
    for i in (0..d).rev() {
        let mut v = z[i];
        for k in i + 1..d {
            v -= a[k * d + i] * z[k];
        }
        z[i] = v / a[i * d + i];
    }
    Some(z)
}

/// Everything the gateway needs to score a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropensityArtifact {
    /// What is predicted.
    pub definition: PredictionDefinition,
    /// The fitted encoder.
    pub encoder: TabularEncoder,
    /// The trained model on the encoder's output.
    pub model: TabularModel,
}

impl PropensityArtifact {
    /// Checks that every network takes the encoder's width and ends in one logit.
    ///
    /// # Errors
    /// [`TabularError::Inconsistent`] or an invalid definition.
    pub fn validate(&self) -> Result<(), TabularError> {
        self.definition.validate()?;
        let probe = vec![0.0f32; self.encoder.width()];
        self.model.predict(&probe).map(|_| ())
    }

    /// The positive-class probability of a record.
    ///
    /// # Errors
    /// A numeric field holding text, or an inconsistent artefact.
    pub fn score<R: Record + ?Sized>(&self, row: &R) -> Result<f64, TabularError> {
        self.model.predict(&self.encoder.encode(row)?)
    }

    /// The score of a record and its `top` strongest factors, strongest first.
    ///
    /// Occlusion per source field: the field's encoded columns are replaced by the encoding of its
    /// typical training value ([`ColumnEncoding::typical`]) and the record is scored again; the
    /// factor's impact is `score − occluded score` (so a positive impact raises the likelihood of the
    /// outcome). This works for any model in the artefact (linear, MLP, blends), needs no background
    /// data at scoring time, and speaks in the record's own values: "Contract = Month-to-month raises
    /// the likelihood of Churn = Yes by 12.3 points (typical: Two year)". Fields at their typical value,
    /// and fields that move the score by less than 0.1 point, are not factors.
    ///
    /// # Errors
    /// As [`Self::score`].
    pub fn explain<R: Record + ?Sized>(
        &self,
        row: &R,
        top: usize,
    ) -> Result<Explanation, TabularError> {
        let x = self.encoder.encode(row)?;
        let score = self.model.predict(&x)?;
        let outcome = self.outcome();
        let mut factors: Vec<ScoreFactor> = Vec::new();
        let mut start = 0;
        let mut occluded = x.clone();
        let mut typical = Vec::new();
        for column in &self.encoder.columns {
            let width = column.width();
            typical.clear();
            column.encode_typical_into(&mut typical)?;
            let segment = start..start + width;
            start += width;
            if typical.as_slice() == &x[segment.clone()] {
                continue;
            }
            occluded[segment.clone()].copy_from_slice(&typical);
            let impact = score - self.model.predict(&occluded)?;
            occluded[segment.clone()].copy_from_slice(&x[segment]);
            if impact.abs() < MIN_IMPACT {
                continue;
            }
            let field = column.field();
            let value = match row.cell(field) {
                Cell::Missing => format!("{field} is blank"),
                Cell::Number(v) => format!("{field} = {}", number_text(v)),
                Cell::Text(t) => format!("{field} = {t}"),
            };
            let usual = match column.typical() {
                Some(Cell::Number(v)) => number_text(v),
                Some(cell) => cell.level().into_owned(),
                None => "another value".to_owned(),
            };
            let (direction, verb) = if impact > 0.0 {
                (FactorDirection::RaisesRisk, "raises")
            } else {
                (FactorDirection::LowersRisk, "lowers")
            };
            factors.push(ScoreFactor {
                factor: field.to_owned(),
                direction,
                text: format!(
                    "{value} {verb} the likelihood of {outcome} by {:.1} points (typical: {usual})",
                    impact.abs() * 100.0
                ),
                impact,
            });
        }
        factors.sort_by(|a, b| {
            b.impact
                .abs()
                .total_cmp(&a.impact.abs())
                .then_with(|| a.factor.cmp(&b.factor))
        });
        factors.truncate(top);
        Ok(Explanation { score, factors })
    }

    /// The predicted outcome in words, e.g. `Churn = Yes` or `Amount > 1000`.
    fn outcome(&self) -> String {
        let d = &self.definition;
        match &d.label {
            LabelRule::Values { positive } => format!(
                "{} = {}",
                d.label_field,
                positive
                    .iter()
                    .map(|p| p.trim())
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            LabelRule::Threshold { above } => {
                format!("{} > {}", d.label_field, number_text(*above))
            }
        }
    }
}

/// A score with the factors behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The positive-class probability.
    pub score: f64,
    /// Strongest first.
    pub factors: Vec<ScoreFactor>,
}

/// A number for a sentence: integers without decimals, others with up to two.
fn number_text(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: Value) -> Vec<Map<String, Value>> {
        v.as_array()
            .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
            .unwrap_or_default()
    }

    fn definition(features: &[&str]) -> PredictionDefinition {
        PredictionDefinition {
            object: "Account".into(),
            label_field: "Churn".into(),
            label: LabelRule::Values {
                positive: vec!["Yes".into()],
            },
            features: features.iter().map(|s| (*s).to_owned()).collect(),
            kinds: BTreeMap::new(),
        }
    }

    #[test]
    fn cells_classify_missing_numbers_and_text() {
        assert_eq!(Cell::parse(""), Cell::Missing);
        assert_eq!(Cell::parse("   "), Cell::Missing);
        assert_eq!(Cell::parse("NULL"), Cell::Missing);
        assert_eq!(Cell::parse("nan"), Cell::Missing);
        assert_eq!(Cell::parse(" 29.85 "), Cell::Number(29.85));
        assert_eq!(Cell::parse("1e3"), Cell::Number(1000.0));
        assert_eq!(Cell::parse("inf"), Cell::Text(Cow::Borrowed("inf")));
        assert_eq!(Cell::parse(" DSL "), Cell::Text(Cow::Borrowed("DSL")));
        assert_eq!(Cell::Number(84.0).level(), "84");
        let m = rows(json!([{"a": null, "b": 3, "c": true, "d": " null "}]));
        let Some(r) = m.first() else {
            panic!("one row")
        };
        assert_eq!(r.cell("a"), Cell::Missing);
        assert_eq!(r.cell("absent"), Cell::Missing);
        assert_eq!(r.cell("b"), Cell::Number(3.0));
        assert_eq!(r.cell("c"), Cell::Text(Cow::Borrowed("true")));
        assert_eq!(r.cell("d"), Cell::Missing);
    }

    #[test]
    fn infers_kinds_and_handles_missing_and_unseen_levels() -> Result<(), TabularError> {
        let data = rows(json!([
            {"Churn": "Yes", "tenure": 1,    "plan": "A", "code": "3", "note": null},
            {"Churn": "No",  "tenure": "5",  "plan": "A", "code": "3", "note": ""},
            {"Churn": "No",  "tenure": 9,    "plan": "B", "code": "7", "note": " "},
            {"Churn": "No",  "tenure": " ",  "plan": null, "code": "3", "note": null},
            {"Churn": "Yes", "tenure": 13,   "plan": "A", "code": "7", "note": null},
        ]));
        let mut def = definition(&["tenure", "plan", "code", "note"]);
        def.kinds.insert("code".into(), ColumnKind::Categorical);
        let config = EncoderConfig {
            min_level_count: 1,
            log_companion: false,
            hinges: 0,
            ..EncoderConfig::default()
        };
        let enc = TabularEncoder::fit(&def, &config, &data)?;
        assert_eq!(
            enc.kinds(),
            vec![
                ("tenure", ColumnKind::Numeric),
                ("plan", ColumnKind::Categorical),
                ("code", ColumnKind::Categorical),
            ]
        );
        assert_eq!(
            enc.dropped,
            vec![(
                "note".to_owned(),
                "missing in every training row".to_owned()
            )]
        );
        assert_eq!(
            enc.feature_names(),
            [
                "tenure",
                "tenure:missing",
                "plan=A",
                "plan=B",
                "plan=<other>",
                "plan=<missing>",
                "code=3",
                "code=7",
                "code=<other>",
                "code=<missing>"
            ]
        );
        // tenure present: 1, 5, 9, 13 → median 7, IQR 6 (numpy linear) → scale 6/1.349.
        let row = enc.encode(&data[0])?;
        let expected = ((1.0 - 7.0) / (6.0 / 1.349)) as f32;
        assert!((row[0] - expected).abs() < 1e-6, "{row:?}");
        assert_eq!(&row[1..], &[0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        // Missing tenure → centre (0) + indicator; missing plan → <missing>.
        let row = enc.encode(&data[3])?;
        assert_eq!(&row[..2], &[0.0, 1.0]);
        assert_eq!(&row[2..6], &[0.0, 0.0, 0.0, 1.0]);
        // Unseen level → <other>; a numeric-looking code that was declared categorical keeps levels.
        let unseen = rows(json!([{"tenure": 5, "plan": "Z", "code": 3.0}]));
        let row = enc.encode(&unseen[0])?;
        assert_eq!(&row[2..], &[0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        // Text in a numeric field at scoring time is an error naming the field.
        let bad = rows(json!([{"tenure": "ten", "plan": "A", "code": "3"}]));
        assert_eq!(
            enc.encode(&bad[0]),
            Err(TabularError::NotNumeric {
                field: "tenure".into(),
                value: "ten".into()
            })
        );
        Ok(())
    }

    #[test]
    fn top_k_and_rare_levels_go_to_other() -> Result<(), TabularError> {
        let mut data = Vec::new();
        for (level, n) in [("a", 5), ("b", 4), ("c", 3), ("d", 1)] {
            for _ in 0..n {
                data.push(vec!["No".to_owned(), level.to_owned()]);
            }
        }
        let cols = CsvColumns::new(&["Churn", "f"])?;
        let def = definition(&["f"]);
        cols.check(&def)?;
        let csv_rows = data
            .iter()
            .map(|r| cols.row(r))
            .collect::<Result<Vec<_>, _>>()?;
        let config = EncoderConfig {
            top_k: 2,
            min_level_count: 2,
            ..EncoderConfig::default()
        };
        let enc = TabularEncoder::fit(&def, &config, csv_rows.iter())?;
        assert_eq!(
            enc.feature_names(),
            ["f=a", "f=b", "f=<other>", "f=<missing>"]
        );
        let c = cols.row(&data[data.len() - 1])?;
        assert_eq!(enc.encode(&c)?, vec![0.0, 0.0, 1.0, 0.0]);
        let config = EncoderConfig {
            top_k: 10,
            min_level_count: 2,
            ..EncoderConfig::default()
        };
        let enc = TabularEncoder::fit(&def, &config, csv_rows.iter())?;
        assert_eq!(enc.width(), 5, "d (seen once) is <other>");
        Ok(())
    }

    #[test]
    fn csv_rows_must_match_the_header_and_the_definition() -> Result<(), TabularError> {
        let cols = CsvColumns::new(&["Churn", "x"])?;
        assert_eq!(
            cols.row(&["Yes"]).map(|_| ()),
            Err(TabularError::Ragged {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            cols.check(&definition(&["y"])),
            Err(TabularError::UnknownField("y".into()))
        );
        assert!(CsvColumns::new(&["a", "a"]).is_err());
        Ok(())
    }

    #[test]
    fn declared_numeric_with_text_and_empty_data_are_errors() {
        let data = rows(json!([{"Churn": "No", "x": "abc"}, {"Churn": "Yes", "x": 1}]));
        let mut def = definition(&["x"]);
        def.kinds.insert("x".into(), ColumnKind::Numeric);
        assert_eq!(
            TabularEncoder::fit(&def, &EncoderConfig::default(), &data),
            Err(TabularError::NotNumeric {
                field: "x".into(),
                value: "abc".into()
            })
        );
        let none: Vec<Map<String, Value>> = Vec::new();
        assert!(matches!(
            TabularEncoder::fit(&definition(&["x"]), &EncoderConfig::default(), &none),
            Err(TabularError::NoData(_))
        ));
        let mut def = definition(&["x", "x"]);
        assert!(matches!(def.validate(), Err(TabularError::Definition(_))));
        def.features = vec!["Churn".into()];
        assert!(matches!(def.validate(), Err(TabularError::Definition(_))));
    }

    #[test]
    fn labels_by_value_or_threshold() -> Result<(), TabularError> {
        let data = rows(json!([
            {"Churn": " yes "}, {"Churn": "No"}, {"Churn": ""}, {"Churn": 1500}, {"Churn": "x"}
        ]));
        let def = definition(&["a"]);
        let got: Vec<_> = data
            .iter()
            .map(|r| def.label_of(r))
            .collect::<Result<_, _>>()?;
        assert_eq!(
            got,
            vec![Some(true), Some(false), None, Some(false), Some(false)]
        );
        let def = PredictionDefinition {
            label: LabelRule::Threshold { above: 1000.0 },
            ..def
        };
        assert_eq!(def.label_of(&data[3])?, Some(true));
        assert_eq!(def.label_of(&data[2])?, None);
        assert!(matches!(
            def.label_of(&data[4]),
            Err(TabularError::NotNumeric { .. })
        ));
        Ok(())
    }

    #[test]
    fn standard_encoding_matches_standard_scaler_with_blank_as_zero() -> Result<(), TabularError> {
        let data = rows(json!([{"x": 2}, {"x": 4}, {"x": ""}, {"x": 6}]));
        let enc = TabularEncoder::fit(&definition(&["x"]), &EncoderConfig::standard(), &data)?;
        // Values 2, 4, 0, 6: mean 3, population std sqrt(5).
        let s5 = 5f64.sqrt();
        let got: Vec<f32> = data
            .iter()
            .map(|r| enc.encode(r).map(|v| v[0]))
            .collect::<Result<_, _>>()?;
        let want = [-1.0 / s5, 1.0 / s5, -3.0 / s5, 3.0 / s5];
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-6, "{got:?}");
        }
        assert_eq!(enc.width(), 1, "no indicator in the baseline encoding");
        Ok(())
    }

    #[test]
    fn skewed_non_negative_fields_are_logged() -> Result<(), TabularError> {
        let data: Vec<Map<String, Value>> = (0..200)
            .map(|i| {
                let x = if i % 10 == 0 {
                    1000.0 * f64::from(i)
                } else {
                    f64::from(i % 7)
                };
                rows(json!([{ "x": x, "y": f64::from(i) }])).remove(0)
            })
            .collect();
        let config = EncoderConfig {
            log_skewed: true,
            ..EncoderConfig::default()
        };
        let enc = TabularEncoder::fit(&definition(&["x", "y"]), &config, &data)?;
        let logs: Vec<bool> = enc
            .columns
            .iter()
            .map(|c| matches!(c, ColumnEncoding::Numeric { log1p: true, .. }))
            .collect();
        assert_eq!(logs, vec![true, false]);
        // y (not logged) gets the log companion and three hinges; x (logged) only the hinges.
        assert_eq!(enc.width(), 1 + 3 + 1 + 1 + 3, "{:?}", enc.feature_names());
        // Clipped at ±5.
        let v = enc.encode(&data[190])?;
        assert!(v[0] <= 5.0 && v[0] > 1.0, "{v:?}");
        Ok(())
    }

    #[test]
    fn numeric_basis_has_a_log_companion_and_hinges_at_quantiles() -> Result<(), TabularError> {
        // 0..=8: median 4, IQR 4 → scale 4/1.349; flag: two values, no basis columns.
        let data: Vec<Map<String, Value>> = (0..9)
            .map(|i| rows(json!([{ "x": i, "flag": i % 2 }])).remove(0))
            .collect();
        let config = EncoderConfig {
            hinges: 1,
            clip: None,
            ..EncoderConfig::default()
        };
        let enc = TabularEncoder::fit(&definition(&["x", "flag"]), &config, &data)?;
        assert_eq!(
            enc.feature_names(),
            ["x", "x:log1p", "x:hinge(0.000)", "flag"],
            "one interior knot at the median"
        );
        let scale = 4.0 / 1.349;
        let v = enc.encode(&data[8])?;
        let log_c = 5f64.ln();
        let log_s = {
            let logs: Vec<f64> = (0..9).map(|i| f64::from(i).ln_1p()).collect();
            (quantile(&logs, 0.75) - quantile(&logs, 0.25)) / 1.349
        };
        let want = [4.0 / scale, (9f64.ln() - log_c) / log_s, 4.0 / scale];
        for (g, w) in v.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-5, "{v:?} vs {want:?}");
        }
        assert_eq!(enc.encode(&data[2])?[2], 0.0, "below the knot");
        Ok(())
    }

    #[test]
    fn newton_logistic_reaches_the_penalised_optimum() -> Result<(), TabularError> {
        // One feature, separable-ish data; at the optimum the gradient of
        // Σ log-loss + w²/(2C) vanishes in w and b.
        let x: Vec<f32> = vec![-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0];
        let y = [false, false, true, false, true, false, true, true];
        let c = 0.7;
        let net = fit_logistic_newton(&x, 1, &y, c)?;
        let (w, b) = (
            f64::from(net.layers[0].weights[0]),
            f64::from(net.layers[0].bias[0]),
        );
        let (mut gw, mut gb) = (w / c, 0.0);
        for (xi, yi) in x.iter().zip(y) {
            let r = sigmoid(w * f64::from(*xi) + b) - f64::from(u8::from(yi));
            gw += r * f64::from(*xi);
            gb += r;
        }
        assert!(
            gw.abs() < 1e-4 && gb.abs() < 1e-4,
            "gradient {gw} {gb} at w {w} b {b}"
        );
        assert!(w > 0.0);
        // A stronger penalty shrinks the weight.
        let shrunk = fit_logistic_newton(&x, 1, &y, 0.01)?;
        assert!(f64::from(shrunk.layers[0].weights[0]).abs() < w.abs());
        assert!(
            fit_logistic_newton(&x, 2, &y, 1.0).is_err(),
            "shape mismatch"
        );
        assert!(
            fit_logistic_newton(&x, 1, &y, 0.0).is_err(),
            "C must be positive"
        );
        Ok(())
    }

    #[test]
    fn artefact_round_trips_and_scores_by_hand() -> Result<(), Box<dyn std::error::Error>> {
        let data = rows(json!([
            {"Churn": "Yes", "x": 1, "p": "A"},
            {"Churn": "No", "x": 3, "p": "B"},
        ]));
        let config = EncoderConfig {
            min_level_count: 1,
            scaling: Scaling::Standard,
            log_companion: false,
            hinges: 0,
            ..EncoderConfig::default()
        };
        let def = definition(&["x", "p"]);
        let encoder = TabularEncoder::fit(&def, &config, &data)?;
        // x → (x − 2) / 1; p one-hot A, B, other, missing: width 5.
        assert_eq!(encoder.width(), 5);
        let logistic = Network {
            kind: "logistic".into(),
            layers: vec![Dense {
                inputs: 5,
                outputs: 1,
                weights: vec![2.0, 1.0, -1.0, 0.0, 0.0],
                bias: vec![0.5],
            }],
            wide: None,
        };
        let mlp = Network {
            kind: "wide_deep".into(),
            wide: Some(Dense {
                inputs: 5,
                outputs: 1,
                weights: vec![0.5, 0.0, 0.0, 0.0, 2.0],
                bias: vec![0.25],
            }),
            layers: vec![
                Dense {
                    inputs: 5,
                    outputs: 2,
                    weights: vec![1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                    bias: vec![0.0, 0.0],
                },
                Dense {
                    inputs: 2,
                    outputs: 1,
                    weights: vec![1.0, 1.0],
                    bias: vec![0.0],
                },
            ],
        };
        let artefact = PropensityArtifact {
            definition: def,
            encoder,
            model: TabularModel {
                members: vec![(3.0, logistic), (1.0, mlp)],
            },
        };
        artefact.validate()?;
        let text = serde_json::to_string(&artefact)?;
        let back: PropensityArtifact = serde_json::from_str(&text)?;
        assert_eq!(back, artefact);
        // Row 0: x = −1, A → logistic logit −2 + 1 + 0.5 = −0.5; wide-and-deep: relu(−1, 1) → 1,
        // plus the wide part 0.5·(−1) + 0.25 = −0.25 → logit 0.75.
        let p = back.score(&data[0])?;
        let want = (3.0 * sigmoid(-0.5) + sigmoid(0.75)) / 4.0;
        assert!((p - want).abs() < 1e-7, "{p} vs {want}");
        let mut broken = artefact.clone();
        broken.model.members[0].1.layers[0].inputs = 4;
        assert!(matches!(
            broken.validate(),
            Err(TabularError::Inconsistent(_))
        ));
        let mut broken = artefact.clone();
        if let Some(w) = broken.model.members[1].1.wide.as_mut() {
            w.weights.pop();
        }
        assert!(matches!(
            broken.validate(),
            Err(TabularError::Inconsistent(_))
        ));
        Ok(())
    }

    /// Rows where `plan = basic` (the rarer level) makes `Won = Yes` very likely, a long `tenure`
    /// makes it unlikely, and `region` is noise.
    fn planted(n: usize) -> Vec<Map<String, Value>> {
        let mut state = 11u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as f64 / f64::from(1u32 << 31)
        };
        (0..n)
            .map(|i| {
                let basic = next() < 0.4;
                let tenure = (next() * 72.0).round();
                let region = if next() < 0.5 { "north" } else { "south" };
                let logit = if basic { 2.5 } else { -1.5 } - 0.04 * (tenure - 36.0);
                let won = next() < sigmoid(logit);
                let tenure = if i % 25 == 0 { json!(null) } else { json!(tenure) };
                rows(json!([{"Won": if won { "Yes" } else { "No" },
                    "plan": if basic { "basic" } else { "pro" }, "tenure": tenure, "region": region}]))
                .remove(0)
            })
            .collect()
    }

    fn planted_artefact() -> Result<(PropensityArtifact, Vec<Map<String, Value>>), TabularError> {
        let data = planted(600);
        let def = PredictionDefinition {
            object: "Opportunity".into(),
            label_field: "Won".into(),
            label: LabelRule::Values {
                positive: vec!["Yes".into()],
            },
            features: vec!["plan".into(), "tenure".into(), "region".into()],
            kinds: BTreeMap::new(),
        };
        let encoder = TabularEncoder::fit(&def, &EncoderConfig::default(), &data)?;
        let mut x = Vec::new();
        let mut y = Vec::new();
        for r in &data {
            encoder.encode_into(r, &mut x)?;
            y.push(def.label_of(r)?.unwrap_or(false));
        }
        let net = fit_logistic_newton(&x, encoder.width(), &y, 1.0)?;
        let artefact = PropensityArtifact {
            definition: def,
            encoder,
            model: TabularModel {
                members: vec![(1.0, net)],
            },
        };
        Ok((artefact, data))
    }

    #[test]
    fn a_planted_strong_field_is_the_top_factor() -> Result<(), TabularError> {
        let (artefact, _) = planted_artefact()?;
        let typical: Vec<String> = artefact
            .encoder
            .columns
            .iter()
            .map(|c| {
                c.typical()
                    .map(|t| t.level().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(typical[0], "pro", "the most frequent level is typical");
        let record = rows(json!([{"plan": "basic", "tenure": 30, "region": "north"}])).remove(0);
        let e = artefact.explain(&record, TOP_FACTORS)?;
        assert!((e.score - artefact.score(&record)?).abs() < 1e-12);
        let top = e
            .factors
            .first()
            .ok_or(TabularError::NoData("no factor".into()))?;
        assert_eq!(top.factor, "plan");
        assert_eq!(top.direction, FactorDirection::RaisesRisk);
        assert!(top.impact > 0.3, "{top:?}");
        assert!(
            top.text
                .starts_with("plan = basic raises the likelihood of Won = Yes by ")
                && top.text.ends_with("points (typical: pro)"),
            "{}",
            top.text
        );
        assert!(e.factors.len() <= TOP_FACTORS);
        for w in e.factors.windows(2) {
            assert!(w[0].impact.abs() >= w[1].impact.abs(), "{:?}", e.factors);
        }
        // A long tenure lowers it, and outranks the noise field; the plan at its typical value is
        // not a factor.
        let record = rows(json!([{"plan": "pro", "tenure": 72, "region": "south"}])).remove(0);
        let e = artefact.explain(&record, TOP_FACTORS)?;
        let top = e
            .factors
            .first()
            .ok_or(TabularError::NoData("no factor".into()))?;
        assert_eq!(top.factor, "tenure", "{:?}", e.factors);
        assert_eq!(top.direction, FactorDirection::LowersRisk);
        assert!(
            top.text.starts_with("tenure = 72 lowers the likelihood"),
            "{}",
            top.text
        );
        assert!(
            e.factors.iter().all(|f| f.factor != "plan"),
            "{:?}",
            e.factors
        );
        // A blank value is named as such; the factor is the same on the wire as the churn model's.
        let record = rows(json!([{"plan": "basic", "tenure": null, "region": "south"}])).remove(0);
        let e = artefact.explain(&record, 10)?;
        if let Some(f) = e.factors.iter().find(|f| f.factor == "tenure") {
            assert!(f.text.starts_with("tenure is blank"), "{}", f.text);
        }
        let wire =
            serde_json::to_value(&e.factors[0]).map_err(|e| TabularError::NoData(e.to_string()))?;
        assert_eq!(wire["factor"], "plan");
        assert_eq!(wire["direction"], "raises_risk");
        Ok(())
    }

    #[test]
    fn occlusion_matches_the_linear_model_by_hand() -> Result<(), TabularError> {
        // For a logistic regression the occluded logit differs by w·(x − typical) on the field's
        // columns; check the impact against that.
        let (artefact, data) = planted_artefact()?;
        let row = &data[1];
        let x = artefact.encoder.encode(row)?;
        let net = &artefact.model.members[0].1;
        let e = artefact.explain(row, 10)?;
        let mut start = 0;
        for column in &artefact.encoder.columns {
            let width = column.width();
            let mut typical = Vec::new();
            column.encode_typical_into(&mut typical)?;
            let mut occluded = x.clone();
            occluded[start..start + width].copy_from_slice(&typical);
            let want = sigmoid(net.logit(&x)?) - sigmoid(net.logit(&occluded)?);
            start += width;
            match e.factors.iter().find(|f| f.factor == column.field()) {
                Some(f) => assert!((f.impact - want).abs() < 1e-9, "{f:?} vs {want}"),
                None => assert!(
                    want.abs() < MIN_IMPACT,
                    "{} missing ({want})",
                    column.field()
                ),
            }
        }
        Ok(())
    }

    #[test]
    fn a_feature_no_row_has_is_an_unknown_field_but_an_all_blank_one_is_dropped()
    -> Result<(), TabularError> {
        let data = rows(json!([
            {"Churn": "Yes", "x": 1, "blank": null},
            {"Churn": "No", "x": 2, "blank": null},
        ]));
        assert_eq!(
            TabularEncoder::fit(
                &definition(&["x", "Tenure__c"]),
                &EncoderConfig::default(),
                &data
            ),
            Err(TabularError::UnknownField("Tenure__c".into()))
        );
        let enc = TabularEncoder::fit(
            &definition(&["x", "blank"]),
            &EncoderConfig::default(),
            &data,
        )?;
        assert_eq!(enc.dropped.len(), 1);
        // CSV rows answer by the header.
        let cols = CsvColumns::new(&["Churn", "x"])?;
        let values = [vec!["Yes".to_owned(), "1".to_owned()]];
        let csv = values
            .iter()
            .map(|v| cols.row(v))
            .collect::<Result<Vec<_>, _>>()?;
        assert_eq!(
            TabularEncoder::fit(&definition(&["x", "y"]), &EncoderConfig::default(), &csv),
            Err(TabularError::UnknownField("y".into()))
        );
        Ok(())
    }
}
