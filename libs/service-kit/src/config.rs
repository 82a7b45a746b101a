//! Layered configuration: compiled defaults (serde defaults on each settings struct), then an
//! optional TOML file, then environment variables `SEXTANT_<SERVICE>__SECTION__KEY`.
//!
//! Secrets are `secrecy::SecretString` in the settings structs, so they never print in `Debug`
//! output or logs; they are best given as files (`*_path`) mounted from Kubernetes secrets.

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] config::ConfigError);

/// Loads `T` from its defaults, an optional TOML file and the process's `{prefix}__…` variables.
pub fn load<T: DeserializeOwned>(prefix: &str, file: Option<&Path>) -> Result<T, ConfigError> {
    load_from(prefix, file, None)
}

/// As [`load`], reading variables from `env` instead of the process environment when given.
pub fn load_from<T: DeserializeOwned>(
    prefix: &str,
    file: Option<&Path>,
    env: Option<HashMap<String, String>>,
) -> Result<T, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(file) = file {
        builder = builder.add_source(config::File::from(file).required(true));
    }
    builder = builder.add_source(
        config::Environment::with_prefix(prefix)
            .prefix_separator("__")
            .separator("__")
            // No eager parsing: it turns digits-only values (a secret, a client id) into
            // numbers and mangles them; typed fields still convert from strings on demand.
            .source(env),
    );
    Ok(builder.build()?.try_deserialize()?)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Auth {
        issuer: String,
        secret: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Settings {
        #[serde(default = "default_port")]
        port: u16,
        database_url: Option<String>,
        auth: Auth,
    }

    fn default_port() -> u16 {
        8084
    }

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn nested_variables_as_the_helm_chart_sets_them() {
        let s: Settings = load_from(
            "SEXTANT_GATEWAY",
            None,
            env(&[
                ("SEXTANT_GATEWAY__PORT", "9000"),
                ("SEXTANT_GATEWAY__DATABASE_URL", "postgres://u:p@h/db"),
                ("SEXTANT_GATEWAY__AUTH__ISSUER", "salesforce"),
                // Digits-only values still reach String fields.
                (
                    "SEXTANT_GATEWAY__AUTH__SECRET",
                    "01234567890123456789012345678901",
                ),
                ("SEXTANT_TRAINER__PORT", "1"),
            ]),
        )
        .expect("loads");
        assert_eq!(s.port, 9000);
        assert_eq!(s.database_url.as_deref(), Some("postgres://u:p@h/db"));
        assert_eq!(s.auth.issuer, "salesforce");
        assert_eq!(
            s.auth.secret.as_deref(),
            Some("01234567890123456789012345678901")
        );
    }

    #[test]
    fn file_then_environment_then_defaults() {
        let dir = std::env::temp_dir().join(format!("sextant-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("gateway.toml");
        std::fs::write(&file, "port = 7000\n[auth]\nissuer = \"from-file\"\n").expect("write");
        let s: Settings = load_from("SEXTANT_GATEWAY", Some(&file), env(&[])).expect("loads");
        assert_eq!((s.port, s.auth.issuer.as_str()), (7000, "from-file"));
        let s: Settings = load_from(
            "SEXTANT_GATEWAY",
            Some(&file),
            env(&[("SEXTANT_GATEWAY__AUTH__ISSUER", "from-env")]),
        )
        .expect("loads");
        assert_eq!(
            s.auth.issuer, "from-env",
            "the environment overrides the file"
        );
        let err =
            load_from::<Settings>("SEXTANT_GATEWAY", None, env(&[])).expect_err("auth is required");
        assert!(err.to_string().contains("auth"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
