//! The propensity models of every prediction definition the trainer has, followed in the
//! background.
//!
//! Definitions are created on the trainer at any time, so the gateway cannot know them at start:
//! a follower lists `GET /v1/propensity` every refresh interval and gives each definition with a
//! current model its own [`ModelCache`] (and refresher), which then behaves like the churn and
//! CLV caches — the request path never waits on the trainer, a failed refresh keeps the last good
//! model. A definition the gateway has not seen yet is answered `no_model` until the next listing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;
use sextant_service_kit::http::read_json;

use crate::model_cache::{ModelCache, ServedPropensity};

/// At most this many definitions are followed (each costs one refresher and one model).
pub const MAX_DEFINITIONS: usize = 500;

/// What the follower needs of `GET /v1/propensity`.
#[derive(Debug, Deserialize)]
struct Entry {
    name: String,
    current: Option<String>,
}

/// Caches by definition name.
#[derive(Debug)]
pub struct PropensityModels {
    http: sextant_service_kit::internal_auth::InternalClient,
    trainer_url: String,
    refresh: Duration,
    caches: RwLock<HashMap<String, Arc<ModelCache<ServedPropensity>>>>,
}

impl PropensityModels {
    /// Follows the definitions of the trainer at `trainer_url`; call
    /// [`PropensityModels::run_follower`].
    pub fn new(
        http: sextant_service_kit::internal_auth::InternalClient,
        trainer_url: &str,
        refresh: Duration,
    ) -> Self {
        Self {
            http,
            trainer_url: trainer_url.trim_end_matches('/').to_owned(),
            refresh,
            caches: RwLock::default(),
        }
    }

    /// The cache of definition `name`, once the follower has seen a model for it.
    pub fn get(&self, name: &str) -> Option<Arc<ModelCache<ServedPropensity>>> {
        self.caches
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Lists the definitions every refresh interval until the task is dropped; a failed listing
    /// is logged and retried, the caches already made keep serving.
    pub async fn run_follower(self: Arc<Self>) {
        loop {
            if let Err(e) = self.follow_once().await {
                tracing::warn!(error = %e, "Listing the trainer's prediction definitions failed; retrying.");
            }
            tokio::time::sleep(self.refresh).await;
        }
    }

    async fn follow_once(&self) -> Result<(), String> {
        let resp = self
            .http
            .get(format!("{}/v1/propensity", self.trainer_url))
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let entries: Vec<Entry> = read_json(resp).await.map_err(|e| e.to_string())?;
        for entry in entries.into_iter().filter(|e| e.current.is_some()) {
            let mut caches = self
                .caches
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if caches.contains_key(&entry.name) {
                continue;
            }
            if caches.len() >= MAX_DEFINITIONS {
                tracing::warn!(definition = %entry.name, max = MAX_DEFINITIONS, "Too many prediction definitions; this one is not served.");
                continue;
            }
            let cache = Arc::new(ModelCache::with_route(
                self.http.clone(),
                &self.trainer_url,
                &format!("/v1/propensity/{}/models", entry.name),
                self.refresh,
            ));
            tokio::spawn(Arc::clone(&cache).run_refresher());
            tracing::info!(definition = %entry.name, "Following a prediction definition's model.");
            caches.insert(entry.name, cache);
        }
        Ok(())
    }
}
