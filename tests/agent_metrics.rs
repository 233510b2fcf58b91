//! The agent's Prometheus metrics after virtual-time scenarios: every family read back from the
//! text exposition and checked against values worked out by hand from the scenario.

mod agent_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use agent_support::{policy, sample, start, t, Harness, Setup};
use chrono::{DateTime, TimeDelta, Utc};
use snapwarden::agent::cycle::CycleResult;
use snapwarden::agent::hook::HookSpec;
use snapwarden::agent::HookOverride;

/// The lab policy (SnapRestore only) with window `nightly` on vol_a shaped by `window`.
fn base(window: &str, clone: &str) -> String {
    agent_support::lab_policy("\"snaprestore\"", clone, window, "")
}

/// The lab policy with a nightly window at 01:10 (20 minutes expected, 40 at most).
fn nightly() -> String {
    base(
        "start = \"10 1 * * *\"\nexpected = \"20m\"\nmax = \"40m\"",
        "auto",
    )
}

/// The agent on `text` from 00:50, every backup taking 20 minutes.
fn twenty_minute_backups(text: &str) -> Harness {
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(simulated(20));
    start(policy(text), setup)
}

fn simulated(minutes: i64) -> HookOverride {
    Arc::new(move |_c| {
        Some(HookSpec::Simulated {
            duration: TimeDelta::minutes(minutes),
            succeed: true,
        })
    })
}

fn metric(h: &Harness, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample(&h.metrics.render(), name, labels)
}

fn secs(s: &str) -> f64 {
    t(s).timestamp() as f64
}

fn ts(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

const VOL_A: [(&str, &str); 3] = [("cluster", "lab"), ("svm", "svm1"), ("volume", "vol_a")];
const VOL_B: [(&str, &str); 3] = [("cluster", "lab"), ("svm", "svm1"), ("volume", "vol_b")];

fn with<'a>(base: &[(&'a str, &'a str)], extra: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
    let mut v = base.to_vec();
    v.push(extra);
    v
}

#[tokio::test(start_paused = true)]
async fn a_lifecycle_shows_in_the_cycle_volume_schedule_request_and_config_families() {
    // 01:10 create, 20 minutes of backup, release at 01:30; the next hourly snapshot is 02:05.
    let text = nightly();
    let h = twenty_minute_backups(&text);
    h.run_until("2027-01-01T01:15:00Z").await;

    // Build and config: loaded at the start, no reload yet.
    let build = [
        ("version", env!("CARGO_PKG_VERSION")),
        (
            "revision",
            option_env!("SNAPWARDEN_REVISION").unwrap_or("unknown"),
        ),
    ];
    assert_eq!(metric(&h, "snapwarden_build_info", &build), Some(1.0));
    assert_eq!(
        metric(&h, "snapwarden_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &h,
            "snapwarden_config_last_reload_success_timestamp_seconds",
            &[]
        ),
        Some(secs("2027-01-01T00:50:00Z"))
    );
    for result in ["success", "failure"] {
        assert_eq!(
            metric(&h, "snapwarden_config_reloads_total", &[("result", result)]),
            Some(0.0)
        );
    }
    assert!(metric(&h, "snapwarden_config_hash", &[]).is_some());

    // The cycle is live: one live backing snapshot on vol_a, the window active.
    assert_eq!(
        metric(&h, "snapwarden_ontap_up", &[("cluster", "lab")]),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &h,
            "snapwarden_backing_snapshots",
            &with(&VOL_A, ("state", "live"))
        ),
        Some(1.0)
    );
    for state in ["releasing", "locked"] {
        assert_eq!(
            metric(
                &h,
                "snapwarden_backing_snapshots",
                &with(&VOL_A, ("state", state))
            ),
            Some(0.0)
        );
    }
    for state in ["live", "releasing", "locked"] {
        assert_eq!(
            metric(
                &h,
                "snapwarden_backing_snapshots",
                &with(&VOL_B, ("state", state))
            ),
            Some(0.0)
        );
    }
    assert_eq!(
        metric(&h, "snapwarden_window_active", &[("window", "nightly")]),
        Some(1.0)
    );
    // Created at 01:10; the last pass was within the observe interval (1 minute) before 01:15.
    let age = metric(&h, "snapwarden_backing_snapshot_oldest_age_seconds", &VOL_A).unwrap();
    assert!((240.0..=300.0).contains(&age), "{age}");
    assert_eq!(
        metric(&h, "snapwarden_backing_snapshot_oldest_age_seconds", &VOL_B),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &h,
            "snapwarden_next_scheduled_snapshot_timestamp_seconds",
            &with(&VOL_A, ("schedule", "hourly"))
        ),
        Some(secs("2027-01-01T02:05:00Z"))
    );
    for v in [VOL_A, VOL_B] {
        assert_eq!(
            metric(&h, "snapwarden_flexclone_recommended", &v),
            Some(0.0)
        );
    }

    h.run_until("2027-01-01T01:31:00Z").await;
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 1);
    assert_eq!(cycles[0].result, Some(CycleResult::Completed));
    let released = cycles[0].released_at.unwrap();
    assert_eq!(
        metric(
            &h,
            "snapwarden_cycles_total",
            &[("window", "nightly"), ("result", "completed")]
        ),
        Some(1.0)
    );
    for result in ["overrun", "failed", "skipped"] {
        assert_eq!(
            metric(
                &h,
                "snapwarden_cycles_total",
                &[("window", "nightly"), ("result", result)]
            ),
            Some(0.0)
        );
    }
    assert_eq!(
        metric(
            &h,
            "snapwarden_last_success_timestamp_seconds",
            &[("window", "nightly")]
        ),
        Some(ts(released))
    );
    // The margin from the release to the 02:05 scheduled snapshot.
    assert_eq!(
        metric(&h, "snapwarden_release_slack_seconds", &VOL_A),
        Some(ts(t("2027-01-01T02:05:00Z")) - ts(released))
    );
    assert_eq!(metric(&h, "snapwarden_release_slack_seconds", &VOL_B), None);
    assert_eq!(
        metric(&h, "snapwarden_window_active", &[("window", "nightly")]),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &h,
            "snapwarden_backing_snapshots",
            &with(&VOL_A, ("state", "live"))
        ),
        Some(0.0)
    );

    // ONTAP calls: one snapshot create, one SnapRestore clone per LUN, each timed once.
    let lab = [("cluster", "lab")];
    let call = |method: &'static str, code: &'static str| {
        let mut l = lab.to_vec();
        l.push(("method", method));
        l.push(("code", code));
        metric(&h, "snapwarden_ontap_requests_total", &l)
    };
    assert_eq!(call("create_snapshot", "ok"), Some(1.0));
    assert_eq!(call("clone_lun_snaprestore", "ok"), Some(2.0));
    assert!(call("snapshots", "ok").is_some_and(|n| n >= 2.0));
    assert_eq!(
        metric(
            &h,
            "snapwarden_ontap_request_duration_seconds_count",
            &[("cluster", "lab"), ("method", "create_snapshot")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &h,
            "snapwarden_ontap_request_duration_seconds_count",
            &[("cluster", "lab"), ("method", "clone_lun_snaprestore")]
        ),
        Some(2.0)
    );
    // Never a snapshot name in a label value.
    let text = h.metrics.render();
    assert!(!text.contains("snapwarden.nightly"), "{text}");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_captured_clone_counts_a_chain_conflict_and_a_locked_backing_snapshot() {
    // As in agent_virtual: the 02:05 scheduled snapshot captures the 01:40 clone; the backing
    // snapshot stays locked until hourly.…_0205 rotates out at 05:05.
    let text = base(
        "start = \"40 1 * * *\"\nexpected = \"30m\"\nmax = \"40m\"\non_conflict = \"run\"",
        "snaprestore",
    );
    let mut setup = Setup::at("2027-01-01T01:30:00Z");
    setup.hooks = Some(simulated(38));
    let h = start(policy(&text), setup);
    h.run_until("2027-01-01T02:20:00Z").await;
    for kind in ["chain_conflict", "locked"] {
        assert_eq!(
            metric(
                &h,
                "snapwarden_conflicts_total",
                &with(&VOL_A, ("kind", kind))
            ),
            Some(1.0),
            "{kind}"
        );
    }
    assert_eq!(
        metric(
            &h,
            "snapwarden_backing_snapshots",
            &with(&VOL_A, ("state", "locked"))
        ),
        Some(1.0)
    );
    let locked_code = snapwarden::ontap::SNAPSHOT_LOCKED.to_string();
    assert!(metric(
        &h,
        "snapwarden_ontap_requests_total",
        &[
            ("cluster", "lab"),
            ("method", "delete_snapshot"),
            ("code", &locked_code)
        ]
    )
    .is_some_and(|n| n >= 1.0));
    h.run_until("2027-01-01T05:08:00Z").await;
    assert_eq!(
        metric(
            &h,
            "snapwarden_backing_snapshots",
            &with(&VOL_A, ("state", "locked"))
        ),
        Some(0.0)
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_occurrence_that_does_not_fit_counts_as_skipped() {
    // 01:40 + 30m expected ends after 02:00 (02:05 minus the 5m guard): skipped.
    let text = base(
        "start = \"40 1 * * *\"\nexpected = \"30m\"\nmax = \"40m\"\non_conflict = \"skip\"",
        "auto",
    );
    let h = start(policy(&text), Setup::at("2027-01-01T01:30:00Z"));
    h.wait_for("the skipped occurrence", TimeDelta::hours(1), |h| {
        !h.cycles().is_empty()
    })
    .await;
    h.run_until("2027-01-01T01:45:00Z").await;
    assert_eq!(
        h.results(),
        vec![("nightly".into(), Some(CycleResult::Skipped))]
    );
    assert_eq!(
        metric(
            &h,
            "snapwarden_cycles_total",
            &[("window", "nightly"), ("result", "skipped")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &h,
            "snapwarden_conflicts_total",
            &with(&VOL_A, ("kind", "skipped"))
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &h,
            "snapwarden_last_success_timestamp_seconds",
            &[("window", "nightly")]
        ),
        None
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_cluster_down_is_ontap_up_zero_and_its_failed_calls_are_counted_as_transport() {
    let text = nightly();
    let mut setup = Setup::at("2027-01-01T00:00:00Z");
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    setup.down = Some(down.clone());
    let h = start(policy(&text), setup);
    h.wait_for("a failed call", TimeDelta::minutes(5), |h| {
        metric(
            h,
            "snapwarden_ontap_requests_total",
            &[
                ("cluster", "lab"),
                ("method", "cluster"),
                ("code", "transport"),
            ],
        )
        .is_some()
    })
    .await;
    h.wait_for("ontap_up 0", TimeDelta::minutes(5), |h| {
        metric(h, "snapwarden_ontap_up", &[("cluster", "lab")]) == Some(0.0)
    })
    .await;
    down.store(false, Ordering::SeqCst);
    h.wait_for("ontap_up 1", TimeDelta::minutes(10), |h| {
        metric(h, "snapwarden_ontap_up", &[("cluster", "lab")]) == Some(1.0)
    })
    .await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn look_alike_objects_count_as_orphans_ignored() {
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.prepare = Some(Box::new(|sim| {
        sim.with(|w| {
            let vi = w.volume_by_name(0, "vol_a").unwrap();
            // Two snapshots with snapwarden's prefix that this journal does not know.
            w.create_snapshot(0, vi, "snapwarden.nightly.20270101T011000Z-copy", None)
                .unwrap();
            w.create_snapshot(
                0,
                vi,
                "snapwarden.old.20261231T011000Z",
                Some("created-by=snapwarden cycle=not-in-this-journal window=old".into()),
            )
            .unwrap();
            // A user snapshot (not counted) and a LUN at a clone-like path.
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
    let text = base(
        "start = \"10 3 * * *\"\nexpected = \"20m\"\nmax = \"40m\"",
        "auto",
    );
    let h = start(policy(&text), setup);
    h.run_until("2027-01-01T01:30:00Z").await;
    // Counted once however many passes saw them (the warning is logged once a day).
    assert_eq!(
        metric(
            &h,
            "snapwarden_reconcile_orphans_total",
            &[("kind", "snapshot"), ("action", "ignored")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &h,
            "snapwarden_reconcile_orphans_total",
            &[("kind", "lun"), ("action", "ignored")]
        ),
        Some(1.0)
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_reload_mid_cycle_lets_the_cycle_finish_and_drops_the_series_of_the_volume_that_left() {
    let text = nightly();
    let h = twenty_minute_backups(&text);
    h.run_until("2027-01-01T01:15:00Z").await;
    assert_eq!(h.status().live_cycles.len(), 1);
    // The new policy drops vol_a; its window now runs on vol_b at 04:10.
    let reloaded = text
        .replace(
            "[[volume]]\ncluster = \"lab\"\nsvm = \"svm1\"\nname = \"vol_a\"\nluns = [\"/vol/vol_a/lun0\", \"/vol/vol_a/lun1\"]\nsnapshot_policy = \"p\"\nclone = \"auto\"\n",
            "",
        )
        .replace("lab/svm1/vol_a", "lab/svm1/vol_b")
        .replace("10 1 * * *", "10 4 * * *");
    assert!(!reloaded.contains("vol_a"), "{reloaded}");
    h.events
        .send(snapwarden::agent::Event::Reload {
            policy: Arc::new(policy(&reloaded)),
            applied: None,
        })
        .unwrap();
    h.wait_for("the reload in the metrics", TimeDelta::minutes(1), |h| {
        metric(
            h,
            "snapwarden_config_reloads_total",
            &[("result", "success")],
        ) == Some(1.0)
    })
    .await;
    // The cycle in flight finishes under the policy it started with: released at 01:30.
    h.run_until("2027-01-01T01:31:00Z").await;
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 1);
    assert_eq!(cycles[0].volume, "vol_a");
    assert_eq!(cycles[0].result, Some(CycleResult::Completed));
    assert_eq!(
        agent_support::leftovers(&h, "snapwarden"),
        Vec::<String>::new()
    );
    // vol_a's series are gone, but for the audit's: a volume with LUNs the policy no longer
    // covers. vol_b's next window runs at 04:10.
    let text = h.metrics.render();
    assert_eq!(policy_series_of(&text, "vol_a"), Vec::<&str>::new());
    let uncovered = [
        VOL_A.to_vec(),
        vec![("code", "volume_not_covered"), ("severity", "warning")],
    ]
    .concat();
    assert_eq!(sample(&text, "snapwarden_hazards", &uncovered), Some(1.0));
    h.run_until("2027-01-01T04:15:00Z").await;
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 2, "{cycles:?}");
    assert_eq!(cycles[1].volume, "vol_b");
    assert_eq!(
        metric(
            &h,
            "snapwarden_backing_snapshots",
            &with(&VOL_B, ("state", "live"))
        ),
        Some(1.0)
    );
    h.stop().await;
}

/// vol_a's per-volume series as (family, labels).
fn vol_a_series() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    let mut series: Vec<_> = ["live", "releasing", "locked"]
        .into_iter()
        .map(|s| ("snapwarden_backing_snapshots", with(&VOL_A, ("state", s))))
        .collect();
    for family in [
        "snapwarden_backing_snapshot_oldest_age_seconds",
        "snapwarden_guard_seconds",
        "snapwarden_release_slack_seconds",
    ] {
        series.push((family, VOL_A.to_vec()));
    }
    series.push((
        "snapwarden_next_scheduled_snapshot_timestamp_seconds",
        with(&VOL_A, ("schedule", "hourly")),
    ));
    series
}

/// The agent sets a volume's gauges only when their values change: a volume that leaves the
/// policy (its series removed) and comes back with the same values must get every series
/// again, not be skipped as unchanged.
#[tokio::test(start_paused = true)]
async fn a_volume_that_leaves_and_comes_back_by_reload_gets_every_series_again() {
    let text = nightly();
    let h = twenty_minute_backups(&text);
    h.run_until("2027-01-01T01:35:00Z").await;
    assert_eq!(h.cycles().len(), 1);
    let before: Vec<Option<f64>> = vol_a_series()
        .iter()
        .map(|(family, labels)| metric(&h, family, labels))
        .collect();
    // Hand-computed: nothing open, guard 5m, the next hourly snapshot at 02:05; the slack of
    // the release exists (its value is the one checked after the return).
    assert_eq!(
        before[..5],
        [Some(0.0), Some(0.0), Some(0.0), Some(0.0), Some(300.0)]
    );
    assert!(before[5].is_some());
    assert_eq!(before[6], Some(secs("2027-01-01T02:05:00Z")));
    let without = text
        .replace(
            "[[volume]]\ncluster = \"lab\"\nsvm = \"svm1\"\nname = \"vol_a\"\nluns = [\"/vol/vol_a/lun0\", \"/vol/vol_a/lun1\"]\nsnapshot_policy = \"p\"\nclone = \"auto\"\n",
            "",
        )
        .replace("lab/svm1/vol_a", "lab/svm1/vol_b");
    assert!(!without.contains("vol_a"), "{without}");
    for (n, next) in [(1.0, &without), (2.0, &text)] {
        h.events
            .send(snapwarden::agent::Event::Reload {
                policy: Arc::new(policy(next)),
                applied: None,
            })
            .unwrap();
        h.wait_for("the reload in the metrics", TimeDelta::minutes(1), |h| {
            metric(
                h,
                "snapwarden_config_reloads_total",
                &[("result", "success")],
            ) == Some(n)
        })
        .await;
        if n == 1.0 {
            h.wait_for("vol_a's series removed", TimeDelta::minutes(2), |h| {
                policy_series_of(&h.metrics.render(), "vol_a").is_empty()
            })
            .await;
        }
    }
    h.wait_for("vol_a's series back", TimeDelta::minutes(2), |h| {
        vol_a_series()
            .iter()
            .map(|(family, labels)| metric(h, family, labels))
            .collect::<Vec<_>>()
            == before
    })
    .await;
    h.stop().await;
}

/// The series naming `volume` but the audit's (which also names volumes outside the policy).
fn policy_series_of<'a>(text: &'a str, volume: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.contains(volume) && !l.starts_with("snapwarden_hazards{"))
        .collect()
}

/// The autodelete of vol_a on the simulated cluster: `commitment` with autodelete on.
fn set_autodelete(h: &Harness, commitment: &str) {
    h.sim.with(|w| {
        let v = w.clusters[0]
            .volumes
            .iter_mut()
            .find(|v| v.name == "vol_a")
            .expect("vol_a");
        v.autodelete.enabled = true;
        v.autodelete.commitment = commitment.to_string();
    });
}

#[tokio::test(start_paused = true)]
async fn a_hazard_planted_while_the_agent_runs_is_exported_within_one_audit_interval_and_goes_when_fixed(
) {
    let interval = TimeDelta::minutes(5);
    let text = nightly().replace(
        "observe_interval = \"1m\"",
        "observe_interval = \"1m\"\naudit_interval = \"5m\"",
    );
    let h = start(policy(&text), Setup::at("2027-01-01T00:50:00Z"));
    h.wait_for("the first audit", TimeDelta::minutes(1), |h| {
        h.status().hazards.is_some()
    })
    .await;
    let destroy = [
        ("cluster", "lab"),
        ("svm", "svm1"),
        ("volume", "vol_a"),
        ("code", "autodelete_destroy"),
        ("severity", "critical"),
    ];
    // Both volumes clone with SnapRestore only (no FlexClone license): docs/doctor.md's info.
    for vol in [VOL_A, VOL_B] {
        let labels = [
            vol.to_vec(),
            vec![("code", "snaprestore_clones"), ("severity", "info")],
        ]
        .concat();
        assert_eq!(metric(&h, "snapwarden_hazards", &labels), Some(1.0));
    }
    assert_eq!(metric(&h, "snapwarden_hazards", &destroy), None);
    let critical = [("severity", "critical")];
    assert_eq!(
        metric(&h, "snapwarden_hazard_findings", &critical),
        Some(0.0)
    );
    assert_eq!(metric(&h, "snapwarden_hazards_truncated", &[]), Some(0.0));

    // Planted mid-interval: seen by the next audit, at most one interval later (a few virtual
    // seconds of slack for the harness's one-second steps).
    h.run_until("2027-01-01T00:52:30Z").await;
    set_autodelete(&h, "destroy");
    let planted = h.now();
    h.wait_for(
        "autodelete_destroy in /metrics",
        interval + TimeDelta::seconds(5),
        |h| metric(h, "snapwarden_hazards", &destroy) == Some(1.0),
    )
    .await;
    assert!(h.now() - planted <= interval + TimeDelta::seconds(5));
    assert_eq!(
        metric(&h, "snapwarden_hazard_findings", &critical),
        Some(1.0)
    );
    let status = h.status().hazards.expect("audited");
    assert_eq!(status.critical, 1);
    assert!(status.audited_at >= planted);

    // The cluster cannot be read: its findings stay (the hazard is still there) and the agent
    // goes on.
    h.down.store(true, Ordering::SeqCst);
    let down_at = h.now();
    h.wait_for("an audit while the cluster is down", interval * 2, |h| {
        h.status()
            .hazards
            .is_some_and(|s| s.audited_at > down_at + TimeDelta::seconds(1))
    })
    .await;
    assert_eq!(metric(&h, "snapwarden_hazards", &destroy), Some(1.0));
    h.down.store(false, Ordering::SeqCst);

    // Fixed (`-commitment try`): the series goes at the next audit.
    set_autodelete(&h, "try");
    h.wait_for(
        "autodelete_destroy gone from /metrics",
        interval + TimeDelta::seconds(5),
        |h| metric(h, "snapwarden_hazards", &destroy).is_none(),
    )
    .await;
    assert_eq!(
        metric(&h, "snapwarden_hazard_findings", &critical),
        Some(0.0)
    );
    let (left, _, _) = h.stop().await;
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(start_paused = true)]
async fn the_audit_reads_the_volume_settings_once_per_interval_and_nothing_when_off() {
    let settings_calls = |h: &Harness| {
        metric(
            h,
            "snapwarden_ontap_requests_total",
            &[
                ("cluster", "lab"),
                ("method", "volume_settings"),
                ("code", "ok"),
            ],
        )
    };
    let text = nightly().replace(
        "observe_interval = \"1m\"",
        "observe_interval = \"1m\"\naudit_interval = \"5m\"",
    );
    let h = start(policy(&text), Setup::at("2027-01-01T00:50:00Z"));
    // Audits at 00:50, 00:55, …, 01:20: seven.
    h.run_until("2027-01-01T01:22:00Z").await;
    assert_eq!(settings_calls(&h), Some(7.0));
    h.stop().await;

    let text = nightly().replace(
        "observe_interval = \"1m\"",
        "observe_interval = \"1m\"\naudit_interval = \"0s\"",
    );
    let h = start(policy(&text), Setup::at("2027-01-01T00:50:00Z"));
    h.run_until("2027-01-01T01:22:00Z").await;
    assert_eq!(settings_calls(&h), None);
    assert!(h.status().hazards.is_none());
    assert_eq!(
        metric(&h, "snapwarden_audit_last_run_timestamp_seconds", &[]),
        Some(0.0)
    );
    h.stop().await;
}
