//! The managed schedules' metrics, on the agent's registry: snapshots taken by result, instants
//! coalesced, how long snapshots waited for a clone, rotations, and per copy the newest
//! snapshot, the deadline of the next one, whether one waits and how far the series is over its
//! count — plus the volumes left out and why. Labels are policy names and closed words; the
//! `schedule` label is the copy's prefix (unique per volume).

use std::collections::BTreeSet;
use std::sync::Mutex;

use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::{CopyKey, CopyStatus};
use crate::agent::decide::{ExcludeKind, TakeWhy};
use crate::agent::state::VolumeKey;

/// Results of a managed take (the `result` label of `snapwarden_managed_snapshots_total`).
pub const RESULTS: [&str; 5] = ["on_time", "deferred", "max_defer", "overdue", "failed"];
/// Deferral buckets: a minute to a day (`max_defer`'s bounds).
const DEFERRAL_BUCKETS: [f64; 10] = [
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0,
];
const COPY: [&str; 4] = ["cluster", "svm", "volume", "schedule"];

type LabelSets = BTreeSet<[String; 4]>;

/// The managed schedules' metrics.
pub struct ManagedMetrics {
    taken: IntCounterVec,
    coalesced: IntCounterVec,
    deferral: HistogramVec,
    rotated: IntCounterVec,
    last: GaugeVec,
    deadline: GaugeVec,
    waiting: IntGaugeVec,
    over_count: IntGaugeVec,
    excluded: IntGaugeVec,
    /// The copies (in the order of the last publish, with their gauges) and the exclusions'
    /// label sets at the last publish, so that those gone are removed.
    known: Mutex<(Vec<CopySeries>, LabelSets)>,
}

/// One copy's labels and gauges as of the last publish: a pass whose copies are those of the
/// last (the same labels in the same order) sets the gauges without looking their series up.
struct CopySeries {
    labels: [String; 4],
    /// Set (and so created) only once the copy has a newest snapshot or a deadline.
    last: Option<Gauge>,
    deadline: Option<Gauge>,
    waiting: IntGauge,
    over_count: IntGauge,
}

fn registered<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone()))
        .expect("a metric name registered once");
    c
}

fn copy_labels(key: &CopyKey) -> [&str; 4] {
    [
        &key.volume.cluster,
        &key.volume.svm,
        &key.volume.volume,
        &key.prefix,
    ]
}

fn seconds(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

impl ManagedMetrics {
    pub fn new(r: &Registry) -> ManagedMetrics {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            registered(
                r,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str| {
            registered(
                r,
                GaugeVec::new(Opts::new(name, help), &COPY).expect("valid metric"),
            )
        };
        let int_gauge = |name: &str, help: &str, labels: &[&str]| {
            registered(
                r,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let mut with_result = COPY.to_vec();
        with_result.push("result");
        ManagedMetrics {
            taken: counter(
                "snapwarden_managed_snapshots_total",
                "Managed snapshots snapwarden took (on_time, deferred, max_defer, overdue) or failed to take.",
                &with_result,
            ),
            coalesced: counter(
                "snapwarden_managed_instants_coalesced_total",
                "Instants of a managed copy that passed while its snapshot waited for a clone, covered by the one snapshot taken after.",
                &COPY,
            ),
            deferral: registered(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "snapwarden_managed_snapshot_deferral_seconds",
                        "How long managed snapshots waited for a clone to go after their instant.",
                    )
                    .buckets(DEFERRAL_BUCKETS.to_vec()),
                    &["cluster", "schedule"],
                )
                .expect("valid metric"),
            ),
            rotated: counter(
                "snapwarden_managed_rotations_total",
                "Snapshots of a managed series beyond its count: deleted, or refused (busy or locked, retried).",
                &with_result,
            ),
            last: gauge(
                "snapwarden_managed_snapshot_last_timestamp_seconds",
                "When the newest snapshot of a managed copy was taken (Unix seconds).",
            ),
            deadline: gauge(
                "snapwarden_managed_snapshot_deadline_timestamp_seconds",
                "When the next snapshot of a managed copy is taken at the latest: its instant plus max_defer (Unix seconds).",
            ),
            waiting: int_gauge(
                "snapwarden_managed_snapshot_waiting",
                "1 while a due managed snapshot waits for a clone to go.",
                &COPY,
            ),
            over_count: int_gauge(
                "snapwarden_managed_snapshots_over_count",
                "Snapshots of a managed series beyond its count (the oldest busy or locked).",
                &COPY,
            ),
            excluded: int_gauge(
                "snapwarden_volume_excluded",
                "1 while a policy volume is left out, by reason (unresolved, missing, double_schedule).",
                &["cluster", "svm", "volume", "reason"],
            ),
            known: Mutex::new(Default::default()),
        }
    }

    /// A managed snapshot was taken.
    pub fn taken(&self, key: &CopyKey, why: &TakeWhy, instants: u32) {
        let l = copy_labels(key);
        self.taken
            .with_label_values(&[l[0], l[1], l[2], l[3], why.as_str()])
            .inc();
        if matches!(why, TakeWhy::Deferred { .. } | TakeWhy::MaxDefer { .. }) {
            self.coalesced
                .with_label_values(&l)
                .inc_by(u64::from(instants.saturating_sub(1)));
            self.deferral
                .with_label_values(&[l[0], l[3]])
                .observe(why.waited().num_milliseconds() as f64 / 1000.0);
        }
    }

    /// A managed snapshot could not be taken.
    pub fn failed(&self, key: &CopyKey) {
        let l = copy_labels(key);
        self.taken
            .with_label_values(&[l[0], l[1], l[2], l[3], "failed"])
            .inc();
    }

    /// A rotation deleted a snapshot (`true`) or was refused.
    pub fn rotated(&self, key: &CopyKey, deleted: bool) {
        let l = copy_labels(key);
        let result = if deleted { "deleted" } else { "refused" };
        self.rotated
            .with_label_values(&[l[0], l[1], l[2], l[3], result])
            .inc();
    }

    /// Per copy gauges and the volumes left out, as of this pass; series of copies and
    /// exclusions that are gone are removed.
    pub fn publish(&self, copies: &[CopyStatus], excluded: &[(VolumeKey, ExcludeKind, String)]) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let same = known.0.len() == copies.len()
            && known
                .0
                .iter()
                .zip(copies)
                .all(|(k, c)| k.labels.iter().zip(c.key()).all(|(a, b)| a == b));
        if !same {
            let mut now_copies = Vec::with_capacity(copies.len());
            for c in copies {
                let l = c.key();
                for result in RESULTS {
                    self.taken
                        .with_label_values(&[l[0], l[1], l[2], l[3], result]);
                }
                self.coalesced.with_label_values(&l);
                now_copies.push(CopySeries {
                    labels: l.map(str::to_string),
                    last: None,
                    deadline: None,
                    waiting: self.waiting.with_label_values(&l),
                    over_count: self.over_count.with_label_values(&l),
                });
            }
            let labels: BTreeSet<&[String; 4]> = now_copies.iter().map(|c| &c.labels).collect();
            for gone in known.0.iter().filter(|k| !labels.contains(&k.labels)) {
                let l = gone.labels.each_ref().map(String::as_str);
                let _ = self.last.remove_label_values(&l);
                let _ = self.deadline.remove_label_values(&l);
                let _ = self.waiting.remove_label_values(&l);
                let _ = self.over_count.remove_label_values(&l);
                let _ = self.coalesced.remove_label_values(&l);
                for result in RESULTS.iter().chain(&["deleted", "refused"]) {
                    let _ = self
                        .taken
                        .remove_label_values(&[l[0], l[1], l[2], l[3], result]);
                    let _ = self
                        .rotated
                        .remove_label_values(&[l[0], l[1], l[2], l[3], result]);
                }
            }
            known.0 = now_copies;
        }
        for (series, c) in known.0.iter_mut().zip(copies) {
            let l = c.key();
            if let Some(t) = c.last_at {
                series
                    .last
                    .get_or_insert_with(|| self.last.with_label_values(&l))
                    .set(seconds(t));
            }
            if let Some(t) = c.deadline {
                series
                    .deadline
                    .get_or_insert_with(|| self.deadline.with_label_values(&l))
                    .set(seconds(t));
            }
            series.waiting.set(i64::from(c.waiting_since.is_some()));
            series
                .over_count
                .set(i64::try_from(c.over_count).unwrap_or(i64::MAX));
        }
        let mut now_excluded = BTreeSet::new();
        for (v, kind, _) in excluded {
            let l = [
                v.cluster.clone(),
                v.svm.clone(),
                v.volume.clone(),
                kind.as_str().to_string(),
            ];
            self.excluded
                .with_label_values(&[&*l[0], &*l[1], &*l[2], &*l[3]])
                .set(1);
            now_excluded.insert(l);
        }
        for gone in known.1.difference(&now_excluded) {
            let _ = self
                .excluded
                .remove_label_values(&[&*gone[0], &*gone[1], &*gone[2], &*gone[3]]);
        }
        known.1 = now_excluded;
    }
}
