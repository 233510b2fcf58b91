//! The start stage: what the plan says is due. Each lifecycle whose create has come is
//! started with its clone method, or recorded as skipped with the reason; a driver window's
//! tool starts once per occurrence for all its volumes, at the earliest planned start among
//! them; volumes the clusters lack are left out; the next planned create arms the trigger.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};

use super::{Action, ExcludeKind, ForgetWhy, View};
use crate::agent::cycle::{CloneKind, CloneLun, Cycle, CycleResult, CycleState};
use crate::agent::state::{
    ClusterView, Memory, Occurrence, OccurrenceKey, OccurrenceRef, VolumeKey,
};
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

/// A volume the pass leaves out: policy index, kind, why.
pub(crate) type Excluded = (usize, ExcludeKind, String);

/// Volumes the pass leaves out, in policy order, and why: schedules the planner could not
/// resolve, then a volume or LUN the cluster lacks (which says more), then ONTAP's own policy
/// taking a copy the volume hands to snapwarden.
pub(super) fn excluded(view: &View<'_>) -> Vec<Excluded> {
    let computed;
    let listed = match view.missing {
        Some(m) => m,
        None => {
            computed = missing(view.policy, view.clusters);
            &computed
        }
    };
    let unresolved = view.plan.map(|p| p.unresolved.as_slice()).unwrap_or(&[]);
    if unresolved.is_empty() {
        return listed.to_vec();
    }
    let mut out: BTreeMap<usize, (ExcludeKind, String)> = BTreeMap::new();
    for u in unresolved {
        if u.volume < view.policy.volumes.len() {
            out.insert(u.volume, (ExcludeKind::Unresolved, u.reason.clone()));
        }
    }
    for (vi, kind, why) in listed {
        out.insert(*vi, (*kind, why.clone()));
    }
    out.into_iter().map(|(vi, (k, w))| (vi, k, w)).collect()
}

/// What the listings say of the policy's volumes, in policy order: a volume or LUN the cluster
/// lacks, or ONTAP's own policy taking a copy the volume hands to snapwarden. It depends only
/// on the policy and the listings' volumes, policies and LUNs, so the agent keeps it between
/// passes while those are unchanged ([`Inventory::presence`](crate::agent::discovery::Inventory)).
pub(crate) fn missing(policy: &Policy, clusters: &[ClusterView]) -> Vec<Excluded> {
    let mut out = Vec::new();
    for (vi, v) in policy.volumes.iter().enumerate() {
        let Some(inv) = clusters.get(v.cluster).and_then(|c| c.inventory.as_ref()) else {
            continue;
        };
        if let Some(why) = inv.missing(policy, vi) {
            out.push((vi, ExcludeKind::Missing, why));
        } else if let Some(why) = double_schedule(policy, vi, inv) {
            out.push((vi, ExcludeKind::DoubleSchedule, why));
        }
    }
    out
}

/// Whether ONTAP's own snapshot policy on a managed volume (as discovered) also takes one of the
/// copies the volume hands to snapwarden: two schedulers of one series. The fix, never made by
/// snapwarden: give the volume an ONTAP policy without that copy.
fn double_schedule(
    policy: &Policy,
    vi: usize,
    inv: &crate::agent::discovery::Inventory,
) -> Option<String> {
    let volume = &policy.volumes[vi];
    let d = double_scheduled(policy, vi, inv)?;
    Some(format!(
        concat!(
            "double_schedule: ONTAP's snapshot policy {:?} on volume {} also takes the {} ",
            "snapshots that managed policy {:?} hands to snapwarden; give the volume an ONTAP ",
            "policy without them (snapwarden never changes ONTAP policies): `volume modify ",
            "-vserver {} -volume {} -snapshot-policy <policy>`, or PATCH ",
            "/api/storage/volumes/{} with {{\"snapshot_policy\": {{\"name\": \"<policy>\"}}}}"
        ),
        d.ontap_policy,
        volume.name,
        d.prefixes.join(", "),
        d.managed,
        volume.svm,
        volume.name,
        d.volume_uuid
    ))
}

/// Two schedulers of one series: the ONTAP policy of a managed volume and the prefixes it
/// takes that the volume's managed policy hands to snapwarden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DoubleSchedule {
    pub ontap_policy: String,
    pub prefixes: Vec<String>,
    /// The policy's managed snapshot policy.
    pub managed: String,
    pub volume_uuid: String,
}

/// [`DoubleSchedule`] of policy volume `vi` in a cluster's listing, if its ONTAP policy fires a
/// managed prefix (what the start stage leaves the volume out for, and `doctor` reports).
pub(crate) fn double_scheduled(
    policy: &crate::config::Policy,
    vi: usize,
    inv: &crate::agent::discovery::Inventory,
) -> Option<DoubleSchedule> {
    let volume = &policy.volumes[vi];
    let managed = &policy.snapshot_policies[volume.managed?];
    let info = inv.volume(&volume.svm, &volume.name)?;
    let ontap_policy = info.snapshot_policy.as_deref()?;
    let copies = &inv
        .snapshot_policies
        .iter()
        .find(|p| p.name == ontap_policy)?
        .copies;
    let prefixes: Vec<String> = copies
        .iter()
        .map(|c| c.prefix.as_deref().unwrap_or(&c.schedule))
        .filter(|p| managed.copies.iter().any(|m| m.prefix == *p))
        .map(str::to_string)
        .collect();
    (!prefixes.is_empty()).then(|| DoubleSchedule {
        ontap_policy: ontap_policy.to_string(),
        prefixes,
        managed: managed.name.clone(),
        volume_uuid: info.uuid.clone(),
    })
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
    for (i, vp) in plan.volumes.iter().enumerate() {
        let vi = vp.volume;
        // A started lifecycle changes nothing below, whether due or to come.
        let known = view.started_prefix.get(i).copied().unwrap_or(0);
        for lc in vp.lifecycles.iter().skip(known) {
            // A create still to come that no tool run brings forward only matters as the next
            // one to arm: the started set is asked only when it would be that one.
            if lc.create_at > now
                && (tools.is_empty() || !tools.contains(&(lc.window, lc.window_start)))
            {
                if lc.outcome != Outcome::Skipped
                    && next_create.is_none_or(|n| lc.create_at < n)
                    && !was_started(view, lc.window, vi, lc.window_start)
                {
                    next_create = Some(lc.create_at);
                }
                continue;
            }
            if was_started(view, lc.window, vi, lc.window_start) {
                continue;
            }
            let key = || occurrence(policy, lc.window, vi, lc.window_start);
            if view
                .leading_since
                .is_some_and(|t| lc.create_at < t && lc.create_at <= now)
            {
                actions.push(Action::Forget {
                    occurrence: key(),
                    why: ForgetWhy::PreviousLeader,
                });
                continue;
            }
            let due = lc.create_at <= now
                || (lc.outcome != Outcome::Skipped
                    && tools.contains(&(lc.window, lc.window_start)));
            // Still to come here means brought forward by a tool run, unless skipped.
            if !due {
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
                    occurrence: key(),
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

/// Occurrence `start` of window `wi` on policy volume `vi`, by the policy's names.
fn occurrence_ref(
    policy: &Policy,
    wi: usize,
    vi: usize,
    start: DateTime<Utc>,
) -> OccurrenceRef<'_> {
    let volume = &policy.volumes[vi];
    OccurrenceRef {
        window: &policy.windows[wi].name,
        cluster: &policy.clusters[volume.cluster].name,
        svm: &volume.svm,
        volume: &volume.name,
        start,
    }
}

/// Occurrence `start` of window `wi` on policy volume `vi`, owned (what an action carries).
fn occurrence(policy: &Policy, wi: usize, vi: usize, start: DateTime<Utc>) -> Occurrence {
    occurrence_ref(policy, wi, vi, start).to_owned()
}

/// Whether occurrence `start` of window `wi` on policy volume `vi` was already started, skipped
/// or given up (asked by borrowed names: no owned occurrence is built).
fn was_started(view: &View<'_>, wi: usize, vi: usize, start: DateTime<Utc>) -> bool {
    is_started(view.policy, view.memory, wi, vi, start)
}

fn is_started(
    policy: &Policy,
    memory: &Memory,
    wi: usize,
    vi: usize,
    start: DateTime<Utc>,
) -> bool {
    let key = occurrence_ref(policy, wi, vi, start);
    memory.started.contains(&key as &dyn OccurrenceKey)
}

/// How many of the first lifecycles of a planned volume, due by `now`, were started, skipped
/// or given up, given that the first `known` were: what the start stage may pass over
/// ([`View::started_prefix`]). An occurrence once started stays so while any plan holds it
/// (the started set forgets only occurrences older than a pass's lookback), so the count of a
/// volume whose lifecycles are the same list only grows, and a pass asks the set about the
/// first lifecycle due and not known started instead of every one in its lookback.
pub(crate) fn started_prefix(
    policy: &Policy,
    memory: &Memory,
    vp: &planner::VolumePlan,
    known: usize,
    now: DateTime<Utc>,
) -> usize {
    let mut k = known.min(vp.lifecycles.len());
    while vp.lifecycles.get(k).is_some_and(|lc| {
        lc.create_at <= now && is_started(policy, memory, lc.window, vp.volume, lc.window_start)
    }) {
        k += 1;
    }
    k
}

/// The driver windows' occurrences due now: a tool runs once per occurrence for all its volumes,
/// from the earliest planned start among them.
fn due_tools(view: &View<'_>, plan: &Plan, now: DateTime<Utc>) -> HashSet<ToolRun> {
    let mut due = HashSet::new();
    for (i, vp) in plan.volumes.iter().enumerate() {
        let known = view.started_prefix.get(i).copied().unwrap_or(0);
        for lc in vp.lifecycles.iter().skip(known) {
            if !view.policy.windows[lc.window].driver.is_snapwarden()
                && lc.create_at <= now
                && lc.outcome != Outcome::Skipped
                && !was_started(view, lc.window, vp.volume, lc.window_start)
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
        Due::Skip(lc.reason.to_string())
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
            lc.reason.to_string(),
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
