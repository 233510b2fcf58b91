//! The observed ONTAP inventory: what discovery learns from a cluster, in domain terms.
//!
//! `ontap` fills these from ONTAP's JSON (`ontap::wire`) and the simulator from its world; the
//! planner reads them as [`Observed`]. No wire format and no I/O here.

use crate::timeline::Recurrence;

/// Cluster identity and clock facts (`GET /api/cluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub name: String,
    pub uuid: String,
    /// For example `9.14.1`.
    pub version: String,
    /// IANA or traditional zone name from `timezone.name`.
    pub timezone: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub uuid: String,
    pub name: String,
    pub svm: String,
    /// Name of the volume's snapshot policy (`snapshot_policy.name`).
    pub snapshot_policy: Option<String>,
}

/// What a volume's settings say about the snapshots a backup relies on
/// (`GET /api/storage/volumes` with the space, locking and naming fields): what `doctor` reads
/// besides the planning inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSettings {
    pub uuid: String,
    pub name: String,
    pub svm: String,
    /// `space.snapshot.autodelete`.
    pub autodelete: Autodelete,
    /// `snapshot_locking_enabled`: tamper-proof snapshots (their `snaplock_expiry_time`).
    pub snapshot_locking: bool,
    /// `scheduled_snapshot_naming_scheme`: `create_time` or `ordinal`; `None` when ONTAP did
    /// not say.
    pub naming_scheme: Option<String>,
    /// `space.snapshot.reserve_percent`.
    pub reserve_percent: Option<u64>,
    /// `space.snapshot.reserve_size`, bytes.
    pub reserve_size: Option<u64>,
    /// `space.snapshot.used`: bytes all the volume's snapshots take.
    pub snapshot_used: Option<u64>,
}

/// `space.snapshot.autodelete` (`autodelete_enabled`, `autodelete.commitment`,
/// `autodelete.trigger`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Autodelete {
    pub enabled: bool,
    /// `try`, `disrupt` or `destroy`; `None` when ONTAP did not say.
    pub commitment: Option<String>,
    /// `volume` or `snap_reserve`; `None` when ONTAP did not say.
    pub trigger: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPolicyInfo {
    pub name: String,
    pub copies: Vec<PolicyCopies>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyCopies {
    pub schedule: String,
    pub count: u32,
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleInfo {
    pub name: String,
    pub recurrence: Recurrence,
}

/// What discovery learned from the clusters; empty when planning offline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub clusters: Vec<ObservedCluster>,
}

/// One cluster as `/api/cluster`, volumes, snapshot policies and schedules described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedCluster {
    /// The policy's name for the cluster.
    pub name: String,
    pub info: ClusterInfo,
    pub volumes: Vec<VolumeInfo>,
    pub snapshot_policies: Vec<SnapshotPolicyInfo>,
    pub schedules: Vec<ScheduleInfo>,
}

impl Observed {
    /// Nothing observed: every volume must be fully described by the policy.
    pub fn offline() -> Observed {
        Observed::default()
    }

    /// The observed cluster the policy calls `name`.
    pub fn cluster(&self, name: &str) -> Option<&ObservedCluster> {
        self.clusters.iter().find(|c| c.name == name)
    }
}
