//! Benchmark: `simulate` over 30 days × 500 volumes, coordinated (the agent in virtual time) and
//! uncoordinated (the baseline), each in its own child process for its own peak RSS.
//!
//! The estate is the scenario tests' (`tests/simulate_support`): three zones with March 2027's
//! DST changes, hourly/daily/weekly policies, every window overlapping a scheduled snapshot at
//! its configured start but with a fitting gap. Run with `cargo bench --bench simulate`.
//!
//! `cargo bench --bench simulate -- managed` runs the common shop with its schedules handed over
//! instead (`tests/simulate_support/managed.rs`): 300 volumes in 20 zones over 30 days holding
//! the US, EU and southern DST changes, hourly/daily/weekly snapshots taken by the agent
//! (`managed_snapshots`), one two-hour nightly SnapRestore backup per volume, 5 % overrunning and
//! left to finish; the baseline is ONTAP taking the same copies itself.

#[path = "../tests/simulate_support/mod.rs"]
mod simulate_support;

use std::path::Path;
use std::time::Instant;

use snapwarden::simulate::{self, Settings};

/// As the binary: glibc's allocator, mimalloc once `simulate` asks for it (`snapwarden::heap`).
#[global_allocator]
static HEAP: snapwarden::heap::Heap = snapwarden::heap::Heap;

const VOLUMES: usize = 500;
const DAYS: i64 = 30;

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

/// Volumes to simulate: `SNAPWARDEN_BENCH_VOLUMES`, default [`VOLUMES`].
fn volumes() -> usize {
    std::env::var("SNAPWARDEN_BENCH_VOLUMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(VOLUMES)
}

/// The managed estate's size and period: 300 volumes, 20 zones, 30 days from March 10, 2027
/// (New York's change on the 14th, Berlin's on the 28th, Sydney's and Auckland's on April 4).
const MANAGED_VOLUMES: usize = 300;
const MANAGED_ZONES: usize = 20;
const MANAGED_FROM: &str = "2027-03-10T00:00:00Z";
const MANAGED_OVERRUN_RATE: f64 = 0.05;

fn child(mode: &str) {
    if std::env::var("SNAPWARDEN_BENCH_ESTATE").as_deref() == Ok("managed") {
        managed_child(mode);
        return;
    }
    let text = simulate_support::estate(volumes(), "");
    let policy = snapwarden::config::parse_str(&text, Path::new("bench.toml")).expect("policy");
    let settings = Settings {
        days: DAYS,
        from: simulate_support::FROM.parse().expect("from"),
        seed: 1,
        overrun_rate: 0.0,
        state_dir: None,
    };
    let started = Instant::now();
    let report = run(mode, &policy, &settings);
    let wall = started.elapsed();
    println!(
        "{mode:<14} {:>8.2} s  {:>7.1} MiB  cycles {:>6}  chain conflicts {:>6}  locked hours {:>10.2}  leaked {}  foreign deleted {}",
        wall.as_secs_f64(),
        peak_rss_mib(),
        report.cycles_completed + report.cycles_overrun,
        report.chain_conflicts,
        report.locked_backing_snapshot_hours,
        report.leaked_objects,
        report.foreign_objects_deleted,
    );
}

fn run(mode: &str, policy: &snapwarden::config::Policy, settings: &Settings) -> simulate::Report {
    match mode {
        "coordinated" => simulate::coordinated(policy, settings),
        _ => simulate::uncoordinated(policy, settings),
    }
    .expect("simulation runs")
}

/// The managed estate's volume count: [`MANAGED_VOLUMES`] or `SNAPWARDEN_BENCH_VOLUMES`.
fn managed_volumes() -> usize {
    std::env::var("SNAPWARDEN_BENCH_VOLUMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MANAGED_VOLUMES)
}

/// One run of the managed estate: the table's row.
fn managed_child(mode: &str) {
    let text = simulate_support::managed::estate(managed_volumes(), MANAGED_ZONES);
    let policy = snapwarden::config::parse_str(&text, Path::new("bench.toml")).expect("policy");
    let settings = Settings {
        days: DAYS,
        from: MANAGED_FROM.parse().expect("from"),
        seed: 1,
        overrun_rate: MANAGED_OVERRUN_RATE,
        state_dir: None,
    };
    let started = Instant::now();
    let r = run(mode, &policy, &settings);
    let wall = started.elapsed();
    println!(
        "| {mode} | {:.1} s | {:.1} MiB | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {} |",
        wall.as_secs_f64(),
        peak_rss_mib(),
        r.cycles_completed + r.cycles_overrun,
        r.cycles_overrun,
        r.cycles_skipped,
        r.chain_conflicts,
        r.scheduled_snapshots_taken + r.managed_snapshots_taken,
        r.scheduled_snapshots_deferred,
        r.scheduled_snapshots_coalesced,
        r.locked_backing_snapshot_hours,
        snapwarden::planner::human(chrono::TimeDelta::seconds(r.max_defer_seconds as i64)),
        r.retention_violations,
        r.leaked_objects,
        r.foreign_objects_deleted,
    );
}

fn main() {
    if let Ok(mode) = std::env::var("SNAPWARDEN_BENCH_MODE") {
        child(&mode);
        return;
    }
    let managed = std::env::args().skip(1).any(|a| a == "managed");
    if managed {
        println!(
            "simulate, the shop handed over: {DAYS} days × {} volumes in {MANAGED_ZONES} zones from {MANAGED_FROM}, overrun rate {MANAGED_OVERRUN_RATE}\n",
            managed_volumes()
        );
        println!("| run | wall time | peak RSS | backups run | of which overrun | skipped | chain conflicts | snapshots taken | deferred | coalesced | locked backing-snapshot hours | max deferral | retention violations | leaked | foreign deleted |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    } else {
        println!(
            "simulate: {DAYS} days × {VOLUMES} volumes (wall time, peak RSS of the whole process)"
        );
    }
    for mode in ["coordinated", "uncoordinated"] {
        let out = std::process::Command::new(std::env::current_exe().expect("bench executable"))
            .env("SNAPWARDEN_BENCH_MODE", mode)
            .env(
                "SNAPWARDEN_BENCH_ESTATE",
                if managed { "managed" } else { "scenario" },
            )
            .output()
            .expect("bench child runs");
        assert!(
            out.status.success(),
            "bench child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}
