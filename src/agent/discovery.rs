//! Discovery: what a cluster says about itself and about the volumes, LUNs, schedules, licenses
//! and snapshots the policy names — one read-only round per cluster.
//!
//! `run` discovers on every pass (one bulk snapshot listing and one LUN listing per cluster);
//! `check` and `plan` use the same code when the policy needs cluster facts.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};

use crate::config::Policy;
use crate::ontap::{
    ClusterInfo, LicenseState, LunInfo, Ontap, OntapError, ScheduleInfo, SnapshotInfo,
    SnapshotPolicyInfo, VolumeInfo,
};
use crate::planner::{Observed, ObservedCluster};

/// One cluster as discovery saw it.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub info: ClusterInfo,
    pub volumes: Vec<VolumeInfo>,
    pub snapshot_policies: Vec<SnapshotPolicyInfo>,
    pub schedules: Vec<ScheduleInfo>,
    pub flexclone: LicenseState,
    pub snaprestore: LicenseState,
    pub snapshots: Vec<SnapshotInfo>,
    pub luns: Vec<LunInfo>,
    /// When the listing was taken (agent clock, before the first call).
    pub at: DateTime<Utc>,
    /// `snapshots` and `luns` by volume, built on first use (a listing is never changed).
    pub index: ListingIndex,
}

#[cfg(test)]
impl Inventory {
    /// A test listing of cluster `c` (9.14.1, UTC, SnapRestore licensed, FlexClone not) holding
    /// only `snapshots` and `luns`, taken at `at`.
    pub(crate) fn sample(
        snapshots: Vec<SnapshotInfo>,
        luns: Vec<LunInfo>,
        at: DateTime<Utc>,
    ) -> Inventory {
        Inventory {
            info: ClusterInfo {
                name: "c".into(),
                uuid: "cu".into(),
                version: "9.14.1".into(),
                timezone: "UTC".into(),
            },
            volumes: Vec::new(),
            snapshot_policies: Vec::new(),
            schedules: Vec::new(),
            flexclone: LicenseState::Unlicensed,
            snaprestore: LicenseState::Compliant,
            snapshots,
            luns,
            at,
            index: Default::default(),
        }
    }
}

/// Positions in an inventory's `snapshots` and `luns` per (SVM, volume), and its LUN names, so
/// that a pass over every cycle or volume of a cluster reads each listing once instead of once
/// per cycle (which made a pass quadratic in the estate).
#[derive(Debug, Clone, Default)]
pub struct ListingIndex(OnceLock<Built>);

/// Keyed SVM first, then volume (or LUN) name, so that look-ups borrow instead of allocating.
#[derive(Debug, Clone, Default)]
struct Built {
    snapshots: HashMap<String, HashMap<String, Vec<usize>>>,
    luns: HashMap<String, HashSet<String>>,
}

/// What discovery needs to read: everything (`run`), or only the facts planning uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Cluster, volumes, policies, schedules, licenses, snapshots and LUNs.
    Full,
    /// Cluster, volumes, policies and schedules (`check`, `plan`).
    Planning,
}

/// Reads one cluster. The calls run concurrently; the first error ends the round.
pub async fn discover(
    ontap: &dyn Ontap,
    depth: Depth,
    at: DateTime<Utc>,
) -> Result<Inventory, OntapError> {
    let facts = async {
        tokio::try_join!(
            ontap.cluster(),
            ontap.volumes(),
            ontap.snapshot_policies(),
            ontap.schedules()
        )
    };
    let (info, volumes, snapshot_policies, schedules) = facts.await?;
    let (flexclone, snaprestore, snapshots, luns) = match depth {
        Depth::Planning => (
            LicenseState::Unknown,
            LicenseState::Unknown,
            Vec::new(),
            Vec::new(),
        ),
        Depth::Full => tokio::try_join!(
            ontap.license("flexclone"),
            ontap.license("snaprestore"),
            ontap.snapshots(),
            ontap.luns()
        )?,
    };
    Ok(Inventory {
        info,
        volumes,
        snapshot_policies,
        schedules,
        flexclone,
        snaprestore,
        snapshots,
        luns,
        at,
        index: ListingIndex::default(),
    })
}

impl Inventory {
    /// The planner's view of this cluster.
    pub fn observed(&self, name: &str) -> ObservedCluster {
        ObservedCluster {
            name: name.to_string(),
            info: self.info.clone(),
            volumes: self.volumes.clone(),
            snapshot_policies: self.snapshot_policies.clone(),
            schedules: self.schedules.clone(),
        }
    }

    fn built(&self) -> &Built {
        self.index.0.get_or_init(|| {
            let mut b = Built::default();
            for (i, s) in self.snapshots.iter().enumerate() {
                b.snapshots
                    .entry(s.svm.clone())
                    .or_default()
                    .entry(s.volume_name.clone())
                    .or_default()
                    .push(i);
            }
            for l in &self.luns {
                b.luns
                    .entry(l.svm.clone())
                    .or_default()
                    .insert(l.name.clone());
            }
            b
        })
    }

    /// The snapshots of one volume, in listing order.
    pub fn volume_snapshots<'a>(
        &'a self,
        svm: &str,
        volume: &str,
    ) -> impl Iterator<Item = &'a SnapshotInfo> + 'a {
        self.built()
            .snapshots
            .get(svm)
            .and_then(|v| v.get(volume))
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|&i| self.snapshots.get(i))
    }

    /// Whether the listing has the LUN `name` in `svm`.
    pub fn has_lun(&self, svm: &str, name: &str) -> bool {
        self.built().luns.get(svm).is_some_and(|l| l.contains(name))
    }

    pub fn volume(&self, svm: &str, name: &str) -> Option<&VolumeInfo> {
        self.volumes.iter().find(|v| v.svm == svm && v.name == name)
    }

    /// This cluster's volumes by `(svm, name)` (LUNs through the listing index), to check many
    /// policy volumes against it in one pass (a linear search per volume is quadratic: seconds
    /// at 10,000).
    pub fn present(&self) -> Present<'_> {
        Present {
            volumes: self
                .volumes
                .iter()
                .map(|v| (v.svm.as_str(), v.name.as_str()))
                .collect(),
            inventory: self,
        }
    }
}

/// An inventory's volumes, indexed ([`Inventory::present`]).
pub struct Present<'a> {
    volumes: HashSet<(&'a str, &'a str)>,
    inventory: &'a Inventory,
}

impl Present<'_> {
    /// Why policy volume `vi` cannot run on this cluster (missing volume or LUNs), if it cannot.
    pub fn missing(&self, policy: &Policy, vi: usize) -> Option<String> {
        let v = &policy.volumes[vi];
        if !self.volumes.contains(&(v.svm.as_str(), v.name.as_str())) {
            return Some(format!(
                "volume {} (svm {}) does not exist on cluster {}",
                v.name, v.svm, policy.clusters[v.cluster].name
            ));
        }
        let absent: Vec<&str> = v
            .luns
            .iter()
            .filter(|lun| !self.inventory.has_lun(&v.svm, lun))
            .map(|s| s.as_str())
            .collect();
        (!absent.is_empty()).then(|| {
            format!(
                "LUN {} does not exist on volume {} (svm {}) of cluster {}",
                absent.join(", "),
                v.name,
                v.svm,
                policy.clusters[v.cluster].name
            )
        })
    }
}

/// Discovers, for planning, every cluster whose facts the policy needs; returns what was
/// observed and, per cluster that could not be read, the error.
pub async fn observe_for_planning(
    clusters: &[(String, Arc<dyn Ontap>)],
    now: DateTime<Utc>,
) -> (Observed, Vec<OntapError>) {
    let rounds = clusters.iter().map(|(name, ontap)| async move {
        (
            name.clone(),
            discover(ontap.as_ref(), Depth::Planning, now).await,
        )
    });
    let mut observed = Observed::default();
    let mut errors = Vec::new();
    for (name, result) in futures_util::future::join_all(rounds).await {
        match result {
            Ok(inv) => observed.clusters.push(inv.observed(&name)),
            Err(e) => errors.push(e),
        }
    }
    (observed, errors)
}
