//! Golden tests of the CLV models on CDNOW (ml-anchors §2a and §3 "Golden tests").
//!
//! They read `shared/datasets/cdnow/` next to the checkout and skip, visibly, when it is absent; the
//! logic itself is also covered by the fixed-value unit tests inside `sextant_models::clv`.

use std::path::PathBuf;

use sextant_models::clv::{
    self, BgNbdParams, GammaGammaParams, Horizon, PurchaseModel, Spend, Summary, SummaryBuilder,
    bgnbd, gamma_gamma, nbd, pareto_nbd,
};
use sextant_models::metrics::roc_auc;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn cdnow(file: &str) -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/datasets/cdnow"
    ))
    .join(file);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIPPED: {} not found", p.display());
        None
    }
}

/// `ID,frequency,recency,T` (or `ID,x,t_x,T,zbar`): the summaries and, when present, zbar.
fn read_summaries(path: &PathBuf) -> Result<(Vec<Summary>, Vec<f64>), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    let mut zbar = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<f64> = line
            .trim()
            .split(',')
            .map(str::parse::<f64>)
            .collect::<Result<_, _>>()?;
        out.push(Summary {
            x: f[1],
            t_x: f[2],
            t: f[3],
        });
        if let Some(z) = f.get(4) {
            zbar.push(*z);
        }
    }
    Ok((out, zbar))
}

/// Days since 1970-01-01 of a proleptic Gregorian yyyymmdd (H. Hinnant's days_from_civil).
fn day_number(yyyymmdd: i64) -> i64 {
    let (y, m, d) = (yyyymmdd / 10_000, yyyymmdd / 100 % 100, yyyymmdd % 100);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[test]
fn bgnbd_fit_and_likelihood_match_fhl_2005() -> TestResult {
    let Some(path) = cdnow("cdnow_customers_summary.csv") else {
        return Ok(());
    };
    let (data, _) = read_summaries(&path)?;
    assert_eq!(data.len(), 2357);
    let paper = BgNbdParams {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };
    let ll = paper.log_likelihood(&data);
    assert!(
        (ll - -9582.427).abs() < 0.01,
        "LL at the paper's params: {ll}"
    );
    let fit = bgnbd::fit(&data)?;
    assert!(fit.converged && fit.degenerate.is_none(), "{fit:?}");
    let p = fit.params;
    for (got, want) in [
        (p.r, 0.2426),
        (p.alpha, 4.4135),
        (p.a, 0.7929),
        (p.b, 2.4258),
    ] {
        // Four significant digits (the bar): within 5e-4 of the value, relatively.
        assert!((got - want).abs() <= 5e-4 * want, "{p:?}");
    }
    assert!(
        (fit.log_likelihood - -9582.43).abs() < 0.01,
        "{}",
        fit.log_likelihood
    );
    assert!((fit.log_likelihood - p.log_likelihood(&data)).abs() < 1e-6);
    Ok(())
}

#[test]
fn pareto_nbd_fit_matches_btyd() -> TestResult {
    let Some(path) = cdnow("cdnow_customers_summary.csv") else {
        return Ok(());
    };
    let (data, _) = read_summaries(&path)?;
    let fit = pareto_nbd::fit(&data)?;
    assert!(fit.converged && fit.degenerate.is_none(), "{fit:?}");
    let p = fit.params;
    // lifetimes' refit: 0.5533, 10.5774, 0.6062, 11.667; BTYD's LL −9594.976 (its own cbs).
    for (got, want, tol) in [
        (p.r, 0.5533, 2e-3),
        (p.alpha, 10.5774, 0.02),
        (p.s, 0.6062, 2e-3),
        (p.beta, 11.667, 0.05),
    ] {
        assert!((got - want).abs() < tol, "{p:?}");
    }
    assert!(
        (fit.log_likelihood - -9594.98).abs() < 0.01,
        "{}",
        fit.log_likelihood
    );
    // The NBD is nested in both: its likelihood is lower.
    let n = nbd::fit(&data)?;
    assert!(n.log_likelihood < fit.log_likelihood - 100.0, "{n:?}");
    Ok(())
}

#[test]
fn gamma_gamma_fit_and_spend_match_hardies_note() -> TestResult {
    let Some(path) = cdnow("cdnow_customers_summary_with_transactions.csv") else {
        return Ok(());
    };
    let (data, zbar) = read_summaries(&path)?;
    let spend: Vec<Spend> = data
        .iter()
        .zip(&zbar)
        .map(|(s, &m)| Spend { x: s.x, mean: m })
        .collect();
    let fit = gamma_gamma::fit(&spend)?;
    assert!(fit.converged && fit.degenerate.is_none(), "{fit:?}");
    let p = fit.params;
    // Four significant digits, as the issue asks: within 5e-4 of the value, relatively.
    for (got, want) in [(p.p, 6.2488), (p.q, 3.7446), (p.gamma, 15.4477)] {
        assert!((got - want).abs() <= 5e-4 * want, "{p:?}");
    }
    assert!(
        (fit.log_likelihood - -4055.92).abs() < 0.01,
        "{}",
        fit.log_likelihood
    );
    let want = [
        24.6586, 18.9115, 35.1710, 35.1710, 35.1710, 71.4629, 18.9115, 35.1710, 27.2824, 35.1710,
    ];
    for (i, w) in want.iter().enumerate() {
        let got = p.conditional_expected_spend(&spend[i])?;
        assert!((got - w).abs() < 0.01, "customer {}: {got} vs {w}", i + 1);
    }
    Ok(())
}

#[test]
fn discounted_clv_in_correct_units() -> TestResult {
    let (Some(sp), Some(tp)) = (
        cdnow("cdnow_customers_summary.csv"),
        cdnow("cdnow_customers_summary_with_transactions.csv"),
    ) else {
        return Ok(());
    };
    let (data, _) = read_summaries(&sp)?;
    let (_, zbar) = read_summaries(&tp)?;
    let bg = bgnbd::fit(&data)?.params;
    let gg = GammaGammaParams {
        p: 6.2488,
        q: 3.7446,
        gamma: 15.4477,
    };
    let value = |h: Horizon, i: usize| -> Result<f64, clv::ClvError> {
        let spend = gg.conditional_expected_spend(&Spend {
            x: data[i].x,
            mean: zbar[i],
        })?;
        h.discounted_value(spend, &|t| bg.conditional_expected_purchases(&data[i], t))
    };
    // lifetimes' doc example, freq='D' on weekly data: 30 "days" a month, i.e. 360 weeks. Reproduced
    // only to show the unit trap: the same call in correct units is below.
    let days = Horizon {
        months: 12,
        monthly_discount_rate: 0.01,
        model_units_per_month: 30.0,
    };
    for (i, want) in [
        (0, 140.096),
        (1, 18.943),
        (2, 38.181),
        (5, 1003.868),
        (8, 167.418),
    ] {
        let got = value(days, i)?;
        assert!(
            (got - want).abs() < 0.1,
            "customer {}: {got} vs {want}",
            i + 1
        );
    }
    // Unit-correct (lifetimes freq='W': 4.345 weeks a month): mean 30.34, total 71,509.9.
    let weeks = Horizon {
        months: 12,
        monthly_discount_rate: 0.01,
        model_units_per_month: 4.345,
    };
    let mut total = 0.0;
    for i in 0..data.len() {
        total += value(weeks, i)?;
    }
    assert!((total - 71_509.9).abs() < 15.0, "{total}");
    assert!((total / data.len() as f64 - 30.34).abs() < 0.01, "{total}");
    Ok(())
}

#[test]
fn holdout_table_from_the_raw_transaction_log() -> TestResult {
    let Some(path) = cdnow("CDNOW_sample.txt") else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)?;
    let mut b = SummaryBuilder::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        b.add(f[1], day_number(f[2].parse()?), f[4].parse()?);
    }
    assert_eq!(b.transactions(), 6919);
    let split = b.build(day_number(19970930), day_number(19980630))?;
    assert_eq!(split.customers.len(), 2357);
    assert_eq!(split.holdout_weeks, 39.0);
    let data: Vec<Summary> = split.customers.iter().map(|c| c.summary).collect();
    let actual: Vec<f64> = split
        .customers
        .iter()
        .map(|c| c.holdout_purchases)
        .collect();
    assert_eq!(data.iter().map(|s| s.x).sum::<f64>(), 2457.0);
    assert_eq!(actual.iter().sum::<f64>(), 1882.0);

    let fits = clv::fit_purchase_models(&data)?;
    assert!(
        matches!(fits.chosen, PurchaseModel::BgNbd(_)),
        "{:?}",
        fits.notes
    );
    // BTYD's own fit on this cbs.
    let p = fits.bgnbd.params;
    assert!(
        (p.r - 0.2426).abs() < 1e-3 && (p.b - 2.4262).abs() < 3e-3,
        "{p:?}"
    );
    assert!((fits.bgnbd.log_likelihood - -9582.429).abs() < 0.01);
    let Ok(pareto) = &fits.pareto_nbd else {
        panic!("Pareto/NBD failed: {:?}", fits.pareto_nbd);
    };
    assert!(
        (pareto.log_likelihood - -9594.976).abs() < 0.02,
        "{pareto:?}"
    );

    let t = split.holdout_weeks;
    let bg: Vec<f64> = data
        .iter()
        .map(|s| fits.bgnbd.params.conditional_expected_purchases(s, t))
        .collect::<Result<_, _>>()?;
    let pn: Vec<f64> = data
        .iter()
        .map(|s| pareto.params.conditional_expected_purchases(s, t))
        .collect::<Result<_, _>>()?;
    let freq: Vec<f64> = data.iter().map(|s| s.x).collect();
    let bins = clv::frequency_bins(&freq, &[&actual, &bg, &pn], 7);
    let sizes = [1411, 439, 214, 100, 62, 38, 29, 64];
    let want_actual = [
        0.2367, 0.6970, 1.3925, 1.5600, 2.5323, 2.9474, 3.8621, 6.3594,
    ];
    let want_bg = [
        0.2251, 0.5231, 1.0441, 1.5203, 2.1638, 2.6538, 3.5040, 6.1570,
    ];
    let want_pn = [0.138, 0.600, 1.196, 1.714, 2.399, 2.907, 3.819, 6.403];
    for (k, bin) in bins.iter().enumerate() {
        assert_eq!(bin.customers, sizes[k], "bin {}", bin.label);
        assert!((bin.means[0] - want_actual[k]).abs() < 1e-3, "{bin:?}");
        assert!((bin.means[1] - want_bg[k]).abs() < 1e-3, "{bin:?}");
        assert!((bin.means[2] - want_pn[k]).abs() < 2e-3, "{bin:?}");
    }
    let total_bg: f64 = bg.iter().sum();
    let total_pn: f64 = pn.iter().sum();
    assert!(
        (total_bg - 1653.4).abs() < 0.5 && (total_pn - 1665.5).abs() < 0.5,
        "{total_bg} {total_pn}"
    );
    let mae = |pred: &[f64]| {
        pred.iter()
            .zip(&actual)
            .map(|(p, a)| (p - a).abs())
            .sum::<f64>()
            / actual.len() as f64
    };
    assert!((mae(&bg) - 0.7855).abs() < 5e-4, "{}", mae(&bg));
    assert!((mae(&pn) - 0.7545).abs() < 5e-4, "{}", mae(&pn));
    let any: Vec<bool> = actual.iter().map(|&a| a > 0.0).collect();
    let auc = roc_auc(&bg, &any).unwrap_or(0.0);
    assert!((auc - 0.7725).abs() < 5e-4, "{auc}");
    Ok(())
}
