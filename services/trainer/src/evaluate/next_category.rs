//! `sextant evaluate next-category`: which product category does a customer buy next?
//!
//! Data: an Online Retail–format CSV (the reader and line cleaning are shared with
//! [`super::recommend`]). Categories are derived from the catalogue as documented in
//! [`sextant_models::next_category`]: a `Family` column when the file has one, else the head word of
//! the product description; the 30 most frequent (by order lines before the cut) plus `other`.
//!
//! Protocol: orders are invoices; train = orders before 2011-09-01. A test customer has at least one
//! order before the cut and one on or after it; the target is the label of their first order on or
//! after the cut (its most frequent named category). Top-1 accuracy against two baselines on the same
//! customers: popularity (the most frequent label of follow-up orders in train) and last category (the
//! label of the customer's last order before the cut). The model's three weights are chosen on a
//! validation cut inside the training period (as long before the cut as the test period is long),
//! never on the test period.

use std::collections::HashMap;
use std::path::Path;

use chrono::{Datelike, Duration, NaiveDateTime};
use serde_json::{Map, Value};
use sextant_models::next_category::{
    self, Basket, Case, CategoryScheme, NextCategoryConfig, NextCategoryError, head_word,
    last_category, top1_accuracy,
};

use super::recommend::{RetailData, choose_cut, read_retail};
use super::{Baseline, EvalError, EvalOptions, Evaluation, Task};

/// Categories kept (plus `other`).
pub const CATEGORIES: usize = 30;

pub(crate) fn model_error(e: &NextCategoryError) -> EvalError {
    EvalError::Model {
        task: Task::NextCategory.name().into(),
        message: e.to_string(),
    }
}

pub(crate) fn day(t: NaiveDateTime) -> i64 {
    i64::from(t.date().num_days_from_ce())
}

/// One order of one customer.
pub(crate) struct Order {
    pub(crate) at: NaiveDateTime,
    invoice: u32,
    pub(crate) basket: Basket,
}

/// Raw category of every item: its family, else the head word of its description.
pub(crate) fn raw_categories(d: &RetailData) -> Vec<Option<String>> {
    match &d.families {
        Some(f) => f
            .iter()
            .map(|s| (!s.is_empty()).then(|| s.clone()))
            .collect(),
        None => d.descriptions.iter().map(|s| head_word(s)).collect(),
    }
}

/// Orders per customer, sorted by time (then invoice), with categories mapped through `scheme`.
pub(crate) fn orders(
    d: &RetailData,
    raw: &[Option<String>],
    scheme: &CategoryScheme,
) -> Vec<Vec<Order>> {
    let mut by_invoice: HashMap<u32, (u32, NaiveDateTime, Vec<usize>)> = HashMap::new();
    for l in &d.lines {
        let e = by_invoice
            .entry(l.invoice)
            .or_insert((l.customer, l.at, Vec::new()));
        e.1 = e.1.min(l.at);
        e.2.push(scheme.index_of(raw[l.item as usize].as_deref()));
    }
    let mut per_customer: Vec<Vec<Order>> = (0..d.customers.len()).map(|_| Vec::new()).collect();
    for (invoice, (customer, at, categories)) in by_invoice {
        per_customer[customer as usize].push(Order {
            at,
            invoice,
            basket: Basket {
                day: day(at),
                categories,
            },
        });
    }
    for o in &mut per_customer {
        o.sort_by(|a, b| {
            a.at.cmp(&b.at)
                .then(d.invoices[a.invoice as usize].cmp(&d.invoices[b.invoice as usize]))
        });
    }
    per_customer
}

/// Histories before `cut` (for fitting) and the cases whose first order in `[cut, end]` is labelled.
pub(crate) fn cases(
    all: &[Vec<Order>],
    cut: NaiveDateTime,
    end: NaiveDateTime,
    other: usize,
) -> (Vec<Vec<Basket>>, Vec<Case>) {
    let mut histories = Vec::new();
    let mut out = Vec::new();
    for orders in all {
        let history: Vec<Basket> = orders
            .iter()
            .filter(|o| o.at < cut)
            .map(|o| o.basket.clone())
            .collect();
        if history.is_empty() {
            continue;
        }
        if let Some(next) = orders.iter().find(|o| o.at >= cut && o.at <= end) {
            out.push(Case {
                history: history.clone(),
                day: day(cut),
                label: next_category::basket_label(&next.basket.categories, other),
            });
        }
        histories.push(history);
    }
    (histories, out)
}

/// Runs the next-category protocol on `data`.
///
/// # Errors
/// See [`EvalError`].
pub fn evaluate(data: &Path, options: &EvalOptions) -> Result<Evaluation, EvalError> {
    let d = read_retail(data)?;
    let (cut, end, cut_note) = choose_cut(&d)?;
    let raw = raw_categories(&d);
    let mut counts: HashMap<String, u64> = HashMap::new();
    for l in d.lines.iter().filter(|l| l.at < cut) {
        if let Some(c) = &raw[l.item as usize] {
            *counts.entry(c.clone()).or_default() += 1;
        }
    }
    let scheme = CategoryScheme::from_counts(&counts, CATEGORIES);
    let other = scheme.other();
    let all = orders(&d, &raw, &scheme);
    let unusable = |message: String| EvalError::Unusable {
        path: data.to_owned(),
        message,
    };

    // Validation inside the training period.
    let val_cut = cut - (end - cut);
    let (val_histories, val_cases) = cases(&all, val_cut, cut - Duration::seconds(1), other);
    if val_cases.is_empty() {
        return Err(unusable(format!(
            "no customer ordered both before {val_cut} and between it and {cut} (validation)"
        )));
    }
    let grid = NextCategoryConfig::grid();
    let val_model =
        next_category::fit(&scheme, &val_histories, grid[0]).map_err(|e| model_error(&e))?;
    let (config, val_acc) =
        next_category::tune(&val_model, &val_cases, &grid).map_err(|e| model_error(&e))?;

    // Test.
    let (histories, test_cases) = cases(&all, cut, end, other);
    if test_cases.is_empty() {
        return Err(unusable(format!(
            "no customer ordered both before and after {cut}"
        )));
    }
    let model = next_category::fit(&scheme, &histories, config).map_err(|e| model_error(&e))?;
    let acc = top1_accuracy(&test_cases, |c| model.predict(&c.history, c.day))
        .map_err(|e| model_error(&e))?;
    let top3 = top1_accuracy(&test_cases, |c| {
        let top = model.top(&c.history, c.day, 3)?;
        Ok(if top.iter().any(|p| p.0 == c.label) {
            c.label
        } else {
            usize::MAX
        })
    })
    .map_err(|e| model_error(&e))?;
    let pop = model.popularity_prediction();
    let pop_acc = top1_accuracy(&test_cases, |_| Ok(pop)).map_err(|e| model_error(&e))?;
    let last_acc = top1_accuracy(&test_cases, |c| {
        Ok(last_category(&c.history, other).unwrap_or(other))
    })
    .map_err(|e| model_error(&e))?;
    let other_share =
        test_cases.iter().filter(|c| c.label == other).count() as f64 / test_cases.len() as f64;
    if options.progress {
        eprintln!(
            "next-category: {} test customers; validation accuracy {val_acc:.4} with {config:?}",
            test_cases.len()
        );
    }

    let mut metrics = Map::new();
    metrics.insert("top1_accuracy".into(), acc.into());
    metrics.insert("top3_accuracy".into(), top3.into());
    metrics.insert("customers".into(), test_cases.len().into());
    let mut base = Map::new();
    base.insert("top1_accuracy".into(), last_acc.into());
    let mut pop_m = Map::new();
    pop_m.insert("top1_accuracy".into(), pop_acc.into());
    base.insert("popularity".into(), Value::Object(pop_m));

    let mut notes = Vec::new();
    if let Some(n) = cut_note {
        notes.push(n);
    }
    notes.push(format!(
        "categories: {} ({} kept + other); {:.1} % of test targets are 'other'",
        if d.families.is_some() {
            "the Family column"
        } else {
            "head word of the description"
        },
        scheme.len() - 1,
        100.0 * other_share
    ));
    notes.push(format!(
        "weights chosen on the validation cut {val_cut} (accuracy {val_acc:.4}): half-life {} days, transition weight {}, popularity weight {}",
        config.half_life_days.map_or_else(|| "∞".to_owned(), |h| h.to_string()),
        config.transition_weight,
        config.popularity_weight
    ));
    notes.push(format!(
        "popularity baseline predicts '{}' for everyone",
        scheme.categories[pop]
    ));
    Ok(Evaluation {
        task: Task::NextCategory.name().into(),
        data: data.display().to_string(),
        protocol: format!(
            "orders = invoices of clean product lines; train before {cut}; target = label (most frequent named category) of each customer's first order in {cut} .. {end}, customers with an earlier order only; top-1 accuracy"
        ),
        metrics,
        baseline: Baseline {
            name: "last_category".into(),
            metrics: base,
        },
        plots: Vec::new(),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const HEADER: &str =
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n";

    fn file(content: &str) -> Result<tempfile::NamedTempFile, EvalError> {
        let io = |source| EvalError::Io {
            path: std::path::PathBuf::new(),
            source,
        };
        let mut f = tempfile::NamedTempFile::new().map_err(io)?;
        f.write_all(content.as_bytes()).map_err(io)?;
        Ok(f)
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() -> Result<(), EvalError> {
        let f = file("")?;
        assert!(matches!(
            evaluate(f.path(), &EvalOptions::default()),
            Err(EvalError::Empty { .. })
        ));
        let f = file("a,b\n1,2\n")?;
        assert!(matches!(
            evaluate(f.path(), &EvalOptions::default()),
            Err(EvalError::MissingColumn { .. })
        ));
        // One day of data cannot be split in time.
        let f = file(&format!(
            "{HEADER}1,A,RED MUG,1,2011-01-01 10:00:00,1.0,5,UK\n"
        ))?;
        assert!(matches!(
            evaluate(f.path(), &EvalOptions::default()),
            Err(EvalError::Unusable { .. })
        ));
        Ok(())
    }

    #[test]
    fn family_column_is_the_category_when_present() -> Result<(), EvalError> {
        let f = file(
            "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Family\n1,A,RED MUG,1,2011-01-01 10:00:00,1.0,5,Kitchen\n",
        )?;
        let d = read_retail(f.path())?;
        assert_eq!(raw_categories(&d), vec![Some("Kitchen".to_owned())]);
        let f = file(&format!(
            "{HEADER}1,A,RED MUGS,1,2011-01-01 10:00:00,1.0,5,UK\n"
        ))?;
        let d = read_retail(f.path())?;
        assert_eq!(raw_categories(&d), vec![Some("MUG".to_owned())]);
        Ok(())
    }

    /// Customers alternate between two kinds of order (bags, then mugs, then bags…); a third,
    /// larger group only ever buys cards, so popularity says CARD and the last order says the wrong
    /// half of the alternation.
    fn alternating_shop() -> String {
        let mut s = String::from(HEADER);
        let mut inv = 1000;
        let kinds = ["LUNCH BAG", "TEA MUG"];
        for c in 0..30 {
            for (k, month) in (1..=11).enumerate() {
                inv += 1;
                let kind = kinds[(k + c) % 2];
                for j in 0..3 {
                    s.push_str(&format!(
                        "{inv},{kind}{j},{kind} {j},1,2011-{month:02}-05 10:00:00,1.0,{},UK\n",
                        100 + c
                    ));
                }
            }
        }
        for c in 0..40 {
            for month in [2, 5, 8, 10] {
                inv += 1;
                s.push_str(&format!(
                    "{inv},CARD{c},GREETING CARD {c},1,2011-{month:02}-07 10:00:00,1.0,{},UK\n",
                    500 + c
                ));
            }
        }
        s
    }

    #[test]
    fn the_model_learns_the_alternation_and_beats_both_baselines() -> Result<(), EvalError> {
        let f = file(&alternating_shop())?;
        let e = evaluate(f.path(), &EvalOptions::default())?;
        let acc = e
            .metrics
            .get("top1_accuracy")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let last = e
            .baseline
            .metrics
            .get("top1_accuracy")
            .and_then(Value::as_f64)
            .unwrap_or(1.0);
        let pop = e
            .baseline
            .metrics
            .get("popularity")
            .and_then(|p| p.get("top1_accuracy"))
            .and_then(Value::as_f64)
            .unwrap_or(1.0);
        assert!(
            acc > last && acc > pop,
            "model {acc}, last {last}, popularity {pop}: {:?}",
            e.notes
        );
        Ok(())
    }
}
