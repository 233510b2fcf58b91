//! When ONTAP takes scheduled snapshots: cron and interval schedules evaluated in a cluster's zone.
//!
//! This module is the single source of truth for schedule instants; the planner and the simulator
//! both call it, so a snapshot the simulator takes is exactly one the planner predicted.

use chrono::{DateTime, TimeDelta, Utc};
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
    /// The first instant strictly after `after`, or `None` if the schedule never fires again.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Recurrence::Cron(spec) => spec.next_after(tz, after),
            Recurrence::Interval { every, anchor } => {
                let every_s = every.num_seconds();
                let since = (after - *anchor).num_seconds();
                let k = since.div_euclid(every_s) + 1;
                Some(*anchor + TimeDelta::seconds(k * every_s))
            }
        }
    }

    /// Every instant in `[from, until)`, sorted and unique.
    pub fn occurrences(
        &self,
        tz: Tz,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut cursor = from - TimeDelta::seconds(1);
        while let Some(next) = self.next_after(tz, cursor) {
            if next >= until {
                break;
            }
            out.push(next);
            cursor = next;
        }
        out
    }
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
