//! When ONTAP takes scheduled snapshots: cron and interval schedules evaluated in a cluster's zone.
//!
//! This module is the single source of truth for schedule instants; the planner and the simulator
//! both call it, so a snapshot the simulator takes is exactly one the planner predicted.

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

pub mod cron;

pub use cron::{CronError, CronField, CronSpec};

/// How an ONTAP job schedule recurs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recurrence {
    /// ONTAP cron: evaluated in the cluster's local time (see [`CronSpec`] for the DST rule).
    Cron(CronSpec),
    /// ONTAP interval schedule: fires at `anchor + k * every` for every integer `k`.
    /// Invariant: `every` is at least one second.
    Interval {
        every: TimeDelta,
        anchor: DateTime<Utc>,
    },
}

impl Recurrence {
    /// The first instant strictly after `after`, or `None` if the schedule never fires again
    /// (or the next instant lies outside the range chrono can represent).
    ///
    /// Sub-second parts are honoured: an interval schedule anchored on a whole second never fires
    /// in the fraction of a second after `after`, and the result is never at or before `after`.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Recurrence::Cron(spec) => spec.next_after(tz, after),
            Recurrence::Interval { every, anchor } => interval_next_after(*every, *anchor, after),
        }
    }

    /// Every instant in `[from, until)`, sorted and unique (`from` may carry sub-seconds: no
    /// instant before it is returned).
    pub fn occurrences(
        &self,
        tz: Tz,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        // The first instant at or after `from` is the first strictly after `from - 1 ns`.
        let mut next = match from.checked_sub_signed(TimeDelta::nanoseconds(1)) {
            Some(before) => self.next_after(tz, before),
            None => Some(from)
                .filter(|&t| self.fires_at(tz, t))
                .or_else(|| self.next_after(tz, from)),
        };
        while let Some(at) = next {
            if at >= until {
                break;
            }
            out.push(at);
            next = self.next_after(tz, at);
        }
        out
    }

    /// Whether `t` is one of the schedule's instants.
    fn fires_at(&self, tz: Tz, t: DateTime<Utc>) -> bool {
        match self {
            Recurrence::Cron(spec) => {
                let Some(local) = cron::local_time(tz, t) else {
                    return false;
                };
                spec.matches(local)
                    && local.second() == 0
                    && local.nanosecond() == 0
                    && cron::first_instant(tz, local) == Some(t)
            }
            Recurrence::Interval { every, anchor } => {
                let d = t.signed_duration_since(*anchor);
                d.subsec_nanos() == 0
                    && every.num_seconds() > 0
                    && d.num_seconds().rem_euclid(every.num_seconds()) == 0
            }
        }
    }
}

/// `anchor + k * every` for the smallest integer `k` that lies strictly after `after`, in exact
/// arithmetic: the difference is floored (not truncated toward zero), so an anchor after `after`
/// gives the same instants as one before it. `None` when `every` is under one second or the
/// instant is out of chrono's range.
fn interval_next_after(
    every: TimeDelta,
    anchor: DateTime<Utc>,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let every_s = every.num_seconds();
    if every_s < 1 {
        return None;
    }
    let since = after.signed_duration_since(anchor);
    // floor(since) in whole seconds: `num_seconds` truncates toward zero.
    let mut since_s = since.num_seconds();
    if since.subsec_nanos() < 0 {
        since_s = since_s.checked_sub(1)?;
    }
    let k = since_s.div_euclid(every_s).checked_add(1)?;
    let offset = TimeDelta::try_seconds(k.checked_mul(every_s)?)?;
    anchor.checked_add_signed(offset)
}

/// One scheduled snapshot instant of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScheduledSnapshot {
    pub at: DateTime<Utc>,
    /// Index into the schedule list the timeline was built from.
    pub schedule: usize,
}

/// A free period between two scheduled snapshots (or a horizon edge), `(start, end)` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Gap {
    pub fn length(&self) -> TimeDelta {
        self.end - self.start
    }
}

/// Every scheduled snapshot of the given schedules in `[from, until)`, sorted by instant then by
/// schedule index. Two schedules firing at the same minute yield two entries, as ONTAP takes two
/// snapshots.
pub fn scheduled_snapshots(
    schedules: &[&Recurrence],
    tz: Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<ScheduledSnapshot> {
    let mut out: Vec<ScheduledSnapshot> = schedules
        .iter()
        .enumerate()
        .flat_map(|(schedule, r)| {
            r.occurrences(tz, from, until)
                .into_iter()
                .map(move |at| ScheduledSnapshot { at, schedule })
        })
        .collect();
    out.sort_unstable();
    out
}

/// The free gaps between consecutive scheduled snapshots within `[from, until)`; the first gap
/// starts at `from` and the last ends at `until` unless a snapshot sits exactly there.
/// `snapshots` must be sorted (as [`scheduled_snapshots`] returns them).
pub fn gaps(
    snapshots: &[ScheduledSnapshot],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<Gap> {
    let mut out = Vec::new();
    let mut start = from;
    for s in snapshots.iter().filter(|s| s.at >= from && s.at < until) {
        if s.at > start {
            out.push(Gap { start, end: s.at });
        }
        start = start.max(s.at);
    }
    if until > start {
        out.push(Gap { start, end: until });
    }
    out
}

#[cfg(test)]
mod tests;
