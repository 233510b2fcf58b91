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
            snapmirror_label: None,
            retention_period: None,
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
    assert!(w.clusters[0].volumes[0].restore_clones.is_empty());
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

#[test]
fn a_capped_advance_counts_every_event_and_keeps_the_first() {
    let mut full = world(3, &[]);
    let mut capped = full.clone();
    let to = t("2026-03-02T12:00:00Z");
    let all = full.advance_to(to);
    let summary = capped.advance_summarized(to, 3);
    let count = |kind: &str| all.iter().filter(|e| e.kind == kind).count() as u64;
    assert_eq!(
        (summary.taken, summary.deleted, summary.skipped),
        (count("taken"), count("deleted"), count("skipped"))
    );
    // Uuids are random; everything else is the same.
    let key = |e: &ClockEvent| (e.kind, e.snapshot.clone(), e.time);
    assert_eq!(
        summary.events.iter().map(key).collect::<Vec<_>>(),
        all[..3].iter().map(key).collect::<Vec<_>>()
    );
    assert_eq!(summary.omitted, all.len() as u64 - 3);
    // Same world afterwards: the cap only limits what is reported.
    assert_eq!(names(&capped), names(&full));
}

#[test]
fn advances_beyond_the_bound_or_the_calendar_are_errors_not_panics() {
    use crate::sim::{ClockError, ClockMode, Simulator, MAX_ADVANCE_SECONDS};
    let sim = Simulator::new(world(3, &[]), ClockMode::Manual);
    for seconds in [i64::MAX, i64::MIN, -1, MAX_ADVANCE_SECONDS + 1] {
        assert!(
            matches!(
                sim.advance_summarized(seconds, 0),
                Err(ClockError::OutOfRange { .. })
            ),
            "{seconds}"
        );
    }
    assert!(sim.advance_summarized(MAX_ADVANCE_SECONDS, 0).is_ok());
    // A world one day before the end of chrono's calendar cannot move two days.
    let end = DateTime::<Utc>::MAX_UTC - TimeDelta::days(1);
    let sim = Simulator::new(World::new(end, Knobs::default()), ClockMode::Manual);
    assert!(matches!(
        sim.advance_summarized(2 * 86_400, 0),
        Err(ClockError::Overflow { .. })
    ));
    assert_eq!(sim.now(), end);
}

#[test]
fn unvalidated_huge_durations_saturate_instead_of_panicking() {
    let mut w = world(3, &["flexclone"]);
    w.faults.job_duration_seconds = u64::MAX;
    w.knobs.job_retention_seconds = u64::MAX;
    w.knobs.block_sharing_seconds = u64::MAX;
    let job = w.add_job(0, "x".into(), None, &Ok(()));
    w.create_snapshot(0, 0, "s", None).unwrap();
    w.clone_lun_flexclone(0, "/vol/vol1/.snapshot/s/lun1", "/vol/vol1/c")
        .unwrap();
    w.advance_to(t("2026-03-02T00:00:00Z"));
    assert_eq!(w.job(0, &job).unwrap().state(w.now()), JobState::Running);
    assert_eq!(w.owners(0, 0, 0), vec![OWNER_FILE_CLONE]);
}

#[test]
fn settings_ranges() {
    assert_eq!(Knobs::default().validate(), Ok(()));
    assert_eq!(Faults::default().validate(), Ok(()));
    let knobs = |f: fn(&mut Knobs)| {
        let mut k = Knobs::default();
        f(&mut k);
        k.validate().map_err(|e| e.field)
    };
    assert_eq!(
        knobs(|k| k.locked_delete_code = 4),
        Err("locked_delete_code")
    );
    assert_eq!(knobs(|k| k.locked_delete_code = 1_638_543), Ok(()));
    assert_eq!(
        knobs(|k| k.max_snapshots_per_volume = 1024),
        Err("max_snapshots_per_volume")
    );
    assert_eq!(
        knobs(|k| k.job_retention_seconds = MAX_SETTING_SECONDS + 1),
        Err("job_retention_seconds")
    );
    let faults = |f: fn(&mut Faults)| {
        let mut x = Faults::default();
        f(&mut x);
        x.validate().map_err(|e| e.field)
    };
    assert_eq!(faults(|f| f.error_rate = 1.0), Ok(()));
    assert_eq!(faults(|f| f.error_rate = 1.5), Err("error_rate"));
    assert_eq!(faults(|f| f.drop_rate = f64::NAN), Err("drop_rate"));
    assert_eq!(
        faults(|f| f.job_failure_rate = -0.1),
        Err("job_failure_rate")
    );
    assert_eq!(
        faults(|f| f.latency_ms = MAX_LATENCY_MS + 1),
        Err("latency_ms")
    );
}

#[test]
fn snapshot_names_follow_one_rule() {
    use super::snapshots::snapshot_name_problem;
    let long = "n".repeat(255);
    for ok in [
        "hourly.2026-03-01_0105",
        "a",
        "...",
        ".hidden",
        "a b",
        "ü",
        long.as_str(),
    ] {
        assert_eq!(snapshot_name_problem(ok), None, "{ok:?}");
    }
    let too_long = "n".repeat(256);
    // 128 two-byte characters are 256 bytes.
    let too_long_utf8 = "ü".repeat(128);
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "/",
        "nul\0",
        "\u{1}",
        "\u{7f}",
        "a\u{85}b",
        too_long.as_str(),
        too_long_utf8.as_str(),
    ] {
        assert!(snapshot_name_problem(bad).is_some(), "{bad:?}");
    }
    // Create and rename apply it, each with its code.
    let mut w = world(3, &[]);
    let err = w.create_snapshot(0, 0, "..", None).unwrap_err();
    assert_eq!(err.code(), codes::SNAPSHOT_NAME_INVALID);
    w.create_snapshot(0, 0, "ok", None).unwrap();
    let err = w
        .modify_snapshot(0, 0, 0, Some("a/b"), None, None)
        .unwrap_err();
    assert_eq!(err.code(), codes::SNAPSHOT_RENAME_INVALID);
    assert_eq!(err.http_status(), 400);
    assert_eq!(names(&w), ["ok"]);
}

/// The LUN name index against a scan of every LUN, for every name, after each kind of change.
#[test]
fn the_lun_name_index_matches_a_scan() {
    fn check(w: &World) {
        let c = &w.clusters[0];
        let mut names: Vec<String> = c.luns.iter().map(|l| l.name.to_lowercase()).collect();
        names.push("/vol/vol1/absent".into());
        for name in names {
            let scan: Vec<usize> = (0..c.luns.len())
                .filter(|&i| c.luns[i].name.to_lowercase() == name)
                .collect();
            assert_eq!(c.luns_named(&name), scan, "{name}");
            assert_eq!(c.luns_named(&name.to_uppercase()), scan, "{name}");
        }
        let indexed: usize = c.lun_names.values().map(Vec::len).sum();
        assert_eq!(indexed, c.luns.len());
    }
    let mut w = world(3, &["snaprestore"]);
    w.create_volume(0, "svm1", "vol2", 1 << 30, "none").unwrap();
    for i in 0..50 {
        w.create_lun(0, &format!("/vol/vol1/l{i}"), 1 << 20, "vmware")
            .unwrap();
        w.create_lun(0, &format!("/vol/vol2/l{i}"), 1 << 20, "vmware")
            .unwrap();
    }
    // Names that differ only in case share an index entry; look-ups stay exact.
    w.create_lun(0, "/vol/vol1/L7", 1 << 20, "vmware").unwrap();
    check(&w);
    assert_eq!(w.clusters[0].luns_named("/vol/vol1/l7").len(), 2);
    let upper = w.lun_index(0, "/vol/vol1/L7").unwrap();
    assert_eq!(w.clusters[0].luns[upper].name, "/vol/vol1/L7");
    for name in [
        "/vol/vol1/l3",
        "/vol/vol2/l40",
        "/vol/vol1/lun1",
        "/vol/vol1/L7",
    ] {
        let li = w.lun_index(0, name).unwrap();
        w.delete_lun(0, li, false).unwrap();
        check(&w);
    }
    w.create_snapshot(0, 0, "s", None).unwrap();
    w.clone_lun_snaprestore(0, 0, "s", "/l5", "/l5_clone")
        .unwrap();
    check(&w);
    let vi = w.volume_by_name(0, "vol2").unwrap();
    w.delete_volume(0, vi).unwrap();
    check(&w);
    assert!(w.lun_index(0, "/vol/vol2/l1").is_err());
}

#[test]
fn a_snapshot_holds_more_the_longer_it_is_kept() {
    let mut w = world(3, &[]);
    w.create_snapshot(0, 0, "manual", None).unwrap();
    let si = w.snapshot_index(0, 0, "manual").unwrap();
    // Taken as the volume's first snapshot: 4 KiB.
    assert_eq!(w.snapshot_size(0, 0, si), 4096);
    w.advance_to(t("2026-03-01T05:00:00Z"));
    let si = w.snapshot_index(0, 0, "manual").unwrap();
    // 5 h of 0.1 %/h of the 1 MiB LUN: 1048576 × 5 × 3600 × 1000 / 3.6e9 = 5242.88 → 5242.
    assert_eq!(w.snapshot_size(0, 0, si), 4096 + 5242);
    // Never more than the LUNs' own size (1000 h would be 100 %; 2000 h is capped).
    w.advance_to(t("2026-06-01T00:00:00Z"));
    let si = w.snapshot_index(0, 0, "manual").unwrap();
    assert_eq!(w.snapshot_size(0, 0, si), 4096 + (1 << 20));
}

#[test]
fn a_snapmirror_label_is_kept_from_the_create_and_from_the_policy_copy() {
    let mut w = world(3, &[]);
    w.clusters[0].policies[0].copies[0].snapmirror_label = Some("hourly".into());
    w.create_labelled_snapshot(0, 0, "mine", None, Some("weekly".into()))
        .unwrap();
    w.create_snapshot(0, 0, "plain", None).unwrap();
    w.advance_to(t("2026-03-01T00:10:00Z"));
    let labels: Vec<(&str, Option<&str>)> = w.clusters[0].volumes[0]
        .snapshots
        .iter()
        .map(|s| (s.name.as_str(), s.snapmirror_label.as_deref()))
        .collect();
    assert_eq!(
        labels,
        [
            ("mine", Some("weekly")),
            ("plain", None),
            ("hourly.2026-03-01_0105", Some("hourly"))
        ]
    );
    // ONTAP's 1 to 31 characters; nothing is created or changed on a bad label.
    for bad in ["", "a-label-of-thirty-two-characters", "tab\there"] {
        let err = w
            .create_labelled_snapshot(0, 0, "x", None, Some(bad.into()))
            .unwrap_err();
        assert_eq!(
            (err.code(), err.target()),
            (codes::INVALID, "snapmirror_label".into())
        );
        let err = w
            .modify_snapshot(0, 0, 0, Some("renamed"), None, Some(bad.into()))
            .unwrap_err();
        assert_eq!(err.code(), codes::INVALID);
    }
    assert_eq!(names(&w)[..2], ["mine", "plain"]);
    w.modify_snapshot(0, 0, 1, None, None, Some("daily".into()))
        .unwrap();
    assert_eq!(
        w.clusters[0].volumes[0].snapshots[1]
            .snapmirror_label
            .as_deref(),
        Some("daily")
    );
}

#[test]
fn a_taken_name_is_refused_with_525059() {
    let mut w = world(3, &[]);
    w.create_snapshot(0, 0, "backing", Some("first".into()))
        .unwrap();
    let err = w
        .create_labelled_snapshot(0, 0, "backing", Some("second".into()), Some("x".into()))
        .unwrap_err();
    assert_eq!(err.code(), 525_059);
    assert_eq!(err.http_status(), 409);
    assert!(!err.is_job_failure(), "answered at once, not through a job");
    assert_eq!(
        err.to_string(),
        "Snapshot copy \"backing\" already exists on volume \"vol1\"."
    );
    assert_eq!(names(&w), ["backing"]);
    assert_eq!(
        w.clusters[0].volumes[0].snapshots[0].comment.as_deref(),
        Some("first")
    );
}

#[test]
fn reserved_prefixes_refuse_user_names_with_1638477_but_not_the_schedules() {
    let mut w = world(3, &[]);
    w.knobs.reserved_snapshot_prefixes = vec!["hourly".into(), "daily".into()];
    assert_eq!(w.knobs.validate(), Ok(()));
    for name in ["hourly.2026-03-01_0105", "daily.x"] {
        let err = w.create_snapshot(0, 0, name, None).unwrap_err();
        assert_eq!(
            (err.code(), err.http_status(), err.target()),
            (1_638_477, 400, "name".into()),
            "{name}"
        );
        assert!(!err.is_job_failure());
    }
    assert_eq!(
        w.create_snapshot(0, 0, "hourly.x", None)
            .unwrap_err()
            .to_string(),
        "User-created Snapshot copy names cannot begin with the specified prefix \"hourly.\" \
         (snapshot \"hourly.x\")."
    );
    // Only `<prefix>.` is reserved, exactly: other names, other cases and other separators pass.
    for name in [
        "hourly",
        "hourlyx.1",
        "Hourly.1",
        "hourly-1",
        "my.hourly.1",
        "weekly.1",
    ] {
        w.create_snapshot(0, 0, name, None).unwrap();
    }
    // A rename into a reserved prefix is refused the same way (a documented PATCH code).
    let err = w
        .modify_snapshot(0, 0, 0, Some("daily.1"), None, None)
        .unwrap_err();
    assert_eq!(err.code(), 1_638_477);
    // The schedule's own snapshots are not user-created.
    let taken = w.advance_to(t("2026-03-01T00:10:00Z"));
    assert_eq!(taken[0].kind, "taken", "{taken:?}");
    assert_eq!(taken[0].snapshot, "hourly.2026-03-01_0105");
}

#[test]
fn reserved_prefixes_are_range_checked() {
    let bad = |prefixes: Vec<String>| {
        Knobs {
            reserved_snapshot_prefixes: prefixes,
            ..Knobs::default()
        }
        .validate()
        .unwrap_err()
        .field
    };
    assert_eq!(bad(vec!["".into()]), "reserved_snapshot_prefixes");
    assert_eq!(bad(vec!["a/b".into()]), "reserved_snapshot_prefixes");
    assert_eq!(
        bad((0..65).map(|i| format!("p{i}")).collect()),
        "reserved_snapshot_prefixes"
    );
}

#[test]
fn a_held_snapshot_is_busy_like_a_clones_backing_snapshot() {
    for code in [1_638_555, 1_638_543] {
        let mut w = world(2, &[]);
        w.knobs.locked_delete_code = code;
        w.create_snapshot(0, 0, "mirrored", None).unwrap();
        w.hold_snapshot(0, 0, 0, vec!["snapmirror".into(), "snapmirror".into()])
            .unwrap();
        assert_eq!(w.owners(0, 0, 0), vec!["snapmirror"]);
        let err = w.delete_snapshot(0, 0, 0).unwrap_err();
        assert_eq!(err.code(), code);
        assert!(err.is_job_failure(), "a busy delete fails inside its job");
        assert!(err.to_string().contains("has not expired or is locked"));
        // Held and clone owners together; the clone's come first and stay when released.
        w.add_license(0, "snaprestore");
        w.clone_lun_snaprestore(0, 0, "mirrored", "/lun1", "/clone1")
            .unwrap();
        w.hold_snapshot(0, 0, 0, vec!["dump".into(), "lun_clone".into()])
            .unwrap();
        assert_eq!(w.owners(0, 0, 0), vec![OWNER_LUN_CLONE, "dump"]);
        w.hold_snapshot(0, 0, 0, Vec::new()).unwrap();
        assert_eq!(w.owners(0, 0, 0), vec![OWNER_LUN_CLONE]);
        let li = w.lun_index(0, "/vol/vol1/clone1").unwrap();
        w.delete_lun(0, li, true).unwrap();
        w.delete_snapshot(0, 0, 0).unwrap();
    }
    let mut w = world(2, &[]);
    w.create_snapshot(0, 0, "s", None).unwrap();
    let err = w
        .hold_snapshot(0, 0, 0, vec!["snapmirror".into(), "backup-tool".into()])
        .unwrap_err();
    assert_eq!(
        (err.code(), err.target()),
        (codes::INVALID, "owners".into())
    );
    assert!(w.owners(0, 0, 0).is_empty(), "nothing changes on an error");
}

#[test]
fn rotation_keeps_a_held_scheduled_snapshot_like_a_locked_one() {
    let mut w = world(2, &[]);
    w.advance_to(t("2026-03-01T00:10:00Z"));
    w.hold_snapshot(0, 0, 0, vec!["snapmirror".into()]).unwrap();
    w.advance_to(t("2026-03-01T03:10:00Z"));
    // Knob `skip`: the held oldest stays and is not counted; the unlocked ones rotate to 2.
    assert_eq!(
        names(&w),
        [
            "hourly.2026-03-01_0105",
            "hourly.2026-03-01_0305",
            "hourly.2026-03-01_0405"
        ]
    );
}

#[test]
fn existing_snapshots_keep_their_time_and_skip_the_reserved_rule() {
    let mut w = world(2, &[]);
    w.knobs.reserved_snapshot_prefixes = vec!["hourly".into()];
    let si = w
        .add_existing_snapshot(
            0,
            0,
            "hourly.2026-02-28_2305",
            None,
            Some("hourly".into()),
            t("2026-02-28T22:05:00Z"),
        )
        .unwrap();
    let s = &w.clusters[0].volumes[0].snapshots[si];
    assert_eq!(s.create_time, t("2026-02-28T22:05:00Z"));
    assert_eq!(s.schedule_prefix, None, "not one the schedule took");
    let later = w
        .add_existing_snapshot(0, 0, "future", None, None, t("2026-03-02T00:00:00Z"))
        .unwrap_err();
    assert_eq!(later.target(), "create_time");
    let dup = w
        .add_existing_snapshot(0, 0, "hourly.2026-02-28_2305", None, None, w.now())
        .unwrap_err();
    assert_eq!(dup.code(), 525_059);
}

#[test]
fn ordinal_naming_keeps_the_newest_at_zero_and_the_rest_by_create_time() {
    let mut w = world(3, &[]);
    w.clusters[0].volumes[0].naming = NamingScheme::Ordinal;
    w.advance_to(t("2026-03-01T05:00:00Z"));
    // Five fires, count 3: the three newest; the latest is `.0` (Berlin local names).
    let mut got = names(&w);
    got.sort();
    assert_eq!(
        got,
        [
            "hourly.0",
            "hourly.2026-03-01_0305",
            "hourly.2026-03-01_0405"
        ]
    );
    let v = &w.clusters[0].volumes[0];
    let newest = v.snapshots.iter().max_by_key(|s| s.create_time).unwrap();
    assert_eq!(newest.name, "hourly.0");
    assert_eq!(newest.create_time, t("2026-03-01T04:05:00Z"));
}

#[test]
fn a_locked_volume_locks_its_scheduled_snapshots_for_the_copys_retention_period() {
    let mut w = world(2, &[]);
    w.clusters[0].volumes[0].snapshot_locking = true;
    w.clusters[0].policies[0].copies[0].retention_period = Some(TimeDelta::hours(3));
    w.advance_to(t("2026-03-01T00:10:00Z"));
    let s = &w.clusters[0].volumes[0].snapshots[0];
    assert_eq!(s.snaplock_expiry, Some(t("2026-03-01T03:05:00Z")));
    assert!(w.snaplocked(0, 0, 0));
    assert!(matches!(
        w.delete_snapshot(0, 0, 0),
        Err(SimError::SnapshotLocked { .. })
    ));
    // Rotation keeps the locked ones and does not count them (count 2, LockedOldest::Skip):
    // at 02:05 UTC all three are locked. At 04:05 the 00:05 and 01:05 ones have expired: with
    // the new one they are three unlocked, so the oldest (named 01:05 Berlin time) goes.
    w.advance_to(t("2026-03-01T02:10:00Z"));
    assert_eq!(names(&w).len(), 3, "{:?}", names(&w));
    w.advance_to(t("2026-03-01T04:10:00Z"));
    assert!(
        !names(&w).contains(&"hourly.2026-03-01_0105".to_string()),
        "{:?}",
        names(&w)
    );
    assert!(!w.snaplocked(0, 0, 0), "the oldest left has expired");
    assert!(w.delete_snapshot(0, 0, 0).is_ok());
}

#[test]
fn the_snapshot_space_is_the_reserve_share_and_the_sum_of_the_sizes() {
    let mut w = world(3, &[]);
    w.clusters[0].volumes[0].snapshot_reserve_percent = 10;
    w.advance_to(t("2026-03-01T02:00:00Z"));
    let space = w.snapshot_space(0, 0);
    assert_eq!(space.reserve_size, (1u64 << 30) / 10);
    let sum: u64 = (0..w.clusters[0].volumes[0].snapshots.len())
        .map(|si| w.snapshot_size(0, 0, si))
        .sum();
    assert_eq!(space.used, sum);
    assert!(space.used > 0);
}

/// The simulator's uuids are what ONTAP gives: canonical lower-case v4 uuids (as the `uuid`
/// crate's own parser reads them), never the same twice.
#[test]
fn new_uuids_are_distinct_canonical_v4_uuids() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let u = World::new_uuid();
        let parsed = uuid::Uuid::parse_str(&u).unwrap();
        assert_eq!(parsed.get_version(), Some(uuid::Version::Random), "{u}");
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{u}");
        assert_eq!(parsed.hyphenated().to_string(), u);
        assert!(seen.insert(u));
    }
}
