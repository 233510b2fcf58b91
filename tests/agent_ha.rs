//! High availability: two `snapwarden run` replicas elect a leader on a real
//! 3-member etcd cluster (Debian's `etcd-server`, started here on loopback with temporary data
//! directories, killed when a test ends) and share one `snapwarden simulator serve` world.
//!
//! Each scenario has its own etcd, simulator and replicas; the three with a cycle in flight run
//! side by side in one test, so the file costs one wait for the next minute (cron's resolution)
//! plus some 15 seconds: under 90 s.
//!
//! - one leader; stopping one etcd member changes nothing;
//! - the leader killed with SIGKILL in the middle of a cycle: the standby leads within
//!   `lease_ttl` and a pass, adopts the orphaned cycle from ONTAP and releases it;
//! - the leader stopped with SIGSTOP past its lease: the standby takes over; after SIGCONT the old
//!   leader mutates nothing (the simulator's request counters stay still, its journal records no
//!   action) although its cycle's release came due while it slept;
//! - two etcd members stopped (quorum lost): the leader steps down and nothing is mutated, even
//!   the release that comes due, until quorum returns; then the release happens.
//!
//! Also: the elector logs in to etcd with the policy's user and password (etcd's authentication
//! turned on with `etcdctl`), and one with a wrong password never leads; over HTTPS it verifies
//! the member's certificate with `ca_file`, and one pinned to another certificate never leads.
//!
//! In every scenario: each backing snapshot is created once (across both replicas' journals),
//! nothing snapwarden-like is left on the cluster, and the look-alikes and the user snapshot are
//! untouched (among them an old snapshot with snapwarden's marker, which a new leader must not
//! adopt).
//!
//! The window starts every minute (cron's resolution) and holds its clone for a few seconds
//! without a hook; `lease_ttl` is 2 s. `SNAPWARDEN_HA_FAILOVER_RUNS=N` makes the failover-time
//! test kill the leader N times (default 1) and print the table `scripts/bench-failover` shows.

mod process_support;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use process_support::{free_port, http, installed, KillOnDrop, SimRest, TlsSimulator};
use serde_json::{json, Value};

const PASSWORD: &str = "ha-test-pw";
const PASSWORD_ENV: &str = "SNAPWARDEN_HA_TEST_PASSWORD";
const PREFIX: &str = "snapwarden";
/// `[ha] lease_ttl`, seconds.
const LEASE_TTL: u64 = 2;
/// Look-alikes: a prefixed snapshot without the marker, an old one with snapwarden's marker of a
/// cycle no journal knows (outside any pass's lookback), a user snapshot, a clone-like LUN.
const LOOKALIKE_NO_MARKER: &str = "snapwarden.w.20200101T000000Z";
const LOOKALIKE_OLD_MARKER: &str = "snapwarden.w.20200101T000100Z";
const OLD_MARKER: &str =
    "created-by=snapwarden cycle=6d1c7f4e-0000-4000-8000-000000000000 window=w";
const USER_SNAPSHOT: &str = "before-upgrade";
const LOOKALIKE_LUN: &str = "snapwarden.w.20200101T000000Z.lun0";

/// Waits on a condition, at most `bound`.
struct Poll {
    until: Instant,
}

impl Poll {
    fn new(bound: Duration) -> Poll {
        Poll {
            until: Instant::now() + bound,
        }
    }

    /// Waits before the next check; `false` once the bound has passed.
    async fn again(&self) -> bool {
        if Instant::now() >= self.until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        true
    }
}

/// A 3-member etcd cluster on loopback.
struct Etcd {
    dir: PathBuf,
    members: Vec<Member>,
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    proc: Option<KillOnDrop>,
}

impl Etcd {
    async fn start(dir: &Path) -> Etcd {
        let mut etcd = Etcd {
            dir: dir.to_path_buf(),
            members: (0..3)
                .map(|i| Member {
                    name: format!("m{i}"),
                    client: free_port(),
                    peer: free_port(),
                    proc: None,
                })
                .collect(),
        };
        for i in 0..3 {
            etcd.run(i);
        }
        etcd.wait_healthy().await;
        etcd
    }

    fn run(&mut self, i: usize) {
        let cluster: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect();
        let m = &self.members[i];
        let log = File::create(self.dir.join(format!("{}.log", m.name))).expect("etcd log");
        let child = Command::new("etcd")
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.dir.join(&m.name))
            .arg("--listen-client-urls")
            .arg(format!("http://127.0.0.1:{}", m.client))
            .arg("--advertise-client-urls")
            .arg(format!("http://127.0.0.1:{}", m.client))
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{}", m.peer))
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://127.0.0.1:{}", m.peer))
            .arg("--initial-cluster")
            .arg(cluster.join(","))
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "snapwarden-ha-test"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts: scripts/test installs Debian's etcd-server package");
        self.members[i].proc = Some(KillOnDrop(child));
    }

    fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client))
            .collect()
    }

    /// etcd's own view of a member (`/v3/maintenance/status`), `None` while it does not answer.
    async fn status(&self, i: usize) -> Option<Value> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .ok()?;
        let r = http
            .post(format!(
                "http://127.0.0.1:{}/v3/maintenance/status",
                self.members[i].client
            ))
            .json(&json!({}))
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// Waits until a raft leader exists and every running member answers.
    async fn wait_healthy(&self) {
        let poll = Poll::new(Duration::from_secs(30));
        loop {
            let mut ok = true;
            for (i, m) in self.members.iter().enumerate() {
                if m.proc.is_none() {
                    continue;
                }
                let leader = self.status(i).await.map(|s| s["leader"].clone());
                ok &= leader.is_some_and(|l| l.as_str().is_some_and(|l| l != "0"));
            }
            if ok {
                return;
            }
            assert!(
                poll.again().await,
                "etcd becomes healthy (see {})",
                self.dir.display()
            );
        }
    }

    /// Members that are not the raft leader.
    async fn followers(&self) -> Vec<usize> {
        let s = self.status(0).await.expect("member 0 answers");
        let leader = s["leader"].as_str().unwrap_or_default().to_string();
        let mut out = Vec::new();
        for i in 0..3 {
            let me = self.status(i).await.expect("a member answers");
            if me["header"]["member_id"].as_str() != Some(leader.as_str()) {
                out.push(i);
            }
        }
        out
    }

    fn stop(&mut self, i: usize) {
        self.members[i].proc = None;
    }
}

/// `snapwarden simulator serve` (HTTPS, real clock) and a client for its REST and admin APIs.
struct Sim {
    _proc: TlsSimulator,
    url: String,
    fingerprint: String,
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
    fn start(world: &Path, log: File) -> Sim {
        let sim = TlsSimulator::start(world, &["--clock", "real"], log);
        Sim {
            url: sim.url.clone(),
            fingerprint: sim.fingerprint.clone(),
            rest: SimRest::new(&sim.url, "admin", PASSWORD),
            _proc: sim,
        }
    }

    /// `/api` POST, PATCH and DELETE requests answered so far.
    async fn mutations(&self) -> u64 {
        let r = self.get("/simulator/v1/requests").await;
        ["post", "patch", "delete"]
            .iter()
            .map(|k| r[k].as_u64().unwrap_or(0))
            .sum()
    }

    /// Every snapshot (uuid → (name, comment)) and LUN (uuid → path) of the cluster.
    async fn objects(&self) -> (BTreeMap<String, (String, String)>, BTreeMap<String, String>) {
        let snaps = self
            .get("/api/storage/volumes/*/snapshots?fields=name,comment")
            .await;
        let luns = self.get("/api/storage/luns?fields=name").await;
        let records = |v: &Value| v["records"].as_array().cloned().unwrap_or_default();
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        (
            records(&snaps)
                .iter()
                .map(|s| (text(&s["uuid"]), (text(&s["name"]), text(&s["comment"]))))
                .collect(),
            records(&luns)
                .iter()
                .map(|l| (text(&l["uuid"]), text(&l["name"])))
                .collect(),
        )
    }

    /// snapwarden's backing snapshots of the cycles (prefixed, not the look-alikes).
    async fn backing(&self) -> Vec<String> {
        let (snaps, _) = self.objects().await;
        snaps
            .values()
            .map(|(n, _)| n.clone())
            .filter(|n| {
                n.starts_with(&format!("{PREFIX}.")) && !n.starts_with(&format!("{PREFIX}.w.2020"))
            })
            .collect()
    }
}

fn world() -> String {
    format!(
        r#"[[users]]
name = "admin"
password = "{PASSWORD}"

[[clusters]]
name = "c1"
timezone = "Etc/UTC"
licenses = ["snaprestore", "flexclone"]

[[clusters.schedules]]
name = "minutely"
cron = "* * * * *"

[[clusters.snapshot_policies]]
name = "every-minute"
copies = [{{ schedule = "minutely", count = 3, prefix = "minutely" }}]

[[clusters.svms]]
name = "svm1"

[[clusters.svms.volumes]]
name = "va"
snapshot_policy = "every-minute"
luns = [{{ name = "lun0" }}, {{ name = "{LOOKALIKE_LUN}" }}]
"#
    )
}

/// A replica's policy: the window on `va` starts every minute and holds its clone `hold`
/// seconds (no hook).
fn policy(sim: &Sim, port: u16, identity: &str, endpoints: &[String], hold: u64) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        r#"[agent]
listen = "127.0.0.1:{port}"
guard = "5s"
observe_interval = "10s"
shutdown_timeout = "5s"

[ha]
backend = "etcd"
endpoints = [{endpoints}]
lease_ttl = "{LEASE_TTL}s"
key = "/snapwarden/ha-test/leader"
identity = "{identity}"

[[cluster]]
name = "c1"
endpoint = "{url}"
username = "admin"
password_env = "{PASSWORD_ENV}"
pin_sha256 = "{fingerprint}"
timezone = "auto"

[[volume]]
cluster = "c1"
svm = "svm1"
name = "va"
luns = ["/vol/va/lun0"]
snapshot_policy = "ontap"
clone = "flexclone"

[[window]]
name = "w"
volumes = ["c1/svm1/va"]
start = "* * * * *"
timezone = "UTC"
expected = "{hold}s"
max = "40s"
shift_limit = "0s"
on_conflict = "run"
"#,
        endpoints = endpoints.join(", "),
        url = sim.url,
        fingerprint = sim.fingerprint,
    )
}

/// One `snapwarden run` replica.
struct Replica {
    name: String,
    port: u16,
    policy: PathBuf,
    state: PathBuf,
    log: PathBuf,
    proc: Option<KillOnDrop>,
}

impl Replica {
    fn new(dir: &Path, name: &str) -> Replica {
        Replica {
            name: name.into(),
            port: free_port(),
            policy: dir.join(format!("{name}.toml")),
            state: dir.join(format!("{name}-state")),
            log: dir.join(format!("{name}.log")),
            proc: None,
        }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        self.proc = Some(KillOnDrop(
            Command::new(env!("CARGO_BIN_EXE_snapwarden"))
                .args(["run", "--config"])
                .arg(&self.policy)
                .arg("--state-dir")
                .arg(&self.state)
                .env(PASSWORD_ENV, PASSWORD)
                .env("SNAPWARDEN_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("snapwarden run starts"),
        ));
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.proc.as_ref().expect("running").id()).expect("a pid")
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.pid());
    }

    /// The replica's `/api/v1/status`, `None` while it does not answer.
    fn status(&self) -> Option<Value> {
        let (code, body) = http(self.port, "GET", "/api/v1/status", &[])?;
        (code == 200)
            .then(|| serde_json::from_str(&body).ok())
            .flatten()
    }

    fn role(&self) -> Option<String> {
        self.status()
            .and_then(|s| s["ha"]["role"].as_str().map(str::to_string))
    }

    /// Actions this replica journaled: (at, action, object, outcome).
    /// The journaled state of the cycle whose backing snapshot is `snapshot`, if journaled.
    fn cycle_state(&self, snapshot: &str) -> Option<String> {
        let path = self.state.join(snapwarden::agent::journal::FILE_NAME);
        if !path.exists() {
            return None;
        }
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()?;
        conn.query_row(
            "SELECT state FROM cycles WHERE backing_snapshot = ?1",
            [snapshot],
            |r| r.get(0),
        )
        .ok()
    }

    fn actions(&self) -> Vec<(DateTime<Utc>, String, String, String)> {
        let path = self.state.join(snapwarden::agent::journal::FILE_NAME);
        if !path.exists() {
            return Vec::new();
        }
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("the journal opens");
        let mut stmt = conn
            .prepare("SELECT at, action, object, outcome FROM actions ORDER BY id")
            .expect("actions");
        stmt.query_map([], |r| {
            let at: i64 = r.get(0)?;
            Ok((
                DateTime::from_timestamp_millis(at).expect("an instant"),
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
            ))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
    }
}

/// One scenario's world: etcd, the simulator with its look-alikes, two replicas (not started).
struct Lab {
    dir: tempfile::TempDir,
    etcd: Etcd,
    sim: Sim,
    replicas: Vec<Replica>,
    /// The look-alikes' uuids as made.
    lookalikes: Vec<String>,
}

impl Lab {
    async fn new(hold: u64) -> Lab {
        let dir = tempfile::tempdir().expect("a temp dir");
        let etcd = Etcd::start(dir.path()).await;
        std::fs::write(dir.path().join("world.toml"), world()).expect("world");
        let sim = Sim::start(
            &dir.path().join("world.toml"),
            File::create(dir.path().join("sim.log")).expect("sim log"),
        );
        let va = sim.get("/api/storage/volumes?name=va").await["records"][0]["uuid"]
            .as_str()
            .expect("va")
            .to_string();
        for (name, comment) in [
            (LOOKALIKE_NO_MARKER, "made by hand"),
            (LOOKALIKE_OLD_MARKER, OLD_MARKER),
            (USER_SNAPSHOT, "user snapshot before an upgrade"),
        ] {
            sim.call(
                reqwest::Method::POST,
                &format!("/api/storage/volumes/{va}/snapshots"),
                Some(json!({"name": name, "comment": comment})),
            )
            .await;
        }
        let poll = Poll::new(Duration::from_secs(30));
        let lookalikes = loop {
            let (snaps, luns) = sim.objects().await;
            let mut found: Vec<String> = snaps
                .iter()
                .filter(|(_, (n, _))| {
                    [LOOKALIKE_NO_MARKER, LOOKALIKE_OLD_MARKER, USER_SNAPSHOT].contains(&n.as_str())
                })
                .map(|(u, _)| u.clone())
                .collect();
            found.extend(
                luns.iter()
                    .filter(|(_, p)| p.ends_with(LOOKALIKE_LUN))
                    .map(|(u, _)| u.clone()),
            );
            if found.len() == 4 {
                break found;
            }
            assert!(poll.again().await, "the look-alikes appear");
        };
        let endpoints = etcd.endpoints();
        let replicas: Vec<Replica> = ["replica-a", "replica-b"]
            .iter()
            .map(|n| {
                let r = Replica::new(dir.path(), n);
                std::fs::write(&r.policy, policy(&sim, r.port, n, &endpoints, hold))
                    .expect("policy");
                r
            })
            .collect();
        Lab {
            dir,
            etcd,
            sim,
            replicas,
            lookalikes,
        }
    }

    fn keep(&self) -> String {
        format!("logs in {}", self.dir.path().display())
    }

    /// Starts both replicas and waits until exactly one leads and the other stands by; returns
    /// the leader's index.
    async fn start_and_elect(&mut self) -> usize {
        for r in &mut self.replicas {
            r.start();
        }
        self.one_leader(Duration::from_secs(30)).await
    }

    /// Waits until exactly one replica reports itself leader and the other names it; its index.
    async fn one_leader(&self, bound: Duration) -> usize {
        let poll = Poll::new(bound);
        loop {
            let s: Vec<Option<Value>> = self
                .replicas
                .iter()
                .map(|r| r.proc.as_ref().and_then(|_| r.status()))
                .collect();
            let leaders: Vec<usize> = (0..2)
                .filter(|&i| s[i].as_ref().is_some_and(|s| s["ha"]["role"] == "leader"))
                .collect();
            if let [l] = leaders[..] {
                let other = 1 - l;
                let named = s[other].as_ref().is_none_or(|s| {
                    s["ha"]["leader"].as_str() == Some(self.replicas[l].name.as_str())
                        && s["ha"]["role"] == "standby"
                });
                if named {
                    return l;
                }
            }
            assert!(poll.again().await, "exactly one leader ({})", self.keep());
        }
    }

    /// Waits until `leader` has a backing snapshot with its clone on the cluster and has
    /// journaled the cycle in its backup stage (the clone's create answered and recorded: nothing
    /// of the create is left to journal); the snapshot's name.
    async fn live_cycle(&self, leader: usize) -> String {
        let poll = Poll::new(Duration::from_secs(90));
        loop {
            let (_, luns) = self.sim.objects().await;
            if let Some(s) = self.sim.backing().await.first() {
                let cloned = luns
                    .values()
                    .any(|p| p.starts_with(&format!("/vol/va/{s}.")));
                if cloned && self.replicas[leader].cycle_state(s).as_deref() == Some("backup") {
                    return s.clone();
                }
            }
            assert!(
                poll.again().await,
                "{} creates a cycle at the minute ({})",
                self.replicas[leader].name,
                self.keep()
            );
        }
    }

    /// Waits until no cycle's snapshot or clone is left on the cluster.
    async fn released(&self, bound: Duration, what: &str) {
        let poll = Poll::new(bound);
        loop {
            let (_, luns) = self.sim.objects().await;
            let clones = luns
                .values()
                .filter(|p| {
                    p.starts_with(&format!("/vol/va/{PREFIX}.")) && !p.ends_with(LOOKALIKE_LUN)
                })
                .count();
            if self.sim.backing().await.is_empty() && clones == 0 {
                return;
            }
            assert!(poll.again().await, "{what} ({})", self.keep());
        }
    }

    /// The invariants of every scenario: `cycles` backing snapshots were each created once
    /// (across both journals) and released; the look-alikes are all there.
    async fn check_invariants(&self, cycles: usize) {
        let mut creates: BTreeMap<String, usize> = BTreeMap::new();
        for r in &self.replicas {
            for (_, action, object, outcome) in r.actions() {
                if action == "create_snapshot" && outcome == "ok" {
                    *creates.entry(object).or_default() += 1;
                }
            }
        }
        assert_eq!(
            creates.len(),
            cycles,
            "backing snapshots created: {creates:?}"
        );
        assert!(
            creates.values().all(|n| *n == 1),
            "each backing snapshot created once: {creates:?}"
        );
        assert!(self.sim.backing().await.is_empty(), "nothing leaked");
        let (snaps, luns) = self.sim.objects().await;
        for uuid in &self.lookalikes {
            assert!(
                snaps.contains_key(uuid) || luns.contains_key(uuid),
                "look-alike {uuid} untouched ({})",
                self.keep()
            );
        }
    }
}

fn etcd_available() {
    installed("etcd", "etcd-server");
}

/// The scenarios with a cycle in flight, side by side: each waits for the next minute's cycle
/// (cron's resolution), so together they cost one such wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_with_a_cycle_in_flight() {
    etcd_available();
    tokio::join!(killed_leader(), paused_leader(), quorum_loss());
}

/// One leader at a time; stopping one etcd member (of three) changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_one_lost_member_changes_nothing() {
    etcd_available();
    let mut lab = Lab::new(5).await;
    let leader = lab.start_and_elect().await;
    let changes = |lab: &Lab| -> Vec<u64> {
        lab.replicas
            .iter()
            .map(|r| {
                r.status().map_or(u64::MAX, |s| {
                    s["ha"]["leader_changes"].as_u64().unwrap_or(0)
                })
            })
            .collect()
    };
    let before = changes(&lab);
    let follower = lab.etcd.followers().await[0];
    lab.etcd.stop(follower);
    // Three lease periods with one member down: the leader renews on the other two.
    let watch = Poll::new(Duration::from_secs(3 * LEASE_TTL));
    while watch.again().await {
        assert_eq!(
            lab.replicas[leader].role().as_deref(),
            Some("leader"),
            "{}",
            lab.keep()
        );
        assert_eq!(lab.replicas[1 - leader].role().as_deref(), Some("standby"));
    }
    assert_eq!(changes(&lab), before, "no change of leader");
    let metrics = http(lab.replicas[leader].port, "GET", "/metrics", &[])
        .expect("metrics")
        .1;
    assert!(
        metrics.contains(&format!(
            "snapwarden_leader{{identity=\"{}\"}} 1",
            lab.replicas[leader].name
        )),
        "{metrics}"
    );
    assert!(metrics.contains("snapwarden_ha_backend_up 1"), "{metrics}");
    assert!(
        metrics.contains("snapwarden_leader_changes_total 1"),
        "became leader once: {metrics}"
    );
    let standby = http(lab.replicas[1 - leader].port, "GET", "/metrics", &[])
        .expect("metrics")
        .1;
    assert!(standby.contains(&format!(
        "snapwarden_leader{{identity=\"{}\"}} 0",
        lab.replicas[1 - leader].name
    )));
    lab.check_invariants(0).await;
}

/// SIGKILL of the leader in the middle of a cycle: the standby leads within the lease and a pass,
/// adopts the cycle from ONTAP and releases it.
async fn killed_leader() {
    // The clone is held 20 s: the release that follows the kill is the new leader's.
    let mut lab = Lab::new(20).await;
    let leader = lab.start_and_elect().await;
    let snapshot = lab.live_cycle(leader).await;
    let killed = Instant::now();
    lab.replicas[leader].proc = None;
    let standby = 1 - leader;
    let poll = Poll::new(Duration::from_secs(30));
    while lab.replicas[standby].role().as_deref() != Some("leader") {
        assert!(poll.again().await, "the standby leads ({})", lab.keep());
    }
    let leads = killed.elapsed();
    lab.released(
        Duration::from_secs(30),
        "the new leader releases the orphaned cycle",
    )
    .await;
    let acted = killed.elapsed();
    assert!(
        leads < Duration::from_secs(LEASE_TTL + 3),
        "the standby leads within lease_ttl and a pass: {leads:?}"
    );
    assert!(
        acted < Duration::from_secs(LEASE_TTL + 5),
        "and releases the orphan soon after: {acted:?}"
    );
    let adopted = lab.replicas[standby]
        .actions()
        .iter()
        .any(|(_, a, o, _)| a == "adopt" && *o == snapshot);
    assert!(
        adopted,
        "the new leader journals the adoption of {snapshot}"
    );
    // `history` says which replica acted.
    let out = Command::new(env!("CARGO_BIN_EXE_snapwarden"))
        .args(["history", "--output", "json", "--state-dir"])
        .arg(&lab.replicas[standby].state)
        .output()
        .expect("history runs");
    let rows: Value = serde_json::from_slice(&out.stdout).expect("history JSON");
    let row = rows
        .as_array()
        .and_then(|r| {
            r.iter()
                .find(|c| c["backing_snapshot"] == snapshot.as_str())
        })
        .unwrap_or_else(|| panic!("the adopted cycle in history: {rows}"));
    assert_eq!(row["replica"], lab.replicas[standby].name.as_str());
    let table = Command::new(env!("CARGO_BIN_EXE_snapwarden"))
        .args(["history", "--state-dir"])
        .arg(&lab.replicas[standby].state)
        .output()
        .expect("history runs");
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("REPLICA") && table.contains(&lab.replicas[standby].name),
        "{table}"
    );
    lab.check_invariants(1).await;
}

/// SIGSTOP past the lease, then SIGCONT: the old leader's release came due while it slept, and
/// it does nothing (the standby released the cycle already).
async fn paused_leader() {
    let hold = 6;
    let mut lab = Lab::new(hold).await;
    let leader = lab.start_and_elect().await;
    lab.live_cycle(leader).await;
    let created = Utc::now();
    lab.replicas[leader].signal(libc::SIGSTOP);
    let standby = 1 - leader;
    let poll = Poll::new(Duration::from_secs(30));
    while lab.replicas[standby].role().as_deref() != Some("leader") {
        assert!(poll.again().await, "the standby leads ({})", lab.keep());
    }
    lab.released(Duration::from_secs(30), "the new leader releases the cycle")
        .await;
    // Resume only once the old leader's own release is due.
    let due = created + chrono::TimeDelta::seconds(i64::try_from(hold).unwrap_or(6) + 1);
    let wait = Poll::new(Duration::from_secs(hold + 5));
    while Utc::now() < due {
        assert!(wait.again().await);
    }
    let before = lab.sim.mutations().await;
    let resumed = Utc::now();
    lab.replicas[leader].signal(libc::SIGCONT);
    let poll = Poll::new(Duration::from_secs(30));
    loop {
        let s = lab.replicas[leader].status();
        let passed = s.as_ref().is_some_and(|s| {
            s["generated_at"]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                .is_some_and(|t| t > resumed)
                && s["ha"]["role"] == "standby"
        });
        if passed {
            break;
        }
        assert!(
            poll.again().await,
            "the resumed replica reports itself standby ({})",
            lab.keep()
        );
    }
    // Its campaign reads the key once more (a poll period) before the check.
    let settle = Poll::new(Duration::from_secs(1));
    while settle.again().await {}
    assert_eq!(
        lab.sim.mutations().await,
        before,
        "the resumed old leader mutated nothing"
    );
    let late: Vec<_> = lab.replicas[leader]
        .actions()
        .into_iter()
        .filter(|(at, _, _, _)| *at >= resumed)
        .collect();
    assert!(
        late.is_empty(),
        "no action journaled after SIGCONT: {late:?}"
    );
    lab.check_invariants(1).await;
}

/// Two of three etcd members stopped: the leader steps down and the release that comes due is
/// not made until quorum returns.
async fn quorum_loss() {
    let hold = 6;
    let mut lab = Lab::new(hold).await;
    let leader = lab.start_and_elect().await;
    let snapshot = lab.live_cycle(leader).await;
    let created = Utc::now();
    let followers = lab.etcd.followers().await;
    for &m in &followers {
        lab.etcd.stop(m);
    }
    let poll = Poll::new(Duration::from_secs(3 * LEASE_TTL + 5));
    while lab.replicas[leader].role().as_deref() != Some("standby") {
        assert!(poll.again().await, "the leader steps down ({})", lab.keep());
    }
    let before = lab.sim.mutations().await;
    let due = created + chrono::TimeDelta::seconds(i64::try_from(hold).unwrap_or(6) + 2);
    let wait = Poll::new(Duration::from_secs(hold + 10));
    while Utc::now() < due {
        assert!(wait.again().await);
        for r in &lab.replicas {
            assert_ne!(
                r.role().as_deref(),
                Some("leader"),
                "nobody leads without quorum"
            );
        }
    }
    assert_eq!(
        lab.sim.mutations().await,
        before,
        "nothing mutated without quorum"
    );
    assert!(
        lab.sim.backing().await.contains(&snapshot),
        "the cycle whose release came due is still there"
    );
    for &m in &followers {
        lab.etcd.run(m);
    }
    lab.one_leader(Duration::from_secs(30)).await;
    lab.released(
        Duration::from_secs(30),
        "the release happens once quorum returns",
    )
    .await;
    lab.check_invariants(1).await;
}

/// Failover time: SIGKILL of the leader → the standby leads and has run a pass as leader
/// (`SNAPWARDEN_HA_FAILOVER_RUNS` kills, default 1; the killed replica comes back as standby).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_time_is_within_the_lease_and_two_seconds() {
    etcd_available();
    let runs: usize = std::env::var("SNAPWARDEN_HA_FAILOVER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(1, 100);
    let mut lab = Lab::new(5).await;
    let mut leader = lab.start_and_elect().await;
    let mut times = Vec::new();
    for _ in 0..runs {
        let killed = Instant::now();
        let killed_at = Utc::now();
        lab.replicas[leader].proc = None;
        let next = 1 - leader;
        let poll = Poll::new(Duration::from_secs(30));
        loop {
            let acting = lab.replicas[next].status().is_some_and(|s| {
                s["ha"]["role"] == "leader"
                    && s["generated_at"]
                        .as_str()
                        .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                        .is_some_and(|t| t > killed_at)
            });
            if acting {
                break;
            }
            assert!(poll.again().await, "the standby leads ({})", lab.keep());
        }
        times.push(killed.elapsed());
        lab.replicas[leader].start();
        leader = next;
        lab.one_leader(Duration::from_secs(30)).await;
    }
    let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
    let mut sorted = ms.clone();
    sorted.sort_unstable();
    println!("failover (kill -9 → new leader acting), lease_ttl {LEASE_TTL}s, {runs} runs");
    println!("run  ms");
    for (i, t) in ms.iter().enumerate() {
        println!("{:>3}  {t}", i + 1);
    }
    println!(
        "min {} ms, median {} ms, max {} ms",
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
    let target = Duration::from_secs(LEASE_TTL + 2);
    assert!(
        times.iter().all(|t| *t < target),
        "every failover under lease_ttl + 2 s: {ms:?}"
    );
}

/// Two in-process agents on one simulated world in virtual time, with the in-memory election
/// deciding who leads: the same rules without etcd, and without waiting for wall-clock minutes.
mod in_memory {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use snapwarden::agent::clock::{reader, Clock};
    use snapwarden::agent::journal::Journal;
    use snapwarden::agent::{Agent, ClusterClient, Event, Options, TokioClock, Triggers};
    use snapwarden::config;
    use snapwarden::ha::memory::MemoryElection;
    use snapwarden::ha::LeaderElector;
    use snapwarden::ontap::Ontap;
    use snapwarden::sim::embedded::{connect_virtual, ClockedSim};
    use snapwarden::sim::Simulator;

    const POLICY: &str = r#"
[agent]
guard = "5m"
observe_interval = "1m"

[[cluster]]
name = "lab"
endpoint = "simulator"
timezone = "UTC"
simulator = { version = "9.14.1", licenses = ["snaprestore", "flexclone"] }

[[schedule]]
name = "six-hourly"
cron = "0 */6 * * *"

[[snapshot_policy]]
name = "p"
copies = [{ schedule = "six-hourly", count = 3 }]

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_a"
luns = ["/vol/vol_a/lun0"]
snapshot_policy = "p"
clone = "flexclone"

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_b"
luns = ["/vol/vol_b/lun0"]
snapshot_policy = "p"
clone = "flexclone"

[[window]]
name = "nightly"
volumes = ["lab/svm1/vol_a"]
start = "0 1 * * *"
timezone = "UTC"
expected = "30m"
max = "2h"

[[window]]
name = "late"
volumes = ["lab/svm1/vol_b"]
start = "0 3 * * *"
timezone = "UTC"
expected = "30m"
max = "2h"
"#;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("an instant")
    }

    struct Replica {
        journal: Arc<Journal>,
        events: tokio::sync::mpsc::UnboundedSender<Event>,
        task: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    fn replica(
        policy: &Arc<config::Policy>,
        clients: Vec<ClusterClient>,
        clock: &Arc<TokioClock>,
        elector: Arc<dyn LeaderElector>,
    ) -> Replica {
        let dir = tempfile::tempdir().expect("a temp dir");
        let agent = Agent::new(
            policy.clone(),
            clients,
            clock.clone(),
            Options {
                state_dir: dir.path().join("state"),
                triggers: Triggers::Clock,
                hooks: None,
            },
        )
        .expect("the agent starts")
        .with_elector(elector);
        let journal = agent.journal();
        let events = agent.events();
        let task = tokio::spawn(async move {
            agent.run().await.expect("the agent runs");
        });
        Replica {
            journal,
            events,
            task,
            _dir: dir,
        }
    }

    /// snapwarden's backing snapshots and clones on the world.
    fn ours(sim: &Simulator) -> (Vec<String>, Vec<String>) {
        sim.with(|w| {
            let c = &w.clusters[0];
            (
                c.volumes
                    .iter()
                    .flat_map(|v| v.snapshots.iter())
                    .filter(|s| s.name.starts_with("snapwarden."))
                    .map(|s| s.name.clone())
                    .collect(),
                c.luns
                    .iter()
                    .filter(|l| l.name.contains("/snapwarden."))
                    .map(|l| l.name.clone())
                    .collect(),
            )
        })
    }

    /// Actions of a journal at or after `since`: (action, object, outcome).
    fn actions_since(j: &Journal, since: DateTime<Utc>) -> Vec<(String, String, String)> {
        let path = j.path().to_path_buf();
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("the journal opens");
        let mut stmt = conn
            .prepare("SELECT action, object, outcome FROM actions WHERE at >= ?1 ORDER BY id")
            .expect("actions");
        stmt.query_map([since.timestamp_millis()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
    }

    async fn until(clock: &TokioClock, at: &str) {
        while clock.now() < t(at) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The leader makes the cycle; a change of leader mid-cycle fences it off at once and the new
    /// leader adopts and releases the cycle; with nobody leading (lost quorum) a due release
    /// waits until a leader is elected again.
    #[tokio::test(start_paused = true)]
    async fn only_the_leader_acts_and_a_new_leader_adopts_the_cycle() {
        let policy = Arc::new(
            config::parse_str(POLICY, std::path::Path::new("ha.toml"))
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let clock = Arc::new(TokioClock::starting_at(t("2026-11-25T00:30:00Z")));
        let conns = connect_virtual(&policy, reader(clock.clone())).expect("the simulator");
        let sim = conns.simulator.expect("a simulator");
        let clients_b = vec![ClusterClient {
            name: "lab".into(),
            ontap: Arc::new(ClockedSim::new(sim.clone(), "lab", reader(clock.clone())))
                as Arc<dyn Ontap>,
        }];
        let election = MemoryElection::new();
        let clients_a = conns
            .clients
            .into_iter()
            .map(|ontap| ClusterClient {
                name: ontap.cluster_name().to_string(),
                ontap,
            })
            .collect();
        let a = replica(&policy, clients_a, &clock, election.join("a"));
        let b = replica(&policy, clients_b, &clock, election.join("b"));
        election.elect("a");

        // 01:00: a creates the nightly cycle; b, standing by, journals nothing.
        until(&clock, "2026-11-25T01:05:00Z").await;
        let (snaps, clones) = ours(&sim);
        assert_eq!((snaps.len(), clones.len()), (1, 1), "{snaps:?} {clones:?}");
        let first = snaps[0].clone();
        assert!(actions_since(&b.journal, t("2000-01-01T00:00:00Z")).is_empty());

        // 01:05: b is elected; a is fenced at once (its hold ends at 01:30 and does nothing),
        // b adopts the cycle from ONTAP and releases it.
        let handover = clock.now();
        election.elect("b");
        until(&clock, "2026-11-25T01:40:00Z").await;
        assert_eq!(ours(&sim), (vec![], vec![]), "b released the adopted cycle");
        let a_after = actions_since(&a.journal, handover);
        assert!(
            a_after.is_empty(),
            "a acted after losing leadership: {a_after:?}"
        );
        let b_actions: Vec<String> = actions_since(&b.journal, handover)
            .into_iter()
            .map(|(action, object, _)| format!("{action} {object}"))
            .collect();
        assert_eq!(
            b_actions,
            vec![
                format!("adopt {first}"),
                format!("delete_clone /vol/vol_a/{first}.lun0"),
                format!("delete_snapshot {first}"),
            ]
        );

        // 03:00: b leads and creates the late cycle; at 03:05 nobody leads (quorum lost): the
        // release due at 03:30 waits until b leads again at 04:00, then happens once.
        until(&clock, "2026-11-25T03:05:00Z").await;
        let (snaps, _) = ours(&sim);
        assert_eq!(snaps.len(), 1, "b creates the late cycle: {snaps:?}");
        election.depose();
        until(&clock, "2026-11-25T03:59:00Z").await;
        assert_eq!(ours(&sim).0, snaps, "nothing released while nobody leads");
        let lost = t("2026-11-25T03:05:00Z");
        assert!(actions_since(&a.journal, lost).is_empty());
        assert!(actions_since(&b.journal, lost).is_empty());
        election.elect("b");
        until(&clock, "2026-11-25T04:05:00Z").await;
        assert_eq!(ours(&sim), (vec![], vec![]), "released once b leads again");
        let creates: Vec<String> = [&a.journal, &b.journal]
            .iter()
            .flat_map(|j| actions_since(j, t("2000-01-01T00:00:00Z")))
            .filter(|(action, _, outcome)| action == "create_snapshot" && outcome == "ok")
            .map(|(_, object, _)| object)
            .collect();
        assert_eq!(
            creates.len(),
            2,
            "each cycle's snapshot created once: {creates:?}"
        );
        assert_ne!(creates[0], creates[1]);

        for r in [a, b] {
            let _ = r.events.send(Event::Shutdown);
            r.task.await.expect("the agent stops");
        }
    }
}

/// With etcd authentication on, the elector logs in with the policy's user and a password from
/// the environment and leads; with a wrong password it never leads and reports the backend down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elector_authenticates_with_the_policy_credentials() {
    use snapwarden::ha::LeaderElector;
    etcd_available();
    let dir = tempfile::tempdir().expect("a temp dir");
    let etcd = Etcd::start(dir.path()).await;
    let endpoint = etcd.endpoints()[0].clone();
    let etcdctl = |args: &[&str]| {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(&endpoint)
            .args(args)
            .output()
            .expect("etcdctl runs: scripts/test installs Debian's etcd-client package");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    etcdctl(&["role", "add", "root"]);
    etcdctl(&["user", "add", "root:root-pw"]);
    etcdctl(&["user", "grant-role", "root", "root"]);
    etcdctl(&["user", "add", "snapwarden:sw-pw"]);
    etcdctl(&["user", "grant-role", "snapwarden", "root"]);
    etcdctl(&["auth", "enable"]);
    let ha = |env: &str| {
        let text = format!(
            "[ha]\nbackend = \"etcd\"\nendpoints = [{}]\nlease_ttl = \"2s\"\nidentity = \"{env}\"\nusername = \"snapwarden\"\npassword_env = \"{env}\"\n[[cluster]]\nname = \"c\"\nendpoint = \"simulator\"\n[[schedule]]\nname = \"h\"\ncron = \"5 * * * *\"\n[[snapshot_policy]]\nname = \"p\"\ncopies = [{{ schedule = \"h\", count = 3 }}]\n[[volume]]\ncluster = \"c\"\nsvm = \"s\"\nname = \"v\"\nluns = [\"/vol/v/l\"]\nsnapshot_policy = \"p\"\n",
            etcd.endpoints()
                .iter()
                .map(|e| format!("\"{e}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        snapwarden::config::parse_str(&text, Path::new("auth.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
            .ha
            .expect("[ha]")
    };
    std::env::set_var("SNAPWARDEN_HA_RIGHT_PW", "sw-pw");
    std::env::set_var("SNAPWARDEN_HA_WRONG_PW", "not-the-password");
    let wrong = snapwarden::ha::etcd::EtcdElector::start(&ha("SNAPWARDEN_HA_WRONG_PW"))
        .expect("the elector starts");
    let right = snapwarden::ha::etcd::EtcdElector::start(&ha("SNAPWARDEN_HA_RIGHT_PW"))
        .expect("the elector starts");
    let poll = Poll::new(Duration::from_secs(20));
    while right.check().is_err() {
        assert!(
            poll.again().await,
            "the elector with the right password leads"
        );
    }
    // Four of its rounds (a quarter of the TTL each): logged in, it would at least see the
    // leader; refused, it sees nothing and reports the backend down.
    let rx = wrong.subscribe();
    let watch = Poll::new(Duration::from_secs(LEASE_TTL));
    while watch.again().await {
        let e = rx.borrow().clone();
        assert!(!e.backend_up && e.leader.is_none(), "{e:?}");
        assert!(
            wrong.check().is_err(),
            "a replica that cannot log in never leads"
        );
    }
    let seen = right.subscribe().borrow().clone();
    assert_eq!(seen.leader.as_deref(), Some("SNAPWARDEN_HA_RIGHT_PW"));
    right.resign().await;
    assert!(right.check().is_err());
}

/// etcd over HTTPS: the elector verifies the member's certificate against `ca_file` and leads;
/// one pinned to another certificate never reaches etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elector_verifies_etcd_tls_like_a_cluster() {
    use snapwarden::ha::LeaderElector;
    etcd_available();
    let dir = tempfile::tempdir().expect("a temp dir");
    let key = rcgen::KeyPair::generate().expect("a key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("a certificate");
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).expect("cert");
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).expect("key");
    let (client, peer) = (free_port(), free_port());
    let _etcd = KillOnDrop(
        Command::new("etcd")
            .args(["--name", "tls"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(format!("https://127.0.0.1:{client}"))
            .arg("--advertise-client-urls")
            .arg(format!("https://127.0.0.1:{client}"))
            .arg("--listen-peer-urls")
            .arg(format!("http://127.0.0.1:{peer}"))
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://127.0.0.1:{peer}"))
            .arg("--initial-cluster")
            .arg(format!("tls=http://127.0.0.1:{peer}"))
            .arg("--cert-file")
            .arg(dir.path().join("cert.pem"))
            .arg("--key-file")
            .arg(dir.path().join("key.pem"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.path().join("etcd.log")).expect("log"))
            .spawn()
            .expect("etcd starts"),
    );
    let ha = |tls: &str, identity: &str| {
        let text = format!(
            "[ha]\nbackend = \"etcd\"\nendpoints = [\"https://127.0.0.1:{client}\"]\nlease_ttl = \"2s\"\nidentity = \"{identity}\"\n{tls}\n[[cluster]]\nname = \"c\"\nendpoint = \"simulator\"\n[[schedule]]\nname = \"h\"\ncron = \"5 * * * *\"\n[[snapshot_policy]]\nname = \"p\"\ncopies = [{{ schedule = \"h\", count = 3 }}]\n[[volume]]\ncluster = \"c\"\nsvm = \"s\"\nname = \"v\"\nluns = [\"/vol/v/l\"]\nsnapshot_policy = \"p\"\n"
        );
        snapwarden::config::parse_str(&text, &dir.path().join("tls.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
            .ha
            .expect("[ha]")
    };
    let pinned_elsewhere = snapwarden::ha::etcd::EtcdElector::start(&ha(
        &format!("pin_sha256 = \"{}\"", "ab".repeat(32)),
        "pinned",
    ))
    .expect("the elector starts");
    let verified =
        snapwarden::ha::etcd::EtcdElector::start(&ha("ca_file = \"cert.pem\"", "verified"))
            .expect("the elector starts");
    let poll = Poll::new(Duration::from_secs(30));
    while verified.check().is_err() {
        assert!(
            poll.again().await,
            "the elector that trusts the certificate leads"
        );
    }
    let rx = pinned_elsewhere.subscribe();
    let watch = Poll::new(Duration::from_secs(LEASE_TTL));
    while watch.again().await {
        let e = rx.borrow().clone();
        assert!(!e.backend_up && e.leader.is_none(), "{e:?}");
        assert!(pinned_elsewhere.check().is_err());
    }
    verified.resign().await;
}
