//! Benchmark: one backup cycle over 1,000 volumes whose window opens at the same minute —
//! `snapwarden run` against `snapwarden simulator serve` over HTTPS — next to, in the same run,
//! a sequential script with NetApp's official Python client doing the same lifecycle
//! (`benches/netapp_sequential.py`).
//!
//! Run with `cargo bench --bench agent_cycle`. It needs NetApp's client: the interpreter is
//! `SNAPWARDEN_TEST_PYTHON`, else `target/py-venv/bin/python` (`scripts/test` creates it).
//!
//! What it does:
//! 1. writes a world of 1,000 volumes (`vol0000` …, one LUN `lun0` each, licensed for SnapRestore
//!    only, so `clone = "auto"` means a SnapRestore LUN clone) whose only snapshot schedule fires
//!    12 hours from now, and starts `snapwarden simulator serve --tls --clock real` on it;
//! 2. writes a policy naming the 1,000 volumes (`snapshot_policy = "ontap"`), one window opening
//!    at the next minute boundary at least 20 s away (the agent's cron granularity is a minute;
//!    the figures are measured from that instant, not from process start), no hook and
//!    `expected = "1s"`, and starts `snapwarden run` on it;
//! 3. waits until the journal (`snapwarden history --output json`) shows every cycle released,
//!    reads the agent's peak RSS (`VmHWM`) and the simulator's request counter
//!    (`GET /simulator/v1/requests`), and stops the agent;
//! 4. runs the Python script over the same volumes and counts its requests the same way;
//! 5. prints a table. Wall time of the agent: from the window's instant until the last cycle's
//!    `released_at` in the journal. REST calls: every `/api` request the simulator answered
//!    while the client ran (discovery included), divided by the number of volumes.
//!
//! The minimum REST calls the lifecycle needs, per volume: its 4 mutations (create snapshot,
//! clone, delete clone, delete snapshot) plus, for each mutation the simulator answers 202, one
//! job poll (its jobs end at once, so one poll sees the end): 8 with the default
//! `async_mutations = true`. Reading anything else (uuids, discovery) is above the minimum.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use serde_json::Value;

mod common;

use common::sim_http::{Counts, SimHttp};
use common::{
    cpu_seconds, free_port, history, instant, process_peak_rss_mib, start_simulator, Proc,
};

const VOLUMES: usize = 1_000;
const USER: &str = "bench";
const PASSWORD: &str = "bench-pw-1";
const PASSWORD_ENV: &str = "SNAPWARDEN_BENCH_PASSWORD";
/// Give up waiting for the agent after this long past the window's instant.
const AGENT_BOUND: Duration = Duration::from_secs(600);

fn volume_name(i: usize) -> String {
    format!("vol{i:04}")
}

/// The simulated cluster: 1,000 volumes, SnapRestore only, one daily schedule `hour:minute` UTC.
fn world_toml(hour: u32, minute: u32) -> String {
    let mut w = format!(
        "[[users]]\nname = \"{USER}\"\npassword = \"{PASSWORD}\"\n\n\
         [[clusters]]\nname = \"bench\"\ntimezone = \"Etc/UTC\"\nlicenses = [\"snaprestore\"]\n\n\
         [[clusters.schedules]]\nname = \"far\"\ncron = \"{minute} {hour} * * *\"\n\n\
         [[clusters.snapshot_policies]]\nname = \"far\"\ncopies = [{{ schedule = \"far\", count = 2 }}]\n\n\
         [[clusters.svms]]\nname = \"svm1\"\n"
    );
    for i in 0..VOLUMES {
        w.push_str(&format!(
            "\n[[clusters.svms.volumes]]\nname = \"{}\"\nsnapshot_policy = \"far\"\nluns = [{{ name = \"lun0\" }}]\n",
            volume_name(i)
        ));
    }
    w
}

/// The agent's policy: the 1,000 volumes, one window at `at` (UTC), no hook, `expected = 1s`.
fn policy_toml(
    listen: u16,
    state_dir: &Path,
    url: &str,
    pin: &str,
    at: DateTime<Utc>,
    concurrency: Option<u32>,
) -> String {
    let concurrency = concurrency.map_or(String::new(), |n| format!("concurrency = {n}\n"));
    let mut p = format!(
        "[agent]\nlisten = \"127.0.0.1:{listen}\"\nstate_dir = \"{}\"\nguard = \"1m\"\n{concurrency}\n\
         [[cluster]]\nname = \"bench\"\nendpoint = \"{url}\"\nusername = \"{USER}\"\n\
         password_env = \"{PASSWORD_ENV}\"\npin_sha256 = \"{pin}\"\ntimezone = \"auto\"\n",
        state_dir.display()
    );
    let mut ids = Vec::with_capacity(VOLUMES);
    for i in 0..VOLUMES {
        let v = volume_name(i);
        p.push_str(&format!(
            "\n[[volume]]\ncluster = \"bench\"\nsvm = \"svm1\"\nname = \"{v}\"\n\
             luns = [\"/vol/{v}/lun0\"]\nsnapshot_policy = \"ontap\"\n"
        ));
        ids.push(format!("\"bench/svm1/{v}\""));
    }
    p.push_str(&format!(
        "\n[[window]]\nname = \"nightly\"\nvolumes = [{}]\nstart = \"{} {} * * *\"\n\
         timezone = \"UTC\"\nexpected = \"1s\"\nmax = \"10m\"\n",
        ids.join(", "),
        at.minute(),
        at.hour()
    ));
    p
}

/// Whether the agent's status shows no live cycle and a released one of the window at `at`.
fn window_released(http: &SimHttp, status_url: &str, at: DateTime<Utc>) -> bool {
    let Some(status) = http.json_at(status_url) else {
        return false;
    };
    let live = status["live_cycles"].as_array().map_or(1, Vec::len);
    let released = status["recent_cycles"]
        .as_array()
        .is_some_and(|r| r.iter().any(|c| instant(&c["window_start"]) == Some(at)));
    live == 0 && released
}

/// `[agent] concurrency` for the run: the default (4) unless `SNAPWARDEN_BENCH_CONCURRENCY` sets
/// one (to see how the figures move with it).
fn concurrency() -> Option<u32> {
    std::env::var("SNAPWARDEN_BENCH_CONCURRENCY")
        .ok()
        .map(|v| v.parse().expect("SNAPWARDEN_BENCH_CONCURRENCY is a number"))
}

fn python() -> PathBuf {
    std::env::var_os("SNAPWARDEN_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/target/py-venv/bin/python"
            ))
        })
}

struct AgentRun {
    wall: f64,
    cpu: f64,
    first_create: f64,
    counts: Counts,
    peak_mib: f64,
    completed: usize,
}

fn run_agent(bin: &Path, dir: &Path, admin: &SimHttp, url: &str, pin: &str) -> AgentRun {
    let state_dir = dir.join("state");
    std::fs::create_dir_all(&state_dir).expect("state dir");
    // The next minute boundary at least 20 s away: time to start and discover first.
    let soon = Utc::now() + TimeDelta::seconds(20);
    let at = soon
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("minute boundary")
        + TimeDelta::minutes(1);
    let policy = dir.join("policy.toml");
    let listen = free_port();
    std::fs::write(
        &policy,
        policy_toml(listen, &state_dir, url, pin, at, concurrency()),
    )
    .expect("write policy");
    let log_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("agent_cycle-agent.log");
    let log = std::fs::File::create(&log_path).expect("agent log");
    let before = admin.requests();
    let agent = Proc(
        Command::new(bin)
            .args(["run", "--config"])
            .arg(&policy)
            .arg("--state-dir")
            .arg(&state_dir)
            .env(PASSWORD_ENV, PASSWORD)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("snapwarden run starts"),
    );
    eprintln!(
        "agent started (pid {}); the window opens at {at} (log: {})",
        agent.0.id(),
        log_path.display()
    );
    let deadline = Instant::now() + AGENT_BOUND + Duration::from_secs(90);
    // The agent's status is cheap to ask for; the journal is read once it says the window's
    // cycles are all released (and again if the journal does not agree yet).
    let status_url = format!("http://127.0.0.1:{listen}/api/v1/status");
    let cycles = loop {
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            Instant::now() < deadline,
            "the agent did not release every cycle in time; see {}",
            log_path.display()
        );
        if Utc::now() < at || !window_released(admin, &status_url, at) {
            continue;
        }
        let cycles = history(bin, &state_dir, at - TimeDelta::minutes(1));
        let done = cycles.iter().filter(|c| !c["result"].is_null()).count();
        if cycles.len() >= VOLUMES && done == cycles.len() {
            break cycles;
        }
    };
    let counts = admin.requests().since(before);
    let peak_mib = process_peak_rss_mib(agent.0.id());
    let cpu = cpu_seconds(agent.0.id());
    // SIGTERM: the graceful stop (nothing is in flight any more).
    let mut agent = agent;
    agent.stop(Duration::from_secs(60));
    let released = cycles
        .iter()
        .filter_map(|c| instant(&c["released_at"]))
        .max()
        .expect("released cycles");
    let first = cycles
        .iter()
        .filter_map(|c| instant(&c["created_at"]))
        .min()
        .expect("created cycles");
    let completed = cycles.iter().filter(|c| c["result"] == "completed").count();
    let secs = |d: TimeDelta| d.num_milliseconds() as f64 / 1e3;
    AgentRun {
        wall: secs(released - at),
        cpu,
        first_create: secs(first - at),
        counts,
        peak_mib,
        completed,
    }
}

struct ScriptRun {
    wall: f64,
    cpu: f64,
    counts: Counts,
    peak_mib: f64,
}

fn run_script(admin: &SimHttp, url: &str) -> ScriptRun {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/netapp_sequential.py");
    let hostport = url.trim_start_matches("https://");
    let (host, port) = hostport.rsplit_once(':').expect("host:port");
    let before = admin.requests();
    let mut child = Command::new(python())
        .args([script, host, port, USER, PASSWORD, "vol", &VOLUMES.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{} cannot run ({e}): set SNAPWARDEN_TEST_PYTHON or run scripts/test once (it installs netapp-ontap into target/py-venv)",
                python().display()
            )
        });
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("script stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("script stderr");
    let status = child.wait().expect("script ends");
    assert!(status.success(), "the Python script failed:\n{stderr}");
    let counts = admin.requests().since(before);
    let report: Value = serde_json::from_str(stdout.trim()).expect("script report");
    ScriptRun {
        wall: report["wall_seconds"].as_f64().expect("wall_seconds"),
        cpu: report["cpu_seconds"].as_f64().unwrap_or(0.0),
        counts,
        peak_mib: report["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
    }
}

fn per_volume(counts: Counts) -> f64 {
    counts.total as f64 / VOLUMES as f64
}

fn main() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_snapwarden"));
    let dir = tempfile::tempdir().expect("temp dir");
    // The only scheduled snapshot fires 12 hours from now: never during the run.
    let far = Utc::now() + TimeDelta::hours(12);
    let world = dir.path().join("world.toml");
    std::fs::write(&world, world_toml(far.hour(), far.minute())).expect("write world");
    let (sim, url, pin) = start_simulator(&bin, &world, "bench");
    let admin = SimHttp::new(&url, USER, PASSWORD);
    let knobs = admin.get("/simulator/v1/knobs");
    let faults = admin.get("/simulator/v1/faults");
    assert_eq!(
        faults["job_duration_seconds"], 0,
        "jobs must end at once for the minimum below"
    );
    let polls_per_mutation = u64::from(knobs["async_mutations"] == true);
    let minimum = (4 * (1 + polls_per_mutation)) as f64;

    let sim_pid = sim.0.id();
    let sim_cpu0 = cpu_seconds(sim_pid);
    let agent = run_agent(&bin, dir.path(), &admin, &url, &pin);
    let sim_cpu1 = cpu_seconds(sim_pid);
    let script = run_script(&admin, &url);
    let sim_cpu2 = cpu_seconds(sim_pid);

    let date = Utc::now().format("%Y-%m-%d");
    println!(
        "one cycle over {VOLUMES} volumes (1 LUN each, SnapRestore clone), simulator over HTTPS, {date} (cargo bench --bench agent_cycle)"
    );
    println!("| approach                                   | wall time  | REST calls / volume | peak RSS   | speed-up |");
    println!("|--------------------------------------------|------------|---------------------|------------|----------|");
    println!(
        "| {:<42} | {:>8.1} s | {:>19.2} | {:>6.1} MiB | {:>7.1}× |",
        format!(
            "snapwarden run (concurrency {} per cluster)",
            concurrency().map_or(snapwarden::config::Agent::default().concurrency, |n| n
                as usize)
        ),
        agent.wall,
        per_volume(agent.counts),
        agent.peak_mib,
        script.wall / agent.wall
    );
    println!(
        "| netapp-ontap, sequential Python script     | {:>8.1} s | {:>19.2} | {:>6.1} MiB | {:>7.1}× |",
        script.wall,
        per_volume(script.counts),
        script.peak_mib,
        1.0
    );
    println!(
        "minimum REST calls per volume: {minimum:.0} (4 mutations + {polls_per_mutation} job poll each: the simulator answers every mutation 202 and its job has ended by the first poll)"
    );
    println!(
        "ratio to the minimum: snapwarden {:.2}× (target ≤ 1.2×), script {:.2}×; speed-up {:.1}× (target ≥ 20×)",
        per_volume(agent.counts) / minimum,
        per_volume(script.counts) / minimum,
        script.wall / agent.wall
    );
    println!(
        "snapwarden: {} of {VOLUMES} cycles completed; its wall time includes the clones' 1 s hold (expected = \"1s\", no hook); first backing snapshot {:.2} s after the window opened; per volume {}",
        agent.completed,
        agent.first_create,
        agent.counts.breakdown(VOLUMES as f64)
    );
    println!(
        "script:     per volume {}",
        script.counts.breakdown(VOLUMES as f64)
    );
    println!(
        "CPU: snapwarden {:.1} s (simulator meanwhile {:.1} s, agent start-up included); script {:.1} s (simulator meanwhile {:.1} s)",
        agent.cpu,
        sim_cpu1 - sim_cpu0,
        script.cpu,
        sim_cpu2 - sim_cpu1
    );
    assert_eq!(agent.completed, VOLUMES, "every cycle completes");
}
