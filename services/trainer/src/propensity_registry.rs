//! Propensity models on any object: one prediction definition per name (what to predict, on
//! which object, from which fields), each with its own registry of versions.
//!
//! ```text
//! <registry_dir>/propensity/<name>/
//!   definition.json
//!   <name>-v1/artifact.json  metadata.json  roc.svg
//!   CURRENT
//! ```
//! A definition is fixed once a model was trained on it: its versions are only comparable (and
//! the gate only meaningful) while the label and features stay what they were; a changed question
//! is a new definition. Registries are opened once per name and shared, so promotions of one
//! definition are serialised by one lock.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sextant_models::tabular::PredictionDefinition;

use crate::registry::{Propensity, Registry, RegistryError};

/// Longest definition name.
pub const MAX_NAME: usize = 40;

/// Why a definition could not be stored or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DefinitionError {
    /// The name is not `[a-z][a-z0-9_]*`, at most 40 characters.
    #[error(
        "definition name `{0}` must start with a lower-case letter and hold only lower-case letters, digits and `_` (at most 40)"
    )]
    Name(String),
    /// No such definition.
    #[error("no prediction definition `{0}`")]
    Unknown(String),
    /// The definition is not self-consistent.
    #[error("{0}")]
    Invalid(String),
    /// Models were trained on another version of this definition.
    #[error(
        "definition `{0}` already has models trained on a different definition; create a new name"
    )]
    InUse(String),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The definitions and their registries.
#[derive(Debug, Clone)]
pub struct PropensityRegistries {
    dir: PathBuf,
    open: Arc<Mutex<HashMap<String, Registry<Propensity>>>>,
}

impl PropensityRegistries {
    /// Definitions under `<dir>/propensity`.
    pub fn new(dir: &Path) -> Result<Self, RegistryError> {
        let root = dir.join("propensity");
        fs::create_dir_all(&root).map_err(|source| RegistryError::Io {
            path: root.clone(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            open: Arc::default(),
        })
    }

    fn definition_path(&self, name: &str) -> PathBuf {
        self.dir
            .join("propensity")
            .join(name)
            .join("definition.json")
    }

    /// The registry of definition `name` (which must exist).
    ///
    /// # Errors
    /// [`DefinitionError::Name`] or [`DefinitionError::Unknown`].
    pub fn registry(&self, name: &str) -> Result<Registry<Propensity>, DefinitionError> {
        if !valid_name(name) {
            return Err(DefinitionError::Name(name.to_owned()));
        }
        if !self.definition_path(name).exists() {
            return Err(DefinitionError::Unknown(name.to_owned()));
        }
        self.open_registry(name)
    }

    fn open_registry(&self, name: &str) -> Result<Registry<Propensity>, DefinitionError> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = open.get(name) {
            return Ok(r.clone());
        }
        let r = Registry::open_named(&self.dir, name)?;
        open.insert(name.to_owned(), r.clone());
        Ok(r)
    }

    /// Definition `name`.
    ///
    /// # Errors
    /// [`DefinitionError::Name`], [`DefinitionError::Unknown`], or a stored file that does not
    /// read.
    pub fn definition(&self, name: &str) -> Result<PredictionDefinition, DefinitionError> {
        if !valid_name(name) {
            return Err(DefinitionError::Name(name.to_owned()));
        }
        let path = self.definition_path(name);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DefinitionError::Unknown(name.to_owned()));
            }
            Err(source) => return Err(RegistryError::Io { path, source }.into()),
        };
        serde_json::from_str(&text).map_err(|e| {
            RegistryError::Corrupt {
                path,
                detail: e.to_string(),
            }
            .into()
        })
    }

    /// Stores definition `name`: new, or the same again. Refused when it is invalid or differs
    /// from a stored one that already has models. Returns whether it was new or changed.
    ///
    /// # Errors
    /// See [`DefinitionError`].
    pub fn put(
        &self,
        name: &str,
        definition: &PredictionDefinition,
    ) -> Result<bool, DefinitionError> {
        if !valid_name(name) {
            return Err(DefinitionError::Name(name.to_owned()));
        }
        definition
            .validate()
            .map_err(|e| DefinitionError::Invalid(e.to_string()))?;
        match self.definition(name) {
            Ok(old) if old == *definition => return Ok(false),
            Ok(_) => {
                if !self.open_registry(name)?.versions()?.is_empty() {
                    return Err(DefinitionError::InUse(name.to_owned()));
                }
            }
            Err(DefinitionError::Unknown(_)) => {}
            Err(e) => return Err(e),
        }
        let registry = self.open_registry(name)?;
        let path = self.definition_path(name);
        let body =
            serde_json::to_string_pretty(definition).map_err(|e| RegistryError::Corrupt {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        let tmp = registry.root().join(".definition.json.tmp");
        fs::write(&tmp, body).map_err(|source| RegistryError::Io {
            path: tmp.clone(),
            source,
        })?;
        fs::rename(&tmp, &path).map_err(|source| RegistryError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(true)
    }

    /// Every definition's name, sorted.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn names(&self) -> Result<Vec<String>, RegistryError> {
        let root = self.dir.join("propensity");
        let mut names: Vec<String> = fs::read_dir(&root)
            .map_err(|source| RegistryError::Io {
                path: root.clone(),
                source,
            })?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| valid_name(n) && self.definition_path(n).exists())
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_models::tabular::LabelRule;

    fn definition(features: &[&str]) -> PredictionDefinition {
        PredictionDefinition {
            object: "Opportunity".into(),
            label_field: "IsWon".into(),
            label: LabelRule::Values {
                positive: vec!["true".into()],
            },
            features: features.iter().map(|f| (*f).to_owned()).collect(),
            kinds: Default::default(),
        }
    }

    #[test]
    fn names_are_checked_and_a_definition_with_models_is_fixed() {
        let dir = tempfile::tempdir().expect("tmp");
        let defs = PropensityRegistries::new(dir.path()).expect("open");
        for bad in ["", "Upsell", "9lives", "up-sell", &"a".repeat(41)] {
            assert!(
                matches!(
                    defs.put(bad, &definition(&["Amount"])),
                    Err(DefinitionError::Name(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            defs.put("upsell", &definition(&[])),
            Err(DefinitionError::Invalid(_))
        ));
        assert!(defs.put("upsell", &definition(&["Amount"])).expect("new"));
        assert!(!defs.put("upsell", &definition(&["Amount"])).expect("same"));
        // No model yet: the definition may still change.
        assert!(
            defs.put("upsell", &definition(&["Amount", "StageName"]))
                .expect("changed")
        );
        assert_eq!(
            defs.definition("upsell").expect("read").features,
            vec!["Amount", "StageName"]
        );
        assert!(matches!(
            defs.definition("cross_sell"),
            Err(DefinitionError::Unknown(_))
        ));
        assert!(matches!(
            defs.registry("cross_sell"),
            Err(DefinitionError::Unknown(_))
        ));
        // A version exists: changing the question is refused, the same one is accepted.
        let reg = defs.registry("upsell").expect("registry");
        std::fs::create_dir_all(reg.root().join("upsell-v1")).expect("version dir");
        assert!(matches!(
            defs.put("upsell", &definition(&["Amount"])),
            Err(DefinitionError::InUse(_))
        ));
        assert!(
            !defs
                .put("upsell", &definition(&["Amount", "StageName"]))
                .expect("same")
        );
        assert_eq!(defs.names().expect("names"), vec!["upsell"]);
    }
}
