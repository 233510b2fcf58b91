//! The objects of a simulated cluster: plain data, operated on by `World`.

use std::collections::BTreeSet;

use crate::fasthash::HashMap;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::timeline::Recurrence;

#[derive(Debug, Clone)]
pub struct Svm {
    pub uuid: String,
    pub name: String,
}

/// A job schedule (`/api/cluster/schedules`).
#[derive(Debug, Clone)]
pub struct Schedule {
    pub uuid: String,
    pub name: String,
    pub recurrence: Recurrence,
}

/// One `copies` entry of a snapshot policy.
#[derive(Debug, Clone)]
pub struct PolicyCopy {
    pub schedule: String,
    pub count: u32,
    /// `None`: snapshots are named after the schedule.
    pub prefix: Option<String>,
    /// Given to every snapshot this copy takes (ONTAP's `copies.snapmirror_label`).
    pub snapmirror_label: Option<String>,
    /// `copies.retention_period`: on a volume with snapshot locking, each snapshot this copy
    /// takes is locked (`snaplock_expiry_time`) for this long.
    pub retention_period: Option<TimeDelta>,
}

impl PolicyCopy {
    pub fn effective_prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(&self.schedule)
    }
}

#[derive(Debug, Clone)]
pub struct SnapshotPolicy {
    pub uuid: String,
    pub name: String,
    pub comment: String,
    pub enabled: bool,
    pub copies: Vec<PolicyCopy>,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub uuid: String,
    /// `uuid` as listings hold it, parsed once when the snapshot is made (a listing of every
    /// snapshot parsed each again).
    pub listed_uuid: crate::ontap::Uuid,
    pub name: String,
    pub comment: Option<String>,
    pub create_time: DateTime<Utc>,
    pub size: u64,
    /// The policy prefix when a schedule took it (rotation counts these).
    pub schedule_prefix: Option<String>,
    /// SnapRestore clones (by clone LUN uuid) this snapshot captured: they pin their backing snapshot.
    pub captures: Vec<String>,
    /// `snapmirror_label`: the create's, or the policy copy's for a scheduled snapshot.
    pub snapmirror_label: Option<String>,
    /// Owners from outside the clone model (world file, admin API), such as `snapmirror` or
    /// `dump`: shown in `owners` after the clones' and making the snapshot busy the same way.
    /// Invariant: each an ONTAP owner name ([`super::ONTAP_OWNERS`]), each once.
    pub held_by: Vec<String>,
    /// `snaplock_expiry_time`: a tamper-proof snapshot cannot be deleted before it.
    pub snaplock_expiry: Option<DateTime<Utc>>,
}

/// A FlexClone volume's parent link.
#[derive(Debug, Clone)]
pub struct CloneParent {
    pub volume_uuid: String,
    pub snapshot_uuid: String,
}

#[derive(Debug, Clone)]
pub struct Volume {
    pub uuid: String,
    pub name: String,
    pub svm: String,
    pub size: u64,
    pub snapshot_policy: String,
    /// 7-Mode option (reference notes §7.2): when on, a deleted SnapRestore clone no longer pins
    /// its backing snapshot through snapshots that captured it.
    pub snapshot_clone_dependency: bool,
    pub create_time: DateTime<Utc>,
    /// In creation order.
    pub snapshots: Vec<Snapshot>,
    /// Next fire instant of each `copies` entry of the policy (same order); `None`: never.
    pub next_fires: Vec<Option<DateTime<Utc>>>,
    /// Set and cleared only by `World`'s operations, so that `Cluster::clone_children` stays true.
    pub clone_parent: Option<CloneParent>,
    /// The SnapRestore clones made from this volume's snapshots, in creation order: a live
    /// clone, or a deleted one that a snapshot of this volume captured. Only `World`'s
    /// operations change them (with the snapshots), so that their capture counts and
    /// `World::pinned_backings` stay true.
    pub restore_clones: Vec<RestoreClone>,
    /// `space.snapshot.autodelete`.
    pub autodelete: Autodelete,
    /// `snapshot_locking_enabled`: scheduled snapshots of copies with a `retention_period` are
    /// locked until it passes.
    pub snapshot_locking: bool,
    /// `scheduled_snapshot_naming_scheme`.
    pub naming: NamingScheme,
    /// `space.snapshot.reserve_percent`.
    pub snapshot_reserve_percent: u8,
}

/// `space.snapshot.autodelete` of a volume: whether ONTAP deletes snapshots when space runs
/// low, which locked ones it may delete (`commitment`) and what sets it off (`trigger`).
/// The simulator reports it; it never runs short of space, so it never deletes by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autodelete {
    pub enabled: bool,
    /// `try`, `disrupt` or `destroy` ([`AUTODELETE_COMMITMENTS`]).
    pub commitment: String,
    /// `volume` or `snap_reserve` ([`AUTODELETE_TRIGGERS`]).
    pub trigger: String,
}

/// ONTAP's `space.snapshot.autodelete.commitment` values (NetApp's Python client,
/// `models/volume_space_snapshot_autodelete.py`).
pub const AUTODELETE_COMMITMENTS: &[&str] = &["try", "disrupt", "destroy"];
/// ONTAP's `space.snapshot.autodelete.trigger` values (same source).
pub const AUTODELETE_TRIGGERS: &[&str] = &["volume", "snap_reserve"];

impl Default for Autodelete {
    /// ONTAP's defaults: disabled, `try`, `volume` (same source).
    fn default() -> Autodelete {
        Autodelete {
            enabled: false,
            commitment: "try".into(),
            trigger: "volume".into(),
        }
    }
}

/// `scheduled_snapshot_naming_scheme`: `create_time` names a scheduled snapshot
/// `<prefix>.<YYYY-MM-DD_HHMM>`; `ordinal` names the newest `<prefix>.0`, the older ones
/// by their create time (NetApp's Python client, `resources/volume.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NamingScheme {
    #[default]
    CreateTime,
    Ordinal,
}

impl NamingScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            NamingScheme::CreateTime => "create_time",
            NamingScheme::Ordinal => "ordinal",
        }
    }

    pub fn parse(s: &str) -> Option<NamingScheme> {
        match s {
            "create_time" => Some(NamingScheme::CreateTime),
            "ordinal" => Some(NamingScheme::Ordinal),
            _ => None,
        }
    }
}

/// The snapshot reserve a new volume gets, in percent: "by default 5%" (NetApp docs,
/// `data-protection/manage-snapshot-copy-reserve-concept`).
pub const DEFAULT_SNAPSHOT_RESERVE_PERCENT: u8 = 5;

#[derive(Debug, Clone)]
pub struct Lun {
    /// The LUN's place in creation order, never reused: `Cluster::luns` is sorted by it, and the
    /// LUN indices hold it instead of a position, which a delete would shift.
    pub(super) seq: u64,
    pub uuid: String,
    /// `/vol/<volume>/<lun>`.
    pub name: String,
    pub svm: String,
    pub volume_uuid: String,
    pub size: u64,
    pub os_type: String,
    pub serial_number: String,
    pub created_as_clone: bool,
    pub create_time: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Igroup {
    pub uuid: String,
    pub name: String,
    pub svm: String,
    pub os_type: String,
    pub protocol: String,
    pub initiators: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct LunMap {
    pub lun_uuid: String,
    pub igroup_uuid: String,
    pub logical_unit_number: u32,
}

/// A SnapRestore clone of a LUN and the snapshot backing it (both in the volume holding it).
#[derive(Debug, Clone)]
pub struct RestoreClone {
    pub lun_uuid: String,
    pub backing_snapshot_uuid: String,
    /// `false` once the clone LUN is deleted; the record lives on while snapshots captured it.
    pub alive: bool,
    /// How many snapshots of the volume captured the clone (hold its uuid in `captures`).
    /// Invariant: a deleted clone's record has `captured_by > 0`.
    pub captured_by: usize,
}

/// A FlexClone LUN still sharing blocks with the snapshot it was cloned from (both in the
/// volume it is kept under, `Cluster::block_sharing`).
#[derive(Debug, Clone)]
pub struct BlockSharing {
    pub snapshot_uuid: String,
    pub lun_uuid: String,
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Success,
    Failure,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Success => "success",
            JobState::Failure => "failure",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub uuid: String,
    pub description: String,
    pub svm: Option<Svm>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `Err((code, message))` for a failed job.
    pub outcome: Result<(), (u64, String)>,
}

impl Job {
    pub fn state(&self, now: DateTime<Utc>) -> JobState {
        if now < self.end {
            JobState::Running
        } else if self.outcome.is_ok() {
            JobState::Success
        } else {
            JobState::Failure
        }
    }
}

/// One simulated ONTAP cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub uuid: String,
    pub version: String,
    pub tz: Tz,
    /// Installed license packages (`base` is always installed).
    pub licenses: BTreeSet<String>,
    pub svms: Vec<Svm>,
    pub schedules: Vec<Schedule>,
    pub policies: Vec<SnapshotPolicy>,
    /// Only `World`'s operations add or remove volumes, so that the volume indices stay true.
    pub volumes: Vec<Volume>,
    /// Index of `volumes` by uuid (the world makes them lowercase). Invariant:
    /// `volume_uuids[u] == i` iff `volumes[i].uuid == u`.
    pub(super) volume_uuids: HashMap<String, usize>,
    /// Index of `volumes` by lowercased name (ONTAP's query matching ignores case).
    /// Invariant: `i` is in `volume_names[k]` iff `volumes[i].name` lowercased is `k`; each
    /// list ascending.
    pub(super) volume_names: HashMap<String, Vec<usize>>,
    /// The parent snapshot (uuid) of each FlexClone volume, by its parent volume's uuid.
    /// Invariant: one entry per volume whose `clone_parent` is set, under that parent; no
    /// empty list.
    pub(super) clone_children: HashMap<String, Vec<String>>,
    /// In creation order: sorted by `Lun::seq`. Only `World`'s operations add or remove LUNs,
    /// so that the LUN indices stay true. Boxed, so that removing one from the middle moves
    /// pointers rather than whole records (a delete per backup cycle at thousands of LUNs).
    #[allow(clippy::vec_box)]
    pub luns: Vec<Box<Lun>>,
    /// The `seq` the next LUN gets.
    pub(super) next_lun_seq: u64,
    /// Index of `luns` by lowercased name (ONTAP's query matching ignores case): name look-ups
    /// do not scan every LUN. Invariant: `s` is in `lun_names[k]` iff the LUN of seq `s` is
    /// in `luns` and its name lowercased is `k`; each list ascending.
    pub(super) lun_names: HashMap<String, Vec<u64>>,
    /// Index of `luns` by uuid. Invariant: `lun_uuids[u] == s` iff the LUN of seq `s` is in
    /// `luns` with uuid `u`.
    pub(super) lun_uuids: HashMap<String, u64>,
    /// The LUNs of each volume (by volume uuid). Invariant: `s` is in `volume_luns[u]` iff the
    /// LUN of seq `s` is in `luns` with `volume_uuid` `u`; each list ascending, none empty.
    pub(super) volume_luns: HashMap<String, Vec<u64>>,
    pub igroups: Vec<Igroup>,
    /// Only `World`'s operations add or remove maps, so that `lun_maps_of` stays true.
    pub lun_maps: Vec<LunMap>,
    /// The maps of each LUN (by LUN uuid) as (igroup uuid, logical unit number), in the order
    /// of `lun_maps`. Invariant: the same maps as `lun_maps` holds for that LUN; none empty.
    pub(super) lun_maps_of: HashMap<String, Vec<(String, u32)>>,
    /// FlexClone LUNs sharing blocks with a snapshot, by the uuid of the volume holding both.
    /// Invariant: no empty list.
    pub(super) block_sharing: HashMap<String, Vec<BlockSharing>>,
    pub jobs: Vec<Job>,
}

/// A user allowed by HTTP Basic auth.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub password: String,
}

/// Something the clock did while advancing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClockEvent {
    pub cluster: String,
    pub volume: String,
    pub snapshot: String,
    /// `taken`, `deleted` (retention), or `skipped` (with `reason`).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    pub time: DateTime<FixedOffset>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
