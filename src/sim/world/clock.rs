//! Time: advancing the clock fires due schedules in order, with rotation and housekeeping.

use chrono::{DateTime, TimeDelta, Utc};

use super::{ClockEvent, LockedOldest, World};

impl World {
    // ----- time -----

    /// Moves time forward to `to`, taking every due scheduled snapshot in time order (ties: cluster,
    /// volume, then policy order). Returns what happened. Does nothing when `to <= now`.
    pub fn advance_to(&mut self, to: DateTime<Utc>) -> Vec<ClockEvent> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut events = Vec::new();
        // Firing never adds or removes volumes or policies, so (cluster, volume, copy) indices
        // stay valid for the whole walk; the heap yields instants in order (ties: cluster,
        // volume, then policy order).
        let mut due = BinaryHeap::new();
        for (ci, c) in self.clusters.iter().enumerate() {
            for (vi, v) in c.volumes.iter().enumerate() {
                for (k, fire) in v.next_fires.iter().enumerate() {
                    if let Some(at) = fire.filter(|at| *at <= to) {
                        due.push(Reverse((at, ci, vi, k)));
                    }
                }
            }
        }
        let volume_clones: Vec<bool> = self
            .clusters
            .iter()
            .map(|c| c.volumes.iter().any(|v| v.clone_parent.is_some()))
            .collect();
        while let Some(Reverse((at, ci, vi, k))) = due.pop() {
            self.now = at;
            self.fire(ci, vi, k, volume_clones[ci], &mut events);
            let c = &self.clusters[ci];
            let v = &c.volumes[vi];
            let next = c
                .policies
                .iter()
                .find(|p| p.name == v.snapshot_policy)
                .and_then(|p| p.copies.get(k))
                .and_then(|copy| c.schedules.iter().find(|s| s.name == copy.schedule))
                .and_then(|s| s.recurrence.next_after(c.tz, at));
            self.clusters[ci].volumes[vi].next_fires[k] = next;
            if let Some(next) = next.filter(|n| *n <= to) {
                due.push(Reverse((next, ci, vi, k)));
            }
        }
        if to > self.now {
            self.now = to;
        }
        self.housekeeping();
        events
    }

    /// Drops expired jobs, finished block sharing and unreferenced SnapRestore clone records.
    fn housekeeping(&mut self) {
        let now = self.now;
        let keep = TimeDelta::seconds(self.knobs.job_retention_seconds as i64);
        for c in &mut self.clusters {
            c.jobs.retain(|j| now < j.end + keep);
            c.block_sharing.retain(|b| now < b.until);
        }
    }

    fn fire(
        &mut self,
        ci: usize,
        vi: usize,
        k: usize,
        volume_clones: bool,
        events: &mut Vec<ClockEvent>,
    ) {
        let now = self.now;
        let c = &self.clusters[ci];
        let v = &c.volumes[vi];
        let Some(copy) = c
            .policies
            .iter()
            .find(|p| p.name == v.snapshot_policy)
            .and_then(|p| p.copies.get(k))
            .cloned()
        else {
            return;
        };
        let prefix = copy.effective_prefix().to_string();
        let local = now.with_timezone(&c.tz);
        let name = format!("{prefix}.{}", local.format("%Y-%m-%d_%H%M"));
        let event =
            |kind, snapshot: &str, uuid: Option<String>, reason: Option<String>| ClockEvent {
                cluster: c.name.clone(),
                volume: v.name.clone(),
                snapshot: snapshot.to_string(),
                kind,
                uuid,
                time: local.fixed_offset(),
                reason,
            };
        // Which existing snapshots of this schedule rotation deletes before the new one is taken.
        let mut ours: Vec<usize> = (0..v.snapshots.len())
            .filter(|&i| v.snapshots[i].schedule_prefix.as_deref() == Some(prefix.as_str()))
            .collect();
        ours.sort_by_key(|&i| v.snapshots[i].create_time);
        let count = copy.count.max(1) as usize;
        // Owners are only possible with clones around; skip the lookup otherwise (fast path).
        let maybe_locked =
            volume_clones || !c.restore_clones.is_empty() || !c.block_sharing.is_empty();
        let locked: Vec<bool> = ours
            .iter()
            .map(|&i| maybe_locked && !self.owners_at((ci, vi, i)).is_empty())
            .collect();
        let mut doomed = Vec::new();
        match self.knobs.locked_oldest {
            LockedOldest::Skip => {
                // Locked snapshots are kept and not counted: the unlocked ones rotate to `count`.
                let unlocked: Vec<usize> = ours
                    .iter()
                    .zip(&locked)
                    .filter(|(_, l)| !**l)
                    .map(|(i, _)| *i)
                    .collect();
                let excess = (unlocked.len() + 1).saturating_sub(count);
                doomed.extend(unlocked.into_iter().take(excess));
            }
            LockedOldest::Stall | LockedOldest::FailCreate => {
                let excess = (ours.len() + 1).saturating_sub(count);
                for (&i, &is_locked) in ours.iter().zip(&locked).take(excess) {
                    if !is_locked {
                        doomed.push(i);
                    } else if self.knobs.locked_oldest == LockedOldest::Stall {
                        break;
                    } else {
                        events.push(event(
                            "skipped",
                            &name,
                            None,
                            Some(format!(
                                "rotation: oldest snapshot {} is locked",
                                v.snapshots[i].name
                            )),
                        ));
                        return;
                    }
                }
            }
        }
        if let Err(err) = self.check_can_snapshot(ci, vi, &name) {
            events.push(event("skipped", &name, None, Some(err.to_string())));
            return;
        }
        let mut deleted = Vec::new();
        for &i in &doomed {
            let s = &v.snapshots[i];
            deleted.push(event("deleted", &s.name, Some(s.uuid.clone()), None));
        }
        let taken_uuid = World::new_uuid();
        let taken = event("taken", &name, Some(taken_uuid.clone()), None);
        let mut doomed_desc = doomed;
        doomed_desc.sort_unstable_by(|a, b| b.cmp(a));
        for i in doomed_desc {
            self.remove_snapshot(ci, vi, i);
        }
        events.extend(deleted);
        self.push_snapshot(ci, vi, taken_uuid, &name, None, Some(prefix));
        events.push(taken);
    }
}
