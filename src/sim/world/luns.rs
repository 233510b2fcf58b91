//! LUNs (plain, FlexClone and SnapRestore clones), igroups and LUN maps.

use std::collections::BTreeSet;

use crate::fasthash::HashMap;

use super::clock::{saturating_add, seconds};
use super::snapshots::snapshot_name_problem;
use super::{
    codes, BlockSharing, Cluster, Igroup, Lun, LunMap, RestoreClone, SimError, SimResult, World,
};

/// Whether `s` is one plain path segment: not empty, not `.` or `..`, no `/`, no control
/// character.
fn is_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.chars().any(char::is_control)
}

impl Cluster {
    /// The position in `luns` of the LUN of seq `seq` (`luns` is sorted by seq).
    fn lun_at(&self, seq: u64) -> Option<usize> {
        self.luns.binary_search_by_key(&seq, |l| l.seq).ok()
    }

    /// Positions in `luns` of the LUNs of these seqs, ascending.
    fn lun_positions(&self, seqs: &[u64]) -> Vec<usize> {
        seqs.iter().filter_map(|&s| self.lun_at(s)).collect()
    }

    /// Indices of the LUNs whose name equals `name` ignoring case, ascending, from the name
    /// index (no scan).
    pub fn luns_named(&self, name: &str) -> Vec<usize> {
        self.lun_names
            .get(&name.to_lowercase())
            .map_or_else(Vec::new, |seqs| self.lun_positions(seqs))
    }

    /// The LUN named exactly `name`, from the name index.
    pub fn lun_by_name(&self, name: &str) -> Option<usize> {
        self.lun_names
            .get(&name.to_lowercase())?
            .iter()
            .filter_map(|&s| self.lun_at(s))
            .find(|&i| self.luns[i].name == name)
    }

    /// The LUN whose uuid is exactly `uuid`, from the uuid index.
    pub fn lun_by_uuid(&self, uuid: &str) -> Option<usize> {
        self.lun_at(*self.lun_uuids.get(uuid)?)
    }

    /// Indices of the LUNs of the volume whose uuid is `volume_uuid`, ascending, from the
    /// volume's LUN index.
    pub fn luns_of_volume(&self, volume_uuid: &str) -> Vec<usize> {
        self.volume_luns
            .get(volume_uuid)
            .map_or_else(Vec::new, |seqs| self.lun_positions(seqs))
    }

    /// The maps of the LUN whose uuid is `uuid`, as (igroup uuid, logical unit number), in the
    /// order of `lun_maps`.
    pub fn lun_maps_of(&self, uuid: &str) -> &[(String, u32)] {
        self.lun_maps_of.get(uuid).map_or(&[], Vec::as_slice)
    }

    /// Enters a LUN into the indices (its seq is above every indexed one).
    fn index_lun(&mut self, lun: &Lun) {
        self.lun_names
            .entry(lun.name.to_lowercase())
            .or_default()
            .push(lun.seq);
        self.lun_uuids.insert(lun.uuid.clone(), lun.seq);
        self.volume_luns
            .entry(lun.volume_uuid.clone())
            .or_default()
            .push(lun.seq);
    }

    /// Removes LUN `li`, keeping the indices true: only its own entries go (they hold seqs, not
    /// positions, so nothing else moves).
    pub(super) fn remove_lun(&mut self, li: usize) -> Box<Lun> {
        let lun = self.luns.remove(li);
        fn unlist(index: &mut HashMap<String, Vec<u64>>, key: &str, seq: u64) {
            if let Some(at) = index.get_mut(key) {
                at.retain(|&s| s != seq);
                if at.is_empty() {
                    index.remove(key);
                }
            }
        }
        unlist(&mut self.lun_names, &lun.name.to_lowercase(), lun.seq);
        unlist(&mut self.volume_luns, &lun.volume_uuid, lun.seq);
        self.lun_uuids.remove(&lun.uuid);
        lun
    }

    /// Rebuilds the LUN indices after LUNs were removed in bulk.
    pub(super) fn reindex_luns(&mut self) {
        self.lun_names.clear();
        self.lun_uuids.clear();
        self.volume_luns.clear();
        let luns = std::mem::take(&mut self.luns);
        for l in &luns {
            self.index_lun(l);
        }
        self.luns = luns;
    }
}

impl World {
    // ----- LUNs -----

    /// The LUN at path `uuid_or_path`, else the one with that uuid.
    pub fn lun_index(&self, ci: usize, uuid_or_path: &str) -> SimResult<usize> {
        let c = &self.clusters[ci];
        c.lun_by_name(uuid_or_path)
            .or_else(|| c.lun_by_uuid(uuid_or_path))
            .ok_or_else(|| SimError::not_found(codes::LUN_NOT_FOUND, uuid_or_path))
    }

    fn lun_volume(&self, ci: usize, path: &str) -> SimResult<(usize, String)> {
        let rest = path.strip_prefix("/vol/").ok_or_else(|| {
            SimError::invalid("name", format!("LUN path \"{path}\" must start with /vol/"))
        })?;
        let (vol, leaf) = rest.split_once('/').ok_or_else(|| {
            SimError::invalid("name", format!("LUN path \"{path}\" has no LUN name"))
        })?;
        if !is_segment(vol) || !is_segment(leaf) {
            return Err(SimError::invalid(
                "name",
                format!("invalid LUN path \"{path}\""),
            ));
        }
        Ok((self.volume_by_name(ci, vol)?, leaf.to_string()))
    }

    fn push_lun(
        &mut self,
        ci: usize,
        vi: usize,
        path: &str,
        size: u64,
        os_type: &str,
        clone: bool,
    ) -> SimResult<String> {
        let c = &self.clusters[ci];
        if c.lun_by_name(path).is_some() {
            return Err(SimError::Duplicate {
                code: codes::LUN_EXISTS,
                target: "name".into(),
                message: format!("A LUN or NVMe namespace already exists at path \"{path}\"."),
            });
        }
        let uuid = World::new_uuid();
        let serial = format!("wS{:010}", c.luns.len() + 1);
        let lun = Lun {
            seq: c.next_lun_seq,
            uuid: uuid.clone(),
            name: path.to_string(),
            svm: c.volumes[vi].svm.clone(),
            volume_uuid: c.volumes[vi].uuid.clone(),
            size,
            os_type: os_type.to_string(),
            serial_number: serial,
            created_as_clone: clone,
            create_time: self.now,
        };
        let c = &mut self.clusters[ci];
        c.next_lun_seq += 1;
        c.index_lun(&lun);
        c.luns.push(Box::new(lun));
        Ok(uuid)
    }

    /// `POST /api/storage/luns` without `clone`.
    pub fn create_lun(
        &mut self,
        ci: usize,
        path: &str,
        size: u64,
        os_type: &str,
    ) -> SimResult<String> {
        let (vi, _) = self.lun_volume(ci, path)?;
        self.push_lun(ci, vi, path, size, os_type, false)
    }

    /// FlexClone LUN (`POST /api/storage/luns` with `clone.source.name =
    /// /vol/<v>/.snapshot/<s>/<lun>`); the source snapshot shares blocks for
    /// `knobs.block_sharing_seconds`. A source without `.snapshot` clones the active LUN.
    pub fn clone_lun_flexclone(
        &mut self,
        ci: usize,
        source: &str,
        dest: &str,
    ) -> SimResult<String> {
        if !self.licensed(ci, "flexclone") {
            return Err(SimError::Unlicensed {
                code: codes::LUN_CLONE_FAILED,
                package: "flexclone".into(),
                message: "The LUN clone request failed: Clone operation failed to start: FlexClone license is not installed.".into(),
            });
        }
        let (dvi, _) = self.lun_volume(ci, dest)?;
        let (svi, snapshot, source_lun) = match source.split_once("/.snapshot/") {
            Some((vol_part, rest)) => {
                let invalid = || {
                    SimError::invalid(
                        "clone.source.name",
                        format!(
                            "invalid clone source \"{}\": expected /vol/<volume>/.snapshot/<snapshot>/<lun>",
                            source.escape_debug()
                        ),
                    )
                };
                let (snap, lun) = rest.split_once('/').ok_or_else(invalid)?;
                let vol = vol_part.strip_prefix("/vol/").ok_or_else(invalid)?;
                // Each part is one plain path segment: no `.`/`..` to walk out of `.snapshot`.
                if !is_segment(vol) || !is_segment(lun) || snapshot_name_problem(snap).is_some() {
                    return Err(invalid());
                }
                let vi = self.volume_by_name(ci, vol)?;
                let si = self.snapshot_index(ci, vi, snap).map_err(|_| {
                    SimError::not_found(5_374_876, format!("clone.source.name {source}"))
                })?;
                (vi, Some(si), format!("/vol/{vol}/{lun}"))
            }
            None => {
                let (vi, _) = self.lun_volume(ci, source)?;
                (vi, None, source.to_string())
            }
        };
        if svi != dvi {
            return Err(SimError::Invalid {
                target: "name".into(),
                message: "Cloning a LUN to a different volume is not supported.".into(),
            });
        }
        let li = self
            .lun_index(ci, &source_lun)
            .map_err(|_| SimError::not_found(5_374_876, format!("clone.source.name {source}")))?;
        let (size, os_type) = {
            let l = &self.clusters[ci].luns[li];
            (l.size, l.os_type.clone())
        };
        let uuid = self.push_lun(ci, dvi, dest, size, &os_type, true)?;
        if let Some(si) = snapshot {
            let until = saturating_add(self.now, seconds(self.knobs.block_sharing_seconds));
            let c = &mut self.clusters[ci];
            let sharing = BlockSharing {
                snapshot_uuid: c.volumes[svi].snapshots[si].uuid.clone(),
                lun_uuid: uuid.clone(),
                until,
            };
            if self.now < until {
                c.block_sharing
                    .entry(c.volumes[svi].uuid.clone())
                    .or_default()
                    .push(sharing);
            }
        }
        Ok(uuid)
    }

    /// SnapRestore clone (`PATCH /api/storage/volumes/{uuid}` with `restore_to.snapshot.name`,
    /// `restore_to.path` (the LUN in the snapshot) and `restore_to.restore_path` (the new LUN)).
    /// Paths may be relative to the volume (`/lun1`) or full (`/vol/v/lun1`).
    pub fn clone_lun_snaprestore(
        &mut self,
        ci: usize,
        vi: usize,
        snapshot: &str,
        path: &str,
        restore_path: &str,
    ) -> SimResult<String> {
        if !self.licensed(ci, "snaprestore") {
            return Err(SimError::Unlicensed {
                code: codes::RESTORE_FAILED,
                package: "snaprestore".into(),
                message: "Failed to restore snapshot: the SnapRestore license is not installed."
                    .into(),
            });
        }
        let si = self.snapshot_index(ci, vi, snapshot)?;
        let vol = self.clusters[ci].volumes[vi].name.clone();
        let full = |p: &str| {
            if p.starts_with("/vol/") {
                p.to_string()
            } else {
                format!("/vol/{vol}/{}", p.trim_start_matches('/'))
            }
        };
        let (source, dest) = (full(path), full(restore_path));
        let li = self.lun_index(ci, &source).map_err(|_| {
            SimError::not_found(codes::RESTORE_FAILED, format!("restore_to.path {path}"))
        })?;
        let (dvi, _) = self.lun_volume(ci, &dest)?;
        if dvi != vi {
            return Err(SimError::invalid(
                "restore_to.restore_path",
                "restore path must be inside the volume",
            ));
        }
        let (size, os_type) = {
            let l = &self.clusters[ci].luns[li];
            (l.size, l.os_type.clone())
        };
        let uuid = self.push_lun(ci, vi, &dest, size, &os_type, true)?;
        let v = &mut self.clusters[ci].volumes[vi];
        let backing_snapshot_uuid = v.snapshots[si].uuid.clone();
        v.restore_clones.push(RestoreClone {
            lun_uuid: uuid.clone(),
            backing_snapshot_uuid,
            alive: true,
            captured_by: 0,
        });
        Ok(uuid)
    }

    /// `DELETE /api/storage/luns/{uuid}`. A SnapRestore clone's record stays while a snapshot
    /// of its volume captured it.
    pub fn delete_lun(
        &mut self,
        ci: usize,
        li: usize,
        allow_delete_while_mapped: bool,
    ) -> SimResult<()> {
        let c = &mut self.clusters[ci];
        let uuid = c.luns[li].uuid.clone();
        if c.lun_maps_of.contains_key(&uuid) {
            if !allow_delete_while_mapped {
                return Err(SimError::LunMapped {
                    lun: c.luns[li].name.clone(),
                });
            }
            c.lun_maps.retain(|m| m.lun_uuid != uuid);
            c.lun_maps_of.remove(&uuid);
        }
        let lun = c.remove_lun(li);
        if let Some(sharing) = c.block_sharing.get_mut(&lun.volume_uuid) {
            sharing.retain(|b| b.lun_uuid != uuid);
            if sharing.is_empty() {
                c.block_sharing.remove(&lun.volume_uuid);
            }
        }
        if let Some(&vi) = c.volume_uuids.get(&lun.volume_uuid) {
            let clones = &mut c.volumes[vi].restore_clones;
            if let Some(ri) = clones.iter().position(|r| r.lun_uuid == uuid) {
                clones[ri].alive = false;
                if clones[ri].captured_by == 0 {
                    clones.remove(ri);
                }
            }
        }
        Ok(())
    }

    pub fn is_mapped(&self, ci: usize, lun_uuid: &str) -> bool {
        self.clusters[ci].lun_maps_of.contains_key(lun_uuid)
    }

    // ----- igroups and maps -----

    pub fn create_igroup(
        &mut self,
        ci: usize,
        svm: &str,
        name: &str,
        os_type: &str,
        protocol: &str,
        initiators: Vec<String>,
    ) -> SimResult<String> {
        let si = self.svm_index(ci, svm)?;
        let c = &mut self.clusters[ci];
        if c.igroups.iter().any(|g| g.name == name) {
            return Err(SimError::Duplicate {
                code: codes::DUPLICATE,
                target: "name".into(),
                message: format!("duplicate entry: igroup \"{name}\" already exists"),
            });
        }
        let uuid = World::new_uuid();
        let svm = c.svms[si].name.clone();
        c.igroups.push(Igroup {
            uuid: uuid.clone(),
            name: name.to_string(),
            svm,
            os_type: os_type.to_string(),
            protocol: protocol.to_string(),
            initiators,
        });
        Ok(uuid)
    }

    pub fn igroup_index(&self, ci: usize, uuid_or_name: &str) -> SimResult<usize> {
        self.clusters[ci]
            .igroups
            .iter()
            .position(|g| g.uuid == uuid_or_name || g.name == uuid_or_name)
            .ok_or_else(|| SimError::not_found(5_374_852, format!("igroup {uuid_or_name}")))
    }

    /// `POST /api/protocols/san/lun-maps`: returns the logical unit number.
    pub fn map_lun(&mut self, ci: usize, lun: &str, igroup: &str) -> SimResult<u32> {
        let li = self.lun_index(ci, lun)?;
        let gi = self.igroup_index(ci, igroup)?;
        let c = &mut self.clusters[ci];
        let (lun_uuid, igroup_uuid) = (c.luns[li].uuid.clone(), c.igroups[gi].uuid.clone());
        if c.lun_maps_of
            .get(&lun_uuid)
            .is_some_and(|maps| maps.iter().any(|(g, _)| *g == igroup_uuid))
        {
            return Err(SimError::Duplicate {
                code: codes::ALREADY_MAPPED,
                target: "lun".into(),
                message: "The LUN is already mapped to this initiator group.".into(),
            });
        }
        let used: BTreeSet<u32> = c
            .lun_maps
            .iter()
            .filter(|m| m.igroup_uuid == igroup_uuid)
            .map(|m| m.logical_unit_number)
            .collect();
        let lun_id = (0..).find(|n| !used.contains(n)).expect("a free LUN id");
        c.lun_maps_of
            .entry(lun_uuid.clone())
            .or_default()
            .push((igroup_uuid.clone(), lun_id));
        c.lun_maps.push(LunMap {
            lun_uuid,
            igroup_uuid,
            logical_unit_number: lun_id,
        });
        Ok(lun_id)
    }

    pub fn unmap_lun(&mut self, ci: usize, lun_uuid: &str, igroup_uuid: &str) -> SimResult<()> {
        let c = &mut self.clusters[ci];
        let before = c.lun_maps.len();
        c.lun_maps
            .retain(|m| !(m.lun_uuid == lun_uuid && m.igroup_uuid == igroup_uuid));
        if c.lun_maps.len() == before {
            return Err(SimError::not_found(
                codes::MAP_NOT_FOUND,
                format!("{lun_uuid}/{igroup_uuid}"),
            ));
        }
        if let Some(maps) = c.lun_maps_of.get_mut(lun_uuid) {
            maps.retain(|(g, _)| g != igroup_uuid);
            if maps.is_empty() {
                c.lun_maps_of.remove(lun_uuid);
            }
        }
        Ok(())
    }
}
