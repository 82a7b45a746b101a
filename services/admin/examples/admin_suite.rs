//! The whole suite on loopback with the admin console in front of it, for the browser test
//! (`scripts/admin-browser-test.sh`) and for trying the console by hand.
//!
//! Starts the org simulator and the four services, runs the demo (sync, train `churn-v1`, score
//! every account through the gateway), trains a second version, starts the console, prints one
//! JSON line `{"admin_url", "admin_token", "urls", "models"}` on stdout and serves until its
//! standard input closes.
//!
//!   cargo run -p sextant-admin --example admin_suite -- [EPOCHS]

use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;
use secrecy::SecretString;
use sextant::demo::{DemoOptions, run};
use sextant::suite::{Suite, SuiteOptions};
use sextant_contracts::api::{JobState, TrainJob, TrainJobRequest};
use sextant_service_kit::http::read_json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let epochs: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()
        .context("EPOCHS must be a number")?
        .unwrap_or(5);
    let data_dir = std::env::temp_dir().join(format!("sextant-admin-suite-{}", std::process::id()));
    let today = chrono::NaiveDate::from_ymd_opt(2011, 12, 10).context("date")?;
    let suite = Suite::start(&SuiteOptions {
        data_dir: data_dir.clone(),
        today,
        batch_size: 2000,
    })
    .await?;
    let options = DemoOptions {
        epochs,
        progress: true,
        ..DemoOptions::default()
    };
    run(&suite, &options).await.context("the demo")?;

    // A second version, so the console has something to promote or roll back to.
    // The suite's services require internal tokens (the demo's random key).
    let http = suite.internal_client(Duration::from_secs(60));
    let mut job: TrainJob = read_json(
        http.post(format!("{}/v1/jobs", suite.urls.trainer))
            .json(&TrainJobRequest {
                cutoff: options.cutoff,
                horizon_days: options.horizon_days,
                epochs: Some(epochs),
                seed: Some(7),
                cutoff_step_days: None,
                cutoff_span_days: None,
            })
            .send()
            .await?,
    )
    .await
    .context("starting the second training")?;
    while matches!(job.state, JobState::Queued | JobState::Running) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        job = read_json(
            http.get(format!("{}/v1/jobs/{}", suite.urls.trainer, job.id))
                .send()
                .await?,
        )
        .await?;
    }
    if job.state == JobState::Failed {
        bail!("second training failed: {}", job.error.unwrap_or_default());
    }

    let token: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let mut settings = sextant_admin::Settings::with_token(SecretString::from(token.clone()));
    settings.port = 0;
    settings.connector_url = suite.urls.connector.clone();
    settings.trainer_url = suite.urls.trainer.clone();
    settings.gateway_url = suite.urls.gateway.clone();
    settings.internal_token = Some(SecretString::from(
        suite.internal_token_for_tests().to_owned(),
    ));
    let admin = sextant_admin::Application::build(&settings)?;
    let admin_url = format!("http://127.0.0.1:{}", admin.port());
    let handle = admin.handle();
    tokio::spawn(admin.run_until_stopped());

    let models: serde_json::Value = read_json(
        http.get(format!("{}/v1/models", suite.urls.trainer))
            .send()
            .await?,
    )
    .await?;
    println!(
        "{}",
        serde_json::json!({
            "admin_url": admin_url,
            "admin_token": token,
            "urls": suite.urls,
            "models": models,
        })
    );

    // Serve until the caller closes our standard input (or goes away).
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
    })
    .await;
    handle.stop(true).await;
    suite.stop().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
