//! The agent through its REST client against `simulator serve`, every create and delete of a
//! cycle answered by a dropped connection after the cluster applied it (`drop_after_apply`): the
//! client's retries meet the first attempts' work and take it, so the cycle completes and leaves
//! nothing — with FlexClone LUNs as with SnapRestore clones.

#[path = "sim_support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::json;
use snapwarden::agent::cycle::{CycleResult, CycleState};
use snapwarden::agent::hook::HookSpec;
use snapwarden::agent::journal::Journal;
use snapwarden::agent::{Agent, ClusterClient, Event, Options, TokioClock, Triggers};
use snapwarden::ontap::{ClientOptions, JobPolling, Ontap, RestClient, RetryPolicy, Secret};
use support::{Sim, PASSWORD, USER};

/// Half a second before the window's 10:01 start, on the simulator's (manual) clock and the
/// agent's.
const START: &str = "2026-03-10T10:00:59.500Z";

const WORLD: &str = r#"
[[clusters]]
name = "c1"
timezone = "Etc/UTC"
licenses = ["flexclone", "snaprestore"]
[[clusters.svms]]
name = "svm1"
[[clusters.svms.volumes]]
name = "vol1"
luns = [{ name = "lun0" }, { name = "lun1" }]
"#;

/// `c1/svm1/vol1` with both LUNs, cloned by `clone`; a window at 10:01 that fits before the
/// hourly snapshot at :05.
fn policy(clone: &str) -> String {
    format!(
        r#"
[agent]
guard = "1m"
observe_interval = "1m"

[[cluster]]
name = "c1"
endpoint = "simulator"
timezone = "UTC"
simulator = {{ version = "9.14.1", licenses = ["flexclone", "snaprestore"] }}

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "p"
copies = [{{ schedule = "hourly", count = 3 }}]

[[volume]]
cluster = "c1"
svm = "svm1"
name = "vol1"
luns = ["/vol/vol1/lun0", "/vol/vol1/lun1"]
snapshot_policy = "p"
clone = "{clone}"

[[window]]
name = "nightly"
volumes = ["c1/svm1/vol1"]
timezone = "UTC"
start = "1 10 * * *"
expected = "1s"
max = "2m"
"#
    )
}

async fn drops_left(sim: &Sim) -> u64 {
    sim.get("/simulator/v1/faults").await["drop_after_apply"]
        .as_u64()
        .expect("drop_after_apply in the faults")
}

async fn one_cycle_with_every_answer_lost(clone: &str) {
    let sim = Sim::start(WORLD, START).await;
    // Six mutations: the backing snapshot, two clones, two clone deletes, the snapshot delete.
    let r = sim
        .call(
            Method::POST,
            "/simulator/v1/faults",
            Some(json!({ "drop_after_apply": 6 })),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let mut o = ClientOptions::new("c1", &sim.base, USER, Secret::new(PASSWORD).unwrap());
    o.retry = RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
    };
    o.job_poll = JobPolling {
        initial: Duration::from_millis(1),
        max_interval: Duration::from_millis(10),
        bound: Duration::from_secs(5),
    };
    let rest: Arc<dyn Ontap> = Arc::new(RestClient::new(o).unwrap());
    let policy = Arc::new(
        snapwarden::config::parse_str(&policy(clone), std::path::Path::new("test.toml")).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let start: DateTime<Utc> = START.parse().unwrap();
    let agent = Agent::new(
        policy,
        vec![ClusterClient {
            name: "c1".into(),
            ontap: rest.clone(),
        }],
        Arc::new(TokioClock::starting_at(start)),
        Options {
            state_dir: dir.path().to_path_buf(),
            triggers: Triggers::Clock,
            hooks: Some(Arc::new(|_| {
                Some(HookSpec::Simulated {
                    duration: TimeDelta::seconds(1),
                    succeed: true,
                })
            })),
        },
    )
    .unwrap();
    let events = agent.events();
    let task = tokio::spawn(agent.run());
    let journal = Journal::open_read_only(dir.path()).unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    let cycle = loop {
        let cycles = journal
            .recent_cycles(DateTime::<Utc>::MIN_UTC, None, 10)
            .unwrap();
        if let Some(c) = cycles.iter().find(|c| c.state.is_terminal()) {
            break c.clone();
        }
        assert!(Instant::now() < end, "no cycle ended: {cycles:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = events.send(Event::Shutdown);
    let left = task.await.unwrap().unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        (cycle.state, cycle.result),
        (CycleState::Released, Some(CycleResult::Completed)),
        "{clone}: {}",
        cycle.detail
    );
    assert_eq!(drops_left(&sim).await, 0, "{clone}: every answer was lost");
    // Nothing left, and no retry made a second object.
    let luns: Vec<String> = rest
        .luns()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(luns, ["/vol/vol1/lun0", "/vol/vol1/lun1"], "{clone}");
    let ours: Vec<String> = rest
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .map(|s| String::from(s.name))
        .filter(|n| n.starts_with("snapwarden."))
        .collect();
    assert!(ours.is_empty(), "{clone}: {ours:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flexclone_cycle_completes_when_every_answer_is_lost() {
    one_cycle_with_every_answer_lost("flexclone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snaprestore_cycle_completes_when_every_answer_is_lost() {
    one_cycle_with_every_answer_lost("snaprestore").await;
}
