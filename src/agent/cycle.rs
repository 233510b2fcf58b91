//! The agent's domain words: a cycle (one backing-snapshot lifecycle on one volume), the objects
//! it owns, and the conflicts observed. Shared by the executor, the journal and the status API.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where a cycle is in its lifecycle.
///
/// `Creating → Live → Backup → Releasing → Released`; `Releasing → Locked` when ONTAP refuses the
/// backing snapshot's delete with 1638555 (retried once its pins are gone); `Failed` when nothing
/// could be created; `Skipped` when the planner or the agent decided not to run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CycleState {
    /// The intent is journaled; the backing snapshot is being created.
    Creating,
    /// The backing snapshot exists; clones are being created.
    Live,
    /// The backup hook runs against the clones.
    Backup,
    /// Clones, then the backing snapshot, are being deleted.
    Releasing,
    /// The backing snapshot's delete was refused: a scheduled snapshot pins it.
    Locked,
    /// Everything snapwarden created for the cycle is gone.
    Released,
    /// Nothing was left behind, but the cycle did not run.
    Failed,
    Skipped,
}

impl CycleState {
    pub const ALL: [CycleState; 8] = [
        CycleState::Creating,
        CycleState::Live,
        CycleState::Backup,
        CycleState::Releasing,
        CycleState::Locked,
        CycleState::Released,
        CycleState::Failed,
        CycleState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CycleState::Creating => "creating",
            CycleState::Live => "live",
            CycleState::Backup => "backup",
            CycleState::Releasing => "releasing",
            CycleState::Locked => "locked",
            CycleState::Released => "released",
            CycleState::Failed => "failed",
            CycleState::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<CycleState> {
        CycleState::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// No ONTAP object of the cycle is left to release.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            CycleState::Released | CycleState::Failed | CycleState::Skipped
        )
    }
}

/// How a cycle ended, as `status` and `history` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CycleResult {
    /// The hook succeeded (or there was none) and everything was released.
    Completed,
    /// The hook was still running at `max` and was terminated.
    Overrun,
    /// The hook failed, or a create failed.
    Failed,
    /// Not run (`on_conflict = "skip"`, no gap, a missing volume, or started too late).
    Skipped,
}

impl CycleResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CycleResult::Completed => "completed",
            CycleResult::Overrun => "overrun",
            CycleResult::Failed => "failed",
            CycleResult::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<CycleResult> {
        [
            CycleResult::Completed,
            CycleResult::Overrun,
            CycleResult::Failed,
            CycleResult::Skipped,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// How a cycle's clones are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloneKind {
    /// Single-file SnapRestore to a new path: depends on the backing snapshot (chain conflicts).
    SnapRestore,
    /// FlexClone LUN: the backing snapshot is busy only during block sharing.
    FlexClone,
}

impl CloneKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CloneKind::SnapRestore => "snaprestore",
            CloneKind::FlexClone => "flexclone",
        }
    }

    pub fn parse(s: &str) -> Option<CloneKind> {
        match s {
            "snaprestore" => Some(CloneKind::SnapRestore),
            "flexclone" => Some(CloneKind::FlexClone),
            _ => None,
        }
    }
}

/// One LUN clone of a cycle: the LUN it reads and the clone's path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloneLun {
    /// The policy's LUN path, `/vol/<volume>/<lun>`.
    pub source: String,
    /// The clone's path, `/vol/<volume>/<backing snapshot>.<lun leaf>`.
    pub path: String,
}

#[cfg(test)]
impl Cycle {
    /// A test cycle of window `w` on `c/svm1/v` planned at `start` for 30 minutes: a SnapRestore
    /// clone of `lun0`, names derived from `id`, nothing created yet. Tests change what they need
    /// with struct update syntax.
    pub(crate) fn sample(id: &str, start: DateTime<Utc>) -> Cycle {
        Cycle {
            id: id.into(),
            window: "w".into(),
            cluster: "c".into(),
            svm: "svm1".into(),
            volume: "v".into(),
            window_start: start,
            create_at: start,
            release_by: start + chrono::TimeDelta::minutes(30),
            release_deadline: None,
            backing_snapshot: format!("snapwarden.w.{id}"),
            clone_kind: CloneKind::SnapRestore,
            clones: vec![CloneLun {
                source: "/vol/v/lun0".into(),
                path: format!("/vol/v/snapwarden.w.{id}.lun0"),
            }],
            state: CycleState::Creating,
            result: None,
            created_at: None,
            clones_created_at: None,
            clones_deleted_at: None,
            released_at: None,
            detail: String::new(),
            replica: None,
        }
    }
}

/// One backing-snapshot lifecycle on one volume.
///
/// Invariant: `backing_snapshot` starts with the policy's `snapshot_prefix` and a dot, and every
/// clone path starts with `/vol/<volume>/<backing_snapshot>.`; the journal holds both before they
/// are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// Random UUID; also in the backing snapshot's comment.
    pub id: String,
    pub window: String,
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    /// The window occurrence this cycle serves (with the volume, its identity).
    pub window_start: DateTime<Utc>,
    /// When the planner placed the create (shifted starts differ from `window_start`).
    pub create_at: DateTime<Utc>,
    /// Everything must be released by then (`create_at + max`).
    pub release_by: DateTime<Utc>,
    /// The last instant a release may finish without meeting a scheduled snapshot (next
    /// scheduled snapshot minus guard); `None` when no scheduled snapshot follows.
    pub release_deadline: Option<DateTime<Utc>>,
    pub backing_snapshot: String,
    pub clone_kind: CloneKind,
    pub clones: Vec<CloneLun>,
    pub state: CycleState,
    pub result: Option<CycleResult>,
    /// When the backing snapshot was created (agent clock).
    pub created_at: Option<DateTime<Utc>>,
    /// When the last clone was created.
    pub clones_created_at: Option<DateTime<Utc>>,
    /// When the last clone was deleted.
    pub clones_deleted_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
    /// The latest thing worth saying about the cycle (an error, the hook's exit).
    pub detail: String,
    /// With `[ha]`: the replica that journaled the cycle (started or adopted it).
    pub replica: Option<String>,
}

/// The comment every backing snapshot carries: the ownership marker and the cycle id.
pub fn snapshot_comment(cycle_id: &str, window: &str) -> String {
    format!("{MARKER} cycle={cycle_id} window={window}")
}

/// Start of every comment snapwarden writes.
pub const MARKER: &str = "created-by=snapwarden";

/// The cycle id in a snapwarden comment, when the comment carries the marker.
pub fn cycle_id_in_comment(comment: &str) -> Option<&str> {
    let rest = comment.strip_prefix(MARKER)?.strip_prefix(" cycle=")?;
    let id = rest.split(' ').next()?;
    (!id.is_empty()).then_some(id)
}

/// Kinds of conflict the agent observes and records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// A scheduled (or user) snapshot was taken while one of the cycle's SnapRestore clones
    /// existed: it captured the clone.
    ChainConflict,
    /// The backing snapshot's delete answered 1638555.
    Locked,
    /// The cycle was not released by its release deadline.
    LateRelease,
    /// A backup tool's own backing snapshot (configured patterns), reported and never touched.
    Foreign,
    /// The window occurrence was not run (`skip`, or no fitting start within `shift_limit`).
    Skipped,
}

impl ConflictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::ChainConflict => "chain_conflict",
            ConflictKind::Locked => "locked",
            ConflictKind::LateRelease => "late_release",
            ConflictKind::Foreign => "foreign",
            ConflictKind::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<ConflictKind> {
        [
            ConflictKind::ChainConflict,
            ConflictKind::Locked,
            ConflictKind::LateRelease,
            ConflictKind::Foreign,
            ConflictKind::Skipped,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// One observed conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedConflict {
    pub kind: ConflictKind,
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    pub window: Option<String>,
    pub cycle: Option<String>,
    pub at: DateTime<Utc>,
    pub detail: String,
    /// Identifies the same conflict seen again on a later pass (recorded once).
    pub key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comment_marker_round_trips_and_rejects_look_alikes() {
        let c = snapshot_comment("5f1c", "sql-nightly");
        assert_eq!(c, "created-by=snapwarden cycle=5f1c window=sql-nightly");
        assert_eq!(cycle_id_in_comment(&c), Some("5f1c"));
        assert_eq!(cycle_id_in_comment("snapwarden cycle=5f1c"), None);
        assert_eq!(cycle_id_in_comment("created-by=snapwarden cycle="), None);
        assert_eq!(cycle_id_in_comment("xcreated-by=snapwarden cycle=1"), None);
        assert_eq!(cycle_id_in_comment(""), None);
    }

    #[test]
    fn states_results_and_kinds_parse_their_own_spelling() {
        for s in CycleState::ALL {
            assert_eq!(CycleState::parse(s.as_str()), Some(s));
        }
        for k in [
            "chain_conflict",
            "locked",
            "late_release",
            "foreign",
            "skipped",
        ] {
            assert_eq!(ConflictKind::parse(k).unwrap().as_str(), k);
        }
        for r in ["completed", "overrun", "failed", "skipped"] {
            assert_eq!(CycleResult::parse(r).unwrap().as_str(), r);
        }
        assert_eq!(CycleState::parse("LIVE"), None);
    }
}
