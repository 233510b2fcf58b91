//! Managed schedules: the copies of a volume's `managed_snapshots` policy, which snapwarden takes
//! itself instead of ONTAP — their instants in the cluster's zone, ONTAP's naming, the comment
//! marker, the exact name pattern retention may delete, and what holds a due snapshot back (a
//! live clone on the volume). Pure functions; the managed stage of `decide` uses them.

pub mod metrics;

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::cycle::{CloneKind, Cycle, MARKER};
use super::discovery::Inventory;
use super::state::{ClusterView, Memory, Step, VolumeKey};
use crate::config::Policy;
use crate::ontap::SnapshotInfo;
use crate::planner::{self, Observed};
use crate::timeline::Recurrence;

/// How long after a clone is deleted a managed snapshot still waits, so that ONTAP has let go
/// of the clone's blocks before the snapshot is taken (the planner predicts with the same).
pub const SETTLE: TimeDelta = planner::MANAGED_SETTLE;

/// How far back a copy's missed instants are looked for: a week (the longest outage a managed
/// schedule is expected to ride out); older ones are not counted.
pub const LOOKBACK: TimeDelta = TimeDelta::days(7);

/// One copy of a volume's managed policy, resolved.
#[derive(Debug, Clone)]
pub struct ManagedCopy<'p> {
    pub volume: VolumeKey,
    /// Index into `Policy::volumes`.
    pub vi: usize,
    /// The managed `[[snapshot_policy]]`'s name.
    pub policy: &'p str,
    /// The ONTAP job schedule's name.
    pub schedule: &'p str,
    /// Snapshots are named `<prefix>.<YYYY-MM-DD_HHMM>`.
    pub prefix: &'p str,
    pub count: u32,
    pub label: Option<&'p str>,
    pub recurrence: &'p Recurrence,
    pub max_defer: TimeDelta,
    pub tz: Tz,
}

impl ManagedCopy<'_> {
    /// The copy's identity in memory, the journal and the metrics: its volume and prefix.
    pub fn key(&self) -> CopyKey {
        CopyKey {
            volume: self.volume.clone(),
            prefix: self.prefix.to_string(),
        }
    }

    /// The copy's instants in `(after, until]`, oldest first, at most [`LOOKBACK`] before
    /// `until`.
    pub fn instants(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        self.instants_by(after, until, |t| self.recurrence.next_after(self.tz, t))
    }

    /// [`ManagedCopy::instants`], each next instant asked of `next_after`.
    pub fn instants_by(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        mut next_after: impl FnMut(DateTime<Utc>) -> Option<DateTime<Utc>>,
    ) -> Vec<DateTime<Utc>> {
        let from = after.max(until - LOOKBACK);
        let mut out = Vec::new();
        let mut next = next_after(from);
        while let Some(at) = next.filter(|t| *t <= until) {
            out.push(at);
            next = next_after(at);
        }
        out
    }

    /// The copy's last instant at or before `until` (within [`LOOKBACK`]).
    pub fn last_instant(&self, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.instants(until - LOOKBACK, until).last().copied()
    }

    /// The snapshots on the volume whose names follow this copy's pattern exactly, oldest first.
    pub fn series<'i>(&self, inv: &'i Inventory) -> Vec<&'i SnapshotInfo> {
        let mut out: Vec<&SnapshotInfo> = inv
            .volume_snapshots(&self.volume.svm, &self.volume.volume)
            .filter(|s| follows_pattern(self.prefix, &s.name))
            .collect();
        out.sort_by(|a, b| (a.create_time, &a.name).cmp(&(b.create_time, &b.name)));
        out
    }
}

/// The copies' next instants, each computed once per schedule, zone and time: the copies of one
/// schedule in one zone share them, and a pass asks for every copy's.
#[derive(Default)]
pub struct NextInstants<'p>(HashMap<InstantOf<'p>, Option<DateTime<Utc>>>);

/// A schedule (by name), a zone and a time.
type InstantOf<'p> = (&'p str, Tz, DateTime<Utc>);

impl<'p> NextInstants<'p> {
    /// The copy's first instant after `t` ([`Recurrence::next_after`] in its zone).
    pub fn after(&mut self, copy: &ManagedCopy<'p>, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        *self
            .0
            .entry((copy.schedule, copy.tz, t))
            .or_insert_with(|| copy.recurrence.next_after(copy.tz, t))
    }
}

/// A managed copy: its volume and its prefix (unique per volume).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CopyKey {
    pub volume: VolumeKey,
    pub prefix: String,
}

impl std::fmt::Display for CopyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.volume, self.prefix)
    }
}

/// The managed copies of policy volume `vi` (none without `managed_snapshots`); `Err` when the
/// cluster's zone is not known yet.
pub fn copies<'p>(
    policy: &'p Policy,
    observed: &Observed,
    vi: usize,
) -> Result<Vec<ManagedCopy<'p>>, String> {
    let volume = &policy.volumes[vi];
    let Some(pi) = volume.managed else {
        return Ok(Vec::new());
    };
    let tz = planner::resolve_zone(policy, observed, vi)?;
    let key = VolumeKey::of_policy(policy, vi).ok_or("volume out of range")?;
    let sp = &policy.snapshot_policies[pi];
    Ok(sp
        .copies
        .iter()
        .map(|c| {
            let schedule = &policy.schedules[c.schedule];
            ManagedCopy {
                volume: key.clone(),
                vi,
                policy: &sp.name,
                schedule: &schedule.name,
                prefix: &c.prefix,
                count: c.count,
                label: c.snapmirror_label.as_deref(),
                recurrence: &schedule.recurrence,
                max_defer: sp.max_defer,
                tz,
            }
        })
        .collect())
}

/// ONTAP's name for a snapshot of `prefix` taken at `at`: `<prefix>.<YYYY-MM-DD_HHMM>` in the
/// cluster's local time (a late snapshot carries the time it was taken, as ONTAP names it).
pub fn name(prefix: &str, tz: Tz, at: DateTime<Utc>) -> String {
    format!("{prefix}.{}", at.with_timezone(&tz).format("%Y-%m-%d_%H%M"))
}

/// The comment every managed snapshot carries: snapwarden's marker and the copy's prefix.
pub fn comment(prefix: &str) -> String {
    format!("{MARKER} schedule={prefix}")
}

/// Whether a comment is the marker of a managed snapshot of `prefix`.
pub fn is_marked(comment: Option<&str>, prefix: &str) -> bool {
    comment
        .and_then(|c| c.strip_prefix(MARKER))
        .and_then(|c| c.strip_prefix(" schedule="))
        .is_some_and(|p| p == prefix)
}

/// Whether a comment is the marker of any managed snapshot (of whichever copy).
pub fn marked_by_snapwarden(comment: Option<&str>) -> bool {
    comment
        .and_then(|c| c.strip_prefix(MARKER))
        .is_some_and(|c| c.starts_with(" schedule="))
}

/// Whether `name` is exactly `<prefix>.YYYY-MM-DD_HHMM` — the only names retention deletes.
pub fn follows_pattern(prefix: &str, name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
    else {
        return false;
    };
    let b = stamp.as_bytes();
    let shape = b.len() == 15
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'_',
            _ => c.is_ascii_digit(),
        });
    // Read by hand: chrono's format parser, run on every snapshot of every managed volume on
    // every pass, was a tenth of a managed estate's simulation.
    let number = |from: usize, to: usize| {
        b[from..to]
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    shape
        && i32::try_from(number(0, 4))
            .ok()
            .and_then(|y| chrono::NaiveDate::from_ymd_opt(y, number(5, 7), number(8, 10)))
            .is_some()
        && number(11, 13) < 24
        && number(13, 15) < 60
}

/// What keeps a due managed snapshot from being taken now: why, and when it ends if that is
/// known (a clone deleted less than [`SETTLE`] ago).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub why: String,
    pub until: Option<DateTime<Utc>>,
}

/// What keeps a due managed snapshot of a volume from being taken now, if anything: a
/// SnapRestore-style clone of a backing snapshot alive on the volume (snapwarden's own, or one
/// released less than [`SETTLE`] ago), a backup tool running on it, a FlexClone LUN in block
/// sharing, or a foreign backing snapshot whose clone is on the volume. The cycles are the open
/// and recent ones; `listing` is the volume's cluster's latest.
pub fn blocker(
    memory: &Memory,
    volume: &VolumeKey,
    policy_luns: &[String],
    listing: Option<&Inventory>,
    patterns: &[regex::Regex],
    now: DateTime<Utc>,
) -> Option<Blocked> {
    let blocked = |why: String| Blocked { why, until: None };
    let on_volume =
        |c: &Cycle| c.cluster == volume.cluster && c.svm == volume.svm && c.volume == volume.volume;
    for o in memory.open.values().filter(|o| on_volume(&o.cycle)) {
        let c = &o.cycle;
        if matches!(o.step, Step::Tool) && c.clone_kind == CloneKind::SnapRestore {
            return Some(blocked(format!(
                "the backup tool of window {} runs on the volume (cycle {})",
                c.window, c.id
            )));
        }
        if matches!(o.step, Step::Tool | Step::ToolEnded) {
            continue;
        }
        if c.clone_kind == CloneKind::SnapRestore && clones_alive(c, now) {
            return Some(Blocked {
                why: format!(
                    "the SnapRestore clone(s) of backing snapshot {} (cycle {}) exist",
                    c.backing_snapshot, c.id
                ),
                until: c.clones_deleted_at.map(|t| t + SETTLE),
            });
        }
    }
    if let Some(c) = memory
        .recent
        .iter()
        .filter(|c| on_volume(c) && c.clone_kind == CloneKind::SnapRestore)
        .find(|c| clones_alive(c, now))
    {
        return Some(Blocked {
            why: format!(
                "the clone(s) of backing snapshot {} (cycle {}) were deleted less than {} ago",
                c.backing_snapshot,
                c.id,
                planner::human(SETTLE)
            ),
            until: c.clones_deleted_at.map(|t| t + SETTLE),
        });
    }
    let inv = listing?;
    let snapshots: Vec<&SnapshotInfo> = inv.volume_snapshots(&volume.svm, &volume.volume).collect();
    if let Some(s) = snapshots
        .iter()
        .find(|s| s.owners.iter().any(|o| o == "file_clone"))
    {
        return Some(blocked(format!(
            "a FlexClone LUN shares blocks with snapshot {} (block sharing)",
            s.name
        )));
    }
    let open_clones: Vec<&str> = memory
        .open
        .values()
        .flat_map(|o| o.cycle.clones.iter().map(|k| k.path.as_str()))
        .collect();
    let foreign_clone = inv.volume_luns(&volume.svm, &volume.volume).any(|l| {
        l.created_as_clone
            && !policy_luns.contains(&l.name)
            && !open_clones.contains(&l.name.as_str())
    });
    if foreign_clone {
        if let Some(s) = snapshots.iter().find(|s| {
            patterns.iter().any(|p| p.is_match(&s.name))
                && s.owners.iter().any(|o| o == "lun_clone")
        }) {
            return Some(blocked(format!(
                "a backup tool's clone of backing snapshot {} is on the volume",
                s.name
            )));
        }
    }
    None
}

/// A cycle whose clones exist, or were deleted less than [`SETTLE`] before `now`.
fn clones_alive(c: &Cycle, now: DateTime<Utc>) -> bool {
    match (c.clones_created_at, c.clones_deleted_at) {
        (Some(_), None) => true,
        (_, Some(gone)) => now < gone + SETTLE,
        (None, None) => false,
    }
}

/// One managed copy as `status` and the metrics show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CopyStatus {
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    /// The copy's prefix (its snapshots are `<prefix>.<YYYY-MM-DD_HHMM>`).
    pub prefix: String,
    pub policy: String,
    pub schedule: String,
    pub count: u32,
    /// Snapshots of the series on the volume, as last listed.
    pub snapshots: usize,
    /// Beyond the count (the oldest could not be deleted yet: busy or locked).
    pub over_count: usize,
    /// The newest snapshot of the series.
    pub last_at: Option<DateTime<Utc>>,
    /// The first instant after it (the snapshot due next).
    pub next_due: Option<DateTime<Utc>>,
    /// `next_due` plus `max_defer`: by then a snapshot is taken even if a clone is alive.
    pub deadline: Option<DateTime<Utc>>,
    /// Since when a due snapshot waits for a clone to go, and why.
    pub waiting_since: Option<DateTime<Utc>>,
    pub waiting_for: Option<String>,
    pub last_error: Option<String>,
}

impl CopyStatus {
    pub fn key(&self) -> [&str; 4] {
        [&self.cluster, &self.svm, &self.volume, &self.prefix]
    }
}

/// Every managed copy of the policy as the listings and the agent's memory show it (copies of
/// volumes whose cluster was never listed, or whose zone is unknown, are left out).
pub fn statuses(
    policy: &Policy,
    observed: &Observed,
    views: &[ClusterView],
    memory: &Memory,
) -> Vec<CopyStatus> {
    let mut out = Vec::new();
    let mut next = NextInstants::default();
    for (vi, volume) in policy.volumes.iter().enumerate() {
        let Some(inv) = views.get(volume.cluster).and_then(|v| v.inventory.as_ref()) else {
            continue;
        };
        let Ok(copies) = copies(policy, observed, vi) else {
            continue;
        };
        for copy in copies {
            let key = copy.key();
            let state = memory.managed.get(&key);
            let series = copy.series(inv);
            let newest = series.last().map(|s| s.create_time.with_timezone(&Utc));
            let taken = state.and_then(|s| s.last_taken.as_ref()).map(|(t, _)| *t);
            let last_at = [newest, taken].into_iter().flatten().max();
            let next_due = last_at.and_then(|t| next.after(&copy, t));
            let waiting = state.and_then(|s| s.waiting.clone());
            out.push(CopyStatus {
                cluster: key.volume.cluster.clone(),
                svm: key.volume.svm.clone(),
                volume: key.volume.volume.clone(),
                prefix: key.prefix.clone(),
                policy: copy.policy.to_string(),
                schedule: copy.schedule.to_string(),
                count: copy.count,
                snapshots: series.len(),
                over_count: series
                    .len()
                    .saturating_sub(usize::try_from(copy.count).unwrap_or(usize::MAX)),
                last_at,
                next_due,
                deadline: next_due.map(|t| t + copy.max_defer),
                waiting_since: waiting.as_ref().map(|(t, _)| *t),
                waiting_for: waiting.map(|(_, why)| why),
                last_error: state.and_then(|s| s.last_error.clone()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-read stamp against chrono's own parser of the same format, on stamps that
    /// reach every field's bounds (month 13, day 31 of a short month, 29 February of leap and
    /// common years, hour 24, minute 60).
    #[test]
    fn the_stamp_is_read_as_chrono_reads_it() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            u32::try_from(seed % u64::from(n)).unwrap()
        };
        for i in 0..20_000 {
            let year = [0, 1900, 2000, 2024, 2027, 2100, 9999][i % 7];
            let stamp = format!(
                "{year:04}-{:02}-{:02}_{:02}{:02}",
                next(14),
                next(33),
                next(26),
                next(62)
            );
            let chrono_reads =
                chrono::NaiveDateTime::parse_from_str(&stamp, "%Y-%m-%d_%H%M").is_ok();
            assert_eq!(
                follows_pattern("hourly", &format!("hourly.{stamp}")),
                chrono_reads,
                "{stamp}"
            );
        }
    }

    #[test]
    fn names_follow_ontap_in_the_clusters_local_time() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let at: DateTime<Utc> = "2027-03-28T01:05:30Z".parse().unwrap();
        // 03:05 CEST (the clocks went forward at 01:00 UTC that night).
        assert_eq!(name("hourly", tz, at), "hourly.2027-03-28_0305");
        assert!(follows_pattern("hourly", "hourly.2027-03-28_0305"));
    }

    #[test]
    fn only_the_exact_pattern_is_a_copys_snapshot() {
        for ok in ["hourly.2027-01-01_0105", "hourly.1999-12-31_2359"] {
            assert!(follows_pattern("hourly", ok), "{ok}");
        }
        for not in [
            "hourly.2027-01-01_0105x",
            "hourly.backup",
            "hourly.2027-01-01_010",
            "hourly.2027-13-01_0105",
            "hourly.2027-01-01-0105",
            "hourly-long.2027-01-01_0105",
            "hourlyx.2027-01-01_0105",
            "daily.2027-01-01_0105",
            "hourly2027-01-01_0105",
            "hourly.2027-01-01_0105.1",
            "snapwarden.hourly.2027-01-01_0105",
        ] {
            assert!(!follows_pattern("hourly", not), "{not}");
        }
    }

    #[test]
    fn the_marker_names_the_copy_and_is_not_a_cycles() {
        let c = comment("hourly");
        assert_eq!(c, "created-by=snapwarden schedule=hourly");
        assert!(is_marked(Some(&c), "hourly"));
        assert!(!is_marked(Some(&c), "daily"));
        assert!(!is_marked(
            Some("created-by=snapwarden schedule=hourlyx"),
            "hourly"
        ));
        assert!(!is_marked(None, "hourly"));
        assert_eq!(super::super::cycle::cycle_id_in_comment(&c), None);
    }
}
