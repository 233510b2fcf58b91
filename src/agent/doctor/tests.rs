//! The audit as a pure function over one cluster's listing: each case changes a clean estate
//! in one way and lists the findings it expects, one line each (`severity code volume
//! [snapshot]`), compared with every finding above info plus the info ones of the case's codes.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};

use super::*;
use crate::config;
use crate::ontap::{
    Autodelete, ClusterInfo, LicenseState, LunInfo, PolicyCopies, ScheduleInfo, SnapshotInfo,
    SnapshotPolicyInfo, VolumeInfo,
};
use crate::planner;
use crate::timeline::{CronSpec, Recurrence};

const NOW: &str = "2027-01-10T12:00:00Z";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn policy(extra_volume: &str) -> Policy {
    let text = format!(
        r#"
[[cluster]]
name = "c"
endpoint = "simulator"
timezone = "UTC"

[[volume]]
cluster = "c"
svm = "svm1"
name = "vol"
luns = ["/vol/vol/lun0"]
snapshot_policy = "ontap"
{extra_volume}

[[window]]
name = "w"
volumes = ["c/svm1/vol"]
start = "10 2 * * *"
timezone = "UTC"
expected = "20m"
max = "30m"
"#
    );
    config::parse_str(&text, Path::new("doctor-test.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn snapshot(name: &str, at: &str) -> SnapshotInfo {
    SnapshotInfo {
        uuid: format!("u-{name}").into(),
        name: name.into(),
        volume_uuid: "vu".into(),
        volume_name: "vol".into(),
        svm: "svm1".into(),
        comment: None,
        create_time: t(at).fixed_offset(),
        owners: Vec::new(),
        size: Some(1 << 20),
        snapmirror_label: None,
        snaplock_expiry: None,
    }
}

fn lun(name: &str, volume: &str, clone: bool) -> LunInfo {
    LunInfo {
        uuid: format!("l-{name}"),
        name: name.into(),
        svm: "svm1".into(),
        volume_name: volume.into(),
        mapped: false,
        created_as_clone: clone,
        size: Some(10 << 30),
    }
}

/// A clean cluster: volume `vol` with LUN lun0 on ONTAP's `default` policy (hourly × 6 at :05),
/// FlexClone and SnapRestore licensed, autodelete off, create-time names, reserve 5 GiB.
fn listing() -> ClusterListing {
    let mut inv = Inventory::sample(Vec::new(), vec![lun("/vol/vol/lun0", "vol", false)], t(NOW));
    inv.info = ClusterInfo {
        name: "c".into(),
        uuid: "cu".into(),
        version: "9.14.1".into(),
        timezone: "UTC".into(),
    };
    inv.flexclone = LicenseState::Compliant;
    inv.volumes = vec![VolumeInfo {
        uuid: "vu".into(),
        name: "vol".into(),
        svm: "svm1".into(),
        snapshot_policy: Some("default".into()),
    }];
    inv.snapshot_policies = vec![SnapshotPolicyInfo {
        name: "default".into(),
        copies: vec![PolicyCopies {
            schedule: "hourly".into(),
            count: 6,
            prefix: Some("hourly".into()),
        }],
    }];
    inv.schedules = vec![ScheduleInfo {
        name: "hourly".into(),
        recurrence: Recurrence::Cron(CronSpec::parse("5 * * * *").unwrap()),
    }];
    ClusterListing {
        name: "c".into(),
        inventory: inv,
        settings: vec![VolumeSettings {
            uuid: "vu".into(),
            name: "vol".into(),
            svm: "svm1".into(),
            autodelete: Autodelete {
                enabled: false,
                commitment: Some("try".into()),
                trigger: Some("volume".into()),
            },
            snapshot_locking: false,
            naming_scheme: Some("create_time".into()),
            reserve_percent: Some(5),
            reserve_size: Some(5 << 30),
            snapshot_used: Some(1 << 20),
        }],
    }
}

struct Case {
    name: &'static str,
    volume_extra: &'static str,
    change: fn(&mut ClusterListing),
    open: Option<&'static [[&'static str; 4]]>,
    expect: &'static [&'static str],
}

fn line(f: &Finding) -> String {
    let mut s = format!(
        "{} {} {}",
        f.severity.as_str(),
        f.code.as_str(),
        f.volume.as_deref().unwrap_or("-")
    );
    if let Some(snap) = &f.snapshot {
        s.push(' ');
        s.push_str(snap);
    }
    s
}

fn run(case: &Case) -> Vec<Finding> {
    let policy = policy(case.volume_extra);
    let mut l = listing();
    (case.change)(&mut l);
    let listings = vec![l];
    let observed = Observed {
        clusters: vec![listings[0].inventory.observed("c")],
    };
    let plan = planner::plan(&policy, &observed, t(NOW), TimeDelta::days(7));
    let open: Option<HashSet<[String; 4]>> = case
        .open
        .map(|o| o.iter().map(|k| k.map(str::to_string)).collect());
    audit(&Input {
        policy: &policy,
        clusters: &listings,
        observed: &observed,
        plan: &plan,
        open_backing: open.as_ref(),
        now: t(NOW),
        older_than: TimeDelta::hours(24),
    })
}

fn check(case: &Case) {
    let got: Vec<String> = run(case)
        .iter()
        .filter(|f| {
            f.severity > Severity::Info || case.expect.iter().any(|e| e.starts_with("info"))
        })
        .map(line)
        .collect();
    assert_eq!(got, case.expect, "case {}", case.name);
}

fn marked(name: &str, at: &str) -> SnapshotInfo {
    SnapshotInfo {
        comment: Some("created-by=snapwarden cycle=abc window=w".into()),
        ..snapshot(name, at)
    }
}

fn expiry(s: &str) -> Option<DateTime<FixedOffset>> {
    Some(t(s).fixed_offset())
}

const CASES: &[Case] = &[
    Case {
        name: "a clean estate has nothing above info",
        volume_extra: "",
        change: |_| {},
        open: None,
        expect: &[],
    },
    Case {
        name: "autodelete destroy is critical, disrupt a warning, try nothing",
        volume_extra: "",
        change: |l| {
            l.settings[0].autodelete.enabled = true;
            l.settings[0].autodelete.commitment = Some("destroy".into());
        },
        open: None,
        expect: &["critical autodelete_destroy vol"],
    },
    Case {
        name: "autodelete disrupt",
        volume_extra: "",
        change: |l| {
            l.settings[0].autodelete.enabled = true;
            l.settings[0].autodelete.commitment = Some("disrupt".into());
        },
        open: None,
        expect: &["warning autodelete_disrupt vol"],
    },
    Case {
        name: "autodelete destroy but disabled is nothing",
        volume_extra: "",
        change: |l| l.settings[0].autodelete.commitment = Some("destroy".into()),
        open: None,
        expect: &[],
    },
    Case {
        name: "snapshot locking with SnapRestore clones is a warning",
        volume_extra: "clone = \"snaprestore\"",
        change: |l| l.settings[0].snapshot_locking = true,
        open: None,
        expect: &["warning snapshot_locking vol"],
    },
    Case {
        name: "snapshot locking with FlexClone is only info",
        volume_extra: "clone = \"flexclone\"",
        change: |l| l.settings[0].snapshot_locking = true,
        open: None,
        expect: &["info snapshot_locking vol"],
    },
    Case {
        name: "ordinal naming",
        volume_extra: "",
        change: |l| l.settings[0].naming_scheme = Some("ordinal".into()),
        open: None,
        expect: &["warning ordinal_naming vol"],
    },
    Case {
        name: "FlexClone asked for, not installed",
        volume_extra: "clone = \"flexclone\"",
        change: |l| l.inventory.flexclone = LicenseState::Unlicensed,
        open: None,
        expect: &["critical license_missing vol"],
    },
    Case {
        name: "auto with neither license",
        volume_extra: "",
        change: |l| {
            l.inventory.flexclone = LicenseState::Unlicensed;
            l.inventory.snaprestore = LicenseState::Unlicensed;
        },
        open: None,
        expect: &["critical license_missing vol"],
    },
    Case {
        name: "auto without FlexClone clones with SnapRestore: info",
        volume_extra: "",
        change: |l| l.inventory.flexclone = LicenseState::Unlicensed,
        open: None,
        expect: &["info snaprestore_clones vol"],
    },
    Case {
        name: "a policy volume the cluster does not have is critical and nothing else",
        volume_extra: "",
        change: |l| {
            l.inventory.volumes.clear();
            l.settings[0].autodelete.enabled = true;
            l.settings[0].autodelete.commitment = Some("destroy".into());
        },
        open: None,
        expect: &["critical volume_missing vol"],
    },
    Case {
        name: "an old backing snapshot of snapwarden's without a journal is an orphan",
        volume_extra: "",
        change: |l| {
            l.inventory.push_snapshot(marked(
                "snapwarden.w.20270108T021000Z",
                "2027-01-08T02:10:00Z",
            ));
        },
        open: None,
        expect: &["warning orphan_backing_snapshot vol snapwarden.w.20270108T021000Z"],
    },
    Case {
        name: "one an open cycle holds is not",
        volume_extra: "",
        change: |l| {
            l.inventory.push_snapshot(marked(
                "snapwarden.w.20270108T021000Z",
                "2027-01-08T02:10:00Z",
            ));
        },
        open: Some(&[["c", "svm1", "vol", "snapwarden.w.20270108T021000Z"]]),
        expect: &[],
    },
    Case {
        name: "a young one is not, nor a look-alike without the marker",
        volume_extra: "",
        change: |l| {
            l.inventory.push_snapshot(marked(
                "snapwarden.w.20270110T021000Z",
                "2027-01-10T02:10:00Z",
            ));
            l.inventory.push_snapshot(snapshot(
                "snapwarden.w.20270101T021000Z",
                "2027-01-01T02:10:00Z",
            ));
        },
        open: None,
        expect: &[],
    },
    Case {
        name: "a tool's old backing snapshot is an orphan, with the volume's other clones",
        volume_extra: "",
        change: |l| {
            l.inventory
                .push_snapshot(snapshot("VeeamSourceSnapshot_1", "2027-01-05T00:00:00Z"));
            l.inventory
                .push_lun(lun("/vol/vol/veeam_clone", "vol", true));
        },
        open: None,
        expect: &["warning orphan_foreign_snapshot vol VeeamSourceSnapshot_1"],
    },
    Case {
        name: "a clone-locked backing snapshot pinned by later scheduled snapshots",
        volume_extra: "",
        change: |l| {
            let mut b = marked("snapwarden.w.20270110T100000Z", "2027-01-10T10:00:00Z");
            b.owners = vec!["lun_clone".into()];
            l.inventory.push_snapshot(b);
            l.inventory
                .push_snapshot(snapshot("hourly.2027-01-10_1105", "2027-01-10T11:05:00Z"));
        },
        open: Some(&[["c", "svm1", "vol", "snapwarden.w.20270110T100000Z"]]),
        expect: &["warning chain_lock vol snapwarden.w.20270110T100000Z"],
    },
    Case {
        name: "a chain lock whose pins are tamper-proof is critical",
        volume_extra: "",
        change: |l| {
            let mut b = marked("snapwarden.w.20270110T100000Z", "2027-01-10T10:00:00Z");
            b.owners = vec!["lun_clone".into()];
            l.inventory.push_snapshot(b);
            let mut pin = snapshot("hourly.2027-01-10_1105", "2027-01-10T11:05:00Z");
            pin.snaplock_expiry = expiry("2027-02-10T11:05:00Z");
            l.inventory.push_snapshot(pin);
        },
        open: Some(&[["c", "svm1", "vol", "snapwarden.w.20270110T100000Z"]]),
        expect: &["critical chain_lock vol snapwarden.w.20270110T100000Z"],
    },
    Case {
        name: "a live clone without pins is a backup at work: nothing",
        volume_extra: "",
        change: |l| {
            let mut b = marked("snapwarden.w.20270110T113000Z", "2027-01-10T11:30:00Z");
            b.owners = vec!["lun_clone".into()];
            l.inventory.push_snapshot(b);
        },
        open: None,
        expect: &[],
    },
    Case {
        name: "SnapMirror and dump owners",
        volume_extra: "",
        change: |l| {
            let mut s = snapshot("snapmirror.x", "2027-01-10T01:00:00Z");
            s.owners = vec!["snapmirror".into()];
            l.inventory.push_snapshot(s);
        },
        open: None,
        expect: &["warning busy_snapshot vol snapmirror.x"],
    },
    Case {
        name: "snapshots beyond the reserve",
        volume_extra: "",
        change: |l| {
            l.inventory
                .push_snapshot(snapshot("hourly.2027-01-10_1105", "2027-01-10T11:05:00Z"));
            l.settings[0].snapshot_used = Some(6 << 30);
        },
        open: None,
        expect: &["warning snapshot_reserve_exceeded vol"],
    },
    Case {
        name: "a volume with LUNs outside the policy; clones alone do not count",
        volume_extra: "",
        change: |l| {
            l.inventory.push_lun(lun("/vol/other/lun0", "other", false));
            l.inventory.push_lun(lun("/vol/third/clone", "third", true));
        },
        open: None,
        expect: &["warning volume_not_covered other"],
    },
];

#[test]
fn each_hazard_is_found_alone() {
    for case in CASES {
        check(case);
    }
}

#[test]
fn a_managed_volume_whose_ontap_policy_takes_its_prefix_is_double_scheduled() {
    let text = r#"
[[cluster]]
name = "c"
endpoint = "simulator"
timezone = "UTC"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "m"
copies = [{ schedule = "hourly", count = 6 }]

[[volume]]
cluster = "c"
svm = "svm1"
name = "vol"
luns = ["/vol/vol/lun0"]
snapshot_policy = "ontap"
managed_snapshots = "m"
"#;
    let policy = config::parse_str(text, Path::new("m.toml")).unwrap_or_else(|e| panic!("{e}"));
    let listings = vec![listing()];
    let observed = Observed {
        clusters: vec![listings[0].inventory.observed("c")],
    };
    let plan = planner::plan(&policy, &observed, t(NOW), TimeDelta::days(7));
    let found = audit(&Input {
        policy: &policy,
        clusters: &listings,
        observed: &observed,
        plan: &plan,
        open_backing: None,
        now: t(NOW),
        older_than: TimeDelta::hours(24),
    });
    let lines: Vec<String> = found
        .iter()
        .filter(|f| f.severity > Severity::Info)
        .map(line)
        .collect();
    assert_eq!(lines, ["warning double_schedule vol"]);
}

#[test]
fn a_chain_lock_names_its_pins_and_when_the_last_rotates_out() {
    let case = CASES
        .iter()
        .find(|c| c.name.starts_with("a clone-locked"))
        .unwrap();
    let found = run(case);
    let lock = found.iter().find(|f| f.code == Code::ChainLock).unwrap();
    // hourly × 6 at :05: the 11:05 pin rotates out at the sixth following instant, 17:05.
    assert!(
        lock.detail
            .contains("pinned by 1 scheduled snapshot(s) taken after it: hourly.2027-01-10_1105; the last rotates out at 2027-01-10T17:05:00+00:00"),
        "{}",
        lock.detail
    );
    assert_eq!(
        lock.fix.cli,
        ["volume snapshot delete -vserver svm1 -volume vol -snapshot hourly.2027-01-10_1105"]
    );
    assert_eq!(
        lock.fix.rest,
        ["DELETE /api/storage/volumes/vu/snapshots/u-hourly.2027-01-10_1105"]
    );
}

#[test]
fn an_orphan_names_its_clones_and_the_space_it_holds() {
    let case = Case {
        name: "orphan with clone",
        volume_extra: "",
        change: |l| {
            l.inventory.push_snapshot(marked(
                "snapwarden.w.20270108T021000Z",
                "2027-01-08T02:10:00Z",
            ));
            l.inventory.push_lun(lun(
                "/vol/vol/snapwarden.w.20270108T021000Z.lun0",
                "vol",
                true,
            ));
        },
        open: None,
        expect: &[],
    };
    let found = run(&case);
    let orphan = found
        .iter()
        .find(|f| f.code == Code::OrphanBackingSnapshot)
        .unwrap();
    assert_eq!(orphan.luns, ["/vol/vol/snapwarden.w.20270108T021000Z.lun0"]);
    assert_eq!(orphan.bytes, Some(1 << 20));
    assert_eq!(
        orphan.fix.cli,
        [
            "lun delete -vserver svm1 -path /vol/vol/snapwarden.w.20270108T021000Z.lun0",
            "volume snapshot delete -vserver svm1 -volume vol -snapshot snapwarden.w.20270108T021000Z"
        ]
    );
    let space = found
        .iter()
        .find(|f| f.code == Code::SnapshotSpace)
        .unwrap();
    assert!(space.detail.ends_with("hold 1.0 MiB"), "{}", space.detail);
}

#[test]
fn exit_codes_follow_the_worst_severity() {
    let f = |severity| Finding {
        severity,
        code: Code::SnapshotSpace,
        cluster: "c".into(),
        svm: None,
        volume: None,
        snapshot: None,
        luns: Vec::new(),
        bytes: None,
        detail: String::new(),
        impact: String::new(),
        fix: Fix::default(),
    };
    assert_eq!(exit_code(&[]), 0);
    assert_eq!(exit_code(&[f(Severity::Info)]), 0);
    assert_eq!(exit_code(&[f(Severity::Info), f(Severity::Warning)]), 1);
    assert_eq!(exit_code(&[f(Severity::Critical), f(Severity::Warning)]), 2);
}

#[test]
fn the_reserve_asked_for_holds_what_snapshots_use() {
    // 100 GiB volume at 5 %: 5 GiB reserve; 19.4 GiB used needs 20 %.
    assert_eq!(checks::reserve_percent_for(20_830_000_000, 5 << 30, 5), 20);
    assert_eq!(checks::reserve_percent_for(6 << 30, 5 << 30, 5), 6);
    assert_eq!(checks::reserve_percent_for(u64::MAX, 5 << 30, 5), 90);
}
