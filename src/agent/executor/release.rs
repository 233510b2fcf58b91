//! Releasing a cycle: settle what the creates left unconfirmed from a later listing, delete the
//! clones, then — the three ownership proofs holding — the backing snapshot; a refusal with
//! 1638555 on a SnapRestore cycle is a lock (a conflict), anything else is retried.

use chrono::TimeDelta;

use super::*;

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
    if cycle.state != CycleState::Releasing && cycle.state != CycleState::Locked {
        cycle.state = CycleState::Releasing;
        ctx.save(&cycle);
    }
    let again = |cycle: Cycle| Released {
        cycle,
        conflicts: Vec::new(),
        again: true,
    };
    let Some(snapshot) = release_clones(ctx, conn, listing, &mut cycle).await else {
        return again(cycle);
    };
    let Some(snapshot) = snapshot.filter(|s| s.state == ObjectState::Created) else {
        finish(ctx, &mut cycle);
        return Released {
            cycle,
            conflicts: Vec::new(),
            again: false,
        };
    };
    if let Some(why) = not_provably_ours(ctx, &cycle, &snapshot, listing) {
        cycle.detail = why;
        ctx.save(&cycle);
        return again(cycle);
    }
    delete_backing(ctx, conn, vref, cycle, &snapshot).await
}

/// Settles the cycle's unconfirmed objects from `listing` and deletes its clones. The backing
/// snapshot's record (`Some(None)`: none journaled), or `None` when a clone is still there or an
/// object cannot be settled yet: try again.
async fn release_clones(
    ctx: &Ctx,
    conn: &ClusterConn,
    listing: Option<&Inventory>,
    cycle: &mut Cycle,
) -> Option<Option<ObjectRecord>> {
    let objects = match ctx.journal.objects(&cycle.id) {
        Ok(o) => o,
        Err(e) => {
            log_journal_error(cycle, &e);
            return None;
        }
    };
    let mut again = false;
    let mut snapshot: Option<ObjectRecord> = None;
    let mut clone_existed = false;
    for mut object in objects {
        if object.state == ObjectState::Intent {
            match settle(ctx, cycle, &object, listing) {
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
                if !delete_clone(ctx, conn, cycle, &object).await {
                    again = true;
                }
            }
        }
    }
    if again {
        return None;
    }
    if clone_existed && cycle.clones_deleted_at.is_none() {
        cycle.clones_deleted_at = Some(ctx.now());
        ctx.save(cycle);
    }
    Some(snapshot)
}

/// Why the journaled backing snapshot may not be deleted, if it may not: the name lacks the
/// prefix, or the listing shows it without this cycle's marker (the other two proofs).
fn not_provably_ours(
    ctx: &Ctx,
    cycle: &Cycle,
    snapshot: &ObjectRecord,
    listing: Option<&Inventory>,
) -> Option<String> {
    if !ctx.prefixed(&snapshot.name) || snapshot.name != cycle.backing_snapshot {
        return Some(format!(
            "journal names snapshot {} for this cycle, which lacks the prefix {}; not deleted",
            snapshot.name, ctx.prefix
        ));
    }
    // The volume's snapshots through the listing's index first (a scan of the cluster's whole
    // listing per release made a pass of releases quadratic in the estate); the whole listing
    // only when the volume does not show it (renamed since, or the snapshot already gone).
    let listing = listing?;
    let ours =
        |s: &&crate::ontap::SnapshotInfo| snapshot.uuid.as_ref().is_some_and(|u| s.uuid == *u);
    let seen = listing
        .volume_snapshots(&cycle.svm, &cycle.volume)
        .find(ours)
        .or_else(|| listing.snapshots().find(ours))?;
    (seen.comment.as_deref().and_then(cycle_id_in_comment) != Some(cycle.id.as_str())).then(|| {
        format!(
            "snapshot {} no longer carries this cycle's marker (comment {:?}); not deleted",
            seen.name,
            seen.comment.clone().unwrap_or_default()
        )
    })
}

/// Deletes the backing snapshot (the three proofs checked): released, locked (1638555 on a
/// SnapRestore cycle: a conflict), or to retry.
async fn delete_backing(
    ctx: &Ctx,
    conn: &ClusterConn,
    vref: &VolumeRef,
    mut cycle: Cycle,
    snapshot: &ObjectRecord,
) -> Released {
    let mut conflicts = Vec::new();
    let again;
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
            record_deleted(ctx, &cycle, ObjectKind::Snapshot, &snapshot.name, None);
            tracing::info!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, snapshot = %cycle.backing_snapshot, cycle = %cycle.id,
                "deleted backing snapshot"
            );
            finish(ctx, &mut cycle);
            again = false;
        }
        Err(e) if is_not_found(&e) => {
            record_deleted(ctx, &cycle, ObjectKind::Snapshot, &snapshot.name, Some(&e));
            finish(ctx, &mut cycle);
            again = false;
        }
        Err(e)
            if e.code() == Some(SNAPSHOT_LOCKED) && cycle.clone_kind == CloneKind::SnapRestore =>
        {
            conflicts.extend(locked(ctx, &mut cycle, &snapshot.name, &e));
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
                &error_chain(&e),
            );
            tracing::warn!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, snapshot = %cycle.backing_snapshot, cycle = %cycle.id,
                "deleting the backing snapshot failed, will retry: {}", error_chain(&e)
            );
            cycle.detail = error_chain(&e);
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
pub(super) fn settle(
    ctx: &Ctx,
    cycle: &Cycle,
    object: &ObjectRecord,
    listing: Option<&Inventory>,
) -> Option<ObjectRecord> {
    let inv = listing?;
    let found = match object.kind {
        ObjectKind::Snapshot => inv
            .volume_snapshots(&cycle.svm, &cycle.volume)
            .find(|s| s.name == object.name)
            .filter(|s| s.comment.as_deref().and_then(cycle_id_in_comment) == Some(&cycle.id))
            .map(|s| s.uuid.to_string()),
        // A LUN has no comment to carry the marker: only a clone in the cycle's volume can be
        // the one the cycle meant to create (a plain LUN at that path is somebody else's).
        ObjectKind::Lun => inv
            .volume_luns(&cycle.svm, &cycle.volume)
            .find(|l| l.name == object.name && l.created_as_clone)
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
            record_deleted(ctx, cycle, ObjectKind::Lun, &object.name, None);
            tracing::info!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, snapshot = %cycle.backing_snapshot, clone = %object.name,
                "deleted LUN clone"
            );
            true
        }
        Err(e) if is_not_found(&e) => {
            record_deleted(ctx, cycle, ObjectKind::Lun, &object.name, Some(&e));
            true
        }
        Err(e) => {
            ctx.action(
                cycle,
                ActionKind::DeleteClone,
                &object.name,
                ActionOutcome::Error,
                &error_chain(&e),
            );
            tracing::warn!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, snapshot = %cycle.backing_snapshot, clone = %object.name,
                "deleting the LUN clone failed, will retry: {}", error_chain(&e)
            );
            false
        }
    }
}

/// Journals a backing snapshot or clone as deleted, and the delete: done by this call (`None`),
/// or found already gone (ONTAP's not-found answer).
fn record_deleted(
    ctx: &Ctx,
    cycle: &Cycle,
    kind: ObjectKind,
    name: &str,
    gone: Option<&OntapError>,
) {
    ctx.set_object(cycle, kind, name, None, ObjectState::Deleted);
    let action = match kind {
        ObjectKind::Snapshot => ActionKind::DeleteSnapshot,
        ObjectKind::Lun => ActionKind::DeleteClone,
    };
    match gone {
        None => ctx.action(cycle, action, name, ActionOutcome::Ok, ""),
        Some(e) => ctx.action(cycle, action, name, ActionOutcome::Gone, &error_chain(e)),
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

/// The backing snapshot's delete was refused with 1638555: the cycle is locked (journaled and
/// logged once) and the lock is a conflict the first time.
fn locked(ctx: &Ctx, cycle: &mut Cycle, name: &str, e: &OntapError) -> Option<ObservedConflict> {
    ctx.action(
        cycle,
        ActionKind::DeleteSnapshot,
        name,
        ActionOutcome::Locked,
        &error_chain(e),
    );
    if cycle.state == CycleState::Locked {
        return None;
    }
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
            format!("{}; {}", cycle.detail, error_chain(e))
        }
        _ => error_chain(e),
    };
    ctx.save(cycle);
    Some(ObservedConflict {
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
    })
}
