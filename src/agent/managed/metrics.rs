//! The managed schedules' metrics, on the agent's registry: snapshots taken by result, instants
//! coalesced, how long snapshots waited for a clone, rotations, and per copy the newest
//! snapshot, the deadline of the next one, whether one waits and how far the series is over its
//! count — plus the volumes left out and why. Labels are policy names and closed words; the
//! `schedule` label is the copy's prefix (unique per volume).
//!
//! The series per copy and per volume left out grow with the estate: they are one row of plain
//! values per copy (its labels held once), written as text straight from the rows when
//! `/metrics` is read ([`ManagedMetrics::written`]).

use std::cmp::Ordering;
use std::sync::{Mutex, MutexGuard};

use prometheus::{HistogramOpts, HistogramVec, Registry};

use super::{CopyKey, CopyStatus};
use crate::agent::decide::{ExcludeKind, TakeWhy};
use crate::agent::metrics::{Family, Series, Text, Written};
use crate::agent::state::VolumeKey;

/// Results of a managed take (the `result` label of `snapwarden_managed_snapshots_total`).
pub const RESULTS: [&str; 5] = ["on_time", "deferred", "max_defer", "overdue", "failed"];
/// Results of a rotation (the `result` label of `snapwarden_managed_rotations_total`).
const ROTATIONS: [&str; 2] = ["deleted", "refused"];
/// Deferral buckets: a minute to a day (`max_defer`'s bounds).
const DEFERRAL_BUCKETS: [f64; 10] = [
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0,
];
const COPY: [&str; 4] = ["cluster", "svm", "volume", "schedule"];
const COPY_RESULT: [&str; 5] = ["cluster", "svm", "volume", "schedule", "result"];

/// The managed schedules' metrics.
pub struct ManagedMetrics {
    deferral: HistogramVec,
    copies: Mutex<Copies>,
    families: Families,
}

/// The series of every copy and exclusion.
#[derive(Default)]
pub struct Copies {
    /// One row per copy with series, in label order (unique labels).
    rows: Vec<CopyRow>,
    /// `(cluster, svm, volume, reason)` of the volumes left out at the last publish, in order,
    /// without repeats.
    excluded: Vec<[String; 4]>,
}

/// One copy's series. A series is `None` until it is first set or counted.
#[derive(Debug, Clone, Default)]
struct CopyRow {
    /// `cluster`, `svm`, `volume`, `schedule` (the copy's prefix).
    labels: [String; 4],
    /// The copy was in the last publish: its series go when a publish no longer has it. A row
    /// only a take or a rotation made (a copy not published yet) stays until then.
    published: bool,
    /// By result ([`RESULTS`]).
    taken: [Option<u64>; RESULTS.len()],
    /// By result ([`ROTATIONS`]).
    rotated: [Option<u64>; ROTATIONS.len()],
    coalesced: Option<u64>,
    last: Option<f64>,
    deadline: Option<f64>,
    waiting: Option<i64>,
    over_count: Option<i64>,
}

fn copy_labels(key: &CopyKey) -> [&str; 4] {
    [
        &key.volume.cluster,
        &key.volume.svm,
        &key.volume.volume,
        &key.prefix,
    ]
}

/// Orders a row's labels against a label set.
fn cmp_labels(row: &[String; 4], labels: &[&str; 4]) -> Ordering {
    row.iter().map(String::as_str).cmp(labels.iter().copied())
}

fn seconds(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn add(n: &mut Option<u64>, by: u64) {
    *n = Some(n.unwrap_or(0).saturating_add(by));
}

impl Copies {
    /// The row of the copy labelled `l`, made if it has none.
    fn row(&mut self, l: [&str; 4]) -> &mut CopyRow {
        let at = match self.rows.binary_search_by(|r| cmp_labels(&r.labels, &l)) {
            Ok(at) => at,
            Err(at) => {
                let row = CopyRow {
                    labels: l.map(str::to_string),
                    ..CopyRow::default()
                };
                self.rows.insert(at, row);
                at
            }
        };
        &mut self.rows[at]
    }
}

impl CopyRow {
    /// The gauges of a published copy; its counters exist from then on, at 0 until counted.
    fn publish(&mut self, c: &CopyStatus) {
        for n in self.taken.iter_mut().chain([&mut self.coalesced]) {
            n.get_or_insert(0);
        }
        if let Some(t) = c.last_at {
            self.last = Some(seconds(t));
        }
        if let Some(t) = c.deadline {
            self.deadline = Some(seconds(t));
        }
        self.waiting = Some(i64::from(c.waiting_since.is_some()));
        self.over_count = Some(i64::try_from(c.over_count).unwrap_or(i64::MAX));
    }
}

impl ManagedMetrics {
    pub fn new(r: &Registry) -> ManagedMetrics {
        let deferral = HistogramVec::new(
            HistogramOpts::new(
                "snapwarden_managed_snapshot_deferral_seconds",
                "How long managed snapshots waited for a clone to go after their instant.",
            )
            .buckets(DEFERRAL_BUCKETS.to_vec()),
            &["cluster", "schedule"],
        )
        .expect("valid metric");
        r.register(Box::new(deferral.clone()))
            .expect("a metric name registered once");
        ManagedMetrics {
            deferral,
            copies: Mutex::default(),
            families: Families::new(),
        }
    }

    /// The copies' and exclusions' rows, for a scrape to write ([`ManagedMetrics::written`]).
    pub(crate) fn copies(&self) -> MutexGuard<'_, Copies> {
        self.copies.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A managed snapshot was taken.
    pub fn taken(&self, key: &CopyKey, why: &TakeWhy, instants: u32) {
        let l = copy_labels(key);
        let slot = match why {
            TakeWhy::OnTime => 0,
            TakeWhy::Deferred { .. } => 1,
            TakeWhy::MaxDefer { .. } => 2,
            TakeWhy::Overdue { .. } => 3,
        };
        let mut copies = self.copies();
        let row = copies.row(l);
        add(&mut row.taken[slot], 1);
        if matches!(why, TakeWhy::Deferred { .. } | TakeWhy::MaxDefer { .. }) {
            add(&mut row.coalesced, u64::from(instants.saturating_sub(1)));
            self.deferral
                .with_label_values(&[l[0], l[3]])
                .observe(why.waited().num_milliseconds() as f64 / 1000.0);
        }
    }

    /// A managed snapshot could not be taken.
    pub fn failed(&self, key: &CopyKey) {
        add(&mut self.copies().row(copy_labels(key)).taken[4], 1);
    }

    /// A rotation deleted a snapshot (`true`) or was refused.
    pub fn rotated(&self, key: &CopyKey, deleted: bool) {
        let slot = usize::from(!deleted);
        add(&mut self.copies().row(copy_labels(key)).rotated[slot], 1);
    }

    /// Per copy gauges and the volumes left out, as of this pass; series of copies and
    /// exclusions that are gone are removed.
    pub fn publish(&self, copies: &[CopyStatus], excluded: &[(VolumeKey, ExcludeKind, String)]) {
        let mut held = self.copies();
        let held = &mut *held;
        let mut seen = vec![false; held.rows.len()];
        let mut added: Vec<CopyRow> = Vec::new();
        for c in copies {
            let l = c.key();
            match held.rows.binary_search_by(|r| cmp_labels(&r.labels, &l)) {
                Ok(at) => {
                    seen[at] = true;
                    held.rows[at].publish(c);
                }
                Err(_) => {
                    let mut row = CopyRow {
                        labels: l.map(str::to_string),
                        ..CopyRow::default()
                    };
                    row.publish(c);
                    added.push(row);
                }
            }
        }
        let mut seen = seen.into_iter();
        held.rows.retain_mut(|row| {
            let now = seen.next().unwrap_or(false);
            let keep = now || !row.published;
            row.published = now;
            keep
        });
        if !added.is_empty() {
            for row in &mut added {
                row.published = true;
            }
            held.rows.append(&mut added);
            held.rows.sort_by(|a, b| a.labels.cmp(&b.labels));
            held.rows.dedup_by(|a, b| a.labels == b.labels);
        }
        let mut now: Vec<[&str; 4]> = excluded
            .iter()
            .map(|(v, kind, _)| [&*v.cluster, &*v.svm, &*v.volume, kind.as_str()])
            .collect();
        now.sort_unstable();
        now.dedup();
        let unchanged = held.excluded.len() == now.len()
            && held
                .excluded
                .iter()
                .zip(&now)
                .all(|(a, b)| cmp_labels(a, b).is_eq());
        if !unchanged {
            held.excluded = now.into_iter().map(|l| l.map(str::to_string)).collect();
        }
    }
}

/// The families of the copies' and exclusions' series, with their names, help and labels as
/// the dashboards, alert rules and `docs/metrics-and-alerts.md` know them.
struct Families {
    taken: Family,
    coalesced: Family,
    rotated: Family,
    last: Family,
    deadline: Family,
    waiting: Family,
    over_count: Family,
    excluded: Family,
}

impl Families {
    fn new() -> Families {
        Families {
            taken: Family::counter(
                "snapwarden_managed_snapshots_total",
                "Managed snapshots snapwarden took (on_time, deferred, max_defer, overdue) or failed to take.",
                &COPY_RESULT,
            ),
            coalesced: Family::counter(
                "snapwarden_managed_instants_coalesced_total",
                "Instants of a managed copy that passed while its snapshot waited for a clone, covered by the one snapshot taken after.",
                &COPY,
            ),
            rotated: Family::counter(
                "snapwarden_managed_rotations_total",
                "Snapshots of a managed series beyond its count: deleted, or refused (busy or locked, retried).",
                &COPY_RESULT,
            ),
            last: Family::gauge(
                "snapwarden_managed_snapshot_last_timestamp_seconds",
                "When the newest snapshot of a managed copy was taken (Unix seconds).",
                &COPY,
            ),
            deadline: Family::gauge(
                "snapwarden_managed_snapshot_deadline_timestamp_seconds",
                "When the next snapshot of a managed copy is taken at the latest: its instant plus max_defer (Unix seconds).",
                &COPY,
            ),
            waiting: Family::gauge(
                "snapwarden_managed_snapshot_waiting",
                "1 while a due managed snapshot waits for a clone to go.",
                &COPY,
            ),
            over_count: Family::gauge(
                "snapwarden_managed_snapshots_over_count",
                "Snapshots of a managed series beyond its count (the oldest busy or locked).",
                &COPY,
            ),
            excluded: Family::gauge(
                "snapwarden_volume_excluded",
                "1 while a policy volume is left out, by reason (unresolved, missing, double_schedule).",
                &["cluster", "svm", "volume", "reason"],
            ),
        }
    }
}

impl Copies {
    fn labels(&self, row: usize) -> [&str; 4] {
        self.rows[row].labels.each_ref().map(String::as_str)
    }

    /// A family of one series per copy that has a value.
    fn per_copy(&self, f: &Family, value: fn(&CopyRow) -> Option<f64>, out: &mut Text) {
        let rows = self.rows.iter().enumerate();
        let series = rows.filter(|(_, row)| value(row).is_some());
        f.write(
            out,
            Series::list(self.rows.len(), series.map(|(at, _)| Series::new(at, 0))),
            |s| self.labels(s.row),
            |s| value(&self.rows[s.row]).unwrap_or(0.0),
        );
    }

    /// A counter by result: `counts` picks a row's counts, `results` names them.
    fn by_result<const N: usize>(
        &self,
        f: &Family,
        counts: fn(&CopyRow) -> &[Option<u64>; N],
        results: &[&'static str; N],
        out: &mut Text,
    ) {
        let mut series = Vec::with_capacity(self.rows.len() * N);
        for (at, row) in self.rows.iter().enumerate() {
            let counted = counts(row).iter().enumerate().filter(|(_, n)| n.is_some());
            series.extend(counted.map(|(result, _)| Series::new(at, result)));
        }
        f.write(
            out,
            series,
            |s| {
                let [cluster, svm, volume, schedule] = self.labels(s.row);
                [cluster, svm, volume, schedule, results[s.of]]
            },
            |s| counts(&self.rows[s.row])[s.of].unwrap_or(0) as f64,
        );
    }

    fn excluded(&self, f: &Family, out: &mut Text) {
        let series = (0..self.excluded.len()).map(|at| Series::new(at, 0));
        f.write(
            out,
            series.collect(),
            |s| self.excluded[s.row].each_ref().map(String::as_str),
            |_| 1.0,
        );
    }
}

impl ManagedMetrics {
    /// The copies' and exclusions' families, each written from `copies` (as
    /// [`ManagedMetrics::copies`] gave them) when the exposition reaches it.
    pub(crate) fn written<'a>(&'a self, copies: &'a Copies) -> Vec<Written<'a>> {
        let f = &self.families;
        let c = copies;
        let per_copy = |family: &'a Family, value: fn(&CopyRow) -> Option<f64>| {
            Written::new(family.name(), move |out| c.per_copy(family, value, out))
        };
        vec![
            Written::new(f.taken.name(), move |out| {
                c.by_result(&f.taken, |r| &r.taken, &RESULTS, out)
            }),
            per_copy(&f.coalesced, |r| r.coalesced.map(|n| n as f64)),
            Written::new(f.rotated.name(), move |out| {
                c.by_result(&f.rotated, |r| &r.rotated, &ROTATIONS, out)
            }),
            per_copy(&f.last, |r| r.last),
            per_copy(&f.deadline, |r| r.deadline),
            per_copy(&f.waiting, |r| r.waiting.map(|n| n as f64)),
            per_copy(&f.over_count, |r| r.over_count.map(|n| n as f64)),
            Written::new(f.excluded.name(), move |out| c.excluded(&f.excluded, out)),
        ]
    }
}
