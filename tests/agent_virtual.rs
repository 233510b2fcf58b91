//! The agent in virtual time against the in-process simulator: whole lifecycles, hooks, races
//! with scheduled snapshots, missing objects, clusters down, look-alikes, shutdown and restart.
//!
//! Time is tokio's paused clock: hours pass in milliseconds, and the simulator takes its
//! scheduled snapshots exactly as virtual time passes them.

mod agent_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use agent_support::{leftovers, policy, start, t, Harness, Setup};
use chrono::TimeDelta;
use snapwarden::agent::cycle::{CloneKind, CycleResult, CycleState};
use snapwarden::agent::hook::HookSpec;
use snapwarden::agent::HookOverride;

/// The lab policy with a window `nightly` at 01:10 (20m expected, 40m max) on vol_a.
fn base(extra_window: &str, licenses: &str, clone: &str) -> String {
    agent_support::lab_policy(
        licenses,
        clone,
        "start = \"10 1 * * *\"\nexpected = \"20m\"\nmax = \"40m\"",
        extra_window,
    )
}

fn simulated(minutes: i64, succeed: bool) -> HookOverride {
    Arc::new(move |_c| {
        Some(HookSpec::Simulated {
            duration: TimeDelta::minutes(minutes),
            succeed,
        })
    })
}

#[tokio::test(start_paused = true)]
async fn a_snaprestore_lifecycle_runs_between_scheduled_snapshots_and_leaves_nothing() {
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(simulated(20, true));
    let h = start(policy(&base("", "\"snaprestore\"", "auto")), setup);
    // 01:10 create, 20 minutes of backup, release at 01:30: before 02:05 - 5m.
    h.run_until("2027-01-01T01:15:00Z").await;
    let live = h.status().live_cycles;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(
        live[0].backing_snapshot,
        "snapwarden.nightly.20270101T011000Z"
    );
    assert_eq!(
        live[0].clones,
        vec![
            "/vol/vol_a/snapwarden.nightly.20270101T011000Z.lun0",
            "/vol/vol_a/snapwarden.nightly.20270101T011000Z.lun1"
        ]
    );
    assert_eq!(live[0].state, "backup");
    assert!(h
        .snapshots("vol_a")
        .contains(&"snapwarden.nightly.20270101T011000Z".to_string()));
    h.run_until("2027-01-01T01:31:00Z").await;
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 1);
    let c = &cycles[0];
    assert_eq!(c.state, CycleState::Released);
    assert_eq!(c.result, Some(CycleResult::Completed));
    assert_eq!(c.clone_kind, CloneKind::SnapRestore);
    let released = c.released_at.unwrap();
    assert!(released >= t("2027-01-01T01:30:00Z") && released < t("2027-01-01T01:31:00Z"));
    assert_eq!(leftovers(&h, "snapwarden"), Vec::<String>::new());
    assert!(
        h.status().conflicts.is_empty(),
        "{:?}",
        h.status().conflicts
    );
    // The scheduled snapshots went on undisturbed: 00:05 (before start? no) 01:05 taken.
    assert!(h
        .snapshots("vol_a")
        .iter()
        .any(|s| s.starts_with("hourly.2027-01-01_0105")));
    let (left, _, _) = h.stop().await;
    assert!(left.is_empty());
}

#[tokio::test(start_paused = true)]
async fn auto_uses_flexclone_when_licensed_and_waits_out_block_sharing() {
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    // The backup is shorter than the simulator's block sharing (60 s): the snapshot delete is
    // refused while the FlexClone shares blocks and the agent retries until it is free.
    setup.hooks = Some(Arc::new(|_c| {
        Some(HookSpec::Simulated {
            duration: TimeDelta::seconds(10),
            succeed: true,
        })
    }));
    let h = start(
        policy(&base("", "\"snaprestore\", \"flexclone\"", "auto")),
        setup,
    );
    h.run_until("2027-01-01T01:12:00Z").await;
    h.wait_for(
        "the flexclone cycle to be released",
        TimeDelta::minutes(10),
        |h| {
            h.cycles()
                .first()
                .is_some_and(|c| c.state == CycleState::Released)
        },
    )
    .await;
    let c = &h.cycles()[0];
    assert_eq!(c.clone_kind, CloneKind::FlexClone);
    assert_eq!(c.result, Some(CycleResult::Completed));
    assert_eq!(leftovers(&h, "snapwarden"), Vec::<String>::new());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn hook_success_failure_and_a_missing_program_are_recorded() {
    let extra = r#"
[[window]]
name = "fails"
volumes = ["lab/svm1/vol_b"]
start = "10 1 * * *"
timezone = "UTC"
expected = "10m"
max = "20m"
hook = { command = ["sh", "-c", "echo disk full >&2; exit 4"] }
"#;
    let text = base(extra, "\"snaprestore\"", "snaprestore").replace(
        "max = \"40m\"\n",
        "max = \"40m\"\nhook = { command = [\"/nonexistent/backup-tool\", \"--all\"] }\n",
    );
    let h = start(policy(&text), Setup::at("2027-01-01T00:50:00Z"));
    h.run_until("2027-01-01T01:12:00Z").await;
    h.wait_for("both cycles to end", TimeDelta::minutes(5), |h| {
        let c = h.cycles();
        c.len() == 2 && c.iter().all(|c| c.state.is_terminal())
    })
    .await;
    let cycles = h.cycles();
    let missing = cycles.iter().find(|c| c.window == "nightly").unwrap();
    assert_eq!(missing.result, Some(CycleResult::Failed));
    assert!(
        missing.detail.contains("/nonexistent/backup-tool"),
        "{}",
        missing.detail
    );
    let failed = cycles.iter().find(|c| c.window == "fails").unwrap();
    assert_eq!(failed.result, Some(CycleResult::Failed));
    assert!(
        failed.detail.contains("exit status: 4"),
        "{}",
        failed.detail
    );
    assert!(failed.detail.contains("disk full"), "{}", failed.detail);
    // A failed backup still releases everything.
    assert_eq!(leftovers(&h, "snapwarden"), Vec::<String>::new());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_overrun_is_terminated_at_max_and_released_in_time() {
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(simulated(55, true));
    let h = start(policy(&base("", "\"snaprestore\"", "auto")), setup);
    h.run_until("2027-01-01T01:52:00Z").await;
    let c = &h.cycles()[0];
    assert_eq!(c.result, Some(CycleResult::Overrun));
    assert_eq!(c.state, CycleState::Released);
    // Ended at max (01:10 + 40m) and released before the 02:05 scheduled snapshot less guard.
    let released = c.released_at.unwrap();
    assert!(released >= t("2027-01-01T01:50:00Z") && released < t("2027-01-01T02:00:00Z"));
    assert_eq!(leftovers(&h, "snapwarden"), Vec::<String>::new());
    assert!(h
        .status()
        .conflicts
        .iter()
        .all(|c| c.kind != "chain_conflict"));
    h.stop().await;
}

/// The agent at 00:50 on `base` (SnapRestore) with the window's overruns left to finish, and a
/// simulated backup of `minutes`.
fn finishing(minutes: i64) -> Harness {
    let text = base("", "\"snaprestore\"", "snaprestore")
        .replace("max = \"40m\"", "max = \"40m\"\non_overrun = \"finish\"");
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(simulated(minutes, true));
    start(policy(&text), setup)
}

#[tokio::test(start_paused = true)]
async fn an_overrun_left_to_finish_holds_the_clones_and_its_conflicts_are_recorded() {
    // 01:10 create, max 40m (01:50), a 60-minute backup left to finish: it ends at 02:10, after
    // the release deadline (02:00) and the 02:05 scheduled snapshot, which captures the clone.
    let h = finishing(60);
    h.run_until("2027-01-01T02:08:00Z").await;
    // Still backing up past max: the clones are held.
    let live = h.status().live_cycles;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].state, "backup");
    assert!(h
        .luns()
        .iter()
        .any(|l| l.contains("snapwarden.nightly.20270101T011000Z")));
    h.run_until("2027-01-01T02:12:00Z").await;
    let c = &h.cycles()[0];
    assert_eq!(c.result, Some(CycleResult::Overrun));
    assert!(c.detail.contains("ran 20m past max"), "{}", c.detail);
    assert!(c.detail.contains("left to finish"), "{}", c.detail);
    // The clones went at 02:10; the 02:05 snapshot pins the backing snapshot.
    assert!(h.luns().iter().all(|l| !l.contains("snapwarden")));
    assert_eq!(c.state, CycleState::Locked);
    let kinds: Vec<String> = h
        .status()
        .conflicts
        .iter()
        .map(|c| c.kind.clone())
        .collect();
    for kind in ["late_release", "chain_conflict", "locked"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}: {kinds:?}");
    }
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_backup_left_to_finish_is_still_ended_at_twice_max() {
    // Without a hook timeout, a finishing backup ends at twice max: 01:10 + 80m = 02:30.
    let h = finishing(300);
    h.run_until("2027-01-01T02:29:00Z").await;
    assert_eq!(h.status().live_cycles.len(), 1);
    h.run_until("2027-01-01T02:32:00Z").await;
    let c = &h.cycles()[0];
    assert_eq!(c.result, Some(CycleResult::Overrun));
    assert!(
        c.detail.contains("still running at the deadline"),
        "{}",
        c.detail
    );
    assert!(h.luns().iter().all(|l| !l.contains("snapwarden")));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_clone_captured_by_a_scheduled_snapshot_is_a_chain_conflict_and_the_lock_is_explained() {
    // on_conflict = run, a 40-minute backup from 01:40: the 02:05 scheduled snapshot captures the
    // SnapRestore clone. The backing snapshot is then locked until hourly.…_0205 rotates out:
    // with count = 3 that is the third following hourly snapshot, 05:05.
    let text = base("", "\"snaprestore\"", "snaprestore")
        .replace("start = \"10 1 * * *\"", "start = \"40 1 * * *\"")
        .replace(
            "expected = \"20m\"",
            "expected = \"30m\"\non_conflict = \"run\"",
        );
    let mut setup = Setup::at("2027-01-01T01:30:00Z");
    setup.hooks = Some(simulated(38, true));
    let h = start(policy(&text), setup);
    h.run_until("2027-01-01T02:20:00Z").await;
    let status = h.status();
    let kinds: Vec<&str> = status.conflicts.iter().map(|c| c.kind.as_str()).collect();
    assert!(kinds.contains(&"chain_conflict"), "{kinds:?}");
    assert!(kinds.contains(&"locked"), "{kinds:?}");
    let chain = status
        .conflicts
        .iter()
        .find(|c| c.kind == "chain_conflict")
        .unwrap();
    assert!(
        chain.detail.contains("hourly.2027-01-01_0205"),
        "{}",
        chain.detail
    );
    let locked = status
        .conflicts
        .iter()
        .find(|c| c.kind == "locked")
        .unwrap();
    assert!(
        locked.detail.contains("pinned by hourly.2027-01-01_0205"),
        "{}",
        locked.detail
    );
    assert!(
        locked.detail.contains("2027-01-01T05:05:00+00:00"),
        "{}",
        locked.detail
    );
    assert_eq!(status.live_cycles.len(), 1);
    assert_eq!(status.live_cycles[0].state, "locked");
    // The clones are gone; only the locked backing snapshot is left.
    assert_eq!(
        leftovers(&h, "snapwarden"),
        vec!["vol_a:snapwarden.nightly.20270101T014000Z".to_string()]
    );
    // Once the pin rotates out at 05:05 the agent deletes the backing snapshot.
    h.run_until("2027-01-01T05:08:00Z").await;
    assert_eq!(leftovers(&h, "snapwarden"), Vec::<String>::new());
    let c = &h.cycles()[0];
    assert_eq!(c.state, CycleState::Released);
    assert!(c.released_at.unwrap() >= t("2027-01-01T05:05:00Z"));
    h.stop().await;
}

/// `simulate` runs the agent unobserved: it must decide and act exactly as an agent whose
/// metrics and status board are read, so the what-if stays true to `run`. Two days of chain
/// conflicts, locked backing snapshots and a FlexClone recommendation, side by side.
#[tokio::test(start_paused = true)]
async fn an_unobserved_agent_acts_as_an_observed_one_and_publishes_nothing() {
    let text = base("", "\"snaprestore\"", "snaprestore")
        .replace("start = \"10 1 * * *\"", "start = \"40 1 * * *\"")
        .replace(
            "expected = \"20m\"",
            "expected = \"30m\"\non_conflict = \"run\"",
        )
        + "\n[flexclone]\nrecommend_after = 2\nwithin = \"7d\"\n";
    let run = |unobserved: bool| {
        let mut setup = Setup::at("2027-01-01T01:30:00Z");
        setup.hooks = Some(simulated(38, true));
        setup.unobserved = unobserved;
        start(policy(&text), setup)
    };
    let (observed, unobserved) = (run(false), run(true));
    for h in [&observed, &unobserved] {
        h.run_until("2027-01-02T06:00:00Z").await;
    }
    // What the journal holds, without the cycles' random ids.
    let record = |h: &Harness| {
        let cycles: Vec<String> = h
            .cycles()
            .iter()
            .map(|c| {
                format!(
                    "{} {} {:?} {:?} {:?} {:?}",
                    c.volume, c.window_start, c.state, c.result, c.created_at, c.released_at
                )
            })
            .collect();
        let conflicts: Vec<String> = h
            .journal
            .conflicts(chrono::DateTime::<chrono::Utc>::MIN_UTC, 1000)
            .expect("journal")
            .iter()
            .map(|c| format!("{} {} {}", c.kind.as_str(), c.volume, c.at))
            .collect();
        let recommended: Vec<String> = h
            .journal
            .recommendation_events()
            .expect("journal")
            .iter()
            .map(|r| format!("{} {} {}", r.volume, r.event.as_str(), r.at))
            .collect();
        (cycles, conflicts, recommended)
    };
    let (cycles, conflicts, recommended) = record(&observed);
    assert_eq!(cycles.len(), 2, "{cycles:?}");
    assert!(
        conflicts.iter().any(|c| c.starts_with("chain_conflict")),
        "{conflicts:?}"
    );
    assert!(
        recommended.iter().any(|r| r.contains("raised")),
        "{recommended:?}"
    );
    assert_eq!(record(&unobserved), (cycles, conflicts, recommended));
    assert!(observed.status().generated_at.is_some());
    assert_eq!(unobserved.status().generated_at, None);
    observed.stop().await;
    unobserved.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_release_that_cannot_finish_before_the_next_snapshot_is_a_late_release() {
    // The cluster goes down while the backup runs: the release cannot happen before
    // 02:05 - 5m. The agent records a late release (and the chain conflict once it is back).
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(simulated(20, true));
    let h = start(policy(&base("", "\"snaprestore\"", "auto")), setup);
    h.run_until("2027-01-01T01:20:00Z").await;
    h.down.store(true, Ordering::SeqCst);
    h.run_until("2027-01-01T02:10:00Z").await;
    let kinds: Vec<String> = h
        .status()
        .conflicts
        .iter()
        .map(|c| c.kind.clone())
        .collect();
    assert!(kinds.contains(&"late_release".to_string()), "{kinds:?}");
    assert!(!h.status().clusters[0].reachable);
    h.down.store(false, Ordering::SeqCst);
    h.wait_for(
        "the cycle to be released once the cluster is back",
        TimeDelta::hours(6),
        |h| leftovers(h, "snapwarden").is_empty(),
    )
    .await;
    let kinds: Vec<String> = h
        .status()
        .conflicts
        .iter()
        .map(|c| c.kind.clone())
        .collect();
    assert!(kinds.contains(&"chain_conflict".to_string()), "{kinds:?}");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_missing_lun_leaves_out_its_volume_only() {
    let extra = r#"
[[window]]
name = "b"
volumes = ["lab/svm1/vol_b"]
start = "10 1 * * *"
timezone = "UTC"
expected = "10m"
max = "20m"
"#;
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(simulated(5, true));
    setup.prepare = Some(Box::new(|sim| {
        sim.with(|w| {
            let li = w.lun_index(0, "/vol/vol_a/lun1").unwrap();
            w.delete_lun(0, li, true).unwrap();
        })
    }));
    let h = start(policy(&base(extra, "\"snaprestore\"", "auto")), setup);
    h.run_until("2027-01-01T01:30:00Z").await;
    let status = h.status();
    assert_eq!(
        status.excluded_volumes.len(),
        1,
        "{:?}",
        status.excluded_volumes
    );
    assert_eq!(status.excluded_volumes[0].volume, "lab/svm1/vol_a");
    assert!(status.excluded_volumes[0]
        .reason
        .contains("/vol/vol_a/lun1"));
    let cycles = h.cycles();
    let b = cycles.iter().find(|c| c.window == "b").unwrap();
    assert_eq!(b.result, Some(CycleResult::Completed));
    let a = cycles.iter().find(|c| c.window == "nightly").unwrap();
    assert_eq!(a.result, Some(CycleResult::Skipped));
    assert!(a.detail.contains("/vol/vol_a/lun1"), "{}", a.detail);
    h.stop().await;
}

/// A LUN an admin deletes while the agent runs shows at the next whole read of its cluster, and
/// one created again shows too: what the start stage keeps between passes (which volumes the
/// clusters lack) follows each whole read that changed it, and only those.
#[tokio::test(start_paused = true)]
async fn a_lun_deleted_and_created_again_while_the_agent_runs_is_seen_at_the_next_whole_read() {
    let setup = Setup::at("2027-01-01T00:50:00Z");
    let h = start(policy(&base("", "\"snaprestore\"", "auto")), setup);
    // Several whole reads (every minute) of an unchanged cluster.
    h.run_until("2027-01-01T00:55:00Z").await;
    assert!(h.status().excluded_volumes.is_empty());
    h.sim.with(|w| {
        let li = w.lun_index(0, "/vol/vol_a/lun1").unwrap();
        w.delete_lun(0, li, true).unwrap();
    });
    h.wait_for("vol_a left out", TimeDelta::minutes(5), |h| {
        h.status().excluded_volumes.len() == 1
    })
    .await;
    let status = h.status();
    assert_eq!(status.excluded_volumes[0].volume, "lab/svm1/vol_a");
    assert!(status.excluded_volumes[0]
        .reason
        .contains("/vol/vol_a/lun1"));
    h.run_until("2027-01-01T01:20:00Z").await;
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert_eq!(cycles[0].result, Some(CycleResult::Skipped));
    assert!(
        cycles[0].detail.contains("/vol/vol_a/lun1"),
        "{}",
        cycles[0].detail
    );
    h.sim.with(|w| {
        w.create_lun(0, "/vol/vol_a/lun1", 1 << 30, "linux")
            .unwrap()
    });
    h.wait_for("vol_a back", TimeDelta::minutes(5), |h| {
        h.status().excluded_volumes.is_empty()
    })
    .await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_cluster_down_at_the_start_is_retried_and_runs_when_back_in_time() {
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(simulated(10, true));
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    setup.down = Some(down.clone());
    let h = start(policy(&base("", "\"snaprestore\"", "auto")), setup);
    h.run_until("2027-01-01T01:12:00Z").await;
    let s = h.status();
    assert!(!s.clusters[0].reachable);
    assert!(s.clusters[0]
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("connection refused"));
    assert!(h.cycles().is_empty());
    down.store(false, Ordering::SeqCst);
    // Back at 01:12 (retry backoff at most 5 minutes): 40m - 20m expected still fits.
    h.run_until("2027-01-01T01:45:00Z").await;
    let c = &h.cycles()[0];
    assert_eq!(c.result, Some(CycleResult::Completed), "{c:?}");
    assert!(c.created_at.unwrap() > t("2027-01-01T01:12:00Z"));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn look_alike_objects_are_never_touched() {
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(simulated(10, true));
    setup.prepare = Some(Box::new(|sim| {
        sim.with(|w| {
            let vi = w.volume_by_name(0, "vol_a").unwrap();
            // Same prefix, no marker.
            w.create_snapshot(0, vi, "snapwarden.nightly.20270101T011000Z-copy", None)
                .unwrap();
            // The marker, but no journal entry.
            w.create_snapshot(
                0,
                vi,
                "snapwarden.old.20261231T011000Z",
                Some("created-by=snapwarden cycle=not-in-this-journal window=old".into()),
            )
            .unwrap();
            // A user snapshot and a LUN at a clone-like path.
            w.create_snapshot(0, vi, "before-upgrade", None).unwrap();
            w.create_lun(
                0,
                "/vol/vol_a/snapwarden.nightly.20261231T011000Z.lun0",
                1 << 30,
                "linux",
            )
            .unwrap();
        })
    }));
    let h = start(policy(&base("", "\"snaprestore\"", "auto")), setup);
    h.run_until("2027-01-02T01:40:00Z").await;
    let results: Vec<Option<CycleResult>> = h.cycles().iter().map(|c| c.result).collect();
    assert_eq!(results, vec![Some(CycleResult::Completed); 2]);
    let snaps = h.snapshots("vol_a");
    for keep in [
        "snapwarden.nightly.20270101T011000Z-copy",
        "snapwarden.old.20261231T011000Z",
        "before-upgrade",
    ] {
        assert!(
            snaps.contains(&keep.to_string()),
            "{keep} was deleted: {snaps:?}"
        );
    }
    assert!(h
        .luns()
        .contains(&"/vol/vol_a/snapwarden.nightly.20261231T011000Z.lun0".to_string()));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn sigterm_with_a_cycle_in_flight_releases_it_and_exits() {
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(simulated(30, true));
    let h = start(policy(&base("", "\"snaprestore\"", "auto")), setup);
    h.run_until("2027-01-01T01:15:00Z").await;
    assert_eq!(h.status().live_cycles.len(), 1);
    let started = h.now();
    let sim = h.sim.clone();
    let journal = h.journal.clone();
    let (left, _, _) = h.stop().await;
    assert!(left.is_empty(), "{left:?}");
    let _ = started;
    let cycles = journal
        .recent_cycles(chrono::DateTime::<chrono::Utc>::MIN_UTC, None, 10)
        .unwrap();
    assert_eq!(cycles[0].state, CycleState::Released);
    assert_eq!(cycles[0].result, Some(CycleResult::Failed));
    assert!(
        cycles[0].detail.contains("stopping"),
        "{}",
        cycles[0].detail
    );
    let left_on_cluster = sim.with(|w| {
        w.clusters[0]
            .volumes
            .iter()
            .flat_map(|v| v.snapshots.iter())
            .filter(|s| s.name.starts_with("snapwarden."))
            .count()
    });
    assert_eq!(left_on_cluster, 0);
}

#[tokio::test(start_paused = true)]
async fn a_cycle_left_by_a_crash_is_released_at_the_next_start() {
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(simulated(30, true));
    let h = start(policy(&base("", "\"snaprestore\"", "auto")), setup);
    h.run_until("2027-01-01T01:15:00Z").await;
    assert_eq!(leftovers(&h, "snapwarden").len(), 3);
    // A crash: the task is gone without releasing anything.
    h.task.abort();
    let (sim, dir) = (h.sim.clone(), h.dir.clone());
    let epoch = h.now();
    drop(h);
    let mut setup = Setup::at(&epoch.to_rfc3339());
    setup.sim = Some(sim);
    setup.dir = Some(dir);
    setup.hooks = Some(simulated(30, true));
    let h = start(policy(&base("", "\"snaprestore\"", "auto")), setup);
    h.wait_for(
        "the leftover cycle to be released",
        TimeDelta::minutes(5),
        |h| leftovers(h, "snapwarden").is_empty(),
    )
    .await;
    let c = &h.cycles()[0];
    assert_eq!(c.state, CycleState::Released);
    assert_eq!(c.result, Some(CycleResult::Failed));
    assert!(c.detail.contains("interrupted"), "{}", c.detail);
    h.stop().await;
}

/// Two clusters; `n` volumes on each, one window over all of them at 01:10.
fn two_clusters(n: usize, concurrency: usize) -> String {
    let mut text = format!(
        r#"
[agent]
guard = "5m"
concurrency = {concurrency}

[[cluster]]
name = "east"
endpoint = "simulator"
timezone = "UTC"

[[cluster]]
name = "west"
endpoint = "simulator"
timezone = "UTC"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "p"
copies = [{{ schedule = "hourly", count = 3 }}]
"#
    );
    let mut ids = Vec::new();
    for cluster in ["east", "west"] {
        for i in 0..n {
            text.push_str(&format!(
                "\n[[volume]]\ncluster = \"{cluster}\"\nsvm = \"svm1\"\nname = \"v{i}\"\nluns = [\"/vol/v{i}/lun0\"]\nsnapshot_policy = \"p\"\n"
            ));
            ids.push(format!("\"{cluster}/svm1/v{i}\""));
        }
    }
    text.push_str(&format!(
        "\n[[window]]\nname = \"all\"\nvolumes = [{}]\nstart = \"10 1 * * *\"\ntimezone = \"UTC\"\nexpected = \"10m\"\nmax = \"30m\"\n",
        ids.join(", ")
    ));
    text
}

#[tokio::test(start_paused = true)]
async fn one_cluster_down_does_not_hold_up_the_other() {
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(simulated(5, true));
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    setup.down = Some(down.clone());
    let h = start(policy(&two_clusters(2, 4)), setup);
    h.run_until("2027-01-01T01:20:00Z").await;
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 2, "{cycles:?}");
    assert!(cycles
        .iter()
        .all(|c| c.cluster == "west" && c.result == Some(CycleResult::Completed)));
    let s = h.status();
    let east = s.clusters.iter().find(|c| c.name == "east").unwrap();
    assert!(!east.reachable);
    let west = s.clusters.iter().find(|c| c.name == "west").unwrap();
    assert!(west.reachable);
    down.store(false, Ordering::SeqCst);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn concurrency_bounds_the_operations_in_flight_per_cluster() {
    let counts = Arc::new(agent_support::InFlight::default());
    let mut setup = Setup::at("2027-01-01T01:05:30Z");
    setup.hooks = Some(simulated(5, true));
    setup.slow = Some((std::time::Duration::from_secs(2), counts.clone()));
    let h = start(policy(&two_clusters(12, 3)), setup);
    h.run_until("2027-01-01T01:40:00Z").await;
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 24);
    assert!(
        cycles
            .iter()
            .all(|c| c.result == Some(CycleResult::Completed)),
        "{cycles:?}"
    );
    let max = counts.max.lock().unwrap().clone();
    // Twelve volumes want to start at once on each cluster; at most three calls run at a time.
    assert_eq!(max.get("east"), Some(&3), "{max:?}");
    assert_eq!(max.get("west"), Some(&3), "{max:?}");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_released_backing_snapshot_seen_again_is_released_again() {
    // ONTAP answered the delete, but a later listing still shows the snapshot (a delete that did
    // not stick): the agent verifies on every pass and releases it again. A same-named snapshot
    // without the cycle's marker would not be touched (see look_alike_objects_are_never_touched).
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(simulated(10, true));
    let h = start(policy(&base("", "\"snaprestore\"", "auto")), setup);
    h.run_until("2027-01-01T01:25:00Z").await;
    let c = h.cycles()[0].clone();
    assert_eq!(c.state, CycleState::Released);
    let comment = format!("created-by=snapwarden cycle={} window=nightly", c.id);
    h.sim.with(|w| {
        let vi = w.volume_by_name(0, "vol_a").unwrap();
        w.create_snapshot(0, vi, &c.backing_snapshot, Some(comment.clone()))
            .unwrap();
    });
    assert_eq!(leftovers(&h, "snapwarden").len(), 1);
    h.run_until("2027-01-01T01:30:00Z").await;
    assert_eq!(leftovers(&h, "snapwarden"), Vec::<String>::new());
    assert_eq!(h.cycles()[0].state, CycleState::Released);
    h.stop().await;
}

/// Without a hook the clones are held for `expected` and released right after — a hold shorter
/// than the loop's pace for stuck work (5 s) is not stretched to it. By hand: created at
/// 01:10:00 (virtual time, the simulator answers at once), held 1 s, released at 01:10:01.
#[tokio::test(start_paused = true)]
async fn a_short_hold_without_a_hook_is_released_when_it_ends() {
    let text =
        base("", "\"snaprestore\"", "auto").replace("expected = \"20m\"", "expected = \"1s\"");
    let h = start(policy(&text), Setup::at("2027-01-01T00:50:00Z"));
    h.run_until("2027-01-01T01:11:00Z").await;
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    let c = &cycles[0];
    assert_eq!(c.result, Some(CycleResult::Completed), "{c:?}");
    let (created, released) = (c.clones_created_at.unwrap(), c.released_at.unwrap());
    assert!(created < t("2027-01-01T01:10:01Z"), "{created}");
    assert!(
        released >= t("2027-01-01T01:10:01Z") && released < t("2027-01-01T01:10:02Z"),
        "held 1 s after {created}, released at {released}"
    );
    assert_eq!(leftovers(&h, "snapwarden"), Vec::<String>::new());
    let (left, _, _) = h.stop().await;
    assert!(left.is_empty());
}
