//! The world's indices and running counts against a scan of its plain data, after every kind of
//! change: the scan (what the operations computed before the indices existed) is the oracle.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::TimeDelta;
use proptest::prelude::*;

use super::*;
use crate::timeline::{CronSpec, Recurrence};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// One cluster (Berlin) with both clone licenses, svm1, igroup `g`, a schedule at :05, :25 and
/// :45 kept 3 deep (policy `p`), and volumes vol0 and vol1 with one LUN each.
fn world() -> World {
    let mut w = World::new(t("2026-03-01T00:00:00Z"), Knobs::default());
    let ci = w.add_cluster("c1", "9.14.1", chrono_tz::Europe::Berlin);
    w.add_license(ci, "snaprestore");
    w.add_license(ci, "flexclone");
    w.add_svm(ci, "svm1").unwrap();
    w.create_igroup(ci, "svm1", "g", "vmware", "iscsi", Vec::new())
        .unwrap();
    let every20 = Recurrence::Cron(CronSpec::parse("5,25,45 * * * *").unwrap());
    w.add_schedule(ci, "every20", every20).unwrap();
    let copy = PolicyCopy {
        schedule: "every20".into(),
        count: 3,
        prefix: None,
        snapmirror_label: None,
        retention_period: None,
    };
    w.add_policy(ci, "p", "", vec![copy]).unwrap();
    w.add_builtins(ci);
    for v in ["vol0", "vol1"] {
        w.create_volume(ci, "svm1", v, 1 << 30, "p").unwrap();
        w.create_lun(ci, &format!("/vol/{v}/lun"), 1 << 20, "vmware")
            .unwrap();
    }
    w
}

/// Checks every index and count of the world against a scan.
fn check(w: &World) {
    let mut pinned: HashMap<String, usize> = HashMap::new();
    let mut due = BTreeSet::new();
    for (ci, c) in w.clusters.iter().enumerate() {
        check_volumes(w, ci);
        check_luns(c);
        for (vi, v) in c.volumes.iter().enumerate() {
            for (k, at) in v.next_fires.iter().enumerate() {
                if let Some(at) = at {
                    due.insert((*at, ci, vi, k));
                }
            }
            let captured = |lun: &str| {
                v.snapshots
                    .iter()
                    .filter(|s| s.captures.iter().any(|l| l == lun))
                    .count()
            };
            for r in &v.restore_clones {
                assert_eq!(r.captured_by, captured(&r.lun_uuid), "{}", r.lun_uuid);
                assert!(r.alive || r.captured_by > 0, "a forgotten clone is kept");
                assert_eq!(r.alive, c.lun_by_uuid(&r.lun_uuid).is_some());
                if r.captured_by > 0 {
                    *pinned.entry(r.backing_snapshot_uuid.clone()).or_default() += 1;
                }
            }
            let all = w.pins(ci, None);
            for si in 0..v.snapshots.len() {
                let want = owners_by_scan(w, ci, vi, si);
                assert_eq!(w.owners(ci, vi, si), want);
                assert_eq!(w.owners_with(&all, (ci, vi, si)), want);
            }
        }
        assert!(c.block_sharing.values().all(|b| !b.is_empty()));
    }
    assert_eq!(w.due, due);
    assert_eq!(w.pinned_backings, pinned);
}

fn check_volumes(w: &World, ci: usize) {
    let c = &w.clusters[ci];
    for (vi, v) in c.volumes.iter().enumerate() {
        assert_eq!(w.volume_index(ci, &v.uuid).ok(), Some(vi));
        assert_eq!(w.volume_by_name(ci, &v.name).ok(), Some(vi));
        let named: Vec<usize> = (0..c.volumes.len())
            .filter(|&i| c.volumes[i].name.to_lowercase() == v.name.to_lowercase())
            .collect();
        assert_eq!(c.volumes_named(&v.name.to_uppercase()), named.as_slice());
        let mut children: Vec<&str> = c
            .volumes
            .iter()
            .filter_map(|x| x.clone_parent.as_ref())
            .filter(|p| p.volume_uuid == v.uuid)
            .map(|p| p.snapshot_uuid.as_str())
            .collect();
        let mut indexed: Vec<&str> = c
            .clone_children_of(&v.uuid)
            .iter()
            .map(String::as_str)
            .collect();
        children.sort_unstable();
        indexed.sort_unstable();
        assert_eq!(indexed, children, "{}", v.name);
        let luns: u64 = c
            .luns
            .iter()
            .filter(|l| l.volume_uuid == v.uuid && !l.created_as_clone)
            .map(|l| l.size)
            .sum();
        assert_eq!(w.volume_lun_bytes(ci, vi), luns);
    }
    assert_eq!(c.volume_uuids.len(), c.volumes.len());
    assert_eq!(
        c.volume_names.values().map(Vec::len).sum::<usize>(),
        c.volumes.len()
    );
    assert!(w.volume_index(ci, "absent").is_err());
    assert_eq!(
        c.clone_children.values().map(Vec::len).sum::<usize>(),
        c.volumes
            .iter()
            .filter(|v| v.clone_parent.is_some())
            .count()
    );
}

fn check_luns(c: &Cluster) {
    assert!(c.luns.windows(2).all(|p| p[0].seq < p[1].seq));
    for (li, l) in c.luns.iter().enumerate() {
        let named: Vec<usize> = (0..c.luns.len())
            .filter(|&i| c.luns[i].name.to_lowercase() == l.name.to_lowercase())
            .collect();
        assert_eq!(c.luns_named(&l.name.to_uppercase()), named);
        assert_eq!(c.lun_by_name(&l.name), Some(li));
        assert_eq!(c.lun_by_uuid(&l.uuid), Some(li));
        let of_volume: Vec<usize> = (0..c.luns.len())
            .filter(|&i| c.luns[i].volume_uuid == l.volume_uuid)
            .collect();
        assert_eq!(c.luns_of_volume(&l.volume_uuid), of_volume);
        let maps: Vec<(String, u32)> = c
            .lun_maps
            .iter()
            .filter(|m| m.lun_uuid == l.uuid)
            .map(|m| (m.igroup_uuid.clone(), m.logical_unit_number))
            .collect();
        assert_eq!(c.lun_maps_of(&l.uuid), maps.as_slice());
    }
    let indexed: usize = c.lun_names.values().map(Vec::len).sum();
    assert_eq!(indexed, c.luns.len());
    assert_eq!(c.lun_uuids.len(), c.luns.len());
    let by_volume: usize = c.volume_luns.values().map(Vec::len).sum();
    assert_eq!(by_volume, c.luns.len());
    assert_eq!(
        c.lun_maps_of.values().map(Vec::len).sum::<usize>(),
        c.lun_maps.len()
    );
    assert!(c.luns_named("/vol/vol0/absent").is_empty());
}

/// A snapshot's owners found by scanning every clone record, block sharing and volume of its
/// cluster (the rule `World::pins` keeps).
fn owners_by_scan(w: &World, ci: usize, vi: usize, si: usize) -> Vec<&str> {
    let c = &w.clusters[ci];
    let v = &c.volumes[vi];
    let s = &v.snapshots[si];
    let mut owners = Vec::new();
    let captured = |lun: &str| {
        v.snapshots
            .iter()
            .any(|x| x.captures.iter().any(|l| l == lun))
    };
    if v.restore_clones.iter().any(|r| {
        r.backing_snapshot_uuid == s.uuid
            && (r.alive || (!v.snapshot_clone_dependency && captured(&r.lun_uuid)))
    }) {
        owners.push(OWNER_LUN_CLONE);
    }
    let sharing: Vec<&BlockSharing> = c.block_sharing.values().flatten().collect();
    if sharing
        .iter()
        .any(|b| b.snapshot_uuid == s.uuid && w.now() < b.until)
    {
        owners.push(OWNER_FILE_CLONE);
    }
    if c.volumes.iter().any(|x| {
        x.clone_parent
            .as_ref()
            .is_some_and(|p| p.volume_uuid == v.uuid && p.snapshot_uuid == s.uuid)
    }) {
        owners.push(OWNER_VOLUME_CLONE);
    }
    for held in &s.held_by {
        if !owners.contains(&held.as_str()) {
            owners.push(held);
        }
    }
    owners
}

/// One change to the world; the numbers pick among what exists (modulo its count).
#[derive(Debug, Clone)]
enum Op {
    Snapshot(usize),
    SnapRestore(usize, usize),
    FlexClone(usize, usize),
    DeleteLun(usize),
    DeleteSnapshot(usize, usize),
    Advance(i64),
    CreateVolume,
    CloneVolume(usize, usize),
    SplitClone(usize),
    DeleteVolume(usize),
    Map(usize),
    Unmap(usize),
    Dependency(usize),
}

fn arb_op() -> impl Strategy<Value = Op> {
    let n = 0usize..64;
    prop_oneof![
        3 => n.clone().prop_map(Op::Snapshot),
        3 => (n.clone(), n.clone()).prop_map(|(v, s)| Op::SnapRestore(v, s)),
        1 => (n.clone(), n.clone()).prop_map(|(v, s)| Op::FlexClone(v, s)),
        3 => n.clone().prop_map(Op::DeleteLun),
        2 => (n.clone(), n.clone()).prop_map(|(v, s)| Op::DeleteSnapshot(v, s)),
        3 => (1i64..90).prop_map(Op::Advance),
        1 => Just(Op::CreateVolume),
        1 => (n.clone(), n.clone()).prop_map(|(v, s)| Op::CloneVolume(v, s)),
        1 => n.clone().prop_map(Op::SplitClone),
        1 => n.clone().prop_map(Op::DeleteVolume),
        1 => n.clone().prop_map(Op::Map),
        1 => n.clone().prop_map(Op::Unmap),
        1 => n.prop_map(Op::Dependency),
    ]
}

/// Applies `op`; a refusal (a locked snapshot, a volume with clones, …) is part of the run.
fn apply(w: &mut World, op: &Op, step: usize) {
    let volumes = w.clusters[0].volumes.len();
    let vol = |i: usize| i % volumes;
    let snapshot = |w: &World, vi: usize, i: usize| {
        let n = w.clusters[0].volumes[vi].snapshots.len();
        (n > 0).then(|| i % n)
    };
    match *op {
        Op::Snapshot(v) => {
            let _ = w.create_snapshot(0, vol(v), &format!("s{step}"), None);
        }
        Op::SnapRestore(v, s) | Op::FlexClone(v, s) => {
            let vi = vol(v);
            let Some(si) = snapshot(w, vi, s) else { return };
            let name = w.clusters[0].volumes[vi].name.clone();
            let snap = w.clusters[0].volumes[vi].snapshots[si].name.clone();
            let clone = format!("/vol/{name}/c{step}");
            let _ = if matches!(op, Op::SnapRestore(..)) {
                w.clone_lun_snaprestore(0, vi, &snap, "/lun", &clone)
            } else {
                let source = format!("/vol/{name}/.snapshot/{snap}/lun");
                w.clone_lun_flexclone(0, &source, &clone)
            };
        }
        Op::DeleteLun(l) => {
            let n = w.clusters[0].luns.len();
            if n > 0 {
                let _ = w.delete_lun(0, l % n, true);
            }
        }
        Op::DeleteSnapshot(v, s) => {
            let vi = vol(v);
            if let Some(si) = snapshot(w, vi, s) {
                let _ = w.delete_snapshot(0, vi, si);
            }
        }
        Op::Advance(minutes) => {
            let to = w.now() + TimeDelta::minutes(minutes);
            w.advance_to(to);
        }
        Op::CreateVolume => {
            let name = format!("v{step}");
            w.create_volume(0, "svm1", &name, 1 << 30, "p").unwrap();
            w.create_lun(0, &format!("/vol/{name}/lun"), 1 << 20, "vmware")
                .unwrap();
        }
        Op::CloneVolume(v, s) => {
            let vi = vol(v);
            let Some(si) = snapshot(w, vi, s) else { return };
            let parent = w.clusters[0].volumes[vi].name.clone();
            let snap = w.clusters[0].volumes[vi].snapshots[si].name.clone();
            let _ = w.clone_volume(0, "svm1", &format!("fc{step}"), &parent, Some(&snap));
        }
        Op::SplitClone(v) => {
            let _ = w.split_clone(0, vol(v));
        }
        Op::DeleteVolume(v) if volumes > 1 => {
            let _ = w.delete_volume(0, vol(v));
        }
        Op::DeleteVolume(_) => {}
        Op::Map(l) | Op::Unmap(l) => {
            let n = w.clusters[0].luns.len();
            if n == 0 {
                return;
            }
            let lun = w.clusters[0].luns[l % n].uuid.clone();
            let group = w.clusters[0].igroups[0].uuid.clone();
            let _ = if matches!(op, Op::Map(_)) {
                w.map_lun(0, &lun, &group).map(|_| ())
            } else {
                w.unmap_lun(0, &lun, &group)
            };
        }
        Op::Dependency(v) => {
            let vol = &mut w.clusters[0].volumes[vol(v)];
            vol.snapshot_clone_dependency = !vol.snapshot_clone_dependency;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    })]

    /// Whatever happens to the world, its indices, the clones' capture counts, the due
    /// schedule instants, the pinned backing snapshots and every snapshot's owners are what a
    /// scan of its plain data finds.
    #[test]
    fn the_indices_and_counts_match_a_scan(ops in proptest::collection::vec(arb_op(), 1..48)) {
        let mut w = world();
        check(&w);
        for (step, op) in ops.iter().enumerate() {
            apply(&mut w, op, step);
            check(&w);
        }
    }
}

/// A clone captured by two snapshots pins its backing snapshot until both are gone; its
/// record is forgotten only then (a hand-worked case of the counts the property checks).
#[test]
fn a_twice_captured_clone_pins_until_both_captures_are_gone() {
    let mut w = world();
    w.create_snapshot(0, 0, "backing", None).unwrap();
    let clone = w
        .clone_lun_snaprestore(0, 0, "backing", "/lun", "/clone")
        .unwrap();
    w.create_snapshot(0, 0, "cap1", None).unwrap();
    w.create_snapshot(0, 0, "cap2", None).unwrap();
    let backing = w.clusters[0].volumes[0].snapshots[0].uuid.clone();
    assert_eq!(
        w.pinned_backings().collect::<HashSet<_>>(),
        HashSet::from([backing.as_str()])
    );
    let li = w.lun_index(0, &clone).unwrap();
    w.delete_lun(0, li, false).unwrap();
    assert_eq!(w.clusters[0].volumes[0].restore_clones[0].captured_by, 2);
    w.delete_snapshot(0, 0, 1).unwrap();
    assert_eq!(w.pinned_backing_count(), 1);
    w.delete_snapshot(0, 0, 1).unwrap();
    assert_eq!(w.pinned_backing_count(), 0);
    assert!(w.clusters[0].volumes[0].restore_clones.is_empty());
    w.delete_snapshot(0, 0, 0).unwrap();
}
