//! The VADER lexicon scorer (Hutto & Gilbert 2014), re-implemented from `vaderSentiment` 3.3.2.
//!
//! Why it is here: it scores support text with no trained model at all (a new org, or a model
//! that is not trained yet), and its scores are extra inputs of the learned model. It needs
//! nothing but the lexicon, which ships in the crate (`data/vader_lexicon.txt`, MIT; see
//! `data/ATTRIBUTION.md`), so the gateway and the feature store can call it without Burn.
//!
//! The rules are those of the reference implementation: lexicon valence per token, boosters and
//! dampeners up to three words back (damped by distance), negation (×−0.74) up to three words
//! back, "no" before a lexicon word, "least", special idioms, ALL-CAPS emphasis when only some
//! words are capitalised, the contrastive "but" (before ×0.5, after ×1.5), and "!"/"?" emphasis;
//! the sum is squashed into `compound = s / sqrt(s² + 15)`.
//!
//! Deliberate differences from the Python code, both in corner cases only: the emoji lexicon is
//! not applied (emojis score 0), and the "but" rule scales by position, where the Python code
//! looks values up with `list.index` and can scale the wrong one of two equal values.

use std::collections::HashMap;
use std::sync::LazyLock;

/// Booster words raise the intensity of the next lexicon words by this much.
const B_INCR: f64 = 0.293;
/// Dampeners lower it by this much.
const B_DECR: f64 = -0.293;
/// An ALL-CAPS word (when not all words are) gains this much intensity.
const C_INCR: f64 = 0.733;
/// A negated word's valence is multiplied by this.
const N_SCALAR: f64 = -0.74;
/// The normalisation constant of `compound`: approximately the largest expected raw sum.
const ALPHA: f64 = 15.0;

/// The VADER lexicon as shipped in `vaderSentiment` 3.3.2.
const VADER_LEXICON: &str = include_str!("../../data/vader_lexicon.txt");

/// Negation words of the reference implementation (any word containing "n't" also negates).
pub const NEGATIONS: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

/// Boosters (+) and dampeners (−), including the multi-word ones checked as n-grams.
const BOOSTERS: &[(&str, f64)] = &[
    ("absolutely", B_INCR),
    ("amazingly", B_INCR),
    ("awfully", B_INCR),
    ("completely", B_INCR),
    ("considerable", B_INCR),
    ("considerably", B_INCR),
    ("decidedly", B_INCR),
    ("deeply", B_INCR),
    ("effing", B_INCR),
    ("enormous", B_INCR),
    ("enormously", B_INCR),
    ("entirely", B_INCR),
    ("especially", B_INCR),
    ("exceptional", B_INCR),
    ("exceptionally", B_INCR),
    ("extreme", B_INCR),
    ("extremely", B_INCR),
    ("fabulously", B_INCR),
    ("flipping", B_INCR),
    ("flippin", B_INCR),
    ("frackin", B_INCR),
    ("fracking", B_INCR),
    ("fricking", B_INCR),
    ("frickin", B_INCR),
    ("frigging", B_INCR),
    ("friggin", B_INCR),
    ("fully", B_INCR),
    ("fuckin", B_INCR),
    ("fucking", B_INCR),
    ("fuggin", B_INCR),
    ("fugging", B_INCR),
    ("greatly", B_INCR),
    ("hella", B_INCR),
    ("highly", B_INCR),
    ("hugely", B_INCR),
    ("incredible", B_INCR),
    ("incredibly", B_INCR),
    ("intensely", B_INCR),
    ("major", B_INCR),
    ("majorly", B_INCR),
    ("more", B_INCR),
    ("most", B_INCR),
    ("particularly", B_INCR),
    ("purely", B_INCR),
    ("quite", B_INCR),
    ("really", B_INCR),
    ("remarkably", B_INCR),
    ("so", B_INCR),
    ("substantially", B_INCR),
    ("thoroughly", B_INCR),
    ("total", B_INCR),
    ("totally", B_INCR),
    ("tremendous", B_INCR),
    ("tremendously", B_INCR),
    ("uber", B_INCR),
    ("unbelievably", B_INCR),
    ("unusually", B_INCR),
    ("utter", B_INCR),
    ("utterly", B_INCR),
    ("very", B_INCR),
    ("almost", B_DECR),
    ("barely", B_DECR),
    ("hardly", B_DECR),
    ("just enough", B_DECR),
    ("kind of", B_DECR),
    ("kinda", B_DECR),
    ("kindof", B_DECR),
    ("kind-of", B_DECR),
    ("less", B_DECR),
    ("little", B_DECR),
    ("marginal", B_DECR),
    ("marginally", B_DECR),
    ("occasional", B_DECR),
    ("occasionally", B_DECR),
    ("partly", B_DECR),
    ("scarce", B_DECR),
    ("scarcely", B_DECR),
    ("slight", B_DECR),
    ("slightly", B_DECR),
    ("somewhat", B_DECR),
    ("sort of", B_DECR),
    ("sorta", B_DECR),
    ("sortof", B_DECR),
    ("sort-of", B_DECR),
];

/// Idioms whose valence replaces that of the lexicon word they contain.
const SPECIAL_CASES: &[(&str, f64)] = &[
    ("the shit", 3.0),
    ("the bomb", 3.0),
    ("bad ass", 1.5),
    ("badass", 1.5),
    ("bus stop", 0.0),
    ("yeah right", -2.0),
    ("kiss of death", -1.5),
    ("to die for", 3.0),
    ("beating heart", 3.5),
];

fn booster(word_lower: &str) -> Option<f64> {
    BOOSTERS
        .iter()
        .find(|(w, _)| *w == word_lower)
        .map(|(_, v)| *v)
}

fn special_case(phrase: &str) -> Option<f64> {
    SPECIAL_CASES
        .iter()
        .find(|(w, _)| *w == phrase)
        .map(|(_, v)| *v)
}

/// Whether a lower-cased word negates what follows it.
#[must_use]
pub fn is_negation(word_lower: &str) -> bool {
    NEGATIONS.contains(&word_lower) || word_lower.contains("n't")
}

/// Why a lexicon could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LexiconError {
    /// A line lacks the `token<TAB>valence` columns or its valence is not a number.
    #[error("lexicon line {line}: {message}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No entries at all.
    #[error("the lexicon has no entries")]
    Empty,
}

/// The four VADER scores of a text.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct VaderScores {
    /// Share of negative intensity, in `[0, 1]`.
    pub neg: f64,
    /// Share of neutral words, in `[0, 1]`.
    pub neu: f64,
    /// Share of positive intensity, in `[0, 1]`.
    pub pos: f64,
    /// The normalised sum of valences, in `[-1, 1]`.
    pub compound: f64,
}

/// A sentiment lexicon: token → mean valence on VADER's −4 … +4 scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Lexicon {
    valence: HashMap<String, f64>,
}

static VADER: LazyLock<Result<Lexicon, LexiconError>> =
    LazyLock::new(|| Lexicon::parse(VADER_LEXICON));

impl Lexicon {
    /// The VADER lexicon shipped with the crate (parsed once).
    ///
    /// # Errors
    /// Only if the embedded file were corrupt; a test parses it.
    pub fn vader() -> Result<&'static Self, LexiconError> {
        VADER.as_ref().map_err(Clone::clone)
    }

    /// Parses `token<TAB>valence[<TAB>…]` lines (further columns are ignored; blank lines skipped).
    ///
    /// # Errors
    /// [`LexiconError::BadLine`] naming the first bad line, or [`LexiconError::Empty`].
    pub fn parse(text: &str) -> Result<Self, LexiconError> {
        let mut valence = HashMap::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches(['\r', '\n']);
            if line.trim().is_empty() {
                continue;
            }
            let mut cols = line.split('\t');
            let (Some(token), Some(value)) = (cols.next(), cols.next()) else {
                return Err(LexiconError::BadLine {
                    line: n + 1,
                    message: "expected `token<TAB>valence`".into(),
                });
            };
            let v: f64 = value.trim().parse().map_err(|_| LexiconError::BadLine {
                line: n + 1,
                message: format!("valence `{value}` is not a number"),
            })?;
            if !v.is_finite() {
                return Err(LexiconError::BadLine {
                    line: n + 1,
                    message: format!("valence `{value}` is not finite"),
                });
            }
            valence.insert(token.trim().to_owned(), v);
        }
        if valence.is_empty() {
            return Err(LexiconError::Empty);
        }
        Ok(Self { valence })
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.valence.len()
    }

    /// Whether the lexicon is empty (never, for a parsed one).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.valence.is_empty()
    }

    /// The valence of a lower-cased token, if it is in the lexicon.
    #[must_use]
    pub fn valence(&self, token_lower: &str) -> Option<f64> {
        self.valence.get(token_lower).copied()
    }

    fn contains(&self, token_lower: &str) -> bool {
        self.valence.contains_key(token_lower)
    }

    /// VADER's scores for `text` (one sentence works best).
    #[must_use]
    pub fn polarity_scores(&self, text: &str) -> VaderScores {
        let words = vader_words(text.trim());
        let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let cap_diff = allcap_differential(&words);
        let mut sentiments = Vec::with_capacity(words.len());
        for i in 0..words.len() {
            if booster(&lower[i]).is_some()
                || (i + 1 < words.len() && lower[i] == "kind" && lower[i + 1] == "of")
            {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(self.valence_at(&words, &lower, i, cap_diff));
        }
        but_check(&lower, &mut sentiments);
        score_valence(&sentiments, text)
    }

    /// The valence of word `i` after the modifier, negation, idiom and "least" rules.
    fn valence_at(&self, words: &[&str], lower: &[String], i: usize, cap_diff: bool) -> f64 {
        let Some(base) = self.valence(&lower[i]) else {
            return 0.0;
        };
        let mut valence = base;
        let n = words.len();
        if lower[i] == "no" && i + 1 < n && self.contains(&lower[i + 1]) {
            valence = 0.0;
        }
        if (i > 0 && lower[i - 1] == "no")
            || (i > 1 && lower[i - 2] == "no")
            || (i > 2 && lower[i - 3] == "no" && (lower[i - 1] == "or" || lower[i - 1] == "nor"))
        {
            valence = base * N_SCALAR;
        }
        if is_upper(words[i]) && cap_diff {
            if valence > 0.0 {
                valence += C_INCR;
            } else {
                valence -= C_INCR;
            }
        }
        for start in 0..3 {
            if i > start && !self.contains(&lower[i - (start + 1)]) {
                let mut s = scalar_inc_dec(words[i - (start + 1)], valence, cap_diff);
                if start == 1 && s != 0.0 {
                    s *= 0.95;
                }
                if start == 2 && s != 0.0 {
                    s *= 0.9;
                }
                valence += s;
                valence = negation_check(valence, lower, start, i);
                if start == 2 {
                    valence = special_idioms_check(valence, lower, i);
                }
            }
        }
        least_check(valence, lower, i, |w| self.contains(w))
    }
}

/// Splits on whitespace and strips leading/trailing ASCII punctuation from each token unless
/// that leaves two characters or fewer (then it was probably an emoticon such as ":)").
fn vader_words(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .map(|t| {
            let stripped = t.trim_matches(|c: char| c.is_ascii_punctuation());
            if stripped.chars().count() <= 2 {
                t
            } else {
                stripped
            }
        })
        .collect()
}

/// Python's `str.isupper`: at least one cased character and no lower-case one.
fn is_upper(word: &str) -> bool {
    word.chars().any(char::is_uppercase) && !word.chars().any(char::is_lowercase)
}

/// True when some, but not all, words are ALL CAPS.
fn allcap_differential(words: &[&str]) -> bool {
    let caps = words.iter().filter(|w| is_upper(w)).count();
    let diff = words.len() - caps;
    diff > 0 && diff < words.len()
}

fn scalar_inc_dec(word: &str, valence: f64, cap_diff: bool) -> f64 {
    let Some(mut scalar) = booster(&word.to_lowercase()) else {
        return 0.0;
    };
    if valence < 0.0 {
        scalar = -scalar;
    }
    if is_upper(word) && cap_diff {
        if valence > 0.0 {
            scalar += C_INCR;
        } else {
            scalar -= C_INCR;
        }
    }
    scalar
}

fn negation_check(valence: f64, lower: &[String], start: usize, i: usize) -> f64 {
    let w = |k: usize| lower[i - k].as_str();
    match start {
        0 if is_negation(w(1)) => valence * N_SCALAR,
        1 => {
            if w(2) == "never" && (w(1) == "so" || w(1) == "this") {
                valence * 1.25
            } else if w(2) == "without" && w(1) == "doubt" {
                valence
            } else if is_negation(w(2)) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        2 => {
            // Same precedence as the reference: (never ∧ (so ∨ this)) ∨ so ∨ this.
            if (w(3) == "never" && (w(2) == "so" || w(2) == "this"))
                || w(1) == "so"
                || w(1) == "this"
            {
                valence * 1.25
            } else if w(3) == "without" && (w(2) == "doubt" || w(1) == "doubt") {
                valence
            } else if is_negation(w(3)) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        _ => valence,
    }
}

fn special_idioms_check(mut valence: f64, lower: &[String], i: usize) -> f64 {
    let w = |k: usize| lower[i - k].as_str();
    let onezero = format!("{} {}", w(1), w(0));
    let twoonezero = format!("{} {} {}", w(2), w(1), w(0));
    let twoone = format!("{} {}", w(2), w(1));
    let threetwoone = format!("{} {} {}", w(3), w(2), w(1));
    let threetwo = format!("{} {}", w(3), w(2));
    for seq in [&onezero, &twoonezero, &twoone, &threetwoone, &threetwo] {
        if let Some(v) = special_case(seq) {
            valence = v;
            break;
        }
    }
    if lower.len() > i + 1
        && let Some(v) = special_case(&format!("{} {}", lower[i], lower[i + 1]))
    {
        valence = v;
    }
    if lower.len() > i + 2
        && let Some(v) = special_case(&format!("{} {} {}", lower[i], lower[i + 1], lower[i + 2]))
    {
        valence = v;
    }
    for gram in [&threetwoone, &threetwo, &twoone] {
        if let Some(b) = booster(gram) {
            valence += b;
        }
    }
    valence
}

fn least_check(valence: f64, lower: &[String], i: usize, in_lexicon: impl Fn(&str) -> bool) -> f64 {
    if i > 1 && !in_lexicon(&lower[i - 1]) && lower[i - 1] == "least" {
        if lower[i - 2] != "at" && lower[i - 2] != "very" {
            return valence * N_SCALAR;
        }
    } else if i > 0 && !in_lexicon(&lower[i - 1]) && lower[i - 1] == "least" {
        return valence * N_SCALAR;
    }
    valence
}

/// Words before the first "but" count half, words after it one and a half.
fn but_check(lower: &[String], sentiments: &mut [f64]) {
    let Some(bi) = lower.iter().position(|w| w == "but") else {
        return;
    };
    for (si, s) in sentiments.iter_mut().enumerate() {
        if si < bi {
            *s *= 0.5;
        } else if si > bi {
            *s *= 1.5;
        }
    }
}

/// Emphasis from up to four "!" (0.292 each) and from two or more "?".
fn punctuation_emphasis(text: &str) -> f64 {
    let ep = text.matches('!').count().min(4) as f64 * 0.292;
    let qm = text.matches('?').count();
    let qm = match qm {
        0 | 1 => 0.0,
        2 | 3 => qm as f64 * 0.18,
        _ => 0.96,
    };
    ep + qm
}

/// `s / sqrt(s² + α)`, clamped to `[-1, 1]`.
#[must_use]
pub fn normalize(score: f64) -> f64 {
    (score / (score * score + ALPHA).sqrt()).clamp(-1.0, 1.0)
}

fn score_valence(sentiments: &[f64], text: &str) -> VaderScores {
    if sentiments.is_empty() {
        return VaderScores::default();
    }
    let mut sum: f64 = sentiments.iter().sum();
    let amp = punctuation_emphasis(text);
    if sum > 0.0 {
        sum += amp;
    } else if sum < 0.0 {
        sum -= amp;
    }
    let compound = normalize(sum);
    let (mut pos_sum, mut neg_sum, mut neu_count) = (0.0f64, 0.0f64, 0usize);
    for &s in sentiments {
        if s > 0.0 {
            pos_sum += s + 1.0;
        }
        if s < 0.0 {
            neg_sum += s - 1.0;
        }
        if s == 0.0 {
            neu_count += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += amp;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= amp;
    }
    let total = pos_sum + neg_sum.abs() + neu_count as f64;
    VaderScores {
        neg: (neg_sum / total).abs(),
        neu: (neu_count as f64 / total).abs(),
        pos: (pos_sum / total).abs(),
        compound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(text: &str) -> Result<VaderScores, LexiconError> {
        Ok(Lexicon::vader()?.polarity_scores(text))
    }

    /// Compound scores of `vaderSentiment==3.3.2` (Python, rounded to 4 places) for sentences
    /// that each exercise one rule.
    #[test]
    fn compound_matches_the_reference_implementation_rule_by_rule() -> Result<(), LexiconError> {
        let cases = [
            // plain lexicon words
            ("The book was good.", 0.4404),
            // "!" emphasis
            ("VADER is smart, handsome, and funny!", 0.8439),
            ("VADER is smart, handsome, and funny.", 0.8316),
            // booster
            ("VADER is very smart, handsome, and funny.", 0.8545),
            // ALL CAPS emphasis (only some words in caps)
            ("VADER is VERY SMART, handsome, and FUNNY.", 0.9227),
            // negation
            ("VADER is not smart, handsome, nor funny.", -0.7424),
            // contraction negation + "least"
            ("At least it isn't a horrible book.", 0.431),
            // dampener bigram
            ("The book was only kind of good.", 0.3832),
            // "but"
            (
                "The plot was good, but the characters are uncompelling and the dialog is not great.",
                -0.7042,
            ),
            // "never so"
            ("Sentiment analysis has never been this good!", 0.5672),
            ("Sentiment analysis has never been good.", -0.3412),
            // idiom
            ("With VADER, sentiment analysis is the shit!", 0.6476),
            // "least" as negation
            (
                "Roger Dodger is one of the least compelling variations on this theme.",
                -0.1695,
            ),
            // "without a doubt"
            ("Without a doubt, excellent idea.", 0.7013),
            // no lexicon word at all
            ("the cable connects to the back panel", 0.0),
            // "no" negating the next lexicon word
            ("No problems at all, works great", 0.7475),
            // ALL-CAPS negation
            ("I DO NOT like it at all", -0.2755),
            ("not bad at all", 0.431),
            // "??" emphasis
            ("is it broken??", -0.5362),
        ];
        for (text, want) in cases {
            let got = scores(text)?.compound;
            assert!(
                (got - want).abs() < 6e-5,
                "{text:?}: compound {got:.5}, reference {want}"
            );
        }
        Ok(())
    }

    #[test]
    fn proportions_sum_to_one_and_follow_the_sign() -> Result<(), LexiconError> {
        let s = scores("The delivery was terrible and slow.")?;
        assert!(s.neg > 0.0 && s.pos == 0.0 && s.compound < -0.05, "{s:?}");
        assert!((s.neg + s.neu + s.pos - 1.0).abs() < 1e-9, "{s:?}");
        let empty = scores("   ")?;
        assert_eq!(empty, VaderScores::default());
        Ok(())
    }

    #[test]
    fn negation_flips_and_booster_raises() -> Result<(), LexiconError> {
        let good = scores("the product is good")?.compound;
        let not_good = scores("the product is not good")?.compound;
        let very_good = scores("the product is very good")?.compound;
        let good_bang = scores("the product is good!!")?.compound;
        assert!(good > 0.05 && not_good < -0.05, "{good} {not_good}");
        assert!(
            very_good > good && good_bang > good,
            "{good} {very_good} {good_bang}"
        );
        Ok(())
    }

    #[test]
    fn bad_lexicon_files_name_the_line() {
        assert_eq!(Lexicon::parse("\n\n"), Err(LexiconError::Empty));
        let Err(LexiconError::BadLine { line, .. }) = Lexicon::parse("good\t1.9\nbad\n") else {
            panic!("a line without a valence must be refused");
        };
        assert_eq!(line, 2);
        let Err(LexiconError::BadLine { line, message }) = Lexicon::parse("good\tvery\n") else {
            panic!("a non-numeric valence must be refused");
        };
        assert_eq!(line, 1);
        assert!(message.contains("very"), "{message}");
    }

    #[test]
    fn shipped_lexicon_parses_whole() -> Result<(), LexiconError> {
        let lex = Lexicon::vader()?;
        assert_eq!(
            lex.len(),
            7506,
            "distinct tokens of vader_lexicon.txt 3.3.2"
        );
        assert_eq!(lex.valence("good"), Some(1.9));
        assert_eq!(lex.valence("horrible"), Some(-2.5));
        Ok(())
    }
}
