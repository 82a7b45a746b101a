//! Sentiment of support text (Case subject and description): the learned model's artefact and
//! its plain-Rust forward pass, the VADER lexicon scorer, and the metrics of the task.
//!
//! Why plain Rust: the gateway and the feature store score case text; neither may pull in Burn.
//! The trainer fits the model with Burn and exports it here; its tests check that this forward
//! pass agrees with Burn's to 1e-4.
//!
//! The model is a fastText-style bag of hashed n-gram embeddings ([`text`]) next to VADER's
//! lexicon scores ([`vader`]): `bag = Σ wᵢ·E[idᵢ]`, `x = [bag, standardised lexicon features]`,
//! then dense layers (ReLU between) to 4 outputs: logits of negative/neutral/positive and an
//! intensity `tanh(o₃)` on VADER's scale divided by 4 (−1 … +1).
//!
//! # Layout
//! - [`text`]: tokeniser and hashed features.
//! - [`vader`]: the lexicon scorer; also the explicit no-model scorer ([`score_with_lexicon`]).
//! - [`metrics`]: weighted/macro/micro F1 and Pearson's r.

pub mod metrics;
pub mod text;
pub mod vader;

use serde::{Deserialize, Serialize};
use sextant_contracts::api::WordFactor;

use crate::artifact::Dense;
pub use text::{FeatureConfig, HashedFeatures, hashed_features, tokenize};
pub use vader::{Lexicon, LexiconError, VaderScores};

/// A normalised intensity above this is positive, below its negative is negative (VADER's rule,
/// used for the gold labels too: `mean rating / 4`).
pub const NEUTRAL_BAND: f64 = 0.05;

/// Number of lexicon-derived inputs of the model (see [`lexicon_features`]).
pub const LEXICON_FEATURES: usize = 6;

/// Outputs of the last layer: three class logits and the intensity.
pub const OUTPUTS: usize = 4;

/// The three sentiment classes, in the model's output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SentimentClass {
    /// Intensity below −0.05.
    Negative = 0,
    /// Intensity within ±0.05.
    Neutral = 1,
    /// Intensity above 0.05.
    Positive = 2,
}

impl SentimentClass {
    /// All classes in output order.
    pub const ALL: [Self; 3] = [Self::Negative, Self::Neutral, Self::Positive];

    /// The class of a normalised intensity in `[-1, 1]`.
    #[must_use]
    pub fn from_intensity(intensity: f64) -> Self {
        if intensity > NEUTRAL_BAND {
            Self::Positive
        } else if intensity < -NEUTRAL_BAND {
            Self::Negative
        } else {
            Self::Neutral
        }
    }

    /// The class's index in the model's output.
    #[must_use]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Negative => "negative",
            Self::Neutral => "neutral",
            Self::Positive => "positive",
        }
    }
}

/// Where a sentiment came from: a trained model or the lexicon rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SentimentSource {
    /// A trained [`SentimentArtifact`].
    Model,
    /// The VADER lexicon scorer (no model).
    Lexicon,
}

/// Distinct words [`SentimentArtifact::explain_validated`] leaves out one at a time (in order of
/// appearance): bounds the cost of explaining a long text to this many extra passes.
pub const MAX_OCCLUDED_WORDS: usize = 48;

/// The sentiment of one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sentiment {
    /// The most likely class.
    pub label: SentimentClass,
    /// Probability of negative, neutral, positive (the lexicon scorer gives a one-hot vector).
    pub probabilities: [f64; 3],
    /// Normalised intensity in `[-1, 1]` (mean rating / 4; VADER's compound for the lexicon).
    pub intensity: f64,
    /// Which scorer produced it.
    pub source: SentimentSource,
}

/// Why a sentiment artefact cannot score.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SentimentError {
    /// The artefact's shapes or feature scheme do not fit together.
    #[error("inconsistent sentiment artefact: {0}")]
    Inconsistent(String),
    /// The lexicon could not be loaded.
    #[error(transparent)]
    Lexicon(#[from] LexiconError),
}

/// The lexicon-derived model inputs of a text: VADER's compound, pos, neg and neu, whether a
/// negation word occurs, and `ln(1 + tokens)`.
#[must_use]
pub fn lexicon_features(scores: &VaderScores, tokens: &[String]) -> [f32; LEXICON_FEATURES] {
    let negation = tokens.iter().any(|t| vader::is_negation(t) || t == "no");
    [
        scores.compound as f32,
        scores.pos as f32,
        scores.neg as f32,
        scores.neu as f32,
        f32::from(u8::from(negation)),
        (tokens.len() as f32).ln_1p(),
    ]
}

/// A text turned into model inputs (before the lexicon features are standardised).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EncodedText {
    /// Hashed n-gram rows and weights.
    pub hashed: HashedFeatures,
    /// Raw lexicon features.
    pub lexicon: [f32; LEXICON_FEATURES],
    /// VADER's scores (kept for reporting).
    pub vader: VaderScores,
}

/// Encodes `text` for the model. Training and serving both go through this.
#[must_use]
pub fn encode(text: &str, config: &FeatureConfig, lexicon: &Lexicon) -> EncodedText {
    let tokens = tokenize(text);
    let vader = lexicon.polarity_scores(text);
    EncodedText {
        hashed: hashed_features(&tokens, config),
        lexicon: lexicon_features(&vader, &tokens),
        vader,
    }
}

/// Scores `text` with the lexicon rules alone: the scorer to call, explicitly, when no model is
/// trained. The label follows VADER's ±0.05 rule on `compound`.
///
/// # Errors
/// Only if the embedded lexicon were corrupt.
pub fn score_with_lexicon(text: &str) -> Result<Sentiment, SentimentError> {
    let compound = Lexicon::vader()?.polarity_scores(text).compound;
    let label = SentimentClass::from_intensity(compound);
    let mut probabilities = [0.0; 3];
    probabilities[label.index()] = 1.0;
    Ok(Sentiment {
        label,
        probabilities,
        intensity: compound,
        source: SentimentSource::Lexicon,
    })
}

/// A trained sentiment model, ready to score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SentimentArtifact {
    /// e.g. `sentiment-v1`.
    pub version: String,
    /// How texts become hashed features.
    pub features: FeatureConfig,
    /// Width of an embedding row.
    pub dim: usize,
    /// Buckets whose embedding row is not zero, ascending. Rows start at zero and only rows of
    /// features seen in training move, so the artefact grows with the training vocabulary,
    /// not with the table.
    pub rows: Vec<u32>,
    /// The rows' vectors, `rows.len() × dim`, row-major.
    pub vectors: Vec<f32>,
    /// Mean of each lexicon feature over the training texts.
    pub lexicon_means: Vec<f32>,
    /// Standard deviation of each lexicon feature over the training texts (never 0).
    pub lexicon_stds: Vec<f32>,
    /// Dense layers from `[bag, lexicon]` to [`OUTPUTS`]; ReLU between them.
    pub layers: Vec<Dense>,
}

impl SentimentArtifact {
    /// Checks the feature scheme and that the shapes chain.
    ///
    /// # Errors
    /// [`SentimentError::Inconsistent`] naming what does not fit.
    pub fn validate(&self) -> Result<(), SentimentError> {
        let bad = |m: String| Err(SentimentError::Inconsistent(m));
        if self.features.scheme != text::SCHEME {
            return bad(format!(
                "feature scheme `{}`, this build implements `{}`",
                self.features.scheme,
                text::SCHEME
            ));
        }
        if self.features.buckets == 0 || self.dim == 0 {
            return bad("buckets and dim must be positive".into());
        }
        if self.vectors.len() != self.rows.len() * self.dim {
            return bad(format!(
                "{} vectors for {} rows of width {}",
                self.vectors.len(),
                self.rows.len(),
                self.dim
            ));
        }
        if self.rows.windows(2).any(|w| w[0] >= w[1])
            || self
                .rows
                .last()
                .is_some_and(|&r| r >= self.features.buckets)
        {
            return bad("rows must be ascending and below `buckets`".into());
        }
        if self.lexicon_means.len() != LEXICON_FEATURES
            || self.lexicon_stds.len() != LEXICON_FEATURES
            || !self.lexicon_stds.iter().all(|s| s.is_finite() && *s > 0.0)
        {
            return bad(format!(
                "lexicon normalisation must have {LEXICON_FEATURES} entries with positive spread"
            ));
        }
        let mut width = self.dim + LEXICON_FEATURES;
        for (i, l) in self.layers.iter().enumerate() {
            if l.inputs != width
                || l.weights.len() != l.inputs * l.outputs
                || l.bias.len() != l.outputs
            {
                return bad(format!("layer {i} does not fit"));
            }
            width = l.outputs;
        }
        if self.layers.is_empty() || width != OUTPUTS {
            return bad(format!("the last layer must have {OUTPUTS} outputs"));
        }
        Ok(())
    }

    /// The model input `[bag, standardised lexicon features]` of an encoded text.
    #[must_use]
    pub fn input(&self, encoded: &EncodedText) -> Vec<f32> {
        let mut x = vec![0.0f32; self.dim + LEXICON_FEATURES];
        for (&id, &w) in encoded.hashed.ids.iter().zip(&encoded.hashed.weights) {
            if let Ok(k) = self.rows.binary_search(&id) {
                let row = &self.vectors[k * self.dim..(k + 1) * self.dim];
                for (xi, e) in x.iter_mut().zip(row) {
                    *xi += w * e;
                }
            }
        }
        for (j, v) in encoded.lexicon.iter().enumerate() {
            x[self.dim + j] = (v - self.lexicon_means[j]) / self.lexicon_stds[j];
        }
        x
    }

    /// The raw outputs (three logits, pre-tanh intensity) of an encoded text.
    ///
    /// # Errors
    /// [`SentimentError::Inconsistent`] when the artefact does not validate.
    pub fn outputs(&self, encoded: &EncodedText) -> Result<[f32; OUTPUTS], SentimentError> {
        self.validate()?;
        Ok(self.outputs_unchecked(encoded))
    }

    fn outputs_unchecked(&self, encoded: &EncodedText) -> [f32; OUTPUTS] {
        let mut x = self.input(encoded);
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            x = dense_forward(layer, &x);
            if i < last {
                x.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        let mut out = [0.0; OUTPUTS];
        out.iter_mut().zip(&x).for_each(|(o, v)| *o = *v);
        out
    }

    /// The sentiment of an encoded text.
    ///
    /// # Errors
    /// [`SentimentError::Inconsistent`] when the artefact does not validate.
    pub fn predict_encoded(&self, encoded: &EncodedText) -> Result<Sentiment, SentimentError> {
        self.validate()?;
        Ok(self.sentiment_of(self.outputs_unchecked(encoded)))
    }

    /// The sentiments of many encoded texts (validates once).
    ///
    /// # Errors
    /// [`SentimentError::Inconsistent`] when the artefact does not validate.
    pub fn predict_encoded_many(
        &self,
        encoded: &[&EncodedText],
    ) -> Result<Vec<Sentiment>, SentimentError> {
        self.validate()?;
        Ok(encoded
            .iter()
            .map(|e| self.sentiment_of(self.outputs_unchecked(e)))
            .collect())
    }

    /// The sentiment of many texts (validates once; the shipped VADER lexicon).
    ///
    /// # Errors
    /// [`SentimentError`] when the artefact does not validate or the lexicon cannot load.
    pub fn predict_many<S: AsRef<str>>(
        &self,
        texts: &[S],
    ) -> Result<Vec<Sentiment>, SentimentError> {
        self.validate()?;
        let lexicon = Lexicon::vader()?;
        Ok(texts
            .iter()
            .map(|t| {
                let encoded = encode(t.as_ref(), &self.features, lexicon);
                self.sentiment_of(self.outputs_unchecked(&encoded))
            })
            .collect())
    }

    /// The sentiment of `text` by an artefact [`Self::validate`] has already accepted: a server
    /// validates once when it loads the model, not once per text (validation walks every row).
    ///
    /// # Errors
    /// Only if the embedded lexicon were corrupt.
    ///
    /// # Panics
    /// May panic on an artefact that does not validate; validate it first.
    pub fn predict_validated(&self, text: &str) -> Result<Sentiment, SentimentError> {
        let encoded = encode(text, &self.features, Lexicon::vader()?);
        Ok(self.sentiment_of(self.outputs_unchecked(&encoded)))
    }

    /// The sentiment of `text`.
    ///
    /// # Errors
    /// See [`Self::predict_many`].
    pub fn predict(&self, text: &str) -> Result<Sentiment, SentimentError> {
        let mut v = self.predict_many(&[text])?;
        v.pop()
            .ok_or_else(|| SentimentError::Inconsistent("no output".into()))
    }

    /// The sentiment of `text` and the words that moved its intensity most (at most `k`,
    /// strongest first), by occlusion: each distinct word (the first [`MAX_OCCLUDED_WORDS`], in
    /// order of appearance) is left out everywhere and the text scored again; a word's effect is
    /// the intensity with it minus without it. Both sides are scored on the text re-joined from
    /// its words, so whitespace never counts as an effect. Effects under 0.01 are not reported.
    ///
    /// # Errors
    /// As [`Self::predict_validated`].
    pub fn explain_validated(
        &self,
        text: &str,
        k: usize,
    ) -> Result<(Sentiment, Vec<WordFactor>), SentimentError> {
        let lexicon = Lexicon::vader()?;
        let sentiment =
            self.sentiment_of(self.outputs_unchecked(&encode(text, &self.features, lexicon)));
        let tokens: Vec<&str> = text.split_whitespace().collect();
        let key = |t: &str| {
            t.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
                .to_lowercase()
        };
        let mut words: Vec<String> = Vec::new();
        for t in &tokens {
            let w = key(t);
            if !w.is_empty() && !words.contains(&w) {
                words.push(w);
                if words.len() == MAX_OCCLUDED_WORDS {
                    break;
                }
            }
        }
        let intensity = |s: &str| {
            f64::from(self.outputs_unchecked(&encode(s, &self.features, lexicon))[3]).tanh()
        };
        let base = intensity(&tokens.join(" "));
        let mut factors: Vec<WordFactor> = words
            .into_iter()
            .map(|w| {
                let without: Vec<&str> = tokens.iter().copied().filter(|t| key(t) != w).collect();
                let effect = base - intensity(&without.join(" "));
                let text = format!(
                    "\"{w}\" makes it read more {}",
                    if effect < 0.0 { "negative" } else { "positive" }
                );
                WordFactor {
                    word: w,
                    effect,
                    text,
                }
            })
            .filter(|f| f.effect.abs() >= 0.01)
            .collect();
        factors.sort_by(|a, b| b.effect.abs().total_cmp(&a.effect.abs()));
        factors.truncate(k);
        Ok((sentiment, factors))
    }

    fn sentiment_of(&self, out: [f32; OUTPUTS]) -> Sentiment {
        let probabilities = softmax3([out[0], out[1], out[2]]);
        let mut label = SentimentClass::Negative;
        for c in SentimentClass::ALL {
            if probabilities[c.index()] > probabilities[label.index()] {
                label = c;
            }
        }
        Sentiment {
            label,
            probabilities,
            intensity: f64::from(out[3]).tanh(),
            source: SentimentSource::Model,
        }
    }
}

fn dense_forward(layer: &Dense, x: &[f32]) -> Vec<f32> {
    let mut y = layer.bias.clone();
    for (i, xi) in x.iter().enumerate() {
        let row = &layer.weights[i * layer.outputs..(i + 1) * layer.outputs];
        for (yo, w) in y.iter_mut().zip(row) {
            *yo += xi * w;
        }
    }
    y
}

fn softmax3(logits: [f32; 3]) -> [f64; 3] {
    let l = logits.map(f64::from);
    let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e = l.map(|v| (v - m).exp());
    let s: f64 = e.iter().sum();
    e.map(|v| v / s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model whose intensity and classes follow VADER's compound only.
    fn compound_model() -> SentimentArtifact {
        let dim = 2;
        let inputs = dim + LEXICON_FEATURES;
        let mut weights = vec![0.0; inputs * OUTPUTS];
        weights[dim * OUTPUTS] = -3.0;
        weights[dim * OUTPUTS + 2] = 3.0;
        weights[dim * OUTPUTS + 3] = 2.0;
        SentimentArtifact {
            version: "sentiment-v1".into(),
            features: FeatureConfig::default(),
            dim,
            rows: vec![],
            vectors: vec![],
            lexicon_means: vec![0.0; LEXICON_FEATURES],
            lexicon_stds: vec![1.0; LEXICON_FEATURES],
            layers: vec![Dense {
                inputs,
                outputs: OUTPUTS,
                weights,
                bias: vec![0.0; OUTPUTS],
            }],
        }
    }

    #[test]
    fn word_factors_name_the_words_that_moved_the_text() -> Result<(), SentimentError> {
        let m = compound_model();
        m.validate()?;
        let (s, factors) = m.explain_validated("The charger is terrible, I want a refund.", 3)?;
        assert_eq!(
            s,
            m.predict_validated("The charger is terrible, I want a refund.")?
        );
        assert_eq!(s.label, SentimentClass::Negative);
        let top = factors.first().expect("a factor");
        assert_eq!(top.word, "terrible", "{factors:?}");
        assert!(
            top.effect < 0.0 && top.text.contains("more negative"),
            "{top:?}"
        );
        assert!(factors.len() <= 3);
        assert!(
            factors
                .windows(2)
                .all(|w| w[0].effect.abs() >= w[1].effect.abs())
        );
        let (_, factors) = m.explain_validated("Works great, thanks!", 3)?;
        assert!(
            factors.iter().any(|f| f.word == "great" && f.effect > 0.0),
            "{factors:?}"
        );
        // A text without sentiment words has no factors.
        let (_, factors) = m.explain_validated("box arrived tuesday", 3)?;
        assert!(factors.is_empty(), "{factors:?}");
        Ok(())
    }

    fn tiny() -> SentimentArtifact {
        SentimentArtifact {
            version: "sentiment-test".into(),
            features: FeatureConfig {
                buckets: 64,
                ..FeatureConfig::default()
            },
            dim: 2,
            rows: vec![],
            vectors: vec![],
            lexicon_means: vec![0.0; LEXICON_FEATURES],
            lexicon_stds: vec![1.0; LEXICON_FEATURES],
            layers: vec![Dense {
                inputs: 2 + LEXICON_FEATURES,
                outputs: OUTPUTS,
                // compound (input 2) drives positive (+) / negative (−) and the intensity.
                weights: (0..(2 + LEXICON_FEATURES) * OUTPUTS)
                    .map(|k| match (k / OUTPUTS, k % OUTPUTS) {
                        (2, 0) => -4.0,
                        (2, 2) => 4.0,
                        (2, 3) => 1.0,
                        _ => 0.0,
                    })
                    .collect(),
                bias: vec![0.0, 0.5, 0.0, 0.0],
            }],
        }
    }

    #[test]
    fn forward_pass_follows_its_weights() -> Result<(), SentimentError> {
        let a = tiny();
        let happy = a.predict("This is great, thank you!")?;
        let angry = a.predict("This is terrible and broken.")?;
        let flat = a.predict("the cable is in the box")?;
        assert_eq!(happy.label, SentimentClass::Positive, "{happy:?}");
        assert_eq!(angry.label, SentimentClass::Negative, "{angry:?}");
        assert_eq!(flat.label, SentimentClass::Neutral, "{flat:?}");
        assert!((happy.probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Intensity = tanh(compound) with these weights.
        let c = Lexicon::vader()?
            .polarity_scores("This is great, thank you!")
            .compound;
        assert!((happy.intensity - c.tanh()).abs() < 1e-6, "{happy:?} {c}");
        assert_eq!(happy.source, SentimentSource::Model);
        Ok(())
    }

    #[test]
    fn inconsistent_artefacts_are_refused_with_the_reason() {
        let mut a = tiny();
        a.features.scheme = "other".into();
        let Err(SentimentError::Inconsistent(m)) = a.predict("x") else {
            panic!("a foreign feature scheme must be refused");
        };
        assert!(m.contains("other"), "{m}");
        let mut a = tiny();
        a.rows = vec![3];
        assert!(matches!(a.validate(), Err(SentimentError::Inconsistent(_))));
        let mut a = tiny();
        a.layers[0].outputs = 3;
        assert!(matches!(a.validate(), Err(SentimentError::Inconsistent(_))));
        let mut a = tiny();
        a.lexicon_stds[1] = 0.0;
        assert!(matches!(a.validate(), Err(SentimentError::Inconsistent(_))));
    }

    #[test]
    fn embedding_rows_enter_the_bag_with_their_weights() {
        let mut a = tiny();
        let encoded = encode(
            "good",
            &a.features,
            match Lexicon::vader() {
                Ok(l) => l,
                Err(e) => panic!("{e}"),
            },
        );
        let id = encoded.hashed.ids[0];
        a.rows = vec![id];
        a.vectors = vec![1.0, -2.0];
        let x = a.input(&encoded);
        let w: f32 = encoded
            .hashed
            .ids
            .iter()
            .zip(&encoded.hashed.weights)
            .filter(|(i, _)| **i == id)
            .map(|(_, w)| *w)
            .sum();
        assert!(
            (x[0] - w).abs() < 1e-6 && (x[1] + 2.0 * w).abs() < 1e-6,
            "{x:?}"
        );
    }

    #[test]
    fn lexicon_scorer_labels_by_compound() -> Result<(), SentimentError> {
        let s = score_with_lexicon("Support never answered, this is unacceptable.")?;
        assert_eq!(s.label, SentimentClass::Negative);
        assert_eq!(s.probabilities, [1.0, 0.0, 0.0]);
        assert_eq!(s.source, SentimentSource::Lexicon);
        assert_eq!(
            SentimentClass::from_intensity(0.05),
            SentimentClass::Neutral
        );
        assert_eq!(
            SentimentClass::from_intensity(0.0501),
            SentimentClass::Positive
        );
        assert_eq!(
            SentimentClass::from_intensity(-0.0501),
            SentimentClass::Negative
        );
        Ok(())
    }
}
