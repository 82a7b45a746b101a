//! Tokenisation and hashed n-gram features of support text.
//!
//! Why hashing: a feature's row in the embedding table is `fnv1a(feature) mod buckets`, so no
//! vocabulary file has to travel with the model and words never seen in training still map
//! somewhere (their rows are zero in the artefact, so they add nothing). Why these features:
//! - word unigrams and bigrams carry most of the signal;
//! - character 3–5-grams of each word (fastText's subwords) tie together "disappoint",
//!   "disappointed", "disappointing" and survive typos;
//! - words inside a negation scope ("not" … up to the next clause punctuation) get a second,
//!   negated feature, so "not good" is not just "good" plus a weak "not".
//!
//! The trainer (Burn) and the serving path both call [`encode`], so they see identical inputs.

use serde::{Deserialize, Serialize};

use super::vader::is_negation;

/// The feature scheme implemented here; artefacts record it and are refused under another.
pub const SCHEME: &str = "sextant-sentiment-features-v1";

/// Punctuation kept as tokens: it carries sentiment ("!") or ends a negation scope.
const KEPT_PUNCTUATION: &[char] = &['!', '?', '.', ',', ';', ':'];

/// What features a text is turned into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeatureConfig {
    /// [`SCHEME`] when written.
    pub scheme: String,
    /// Rows of the hashed embedding table.
    pub buckets: u32,
    /// Shortest character n-gram (0 disables character n-grams).
    pub char_min: usize,
    /// Longest character n-gram.
    pub char_max: usize,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            scheme: SCHEME.into(),
            buckets: 1 << 17,
            char_min: 3,
            char_max: 5,
        }
    }
}

/// Lower-cases and splits `text` into words and the punctuation that matters.
///
/// Words are runs of Unicode letters and digits; an apostrophe or hyphen inside a word is kept
/// ("don't", "wi-fi"); typographic apostrophes become `'`. `!`, `?`, `.`, `,`, `;`, `:` are
/// tokens of their own; other symbols separate words and are dropped.
#[must_use]
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &raw) in chars.iter().enumerate() {
        let c = if raw == '\u{2019}' || raw == '\u{2018}' {
            '\''
        } else {
            raw
        };
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
            continue;
        }
        let next_is_alnum = chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if (c == '\'' || c == '-') && !word.is_empty() && next_is_alnum {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            tokens.push(std::mem::take(&mut word));
        }
        if KEPT_PUNCTUATION.contains(&c) {
            tokens.push(c.to_string());
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

fn is_word(token: &str) -> bool {
    token.chars().next().is_some_and(char::is_alphanumeric)
}

/// Whether a token ends a negation scope.
fn ends_scope(token: &str) -> bool {
    !is_word(token) || token == "but"
}

/// FNV-1a, 64-bit, over a feature's kind tag and its text (std's hasher is randomly seeded).
fn fnv1a(kind: u8, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    };
    eat(kind);
    for (k, p) in parts.iter().enumerate() {
        if k > 0 {
            eat(0x1f);
        }
        p.bytes().for_each(&mut eat);
    }
    h
}

/// The hashed features of one text: table rows and their weights.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HashedFeatures {
    /// Row of each feature in the embedding table (`< buckets`).
    pub ids: Vec<u32>,
    /// Weight of each feature: within the word group and the character group, each occurrence
    /// weighs `1/sqrt(group size)`, so long texts are not louder and subwords do not drown words.
    pub weights: Vec<f32>,
}

/// The hashed word, negation-scope and character n-gram features of `tokens`.
#[must_use]
pub fn hashed_features(tokens: &[String], config: &FeatureConfig) -> HashedFeatures {
    let buckets = u64::from(config.buckets.max(1));
    let row = |h: u64| (h % buckets) as u32;
    let mut word_ids = Vec::new();
    let mut negated = false;
    for (i, t) in tokens.iter().enumerate() {
        word_ids.push(row(fnv1a(b'w', &[t])));
        let prev = if i == 0 {
            "<s>"
        } else {
            tokens[i - 1].as_str()
        };
        word_ids.push(row(fnv1a(b'b', &[prev, t])));
        if negated && is_word(t) && !ends_scope(t) {
            word_ids.push(row(fnv1a(b'n', &[t])));
        }
        if ends_scope(t) {
            negated = false;
        }
        if is_negation(t) || t == "no" {
            negated = true;
        }
    }
    if let Some(last) = tokens.last() {
        word_ids.push(row(fnv1a(b'b', &[last, "</s>"])));
    }
    let mut char_ids = Vec::new();
    if config.char_min > 0 && config.char_max >= config.char_min {
        for t in tokens.iter().filter(|t| is_word(t)) {
            let padded: Vec<char> = std::iter::once('<')
                .chain(t.chars())
                .chain(std::iter::once('>'))
                .collect();
            for n in config.char_min..=config.char_max {
                if n > padded.len() {
                    break;
                }
                for w in padded.windows(n) {
                    let gram: String = w.iter().collect();
                    // The whole "<word>" is already a word feature.
                    if n == padded.len() {
                        continue;
                    }
                    char_ids.push(row(fnv1a(b'c', &[&gram])));
                }
            }
        }
    }
    let mut out = HashedFeatures::default();
    for group in [word_ids, char_ids] {
        if group.is_empty() {
            continue;
        }
        let w = 1.0 / (group.len() as f32).sqrt();
        out.weights.extend(std::iter::repeat_n(w, group.len()));
        out.ids.extend(group);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_lowercases_keeps_negations_and_emphasis() {
        assert_eq!(
            tokenize("It DOESN'T work!! Not even once, sadly…"),
            vec![
                "it", "doesn't", "work", "!", "!", "not", "even", "once", ",", "sadly"
            ]
        );
        // Typographic apostrophe, hyphenated word, Unicode letters, symbols dropped.
        assert_eq!(
            tokenize("Wi-Fi won’t connect — Überraschung? (#fail)"),
            vec!["wi-fi", "won't", "connect", "überraschung", "?", "fail"]
        );
        assert_eq!(tokenize("  "), Vec::<String>::new());
        // A trailing apostrophe or hyphen is not part of the word.
        assert_eq!(tokenize("users' - ok"), vec!["users", "ok"]);
    }

    fn ids(text: &str, config: &FeatureConfig) -> Vec<u32> {
        hashed_features(&tokenize(text), config).ids
    }

    #[test]
    fn negation_adds_scoped_features_until_punctuation() {
        let words_only = FeatureConfig {
            char_min: 0,
            ..FeatureConfig::default()
        };
        // "good" alone: unigram, <s>-bigram, </s>-bigram.
        assert_eq!(ids("good", &words_only).len(), 3);
        // "not good": 2 unigrams + 3 bigrams + the negated "good".
        let not_good = ids("not good", &words_only);
        assert_eq!(not_good.len(), 6);
        // The scope ends at the comma: "fine" after it is not negated.
        let scoped = ids("not good, fine", &words_only);
        let unscoped = ids("good, fine", &words_only);
        assert_eq!(
            scoped.len(),
            unscoped.len() + 3,
            "not + its bigram + negated good"
        );
    }

    #[test]
    fn features_are_stable_weighted_and_in_range() {
        let config = FeatureConfig {
            buckets: 1000,
            ..FeatureConfig::default()
        };
        let a = hashed_features(&tokenize("Great support!"), &config);
        let b = hashed_features(&tokenize("great   SUPPORT !"), &config);
        assert_eq!(a, b, "case and spacing do not change the features");
        assert!(a.ids.iter().all(|&i| i < 1000));
        // Each group's squared weights sum to one.
        let words = 3 + 4; // unigrams great, support, ! and bigrams incl. <s> and </s>
        let total: f32 = a.weights.iter().map(|w| w * w).sum();
        assert!((total - 2.0).abs() < 1e-5, "{total}");
        assert!((a.weights[0] - 1.0 / (words as f32).sqrt()).abs() < 1e-6);
        // "<great>" gives 5 + 4 + 3 char n-grams of length 3, 4, 5; "<support>" 7 + 6 + 5.
        assert_eq!(a.ids.len(), words + 12 + 18);
        assert!(hashed_features(&[], &config).ids.is_empty());
    }
}
