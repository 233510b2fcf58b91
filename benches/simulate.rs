//! Benchmark: `simulate` over 30 days × 500 volumes, coordinated (the agent in virtual time) and
//! uncoordinated (the baseline), each in its own child process for its own peak RSS.
//!
//! The estate is the scenario tests' (`tests/simulate_support`): three zones with March 2027's
//! DST changes, hourly/daily/weekly policies, every window overlapping a scheduled snapshot at
//! its configured start but with a fitting gap. Run with `cargo bench --bench simulate`.

#[path = "../tests/simulate_support/mod.rs"]
mod simulate_support;

use std::path::Path;
use std::time::Instant;

use snapwarden::simulate::{self, Settings};

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

fn child(mode: &str) {
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
    let report = match mode {
        "coordinated" => simulate::coordinated(&policy, &settings),
        _ => simulate::uncoordinated(&policy, &settings),
    }
    .expect("simulation runs");
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

fn main() {
    if let Ok(mode) = std::env::var("SNAPWARDEN_BENCH_MODE") {
        child(&mode);
        return;
    }
    println!(
        "simulate: {DAYS} days × {VOLUMES} volumes (wall time, peak RSS of the whole process)"
    );
    for mode in ["coordinated", "uncoordinated"] {
        let out = std::process::Command::new(std::env::current_exe().expect("bench executable"))
            .env("SNAPWARDEN_BENCH_MODE", mode)
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
