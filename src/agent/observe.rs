//! Observation: what a cluster's snapshot and LUN listings say about snapwarden's cycles —
//! chain conflicts, the scheduled snapshots pinning a locked backing snapshot and when they
//! rotate out, late releases, foreign backing snapshots and look-alikes. Reads only; the agent
//! decides what to do with what is found.

use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};
use regex::Regex;

use super::cycle::{
    cycle_id_in_comment, CloneKind, ConflictKind, Cycle, CycleState, ObservedConflict,
};
use super::discovery::Inventory;
use crate::ontap::SnapshotInfo;
use crate::planner::VolumeRetention;

/// The snapshots taken on a cycle's volume while one of its SnapRestore clones existed: each
/// captured the clone and pins the backing snapshot. Listed whether or not they still exist.
pub(crate) fn captured<'a>(
    cycle: &Cycle,
    inv: &'a Inventory,
    prefix: &str,
    now: DateTime<Utc>,
) -> Vec<&'a SnapshotInfo> {
    if cycle.clone_kind != CloneKind::SnapRestore {
        return Vec::new();
    }
    let Some(from) = cycle.clones_created_at else {
        return Vec::new();
    };
    let until = cycle.clones_deleted_at.unwrap_or(now);
    // The instant first: a locked cycle is looked at every pass, and few of its volume's
    // snapshots were taken while its clones lived.
    inv.volume_snapshots(&cycle.svm, &cycle.volume)
        .filter(|s| {
            let t = s.create_time.with_timezone(&Utc);
            // A managed snapshot of the same instant as the clone was taken first: the agent
            // takes the snapshots due before it starts the cycles due (ONTAP's own, of the same
            // second, may have come either way and count).
            let first = t == from && super::managed::marked_by_snapwarden(s.comment.as_deref());
            t >= from && t < until && !first
        })
        // A driver cycle's backing snapshot is a backup tool's, without snapwarden's marks.
        .filter(|s| s.name != cycle.backing_snapshot)
        .filter(|s| !is_snapwardens(s, prefix))
        .collect()
}

/// Name prefix and comment marker: the two proofs a listing can show.
pub(crate) fn is_snapwardens(s: &SnapshotInfo, prefix: &str) -> bool {
    has_prefix(&s.name, prefix) && s.comment.as_deref().and_then(cycle_id_in_comment).is_some()
}

pub(crate) fn has_prefix(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|r| r.starts_with('.'))
}

/// A LUN whose leaf carries the prefix (a clone path of snapwarden's shape).
pub(crate) fn lookalike_lun(path: &str, volume: &str, prefix: &str) -> bool {
    // `/vol/<volume>/<leaf>`, taken apart without building the string (every LUN, every pass).
    let leaf = path
        .strip_prefix("/vol/")
        .and_then(|p| p.strip_prefix(volume))
        .and_then(|p| p.strip_prefix('/'))
        .unwrap_or("");
    has_prefix(leaf, prefix)
}

/// Why a locked backing snapshot is still locked, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pins {
    /// Names of the snapshots pinning it that still exist.
    pub snapshots: Vec<String>,
    /// When the last of them rotates out, if every one belongs to a schedule.
    pub unlock_at: Option<DateTime<Utc>>,
    /// Pinning snapshots that belong to no schedule (they go only when someone deletes them).
    pub unscheduled: Vec<String>,
}

impl Pins {
    pub fn describe(&self) -> String {
        if self.snapshots.is_empty() {
            return "no snapshot pins it any more".to_string();
        }
        let mut s = format!("pinned by {}", self.snapshots.join(", "));
        match (&self.unlock_at, self.unscheduled.is_empty()) {
            (Some(at), true) => s.push_str(&format!(
                "; the last of them rotates out at {} (estimate from the schedules' counts)",
                at.to_rfc3339()
            )),
            _ if !self.unscheduled.is_empty() => s.push_str(&format!(
                "; {} belong to no schedule and stay until deleted by hand",
                self.unscheduled.join(", ")
            )),
            _ => {}
        }
        s
    }
}

/// The pins of a cycle's backing snapshot as the listing shows them.
pub(crate) fn pins(
    cycle: &Cycle,
    inv: &Inventory,
    prefix: &str,
    retention: Option<&VolumeRetention>,
    now: DateTime<Utc>,
) -> Pins {
    let mut out = Pins {
        snapshots: Vec::new(),
        unlock_at: None,
        unscheduled: Vec::new(),
    };
    let mut latest: Option<DateTime<Utc>> = None;
    let mut all_known = true;
    for s in captured(cycle, inv, prefix, now) {
        out.snapshots.push(s.name.to_string());
        let at = retention.and_then(|r| {
            r.schedule_of(&s.name)
                .and_then(|sched| r.rotates_out_at(sched, s.create_time.with_timezone(&Utc)))
        });
        match at {
            Some(at) => latest = Some(latest.map_or(at, |l| l.max(at))),
            None => {
                all_known = false;
                out.unscheduled.push(s.name.to_string());
            }
        }
    }
    if all_known {
        out.unlock_at = latest;
    }
    out
}

/// Conflicts a listing shows for the given cycles (open and recently released) on one cluster,
/// except those whose key `recorded` says the journal already holds.
pub(crate) fn conflicts(
    cycles: &[&Cycle],
    inv: &Inventory,
    prefix: &str,
    now: DateTime<Utc>,
    guard: TimeDelta,
    recorded: impl Fn(&str) -> bool,
) -> Vec<ObservedConflict> {
    let mut out = Vec::new();
    // A locked cycle shows the same conflicts at every pass for days: each key is written in
    // this buffer and checked there, and only a new conflict's is kept, with its sentence.
    let mut buffer = String::new();
    let mut new_key = |k: std::fmt::Arguments<'_>| {
        buffer.clear();
        let _ = buffer.write_fmt(k);
        (!recorded(&buffer)).then(|| buffer.clone())
    };
    for cycle in cycles {
        for s in captured(cycle, inv, prefix, now) {
            let Some(key) = new_key(format_args!("chain:{}:{}", cycle.id, s.name)) else {
                continue;
            };
            out.push(ObservedConflict {
                kind: ConflictKind::ChainConflict,
                cluster: cycle.cluster.clone(),
                svm: cycle.svm.clone(),
                volume: cycle.volume.clone(),
                window: Some(cycle.window.clone()),
                cycle: Some(cycle.id.clone()),
                at: s.create_time.with_timezone(&Utc),
                detail: format!(
                    "snapshot {} was taken at {} while the SnapRestore clone(s) of backing snapshot {} existed: \
                     it captured them and pins {} until it rotates out",
                    s.name,
                    s.create_time.to_rfc3339(),
                    cycle.backing_snapshot,
                    cycle.backing_snapshot
                ),
                key,
            });
        }
        let late = !cycle.state.is_terminal()
            && cycle.state != CycleState::Locked
            && cycle.release_deadline.is_some_and(|d| now > d);
        let key = late
            .then(|| new_key(format_args!("late:{}", cycle.id)))
            .flatten();
        if let Some(key) = key {
            let deadline = cycle.release_deadline.unwrap_or(now);
            out.push(ObservedConflict {
                kind: ConflictKind::LateRelease,
                cluster: cycle.cluster.clone(),
                svm: cycle.svm.clone(),
                volume: cycle.volume.clone(),
                window: Some(cycle.window.clone()),
                cycle: Some(cycle.id.clone()),
                at: deadline,
                detail: format!(
                    "backing snapshot {} was not released by {} (the next scheduled snapshot at {} less the guard); state {}{}",
                    cycle.backing_snapshot,
                    deadline.to_rfc3339(),
                    (deadline + guard).to_rfc3339(),
                    cycle.state.as_str(),
                    if cycle.detail.is_empty() { String::new() } else { format!("; detail: {}", cycle.detail) }
                ),
                key,
            });
        }
    }
    out
}

/// Foreign backing snapshots (a backup tool's own) on the given volumes of one cluster, except
/// those in `claimed` (svm, volume, snapshot): attributed to a driver cycle.
pub(crate) fn foreign(
    cluster: &str,
    in_policy: impl Fn(&str, &str) -> bool,
    inv: &Inventory,
    patterns: &[Regex],
    claimed: &[(String, String, String)],
) -> Vec<ObservedConflict> {
    if patterns.is_empty() {
        return Vec::new();
    }
    inv.matching_snapshots(patterns)
        .filter(|s| in_policy(&s.svm, &s.volume_name))
        .filter(|s| {
            !claimed
                .iter()
                .any(|(svm, v, name)| *svm == s.svm && *v == s.volume_name && *name == s.name)
        })
        .map(|s| ObservedConflict {
            kind: ConflictKind::Foreign,
            cluster: cluster.to_string(),
            svm: s.svm.to_string(),
            volume: s.volume_name.to_string(),
            window: None,
            cycle: None,
            at: s.create_time.with_timezone(&Utc),
            detail: format!(
                "foreign backing snapshot {} (created {}{}) matches a configured pattern; reported, never touched",
                s.name,
                s.create_time.to_rfc3339(),
                if s.owners.is_empty() {
                    String::new()
                } else {
                    format!(", busy: {}", s.owners.join(", "))
                }
            ),
            key: format!("foreign:{}:{}:{}:{}", cluster, s.svm, s.volume_name, s.uuid),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::cycle::{CloneLun, CycleResult};
    use crate::planner::RetainedSchedule;
    use crate::timeline::{CronSpec, Recurrence};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_lookalike_lun_is_a_prefixed_leaf_directly_in_its_own_volume() {
        let p = "snapwarden";
        assert!(lookalike_lun("/vol/v/snapwarden.w.1.lun0", "v", p));
        assert!(!lookalike_lun("/vol/v/lun0", "v", p));
        // Another volume's path, a volume whose name starts the same, a deeper leaf.
        assert!(!lookalike_lun("/vol/v/snapwarden.w.1.lun0", "w", p));
        assert!(!lookalike_lun("/vol/vv/snapwarden.w.1.lun0", "v", p));
        assert!(!lookalike_lun("/vol/v/q/snapwarden.w.1.lun0", "v", p));
        assert!(!lookalike_lun("/vol/v", "v", p));
        assert!(!lookalike_lun("snapwarden.w.1.lun0", "v", p));
    }

    fn snap(name: &str, at: &str, comment: Option<&str>) -> SnapshotInfo {
        SnapshotInfo {
            uuid: format!("u-{name}").into(),
            name: name.into(),
            volume_uuid: "vu".into(),
            volume_name: "vol".into(),
            svm: "svm1".into(),
            comment: comment.map(Into::into),
            create_time: t(at).fixed_offset(),
            owners: Vec::new(),
            size: None,
            snapmirror_label: None,
            snaplock_expiry: None,
        }
    }

    fn inventory(snapshots: Vec<SnapshotInfo>) -> Inventory {
        Inventory::sample(snapshots, Vec::new(), t("2027-01-01T02:00:00Z"))
    }

    fn cycle() -> Cycle {
        let start = t("2027-01-01T00:50:00Z");
        Cycle {
            volume: "vol".into(),
            release_deadline: Some(t("2027-01-01T02:00:00Z")),
            backing_snapshot: "snapwarden.w.20270101T005000Z".into(),
            clones: vec![CloneLun {
                source: "/vol/vol/lun0".into(),
                path: "/vol/vol/snapwarden.w.20270101T005000Z.lun0".into(),
            }],
            state: CycleState::Locked,
            result: Some(CycleResult::Overrun),
            created_at: Some(start),
            clones_created_at: Some(t("2027-01-01T00:50:01Z")),
            clones_deleted_at: Some(t("2027-01-01T01:20:00Z")),
            ..Cycle::sample("abc", start)
        }
    }

    #[test]
    fn only_foreign_snapshots_taken_while_the_clone_existed_are_captured() {
        let inv = inventory(vec![
            snap("hourly.2027-01-01_0005", "2027-01-01T00:05:00Z", None),
            snap("hourly.2027-01-01_0105", "2027-01-01T01:05:00Z", None),
            snap("hourly.2027-01-01_0205", "2027-01-01T02:05:00Z", None),
            snap(
                "snapwarden.w.20270101T005000Z",
                "2027-01-01T00:50:00Z",
                Some("created-by=snapwarden cycle=abc window=w"),
            ),
        ]);
        let got: Vec<&str> = captured(&cycle(), &inv, "snapwarden", t("2027-01-01T03:00:00Z"))
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(got, vec!["hourly.2027-01-01_0105"]);
        let mut flex = cycle();
        flex.clone_kind = CloneKind::FlexClone;
        assert!(captured(&flex, &inv, "snapwarden", t("2027-01-01T03:00:00Z")).is_empty());
    }

    #[test]
    fn pins_name_the_snapshots_and_when_the_last_rotates_out() {
        let inv = inventory(vec![
            snap("hourly.2027-01-01_0105", "2027-01-01T01:05:00Z", None),
            snap("daily.2027-01-01_0110", "2027-01-01T01:10:00Z", None),
        ]);
        let mut c = cycle();
        c.clones_deleted_at = Some(t("2027-01-01T01:30:00Z"));
        let retention = VolumeRetention {
            tz: chrono_tz::UTC,
            schedules: vec![
                RetainedSchedule {
                    name: "hourly".into(),
                    prefix: "hourly".into(),
                    count: 6,
                    recurrence: Recurrence::Cron(CronSpec::parse("5 * * * *").unwrap()),
                },
                RetainedSchedule {
                    name: "daily".into(),
                    prefix: "daily".into(),
                    count: 2,
                    recurrence: Recurrence::Cron(CronSpec::parse("10 1 * * *").unwrap()),
                },
            ],
        };
        let p = pins(
            &c,
            &inv,
            "snapwarden",
            Some(&retention),
            t("2027-01-01T03:00:00Z"),
        );
        assert_eq!(
            p.snapshots,
            vec!["hourly.2027-01-01_0105", "daily.2027-01-01_0110"]
        );
        // hourly: six more after 01:05 → 07:05; daily (01:10, count 2) → 2027-01-03 01:10.
        assert_eq!(p.unlock_at, Some(t("2027-01-03T01:10:00Z")));
        assert!(
            p.describe().contains("2027-01-03T01:10:00+00:00"),
            "{}",
            p.describe()
        );

        let inv = inventory(vec![snap(
            "manual-before-upgrade",
            "2027-01-01T01:06:00Z",
            None,
        )]);
        let p = pins(
            &c,
            &inv,
            "snapwarden",
            Some(&retention),
            t("2027-01-01T03:00:00Z"),
        );
        assert_eq!(p.unlock_at, None);
        assert!(
            p.describe().contains("stay until deleted by hand"),
            "{}",
            p.describe()
        );
    }

    #[test]
    fn a_cycle_past_its_release_deadline_is_a_late_release_once_per_cycle() {
        let mut c = cycle();
        c.state = CycleState::Releasing;
        let inv = inventory(Vec::new());
        let found = conflicts(
            &[&c],
            &inv,
            "snapwarden",
            t("2027-01-01T02:00:01Z"),
            TimeDelta::minutes(5),
            |_| false,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, ConflictKind::LateRelease);
        assert_eq!(found[0].key, "late:abc");
        assert!(conflicts(
            &[&c],
            &inv,
            "snapwarden",
            t("2027-01-01T01:59:59Z"),
            TimeDelta::minutes(5),
            |_| false,
        )
        .is_empty());
        // Once the journal holds it, the same listing does not build it again; another key
        // held changes nothing.
        let held = |keys: &'static [&'static str]| move |k: &str| keys.contains(&k);
        let again = |recorded| {
            conflicts(
                &[&c],
                &inv,
                "snapwarden",
                t("2027-01-01T02:00:01Z"),
                TimeDelta::minutes(5),
                recorded,
            )
        };
        assert!(again(held(&["late:abc"])).is_empty());
        assert_eq!(again(held(&["late:abd", "chain:abc:late"])).len(), 1);
    }

    #[test]
    fn foreign_snapshots_match_the_patterns_on_policy_volumes_only() {
        let mut other = snap("VeeamSourceSnapshot_x", "2027-01-01T01:00:00Z", None);
        other.volume_name = "not_in_policy".into();
        let inv = inventory(vec![
            snap("VeeamSourceSnapshot_2027", "2027-01-01T01:00:00Z", None),
            snap("veeamaux_1", "2027-01-01T01:00:00Z", None),
            snap("hourly.2027-01-01_0105", "2027-01-01T01:05:00Z", None),
            other,
        ]);
        let patterns = [Regex::new("(?i)^(VeeamSourceSnapshot|VeeamAUX)").unwrap()];
        let vol = |svm: &str, v: &str| svm == "svm1" && v == "vol";
        let found = foreign("c", vol, &inv, &patterns, &[]);
        let names: Vec<&str> = found
            .iter()
            .map(|c| c.detail.split(' ').nth(3).unwrap())
            .collect();
        assert_eq!(names, vec!["VeeamSourceSnapshot_2027", "veeamaux_1"]);
        // One attributed to a driver cycle is that cycle's, not foreign.
        let claimed = [("svm1".into(), "vol".into(), "veeamaux_1".into())];
        let found = foreign("c", vol, &inv, &patterns, &claimed);
        assert_eq!(found.len(), 1);
        assert!(found[0].detail.contains("VeeamSourceSnapshot_2027"));
    }

    /// The cycle's detail is what was last said of it (the planner's reason at its start, a
    /// hook's exit, an error): a late release quotes it as such, not as an error.
    #[test]
    fn a_late_release_quotes_the_cycles_detail_as_its_detail() {
        let late = Cycle {
            state: CycleState::Backup,
            result: None,
            clones_deleted_at: None,
            detail: "release by 01:20 + guard 5m is before hourly at 02:05".into(),
            ..cycle()
        };
        let found = conflicts(
            &[&late],
            &inventory(Vec::new()),
            "snapwarden",
            t("2027-01-01T02:01:00Z"),
            TimeDelta::minutes(5),
            |_| false,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, ConflictKind::LateRelease);
        assert!(
            found[0].detail.ends_with(
                "; state backup; detail: release by 01:20 + guard 5m is before hourly at 02:05"
            ),
            "{}",
            found[0].detail
        );
        assert!(!found[0].detail.contains("error"), "{}", found[0].detail);
    }
}
