//! Time: advancing the clock fires due schedules in order, with rotation and housekeeping.

use chrono::{DateTime, TimeDelta, Utc};

use super::snapshots::NewSnap;
use super::{ClockEvent, LockedOldest, NamingScheme, World};

/// The longest single clock advance, in seconds: 366 days, so one call covers a full (leap) year
/// of every schedule while the work and memory of one call stay bounded. Longer spans take
/// several calls.
pub const MAX_ADVANCE_SECONDS: i64 = 366 * 86_400;

/// What one advance did: counts per event kind, and the first events up to a cap.
///
/// Invariant: `events.len() + omitted == taken + deleted + skipped`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClockSummary {
    pub taken: u64,
    pub deleted: u64,
    pub skipped: u64,
    /// The first events in time order, at most the cap the caller gave.
    pub events: Vec<ClockEvent>,
    /// Events counted but not kept (over the cap).
    pub omitted: u64,
}

impl ClockSummary {
    fn record(&mut self, event: ClockEvent, cap: usize) {
        let count = match event.kind {
            "taken" => &mut self.taken,
            "deleted" => &mut self.deleted,
            _ => &mut self.skipped,
        };
        *count = count.saturating_add(1);
        if self.events.len() < cap {
            self.events.push(event);
        } else {
            self.omitted = self.omitted.saturating_add(1);
        }
    }
}

/// A duration in seconds from a knob or fault (bounded by validation; saturating regardless).
pub(super) fn seconds(s: u64) -> TimeDelta {
    i64::try_from(s)
        .ok()
        .and_then(TimeDelta::try_seconds)
        .unwrap_or(TimeDelta::MAX)
}

/// `t + d`, or the latest representable instant when that overflows.
pub(super) fn saturating_add(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl World {
    // ----- time -----

    /// Moves time forward to `to`, taking every due scheduled snapshot in time order (ties: cluster,
    /// volume, then policy order). Returns every event. Does nothing when `to <= now`.
    /// In-process callers only: the REST API uses [`World::advance_summarized`], which keeps
    /// memory bounded.
    pub fn advance_to(&mut self, to: DateTime<Utc>) -> Vec<ClockEvent> {
        self.advance_summarized(to, usize::MAX).events
    }

    /// [`World::advance_to`], keeping the counts and at most `cap` events. Costs what fires:
    /// the instants due come from `due` in order (ties: cluster, volume, then policy order).
    pub fn advance_summarized(&mut self, to: DateTime<Utc>, cap: usize) -> ClockSummary {
        let mut summary = ClockSummary::default();
        let mut events = Vec::new();
        // Firing never adds or removes volumes or policies, so (cluster, volume, copy) indices
        // stay valid for the whole walk.
        while self.due.first().is_some_and(|(at, ..)| *at <= to) {
            let Some((at, ci, vi, k)) = self.due.pop_first() else {
                break;
            };
            self.now = at;
            self.fire(ci, vi, k, &mut events);
            for event in events.drain(..) {
                summary.record(event, cap);
            }
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
            if let Some(next) = next {
                self.due.insert((next, ci, vi, k));
            }
        }
        if to > self.now {
            self.now = to;
        }
        self.housekeeping();
        summary
    }

    /// Drops expired jobs and finished block sharing.
    fn housekeeping(&mut self) {
        let now = self.now;
        let keep = seconds(self.knobs.job_retention_seconds);
        for c in &mut self.clusters {
            c.jobs.retain(|j| now < saturating_add(j.end, keep));
            c.block_sharing.retain(|_, sharing| {
                sharing.retain(|b| now < b.until);
                !sharing.is_empty()
            });
        }
    }

    fn fire(&mut self, ci: usize, vi: usize, k: usize, events: &mut Vec<ClockEvent>) {
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
        let ordinal = v.naming == NamingScheme::Ordinal;
        let (name, checked) = scheduled_names(ordinal, &prefix, &local);
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
        let count = usize::try_from(copy.count.max(1)).unwrap_or(usize::MAX);
        // Owners are only possible with clones of this volume around; skip the lookup otherwise
        // (fast path).
        let maybe_locked = c.clone_children.contains_key(&v.uuid)
            || !v.restore_clones.is_empty()
            || c.block_sharing.contains_key(&v.uuid)
            || v.snapshots.iter().any(|s| !s.held_by.is_empty());
        let pins = maybe_locked.then(|| self.pins(ci, Some(vi))); // once for all of `ours`
        let locked: Vec<bool> = ours
            .iter()
            .map(|&i| {
                self.snaplocked(ci, vi, i)
                    || pins
                        .as_ref()
                        .is_some_and(|p| !self.owners_with(p, (ci, vi, i)).is_empty())
            })
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
        if let Err(err) = self.check_can_snapshot(ci, vi, &checked) {
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
        let taken_snapshot = NewSnap {
            name: &name,
            comment: None,
            snapmirror_label: copy.snapmirror_label.clone(),
            schedule_prefix: Some(prefix),
        };
        if ordinal {
            self.rename_previous_ordinal(ci, vi, taken_snapshot.schedule_prefix.as_deref());
        }
        let si = self.push_snapshot(ci, vi, taken_uuid, taken_snapshot);
        self.lock_for_retention(ci, vi, si, copy.retention_period);
        events.push(taken);
    }

    /// On a volume with snapshot locking, a scheduled snapshot is tamper-proof for its copy's
    /// `retention_period`.
    fn lock_for_retention(&mut self, ci: usize, vi: usize, si: usize, period: Option<TimeDelta>) {
        let now = self.now;
        let v = &mut self.clusters[ci].volumes[vi];
        if v.snapshot_locking {
            v.snapshots[si].snaplock_expiry = period.map(|r| saturating_add(now, r));
        }
    }

    /// Ordinal naming: the newest scheduled snapshot of `prefix` is `<prefix>.0`; when a new one
    /// takes that name, the previous `.0` gets the create-time name of its own creation
    /// (`<prefix>.<YYYY-MM-DD_HHMM>`, cluster-local), as ONTAP's `ordinal` scheme describes it
    /// (NetApp's Python client, `resources/volume.py`, `scheduled_snapshot_naming_scheme`).
    fn rename_previous_ordinal(&mut self, ci: usize, vi: usize, prefix: Option<&str>) {
        let Some(prefix) = prefix else { return };
        let tz = self.clusters[ci].tz;
        let zero = format!("{prefix}.0");
        let v = &mut self.clusters[ci].volumes[vi];
        if let Some(s) = v
            .snapshots
            .iter_mut()
            .find(|s| s.name == zero && s.schedule_prefix.as_deref() == Some(prefix))
        {
            let local = s.create_time.with_timezone(&tz);
            s.name = format!("{prefix}.{}", local.format("%Y-%m-%d_%H%M"));
        }
    }
}

/// The name a scheduled snapshot of `prefix` taken at `local` gets, and the name the take is
/// checked with: `<prefix>.<YYYY-MM-DD_HHMM>` for both, but under ordinal naming the snapshot
/// is `<prefix>.0` (the previous `.0` is renamed first, so `.0` is always taken and the check
/// uses the create-time name).
fn scheduled_names(
    ordinal: bool,
    prefix: &str,
    local: &DateTime<chrono_tz::Tz>,
) -> (String, String) {
    let timed = format!("{prefix}.{}", local.format("%Y-%m-%d_%H%M"));
    if ordinal {
        (format!("{prefix}.0"), timed)
    } else {
        (timed.clone(), timed)
    }
}
