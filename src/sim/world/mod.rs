//! The simulated world: clusters and everything in them, and the typed operations on it.
//!
//! Everything here is synchronous and owns no clock: callers pass time in through
//! [`World::advance_to`]. The REST layer (`rest/`) and the in-process client (`client.rs`) are
//! thin wrappers over these operations, so both behave identically.
//!
//! Invariants: object names are unique per kind within a cluster (volumes and LUN paths per SVM,
//! snapshots per volume); `World::now` never moves backwards; every `Volume::next_fires` entry is
//! the next instant strictly after `now` of the matching `copies` entry of the volume's policy.

mod clock;
mod containers;
mod error;
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
    pub clusters: Vec<Cluster>,
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
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// A fresh random UUID (v4).
    pub fn new_uuid() -> String {
        uuid::Uuid::new_v4().to_string()
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

    /// Renders an instant in a cluster's offset, as ONTAP does.
    pub fn local(&self, ci: usize, t: DateTime<Utc>) -> DateTime<FixedOffset> {
        t.with_timezone(&self.clusters[ci].tz).fixed_offset()
    }
}
