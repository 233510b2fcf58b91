//! SIGTERM when a cluster hangs (accepts calls and never answers): the agent exits by
//! `[agent] shutdown_timeout` whatever it was doing, leaves what it began in the journal, and
//! the next start releases it — nothing leaks.

mod agent_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use agent_support::{leftovers, policy, start, t, Setup};
use chrono::TimeDelta;
use snapwarden::agent::cycle::CycleState;
use snapwarden::agent::hook::HookSpec;
use snapwarden::agent::Event;

/// The lab policy with window `nightly` at 01:10 (20m expected, 40m max) on vol_a.
fn nightly() -> String {
    agent_support::lab_policy(
        "\"snaprestore\"",
        "snaprestore",
        "start = \"10 1 * * *\"\nexpected = \"20m\"\nmax = \"40m\"",
        "",
    )
}

/// Sends SIGTERM and waits for the agent to exit; the virtual instant it exited at.
async fn sigterm(h: &agent_support::Harness) -> chrono::DateTime<chrono::Utc> {
    h.events.send(Event::Shutdown).expect("the agent listens");
    let end = h.now() + TimeDelta::hours(1);
    while !h.task.is_finished() {
        assert!(h.now() < end, "the agent did not exit within an hour");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    h.now()
}

/// Restarts on the same state and world with a cluster that answers; everything left is
/// released.
async fn restart_releases_everything(
    sim: Arc<snapwarden::sim::Simulator>,
    dir: Arc<tempfile::TempDir>,
    at: &str,
) {
    let mut setup = Setup::at(at);
    setup.sim = Some(sim);
    setup.dir = Some(dir);
    let h = start(policy(&nightly()), setup);
    h.wait_for(
        "the next start to release what was left",
        TimeDelta::minutes(30),
        |h| leftovers(h, "snapwarden").is_empty() && h.status().live_cycles.is_empty(),
    )
    .await;
    let (left, _, _) = h.stop().await;
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(start_paused = true)]
async fn sigterm_during_a_create_that_hangs_exits_at_once_and_the_next_start_settles_it() {
    let hang = Arc::new(AtomicBool::new(true));
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hang = Some(hang.clone());
    let h = start(policy(&nightly()), setup);
    // The 01:10 create hangs from 01:10 on.
    h.run_until("2027-01-01T01:15:00Z").await;
    let exited = sigterm(&h).await;
    assert!(
        exited <= t("2027-01-01T01:15:00Z") + TimeDelta::seconds(5),
        "exited at {exited}"
    );
    let left = h.task.await.expect("agent task").expect("agent ran");
    assert_eq!(
        left.iter().map(|c| c.state).collect::<Vec<_>>(),
        [CycleState::Creating],
        "the cycle whose create was cut short is left in the journal"
    );
    hang.store(false, Ordering::SeqCst);
    restart_releases_everything(h.sim, h.dir, "2027-01-01T01:16:00Z").await;
}

#[tokio::test(start_paused = true)]
async fn sigterm_while_the_cluster_hangs_on_the_release_exits_by_the_shutdown_timeout() {
    let hang = Arc::new(AtomicBool::new(false));
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hang = Some(hang.clone());
    setup.hooks = Some(Arc::new(|_| {
        Some(HookSpec::Simulated {
            duration: TimeDelta::minutes(20),
            succeed: true,
        })
    }));
    let h = start(policy(&nightly()), setup);
    h.wait_for("the backup to run", TimeDelta::minutes(30), |h| {
        h.status().live_cycles.iter().any(|c| c.state == "backup")
    })
    .await;
    // The cluster stops answering; SIGTERM interrupts the backup and the release hangs.
    hang.store(true, Ordering::SeqCst);
    let asked = h.now();
    let exited = sigterm(&h).await;
    // `shutdown_timeout` is 2m by default; a pass that was under way is cut short too.
    assert!(
        exited <= asked + TimeDelta::minutes(2) + TimeDelta::seconds(5),
        "asked at {asked}, exited at {exited}"
    );
    let left = h.task.await.expect("agent task").expect("agent ran");
    assert_eq!(left.len(), 1, "{left:?}");
    hang.store(false, Ordering::SeqCst);
    restart_releases_everything(h.sim, h.dir, "2027-01-01T01:20:00Z").await;
}
