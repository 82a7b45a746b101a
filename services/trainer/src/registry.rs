//! The model registry: versioned artefacts on disk.
//!
//! ```text
//! <registry_dir>/churn/
//!   churn-v1/artifact.json  metadata.json  roc.svg  learning_curve.svg
//!   churn-v2/…
//!   CURRENT                 ← the version the gateway serves
//! ```
//! A version directory is written completely under a temporary name and then renamed, so a
//! reader never sees half a model; `CURRENT` and metadata rewrites are replaced the same way.
//! Versions only grow.
//!
//! # Promotion
//! Publishing stores a version as a `candidate`; [`Registry::promote`] makes one `current` (the
//! one the gateway serves) and the one it replaces `retired`, recording the decision and its
//! reason in the version's metadata. The trainer's gate promotes a new version only when it is at
//! least as good as the current one on the same evaluation; rollback is promoting an earlier
//! version. Promotions are serialised by a lock, so two never interleave.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sextant_contracts::ModelVersion;
use sextant_contracts::api::{ModelMetadata, ModelStatus, PromotionDecision};
use sextant_models::churn_serving::ServedChurnModel;
use sextant_models::metrics::{line_svg, roc_svg};

use crate::training::Trained;

/// What a version stores besides its metadata: the served artefact and its plots' data.
#[derive(Debug, Clone)]
pub struct Publication {
    pub artifact: ServedChurnModel,
    /// Held-out ROC-AUC (the ROC plot's title).
    pub auc: f64,
    /// Held-out ROC curve.
    pub roc: Vec<(f64, f64)>,
    /// Training loss per epoch.
    pub losses: Vec<f64>,
}

impl From<&Trained> for Publication {
    fn from(t: &Trained) -> Self {
        Self {
            artifact: ServedChurnModel::Mlp(t.artifact.clone()),
            auc: t.metrics.auc,
            roc: t.roc.clone(),
            losses: t.losses.clone(),
        }
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
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A registry of one model family (`churn`).
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
    name: String,
    /// Held while `CURRENT` and statuses change.
    promotion: Arc<Mutex<()>>,
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

impl Registry {
    /// Opens (creating if needed) `<dir>/<name>`.
    pub fn open(dir: &Path, name: &str) -> Result<Self, RegistryError> {
        let root = dir.join(name);
        fs::create_dir_all(&root).map_err(io(&root))?;
        Ok(Self {
            root,
            name: name.to_owned(),
            promotion: Arc::default(),
        })
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
        publication: &Publication,
        metadata: &ModelMetadata,
    ) -> Result<(), RegistryError> {
        let version = metadata.version.to_string();
        let staging = self.root.join(format!(".{version}.tmp"));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging).map_err(io(&staging))?;
        let write = |name: &str, body: String| {
            let path = staging.join(name);
            fs::write(&path, body).map_err(io(&path))
        };
        let metadata = ModelMetadata {
            status: Some(ModelStatus::Candidate),
            ..metadata.clone()
        };
        write("artifact.json", to_json(&staging, &publication.artifact)?)?;
        write("metadata.json", to_json(&staging, &metadata)?)?;
        write(
            "roc.svg",
            roc_svg(&publication.roc, publication.auc, &version),
        )?;
        write(
            "learning_curve.svg",
            line_svg(
                &publication.losses,
                &format!("{version} — training loss"),
                "epoch",
                "BCE loss",
            ),
        )?;
        let target = self.root.join(&version);
        fs::rename(&staging, &target).map_err(io(&target))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.promotion
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_metadata(&self, metadata: &ModelMetadata) -> Result<(), RegistryError> {
        let path = self
            .root
            .join(metadata.version.to_string())
            .join("metadata.json");
        write_atomic(&path, &to_json(&path, metadata)?)
    }

    /// Records a decision that keeps `version` a candidate.
    pub fn keep_candidate(
        &self,
        version: &ModelVersion,
        decision: PromotionDecision,
    ) -> Result<ModelMetadata, RegistryError> {
        let _held = self.lock();
        let mut meta = self
            .metadata(version)?
            .ok_or_else(|| RegistryError::UnknownVersion(version.clone()))?;
        meta.status = Some(ModelStatus::Candidate);
        meta.promotion = Some(decision);
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
    ) -> Result<ModelMetadata, RegistryError> {
        let _held = self.lock();
        let mut meta = self
            .metadata(version)?
            .ok_or_else(|| RegistryError::UnknownVersion(version.clone()))?;
        let artifact = self
            .artifact(version)?
            .ok_or_else(|| RegistryError::UnknownVersion(version.clone()))?;
        artifact.validate().map_err(|e| RegistryError::Corrupt {
            path: self.root.join(version.to_string()),
            detail: e.to_string(),
        })?;
        let previous = self.current()?;
        meta.status = Some(ModelStatus::Current);
        meta.promotion = Some(decision);
        self.write_metadata(&meta)?;
        write_atomic(&self.root.join("CURRENT"), &version.to_string())?;
        if let Some(prev) = previous.filter(|p| p != version)
            && let Some(mut old) = self.metadata(&prev)?
        {
            old.status = Some(ModelStatus::Retired);
            self.write_metadata(&old)?;
        }
        Ok(meta)
    }

    /// The version being served, if any.
    pub fn current(&self) -> Result<Option<ModelVersion>, RegistryError> {
        let path = self.root.join("CURRENT");
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

    fn read<T: serde::de::DeserializeOwned>(
        &self,
        version: &ModelVersion,
        file: &str,
    ) -> Result<Option<T>, RegistryError> {
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
    pub fn metadata(&self, version: &ModelVersion) -> Result<Option<ModelMetadata>, RegistryError> {
        let Some(mut meta) = self.read::<ModelMetadata>(version, "metadata.json")? else {
            return Ok(None);
        };
        if meta.status.is_none() {
            meta.status = Some(if self.current()?.as_ref() == Some(version) {
                ModelStatus::Current
            } else {
                ModelStatus::Retired
            });
        }
        Ok(Some(meta))
    }

    /// A version's artefact (the sequence model, or a churn MLP stored before it).
    pub fn artifact(
        &self,
        version: &ModelVersion,
    ) -> Result<Option<ServedChurnModel>, RegistryError> {
        self.read(version, "artifact.json")
    }

    /// A stored plot (`roc.svg`, `learning_curve.svg`).
    pub fn plot(
        &self,
        version: &ModelVersion,
        name: &str,
    ) -> Result<Option<String>, RegistryError> {
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

    fn trained(version: &ModelVersion) -> (Publication, ModelMetadata) {
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

    fn status(reg: &Registry, v: &ModelVersion) -> Option<ModelStatus> {
        reg.metadata(v).expect("read").and_then(|m| m.status)
    }

    #[test]
    fn versions_grow_and_publishing_does_not_change_the_current_model() {
        let dir = tempfile::tempdir().expect("tmp");
        let reg = Registry::open(dir.path(), "churn").expect("open");
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
        let reg = Registry::open(dir.path(), "churn").expect("open");
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
    fn a_broken_artefact_is_never_made_current() {
        let dir = tempfile::tempdir().expect("tmp");
        let reg = Registry::open(dir.path(), "churn").expect("open");
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
        let reg = Registry::open(dir.path(), "churn").expect("open");
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
}
