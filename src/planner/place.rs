//! Placing one window occurrence on one volume: it fits, or `on_conflict` runs it anyway, skips
//! it or shifts it to the nearest start (whole minutes, within `shift_limit`) whose lifecycle
//! holds no scheduled snapshot.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use super::human::{Hhmm, Human};
use super::{later, Conflict, ConflictKind, Lifecycle, Outcome, PlannedVolume, Timeline};
use crate::config::model::{OnConflict, Window};

/// Places one window occurrence on one volume.
pub(super) fn place(
    wi: usize,
    window: &Window,
    vi: usize,
    pv: &PlannedVolume,
    start: DateTime<Utc>,
    from: DateTime<Utc>,
    guard: TimeDelta,
) -> (Lifecycle, Option<Conflict>) {
    let tl = &pv.timeline;
    let tz = pv.resolved.tz;
    let names = &pv.resolved.names;
    let span = window.max + guard;
    let local = |t: DateTime<Utc>| Hhmm(tz, t);
    let lifecycle = |create_at: DateTime<Utc>, outcome: Outcome, reason: String| Lifecycle {
        window: wi,
        window_start: start,
        create_at,
        release_by: later(create_at, window.max),
        next_scheduled: tl.first_at_or_after(create_at),
        outcome,
        reason: reason.into(),
    };

    let Some(hit) = tl.collision(start, span) else {
        let mut fits = lifecycle(start, Outcome::Fits, String::new());
        fits.reason = match fits.next_scheduled {
            Some(n) => format!(
                "release by {} + guard {} is before {} at {}",
                local(fits.release_by),
                Human(guard),
                names[n.schedule],
                local(n.at)
            ),
            None => "no scheduled snapshot follows".to_string(),
        }
        .into();
        return (fits, None);
    };

    let why = Why {
        schedule: &names[hit.schedule],
        at: local(hit.at),
        start: local(start),
        end: local(later(start, span)),
        max: Human(window.max),
        guard: Human(guard),
    };
    let conflict = |kind: ConflictKind| Conflict {
        window: wi,
        volume: vi,
        at: start,
        scheduled: hit,
        schedule: names[hit.schedule].clone(),
        kind,
        suggestion: String::new(),
    };
    match window.on_conflict {
        OnConflict::Run => (
            lifecycle(
                start,
                Outcome::Conflict,
                format!("runs anyway (on_conflict = run): {why}; the clone will be captured"),
            ),
            Some(conflict(ConflictKind::ChainConflict)),
        ),
        OnConflict::Skip => (
            lifecycle(
                start,
                Outcome::Skipped,
                format!("skipped (on_conflict = skip): {why}"),
            ),
            Some(conflict(ConflictKind::Skipped)),
        ),
        OnConflict::Shift => match nearest_fit(tl, start, span, window.shift_limit, from) {
            Some(shifted) => {
                let delta = shifted - start;
                let reason = format!(
                    "shifted {} {} to {}: {why}",
                    Human(delta.abs()),
                    if delta > TimeDelta::zero() {
                        "later"
                    } else {
                        "earlier"
                    },
                    local(shifted)
                );
                (lifecycle(shifted, Outcome::Shifted, reason), None)
            }
            None => (
                lifecycle(
                    start,
                    Outcome::Skipped,
                    format!(
                        "skipped: no start within {} fits; {why}",
                        Human(window.shift_limit)
                    ),
                ),
                Some(conflict(ConflictKind::NoGap)),
            ),
        },
    }
}

/// The start nearest to `start` (ties: the later one), whole minutes, not before `from` and at
/// most `limit` away, such that `[s, s + span)` holds no scheduled snapshot.
fn nearest_fit(
    tl: &Timeline,
    start: DateTime<Utc>,
    span: TimeDelta,
    limit: TimeDelta,
    from: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    // In Unix seconds: bounded durations and chrono's range keep every sum far from overflow.
    let start_s = start.timestamp();
    let span_s = ceil_seconds(span);
    let limit_s = limit.num_seconds();
    let lower = earliest_shift(start, limit, from);
    let upper = floor60(start_s + limit_s);
    let mut best: Option<i64> = None;
    if lower > upper {
        return None;
    }
    tl.for_each_gap(lower, upper + span_s, |a, b| {
        // A start must come after the previous snapshot `a` and end (with guard) by the next `b`.
        let lo = a.map_or(lower, |a| ceil60(a + 1)).max(lower);
        let hi = b.map_or(upper, |b| floor60(b - span_s)).min(upper);
        if lo > hi {
            return;
        }
        let candidate = start_s.clamp(lo, hi);
        let better = match best {
            None => true,
            Some(cur) => {
                let (d_new, d_cur) = ((candidate - start_s).abs(), (cur - start_s).abs());
                d_new < d_cur || (d_new == d_cur && candidate > cur)
            }
        };
        if better {
            best = Some(candidate);
        }
    });
    best.and_then(|t| DateTime::from_timestamp(t, 0))
}

/// The earliest start (Unix seconds, a whole minute) a shift of the occurrence at `start` may
/// take: at most `limit` earlier and not before `from`. The only way `from` enters a placement.
pub(super) fn earliest_shift(start: DateTime<Utc>, limit: TimeDelta, from: DateTime<Utc>) -> i64 {
    ceil60(shift_unclamped_until(start, limit).max(seconds_up(from)))
}

/// The last `from` (Unix seconds, [`seconds_up`]) at which [`earliest_shift`] of the occurrence
/// at `start` does not depend on `from`: up to it the shift may take its whole `limit`.
pub(super) fn shift_unclamped_until(start: DateTime<Utc>, limit: TimeDelta) -> i64 {
    start.timestamp() - limit.num_seconds()
}

/// An instant in whole Unix seconds, rounded up.
pub(super) fn seconds_up(t: DateTime<Utc>) -> i64 {
    t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0)
}

/// Whole seconds, rounded up (policy durations are whole seconds already).
pub(super) fn ceil_seconds(d: TimeDelta) -> i64 {
    d.num_seconds() + i64::from(d.subsec_nanos() > 0)
}

/// Unix seconds rounded down / up to a whole minute.
fn floor60(t: i64) -> i64 {
    t.div_euclid(60) * 60
}

fn ceil60(t: i64) -> i64 {
    floor60(t + 59)
}

/// Why an occurrence does not fit as configured: "hourly at 03:05 falls inside 02:30–03:15 (max
/// 40m + guard 5m)".
struct Why<'a> {
    schedule: &'a str,
    at: Hhmm,
    start: Hhmm,
    end: Hhmm,
    max: Human,
    guard: Human,
}

impl fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {} falls inside {}–{} (max {} + guard {})",
            self.schedule, self.at, self.start, self.end, self.max, self.guard
        )
    }
}
