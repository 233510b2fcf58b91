//! The agent's Prometheus metrics (`/metrics`): one [`Registry`] per agent, updated by the loop
//! after every pass and by [`Counted`], the layer over every cluster client.
//!
//! Label names follow NetApp Harvest (`cluster`, `svm`, `volume`, `schedule`) so series join with
//! Harvest's; label values come only from policy names and closed enums (never snapshot names),
//! so the series count is bounded by the policy. Series of volumes, schedules, windows and
//! clusters that are no longer in the policy are removed at the next publish.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use sha2::{Digest, Sha256};

use super::cycle::{ConflictKind, Cycle, CycleResult, CycleState};
use super::journal::JournalHealth;
use super::state::{ClusterView, Memory};
use crate::config::Policy;
use crate::ontap::{Call, Layer, Ontap, OntapError, Via};
use crate::planner::Plan;

/// Every result a cycle can end with (the `result` label of `snapwarden_cycles_total`).
const RESULTS: [CycleResult; 4] = [
    CycleResult::Completed,
    CycleResult::Overrun,
    CycleResult::Failed,
    CycleResult::Skipped,
];

/// Every kind of conflict (the `kind` label of `snapwarden_conflicts_total`): each policy volume
/// has all of them from the start, at 0, so that `increase()` sees a volume's first conflict.
const CONFLICT_KINDS: [ConflictKind; 5] = [
    ConflictKind::ChainConflict,
    ConflictKind::Locked,
    ConflictKind::LateRelease,
    ConflictKind::Foreign,
    ConflictKind::Skipped,
];

/// Backing-snapshot states of `snapwarden_backing_snapshots`.
const BACKING_STATES: [&str; 3] = ["live", "releasing", "locked"];

/// Upper bounds of the ONTAP request duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// `cluster`, `svm`, `volume`.
type VolumeKey = [String; 3];

/// Label sets exported so far, so that the ones that leave the policy can be removed.
#[derive(Default)]
struct Known {
    clusters: BTreeSet<String>,
    volumes: BTreeSet<VolumeKey>,
    windows: BTreeSet<String>,
    /// `(cluster, svm, volume)` → schedules with a next-snapshot series.
    schedules: BTreeMap<VolumeKey, BTreeSet<String>>,
    /// `(cluster, svm, volume, kind)` of conflict counters.
    conflicts: BTreeSet<(VolumeKey, &'static str)>,
    /// `(cluster, method, code)` of request counters.
    requests: BTreeSet<(String, &'static str, String)>,
    /// `(cluster, method)` of request durations.
    durations: BTreeSet<(String, &'static str)>,
    /// A request series was added since the last [`Metrics::retain`] (its cluster may have left
    /// the policy): the next publish retains again even if the policy is the same.
    new_requests: bool,
    /// The policy the series were last brought in line with: the same policy again (and no
    /// new request series) leaves nothing for [`Metrics::retain`] to do.
    retained: Option<Arc<Policy>>,
    /// Per volume of `gauges.0`: the values `publish` last set.
    gauges: (Option<Arc<Policy>>, Vec<Option<VolumeGauges>>),
    /// Per volume of `next.0`: the next scheduled snapshot by schedule as
    /// [`Metrics::scheduled`] last set them.
    next: (Option<Arc<Policy>>, Vec<Option<NextScheduled>>),
}

/// A volume's next scheduled snapshot by schedule name, in name order.
type NextScheduled = Vec<(String, DateTime<Utc>)>;

/// One policy volume's gauges as last published: unchanged values are not set again.
#[derive(Debug, Clone, PartialEq)]
struct VolumeGauges {
    backing: [i64; 3],
    oldest_age: f64,
    guard: f64,
    /// `None`: never set (a volume without a recent release has no series).
    release_slack: Option<f64>,
}

/// Whether `cached` was made for this very policy (the same `Arc`, not an equal one).
fn same_policy(cached: &Option<Arc<Policy>>, policy: &Arc<Policy>) -> bool {
    cached.as_ref().is_some_and(|p| Arc::ptr_eq(p, policy))
}

/// Every metric the agent exports.
pub struct Metrics {
    registry: Registry,
    reload_successful: IntGauge,
    reload_success_timestamp: Gauge,
    config_hash: Gauge,
    reloads: IntCounterVec,
    ontap_up: IntGaugeVec,
    ontap_requests: IntCounterVec,
    ontap_duration: HistogramVec,
    next_scheduled: GaugeVec,
    window_active: IntGaugeVec,
    backing: IntGaugeVec,
    oldest_age: GaugeVec,
    release_slack: GaugeVec,
    guard: GaugeVec,
    cycles: IntCounterVec,
    conflicts: IntCounterVec,
    flexclone_recommended: IntGaugeVec,
    last_success: GaugeVec,
    orphans: IntCounterVec,
    leader: IntGaugeVec,
    leader_changes: prometheus::IntCounter,
    ha_backend_up: IntGauge,
    /// The election's change count as last published (the counter follows it).
    changes_seen: Mutex<u64>,
    known: Mutex<Known>,
    /// Cycles taken back from the released ones (found again on ONTAP): their end was counted
    /// once already and is not counted again.
    recounted: Mutex<HashSet<String>>,
    /// Orphans counted so far (look-alikes are few: the set stays small).
    orphans_seen: Mutex<HashSet<String>>,
    journal_errors: prometheus::IntCounter,
    journal_writable: IntGauge,
    /// The managed schedules' metrics.
    pub managed: super::managed::metrics::ManagedMetrics,
    /// The journal whose writes the two above follow, and the errors counted so far.
    journal: Mutex<Option<(Arc<JournalHealth>, u64)>>,
}

/// The `identity` of `snapwarden_leader` when the agent runs alone (no `[ha]`).
const STANDALONE: &str = "standalone";

/// Builds and registers a metric; the names and labels are constants, so failure is a bug.
fn register<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
    r.register(Box::new(m.clone()))
        .expect("metric names and labels are valid and unique");
    m
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(
        r,
        GaugeVec::new(Opts::new(name, help), labels).expect("valid"),
    )
}

fn int_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid"),
    )
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid"),
    )
}

const VOLUME: [&str; 3] = ["cluster", "svm", "volume"];

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let build = int_gauge_vec(
            &r,
            "snapwarden_build_info",
            "Always 1; the labels name the running build.",
            &["version", "revision"],
        );
        build
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("SNAPWARDEN_REVISION").unwrap_or("unknown"),
            ])
            .set(1);
        let reloads = counter_vec(
            &r,
            "snapwarden_config_reloads_total",
            "Policy reload attempts, by result (success, failure).",
            &["result"],
        );
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        let leader = int_gauge_vec(
            &r,
            "snapwarden_leader",
            "Whether this replica leads (1) or stands by (0); identity \"standalone\" without [ha].",
            &["identity"],
        );
        leader.with_label_values(&[STANDALONE]).set(1);
        let ha_backend_up = register(
            &r,
            IntGauge::new(
                "snapwarden_ha_backend_up",
                "Whether the election backend answered this replica's last round (1) or not (0); 1 without [ha].",
            )
            .expect("valid"),
        );
        ha_backend_up.set(1);
        Metrics {
            leader,
            leader_changes: register(
                &r,
                prometheus::IntCounter::new(
                    "snapwarden_leader_changes_total",
                    "Times this replica became leader or stopped leading.",
                )
                .expect("valid"),
            ),
            ha_backend_up,
            changes_seen: Mutex::new(0),
            reload_successful: register(
                &r,
                IntGauge::new(
                    "snapwarden_config_last_reload_successful",
                    "Whether the last policy load or reload succeeded (1) or failed (0).",
                )
                .expect("valid"),
            ),
            reload_success_timestamp: register(
                &r,
                Gauge::new(
                    "snapwarden_config_last_reload_success_timestamp_seconds",
                    "When the running policy was loaded (Unix seconds).",
                )
                .expect("valid"),
            ),
            config_hash: register(
                &r,
                Gauge::new(
                    "snapwarden_config_hash",
                    "The first 48 bits of the SHA-256 of the running policy's files, as a number.",
                )
                .expect("valid"),
            ),
            reloads,
            ontap_up: int_gauge_vec(
                &r,
                "snapwarden_ontap_up",
                "Whether the cluster answered the last discovery (1) or not (0).",
                &["cluster"],
            ),
            ontap_requests: counter_vec(
                &r,
                "snapwarden_ontap_requests_total",
                "ONTAP calls, by client method and outcome (ONTAP error code, ok, or the failure class).",
                &["cluster", "method", "code"],
            ),
            ontap_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "snapwarden_ontap_request_duration_seconds",
                        "Duration of ONTAP calls, by client method (jobs polled to the end included).",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                    &["cluster", "method"],
                )
                .expect("valid"),
            ),
            next_scheduled: gauge_vec(
                &r,
                "snapwarden_next_scheduled_snapshot_timestamp_seconds",
                "The volume's next scheduled snapshot of this schedule (Unix seconds).",
                &["cluster", "svm", "volume", "schedule"],
            ),
            window_active: int_gauge_vec(
                &r,
                "snapwarden_window_active",
                "Whether a cycle of the window is open (1) or not (0).",
                &["window"],
            ),
            backing: int_gauge_vec(
                &r,
                "snapwarden_backing_snapshots",
                "snapwarden's backing snapshots on the volume, by state (live, releasing, locked).",
                &["cluster", "svm", "volume", "state"],
            ),
            oldest_age: gauge_vec(
                &r,
                "snapwarden_backing_snapshot_oldest_age_seconds",
                "Age of the volume's oldest backing snapshot still owned by snapwarden (0: none).",
                &VOLUME,
            ),
            release_slack: gauge_vec(
                &r,
                "snapwarden_release_slack_seconds",
                "The volume's last released cycle: time from its release to the next scheduled snapshot.",
                &VOLUME,
            ),
            guard: gauge_vec(
                &r,
                "snapwarden_guard_seconds",
                "The guard kept before the volume's scheduled snapshots: its backing snapshot and clones must be gone this long before the next one (the policy's `[agent] guard`).",
                &VOLUME,
            ),
            cycles: counter_vec(
                &r,
                "snapwarden_cycles_total",
                "Cycles that ended, by window and result (completed, overrun, failed, skipped).",
                &["window", "result"],
            ),
            conflicts: counter_vec(
                &r,
                "snapwarden_conflicts_total",
                "Conflicts recorded, by kind (chain_conflict, locked, late_release, foreign, skipped).",
                &["cluster", "svm", "volume", "kind"],
            ),
            flexclone_recommended: int_gauge_vec(
                &r,
                "snapwarden_flexclone_recommended",
                "Whether FlexClone is recommended for the volume (1) or not (0).",
                &VOLUME,
            ),
            last_success: gauge_vec(
                &r,
                "snapwarden_last_success_timestamp_seconds",
                "When a cycle of the window last completed (Unix seconds).",
                &["window"],
            ),
            orphans: counter_vec(
                &r,
                "snapwarden_reconcile_orphans_total",
                "Objects reconcile found that no open cycle explains, by kind (snapshot, lun, cycle) and action (ignored, released, adopted).",
                &["kind", "action"],
            ),
            journal_errors: register(
                &r,
                prometheus::IntCounter::new(
                    "snapwarden_journal_errors_total",
                    "Journal writes that failed (the agent is not ready while the last one failed).",
                )
                .expect("valid metric"),
            ),
            journal_writable: register(
                &r,
                IntGauge::new(
                    "snapwarden_journal_writable",
                    "1 while the journal's last write succeeded, 0 while writes fail.",
                )
                .expect("valid metric"),
            ),
            managed: super::managed::metrics::ManagedMetrics::new(&r),
            registry: r,
            known: Mutex::new(Known::default()),
            recounted: Mutex::new(HashSet::new()),
            orphans_seen: Mutex::new(HashSet::new()),
            journal: Mutex::new(None),
        }
    }

    /// Follows this journal's writes (`snapwarden_journal_errors_total`,
    /// `snapwarden_journal_writable`), brought up to date at every render.
    pub fn watch_journal(&self, health: Arc<JournalHealth>) {
        *self.journal.lock().unwrap_or_else(|e| e.into_inner()) = Some((health, 0));
        self.sync_journal();
    }

    fn sync_journal(&self) {
        let mut slot = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        let Some((health, counted)) = slot.as_mut() else {
            return;
        };
        let errors = health.errors();
        self.journal_errors.inc_by(errors.saturating_sub(*counted));
        *counted = errors.max(*counted);
        self.journal_writable.set(i64::from(health.writable()));
    }

    /// The registry (tests read it; `/metrics` encodes it).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.sync_journal();
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# cannot encode the metrics: {e}\n"))
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A policy was loaded (at start, or a reload): records its hash and the time.
    pub fn config_loaded(&self, policy: &Policy, at: DateTime<Utc>) {
        self.reload_successful.set(1);
        self.reload_success_timestamp.set(unix_seconds(at));
        self.config_hash.set(policy_hash(policy));
    }

    /// The election as this replica sees it (`[ha]`).
    pub fn election(&self, e: &crate::ha::Election) {
        // One identity per process: the label set is this replica's (never "standalone").
        self.leader.reset();
        self.leader
            .with_label_values(&[&e.identity])
            .set(i64::from(e.leading()));
        self.ha_backend_up.set(i64::from(e.backend_up));
        let mut seen = self.changes_seen.lock().unwrap_or_else(|p| p.into_inner());
        if e.changes > *seen {
            self.leader_changes.inc_by(e.changes - *seen);
            *seen = e.changes;
        }
    }

    /// One reload attempt and its result.
    pub fn reload_attempted(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.with_label_values(&[result]).inc();
        if !ok {
            self.reload_successful.set(0);
        }
    }

    /// One ONTAP call.
    pub fn ontap_request(&self, cluster: &str, method: &'static str, code: String, seconds: f64) {
        self.ontap_requests
            .with_label_values(&[cluster, method, &code])
            .inc();
        self.ontap_duration
            .with_label_values(&[cluster, method])
            .observe(seconds);
        let mut known = self.known();
        let new_duration = known.durations.insert((cluster.to_string(), method));
        let new_request = known.requests.insert((cluster.to_string(), method, code));
        known.new_requests |= new_duration || new_request;
    }

    /// A cycle reached its end (released, failed or skipped).
    pub fn cycle_ended(&self, c: &Cycle, now: DateTime<Utc>) {
        if self
            .recounted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&c.id)
        {
            return;
        }
        let Some(result) = c.result else { return };
        self.cycles
            .with_label_values(&[c.window.as_str(), result.as_str()])
            .inc();
        if result == CycleResult::Completed {
            let at = c.released_at.unwrap_or(now);
            self.last_success
                .with_label_values(&[c.window.as_str()])
                .set(unix_seconds(at));
        }
    }

    /// A released cycle was taken back (its snapshot is still listed): its next end is the same
    /// cycle ending again, not a new one.
    pub fn cycle_reopened(&self, id: &str) {
        self.recounted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
    }

    /// A new conflict on a policy volume (conflicts elsewhere are not labelled, to keep label
    /// values bounded by the policy).
    pub fn conflict(
        &self,
        policy: &Policy,
        cluster: &str,
        svm: &str,
        volume: &str,
        kind: ConflictKind,
    ) {
        if super::state::volume_index(policy, cluster, svm, volume).is_none() {
            return;
        }
        let kind = kind.as_str();
        self.conflicts
            .with_label_values(&[cluster, svm, volume, kind])
            .inc();
        let key = [cluster.to_string(), svm.to_string(), volume.to_string()];
        self.known().conflicts.insert((key, kind));
    }

    /// Reconcile found an object no open cycle explains, and what it did. `key` names the
    /// object (cluster and UUID): each one is counted once, however many passes see it.
    pub fn orphan(&self, kind: &'static str, action: &'static str, key: &str) {
        let new = self
            .orphans_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(format!("{action}:{key}"));
        if new {
            self.orphans.with_label_values(&[kind, action]).inc();
        }
    }

    /// Whether FlexClone is recommended for a policy volume (the recommendation code sets it).
    pub fn set_flexclone_recommended(&self, cluster: &str, svm: &str, volume: &str, yes: bool) {
        self.flexclone_recommended
            .with_label_values(&[cluster, svm, volume])
            .set(i64::from(yes));
    }

    /// The next scheduled snapshot of every planned volume and schedule after `now`. A volume
    /// whose next snapshots are those last set (for the same policy) is left as it is.
    pub fn scheduled(&self, policy: &Arc<Policy>, plan: &Plan, now: DateTime<Utc>) {
        let mut known = self.known();
        let known = &mut *known;
        if !same_policy(&known.next.0, policy) {
            known.next = (Some(policy.clone()), vec![None; policy.volumes.len()]);
        }
        for vp in &plan.volumes {
            let mut next: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
            for s in vp.scheduled.iter().filter(|s| s.at > now) {
                next.entry(vp.schedule_name(s))
                    .and_modify(|t| *t = (*t).min(s.at))
                    .or_insert(s.at);
            }
            let Some(last) = known.next.1.get_mut(vp.volume) else {
                continue;
            };
            let unchanged = last.as_ref().is_some_and(|l| {
                l.len() == next.len()
                    && l.iter()
                        .zip(&next)
                        .all(|((ls, lt), (s, t))| ls == s && lt == t)
            });
            if unchanged {
                continue;
            }
            *last = Some(next.iter().map(|(s, t)| (s.to_string(), *t)).collect());
            let Some(key) = volume_key(policy, vp.volume) else {
                continue;
            };
            let previous = known.schedules.remove(&key).unwrap_or_default();
            for gone in previous.iter().filter(|p| !next.contains_key(p.as_str())) {
                let _ = self
                    .next_scheduled
                    .remove_label_values(&[&key[0], &key[1], &key[2], gone]);
            }
            for (schedule, at) in &next {
                self.next_scheduled
                    .with_label_values(&[key[0].as_str(), &key[1], &key[2], schedule])
                    .set(unix_seconds(*at));
            }
            known
                .schedules
                .insert(key, next.keys().map(|s| s.to_string()).collect());
        }
    }

    /// [`Metrics::retain`] unless it was done for this very policy and no request series was
    /// added since.
    fn retain_if_changed(&self, policy: &Arc<Policy>) {
        let retained = {
            let known = self.known();
            same_policy(&known.retained, policy) && !known.new_requests
        };
        if !retained {
            self.retain(policy);
            self.known().retained = Some(policy.clone());
        }
    }

    /// Removes every series whose cluster, volume or window left the policy, and sets the
    /// series every policy object has (zeros included) so that they exist from the start.
    fn retain(&self, policy: &Policy) {
        let clusters: BTreeSet<String> = policy.clusters.iter().map(|c| c.name.clone()).collect();
        let volumes: BTreeSet<VolumeKey> = (0..policy.volumes.len())
            .filter_map(|vi| volume_key(policy, vi))
            .collect();
        let windows: BTreeSet<String> = policy.windows.iter().map(|w| w.name.clone()).collect();
        let mut known = self.known();
        known.new_requests = false;
        for c in known.clusters.difference(&clusters) {
            let _ = self.ontap_up.remove_label_values(&[c]);
        }
        known.requests.retain(|(c, m, code)| {
            let keep = clusters.contains(c);
            if !keep {
                let _ = self
                    .ontap_requests
                    .remove_label_values(&[c.as_str(), m, code]);
            }
            keep
        });
        known.durations.retain(|(c, m)| {
            let keep = clusters.contains(c);
            if !keep {
                let _ = self.ontap_duration.remove_label_values(&[c.as_str(), m]);
            }
            keep
        });
        for v in known.volumes.difference(&volumes) {
            let l = [v[0].as_str(), v[1].as_str(), v[2].as_str()];
            for state in BACKING_STATES {
                let _ = self.backing.remove_label_values(&[l[0], l[1], l[2], state]);
            }
            let _ = self.oldest_age.remove_label_values(&l);
            let _ = self.release_slack.remove_label_values(&l);
            let _ = self.guard.remove_label_values(&l);
            let _ = self.flexclone_recommended.remove_label_values(&l);
        }
        known.schedules.retain(|v, schedules| {
            let keep = volumes.contains(v);
            if !keep {
                for s in schedules.iter() {
                    let _ = self
                        .next_scheduled
                        .remove_label_values(&[&v[0], &v[1], &v[2], s]);
                }
            }
            keep
        });
        known.conflicts.retain(|(v, kind)| {
            let keep = volumes.contains(v);
            if !keep {
                let _ = self
                    .conflicts
                    .remove_label_values(&[v[0].as_str(), &v[1], &v[2], kind]);
            }
            keep
        });
        for w in known.windows.difference(&windows) {
            let _ = self.window_active.remove_label_values(&[w]);
            let _ = self.last_success.remove_label_values(&[w]);
            for r in RESULTS {
                let _ = self.cycles.remove_label_values(&[w.as_str(), r.as_str()]);
            }
        }
        for w in windows.difference(&known.windows) {
            for r in RESULTS {
                self.cycles.with_label_values(&[w.as_str(), r.as_str()]);
            }
        }
        let new: Vec<VolumeKey> = volumes.difference(&known.volumes).cloned().collect();
        for v in new {
            self.flexclone_recommended
                .with_label_values(&[&v[0], &v[1], &v[2]]);
            for kind in CONFLICT_KINDS.map(ConflictKind::as_str) {
                self.conflicts
                    .with_label_values(&[&v[0], &v[1], &v[2], kind]);
                known.conflicts.insert((v.clone(), kind));
            }
        }
        known.clusters = clusters;
        known.volumes = volumes;
        known.windows = windows;
    }
}

/// The agent's state as metrics: called at the end of every pass. Series are brought in line
/// with the policy when it (or the set of request series) changed, and a volume's gauges are
/// set when their values changed.
pub(super) fn publish(
    m: &Metrics,
    policy: &Arc<Policy>,
    views: &[ClusterView],
    memory: &Memory,
    now: DateTime<Utc>,
) {
    m.sync_journal();
    m.retain_if_changed(policy);
    for (view, cluster) in views.iter().zip(&policy.clusters) {
        m.ontap_up
            .with_label_values(&[cluster.name.as_str()])
            .set(i64::from(view.reachable));
    }
    // Open cycles per volume and state, oldest first instant, and windows in progress.
    let mut counts: BTreeMap<usize, [i64; 3]> = BTreeMap::new();
    let mut oldest: BTreeMap<usize, DateTime<Utc>> = BTreeMap::new();
    let mut active: BTreeSet<&str> = BTreeSet::new();
    // One look-up table per pass instead of a scan of the policy per cycle.
    let index: HashMap<(&str, &str, &str), usize> = policy
        .volumes
        .iter()
        .enumerate()
        .filter_map(|(vi, v)| {
            let cluster = policy.clusters.get(v.cluster)?;
            Some(((cluster.name.as_str(), v.svm.as_str(), v.name.as_str()), vi))
        })
        .rev()
        .collect();
    let volume_index = |c: &Cycle| {
        index
            .get(&(c.cluster.as_str(), c.svm.as_str(), c.volume.as_str()))
            .copied()
    };
    for c in memory.open.values().map(|o| &o.cycle) {
        active.insert(c.window.as_str());
        let Some(vi) = volume_index(c) else {
            continue;
        };
        let state = match c.state {
            CycleState::Creating | CycleState::Live | CycleState::Backup => 0,
            CycleState::Releasing => 1,
            CycleState::Locked => 2,
            _ => continue,
        };
        let n = &mut counts.entry(vi).or_default()[state];
        *n = n.saturating_add(1);
        let since = c.created_at.unwrap_or(c.create_at);
        oldest
            .entry(vi)
            .and_modify(|t| *t = (*t).min(since))
            .or_insert(since);
    }
    for w in &policy.windows {
        m.window_active
            .with_label_values(&[w.name.as_str()])
            .set(i64::from(active.contains(w.name.as_str())));
    }
    // The last release of each volume among the recently released cycles.
    let mut slack: BTreeMap<usize, (DateTime<Utc>, f64)> = BTreeMap::new();
    for c in &memory.recent {
        let (Some(released), Some(deadline)) = (c.released_at, c.release_deadline) else {
            continue;
        };
        let Some(vi) = volume_index(c) else {
            continue;
        };
        let next_scheduled = deadline + policy.agent.guard;
        let margin = (next_scheduled - released).num_milliseconds() as f64 / 1000.0;
        if slack.get(&vi).is_none_or(|(t, _)| released >= *t) {
            slack.insert(vi, (released, margin));
        }
    }
    let guard = policy.agent.guard.num_milliseconds() as f64 / 1000.0;
    let mut known = m.known();
    let known = &mut *known;
    if !same_policy(&known.gauges.0, policy) {
        known.gauges = (Some(policy.clone()), vec![None; policy.volumes.len()]);
    }
    for (vi, last) in known.gauges.1.iter_mut().enumerate() {
        let n = counts.get(&vi).copied().unwrap_or_default();
        let age = oldest.get(&vi).map_or(0.0, |t| {
            ((now - *t).num_milliseconds().max(0) as f64) / 1000.0
        });
        let margin = slack.get(&vi).map(|(_, margin)| *margin);
        let values = VolumeGauges {
            backing: n,
            oldest_age: age,
            guard,
            release_slack: margin.or(last.as_ref().and_then(|g| g.release_slack)),
        };
        if last.as_ref() == Some(&values) {
            continue;
        }
        let Some(key) = volume_key(policy, vi) else {
            continue;
        };
        let l = [key[0].as_str(), key[1].as_str(), key[2].as_str()];
        for (state, value) in BACKING_STATES.iter().zip(n) {
            m.backing
                .with_label_values(&[l[0], l[1], l[2], state])
                .set(value);
        }
        m.oldest_age.with_label_values(&l).set(age);
        m.guard.with_label_values(&l).set(guard);
        if let Some(margin) = margin {
            m.release_slack.with_label_values(&l).set(margin);
        }
        *last = Some(values);
    }
}

fn volume_key(policy: &Policy, vi: usize) -> Option<VolumeKey> {
    let v = policy.volumes.get(vi)?;
    let cluster = policy.clusters.get(v.cluster)?;
    Some([cluster.name.clone(), v.svm.clone(), v.name.clone()])
}

fn unix_seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// The first 48 bits of the SHA-256 over the policy's files (exact as a float); 0 when none of
/// them can be read (a policy built in memory).
pub fn policy_hash(policy: &Policy) -> f64 {
    let mut h = Sha256::new();
    let mut any = false;
    for f in &policy.files {
        if let Ok(bytes) = std::fs::read(f) {
            h.update(f.as_os_str().as_encoded_bytes());
            h.update([0]);
            h.update(&bytes);
            any = true;
        }
    }
    if !any {
        return 0.0;
    }
    let d = h.finalize();
    let mut n: u64 = 0;
    for b in &d[..6] {
        n = (n << 8) | u64::from(*b);
    }
    n as f64
}

/// The `code` label of an ONTAP call's outcome: `ok`, ONTAP's error code, or the kind of failure.
fn outcome(r: Result<(), &OntapError>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(OntapError::Api { code, .. }) => code.to_string(),
        Err(OntapError::Auth { .. }) => "auth".into(),
        Err(OntapError::Transport { .. }) => "transport".into(),
        Err(OntapError::JobTimeout { .. }) => "job_timeout".into(),
        Err(OntapError::Decode { .. }) => "decode".into(),
    }
}

/// The [`Layer`] that counts and times every call in the metrics, by method and outcome.
pub struct Counted {
    inner: Arc<dyn Ontap>,
    metrics: Arc<Metrics>,
    cluster: String,
}

impl Counted {
    /// `inner`, counted; `cluster` is the policy's name for it (the `cluster` label).
    pub fn new(inner: Arc<dyn Ontap>, metrics: Arc<Metrics>, cluster: &str) -> Via<Counted> {
        Via::new(
            inner.cluster_name().to_string(),
            Counted {
                inner,
                metrics,
                cluster: cluster.to_string(),
            },
        )
    }
}

#[async_trait]
impl Layer for Counted {
    async fn before(&self, _call: Call) -> Result<Arc<dyn Ontap>, OntapError> {
        Ok(self.inner.clone())
    }

    fn after(&self, call: Call, r: Result<(), &OntapError>, elapsed: Duration) {
        self.metrics.ontap_request(
            &self.cluster,
            call.name(),
            outcome(r),
            elapsed.as_secs_f64(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn policy(volumes: &[&str], window: bool) -> Policy {
        let mut text = String::from(
            r#"
[[cluster]]
name = "lab"
endpoint = "simulator"
timezone = "UTC"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "p"
copies = [{ schedule = "hourly", count = 3 }]
"#,
        );
        for v in volumes {
            text.push_str(&format!(
                "[[volume]]\ncluster = \"lab\"\nsvm = \"svm1\"\nname = \"{v}\"\nluns = [\"/vol/{v}/lun0\"]\nsnapshot_policy = \"p\"\n"
            ));
        }
        if window {
            text.push_str(
                "[[window]]\nname = \"nightly\"\nvolumes = [\"lab/svm1/vol_a\"]\nstart = \"10 1 * * *\"\ntimezone = \"UTC\"\nexpected = \"20m\"\nmax = \"40m\"\n",
            );
        }
        crate::config::parse_str(&text, Path::new("unit.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn series_of_volumes_and_windows_that_leave_the_policy_are_removed() {
        let m = Metrics::new();
        let before = policy(&["vol_a", "vol_b"], true);
        m.retain(&before);
        for v in ["vol_a", "vol_b"] {
            m.conflict(&before, "lab", "svm1", v, ConflictKind::Foreign);
            m.backing
                .with_label_values(&["lab", "svm1", v, "live"])
                .set(1);
            m.oldest_age.with_label_values(&["lab", "svm1", v]).set(5.0);
            m.release_slack
                .with_label_values(&["lab", "svm1", v])
                .set(5.0);
            m.next_scheduled
                .with_label_values(&["lab", "svm1", v, "hourly"])
                .set(1.0);
            m.known().schedules.insert(
                ["lab".into(), "svm1".into(), v.into()],
                BTreeSet::from(["hourly".to_string()]),
            );
        }
        // A conflict on a volume outside the policy is not labelled at all.
        m.conflict(
            &before,
            "lab",
            "svm1",
            "not_in_policy",
            ConflictKind::Foreign,
        );
        let text = m.render();
        assert!(text.contains("volume=\"vol_b\""), "{text}");
        assert!(!text.contains("not_in_policy"), "{text}");
        assert!(text.contains("window=\"nightly\""), "{text}");

        m.retain(&policy(&["vol_a"], false));
        let text = m.render();
        assert!(!text.contains("vol_b"), "{text}");
        assert!(!text.contains("nightly"), "{text}");
        // vol_a keeps every family.
        for family in [
            "snapwarden_conflicts_total{",
            "snapwarden_backing_snapshots{",
            "snapwarden_backing_snapshot_oldest_age_seconds{",
            "snapwarden_release_slack_seconds{",
            "snapwarden_next_scheduled_snapshot_timestamp_seconds{",
            "snapwarden_flexclone_recommended{",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(family) && l.contains("volume=\"vol_a\"")),
                "{family}: {text}"
            );
        }
    }

    #[test]
    fn every_policy_volume_has_every_conflict_kind_from_the_start_at_zero() {
        // A counter that appears at 1 hides its first increment from `increase()`: the
        // dashboards' "conflicts in range" would miss a volume's first conflict.
        let m = Metrics::new();
        let p = policy(&["vol_a", "vol_b"], false);
        m.retain(&p);
        let text = m.render();
        let zeros = text
            .lines()
            .filter(|l| l.starts_with("snapwarden_conflicts_total{") && l.ends_with("} 0"))
            .count();
        assert_eq!(zeros, 2 * CONFLICT_KINDS.len(), "{text}");
        for kind in [
            "chain_conflict",
            "locked",
            "late_release",
            "foreign",
            "skipped",
        ] {
            assert!(
                text.contains(&format!(
                    "snapwarden_conflicts_total{{cluster=\"lab\",kind=\"{kind}\",svm=\"svm1\",volume=\"vol_b\"}} 0"
                )),
                "{kind}: {text}"
            );
        }
        m.conflict(&p, "lab", "svm1", "vol_a", ConflictKind::Locked);
        m.retain(&p);
        assert!(m.render().contains(
            "snapwarden_conflicts_total{cluster=\"lab\",kind=\"locked\",svm=\"svm1\",volume=\"vol_a\"} 1"
        ));
        // A volume that leaves takes its zeros along.
        m.retain(&policy(&["vol_a"], false));
        assert!(!m.render().contains("vol_b"));
    }

    #[test]
    fn ontap_series_of_a_cluster_that_left_the_policy_are_removed() {
        let m = Metrics::new();
        let p = policy(&["vol_a"], false);
        m.ontap_request("lab", "volumes", "ok".into(), 0.01);
        m.ontap_request("gone", "volumes", "ok".into(), 0.01);
        m.ontap_up.with_label_values(&["gone"]).set(1);
        m.known().clusters.insert("gone".into());
        m.retain(&p);
        let text = m.render();
        assert!(!text.contains("cluster=\"gone\""), "{text}");
        assert!(text.contains("cluster=\"lab\""), "{text}");
    }

    #[test]
    fn retaining_again_for_the_same_policy_still_removes_a_new_request_series_of_a_cluster_gone() {
        let m = Metrics::new();
        let p = Arc::new(policy(&["vol_a"], false));
        m.retain_if_changed(&p);
        m.retain_if_changed(&p);
        // A call to a cluster that left the policy (a client still in flight after a reload).
        m.ontap_request("gone", "volumes", "ok".into(), 0.01);
        m.ontap_request("lab", "volumes", "ok".into(), 0.01);
        assert!(m.render().contains("cluster=\"gone\""));
        m.retain_if_changed(&p);
        let text = m.render();
        assert!(!text.contains("cluster=\"gone\""), "{text}");
        assert!(text.contains("cluster=\"lab\""), "{text}");
        // An equal policy that is another load still counts as a change: its volumes' series
        // come back after a removal.
        let without = Arc::new(policy(&["vol_b"], false));
        m.retain_if_changed(&without);
        assert!(!m.render().contains("vol_a"));
        m.retain_if_changed(&Arc::new(policy(&["vol_a"], false)));
        assert!(m.render().contains(
            "snapwarden_conflicts_total{cluster=\"lab\",kind=\"locked\",svm=\"svm1\",volume=\"vol_a\"} 0"
        ));
    }

    #[test]
    fn the_code_label_is_the_ontap_code_ok_or_the_failure_class() {
        let api: Result<(), OntapError> = Err(OntapError::Api {
            cluster: "lab".into(),
            target: "volume v snapshot s".into(),
            code: crate::ontap::SNAPSHOT_LOCKED,
            message: "locked".into(),
            http_status: Some(409),
        });
        assert_eq!(outcome(api.as_ref().map(|_| ())), "1638555");
        assert_eq!(outcome(Ok(())), "ok");
        let auth: Result<(), OntapError> = Err(OntapError::Auth {
            cluster: "lab".into(),
            http_status: 401,
        });
        assert_eq!(outcome(auth.as_ref().map(|_| ())), "auth");
    }

    #[test]
    fn the_config_hash_follows_the_files_content_and_fits_a_float_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config/minimal.toml"),
        )
        .unwrap();
        std::fs::write(&path, &text).unwrap();
        let a = crate::config::load(&path).unwrap();
        let ha = policy_hash(&a);
        assert!(ha > 0.0 && ha < 2f64.powi(48) && ha.fract() == 0.0, "{ha}");
        assert_eq!(policy_hash(&crate::config::load(&path).unwrap()), ha);
        std::fs::write(&path, format!("{text}\n# an edit\n")).unwrap();
        assert_ne!(policy_hash(&crate::config::load(&path).unwrap()), ha);
        // The reload trio after a failed attempt.
        let m = Metrics::new();
        m.config_loaded(&a, "2027-01-01T00:00:00Z".parse().unwrap());
        m.reload_attempted(false);
        let text = m.render();
        assert!(
            text.contains("snapwarden_config_last_reload_successful 0"),
            "{text}"
        );
        assert!(
            text.contains("snapwarden_config_reloads_total{result=\"failure\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("snapwarden_config_last_reload_success_timestamp_seconds 1798761600"),
            "{text}"
        );
    }
}
