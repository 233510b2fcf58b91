//! The executor: carries out one cycle's steps against ONTAP exactly as planned — create the
//! backing snapshot, create the clones, later delete the clones and then the snapshot — journaling
//! an intent before every create and the outcome after every call. It makes no choices: when to
//! start, with which clone method and until when are decided before it is called.
//!
//! Safety (C5): it deletes an object only when all three proofs hold — the name carries the
//! policy's prefix, the snapshot's comment carries the marker with this cycle's id, and the
//! journal records the object for this cycle.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Semaphore;

use super::clock::Clock;
use super::cycle::{
    cycle_id_in_comment, snapshot_comment, CloneKind, ConflictKind, Cycle, CycleResult, CycleState,
    ObservedConflict,
};
use super::discovery::Inventory;
use super::journal::{
    ActionKind, ActionOutcome, Journal, JournalError, ObjectKind, ObjectRecord, ObjectState,
};
use super::stage::{self, Stage};
use crate::ha::{LeaderElector, NotLeader};
use crate::ontap::{Ontap, OntapError, VolumeRef, SNAPSHOT_LOCKED};

/// What the executor needs; shared by every cycle of a pass.
pub(crate) struct Ctx {
    pub clock: Arc<dyn Clock>,
    pub journal: Arc<Journal>,
    /// `[agent] snapshot_prefix`.
    pub prefix: String,
    /// With `[ha]`: the election, checked right before every ONTAP mutation.
    pub fence: Option<Arc<dyn LeaderElector>>,
}

/// One cluster as the executor reaches it.
pub(crate) struct ClusterConn {
    pub name: String,
    pub ontap: Arc<dyn Ontap>,
    /// Bounds the ONTAP operations in flight on this cluster (`[agent] concurrency`).
    pub permits: Arc<Semaphore>,
}

impl ClusterConn {
    pub(crate) async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        // The semaphore is never closed.
        self.permits
            .acquire()
            .await
            .expect("cluster semaphore closed")
    }
}

/// The result of a release attempt.
pub(crate) struct Released {
    pub cycle: Cycle,
    pub conflicts: Vec<ObservedConflict>,
    /// Whether another attempt is needed (a step failed or is waiting for a listing).
    pub again: bool,
}

fn log_journal_error(cycle: &Cycle, e: &JournalError) {
    tracing::error!(
        cycle = %cycle.id, window = %cycle.window, cluster = %cycle.cluster,
        svm = %cycle.svm, volume = %cycle.volume,
        "journal write failed: {e}"
    );
}

/// An error that proves the operation was not applied (ONTAP refused it, synchronously or in a
/// failed job); anything else (transport, timeout, 5xx) may have been applied.
pub(crate) fn surely_not_applied(e: &OntapError) -> bool {
    match e {
        OntapError::Api { http_status, .. } => http_status.is_none_or(|s| s < 500),
        OntapError::Auth { .. } => true,
        _ => false,
    }
}

pub(crate) fn is_not_found(e: &OntapError) -> bool {
    matches!(
        e,
        OntapError::Api {
            http_status: Some(404),
            ..
        }
    )
}

impl Ctx {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Right before an ONTAP mutation that is not a cycle's: this replica leads (always true
    /// without `[ha]`).
    pub(crate) fn leads(&self) -> Result<(), NotLeader> {
        match &self.fence {
            Some(elector) => elector.check().map(|_| ()),
            None => Ok(()),
        }
    }

    /// Right before an ONTAP mutation: this replica leads and its lease holds (always true
    /// without `[ha]`).
    fn fence(&self, cycle: &Cycle, what: &str, object: &str) -> Result<(), NotLeader> {
        let Some(elector) = &self.fence else {
            return Ok(());
        };
        elector.check().map(|_| ()).inspect_err(|e| {
            tracing::warn!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, cycle = %cycle.id,
                "{what} {object} not attempted: {e}"
            );
        })
    }

    fn action(
        &self,
        cycle: &Cycle,
        action: ActionKind,
        object: &str,
        outcome: ActionOutcome,
        detail: &str,
    ) {
        if let Err(e) =
            self.journal
                .record_action(Some(&cycle.id), self.now(), action, object, outcome, detail)
        {
            log_journal_error(cycle, &e);
        }
    }

    fn save(&self, cycle: &Cycle) {
        if let Err(e) = self.journal.update_cycle(cycle) {
            log_journal_error(cycle, &e);
        }
    }

    fn set_object(
        &self,
        cycle: &Cycle,
        kind: ObjectKind,
        name: &str,
        uuid: Option<&str>,
        state: ObjectState,
    ) {
        if let Err(e) = self
            .journal
            .set_object(&cycle.id, kind, name, uuid, state, self.now())
        {
            log_journal_error(cycle, &e);
        }
    }

    /// The name carries the prefix: first of the three ownership proofs.
    fn prefixed(&self, name: &str) -> bool {
        name.strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.starts_with('.'))
    }

    fn lun_prefixed(&self, cycle: &Cycle, path: &str) -> bool {
        path.strip_prefix(&format!("/vol/{}/", cycle.volume))
            .is_some_and(|leaf| self.prefixed(leaf))
    }
}

/// Creates a new cycle: journals it with its intents, then the backing snapshot, then each
/// clone. Returns the cycle in its new state (`Backup` when everything exists), or `None` when
/// the journal already holds a cycle for this occurrence.
pub(crate) async fn create(
    ctx: &Ctx,
    conn: &ClusterConn,
    vref: &VolumeRef,
    mut cycle: Cycle,
) -> Option<Cycle> {
    match ctx.journal.insert_cycle(&cycle, ctx.now()) {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            // Without the intent on disk nothing may be created.
            log_journal_error(&cycle, &e);
            return None;
        }
    }
    let permit = conn.permit().await;
    if let Err(e) = ctx.fence(&cycle, "create_snapshot", &cycle.backing_snapshot) {
        drop(permit);
        return Some(snapshot_not_made(ctx, cycle, e.to_string()));
    }
    let comment = snapshot_comment(&cycle.id, &cycle.window);
    let in_stage = stage::enter(Stage::SnapshotCreate, &cycle.backing_snapshot);
    let created = conn
        .ontap
        .create_snapshot(
            vref,
            &crate::ontap::NewSnapshot::new(&cycle.backing_snapshot, &comment),
        )
        .await;
    drop(permit);
    match created {
        Ok(info) if info.comment.as_deref().and_then(cycle_id_in_comment) == Some(&cycle.id) => {
            ctx.set_object(
                &cycle,
                ObjectKind::Snapshot,
                &cycle.backing_snapshot,
                Some(&info.uuid),
                ObjectState::Created,
            );
            cycle.created_at = Some(ctx.now());
            cycle.state = CycleState::Live;
            ctx.save(&cycle);
            ctx.action(
                &cycle,
                ActionKind::CreateSnapshot,
                &cycle.backing_snapshot,
                ActionOutcome::Ok,
                "",
            );
            tracing::info!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, snapshot = %cycle.backing_snapshot, cycle = %cycle.id,
                release_by = %cycle.release_by.to_rfc3339(),
                "created backing snapshot"
            );
        }
        Ok(info) => {
            // A snapshot of that name exists but is not this cycle's: never adopt it.
            let detail = format!(
                "a snapshot named {} already exists on volume {} and is not this cycle's (comment {:?}); not touched",
                cycle.backing_snapshot,
                cycle.volume,
                info.comment.unwrap_or_default()
            );
            return Some(snapshot_not_made(ctx, cycle, detail));
        }
        Err(e) => {
            let detail = super::error_chain(&e);
            if surely_not_applied(&e) {
                return Some(snapshot_not_made(ctx, cycle, detail));
            }
            // It may exist: the release looks it up by name in the next listing.
            return Some(fail(
                ctx,
                cycle,
                CycleState::Releasing,
                detail,
                ActionKind::CreateSnapshot,
            ));
        }
    }
    drop(in_stage);

    for clone in cycle.clones.clone() {
        let permit = conn.permit().await;
        if let Err(e) = ctx.fence(&cycle, "create_clone", &clone.path) {
            drop(permit);
            ctx.set_object(
                &cycle,
                ObjectKind::Lun,
                &clone.path,
                None,
                ObjectState::Absent,
            );
            return Some(fail(
                ctx,
                cycle,
                CycleState::Releasing,
                e.to_string(),
                ActionKind::CreateClone,
            ));
        }
        let in_stage = stage::enter(Stage::CloneCreate, &clone.path);
        let made = {
            let _permit = permit;
            match cycle.clone_kind {
                CloneKind::FlexClone => {
                    conn.ontap
                        .clone_lun_flexclone(
                            vref,
                            &cycle.backing_snapshot,
                            &clone.source,
                            &clone.path,
                        )
                        .await
                }
                CloneKind::SnapRestore => {
                    conn.ontap
                        .clone_lun_snaprestore(
                            vref,
                            &cycle.backing_snapshot,
                            &clone.source,
                            &clone.path,
                        )
                        .await
                }
            }
        };
        match made {
            Ok(lun) => {
                ctx.set_object(
                    &cycle,
                    ObjectKind::Lun,
                    &clone.path,
                    Some(&lun.uuid),
                    ObjectState::Created,
                );
                ctx.action(
                    &cycle,
                    ActionKind::CreateClone,
                    &clone.path,
                    ActionOutcome::Ok,
                    cycle.clone_kind.as_str(),
                );
                tracing::info!(
                    cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                    window = %cycle.window, snapshot = %cycle.backing_snapshot,
                    clone = %clone.path, method = cycle.clone_kind.as_str(),
                    "created LUN clone"
                );
            }
            Err(e) => {
                if surely_not_applied(&e) {
                    ctx.set_object(
                        &cycle,
                        ObjectKind::Lun,
                        &clone.path,
                        None,
                        ObjectState::Absent,
                    );
                }
                let detail = super::error_chain(&e);
                return Some(fail(
                    ctx,
                    cycle,
                    CycleState::Releasing,
                    detail,
                    ActionKind::CreateClone,
                ));
            }
        }
        drop(in_stage);
    }
    cycle.clones_created_at = Some(ctx.now());
    cycle.state = CycleState::Backup;
    ctx.save(&cycle);
    Some(cycle)
}

/// The backing snapshot was surely not created: its intent is settled absent and the cycle
/// fails (nothing of it exists to release).
fn snapshot_not_made(ctx: &Ctx, cycle: Cycle, detail: String) -> Cycle {
    ctx.set_object(
        &cycle,
        ObjectKind::Snapshot,
        &cycle.backing_snapshot,
        None,
        ObjectState::Absent,
    );
    fail(
        ctx,
        cycle,
        CycleState::Failed,
        detail,
        ActionKind::CreateSnapshot,
    )
}

fn fail(
    ctx: &Ctx,
    mut cycle: Cycle,
    state: CycleState,
    detail: String,
    action: ActionKind,
) -> Cycle {
    tracing::error!(
        cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
        window = %cycle.window, snapshot = %cycle.backing_snapshot, cycle = %cycle.id,
        "{} failed: {detail}", action.as_str()
    );
    ctx.action(
        &cycle,
        action,
        &cycle.backing_snapshot.clone(),
        ActionOutcome::Error,
        &detail,
    );
    cycle.state = state;
    cycle.result = Some(CycleResult::Failed);
    cycle.detail = detail;
    if state == CycleState::Failed {
        cycle.released_at = Some(ctx.now());
    }
    ctx.save(&cycle);
    cycle
}

/// One attempt to release everything a cycle owns: clones first, then the backing snapshot.
///
/// `listing` is the cluster's latest inventory when it was taken after `settle_after` (the
/// moment the cycle stopped creating); objects whose create answer was lost are found there by
/// name, or recorded as never created.
pub(crate) async fn release(
    ctx: &Ctx,
    conn: &ClusterConn,
    vref: &VolumeRef,
    listing: Option<&Inventory>,
    mut cycle: Cycle,
) -> Released {
    let mut conflicts = Vec::new();
    if cycle.state != CycleState::Releasing && cycle.state != CycleState::Locked {
        cycle.state = CycleState::Releasing;
        ctx.save(&cycle);
    }
    let objects = match ctx.journal.objects(&cycle.id) {
        Ok(o) => o,
        Err(e) => {
            log_journal_error(&cycle, &e);
            return Released {
                cycle,
                conflicts,
                again: true,
            };
        }
    };
    let mut again = false;
    let mut snapshot: Option<ObjectRecord> = None;
    let mut clone_existed = false;
    for mut object in objects {
        if object.state == ObjectState::Intent {
            match settle(ctx, &cycle, &object, listing) {
                Some(settled) => object = settled,
                None => {
                    again = true;
                    continue;
                }
            }
        }
        match object.kind {
            ObjectKind::Snapshot => snapshot = Some(object),
            ObjectKind::Lun => {
                if object.state == ObjectState::Deleted {
                    clone_existed = true;
                }
                if object.state != ObjectState::Created {
                    continue;
                }
                clone_existed = true;
                if !delete_clone(ctx, conn, &cycle, &object).await {
                    again = true;
                }
            }
        }
    }
    if again {
        return Released {
            cycle,
            conflicts,
            again,
        };
    }
    if clone_existed && cycle.clones_deleted_at.is_none() {
        cycle.clones_deleted_at = Some(ctx.now());
        ctx.save(&cycle);
    }
    let Some(snapshot) = snapshot.filter(|s| s.state == ObjectState::Created) else {
        finish(ctx, &mut cycle);
        return Released {
            cycle,
            conflicts,
            again: false,
        };
    };
    if !ctx.prefixed(&snapshot.name) || snapshot.name != cycle.backing_snapshot {
        cycle.detail = format!(
            "journal names snapshot {} for this cycle, which lacks the prefix {}; not deleted",
            snapshot.name, ctx.prefix
        );
        ctx.save(&cycle);
        return Released {
            cycle,
            conflicts,
            again: true,
        };
    }
    if let Some(inv) = listing {
        let seen = inv
            .snapshots
            .iter()
            .find(|s| Some(&s.uuid) == snapshot.uuid.as_ref());
        if let Some(seen) = seen {
            if seen.comment.as_deref().and_then(cycle_id_in_comment) != Some(cycle.id.as_str()) {
                cycle.detail = format!(
                    "snapshot {} no longer carries this cycle's marker (comment {:?}); not deleted",
                    seen.name,
                    seen.comment.clone().unwrap_or_default()
                );
                ctx.save(&cycle);
                return Released {
                    cycle,
                    conflicts,
                    again: true,
                };
            }
        }
    }
    let uuid = snapshot.uuid.clone().unwrap_or_default();
    let (deleted, _in_stage) = {
        let _permit = conn.permit().await;
        if ctx
            .fence(&cycle, "delete_snapshot", &snapshot.name)
            .is_err()
        {
            return Released {
                cycle,
                conflicts,
                again: true,
            };
        }
        let stage = match cycle.state {
            CycleState::Locked => Stage::LockedRetry,
            _ => Stage::SnapshotDelete,
        };
        let in_stage = stage::enter(stage, &snapshot.name);
        let deleted = conn
            .ontap
            .delete_snapshot(vref, &uuid, &snapshot.name)
            .await;
        (deleted, in_stage)
    };
    match deleted {
        Ok(()) => {
            ctx.set_object(
                &cycle,
                ObjectKind::Snapshot,
                &snapshot.name,
                None,
                ObjectState::Deleted,
            );
            ctx.action(
                &cycle,
                ActionKind::DeleteSnapshot,
                &snapshot.name,
                ActionOutcome::Ok,
                "",
            );
            tracing::info!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, snapshot = %cycle.backing_snapshot, cycle = %cycle.id,
                "deleted backing snapshot"
            );
            finish(ctx, &mut cycle);
            again = false;
        }
        Err(e) if is_not_found(&e) => {
            ctx.set_object(
                &cycle,
                ObjectKind::Snapshot,
                &snapshot.name,
                None,
                ObjectState::Deleted,
            );
            ctx.action(
                &cycle,
                ActionKind::DeleteSnapshot,
                &snapshot.name,
                ActionOutcome::Gone,
                &super::error_chain(&e),
            );
            finish(ctx, &mut cycle);
            again = false;
        }
        Err(e)
            if e.code() == Some(SNAPSHOT_LOCKED) && cycle.clone_kind == CloneKind::SnapRestore =>
        {
            ctx.action(
                &cycle,
                ActionKind::DeleteSnapshot,
                &snapshot.name,
                ActionOutcome::Locked,
                &super::error_chain(&e),
            );
            if cycle.state != CycleState::Locked {
                tracing::warn!(
                    cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                    window = %cycle.window, snapshot = %cycle.backing_snapshot, cycle = %cycle.id,
                    "backing snapshot is locked by the snapshot chain (ONTAP error {SNAPSHOT_LOCKED}); \
                     it is retried once the scheduled snapshots that pin it are gone"
                );
                cycle.state = CycleState::Locked;
                // The backup's own outcome (an overrun, a failure) stays in front of the lock.
                cycle.detail = match (cycle.result, cycle.detail.is_empty()) {
                    (Some(CycleResult::Overrun | CycleResult::Failed), false) => {
                        format!("{}; {}", cycle.detail, super::error_chain(&e))
                    }
                    _ => super::error_chain(&e),
                };
                ctx.save(&cycle);
                conflicts.push(ObservedConflict {
                    kind: ConflictKind::Locked,
                    cluster: cycle.cluster.clone(),
                    svm: cycle.svm.clone(),
                    volume: cycle.volume.clone(),
                    window: Some(cycle.window.clone()),
                    cycle: Some(cycle.id.clone()),
                    at: ctx.now(),
                    detail: format!(
                        "backing snapshot {} is locked (ONTAP error {SNAPSHOT_LOCKED})",
                        cycle.backing_snapshot
                    ),
                    key: format!("locked:{}", cycle.id),
                });
            }
            again = false;
        }
        Err(e) => {
            // FlexClone block sharing (1638555 briefly), transient errors, anything else: the
            // next pass tries again; a release past its deadline is reported by observation.
            ctx.action(
                &cycle,
                ActionKind::DeleteSnapshot,
                &snapshot.name,
                ActionOutcome::Error,
                &super::error_chain(&e),
            );
            tracing::warn!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, snapshot = %cycle.backing_snapshot, cycle = %cycle.id,
                "deleting the backing snapshot failed, will retry: {}", super::error_chain(&e)
            );
            cycle.detail = super::error_chain(&e);
            ctx.save(&cycle);
            again = true;
        }
    }
    Released {
        cycle,
        conflicts,
        again,
    }
}

/// Resolves an object whose create answer never reached the journal, from a listing taken after
/// creation stopped: found (and provably ours) → created; not there → never created. `None`
/// when no such listing is at hand.
fn settle(
    ctx: &Ctx,
    cycle: &Cycle,
    object: &ObjectRecord,
    listing: Option<&Inventory>,
) -> Option<ObjectRecord> {
    let inv = listing?;
    let found = match object.kind {
        ObjectKind::Snapshot => inv
            .snapshots
            .iter()
            .find(|s| s.svm == cycle.svm && s.volume_name == cycle.volume && s.name == object.name)
            .filter(|s| s.comment.as_deref().and_then(cycle_id_in_comment) == Some(&cycle.id))
            .map(|s| s.uuid.clone()),
        // A LUN has no comment to carry the marker: only a clone in the cycle's volume can be
        // the one the cycle meant to create (a plain LUN at that path is somebody else's).
        ObjectKind::Lun => inv
            .luns
            .iter()
            .find(|l| {
                l.svm == cycle.svm
                    && l.name == object.name
                    && l.volume_name == cycle.volume
                    && l.created_as_clone
            })
            .map(|l| l.uuid.clone()),
    };
    let mut settled = object.clone();
    match found {
        Some(uuid) => {
            settled.uuid = Some(uuid);
            settled.state = ObjectState::Created;
        }
        None => settled.state = ObjectState::Absent,
    }
    ctx.set_object(
        cycle,
        object.kind,
        &object.name,
        settled.uuid.as_deref(),
        settled.state,
    );
    Some(settled)
}

async fn delete_clone(ctx: &Ctx, conn: &ClusterConn, cycle: &Cycle, object: &ObjectRecord) -> bool {
    if !ctx.lun_prefixed(cycle, &object.name) {
        tracing::error!(
            cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
            window = %cycle.window, clone = %object.name,
            "journal names clone {} for this cycle, which lacks the prefix; not deleted", object.name
        );
        return false;
    }
    let uuid = object.uuid.clone().unwrap_or_default();
    let (deleted, _in_stage) = {
        let _permit = conn.permit().await;
        if ctx.fence(cycle, "delete_clone", &object.name).is_err() {
            return false;
        }
        let in_stage = stage::enter(Stage::CloneDelete, &object.name);
        (
            conn.ontap.delete_lun(&uuid, &object.name, true).await,
            in_stage,
        )
    };
    match deleted {
        Ok(()) => {
            ctx.set_object(
                cycle,
                ObjectKind::Lun,
                &object.name,
                None,
                ObjectState::Deleted,
            );
            ctx.action(
                cycle,
                ActionKind::DeleteClone,
                &object.name,
                ActionOutcome::Ok,
                "",
            );
            tracing::info!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, snapshot = %cycle.backing_snapshot, clone = %object.name,
                "deleted LUN clone"
            );
            true
        }
        Err(e) if is_not_found(&e) => {
            ctx.set_object(
                cycle,
                ObjectKind::Lun,
                &object.name,
                None,
                ObjectState::Deleted,
            );
            ctx.action(
                cycle,
                ActionKind::DeleteClone,
                &object.name,
                ActionOutcome::Gone,
                &super::error_chain(&e),
            );
            true
        }
        Err(e) => {
            ctx.action(
                cycle,
                ActionKind::DeleteClone,
                &object.name,
                ActionOutcome::Error,
                &super::error_chain(&e),
            );
            tracing::warn!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, snapshot = %cycle.backing_snapshot, clone = %object.name,
                "deleting the LUN clone failed, will retry: {}", super::error_chain(&e)
            );
            false
        }
    }
}

/// Nothing is left: the cycle ends (completed unless something else was recorded).
fn finish(ctx: &Ctx, cycle: &mut Cycle) {
    let now = ctx.now();
    cycle.released_at = Some(now);
    let never_created = cycle.created_at.is_none();
    cycle.state = if never_created && cycle.result == Some(CycleResult::Failed) {
        CycleState::Failed
    } else {
        CycleState::Released
    };
    if cycle.result.is_none() {
        cycle.result = Some(CycleResult::Completed);
    }
    ctx.save(cycle);
    tracing::info!(
        cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
        window = %cycle.window, snapshot = %cycle.backing_snapshot, cycle = %cycle.id,
        result = cycle.result.map(|r| r.as_str()).unwrap_or(""),
        late = cycle.release_deadline.is_some_and(|d| now > d),
        "cycle released"
    );
}

/// Backoff before the `attempt`-th retry of a release: 5 s doubling, at most 2 minutes.
pub(crate) fn retry_delay(attempt: u32) -> TimeDelta {
    let secs = 5i64.saturating_mul(1i64 << attempt.min(5));
    TimeDelta::seconds(secs.min(120))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::clock::SystemClock;
    use crate::agent::cycle::CloneLun;
    use crate::ontap::LunInfo;

    fn cycle() -> Cycle {
        let at: DateTime<Utc> = "2027-01-01T01:00:00Z".parse().unwrap();
        Cycle {
            backing_snapshot: "snapwarden.w.20270101T010000Z".into(),
            clones: vec![CloneLun {
                source: "/vol/v/lun0".into(),
                path: "/vol/v/snapwarden.w.20270101T010000Z.lun0".into(),
            }],
            state: CycleState::Releasing,
            created_at: Some(at),
            ..Cycle::sample("c1", at)
        }
    }

    fn listing(luns: Vec<LunInfo>) -> Inventory {
        Inventory::sample(Vec::new(), luns, Utc::now())
    }

    fn lun_at_clone_path(created_as_clone: bool) -> LunInfo {
        LunInfo {
            uuid: "lun-uuid".into(),
            name: "/vol/v/snapwarden.w.20270101T010000Z.lun0".into(),
            svm: "svm1".into(),
            volume_name: "v".into(),
            mapped: false,
            created_as_clone,
            size: None,
        }
    }

    /// A crash during a clone's create leaves its intent; the next start looks the path up.
    /// Only a clone there can be the cycle's: a plain LUN at the path is never adopted (and so
    /// never deleted), and the intent is settled as never created.
    #[test]
    fn an_unanswered_clone_create_settles_only_on_a_clone_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Ctx {
            clock: Arc::new(SystemClock),
            journal: Arc::new(Journal::open(dir.path()).unwrap()),
            prefix: "snapwarden".into(),
            fence: None,
        };
        let c = cycle();
        assert!(ctx.journal.insert_cycle(&c, ctx.now()).unwrap());
        let intent = ctx
            .journal
            .objects(&c.id)
            .unwrap()
            .into_iter()
            .find(|o| o.kind == ObjectKind::Lun)
            .unwrap();
        assert_eq!(intent.state, ObjectState::Intent);

        let plain = settle(
            &ctx,
            &c,
            &intent,
            Some(&listing(vec![lun_at_clone_path(false)])),
        );
        assert_eq!(
            plain.map(|o| (o.state, o.uuid)),
            Some((ObjectState::Absent, None))
        );

        let clone = settle(
            &ctx,
            &c,
            &intent,
            Some(&listing(vec![lun_at_clone_path(true)])),
        );
        assert_eq!(
            clone.map(|o| (o.state, o.uuid)),
            Some((ObjectState::Created, Some("lun-uuid".to_string())))
        );
        assert_eq!(
            settle(&ctx, &c, &intent, None),
            None,
            "no listing, no answer"
        );
    }
}

#[cfg(test)]
mod fence_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::agent::clock::SystemClock;
    use crate::agent::cycle::CloneLun;
    use crate::ha::memory::MemoryElection;
    use crate::ontap::{Resolve, Via};

    /// Counts every ONTAP call; none should reach it.
    struct Counting(Arc<AtomicUsize>);

    impl Resolve for Counting {
        fn resolve(&self) -> Result<Arc<dyn Ontap>, OntapError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(OntapError::Transport {
                cluster: "c".into(),
                context: "test".into(),
                source: "unreachable in this test".into(),
            })
        }
    }

    fn cycle(state: CycleState) -> Cycle {
        let at: DateTime<Utc> = "2027-01-01T01:00:00Z".parse().unwrap();
        Cycle {
            backing_snapshot: "snapwarden.w.20270101T010000Z".into(),
            clone_kind: CloneKind::FlexClone,
            clones: vec![CloneLun {
                source: "/vol/v/lun0".into(),
                path: "/vol/v/snapwarden.w.20270101T010000Z.lun0".into(),
            }],
            state,
            ..Cycle::sample("c1", at)
        }
    }

    /// A replica that does not lead (never elected, or deposed after it led) creates and deletes
    /// nothing: the executor asks the elector right before each call.
    #[tokio::test]
    async fn a_replica_that_does_not_lead_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let election = MemoryElection::new();
        let a = election.join("a");
        let ctx = Ctx {
            clock: Arc::new(SystemClock),
            journal: Arc::new(Journal::open(dir.path()).unwrap()),
            prefix: "snapwarden".into(),
            fence: Some(a),
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let conn = ClusterConn {
            name: "c".into(),
            ontap: Arc::new(Via::new("c", Counting(calls.clone()))),
            permits: Arc::new(Semaphore::new(1)),
        };
        let vref = VolumeRef {
            uuid: "vu".into(),
            name: "v".into(),
            svm: "svm1".into(),
        };
        let made = create(&ctx, &conn, &vref, cycle(CycleState::Creating))
            .await
            .expect("journaled");
        assert_eq!(made.state, CycleState::Failed);
        assert!(made.detail.contains("is not the leader"), "{}", made.detail);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "no ONTAP call");

        // It led and made the snapshot and the clone; then it was deposed: no delete goes out.
        let c = Cycle {
            id: "c2".into(),
            window_start: "2027-01-02T01:00:00Z".parse().unwrap(),
            ..cycle(CycleState::Backup)
        };
        election.elect("a");
        assert!(ctx.journal.insert_cycle(&c, ctx.now()).unwrap());
        ctx.set_object(
            &c,
            ObjectKind::Snapshot,
            &c.backing_snapshot,
            Some("su"),
            ObjectState::Created,
        );
        ctx.set_object(
            &c,
            ObjectKind::Lun,
            &c.clones[0].path,
            Some("lu"),
            ObjectState::Created,
        );
        election.depose();
        let r = release(&ctx, &conn, &vref, None, c).await;
        assert!(r.again, "the release is left for a leader");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "no ONTAP call");
        let objects = ctx.journal.objects("c2").unwrap();
        assert!(
            objects.iter().all(|o| o.state == ObjectState::Created),
            "{objects:?}"
        );
    }
}
