//! Layered configuration: compiled defaults (serde defaults on each settings struct), then an
//! optional TOML file, then environment variables `SEXTANT_<SERVICE>__SECTION__KEY`.
//!
//! Secrets are `secrecy::SecretString` in the settings structs, so they never print in `Debug`
//! output or logs; they are best given as files (`*_path`) mounted from Kubernetes secrets.

use std::path::Path;

use serde::de::DeserializeOwned;

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] config::ConfigError);

/// Loads `T` from its defaults, an optional TOML file and `{prefix}__…` environment variables.
pub fn load<T: DeserializeOwned>(prefix: &str, file: Option<&Path>) -> Result<T, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(file) = file {
        builder = builder.add_source(config::File::from(file).required(true));
    }
    builder = builder.add_source(
        config::Environment::with_prefix(prefix)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true),
    );
    Ok(builder.build()?.try_deserialize()?)
}
