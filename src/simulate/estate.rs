//! `simulate --from-cluster`: the simulated world built from a read-only discovery of the
//! policy's real clusters.
//!
//! [`discover`] reads each real cluster once with [`Depth::Full`] (GETs only: cluster, volumes,
//! snapshot policies, schedules, licenses, snapshots, LUNs) and [`add_to_world`] puts what it saw
//! into the simulator's world: the cluster's version and zone, its schedules and snapshot
//! policies, its `flexclone`/`snaprestore` licenses, and the policy's volumes as ONTAP has them
//! (their snapshot policy, their LUNs with sizes, their snapshots with create times and
//! comments). Nothing runs against the real cluster after the discovery: the simulation talks to
//! the in-process world only.
//!
//! Everything read is bounded (see the `MAX_*` constants): an estate beyond them is refused
//! with an error naming the cluster and volume, not simulated at an absurd cost.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::agent::discovery::{discover as read_cluster, Depth, Inventory};
use crate::config::{Endpoint, Policy};
use crate::ontap::{LicenseState, Ontap};
use crate::sim::world::{PolicyCopy, Snapshot, World};

/// Snapshots on one volume: ONTAP's own limit is 1023.
pub const MAX_SNAPSHOTS_PER_VOLUME: usize = 1023;
/// LUNs in one volume taken into the world.
pub const MAX_LUNS_PER_VOLUME: usize = 4096;
/// The largest LUN ONTAP makes (128 TiB on current releases).
pub const MAX_LUN_SIZE: u64 = 128 << 40;
/// Job schedules and snapshot policies of one cluster.
pub const MAX_SCHEDULES: usize = 4096;
pub const MAX_SNAPSHOT_POLICIES: usize = 4096;
/// Copies entries of one snapshot policy (ONTAP allows 5).
pub const MAX_POLICY_COPIES: usize = 16;
/// Size given to a LUN whose size ONTAP did not report.
const UNKNOWN_LUN_SIZE: u64 = 10 << 30;
/// Smallest simulated volume (the discovery does not read volume sizes).
const MIN_VOLUME_SIZE: u64 = 100 << 30;

/// What the discovery of the policy's real clusters found: (policy cluster index, inventory).
#[derive(Debug, Clone, Default)]
pub struct Estate {
    pub clusters: Vec<(usize, Inventory)>,
}

impl Estate {
    /// Whether the policy's cluster `ci` was discovered.
    pub fn has(&self, ci: usize) -> bool {
        self.clusters.iter().any(|(i, _)| *i == ci)
    }
}

/// Reads every cluster of `policy` whose endpoint is not `"simulator"` through `clients`
/// (policy cluster index, client). Read-only: discovery makes only GETs. The first cluster
/// that cannot be read ends it with that error.
pub async fn discover(
    policy: &Policy,
    clients: &[(usize, Arc<dyn Ontap>)],
    at: DateTime<Utc>,
) -> Result<Estate, String> {
    let mut estate = Estate::default();
    for (ci, ontap) in clients {
        let Some(c) = policy.clusters.get(*ci) else {
            continue;
        };
        if c.endpoint == Endpoint::Simulator {
            continue;
        }
        let inv = read_cluster(ontap.as_ref(), Depth::Full, at)
            .await
            .map_err(|e| format!("discovery of cluster {}: {e}", c.name))?;
        estate.clusters.push((*ci, inv));
    }
    Ok(estate)
}

/// Adds the discovered clusters of `estate` to `w` (whose clock is at the world's start),
/// under the policy's names for them. Snapshots keep their create times, except that one newer
/// than the world's start is dated at the start (the simulated past cannot hold the future).
pub fn add_to_world(w: &mut World, policy: &Policy, estate: &Estate) -> Result<(), String> {
    let start = w.now();
    for (pci, inv) in &estate.clusters {
        let name = policy
            .clusters
            .get(*pci)
            .map(|c| c.name.as_str())
            .ok_or_else(|| format!("discovered cluster #{pci} is not in the policy"))?;
        let at = |what: String| format!("cluster {name}: {what}");
        let tz: Tz = inv.info.timezone.parse().map_err(|_| {
            at(format!(
                "time zone {:?} is not an IANA zone the simulator knows",
                inv.info.timezone
            ))
        })?;
        if inv.schedules.len() > MAX_SCHEDULES {
            return Err(at(format!(
                "{} job schedules: more than {MAX_SCHEDULES}",
                inv.schedules.len()
            )));
        }
        if inv.snapshot_policies.len() > MAX_SNAPSHOT_POLICIES {
            return Err(at(format!(
                "{} snapshot policies: more than {MAX_SNAPSHOT_POLICIES}",
                inv.snapshot_policies.len()
            )));
        }
        let ci = w.add_cluster(name, &inv.info.version, tz);
        for (package, state) in [
            ("flexclone", inv.flexclone),
            ("snaprestore", inv.snaprestore),
        ] {
            if state == LicenseState::Compliant {
                w.add_license(ci, package);
            }
        }
        for s in &inv.schedules {
            w.add_schedule(ci, &s.name, s.recurrence.clone())
                .map_err(|e| at(format!("schedule {}: {e}", s.name)))?;
        }
        for p in &inv.snapshot_policies {
            if p.copies.len() > MAX_POLICY_COPIES {
                return Err(at(format!(
                    "snapshot policy {}: {} copies entries, more than {MAX_POLICY_COPIES}",
                    p.name,
                    p.copies.len()
                )));
            }
            let copies = p
                .copies
                .iter()
                .map(|c| PolicyCopy {
                    schedule: c.schedule.clone(),
                    count: c.count,
                    prefix: c.prefix.clone().filter(|x| *x != c.schedule),
                    snapmirror_label: None,
                    retention_period: None,
                })
                .collect();
            w.add_policy(ci, &p.name, "", copies)
                .map_err(|e| at(format!("snapshot policy {}: {e}", p.name)))?;
        }
        // ONTAP always has these; a listing without them still gets them.
        w.add_builtins(ci);
        for v in policy.volumes.iter().filter(|v| v.cluster == *pci) {
            add_volume(w, ci, inv, &v.svm, &v.name, start).map_err(at)?;
        }
    }
    Ok(())
}

/// One policy volume as discovered: its snapshot policy, LUNs and snapshots.
fn add_volume(
    w: &mut World,
    ci: usize,
    inv: &Inventory,
    svm: &str,
    volume: &str,
    start: DateTime<Utc>,
) -> Result<(), String> {
    let vat = |what: String| format!("volume {svm}/{volume}: {what}");
    let Some(info) = inv.volume(svm, volume) else {
        return Err(vat("not found on the cluster".into()));
    };
    let luns: Vec<_> = inv.volume_luns(svm, volume).collect();
    if luns.len() > MAX_LUNS_PER_VOLUME {
        return Err(vat(format!(
            "{} LUNs: more than {MAX_LUNS_PER_VOLUME}",
            luns.len()
        )));
    }
    let snapshots: Vec<_> = inv.volume_snapshots(svm, volume).collect();
    if snapshots.len() > MAX_SNAPSHOTS_PER_VOLUME {
        return Err(vat(format!(
            "{} snapshots: more than ONTAP's {MAX_SNAPSHOTS_PER_VOLUME}",
            snapshots.len()
        )));
    }
    let mut lun_total: u64 = 0;
    for l in &luns {
        if let Some(size) = l.size.filter(|s| *s > MAX_LUN_SIZE) {
            return Err(vat(format!(
                "LUN {}: {size} bytes, more than the largest LUN ONTAP makes ({MAX_LUN_SIZE})",
                l.name
            )));
        }
        lun_total = lun_total.saturating_add(l.size.unwrap_or(UNKNOWN_LUN_SIZE));
    }
    if w.svm_index(ci, svm).is_err() {
        w.add_svm(ci, svm).map_err(|e| vat(e.to_string()))?;
    }
    let policy_name = info.snapshot_policy.as_deref().unwrap_or("none");
    let size = lun_total.saturating_mul(2).max(MIN_VOLUME_SIZE);
    w.create_volume(ci, svm, volume, size, policy_name)
        .map_err(|e| vat(e.to_string()))?;
    for l in &luns {
        w.create_lun(ci, &l.name, l.size.unwrap_or(UNKNOWN_LUN_SIZE), "vmware")
            .map_err(|e| vat(format!("LUN {}: {e}", l.name)))?;
        if l.created_as_clone {
            if let Some(lun) = w.clusters[ci].luns.iter_mut().find(|x| x.name == l.name) {
                lun.created_as_clone = true;
            }
        }
    }
    let Some(vi) = w.clusters[ci].volumes.iter().position(|v| v.name == volume) else {
        return Err(vat("vanished from the simulated world".into()));
    };
    // The schedules' rotation counts snapshots by their policy's prefixes.
    let prefixes: Vec<String> = w.clusters[ci]
        .policies
        .iter()
        .find(|p| p.name == policy_name)
        .map(|p| {
            p.copies
                .iter()
                .map(|c| c.effective_prefix().to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut sorted = snapshots;
    sorted.sort_by_key(|s| s.create_time);
    for s in sorted {
        let schedule_prefix = prefixes
            .iter()
            .find(|p| {
                s.name
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
            })
            .cloned();
        w.clusters[ci].volumes[vi].snapshots.push(Snapshot {
            uuid: s.uuid.to_string(),
            listed_uuid: s.uuid.clone(),
            name: s.name.to_string(),
            comment: s.comment.as_deref().map(str::to_string),
            create_time: s.create_time.with_timezone(&Utc).min(start),
            size: s.size.unwrap_or(0),
            schedule_prefix,
            captures: Vec::new(),
            snapmirror_label: s.snapmirror_label.as_deref().map(str::to_string),
            held_by: Vec::new(),
            snaplock_expiry: s.snaplock_expiry.map(|t| t.with_timezone(&Utc)),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ontap::{ClusterInfo, LunInfo, SnapshotInfo, VolumeInfo};
    use chrono::TimeZone;

    const POLICY: &str = r#"
[[cluster]]
name = "prod-a"
endpoint = "https://cluster-a.example.net"
username = "snapwarden"
password_env = "SNAPWARDEN_PROD_A_PASSWORD"

[[volume]]
cluster = "prod-a"
svm = "svm1"
name = "vol_sql"
luns = ["/vol/vol_sql/lun0"]
snapshot_policy = "ontap"

[[window]]
name = "sql-nightly"
volumes = ["prod-a/svm1/vol_sql"]
start = "0 1 * * *"
timezone = "Europe/Berlin"
expected = "40m"
max = "50m"
"#;

    fn inventory(snapshots: usize, lun_size: u64) -> Inventory {
        let t = Utc.with_ymd_and_hms(2026, 12, 31, 23, 5, 0).unwrap();
        let snapshots = (0..snapshots)
            .map(|i| SnapshotInfo {
                uuid: format!("s{i}").into(),
                name: format!("hourly.{i}").into(),
                volume_uuid: "v1".into(),
                volume_name: "vol_sql".into(),
                svm: "svm1".into(),
                comment: Some("seen".into()),
                create_time: t.fixed_offset(),
                owners: Vec::new(),
                size: Some(4096),
                snapmirror_label: None,
                snaplock_expiry: None,
            })
            .collect();
        let luns = vec![LunInfo {
            uuid: "l1".into(),
            name: "/vol/vol_sql/lun0".into(),
            svm: "svm1".into(),
            volume_name: "vol_sql".into(),
            mapped: false,
            created_as_clone: false,
            size: Some(lun_size),
        }];
        let mut inv = Inventory::sample(snapshots, luns, t);
        inv.info = ClusterInfo {
            name: "a".into(),
            uuid: "u".into(),
            version: "9.15.1".into(),
            timezone: "Europe/Berlin".into(),
        };
        inv.volumes = vec![VolumeInfo {
            uuid: "v1".into(),
            name: "vol_sql".into(),
            svm: "svm1".into(),
            snapshot_policy: Some("default".into()),
        }];
        inv.snapshot_policies = Vec::new();
        inv.schedules = Vec::new();
        inv.flexclone = LicenseState::Compliant;
        inv.snaprestore = LicenseState::Unlicensed;
        inv
    }

    fn policy() -> Policy {
        crate::config::parse_str(POLICY, std::path::Path::new("test.toml"))
            .expect("test policy is valid")
    }

    #[test]
    fn the_world_holds_the_discovered_estate() {
        let start = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let mut w = World::new(start, Default::default());
        let estate = Estate {
            clusters: vec![(0, inventory(2, 5 << 30))],
        };
        add_to_world(&mut w, &policy(), &estate).unwrap();
        let c = &w.clusters[0];
        assert_eq!(c.name, "prod-a");
        assert_eq!(c.version, "9.15.1");
        assert_eq!(c.tz, chrono_tz::Europe::Berlin);
        assert!(w.licensed(0, "flexclone") && !w.licensed(0, "snaprestore"));
        let v = &c.volumes[0];
        assert_eq!(v.snapshot_policy, "default");
        assert_eq!(v.snapshots.len(), 2);
        // `hourly.0` is the built-in `default` policy's hourly copy: rotation counts it.
        assert_eq!(v.snapshots[0].schedule_prefix.as_deref(), Some("hourly"));
        assert_eq!(v.snapshots[0].comment.as_deref(), Some("seen"));
        assert_eq!(
            v.snapshots[0].create_time,
            Utc.with_ymd_and_hms(2026, 12, 31, 23, 5, 0).unwrap()
        );
        assert_eq!(c.luns[0].size, 5 << 30);
    }

    #[test]
    fn an_absurd_estate_is_refused_with_its_place() {
        let start = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let mut w = World::new(start, Default::default());
        let estate = Estate {
            clusters: vec![(0, inventory(MAX_SNAPSHOTS_PER_VOLUME + 1, 1 << 30))],
        };
        let e = add_to_world(&mut w, &policy(), &estate).unwrap_err();
        assert!(
            e.contains("cluster prod-a") && e.contains("svm1/vol_sql") && e.contains("1024"),
            "{e}"
        );
        let mut w = World::new(start, Default::default());
        let estate = Estate {
            clusters: vec![(0, inventory(1, u64::MAX))],
        };
        let e = add_to_world(&mut w, &policy(), &estate).unwrap_err();
        assert!(e.contains("LUN /vol/vol_sql/lun0"), "{e}");
    }
}
