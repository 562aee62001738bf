//! One field of a standard cron expression: its bounds and names, the set of values a field's
//! text matches (lists, ranges, steps, names; day-of-week 7 folded into Sunday 0), and that set
//! written in the `cron` crate's dialect. Whole expressions belong to `schedule`.

use std::fmt;

/// The five fields of a standard cron expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        })
    }
}

impl Field {
    pub const ALL: [Field; 5] =
        [Field::Minute, Field::Hour, Field::DayOfMonth, Field::Month, Field::DayOfWeek];

    /// The values the field may name; day-of-week allows 7 as a second Sunday.
    fn bounds(self) -> (u32, u32) {
        match self {
            Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 7),
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Field::Month => &[
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ],
            Field::DayOfWeek => &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
            _ => &[],
        }
    }

    fn value(self, text: &str) -> Result<u32, String> {
        let (min, max) = self.bounds();
        if let Ok(number) = text.parse::<u32>() {
            return if (min..=max).contains(&number) {
                Ok(number)
            } else {
                Err(format!("{number} is out of range {min}-{max}"))
            };
        }
        let first = if self == Field::Month { 1 } else { 0 };
        let lower = text.to_ascii_lowercase();
        match self.names().iter().position(|name| *name == lower) {
            Some(index) => Ok(index as u32 + first),
            None if self.names().is_empty() => Err(format!("'{text}' is not a number")),
            None => {
                Err(format!("'{text}' is not a number or a name ({})", self.names().join(", ")))
            }
        }
    }
}

/// The values one field matches, as a bit set, and whether standard cron counts it as
/// restricted (it does not start with `*`).
#[derive(Debug, Clone, Copy)]
pub struct FieldValues {
    pub bits: u64,
    pub restricted: bool,
}

/// The values `text` matches in `field`, or what is wrong with it.
pub fn parse_field(field: Field, text: &str) -> Result<FieldValues, String> {
    let (min, max) = field.bounds();
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step = step
                    .parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("step '{step}' is not a positive number"))?;
                (range, step)
            }
            None => (item, 1),
        };
        let (start, end) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (field.value(a)?, field.value(b)?);
            if a > b {
                return Err(format!("range {range} goes backwards"));
            }
            (a, b)
        } else if range.is_empty() {
            return Err("empty list item".into());
        } else {
            let start = field.value(range)?;
            // `5/15` means from 5 to the end, every 15 (as cronie reads it).
            (start, if item.contains('/') { max } else { start })
        };
        for value in (start..=end).step_by(step as usize) {
            bits |= 1 << value;
        }
    }
    if field == Field::DayOfWeek && bits & (1 << 7) != 0 {
        // 7 is Sunday too.
        bits = (bits & !(1 << 7)) | 1;
    }
    Ok(FieldValues { bits, restricted: !text.starts_with('*') })
}

/// Writes a value set in the crate's dialect: `*`, or runs like `1,3-5`, shifted by `offset`.
pub fn crate_field(values: u64, min: u32, max: u32, offset: u32) -> String {
    let full = (min..=max).fold(0u64, |bits, v| bits | 1 << v);
    if values == full {
        return "*".into();
    }
    let mut parts = Vec::new();
    let mut value = min;
    while value <= max {
        if values & (1 << value) == 0 {
            value += 1;
            continue;
        }
        let start = value;
        while value < max && values & (1 << (value + 1)) != 0 {
            value += 1;
        }
        parts.push(if start == value {
            format!("{}", start + offset)
        } else {
            format!("{}-{}", start + offset, value + offset)
        });
        value += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(field: Field, text: &str) -> Vec<u32> {
        let bits = parse_field(field, text).unwrap().bits;
        (0..64).filter(|v| bits & (1 << v) != 0).collect()
    }

    #[test]
    fn lists_ranges_steps_and_names() {
        assert_eq!(values(Field::Minute, "*/15"), [0, 15, 30, 45]);
        assert_eq!(values(Field::Hour, "1-3,20-23/2"), [1, 2, 3, 20, 22]);
        assert_eq!(values(Field::Month, "JAN,jun-aug"), [1, 6, 7, 8]);
        assert_eq!(values(Field::DayOfWeek, "fri-sat,7"), [0, 5, 6], "7 is Sunday, 0");
        assert!(parse_field(Field::DayOfMonth, "1").unwrap().restricted);
        assert!(!parse_field(Field::DayOfMonth, "*/2").unwrap().restricted);
    }

    #[test]
    fn sets_are_written_as_runs_in_the_crate_numbering() {
        assert_eq!(crate_field(0b1011_0001, 0, 7, 0), "0,4-5,7");
        assert_eq!(crate_field(0b0111_1111, 0, 6, 1), "*");
        assert_eq!(crate_field(0b0000_0001, 0, 6, 1), "1", "Sunday is the crate's 1");
    }
}
