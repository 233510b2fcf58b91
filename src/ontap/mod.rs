//! The one door to ONTAP: the `Ontap` trait, its domain types and its typed error.
//!
//! Two implementations: the REST client (`client`) and the in-process simulator (`crate::sim`).
//! Everything above this module (discovery, executor, observation) talks only to the trait.

pub mod client;
pub mod ident;
pub mod secret;
pub mod text;
pub mod tls;
pub mod via;
mod wire;

#[cfg(test)]
mod client_tests;

pub use client::{
    ClientBuildError, ClientOptions, ClientOverrides, JobPolling, RestClient, RetryPolicy,
    DEFAULT_MAX_RECORDS,
};
pub use ident::{Name, Uuid};
pub use secret::{Secret, SecretError};
pub use text::{Interner, Text};
pub use via::{Call, Layer, Resolve, Target, Via};

use chrono::{DateTime, FixedOffset};

pub use crate::domain::{
    Autodelete, ClusterInfo, PolicyCopies, ScheduleInfo, SnapshotPolicyInfo, VolumeInfo,
    VolumeSettings,
};

/// Volumes named in one query of a re-read (`volume.uuid=a|b|…`): about 1.5 KB of uuids, well
/// within what HTTP servers take in a request line.
pub const VOLUMES_PER_QUERY: usize = 40;

/// A uuid that can stand in an OR list of a query (`a|b|…`): letters, digits and `-` only, so
/// none of it reads as one of ONTAP's query operators (`|`, `*`, `!`, `<`, `>`).
pub fn plain_uuid(uuid: &str) -> bool {
    !uuid.is_empty() && uuid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A volume as the mutating calls need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRef {
    pub uuid: String,
    pub name: String,
    pub svm: String,
}

/// A license package's state (`/api/cluster/licensing/licenses/{name}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseState {
    Compliant,
    Noncompliant,
    Unlicensed,
    Unknown,
}

/// A snapshot as listed by `/api/storage/volumes/*/snapshots`.
///
/// The values snapshots repeat (volume, SVM, comment, label, lock owners) are [`Text`]: a
/// listing read through an [`Interner`] holds each once, not once per snapshot; its own uuid
/// and name are held compactly ([`Uuid`], [`Name`]), reading back as the text ONTAP gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub uuid: Uuid,
    pub name: Name,
    pub volume_uuid: Text,
    pub volume_name: Text,
    pub svm: Text,
    pub comment: Option<Text>,
    /// In the cluster's offset, as ONTAP renders it.
    pub create_time: DateTime<FixedOffset>,
    /// Lock owners (`owners`), for example `lun_clone`, `volume_clone`.
    pub owners: Vec<Text>,
    /// `size`: the bytes the snapshot holds (its blocks no longer in the active file system);
    /// `None` when ONTAP did not say.
    pub size: Option<u64>,
    /// `snapmirror_label`: the label SnapMirror and SnapVault select snapshots by; `None` when
    /// the snapshot has none.
    pub snapmirror_label: Option<Text>,
    /// `snaplock_expiry_time`: a tamper-proof snapshot (on a volume with snapshot locking)
    /// cannot be deleted before it; `None` when it has none.
    pub snaplock_expiry: Option<DateTime<FixedOffset>>,
}

/// A snapshot to create (`POST /api/storage/volumes/{uuid}/snapshots`): what
/// [`Ontap::create_snapshot`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewSnapshot<'a> {
    pub name: &'a str,
    /// The comment that marks the snapshot as snapwarden's; a create retried after a lost answer
    /// takes a same-named snapshot as its own only when it carries this comment.
    pub comment: &'a str,
    /// `snapmirror_label`, sent only when set.
    pub snapmirror_label: Option<&'a str>,
}

impl<'a> NewSnapshot<'a> {
    /// A snapshot without a SnapMirror label.
    pub fn new(name: &'a str, comment: &'a str) -> NewSnapshot<'a> {
        NewSnapshot {
            name,
            comment,
            snapmirror_label: None,
        }
    }

    /// The same snapshot with `label` as its `snapmirror_label`.
    pub fn labelled(self, label: Option<&'a str>) -> NewSnapshot<'a> {
        NewSnapshot {
            snapmirror_label: label,
            ..self
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunInfo {
    pub uuid: String,
    /// Path, `/vol/<volume>/<lun>`.
    pub name: String,
    pub svm: String,
    pub volume_name: String,
    pub mapped: bool,
    pub created_as_clone: bool,
    /// `space.size` in bytes, when ONTAP said.
    pub size: Option<u64>,
}

/// Everything that can go wrong talking to ONTAP, with the context an admin needs.
#[derive(Debug, thiserror::Error)]
pub enum OntapError {
    /// ONTAP answered with an error envelope or a failed job.
    #[error("cluster {cluster}: {target}: ONTAP error {code}: {message}")]
    Api {
        cluster: String,
        /// What the call was about: `volume vol1 snapshot snapwarden.x`, `lun /vol/v/l`…
        target: String,
        code: u64,
        message: String,
        /// HTTP status, or `None` when the error came from a job.
        http_status: Option<u16>,
    },
    /// 401/403: the credentials were refused.
    #[error("cluster {cluster}: authentication failed (HTTP {http_status}); check username and password")]
    Auth { cluster: String, http_status: u16 },
    /// Connection, TLS or timeout failure before ONTAP answered.
    #[error("cluster {cluster}: {context}")]
    Transport {
        cluster: String,
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A job did not reach a terminal state within the polling bound.
    #[error("cluster {cluster}: {target}: job {job} did not finish within {waited_seconds} s")]
    JobTimeout {
        cluster: String,
        target: String,
        job: String,
        waited_seconds: u64,
    },
    /// ONTAP answered something this client cannot decode.
    #[error("cluster {cluster}: {context}: unexpected response: {detail}")]
    Decode {
        cluster: String,
        context: String,
        detail: String,
    },
}

/// The LUN's path inside its volume: `/vol/<v>/a/b` → `/a/b`; a path without the `/vol/<v>/`
/// prefix is taken as already relative to the volume.
pub fn path_in_volume(volume: &str, lun: &str) -> String {
    let prefix = format!("/vol/{volume}/");
    let rel = lun.strip_prefix(&prefix).unwrap_or(lun);
    format!("/{}", rel.trim_start_matches('/'))
}

/// The path of a LUN as a snapshot holds it, the `clone.source.name` of a FlexClone LUN:
/// `/vol/<v>/.snapshot/<s>/<path in volume>` (reference notes §3.2).
pub fn lun_in_snapshot(volume: &str, snapshot: &str, lun: &str) -> String {
    format!(
        "/vol/{volume}/.snapshot/{snapshot}{}",
        path_in_volume(volume, lun)
    )
}

/// ONTAP's code for "snapshot has not expired or is locked" (reference notes §2.4).
pub const SNAPSHOT_LOCKED: u64 = 1_638_555;
/// ONTAP's code for "LUN is mapped and cannot be deleted without allow_delete_while_mapped".
pub const LUN_MAPPED: u64 = 1_254_197;

impl OntapError {
    /// The ONTAP error code, when ONTAP gave one.
    pub fn code(&self) -> Option<u64> {
        match self {
            OntapError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether a retry with backoff may succeed (5xx, connection errors, "temporarily locked").
    pub fn is_transient(&self) -> bool {
        match self {
            OntapError::Transport { .. } => true,
            OntapError::Api {
                http_status,
                message,
                ..
            } => http_status.is_some_and(|s| s >= 500) || message.contains("temporarily locked"),
            _ => false,
        }
    }
}

/// Everything snapwarden asks of an ONTAP cluster.
#[async_trait::async_trait]
pub trait Ontap: Send + Sync {
    /// The policy's name for this cluster (used in every error).
    fn cluster_name(&self) -> &str;

    async fn cluster(&self) -> Result<ClusterInfo, OntapError>;
    async fn volumes(&self) -> Result<Vec<VolumeInfo>, OntapError>;
    async fn snapshot_policies(&self) -> Result<Vec<SnapshotPolicyInfo>, OntapError>;
    async fn schedules(&self) -> Result<Vec<ScheduleInfo>, OntapError>;
    async fn license(&self, package: &str) -> Result<LicenseState, OntapError>;
    /// Every snapshot of every volume, in one bulk call (`/api/storage/volumes/*/snapshots`).
    async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, OntapError>;
    async fn luns(&self) -> Result<Vec<LunInfo>, OntapError>;
    /// The snapshots of some volumes, each volume's in listing order: what a pass re-reads of
    /// the volumes it changed instead of the whole cluster. Over REST, one bulk call
    /// (`/api/storage/volumes/*/snapshots?volume.uuid=a|b|…`) per [`VOLUMES_PER_QUERY`]
    /// volumes, not one per volume. A volume that no longer exists matches nothing: the whole
    /// read at `observe_interval` drops it from the listing.
    async fn volume_snapshots(
        &self,
        volumes: &[VolumeRef],
    ) -> Result<Vec<SnapshotInfo>, OntapError>;
    /// The LUNs of some volumes (`/api/storage/luns?location.volume.uuid=a|b|…`), as
    /// [`Ontap::volume_snapshots`] reads them.
    async fn volume_luns(&self, volumes: &[VolumeRef]) -> Result<Vec<LunInfo>, OntapError>;
    /// Every volume's autodelete, snapshot locking, naming scheme and snapshot reserve
    /// (`GET /api/storage/volumes` with those fields): what `doctor` audits.
    async fn volume_settings(&self) -> Result<Vec<VolumeSettings>, OntapError>;

    async fn create_snapshot(
        &self,
        volume: &VolumeRef,
        new: &NewSnapshot<'_>,
    ) -> Result<SnapshotInfo, OntapError>;
    async fn delete_snapshot(
        &self,
        volume: &VolumeRef,
        snapshot_uuid: &str,
        snapshot_name: &str,
    ) -> Result<(), OntapError>;
    /// FlexClone LUN from a snapshot: `POST /api/storage/luns` with
    /// `clone.source.name = /vol/<v>/.snapshot/<s>/<lun>`.
    async fn clone_lun_flexclone(
        &self,
        volume: &VolumeRef,
        snapshot_name: &str,
        source_lun: &str,
        clone_path: &str,
    ) -> Result<LunInfo, OntapError>;
    /// SnapRestore clone of a LUN to a new path: `PATCH /api/storage/volumes/{uuid}` with `restore_to.*`.
    async fn clone_lun_snaprestore(
        &self,
        volume: &VolumeRef,
        snapshot_name: &str,
        source_lun: &str,
        clone_path: &str,
    ) -> Result<LunInfo, OntapError>;
    async fn delete_lun(
        &self,
        lun_uuid: &str,
        lun_path: &str,
        allow_delete_while_mapped: bool,
    ) -> Result<(), OntapError>;
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn lun_paths_inside_a_volume_and_a_snapshot() {
        assert_eq!(path_in_volume("v", "/vol/v/lun0"), "/lun0");
        assert_eq!(path_in_volume("v", "/vol/v/q1/lun0"), "/q1/lun0");
        assert_eq!(path_in_volume("v", "lun0"), "/lun0");
        assert_eq!(
            lun_in_snapshot("v", "s", "/vol/v/q1/lun0"),
            "/vol/v/.snapshot/s/q1/lun0"
        );
        assert_eq!(lun_in_snapshot("v", "s", "lun0"), "/vol/v/.snapshot/s/lun0");
    }
}
