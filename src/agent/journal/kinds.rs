//! The journal's words: objects and their states, recommendation events, locked space, the
//! kinds and outcomes of actions — spelled as the journal stores them.

use chrono::{DateTime, Utc};

use super::super::cycle::{CycleResult, ObservedConflict};

/// What happened to a volume's FlexClone recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecommendationKind {
    /// Raised: `recommend_after` conflicts within `within`.
    Raised,
    /// The volume switched to FlexClone (`use_when_licensed`).
    Switched,
    /// Cleared after a conflict-free `within`.
    Cleared,
}

impl RecommendationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecommendationKind::Raised => "raised",
            RecommendationKind::Switched => "switched",
            RecommendationKind::Cleared => "cleared",
        }
    }

    pub(super) fn parse(s: &str) -> Option<RecommendationKind> {
        match s {
            "raised" => Some(RecommendationKind::Raised),
            "switched" => Some(RecommendationKind::Switched),
            "cleared" => Some(RecommendationKind::Cleared),
            _ => None,
        }
    }
}

/// A journaled recommendation event. `at` is the raising conflict's instant for `raised`, the
/// agent's clock otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecommendationEvent {
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    pub event: RecommendationKind,
    pub at: DateTime<Utc>,
    pub evidence: String,
}

/// Kinds of ONTAP object a cycle owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Snapshot,
    Lun,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Snapshot => "snapshot",
            ObjectKind::Lun => "lun",
        }
    }

    pub(super) fn parse(s: &str) -> Option<ObjectKind> {
        match s {
            "snapshot" => Some(ObjectKind::Snapshot),
            "lun" => Some(ObjectKind::Lun),
            _ => None,
        }
    }
}

/// What the journal knows of an owned object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectState {
    /// About to be created (or created, answer lost): look it up by name.
    Intent,
    /// ONTAP confirmed the create.
    Created,
    /// ONTAP confirmed the delete, or a listing no longer shows it.
    Deleted,
    /// Never created (a listing after the intent did not show it).
    Absent,
}

impl ObjectState {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectState::Intent => "intent",
            ObjectState::Created => "created",
            ObjectState::Deleted => "deleted",
            ObjectState::Absent => "absent",
        }
    }

    pub(super) fn parse(s: &str) -> Option<ObjectState> {
        [
            ObjectState::Intent,
            ObjectState::Created,
            ObjectState::Deleted,
            ObjectState::Absent,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// The object may exist on the cluster.
    pub fn may_exist(self) -> bool {
        matches!(self, ObjectState::Intent | ObjectState::Created)
    }
}

/// One owned object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    pub cycle_id: String,
    pub kind: ObjectKind,
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    /// Snapshot name, or LUN path.
    pub name: String,
    pub uuid: Option<String>,
    pub state: ObjectState,
}

/// A conflict as the journal holds it.
pub type ConflictRecord = ObservedConflict;

/// The bytes a locked backing snapshot held when last observed (ONTAP's snapshot `size`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedSpace {
    pub cycle_id: String,
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    pub snapshot: String,
    pub bytes: u64,
    pub at: DateTime<Utc>,
}

impl LockedSpace {
    /// Its size and instant as the journal keeps them and reads them back: the size up to
    /// `i64::MAX`, the instant to the millisecond.
    pub fn journaled(&self) -> (u64, DateTime<Utc>) {
        let bytes = i64::try_from(self.bytes).unwrap_or(i64::MAX);
        (
            u64::try_from(bytes).unwrap_or(0),
            super::from_ms(super::ms(self.at)),
        )
    }
}

/// What the journal records an action as (`actions.action`): the spelling is the journal's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    CreateSnapshot,
    CreateClone,
    Hook,
    DeleteClone,
    DeleteSnapshot,
    /// A new leader took over another replica's cycle.
    Adopt,
    /// A driver window's Veeam job was started (or found running).
    VeeamStart,
    /// A driver window's Veeam session stopped.
    VeeamSession,
    /// A managed copy's series was trimmed to its count (the oldest deleted).
    RotateSnapshot,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::CreateSnapshot => "create_snapshot",
            ActionKind::CreateClone => "create_clone",
            ActionKind::Hook => "hook",
            ActionKind::DeleteClone => "delete_clone",
            ActionKind::DeleteSnapshot => "delete_snapshot",
            ActionKind::Adopt => "adopt",
            ActionKind::VeeamStart => "veeam-start",
            ActionKind::VeeamSession => "veeam-session",
            ActionKind::RotateSnapshot => "rotate_snapshot",
        }
    }
}

/// How an action went (`actions.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOutcome {
    Ok,
    /// ONTAP (or the tool) refused or failed; the detail says why.
    Error,
    /// The object was gone already (a delete answered 404).
    Gone,
    /// The backing snapshot's delete answered 1638555.
    Locked,
    /// A backup (hook, job) failed.
    Failed,
    /// A backup ran past its window's `max`.
    Overrun,
    /// Not attempted: this replica does not lead.
    NotLeader,
    /// Not deleted: the snapshot has owners (busy).
    Busy,
}

impl ActionOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Ok => "ok",
            ActionOutcome::Error => "error",
            ActionOutcome::Gone => "gone",
            ActionOutcome::Locked => "locked",
            ActionOutcome::Failed => "failed",
            ActionOutcome::Overrun => "overrun",
            ActionOutcome::NotLeader => "not-leader",
            ActionOutcome::Busy => "busy",
        }
    }

    /// A backup's outcome from its cycle's result (`None`: it succeeded).
    pub fn of_result(result: Option<CycleResult>) -> ActionOutcome {
        match result {
            None | Some(CycleResult::Completed) => ActionOutcome::Ok,
            Some(CycleResult::Overrun) => ActionOutcome::Overrun,
            Some(CycleResult::Failed | CycleResult::Skipped) => ActionOutcome::Failed,
        }
    }
}
