//! `sextant evaluate recommend`: cross-sell from purchases, the protocol of `ml-anchors.md` §2d.
//!
//! Data: an Online Retail–format CSV (plain or gzip), read streaming. Clean lines have a CustomerID,
//! an InvoiceNo not starting with `C`, Quantity > 0 and UnitPrice > 0; non-product StockCodes (postage,
//! fees, manual adjustments, gift vouchers) are dropped. The split is by date: train before
//! 2011-09-01, test from then on, restricted to train customers and items; the weight of a
//! (customer, item) pair is the number of distinct invoices containing it. Two ground truths: **all**
//! test items and **new** items (not bought in train; bought items removed from the ranking).
//! Rankings are over all train items.
//!
//! Model selection never looks at the test period: the last part of the training period (as long as
//! the test period) is held out as a validation period, the candidates (EASE with several penalties,
//! weightings and repeat weights; cosine item-kNN with several K) are fitted on what precedes it, and
//! the best by validation NDCG@10 (mean of the 'all' and 'new' ground truths) is refitted on the
//! whole training period and measured once on test.
//!
//! Metrics: `hr_at_10`, `ndcg_at_10`, `recall_at_20`, `users`, and the same under `new`. Baseline:
//! implicit ALS (64 factors, reg 0.05, alpha 1, 20 iterations, BM25 K1 100 B 0.8), run here on the same
//! split; popularity and cosine item-kNN (K 50) are reported inside the baseline object too.
//!
//! The Online Retail reader lives here and is shared with `next_category`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate, NaiveDateTime};
use serde_json::{Map, Value};
use sextant_models::recommend::clusters::{ClusterConfig, product_clusters};
use sextant_models::recommend::ease::{self, EaseWeights};
use sextant_models::recommend::metrics::{RankingMetrics, Truth, evaluate_rankings, user_metrics};
use sextant_models::recommend::{
    CrossSellArtifact, Interactions, ItemItem, RecommendError, Weighting, als, knn, popularity,
};

use super::{Baseline, EvalError, EvalOptions, Evaluation, Task};

/// The columns an Online Retail file must have.
pub(crate) const COLUMNS: [&str; 7] = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
];

/// StockCodes that are not products (postage, fees, manual lines, samples, bank charges).
const NON_PRODUCT: [&str; 12] = [
    "POST",
    "D",
    "M",
    "m",
    "DOT",
    "BANK CHARGES",
    "C2",
    "CRUK",
    "PADS",
    "AMAZONFEE",
    "S",
    "B",
];

/// The anchor's train/test cut.
const ANCHOR_CUT: (i32, u32, u32) = (2011, 9, 1);

/// One clean product line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetailLine {
    /// Invoice (index into [`RetailData::invoices`]).
    pub invoice: u32,
    /// Item (index into [`RetailData::items`]).
    pub item: u32,
    /// Customer (index into [`RetailData::customers`]).
    pub customer: u32,
    /// Invoice time.
    pub at: NaiveDateTime,
}

/// The clean product lines of a file, with interned ids.
#[derive(Debug)]
pub(crate) struct RetailData {
    /// The file.
    pub path: PathBuf,
    /// Clean product lines, in file order.
    pub lines: Vec<RetailLine>,
    /// StockCodes.
    pub items: Vec<String>,
    /// Most frequent description of each item (ties: alphabetical).
    pub descriptions: Vec<String>,
    /// Product family per item, when the file has a `Family` column (most frequent non-empty value).
    pub families: Option<Vec<String>>,
    /// CustomerIDs.
    pub customers: Vec<String>,
    /// InvoiceNos.
    pub invoices: Vec<String>,
    /// Data rows read (all, clean or not).
    pub rows: usize,
}

fn intern(map: &mut HashMap<String, u32>, names: &mut Vec<String>, key: &str) -> u32 {
    if let Some(&k) = map.get(key) {
        return k;
    }
    let k = u32::try_from(names.len()).unwrap_or(u32::MAX);
    map.insert(key.to_owned(), k);
    names.push(key.to_owned());
    k
}

fn parse_time(s: &str) -> Option<NaiveDateTime> {
    const FORMATS: [&str; 5] = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%m/%d/%Y %H:%M",
        "%d/%m/%Y %H:%M",
    ];
    FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s.trim(), f).ok())
}

fn csv_error(path: &Path, e: csv::Error) -> EvalError {
    let line = e.position().map_or(0, |p| p.line() as usize);
    match e.into_kind() {
        csv::ErrorKind::Io(source) => EvalError::Io {
            path: path.to_owned(),
            source,
        },
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => EvalError::BadRow {
            path: path.to_owned(),
            line,
            message: format!("expected {expected_len} fields, found {len}"),
        },
        csv::ErrorKind::Utf8 { err, .. } => EvalError::BadRow {
            path: path.to_owned(),
            line,
            message: format!("not UTF-8 text: {err}"),
        },
        other => EvalError::BadRow {
            path: path.to_owned(),
            line,
            message: format!("not CSV: {other:?}"),
        },
    }
}

fn most_frequent(counts: &HashMap<String, u32>) -> String {
    counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(k, _)| k.clone())
        .unwrap_or_default()
}

/// Reads the clean product lines of an Online Retail–format file (plain or gzip CSV), streaming.
///
/// # Errors
/// [`EvalError::Io`] (unreadable, corrupt gzip), [`EvalError::Empty`] (no data rows),
/// [`EvalError::MissingColumn`], [`EvalError::BadRow`] (unparsable field), [`EvalError::Unusable`]
/// (rows, but no clean product line).
pub(crate) fn read_retail(path: &Path) -> Result<RetailData, EvalError> {
    let io = |source| EvalError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    let gz = file.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reader);
    let header = rdr.headers().map_err(|e| csv_error(path, e))?.clone();
    if header.is_empty() || (header.len() == 1 && header.get(0).is_some_and(str::is_empty)) {
        return Err(EvalError::Empty {
            path: path.to_owned(),
        });
    }
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().trim_start_matches('\u{feff}') == name)
    };
    let mut idx = [0usize; 7];
    for (k, name) in COLUMNS.iter().enumerate() {
        idx[k] = col(name).ok_or_else(|| EvalError::MissingColumn {
            path: path.to_owned(),
            column: (*name).to_owned(),
            expected: COLUMNS.join(", "),
        })?;
    }
    let family_col = col("Family").or_else(|| col("ProductFamily"));
    let [c_inv, c_code, c_desc, c_qty, c_date, c_price, c_cust] = idx;

    let (mut item_ids, mut cust_ids, mut inv_ids) =
        (HashMap::new(), HashMap::new(), HashMap::new());
    let mut data = RetailData {
        path: path.to_owned(),
        lines: Vec::new(),
        items: Vec::new(),
        descriptions: Vec::new(),
        families: None,
        customers: Vec::new(),
        invoices: Vec::new(),
        rows: 0,
    };
    let mut desc_counts: Vec<HashMap<String, u32>> = Vec::new();
    let mut family_counts: Vec<HashMap<String, u32>> = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, e)),
        }
        data.rows += 1;
        let line = record
            .position()
            .map_or(data.rows + 1, |p| p.line() as usize);
        let bad = |message: String| EvalError::BadRow {
            path: path.to_owned(),
            line,
            message,
        };
        let field = |k: usize| record.get(k).unwrap_or("").trim();
        let qty: f64 = field(c_qty)
            .parse()
            .map_err(|_| bad(format!("Quantity {:?} is not a number", field(c_qty))))?;
        let price: f64 = field(c_price)
            .parse()
            .map_err(|_| bad(format!("UnitPrice {:?} is not a number", field(c_price))))?;
        let at = parse_time(field(c_date)).ok_or_else(|| {
            bad(format!(
                "InvoiceDate {:?} is not a date-time",
                field(c_date)
            ))
        })?;
        let (invoice, code, customer) = (field(c_inv), field(c_code), field(c_cust));
        if invoice.is_empty() || code.is_empty() {
            return Err(bad("empty InvoiceNo or StockCode".into()));
        }
        let clean = !customer.is_empty() && !invoice.starts_with('C') && qty > 0.0 && price > 0.0;
        let product = !NON_PRODUCT.contains(&code) && !code.starts_with("gift_");
        if !(clean && product) {
            continue;
        }
        let item = intern(&mut item_ids, &mut data.items, code);
        if item as usize == desc_counts.len() {
            desc_counts.push(HashMap::new());
            family_counts.push(HashMap::new());
        }
        let desc = field(c_desc);
        if !desc.is_empty() {
            *desc_counts[item as usize]
                .entry(desc.to_owned())
                .or_default() += 1;
        }
        if let Some(fc) = family_col {
            let fam = field(fc);
            if !fam.is_empty() {
                *family_counts[item as usize]
                    .entry(fam.to_owned())
                    .or_default() += 1;
            }
        }
        let customer = intern(&mut cust_ids, &mut data.customers, customer);
        let invoice = intern(&mut inv_ids, &mut data.invoices, invoice);
        data.lines.push(RetailLine {
            invoice,
            item,
            customer,
            at,
        });
    }
    if data.rows == 0 {
        return Err(EvalError::Empty {
            path: path.to_owned(),
        });
    }
    if data.lines.is_empty() {
        return Err(EvalError::Unusable {
            path: path.to_owned(),
            message: format!(
                "none of the {} rows is a purchase line (CustomerID present, InvoiceNo not starting with C, Quantity > 0, UnitPrice > 0, a product StockCode)",
                data.rows
            ),
        });
    }
    data.descriptions = desc_counts.iter().map(most_frequent).collect();
    if family_col.is_some() {
        data.families = Some(family_counts.iter().map(most_frequent).collect());
    }
    Ok(data)
}

/// The train/test cut: the anchor's date when the file has lines on both sides of it; otherwise the
/// point that leaves the last quarter of the file's time span for testing (said in a note).
pub(crate) fn choose_cut(
    data: &RetailData,
) -> Result<(NaiveDateTime, NaiveDateTime, Option<String>), EvalError> {
    cut_at(data, true)
}

/// The train/test cut of a file: with `anchor`, the anchor's date when the file spans it; else
/// (and always without `anchor`) the point that leaves the last quarter of the time span for
/// testing.
pub(crate) fn cut_at(
    data: &RetailData,
    anchor: bool,
) -> Result<(NaiveDateTime, NaiveDateTime, Option<String>), EvalError> {
    let first = data.lines.iter().map(|l| l.at).min();
    let last = data.lines.iter().map(|l| l.at).max();
    let (Some(first), Some(last)) = (first, last) else {
        return Err(EvalError::Empty {
            path: data.path.clone(),
        });
    };
    let anchor_cut = NaiveDate::from_ymd_opt(ANCHOR_CUT.0, ANCHOR_CUT.1, ANCHOR_CUT.2)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .filter(|_| anchor)
        .unwrap_or(NaiveDateTime::MAX);
    if first < anchor_cut && last >= anchor_cut {
        return Ok((anchor_cut, last, None));
    }
    let span = last - first;
    if span < Duration::days(8) {
        return Err(EvalError::Unusable {
            path: data.path.clone(),
            message: format!(
                "purchases span only {} days ({first} .. {last}); a temporal split needs more",
                span.num_days()
            ),
        });
    }
    let cut = (first + span * 3 / 4)
        .date()
        .and_hms_opt(0, 0, 0)
        .unwrap_or(first);
    Ok((
        cut,
        last,
        Some(if anchor {
            format!(
                "the data do not span the anchor cut 2011-09-01 ({first} .. {last}); cut at {cut} (last quarter of the span is the test period)"
            )
        } else {
            format!(
                "purchases {first} .. {last}; cut at {cut} (the last quarter of the span is the test period)"
            )
        }),
    ))
}

/// Train matrix and test ground truths for one cut.
pub(crate) struct Split {
    pub(crate) x: Interactions,
    /// Item (index into [`RetailData::items`]) of each column of `x`.
    pub(crate) items: Vec<u32>,
    pub(crate) all: Vec<Truth>,
    pub(crate) new: Vec<Truth>,
}

/// Train = lines before `cut`; test = lines in `[cut, end]` of train users and train items.
pub(crate) fn split(
    data: &RetailData,
    cut: NaiveDateTime,
    end: NaiveDateTime,
) -> Result<Split, EvalError> {
    let mut users: HashMap<u32, u32> = HashMap::new();
    let mut items: HashMap<u32, u32> = HashMap::new();
    let mut columns: Vec<u32> = Vec::new();
    let mut train: Vec<(u32, u32, u32)> = Vec::new();
    for l in data.lines.iter().filter(|l| l.at < cut) {
        let n = users.len() as u32;
        let u = *users.entry(l.customer).or_insert(n);
        let n = items.len() as u32;
        let i = *items.entry(l.item).or_insert_with(|| {
            columns.push(l.item);
            n
        });
        train.push((u, i, l.invoice));
    }
    train.sort_unstable();
    train.dedup();
    let mut triples: Vec<(u32, u32, f32)> = Vec::new();
    for &(u, i, _) in &train {
        match triples.last_mut() {
            Some(t) if t.0 == u && t.1 == i => t.2 += 1.0,
            _ => triples.push((u, i, 1.0)),
        }
    }
    let x = Interactions::from_triples(users.len(), items.len(), &triples)
        .map_err(|e| model_error(&e))?;
    let mut test: Vec<(u32, u32)> = data
        .lines
        .iter()
        .filter(|l| l.at >= cut && l.at <= end)
        .filter_map(|l| Some((*users.get(&l.customer)?, *items.get(&l.item)?)))
        .collect();
    test.sort_unstable();
    test.dedup();
    let mut all: Vec<Truth> = Vec::new();
    for (u, i) in test {
        match all.last_mut() {
            Some(t) if t.user == u => t.items.push(i),
            _ => all.push(Truth {
                user: u,
                items: vec![i],
            }),
        }
    }
    let new = all
        .iter()
        .map(|t| Truth {
            user: t.user,
            items: t
                .items
                .iter()
                .copied()
                .filter(|&i| !x.contains(t.user as usize, i))
                .collect(),
        })
        .filter(|t| !t.items.is_empty())
        .collect();
    if x.nnz() == 0 || all.is_empty() {
        return Err(EvalError::Unusable {
            path: data.path.clone(),
            message: format!("no customer bought a known item both before and after {cut}"),
        });
    }
    Ok(Split {
        x,
        items: columns,
        all,
        new,
    })
}

pub(crate) fn model_error(e: &RecommendError) -> EvalError {
    EvalError::Model {
        task: Task::Recommend.name().into(),
        message: e.to_string(),
    }
}

/// A candidate of the model search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Candidate {
    Ease {
        relative_lambda: f64,
        weighting: Weighting,
        self_weight: f32,
    },
    Knn {
        k: usize,
    },
}

impl Candidate {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Ease { .. } => "ease",
            Self::Knn { .. } => "item_knn",
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Ease {
                relative_lambda,
                weighting,
                self_weight,
            } => format!(
                "EASE (λ = {relative_lambda} × mean item mass, {} weights, repeat weight {self_weight}, {EASE_KEEP} neighbours per item)",
                weighting.name()
            ),
            Self::Knn { k } => format!("cosine item-kNN (K = {k})"),
        }
    }
}

/// Neighbours kept per item in the pruned EASE scorer.
const EASE_KEEP: usize = 200;
/// EASE penalties searched, in units of the mean diagonal of XᵀX.
const EASE_LAMBDAS: [f64; 3] = [8.0, 32.0, 128.0];
/// EASE input weightings searched.
const EASE_WEIGHTINGS: [Weighting; 2] = [Weighting::Binary, Weighting::Log1p];
/// EASE repeat-purchase weights searched (scoring only, no refit).
const EASE_SELF_WEIGHTS: [f32; 6] = [0.0, 0.05, 0.1, 0.2, 0.4, 0.8];
/// Item-kNN neighbourhood sizes searched.
const KNN_KS: [usize; 3] = [20, 50, 200];

pub(crate) fn rank(s: &Split, scorer: &ItemItem, exclude: bool) -> RankingMetrics {
    let truths = if exclude { &s.new } else { &s.all };
    evaluate_rankings(s.x.n_items(), truths, exclude.then_some(&s.x), |u, out| {
        let (items, ws) = s.x.row(u as usize);
        scorer.score_into(items, ws, out);
    })
}

pub(crate) fn fit_candidate(
    x: &Interactions,
    c: Candidate,
    cache: Option<&EaseWeights>,
) -> Result<ItemItem, RecommendError> {
    match c {
        Candidate::Ease {
            relative_lambda,
            weighting,
            self_weight,
        } => match cache {
            Some(w) => Ok(w.prune(EASE_KEEP, self_weight)),
            None => {
                Ok(ease::fit_weights(x, relative_lambda, weighting)?.prune(EASE_KEEP, self_weight))
            }
        },
        Candidate::Knn { k } => knn::fit(x, k),
    }
}

/// Validation score of a candidate: the mean NDCG@10 over both ground truths, so that a model
/// cannot win by re-ranking what customers already buy while getting worse at cross-selling.
fn criterion(all: &RankingMetrics, new: &RankingMetrics) -> f64 {
    f64::midpoint(all.ndcg_at_10, new.ndcg_at_10)
}

/// Searches the candidates on the validation split; returns the best with its figures.
pub(crate) fn select(
    s: &Split,
    progress: bool,
) -> Result<(Candidate, RankingMetrics, RankingMetrics), RecommendError> {
    let mut best: Option<(Candidate, RankingMetrics, RankingMetrics)> = None;
    let mut consider = |c: Candidate, scorer: &ItemItem| {
        let (all, new) = (rank(s, scorer, false), rank(s, scorer, true));
        if progress {
            eprintln!(
                "validation NDCG@10 all {:.4} new {:.4}, HR@10 all {:.4}: {}",
                all.ndcg_at_10,
                new.ndcg_at_10,
                all.hr_at_10,
                c.describe()
            );
        }
        if best.is_none_or(|(_, a, n)| criterion(&all, &new) > criterion(&a, &n)) {
            best = Some((c, all, new));
        }
    };
    for weighting in EASE_WEIGHTINGS {
        for relative_lambda in EASE_LAMBDAS {
            let w = ease::fit_weights(&s.x, relative_lambda, weighting)?;
            for self_weight in EASE_SELF_WEIGHTS {
                let c = Candidate::Ease {
                    relative_lambda,
                    weighting,
                    self_weight,
                };
                consider(c, &w.prune(EASE_KEEP, self_weight));
            }
        }
    }
    for k in KNN_KS {
        let c = Candidate::Knn { k };
        consider(c, &knn::fit(&s.x, k)?);
    }
    best.ok_or(RecommendError::Empty)
}

pub(crate) fn figures(all: &RankingMetrics, new: &RankingMetrics) -> Map<String, Value> {
    let mut m = all.to_json();
    m.insert("new".into(), Value::Object(new.to_json()));
    m
}

/// Runs the recommend protocol on `data`.
///
/// # Errors
/// See [`EvalError`].
pub fn evaluate(data: &Path, options: &EvalOptions) -> Result<Evaluation, EvalError> {
    let d = read_retail(data)?;
    let (cut, end, cut_note) = choose_cut(&d)?;
    let test = split(&d, cut, end)?;
    // Validation: the last stretch of the training period, as long as the test period.
    let val_cut = cut - (end - cut);
    let val = split(&d, val_cut, cut - Duration::seconds(1))?;
    if options.progress {
        eprintln!(
            "recommend: {} rows; train {} users × {} items ({} pairs); validation from {val_cut}",
            d.rows,
            test.x.n_users(),
            test.x.n_items(),
            test.x.nnz()
        );
    }
    let (chosen, val_all, val_new) = select(&val, options.progress).map_err(|e| model_error(&e))?;

    let scorer = fit_candidate(&test.x, chosen, None).map_err(|e| model_error(&e))?;
    // The model is measured through its serving artefact: what the gateway would answer.
    let item_ids: Vec<String> = test
        .items
        .iter()
        .map(|&g| d.items[g as usize].clone())
        .collect();
    let artefact =
        CrossSellArtifact::new(chosen.name(), item_ids, scorer, popularity::scores(&test.x))
            .map_err(|e| model_error(&e))?;
    let model_all = rank_by_ids(&d, &test, &artefact, false).map_err(|e| model_error(&e))?;
    let model_new = rank_by_ids(&d, &test, &artefact, true).map_err(|e| model_error(&e))?;
    let artefact_bytes = artefact.to_json().map_err(|e| model_error(&e))?.len();

    // Baselines on the same split.
    let pop = popularity::scores(&test.x);
    let pop_score = |_: u32, out: &mut [f32]| out.copy_from_slice(&pop);
    let pop_all = evaluate_rankings(test.x.n_items(), &test.all, None, pop_score);
    let pop_new = evaluate_rankings(test.x.n_items(), &test.new, Some(&test.x), pop_score);
    let knn50 = knn::fit(&test.x, 50).map_err(|e| model_error(&e))?;
    let knn_all = rank(&test, &knn50, false);
    let knn_new = rank(&test, &knn50, true);
    let als_model = als::fit(
        &test.x.bm25(100.0, 0.8),
        &als::AlsConfig {
            seed: options.seed,
            ..als::AlsConfig::default()
        },
    )
    .map_err(|e| model_error(&e))?;
    let als_score = |u: u32, out: &mut [f32]| als_model.score_user(u as usize, out);
    let als_all = evaluate_rankings(test.x.n_items(), &test.all, None, als_score);
    let als_new = evaluate_rankings(test.x.n_items(), &test.new, Some(&test.x), als_score);

    let mut baseline = figures(&als_all, &als_new);
    baseline.insert(
        "popularity".into(),
        Value::Object(figures(&pop_all, &pop_new)),
    );
    baseline.insert(
        "item_knn_cosine_k50".into(),
        Value::Object(figures(&knn_all, &knn_new)),
    );

    let mut notes = Vec::new();
    if let Some(n) = cut_note {
        notes.push(n);
    }
    notes.push(format!(
        "model chosen on the validation period (train lines from {val_cut} to the cut; never the test period) by mean NDCG@10 of 'all' and 'new': {} with validation NDCG@10 {:.4} (all), {:.4} (new), HR@10 {:.4}",
        chosen.describe(),
        val_all.ndcg_at_10,
        val_new.ndcg_at_10,
        val_all.hr_at_10
    ));
    notes.push(format!(
        "ALS is run here (CG, {} seed); anchor figures with implicit 0.7.3: HR@10 0.7933, NDCG@10 0.3389, Recall@20 0.1958 (all); 0.5024 / 0.1141 / 0.0825 (new)",
        options.seed
    ));
    notes.push(format!(
        "serving artefact ({} items, {} neighbour weights): {:.1} MB of JSON; the model's figures above are its answers",
        artefact.items.len(),
        artefact.scorer.neighbours.iter().map(Vec::len).sum::<usize>(),
        artefact_bytes as f64 / 1e6
    ));
    notes.extend(cluster_notes(&d, &test, options.seed));

    Ok(Evaluation {
        task: Task::Recommend.name().into(),
        data: data.display().to_string(),
        protocol: format!(
            "clean product lines; train before {cut} ({} customers × {} items, {} pairs, weight = distinct invoices), test {cut} .. {end} restricted to train customers and items ({} customers, {} with new items); full ranking over train items; HR@10, NDCG@10 (binary gain), Recall@20 = hits/|GT|; 'new' removes bought items",
            test.x.n_users(),
            test.x.n_items(),
            test.x.nnz(),
            test.all.len(),
            test.new.len()
        ),
        metrics: figures(&model_all, &model_new),
        baseline: Baseline {
            name: "als".into(),
            metrics: baseline,
        },
        plots: Vec::new(),
        notes,
    })
}

/// A few product clusters of the training period, described by their best-selling items.
fn cluster_notes(d: &RetailData, s: &Split, seed: u64) -> Vec<String> {
    let cfg = ClusterConfig {
        k: 20,
        seed,
        top: 3,
        ..ClusterConfig::default()
    };
    match product_clusters(&s.x.map_values(|_| 1.0), &cfg) {
        Ok(c) => c
            .clusters
            .iter()
            .take(5)
            .map(|k| {
                let names: Vec<&str> = k
                    .top_items
                    .iter()
                    .filter_map(|(i, _)| s.items.get(*i as usize))
                    .map(|g| d.descriptions[*g as usize].as_str())
                    .collect();
                format!(
                    "product cluster {} ({} items): {}",
                    k.id,
                    k.size,
                    names.join(" · ")
                )
            })
            .collect(),
        Err(e) => vec![format!("product clusters not computed: {e}")],
    }
}

/// Ranks every test user of `s` through `a.recommend` (top 20, as the gateway answers), mapping
/// ids through the catalogue, so that an artefact fitted on other items (the registry's current
/// model) is measured on the same users and truths as one fitted on this split.
///
/// # Errors
/// A history weight the artefact refuses.
pub(crate) fn rank_by_ids(
    d: &RetailData,
    s: &Split,
    a: &CrossSellArtifact,
    exclude: bool,
) -> Result<RankingMetrics, RecommendError> {
    let column: HashMap<&str, u32> = s
        .items
        .iter()
        .enumerate()
        .map(|(k, &g)| (d.items[g as usize].as_str(), k as u32))
        .collect();
    let truths = if exclude { &s.new } else { &s.all };
    let (mut hr, mut ndcg, mut rec, mut n) = (0.0, 0.0, 0.0, 0usize);
    for t in truths.iter().filter(|t| !t.items.is_empty()) {
        let (items, ws) = s.x.row(t.user as usize);
        let history: Vec<(String, f32)> = items
            .iter()
            .zip(ws)
            .map(|(&i, &w)| (d.items[s.items[i as usize] as usize].clone(), w))
            .collect();
        let ranked: Vec<u32> = a
            .recommend(&history, 20, exclude)?
            .items
            .iter()
            .filter_map(|r| column.get(r.item.as_str()).copied())
            .collect();
        let m = user_metrics(&ranked, &t.items);
        hr += m.hit_at_10;
        ndcg += m.ndcg_at_10;
        rec += m.recall_at_20;
        n += 1;
    }
    let d = n.max(1) as f64;
    Ok(RankingMetrics {
        users: n,
        hr_at_10: hr / d,
        ndcg_at_10: ndcg / d,
        recall_at_20: rec / d,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file(content: &[u8]) -> Result<tempfile::NamedTempFile, std::io::Error> {
        let mut f = tempfile::NamedTempFile::new()?;
        f.write_all(content)?;
        Ok(f)
    }

    const HEADER: &str =
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n";

    #[test]
    fn empty_and_header_only_files_are_empty() -> Result<(), std::io::Error> {
        let f = file(b"")?;
        assert!(matches!(
            read_retail(f.path()),
            Err(EvalError::Empty { .. })
        ));
        let f = file(HEADER.as_bytes())?;
        assert!(matches!(
            read_retail(f.path()),
            Err(EvalError::Empty { .. })
        ));
        Ok(())
    }

    #[test]
    fn wrong_columns_name_the_missing_one() -> Result<(), std::io::Error> {
        let f = file(b"InvoiceNo,StockCode,Quantity\n1,A,2\n")?;
        match read_retail(f.path()) {
            Err(EvalError::MissingColumn {
                column, expected, ..
            }) => {
                assert_eq!(column, "Description");
                assert!(expected.contains("CustomerID"));
            }
            other => panic!("expected MissingColumn, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn binary_and_json_files_are_not_mistaken_for_data() -> Result<(), std::io::Error> {
        let f = file(&[0u8, 159, 146, 150, 255, 10, 1, 2])?;
        let r = read_retail(f.path());
        assert!(
            matches!(
                r,
                Err(EvalError::BadRow { .. } | EvalError::MissingColumn { .. })
            ),
            "{r:?}"
        );
        let f = file(b"{\"InvoiceNo\": 1}\n")?;
        assert!(matches!(
            read_retail(f.path()),
            Err(EvalError::MissingColumn { .. })
        ));
        // gzip magic with a corrupt body is an I/O error, not a panic.
        let f = file(&[0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5])?;
        let r = read_retail(f.path());
        assert!(
            matches!(r, Err(EvalError::Io { .. } | EvalError::BadRow { .. })),
            "{r:?}"
        );
        Ok(())
    }

    #[test]
    fn bad_fields_name_the_line() -> Result<(), std::io::Error> {
        let body = format!(
            "{HEADER}1,A,x,2,2011-01-01 10:00:00,1.0,5,UK\n2,B,y,two,2011-01-01 10:00:00,1.0,5,UK\n"
        );
        let f = file(body.as_bytes())?;
        match read_retail(f.path()) {
            Err(EvalError::BadRow { line, message, .. }) => {
                assert_eq!(line, 3);
                assert!(message.contains("Quantity"), "{message}");
            }
            other => panic!("expected BadRow, got {other:?}"),
        }
        let body = format!("{HEADER}1,A,x,2,yesterday,1.0,5,UK\n");
        let f = file(body.as_bytes())?;
        assert!(
            matches!(read_retail(f.path()), Err(EvalError::BadRow { message, .. }) if message.contains("InvoiceDate"))
        );
        let body = format!("{HEADER}1,A,x,2\n");
        let f = file(body.as_bytes())?;
        assert!(matches!(
            read_retail(f.path()),
            Err(EvalError::BadRow { .. })
        ));
        Ok(())
    }

    #[test]
    fn only_clean_product_lines_are_kept() -> Result<(), EvalError> {
        let body = format!(
            "{HEADER}1,A,Mug,2,2011-01-01 10:00:00,1.0,5,UK\nC2,A,Mug,-2,2011-01-02 10:00:00,1.0,5,UK\n3,POST,Postage,1,2011-01-01 10:00:00,9.0,5,UK\n4,A,Mug,1,2011-01-01 10:00:00,1.0,,UK\n5,B,,1,2011-01-01 10:00:00,0.0,6,UK\n6,gift_0001_10,Voucher,1,2011-01-01 10:00:00,10.0,6,UK\n"
        );
        let f = file(body.as_bytes()).map_err(|source| EvalError::Io {
            path: PathBuf::new(),
            source,
        })?;
        let d = read_retail(f.path())?;
        assert_eq!(d.rows, 6);
        assert_eq!(d.lines.len(), 1);
        assert_eq!(d.items, vec!["A"]);
        assert_eq!(d.descriptions, vec!["Mug"]);
        Ok(())
    }

    #[test]
    fn nothing_clean_is_unusable() -> Result<(), std::io::Error> {
        let body = format!("{HEADER}C1,A,Mug,-2,2011-01-02 10:00:00,1.0,5,UK\n");
        let f = file(body.as_bytes())?;
        assert!(matches!(
            read_retail(f.path()),
            Err(EvalError::Unusable { .. })
        ));
        Ok(())
    }

    #[test]
    fn gzip_files_are_read() -> Result<(), EvalError> {
        let body = format!("{HEADER}1,A,Mug,2,2011-01-01 10:00:00,1.0,5,UK\n");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let io = |source| EvalError::Io {
            path: PathBuf::new(),
            source,
        };
        enc.write_all(body.as_bytes()).map_err(io)?;
        let f = file(&enc.finish().map_err(io)?).map_err(io)?;
        assert_eq!(read_retail(f.path())?.lines.len(), 1);
        Ok(())
    }

    /// A small synthetic shop: two groups of customers with disjoint tastes, before and after the cut.
    fn shop() -> String {
        let mut s = String::from(HEADER);
        let mut inv = 100;
        for c in 0..40 {
            let group = c % 2;
            for (month, day) in [(3, 1), (6, 1), (8, 15), (10, 1)] {
                inv += 1;
                for k in 0..4 {
                    let item = group * 10 + (c + k + month) % 10;
                    s.push_str(&format!(
                        "{inv},I{item},ITEM {item} MUG,1,2011-{month:02}-{day:02} 10:00:00,1.0,{},UK\n",
                        1000 + c
                    ));
                }
            }
        }
        s
    }

    #[test]
    fn the_protocol_runs_on_a_synthetic_shop_and_beats_popularity() -> Result<(), EvalError> {
        let f = file(shop().as_bytes()).map_err(|source| EvalError::Io {
            path: PathBuf::new(),
            source,
        })?;
        let e = evaluate(f.path(), &EvalOptions::default())?;
        assert_eq!(e.task, "recommend");
        let get =
            |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        let pop = e
            .baseline
            .metrics
            .get("popularity")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        assert!(
            get(&e.metrics, "ndcg_at_10") > get(&pop, "ndcg_at_10"),
            "{e:?}"
        );
        assert!(e.metrics.get("new").and_then(Value::as_object).is_some());
        assert!(e.notes.iter().any(|n| n.contains("validation")));
        Ok(())
    }
}
