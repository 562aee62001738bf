//! Property tests of the cron dialect (`fields` and `schedule`): expressions come from users'
//! `function.toml`, so any text must give a schedule or an error naming the problem, never a
//! panic; generated valid expressions must fire exactly when an independent calendar search
//! (written here, from the standard cron rules) says they do; out-of-range numbers are refused
//! with the field named.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::fields::Field;
use super::schedule::{translate, CronSchedule, ScheduleError, DESCRIPTORS};

/// A moderate number of cases unless `PROPTEST_CASES` asks for another; no regression files
/// written into the checkout.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { cases };
    ProptestConfig { cases, failure_persistence: None, ..default }
}

const MONTHS: [&str; 12] =
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The bounds a field's numbers may take (day-of-week 7 is a second Sunday).
fn bounds(field: Field) -> (u32, u32) {
    match field {
        Field::Minute => (0, 59),
        Field::Hour => (0, 23),
        Field::DayOfMonth => (1, 31),
        Field::Month => (1, 12),
        Field::DayOfWeek => (0, 7),
    }
}

/// One number of a field as written: decimal, zero-padded, or a name in some letter case.
#[derive(Debug, Clone, Copy)]
struct Num {
    value: u32,
    style: u8,
}

impl Num {
    fn render(self, field: Field) -> String {
        let name = match field {
            Field::Month => Some(MONTHS[self.value as usize - 1]),
            Field::DayOfWeek if self.value < 7 => Some(DAYS[self.value as usize]),
            _ => None,
        };
        match (self.style % 5, name) {
            (1, Some(name)) => name.to_string(),
            (2, Some(name)) => name.to_ascii_uppercase(),
            (3, Some(name)) => name[..1].to_ascii_uppercase() + &name[1..],
            (4, _) => format!("0{}", self.value),
            _ => self.value.to_string(),
        }
    }
}

/// One list item of a field.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// `*`
    Star,
    /// `*/n`
    StarStep(u32),
    /// `a`
    One(Num),
    /// `a-b`, a <= b
    Range(Num, Num),
    /// `a-b/n`
    RangeStep(Num, Num, u32),
    /// `a/n`: from a to the field's end, every n (as cronie reads it).
    StartStep(Num, u32),
}

impl Item {
    fn render(self, field: Field) -> String {
        match self {
            Item::Star => "*".into(),
            Item::StarStep(n) => format!("*/{n}"),
            Item::One(a) => a.render(field),
            Item::Range(a, b) => format!("{}-{}", a.render(field), b.render(field)),
            Item::RangeStep(a, b, n) => format!("{}-{}/{n}", a.render(field), b.render(field)),
            Item::StartStep(a, n) => format!("{}/{n}", a.render(field)),
        }
    }

    /// The values this item matches, computed from the standard rules (not by the parser).
    fn values(self, field: Field) -> Vec<u32> {
        let (min, max) = bounds(field);
        let stepped = |from: u32, to: u32, step: u32| -> Vec<u32> {
            (from..=to).step_by(step as usize).collect()
        };
        match self {
            Item::Star => stepped(min, max, 1),
            Item::StarStep(n) => stepped(min, max, n),
            Item::One(a) => vec![a.value],
            Item::Range(a, b) => stepped(a.value, b.value, 1),
            Item::RangeStep(a, b, n) => stepped(a.value, b.value, n),
            Item::StartStep(a, n) => stepped(a.value, max, n),
        }
    }
}

/// A generated field: its items and the text they make.
#[derive(Debug, Clone)]
struct GenField {
    field: Field,
    items: Vec<Item>,
}

impl GenField {
    fn text(&self) -> String {
        self.items.iter().map(|item| item.render(self.field)).collect::<Vec<_>>().join(",")
    }

    /// Whether value `v` is in the field's set (day-of-week 7 counted as Sunday 0).
    fn set(&self) -> [bool; 64] {
        let mut set = [false; 64];
        for item in &self.items {
            for v in item.values(self.field) {
                let v = if self.field == Field::DayOfWeek && v == 7 { 0 } else { v };
                set[v as usize] = true;
            }
        }
        set
    }

    /// Standard cron: a field is restricted unless it starts with `*`.
    fn restricted(&self) -> bool {
        !matches!(self.items[0], Item::Star | Item::StarStep(_))
    }
}

fn num(field: Field) -> impl Strategy<Value = Num> {
    let (min, max) = bounds(field);
    (min..=max, any::<u8>()).prop_map(|(value, style)| Num { value, style })
}

fn item(field: Field) -> impl Strategy<Value = Item> {
    let (min, max) = bounds(field);
    // Steps up to past the field's width (a step longer than the range is valid: one value).
    let step = 1..=(max - min + 3);
    let range = || {
        (num(field), num(field)).prop_map(|(a, b)| if a.value <= b.value { (a, b) } else { (b, a) })
    };
    prop_oneof![
        2 => Just(Item::Star),
        2 => step.clone().prop_map(Item::StarStep),
        4 => num(field).prop_map(Item::One),
        3 => range().prop_map(|(a, b)| Item::Range(a, b)),
        2 => (range(), step.clone()).prop_map(|((a, b), n)| Item::RangeStep(a, b, n)),
        1 => (num(field), step).prop_map(|(a, n)| Item::StartStep(a, n)),
    ]
}

fn gen_field(field: Field) -> impl Strategy<Value = GenField> {
    prop::collection::vec(item(field), 1..=3).prop_map(move |items| GenField { field, items })
}

/// A generated valid 5-field expression.
#[derive(Debug, Clone)]
struct Expr {
    fields: [GenField; 5],
    /// Whitespace between (and around) the fields.
    gaps: [&'static str; 6],
}

impl Expr {
    fn text(&self) -> String {
        let mut text = self.gaps[0].to_string();
        for (field, gap) in self.fields.iter().zip(&self.gaps[1..]) {
            text.push_str(&field.text());
            text.push_str(gap);
        }
        text
    }

    fn model(&self) -> Model {
        let [minute, hour, dom, month, dow] = &self.fields;
        Model {
            minute: minute.set(),
            hour: hour.set(),
            dom: dom.set(),
            month: month.set(),
            dow: dow.set(),
            either_day: dom.restricted() && dow.restricted(),
        }
    }
}

fn gap(edge: bool) -> impl Strategy<Value = &'static str> {
    let gaps: &'static [&'static str] =
        if edge { &["", "", " ", "\t", "  \n"] } else { &[" ", " ", "  ", "\t", " \t "] };
    prop::sample::select(gaps)
}

fn expr() -> impl Strategy<Value = Expr> {
    let fields = (
        gen_field(Field::Minute),
        gen_field(Field::Hour),
        gen_field(Field::DayOfMonth),
        gen_field(Field::Month),
        gen_field(Field::DayOfWeek),
    );
    let gaps = (gap(true), gap(false), gap(false), gap(false), gap(false), gap(true));
    (fields, gaps).prop_map(|((a, b, c, d, e), (g0, g1, g2, g3, g4, g5))| Expr {
        fields: [a, b, c, d, e],
        gaps: [g0, g1, g2, g3, g4, g5],
    })
}

/// The value sets of an expression and its day rule, as standard cron defines them.
#[derive(Debug)]
struct Model {
    minute: [bool; 64],
    hour: [bool; 64],
    dom: [bool; 64],
    month: [bool; 64],
    dow: [bool; 64],
    /// Both day fields restricted: a day matching either fires; otherwise both must match.
    either_day: bool,
}

impl Model {
    fn day_matches(&self, date: NaiveDate) -> bool {
        if !self.month[date.month() as usize] {
            return false;
        }
        let dom = self.dom[date.day() as usize];
        let dow = self.dow[date.weekday().num_days_from_sunday() as usize];
        if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }

    fn matches(&self, time: NaiveDateTime) -> bool {
        time.second() == 0
            && time.nanosecond() == 0
            && self.minute[time.minute() as usize]
            && self.hour[time.hour() as usize]
            && self.day_matches(time.date())
    }

    /// The first matching minute strictly after `after` (wall-clock time), searching day by day
    /// up to the end of 2100 (as far as the `cron` crate searches).
    fn next_after(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let start = after.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let last = NaiveDate::from_ymd_opt(2100, 12, 31)?;
        let mut date = start.date();
        while date <= last {
            if self.day_matches(date) {
                for hour in (0..24).filter(|h| self.hour[*h as usize]) {
                    for minute in (0..60).filter(|m| self.minute[*m as usize]) {
                        let time = date.and_hms_opt(hour, minute, 0)?;
                        if time >= start {
                            return Some(time);
                        }
                    }
                }
            }
            date = date.succ_opt()?;
        }
        None
    }
}

/// An instant between 1971 and 2099, to the nanosecond.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let from = Utc.with_ymd_and_hms(1971, 1, 1, 0, 0, 0).unwrap().timestamp();
    let to = Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap().timestamp();
    // Half of them on a whole minute: the edge case for "strictly after".
    (from..to, prop_oneof![Just(0u32), 0u32..1_000_000_000], any::<bool>()).prop_map(
        |(seconds, nanos, whole_minute)| {
            let seconds = if whole_minute { seconds - seconds.rem_euclid(60) } else { seconds };
            let nanos = if whole_minute { 0 } else { nanos };
            Utc.timestamp_opt(seconds, nanos).unwrap()
        },
    )
}

/// An instant within two hours of a European daylight-saving change (the last Sundays of March
/// and October, 01:00 UTC, since 1996): in or near the hour that is skipped or repeated.
fn near_eu_transition() -> impl Strategy<Value = DateTime<Utc>> {
    (1996i32..2099, any::<bool>(), -7200i64..7200, any::<bool>()).prop_map(
        |(year, autumn, offset, whole_minute)| {
            let month = if autumn { 10 } else { 3 };
            let last_sunday = (25..=31)
                .rev()
                .filter_map(|day| NaiveDate::from_ymd_opt(year, month, day))
                .find(|date| date.weekday() == chrono::Weekday::Sun)
                .expect("a month has a last Sunday");
            let change = last_sunday.and_hms_opt(1, 0, 0).unwrap().and_utc();
            let offset = if whole_minute { offset - offset.rem_euclid(60) } else { offset };
            change + Duration::seconds(offset)
        },
    )
}

/// Hour fields that reach into the skipped or repeated hour (02:00-02:59 local in Europe).
fn hours_near_two() -> impl Strategy<Value = GenField> {
    let num = |value| Num { value, style: 0 };
    let items = prop_oneof![
        Just(vec![Item::Star]),
        Just(vec![Item::One(num(2))]),
        Just(vec![Item::Range(num(1), num(3))]),
        Just(vec![Item::One(num(2)), Item::One(num(3))]),
        Just(vec![Item::StarStep(2)]),
    ];
    items.prop_map(|items| GenField { field: Field::Hour, items })
}

/// Text likely to reach the parser's corners: cron characters, names, numbers, descriptors.
fn cronish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        "[0-9]{1,3}",
        Just("*".to_string()),
        Just("/".to_string()),
        Just("-".to_string()),
        Just(",".to_string()),
        Just(" ".to_string()),
        Just("\t".to_string()),
        "[a-zA-Z]{1,4}",
        "(@[a-z]{0,9})",
        "[0-9]{5,12}",
        Just("?".to_string()),
        Just("L".to_string()),
        Just("#".to_string()),
        Just("é".to_string()),
    ];
    prop::collection::vec(token, 0..24).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(config(512))]

    /// Any text gives a schedule or an error; a schedule really has a next fire time, and an
    /// error names the expression (and, for a field error, one of the expression's fields).
    #[test]
    fn any_text_parses_or_is_refused_without_panicking(
        text in prop_oneof![any::<String>(), cronish(), "[0-9*/,a-z -]{0,30}"]
    ) {
        let parsed = CronSchedule::parse(&text);
        let translated = translate(&text);
        match &parsed {
            Ok(schedule) => {
                prop_assert_eq!(schedule.source(), text.trim());
                let translated = translated.expect("translate agrees with parse");
                prop_assert!(matches!(translated.len(), 1 | 2), "{:?}", translated);
                for expression in &translated {
                    prop_assert_eq!(expression.split_whitespace().count(), 6, "{}", expression);
                }
                prop_assert!(schedule.next_after(Utc::now(), Tz::UTC).is_some());
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(message.starts_with("cron schedule '"), "{}", message);
                if let ScheduleError::Field { text: field_text, .. } = error {
                    prop_assert!(
                        text.split_whitespace().any(|t| t == field_text),
                        "{:?} is not a field of {:?}", field_text, text
                    );
                }
                // Only a parsed expression that never fires is refused after translation.
                if translated.is_ok() {
                    let is_unsupported = matches!(error, ScheduleError::Unsupported { .. });
                    prop_assert!(is_unsupported, "{}", message);
                }
            }
        }
    }

    /// A valid expression parses, and its next fire time after any instant is strictly later,
    /// on a whole minute whose minute, hour, day and month are in the generated sets, and is
    /// the first such minute (checked against a day-by-day calendar search).
    #[test]
    fn valid_expressions_fire_at_the_first_matching_minute(expr in expr(), after in instant()) {
        let text = expr.text();
        let model = expr.model();
        let now = Utc::now().naive_utc();
        let schedule = match CronSchedule::parse(&text) {
            Ok(schedule) => schedule,
            Err(error) => {
                // Only an expression naming a day none of its months has may be refused.
                prop_assert!(matches!(error, ScheduleError::Unsupported { .. }), "{}", error);
                prop_assert_eq!(model.next_after(now), None, "{} fires but was refused", text);
                return Ok(());
            }
        };
        prop_assert!(model.next_after(now).is_some(), "{} never fires", text);
        let next = schedule.next_after(after, Tz::UTC);
        let expected = model.next_after(after.naive_utc()).map(|t| t.and_utc());
        prop_assert_eq!(next, expected, "{:?} after {}", text, after);
        if let Some(next) = next {
            prop_assert!(next > after);
            prop_assert!(model.matches(next.naive_utc()), "{} does not match {:?}", next, text);
        }
    }

    /// In a zone without daylight saving (or other offset changes since 1971), the fields are
    /// read in the zone's wall-clock time: the next fire time is the first matching local minute.
    #[test]
    fn fixed_offset_zones_read_the_fields_in_local_time(
        expr in expr(),
        after in instant(),
        zone in prop::sample::select(&["Asia/Kolkata", "Etc/GMT-14", "Etc/GMT+11", "UTC"][..]),
    ) {
        let text = expr.text();
        let model = expr.model();
        let tz: Tz = zone.parse().unwrap();
        let Ok(schedule) = CronSchedule::parse(&text) else { return Ok(()) };
        let next = schedule.next_after(after, tz);
        let expected = model
            .next_after(after.with_timezone(&tz).naive_local())
            .map(|local| tz.from_local_datetime(&local).single().unwrap().with_timezone(&Utc));
        prop_assert_eq!(next, expected, "{:?} after {} in {}", text, after, zone);
    }

    /// With daylight saving (or a one-off offset change, as Kathmandu's in 1986), a fire time
    /// is still strictly later and matches every field in local time (missing local times are
    /// skipped, not moved).
    #[test]
    fn daylight_saving_zones_fire_at_matching_local_times(
        expr in expr(),
        after in instant(),
        zone in prop::sample::select(
            &[
                "Europe/Amsterdam",
                "America/New_York",
                "Australia/Lord_Howe",
                "America/Santiago",
                "Asia/Kathmandu",
            ][..]
        ),
    ) {
        let text = expr.text();
        let model = expr.model();
        let tz: Tz = zone.parse().unwrap();
        let Ok(schedule) = CronSchedule::parse(&text) else { return Ok(()) };
        if let Some(next) = schedule.next_after(after, tz) {
            prop_assert!(next > after, "{} is not after {}", next, after);
            let local = next.with_timezone(&tz).naive_local();
            prop_assert!(model.matches(local), "{} ({}) does not match {:?}", next, local, text);
        }
    }

    /// Around the European changes (Amsterdam), where the `cron` crate sees a local time twice
    /// or not at all: the next fire time is strictly later and matches in local time. (Before
    /// `next_after` skipped candidates not after `after`, a start in the repeated hour got the
    /// hour's first pass, in the past: `30 2 * * *` after 2026-10-25T01:10Z gave 00:30Z.)
    #[test]
    fn the_hour_around_a_clock_change_never_fires_in_the_past(
        expr in expr(),
        hours in hours_near_two(),
        every_day in any::<bool>(),
        after in near_eu_transition(),
    ) {
        let mut expr = expr;
        expr.fields[1] = hours;
        if every_day {
            for index in [2, 3, 4] {
                expr.fields[index].items = vec![Item::Star];
            }
        }
        let text = expr.text();
        let model = expr.model();
        let tz: Tz = "Europe/Amsterdam".parse().unwrap();
        let Ok(schedule) = CronSchedule::parse(&text) else { return Ok(()) };
        if let Some(next) = schedule.next_after(after, tz) {
            prop_assert!(next > after, "{:?}: {} is not after {}", text, next, after);
            let local = next.with_timezone(&tz).naive_local();
            prop_assert!(model.matches(local), "{} ({}) does not match {:?}", next, local, text);
        }
    }

    /// The descriptors, in any letter case and surrounded by blanks, fire exactly as the
    /// expressions they stand for.
    #[test]
    fn descriptors_fire_as_their_expressions(
        index in 0..DESCRIPTORS.len(),
        upper in prop::collection::vec(any::<bool>(), 10),
        pad in prop::sample::select(&["", " ", "\t", " \n "][..]),
        after in instant(),
    ) {
        let (name, fields) = DESCRIPTORS[index];
        let cased: String = name
            .chars()
            .zip(upper.iter().cycle())
            .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
            .collect();
        let descriptor = CronSchedule::parse(&format!("{pad}{cased}{pad}")).unwrap();
        let expression = CronSchedule::parse(fields).unwrap();
        prop_assert_eq!(
            descriptor.next_after(after, Tz::UTC),
            expression.next_after(after, Tz::UTC)
        );
    }

    /// A number outside its field's range anywhere in a field (alone, in a range, a list or
    /// before a step) is refused, and the error names that field.
    #[test]
    fn out_of_range_numbers_are_refused_naming_the_field(
        expr in expr(),
        which in 0usize..5,
        excess in prop_oneof![0u32..5, 5u32..1000, Just(u32::MAX - 60)],
        below in any::<bool>(),
        shape in 0u8..5,
    ) {
        let field = Field::ALL[which];
        let (min, max) = bounds(field);
        // Below the range only exists where it starts at 1 (day of month, month).
        let bad = if below && min == 1 { 0 } else { max + 1 + excess };
        let text = match shape {
            0 => bad.to_string(),
            1 => format!("{min}-{bad}"),
            2 => format!("{bad}-{max}"),
            3 => format!("{min},{bad}"),
            _ => format!("{bad}/2"),
        };
        let mut fields: Vec<String> = expr.fields.iter().map(GenField::text).collect();
        fields[which] = text.clone();
        let expression = fields.join(" ");
        match CronSchedule::parse(&expression) {
            Err(ScheduleError::Field { field: named, text: field_text, problem, .. }) => {
                prop_assert_eq!(named, field);
                prop_assert_eq!(field_text, text);
                prop_assert!(
                    problem == format!("{bad} is out of range {min}-{max}"),
                    "{:?}: {}", expression, problem
                );
            }
            other => prop_assert!(false, "{:?} gave {:?}", expression, other),
        }
    }

    /// Numbers too large for any field (past u32) are refused naming the field, not wrapped.
    #[test]
    fn huge_numbers_are_refused(which in 0usize..5, digits in "[1-9][0-9]{10,30}") {
        let mut fields = ["*"; 5];
        fields[which] = &digits;
        let expression = fields.join(" ");
        match CronSchedule::parse(&expression) {
            Err(ScheduleError::Field { field, .. }) => prop_assert_eq!(field, Field::ALL[which]),
            other => prop_assert!(false, "{:?} gave {:?}", expression, other),
        }
    }
}
