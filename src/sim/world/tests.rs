//! Unit tests of the world's operations.

use super::*;
use chrono::TimeDelta;

use crate::timeline::{CronSpec, Recurrence};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// One cluster (Berlin), svm1, vol1 with LUN /vol/vol1/lun1, policy `hourly` ×`count`.
fn world(count: u32, licenses: &[&str]) -> World {
    let mut w = World::new(t("2026-03-01T00:00:00Z"), Knobs::default());
    let ci = w.add_cluster("c1", "9.14.1", chrono_tz::Europe::Berlin);
    for l in licenses {
        w.add_license(ci, l);
    }
    w.add_svm(ci, "svm1").unwrap();
    w.add_schedule(
        ci,
        "hourly",
        Recurrence::Cron(CronSpec::parse("5 * * * *").unwrap()),
    )
    .unwrap();
    w.add_policy(
        ci,
        "p",
        "",
        vec![PolicyCopy {
            schedule: "hourly".into(),
            count,
            prefix: None,
        }],
    )
    .unwrap();
    w.add_builtins(ci);
    w.create_volume(ci, "svm1", "vol1", 1 << 30, "p").unwrap();
    w.create_lun(ci, "/vol/vol1/lun1", 1 << 20, "vmware")
        .unwrap();
    w
}

fn names(w: &World) -> Vec<String> {
    w.clusters[0].volumes[0]
        .snapshots
        .iter()
        .map(|s| s.name.clone())
        .collect()
}

#[test]
fn schedule_names_in_local_time_and_rotates_by_count() {
    let mut w = world(3, &[]);
    let events = w.advance_to(t("2026-03-01T05:00:00Z"));
    // 01:05 .. 05:05 local (UTC+1) is 00:05..04:05 UTC: 5 fires, count 3 keeps the last 3.
    assert_eq!(events.iter().filter(|e| e.kind == "taken").count(), 5);
    assert_eq!(
        names(&w),
        [
            "hourly.2026-03-01_0305",
            "hourly.2026-03-01_0405",
            "hourly.2026-03-01_0505"
        ]
    );
}

#[test]
fn snaprestore_clone_chain_lock() {
    let mut w = world(10, &["snaprestore"]);
    let b = w.create_snapshot(0, 0, "backing", None).unwrap();
    let clone = w
        .clone_lun_snaprestore(0, 0, "backing", "/lun1", "/clone1")
        .unwrap();
    assert_eq!(w.owners(0, 0, 0), vec![OWNER_LUN_CLONE]);
    w.advance_to(t("2026-03-01T00:30:00Z"));
    assert_eq!(
        names(&w).len(),
        2,
        "the scheduled snapshot captured the clone"
    );
    let si = w.snapshot_index(0, 0, &b).unwrap();
    assert!(matches!(
        w.delete_snapshot(0, 0, si),
        Err(SimError::SnapshotLocked { .. })
    ));
    let li = w.lun_index(0, &clone).unwrap();
    w.delete_lun(0, li, false).unwrap();
    assert!(
        w.delete_snapshot(0, 0, si).is_err(),
        "still pinned by the scheduled snapshot"
    );
    let pin = w.snapshot_index(0, 0, "hourly.2026-03-01_0105").unwrap();
    w.delete_snapshot(0, 0, pin).unwrap();
    let si = w.snapshot_index(0, 0, &b).unwrap();
    w.delete_snapshot(0, 0, si).unwrap();
    assert!(w.clusters[0].restore_clones.is_empty());
}

#[test]
fn snapshot_clone_dependency_frees_backing_after_clone_delete() {
    let mut w = world(10, &["snaprestore"]);
    w.clusters[0].volumes[0].snapshot_clone_dependency = true;
    w.create_snapshot(0, 0, "backing", None).unwrap();
    let clone = w
        .clone_lun_snaprestore(0, 0, "backing", "lun1", "clone1")
        .unwrap();
    w.advance_to(t("2026-03-01T00:30:00Z"));
    let li = w.lun_index(0, &clone).unwrap();
    w.delete_lun(0, li, false).unwrap();
    let si = w.snapshot_index(0, 0, "backing").unwrap();
    w.delete_snapshot(0, 0, si).unwrap();
}

#[test]
fn flexclone_block_sharing_locks_then_frees() {
    let mut w = world(10, &[]);
    w.create_snapshot(0, 0, "b", None).unwrap();
    let err = w
        .clone_lun_flexclone(0, "/vol/vol1/.snapshot/b/lun1", "/vol/vol1/c")
        .unwrap_err();
    assert_eq!(err.code(), codes::LUN_CLONE_FAILED);
    w.add_license(0, "flexclone");
    w.clone_lun_flexclone(0, "/vol/vol1/.snapshot/b/lun1", "/vol/vol1/c")
        .unwrap();
    assert_eq!(w.owners(0, 0, 0), vec![OWNER_FILE_CLONE]);
    assert!(matches!(
        w.create_snapshot(0, 0, "x", None),
        Err(SimError::BlockSharing { .. })
    ));
    w.advance_to(t("2026-03-01T00:01:00Z"));
    assert!(w.owners(0, 0, 0).is_empty());
    w.delete_snapshot(0, 0, 0).unwrap();
}

#[test]
fn volume_clone_locks_parent_snapshot_until_deleted_or_split() {
    let mut w = world(10, &["flexclone"]);
    w.create_snapshot(0, 0, "base", None).unwrap();
    let c = w
        .clone_volume(0, "svm1", "vc", "vol1", Some("base"))
        .unwrap();
    assert_eq!(w.owners(0, 0, 0), vec![OWNER_VOLUME_CLONE]);
    assert!(matches!(
        w.delete_volume(0, 0),
        Err(SimError::HasClones { .. })
    ));
    let vi = w.volume_index(0, &c).unwrap();
    w.split_clone(0, vi).unwrap();
    assert!(w.owners(0, 0, 0).is_empty());
}

#[test]
fn locked_oldest_knob() {
    for (knob, expect_taken, expect_len) in [
        (LockedOldest::Skip, 3, 3),
        (LockedOldest::Stall, 3, 4),
        (LockedOldest::FailCreate, 1, 2),
    ] {
        let mut w = world(2, &["snaprestore"]);
        w.knobs.locked_oldest = knob;
        w.advance_to(t("2026-03-01T00:10:00Z"));
        w.clone_lun_snaprestore(0, 0, "hourly.2026-03-01_0105", "lun1", "c")
            .unwrap();
        let events = w.advance_to(t("2026-03-01T04:00:00Z"));
        let taken = events.iter().filter(|e| e.kind == "taken").count();
        assert_eq!(
            (knob, taken, names(&w).len()),
            (knob, expect_taken, expect_len),
            "{:?}",
            names(&w)
        );
        assert_eq!(names(&w)[0], "hourly.2026-03-01_0105");
    }
}

#[test]
fn mapped_lun_delete_needs_flag_and_jobs_expire() {
    let mut w = world(1, &[]);
    w.create_igroup(0, "svm1", "g", "vmware", "iscsi", vec![])
        .unwrap();
    assert_eq!(w.map_lun(0, "/vol/vol1/lun1", "g").unwrap(), 0);
    assert_eq!(
        w.delete_lun(0, 0, false).unwrap_err().code(),
        crate::ontap::LUN_MAPPED
    );
    let job = w.add_job(0, "x".into(), None, &Ok(()));
    w.delete_lun(0, 0, true).unwrap();
    let start = w.now();
    w.advance_to(start + TimeDelta::seconds(299));
    assert!(w.job(0, &job).is_ok());
    w.advance_to(start + TimeDelta::seconds(300));
    assert!(w.job(0, &job).is_err());
}
