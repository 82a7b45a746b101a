//! What the store's HTTP test suites share: the databases each test runs against and starting
//! the store. SQLite always;
//! a fresh PostgreSQL database as well when `SEXTANT_TEST_POSTGRES_URL` names a server (the
//! same suite on both, as the store promises).

use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};
use sea_orm::{ConnectionTrait, Database};
use sextant_contracts::time::FixedClock;
use sextant_feature_store::{Application, Settings};

/// A name no other test run on this machine uses (time and process id).
pub fn unique_name() -> String {
    let n: u128 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{n:x}{:x}", std::process::id())
}

/// `sqlite` first, then the URL of a freshly created PostgreSQL database when configured (a
/// visible SKIPPED line otherwise).
pub async fn databases(sqlite: String) -> Vec<String> {
    let mut urls = vec![sqlite];
    match std::env::var("SEXTANT_TEST_POSTGRES_URL") {
        Ok(base) => {
            let name = format!("sextant_test_{}", unique_name());
            let admin = Database::connect(&base)
                .await
                .expect("PostgreSQL reachable at SEXTANT_TEST_POSTGRES_URL");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create database");
            let (prefix, _) = base.rsplit_once('/').expect("url has a database name");
            urls.push(format!("{prefix}/{name}"));
        }
        Err(_) => eprintln!("SKIPPED PostgreSQL variant: SEXTANT_TEST_POSTGRES_URL is not set"),
    }
    urls
}

/// Starts the store on `settings` with its clock fixed at noon (UTC) of `day`, on loopback: its
/// base URL.
pub async fn start(settings: &Settings, day: NaiveDate) -> String {
    let noon = day.and_hms_opt(12, 0, 0).expect("noon");
    let clock = Arc::new(FixedClock(Utc.from_utc_datetime(&noon)));
    let app = Application::build(settings, clock).await.expect("starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    base
}
