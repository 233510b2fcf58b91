//! `SimClient`: the [`Ontap`] trait over an in-process [`Simulator`], for `endpoint = "simulator"`.
//!
//! It calls the same world operations as the REST handlers; errors become
//! [`OntapError::Api`] with the same ONTAP codes (`http_status: None` when ONTAP would report the
//! error in a failed job, as for a locked snapshot).

use std::sync::Arc;

use super::world::{Pins, SimError, World};
use super::Simulator;
use crate::ontap::{
    ClusterInfo, LicenseState, LunInfo, NewSnapshot, Ontap, OntapError, PolicyCopies, ScheduleInfo,
    SnapshotInfo, SnapshotPolicyInfo, Text, VolumeInfo, VolumeRef, VolumeSettings,
};

/// One cluster of a simulator, seen through the [`Ontap`] trait.
#[derive(Debug, Clone)]
pub struct SimClient {
    sim: Arc<Simulator>,
    cluster: String,
}

impl SimClient {
    /// A client for the cluster named `cluster` (as in the world or policy).
    pub fn new(sim: Arc<Simulator>, cluster: &str) -> SimClient {
        SimClient {
            sim,
            cluster: cluster.to_string(),
        }
    }

    pub fn simulator(&self) -> &Arc<Simulator> {
        &self.sim
    }

    fn err(&self, target: String, e: SimError) -> OntapError {
        OntapError::Api {
            cluster: self.cluster.clone(),
            target,
            code: e.code(),
            message: e.to_string(),
            http_status: (!e.is_job_failure()).then(|| e.http_status()),
        }
    }

    /// Runs `f` on the world with this client's cluster index.
    fn run<T>(
        &self,
        target: impl Fn() -> String,
        f: impl FnOnce(&mut World, usize) -> Result<T, SimError>,
    ) -> Result<T, OntapError> {
        self.sim
            .with(|w| {
                let ci = w.cluster_index(&self.cluster)?;
                f(w, ci)
            })
            .map_err(|e| self.err(target(), e))
    }

    fn volume_index(w: &World, ci: usize, v: &VolumeRef) -> Result<usize, SimError> {
        w.volume_index(ci, &v.uuid)
            .or_else(|_| w.volume_by_name(ci, &v.name))
    }
}

fn snapshot_info(w: &World, ci: usize, vi: usize, si: usize) -> SnapshotInfo {
    let mut texts = Texts::default();
    let volume = texts.volume(w, ci, vi);
    snapshot_info_over(
        w,
        &w.pins(ci, Some(vi)),
        (ci, vi, si),
        (&volume, w.volume_lun_bytes(ci, vi)),
        &mut texts,
    )
}

/// The texts of one listing, each distinct value made once and shared by the records that
/// carry it (as the REST decoder shares them): labels, owners, comments.
#[derive(Default)]
struct Texts<'w> {
    values: crate::fasthash::HashMap<&'w str, Text>,
}

/// A volume's uuid, name and SVM, as each of its snapshot records carries them.
struct VolumeTexts {
    uuid: Text,
    name: Text,
    svm: Text,
}

impl<'w> Texts<'w> {
    fn of(&mut self, value: &'w str) -> Text {
        self.values
            .entry(value)
            .or_insert_with(|| Text::from(value))
            .clone()
    }

    fn volume(&mut self, w: &'w World, ci: usize, vi: usize) -> VolumeTexts {
        let v = &w.clusters[ci].volumes[vi];
        VolumeTexts {
            uuid: Text::from(v.uuid.as_str()),
            name: Text::from(v.name.as_str()),
            svm: self.of(&v.svm),
        }
    }
}

/// [`snapshot_info`] with the volume's texts and LUN bytes, the cluster's clone pins and the
/// listing's texts gathered once for a whole listing.
fn snapshot_info_over<'w>(
    w: &'w World,
    pins: &Pins<'_>,
    (ci, vi, si): (usize, usize, usize),
    (volume, luns): (&VolumeTexts, u64),
    texts: &mut Texts<'w>,
) -> SnapshotInfo {
    let v = &w.clusters[ci].volumes[vi];
    let s = &v.snapshots[si];
    SnapshotInfo {
        uuid: s.listed_uuid.clone(),
        name: (&s.name).into(),
        volume_uuid: volume.uuid.clone(),
        volume_name: volume.name.clone(),
        svm: volume.svm.clone(),
        comment: s.comment.as_deref().map(|c| texts.of(c)),
        create_time: w.local(ci, s.create_time),
        owners: w
            .owners_with(pins, (ci, vi, si))
            .into_iter()
            .map(|o| texts.of(o))
            .collect(),
        size: Some(w.snapshot_size_over(ci, vi, si, luns)),
        snapmirror_label: s.snapmirror_label.as_deref().map(|l| texts.of(l)),
        snaplock_expiry: s.snaplock_expiry.map(|t| w.local(ci, t)),
    }
}

fn lun_info(w: &World, ci: usize, li: usize) -> LunInfo {
    let c = &w.clusters[ci];
    let volume_name = w
        .volume_index(ci, &c.luns[li].volume_uuid)
        .ok()
        .map(|vi| c.volumes[vi].name.as_str());
    lun_info_in(w, ci, li, volume_name)
}

/// [`lun_info`] with the LUN's volume name already looked up (a listing looks every volume up
/// once: a search per LUN is quadratic, seconds at 10,000 LUNs).
fn lun_info_in(w: &World, ci: usize, li: usize, volume_name: Option<&str>) -> LunInfo {
    let l = &w.clusters[ci].luns[li];
    LunInfo {
        uuid: l.uuid.clone(),
        name: l.name.clone(),
        svm: l.svm.clone(),
        volume_name: volume_name.unwrap_or_default().to_string(),
        mapped: w.is_mapped(ci, &l.uuid),
        created_as_clone: l.created_as_clone,
        size: Some(l.size),
    }
}

#[async_trait::async_trait]
impl Ontap for SimClient {
    fn cluster_name(&self) -> &str {
        &self.cluster
    }

    async fn cluster(&self) -> Result<ClusterInfo, OntapError> {
        self.run(
            || "cluster".into(),
            |w, ci| {
                let c = &w.clusters[ci];
                Ok(ClusterInfo {
                    name: c.name.clone(),
                    uuid: c.uuid.clone(),
                    version: c.version.clone(),
                    timezone: c.tz.name().to_string(),
                })
            },
        )
    }

    async fn volumes(&self) -> Result<Vec<VolumeInfo>, OntapError> {
        self.run(
            || "volumes".into(),
            |w, ci| {
                Ok(w.clusters[ci]
                    .volumes
                    .iter()
                    .map(|v| VolumeInfo {
                        uuid: v.uuid.clone(),
                        name: v.name.clone(),
                        svm: v.svm.clone(),
                        snapshot_policy: Some(v.snapshot_policy.clone()),
                    })
                    .collect())
            },
        )
    }

    async fn snapshot_policies(&self) -> Result<Vec<SnapshotPolicyInfo>, OntapError> {
        self.run(
            || "snapshot policies".into(),
            |w, ci| {
                Ok(w.clusters[ci]
                    .policies
                    .iter()
                    .map(|p| SnapshotPolicyInfo {
                        name: p.name.clone(),
                        copies: p
                            .copies
                            .iter()
                            .map(|c| PolicyCopies {
                                schedule: c.schedule.clone(),
                                count: c.count,
                                prefix: Some(c.effective_prefix().to_string()),
                            })
                            .collect(),
                    })
                    .collect())
            },
        )
    }

    async fn schedules(&self) -> Result<Vec<ScheduleInfo>, OntapError> {
        self.run(
            || "schedules".into(),
            |w, ci| {
                Ok(w.clusters[ci]
                    .schedules
                    .iter()
                    .map(|s| ScheduleInfo {
                        name: s.name.clone(),
                        recurrence: s.recurrence.clone(),
                    })
                    .collect())
            },
        )
    }

    async fn license(&self, package: &str) -> Result<LicenseState, OntapError> {
        self.run(
            || format!("license {package}"),
            |w, ci| {
                Ok(if w.licensed(ci, package) {
                    LicenseState::Compliant
                } else {
                    LicenseState::Unlicensed
                })
            },
        )
    }

    async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, OntapError> {
        self.run(
            || "snapshots".into(),
            |w, ci| {
                let volumes = &w.clusters[ci].volumes;
                let mut out = Vec::with_capacity(volumes.iter().map(|v| v.snapshots.len()).sum());
                let pins = w.pins(ci, None);
                let bytes = w.lun_bytes_by_volume(ci);
                let mut texts = Texts::default();
                for (vi, v) in volumes.iter().enumerate() {
                    let luns = bytes.get(v.uuid.as_str()).copied().unwrap_or(0);
                    let volume = texts.volume(w, ci, vi);
                    for si in 0..v.snapshots.len() {
                        out.push(snapshot_info_over(
                            w,
                            &pins,
                            (ci, vi, si),
                            (&volume, luns),
                            &mut texts,
                        ));
                    }
                }
                Ok(out)
            },
        )
    }

    async fn luns(&self) -> Result<Vec<LunInfo>, OntapError> {
        self.run(
            || "luns".into(),
            |w, ci| {
                let c = &w.clusters[ci];
                let names: crate::fasthash::HashMap<&str, &str> = c
                    .volumes
                    .iter()
                    .map(|v| (v.uuid.as_str(), v.name.as_str()))
                    .collect();
                Ok((0..c.luns.len())
                    .map(|li| {
                        let volume = names.get(c.luns[li].volume_uuid.as_str()).copied();
                        lun_info_in(w, ci, li, volume)
                    })
                    .collect())
            },
        )
    }

    async fn volume_snapshots(
        &self,
        volumes: &[VolumeRef],
    ) -> Result<Vec<SnapshotInfo>, OntapError> {
        self.run(
            || format!("snapshots of {} volume(s)", volumes.len()),
            |w, ci| {
                let mut out = Vec::new();
                let mut texts = Texts::default();
                // As over REST: a volume that no longer exists matches nothing.
                for vi in volumes
                    .iter()
                    .filter_map(|v| Self::volume_index(w, ci, v).ok())
                {
                    let pins = w.pins(ci, Some(vi));
                    let luns = w.volume_lun_bytes(ci, vi);
                    let volume = texts.volume(w, ci, vi);
                    for si in 0..w.clusters[ci].volumes[vi].snapshots.len() {
                        out.push(snapshot_info_over(
                            w,
                            &pins,
                            (ci, vi, si),
                            (&volume, luns),
                            &mut texts,
                        ));
                    }
                }
                Ok(out)
            },
        )
    }

    async fn volume_luns(&self, volumes: &[VolumeRef]) -> Result<Vec<LunInfo>, OntapError> {
        self.run(
            || format!("LUNs of {} volume(s)", volumes.len()),
            |w, ci| {
                let mut out = Vec::new();
                for vi in volumes
                    .iter()
                    .filter_map(|v| Self::volume_index(w, ci, v).ok())
                {
                    let c = &w.clusters[ci];
                    let v = &c.volumes[vi];
                    out.extend(
                        c.luns_of_volume(&v.uuid)
                            .into_iter()
                            .map(|li| lun_info_in(w, ci, li, Some(v.name.as_str()))),
                    );
                }
                Ok(out)
            },
        )
    }

    async fn volume_settings(&self) -> Result<Vec<VolumeSettings>, OntapError> {
        self.run(
            || "volume settings".into(),
            |w, ci| {
                Ok((0..w.clusters[ci].volumes.len())
                    .map(|vi| {
                        let v = &w.clusters[ci].volumes[vi];
                        let space = w.snapshot_space(ci, vi);
                        VolumeSettings {
                            uuid: v.uuid.clone(),
                            name: v.name.clone(),
                            svm: v.svm.clone(),
                            autodelete: crate::ontap::Autodelete {
                                enabled: v.autodelete.enabled,
                                commitment: Some(v.autodelete.commitment.clone()),
                                trigger: Some(v.autodelete.trigger.clone()),
                            },
                            snapshot_locking: v.snapshot_locking,
                            naming_scheme: Some(v.naming.as_str().to_string()),
                            reserve_percent: Some(u64::from(v.snapshot_reserve_percent)),
                            reserve_size: Some(space.reserve_size),
                            snapshot_used: Some(space.used),
                        }
                    })
                    .collect())
            },
        )
    }

    async fn create_snapshot(
        &self,
        volume: &VolumeRef,
        new: &NewSnapshot<'_>,
    ) -> Result<SnapshotInfo, OntapError> {
        let name = new.name;
        self.run(
            || format!("volume {} snapshot {name}", volume.name),
            |w, ci| {
                let vi = Self::volume_index(w, ci, volume)?;
                let comment = (!new.comment.is_empty()).then(|| new.comment.to_string());
                let label = new.snapmirror_label.map(str::to_string);
                let uuid = w.create_labelled_snapshot(ci, vi, name, comment, label)?;
                let si = w.snapshot_index(ci, vi, &uuid)?;
                Ok(snapshot_info(w, ci, vi, si))
            },
        )
    }

    async fn delete_snapshot(
        &self,
        volume: &VolumeRef,
        snapshot_uuid: &str,
        snapshot_name: &str,
    ) -> Result<(), OntapError> {
        self.run(
            || format!("volume {} snapshot {snapshot_name}", volume.name),
            |w, ci| {
                let vi = Self::volume_index(w, ci, volume)?;
                let si = w.snapshot_index(ci, vi, snapshot_uuid)?;
                w.delete_snapshot(ci, vi, si)
            },
        )
    }

    async fn clone_lun_flexclone(
        &self,
        volume: &VolumeRef,
        snapshot_name: &str,
        source_lun: &str,
        clone_path: &str,
    ) -> Result<LunInfo, OntapError> {
        self.run(
            || format!("lun {clone_path}"),
            |w, ci| {
                let source = crate::ontap::lun_in_snapshot(&volume.name, snapshot_name, source_lun);
                let uuid = w.clone_lun_flexclone(ci, &source, clone_path)?;
                let li = w.lun_index(ci, &uuid)?;
                Ok(lun_info(w, ci, li))
            },
        )
    }

    async fn clone_lun_snaprestore(
        &self,
        volume: &VolumeRef,
        snapshot_name: &str,
        source_lun: &str,
        clone_path: &str,
    ) -> Result<LunInfo, OntapError> {
        self.run(
            || format!("lun {clone_path}"),
            |w, ci| {
                let vi = Self::volume_index(w, ci, volume)?;
                let uuid =
                    w.clone_lun_snaprestore(ci, vi, snapshot_name, source_lun, clone_path)?;
                let li = w.lun_index(ci, &uuid)?;
                Ok(lun_info(w, ci, li))
            },
        )
    }

    async fn delete_lun(
        &self,
        lun_uuid: &str,
        lun_path: &str,
        allow_delete_while_mapped: bool,
    ) -> Result<(), OntapError> {
        self.run(
            || format!("lun {lun_path}"),
            |w, ci| {
                let li = w
                    .lun_index(ci, lun_uuid)
                    .or_else(|_| w.lun_index(ci, lun_path))?;
                w.delete_lun(ci, li, allow_delete_while_mapped)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ontap::SNAPSHOT_LOCKED;
    use crate::sim::config::WorldFile;
    use crate::sim::ClockMode;
    use chrono::{DateTime, TimeDelta, Utc};

    const WORLD: &str = r#"
        [[clusters]]
        name = "c1"
        timezone = "America/New_York"
        licenses = ["snaprestore"]
        [[clusters.svms]]
        name = "svm1"
        [[clusters.svms.igroups]]
        name = "esx"
        [[clusters.svms.volumes]]
        name = "vol1"
        luns = [{ name = "lun1", mapped_to = ["esx"] }]
    "#;

    fn client() -> SimClient {
        let start: DateTime<Utc> = "2026-06-01T12:00:00Z".parse().unwrap();
        let world = WorldFile::parse(WORLD, "t")
            .unwrap()
            .build(start, "t")
            .unwrap();
        SimClient::new(Simulator::new(world, ClockMode::Manual), "c1")
    }

    #[tokio::test]
    async fn chain_lock_through_the_trait() {
        let c = client();
        let info = c.cluster().await.unwrap();
        assert_eq!(info.timezone, "America/New_York");
        assert_eq!(
            c.license("flexclone").await.unwrap(),
            LicenseState::Unlicensed
        );
        let vol = c.volumes().await.unwrap().remove(0);
        let vref = VolumeRef {
            uuid: vol.uuid,
            name: vol.name,
            svm: vol.svm,
        };
        let b = c
            .create_snapshot(&vref, &NewSnapshot::new("backing", "snapwarden"))
            .await
            .unwrap();
        assert_eq!(b.create_time.offset().local_minus_utc(), -4 * 3600);
        let clone = c
            .clone_lun_snaprestore(&vref, "backing", "/vol/vol1/lun1", "/vol/vol1/clone")
            .await
            .unwrap();
        assert!(clone.created_as_clone);
        // `default` policy: hourly at :05 captures the clone.
        c.simulator().advance(TimeDelta::minutes(10)).unwrap();
        let err = c
            .delete_snapshot(&vref, &b.uuid.text(), &b.name)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(SNAPSHOT_LOCKED));
        assert!(matches!(
            err,
            OntapError::Api {
                http_status: None,
                ..
            }
        ));
        c.delete_lun(&clone.uuid, &clone.name, false).await.unwrap();
        assert_eq!(
            c.delete_snapshot(&vref, &b.uuid.text(), &b.name)
                .await
                .unwrap_err()
                .code(),
            Some(SNAPSHOT_LOCKED)
        );
        let pin = c
            .snapshots()
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.name.starts_with("hourly."))
            .unwrap();
        assert_eq!(pin.name, "hourly.2026-06-01_0805");
        c.delete_snapshot(&vref, &pin.uuid.text(), &pin.name)
            .await
            .unwrap();
        c.delete_snapshot(&vref, &b.uuid.text(), &b.name)
            .await
            .unwrap();
        let lun = c.luns().await.unwrap().remove(0);
        let err = c.delete_lun(&lun.uuid, &lun.name, false).await.unwrap_err();
        assert_eq!(err.code(), Some(crate::ontap::LUN_MAPPED));
        let err = c
            .clone_lun_flexclone(&vref, "x", "lun1", "/vol/vol1/c2")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(crate::sim::world::codes::LUN_CLONE_FAILED));
    }
}
