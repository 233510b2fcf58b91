//! The simulated world: clusters and everything in them, and the typed operations on it.
//!
//! Everything here is synchronous and owns no clock: callers pass time in through
//! [`World::advance_to`]. The REST layer (`rest/`) and the in-process client (`client.rs`) are
//! thin wrappers over these operations, so both behave identically.
//!
//! Invariants: object names are unique per kind within a cluster (volumes and LUN paths per SVM,
//! snapshots per volume); `World::now` never moves backwards; every `Volume::next_fires` entry is
//! the next instant strictly after `now` of the matching `copies` entry of the volume's policy.
//!
//! An operation costs what it touches, not the size of the world: the look-ups by uuid or name
//! go through the clusters' indices (volumes, LUNs, a volume's LUNs, a LUN's maps), a volume
//! keeps its own SnapRestore clones with their capture counts, and the world keeps the due
//! schedule instants (`due`) and the pinned backing snapshots (`pinned_backings`) as they change,
//! so that neither a clock advance nor a count walks every volume.

mod clock;
mod containers;
mod error;
#[cfg(test)]
mod index_tests;
mod jobs;
mod luns;
mod model;
mod settings;
mod snapshots;
#[cfg(test)]
mod tests;
mod volumes;

pub use clock::{ClockSummary, MAX_ADVANCE_SECONDS};
pub use error::{codes, locked_message, SimError, SimResult};
pub use model::*;
pub use settings::{
    Faults, Knobs, LockedOldest, SettingError, MAX_LATENCY_MS, MAX_SETTING_SECONDS,
};
pub use snapshots::{
    snapmirror_label_problem, Pins, SnapshotSpace, MAX_SNAPMIRROR_LABEL, ONTAP_OWNERS,
    OWNER_FILE_CLONE, OWNER_LUN_CLONE, OWNER_VOLUME_CLONE,
};

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, FixedOffset, Utc};

/// The whole simulated world.
#[derive(Debug, Clone)]
pub struct World {
    now: DateTime<Utc>,
    pub knobs: Knobs,
    pub faults: Faults,
    pub users: Vec<User>,
    /// Users that log in with a documented default password because the world did not say
    /// otherwise (a world file without `[[users]]`, a policy cluster without a password source);
    /// `serve` warns about them.
    pub default_logins: Vec<String>,
    /// Only `World`'s operations add or remove clusters, volumes and LUNs (see `Cluster`).
    pub clusters: Vec<Cluster>,
    /// Every pending schedule instant as (instant, cluster, volume, copy). Invariant: holds
    /// `(t, ci, vi, k)` iff `clusters[ci].volumes[vi].next_fires[k] == Some(t)`.
    due: BTreeSet<(DateTime<Utc>, usize, usize, usize)>,
    /// Backing snapshots (by uuid) pinned through a capture: how many SnapRestore clones made
    /// from each were captured by a snapshot of their volume. Invariant: `n == pinned_backings[u]`
    /// iff `n > 0` clone records of the world with `backing_snapshot_uuid == u` have
    /// `captured_by > 0`.
    pinned_backings: HashMap<String, usize>,
    /// Where the last snapshot create (`create_labelled_snapshot`) put its snapshot: (cluster,
    /// volume).
    last_created: Option<(usize, usize)>,
    rng: u64,
}

/// Where a snapshot lives: cluster, volume and snapshot indices.
type SnapAt = (usize, usize, usize);

impl World {
    pub fn new(start: DateTime<Utc>, knobs: Knobs) -> World {
        World {
            now: start,
            knobs,
            faults: Faults::default(),
            users: Vec::new(),
            default_logins: Vec::new(),
            clusters: Vec::new(),
            due: BTreeSet::new(),
            pinned_backings: HashMap::new(),
            last_created: None,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// A fresh random UUID (v4), from a per-thread generator the OS seeded (not a system
    /// call each: the simulator makes one per snapshot and LUN).
    pub fn new_uuid() -> String {
        uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
            .into_uuid()
            .to_string()
    }

    /// Deterministic pseudo-random number in `[0, 1)` (xorshift) for fault rates.
    pub fn roll(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The backing snapshots (uuids) pinned now: a snapshot of their volume captured one of the
    /// SnapRestore clones made from them, whether or not the clone still exists.
    pub fn pinned_backings(&self) -> impl Iterator<Item = &str> {
        self.pinned_backings.keys().map(String::as_str)
    }

    /// How many [`World::pinned_backings`] there are, without walking anything.
    pub fn pinned_backing_count(&self) -> usize {
        self.pinned_backings.len()
    }

    /// The (cluster, volume) of the last snapshot create, whose snapshot is the newest of that
    /// volume until the volume changes again.
    pub fn last_created(&self) -> Option<(usize, usize)> {
        self.last_created
    }

    /// Renders an instant in a cluster's offset, as ONTAP does.
    pub fn local(&self, ci: usize, t: DateTime<Utc>) -> DateTime<FixedOffset> {
        t.with_timezone(&self.clusters[ci].tz).fixed_offset()
    }
}
