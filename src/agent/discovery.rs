//! Discovery: what a cluster says about itself and about the volumes, LUNs, schedules, licenses
//! and snapshots the policy names — one read-only round per cluster.
//!
//! `run` reads a whole cluster (one bulk snapshot listing and one LUN listing) when its refresh
//! asks for it and otherwise re-reads the volumes that changed (`reread`);
//! `check` and `plan` use the same code when the policy needs cluster facts.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};

use crate::agent::observe::{has_prefix, lookalike_lun};
use crate::config::Policy;
use crate::fasthash::HashMap;
use crate::ontap::{
    ClusterInfo, LicenseState, LunInfo, Ontap, OntapError, ScheduleInfo, SnapshotInfo,
    SnapshotPolicyInfo, VolumeInfo, VolumeRef,
};
use crate::planner::{Observed, ObservedCluster};

/// One cluster as discovery saw it.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub info: ClusterInfo,
    pub volumes: Vec<VolumeInfo>,
    pub snapshot_policies: Vec<SnapshotPolicyInfo>,
    pub schedules: Vec<ScheduleInfo>,
    pub flexclone: LicenseState,
    pub snaprestore: LicenseState,
    /// Snapshots and LUNs, per volume; shared by the inventory's clones (the audit's copy of a
    /// pass's inventories costs no second listing), copied only by a change made while one is
    /// alive.
    listing: Arc<Listing>,
    /// When the listing was last brought up to date: the whole cluster, or (after a targeted
    /// re-read) the volumes that may have changed since (agent clock, before the first call).
    pub at: DateTime<Utc>,
    /// When the whole cluster was last read (what `observe_interval` counts from).
    pub full_at: DateTime<Utc>,
    /// Changes (to a value never used before) whenever what the listing says of the cluster,
    /// volumes, snapshot policies, schedules or LUNs other than clones changed: a whole read
    /// that says otherwise than the one before ([`Inventory::keep_presence_of`]), or a re-read
    /// volume whose LUNs are not the ones it had. What is derived from those alone is kept
    /// while it stays.
    pub presence: u64,
    /// Where each volume is in `volumes`, SVM first then name, made at the first look-up: a
    /// search per look-up made a pass that releases or starts many cycles quadratic. Checked
    /// at each use, so a list changed since (tests edit it) is searched instead.
    volume_at: OnceLock<HashMap<String, HashMap<String, usize>>>,
}

/// A presence no inventory had before.
fn next_presence() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// An inventory's snapshots and LUNs kept per (SVM, volume), in the order ONTAP listed the
/// volumes, so that a pass reads one volume's without a search and a re-read of one volume
/// replaces only its own (a listing rebuilt per pass made a pass cost the whole estate).
///
/// A whole read's snapshots stay the one list they were read into when it holds each volume's
/// together (ONTAP lists volume by volume), each volume a range of it: grouping them into a
/// list per volume held them twice while it ran, and a list grown one push at a time holds up
/// to twice the room.
#[derive(Debug, Clone, Default)]
struct Listing {
    /// The whole read's snapshots, each volume's together.
    read: Vec<SnapshotInfo>,
    volumes: Vec<VolumeListing>,
    /// Position in `volumes`, SVM first then volume name (look-ups borrow, never allocate).
    position: HashMap<String, HashMap<String, usize>>,
    /// The volumes holding a snapshot or a LUN that looks like snapwarden's, for the last
    /// prefix asked: what a pass looks through for them instead of every volume. Kept up to
    /// date by a re-read.
    marked: OnceLock<Marked>,
    /// The volumes holding a snapshot that matches a set of patterns, for the last set asked:
    /// what a pass looks through for foreign snapshots. Kept up to date by a re-read.
    matching: OnceLock<Matching>,
}

/// Which volumes of a listing hold a snapshot matching a set of patterns.
#[derive(Debug, Clone)]
struct Matching {
    key: String,
    patterns: Vec<regex::Regex>,
    volumes: BTreeSet<usize>,
}

/// Whether a volume's listing holds a snapshot whose name matches one of `patterns`.
fn matches(v: &VolumeListing, read: &[SnapshotInfo], patterns: &[regex::Regex]) -> bool {
    v.snapshots(read)
        .iter()
        .any(|s| patterns.iter().any(|p| p.is_match(&s.name)))
}

/// Which volumes of a listing hold something with a prefix.
#[derive(Debug, Clone)]
struct Marked {
    prefix: String,
    volumes: BTreeSet<usize>,
}

/// Whether a volume's listing holds a snapshot with `prefix` or a LUN whose leaf carries it.
fn marks(v: &VolumeListing, read: &[SnapshotInfo], prefix: &str) -> bool {
    v.snapshots(read)
        .iter()
        .any(|s| has_prefix(&s.name, prefix))
        || v.luns
            .iter()
            .any(|l| lookalike_lun(&l.name, &l.volume_name, prefix))
}

#[derive(Debug, Clone)]
struct VolumeListing {
    snapshots: Snapshots,
    luns: Vec<LunInfo>,
    /// Positions of the snapshots whose name carries a prefix, for the last prefix asked.
    prefixed: OnceLock<Picked>,
    /// Positions of the snapshots matching a set of patterns, for the last set asked.
    matching: OnceLock<Picked>,
}

/// Where a volume's snapshots are.
#[derive(Debug, Clone)]
enum Snapshots {
    /// A range of the listing's whole read.
    Read(Range<usize>),
    /// A list of its own: re-read alone, or listed apart from the rest of its volume.
    Own(Vec<SnapshotInfo>),
}

/// Which of a volume's snapshots a filter picked, and the filter's key.
#[derive(Debug, Clone)]
struct Picked {
    key: String,
    at: Vec<usize>,
}

impl VolumeListing {
    fn new(snapshots: Snapshots, luns: Vec<LunInfo>) -> VolumeListing {
        VolumeListing {
            snapshots,
            luns,
            prefixed: OnceLock::new(),
            matching: OnceLock::new(),
        }
    }

    /// Its snapshots, `read` being the listing's whole read.
    fn snapshots<'a>(&'a self, read: &'a [SnapshotInfo]) -> &'a [SnapshotInfo] {
        match &self.snapshots {
            Snapshots::Read(range) => &read[range.clone()],
            Snapshots::Own(own) => own,
        }
    }

    /// The snapshots `keep` picks, remembered under `key` (a listing never changes in place:
    /// a re-read replaces the whole volume).
    fn picked<'a>(
        &'a self,
        read: &'a [SnapshotInfo],
        memo: &'a OnceLock<Picked>,
        key: &str,
        keep: impl Fn(&SnapshotInfo) -> bool + 'a,
    ) -> impl Iterator<Item = &'a SnapshotInfo> + 'a {
        let snapshots = self.snapshots(read);
        let p = memo.get_or_init(|| Picked {
            key: key.to_string(),
            at: (0..snapshots.len())
                .filter(|&i| keep(&snapshots[i]))
                .collect(),
        });
        if p.key == key {
            Either::Kept(p.at.iter().map(move |&i| &snapshots[i]))
        } else {
            Either::All(snapshots.iter().filter(move |s| keep(s)))
        }
    }
}

/// One of two iterators over the same items: what a memo kept, or all of them filtered again
/// (a pass walks these per volume; collecting them allocated a list per volume per walk).
enum Either<K, A> {
    Kept(K),
    All(A),
}

impl<T, K: Iterator<Item = T>, A: Iterator<Item = T>> Iterator for Either<K, A> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            Either::Kept(k) => k.next(),
            Either::All(a) => a.next(),
        }
    }
}

impl Listing {
    /// Groups a whole cluster's listings by volume, keeping the order of first appearance.
    fn of(mut snapshots: Vec<SnapshotInfo>, luns: Vec<LunInfo>) -> Listing {
        let mut listing = Listing::default();
        // A volume's snapshots come one after another: each is given the slot of the one
        // before it when they share a volume, without a look-up.
        let mut last: Option<(&str, &str, usize)> = None;
        let slots: Vec<usize> = snapshots
            .iter()
            .map(|s| match last {
                Some((svm, volume, i)) if svm == &*s.svm && volume == &*s.volume_name => i,
                _ => {
                    let i = listing.slot(&s.svm, &s.volume_name);
                    last = Some((&s.svm, &s.volume_name, i));
                    i
                }
            })
            .collect();
        // Volumes are numbered in order of first appearance: the list holds each volume's
        // snapshots together exactly when the numbers never go down.
        if slots.windows(2).all(|w| w[0] <= w[1]) {
            let mut from = 0;
            for run in slots.chunk_by(|a, b| a == b) {
                let to = from + run.len();
                listing.volumes[run[0]].snapshots = Snapshots::Read(from..to);
                from = to;
            }
            snapshots.shrink_to_fit();
            listing.read = snapshots;
        } else {
            let mut counts = vec![0usize; listing.volumes.len()];
            for &i in &slots {
                counts[i] += 1;
            }
            let mut own: Vec<Vec<SnapshotInfo>> =
                counts.into_iter().map(Vec::with_capacity).collect();
            for (s, i) in snapshots.into_iter().zip(slots) {
                own[i].push(s);
            }
            for (v, own) in listing.volumes.iter_mut().zip(own) {
                v.snapshots = Snapshots::Own(own);
            }
        }
        for l in luns {
            let i = listing.slot(&l.svm, &l.volume_name);
            listing.volumes[i].luns.push(l);
        }
        // Most volumes hold one LUN, in a list grown to room for four.
        for v in &mut listing.volumes {
            v.luns.shrink_to_fit();
        }
        listing.volumes.shrink_to_fit();
        listing
    }

    /// The volumes that hold something with `prefix`, in listing order (every volume for
    /// another prefix than the one remembered).
    fn marked<'a>(&'a self, prefix: &str) -> impl Iterator<Item = &'a VolumeListing> + 'a {
        let m = self.marked.get_or_init(|| Marked {
            prefix: prefix.to_string(),
            volumes: (0..self.volumes.len())
                .filter(|&i| marks(&self.volumes[i], &self.read, prefix))
                .collect(),
        });
        if m.prefix == prefix {
            Either::Kept(m.volumes.iter().map(|&i| &self.volumes[i]))
        } else {
            Either::All(self.volumes.iter())
        }
    }

    /// The volumes that hold a snapshot matching one of `patterns` (under `key`), in listing
    /// order (every volume for another set than the one remembered).
    fn matching<'a>(
        &'a self,
        key: &str,
        patterns: &[regex::Regex],
    ) -> impl Iterator<Item = &'a VolumeListing> + 'a {
        let m = self.matching.get_or_init(|| Matching {
            key: key.to_string(),
            patterns: patterns.to_vec(),
            volumes: (0..self.volumes.len())
                .filter(|&i| matches(&self.volumes[i], &self.read, patterns))
                .collect(),
        });
        if m.key == key {
            Either::Kept(m.volumes.iter().map(|&i| &self.volumes[i]))
        } else {
            Either::All(self.volumes.iter())
        }
    }

    /// Replaces the listing of volume `i` (a re-read), keeping [`Listing::marked`] and
    /// [`Listing::matching`] true.
    fn replace(&mut self, i: usize, v: VolumeListing) {
        self.volumes[i] = v;
        if let Some(m) = self.marked.get_mut() {
            if marks(&self.volumes[i], &self.read, &m.prefix) {
                m.volumes.insert(i);
            } else {
                m.volumes.remove(&i);
            }
        }
        if let Some(m) = self.matching.get_mut() {
            if matches(&self.volumes[i], &self.read, &m.patterns) {
                m.volumes.insert(i);
            } else {
                m.volumes.remove(&i);
            }
        }
    }

    fn get(&self, svm: &str, volume: &str) -> Option<&VolumeListing> {
        let i = *self.position.get(svm)?.get(volume)?;
        self.volumes.get(i)
    }

    /// The position of a volume's listing, made empty at the end when it has none.
    fn slot(&mut self, svm: &str, volume: &str) -> usize {
        if let Some(&i) = self.position.get(svm).and_then(|v| v.get(volume)) {
            return i;
        }
        let i = self.volumes.len();
        self.volumes
            .push(VolumeListing::new(Snapshots::Own(Vec::new()), Vec::new()));
        self.position
            .entry(svm.to_string())
            .or_default()
            .insert(volume.to_string(), i);
        i
    }
}

#[cfg(test)]
impl Inventory {
    /// A test listing of cluster `c` (9.14.1, UTC, SnapRestore licensed, FlexClone not) holding
    /// only `snapshots` and `luns`, taken at `at`.
    pub(crate) fn sample(
        snapshots: Vec<SnapshotInfo>,
        luns: Vec<LunInfo>,
        at: DateTime<Utc>,
    ) -> Inventory {
        Inventory {
            info: ClusterInfo {
                name: "c".into(),
                uuid: "cu".into(),
                version: "9.14.1".into(),
                timezone: "UTC".into(),
            },
            volumes: Vec::new(),
            snapshot_policies: Vec::new(),
            schedules: Vec::new(),
            flexclone: LicenseState::Unlicensed,
            snaprestore: LicenseState::Compliant,
            listing: Arc::new(Listing::of(snapshots, luns)),
            at,
            full_at: at,
            presence: next_presence(),
            volume_at: OnceLock::new(),
        }
    }

    /// Adds a snapshot to the listing (after its volume's).
    pub(crate) fn push_snapshot(&mut self, s: SnapshotInfo) {
        let listing = Arc::make_mut(&mut self.listing);
        let i = listing.slot(&s.svm, &s.volume_name);
        let mut own = listing.volumes[i].snapshots(&listing.read).to_vec();
        own.push(s);
        let luns = std::mem::take(&mut listing.volumes[i].luns);
        listing.replace(i, VolumeListing::new(Snapshots::Own(own), luns));
    }

    /// Adds a LUN to the listing (after its volume's).
    pub(crate) fn push_lun(&mut self, l: LunInfo) {
        let listing = Arc::make_mut(&mut self.listing);
        let i = listing.slot(&l.svm, &l.volume_name);
        let own = listing.volumes[i].snapshots(&listing.read).to_vec();
        let mut luns = std::mem::take(&mut listing.volumes[i].luns);
        luns.push(l);
        listing.replace(i, VolumeListing::new(Snapshots::Own(own), luns));
        self.presence = next_presence();
    }

    /// Changes the listing as two flat lists (snapshots, LUNs), then groups it again.
    pub(crate) fn edit(&mut self, f: impl FnOnce(&mut Vec<SnapshotInfo>, &mut Vec<LunInfo>)) {
        let mut snapshots: Vec<SnapshotInfo> = self.snapshots().cloned().collect();
        let mut luns: Vec<LunInfo> = self.luns().cloned().collect();
        f(&mut snapshots, &mut luns);
        self.listing = Arc::new(Listing::of(snapshots, luns));
        self.presence = next_presence();
    }
}

/// What discovery needs to read: everything (`run`), or only the facts planning uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Cluster, volumes, policies, schedules, licenses, snapshots and LUNs.
    Full,
    /// Cluster, volumes, policies and schedules (`check`, `plan`).
    Planning,
}

/// Reads one cluster. The calls run concurrently; the first error ends the round.
pub async fn discover(
    ontap: &dyn Ontap,
    depth: Depth,
    at: DateTime<Utc>,
) -> Result<Inventory, OntapError> {
    let facts = async {
        tokio::try_join!(
            ontap.cluster(),
            ontap.volumes(),
            ontap.snapshot_policies(),
            ontap.schedules()
        )
    };
    let (info, volumes, snapshot_policies, schedules) = facts.await?;
    let (flexclone, snaprestore, snapshots, luns) = match depth {
        Depth::Planning => (
            LicenseState::Unknown,
            LicenseState::Unknown,
            Vec::new(),
            Vec::new(),
        ),
        Depth::Full => tokio::try_join!(
            ontap.license("flexclone"),
            ontap.license("snaprestore"),
            ontap.snapshots(),
            ontap.luns()
        )?,
    };
    Ok(Inventory {
        info,
        volumes,
        snapshot_policies,
        schedules,
        flexclone,
        snaprestore,
        listing: Arc::new(Listing::of(snapshots, luns)),
        at,
        full_at: at,
        presence: next_presence(),
        volume_at: OnceLock::new(),
    })
}

/// Re-reads the snapshots and LUNs of `volumes` only (a volume is named by SVM and name, as the
/// listing knows it) into `inventory`, in two bulk reads whatever their number, and dates it
/// `at`: the rest of the listing is kept as it is. A volume the inventory does not know fails the round (`Ok(false)`: the caller reads
/// the whole cluster instead); so does any error.
pub async fn reread(
    ontap: &dyn Ontap,
    inventory: &mut Inventory,
    volumes: &[(String, String)],
    at: DateTime<Utc>,
) -> Result<bool, OntapError> {
    // One pass over the cluster's volumes, not a search per volume re-read.
    let known: HashMap<(&str, &str), &VolumeInfo> = inventory
        .volumes
        .iter()
        .map(|v| ((v.svm.as_str(), v.name.as_str()), v))
        .collect();
    let mut refs = Vec::with_capacity(volumes.len());
    for (svm, name) in volumes {
        let Some(v) = known.get(&(svm.as_str(), name.as_str())) else {
            return Ok(false);
        };
        refs.push(VolumeRef {
            uuid: v.uuid.clone(),
            name: v.name.clone(),
            svm: v.svm.clone(),
        });
    }
    if refs.is_empty() {
        inventory.at = at;
        return Ok(true);
    }
    // Two bulk reads for all of them, each record given back to its volume in listing order.
    let (snapshots, luns) =
        tokio::try_join!(ontap.volume_snapshots(&refs), ontap.volume_luns(&refs))?;
    let index: HashMap<&str, usize> = refs
        .iter()
        .enumerate()
        .map(|(i, v)| (v.uuid.as_str(), i))
        .collect();
    let by_name: HashMap<(&str, &str), usize> = refs
        .iter()
        .enumerate()
        .map(|(i, v)| ((v.svm.as_str(), v.name.as_str()), i))
        .collect();
    let mut listed: Vec<(Vec<SnapshotInfo>, Vec<LunInfo>)> = vec![Default::default(); refs.len()];
    for s in snapshots {
        if let Some(&i) = index.get(&*s.volume_uuid) {
            listed[i].0.push(s);
        }
    }
    for l in luns {
        if let Some(&i) = by_name.get(&(l.svm.as_str(), l.volume_name.as_str())) {
            listed[i].1.push(l);
        }
    }
    let mut moved = false;
    for (v, (snapshots, luns)) in refs.iter().zip(listed) {
        let listing = Arc::make_mut(&mut inventory.listing);
        let i = listing.slot(&v.svm, &v.name);
        let old = &listing.volumes[i].luns;
        let plain = |l: &&LunInfo| !l.created_as_clone;
        moved |= !old
            .iter()
            .filter(plain)
            .map(|l| &l.name)
            .eq(luns.iter().filter(plain).map(|l| &l.name));
        listing.replace(i, VolumeListing::new(Snapshots::Own(snapshots), luns));
    }
    if moved {
        inventory.presence = next_presence();
    }
    inventory.at = at;
    Ok(true)
}

impl Inventory {
    /// Takes `before`'s presence when this listing (a new whole read of the same cluster) says
    /// the same of everything the presence covers: cluster, volumes, snapshot policies,
    /// schedules, and each volume's LUNs other than clones, in order. What is derived from those
    /// is then kept across the read instead of made again (an hourly whole read of a cluster
    /// nobody changed made every pass after it rebuild the planner's view of the whole estate).
    pub fn keep_presence_of(&mut self, before: &Inventory) {
        fn plain(inv: &Inventory) -> impl Iterator<Item = (&str, &str, &str)> + '_ {
            inv.luns()
                .filter(|l| !l.created_as_clone)
                .map(|l| (l.svm.as_str(), l.volume_name.as_str(), l.name.as_str()))
        }
        let same = self.info == before.info
            && self.volumes == before.volumes
            && self.snapshot_policies == before.snapshot_policies
            && self.schedules == before.schedules
            && plain(self).eq(plain(before));
        if same {
            self.presence = before.presence;
        }
    }

    /// The planner's view of this cluster.
    pub fn observed(&self, name: &str) -> ObservedCluster {
        ObservedCluster {
            name: name.to_string(),
            info: self.info.clone(),
            volumes: self.volumes.clone(),
            snapshot_policies: self.snapshot_policies.clone(),
            schedules: self.schedules.clone(),
        }
    }

    /// Every snapshot, volume by volume in listing order.
    pub fn snapshots(&self) -> impl Iterator<Item = &SnapshotInfo> + '_ {
        let read = &self.listing.read;
        self.listing
            .volumes
            .iter()
            .flat_map(move |v| v.snapshots(read).iter())
    }

    /// The snapshots whose name carries snapwarden's `prefix` (`<prefix>.…`), volume by volume
    /// in listing order; each volume's are picked once per listing.
    pub fn prefixed_snapshots<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a SnapshotInfo> + 'a {
        let read = &self.listing.read;
        self.listing.marked(prefix).flat_map(move |v| {
            v.picked(read, &v.prefixed, prefix, move |s| {
                has_prefix(&s.name, prefix)
            })
        })
    }

    /// The LUNs whose leaf carries `prefix` (a clone path of snapwarden's shape), volume by
    /// volume in listing order.
    pub fn lookalike_luns<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a LunInfo> + 'a {
        self.listing.marked(prefix).flat_map(move |v| {
            v.luns
                .iter()
                .filter(move |l| lookalike_lun(&l.name, &l.volume_name, prefix))
        })
    }

    /// The snapshots whose name matches one of `patterns`, volume by volume in listing order;
    /// each volume's are picked once per listing.
    pub fn matching_snapshots<'a>(
        &'a self,
        patterns: &'a [regex::Regex],
    ) -> impl Iterator<Item = &'a SnapshotInfo> + 'a {
        let key: String = patterns
            .iter()
            .map(|p| format!("{}\n", p.as_str()))
            .collect();
        let read = &self.listing.read;
        self.listing.matching(&key, patterns).flat_map(move |v| {
            v.picked(read, &v.matching, &key, move |s| {
                patterns.iter().any(|p| p.is_match(&s.name))
            })
        })
    }

    /// Every LUN, volume by volume in listing order.
    pub fn luns(&self) -> impl Iterator<Item = &LunInfo> + '_ {
        self.listing.volumes.iter().flat_map(|v| v.luns.iter())
    }

    /// The snapshots of one volume, in listing order.
    pub fn volume_snapshots<'a>(
        &'a self,
        svm: &str,
        volume: &str,
    ) -> impl Iterator<Item = &'a SnapshotInfo> + 'a {
        self.listing
            .get(svm, volume)
            .map(|v| v.snapshots(&self.listing.read))
            .unwrap_or_default()
            .iter()
    }

    /// The LUNs of one volume, in listing order.
    pub fn volume_luns<'a>(
        &'a self,
        svm: &str,
        volume: &str,
    ) -> impl Iterator<Item = &'a LunInfo> + 'a {
        self.listing
            .get(svm, volume)
            .map(|v| v.luns.as_slice())
            .unwrap_or_default()
            .iter()
    }

    /// Whether the listing has the LUN `name` (a path, `/vol/<volume>/…`) in `svm`.
    pub fn has_lun(&self, svm: &str, name: &str) -> bool {
        match lun_volume(name) {
            Some(volume) => self.volume_luns(svm, volume).any(|l| l.name == name),
            None => self.luns().any(|l| l.svm == svm && l.name == name),
        }
    }

    /// The volume `name` of `svm`, as the cluster listed it.
    pub fn volume(&self, svm: &str, name: &str) -> Option<&VolumeInfo> {
        let at = self.volume_at.get_or_init(|| {
            let mut at: HashMap<String, HashMap<String, usize>> = HashMap::default();
            for (i, v) in self.volumes.iter().enumerate() {
                at.entry(v.svm.clone())
                    .or_default()
                    .entry(v.name.clone())
                    .or_insert(i);
            }
            at
        });
        let found = at
            .get(svm)
            .and_then(|names| names.get(name))
            .and_then(|&i| self.volumes.get(i))
            .filter(|v| v.svm == svm && v.name == name);
        found.or_else(|| self.volumes.iter().find(|v| v.svm == svm && v.name == name))
    }

    /// Why policy volume `vi` cannot run on this cluster (missing volume or LUNs), if it cannot
    /// (the volume found through [`Inventory::volume`]'s index, its LUNs through the listing:
    /// checking 10,000 policy volumes stays linear).
    pub fn missing(&self, policy: &Policy, vi: usize) -> Option<String> {
        let v = &policy.volumes[vi];
        if self.volume(&v.svm, &v.name).is_none() {
            return Some(format!(
                "volume {} (svm {}) does not exist on cluster {}",
                v.name, v.svm, policy.clusters[v.cluster].name
            ));
        }
        let absent: Vec<&str> = v
            .luns
            .iter()
            .filter(|lun| !self.has_lun(&v.svm, lun))
            .map(|s| s.as_str())
            .collect();
        (!absent.is_empty()).then(|| {
            format!(
                "LUN {} does not exist on volume {} (svm {}) of cluster {}",
                absent.join(", "),
                v.name,
                v.svm,
                policy.clusters[v.cluster].name
            )
        })
    }
}

/// The volume a LUN path names (`/vol/<volume>/<lun>`).
pub fn lun_volume(path: &str) -> Option<&str> {
    path.strip_prefix("/vol/")?.split('/').next()
}

/// Discovers, for planning, every cluster whose facts the policy needs; returns what was
/// observed and, per cluster that could not be read, the error.
pub async fn observe_for_planning(
    clusters: &[(String, Arc<dyn Ontap>)],
    now: DateTime<Utc>,
) -> (Observed, Vec<OntapError>) {
    let rounds = clusters.iter().map(|(name, ontap)| async move {
        (
            name.clone(),
            discover(ontap.as_ref(), Depth::Planning, now).await,
        )
    });
    let mut observed = Observed::default();
    let mut errors = Vec::new();
    for (name, result) in futures_util::future::join_all(rounds).await {
        match result {
            Ok(inv) => observed.clusters.push(inv.observed(&name)),
            Err(e) => errors.push(e),
        }
    }
    (observed, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(volume: &str, name: &str) -> SnapshotInfo {
        SnapshotInfo {
            uuid: format!("{volume}-{name}").into(),
            name: name.into(),
            volume_uuid: format!("u-{volume}").into(),
            volume_name: volume.into(),
            svm: "svm1".into(),
            comment: None,
            create_time: "2026-12-06T05:05:00Z".parse().unwrap(),
            owners: Vec::new(),
            size: None,
            snapmirror_label: None,
            snaplock_expiry: None,
        }
    }

    fn names<'a>(it: impl Iterator<Item = &'a SnapshotInfo>) -> Vec<String> {
        it.map(|s| format!("{}/{}", s.volume_name, s.name))
            .collect()
    }

    /// A listing read volume by volume (kept as one list) and one whose volumes interleave
    /// (grouped per volume) answer alike: each volume's snapshots in listing order, every
    /// snapshot volume by volume in order of first appearance; a re-read volume replaces only
    /// its own.
    #[test]
    fn volume_by_volume_and_interleaved_listings_answer_alike() {
        let at = "2026-12-06T06:00:00Z".parse().unwrap();
        let grouped = vec![
            snap("a", "1"),
            snap("a", "2"),
            snap("b", "1"),
            snap("c", "1"),
        ];
        let interleaved = vec![
            snap("a", "1"),
            snap("b", "1"),
            snap("a", "2"),
            snap("c", "1"),
        ];
        for listed in [grouped, interleaved] {
            let mut inv = Inventory::sample(listed, Vec::new(), at);
            assert_eq!(names(inv.snapshots()), ["a/1", "a/2", "b/1", "c/1"]);
            assert_eq!(names(inv.volume_snapshots("svm1", "a")), ["a/1", "a/2"]);
            assert_eq!(names(inv.volume_snapshots("svm1", "c")), ["c/1"]);
            assert_eq!(
                names(inv.volume_snapshots("svm2", "a")),
                Vec::<String>::new()
            );
            let kept = inv.clone();
            inv.push_snapshot(snap("b", "2"));
            assert_eq!(names(inv.snapshots()), ["a/1", "a/2", "b/1", "b/2", "c/1"]);
            assert_eq!(
                names(kept.volume_snapshots("svm1", "b")),
                ["b/1"],
                "a clone keeps its own"
            );
        }
    }

    /// The volumes a pass looks through for snapwarden's look-alikes are those holding a
    /// prefixed snapshot or LUN, and for foreign snapshots those holding a match, kept so by
    /// every change to a volume's listing: what they give is what filtering every snapshot and
    /// LUN gives.
    #[test]
    fn the_volumes_looked_through_for_lookalikes_and_foreign_snapshots_follow_each_change() {
        let at = "2026-12-06T06:00:00Z".parse().unwrap();
        let lun = |volume: &str, leaf: &str| LunInfo {
            uuid: format!("{volume}-{leaf}"),
            name: format!("/vol/{volume}/{leaf}"),
            svm: "svm1".into(),
            volume_name: volume.into(),
            mapped: false,
            created_as_clone: false,
            size: None,
        };
        let p = "snapwarden";
        let check = |inv: &Inventory| {
            let brute: Vec<String> = names(inv.snapshots().filter(|s| has_prefix(&s.name, p)));
            assert_eq!(names(inv.prefixed_snapshots(p)), brute);
            let luns = |it: &mut dyn Iterator<Item = &LunInfo>| -> Vec<String> {
                it.map(|l| l.name.clone()).collect()
            };
            let brute = luns(
                &mut inv
                    .luns()
                    .filter(|l| lookalike_lun(&l.name, &l.volume_name, p)),
            );
            assert_eq!(luns(&mut inv.lookalike_luns(p)), brute);
            // And the volumes looked through for foreign snapshots, likewise.
            let patterns = [regex::Regex::new("^(Veeam|snapwarden\\.w\\.2)").unwrap()];
            let brute: Vec<String> = names(
                inv.snapshots()
                    .filter(|s| patterns.iter().any(|r| r.is_match(&s.name))),
            );
            assert_eq!(names(inv.matching_snapshots(&patterns)), brute);
            names(inv.prefixed_snapshots(p))
        };
        let mut inv = Inventory::sample(
            vec![
                snap("a", "snapwarden.w.1"),
                snap("a", "hourly.1"),
                snap("b", "hourly.1"),
            ],
            vec![
                lun("a", "lun0"),
                lun("b", "lun0"),
                lun("c", "snapwarden.w.1.lun0"),
            ],
            at,
        );
        assert_eq!(check(&inv), ["a/snapwarden.w.1"]);
        inv.push_snapshot(snap("c", "VeeamSourceSnapshot_1"));
        inv.push_snapshot(snap("b", "snapwarden.w.2"));
        inv.push_lun(lun("b", "snapwarden.w.2.lun0"));
        assert_eq!(check(&inv), ["a/snapwarden.w.1", "b/snapwarden.w.2"]);
        // A re-read that finds volume a without its snapshot any more.
        let listing = Arc::make_mut(&mut inv.listing);
        let i = listing.slot("svm1", "a");
        listing.replace(
            i,
            VolumeListing::new(
                Snapshots::Own(vec![snap("a", "hourly.1")]),
                vec![lun("a", "lun0")],
            ),
        );
        assert_eq!(check(&inv), ["b/snapwarden.w.2"]);
        // And volume c without its foreign snapshot.
        let listing = Arc::make_mut(&mut inv.listing);
        let i = listing.slot("svm1", "c");
        listing.replace(
            i,
            VolumeListing::new(Snapshots::Own(Vec::new()), vec![lun("c", "lun0")]),
        );
        assert_eq!(check(&inv), ["b/snapwarden.w.2"]);
        assert_eq!(
            inv.lookalike_luns("other").count(),
            0,
            "another prefix: every volume, none matches"
        );
    }

    /// A whole read that says the same of the cluster's volumes, policies, schedules and plain
    /// LUNs keeps the presence (snapshots and clones are read at every pass anyway); any change
    /// to one of those gives a presence never used before.
    #[test]
    fn a_whole_read_keeps_the_presence_only_when_what_it_covers_is_the_same() {
        let at = "2026-12-06T06:00:00Z".parse().unwrap();
        let lun = |leaf: &str, clone: bool| LunInfo {
            uuid: format!("u-{leaf}"),
            name: format!("/vol/a/{leaf}"),
            svm: "svm1".into(),
            volume_name: "a".into(),
            mapped: false,
            created_as_clone: clone,
            size: None,
        };
        let read = |snapshots: &[&str], luns: Vec<LunInfo>| {
            let mut inv =
                Inventory::sample(snapshots.iter().map(|n| snap("a", n)).collect(), luns, at);
            inv.volumes.push(VolumeInfo {
                uuid: "u-a".into(),
                name: "a".into(),
                svm: "svm1".into(),
                snapshot_policy: Some("p".into()),
            });
            inv
        };
        let before = read(&["hourly.1"], vec![lun("lun0", false)]);
        let kept = |mut after: Inventory| {
            after.keep_presence_of(&before);
            after.presence == before.presence
        };
        // Another snapshot and a clone: the same presence.
        assert!(kept(read(
            &["hourly.1", "hourly.2"],
            vec![lun("lun0", false), lun("snapwarden.w.1.lun0", true)]
        )));
        // A plain LUN gone, or one more.
        assert!(!kept(read(&["hourly.1"], Vec::new())));
        assert!(!kept(read(
            &["hourly.1"],
            vec![lun("lun0", false), lun("lun1", false)]
        )));
        // Another snapshot policy on the volume, another volume, another schedule.
        let mut other = read(&["hourly.1"], vec![lun("lun0", false)]);
        other.volumes[0].snapshot_policy = Some("q".into());
        assert!(!kept(other));
        let mut more = read(&["hourly.1"], vec![lun("lun0", false)]);
        more.volumes.push(VolumeInfo {
            uuid: "u-b".into(),
            name: "b".into(),
            svm: "svm1".into(),
            snapshot_policy: None,
        });
        assert!(!kept(more));
        let mut scheduled = read(&["hourly.1"], vec![lun("lun0", false)]);
        scheduled
            .schedules
            .push(crate::domain::inventory::ScheduleInfo {
                name: "hourly".into(),
                recurrence: crate::timeline::Recurrence::Cron(
                    crate::timeline::CronSpec::parse("5 * * * *").unwrap(),
                ),
            });
        assert!(!kept(scheduled));
    }

    /// A volume is found as a search of the cluster's volumes finds it: the first of its SVM
    /// and name, none for a name in another SVM, and the list as it is when edited after the
    /// first look-up.
    #[test]
    fn a_volume_is_found_as_a_search_of_the_list_finds_it() {
        let at = "2026-12-06T06:00:00Z".parse().unwrap();
        let volume = |svm: &str, name: &str, uuid: &str| VolumeInfo {
            uuid: uuid.into(),
            name: name.into(),
            svm: svm.into(),
            snapshot_policy: None,
        };
        let mut inv = Inventory::sample(Vec::new(), Vec::new(), at);
        inv.volumes = vec![
            volume("svm1", "a", "1"),
            volume("svm2", "a", "2"),
            volume("svm1", "b", "3"),
            volume("svm1", "a", "4"),
        ];
        let uuid =
            |inv: &Inventory, svm: &str, name: &str| inv.volume(svm, name).map(|v| v.uuid.clone());
        assert_eq!(uuid(&inv, "svm1", "a").as_deref(), Some("1"));
        assert_eq!(uuid(&inv, "svm2", "a").as_deref(), Some("2"));
        assert_eq!(uuid(&inv, "svm2", "b"), None);
        assert_eq!(uuid(&inv, "svm3", "a"), None);
        // Edited after the first look-up: removed, moved and added volumes.
        inv.volumes.remove(0);
        inv.volumes.push(volume("svm3", "c", "5"));
        assert_eq!(uuid(&inv, "svm1", "a").as_deref(), Some("4"));
        assert_eq!(uuid(&inv, "svm1", "b").as_deref(), Some("3"));
        assert_eq!(uuid(&inv, "svm3", "c").as_deref(), Some("5"));
        inv.volumes.clear();
        assert_eq!(uuid(&inv, "svm1", "b"), None);
    }
}
