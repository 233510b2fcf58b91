//! Volumes: create, policy changes and their next fire instants, FlexClone volumes, delete.

use super::{
    codes, Autodelete, CloneParent, Cluster, NamingScheme, SimError, SimResult, Volume, World,
    DEFAULT_SNAPSHOT_RESERVE_PERCENT,
};

impl Cluster {
    /// Indices of the volumes whose name equals `name` ignoring case, ascending, from the name
    /// index (no scan).
    pub fn volumes_named(&self, name: &str) -> &[usize] {
        self.volume_names
            .get(&name.to_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The parent snapshots (uuids) of the FlexClone volumes of the volume whose uuid is
    /// `uuid`, one per clone.
    pub fn clone_children_of(&self, uuid: &str) -> &[String] {
        self.clone_children.get(uuid).map_or(&[], Vec::as_slice)
    }

    /// Rebuilds the volume indices after a volume was removed (positions shift).
    fn reindex_volumes(&mut self) {
        self.volume_uuids.clear();
        self.volume_names.clear();
        for (i, v) in self.volumes.iter().enumerate() {
            self.volume_uuids.insert(v.uuid.clone(), i);
            self.volume_names
                .entry(v.name.to_lowercase())
                .or_default()
                .push(i);
        }
    }

    /// Forgets volume `child`'s FlexClone parent link, keeping `clone_children` true.
    fn unlink_clone(&mut self, child: usize) {
        let Some(p) = self.volumes[child].clone_parent.take() else {
            return;
        };
        if let Some(snaps) = self.clone_children.get_mut(&p.volume_uuid) {
            if let Some(at) = snaps.iter().position(|s| *s == p.snapshot_uuid) {
                snaps.remove(at);
            }
            if snaps.is_empty() {
                self.clone_children.remove(&p.volume_uuid);
            }
        }
    }
}

impl World {
    pub fn volume_index(&self, ci: usize, uuid: &str) -> SimResult<usize> {
        self.clusters[ci]
            .volume_uuids
            .get(uuid)
            .copied()
            .ok_or_else(|| SimError::not_found(codes::NOT_FOUND, format!("volume {uuid}")))
    }

    pub fn volume_by_name(&self, ci: usize, name: &str) -> SimResult<usize> {
        let c = &self.clusters[ci];
        c.volumes_named(name)
            .iter()
            .copied()
            .find(|&i| c.volumes[i].name == name)
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
        if self.volume_by_name(ci, name).is_ok() {
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
        let c = &mut self.clusters[ci];
        let vi = c.volumes.len();
        c.volume_uuids.insert(uuid.clone(), vi);
        c.volume_names
            .entry(name.to_lowercase())
            .or_default()
            .push(vi);
        c.volumes.push(Volume {
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
            restore_clones: Vec::new(),
            autodelete: Autodelete::default(),
            snapshot_locking: false,
            naming: NamingScheme::CreateTime,
            snapshot_reserve_percent: DEFAULT_SNAPSHOT_RESERVE_PERCENT,
        });
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

    /// Recomputes a volume's next fire instants from `now`, and its entries in `due`.
    fn reschedule(&mut self, ci: usize, vi: usize) {
        let now = self.now;
        for (k, at) in self.clusters[ci].volumes[vi].next_fires.iter().enumerate() {
            if let Some(at) = at {
                self.due.remove(&(*at, ci, vi, k));
            }
        }
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
        for (k, at) in fires.iter().enumerate() {
            if let Some(at) = at {
                self.due.insert((*at, ci, vi, k));
            }
        }
        self.clusters[ci].volumes[vi].next_fires = fires;
    }

    /// Rebuilds `due` from every volume's next fire instants (after positions shifted).
    fn reindex_due(&mut self) {
        self.due.clear();
        for (ci, c) in self.clusters.iter().enumerate() {
            for (vi, v) in c.volumes.iter().enumerate() {
                for (k, at) in v.next_fires.iter().enumerate() {
                    if let Some(at) = at {
                        self.due.insert((*at, ci, vi, k));
                    }
                }
            }
        }
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
        // The first volume with that name or uuid.
        let pvi = [
            self.volume_by_name(ci, parent).ok(),
            self.volume_index(ci, parent).ok(),
        ]
        .into_iter()
        .flatten()
        .min()
        .ok_or_else(|| {
            SimError::not_found(
                codes::PARENT_VOLUME_NOT_FOUND,
                format!("clone.parent_volume {parent}"),
            )
        })?;
        if self.volume_by_name(ci, name).is_ok() {
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
        let c = &mut self.clusters[ci];
        c.clone_children
            .entry(pvol_uuid.clone())
            .or_default()
            .push(psnap_uuid.clone());
        c.volumes[vi].clone_parent = Some(CloneParent {
            volume_uuid: pvol_uuid,
            snapshot_uuid: psnap_uuid,
        });
        Ok(uuid)
    }

    /// Splits a FlexClone volume from its parent (ends immediately in the simulator).
    pub fn split_clone(&mut self, ci: usize, vi: usize) -> SimResult<()> {
        let c = &mut self.clusters[ci];
        if c.volumes[vi].clone_parent.is_none() {
            return Err(SimError::invalid(
                "clone.split_initiated",
                format!(
                    "volume \"{}\" is not a FlexClone volume",
                    c.volumes[vi].name
                ),
            ));
        }
        c.unlink_clone(vi);
        Ok(())
    }

    /// `DELETE /api/storage/volumes/{uuid}` (its LUNs and snapshots go with it).
    pub fn delete_volume(&mut self, ci: usize, vi: usize) -> SimResult<()> {
        let c = &mut self.clusters[ci];
        let uuid = c.volumes[vi].uuid.clone();
        if !c.clone_children_of(&uuid).is_empty() {
            return Err(SimError::HasClones {
                volume: c.volumes[vi].name.clone(),
            });
        }
        let luns: Vec<String> = c
            .luns_of_volume(&uuid)
            .into_iter()
            .map(|li| c.luns[li].uuid.clone())
            .collect();
        c.lun_maps.retain(|m| !luns.contains(&m.lun_uuid));
        for lun in &luns {
            c.lun_maps_of.remove(lun);
        }
        c.luns.retain(|l| l.volume_uuid != uuid);
        c.reindex_luns();
        c.block_sharing.remove(&uuid);
        c.unlink_clone(vi);
        let volume = c.volumes.remove(vi);
        c.reindex_volumes();
        for r in volume.restore_clones.iter().filter(|r| r.captured_by > 0) {
            self.unpin(&r.backing_snapshot_uuid);
        }
        self.reindex_due();
        // Positions moved: the last create's volume is no longer known by position.
        self.last_created = None;
        Ok(())
    }
}
