//! `sextant evaluate clv --data <file>`: BG/NBD, Pareto/NBD and Gamma-Gamma on a transaction log,
//! scored on a calibration/holdout split against the simpler NBD.
//!
//! Two file formats, told apart by their content (a gzip file is decompressed first):
//! - **CDNOW**: whitespace-separated `customer_id yyyymmdd quantity amount` (`CDNOW_master.txt`, an
//!   optional header line), or the 1/10 sample's `master_id sample_id yyyymmdd quantity amount`.
//!   Split: calibration = the first half of the observed days (first day + ⌊span/2⌋ days, inclusive),
//!   holdout = the rest, which is exactly CDNOW's 1997-01-01..1997-09-30 / 1997-10-01..1998-06-30.
//! - **Online Retail** CSV (plain or `.gz`): columns `InvoiceNo, Quantity, InvoiceDate, UnitPrice,
//!   CustomerID` (others ignored); clean rows as in ml-anchors §1 (CustomerID present, InvoiceNo not
//!   starting with `C`, Quantity > 0, UnitPrice > 0), amount = Quantity × UnitPrice. Split: holdout =
//!   the last 92 days up to the last purchase day, which is the anchor's cut 2011-09-08 / end
//!   2011-12-09 on the UCI file.
//!
//! Both: same-day purchases merged, weeks = days / 7, the cohort = customers first seen by the cut
//! (`sextant_models::clv::summary`). Metrics: each model's parameters and log-likelihood, the holdout
//! per-customer MAE / RMSE of E[X* | x, t_x, T, t*], the aggregate bias, the ROC-AUC of E[X*] for
//! "buys again in the holdout", predicted vs actual holdout revenue (E[X*] × Gamma-Gamma E[M]), a
//! 12-month CLV at 1 %/month (months converted to weeks explicitly), and the per-frequency holdout
//! table. The headline figures come from the model actually used (BG/NBD, or its fallback when it
//! degenerates, with a note); the baseline is the NBD (no dropout), which both models nest.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use serde_json::{Map, Value, json};
use sextant_models::clv::{
    self, CalibrationHoldout, ClvError, FitOutcome, GammaGammaParams, Horizon, PurchaseFits,
    PurchaseModel, Spend, Summary, SummaryBuilder, gamma_gamma,
};
use sextant_models::metrics::roc_auc;

use super::{Baseline, EvalError, EvalOptions, Evaluation, Task};

/// Online Retail columns the protocol reads.
const RETAIL_COLUMNS: [&str; 5] = [
    "InvoiceNo",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
];

/// Holdout length for Online Retail–format files (one quarter; the anchor's 2011-09-08..2011-12-09).
const RETAIL_HOLDOUT_DAYS: i64 = 92;

/// Highest calibration-frequency bin of the holdout table (`7+`).
const BIN_CAP: usize = 7;

/// The CLV horizon reported: 12 months at 1 % a month, for a model fitted in weeks.
const CLV_MONTHS: u32 = 12;
const CLV_MONTHLY_DISCOUNT: f64 = 0.01;

/// Which format the file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Cdnow,
    OnlineRetail,
}

/// A parsed log: the merged purchases and how it was read.
struct Log {
    format: Format,
    builder: SummaryBuilder,
    rows: usize,
}

/// Runs the clv protocol on `data`.
///
/// # Errors
/// See [`EvalError`]: unreadable file, empty, missing columns, a bad row, or data that cannot support
/// the split (nothing before or after the cut).
pub fn evaluate(data: &Path, options: &EvalOptions) -> Result<Evaluation, EvalError> {
    let progress = |m: &str| {
        if options.progress {
            eprintln!("clv: {m}");
        }
    };
    let log = read_log(data)?;
    progress(&format!(
        "read {} rows, {} purchases by {} customers ({:?} format)",
        log.rows,
        log.builder.transactions(),
        log.builder.customers(),
        log.format
    ));
    let (first, last) = log.builder.day_range().ok_or_else(|| EvalError::Empty {
        path: data.to_owned(),
    })?;
    let (cut, end) = match log.format {
        Format::Cdnow => (first + (last - first) / 2, last),
        Format::OnlineRetail => (last - RETAIL_HOLDOUT_DAYS, last),
    };
    let unusable = |message: String| EvalError::Unusable {
        path: data.to_owned(),
        message,
    };
    if cut <= first || cut >= last {
        return Err(unusable(format!(
            "purchases span {} to {}: too short for a calibration and a holdout period",
            date(first),
            date(last)
        )));
    }
    let split = log
        .builder
        .build(cut, end)
        .map_err(|e| unusable(e.to_string()))?;
    let protocol = protocol(log.format, first, cut, end, &split);
    progress(&protocol);
    let summaries: Vec<Summary> = split.customers.iter().map(|c| c.summary).collect();
    if summaries.iter().all(|s| s.x == 0.0) {
        return Err(unusable(
            "no customer bought twice in the calibration period: the purchase models need repeat purchases".into(),
        ));
    }
    let model_err = |e: ClvError| EvalError::Model {
        task: Task::Clv.name().into(),
        message: e.to_string(),
    };
    progress("fitting BG/NBD, Pareto/NBD and NBD");
    let fits = clv::fit_purchase_models(&summaries).map_err(model_err)?;
    let spends: Vec<Spend> = split
        .customers
        .iter()
        .map(|c| Spend {
            x: c.summary.x,
            mean: c.mean_repeat_spend,
        })
        .collect();
    progress("fitting Gamma-Gamma");
    let gg = gamma_gamma::fit(&spends);

    let t_star = split.holdout_weeks;
    let actual: Vec<f64> = split
        .customers
        .iter()
        .map(|c| c.holdout_purchases)
        .collect();
    let actual_spend: Vec<f64> = split.customers.iter().map(|c| c.holdout_spend).collect();
    let predict = |m: &PurchaseModel| -> Result<Vec<f64>, EvalError> {
        summaries
            .iter()
            .map(|s| m.conditional_expected_purchases(s, t_star))
            .collect::<Result<_, _>>()
            .map_err(model_err)
    };
    let bg_pred = predict(&PurchaseModel::BgNbd(fits.bgnbd.params))?;
    let pareto_pred = match &fits.pareto_nbd {
        Ok(p) => Some(predict(&PurchaseModel::ParetoNbd(p.params))?),
        Err(_) => None,
    };
    let nbd_pred = predict(&PurchaseModel::Nbd(fits.nbd.params))?;
    let chosen_pred = match fits.chosen {
        PurchaseModel::BgNbd(_) => bg_pred.clone(),
        PurchaseModel::ParetoNbd(_) => pareto_pred.clone().unwrap_or_default(),
        PurchaseModel::Nbd(_) => nbd_pred.clone(),
    };

    let mut notes = fits.notes.clone();
    if split.excluded_late_customers > 0 {
        notes.push(format!(
            "{} customers first bought after the cut and are not in the cohort",
            split.excluded_late_customers
        ));
    }
    // Expected spend per purchase (Gamma-Gamma), for revenue and CLV; reported as missing, not zero.
    let spend_per_purchase: Option<(GammaGammaParams, Vec<f64>)> = match &gg {
        Ok(fit) if fit.degenerate.is_none() => {
            let v: Result<Vec<f64>, ClvError> = spends
                .iter()
                .map(|s| fit.params.conditional_expected_spend(s))
                .collect();
            match v {
                Ok(v) => Some((fit.params, v)),
                Err(e) => {
                    notes.push(format!("no spend predictions: {e}"));
                    None
                }
            }
        }
        Ok(fit) => {
            notes.push(fit.degenerate.clone().unwrap_or_default());
            None
        }
        Err(e) => {
            notes.push(format!("Gamma-Gamma could not be fitted: {e}"));
            None
        }
    };
    let gg_fit = gg.as_ref().ok();

    let mut metrics = Map::new();
    metrics.insert("model".into(), json!(fits.chosen.name()));
    metrics.insert("customers".into(), json!(split.customers.len()));
    metrics.insert(
        "calibration_repeat_purchases".into(),
        json!(summaries.iter().map(|s| s.x).sum::<f64>()),
    );
    metrics.insert("holdout_weeks".into(), json!(round(t_star)));
    metrics.insert("bgnbd".into(), bgnbd_json(&fits, &bg_pred, &actual));
    metrics.insert(
        "pareto_nbd".into(),
        pareto_json(&fits, pareto_pred.as_deref(), &actual),
    );
    if let Some(fit) = gg_fit {
        metrics.insert(
            "gamma_gamma".into(),
            json!({
                "p": round(fit.params.p),
                "q": round(fit.params.q),
                "gamma": round(fit.params.gamma),
                "log_likelihood": round(fit.log_likelihood),
                "customers": spends.iter().filter(|s| s.x > 0.0 && s.mean > 0.0).count(),
            }),
        );
    }
    metrics.extend(holdout_metrics(&chosen_pred, &actual));
    if let Some((_, spend)) = &spend_per_purchase {
        metrics.insert(
            "revenue".into(),
            revenue_json(&chosen_pred, spend, &actual_spend),
        );
        let horizon = Horizon::weekly_model(CLV_MONTHS, CLV_MONTHLY_DISCOUNT);
        let mut values = Vec::with_capacity(summaries.len());
        for (s, m) in summaries.iter().zip(spend) {
            values.push(
                horizon
                    .discounted_value(*m, &|t| fits.chosen.conditional_expected_purchases(s, t))
                    .map_err(model_err)?,
            );
        }
        let total: f64 = values.iter().sum();
        metrics.insert(
            "clv".into(),
            json!({
                "months": CLV_MONTHS,
                "monthly_discount_rate": CLV_MONTHLY_DISCOUNT,
                "weeks_per_month": round(horizon.model_units_per_month),
                "mean": round(total / values.len() as f64),
                "total": round(total),
            }),
        );
    }
    let mut series: Vec<(&str, &[f64])> = vec![("actual", &actual), ("bgnbd", &bg_pred)];
    if let Some(p) = &pareto_pred {
        series.push(("pareto_nbd", p));
    }
    series.push(("nbd", &nbd_pred));
    let frequency: Vec<f64> = summaries.iter().map(|s| s.x).collect();
    let refs: Vec<&[f64]> = series.iter().map(|(_, v)| *v).collect();
    let bins = clv::frequency_bins(&frequency, &refs, BIN_CAP);
    let mut table = Map::new();
    table.insert(
        "frequency".into(),
        json!(bins.iter().map(|b| b.label.clone()).collect::<Vec<_>>()),
    );
    table.insert(
        "customers".into(),
        json!(bins.iter().map(|b| b.customers).collect::<Vec<_>>()),
    );
    for (j, (name, _)) in series.iter().enumerate() {
        table.insert(
            (*name).into(),
            json!(bins.iter().map(|b| round(b.means[j])).collect::<Vec<_>>()),
        );
    }
    metrics.insert("holdout_bins".into(), Value::Object(table));

    let mut baseline = Map::new();
    baseline.insert(
        "nbd".into(),
        json!({
            "r": round(fits.nbd.params.r),
            "alpha": round(fits.nbd.params.alpha),
            "log_likelihood": round(fits.nbd.log_likelihood),
        }),
    );
    baseline.extend(holdout_metrics(&nbd_pred, &actual));
    if let Some((_, spend)) = &spend_per_purchase {
        baseline.insert(
            "revenue".into(),
            revenue_json(&nbd_pred, spend, &actual_spend),
        );
    }

    let mut plots = Vec::new();
    if let Some(dir) = &options.plot_dir {
        let io = |source| EvalError::Io {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let names: Vec<&str> = series
            .iter()
            .map(|(n, _)| match *n {
                "bgnbd" => "BG/NBD",
                "pareto_nbd" => "Pareto/NBD",
                "nbd" => "NBD (no dropout)",
                other => other,
            })
            .collect();
        let svg = clv::plot::holdout_bins_svg(
            &bins,
            &names,
            &format!("Holdout purchases ({t_star:.1} weeks) by calibration frequency"),
            "repeat purchases in the calibration period",
        );
        let path = dir.join("clv_holdout_bins.svg");
        std::fs::write(&path, svg).map_err(|source| EvalError::Io {
            path: path.clone(),
            source,
        })?;
        plots.push(path);
    }

    Ok(Evaluation {
        task: Task::Clv.name().into(),
        data: data.display().to_string(),
        protocol,
        metrics,
        baseline: Baseline {
            name: "nbd".into(),
            metrics: baseline,
        },
        plots,
        notes,
    })
}

fn protocol(format: Format, first: i64, cut: i64, end: i64, split: &CalibrationHoldout) -> String {
    let source = match format {
        Format::Cdnow => "CDNOW log; calibration = first half of the observed days",
        Format::OnlineRetail => {
            "Online Retail CSV, clean rows (CustomerID, no C invoice, Quantity>0, UnitPrice>0), amount = Quantity*UnitPrice; holdout = last 92 days"
        }
    };
    format!(
        "{source}: calibration {}..{}, holdout {}..{} ({:.2} weeks); same-day purchases merged, weeks = days/7; \
         cohort = {} customers first seen by the cut; E[X*|x,t_x,T] vs holdout purchase days; baseline NBD (no dropout)",
        date(first),
        date(cut),
        date(cut + 1),
        date(end),
        split.holdout_weeks,
        split.customers.len()
    )
}

fn bgnbd_json(fits: &PurchaseFits, pred: &[f64], actual: &[f64]) -> Value {
    let f = &fits.bgnbd;
    let p = f.params;
    let mut v = json!({
        "r": round(p.r),
        "alpha": round(p.alpha),
        "a": round(p.a),
        "b": round(p.b),
        "log_likelihood": round(f.log_likelihood),
        "converged": f.converged,
        "holdout_mae": round(mae(pred, actual)),
    });
    add_degenerate(&mut v, f);
    v
}

fn pareto_json(fits: &PurchaseFits, pred: Option<&[f64]>, actual: &[f64]) -> Value {
    match (&fits.pareto_nbd, pred) {
        (Ok(f), Some(pred)) => {
            let p = f.params;
            let mut v = json!({
                "r": round(p.r),
                "alpha": round(p.alpha),
                "s": round(p.s),
                "beta": round(p.beta),
                "log_likelihood": round(f.log_likelihood),
                "converged": f.converged,
                "holdout_mae": round(mae(pred, actual)),
            });
            add_degenerate(&mut v, f);
            v
        }
        (Err(e), _) => json!({ "error": e.to_string() }),
        (Ok(_), None) => json!({ "error": "no predictions" }),
    }
}

fn add_degenerate<P>(v: &mut Value, f: &FitOutcome<P>) {
    if let (Some(obj), Some(why)) = (v.as_object_mut(), &f.degenerate) {
        obj.insert("degenerate".into(), json!(why));
    }
}

/// MAE, RMSE, totals, relative bias and the propensity AUC of per-customer predictions.
fn holdout_metrics(pred: &[f64], actual: &[f64]) -> Map<String, Value> {
    let n = actual.len().max(1) as f64;
    let rmse = (pred
        .iter()
        .zip(actual)
        .map(|(p, a)| (p - a).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    let predicted: f64 = pred.iter().sum();
    let total: f64 = actual.iter().sum();
    let labels: Vec<bool> = actual.iter().map(|&a| a > 0.0).collect();
    let mut m = Map::new();
    m.insert("holdout_mae".into(), json!(round(mae(pred, actual))));
    m.insert("holdout_rmse".into(), json!(round(rmse)));
    m.insert("holdout_predicted".into(), json!(round(predicted)));
    m.insert("holdout_actual".into(), json!(total));
    if total > 0.0 {
        m.insert(
            "holdout_bias".into(),
            json!(round((predicted - total) / total)),
        );
    }
    if let Some(auc) = roc_auc(pred, &labels) {
        m.insert("propensity_roc_auc".into(), json!(round(auc)));
    }
    m
}

fn revenue_json(pred: &[f64], spend: &[f64], actual: &[f64]) -> Value {
    let revenue: Vec<f64> = pred.iter().zip(spend).map(|(x, m)| x * m).collect();
    json!({
        "predicted": round(revenue.iter().sum::<f64>()),
        "actual": round(actual.iter().sum::<f64>()),
        "mae": round(mae(&revenue, actual)),
        "spearman": spearman(&revenue, actual).map(round),
    })
}

fn mae(pred: &[f64], actual: &[f64]) -> f64 {
    pred.iter()
        .zip(actual)
        .map(|(p, a)| (p - a).abs())
        .sum::<f64>()
        / actual.len().max(1) as f64
}

/// Spearman rank correlation with average ranks for ties; `None` when a side is constant.
fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

fn round(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e6).round() / 1e6
    } else {
        x
    }
}

fn date(day: i64) -> String {
    i32::try_from(day)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .map_or_else(|| format!("day {day}"), |d| d.to_string())
}

fn day_of(d: NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce())
}

/// Opens the file, decompressing gzip (told by its magic bytes), and reads it in its format.
fn read_log(path: &Path) -> Result<Log, EvalError> {
    let io = |source| EvalError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    let gz = file.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let raw: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut reader = BufReader::with_capacity(1 << 16, raw);
    let head = reader.fill_buf().map_err(io)?;
    if head.iter().all(u8::is_ascii_whitespace) {
        return Err(EvalError::Empty {
            path: path.to_owned(),
        });
    }
    let first_line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Ok(first_line) = std::str::from_utf8(&head[..first_line_end]) else {
        return Err(EvalError::Unusable {
            path: path.to_owned(),
            message: "not a text file: expected a CDNOW transaction log or an Online Retail CSV"
                .into(),
        });
    };
    if first_line.contains(',') {
        read_retail(path, reader)
    } else {
        read_cdnow(path, reader)
    }
}

fn read_cdnow(path: &Path, reader: impl BufRead) -> Result<Log, EvalError> {
    let mut builder = SummaryBuilder::new();
    let mut fields_per_row: Option<usize> = None;
    let mut rows = 0;
    for (i, line) in reader.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| EvalError::BadRow {
            path: path.to_owned(),
            line: line_no,
            message: format!("not text: {e}"),
        })?;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let bad = |message: String| EvalError::BadRow {
            path: path.to_owned(),
            line: line_no,
            message,
        };
        // lifetimes' copy of the master file starts with ` customer_id  date number_of_cds  dollar_value`.
        if rows == 0 && fields_per_row.is_none() && f.iter().all(|w| w.parse::<f64>().is_err()) {
            fields_per_row = Some(f.len());
            continue;
        }
        let n = *fields_per_row.get_or_insert(f.len());
        if f.len() != n || !(n == 4 || n == 5) {
            return Err(bad(format!(
                "expected 4 fields (customer_id yyyymmdd quantity amount) or 5 (master_id sample_id yyyymmdd quantity amount), found {}",
                f.len()
            )));
        }
        let (id, day, qty, amount) = if n == 4 {
            (f[0], f[1], f[2], f[3])
        } else {
            (f[0], f[2], f[3], f[4])
        };
        let date = NaiveDate::parse_from_str(day, "%Y%m%d")
            .map_err(|_| bad(format!("date {day:?} is not yyyymmdd")))?;
        qty.parse::<f64>()
            .map_err(|_| bad(format!("quantity {qty:?} is not a number")))?;
        let amount: f64 = amount
            .parse()
            .ok()
            .filter(|a: &f64| a.is_finite())
            .ok_or_else(|| bad(format!("amount {amount:?} is not a number")))?;
        builder.add(id, day_of(date), amount);
        rows += 1;
    }
    if rows == 0 {
        return Err(EvalError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(Log {
        format: Format::Cdnow,
        builder,
        rows,
    })
}

fn read_retail(path: &Path, reader: impl Read) -> Result<Log, EvalError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(reader);
    let csv_err = |e: csv::Error| {
        let line = e.position().map_or(0, |p| p.line() as usize);
        match e.into_kind() {
            csv::ErrorKind::Io(source) => EvalError::Io {
                path: path.to_owned(),
                source,
            },
            other => EvalError::BadRow {
                path: path.to_owned(),
                line,
                message: format!("not CSV: {other:?}"),
            },
        }
    };
    let header = rdr.headers().map_err(csv_err)?.clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().trim_start_matches('\u{feff}') == name)
    };
    let mut idx = [0usize; 5];
    for (k, name) in RETAIL_COLUMNS.iter().enumerate() {
        idx[k] = col(name).ok_or_else(|| EvalError::MissingColumn {
            path: path.to_owned(),
            column: (*name).to_owned(),
            expected: RETAIL_COLUMNS.join(", "),
        })?;
    }
    let [c_inv, c_qty, c_date, c_price, c_cust] = idx;
    let mut builder = SummaryBuilder::new();
    let mut rows = 0;
    let mut record = csv::StringRecord::new();
    while rdr.read_record(&mut record).map_err(csv_err)? {
        rows += 1;
        let line = record.position().map_or(rows + 1, |p| p.line() as usize);
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
        let (invoice, customer) = (field(c_inv), field(c_cust));
        if customer.is_empty() || invoice.starts_with('C') || qty <= 0.0 || price <= 0.0 {
            continue;
        }
        builder.add(customer, day_of(at.date()), qty * price);
    }
    if rows == 0 {
        return Err(EvalError::Empty {
            path: path.to_owned(),
        });
    }
    if builder.transactions() == 0 {
        return Err(EvalError::Unusable {
            path: path.to_owned(),
            message: format!(
                "none of the {rows} rows is a clean purchase (CustomerID present, InvoiceNo not starting with C, Quantity > 0, UnitPrice > 0)"
            ),
        });
    }
    Ok(Log {
        format: Format::OnlineRetail,
        builder,
        rows,
    })
}

fn parse_time(s: &str) -> Option<NaiveDateTime> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%m/%d/%Y %H:%M",
    ];
    FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn file(content: &[u8]) -> Result<tempfile::NamedTempFile, std::io::Error> {
        let mut f = tempfile::NamedTempFile::new()?;
        f.write_all(content)?;
        f.flush()?;
        Ok(f)
    }

    fn run(content: &[u8]) -> Result<Result<Evaluation, EvalError>, std::io::Error> {
        let f = file(content)?;
        Ok(evaluate(f.path(), &EvalOptions::default()))
    }

    /// A CDNOW-format log of 60 customers over 1997: regular buyers, lapsed buyers, one-timers.
    fn cdnow_like() -> String {
        let mut s = String::from(" customer_id  date number_of_cds  dollar_value\r\n");
        let start = NaiveDate::from_ymd_opt(1997, 1, 1).unwrap_or_default();
        for c in 0..60_i64 {
            let first = c % 20;
            let gap = 5 + (c * 7) % 40;
            let life = if c % 3 == 0 { 300 } else { 40 + (c * 13) % 200 };
            let mut d = first;
            while d <= first + life && d < 364 {
                let day = start + chrono::Days::new(d as u64);
                s.push_str(&format!(
                    " {:05} {} 1 {:.2}\r\n",
                    c + 1,
                    day.format("%Y%m%d"),
                    10.0 + (c % 9) as f64 * 3.5 + (d % 5) as f64
                ));
                d += gap;
            }
        }
        s
    }

    #[test]
    fn a_cdnow_log_runs_the_whole_protocol() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let f = file(cdnow_like().as_bytes())?;
        let options = EvalOptions {
            plot_dir: Some(dir.path().to_owned()),
            ..EvalOptions::default()
        };
        let e = evaluate(f.path(), &options)?;
        assert_eq!(e.task, "clv");
        assert!(
            e.protocol.contains("1997-01-01") && e.protocol.contains("CDNOW"),
            "{}",
            e.protocol
        );
        for key in [
            "bgnbd",
            "pareto_nbd",
            "holdout_mae",
            "holdout_bins",
            "customers",
        ] {
            assert!(e.metrics.contains_key(key), "{key}: {:?}", e.metrics);
        }
        assert_eq!(e.metrics["customers"], json!(60));
        assert!(e.baseline.metrics.contains_key("holdout_mae"));
        assert_eq!(e.baseline.name, "nbd");
        assert_eq!(e.plots.len(), 1);
        let svg = std::fs::read_to_string(&e.plots[0])?;
        assert!(svg.contains("<polyline") && svg.contains("BG/NBD"));
        Ok(())
    }

    #[test]
    fn the_sample_layout_with_five_fields_is_read() -> Result<(), Box<dyn std::error::Error>> {
        let five: String = cdnow_like()
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!(" {} {} {} {} {}\n", f[0], f[0], f[1], f[2], f[3])
            })
            .collect();
        let e = run(five.as_bytes())??;
        assert_eq!(e.metrics["customers"], json!(60));
        Ok(())
    }

    #[test]
    fn bad_files_name_the_problem() -> Result<(), std::io::Error> {
        assert!(matches!(run(b"")?, Err(EvalError::Empty { .. })));
        assert!(matches!(run(b" \n \n")?, Err(EvalError::Empty { .. })));
        assert!(matches!(
            run(b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,Country\n")?,
            Err(EvalError::MissingColumn { column, .. }) if column == "CustomerID"
        ));
        assert!(matches!(
            run(RETAIL_HEADER.as_bytes())?,
            Err(EvalError::Empty { .. })
        ));
        assert!(matches!(
            run(b" 00001 19970101 1 11.77\n 00002 1997-01-12 1 12.00\n")?,
            Err(EvalError::BadRow { line: 2, message, .. }) if message.contains("yyyymmdd")
        ));
        assert!(matches!(
            run(b" 00001 19970101 1 11.77\n 00002 19970112 1\n")?,
            Err(EvalError::BadRow { line: 2, message, .. }) if message.contains("found 3")
        ));
        assert!(matches!(
            run(b" 00001 19970101 1 abc\n")?,
            Err(EvalError::BadRow { line: 1, .. })
        ));
        assert!(matches!(
            run(&[0xff, 0xfe, 0x00, 0x41])?,
            Err(EvalError::Unusable { .. })
        ));
        // One day of purchases: no calibration/holdout split is possible.
        assert!(matches!(
            run(b" 00001 19970101 1 11.77\n 00002 19970101 1 12.00\n")?,
            Err(EvalError::Unusable { .. })
        ));
        // Nobody ever buys twice: the models have nothing to learn from.
        assert!(matches!(
            run(b" 00001 19970101 1 11.77\n 00002 19970301 1 12.00\n 00003 19970601 1 1.00\n")?,
            Err(EvalError::Unusable { message, .. }) if message.contains("twice")
        ));
        Ok(())
    }

    const RETAIL_HEADER: &str =
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n";

    #[test]
    fn retail_rows_are_cleaned_and_bad_fields_named() -> Result<(), Box<dyn std::error::Error>> {
        let mut s = String::from(RETAIL_HEADER);
        // Only dirty rows: cancellation, no customer, zero price, negative quantity.
        s.push_str("C1,A,\"x, y\",1,2011-01-01 10:00:00,1.0,1,UK\n");
        s.push_str("2,A,x,1,2011-01-01 10:00:00,1.0,,UK\n");
        s.push_str("3,A,x,1,2011-01-01 10:00:00,0,1,UK\n");
        s.push_str("4,A,x,-1,2011-01-01 10:00:00,1.0,1,UK\n");
        assert!(matches!(
            run(s.as_bytes())?,
            Err(EvalError::Unusable { .. })
        ));
        let bad = format!("{RETAIL_HEADER}5,A,x,1,yesterday,1.0,1,UK\n");
        assert!(matches!(
            run(bad.as_bytes())?,
            Err(EvalError::BadRow { line: 2, message, .. }) if message.contains("InvoiceDate")
        ));
        Ok(())
    }

    #[test]
    fn gzip_retail_files_use_the_last_quarter_as_holdout() -> Result<(), Box<dyn std::error::Error>>
    {
        let mut s = String::from(RETAIL_HEADER);
        // The file's first and last purchase days: 2011-01-01 and 2011-12-31.
        s.push_str("1,A,x,1,2011-01-01 09:00:00,1.0,99999,UK\n");
        s.push_str("2,A,x,1,2011-12-31 09:00:00,1.0,99999,UK\n");
        let start = NaiveDate::from_ymd_opt(2011, 1, 1).unwrap_or_default();
        for c in 0..40_i64 {
            let gap = 4 + (c * 5) % 30;
            let stop = if c % 4 == 0 { 360 } else { 60 + (c * 17) % 250 };
            let mut d = c % 25;
            while d <= stop && d < 365 {
                let day = start + chrono::Days::new(d as u64);
                // Two lines on the same invoice day: merged into one purchase.
                for item in 0..2 {
                    s.push_str(&format!(
                        "{},{item},thing,{},{} 12:00:00,{:.2},{},UK\n",
                        1000 + d,
                        1 + c % 3,
                        day,
                        2.5 + (c % 4) as f64,
                        12000 + c
                    ));
                }
                d += gap;
            }
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(s.as_bytes())?;
        let e = run(&enc.finish()?)??;
        assert!(e.protocol.contains("Online Retail"), "{}", e.protocol);
        // Last purchase day 2011-12-31 → cut 92 days earlier, 2011-09-30.
        assert!(
            e.protocol.contains("calibration 2011-01-01..2011-09-30"),
            "{}",
            e.protocol
        );
        assert!(e.metrics.contains_key("gamma_gamma"), "{:?}", e.metrics);
        assert!(e.metrics.contains_key("clv") && e.metrics.contains_key("revenue"));
        Ok(())
    }

    #[test]
    fn spearman_handles_ties_and_constants() {
        let r = spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]);
        assert!(r.is_some_and(|r| (r - 1.0).abs() < 1e-12));
        let r = spearman(&[1.0, 1.0, 2.0], &[3.0, 2.0, 1.0]);
        // ranks (1.5, 1.5, 3) vs (3, 2, 1): correlation -0.866.
        assert!(r.is_some_and(|r| (r + 0.866_025).abs() < 1e-5), "{r:?}");
        assert!(spearman(&[1.0, 1.0], &[1.0, 2.0]).is_none());
    }
}
