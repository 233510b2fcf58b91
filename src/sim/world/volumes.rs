//! Volumes: create, policy changes and their next fire instants, FlexClone volumes, delete.

use super::{
    codes, Autodelete, CloneParent, NamingScheme, SimError, SimResult, Volume, World,
    DEFAULT_SNAPSHOT_RESERVE_PERCENT,
};

impl World {
    pub fn volume_index(&self, ci: usize, uuid: &str) -> SimResult<usize> {
        self.clusters[ci]
            .volumes
            .iter()
            .position(|v| v.uuid == uuid)
            .ok_or_else(|| SimError::not_found(codes::NOT_FOUND, format!("volume {uuid}")))
    }

    pub fn volume_by_name(&self, ci: usize, name: &str) -> SimResult<usize> {
        self.clusters[ci]
            .volumes
            .iter()
            .position(|v| v.name == name)
            .ok_or_else(|| SimError::not_found(codes::NOT_FOUND, format!("volume {name}")))
    }

    pub fn create_volume(
        &mut self,
        ci: usize,
        svm: &str,
        name: &str,
        size: u64,
        policy: &str,
    ) -> SimResult<String> {
        let si = self.svm_index(ci, svm)?;
        let svm = self.clusters[ci].svms[si].name.clone();
        let c = &self.clusters[ci];
        if c.volumes.iter().any(|v| v.name == name) {
            return Err(SimError::Duplicate {
                code: 917_505,
                target: "name".into(),
                message: format!("Duplicate volume name {name}."),
            });
        }
        if c.policies.iter().all(|p| p.name != policy) {
            return Err(SimError::invalid(
                "snapshot_policy.name",
                format!("Snapshot policy \"{policy}\" does not exist."),
            ));
        }
        let uuid = World::new_uuid();
        self.clusters[ci].volumes.push(Volume {
            uuid: uuid.clone(),
            name: name.to_string(),
            svm,
            size,
            snapshot_policy: policy.to_string(),
            snapshot_clone_dependency: false,
            create_time: self.now,
            snapshots: Vec::new(),
            next_fires: Vec::new(),
            clone_parent: None,
            autodelete: Autodelete::default(),
            snapshot_locking: false,
            naming: NamingScheme::CreateTime,
            snapshot_reserve_percent: DEFAULT_SNAPSHOT_RESERVE_PERCENT,
        });
        let vi = self.clusters[ci].volumes.len() - 1;
        self.reschedule(ci, vi);
        Ok(uuid)
    }

    /// Sets a volume's snapshot policy and recomputes its next fire instants from `now`.
    pub fn set_volume_policy(&mut self, ci: usize, vi: usize, policy: &str) -> SimResult<()> {
        if self.clusters[ci].policies.iter().all(|p| p.name != policy) {
            return Err(SimError::invalid(
                "snapshot_policy.name",
                format!("Snapshot policy \"{policy}\" does not exist."),
            ));
        }
        self.clusters[ci].volumes[vi].snapshot_policy = policy.to_string();
        self.reschedule(ci, vi);
        Ok(())
    }

    fn reschedule(&mut self, ci: usize, vi: usize) {
        let now = self.now;
        let c = &self.clusters[ci];
        let v = &c.volumes[vi];
        let fires = match c.policies.iter().find(|p| p.name == v.snapshot_policy) {
            Some(p) if p.enabled => p
                .copies
                .iter()
                .map(|copy| {
                    c.schedules
                        .iter()
                        .find(|s| s.name == copy.schedule)
                        .and_then(|s| s.recurrence.next_after(c.tz, now))
                })
                .collect(),
            _ => Vec::new(),
        };
        self.clusters[ci].volumes[vi].next_fires = fires;
    }

    // ----- FlexClone volumes -----

    /// `POST /api/storage/volumes` with `clone.is_flexclone`: creates the parent snapshot
    /// (`clone.<name>.<timestamp>`) when none is given.
    pub fn clone_volume(
        &mut self,
        ci: usize,
        svm: &str,
        name: &str,
        parent: &str,
        parent_snapshot: Option<&str>,
    ) -> SimResult<String> {
        if !self.licensed(ci, "flexclone") {
            return Err(SimError::Unlicensed {
                code: codes::LUN_CLONE_FAILED,
                package: "flexclone".into(),
                message:
                    "Failed to create FlexClone volume: the FlexClone license is not installed."
                        .into(),
            });
        }
        let pvi = self.clusters[ci]
            .volumes
            .iter()
            .position(|v| v.name == parent || v.uuid == parent)
            .ok_or_else(|| {
                SimError::not_found(
                    codes::PARENT_VOLUME_NOT_FOUND,
                    format!("clone.parent_volume {parent}"),
                )
            })?;
        if self.clusters[ci].volumes.iter().any(|v| v.name == name) {
            return Err(SimError::Duplicate {
                code: 917_505,
                target: "name".into(),
                message: format!("Duplicate volume name {name}."),
            });
        }
        let psi = match parent_snapshot {
            Some(s) => self.snapshot_index(ci, pvi, s)?,
            None => {
                let local = self.now.with_timezone(&self.clusters[ci].tz);
                let snap = format!("clone_{name}.{}", local.format("%Y-%m-%d_%H%M%S"));
                self.create_snapshot(ci, pvi, &snap, None)?;
                self.snapshot_index(ci, pvi, &snap)?
            }
        };
        let (size, policy, pvol_uuid, psnap_uuid) = {
            let p = &self.clusters[ci].volumes[pvi];
            (
                p.size,
                "none".to_string(),
                p.uuid.clone(),
                p.snapshots[psi].uuid.clone(),
            )
        };
        let uuid = self.create_volume(ci, svm, name, size, &policy)?;
        let vi = self.volume_index(ci, &uuid)?;
        self.clusters[ci].volumes[vi].clone_parent = Some(CloneParent {
            volume_uuid: pvol_uuid,
            snapshot_uuid: psnap_uuid,
        });
        Ok(uuid)
    }

    /// Splits a FlexClone volume from its parent (ends immediately in the simulator).
    pub fn split_clone(&mut self, ci: usize, vi: usize) -> SimResult<()> {
        let v = &mut self.clusters[ci].volumes[vi];
        if v.clone_parent.take().is_none() {
            return Err(SimError::invalid(
                "clone.split_initiated",
                format!("volume \"{}\" is not a FlexClone volume", v.name),
            ));
        }
        Ok(())
    }

    /// `DELETE /api/storage/volumes/{uuid}` (its LUNs and snapshots go with it).
    pub fn delete_volume(&mut self, ci: usize, vi: usize) -> SimResult<()> {
        let c = &mut self.clusters[ci];
        let uuid = c.volumes[vi].uuid.clone();
        if c.volumes.iter().any(|w| {
            w.clone_parent
                .as_ref()
                .is_some_and(|p| p.volume_uuid == uuid)
        }) {
            return Err(SimError::HasClones {
                volume: c.volumes[vi].name.clone(),
            });
        }
        let luns: Vec<String> = c
            .luns
            .iter()
            .filter(|l| l.volume_uuid == uuid)
            .map(|l| l.uuid.clone())
            .collect();
        c.lun_maps.retain(|m| !luns.contains(&m.lun_uuid));
        c.luns.retain(|l| l.volume_uuid != uuid);
        c.reindex_luns();
        c.restore_clones.retain(|r| r.volume_uuid != uuid);
        c.block_sharing.retain(|b| b.volume_uuid != uuid);
        c.volumes.remove(vi);
        Ok(())
    }
}
