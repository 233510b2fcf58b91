//! How reasons write instants and durations: `HH:MM` on a zone's wall clock, and `1h30m`.

use std::fmt;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

/// `HH:MM` on the wall clock of the zone, as reasons print instants (written without strftime:
/// reasons are made for every occurrence of large policies).
#[derive(Clone, Copy)]
pub(super) struct Hhmm(pub(super) Tz, pub(super) DateTime<Utc>);

impl fmt::Display for Hhmm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match crate::timeline::cron::local_time(self.0, self.1) {
            Some(l) => write!(f, "{:02}:{:02}", l.hour(), l.minute()),
            None => write!(f, "{} UTC", self.1.format("%H:%M")),
        }
    }
}

/// `1h30m`, `45m`, `90s` — how durations read in reasons.
pub fn human(d: TimeDelta) -> String {
    Human(d).to_string()
}

/// A duration as [`human`] writes it, without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Human(pub TimeDelta);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.num_seconds();
        if total < 0 {
            f.write_str("-")?;
        }
        let total = total.unsigned_abs();
        let parts = [
            (total / 86_400, "d"),
            (total / 3_600 % 24, "h"),
            (total / 60 % 60, "m"),
            (total % 60, "s"),
        ];
        if total == 0 {
            return f.write_str("0m");
        }
        for (v, unit) in parts {
            if v != 0 {
                write!(f, "{v}{unit}")?;
            }
        }
        Ok(())
    }
}
