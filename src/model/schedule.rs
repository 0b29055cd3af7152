//! Schedules: a job submitted on every tick of a cron expression in a time
//! zone. The definition is data; [`Cadence`] turns it into ticks.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{JobId, Millis};

/// What a schedule submits, and when: `[schedules.NAME]` in the
/// configuration file, or the body of `POST /api/v1/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Five fields (minute first), or six with seconds first.
    pub cron: String,
    /// An IANA time zone name the expression is read in (default `UTC`).
    #[serde(default = "utc", skip_serializing_if = "is_utc")]
    pub timezone: String,
    /// The job type of every job.
    pub job_type: String,
    /// Every job's parameters (a JSON object; default `{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// The user every job is submitted for (default `default_user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Priority within the user's queue (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Attempts per job (default: the job type's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Per-attempt time limit (default: the job type's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Seconds after its tick a job must have started by (default: the
    /// job type's): a job still waiting when the next tick comes is
    /// usually worth dropping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<f64>,
}

/// Longest schedule name.
const MAX_SCHEDULE_NAME_LEN: usize = 128;

/// Checks a schedule's name: 1 to 128 of `A-Za-z0-9_.-` (it is part of
/// store keys and URLs).
pub fn check_schedule_name(name: &str) -> Result<(), String> {
    let valid = (1..=MAX_SCHEDULE_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "schedule name '{name}' must be 1 to {MAX_SCHEDULE_NAME_LEN} of A-Z, a-z, 0-9, '_', '.', '-'"
        ))
    }
}

fn utc() -> String {
    "UTC".to_owned()
}

fn is_utc(zone: &String) -> bool {
    zone == "UTC"
}

/// Where a schedule was defined: the configuration file's are written
/// again by every server that starts with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleOrigin {
    /// `[schedules.NAME]` of the configuration file.
    Config,
    /// `POST /api/v1/schedules`.
    Api,
}

impl ScheduleOrigin {
    /// Its name in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleOrigin::Config => "config",
            ScheduleOrigin::Api => "api",
        }
    }
}

impl FromStr for ScheduleOrigin {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "config" => Ok(ScheduleOrigin::Config),
            "api" => Ok(ScheduleOrigin::Api),
            other => Err(format!("unknown schedule origin '{other}'")),
        }
    }
}

/// A schedule as the store keeps it: its definition and where its ticks
/// stand.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Its name (1 to 128 of `A-Za-z0-9_.-`).
    pub name: String,
    /// What it submits, and when.
    pub spec: ScheduleSpec,
    /// Where it was defined.
    pub origin: ScheduleOrigin,
    /// Paused: its ticks pass without jobs (resuming does not catch up).
    pub paused: bool,
    /// Bumped by every change of the definition or the pause, so that a
    /// tick is fired only from the definition it was computed from.
    pub revision: i64,
    /// When it was first stored.
    pub created_at: Millis,
    /// When it was stored or last resumed: ticks before are never fired.
    pub active_since: Millis,
    /// When its definition or pause last changed.
    pub updated_at: Millis,
    /// The last tick fired (a job stored for it).
    pub last_tick_at: Option<Millis>,
    /// The job stored for that tick.
    pub last_job_id: Option<JobId>,
}

impl Schedule {
    /// The tick a job is owed for as of `now`, if any: the latest tick at
    /// or before `now` after both the last fired one and the moment the
    /// schedule was stored (or resumed). Ticks missed while no server ran
    /// collapse into that one.
    pub fn due_tick(&self, cadence: &Cadence, now: Millis) -> Option<Millis> {
        if self.paused {
            return None;
        }
        let after = self
            .last_tick_at
            .unwrap_or(Millis::MIN)
            .max(self.active_since);
        cadence
            .latest_at_or_before(now)
            .filter(|tick| *tick > after)
    }
}

/// A job a schedule stored: which schedule, for which tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleTick {
    /// The schedule's name.
    pub name: String,
    /// The tick the job was stored for.
    pub tick: Millis,
}

/// A parsed cron expression in its time zone.
#[derive(Debug, Clone)]
pub struct Cadence {
    cron: Cron,
    zone: Tz,
}

impl Cadence {
    /// Parses `cron` (5 fields, or 6 with seconds first; no year) read in
    /// the IANA zone `timezone`.
    pub fn parse(cron: &str, timezone: &str) -> Result<Cadence, String> {
        let fields = cron.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "cron '{cron}' has {fields} fields: give 5 (minute hour day month weekday) \
                 or 6 (seconds first)"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(cron)
            .map_err(|e| format!("cron '{cron}': {e}"))?;
        let zone = timezone
            .parse::<Tz>()
            .map_err(|_| format!("timezone '{timezone}' is not an IANA time zone name"))?;
        Ok(Cadence { cron, zone })
    }

    /// The cadence of `spec`.
    pub fn of(spec: &ScheduleSpec) -> Result<Cadence, String> {
        Cadence::parse(&spec.cron, &spec.timezone)
    }

    /// The first tick strictly after `at`, if the expression has one.
    pub fn next_after(&self, at: Millis) -> Option<Millis> {
        let start = self.zone.from_utc_datetime(&utc_at(at)?.naive_utc());
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|tick| tick.timestamp_millis())
    }

    /// The latest tick at or before `at`, if any.
    pub fn latest_at_or_before(&self, at: Millis) -> Option<Millis> {
        let start = self.zone.from_utc_datetime(&utc_at(at)?.naive_utc());
        self.cron
            .find_previous_occurrence(&start, true)
            .ok()
            .map(|tick| tick.timestamp_millis())
    }
}

fn utc_at(at: Millis) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(text: &str) -> Millis {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp_millis())
            .unwrap()
    }

    #[test]
    fn five_and_six_fields_parse_and_others_do_not() {
        assert!(Cadence::parse("*/5 * * * *", "UTC").is_ok());
        assert!(Cadence::parse("* * * * * *", "Europe/Paris").is_ok());
        assert!(Cadence::parse("* * * *", "UTC").is_err());
        assert!(Cadence::parse("0 0 0 1 1 * 2030", "UTC").is_err());
        assert!(Cadence::parse("61 * * * *", "UTC").is_err());
        assert!(Cadence::parse("* * * * *", "Mars/Olympus").is_err());
    }

    #[test]
    fn six_fields_tick_every_second() {
        let cadence = Cadence::parse("* * * * * *", "UTC").unwrap();
        let at = millis("2026-11-30T10:00:00.400Z");
        assert_eq!(cadence.next_after(at), Some(millis("2026-11-30T10:00:01Z")));
        assert_eq!(
            cadence.latest_at_or_before(at),
            Some(millis("2026-11-30T10:00:00Z"))
        );
    }

    #[test]
    fn ticks_follow_the_zones_daylight_saving_changes() {
        // 09:00 in New York: 14:00 UTC in winter, 13:00 UTC in summer.
        let cadence = Cadence::parse("0 9 * * *", "America/New_York").unwrap();
        assert_eq!(
            cadence.next_after(millis("2026-03-07T15:00:00Z")),
            Some(millis("2026-03-08T13:00:00Z")),
            "the day clocks go forward"
        );
        assert_eq!(
            cadence.next_after(millis("2026-10-31T15:00:00Z")),
            Some(millis("2026-11-01T14:00:00Z")),
            "the day clocks go back"
        );
        // 02:30 does not exist on 8 March 2026 in New York: croner runs it
        // at the first instant after the gap (03:00 EDT, 07:00 UTC).
        let gap = Cadence::parse("30 2 * * *", "America/New_York").unwrap();
        assert_eq!(
            gap.next_after(millis("2026-03-08T05:00:00Z")),
            Some(millis("2026-03-08T07:00:00Z"))
        );
        // 01:30 happens twice on 1 November 2026 in New York (EDT, then
        // EST): it runs once, at the first.
        let overlap = Cadence::parse("30 1 * * *", "America/New_York").unwrap();
        let first = overlap.next_after(millis("2026-11-01T04:00:00Z"));
        assert_eq!(first, Some(millis("2026-11-01T05:30:00Z")));
        assert_eq!(
            overlap.next_after(millis("2026-11-01T05:30:00Z")),
            Some(millis("2026-11-02T06:30:00Z"))
        );
    }

    #[test]
    fn missed_ticks_collapse_into_the_latest() {
        let cadence = Cadence::parse("0 * * * *", "UTC").unwrap();
        let schedule = Schedule {
            name: "hourly".into(),
            spec: ScheduleSpec {
                cron: "0 * * * *".into(),
                timezone: "UTC".into(),
                job_type: "t".into(),
                parameters: None,
                user_id: None,
                priority: None,
                max_attempts: None,
                timeout_seconds: None,
                expires_in_seconds: None,
            },
            origin: ScheduleOrigin::Api,
            paused: false,
            revision: 1,
            created_at: millis("2026-11-30T00:30:00Z"),
            active_since: millis("2026-11-30T00:30:00Z"),
            updated_at: millis("2026-11-30T00:30:00Z"),
            last_tick_at: Some(millis("2026-11-30T02:00:00Z")),
            last_job_id: None,
        };
        let now = millis("2026-11-30T07:15:00Z");
        assert_eq!(
            schedule.due_tick(&cadence, now),
            Some(millis("2026-11-30T07:00:00Z"))
        );
        let fired = Schedule {
            last_tick_at: Some(millis("2026-11-30T07:00:00Z")),
            ..schedule.clone()
        };
        assert_eq!(fired.due_tick(&cadence, now), None);
        let fresh = Schedule {
            last_tick_at: None,
            active_since: millis("2026-11-30T07:10:00Z"),
            ..schedule.clone()
        };
        assert_eq!(
            fresh.due_tick(&cadence, now),
            None,
            "no tick before it existed"
        );
        let paused = Schedule {
            paused: true,
            ..schedule
        };
        assert_eq!(paused.due_tick(&cadence, now), None);
    }
}
