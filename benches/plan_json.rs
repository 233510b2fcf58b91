//! Benchmark: `plan --output json` for 10,000 volumes over 7 days, streamed to a byte counter.
//!
//! Plans `common::policy()` and writes the documented JSON through a 64 KiB buffer into a sink
//! that only counts bytes, as the CLI writes to stdout; in a child process, so the peak RSS is
//! this job's alone. Then the same through the binary, as a user runs it: the policy written as a
//! file, `snapwarden plan … --hours 168 --output json > /dev/null` under `/usr/bin/time` (parsing
//! included). Run with `cargo bench --bench plan_json`.

mod common;

use std::io::{BufWriter, Write};
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use snapwarden::planner::{plan, Observed};
use snapwarden::render::write_plan_json;

use common::{in_child, peak_rss_mib, policy, policy_toml, VOLUMES};

/// Counts what would have been written.
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn run_child() {
    let policy = policy();
    let from: DateTime<Utc> = "2026-11-23T00:00:00Z".parse().expect("bench start");
    let started = Instant::now();
    let p = plan(&policy, &Observed::offline(), from, TimeDelta::days(7));
    let planned = started.elapsed();
    let mut count = Count(0);
    {
        let mut out = BufWriter::with_capacity(1 << 16, &mut count);
        write_plan_json(&mut out, &policy, &p).expect("JSON to a counter");
        out.flush().expect("flush to a counter");
    }
    let total = started.elapsed();
    println!(
        "{} {:.0} {:.0} {:.1}",
        count.0,
        planned.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        peak_rss_mib()
    );
}

fn main() {
    if std::env::var("SNAPWARDEN_BENCH_APPROACH").is_ok() {
        return run_child();
    }
    let report = in_child("json");
    let f: Vec<&str> = report.split_whitespace().collect();
    let bytes: f64 = f[0].parse().expect("bytes");
    println!("plan --output json, {VOLUMES} volumes x 7 days (cargo bench --bench plan_json)");
    println!(
        "{:.0} MB of JSON; plan {} ms, plan + write {} ms; peak RSS {} MiB (whole process, policy included)",
        bytes / 1e6,
        f[1],
        f[2],
        f[3]
    );
    cli();
}

/// The binary end to end: wall time and peak RSS from `/usr/bin/time -f "%e %M"`.
fn cli() {
    let time = std::path::Path::new("/usr/bin/time");
    if !time.exists() {
        println!("binary: skipped (no /usr/bin/time to read its peak RSS)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.toml");
    std::fs::write(&path, policy_toml(&policy())).expect("policy file");
    let out = std::process::Command::new(time)
        .args(["-f", "%e %M", env!("CARGO_BIN_EXE_snapwarden"), "plan"])
        .arg(&path)
        .args([
            "--from",
            "2026-11-23T00:00:00Z",
            "--hours",
            "168",
            "--output",
            "json",
        ])
        .stdout(std::process::Stdio::null())
        .output()
        .expect("snapwarden runs under /usr/bin/time");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let f: Vec<&str> = err
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let kib: f64 = f[1].parse().expect("peak KiB");
    println!(
        "binary (parse + plan + write to /dev/null): {} s, peak RSS {:.1} MiB",
        f[0],
        kib / 1024.0
    );
}
