//! The managed stages' decisions, table by table: a volume that hands its hourly snapshots to
//! snapwarden, listed by hand, with or without a live clone; the actions one line each.

use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::agent::cycle::{CloneKind, CloneLun, CycleResult, CycleState};
use crate::agent::discovery::Inventory;
use crate::agent::managed::CopyKey;
use crate::agent::state::{CopyState, Open};
use crate::domain::{PolicyCopies, SnapshotPolicyInfo, VolumeInfo};
use crate::ontap::{LunInfo, SnapshotInfo};
use crate::planner::Observed;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Cluster `c` in UTC; volume `v` with one LUN whose ONTAP policy takes nothing and whose
/// hourly (:05) snapshots snapwarden takes (3 kept, label `hourly`, max_defer 1h); window `w`
/// daily at 01:00 for 2h (max 3h) on it.
fn policy() -> Policy {
    let text = r#"
[[cluster]]
name = "c"
endpoint = "simulator"
timezone = "UTC"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "none"
copies = []

[[snapshot_policy]]
name = "m"
max_defer = "1h"
copies = [{ schedule = "hourly", count = 3, snapmirror_label = "hourly" }]

[[volume]]
cluster = "c"
svm = "svm1"
name = "v"
luns = ["/vol/v/lun0"]
snapshot_policy = "none"
managed_snapshots = "m"
clone = "snaprestore"

[[window]]
name = "w"
volumes = ["c/svm1/v"]
start = "0 1 * * *"
timezone = "UTC"
expected = "2h"
max = "3h"
"#;
    crate::config::parse_str(text, Path::new("managed.toml")).unwrap_or_else(|e| panic!("{e}"))
}

struct Fixture {
    policy: Policy,
    clusters: Vec<ClusterView>,
    memory: Memory,
    journal: JournalFacts,
    started_at: DateTime<Utc>,
}

impl Fixture {
    /// The volume listed at `listed` with `hourly.*` snapshots at the given UTC instants.
    fn new(listed: &str, hourly: &[&str]) -> Fixture {
        let mut inv = Inventory::sample(Vec::new(), Vec::new(), t(listed));
        inv.volumes.push(VolumeInfo {
            uuid: "uuid-v".into(),
            name: "v".into(),
            svm: "svm1".into(),
            snapshot_policy: Some("none".into()),
        });
        inv.snapshot_policies.push(SnapshotPolicyInfo {
            name: "none".into(),
            copies: Vec::new(),
        });
        inv.push_lun(lun("/vol/v/lun0", false));
        for at in hourly {
            inv.push_snapshot(snap(&hourly_name(at), at, None));
        }
        Fixture {
            policy: policy(),
            clusters: vec![ClusterView {
                inventory: Some(inv),
                reachable: true,
                reached_once: true,
                ..ClusterView::default()
            }],
            memory: Memory::default(),
            journal: JournalFacts::default(),
            started_at: t(listed) - TimeDelta::days(1),
        }
    }

    /// The listing, to change by hand (its per-volume index is built again on next use).
    fn listing(&mut self) -> &mut Inventory {
        let inv = self.clusters[0].inventory.as_mut().unwrap();
        inv
    }

    fn state(&mut self) -> &mut CopyState {
        self.memory.managed.entry(key()).or_default()
    }

    /// An open snapwarden cycle on the volume whose SnapRestore clone exists (created at
    /// `from`, deleted at `until` if given).
    fn clone_alive(&mut self, from: &str, until: Option<&str>) {
        let name = "snapwarden.w.20270101T010000Z".to_string();
        let c = Cycle {
            volume: "v".into(),
            backing_snapshot: name.clone(),
            clones: vec![CloneLun {
                source: "/vol/v/lun0".into(),
                path: format!("/vol/v/{name}.lun0"),
            }],
            state: if until.is_some() {
                CycleState::Releasing
            } else {
                CycleState::Backup
            },
            clone_kind: CloneKind::SnapRestore,
            created_at: Some(t(from)),
            clones_created_at: Some(t(from)),
            clones_deleted_at: until.map(t),
            ..Cycle::sample("c1", t(from))
        };
        let open = Open {
            cycle: c,
            step: if until.is_some() {
                Step::Release
            } else {
                Step::Hook
            },
            settle_after: None,
        };
        self.memory.open.insert("c1".into(), open);
    }
}

fn key() -> CopyKey {
    CopyKey {
        volume: VolumeKey {
            cluster: "c".into(),
            svm: "svm1".into(),
            volume: "v".into(),
        },
        prefix: "hourly".into(),
    }
}

fn hourly_name(at: &str) -> String {
    format!("hourly.{}", t(at).format("%Y-%m-%d_%H%M"))
}

fn snap(name: &str, at: &str, comment: Option<&str>) -> SnapshotInfo {
    SnapshotInfo {
        uuid: format!("uuid-{name}").into(),
        name: name.into(),
        volume_uuid: "uuid-v".into(),
        volume_name: "v".into(),
        svm: "svm1".into(),
        comment: comment.map(Into::into),
        create_time: t(at).fixed_offset(),
        owners: Vec::new(),
        size: None,
        snapmirror_label: None,
        snaplock_expiry: None,
    }
}

fn lun(path: &str, clone: bool) -> LunInfo {
    LunInfo {
        uuid: format!("uuid-{path}"),
        name: path.into(),
        svm: "svm1".into(),
        volume_name: "v".into(),
        mapped: false,
        created_as_clone: clone,
        size: None,
    }
}

#[track_caller]
fn check(stage: Stage, fx: &Fixture, now: &str, expect: &str) {
    let observed = Observed {
        clusters: vec![fx.clusters[0].inventory.as_ref().unwrap().observed("c")],
    };
    let view = View {
        stage,
        policy: &fx.policy,
        clusters: &fx.clusters,
        memory: &fx.memory,
        plan: None,
        started_prefix: &[],
        missing: None,
        journal: &fx.journal,
        observed: &observed,
        started_at: fx.started_at,
        leading_since: None,
        replica: None,
    };
    let got: Vec<String> = decide(&view, t(now))
        .iter()
        .map(|a| a.to_string().trim_end().to_string())
        .collect();
    let want: Vec<&str> = expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(got, want, "\n--- got ---\n{}\n", got.join("\n"));
}

#[test]
fn an_instant_with_no_clone_alive_is_taken_at_once_and_the_series_kept_at_its_count() {
    let fx = Fixture::new(
        "2027-01-01T05:05:00Z",
        &[
            "2027-01-01T02:05:00Z",
            "2027-01-01T03:05:00Z",
            "2027-01-01T04:05:00Z",
        ],
    );
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T05:05:00Z",
        "take c/svm1/v hourly hourly.2027-01-01_0505 (due 2027-01-01T05:05Z, 1 instant(s), on_time) then delete hourly.2027-01-01_0205
         arm-managed 2027-01-01T06:05Z",
    );
    // Between instants nothing is due.
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T04:30:00Z",
        "arm-managed 2027-01-01T05:05Z",
    );
}

#[test]
fn a_live_clone_defers_the_snapshot_which_is_taken_once_for_every_instant_when_it_goes() {
    let mut fx = Fixture::new("2027-01-01T01:30:00Z", &["2027-01-01T00:05:00Z"]);
    // The 01:05 instant passes during the backup of 01:00: it waits until 01:05 + max_defer.
    fx.clone_alive("2027-01-01T01:00:00Z", None);
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T01:30:00Z",
        "defer c/svm1/v hourly (due 2027-01-01T01:05Z): the SnapRestore clone(s) of backing snapshot snapwarden.w.20270101T010000Z (cycle c1) exist
         arm-managed 2027-01-01T02:05Z",
    );
    // Deferred already: not again; at the deadline (01:05 + 1h) it is taken anyway, covering
    // 01:05 and 02:05 — and it will capture the clone.
    fx.state().waiting = Some((t("2027-01-01T01:05:00Z"), "clone".into()));
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T02:05:00Z",
        "take c/svm1/v hourly hourly.2027-01-01_0205 (due 2027-01-01T01:05Z, 2 instant(s), max_defer 1h)
         arm-managed 2027-01-01T03:05Z",
    );
    // Before the deadline it keeps waiting.
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T01:30:00Z",
        "arm-managed 2027-01-01T02:05Z",
    );
    // The clones went at 01:50: ten seconds later the snapshot is taken, covering 01:05.
    fx.clone_alive("2027-01-01T01:00:00Z", Some("2027-01-01T01:50:00Z"));
    // Still settling: woken again when it has (01:50:10).
    check(
        Stage::ManagedAfterRelease,
        &fx,
        "2027-01-01T01:50:05Z",
        "arm-managed 2027-01-01T01:50Z",
    );
    check(
        Stage::ManagedAfterRelease,
        &fx,
        "2027-01-01T01:50:10Z",
        "take c/svm1/v hourly hourly.2027-01-01_0150 (due 2027-01-01T01:05Z, 1 instant(s), deferred 45m10s)
         arm-managed 2027-01-01T02:05Z",
    );
}

#[test]
fn a_snapshot_just_taken_covers_its_instants_until_the_listing_shows_it() {
    let mut fx = Fixture::new("2027-01-01T05:00:00Z", &["2027-01-01T04:05:00Z"]);
    fx.state().last_taken = Some((t("2027-01-01T05:05:01Z"), "hourly.2027-01-01_0505".into()));
    check(
        Stage::ManagedAfterRelease,
        &fx,
        "2027-01-01T05:05:02Z",
        "arm-managed 2027-01-01T06:05Z",
    );
}

#[test]
fn a_copy_never_taken_gets_one_at_once_and_one_missed_while_the_agent_was_down_is_overdue() {
    let fx = Fixture::new("2027-01-01T05:20:00Z", &[]);
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T05:20:00Z",
        "take c/svm1/v hourly hourly.2027-01-01_0520 (due 2027-01-01T05:05Z, 1 instant(s), on_time)
         arm-managed 2027-01-01T06:05Z",
    );
    // The agent started at 05:10: 02:05 … 05:05 passed without a snapshot.
    let mut fx = Fixture::new("2027-01-01T05:20:00Z", &["2027-01-01T01:05:00Z"]);
    fx.started_at = t("2027-01-01T05:10:00Z");
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T05:20:00Z",
        "take c/svm1/v hourly hourly.2027-01-01_0520 (due 2027-01-01T02:05Z, 4 instant(s), overdue)
         arm-managed 2027-01-01T06:05Z",
    );
}

#[test]
fn rotation_deletes_only_the_exact_pattern_and_never_a_busy_snapshot() {
    let mut fx = Fixture::new(
        "2027-01-01T05:30:00Z",
        &[
            "2027-01-01T01:05:00Z",
            "2027-01-01T02:05:00Z",
            "2027-01-01T03:05:00Z",
            "2027-01-01T04:05:00Z",
            "2027-01-01T05:05:00Z",
        ],
    );
    // Look-alikes are not of the series, whatever their age.
    for name in [
        "hourly.2027-01-01_0105x",
        "hourly.backup",
        "hourly-long.2026-12-01_0105",
    ] {
        fx.listing()
            .push_snapshot(snap(name, "2026-12-01T00:00:00Z", None));
    }
    // Over its count by two: the oldest two go, oldest first.
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T05:30:00Z",
        "rotate c/svm1/v hourly: delete hourly.2027-01-01_0105, hourly.2027-01-01_0205
         arm-managed 2027-01-01T06:05Z",
    );
    // The oldest is busy (SnapMirror): it stays, and no newer one is deleted in its place.
    fx.listing()
        .edit(|s, _| s[0].owners = vec!["snapmirror".into()]);
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T05:30:00Z",
        "rotate c/svm1/v hourly: delete hourly.2027-01-01_0205
         arm-managed 2027-01-01T06:05Z",
    );
    // Only the first managed stage of a pass trims.
    check(
        Stage::ManagedAfterRelease,
        &fx,
        "2027-01-01T05:30:00Z",
        "arm-managed 2027-01-01T06:05Z",
    );
}

#[test]
fn a_lost_create_is_settled_by_a_later_listing() {
    let mut fx = Fixture::new("2027-01-01T05:06:00Z", &["2027-01-01T04:05:00Z"]);
    fx.state().pending = Some(("hourly.2027-01-01_0505".into(), t("2027-01-01T05:05:00Z")));
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T05:06:00Z",
        "settle c/svm1/v hourly hourly.2027-01-01_0505: never made
         arm-managed 2027-01-01T05:06Z",
    );
    fx.listing().push_snapshot(snap(
        "hourly.2027-01-01_0505",
        "2027-01-01T05:05:00Z",
        Some("created-by=snapwarden schedule=hourly"),
    ));
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T05:06:00Z",
        "settle c/svm1/v hourly hourly.2027-01-01_0505: made
         arm-managed 2027-01-01T05:06Z",
    );
    // A listing from before the create cannot say.
    fx.listing().at = t("2027-01-01T05:04:00Z");
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T05:06:00Z",
        "arm-managed 2027-01-01T06:05Z",
    );
}

#[test]
fn ontaps_own_policy_taking_a_managed_copy_leaves_the_volume_out() {
    let mut fx = Fixture::new("2027-01-01T05:05:00Z", &[]);
    fx.listing().volumes[0].snapshot_policy = Some("default".into());
    fx.listing().snapshot_policies.push(SnapshotPolicyInfo {
        name: "default".into(),
        copies: vec![PolicyCopies {
            schedule: "hourly".into(),
            count: 6,
            prefix: None,
        }],
    });
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T05:05:00Z",
        "arm-managed none",
    );
    let view_fx = &fx;
    let observed = Observed {
        clusters: vec![view_fx.clusters[0]
            .inventory
            .as_ref()
            .unwrap()
            .observed("c")],
    };
    let plan = crate::planner::plan(
        &fx.policy,
        &observed,
        t("2027-01-01T05:05:00Z"),
        TimeDelta::hours(26),
    );
    let view = View {
        stage: Stage::Start,
        policy: &fx.policy,
        clusters: &fx.clusters,
        memory: &fx.memory,
        plan: Some(&plan),
        started_prefix: &[],
        missing: None,
        journal: &fx.journal,
        observed: &observed,
        started_at: fx.started_at,
        leading_since: None,
        replica: None,
    };
    let excluded: Vec<String> = decide(&view, t("2027-01-01T05:05:00Z"))
        .iter()
        .filter(|a| matches!(a, Action::Exclude { .. }))
        .map(|a| a.to_string())
        .collect();
    assert_eq!(excluded.len(), 1, "{excluded:?}");
    assert!(
        excluded[0].starts_with("exclude c/svm1/v (double_schedule): double_schedule: ONTAP's snapshot policy \"default\" on volume v also takes the hourly snapshots"),
        "{excluded:?}"
    );
    assert!(
        excluded[0].contains("volume modify -vserver svm1 -volume v -snapshot-policy")
            && excluded[0].contains("PATCH /api/storage/volumes/uuid-v"),
        "{excluded:?}"
    );
}

#[test]
fn a_backup_tools_clone_and_flexclone_block_sharing_defer_too() {
    // A foreign backing snapshot with its clone on the volume.
    let mut fx = Fixture::new("2027-01-01T05:05:00Z", &["2027-01-01T04:05:00Z"]);
    let mut veeam = snap("VeeamSourceSnapshot_x", "2027-01-01T05:00:00Z", None);
    veeam.owners = vec!["lun_clone".into()];
    fx.listing().push_snapshot(veeam);
    fx.listing().push_lun(lun("/vol/v/lun0_clone", true));
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T05:05:00Z",
        "defer c/svm1/v hourly (due 2027-01-01T05:05Z): a backup tool's clone of backing snapshot VeeamSourceSnapshot_x is on the volume
         arm-managed 2027-01-01T06:05Z",
    );
    // Its clone gone (the snapshot still pinned by captures): no deferral.
    fx.listing().edit(|_, l| {
        l.pop();
    });
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T05:05:00Z",
        "take c/svm1/v hourly hourly.2027-01-01_0505 (due 2027-01-01T05:05Z, 1 instant(s), on_time)
         arm-managed 2027-01-01T06:05Z",
    );
    // A FlexClone LUN in block sharing with a snapshot.
    let mut fx = Fixture::new("2027-01-01T05:05:00Z", &["2027-01-01T04:05:00Z"]);
    fx.listing()
        .edit(|s, _| s[0].owners = vec!["file_clone".into()]);
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T05:05:00Z",
        "defer c/svm1/v hourly (due 2027-01-01T05:05Z): a FlexClone LUN shares blocks with snapshot hourly.2027-01-01_0405 (block sharing)
         arm-managed 2027-01-01T06:05Z",
    );
    // A released FlexClone cycle's LUN clones do not defer anything.
    let mut fx = Fixture::new("2027-01-01T05:05:00Z", &["2027-01-01T04:05:00Z"]);
    fx.clone_alive("2027-01-01T05:00:00Z", None);
    fx.memory.open.get_mut("c1").unwrap().cycle.clone_kind = CloneKind::FlexClone;
    fx.memory.open.get_mut("c1").unwrap().cycle.result = Some(CycleResult::Completed);
    check(
        Stage::Managed,
        &fx,
        "2027-01-01T05:05:00Z",
        "take c/svm1/v hourly hourly.2027-01-01_0505 (due 2027-01-01T05:05Z, 1 instant(s), on_time)
         arm-managed 2027-01-01T06:05Z",
    );
}
