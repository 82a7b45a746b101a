//! `sextant evaluate churn` on the real Online Retail file (skipped visibly when it is absent) and on
//! bad files.

use std::io::Write as _;
use std::path::PathBuf;

use sextant_trainer::evaluate::churn::{ChurnConfig, evaluate_with};
use sextant_trainer::evaluate::{EvalError, EvalOptions, Evaluation};
use sextant_trainer::sequence_model::SequenceTrainConfig;

fn online_retail() -> Option<PathBuf> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/datasets/online_retail/online_retail.csv.gz"
    ));
    if path.exists() {
        Some(path)
    } else {
        eprintln!("SKIPPED: {} not found", path.display());
        None
    }
}

/// Fewer epochs and a smaller network than `sextant evaluate churn`, for the bad-file tests (which
/// fail before training); the protocol is the same.
fn quick() -> ChurnConfig {
    ChurnConfig {
        train: SequenceTrainConfig {
            hidden: 16,
            max_epochs: 6,
            patience: 2,
            ..SequenceTrainConfig::default()
        },
        ..ChurnConfig::default()
    }
}

/// A metric by dotted path (`bg_nbd.roc_auc`).
fn lookup(metrics: &serde_json::Map<String, serde_json::Value>, key: &str) -> f64 {
    serde_json::Value::Object(metrics.clone())
        .pointer(&format!("/{}", key.replace('.', "/")))
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(f64::NAN)
}

fn metric(e: &Evaluation, key: &str) -> f64 {
    lookup(&e.metrics, key)
}

fn baseline(e: &Evaluation, key: &str) -> f64 {
    lookup(&e.baseline.metrics, key)
}

#[test]
fn sequence_model_beats_logistic_regression_and_bgnbd_out_of_time_on_online_retail()
-> Result<(), EvalError> {
    let Some(data) = online_retail() else {
        return Ok(());
    };
    let plots = tempfile::tempdir().map_err(|source| EvalError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let options = EvalOptions {
        plot_dir: Some(plots.path().to_path_buf()),
        progress: true,
        ..EvalOptions::default()
    };
    // The settings `sextant evaluate churn` runs (rhythm aggregates, stacking layer), seed 42.
    let e = evaluate_with(&data, &options, &ChurnConfig::default())?;
    eprintln!("{}", e.table());
    // The population and label of ml-anchors §2b: 3,362 customers, 57.14 % buy in the holdout.
    assert_eq!(metric(&e, "n_test"), 3362.0);
    assert!(
        (metric(&e, "churn_rate") - (1.0 - 0.5714)).abs() < 5e-4,
        "{}",
        metric(&e, "churn_rate")
    );
    assert!(
        e.notes
            .iter()
            .any(|n| n.contains("last calibration day 2011-09-08")),
        "{:?}",
        e.notes
    );
    let (auc, lr_auc) = (metric(&e, "roc_auc"), baseline(&e, "roc_auc"));
    assert!(
        lr_auc > 0.7 && lr_auc < 0.9,
        "logistic baseline AUC {lr_auc}"
    );
    // The stacking layer was fitted on the validation cut-off and trusts the recurrent part
    // less than the linear one out of time (deep weight ≈ 0.5 on this file).
    let (deep, wide) = (metric(&e, "stack.deep"), metric(&e, "stack.wide"));
    assert!(
        deep > 0.0 && deep < wide,
        "stacking layer deep {deep} wide {wide}"
    );
    // The headline of the churn issue: out of time, the sequence model beats logistic regression
    // on RFM fitted on the same cut-offs. Seeds 42, 43 and 44 gave 0.7406, 0.7401 and 0.7390
    // against 0.7370 (smallest margin 0.0020); half of that margin is asserted.
    assert!(
        auc > lr_auc + 0.001,
        "sequence model AUC {auc} does not beat the same-run logistic regression on RFM {lr_auc}"
    );
    // The BTYD baseline is computed in the same run and lands near the anchor (0.7285).
    let btyd = e
        .metrics
        .get("baseline_bgnbd")
        .and_then(|b| b.get("roc_auc"))
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(f64::NAN);
    assert!((btyd - 0.7285).abs() < 0.01, "BTYD E[X*] AUC {btyd}");
    // The same figure is reported on the baseline side, next to the logistic regression.
    assert_eq!(baseline(&e, "bg_nbd.roc_auc"), btyd);
    assert!(
        auc > 0.7285,
        "GRU AUC {auc} does not beat the ml-anchors BG/NBD figure"
    );
    // The epoch was chosen on the validation cut-off, which has a usable AUC of its own.
    assert!(
        metric(&e, "valid_roc_auc") > 0.6,
        "{}",
        metric(&e, "valid_roc_auc")
    );
    eprintln!(
        "validation cut-off: sequence model {:.4} vs logistic regression {:.4}",
        metric(&e, "valid_roc_auc"),
        baseline(&e, "valid_roc_auc")
    );
    assert!(baseline(&e, "valid_roc_auc") > 0.6);
    assert!(auc > btyd, "GRU AUC {auc} does not beat BG/NBD {btyd}");
    for key in ["pr_auc", "log_loss", "calibration_error"] {
        assert!(
            metric(&e, key).is_finite() && baseline(&e, key).is_finite(),
            "{key}"
        );
    }
    assert!(metric(&e, "calibration_error") < 0.2);
    assert_eq!(e.plots.len(), 6);
    for p in &e.plots {
        let svg = std::fs::read_to_string(p).map_err(|source| EvalError::Io {
            path: p.clone(),
            source,
        })?;
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline"),
            "{}",
            p.display()
        );
    }
    Ok(())
}

fn write(name: &str, text: &str) -> Result<(tempfile::TempDir, PathBuf), std::io::Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(name);
    std::fs::File::create(&path)?.write_all(text.as_bytes())?;
    Ok((dir, path))
}

#[test]
fn a_missing_column_is_named() -> Result<(), std::io::Error> {
    let (_dir, path) = write(
        "no_country.csv",
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID\n536365,85123A,X,6,2010-12-01 08:26:00,2.55,17850\n",
    )?;
    let err = evaluate_with(&path, &EvalOptions::default(), &quick());
    let Err(EvalError::MissingColumn { column, .. }) = &err else {
        panic!("expected a missing column, got {err:?}");
    };
    assert_eq!(column, "Country");
    Ok(())
}

#[test]
fn an_empty_file_and_a_bad_row_are_refused() -> Result<(), std::io::Error> {
    let header =
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n";
    let (_dir, path) = write("empty.csv", header)?;
    let err = evaluate_with(&path, &EvalOptions::default(), &quick());
    assert!(matches!(err, Err(EvalError::Empty { .. })), "{err:?}");

    let text = format!(
        "{header}536365,85123A,X,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n536366,22633,Y,six,2010-12-01 08:28:00,1.85,17850,United Kingdom\n"
    );
    let (_dir, path) = write("bad.csv", &text)?;
    let err = evaluate_with(&path, &EvalOptions::default(), &quick());
    let Err(EvalError::BadRow { line, message, .. }) = &err else {
        panic!("expected a bad row, got {err:?}");
    };
    assert_eq!(*line, 3);
    assert!(message.contains("Quantity"), "{message}");

    let (_dir, path) = write("missing.csv", "")?;
    assert!(
        evaluate_with(
            &path.with_extension("nope"),
            &EvalOptions::default(),
            &quick()
        )
        .is_err()
    );
    Ok(())
}

#[test]
fn a_file_too_short_for_the_protocol_is_unusable() -> Result<(), std::io::Error> {
    let header =
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n";
    let text = format!(
        "{header}1,A,X,1,2011-01-01 10:00:00,2.0,1,UK\n2,A,X,1,2011-03-01 10:00:00,2.0,2,UK\n3,A,X,1,2011-05-01 10:00:00,2.0,1,UK\n"
    );
    let (_dir, path) = write("short.csv", &text)?;
    let err = evaluate_with(&path, &EvalOptions::default(), &quick());
    assert!(matches!(err, Err(EvalError::Unusable { .. })), "{err:?}");
    Ok(())
}
