//! Compares settings of the churn protocol on one file, printing the validation-cut-off AUC each
//! setting chose its epochs by, next to the test AUC (`cargo run --release -p sextant-trainer
//! --example churn_explore -- FILE [NAME…]`). Settings are to be chosen by the validation
//! column; the test column is printed to report, not to choose.

use std::path::PathBuf;

use sextant_trainer::evaluate::EvalOptions;
use sextant_trainer::evaluate::churn::{ChurnConfig, evaluate_with};
use sextant_trainer::sequence_model::SequenceTrainConfig;

fn settings() -> Vec<(&'static str, ChurnConfig)> {
    let base = ChurnConfig::default();
    let t = base.train.clone();
    let with = |train: SequenceTrainConfig| ChurnConfig {
        train,
        ..base.clone()
    };
    vec![
        ("default", base.clone()),
        (
            "quick",
            with(SequenceTrainConfig {
                hidden: 16,
                max_epochs: 6,
                patience: 2,
                ..t.clone()
            }),
        ),
        (
            "quick-ens5",
            with(SequenceTrainConfig {
                hidden: 16,
                max_epochs: 6,
                patience: 2,
                ensemble: 5,
                ..t.clone()
            }),
        ),
        (
            "quick-weekly",
            ChurnConfig {
                cutoff_step_days: 7,
                max_training_cutoffs: 24,
                train: SequenceTrainConfig {
                    hidden: 16,
                    max_epochs: 6,
                    patience: 2,
                    ..t.clone()
                },
                ..base.clone()
            },
        ),
        (
            "quick-no-country",
            with(SequenceTrainConfig {
                hidden: 16,
                max_epochs: 6,
                patience: 2,
                min_category_count: usize::MAX,
                ..t.clone()
            }),
        ),
        (
            "quick-lr5e-4",
            with(SequenceTrainConfig {
                hidden: 16,
                max_epochs: 12,
                patience: 3,
                learning_rate: 5e-4,
                ..t.clone()
            }),
        ),
        (
            "full-window-28d",
            ChurnConfig {
                cutoff_step_days: 28,
                max_training_cutoffs: 6,
                min_history_days: 28,
                ..base.clone()
            },
        ),
        (
            "weekly-cutoffs",
            ChurnConfig {
                cutoff_step_days: 7,
                max_training_cutoffs: 24,
                ..base.clone()
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
    ]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(data) = args.next().map(PathBuf::from) else {
        eprintln!("usage: churn_explore FILE [NAME…]");
        std::process::exit(2);
    };
    let only: Vec<String> = args.collect();
    let options = EvalOptions {
        progress: true,
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
                println!(
                    "{name:<16} valid {:.4}  test {:.4}  (LR {:.4})  best epoch {:?}  {:.0}s",
                    get("valid_roc_auc").unwrap_or(f64::NAN),
                    get("roc_auc").unwrap_or(f64::NAN),
                    lr.unwrap_or(f64::NAN),
                    get("best_epoch"),
                    started.elapsed().as_secs_f64()
                );
            }
            Err(e) => println!("{name:<16} error: {e}"),
        }
    }
}
