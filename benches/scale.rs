//! Benchmark: how `simulate` scales with the estate — the scenario estate at 500, 2,000 and
//! 10,000 volumes and the managed estate at 60, 120 and 300 volumes, each size in its own child
//! process for its own peak RSS, with the time per simulated backup cycle relative to the
//! smallest size (a pass that costs what changed keeps that ratio near 1).
//!
//! Run with `cargo bench --bench scale`. `SNAPWARDEN_BENCH_DAYS` sets the simulated days
//! (default 7); `cargo bench --bench scale -- scenario` or `-- managed` runs one estate only.

mod common;
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
        common::peak_rss_mib(),
        report.cycles_completed + report.cycles_overrun
    );
}

/// Runs every size of one estate in its own child and prints the table's rows.
fn table(estate: &str, sizes: &[usize]) {
    let mut first_per_cycle = None;
    for &volumes in sizes {
        let line = common::in_child(&format!("{estate}:{volumes}"));
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
    if let Ok(approach) = std::env::var("SNAPWARDEN_BENCH_APPROACH") {
        let (estate, volumes) = approach.split_once(':').expect("estate:volumes");
        child(estate, volumes.parse().expect("a volume count"));
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
