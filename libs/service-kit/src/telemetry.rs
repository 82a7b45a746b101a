//! Logging set-up: `tracing` with an env filter (`RUST_LOG`, default `info`), human-readable by
//! default and JSON when `SEXTANT_LOG_FORMAT=json` (what the Helm chart sets).

use std::sync::Once;

static INIT: Once = Once::new();

/// Installs the global subscriber once; later calls do nothing (tests call it many times).
pub fn init() {
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
        let json = std::env::var("SEXTANT_LOG_FORMAT").is_ok_and(|v| v == "json");
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        // Another crate may have installed a subscriber first; that is not an error for us.
        let _ = if json {
            builder.json().try_init()
        } else {
            builder.try_init()
        };
    });
}
