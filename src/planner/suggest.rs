//! Policy suggestions for windows that do not fit: a new start time that fits every occurrence,
//! or the evidence that no gap is long enough and FlexClone is the way out.

use chrono::{DateTime, TimeDelta, Utc};

use super::{ceil_seconds, human, PlannedVolume};
use crate::config::model::Policy;

/// How far from the configured start a suggested start may lie. The planner's timelines reach
/// this far beyond the horizon on both sides, so every start tested here sees real neighbours.
pub(super) const SEARCH: TimeDelta = TimeDelta::hours(12);

/// A proposed policy change for one window, with the evidence in `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// Index into `Policy::windows`.
    pub window: usize,
    /// The smallest shift of the start that makes every occurrence fit, if one exists.
    pub offset: Option<TimeDelta>,
    /// The window's `start` cron with that shift applied, when it can be written as one.
    pub new_start: Option<String>,
    pub text: String,
}

/// Sorted, disjoint, inclusive intervals of offsets in minutes.
type Offsets = Vec<(i64, i64)>;

pub(super) fn suggest(
    policy: &Policy,
    wi: usize,
    starts: &[DateTime<Utc>],
    volumes: &[&PlannedVolume],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Suggestion {
    let window = &policy.windows[wi];
    let span = window.max + policy.agent.guard;
    let search_m = SEARCH.num_minutes();
    let (search_s, span_s) = (SEARCH.num_seconds(), ceil_seconds(span));
    let mut common: Offsets = vec![(-search_m, search_m)];
    let mut feasible = Offsets::new();
    'volumes: for pv in volumes {
        for &s in starts {
            // Offsets `o` (minutes) with no snapshot in `[s + o, s + o + span)`: after the
            // previous snapshot `a`, ending by the next `b`. `None` on a side means no snapshot
            // there within the timeline, which reaches `SEARCH + span` beyond every start (see
            // `plan`).
            let s_s = s.timestamp();
            feasible.clear();
            pv.timeline
                .for_each_gap(s_s - search_s, s_s + search_s + span_s, |a, b| {
                    let lo = a.map_or(-search_m, |a| (a + 1 - s_s + 59).div_euclid(60));
                    let hi = b.map_or(search_m, |b| (b - span_s - s_s).div_euclid(60));
                    let (lo, hi) = (lo.max(-search_m), hi.min(search_m));
                    if lo <= hi {
                        feasible.push((lo, hi));
                    }
                });
            common = intersect(&common, &feasible);
            if common.is_empty() {
                break 'volumes;
            }
        }
    }
    let occurrences = starts.len() * volumes.len();
    let hours = (until - from).num_hours();
    match nearest_to_zero(&common) {
        Some(minutes) => {
            let offset = TimeDelta::minutes(minutes);
            let new_start = window.start.single_time().and_then(|(h, m)| {
                // Only a shift that stays on the same day can be written as the same cron.
                let shifted = u32::try_from(i64::from(h * 60 + m) + minutes)
                    .ok()
                    .filter(|&t| t < 24 * 60)?;
                let (hour, minute) = (shifted / 60, shifted % 60);
                Some((
                    format!("{hour:02}:{minute:02}"),
                    window.start.at_time(hour, minute).to_string(),
                ))
            });
            let how = match &new_start {
                Some((at, cron)) => {
                    format!("start at {at} {} (start = \"{cron}\")", window.timezone)
                }
                None => format!(
                    "start {} {}",
                    human(offset.abs()),
                    if minutes > 0 { "later" } else { "earlier" }
                ),
            };
            Suggestion {
                window: wi,
                offset: Some(offset),
                new_start: new_start.map(|(_, cron)| cron),
                text: format!(
                    "{how} and window {} fits {} in the next {hours} h",
                    window.name,
                    match occurrences {
                        1 => "its only occurrence".to_string(),
                        n => format!("all {n} occurrences"),
                    }
                ),
            }
        }
        None => Suggestion {
            window: wi,
            offset: None,
            new_start: None,
            text: no_common_start(policy, wi, volumes, from, until),
        },
    }
}

/// Explains why no single start works: the tightest volume's largest gap, and the way out.
fn no_common_start(
    policy: &Policy,
    wi: usize,
    volumes: &[&PlannedVolume],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> String {
    let window = &policy.windows[wi];
    let guard = policy.agent.guard;
    // Starts are whole minutes after the previous snapshot, so a lifecycle needs a gap of
    // max + guard + 1 minute between two snapshots.
    let needed = window.max + guard + TimeDelta::minutes(1);
    let tightest = volumes
        .iter()
        .map(|pv| {
            let snaps = pv.timeline.in_range(from, until);
            let largest = snaps
                .windows(2)
                .map(|w| (w[1].at - w[0].at, w[0], w[1]))
                .max_by(|x, y| x.0.cmp(&y.0).then(y.1.at.cmp(&x.1.at))); // earliest of the largest
            (pv, largest)
        })
        .min_by_key(|(_, largest)| largest.map(|(len, _, _)| len));
    match tightest {
        Some((pv, Some((len, a, b)))) if len < needed => {
            let v = &policy.volumes[pv.volume];
            let tz = pv.resolved.tz;
            let shorter = len - guard - TimeDelta::minutes(1);
            let lower_max = if shorter > TimeDelta::zero() {
                format!(", or lower max to {}", human(shorter))
            } else {
                String::new()
            };
            format!(
                "no free gap of {} (max {} + guard {} + 1m, as a start comes at the earliest the minute after a snapshot) exists in {}'s schedule; the largest is {} ({} at {} to {} at {}). \
                 FlexClone removes the constraint (clone = \"flexclone\", needs the flexclone license){lower_max}",
                human(needed),
                human(window.max),
                human(guard),
                v.name,
                human(len),
                pv.resolved.names[a.schedule],
                a.at.with_timezone(&tz).format("%a %H:%M"),
                pv.resolved.names[b.schedule],
                b.at.with_timezone(&tz).format("%a %H:%M"),
            )
        }
        _ => format!(
            "no single start time within {} fits every occurrence of window {}: the free gaps move from day to day. \
             on_conflict = \"shift\" places each occurrence safely; FlexClone removes the constraint",
            human(SEARCH),
            window.name
        ),
    }
}

fn intersect(a: &Offsets, b: &Offsets) -> Offsets {
    let mut out = Offsets::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if lo <= hi {
            out.push((lo, hi));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The offset of smallest magnitude (ties: the positive one).
fn nearest_to_zero(set: &Offsets) -> Option<i64> {
    set.iter()
        .map(|&(lo, hi)| 0.clamp(lo, hi))
        .min_by_key(|&d| (d.abs(), d < 0))
}
