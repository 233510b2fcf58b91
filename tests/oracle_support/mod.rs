//! The oracle of `metrics_oracle.rs`: the agent's families whose series grow with the estate
//! as plain `prometheus` vectors, one series per label set, given the calls the agent's metrics
//! are given and brought in line with each policy as `docs/metrics-and-alerts.md` specifies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use prometheus::core::Collector;
use prometheus::{CounterVec, GaugeVec, Opts, Registry};
use snapwarden::agent::cycle::{ConflictKind, Cycle, CycleResult, CycleState};
use snapwarden::agent::decide::{ExcludeKind, TakeWhy};
use snapwarden::agent::managed::{CopyKey, CopyStatus};
use snapwarden::agent::state::{Memory, VolumeKey};
use snapwarden::config::Policy;
use snapwarden::planner::Plan;

fn volume_key(policy: &Policy, vi: usize) -> [String; 3] {
    let v = &policy.volumes[vi];
    [
        policy.clusters[v.cluster].name.clone(),
        v.svm.clone(),
        v.name.clone(),
    ]
}

fn volume_keys(policy: &Policy) -> BTreeSet<[String; 3]> {
    (0..policy.volumes.len())
        .map(|vi| volume_key(policy, vi))
        .collect()
}

fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

const CONFLICT_KINDS: [&str; 5] = [
    "chain_conflict",
    "locked",
    "late_release",
    "foreign",
    "skipped",
];
const RESULTS: [&str; 4] = ["completed", "overrun", "failed", "skipped"];
const TAKES: [&str; 5] = ["on_time", "deferred", "max_defer", "overdue", "failed"];
const VOLUME: [&str; 3] = ["cluster", "svm", "volume"];
const COPY: [&str; 4] = ["cluster", "svm", "volume", "schedule"];
const COPY_RESULT: [&str; 5] = ["cluster", "svm", "volume", "schedule", "result"];

/// The label sets of a vector's series.
fn series_of(c: &dyn Collector) -> Vec<HashMap<String, String>> {
    c.collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| {
            m.get_label()
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect()
        })
        .collect()
}

/// Removes the series of `$vec` whose labels `$gone` picks.
macro_rules! remove_where {
    ($vec:expr, $gone:expr) => {
        for labels in series_of(&$vec).into_iter().filter($gone) {
            let refs: HashMap<&str, &str> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            $vec.remove(&refs).expect("a series just listed");
        }
    };
}

/// The same families as plain `prometheus` vectors, one series per label set.
pub struct Oracle {
    pub registry: Registry,
    next_scheduled: GaugeVec,
    window_active: GaugeVec,
    backing: GaugeVec,
    oldest_age: GaugeVec,
    release_slack: GaugeVec,
    guard: GaugeVec,
    cycles: CounterVec,
    conflicts: CounterVec,
    flexclone: GaugeVec,
    last_success: GaugeVec,
    taken: CounterVec,
    coalesced: CounterVec,
    rotated: CounterVec,
    last: GaugeVec,
    deadline: GaugeVec,
    waiting: GaugeVec,
    over_count: GaugeVec,
    excluded: GaugeVec,
    /// The policy the series were last brought in line with.
    policy: Option<Arc<Policy>>,
    /// The managed copies of the last publish.
    copies: BTreeSet<[String; 4]>,
}

impl Oracle {
    pub fn new() -> Oracle {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let v = GaugeVec::new(Opts::new(name, help), labels).unwrap();
            registry.register(Box::new(v.clone())).unwrap();
            v
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let v = CounterVec::new(Opts::new(name, help), labels).unwrap();
            registry.register(Box::new(v.clone())).unwrap();
            v
        };
        Oracle {
            next_scheduled: gauge("snapwarden_next_scheduled_snapshot_timestamp_seconds", "The volume's next scheduled snapshot of this schedule (Unix seconds).", &["cluster", "svm", "volume", "schedule"]),
            window_active: gauge("snapwarden_window_active", "Whether a cycle of the window is open (1) or not (0).", &["window"]),
            backing: gauge("snapwarden_backing_snapshots", "snapwarden's backing snapshots on the volume, by state (live, releasing, locked).", &["cluster", "svm", "volume", "state"]),
            oldest_age: gauge("snapwarden_backing_snapshot_oldest_age_seconds", "Age of the volume's oldest backing snapshot still owned by snapwarden (0: none).", &VOLUME),
            release_slack: gauge("snapwarden_release_slack_seconds", "The volume's last released cycle: time from its release to the next scheduled snapshot.", &VOLUME),
            guard: gauge("snapwarden_guard_seconds", "The guard kept before the volume's scheduled snapshots: its backing snapshot and clones must be gone this long before the next one (the policy's `[agent] guard`).", &VOLUME),
            cycles: counter("snapwarden_cycles_total", "Cycles that ended, by window and result (completed, overrun, failed, skipped).", &["window", "result"]),
            conflicts: counter("snapwarden_conflicts_total", "Conflicts recorded, by kind (chain_conflict, locked, late_release, foreign, skipped).", &["cluster", "svm", "volume", "kind"]),
            flexclone: gauge("snapwarden_flexclone_recommended", "Whether FlexClone is recommended for the volume (1) or not (0).", &VOLUME),
            last_success: gauge("snapwarden_last_success_timestamp_seconds", "When a cycle of the window last completed (Unix seconds).", &["window"]),
            taken: counter("snapwarden_managed_snapshots_total", "Managed snapshots snapwarden took (on_time, deferred, max_defer, overdue) or failed to take.", &COPY_RESULT),
            coalesced: counter("snapwarden_managed_instants_coalesced_total", "Instants of a managed copy that passed while its snapshot waited for a clone, covered by the one snapshot taken after.", &COPY),
            rotated: counter("snapwarden_managed_rotations_total", "Snapshots of a managed series beyond its count: deleted, or refused (busy or locked, retried).", &COPY_RESULT),
            last: gauge("snapwarden_managed_snapshot_last_timestamp_seconds", "When the newest snapshot of a managed copy was taken (Unix seconds).", &COPY),
            deadline: gauge("snapwarden_managed_snapshot_deadline_timestamp_seconds", "When the next snapshot of a managed copy is taken at the latest: its instant plus max_defer (Unix seconds).", &COPY),
            waiting: gauge("snapwarden_managed_snapshot_waiting", "1 while a due managed snapshot waits for a clone to go.", &COPY),
            over_count: gauge("snapwarden_managed_snapshots_over_count", "Snapshots of a managed series beyond its count (the oldest busy or locked).", &COPY),
            excluded: gauge("snapwarden_volume_excluded", "1 while a policy volume is left out, by reason (unresolved, missing, double_schedule).", &["cluster", "svm", "volume", "reason"]),
            registry,
            policy: None,
            copies: BTreeSet::new(),
        }
    }

    /// A policy takes over: the series of volumes and windows it no longer names go (conflicts
    /// and next snapshots of any volume outside it, the other volume and window series of
    /// those the last policy named); its new volumes get every conflict kind at 0 and a
    /// recommendation series, its new windows every cycle result at 0.
    pub fn retain(&mut self, policy: &Arc<Policy>) {
        if self.policy.as_ref().is_some_and(|p| Arc::ptr_eq(p, policy)) {
            return;
        }
        let old_volumes = self.policy.as_deref().map(volume_keys).unwrap_or_default();
        let new_volumes = volume_keys(policy);
        let window_names =
            |p: &Policy| -> BTreeSet<String> { p.windows.iter().map(|w| w.name.clone()).collect() };
        let old_windows = self.policy.as_deref().map(window_names).unwrap_or_default();
        let new_windows = window_names(policy);
        let key = |l: &HashMap<String, String>| -> [String; 3] {
            VOLUME.map(|n| l.get(n).cloned().unwrap_or_default())
        };
        let outside = |l: &HashMap<String, String>| !new_volumes.contains(&key(l));
        let left = |l: &HashMap<String, String>| {
            old_volumes.contains(&key(l)) && !new_volumes.contains(&key(l))
        };
        remove_where!(self.conflicts, outside);
        remove_where!(self.next_scheduled, outside);
        remove_where!(self.backing, left);
        remove_where!(self.oldest_age, left);
        remove_where!(self.release_slack, left);
        remove_where!(self.guard, left);
        remove_where!(self.flexclone, left);
        let window_left = |l: &HashMap<String, String>| {
            let w = l.get("window").cloned().unwrap_or_default();
            old_windows.contains(&w) && !new_windows.contains(&w)
        };
        remove_where!(self.window_active, window_left);
        remove_where!(self.last_success, window_left);
        remove_where!(self.cycles, window_left);
        for v in new_volumes.difference(&old_volumes) {
            let l = v.each_ref().map(String::as_str);
            self.flexclone.with_label_values(&l);
            for kind in CONFLICT_KINDS {
                self.conflicts.with_label_values(&[l[0], l[1], l[2], kind]);
            }
        }
        for w in new_windows.difference(&old_windows) {
            for r in RESULTS {
                self.cycles.with_label_values(&[w, r]);
            }
        }
        self.policy = Some(policy.clone());
    }

    /// The end of a pass: every policy volume's backing snapshots by state, its oldest one's
    /// age, the guard and its last release's slack; every policy window's activity.
    pub fn publish(&mut self, policy: &Arc<Policy>, memory: &Memory, now: DateTime<Utc>) {
        self.retain(policy);
        let guard = policy.agent.guard.num_milliseconds() as f64 / 1000.0;
        for vi in 0..policy.volumes.len() {
            let key = volume_key(policy, vi);
            let l = key.each_ref().map(String::as_str);
            let on_volume = |c: &&Cycle| c.cluster == l[0] && c.svm == l[1] && c.volume == l[2];
            let open: Vec<&Cycle> = memory
                .open
                .values()
                .map(|o| &o.cycle)
                .filter(on_volume)
                .collect();
            for (state, states) in [
                (
                    "live",
                    &[CycleState::Creating, CycleState::Live, CycleState::Backup][..],
                ),
                ("releasing", &[CycleState::Releasing][..]),
                ("locked", &[CycleState::Locked][..]),
            ] {
                let n = open.iter().filter(|c| states.contains(&c.state)).count();
                self.backing
                    .with_label_values(&[l[0], l[1], l[2], state])
                    .set(n as f64);
            }
            let owned = open.iter().filter(|c| {
                matches!(
                    c.state,
                    CycleState::Creating
                        | CycleState::Live
                        | CycleState::Backup
                        | CycleState::Releasing
                        | CycleState::Locked
                )
            });
            let oldest = owned.map(|c| c.created_at.unwrap_or(c.create_at)).min();
            let age = oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
            self.oldest_age.with_label_values(&l).set(age);
            self.guard.with_label_values(&l).set(guard);
            // The latest release; of two at the same instant, the one remembered last.
            let last = memory
                .recent
                .iter()
                .filter(on_volume)
                .filter(|c| c.released_at.is_some() && c.release_deadline.is_some())
                .fold(None::<&Cycle>, |best, c| match best {
                    Some(b) if b.released_at > c.released_at => Some(b),
                    _ => Some(c),
                });
            if let Some(c) = last {
                let (released, deadline) = (c.released_at.unwrap(), c.release_deadline.unwrap());
                let next = deadline + policy.agent.guard;
                let slack = (next - released).num_milliseconds() as f64 / 1000.0;
                self.release_slack.with_label_values(&l).set(slack);
            }
        }
        for w in &policy.windows {
            let active = memory.open.values().any(|o| o.cycle.window == w.name);
            self.window_active
                .with_label_values(&[&w.name])
                .set(f64::from(u8::from(active)));
        }
    }

    /// Each planned volume's series are its schedules with a snapshot after `now`, at the
    /// earliest one.
    pub fn scheduled(&mut self, policy: &Arc<Policy>, plan: &Plan, now: DateTime<Utc>) {
        for vp in &plan.volumes {
            let key = volume_key(policy, vp.volume);
            let mut next: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
            for s in vp.scheduled.iter().filter(|s| s.at > now) {
                let t = next.entry(vp.schedule_name(s)).or_insert(s.at);
                *t = (*t).min(s.at);
            }
            remove_where!(self.next_scheduled, |l: &HashMap<String, String>| {
                VOLUME.map(|n| l[n].clone()) == key && !next.contains_key(l["schedule"].as_str())
            });
            for (schedule, at) in next {
                self.next_scheduled
                    .with_label_values(&[&key[0], &key[1], &key[2], schedule])
                    .set(unix(at));
            }
        }
    }

    pub fn conflict(&mut self, policy: &Policy, l: [&str; 3], kind: ConflictKind) {
        if volume_keys(policy).contains(&l.map(str::to_string)) {
            self.conflicts
                .with_label_values(&[l[0], l[1], l[2], kind.as_str()])
                .inc();
        }
    }

    pub fn cycle_ended(&mut self, c: &Cycle) {
        let result = c.result.expect("an ended cycle");
        self.cycles
            .with_label_values(&[&c.window, result.as_str()])
            .inc();
        if result == CycleResult::Completed {
            self.last_success
                .with_label_values(&[&c.window])
                .set(unix(c.released_at.expect("released")));
        }
    }

    pub fn recommended(&mut self, l: [&str; 3], yes: bool) {
        self.flexclone
            .with_label_values(&l)
            .set(f64::from(u8::from(yes)));
    }

    /// The copies' gauges and counters; the series of a copy the last publish had and this
    /// one has not go. The volumes left out now.
    pub fn managed(
        &mut self,
        copies: &[CopyStatus],
        excluded: &[(VolumeKey, ExcludeKind, String)],
    ) {
        let now: BTreeSet<[String; 4]> =
            copies.iter().map(|c| c.key().map(str::to_string)).collect();
        let gone: BTreeSet<[String; 4]> = self.copies.difference(&now).cloned().collect();
        let of_gone = |l: &HashMap<String, String>| gone.contains(&COPY.map(|n| l[n].clone()));
        remove_where!(self.taken, of_gone);
        remove_where!(self.coalesced, of_gone);
        remove_where!(self.rotated, of_gone);
        remove_where!(self.last, of_gone);
        remove_where!(self.deadline, of_gone);
        remove_where!(self.waiting, of_gone);
        remove_where!(self.over_count, of_gone);
        for c in copies {
            let l = c.key();
            for r in TAKES {
                self.taken.with_label_values(&[l[0], l[1], l[2], l[3], r]);
            }
            self.coalesced.with_label_values(&l);
            if let Some(t) = c.last_at {
                self.last.with_label_values(&l).set(unix(t));
            }
            if let Some(t) = c.deadline {
                self.deadline.with_label_values(&l).set(unix(t));
            }
            let waiting = f64::from(u8::from(c.waiting_since.is_some()));
            self.waiting.with_label_values(&l).set(waiting);
            self.over_count
                .with_label_values(&l)
                .set(c.over_count as f64);
        }
        self.copies = now;
        let now: BTreeSet<[String; 4]> = excluded
            .iter()
            .map(|(v, kind, _)| {
                [&v.cluster, &v.svm, &v.volume, kind.as_str()].map(|s| s.to_string())
            })
            .collect();
        remove_where!(self.excluded, |l: &HashMap<String, String>| {
            !now.contains(&["cluster", "svm", "volume", "reason"].map(|n| l[n].clone()))
        });
        for l in &now {
            self.excluded
                .with_label_values(&l.each_ref().map(String::as_str))
                .set(1.0);
        }
    }

    pub fn taken(&mut self, key: &CopyKey, why: &TakeWhy, instants: u32) {
        let l = copy(key);
        self.taken
            .with_label_values(&[l[0], l[1], l[2], l[3], why.as_str()])
            .inc();
        if matches!(why, TakeWhy::Deferred { .. } | TakeWhy::MaxDefer { .. }) {
            self.coalesced
                .with_label_values(&l)
                .inc_by(f64::from(instants.saturating_sub(1)));
        }
    }

    pub fn failed(&mut self, key: &CopyKey) {
        let l = copy(key);
        self.taken
            .with_label_values(&[l[0], l[1], l[2], l[3], "failed"])
            .inc();
    }

    pub fn rotated(&mut self, key: &CopyKey, deleted: bool) {
        let l = copy(key);
        let result = if deleted { "deleted" } else { "refused" };
        self.rotated
            .with_label_values(&[l[0], l[1], l[2], l[3], result])
            .inc();
    }
}

impl Oracle {
    /// The names of every family, with series or not.
    pub fn families(&self) -> BTreeSet<String> {
        let vectors: [&dyn Collector; 18] = [
            &self.next_scheduled,
            &self.window_active,
            &self.backing,
            &self.oldest_age,
            &self.release_slack,
            &self.guard,
            &self.cycles,
            &self.conflicts,
            &self.flexclone,
            &self.last_success,
            &self.taken,
            &self.coalesced,
            &self.rotated,
            &self.last,
            &self.deadline,
            &self.waiting,
            &self.over_count,
            &self.excluded,
        ];
        vectors
            .iter()
            .flat_map(|v| v.desc())
            .map(|d| d.fq_name.clone())
            .collect()
    }
}

fn copy(key: &CopyKey) -> [&str; 4] {
    [
        &key.volume.cluster,
        &key.volume.svm,
        &key.volume.volume,
        &key.prefix,
    ]
}
