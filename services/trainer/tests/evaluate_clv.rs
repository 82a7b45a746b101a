//! `sextant evaluate clv` on the real files, checked against ml-anchors §2a (CDNOW) and §2b (Online
//! Retail). Each test skips, visibly, when its file is absent.

use std::path::PathBuf;

use serde_json::Value;
use sextant_trainer::evaluate::{EvalOptions, Evaluation, Task, run};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn dataset(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/datasets"
    ))
    .join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIPPED: {} not found", p.display());
        None
    }
}

fn num(e: &Evaluation, dotted: &str) -> f64 {
    let mut parts = dotted.split('.');
    let mut cur = parts.next().and_then(|k| e.metrics.get(k));
    for p in parts {
        cur = cur.and_then(|v| v.get(p));
    }
    cur.and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn base(e: &Evaluation, key: &str) -> f64 {
    e.baseline
        .metrics
        .get(key)
        .and_then(Value::as_f64)
        .unwrap_or(f64::NAN)
}

fn near(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: {got} vs {want} (±{tol})"
    );
}

#[test]
fn cdnow_sample_reproduces_the_btyd_holdout_anchors() -> TestResult {
    let Some(path) = dataset("cdnow/CDNOW_sample.txt") else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let options = EvalOptions {
        plot_dir: Some(dir.path().to_owned()),
        ..EvalOptions::default()
    };
    let e = run(Task::Clv, &path, &options)?;
    assert!(
        e.protocol.contains("calibration 1997-01-01..1997-09-30"),
        "{}",
        e.protocol
    );
    assert!(
        e.protocol.contains("holdout 1997-10-01..1998-06-30"),
        "{}",
        e.protocol
    );
    assert_eq!(e.metrics["model"], "bgnbd", "{:?}", e.notes);
    near(num(&e, "customers"), 2357.0, 0.0, "customers");
    near(num(&e, "holdout_weeks"), 39.0, 0.0, "t*");
    near(num(&e, "bgnbd.r"), 0.2426, 1e-3, "r");
    near(num(&e, "bgnbd.alpha"), 4.4137, 5e-3, "alpha");
    near(num(&e, "bgnbd.a"), 0.7930, 1e-3, "a");
    near(num(&e, "bgnbd.b"), 2.4262, 3e-3, "b");
    near(
        num(&e, "bgnbd.log_likelihood"),
        -9582.429,
        0.01,
        "BG/NBD LL",
    );
    near(
        num(&e, "pareto_nbd.log_likelihood"),
        -9594.976,
        0.02,
        "Pareto/NBD LL",
    );
    near(num(&e, "pareto_nbd.r"), 0.5533, 2e-3, "Pareto r");
    near(num(&e, "pareto_nbd.s"), 0.6062, 2e-3, "Pareto s");
    near(num(&e, "holdout_actual"), 1882.0, 0.0, "holdout purchases");
    near(
        num(&e, "holdout_predicted"),
        1653.4,
        0.5,
        "BG/NBD holdout total",
    );
    near(num(&e, "holdout_bias"), -0.121, 1e-3, "bias");
    near(num(&e, "holdout_mae"), 0.7855, 5e-4, "BG/NBD MAE");
    near(
        num(&e, "pareto_nbd.holdout_mae"),
        0.7545,
        5e-4,
        "Pareto/NBD MAE",
    );
    near(num(&e, "propensity_roc_auc"), 0.7725, 5e-4, "AUC");
    // The BTYD holdout table.
    let bins = &e.metrics["holdout_bins"];
    let actual: Vec<f64> = serde_json::from_value(bins["actual"].clone())?;
    let bg: Vec<f64> = serde_json::from_value(bins["bgnbd"].clone())?;
    let want_actual = [
        0.2367, 0.6970, 1.3925, 1.5600, 2.5323, 2.9474, 3.8621, 6.3594,
    ];
    let want_bg = [
        0.2251, 0.5231, 1.0441, 1.5203, 2.1638, 2.6538, 3.5040, 6.1570,
    ];
    for k in 0..8 {
        near(actual[k], want_actual[k], 1e-3, "actual bin");
        near(bg[k], want_bg[k], 1e-3, "BG/NBD bin");
    }
    // The richer model beats the baseline that has no dropout.
    assert!(
        num(&e, "holdout_mae") < base(&e, "holdout_mae"),
        "{:?}",
        e.baseline
    );
    assert_eq!(e.plots.len(), 1);
    assert!(std::fs::read_to_string(&e.plots[0])?.contains("Pareto/NBD"));
    Ok(())
}

#[test]
fn cdnow_master_uses_the_same_split() -> TestResult {
    let Some(path) = dataset("cdnow/CDNOW_master.txt") else {
        return Ok(());
    };
    let e = run(Task::Clv, &path, &EvalOptions::default())?;
    assert!(
        e.protocol.contains("calibration 1997-01-01..1997-09-30"),
        "{}",
        e.protocol
    );
    near(num(&e, "customers"), 23_570.0, 0.0, "the whole cohort");
    assert_eq!(e.metrics["model"], "bgnbd", "{:?}", e.notes);
    // The 1/10 sample's parameters describe the cohort too (FHL 2005 fit the sample).
    near(num(&e, "bgnbd.r"), 0.2426, 0.05, "r");
    near(num(&e, "bgnbd.a"), 0.7929, 0.2, "a");
    assert!(num(&e, "propensity_roc_auc") > 0.7);
    Ok(())
}

#[test]
fn online_retail_degenerates_to_no_dropout_and_says_so() -> TestResult {
    let Some(path) = dataset("online_retail/online_retail.csv.gz") else {
        return Ok(());
    };
    let e = run(Task::Clv, &path, &EvalOptions::default())?;
    assert!(
        e.protocol.contains("calibration 2010-12-01..2011-09-08"),
        "{}",
        e.protocol
    );
    assert!(
        e.protocol.contains("holdout 2011-09-09..2011-12-09"),
        "{}",
        e.protocol
    );
    near(num(&e, "customers"), 3362.0, 0.0, "customers");
    near(num(&e, "holdout_actual"), 4510.0, 0.0, "holdout purchases");
    // BG/NBD: a -> 0, b -> ∞, reported and not used.
    assert!(
        e.metrics["bgnbd"].get("degenerate").is_some(),
        "{:?}",
        e.metrics["bgnbd"]
    );
    assert!(
        e.notes.iter().any(|n| n.contains("BG/NBD degenerate")),
        "{:?}",
        e.notes
    );
    assert_ne!(e.metrics["model"], "bgnbd");
    near(
        num(&e, "bgnbd.log_likelihood"),
        -22758.27,
        0.05,
        "BG/NBD LL = NBD LL",
    );
    near(num(&e.clone(), "holdout_mae"), 0.9439, 2e-3, "MAE");
    near(num(&e, "holdout_predicted"), 3408.4, 2.0, "holdout total");
    near(num(&e, "propensity_roc_auc"), 0.7285, 2e-3, "AUC");
    near(base(&e, "holdout_mae"), 0.9439, 2e-3, "NBD MAE");
    near(num(&e, "gamma_gamma.p"), 2.3258, 0.01, "GG p");
    near(num(&e, "gamma_gamma.q"), 3.3626, 0.01, "GG q");
    near(num(&e, "gamma_gamma.gamma"), 417.26, 1.0, "GG gamma");
    near(
        num(&e, "gamma_gamma.customers"),
        1949.0,
        0.0,
        "GG customers",
    );
    near(
        num(&e, "revenue.actual"),
        2_870_995.0,
        1.0,
        "holdout revenue",
    );
    near(
        num(&e, "revenue.spearman"),
        0.5127,
        2e-3,
        "revenue Spearman",
    );
    Ok(())
}
