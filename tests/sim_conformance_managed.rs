//! NetApp's official Python client sees the snapshots snapwarden takes for a managed schedule:
//! `snapwarden run` takes a volume's scheduled snapshots itself (`managed_snapshots`) against
//! `snapwarden simulator serve --tls --clock real`, then `tests/conformance/managed_snapshots.py`
//! lists them through `netapp_ontap` and checks names, labels, comments and counts.
//!
//! The cluster is in Asia/Kolkata (UTC+05:30), so names carry the local time ONTAP would give
//! them. Its volume `vol1` has ONTAP's policy `none`; the policy hands it two copies: every
//! minute (count 3, label `minutely`) and every two minutes (count 2, label `two_min`). The volume
//! starts with the snapshots ONTAP took before the hand-over (three and two), so the first take
//! rotates at once; the test waits (on the journal) for a take at a minute instant while the agent
//! runs, and for both series at their counts, then stops the agent. The expected series are the
//! newest `count` of ONTAP's and snapwarden's snapshots together: rotation deleted the oldest,
//! ONTAP's included, and nothing else (look-alikes beside the series stay). Real time, so the test
//! lasts up to a minute and a half: the wait for the next minute instant.
//!
//! The interpreter is `SNAPWARDEN_TEST_PYTHON` (`scripts/test` sets it to its venv).

mod process_support;

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use process_support::{netapp_python, output_within, KillOnDrop, TlsSimulator};
use serde_json::json;
use snapwarden::agent::journal::{Journal, ManagedRecord, ObjectState};

const USER: &str = "admin";
const PASSWORD: &str = "managed-conformance-pw";
const PASSWORD_ENV: &str = "SNAPWARDEN_MANAGED_CONFORMANCE_PASSWORD";
const ZONE: &str = "Asia/Kolkata";
const UTC_OFFSET_MINUTES: i64 = 330;
const HANDED_OVER_COMMENT: &str = "taken by ONTAP before the hand-over";
/// How long the Python script may take (it lists a dozen snapshots).
const SCRIPT_BOUND: Duration = Duration::from_secs(120);
/// Names beside the series that follow no copy's exact pattern.
const LOOKALIKES: [&str; 3] = [
    "minutely.backup",
    "minutely.2026-01-01_0000.1",
    "two_minx.2026-01-01_0000",
];

/// A managed copy: prefix (the schedule's name), cron, count, label.
struct Copy {
    prefix: &'static str,
    cron: &'static str,
    count: usize,
    /// Minutes between instants.
    every: i64,
}

const COPIES: [Copy; 2] = [
    Copy {
        prefix: "minutely",
        cron: "* * * * *",
        count: 3,
        every: 1,
    },
    Copy {
        prefix: "two_min",
        cron: "*/2 * * * *",
        count: 2,
        every: 2,
    },
];

/// The snapshots ONTAP took of `copy` before the hand-over: `copy.count` instants, the newest
/// two minutes or more before `now` (name, instant).
fn handed_over(copy: &Copy, now: DateTime<Utc>) -> Vec<(String, DateTime<Utc>)> {
    let tz: Tz = ZONE.parse().expect("a zone");
    let newest =
        now.duration_trunc(TimeDelta::minutes(1)).expect("a minute") - TimeDelta::minutes(2);
    // The copy's last instant at or before `newest` (every two minutes: an even local minute,
    // and Kolkata's half-hour offset keeps UTC's even minutes even).
    let newest = newest - TimeDelta::minutes(i64::from(newest.minute()) % copy.every);
    (0..copy.count)
        .rev()
        .map(|i| {
            let at = newest - TimeDelta::minutes(copy.every * i64::try_from(i).expect("small"));
            let name = format!(
                "{}.{}",
                copy.prefix,
                at.with_timezone(&tz).format("%Y-%m-%d_%H%M")
            );
            (name, at)
        })
        .collect()
}

fn world(handed_over: &[Vec<(String, DateTime<Utc>)>]) -> String {
    let mut snapshots = String::new();
    for (copy, taken) in COPIES.iter().zip(handed_over) {
        for (name, at) in taken {
            snapshots.push_str(&format!(
                "[[clusters.svms.volumes.snapshots]]\nname = \"{name}\"\ncomment = \"{HANDED_OVER_COMMENT}\"\nsnapmirror_label = \"{}\"\ncreate_time = \"{}\"\n\n",
                copy.prefix,
                at.to_rfc3339()
            ));
        }
    }
    for name in LOOKALIKES {
        snapshots.push_str(&format!(
            "[[clusters.svms.volumes.snapshots]]\nname = \"{name}\"\ncomment = \"made by hand\"\n\n"
        ));
    }
    format!(
        r#"[[users]]
name = "{USER}"
password = "{PASSWORD}"

[[clusters]]
name = "c1"
timezone = "{ZONE}"
licenses = ["snaprestore"]

[[clusters.svms]]
name = "svm1"

[[clusters.svms.volumes]]
name = "vol1"
snapshot_policy = "none"
luns = [{{ name = "lun1" }}]

{snapshots}"#
    )
}

fn policy(url: &str, fingerprint: &str) -> String {
    let schedules: String = COPIES
        .iter()
        .map(|c| {
            format!(
                "[[schedule]]\nname = \"{}\"\ncron = \"{}\"\n\n",
                c.prefix, c.cron
            )
        })
        .collect();
    let copies: Vec<String> = COPIES
        .iter()
        .map(|c| {
            format!(
                "{{ schedule = \"{0}\", count = {1}, snapmirror_label = \"{0}\" }}",
                c.prefix, c.count
            )
        })
        .collect();
    format!(
        r#"[agent]
listen = "127.0.0.1:0"

[[cluster]]
name = "c1"
endpoint = "{url}"
username = "{USER}"
password_env = "{PASSWORD_ENV}"
pin_sha256 = "{fingerprint}"
timezone = "auto"

{schedules}[[snapshot_policy]]
name = "none"
copies = []

[[snapshot_policy]]
name = "handed-over"
copies = [{}]

[[volume]]
cluster = "c1"
svm = "svm1"
name = "vol1"
luns = ["/vol/vol1/lun1"]
snapshot_policy = "none"
managed_snapshots = "handed-over"
"#,
        copies.join(", ")
    )
}

/// The journal's managed takes, once the journal exists.
fn takes(state: &std::path::Path) -> Vec<ManagedRecord> {
    if !state.join(snapwarden::agent::journal::FILE_NAME).exists() {
        return Vec::new();
    }
    Journal::open_read_only(state)
        .expect("the journal opens")
        .managed(DateTime::<Utc>::MIN_UTC, false)
        .expect("managed takes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_sees_the_managed_snapshots() {
    let python = netapp_python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let handed_over: Vec<Vec<(String, DateTime<Utc>)>> =
        COPIES.iter().map(|c| handed_over(c, Utc::now())).collect();
    let world_path = tmp.path().join("world.toml");
    std::fs::write(&world_path, world(&handed_over)).expect("world");
    let sim = TlsSimulator::start(
        &world_path,
        &["--clock", "real"],
        File::create(tmp.path().join("sim.log")).expect("sim log"),
    );
    let policy_path = tmp.path().join("policy.toml");
    std::fs::write(&policy_path, policy(&sim.url, &sim.fingerprint)).expect("policy");
    let state = tmp.path().join("state");
    let log = tmp.path().join("agent.log");
    let mut agent = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_snapwarden"))
            .args(["run", "--config"])
            .arg(&policy_path)
            .arg("--state-dir")
            .arg(&state)
            .env(PASSWORD_ENV, PASSWORD)
            .env("SNAPWARDEN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("agent log"))
            .spawn()
            .expect("snapwarden run starts"),
    );

    // A take at an instant while the agent ran (not only the one for the instants it missed),
    // every take settled, and both series rotated down to their counts.
    let rest = process_support::SimRest::new(&sim.url, USER, PASSWORD);
    let until = Instant::now() + Duration::from_secs(150);
    let taken = loop {
        let takes = takes(&state);
        let on_time = takes.iter().any(|t| {
            t.prefix == "minutely" && t.reason == "on_time" && t.state == ObjectState::Created
        });
        let settled = takes.iter().all(|t| t.state != ObjectState::Intent);
        let listed = rest
            .get("/api/storage/volumes/*/snapshots?volume.name=vol1&fields=name")
            .await;
        let names: Vec<&str> = listed["records"]
            .as_array()
            .map(|r| r.iter().filter_map(|s| s["name"].as_str()).collect())
            .unwrap_or_default();
        let at_count = COPIES.iter().all(|c| {
            let pattern = |n: &str| {
                n.strip_prefix(c.prefix)
                    .and_then(|r| r.strip_prefix('.'))
                    .is_some_and(|stamp| {
                        chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d_%H%M").is_ok()
                            && stamp.len() == 15
                    })
            };
            names.iter().filter(|n| pattern(n)).count() == c.count
        });
        if on_time && settled && at_count {
            break takes;
        }
        assert!(
            Instant::now() < until,
            "within 150 s snapwarden took a managed snapshot at a minute instant and rotated both series to their counts: takes {takes:?}, listed {names:?}; log {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let pid = libc::pid_t::try_from(agent.id()).expect("a pid");
    // SAFETY: kill(2) with a pid this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM sent");
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = agent.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < until, "the agent stopped after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "the agent stops with exit 0: {status}");

    // The series: the newest `count` of ONTAP's and snapwarden's snapshots of each copy.
    let copies: Vec<serde_json::Value> = COPIES
        .iter()
        .zip(&handed_over)
        .map(|(c, ontap)| {
            let ours: Vec<&ManagedRecord> = taken
                .iter()
                .filter(|t| t.prefix == c.prefix && t.state == ObjectState::Created)
                .collect();
            assert!(
                ontap.len() + ours.len() > c.count,
                "{}: more snapshots were made than the count keeps, so rotation deleted some",
                c.prefix
            );
            let mut all: Vec<(DateTime<Utc>, String)> = ontap
                .iter()
                .map(|(n, at)| (*at, n.clone()))
                .chain(ours.iter().map(|t| (t.asked_at, t.name.clone())))
                .collect();
            all.sort();
            let series: Vec<&String> = all.iter().rev().take(c.count).map(|(_, n)| n).collect();
            json!({
                "prefix": c.prefix,
                "label": c.prefix,
                "count": c.count,
                "series": series,
                "taken": ours.iter().map(|t| &t.name).collect::<Vec<_>>(),
                "handed_over_comment": HANDED_OVER_COMMENT,
            })
        })
        .collect();
    let expected = json!({
        "volume": "vol1",
        "utc_offset_minutes": UTC_OFFSET_MINUTES,
        "untouched": LOOKALIKES,
        "copies": copies,
    })
    .to_string();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/managed_snapshots.py"
    );
    let port = sim
        .url
        .rsplit(':')
        .next()
        .expect("a port")
        .trim_end_matches('/')
        .to_string();
    let output = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(python);
        cmd.args([
            script,
            "127.0.0.1",
            &port,
            USER,
            PASSWORD,
            "https",
            &expected,
        ]);
        output_within(cmd, SCRIPT_BOUND)
    })
    .await
    .expect("the script ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the official client sees the managed snapshots otherwise (exit {:?}):\n{stdout}\n{stderr}",
        output.status.code()
    );
    assert!(stdout.contains("managed snapshots: OK"), "{stdout}");
    println!("{stdout}");
}
