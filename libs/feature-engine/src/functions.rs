//! The three aggregate functions the feature query calls, vectorised, and their registration on
//! every session that plans or runs the query.
//!
//! Why our own functions: with built-ins only, the weekly sequence was an
//! `array_agg(named_struct(…) ORDER BY wk)`, which has no vectorised (groups) accumulator in
//! DataFusion 55 — the whole last aggregate then ran one accumulator object per account and row
//! by row, about two thirds of the run — and the inter-purchase gaps and per-category spend
//! needed two more `GROUPING SETS` passes and a sorted window. These three functions keep one
//! small state per account in a vector indexed by group (DataFusion's `GroupsAccumulator`), so
//! the query ends in one hash aggregate per account over order, line, case and event rows:
//!
//! - [`WEEK_SEQUENCE`]`(wk, orders, spend, items, cases)`: per account, the sum of each channel
//!   per week, as the sparse sequence (a list of `{week, orders, spend, items, cases}` for the
//!   weeks that had a row, week 0 first; null without any). Rows with a null week are ignored.
//! - [`PURCHASE_GAPS`]`(day)`: per account, over its distinct days, the number of gaps between
//!   consecutive days, their sum and the sum of their squares (`{n, sum, sum_sq}`, all 0 for one
//!   day or none): the inter-purchase-time mean and variance, exactly, in integers.
//! - [`CATEGORY_STATS`]`(category, spend)`: per account, spend summed per category (an integer
//!   id), then the number of categories with positive spend, the largest category total and the
//!   sum of the totals (`{n_positive, top, total}`, zeros without any category). Rows with a null
//!   category are ignored.
//!
//! Null channel values count as 0. Sums are added in a fixed order where it matters (category
//! totals by id), and every intermediate state is an Arrow array, so the partial/final split of
//! an aggregate (across partitions, or across Ballista executors) gives the same answer.
//!
//! Why registration everywhere: a Ballista client plans the SQL, the scheduler decodes the
//! logical plan and plans it physically, and each executor decodes its tasks' physical plans;
//! each of them resolves a function by name in its own registry. [`register`] adds the functions
//! to a session (local or Ballista client), [`ballista_registry`] gives an executor's registry
//! and [`session_state`] a scheduler's session. A stock Ballista scheduler or executor does not
//! know them and cannot decode the plans.

use std::fmt::Debug;
use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray,
    StructArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Float64Type, Int32Type, Int64Type,
};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::{SessionConfig, SessionContext, SessionState};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

/// Name of the weekly sequence aggregate.
pub const WEEK_SEQUENCE: &str = "week_sequence";
/// Name of the inter-purchase gap aggregate.
pub const PURCHASE_GAPS: &str = "purchase_gaps";
/// Name of the per-category spend aggregate.
pub const CATEGORY_STATS: &str = "category_stats";

const CHANNEL_NAMES: [&str; 4] = ["orders", "spend", "items", "cases"];

/// The feature query's aggregate functions.
#[must_use]
pub fn udafs() -> Vec<Arc<AggregateUDF>> {
    vec![
        Arc::new(AggregateUDF::from(Udaf::new(Kind::WeekSequence))),
        Arc::new(AggregateUDF::from(Udaf::new(Kind::PurchaseGaps))),
        Arc::new(AggregateUDF::from(Udaf::new(Kind::CategoryStats))),
    ]
}

/// Adds the feature query's functions to `ctx` (a local session or a Ballista client).
pub fn register(ctx: &SessionContext) {
    for f in udafs() {
        ctx.register_udaf(f.as_ref().clone());
    }
}

/// The function registry of an executor: Ballista's defaults (DataFusion's built-ins) plus the
/// feature query's functions.
#[must_use]
pub fn ballista_registry() -> BallistaFunctionRegistry {
    let mut registry = BallistaFunctionRegistry::default();
    for f in udafs() {
        registry
            .aggregate_functions
            .insert(f.name().to_owned(), f.clone());
    }
    registry
}

/// A scheduler's session: Ballista's default session (its optimizer rules, DataFusion's
/// built-ins including the nested functions) plus the feature query's functions.
///
/// # Errors
/// DataFusion's error when the runtime cannot be built.
pub fn session_state(config: SessionConfig) -> Result<SessionState> {
    let state = ballista_core::utils::default_session_builder(config)?;
    let mut functions: Vec<Arc<AggregateUDF>> =
        state.aggregate_functions().values().cloned().collect();
    functions.extend(udafs());
    Ok(SessionStateBuilder::new_from_existing(state)
        .with_aggregate_functions(functions)
        .build())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    WeekSequence,
    PurchaseGaps,
    CategoryStats,
}

fn nullable(name: &str, t: DataType) -> Field {
    Field::new(name, t, true)
}

fn week_fields() -> Fields {
    let mut fields = vec![nullable("week", DataType::Int32)];
    fields.extend(CHANNEL_NAMES.map(|n| nullable(n, DataType::Float64)));
    Fields::from(fields)
}

fn week_list_type() -> DataType {
    DataType::List(Arc::new(nullable("item", DataType::Struct(week_fields()))))
}

fn gap_fields() -> Fields {
    Fields::from(vec![
        nullable("n", DataType::Int64),
        nullable("sum", DataType::Int64),
        nullable("sum_sq", DataType::Int64),
    ])
}

fn category_fields() -> Fields {
    Fields::from(vec![
        nullable("n_positive", DataType::Int64),
        nullable("top", DataType::Float64),
        nullable("total", DataType::Float64),
    ])
}

fn category_state_type() -> DataType {
    DataType::List(Arc::new(nullable(
        "item",
        DataType::Struct(Fields::from(vec![
            nullable("category", DataType::Int64),
            nullable("spend", DataType::Float64),
        ])),
    )))
}

fn day_list_type() -> DataType {
    DataType::List(Arc::new(nullable("item", DataType::Int64)))
}

/// One of the three aggregates (they differ only in types and accumulator).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Udaf {
    kind: Kind,
    signature: Signature,
}

impl Udaf {
    fn new(kind: Kind) -> Self {
        use DataType::{Float64, Int64};
        let args = match kind {
            Kind::WeekSequence => vec![Int64, Float64, Float64, Float64, Float64],
            Kind::PurchaseGaps => vec![Int64],
            Kind::CategoryStats => vec![Int64, Float64],
        };
        Self {
            kind,
            signature: Signature::exact(args, Volatility::Immutable),
        }
    }

    fn groups(&self) -> Box<dyn Groups> {
        match self.kind {
            Kind::WeekSequence => Box::new(WeekSequence::default()),
            Kind::PurchaseGaps => Box::new(PurchaseGaps::default()),
            Kind::CategoryStats => Box::new(CategoryStats::default()),
        }
    }
}

impl AggregateUDFImpl for Udaf {
    fn name(&self) -> &str {
        match self.kind {
            Kind::WeekSequence => WEEK_SEQUENCE,
            Kind::PurchaseGaps => PURCHASE_GAPS,
            Kind::CategoryStats => CATEGORY_STATS,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::WeekSequence => week_list_type(),
            Kind::PurchaseGaps => DataType::Struct(gap_fields()),
            Kind::CategoryStats => DataType::Struct(category_fields()),
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = match self.kind {
            Kind::WeekSequence => week_list_type(),
            Kind::PurchaseGaps => day_list_type(),
            Kind::CategoryStats => category_state_type(),
        };
        Ok(vec![Arc::new(nullable(
            &format!("{}[state]", args.name),
            t,
        ))])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Single(self.groups())))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(match self.kind {
            Kind::WeekSequence => Box::new(WeekSequence::default()),
            Kind::PurchaseGaps => Box::new(PurchaseGaps::default()),
            Kind::CategoryStats => Box::new(CategoryStats::default()),
        })
    }
}

/// A groups accumulator that can also serve as a one-group [`Accumulator`].
trait Groups: GroupsAccumulator + Debug + Sync {
    /// Makes room for `n` groups.
    fn resize(&mut self, n: usize);
}

/// One group (no `GROUP BY`, or a window): the groups accumulator with every row in group 0.
#[derive(Debug)]
struct Single(Box<dyn Groups>);

impl Accumulator for Single {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values.first().map_or(0, |a| a.len());
        self.0.resize(1);
        self.0.update_batch(values, &vec![0; n], None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.resize(1);
        ScalarValue::try_from_array(&self.0.evaluate(EmitTo::All)?, 0)
    }

    fn size(&self) -> usize {
        self.0.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.resize(1);
        self.0
            .state(EmitTo::All)?
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let n = states.first().map_or(0, |a| a.len());
        self.0.resize(1);
        self.0.merge_batch(states, &vec![0; n], 1)
    }
}

fn arg<'a>(values: &'a [ArrayRef], i: usize, what: &str) -> Result<&'a ArrayRef> {
    match values.get(i) {
        Some(a) => Ok(a),
        None => exec_err!("{what}: missing argument {i}"),
    }
}

fn i64s<'a>(values: &'a [ArrayRef], i: usize, what: &str) -> Result<&'a Int64Array> {
    match arg(values, i, what)?.as_primitive_opt::<Int64Type>() {
        Some(a) => Ok(a),
        None => exec_err!("{what}: argument {i} is not Int64"),
    }
}

fn f64s<'a>(values: &'a [ArrayRef], i: usize, what: &str) -> Result<&'a Float64Array> {
    match arg(values, i, what)?.as_primitive_opt::<Float64Type>() {
        Some(a) => Ok(a),
        None => exec_err!("{what}: argument {i} is not Float64"),
    }
}

fn list<'a>(values: &'a [ArrayRef], what: &str) -> Result<&'a ListArray> {
    match arg(values, 0, what)?.as_list_opt::<i32>() {
        Some(a) => Ok(a),
        None => exec_err!("{what}: state is not a list"),
    }
}

fn kept(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

fn value(a: &Float64Array, row: usize) -> f64 {
    if a.is_valid(row) { a.value(row) } else { 0.0 }
}

/// A list array of `rows` (one entry per group; `None` = null) whose items are built by `item`.
fn list_of(
    item: FieldRef,
    lengths: impl Iterator<Item = Option<usize>>,
    values: ArrayRef,
) -> Result<ArrayRef> {
    let mut offsets = vec![0i32];
    let mut valid = Vec::new();
    let mut end = 0usize;
    for len in lengths {
        end += len.unwrap_or(0);
        let Ok(o) = i32::try_from(end) else {
            return exec_err!("aggregate list longer than i32::MAX items");
        };
        offsets.push(o);
        valid.push(len.is_some());
    }
    let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
    Ok(Arc::new(ListArray::try_new(
        item,
        OffsetBuffer::new(offsets.into()),
        values,
        nulls,
    )?))
}

/// Runs `update` on a fresh accumulator with one group per input row and returns its state:
/// the `convert_to_state` of every accumulator here.
fn rows_as_state<G: Groups + Default>(
    values: &[ArrayRef],
    opt_filter: Option<&BooleanArray>,
) -> Result<Vec<ArrayRef>> {
    let n = values.first().map_or(0, |a| a.len());
    let mut g = G::default();
    let groups: Vec<usize> = (0..n).collect();
    g.resize(n);
    g.update_batch(values, &groups, opt_filter, n)?;
    g.state(EmitTo::All)
}

// ---------------------------------------------------------------------------------------------
// week_sequence

type Week = (i32, [f64; 4]);

/// Per group, the non-empty weeks sorted by week.
#[derive(Debug, Default)]
struct WeekSequence {
    groups: Vec<Vec<Week>>,
    /// Weeks held over all groups, for `size` (which must not walk the groups).
    held: usize,
}

/// Adds `v` to `week`; true when the week was new.
fn add_week(weeks: &mut Vec<Week>, week: i32, v: [f64; 4]) -> bool {
    match weeks.binary_search_by_key(&week, |w| w.0) {
        Ok(i) => {
            if let Some((_, acc)) = weeks.get_mut(i) {
                for (a, x) in acc.iter_mut().zip(v) {
                    *a += x;
                }
            }
            false
        }
        Err(i) => {
            weeks.insert(i, (week, v));
            true
        }
    }
}

impl WeekSequence {
    fn emit(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.groups);
        self.held = self.groups.iter().map(Vec::len).sum();
        let total: usize = groups.iter().map(Vec::len).sum();
        let mut week = Vec::with_capacity(total);
        let mut chans: [Vec<f64>; 4] = std::array::from_fn(|_| Vec::with_capacity(total));
        for g in &groups {
            for (w, v) in g {
                week.push(*w);
                for (c, x) in chans.iter_mut().zip(v) {
                    c.push(*x);
                }
            }
        }
        let mut columns: Vec<ArrayRef> = vec![Arc::new(Int32Array::from(week))];
        columns.extend(
            chans
                .into_iter()
                .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef),
        );
        let items = StructArray::try_new(week_fields(), columns, None)?;
        let DataType::List(item) = week_list_type() else {
            return exec_err!("{WEEK_SEQUENCE}: list type");
        };
        list_of(
            item,
            groups.iter().map(|g| (!g.is_empty()).then_some(g.len())),
            Arc::new(items),
        )
    }
}

impl Groups for WeekSequence {
    fn resize(&mut self, n: usize) {
        if self.groups.len() < n {
            self.groups.resize_with(n, Vec::new);
        }
    }
}

impl GroupsAccumulator for WeekSequence {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let wk = i64s(values, 0, WEEK_SEQUENCE)?;
        let chans = [
            f64s(values, 1, WEEK_SEQUENCE)?,
            f64s(values, 2, WEEK_SEQUENCE)?,
            f64s(values, 3, WEEK_SEQUENCE)?,
            f64s(values, 4, WEEK_SEQUENCE)?,
        ];
        for (row, &g) in group_indices.iter().enumerate() {
            if !wk.is_valid(row) || !kept(opt_filter, row) {
                continue;
            }
            let Ok(week) = i32::try_from(wk.value(row)) else {
                return exec_err!("{WEEK_SEQUENCE}: week {} out of range", wk.value(row));
            };
            let v = chans.map(|c| value(c, row));
            if let Some(weeks) = self.groups.get_mut(g) {
                self.held += usize::from(add_week(weeks, week, v));
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.emit(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let lists = list(values, WEEK_SEQUENCE)?;
        let Some(items) = lists.values().as_struct_opt() else {
            return exec_err!("{WEEK_SEQUENCE}: state items are not structs");
        };
        let Some(week) = items.column(0).as_primitive_opt::<Int32Type>() else {
            return exec_err!("{WEEK_SEQUENCE}: state week is not Int32");
        };
        let mut chans = Vec::with_capacity(4);
        for i in 1..=4 {
            match items.column(i).as_primitive_opt::<Float64Type>() {
                Some(c) => chans.push(c),
                None => return exec_err!("{WEEK_SEQUENCE}: state channel is not Float64"),
            }
        }
        let offsets = lists.value_offsets();
        for (row, &g) in group_indices.iter().enumerate() {
            if !lists.is_valid(row) {
                continue;
            }
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            if let Some(weeks) = self.groups.get_mut(g) {
                for i in start..end {
                    let v = [
                        value(chans[0], i),
                        value(chans[1], i),
                        value(chans[2], i),
                        value(chans[3], i),
                    ];
                    self.held += usize::from(add_week(weeks, week.value(i), v));
                }
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        rows_as_state::<Self>(values, opt_filter)
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Vec<Week>>()
            + self.held * std::mem::size_of::<Week>()
    }
}

// ---------------------------------------------------------------------------------------------
// purchase_gaps

/// Per group, the days seen (unsorted, possibly repeated until evaluation).
#[derive(Debug, Default)]
struct PurchaseGaps {
    groups: Vec<Vec<i64>>,
    /// Days held over all groups, for `size` (which must not walk the groups).
    held: usize,
}

fn gaps(days: &mut Vec<i64>) -> (i64, i64, i64) {
    days.sort_unstable();
    days.dedup();
    let (mut n, mut sum, mut sq) = (0i64, 0i64, 0i64);
    for w in days.windows(2) {
        let g = w[1] - w[0];
        n += 1;
        sum += g;
        sq += g * g;
    }
    (n, sum, sq)
}

impl Groups for PurchaseGaps {
    fn resize(&mut self, n: usize) {
        if self.groups.len() < n {
            self.groups.resize_with(n, Vec::new);
        }
    }
}

impl PurchaseGaps {
    fn push(&mut self, g: usize, day: i64) {
        if let Some(days) = self.groups.get_mut(g) {
            // Orders of one account often come on the same day in a row: keep those once.
            if days.last() != Some(&day) {
                days.push(day);
                self.held += 1;
            }
        }
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<Vec<i64>> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.held = self.groups.iter().map(Vec::len).sum();
        taken
    }
}

impl GroupsAccumulator for PurchaseGaps {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let day = i64s(values, 0, PURCHASE_GAPS)?;
        for (row, &g) in group_indices.iter().enumerate() {
            if day.is_valid(row) && kept(opt_filter, row) {
                self.push(g, day.value(row));
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = self.take(emit_to);
        let (mut n, mut sum, mut sq) = (Vec::new(), Vec::new(), Vec::new());
        for mut days in groups {
            let (a, b, c) = gaps(&mut days);
            n.push(a);
            sum.push(b);
            sq.push(c);
        }
        Ok(Arc::new(StructArray::try_new(
            gap_fields(),
            vec![
                Arc::new(Int64Array::from(n)),
                Arc::new(Int64Array::from(sum)),
                Arc::new(Int64Array::from(sq)),
            ],
            None,
        )?))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = self.take(emit_to);
        let days: Vec<i64> = groups.iter().flatten().copied().collect();
        let DataType::List(item) = day_list_type() else {
            return exec_err!("{PURCHASE_GAPS}: list type");
        };
        Ok(vec![list_of(
            item,
            groups.iter().map(|g| Some(g.len())),
            Arc::new(Int64Array::from(days)),
        )?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let lists = list(values, PURCHASE_GAPS)?;
        let Some(days) = lists.values().as_primitive_opt::<Int64Type>() else {
            return exec_err!("{PURCHASE_GAPS}: state items are not Int64");
        };
        let offsets = lists.value_offsets();
        for (row, &g) in group_indices.iter().enumerate() {
            if !lists.is_valid(row) {
                continue;
            }
            for i in offsets[row] as usize..offsets[row + 1] as usize {
                self.push(g, days.value(i));
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        rows_as_state::<Self>(values, opt_filter)
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Vec<i64>>()
            + self.held * std::mem::size_of::<i64>()
    }
}

// ---------------------------------------------------------------------------------------------
// category_stats

/// Per group, the spend per category id (few categories per account: a short vector).
#[derive(Debug, Default)]
struct CategoryStats {
    groups: Vec<Vec<(i64, f64)>>,
    held: usize,
}

impl Groups for CategoryStats {
    fn resize(&mut self, n: usize) {
        if self.groups.len() < n {
            self.groups.resize_with(n, Vec::new);
        }
    }
}

impl CategoryStats {
    fn add(&mut self, g: usize, category: i64, spend: f64) {
        if let Some(cats) = self.groups.get_mut(g) {
            match cats.iter_mut().find(|(c, _)| *c == category) {
                Some((_, s)) => *s += spend,
                None => {
                    cats.push((category, spend));
                    self.held += 1;
                }
            }
        }
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<Vec<(i64, f64)>> {
        let taken = emit_to.take_needed(&mut self.groups);
        self.held = self.groups.iter().map(Vec::len).sum();
        taken
    }
}

impl GroupsAccumulator for CategoryStats {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let cat = i64s(values, 0, CATEGORY_STATS)?;
        let spend = f64s(values, 1, CATEGORY_STATS)?;
        for (row, &g) in group_indices.iter().enumerate() {
            if cat.is_valid(row) && kept(opt_filter, row) {
                self.add(g, cat.value(row), value(spend, row));
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = self.take(emit_to);
        let (mut n, mut top, mut total) = (Vec::new(), Vec::new(), Vec::new());
        for mut cats in groups {
            // Totals in category order: the same sum however the rows were partitioned.
            cats.sort_unstable_by_key(|(c, _)| *c);
            n.push(cats.iter().filter(|(_, s)| *s > 0.0).count() as i64);
            top.push(cats.iter().map(|(_, s)| *s).fold(0.0, f64::max));
            total.push(cats.iter().fold(0.0, |t, (_, s)| t + s));
        }
        Ok(Arc::new(StructArray::try_new(
            category_fields(),
            vec![
                Arc::new(Int64Array::from(n)),
                Arc::new(Float64Array::from(top)),
                Arc::new(Float64Array::from(total)),
            ],
            None,
        )?))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = self.take(emit_to);
        let cats: Vec<i64> = groups.iter().flatten().map(|(c, _)| *c).collect();
        let spend: Vec<f64> = groups.iter().flatten().map(|(_, s)| *s).collect();
        let DataType::List(item) = category_state_type() else {
            return exec_err!("{CATEGORY_STATS}: list type");
        };
        let DataType::Struct(fields) = item.data_type().clone() else {
            return exec_err!("{CATEGORY_STATS}: item type");
        };
        let items = StructArray::try_new(
            fields,
            vec![
                Arc::new(Int64Array::from(cats)),
                Arc::new(Float64Array::from(spend)),
            ],
            None,
        )?;
        Ok(vec![list_of(
            item,
            groups.iter().map(|g| Some(g.len())),
            Arc::new(items),
        )?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let lists = list(values, CATEGORY_STATS)?;
        let Some(items) = lists.values().as_struct_opt() else {
            return exec_err!("{CATEGORY_STATS}: state items are not structs");
        };
        let (Some(cat), Some(spend)) = (
            items.column(0).as_primitive_opt::<Int64Type>(),
            items.column(1).as_primitive_opt::<Float64Type>(),
        ) else {
            return exec_err!("{CATEGORY_STATS}: state items are not (Int64, Float64)");
        };
        let offsets = lists.value_offsets();
        for (row, &g) in group_indices.iter().enumerate() {
            if !lists.is_valid(row) {
                continue;
            }
            for i in offsets[row] as usize..offsets[row + 1] as usize {
                self.add(g, cat.value(i), value(spend, i));
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        rows_as_state::<Self>(values, opt_filter)
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Vec<(i64, f64)>>()
            + self.held * std::mem::size_of::<(i64, f64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i64a(v: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(v.to_vec()))
    }
    fn f64a(v: &[f64]) -> ArrayRef {
        Arc::new(Float64Array::from(v.to_vec()))
    }

    fn weeks_of(a: &ArrayRef, row: usize) -> Option<Vec<(i32, [f64; 4])>> {
        let l = a.as_list::<i32>();
        if !l.is_valid(row) {
            return None;
        }
        let v = l.value(row);
        let s = v.as_struct();
        let w = s.column(0).as_primitive::<Int32Type>();
        let c: Vec<&Float64Array> = (1..=4).map(|i| s.column(i).as_primitive()).collect();
        Some(
            (0..s.len())
                .map(|i| {
                    (
                        w.value(i),
                        [c[0].value(i), c[1].value(i), c[2].value(i), c[3].value(i)],
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn week_sequence_sums_per_week_sorted_and_merges_partials() {
        let rows = [
            i64a(&[Some(3), Some(0), None, Some(3), Some(5)]),
            f64a(&[1.0, 1.0, 9.0, 0.0, 0.0]),
            f64a(&[2.5, 4.0, 9.0, 1.5, 0.0]),
            f64a(&[1.0, 2.0, 9.0, 3.0, 0.0]),
            f64a(&[0.0, 0.0, 9.0, 0.0, 1.0]),
        ];
        // Groups: 0, 1, 0, 0, 0 (group 1 gets week 0 only; the null week is ignored).
        let mut a = WeekSequence::default();
        a.update_batch(&rows, &[0, 1, 0, 0, 0], None, 3)
            .expect("update");
        let out = a.evaluate(EmitTo::All).expect("evaluate");
        assert_eq!(
            weeks_of(&out, 0),
            Some(vec![(3, [1.0, 4.0, 4.0, 0.0]), (5, [0.0, 0.0, 0.0, 1.0])])
        );
        assert_eq!(weeks_of(&out, 1), Some(vec![(0, [1.0, 4.0, 2.0, 0.0])]));
        assert_eq!(weeks_of(&out, 2), None, "a group without rows is null");

        // The same rows split over two partial accumulators and merged give the same answer.
        let mut p1 = WeekSequence::default();
        let mut p2 = WeekSequence::default();
        let head: Vec<ArrayRef> = rows.iter().map(|r| r.slice(0, 2)).collect();
        let tail: Vec<ArrayRef> = rows.iter().map(|r| r.slice(2, 3)).collect();
        p1.update_batch(&head, &[0, 1], None, 2).expect("p1");
        p2.update_batch(&tail, &[0, 0, 0], None, 1).expect("p2");
        let mut f = WeekSequence::default();
        f.merge_batch(&p2.state(EmitTo::All).expect("s2"), &[0], 1)
            .expect("m2");
        f.merge_batch(&p1.state(EmitTo::All).expect("s1"), &[0, 1], 2)
            .expect("m1");
        let merged = f.evaluate(EmitTo::All).expect("evaluate");
        assert_eq!(weeks_of(&merged, 0), weeks_of(&out, 0));
        assert_eq!(weeks_of(&merged, 1), weeks_of(&out, 1));

        // convert_to_state: one list per row, honouring the filter.
        let filter = BooleanArray::from(vec![true, false, true, true, true]);
        let st = a.convert_to_state(&rows, Some(&filter)).expect("convert");
        assert_eq!(weeks_of(&st[0], 0), Some(vec![(3, [1.0, 2.5, 1.0, 0.0])]));
        assert_eq!(weeks_of(&st[0], 1), None);
        assert_eq!(weeks_of(&st[0], 2), None);
    }

    fn struct_row(a: &ArrayRef, row: usize) -> Vec<ScalarValue> {
        let s = a.as_struct();
        s.columns()
            .iter()
            .map(|c| ScalarValue::try_from_array(c, row).expect("scalar"))
            .collect()
    }

    #[test]
    fn purchase_gaps_are_between_distinct_days() {
        let days = i64a(&[Some(10), Some(3), Some(10), Some(7), None, Some(4)]);
        let mut a = PurchaseGaps::default();
        a.update_batch(&[days], &[0, 0, 0, 0, 0, 1], None, 3)
            .expect("update");
        let out = a.evaluate(EmitTo::All).expect("evaluate");
        // Days 3, 7, 10: gaps 4 and 3.
        assert_eq!(
            struct_row(&out, 0),
            [
                ScalarValue::Int64(Some(2)),
                ScalarValue::Int64(Some(7)),
                ScalarValue::Int64(Some(25))
            ]
        );
        // One day, or none: no gap.
        for row in [1, 2] {
            assert_eq!(struct_row(&out, row), vec![ScalarValue::Int64(Some(0)); 3]);
        }
    }

    #[test]
    fn category_stats_sum_per_category_then_summarise() {
        let cats = i64a(&[Some(2), Some(1), Some(2), None, Some(3)]);
        let spend = f64a(&[5.0, 3.0, 1.0, 100.0, 0.0]);
        let mut a = CategoryStats::default();
        a.update_batch(&[cats.clone(), spend.clone()], &[0, 0, 0, 0, 0], None, 2)
            .expect("update");
        let out = a.evaluate(EmitTo::All).expect("evaluate");
        // Category 2: 6, category 1: 3, category 3: 0 (not positive); the null category is ignored.
        assert_eq!(
            struct_row(&out, 0),
            [
                ScalarValue::Int64(Some(2)),
                ScalarValue::Float64(Some(6.0)),
                ScalarValue::Float64(Some(9.0))
            ]
        );
        assert_eq!(
            struct_row(&out, 1),
            [
                ScalarValue::Int64(Some(0)),
                ScalarValue::Float64(Some(0.0)),
                ScalarValue::Float64(Some(0.0))
            ]
        );
        // Partial states merge to the same answer.
        let mut p = CategoryStats::default();
        p.update_batch(&[cats, spend], &[0, 0, 0, 0, 0], None, 1)
            .expect("p");
        let mut f = CategoryStats::default();
        f.merge_batch(&p.state(EmitTo::All).expect("state"), &[1], 2)
            .expect("merge");
        let merged = f.evaluate(EmitTo::All).expect("evaluate");
        assert_eq!(struct_row(&merged, 1), struct_row(&out, 0));
    }

    #[tokio::test]
    async fn sql_calls_the_functions_with_and_without_group_by() {
        let ctx = SessionContext::new();
        register(&ctx);
        let rows = "(VALUES ('a', 3, 1.0, 2.5, 1.0, 0.0, 10, 2), ('a', 3, 0.0, 1.5, 3.0, 0.0, 10, 1), \
                    ('a', 0, 0.0, 0.0, 0.0, 1.0, 13, NULL), ('b', 1, 1.0, 4.0, 2.0, 0.0, 20, 1)) \
                    AS t(acc, wk, o, s, i, c, day, cat)";
        let calls = "week_sequence(CAST(wk AS BIGINT), o, s, i, c), \
                     purchase_gaps(CAST(day AS BIGINT))['sum_sq'], \
                     category_stats(CAST(cat AS BIGINT), s)['total']";
        let grouped = ctx
            .sql(&format!(
                "SELECT acc, {calls} FROM {rows} GROUP BY acc ORDER BY acc"
            ))
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&grouped)
            .expect("format")
            .to_string();
        // a: weeks 0 (a case) and 3 (two rows summed); days 10 and 13 (one gap of 3); categories
        // 2 (2.5) and 1 (1.5). b: one week, one day, one category.
        assert!(
            text.contains("[{week: 0, orders: 0.0, spend: 0.0, items: 0.0, cases: 1.0}, {week: 3, orders: 1.0, spend: 4.0, items: 4.0, cases: 0.0}]"),
            "{text}"
        );
        assert!(text.contains("| 9 "), "{text}");
        assert!(text.contains("| 4.0 "), "{text}");
        let single = ctx
            .sql(&format!("SELECT {calls} FROM {rows}"))
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&single)
            .expect("format")
            .to_string();
        // One group: weeks 0, 1, 3; days 10, 13, 20 (gaps 3 and 7: 9 + 49); spend 2.5 + 1.5 + 4.0.
        assert!(
            text.contains("{week: 1, orders: 1.0, spend: 4.0, items: 2.0, cases: 0.0}"),
            "{text}"
        );
        assert!(text.contains("| 58 "), "{text}");
        assert!(text.contains("| 8.0 "), "{text}");
    }

    #[test]
    fn registries_know_the_functions() {
        let names: Vec<String> = udafs().iter().map(|f| f.name().to_owned()).collect();
        assert_eq!(names, [WEEK_SEQUENCE, PURCHASE_GAPS, CATEGORY_STATS]);
        let r = ballista_registry();
        for n in &names {
            assert!(
                r.aggregate_functions.contains_key(n),
                "{n} in executor registry"
            );
        }
        assert!(r.scalar_functions.contains_key("abs"), "built-ins kept");
        let s = session_state(SessionConfig::new()).expect("scheduler state");
        for n in &names {
            assert!(
                s.aggregate_functions().contains_key(n),
                "{n} in scheduler state"
            );
        }
    }
}
