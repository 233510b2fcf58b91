//! Benchmark: how snapwarden scales with the estate, in two halves.
//!
//! `simulate`: the scenario estate at 500, 2,000 and 10,000 volumes and the managed estate at
//! 60, 120 and 300 volumes, each size in its own child process for its own peak RSS, with the
//! time per simulated backup cycle relative to the smallest size (a pass that costs what
//! changed keeps that ratio near 1). `SNAPWARDEN_BENCH_DAYS` sets the simulated days (default 7).
//! `conflicts`: the scenario estate at 500 volumes with its hourly volumes' windows (a third)
//! running two-hour backups into conflicts, for 30 days, coordinated and then the uncoordinated
//! baseline on the same world, with the ratio of their times.
//!
//! `run`: the agent itself at 500, 2,000 and 10,000 volumes against `simulator serve --tls`, in
//! real time — CPU in a run phase and an idle phase, peak RSS, REST requests against the
//! lifecycle's minimum, cycles completed and in flight ([`run_scale`]).
//! `SNAPWARDEN_BENCH_RUN_SECONDS` (default 600) and `SNAPWARDEN_BENCH_IDLE_SECONDS` (default 60)
//! set the phases.
//!
//! Run with `cargo bench --bench scale` (everything: about 4 minutes of `simulate`, then about
//! 14 minutes per `run` size); `-- scenario`, `-- managed`, `-- conflicts` or `-- run` runs one part, and
//! `-- run:10000` one size of the `run` half.

mod common;
mod run_scale;
#[path = "../tests/simulate_support/mod.rs"]
mod simulate_support;

use std::path::Path;
use std::time::Instant;

use snapwarden::simulate::{self, Settings};

/// As the binary: glibc's allocator, mimalloc once `simulate` asks for it (`snapwarden::heap`).
#[global_allocator]
static HEAP: snapwarden::heap::Heap = snapwarden::heap::Heap;

const DAYS: i64 = 7;
const SCENARIO_SIZES: [usize; 3] = [500, 2_000, 10_000];
const MANAGED_SIZES: [usize; 3] = [60, 120, 300];
const MANAGED_ZONES: usize = 20;
const MANAGED_FROM: &str = "2027-03-10T00:00:00Z";
const MANAGED_OVERRUN_RATE: f64 = 0.05;
const CONFLICT_VOLUMES: usize = 500;
/// The conflicting estate's simulated days, unless `SNAPWARDEN_BENCH_DAYS` says otherwise.
const CONFLICT_DAYS: i64 = 30;

/// Simulated days: `SNAPWARDEN_BENCH_DAYS`, default `default`.
fn days_or(default: i64) -> i64 {
    std::env::var("SNAPWARDEN_BENCH_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|d| (1..=366).contains(d))
        .unwrap_or(default)
}

/// Simulated days of the scenario and managed estates: `SNAPWARDEN_BENCH_DAYS`, default [`DAYS`].
fn days() -> i64 {
    days_or(DAYS)
}

/// The scenario estate with its hourly volumes' windows (a third of the estate) made two-hour
/// backups run anyway (`on_conflict = "run"`): no gap between hourly snapshots holds them, so
/// every night each of those backups runs into conflicts.
fn conflicting_estate(volumes: usize) -> String {
    let text = simulate_support::estate(volumes, "");
    let hourly = "expected = \"30m\"\nmax = \"45m\"\nshift_limit = \"2h\"";
    assert!(
        text.contains(hourly),
        "the scenario estate's hourly windows changed"
    );
    text.replace(
        hourly,
        "expected = \"2h\"\nmax = \"3h\"\non_conflict = \"run\"",
    )
}

/// One size, run in this (child) process — coordinated, or the uncoordinated baseline for
/// `conflicts-baseline`: prints `wall_seconds rss_mib cycles`.
fn child(estate: &str, volumes: usize) {
    let (text, from, overrun_rate) = match estate {
        "managed" => (
            simulate_support::managed::estate(volumes, MANAGED_ZONES),
            MANAGED_FROM,
            MANAGED_OVERRUN_RATE,
        ),
        "conflicts" | "conflicts-baseline" => {
            (conflicting_estate(volumes), simulate_support::FROM, 0.0)
        }
        _ => (
            simulate_support::estate(volumes, ""),
            simulate_support::FROM,
            0.0,
        ),
    };
    let policy = snapwarden::config::parse_str(&text, Path::new("bench.toml")).expect("policy");
    let settings = Settings {
        days: if estate.starts_with("conflicts") {
            days_or(CONFLICT_DAYS)
        } else {
            days()
        },
        from: from.parse().expect("from"),
        seed: 1,
        overrun_rate,
        state_dir: None,
    };
    let started = Instant::now();
    let report = if estate == "conflicts-baseline" {
        simulate::uncoordinated(&policy, &settings)
    } else {
        simulate::coordinated(&policy, &settings)
    }
    .expect("simulation runs");
    let wall = started.elapsed();
    println!(
        "{} {} {}",
        wall.as_secs_f64(),
        common::peak_rss_mib(),
        report.cycles_completed + report.cycles_overrun
    );
}

/// Runs one size of one estate in its own child: its wall seconds, peak RSS in MiB and cycles.
fn run_child(estate: &str, volumes: usize) -> [f64; 3] {
    let line = common::in_child(&format!("{estate}:{volumes}"));
    let fields: Vec<f64> = line
        .split_whitespace()
        .map(|f| f.parse().expect("child prints numbers"))
        .collect();
    fields[..]
        .try_into()
        .unwrap_or_else(|_| panic!("child printed {line:?}"))
}

/// Runs every size of one estate in its own child and prints the table's rows.
fn table(estate: &str, sizes: &[usize]) {
    let mut first_per_cycle = None;
    for &volumes in sizes {
        let [wall, rss, cycles] = run_child(estate, volumes);
        let per_cycle = wall / cycles.max(1.0);
        let relative = per_cycle / *first_per_cycle.get_or_insert(per_cycle);
        println!(
            "| {estate} | {volumes} | {wall:.1} s | {rss:.0} MiB | {cycles} | {:.2} ms | {relative:.2}× |",
            per_cycle * 1000.0
        );
    }
}

/// The conflicting estate at [`CONFLICT_VOLUMES`], coordinated and its uncoordinated baseline
/// on the same world: the coordinated run's time as a multiple of the baseline's.
fn conflicts_table() {
    let mut walls = Vec::new();
    for estate in ["conflicts", "conflicts-baseline"] {
        let [wall, rss, cycles] = run_child(estate, CONFLICT_VOLUMES);
        walls.push(wall);
        println!("| {estate} | {CONFLICT_VOLUMES} | {wall:.1} s | {rss:.0} MiB | {cycles} |");
    }
    println!(
        "\ncoordinated / baseline: {:.2}× (target: within 3×)",
        walls[0] / walls[1].max(f64::MIN_POSITIVE)
    );
}

/// What the arguments ask for: the simulate estates, and the sizes of the `run` half.
struct Wanted {
    estates: Vec<&'static str>,
    run_sizes: Vec<usize>,
}

fn wanted() -> Wanted {
    let mut w = Wanted {
        estates: Vec::new(),
        run_sizes: Vec::new(),
    };
    // cargo passes `--bench`; other words are ours.
    for arg in std::env::args().skip(1).filter(|a| !a.starts_with('-')) {
        match arg.as_str() {
            "scenario" => w.estates.push("scenario"),
            "managed" => w.estates.push("managed"),
            "conflicts" => w.estates.push("conflicts"),
            "run" => w.run_sizes.extend(run_scale::SIZES),
            other => match other.strip_prefix("run:").map(str::parse::<usize>) {
                Some(Ok(n)) if (1..=50_000).contains(&n) => w.run_sizes.push(n),
                _ => panic!(
                    "unknown argument {other:?}: scenario, managed, conflicts, run or run:N (1 to 50,000 volumes)"
                ),
            },
        }
    }
    if w.estates.is_empty() && w.run_sizes.is_empty() {
        w.estates = vec!["scenario", "managed", "conflicts"];
        w.run_sizes = run_scale::SIZES.to_vec();
    }
    w
}

fn main() {
    if let Ok(approach) = std::env::var("SNAPWARDEN_BENCH_APPROACH") {
        let (estate, volumes) = approach.split_once(':').expect("estate:volumes");
        child(estate, volumes.parse().expect("a volume count"));
        return;
    }
    let wanted = wanted();
    if wanted.estates.iter().any(|e| *e != "conflicts") {
        println!(
            "simulate --days {}, coordinated; each size in its own process\n",
            days()
        );
        println!("| estate | volumes | wall time | peak RSS | backup cycles | time per cycle | per cycle vs smallest |");
        println!("|---|---|---|---|---|---|---|");
    }
    for estate in &wanted.estates {
        match *estate {
            "managed" => table(estate, &MANAGED_SIZES),
            "conflicts" => {
                println!(
                    "\nsimulate --days {}, a third of the windows running into conflicts; coordinated, then the uncoordinated baseline on the same world\n",
                    days_or(CONFLICT_DAYS)
                );
                println!("| run | volumes | wall time | peak RSS | backup cycles |");
                println!("|---|---|---|---|---|");
                conflicts_table();
            }
            _ => table(estate, &SCENARIO_SIZES),
        }
    }
    if !wanted.run_sizes.is_empty() {
        run_scale::table(&wanted.run_sizes);
    }
}
