//! The four services on loopback for `scripts/schemathesis.sh`, which runs schemathesis against
//! each committed OpenAPI document.
//!
//! Starts the org simulator and the four services (SQLite, fresh registry), with no sync and no
//! trained model: the contract tests exercise the HTTP surface, and a gateway without a model
//! answers its declared `503 no_model`. Prints one JSON line
//! `{"urls", "internal_token", "gateway_token"}` on stdout (the internal key is accepted as a
//! bearer by the internal services; the gateway token is HS256 for the suite's development
//! secret, valid for an hour) and serves until its standard input closes.
//!
//!   cargo run -p sextant --example schemathesis_suite

use anyhow::Context;
use sextant::suite::{Suite, SuiteOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data_dir =
        std::env::temp_dir().join(format!("sextant-schemathesis-suite-{}", std::process::id()));
    // The feature store's export root is relative to the working directory: exports the tests
    // ask for land in the suite's own directory, never in the caller's.
    std::fs::create_dir_all(&data_dir)?;
    std::env::set_current_dir(&data_dir)?;
    let today = chrono::NaiveDate::from_ymd_opt(2011, 12, 10).context("date")?;
    let suite = Suite::start(&SuiteOptions {
        data_dir: data_dir.clone(),
        today,
        batch_size: 2000,
    })
    .await?;
    println!(
        "{}",
        serde_json::json!({
            "urls": suite.urls,
            "internal_token": suite.internal_token_for_tests(),
            "gateway_token": suite.gateway_token(3600)?,
        })
    );

    // Serve until the caller closes our standard input (or goes away).
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
    })
    .await;
    suite.stop().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
