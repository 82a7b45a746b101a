//! The registry job of the cross-sell family: one model answering "what else will this customer
//! buy" and "which category next", trained and measured on purchase lines (the Online Retail
//! format that `sextant evaluate recommend` reads, which the feature store's purchase export also
//! writes).
//!
//! Protocol: the last quarter of the purchases' time span is the test period (the evaluation
//! command's anchor date is a property of one public file, not of a customer's data). Both models
//! are chosen on a validation period inside the training period, as `evaluate` does, fitted on
//! everything before the cut, and measured once on the test period next to their baselines
//! (popularity and item-kNN; popularity and last category) and next to the model being served,
//! on the same customers. The model that was measured is the one stored: what the gate compares
//! is what would be served, and the current model it is compared with was fitted before an
//! earlier or equal cut, so it never saw the test period either.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::Duration;
use serde_json::Value;
use sextant_models::metrics::lines_svg;
use sextant_models::next_category::{
    self, CategoryScheme, NextCategoryConfig, last_category, top1_accuracy,
};
use sextant_models::recommend::metrics::evaluate_rankings;
use sextant_models::recommend::{CrossSellArtifact, CrossSellModel, knn, popularity};

use super::next_category::{CATEGORIES, cases, orders, raw_categories};
use super::recommend::{
    RetailData, Split, cut_at, fit_candidate, rank_by_ids, read_retail, select, split,
};
use super::{EvalError, EvalOptions};

/// The cross-sell model trained for the registry by [`train_held_out`], with its evaluation.
#[derive(Debug, Clone)]
pub struct HeldOutModel {
    /// Fitted on the purchases before the cut; `version` is left for the registry to set.
    pub model: CrossSellModel,
    /// Test-period figures: `ndcg_at_10`, `hr_at_10`, `recall_at_20` (all items), `new_…` (items
    /// not bought before), `top1_accuracy`, `top3_accuracy`, and the baselines' as
    /// `popularity_…`, `item_knn_…`, `last_category_top1_accuracy`,
    /// `popularity_top1_accuracy`.
    pub metrics: BTreeMap<String, f64>,
    /// The chosen settings and the protocol.
    pub config: BTreeMap<String, Value>,
    /// The current model's `(ndcg_at_10, top1_accuracy)` on the same test period, or why it could
    /// not be measured; `None` when there is no current model.
    pub current: Option<Result<(f64, f64), String>>,
    /// Customers measured for recommendations and for the next category.
    pub n_test: (usize, usize),
    /// Hit rate at k = 1..=20 of the model and of popularity, for the plot.
    pub hit_curve: Vec<(f64, f64, f64)>,
}

/// Checks a purchase file as the job will read it: the columns, every row, and that its time
/// span allows a test period. Returns the clean product lines.
///
/// # Errors
/// A bad file, or too short a span.
pub fn check_purchases(data: &Path) -> Result<usize, EvalError> {
    let d = read_retail(data)?;
    cut_at(&d, false)?;
    Ok(d.lines.len())
}

fn unusable(d: &RetailData, message: String) -> EvalError {
    EvalError::Unusable {
        path: d.path.clone(),
        message,
    }
}

/// Hit rate at every k of 1..=20 for a scorer over the 'all' truths of `s`.
fn hit_curve(s: &Split, mut score: impl FnMut(u32, &mut [f32])) -> Vec<f64> {
    let mut hits = [0.0; 20];
    let mut n = 0usize;
    let mut out = vec![0f32; s.x.n_items()];
    for t in s.all.iter().filter(|t| !t.items.is_empty()) {
        score(t.user, &mut out);
        let ranked = sextant_models::recommend::top_k(&out, 20);
        if let Some(first) = ranked.iter().position(|i| t.items.contains(i)) {
            for h in hits.iter_mut().skip(first) {
                *h += 1.0;
            }
        }
        n += 1;
    }
    hits.iter().map(|h| h / n.max(1) as f64).collect()
}

/// Trains both models on the purchases before the cut and measures them, the baselines and
/// `current` on the test period (see the module docs).
///
/// # Errors
/// A bad file, too short a span, no customer buying on both sides of a cut, a failed fit.
#[expect(clippy::too_many_lines)]
pub fn train_held_out(
    data: &Path,
    options: &EvalOptions,
    current: Option<&CrossSellModel>,
) -> Result<HeldOutModel, EvalError> {
    let d = read_retail(data)?;
    let (cut, end, cut_note) = cut_at(&d, false)?;
    let val_cut = cut - (end - cut);
    let test = split(&d, cut, end)?;
    let val = split(&d, val_cut, cut - Duration::seconds(1))?;
    let rec_error =
        |e: &sextant_models::recommend::RecommendError| super::recommend::model_error(e);

    // Recommendations: choose on validation, fit before the cut, measure as served.
    let (chosen, val_all, val_new) = select(&val, options.progress).map_err(|e| rec_error(&e))?;
    let scorer = fit_candidate(&test.x, chosen, None).map_err(|e| rec_error(&e))?;
    let item_ids: Vec<String> = test
        .items
        .iter()
        .map(|&g| d.items[g as usize].clone())
        .collect();
    let pop = popularity::scores(&test.x);
    let recommend = CrossSellArtifact::new(chosen.name(), item_ids, scorer.clone(), pop.clone())
        .map_err(|e| rec_error(&e))?;
    let all = rank_by_ids(&d, &test, &recommend, false).map_err(|e| rec_error(&e))?;
    let new = rank_by_ids(&d, &test, &recommend, true).map_err(|e| rec_error(&e))?;
    let pop_score = |_: u32, out: &mut [f32]| out.copy_from_slice(&pop);
    let pop_all = evaluate_rankings(test.x.n_items(), &test.all, None, pop_score);
    let knn50 = knn::fit(&test.x, 50).map_err(|e| rec_error(&e))?;
    let knn_all = super::recommend::rank(&test, &knn50, false);
    let model_curve = hit_curve(&test, |u, out| {
        let (items, ws) = test.x.row(u as usize);
        scorer.score_into(items, ws, out);
    });
    let pop_curve = hit_curve(&test, |_, out| out.copy_from_slice(&pop));

    // Next category: categories from the training period, weights chosen on validation.
    let raw = raw_categories(&d);
    let mut counts: HashMap<String, u64> = HashMap::new();
    for l in d.lines.iter().filter(|l| l.at < cut) {
        if let Some(c) = &raw[l.item as usize] {
            *counts.entry(c.clone()).or_default() += 1;
        }
    }
    let scheme = CategoryScheme::from_counts(&counts, CATEGORIES);
    let other = scheme.other();
    let all_orders = orders(&d, &raw, &scheme);
    let nc_error = |e: &next_category::NextCategoryError| super::next_category::model_error(e);
    let (val_histories, val_cases) = cases(&all_orders, val_cut, cut - Duration::seconds(1), other);
    if val_cases.is_empty() {
        return Err(unusable(
            &d,
            format!(
                "no customer ordered both before {val_cut} and between it and {cut} (validation)"
            ),
        ));
    }
    let grid = NextCategoryConfig::grid();
    let val_model =
        next_category::fit(&scheme, &val_histories, grid[0]).map_err(|e| nc_error(&e))?;
    let (nc_config, nc_val) =
        next_category::tune(&val_model, &val_cases, &grid).map_err(|e| nc_error(&e))?;
    let (histories, test_cases) = cases(&all_orders, cut, end, other);
    if test_cases.is_empty() {
        return Err(unusable(
            &d,
            format!("no customer ordered both before and after {cut}"),
        ));
    }
    let nc = next_category::fit(&scheme, &histories, nc_config).map_err(|e| nc_error(&e))?;
    let top1 =
        top1_accuracy(&test_cases, |c| nc.predict(&c.history, c.day)).map_err(|e| nc_error(&e))?;
    let top3 = top1_accuracy(&test_cases, |c| {
        let top = nc.top(&c.history, c.day, 3)?;
        Ok(if top.iter().any(|p| p.0 == c.label) {
            c.label
        } else {
            usize::MAX
        })
    })
    .map_err(|e| nc_error(&e))?;
    let pop_pred = nc.popularity_prediction();
    let pop_top1 = top1_accuracy(&test_cases, |_| Ok(pop_pred)).map_err(|e| nc_error(&e))?;
    let last_top1 = top1_accuracy(&test_cases, |c| {
        Ok(last_category(&c.history, other).unwrap_or(other))
    })
    .map_err(|e| nc_error(&e))?;

    let item_categories = test
        .items
        .iter()
        .map(|&g| scheme.index_of(raw[g as usize].as_deref()) as u32)
        .collect();
    let names = test
        .items
        .iter()
        .map(|&g| d.descriptions[g as usize].clone())
        .collect();
    let model = CrossSellModel {
        format: CrossSellModel::FORMAT,
        version: String::new(),
        recommend,
        names,
        item_categories,
        next_category: nc,
    };
    model.validate().map_err(|e| rec_error(&e))?;

    // The current model on the same customers: recommendations by ids, categories through its
    // own scheme (categories come from the same raw names, so labels mean the same thing).
    let current = current.map(|c| -> Result<(f64, f64), String> {
        c.validate().map_err(|e| e.to_string())?;
        let ndcg = rank_by_ids(&d, &test, &c.recommend, false)
            .map_err(|e| e.to_string())?
            .ndcg_at_10;
        let theirs = orders(&d, &raw, &c.next_category.scheme);
        let (_, their_cases) = cases(&theirs, cut, end, c.next_category.scheme.other());
        let acc = top1_accuracy(&their_cases, |k| c.next_category.predict(&k.history, k.day))
            .map_err(|e| e.to_string())?;
        Ok((ndcg, acc))
    });

    let mut metrics = BTreeMap::new();
    for (k, v) in [
        ("ndcg_at_10", all.ndcg_at_10),
        ("hr_at_10", all.hr_at_10),
        ("recall_at_20", all.recall_at_20),
        ("new_ndcg_at_10", new.ndcg_at_10),
        ("new_hr_at_10", new.hr_at_10),
        ("popularity_ndcg_at_10", pop_all.ndcg_at_10),
        ("popularity_hr_at_10", pop_all.hr_at_10),
        ("item_knn_ndcg_at_10", knn_all.ndcg_at_10),
        ("item_knn_hr_at_10", knn_all.hr_at_10),
        ("top1_accuracy", top1),
        ("top3_accuracy", top3),
        ("last_category_top1_accuracy", last_top1),
        ("popularity_top1_accuracy", pop_top1),
    ] {
        metrics.insert(k.to_owned(), v);
    }
    let mut config = BTreeMap::new();
    config.insert("recommender".to_owned(), Value::from(chosen.describe()));
    config.insert(
        "validation_ndcg_at_10".to_owned(),
        Value::from(f64::midpoint(val_all.ndcg_at_10, val_new.ndcg_at_10)),
    );
    config.insert(
        "next_category".to_owned(),
        serde_json::to_value(nc_config).unwrap_or(Value::Null),
    );
    config.insert(
        "next_category_validation_top1".to_owned(),
        Value::from(nc_val),
    );
    config.insert("categories".to_owned(), Value::from(scheme.len() - 1));
    config.insert(
        "category_source".to_owned(),
        Value::from(if d.families.is_some() {
            "product family"
        } else {
            "head word of the product name"
        }),
    );
    config.insert("seed".to_owned(), Value::from(options.seed));
    config.insert(
        "protocol".to_owned(),
        Value::from(format!(
            "train before {cut}, validation from {val_cut}, test {cut} .. {end}; {} customers × {} items; recommendations ranked over all train items, top 20 as served; next category = label of each customer's first test-period order",
            test.x.n_users(),
            test.x.n_items()
        )),
    );
    if let Some(n) = cut_note {
        config.insert("cut".to_owned(), Value::from(n));
    }
    let hit_curve = model_curve
        .iter()
        .zip(&pop_curve)
        .enumerate()
        .map(|(k, (m, p))| ((k + 1) as f64, *m, *p))
        .collect();
    Ok(HeldOutModel {
        model,
        metrics,
        config,
        current,
        n_test: (all.users, test_cases.len()),
        hit_curve,
    })
}

/// `hit_rate.svg`: hit rate at k of the model and of popularity on the test period.
#[must_use]
pub fn hit_rate_svg(curve: &[(f64, f64, f64)], title: &str) -> String {
    let model: Vec<f64> = curve.iter().map(|(_, m, _)| *m).collect();
    let pop: Vec<f64> = curve.iter().map(|(_, _, p)| *p).collect();
    lines_svg(
        &[("model", &model), ("popularity", &pop)],
        title,
        "k (items shown, 1..20)",
        "hit rate (a test purchase in the top k)",
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const HEADER: &str =
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n";

    /// Two kinds of customer: bag buyers also buy lunch boxes, mug buyers also buy tea; each
    /// customer buys one of the pair every month and the other now and then.
    fn shop() -> String {
        let mut s = String::from(HEADER);
        let mut inv = 1000;
        for c in 0..60 {
            let (a, b) = if c % 2 == 0 {
                (("BAG", "LUNCH BAG"), ("BOX", "LUNCH BOX"))
            } else {
                (("MUG", "TEA MUG"), ("TEA", "TEA TIN"))
            };
            for month in 1..=12 {
                inv += 1;
                let (code, name) = if (month + c) % 3 == 0 { b } else { a };
                s.push_str(&format!(
                    "{inv},{code},{name},1,2011-{month:02}-05 10:00:00,1.0,{},UK\n",
                    100 + c
                ));
                if month % 4 == 0 {
                    s.push_str(&format!(
                        "{inv},CARD,GREETING CARD,1,2011-{month:02}-05 10:00:00,1.0,{},UK\n",
                        100 + c
                    ));
                }
            }
        }
        s
    }

    fn file(content: &str) -> Result<tempfile::NamedTempFile, Box<dyn std::error::Error>> {
        let mut f = tempfile::NamedTempFile::new()?;
        f.write_all(content.as_bytes())?;
        Ok(f)
    }

    #[test]
    fn learns_the_pairs_beats_popularity_and_measures_the_current_model()
    -> Result<(), Box<dyn std::error::Error>> {
        let f = file(&shop())?;
        assert!(check_purchases(f.path())? > 700);
        let first = train_held_out(f.path(), &EvalOptions::default(), None)?;
        assert!(first.current.is_none());
        let m = &first.metrics;
        assert!(
            m["hr_at_10"] >= m["popularity_hr_at_10"]
                && m["ndcg_at_10"] > m["popularity_ndcg_at_10"],
            "{m:?}"
        );
        // A bag buyer is offered the lunch box, because of the bag.
        let a = first.model.answer(
            &[sextant_models::recommend::PastOrder {
                day: 1,
                items: vec!["BAG".into()],
            }],
            2,
            3,
            true,
        )?;
        assert_eq!(a.items[0].item, "BOX", "{a:?}");
        assert_eq!(
            a.items[0].because.as_ref().map(|b| b.item.as_str()),
            Some("BAG")
        );
        // Measured again with itself as the current model: the same figures.
        let again = train_held_out(f.path(), &EvalOptions::default(), Some(&first.model))?;
        let (ndcg, top1) = again.current.ok_or("no current figures")??;
        assert!(
            (ndcg - m["ndcg_at_10"]).abs() < 1e-9,
            "{ndcg} vs {}",
            m["ndcg_at_10"]
        );
        assert!(
            (top1 - m["top1_accuracy"]).abs() < 1e-9,
            "{top1} vs {}",
            m["top1_accuracy"]
        );
        assert_eq!(first.hit_curve.len(), 20);
        assert!(hit_rate_svg(&first.hit_curve, "t").starts_with("<svg"));
        Ok(())
    }

    #[test]
    fn too_short_a_span_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let f = file(&format!(
            "{HEADER}1,A,RED MUG,1,2011-01-01 10:00:00,1.0,5,UK\n"
        ))?;
        assert!(matches!(
            check_purchases(f.path()),
            Err(EvalError::Unusable { .. })
        ));
        let f = file("x,y\n1,2\n")?;
        assert!(matches!(
            check_purchases(f.path()),
            Err(EvalError::MissingColumn { .. })
        ));
        Ok(())
    }
}
