//! The crash test: `snapwarden run` against `snapwarden simulator serve` (HTTPS,
//! real clock, injected latency) is killed with SIGKILL at random points of its cycles and
//! restarted; afterwards no snapwarden object is left that the journal does not show as live, and
//! nothing foreign — look-alikes, a user snapshot, the scheduled snapshots — was touched.
//!
//! `cargo test --test agent_crash` runs the bounded form (4 kills, about a minute);
//! `scripts/crash-campaign` runs the same scenario with `CRASH_KILLS` kills and prints the kills
//! per stage. `CRASH_SEED` changes the random kill times; `CRASH_KEEP=1` keeps the working
//! directory (world, policy, journal, `agent.log` with every run's log) for inspection.
//!
//! Timing. Windows and the snapshot schedule are minute crons, so one cycle per volume starts per
//! minute: at the minute, or late when the agent (re)starts before `:30` (`expected` 10 s still
//! fits before `release_by` at `:40`). The kills come in rounds: a round starts when the
//! occurrence of the current minute can still start (second ≤ 20, else it waits for the next
//! minute), kills until second 35, then a settling run releases what is left before the next
//! scheduled snapshot at `:00` (a SnapRestore clone alive across it would lock the backing
//! snapshot for the schedule's 4 minutes). The first run of a round creates (creating, clone,
//! hook stages); the next ones recover (releasing). A campaign (more kills than the bounded
//! form's) also ends a round at the first kill that finds the minute's cycles over, so that few
//! kills hit an idle agent; it makes about 3 kills a minute.
//!
//! Look-alikes made before the first run: a snapshot with the prefix and no marker, one with the
//! marker of a cycle no journal knows, a user snapshot, a plain LUN at a clone-like path, and
//! plain LUNs at the exact paths v3's clones will want (those cycles fail at the clone and
//! release their backing snapshot; a kill during that create tests that the next start does not
//! take the plain LUN for the cycle's clone).
//!
//! The window meets a scheduled snapshot at every start (both every minute), which the planner
//! calls a conflict; `on_conflict = "run"` runs it anyway. ONTAP takes the scheduled snapshot
//! before the agent's first call of the minute, so no clone is captured; only the (predicted)
//! conflicts and late releases are recorded, and they are not what this test checks.

mod process_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Timelike, Utc};
use process_support::{SimRest, TlsSimulator};
use serde_json::{json, Value};
use snapwarden::agent::cycle::{Cycle, CycleState};
use snapwarden::agent::journal::{Journal, ObjectKind};

const PASSWORD: &str = "crash-test-pw";
const PASSWORD_ENV: &str = "SNAPWARDEN_CRASH_TEST_PASSWORD";
/// `[agent] snapshot_prefix` (the default).
const PREFIX: &str = "snapwarden";
/// Scheduled snapshots kept per volume (the world's snapshot policy).
const SCHEDULE_COUNT: usize = 4;
/// Injected latency of every `/api` request: each lifecycle step lasts long enough to be hit
/// (a snapshot create with its job polls takes about a second).
const LATENCY_MS: u64 = 200;
/// Bounds of a run before its SIGKILL (the brief's 0.2–8 s).
const RUN_MS: (u64, u64) = (200, 8_000);
/// A round starts only while the minute's occurrence can still start (`expected` 10 s must fit
/// before `release_by` at second 40, after about a second of discovery).
const ROUND_LATEST_START: u32 = 20;
/// No new run after this second: the settling run must be done before the scheduled snapshot.
const ROUND_END: u32 = 35;
/// Kills of the bounded form.
const DEFAULT_KILLS: usize = 4;
/// Extra kills allowed when the first ones all hit the same stage.
const EXTRA_KILLS: usize = 8;

/// The look-alikes: objects named like snapwarden's that are not its own.
const LOOKALIKE_NO_MARKER: &str = "snapwarden.w.20200101T000000Z";
const LOOKALIKE_NOT_JOURNALED: &str = "snapwarden.w.20200101T000100Z";
const FOREIGN_MARKER: &str =
    "created-by=snapwarden cycle=6d1c7f4e-0000-4000-8000-000000000000 window=w";
const USER_SNAPSHOT: &str = "before-upgrade";
const LOOKALIKE_LUN: &str = "/vol/v1/snapwarden.w.20200101T000000Z.lun0";
/// Plain LUNs at the exact paths of v3's clones for this many minutes from the start: each of
/// those clone creates fails, and one killed before its answer leaves an intent for a path where
/// a LUN that is not the cycle's exists.
const COLLISION_MINUTES: i64 = 40;

/// The policy's volumes: name, LUNs (`lun0`, `lun1`, …), clone method. Six volumes with two
/// clones at most in flight (`concurrency = 2`) spread a cycle's steps over some 15 seconds.
const VOLUMES: [(&str, usize, &str); 6] = [
    ("v1", 2, "snaprestore"),
    ("v2", 1, "flexclone"),
    ("v3", 1, "snaprestore"),
    ("v4", 2, "snaprestore"),
    ("v5", 2, "flexclone"),
    ("v6", 1, "snaprestore"),
];

/// The paths of v3's clones from `from`'s minute on, taken by plain LUNs.
fn collisions(from: DateTime<Utc>) -> Vec<String> {
    let first = from
        .duration_trunc(TimeDelta::minutes(1))
        .expect("a minute");
    (0..COLLISION_MINUTES)
        .map(|i| {
            let at = first + TimeDelta::minutes(i);
            format!("/vol/v3/{PREFIX}.w.{}.lun0", at.format("%Y%m%dT%H%M%SZ"))
        })
        .collect()
}

fn world(collisions: &[String]) -> String {
    let v3_luns: String = collisions
        .iter()
        .filter_map(|path| path.strip_prefix("/vol/v3/"))
        .map(|leaf| format!(", {{ name = \"{leaf}\" }}"))
        .collect();
    format!(
        r#"[knobs]
async_mutations = true
block_sharing_seconds = 1

[[users]]
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
copies = [{{ schedule = "minutely", count = {SCHEDULE_COUNT}, prefix = "minutely" }}]

[[clusters.svms]]
name = "svm1"

[[clusters.svms.volumes]]
name = "v1"
snapshot_policy = "every-minute"
luns = [{{ name = "lun0" }}, {{ name = "lun1" }}, {{ name = "snapwarden.w.20200101T000000Z.lun0" }}]

[[clusters.svms.volumes]]
name = "v2"
snapshot_policy = "every-minute"
luns = [{{ name = "lun0" }}]

[[clusters.svms.volumes]]
name = "v3"
snapshot_policy = "every-minute"
luns = [{{ name = "lun0" }}{v3_luns}]

[[clusters.svms.volumes]]
name = "v4"
snapshot_policy = "every-minute"
luns = [{{ name = "lun0" }}, {{ name = "lun1" }}]

[[clusters.svms.volumes]]
name = "v5"
snapshot_policy = "every-minute"
luns = [{{ name = "lun0" }}, {{ name = "lun1" }}]

[[clusters.svms.volumes]]
name = "v6"
snapshot_policy = "every-minute"
luns = [{{ name = "lun0" }}]
"#
    )
}

fn policy(url: &str, fingerprint: &str) -> String {
    let volume = |name: &str, luns: &str, clone: &str| {
        format!(
            "[[volume]]\ncluster = \"c1\"\nsvm = \"svm1\"\nname = \"{name}\"\nluns = [{luns}]\n\
             snapshot_policy = \"ontap\"\nclone = \"{clone}\"\n\n"
        )
    };
    format!(
        r#"[agent]
listen = "127.0.0.1:0"
guard = "5s"
concurrency = 2
observe_interval = "10s"

[[cluster]]
name = "c1"
endpoint = "{url}"
username = "admin"
password_env = "{PASSWORD_ENV}"
pin_sha256 = "{fingerprint}"
timezone = "auto"

{}[[window]]
name = "w"
volumes = [{}]
start = "* * * * *"
timezone = "UTC"
expected = "10s"
max = "40s"
shift_limit = "0s"
on_conflict = "run"
hook = {{ command = ["sleep", "4"] }}
"#,
        VOLUMES
            .iter()
            .map(|(name, luns, clone)| {
                let luns: Vec<String> = (0..*luns)
                    .map(|i| format!("\"/vol/{name}/lun{i}\""))
                    .collect();
                volume(name, &luns.join(", "), clone)
            })
            .collect::<String>(),
        VOLUMES
            .iter()
            .map(|(name, _, _)| format!("\"c1/svm1/{name}\""))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// splitmix64: a seeded, reproducible source of kill times.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// A child process killed when dropped (a failing assertion leaves nothing running).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `snapwarden simulator serve` and a REST client for it.
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

    async fn now(&self) -> DateTime<Utc> {
        let v = self.get("/simulator/v1/clock").await;
        v["now"].as_str().expect("now").parse().expect("RFC 3339")
    }

    async fn volume_uuid(&self, name: &str) -> String {
        let v = self.get(&format!("/api/storage/volumes?name={name}")).await;
        v["records"][0]["uuid"].as_str().expect("uuid").to_string()
    }

    /// Every snapshot and LUN of the cluster, as ONTAP lists them.
    async fn objects(&self) -> Objects {
        let snaps = self
            .get("/api/storage/volumes/*/snapshots?fields=name,comment,volume.name")
            .await;
        let luns = self.get("/api/storage/luns?fields=name").await;
        let records = |v: &Value| v["records"].as_array().cloned().unwrap_or_default();
        Objects {
            snapshots: records(&snaps)
                .iter()
                .map(|s| Snap {
                    uuid: s["uuid"].as_str().unwrap_or_default().to_string(),
                    name: s["name"].as_str().unwrap_or_default().to_string(),
                    comment: s["comment"].as_str().map(str::to_string),
                    volume: s["volume"]["name"].as_str().unwrap_or_default().to_string(),
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Snap {
    uuid: String,
    name: String,
    comment: Option<String>,
    volume: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Lun {
    uuid: String,
    name: String,
}

struct Objects {
    snapshots: Vec<Snap>,
    luns: Vec<Lun>,
}

impl Objects {
    /// Snapshots named with snapwarden's prefix and LUNs at a clone-like path.
    fn snapwarden_like(&self) -> (Vec<&Snap>, Vec<&Lun>) {
        let ours = |leaf: &str| {
            leaf.strip_prefix(PREFIX)
                .is_some_and(|rest| rest.starts_with('.'))
        };
        (
            self.snapshots.iter().filter(|s| ours(&s.name)).collect(),
            self.luns
                .iter()
                .filter(|l| l.name.rsplit('/').next().is_some_and(ours))
                .collect(),
        )
    }
}

/// What the journal says may still exist: `(volume, snapshot name)` and LUN paths of open
/// cycles, with the states of those cycles.
struct Live {
    cycles: Vec<Cycle>,
    snapshots: BTreeSet<(String, String)>,
    luns: BTreeSet<String>,
}

fn live(state_dir: &Path) -> Live {
    let mut out = Live {
        cycles: Vec::new(),
        snapshots: BTreeSet::new(),
        luns: BTreeSet::new(),
    };
    if !state_dir
        .join(snapwarden::agent::journal::FILE_NAME)
        .exists()
    {
        return out;
    }
    let journal = Journal::open_read_only(state_dir).expect("the journal opens");
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
async fn assert_no_hook_outlives_its_agent(state_dir: &Path) {
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

/// Whether the journal holds the cycles of the window occurrence of `at`'s minute.
fn minute_served(state_dir: &Path, at: DateTime<Utc>) -> bool {
    let minute = at.duration_trunc(TimeDelta::minutes(1)).expect("a minute");
    state_dir
        .join(snapwarden::agent::journal::FILE_NAME)
        .exists()
        && Journal::open_read_only(state_dir)
            .expect("the journal opens")
            .recent_cycles(minute, None, 1_000)
            .expect("cycles")
            .iter()
            .any(|c| c.window_start == minute)
}

/// The lifecycle stage a cycle state stands for in the kill table.
fn stage(state: CycleState) -> &'static str {
    match state {
        CycleState::Creating => "creating",
        CycleState::Live => "clone",
        CycleState::Backup => "hook",
        CycleState::Releasing => "releasing",
        CycleState::Locked => "locked",
        CycleState::Released | CycleState::Failed | CycleState::Skipped => "idle",
    }
}

/// One SIGKILL: when, after how long, and the stages of the cycles it interrupted.
struct Kill {
    ran_ms: u64,
    at: DateTime<Utc>,
    stages: BTreeSet<&'static str>,
    open: usize,
}

/// The test's working files.
struct Files {
    dir: PathBuf,
    state: PathBuf,
    policy: PathBuf,
    log: PathBuf,
}

impl Files {
    fn agent_log(&self, header: &str) -> File {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("agent log");
        writeln!(f, "===== {header}").expect("agent log");
        f
    }
}

fn spawn_agent(files: &Files, header: &str) -> Proc {
    let log = files.agent_log(header);
    Proc(
        Command::new(env!("CARGO_BIN_EXE_snapwarden"))
            .args(["run", "--config"])
            .arg(&files.policy)
            .arg("--state-dir")
            .arg(&files.state)
            .env(PASSWORD_ENV, PASSWORD)
            .env("SNAPWARDEN_LOG", "info")
            .current_dir(&files.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A file, not a pipe: hooks outlive a killed agent and would hold a pipe open.
            .stderr(log)
            .spawn()
            .expect("snapwarden run starts"),
    )
}

/// A bounded wait on a condition, checked every 200 ms.
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
        tokio::time::sleep(Duration::from_millis(200)).await;
        true
    }
}

/// Every snapwarden-like object on the cluster that is neither a look-alike nor owned by a cycle
/// the journal shows as open: what a leak looks like.
async fn leaks(sim: &Sim, state_dir: &Path, lookalikes: &Lookalikes) -> Vec<String> {
    let objects = sim.objects().await;
    let live = live(state_dir);
    let (snaps, luns) = objects.snapwarden_like();
    let mut out = Vec::new();
    for s in snaps {
        if lookalikes.snapshots.contains_key(&s.uuid) {
            continue;
        }
        if !live.snapshots.contains(&(s.volume.clone(), s.name.clone())) {
            out.push(format!(
                "snapshot {} on {} ({:?})",
                s.name, s.volume, s.comment
            ));
        }
    }
    for l in luns {
        if lookalikes.luns.contains_key(&l.uuid) {
            continue;
        }
        if !live.luns.contains(&l.name) {
            out.push(format!("LUN {}", l.name));
        }
    }
    out
}

/// Objects that look like snapwarden's or are a user's, made before the agent first runs.
struct Lookalikes {
    /// By uuid.
    snapshots: BTreeMap<String, Snap>,
    /// By uuid: the one at a clone-like path and those at v3's clone paths.
    luns: BTreeMap<String, Lun>,
}

async fn make_lookalikes(sim: &Sim, collisions: &[String]) -> Lookalikes {
    let wanted = [
        ("v1", LOOKALIKE_NO_MARKER, "made by hand, not by snapwarden"),
        ("v2", LOOKALIKE_NOT_JOURNALED, FOREIGN_MARKER),
        ("v3", USER_SNAPSHOT, "user snapshot before an upgrade"),
    ];
    for (volume, name, comment) in wanted {
        let uuid = sim.volume_uuid(volume).await;
        sim.call(
            reqwest::Method::POST,
            &format!("/api/storage/volumes/{uuid}/snapshots"),
            Some(json!({"name": name, "comment": comment})),
        )
        .await;
    }
    let poll = Poll::new(Duration::from_secs(30));
    loop {
        let objects = sim.objects().await;
        let snaps: BTreeMap<String, Snap> = objects
            .snapshots
            .iter()
            .filter(|s| {
                wanted
                    .iter()
                    .any(|(v, n, _)| s.volume == *v && s.name == *n)
            })
            .map(|s| (s.uuid.clone(), s.clone()))
            .collect();
        let luns: BTreeMap<String, Lun> = objects
            .luns
            .iter()
            .filter(|l| l.name == LOOKALIKE_LUN || collisions.contains(&l.name))
            .map(|l| (l.uuid.clone(), l.clone()))
            .collect();
        if snaps.len() == wanted.len() && luns.len() == collisions.len() + 1 {
            return Lookalikes {
                snapshots: snaps,
                luns,
            };
        }
        assert!(poll.again().await, "the look-alikes appear in the listings");
    }
}

/// The scheduled snapshots of every volume are the last ones the schedule took, as many as
/// rotation keeps: none was deleted by anyone but rotation.
async fn check_scheduled(sim: &Sim, started: DateTime<Utc>) {
    // A listing between two reads of the clock in the same minute has a known expectation.
    let mut checked = false;
    for _ in 0..5 {
        let before = sim.now().await;
        let objects = sim.objects().await;
        let after = sim.now().await;
        let minute = |t: DateTime<Utc>| t.duration_trunc(TimeDelta::minutes(1)).expect("trunc");
        if minute(before) != minute(after) {
            continue;
        }
        let latest = minute(after);
        // Minute boundaries after the simulator started; a boundary within the second before
        // the first clock read may or may not have fired.
        let fired = |since: DateTime<Utc>| {
            let first = minute(since) + TimeDelta::minutes(1);
            usize::try_from((latest - first).num_minutes() + 1).unwrap_or(0)
        };
        let (low, high) = (
            fired(started).min(SCHEDULE_COUNT),
            fired(started - TimeDelta::seconds(2)).min(SCHEDULE_COUNT),
        );
        for (volume, _, _) in VOLUMES {
            let mut names: Vec<&str> = objects
                .snapshots
                .iter()
                .filter(|s| s.volume == volume && s.name.starts_with("minutely."))
                .map(|s| s.name.as_str())
                .collect();
            names.sort_unstable();
            names.reverse();
            assert!(
                (low..=high).contains(&names.len()),
                "volume {volume}: {} scheduled snapshots, expected {low}..={high} (the schedule's count {SCHEDULE_COUNT}): {names:?}",
                names.len()
            );
            for (i, name) in names.iter().enumerate() {
                let minutes = i64::try_from(i).expect("small");
                let expected = format!(
                    "minutely.{}",
                    (latest - TimeDelta::minutes(minutes)).format("%Y-%m-%d_%H%M")
                );
                assert_eq!(
                    *name, expected,
                    "volume {volume}: the scheduled snapshots are the latest ones, consecutive: {names:?}"
                );
            }
        }
        checked = true;
        break;
    }
    assert!(
        checked,
        "five listings in a row straddled a minute boundary"
    );
}

/// Waits until a round may start: a minute after `last` (the previous round's) whose occurrence
/// can still start. Returns that minute.
async fn wait_for_round(sim: &Sim, last: Option<DateTime<Utc>>) -> DateTime<Utc> {
    let poll = Poll::new(Duration::from_secs(130));
    loop {
        let now = sim.now().await;
        let minute = now.duration_trunc(TimeDelta::minutes(1)).expect("a minute");
        if now.second() <= ROUND_LATEST_START && last.is_none_or(|l| minute > l) {
            return minute;
        }
        assert!(
            poll.again().await,
            "the simulator clock reached a round start"
        );
    }
}

/// Runs the agent until the journal shows nothing open that is not locked and nothing leaked,
/// then stops it with SIGTERM (a graceful stop releases whatever it started meanwhile).
async fn settle(sim: &Sim, files: &Files, lookalikes: &Lookalikes, header: &str) {
    let agent = spawn_agent(files, header);
    let poll = Poll::new(Duration::from_secs(60));
    let quiet = loop {
        let open = live(&files.state)
            .cycles
            .iter()
            .any(|c| c.state != CycleState::Locked);
        if !open && leaks(sim, &files.state, lookalikes).await.is_empty() {
            break true;
        }
        if !poll.again().await {
            break false;
        }
    };
    stop_gracefully(agent);
    assert_no_hook_outlives_its_agent(&files.state).await;
    assert!(
        quiet,
        "the agent released its leftovers within 60 s; open cycles: {:?}; leaks: {:?}; log: {}",
        live(&files.state)
            .cycles
            .iter()
            .map(|c| format!("{} {} {}", c.volume, c.backing_snapshot, c.state.as_str()))
            .collect::<Vec<_>>(),
        leaks(sim, &files.state, lookalikes).await,
        files.log.display()
    );
}

fn stop_gracefully(mut agent: Proc) {
    let pid = libc::pid_t::try_from(agent.0.id()).expect("a pid");
    // SAFETY: kill(2) with a pid this test spawned and has not reaped.
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(sent, 0, "SIGTERM sent");
    let until = Instant::now() + Duration::from_secs(150);
    loop {
        if let Some(status) = agent.0.try_wait().expect("wait") {
            assert!(status.success(), "the agent stops with exit 0: {status}");
            return;
        }
        assert!(Instant::now() < until, "the agent stopped after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_points_the_agent_leaks_nothing_and_touches_nothing_foreign() {
    let begun = Instant::now();
    let kills_wanted =
        usize::try_from(env_number("CRASH_KILLS", DEFAULT_KILLS as u64)).expect("a kill count");
    let seed = env_number("CRASH_SEED", 0x5eed_c4a5);
    let mut rng = Rng(seed);

    let tmp = tempfile::tempdir().expect("tempdir");
    let kept = std::env::var_os("CRASH_KEEP").is_some();
    let files = Files {
        dir: tmp.path().to_path_buf(),
        state: tmp.path().join("state"),
        policy: tmp.path().join("policy.toml"),
        log: tmp.path().join("agent.log"),
    };
    let world_path = tmp.path().join("world.toml");
    let collisions = collisions(Utc::now());
    std::fs::write(&world_path, world(&collisions)).expect("world");
    let sim = Sim::start(
        &world_path,
        File::create(tmp.path().join("sim.log")).expect("sim log"),
    );
    let sim_started = sim.now().await;
    std::fs::write(&files.policy, policy(&sim.url, &sim.fingerprint)).expect("policy");
    let lookalikes = make_lookalikes(&sim, &collisions).await;
    sim.call(
        reqwest::Method::POST,
        "/simulator/v1/faults",
        Some(json!({"latency_ms": LATENCY_MS})),
    )
    .await;
    println!(
        "crash test: seed {seed:#x}, {kills_wanted} kills, state in {}",
        files.dir.display()
    );

    let mut kills: Vec<Kill> = Vec::new();
    let covered = |kills: &[Kill]| {
        kills
            .iter()
            .flat_map(|k| k.stages.iter())
            .filter(|s| **s != "idle")
            .collect::<BTreeSet<_>>()
            .len()
    };
    let mut rounds = 0;
    let mut last_round = None;
    while kills.len() < kills_wanted
        || (covered(&kills) < 2 && kills.len() < kills_wanted + EXTRA_KILLS)
    {
        last_round = Some(wait_for_round(&sim, last_round).await);
        rounds += 1;
        loop {
            let ran_ms = rng.between(RUN_MS.0, RUN_MS.1);
            let n = kills.len() + 1;
            let mut agent = spawn_agent(&files, &format!("run {n} (SIGKILL after {ran_ms} ms)"));
            tokio::time::sleep(Duration::from_millis(ran_ms)).await;
            agent.0.kill().expect("SIGKILL");
            agent.0.wait().expect("reaped");
            let at = Utc::now();
            assert_no_hook_outlives_its_agent(&files.state).await;
            let open = live(&files.state).cycles;
            let mut stages: BTreeSet<&'static str> = open.iter().map(|c| stage(c.state)).collect();
            if stages.is_empty() {
                stages.insert("idle");
            }
            println!(
                "kill {n:>3}: after {:>5} ms at :{:02}.{:03}, {} open cycles: {}",
                ran_ms,
                at.second(),
                at.timestamp_subsec_millis(),
                open.len(),
                stages.iter().copied().collect::<Vec<_>>().join(", ")
            );
            kills.push(Kill {
                ran_ms,
                at,
                stages,
                open: open.len(),
            });
            let done = kills.len() >= kills_wanted && covered(&kills) >= 2
                || kills.len() >= kills_wanted + EXTRA_KILLS;
            // A campaign moves on to the next minute once this one's cycles are over: later runs
            // would only be killed idle. The bounded form keeps to one round.
            let minute_over =
                kills_wanted > DEFAULT_KILLS && open.is_empty() && minute_served(&files.state, at);
            if done || minute_over || sim.now().await.second() > ROUND_END {
                break;
            }
        }
        // Leftovers are released before the scheduled snapshot at the next minute.
        settle(
            &sim,
            &files,
            &lookalikes,
            &format!("round {rounds}: settling run"),
        )
        .await;
    }

    // The final restart (the last settling run) released everything; check what is on the
    // cluster against the journal and the look-alikes.
    let left = leaks(&sim, &files.state, &lookalikes).await;
    assert!(left.is_empty(), "leaked: {left:?}");
    let live_left = live(&files.state);
    let objects = sim.objects().await;
    let (snaps, luns) = objects.snapwarden_like();
    let owned: Vec<String> = snaps
        .iter()
        .filter(|s| !lookalikes.snapshots.contains_key(&s.uuid))
        .map(|s| s.name.clone())
        .chain(
            luns.iter()
                .filter(|l| !lookalikes.luns.contains_key(&l.uuid))
                .map(|l| l.name.clone()),
        )
        .collect();
    assert!(
        live_left
            .cycles
            .iter()
            .all(|c| c.state == CycleState::Locked),
        "only locked cycles may stay open once the agent is quiet"
    );
    for s in lookalikes.snapshots.values() {
        assert!(
            objects.snapshots.contains(s),
            "look-alike snapshot {} on {} is untouched",
            s.name,
            s.volume
        );
    }
    for l in lookalikes.luns.values() {
        assert!(
            objects.luns.contains(l),
            "look-alike LUN {} is untouched",
            l.name
        );
    }
    check_scheduled(&sim, sim_started).await;

    // The kills interrupted real work, in more than one stage.
    let journal = Journal::open_read_only(&files.state).expect("journal");
    let cycles = journal
        .recent_cycles(DateTime::<Utc>::MIN_UTC, None, 100_000)
        .expect("cycles");
    let created = cycles.iter().filter(|c| c.created_at.is_some()).count();
    assert!(
        created > 0,
        "the agent created backing snapshots: {cycles:?}"
    );
    let mut per_stage: BTreeMap<&str, usize> = BTreeMap::new();
    for k in &kills {
        for s in &k.stages {
            *per_stage.entry(s).or_default() += 1;
        }
    }
    let mut results: BTreeMap<String, usize> = BTreeMap::new();
    for c in &cycles {
        let r = c.result.map_or(c.state.as_str(), |r| r.as_str());
        *results.entry(r.to_string()).or_default() += 1;
    }
    let busiest = kills.iter().map(|k| k.open).max().unwrap_or(0);
    let longest = kills.iter().map(|k| k.ran_ms).max().unwrap_or(0);
    let span = match (kills.first(), kills.last()) {
        (Some(a), Some(b)) => (b.at - a.at).num_seconds(),
        _ => 0,
    };
    println!("\nkills per stage (a kill counts once for each stage its open cycles were in):");
    println!("  {:<10} {:>5}", "stage", "kills");
    for s in ["creating", "clone", "hook", "releasing", "locked", "idle"] {
        println!("  {:<10} {:>5}", s, per_stage.get(s).copied().unwrap_or(0));
    }
    println!(
        "{} kills in {rounds} rounds over {span} s (longest run {longest} ms, at most {busiest} open cycles at a kill); {} cycles: {:?}; {} still open (locked); wall time {:.0} s",
        kills.len(),
        cycles.len(),
        results,
        live_left.cycles.len(),
        begun.elapsed().as_secs_f64()
    );
    assert!(
        covered(&kills) >= 2,
        "the kills hit at least two lifecycle stages: {per_stage:?}"
    );
    if kept {
        println!("kept {}", tmp.keep().display());
    }
    println!(
        "verdict: PASS: nothing leaked ({} snapwarden objects left, all look-alikes or locked cycles'), nothing foreign touched",
        owned.len()
    );
}
