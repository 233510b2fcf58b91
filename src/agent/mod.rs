//! The agent (`snapwarden run`): one reconcile loop that discovers, observes, plans, creates and
//! releases backing snapshots and clones between scheduled snapshots.
//!
//! The loop waits for an [`Event`] (a planned instant, a hook or tool that ended, a reload, a
//! shutdown) or its own next deadline, then runs one pass (`pass.rs`): it reads the clock once,
//! rediscovers the clusters that need it, and goes through the stages of [`decide`] — each a
//! pure decision over an immutable view — applying each stage's actions (`act.rs`,
//! `lifecycle.rs`, the executor) before the next. Nothing is carried from pass to pass as a hint:
//! the open cycles are the journal's, confirmed against ONTAP. Time comes from an injected
//! [`Clock`]: wall-clock time in `run`, virtual time in tests and `simulate`.

mod act;
pub mod allocator;
mod audit;
mod changes;
pub mod clock;
mod conflict_reads;
pub mod connect;
pub mod cycle;
pub mod decide;
pub mod discovery;
pub mod doctor;
pub mod driver;
mod executor;
pub mod hook;
pub mod http;
pub mod journal;
mod lifecycle;
pub mod managed;
pub mod metrics;
mod observe;
mod pass;
pub mod recommend;
pub mod reload;
pub mod stage;
mod startup;
pub mod state;
pub mod status;
mod take;
mod trigger;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{mpsc, watch};

use crate::config::Policy;
use crate::ha::{Election, LeaderElector};
use crate::ontap::Ontap;

use clock::Clock;
use cycle::{Cycle, CycleState};
use executor::{ClusterConn, Ctx};
use hook::{HookOutcome, HookSpec};
use journal::{Journal, JournalError};
use metrics::Metrics;
use state::{ClusterView, Memory, Step};
use status::StatusBoard;

pub use clock::{SystemClock, TokioClock};

/// What wakes the loop besides its own deadlines.
#[derive(Debug)]
pub enum Event {
    /// A planned instant came (real-time trigger); carries the instant it was armed for.
    Trigger(DateTime<Utc>),
    /// A cycle's hook ended.
    HookEnded { cycle: String, outcome: HookOutcome },
    /// SIGTERM/SIGINT or the embedding program: stop starting cycles, release, exit.
    Shutdown,
    /// A reloaded, validated policy to swap in ([`reload`]); `applied` is answered once it is
    /// in effect (what `POST /-/reload` waits for).
    Reload {
        policy: Arc<Policy>,
        applied: Option<tokio::sync::oneshot::Sender<()>>,
    },
    /// A driver window's tool stopped (its Veeam session, or its hook): for each of `cycles`.
    DriverEnded {
        cycles: Vec<String>,
        report: driver::Report,
    },
    /// A driver window's tool run says something on the way (a failed attempt): the cycles'
    /// detail, for `status`.
    DriverNote { cycles: Vec<String>, detail: String },
}

/// How the loop is woken at planned instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triggers {
    /// tokio-cron-scheduler one-shot jobs (real time, `run`).
    Cron,
    /// The loop's own clock sleep (virtual time: tests, `simulate`).
    Clock,
}

/// How hooks are run: from the policy, or replaced (`simulate` draws backup durations).
pub type HookOverride = Arc<dyn Fn(&Cycle) -> Option<HookSpec> + Send + Sync>;

/// Everything the agent needs besides the policy and the clusters.
pub struct Options {
    pub state_dir: PathBuf,
    pub triggers: Triggers,
    /// When set, decides each cycle's hook instead of the policy (`simulate`).
    pub hooks: Option<HookOverride>,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Trigger(String),
}

/// A policy cluster and how to reach it.
pub struct ClusterClient {
    /// The policy's name for it.
    pub name: String,
    pub ontap: Arc<dyn Ontap>,
}

/// A cron trigger that never fires is covered by the loop's own timer this much later.
const TRIGGER_BACKSTOP: TimeDelta = TimeDelta::seconds(5);
/// How often something due but blocked (its cluster unreachable) is looked at again.
const STUCK_PACE: TimeDelta = TimeDelta::seconds(5);

/// With `[ha]`: the election this replica takes part in.
struct Ha {
    elector: Arc<dyn LeaderElector>,
    election: watch::Receiver<Election>,
    /// When this replica last became leader. Occurrences planned before it were the previous
    /// leader's: they are adopted from ONTAP, never started again.
    leading_since: Option<DateTime<Utc>>,
}

/// Veeam clients by `[[veeam]]` name.
#[derive(Default)]
struct VeeamClients {
    /// The embedded simulator's ([`Agent::with_veeam`]).
    given: HashMap<String, Arc<crate::veeam::VeeamClient>>,
    /// Built from the policy, with the `[[veeam]]` they were built from (a reload that changes
    /// it builds a new one).
    built: HashMap<String, (crate::config::VeeamServer, Arc<crate::veeam::VeeamClient>)>,
}

/// The running agent.
pub struct Agent {
    policy: Arc<Policy>,
    ctx: Arc<Ctx>,
    conns: Vec<Arc<ClusterConn>>,
    /// One per policy cluster, in policy order.
    views: Vec<ClusterView>,
    /// Open and recent cycles, occurrences accounted for, recommendations in force.
    memory: Memory,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    stop_hooks: watch::Sender<bool>,
    board: Arc<StatusBoard>,
    metrics: Arc<Metrics>,
    /// What `/api/v1/plan` plans from, as of the last pass.
    plan_board: Arc<http::PlanBoard>,
    http: reqwest::Client,
    options: Options,
    shutting_down: bool,
    /// When this agent started: occurrences planned before it that can no longer run are not
    /// recorded as missed (they were never this run's to make).
    started_at: DateTime<Utc>,
    veeam: VeeamClients,
    ha: Option<Ha>,
    /// Whether this replica led at its last pass (always, without `[ha]`).
    leading: bool,
    /// The status board's recent cycles and conflicts, read from the journal when it changed.
    journal_lists: status::JournalLists,
    /// Whether passes publish metrics, the status board and the plan board (not when nobody
    /// can read them: [`Agent::unobserved`]).
    observed_by_others: bool,
    /// Conflicts read for earlier recommendation decisions.
    conflict_reads: conflict_reads::ConflictReads,
    /// The plan kept between passes (`planner::Rolling`).
    rolling: crate::planner::Rolling,
    /// Per volume of the last plan: its lifecycles and how many of the first were started
    /// (`decide::started_prefix`), carried to the next pass while the list is the same.
    started_prefix: Vec<(Arc<[crate::planner::Lifecycle]>, usize)>,
    /// The audit's findings and when it last ran (`audit.rs`).
    audits: audit::Audits,
    /// What the listings said of the policy's volumes, and for which policy and listings.
    missing_memo: Option<(pass::MissingKey, Arc<Vec<decide::Excluded>>)>,
    /// The planner's view of the clusters, and the listings' presences it was made from.
    observed_memo: Option<(Vec<Option<u64>>, Arc<crate::planner::Observed>)>,
}

impl Agent {
    /// Opens the journal and loads the cycles that may still own objects.
    pub fn new(
        policy: Arc<Policy>,
        clusters: Vec<ClusterClient>,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Result<Agent, AgentError> {
        let journal = Arc::new(Journal::open(&options.state_dir)?);
        let now = clock.now();
        let memory = startup::memory(&journal, &policy, now)?;
        let metrics = Arc::new(Metrics::new());
        metrics.config_loaded(&policy, now);
        metrics.watch_journal(journal.health());
        for key in memory.recommended.keys() {
            metrics.set_flexclone_recommended(&key.cluster, &key.svm, &key.volume, true);
        }
        let conns = startup::connections(&policy, &clusters, &metrics);
        let views = policy
            .clusters
            .iter()
            .map(|_| ClusterView::default())
            .collect();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (stop_hooks, _) = watch::channel(false);
        let plan_board = Arc::new(http::PlanBoard::new(clock.clone()));
        let board = Arc::new(StatusBoard::default());
        board.watch_journal(journal.health());
        let ctx = Arc::new(Ctx {
            clock,
            journal,
            prefix: policy.agent.snapshot_prefix.clone(),
            fence: None,
        });
        Ok(Agent {
            policy,
            ctx,
            conns,
            views,
            memory,
            events_tx,
            events_rx,
            stop_hooks,
            board,
            metrics,
            plan_board,
            http: reqwest::Client::new(),
            options,
            shutting_down: false,
            started_at: now,
            veeam: VeeamClients::default(),
            ha: None,
            leading: true,
            journal_lists: status::JournalLists::default(),
            observed_by_others: true,
            conflict_reads: conflict_reads::ConflictReads::default(),
            rolling: crate::planner::Rolling::default(),
            started_prefix: Vec::new(),
            missing_memo: None,
            observed_memo: None,
            audits: audit::Audits::default(),
        })
    }

    /// Runs as one replica of an election (`[ha]`): it changes nothing until it leads, and the
    /// executor re-checks leadership right before every ONTAP mutation.
    pub fn with_elector(mut self, elector: Arc<dyn LeaderElector>) -> Agent {
        self.ctx.journal.set_replica(elector.identity());
        self.ctx = Arc::new(Ctx {
            clock: self.ctx.clock.clone(),
            journal: self.ctx.journal.clone(),
            prefix: self.ctx.prefix.clone(),
            fence: Some(elector.clone()),
        });
        let election = elector.subscribe();
        self.metrics.election(&election.borrow());
        self.ha = Some(Ha {
            elector,
            election,
            leading_since: None,
        });
        self.leading = false;
        self
    }

    /// Uses these Veeam clients (by `[[veeam]]` name) instead of building them from the policy:
    /// the embedded simulator's (`connect::Connections::veeam`).
    pub fn with_veeam(mut self, clients: Vec<(String, Arc<crate::veeam::VeeamClient>)>) -> Agent {
        self.veeam.given.extend(clients);
        self
    }

    /// For an agent whose metrics, status board and plan board nobody reads (`simulate` serves
    /// no HTTP): its passes decide and act as always but publish none of them, which would
    /// otherwise cost each pass the whole estate.
    pub fn unobserved(mut self) -> Agent {
        self.observed_by_others = false;
        self
    }

    /// Where the status is published (for the HTTP API).
    pub fn status_board(&self) -> Arc<StatusBoard> {
        self.board.clone()
    }

    /// What `/api/v1/plan` plans from.
    pub fn plan_board(&self) -> Arc<http::PlanBoard> {
        self.plan_board.clone()
    }

    /// The agent's metrics (for `/metrics`).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// A sender for [`Event::Shutdown`] (signal handlers, tests).
    pub fn events(&self) -> mpsc::UnboundedSender<Event> {
        self.events_tx.clone()
    }

    pub fn journal(&self) -> Arc<Journal> {
        self.ctx.journal.clone()
    }

    /// Runs until [`Event::Shutdown`], then releases what is in flight (bounded by
    /// `[agent] shutdown_timeout`) and returns the cycles it had to leave for the next start.
    pub async fn run(mut self) -> Result<Vec<Cycle>, AgentError> {
        let mut cron = match self.options.triggers {
            Triggers::Cron => Some(
                trigger::CronTrigger::start(self.events_tx.clone())
                    .await
                    .map_err(AgentError::Trigger)?,
            ),
            Triggers::Clock => None,
        };
        // The loop owns the receiver, so that a pass can be raced against a shutdown.
        let (_, idle) = mpsc::unbounded_channel();
        let mut rx = std::mem::replace(&mut self.events_rx, idle);
        let mut kept: Vec<Event> = Vec::new();
        self.recover().await;
        let mut stop = self.pass_unless_stopped(true, &mut rx, &mut kept).await;
        while !stop {
            let now = self.ctx.clock.now();
            let deadline = self.next_deadline(now);
            let planned = [self.memory.next_create, self.memory.next_managed]
                .into_iter()
                .flatten()
                .min();
            let wake_at = match (&mut cron, planned) {
                (Some(cron), Some(at)) => {
                    cron.arm(at, now).await;
                    deadline.min(at + TRIGGER_BACKSTOP)
                }
                (None, Some(at)) => deadline.min(at),
                (_, None) => deadline,
            };
            let first = if kept.is_empty() {
                tokio::select! {
                    ev = rx.recv() => ev,
                    _ = self.ctx.clock.sleep_until(wake_at) => None,
                    _ = election_changed(&mut self.ha) => None,
                }
            } else {
                None
            };
            let mut force = false;
            let mut pending: Vec<Event> = std::mem::take(&mut kept);
            pending.extend(first);
            while let Ok(ev) = rx.try_recv() {
                pending.push(ev);
            }
            for ev in pending {
                match ev {
                    Event::Shutdown => stop = true,
                    Event::Trigger(at) => {
                        // The cron crate may fire up to a second early: wait out the rest.
                        self.ctx.clock.sleep_until(at).await;
                        force = true;
                    }
                    Event::Reload { policy, applied } => {
                        self.apply_policy(policy);
                        if let Some(applied) = applied {
                            // The reloader may have given up waiting: nothing to tell then.
                            let _ = applied.send(());
                        }
                        force = true;
                    }
                    other => self.event(other),
                }
            }
            if stop {
                break;
            }
            if [self.memory.next_create, self.memory.next_managed]
                .into_iter()
                .flatten()
                .any(|at| at <= self.ctx.clock.now())
            {
                force = true;
            }
            stop = self.pass_unless_stopped(force, &mut rx, &mut kept).await;
        }
        if let Some(cron) = cron {
            cron.stop().await;
        }
        Ok(self.shutdown(&mut rx).await)
    }

    /// Runs a pass unless a shutdown comes first; other events that arrive meanwhile are kept for
    /// the loop. `true`: stop (the pass may have been cut short — everything it had begun is in
    /// the journal, intent first, for the shutdown's release or the next start).
    async fn pass_unless_stopped(
        &mut self,
        force: bool,
        rx: &mut mpsc::UnboundedReceiver<Event>,
        kept: &mut Vec<Event>,
    ) -> bool {
        let pass = self.pass(force);
        tokio::pin!(pass);
        loop {
            tokio::select! {
                _ = &mut pass => return false,
                ev = rx.recv() => match ev {
                    Some(Event::Shutdown) | None => return true,
                    Some(other) => kept.push(other),
                },
            }
        }
    }

    /// The next instant the loop must act on its own (not counting planned creates).
    fn next_deadline(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut at = now + TimeDelta::hours(1);
        // Right after a pass, anything already due is stuck (its cluster is unreachable): look
        // again at a walking pace instead of spinning. What is due later (a 1 s hold) keeps
        // its instant.
        let pace = |t: DateTime<Utc>| if t > now { t } else { now + STUCK_PACE };
        for o in self.memory.open.values() {
            if let Some(t) = o.step.wake_at() {
                at = at.min(pace(t));
            }
            // Late releases are reported when their deadline passes.
            if let Some(d) = o.cycle.release_deadline {
                if d > now && o.cycle.state != CycleState::Locked {
                    at = at.min(d + TimeDelta::seconds(1));
                }
            }
        }
        for (ci, v) in self.views.iter().enumerate() {
            match (&v.inventory, v.retry_at) {
                (_, Some(r)) => at = at.min(r),
                (Some(inv), None) => {
                    if self.policy.volumes.iter().any(|v| v.cluster == ci) {
                        // A read put off for a planned create comes right after it.
                        let stale = inv.at + self.policy.agent.observe_interval;
                        at = at.min(v.read_put_off.map_or(stale, |p| p.max(stale)));
                    }
                }
                (None, None) => at = at.min(pace(now)),
            }
        }
        if self.leading {
            if let Some(audit) = self.audits.next_at(self.policy.agent.audit_interval) {
                at = at.min(audit);
            }
        }
        at.max(now)
    }

    /// Stops hooks, releases what is in flight within `shutdown_timeout`, and returns what is
    /// left open for the next start.
    async fn shutdown(&mut self, rx: &mut mpsc::UnboundedReceiver<Event>) -> Vec<Cycle> {
        self.shutting_down = true;
        let bound = self.ctx.clock.now() + self.policy.agent.shutdown_timeout;
        tracing::info!(
            open_cycles = self.memory.open.len(),
            "stopping: no new cycles; releasing the cycles in flight by {}",
            bound.to_rfc3339()
        );
        // Hooks may have ended already: nobody listens then.
        let _ = self.stop_hooks.send(true);
        while self.memory.open.values().any(|o| o.step == Step::Hook)
            && self.ctx.clock.now() < bound
        {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = self.ctx.clock.sleep_until(bound) => None,
            };
            match ev {
                Some(ev @ Event::HookEnded { .. }) => self.event(ev),
                Some(_) => {}
                None => break,
            }
        }
        loop {
            // Nothing waits any more: holds and retries are due now.
            for o in self.memory.open.values_mut() {
                o.step = match o.step {
                    Step::Held { .. } | Step::Retry(_) => Step::Release,
                    Step::Locked { unpinned, .. } => Step::Locked {
                        unpinned,
                        retry: None,
                    },
                    other => other,
                };
            }
            // A cluster that hangs must not hold the agent past its deadline: the pass is cut
            // short there (what it began is in the journal for the next start).
            let clock = self.ctx.clock.clone();
            let in_time = tokio::select! {
                _ = self.pass(false) => true,
                _ = clock.sleep_until(bound) => false,
            };
            if !in_time {
                tracing::warn!(
                    "shutdown_timeout reached while releasing: the rest is left for the next start"
                );
                break;
            }
            if !self.leading {
                // A standby changes nothing; its open cycles wait for it to lead again.
                break;
            }
            let pending = self.memory.open.values().any(|o| {
                o.cycle.state != CycleState::Locked
                    && !matches!(o.step, Step::Tool | Step::ToolEnded)
            });
            let now = self.ctx.clock.now();
            if !pending || now >= bound {
                break;
            }
            let next = (now + TimeDelta::seconds(2)).min(bound);
            self.ctx.clock.sleep_until(next).await;
        }
        // The journal's open cycles: those in memory, and any whose create a shutdown cut short.
        let left: Vec<Cycle> = self.ctx.journal.open_cycles().unwrap_or_else(|e| {
            tracing::error!("cannot read the open cycles from the journal: {e}");
            self.memory.open.values().map(|o| o.cycle.clone()).collect()
        });
        for c in &left {
            tracing::warn!(
                cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
                snapshot = %c.backing_snapshot, cycle = %c.id, state = c.state.as_str(),
                "left for the next start (recorded in the journal)"
            );
        }
        let observed = self.observed();
        self.publish(self.ctx.clock.now(), &observed);
        left
    }
}

/// Resolves when the election changes; never without an election (or once it is gone).
async fn election_changed(ha: &mut Option<Ha>) {
    if let Some(ha) = ha {
        if ha.election.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}
