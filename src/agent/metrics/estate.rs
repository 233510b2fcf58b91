//! The series whose count grows with the estate — per volume, per volume and schedule, per
//! window — held as one row of plain values per policy volume and window, their label values
//! read from the policy, and rendered by [`EstateCollector`] only when the registry is gathered.
//!
//! The rows follow the policy the series were last brought in line with ([`Estate::retain`]):
//! a volume or window that stays (by name) keeps its row, counters included; one that leaves
//! takes its row, so its series go. Label sets a caller names outside that policy are kept
//! apart, as the `prometheus` vectors kept them: conflicts of a volume of a policy loaded since
//! (until the next retain), a FlexClone recommendation of a volume the policy does not name,
//! and the cycles and last success of a window it does not name.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use super::family::Family;
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
struct Families {
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
    fn new() -> Families {
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

/// Renders the [`Estate`] it shares with the agent's [`super::Metrics`] when the registry is
/// gathered.
pub(super) struct EstateCollector {
    estate: Arc<Mutex<Estate>>,
    families: Families,
}

impl EstateCollector {
    pub fn new(estate: Arc<Mutex<Estate>>) -> EstateCollector {
        EstateCollector {
            estate,
            families: Families::new(),
        }
    }

    fn estate(&self) -> MutexGuard<'_, Estate> {
        self.estate.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Collector for EstateCollector {
    fn desc(&self) -> Vec<&Desc> {
        let f = &self.families;
        [
            &f.next_scheduled,
            &f.window_active,
            &f.backing,
            &f.oldest_age,
            &f.release_slack,
            &f.guard,
            &f.cycles,
            &f.conflicts,
            &f.flexclone_recommended,
            &f.last_success,
        ]
        .map(Family::desc)
        .to_vec()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let e = self.estate();
        let f = &self.families;
        // Without a policy yet there are no rows, only label sets kept apart.
        let policy = e.policy.as_deref();
        let volumes = || {
            policy.into_iter().flat_map(|p| {
                let rows = e.volumes.iter().enumerate();
                rows.filter_map(move |(vi, row)| Some((volume_labels(p, vi)?, row)))
            })
        };
        let windows = || {
            let names = policy.into_iter().flat_map(|p| &p.windows);
            let rows = names.map(|w| w.name.as_str()).zip(&e.windows);
            rows.chain(e.stray_windows.iter().map(|(n, row)| (n.as_str(), row)))
        };
        let per_volume = |family: &Family, value: fn(&VolumeRow) -> Option<f64>| {
            let mut s = family.samples(e.volumes.len());
            for (l, row) in volumes() {
                if let Some(v) = value(row) {
                    s.push(&l, v);
                }
            }
            s.finish()
        };
        let per_window = |family: &Family, value: fn(&WindowRow) -> Option<f64>| {
            let mut s = family.samples(e.windows.len());
            for (name, row) in windows() {
                if let Some(v) = value(row) {
                    s.push(&[name], v);
                }
            }
            s.finish()
        };

        let mut next = f.next_scheduled.samples(e.volumes.len() * 3);
        let mut backing = f.backing.samples(e.volumes.len() * BACKING_STATES.len());
        let mut conflicts = f.conflicts.samples(e.volumes.len() * CONFLICT_KINDS.len());
        for ([cluster, svm, volume], row) in volumes() {
            if let Some(n) = &row.next {
                for &(at, t) in n.at.iter() {
                    let schedule = n.names.get(at).map_or("", String::as_str);
                    next.push(&[cluster, svm, volume, schedule], t);
                }
            }
            for (state, n) in BACKING_STATES.iter().zip(row.backing.iter().flatten()) {
                backing.push(&[cluster, svm, volume, state], *n as f64);
            }
            for (kind, n) in CONFLICT_KINDS.iter().zip(row.conflicts) {
                conflicts.push(&[cluster, svm, volume, kind.as_str()], n as f64);
            }
        }
        for ([cluster, svm, volume], counted) in &e.stray_conflicts {
            for (kind, n) in CONFLICT_KINDS.iter().zip(counted) {
                if let Some(n) = n {
                    conflicts.push(&[cluster, svm, volume, kind.as_str()], *n as f64);
                }
            }
        }
        let mut recommended = f.flexclone_recommended.samples(e.volumes.len());
        for (l, row) in volumes() {
            recommended.push(&l, row.flexclone_recommended as f64);
        }
        for (key, value) in &e.stray_recommendations {
            recommended.push(&key.each_ref().map(String::as_str), *value as f64);
        }
        let mut cycles = f.cycles.samples(e.windows.len() * RESULTS.len());
        for (name, row) in windows() {
            for (result, n) in RESULTS.iter().zip(row.cycles) {
                if let Some(n) = n {
                    cycles.push(&[name, result.as_str()], n as f64);
                }
            }
        }
        vec![
            next.finish(),
            per_window(&f.window_active, |w| w.active.map(|a| a as f64)),
            backing.finish(),
            per_volume(&f.oldest_age, |v| v.oldest_age),
            per_volume(&f.release_slack, |v| v.release_slack),
            per_volume(&f.guard, |v| v.guard),
            cycles.finish(),
            conflicts.finish(),
            recommended.finish(),
            per_window(&f.last_success, |w| w.last_success),
        ]
    }
}
