//! Scheduled snapshots in virtual time over HTTP: naming in cluster-local time, retention by
//! count, the locked-oldest rotation knob, and the DST rule shared with the timeline module.

#[path = "sim_support/mod.rs"]
mod support;

use reqwest::Method;
use serde_json::json;
use support::Sim;

fn world(knobs: &str, timezone: &str, cron: &str, count: u32) -> String {
    format!(
        r#"
[knobs]
{knobs}
[[clusters]]
name = "c1"
timezone = "{timezone}"
licenses = ["snaprestore"]
[[clusters.schedules]]
name = "hourly"
cron = "{cron}"
[[clusters.snapshot_policies]]
name = "p"
copies = [{{ schedule = "hourly", count = {count} }}]
[[clusters.svms]]
name = "svm1"
[[clusters.svms.volumes]]
name = "vol1"
snapshot_policy = "p"
luns = [{{ name = "lun1" }}]
"#
    )
}

#[tokio::test]
async fn retention_by_count_deletes_the_oldest() {
    let sim = Sim::start(
        &world("", "America/New_York", "5 * * * *", 3),
        "2026-06-01T12:00:00Z",
    )
    .await;
    let vol = sim.volume_uuid("vol1").await;
    let adv = sim.advance_events(5 * 3600).await;
    assert_eq!(adv["counts"]["taken"], 5);
    assert_eq!(adv["counts"]["deleted"], 2);
    let deleted = adv["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "deleted")
        .count();
    assert_eq!(deleted, 2);
    assert_eq!(
        sim.snapshot_names(&vol).await,
        [
            "hourly.2026-06-01_1005",
            "hourly.2026-06-01_1105",
            "hourly.2026-06-01_1205"
        ]
    );
    let s = sim.snapshot(&vol, "hourly.2026-06-01_1205").await;
    assert_eq!(s["create_time"], "2026-06-01T12:05:00-04:00");
    sim.handle.stop().await;
}

/// Locks the first scheduled snapshot with a SnapRestore clone, then lets 4 more fire (count 2).
async fn rotate_past_locked_oldest(knob: &str) -> Vec<String> {
    let sim = Sim::start(
        &world(
            &format!("locked_oldest = \"{knob}\""),
            "Etc/UTC",
            "5 * * * *",
            2,
        ),
        "2026-06-01T00:00:00Z",
    )
    .await;
    let vol = sim.volume_uuid("vol1").await;
    sim.advance(600).await;
    sim.ok_job(
        Method::PATCH,
        &format!("/api/storage/volumes/{vol}?restore_to.snapshot.name=hourly.2026-06-01_0005&restore_to.path=lun1&restore_to.restore_path=clone"),
        None,
    )
    .await;
    sim.advance(4 * 3600).await;
    let names = sim.snapshot_names(&vol).await;
    let oldest = sim.snapshot(&vol, "hourly.2026-06-01_0005").await;
    assert_eq!(oldest["owners"], json!(["lun_clone"]));
    sim.handle.stop().await;
    names
}

#[tokio::test]
async fn locked_oldest_default_skips_it_and_exceeds_the_count() {
    assert_eq!(
        rotate_past_locked_oldest("skip").await,
        [
            "hourly.2026-06-01_0005",
            "hourly.2026-06-01_0305",
            "hourly.2026-06-01_0405"
        ]
    );
}

#[tokio::test]
async fn locked_oldest_stall_and_fail_create_knobs() {
    assert_eq!(rotate_past_locked_oldest("stall").await.len(), 5);
    assert_eq!(
        rotate_past_locked_oldest("fail_create").await,
        ["hourly.2026-06-01_0005", "hourly.2026-06-01_0105"]
    );
}

#[tokio::test]
async fn berlin_hourly_takes_23_snapshots_on_spring_forward_day_and_24_on_fall_back_day() {
    // 2026-03-28T22:00Z is 23:00 CET, one hour before the local day of the change starts.
    let sim = Sim::start(
        &world("", "Europe/Berlin", "0 * * * *", 200),
        "2026-03-28T22:00:00Z",
    )
    .await;
    let vol = sim.volume_uuid("vol1").await;
    sim.advance(26 * 3600).await;
    let names = sim.snapshot_names(&vol).await;
    let day: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("hourly.2026-03-29_"))
        .collect();
    assert_eq!(day.len(), 23, "{day:?}");
    assert!(
        !names.iter().any(|n| n == "hourly.2026-03-29_0200"),
        "02:00 does not exist that night"
    );
    assert_eq!(
        sim.snapshot(&vol, "hourly.2026-03-29_0100").await["create_time"],
        "2026-03-29T01:00:00+01:00"
    );
    assert_eq!(
        sim.snapshot(&vol, "hourly.2026-03-29_0300").await["create_time"],
        "2026-03-29T03:00:00+02:00"
    );
    sim.handle.stop().await;

    // Fall back: 02:00 occurs twice and fires once (at its first occurrence).
    let sim = Sim::start(
        &world("", "Europe/Berlin", "0 * * * *", 200),
        "2026-10-24T21:00:00Z",
    )
    .await;
    let vol = sim.volume_uuid("vol1").await;
    sim.advance(28 * 3600).await;
    let names = sim.snapshot_names(&vol).await;
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("hourly.2026-10-25_"))
            .count(),
        24
    );
    assert_eq!(
        sim.snapshot(&vol, "hourly.2026-10-25_0200").await["create_time"],
        "2026-10-25T02:00:00+02:00"
    );
    sim.handle.stop().await;
}

#[tokio::test]
async fn a_30_day_advance_over_many_volumes_is_fast() {
    let mut text = world("", "Etc/UTC", "5 * * * *", 6);
    for i in 0..100 {
        text.push_str(&format!(
            "[[clusters.svms.volumes]]\nname = \"v{i}\"\nsnapshot_policy = \"default\"\n"
        ));
    }
    let sim = Sim::start(&text, "2026-01-01T00:00:00Z").await;
    let began = std::time::Instant::now();
    let adv = sim.advance(30 * 86_400).await;
    // 101 volumes x 720 hourly + 100 x (30 daily + 4 weekly).
    assert_eq!(adv["counts"]["taken"], 101 * 720 + 100 * 34);
    assert!(
        began.elapsed() < std::time::Duration::from_secs(45),
        "took {:?}",
        began.elapsed()
    );
    let all = sim
        .get("/api/storage/volumes/*/snapshots?return_records=false")
        .await;
    assert_eq!(all["num_records"], 6 + 100 * (6 + 2 + 2));
    sim.handle.stop().await;
}
