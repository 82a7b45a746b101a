//! The model registry: versioned artefacts on disk.
//!
//! ```text
//! <registry_dir>/churn/
//!   churn-v1/artifact.json  metadata.json  roc.svg  learning_curve.svg
//!   churn-v2/…
//!   CURRENT                 ← the version the gateway serves
//! ```
//! A version directory is written completely under a temporary name and then renamed, so a
//! reader never sees half a model; `CURRENT` is replaced the same way. Versions only grow.

use std::fs;
use std::path::{Path, PathBuf};

use sextant_contracts::ModelVersion;
use sextant_contracts::api::ModelMetadata;
use sextant_models::ChurnArtifact;
use sextant_models::metrics::{line_svg, roc_svg};

use crate::training::Trained;

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
}

impl Registry {
    /// Opens (creating if needed) `<dir>/<name>`.
    pub fn open(dir: &Path, name: &str) -> Result<Self, RegistryError> {
        let root = dir.join(name);
        fs::create_dir_all(&root).map_err(io(&root))?;
        Ok(Self {
            root,
            name: name.to_owned(),
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

    /// Stores a trained model and makes it current.
    pub fn publish(
        &self,
        trained: &Trained,
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
        write(
            "artifact.json",
            serde_json::to_string_pretty(&trained.artifact).unwrap_or_default(),
        )?;
        write(
            "metadata.json",
            serde_json::to_string_pretty(metadata).unwrap_or_default(),
        )?;
        write(
            "roc.svg",
            roc_svg(&trained.roc, trained.metrics.auc, &version),
        )?;
        write(
            "learning_curve.svg",
            line_svg(
                &trained.losses,
                &format!("{version} — training loss"),
                "epoch",
                "BCE loss",
            ),
        )?;
        let target = self.root.join(&version);
        fs::rename(&staging, &target).map_err(io(&target))?;
        let current_tmp = self.root.join(".CURRENT.tmp");
        fs::write(&current_tmp, &version).map_err(io(&current_tmp))?;
        let current = self.root.join("CURRENT");
        fs::rename(&current_tmp, &current).map_err(io(&current))
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

    /// A version's metadata.
    pub fn metadata(&self, version: &ModelVersion) -> Result<Option<ModelMetadata>, RegistryError> {
        self.read(version, "metadata.json")
    }

    /// A version's artefact.
    pub fn artifact(&self, version: &ModelVersion) -> Result<Option<ChurnArtifact>, RegistryError> {
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
    use sextant_models::Dense;

    use super::*;

    fn trained(version: &ModelVersion) -> (Trained, ModelMetadata) {
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
        };
        let t = Trained {
            artifact,
            metrics,
            config: BTreeMap::new(),
            roc: vec![(0.0, 0.0), (1.0, 1.0)],
            losses: vec![0.7, 0.6],
        };
        (t, meta)
    }

    #[test]
    fn versions_grow_and_the_latest_publish_is_current() {
        let dir = tempfile::tempdir().expect("tmp");
        let reg = Registry::open(dir.path(), "churn").expect("open");
        assert_eq!(reg.current().expect("read"), None);
        let v1 = reg.next_version().expect("v1");
        assert_eq!(v1.to_string(), "churn-v1");
        let (t, m) = trained(&v1);
        reg.publish(&t, &m).expect("publish v1");
        // A half-written version (a crash mid-publish) is never listed.
        std::fs::create_dir_all(dir.path().join("churn/.churn-v2.tmp")).expect("stray");
        let v2 = reg.next_version().expect("v2");
        assert_eq!(v2.to_string(), "churn-v2");
        let (t, m) = trained(&v2);
        reg.publish(&t, &m).expect("publish v2");
        assert_eq!(reg.versions().expect("list"), vec![v1.clone(), v2.clone()]);
        assert_eq!(reg.current().expect("read"), Some(v2.clone()));
        assert_eq!(
            reg.artifact(&v1).expect("read").map(|a| a.version),
            Some(v1.clone())
        );
        assert!(
            reg.plot(&v2, "roc.svg")
                .expect("read")
                .is_some_and(|s| s.starts_with("<svg"))
        );
        assert!(reg.plot(&v2, "learning_curve.svg").expect("read").is_some());
        let unknown = ModelVersion::parse("churn-v9").expect("v");
        assert_eq!(reg.metadata(&unknown).expect("read"), None);
    }
}
