//! The agent's Prometheus metrics (`/metrics`): one [`Registry`] per agent, updated by the loop
//! after every pass and by [`Counted`], the layer over every cluster client.
//!
//! Label names follow NetApp Harvest (`cluster`, `svm`, `volume`, `schedule`) so series join with
//! Harvest's; label values come only from policy names and closed enums (never snapshot names),
//! so the series count is bounded by the policy — but for the audit's `snapwarden_hazards`,
//! whose volumes may be ONTAP's (capped in count and length, `hazards.rs`). Series of volumes,
//! schedules, windows and clusters that are no longer in the policy are removed at the next
//! publish.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

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
    /// The volumes whose last gauges showed an open cycle: the others' are set again only when
    /// a cycle or a release touches them.
    busy: BTreeSet<usize>,
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
    /// The audit's findings (`snapwarden_hazards`).
    pub hazards: hazards::HazardMetrics,
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
            hazards: hazards::HazardMetrics::new(&r),
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

mod counted;
pub mod hazards;
mod publish;
#[cfg(test)]
mod tests;

pub use counted::Counted;
pub use publish::publish;
