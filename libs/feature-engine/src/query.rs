//! The `rfmt-v2` aggregates and the weekly sequences of every account of an org as of a cut-off,
//! as one DataFusion SQL query over the exported versioned tables.
//!
//! The semantics are those of the feature store (`services/feature-store/src/store.rs`,
//! `histories()` and `compute()` with the training-set known time), which the tests check against
//! `sextant_features` row by row:
//!
//! - **Point in time.** Cut-off day `D`, known time `K` = the first microsecond of `D`. A record's
//!   state is its latest version with `known_us < K`; a tombstone as that version removes it; an
//!   event counts only when `event_day < D`.
//! - **Population.** Accounts that exist as of `D`: the latest version known before `K` (else the
//!   earliest version, as accounts are dimension records a sync sees late) is not deleted and was
//!   created before `D`. An account without a purchase has no row (no vector of zeros).
//! - **Purchases.** Orders whose status is one of the purchase statuses (case-insensitive), with
//!   their current lines: amount = Σ quantity × unit price over positive lines, items = Σ positive
//!   quantities, returned = Σ −quantity × unit price over negative lines. An order without current
//!   lines is still a purchase (amount 0).
//! - **Categories.** Spend of positive lines per product category, the category being that of the
//!   product's latest version (as the feature store reads it).
//! - **Sequence.** Week `w = (D − day − 1) / 7` for `w < 104`; per week the purchases' count,
//!   spend and items and the cases' count. Stored sparse, as the feature store stores it: a list of
//!   `{week, orders, spend, items, cases}` for the non-empty weeks, week 0 (just before `D`)
//!   first; null when every week is empty. [`crate::engine::FeatureRow::dense_sequence`] expands
//!   it to the 416 values of `sextant_features::sequence::WeeklySequence::values`.
//!
//! Why one query: DataFusion plans it as a whole (hash aggregates and hash joins, streaming and
//! spilling), and Ballista ships every part of it to its executors. Three aggregates are our own
//! ([`crate::functions`]: the weekly sequence, the inter-purchase gaps and the per-category
//! spend), vectorised, and registered on every session and cluster process that runs the query.
//!
//! Why this shape: DataFusion inlines a CTE at every reference, so a relation used twice is
//! computed twice; the query keeps such reuse to the small relations (the live orders feed both the
//! order rows and the lines' join). "The latest version" reads a table twice: a `MAX(known_us)` per
//! id, kept only for ids with more than one version (`HAVING COUNT(*) > 1`, a few percent of the
//! rows), joined back with the small side as the hash table, so a record with one version passes
//! without a lookup in a table of every id (at 10M order lines, 2.8% of the line ids; peak memory
//! less than half of joining every id back). The current order lines are joined to the live orders
//! (and their product's category), and one relation — a row per order, per order line, per case and
//! per engagement event, each with the account, the day, its kind `k` and its amounts — goes into
//! ONE hash aggregate per account: counts and sums under `FILTER`s on the kind and the window (a
//! filtered row does not touch that aggregate's state, cheaper than summing `CASE` expressions),
//! and the three functions, which keep a short vector per account (the non-empty weeks, the
//! distinct purchase days, the spend per category). No per-order aggregate, no `GROUPING SETS`, no
//! window or sort over orders or accounts (one rank over the products' categories gives the
//! category ids). The accounts alive are found the same way as the latest versions (an aggregate
//! over the accounts with several versions, not a window) and filter the live orders; cases and
//! events of other accounts only make aggregate rows that `n > 0` drops (such an account has no
//! purchase). Inter-purchase-time variance comes from integer sums (Σg, Σg², n), exactly.
//!
//! (`abs(q)` and not `q` for a positive quantity: DataFusion 55 infers `CASE WHEN q > 0 THEN q …`
//! non-null in the logical plan but nullable in the physical one, and refuses the union.)

use chrono::NaiveDate;
use sextant_features::aggregates::{FEATURE_NAMES, TREND_WEEKS, WIDTH};
use sextant_features::sequence::MAX_WEEKS;

use crate::functions::{CATEGORY_STATS, PURCHASE_GAPS, WEEK_SEQUENCE};
use crate::schema::DAY_US;

/// Why a query cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The org id is empty or has control characters.
    #[error("org id must be 1..=255 printable characters")]
    Org,
    /// No purchase status was given, or one is empty.
    #[error("purchase statuses must be a non-empty list of non-empty names")]
    Statuses,
    /// The cut-off is outside the range the day numbers can hold.
    #[error("cut-off {0} is out of range")]
    Cutoff(NaiveDate),
}

/// What to compute: an org's features as of a cut-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureQuery {
    org: String,
    cutoff: NaiveDate,
    purchase_statuses: Vec<String>,
}

/// The feature store's default purchase status.
pub const DEFAULT_PURCHASE_STATUS: &str = "Activated";

/// The output column of the sparse weekly sequence.
pub const SEQUENCE_COLUMN: &str = "sequence";

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl FeatureQuery {
    /// Features of `org` as of `cutoff`; orders whose status is one of `purchase_statuses`
    /// (compared case-insensitively) are purchases.
    ///
    /// # Errors
    /// [`QueryError`] for an empty or unprintable org, no (or an empty) status, or a cut-off
    /// whose microseconds do not fit.
    pub fn new(
        org: &str,
        cutoff: NaiveDate,
        purchase_statuses: &[String],
    ) -> Result<Self, QueryError> {
        if org.is_empty() || org.len() > 255 || org.chars().any(char::is_control) {
            return Err(QueryError::Org);
        }
        if purchase_statuses.is_empty()
            || purchase_statuses
                .iter()
                .any(|s| s.trim().is_empty() || s.chars().any(char::is_control))
        {
            return Err(QueryError::Statuses);
        }
        let days = (cutoff - NaiveDate::default()).num_days();
        if days.checked_mul(DAY_US).is_none() || i32::try_from(days).is_err() {
            return Err(QueryError::Cutoff(cutoff));
        }
        Ok(Self {
            org: org.to_owned(),
            cutoff,
            purchase_statuses: purchase_statuses.iter().map(|s| s.to_lowercase()).collect(),
        })
    }

    /// The org.
    #[must_use]
    pub fn org(&self) -> &str {
        &self.org
    }

    /// The cut-off.
    #[must_use]
    pub fn cutoff(&self) -> NaiveDate {
        self.cutoff
    }

    /// The cut-off as days since 1970-01-01.
    #[must_use]
    pub fn cutoff_day(&self) -> i64 {
        (self.cutoff - NaiveDate::default()).num_days()
    }

    /// The SQL text, over tables named as in [`crate::schema::TABLES`].
    #[must_use]
    pub fn sql(&self) -> String {
        let o = literal(&self.org);
        let d = self.cutoff_day();
        let k = d * DAY_US;
        let statuses = self
            .purchase_statuses
            .iter()
            .map(|s| literal(s))
            .collect::<Vec<_>>()
            .join(", ");
        let span = TREND_WEEKS * 7;
        let span2 = 2 * span;
        let seq_days = i64::try_from(MAX_WEEKS).unwrap_or(104) * 7;
        // Records of `table` with more than one version known before K: key and latest known time.
        let versioned = |table: &str| {
            format!(
                "SELECT id, MAX(known_us) AS k FROM {table} \
                 WHERE org_id = {o} AND known_us < {k} GROUP BY id HAVING COUNT(*) > 1"
            )
        };
        // The state as of K: a record's only version, or its latest one, unless a tombstone.
        let current = |table: &str, cols: &str| {
            format!(
                "SELECT {cols} FROM ({v}) m RIGHT JOIN {table} f ON f.id = m.id \
                 WHERE f.org_id = {o} AND f.known_us < {k} AND (m.id IS NULL OR f.known_us = m.k) \
                 AND NOT f.is_deleted",
                v = versioned(table)
            )
        };
        let names = FEATURE_NAMES;
        debug_assert_eq!(names.len(), WIDTH);
        format!(
            "WITH \
             av AS (SELECT id, MAX(known_us) FILTER (WHERE known_us < {k}) AS kb, \
                 MIN(known_us) AS k0 FROM fs_account WHERE org_id = {o} \
                 GROUP BY id HAVING COUNT(*) > 1), \
             alive AS (SELECT f.id FROM av RIGHT JOIN fs_account f ON f.id = av.id \
               WHERE f.org_id = {o} AND (av.id IS NULL OR f.known_us = COALESCE(av.kb, av.k0)) \
               AND NOT f.is_deleted AND (f.event_day IS NULL OR f.event_day < {d})), \
             live AS ({live} AND f.event_day < {d} AND lower(f.status) IN ({statuses}) \
               AND f.account_id IN (SELECT id FROM alive)), \
             cur AS ({cur}), \
             pl AS (SELECT id, MAX(known_us) AS k FROM fs_product WHERE org_id = {o} GROUP BY id), \
             pc AS (SELECT f.id, DENSE_RANK() OVER (ORDER BY f.category) AS cat \
               FROM fs_product f JOIN pl ON f.id = pl.id AND f.known_us = pl.k \
               WHERE f.org_id = {o} AND f.category IS NOT NULL), \
             ln AS (SELECT live.account_id, CAST(live.event_day AS BIGINT) AS day, \
                 CAST(pc.cat AS BIGINT) AS cat, cur.quantity AS q, cur.unit_price AS p \
               FROM cur JOIN live ON cur.order_id = live.id \
               LEFT JOIN pc ON pc.id = cur.product_id), \
             cv AS ({cases} AND f.event_day < {d} AND f.account_id IS NOT NULL), \
             ev AS ({events} AND f.event_day < {d} AND f.account_id IS NOT NULL), \
             base AS (\
               SELECT account_id, day, cat, 0 AS k, 0.0 AS n_orders, \
                 CASE WHEN q > 0 THEN q * p ELSE 0.0 END AS amount, \
                 CASE WHEN q > 0 THEN abs(q) ELSE 0.0 END AS items, \
                 CASE WHEN q < 0 THEN -q * p ELSE 0.0 END AS returned, \
                 0.0 AS n_cases, 0 AS neg FROM ln \
               UNION ALL SELECT account_id, CAST(event_day AS BIGINT), CAST(NULL AS BIGINT), \
                 1, 1.0, 0.0, 0.0, 0.0, 0.0, 0 FROM live \
               UNION ALL SELECT account_id, day, CAST(NULL AS BIGINT), 2, 0.0, 0.0, 0.0, 0.0, \
                 1.0, CASE WHEN neg THEN 1 ELSE 0 END FROM cv \
               UNION ALL SELECT account_id, day, CAST(NULL AS BIGINT), 3, 0.0, 0.0, 0.0, 0.0, \
                 0.0, 0 FROM ev WHERE {d} - day <= 90), \
             agg AS (SELECT account_id, \
                 MIN(day) FILTER (WHERE k = 1) AS first_day, \
                 MAX(day) FILTER (WHERE k = 1) AS last_day, \
                 COUNT(*) FILTER (WHERE k = 1) AS n, \
                 COUNT(*) FILTER (WHERE k = 1 AND {d} - day <= 30) AS o30, \
                 COUNT(*) FILTER (WHERE k = 1 AND {d} - day <= 90) AS o90, \
                 COUNT(*) FILTER (WHERE k = 1 AND {d} - day <= 365) AS o365, \
                 COUNT(*) FILTER (WHERE k = 1 AND {d} - day <= {span}) AS ro, \
                 COUNT(*) FILTER (WHERE k = 1 AND {d} - day > {span} AND {d} - day <= {span2}) AS po, \
                 {gaps}(day) FILTER (WHERE k = 1) AS gaps, \
                 SUM(amount) FILTER (WHERE k = 0) AS total, \
                 SUM(items) FILTER (WHERE k = 0) AS items, \
                 SUM(amount) FILTER (WHERE k = 0 AND {d} - day <= 30) AS s30, \
                 SUM(amount) FILTER (WHERE k = 0 AND {d} - day <= 90) AS s90, \
                 SUM(amount) FILTER (WHERE k = 0 AND {d} - day <= 365) AS s365, \
                 SUM(returned) FILTER (WHERE k = 0 AND {d} - day <= 365) AS r365, \
                 SUM(amount) FILTER (WHERE k = 0 AND {d} - day <= {span}) AS rs, \
                 SUM(amount) FILTER (WHERE k = 0 AND {d} - day > {span} AND {d} - day <= {span2}) AS ps, \
                 {cats}(cat, amount) FILTER (WHERE k = 0) AS cats, \
                 COUNT(*) FILTER (WHERE k = 2 AND {d} - day <= 90) AS c90, \
                 COUNT(*) FILTER (WHERE k = 2 AND {d} - day <= 365) AS c365, \
                 COUNT(*) FILTER (WHERE k = 2 AND neg = 1 AND {d} - day <= 365) AS n365, \
                 COUNT(*) FILTER (WHERE k = 3) AS e90, \
                 {weeks}(CASE WHEN k < 3 AND {d} - day <= {seq_days} THEN ({d} - day - 1) / 7 END, \
                   n_orders, amount, items, n_cases) AS {seq_col} \
               FROM base GROUP BY account_id), \
             fin AS (SELECT account_id, first_day, last_day, n, o30, o90, o365, ro, po, c90, c365, \
                 n365, e90, {seq_col}, COALESCE(total, 0.0) AS total, COALESCE(items, 0.0) AS items, \
                 COALESCE(s30, 0.0) AS s30, COALESCE(s90, 0.0) AS s90, COALESCE(s365, 0.0) AS s365, \
                 COALESCE(r365, 0.0) AS r365, COALESCE(rs, 0.0) AS rs, COALESCE(ps, 0.0) AS ps, \
                 gaps['n'] AS ng, gaps['sum'] AS sg, gaps['sum_sq'] AS sg2, \
                 cats['n_positive'] AS n_cat, cats['top'] AS top_spend, cats['total'] AS cat_total \
               FROM agg WHERE n > 0) \
             SELECT account_id, \
               CAST({d} - last_day AS DOUBLE) AS {n0}, \
               CAST({d} - first_day AS DOUBLE) AS {n1}, \
               CAST(n AS DOUBLE) AS {n2}, \
               total AS {n3}, \
               total / CAST(n AS DOUBLE) AS {n4}, \
               CAST(o30 AS DOUBLE) AS {n5}, \
               CAST(o90 AS DOUBLE) AS {n6}, \
               CAST(o365 AS DOUBLE) AS {n7}, \
               s30 AS {n8}, s90 AS {n9}, s365 AS {n10}, \
               CASE WHEN ng > 0 THEN CAST(sg AS DOUBLE) / CAST(ng AS DOUBLE) ELSE 0.0 END AS {n11}, \
               CASE WHEN ng > 0 THEN sqrt(CAST(ng * sg2 - sg * sg AS DOUBLE) \
                 / CAST(ng * ng AS DOUBLE)) ELSE 0.0 END AS {n12}, \
               CASE WHEN ng > 0 THEN CAST({d} - last_day AS DOUBLE) / \
                 (CASE WHEN CAST(sg AS DOUBLE) / CAST(ng AS DOUBLE) > 1.0 \
                   THEN CAST(sg AS DOUBLE) / CAST(ng AS DOUBLE) ELSE 1.0 END) ELSE 0.0 END AS {n13}, \
               CASE WHEN ng > 0 THEN 0.0 ELSE 1.0 END AS {n14}, \
               ln(((CASE WHEN rs > 0.0 THEN rs ELSE 0.0 END) + 1.0) \
                 / ((CASE WHEN ps > 0.0 THEN ps ELSE 0.0 END) + 1.0)) AS {n15}, \
               CAST(ro - po AS DOUBLE) AS {n16}, \
               CASE WHEN s365 + r365 > 0.0 THEN r365 / (s365 + r365) ELSE 0.0 END AS {n17}, \
               items / CAST(n AS DOUBLE) AS {n18}, \
               CAST(n_cat AS DOUBLE) AS {n19}, \
               CASE WHEN cat_total > 0.0 THEN top_spend / cat_total ELSE 0.0 END AS {n20}, \
               CAST(c90 AS DOUBLE) AS {n21}, \
               CAST(c365 AS DOUBLE) AS {n22}, \
               CASE WHEN c365 > 0 THEN CAST(n365 AS DOUBLE) / CAST(c365 AS DOUBLE) ELSE 0.0 END AS {n23}, \
               CAST(e90 AS DOUBLE) AS {n24}, \
               {seq_col} \
             FROM fin",
            live = current("fs_order", "f.id, f.account_id, f.event_day"),
            cur = current(
                "fs_order_item",
                "f.order_id, f.product_id, f.quantity, f.unit_price"
            ),
            cases = current(
                "fs_case",
                "f.account_id, CAST(f.event_day AS BIGINT) AS day, COALESCE(f.negative, FALSE) AS neg"
            ),
            events = current(
                "fs_engagement_event",
                "f.account_id, CAST(f.event_day AS BIGINT) AS day"
            ),
            seq_col = SEQUENCE_COLUMN,
            weeks = WEEK_SEQUENCE,
            gaps = PURCHASE_GAPS,
            cats = CATEGORY_STATS,
            n0 = names[0],
            n1 = names[1],
            n2 = names[2],
            n3 = names[3],
            n4 = names[4],
            n5 = names[5],
            n6 = names[6],
            n7 = names[7],
            n8 = names[8],
            n9 = names[9],
            n10 = names[10],
            n11 = names[11],
            n12 = names[12],
            n13 = names[13],
            n14 = names[14],
            n15 = names[15],
            n16 = names[16],
            n17 = names[17],
            n18 = names[18],
            n19 = names[19],
            n20 = names[20],
            n21 = names[21],
            n22 = names[22],
            n23 = names[23],
            n24 = names[24],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    #[test]
    fn bad_parameters_are_refused() {
        let st = vec!["Activated".to_owned()];
        assert_eq!(
            FeatureQuery::new("", d("2024-01-01"), &st),
            Err(QueryError::Org)
        );
        assert_eq!(
            FeatureQuery::new("a\nb", d("2024-01-01"), &st),
            Err(QueryError::Org)
        );
        assert_eq!(
            FeatureQuery::new("acme", d("2024-01-01"), &[]),
            Err(QueryError::Statuses)
        );
        assert_eq!(
            FeatureQuery::new("acme", d("2024-01-01"), &[" ".to_owned()]),
            Err(QueryError::Statuses)
        );
    }

    #[test]
    fn literals_are_quoted_and_statuses_lowercased() {
        let q = FeatureQuery::new(
            "o'brien",
            d("1970-01-11"),
            &["Activated".to_owned(), "Shipped'".to_owned()],
        )
        .expect("valid query");
        let sql = q.sql();
        assert!(sql.contains("org_id = 'o''brien'"));
        assert!(sql.contains("IN ('activated', 'shipped''')"));
        assert!(sql.contains("known_us < 864000000000"));
        assert_eq!(q.cutoff_day(), 10);
    }
}
