//! The series whose count grows with the estate — per volume, per volume and schedule, per
//! window — held as one row of plain values per policy volume and window, their label values
//! read from the policy, and written as text straight from the rows when `/metrics` is read
//! ([`written`]).
//!
//! The rows follow the policy the series were last brought in line with ([`Estate::retain`]):
//! a volume or window that stays (by name) keeps its row, counters included; one that leaves
//! takes its row, so its series go. Label sets a caller names outside that policy are kept
//! apart, as the `prometheus` vectors kept them: conflicts of a volume of a policy loaded since
//! (until the next retain), a FlexClone recommendation of a volume the policy does not name,
//! and the cycles and last success of a window it does not name.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::family::{Family, Series, Text, Written};
use super::{BACKING_STATES, CONFLICT_KINDS, RESULTS};
use crate::config::Policy;

/// One policy volume's series.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct VolumeRow {
    /// `snapwarden_next_scheduled_snapshot_timestamp_seconds`, by schedule.
    pub next: Option<NextScheduled>,
    /// `snapwarden_backing_snapshots` by state ([`BACKING_STATES`]); `None` until the first
    /// publish that saw the volume, as `oldest_age` and `guard`.
    pub backing: Option<[i64; 3]>,
    pub oldest_age: Option<f64>,
    pub guard: Option<f64>,
    /// `None` until a release of the volume is seen.
    pub release_slack: Option<f64>,
    pub flexclone_recommended: i64,
    /// `snapwarden_conflicts_total` by kind ([`CONFLICT_KINDS`]).
    pub conflicts: [u64; CONFLICT_KINDS.len()],
}

/// A volume's next scheduled snapshot by schedule.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NextScheduled {
    /// The plan's schedule names of the volume (shared by every volume of the same schedules).
    pub names: Arc<[String]>,
    /// Per distinct schedule name, in name order: its position in `names` and the instant
    /// (Unix seconds).
    pub at: Box<[(usize, f64)]>,
}

/// One window's series.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct WindowRow {
    pub active: Option<i64>,
    pub last_success: Option<f64>,
    /// `snapwarden_cycles_total` by result ([`RESULTS`]); a policy window has every result, a
    /// window outside the policy only those its cycles ended with.
    pub cycles: [Option<u64>; RESULTS.len()],
}

/// The estate's series. Invariant: `volumes` and `windows` are those of `policy`, in its order.
#[derive(Default)]
pub(super) struct Estate {
    policy: Option<Arc<Policy>>,
    pub volumes: Vec<VolumeRow>,
    pub windows: Vec<WindowRow>,
    /// Positions in `windows`, in name order (a window's row is found by name).
    window_order: Vec<usize>,
    /// Conflicts counted on volumes outside the policy (of a policy loaded since), by (cluster,
    /// SVM, volume) and kind: the next retain gives them to the volume's row, or drops them.
    stray_conflicts: BTreeMap<[String; 3], [Option<u64>; CONFLICT_KINDS.len()]>,
    /// FlexClone recommendations set for volumes outside the policy, by (cluster, SVM,
    /// volume): they stay until the volume joins the policy (its row takes the value) or the
    /// agent restarts.
    stray_recommendations: BTreeMap<[String; 3], i64>,
    /// Windows outside the policy whose cycles ended (a cycle that outlived its window's
    /// removal): they stay until the window joins the policy.
    stray_windows: BTreeMap<String, WindowRow>,
}

/// `(cluster, SVM, volume)` of policy volume `vi`.
fn volume_labels(policy: &Policy, vi: usize) -> Option<[&str; 3]> {
    let v = policy.volumes.get(vi)?;
    let cluster = policy.clusters.get(v.cluster)?;
    Some([&cluster.name, &v.svm, &v.name])
}

impl Estate {
    /// Whether the rows are those of this very policy (the same `Arc`).
    pub fn is_for(&self, policy: &Arc<Policy>) -> bool {
        self.policy.as_ref().is_some_and(|p| Arc::ptr_eq(p, policy))
    }

    /// Brings the rows in line with `policy`: volumes and windows that stay keep their rows,
    /// new ones start with every conflict kind and cycle result at 0 and no recommendation
    /// (unless one was set while they were outside the policy), the rows of those that left go.
    pub fn retain(&mut self, policy: &Arc<Policy>) {
        if self.is_for(policy) {
            // Conflicts kept apart are of volumes this policy does not name.
            self.stray_conflicts.clear();
            return;
        }
        let old = self.policy.replace(policy.clone());
        let mut old_volumes: Vec<Option<VolumeRow>> = std::mem::take(&mut self.volumes)
            .into_iter()
            .map(Some)
            .collect();
        let mut old_windows: Vec<Option<WindowRow>> = std::mem::take(&mut self.windows)
            .into_iter()
            .map(Some)
            .collect();
        let old_order = std::mem::take(&mut self.window_order);
        self.volumes.reserve_exact(policy.volumes.len());
        self.windows.reserve_exact(policy.windows.len());
        for vi in 0..policy.volumes.len() {
            // A valid policy's volumes all name a cluster; a row keeps the indices in step.
            let Some([cluster, svm, volume]) = volume_labels(policy, vi) else {
                self.volumes.push(VolumeRow::default());
                continue;
            };
            let kept = old
                .as_ref()
                .and_then(|p| p.volume_at(cluster, svm, volume))
                .and_then(|ovi| old_volumes.get_mut(ovi)?.take());
            let row = kept.unwrap_or_else(|| {
                let mut row = VolumeRow::default();
                if self.stray_conflicts.is_empty() && self.stray_recommendations.is_empty() {
                    return row;
                }
                let key = [cluster, svm, volume].map(str::to_string);
                if let Some(counted) = self.stray_conflicts.remove(&key) {
                    row.conflicts = counted.map(|n| n.unwrap_or(0));
                }
                if let Some(value) = self.stray_recommendations.remove(&key) {
                    row.flexclone_recommended = value;
                }
                row
            });
            self.volumes.push(row);
        }
        self.stray_conflicts.clear();
        for w in &policy.windows {
            let kept = old.as_ref().and_then(|p| {
                let at = find_window(p, &old_order, &w.name)?;
                old_windows.get_mut(at)?.take()
            });
            let mut row = kept
                .or_else(|| self.stray_windows.remove(&w.name))
                .unwrap_or_default();
            for n in &mut row.cycles {
                n.get_or_insert(0);
            }
            self.windows.push(row);
        }
        let mut order: Vec<usize> = (0..policy.windows.len()).collect();
        order.sort_by(|&a, &b| policy.windows[a].name.cmp(&policy.windows[b].name));
        self.window_order = order;
    }

    /// The row of policy volume `vi`.
    pub fn volume(&mut self, vi: usize) -> Option<&mut VolumeRow> {
        self.volumes.get_mut(vi)
    }

    /// Counts a conflict of kind number `kind` ([`CONFLICT_KINDS`]) on a volume, in the policy
    /// or in one loaded since.
    pub fn count_conflict(&mut self, [cluster, svm, volume]: [&str; 3], kind: usize) {
        let vi = self
            .policy
            .as_ref()
            .and_then(|p| p.volume_at(cluster, svm, volume));
        let n = match vi.and_then(|vi| self.volumes.get_mut(vi)) {
            Some(row) => &mut row.conflicts[kind],
            None => {
                let key = [cluster, svm, volume].map(str::to_string);
                let counted = self.stray_conflicts.entry(key).or_default();
                counted[kind].get_or_insert(0)
            }
        };
        *n = n.saturating_add(1);
    }

    /// Sets the FlexClone recommendation of a volume, in the policy or not.
    pub fn set_recommended(&mut self, cluster: &str, svm: &str, volume: &str, value: i64) {
        let vi = self
            .policy
            .as_ref()
            .and_then(|p| p.volume_at(cluster, svm, volume));
        match vi.and_then(|vi| self.volumes.get_mut(vi)) {
            Some(row) => row.flexclone_recommended = value,
            None => {
                let key = [cluster, svm, volume].map(str::to_string);
                self.stray_recommendations.insert(key, value);
            }
        }
    }

    /// The row of the window named `name`: the policy's, or one kept apart for a window
    /// outside the policy.
    pub fn window(&mut self, name: &str) -> &mut WindowRow {
        let at = self
            .policy
            .as_ref()
            .and_then(|p| find_window(p, &self.window_order, name));
        match at {
            Some(at) => &mut self.windows[at],
            None => self.stray_windows.entry(name.to_string()).or_default(),
        }
    }
}

/// The position of window `name` in `policy.windows`, through `order` (positions in name
/// order).
fn find_window(policy: &Policy, order: &[usize], name: &str) -> Option<usize> {
    let name_of = |at: usize| policy.windows.get(at).map(|w| w.name.as_str());
    let i = order
        .binary_search_by(|&at| name_of(at).unwrap_or_default().cmp(name))
        .ok()?;
    order.get(i).copied()
}

/// The estate's families, with their names, help and labels as the dashboards, alert rules and
/// `docs/metrics-and-alerts.md` know them.
pub(super) struct Families {
    next_scheduled: Family,
    window_active: Family,
    backing: Family,
    oldest_age: Family,
    release_slack: Family,
    guard: Family,
    cycles: Family,
    conflicts: Family,
    flexclone_recommended: Family,
    last_success: Family,
}

const VOLUME: [&str; 3] = ["cluster", "svm", "volume"];

impl Families {
    pub fn new() -> Families {
        Families {
            next_scheduled: Family::gauge(
                "snapwarden_next_scheduled_snapshot_timestamp_seconds",
                "The volume's next scheduled snapshot of this schedule (Unix seconds).",
                &["cluster", "svm", "volume", "schedule"],
            ),
            window_active: Family::gauge(
                "snapwarden_window_active",
                "Whether a cycle of the window is open (1) or not (0).",
                &["window"],
            ),
            backing: Family::gauge(
                "snapwarden_backing_snapshots",
                "snapwarden's backing snapshots on the volume, by state (live, releasing, locked).",
                &["cluster", "svm", "volume", "state"],
            ),
            oldest_age: Family::gauge(
                "snapwarden_backing_snapshot_oldest_age_seconds",
                "Age of the volume's oldest backing snapshot still owned by snapwarden (0: none).",
                &VOLUME,
            ),
            release_slack: Family::gauge(
                "snapwarden_release_slack_seconds",
                "The volume's last released cycle: time from its release to the next scheduled snapshot.",
                &VOLUME,
            ),
            guard: Family::gauge(
                "snapwarden_guard_seconds",
                "The guard kept before the volume's scheduled snapshots: its backing snapshot and clones must be gone this long before the next one (the policy's `[agent] guard`).",
                &VOLUME,
            ),
            cycles: Family::counter(
                "snapwarden_cycles_total",
                "Cycles that ended, by window and result (completed, overrun, failed, skipped).",
                &["window", "result"],
            ),
            conflicts: Family::counter(
                "snapwarden_conflicts_total",
                "Conflicts recorded, by kind (chain_conflict, locked, late_release, foreign, skipped).",
                &["cluster", "svm", "volume", "kind"],
            ),
            flexclone_recommended: Family::gauge(
                "snapwarden_flexclone_recommended",
                "Whether FlexClone is recommended for the volume (1) or not (0).",
                &VOLUME,
            ),
            last_success: Family::gauge(
                "snapwarden_last_success_timestamp_seconds",
                "When a cycle of the window last completed (Unix seconds).",
                &["window"],
            ),
        }
    }
}

/// A window's name and row, as the window families list them: the policy's windows in its
/// order, then those kept apart in name order.
type WindowOf<'e> = (&'e str, &'e WindowRow);

impl Estate {
    /// `(cluster, SVM, volume)` of the row of policy volume `vi` (empty without a policy).
    fn labels(&self, vi: usize) -> [&str; 3] {
        let policy = self.policy.as_deref();
        policy
            .and_then(|p| volume_labels(p, vi))
            .unwrap_or(["", "", ""])
    }

    /// The positions of the rows that have labels (all of them, under a valid policy).
    fn labelled(&self) -> impl Iterator<Item = usize> + '_ {
        let policy = self.policy.as_deref();
        let rows = 0..policy.map_or(0, |_| self.volumes.len());
        rows.filter(move |&vi| policy.and_then(|p| volume_labels(p, vi)).is_some())
    }

    fn windows(&self) -> Vec<WindowOf<'_>> {
        let names = self.policy.iter().flat_map(|p| &p.windows);
        let rows = names.map(|w| w.name.as_str()).zip(&self.windows);
        let apart = self.stray_windows.iter().map(|(n, row)| (n.as_str(), row));
        rows.chain(apart).collect()
    }

    /// A family of one series per volume row that has a value.
    fn per_volume(&self, f: &Family, value: fn(&VolumeRow) -> Option<f64>, out: &mut Text) {
        let has = |vi: usize| self.volumes.get(vi).and_then(value).is_some();
        let series = self
            .labelled()
            .filter(|&vi| has(vi))
            .map(|vi| Series::new(vi, 0));
        f.write(
            out,
            Series::list(self.volumes.len(), series),
            |s| self.labels(s.row),
            |s| self.volumes.get(s.row).and_then(value).unwrap_or(0.0),
        );
    }

    /// A family of one series per window that has a value.
    fn per_window(&self, f: &Family, value: fn(&WindowRow) -> Option<f64>, out: &mut Text) {
        let windows = self.windows();
        let has = |(_, row): &(usize, &WindowOf)| value(row.1).is_some();
        let series = windows.iter().enumerate().filter(has);
        f.write(
            out,
            Series::list(windows.len(), series.map(|(w, _)| Series::new(w, 0))),
            |s| [windows[s.row].0],
            |s| value(windows[s.row].1).unwrap_or(0.0),
        );
    }

    fn next_scheduled(&self, f: &Family, out: &mut Text) {
        let next = |vi: usize| self.volumes.get(vi).and_then(|row| row.next.as_ref());
        let count = |vi: usize| next(vi).map_or(0, |n| n.at.len());
        let mut series = Vec::with_capacity(self.labelled().map(count).sum());
        for vi in self.labelled() {
            series.extend((0..count(vi)).map(|at| Series::new(vi, at)));
        }
        let at = |s: Series| {
            let n = next(s.row)?;
            let &(name, t) = n.at.get(s.of)?;
            Some((n.names.get(name).map_or("", String::as_str), t))
        };
        f.write(
            out,
            series,
            |s| {
                let [cluster, svm, volume] = self.labels(s.row);
                [cluster, svm, volume, at(s).map_or("", |(name, _)| name)]
            },
            |s| at(s).map_or(0.0, |(_, t)| t),
        );
    }

    fn backing(&self, f: &Family, out: &mut Text) {
        let backing = |vi: usize| self.volumes.get(vi).and_then(|row| row.backing);
        let mut series = Vec::with_capacity(self.volumes.len() * BACKING_STATES.len());
        for vi in self.labelled().filter(|&vi| backing(vi).is_some()) {
            series.extend((0..BACKING_STATES.len()).map(|state| Series::new(vi, state)));
        }
        f.write(
            out,
            series,
            |s| {
                let [cluster, svm, volume] = self.labels(s.row);
                [cluster, svm, volume, BACKING_STATES[s.of]]
            },
            |s| backing(s.row).map_or(0.0, |n| n[s.of] as f64),
        );
    }

    /// Every kind of every policy volume, and the kinds counted on volumes kept apart (their
    /// rows after the policy's).
    fn conflicts(&self, f: &Family, out: &mut Text) {
        let rows = self.volumes.len();
        let apart: Vec<_> = self.stray_conflicts.iter().collect();
        let mut series = Vec::with_capacity((rows + apart.len()) * CONFLICT_KINDS.len());
        for vi in self.labelled() {
            series.extend((0..CONFLICT_KINDS.len()).map(|kind| Series::new(vi, kind)));
        }
        for (i, (_, counted)) in apart.iter().enumerate() {
            let kinds = counted.iter().enumerate().filter(|(_, n)| n.is_some());
            series.extend(kinds.map(|(kind, _)| Series::new(rows + i, kind)));
        }
        let volume = |s: Series| match s.row.checked_sub(rows) {
            None => self.labels(s.row),
            Some(i) => apart[i].0.each_ref().map(String::as_str),
        };
        let value = |s: Series| match s.row.checked_sub(rows) {
            None => self.volumes[s.row].conflicts[s.of],
            Some(i) => apart[i].1[s.of].unwrap_or(0),
        };
        f.write(
            out,
            series,
            |s| {
                let [cluster, svm, volume] = volume(s);
                [cluster, svm, volume, CONFLICT_KINDS[s.of].as_str()]
            },
            |s| value(s) as f64,
        );
    }

    /// Every policy volume's recommendation, then those of volumes kept apart.
    fn recommended(&self, f: &Family, out: &mut Text) {
        let rows = self.volumes.len();
        let apart: Vec<_> = self.stray_recommendations.iter().collect();
        let listed = self.labelled().map(|vi| Series::new(vi, 0));
        let kept_apart = (0..apart.len()).map(|i| Series::new(rows + i, 0));
        f.write(
            out,
            Series::list(rows + apart.len(), listed.chain(kept_apart)),
            |s| match s.row.checked_sub(rows) {
                None => self.labels(s.row),
                Some(i) => apart[i].0.each_ref().map(String::as_str),
            },
            |s| match s.row.checked_sub(rows) {
                None => self.volumes[s.row].flexclone_recommended as f64,
                Some(i) => *apart[i].1 as f64,
            },
        );
    }

    fn cycles(&self, f: &Family, out: &mut Text) {
        let windows = self.windows();
        let mut series = Vec::with_capacity(windows.len() * RESULTS.len());
        for (w, (_, row)) in windows.iter().enumerate() {
            let results = row.cycles.iter().enumerate().filter(|(_, n)| n.is_some());
            series.extend(results.map(|(result, _)| Series::new(w, result)));
        }
        f.write(
            out,
            series,
            |s| [windows[s.row].0, RESULTS[s.of].as_str()],
            |s| windows[s.row].1.cycles[s.of].unwrap_or(0) as f64,
        );
    }
}

/// The estate's families, each written from `estate`'s rows when the exposition reaches it.
pub(super) fn written<'a>(estate: &'a Estate, f: &'a Families) -> Vec<Written<'a>> {
    let e = estate;
    let per_volume = |family: &'a Family, value: fn(&VolumeRow) -> Option<f64>| {
        Written::new(family.name(), move |out| e.per_volume(family, value, out))
    };
    let per_window = |family: &'a Family, value: fn(&WindowRow) -> Option<f64>| {
        Written::new(family.name(), move |out| e.per_window(family, value, out))
    };
    let of = |family: &'a Family, write: fn(&Estate, &Family, &mut Text)| {
        Written::new(family.name(), move |out| write(e, family, out))
    };
    vec![
        of(&f.next_scheduled, Estate::next_scheduled),
        per_window(&f.window_active, |w| w.active.map(|a| a as f64)),
        of(&f.backing, Estate::backing),
        per_volume(&f.oldest_age, |v| v.oldest_age),
        per_volume(&f.release_slack, |v| v.release_slack),
        per_volume(&f.guard, |v| v.guard),
        of(&f.cycles, Estate::cycles),
        of(&f.conflicts, Estate::conflicts),
        of(&f.flexclone_recommended, Estate::recommended),
        per_window(&f.last_success, |w| w.last_success),
    ]
}
