//! The agent's Prometheus metrics (`/metrics`): one [`Registry`] per agent, updated by the loop
//! after every pass and by [`Counted`], the layer over every cluster client. The families whose
//! series grow with the estate are plain values in compact tables (`estate.rs`, and the managed
//! copies' in `managed/metrics.rs`), written as text straight from the tables when `/metrics` is
//! read ([`Metrics::render`], `family.rs`): a scrape allocates about its text, not a record per
//! series.
//!
//! Label names follow NetApp Harvest (`cluster`, `svm`, `volume`, `schedule`) so series join with
//! Harvest's; label values come only from policy names and closed enums (never snapshot names),
//! so the series count is bounded by the policy — but for the audit's `snapwarden_hazards`,
//! whose volumes may be ONTAP's (capped in count and length, `hazards.rs`). Series of volumes,
//! schedules, windows and clusters that are no longer in the policy are removed at the next
//! publish.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use sha2::{Digest, Sha256};

use super::cycle::{ConflictKind, Cycle, CycleResult, CycleState};
use super::journal::JournalHealth;
use super::state::{ClusterView, Memory};
use crate::config::Policy;
use crate::planner::Plan;
use estate::Estate;

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

/// The position of `result` in [`RESULTS`].
fn result_slot(result: CycleResult) -> usize {
    match result {
        CycleResult::Completed => 0,
        CycleResult::Overrun => 1,
        CycleResult::Failed => 2,
        CycleResult::Skipped => 3,
    }
}

/// The position of `kind` in [`CONFLICT_KINDS`].
fn conflict_slot(kind: ConflictKind) -> usize {
    match kind {
        ConflictKind::ChainConflict => 0,
        ConflictKind::Locked => 1,
        ConflictKind::LateRelease => 2,
        ConflictKind::Foreign => 3,
        ConflictKind::Skipped => 4,
    }
}

/// Backing-snapshot states of `snapwarden_backing_snapshots`.
const BACKING_STATES: [&str; 3] = ["live", "releasing", "locked"];

/// Upper bounds of the ONTAP request duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The clusters' label sets exported so far, so that the ones that leave the policy can be
/// removed (the estate's series follow the policy in [`Estate`]).
#[derive(Default)]
struct Known {
    clusters: BTreeSet<String>,
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
}

/// Whether `cached` was made for this very policy (the same `Arc`, not an equal one).
fn same_policy(cached: &Option<Arc<Policy>>, policy: &Arc<Policy>) -> bool {
    cached.as_ref().is_some_and(|p| Arc::ptr_eq(p, policy))
}

/// Every metric the agent exports.
pub struct Metrics {
    /// The `prometheus` crate's vectors: the families whose series are few (per cluster,
    /// method, result...). The families of the tables are not in it.
    registry: Registry,
    reload_successful: IntGauge,
    reload_success_timestamp: Gauge,
    config_hash: Gauge,
    reloads: IntCounterVec,
    ontap_up: IntGaugeVec,
    ontap_requests: IntCounterVec,
    ontap_duration: HistogramVec,
    /// The series per volume, schedule and window, and their families.
    estate: Mutex<Estate>,
    estate_families: estate::Families,
    /// The length of the last text rendered: the next one is written into that much room.
    rendered: AtomicUsize,
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
            estate: Mutex::default(),
            estate_families: estate::Families::new(),
            rendered: AtomicUsize::new(0),
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

    /// Every metric in the Prometheus text exposition format (0.0.4), the text the crate's
    /// `TextEncoder` writes for a registry of every family: the families in name order, the
    /// vectors' encoded by the crate one at a time, the tables' written from their rows
    /// (`family.rs`). Beyond the text it allocates the vectors' records (their series are few)
    /// and, while a table's family is written, a handle per series of that family.
    pub fn render(&self) -> String {
        self.sync_journal();
        let vectors = self.registry.gather();
        // The estate's rows, then the copies': nothing else holds both.
        let estate = self.estate();
        let copies = self.managed.copies();
        let mut families: Vec<Written> = vectors.iter().map(encoded).collect();
        families.extend(estate::written(&estate, &self.estate_families));
        families.extend(self.managed.written(&copies));
        // Names are unique (`metrics::tests`), as the registry holds them.
        families.sort_by(|a, b| a.name.cmp(b.name));
        // Room for the last text and a little more (the next is about as long): the text is
        // written in place, not grown into.
        let last = self.rendered.load(Ordering::Relaxed);
        let mut text = Text::with_room(last + last / 64);
        for f in families {
            (f.write)(&mut text);
        }
        drop((copies, estate));
        let text = text.into_string();
        self.rendered.store(text.len(), Ordering::Relaxed);
        text
    }

    fn known(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn estate(&self) -> MutexGuard<'_, Estate> {
        self.estate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The estate's rows, in line with `policy` (a policy loaded since the last publish brings
    /// them in line at once: its volumes' series exist before the pass publishes).
    fn aligned(&self, policy: &Arc<Policy>) -> MutexGuard<'_, Estate> {
        let mut estate = self.estate();
        estate.retain(policy);
        estate
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
        let mut estate = self.estate();
        let window = estate.window(&c.window);
        let n = &mut window.cycles[result_slot(result)];
        *n = Some(n.unwrap_or(0).saturating_add(1));
        if result == CycleResult::Completed {
            let at = c.released_at.unwrap_or(now);
            window.last_success = Some(unix_seconds(at));
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
        self.estate()
            .count_conflict([cluster, svm, volume], conflict_slot(kind));
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
        self.estate()
            .set_recommended(cluster, svm, volume, i64::from(yes));
    }
}

/// A vector's family, encoded by the crate when the exposition reaches it.
fn encoded(mf: &prometheus::proto::MetricFamily) -> Written<'_> {
    Written::new(mf.name(), move |text| {
        // The registry gathers only families with series and a name: the encoder's checks.
        let encoded = TextEncoder::new()
            .encode_to_string(std::slice::from_ref(mf))
            .unwrap_or_else(|e| format!("# cannot encode {}: {e}\n", mf.name()));
        text.push_str(&encoded);
    })
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
mod estate;
mod family;
pub mod hazards;
mod publish;
#[cfg(test)]
mod tests;

pub use counted::Counted;
pub(crate) use family::{Family, Series, Text, Written};
pub use publish::publish;
