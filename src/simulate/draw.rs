//! Seeded backup durations: one draw per window occurrence, the same for every driver.
//!
//! A draw depends only on the seed and the occurrence (cluster, svm, volume, window, configured
//! start), never on the order in which drivers ask, so the coordinated agent and the
//! uncoordinated baseline see the same backups, and a run is reproducible.

use chrono::TimeDelta;

use crate::agent::state::OccurrenceRef;

/// How durations are drawn.
#[derive(Debug, Clone, Copy)]
pub struct Draws {
    pub seed: u64,
    /// Share of occurrences whose backup runs past the window's `max` (0 ..= 1).
    pub overrun_rate: f64,
}

/// Drawn durations of a window whose `max` is [`LONG_WINDOW`] or more are whole multiples of
/// this. Backups of one window occurrence then end together in a few batches, and the agent makes
/// one pass per batch instead of one per volume: per-pass work grows with the estate, so this
/// keeps a month of 500 volumes in seconds.
pub const STEP_SECONDS: i64 = 300;

/// From this `max` on, durations are drawn in [`STEP_SECONDS`] steps; shorter windows (the
/// minute-scale demos) in steps of a sixth of their `expected` — the resolution a 30-minute
/// `expected` gets from five-minute steps — so that a drawn backup stays within its window's
/// `expected` and `max` at every scale.
pub const LONG_WINDOW: TimeDelta = TimeDelta::minutes(30);

/// The step durations of a window with `expected` and `max` are drawn in, in seconds (at least
/// one second).
pub fn step_seconds(expected: TimeDelta, max: TimeDelta) -> i64 {
    if max >= LONG_WINDOW {
        STEP_SECONDS
    } else {
        (expected.num_seconds() / 6).clamp(1, STEP_SECONDS)
    }
}

/// Rounds to the nearest `step`, at least one step.
fn stepped(seconds: f64, step: i64) -> i64 {
    let steps = (seconds / step as f64).round().max(1.0) as i64;
    steps.saturating_mul(step)
}

/// A drawn backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backup {
    pub duration: TimeDelta,
    /// The duration is longer than the window's `max`.
    pub overruns: bool,
}

/// splitmix64's finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over the bytes (stable across runs and platforms, unlike `DefaultHasher`).
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xFF;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// A uniform number in `[0, 1)` from the top 53 bits.
fn unit(x: u64) -> f64 {
    // 2^53 values, exactly representable in an f64.
    (x >> 11) as f64 / (1u64 << 53) as f64
}

impl Draws {
    /// The backup of one occurrence of a window with `expected` and `max`.
    ///
    /// Not overrunning: uniform in `[0.6, 1.2] × expected`, in steps of
    /// [`step_seconds`], kept under `max` (at least one step). Overrunning: `max` plus 10 % to
    /// 50 % of `max`, at least one step more than `max`.
    pub fn backup(&self, o: &OccurrenceRef<'_>, expected: TimeDelta, max: TimeDelta) -> Backup {
        let start = o.start.timestamp().to_le_bytes();
        let key = fnv(&[
            o.cluster.as_bytes(),
            o.svm.as_bytes(),
            o.volume.as_bytes(),
            o.window.as_bytes(),
            &start,
        ]);
        let a = mix(self.seed ^ key);
        let b = mix(a);
        let step = step_seconds(expected, max);
        let max_s = max.num_seconds().max(1) as f64;
        if unit(a) < self.overrun_rate {
            let extra = max_s * (0.1 + 0.4 * unit(b));
            let seconds = stepped(max_s + extra, step).max(stepped(max_s, step) + step);
            return Backup {
                duration: TimeDelta::seconds(seconds),
                overruns: true,
            };
        }
        let expected_s = expected.num_seconds().max(1) as f64;
        let drawn = stepped(expected_s * (0.6 + 0.6 * unit(b)), step);
        // The largest step under max (one step when max is shorter than a step).
        let ceiling = ((max.num_seconds() - 1) / step).max(1) * step;
        let seconds = drawn.min(ceiling);
        Backup {
            duration: TimeDelta::seconds(seconds),
            overruns: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(volume: &str, start: &str) -> OccurrenceRef<'static> {
        OccurrenceRef {
            cluster: "c",
            svm: "s",
            volume: Box::leak(volume.to_string().into_boxed_str()),
            window: "w",
            start: start.parse().unwrap(),
        }
    }

    #[test]
    fn splitmix_matches_the_published_sequence() {
        // splitmix64 seeded with 0: its first output is mix(0) (reference implementation).
        assert_eq!(mix(0), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn draws_are_stable_keyed_and_bounded() {
        let d = Draws {
            seed: 7,
            overrun_rate: 0.0,
        };
        let expected = TimeDelta::minutes(30);
        let max = TimeDelta::minutes(60);
        let a = d.backup(&occ("v1", "2027-01-01T01:00:00Z"), expected, max);
        // Asked again, in any order: the same draw.
        let _ = d.backup(&occ("v2", "2027-01-01T01:00:00Z"), expected, max);
        assert_eq!(
            a,
            d.backup(&occ("v1", "2027-01-01T01:00:00Z"), expected, max)
        );
        let mut distinct = std::collections::HashSet::new();
        for i in 0..500 {
            let b = d.backup(
                &occ(&format!("v{i}"), "2027-01-01T01:00:00Z"),
                expected,
                max,
            );
            assert!(!b.overruns);
            // 0.6 × 30m = 18m ..= 1.2 × 30m = 36m, rounded to 5 minutes: 20m ..= 35m.
            assert!(b.duration >= TimeDelta::minutes(20), "{b:?}");
            assert!(b.duration <= TimeDelta::minutes(35), "{b:?}");
            assert_eq!(b.duration.num_seconds() % STEP_SECONDS, 0);
            distinct.insert(b.duration);
        }
        // Every step of 20, 25, 30, 35 minutes is drawn.
        assert_eq!(distinct.len(), 4, "{distinct:?}");
    }

    #[test]
    fn the_overrun_share_follows_the_rate_and_overruns_pass_max() {
        let d = Draws {
            seed: 3,
            overrun_rate: 0.25,
        };
        let max = TimeDelta::minutes(40);
        let mut over = 0;
        for i in 0..4000 {
            let b = d.backup(
                &occ(&format!("v{i}"), "2027-03-01T00:00:00Z"),
                TimeDelta::minutes(20),
                max,
            );
            if b.overruns {
                over += 1;
                // max + 10 % ..= max + 50 %: 44m ..= 60m, in 5-minute steps: 45m ..= 60m.
                assert!(b.duration >= TimeDelta::minutes(45), "{b:?}");
                assert!(b.duration <= TimeDelta::minutes(60), "{b:?}");
            } else {
                assert!(b.duration < max);
            }
        }
        // 1000 expected; binomial sd ≈ 27.
        assert!((880..=1120).contains(&over), "{over}");
        let none = Draws {
            seed: 3,
            overrun_rate: 0.0,
        };
        let all = Draws {
            seed: 3,
            overrun_rate: 1.0,
        };
        let o = occ("v", "2027-03-01T00:00:00Z");
        assert!(!none.backup(&o, TimeDelta::minutes(20), max).overruns);
        assert!(all.backup(&o, TimeDelta::minutes(20), max).overruns);
    }

    #[test]
    fn minute_scale_windows_are_drawn_within_expected_and_max() {
        let d = Draws {
            seed: 5,
            overrun_rate: 0.1,
        };
        // The demos' windows: (expected, max) in seconds, and their step (a sixth of expected).
        for (expected, max, step) in [(30, 60, 5), (120, 150, 20), (75, 90, 12), (300, 420, 50)] {
            let (e, m) = (TimeDelta::seconds(expected), TimeDelta::seconds(max));
            assert_eq!(step_seconds(e, m), step);
            let (mut over, mut under) = (0, 0);
            for i in 0..2000 {
                let b = d.backup(&occ(&format!("v{i}"), "2027-03-01T00:01:00Z"), e, m);
                let s = b.duration.num_seconds();
                assert_eq!(s % step, 0, "{b:?}");
                if b.overruns {
                    over += 1;
                    // max + 10 % ..= max + 50 %, to the nearest step, past max.
                    assert!(
                        s > max && s <= max * 3 / 2 + step,
                        "{expected} {max}: {b:?}"
                    );
                } else {
                    under += 1;
                    // 0.6 ..= 1.2 × expected, to the nearest step, under max.
                    assert!(s < max, "{expected} {max}: {b:?}");
                    assert!(s * 10 >= expected * 6 - step * 5, "{expected}: {b:?}");
                    assert!(s * 10 <= expected * 12 + step * 5, "{expected}: {b:?}");
                }
            }
            // The overrun share is the rate's (200 expected; binomial sd ≈ 13), not every backup.
            assert!((150..=250).contains(&over), "{expected} {max}: {over}");
            assert_eq!(over + under, 2000);
        }
        // From a 30-minute max on, five-minute steps whatever `expected`.
        for (e, m) in [(1, 30), (20, 45), (120, 240)] {
            let step = step_seconds(TimeDelta::minutes(e), TimeDelta::minutes(m));
            assert_eq!(step, STEP_SECONDS);
        }
        // A one-second `expected` is drawn in one-second steps.
        assert_eq!(
            step_seconds(TimeDelta::seconds(1), TimeDelta::seconds(5)),
            1
        );
    }

    #[test]
    fn another_seed_gives_other_draws() {
        let a = Draws {
            seed: 1,
            overrun_rate: 0.0,
        };
        let b = Draws {
            seed: 2,
            overrun_rate: 0.0,
        };
        let differ = (0..50)
            .filter(|i| {
                let o = occ(&format!("v{i}"), "2027-01-01T00:00:00Z");
                a.backup(&o, TimeDelta::hours(1), TimeDelta::hours(2))
                    != b.backup(&o, TimeDelta::hours(1), TimeDelta::hours(2))
            })
            .count();
        // 0.6 h ..= 1.2 h in 5-minute steps (35 m ..= 70 m, 8 values): two seeds agree about
        // one time in eight.
        assert!(differ > 30, "{differ}");
    }
}
