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
