//! The SOQL subset the simulator understands:
//!
//! ```text
//! SELECT field [, field …] | COUNT() FROM Object
//!   [WHERE field op literal [AND field op literal …]]
//!   [ORDER BY field [ASC|DESC] [, field [ASC|DESC] …]] [LIMIT n]
//! ```
//! `query` never returns deleted rows (`IsDeleted = true`); `queryAll` does (see [`execute_with`]).
//! `op` is one of `= != <> < <= > >=`; a literal is a quoted string, a number, a date
//! (`2011-01-31`), a datetime (`2011-01-31T00:00:00Z` or `+0000`), `true`, `false` or `null`.
//! Errors use Salesforce's codes and message shapes.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::data::{FieldType, GeneratedLines, OrgData};

/// A SOQL error, as Salesforce reports it (`errorCode` + `message`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SoqlError {
    pub code: &'static str,
    pub message: String,
}

fn malformed(message: impl Into<String>) -> SoqlError {
    SoqlError {
        code: "MALFORMED_QUERY",
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Comma,
    Op(String),
}

/// A token and the byte offset where it starts (for the caret diagram).
type Spanned = (Token, usize);

fn tokenize(q: &str) -> Result<Vec<Spanned>, SoqlError> {
    let bytes = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_whitespace() {
            i += 1;
        } else if q[i..].starts_with("()")
            && matches!(out.last(), Some((Token::Word(w), _)) if w.eq_ignore_ascii_case("COUNT"))
        {
            if let Some((Token::Word(w), _)) = out.last_mut() {
                *w = "COUNT()".into();
            }
            i += 2;
        } else if c == ',' {
            out.push((Token::Comma, i));
            i += 1;
        } else if c == '\'' {
            let start = i;
            let mut s = String::new();
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(malformed("unterminated string literal")),
                    Some(b'\\') => {
                        if let Some(&n) = bytes.get(i + 1) {
                            s.push(n as char);
                        }
                        i += 2;
                    }
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(_) => {
                        let ch = q[i..].chars().next().unwrap_or(' ');
                        s.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            out.push((Token::Str(s), start));
        } else if "=<>!".contains(c) {
            let start = i;
            let two = q.get(i..i + 2).unwrap_or("");
            let op = if ["<=", ">=", "!=", "<>"].contains(&two) {
                two
            } else {
                &q[i..i + 1]
            };
            if op == "!" {
                return Err(malformed(format!("unexpected token: '{op}'")));
            }
            out.push((Token::Op(op.to_owned()), start));
            i += op.len();
        } else if c.is_ascii_alphanumeric() || "_.-+:".contains(c) {
            let start = i;
            while i < bytes.len()
                && ((bytes[i] as char).is_ascii_alphanumeric()
                    || "_.-+:".contains(bytes[i] as char))
            {
                i += 1;
            }
            out.push((Token::Word(q[start..i].to_owned()), start));
        } else {
            return Err(malformed(format!("unexpected token: '{c}'")));
        }
    }
    Ok(out)
}

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Query {
    pub fields: Vec<(String, usize)>,
    pub object: (String, usize),
    pub conditions: Vec<Condition>,
    /// Sort keys: field, its offset, descending.
    pub order_by: Vec<(String, usize, bool)>,
    pub limit: Option<usize>,
    /// `SELECT COUNT()`: only `totalSize` is answered.
    pub count: bool,
}

/// `field op literal`.
#[derive(Debug, Clone)]
pub struct Condition {
    pub field: (String, usize),
    pub op: String,
    pub literal: Literal,
}

/// A literal in a WHERE clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Word(String),
}

struct Parser {
    tokens: Vec<Spanned>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }
    fn next(&mut self) -> Option<Spanned> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_keyword(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.keyword(kw) {
            return Ok(());
        }
        Err(match self.peek() {
            Some(t) => malformed(format!("unexpected token: {}", show(t))),
            None => malformed(format!("unexpected end of query, expecting {kw}")),
        })
    }
    fn word(&mut self) -> Result<(String, usize), SoqlError> {
        match self.next() {
            Some((Token::Word(w), at)) => Ok((w, at)),
            Some((t, _)) => Err(malformed(format!("unexpected token: {}", show(&t)))),
            None => Err(malformed("unexpected end of query")),
        }
    }
}

fn show(t: &Token) -> String {
    match t {
        Token::Word(w) => format!("'{w}'"),
        Token::Str(s) => format!("'{s}'"),
        Token::Comma => "','".into(),
        Token::Op(o) => format!("'{o}'"),
    }
}

const RESERVED: [&str; 6] = ["FROM", "WHERE", "ORDER", "LIMIT", "AND", "SELECT"];

/// Parses a query.
pub fn parse(q: &str) -> Result<Query, SoqlError> {
    let mut p = Parser {
        tokens: tokenize(q)?,
        pos: 0,
    };
    p.expect_keyword("SELECT")?;
    let mut fields = Vec::new();
    let count = matches!(
        (p.tokens.get(p.pos), p.tokens.get(p.pos + 1)),
        (Some((Token::Word(w), _)), Some((Token::Word(f), _)))
            if w.eq_ignore_ascii_case("COUNT()") && f.eq_ignore_ascii_case("FROM")
    );
    if count {
        p.pos += 1;
    }
    if !count {
        loop {
            let (f, at) = p.word()?;
            if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(&f)) {
                return Err(malformed(format!("unexpected token: '{f}'")));
            }
            fields.push((f, at));
            if matches!(p.peek(), Some(Token::Comma)) {
                p.pos += 1;
            } else {
                break;
            }
        }
    }
    p.expect_keyword("FROM")?;
    let object = p.word()?;
    let mut conditions = Vec::new();
    if p.keyword("WHERE") {
        loop {
            let field = p.word()?;
            let op = match p.next() {
                Some((Token::Op(op), _)) => op,
                Some((t, _)) => return Err(malformed(format!("unexpected token: {}", show(&t)))),
                None => return Err(malformed("unexpected end of query")),
            };
            let literal = match p.next() {
                Some((Token::Str(s), _)) => Literal::Str(s),
                Some((Token::Word(w), _)) => Literal::Word(w),
                Some((t, _)) => return Err(malformed(format!("unexpected token: {}", show(&t)))),
                None => return Err(malformed("unexpected end of query")),
            };
            conditions.push(Condition { field, op, literal });
            if !p.keyword("AND") {
                break;
            }
        }
    }
    let mut order_by = Vec::new();
    if p.keyword("ORDER") {
        p.expect_keyword("BY")?;
        loop {
            let (f, at) = p.word()?;
            let descending = if p.keyword("DESC") {
                true
            } else {
                p.keyword("ASC");
                false
            };
            order_by.push((f, at, descending));
            if matches!(p.peek(), Some(Token::Comma)) {
                p.pos += 1;
            } else {
                break;
            }
        }
    }
    let mut limit = None;
    if p.keyword("LIMIT") {
        let (n, _) = p.word()?;
        limit = Some(
            n.parse()
                .map_err(|_| malformed(format!("unexpected token: '{n}'")))?,
        );
    }
    if let Some(t) = p.peek() {
        return Err(malformed(format!("unexpected token: {}", show(t))));
    }
    Ok(Query {
        fields,
        object,
        conditions,
        order_by,
        limit,
        count,
    })
}

/// The `INVALID_FIELD` message with Salesforce's caret diagram.
fn invalid_field(q: &str, field: &str, at: usize, object: &str) -> SoqlError {
    let line = q.lines().next().unwrap_or(q);
    let caret = format!("{}^", " ".repeat(at.min(line.len())));
    SoqlError {
        code: "INVALID_FIELD",
        message: format!(
            "{line}\n{caret}\nERROR at Row:1:Column:{}\nNo such column '{field}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
            at + 1
        ),
    }
}

/// The result of running a query: the object name and the selected rows, fields in SELECT order.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub object: &'static str,
    pub rows: Vec<Map<String, Value>>,
    /// For `SELECT COUNT()`: the number of matching rows (and `rows` is empty).
    pub count: Option<usize>,
    /// Rows after `rows`, made on demand (generated order lines).
    pub tail: Option<GeneratedTail>,
}

impl QueryResult {
    /// Every row: the materialised ones, then the generated ones.
    pub fn into_rows(self) -> Rows {
        Rows {
            head: self.rows,
            tail: self.tail,
        }
    }
}

/// Generated rows `range` of a query, projected on its fields.
#[derive(Debug, Clone)]
pub struct GeneratedTail {
    lines: GeneratedLines,
    range: std::ops::Range<usize>,
    fields: Vec<(&'static str, FieldType)>,
}

impl GeneratedTail {
    /// How many rows.
    pub fn len(&self) -> usize {
        self.range.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }
    /// Row `i` of the tail, projected.
    pub fn row(&self, i: usize) -> Map<String, Value> {
        project(&self.lines.row(self.range.start + i), &self.fields)
    }
}

/// The rows of a result: held ones, then generated ones.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub head: Vec<Map<String, Value>>,
    pub tail: Option<GeneratedTail>,
}

impl Rows {
    /// How many rows.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.as_ref().map_or(0, GeneratedTail::len)
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Rows `[start, end)` (clipped), copied.
    pub fn slice(&self, start: usize, end: usize) -> Vec<Map<String, Value>> {
        let end = end.min(self.len());
        (start.min(end)..end)
            .map(|i| match self.head.get(i) {
                Some(r) => r.clone(),
                None => self
                    .tail
                    .as_ref()
                    .map(|t| t.row(i - self.head.len()))
                    .unwrap_or_default(),
            })
            .collect()
    }
}

/// Runs a query over the org, as `query` does (deleted rows left out).
pub fn execute(org: &OrgData, q: &str) -> Result<QueryResult, SoqlError> {
    execute_with(org, q, false)
}

/// Runs a query; `include_deleted` is `queryAll` (rows with `IsDeleted = true` included).
pub fn execute_with(
    org: &OrgData,
    q: &str,
    include_deleted: bool,
) -> Result<QueryResult, SoqlError> {
    let query = parse(q)?;
    let Some(object) = org.object(&query.object.0) else {
        return Err(SoqlError {
            code: "INVALID_TYPE",
            message: format!(
                "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
                query.object.0
            ),
        });
    };
    run(
        object,
        &query,
        q,
        include_deleted,
        false,
        org.generated(object.name),
    )
}

/// Runs Data Cloud SQL (the same subset, over the org's Data Cloud objects): a timestamp may be
/// compared with a quoted string, as Data Cloud casts it.
pub fn execute_dc(org: &OrgData, q: &str) -> Result<QueryResult, SoqlError> {
    let query = parse(q)?;
    let Some(object) = org.dc_object(&query.object.0) else {
        return Err(SoqlError {
            code: "INVALID_TYPE",
            message: format!("object '{}' not found", query.object.0),
        });
    };
    run(object, &query, q, false, true, None)
}

fn run(
    object: &crate::data::SObject,
    query: &Query,
    q: &str,
    include_deleted: bool,
    quoted_times: bool,
    generated: Option<&GeneratedLines>,
) -> Result<QueryResult, SoqlError> {
    let resolve = |(name, at): &(String, usize)| {
        object
            .field(name)
            .map(|f| (f.name, f.kind))
            .ok_or_else(|| invalid_field(q, name, *at, object.name))
    };
    let selected: Vec<(&'static str, FieldType)> =
        query.fields.iter().map(resolve).collect::<Result<_, _>>()?;
    let mut conditions = Vec::new();
    for c in &query.conditions {
        let (name, kind) = resolve(&c.field)?;
        let literal = match (&c.literal, kind) {
            (Literal::Str(t), FieldType::Date | FieldType::DateTime) if quoted_times => {
                literal_value(&Literal::Word(t.clone()), kind)?
            }
            (l, _) => literal_value(l, kind)?,
        };
        conditions.push((name, kind, c.op.as_str(), literal));
    }
    let mut order = Vec::new();
    for (name, at, desc) in &query.order_by {
        order.push((resolve(&(name.clone(), *at))?, *desc));
    }
    let mut rows: Vec<&Map<String, Value>> = object
        .rows
        .iter()
        .filter(|r| include_deleted || r.get("IsDeleted") != Some(&Value::Bool(true)))
        .filter(|r| {
            conditions
                .iter()
                .all(|(name, kind, op, lit)| matches(r.get(*name), *kind, op, lit))
        })
        .collect();
    if !order.is_empty() {
        rows.sort_by(|a, b| {
            for ((name, kind), desc) in &order {
                let o = compare(
                    a.get(*name).unwrap_or(&Value::Null),
                    b.get(*name).unwrap_or(&Value::Null),
                    *kind,
                );
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
    let mut tail = match generated {
        Some(lines) => Some(generated_range(lines, &conditions, &order)?),
        None => None,
    };
    if let Some(limit) = query.limit {
        rows.truncate(limit);
        if let Some(range) = &mut tail {
            range.end = range
                .end
                .min(range.start + limit.saturating_sub(rows.len()));
        }
    }
    let tail = tail.filter(|r| !r.is_empty());
    if query.count {
        return Ok(QueryResult {
            object: object.name,
            rows: Vec::new(),
            count: Some(rows.len() + tail.map_or(0, |r| r.len())),
            tail: None,
        });
    }
    Ok(QueryResult {
        object: object.name,
        rows: rows.into_iter().map(|r| project(r, &selected)).collect(),
        count: None,
        tail: tail.and_then(|range| {
            generated.map(|lines| GeneratedTail {
                lines: lines.clone(),
                range,
                fields: selected.clone(),
            })
        }),
    })
}

/// Fields of generated lines that grow with their index (stamps, Id).
const MONOTONIC: [&str; 4] = ["SystemModstamp", "CreatedDate", "LastModifiedDate", "Id"];

/// The index range of generated lines a query selects. Every condition must be on a field that
/// grows with the index (or on `IsDeleted`, which is false for all), and the order ascending on
/// such fields, so the selection is one range found by bisection and already in order after the
/// materialised rows (whose stamps and Ids are all smaller).
fn generated_range(
    lines: &GeneratedLines,
    conditions: &[(&'static str, FieldType, &str, Value)],
    order: &[((&'static str, FieldType), bool)],
) -> Result<std::ops::Range<usize>, SoqlError> {
    let unsupported = |what: String| SoqlError {
        code: "MALFORMED_QUERY",
        message: format!("generated order lines cannot be read {what}"),
    };
    for ((name, _), desc) in order {
        if *desc || !MONOTONIC.contains(name) {
            return Err(unsupported(format!("in order of {name}")));
        }
    }
    // First index in [lo, hi) where `pred` turns true (pred is false…false true…true).
    let first_true = |pred: &dyn Fn(usize) -> bool, lo: usize, hi: usize| {
        let (mut lo, mut hi) = (lo, hi);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    };
    let (mut start, mut end) = (0, lines.count);
    for (name, kind, op, lit) in conditions {
        let holds = |n: usize| matches(lines.row(n).get(*name), *kind, op, lit);
        if *name == "IsDeleted" {
            if lines.count > 0 && !holds(0) {
                return Ok(0..0);
            }
            continue;
        }
        if !MONOTONIC.contains(name) {
            return Err(unsupported(format!("filtered on {name}")));
        }
        match *op {
            ">=" | ">" => start = start.max(first_true(&holds, 0, lines.count)),
            "<" | "<=" => end = end.min(first_true(&|n| !holds(n), 0, lines.count)),
            "=" => {
                let at = |n: usize| {
                    let v = lines.row(n);
                    compare(v.get(*name).unwrap_or(&Value::Null), lit, *kind) != Ordering::Less
                };
                let lo = first_true(&at, 0, lines.count);
                start = start.max(lo);
                end = end.min(first_true(&|n| !holds(n), lo, lines.count));
            }
            other => return Err(unsupported(format!("with {name} {other}"))),
        }
    }
    Ok(start..end.max(start))
}

fn project(row: &Map<String, Value>, fields: &[(&'static str, FieldType)]) -> Map<String, Value> {
    fields
        .iter()
        .map(|(name, _)| {
            (
                (*name).to_owned(),
                row.get(*name).cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn literal_value(lit: &Literal, kind: FieldType) -> Result<Value, SoqlError> {
    let bad = |w: &str| {
        malformed(format!(
            "value of filter criterion for field is not of the right type: {w}"
        ))
    };
    match (lit, kind) {
        (Literal::Word(w), _) if w.eq_ignore_ascii_case("null") => Ok(Value::Null),
        (
            Literal::Str(s),
            FieldType::Id
            | FieldType::Reference
            | FieldType::String
            | FieldType::TextArea
            | FieldType::Picklist,
        ) => Ok(Value::from(s.as_str())),
        (Literal::Word(w), FieldType::Boolean) => match w.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::from(true)),
            "false" => Ok(Value::from(false)),
            _ => Err(bad(w)),
        },
        (Literal::Word(w), FieldType::Double | FieldType::Currency | FieldType::Percent) => {
            w.parse::<f64>().map(Value::from).map_err(|_| bad(w))
        }
        (Literal::Word(w), FieldType::Date) if w.len() == 10 => Ok(Value::from(w.as_str())),
        (Literal::Word(w), FieldType::DateTime) if parse_dt(w).is_some() => {
            Ok(Value::from(w.as_str()))
        }
        (Literal::Str(s), _) | (Literal::Word(s), _) => Err(bad(s)),
    }
}

fn parse_dt(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn compare(a: &Value, b: &Value, kind: FieldType) -> Ordering {
    match (a, b) {
        // Salesforce sorts nulls first in ascending order.
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => match kind {
            FieldType::Double | FieldType::Currency | FieldType::Percent => a
                .as_f64()
                .unwrap_or(0.0)
                .partial_cmp(&b.as_f64().unwrap_or(0.0))
                .unwrap_or(Ordering::Equal),
            FieldType::DateTime => {
                parse_dt(a.as_str().unwrap_or("")).cmp(&parse_dt(b.as_str().unwrap_or("")))
            }
            FieldType::Boolean => a.as_bool().cmp(&b.as_bool()),
            _ => a.as_str().unwrap_or("").cmp(b.as_str().unwrap_or("")),
        },
    }
}

fn matches(value: Option<&Value>, kind: FieldType, op: &str, lit: &Value) -> bool {
    let v = value.unwrap_or(&Value::Null);
    let ord = compare(v, lit, kind);
    let null_involved = v.is_null() || lit.is_null();
    match op {
        "=" => v == lit || (!null_involved && ord == Ordering::Equal),
        "!=" | "<>" => !(v == lit || (!null_involved && ord == Ordering::Equal)),
        "<" => !null_involved && ord == Ordering::Less,
        "<=" => !null_involved && ord != Ordering::Greater,
        ">" => !null_involved && ord == Ordering::Greater,
        ">=" => !null_involved && ord != Ordering::Less,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> OrgData {
        OrgData::embedded_sample().expect("sample")
    }

    #[test]
    fn selects_filters_orders_and_limits() {
        let org = org();
        let r = execute(&org, "SELECT Id, TotalAmount FROM Order WHERE TotalAmount > 1000 ORDER BY TotalAmount DESC LIMIT 5")
            .expect("runs");
        assert_eq!(r.object, "Order");
        assert_eq!(r.rows.len(), 5);
        let totals: Vec<f64> = r
            .rows
            .iter()
            .map(|row| row["TotalAmount"].as_f64().expect("n"))
            .collect();
        assert!(
            totals.windows(2).all(|w| w[0] >= w[1]) && totals[4] > 1000.0,
            "{totals:?}"
        );
        // SELECT order is kept, nothing else is returned.
        assert_eq!(r.rows[0].keys().collect::<Vec<_>>(), ["Id", "TotalAmount"]);
    }

    #[test]
    fn filters_on_dates_datetimes_and_nulls() {
        let org = org();
        let all = execute(&org, "select id from order")
            .expect("lower-case keywords")
            .rows
            .len();
        let late = execute(
            &org,
            "SELECT Id FROM Order WHERE EffectiveDate >= 2011-09-01",
        )
        .expect("date")
        .rows
        .len();
        let by_dt = execute(
            &org,
            "SELECT Id FROM Order WHERE CreatedDate >= 2011-09-01T00:00:00Z",
        )
        .expect("datetime")
        .rows
        .len();
        assert!(late > 0 && late < all);
        assert_eq!(late, by_dt);
        let unscored = execute(&org, "SELECT Id FROM Account WHERE Churn_Score__c = null")
            .expect("null")
            .rows
            .len();
        assert_eq!(unscored, org.counts()["Account"]);
        let one = execute(
            &org,
            "SELECT Id, Name FROM Account WHERE AccountNumber = '12347'",
        )
        .expect("string");
        assert!(one.rows.len() <= 1);
    }

    #[test]
    fn counts_orders_by_several_keys_and_hides_deleted_rows() {
        let mut org = org();
        let n = org.counts()["Order"];
        let c = execute(&org, "SELECT COUNT() FROM Order").expect("count");
        assert_eq!((c.count, c.rows.len()), (Some(n), 0));
        let r = execute(
            &org,
            "SELECT Id, AccountId FROM Order ORDER BY AccountId DESC, Id",
        )
        .expect("two keys");
        let keys: Vec<(String, String)> = r
            .rows
            .iter()
            .map(|row| {
                (
                    row["AccountId"].as_str().unwrap_or("").to_owned(),
                    row["Id"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        assert!(
            keys.windows(2)
                .all(|w| w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1))
        );
        let first = org.object("Order").expect("o").rows[0]["Id"].clone();
        if let Some(o) = org.object_mut("Order") {
            o.rows[0].insert("IsDeleted".into(), Value::Bool(true));
        }
        let live = execute(&org, "SELECT COUNT() FROM Order").expect("count");
        assert_eq!(live.count, Some(n - 1));
        let all = execute_with(&org, "SELECT Id FROM Order WHERE IsDeleted = true", true)
            .expect("queryAll");
        assert_eq!(all.rows.len(), 1);
        assert_eq!(all.rows[0]["Id"], first);
    }

    #[test]
    fn generated_lines_answer_exactly_what_held_lines_answer() {
        let held = org().with_extra_order_lines(700);
        let made = org().with_generated_order_lines(700);
        assert_eq!(held.counts(), made.counts());
        let all = |org: &OrgData, q: &str, deleted: bool| {
            let r = execute_with(org, q, deleted).expect(q);
            let count = r.count;
            let rows = r.into_rows();
            (count, rows.slice(0, rows.len()))
        };
        for (q, deleted) in [
            (
                "SELECT Id, OrderId, Quantity, UnitPrice, SystemModstamp FROM OrderItem ORDER BY SystemModstamp, Id",
                false,
            ),
            (
                "SELECT Id, SystemModstamp FROM OrderItem WHERE SystemModstamp >= 2012-01-01T00:03:20.000Z ORDER BY SystemModstamp, Id",
                false,
            ),
            (
                "SELECT Id FROM OrderItem WHERE SystemModstamp > 2011-06-01T00:00:00Z AND SystemModstamp < 2012-01-01T00:01:00Z ORDER BY SystemModstamp, Id LIMIT 23000",
                false,
            ),
            (
                "SELECT Id, SystemModstamp FROM OrderItem WHERE IsDeleted = true ORDER BY SystemModstamp, Id",
                true,
            ),
            (
                "SELECT COUNT() FROM OrderItem WHERE SystemModstamp >= 2012-01-01T00:05:00Z",
                false,
            ),
        ] {
            let (a, b) = (all(&held, q, deleted), all(&made, q, deleted));
            assert_eq!(a.0, b.0, "{q}");
            assert_eq!(a.1.len(), b.1.len(), "{q}");
            assert!(a.1 == b.1, "{q}");
        }
        assert!(
            execute(&made, "SELECT Id FROM OrderItem ORDER BY Quantity").is_err(),
            "an order the generator cannot give is refused, not answered wrongly"
        );
    }

    #[test]
    fn errors_use_salesforce_codes() {
        let org = org();
        let e = execute(&org, "SELECT Id, Nmae FROM Account").expect_err("bad field");
        assert_eq!(e.code, "INVALID_FIELD");
        assert!(
            e.message
                .contains("No such column 'Nmae' on entity 'Account'"),
            "{}",
            e.message
        );
        assert!(
            e.message
                .contains("\n           ^\nERROR at Row:1:Column:12"),
            "{}",
            e.message
        );
        assert_eq!(
            execute(&org, "SELECT Id FROM Widget")
                .expect_err("type")
                .code,
            "INVALID_TYPE"
        );
        for bad in [
            "SELECT FROM Account",
            "SELECT Id Account",
            "SELECT Id FROM Account WHERE",
            "DELETE Account",
            "SELECT Id FROM Account LIMIT x",
        ] {
            assert_eq!(
                execute(&org, bad).expect_err(bad).code,
                "MALFORMED_QUERY",
                "{bad}"
            );
        }
        assert_eq!(
            execute(&org, "SELECT Id FROM Order WHERE TotalAmount > 'abc'")
                .expect_err("type mismatch")
                .code,
            "MALFORMED_QUERY"
        );
    }
}
