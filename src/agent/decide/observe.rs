//! The observe stage: what the clusters' listings say. Driver cycles first — the tool's
//! snapshot attributed to its cycle, and cycles whose tool stopped settled released or locked —
//! then, per cluster: chain conflicts and late releases of the open and recent cycles, foreign
//! snapshots, the space locked backing snapshots hold, locked cycles whose pins are gone, a
//! released backing snapshot listed again, and look-alikes (never touched).

use crate::fasthash::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{Action, ObjectKey, View};
use crate::agent::cycle::{
    self, CloneKind, ConflictKind, Cycle, CycleResult, CycleState, ObservedConflict,
};
use crate::agent::discovery::Inventory;
use crate::agent::driver;
use crate::agent::journal::{LockedSpace, ObjectKind};
use crate::agent::observe::{self as listing, has_prefix};
use crate::agent::state::{ClusterView, Memory, Step};
use crate::config::Policy;
use crate::ontap::SnapshotInfo;
use crate::planner::{self, VolumeRetention};

/// The objects with snapwarden's prefix on these listings that the open and recent cycles do
/// not explain: who owns them is what the journal must be asked before the observe stage (the
/// rule that decides is the stage's own: a snapshot is explained by a cycle in memory that owns
/// this very snapshot).
pub(crate) fn owner_lookups(
    policy: &Policy,
    clusters: &[ClusterView],
    memory: &Memory,
) -> Vec<ObjectKey> {
    let prefix = &policy.agent.snapshot_prefix;
    let mut out = Vec::new();
    for (ci, cv) in clusters.iter().enumerate() {
        let Some(inv) = &cv.inventory else { continue };
        let name = &policy.clusters[ci].name;
        for (s, id) in with_cycle_ids(inv, prefix) {
            if in_memory(memory, id, name, &s.svm, &s.volume_name, &s.name).is_some() {
                continue;
            }
            out.push(ObjectKey {
                cluster: name.clone(),
                svm: s.svm.to_string(),
                volume: s.volume_name.to_string(),
                kind: ObjectKind::Snapshot,
                name: s.name.to_string(),
            });
        }
        let mut known = KnownClones::new(memory, name);
        for l in inv.lookalike_luns(prefix) {
            if !known.knows(&l.name) {
                out.push(ObjectKey {
                    cluster: name.clone(),
                    svm: l.svm.clone(),
                    volume: l.volume_name.clone(),
                    kind: ObjectKind::Lun,
                    name: l.name.clone(),
                });
            }
        }
    }
    out
}

/// The cycle ids in markers on these listings that are neither open nor recent, once each:
/// whether the journal holds them is what it must be asked before the adopt stage.
pub(crate) fn cycle_lookups(
    policy: &Policy,
    clusters: &[ClusterView],
    memory: &Memory,
) -> Vec<String> {
    let prefix = &policy.agent.snapshot_prefix;
    let mut out = Vec::new();
    let mut ids = HashSet::default();
    for inv in clusters.iter().filter_map(|cv| cv.inventory.as_ref()) {
        for (_, id) in with_cycle_ids(inv, prefix) {
            if memory.cycle(id).is_none() && ids.insert(id) {
                out.push(id.to_string());
            }
        }
    }
    out
}

/// The snapshots with snapwarden's prefix whose marker names a cycle, each with that cycle's id.
fn with_cycle_ids<'a>(
    inv: &'a Inventory,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a SnapshotInfo, &'a str)> + 'a {
    inv.prefixed_snapshots(prefix).filter_map(|s| {
        let id = s.comment.as_deref().and_then(cycle::cycle_id_in_comment)?;
        Some((s, id))
    })
}

/// A cycle in memory (open or recent) that owns this very snapshot.
fn in_memory<'m>(
    memory: &'m Memory,
    id: &str,
    cluster: &str,
    svm: &str,
    volume: &str,
    snapshot: &str,
) -> Option<&'m Cycle> {
    memory.cycle(id).filter(|c| {
        c.backing_snapshot == snapshot && c.svm == svm && c.volume == volume && c.cluster == cluster
    })
}

/// The clone paths of the open cycles on a cluster.
fn open_clones<'m>(memory: &'m Memory, cluster: &str) -> HashSet<&'m str> {
    memory
        .open
        .values()
        .filter(|o| o.cycle.cluster == cluster)
        .flat_map(|o| o.cycle.clones.iter().map(|k| k.path.as_str()))
        .collect()
}

/// Whether a cycle in memory (open, or released within a day) had the clone at a path: a
/// listing that shows it needs no journal look-up (the journal recorded every clone of a
/// cycle before it was made). A released cycle's clone is still listed until its volume is
/// read again. The open cycles' clone paths are gathered at the first question: most
/// listings show no clone-like LUN at all.
struct KnownClones<'m> {
    memory: &'m Memory,
    cluster: &'m str,
    open: Option<HashSet<&'m str>>,
}

impl<'m> KnownClones<'m> {
    fn new(memory: &'m Memory, cluster: &'m str) -> KnownClones<'m> {
        KnownClones {
            memory,
            cluster,
            open: None,
        }
    }

    fn knows(&mut self, path: &str) -> bool {
        let (memory, cluster) = (self.memory, self.cluster);
        let open = self
            .open
            .get_or_insert_with(|| open_clones(memory, cluster));
        open.contains(path) || memory.recent.had_clone(cluster, path)
    }
}

/// A driver cycle: its backing snapshot is the tool's (no snapwarden prefix; empty until
/// attributed).
fn driven(c: &Cycle, prefix: &str) -> bool {
    !has_prefix(&c.backing_snapshot, prefix)
}

/// The retention of a cycle's volume, to tell when its pins rotate out.
fn retention(view: &View<'_>, c: &Cycle) -> Option<VolumeRetention> {
    let vi = crate::agent::state::volume_index(view.policy, &c.cluster, &c.svm, &c.volume)?;
    planner::volume_retention(view.policy, view.observed, vi).ok()
}

pub(super) fn decide(view: &View<'_>, now: DateTime<Utc>) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut conflicts = Vec::new();
    // The driver cycles as this stage leaves them (attributed, settled), for what follows.
    let (updated, settled) = drivers(view, now, &mut actions);
    let prefix = view.prefix();
    let guard = view.policy.agent.guard;
    let open: Vec<&Cycle> = view
        .memory
        .open
        .values()
        .filter(|o| !settled.contains(o.cycle.id.as_str()))
        .map(|o| updated.get(o.cycle.id.as_str()).unwrap_or(&o.cycle))
        .collect();
    // The driver cycles this stage settled: ended from now on.
    let ended_now: Vec<&Cycle> = view
        .memory
        .open
        .keys()
        .filter(|id| settled.contains(id.as_str()))
        .filter_map(|id| updated.get(id.as_str()))
        .collect();
    let recent = view.memory.recent.iter().chain(ended_now.iter().copied());
    let claimed = claimed(open.iter().copied().chain(recent), prefix);
    // Of the ended cycles, those whose conflicts a listing may still show for the first time.
    let unsettled: Vec<&Cycle> = view
        .memory
        .recent
        .unsettled()
        .chain(ended_now.iter().copied())
        .collect();
    let mut warnings = Vec::new();
    let mut unpinned = Vec::new();
    let mut reopen = Vec::new();
    let mut seen = Vec::new();
    for (ci, cv) in view.clusters.iter().enumerate() {
        let Some(inv) = &cv.inventory else { continue };
        let name = &view.policy.clusters[ci].name;
        let cycles: Vec<&Cycle> = open
            .iter()
            .chain(&unsettled)
            .copied()
            .filter(|c| &c.cluster == name)
            .collect();
        let recorded = |key: &str| view.memory.recorded.contains(key);
        let found = listing::conflicts(&cycles, inv, prefix, now, guard, recorded);
        let ended = view.memory.recent.unsettled();
        seen.extend(conflicts_seen(
            ended.filter(|c| &c.cluster == name),
            inv,
            &found,
        ));
        conflicts.extend(found);
        // A tool's snapshot attributed to a driver cycle is that cycle's, not `foreign`.
        let mine: Vec<(String, String, String)> = claimed
            .iter()
            .filter(|(c, _, _, _)| c == name)
            .map(|(_, svm, vol, snap)| (svm.clone(), vol.clone(), snap.clone()))
            .collect();
        conflicts.extend(listing::foreign(
            name,
            |svm, volume| view.policy.volume_at(name, svm, volume).is_some(),
            inv,
            &view.policy.agent.foreign_snapshot_patterns,
            &mine,
        ));
        for o in view
            .memory
            .open
            .values()
            .filter(|o| &o.cycle.cluster == name)
        {
            let c = &o.cycle;
            if c.state != CycleState::Locked || driven(c, prefix) {
                continue;
            }
            // The space its backing snapshot holds, where ONTAP reports it (recommendation
            // evidence).
            if let Some(bytes) = inv
                .volume_snapshots(&c.svm, &c.volume)
                .find(|s| s.name == c.backing_snapshot)
                .and_then(|s| s.size)
            {
                actions.push(Action::RecordLockedSpace(LockedSpace {
                    cycle_id: c.id.clone(),
                    cluster: c.cluster.clone(),
                    svm: c.svm.clone(),
                    volume: c.volume.clone(),
                    snapshot: c.backing_snapshot.clone(),
                    bytes,
                    at: now,
                }));
            }
            // Only a listing taken after the clones went can show every pin; whether any is
            // left is all this asks (not when they rotate out).
            let fresh = c.clones_deleted_at.is_none_or(|t| inv.at > t);
            let already = matches!(o.step, Step::Locked { unpinned: true, .. });
            if fresh && !already && listing::captured(c, inv, prefix, now).is_empty() {
                unpinned.push(c.id.clone());
            }
        }
        lookalikes(view, name, inv, &mut warnings, &mut reopen);
    }
    actions.extend(warnings.into_iter().map(warn));
    actions.extend(unpinned.into_iter().map(|cycle| Action::Unpinned { cycle }));
    actions.extend(reopen);
    actions.extend(conflicts.into_iter().map(Action::RecordConflict));
    actions.extend(seen);
    actions
}

/// A look-alike reported (its key says which kind of orphan it is).
fn warn((key, message): (String, String)) -> Action {
    let orphan = if key.starts_with("lun:") {
        "lun"
    } else {
        "snapshot"
    };
    Action::Warn {
        key,
        message,
        orphan: Some(orphan),
    }
}

/// The ended cycles (of one cluster, looked at in `inv` with `found` as their conflicts) that
/// no later listing can show a new chain conflict of: their clones, if a snapshot could
/// capture any, were gone before the listing was up to date (every snapshot taken while they
/// lived is in it, or already rotated out).
fn conflicts_seen<'c>(
    ended: impl Iterator<Item = &'c Cycle>,
    inv: &Inventory,
    found: &[ObservedConflict],
) -> Vec<Action> {
    let mut keys: HashMap<&str, Vec<String>> = HashMap::default();
    for c in found {
        if let Some(id) = &c.cycle {
            keys.entry(id.as_str()).or_default().push(c.key.clone());
        }
    }
    ended
        .filter(|c| c.state.is_terminal())
        .filter(|c| {
            c.clone_kind != CloneKind::SnapRestore
                || c.clones_created_at.is_none()
                || c.clones_deleted_at.is_some_and(|t| inv.at > t)
        })
        .map(|c| Action::ConflictsSeen {
            cycle: c.id.clone(),
            clones_deleted_at: c.clones_deleted_at,
            keys: keys.remove(c.id.as_str()).unwrap_or_default(),
        })
        .collect()
}

/// Snapshots and LUNs that look like snapwarden's: a released cycle's snapshot listed again is
/// reopened; one the journal cannot explain is reported, never touched.
fn lookalikes(
    view: &View<'_>,
    name: &str,
    inv: &Inventory,
    warnings: &mut Vec<(String, String)>,
    reopen: &mut Vec<Action>,
) {
    let prefix = view.prefix();
    let mut reopen_if_released = |id: &str, uuid: &str, released: Option<DateTime<Utc>>| {
        let open = view.memory.open.contains_key(id);
        if !open && inv.at > released.unwrap_or(DateTime::<Utc>::MAX_UTC) {
            reopen.push(Action::Reopen {
                cycle: id.to_string(),
                uuid: uuid.to_string(),
                seen_at: inv.at,
            });
        }
    };
    for s in inv.prefixed_snapshots(prefix) {
        let marker = s.comment.as_deref().and_then(cycle::cycle_id_in_comment);
        // A cycle in memory that owns this very snapshot answers without the journal (every
        // pass sees every live backing snapshot; only look-alikes and old cycles need a look-up).
        if let Some(c) =
            marker.and_then(|id| in_memory(view.memory, id, name, &s.svm, &s.volume_name, &s.name))
        {
            reopen_if_released(&c.id, &s.uuid.text(), c.released_at);
            continue;
        }
        let owner = marker.and_then(|_| {
            view.journal
                .owners
                .get(&ObjectKey {
                    cluster: name.to_string(),
                    svm: s.svm.to_string(),
                    volume: s.volume_name.to_string(),
                    kind: ObjectKind::Snapshot,
                    name: s.name.to_string(),
                })
                .cloned()
                .flatten()
        });
        match (marker, owner) {
            (Some(id), Some(o)) if o == id => {
                let released = view.memory.recent.get(id).and_then(|c| c.released_at);
                reopen_if_released(id, &s.uuid.text(), released);
            }
            (None, _) => warnings.push((
                format!("nomarker:{name}:{}", s.uuid),
                format!(
                    "cluster {name}: snapshot {} on volume {} (svm {}) has snapwarden's prefix but not its comment marker: not snapwarden's, never touched",
                    s.name, s.volume_name, s.svm
                ),
            )),
            (Some(_), _) => warnings.push((
                format!("nojournal:{name}:{}", s.uuid),
                format!(
                    "cluster {name}: snapshot {} on volume {} (svm {}) carries snapwarden's marker but this agent's journal has no record of it: never touched",
                    s.name, s.volume_name, s.svm
                ),
            )),
        }
    }
    let mut known = KnownClones::new(view.memory, name);
    for l in inv.lookalike_luns(prefix) {
        if known.knows(&l.name) {
            continue;
        }
        let owner = view
            .journal
            .owners
            .get(&ObjectKey {
                cluster: name.to_string(),
                svm: l.svm.clone(),
                volume: l.volume_name.clone(),
                kind: ObjectKind::Lun,
                name: l.name.clone(),
            })
            .cloned()
            .flatten();
        if owner.is_none() {
            warnings.push((
                format!("lun:{name}:{}", l.uuid),
                format!(
                    "cluster {name}: LUN {} (svm {}) has a clone-like path but this agent's journal has no record of it: never touched",
                    l.name, l.svm
                ),
            ));
        }
    }
}

/// The tool snapshots attributed to driver cycles: (cluster, svm, volume, snapshot).
fn claimed<'c>(
    cycles: impl Iterator<Item = &'c Cycle>,
    prefix: &str,
) -> Vec<(String, String, String, String)> {
    cycles
        .filter(|c| !c.backing_snapshot.is_empty() && driven(c, prefix))
        .map(|c| {
            (
                c.cluster.clone(),
                c.svm.clone(),
                c.volume.clone(),
                c.backing_snapshot.clone(),
            )
        })
        .collect()
}

/// Driver cycles: attributes the tool's snapshot on each cycle's volume, and settles the cycles
/// whose tool stopped — released when the snapshot is gone, `locked` (with its pins and the
/// unlock estimate) while the tool could not delete it. Deletes nothing. Returns the cycles as
/// changed, and the ids of those settled.
fn drivers<'v>(
    view: &'v View<'_>,
    now: DateTime<Utc>,
    actions: &mut Vec<Action>,
) -> (HashMap<&'v str, Cycle>, HashSet<&'v str>) {
    let prefix = view.prefix();
    let patterns = &view.policy.agent.foreign_snapshot_patterns;
    let mut updated: HashMap<&str, Cycle> = HashMap::default();
    let mut settled = HashSet::default();
    let mut attributed: Vec<(String, String, String, String)> = claimed(
        view.memory
            .open
            .values()
            .map(|o| &o.cycle)
            .chain(view.memory.recent.iter()),
        prefix,
    );
    for (id, o) in &view.memory.open {
        if !matches!(o.step, Step::Tool | Step::ToolEnded) {
            continue;
        }
        let mut c = o.cycle.clone();
        let Some(inv) = view
            .cluster(&c.cluster)
            .and_then(|(_, v)| v.inventory.as_ref())
        else {
            continue;
        };
        let mut why = String::new();
        if c.backing_snapshot.is_empty() {
            if let Some(attributed) = attribute(&mut c, inv, patterns, &attributed) {
                why = attributed;
            }
            if !c.backing_snapshot.is_empty() {
                attributed.push((
                    c.cluster.clone(),
                    c.svm.clone(),
                    c.volume.clone(),
                    c.backing_snapshot.clone(),
                ));
            }
        }
        let ended = o.step == Step::ToolEnded || c.state == CycleState::Locked;
        let fresh = c.clones_deleted_at.is_none_or(|t| inv.at > t);
        let mut settles = false;
        if ended && fresh {
            match settle_tool(view, &mut c, inv, now) {
                Settled::Locked(conflict) => {
                    why = "the tool could not delete its backing snapshot: locked".into();
                    actions.push(Action::RecordConflict(conflict));
                }
                Settled::Released => settles = true,
                Settled::No => {}
            }
        }
        if settles {
            settled.insert(id.as_str());
            updated.insert(id.as_str(), c.clone());
            actions.push(Action::Settle { cycle: c });
        } else if !why.is_empty() {
            updated.insert(id.as_str(), c.clone());
            actions.push(Action::Update { cycle: c, why });
        }
    }
    (updated, settled)
}

/// Ties the tool's snapshot on the cycle's volume to it (none another cycle claims): why, when
/// one is found.
fn attribute(
    c: &mut Cycle,
    inv: &Inventory,
    patterns: &[regex::Regex],
    claimed: &[(String, String, String, String)],
) -> Option<String> {
    let taken: Vec<(String, String, String)> = claimed
        .iter()
        .filter(|(cl, _, _, _)| *cl == c.cluster)
        .map(|(_, svm, vol, snap)| (svm.clone(), vol.clone(), snap.clone()))
        .collect();
    let s = driver::attribute(c, inv, patterns, &taken)?;
    let t = s.create_time.with_timezone(&Utc);
    c.backing_snapshot = s.name.to_string();
    c.created_at = Some(t);
    if c.clone_kind == CloneKind::SnapRestore {
        // The tool clones right after its snapshot: from then on a scheduled snapshot can
        // capture the clone.
        c.clones_created_at = Some(t);
    }
    Some(format!(
        "the tool's backing snapshot (created {}) is attributed to the cycle",
        t.to_rfc3339()
    ))
}

/// How a driver cycle whose tool stopped stands in a listing taken after.
enum Settled {
    /// Its snapshot is still there: the tool could not delete it.
    Locked(ObservedConflict),
    /// Its snapshot is gone (or none was made): the cycle ends.
    Released,
    /// Nothing new.
    No,
}

fn settle_tool(view: &View<'_>, c: &mut Cycle, inv: &Inventory, now: DateTime<Utc>) -> Settled {
    let alive = !c.backing_snapshot.is_empty()
        && inv
            .volume_snapshots(&c.svm, &c.volume)
            .any(|s| s.name == c.backing_snapshot);
    if alive && c.state != CycleState::Locked {
        let pins = listing::pins(c, inv, view.prefix(), retention(view, c).as_ref(), now);
        c.state = CycleState::Locked;
        return Settled::Locked(ObservedConflict {
            kind: ConflictKind::Locked,
            cluster: c.cluster.clone(),
            svm: c.svm.clone(),
            volume: c.volume.clone(),
            window: Some(c.window.clone()),
            cycle: Some(c.id.clone()),
            at: inv.at,
            detail: format!(
                "backing snapshot {} is still there after the tool stopped at {} (the tool could not delete it; snapwarden never does); {}",
                c.backing_snapshot,
                c.clones_deleted_at.unwrap_or(now).to_rfc3339(),
                pins.describe()
            ),
            key: format!("locked:{}", c.id),
        });
    }
    if alive {
        return Settled::No;
    }
    let was_locked = c.state == CycleState::Locked;
    let nothing_made = c.backing_snapshot.is_empty();
    c.state = if nothing_made && c.result == Some(CycleResult::Failed) {
        CycleState::Failed
    } else {
        CycleState::Released
    };
    c.released_at = Some(if was_locked {
        inv.at
    } else {
        c.clones_deleted_at.unwrap_or(inv.at)
    });
    if nothing_made {
        let note = "no backing snapshot of the tool was seen on the volume";
        c.detail = if c.detail.is_empty() {
            note.to_string()
        } else {
            format!("{}; {note}", c.detail)
        };
    }
    if c.result.is_none() {
        c.result = Some(CycleResult::Completed);
    }
    Settled::Released
}
