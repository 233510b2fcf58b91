//! Benchmark: plan 10,000 volumes over 7 days, against the minute-by-minute baseline a script would use.
//!
//! The policy is `common::policy()`. Each approach runs in its own child process (own peak RSS),
//! five times, and reports its median; both get the same sharing — one schedule computation per
//! distinct (snapshot policy, zone) pair, one wall-clock conversion per minute and zone — and must
//! find the same *set* of window occurrences that do not fit as configured. Parsing the policy
//! (as TOML text of the same shape) is measured on its own. Run with `cargo bench --bench plan`.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use snapwarden::config::{ClusterTimezone, Policy, VolumeSchedules};
use snapwarden::planner::{plan, Observed, Outcome};
use snapwarden::timeline::cron::first_instant;
use snapwarden::timeline::Recurrence;

use common::{in_child, peak_rss_mib, policy, policy_toml, VOLUMES};

const RUNS: usize = 5;

/// Occurrences that do not fit as configured: (window index, window start as a Unix timestamp).
type Misfits = BTreeSet<(usize, i64)>;

fn planner_misfits(policy: &Policy, from: DateTime<Utc>, horizon: TimeDelta) -> Misfits {
    let p = plan(policy, &Observed::offline(), from, horizon);
    p.volumes
        .iter()
        .flat_map(|v| v.lifecycles.iter())
        .filter(|l| l.outcome != Outcome::Fits)
        .map(|l| (l.window, l.window_start.timestamp()))
        .collect()
}

/// The straightforward alternative: mark every minute a volume's schedules fire (local wall clock,
/// first occurrence of a repeated time), then test each window occurrence against the marks.
/// Like the planner, it computes the marks once per (snapshot policy, zone) and each zone's wall
/// clock once per minute, and shares them between volumes and windows.
fn minute_scan(policy: &Policy, from: DateTime<Utc>, horizon: TimeDelta) -> Misfits {
    let minutes = horizon.num_minutes() as usize;
    let guard = policy.agent.guard.num_minutes() as usize;
    let longest = policy
        .windows
        .iter()
        .map(|w| w.max.num_minutes() as usize)
        .max()
        .unwrap_or(0);
    let total = minutes + longest + guard;
    let zones = policy
        .windows
        .iter()
        .map(|w| w.timezone)
        .chain(policy.clusters.iter().filter_map(|c| match c.timezone {
            ClusterTimezone::Named(tz) => Some(tz),
            ClusterTimezone::Auto => None,
        }));
    let mut clocks: HashMap<Tz, Vec<Option<NaiveDateTime>>> = HashMap::new();
    for tz in zones {
        clocks.entry(tz).or_insert_with(|| {
            (0..total)
                .map(|m| {
                    let t = from + TimeDelta::minutes(m as i64);
                    let local = t.with_timezone(&tz).naive_local();
                    (first_instant(tz, local) == Some(t)).then_some(local)
                })
                .collect()
        });
    }
    let mut marks: HashMap<(usize, Tz), Vec<bool>> = HashMap::new();
    let mut misfits = Misfits::new();
    for (wi, window) in policy.windows.iter().enumerate() {
        let starts = &clocks[&window.timezone];
        for &vi in &window.volumes {
            let volume = &policy.volumes[vi];
            let ClusterTimezone::Named(tz) = policy.clusters[volume.cluster].timezone else {
                continue;
            };
            let VolumeSchedules::Policy(p) = volume.schedules else {
                continue;
            };
            let fires = marks.entry((p, tz)).or_insert_with(|| {
                clocks[&tz]
                    .iter()
                    .map(|l| {
                        l.is_some_and(|l| {
                            policy.snapshot_policies[p].copies.iter().any(|c| {
                                match &policy.schedules[c.schedule].recurrence {
                                    Recurrence::Cron(spec) => spec.matches(l),
                                    Recurrence::Interval { .. } => false,
                                }
                            })
                        })
                    })
                    .collect()
            });
            let span = window.max.num_minutes() as usize + guard;
            for (m, local) in starts.iter().enumerate().take(minutes) {
                if local.is_some_and(|l| window.start.matches(l))
                    && fires[m..(m + span).min(fires.len())].iter().any(|f| *f)
                {
                    misfits.insert((wi, (from + TimeDelta::minutes(m as i64)).timestamp()));
                }
            }
        }
    }
    misfits
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// Child side: builds the policy, runs `approach` `RUNS` times, prints `misfits wall_ms peak_mib`
/// and then one `window start` line per misfit.
fn run_child(approach: &str) {
    let policy = policy();
    let from: DateTime<Utc> = "2026-11-23T00:00:00Z".parse().expect("bench start");
    let horizon = TimeDelta::days(7);
    if approach == "parse" {
        let text = policy_toml(&policy);
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            let parsed = snapwarden::config::parse_str(&text, Path::new("bench.toml"))
                .unwrap_or_else(|e| panic!("bench policy parses: {e}"));
            runs.push(started.elapsed());
            assert_eq!(black_box(parsed).volumes.len(), VOLUMES);
        }
        println!(
            "0 {:.0} {:.1}",
            median(runs).as_secs_f64() * 1e3,
            peak_rss_mib()
        );
        return;
    }
    let mut runs = Vec::new();
    let mut misfits = Misfits::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        misfits = black_box(match approach {
            "planner" => planner_misfits(&policy, from, horizon),
            _ => minute_scan(&policy, from, horizon),
        });
        runs.push(started.elapsed());
    }
    let mut out = format!(
        "{} {:.0} {:.1}\n",
        misfits.len(),
        median(runs).as_secs_f64() * 1e3,
        peak_rss_mib()
    );
    for (w, t) in &misfits {
        let _ = writeln!(out, "{w} {t}");
    }
    print!("{out}");
}

fn main() {
    if let Ok(approach) = std::env::var("SNAPWARDEN_BENCH_APPROACH") {
        return run_child(&approach);
    }
    let parse = |report: String| -> (usize, f64, f64, Misfits) {
        let mut lines = report.lines();
        let head: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let set = lines
            .map(|l| {
                let (w, t) = l.split_once(' ').expect("misfit line");
                (w.parse().expect("window"), t.parse().expect("start"))
            })
            .collect();
        (
            head[0].parse().expect("misfits"),
            head[1].parse().expect("ms"),
            head[2].parse().expect("MiB"),
            set,
        )
    };
    let (misfits, ms, mib, plan_set) = parse(in_child("planner"));
    let (scan_misfits, scan_ms, scan_mib, scan_set) = parse(in_child("scan"));
    let (_, parse_ms, parse_mib, _) = parse(in_child("parse"));
    println!(
        "plan {VOLUMES} volumes x 7 days, 20 zones, one window each (cargo bench --bench plan); median of {RUNS} runs each"
    );
    println!("| approach                               | wall time  | peak RSS (whole process) | occurrences not fitting as configured |");
    println!("|----------------------------------------|------------|--------------------------|---------------------------------------|");
    println!("| snapwarden planner                     | {ms:>7.0} ms | {mib:>20.1} MiB | {misfits:>37} |");
    println!("| minute-by-minute scan, shared caches   | {scan_ms:>7.0} ms | {scan_mib:>20.1} MiB | {scan_misfits:>37} |");
    println!("| parsing the policy file (not planning) | {parse_ms:>7.0} ms | {parse_mib:>20.1} MiB | {:>37} |", "-");
    println!("baseline / planner: {:.1}x", scan_ms / ms);
    assert!(
        plan_set == scan_set,
        "the planner and the baseline disagree on which occurrences fit: {} only in the plan, {} only in the scan",
        plan_set.difference(&scan_set).count(),
        scan_set.difference(&plan_set).count()
    );
}
