//! Shared by the benchmarks: the 10,000-volume policy, peak-memory and CPU readings, child
//! processes (stopped by SIGTERM, within a bound), `simulator serve --tls` started on a world
//! file, the simulator's HTTP API ([`sim_http`]) and the journal read through `snapwarden history`.
//!
//! Each volume of [`policy`] has ONTAP's default schedules (hourly at :05, daily at 00:10, weekly
//! Sunday 00:15), lives on one of 20 clusters in 20 time zones, and has one backup window.

#![allow(dead_code)] // each bench uses a part

pub mod sim_http;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use chrono_tz::Tz;
use snapwarden::config::{
    Agent, CloneMethod, Cluster, ClusterTimezone, Copies, Endpoint, FlexCloneRule, JobSchedule,
    OnConflict, Policy, SnapshotPolicy, TlsVerify, Volume, VolumeSchedules, Window,
};
use snapwarden::timeline::{CronSpec, Recurrence};

pub const VOLUMES: usize = 10_000;
pub const ZONES: [&str; 20] = [
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

pub fn policy() -> Policy {
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
            managed: None,
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
            driver: snapwarden::config::Driver::default(),
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
            ..Agent::default()
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
                    snapmirror_label: None,
                })
                .collect(),
            max_defer: snapwarden::config::model::DEFAULT_MAX_DEFER,
        }],
        volumes,
        windows,
        veeam: vec![],
        ha: None,
        volume_ids: Default::default(),
    }
}

/// Peak resident memory of this process so far, in MiB (`VmHWM` from `/proc/self/status`).
pub fn peak_rss_mib() -> f64 {
    vm_hwm_mib("/proc/self/status")
}

/// Peak resident memory of process `pid` so far, in MiB (`VmHWM` from `/proc/<pid>/status`); 0
/// when it cannot be read.
pub fn process_peak_rss_mib(pid: u32) -> f64 {
    vm_hwm_mib(&format!("/proc/{pid}/status"))
}

fn vm_hwm_mib(status: &str) -> f64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// CPU seconds (user + system, all threads) process `pid` has used so far, from
/// `/proc/<pid>/stat`; 0 when it cannot be read.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command (which may hold spaces) end with ')': utime and stime are the
    // 14th and 15th fields of the line, the 12th and 13th after it.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Runs one approach in a fresh child process so each gets its own peak-memory figure; returns
/// the child's report line.
pub fn in_child(approach: &str) -> String {
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

/// The bench policy as a policy file, for the parse measurement.
pub fn policy_toml(policy: &Policy) -> String {
    let mut t = String::from("[agent]\nguard = \"5m\"\n\n");
    for (i, z) in ZONES.iter().enumerate() {
        let _ = writeln!(
            t,
            "[[cluster]]\nname = \"cluster{i:02}\"\nendpoint = \"simulator\"\ntimezone = \"{z}\"\n"
        );
    }
    t.push_str(
        "[[schedule]]\nname = \"hourly\"\ncron = \"5 * * * *\"\n\n\
         [[schedule]]\nname = \"daily\"\ncron = \"10 0 * * *\"\n\n\
         [[schedule]]\nname = \"weekly\"\ncron = \"15 0 * * 0\"\n\n\
         [[snapshot_policy]]\nname = \"default\"\ncopies = [\n  { schedule = \"hourly\", count = 6 },\n  \
         { schedule = \"daily\", count = 6 },\n  { schedule = \"weekly\", count = 6 },\n]\n\n",
    );
    for v in &policy.volumes {
        let _ = writeln!(
            t,
            "[[volume]]\ncluster = \"cluster{:02}\"\nsvm = \"{}\"\nname = \"{}\"\nluns = [\"{}\"]\nsnapshot_policy = \"default\"\n",
            v.cluster, v.svm, v.name, v.luns[0]
        );
    }
    for w in &policy.windows {
        let v = &policy.volumes[w.volumes[0]];
        let _ = writeln!(
            t,
            "[[window]]\nname = \"{}\"\nvolumes = [\"cluster{:02}/{}/{}\"]\nstart = \"{}\"\ntimezone = \"{}\"\nexpected = \"{}m\"\nmax = \"{}m\"\non_conflict = \"{}\"\nshift_limit = \"{}m\"\n",
            w.name,
            v.cluster,
            v.svm,
            v.name,
            w.start,
            w.timezone,
            w.expected.num_minutes(),
            w.max.num_minutes(),
            w.on_conflict.as_str(),
            w.shift_limit.num_minutes()
        );
    }
    t
}

/// A running child process, stopped when dropped — SIGTERM, then SIGKILL if it has not exited
/// within [`Proc::DROP_BOUND`] — so that a benchmark never leaves one behind, even when it
/// panics.
pub struct Proc(pub Child);

impl Proc {
    /// How long a dropped process gets to exit after SIGTERM.
    pub const DROP_BOUND: Duration = Duration::from_secs(10);

    /// Asks the process to stop (SIGTERM) and waits up to `bound` for it to exit; kills it
    /// (SIGKILL) after that. Returns how long it took to exit by itself, `None` when it was
    /// killed.
    pub fn stop(&mut self, bound: Duration) -> Option<Duration> {
        if let Ok(Some(_)) = self.0.try_wait() {
            return Some(Duration::ZERO);
        }
        let asked = Instant::now();
        // SAFETY: kill(2) on our own child, not reaped yet (try_wait found it running).
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        while asked.elapsed() < bound {
            if let Ok(Some(_)) = self.0.try_wait() {
                return Some(asked.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        None
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Self::DROP_BOUND);
    }
}

/// How long `simulator serve` gets to print its endpoints and `ready`.
const SIMULATOR_START_BOUND: Duration = Duration::from_secs(120);

/// A running `simulator serve --tls`: the process, each cluster's URL (world order) and the
/// certificate's SHA-256 fingerprint.
pub struct ServedWorld {
    pub process: Proc,
    pub clusters: Vec<(String, String)>,
    pub pin: String,
}

/// Starts `bin simulator serve --tls --clock real` on `world` and reads every cluster's URL and
/// the certificate fingerprint from its stdout, within [`SIMULATOR_START_BOUND`].
pub fn serve_world(bin: &Path, world: &Path) -> ServedWorld {
    let mut child = Command::new(bin)
        .args(["simulator", "serve", "--config"])
        .arg(world)
        .args(["--tls", "--listen", "127.0.0.1:0", "--clock", "real"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("snapwarden simulator serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let process = Proc(child);
    // A thread reads the lines (and keeps draining them afterwards, so that the simulator never
    // blocks on a full pipe); this one waits for them with a bound.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + SIMULATOR_START_BOUND;
    let (mut clusters, mut pin) = (Vec::new(), None);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!("simulator serve did not say ready within {SIMULATOR_START_BOUND:?}")
        });
        if let Some((name, url)) = line
            .strip_prefix("cluster ")
            .and_then(|rest| rest.split_once(": "))
        {
            clusters.push((name.to_string(), url.trim().to_string()));
        }
        if let Some(f) = line.strip_prefix("certificate SHA-256 fingerprint: ") {
            pin = Some(f.trim().to_string());
        }
        if line.starts_with("ready") {
            break;
        }
    }
    ServedWorld {
        process,
        clusters,
        pin: pin.expect("simulator printed its fingerprint"),
    }
}

/// [`serve_world`], returning the process, cluster `cluster`'s URL and the fingerprint.
pub fn start_simulator(bin: &Path, world: &Path, cluster: &str) -> (Proc, String, String) {
    let served = serve_world(bin, world);
    let url = served
        .clusters
        .iter()
        .find(|(name, _)| name == cluster)
        .map(|(_, url)| url.clone())
        .unwrap_or_else(|| panic!("simulator printed no URL for cluster {cluster}"));
    (served.process, url, served.pin)
}

/// How long `snapwarden history` gets to read the journal.
const HISTORY_BOUND: Duration = Duration::from_secs(120);

/// The journal's cycles planned at or after `since`, via `snapwarden history --output json`
/// (empty when it fails or takes longer than [`HISTORY_BOUND`]).
pub fn history(
    bin: &Path,
    state_dir: &Path,
    since: chrono::DateTime<chrono::Utc>,
) -> Vec<serde_json::Value> {
    let mut child = Command::new(bin)
        .args([
            "history", "--output", "json", "--limit", "1000000", "--since",
        ])
        .arg(since.to_rfc3339())
        .arg("--state-dir")
        .arg(state_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("snapwarden history runs");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut process = Proc(child);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + HISTORY_BOUND;
    while !process.exited() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ok = process.exited() && process.0.wait().is_ok_and(|s| s.success());
    drop(process); // killed here if it ran over its bound: the reader then sees the pipe end
    let out = reader.join().unwrap_or_default();
    if !ok {
        return Vec::new();
    }
    serde_json::from_slice(&out).unwrap_or_default()
}

/// An RFC 3339 instant of the journal's JSON.
pub fn instant(v: &serde_json::Value) -> Option<chrono::DateTime<chrono::Utc>> {
    v.as_str()?.parse().ok()
}
