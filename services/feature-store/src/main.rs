//! `sextant-feature-store`: runs the feature store with settings from the environment.

/// mimalloc rather than glibc malloc: a request allocates many small buffers (JSON, feature
/// rows); the gateway served 11% more requests per second with it (`benches/load.rs`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;

use anyhow::Context;
use sextant_contracts::time::{FixedClock, SharedClock, system_clock};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sextant_service_kit::telemetry::init();
    let file = std::env::var_os("SEXTANT_CONFIG").map(std::path::PathBuf::from);
    let settings =
        sextant_feature_store::load_settings(file.as_deref()).context("loading settings")?;
    let clock: SharedClock = match settings.today {
        Some(day) => Arc::new(FixedClock(
            day.and_hms_opt(12, 0, 0).context("date")?.and_utc(),
        )),
        None => system_clock(),
    };
    let app = sextant_feature_store::Application::build(&settings, clock)
        .await
        .context("starting")?;
    app.run_until_signalled().await.context("serving")
}
