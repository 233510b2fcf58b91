//! Applying a stage's actions: journal writes, metrics and logs, the executor's creates and
//! releases (each batch run concurrently, bounded per cluster), hooks and tools started. No
//! choice is made here that the decision did not make; a journal write that fails is logged
//! with its context and counted (the journal's health makes `/readyz` fail until a write
//! succeeds again).

use chrono::{DateTime, Utc};

use super::cycle::{ConflictKind, CycleState, ObservedConflict};
use super::decide::{Action, Stage};
use super::journal::{
    self, ActionKind, ActionOutcome, JournalError, LockedSpace, RecommendationEvent,
    RecommendationKind,
};
use super::state::{InForce, Occurrence, Open, Step, VolumeKey};
use super::{recommend, Agent};
use crate::planner::human as planner_human;

/// A stage's creates and releases, run as one concurrent batch each.
#[derive(Default)]
struct Batch {
    creates: Vec<(super::cycle::Cycle, crate::ontap::VolumeRef)>,
    releases: Vec<(String, crate::ontap::VolumeRef, bool)>,
}

impl Agent {
    /// Applies one stage's actions in order; creates and releases run as one concurrent batch
    /// each, after the stage's other actions.
    pub(super) async fn apply(&mut self, stage: Stage, actions: Vec<Action>, now: DateTime<Utc>) {
        if stage == Stage::Start {
            self.memory.excluded.clear();
        }
        if stage == Stage::Managed {
            self.forget_deleted();
        }
        let mut batch = Batch::default();
        for action in actions {
            tracing::debug!(stage = ?stage, "{action}");
            self.apply_one(action, now, &mut batch).await;
        }
        if !batch.creates.is_empty() {
            self.create_all(batch.creates).await;
        }
        if !batch.releases.is_empty() {
            self.release_all(batch.releases, now).await;
        }
    }

    /// One action; a create or a release joins the stage's batch.
    async fn apply_one(&mut self, action: Action, now: DateTime<Utc>, batch: &mut Batch) {
        match action {
            Action::RecordConflict(c) => self.record_conflict(c),
            Action::RecordLockedSpace(space) => self.record_locked_space(space),
            Action::Warn {
                key,
                message,
                orphan,
            } => self.warn_orphan(key, message, orphan),
            Action::Unpinned { cycle } => self.unpin(&cycle),
            Action::ConflictsSeen {
                cycle,
                clones_deleted_at,
                keys,
            } => self.memory.conflicts_seen(&cycle, clones_deleted_at, &keys),
            Action::Reopen {
                cycle,
                uuid,
                seen_at,
            } => self.reopen(&cycle, &uuid, seen_at, now),
            Action::Update { cycle, why } => self.update(cycle, &why),
            Action::Settle { cycle } => self.settle(cycle, now),
            Action::Resume {
                cycle,
                step,
                why,
                orphan,
            } => self.resume(cycle, step, &why, orphan, now),
            Action::Adopt {
                cycle,
                snapshot_uuid,
                clones,
            } => self.adopt(cycle, &snapshot_uuid, &clones, now),
            Action::Exclude { volume, kind, why } => {
                self.warn_once(
                    format!("excluded:{volume}:{why}"),
                    format!("volume {volume} is left out: {why}"),
                );
                self.memory.excluded.push((volume, kind, why));
            }
            Action::Forget { occurrence, .. } => {
                self.memory.started.insert(occurrence);
            }
            Action::Skip { cycle } => self.skip(cycle, now),
            Action::Start {
                mut cycle,
                volume,
                switched,
            } => {
                cycle.id = uuid::Uuid::new_v4().to_string();
                if let Some(key) = switched {
                    self.switched(&key, &cycle.id, now);
                }
                self.memory.started.insert(Occurrence::of_cycle(&cycle));
                log_moved_start(&cycle);
                batch.creates.push((cycle, volume));
            }
            Action::StartTool {
                window,
                cycles,
                resume,
            } => {
                if !resume {
                    cycles.iter().for_each(log_moved_start);
                }
                self.start_tool(&window, cycles, resume, now)
            }
            Action::Arm { at } => self.memory.next_create = at,
            Action::Release {
                cycle,
                volume,
                fresh,
                ..
            } => batch.releases.push((cycle, volume, fresh)),
            Action::Raise {
                volume,
                since,
                evidence,
                locked_bytes,
                licensed,
            } => {
                let f = InForce {
                    since,
                    evidence,
                    locked_bytes,
                    licensed,
                    switched: false,
                };
                self.raise(volume, f);
            }
            Action::Refresh {
                volume,
                evidence,
                locked_bytes,
                licensed,
            } => {
                if let Some(f) = self.memory.recommended.get_mut(&volume) {
                    (f.evidence, f.locked_bytes, f.licensed) = (evidence, locked_bytes, licensed);
                }
            }
            Action::Clear { volume, within } => self.clear(volume, within, now),
            Action::TakeManaged(take) => self.take_managed(*take, now).await,
            Action::Defer { copy, since, why } => self.defer(&copy, since, why),
            Action::Rotate {
                copy,
                volume,
                snapshots,
            } => self.rotate(&copy, &volume, &snapshots, now).await,
            Action::SettleManaged { copy, name, uuid } => {
                self.settle_managed(&copy, &name, uuid.as_deref())
            }
            Action::ArmManaged { at } => self.memory.next_managed = at,
        }
    }

    /// Something looks like snapwarden's but is not (counted once as an ignored orphan).
    fn warn_orphan(&mut self, key: String, message: String, orphan: Option<&'static str>) {
        if let Some(kind) = orphan {
            self.metrics.orphan(kind, "ignored", &key);
        }
        self.warn_once(key, message);
    }

    /// A due managed snapshot waits for a clone to go.
    fn defer(&mut self, copy: &super::managed::CopyKey, since: DateTime<Utc>, why: String) {
        tracing::info!(
            cluster = %copy.volume.cluster, svm = %copy.volume.svm, volume = %copy.volume.volume,
            "managed snapshot of {copy} due at {} waits: {why}", since.to_rfc3339()
        );
        self.state(copy).waiting = Some((since, why));
    }

    /// A locked cycle's pins are gone: its release is tried again.
    fn unpin(&mut self, id: &str) {
        if let Some(o) = self.memory.open.get_mut(id) {
            if let Step::Locked { retry, .. } = o.step {
                o.step = Step::Locked {
                    unpinned: true,
                    retry,
                };
            }
        }
    }

    /// A cycle's new record, journaled and kept.
    fn update(&mut self, cycle: super::cycle::Cycle, why: &str) {
        let r = self.ctx.journal.update_cycle(&cycle);
        self.journaled(r, || format!("cycle {}", cycle.id));
        tracing::info!(
            cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
            window = %cycle.window, cycle = %cycle.id, snapshot = %cycle.backing_snapshot,
            "{why}"
        );
        if let Some(o) = self.memory.open.get_mut(&cycle.id) {
            o.cycle = cycle;
        }
    }

    /// A driver cycle ends: its last record journaled, kept as recent.
    fn settle(&mut self, cycle: super::cycle::Cycle, now: DateTime<Utc>) {
        let r = self.ctx.journal.update_cycle(&cycle);
        self.journaled(r, || format!("cycle {}", cycle.id));
        tracing::info!(
            cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
            window = %cycle.window, cycle = %cycle.id, snapshot = %cycle.backing_snapshot,
            state = cycle.state.as_str(),
            result = cycle.result.map_or("completed", |r| r.as_str()),
            "driver cycle settled: {}", cycle.detail
        );
        self.memory.open.remove(&cycle.id);
        self.remember(cycle, now);
    }

    /// A FlexClone recommendation raised: metric, journal, log.
    fn raise(&mut self, volume: VolumeKey, f: InForce) {
        self.metrics
            .set_flexclone_recommended(&volume.cluster, &volume.svm, &volume.volume, true);
        self.journal_recommendation(
            &volume,
            RecommendationKind::Raised,
            f.since,
            f.evidence.clone(),
        );
        tracing::warn!(cluster = %volume.cluster, svm = %volume.svm, volume = %volume.volume,
            "FlexClone recommended: {}", f.evidence);
        self.memory.recommended.insert(volume, f);
    }

    /// A FlexClone recommendation cleared: metric, journal, log.
    fn clear(&mut self, volume: VolumeKey, within: chrono::TimeDelta, now: DateTime<Utc>) {
        self.memory.recommended.remove(&volume);
        self.metrics
            .set_flexclone_recommended(&volume.cluster, &volume.svm, &volume.volume, false);
        self.journal_recommendation(&volume, RecommendationKind::Cleared, now, String::new());
        tracing::info!(cluster = %volume.cluster, svm = %volume.svm, volume = %volume.volume,
            "FlexClone recommendation cleared: no counting conflict for {}",
            planner_human(within));
    }

    /// Snapshots a rotation deleted that the listings no longer show need no remembering.
    fn forget_deleted(&mut self) {
        let views = &self.views;
        let conns = &self.conns;
        for (key, state) in self.memory.managed.iter_mut() {
            // A volume's own snapshots, a handful: looked through, not indexed.
            let listed: Vec<&crate::ontap::Uuid> = conns
                .iter()
                .position(|c| c.name == key.volume.cluster)
                .and_then(|ci| views[ci].inventory.as_ref())
                .map(|inv| {
                    inv.volume_snapshots(&key.volume.svm, &key.volume.volume)
                        .map(|s| &s.uuid)
                        .collect()
                })
                .unwrap_or_default();
            state
                .deleted
                .retain(|uuid| listed.iter().any(|u| **u == *uuid));
        }
    }

    /// A journal call's result: the value, or `None` with the failure logged with `what` it was
    /// about (the journal counts the failure itself).
    pub(super) fn journaled<T>(
        &self,
        r: Result<T, JournalError>,
        what: impl FnOnce() -> String,
    ) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!("journal write failed for {}: {e}", what());
                None
            }
        }
    }

    pub(super) fn warn_once(&mut self, key: String, message: String) {
        if self.memory.warned.insert(key) {
            tracing::warn!("{message}");
        }
    }

    /// Journals a conflict once; a new one is counted, logged, and makes its volume's
    /// recommendation be decided again when it counts.
    pub(super) fn record_conflict(&mut self, c: ObservedConflict) {
        if self.memory.recorded.contains(&c.key) {
            return;
        }
        let recorded = self.ctx.journal.record_conflict_row(&c);
        if recorded.is_ok() {
            self.memory.recorded.insert(c.key.clone());
        }
        match recorded {
            Ok(Some(row)) => {
                self.conflict_reads.recorded(row, &c);
                self.metrics
                    .conflict(&self.policy, &c.cluster, &c.svm, &c.volume, c.kind);
                if recommend::counts(c.kind) {
                    self.memory
                        .reconsider
                        .insert(VolumeKey::new(&c.cluster, &c.svm, &c.volume));
                }
                tracing::warn!(
                    kind = c.kind.as_str(), cluster = %c.cluster, svm = %c.svm, volume = %c.volume,
                    window = c.window.as_deref().unwrap_or(""),
                    cycle = c.cycle.as_deref().unwrap_or(""),
                    "conflict: {}", c.detail
                );
            }
            Ok(None) => {}
            Err(e) => tracing::error!(
                kind = c.kind.as_str(), cluster = %c.cluster, svm = %c.svm, volume = %c.volume,
                "journal write failed for a conflict ({}): {e}", c.key
            ),
        }
    }

    /// The space a locked backing snapshot holds, unless the journal has this very size.
    fn record_locked_space(&mut self, space: LockedSpace) {
        if self.memory.locked_sizes.get(&space.cycle_id) == Some(&space.bytes) {
            return;
        }
        let r = self
            .conflict_reads
            .record_locked_space(&self.ctx.journal, &space);
        let what = || format!("the space of locked cycle {}", space.cycle_id);
        if self.journaled(r, what).is_some() {
            self.memory.locked_sizes.insert(space.cycle_id, space.bytes);
        }
    }

    /// A cycle that ended: counted, and kept as recent.
    pub(super) fn remember(&mut self, cycle: super::cycle::Cycle, now: DateTime<Utc>) {
        self.metrics.cycle_ended(&cycle, now);
        self.memory.remember(cycle, now);
    }

    /// A released cycle's backing snapshot is still listed after its release: release it again.
    fn reopen(&mut self, id: &str, uuid: &str, seen_at: DateTime<Utc>, now: DateTime<Utc>) {
        let Some(mut c) = self.memory.recent.remove(id) else {
            return;
        };
        self.metrics.cycle_reopened(&c.id);
        self.metrics
            .orphan("snapshot", "released", &format!("{id}:{seen_at}"));
        tracing::error!(
            cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
            snapshot = %c.backing_snapshot, cycle = %c.id,
            "backing snapshot still exists after its release (listing at {}): releasing it again",
            seen_at.to_rfc3339()
        );
        let r = self.ctx.journal.set_object(
            &c.id,
            journal::ObjectKind::Snapshot,
            &c.backing_snapshot,
            Some(uuid),
            journal::ObjectState::Created,
            now,
        );
        self.journaled(r, || format!("the reopened snapshot of cycle {id}"));
        c.state = CycleState::Releasing;
        c.released_at = None;
        let r = self.ctx.journal.update_cycle(&c);
        self.journaled(r, || format!("cycle {id}"));
        let open = Open {
            cycle: c,
            step: Step::Release,
            settle_after: None,
        };
        self.memory.open.insert(id.to_string(), open);
    }

    /// Recovery: a cycle the journal left open gets its step (and its record, when changed).
    fn resume(
        &mut self,
        cycle: super::cycle::Cycle,
        step: Step,
        why: &str,
        orphan: bool,
        now: DateTime<Utc>,
    ) {
        if !why.is_empty() {
            tracing::warn!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, cycle = %cycle.id, "{why}"
            );
        }
        let changed = self
            .memory
            .open
            .get(&cycle.id)
            .is_none_or(|o| o.cycle != cycle);
        if changed {
            let r = self.ctx.journal.update_cycle(&cycle);
            self.journaled(r, || format!("cycle {}", cycle.id));
        }
        if orphan {
            self.metrics.orphan("cycle", "released", &cycle.id);
        }
        let open = Open {
            cycle,
            step,
            settle_after: Some(now),
        };
        self.memory.open.insert(open.cycle.id.clone(), open);
    }

    /// A new leader journals a cycle another replica left on ONTAP as its own, then releases it.
    fn adopt(
        &mut self,
        cycle: super::cycle::Cycle,
        snapshot_uuid: &str,
        clones: &[(super::cycle::CloneLun, String)],
        now: DateTime<Utc>,
    ) {
        let id = cycle.id.clone();
        match self.ctx.journal.insert_cycle(&cycle, now) {
            Ok(true) => {}
            Ok(false) => {
                self.warn_once(
                    format!("adopt:{id}"),
                    format!(
                        "cluster {}: backing snapshot {} on volume {} (svm {}) of cycle {id} cannot be adopted: this journal already holds a cycle for that occurrence; never touched",
                        cycle.cluster, cycle.backing_snapshot, cycle.volume, cycle.svm
                    ),
                );
                return;
            }
            Err(e) => {
                tracing::error!("journal write failed for adopted cycle {id}: {e}");
                return;
            }
        }
        let r = self.ctx.journal.set_object(
            &id,
            journal::ObjectKind::Snapshot,
            &cycle.backing_snapshot,
            Some(snapshot_uuid),
            journal::ObjectState::Created,
            now,
        );
        self.journaled(r, || format!("the snapshot of adopted cycle {id}"));
        for (lun, uuid) in clones {
            let r = self.ctx.journal.set_object(
                &id,
                journal::ObjectKind::Lun,
                &lun.path,
                Some(uuid),
                journal::ObjectState::Created,
                now,
            );
            self.journaled(r, || format!("clone {} of adopted cycle {id}", lun.path));
        }
        let r = self.ctx.journal.record_action(
            Some(&id),
            now,
            ActionKind::Adopt,
            &cycle.backing_snapshot,
            ActionOutcome::Ok,
            &cycle.detail,
        );
        self.journaled(r, || format!("the adoption of cycle {id}"));
        tracing::warn!(
            cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
            window = %cycle.window, snapshot = %cycle.backing_snapshot, cycle = %id,
            clones = clones.len(),
            "cycle left by the previous leader adopted from ONTAP: releasing it"
        );
        self.metrics.orphan("cycle", "adopted", &id);
        self.memory.started.insert(Occurrence::of_cycle(&cycle));
        let open = Open {
            cycle,
            step: Step::Release,
            settle_after: None,
        };
        self.memory.open.insert(id, open);
    }

    /// An occurrence that does not run: journaled as a skipped cycle with its reason, and as a
    /// `skipped` conflict.
    fn skip(&mut self, mut cycle: super::cycle::Cycle, now: DateTime<Utc>) {
        cycle.id = uuid::Uuid::new_v4().to_string();
        let inserted = self.ctx.journal.insert_cycle(&cycle, now);
        if let Some(true) = self.journaled(inserted, || format!("skipped cycle {}", cycle.id)) {
            self.metrics.cycle_ended(&cycle, now);
            tracing::info!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, "occurrence {} skipped: {}",
                cycle.window_start.to_rfc3339(), cycle.detail
            );
            self.record_conflict(ObservedConflict {
                kind: ConflictKind::Skipped,
                cluster: cycle.cluster.clone(),
                svm: cycle.svm.clone(),
                volume: cycle.volume.clone(),
                window: Some(cycle.window.clone()),
                cycle: Some(cycle.id.clone()),
                at: cycle.window_start,
                detail: cycle.detail.clone(),
                key: format!("skipped:{}", cycle.id),
            });
        }
        self.memory.started.insert(Occurrence::of_cycle(&cycle));
    }

    /// Journals and logs (once per recommendation) a volume's switch to FlexClone.
    fn switched(&mut self, key: &VolumeKey, cycle: &str, now: DateTime<Utc>) {
        let Some(f) = self.memory.recommended.get_mut(key) else {
            return;
        };
        if f.switched {
            return;
        }
        f.switched = true;
        let evidence = format!(
            "use_when_licensed: clone = \"snaprestore\" switched to FlexClone from cycle {cycle}; {}",
            f.evidence
        );
        tracing::warn!(cluster = %key.cluster, svm = %key.svm, volume = %key.volume, cycle = %cycle,
            "FlexClone recommended and licensed: the volume switches to FlexClone (use_when_licensed)");
        self.journal_recommendation(key, RecommendationKind::Switched, now, evidence);
    }

    fn journal_recommendation(
        &self,
        key: &VolumeKey,
        event: RecommendationKind,
        at: DateTime<Utc>,
        evidence: String,
    ) {
        let e = RecommendationEvent {
            cluster: key.cluster.clone(),
            svm: key.svm.clone(),
            volume: key.volume.clone(),
            event,
            at,
            evidence,
        };
        let r = self.ctx.journal.record_recommendation(&e);
        self.journaled(r, || {
            format!("the FlexClone recommendation of {key} ({})", event.as_str())
        });
    }
}

/// Says so when a cycle starts away from its window's configured start (the planner shifted it
/// to fit between scheduled snapshots), with the planner's reason, which is the cycle's detail
/// when it starts.
fn log_moved_start(cycle: &super::cycle::Cycle) {
    if cycle.create_at == cycle.window_start {
        return;
    }
    tracing::info!(
        cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
        window = %cycle.window,
        configured_start = %cycle.window_start.to_rfc3339(),
        start = %cycle.create_at.to_rfc3339(),
        "start moved by the planner: {}", cycle.detail
    );
}
