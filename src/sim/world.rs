//! The simulated world: clusters and everything in them, and the typed operations on it.
//!
//! Everything here is synchronous and owns no clock: callers pass time in through
//! [`World::advance_to`]. The REST layer (`rest.rs`) and the in-process client (`client.rs`) are
//! thin wrappers over these operations, so both behave identically.
//!
//! Invariants: object names are unique per kind within a cluster (volumes and LUN paths per SVM,
//! snapshots per volume); `World::now` never moves backwards; every `Volume::next_fires` entry is
//! the next instant strictly after `now` of the matching `copies` entry of the volume's policy.

use std::collections::BTreeSet;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::timeline::Recurrence;

/// Lock owner shown on a snapshot backing a SnapRestore ("traditional") LUN clone (assumption).
pub const OWNER_LUN_CLONE: &str = "lun_clone";
/// Lock owner shown on a snapshot while a FlexClone LUN shares its blocks (assumption).
pub const OWNER_FILE_CLONE: &str = "file_clone_dependent";
/// Lock owner shown on the parent snapshot of a FlexClone volume (reference notes §4.1).
pub const OWNER_VOLUME_CLONE: &str = "volume_clone";

/// ONTAP's text for a locked snapshot (reference notes §1.3, §2.4).
pub fn locked_message(snapshot: &str, volume: &str, svm: &str) -> String {
    format!(
        "Snapshot copy \"{snapshot}\" of volume \"{volume}\" on Vserver \"{svm}\" has not expired or is locked. \
         Use the \"snapshot show -fields owners, expiry-time\" command to view the expiry and lock status of the Snapshot copy."
    )
}

/// What scheduled rotation does when the oldest snapshot it should delete is locked.
/// ONTAP does not document this (reference notes §5.4, §9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockedOldest {
    /// Keep the locked snapshot, delete the oldest unlocked ones instead; the count is exceeded
    /// by the locked ones (default).
    Skip,
    /// Stop rotating at the first locked snapshot; nothing newer is deleted either.
    Stall,
    /// Do not take the new scheduled snapshot.
    FailCreate,
}

/// Behaviour switches where ONTAP is undocumented or configurable. See `docs/simulator.md`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Knobs {
    /// Snapshot, LUN and volume create/delete answer 202 + job (as ONTAP does) instead of 201/200.
    pub async_mutations: bool,
    pub locked_oldest: LockedOldest,
    /// Code of the failed delete of a locked snapshot: 1638555 (observed) or 1638543 ("has an owner").
    pub locked_delete_code: u64,
    /// How long a FlexClone LUN created from a snapshot shares blocks with it.
    pub block_sharing_seconds: u64,
    /// How long a job stays queryable after it ends (ONTAP default 300 s, reference notes §6.2).
    pub job_retention_seconds: u64,
    /// FlexVol limit from ONTAP 9.4 (reference notes §2.1).
    pub max_snapshots_per_volume: usize,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            async_mutations: true,
            locked_oldest: LockedOldest::Skip,
            locked_delete_code: 1_638_555,
            block_sharing_seconds: 60,
            job_retention_seconds: 300,
            max_snapshots_per_volume: 1023,
        }
    }
}

/// Injected faults, set by configuration or `POST /simulator/v1/faults`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Added to every `/api` request, in milliseconds of real time.
    pub latency_ms: u64,
    /// Fraction (0..=1) of `/api` requests answered with HTTP 500 and an error envelope.
    pub error_rate: f64,
    /// Fraction (0..=1) of `/api` requests whose connection is dropped without an answer.
    pub drop_rate: f64,
    /// Fraction (0..=1) of jobs that fail (the operation is then not performed).
    pub job_failure_rate: f64,
    /// Seconds of simulator time a job stays `running` before it ends.
    pub job_duration_seconds: u64,
    /// The next this-many `/api` POST, PATCH and DELETE requests that succeed are applied and
    /// then their connection is dropped without an answer: a reply lost after the cluster
    /// acted. Each such request counts it down by one.
    pub drop_after_apply: u64,
}

/// Typed failures of world operations; each maps to an ONTAP code and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("entry doesn't exist")]
    NotFound { code: u64, target: String },
    #[error("{message}")]
    Invalid { target: String, message: String },
    #[error("{message}")]
    Duplicate {
        code: u64,
        target: String,
        message: String,
    },
    /// Delete of a snapshot that has owners.
    #[error("{}", locked_message(snapshot, volume, svm))]
    SnapshotLocked {
        code: u64,
        snapshot: String,
        volume: String,
        svm: String,
    },
    #[error("Snapshot operation not allowed due to clones backed by snapshots. Try again after sometime.")]
    BlockSharing { volume: String },
    #[error("The LUN is mapped and cannot be deleted without specifying the allow_delete_while_mapped query parameter.")]
    LunMapped { lun: String },
    #[error("{message}")]
    Unlicensed {
        code: u64,
        package: String,
        message: String,
    },
    #[error("Failed to create snapshot: the maximum number of snapshots ({max}) for volume \"{volume}\" has been reached.")]
    TooManySnapshots { volume: String, max: usize },
    #[error("Failed to delete volume \"{volume}\" because it has one or more clones.")]
    HasClones { volume: String },
    #[error("{message}")]
    InUse {
        code: u64,
        target: String,
        message: String,
    },
    /// Injected by the `job_failure_rate` fault.
    #[error("simulated job failure (fault injection)")]
    InjectedJobFailure,
}

/// ONTAP codes used below that have no constant in `crate::ontap`.
pub mod codes {
    pub const NOT_FOUND: u64 = 4;
    pub const INVALID: u64 = 2;
    pub const SNAPSHOT_NOT_FOUND: u64 = 1_638_600;
    pub const SNAPSHOT_EXISTS: u64 = 525_059;
    pub const TOO_MANY_SNAPSHOTS: u64 = 525_062;
    /// Assumption: ONTAP documents no code for "snapshot blocked by block sharing".
    pub const BLOCK_SHARING: u64 = 1_638_537;
    pub const LUN_NOT_FOUND: u64 = 5_374_875;
    pub const LUN_EXISTS: u64 = 5_374_242;
    /// Generic "The LUN clone request failed" (reference notes §3.2), used for a missing FlexClone license.
    pub const LUN_CLONE_FAILED: u64 = 13_565_952;
    /// "Failed to restore snapshot" (reference notes §3.4), used for a missing SnapRestore license.
    pub const RESTORE_FAILED: u64 = 524_511;
    pub const VOLUME_HAS_CLONES: u64 = 524_615;
    pub const PARENT_VOLUME_NOT_FOUND: u64 = 524_601;
    pub const ALREADY_MAPPED: u64 = 1_254_207;
    pub const MAP_NOT_FOUND: u64 = 5_374_922;
    pub const DUPLICATE: u64 = 1;
    pub const SIMULATED_FAULT: u64 = 9_999_999;
}

impl SimError {
    /// The ONTAP error code.
    pub fn code(&self) -> u64 {
        match self {
            SimError::NotFound { code, .. }
            | SimError::Duplicate { code, .. }
            | SimError::SnapshotLocked { code, .. }
            | SimError::Unlicensed { code, .. }
            | SimError::InUse { code, .. } => *code,
            SimError::Invalid { .. } => codes::INVALID,
            SimError::BlockSharing { .. } => codes::BLOCK_SHARING,
            SimError::LunMapped { .. } => crate::ontap::LUN_MAPPED,
            SimError::TooManySnapshots { .. } => codes::TOO_MANY_SNAPSHOTS,
            SimError::HasClones { .. } => codes::VOLUME_HAS_CLONES,
            SimError::InjectedJobFailure => codes::SIMULATED_FAULT,
        }
    }

    /// The HTTP status when the error is answered synchronously.
    pub fn http_status(&self) -> u16 {
        match self {
            SimError::NotFound { .. } => 404,
            SimError::Invalid { .. } | SimError::LunMapped { .. } | SimError::Unlicensed { .. } => {
                400
            }
            SimError::InjectedJobFailure => 500,
            _ => 409,
        }
    }

    /// The `target` of the error envelope.
    pub fn target(&self) -> String {
        match self {
            SimError::NotFound { target, .. }
            | SimError::Invalid { target, .. }
            | SimError::Duplicate { target, .. }
            | SimError::InUse { target, .. } => target.clone(),
            SimError::SnapshotLocked { snapshot, .. } => snapshot.clone(),
            SimError::BlockSharing { volume }
            | SimError::TooManySnapshots { volume, .. }
            | SimError::HasClones { volume } => volume.clone(),
            SimError::LunMapped { lun } => lun.clone(),
            SimError::Unlicensed { package, .. } => package.clone(),
            SimError::InjectedJobFailure => String::new(),
        }
    }

    /// Whether ONTAP reports this inside a job (202 first) rather than as an immediate error.
    pub fn is_job_failure(&self) -> bool {
        matches!(
            self,
            SimError::SnapshotLocked { .. }
                | SimError::BlockSharing { .. }
                | SimError::TooManySnapshots { .. }
                | SimError::InjectedJobFailure
        )
    }

    fn not_found(code: u64, target: impl Into<String>) -> SimError {
        SimError::NotFound {
            code,
            target: target.into(),
        }
    }

    fn invalid(target: impl Into<String>, message: impl Into<String>) -> SimError {
        SimError::Invalid {
            target: target.into(),
            message: message.into(),
        }
    }
}

pub type SimResult<T> = Result<T, SimError>;

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
    pub name: String,
    pub comment: Option<String>,
    pub create_time: DateTime<Utc>,
    pub size: u64,
    /// The policy prefix when a schedule took it (rotation counts these).
    pub schedule_prefix: Option<String>,
    /// SnapRestore clones (by clone LUN uuid) this snapshot captured: they pin their backing snapshot.
    pub captures: Vec<String>,
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
    pub clone_parent: Option<CloneParent>,
}

#[derive(Debug, Clone)]
pub struct Lun {
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

/// A SnapRestore clone of a LUN and the snapshot backing it.
#[derive(Debug, Clone)]
pub struct RestoreClone {
    pub lun_uuid: String,
    pub volume_uuid: String,
    pub backing_snapshot_uuid: String,
    /// `false` once the clone LUN is deleted; the record lives on while snapshots captured it.
    pub alive: bool,
}

/// A FlexClone LUN still sharing blocks with the snapshot it was cloned from.
#[derive(Debug, Clone)]
pub struct BlockSharing {
    pub volume_uuid: String,
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
    pub volumes: Vec<Volume>,
    pub luns: Vec<Lun>,
    pub igroups: Vec<Igroup>,
    pub lun_maps: Vec<LunMap>,
    pub restore_clones: Vec<RestoreClone>,
    pub block_sharing: Vec<BlockSharing>,
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

/// The whole simulated world.
#[derive(Debug, Clone)]
pub struct World {
    now: DateTime<Utc>,
    pub knobs: Knobs,
    pub faults: Faults,
    pub users: Vec<User>,
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

    pub fn add_cluster(&mut self, name: &str, version: &str, tz: Tz) -> usize {
        let mut licenses = BTreeSet::new();
        licenses.insert("base".to_string());
        self.clusters.push(Cluster {
            name: name.to_string(),
            uuid: World::new_uuid(),
            version: version.to_string(),
            tz,
            licenses,
            svms: Vec::new(),
            schedules: Vec::new(),
            policies: Vec::new(),
            volumes: Vec::new(),
            luns: Vec::new(),
            igroups: Vec::new(),
            lun_maps: Vec::new(),
            restore_clones: Vec::new(),
            block_sharing: Vec::new(),
            jobs: Vec::new(),
        });
        self.clusters.len() - 1
    }

    /// Adds ONTAP's built-in schedules (`hourly` @:05, `daily` @0:10, `weekly` Sun@0:15) and
    /// policies (`default`, `none`) where the cluster does not define them (reference notes §5.1–5.2).
    pub fn add_builtins(&mut self, ci: usize) {
        use crate::timeline::CronSpec;
        let builtins = [
            ("hourly", CronSpec::from_lists(&[5], &[], &[], &[], &[])),
            ("daily", CronSpec::from_lists(&[10], &[0], &[], &[], &[])),
            ("weekly", CronSpec::from_lists(&[15], &[0], &[], &[0], &[])),
        ];
        for (name, spec) in builtins {
            let spec = spec.expect("built-in schedules are valid");
            if self.clusters[ci].schedules.iter().all(|s| s.name != name) {
                self.clusters[ci].schedules.push(Schedule {
                    uuid: World::new_uuid(),
                    name: name.to_string(),
                    recurrence: Recurrence::Cron(spec),
                });
            }
        }
        let copy = |schedule: &str, count| PolicyCopy {
            schedule: schedule.to_string(),
            count,
            prefix: None,
        };
        let policies = [
            (
                "default",
                vec![copy("hourly", 6), copy("daily", 2), copy("weekly", 2)],
            ),
            ("none", vec![]),
        ];
        for (name, copies) in policies {
            if self.clusters[ci].policies.iter().all(|p| p.name != name) {
                self.clusters[ci].policies.push(SnapshotPolicy {
                    uuid: World::new_uuid(),
                    name: name.to_string(),
                    comment: String::new(),
                    enabled: true,
                    copies,
                });
            }
        }
    }

    pub fn cluster_index(&self, name: &str) -> SimResult<usize> {
        self.clusters
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| SimError::not_found(codes::NOT_FOUND, name))
    }

    // ----- configuration-time and REST creation of containers -----

    pub fn add_svm(&mut self, ci: usize, name: &str) -> SimResult<String> {
        let c = &mut self.clusters[ci];
        if c.svms.iter().any(|s| s.name == name) {
            return Err(SimError::Duplicate {
                code: codes::DUPLICATE,
                target: name.to_string(),
                message: format!("duplicate entry: SVM \"{name}\" already exists"),
            });
        }
        let uuid = World::new_uuid();
        c.svms.push(Svm {
            uuid: uuid.clone(),
            name: name.to_string(),
        });
        Ok(uuid)
    }

    pub fn add_schedule(
        &mut self,
        ci: usize,
        name: &str,
        recurrence: Recurrence,
    ) -> SimResult<String> {
        let c = &mut self.clusters[ci];
        if c.schedules.iter().any(|s| s.name == name) {
            return Err(SimError::Duplicate {
                code: codes::DUPLICATE,
                target: "name".into(),
                message: format!("duplicate entry: schedule \"{name}\" already exists"),
            });
        }
        let uuid = World::new_uuid();
        c.schedules.push(Schedule {
            uuid: uuid.clone(),
            name: name.to_string(),
            recurrence,
        });
        Ok(uuid)
    }

    pub fn add_policy(
        &mut self,
        ci: usize,
        name: &str,
        comment: &str,
        copies: Vec<PolicyCopy>,
    ) -> SimResult<String> {
        let c = &mut self.clusters[ci];
        if c.policies.iter().any(|p| p.name == name) {
            return Err(SimError::Duplicate {
                code: 1_638_527,
                target: "name".into(),
                message: format!("Snapshot policy \"{name}\" already exists."),
            });
        }
        for copy in &copies {
            if c.schedules.iter().all(|s| s.name != copy.schedule) {
                return Err(SimError::NotFound {
                    code: 1_638_413,
                    target: format!("copies.schedule.name {}", copy.schedule),
                });
            }
        }
        let uuid = World::new_uuid();
        c.policies.push(SnapshotPolicy {
            uuid: uuid.clone(),
            name: name.to_string(),
            comment: comment.to_string(),
            enabled: true,
            copies,
        });
        Ok(uuid)
    }

    pub fn add_license(&mut self, ci: usize, package: &str) {
        self.clusters[ci].licenses.insert(package.to_string());
    }

    pub fn licensed(&self, ci: usize, package: &str) -> bool {
        self.clusters[ci].licenses.contains(package)
    }

    pub fn svm_index(&self, ci: usize, name: &str) -> SimResult<usize> {
        self.clusters[ci]
            .svms
            .iter()
            .position(|s| s.name == name || s.uuid == name)
            .ok_or_else(|| SimError::not_found(2_621_462, format!("svm {name}")))
    }

    pub fn volume_index(&self, ci: usize, uuid: &str) -> SimResult<usize> {
        self.clusters[ci]
            .volumes
            .iter()
            .position(|v| v.uuid == uuid)
            .ok_or_else(|| SimError::not_found(codes::NOT_FOUND, format!("volume {uuid}")))
    }

    pub fn volume_by_name(&self, ci: usize, name: &str) -> SimResult<usize> {
        self.clusters[ci]
            .volumes
            .iter()
            .position(|v| v.name == name)
            .ok_or_else(|| SimError::not_found(codes::NOT_FOUND, format!("volume {name}")))
    }

    pub fn create_volume(
        &mut self,
        ci: usize,
        svm: &str,
        name: &str,
        size: u64,
        policy: &str,
    ) -> SimResult<String> {
        let si = self.svm_index(ci, svm)?;
        let svm = self.clusters[ci].svms[si].name.clone();
        let c = &self.clusters[ci];
        if c.volumes.iter().any(|v| v.name == name) {
            return Err(SimError::Duplicate {
                code: 917_505,
                target: "name".into(),
                message: format!("Duplicate volume name {name}."),
            });
        }
        if c.policies.iter().all(|p| p.name != policy) {
            return Err(SimError::invalid(
                "snapshot_policy.name",
                format!("Snapshot policy \"{policy}\" does not exist."),
            ));
        }
        let uuid = World::new_uuid();
        self.clusters[ci].volumes.push(Volume {
            uuid: uuid.clone(),
            name: name.to_string(),
            svm,
            size,
            snapshot_policy: policy.to_string(),
            snapshot_clone_dependency: false,
            create_time: self.now,
            snapshots: Vec::new(),
            next_fires: Vec::new(),
            clone_parent: None,
        });
        let vi = self.clusters[ci].volumes.len() - 1;
        self.reschedule(ci, vi);
        Ok(uuid)
    }

    /// Sets a volume's snapshot policy and recomputes its next fire instants from `now`.
    pub fn set_volume_policy(&mut self, ci: usize, vi: usize, policy: &str) -> SimResult<()> {
        if self.clusters[ci].policies.iter().all(|p| p.name != policy) {
            return Err(SimError::invalid(
                "snapshot_policy.name",
                format!("Snapshot policy \"{policy}\" does not exist."),
            ));
        }
        self.clusters[ci].volumes[vi].snapshot_policy = policy.to_string();
        self.reschedule(ci, vi);
        Ok(())
    }

    fn reschedule(&mut self, ci: usize, vi: usize) {
        let now = self.now;
        let c = &self.clusters[ci];
        let v = &c.volumes[vi];
        let fires = match c.policies.iter().find(|p| p.name == v.snapshot_policy) {
            Some(p) if p.enabled => p
                .copies
                .iter()
                .map(|copy| {
                    c.schedules
                        .iter()
                        .find(|s| s.name == copy.schedule)
                        .and_then(|s| s.recurrence.next_after(c.tz, now))
                })
                .collect(),
            _ => Vec::new(),
        };
        self.clusters[ci].volumes[vi].next_fires = fires;
    }

    /// Recomputes every volume's next fire instants (after a policy or schedule changes).
    pub fn reschedule_all(&mut self) {
        for ci in 0..self.clusters.len() {
            for vi in 0..self.clusters[ci].volumes.len() {
                self.reschedule(ci, vi);
            }
        }
    }

    // ----- time -----

    /// Moves time forward to `to`, taking every due scheduled snapshot in time order (ties: cluster,
    /// volume, then policy order). Returns what happened. Does nothing when `to <= now`.
    pub fn advance_to(&mut self, to: DateTime<Utc>) -> Vec<ClockEvent> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut events = Vec::new();
        // Firing never adds or removes volumes or policies, so (cluster, volume, copy) indices
        // stay valid for the whole walk; the heap yields instants in order (ties: cluster,
        // volume, then policy order).
        let mut due = BinaryHeap::new();
        for (ci, c) in self.clusters.iter().enumerate() {
            for (vi, v) in c.volumes.iter().enumerate() {
                for (k, fire) in v.next_fires.iter().enumerate() {
                    if let Some(at) = fire.filter(|at| *at <= to) {
                        due.push(Reverse((at, ci, vi, k)));
                    }
                }
            }
        }
        let volume_clones: Vec<bool> = self
            .clusters
            .iter()
            .map(|c| c.volumes.iter().any(|v| v.clone_parent.is_some()))
            .collect();
        while let Some(Reverse((at, ci, vi, k))) = due.pop() {
            self.now = at;
            self.fire(ci, vi, k, volume_clones[ci], &mut events);
            let c = &self.clusters[ci];
            let v = &c.volumes[vi];
            let next = c
                .policies
                .iter()
                .find(|p| p.name == v.snapshot_policy)
                .and_then(|p| p.copies.get(k))
                .and_then(|copy| c.schedules.iter().find(|s| s.name == copy.schedule))
                .and_then(|s| s.recurrence.next_after(c.tz, at));
            self.clusters[ci].volumes[vi].next_fires[k] = next;
            if let Some(next) = next.filter(|n| *n <= to) {
                due.push(Reverse((next, ci, vi, k)));
            }
        }
        if to > self.now {
            self.now = to;
        }
        self.housekeeping();
        events
    }

    /// Drops expired jobs, finished block sharing and unreferenced SnapRestore clone records.
    fn housekeeping(&mut self) {
        let now = self.now;
        let keep = TimeDelta::seconds(self.knobs.job_retention_seconds as i64);
        for c in &mut self.clusters {
            c.jobs.retain(|j| now < j.end + keep);
            c.block_sharing.retain(|b| now < b.until);
        }
    }

    fn fire(
        &mut self,
        ci: usize,
        vi: usize,
        k: usize,
        volume_clones: bool,
        events: &mut Vec<ClockEvent>,
    ) {
        let now = self.now;
        let c = &self.clusters[ci];
        let v = &c.volumes[vi];
        let Some(copy) = c
            .policies
            .iter()
            .find(|p| p.name == v.snapshot_policy)
            .and_then(|p| p.copies.get(k))
            .cloned()
        else {
            return;
        };
        let prefix = copy.effective_prefix().to_string();
        let local = now.with_timezone(&c.tz);
        let name = format!("{prefix}.{}", local.format("%Y-%m-%d_%H%M"));
        let event =
            |kind, snapshot: &str, uuid: Option<String>, reason: Option<String>| ClockEvent {
                cluster: c.name.clone(),
                volume: v.name.clone(),
                snapshot: snapshot.to_string(),
                kind,
                uuid,
                time: local.fixed_offset(),
                reason,
            };
        // Which existing snapshots of this schedule rotation deletes before the new one is taken.
        let mut ours: Vec<usize> = (0..v.snapshots.len())
            .filter(|&i| v.snapshots[i].schedule_prefix.as_deref() == Some(prefix.as_str()))
            .collect();
        ours.sort_by_key(|&i| v.snapshots[i].create_time);
        let count = copy.count.max(1) as usize;
        // Owners are only possible with clones around; skip the lookup otherwise (fast path).
        let maybe_locked =
            volume_clones || !c.restore_clones.is_empty() || !c.block_sharing.is_empty();
        let locked: Vec<bool> = ours
            .iter()
            .map(|&i| maybe_locked && !self.owners_at((ci, vi, i)).is_empty())
            .collect();
        let mut doomed = Vec::new();
        match self.knobs.locked_oldest {
            LockedOldest::Skip => {
                // Locked snapshots are kept and not counted: the unlocked ones rotate to `count`.
                let unlocked: Vec<usize> = ours
                    .iter()
                    .zip(&locked)
                    .filter(|(_, l)| !**l)
                    .map(|(i, _)| *i)
                    .collect();
                let excess = (unlocked.len() + 1).saturating_sub(count);
                doomed.extend(unlocked.into_iter().take(excess));
            }
            LockedOldest::Stall | LockedOldest::FailCreate => {
                let excess = (ours.len() + 1).saturating_sub(count);
                for (&i, &is_locked) in ours.iter().zip(&locked).take(excess) {
                    if !is_locked {
                        doomed.push(i);
                    } else if self.knobs.locked_oldest == LockedOldest::Stall {
                        break;
                    } else {
                        events.push(event(
                            "skipped",
                            &name,
                            None,
                            Some(format!(
                                "rotation: oldest snapshot {} is locked",
                                v.snapshots[i].name
                            )),
                        ));
                        return;
                    }
                }
            }
        }
        if let Err(err) = self.check_can_snapshot(ci, vi, &name) {
            events.push(event("skipped", &name, None, Some(err.to_string())));
            return;
        }
        let mut deleted = Vec::new();
        for &i in &doomed {
            let s = &v.snapshots[i];
            deleted.push(event("deleted", &s.name, Some(s.uuid.clone()), None));
        }
        let taken_uuid = World::new_uuid();
        let taken = event("taken", &name, Some(taken_uuid.clone()), None);
        let mut doomed_desc = doomed;
        doomed_desc.sort_unstable_by(|a, b| b.cmp(a));
        for i in doomed_desc {
            self.remove_snapshot(ci, vi, i);
        }
        events.extend(deleted);
        self.push_snapshot(ci, vi, taken_uuid, &name, None, Some(prefix));
        events.push(taken);
    }

    // ----- snapshots -----

    fn check_can_snapshot(&self, ci: usize, vi: usize, name: &str) -> SimResult<()> {
        let c = &self.clusters[ci];
        let v = &c.volumes[vi];
        if v.snapshots.iter().any(|s| s.name == name) {
            return Err(SimError::Duplicate {
                code: codes::SNAPSHOT_EXISTS,
                target: "name".into(),
                message: format!(
                    "Snapshot copy \"{name}\" already exists on volume \"{}\".",
                    v.name
                ),
            });
        }
        if c.block_sharing
            .iter()
            .any(|b| b.volume_uuid == v.uuid && self.now < b.until)
        {
            return Err(SimError::BlockSharing {
                volume: v.name.clone(),
            });
        }
        if v.snapshots.len() >= self.knobs.max_snapshots_per_volume {
            return Err(SimError::TooManySnapshots {
                volume: v.name.clone(),
                max: self.knobs.max_snapshots_per_volume,
            });
        }
        Ok(())
    }

    fn push_snapshot(
        &mut self,
        ci: usize,
        vi: usize,
        uuid: String,
        name: &str,
        comment: Option<String>,
        schedule_prefix: Option<String>,
    ) -> usize {
        let now = self.now;
        let c = &mut self.clusters[ci];
        let vol_uuid = c.volumes[vi].uuid.clone();
        // Every live SnapRestore clone on this volume is frozen into the new snapshot (§7.2).
        let captures = c
            .restore_clones
            .iter()
            .filter(|r| r.alive && r.volume_uuid == vol_uuid)
            .map(|r| r.lun_uuid.clone())
            .collect();
        let size = 4096 * (1 + c.volumes[vi].snapshots.len() as u64 % 64);
        c.volumes[vi].snapshots.push(Snapshot {
            uuid,
            name: name.to_string(),
            comment,
            create_time: now,
            size,
            schedule_prefix,
            captures,
        });
        c.volumes[vi].snapshots.len() - 1
    }

    fn remove_snapshot(&mut self, ci: usize, vi: usize, si: usize) {
        let c = &mut self.clusters[ci];
        c.volumes[vi].snapshots.remove(si);
        let vol = &c.volumes[vi];
        // A deleted SnapRestore clone whose last capturing snapshot is gone is forgotten.
        c.restore_clones.retain(|r| {
            r.alive
                || r.volume_uuid != vol.uuid
                || vol
                    .snapshots
                    .iter()
                    .any(|s| s.captures.contains(&r.lun_uuid))
        });
    }

    pub fn snapshot_index(&self, ci: usize, vi: usize, uuid_or_name: &str) -> SimResult<usize> {
        self.clusters[ci].volumes[vi]
            .snapshots
            .iter()
            .position(|s| s.uuid == uuid_or_name || s.name == uuid_or_name)
            .ok_or_else(|| SimError::not_found(codes::SNAPSHOT_NOT_FOUND, uuid_or_name))
    }

    /// The lock owners of a snapshot, as `owners` shows them.
    pub fn owners(&self, ci: usize, vi: usize, si: usize) -> Vec<&'static str> {
        self.owners_at((ci, vi, si))
    }

    fn owners_at(&self, (ci, vi, si): SnapAt) -> Vec<&'static str> {
        let c = &self.clusters[ci];
        let v = &c.volumes[vi];
        let s = &v.snapshots[si];
        let mut owners = Vec::new();
        let pinned = c.restore_clones.iter().any(|r| {
            r.volume_uuid == v.uuid
                && r.backing_snapshot_uuid == s.uuid
                && (r.alive
                    || (!v.snapshot_clone_dependency
                        && v.snapshots.iter().any(|t| t.captures.contains(&r.lun_uuid))))
        });
        if pinned {
            owners.push(OWNER_LUN_CLONE);
        }
        if c.block_sharing
            .iter()
            .any(|b| b.snapshot_uuid == s.uuid && self.now < b.until)
        {
            owners.push(OWNER_FILE_CLONE);
        }
        if c.volumes.iter().any(|w| {
            w.clone_parent
                .as_ref()
                .is_some_and(|p| p.volume_uuid == v.uuid && p.snapshot_uuid == s.uuid)
        }) {
            owners.push(OWNER_VOLUME_CLONE);
        }
        owners
    }

    /// `POST /api/storage/volumes/{uuid}/snapshots`: returns the new snapshot's uuid.
    pub fn create_snapshot(
        &mut self,
        ci: usize,
        vi: usize,
        name: &str,
        comment: Option<String>,
    ) -> SimResult<String> {
        if name.is_empty() || name.len() > 255 || name.contains('/') {
            return Err(SimError::Invalid {
                target: "name".into(),
                message: format!("Invalid snapshot name \"{name}\"."),
            });
        }
        self.check_can_snapshot(ci, vi, name)?;
        let uuid = World::new_uuid();
        self.push_snapshot(ci, vi, uuid.clone(), name, comment, None);
        Ok(uuid)
    }

    /// Checks that a snapshot may be deleted (no owners).
    pub fn check_delete_snapshot(&self, ci: usize, vi: usize, si: usize) -> SimResult<()> {
        if self.owners_at((ci, vi, si)).is_empty() {
            return Ok(());
        }
        let v = &self.clusters[ci].volumes[vi];
        Err(SimError::SnapshotLocked {
            code: self.knobs.locked_delete_code,
            snapshot: v.snapshots[si].name.clone(),
            volume: v.name.clone(),
            svm: v.svm.clone(),
        })
    }

    /// `DELETE /api/storage/volumes/{uuid}/snapshots/{uuid}`.
    pub fn delete_snapshot(&mut self, ci: usize, vi: usize, si: usize) -> SimResult<()> {
        self.check_delete_snapshot(ci, vi, si)?;
        self.remove_snapshot(ci, vi, si);
        Ok(())
    }

    /// `PATCH` of a snapshot's `name` and/or `comment`.
    pub fn modify_snapshot(
        &mut self,
        ci: usize,
        vi: usize,
        si: usize,
        name: Option<&str>,
        comment: Option<String>,
    ) -> SimResult<()> {
        if let Some(name) = name {
            let v = &self.clusters[ci].volumes[vi];
            if v.snapshots
                .iter()
                .enumerate()
                .any(|(i, s)| i != si && s.name == name)
            {
                return Err(SimError::Duplicate {
                    code: codes::SNAPSHOT_EXISTS,
                    target: "name".into(),
                    message: format!("Snapshot copy \"{name}\" already exists."),
                });
            }
            self.clusters[ci].volumes[vi].snapshots[si].name = name.to_string();
        }
        if let Some(comment) = comment {
            self.clusters[ci].volumes[vi].snapshots[si].comment = Some(comment);
        }
        Ok(())
    }

    // ----- LUNs -----

    pub fn lun_index(&self, ci: usize, uuid_or_path: &str) -> SimResult<usize> {
        self.clusters[ci]
            .luns
            .iter()
            .position(|l| l.uuid == uuid_or_path || l.name == uuid_or_path)
            .ok_or_else(|| SimError::not_found(codes::LUN_NOT_FOUND, uuid_or_path))
    }

    fn lun_volume(&self, ci: usize, path: &str) -> SimResult<(usize, String)> {
        let rest = path.strip_prefix("/vol/").ok_or_else(|| {
            SimError::invalid("name", format!("LUN path \"{path}\" must start with /vol/"))
        })?;
        let (vol, leaf) = rest.split_once('/').ok_or_else(|| {
            SimError::invalid("name", format!("LUN path \"{path}\" has no LUN name"))
        })?;
        if leaf.is_empty() || leaf.contains('/') {
            return Err(SimError::invalid(
                "name",
                format!("invalid LUN path \"{path}\""),
            ));
        }
        Ok((self.volume_by_name(ci, vol)?, leaf.to_string()))
    }

    fn push_lun(
        &mut self,
        ci: usize,
        vi: usize,
        path: &str,
        size: u64,
        os_type: &str,
        clone: bool,
    ) -> SimResult<String> {
        let c = &self.clusters[ci];
        if c.luns.iter().any(|l| l.name == path) {
            return Err(SimError::Duplicate {
                code: codes::LUN_EXISTS,
                target: "name".into(),
                message: format!("A LUN or NVMe namespace already exists at path \"{path}\"."),
            });
        }
        let uuid = World::new_uuid();
        let serial = format!("wS{:010}", c.luns.len() + 1);
        let lun = Lun {
            uuid: uuid.clone(),
            name: path.to_string(),
            svm: c.volumes[vi].svm.clone(),
            volume_uuid: c.volumes[vi].uuid.clone(),
            size,
            os_type: os_type.to_string(),
            serial_number: serial,
            created_as_clone: clone,
            create_time: self.now,
        };
        self.clusters[ci].luns.push(lun);
        Ok(uuid)
    }

    /// `POST /api/storage/luns` without `clone`.
    pub fn create_lun(
        &mut self,
        ci: usize,
        path: &str,
        size: u64,
        os_type: &str,
    ) -> SimResult<String> {
        let (vi, _) = self.lun_volume(ci, path)?;
        self.push_lun(ci, vi, path, size, os_type, false)
    }

    /// FlexClone LUN (`POST /api/storage/luns` with `clone.source.name =
    /// /vol/<v>/.snapshot/<s>/<lun>`); the source snapshot shares blocks for
    /// `knobs.block_sharing_seconds`. A source without `.snapshot` clones the active LUN.
    pub fn clone_lun_flexclone(
        &mut self,
        ci: usize,
        source: &str,
        dest: &str,
    ) -> SimResult<String> {
        if !self.licensed(ci, "flexclone") {
            return Err(SimError::Unlicensed {
                code: codes::LUN_CLONE_FAILED,
                package: "flexclone".into(),
                message: "The LUN clone request failed: Clone operation failed to start: FlexClone license is not installed.".into(),
            });
        }
        let (dvi, _) = self.lun_volume(ci, dest)?;
        let (svi, snapshot, source_lun) = match source.split_once("/.snapshot/") {
            Some((vol_part, rest)) => {
                let (snap, lun) = rest.split_once('/').ok_or_else(|| {
                    SimError::invalid(
                        "clone.source.name",
                        format!("invalid clone source \"{source}\""),
                    )
                })?;
                let vol = vol_part.strip_prefix("/vol/").unwrap_or(vol_part);
                let vi = self.volume_by_name(ci, vol)?;
                let si = self.snapshot_index(ci, vi, snap).map_err(|_| {
                    SimError::not_found(5_374_876, format!("clone.source.name {source}"))
                })?;
                (vi, Some(si), format!("/vol/{vol}/{lun}"))
            }
            None => {
                let (vi, _) = self.lun_volume(ci, source)?;
                (vi, None, source.to_string())
            }
        };
        if svi != dvi {
            return Err(SimError::Invalid {
                target: "name".into(),
                message: "Cloning a LUN to a different volume is not supported.".into(),
            });
        }
        let li = self
            .lun_index(ci, &source_lun)
            .map_err(|_| SimError::not_found(5_374_876, format!("clone.source.name {source}")))?;
        let (size, os_type) = {
            let l = &self.clusters[ci].luns[li];
            (l.size, l.os_type.clone())
        };
        let uuid = self.push_lun(ci, dvi, dest, size, &os_type, true)?;
        if let Some(si) = snapshot {
            let until = self.now + TimeDelta::seconds(self.knobs.block_sharing_seconds as i64);
            let c = &mut self.clusters[ci];
            let sharing = BlockSharing {
                volume_uuid: c.volumes[svi].uuid.clone(),
                snapshot_uuid: c.volumes[svi].snapshots[si].uuid.clone(),
                lun_uuid: uuid.clone(),
                until,
            };
            if self.now < until {
                c.block_sharing.push(sharing);
            }
        }
        Ok(uuid)
    }

    /// SnapRestore clone (`PATCH /api/storage/volumes/{uuid}` with `restore_to.snapshot.name`,
    /// `restore_to.path` (the LUN in the snapshot) and `restore_to.restore_path` (the new LUN)).
    /// Paths may be relative to the volume (`/lun1`) or full (`/vol/v/lun1`).
    pub fn clone_lun_snaprestore(
        &mut self,
        ci: usize,
        vi: usize,
        snapshot: &str,
        path: &str,
        restore_path: &str,
    ) -> SimResult<String> {
        if !self.licensed(ci, "snaprestore") {
            return Err(SimError::Unlicensed {
                code: codes::RESTORE_FAILED,
                package: "snaprestore".into(),
                message: "Failed to restore snapshot: the SnapRestore license is not installed."
                    .into(),
            });
        }
        let si = self.snapshot_index(ci, vi, snapshot)?;
        let vol = self.clusters[ci].volumes[vi].name.clone();
        let full = |p: &str| {
            if p.starts_with("/vol/") {
                p.to_string()
            } else {
                format!("/vol/{vol}/{}", p.trim_start_matches('/'))
            }
        };
        let (source, dest) = (full(path), full(restore_path));
        let li = self.lun_index(ci, &source).map_err(|_| {
            SimError::not_found(codes::RESTORE_FAILED, format!("restore_to.path {path}"))
        })?;
        let (dvi, _) = self.lun_volume(ci, &dest)?;
        if dvi != vi {
            return Err(SimError::invalid(
                "restore_to.restore_path",
                "restore path must be inside the volume",
            ));
        }
        let (size, os_type) = {
            let l = &self.clusters[ci].luns[li];
            (l.size, l.os_type.clone())
        };
        let uuid = self.push_lun(ci, vi, &dest, size, &os_type, true)?;
        let c = &mut self.clusters[ci];
        c.restore_clones.push(RestoreClone {
            lun_uuid: uuid.clone(),
            volume_uuid: c.volumes[vi].uuid.clone(),
            backing_snapshot_uuid: c.volumes[vi].snapshots[si].uuid.clone(),
            alive: true,
        });
        Ok(uuid)
    }

    /// `DELETE /api/storage/luns/{uuid}`.
    pub fn delete_lun(
        &mut self,
        ci: usize,
        li: usize,
        allow_delete_while_mapped: bool,
    ) -> SimResult<()> {
        let c = &mut self.clusters[ci];
        let uuid = c.luns[li].uuid.clone();
        if c.lun_maps.iter().any(|m| m.lun_uuid == uuid) {
            if !allow_delete_while_mapped {
                return Err(SimError::LunMapped {
                    lun: c.luns[li].name.clone(),
                });
            }
            c.lun_maps.retain(|m| m.lun_uuid != uuid);
        }
        c.luns.remove(li);
        c.block_sharing.retain(|b| b.lun_uuid != uuid);
        for r in c.restore_clones.iter_mut().filter(|r| r.lun_uuid == uuid) {
            r.alive = false;
        }
        let volumes = &c.volumes;
        c.restore_clones.retain(|r| {
            r.alive
                || volumes.iter().any(|v| {
                    v.uuid == r.volume_uuid
                        && v.snapshots.iter().any(|s| s.captures.contains(&r.lun_uuid))
                })
        });
        Ok(())
    }

    pub fn is_mapped(&self, ci: usize, lun_uuid: &str) -> bool {
        self.clusters[ci]
            .lun_maps
            .iter()
            .any(|m| m.lun_uuid == lun_uuid)
    }

    // ----- igroups and maps -----

    pub fn create_igroup(
        &mut self,
        ci: usize,
        svm: &str,
        name: &str,
        os_type: &str,
        protocol: &str,
        initiators: Vec<String>,
    ) -> SimResult<String> {
        let si = self.svm_index(ci, svm)?;
        let c = &mut self.clusters[ci];
        if c.igroups.iter().any(|g| g.name == name) {
            return Err(SimError::Duplicate {
                code: codes::DUPLICATE,
                target: "name".into(),
                message: format!("duplicate entry: igroup \"{name}\" already exists"),
            });
        }
        let uuid = World::new_uuid();
        let svm = c.svms[si].name.clone();
        c.igroups.push(Igroup {
            uuid: uuid.clone(),
            name: name.to_string(),
            svm,
            os_type: os_type.to_string(),
            protocol: protocol.to_string(),
            initiators,
        });
        Ok(uuid)
    }

    pub fn igroup_index(&self, ci: usize, uuid_or_name: &str) -> SimResult<usize> {
        self.clusters[ci]
            .igroups
            .iter()
            .position(|g| g.uuid == uuid_or_name || g.name == uuid_or_name)
            .ok_or_else(|| SimError::not_found(5_374_852, format!("igroup {uuid_or_name}")))
    }

    /// `POST /api/protocols/san/lun-maps`: returns the logical unit number.
    pub fn map_lun(&mut self, ci: usize, lun: &str, igroup: &str) -> SimResult<u32> {
        let li = self.lun_index(ci, lun)?;
        let gi = self.igroup_index(ci, igroup)?;
        let c = &mut self.clusters[ci];
        let (lun_uuid, igroup_uuid) = (c.luns[li].uuid.clone(), c.igroups[gi].uuid.clone());
        if c.lun_maps
            .iter()
            .any(|m| m.lun_uuid == lun_uuid && m.igroup_uuid == igroup_uuid)
        {
            return Err(SimError::Duplicate {
                code: codes::ALREADY_MAPPED,
                target: "lun".into(),
                message: "The LUN is already mapped to this initiator group.".into(),
            });
        }
        let used: BTreeSet<u32> = c
            .lun_maps
            .iter()
            .filter(|m| m.igroup_uuid == igroup_uuid)
            .map(|m| m.logical_unit_number)
            .collect();
        let lun_id = (0..).find(|n| !used.contains(n)).expect("a free LUN id");
        c.lun_maps.push(LunMap {
            lun_uuid,
            igroup_uuid,
            logical_unit_number: lun_id,
        });
        Ok(lun_id)
    }

    pub fn unmap_lun(&mut self, ci: usize, lun_uuid: &str, igroup_uuid: &str) -> SimResult<()> {
        let c = &mut self.clusters[ci];
        let before = c.lun_maps.len();
        c.lun_maps
            .retain(|m| !(m.lun_uuid == lun_uuid && m.igroup_uuid == igroup_uuid));
        if c.lun_maps.len() == before {
            return Err(SimError::not_found(
                codes::MAP_NOT_FOUND,
                format!("{lun_uuid}/{igroup_uuid}"),
            ));
        }
        Ok(())
    }

    // ----- FlexClone volumes -----

    /// `POST /api/storage/volumes` with `clone.is_flexclone`: creates the parent snapshot
    /// (`clone.<name>.<timestamp>`) when none is given.
    pub fn clone_volume(
        &mut self,
        ci: usize,
        svm: &str,
        name: &str,
        parent: &str,
        parent_snapshot: Option<&str>,
    ) -> SimResult<String> {
        if !self.licensed(ci, "flexclone") {
            return Err(SimError::Unlicensed {
                code: codes::LUN_CLONE_FAILED,
                package: "flexclone".into(),
                message:
                    "Failed to create FlexClone volume: the FlexClone license is not installed."
                        .into(),
            });
        }
        let pvi = self.clusters[ci]
            .volumes
            .iter()
            .position(|v| v.name == parent || v.uuid == parent)
            .ok_or_else(|| {
                SimError::not_found(
                    codes::PARENT_VOLUME_NOT_FOUND,
                    format!("clone.parent_volume {parent}"),
                )
            })?;
        if self.clusters[ci].volumes.iter().any(|v| v.name == name) {
            return Err(SimError::Duplicate {
                code: 917_505,
                target: "name".into(),
                message: format!("Duplicate volume name {name}."),
            });
        }
        let psi = match parent_snapshot {
            Some(s) => self.snapshot_index(ci, pvi, s)?,
            None => {
                let local = self.now.with_timezone(&self.clusters[ci].tz);
                let snap = format!("clone_{name}.{}", local.format("%Y-%m-%d_%H%M%S"));
                self.create_snapshot(ci, pvi, &snap, None)?;
                self.snapshot_index(ci, pvi, &snap)?
            }
        };
        let (size, policy, pvol_uuid, psnap_uuid) = {
            let p = &self.clusters[ci].volumes[pvi];
            (
                p.size,
                "none".to_string(),
                p.uuid.clone(),
                p.snapshots[psi].uuid.clone(),
            )
        };
        let uuid = self.create_volume(ci, svm, name, size, &policy)?;
        let vi = self.volume_index(ci, &uuid)?;
        self.clusters[ci].volumes[vi].clone_parent = Some(CloneParent {
            volume_uuid: pvol_uuid,
            snapshot_uuid: psnap_uuid,
        });
        Ok(uuid)
    }

    /// Splits a FlexClone volume from its parent (ends immediately in the simulator).
    pub fn split_clone(&mut self, ci: usize, vi: usize) -> SimResult<()> {
        let v = &mut self.clusters[ci].volumes[vi];
        if v.clone_parent.take().is_none() {
            return Err(SimError::invalid(
                "clone.split_initiated",
                format!("volume \"{}\" is not a FlexClone volume", v.name),
            ));
        }
        Ok(())
    }

    /// `DELETE /api/storage/volumes/{uuid}` (its LUNs and snapshots go with it).
    pub fn delete_volume(&mut self, ci: usize, vi: usize) -> SimResult<()> {
        let c = &mut self.clusters[ci];
        let uuid = c.volumes[vi].uuid.clone();
        if c.volumes.iter().any(|w| {
            w.clone_parent
                .as_ref()
                .is_some_and(|p| p.volume_uuid == uuid)
        }) {
            return Err(SimError::HasClones {
                volume: c.volumes[vi].name.clone(),
            });
        }
        let luns: Vec<String> = c
            .luns
            .iter()
            .filter(|l| l.volume_uuid == uuid)
            .map(|l| l.uuid.clone())
            .collect();
        c.lun_maps.retain(|m| !luns.contains(&m.lun_uuid));
        c.luns.retain(|l| l.volume_uuid != uuid);
        c.restore_clones.retain(|r| r.volume_uuid != uuid);
        c.block_sharing.retain(|b| b.volume_uuid != uuid);
        c.volumes.remove(vi);
        Ok(())
    }

    // ----- jobs -----

    /// Records a job for an operation that already ran (or failed) now; it reports `running`
    /// for `faults.job_duration_seconds`. Returns the job uuid.
    pub fn add_job(
        &mut self,
        ci: usize,
        description: String,
        svm: Option<Svm>,
        outcome: &SimResult<()>,
    ) -> String {
        let uuid = World::new_uuid();
        let end = self.now + TimeDelta::seconds(self.faults.job_duration_seconds as i64);
        self.clusters[ci].jobs.push(Job {
            uuid: uuid.clone(),
            description,
            svm,
            start: self.now,
            end,
            outcome: outcome
                .as_ref()
                .map(|_| ())
                .map_err(|e| (e.code(), e.to_string())),
        });
        uuid
    }

    pub fn job(&self, ci: usize, uuid: &str) -> SimResult<&Job> {
        let keep = TimeDelta::seconds(self.knobs.job_retention_seconds as i64);
        self.clusters[ci]
            .jobs
            .iter()
            .find(|j| j.uuid == uuid && self.now < j.end + keep)
            .ok_or_else(|| SimError::not_found(codes::NOT_FOUND, "uuid"))
    }

    /// Whether an injected job failure should happen now (consumes a roll only when the rate is set).
    pub fn roll_job_failure(&mut self) -> bool {
        let rate = self.faults.job_failure_rate;
        rate > 0.0 && self.roll() < rate
    }

    /// Renders an instant in a cluster's offset, as ONTAP does.
    pub fn local(&self, ci: usize, t: DateTime<Utc>) -> DateTime<FixedOffset> {
        t.with_timezone(&self.clusters[ci].tz).fixed_offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::CronSpec;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// One cluster (Berlin), svm1, vol1 with LUN /vol/vol1/lun1, policy `hourly` ×`count`.
    fn world(count: u32, licenses: &[&str]) -> World {
        let mut w = World::new(t("2026-03-01T00:00:00Z"), Knobs::default());
        let ci = w.add_cluster("c1", "9.14.1", chrono_tz::Europe::Berlin);
        for l in licenses {
            w.add_license(ci, l);
        }
        w.add_svm(ci, "svm1").unwrap();
        w.add_schedule(
            ci,
            "hourly",
            Recurrence::Cron(CronSpec::parse("5 * * * *").unwrap()),
        )
        .unwrap();
        w.add_policy(
            ci,
            "p",
            "",
            vec![PolicyCopy {
                schedule: "hourly".into(),
                count,
                prefix: None,
            }],
        )
        .unwrap();
        w.add_builtins(ci);
        w.create_volume(ci, "svm1", "vol1", 1 << 30, "p").unwrap();
        w.create_lun(ci, "/vol/vol1/lun1", 1 << 20, "vmware")
            .unwrap();
        w
    }

    fn names(w: &World) -> Vec<String> {
        w.clusters[0].volumes[0]
            .snapshots
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    #[test]
    fn schedule_names_in_local_time_and_rotates_by_count() {
        let mut w = world(3, &[]);
        let events = w.advance_to(t("2026-03-01T05:00:00Z"));
        // 01:05 .. 05:05 local (UTC+1) is 00:05..04:05 UTC: 5 fires, count 3 keeps the last 3.
        assert_eq!(events.iter().filter(|e| e.kind == "taken").count(), 5);
        assert_eq!(
            names(&w),
            [
                "hourly.2026-03-01_0305",
                "hourly.2026-03-01_0405",
                "hourly.2026-03-01_0505"
            ]
        );
    }

    #[test]
    fn snaprestore_clone_chain_lock() {
        let mut w = world(10, &["snaprestore"]);
        let b = w.create_snapshot(0, 0, "backing", None).unwrap();
        let clone = w
            .clone_lun_snaprestore(0, 0, "backing", "/lun1", "/clone1")
            .unwrap();
        assert_eq!(w.owners(0, 0, 0), vec![OWNER_LUN_CLONE]);
        w.advance_to(t("2026-03-01T00:30:00Z"));
        assert_eq!(
            names(&w).len(),
            2,
            "the scheduled snapshot captured the clone"
        );
        let si = w.snapshot_index(0, 0, &b).unwrap();
        assert!(matches!(
            w.delete_snapshot(0, 0, si),
            Err(SimError::SnapshotLocked { .. })
        ));
        let li = w.lun_index(0, &clone).unwrap();
        w.delete_lun(0, li, false).unwrap();
        assert!(
            w.delete_snapshot(0, 0, si).is_err(),
            "still pinned by the scheduled snapshot"
        );
        let pin = w.snapshot_index(0, 0, "hourly.2026-03-01_0105").unwrap();
        w.delete_snapshot(0, 0, pin).unwrap();
        let si = w.snapshot_index(0, 0, &b).unwrap();
        w.delete_snapshot(0, 0, si).unwrap();
        assert!(w.clusters[0].restore_clones.is_empty());
    }

    #[test]
    fn snapshot_clone_dependency_frees_backing_after_clone_delete() {
        let mut w = world(10, &["snaprestore"]);
        w.clusters[0].volumes[0].snapshot_clone_dependency = true;
        w.create_snapshot(0, 0, "backing", None).unwrap();
        let clone = w
            .clone_lun_snaprestore(0, 0, "backing", "lun1", "clone1")
            .unwrap();
        w.advance_to(t("2026-03-01T00:30:00Z"));
        let li = w.lun_index(0, &clone).unwrap();
        w.delete_lun(0, li, false).unwrap();
        let si = w.snapshot_index(0, 0, "backing").unwrap();
        w.delete_snapshot(0, 0, si).unwrap();
    }

    #[test]
    fn flexclone_block_sharing_locks_then_frees() {
        let mut w = world(10, &[]);
        w.create_snapshot(0, 0, "b", None).unwrap();
        let err = w
            .clone_lun_flexclone(0, "/vol/vol1/.snapshot/b/lun1", "/vol/vol1/c")
            .unwrap_err();
        assert_eq!(err.code(), codes::LUN_CLONE_FAILED);
        w.add_license(0, "flexclone");
        w.clone_lun_flexclone(0, "/vol/vol1/.snapshot/b/lun1", "/vol/vol1/c")
            .unwrap();
        assert_eq!(w.owners(0, 0, 0), vec![OWNER_FILE_CLONE]);
        assert!(matches!(
            w.create_snapshot(0, 0, "x", None),
            Err(SimError::BlockSharing { .. })
        ));
        w.advance_to(t("2026-03-01T00:01:00Z"));
        assert!(w.owners(0, 0, 0).is_empty());
        w.delete_snapshot(0, 0, 0).unwrap();
    }

    #[test]
    fn volume_clone_locks_parent_snapshot_until_deleted_or_split() {
        let mut w = world(10, &["flexclone"]);
        w.create_snapshot(0, 0, "base", None).unwrap();
        let c = w
            .clone_volume(0, "svm1", "vc", "vol1", Some("base"))
            .unwrap();
        assert_eq!(w.owners(0, 0, 0), vec![OWNER_VOLUME_CLONE]);
        assert!(matches!(
            w.delete_volume(0, 0),
            Err(SimError::HasClones { .. })
        ));
        let vi = w.volume_index(0, &c).unwrap();
        w.split_clone(0, vi).unwrap();
        assert!(w.owners(0, 0, 0).is_empty());
    }

    #[test]
    fn locked_oldest_knob() {
        for (knob, expect_taken, expect_len) in [
            (LockedOldest::Skip, 3, 3),
            (LockedOldest::Stall, 3, 4),
            (LockedOldest::FailCreate, 1, 2),
        ] {
            let mut w = world(2, &["snaprestore"]);
            w.knobs.locked_oldest = knob;
            w.advance_to(t("2026-03-01T00:10:00Z"));
            w.clone_lun_snaprestore(0, 0, "hourly.2026-03-01_0105", "lun1", "c")
                .unwrap();
            let events = w.advance_to(t("2026-03-01T04:00:00Z"));
            let taken = events.iter().filter(|e| e.kind == "taken").count();
            assert_eq!(
                (knob, taken, names(&w).len()),
                (knob, expect_taken, expect_len),
                "{:?}",
                names(&w)
            );
            assert_eq!(names(&w)[0], "hourly.2026-03-01_0105");
        }
    }

    #[test]
    fn mapped_lun_delete_needs_flag_and_jobs_expire() {
        let mut w = world(1, &[]);
        w.create_igroup(0, "svm1", "g", "vmware", "iscsi", vec![])
            .unwrap();
        assert_eq!(w.map_lun(0, "/vol/vol1/lun1", "g").unwrap(), 0);
        assert_eq!(
            w.delete_lun(0, 0, false).unwrap_err().code(),
            crate::ontap::LUN_MAPPED
        );
        let job = w.add_job(0, "x".into(), None, &Ok(()));
        w.delete_lun(0, 0, true).unwrap();
        let start = w.now();
        w.advance_to(start + TimeDelta::seconds(299));
        assert!(w.job(0, &job).is_ok());
        w.advance_to(start + TimeDelta::seconds(300));
        assert!(w.job(0, &job).is_err());
    }
}
