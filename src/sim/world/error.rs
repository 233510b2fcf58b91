//! Typed failures of world operations and the ONTAP codes and texts they answer with.

/// ONTAP's text for a locked snapshot (reference notes §1.3, §2.4).
pub fn locked_message(snapshot: &str, volume: &str, svm: &str) -> String {
    format!(
        "Snapshot copy \"{snapshot}\" of volume \"{volume}\" on Vserver \"{svm}\" has not expired or is locked. \
         Use the \"snapshot show -fields owners, expiry-time\" command to view the expiry and lock status of the Snapshot copy."
    )
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
    /// A snapshot name that create (code 1638518) or rename (code 524508) refuses.
    #[error("Invalid snapshot name \"{}\": {reason}.", name.escape_debug())]
    InvalidSnapshotName {
        code: u64,
        name: String,
        reason: &'static str,
    },
    /// A user-created name beginning with a reserved prefix (knob `reserved_snapshot_prefixes`):
    /// code 1638477 on create and rename.
    #[error("User-created Snapshot copy names cannot begin with the specified prefix \"{prefix}.\" (snapshot \"{}\").", name.escape_debug())]
    ReservedPrefix {
        code: u64,
        name: String,
        prefix: String,
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
    /// "A snapshot with that name already exists" (reference notes §2.4, POST codes).
    pub const SNAPSHOT_EXISTS: u64 = 525_059;
    /// "User-created snapshot names cannot begin with the specified prefix" (reference notes
    /// §2.4, POST and PATCH codes).
    pub const SNAPSHOT_PREFIX_RESERVED: u64 = 1_638_477;
    /// "Failed to delete snapshot because it has an owner" (reference notes §2.4).
    pub const SNAPSHOT_HAS_OWNER: u64 = 1_638_543;
    /// "Invalid snapshot name" on create (reference notes §2.4, POST codes).
    pub const SNAPSHOT_NAME_INVALID: u64 = 1_638_518;
    /// "Rename invalid" on a snapshot PATCH (reference notes §2.4, PATCH codes).
    pub const SNAPSHOT_RENAME_INVALID: u64 = 524_508;
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
            | SimError::InUse { code, .. }
            | SimError::InvalidSnapshotName { code, .. }
            | SimError::ReservedPrefix { code, .. } => *code,
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
            SimError::Invalid { .. }
            | SimError::InvalidSnapshotName { .. }
            | SimError::ReservedPrefix { .. }
            | SimError::LunMapped { .. }
            | SimError::Unlicensed { .. } => 400,
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
            SimError::InvalidSnapshotName { .. } | SimError::ReservedPrefix { .. } => {
                "name".to_string()
            }
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

    pub(super) fn not_found(code: u64, target: impl Into<String>) -> SimError {
        SimError::NotFound {
            code,
            target: target.into(),
        }
    }

    pub(super) fn invalid(target: impl Into<String>, message: impl Into<String>) -> SimError {
        SimError::Invalid {
            target: target.into(),
            message: message.into(),
        }
    }
}

pub type SimResult<T> = Result<T, SimError>;
