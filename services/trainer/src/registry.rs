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
