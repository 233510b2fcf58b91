//! Shared by the benchmarks: the 10,000-volume policy, peak-memory reading, child processes and
//! `simulator serve --tls` started on a world file.
//!
//! Each volume has ONTAP's default schedules (hourly at :05, daily at 00:10, weekly Sunday 00:15),
//! lives on one of 20 clusters in 20 time zones, and has one backup window.

#![allow(dead_code)] // each bench uses a part

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
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

/// A running child process, killed when dropped (a benchmark never leaves one behind).
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `bin simulator serve --tls --clock real` on `world` and reads cluster `cluster`'s URL
/// and the certificate fingerprint from its stdout.
pub fn start_simulator(bin: &Path, world: &Path, cluster: &str) -> (Proc, String, String) {
    let mut child = Command::new(bin)
        .args(["simulator", "serve", "--config"])
        .arg(world)
        .args(["--tls", "--listen", "127.0.0.1:0", "--clock", "real"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("snapwarden simulator serve starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut url, mut pin) = (None, None);
    let prefix = format!("cluster {cluster}: ");
    for line in lines.by_ref() {
        let line = line.expect("simulator stdout");
        if let Some(u) = line.strip_prefix(&prefix) {
            url = Some(u.trim().to_string());
        }
        if let Some(f) = line.strip_prefix("certificate SHA-256 fingerprint: ") {
            pin = Some(f.trim().to_string());
        }
        if line.starts_with("ready") {
            break;
        }
    }
    // Keep draining stdout so the simulator never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (
        Proc(child),
        url.expect("simulator printed its URL"),
        pin.expect("simulator printed its fingerprint"),
    )
}
