//! The executor: carries out one cycle's steps against ONTAP exactly as planned — create the
//! backing snapshot, create the clones, later delete the clones and then the snapshot — journaling
//! an intent before every create and the outcome after every call. It makes no choices: when to
//! start, with which clone method and until when are decided before it is called.
//!
//! Safety: it deletes an object only when all three proofs hold — the name carries the
//! policy's prefix, the snapshot's comment carries the marker with this cycle's id, and the
//! journal records the object for this cycle.

use std::sync::Arc;

use chrono::{DateTime, Utc};
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
use crate::error::error_chain;
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
    /// The volumes `ontap`'s mutating calls touched since the last refresh took them.
    pub changed: Arc<crate::agent::changes::Noted>,
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
    cycle: Cycle,
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
    match create_snapshot(ctx, conn, vref, cycle).await {
        Ok(cycle) => Some(create_clones(ctx, conn, vref, cycle).await),
        Err(failed) => Some(failed),
    }
}

/// The backing snapshot, with the cycle's marker: the cycle `Live`, or `Err` with the cycle as
/// it failed (nothing made, or unsure: releasing).
async fn create_snapshot(
    ctx: &Ctx,
    conn: &ClusterConn,
    vref: &VolumeRef,
    mut cycle: Cycle,
) -> Result<Cycle, Cycle> {
    let permit = conn.permit().await;
    if let Err(e) = ctx.fence(&cycle, "create_snapshot", &cycle.backing_snapshot) {
        drop(permit);
        return Err(snapshot_not_made(ctx, cycle, e.to_string()));
    }
    let comment = snapshot_comment(&cycle.id, &cycle.window);
    let _in_stage = stage::enter(Stage::SnapshotCreate, &cycle.backing_snapshot);
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
                Some(&info.uuid.text()),
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
            Ok(cycle)
        }
        Ok(info) => {
            // A snapshot of that name exists but is not this cycle's: never adopt it.
            let detail = format!(
                "a snapshot named {} already exists on volume {} and is not this cycle's (comment {:?}); not touched",
                cycle.backing_snapshot,
                cycle.volume,
                info.comment.unwrap_or_default()
            );
            Err(snapshot_not_made(ctx, cycle, detail))
        }
        Err(e) => {
            let detail = error_chain(&e);
            if surely_not_applied(&e) {
                return Err(snapshot_not_made(ctx, cycle, detail));
            }
            // It may exist: the release looks it up by name in the next listing.
            Err(fail(
                ctx,
                cycle,
                CycleState::Releasing,
                detail,
                ActionKind::CreateSnapshot,
            ))
        }
    }
}

/// Each clone by the cycle's method: the cycle in `Backup` when all exist, else failed and
/// releasing.
async fn create_clones(ctx: &Ctx, conn: &ClusterConn, vref: &VolumeRef, mut cycle: Cycle) -> Cycle {
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
            return fail(
                ctx,
                cycle,
                CycleState::Releasing,
                e.to_string(),
                ActionKind::CreateClone,
            );
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
                let detail = error_chain(&e);
                return fail(
                    ctx,
                    cycle,
                    CycleState::Releasing,
                    detail,
                    ActionKind::CreateClone,
                );
            }
        }
        drop(in_stage);
    }
    cycle.clones_created_at = Some(ctx.now());
    cycle.state = CycleState::Backup;
    ctx.save(&cycle);
    cycle
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

mod release;
#[cfg(test)]
mod tests;

pub(crate) use release::{release, retry_delay};
