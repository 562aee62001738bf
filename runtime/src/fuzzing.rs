//! Entry points for the runtime's fuzz targets in the repository's `fuzz/` folder and for the
//! test that replays their corpus (`tests/fuzz_corpus.rs`): each takes raw bytes as they arrive
//! from outside (a `function.toml`, a cron expression, an ingress body, an HTTP request), runs
//! the real parser on them and checks what must hold for any input, panicking when it does not.
//! Not an API. See docs/security.md, "Fuzzing".

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

pub use wasmfn_host_apis::fuzzing::{inputs, replay, replay_both_ways, Outcome};

use crate::invoker::Caller;
use crate::manifest::{validate_name, FunctionManifest};
use crate::server::ingress::parse_call;
use crate::server::invoke::{arguments, custom_path, parse_query, split_entry};
use crate::triggers::cron::{CronSchedule, CronTimezone};

/// A cron expression or `@` descriptor on the first line, optionally an IANA time zone on the
/// second: an accepted schedule parses again from its source and fires after now; its next
/// times, from instants around leap days and daylight saving changes, are strictly later and
/// within [`LONGEST_GAP_YEARS`].
pub fn cron_schedule(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else { return Outcome::Unreadable };
    let (expression, zone) = text.split_once('\n').unwrap_or((text, ""));
    let zone = CronTimezone::try_from(zone.trim().to_string()).map_or(Tz::UTC, |zone| zone.0);
    let Ok(schedule) = CronSchedule::parse(expression) else { return Outcome::Refused };
    let again = CronSchedule::parse(schedule.source()).expect("an accepted source parses again");
    assert_eq!(again, schedule);
    let now = Utc::now();
    assert!(schedule.next_after(now, Tz::UTC).is_some_and(|next| next > now), "no next time");
    let instants = [
        now,
        utc(2024, 2, 28, 23, 59),
        utc(2024, 3, 31, 0, 59),
        utc(2026, 10, 25, 0, 30),
        utc(2027, 12, 31, 23, 59),
    ];
    for after in instants {
        for tz in [Tz::UTC, zone] {
            let Some(next) = schedule.next_after(after, tz) else { continue };
            assert!(next > after, "{expression}: next {next} not after {after} in {tz}");
            assert!(next - after <= Duration::days(LONGEST_GAP_YEARS * 366), "next {next}");
            if tz == Tz::UTC {
                assert_eq!((next.second(), next.nanosecond()), (0, 0), "fires off the minute");
                let just_before = next - Duration::seconds(1);
                assert_eq!(schedule.next_after(just_before, tz), Some(next), "skips {next}");
            }
        }
    }
    Outcome::Accepted
}

/// The longest a valid schedule can wait between two fire times: a date that must also be a
/// given weekday (`0 2 */60 5 5`: 1 May, a Friday, since a day field starting with `*` joins
/// the other with AND) recurs after up to 11 years, 12 across the 2100 that is no leap year.
const LONGEST_GAP_YEARS: i64 = 12;

fn utc(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, hour, minute, 0).single().expect("a valid instant")
}

/// The text of a `function.toml`: an accepted manifest holds what its checks promise.
pub fn manifest(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else { return Outcome::Unreadable };
    let Ok(manifest) = FunctionManifest::parse(text) else { return Outcome::Refused };
    assert!(manifest.name.is_empty() || validate_name(&manifest.name).is_ok(), "bad name");
    assert!(semver::Version::parse(&manifest.version).is_ok(), "version is not semver");
    let now = Utc::now();
    for trigger in &manifest.cron {
        let next = trigger.schedule.next_after(now, trigger.tz());
        assert!(next.is_some_and(|next| next > now), "cron trigger {} never fires", trigger.name);
    }
    // Parsing is a function of the text.
    assert_eq!(FunctionManifest::parse(text).as_ref(), Ok(&manifest));
    Outcome::Accepted
}

/// An ingress (ixoncdkingress) call body: refused with a 400, or an invocation of a named entry
/// whose caller survives the JSON round trip it makes into async jobs and logs.
pub fn ingress_body(data: &[u8]) -> Outcome {
    match parse_call(data) {
        Err(error) => {
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{error}");
            Outcome::Refused
        }
        Ok((invocation, _created_on)) => {
            assert!(invocation.entry.as_deref().is_some_and(|entry| !entry.is_empty()));
            let company = invocation.caller.company.as_ref();
            assert!(company.is_none_or(|company| {
                wasmfn_host_apis::docstore::is_database_name(&company.public_id)
            }));
            let json = serde_json::to_value(&invocation.caller).expect("a caller serialises");
            let back: Caller = serde_json::from_value(json).expect("a caller deserialises");
            assert_eq!(back, invocation.caller, "the caller changed in a JSON round trip");
            Outcome::Accepted
        }
    }
}

/// An HTTP call: the query string on the first line, the Content-Type on the second (none when
/// empty), the body after it. The keyword arguments hold every query name; a refused body is a
/// 400. The query line also goes through the URL helpers (`name:entry`, the custom path).
pub fn http_arguments(data: &[u8]) -> Outcome {
    let (query_line, rest) = split_line(data);
    let (content_type, body) = split_line(rest);
    let query_text = String::from_utf8_lossy(query_line);

    let (name, entry) = split_entry(&query_text);
    match entry {
        Some(entry) => assert_eq!(format!("{name}:{entry}"), query_text),
        None => assert!(query_text.starts_with(name.as_str())),
    }
    if let Some(path) = custom_path(&query_text) {
        assert!(path.starts_with('/'));
    }

    let query = parse_query(Some(&query_text));
    let mut headers = HeaderMap::new();
    if !content_type.is_empty() {
        let Ok(value) = HeaderValue::from_bytes(content_type) else { return Outcome::Unreadable };
        headers.insert(header::CONTENT_TYPE, value);
    }
    match arguments(&query, &headers, body) {
        Ok(arguments) => {
            let arguments = arguments.to_map();
            for (name, _) in &query {
                assert!(arguments.contains_key(name), "query argument {name:?} lost");
            }
            Outcome::Accepted
        }
        Err(error) => {
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{error}");
            Outcome::Refused
        }
    }
}

fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}
