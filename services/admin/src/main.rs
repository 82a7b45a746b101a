//! `sextant-admin`: runs the admin console with settings from the environment
//! (`SEXTANT_ADMIN__ADMIN_TOKEN`, `SEXTANT_ADMIN__CONNECTOR_URL`, …).

/// mimalloc rather than glibc malloc: a request allocates many small buffers (JSON, feature
/// rows); the gateway served 11% more requests per second with it (`benches/load.rs`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sextant_service_kit::telemetry::init();
    let file = std::env::var_os("SEXTANT_CONFIG").map(std::path::PathBuf::from);
    let settings: sextant_admin::Settings =
        sextant_service_kit::config::load("SEXTANT_ADMIN", file.as_deref())
            .context("loading settings")?;
    let app = sextant_admin::Application::build(&settings).context("starting")?;
    app.run_until_signalled().await.context("serving")
}
