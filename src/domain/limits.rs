//! Bounds on policy durations, each with its reason.
//!
//! Policy validation refuses values outside them with a located error; the planner refuses them
//! too (as unresolved volumes) instead of overflowing or building huge timelines, so a policy that
//! skipped validation cannot panic it. `config/reference.toml` documents the same bounds.

use chrono::TimeDelta;

/// An inclusive range a duration must lie in, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The key as the policy spells it, for messages: `max`, `guard`, `interval`…
    pub key: &'static str,
    pub min: TimeDelta,
    pub max: TimeDelta,
    /// `1s..=7d`, as the reference documents it.
    pub range: &'static str,
    /// Why the bound is where it is, in a phrase.
    pub why: &'static str,
}

impl Bound {
    pub fn contains(&self, d: TimeDelta) -> bool {
        self.min <= d && d <= self.max
    }
}

/// `[[window]] max` and `expected`.
pub const WINDOW_MAX: Bound = Bound {
    key: "max",
    min: TimeDelta::seconds(1),
    max: TimeDelta::days(7),
    range: "1s..=7d",
    why: "a backup longer than a week cannot sit between two snapshots of a schedule that takes \
          weekly snapshots; larger values are typos",
};

/// `[[window]] expected`: the same bound as `max`.
pub const WINDOW_EXPECTED: Bound = Bound {
    key: "expected",
    ..WINDOW_MAX
};

/// `[[window]] shift_limit`.
pub const SHIFT_LIMIT: Bound = Bound {
    key: "shift_limit",
    min: TimeDelta::zero(),
    max: TimeDelta::days(7),
    range: "0s..=7d",
    why: "a shift beyond a week moves a backup onto another week's occurrence",
};

/// `[agent] guard`.
pub const GUARD: Bound = Bound {
    key: "guard",
    min: TimeDelta::zero(),
    max: TimeDelta::days(1),
    range: "0s..=1d",
    why: "a guard of more than a day would rule out every daily schedule",
};

/// A hook's `timeout`.
pub const HOOK_TIMEOUT: Bound = Bound {
    key: "timeout",
    min: TimeDelta::seconds(1),
    max: TimeDelta::days(7),
    range: "1s..=7d",
    why: "a hook runs inside a window, which lasts at most a week",
};

/// An interval schedule's `interval` (policy or observed).
pub const INTERVAL: Bound = Bound {
    key: "interval",
    min: TimeDelta::minutes(1),
    max: TimeDelta::days(366),
    range: "1m..=366d",
    why: "ONTAP keeps at most 1023 snapshots per volume and a sub-minute interval is never a real \
          snapshot schedule; 1m keeps a one-year horizon at 527,040 instants",
};

/// `[flexclone] within`.
pub const FLEXCLONE_WITHIN: Bound = Bound {
    key: "within",
    min: TimeDelta::hours(1),
    max: TimeDelta::days(366),
    range: "1h..=366d",
    why: "conflicts are counted over at most a year",
};

/// `[[snapshot_policy]] max_defer`: how long a managed snapshot may wait for a live clone.
pub const MAX_DEFER: Bound = Bound {
    key: "max_defer",
    min: TimeDelta::minutes(1),
    max: TimeDelta::days(1),
    range: "1m..=1d",
    why: "snapshot names carry the minute, so a shorter deferral is no deferral; a snapshot \
          deferred for more than a day leaves a daily schedule without its copy",
};

/// The longest horizon the planner plans (the CLI's `--hours` bound, 366 days).
pub const HORIZON_MAX: TimeDelta = TimeDelta::hours(24 * 366);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_their_text_says_so() {
        assert!(WINDOW_MAX.contains(TimeDelta::seconds(1)));
        assert!(WINDOW_MAX.contains(TimeDelta::days(7)));
        assert!(!WINDOW_MAX.contains(TimeDelta::days(7) + TimeDelta::seconds(1)));
        assert!(!WINDOW_MAX.contains(TimeDelta::zero()));
        assert!(SHIFT_LIMIT.contains(TimeDelta::zero()));
        assert!(!INTERVAL.contains(TimeDelta::seconds(59)));
        assert_eq!(WINDOW_EXPECTED.key, "expected");
        assert_eq!(WINDOW_EXPECTED.range, WINDOW_MAX.range);
        assert!(MAX_DEFER.contains(TimeDelta::minutes(1)));
        assert!(MAX_DEFER.contains(TimeDelta::days(1)));
        assert!(!MAX_DEFER.contains(TimeDelta::seconds(59)));
        assert!(!MAX_DEFER.contains(TimeDelta::days(1) + TimeDelta::seconds(1)));
    }
}
