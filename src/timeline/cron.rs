//! ONTAP cron schedules: parsing (5-field strings and ONTAP's own lists) and evaluation in a zone.
//!
//! Semantics, as ONTAP documents them for `job schedule cron` (reference notes §5.2):
//! - five sets: minutes 0–59, hours 0–23, days of month 1–31, months 1–12, weekdays 0–6 (0 = Sunday);
//!   an empty ONTAP list, a `*` field, or a field that lists every value means "all values";
//! - when both the day-of-month and the weekday sets are restricted, a day matches if **either**
//!   matches (Friday + 13th fires every Friday and every 13th);
//! - the sets are matched against the cluster's local wall-clock time.
//!
//! DST rule (ONTAP does not document one; this is ours, and the simulator follows it too): a local
//! time that does not exist (spring forward) does not fire; a local time that occurs twice (fall
//! back) fires once, at its first occurrence.

use std::fmt;

use chrono::{
    DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// One of the five cron fields, in 5-field string order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronField {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl CronField {
    const ALL: [CronField; 5] = [
        CronField::Minute,
        CronField::Hour,
        CronField::DayOfMonth,
        CronField::Month,
        CronField::DayOfWeek,
    ];

    /// The field's name as users see it in errors.
    pub fn name(self) -> &'static str {
        match self {
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
        }
    }

    /// The ONTAP list key for this field (`cron.minutes` …).
    pub fn ontap_key(self) -> &'static str {
        match self {
            CronField::Minute => "minutes",
            CronField::Hour => "hours",
            CronField::DayOfMonth => "days",
            CronField::Month => "months",
            CronField::DayOfWeek => "weekdays",
        }
    }

    /// Inclusive range of values ONTAP accepts.
    pub fn range(self) -> (u32, u32) {
        match self {
            CronField::Minute => (0, 59),
            CronField::Hour => (0, 23),
            CronField::DayOfMonth => (1, 31),
            CronField::Month => (1, 12),
            CronField::DayOfWeek => (0, 6),
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            CronField::Month => &[
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ],
            CronField::DayOfWeek => &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
            _ => &[],
        }
    }

    fn full_mask(self) -> u64 {
        let (lo, hi) = self.range();
        (lo..=hi).fold(0, |m, v| m | (1u64 << v))
    }
}

/// A cron error: which field (when known) and what is wrong, phrased as a fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", field.map(|f| format!("{} field: ", f.name())).unwrap_or_default())]
pub struct CronError {
    pub field: Option<CronField>,
    pub message: String,
}

/// A parsed ONTAP cron schedule.
///
/// Invariant: every set is non-empty and within its field's range; a set equal to the full range
/// means "all values" (it is unrestricted for the day-of-month/weekday OR rule).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CronSpec {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
}

impl CronSpec {
    /// Parses a 5-field cron string: `minute hour day-of-month month day-of-week`.
    ///
    /// Each field is `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a comma list
    /// of those. Months and weekdays also take English names (`jan`, `sun`); weekday 7 is Sunday.
    pub fn parse(expr: &str) -> Result<CronSpec, CronError> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(CronError {
                field: None,
                message: format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), found {}; \
                     for example \"5 * * * *\" is hourly at :05",
                    parts.len()
                ),
            });
        }
        let mut masks = [0u64; 5];
        for (i, field) in CronField::ALL.into_iter().enumerate() {
            masks[i] = parse_field(field, parts[i])?;
        }
        Ok(CronSpec {
            minutes: masks[0],
            hours: masks[1],
            days: masks[2],
            months: masks[3],
            weekdays: masks[4],
        })
    }

    /// Builds a schedule from ONTAP's lists (`cron.minutes`, `cron.hours`, `cron.days`,
    /// `cron.weekdays`, `cron.months`); an empty list means all values.
    pub fn from_lists(
        minutes: &[u32],
        hours: &[u32],
        days: &[u32],
        weekdays: &[u32],
        months: &[u32],
    ) -> Result<CronSpec, CronError> {
        let mask = |field: CronField, values: &[u32]| -> Result<u64, CronError> {
            if values.is_empty() {
                return Ok(field.full_mask());
            }
            let (lo, hi) = field.range();
            let mut m = 0u64;
            for &v in values {
                if v < lo || v > hi {
                    return Err(CronError {
                        field: Some(field),
                        message: format!("{v} is out of range {lo}-{hi}"),
                    });
                }
                m |= 1 << v;
            }
            Ok(m)
        };
        Ok(CronSpec {
            minutes: mask(CronField::Minute, minutes)?,
            hours: mask(CronField::Hour, hours)?,
            days: mask(CronField::DayOfMonth, days)?,
            months: mask(CronField::Month, months)?,
            weekdays: mask(CronField::DayOfWeek, weekdays)?,
        })
    }

    /// The values of one field in ONTAP's list form: empty when the field is unrestricted.
    pub fn list(&self, field: CronField) -> Vec<u32> {
        let mask = self.mask(field);
        if mask == field.full_mask() {
            return Vec::new();
        }
        bits(mask).collect()
    }

    fn mask(&self, field: CronField) -> u64 {
        match field {
            CronField::Minute => self.minutes,
            CronField::Hour => self.hours,
            CronField::DayOfMonth => self.days,
            CronField::Month => self.months,
            CronField::DayOfWeek => self.weekdays,
        }
    }

    fn restricted(&self, field: CronField) -> bool {
        self.mask(field) != field.full_mask()
    }

    /// The single `(hour, minute)` the schedule fires at each matching day, when it has exactly one.
    pub fn single_time(&self) -> Option<(u32, u32)> {
        (self.hours.count_ones() == 1 && self.minutes.count_ones() == 1)
            .then(|| (self.hours.trailing_zeros(), self.minutes.trailing_zeros()))
    }

    /// The same days, firing only at `hour:minute`. Panics if out of range (callers pass a
    /// wall-clock time).
    pub fn at_time(&self, hour: u32, minute: u32) -> CronSpec {
        assert!(hour < 24 && minute < 60, "wall-clock time out of range");
        CronSpec {
            minutes: 1 << minute,
            hours: 1 << hour,
            ..*self
        }
    }

    /// Whether the schedule fires on this local date (month, and the day-of-month/weekday OR rule).
    pub fn matches_date(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        match (
            self.restricted(CronField::DayOfMonth),
            self.restricted(CronField::DayOfWeek),
        ) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// Whether a local wall-clock minute matches (seconds are ignored).
    pub fn matches(&self, local: NaiveDateTime) -> bool {
        self.minutes & (1 << local.minute()) != 0
            && self.hours & (1 << local.hour()) != 0
            && self.matches_date(local.date())
    }

    /// Whether the schedule can ever fire (for example `30 0 31 2 *` never does).
    pub fn is_satisfiable(&self) -> bool {
        // Within 8 years every (month, day, weekday) combination that exists occurs, leap days included.
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date");
        (0..366 * 8).any(|d| self.matches_date(start + Days::new(d)))
    }

    /// The first instant strictly after `after` at which the schedule fires in zone `tz`,
    /// or `None` if it does not fire within the next eight years.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Past chrono's last representable local time nothing fires.
        let local_after = local_time(tz, after)?;
        // Under the first-occurrence rule, local minutes map to UTC monotonically, so no local time
        // earlier than `local_after` can map to an instant after `after`.
        let start_date = local_after.date();
        let start_time = (local_after.hour(), local_after.minute());
        for offset in 0..366 * 8 {
            // Past chrono's last date nothing fires.
            let date = start_date.checked_add_days(Days::new(offset))?;
            if !self.matches_date(date) {
                continue;
            }
            for hour in bits(self.hours) {
                if offset == 0 && hour < start_time.0 {
                    continue;
                }
                for minute in bits(self.minutes) {
                    if offset == 0 && (hour, minute) < start_time {
                        continue;
                    }
                    let time =
                        NaiveTime::from_hms_opt(hour, minute, 0).expect("masks are in range");
                    if let Some(at) = first_instant(tz, date.and_time(time)) {
                        if at > after {
                            return Some(at);
                        }
                    }
                }
            }
        }
        None
    }
}

/// `t` on the wall clock of `tz`, or `None` when that lies outside chrono's range (within a day of
/// its first or last instant), where `DateTime::naive_local` would panic.
pub fn local_time(tz: Tz, t: DateTime<Utc>) -> Option<NaiveDateTime> {
    let utc = t.naive_utc();
    utc.checked_add_offset(tz.offset_from_utc_datetime(&utc).fix())
}

/// The instant a local wall-clock time names in `tz` under the DST rule: `None` when it does not
/// exist, the first occurrence when it occurs twice.
pub fn first_instant(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

fn bits(mask: u64) -> impl Iterator<Item = u32> {
    let mut rest = mask;
    std::iter::from_fn(move || {
        if rest == 0 {
            return None;
        }
        let bit = rest.trailing_zeros();
        rest &= rest - 1;
        Some(bit)
    })
}

fn parse_field(field: CronField, text: &str) -> Result<u64, CronError> {
    let err = |message: String| CronError {
        field: Some(field),
        message,
    };
    let (lo, hi) = field.range();
    let mut mask = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(err(format!(
                "empty item in \"{text}\"; separate values with single commas"
            )));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                    err(format!(
                        "step \"{s}\" in \"{item}\" must be a positive number"
                    ))
                })?;
                (r, Some(step))
            }
            None => (item, None),
        };
        let (start, end) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = parse_value(field, a)?;
            let b = parse_value(field, b)?;
            if a > b {
                return Err(err(format!(
                    "range \"{range}\" runs backwards; write the smaller value first"
                )));
            }
            (a, b)
        } else {
            let v = parse_value(field, range)?;
            // `a/n` means "from a to the end of the range, every n".
            (v, if step.is_some() { hi } else { v })
        };
        let step = step.unwrap_or(1);
        let mut v = start;
        while v <= end {
            // Weekday 7 is Sunday, as in most crons.
            let bit = if field == CronField::DayOfWeek && v == 7 {
                0
            } else {
                v
            };
            mask |= 1 << bit;
            v += step;
        }
    }
    Ok(mask)
}

fn parse_value(field: CronField, text: &str) -> Result<u32, CronError> {
    let (lo, hi) = field.range();
    let hi_accepted = if field == CronField::DayOfWeek { 7 } else { hi };
    let lower = text.to_ascii_lowercase();
    if let Some((pos, _)) = (0u32..).zip(field.names()).find(|(_, n)| **n == lower) {
        return Ok(pos + u32::from(field == CronField::Month));
    }
    let value: u32 = text.parse().map_err(|_| {
        let names = field.names();
        let hint = if names.is_empty() {
            String::new()
        } else {
            format!(" or a name ({}…{})", names[0], names[names.len() - 1])
        };
        CronError {
            field: Some(field),
            message: format!("\"{text}\" is not a number in {lo}-{hi}{hint}"),
        }
    })?;
    if value < lo || value > hi_accepted {
        return Err(CronError {
            field: Some(field),
            message: format!("{value} is out of range {lo}-{hi}"),
        });
    }
    Ok(value)
}

impl fmt::Display for CronSpec {
    /// Renders the canonical 5-field form (`*` for unrestricted fields, comma lists otherwise).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for field in CronField::ALL {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let list = self.list(field);
            if list.is_empty() {
                f.write_str("*")?;
            } else {
                let items: Vec<String> = list.iter().map(u32::to_string).collect();
                f.write_str(&items.join(","))?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSpec({self})")
    }
}
