//! `[[cron]]` in `function.toml`: a trigger's name, schedule, entry, time zone and callback,
//! checked when the manifest is parsed. [`fields`] and [`schedule`] own the expression dialect
//! (5 fields and `@` descriptors) and when a schedule fires next; running the schedules is the
//! cron trigger's business (the runtime's `triggers::cron`).

pub mod fields;
pub mod schedule;

use std::collections::HashSet;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use schedule::{CronSchedule, ScheduleError};

/// One `[[cron]]` table of a `function.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronTriggerConfig {
    /// Names the trigger in logs and in the `x-cron-trigger` header.
    pub name: String,
    /// A 5-field cron expression or an `@` descriptor.
    pub schedule: CronSchedule,
    /// The entry to run (default: the function's default entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// An IANA time zone the schedule is read in, like `Europe/Amsterdam` (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<CronTimezone>,
    /// Every outcome is POSTed here: the function's body and headers plus `X-Function-Status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<super::callback::CallbackUrl>,
}

impl CronTriggerConfig {
    /// The time zone the schedule is read in.
    pub fn tz(&self) -> Tz {
        self.timezone.as_ref().map_or(Tz::UTC, |tz| tz.0)
    }
}

/// An IANA time zone name, checked when the configuration is read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CronTimezone(pub Tz);

impl TryFrom<String> for CronTimezone {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse::<Tz>().map(CronTimezone).map_err(|_| {
            format!("unknown time zone '{name}': use an IANA name like UTC or Europe/Amsterdam")
        })
    }
}

impl From<CronTimezone> for String {
    fn from(timezone: CronTimezone) -> String {
        timezone.0.name().to_string()
    }
}

/// Checks what serde cannot see in one table: trigger names are valid and unique.
pub fn validate_triggers(triggers: &[CronTriggerConfig]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for trigger in triggers {
        let name = &trigger.name;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            return Err(format!(
                "cron trigger name '{name}' is invalid: use 1-64 lowercase letters, digits, '-' \
                 or '_'"
            ));
        }
        if !seen.insert(name) {
            return Err(format!("cron trigger name '{name}' is used twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::FunctionManifest;

    /// The `[[cron]]` tables of a `function.toml`, checked as `wasmfn build` checks them.
    fn parse(text: &str) -> Result<Vec<CronTriggerConfig>, String> {
        FunctionManifest::parse(text).map(|manifest| manifest.cron)
    }

    #[test]
    fn any_number_of_triggers_with_optional_entry_and_time_zone() {
        let triggers = parse(
            r#"
            [[cron]]
            name = "every-ten-minutes"
            schedule = "*/10 * * * *"
            [[cron]]
            name = "nightly"
            schedule = "@daily"
            entry = "report.nightly"
            timezone = "Europe/Amsterdam"
            "#,
        )
        .unwrap();
        assert_eq!(triggers.len(), 2);
        assert_eq!(triggers[0].tz(), Tz::UTC);
        assert_eq!(triggers[1].tz(), Tz::Europe__Amsterdam);
        assert_eq!(triggers[1].entry.as_deref(), Some("report.nightly"));
        // Bundle metadata carries them as JSON and reads them back the same.
        let json = serde_json::to_string(&triggers).unwrap();
        assert!(json.contains(r#""schedule":"@daily""#), "{json}");
        assert_eq!(serde_json::from_str::<Vec<CronTriggerConfig>>(&json).unwrap(), triggers);
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        let bad_field = parse("[[cron]]\nname = \"x\"\nschedule = \"0 0 * * 8\"\n").unwrap_err();
        assert!(bad_field.contains("day-of-week field '8'"), "{bad_field}");
        let bad_zone =
            parse("[[cron]]\nname = \"x\"\nschedule = \"@daily\"\ntimezone = \"Mars/Base\"\n")
                .unwrap_err();
        assert!(bad_zone.contains("unknown time zone 'Mars/Base'"), "{bad_zone}");
        let typo = parse("[[cron]]\nname = \"x\"\nschedul = \"@daily\"\n").unwrap_err();
        assert!(typo.contains("unknown field `schedul`"), "{typo}");
        let twice = "[[cron]]\nname = \"x\"\nschedule = \"@daily\"\n".repeat(2);
        assert!(parse(&twice).unwrap_err().contains("used twice"));
        let bad_name = parse("[[cron]]\nname = \"Nightly Run\"\nschedule = \"@daily\"\n");
        assert!(bad_name.unwrap_err().contains("is invalid"));
    }
}
