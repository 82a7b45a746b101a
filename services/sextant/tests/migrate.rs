//! `sextant migrate feature-store`: what the Helm chart's pre-install/pre-upgrade Job runs. It
//! must leave a migrated database behind and exit 0, or exit non-zero naming the database
//! (never its password).

use std::process::Command;

fn sextant() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sextant"));
    c.env_remove("RUST_LOG")
        .env_remove("DATABASE_URL")
        .env_remove("SEXTANT_CONFIG");
    c
}

#[test]
fn migrate_creates_the_feature_store_tables_and_exits() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("features.sqlite");
    let out = sextant()
        .args(["migrate", "feature-store"])
        .env(
            "SEXTANT_FEATURE_STORE__DATABASE_URL",
            format!("sqlite://{}?mode=rwc", db.display()),
        )
        .output()?;
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SQLite keeps each table's CREATE statement as text in the file: the migration table and
    // the account table must be there.
    let bytes = std::fs::read(&db)?;
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("seaql_migrations"), "no migration table");
    assert!(text.contains("CREATE TABLE"), "no tables created");
    // A second run finds nothing to do and still succeeds.
    let again = sextant()
        .args(["migrate", "feature-store"])
        .env(
            "SEXTANT_FEATURE_STORE__DATABASE_URL",
            format!("sqlite://{}?mode=rwc", db.display()),
        )
        .output()?;
    assert!(again.status.success());
    Ok(())
}

#[test]
fn migrate_names_an_unreachable_database() -> Result<(), Box<dyn std::error::Error>> {
    let out = sextant()
        .args(["migrate", "feature-store"])
        // Port 1 on loopback: nothing listens there.
        .env(
            "SEXTANT_FEATURE_STORE__DATABASE_URL",
            "postgres://sextant:hunter2@127.0.0.1:1/features",
        )
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "migrating the feature store database postgres://sextant:***@127.0.0.1:1/features"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    Ok(())
}
