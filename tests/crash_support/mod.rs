//! The crash test's machinery (`tests/agent_crash.rs`): the simulator process and the test's
//! reads of it, the agent process and its log, the journal's view of what may still exist, a
//! seeded source of kill delays and a bounded poll. `markers.rs` reads the agent's stage markers,
//! `watch.rs` samples the cluster through the campaign (and holds snapshots busy), `checks.rs`
//! holds the verdict's checks.

#![allow(dead_code)]

pub mod checks;
pub mod markers;
pub mod watch;

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use snapwarden::agent::cycle::Cycle;
use snapwarden::agent::journal::{Journal, ObjectKind};

use crate::process_support::{SimRest, TlsSimulator};

/// `[agent] snapshot_prefix` (the default).
pub const PREFIX: &str = "snapwarden";
pub const USER: &str = "admin";
pub const PASSWORD: &str = "crash-test-pw";
pub const PASSWORD_ENV: &str = "SNAPWARDEN_CRASH_TEST_PASSWORD";
/// The agent's log filter: its usual lines and the stage markers.
pub const LOG_FILTER: &str = "info,snapwarden::agent::stage=debug";

/// splitmix64: a seeded, reproducible source of kill delays.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => v.parse().ok(),
            };
            parsed.unwrap_or_else(|| panic!("{name}={v:?} is not a number"))
        }
        Err(_) => default,
    }
}

/// A bounded wait on a condition, checked every `every`.
pub struct Poll {
    until: Instant,
    every: Duration,
}

impl Poll {
    pub fn new(bound: Duration) -> Poll {
        Poll::every(bound, Duration::from_millis(200))
    }

    pub fn every(bound: Duration, every: Duration) -> Poll {
        Poll {
            until: Instant::now() + bound,
            every,
        }
    }

    /// Waits before the next check; `false` once the bound has passed.
    pub async fn again(&self) -> bool {
        if Instant::now() >= self.until {
            return false;
        }
        tokio::time::sleep(self.every).await;
        true
    }
}

/// A child process killed when dropped (a failing assertion leaves nothing running).
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// SIGKILL, and reaped.
    pub fn kill(mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reaped");
    }

    /// SIGTERM, then waits (at most 150 s) for exit 0.
    pub fn stop_gracefully(mut self) {
        let pid = libc::pid_t::try_from(self.0.id()).expect("a pid");
        // SAFETY: kill(2) with a pid this test spawned and has not reaped.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM sent");
        let until = Instant::now() + Duration::from_secs(150);
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                assert!(status.success(), "the agent stops with exit 0: {status}");
                return;
            }
            assert!(Instant::now() < until, "the agent stopped after SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `snapwarden simulator serve --tls --clock real` and the test's REST client for it.
pub struct Sim {
    _proc: TlsSimulator,
    pub url: String,
    pub fingerprint: String,
    rest: SimRest,
}

/// Its REST calls are [`SimRest`]'s.
impl std::ops::Deref for Sim {
    type Target = SimRest;
    fn deref(&self) -> &SimRest {
        &self.rest
    }
}

impl Sim {
    pub fn start(world: &Path, log: File) -> Sim {
        let sim = TlsSimulator::start(world, &["--clock", "real"], log);
        Sim {
            url: sim.url.clone(),
            fingerprint: sim.fingerprint.clone(),
            rest: SimRest::new(&sim.url, USER, PASSWORD),
            _proc: sim,
        }
    }

    /// Another client of the same simulator (for a task of its own).
    pub fn client(&self) -> SimRest {
        SimRest::new(&self.url, USER, PASSWORD)
    }

    pub async fn now(&self) -> DateTime<Utc> {
        now(&self.rest).await
    }

    pub async fn volume_uuid(&self, name: &str) -> String {
        let v = self.get(&format!("/api/storage/volumes?name={name}")).await;
        v["records"][0]["uuid"].as_str().expect("uuid").to_string()
    }

    /// Every snapshot and LUN of the cluster, as ONTAP lists them.
    pub async fn objects(&self) -> Objects {
        objects(&self.rest).await
    }
}

/// The simulator's clock.
pub async fn now(rest: &SimRest) -> DateTime<Utc> {
    let v = rest.get("/simulator/v1/clock").await;
    v["now"].as_str().expect("now").parse().expect("RFC 3339")
}

/// Every snapshot and LUN of the cluster, as ONTAP lists them.
pub async fn objects(rest: &SimRest) -> Objects {
    let snaps = rest
        .get(
            "/api/storage/volumes/*/snapshots?fields=name,comment,volume.name,create_time,snapmirror_label,owners",
        )
        .await;
    let luns = rest.get("/api/storage/luns?fields=name").await;
    let records = |v: &Value| v["records"].as_array().cloned().unwrap_or_default();
    let text = |v: &Value| v.as_str().map(str::to_string);
    Objects {
        snapshots: records(&snaps)
            .iter()
            .map(|s| Snap {
                uuid: s["uuid"].as_str().unwrap_or_default().to_string(),
                name: s["name"].as_str().unwrap_or_default().to_string(),
                comment: text(&s["comment"]),
                volume: s["volume"]["name"].as_str().unwrap_or_default().to_string(),
                label: text(&s["snapmirror_label"]),
                create_time: s["create_time"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .expect("every snapshot has a create_time"),
                busy: s["owners"].as_array().is_some_and(|o| !o.is_empty()),
            })
            .collect(),
        luns: records(&luns)
            .iter()
            .map(|l| Lun {
                uuid: l["uuid"].as_str().unwrap_or_default().to_string(),
                name: l["name"].as_str().unwrap_or_default().to_string(),
            })
            .collect(),
    }
}

/// Holds a snapshot busy with ONTAP owners (`["snapmirror"]`; `[]` lets it go): its delete
/// then fails as a locked snapshot's does. `false` when the snapshot is gone (a 404).
pub async fn hold(url: &str, volume: &str, snapshot_uuid: &str, owners: &[&str]) -> bool {
    let path = format!("{url}/simulator/v1/volumes/{volume}/snapshots/{snapshot_uuid}/owners");
    let resp = TlsSimulator::reader()
        .post(&path)
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({ "owners": owners }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return false;
    }
    assert!(
        status.is_success(),
        "POST {path}: {status} {}",
        resp.text().await.unwrap_or_default()
    );
    true
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snap {
    pub uuid: String,
    pub name: String,
    pub comment: Option<String>,
    pub volume: String,
    pub label: Option<String>,
    pub create_time: DateTime<Utc>,
    /// Held by an ONTAP owner (a clone, SnapMirror).
    pub busy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lun {
    pub uuid: String,
    pub name: String,
}

pub struct Objects {
    pub snapshots: Vec<Snap>,
    pub luns: Vec<Lun>,
}

/// Whether a snapshot name or LUN leaf carries snapwarden's prefix.
pub fn prefixed(leaf: &str) -> bool {
    leaf.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.starts_with('.'))
}

impl Objects {
    /// Snapshots named with snapwarden's prefix and LUNs at a clone-like path.
    pub fn snapwarden_like(&self) -> (Vec<&Snap>, Vec<&Lun>) {
        (
            self.snapshots
                .iter()
                .filter(|s| prefixed(&s.name))
                .collect(),
            self.luns
                .iter()
                .filter(|l| l.name.rsplit('/').next().is_some_and(prefixed))
                .collect(),
        )
    }
}

/// What the journal says may still exist: `(volume, snapshot name)` and LUN paths of open
/// cycles, with those cycles.
pub struct Live {
    pub cycles: Vec<Cycle>,
    pub snapshots: BTreeSet<(String, String)>,
    pub luns: BTreeSet<String>,
}

/// The journal, read-only; `None` before the first agent made it.
pub fn journal(state_dir: &Path) -> Option<Journal> {
    state_dir
        .join(snapwarden::agent::journal::FILE_NAME)
        .exists()
        .then(|| Journal::open_read_only(state_dir).expect("the journal opens"))
}

pub fn live(state_dir: &Path) -> Live {
    let mut out = Live {
        cycles: Vec::new(),
        snapshots: BTreeSet::new(),
        luns: BTreeSet::new(),
    };
    let Some(journal) = journal(state_dir) else {
        return out;
    };
    out.cycles = journal.open_cycles().expect("open cycles");
    for c in &out.cycles {
        for o in journal.objects(&c.id).expect("objects") {
            if !o.state.may_exist() {
                continue;
            }
            match o.kind {
                ObjectKind::Snapshot => {
                    out.snapshots.insert((o.volume.clone(), o.name.clone()));
                }
                ObjectKind::Lun => {
                    out.luns.insert(o.name.clone());
                }
            }
        }
    }
    out
}

/// Hooks of this test's agents still running: processes (not zombies) whose environment names
/// a cycle file in the state directory.
fn running_hooks(state_dir: &Path) -> Vec<u32> {
    let marker = format!(
        "SNAPWARDEN_CYCLE_JSON={}",
        state_dir.join("hooks").display()
    );
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            });
            let ours = std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|v| v.starts_with(marker.as_bytes()))
            });
            !zombie && ours
        })
        .collect()
}

/// A killed agent's hooks end with it (they would run on against clones the next start deletes).
pub async fn assert_no_hook_outlives_its_agent(state_dir: &Path) {
    let poll = Poll::new(Duration::from_secs(2));
    loop {
        let left = running_hooks(state_dir);
        if left.is_empty() {
            return;
        }
        assert!(
            poll.again().await,
            "hooks outlived their agent: pids {left:?}"
        );
    }
}

/// The test's working files.
pub struct Files {
    pub dir: PathBuf,
    pub state: PathBuf,
    pub policy: PathBuf,
    /// Every run's log, one after the other, each after a `===== <header>` line.
    pub log: PathBuf,
}

impl Files {
    pub fn new(dir: &Path) -> Files {
        Files {
            dir: dir.to_path_buf(),
            state: dir.join("state"),
            policy: dir.join("policy.toml"),
            log: dir.join("agent.log"),
        }
    }

    /// The log opened for appending, after a header line; with the offset where the run's own
    /// lines begin.
    fn agent_log(&self, header: &str) -> (File, u64) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("agent log");
        writeln!(f, "===== {header}").expect("agent log");
        let offset = f.metadata().expect("agent log").len();
        (f, offset)
    }
}

/// `snapwarden run` on the test's policy and state, its log appended to `agent.log`; with the
/// offset of its first line there.
pub fn spawn_agent(files: &Files, header: &str) -> (Proc, u64) {
    let (log, offset) = files.agent_log(header);
    let child = Command::new(env!("CARGO_BIN_EXE_snapwarden"))
        .args(["run", "--config"])
        .arg(&files.policy)
        .arg("--state-dir")
        .arg(&files.state)
        .env(PASSWORD_ENV, PASSWORD)
        .env("SNAPWARDEN_LOG", LOG_FILTER)
        .current_dir(&files.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A file, not a pipe: hooks outlive a killed agent and would hold a pipe open.
        .stderr(log)
        .spawn()
        .expect("snapwarden run starts");
    (Proc(child), offset)
}
