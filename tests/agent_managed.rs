//! Managed schedules in virtual time against the in-process simulator: a volume hands its hourly
//! snapshots to snapwarden, a backup longer than the gap between two of them runs at its
//! configured time, and the snapshots due meanwhile wait for its clone to go — no chain
//! conflict, one snapshot for the instants that passed, ONTAP's names and labels, the count kept.

mod agent_support;

use std::sync::Arc;

use agent_support::{leftovers, policy, start, t, Setup};
use chrono::TimeDelta;
use snapwarden::agent::hook::HookSpec;
use snapwarden::agent::journal::ObjectState;

/// Volume `vol_a` hands its hourly snapshots (:05, 3 kept, label `hourly`) to snapwarden; ONTAP
/// takes nothing on it. Window `nightly` at 01:00, 2h expected, 3h max, left to finish.
fn managed(max_defer: &str) -> String {
    format!(
        r#"
[agent]
guard = "5m"
observe_interval = "1m"

[[cluster]]
name = "lab"
endpoint = "simulator"
timezone = "UTC"
simulator = {{ version = "9.14.1", licenses = ["snaprestore"] }}

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "ontap-nothing"
copies = []

[[snapshot_policy]]
name = "handed-over"
max_defer = "{max_defer}"
copies = [{{ schedule = "hourly", count = 3, snapmirror_label = "hourly" }}]

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_a"
luns = ["/vol/vol_a/lun0"]
snapshot_policy = "ontap-nothing"
managed_snapshots = "handed-over"
clone = "snaprestore"

[[window]]
name = "nightly"
volumes = ["lab/svm1/vol_a"]
start = "0 1 * * *"
timezone = "UTC"
expected = "2h"
max = "3h"
on_overrun = "finish"
"#
    )
}

fn backup(minutes: i64) -> snapwarden::agent::HookOverride {
    Arc::new(move |_| {
        Some(HookSpec::Simulated {
            duration: TimeDelta::minutes(minutes),
            succeed: true,
        })
    })
}

/// (name, snapmirror_label, comment) of the hourly snapshots on vol_a, oldest first.
fn hourly(h: &agent_support::Harness) -> Vec<(String, Option<String>, Option<String>)> {
    h.sim.with(|w| {
        let v = w.clusters[0]
            .volumes
            .iter()
            .find(|v| v.name == "vol_a")
            .expect("vol_a");
        v.snapshots
            .iter()
            .filter(|s| s.name.starts_with("hourly."))
            .map(|s| {
                (
                    s.name.clone(),
                    s.snapmirror_label.clone(),
                    s.comment.clone(),
                )
            })
            .collect()
    })
}

#[tokio::test(start_paused = true)]
async fn a_backup_longer_than_the_gap_runs_and_the_hourly_snapshots_wait_for_its_clone() {
    let mut setup = Setup::at("2027-01-01T00:00:00Z");
    setup.hooks = Some(backup(120));
    let h = start(policy(&managed("4h")), setup);
    // At start the 23:05 instant has passed without its snapshot: one is taken at once
    // (overdue); 00:05, nothing alive, at its instant. ONTAP's names, the copy's label, the
    // marker.
    h.run_until("2027-01-01T00:06:00Z").await;
    let marked = |name: &str| {
        (
            name.to_string(),
            Some("hourly".to_string()),
            Some("created-by=snapwarden schedule=hourly".to_string()),
        )
    };
    assert_eq!(
        hourly(&h),
        [
            marked("hourly.2027-01-01_0000"),
            marked("hourly.2027-01-01_0005")
        ]
    );
    // The backup runs 01:00–03:00: 01:05 and 02:05 wait for its clone.
    h.run_until("2027-01-01T02:30:00Z").await;
    assert_eq!(hourly(&h).len(), 2, "{:?}", hourly(&h));
    let waiting = h.status().managed_snapshots;
    assert_eq!(
        waiting[0].waiting_since,
        Some(t("2027-01-01T01:05:00Z")),
        "{waiting:?}"
    );
    // Released at 03:00; ten seconds later one snapshot covers both instants; 03:05 on time,
    // and the oldest beyond the count of 3 goes.
    h.run_until("2027-01-01T03:06:00Z").await;
    let names: Vec<String> = hourly(&h).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(
        names,
        [
            "hourly.2027-01-01_0005",
            "hourly.2027-01-01_0300",
            "hourly.2027-01-01_0305"
        ]
    );
    // No scheduled snapshot captured the clone: no chain conflict, nothing locked.
    let status = h.status();
    assert!(status.conflicts.is_empty(), "{:?}", status.conflicts);
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 1);
    assert_eq!(cycles[0].state.as_str(), "released");
    // The journal says how long it waited and what it covered.
    let taken = h
        .journal
        .managed(t("2027-01-01T00:00:00Z"), false)
        .expect("journal");
    let summary: Vec<(String, u32, i64, String)> = taken
        .iter()
        .map(|m| {
            (
                m.name.clone(),
                m.instants,
                m.waited.num_seconds(),
                m.reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "hourly.2027-01-01_0000".to_string(),
                1,
                0,
                "overdue".to_string()
            ),
            (
                "hourly.2027-01-01_0005".to_string(),
                1,
                0,
                "on_time".to_string()
            ),
            // 01:05 until ten seconds after the 03:00 release: 1h55m10s.
            (
                "hourly.2027-01-01_0300".to_string(),
                2,
                6910,
                "deferred".to_string()
            ),
            (
                "hourly.2027-01-01_0305".to_string(),
                1,
                0,
                "on_time".to_string()
            ),
        ]
    );
    assert!(taken.iter().all(|m| m.state == ObjectState::Created));
    // The count is kept: after 05:05 the series holds the newest three.
    h.run_until("2027-01-01T05:06:00Z").await;
    let names: Vec<String> = hourly(&h).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(
        names,
        [
            "hourly.2027-01-01_0305",
            "hourly.2027-01-01_0405",
            "hourly.2027-01-01_0505"
        ]
    );
    let metrics = h.metrics.render();
    for line in [
        "snapwarden_managed_snapshots_total{cluster=\"lab\",result=\"deferred\",schedule=\"hourly\",svm=\"svm1\",volume=\"vol_a\"} 1",
        "snapwarden_managed_instants_coalesced_total{cluster=\"lab\",schedule=\"hourly\",svm=\"svm1\",volume=\"vol_a\"} 1",
        "snapwarden_managed_snapshot_waiting{cluster=\"lab\",schedule=\"hourly\",svm=\"svm1\",volume=\"vol_a\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    assert_eq!(leftovers(&h, "snapwarden"), Vec::<String>::new());
    let (left, _, _) = h.stop().await;
    assert!(left.is_empty());
}

#[tokio::test(start_paused = true)]
async fn at_max_defer_the_snapshot_is_taken_anyway_and_the_capture_is_recorded() {
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(backup(120));
    let h = start(policy(&managed("30m")), setup);
    // 01:05 waits until 01:35, then is taken although the clone lives: a chain conflict.
    h.run_until("2027-01-01T01:36:00Z").await;
    let names: Vec<String> = hourly(&h).into_iter().map(|(n, _, _)| n).collect();
    assert!(
        names.contains(&"hourly.2027-01-01_0135".to_string()),
        "{names:?}"
    );
    h.wait_for("the capture recorded", TimeDelta::minutes(5), |h| {
        h.status()
            .conflicts
            .iter()
            .any(|c| c.kind == "chain_conflict")
    })
    .await;
    let taken = h
        .journal
        .managed(t("2027-01-01T00:00:00Z"), false)
        .expect("journal");
    assert_eq!(taken.last().map(|m| m.reason.as_str()), Some("max_defer"));
    let (_, _, _) = h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_ontap_policy_that_also_takes_the_managed_copy_leaves_the_volume_out() {
    // ONTAP's own policy on vol_a takes hourly snapshots too: two schedulers.
    let text = managed("4h").replace(
        "snapshot_policy = \"ontap-nothing\"",
        "snapshot_policy = \"ontap\"",
    );
    let mut setup = Setup::at("2027-01-01T00:00:00Z");
    setup.prepare = Some(Box::new(|sim| {
        sim.with(|w| {
            let v = w.clusters[0]
                .volumes
                .iter_mut()
                .find(|v| v.name == "vol_a")
                .expect("vol_a");
            v.snapshot_policy = "default".into();
        })
    }));
    let h = start(policy(&text), setup);
    h.run_until("2027-01-01T01:10:00Z").await;
    let excluded = h.status().excluded_volumes;
    assert_eq!(excluded.len(), 1, "{excluded:?}");
    assert!(
        excluded[0].reason.contains("double_schedule")
            && excluded[0].reason.contains("volume modify"),
        "{excluded:?}"
    );
    // snapwarden took nothing and started nothing on it; ONTAP's own snapshots go on.
    let mine = h
        .journal
        .managed(t("2027-01-01T00:00:00Z"), false)
        .expect("journal");
    assert!(mine.is_empty(), "{mine:?}");
    assert!(h.cycles().iter().all(|c| c.state.as_str() == "skipped"));
    assert!(h
        .metrics
        .render()
        .contains("snapwarden_volume_excluded{cluster=\"lab\",reason=\"double_schedule\",svm=\"svm1\",volume=\"vol_a\"} 1"));
    let (_, _, _) = h.stop().await;
}

/// Runs `f` on the world's `vol_a` (cluster 0) before the agent starts.
fn on_vol_a(
    f: impl FnOnce(&mut snapwarden::sim::World, usize) + 'static,
) -> agent_support::Prepare {
    Box::new(move |sim| {
        sim.with(|w| {
            let vi = w.clusters[0]
                .volumes
                .iter()
                .position(|v| v.name == "vol_a")
                .expect("vol_a");
            f(w, vi)
        })
    })
}

/// The series as ONTAP took it before the hand-over: hourly at :05 from 21:05 to 23:05 on the
/// last day of 2026, unmarked.
fn ontaps_series(w: &mut snapwarden::sim::World, vi: usize) {
    for h in 21..=23 {
        let name = format!("hourly.2026-12-31_{h}05");
        let at = t(&format!("2026-12-31T{h}:05:00Z"));
        w.add_existing_snapshot(0, vi, &name, None, Some("hourly".into()), at)
            .expect("a snapshot");
    }
}

fn status_of(h: &agent_support::Harness) -> snapwarden::agent::managed::CopyStatus {
    h.status()
        .managed_snapshots
        .into_iter()
        .next()
        .expect("the managed copy")
}

#[tokio::test(start_paused = true)]
async fn the_series_ontap_took_before_the_hand_over_continues_and_rotates() {
    let mut setup = Setup::at("2027-01-01T00:00:00Z");
    setup.prepare = Some(on_vol_a(ontaps_series));
    let h = start(policy(&managed("4h")), setup);
    // 23:05 was taken (by ONTAP): nothing overdue at start; 00:05 taken, 21:05 rotated out.
    h.run_until("2027-01-01T00:06:00Z").await;
    let names: Vec<String> = hourly(&h).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(
        names,
        [
            "hourly.2026-12-31_2205",
            "hourly.2026-12-31_2305",
            "hourly.2027-01-01_0005"
        ]
    );
    let (_, _, _) = h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_busy_oldest_snapshot_is_never_deleted_and_the_excess_is_reported_until_it_is_free() {
    let mut setup = Setup::at("2027-01-01T00:00:00Z");
    setup.prepare = Some(on_vol_a(|w, vi| {
        ontaps_series(w, vi);
        // SnapMirror holds the oldest.
        w.hold_snapshot(0, vi, 0, vec!["snapmirror".into()])
            .expect("held");
    }));
    let h = start(policy(&managed("4h")), setup);
    h.run_until("2027-01-01T00:30:00Z").await;
    let names: Vec<String> = hourly(&h).into_iter().map(|(n, _, _)| n).collect();
    // 00:05 taken: one beyond the count of 3, the oldest, which is busy: it stays, and no newer
    // one is deleted in its place.
    assert_eq!(
        names,
        [
            "hourly.2026-12-31_2105",
            "hourly.2026-12-31_2205",
            "hourly.2026-12-31_2305",
            "hourly.2027-01-01_0005"
        ]
    );
    assert_eq!(status_of(&h).over_count, 1);
    assert!(h.metrics.render().contains(
        "snapwarden_managed_snapshots_over_count{cluster=\"lab\",schedule=\"hourly\",svm=\"svm1\",volume=\"vol_a\"} 1"
    ));
    // SnapMirror lets go: the next pass trims the series to its count.
    h.sim.with(|w| {
        let vi = w.clusters[0]
            .volumes
            .iter()
            .position(|v| v.name == "vol_a")
            .unwrap();
        w.hold_snapshot(0, vi, 0, Vec::new()).expect("released");
    });
    h.wait_for("the series at its count", TimeDelta::minutes(5), |h| {
        hourly(h).len() == 3
    })
    .await;
    let names: Vec<String> = hourly(&h).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(
        names,
        [
            "hourly.2026-12-31_2205",
            "hourly.2026-12-31_2305",
            "hourly.2027-01-01_0005"
        ]
    );
    let (_, _, _) = h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn look_alike_names_are_never_deleted() {
    let mut setup = Setup::at("2027-01-01T00:00:00Z");
    setup.prepare = Some(on_vol_a(|w, vi| {
        let old = t("2026-12-01T00:00:00Z");
        for name in [
            "hourly.2026-12-01_0105x",
            "hourly.backup",
            "hourly-long.2026-12-01_0105",
        ] {
            w.add_existing_snapshot(0, vi, name, None, None, old)
                .expect("a snapshot");
        }
    }));
    let h = start(policy(&managed("4h")), setup);
    h.run_until("2027-01-01T05:06:00Z").await;
    let names: Vec<String> = h.snapshots("vol_a");
    for kept in [
        "hourly.2026-12-01_0105x",
        "hourly.backup",
        "hourly-long.2026-12-01_0105",
    ] {
        assert!(
            names.contains(&kept.to_string()),
            "{kept} deleted: {names:?}"
        );
    }
    // The series itself is kept at 3.
    assert_eq!(
        hourly(&h).iter().filter(|(n, _, _)| n.len() == 22).count(),
        3
    );
    let (_, _, _) = h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_reserved_prefix_is_refused_by_ontap_and_named_with_its_fix() {
    let mut setup = Setup::at("2027-01-01T00:00:00Z");
    setup.prepare = Some(Box::new(|sim| {
        sim.with(|w| w.knobs.reserved_snapshot_prefixes = vec!["hourly".into()])
    }));
    let h = start(policy(&managed("4h")), setup);
    h.run_until("2027-01-01T00:06:00Z").await;
    assert!(hourly(&h).is_empty(), "{:?}", hourly(&h));
    let error = status_of(&h).last_error.unwrap_or_default();
    assert!(
        error.contains("1638477")
            && error.contains("set `prefix`")
            && error.contains("\"hourly.\""),
        "{error}"
    );
    assert!(h.metrics.render().contains(
        "snapwarden_managed_snapshots_total{cluster=\"lab\",result=\"failed\",schedule=\"hourly\",svm=\"svm1\",volume=\"vol_a\"}"
    ));
    let (_, _, _) = h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_name_that_exists_is_taken_as_ours_only_with_our_marker() {
    // Somebody made hourly.2027-01-01_0005 by hand before 00:05: snapwarden's create of that
    // name meets 525059, leaves it alone, and takes one a minute later.
    let mut setup = Setup::at("2027-01-01T00:03:00Z");
    setup.prepare = Some(on_vol_a(|w, vi| {
        ontaps_series(w, vi);
        w.add_existing_snapshot(
            0,
            vi,
            "hourly.2027-01-01_0005",
            Some("made by hand".into()),
            None,
            t("2027-01-01T00:03:00Z"),
        )
        .expect("a snapshot");
    }));
    let h = start(policy(&managed("4h")), setup);
    h.run_until("2027-01-01T00:07:00Z").await;
    let mine = h.journal.managed(t("2027-01-01T00:00:00Z"), false).unwrap();
    let outcome: Vec<(String, ObjectState)> =
        mine.iter().map(|m| (m.name.clone(), m.state)).collect();
    assert_eq!(
        outcome,
        [
            ("hourly.2027-01-01_0005".to_string(), ObjectState::Absent),
            ("hourly.2027-01-01_0006".to_string(), ObjectState::Created),
        ]
    );
    assert!(mine[0].detail.contains("525059") && mine[0].detail.contains("not snapwarden's"));
    // The hand-made one is untouched (it follows the pattern, so rotation may age it out later,
    // as ONTAP's own would be).
    let comment = hourly(&h)
        .into_iter()
        .find(|(n, _, _)| n == "hourly.2027-01-01_0005")
        .and_then(|(_, _, c)| c);
    assert_eq!(comment.as_deref(), Some("made by hand"));
    let (_, _, _) = h.stop().await;

    // With snapwarden's marker (its own create whose answer was lost): taken as made.
    let mut setup = Setup::at("2027-01-01T00:03:00Z");
    setup.prepare = Some(on_vol_a(|w, vi| {
        ontaps_series(w, vi);
        w.add_existing_snapshot(
            0,
            vi,
            "hourly.2027-01-01_0005",
            Some("created-by=snapwarden schedule=hourly".into()),
            Some("hourly".into()),
            t("2027-01-01T00:03:00Z"),
        )
        .expect("a snapshot");
    }));
    let h = start(policy(&managed("4h")), setup);
    h.run_until("2027-01-01T00:07:00Z").await;
    let mine = h.journal.managed(t("2027-01-01T00:00:00Z"), false).unwrap();
    let outcome: Vec<(String, ObjectState)> =
        mine.iter().map(|m| (m.name.clone(), m.state)).collect();
    assert_eq!(
        outcome,
        [("hourly.2027-01-01_0005".to_string(), ObjectState::Created)]
    );
    let (_, _, _) = h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_locked_oldest_snapshot_is_never_deleted_and_the_excess_is_reported() {
    // Somebody restored a LUN from the oldest snapshot of the series (a SnapRestore clone): it is
    // locked (owner lun_clone) while the clone lives.
    let mut setup = Setup::at("2027-01-01T00:00:00Z");
    setup.prepare = Some(on_vol_a(|w, vi| {
        ontaps_series(w, vi);
        w.clone_lun_snaprestore(
            0,
            vi,
            "hourly.2026-12-31_2105",
            "/vol/vol_a/lun0",
            "/vol/vol_a/restored",
        )
        .expect("a SnapRestore clone");
    }));
    let h = start(policy(&managed("4h")), setup);
    h.run_until("2027-01-01T00:30:00Z").await;
    let names: Vec<String> = hourly(&h).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(
        names,
        [
            "hourly.2026-12-31_2105",
            "hourly.2026-12-31_2205",
            "hourly.2026-12-31_2305",
            "hourly.2027-01-01_0005"
        ]
    );
    assert_eq!(status_of(&h).over_count, 1);
    // No delete of it was even tried: the listing shows its owner.
    let rotations: i64 = h
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("snapwarden_managed_rotations_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum();
    assert_eq!(rotations, 0);
    let (_, _, _) = h.stop().await;
}
