//! The `run` half of the scaling bench: `snapwarden run` (release build) on N volumes against
//! `snapwarden simulator serve --tls --clock real`, in real time, each size on its own
//! simulator and agent.
//!
//! Per size: write the world and policy of [`estate`] (windows from the first one on, spread
//! over 30 minutes; no hook, the clone held for `expected`), start the simulator, measure the
//! lifecycle's minimum by hand ([`minimum`]), start the agent, and wait for its first pass.
//! Then two phases, each read as CPU seconds (`/proc/PID/stat`) of the agent and the
//! simulator and the simulator's request counter at its ends:
//! * idle — from the first pass to the first window: no cycle due, the agent only observes;
//! * run — from the first window for `SNAPWARDEN_BENCH_RUN_SECONDS` (default 600).
//!
//! At the run's end the agent's peak RSS (`VmHWM`) is read, the agent is stopped (SIGTERM; it
//! releases what is in flight within its `shutdown_timeout`) and its journal read
//! (`snapwarden history`): cycles started and completed within the run, and the most in flight
//! at once (from each cycle's `created_at` to its `released_at`).
//!
//! The minimum a run's requests are held against: the measured calls of a cycle's create half
//! for every cycle started, those of its release half for every cycle released, and one listing
//! of each cluster's snapshots and LUNs (in pages of the client's `max_records`) per
//! `observe_interval` of the run — the lifecycle's minimum plus discovery at `observe_interval`.

mod estate;
mod minimum;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use crate::common::sim_http::{Counts, SimHttp};
use crate::common::{
    cpu_seconds, free_port, history, instant, process_peak_rss_mib, serve_world, Proc,
};
use estate::{minute_ceil, Estate, CLUSTERS, PASSWORD, PASSWORD_ENV, USER};
use minimum::Minimum;

pub const SIZES: [usize; 3] = [500, 2_000, 10_000];
const RUN_SECONDS: i64 = 600;
const IDLE_SECONDS: i64 = 60;
/// The hold of a run of the default length: ~4 minutes, so that 1,000+ cycles are in flight at
/// 10,000 volumes.
const HOLD: TimeDelta = TimeDelta::minutes(4);
/// Phases shorter than this are not reported (too few ticks of CPU time to mean anything).
const SHORTEST_PHASE: TimeDelta = TimeDelta::seconds(10);

/// The phases' lengths, from the environment.
struct Settings {
    run: TimeDelta,
    idle: TimeDelta,
    /// How long each cycle holds its clone: [`HOLD`], or two fifths of a shorter run so that
    /// cycles complete within it.
    hold: TimeDelta,
}

fn settings() -> Settings {
    let seconds = |name: &str, default: i64, range: std::ops::RangeInclusive<i64>| {
        let v = std::env::var(name).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number of seconds"))
        });
        assert!(range.contains(&v), "{name}={v}: must be in {range:?}");
        TimeDelta::seconds(v)
    };
    let run = seconds("SNAPWARDEN_BENCH_RUN_SECONDS", RUN_SECONDS, 60..=1800);
    let idle = seconds("SNAPWARDEN_BENCH_IDLE_SECONDS", IDLE_SECONDS, 0..=600);
    let hold = (run * 2 / 5).min(HOLD);
    Settings { run, idle, hold }
}

/// The agent's time to start (discovery of every cluster, the first plan and pass) before the
/// idle phase: generous, so that the idle phase gets its length.
fn startup_allowance(volumes: usize) -> TimeDelta {
    TimeDelta::seconds(20) + TimeDelta::milliseconds(5 * volumes as i64)
}

/// The agent, the simulator and the counter at one instant.
#[derive(Clone, Copy)]
struct Sample {
    at: DateTime<Utc>,
    agent_cpu: f64,
    sim_cpu: f64,
    counts: Counts,
}

fn sample(sim: &SimHttp, agent: &Proc, simulator: &Proc) -> Sample {
    Sample {
        at: Utc::now(),
        agent_cpu: cpu_seconds(agent.0.id()),
        sim_cpu: cpu_seconds(simulator.0.id()),
        counts: sim.requests(),
    }
}

/// What happened between two samples.
struct Phase {
    seconds: f64,
    agent_cpu: f64,
    sim_cpu: f64,
    counts: Counts,
}

impl Phase {
    fn between(a: Sample, b: Sample) -> Phase {
        Phase {
            seconds: seconds(b.at - a.at),
            agent_cpu: b.agent_cpu - a.agent_cpu,
            sim_cpu: b.sim_cpu - a.sim_cpu,
            counts: b.counts.since(a.counts),
        }
    }

    fn agent_percent(&self) -> f64 {
        100.0 * self.agent_cpu / self.seconds.max(1e-9)
    }

    fn sim_percent(&self) -> f64 {
        100.0 * self.sim_cpu / self.seconds.max(1e-9)
    }

    fn requests_per_minute(&self) -> f64 {
        60.0 * self.counts.total as f64 / self.seconds.max(1e-9)
    }
}

fn seconds(d: TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1e3
}

/// The cycles of the run, from the journal.
#[derive(Default)]
struct Tally {
    /// Backing snapshot created within the run.
    started: usize,
    /// Released within the run with result `completed`.
    completed: usize,
    /// Released within the run, whatever the result.
    released: usize,
    /// Results other than `completed` within the run, by result.
    other: BTreeMap<String, usize>,
    peak_in_flight: usize,
    in_flight_at_end: usize,
    /// Seconds from each started cycle's window start to its backing snapshot, sorted.
    start_delays: Vec<f64>,
}

impl Tally {
    /// The median and the longest delay from a window's start to its backing snapshot.
    fn start_delay(&self) -> Option<(f64, f64)> {
        let d = &self.start_delays;
        Some((*d.get(d.len() / 2)?, *d.last()?))
    }
}

fn tally(cycles: &[Value], end: DateTime<Utc>) -> Tally {
    let mut t = Tally::default();
    let mut events = Vec::new();
    for c in cycles {
        let created = instant(&c["created_at"]).filter(|&a| a <= end);
        let released = instant(&c["released_at"]).filter(|&r| r <= end);
        let result = c["result"].as_str();
        if let Some(created) = created {
            t.started += 1;
            if let Some(w) = instant(&c["window_start"]) {
                t.start_delays.push(seconds(created - w));
            }
            events.push((created, 1i64));
            match released {
                Some(r) => {
                    t.released += 1;
                    events.push((r, -1));
                }
                None => t.in_flight_at_end += 1,
            }
        }
        match (
            result,
            released.or(instant(&c["window_start"]).filter(|&w| w <= end)),
        ) {
            (Some("completed"), _) if released.is_some() => t.completed += 1,
            (Some(other), Some(_)) if other != "completed" => {
                *t.other.entry(other.to_string()).or_default() += 1
            }
            _ => {}
        }
    }
    t.start_delays.sort_by(f64::total_cmp);
    // At the same instant a release counts before a create.
    events.sort();
    let mut live = 0i64;
    for (_, delta) in events {
        live += delta;
        t.peak_in_flight = t.peak_in_flight.max(live as usize);
    }
    t
}

/// One size's figures.
struct Row {
    volumes: usize,
    tally: Tally,
    startup: Phase,
    idle: Option<Phase>,
    run: Phase,
    peak_rss_mib: f64,
    /// The agent's peak RSS once its first pass was published.
    startup_rss_mib: f64,
    minimum: Minimum,
    /// Discovery's share of the minimum: listings per `observe_interval`, over the run.
    discovery_minimum: u64,
    /// SIGTERM to exit; `None` when the agent had to be killed.
    shutdown: Option<Duration>,
}

impl Row {
    fn minimum_total(&self) -> u64 {
        self.minimum.create.total * self.tally.started as u64
            + self.minimum.release.total * self.tally.released as u64
            + self.discovery_minimum
    }
}

/// Listings of every cluster's snapshots and LUNs, once per `observe_interval` of the run, in
/// pages of the client's `max_records`: the estate's LUNs and its snapshots at the start
/// (backing snapshots and clones in flight left out, so this is a floor).
fn discovery_minimum(estate: &Estate, run: TimeDelta) -> u64 {
    let page = u64::from(snapwarden::ontap::client::DEFAULT_MAX_RECORDS);
    let per_round: u64 = (0..CLUSTERS.len())
        .map(|c| {
            let luns = (estate.volumes_on(c) + usize::from(c == 0)) as u64;
            let snapshots = luns * Estate::snapshots_per_volume() as u64;
            luns.div_ceil(page).max(1) + snapshots.div_ceil(page).max(1)
        })
        .sum();
    let observe = snapwarden::config::Agent::default().observe_interval;
    let rounds = (run.num_seconds() as u64).div_ceil(observe.num_seconds().max(1) as u64);
    per_round * rounds
}

/// Sleeps until `t`, in steps of at most a second, and panics if the agent exits meanwhile.
fn sleep_until(t: DateTime<Utc>, agent: &mut Proc, log: &Path) {
    loop {
        assert!(!agent.exited(), "the agent exited; see {}", log.display());
        let left = t - Utc::now();
        if left <= TimeDelta::zero() {
            return;
        }
        let step = left
            .to_std()
            .unwrap_or_default()
            .min(Duration::from_secs(1));
        std::thread::sleep(step);
    }
}

/// Waits, until `deadline`, for the agent's first published pass.
fn wait_first_pass(
    sim: &SimHttp,
    agent: &mut Proc,
    listen: u16,
    deadline: DateTime<Utc>,
    log: &Path,
) {
    let url = format!("http://127.0.0.1:{listen}/api/v1/status");
    loop {
        assert!(
            !agent.exited(),
            "the agent exited before its first pass; see {}",
            log.display()
        );
        let published = sim
            .json_at(&url)
            .is_some_and(|s| s["generated_at"].is_string());
        if published {
            return;
        }
        assert!(
            Utc::now() < deadline,
            "the agent published no pass before the first window; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// heaptrack's preload library, as Debian's `heaptrack` package installs it.
const HEAPTRACK_PRELOAD: &str = "/usr/lib/heaptrack/libheaptrack_preload.so";

/// With `SNAPWARDEN_BENCH_AGENT_HEAPTRACK=PATH`, the agent runs under heaptrack (its own pid
/// kept, so that the figures are still its own), writing heaptrack's raw data to `PATH`: a
/// FIFO read by `heaptrack_interpret | gzip` gives the file `heaptrack_print` reads.
fn heaptrack_env() -> Vec<(&'static str, String)> {
    std::env::var("SNAPWARDEN_BENCH_AGENT_HEAPTRACK")
        .map(|raw| {
            vec![
                ("LD_PRELOAD", HEAPTRACK_PRELOAD.to_string()),
                ("DUMP_HEAPTRACK_OUTPUT", raw),
            ]
        })
        .unwrap_or_default()
}

/// Measures one size.
fn measure(volumes: usize, s: &Settings) -> Row {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_snapwarden"));
    let dir = tempfile::tempdir().expect("temp dir");
    let now = Utc::now();
    let first = minute_ceil(now + startup_allowance(volumes) + s.idle);
    let estate = Estate::new(volumes, now, first, s.hold);
    let world = dir.path().join("world.toml");
    std::fs::write(&world, estate.world_toml()).expect("write world");
    let served = serve_world(&bin, &world);
    let sim = SimHttp::new(&served.clusters[0].1, USER, PASSWORD);
    let minimum = minimum::measure(&sim);

    let state_dir = dir.path().join("state");
    std::fs::create_dir_all(&state_dir).expect("state dir");
    let listen = free_port();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        estate.policy_toml(listen, &state_dir, &served.clusters, &served.pin),
    )
    .expect("write policy");
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("scale-run-{volumes}-agent.log"));
    let log_file = std::fs::File::create(&log).expect("agent log");
    let before = Sample {
        at: Utc::now(),
        agent_cpu: 0.0,
        sim_cpu: cpu_seconds(served.process.0.id()),
        counts: sim.requests(),
    };
    let mut agent = Proc(
        Command::new(&bin)
            .args(["run", "--config"])
            .arg(&policy)
            .arg("--state-dir")
            .arg(&state_dir)
            .env(PASSWORD_ENV, PASSWORD)
            .envs(heaptrack_env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("snapwarden run starts"),
    );
    eprintln!(
        "{volumes} volumes: agent pid {}, first window at {first}, run until {} (log: {})",
        agent.0.id(),
        first + s.run,
        log.display()
    );
    wait_first_pass(
        &sim,
        &mut agent,
        listen,
        first - TimeDelta::seconds(5),
        &log,
    );
    let started = sample(&sim, &agent, &served.process);
    let startup_rss_mib = process_peak_rss_mib(agent.0.id());
    sleep_until(started.at + TimeDelta::seconds(2), &mut agent, &log);
    let idle_from = sample(&sim, &agent, &served.process);
    sleep_until(first - TimeDelta::seconds(1), &mut agent, &log);
    let idle_to = sample(&sim, &agent, &served.process);
    let end = first + s.run;
    sleep_until(end, &mut agent, &log);
    let ended = sample(&sim, &agent, &served.process);
    let peak_rss_mib = process_peak_rss_mib(agent.0.id());
    let shutdown_bound =
        snapwarden::config::Agent::default().shutdown_timeout + TimeDelta::seconds(30);
    let shutdown = agent.stop(shutdown_bound.to_std().expect("a positive bound"));
    let cycles = history(&bin, &state_dir, first - TimeDelta::minutes(1));
    Row {
        volumes,
        tally: tally(&cycles, ended.at),
        startup: Phase::between(before, started),
        idle: (idle_to.at - idle_from.at >= SHORTEST_PHASE)
            .then(|| Phase::between(idle_from, idle_to)),
        run: Phase::between(idle_to, ended),
        peak_rss_mib,
        startup_rss_mib,
        minimum,
        discovery_minimum: discovery_minimum(&estate, ended.at - idle_to.at),
        shutdown,
    }
}

fn print_row(r: &Row) {
    let completed = r.tally.completed.max(1) as f64;
    let idle = r
        .idle
        .as_ref()
        .map_or("n/a".to_string(), |p| format!("{:.2} %", p.agent_percent()));
    println!(
        "| {} | {} | {} | {} | {:.2} % | {idle} | {:.0} MiB | {} | {:.2} | {:.2} | {:.2}× |",
        r.volumes,
        r.tally.started,
        r.tally.completed,
        r.tally.peak_in_flight,
        r.run.agent_percent(),
        r.peak_rss_mib,
        r.run.counts.total,
        r.run.counts.total as f64 / completed,
        r.minimum_total() as f64 / completed,
        r.run.counts.total as f64 / r.minimum_total().max(1) as f64
    );
}

fn notes(r: &Row) -> Vec<String> {
    let v = r.volumes;
    let mut n = vec![format!(
        "{v} volumes: start-up {:.1} s to the first pass, {} requests, {:.1} CPU s, peak RSS {:.0} MiB by then",
        r.startup.seconds, r.startup.counts.total, r.startup.agent_cpu, r.startup_rss_mib
    )];
    if let Some(idle) = &r.idle {
        n.push(format!(
            "{v} volumes: idle {:.0} s: agent {:.2} CPU s, {:.0} requests/min ({} in all), simulator CPU {:.1} %",
            idle.seconds,
            idle.agent_cpu,
            idle.requests_per_minute(),
            idle.counts.total,
            idle.sim_percent()
        ));
    }
    n.push(format!(
        "{v} volumes: run {:.0} s: agent {:.1} CPU s, simulator CPU {:.1} %; window start to backing snapshot {}; \
         {} in flight at the end; shutdown (SIGTERM to exit) {}",
        r.run.seconds,
        r.run.agent_cpu,
        r.run.sim_percent(),
        r.tally.start_delay().map_or("n/a".to_string(), |(median, max)| format!(
            "median {median:.1} s, longest {max:.1} s"
        )),
        r.tally.in_flight_at_end,
        r.shutdown.map_or("killed after its bound".to_string(), |d| format!(
            "{:.1} s",
            d.as_secs_f64()
        ))
    ));
    n.push(format!(
        "{v} volumes: requests per completed cycle: {}; minimum {} + discovery {} = {}",
        r.run.counts.breakdown(r.tally.completed as f64),
        r.minimum.describe(r.tally.started, r.tally.released),
        r.discovery_minimum,
        r.minimum_total()
    ));
    if !r.tally.other.is_empty() {
        n.push(format!(
            "{v} volumes: cycles not completed: {:?}",
            r.tally.other
        ));
    }
    n
}

/// Measures each size in turn and prints the table, then the notes.
pub fn table(sizes: &[usize]) {
    let s = settings();
    println!(
        "\nsnapwarden run against simulator serve --tls, {} s from the first window (idle phase \
         before it: {} s asked), windows spread over {} minutes, clone hold {} s, no hook; \
         each size on its own simulator and agent\n",
        s.run.num_seconds(),
        s.idle.num_seconds(),
        estate::SPREAD_MINUTES,
        s.hold.num_seconds()
    );
    println!(
        "| volumes | cycles started | cycles completed | in flight at peak | agent CPU, run | \
         agent CPU, idle | peak RSS | REST requests | per completed cycle | minimum per completed cycle | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut all = Vec::new();
    for &volumes in sizes {
        let row = measure(volumes, &s);
        print_row(&row);
        all.extend(notes(&row));
    }
    println!();
    for n in all {
        println!("{n}");
    }
    println!(
        "targets at 10,000 volumes: peak RSS < 150 MB, CPU < 2 % of one core over 10 minutes, \
         requests ≤ 1.2× the minimum, idle CPU ≈ 0"
    );
}
