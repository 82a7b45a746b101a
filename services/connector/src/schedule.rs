//! Scheduled incremental syncs: `schedule` in the connector's settings is a cron expression
//! (standard five fields, `minute hour day-of-month month day-of-week`, in UTC; an optional
//! leading seconds field), and each of its slots runs one incremental sync as a stored job.
//!
//! Why the last slot lives in the database (`conn_schedule`) and not in memory: the next run is
//! computed from the last slot that was *claimed*, so a connector that restarts neither skips a
//! slot that fell due while it was down nor runs again a slot that already ran; and replicas
//! sharing the database claim a slot with one conditional `UPDATE` (`… WHERE last_slot_us =
//! <the slot they read>`), so only one of them runs it — on top of the org's lock row, which
//! still keeps any two syncs apart.
//!
//! Rules:
//! - When a schedule is first seen (or its expression changed), it starts from that moment: the
//!   first run is its next slot, not a catch-up.
//! - A slot is claimed only once the org's lock is taken: while another sync (manual, or on
//!   another replica) runs, the due slot waits for it instead of being lost.
//! - Several slots missed while no connector ran are folded into one run, for the latest of
//!   them: an incremental sync reads everything since the watermarks anyway, so running the
//!   missed slots one after the other would read nothing more.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use sea_orm::DbErr;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::{Db, from_us, to_us};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

impl Schedule {
    /// Parses a cron expression (5 fields, or 6 with seconds first).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the schedule is empty".into());
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(text)
            .or_else(|_| Cron::from_str(text))
            .map_err(|e| format!("{text:?} is not a cron expression: {e}"))?;
        Ok(Self {
            text: text.to_owned(),
            cron,
        })
    }

    /// The expression as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t, false).ok()
    }

    /// The latest slot at or before `now`.
    pub fn latest_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&now, true).ok()
    }
}

/// Where an org's schedule stands (`GET /v1/org`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ScheduleStatus {
    /// The cron expression (UTC).
    pub cron: String,
    /// When the next scheduled sync is due (it starts within one check interval of it, or when
    /// a running sync ends).
    pub next_run_at: Option<DateTime<Utc>>,
    /// The last slot claimed (or when the schedule was first seen).
    pub last_slot_at: DateTime<Utc>,
    /// The job that ran the last claimed slot.
    pub last_job_id: Option<String>,
}

/// The stored state of an org's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchedule {
    pub cron: String,
    pub last_slot: DateTime<Utc>,
    pub last_job_id: Option<String>,
}

impl Db {
    /// The stored schedule of an org.
    pub async fn schedule(&self, org: &str) -> Result<Option<StoredSchedule>, DbErr> {
        let rows = self
            .rows(
                "SELECT cron, last_slot_us, last_job_id FROM conn_schedule WHERE org = $1",
                vec![org.into()],
            )
            .await?;
        match rows.first() {
            Some(r) => Ok(Some(StoredSchedule {
                cron: r.try_get("", "cron")?,
                last_slot: from_us(r.try_get("", "last_slot_us")?),
                last_job_id: r.try_get("", "last_job_id")?,
            })),
            None => Ok(None),
        }
    }

    /// Starts (or restarts, when the expression changed) an org's schedule at `now`; returns
    /// the stored state. Replicas racing here agree: the first insert wins.
    pub async fn init_schedule(
        &self,
        org: &str,
        cron: &str,
        now: DateTime<Utc>,
    ) -> Result<StoredSchedule, DbErr> {
        self.exec(
            "INSERT INTO conn_schedule (org, cron, last_slot_us, last_job_id, updated_us) \
             VALUES ($1, $2, $3, NULL, $3) ON CONFLICT (org) DO UPDATE SET cron = excluded.cron, \
             last_slot_us = excluded.last_slot_us, last_job_id = NULL, updated_us = excluded.updated_us \
             WHERE conn_schedule.cron <> excluded.cron",
            vec![org.into(), cron.into(), to_us(now).into()],
        )
        .await?;
        self.schedule(org)
            .await?
            .ok_or_else(|| DbErr::Custom(format!("the schedule row of {org} vanished")))
    }

    /// Claims `slot` for `job_id` if the last slot is still `previous` (one replica wins).
    pub async fn claim_slot(
        &self,
        org: &str,
        previous: DateTime<Utc>,
        slot: DateTime<Utc>,
        job_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let n = self
            .exec(
                "UPDATE conn_schedule SET last_slot_us = $1, last_job_id = $2, updated_us = $3 \
                 WHERE org = $4 AND last_slot_us = $5",
                vec![
                    to_us(slot).into(),
                    job_id.into(),
                    to_us(now).into(),
                    org.into(),
                    to_us(previous).into(),
                ],
            )
            .await?;
        Ok(n == 1)
    }
}

/// The status of a schedule from its stored state.
pub fn status(schedule: &Schedule, stored: &StoredSchedule) -> ScheduleStatus {
    ScheduleStatus {
        cron: schedule.as_str().to_owned(),
        next_run_at: schedule.next_after(stored.last_slot),
        last_slot_at: stored.last_slot,
        last_job_id: stored.last_job_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, m, s)
            .single()
            .expect("a valid time")
    }

    #[test]
    fn five_and_six_field_expressions_give_next_and_latest_slots() {
        let s = Schedule::parse("*/15 * * * *").expect("parses");
        assert_eq!(s.next_after(at(10, 0, 0)), Some(at(10, 15, 0)));
        assert_eq!(s.next_after(at(10, 14, 59)), Some(at(10, 15, 0)));
        assert_eq!(s.latest_due(at(10, 44, 0)), Some(at(10, 30, 0)));
        assert_eq!(s.latest_due(at(10, 45, 0)), Some(at(10, 45, 0)));
        let s = Schedule::parse("30 0 2 * * *").expect("with seconds");
        assert_eq!(s.next_after(at(1, 0, 0)), Some(at(2, 0, 30)));
    }

    #[test]
    fn nonsense_is_refused_with_the_expression() {
        for bad in ["", "every hour", "61 * * * *", "* * * *"] {
            let e = Schedule::parse(bad).expect_err(bad);
            assert!(e.contains("cron") || e.contains("empty"), "{bad}: {e}");
        }
    }
}
