//! Benchmark: how `simulate` scales with the estate — the scenario estate at 500, 2,000 and
//! 10,000 volumes and the managed estate at 60, 120 and 300 volumes, each size in its own child
//! process for its own peak RSS, with the time per simulated backup cycle relative to the
//! smallest size (a pass that costs what changed keeps that ratio near 1).
//!
//! Run with `cargo bench --bench scale`. `SNAPWARDEN_BENCH_DAYS` sets the simulated days
//! (default 7); `cargo bench --bench scale -- scenario` or `-- managed` runs one estate only.

#[path = "../tests/simulate_support/mod.rs"]
mod simulate_support;

use std::path::Path;
use std::time::Instant;

use snapwarden::simulate::{self, Settings};

const DAYS: i64 = 7;
const SCENARIO_SIZES: [usize; 3] = [500, 2_000, 10_000];
const MANAGED_SIZES: [usize; 3] = [60, 120, 300];
const MANAGED_ZONES: usize = 20;
const MANAGED_FROM: &str = "2027-03-10T00:00:00Z";
const MANAGED_OVERRUN_RATE: f64 = 0.05;

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

/// Simulated days: `SNAPWARDEN_BENCH_DAYS`, default [`DAYS`].
fn days() -> i64 {
    std::env::var("SNAPWARDEN_BENCH_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|d| (1..=366).contains(d))
        .unwrap_or(DAYS)
}

/// One size, run coordinated in this (child) process: prints `wall_seconds rss_mib cycles`.
fn child(estate: &str, volumes: usize) {
    let (text, from, overrun_rate) = if estate == "managed" {
        (
            simulate_support::managed::estate(volumes, MANAGED_ZONES),
            MANAGED_FROM,
            MANAGED_OVERRUN_RATE,
        )
    } else {
        (
            simulate_support::estate(volumes, ""),
            simulate_support::FROM,
            0.0,
        )
    };
    let policy = snapwarden::config::parse_str(&text, Path::new("bench.toml")).expect("policy");
    let settings = Settings {
        days: days(),
        from: from.parse().expect("from"),
        seed: 1,
        overrun_rate,
        state_dir: None,
    };
    let started = Instant::now();
    let report = simulate::coordinated(&policy, &settings).expect("simulation runs");
    let wall = started.elapsed();
    println!(
        "{} {} {}",
        wall.as_secs_f64(),
        peak_rss_mib(),
        report.cycles_completed + report.cycles_overrun
    );
}

/// Runs every size of one estate in its own child and prints the table's rows.
fn table(estate: &str, sizes: &[usize]) {
    let mut first_per_cycle = None;
    for &volumes in sizes {
        let out = std::process::Command::new(std::env::current_exe().expect("bench executable"))
            .env("SNAPWARDEN_BENCH_CHILD", estate)
            .env("SNAPWARDEN_BENCH_VOLUMES", volumes.to_string())
            .output()
            .expect("bench child runs");
        assert!(
            out.status.success(),
            "bench child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<f64> = line
            .split_whitespace()
            .map(|f| f.parse().expect("child prints numbers"))
            .collect();
        let [wall, rss, cycles] = fields[..] else {
            panic!("child printed {line:?}");
        };
        let per_cycle = wall / cycles.max(1.0);
        let relative = per_cycle / *first_per_cycle.get_or_insert(per_cycle);
        println!(
            "| {estate} | {volumes} | {wall:.1} s | {rss:.0} MiB | {cycles} | {:.2} ms | {relative:.2}× |",
            per_cycle * 1000.0
        );
    }
}

fn main() {
    if let Ok(estate) = std::env::var("SNAPWARDEN_BENCH_CHILD") {
        let volumes = std::env::var("SNAPWARDEN_BENCH_VOLUMES")
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("SNAPWARDEN_BENCH_VOLUMES");
        child(&estate, volumes);
        return;
    }
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a == "scenario" || a == "managed")
        .collect();
    let wanted = |e: &str| only.is_empty() || only.iter().any(|o| o == e);
    println!(
        "simulate --days {}, coordinated; each size in its own process\n",
        days()
    );
    println!("| estate | volumes | wall time | peak RSS | backup cycles | time per cycle | per cycle vs smallest |");
    println!("|---|---|---|---|---|---|---|");
    if wanted("scenario") {
        table("scenario", &SCENARIO_SIZES);
    }
    if wanted("managed") {
        table("managed", &MANAGED_SIZES);
    }
}
