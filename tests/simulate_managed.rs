//! `snapwarden simulate` on the common shop with its schedules handed over
//! (`tests/simulate_support/managed.rs`): 30 volumes in six zones over two weeks that hold the EU
//! spring-forward and the southern fall-back changes, hourly/daily/weekly snapshots taken by the
//! agent, a nightly two-hour SnapRestore backup per volume, 5 % of them overrunning and left to
//! finish. The agent's run is held to a brute-force oracle computed from the drawn backups alone
//! (local times minute by minute, no cron parser, no timeline, nothing of the agent): which
//! managed instants fall inside a backup's clone lifetime, hence the snapshots deferred, the
//! instants coalesced, the longest wait and every snapshot taken; and the baseline, where ONTAP
//! takes the same copies on time, to the captures the same oracle predicts.

mod simulate_support;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Datelike, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use simulate_support::managed::{
    estate, names, placement, COPIES, EXPECTED_MINUTES, MAX_DEFER_HOURS, MAX_MINUTES, STARTS, ZONES,
};
use snapwarden::agent::cycle::CycleResult;
use snapwarden::agent::journal::Journal;
use snapwarden::config;
use snapwarden::simulate::{self, draw, Report, Settings};

const VOLUMES: usize = 30;
const ZONE_COUNT: usize = 6;
const DAYS: i64 = 14;
/// Two weeks with Berlin's spring-forward (Mar 28) and the fall-back of Sydney, Auckland (Apr 4)
/// and Santiago (midnight Apr 3/4) in them.
const FROM: &str = "2027-03-22T00:00:00Z";
const SEED: u64 = 11;
const OVERRUN_RATE: f64 = 0.05;

/// How long a managed snapshot waits after its clone went (`agent::managed::SETTLE`).
const SETTLE: TimeDelta = TimeDelta::seconds(10);

fn load(text: &str) -> config::Policy {
    config::parse_str(text, Path::new("managed-estate.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// The UTC minutes in `[from, until)` whose local time in `tz` matches, each local time once:
/// a local time that occurs twice (a fall-back) counts at its first occurrence, one that does not
/// exist (a spring-forward) never.
fn local_minutes(
    tz: Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    matches: impl Fn(&NaiveDateTime) -> bool,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = from;
    while t < until {
        let local = t.with_timezone(&tz).naive_local();
        let first = tz
            .from_local_datetime(&local)
            .earliest()
            .map(|x| x.with_timezone(&Utc));
        if matches(&local) && first == Some(t) {
            out.push(t);
        }
        t += TimeDelta::minutes(1);
    }
    out
}

/// One deferred snapshot: (cluster, volume, prefix, first instant, instants covered, taken at).
type Deferral = (String, String, String, DateTime<Utc>, u32, DateTime<Utc>);

/// What the oracle predicts.
#[derive(Default)]
struct Expected {
    /// Coordinated: every managed snapshot taken in the period (one per copy at the start for
    /// the instant before it, one per instant on time, one per deferral that ended in it).
    managed_taken: u64,
    deferred: u64,
    coalesced: u64,
    max_wait: TimeDelta,
    /// Baseline: ONTAP's snapshots of the same copies, on time, and those taken while a
    /// backup's clone lived.
    ontap_taken: u64,
    captures: u64,
    /// Backups configured in the period that ended in it: completed and overrun (left to
    /// finish), and those still running at the end (interrupted there).
    completed: u64,
    overrun: u64,
    running_at_end: u64,
    /// Every deferral: (cluster, volume, prefix, first instant, instants covered, taken at).
    deferrals: Vec<Deferral>,
    /// (cluster, volume, configured start) → the drawn duration, for the journal's check.
    durations: BTreeMap<(String, String, DateTime<Utc>), TimeDelta>,
}

/// The oracle over `volumes` volumes of `zones` zones from `from` for `days`.
fn oracle(
    volumes: usize,
    zones: usize,
    from: DateTime<Utc>,
    days: i64,
    draws: draw::Draws,
) -> Expected {
    let end = from + TimeDelta::days(days);
    let (expected, max) = (
        TimeDelta::minutes(EXPECTED_MINUTES),
        TimeDelta::minutes(MAX_MINUTES),
    );
    let max_defer = TimeDelta::hours(MAX_DEFER_HOURS);
    let mut e = Expected::default();
    for i in 0..volumes {
        let (c, slot) = placement(i, zones);
        let (cluster, volume, window) = names(i, zones);
        let tz: Tz = ZONES[c].parse().unwrap();
        let (minute, hour) = STARTS[slot];
        // The backups: configured starts in the period, each with its drawn duration, and one
        // configured before it that the agent still starts at its first pass (late, as long as
        // `expected` fits before the start plus `max`); the report counts only the first kind.
        let mut clones = Vec::new();
        let late = from - (max - expected);
        for start in local_minutes(tz, late, end, |l| l.hour() == hour && l.minute() == minute) {
            let b = draws.backup(
                &snapwarden::agent::state::OccurrenceRef {
                    cluster: &cluster,
                    svm: "svm1",
                    volume: &volume,
                    window: &window,
                    start,
                },
                expected,
                max,
            );
            assert_eq!(b.overruns, b.duration > max, "{b:?}");
            let created = start.max(from);
            let ends = created + b.duration;
            assert_ne!(
                ends, end,
                "a backup ending at the very end is ambiguous: another seed"
            );
            e.durations
                .insert((cluster.clone(), volume.clone(), start), b.duration);
            if start < from {
                clones.push((created, ends, false));
                continue;
            }
            if ends < end {
                if b.overruns {
                    e.overrun += 1;
                } else {
                    e.completed += 1;
                }
            } else {
                e.running_at_end += 1;
            }
            clones.push((start, ends, true));
        }
        for (prefix, cron_minute, cron_hour, sunday) in COPIES {
            let instants = local_minutes(tz, from + TimeDelta::minutes(1), end, |l| {
                l.minute() == cron_minute
                    && cron_hour.is_none_or(|h| l.hour() == h)
                    && (!sunday || l.weekday() == chrono::Weekday::Sun)
            });
            // The agent's first pass takes one for the instant before the period.
            e.managed_taken += 1;
            e.ontap_taken += instants.len() as u64;
            let mut deferred: Vec<Vec<DateTime<Utc>>> = vec![Vec::new(); clones.len()];
            for t in &instants {
                // Coordinated: an instant after a backup's start, up to its release plus the
                // settle, waits for that release (one at that very second is covered by the
                // snapshot taken then).
                match clones
                    .iter()
                    .position(|(s, ends, _)| s < t && *t <= *ends + SETTLE)
                {
                    Some(k) => deferred[k].push(*t),
                    None => e.managed_taken += 1,
                }
                // Baseline: ONTAP takes it on time; the clone of a backup configured in the
                // period is alive from its start to its release (at the end at the latest).
                if clones
                    .iter()
                    .any(|(s, ends, in_period)| *in_period && s < t && *t <= (*ends).min(end))
                {
                    e.captures += 1;
                }
            }
            for (k, waiting) in deferred.iter().enumerate() {
                let Some(first) = waiting.first() else {
                    continue;
                };
                let taken = clones[k].1 + SETTLE;
                if taken >= end {
                    // Its clone outlives the period: never taken in it.
                    continue;
                }
                let wait = taken - *first;
                assert!(
                    wait <= max_defer,
                    "the estate's max_defer is too short: {wait}"
                );
                e.managed_taken += 1;
                e.deferred += 1;
                e.coalesced += waiting.len() as u64 - 1;
                e.max_wait = e.max_wait.max(wait);
                e.deferrals.push((
                    cluster.clone(),
                    volume.clone(),
                    prefix.to_string(),
                    *first,
                    waiting.len() as u32,
                    taken,
                ));
            }
        }
    }
    e
}

fn show(r: &Report) {
    eprintln!(
        "{:<13} cycles {} completed {} overrun {} skipped {} failed {} | chain conflicts {} | \
         locked {} h | scheduled taken {} | managed taken {} deferred {} coalesced {} max wait {} s | \
         retention {} | leaked {} | foreign deleted {}",
        r.mode,
        r.cycles_planned,
        r.cycles_completed,
        r.cycles_overrun,
        r.cycles_skipped,
        r.cycles_failed,
        r.chain_conflicts,
        r.locked_backing_snapshot_hours,
        r.scheduled_snapshots_taken,
        r.managed_snapshots_taken,
        r.scheduled_snapshots_deferred,
        r.scheduled_snapshots_coalesced,
        r.max_defer_seconds,
        r.retention_violations,
        r.leaked_objects,
        r.foreign_objects_deleted
    );
}

#[test]
fn the_shop_handed_over_defers_instead_of_colliding_as_the_oracle_says() {
    let started = std::time::Instant::now();
    let from: DateTime<Utc> = FROM.parse().unwrap();
    let settings = Settings {
        days: DAYS,
        from,
        seed: SEED,
        overrun_rate: OVERRUN_RATE,
        state_dir: None,
    };
    let draws = draw::Draws {
        seed: SEED,
        overrun_rate: OVERRUN_RATE,
    };
    let want = oracle(VOLUMES, ZONE_COUNT, from, DAYS, draws);
    eprintln!(
        "oracle: taken {} deferred {} coalesced {} max wait {} captures {} completed {} overrun {} running at the end {}",
        want.managed_taken,
        want.deferred,
        want.coalesced,
        want.max_wait,
        want.captures,
        want.completed,
        want.overrun,
        want.running_at_end
    );
    // The estate exercises what it is for: overruns, coalescing, waits over an hour.
    assert!(want.overrun >= 3, "{}", want.overrun);
    assert!(
        want.deferred > 0 && want.coalesced > 0,
        "{} {}",
        want.deferred,
        want.coalesced
    );
    assert!(want.max_wait > TimeDelta::hours(3), "{}", want.max_wait);

    let policy = load(&estate(VOLUMES, ZONE_COUNT));
    let state = tempfile::tempdir().unwrap();
    let co = simulate::coordinated(
        &policy,
        &Settings {
            state_dir: Some(state.path().to_path_buf()),
            ..settings.clone()
        },
    )
    .unwrap();
    let un = simulate::uncoordinated(&policy, &settings).unwrap();
    show(&co);
    show(&un);

    // Each deferral the agent journaled is one the oracle predicts: the same first instant, the
    // same instants covered, taken at the same instant.
    let journal = Journal::open_read_only(state.path()).unwrap();
    let records = journal.managed(from, false).unwrap();
    let mut got: Vec<Deferral> = records
        .iter()
        .filter(|r| r.reason == "deferred" || r.reason == "max_defer")
        .map(|r| {
            (
                r.cluster.clone(),
                r.volume.clone(),
                r.prefix.clone(),
                r.due_at,
                r.instants,
                r.asked_at,
            )
        })
        .collect();
    got.sort();
    let mut deferrals = want.deferrals.clone();
    deferrals.sort();
    let missing: Vec<_> = deferrals.iter().filter(|d| !got.contains(d)).collect();
    let extra: Vec<_> = got.iter().filter(|d| !deferrals.contains(d)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "predicted, not journaled: {missing:?}\njournaled, not predicted: {extra:?}"
    );

    // Coordinated: every backup runs as configured and no snapshot meets a clone.
    let planned = want.completed + want.overrun + want.running_at_end;
    assert_eq!(co.cycles_planned, planned);
    assert_eq!(
        (co.cycles_completed, co.cycles_overrun, co.cycles_failed),
        (want.completed, want.overrun, want.running_at_end),
        "{co:?}"
    );
    assert_eq!((co.cycles_skipped, co.cycles_shifted), (0, 0), "{co:?}");
    assert_eq!(co.chain_conflicts, 0, "{co:?}");
    assert!(co.recorded_conflicts.values().all(|n| *n == 0), "{co:?}");
    assert_eq!(co.locked_backing_snapshot_hours, 0.0, "{co:?}");
    assert_eq!(co.retention_violations, 0, "{co:?}");
    assert_eq!(co.leaked_objects, 0, "{co:?}");
    assert_eq!(co.foreign_objects_deleted, 0, "{co:?}");
    // ONTAP takes nothing on the volumes; the agent takes what the oracle says, and its
    // deferrals are the oracle's.
    assert_eq!(co.scheduled_snapshots_taken, 0, "{co:?}");
    assert_eq!(co.managed_snapshots_taken, want.managed_taken, "{co:?}");
    assert_eq!(co.scheduled_snapshots_deferred, want.deferred, "{co:?}");
    assert_eq!(co.scheduled_snapshots_coalesced, want.coalesced, "{co:?}");
    assert_eq!(
        co.max_defer_seconds,
        want.max_wait.num_seconds() as u64,
        "{co:?}"
    );
    assert!(
        co.max_defer_seconds <= MAX_DEFER_HOURS as u64 * 3600,
        "{co:?}"
    );

    // No backup was cut at max: each ended at its drawn end, overruns past max included.
    let cycles = journal
        .recent_cycles(DateTime::<Utc>::MIN_UTC, None, usize::MAX >> 1)
        .unwrap();
    let mut finished_late = 0;
    for c in cycles.iter().filter(|c| {
        matches!(
            c.result,
            Some(CycleResult::Completed | CycleResult::Overrun)
        )
    }) {
        let drawn = want.durations[&(c.cluster.clone(), c.volume.clone(), c.window_start)];
        // As configured, or at the first pass for the one configured before the period.
        let created = c.window_start.max(from);
        assert_eq!(c.create_at, c.window_start, "{c:?}");
        assert_eq!(c.created_at, Some(created), "{c:?}");
        assert_eq!(c.clones_deleted_at, Some(created + drawn), "{c:?}");
        if c.result == Some(CycleResult::Overrun) {
            assert!(drawn > TimeDelta::minutes(MAX_MINUTES), "{c:?}");
            assert!(c.detail.contains("left to finish"), "{c:?}");
            finished_late += 1;
        }
    }
    assert!(finished_late >= want.overrun, "{finished_late}");
    // Every deferral the journal holds is within max_defer and was a wait, not a capture.
    assert!(
        records.iter().all(|r| r.reason != "max_defer"),
        "{records:?}"
    );
    assert!(records
        .iter()
        .all(|r| r.waited <= TimeDelta::hours(MAX_DEFER_HOURS)));

    // The baseline: ONTAP takes the same copies on time, and every one taken while a clone
    // lives captures it.
    assert_eq!(un.chain_conflicts, want.captures, "{un:?}");
    assert!(un.chain_conflicts > 0, "{un:?}");
    assert!(un.locked_backing_snapshot_hours > 0.0, "{un:?}");
    assert_eq!(
        (
            un.managed_snapshots_taken,
            un.scheduled_snapshots_deferred,
            un.scheduled_snapshots_coalesced,
            un.max_defer_seconds
        ),
        (0, 0, 0, 0),
        "{un:?}"
    );
    assert_eq!(un.scheduled_snapshots_taken, want.ontap_taken, "{un:?}");
    assert_eq!(un.leaked_objects, 0, "{un:?}");
    assert_eq!(un.foreign_objects_deleted, 0, "{un:?}");
    eprintln!("the scenario took {:?}", started.elapsed());
}
