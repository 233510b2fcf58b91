//! Managed snapshots made and trimmed: a take journals its intent, creates the snapshot with
//! ONTAP's name, the copy's `snapmirror_label` and snapwarden's marker, then deletes the series'
//! oldest beyond the count. ONTAP's refusals are named: 1638477 (the prefix is reserved on the
//! cluster: set `prefix`), 525059 (the name exists: taken as ours only with our marker). A
//! rotation never deletes a busy snapshot or one of another name (the decision chose only the
//! copy's exact pattern); a locked or busy one is left for the next pass.

use chrono::{DateTime, Utc};

use super::decide::{Take, TakeWhy};
use super::executor::{is_not_found, surely_not_applied};
use super::journal::{ActionKind, ActionOutcome, ManagedRecord, ObjectState};
use super::managed::{self, CopyKey};
use super::stage::{self, Stage};
use super::state::CopyState;
use super::Agent;
use crate::error::error_chain;
use crate::ontap::{NewSnapshot, OntapError, VolumeRef, SNAPSHOT_LOCKED};

/// ONTAP: "User-created Snapshot copy names cannot begin with the specified prefix".
pub const RESERVED_PREFIX: u64 = 1_638_477;
/// ONTAP: "A Snapshot copy with that name already exists".
pub const NAME_EXISTS: u64 = 525_059;

/// How a managed create ended.
enum Made {
    /// Created (or found created with our marker): its uuid.
    Yes(String),
    /// Surely not made; the copy is tried again after a backoff.
    No(String),
    /// The answer is unknown: the next listing settles the intent.
    Unknown(String),
}

impl Agent {
    /// Applies a managed stage's take: intent, create, then rotation.
    pub(super) async fn take_managed(&mut self, take: Take, now: DateTime<Utc>) {
        let key = take.copy.clone();
        let record = ManagedRecord {
            cluster: key.volume.cluster.clone(),
            svm: key.volume.svm.clone(),
            volume: key.volume.volume.clone(),
            prefix: key.prefix.clone(),
            name: take.name.clone(),
            due_at: take.due,
            instants: take.instants,
            waited: take.why.waited(),
            reason: take.why.as_str().to_string(),
            state: ObjectState::Intent,
            uuid: None,
            asked_at: now,
            detail: String::new(),
        };
        // Without the intent on disk nothing is created.
        let journaled = self.ctx.journal.insert_managed(&record);
        match self.journaled(journaled, || format!("managed snapshot {}", take.name)) {
            Some(true) => {}
            Some(false) => {
                // The name was asked for already (a take this minute): it covers the copy.
                self.state(&key).last_taken = Some((now, take.name.clone()));
                return;
            }
            None => {
                self.state(&key).retry_at = Some(now + chrono::TimeDelta::minutes(1));
                return;
            }
        }
        let in_stage = stage::enter(Stage::ManagedCreate, &take.name);
        let made = self.create_managed(&take).await;
        let (cluster, svm, volume) = (&record.cluster, &record.svm, &record.volume);
        let vkey = &key.volume;
        match made {
            Made::Yes(uuid) => {
                let r = self.ctx.journal.settle_managed(
                    vkey,
                    &take.name,
                    ObjectState::Created,
                    Some(&uuid),
                    "",
                );
                self.journaled(r, || format!("managed snapshot {}", take.name));
                let state = self.state(&key);
                state.last_taken = Some((now, take.name.clone()));
                state.waiting = None;
                state.retry_at = None;
                state.last_error = None;
                self.metrics.managed.taken(&key, &take.why, take.instants);
                log_take(&take);
                drop(in_stage);
                self.rotate(&key, &take.volume, &take.rotate, now).await;
            }
            Made::No(why) => {
                let r = self.ctx.journal.settle_managed(
                    vkey,
                    &take.name,
                    ObjectState::Absent,
                    None,
                    &why,
                );
                self.journaled(r, || format!("managed snapshot {}", take.name));
                self.metrics.managed.failed(&key);
                self.warn_once(
                    format!("managed:{key}:{why}"),
                    format!("managed snapshot {} of {key} not taken: {why}", take.name),
                );
                let state = self.state(&key);
                state.retry_at = Some(now + chrono::TimeDelta::minutes(1));
                state.last_error = Some(why);
            }
            Made::Unknown(why) => {
                tracing::warn!(
                    cluster = %cluster, svm = %svm, volume = %volume, snapshot = %take.name,
                    "managed snapshot create unanswered, settled by the next listing: {why}"
                );
                let asked = self.ctx.clock.now();
                let state = self.state(&key);
                state.pending = Some((take.name.clone(), asked));
                state.last_error = Some(why);
            }
        }
    }

    /// The create call, with ONTAP's refusals named.
    async fn create_managed(&self, take: &Take) -> Made {
        let key = &take.copy;
        let Some(conn) = self.conns.iter().find(|c| c.name == key.volume.cluster) else {
            return Made::No(format!(
                "cluster {} is not in the policy",
                key.volume.cluster
            ));
        };
        let new = NewSnapshot::new(&take.name, &take.comment).labelled(take.label.as_deref());
        let created = {
            let _permit = conn.permit().await;
            if let Err(e) = self.ctx.leads() {
                return Made::No(format!("not attempted: {e}"));
            }
            conn.ontap.create_snapshot(&take.volume, &new).await
        };
        match created {
            Ok(info) if managed::is_marked(info.comment.as_deref(), &key.prefix) => {
                Made::Yes(info.uuid.to_string())
            }
            Ok(info) => Made::No(format!(
                "a snapshot named {} exists on volume {} and is not snapwarden's (comment {:?}); never touched",
                take.name,
                key.volume.volume,
                info.comment.unwrap_or_default()
            )),
            Err(e) if e.code() == Some(RESERVED_PREFIX) => Made::No(format!(
                "ONTAP refuses user snapshot names that begin with \"{}.\" ({}); set `prefix` on the {} copy of [[snapshot_policy]] \"{}\" (for example prefix = \"sw_{}\")",
                key.prefix,
                error_chain(&e),
                take.schedule,
                take.policy,
                key.prefix
            )),
            Err(e) if e.code() == Some(NAME_EXISTS) => self.existing(take, &e),
            Err(e) if surely_not_applied(&e) => Made::No(error_chain(&e)),
            Err(e) => Made::Unknown(error_chain(&e)),
        }
    }

    /// 525059: the name exists. Ours (our marker, in the listing) is taken as made; anything
    /// else is reported and left alone.
    fn existing(&self, take: &Take, e: &OntapError) -> Made {
        let key = &take.copy;
        let found = self
            .conns
            .iter()
            .position(|c| c.name == key.volume.cluster)
            .and_then(|ci| self.views[ci].inventory.as_ref())
            .and_then(|inv| {
                inv.volume_snapshots(&key.volume.svm, &key.volume.volume)
                    .find(|s| s.name == take.name)
                    .cloned()
            });
        match found {
            Some(s) if managed::is_marked(s.comment.as_deref(), &key.prefix) => Made::Yes(s.uuid.to_string()),
            Some(s) => Made::No(format!(
                "a snapshot named {} exists on volume {} and is not snapwarden's (comment {:?}); never touched ({})",
                take.name,
                key.volume.volume,
                s.comment.unwrap_or_default(),
                error_chain(e)
            )),
            None => Made::No(format!(
                "a snapshot named {} exists on volume {} that the last listing did not show; never touched ({})",
                take.name,
                key.volume.volume,
                error_chain(e)
            )),
        }
    }

    /// Deletes the series' oldest snapshots the decision chose, oldest first; one that is busy
    /// or locked stays (and the ones after it too) until a later pass.
    pub(super) async fn rotate(
        &mut self,
        key: &CopyKey,
        volume: &VolumeRef,
        snapshots: &[(String, String)],
        now: DateTime<Utc>,
    ) {
        let Some(conn) = self
            .conns
            .iter()
            .find(|c| c.name == key.volume.cluster)
            .cloned()
        else {
            return;
        };
        for (uuid, name) in snapshots {
            // The decision's rule, checked again right before the delete.
            if !managed::follows_pattern(&key.prefix, name) {
                tracing::error!(snapshot = %name, "not a snapshot of {key}'s series: not deleted");
                return;
            }
            let (deleted, in_stage) = {
                let _permit = conn.permit().await;
                if let Err(e) = self.ctx.leads() {
                    tracing::warn!("rotation of {key} not attempted: {e}");
                    return;
                }
                let in_stage = stage::enter(Stage::ManagedRotate, name);
                (
                    conn.ontap.delete_snapshot(volume, uuid, name).await,
                    in_stage,
                )
            };
            let (outcome, detail, stop) = match &deleted {
                Ok(()) => (ActionOutcome::Ok, String::new(), false),
                Err(e) if is_not_found(e) => (ActionOutcome::Gone, error_chain(e), false),
                Err(e) if e.code() == Some(SNAPSHOT_LOCKED) => {
                    (ActionOutcome::Locked, error_chain(e), true)
                }
                Err(e) => (ActionOutcome::Error, error_chain(e), true),
            };
            let r = self.ctx.journal.record_action(
                None,
                now,
                ActionKind::RotateSnapshot,
                name,
                outcome,
                &format!("{key}: {detail}"),
            );
            self.journaled(r, || format!("the rotation of {name}"));
            drop(in_stage);
            if stop {
                tracing::warn!(
                    cluster = %key.volume.cluster, svm = %key.volume.svm,
                    volume = %key.volume.volume, snapshot = %name,
                    "the oldest snapshot of {key} beyond its count cannot be deleted yet (retried): {detail}"
                );
                self.metrics.managed.rotated(key, false);
                return;
            }
            self.state(key).deleted.insert(uuid.clone());
            self.metrics.managed.rotated(key, true);
            tracing::info!(
                cluster = %key.volume.cluster, svm = %key.volume.svm, volume = %key.volume.volume,
                snapshot = %name, "deleted the oldest snapshot of {key} beyond its count"
            );
        }
    }

    /// A lost create answer settled by a listing.
    pub(super) fn settle_managed(&mut self, key: &CopyKey, name: &str, uuid: Option<&str>) {
        let state = if uuid.is_some() {
            ObjectState::Created
        } else {
            ObjectState::Absent
        };
        let r = self.ctx.journal.settle_managed(
            &key.volume,
            name,
            state,
            uuid,
            "settled from a listing taken after the unanswered create",
        );
        self.journaled(r, || format!("managed snapshot {name}"));
        let now = self.ctx.clock.now();
        let s = self.state(key);
        s.pending = None;
        if uuid.is_some() {
            s.last_taken = Some((now, name.to_string()));
        }
    }

    /// A copy's memory, made on first use.
    pub(super) fn state(&mut self, key: &CopyKey) -> &mut CopyState {
        self.memory.managed.entry(key.clone()).or_default()
    }
}

fn log_take(take: &Take) {
    let v = &take.copy.volume;
    let coalesced = take.instants.saturating_sub(1);
    match &take.why {
        TakeWhy::OnTime => tracing::info!(
            cluster = %v.cluster, svm = %v.svm, volume = %v.volume, snapshot = %take.name,
            "managed snapshot taken"
        ),
        TakeWhy::Deferred { waited } => tracing::info!(
            cluster = %v.cluster, svm = %v.svm, volume = %v.volume, snapshot = %take.name,
            coalesced, "managed snapshot taken {} after its instant {}, once the clone was gone",
            crate::planner::human(*waited), take.due.to_rfc3339()
        ),
        TakeWhy::MaxDefer { waited, blocker } => tracing::warn!(
            cluster = %v.cluster, svm = %v.svm, volume = %v.volume, snapshot = %take.name,
            coalesced, "managed snapshot taken at max_defer ({} after {}) although {blocker}: it captures the clone",
            crate::planner::human(*waited), take.due.to_rfc3339()
        ),
        TakeWhy::Overdue { late } => tracing::warn!(
            cluster = %v.cluster, svm = %v.svm, volume = %v.volume, snapshot = %take.name,
            missed = coalesced, "managed snapshot taken {} late: its instant {} passed while the agent was not running or not leading",
            crate::planner::human(*late), take.due.to_rfc3339()
        ),
    }
}
