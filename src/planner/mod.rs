//! The pure planner: places backing-snapshot lifecycles between scheduled snapshots.
//!
//! `plan(policy, observed, now, horizon)` reads no clock and does no I/O. For every backup-window
//! occurrence in `[now, now + horizon)` and every volume of that window it places one lifecycle —
//! create the backing snapshot at the start, release everything by `start + max` — such that no
//! scheduled snapshot falls in `[create, release + guard)`. When that is impossible it follows the
//! window's `on_conflict` and says why. Every lifecycle and conflict carries its reason, so `plan`,
//! `check`, logs and the status API can explain themselves.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::config::model::{Policy, VolumeSchedules};
use crate::domain::limits;
use crate::timeline::{self, CronSpec, Recurrence, ScheduledSnapshot};

mod deferral;
mod human;
mod place;
mod retention;
mod rolling;
mod suggest;
#[cfg(test)]
mod tests;

pub use crate::domain::{Observed, ObservedCluster};
pub use deferral::{Deferral, ManagedInstant, MANAGED_SETTLE};
pub use human::{human, Human};
use place::{ceil_seconds, earliest_shift, place, seconds_up, shift_unclamped_until};
pub use retention::{volume_retention, RetainedSchedule, VolumeRetention};
pub use rolling::Rolling;
pub use suggest::Suggestion;

/// What a lifecycle turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Runs at the window's start and is released with at least `guard` to spare.
    Fits,
    /// Moved to the nearest start that fits, within the window's `shift_limit`.
    Shifted,
    /// Not run: `on_conflict = "skip"`, or no fitting start exists within `shift_limit`.
    Skipped,
    /// Runs anyway (`on_conflict = "run"`); a scheduled snapshot is predicted to capture the clone.
    Conflict,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Fits => "fits",
            Outcome::Shifted => "shifted",
            Outcome::Skipped => "skipped",
            Outcome::Conflict => "conflict",
        }
    }
}

/// One planned backing-snapshot lifecycle: create at `create_at`, release everything by `release_by`.
///
/// Invariant: unless `outcome` is `Conflict` (or `Skipped`, which does not run), no scheduled
/// snapshot of the volume lies in `[create_at, release_by + guard)`.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// Index into `Policy::windows`.
    pub window: usize,
    /// The occurrence of the window's start cron this lifecycle serves.
    pub window_start: DateTime<Utc>,
    pub create_at: DateTime<Utc>,
    pub release_by: DateTime<Utc>,
    /// The first scheduled snapshot after `create_at` (`None`: none within eight years).
    pub next_scheduled: Option<ScheduledSnapshot>,
    pub outcome: Outcome,
    /// Why this lifecycle is where it is, in one sentence (shared: the agent's plan hands the
    /// same lifecycles out at every pass).
    pub reason: Arc<str>,
}

impl Lifecycle {
    /// Time between `release_by + guard` and the next scheduled snapshot (negative: overlap).
    pub fn slack(&self, guard: TimeDelta) -> Option<TimeDelta> {
        self.next_scheduled
            .map(|n| n.at.signed_duration_since(later(self.release_by, guard)))
    }
}

/// The plan of one volume over the horizon.
#[derive(Debug, Clone)]
pub struct VolumePlan {
    /// Index into `Policy::volumes`.
    pub volume: usize,
    pub timezone: Tz,
    /// Schedule names, indexed by `ScheduledSnapshot::schedule`.
    pub schedule_names: Arc<[String]>,
    /// Scheduled snapshots in `[from, until)`, shared by every volume with the same schedules
    /// and zone.
    pub scheduled: Arc<[ScheduledSnapshot]>,
    /// Shared: the agent's rolling plan hands the same list out while it is unchanged.
    pub lifecycles: Arc<[Lifecycle]>,
    /// The instants of the copies the volume hands to snapwarden (`managed_snapshots`) in the
    /// range: movable, so not among `scheduled` (`plan` only; empty in the agent's plan).
    pub managed: Vec<ManagedInstant>,
    /// The managed snapshots the lifecycles hold back (`plan` only).
    pub deferrals: Vec<Deferral>,
}

impl VolumePlan {
    pub fn schedule_name(&self, s: &ScheduledSnapshot) -> &str {
        &self.schedule_names[s.schedule]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// `on_conflict = "run"`: a scheduled snapshot will capture the clone and lock the backing
    /// snapshot into the chain.
    ChainConflict,
    /// `on_conflict = "skip"`: the occurrence does not run.
    Skipped,
    /// `on_conflict = "shift"` found no fitting start within `shift_limit`; the occurrence does
    /// not run.
    NoGap,
    /// A managed snapshot would wait for the lifecycle's clone longer than its `max_defer`: the
    /// agent takes it anyway, and it captures the clone.
    MaxDefer,
}

impl ConflictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::ChainConflict => "chain_conflict",
            ConflictKind::Skipped => "skipped",
            ConflictKind::NoGap => "no_gap",
            ConflictKind::MaxDefer => "max_defer",
        }
    }
}

/// A window occurrence that cannot run between two scheduled snapshots.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub window: usize,
    pub volume: usize,
    /// The window occurrence's start.
    pub at: DateTime<Utc>,
    /// The first scheduled snapshot inside `[at, at + max + guard)`.
    pub scheduled: ScheduledSnapshot,
    pub schedule: String,
    pub kind: ConflictKind,
    pub suggestion: String,
}

/// A volume the planner could not plan offline, and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub volume: usize,
    pub reason: String,
}

/// Everything the planner decided for `[from, until)`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub guard: TimeDelta,
    pub volumes: Vec<VolumePlan>,
    pub conflicts: Vec<Conflict>,
    /// One per window with at least one occurrence that does not fit at its configured start.
    pub suggestions: Vec<Suggestion>,
    pub unresolved: Vec<Unresolved>,
}

/// Plans every window occurrence in `[now, now + horizon)`.
///
/// Edge rules: instants are whole seconds, so `now` is truncated to its second (a fractional
/// `now` plans exactly like its whole second; `Plan::from` is that second), and the horizon is
/// truncated to whole seconds and clamped to `0..=`[`limits::HORIZON_MAX`]. Durations outside
/// [`limits`] (which validation refuses) make the volumes they concern unresolved instead of
/// overflowing.
pub fn plan(policy: &Policy, observed: &Observed, now: DateTime<Utc>, horizon: TimeDelta) -> Plan {
    let (from, until) = range(now, horizon);
    let built = build(policy, observed, from, until, true);
    let volumes = built
        .volumes
        .into_iter()
        .map(|mut pv| {
            pv.lifecycles.sort_by_key(|l| (l.create_at, l.window));
            let scheduled = pv.timeline.horizon.clone();
            VolumePlan {
                volume: pv.volume,
                timezone: pv.resolved.tz,
                schedule_names: pv.resolved.names.clone(),
                scheduled,
                lifecycles: pv.lifecycles.into(),
                managed: Vec::new(),
                deferrals: Vec::new(),
            }
        })
        .collect();
    let mut plan = Plan {
        from,
        until,
        guard: policy.agent.guard,
        volumes,
        conflicts: built.conflicts,
        suggestions: built.suggestions,
        unresolved: built.unresolved,
    };
    deferral::defer(policy, &mut plan);
    plan
}

/// The `[from, until)` that `plan(_, _, now, horizon)` plans.
fn range(now: DateTime<Utc>, horizon: TimeDelta) -> (DateTime<Utc>, DateTime<Utc>) {
    let from = now.trunc_subsecs(0);
    let horizon =
        TimeDelta::seconds(horizon.num_seconds()).clamp(TimeDelta::zero(), limits::HORIZON_MAX);
    (from, later(from, horizon))
}

/// What [`build`] placed: the planned volumes (with their timelines, for placing again) in
/// policy order, lifecycles in the order placed.
struct Built {
    volumes: Vec<PlannedVolume>,
    /// Empty unless `build` was asked for conflicts.
    conflicts: Vec<Conflict>,
    suggestions: Vec<Suggestion>,
    unresolved: Vec<Unresolved>,
}

/// Places every window occurrence in `[from, until)` (whole seconds); with `with_conflicts`,
/// also lists the conflicts and suggests starts (what `plan` reports and the agent does not
/// read).
fn build(
    policy: &Policy,
    observed: &Observed,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    with_conflicts: bool,
) -> Built {
    let guard = policy.agent.guard;
    let mut unresolved = Vec::new();
    if !limits::GUARD.contains(guard) {
        let reason = out_of_bounds("[agent]", &limits::GUARD, guard);
        unresolved = (0..policy.volumes.len())
            .map(|volume| Unresolved {
                volume,
                reason: reason.clone(),
            })
            .collect();
        return Built {
            volumes: Vec::new(),
            conflicts: Vec::new(),
            suggestions: Vec::new(),
            unresolved,
        };
    }
    let plannable = plannable_windows(policy, &mut unresolved);
    let reach = timeline_reach(policy, &plannable);
    let covered = (earlier(from, reach), later(until, reach));
    let (mut volumes, by_volume) =
        planned_volumes(policy, observed, covered, (from, until), &mut unresolved);

    let mut conflicts = Vec::new();
    let mut suggestions = Vec::new();
    let mut window_starts: HashMap<(CronSpec, Tz), Vec<DateTime<Utc>>> = HashMap::new();
    for (wi, window) in policy.windows.iter().enumerate() {
        if !plannable[wi] {
            continue;
        }
        // Many windows share a start and a zone: enumerate each pair once.
        let starts = window_starts
            .entry((window.start, window.timezone))
            .or_insert_with(|| {
                Recurrence::Cron(window.start).occurrences(window.timezone, from, until)
            })
            .clone();
        let mut window_conflicts = Vec::new();
        let mut any_misfit = false;
        for &vi in &window.volumes {
            let Some(&pi) = by_volume.get(&vi) else {
                continue;
            };
            let pv = &mut volumes[pi];
            for &start in &starts {
                let (lifecycle, conflict) = place(wi, window, vi, pv, start, from, guard);
                any_misfit |= lifecycle.outcome != Outcome::Fits;
                if let Some(c) = conflict.filter(|_| with_conflicts) {
                    window_conflicts.push(c);
                }
                pv.lifecycles.push(lifecycle);
            }
        }
        if any_misfit && with_conflicts {
            let windows_volumes: Vec<&PlannedVolume> = window
                .volumes
                .iter()
                .filter_map(|vi| by_volume.get(vi).map(|&pi| &volumes[pi]))
                .collect();
            let s = suggest::suggest(policy, wi, &starts, &windows_volumes, from, until);
            for c in &mut window_conflicts {
                c.suggestion = s.text.clone();
            }
            suggestions.push(s);
        }
        conflicts.extend(window_conflicts);
    }

    conflicts.sort_by_key(|c| (c.at, c.window, c.volume));
    Built {
        volumes,
        conflicts,
        suggestions,
        unresolved,
    }
}

/// Which windows can be planned: those whose durations are within bounds. The volumes of the
/// others are unresolved, with every bound their window breaks.
fn plannable_windows(policy: &Policy, unresolved: &mut Vec<Unresolved>) -> Vec<bool> {
    policy
        .windows
        .iter()
        .map(|w| {
            let bad: Vec<String> = [
                (&limits::WINDOW_MAX, w.max),
                (&limits::WINDOW_EXPECTED, w.expected),
                (&limits::SHIFT_LIMIT, w.shift_limit),
            ]
            .into_iter()
            .filter(|(bound, d)| !bound.contains(*d))
            .map(|(bound, d)| out_of_bounds(&format!("window {}", w.name), bound, d))
            .collect();
            for &volume in &w.volumes {
                for reason in &bad {
                    unresolved.push(Unresolved {
                        volume,
                        reason: reason.clone(),
                    });
                }
            }
            bad.is_empty()
        })
        .collect()
}

/// How far beyond `[from, until)` the timelines reach. They must cover every instant a lifecycle
/// or a suggestion may test: a start moved by up to `shift_limit` (placing) or `suggest::SEARCH`
/// (suggesting) from an occurrence in `[from, until)`, plus `max` and the guard. Bounded
/// durations keep this under 16 days.
fn timeline_reach(policy: &Policy, plannable: &[bool]) -> TimeDelta {
    policy
        .windows
        .iter()
        .zip(plannable)
        .filter(|(_, ok)| **ok)
        .map(|(w, _)| w.shift_limit.max(suggest::SEARCH) + w.max)
        .max()
        .unwrap_or_default()
        + policy.agent.guard
        + TimeDelta::minutes(1)
}

/// Every volume whose schedules and zone resolve, with its timeline over `covered` (shared by
/// the volumes of one schedule set and zone), in policy order, and the index of each by policy
/// volume; the others are unresolved.
fn planned_volumes(
    policy: &Policy,
    observed: &Observed,
    covered: (DateTime<Utc>, DateTime<Utc>),
    horizon: (DateTime<Utc>, DateTime<Utc>),
    unresolved: &mut Vec<Unresolved>,
) -> (Vec<PlannedVolume>, HashMap<usize, usize>) {
    let mut cache = TimelineCache::default();
    let mut volumes = Vec::with_capacity(policy.volumes.len());
    let mut by_volume: HashMap<usize, usize> = HashMap::new();
    for (vi, _) in policy.volumes.iter().enumerate() {
        match resolve(policy, observed, vi) {
            Ok(resolved) => {
                let timeline = cache.get(&resolved, covered, horizon);
                by_volume.insert(vi, volumes.len());
                volumes.push(PlannedVolume {
                    volume: vi,
                    resolved,
                    timeline,
                    lifecycles: Vec::new(),
                });
            }
            Err(reason) => unresolved.push(Unresolved { volume: vi, reason }),
        }
    }
    (volumes, by_volume)
}

/// A volume's schedules and zone, resolved from the policy or from what was observed.
#[derive(Debug, Clone)]
struct Resolved {
    tz: Tz,
    key: TimelineKey,
    names: Arc<[String]>,
    recurrences: Arc<[Recurrence]>,
}

/// Volumes with the same schedules in the same zone share one timeline.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TimelineKey {
    Inline {
        policy: usize,
        tz: Tz,
    },
    Observed {
        cluster: usize,
        policy: String,
        tz: Tz,
    },
}

/// Resolves a volume's zone and schedules, reporting everything that is missing at once.
fn resolve(policy: &Policy, observed: &Observed, vi: usize) -> Result<Resolved, String> {
    let zone = resolve_zone(policy, observed, vi);
    let schedules = resolve_schedules(policy, observed, vi, *zone.as_ref().unwrap_or(&Tz::UTC));
    let schedules = schedules.and_then(|r| {
        // An interval outside its bound would make the timeline huge (`1s`) or is a typo.
        for (name, rec) in r.names.iter().zip(r.recurrences.iter()) {
            if let Recurrence::Interval { every, .. } = rec {
                if !limits::INTERVAL.contains(*every) {
                    return Err(out_of_bounds(
                        &format!("schedule {name} of volume {}", policy.volume_id(vi)),
                        &limits::INTERVAL,
                        *every,
                    ));
                }
            }
        }
        Ok(r)
    });
    match (zone, schedules) {
        (Ok(_), Ok(resolved)) => Ok(resolved),
        (Err(zone), Err(schedules)) => Err(format!("{zone}; {schedules}")),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
    }
}

pub(crate) fn resolve_zone(policy: &Policy, observed: &Observed, vi: usize) -> Result<Tz, String> {
    let cluster = &policy.clusters[policy.volumes[vi].cluster];
    if let Some(tz) = cluster.known_timezone() {
        return Ok(tz);
    }
    match observed.cluster(&cluster.name) {
        Some(c) => Tz::from_str(&c.info.timezone).map_err(|_| {
            format!(
                "cluster {} reports time zone {:?}, which is not an IANA name",
                cluster.name, c.info.timezone
            )
        }),
        None => Err(format!(
            "cluster {} has timezone = \"auto\": its zone is read from the cluster; \
             run against the cluster or set timezone to an IANA name",
            cluster.name
        )),
    }
}

fn resolve_schedules(
    policy: &Policy,
    observed: &Observed,
    vi: usize,
    tz: Tz,
) -> Result<Resolved, String> {
    let volume = &policy.volumes[vi];
    let cluster = &policy.clusters[volume.cluster];
    let seen = observed.cluster(&cluster.name);
    match &volume.schedules {
        VolumeSchedules::Policy(pi) => {
            let sp = &policy.snapshot_policies[*pi];
            let names: Vec<String> = sp
                .copies
                .iter()
                .map(|c| policy.schedules[c.schedule].name.clone())
                .collect();
            let recurrences: Vec<Recurrence> = sp
                .copies
                .iter()
                .map(|c| policy.schedules[c.schedule].recurrence.clone())
                .collect();
            Ok(Resolved {
                tz,
                key: TimelineKey::Inline { policy: *pi, tz },
                names: names.into(),
                recurrences: recurrences.into(),
            })
        }
        VolumeSchedules::Ontap => {
            let needs = || {
                format!(
                    "volume {} has snapshot_policy = \"ontap\": its schedules are read from the cluster; \
                     run against the cluster or name a [[snapshot_policy]] in the policy",
                    policy.volume_id(vi)
                )
            };
            let c = seen.ok_or_else(needs)?;
            let v = c
                .volumes
                .iter()
                .find(|v| v.svm == volume.svm && v.name == volume.name)
                .ok_or_else(|| {
                    format!(
                        "volume {} was not found on the cluster",
                        policy.volume_id(vi)
                    )
                })?;
            let policy_name = v
                .snapshot_policy
                .clone()
                .unwrap_or_else(|| "none".to_string());
            let sp = c.snapshot_policies.iter().find(|p| p.name == policy_name);
            let mut names = Vec::new();
            let mut recurrences = Vec::new();
            for copies in sp.map(|p| p.copies.as_slice()).unwrap_or_default() {
                let s = c
                    .schedules
                    .iter()
                    .find(|s| s.name == copies.schedule)
                    .ok_or_else(|| {
                        format!(
                            "snapshot policy {policy_name} on cluster {} names unknown schedule {}",
                            cluster.name, copies.schedule
                        )
                    })?;
                names.push(s.name.clone());
                recurrences.push(s.recurrence.clone());
            }
            Ok(Resolved {
                tz,
                key: TimelineKey::Observed {
                    cluster: volume.cluster,
                    policy: policy_name,
                    tz,
                },
                names: names.into(),
                recurrences: recurrences.into(),
            })
        }
    }
}

/// Scheduled snapshots of one schedule set in one zone over `[start, end)`.
#[derive(Debug)]
struct Timeline {
    end: DateTime<Utc>,
    snapshots: Vec<ScheduledSnapshot>,
    /// The snapshots in the plan's `[from, until)`, as every volume's `VolumePlan::scheduled`.
    horizon: Arc<[ScheduledSnapshot]>,
    recurrences: Arc<[Recurrence]>,
    tz: Tz,
}

impl Timeline {
    fn in_range(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> &[ScheduledSnapshot] {
        let lo = self.snapshots.partition_point(|s| s.at < from);
        let hi = self.snapshots.partition_point(|s| s.at < until);
        &self.snapshots[lo..hi]
    }

    /// The first scheduled snapshot at or after `t`, beyond the computed range if need be.
    fn first_at_or_after(&self, t: DateTime<Utc>) -> Option<ScheduledSnapshot> {
        let i = self.snapshots.partition_point(|s| s.at < t);
        if let Some(s) = self.snapshots.get(i) {
            return Some(*s);
        }
        let after = earlier(t.max(self.end), TimeDelta::nanoseconds(1));
        self.recurrences
            .iter()
            .enumerate()
            .filter_map(|(schedule, r)| {
                r.next_after(self.tz, after)
                    .map(|at| ScheduledSnapshot { at, schedule })
            })
            .min()
    }

    /// The first scheduled snapshot in `[start, start + length)`, if any: what a lifecycle of
    /// that span would collide with.
    fn collision(&self, start: DateTime<Utc>, length: TimeDelta) -> Option<ScheduledSnapshot> {
        let end = later(start, length);
        self.first_at_or_after(start).filter(|s| s.at < end)
    }

    /// Calls `f(previous, next)` for each consecutive pair of scheduled instants (Unix seconds,
    /// floored) whose gap overlaps `[lo, hi)`, in order; `None` stands for "no snapshot on that
    /// side within the computed range". Flooring a sub-second instant is conservative for
    /// callers that start after `previous + 1 s` and end by `next`.
    fn for_each_gap(&self, lo: i64, hi: i64, mut f: impl FnMut(Option<i64>, Option<i64>)) {
        let first = self.snapshots.partition_point(|s| s.at.timestamp() < lo);
        let mut prev = first
            .checked_sub(1)
            .map(|i| self.snapshots[i].at.timestamp());
        for s in &self.snapshots[first..] {
            let t = s.at.timestamp();
            f(prev, Some(t));
            prev = Some(t);
            if t >= hi {
                return;
            }
        }
        f(prev, None);
    }
}

#[derive(Default)]
struct TimelineCache {
    timelines: HashMap<TimelineKey, Arc<Timeline>>,
}

impl TimelineCache {
    /// The timeline of `r` over `covered`, with its part in `horizon`; built once per key.
    fn get(
        &mut self,
        r: &Resolved,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        (from, until): (DateTime<Utc>, DateTime<Utc>),
    ) -> Arc<Timeline> {
        self.timelines
            .entry(r.key.clone())
            .or_insert_with(|| {
                let refs: Vec<&Recurrence> = r.recurrences.iter().collect();
                let mut tl = Timeline {
                    end,
                    snapshots: timeline::scheduled_snapshots(&refs, r.tz, start, end),
                    horizon: Arc::from([]),
                    recurrences: r.recurrences.clone(),
                    tz: r.tz,
                };
                tl.horizon = tl.in_range(from, until).into();
                Arc::new(tl)
            })
            .clone()
    }
}

struct PlannedVolume {
    volume: usize,
    resolved: Resolved,
    timeline: Arc<Timeline>,
    lifecycles: Vec<Lifecycle>,
}

/// `t + d`, saturating at chrono's range ends (only instants within weeks of year ±262,143 get
/// there; bounded durations keep every realistic instant exact).
fn later(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(if d < TimeDelta::zero() {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// `t - d`, saturating like [`later`].
fn earlier(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    later(
        t,
        TimeDelta::zero().checked_sub(&d).unwrap_or(TimeDelta::MIN),
    )
}

/// "window w: max 99999999w is outside 1s..=7d (a backup longer …)".
fn out_of_bounds(owner: &str, bound: &limits::Bound, value: TimeDelta) -> String {
    format!(
        "{owner}: {} = {} is outside {} ({})",
        bound.key,
        human(value),
        bound.range,
        bound.why
    )
}
