//! A database created by the walking skeleton (migration `migration`, the `sf_*` tables) upgrades
//! in place: its rows move into the versioned tables of the default org and keep counting.

use chrono::{NaiveDate, TimeZone, Utc};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use sextant_feature_store::store::Store;

#[tokio::test]
async fn a_skeleton_database_upgrades_with_its_rows() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("old.sqlite").display()
    );
    {
        // What the skeleton left behind: its migration recorded, its tables and rows (timestamps
        // as sea-orm wrote them).
        let db = Database::connect(&url).await?;
        let exec = |sql: &str| Statement::from_string(DbBackend::Sqlite, sql.to_owned());
        for sql in [
            "CREATE TABLE seaql_migrations (version varchar NOT NULL PRIMARY KEY, applied_at bigint NOT NULL)",
            "INSERT INTO seaql_migrations VALUES ('migration', 1700000000)",
            "CREATE TABLE sf_account (id varchar NOT NULL PRIMARY KEY, name varchar NOT NULL, billing_country varchar NULL, industry varchar NULL, created_date timestamp_with_timezone_text NOT NULL, last_modified_date timestamp_with_timezone_text NOT NULL)",
            "CREATE TABLE sf_contact (id varchar NOT NULL PRIMARY KEY, account_id varchar NULL, first_name varchar NULL, last_name varchar NOT NULL, email varchar NULL, last_modified_date timestamp_with_timezone_text NOT NULL)",
            "CREATE TABLE sf_product (id varchar NOT NULL PRIMARY KEY, name varchar NOT NULL, product_code varchar NULL, last_modified_date timestamp_with_timezone_text NOT NULL)",
            "CREATE TABLE sf_order (id varchar NOT NULL PRIMARY KEY, account_id varchar NOT NULL, effective_date date_text NOT NULL, status varchar NOT NULL, order_number varchar NULL, last_modified_date timestamp_with_timezone_text NOT NULL)",
            "CREATE TABLE sf_order_item (id varchar NOT NULL PRIMARY KEY, order_id varchar NOT NULL, product_id varchar NULL, quantity real NOT NULL, unit_price real NOT NULL, last_modified_date timestamp_with_timezone_text NOT NULL)",
            "CREATE TABLE sf_case (id varchar NOT NULL PRIMARY KEY, account_id varchar NULL, subject varchar NULL, description text NULL, status varchar NULL, created_date timestamp_with_timezone_text NOT NULL, last_modified_date timestamp_with_timezone_text NOT NULL)",
            "INSERT INTO sf_account VALUES ('0015g00000000001AAA', 'A', 'France', NULL, '2010-12-01 00:00:00 +00:00', '2011-01-01 00:00:00 +00:00')",
            "INSERT INTO sf_order VALUES ('8015g00000000001AAA', '0015g00000000001AAA', '2011-03-01', 'Activated', NULL, '2011-03-01 09:30:00 +00:00')",
            "INSERT INTO sf_order_item VALUES ('8025g00000000001AAA', '8015g00000000001AAA', NULL, 2.0, 21.0, '2011-03-01 09:30:00 +00:00')",
        ] {
            db.execute_raw(exec(sql)).await?;
        }
    }
    let store = Store::connect(&url, &["Activated".to_owned()]).await?;
    let now = Utc
        .with_ymd_and_hms(2011, 6, 1, 12, 0, 0)
        .single()
        .ok_or("time")?;
    let as_of = NaiveDate::from_ymd_opt(2011, 6, 2).ok_or("date")?;
    let rows = store
        .online("default", &["0015g00000000001AAA".to_owned()], as_of, now)
        .await?;
    assert_eq!(rows.len(), 1, "the account survived the upgrade");
    let features = rows[0].features.clone().ok_or("history")?;
    assert_eq!(features[3], 42.0, "monetary_total from the old order line");
    assert_eq!(features[0], 93.0, "recency: 2011-03-01 to 2011-06-02");
    assert_eq!(
        rows[0].attributes.get("country").map(String::as_str),
        Some("France")
    );
    // As of a cut-off before the order was modified (known), it is not there.
    let history = store
        .histories(
            store.connection(),
            "default",
            &["0015g00000000001AAA".to_owned()],
            NaiveDate::from_ymd_opt(2011, 3, 1).ok_or("date")?,
        )
        .await?;
    assert!(history.is_empty(), "{history:?}");
    // The old tables are gone; running the migrations again changes nothing.
    drop(store);
    let again = Store::connect(&url, &["Activated".to_owned()]).await?;
    let old = again
        .connection()
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT name FROM sqlite_master WHERE name LIKE 'sf_%'".to_owned(),
        ))
        .await?;
    assert!(old.is_empty(), "skeleton tables dropped");
    Ok(())
}
