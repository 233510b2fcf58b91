//! Snapshots: create, rename, delete, and their lock owners (clones' and held ones).

use crate::fasthash::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{codes, SimError, SimResult, SnapAt, Snapshot, World};

/// Lock owner shown on a snapshot backing a SnapRestore ("traditional") LUN clone (assumption).
pub const OWNER_LUN_CLONE: &str = "lun_clone";
/// Lock owner shown on a snapshot while a FlexClone LUN shares its blocks (assumption).
pub const OWNER_FILE_CLONE: &str = "file_clone_dependent";
/// Lock owner shown on the parent snapshot of a FlexClone volume (reference notes §4.1).
pub const OWNER_VOLUME_CLONE: &str = "volume_clone";

/// ONTAP's `owners` values (reference notes §1.4): what a snapshot may be held by through the
/// world file or the admin API.
pub const ONTAP_OWNERS: &[&str] = &[
    "unknown",
    "snapmirror",
    "snapmirror_dependent",
    "sync_mirror",
    "volume_clone",
    "volume_clone_dependent",
    "snap_restore",
    "snap_restore_dependent",
    "dump",
    "cifs_share",
    "volume_copy",
    "ndmp",
    "worm_volume",
    "sis_clone",
    "s2c_iron",
    "lun_clone",
    "backup_dependent",
    "snaplock_dependent",
    "file_clone_dependent",
    "volume_move_dependent",
    "svmdr_dependent",
    "anti_ransomware_backup",
];

/// Longest `snapmirror_label` ONTAP accepts, in characters (reference notes §2.2).
pub const MAX_SNAPMIRROR_LABEL: usize = 31;

/// Longest snapshot name ONTAP accepts, in bytes.
pub const MAX_SNAPSHOT_NAME: usize = 255;

/// Share of a volume's LUN bytes overwritten per hour, in parts per million (0.1 %): what a
/// snapshot comes to hold the longer it is kept ([`World::snapshot_size`]).
pub const CHANGE_PER_HOUR_PPM: u64 = 1000;

/// Why `name` cannot name a snapshot, or `None` when it can. One rule set for create, rename and
/// the snapshot part of a `clone.source.name` path: not empty, at most 255 bytes, no `/` (a path
/// separator), not `.` or `..` (directory entries of `.snapshot`), no NUL or other control
/// character.
pub fn snapshot_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("the name is empty")
    } else if name.len() > MAX_SNAPSHOT_NAME {
        Some("the name is longer than 255 bytes")
    } else if name == "." || name == ".." {
        Some("\".\" and \"..\" are reserved")
    } else if name.contains('/') {
        Some("the name contains \"/\"")
    } else if name.chars().any(char::is_control) {
        Some("the name contains a control character")
    } else {
        None
    }
}

/// Why `label` cannot be a `snapmirror_label`, or `None` when it can: 1 to 31 characters (ONTAP's
/// documented length), no control character.
pub fn snapmirror_label_problem(label: &str) -> Option<String> {
    let chars = label.chars().count();
    if !(1..=MAX_SNAPMIRROR_LABEL).contains(&chars) {
        Some(format!(
            "\"snapmirror_label\" must be 1 to {MAX_SNAPMIRROR_LABEL} characters, not {chars}."
        ))
    } else if label.chars().any(char::is_control) {
        Some("\"snapmirror_label\" contains a control character.".into())
    } else {
        None
    }
}

/// What [`World::push_snapshot`] records besides the uuid.
pub(super) struct NewSnap<'a> {
    pub(super) name: &'a str,
    pub(super) comment: Option<String>,
    pub(super) snapmirror_label: Option<String>,
    /// The policy prefix when a schedule takes it.
    pub(super) schedule_prefix: Option<String>,
}

/// [`snapshot_name_problem`] as the error ONTAP answers, with the operation's code.
fn check_snapshot_name(name: &str, code: u64) -> SimResult<()> {
    match snapshot_name_problem(name) {
        None => Ok(()),
        Some(reason) => Err(SimError::InvalidSnapshotName {
            code,
            name: name.to_string(),
            reason,
        }),
    }
}

/// `space.snapshot.reserve_size` and `space.snapshot.used` of a volume, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSpace {
    pub reserve_size: u64,
    pub used: u64,
}

/// What holds a cluster's snapshots busy through clones ([`World::pins`]): a SnapRestore LUN
/// clone's backing snapshot (volume uuid, snapshot uuid), a snapshot sharing blocks with a
/// FlexClone LUN now, a FlexClone volume's parent snapshot.
pub struct Pins<'a> {
    lun_clone: HashSet<(&'a str, &'a str)>,
    file_clone: HashSet<&'a str>,
    volume_clone: HashSet<(&'a str, &'a str)>,
}

impl<'a> Pins<'a> {
    /// These pins and `other`'s: what holds the snapshots of both volume sets.
    pub fn merge(&mut self, other: Pins<'a>) {
        self.lun_clone.extend(other.lun_clone);
        self.file_clone.extend(other.file_clone);
        self.volume_clone.extend(other.volume_clone);
    }
}

impl World {
    // ----- snapshots -----

    pub(super) fn check_can_snapshot(&self, ci: usize, vi: usize, name: &str) -> SimResult<()> {
        let c = &self.clusters[ci];
        let v = &c.volumes[vi];
        if v.snapshots.iter().any(|s| s.name == name) {
            return Err(SimError::Duplicate {
                code: codes::SNAPSHOT_EXISTS,
                target: "name".into(),
                message: format!(
                    "Snapshot copy \"{name}\" already exists on volume \"{}\".",
                    v.name
                ),
            });
        }
        if c.block_sharing
            .get(&v.uuid)
            .is_some_and(|sharing| sharing.iter().any(|b| self.now < b.until))
        {
            return Err(SimError::BlockSharing {
                volume: v.name.clone(),
            });
        }
        if v.snapshots.len() >= self.knobs.max_snapshots_per_volume {
            return Err(SimError::TooManySnapshots {
                volume: v.name.clone(),
                max: self.knobs.max_snapshots_per_volume,
            });
        }
        Ok(())
    }

    /// The reserved prefix (knob `reserved_snapshot_prefixes`) a user-created name begins with:
    /// `name` starts with the prefix followed by a dot, exactly (case-sensitive), as ONTAP's own
    /// schedules name their snapshots `<prefix>.<YYYY-MM-DD_HHMM>`.
    fn check_reserved_prefix(&self, name: &str, code: u64) -> SimResult<()> {
        let reserved = self.knobs.reserved_snapshot_prefixes.iter().find(|p| {
            name.strip_prefix(p.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
        });
        match reserved {
            None => Ok(()),
            Some(prefix) => Err(SimError::ReservedPrefix {
                code,
                name: name.to_string(),
                prefix: prefix.clone(),
            }),
        }
    }

    pub(super) fn push_snapshot(
        &mut self,
        ci: usize,
        vi: usize,
        uuid: String,
        new: NewSnap<'_>,
    ) -> usize {
        let now = self.now;
        let v = &mut self.clusters[ci].volumes[vi];
        // Every live SnapRestore clone on this volume is frozen into the new snapshot (§7.2).
        let mut captures = Vec::new();
        for r in v.restore_clones.iter_mut().filter(|r| r.alive) {
            captures.push(r.lun_uuid.clone());
            r.captured_by += 1;
            if r.captured_by == 1 {
                *self
                    .pinned_backings
                    .entry(r.backing_snapshot_uuid.clone())
                    .or_default() += 1;
            }
        }
        // Sizes cycle through 4 KiB .. 256 KiB so listings show varied values.
        let size = 4096 * (1 + (v.snapshots.len() % 64) as u64);
        v.snapshots.push(Snapshot {
            listed_uuid: uuid.as_str().into(),
            uuid,
            name: new.name.to_string(),
            comment: new.comment,
            create_time: now,
            size,
            schedule_prefix: new.schedule_prefix,
            captures,
            snapmirror_label: new.snapmirror_label,
            held_by: Vec::new(),
            snaplock_expiry: None,
        });
        v.snapshots.len() - 1
    }

    /// One capture fewer pins backing snapshot `uuid` ([`World::pinned_backings`]).
    pub(super) fn unpin(&mut self, uuid: &str) {
        if let Some(n) = self.pinned_backings.get_mut(uuid) {
            *n -= 1;
            if *n == 0 {
                self.pinned_backings.remove(uuid);
            }
        }
    }

    /// The bytes snapshot `si` holds now: its size when taken, plus the blocks the volume's
    /// LUNs overwrote since — [`CHANGE_PER_HOUR_PPM`] of their size per hour held, capped at
    /// their size. Deterministic: a function of the LUN sizes and the world's clock.
    pub fn snapshot_size(&self, ci: usize, vi: usize, si: usize) -> u64 {
        self.snapshot_size_over(ci, vi, si, self.volume_lun_bytes(ci, vi))
    }

    /// The size of the LUNs of volume `vi` (clones not counted): what its snapshots' growth
    /// is a share of. A listing sums it once per volume, not once per snapshot.
    pub fn volume_lun_bytes(&self, ci: usize, vi: usize) -> u64 {
        let c = &self.clusters[ci];
        c.luns_of_volume(&c.volumes[vi].uuid)
            .into_iter()
            .map(|li| &c.luns[li])
            .filter(|l| !l.created_as_clone)
            .fold(0u64, |t, l| t.saturating_add(l.size))
    }

    /// [`World::volume_lun_bytes`] of every volume of cluster `ci`, by volume uuid, in one scan of
    /// its LUNs, for a listing of every volume's snapshots.
    pub fn lun_bytes_by_volume(&self, ci: usize) -> HashMap<&str, u64> {
        let mut out: HashMap<&str, u64> = HashMap::default();
        for l in self.clusters[ci]
            .luns
            .iter()
            .filter(|l| !l.created_as_clone)
        {
            let t = out.entry(l.volume_uuid.as_str()).or_default();
            *t = t.saturating_add(l.size);
        }
        out
    }

    /// [`World::snapshot_size`] with the volume's [`World::volume_lun_bytes`] given.
    pub fn snapshot_size_over(&self, ci: usize, vi: usize, si: usize, luns: u64) -> u64 {
        let s = &self.clusters[ci].volumes[vi].snapshots[si];
        let held = u128::try_from((self.now - s.create_time).num_seconds().max(0)).unwrap_or(0);
        let changed = u128::from(luns)
            .saturating_mul(held)
            .saturating_mul(u128::from(CHANGE_PER_HOUR_PPM))
            / (3600 * 1_000_000);
        let changed = u64::try_from(changed).unwrap_or(u64::MAX).min(luns);
        s.size.saturating_add(changed)
    }

    pub(super) fn remove_snapshot(&mut self, ci: usize, vi: usize, si: usize) {
        let v = &mut self.clusters[ci].volumes[vi];
        let removed = v.snapshots.remove(si);
        let mut unpinned = Vec::new();
        for lun in &removed.captures {
            let Some(ri) = v.restore_clones.iter().position(|r| r.lun_uuid == *lun) else {
                continue;
            };
            let r = &mut v.restore_clones[ri];
            r.captured_by = r.captured_by.saturating_sub(1);
            if r.captured_by == 0 {
                unpinned.push(r.backing_snapshot_uuid.clone());
                // A deleted SnapRestore clone whose last capturing snapshot is gone is forgotten.
                if !r.alive {
                    v.restore_clones.remove(ri);
                }
            }
        }
        for uuid in unpinned {
            self.unpin(&uuid);
        }
    }

    pub fn snapshot_index(&self, ci: usize, vi: usize, uuid_or_name: &str) -> SimResult<usize> {
        self.clusters[ci].volumes[vi]
            .snapshots
            .iter()
            .position(|s| s.uuid == uuid_or_name || s.name == uuid_or_name)
            .ok_or_else(|| SimError::not_found(codes::SNAPSHOT_NOT_FOUND, uuid_or_name))
    }

    /// The lock owners of a snapshot, as `owners` shows them: the clones' first, then those it
    /// is held by.
    pub fn owners(&self, ci: usize, vi: usize, si: usize) -> Vec<&str> {
        self.owners_at((ci, vi, si))
    }

    pub(super) fn owners_at(&self, (ci, vi, si): SnapAt) -> Vec<&str> {
        let pins = self.pins(ci, Some(vi));
        self.owners_with(&pins, (ci, vi, si))
    }

    /// What holds snapshots of cluster `ci` busy through its clones — of volume `only` (from its
    /// own clone records and the cluster's indices of block sharing and FlexClone volumes, so
    /// it costs what that volume holds) or of every volume, for a listing of them all.
    pub fn pins(&self, ci: usize, only: Option<usize>) -> Pins<'_> {
        let c = &self.clusters[ci];
        let volumes = match only {
            Some(vi) => std::slice::from_ref(&c.volumes[vi]),
            None => c.volumes.as_slice(),
        };
        let lun_clone = volumes
            .iter()
            .flat_map(|v| {
                v.restore_clones
                    .iter()
                    .filter(|r| r.alive || (!v.snapshot_clone_dependency && r.captured_by > 0))
                    .map(|r| (v.uuid.as_str(), r.backing_snapshot_uuid.as_str()))
            })
            .collect();
        let sharing: Vec<&super::BlockSharing> = match only {
            Some(_) => volumes
                .iter()
                .filter_map(|v| c.block_sharing.get(&v.uuid))
                .flatten()
                .collect(),
            None => c.block_sharing.values().flatten().collect(),
        };
        let file_clone = sharing
            .into_iter()
            .filter(|b| self.now < b.until)
            .map(|b| b.snapshot_uuid.as_str())
            .collect();
        let volume_clone = match only {
            Some(_) => volumes
                .iter()
                .flat_map(|v| {
                    c.clone_children_of(&v.uuid)
                        .iter()
                        .map(|s| (v.uuid.as_str(), s.as_str()))
                })
                .collect(),
            None => c
                .clone_children
                .iter()
                .flat_map(|(parent, snaps)| snaps.iter().map(|s| (parent.as_str(), s.as_str())))
                .collect(),
        };
        Pins {
            lun_clone,
            file_clone,
            volume_clone,
        }
    }

    /// The lock owners of a snapshot given its cluster's [`Pins`] (which must cover its volume).
    pub fn owners_with<'a>(&'a self, pins: &Pins<'_>, (ci, vi, si): SnapAt) -> Vec<&'a str> {
        let v = &self.clusters[ci].volumes[vi];
        let s = &v.snapshots[si];
        let at = (v.uuid.as_str(), s.uuid.as_str());
        let mut owners = Vec::new();
        if pins.lun_clone.contains(&at) {
            owners.push(OWNER_LUN_CLONE);
        }
        if pins.file_clone.contains(s.uuid.as_str()) {
            owners.push(OWNER_FILE_CLONE);
        }
        if pins.volume_clone.contains(&at) {
            owners.push(OWNER_VOLUME_CLONE);
        }
        for held in &s.held_by {
            if !owners.contains(&held.as_str()) {
                owners.push(held);
            }
        }
        owners
    }

    /// Makes snapshot `si` busy with `owners` as ONTAP shows them (`snapmirror`, `dump`, …), in
    /// place of the owners it was held by; `[]` releases it. Its clones' owners are not
    /// affected. Each must be one of [`ONTAP_OWNERS`]; a repeated one counts once.
    pub fn hold_snapshot(
        &mut self,
        ci: usize,
        vi: usize,
        si: usize,
        owners: Vec<String>,
    ) -> SimResult<()> {
        let mut held: Vec<String> = Vec::new();
        for owner in owners {
            if !ONTAP_OWNERS.contains(&owner.as_str()) {
                return Err(SimError::invalid(
                    "owners",
                    format!(
                        "\"{}\" is not an ONTAP snapshot owner; owners are {}.",
                        owner.escape_debug(),
                        ONTAP_OWNERS.join(", ")
                    ),
                ));
            }
            if !held.contains(&owner) {
                held.push(owner);
            }
        }
        self.clusters[ci].volumes[vi].snapshots[si].held_by = held;
        Ok(())
    }

    /// `POST /api/storage/volumes/{uuid}/snapshots` without a SnapMirror label: returns the new
    /// snapshot's uuid.
    pub fn create_snapshot(
        &mut self,
        ci: usize,
        vi: usize,
        name: &str,
        comment: Option<String>,
    ) -> SimResult<String> {
        self.create_labelled_snapshot(ci, vi, name, comment, None)
    }

    /// `POST /api/storage/volumes/{uuid}/snapshots`: returns the new snapshot's uuid. Refused,
    /// in this order: a bad name (1638518), a reserved prefix (1638477), a bad label, a name the
    /// volume holds already (525059), block sharing, the snapshot limit.
    pub fn create_labelled_snapshot(
        &mut self,
        ci: usize,
        vi: usize,
        name: &str,
        comment: Option<String>,
        snapmirror_label: Option<String>,
    ) -> SimResult<String> {
        check_snapshot_name(name, codes::SNAPSHOT_NAME_INVALID)?;
        self.check_reserved_prefix(name, codes::SNAPSHOT_PREFIX_RESERVED)?;
        if let Some(problem) = snapmirror_label
            .as_deref()
            .and_then(snapmirror_label_problem)
        {
            return Err(SimError::invalid("snapmirror_label", problem));
        }
        self.check_can_snapshot(ci, vi, name)?;
        let uuid = World::new_uuid();
        let new = NewSnap {
            name,
            comment,
            snapmirror_label,
            schedule_prefix: None,
        };
        self.push_snapshot(ci, vi, uuid.clone(), new);
        self.last_created = Some((ci, vi));
        Ok(uuid)
    }

    /// A snapshot the volume already held when the world began (world file): taken at
    /// `create_time` (not after now), never by a schedule, so neither the reserved prefixes nor
    /// block sharing nor the snapshot limit apply. Returns its index.
    ///
    /// Invariant kept: the caller adds a volume's existing snapshots oldest first, before any
    /// other.
    pub fn add_existing_snapshot(
        &mut self,
        ci: usize,
        vi: usize,
        name: &str,
        comment: Option<String>,
        snapmirror_label: Option<String>,
        create_time: DateTime<Utc>,
    ) -> SimResult<usize> {
        check_snapshot_name(name, codes::SNAPSHOT_NAME_INVALID)?;
        if let Some(problem) = snapmirror_label
            .as_deref()
            .and_then(snapmirror_label_problem)
        {
            return Err(SimError::invalid("snapmirror_label", problem));
        }
        let v = &self.clusters[ci].volumes[vi];
        if v.snapshots.iter().any(|s| s.name == name) {
            return Err(SimError::Duplicate {
                code: codes::SNAPSHOT_EXISTS,
                target: "name".into(),
                message: format!(
                    "Snapshot copy \"{name}\" already exists on volume \"{}\".",
                    v.name
                ),
            });
        }
        if create_time > self.now {
            return Err(SimError::invalid(
                "create_time",
                format!(
                    "an existing snapshot is taken before the world begins ({}), not at {create_time}",
                    self.now
                ),
            ));
        }
        let new = NewSnap {
            name,
            comment,
            snapmirror_label,
            schedule_prefix: None,
        };
        let si = self.push_snapshot(ci, vi, World::new_uuid(), new);
        self.clusters[ci].volumes[vi].snapshots[si].create_time = create_time;
        Ok(si)
    }

    /// Whether snapshot `si` is tamper-proof now: its `snaplock_expiry_time` is still ahead.
    pub fn snaplocked(&self, ci: usize, vi: usize, si: usize) -> bool {
        self.clusters[ci].volumes[vi].snapshots[si]
            .snaplock_expiry
            .is_some_and(|t| self.now < t)
    }

    /// The space a volume's snapshots take against its reserve, as `space.snapshot` reports it.
    pub fn snapshot_space(&self, ci: usize, vi: usize) -> SnapshotSpace {
        let v = &self.clusters[ci].volumes[vi];
        let luns = self.volume_lun_bytes(ci, vi);
        let used = (0..v.snapshots.len()).fold(0u64, |t, si| {
            t.saturating_add(self.snapshot_size_over(ci, vi, si, luns))
        });
        let reserve_size =
            u64::try_from(u128::from(v.size) * u128::from(v.snapshot_reserve_percent) / 100)
                .unwrap_or(u64::MAX);
        SnapshotSpace { reserve_size, used }
    }

    /// Checks that a snapshot may be deleted (no owners, no SnapLock expiry ahead).
    pub fn check_delete_snapshot(&self, ci: usize, vi: usize, si: usize) -> SimResult<()> {
        if self.owners_at((ci, vi, si)).is_empty() && !self.snaplocked(ci, vi, si) {
            return Ok(());
        }
        let v = &self.clusters[ci].volumes[vi];
        Err(SimError::SnapshotLocked {
            code: self.knobs.locked_delete_code,
            snapshot: v.snapshots[si].name.clone(),
            volume: v.name.clone(),
            svm: v.svm.clone(),
        })
    }

    /// `DELETE /api/storage/volumes/{uuid}/snapshots/{uuid}`.
    pub fn delete_snapshot(&mut self, ci: usize, vi: usize, si: usize) -> SimResult<()> {
        self.check_delete_snapshot(ci, vi, si)?;
        self.remove_snapshot(ci, vi, si);
        Ok(())
    }

    /// `PATCH` of a snapshot's `name`, `comment` and/or `snapmirror_label`; nothing changes on
    /// an error.
    pub fn modify_snapshot(
        &mut self,
        ci: usize,
        vi: usize,
        si: usize,
        name: Option<&str>,
        comment: Option<String>,
        snapmirror_label: Option<String>,
    ) -> SimResult<()> {
        if let Some(problem) = snapmirror_label
            .as_deref()
            .and_then(snapmirror_label_problem)
        {
            return Err(SimError::invalid("snapmirror_label", problem));
        }
        if let Some(name) = name {
            check_snapshot_name(name, codes::SNAPSHOT_RENAME_INVALID)?;
            self.check_reserved_prefix(name, codes::SNAPSHOT_PREFIX_RESERVED)?;
            let v = &self.clusters[ci].volumes[vi];
            if v.snapshots
                .iter()
                .enumerate()
                .any(|(i, s)| i != si && s.name == name)
            {
                return Err(SimError::Duplicate {
                    code: codes::SNAPSHOT_EXISTS,
                    target: "name".into(),
                    message: format!("Snapshot copy \"{name}\" already exists."),
                });
            }
            self.clusters[ci].volumes[vi].snapshots[si].name = name.to_string();
        }
        if let Some(comment) = comment {
            self.clusters[ci].volumes[vi].snapshots[si].comment = Some(comment);
        }
        if let Some(label) = snapmirror_label {
            self.clusters[ci].volumes[vi].snapshots[si].snapmirror_label = Some(label);
        }
        Ok(())
    }
}
