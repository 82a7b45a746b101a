//! The model registry: versioned artefacts on disk, one registry per model family, with the same
//! layout, promotion rules and API for every family.
//!
//! ```text
//! <registry_dir>/churn/
//!   churn-v1/artifact.json  metadata.json  roc.svg  learning_curve.svg
//!   churn-v2/…
//!   CURRENT                 ← the version the gateway serves
//!   SHADOW                  ← a challenger the gateway also scores with, unreturned (optional)
//! <registry_dir>/clv/       clv-v1/… holdout.svg
//! <registry_dir>/sentiment/ sentiment-v1/… confusion.svg
//! ```
//! A version directory is written completely under a temporary name and then renamed, so a
//! reader never sees half a model; `CURRENT` and metadata rewrites are replaced the same way.
//! Versions only grow.
//!
//! What differs between families (the artefact type, the metadata type, the plots a version
//! holds, what makes an artefact loadable) is a [`ModelKind`]; everything else is
//! [`Registry<K>`]. A family's artefacts can be served only when [`ModelKind::validate`] accepts
//! them, so a version that would not load where it is served never becomes current.
//!
//! # Promotion
//! Publishing stores a version as a `candidate`; [`Registry::promote`] makes one `current` (the
//! one the gateway serves) and the one it replaces `retired`, recording the decision and its
//! reason in the version's metadata. The trainer's gates promote a new version only when it is at
//! least as good as the current one on the same evaluation; rollback is promoting an earlier
//! version. Promotions are serialised by a lock, so two never interleave.

use std::fmt;
use std::fs;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sextant_contracts::ModelVersion;
use sextant_contracts::api::{
    ClvModelMetadata, ModelCard, ModelMetadata, ModelStatus, PromotionDecision,
};
use sextant_models::churn_serving::ServedChurnModel;
use sextant_models::clv::serving::ClvArtifact;
use sextant_models::metrics::{line_svg, roc_svg};
use sextant_models::recommend::CrossSellModel;
use sextant_models::sentiment::SentimentArtifact;
use sextant_models::tabular::PropensityArtifact;

use crate::training::Trained;

/// The metadata every family's versions carry, whatever else they hold.
pub trait Governed {
    /// The version the metadata describes.
    fn version(&self) -> &ModelVersion;
    /// Where it stands; `None` on versions stored before statuses existed.
    fn status(&self) -> Option<ModelStatus>;
    /// Records where it stands.
    fn set_status(&mut self, status: ModelStatus);
    /// Records the latest promotion decision.
    fn set_promotion(&mut self, decision: PromotionDecision);
}

macro_rules! governed {
    ($($t:ty),*) => {$(
        impl Governed for $t {
            fn version(&self) -> &ModelVersion {
                &self.version
            }
            fn status(&self) -> Option<ModelStatus> {
                self.status
            }
            fn set_status(&mut self, status: ModelStatus) {
                self.status = Some(status);
            }
            fn set_promotion(&mut self, decision: PromotionDecision) {
                self.promotion = Some(decision);
            }
        }
    )*};
}
governed!(ModelMetadata, ClvModelMetadata, ModelCard);

/// A model family: what its versions hold.
pub trait ModelKind: Send + Sync + 'static {
    /// The served artefact (`artifact.json`).
    type Artifact: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The metadata (`metadata.json`).
    type Metadata: Serialize + DeserializeOwned + Governed + Clone + Send + Sync + 'static;
    /// The registry's name: its directory and its versions' prefix (`churn` → `churn-v3`).
    const NAME: &'static str;
    /// The plots a version may hold (file names).
    const PLOTS: &'static [&'static str];
    /// Whether the artefact would load where it is served.
    ///
    /// # Errors
    /// What does not fit.
    fn validate(artifact: &Self::Artifact) -> Result<(), String>;
}

/// Churn: the sequence model (or an MLP stored before it), plots `roc.svg` and
/// `learning_curve.svg`.
#[derive(Debug, Clone, Copy)]
pub struct Churn;

impl ModelKind for Churn {
    type Artifact = ServedChurnModel;
    type Metadata = ModelMetadata;
    const NAME: &'static str = "churn";
    const PLOTS: &'static [&'static str] = &["roc.svg", "learning_curve.svg"];
    fn validate(artifact: &ServedChurnModel) -> Result<(), String> {
        artifact.validate().map_err(|e| e.to_string())
    }
}

/// Customer lifetime value: BTYD parameters and value tiers, plot `holdout.svg`.
#[derive(Debug, Clone, Copy)]
pub struct Clv;

impl ModelKind for Clv {
    type Artifact = ClvArtifact;
    type Metadata = ClvModelMetadata;
    const NAME: &'static str = "clv";
    const PLOTS: &'static [&'static str] = &["holdout.svg"];
    fn validate(artifact: &ClvArtifact) -> Result<(), String> {
        artifact.validate().map_err(|e| e.to_string())
    }
}

/// Sentiment of support text: the network the feature store scores cases with, plot
/// `confusion.svg` (held-out confusion matrix).
#[derive(Debug, Clone, Copy)]
pub struct Sentiment;

impl ModelKind for Sentiment {
    type Artifact = SentimentArtifact;
    type Metadata = ModelCard;
    const NAME: &'static str = "sentiment";
    const PLOTS: &'static [&'static str] = &["confusion.svg"];
    fn validate(artifact: &SentimentArtifact) -> Result<(), String> {
        artifact.validate().map_err(|e| e.to_string())
    }
}

/// Propensity on any object: one registry per prediction definition
/// ([`Registry::open_named`]), the encoder and model the gateway scores records with, plot
/// `roc.svg` (held-out ROC curve).
#[derive(Debug, Clone, Copy)]
pub struct Propensity;

impl ModelKind for Propensity {
    type Artifact = PropensityArtifact;
    type Metadata = ModelCard;
    const NAME: &'static str = "propensity";
    const PLOTS: &'static [&'static str] = &["roc.svg"];
    fn validate(artifact: &PropensityArtifact) -> Result<(), String> {
        artifact.validate().map_err(|e| e.to_string())
    }
}

/// Cross-sell: the item recommender and the next-category model trained together on purchase
/// lines, plot `hit_rate.svg` (test-period hit rate at k, next to popularity).
#[derive(Debug, Clone, Copy)]
pub struct CrossSell;

impl ModelKind for CrossSell {
    type Artifact = CrossSellModel;
    type Metadata = ModelCard;
    const NAME: &'static str = "cross_sell";
    const PLOTS: &'static [&'static str] = &["hit_rate.svg"];
    fn validate(artifact: &CrossSellModel) -> Result<(), String> {
        artifact.validate().map_err(|e| e.to_string())
    }
}

/// What a version stores besides its metadata: the served artefact and its plots.
pub struct Publication<K: ModelKind> {
    pub artifact: K::Artifact,
    /// `(file name, SVG)`; every name one of [`ModelKind::PLOTS`].
    pub plots: Vec<(&'static str, String)>,
}

impl<K: ModelKind> fmt::Debug for Publication<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publication")
            .field("kind", &K::NAME)
            .field(
                "plots",
                &self.plots.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<K: ModelKind> Clone for Publication<K>
where
    K::Artifact: Clone,
{
    fn clone(&self) -> Self {
        Self {
            artifact: self.artifact.clone(),
            plots: self.plots.clone(),
        }
    }
}

/// A churn version's files: the artefact, its held-out ROC curve (titled with `auc`) and its
/// training loss per epoch.
#[must_use]
pub fn churn_publication(
    artifact: ServedChurnModel,
    auc: f64,
    roc: &[(f64, f64)],
    losses: &[f64],
) -> Publication<Churn> {
    let version = artifact.version().to_string();
    Publication {
        artifact,
        plots: vec![
            ("roc.svg", roc_svg(roc, auc, &version)),
            (
                "learning_curve.svg",
                line_svg(
                    losses,
                    &format!("{version} — training loss"),
                    "epoch",
                    "BCE loss",
                ),
            ),
        ],
    }
}

impl From<&Trained> for Publication<Churn> {
    fn from(t: &Trained) -> Self {
        churn_publication(
            ServedChurnModel::Mlp(t.artifact.clone()),
            t.metrics.auc,
            &t.roc,
            &t.losses,
        )
    }
}

/// The promotion gate of a figure where higher is better: promote when there is no current
/// model, when the current model cannot be measured on the candidate's evaluation (it reads
/// features the store no longer serves, or it no longer loads), or when the candidate's figure is
/// at least the current model's on the same rows; otherwise keep the candidate back. The reason
/// names the figure and says which case applied, with both values.
#[must_use]
pub fn gate(
    metric: &str,
    candidate: f64,
    current: Option<&ModelVersion>,
    current_value: &Result<f64, String>,
    evaluation: &str,
    decided_at: chrono::DateTime<chrono::Utc>,
) -> PromotionDecision {
    let (promoted, reason) = match (current, current_value) {
        (None, _) => (
            true,
            format!("no current model; {metric} {candidate:.4} on {evaluation}"),
        ),
        (Some(v), Err(why)) => (
            true,
            format!(
                "{v} cannot be compared ({why}); promoted with {metric} {candidate:.4} on {evaluation}"
            ),
        ),
        (Some(v), Ok(value)) if candidate >= *value => (
            true,
            format!(
                "{metric} {candidate:.4} ≥ {value:.4} of {v} on the same evaluation ({evaluation})"
            ),
        ),
        (Some(v), Ok(value)) => (
            false,
            format!(
                "{metric} {candidate:.4} < {value:.4} of {v} on the same evaluation ({evaluation}); kept as a candidate"
            ),
        ),
    };
    PromotionDecision {
        promoted,
        by: "gate".to_owned(),
        reason,
        compared_with: current.cloned(),
        candidate_auc: None,
        current_auc: None,
        decided_at,
    }
}

/// Why the registry failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A stored file is not what we wrote.
    #[error("{path}: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    /// No such version in the registry.
    #[error("no model {0}")]
    UnknownVersion(ModelVersion),
    /// The current version cannot shadow itself.
    #[error("{0} is the current model; a shadow must be another version")]
    ShadowIsCurrent(ModelVersion),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The registry of one model family.
pub struct Registry<K: ModelKind> {
    root: PathBuf,
    /// The versions' prefix: the family's name, or a definition's within a family that has
    /// several (propensity).
    name: String,
    /// Held while `CURRENT` and statuses change.
    promotion: Arc<Mutex<()>>,
    kind: PhantomData<fn() -> K>,
}

impl<K: ModelKind> fmt::Debug for Registry<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("kind", &K::NAME)
            .field("name", &self.name)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl<K: ModelKind> Clone for Registry<K> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.clone(),
            name: self.name.clone(),
            promotion: Arc::clone(&self.promotion),
            kind: PhantomData,
        }
    }
}

/// Writes `body` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, body: &str) -> Result<(), RegistryError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, body).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

fn to_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<String, RegistryError> {
    serde_json::to_string_pretty(v).map_err(|e| RegistryError::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

impl<K: ModelKind> Registry<K> {
    /// Opens (creating if needed) `<dir>/<K::NAME>`; versions are `<K::NAME>-vN`.
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        Self::at(dir.join(K::NAME), K::NAME)
    }

    /// Opens (creating if needed) the registry of one member of a family with several, e.g. one
    /// propensity definition: `<dir>/<K::NAME>/<name>`, versions `<name>-vN`. `name` must be a
    /// valid version prefix (lower-case letters, digits, `_`).
    pub fn open_named(dir: &Path, name: &str) -> Result<Self, RegistryError> {
        ModelVersion::new(name, 1).map_err(|e| RegistryError::Corrupt {
            path: dir.join(K::NAME),
            detail: format!("registry name `{name}`: {e}"),
        })?;
        Self::at(dir.join(K::NAME).join(name), name)
    }

    fn at(root: PathBuf, name: &str) -> Result<Self, RegistryError> {
        fs::create_dir_all(&root).map_err(io(&root))?;
        Ok(Self {
            root,
            name: name.to_owned(),
            promotion: Arc::default(),
            kind: PhantomData,
        })
    }

    /// The versions' prefix.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registry's directory (where a family keeps files beside its versions).
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every stored version, oldest first.
    pub fn versions(&self) -> Result<Vec<ModelVersion>, RegistryError> {
        let mut out: Vec<ModelVersion> = fs::read_dir(&self.root)
            .map_err(io(&self.root))?
            .filter_map(Result::ok)
            .filter_map(|e| ModelVersion::parse(&e.file_name().to_string_lossy()).ok())
            .filter(|v| v.name() == self.name)
            .collect();
        out.sort();
        Ok(out)
    }

    /// Every stored version's metadata, oldest first.
    pub fn list(&self) -> Result<Vec<K::Metadata>, RegistryError> {
        let mut out = Vec::new();
        for v in self.versions()? {
            if let Some(m) = self.metadata(&v)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// The version a new model gets.
    pub fn next_version(&self) -> Result<ModelVersion, RegistryError> {
        Ok(match self.versions()?.last() {
            Some(v) => v.next(),
            None => ModelVersion::new(&self.name, 1).map_err(|e| RegistryError::Corrupt {
                path: self.root.clone(),
                detail: e.to_string(),
            })?,
        })
    }

    /// Stores a model as a `candidate` (the gateway does not see it until it is promoted).
    pub fn publish(
        &self,
        publication: &Publication<K>,
        metadata: &K::Metadata,
    ) -> Result<(), RegistryError> {
        let version = metadata.version().to_string();
        if metadata.version().name() != self.name {
            return Err(RegistryError::Corrupt {
                path: self.root.clone(),
                detail: format!("{version} is not a {} version", self.name),
            });
        }
        if let Some((name, _)) = publication
            .plots
            .iter()
            .find(|(name, _)| !K::PLOTS.contains(name))
        {
            return Err(RegistryError::Corrupt {
                path: self.root.clone(),
                detail: format!("{name} is not a {} plot", K::NAME),
            });
        }
        let staging = self.root.join(format!(".{version}.tmp"));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging).map_err(io(&staging))?;
        let write = |name: &str, body: String| {
            let path = staging.join(name);
            fs::write(&path, body).map_err(io(&path))
        };
        let mut metadata = metadata.clone();
        metadata.set_status(ModelStatus::Candidate);
        write("artifact.json", to_json(&staging, &publication.artifact)?)?;
        write("metadata.json", to_json(&staging, &metadata)?)?;
        for (name, svg) in &publication.plots {
            write(name, svg.clone())?;
        }
        let target = self.root.join(&version);
        fs::rename(&staging, &target).map_err(io(&target))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.promotion
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_metadata(&self, metadata: &K::Metadata) -> Result<(), RegistryError> {
        let path = self
            .root
            .join(metadata.version().to_string())
            .join("metadata.json");
        write_atomic(&path, &to_json(&path, metadata)?)
    }

    /// Records a decision that keeps `version` a candidate.
    pub fn keep_candidate(
        &self,
        version: &ModelVersion,
        decision: PromotionDecision,
    ) -> Result<K::Metadata, RegistryError> {
        let _held = self.lock();
        let mut meta = self
            .metadata(version)?
            .ok_or_else(|| RegistryError::UnknownVersion(version.clone()))?;
        meta.set_status(ModelStatus::Candidate);
        meta.set_promotion(decision);
        self.write_metadata(&meta)?;
        Ok(meta)
    }

    /// Makes `version` current (promotion, or rollback to an earlier version): its artefact must
    /// load; the version it replaces becomes `retired`. Promoting the current version only
    /// records the decision.
    pub fn promote(
        &self,
        version: &ModelVersion,
        decision: PromotionDecision,
    ) -> Result<K::Metadata, RegistryError> {
        let _held = self.lock();
        let mut meta = self
            .metadata(version)?
            .ok_or_else(|| RegistryError::UnknownVersion(version.clone()))?;
        let artifact = self
            .artifact(version)?
            .ok_or_else(|| RegistryError::UnknownVersion(version.clone()))?;
        K::validate(&artifact).map_err(|detail| RegistryError::Corrupt {
            path: self.root.join(version.to_string()),
            detail,
        })?;
        let previous = self.current()?;
        meta.set_status(ModelStatus::Current);
        meta.set_promotion(decision);
        self.write_metadata(&meta)?;
        write_atomic(&self.root.join("CURRENT"), &version.to_string())?;
        // A shadow that becomes current is no longer a challenger.
        if self.shadow()?.as_ref() == Some(version) {
            self.remove_shadow()?;
        }
        if let Some(prev) = previous.filter(|p| p != version)
            && let Some(mut old) = self.metadata(&prev)?
        {
            old.set_status(ModelStatus::Retired);
            self.write_metadata(&old)?;
        }
        Ok(meta)
    }

    /// Applies a gate's decision to a published version: current when it promotes, else kept as
    /// a candidate with the reason.
    pub fn decide(
        &self,
        version: &ModelVersion,
        decision: PromotionDecision,
    ) -> Result<K::Metadata, RegistryError> {
        if decision.promoted {
            self.promote(version, decision)
        } else {
            self.keep_candidate(version, decision)
        }
    }

    /// The version being served and its artefact (what a new version is compared with), or
    /// `(None, None)` before the first promotion.
    pub fn current_with_artifact(
        &self,
    ) -> Result<(Option<ModelVersion>, Option<K::Artifact>), RegistryError> {
        let Some(v) = self.current()? else {
            return Ok((None, None));
        };
        let artifact = self.artifact(&v)?;
        Ok((Some(v), artifact))
    }

    /// Names `version` the shadow (challenger): the gateway scores the same requests with it
    /// too, without returning its scores, and logs them so both versions' realised accuracy can
    /// be compared. Its artefact must load; the current version cannot be its own shadow.
    pub fn set_shadow(&self, version: &ModelVersion) -> Result<(), RegistryError> {
        let _held = self.lock();
        let artifact = self
            .artifact(version)?
            .ok_or_else(|| RegistryError::UnknownVersion(version.clone()))?;
        K::validate(&artifact).map_err(|detail| RegistryError::Corrupt {
            path: self.root.join(version.to_string()),
            detail,
        })?;
        if self.current()?.as_ref() == Some(version) {
            return Err(RegistryError::ShadowIsCurrent(version.clone()));
        }
        write_atomic(&self.root.join("SHADOW"), &version.to_string())
    }

    /// Stops shadowing; returns the version that was the shadow.
    pub fn clear_shadow(&self) -> Result<Option<ModelVersion>, RegistryError> {
        let _held = self.lock();
        let was = self.shadow()?;
        self.remove_shadow()?;
        Ok(was)
    }

    fn remove_shadow(&self) -> Result<(), RegistryError> {
        let path = self.root.join("SHADOW");
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RegistryError::Io { path, source: e }),
        }
    }

    /// The shadow version, if one is named.
    pub fn shadow(&self) -> Result<Option<ModelVersion>, RegistryError> {
        self.pointer("SHADOW")
    }

    /// The version being served, if any.
    pub fn current(&self) -> Result<Option<ModelVersion>, RegistryError> {
        self.pointer("CURRENT")
    }

    fn pointer(&self, file: &str) -> Result<Option<ModelVersion>, RegistryError> {
        let path = self.root.join(file);
        match fs::read_to_string(&path) {
            Ok(s) => ModelVersion::parse(s.trim())
                .map(Some)
                .map_err(|e| RegistryError::Corrupt {
                    path,
                    detail: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RegistryError::Io { path, source: e }),
        }
    }

    fn read<T: DeserializeOwned>(
        &self,
        version: &ModelVersion,
        file: &str,
    ) -> Result<Option<T>, RegistryError> {
        if version.name() != self.name {
            return Ok(None);
        }
        let path = self.root.join(version.to_string()).join(file);
        match fs::read_to_string(&path) {
            Ok(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| RegistryError::Corrupt {
                    path,
                    detail: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RegistryError::Io { path, source: e }),
        }
    }

    /// A version's metadata. Versions stored before statuses existed read as `current` when
    /// `CURRENT` names them and `retired` otherwise (every such version was served once).
    pub fn metadata(&self, version: &ModelVersion) -> Result<Option<K::Metadata>, RegistryError> {
        let Some(mut meta) = self.read::<K::Metadata>(version, "metadata.json")? else {
            return Ok(None);
        };
        if meta.status().is_none() {
            meta.set_status(if self.current()?.as_ref() == Some(version) {
                ModelStatus::Current
            } else {
                ModelStatus::Retired
            });
        }
        Ok(Some(meta))
    }

    /// A version's artefact.
    pub fn artifact(&self, version: &ModelVersion) -> Result<Option<K::Artifact>, RegistryError> {
        self.read(version, "artifact.json")
    }

    /// A stored plot, one of [`ModelKind::PLOTS`]; `None` for another name or an unknown
    /// version.
    pub fn plot(
        &self,
        version: &ModelVersion,
        name: &str,
    ) -> Result<Option<String>, RegistryError> {
        if version.name() != self.name || !K::PLOTS.contains(&name) {
            return Ok(None);
        }
        let path = self.root.join(version.to_string()).join(name);
        match fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RegistryError::Io { path, source: e }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use sextant_contracts::api::ModelMetrics;
    use sextant_models::{ChurnArtifact, Dense};

    use super::*;

    fn trained(version: &ModelVersion) -> (Publication<Churn>, ModelMetadata) {
        let artifact = ChurnArtifact {
            version: version.clone(),
            feature_names: vec!["x".into()],
            means: vec![0.0],
            stds: vec![1.0],
            layers: vec![Dense {
                inputs: 1,
                outputs: 1,
                weights: vec![0.5],
                bias: vec![0.0],
            }],
        };
        let metrics = ModelMetrics {
            auc: 0.7,
            accuracy: 0.6,
            log_loss: 0.6,
            base_rate: 0.3,
            n_train: 10,
            n_test: 5,
        };
        let meta = ModelMetadata {
            version: version.clone(),
            created_at: Utc::now(),
            feature_names: vec!["x".into()],
            metrics: metrics.clone(),
            config: BTreeMap::new(),
            status: None,
            promotion: None,
        };
        let t = Trained {
            artifact,
            metrics,
            config: BTreeMap::new(),
            roc: vec![(0.0, 0.0), (1.0, 1.0)],
            losses: vec![0.7, 0.6],
        };
        ((&t).into(), meta)
    }

    fn decision(promoted: bool, reason: &str) -> PromotionDecision {
        PromotionDecision {
            promoted,
            by: "test".into(),
            reason: reason.into(),
            compared_with: None,
            candidate_auc: None,
            current_auc: None,
            decided_at: Utc::now(),
        }
    }

    fn status<K: ModelKind>(reg: &Registry<K>, v: &ModelVersion) -> Option<ModelStatus> {
        reg.metadata(v).expect("read").and_then(|m| m.status())
    }

    #[test]
    fn versions_grow_and_publishing_does_not_change_the_current_model() {
        let dir = tempfile::tempdir().expect("tmp");
        let reg = Registry::<Churn>::open(dir.path()).expect("open");
        assert_eq!(reg.current().expect("read"), None);
        let v1 = reg.next_version().expect("v1");
        assert_eq!(v1.to_string(), "churn-v1");
        let (t, m) = trained(&v1);
        reg.publish(&t, &m).expect("publish v1");
        assert_eq!(reg.current().expect("read"), None, "published = candidate");
        assert_eq!(status(&reg, &v1), Some(ModelStatus::Candidate));
        reg.promote(&v1, decision(true, "first model"))
            .expect("promote v1");
        // A half-written version (a crash mid-publish) is never listed.
        std::fs::create_dir_all(dir.path().join("churn/.churn-v2.tmp")).expect("stray");
        let v2 = reg.next_version().expect("v2");
        assert_eq!(v2.to_string(), "churn-v2");
        let (t, m) = trained(&v2);
        reg.publish(&t, &m).expect("publish v2");
        assert_eq!(reg.versions().expect("list"), vec![v1.clone(), v2.clone()]);
        assert_eq!(reg.current().expect("read"), Some(v1.clone()));
        assert!(matches!(
            reg.artifact(&v1).expect("read"),
            Some(ServedChurnModel::Mlp(a)) if a.version == v1
        ));
        assert!(
            reg.plot(&v2, "roc.svg")
                .expect("read")
                .is_some_and(|s| s.starts_with("<svg"))
        );
        assert!(reg.plot(&v2, "learning_curve.svg").expect("read").is_some());
        let unknown = ModelVersion::parse("churn-v9").expect("v");
        assert_eq!(reg.metadata(&unknown).expect("read"), None);
    }

    #[test]
    fn promotion_retires_the_previous_model_and_rollback_is_one_call() {
        let dir = tempfile::tempdir().expect("tmp");
        let reg = Registry::<Churn>::open(dir.path()).expect("open");
        let mut versions = Vec::new();
        for _ in 0..3 {
            let v = reg.next_version().expect("version");
            let (t, m) = trained(&v);
            reg.publish(&t, &m).expect("publish");
            versions.push(v);
        }
        let [v1, v2, v3] = [&versions[0], &versions[1], &versions[2]];
        reg.promote(v1, decision(true, "first")).expect("v1");
        reg.promote(v2, decision(true, "better")).expect("v2");
        let kept = reg
            .keep_candidate(v3, decision(false, "worse than churn-v2"))
            .expect("v3 kept back");
        assert_eq!(kept.status, Some(ModelStatus::Candidate));
        assert_eq!(reg.current().expect("read").as_ref(), Some(v2));
        assert_eq!(status(&reg, v1), Some(ModelStatus::Retired));
        assert_eq!(status(&reg, v2), Some(ModelStatus::Current));
        assert_eq!(
            reg.metadata(v3)
                .expect("read")
                .and_then(|m| m.promotion)
                .map(|p| (p.promoted, p.reason)),
            Some((false, "worse than churn-v2".to_owned()))
        );

        // Rollback to v1: one call; v2 is retired, v1 current again with the reason recorded.
        let meta = reg
            .promote(v1, decision(true, "rollback"))
            .expect("rollback");
        assert_eq!(meta.status, Some(ModelStatus::Current));
        assert_eq!(reg.current().expect("read").as_ref(), Some(v1));
        assert_eq!(status(&reg, v2), Some(ModelStatus::Retired));
        assert_eq!(status(&reg, v3), Some(ModelStatus::Candidate));

        let unknown = ModelVersion::parse("churn-v9").expect("v");
        assert!(matches!(
            reg.promote(&unknown, decision(true, "x")),
            Err(RegistryError::UnknownVersion(_))
        ));
        assert_eq!(reg.current().expect("read").as_ref(), Some(v1));
    }

    #[test]
    fn a_shadow_is_another_loadable_version_and_ends_when_promoted() {
        let dir = tempfile::tempdir().expect("tmp");
        let reg = Registry::<Churn>::open(dir.path()).expect("open");
        let mut versions = Vec::new();
        for _ in 0..2 {
            let v = reg.next_version().expect("version");
            let (t, m) = trained(&v);
            reg.publish(&t, &m).expect("publish");
            versions.push(v);
        }
        let [v1, v2] = [&versions[0], &versions[1]];
        reg.promote(v1, decision(true, "first")).expect("v1");
        assert_eq!(reg.shadow().expect("read"), None);
        assert!(matches!(
            reg.set_shadow(v1),
            Err(RegistryError::ShadowIsCurrent(_))
        ));
        let unknown = ModelVersion::parse("churn-v9").expect("v");
        assert!(matches!(
            reg.set_shadow(&unknown),
            Err(RegistryError::UnknownVersion(_))
        ));
        reg.set_shadow(v2).expect("shadow");
        assert_eq!(reg.shadow().expect("read").as_ref(), Some(v2));
        assert_eq!(
            reg.current().expect("read").as_ref(),
            Some(v1),
            "a shadow is not served"
        );
        // Promoting the challenger ends the shadowing.
        reg.promote(v2, decision(true, "won")).expect("v2");
        assert_eq!(reg.shadow().expect("read"), None);
        reg.set_shadow(v1)
            .expect("the old model can shadow the new one");
        assert_eq!(reg.clear_shadow().expect("clear").as_ref(), Some(v1));
        assert_eq!(reg.shadow().expect("read"), None);
        assert_eq!(reg.clear_shadow().expect("clear again"), None);
    }

    #[test]
    fn a_broken_artefact_is_never_made_current() {
        let dir = tempfile::tempdir().expect("tmp");
        let reg = Registry::<Churn>::open(dir.path()).expect("open");
        let v1 = reg.next_version().expect("v1");
        let (mut t, m) = trained(&v1);
        if let ServedChurnModel::Mlp(a) = &mut t.artifact {
            a.layers[0].weights.clear();
        }
        reg.publish(&t, &m).expect("publish");
        assert!(matches!(
            reg.promote(&v1, decision(true, "x")),
            Err(RegistryError::Corrupt { .. })
        ));
        assert_eq!(reg.current().expect("read"), None);
    }

    #[test]
    fn models_stored_before_statuses_read_as_current_or_retired() {
        let dir = tempfile::tempdir().expect("tmp");
        let reg = Registry::<Churn>::open(dir.path()).expect("open");
        let v1 = reg.next_version().expect("v1");
        let (t, m) = trained(&v1);
        reg.publish(&t, &m).expect("publish");
        // What the old registry wrote: no status, CURRENT names the version.
        let path = dir.path().join("churn/churn-v1/metadata.json");
        let mut raw: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        raw.as_object_mut().expect("object").remove("status");
        std::fs::write(&path, raw.to_string()).expect("write");
        assert_eq!(status(&reg, &v1), Some(ModelStatus::Retired));
        std::fs::write(dir.path().join("churn/CURRENT"), "churn-v1").expect("write");
        assert_eq!(status(&reg, &v1), Some(ModelStatus::Current));
    }

    mod clv {
        use sextant_contracts::api::{ClvMetrics, ValueTier, ValueTierThreshold};
        use sextant_models::clv::serving::{CLV_KIND, PurchaseParams, SpendParams};

        use super::*;

        fn publication(version: &ModelVersion) -> (Publication<Clv>, ClvModelMetadata) {
            let artifact = ClvArtifact {
                kind: CLV_KIND.into(),
                version: version.clone(),
                feature_set: "rfmt-v2".into(),
                purchase: PurchaseParams::Nbd { r: 1.0, alpha: 5.0 },
                spend: SpendParams {
                    p: 5.0,
                    q: 3.0,
                    gamma: 10.0,
                },
                tier_horizon_months: 12,
                tier_discount_rate_annual: 0.1,
                tiers: [
                    (ValueTier::High, 10.0),
                    (ValueTier::Medium, 5.0),
                    (ValueTier::Low, 0.0),
                ]
                .into_iter()
                .map(|(name, min_value)| ValueTierThreshold { name, min_value })
                .collect(),
                typical: None,
            };
            let meta = ClvModelMetadata {
                version: version.clone(),
                created_at: Utc::now(),
                metrics: ClvMetrics {
                    holdout_mae_purchases: 0.5,
                    holdout_mean_actual: 1.0,
                    holdout_mean_predicted: 1.1,
                    holdout_auc_any_purchase: Some(0.7),
                    holdout_purchase_rate: 0.4,
                    holdout_weeks: 13.0,
                    n_accounts: 100,
                    n_repeat_buyers: 60,
                    n_missing_at_window_end: 0,
                    purchase_model: "nbd".into(),
                    log_likelihood: -100.0,
                },
                config: BTreeMap::new(),
                training_set_fingerprint: "f".repeat(64),
                status: None,
                promotion: None,
            };
            (
                Publication {
                    artifact,
                    plots: vec![("holdout.svg", "<svg/>".into())],
                },
                meta,
            )
        }

        #[test]
        fn clv_publish_promote_keep_a_candidate_and_roll_back() {
            let dir = tempfile::tempdir().expect("tmp");
            let reg = Registry::<Clv>::open(dir.path()).expect("open");
            // The churn registry beside it is untouched, and its versions are not CLV versions.
            let churn = Registry::<Churn>::open(dir.path()).expect("churn");
            let mut versions = Vec::new();
            for _ in 0..3 {
                let v = reg.next_version().expect("version");
                let (p, m) = publication(&v);
                reg.publish(&p, &m).expect("publish");
                assert_eq!(status(&reg, &v), Some(ModelStatus::Candidate));
                versions.push(v);
            }
            assert_eq!(versions[0].to_string(), "clv-v1");
            assert_eq!(reg.current().expect("read"), None, "published = candidate");
            let [v1, v2, v3] = [&versions[0], &versions[1], &versions[2]];
            reg.promote(v1, decision(true, "first")).expect("v1");
            reg.promote(v2, decision(true, "better")).expect("v2");
            let kept = reg
                .keep_candidate(v3, decision(false, "MAE worse than clv-v2"))
                .expect("kept");
            assert_eq!(kept.status, Some(ModelStatus::Candidate));
            assert_eq!(reg.current().expect("read").as_ref(), Some(v2));
            assert_eq!(status(&reg, v1), Some(ModelStatus::Retired));
            reg.promote(v1, decision(true, "rollback"))
                .expect("rollback");
            assert_eq!(reg.current().expect("read").as_ref(), Some(v1));
            assert_eq!(status(&reg, v2), Some(ModelStatus::Retired));
            assert_eq!(status(&reg, v3), Some(ModelStatus::Candidate));
            assert!(reg.plot(v3, "holdout.svg").expect("read").is_some());
            assert!(reg.artifact(v1).expect("read").is_some());
            assert_eq!(churn.versions().expect("churn").len(), 0);
            let churn_v1 = ModelVersion::parse("churn-v1").expect("v");
            assert!(reg.metadata(&churn_v1).expect("read").is_none());
            assert!(matches!(
                reg.promote(&churn_v1, decision(true, "x")),
                Err(RegistryError::UnknownVersion(_))
            ));
        }

        #[test]
        fn a_broken_clv_artefact_is_never_made_current() {
            let dir = tempfile::tempdir().expect("tmp");
            let reg = Registry::<Clv>::open(dir.path()).expect("open");
            let v1 = reg.next_version().expect("v1");
            let (mut p, m) = publication(&v1);
            p.artifact.spend.q = 0.5;
            reg.publish(&p, &m).expect("publish");
            assert!(matches!(
                reg.promote(&v1, decision(true, "x")),
                Err(RegistryError::Corrupt { .. })
            ));
            assert_eq!(reg.current().expect("read"), None);
        }
    }
}
