//! The start stage: what the plan says is due. Each lifecycle whose create has come is
//! started with its clone method, or recorded as skipped with the reason; a driver window's
//! tool starts once per occurrence for all its volumes, at the earliest planned start among
//! them; volumes the clusters lack are left out; the next planned create arms the trigger.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};

use super::{Action, ExcludeKind, ForgetWhy, View};
use crate::agent::cycle::{CloneKind, CloneLun, Cycle, CycleResult, CycleState};
use crate::agent::state::{Occurrence, VolumeKey};
use crate::config::{CloneMethod, Driver, Policy};
use crate::ontap::{LicenseState, VolumeRef};
use crate::planner::{self, Lifecycle, Outcome, Plan};

/// A driver window's occurrence: (window, configured start).
type ToolRun = (usize, DateTime<Utc>);

/// How far ahead each pass plans (the next trigger is the first create in this range).
pub(crate) const LOOKAHEAD: TimeDelta = TimeDelta::hours(26);

/// Lookback of every pass: occurrences whose lifecycle may still be live, or was missed.
pub(crate) fn lookback(policy: &Policy) -> TimeDelta {
    let longest = policy
        .windows
        .iter()
        .map(|w| w.shift_limit + w.shift_limit + w.max)
        .max()
        .unwrap_or_default();
    longest + policy.agent.guard + TimeDelta::hours(1)
}

/// Volumes the pass leaves out, in policy order, and why: schedules the planner could not
/// resolve, then a volume or LUN the cluster lacks (which says more), then ONTAP's own policy
/// taking a copy the volume hands to snapwarden.
pub(super) fn excluded(view: &View<'_>) -> Vec<(usize, ExcludeKind, String)> {
    let mut out: Vec<Option<(ExcludeKind, String)>> = vec![None; view.policy.volumes.len()];
    if let Some(plan) = view.plan {
        for u in &plan.unresolved {
            if let Some(slot) = out.get_mut(u.volume) {
                *slot = Some((ExcludeKind::Unresolved, u.reason.clone()));
            }
        }
    }
    let present: Vec<_> = view
        .clusters
        .iter()
        .map(|cv| cv.inventory.as_ref().map(|inv| inv.present()))
        .collect();
    for (vi, v) in view.policy.volumes.iter().enumerate() {
        if let Some(Some(p)) = present.get(v.cluster) {
            if let Some(why) = p.missing(view.policy, vi) {
                out[vi] = Some((ExcludeKind::Missing, why));
                continue;
            }
        }
        if let Some(why) = double_schedule(view, vi) {
            out[vi] = Some((ExcludeKind::DoubleSchedule, why));
        }
    }
    out.into_iter()
        .enumerate()
        .filter_map(|(vi, why)| why.map(|(k, w)| (vi, k, w)))
        .collect()
}

/// Whether ONTAP's own snapshot policy on a managed volume (as discovered) also takes one of the
/// copies the volume hands to snapwarden: two schedulers of one series. The fix, never made by
/// snapwarden: give the volume an ONTAP policy without that copy.
fn double_schedule(view: &View<'_>, vi: usize) -> Option<String> {
    let volume = &view.policy.volumes[vi];
    let managed = &view.policy.snapshot_policies[volume.managed?];
    let inv = view.clusters.get(volume.cluster)?.inventory.as_ref()?;
    let info = inv.volume(&volume.svm, &volume.name)?;
    let ontap_policy = info.snapshot_policy.as_deref()?;
    let copies = &inv
        .snapshot_policies
        .iter()
        .find(|p| p.name == ontap_policy)?
        .copies;
    let both: Vec<&str> = copies
        .iter()
        .map(|c| c.prefix.as_deref().unwrap_or(&c.schedule))
        .filter(|p| managed.copies.iter().any(|m| m.prefix == *p))
        .collect();
    if both.is_empty() {
        return None;
    }
    Some(format!(
        concat!(
            "double_schedule: ONTAP's snapshot policy {:?} on volume {} also takes the {} ",
            "snapshots that managed policy {:?} hands to snapwarden; give the volume an ONTAP ",
            "policy without them (snapwarden never changes ONTAP policies): `volume modify ",
            "-vserver {} -volume {} -snapshot-policy <policy>`, or PATCH ",
            "/api/storage/volumes/{} with {{\"snapshot_policy\": {{\"name\": \"<policy>\"}}}}"
        ),
        ontap_policy,
        volume.name,
        both.join(", "),
        managed.name,
        volume.svm,
        volume.name,
        info.uuid
    ))
}

pub(super) fn decide(view: &View<'_>, now: DateTime<Utc>) -> Vec<Action> {
    let Some(plan) = view.plan else {
        return Vec::new();
    };
    let policy = view.policy;
    let mut actions = Vec::new();
    let excluded = excluded(view);
    for (vi, kind, why) in &excluded {
        if let Some(volume) = VolumeKey::of_policy(policy, *vi) {
            actions.push(Action::Exclude {
                volume,
                kind: *kind,
                why: why.clone(),
            });
        }
    }
    let excluded_why = |vi: usize| {
        excluded
            .iter()
            .find(|(v, _, _)| *v == vi)
            .map(|(_, _, w)| w.as_str())
    };
    let tools = due_tools(view, plan, now);
    let mut next_create: Option<DateTime<Utc>> = None;
    let mut skipped = Vec::new();
    let mut to_start = Vec::new();
    for vp in &plan.volumes {
        let vi = vp.volume;
        for lc in &vp.lifecycles {
            let key = occurrence(policy, lc.window, vi, lc.window_start);
            if view.memory.started.contains(&key) {
                continue;
            }
            if view
                .leading_since
                .is_some_and(|t| lc.create_at < t && lc.create_at <= now)
            {
                actions.push(Action::Forget {
                    occurrence: key,
                    why: ForgetWhy::PreviousLeader,
                });
                continue;
            }
            let due = lc.create_at <= now
                || (lc.outcome != Outcome::Skipped
                    && tools.contains(&(lc.window, lc.window_start)));
            if !due {
                if lc.outcome != Outcome::Skipped {
                    next_create = Some(next_create.map_or(lc.create_at, |n| n.min(lc.create_at)));
                }
                continue;
            }
            match due_now(view, lc, vi, excluded_why(vi), now) {
                Due::Start => to_start.push((lc, vi)),
                Due::Wait => {}
                Due::Skip(reason) if lc.create_at >= view.started_at => {
                    skipped.push((lc, vi, reason))
                }
                // Before this run: not recorded, and not looked at again.
                Due::Skip(_) => actions.push(Action::Forget {
                    occurrence: key,
                    why: ForgetWhy::BeforeStart,
                }),
            }
        }
    }
    for (lc, vi, reason) in skipped {
        let cycle = new_cycle(
            policy,
            lc,
            vi,
            CloneKind::SnapRestore,
            CycleState::Skipped,
            reason,
        );
        actions.push(Action::Skip { cycle });
    }
    actions.extend(starts(view, to_start, now));
    actions.push(Action::Arm { at: next_create });
    actions
}

/// Occurrence `start` of window `wi` on policy volume `vi`.
fn occurrence(policy: &Policy, wi: usize, vi: usize, start: DateTime<Utc>) -> Occurrence {
    Occurrence {
        window: policy.windows[wi].name.clone(),
        volume: VolumeKey::of_policy(policy, vi).expect("planned volumes are the policy's"),
        start,
    }
}

/// The driver windows' occurrences due now: a tool runs once per occurrence for all its volumes,
/// from the earliest planned start among them.
fn due_tools(view: &View<'_>, plan: &Plan, now: DateTime<Utc>) -> HashSet<ToolRun> {
    let mut due = HashSet::new();
    for vp in &plan.volumes {
        for lc in &vp.lifecycles {
            if !view.policy.windows[lc.window].driver.is_snapwarden()
                && lc.create_at <= now
                && lc.outcome != Outcome::Skipped
                && !view.memory.started.contains(&occurrence(
                    view.policy,
                    lc.window,
                    vp.volume,
                    lc.window_start,
                ))
            {
                due.insert((lc.window, lc.window_start));
            }
        }
    }
    due
}

/// What becomes of a lifecycle whose create has come.
enum Due {
    Start,
    /// Its cluster is unreachable and the window still fits: looked at again.
    Wait,
    Skip(String),
}

fn due_now(
    view: &View<'_>,
    lc: &Lifecycle,
    vi: usize,
    excluded: Option<&str>,
    now: DateTime<Utc>,
) -> Due {
    let policy = view.policy;
    let window = &policy.windows[lc.window];
    let ci = policy.volumes[vi].cluster;
    let cluster = &view.clusters[ci];
    let too_late = now + window.expected > lc.release_by;
    if lc.outcome == Outcome::Skipped {
        Due::Skip(lc.reason.clone())
    } else if let Some(why) = excluded {
        Due::Skip(format!("not run: {why}"))
    } else if !cluster.reachable && !too_late {
        Due::Wait
    } else if !cluster.reachable {
        Due::Skip(format!(
            "not run: cluster {} was unreachable from the planned start until it was too late ({})",
            policy.clusters[ci].name,
            cluster.last_error.clone().unwrap_or_default()
        ))
    } else if too_late {
        Due::Skip(format!(
            "not run: the agent was not running at the planned start {} and the window's expected {} no longer fits before {}",
            lc.create_at.to_rfc3339(),
            planner::human(window.expected),
            lc.release_by.to_rfc3339()
        ))
    } else {
        Due::Start
    }
}

/// The starts of the lifecycles due: snapwarden's own with their clone method, and one tool
/// start per driver window occurrence (its volumes' cycles together), after them.
fn starts(view: &View<'_>, to_start: Vec<(&Lifecycle, usize)>, now: DateTime<Utc>) -> Vec<Action> {
    let policy = view.policy;
    let mut actions = Vec::new();
    // Per (window, configured start): the driver cycles of its volumes.
    let mut tools: Vec<(ToolRun, Vec<Cycle>)> = Vec::new();
    for (lc, vi) in to_start {
        let volume = &policy.volumes[vi];
        let Some(inv) = view.clusters[volume.cluster].inventory.as_ref() else {
            continue;
        };
        let Some(info) = inv.volume(&volume.svm, &volume.name) else {
            continue;
        };
        let licensed = inv.flexclone == LicenseState::Compliant;
        if !policy.windows[lc.window].driver.is_snapwarden() {
            let cycle = tool_cycle(policy, lc, vi, licensed, now);
            let group = (lc.window, lc.window_start);
            match tools.iter_mut().find(|(g, _)| *g == group) {
                Some((_, cycles)) => cycles.push(cycle),
                None => tools.push((group, vec![cycle])),
            }
            continue;
        }
        let key = VolumeKey::of_policy(policy, vi).expect("planned volumes are the policy's");
        // `use_when_licensed` switches a SnapRestore volume with a recommendation in force to
        // FlexClone (`auto` already uses FlexClone when licensed).
        let switch = policy.flexclone.use_when_licensed
            && licensed
            && view.memory.recommended.contains_key(&key);
        let kind = match volume.clone {
            CloneMethod::FlexClone => CloneKind::FlexClone,
            CloneMethod::SnapRestore if switch => CloneKind::FlexClone,
            CloneMethod::SnapRestore => CloneKind::SnapRestore,
            CloneMethod::Auto if licensed => CloneKind::FlexClone,
            CloneMethod::Auto => CloneKind::SnapRestore,
        };
        let cycle = new_cycle(
            policy,
            lc,
            vi,
            kind,
            CycleState::Creating,
            lc.reason.clone(),
        );
        let switched = (switch && volume.clone == CloneMethod::SnapRestore).then_some(key);
        actions.push(Action::Start {
            cycle,
            volume: VolumeRef {
                uuid: info.uuid.clone(),
                name: info.name.clone(),
                svm: info.svm.clone(),
            },
            switched,
        });
    }
    tools.sort_by_key(|(g, _)| *g);
    for ((wi, _), cycles) in tools {
        actions.push(Action::StartTool {
            window: policy.windows[wi].name.clone(),
            cycles,
            resume: false,
        });
    }
    actions
}

/// A driver window's cycle on one volume: the tool makes the snapshot (its name is empty until
/// attributed) and clones with FlexClone when the cluster is licensed (Veeam does).
fn tool_cycle(
    policy: &Policy,
    lc: &Lifecycle,
    vi: usize,
    licensed: bool,
    now: DateTime<Utc>,
) -> Cycle {
    let kind = if licensed {
        CloneKind::FlexClone
    } else {
        CloneKind::SnapRestore
    };
    let what = match &policy.windows[lc.window].driver {
        Driver::Veeam(job) => format!(
            "Veeam job {:?} on server {}",
            job.job,
            policy
                .veeam
                .get(job.server)
                .map_or("?", |s| s.name.as_str())
        ),
        _ => "the window's hook".to_string(),
    };
    let mut cycle = new_cycle(
        policy,
        lc,
        vi,
        kind,
        CycleState::Backup,
        format!("{what} started at {}; {}", now.to_rfc3339(), lc.reason),
    );
    cycle.backing_snapshot = String::new();
    cycle.clones.clear();
    cycle
}

/// A cycle for lifecycle `lc` on policy volume `vi`, not yet journaled: its id is given when it
/// is (the executor's journal insert), its names follow the policy's prefix.
pub(crate) fn new_cycle(
    policy: &Policy,
    lc: &Lifecycle,
    vi: usize,
    kind: CloneKind,
    state: CycleState,
    detail: String,
) -> Cycle {
    let volume = &policy.volumes[vi];
    let window = &policy.windows[lc.window];
    let name = format!(
        "{}.{}.{}",
        policy.agent.snapshot_prefix,
        window.name,
        lc.create_at.format("%Y%m%dT%H%M%SZ")
    );
    let mut leaves: HashSet<String> = HashSet::new();
    let clones = volume
        .luns
        .iter()
        .enumerate()
        .map(|(i, lun)| {
            let leaf = lun.rsplit('/').next().unwrap_or("lun").to_string();
            let leaf = if leaves.insert(leaf.clone()) {
                leaf
            } else {
                format!("{i}.{leaf}")
            };
            CloneLun {
                source: lun.clone(),
                path: format!("/vol/{}/{name}.{leaf}", volume.name),
            }
        })
        .collect();
    Cycle {
        id: String::new(),
        window: window.name.clone(),
        cluster: policy.clusters[volume.cluster].name.clone(),
        svm: volume.svm.clone(),
        volume: volume.name.clone(),
        window_start: lc.window_start,
        create_at: lc.create_at,
        release_by: lc.release_by,
        release_deadline: lc.next_scheduled.map(|n| n.at - policy.agent.guard),
        backing_snapshot: name,
        clone_kind: kind,
        clones,
        state,
        result: (state == CycleState::Skipped).then_some(CycleResult::Skipped),
        created_at: None,
        clones_created_at: None,
        clones_deleted_at: None,
        released_at: None,
        detail,
        replica: None,
    }
}
