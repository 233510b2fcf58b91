//! What the recommend stage read of each volume's journaled conflicts and locked space, kept
//! between decisions so that a volume with a long history is read again only for what changed.

use std::collections::BTreeMap;

use crate::fasthash::{HashMap, HashSet};

use super::cycle::ObservedConflict;
use super::decide::VolumeConflicts;
use super::journal::{Journal, JournalError, LockedSpace, Written};
use super::recommend::{CycleEnd, CycleEnds};
use super::state::VolumeKey;

/// The conflicts each recently decided volume had when last read, with the last row id read
/// (conflicts are only ever inserted, with growing ids, or pruned — and a prune that deletes
/// any conflict or locked space clears this):
/// a volume with a long history is decided again from the rows recorded since, not from all of
/// them; one read of the rows recorded since the last pass brings every kept volume up to date
/// at once ([`catch_up`](ConflictReads::catch_up)). With them, what the rule read of the cycles
/// they name, kept up to date with the journal's writes of that cycle
/// (`Journal::cycles_written_since`),
/// and the space each volume's locked backing snapshots hold. Bounded: beyond
/// [`CONFLICT_READS_MAX`] rows, volumes are read whole each time; beyond as many cycles, they
/// are read again.
#[derive(Debug, Default)]
pub(super) struct ConflictReads {
    volumes: HashMap<VolumeKey, Kept>,
    rows: usize,
    /// The volumes whose conflicts a stage's facts hold now: their last row id and row ids,
    /// until [`give_back`](ConflictReads::give_back) (the rows are lent, not copied).
    lent: HashMap<VolumeKey, (i64, Vec<i64>)>,
    /// The volumes whose locked space a stage's facts hold now, until
    /// [`give_back`](ConflictReads::give_back) (lent, not copied).
    lent_space: HashSet<VolumeKey>,
    ends: CycleEnds,
    /// The journal's cycle writes up to which `ends` is true.
    mark: u64,
    /// The conflict row id up to which every kept volume holds all its rows
    /// ([`catch_up`](ConflictReads::catch_up)); `None`: not known, each volume is asked alone.
    caught_up: Option<i64>,
    /// The space each volume's locked backing snapshots hold, as last read and then recorded
    /// ([`record_locked_space`](ConflictReads::record_locked_space)), by cycle id.
    space: HashMap<VolumeKey, Vec<LockedSpace>>,
    /// A catch-up came since the last [`give_back`](ConflictReads::give_back): the kept volumes
    /// hold every row the journal has.
    fresh: bool,
}

/// One volume's conflicts as last read: the last row id, and the rows (ids beside them).
#[derive(Debug)]
struct Kept {
    last: i64,
    ids: Vec<i64>,
    conflicts: Vec<ObservedConflict>,
}

/// At most this many conflicts are kept between decisions (about 100 MiB at worst).
const CONFLICT_READS_MAX: usize = 250_000;

/// At most this many conflicts are read to bring the kept volumes up to date at once; beyond,
/// what was kept is dropped and each volume is read whole when asked.
const CATCH_UP_MAX: usize = 10_000;

impl ConflictReads {
    /// A volume's journaled conflicts with what the rule reads of the cycles they name
    /// (`None`: the journal could not say, logged): only the rows recorded since the last read
    /// of the volume, and the cycles not read since they were last written, are read. The
    /// conflicts are lent until [`give_back`](ConflictReads::give_back).
    pub(super) fn read(&mut self, journal: &Journal, key: &VolumeKey) -> Option<VolumeConflicts> {
        // A kept volume is up to date right after a catch-up (no conflict is recorded while a
        // stage's facts are read).
        let current = self.fresh && self.caught_up.is_some() && self.volumes.contains_key(key);
        let (last, mut ids, mut conflicts) = self.take(key);
        let new = if current {
            Vec::new()
        } else {
            match journal.volume_conflicts_after(&key.cluster, &key.svm, &key.volume, last) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("cannot read the conflicts of {key}: {e}");
                    return None;
                }
            }
        };
        let last = new.last().map_or(last, |(id, _)| *id);
        if !new.is_empty() {
            let mut rows: Vec<(i64, ObservedConflict)> = ids.into_iter().zip(conflicts).collect();
            rows.extend(new);
            // The journal's order: by instant, then as recorded.
            rows.sort_by_key(|(id, c)| (c.at, *id));
            (ids, conflicts) = rows.into_iter().unzip();
        }
        self.lend(key.clone(), last, ids);
        let mut cycles = CycleEnds::default();
        for id in conflicts.iter().filter_map(|c| c.cycle.as_deref()) {
            if cycles.contains_key(id) {
                continue;
            }
            let end = match self.ends.get(id) {
                Some(end) => *end,
                None => match journal.cycle_end(id) {
                    Ok(Some(end)) => {
                        self.keep_end(id, end);
                        end
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::error!(
                            "cannot read cycle {id}, which a conflict of {key} names: {e}"
                        );
                        return None;
                    }
                },
            };
            cycles.insert(id.to_string(), end);
        }
        Some(VolumeConflicts {
            conflicts,
            cycles,
            locked_space: Vec::new(),
            raised: None,
        })
    }

    /// What was kept for `key` (taken out): the last row id, the row ids and the rows, in
    /// journal order.
    fn take(&mut self, key: &VolumeKey) -> (i64, Vec<i64>, Vec<ObservedConflict>) {
        match self.volumes.remove(key) {
            Some(k) => {
                self.rows -= k.conflicts.len();
                (k.last, k.ids, k.conflicts)
            }
            None => (0, Vec::new(), Vec::new()),
        }
    }

    /// Notes that the rows of `key` read up to `last` (with their `ids`) are lent to facts.
    fn lend(&mut self, key: VolumeKey, last: i64, ids: Vec<i64>) {
        self.lent.insert(key, (last, ids));
    }

    /// Keeps the conflicts (and the locked space) a stage's facts were lent, for the next
    /// decision.
    pub(super) fn give_back(&mut self, facts: BTreeMap<VolumeKey, VolumeConflicts>) {
        for (key, found) in facts {
            if self.lent_space.remove(&key) {
                self.keep_space(key.clone(), found.locked_space);
            }
            let Some((last, ids)) = self.lent.remove(&key) else {
                continue;
            };
            let conflicts = found.conflicts;
            if ids.len() == conflicts.len() && self.rows + conflicts.len() <= CONFLICT_READS_MAX {
                self.rows += conflicts.len();
                self.volumes.insert(
                    key,
                    Kept {
                        last,
                        ids,
                        conflicts,
                    },
                );
            }
        }
        self.lent.clear();
        self.lent_space.clear();
        self.fresh = false;
    }

    /// Brings every kept volume up to date with the conflicts recorded since the last call, in
    /// one read of the journal (what [`read`](ConflictReads::read) then answers without asking
    /// it again); call it before a stage's reads.
    pub(super) fn catch_up(&mut self, journal: &Journal) {
        let mark = match self.caught_up {
            Some(mark) => mark,
            None => match self.volumes.values().map(|k| k.last).min() {
                Some(mark) => mark,
                // Nothing kept: nothing to bring up to date before the last row.
                None => {
                    self.caught_up = journal.last_conflict_id().ok();
                    return;
                }
            },
        };
        let rows = match journal.conflicts_after(mark, CATCH_UP_MAX + 1) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("cannot read the conflicts recorded lately: {e}");
                self.caught_up = None;
                return;
            }
        };
        if rows.len() > CATCH_UP_MAX {
            self.volumes.clear();
            self.rows = 0;
            self.caught_up = journal.last_conflict_id().ok();
            return;
        }
        let mut added: HashSet<VolumeKey> = HashSet::default();
        let mut last = mark;
        for (id, c) in rows {
            last = id;
            let key = VolumeKey::new(&c.cluster, &c.svm, &c.volume);
            if let Some(k) = self.volumes.get_mut(&key) {
                if id > k.last {
                    k.last = id;
                    k.ids.push(id);
                    k.conflicts.push(c);
                    self.rows += 1;
                    added.insert(key);
                }
            }
        }
        for key in added {
            if let Some(k) = self.volumes.get_mut(&key) {
                // The journal's order: by instant, then as recorded.
                let mut rows: Vec<(i64, ObservedConflict)> = std::mem::take(&mut k.ids)
                    .into_iter()
                    .zip(std::mem::take(&mut k.conflicts))
                    .collect();
                rows.sort_by_key(|(id, c)| (c.at, *id));
                (k.ids, k.conflicts) = rows.into_iter().unzip();
            }
        }
        self.caught_up = Some(last);
        self.fresh = true;
    }

    /// The space the locked backing snapshots of `key` hold, as the journal says: read once,
    /// then kept and changed as the agent records sizes through here; lent until
    /// [`give_back`](ConflictReads::give_back).
    pub(super) fn locked_space(
        &mut self,
        journal: &Journal,
        key: &VolumeKey,
    ) -> Result<Vec<LockedSpace>, JournalError> {
        let space = match self.space.remove(key) {
            Some(kept) => kept,
            None => journal.volume_locked_space(&key.cluster, &key.svm, &key.volume)?,
        };
        self.lent_space.insert(key.clone());
        Ok(space)
    }

    fn keep_space(&mut self, key: VolumeKey, space: Vec<LockedSpace>) {
        if self.space.len() >= CONFLICT_READS_MAX {
            self.space.clear();
        }
        self.space.insert(key, space);
    }

    /// Records the space a locked cycle's backing snapshot holds (through here, so that what is
    /// kept of its volume stays what the journal holds): a cycle already kept for the volume is
    /// changed in place as the journal changes its row (its size and instant, when the size
    /// differs), a cycle new to it is added as the journal adds it, and a failed write has the
    /// volume read again. (A cycle's locked space is always recorded with the cycle's own
    /// volume.)
    pub(super) fn record_locked_space(
        &mut self,
        journal: &Journal,
        space: &LockedSpace,
    ) -> Result<(), JournalError> {
        let key = VolumeKey::new(&space.cluster, &space.svm, &space.volume);
        let written = journal.record_locked_space(space);
        match (&written, self.space.get_mut(&key)) {
            (Ok(()), Some(kept)) => {
                let (bytes, at) = space.journaled();
                // Kept as the journal reads them: by cycle id.
                match kept.binary_search_by(|l| l.cycle_id.as_str().cmp(&space.cycle_id)) {
                    Ok(i) => {
                        if kept[i].bytes != bytes {
                            kept[i].bytes = bytes;
                            kept[i].at = at;
                        }
                    }
                    Err(i) => kept.insert(
                        i,
                        LockedSpace {
                            bytes,
                            at,
                            ..space.clone()
                        },
                    ),
                }
            }
            (Ok(()), None) => {}
            (Err(_), _) => {
                self.space.remove(&key);
            }
        }
        written
    }

    fn keep_end(&mut self, id: &str, end: CycleEnd) {
        if self.ends.len() >= CONFLICT_READS_MAX {
            self.ends.clear();
        }
        self.ends.insert(id.to_string(), end);
    }

    /// Brings what was read of cycles up to date with the journal's writes since the last call:
    /// a cycle written is kept with the end the journal now holds, or forgotten when the write
    /// did not take effect.
    pub(super) fn follow_writes(&mut self, journal: &Journal) {
        let (mark, written) = journal.cycles_written_since(self.mark);
        self.mark = mark;
        match written {
            Written::Cycles(writes) => {
                for (id, end) in writes {
                    match end {
                        Some(end) => self.keep_end(&id, end),
                        None => {
                            self.ends.remove(&id);
                        }
                    }
                }
            }
            Written::Any => self.ends.clear(),
        }
    }

    /// Notes a conflict this agent just recorded as row `id`. When it is the row right after
    /// those every kept volume holds, it joins its volume's kept rows (when kept) and the next
    /// [`catch_up`](ConflictReads::catch_up) starts after it; otherwise that catch-up reads it.
    pub(super) fn recorded(&mut self, id: i64, c: &ObservedConflict) {
        if self.caught_up != id.checked_sub(1) || !self.lent.is_empty() {
            return;
        }
        self.caught_up = Some(id);
        let key = VolumeKey::new(&c.cluster, &c.svm, &c.volume);
        let Some(k) = self.volumes.get_mut(&key) else {
            return;
        };
        if id <= k.last {
            return;
        }
        // The journal's order: by instant, then as recorded.
        let at = k.conflicts.partition_point(|kept| kept.at <= c.at);
        k.last = id;
        k.ids.insert(at, id);
        k.conflicts.insert(at, c.clone());
        self.rows += 1;
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeDelta, Utc};

    use super::*;
    use crate::agent::cycle::{CloneKind, ConflictKind, Cycle, CycleState};

    fn key(volume: &str) -> VolumeKey {
        VolumeKey {
            cluster: "c".into(),
            svm: "svm1".into(),
            volume: volume.into(),
        }
    }

    /// The volume's conflicts and the ends of the cycles they name, read whole from the journal
    /// (every row, every named cycle's whole record), as a reader keeping nothing would.
    fn whole(j: &Journal, volume: &str) -> (Vec<ObservedConflict>, CycleEnds) {
        let conflicts = j.volume_conflicts("c", "svm1", volume).unwrap();
        let mut ends = CycleEnds::default();
        for id in conflicts.iter().filter_map(|c| c.cycle.as_deref()) {
            if let Some(c) = j.cycle(id).unwrap() {
                ends.insert(id.to_string(), CycleEnd::from(&c));
            }
        }
        (conflicts, ends)
    }

    /// Random journals written as the agent writes them — cycles inserted, released, reopened,
    /// switched to FlexClone, conflicts recorded (naming a cycle, a cycle never journaled, or
    /// none), a prune now and then — with decisions in between: each read of a volume gives
    /// what reading it whole gives at that moment.
    #[test]
    fn what_is_kept_between_decisions_is_what_the_journal_says_at_each() {
        let volumes = ["v", "w", "x"];
        // Decisions that named a FlexClone cycle, and a released one: the cases kept ends change.
        let (mut flexclone, mut released) = (0, 0);
        // Prunes that deleted no conflict nor locked space: what was kept stays.
        let mut prunes_kept = 0;
        for seed in 1..=12u64 {
            let dir = tempfile::tempdir().unwrap();
            let j = Journal::open(dir.path()).unwrap();
            let mut reads = ConflictReads::default();
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut next = |n: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % n
            };
            let start: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().unwrap();
            let mut cycles: Vec<Cycle> = Vec::new();
            let mut decisions = 0;
            let mut spaces = 0;
            let mut noted = 0;
            let mut kept_through = 0;
            for step in 0..400i64 {
                let at = start + TimeDelta::minutes(10 * step);
                match next(10) {
                    0 | 1 => {
                        let mut c = Cycle::sample(&format!("y{step}"), at);
                        c.volume = volumes[next(3) as usize].into();
                        assert!(j.insert_cycle(&c, at).unwrap());
                        cycles.push(c);
                    }
                    2 | 3 if !cycles.is_empty() => {
                        let i = next(cycles.len() as u64) as usize;
                        let c = &mut cycles[i];
                        match next(3) {
                            0 => {
                                c.state = CycleState::Released;
                                // Finer than the millisecond the journal keeps.
                                c.released_at =
                                    Some(at + TimeDelta::microseconds(next(1000) as i64));
                            }
                            1 => {
                                c.state = CycleState::Releasing;
                                c.released_at = None;
                            }
                            _ => c.clone_kind = CloneKind::FlexClone,
                        }
                        j.update_cycle(c).unwrap();
                    }
                    4..=6 => {
                        let named = match next(5) {
                            0 => None,
                            1 => Some("never-journaled".to_string()),
                            _ if cycles.is_empty() => None,
                            _ => Some(cycles[next(cycles.len() as u64) as usize].id.clone()),
                        };
                        let kinds = [
                            ConflictKind::Locked,
                            ConflictKind::ChainConflict,
                            ConflictKind::LateRelease,
                        ];
                        let conflict = ObservedConflict {
                            kind: kinds[next(3) as usize],
                            cluster: "c".into(),
                            svm: "svm1".into(),
                            volume: volumes[next(3) as usize].into(),
                            window: Some("w".into()),
                            cycle: named,
                            // Now and then recorded late, before conflicts already read.
                            at: at - TimeDelta::minutes(10 * next(4) as i64),
                            detail: String::new(),
                            key: format!("k{step}"),
                        };
                        let row = j.record_conflict_row(&conflict).unwrap().expect("new key");
                        // As the agent notes what it records; now and then not (a row the
                        // next catch-up must read).
                        if next(5) > 0 {
                            reads.recorded(row, &conflict);
                            noted += 1;
                        }
                    }
                    8 if next(2) == 0 && !cycles.is_empty() => {
                        // A locked cycle's size, recorded the way the agent records it.
                        let c = &cycles[next(cycles.len() as u64) as usize];
                        let space = LockedSpace {
                            cycle_id: c.id.clone(),
                            cluster: c.cluster.clone(),
                            svm: c.svm.clone(),
                            volume: c.volume.clone(),
                            snapshot: c.backing_snapshot.clone(),
                            // Now and then a size the journal clamps, and an instant finer
                            // than the millisecond it keeps.
                            bytes: if next(16) == 0 {
                                u64::MAX - next(2)
                            } else {
                                4096 * (1 + next(4))
                            },
                            at: at + TimeDelta::microseconds(next(1000) as i64),
                        };
                        reads.record_locked_space(&j, &space).unwrap();
                        spaces += 1;
                    }
                    7 if next(8) == 0 => {
                        // The pass clears what it keeps when a prune deleted conflicts or
                        // locked space; cycles alone the journal's record of writes covers.
                        let cut = at - TimeDelta::hours(if next(2) == 0 { 12 } else { 40 });
                        let pruned = j.prune(cut).unwrap();
                        if pruned.conflicts > 0 || pruned.locked_space > 0 {
                            reads = ConflictReads::default();
                        } else {
                            kept_through += 1;
                        }
                        cycles.retain(|c| j.cycle(&c.id).unwrap().is_some());
                    }
                    _ => {
                        reads.follow_writes(&j);
                        // As the pass does, but not always: a read without one still holds.
                        if next(4) > 0 {
                            reads.catch_up(&j);
                        }
                        let mut facts = BTreeMap::new();
                        for v in volumes.iter().filter(|_| next(3) > 0) {
                            let mut found = reads.read(&j, &key(v)).expect("the journal answers");
                            let (conflicts, ends) = whole(&j, v);
                            assert_eq!(found.conflicts, conflicts, "seed {seed} step {step} {v}");
                            assert_eq!(found.cycles, ends, "seed {seed} step {step} {v}");
                            // Asked for a volume in force, as the stage does: not always.
                            if decisions % 3 != 2 {
                                let space = reads.locked_space(&j, &key(v)).unwrap();
                                let whole = j.volume_locked_space("c", "svm1", v).unwrap();
                                assert_eq!(space, whole, "seed {seed} step {step} {v}");
                                found.locked_space = space;
                            }
                            decisions += 1;
                            flexclone += usize::from(ends.values().any(|e| e.flexclone));
                            released += usize::from(ends.values().any(|e| e.released_at.is_some()));
                            facts.insert(key(v), found);
                        }
                        reads.give_back(facts);
                    }
                }
            }
            assert!(decisions > 100, "seed {seed}: {decisions} decisions");
            assert!(spaces > 5, "seed {seed}: {spaces} sizes recorded");
            assert!(noted > 50, "seed {seed}: {noted} recorded conflicts noted");
            prunes_kept += kept_through;
        }
        assert!(flexclone > 100 && released > 100, "{flexclone} {released}");
        assert!(prunes_kept > 5, "{prunes_kept} prunes kept what was read");
    }
}
