//! One pass of the loop: read the clock once, take leadership into account, rediscover what
//! needs it, then for each stage build the view (asking the journal beforehand what the stage
//! will need), decide, and apply; at the end, housekeeping and the status.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::changes::Changed;
use super::conflict_reads::ConflictReads;
use super::cycle::CycleState;
use super::decide::{self, JournalFacts, Stage, View};
use super::discovery::{self, Depth, Inventory};
use super::journal;
use super::status::{self, ClusterStatus, LiveCycle, Status};
use super::Agent;
use crate::error::error_chain;
use crate::planner::Observed;

/// First retry of an unreachable cluster; doubles up to [`MAX_CLUSTER_BACKOFF`].
const CLUSTER_BACKOFF: TimeDelta = TimeDelta::seconds(10);
const MAX_CLUSTER_BACKOFF: TimeDelta = TimeDelta::minutes(5);
/// Recent cycles and conflicts in the status.
const STATUS_RECENT: usize = 50;
const STATUS_CONFLICTS: usize = 100;
const STATUS_CONFLICT_AGE: TimeDelta = TimeDelta::days(7);

impl Agent {
    /// One reconcile pass. A standby (`[ha]`) only keeps its discovery warm and publishes.
    pub(super) async fn pass(&mut self, force_discovery: bool) {
        let now = self.ctx.clock.now();
        let (leading, became) = self.leadership(now);
        // An audit reads the listing this pass takes: a fresh one.
        let audit_due = leading
            && !self.shutting_down
            && self.audits.due(self.policy.agent.audit_interval, now);
        // A new leader and an audit read the whole cluster; a planned start only needs the
        // listing brought up to date.
        let whole = became || audit_due;
        let waiting = self
            .refresh(now, force_discovery || whole, whole, None)
            .await;
        let observed = self.observed();
        self.audit(now, &observed, leading, audit_due).await;
        if leading {
            if self.ha.is_some() {
                self.stage(Stage::Adopt, now, &observed).await;
            }
            self.stage(Stage::Observe, now, &observed).await;
            if !self.shutting_down {
                self.stage(Stage::Managed, now, &observed).await;
                self.stage(Stage::Start, now, &observed).await;
            }
            self.stage(Stage::Release, now, &observed).await;
            if !self.shutting_down {
                self.stage(Stage::ManagedAfterRelease, now, &observed).await;
            }
            self.stage(Stage::Recommend, now, &observed).await;
            if !waiting.is_empty() {
                // The creates went first; the whole reads they waited for follow.
                let now = self.ctx.clock.now();
                self.refresh(now, true, true, Some(&waiting)).await;
            }
        } else {
            // Planned creates are the leader's: a standby is woken by the election instead.
            self.memory.next_create = None;
            self.memory.next_managed = None;
        }
        self.prune(now);
        if self.observed_by_others {
            self.publish(now, &observed);
            self.plan_board.set(self.policy.clone(), observed);
        }
    }

    /// At start: what becomes of the cycles the journal left open (before any discovery).
    pub(super) async fn recover(&mut self) {
        let now = self.ctx.clock.now();
        let observed = Arc::new(Observed::default());
        self.stage(Stage::Recover, now, &observed).await;
    }

    /// Decides one stage from a fresh view and applies what it decided.
    async fn stage(&mut self, stage: Stage, now: DateTime<Utc>, observed: &Arc<Observed>) {
        let plan = (stage == Stage::Start).then(|| {
            let back = decide::lookback(&self.policy);
            // `planner::plan` without conflicts and suggestions, reusing the previous passes'
            // work.
            let plan =
                self.rolling
                    .plan(&self.policy, observed, now - back, back + decide::LOOKAHEAD);
            if self.observed_by_others {
                self.metrics.scheduled(&self.policy, &plan, now);
            }
            plan
        });
        let started_prefix = plan
            .as_ref()
            .map(|plan| self.started_prefix(plan, now))
            .unwrap_or_default();
        let mut facts = self.facts(stage, now);
        let missing = matches!(stage, Stage::Start | Stage::Managed).then(|| self.missing());
        let actions = {
            let view = View {
                stage,
                policy: &self.policy,
                clusters: &self.views,
                memory: &self.memory,
                plan: plan.as_ref(),
                started_prefix: &started_prefix,
                missing: missing.as_deref().map(Vec::as_slice),
                journal: &facts,
                observed,
                started_at: self.started_at,
                leading_since: self.ha.as_ref().and_then(|h| h.leading_since),
                replica: self.ha.as_ref().map(|h| h.elector.identity()),
            };
            decide::decide(&view, now)
        };
        self.conflict_reads
            .give_back(std::mem::take(&mut facts.conflicts));
        self.apply(stage, actions, now).await;
    }

    /// For each volume of `plan`, how many of its first lifecycles were started
    /// ([`decide::started_prefix`]), going on from the last pass's count where the volume's
    /// lifecycles are the same list (the list is kept to tell: compared by address only).
    fn started_prefix(&mut self, plan: &crate::planner::Plan, now: DateTime<Utc>) -> Vec<usize> {
        let kept = &mut self.started_prefix;
        kept.truncate(plan.volumes.len());
        let mut counts = Vec::with_capacity(plan.volumes.len());
        for (i, vp) in plan.volumes.iter().enumerate() {
            if kept
                .get(i)
                .is_none_or(|(lifecycles, _)| !Arc::ptr_eq(lifecycles, &vp.lifecycles))
            {
                let fresh = (vp.lifecycles.clone(), 0);
                match kept.get_mut(i) {
                    Some(slot) => *slot = fresh,
                    None => kept.push(fresh),
                }
            }
            let k = &mut kept[i].1;
            *k = decide::started_prefix(&self.policy, &self.memory, vp, *k, now);
            counts.push(*k);
        }
        counts
    }

    /// What the listings say of the policy's volumes ([`decide::missing`]), kept while the
    /// policy and every listing's [`presence`](Inventory::presence) are the same.
    fn missing(&mut self) -> Arc<Vec<decide::Excluded>> {
        let key = MissingKey {
            policy: Arc::as_ptr(&self.policy) as usize,
            presence: self
                .views
                .iter()
                .map(|v| v.inventory.as_ref().map(|i| i.presence))
                .collect(),
        };
        if let Some((k, m)) = &self.missing_memo {
            if *k == key {
                return m.clone();
            }
        }
        let m = Arc::new(decide::missing(&self.policy, &self.views));
        self.missing_memo = Some((key, m.clone()));
        m
    }

    /// What the journal says that the stage will need (the stage itself never asks).
    fn facts(&mut self, stage: Stage, now: DateTime<Utc>) -> JournalFacts {
        let journal = &self.ctx.journal;
        let mut facts = JournalFacts::default();
        match stage {
            Stage::Observe => {
                for key in decide::owner_lookups(&self.policy, &self.views, &self.memory) {
                    let owner = journal
                        .owner(&key.cluster, &key.svm, &key.volume, key.kind, &key.name)
                        .ok()
                        .flatten()
                        .map(|o| o.cycle_id);
                    facts.owners.insert(key, owner);
                }
            }
            Stage::Adopt => {
                for id in decide::cycle_lookups(&self.policy, &self.views, &self.memory) {
                    // Unknown only when the journal says so; a failed read adopts nothing.
                    if !matches!(journal.cycle(&id), Ok(None)) {
                        facts.known_cycles.insert(id);
                    }
                }
            }
            Stage::Recommend => {
                let (volumes, swept) = decide::candidates(&self.memory, now);
                if swept {
                    self.memory.last_recommend_sweep = Some(now);
                }
                self.memory.reconsider.clear();
                self.conflict_reads.follow_writes(journal);
                self.conflict_reads.catch_up(journal);
                let (after, within) = (
                    self.policy.flexclone.recommend_after,
                    self.policy.flexclone.within,
                );
                for key in volumes {
                    let Some(mut found) = self.conflict_reads.read(&self.ctx.journal, &key) else {
                        continue;
                    };
                    let raised = super::recommend::decide(found.evidence(), after, within, now);
                    // Read only for a volume in force (most decisions have none).
                    if raised.is_some() {
                        found.locked_space = self
                            .conflict_reads
                            .locked_space(&self.ctx.journal, &key)
                            .unwrap_or_else(|e| {
                                tracing::error!(
                                    "cannot read the space the locked backing snapshots of {key} hold: {e}"
                                );
                                Vec::new()
                            });
                    }
                    found.raised = Some(raised);
                    facts.conflicts.insert(key, found);
                }
            }
            Stage::Recover
            | Stage::Managed
            | Stage::ManagedAfterRelease
            | Stage::Start
            | Stage::Release => {}
        }
        facts
    }

    /// Whether this replica leads now, and whether it just became leader; handles the change.
    fn leadership(&mut self, now: DateTime<Utc>) -> (bool, bool) {
        let Some(ha) = self.ha.as_mut() else {
            return (true, false);
        };
        let check = ha.elector.check();
        self.ctx.journal.set_revision(check.as_ref().ok().copied());
        self.metrics.election(&ha.election.borrow());
        let leading = check.is_ok();
        let became = leading && !self.leading;
        if became {
            tracing::info!(
                identity = %ha.elector.identity(), revision = check.as_ref().ok().copied().unwrap_or_default(),
                "leader: this replica leads; cycles another replica left in flight are adopted from ONTAP"
            );
            ha.leading_since = Some(now);
            // No hook may be running at this point: nobody to tell otherwise.
            let _ = self.stop_hooks.send(false);
        } else if !leading && self.leading {
            tracing::warn!(
                identity = %ha.elector.identity(),
                "standby: this replica no longer leads; it changes nothing until it leads again ({})",
                check.as_ref().err().map(|e| e.why.as_str()).unwrap_or("")
            );
            // Hooks drive backup tools, which only the leader touches (none may run).
            let _ = self.stop_hooks.send(true);
        }
        self.leading = leading;
        (leading, became)
    }

    /// Brings up to date the listing of every cluster that is stale, retried, needed to settle
    /// a cycle, or `force`d (`only`: those clusters). A cluster is read whole when asked
    /// (`whole`), when stale or retried, when last read whole an `observe_interval` ago, or
    /// when a scheduled snapshot may have changed any volume since its listing; otherwise only
    /// the volumes that may have changed are read again ([`Agent::reread_set`]). A whole read
    /// due only by the listing's age waits for a planned create it would still be running at
    /// ([`read_waits_for`]); returns the clusters whose read waits for a create due now, read at
    /// the end of the pass.
    pub(super) async fn refresh(
        &mut self,
        now: DateTime<Utc>,
        force: bool,
        whole: bool,
        only: Option<&[usize]>,
    ) -> Vec<usize> {
        let (waiting, due) = self.reads_due(now, force, whole, only);
        let mut listings: Vec<Option<Inventory>> = self
            .views
            .iter_mut()
            .enumerate()
            .map(|(ci, v)| {
                due.iter()
                    .any(|(d, _, vols)| *d == ci && vols.is_some())
                    .then(|| v.inventory.take())
                    .flatten()
            })
            .collect();
        let rounds = due.iter().map(|(ci, _, volumes)| {
            let conn = self.conns[*ci].clone();
            let kept = listings[*ci].take();
            let clock = self.ctx.clock.clone();
            async move {
                let ontap = conn.ontap.as_ref();
                if let (Some(mut inv), Some(volumes)) = (kept, volumes.as_ref()) {
                    match discovery::reread(ontap, &mut inv, volumes, now).await {
                        Ok(true) => return (*ci, Ok(inv), None, None),
                        // A volume the listing does not know: the whole cluster instead.
                        Ok(false) => {}
                        Err(e) => return (*ci, Err(e), Some(inv), None),
                    }
                }
                let started = clock.now();
                let read = discovery::discover(ontap, Depth::Full, now).await;
                (*ci, read, None, Some(clock.now() - started))
            }
        });
        let results = futures_util::future::join_all(rounds).await;
        let whole_read = due.iter().any(|(_, _, volumes)| volumes.is_none());
        for ((ci, result, kept, took), (_, changed, _)) in results.into_iter().zip(due) {
            let name = self.conns[ci].name.clone();
            let view = &mut self.views[ci];
            if kept.is_some() {
                view.inventory = kept;
            }
            match result {
                Ok(inv) => {
                    if let Some(took) = took {
                        view.whole_read_took = took;
                    }
                    reached(view, &name, inv)
                }
                Err(e) => {
                    self.conns[ci].changed.give_back(changed);
                    view.failures = view.failures.saturating_add(1);
                    let backoff = CLUSTER_BACKOFF
                        .checked_mul(1 << view.failures.min(10).saturating_sub(1))
                        .unwrap_or(MAX_CLUSTER_BACKOFF)
                        .min(MAX_CLUSTER_BACKOFF);
                    view.retry_at = Some(now + backoff);
                    view.reachable = false;
                    view.last_error = Some(error_chain(&e));
                    tracing::error!(
                        cluster = %name, retry_in_seconds = backoff.num_seconds(),
                        "cluster unreachable: {}; its volumes wait, the other clusters go on", error_chain(&e)
                    );
                }
            }
        }
        // The listings a whole read replaced are freed: their memory goes back to the system.
        whole_read.then(super::allocator::release_free_memory);
        waiting
    }

    /// The clusters [`Agent::refresh`] reads now, each with the changes noted since its last
    /// read and the volumes to read again (`None`: the whole cluster), and those whose whole
    /// read waits for a create due now.
    fn reads_due(
        &mut self,
        now: DateTime<Utc>,
        force: bool,
        whole: bool,
        only: Option<&[usize]>,
    ) -> (Vec<usize>, Vec<DueRead>) {
        let interval = self.policy.agent.observe_interval;
        let planned = [self.memory.next_create, self.memory.next_managed]
            .into_iter()
            .flatten()
            .min();
        let mut waiting = Vec::new();
        let mut due = Vec::new();
        for ci in 0..self.views.len() {
            if only.is_some_and(|o| !o.contains(&ci)) {
                continue;
            }
            let view = &mut self.views[ci];
            if view.retry_at.is_some_and(|r| r > now) {
                continue;
            }
            view.read_put_off = None;
            // A read that takes no time never waits: the schedules are not even looked at.
            if !whole && view.retry_at.is_none() && view.whole_read_took > TimeDelta::zero() {
                if let Some(inv) = &view.inventory {
                    let read = LastRead {
                        full_at: inv.full_at,
                        took: view.whole_read_took,
                        scheduled_since: scheduled_since(inv, now),
                    };
                    view.read_put_off = read_waits_for(&read, now, interval, planned);
                }
            }
            let waits = view.read_put_off;
            if let Some(at) = waits {
                tracing::debug!(
                    cluster = %self.conns[ci].name, took_ms = view.whole_read_took.num_milliseconds(),
                    "whole read put off: it would still be running at the planned create at {}",
                    at.to_rfc3339()
                );
            }
            if waits.is_some_and(|p| p <= now) {
                waiting.push(ci);
            }
            let view = &self.views[ci];
            let stale = waits.is_none()
                && view
                    .inventory
                    .as_ref()
                    .is_none_or(|inv| now - inv.at >= interval);
            let settling = self.memory.open.values().any(|o| {
                o.cycle.cluster == self.conns[ci].name
                    && o.settle_after
                        .is_some_and(|s| view.inventory.as_ref().is_none_or(|inv| inv.at <= s))
            });
            // Whatever else changed the cluster (an admin, a tool) shows at the first refresh
            // an interval after the last whole read.
            let asked = whole || stale || view.retry_at.is_some();
            if force || asked || settling {
                let whole = asked
                    || waits.is_none()
                        && view
                            .inventory
                            .as_ref()
                            .is_some_and(|inv| now - inv.full_at >= interval);
                // Taken before the read: a call that mutates during it is read again next time.
                let changed = self.conns[ci].changed.take();
                let volumes = (!whole)
                    .then(|| self.reread_set(ci, &changed, now))
                    .flatten();
                due.push((ci, changed, volumes));
            }
        }
        (waiting, due)
    }

    /// The volumes of cluster `ci` to read again instead of the whole cluster: those the
    /// agent's calls changed, and those whose listing a stage reads each pass for what ONTAP
    /// alone changes (the locked cycles' backing snapshots, which grow and lose their pins, and
    /// the cycles a backup tool drives). `None` when the whole cluster must be read: no
    /// listing yet, or a scheduled snapshot (taken or rotated out) since the listing was up to
    /// date.
    fn reread_set(
        &self,
        ci: usize,
        changed: &Changed,
        now: DateTime<Utc>,
    ) -> Option<Vec<(String, String)>> {
        let inv = self.views[ci].inventory.as_ref()?;
        if scheduled_since(inv, now) {
            return None;
        }
        let cluster = &self.conns[ci].name;
        let prefix = &self.policy.agent.snapshot_prefix;
        let mut volumes: BTreeSet<(String, String)> = changed.volumes.iter().cloned().collect();
        if !changed.volume_names.is_empty() {
            volumes.extend(
                inv.volumes
                    .iter()
                    .filter(|v| changed.volume_names.contains(&v.name))
                    .map(|v| (v.svm.clone(), v.name.clone())),
            );
        }
        for o in self
            .memory
            .open
            .values()
            .filter(|o| &o.cycle.cluster == cluster)
        {
            let c = &o.cycle;
            let driven = !crate::agent::observe::has_prefix(&c.backing_snapshot, prefix);
            let settling = o.settle_after.is_some_and(|s| inv.at <= s);
            if settling || c.state == CycleState::Locked || driven {
                volumes.insert((c.svm.clone(), c.volume.clone()));
            }
        }
        Some(volumes.into_iter().collect())
    }

    /// The planner's view of every cluster that was discovered (last known if now unreachable),
    /// kept while every listing's [`presence`](Inventory::presence) is the same (what it copies
    /// changes only with a whole read).
    pub(super) fn observed(&mut self) -> Arc<Observed> {
        let presence: Vec<Option<u64>> = self
            .views
            .iter()
            .map(|v| v.inventory.as_ref().map(|i| i.presence))
            .collect();
        if let Some((p, o)) = &self.observed_memo {
            if *p == presence {
                return o.clone();
            }
        }
        let mut observed = Observed::default();
        for (ci, v) in self.views.iter().enumerate() {
            if let Some(inv) = &v.inventory {
                observed.clusters.push(inv.observed(&self.conns[ci].name));
            }
        }
        let observed = Arc::new(observed);
        self.observed_memo = Some((presence, observed.clone()));
        observed
    }

    /// Daily: occurrences older than any pass looks at are forgotten, warnings may repeat, and
    /// the journal drops what is past its retention.
    fn prune(&mut self, now: DateTime<Utc>) {
        if self
            .memory
            .last_prune
            .is_some_and(|t| now - t < TimeDelta::days(1))
        {
            return;
        }
        self.memory.last_prune = Some(now);
        let horizon = now - decide::lookback(&self.policy) - TimeDelta::days(1);
        self.memory.started.retain(|o| o.start >= horizon);
        self.memory.warned.clear();
        self.memory.recorded.clear();
        self.memory.locked_sizes.clear();
        let pruned = self.ctx.journal.prune(now - journal::RETENTION);
        // Conflicts or locked space pruned (or perhaps): read every volume's again. Pruned
        // cycles are forgotten by the journal's record of cycle writes.
        if pruned
            .as_ref()
            .map_or(true, |p| p.conflicts > 0 || p.locked_space > 0)
        {
            self.conflict_reads = ConflictReads::default();
        }
        match pruned {
            Ok(p) if p.cycles == 0 => {}
            Ok(p) => tracing::info!("journal: pruned {} cycles older than 400 days", p.cycles),
            Err(e) => tracing::error!("journal prune failed: {e}"),
        }
    }

    /// Publishes the status for the HTTP API and the metrics.
    pub(super) fn publish(&mut self, now: DateTime<Utc>, observed: &Observed) {
        super::metrics::publish(&self.metrics, &self.policy, &self.views, &self.memory, now);
        let copies = super::managed::statuses(&self.policy, observed, &self.views, &self.memory);
        self.metrics.managed.publish(&copies, &self.memory.excluded);
        let clusters = self
            .views
            .iter()
            .zip(&self.conns)
            .map(|(v, c)| ClusterStatus {
                name: c.name.clone(),
                reachable: v.reachable,
                version: v.inventory.as_ref().map(|i| i.info.version.clone()),
                timezone: v.inventory.as_ref().map(|i| i.info.timezone.clone()),
                reached_once: v.reached_once,
                last_error: v.last_error.clone(),
                flexclone_license: v
                    .inventory
                    .as_ref()
                    .map(|i| format!("{:?}", i.flexclone).to_lowercase()),
            })
            .collect();
        self.journal_lists.update(
            &self.ctx.journal,
            STATUS_RECENT,
            now - STATUS_CONFLICT_AGE,
            STATUS_CONFLICTS,
        );
        self.board.set(Status {
            generated_at: Some(now),
            clusters,
            live_cycles: self
                .memory
                .open
                .values()
                .map(|o| LiveCycle::of(&o.cycle))
                .collect(),
            recent_cycles: self.journal_lists.recent.clone(),
            conflicts: self.journal_lists.conflicts.clone(),
            excluded_volumes: self
                .memory
                .excluded
                .iter()
                .map(|(volume, _, reason)| status::ExcludedVolume {
                    volume: volume.to_string(),
                    reason: reason.clone(),
                })
                .collect(),
            next_create_at: self.memory.next_create,
            flexclone_recommendations: self
                .memory
                .recommended
                .iter()
                .map(|(k, f)| status::FlexCloneRecommendation {
                    cluster: k.cluster.clone(),
                    svm: k.svm.clone(),
                    volume: k.volume.clone(),
                    since: f.since,
                    evidence: f.evidence.clone(),
                    locked_bytes: f.locked_bytes,
                    licensed: f.licensed,
                })
                .collect(),
            shutting_down: self.shutting_down,
            managed_snapshots: copies,
            hazards: self.audits.status(),
            journal: Some(status::JournalStatus::of(&self.ctx.journal.health())),
            ha: self.ha.as_ref().map(|ha| {
                let e = ha.election.borrow();
                status::HaStatus {
                    identity: e.identity.clone(),
                    role: if self.leading { "leader" } else { "standby" }.into(),
                    leader: e.leader.clone(),
                    revision: e.revision,
                    backend_up: e.backend_up,
                    leader_changes: e.changes,
                }
            }),
        });
    }
}

/// A cluster read (whole, or re-read): its listing replaces the view's, and the cluster is
/// reachable again.
fn reached(view: &mut super::state::ClusterView, name: &str, mut inv: Inventory) {
    // A whole read replaces the listing still in the view (a re-read took it).
    if let Some(before) = &view.inventory {
        inv.keep_presence_of(before);
    }
    if !view.reachable && view.failures > 0 {
        tracing::info!(cluster = %name, "cluster reachable again");
    } else if !view.reached_once {
        tracing::info!(
            cluster = %name, version = %inv.info.version,
            timezone = %inv.info.timezone,
            flexclone = ?inv.flexclone,
            "cluster discovered"
        );
    }
    view.inventory = Some(inv);
    view.reachable = true;
    view.reached_once = true;
    view.failures = 0;
    view.retry_at = None;
    view.last_error = None;
}

/// What [`read_waits_for`] knows of a cluster's listing.
struct LastRead {
    /// When it was last read whole, and how long that took.
    full_at: DateTime<Utc>,
    took: TimeDelta,
    /// A scheduled snapshot fired since it was up to date.
    scheduled_since: bool,
}

/// The planned create a cluster's whole read waits for: the first one (`planned`) when the read
/// is due only by the listing's age (read whole an `interval` ago or more, and no scheduled
/// snapshot since), would still be running at it (it takes as long as the last one) and the
/// listing is less than two intervals old. A read that takes no time (virtual, or a small
/// cluster) never waits; a listing never ages past two intervals whatever the creates.
fn read_waits_for(
    last: &LastRead,
    now: DateTime<Utc>,
    interval: TimeDelta,
    planned: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let age = now - last.full_at;
    let planned = planned?;
    (!last.scheduled_since
        && last.took > TimeDelta::zero()
        && age >= interval
        && age < interval + interval
        && planned <= now + last.took)
        .then_some(planned)
}

/// A cluster a refresh reads: its index, the changes noted since its last read, and the volumes
/// to read again (`None`: the whole cluster).
type DueRead = (usize, Changed, Option<Vec<(String, String)>>);

/// What [`Agent::missing`] is kept for: the policy (by identity) and each listing's presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MissingKey {
    policy: usize,
    presence: Vec<Option<u64>>,
}

/// Whether a snapshot schedule of the cluster fired after its listing was last up to date: a
/// scheduled snapshot taken, and perhaps an old one rotated out, on any of its volumes.
fn scheduled_since(inv: &Inventory, now: DateTime<Utc>) -> bool {
    let Ok(tz) = inv.info.timezone.parse::<chrono_tz::Tz>() else {
        return true;
    };
    let used: HashSet<&str> = inv
        .snapshot_policies
        .iter()
        .flat_map(|p| p.copies.iter().map(|c| c.schedule.as_str()))
        .collect();
    inv.schedules
        .iter()
        .filter(|s| used.contains(s.name.as_str()))
        .any(|s| {
            s.recurrence
                .next_after(tz, inv.at)
                .is_some_and(|t| t <= now)
        })
}

#[cfg(test)]
mod tests {
    use super::{read_waits_for, LastRead};
    use chrono::{DateTime, TimeDelta, Utc};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// Worked by hand: a one-minute interval, a listing read whole at 01:08:50, reads taking 20 s.
    #[test]
    fn a_whole_read_waits_only_for_a_create_it_would_overlap_and_never_past_two_intervals() {
        let full_at = t("2027-01-01T01:08:50Z");
        let minute = TimeDelta::minutes(1);
        let took = TimeDelta::seconds(20);
        let create = Some(t("2027-01-01T01:10:00Z"));
        let at = |now: &str, took: TimeDelta, planned: Option<DateTime<Utc>>| {
            let last = LastRead {
                full_at,
                took,
                scheduled_since: false,
            };
            read_waits_for(&last, t(now), minute, planned)
        };
        // Due at 01:09:50, it would run until 01:10:10: it waits for the 01:10 create.
        assert_eq!(at("2027-01-01T01:09:50Z", took, create), create);
        // At the create itself (due now), still.
        assert_eq!(at("2027-01-01T01:10:00Z", took, create), create);
        // A read that ends by 01:09:59 leaves the create alone; one that ends at 01:10 does not.
        assert_eq!(
            at("2027-01-01T01:09:50Z", TimeDelta::seconds(9), create),
            None
        );
        assert_eq!(
            at("2027-01-01T01:09:50Z", TimeDelta::seconds(10), create),
            create
        );
        // Not due yet: nothing to put off.
        assert_eq!(at("2027-01-01T01:09:49Z", took, create), None);
        // Two intervals old: read whatever is planned (a create stuck in the past included).
        assert_eq!(at("2027-01-01T01:10:50Z", took, create), None);
        assert_eq!(at("2027-01-01T01:10:49Z", took, create), create);
        // A read that takes no time, or no create planned: never.
        assert_eq!(at("2027-01-01T01:09:50Z", TimeDelta::zero(), create), None);
        assert_eq!(at("2027-01-01T01:09:50Z", took, None), None);
        // A scheduled snapshot since the listing: read now, whatever is planned (the creates
        // would wait for this read anyway).
        let last = LastRead {
            full_at,
            took,
            scheduled_since: true,
        };
        assert_eq!(
            read_waits_for(&last, t("2027-01-01T01:09:50Z"), minute, create),
            None
        );
    }
}
