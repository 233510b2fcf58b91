//! Benchmark: plan 10,000 volumes over 7 days, against the minute-by-minute baseline a script would use.
//!
//! Each volume has ONTAP's default schedules (hourly at :05, daily at 00:10, weekly Sunday 00:15),
//! lives on one of 20 clusters in 20 time zones, and has one backup window. Prints a table of wall
//! time and peak memory (each approach in its own child process; peak RSS from `/proc/self/status`).
//! Run with `cargo bench --bench plan`.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use snapwarden::config::{
    Agent, CloneMethod, Cluster, ClusterTimezone, Copies, Endpoint, FlexCloneRule, JobSchedule,
    OnConflict, Policy, SnapshotPolicy, TlsVerify, Volume, VolumeSchedules, Window,
};
use snapwarden::planner::{plan, Observed, Outcome};
use snapwarden::timeline::{CronSpec, Recurrence};

const VOLUMES: usize = 10_000;
const ZONES: [&str; 20] = [
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "Europe/Paris",
    "Europe/Helsinki",
    "Europe/Moscow",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "America/Santiago",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Pacific/Auckland",
    "Africa/Johannesburg",
];

fn policy() -> Policy {
    let cron = |s: &str| Recurrence::Cron(CronSpec::parse(s).expect("bench cron"));
    let clusters = ZONES
        .iter()
        .enumerate()
        .map(|(i, z)| Cluster {
            name: format!("cluster{i:02}"),
            endpoint: Endpoint::Url(format!("https://cluster{i:02}.example.net")),
            username: "snapwarden".into(),
            password: None,
            tls: TlsVerify::System,
            timezone: ClusterTimezone::Named(z.parse().expect("bench zone")),
            simulator: None,
        })
        .collect();
    let volumes = (0..VOLUMES)
        .map(|i| Volume {
            cluster: i % ZONES.len(),
            svm: "svm1".into(),
            name: format!("vol{i:05}"),
            luns: vec![format!("/vol/vol{i:05}/lun0")],
            schedules: VolumeSchedules::Policy(0),
            clone: CloneMethod::Auto,
        })
        .collect();
    // Starts spread over the night: some fit, some shift, some are skipped or conflict.
    let windows = (0..VOLUMES)
        .map(|i| Window {
            name: format!("w{i:05}"),
            volumes: vec![i],
            start: CronSpec::from_lists(&[(i * 7 % 60) as u32], &[(i % 6) as u32], &[], &[], &[])
                .expect("bench start"),
            timezone: ZONES[i % ZONES.len()].parse::<Tz>().expect("bench zone"),
            expected: TimeDelta::minutes(30),
            max: TimeDelta::minutes(35 + (i % 30) as i64),
            on_conflict: [OnConflict::Shift, OnConflict::Skip, OnConflict::Run][i % 3],
            shift_limit: TimeDelta::hours(2),
            hook: None,
        })
        .collect();
    Policy {
        source: PathBuf::from("bench.toml"),
        files: vec![PathBuf::from("bench.toml")],
        agent: Agent {
            listen: "127.0.0.1:9464".parse().expect("addr"),
            state_dir: PathBuf::from("/tmp"),
            snapshot_prefix: "snapwarden".into(),
            guard: TimeDelta::minutes(5),
        },
        flexclone: FlexCloneRule {
            recommend_after: 3,
            within: TimeDelta::days(7),
            use_when_licensed: false,
        },
        clusters,
        schedules: vec![
            JobSchedule {
                name: "hourly".into(),
                recurrence: cron("5 * * * *"),
            },
            JobSchedule {
                name: "daily".into(),
                recurrence: cron("10 0 * * *"),
            },
            JobSchedule {
                name: "weekly".into(),
                recurrence: cron("15 0 * * 0"),
            },
        ],
        snapshot_policies: vec![SnapshotPolicy {
            name: "default".into(),
            copies: (0..3)
                .map(|s| Copies {
                    schedule: s,
                    count: 6,
                    prefix: String::new(),
                })
                .collect(),
        }],
        volumes,
        windows,
    }
}

/// The straightforward alternative: per volume, walk every minute of the horizon, mark the
/// minutes a schedule fires (local time, first occurrence on repeated hours), then test each
/// window occurrence against those marks. Returns the number of occurrences that do not fit.
fn minute_scan(policy: &Policy, from: DateTime<Utc>, horizon: TimeDelta) -> usize {
    let minutes = horizon.num_minutes() as usize;
    let guard = policy.agent.guard.num_minutes() as usize;
    let mut misfits = 0;
    for window in &policy.windows {
        for &vi in &window.volumes {
            let volume = &policy.volumes[vi];
            let ClusterTimezone::Named(tz) = policy.clusters[volume.cluster].timezone else {
                continue;
            };
            let VolumeSchedules::Policy(p) = volume.schedules else {
                continue;
            };
            let mut fires = vec![false; minutes + 24 * 60];
            for (m, fire) in fires.iter_mut().enumerate() {
                let t = from + TimeDelta::minutes(m as i64);
                let local = t.with_timezone(&tz).naive_local();
                let first = snapwarden::timeline::cron::first_instant(tz, local) == Some(t);
                *fire = first
                    && policy.snapshot_policies[p].copies.iter().any(|c| {
                        match &policy.schedules[c.schedule].recurrence {
                            Recurrence::Cron(spec) => spec.matches(local),
                            Recurrence::Interval { .. } => false,
                        }
                    });
            }
            let span = window.max.num_minutes() as usize + guard;
            for m in 0..minutes {
                let t = from + TimeDelta::minutes(m as i64);
                let local = t.with_timezone(&window.timezone).naive_local();
                if window.start.matches(local)
                    && snapwarden::timeline::cron::first_instant(window.timezone, local) == Some(t)
                    && fires[m..(m + span).min(fires.len())].iter().any(|f| *f)
                {
                    misfits += 1;
                }
            }
        }
    }
    misfits
}

/// Peak resident memory of this process so far, in MiB (`VmHWM` from `/proc/self/status`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Runs one approach in a fresh child process so each gets its own peak-memory figure; returns
/// the child's report line.
fn in_child(approach: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().expect("bench executable"))
        .env("SNAPWARDEN_BENCH_APPROACH", approach)
        .output()
        .expect("bench child runs");
    assert!(
        out.status.success(),
        "bench child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 report")
        .trim()
        .to_string()
}

/// Child side: builds the policy, runs `approach`, prints `misfits wall_ms peak_mib`.
fn run_child(approach: &str) {
    let policy = policy();
    let from: DateTime<Utc> = "2026-11-23T00:00:00Z".parse().expect("bench start");
    let horizon = TimeDelta::days(7);
    let (misfits, wall) = match approach {
        "planner" => {
            let mut runs = Vec::new();
            let mut misfits = 0;
            for _ in 0..5 {
                let started = Instant::now();
                let plan = black_box(plan(&policy, &Observed::offline(), from, horizon));
                runs.push(started.elapsed());
                misfits = plan
                    .volumes
                    .iter()
                    .flat_map(|v| &v.lifecycles)
                    .filter(|l| l.outcome != Outcome::Fits)
                    .count();
            }
            runs.sort();
            (misfits, runs[runs.len() / 2])
        }
        _ => {
            let started = Instant::now();
            let misfits = black_box(minute_scan(&policy, from, horizon));
            (misfits, started.elapsed())
        }
    };
    println!(
        "{misfits} {:.0} {:.1}",
        wall.as_secs_f64() * 1e3,
        peak_rss_mib()
    );
}

fn main() {
    if let Ok(approach) = std::env::var("SNAPWARDEN_BENCH_APPROACH") {
        return run_child(&approach);
    }
    let parse = |line: String| -> (usize, f64, f64) {
        let f: Vec<&str> = line.split_whitespace().collect();
        (
            f[0].parse().expect("misfits"),
            f[1].parse().expect("ms"),
            f[2].parse().expect("MiB"),
        )
    };
    let (misfits, ms, mib) = parse(in_child("planner"));
    let (scan_misfits, scan_ms, scan_mib) = parse(in_child("scan"));
    println!(
        "plan {VOLUMES} volumes x 7 days, 20 zones, one window each (cargo bench --bench plan)"
    );
    println!("| approach                               | wall time  | peak RSS (whole process) | occurrences not fitting as configured |");
    println!("|----------------------------------------|------------|--------------------------|---------------------------------------|");
    println!("| snapwarden planner (median of 5 runs)  | {ms:>7.0} ms | {mib:>20.1} MiB | {misfits:>37} |");
    println!("| minute-by-minute scan per volume       | {scan_ms:>7.0} ms | {scan_mib:>20.1} MiB | {scan_misfits:>37} |");
    assert_eq!(
        misfits, scan_misfits,
        "the planner and the baseline disagree on which occurrences fit"
    );
}
