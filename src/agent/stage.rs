//! Stage markers: one debug line when the agent enters a piece of work that a crash can cut in
//! two — an ONTAP create or delete together with the journal write of its answer, or a backup
//! hook — and one when it leaves it. They change nothing; they are there to be read: by an
//! operator (`SNAPWARDEN_LOG=info,snapwarden::agent::stage=debug`) and by the crash test
//! (`tests/agent_crash.rs`), which kills the agent inside each stage and proves the kill landed
//! there (an `entered` line without its `left`).
//!
//! A marker is `stage entered stage=<stage> id=<n> object=<name>` and `stage left stage=<stage>
//! id=<n>`; `id` pairs the two within one process.

use std::sync::atomic::{AtomicU64, Ordering};

/// A piece of the agent's work that the crash test kills it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// A cycle's backing snapshot being created (its intent journaled).
    SnapshotCreate,
    /// One of a cycle's LUN clones being created (its intent journaled).
    CloneCreate,
    /// The window's backup hook running on the clones.
    Hook,
    /// One of a cycle's LUN clones being deleted.
    CloneDelete,
    /// A cycle's backing snapshot being deleted.
    SnapshotDelete,
    /// The backing snapshot of a locked cycle being deleted again.
    LockedRetry,
    /// A cycle being created with FlexClone although its volume says `snaprestore`: the FlexClone
    /// recommendation is in force and `use_when_licensed` switched it (the switch is journaled
    /// with the first such cycle).
    Switch,
    /// A managed snapshot being taken (its intent journaled).
    ManagedCreate,
    /// One of a managed copy's oldest snapshots being deleted (rotation).
    ManagedRotate,
}

impl Stage {
    /// Every stage, in the order a cycle and a managed copy meet them.
    pub const ALL: [Stage; 9] = [
        Stage::SnapshotCreate,
        Stage::CloneCreate,
        Stage::Hook,
        Stage::CloneDelete,
        Stage::SnapshotDelete,
        Stage::LockedRetry,
        Stage::Switch,
        Stage::ManagedCreate,
        Stage::ManagedRotate,
    ];

    /// The marker's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::SnapshotCreate => "snapshot_create",
            Stage::CloneCreate => "clone_create",
            Stage::Hook => "hook",
            Stage::CloneDelete => "clone_delete",
            Stage::SnapshotDelete => "snapshot_delete",
            Stage::LockedRetry => "locked_retry",
            Stage::Switch => "switch",
            Stage::ManagedCreate => "managed_create",
            Stage::ManagedRotate => "managed_rotate",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// Pairs the two lines of one stage within a process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Inside a stage: logged `entered` when made, `left` when dropped.
#[must_use = "the stage is left when this is dropped"]
pub struct InStage {
    stage: Stage,
    id: u64,
}

/// Enters `stage` on `object` (a snapshot name, a LUN path).
pub fn enter(stage: Stage, object: &str) -> InStage {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(stage = %stage.as_str(), id, object = %object, "stage entered");
    InStage { stage, id }
}

impl Drop for InStage {
    fn drop(&mut self) {
        tracing::debug!(stage = %self.stage.as_str(), id = self.id, "stage left");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_parses_back_from_its_word() {
        for stage in Stage::ALL {
            assert_eq!(Stage::parse(stage.as_str()), Some(stage));
        }
        assert_eq!(Stage::parse("idle"), None);
    }
}
