//! Cron expressions as users write them (5 fields, `minute hour day-of-month month day-of-week`,
//! or an `@` descriptor) and when they fire next, in a given time zone.
//!
//! The `cron` crate does the calendar search but speaks another dialect: it wants a seconds
//! field, numbers days of the week 1-7 from Sunday (standard cron: 0-7, 0 and 7 both Sunday)
//! and requires a day to match both day fields. So each field is parsed here, with errors that
//! name the field, into the explicit set of values it matches, and written back out in the
//! crate's dialect. Standard cron's day rule — when both day-of-month and day-of-week are
//! restricted (do not start with `*`), a day matching *either* fires — becomes two crate
//! schedules whose earliest next time wins.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::fields::{crate_field, parse_field, Field};

/// A parsed, valid cron expression; (de)serialised as the expression text.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CronSchedule {
    source: String,
    /// One schedule, or two when both day fields are restricted (either may match).
    schedules: Vec<cron::Schedule>,
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// Why a cron expression is refused; the message names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "cron schedule '{expression}' has {count} field(s); expected 5 (minute hour day-of-month \
         month day-of-week) or a descriptor such as @daily"
    )]
    FieldCount { expression: String, count: usize },
    #[error(
        "cron schedule '{0}': unknown descriptor; use @yearly, @annually, @monthly, @weekly, \
         @daily, @midnight or @hourly"
    )]
    UnknownDescriptor(String),
    #[error("cron schedule '{expression}': {field} field '{text}': {problem}")]
    Field { expression: String, field: Field, text: String, problem: String },
    #[error("cron schedule '{expression}': {message}")]
    Unsupported { expression: String, message: String },
}

/// The `@` descriptors and the 5-field expressions they stand for.
pub const DESCRIPTORS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// Translates a standard cron expression into the `cron` crate's 6-field expressions: one, or
/// two (either may fire) when both day fields are restricted.
pub fn translate(expression: &str) -> Result<Vec<String>, ScheduleError> {
    let trimmed = expression.trim();
    let expanded = if trimmed.starts_with('@') {
        let lower = trimmed.to_ascii_lowercase();
        match DESCRIPTORS.iter().find(|(name, _)| *name == lower) {
            Some((_, fields)) => *fields,
            None => return Err(ScheduleError::UnknownDescriptor(trimmed.to_string())),
        }
    } else {
        trimmed
    };
    let texts: Vec<&str> = expanded.split_whitespace().collect();
    if texts.len() != 5 {
        return Err(ScheduleError::FieldCount {
            expression: expression.to_string(),
            count: texts.len(),
        });
    }
    let mut values = Vec::with_capacity(5);
    for (field, text) in Field::ALL.into_iter().zip(&texts) {
        values.push(parse_field(field, text).map_err(|problem| ScheduleError::Field {
            expression: expression.to_string(),
            field,
            text: text.to_string(),
            problem,
        })?);
    }
    let [minute, hour, dom, month, dow] = [values[0], values[1], values[2], values[3], values[4]];
    let minute = crate_field(minute.bits, 0, 59, 0);
    let hour = crate_field(hour.bits, 0, 23, 0);
    let month_text = crate_field(month.bits, 1, 12, 0);
    let dom_text = crate_field(dom.bits, 1, 31, 0);
    // Standard Sunday = 0 becomes the crate's 1.
    let dow_text = crate_field(dow.bits, 0, 6, 1);
    let expression_with =
        |dom: &str, dow: &str| format!("0 {minute} {hour} {dom} {month_text} {dow}");
    Ok(if dom.restricted && dow.restricted {
        vec![expression_with(&dom_text, "*"), expression_with("*", &dow_text)]
    } else {
        vec![expression_with(&dom_text, &dow_text)]
    })
}

impl CronSchedule {
    /// Parses a 5-field expression or an `@` descriptor.
    pub fn parse(expression: &str) -> Result<Self, ScheduleError> {
        let schedules = translate(expression)?
            .iter()
            .map(|translated| crate_schedule(expression, translated))
            .collect::<Result<_, _>>()?;
        let schedule = Self { source: expression.trim().to_string(), schedules };
        // Standard cron accepts `0 0 30 2 *` and never runs it; a typo like that is better
        // caught when the configuration is read.
        if schedule.next_after(Utc::now(), Tz::UTC).is_none() {
            return Err(ScheduleError::Unsupported {
                expression: expression.to_string(),
                message: "it never fires: none of its months has that day".into(),
            });
        }
        Ok(schedule)
    }

    /// A schedule in the `cron` crate's own 6-field dialect, with seconds. Not reachable from
    /// `function.toml`: it exists so a test can run a real schedule in seconds, not minutes.
    #[doc(hidden)]
    pub fn with_seconds(expression: &str) -> Result<Self, ScheduleError> {
        Ok(Self {
            source: expression.to_string(),
            schedules: vec![crate_schedule(expression, expression)?],
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first fire time strictly after `after`, reading the fields in `timezone`.
    pub fn next_after(&self, after: DateTime<Utc>, timezone: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&timezone);
        self.schedules
            .iter()
            .filter_map(|schedule| schedule.after(&local).find(|next| *next > local))
            .min()
            .map(|next| next.with_timezone(&Utc))
    }
}

fn crate_schedule(expression: &str, translated: &str) -> Result<cron::Schedule, ScheduleError> {
    cron::Schedule::from_str(translated).map_err(|e| ScheduleError::Unsupported {
        expression: expression.to_string(),
        message: e.to_string(),
    })
}

impl FromStr for CronSchedule {
    type Err = ScheduleError;

    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        Self::parse(expression)
    }
}

impl TryFrom<String> for CronSchedule {
    type Error = ScheduleError;

    fn try_from(expression: String) -> Result<Self, Self::Error> {
        Self::parse(&expression)
    }
}

impl From<CronSchedule> for String {
    fn from(schedule: CronSchedule) -> String {
        schedule.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Weekday};

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn next(expression: &str, after: &str) -> String {
        CronSchedule::parse(expression)
            .unwrap()
            .next_after(utc(after), Tz::UTC)
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn translation_table() {
        let table: &[(&str, &[&str])] = &[
            ("*/10 * * * *", &["0 0,10,20,30,40,50 * * * *"]),
            ("0 0 1 * *", &["0 0 0 1 * *"]),
            ("0 0 * * 3", &["0 0 0 * * 4"]),
            ("0 0 * * 0", &["0 0 0 * * 1"]),
            ("0 0 * * 7", &["0 0 0 * * 1"]),
            ("0 9 * * 1-5", &["0 0 9 * * 2-6"]),
            ("0 9 * * mon-fri", &["0 0 9 * * 2-6"]),
            ("0 0 * * 5-7", &["0 0 0 * * 1,6-7"]),
            ("0 0 * * 0-6", &["0 0 0 * * *"]),
            ("0 0 * * */2", &["0 0 0 * * 1,3,5,7"]),
            ("0 0 * * 1,3,5", &["0 0 0 * * 2,4,6"]),
            ("15 6-18/4 * jan,jul *", &["0 15 6,10,14,18 * 1,7 *"]),
            ("5/20 * * * *", &["0 5,25,45 * * * *"]),
            // Both day fields restricted: either matching day fires.
            ("0 0 1 * 1", &["0 0 0 1 * *", "0 0 0 * * 2"]),
            // A day field starting with `*` is not restricted: both must match, as in Vixie cron.
            ("0 0 */2 * 1", &["0 0 0 1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31 * 2"]),
            ("@yearly", &["0 0 0 1 1 *"]),
            ("@annually", &["0 0 0 1 1 *"]),
            ("@monthly", &["0 0 0 1 * *"]),
            ("@weekly", &["0 0 0 * * 1"]),
            ("@daily", &["0 0 0 * * *"]),
            ("@midnight", &["0 0 0 * * *"]),
            ("@hourly", &["0 0 * * * *"]),
        ];
        for (standard, expected) in table {
            assert_eq!(translate(standard).unwrap(), *expected, "{standard}");
            CronSchedule::parse(standard).unwrap();
        }
    }

    #[test]
    fn errors_name_the_bad_field() {
        let cases = [
            ("60 * * * *", "minute field '60': 60 is out of range 0-59"),
            ("* 24 * * *", "hour field '24'"),
            ("* * 0 * *", "day-of-month field '0': 0 is out of range 1-31"),
            ("* * * 13 *", "month field '13'"),
            ("* * * foo *", "month field 'foo': 'foo' is not a number or a name"),
            ("0 0 * * 8", "day-of-week field '8': 8 is out of range 0-7"),
            ("0 0 * * 5-1", "day-of-week field '5-1': range 5-1 goes backwards"),
            ("*/0 * * * *", "minute field '*/0': step '0' is not a positive number"),
            ("1,,2 * * * *", "minute field '1,,2': empty list item"),
        ];
        for (expression, expected) in cases {
            let message = CronSchedule::parse(expression).unwrap_err().to_string();
            assert!(message.contains(expected), "{expression}: {message}");
        }
        let message = CronSchedule::parse("* * * *").unwrap_err().to_string();
        assert!(message.contains("has 4 field(s); expected 5"), "{message}");
        let message = CronSchedule::parse("@reboot").unwrap_err().to_string();
        assert!(message.contains("unknown descriptor"), "{message}");
    }

    #[test]
    fn wednesday_is_day_three() {
        // 2026-01-01 is a Thursday; the next Wednesday is the 7th.
        let fire = CronSchedule::parse("0 0 * * 3")
            .unwrap()
            .next_after(utc("2026-01-01T12:00:00Z"), Tz::UTC)
            .unwrap();
        assert_eq!(fire.weekday(), Weekday::Wed);
        assert_eq!(fire.to_rfc3339(), "2026-01-07T00:00:00+00:00");
    }

    #[test]
    fn next_fire_times() {
        assert_eq!(next("*/10 * * * *", "2026-03-10T10:03:00Z"), "2026-03-10T10:10:00+00:00");
        assert_eq!(next("*/10 * * * *", "2026-03-10T10:10:00Z"), "2026-03-10T10:20:00+00:00");
        assert_eq!(next("0 0 1 * *", "2026-03-10T10:03:00Z"), "2026-04-01T00:00:00+00:00");
        assert_eq!(next("@hourly", "2026-03-10T10:03:00Z"), "2026-03-10T11:00:00+00:00");
        assert_eq!(next("@yearly", "2026-03-10T10:03:00Z"), "2027-01-01T00:00:00+00:00");
        // Sunday written as 7.
        assert_eq!(next("0 0 * * 7", "2026-01-01T00:00:00Z"), "2026-01-04T00:00:00+00:00");
        // Either day rule: the 1st of the month (a Sunday in February 2026) or a Monday.
        assert_eq!(next("0 0 1 * 1", "2026-01-27T00:00:00Z"), "2026-02-01T00:00:00+00:00");
        assert_eq!(next("0 0 1 * 1", "2026-02-01T00:00:00Z"), "2026-02-02T00:00:00+00:00");
    }

    #[test]
    fn fields_are_read_in_the_time_zone() {
        let amsterdam: Tz = "Europe/Amsterdam".parse().unwrap();
        let schedule = CronSchedule::parse("0 9 * * *").unwrap();
        // Winter: 09:00 in Amsterdam is 08:00 UTC; summer: 07:00 UTC.
        let winter = schedule.next_after(utc("2026-01-10T00:00:00Z"), amsterdam).unwrap();
        assert_eq!(winter.to_rfc3339(), "2026-01-10T08:00:00+00:00");
        let summer = schedule.next_after(utc("2026-07-10T00:00:00Z"), amsterdam).unwrap();
        assert_eq!(summer.to_rfc3339(), "2026-07-10T07:00:00+00:00");
    }

    #[test]
    fn daylight_saving_skips_missing_times_and_fires_repeated_times_once() {
        let amsterdam: Tz = "Europe/Amsterdam".parse().unwrap();
        let schedule = CronSchedule::parse("30 2 * * *").unwrap();
        let next = |after: &str| schedule.next_after(utc(after), amsterdam).unwrap().to_rfc3339();
        // 2026-03-29 02:30 does not exist in Amsterdam (02:00 CET jumps to 03:00 CEST).
        assert_eq!(next("2026-03-28T12:00:00Z"), "2026-03-30T00:30:00+00:00");
        // 2026-10-25 02:30 happens twice (CEST, then CET): only the first fires.
        assert_eq!(next("2026-10-24T12:00:00Z"), "2026-10-25T00:30:00+00:00");
        assert_eq!(next("2026-10-25T00:30:00Z"), "2026-10-26T01:30:00+00:00");
    }

    #[test]
    fn a_date_that_never_comes_is_refused() {
        let started = std::time::Instant::now();
        let message = CronSchedule::parse("0 0 30 2 *").unwrap_err().to_string();
        assert!(message.contains("never fires"), "{message}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
        // The 31st exists in some months only; that is fine.
        CronSchedule::parse("0 0 31 * *").unwrap();
    }

    #[test]
    fn seconds_schedules_are_only_for_tests() {
        assert!(CronSchedule::parse("* * * * * *").is_err(), "six fields are refused");
        let schedule = CronSchedule::with_seconds("*/2 * * * * *").unwrap();
        let fire = schedule.next_after(utc("2026-01-01T00:00:00Z"), Tz::UTC).unwrap();
        assert_eq!(fire.to_rfc3339(), "2026-01-01T00:00:02+00:00");
    }
}
