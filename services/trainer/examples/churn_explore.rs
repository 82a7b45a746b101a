//! Compares settings of the churn protocol on one file, printing the validation-cut-off AUC each
//! setting chose its epochs by, next to the test AUC (`cargo run --release -p sextant-trainer
//! --example churn_explore -- FILE [NAME…]`). Settings are to be chosen by the validation
//! column; the test column is printed to report, not to choose.

use std::path::PathBuf;

use sextant_trainer::evaluate::EvalOptions;
use sextant_trainer::evaluate::churn::{ChurnConfig, evaluate_with};
use sextant_trainer::sequence_model::SequenceTrainConfig;

fn settings() -> Vec<(&'static str, ChurnConfig)> {
    let default = ChurnConfig::default();
    // The settings before the rhythm aggregates and the stacking layer (the first rows of the
    // module's table are relative to it).
    let plain = ChurnConfig {
        timing_aggregates: false,
        train: SequenceTrainConfig {
            stack: false,
            ..default.train.clone()
        },
        ..default.clone()
    };
    let t = plain.train.clone();
    let with = |train: SequenceTrainConfig| ChurnConfig {
        train,
        ..plain.clone()
    };
    let quick = SequenceTrainConfig {
        hidden: 16,
        max_epochs: 6,
        patience: 2,
        ..t.clone()
    };
    let timed = |train: SequenceTrainConfig| ChurnConfig {
        timing_aggregates: true,
        train,
        ..plain.clone()
    };
    vec![
        ("default", default.clone()),
        ("plain", plain.clone()),
        ("quick", with(quick.clone())),
        (
            "quick-ens5",
            with(SequenceTrainConfig {
                ensemble: 5,
                ..quick.clone()
            }),
        ),
        (
            "quick-weekly",
            ChurnConfig {
                cutoff_step_days: 7,
                max_training_cutoffs: 24,
                ..with(quick.clone())
            },
        ),
        (
            "quick-no-country",
            with(SequenceTrainConfig {
                min_category_count: usize::MAX,
                ..quick.clone()
            }),
        ),
        (
            "quick-lr5e-4",
            with(SequenceTrainConfig {
                max_epochs: 12,
                patience: 3,
                learning_rate: 5e-4,
                ..quick.clone()
            }),
        ),
        (
            "full-window-28d",
            ChurnConfig {
                cutoff_step_days: 28,
                max_training_cutoffs: 6,
                min_history_days: 28,
                ..plain.clone()
            },
        ),
        (
            "weekly-cutoffs",
            ChurnConfig {
                cutoff_step_days: 7,
                max_training_cutoffs: 24,
                ..plain.clone()
            },
        ),
        (
            "lr1e-3",
            with(SequenceTrainConfig {
                learning_rate: 1e-3,
                ..t.clone()
            }),
        ),
        (
            "deep-only",
            with(SequenceTrainConfig {
                wide: false,
                ..t.clone()
            }),
        ),
        (
            "hidden16",
            with(SequenceTrainConfig {
                hidden: 16,
                ..t.clone()
            }),
        ),
        (
            "stack",
            with(SequenceTrainConfig {
                stack: true,
                ..t.clone()
            }),
        ),
        (
            "rank",
            with(SequenceTrainConfig {
                rank_weight: 1.0,
                ..t.clone()
            }),
        ),
        ("timing", timed(t.clone())),
        (
            "timing-stack",
            timed(SequenceTrainConfig {
                stack: true,
                ..t.clone()
            }),
        ),
        (
            "timing-rank",
            timed(SequenceTrainConfig {
                rank_weight: 1.0,
                ..t.clone()
            }),
        ),
        (
            "stack-rank",
            with(SequenceTrainConfig {
                stack: true,
                rank_weight: 1.0,
                ..t.clone()
            }),
        ),
        (
            "timing-stack-rank",
            timed(SequenceTrainConfig {
                stack: true,
                rank_weight: 1.0,
                ..t.clone()
            }),
        ),
        (
            "quick-timing-stack",
            timed(SequenceTrainConfig {
                stack: true,
                ..quick.clone()
            }),
        ),
        (
            "default-ens3",
            ChurnConfig {
                train: SequenceTrainConfig {
                    ensemble: 3,
                    ..default.train.clone()
                },
                ..default.clone()
            },
        ),
    ]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(data) = args.next().map(PathBuf::from) else {
        eprintln!("usage: churn_explore FILE [NAME…]");
        std::process::exit(2);
    };
    let only: Vec<String> = args.collect();
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    let options = EvalOptions {
        progress: std::env::var_os("QUIET").is_none(),
        seed,
        ..EvalOptions::default()
    };
    for (name, config) in settings() {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let started = std::time::Instant::now();
        match evaluate_with(&data, &options, &config) {
            Ok(e) => {
                let get = |k: &str| e.metrics.get(k).and_then(serde_json::Value::as_f64);
                let lr = e
                    .baseline
                    .metrics
                    .get("roc_auc")
                    .and_then(serde_json::Value::as_f64);
                let lr_valid = e
                    .baseline
                    .metrics
                    .get("valid_roc_auc")
                    .and_then(serde_json::Value::as_f64);
                println!(
                    "{name:<24} seed {seed} valid {:.4} (LR {:.4})  test {:.4} (LR {:.4})  best epoch {:?}  stack {}  {:.0}s",
                    get("valid_roc_auc").unwrap_or(f64::NAN),
                    lr_valid.unwrap_or(f64::NAN),
                    get("roc_auc").unwrap_or(f64::NAN),
                    lr.unwrap_or(f64::NAN),
                    get("best_epoch"),
                    e.metrics
                        .get("stack")
                        .map_or_else(String::new, ToString::to_string),
                    started.elapsed().as_secs_f64()
                );
            }
            Err(e) => println!("{name:<16} error: {e}"),
        }
    }
}
