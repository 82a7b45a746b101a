//! The CLV models' registry: the same layout and rules as the churn registry ([`Registry`]), in
//! its own directory, with the CLV artefact and metadata.
//!
//! ```text
//! <registry_dir>/clv/
//!   clv-v1/artifact.json  metadata.json  holdout.svg
//!   CURRENT
//! ```
//! Versions are listed, numbered and read by [`Registry`] (it only reads directory names and
//! `CURRENT`); what differs is what a version holds, so publishing, promotion and metadata are
//! here. A version is written under a temporary name and renamed; `CURRENT` and metadata
//! rewrites are replaced the same way; promotions are serialised by a lock. A version becomes
//! current only when its artefact loads and validates.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sextant_contracts::ModelVersion;
use sextant_contracts::api::{ClvModelMetadata, ModelStatus, PromotionDecision};
use sextant_models::clv::serving::ClvArtifact;

use crate::registry::{Registry, RegistryError};

/// The registry name (directory and version prefix) of CLV models.
pub const CLV_REGISTRY_NAME: &str = "clv";

/// The plots a CLV version stores.
pub const CLV_PLOTS: [&str; 1] = ["holdout.svg"];

/// A stored CLV version's files besides its metadata.
#[derive(Debug, Clone)]
pub struct ClvPublication {
    pub artifact: ClvArtifact,
    /// Actual vs predicted holdout purchases per calibration frequency bin.
    pub holdout_svg: String,
}

/// The CLV registry.
#[derive(Debug, Clone)]
pub struct ClvRegistry {
    versions: Registry,
    root: PathBuf,
    promotion: Arc<Mutex<()>>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    }
}

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

impl ClvRegistry {
    /// Opens (creating if needed) `<dir>/clv`.
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        Ok(Self {
            versions: Registry::open(dir, CLV_REGISTRY_NAME)?,
            root: dir.join(CLV_REGISTRY_NAME),
            promotion: Arc::default(),
        })
    }

    /// Every stored version, oldest first.
    pub fn versions(&self) -> Result<Vec<ModelVersion>, RegistryError> {
        self.versions.versions()
    }

    /// The version a new model gets.
    pub fn next_version(&self) -> Result<ModelVersion, RegistryError> {
        self.versions.next_version()
    }

    /// The version being served, if any.
    pub fn current(&self) -> Result<Option<ModelVersion>, RegistryError> {
        self.versions.current()
    }

    /// A stored plot.
    pub fn plot(
        &self,
        version: &ModelVersion,
        name: &str,
    ) -> Result<Option<String>, RegistryError> {
        self.versions.plot(version, name)
    }

    /// Stores a model as a `candidate`.
    pub fn publish(
        &self,
        publication: &ClvPublication,
        metadata: &ClvModelMetadata,
    ) -> Result<(), RegistryError> {
        let version = metadata.version.to_string();
        let staging = self.root.join(format!(".{version}.tmp"));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging).map_err(io(&staging))?;
        let write = |name: &str, body: String| {
            let path = staging.join(name);
            fs::write(&path, body).map_err(io(&path))
        };
        let metadata = ClvModelMetadata {
            status: Some(ModelStatus::Candidate),
            ..metadata.clone()
        };
        write("artifact.json", to_json(&staging, &publication.artifact)?)?;
        write("metadata.json", to_json(&staging, &metadata)?)?;
        write(CLV_PLOTS[0], publication.holdout_svg.clone())?;
        let target = self.root.join(&version);
        fs::rename(&staging, &target).map_err(io(&target))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.promotion
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_metadata(&self, metadata: &ClvModelMetadata) -> Result<(), RegistryError> {
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
    ) -> Result<ClvModelMetadata, RegistryError> {
        let _held = self.lock();
        let mut meta = self
            .metadata(version)?
            .ok_or_else(|| RegistryError::UnknownVersion(version.clone()))?;
        meta.status = Some(ModelStatus::Candidate);
        meta.promotion = Some(decision);
        self.write_metadata(&meta)?;
        Ok(meta)
    }

    /// Makes `version` current (promotion or rollback); its artefact must load and validate;
    /// the version it replaces becomes `retired`.
    pub fn promote(
        &self,
        version: &ModelVersion,
        decision: PromotionDecision,
    ) -> Result<ClvModelMetadata, RegistryError> {
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
    pub fn metadata(
        &self,
        version: &ModelVersion,
    ) -> Result<Option<ClvModelMetadata>, RegistryError> {
        if version.name() != CLV_REGISTRY_NAME {
            return Ok(None);
        }
        self.read(version, "metadata.json")
    }

    /// A version's artefact.
    pub fn artifact(&self, version: &ModelVersion) -> Result<Option<ClvArtifact>, RegistryError> {
        if version.name() != CLV_REGISTRY_NAME {
            return Ok(None);
        }
        self.read(version, "artifact.json")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;
    use sextant_contracts::api::{ClvMetrics, ValueTier, ValueTierThreshold};
    use sextant_models::clv::serving::{CLV_KIND, PurchaseParams, SpendParams};

    use super::*;

    fn publication(version: &ModelVersion) -> (ClvPublication, ClvModelMetadata) {
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
            ClvPublication {
                artifact,
                holdout_svg: "<svg/>".into(),
            },
            meta,
        )
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

    fn status(reg: &ClvRegistry, v: &ModelVersion) -> Option<ModelStatus> {
        reg.metadata(v).expect("read").and_then(|m| m.status)
    }

    #[test]
    fn publish_promote_keep_a_candidate_and_roll_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let reg = ClvRegistry::open(dir.path()).expect("open");
        // The churn registry beside it is untouched, and its versions are not CLV versions.
        let churn = Registry::open(dir.path(), "churn").expect("churn");
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
    fn a_broken_artefact_is_never_made_current() {
        let dir = tempfile::tempdir().expect("tmp");
        let reg = ClvRegistry::open(dir.path()).expect("open");
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
