//! Veeam-driven windows in virtual time: the agent starts the job through the
//! `VeeamClient` at the planned start against the embedded Veeam simulator (same world as the
//! ONTAP simulator, answered in process), follows its session, attributes the job's
//! `VeeamSourceSnapshot_…` to the cycle, and reports locks with their pins. Every test also
//! checks that a foreign snapshot made before the agent started is still there at the end and is
//! reported as `foreign`: snapwarden never deletes a tool's snapshot.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use snapwarden::agent::clock::{reader, Clock};
use snapwarden::agent::cycle::{Cycle, CycleResult, CycleState};
use snapwarden::agent::journal::Journal;
use snapwarden::agent::status::StatusBoard;
use snapwarden::agent::{Agent, Event, Options, TokioClock, Triggers};
use snapwarden::config::{self, Policy};
use snapwarden::ha::memory::MemoryElection;
use snapwarden::ha::LeaderElector;
use snapwarden::sim::embedded::{connect_virtual, VeeamConn};
use snapwarden::sim::veeam::VeeamWorld;
use snapwarden::sim::Simulator;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("RFC 3339")
}

/// One volume, hourly snapshots at :05 kept 3, a Veeam window at `start` (20 min job, 30 min max).
fn policy(start: &str, on_conflict: &str) -> Policy {
    let text = format!(
        r#"
[agent]
guard = "5m"
observe_interval = "1m"

[[cluster]]
name = "lab"
endpoint = "simulator"
timezone = "UTC"
simulator = {{ licenses = ["snaprestore"] }}

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "p"
copies = [{{ schedule = "hourly", count = 3 }}]

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_a"
luns = ["/vol/vol_a/lun0"]
snapshot_policy = "p"

[[veeam]]
name = "vbr"
url = "simulator"
username = "svc"

[[window]]
name = "sql"
volumes = ["lab/svm1/vol_a"]
start = "{start}"
timezone = "UTC"
expected = "20m"
max = "30m"
on_conflict = "{on_conflict}"
shift_limit = "1h"
driver = "veeam"
veeam = {{ server = "vbr", job = "SQL nightly" }}
"#
    );
    config::parse_str(&text, std::path::Path::new("veeam.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// Name of the foreign snapshot every test makes before the agent starts.
const OLD: &str = "VeeamSourceSnapshot_from_last_week";

struct Harness {
    task: tokio::task::JoinHandle<Result<Vec<Cycle>, snapwarden::agent::AgentError>>,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    board: Arc<StatusBoard>,
    metrics: Arc<snapwarden::agent::metrics::Metrics>,
    journal: Arc<Journal>,
    sim: Arc<Simulator>,
    veeam: Vec<VeeamConn>,
    clock: Arc<TokioClock>,
    /// The volume the tests look at: (cluster, volume).
    at: (&'static str, &'static str),
    policy: Arc<Policy>,
    /// The cluster clients, kept for a restart on the same world.
    ontap: Vec<(String, Arc<dyn snapwarden::ontap::Ontap>)>,
    /// With an election: this replica's elector (kept for a restart).
    elector: Option<Arc<dyn LeaderElector>>,
    dir: tempfile::TempDir,
}

/// The agent on the embedded simulators at `epoch`; `prepare` changes the Veeam side first.
fn start(policy: Policy, epoch: &str, prepare: impl FnOnce(&mut VeeamWorld)) -> Harness {
    start_on(policy, epoch, ("lab", "vol_a"), prepare)
}

fn start_on(
    policy: Policy,
    epoch: &str,
    at: (&'static str, &'static str),
    prepare: impl FnOnce(&mut VeeamWorld),
) -> Harness {
    start_replica(policy, epoch, at, prepare, None)
}

/// As [`start_on`], as one replica of an election when `elector` is given.
fn start_replica(
    policy: Policy,
    epoch: &str,
    at: (&'static str, &'static str),
    prepare: impl FnOnce(&mut VeeamWorld),
    elector: Option<Arc<dyn LeaderElector>>,
) -> Harness {
    let policy = Arc::new(policy);
    let clock = Arc::new(TokioClock::starting_at(t(epoch)));
    let conns = connect_virtual(&policy, reader(clock.clone())).expect("simulators");
    let sim = conns.simulator.clone().expect("a simulator");
    conns.veeam[0].sim.with(|v, _| prepare(v));
    sim.with(|w| {
        let ci = w.cluster_index(at.0).unwrap();
        let vi = w.volume_by_name(ci, at.1).unwrap();
        w.create_snapshot(ci, vi, OLD, Some("Veeam Backup".into()))
            .unwrap();
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let ontap: Vec<(String, Arc<dyn snapwarden::ontap::Ontap>)> = conns
        .clients
        .iter()
        .map(|c| (c.cluster_name().to_string(), c.clone()))
        .collect();
    let agent = agent(&policy, &ontap, &conns.veeam, &clock, &dir, elector.clone());
    Harness {
        events: agent.events(),
        board: agent.status_board(),
        metrics: agent.metrics(),
        journal: agent.journal(),
        task: tokio::spawn(agent.run()),
        sim,
        veeam: conns.veeam,
        clock,
        at,
        policy,
        ontap,
        dir,
        elector,
    }
}

fn agent(
    policy: &Arc<Policy>,
    ontap: &[(String, Arc<dyn snapwarden::ontap::Ontap>)],
    veeam: &[VeeamConn],
    clock: &Arc<TokioClock>,
    dir: &tempfile::TempDir,
    elector: Option<Arc<dyn LeaderElector>>,
) -> Agent {
    let agent = Agent::new(
        policy.clone(),
        ontap
            .iter()
            .map(|(name, o)| snapwarden::agent::ClusterClient {
                name: name.clone(),
                ontap: o.clone(),
            })
            .collect(),
        clock.clone(),
        Options {
            state_dir: dir.path().join("state"),
            triggers: Triggers::Clock,
            hooks: None,
        },
    )
    .expect("agent starts")
    .with_veeam(
        veeam
            .iter()
            .map(|v| (v.name.clone(), v.client.clone()))
            .collect(),
    );
    match elector {
        Some(e) => agent.with_elector(e),
        None => agent,
    }
}

impl Harness {
    async fn run_until(&self, at: &str) {
        let at = t(at);
        while self.clock.now() < at {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    fn cycles(&self) -> Vec<Cycle> {
        let mut c = self
            .journal
            .recent_cycles(DateTime::<Utc>::MIN_UTC, None, 1000)
            .expect("journal");
        c.reverse();
        c
    }

    fn snapshots(&self) -> Vec<String> {
        self.sim.with(|w| {
            let ci = w.cluster_index(self.at.0).unwrap();
            let vi = w.volume_by_name(ci, self.at.1).unwrap();
            w.clusters[ci].volumes[vi]
                .snapshots
                .iter()
                .map(|s| s.name.clone())
                .collect()
        })
    }

    /// (kind, detail) of every recorded conflict.
    fn conflicts(&self) -> Vec<(String, String)> {
        self.board
            .get()
            .conflicts
            .iter()
            .map(|c| {
                let v = serde_json::to_value(c).unwrap();
                (
                    v["kind"].as_str().unwrap_or("").to_string(),
                    v["detail"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// The snapshot made before the agent started is still there and reported `foreign` (never
    /// attributed to a cycle, never deleted).
    fn assert_foreign_kept(&self) {
        assert!(
            self.snapshots().contains(&OLD.to_string()),
            "{:?}",
            self.snapshots()
        );
        assert!(
            self.conflicts()
                .iter()
                .any(|(k, d)| k == "foreign" && d.contains(OLD)),
            "{:?}",
            self.conflicts()
        );
    }

    async fn stop(self) {
        let _ = self.events.send(Event::Shutdown);
        self.task.await.expect("agent task").expect("agent ran");
    }

    /// Stops the agent and starts a new one on the same world, clients and journal.
    async fn restart(mut self) -> Harness {
        let _ = self.events.send(Event::Shutdown);
        (&mut self.task)
            .await
            .expect("agent task")
            .expect("agent ran");
        let agent = agent(
            &self.policy,
            &self.ontap,
            &self.veeam,
            &self.clock,
            &self.dir,
            self.elector.clone(),
        );
        self.events = agent.events();
        self.board = agent.status_board();
        self.metrics = agent.metrics();
        self.journal = agent.journal();
        self.task = tokio::spawn(agent.run());
        self
    }
}

#[tokio::test(start_paused = true)]
async fn a_coordinated_job_runs_in_the_gap_and_leaves_no_locked_snapshot() {
    // Configured at 01:55: it would hold its clone across 02:05. `shift` moves it into a gap.
    let h = start(
        policy("55 1 * * *", "shift"),
        "2027-01-01T01:00:00Z",
        |_| {},
    );
    h.run_until("2027-01-01T03:30:00Z").await;
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    let c = &cycles[0];
    assert_eq!(
        (c.state, c.result),
        (CycleState::Released, Some(CycleResult::Completed)),
        "{c:?}"
    );
    assert!(
        c.backing_snapshot
            .starts_with("VeeamSourceSnapshot_SQL_nightly_"),
        "{c:?}"
    );
    assert!(c.detail.contains("Success"), "{}", c.detail);
    // The job ran 20 minutes in the gap after 02:05, ending before 03:05 less the 5 min guard:
    // no hourly instant between its snapshot and its end.
    let created = c.created_at.expect("attributed");
    let ended = c.clones_deleted_at.expect("ended");
    assert!(created > t("2027-01-01T02:05:00Z"), "{created}");
    assert!(ended <= t("2027-01-01T03:00:00Z"), "{ended}");
    assert_eq!(ended - created, TimeDelta::minutes(20));
    // Veeam deleted its own snapshot; nothing locked, nothing captured; the job's snapshot was
    // the cycle's, not `foreign`.
    assert!(
        !h.snapshots().contains(&c.backing_snapshot),
        "{:?}",
        h.snapshots()
    );
    let kinds: Vec<String> = h.conflicts().into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, vec!["foreign".to_string()], "{:?}", h.conflicts());
    h.assert_foreign_kept();
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_job_at_its_colliding_time_is_locked_with_its_pins_and_unlock_estimate() {
    // The baseline: the same job run at its configured 01:55, across the 02:05 snapshot.
    let h = start(policy("55 1 * * *", "run"), "2027-01-01T01:00:00Z", |_| {});
    h.run_until("2027-01-01T02:30:00Z").await;
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    let c = &cycles[0];
    assert_eq!(c.state, CycleState::Locked, "{c:?}");
    assert_eq!(c.created_at, Some(t("2027-01-01T01:55:00Z")));
    // Veeam's own answer: the session ends with a warning, its delete refused.
    assert!(c.detail.contains("Warning"), "{}", c.detail);
    assert!(h.snapshots().contains(&c.backing_snapshot));
    let conflicts = h.conflicts();
    let chain: Vec<&String> = conflicts
        .iter()
        .filter(|(k, _)| k == "chain_conflict")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(chain.len(), 1, "{conflicts:?}");
    assert!(chain[0].contains("hourly.2027-01-01_0205"), "{}", chain[0]);
    let locked: Vec<&String> = conflicts
        .iter()
        .filter(|(k, _)| k == "locked")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(locked.len(), 1, "{conflicts:?}");
    // By hand: hourly keeps 3; the 02:05 copy goes when the third later one is taken, at 05:05.
    assert!(
        locked[0].contains("pinned by hourly.2027-01-01_0205")
            && locked[0].contains("rotates out at 2027-01-01T05:05:00+00:00"),
        "{}",
        locked[0]
    );
    // The late release (past 02:05 less the guard) is reported too.
    assert!(
        conflicts.iter().any(|(k, _)| k == "late_release"),
        "{conflicts:?}"
    );
    // Hours later, after the pin rotated out, the tool's snapshot is still the tool's to delete.
    h.run_until("2027-01-01T06:00:00Z").await;
    assert!(
        h.snapshots().contains(&c.backing_snapshot),
        "{:?}",
        h.snapshots()
    );
    assert!(!h
        .snapshots()
        .contains(&"hourly.2027-01-01_0205".to_string()));
    h.assert_foreign_kept();
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_job_longer_than_the_token_lifetime_is_followed_to_its_end() {
    // Access tokens live 90 s; the job runs 20 minutes.
    let h = start(policy("10 1 * * *", "shift"), "2027-01-01T01:00:00Z", |v| {
        v.faults.token_seconds = Some(90)
    });
    h.run_until("2027-01-01T01:45:00Z").await;
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert_eq!(
        cycles[0].result,
        Some(CycleResult::Completed),
        "{:?}",
        cycles[0]
    );
    assert!(cycles[0].detail.contains("Success"), "{}", cycles[0].detail);
    h.assert_foreign_kept();
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_server_down_is_retried_then_the_cycle_fails_never_skipped() {
    let h = start(policy("10 1 * * *", "shift"), "2027-01-01T01:00:00Z", |v| {
        v.faults.down = true
    });
    h.run_until("2027-01-01T01:45:00Z").await;
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    let c = &cycles[0];
    assert_eq!(
        (c.state, c.result),
        (CycleState::Failed, Some(CycleResult::Failed)),
        "{c:?}"
    );
    // A 20 min job must start by 01:20 to end by 01:40. Attempts at 01:10:00, then after 10, 20,
    // 40, 80, 120, 120, 120 s: :10:10, :10:30, :11:10, :12:30, :14:30, :16:30, :18:30; the next
    // (01:20:30) would be too late.
    assert!(
        c.detail.contains("not started after 8 attempt(s)"),
        "{}",
        c.detail
    );
    assert!(c.detail.contains("unreachable"), "{}", c.detail);
    assert!(c.detail.contains("Veeam server vbr"), "{}", c.detail);
    h.assert_foreign_kept();
    h.stop().await;
}

/// A replica that stops leading while it retries a Veeam start never starts the job, even when
/// the server comes back within the window (stepping down cancels the start; the start itself is
/// also fenced, like an ONTAP mutation).
#[tokio::test(start_paused = true)]
async fn a_replica_that_stops_leading_while_retrying_never_starts_the_job() {
    let election = MemoryElection::new();
    let replica = election.join("a");
    election.elect("a");
    let h = start_replica(
        policy("10 1 * * *", "shift"),
        "2027-01-01T01:00:00Z",
        ("lab", "vol_a"),
        |v| v.faults.down = true,
        Some(replica),
    );
    h.run_until("2027-01-01T01:11:00Z").await;
    // Retrying (the server is down); now another replica leads and the server comes back.
    election.depose();
    h.veeam[0].sim.with(|v, _| v.faults.down = false);
    h.run_until("2027-01-01T01:45:00Z").await;
    let sessions = h.veeam[0].sim.with(|v, _| v.sessions.len());
    assert_eq!(sessions, 0, "the deposed replica started the job");
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert_eq!(cycles[0].result, Some(CycleResult::Failed), "{cycles:?}");
    // Stepping down cancels the start: the job was never started.
    assert!(
        cycles[0].detail.contains("not started")
            || cycles[0].detail.contains("before the Veeam job started"),
        "{}",
        cycles[0].detail
    );
    h.assert_foreign_kept();
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_server_back_within_the_window_runs_the_job_late() {
    let h = start(policy("10 1 * * *", "shift"), "2027-01-01T01:00:00Z", |v| {
        v.faults.down = true
    });
    h.run_until("2027-01-01T01:12:00Z").await;
    // Reported while it is retried: the live cycle says why it has not started.
    let live = &h.cycles()[0];
    assert_eq!(live.state, CycleState::Backup);
    assert!(
        live.detail.contains(
            "Veeam job not started yet (4 attempt(s), next at 2027-01-01T01:12:30+00:00)"
        ),
        "{}",
        live.detail
    );
    h.veeam[0].sim.with(|v, _| v.faults.down = false);
    h.run_until("2027-01-01T01:45:00Z").await;
    let c = &h.cycles()[0];
    assert_eq!(c.result, Some(CycleResult::Completed), "{c:?}");
    // Started at the first retry after 01:12 (01:12:30), so 20 minutes later it stopped.
    assert_eq!(c.created_at, Some(t("2027-01-01T01:12:30Z")), "{c:?}");
    h.assert_foreign_kept();
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn wrong_credentials_fail_the_cycle_with_a_clear_error() {
    let h = start(policy("10 1 * * *", "shift"), "2027-01-01T01:00:00Z", |v| {
        v.users = vec![("svc".into(), "not-the-policy-password".into())]
    });
    h.run_until("2027-01-01T01:15:00Z").await;
    let c = &h.cycles()[0];
    assert_eq!(c.result, Some(CycleResult::Failed), "{c:?}");
    assert!(
        c.detail.contains("Veeam server vbr")
            && c.detail.contains("sign-in refused")
            && c.detail.contains("AccessDenied")
            && c.detail.contains("check username and password"),
        "{}",
        c.detail
    );
    // Failed at once: no retry of a password that cannot work.
    assert_eq!(c.released_at, Some(t("2027-01-01T01:10:00Z")), "{c:?}");
    h.assert_foreign_kept();
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_job_the_server_does_not_have_fails_naming_the_jobs_it_has() {
    let h = start(policy("10 1 * * *", "shift"), "2027-01-01T01:00:00Z", |v| {
        v.jobs[0].name = "Exchange weekly".into()
    });
    h.run_until("2027-01-01T01:15:00Z").await;
    let c = &h.cycles()[0];
    assert_eq!(c.result, Some(CycleResult::Failed), "{c:?}");
    assert!(
        c.detail
            .contains("job \"SQL nightly\" does not exist (jobs: \"Exchange weekly\")"),
        "{}",
        c.detail
    );
    h.assert_foreign_kept();
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_job_already_running_is_followed_not_started_twice() {
    // Someone started the job from the console at 01:05; the window's start comes at 01:10.
    let h = start(
        policy("10 1 * * *", "shift"),
        "2027-01-01T01:00:00Z",
        |_| {},
    );
    h.run_until("2027-01-01T01:05:00Z").await;
    let vsim = h.veeam[0].sim.clone();
    snapwarden::sim::veeam::advance_all(&h.sim, &[vsim], h.clock.now());
    let console = h.veeam[0].sim.with(|v, w| {
        let id = v.jobs[0].id.clone();
        v.start(w, &id).expect("starts").id
    });
    h.run_until("2027-01-01T01:45:00Z").await;
    let sessions = h.veeam[0].sim.with(|v, _| v.sessions.len());
    assert_eq!(sessions, 1, "the job was started a second time");
    let c = &h.cycles()[0];
    assert_eq!(c.result, Some(CycleResult::Completed), "{c:?}");
    assert!(c.detail.contains(&console), "{}", c.detail);
    // The console's run ended at 01:25 (its 20 minutes from 01:05).
    assert_eq!(c.clones_deleted_at, Some(t("2027-01-01T01:25:00Z")));
    h.assert_foreign_kept();
    h.stop().await;
}

fn demo() -> Policy {
    config::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/veeam-demo.toml"))
        .expect("the Veeam demo loads")
}

/// The promise of docs/veeam.md (Demo): within minutes the demo shows the job started in a gap by the agent,
/// followed to Success, its snapshot attributed, no conflict; `simulate --compare` shows that the
/// job at its configured time gets every run's snapshot captured and locked.
#[tokio::test(start_paused = true)]
async fn the_veeam_demo_shows_a_coordinated_job_within_minutes() {
    let h = start_on(demo(), "2027-03-01T10:00:30Z", ("demo", "vol_sql"), |_| {});
    h.run_until("2027-03-01T10:07:00Z").await;
    let cycles = h.cycles();
    assert!(cycles.len() >= 2, "{cycles:?}");
    for c in &cycles {
        assert_eq!(
            (c.state, c.result),
            (CycleState::Released, Some(CycleResult::Completed)),
            "{c:?}"
        );
        // Configured :02, :05; started a minute earlier, in the gap after :00, :03.
        assert_eq!(c.window_start - c.create_at, TimeDelta::minutes(1), "{c:?}");
        assert!(c
            .backing_snapshot
            .starts_with("VeeamSourceSnapshot_SQL_nightly_"));
        assert!(c.detail.contains("Success"), "{}", c.detail);
    }
    let kinds: Vec<String> = h.conflicts().into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, vec!["foreign".to_string()], "{:?}", h.conflicts());
    // Status, the metrics and history show the driver's cycles like any other.
    let metrics = h.metrics.render();
    assert!(
        metrics.contains(&format!(
            "snapwarden_cycles_total{{result=\"completed\",window=\"sql-veeam\"}} {}",
            cycles.len()
        )),
        "{metrics}"
    );
    let status = serde_json::to_value(h.board.get()).unwrap();
    assert!(
        status["recent_cycles"]
            .as_array()
            .is_some_and(|r| r.iter().any(|c| c["window"] == "sql-veeam")),
        "{status}"
    );
    h.assert_foreign_kept();
    h.stop().await;
}

#[test]
fn the_veeam_demo_compared_with_the_job_at_its_configured_time() {
    // The demo's window, one hour of it (20 runs), to keep the test short.
    let mut policy = demo();
    policy.windows[0].start =
        snapwarden::timeline::CronSpec::parse("2-59/3 10 * * *").expect("cron");
    let settings = snapwarden::simulate::Settings {
        days: 1,
        from: t("2027-03-01T00:00:00Z"),
        seed: 1,
        overrun_rate: 0.0,
        state_dir: None,
    };
    let both = snapwarden::simulate::compare(&policy, &settings).expect("simulates");
    let (c, u) = (&both.coordinated, &both.uncoordinated);
    assert_eq!(
        (
            c.cycles_completed,
            c.cycles_shifted,
            c.chain_conflicts,
            c.locked_at_end
        ),
        (20, 20, 0, 0),
        "{c:?}"
    );
    assert_eq!(c.foreign_objects_deleted, 0);
    // At :02 the job's clone lives across the snapshot at :03 (75 s): captured every time, and
    // Veeam's delete refused every time. By the end of the day the captures have rotated out
    // (five kept, every 3 minutes): the snapshots Veeam left are no longer locked.
    assert_eq!((u.chain_conflicts, u.locked_at_end), (20, 0), "{u:?}");
    // Every run of the 75-second job ended long before the end of the day: none counted as
    // still running.
    assert_eq!((u.cycles_completed, u.cycles_overrun), (20, 0), "{u:?}");
    assert!(u.max_locked_backing_snapshots >= 5, "{u:?}");
}

#[tokio::test(start_paused = true)]
async fn a_restart_follows_the_running_job_again_without_starting_it() {
    let h = start(
        policy("10 1 * * *", "shift"),
        "2027-01-01T01:00:00Z",
        |_| {},
    );
    h.run_until("2027-01-01T01:15:00Z").await;
    assert_eq!(h.cycles()[0].state, CycleState::Backup);
    let h = h.restart().await;
    h.run_until("2027-01-01T01:45:00Z").await;
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    let c = &cycles[0];
    assert_eq!(
        (c.state, c.result),
        (CycleState::Released, Some(CycleResult::Completed)),
        "{c:?}"
    );
    // The one session of 01:10, followed to its end at 01:30 by the second agent.
    assert_eq!(h.veeam[0].sim.with(|v, _| v.sessions.len()), 1);
    assert_eq!(c.clones_deleted_at, Some(t("2027-01-01T01:30:00Z")));
    assert!(c.detail.contains("Success"), "{}", c.detail);
    h.assert_foreign_kept();
    h.stop().await;
}
