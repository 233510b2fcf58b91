//! Unit tests of the REST layer's pure parts: the name index used by collection queries.

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
        let p = params(q);
        let records = candidates(&w, 0, &LUNS, &p);
        assert_eq!(records.len(), rendered, "{q:?}");
        // Same answer as filtering every rendered LUN (the scan is the oracle).
        assert_eq!(
            collection(records, &p, LUNS.path, LUNS.keys),
            collection(all.clone(), &p, LUNS.path, LUNS.keys),
            "{q:?}"
        );
    }
}
