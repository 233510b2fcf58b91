//! Unit tests of the REST layer's pure parts: the indices collection queries use, and one
//! volume's snapshot listing.

use chrono::Utc;

use super::*;
use crate::sim::world::Knobs;

/// One cluster, one volume, `n` LUNs `/vol/vol1/lun<i>`.
fn world_with_luns(n: usize) -> World {
    let mut w = World::new(Utc::now(), Knobs::default());
    let ci = w.add_cluster("c1", "9.14.1", chrono_tz::UTC);
    w.add_builtins(ci);
    w.add_svm(ci, "svm1").unwrap();
    w.create_volume(ci, "svm1", "vol1", 1 << 40, "none")
        .unwrap();
    for i in 0..n {
        w.create_lun(ci, &format!("/vol/vol1/lun{i}"), 1 << 20, "vmware")
            .unwrap();
    }
    w
}

fn params(q: &[(&str, &str)]) -> Params {
    Params::new(
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Checks that `listing`'s query `q` renders `rendered` records and answers exactly what
/// filtering every rendered record (`all`, the oracle) answers.
fn check_rendered(
    w: &World,
    listing: &Listing,
    all: &[Value],
    q: &[(&str, &str)],
    rendered: usize,
) {
    let p = params(q);
    let records = candidates(w, 0, listing, &p);
    assert_eq!(records.len(), rendered, "{q:?}");
    assert_eq!(
        collection(records, &p, listing.path, listing.keys),
        collection(all.to_vec(), &p, listing.path, listing.keys),
        "{q:?}"
    );
}

/// Counts the records rendered for a query: a literal `name=` renders only the indexed LUN, not
/// all 1,000, and answers exactly what the full scan answers.
#[test]
fn a_lun_name_query_renders_one_record_not_every_lun() {
    let w = world_with_luns(1_000);
    let all: Vec<Value> = (0..1_000).map(|i| render_lun(&w, 0, i)).collect();
    let cases: [(&[(&str, &str)], usize); 6] = [
        (&[("name", "/vol/vol1/lun500")], 1),
        (&[("name", "/VOL/vol1/LUN500"), ("fields", "uuid")], 1),
        (&[("name", "/vol/vol1/absent")], 0),
        (&[("name", "/vol/vol1/lun5*")], 1_000),
        (&[("name", "/vol/vol1/lun1|/vol/vol1/lun2")], 1_000),
        (&[("os_type", "vmware")], 1_000),
    ];
    for (q, rendered) in cases {
        check_rendered(&w, &LUNS, &all, q, rendered);
    }
}

/// Ten volumes of 100 LUNs each, and snapshots on the first three (one of them backing a
/// SnapRestore clone that a later snapshot captured).
fn world_of_volumes() -> World {
    let mut w = World::new(Utc::now(), Knobs::default());
    let ci = w.add_cluster("c1", "9.14.1", chrono_tz::UTC);
    w.add_builtins(ci);
    w.add_license(ci, "snaprestore");
    w.add_svm(ci, "svm1").unwrap();
    for v in 0..10 {
        w.create_volume(ci, "svm1", &format!("vol{v}"), 1 << 40, "none")
            .unwrap();
        for i in 0..100 {
            w.create_lun(ci, &format!("/vol/vol{v}/lun{i}"), 1 << 20, "vmware")
                .unwrap();
        }
    }
    for vi in 0..3 {
        w.create_snapshot(ci, vi, "backing", None).unwrap();
        w.clone_lun_snaprestore(ci, vi, "backing", "/lun0", "/clone")
            .unwrap();
        w.create_snapshot(ci, vi, "captured", None).unwrap();
    }
    w
}

/// A literal `location.volume.uuid=` or `location.volume.name=` (with `svm.name=` or not)
/// renders that volume's 100 LUNs, not all 1,003, and answers what the full scan answers; a
/// literal volume `name=` renders that volume only.
#[test]
fn a_listing_of_one_volumes_luns_renders_only_that_volume() {
    let w = world_of_volumes();
    let uuid = w.clusters[0].volumes[3].uuid.clone();
    let upper = uuid.to_uppercase();
    let all: Vec<Value> = (0..w.clusters[0].luns.len())
        .map(|i| render_lun(&w, 0, i))
        .collect();
    let cases: [(&[(&str, &str)], usize); 8] = [
        (&[("location.volume.uuid", &uuid)], 100),
        (&[("location.volume.uuid", &upper), ("fields", "name")], 100),
        (
            &[("location.volume.name", "vol3"), ("svm.name", "svm1")],
            100,
        ),
        (
            &[("location.volume.name", "VOL3"), ("svm.name", "other")],
            100,
        ),
        (
            &[("location.volume.name", "vol3"), ("name", "/vol/vol3/lun7")],
            1,
        ),
        (&[("location.volume.name", "absent")], 0),
        (&[("location.volume.name", "vol3|vol4")], 1_003),
        (&[("location.volume.uuid", "!null")], 1_003),
    ];
    for (q, rendered) in cases {
        check_rendered(&w, &LUNS, &all, q, rendered);
    }
    let volumes: Vec<Value> = (0..10).map(|i| render_volume(&w, 0, i)).collect();
    for (q, rendered) in [("vol3", 1), ("VOL3", 1), ("vol*", 10), ("absent", 0)] {
        check_rendered(&w, &VOLUMES, &volumes, &[("name", q)], rendered);
    }
}

/// One volume's snapshot listing (its own pins and LUN bytes) answers exactly the records of
/// that volume in the listing of every volume's snapshots (the cluster's, gathered once).
#[test]
fn one_volumes_snapshot_listing_matches_the_listing_of_all() {
    let w = world_of_volumes();
    let all = super::snapshots::snapshot_records(&w, 0, "*").unwrap();
    assert_eq!(all.len(), 6);
    for v in &w.clusters[0].volumes {
        let one = super::snapshots::snapshot_records(&w, 0, &v.uuid).unwrap();
        let expected: Vec<Value> = all
            .iter()
            .filter(|r| r["volume"]["uuid"] == v.uuid.as_str())
            .cloned()
            .collect();
        assert_eq!(one, expected, "{}", v.name);
    }
    assert_eq!(all[0]["owners"], json!(["lun_clone"]));
    assert!(super::snapshots::snapshot_records(&w, 0, "absent").is_err());
}

/// A re-read of several volumes (`uuid=a|b|…`) renders only their records, LUNs and snapshots,
/// and answers exactly what filtering every record answers; a list with any other operator
/// falls back to every record.
#[test]
fn a_listing_of_several_volumes_renders_only_theirs() {
    let w = world_of_volumes();
    let uuid = |vi: usize| w.clusters[0].volumes[vi].uuid.clone();
    // Volumes 0 to 2 hold two snapshots each, one pinned by a clone, and 101 LUNs.
    let two = format!("{}|{}", uuid(0), uuid(2).to_uppercase());
    let with_absent = format!("{}|00000000-0000-0000-0000-000000000000", uuid(1));
    let with_wildcard = format!("{}|*", uuid(0));
    let luns: Vec<Value> = (0..w.clusters[0].luns.len())
        .map(|i| render_lun(&w, 0, i))
        .collect();
    for (list, rendered) in [
        (two.as_str(), 202),
        (with_absent.as_str(), 101),
        (with_wildcard.as_str(), luns.len()),
    ] {
        check_rendered(
            &w,
            &LUNS,
            &luns,
            &[("location.volume.uuid", list)],
            rendered,
        );
    }

    let all = super::snapshots::snapshot_records(&w, 0, "*").unwrap();
    let path = "/api/storage/volumes/*/snapshots";
    let keys = &["uuid", "name", "volume"];
    for (list, volumes) in [(two.as_str(), 2), (with_absent.as_str(), 1)] {
        let p = params(&[("volume.uuid", list)]);
        let picked = super::snapshots::listed_volumes(&w, 0, &p).unwrap();
        assert_eq!(picked.len(), volumes, "{list}");
        let records = super::snapshots::records_of(&w, 0, picked);
        assert_eq!(records.len(), 2 * volumes, "{list}");
        assert_eq!(
            collection(records, &p, path, keys),
            collection(all.clone(), &p, path, keys),
            "{list}"
        );
    }
    let p = params(&[("volume.uuid", &with_wildcard)]);
    assert!(super::snapshots::listed_volumes(&w, 0, &p).is_none());
}
