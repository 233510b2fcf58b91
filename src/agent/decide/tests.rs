//! The decisions, table by table: each test builds a view by hand — a policy from TOML, a
//! cluster as listed, the open and recent cycles — and compares the stage's actions, one line
//! each (their `Display`), with the expectation written out. No tokio, no simulator.

use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::agent::cycle::{CloneKind, CloneLun, ConflictKind, CycleResult, CycleState};
use crate::agent::discovery::Inventory;
use crate::agent::journal::ObjectKind;
use crate::agent::state::{InForce, Open, Retry};
use crate::domain::VolumeInfo;
use crate::ontap::{LicenseState, LunInfo, SnapshotInfo};
use crate::planner::Observed;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// One cluster `c` in UTC with hourly snapshots at :05 (6 kept); volumes `v1` (SnapRestore) and
/// `v2` (auto), one LUN each; window `w` daily at 01:10 for 20m (max 40m) on both. `extra` is
/// appended (more volumes, windows, sections).
fn policy(extra: &str) -> Policy {
    let text = format!(
        r#"
[agent]
guard = "5m"

[[cluster]]
name = "c"
endpoint = "simulator"
timezone = "UTC"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "p"
copies = [{{ schedule = "hourly", count = 6 }}]

[[volume]]
cluster = "c"
svm = "svm1"
name = "v1"
luns = ["/vol/v1/lun0"]
snapshot_policy = "p"
clone = "snaprestore"

[[volume]]
cluster = "c"
svm = "svm1"
name = "v2"
luns = ["/vol/v2/lun0"]
snapshot_policy = "p"

[[window]]
name = "w"
volumes = ["c/svm1/v1", "c/svm1/v2"]
start = "10 1 * * *"
timezone = "UTC"
expected = "20m"
max = "40m"
{extra}"#
    );
    crate::config::parse_str(&text, Path::new("decide.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// A hand-built view's inputs.
struct Fixture {
    policy: Policy,
    clusters: Vec<ClusterView>,
    memory: Memory,
    journal: JournalFacts,
    started_at: DateTime<Utc>,
    leading_since: Option<DateTime<Utc>>,
}

impl Fixture {
    /// `policy` with cluster `c` listed at `listed` (reachable): every policy volume and LUN of
    /// the cluster, no snapshots; the agent started a day before.
    fn new(policy: Policy, listed: &str) -> Fixture {
        let mut inv = Inventory::sample(Vec::new(), Vec::new(), t(listed));
        for v in &policy.volumes {
            inv.volumes.push(VolumeInfo {
                uuid: format!("uuid-{}", v.name),
                name: v.name.clone(),
                svm: v.svm.clone(),
                snapshot_policy: None,
            });
            for lun in &v.luns {
                inv.push_lun(lun_info(lun, &v.name, false));
            }
        }
        let clusters = vec![ClusterView {
            inventory: Some(inv),
            reachable: true,
            reached_once: true,
            ..ClusterView::default()
        }];
        Fixture {
            policy,
            clusters,
            memory: Memory::default(),
            journal: JournalFacts::default(),
            started_at: t(listed) - TimeDelta::days(1),
            leading_since: None,
        }
    }

    /// The listing, to change by hand (its per-volume index is built again on next use).
    fn listing(&mut self) -> &mut Inventory {
        let inv = self.clusters[0].inventory.as_mut().unwrap();
        inv
    }

    fn open(&mut self, cycle: Cycle, step: Step) {
        let open = Open {
            cycle,
            step,
            settle_after: None,
        };
        self.memory.open.insert(open.cycle.id.clone(), open);
    }
}

fn lun_info(path: &str, volume: &str, clone: bool) -> LunInfo {
    LunInfo {
        uuid: format!("uuid-{path}"),
        name: path.into(),
        svm: "svm1".into(),
        volume_name: volume.into(),
        mapped: false,
        created_as_clone: clone,
        size: None,
    }
}

fn snap(name: &str, volume: &str, at: &str, comment: Option<&str>) -> SnapshotInfo {
    SnapshotInfo {
        uuid: format!("uuid-{name}").into(),
        name: name.into(),
        volume_uuid: format!("uuid-{volume}").into(),
        volume_name: volume.into(),
        svm: "svm1".into(),
        comment: comment.map(Into::into),
        create_time: t(at).fixed_offset(),
        owners: Vec::new(),
        size: None,
        snapmirror_label: None,
        snaplock_expiry: None,
    }
}

/// A cycle of window `w` on `c/svm1/<volume>` created at `at` with one SnapRestore clone.
fn cycle(id: &str, volume: &str, at: &str, state: CycleState) -> Cycle {
    let name = format!("snapwarden.w.{}", t(at).format("%Y%m%dT%H%M%SZ"));
    Cycle {
        volume: volume.into(),
        backing_snapshot: name.clone(),
        clones: vec![CloneLun {
            source: format!("/vol/{volume}/lun0"),
            path: format!("/vol/{volume}/{name}.lun0"),
        }],
        state,
        created_at: Some(t(at)),
        clones_created_at: Some(t(at)),
        release_deadline: Some(t(at) + TimeDelta::minutes(50)),
        ..Cycle::sample(id, t(at))
    }
}

fn marker(id: &str) -> String {
    crate::agent::cycle::snapshot_comment(id, "w")
}

/// Decides `stage` at `now` and compares the actions, one per line, with `expect`.
#[track_caller]
fn check(stage: Stage, fx: &Fixture, now: &str, expect: &str) {
    let now = t(now);
    let observed = Observed {
        clusters: fx
            .clusters
            .iter()
            .zip(&fx.policy.clusters)
            .filter_map(|(cv, c)| cv.inventory.as_ref().map(|inv| inv.observed(&c.name)))
            .collect(),
    };
    let plan = (stage == Stage::Start).then(|| {
        let back = lookback(&fx.policy);
        crate::planner::plan(&fx.policy, &observed, now - back, back + LOOKAHEAD)
    });
    // The start stage decides alike knowing nothing started and passing over what was.
    let prefix = started_prefixes(fx, plan.as_ref(), now);
    let decided = |started_prefix: &[usize]| -> Vec<String> {
        let view = View {
            stage,
            policy: &fx.policy,
            clusters: &fx.clusters,
            memory: &fx.memory,
            plan: plan.as_ref(),
            started_prefix,
            missing: None,
            journal: &fx.journal,
            observed: &observed,
            started_at: fx.started_at,
            leading_since: fx.leading_since,
            replica: fx.leading_since.map(|_| "replica-b"),
        };
        decide(&view, now)
            .iter()
            .map(|a| a.to_string().trim_end().to_string())
            .collect()
    };
    let got = decided(&[]);
    assert_eq!(
        decided(&prefix),
        got,
        "with the started lifecycles passed over"
    );
    let want: Vec<&str> = expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(got, want, "\n--- got ---\n{}\n", got.join("\n"));
}

/// For each planned volume, how many of its first lifecycles, due by `now`, the fixture's
/// memory started.
fn started_prefixes(
    fx: &Fixture,
    plan: Option<&crate::planner::Plan>,
    now: DateTime<Utc>,
) -> Vec<usize> {
    plan.map_or_else(Vec::new, |p| {
        p.volumes
            .iter()
            .map(|vp| super::started_prefix(&fx.policy, &fx.memory, vp, 0, now))
            .collect()
    })
}

// The start stage.

#[test]
fn a_due_lifecycle_starts_with_its_volumes_clone_method_and_arms_the_next_create() {
    let fx = Fixture::new(policy(""), "2027-01-01T01:09:30Z");
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:10:00Z",
        "start w c/svm1/v1 2027-01-01T01:10Z at 2027-01-01T01:10Z snaprestore: release by 01:50 + guard 5m is before hourly at 02:05
         start w c/svm1/v2 2027-01-01T01:10Z at 2027-01-01T01:10Z snaprestore: release by 01:50 + guard 5m is before hourly at 02:05
         arm 2027-01-02T01:10Z",
    );
    // Licensed: `auto` clones with FlexClone, `snaprestore` stays.
    let mut fx = fx;
    fx.listing().flexclone = LicenseState::Compliant;
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:10:00Z",
        "start w c/svm1/v1 2027-01-01T01:10Z at 2027-01-01T01:10Z snaprestore: release by 01:50 + guard 5m is before hourly at 02:05
         start w c/svm1/v2 2027-01-01T01:10Z at 2027-01-01T01:10Z flexclone: release by 01:50 + guard 5m is before hourly at 02:05
         arm 2027-01-02T01:10Z",
    );
}

#[test]
fn nothing_due_arms_the_first_planned_create_and_a_started_occurrence_is_not_started_again() {
    let mut fx = Fixture::new(policy(""), "2027-01-01T01:00:00Z");
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:00:00Z",
        "arm 2027-01-01T01:10Z",
    );
    for v in ["v1", "v2"] {
        fx.memory.started.insert(Occurrence {
            window: "w".into(),
            volume: VolumeKey {
                cluster: "c".into(),
                svm: "svm1".into(),
                volume: v.into(),
            },
            start: t("2027-01-01T01:10:00Z"),
        });
    }
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:11:00Z",
        "arm 2027-01-02T01:10Z",
    );
}

/// The armed create against the plan itself: the first create to come whose occurrence was not
/// started (some are, as a shifted or a tool-driven start leaves them), over random sets of
/// started occurrences.
#[test]
fn the_armed_create_is_the_first_planned_one_not_started_whatever_was_started_early() {
    let extra = r#"
[[window]]
name = "h"
volumes = ["c/svm1/v1", "c/svm1/v2"]
start = "40 * * * *"
timezone = "UTC"
expected = "10m"
max = "15m"
"#;
    let mut fx = Fixture::new(policy(extra), "2027-01-01T01:00:00Z");
    let now = t("2027-01-01T03:20:00Z");
    let observed = Observed {
        clusters: vec![fx.clusters[0].inventory.as_ref().unwrap().observed("c")],
    };
    let back = lookback(&fx.policy);
    let plan = crate::planner::plan(&fx.policy, &observed, now - back, back + LOOKAHEAD);
    let occurrence = |vp: &crate::planner::VolumePlan, lc: &crate::planner::Lifecycle| {
        let v = &fx.policy.volumes[vp.volume];
        Occurrence {
            window: fx.policy.windows[lc.window].name.clone(),
            volume: VolumeKey {
                cluster: "c".into(),
                svm: v.svm.clone(),
                volume: v.name.clone(),
            },
            start: lc.window_start,
        }
    };
    let future: Vec<(Occurrence, DateTime<Utc>)> = plan
        .volumes
        .iter()
        .flat_map(|vp| vp.lifecycles.iter().map(move |lc| (vp, lc)))
        .filter(|(_, lc)| lc.create_at > now && lc.outcome != crate::planner::Outcome::Skipped)
        .map(|(vp, lc)| (occurrence(vp, lc), lc.create_at))
        .collect();
    assert!(future.len() > 40, "{} creates to come", future.len());
    let past: Vec<Occurrence> = plan
        .volumes
        .iter()
        .flat_map(|vp| vp.lifecycles.iter().map(move |lc| (vp, lc)))
        .filter(|(_, lc)| lc.create_at <= now)
        .map(|(vp, lc)| occurrence(vp, lc))
        .collect();
    assert!(past.len() > 4, "{} creates come", past.len());
    let mut seed: u64 = 7;
    let mut passed_over = 0;
    for round in 0..300 {
        fx.memory.started.clear();
        // Those due: mostly started already, now and then one still to start.
        for o in &past {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if (seed >> 33) % 100 < 85 {
                fx.memory.started.insert(o.clone());
            }
        }
        for (o, _) in &future {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Most rounds start the first few early; some start most of them.
            let odds = if round % 3 == 0 { 90 } else { 30 };
            if (seed >> 33) % 100 < odds {
                fx.memory.started.insert(o.clone());
            }
        }
        let want = future
            .iter()
            .filter(|(o, _)| !fx.memory.started.contains(o))
            .map(|(_, at)| *at)
            .min();
        let prefix = started_prefixes(&fx, Some(&plan), now);
        passed_over += prefix.iter().sum::<usize>();
        let decided = |started_prefix: &[usize]| {
            let view = View {
                stage: Stage::Start,
                policy: &fx.policy,
                clusters: &fx.clusters,
                memory: &fx.memory,
                plan: Some(&plan),
                started_prefix,
                missing: None,
                journal: &fx.journal,
                observed: &observed,
                started_at: fx.started_at,
                leading_since: None,
                replica: None,
            };
            decide(&view, now)
        };
        let actions = decided(&[]);
        // Passing over the lifecycles known started decides the same.
        let shown = |a: &[Action]| a.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(shown(&decided(&prefix)), shown(&actions), "round {round}");
        let armed: Vec<Option<DateTime<Utc>>> = actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Arm { at } => Some(at),
                _ => None,
            })
            .collect();
        assert_eq!(armed, vec![want], "round {round}");
    }
    assert!(passed_over > 300, "{passed_over} lifecycles passed over");
}

#[test]
fn a_recommendation_in_force_switches_a_licensed_snaprestore_volume_to_flexclone() {
    let mut fx = Fixture::new(
        policy("\n[flexclone]\nuse_when_licensed = true\n"),
        "2027-01-01T01:09:30Z",
    );
    fx.listing().flexclone = LicenseState::Compliant;
    fx.memory.recommended.insert(
        VolumeKey {
            cluster: "c".into(),
            svm: "svm1".into(),
            volume: "v1".into(),
        },
        InForce {
            since: t("2026-12-31T00:00:00Z"),
            evidence: "3 conflicts".into(),
            locked_bytes: None,
            licensed: Some(true),
            switched: false,
        },
    );
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:10:00Z",
        "start w c/svm1/v1 2027-01-01T01:10Z at 2027-01-01T01:10Z flexclone (switched): release by 01:50 + guard 5m is before hourly at 02:05
         start w c/svm1/v2 2027-01-01T01:10Z at 2027-01-01T01:10Z flexclone: release by 01:50 + guard 5m is before hourly at 02:05
         arm 2027-01-02T01:10Z",
    );
}

#[test]
fn every_reason_an_occurrence_does_not_run_is_recorded_with_the_reason() {
    // The planner skips (`on_conflict = "skip"`): 01:00 + 40m + guard holds hourly at 01:05.
    let skip = policy(
        r#"
[[window]]
name = "s"
volumes = ["c/svm1/v1"]
start = "0 1 * * *"
timezone = "UTC"
expected = "20m"
max = "40m"
on_conflict = "skip"
"#,
    );
    let fx = Fixture::new(skip, "2027-01-01T00:59:30Z");
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:00:00Z",
        "skip s c/svm1/v1 2027-01-01T01:00Z: skipped (on_conflict = skip): hourly at 01:05 falls inside 01:00–01:45 (max 40m + guard 5m)
         arm 2027-01-01T01:10Z",
    );

    // No fitting start within `shift_limit`: the occurrence is skipped with the planner's reason.
    let no_gap = policy(
        r#"
[[window]]
name = "long"
volumes = ["c/svm1/v1"]
start = "0 1 * * *"
timezone = "UTC"
expected = "50m"
max = "90m"
shift_limit = "10m"
"#,
    );
    let fx = Fixture::new(no_gap, "2027-01-01T00:59:30Z");
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:00:00Z",
        "skip long c/svm1/v1 2027-01-01T01:00Z: skipped: no start within 10m fits; hourly at 01:05 falls inside 01:00–02:35 (max 1h30m + guard 5m)
         arm 2027-01-01T01:10Z",
    );

    // A volume the cluster lacks is left out, and its occurrence recorded as not run.
    let mut fx = Fixture::new(policy(""), "2027-01-01T01:09:30Z");
    fx.listing().volumes.retain(|v| v.name != "v2");
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:10:00Z",
        "exclude c/svm1/v2 (missing): volume v2 (svm svm1) does not exist on cluster c
         skip w c/svm1/v2 2027-01-01T01:10Z: not run: volume v2 (svm svm1) does not exist on cluster c
         start w c/svm1/v1 2027-01-01T01:10Z at 2027-01-01T01:10Z snaprestore: release by 01:50 + guard 5m is before hourly at 02:05
         arm 2027-01-02T01:10Z",
    );

    // A LUN the volume lacks: the same.
    let mut fx = Fixture::new(policy(""), "2027-01-01T01:09:30Z");
    fx.listing()
        .edit(|_, l| l.retain(|l| l.volume_name != "v2"));
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:10:00Z",
        "exclude c/svm1/v2 (missing): LUN /vol/v2/lun0 does not exist on volume v2 (svm svm1) of cluster c
         skip w c/svm1/v2 2027-01-01T01:10Z: not run: LUN /vol/v2/lun0 does not exist on volume v2 (svm svm1) of cluster c
         start w c/svm1/v1 2027-01-01T01:10Z at 2027-01-01T01:10Z snaprestore: release by 01:50 + guard 5m is before hourly at 02:05
         arm 2027-01-02T01:10Z",
    );

    // The cluster unreachable: the occurrence waits while it still fits …
    let mut fx = Fixture::new(policy(""), "2027-01-01T01:09:30Z");
    fx.clusters[0].reachable = false;
    fx.clusters[0].last_error = Some("connection refused".into());
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:20:00Z",
        "arm 2027-01-02T01:10Z",
    );
    // … and is recorded as not run once `expected` no longer fits before `release_by`.
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:31:00Z",
        "skip w c/svm1/v1 2027-01-01T01:10Z: not run: cluster c was unreachable from the planned start until it was too late (connection refused)
         skip w c/svm1/v2 2027-01-01T01:10Z: not run: cluster c was unreachable from the planned start until it was too late (connection refused)
         arm 2027-01-02T01:10Z",
    );

    // The agent was not running at the planned start, and it is too late now …
    let mut fx = Fixture::new(policy(""), "2027-01-01T01:30:30Z");
    fx.started_at = t("2027-01-01T01:05:00Z");
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:31:00Z",
        "skip w c/svm1/v1 2027-01-01T01:10Z: not run: the agent was not running at the planned start 2027-01-01T01:10:00+00:00 and the window's expected 20m no longer fits before 2027-01-01T01:50:00+00:00
         skip w c/svm1/v2 2027-01-01T01:10Z: not run: the agent was not running at the planned start 2027-01-01T01:10:00+00:00 and the window's expected 20m no longer fits before 2027-01-01T01:50:00+00:00
         arm 2027-01-02T01:10Z",
    );
    // … but an occurrence planned before the agent started is not its to record: forgotten.
    fx.started_at = t("2027-01-01T01:30:00Z");
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:31:00Z",
        "forget w c/svm1/v1 2027-01-01T01:10Z (BeforeStart)
         forget w c/svm1/v2 2027-01-01T01:10Z (BeforeStart)
         arm 2027-01-02T01:10Z",
    );
    // A new leader never starts what the previous leader had planned before it led.
    let mut fx = Fixture::new(policy(""), "2027-01-01T01:12:00Z");
    fx.leading_since = Some(t("2027-01-01T01:11:00Z"));
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:12:00Z",
        "forget w c/svm1/v1 2027-01-01T01:10Z (PreviousLeader)
         forget w c/svm1/v2 2027-01-01T01:10Z (PreviousLeader)
         arm 2027-01-02T01:10Z",
    );
}

#[test]
fn a_volume_whose_schedules_cannot_be_resolved_is_left_out() {
    // `snapshot_policy = "ontap"` on a cluster whose listing names no policy for the volume.
    let mut fx = Fixture::new(
        policy(
            r#"
[[volume]]
cluster = "c"
svm = "svm1"
name = "v3"
luns = ["/vol/v3/lun0"]
snapshot_policy = "ontap"

[[window]]
name = "w3"
volumes = ["c/svm1/v3"]
start = "10 1 * * *"
timezone = "UTC"
expected = "20m"
max = "40m"
"#,
        ),
        "2027-01-01T01:00:00Z",
    );
    fx.listing().volumes.retain(|v| v.name != "v3");
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:00:00Z",
        "exclude c/svm1/v3 (missing): volume v3 (svm svm1) does not exist on cluster c
         arm 2027-01-01T01:10Z",
    );
}

#[test]
fn a_driver_window_starts_its_tool_once_for_all_its_volumes() {
    let fx = Fixture::new(
        policy(
            r#"
[[window]]
name = "h"
volumes = ["c/svm1/v1", "c/svm1/v2"]
start = "20 1 * * *"
timezone = "UTC"
expected = "20m"
max = "40m"
driver = "hook"
hook = { command = ["/bin/true"] }
"#,
        ),
        "2027-01-01T01:19:30Z",
    );
    check(
        Stage::Start,
        &fx,
        "2027-01-01T01:20:00Z",
        "start w c/svm1/v1 2027-01-01T01:10Z at 2027-01-01T01:10Z snaprestore: release by 01:50 + guard 5m is before hourly at 02:05
         start w c/svm1/v2 2027-01-01T01:10Z at 2027-01-01T01:10Z snaprestore: release by 01:50 + guard 5m is before hourly at 02:05
         start-tool h for c/svm1/v1, c/svm1/v2
         arm 2027-01-02T01:10Z",
    );
}

// The release stage.

#[test]
fn each_step_that_is_over_is_released_with_its_reason() {
    let mut fx = Fixture::new(policy(""), "2027-01-01T01:30:00Z");
    let at = "2027-01-01T01:10:00Z";
    fx.open(
        cycle("ended", "v1", at, CycleState::Releasing),
        Step::Release,
    );
    fx.open(
        cycle("held", "v1", at, CycleState::Backup),
        Step::Held {
            until: t("2027-01-01T01:30:00Z"),
        },
    );
    fx.open(
        cycle("holding", "v2", at, CycleState::Backup),
        Step::Held {
            until: t("2027-01-01T01:31:00Z"),
        },
    );
    fx.open(cycle("hook", "v2", at, CycleState::Backup), Step::Hook);
    let retry = |at: &str| Retry {
        at: t(at),
        attempt: 1,
    };
    fx.open(
        cycle("retry", "v1", at, CycleState::Releasing),
        Step::Retry(retry("2027-01-01T01:29:00Z")),
    );
    fx.open(
        cycle("waiting", "v1", at, CycleState::Releasing),
        Step::Retry(retry("2027-01-01T01:31:00Z")),
    );
    fx.open(
        cycle("unpinned", "v2", at, CycleState::Locked),
        Step::Locked {
            unpinned: true,
            retry: Some(retry("2027-01-01T02:00:00Z")),
        },
    );
    fx.open(
        cycle("pinned", "v2", at, CycleState::Locked),
        Step::Locked {
            unpinned: false,
            retry: None,
        },
    );
    let tool = Cycle {
        backing_snapshot: String::new(),
        ..cycle("tool", "v1", at, CycleState::Backup)
    };
    fx.open(tool, Step::ToolEnded);
    let mut gone = cycle("gone", "v9", at, CycleState::Releasing);
    gone.volume = "v9".into();
    fx.open(gone, Step::Release);
    let mut settling = cycle("settling", "v1", at, CycleState::Releasing);
    settling.id = "settling".into();
    fx.open(settling, Step::Release);
    fx.memory.open.get_mut("settling").unwrap().settle_after = Some(t("2027-01-01T01:40:00Z"));
    check(
        Stage::Release,
        &fx,
        "2027-01-01T01:30:00Z",
        "release ended (Ended, fresh listing)
         release held (HoldOver, fresh listing)
         release retry (RetryDue, fresh listing)
         release settling (Ended)
         release unpinned (Unpinned, fresh listing)
         warn [novolume:gone]: cluster c: volume v9 (svm svm1) of cycle gone is gone; its objects went with it",
    );
    // Nothing is released on a cluster that is not reachable now.
    fx.clusters[0].reachable = false;
    check(Stage::Release, &fx, "2027-01-01T01:30:00Z", "");
}

#[test]
fn the_newest_backing_snapshot_is_released_first_whatever_the_cycle_ids() {
    // Two cycles on one volume whose ids sort the other way round from their age, and one on
    // another volume made at the same time as the newer one.
    let mut fx = Fixture::new(policy(""), "2027-01-01T03:30:00Z");
    fx.open(
        cycle("a-newer", "v1", "2027-01-01T02:10:00Z", CycleState::Locked),
        Step::Locked {
            unpinned: true,
            retry: None,
        },
    );
    fx.open(
        cycle("b-older", "v1", "2027-01-01T01:10:00Z", CycleState::Locked),
        Step::Locked {
            unpinned: true,
            retry: None,
        },
    );
    fx.open(
        cycle(
            "0-other",
            "v2",
            "2027-01-01T02:10:00Z",
            CycleState::Releasing,
        ),
        Step::Release,
    );
    let expected = "release a-newer (Unpinned, fresh listing)
         release 0-other (Ended, fresh listing)
         release b-older (Unpinned, fresh listing)";
    check(Stage::Release, &fx, "2027-01-01T03:30:00Z", expected);
    // The same cycles under ids that sort the other way round: the same order.
    let renamed: Vec<_> = std::mem::take(&mut fx.memory.open).into_values().collect();
    for o in renamed {
        let mut c = o.cycle;
        c.id = match c.id.as_str() {
            "a-newer" => "z-newer",
            "b-older" => "a-older",
            _ => "m-other",
        }
        .into();
        fx.open(c, o.step);
    }
    check(
        Stage::Release,
        &fx,
        "2027-01-01T03:30:00Z",
        &expected
            .replace("a-newer", "z-newer")
            .replace("b-older", "a-older")
            .replace("0-other", "m-other"),
    );
}

// The observe stage.

#[test]
fn a_scheduled_snapshot_taken_while_a_clone_lived_is_a_chain_conflict_and_a_late_release_is_reported(
) {
    let mut fx = Fixture::new(policy(""), "2027-01-01T02:10:00Z");
    let c = cycle("c1", "v1", "2027-01-01T01:10:00Z", CycleState::Backup);
    let name = c.backing_snapshot.clone();
    fx.listing().edit(|s, _| {
        *s = vec![
            snap(&name, "v1", "2027-01-01T01:10:00Z", Some(&marker("c1"))),
            snap("hourly.2027-01-01_0205", "v1", "2027-01-01T02:05:00Z", None),
        ]
    });
    fx.listing()
        .push_lun(lun_info(&c.clones[0].path, "v1", true));
    fx.open(c, Step::Hook);
    check(
        Stage::Observe,
        &fx,
        "2027-01-01T02:10:00Z",
        "conflict chain_conflict c/svm1/v1 [chain:c1:hourly.2027-01-01_0205]: snapshot hourly.2027-01-01_0205 was taken at 2027-01-01T02:05:00+00:00 while the SnapRestore clone(s) of backing snapshot snapwarden.w.20270101T011000Z existed: it captured them and pins snapwarden.w.20270101T011000Z until it rotates out
         conflict late_release c/svm1/v1 [late:c1]: backing snapshot snapwarden.w.20270101T011000Z was not released by 2027-01-01T02:00:00+00:00 (the next scheduled snapshot at 2027-01-01T02:05:00+00:00 less the guard); state backup",
    );
    // What the journal is known to hold is not reported again, at any later pass.
    fx.memory
        .recorded
        .insert("chain:c1:hourly.2027-01-01_0205".into());
    check(
        Stage::Observe,
        &fx,
        "2027-01-01T02:20:00Z",
        "conflict late_release c/svm1/v1 [late:c1]: backing snapshot snapwarden.w.20270101T011000Z was not released by 2027-01-01T02:00:00+00:00 (the next scheduled snapshot at 2027-01-01T02:05:00+00:00 less the guard); state backup",
    );
    fx.memory.recorded.insert("late:c1".into());
    check(Stage::Observe, &fx, "2027-01-01T02:30:00Z", "");
}

/// An ended cycle is looked at in every listing until one taken after its clones went: that
/// one shows every snapshot that could have captured them, so once its conflicts are journaled
/// (the stage says which, the pass settles it) no listing is searched for it again.
#[test]
fn an_ended_cycle_is_looked_at_until_a_listing_taken_after_its_clones_went() {
    let released = Cycle {
        state: CycleState::Released,
        result: Some(CycleResult::Completed),
        clones_deleted_at: Some(t("2027-01-01T01:35:00Z")),
        released_at: Some(t("2027-01-01T01:40:00Z")),
        ..cycle("old", "v1", "2027-01-01T01:10:00Z", CycleState::Released)
    };
    let conflict = "conflict chain_conflict c/svm1/v1 [chain:old:hourly.2027-01-01_0120]: snapshot hourly.2027-01-01_0120 was taken at 2027-01-01T01:20:00+00:00 while the SnapRestore clone(s) of backing snapshot snapwarden.w.20270101T011000Z existed: it captured them and pins snapwarden.w.20270101T011000Z until it rotates out";
    for (listed, expect) in [
        // Taken while the clone lived: a later listing may show more.
        ("2027-01-01T01:30:00Z", conflict.to_string()),
        // Taken after: nothing can be added to what it shows.
        (
            "2027-01-01T01:50:00Z",
            format!("{conflict}\nconflicts-seen old (1 found)"),
        ),
    ] {
        let mut fx = Fixture::new(policy(""), listed);
        fx.memory.recent.push_back(released.clone());
        fx.listing().edit(|s, _| {
            *s = vec![snap(
                "hourly.2027-01-01_0120",
                "v1",
                "2027-01-01T01:20:00Z",
                None,
            )]
        });
        check(Stage::Observe, &fx, "2027-01-01T02:00:00Z", &expect);
        if listed == "2027-01-01T01:50:00Z" {
            // Settled for another end of its clones: still looked at.
            fx.memory.recent.settle("old", None);
            check(Stage::Observe, &fx, "2027-01-01T02:00:00Z", &expect);
            fx.memory.recent.settle("old", released.clones_deleted_at);
            check(Stage::Observe, &fx, "2027-01-01T02:00:00Z", "");
            assert!(fx.memory.recent.get("old").is_some(), "still recent");
        }
    }
}

#[test]
fn look_alikes_are_reported_never_touched_and_a_released_snapshot_listed_again_is_reopened() {
    let mut fx = Fixture::new(policy(""), "2027-01-01T03:00:00Z");
    let released = Cycle {
        state: CycleState::Released,
        result: Some(CycleResult::Completed),
        released_at: Some(t("2027-01-01T01:40:00Z")),
        ..cycle("old", "v1", "2027-01-01T01:10:00Z", CycleState::Released)
    };
    let old_name = released.backing_snapshot.clone();
    let old_clone = released.clones[0].path.clone();
    fx.memory.recent.push_back(released);
    fx.listing().edit(|s, _| {
        *s = vec![
            snap(
                &old_name,
                "v1",
                "2027-01-01T01:10:00Z",
                Some(&marker("old")),
            ),
            snap(
                "snapwarden.by-hand",
                "v1",
                "2027-01-01T00:00:00Z",
                Some("made by hand"),
            ),
            snap(
                "snapwarden.w.x",
                "v2",
                "2027-01-01T00:00:00Z",
                Some(&marker("stranger")),
            ),
            snap(
                "snapwarden.w.y",
                "v2",
                "2027-01-01T00:00:00Z",
                Some(&marker("journaled")),
            ),
        ]
    });
    fx.listing()
        .push_lun(lun_info("/vol/v2/snapwarden.w.z.lun0", "v2", true));
    // The released cycle's clone, in a listing read before it was deleted: the cycle in memory
    // explains it, so the journal is not asked and nothing is said.
    fx.listing().push_lun(lun_info(&old_clone, "v1", true));
    let key = |kind, volume: &str, name: &str| ObjectKey {
        cluster: "c".into(),
        svm: "svm1".into(),
        volume: volume.into(),
        kind,
        name: name.into(),
    };
    fx.journal
        .owners
        .insert(key(ObjectKind::Snapshot, "v2", "snapwarden.w.x"), None);
    fx.journal.owners.insert(
        key(ObjectKind::Snapshot, "v2", "snapwarden.w.y"),
        Some("journaled".into()),
    );
    fx.journal.owners.insert(
        key(ObjectKind::Lun, "v2", "/vol/v2/snapwarden.w.z.lun0"),
        None,
    );
    check(
        Stage::Observe,
        &fx,
        "2027-01-01T03:00:00Z",
        "warn [nomarker:c:uuid-snapwarden.by-hand] orphan=snapshot: cluster c: snapshot snapwarden.by-hand on volume v1 (svm svm1) has snapwarden's prefix but not its comment marker: not snapwarden's, never touched
         warn [nojournal:c:uuid-snapwarden.w.x] orphan=snapshot: cluster c: snapshot snapwarden.w.x on volume v2 (svm svm1) carries snapwarden's marker but this agent's journal has no record of it: never touched
         warn [lun:c:uuid-/vol/v2/snapwarden.w.z.lun0] orphan=lun: cluster c: LUN /vol/v2/snapwarden.w.z.lun0 (svm svm1) has a clone-like path but this agent's journal has no record of it: never touched
         reopen old (snapshot uuid-snapwarden.w.20270101T011000Z)",
    );
    // What the journal must be asked for those listings: the objects memory cannot explain.
    let owners = owner_lookups(&fx.policy, &fx.clusters, &fx.memory);
    let names: Vec<&str> = owners.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "snapwarden.w.x",
            "snapwarden.w.y",
            "/vol/v2/snapwarden.w.z.lun0"
        ]
    );
    assert_eq!(
        cycle_lookups(&fx.policy, &fx.clusters, &fx.memory),
        ["stranger", "journaled"]
    );
}

#[test]
fn a_locked_cycle_records_its_space_and_is_unpinned_once_a_fresh_listing_shows_no_pin() {
    let mut fx = Fixture::new(policy(""), "2027-01-01T09:00:00Z");
    let mut c = cycle("locked", "v1", "2027-01-01T01:10:00Z", CycleState::Locked);
    c.clones_deleted_at = Some(t("2027-01-01T02:30:00Z"));
    let mut s = snap(
        &c.backing_snapshot,
        "v1",
        "2027-01-01T01:10:00Z",
        Some(&marker("locked")),
    );
    s.size = Some(4096);
    fx.listing().edit(|list, _| {
        *list = vec![
            s,
            snap("hourly.2027-01-01_0205", "v1", "2027-01-01T02:05:00Z", None),
        ]
    });
    fx.open(
        c,
        Step::Locked {
            unpinned: false,
            retry: None,
        },
    );
    // The capturing snapshot still pins it (and is the chain conflict, recorded once).
    check(
        Stage::Observe,
        &fx,
        "2027-01-01T09:00:00Z",
        "locked-space locked 4096 bytes
         conflict chain_conflict c/svm1/v1 [chain:locked:hourly.2027-01-01_0205]: snapshot hourly.2027-01-01_0205 was taken at 2027-01-01T02:05:00+00:00 while the SnapRestore clone(s) of backing snapshot snapwarden.w.20270101T011000Z existed: it captured them and pins snapwarden.w.20270101T011000Z until it rotates out",
    );
    // It rotated out.
    fx.listing()
        .edit(|list, _| list.retain(|s| !s.name.starts_with("hourly")));
    check(
        Stage::Observe,
        &fx,
        "2027-01-01T09:00:00Z",
        "locked-space locked 4096 bytes
         unpinned locked",
    );
    // A listing from before the clones went cannot show every pin.
    fx.listing().at = t("2027-01-01T02:00:00Z");
    check(
        Stage::Observe,
        &fx,
        "2027-01-01T09:00:00Z",
        "locked-space locked 4096 bytes",
    );
}

#[test]
fn a_tools_snapshot_is_attributed_and_the_cycle_settles_when_the_tool_is_done() {
    let mut fx = Fixture::new(policy(""), "2027-01-01T01:30:00Z");
    let tool = Cycle {
        backing_snapshot: String::new(),
        clones: Vec::new(),
        created_at: None,
        clones_created_at: None,
        ..cycle("veeam1", "v1", "2027-01-01T01:10:00Z", CycleState::Backup)
    };
    fx.listing().edit(|s, _| {
        *s = vec![snap(
            "VeeamSourceSnapshot_1",
            "v1",
            "2027-01-01T01:10:05Z",
            Some("Veeam"),
        )]
    });
    fx.open(tool.clone(), Step::Tool);
    check(
        Stage::Observe,
        &fx,
        "2027-01-01T01:30:00Z",
        "update veeam1 backup snapshot=VeeamSourceSnapshot_1: the tool's backing snapshot (created 2027-01-01T01:10:05+00:00) is attributed to the cycle",
    );
    // The tool stopped and its snapshot is gone: released, completed.
    let mut ended = tool;
    ended.backing_snapshot = "VeeamSourceSnapshot_1".into();
    ended.clones_deleted_at = Some(t("2027-01-01T01:25:00Z"));
    fx.memory.open.clear();
    fx.open(ended.clone(), Step::ToolEnded);
    fx.listing().edit(|list, _| list.clear());
    check(
        Stage::Observe,
        &fx,
        "2027-01-01T01:30:00Z",
        "settle veeam1 released completed: ",
    );
    // Still there after the tool stopped: the tool could not delete it — locked, never deleted.
    fx.listing().edit(|list, _| {
        *list = vec![snap(
            "VeeamSourceSnapshot_1",
            "v1",
            "2027-01-01T01:10:05Z",
            Some("Veeam"),
        )]
    });
    check(
        Stage::Observe,
        &fx,
        "2027-01-01T01:30:00Z",
        "conflict locked c/svm1/v1 [locked:veeam1]: backing snapshot VeeamSourceSnapshot_1 is still there after the tool stopped at 2027-01-01T01:25:00+00:00 (the tool could not delete it; snapwarden never does); no snapshot pins it any more
         update veeam1 locked snapshot=VeeamSourceSnapshot_1: the tool could not delete its backing snapshot: locked",
    );
}

#[test]
fn a_foreign_backing_snapshot_is_reported() {
    let mut fx = Fixture::new(policy(""), "2027-01-01T01:30:00Z");
    fx.listing().edit(|list, _| {
        *list = vec![snap(
            "VeeamAUX_1",
            "v2",
            "2027-01-01T01:00:00Z",
            Some("Veeam"),
        )]
    });
    check(
        Stage::Observe,
        &fx,
        "2027-01-01T01:30:00Z",
        "conflict foreign c/svm1/v2 [foreign:c:svm1:v2:uuid-VeeamAUX_1]: foreign backing snapshot VeeamAUX_1 (created 2027-01-01T01:00:00+00:00) matches a configured pattern; reported, never touched",
    );
}

// The recover and adopt stages.

#[test]
fn cycles_a_previous_run_left_open_are_released_followed_or_settled() {
    let mut fx = Fixture::new(
        policy(
            r#"
[[veeam]]
name = "vbr"
url = "simulator"
username = "u"

[[window]]
name = "vw"
volumes = ["c/svm1/v2"]
start = "30 1 * * *"
timezone = "UTC"
expected = "20m"
max = "40m"
driver = "veeam"
veeam = { server = "vbr", job = "j" }
"#,
        ),
        "2027-01-01T01:35:00Z",
    );
    let at = "2027-01-01T01:10:00Z";
    fx.open(cycle("backup", "v1", at, CycleState::Backup), Step::Release);
    fx.open(cycle("locked", "v1", at, CycleState::Locked), Step::Release);
    let veeam = Cycle {
        window: "vw".into(),
        backing_snapshot: String::new(),
        ..cycle("veeam", "v2", "2027-01-01T01:30:00Z", CycleState::Backup)
    };
    fx.open(veeam, Step::ToolEnded);
    let hook_tool = Cycle {
        backing_snapshot: "VeeamSourceSnapshot_9".into(),
        ..cycle("tool", "v1", at, CycleState::Backup)
    };
    fx.open(hook_tool, Step::ToolEnded);
    check(
        Stage::Recover,
        &fx,
        "2027-01-01T01:35:00Z",
        "resume backup releasing Release: cycle backup of window w on c/svm1/v1 (backing snapshot snapwarden.w.20270101T011000Z, state backup) left open by the previous run: releasing it
         resume locked locked Locked { unpinned: false, retry: None }: 
         resume tool backup ToolEnded: driver cycle tool of window w on c/svm1/v1 left open by the previous run: its tool was not followed to the end
         follow-tool vw for c/svm1/v2",
    );
}

#[test]
fn a_new_leader_adopts_only_the_recent_cycles_it_does_not_know() {
    let mut fx = Fixture::new(policy(""), "2027-01-01T01:20:00Z");
    fx.leading_since = Some(t("2027-01-01T01:19:00Z"));
    let name = "snapwarden.w.20270101T011000Z";
    fx.listing().edit(|s, _| {
        *s = vec![
            snap(name, "v1", "2027-01-01T01:10:00Z", Some(&marker("orphan"))),
            snap(
                "snapwarden.w.20261201T011000Z",
                "v1",
                "2026-12-01T01:10:00Z",
                Some(&marker("ancient")),
            ),
            snap(
                "snapwarden.w.20270101T011001Z",
                "v2",
                "2027-01-01T01:10:00Z",
                Some(&marker("known")),
            ),
        ]
    });
    fx.listing()
        .push_lun(lun_info(&format!("/vol/v1/{name}.lun0"), "v1", true));
    fx.journal.known_cycles.insert("known".into());
    check(
        Stage::Adopt,
        &fx,
        "2027-01-01T01:20:00Z",
        "adopt orphan snapwarden.w.20270101T011000Z clones=1",
    );
}

// The recommend stage.

fn counting(kind: ConflictKind, at: &str, n: usize) -> ObservedConflict {
    ObservedConflict {
        kind,
        cluster: "c".into(),
        svm: "svm1".into(),
        volume: "v1".into(),
        window: Some("w".into()),
        cycle: None,
        at: t(at),
        detail: String::new(),
        key: format!("{}:{n}", kind.as_str()),
    }
}

#[test]
fn recurring_conflicts_raise_a_recommendation_that_is_refreshed_then_cleared() {
    let v1 = VolumeKey {
        cluster: "c".into(),
        svm: "svm1".into(),
        volume: "v1".into(),
    };
    let mut fx = Fixture::new(
        policy("\n[flexclone]\nrecommend_after = 3\nwithin = \"7d\"\n"),
        "2027-01-10T00:00:00Z",
    );
    let conflicts: Vec<ObservedConflict> = (1..=3)
        .map(|d| {
            counting(
                ConflictKind::LateRelease,
                &format!("2027-01-0{d}T02:00:00Z"),
                d,
            )
        })
        .collect();
    fx.journal.conflicts.insert(
        v1.clone(),
        VolumeConflicts {
            conflicts,
            ..VolumeConflicts::default()
        },
    );
    check(
        Stage::Recommend,
        &fx,
        "2027-01-04T00:00:00Z",
        "raise c/svm1/v1: 3 conflicts (late_release 3) since 2027-01-03T02:00:00+00:00, at least 3 within 7d; windows w; backing snapshots locked 0.00 h; space held by locked backing snapshots: not reported by ONTAP; flexclone is not licensed on the cluster: a FlexClone license would end these conflicts",
    );
    fx.memory.recommended.insert(
        v1.clone(),
        InForce {
            since: t("2027-01-03T02:00:00Z"),
            evidence: String::new(),
            locked_bytes: None,
            licensed: Some(false),
            switched: false,
        },
    );
    check(
        Stage::Recommend,
        &fx,
        "2027-01-04T00:00:00Z",
        "refresh c/svm1/v1: 3 conflicts (late_release 3) since 2027-01-03T02:00:00+00:00, at least 3 within 7d; windows w; backing snapshots locked 0.00 h; space held by locked backing snapshots: not reported by ONTAP; flexclone is not licensed on the cluster: a FlexClone license would end these conflicts",
    );
    // A week without a counting conflict clears it.
    check(
        Stage::Recommend,
        &fx,
        "2027-01-11T00:00:00Z",
        "clear c/svm1/v1",
    );
    // The candidates: new conflicts, and daily every volume in force.
    fx.memory.last_recommend_sweep = Some(t("2027-01-10T12:00:00Z"));
    let (volumes, swept) = candidates(&fx.memory, t("2027-01-11T00:00:00Z"));
    assert!(volumes.is_empty() && !swept);
    let (volumes, swept) = candidates(&fx.memory, t("2027-01-11T12:00:00Z"));
    assert_eq!(volumes.into_iter().collect::<Vec<_>>(), [v1]);
    assert!(swept);
}

#[test]
fn a_retry_after_a_failed_attempt_waits_for_its_instant() {
    let mut fx = Fixture::new(policy(""), "2027-01-01T01:30:00Z");
    fx.open(
        Cycle {
            clone_kind: CloneKind::FlexClone,
            ..cycle("r", "v1", "2027-01-01T01:10:00Z", CycleState::Releasing)
        },
        Step::Retry(Retry {
            at: t("2027-01-01T01:30:05Z"),
            attempt: 0,
        }),
    );
    check(Stage::Release, &fx, "2027-01-01T01:30:00Z", "");
    check(
        Stage::Release,
        &fx,
        "2027-01-01T01:30:05Z",
        "release r (RetryDue, fresh listing)",
    );
}

/// A volume's evidence is its conflicts that the rule counts as evidence, each asked alone:
/// random runs of conflicts naming SnapRestore cycles, FlexClone cycles, cycles the journal
/// does not hold and none, in runs of the same cycle and interleaved.
#[test]
fn the_evidence_is_each_conflict_the_rule_counts_in_order() {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let ids = ["restore-a", "flex-b", "restore-c", "flex-d", "unknown-e"];
    let mut cycles = crate::agent::recommend::CycleEnds::default();
    for id in &ids[..4] {
        let end = crate::agent::recommend::CycleEnd {
            flexclone: id.starts_with("flex"),
            released_at: None,
        };
        cycles.insert(id.to_string(), end);
    }
    let (mut taken, mut left) = (0, 0);
    for round in 0..200 {
        let mut conflicts = Vec::new();
        let mut cycle = None;
        for n in 0..next(40) as usize {
            // Mostly the previous conflict's cycle again.
            if next(3) == 0 {
                cycle = (next(6) < 5).then(|| ids[next(5) as usize].to_string());
            }
            let at = format!("2027-01-01T00:{:02}:00Z", n % 60);
            conflicts.push(ObservedConflict {
                cycle: cycle.clone(),
                ..counting(ConflictKind::Locked, &at, n)
            });
        }
        let found = VolumeConflicts {
            conflicts,
            cycles: cycles.clone(),
            ..VolumeConflicts::default()
        };
        let expect: Vec<&ObservedConflict> = found
            .conflicts
            .iter()
            .filter(|c| crate::agent::recommend::is_evidence(c, &found.cycles))
            .collect();
        let evidence: Vec<&ObservedConflict> = found.evidence().collect();
        assert_eq!(evidence, expect, "round {round}");
        // A clone of the walk half-way gives the rest the same.
        let mut walk = found.evidence();
        let half = expect.len() / 2;
        walk.by_ref().take(half).for_each(drop);
        assert_eq!(
            walk.clone().collect::<Vec<_>>(),
            expect[half..],
            "round {round}"
        );
        taken += expect.len();
        left += found.conflicts.len() - expect.len();
    }
    assert!(taken > 500 && left > 500, "{taken} evidence, {left} not");
}
