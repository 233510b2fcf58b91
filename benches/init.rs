//! Benchmark: `snapwarden init` on a 1,000-volume cluster served by `snapwarden simulator serve
//! --tls`, and `snapwarden check` on the policy it wrote.
//!
//! Run with `cargo bench --bench init` (the release build). The world: one cluster, 1,000
//! volumes in four SVMs, 900 of them with two LUNs each and 100 without LUNs. The benchmark runs
//! `init` [`RUNS`] times (each writing a fresh `--output-file`), asserts every time that the
//! policy lists exactly the 900 volumes with LUNs and that only GET requests reached the
//! simulator (its `GET /simulator/v1/requests`), then runs `check` once on the last policy and
//! asserts it is accepted. It prints the wall time of each run (min, median, max) and the
//! requests one `init` made.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::start_simulator;

const VOLUMES: usize = 1_000;
/// Every tenth volume holds no LUN.
const WITH_LUNS: usize = VOLUMES - VOLUMES / 10;
const RUNS: usize = 7;
const USER: &str = "bench";
const PASSWORD: &str = "bench-pw-1";
const PASSWORD_ENV: &str = "SNAPWARDEN_BENCH_PASSWORD";

fn world_toml() -> String {
    let mut w = format!(
        "[[users]]\nname = \"{USER}\"\npassword = \"{PASSWORD}\"\n\n\
         [[clusters]]\nname = \"bench\"\ntimezone = \"Europe/Berlin\"\n"
    );
    for svm in 0..4 {
        w.push_str(&format!("\n[[clusters.svms]]\nname = \"svm{svm}\"\n"));
        for i in (svm..VOLUMES).step_by(4) {
            w.push_str(&format!(
                "\n[[clusters.svms.volumes]]\nname = \"vol{i:04}\"\n"
            ));
            if i % 10 != 9 {
                w.push_str("luns = [{ name = \"data\" }, { name = \"log\" }]\n");
            }
        }
    }
    w
}

fn requests(url: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
            .get(format!("{url}/simulator/v1/requests"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .expect("admin API answers")
            .json()
            .await
            .expect("admin API JSON")
    })
}

fn run(bin: &Path, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .env(PASSWORD_ENV, PASSWORD)
        .output()
        .expect("snapwarden runs");
    (out, started.elapsed())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_snapwarden"));
    let dir = tempfile::tempdir().expect("temp dir");
    let world = dir.path().join("world.toml");
    std::fs::write(&world, world_toml()).expect("write world");
    let (_sim, url, pin) = start_simulator(&bin, &world, "bench");
    let cluster = format!("bench={url}");
    let mut times = Vec::new();
    let mut per_run = 0;
    let mut last = PathBuf::new();
    for i in 0..RUNS {
        let out = dir.path().join(format!("policy-{i}.toml"));
        let before = requests(&url);
        let (o, took) = run(
            &bin,
            &[
                "init",
                "--cluster",
                &cluster,
                "--username",
                USER,
                "--password-env",
                PASSWORD_ENV,
                "--pin-sha256",
                &pin,
                "--output-file",
                out.to_str().expect("UTF-8 path"),
            ],
        );
        assert!(
            o.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let after = requests(&url);
        for method in ["post", "patch", "delete", "other"] {
            assert_eq!(after[method], before[method], "{method}: {after}");
        }
        per_run = after["get"].as_u64().unwrap_or(0) - before["get"].as_u64().unwrap_or(0);
        let text = std::fs::read_to_string(&out).expect("policy written");
        let policy: toml::Value = toml::from_str(&text).expect("TOML");
        let volumes = policy["volume"].as_array().expect("volumes");
        assert_eq!(volumes.len(), WITH_LUNS);
        assert!(volumes
            .iter()
            .all(|v| v["luns"].as_array().map(Vec::len) == Some(2)));
        times.push(took);
        last = out;
    }
    times.sort();
    let (c, check_took) = run(&bin, &["check", last.to_str().expect("UTF-8 path")]);
    let report = String::from_utf8_lossy(&c.stdout);
    assert!(
        matches!(c.status.code(), Some(0 | 1))
            && report.contains(&format!("valid (1 cluster(s), {WITH_LUNS} volume(s)")),
        "check refused the policy: {report}{}",
        String::from_utf8_lossy(&c.stderr)
    );
    let size = std::fs::metadata(&last).map(|m| m.len()).unwrap_or(0);
    println!(
        "init, {VOLUMES} volumes ({WITH_LUNS} with 2 LUNs), {RUNS} runs: min {}, median {}, max {}; \
         {per_run} GET requests per run, nothing else; policy {:.0} KiB",
        ms(times[0]),
        ms(times[RUNS / 2]),
        ms(times[RUNS - 1]),
        size as f64 / 1024.0
    );
    println!(
        "check on the written policy (reads the schedules): {}, exit {}",
        ms(check_took),
        c.status.code().unwrap_or(-1)
    );
}
