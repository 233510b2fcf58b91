//! What to do this pass, decided without doing it: `decide(view, now) -> Vec<Action>`.
//!
//! A pass reads the clock once and goes through its stages in a fixed order — recover (at start
//! only), adopt (with `[ha]`), observe, start, release, recommend. For each stage the loop builds
//! an immutable [`View`] (the policy, the clusters as last listed, the open and recent cycles,
//! the plan, and what the journal was asked beforehand) and asks [`decide`] for the stage's
//! actions; it applies them (journal, executor, hooks) before it builds the next stage's view, so
//! each stage sees what the one before it did: a release can follow a create that failed in the
//! same pass, and a recommendation the conflicts just recorded.
//!
//! Nothing here reads a clock, touches the journal or a cluster, or spawns anything: every input
//! is in the view, every decision is an [`Action`] that carries its reason, and the tests at
//! the bottom drive each stage from hand-written views.

mod adopt;
mod managed;
#[cfg(test)]
mod managed_tests;
mod observe;
mod recommend;
mod recover;
mod release;
mod start;
pub(crate) use start::double_scheduled;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use super::cycle::{CloneLun, Cycle, ObservedConflict};
use super::journal::{LockedSpace, ObjectKind};
use super::managed::CopyKey;
use super::state::{ClusterView, Memory, Occurrence, Step, VolumeKey};
use crate::config::Policy;
use crate::ontap::VolumeRef;
use crate::planner::Plan;

pub use managed::{Take, TakeWhy};
pub(crate) use observe::{cycle_lookups, owner_lookups};
pub(crate) use recommend::candidates;
pub use recommend::VolumeConflicts;
pub(crate) use start::{lookback, missing, started_prefix, Excluded, LOOKAHEAD};

/// The stages of a pass, in the order the loop runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// At start: what to do with the cycles the journal left open.
    Recover,
    /// A new leader takes over the cycles another replica left on ONTAP.
    Adopt,
    /// What the listings say: conflicts, pins gone, look-alikes, the tools' snapshots.
    Observe,
    /// The managed snapshots due before this pass's starts (taken first), deferred while a
    /// clone is alive; series over their count trimmed.
    Managed,
    /// What the plan says is due: starts, skips, the next planned create.
    Start,
    /// Which open cycles to release now.
    Release,
    /// The managed snapshots the releases of this pass let go.
    ManagedAfterRelease,
    /// The FlexClone recommendations of the volumes with new conflicts.
    Recommend,
}

/// What the journal answered before the stage (the stage itself never asks).
#[derive(Debug, Default)]
pub struct JournalFacts {
    /// The cycle the journal records as the owner of an object that the open and recent cycles
    /// do not explain (look-ups named by [`owner_lookups`]): `None` when it records none.
    pub owners: HashMap<ObjectKey, Option<String>>,
    /// Cycle ids named by markers on the clusters that the journal holds (or could not say).
    pub known_cycles: HashSet<String>,
    /// The volumes whose recommendation is decided this pass, with their journaled conflicts.
    pub conflicts: BTreeMap<VolumeKey, VolumeConflicts>,
}

/// An ONTAP object on a volume, as the journal names owned objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    pub kind: ObjectKind,
    /// Snapshot name, or LUN path.
    pub name: String,
}

/// Everything a stage decides from.
pub struct View<'a> {
    pub stage: Stage,
    pub policy: &'a Policy,
    /// One per policy cluster, in policy order.
    pub clusters: &'a [ClusterView],
    pub memory: &'a Memory,
    /// The plan over the pass's lookback and lookahead (the start stage's input).
    pub plan: Option<&'a Plan>,
    /// For each volume of `plan` (by position), how many of its first lifecycles were already
    /// started ([`started_prefix`]): the start stage passes over them. A volume beyond the
    /// list has none known.
    pub started_prefix: &'a [usize],
    /// What the listings say of the policy's volumes ([`missing`]), when the loop kept it from
    /// an earlier pass; computed from `clusters` when `None`.
    pub missing: Option<&'a [Excluded]>,
    pub journal: &'a JournalFacts,
    /// The planner's view of the clusters (schedules and zones as discovered).
    pub observed: &'a crate::planner::Observed,
    /// When this agent started: occurrences planned before it that can no longer run are not
    /// recorded as missed.
    pub started_at: DateTime<Utc>,
    /// With `[ha]`: when this replica last became leader.
    pub leading_since: Option<DateTime<Utc>>,
    /// With `[ha]`: this replica's identity.
    pub replica: Option<&'a str>,
}

impl View<'_> {
    /// The cluster view and inventory of the policy cluster named `name`.
    fn cluster(&self, name: &str) -> Option<(usize, &ClusterView)> {
        let ci = self.policy.clusters.iter().position(|c| c.name == name)?;
        self.clusters.get(ci).map(|v| (ci, v))
    }

    fn prefix(&self) -> &str {
        &self.policy.agent.snapshot_prefix
    }
}

/// Why an occurrence is neither run nor recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgetWhy {
    /// Planned before this agent started and no longer able to run: not this run's to make.
    BeforeStart,
    /// Planned before this replica became leader: the previous leader's (done, adopted from
    /// ONTAP, or lost with it; never started twice).
    PreviousLeader,
}

/// Why a cycle is released now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseWhy {
    /// Its hook ended, a create failed, or it was left open by a previous run.
    Ended,
    /// The hold of a backup without a hook is over.
    HoldOver,
    /// The previous attempt failed and its backoff is over.
    RetryDue,
    /// The scheduled snapshots that pinned its locked backing snapshot are gone.
    Unpinned,
}

/// One thing to do, with its reason.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Journal a conflict (the journal keeps each key once).
    RecordConflict(ObservedConflict),
    /// Journal the space a locked backing snapshot holds.
    RecordLockedSpace(LockedSpace),
    /// Say once (log, and count as an ignored orphan of `orphan` kind) that something looks like
    /// snapwarden's but is not, or cannot be acted on.
    Warn {
        key: String,
        message: String,
        orphan: Option<&'static str>,
    },
    /// A locked cycle's pins are gone: its release is tried again.
    Unpinned { cycle: String },
    /// An ended cycle was looked at in a listing taken after its clones went (or it had none
    /// a snapshot could capture): no later listing can show a new chain conflict of it. Once the
    /// journal holds every conflict in `keys` (those just found), it is not looked at again.
    ConflictsSeen {
        cycle: String,
        clones_deleted_at: Option<DateTime<Utc>>,
        keys: Vec<String>,
    },
    /// A released cycle's backing snapshot is listed after its release: release it again.
    Reopen {
        cycle: String,
        uuid: String,
        seen_at: DateTime<Utc>,
    },
    /// Journal a cycle's new record and keep it open (`why` for the log).
    Update { cycle: Cycle, why: String },
    /// A cycle ends: journal its last record and keep it only as recent.
    Settle { cycle: Cycle },
    /// Set an open cycle's step (recovery).
    Resume {
        cycle: Cycle,
        step: Step,
        why: String,
        orphan: bool,
    },
    /// Take over a cycle another replica left on ONTAP, with the uuids of its snapshot and
    /// clones, and release it.
    Adopt {
        cycle: Cycle,
        snapshot_uuid: String,
        clones: Vec<(CloneLun, String)>,
    },
    /// Leave a volume out this pass.
    Exclude {
        volume: VolumeKey,
        kind: ExcludeKind,
        why: String,
    },
    /// Neither run nor record this occurrence.
    Forget {
        occurrence: Occurrence,
        why: ForgetWhy,
    },
    /// Record an occurrence that does not run (the cycle is `skipped`, its reason its detail).
    Skip { cycle: Cycle },
    /// Start a lifecycle: the executor creates the backing snapshot and the clones of `cycle`
    /// (its clone method chosen), on `volume`. `switched`: the volume switches to FlexClone
    /// (`use_when_licensed`) with this cycle, journaled once.
    Start {
        cycle: Cycle,
        volume: VolumeRef,
        switched: Option<VolumeKey>,
    },
    /// Start (or, resuming after a restart, follow) a driver window's tool for one occurrence:
    /// one cycle per volume of the window.
    StartTool {
        window: String,
        cycles: Vec<Cycle>,
        resume: bool,
    },
    /// The next planned create, which wakes the loop.
    Arm { at: Option<DateTime<Utc>> },
    /// One release attempt of an open cycle on `volume`; `fresh`: the cluster's latest listing
    /// was taken after the cycle stopped creating and may settle its unconfirmed objects.
    Release {
        cycle: String,
        volume: VolumeRef,
        fresh: bool,
        why: ReleaseWhy,
    },
    /// Raise a volume's FlexClone recommendation.
    Raise {
        volume: VolumeKey,
        since: DateTime<Utc>,
        evidence: String,
        locked_bytes: Option<u64>,
        licensed: Option<bool>,
    },
    /// A recommendation in force, with its evidence brought up to date.
    Refresh {
        volume: VolumeKey,
        evidence: String,
        locked_bytes: Option<u64>,
        licensed: Option<bool>,
    },
    /// Clear a volume's recommendation: no counting conflict for `within`.
    Clear {
        volume: VolumeKey,
        within: TimeDelta,
    },
    /// Take a managed snapshot now (intent journaled first), then delete its series' oldest
    /// beyond the count.
    TakeManaged(Box<Take>),
    /// A due managed snapshot waits for a clone to go (`since`: its first instant).
    Defer {
        copy: CopyKey,
        since: DateTime<Utc>,
        why: String,
    },
    /// Delete a series' oldest snapshots beyond its count (uuid, name), oldest first.
    Rotate {
        copy: CopyKey,
        volume: VolumeRef,
        snapshots: Vec<(String, String)>,
    },
    /// A managed create whose answer was lost, settled by a later listing: made (its uuid) or
    /// never made.
    SettleManaged {
        copy: CopyKey,
        name: String,
        uuid: Option<String>,
    },
    /// The next managed instant or deferral deadline, which wakes the loop.
    ArmManaged { at: Option<DateTime<Utc>> },
}

/// Why a volume is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExcludeKind {
    /// Its schedules or zone could not be resolved.
    Unresolved,
    /// The cluster lacks the volume or one of its LUNs.
    Missing,
    /// ONTAP's own policy on the volume also takes a copy it hands to snapwarden.
    DoubleSchedule,
}

impl ExcludeKind {
    /// The metric's and status's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExcludeKind::Unresolved => "unresolved",
            ExcludeKind::Missing => "missing",
            ExcludeKind::DoubleSchedule => "double_schedule",
        }
    }
}

/// The actions of the view's stage, in the order they are to be applied.
pub fn decide(view: &View<'_>, now: DateTime<Utc>) -> Vec<Action> {
    match view.stage {
        Stage::Recover => recover::decide(view, now),
        Stage::Adopt => adopt::decide(view, now),
        Stage::Observe => observe::decide(view, now),
        Stage::Managed | Stage::ManagedAfterRelease => managed::decide(view, now),
        Stage::Start => start::decide(view, now),
        Stage::Release => release::decide(view, now),
        Stage::Recommend => recommend::decide(view, now),
    }
}

/// One line per action: what the tests compare and the debug log prints.
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = |t: &DateTime<Utc>| t.format("%Y-%m-%dT%H:%MZ").to_string();
        match self {
            Action::RecordConflict(c) => write!(
                f,
                "conflict {} {}/{}/{} [{}]: {}",
                c.kind.as_str(),
                c.cluster,
                c.svm,
                c.volume,
                c.key,
                c.detail
            ),
            Action::RecordLockedSpace(l) => {
                write!(f, "locked-space {} {} bytes", l.cycle_id, l.bytes)
            }
            Action::Warn {
                key,
                message,
                orphan,
            } => write!(
                f,
                "warn [{key}]{}: {message}",
                orphan.map_or(String::new(), |o| format!(" orphan={o}"))
            ),
            Action::Unpinned { cycle } => write!(f, "unpinned {cycle}"),
            Action::ConflictsSeen { cycle, keys, .. } => {
                write!(f, "conflicts-seen {cycle} ({} found)", keys.len())
            }
            Action::Reopen { cycle, uuid, .. } => write!(f, "reopen {cycle} (snapshot {uuid})"),
            Action::Update { cycle, why } => write!(
                f,
                "update {} {} snapshot={}: {why}",
                cycle.id,
                cycle.state.as_str(),
                cycle.backing_snapshot
            ),
            Action::Settle { cycle } => write!(
                f,
                "settle {} {} {}: {}",
                cycle.id,
                cycle.state.as_str(),
                cycle.result.map_or("-", |r| r.as_str()),
                cycle.detail
            ),
            Action::Resume {
                cycle, step, why, ..
            } => write!(
                f,
                "resume {} {} {step:?}: {why}",
                cycle.id,
                cycle.state.as_str()
            ),
            Action::Adopt { cycle, clones, .. } => write!(
                f,
                "adopt {} {} clones={}",
                cycle.id,
                cycle.backing_snapshot,
                clones.len()
            ),
            Action::Exclude { volume, kind, why } => {
                write!(f, "exclude {volume} ({}): {why}", kind.as_str())
            }
            Action::Forget { occurrence, why } => write!(
                f,
                "forget {} {} {} ({why:?})",
                occurrence.window,
                occurrence.volume,
                t(&occurrence.start)
            ),
            Action::Skip { .. } | Action::Start { .. } | Action::StartTool { .. } => {
                start_line(self, f)
            }
            Action::Arm { at } => match at {
                Some(at) => write!(f, "arm {}", t(at)),
                None => f.write_str("arm none"),
            },
            Action::Release {
                cycle, fresh, why, ..
            } => write!(
                f,
                "release {cycle} ({why:?}{})",
                if *fresh { ", fresh listing" } else { "" }
            ),
            Action::Raise {
                volume, evidence, ..
            } => write!(f, "raise {volume}: {evidence}"),
            Action::Refresh {
                volume, evidence, ..
            } => write!(f, "refresh {volume}: {evidence}"),
            Action::Clear { volume, .. } => write!(f, "clear {volume}"),
            Action::TakeManaged(_)
            | Action::Defer { .. }
            | Action::Rotate { .. }
            | Action::SettleManaged { .. }
            | Action::ArmManaged { .. } => managed_line(self, f),
        }
    }
}

/// The managed stages' actions, one line each.
fn managed_line(action: &Action, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let t = |t: &DateTime<Utc>| t.format("%Y-%m-%dT%H:%MZ").to_string();
    match action {
        Action::TakeManaged(take) => write!(
            f,
            "take {} {} (due {}, {} instant(s), {}{}){}",
            take.copy,
            take.name,
            t(&take.due),
            take.instants,
            take.why.as_str(),
            match take.why.waited() {
                w if w > TimeDelta::zero() => format!(" {}", crate::planner::human(w)),
                _ => String::new(),
            },
            if take.rotate.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = take.rotate.iter().map(|(_, n)| n.as_str()).collect();
                format!(" then delete {}", names.join(", "))
            }
        ),
        Action::Defer { copy, since, why } => {
            write!(f, "defer {copy} (due {}): {why}", t(since))
        }
        Action::Rotate {
            copy, snapshots, ..
        } => {
            let names: Vec<&str> = snapshots.iter().map(|(_, n)| n.as_str()).collect();
            write!(f, "rotate {copy}: delete {}", names.join(", "))
        }
        Action::SettleManaged { copy, name, uuid } => write!(
            f,
            "settle {copy} {name}: {}",
            if uuid.is_some() { "made" } else { "never made" }
        ),
        Action::ArmManaged { at } => match at {
            Some(at) => write!(f, "arm-managed {}", t(at)),
            None => f.write_str("arm-managed none"),
        },
        _ => Ok(()),
    }
}

/// The start stage's skips and starts, one line each.
fn start_line(action: &Action, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let t = |t: &DateTime<Utc>| t.format("%Y-%m-%dT%H:%MZ").to_string();
    match action {
        Action::Skip { cycle } => write!(
            f,
            "skip {} {}/{}/{} {}: {}",
            cycle.window,
            cycle.cluster,
            cycle.svm,
            cycle.volume,
            t(&cycle.window_start),
            cycle.detail
        ),
        Action::Start {
            cycle, switched, ..
        } => write!(
            f,
            "start {} {}/{}/{} {} at {} {}{}: {}",
            cycle.window,
            cycle.cluster,
            cycle.svm,
            cycle.volume,
            t(&cycle.window_start),
            t(&cycle.create_at),
            cycle.clone_kind.as_str(),
            if switched.is_some() {
                " (switched)"
            } else {
                ""
            },
            cycle.detail
        ),
        Action::StartTool {
            window,
            cycles,
            resume,
        } => write!(
            f,
            "{} {window} for {}",
            if *resume { "follow-tool" } else { "start-tool" },
            cycles
                .iter()
                .map(|c| format!("{}/{}/{}", c.cluster, c.svm, c.volume))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => Ok(()),
    }
}
