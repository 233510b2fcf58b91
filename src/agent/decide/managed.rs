//! The managed stages: the scheduled snapshots snapwarden takes itself for the volumes that
//! hand their schedules over (`managed_snapshots`). A copy is due when one of its instants has
//! passed since the newest snapshot of its series (the listing's, or the one the agent just
//! took). A due snapshot waits while a clone of a backing snapshot is alive on the volume, up to
//! the policy's `max_defer`; instants that pass while it waits are covered by the one snapshot
//! taken when it may (coalesced). After each take the series' oldest snapshots beyond `count`
//! are deleted — only names of the copy's exact pattern, never a busy one.
//!
//! The stage runs twice a pass: before the starts (a snapshot due with a start at the same
//! minute goes first) and after the releases (a deferred snapshot goes as soon as the clone
//! holding it is gone); only the first also trims series that are over their count.

use chrono::{DateTime, TimeDelta, Utc};

use super::{Action, Stage, View};
use crate::agent::managed::{self, CopyKey, ManagedCopy};
use crate::agent::state::CopyState;
use crate::ontap::{SnapshotInfo, VolumeRef};

/// A managed snapshot to take now.
#[derive(Debug, Clone, PartialEq)]
pub struct Take {
    pub copy: CopyKey,
    pub volume: VolumeRef,
    /// `<prefix>.<YYYY-MM-DD_HHMM>` at `now` in the cluster's zone.
    pub name: String,
    pub comment: String,
    pub label: Option<String>,
    /// The managed policy and its schedule, for messages.
    pub policy: String,
    pub schedule: String,
    /// The first instant the snapshot covers.
    pub due: DateTime<Utc>,
    /// How many of the copy's instants it covers (the others are coalesced or missed).
    pub instants: u32,
    pub why: TakeWhy,
    /// The series' snapshots to delete once it exists (uuid, name), oldest first.
    pub rotate: Vec<(String, String)>,
}

/// Why a managed snapshot is taken when it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeWhy {
    /// At its instant (within the pass that woke for it).
    OnTime,
    /// After waiting for a clone to go: `waited` since its first instant.
    Deferred { waited: TimeDelta },
    /// The clone is still alive at `max_defer`: taken anyway, and it will capture the clone.
    MaxDefer { waited: TimeDelta, blocker: String },
    /// Its instant passed while the agent was not running (or not leading).
    Overdue { late: TimeDelta },
}

impl TakeWhy {
    /// The journal's and metrics' word for it.
    pub fn as_str(&self) -> &'static str {
        match self {
            TakeWhy::OnTime => "on_time",
            TakeWhy::Deferred { .. } => "deferred",
            TakeWhy::MaxDefer { .. } => "max_defer",
            TakeWhy::Overdue { .. } => "overdue",
        }
    }

    /// How long it waited for a clone (zero unless deferred).
    pub fn waited(&self) -> TimeDelta {
        match self {
            TakeWhy::Deferred { waited } | TakeWhy::MaxDefer { waited, .. } => *waited,
            TakeWhy::OnTime | TakeWhy::Overdue { .. } => TimeDelta::zero(),
        }
    }
}

pub(super) fn decide(view: &View<'_>, now: DateTime<Utc>) -> Vec<Action> {
    let mut actions = Vec::new();
    if view.policy.volumes.iter().all(|v| v.managed.is_none()) {
        actions.push(Action::ArmManaged { at: None });
        return actions;
    }
    let mut excluded = vec![false; view.policy.volumes.len()];
    for (vi, _, _) in super::start::excluded(view) {
        excluded[vi] = true;
    }
    let mut wake: Option<DateTime<Utc>> = None;
    let mut next = managed::NextInstants::default();
    for (vi, volume) in view.policy.volumes.iter().enumerate() {
        if volume.managed.is_none() || excluded[vi] {
            continue;
        }
        let cv = &view.clusters[volume.cluster];
        let Some(inv) = cv.inventory.as_ref().filter(|_| cv.reachable) else {
            continue;
        };
        let Some(info) = inv.volume(&volume.svm, &volume.name) else {
            continue;
        };
        let Ok(copies) = managed::copies(view.policy, view.observed, vi) else {
            continue;
        };
        let vref = VolumeRef {
            uuid: info.uuid.clone(),
            name: info.name.clone(),
            svm: info.svm.clone(),
        };
        for copy in &copies {
            let at = copy_actions(view, copy, inv, &vref, now, &mut next, &mut actions);
            wake = [wake, at].into_iter().flatten().min();
        }
    }
    actions.push(Action::ArmManaged { at: wake });
    actions
}

/// One copy's actions; the next instant the loop must wake for it.
fn copy_actions<'p>(
    view: &View<'_>,
    copy: &ManagedCopy<'p>,
    inv: &crate::agent::discovery::Inventory,
    vref: &VolumeRef,
    now: DateTime<Utc>,
    next: &mut managed::NextInstants<'p>,
    actions: &mut Vec<Action>,
) -> Option<DateTime<Utc>> {
    let next_instant = next.after(copy, now);
    let key = copy.key();
    let default = CopyState::default();
    let state = view.memory.managed.get(&key).unwrap_or(&default);
    let series: Vec<&SnapshotInfo> = copy
        .series(inv)
        .into_iter()
        .filter(|s| !state.deleted.contains(&*s.uuid.text()))
        .collect();
    if let Some((name, asked)) = &state.pending {
        // A create whose answer was lost: only a listing taken after it can say.
        if inv.at <= *asked {
            return next_instant;
        }
        let found = inv
            .volume_snapshots(&copy.volume.svm, &copy.volume.volume)
            .find(|s| &s.name == name && managed::is_marked(s.comment.as_deref(), copy.prefix));
        actions.push(Action::SettleManaged {
            copy: key,
            name: name.clone(),
            uuid: found.map(|s| s.uuid.to_string()),
        });
        return Some(now);
    }
    let newest = series.last().map(|s| s.create_time.with_timezone(&Utc));
    let covered = [newest, state.last_taken.as_ref().map(|(t, _)| *t)]
        .into_iter()
        .flatten()
        .max();
    let due = match covered {
        Some(t) => copy.instants_by(t, now, |at| next.after(copy, at)),
        // Never taken: the last instant passed without its snapshot.
        None => copy.last_instant(now).into_iter().collect(),
    };
    let rotate_only = |actions: &mut Vec<Action>| {
        if view.stage != Stage::Managed {
            return;
        }
        let excess = excess(copy, &series, 0);
        if !excess.is_empty() {
            actions.push(Action::Rotate {
                copy: copy.key(),
                volume: vref.clone(),
                snapshots: excess,
            });
        }
    };
    let Some(&first) = due.first() else {
        rotate_only(actions);
        return next_instant;
    };
    if state.retry_at.is_some_and(|t| t > now) {
        return state.retry_at;
    }
    let policy_luns = &view.policy.volumes[copy.vi].luns;
    let blocker = managed::blocker(
        view.memory,
        &copy.volume,
        policy_luns,
        Some(inv),
        &view.policy.agent.foreign_snapshot_patterns,
        now,
    );
    let waited = now - first;
    let why = match blocker {
        Some(blocked) if waited < copy.max_defer => {
            if state.waiting.is_none() {
                actions.push(Action::Defer {
                    copy: key,
                    since: first,
                    why: blocked.why,
                });
            }
            rotate_only(actions);
            // Looked at again when the clone has settled, after every release (a stage follows
            // each), or at the deadline.
            let deadline = first + copy.max_defer;
            return Some(blocked.until.map_or(deadline, |u| u.min(deadline)));
        }
        Some(blocked) => TakeWhy::MaxDefer {
            waited,
            blocker: blocked.why,
        },
        None if state.waiting.is_some() => TakeWhy::Deferred { waited },
        None if first < view.leading_since.unwrap_or(view.started_at) => {
            TakeWhy::Overdue { late: waited }
        }
        None => TakeWhy::OnTime,
    };
    let instants = u32::try_from(due.len()).unwrap_or(u32::MAX);
    actions.push(Action::TakeManaged(Box::new(Take {
        copy: key,
        volume: vref.clone(),
        name: managed::name(copy.prefix, copy.tz, now),
        comment: managed::comment(copy.prefix),
        label: copy.label.map(str::to_string),
        policy: copy.policy.to_string(),
        schedule: copy.schedule.to_string(),
        due: first,
        instants,
        why,
        rotate: excess(copy, &series, 1),
    })));
    next_instant
}

/// The series' oldest snapshots beyond the copy's count, once `adding` more exist, that may be
/// deleted now (uuid, name), oldest first. A busy one (any owner) is never deleted, and none
/// newer is deleted in its place: the count stays exceeded until it is free.
fn excess(
    copy: &ManagedCopy<'_>,
    series: &[&SnapshotInfo],
    adding: usize,
) -> Vec<(String, String)> {
    let total = series.len() + adding;
    let over = total.saturating_sub(usize::try_from(copy.count).unwrap_or(usize::MAX));
    series
        .iter()
        .take(over)
        .filter(|s| s.owners.is_empty())
        .map(|s| (s.uuid.to_string(), s.name.to_string()))
        .collect()
}
