//! A plan kept across the agent's passes: the same lifecycles as [`super::plan`] for a horizon that
//! moves forward, without placing every occurrence again at every pass.
//!
//! [`Rolling`] places the occurrences of a wider range once (the asked horizon plus
//! [`AHEAD`]) and answers each later call from it while the policy (the same `Arc`) and the
//! observed inventory (equal) are unchanged and the asked range stays inside. A placement
//! depends on `from` only through the earliest start a shift may take
//! ([`super::earliest_shift`]); a kept lifecycle whose earliest start differs for the new
//! `from` is placed again. Everything else a placement reads (the timeline beyond the range,
//! the window, the guard) is the same for any range that holds the occurrence, so the answer is
//! exactly what `plan` would answer (a property test holds it to that).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::{
    build, earliest_shift, later, place, range, seconds_up, shift_unclamped_until, Lifecycle,
    Observed, Plan, PlannedVolume, ScheduledSnapshot, Timeline, Unresolved, VolumePlan,
};
use crate::config::model::{OnConflict, Policy};

/// How far beyond the asked horizon occurrences are placed ahead: a pass inside it reuses them.
const AHEAD: TimeDelta = TimeDelta::hours(12);

/// One volume's last answer, and the range edges within which it stays the answer without its
/// kept lifecycles being looked at (a pass at 10,000 volumes walked every one otherwise).
struct Answer {
    lifecycles: Arc<[Lifecycle]>,
    /// The `until` it answered for: a range that ends sooner is answered again.
    until: DateTime<Utc>,
    /// The earliest kept occurrence: a `from` after it drops it.
    leave: Option<DateTime<Utc>>,
    /// The least [`shift_unclamped_until`] of the shifting occurrences answered: a `from` after
    /// it may change their earliest start ([`earliest_shift`]).
    shift: Option<i64>,
    /// The earliest kept occurrence not answered: an `until` after it brings it in.
    enter: Option<DateTime<Utc>>,
}

impl Answer {
    /// Whether this is still the answer for `[from, until)` (`from` not before the last one).
    fn holds(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> bool {
        self.leave.is_none_or(|start| from <= start)
            && self.shift.is_none_or(|s| seconds_up(from) <= s)
            && until >= self.until
            && self.enter.is_none_or(|start| until <= start)
    }
}

/// The planner's answers for a horizon that moves forward; see the module.
#[derive(Default)]
pub struct Rolling {
    kept: Option<Kept>,
}

struct Kept {
    policy: Arc<Policy>,
    observed: Arc<Observed>,
    /// The range placed: occurrences in `[from, until)`; `from` is the last asked one.
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    /// The planned volumes (timelines); their lifecycles are in `lifecycles`.
    volumes: Vec<PlannedVolume>,
    /// Per planned volume: each kept lifecycle with the earliest shifted start it was placed
    /// with.
    lifecycles: Vec<Vec<(Lifecycle, i64)>>,
    /// Per planned volume: its last answer, handed out again while no kept lifecycle entered,
    /// left or was placed again (a pass at 10,000 volumes copied every volume's otherwise).
    answers: Vec<Option<Answer>>,
    unresolved: Vec<Unresolved>,
}

impl Rolling {
    /// What `plan(policy, observed, now, horizon)` answers, except `conflicts` and
    /// `suggestions`, which stay empty (the agent does not read them).
    pub fn plan(
        &mut self,
        policy: &Arc<Policy>,
        observed: &Arc<Observed>,
        now: DateTime<Utc>,
        horizon: TimeDelta,
    ) -> Plan {
        let (from, until) = range(now, horizon);
        let reusable = self.kept.as_ref().is_some_and(|k| {
            Arc::ptr_eq(&k.policy, policy)
                && (Arc::ptr_eq(&k.observed, observed) || *k.observed == **observed)
                && from >= k.from
                && until <= k.until
        });
        let kept = match self.kept.as_mut() {
            Some(kept) if reusable => kept,
            _ => self.kept.insert(Kept::place(policy, observed, from, until)),
        };
        kept.answer(from, until)
    }
}

impl Kept {
    /// Places the occurrences of `[from, until + AHEAD)`.
    fn place(
        policy: &Arc<Policy>,
        observed: &Arc<Observed>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Kept {
        let wide = later(until, AHEAD);
        let mut built = build(policy, observed, from, wide, false);
        let lifecycles = built
            .volumes
            .iter_mut()
            .map(|pv| {
                std::mem::take(&mut pv.lifecycles)
                    .into_iter()
                    .map(|l| {
                        let limit = policy
                            .windows
                            .get(l.window)
                            .map_or(TimeDelta::zero(), |w| w.shift_limit);
                        let earliest = earliest_shift(l.window_start, limit, from);
                        (l, earliest)
                    })
                    .collect()
            })
            .collect();
        Kept {
            policy: policy.clone(),
            observed: Arc::clone(observed),
            from,
            until: wide,
            answers: built.volumes.iter().map(|_| None).collect(),
            volumes: built.volumes,
            lifecycles,
            unresolved: built.unresolved,
        }
    }

    /// The plan of `[from, until)`: inside the kept range, `from` not before the last one.
    fn answer(&mut self, from: DateTime<Utc>, until: DateTime<Utc>) -> Plan {
        let policy = &self.policy;
        let guard = policy.agent.guard;
        self.from = from;
        // Volumes with the same schedules and zone share a timeline and its part in the range.
        let mut horizons: HashMap<*const Timeline, Arc<[ScheduledSnapshot]>> = HashMap::new();
        let mut volumes = Vec::with_capacity(self.volumes.len());
        let answers = self.lifecycles.iter_mut().zip(self.answers.iter_mut());
        for (pv, (kept, answer)) in self.volumes.iter().zip(answers) {
            let lifecycles = match answer {
                Some(last) if last.holds(from, until) => last.lifecycles.clone(),
                _ => {
                    let last = answer.take().map(|a| a.lifecycles);
                    answer
                        .insert(answer_volume(policy, pv, kept, last, from, until))
                        .lifecycles
                        .clone()
                }
            };
            let scheduled = horizons
                .entry(Arc::as_ptr(&pv.timeline))
                .or_insert_with(|| pv.timeline.in_range(from, until).into())
                .clone();
            volumes.push(VolumePlan {
                volume: pv.volume,
                timezone: pv.resolved.tz,
                schedule_names: pv.resolved.names.clone(),
                scheduled,
                lifecycles,
                // The agent takes managed snapshots by its own rule; it reads no deferral here.
                managed: Vec::new(),
                deferrals: Vec::new(),
            });
        }
        Plan {
            from,
            until,
            guard,
            volumes,
            conflicts: Vec::new(),
            suggestions: Vec::new(),
            unresolved: self.unresolved.clone(),
        }
    }
}

/// One volume's answer for `[from, until)` from its kept lifecycles (`last`: its last answer,
/// handed out again when they are the same), placing again those whose earliest start `from`
/// changed.
fn answer_volume(
    policy: &Policy,
    pv: &PlannedVolume,
    kept: &mut Vec<(Lifecycle, i64)>,
    last: Option<Arc<[Lifecycle]>>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Answer {
    let guard = policy.agent.guard;
    // Occurrences before `from` are not asked for again (a `from` that goes back places
    // everything anew).
    let before = kept.len();
    kept.retain(|(l, _)| l.window_start >= from);
    let mut changed = kept.len() != before;
    let mut asked = 0;
    let mut shift: Option<i64> = None;
    for (l, placed) in kept.iter_mut() {
        if l.window_start >= until {
            continue;
        }
        let Some(window) = policy.windows.get(l.window) else {
            continue;
        };
        if window.on_conflict == OnConflict::Shift {
            let earliest = earliest_shift(l.window_start, window.shift_limit, from);
            if earliest != *placed {
                *l = place(l.window, window, pv.volume, pv, l.window_start, from, guard).0;
                *placed = earliest;
                changed = true;
            }
            let s = shift_unclamped_until(l.window_start, window.shift_limit);
            shift = Some(shift.map_or(s, |m| m.min(s)));
        }
        asked += 1;
    }
    // None left and none placed again: the kept lifecycles in the range are the last answer's
    // exactly when there are as many (the range's ends only moved).
    let lifecycles = match last {
        Some(last) if !changed && last.len() == asked => last,
        _ => {
            let mut lifecycles: Vec<Lifecycle> = kept
                .iter()
                .filter(|(l, _)| l.window_start < until && policy.windows.get(l.window).is_some())
                .map(|(l, _)| l.clone())
                .collect();
            // `plan` sorts by (create_at, window) what it placed window by window, each
            // window's occurrences in order: the same order as this total one.
            lifecycles.sort_by_key(|l| (l.create_at, l.window, l.window_start));
            lifecycles.into()
        }
    };
    Answer {
        lifecycles,
        until,
        leave: kept.iter().map(|(l, _)| l.window_start).min(),
        shift,
        enter: kept
            .iter()
            .map(|(l, _)| l.window_start)
            .filter(|start| *start >= until)
            .min(),
    }
}
