//! What the agent reads from a cluster between passes: the whole cluster after a scheduled
//! snapshot (taken or rotated out) or once an `observe_interval` has passed, and otherwise only
//! the volumes its own calls changed — and a change nobody announced still shows.

mod agent_support;

use std::sync::Arc;

use agent_support::{policy, sample, start, t, Harness, Setup};
use chrono::TimeDelta;
use snapwarden::agent::cycle::CycleResult;
use snapwarden::agent::hook::HookSpec;

/// The lab cluster (hourly snapshots at :05), a nightly window on vol_a at 01:10, 20-minute
/// backups, and an `observe_interval` of an hour so that whole reads are rare (the audit, which
/// reads the whole cluster when it runs, is off).
fn harness() -> Harness {
    harness_with("1h", "2027-01-01T00:50:00Z", None)
}

/// The same with another `observe_interval`, start instant, and whole reads that take time.
fn harness_with(interval: &str, epoch: &str, slow_reads: Option<std::time::Duration>) -> Harness {
    let text = agent_support::lab_policy(
        "\"snaprestore\"",
        "auto",
        "start = \"10 1 * * *\"\nexpected = \"20m\"\nmax = \"40m\"",
        "",
    )
    .replace(
        "observe_interval = \"1m\"",
        &format!("observe_interval = \"{interval}\"\naudit_interval = \"0s\""),
    );
    let mut setup = Setup::at(epoch);
    setup.slow_reads = slow_reads;
    setup.hooks = Some(Arc::new(|_c| {
        Some(HookSpec::Simulated {
            duration: TimeDelta::minutes(20),
            succeed: true,
        })
    }));
    start(policy(&text), setup)
}

/// How many `method` calls the agent made to the lab cluster that succeeded.
fn calls(h: &Harness, method: &str) -> f64 {
    sample(
        &h.metrics.render(),
        "snapwarden_ontap_requests_total",
        &[("cluster", "lab"), ("method", method), ("code", "ok")],
    )
    .unwrap_or(0.0)
}

#[tokio::test(start_paused = true)]
async fn between_scheduled_snapshots_only_the_changed_volume_is_read_again() {
    let h = harness();
    h.run_until("2027-01-01T01:06:00Z").await;
    let whole_before = calls(&h, "snapshots");
    assert!(
        whole_before >= 1.0,
        "the first pass reads the whole cluster"
    );
    h.wait_for("the nightly cycle to complete", TimeDelta::hours(1), |h| {
        h.results()
            .iter()
            .any(|(_, r)| *r == Some(CycleResult::Completed))
    })
    .await;
    h.run_until("2027-01-01T02:04:00Z").await;
    // The create and the release each needed a listing to settle: the first after the 01:05
    // snapshot reads the whole cluster, the other only vol_a (its snapshots and its LUNs).
    assert!(
        calls(&h, "snapshots") - whole_before <= 1.0,
        "at most one whole read between 01:06 and 02:04, got {}",
        calls(&h, "snapshots") - whole_before
    );
    let alone = calls(&h, "volume_snapshots");
    assert!(alone >= 1.0, "vol_a read alone after its release");
    assert_eq!(
        calls(&h, "volume_luns"),
        alone,
        "its LUNs with its snapshots"
    );
    // Nothing left behind, and the listing the agent keeps agrees with the cluster.
    assert!(h.luns().iter().all(|l| !l.contains("snapwarden")));
    assert!(h
        .snapshots("vol_a")
        .iter()
        .all(|s| !s.starts_with("snapwarden")));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_change_nobody_announced_shows_at_the_next_whole_read() {
    let h = harness();
    h.run_until("2027-01-01T00:55:00Z").await;
    // Somebody else makes a snapshot with snapwarden's prefix on vol_b (never touched by the
    // agent): a look-alike the agent reports and never deletes.
    h.sim.with(|w| {
        let ci = w.cluster_index("lab").expect("lab");
        let vi = w.volume_by_name(ci, "vol_b").expect("vol_b");
        w.create_snapshot(ci, vi, "snapwarden.lookalike", Some("not ours".into()))
            .expect("created");
    });
    h.wait_for("the look-alike to be reported", TimeDelta::hours(2), |h| {
        sample(
            &h.metrics.render(),
            "snapwarden_reconcile_orphans_total",
            &[("kind", "snapshot"), ("action", "ignored")],
        )
        .is_some_and(|n| n >= 1.0)
    })
    .await;
    // Seen by the first whole read after it: the 01:05 snapshot's, or the interval's.
    assert!(h.now() <= t("2027-01-01T01:56:00Z"), "seen at {}", h.now());
    assert!(h
        .snapshots("vol_b")
        .iter()
        .any(|s| s == "snapwarden.lookalike"));
    h.stop().await;
}

/// A cluster whose whole read takes 20 s (what 2,500 volumes take), read every minute: the
/// read due ten seconds before the window opens would still be running at its planned create.
#[tokio::test(start_paused = true)]
async fn a_slow_whole_read_waits_for_a_planned_create_and_then_runs() {
    // The first pass reads at 00:50:50, and every read after it a minute after the last.
    let h = harness_with(
        "1m",
        "2027-01-01T00:50:50Z",
        Some(std::time::Duration::from_secs(20)),
    );
    h.run_until("2027-01-01T01:00:00Z").await;
    let before = calls(&h, "snapshots");
    h.wait_for(
        "the nightly cycle's backing snapshot",
        TimeDelta::hours(1),
        |h| h.cycles().iter().any(|c| c.created_at.is_some()),
    )
    .await;
    let cycle = h
        .cycles()
        .into_iter()
        .find(|c| c.created_at.is_some())
        .unwrap();
    assert_eq!(cycle.create_at, t("2027-01-01T01:10:00Z"));
    assert!(
        cycle.created_at.unwrap() - cycle.create_at < TimeDelta::seconds(1),
        "the backing snapshot was made at {}, after the read that was due at 01:09:50",
        cycle.created_at.unwrap()
    );
    h.run_until("2027-01-01T01:20:00Z").await;
    // Put off, not skipped: a whole read every minute or so (each takes 20 s of it).
    let reads = calls(&h, "snapshots") - before;
    assert!(
        (15.0..=21.0).contains(&reads),
        "{reads} whole reads in 20 minutes"
    );
    h.stop().await;
}
