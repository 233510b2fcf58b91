//! The agent's memory between passes: one record per open cycle (a typed state machine), the
//! occurrences already accounted for, the clusters as last discovered, and the FlexClone
//! recommendations in force — keyed by names, never by positions in a policy that a reload can
//! reorder.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};

use chrono::{DateTime, TimeDelta, Utc};

use super::cycle::{Cycle, CycleState};
use super::discovery::Inventory;
use super::managed::CopyKey;
use crate::config::Policy;

/// A volume by name: `cluster/svm/volume`, as windows and `status` name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VolumeKey {
    pub cluster: String,
    pub svm: String,
    pub volume: String,
}

impl VolumeKey {
    /// Policy volume number `vi` (`None` when out of range).
    pub fn of_policy(policy: &Policy, vi: usize) -> Option<VolumeKey> {
        let v = policy.volumes.get(vi)?;
        Some(VolumeKey {
            cluster: policy.clusters.get(v.cluster)?.name.clone(),
            svm: v.svm.clone(),
            volume: v.name.clone(),
        })
    }

    /// The volume `cluster/svm/volume`.
    pub fn new(cluster: &str, svm: &str, volume: &str) -> VolumeKey {
        VolumeKey {
            cluster: cluster.to_string(),
            svm: svm.to_string(),
            volume: volume.to_string(),
        }
    }

    /// The volume a cycle runs on.
    pub fn of_cycle(c: &Cycle) -> VolumeKey {
        VolumeKey::new(&c.cluster, &c.svm, &c.volume)
    }

    /// Its position in `policy`, if the policy names it.
    pub fn index_in(&self, policy: &Policy) -> Option<usize> {
        volume_index(policy, &self.cluster, &self.svm, &self.volume)
    }
}

impl fmt::Display for VolumeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.cluster, self.svm, self.volume)
    }
}

/// The policy volume at `cluster/svm/volume`.
pub fn volume_index(policy: &Policy, cluster: &str, svm: &str, volume: &str) -> Option<usize> {
    policy.volume_at(cluster, svm, volume)
}

/// One window occurrence on one volume: the identity of a cycle (the journal's unique key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Occurrence {
    pub window: String,
    pub volume: VolumeKey,
    /// The window's configured start this occurrence serves.
    pub start: DateTime<Utc>,
}

impl Occurrence {
    pub fn of_cycle(c: &Cycle) -> Occurrence {
        Occurrence {
            window: c.window.clone(),
            volume: VolumeKey::of_cycle(c),
            start: c.window_start,
        }
    }
}

/// An occurrence's identity by reference: window, cluster, SVM, volume and start. The set of
/// occurrences already started is asked about every planned lifecycle at every pass; asking
/// with borrowed names ([`OccurrenceRef`]) builds no owned [`Occurrence`] for it.
pub trait OccurrenceKey {
    fn parts(&self) -> (&str, &str, &str, &str, DateTime<Utc>);
}

impl OccurrenceKey for Occurrence {
    fn parts(&self) -> (&str, &str, &str, &str, DateTime<Utc>) {
        let v = &self.volume;
        (&self.window, &v.cluster, &v.svm, &v.volume, self.start)
    }
}

/// An occurrence named by borrowed texts: to look one up without building it, and what
/// `simulate` keys a backup's drawn duration by.
#[derive(Debug, Clone, Copy)]
pub struct OccurrenceRef<'a> {
    pub window: &'a str,
    pub cluster: &'a str,
    pub svm: &'a str,
    pub volume: &'a str,
    /// The window's configured start (not a shifted start).
    pub start: DateTime<Utc>,
}

impl OccurrenceRef<'_> {
    pub fn to_owned(&self) -> Occurrence {
        Occurrence {
            window: self.window.to_string(),
            volume: VolumeKey {
                cluster: self.cluster.to_string(),
                svm: self.svm.to_string(),
                volume: self.volume.to_string(),
            },
            start: self.start,
        }
    }
}

impl OccurrenceKey for OccurrenceRef<'_> {
    fn parts(&self) -> (&str, &str, &str, &str, DateTime<Utc>) {
        (self.window, self.cluster, self.svm, self.volume, self.start)
    }
}

// An occurrence hashes and compares by its parts alone, owned or borrowed alike (what lets
// `HashSet<Occurrence>` be asked with an `OccurrenceRef`).
impl Hash for Occurrence {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

impl Hash for dyn OccurrenceKey + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

impl PartialEq for dyn OccurrenceKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn OccurrenceKey + '_ {}

impl<'a> Borrow<dyn OccurrenceKey + 'a> for Occurrence {
    fn borrow(&self) -> &(dyn OccurrenceKey + 'a) {
        self
    }
}

/// A release attempt that must be made again, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub at: DateTime<Utc>,
    /// Attempts that failed so far, less one (the backoff's exponent).
    pub attempt: u32,
}

/// What an open cycle waits for: the loop's side of the cycle's state.
///
/// `Held`/`Hook` while the backup reads the clones, `Release`/`Retry` while releasing,
/// `Locked` while a scheduled snapshot pins the backing snapshot; a driver window's cycle is
/// `Tool` while its backup tool runs and `ToolEnded` until a listing settles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No hook: the clones are held until `until`, then released.
    Held { until: DateTime<Utc> },
    /// The backup hook runs; its end arrives as an event.
    Hook,
    /// Release at the next chance (the backup ended, a create failed, a restart).
    Release,
    /// A release attempt failed; the next one is due at `retry.at`.
    Retry(Retry),
    /// The backing snapshot's delete was refused (ONTAP error 1638555). `unpinned` once a listing
    /// taken after the clones went shows nothing pinning it; `retry` only wakes the loop.
    Locked {
        unpinned: bool,
        retry: Option<Retry>,
    },
    /// A driver window's tool runs.
    Tool,
    /// The tool stopped (its outcome is on the cycle): a listing settles the cycle, released or
    /// locked. The tool's snapshot is never deleted by snapwarden.
    ToolEnded,
}

impl Step {
    /// The first step of a cycle whose clones exist: `hook` or hold until `until`.
    pub fn backup(hook: bool, until: DateTime<Utc>) -> Step {
        if hook {
            Step::Hook
        } else {
            Step::Held { until }
        }
    }

    /// When the loop must look at the cycle again on its own, if ever.
    pub fn wake_at(self) -> Option<DateTime<Utc>> {
        match self {
            Step::Held { until } => Some(until),
            Step::Retry(r) => Some(r.at),
            Step::Locked { retry, .. } => retry.map(|r| r.at),
            _ => None,
        }
    }
}

/// An open cycle: the journaled cycle and what the loop waits for.
///
/// Invariant: `cycle.state` is not terminal; a driver cycle's step is `Tool` or `ToolEnded`,
/// any other cycle's is never either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub cycle: Cycle,
    pub step: Step,
    /// A listing must be taken after this instant (when creating stopped, or the tool ended)
    /// to settle the cycle's unconfirmed objects.
    pub settle_after: Option<DateTime<Utc>>,
}

impl Open {
    pub fn id(&self) -> &str {
        &self.cycle.id
    }
}

/// What the agent knows of one cluster between passes.
#[derive(Debug, Default)]
pub struct ClusterView {
    pub inventory: Option<Inventory>,
    pub reachable: bool,
    pub reached_once: bool,
    pub failures: u32,
    pub retry_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// How long the last whole read of the cluster took, by the agent's clock.
    pub whole_read_took: TimeDelta,
    /// The planned create a whole read due now waits for (it would still be running then).
    pub read_put_off: Option<DateTime<Utc>>,
}

/// A FlexClone recommendation in force.
#[derive(Debug, Clone, PartialEq)]
pub struct InForce {
    pub since: DateTime<Utc>,
    pub evidence: String,
    /// The space the volume's locked backing snapshots hold, as last evaluated (`None`: ONTAP
    /// reported none, or not evaluated since the agent started).
    pub locked_bytes: Option<u64>,
    pub licensed: Option<bool>,
    /// The switch to FlexClone (`use_when_licensed`) was journaled.
    pub switched: bool,
}

/// Released cycles kept in memory for conflict detection after release and "verify gone".
pub const RECENT_KEEP: TimeDelta = TimeDelta::hours(24);

/// Everything the agent carries from one pass to the next about cycles and recommendations.
#[derive(Debug, Default)]
pub struct Memory {
    /// Open cycles (not terminal), by id.
    pub open: BTreeMap<String, Open>,
    /// Released within [`RECENT_KEEP`], oldest first.
    pub recent: Recent,
    /// Occurrences already started, skipped or given up: never looked at again.
    pub started: crate::fasthash::HashSet<Occurrence>,
    /// Volumes left out at the last pass, in policy order, and why.
    pub excluded: Vec<(VolumeKey, super::decide::ExcludeKind, String)>,
    /// The next planned create (what wakes the loop for a start).
    pub next_create: Option<DateTime<Utc>>,
    /// Warnings given once (cleared daily, so they repeat).
    pub warned: HashSet<String>,
    /// Keys of conflicts the journal is known to hold (recorded, or found recorded), so that a
    /// conflict seen again at every pass is not written again; cleared daily with the prune.
    pub recorded: HashSet<String>,
    /// The size last journaled for each locked cycle's backing snapshot (the journal keeps an
    /// unchanged size as it is); cleared daily with the prune.
    pub locked_sizes: HashMap<String, u64>,
    /// FlexClone recommendations in force, as journaled.
    pub recommended: BTreeMap<VolumeKey, InForce>,
    /// Volumes with a new counting conflict since their recommendation was last decided.
    pub reconsider: BTreeSet<VolumeKey>,
    pub last_recommend_sweep: Option<DateTime<Utc>>,
    pub last_prune: Option<DateTime<Utc>>,
    /// Per managed copy: what the agent knows of its snapshots beyond the listings.
    pub managed: BTreeMap<CopyKey, CopyState>,
    /// The next managed instant (or deferral deadline) that wakes the loop.
    pub next_managed: Option<DateTime<Utc>>,
}

/// What the agent knows of one managed copy between passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyState {
    /// A due snapshot waits for a clone to go: the first instant it covers, and why it waits.
    pub waiting: Option<(DateTime<Utc>, String)>,
    /// The last snapshot the agent took (when, name): it covers the copy's instants until a
    /// listing shows it.
    pub last_taken: Option<(DateTime<Utc>, String)>,
    /// A create whose answer is unknown (name, asked at): a listing taken later settles it.
    pub pending: Option<(String, DateTime<Utc>)>,
    /// After a failed create: not tried again before this.
    pub retry_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Snapshots of the series deleted since the listing was taken (uuids).
    pub deleted: BTreeSet<String>,
}

/// The recently released cycles, oldest first, found by id without a scan (every pass asks
/// for the cycle of each of snapwarden's snapshots listed, and there are as many recent cycles
/// as volumes backed up in a day).
#[derive(Debug, Default)]
pub struct Recent {
    /// By order of arrival.
    cycles: BTreeMap<u64, Cycle>,
    /// The arrival numbers of each id's cycles (one, unless an id was remembered twice).
    by_id: HashMap<String, BTreeSet<u64>>,
    /// The arrival numbers of the cycles whose chain conflicts a listing may still show for the
    /// first time (the observe stage looks at these only, not at a day of backups every pass).
    unsettled: BTreeSet<u64>,
    /// How many recent cycles had each clone path, by cluster (a listing read before a release
    /// still shows the released clones; the observe stage asks this at every pass).
    clones: HashMap<String, HashMap<String, usize>>,
    next: u64,
}

impl Recent {
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Cycle> + Clone {
        self.cycles.values()
    }

    pub fn len(&self) -> usize {
        self.cycles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cycles.is_empty()
    }

    pub fn front(&self) -> Option<&Cycle> {
        self.cycles.values().next()
    }

    /// The oldest recent cycle of this id.
    pub fn get(&self, id: &str) -> Option<&Cycle> {
        let seq = self.by_id.get(id)?.first()?;
        self.cycles.get(seq)
    }

    /// Whether a recent cycle on `cluster` had the clone at `path`.
    pub fn had_clone(&self, cluster: &str, path: &str) -> bool {
        self.clones
            .get(cluster)
            .is_some_and(|paths| paths.contains_key(path))
    }

    pub fn push_back(&mut self, cycle: Cycle) {
        self.by_id
            .entry(cycle.id.clone())
            .or_default()
            .insert(self.next);
        let paths = self.clones.entry(cycle.cluster.clone()).or_default();
        for k in &cycle.clones {
            *paths.entry(k.path.clone()).or_default() += 1;
        }
        self.cycles.insert(self.next, cycle);
        self.unsettled.insert(self.next);
        self.next += 1;
    }

    pub fn pop_front(&mut self) -> Option<Cycle> {
        let (seq, cycle) = self.cycles.pop_first()?;
        self.forget(&cycle, seq);
        Some(cycle)
    }

    /// Takes out the oldest recent cycle of this id.
    pub fn remove(&mut self, id: &str) -> Option<Cycle> {
        let seq = *self.by_id.get(id)?.first()?;
        let cycle = self.cycles.remove(&seq)?;
        self.forget(&cycle, seq);
        Some(cycle)
    }

    /// The cycles whose chain conflicts a listing may still show for the first time, oldest
    /// first.
    pub fn unsettled(&self) -> impl Iterator<Item = &Cycle> + Clone {
        self.unsettled.iter().filter_map(|seq| self.cycles.get(seq))
    }

    /// Every chain conflict of the cycle `id` (as it ended: its clones gone at
    /// `clones_deleted_at`) is journaled: no listing can show a new one.
    pub fn settle(&mut self, id: &str, clones_deleted_at: Option<DateTime<Utc>>) {
        let Some(seqs) = self.by_id.get(id) else {
            return;
        };
        for seq in seqs {
            if self
                .cycles
                .get(seq)
                .is_some_and(|c| c.clones_deleted_at == clones_deleted_at)
            {
                self.unsettled.remove(seq);
            }
        }
    }

    fn forget(&mut self, cycle: &Cycle, seq: u64) {
        self.unsettled.remove(&seq);
        if let Some(seqs) = self.by_id.get_mut(&cycle.id) {
            seqs.remove(&seq);
            if seqs.is_empty() {
                self.by_id.remove(&cycle.id);
            }
        }
        if let Some(paths) = self.clones.get_mut(&cycle.cluster) {
            for k in &cycle.clones {
                if let Some(n) = paths.get_mut(&k.path) {
                    *n -= 1;
                    if *n == 0 {
                        paths.remove(&k.path);
                    }
                }
            }
            if paths.is_empty() {
                self.clones.remove(&cycle.cluster);
            }
        }
    }
}

impl<'a> IntoIterator for &'a Recent {
    type Item = &'a Cycle;
    type IntoIter = std::collections::btree_map::Values<'a, u64, Cycle>;

    fn into_iter(self) -> Self::IntoIter {
        self.cycles.values()
    }
}

impl Memory {
    /// A cycle that ended: kept in `recent` while it may still show conflicts; older ones go.
    pub fn remember(&mut self, cycle: Cycle, now: DateTime<Utc>) {
        self.recent.push_back(cycle);
        while self
            .recent
            .front()
            .is_some_and(|c| c.released_at.is_none_or(|t| now - t > RECENT_KEEP))
        {
            self.recent.pop_front();
        }
    }

    /// An ended cycle whose every chain conflict a listing has shown (`keys`): settled once the
    /// journal is known to hold them all; a conflict the journal refused keeps it looked at.
    pub fn conflicts_seen(
        &mut self,
        cycle: &str,
        clones_deleted_at: Option<DateTime<Utc>>,
        keys: &[String],
    ) {
        if keys.iter().all(|k| self.recorded.contains(k)) {
            self.recent.settle(cycle, clones_deleted_at);
        }
    }

    /// An open or recent cycle by id.
    pub fn cycle(&self, id: &str) -> Option<&Cycle> {
        self.open
            .get(id)
            .map(|o| &o.cycle)
            .or_else(|| self.recent.get(id))
    }

    /// Open cycles that are locked (for metrics and status).
    pub fn locked(&self) -> impl Iterator<Item = &Cycle> {
        self.open
            .values()
            .map(|o| &o.cycle)
            .filter(|c| c.state == CycleState::Locked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_started_set_is_asked_by_borrowed_names_exactly_as_by_an_owned_occurrence() {
        let at: DateTime<Utc> = "2027-01-01T01:00:00Z".parse().unwrap();
        let owned = |w: &str, c: &str, s: &str, v: &str, t| Occurrence {
            window: w.into(),
            volume: VolumeKey {
                cluster: c.into(),
                svm: s.into(),
                volume: v.into(),
            },
            start: t,
        };
        let started: HashSet<Occurrence> = [
            owned("nightly", "c1", "svm1", "vol1", at),
            owned("nightly", "c1", "svm1", "vol2", at),
        ]
        .into();
        let asks = [
            ("nightly", "c1", "svm1", "vol1", at),
            ("nightly", "c1", "svm1", "vol2", at),
            ("nightly", "c1", "svm1", "vol3", at),
            ("nightly", "c1", "svm2", "vol1", at),
            ("nightly", "c2", "svm1", "vol1", at),
            ("weekly", "c1", "svm1", "vol1", at),
            ("nightly", "c1", "svm1", "vol1", at + TimeDelta::days(1)),
            // Names that run into each other if hashed as one text.
            ("nightlyc", "1", "svm1", "vol1", at),
            ("nightly", "c1svm1", "", "vol1", at),
        ];
        let mut found = 0;
        for (w, c, s, v, t) in asks {
            let by_ref = OccurrenceRef {
                window: w,
                cluster: c,
                svm: s,
                volume: v,
                start: t,
            };
            // The oracle: the owned occurrence, asked the usual way.
            let expected = started.contains(&owned(w, c, s, v, t));
            assert_eq!(
                started.contains(&by_ref as &dyn OccurrenceKey),
                expected,
                "{w} {c}/{s}/{v} {t}"
            );
            found += usize::from(expected);
        }
        assert_eq!(found, 2, "both started occurrences are asked for");
    }

    #[test]
    fn a_step_wakes_the_loop_only_when_it_waits_for_an_instant() {
        let at: DateTime<Utc> = "2027-01-01T01:00:00Z".parse().unwrap();
        let retry = Retry { at, attempt: 2 };
        assert_eq!(Step::Held { until: at }.wake_at(), Some(at));
        assert_eq!(Step::Retry(retry).wake_at(), Some(at));
        assert_eq!(
            Step::Locked {
                unpinned: false,
                retry: Some(retry)
            }
            .wake_at(),
            Some(at)
        );
        for s in [
            Step::Hook,
            Step::Release,
            Step::Tool,
            Step::ToolEnded,
            Step::Locked {
                unpinned: true,
                retry: None,
            },
        ] {
            assert_eq!(s.wake_at(), None, "{s:?}");
        }
        assert_eq!(Step::backup(true, at), Step::Hook);
        assert_eq!(Step::backup(false, at), Step::Held { until: at });
    }

    #[test]
    fn recent_cycles_older_than_a_day_are_forgotten() {
        let t = |s: &str| -> DateTime<Utc> { s.parse().unwrap() };
        let mut m = Memory::default();
        let released = |id: &str, at: &str| Cycle {
            released_at: Some(t(at)),
            ..Cycle::sample(id, t("2027-01-01T00:00:00Z"))
        };
        m.remember(
            released("a", "2027-01-01T01:00:00Z"),
            t("2027-01-01T02:00:00Z"),
        );
        m.remember(
            released("b", "2027-01-01T03:00:00Z"),
            t("2027-01-02T02:00:00Z"),
        );
        // a was released 25 h before b ended: gone; b is 23 h old: kept.
        let ids: Vec<&str> = m.recent.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["b"]);
        m.remember(
            released("c", "2027-01-02T04:00:00Z"),
            t("2027-01-02T04:00:00Z"),
        );
        let ids: Vec<&str> = m.recent.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c"], "b is 25 h old now");
        assert!(m.cycle("c").is_some() && m.cycle("b").is_none());
    }

    /// The indexed list against a plain queue searched front to back (what it replaced), over
    /// random pushes (ids repeating), pops and removals by id.
    #[test]
    fn recent_cycles_are_found_as_a_front_to_back_search_finds_them() {
        let at: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut indexed = Recent::default();
        let mut plain: std::collections::VecDeque<Cycle> = Default::default();
        for step in 0..5_000 {
            let id = format!("c{}", next(40));
            match next(4) {
                0 | 1 => {
                    let mut c = Cycle::sample(&id, at);
                    c.window = format!("w{step}");
                    // A few clone paths on two clusters, shared between cycles now and then.
                    c.cluster = format!("k{}", next(2));
                    c.clones = (0..next(3))
                        .map(|_| super::super::cycle::CloneLun {
                            source: "/vol/v/lun".into(),
                            path: format!("/vol/v/clone{}", next(8)),
                        })
                        .collect();
                    indexed.push_back(c.clone());
                    plain.push_back(c);
                }
                2 => assert_eq!(indexed.pop_front(), plain.pop_front()),
                _ => {
                    let pos = plain.iter().position(|c| c.id == id);
                    let expected = pos.and_then(|p| plain.remove(p));
                    assert_eq!(indexed.remove(&id), expected, "{id}");
                }
            }
            let probe = format!("c{}", next(40));
            assert_eq!(indexed.get(&probe), plain.iter().find(|c| c.id == probe));
            assert_eq!(indexed.front(), plain.front());
            assert!(indexed.iter().eq(plain.iter()));
            for cluster in ["k0", "k1", "k2"] {
                for path in (0..9).map(|i| format!("/vol/v/clone{i}")) {
                    let scanned = plain
                        .iter()
                        .any(|c| c.cluster == cluster && c.clones.iter().any(|k| k.path == path));
                    assert_eq!(
                        indexed.had_clone(cluster, &path),
                        scanned,
                        "{cluster} {path}"
                    );
                }
            }
        }
    }

    /// An ended cycle leaves the unsettled ones only when the journal is known to hold every
    /// conflict its listing showed, and only for the end it was seen with; it stays recent.
    #[test]
    fn an_ended_cycle_is_settled_only_once_its_conflicts_are_journaled() {
        let at: DateTime<Utc> = "2027-01-01T01:00:00Z".parse().unwrap();
        let gone = Some(at + TimeDelta::minutes(30));
        let mut m = Memory::default();
        let ended = |id: &str, released: DateTime<Utc>| {
            let mut c = Cycle::sample(id, at);
            c.released_at = Some(released);
            c
        };
        let mut c = ended("c1", at + TimeDelta::minutes(40));
        c.clones_deleted_at = gone;
        m.remember(c, at + TimeDelta::hours(1));
        m.remember(
            ended("c2", at + TimeDelta::minutes(40)),
            at + TimeDelta::hours(1),
        );
        let unsettled =
            |m: &Memory| -> Vec<String> { m.recent.unsettled().map(|c| c.id.clone()).collect() };
        assert_eq!(unsettled(&m), ["c1", "c2"]);
        let keys = vec![
            "chain:c1:hourly.1".to_string(),
            "chain:c1:hourly.2".to_string(),
        ];
        // The journal refused the second: looked at again.
        m.recorded.insert(keys[0].clone());
        m.conflicts_seen("c1", gone, &keys);
        assert_eq!(unsettled(&m), ["c1", "c2"]);
        m.recorded.insert(keys[1].clone());
        // Seen with another end of its clones: not this cycle as it ended.
        m.conflicts_seen("c1", None, &keys);
        assert_eq!(unsettled(&m), ["c1", "c2"]);
        m.conflicts_seen("c1", gone, &keys);
        assert_eq!(unsettled(&m), ["c2"]);
        assert!(m.recent.get("c1").is_some(), "still recent");
        // c2, still unsettled, is forgotten with the day: nothing left behind.
        m.remember(
            ended("c3", at + TimeDelta::days(3)),
            at + TimeDelta::days(3),
        );
        assert_eq!(unsettled(&m), ["c3"]);
        assert_eq!(m.recent.len(), 1);
    }
}
