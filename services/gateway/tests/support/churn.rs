//! A production-sized sequence churn model with deterministic weights and materialised feature
//! rows to score with it: shared by the gateway's load benchmark and its tests.

#![allow(dead_code)]

use chrono::{NaiveDate, Utc};
use sextant_contracts::api::{BandThreshold, FeatureRow, HistoryStatus, RiskBand};
use sextant_contracts::{ModelVersion, SalesforceId};
use sextant_models::Dense;
use sextant_models::churn_serving::{
    MISSING_CATEGORY, Reference, SEQUENCE_KIND, SequenceChurnArtifact, ServedChurnModel,
    WEEK_BLOCKS, WeekBlock,
};
use sextant_models::sequence::{GruWeights, SequenceArtifact};

pub const WEEKS: usize = 104;
pub const HIDDEN: usize = 64;
pub const CHANNELS: [&str; 4] = ["orders", "spend", "items", "cases"];
pub const FEATURES: usize = 22;
pub const COUNTRIES: usize = 38;

/// Deterministic values in [-0.5, 0.5) scaled by `scale`.
pub fn pseudo(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s % 10_000) as f32 / 10_000.0 - 0.5) * scale
        })
        .collect()
}

pub fn dense(inputs: usize, outputs: usize, seed: u64) -> Dense {
    Dense {
        inputs,
        outputs,
        weights: pseudo(inputs * outputs, seed, 0.4),
        bias: pseudo(outputs, seed + 1, 0.1),
    }
}

pub fn feature_names() -> Vec<String> {
    (0..FEATURES).map(|i| format!("feature_{i}")).collect()
}

pub fn model(version: &str, seed: u64) -> ServedChurnModel {
    let c = CHANNELS.len();
    let embedding_dim = 4;
    let names = feature_names();
    let mut categories = vec![MISSING_CATEGORY.to_owned()];
    categories.extend((0..COUNTRIES).map(|i| format!("C{i}")));
    let network = SequenceArtifact {
        weeks: WEEKS,
        channel_names: CHANNELS.iter().map(|s| (*s).to_owned()).collect(),
        channel_means: vec![0.2; c],
        channel_stds: vec![1.0; c],
        gru: GruWeights {
            inputs: c,
            hidden: HIDDEN,
            w_x: pseudo(c * 3 * HIDDEN, seed, 0.3),
            b_x: pseudo(3 * HIDDEN, seed + 1, 0.1),
            w_h: pseudo(HIDDEN * 3 * HIDDEN, seed + 2, 0.2),
            b_h: pseudo(3 * HIDDEN, seed + 3, 0.1),
        },
        embedding: pseudo(categories.len() * embedding_dim, seed + 4, 0.2),
        categories,
        embedding_dim,
        aggregate_names: names.clone(),
        aggregate_means: vec![1.0; FEATURES],
        aggregate_stds: vec![2.0; FEATURES],
        aggregate_layer: dense(FEATURES, 16, seed + 5),
        head: vec![
            dense(HIDDEN + embedding_dim + 16, 32, seed + 7),
            dense(32, 1, seed + 9),
        ],
        wide: Some(dense(FEATURES, 1, seed + 11)),
    };
    let band = |name, min_score| BandThreshold { name, min_score };
    ServedChurnModel::Sequence(Box::new(SequenceChurnArtifact {
        kind: SEQUENCE_KIND.into(),
        version: ModelVersion::parse(version).expect("version"),
        feature_set: "rfmt-v2".into(),
        feature_names: names,
        sequence_channels: CHANNELS.iter().map(|s| (*s).to_owned()).collect(),
        sequence_weeks: WEEKS,
        category_attribute: "country".into(),
        signed_features: vec![],
        horizon_days: 90,
        bands: vec![
            band(RiskBand::High, 0.6),
            band(RiskBand::Medium, 0.3),
            band(RiskBand::Low, 0.0),
        ],
        reference: Reference {
            feature_typical: vec![1.0; FEATURES],
            week_blocks: WEEK_BLOCKS
                .iter()
                .map(|&(first, last)| WeekBlock {
                    name: format!("weeks_{}_{}", first + 1, last + 1),
                    first,
                    last,
                    typical_week: vec![0.3, 20.0, 2.0, 0.05],
                })
                .collect(),
        },
        network,
    }))
}

pub fn account(n: u64) -> SalesforceId {
    SalesforceId::from_parts("001", "lb", n)
}

/// The materialised row of account `n`: about a third of the weeks active.
pub fn row(id: &SalesforceId, n: u64) -> FeatureRow {
    let v = pseudo(FEATURES + WEEKS, n, 2.0);
    let features: Vec<f64> = v[..FEATURES]
        .iter()
        .map(|x| f64::from(x.abs() * 50.0))
        .collect();
    let sequence: Vec<Vec<f64>> = v[FEATURES..]
        .iter()
        .map(|x| {
            if *x > 0.33 {
                vec![1.0, f64::from(*x) * 200.0, 3.0, 0.0]
            } else {
                vec![0.0; CHANNELS.len()]
            }
        })
        .collect();
    FeatureRow {
        account_id: id.clone(),
        status: HistoryStatus::Ok,
        features: Some(features),
        sequence: Some(sequence),
        attributes: [("country".to_owned(), format!("C{}", n % COUNTRIES as u64))]
            .into_iter()
            .collect(),
        as_of: NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"),
        computed_at: Utc::now(),
    }
}
