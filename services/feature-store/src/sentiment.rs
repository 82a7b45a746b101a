//! Whether a support case reads as negative: the trained sentiment model when the store has one,
//! else the word-list lexicon — and every stored case says which of the two judged it.
//!
//! Why at ingest: `negative_case_share_365d` is read by every training set and online refresh;
//! scoring the text once, when the case version is stored, keeps those reads set-based SQL over a
//! boolean column instead of running a text model per read. The scorer is recorded per case
//! version (`fs_case.sentiment_scorer`: `lexicon` or `model:<version>`), so a case judged by the
//! lexicon while the model was unavailable is visible as such, never silently mixed in.
//!
//! Where the model comes from: `sentiment_model_url` names a trained
//! [`SentimentArtifact`] as JSON — the trainer's registry
//! (`http://trainer/v1/sentiment/models/current/artifact`, which follows promotions and
//! rollbacks) or a file (`file:///…`, e.g. a mounted ConfigMap). The store loads it at start and re-reads it every
//! `sentiment_refresh_secs`; a failed load keeps the last good model (or the lexicon when none
//! loaded yet), logs why, and shows on `/metrics` (`sextant_feature_store_sentiment_model_loaded`,
//! `sextant_feature_store_sentiment_refresh_failures_total`). The model's inference is plain Rust
//! (`sextant-models`); no Burn here.
//!
//! When a new model loads, the cases stored before it (judged by the lexicon or an earlier model)
//! are re-judged in the background a page at a time ([`crate::store::Store::rescore_cases`]), and
//! each account whose flag changed is queued for its online refresh
//! (`sextant_feature_store_cases_rescored_total`).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use sextant_features::aggregates::lexicon_is_negative;
use sextant_models::sentiment::{SentimentArtifact, SentimentClass};

/// Longest a model download may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest artefact accepted (a hashed n-gram table of the used rows only is a few MB).
const MAX_ARTIFACT_BYTES: usize = 256 << 20;

/// What judges case text now.
#[derive(Debug)]
pub enum Scorer {
    /// No model loaded: the word-list lexicon.
    Lexicon,
    /// A trained model.
    Model(Box<SentimentArtifact>),
}

impl Scorer {
    /// The value stored in `fs_case.sentiment_scorer`.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::Lexicon => "lexicon".into(),
            Self::Model(a) => format!("model:{}", a.version),
        }
    }

    /// Whether `text` reads as negative, and the label of the scorer that decided it (the
    /// lexicon's when the model cannot score this text).
    #[must_use]
    pub fn negative(&self, text: &str) -> (bool, String) {
        match self {
            Self::Lexicon => (lexicon_is_negative(text), self.label()),
            // Validated once, when it was set (`CaseSentiment::set_model`).
            Self::Model(a) => match a.predict_validated(text) {
                Ok(s) => (s.label == SentimentClass::Negative, self.label()),
                Err(e) => {
                    tracing::warn!(error = %e, "Sentiment model could not score a case; the lexicon did.");
                    (lexicon_is_negative(text), Scorer::Lexicon.label())
                }
            },
        }
    }
}

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The URL is neither `http(s)://` nor `file://`.
    #[error("sentiment_model_url must start with http://, https:// or file://")]
    Scheme,
    /// The download failed or answered an error status.
    #[error("fetching the sentiment model: {0}")]
    Fetch(String),
    /// The file could not be read.
    #[error("reading the sentiment model file: {0}")]
    Read(#[from] std::io::Error),
    /// Larger than [`MAX_ARTIFACT_BYTES`].
    #[error("the sentiment model is larger than {MAX_ARTIFACT_BYTES} bytes")]
    TooLarge,
    /// Not a sentiment artefact, or one whose shapes do not fit together.
    #[error("not a usable sentiment model: {0}")]
    Invalid(String),
}

/// The store's current scorer, swapped whole when a new model loads.
#[derive(Debug)]
pub struct CaseSentiment {
    current: RwLock<Arc<Scorer>>,
}

impl Default for CaseSentiment {
    fn default() -> Self {
        Self {
            current: RwLock::new(Arc::new(Scorer::Lexicon)),
        }
    }
}

impl CaseSentiment {
    /// The scorer to use for one batch.
    #[must_use]
    pub fn current(&self) -> Arc<Scorer> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Makes `artifact` the scorer once it validates. Returns whether it replaced another
    /// version.
    ///
    /// # Errors
    /// [`LoadError::Invalid`] when its shapes do not fit together (the scorer is unchanged).
    pub fn set_model(&self, artifact: SentimentArtifact) -> Result<bool, LoadError> {
        artifact
            .validate()
            .map_err(|e| LoadError::Invalid(e.to_string()))?;
        let mut g = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let changed = match &**g {
            Scorer::Model(a) => **a != artifact,
            Scorer::Lexicon => true,
        };
        if changed {
            *g = Arc::new(Scorer::Model(Box::new(artifact)));
        }
        Ok(changed)
    }

    /// Whether a model (not the lexicon) scores now.
    #[must_use]
    pub fn has_model(&self) -> bool {
        matches!(*self.current(), Scorer::Model(_))
    }
}

/// Reads and validates the artefact at `url`.
///
/// # Errors
/// [`LoadError`] naming what failed; the URL's query string (it may carry a token) is never part
/// of the message.
pub async fn load(
    http: &sextant_service_kit::internal_auth::InternalClient,
    url: &str,
) -> Result<SentimentArtifact, LoadError> {
    let bytes = if let Some(path) = url.strip_prefix("file://") {
        let meta = tokio::fs::metadata(path).await?;
        if meta.len() > MAX_ARTIFACT_BYTES as u64 {
            return Err(LoadError::TooLarge);
        }
        tokio::fs::read(path).await?
    } else if url.starts_with("http://") || url.starts_with("https://") {
        let resp = http
            .get(url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| LoadError::Fetch(e.without_url().to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(LoadError::Fetch(format!("HTTP {status}")));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| LoadError::Fetch(e.without_url().to_string()))?;
        if body.len() > MAX_ARTIFACT_BYTES {
            return Err(LoadError::TooLarge);
        }
        body.to_vec()
    } else {
        return Err(LoadError::Scheme);
    };
    let artifact: SentimentArtifact =
        serde_json::from_slice(&bytes).map_err(|e| LoadError::Invalid(e.to_string()))?;
    artifact
        .validate()
        .map_err(|e| LoadError::Invalid(e.to_string()))?;
    Ok(artifact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lexicon_labels_what_it_judges() {
        let s = Scorer::Lexicon;
        let (neg, by) = s.negative("This is broken and useless, terrible support");
        assert!(neg);
        assert_eq!(by, "lexicon");
        let (neg, _) = s.negative("Thanks, works great");
        assert!(!neg);
    }

    #[tokio::test]
    async fn bad_sources_say_what_is_wrong() {
        let http =
            sextant_service_kit::internal_auth::InternalClient::new(reqwest::Client::new(), None);
        assert!(matches!(
            load(&http, "ftp://x/y").await,
            Err(LoadError::Scheme)
        ));
        assert!(matches!(
            load(&http, "file:///nonexistent/sentiment.json").await,
            Err(LoadError::Read(_))
        ));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        std::fs::write(&path, b"{\"not\": \"a model\"}").expect("write");
        let url = format!("file://{}", path.display());
        assert!(matches!(
            load(&http, &url).await,
            Err(LoadError::Invalid(_))
        ));
    }
}
