//! The agent (`snapwarden run`): one reconcile loop that discovers, observes, plans, creates and
//! releases backing snapshots and clones between scheduled snapshots.
//!
//! Every pass re-reads the clusters (discovery, one bulk snapshot and LUN listing each), records
//! what it observes (chain conflicts, locks with their pins, late releases, foreign snapshots),
//! asks the pure planner what is due, and carries that out with the executor. Nothing is carried
//! from pass to pass as a hint: the open cycles are the journal's, confirmed against ONTAP. The
//! loop is woken by a closed set of [`Event`]s and by its own deadlines, on an injected
//! [`Clock`]: wall-clock time in `run`, virtual time in tests and `simulate`.

pub mod clock;
pub mod connect;
pub mod cycle;
pub mod discovery;
pub mod driver;
mod executor;
pub mod hook;
pub mod http;
pub mod journal;
pub mod metrics;
mod observe;
pub mod recommend;
pub mod reload;
pub mod status;
mod trigger;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::config::{CloneMethod, Driver, HookAction, OnOverrun, Policy, Window};
use crate::error::error_chain;
use crate::ha::{Election, LeaderElector};
use crate::ontap::{LicenseState, Ontap, VolumeRef};
use crate::planner::{self, Observed, Outcome, VolumeRetention};

use clock::Clock;
use cycle::{CloneKind, CloneLun, ConflictKind, Cycle, CycleResult, CycleState, ObservedConflict};
use discovery::{Depth, Inventory};
use executor::{ClusterConn, Ctx};
use hook::{HookOutcome, HookSpec};
use journal::{Journal, JournalError, RecommendationEvent, RecommendationKind};
use metrics::Metrics;
use status::{ClusterStatus, LiveCycle, Status, StatusBoard};

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

/// What the agent knows of one cluster between passes.
struct ClusterView {
    inventory: Option<Inventory>,
    reachable: bool,
    reached_once: bool,
    failures: u32,
    retry_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

/// Lookback of every pass: occurrences whose lifecycle may still be live, or was missed.
fn lookback(policy: &Policy) -> TimeDelta {
    let longest = policy
        .windows
        .iter()
        .map(|w| w.shift_limit + w.shift_limit + w.max)
        .max()
        .unwrap_or_default();
    longest + policy.agent.guard + TimeDelta::hours(1)
}

/// How far ahead each pass plans (the next trigger is the first create in this range).
const LOOKAHEAD: TimeDelta = TimeDelta::hours(26);
/// First retry of an unreachable cluster; doubles up to [`MAX_CLUSTER_BACKOFF`].
const CLUSTER_BACKOFF: TimeDelta = TimeDelta::seconds(10);
const MAX_CLUSTER_BACKOFF: TimeDelta = TimeDelta::minutes(5);
/// Released cycles kept in memory for conflict detection after release and "verify gone".
const RECENT_KEEP: TimeDelta = TimeDelta::hours(24);
/// A cron trigger that never fires is covered by the loop's own timer this much later.
const TRIGGER_BACKSTOP: TimeDelta = TimeDelta::seconds(5);
/// How often something due but blocked (its cluster unreachable) is looked at again.
const STUCK_PACE: TimeDelta = TimeDelta::seconds(5);
/// Recent cycles and conflicts in the status.
const STATUS_RECENT: usize = 50;
const STATUS_CONFLICTS: usize = 100;
const STATUS_CONFLICT_AGE: TimeDelta = TimeDelta::days(7);
/// How often every recommendation in force is decided again, so that it clears without a new
/// conflict.
const RECOMMEND_SWEEP: TimeDelta = TimeDelta::days(1);

/// A volume: (cluster, svm, volume).
type VolumeKey = (String, String, String);

/// A FlexClone recommendation in force (C8).
struct InForce {
    since: DateTime<Utc>,
    evidence: String,
    /// The space the volume's locked backing snapshots hold, as last evaluated (`None`: ONTAP
    /// reported none, or not evaluated since the agent started).
    locked_bytes: Option<u64>,
    licensed: Option<bool>,
    /// The switch to FlexClone (`use_when_licensed`) was journaled.
    switched: bool,
}

/// The running agent.
pub struct Agent {
    policy: Arc<Policy>,
    ctx: Arc<Ctx>,
    conns: Vec<Arc<ClusterConn>>,
    views: Vec<ClusterView>,
    /// Open cycles (not terminal), by id.
    cycles: BTreeMap<String, Cycle>,
    /// Released within [`RECENT_KEEP`].
    recent: VecDeque<Cycle>,
    /// Occurrences (window, volume index, window start) already recorded.
    started: HashSet<(String, usize, DateTime<Utc>)>,
    /// Cycles whose hook runs.
    running_hooks: HashSet<String>,
    /// Cycles without a hook: released at this instant.
    hold_until: HashMap<String, DateTime<Utc>>,
    /// Release retries: when, and how many so far.
    retry: HashMap<String, (DateTime<Utc>, u32)>,
    /// A listing must be newer than this to settle the cycle's unconfirmed objects.
    settle_after: HashMap<String, DateTime<Utc>>,
    /// Locked cycles whose pins are gone: retry their release.
    unpinned: HashSet<String>,
    /// Volumes left out this pass, and why.
    excluded: BTreeMap<usize, String>,
    next_create: Option<DateTime<Utc>>,
    warned: HashSet<String>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    stop_hooks: watch::Sender<bool>,
    board: Arc<StatusBoard>,
    metrics: Arc<Metrics>,
    /// What `/api/v1/plan` plans from, as of the last pass.
    plan_board: Arc<http::PlanBoard>,
    http: reqwest::Client,
    options: Options,
    last_prune: Option<DateTime<Utc>>,
    shutting_down: bool,
    /// When this agent started: occurrences planned before it that can no longer run are not
    /// recorded as missed (they were never this run's to make).
    started_at: DateTime<Utc>,
    /// FlexClone recommendations in force, as journaled.
    recommended: BTreeMap<VolumeKey, InForce>,
    /// Volumes with a new counting conflict since their recommendation was last decided.
    reconsider: BTreeSet<VolumeKey>,
    last_recommend_sweep: Option<DateTime<Utc>>,
    /// Veeam clients by `[[veeam]]` name: the embedded simulator's ([`Agent::with_veeam`]), else
    /// built from the policy at first use.
    veeam: HashMap<String, Arc<crate::veeam::VeeamClient>>,
    /// Clients built from the policy, with the `[[veeam]]` they were built from (a reload that
    /// changes it builds a new one).
    veeam_built: HashMap<String, (crate::config::VeeamServer, Arc<crate::veeam::VeeamClient>)>,
    /// Driver cycles whose tool has stopped: settled (released or locked) by the next listing.
    driver_ended: HashSet<String>,
    /// With `[ha]`: the election; only its leader changes anything.
    elector: Option<Arc<dyn LeaderElector>>,
    election: Option<watch::Receiver<Election>>,
    /// Whether this replica led at its last pass (always, without `[ha]`).
    leading: bool,
    /// With `[ha]`: when this replica last became leader. Occurrences planned before it were
    /// the previous leader's: they are adopted from ONTAP, never started again.
    leading_since: Option<DateTime<Utc>>,
    /// The status board's recent cycles and conflicts, read from the journal when it changed.
    journal_lists: status::JournalLists,
    /// The plan kept between passes (`planner::Rolling`).
    rolling: planner::Rolling,
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
        let mut cycles = BTreeMap::new();
        for c in journal.open_cycles()? {
            cycles.insert(c.id.clone(), c);
        }
        let mut started = HashSet::new();
        let since = now - lookback(&policy) - TimeDelta::days(1);
        for c in journal.recent_cycles(since, None, 1_000_000)? {
            if let Some(vi) = volume_index(&policy, &c.cluster, &c.svm, &c.volume) {
                started.insert((c.window.clone(), vi, c.window_start));
            }
        }
        let metrics = Arc::new(Metrics::new());
        metrics.config_loaded(&policy, now);
        let mut recommended = BTreeMap::new();
        for e in journal.recommendation_events()? {
            let key = (e.cluster, e.svm, e.volume);
            match e.event {
                RecommendationKind::Raised => {
                    metrics.set_flexclone_recommended(&key.0, &key.1, &key.2, true);
                    let f = InForce {
                        since: e.at,
                        evidence: e.evidence,
                        locked_bytes: None,
                        licensed: None,
                        switched: false,
                    };
                    recommended.insert(key, f);
                }
                RecommendationKind::Switched => {
                    if let Some(f) = recommended.get_mut(&key) {
                        f.switched = true;
                    }
                }
                RecommendationKind::Cleared => {
                    recommended.remove(&key);
                }
            }
        }
        let conns = policy
            .clusters
            .iter()
            .map(|pc| {
                let ontap = clusters
                    .iter()
                    .find(|c| c.name == pc.name)
                    .map(|c| c.ontap.clone())
                    .expect("a client for every policy cluster");
                let ontap: Arc<dyn Ontap> =
                    Arc::new(metrics::Counted::new(ontap, metrics.clone(), &pc.name));
                Arc::new(ClusterConn {
                    name: pc.name.clone(),
                    ontap,
                    permits: Arc::new(Semaphore::new(policy.agent.concurrency)),
                })
            })
            .collect();
        let views = policy
            .clusters
            .iter()
            .map(|_| ClusterView {
                inventory: None,
                reachable: false,
                reached_once: false,
                failures: 0,
                retry_at: None,
                last_error: None,
            })
            .collect();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (stop_hooks, _) = watch::channel(false);
        let plan_board = Arc::new(http::PlanBoard::new(clock.clone()));
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
            cycles,
            recent: VecDeque::new(),
            started,
            running_hooks: HashSet::new(),
            hold_until: HashMap::new(),
            retry: HashMap::new(),
            settle_after: HashMap::new(),
            unpinned: HashSet::new(),
            excluded: BTreeMap::new(),
            next_create: None,
            warned: HashSet::new(),
            events_tx,
            events_rx,
            stop_hooks,
            board: Arc::new(StatusBoard::default()),
            metrics,
            plan_board,
            http: reqwest::Client::new(),
            options,
            last_prune: None,
            shutting_down: false,
            started_at: now,
            recommended,
            reconsider: BTreeSet::new(),
            last_recommend_sweep: None,
            veeam: HashMap::new(),
            veeam_built: HashMap::new(),
            driver_ended: HashSet::new(),
            elector: None,
            election: None,
            leading: true,
            leading_since: None,
            journal_lists: status::JournalLists::default(),
            rolling: planner::Rolling::default(),
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
        self.election = Some(elector.subscribe());
        self.metrics.election(&elector.subscribe().borrow());
        self.elector = Some(elector);
        self.leading = false;
        self
    }

    /// Uses these Veeam clients (by `[[veeam]]` name) instead of building them from the policy:
    /// the embedded simulator's (`connect::Connections::veeam`).
    pub fn with_veeam(mut self, clients: Vec<(String, Arc<crate::veeam::VeeamClient>)>) -> Agent {
        self.veeam.extend(clients);
        self
    }

    /// A cycle whose backing snapshot a backup tool makes (a driver window): its snapshot is not
    /// named with snapwarden's prefix (empty until attributed). Never released by snapwarden.
    fn driven(&self, c: &Cycle) -> bool {
        !observe::has_prefix(&c.backing_snapshot, &self.policy.agent.snapshot_prefix)
    }

    /// The Veeam client of `[[veeam]]` number `server`.
    fn veeam_client(&mut self, server: usize) -> Result<Arc<crate::veeam::VeeamClient>, String> {
        let Some(s) = self.policy.veeam.get(server) else {
            return Err(format!("Veeam server #{server} is not in the policy"));
        };
        if let Some(c) = self.veeam.get(&s.name) {
            return Ok(c.clone());
        }
        if s.is_simulator() {
            return Err(format!(
                "Veeam server {}: url = \"simulator\" needs the embedded simulator (clusters with endpoint = \"simulator\")",
                s.name
            ));
        }
        if let Some((built_from, c)) = self.veeam_built.get(&s.name) {
            if built_from == s {
                return Ok(c.clone());
            }
        }
        // Not cached when it fails: a fixed secret is picked up at the next start.
        let c = Arc::new(crate::veeam::VeeamClient::from_server(s).map_err(|e| error_chain(&e))?);
        self.veeam_built
            .insert(s.name.clone(), (s.clone(), c.clone()));
        Ok(c)
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

    fn now(&self) -> DateTime<Utc> {
        self.ctx.clock.now()
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
        self.recover();
        self.pass(true).await;
        loop {
            let now = self.now();
            let deadline = self.next_deadline(now);
            let wake_at = match (&mut cron, self.next_create) {
                (Some(cron), Some(at)) => {
                    cron.arm(at, now).await;
                    deadline.min(at + TRIGGER_BACKSTOP)
                }
                (None, Some(at)) => deadline.min(at),
                (_, None) => deadline,
            };
            let first = tokio::select! {
                ev = self.events_rx.recv() => ev,
                _ = self.ctx.clock.sleep_until(wake_at) => None,
                _ = election_changed(&mut self.election) => None,
            };
            let mut force = false;
            let mut stop = false;
            let mut pending: Vec<Event> = first.into_iter().collect();
            while let Ok(ev) = self.events_rx.try_recv() {
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
                    Event::HookEnded { cycle, outcome } => self.hook_ended(&cycle, outcome),
                    Event::Reload { policy, applied } => {
                        self.apply_policy(policy);
                        if let Some(applied) = applied {
                            let _ = applied.send(());
                        }
                        force = true;
                    }
                    Event::DriverEnded { cycles, report } => {
                        for id in cycles {
                            self.driver_ended(&id, &report);
                        }
                    }
                    Event::DriverNote { cycles, detail } => {
                        for id in cycles {
                            if let Some(c) = self.cycles.get_mut(&id) {
                                c.detail = detail.clone();
                                let _ = self.ctx.journal.update_cycle(c);
                            }
                        }
                    }
                }
            }
            if stop {
                break;
            }
            if self.next_create.is_some_and(|at| at <= self.now()) {
                force = true;
            }
            self.pass(force).await;
        }
        if let Some(cron) = cron {
            cron.stop().await;
        }
        Ok(self.shutdown().await)
    }

    /// At start: cycles the journal left open are released (their hooks did not survive).
    fn recover(&mut self) {
        let now = self.now();
        let ids: Vec<String> = self.cycles.keys().cloned().collect();
        let mut resume: BTreeMap<(usize, DateTime<Utc>), Vec<Cycle>> = BTreeMap::new();
        for id in ids {
            let driven = self.driven(&self.cycles[&id]);
            let c = self.cycles.get_mut(&id).expect("listed");
            let veeam_window = self
                .policy
                .windows
                .iter()
                .position(|w| w.name == c.window && matches!(w.driver, Driver::Veeam(_)));
            if driven && c.state == CycleState::Backup && c.result.is_none() {
                if let Some(wi) = veeam_window {
                    // The job may still run: follow its running session again (never start it).
                    tracing::warn!(
                        cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
                        cycle = %c.id, "Veeam cycle left open by the previous run: following the job's running session again"
                    );
                    resume
                        .entry((wi, c.window_start))
                        .or_default()
                        .push(c.clone());
                    continue;
                }
            }
            if driven {
                // The tool's snapshot is the tool's: nothing to release; the next listing
                // settles the cycle (released or locked).
                if c.state != CycleState::Locked {
                    tracing::warn!(
                        cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
                        cycle = %c.id, "driver cycle left open by the previous run: its tool was not followed to the end"
                    );
                    if c.result.is_none() {
                        c.result = Some(CycleResult::Failed);
                        c.detail = format!(
                            "interrupted in state {} (the agent stopped while the tool ran); its outcome is unknown",
                            c.state.as_str()
                        );
                    }
                    c.clones_deleted_at.get_or_insert(now);
                    let _ = self.ctx.journal.update_cycle(c);
                    self.driver_ended.insert(id.clone());
                }
                self.settle_after.insert(id, now);
                continue;
            }
            if c.state != CycleState::Locked {
                tracing::warn!(
                    cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
                    snapshot = %c.backing_snapshot, cycle = %c.id, state = c.state.as_str(),
                    "cycle left open by the previous run: releasing it"
                );
                if c.state != CycleState::Releasing && c.result.is_none() {
                    c.result = Some(CycleResult::Failed);
                    c.detail = format!(
                        "interrupted in state {} (the agent stopped); released at the next start",
                        c.state.as_str()
                    );
                }
                c.state = CycleState::Releasing;
                let _ = self.ctx.journal.update_cycle(c);
                self.metrics.orphan("cycle", "released", &id);
            }
            // Anything unconfirmed is settled by a listing taken from now on.
            self.settle_after.insert(id, now);
        }
        for ((wi, _), cycles) in resume {
            self.start_driven(wi, cycles, true);
        }
    }

    /// The next instant the loop must act on its own (not counting planned creates).
    fn next_deadline(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut at = now + TimeDelta::hours(1);
        // Right after a pass, anything already due is stuck (its cluster is unreachable): look
        // again at a walking pace instead of spinning. What is due later (a 1 s hold) keeps
        // its instant.
        let pace = |t: DateTime<Utc>| if t > now { t } else { now + STUCK_PACE };
        for t in self.hold_until.values() {
            at = at.min(pace(*t));
        }
        for (t, _) in self.retry.values() {
            at = at.min(pace(*t));
        }
        for (ci, v) in self.views.iter().enumerate() {
            match (&v.inventory, v.retry_at) {
                (_, Some(r)) => at = at.min(r),
                (Some(inv), None) => {
                    let interval = self.policy.agent.observe_interval;
                    let relevant = self.cluster_has_work(ci);
                    if relevant {
                        at = at.min(inv.at + interval);
                    }
                }
                (None, None) => at = at.min(pace(now)),
            }
        }
        // Late releases are reported when their deadline passes.
        for c in self.cycles.values() {
            if let Some(d) = c.release_deadline {
                if d > now && c.state != CycleState::Locked {
                    at = at.min(d + TimeDelta::seconds(1));
                }
            }
        }
        at.max(now)
    }

    /// Whether periodic observation of a cluster matters (it has volumes in the policy).
    fn cluster_has_work(&self, ci: usize) -> bool {
        self.policy.volumes.iter().any(|v| v.cluster == ci)
    }

    /// One reconcile pass. A standby (`[ha]`) only keeps its discovery warm and publishes.
    async fn pass(&mut self, force_discovery: bool) {
        let now = self.now();
        let (leading, became) = self.leadership(now);
        self.refresh(now, force_discovery || became, None).await;
        let observed = self.observed();
        if leading {
            if self.elector.is_some() {
                self.adopt(now);
            }
            self.observe(now, &observed);
            if !self.shutting_down {
                self.start_due(now, &observed).await;
            }
            self.release_due().await;
            self.recommend();
        } else {
            // Planned creates are the leader's: a standby is woken by the election instead.
            self.next_create = None;
        }
        self.prune(now);
        self.publish();
        self.plan_board.set(self.policy.clone(), Arc::new(observed));
    }

    /// Whether this replica leads now, and whether it just became leader; handles the change.
    fn leadership(&mut self, now: DateTime<Utc>) -> (bool, bool) {
        let Some(elector) = self.elector.clone() else {
            return (true, false);
        };
        let check = elector.check();
        self.ctx.journal.set_revision(check.as_ref().ok().copied());
        if let Some(rx) = &self.election {
            self.metrics.election(&rx.borrow());
        }
        let leading = check.is_ok();
        let became = leading && !self.leading;
        if became {
            tracing::info!(
                identity = %elector.identity(), revision = check.as_ref().ok().copied().unwrap_or_default(),
                "leader: this replica leads; cycles another replica left in flight are adopted from ONTAP"
            );
            self.leading_since = Some(now);
            let _ = self.stop_hooks.send(false);
        } else if !leading && self.leading {
            tracing::warn!(
                identity = %elector.identity(),
                "standby: this replica no longer leads; it changes nothing until it leads again ({})",
                check.as_ref().err().map(|e| e.why.as_str()).unwrap_or("")
            );
            // Hooks drive backup tools, which only the leader touches.
            let _ = self.stop_hooks.send(true);
        }
        self.leading = leading;
        (leading, became)
    }

    /// A new leader takes over the cycles another replica left on ONTAP: a backing snapshot in a
    /// policy volume with the prefix and the marker of a cycle this journal does not know is
    /// journaled as this replica's (adopted, its clones found in the same listing) and released.
    fn adopt(&mut self, now: DateTime<Utc>) {
        let since = self.leading_since.unwrap_or(now);
        let mut adopted = Vec::new();
        for (ci, view) in self.views.iter().enumerate() {
            let Some(inv) = view.inventory.as_ref().filter(|i| i.at >= since) else {
                continue;
            };
            let cluster = &self.conns[ci].name;
            for s in &inv.snapshots {
                if !observe::has_prefix(&s.name, &self.policy.agent.snapshot_prefix) {
                    continue;
                }
                let Some(comment) = s.comment.as_deref() else {
                    continue;
                };
                let Some(id) = cycle::cycle_id_in_comment(comment) else {
                    continue;
                };
                if self.cycles.contains_key(id) || self.recent.iter().any(|c| c.id == id) {
                    continue;
                }
                if !matches!(self.ctx.journal.cycle(id), Ok(None)) {
                    continue;
                }
                let Some(vi) = volume_index(&self.policy, cluster, &s.svm, &s.volume_name) else {
                    continue;
                };
                let window = comment
                    .split(' ')
                    .find_map(|w| w.strip_prefix("window="))
                    .unwrap_or("");
                let Some(wi) = self.policy.windows.iter().position(|w| w.name == window) else {
                    continue;
                };
                let Some(create_at) = s
                    .name
                    .rsplit('.')
                    .next()
                    .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ").ok())
                    .map(|t| t.and_utc())
                else {
                    continue;
                };
                // Only a cycle the previous leader can have been running: its planned create
                // lies within a pass's lookback. Older look-alikes are reported, never adopted.
                if create_at > now || create_at < since - lookback(&self.policy) {
                    continue;
                }
                let clones: Vec<(CloneLun, String)> = inv
                    .luns
                    .iter()
                    .filter(|l| {
                        l.svm == s.svm
                            && l.volume_name == s.volume_name
                            && l.created_as_clone
                            && l.name
                                .strip_prefix(&format!("/vol/{}/{}.", s.volume_name, s.name))
                                .is_some()
                    })
                    .map(|l| {
                        let lun = CloneLun {
                            source: String::new(),
                            path: l.name.clone(),
                        };
                        (lun, l.uuid.clone())
                    })
                    .collect();
                adopted.push((id.to_string(), vi, wi, create_at, s.clone(), clones));
            }
        }
        for (id, vi, wi, create_at, snapshot, clones) in adopted {
            let volume = &self.policy.volumes[vi];
            let window = &self.policy.windows[wi];
            let cycle = Cycle {
                id: id.clone(),
                window: window.name.clone(),
                cluster: self.policy.clusters[volume.cluster].name.clone(),
                svm: volume.svm.clone(),
                volume: volume.name.clone(),
                window_start: create_at,
                create_at,
                release_by: now,
                release_deadline: None,
                backing_snapshot: snapshot.name.clone(),
                clone_kind: CloneKind::SnapRestore,
                clones: clones.iter().map(|(c, _)| c.clone()).collect(),
                state: CycleState::Releasing,
                result: Some(CycleResult::Failed),
                created_at: None,
                clones_created_at: None,
                clones_deleted_at: None,
                released_at: None,
                detail: format!(
                    "adopted from ONTAP by {} after a change of leader: released",
                    self.elector.as_ref().map_or("", |e| e.identity())
                ),
                replica: self.elector.as_ref().map(|e| e.identity().to_string()),
            };
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
                    continue;
                }
                Err(e) => {
                    tracing::error!("cannot journal an adopted cycle: {e}");
                    continue;
                }
            }
            let _ = self.ctx.journal.set_object(
                &id,
                journal::ObjectKind::Snapshot,
                &cycle.backing_snapshot,
                Some(&snapshot.uuid),
                journal::ObjectState::Created,
                now,
            );
            for (lun, uuid) in &clones {
                let _ = self.ctx.journal.set_object(
                    &id,
                    journal::ObjectKind::Lun,
                    &lun.path,
                    Some(uuid),
                    journal::ObjectState::Created,
                    now,
                );
            }
            let _ = self.ctx.journal.record_action(
                Some(&id),
                now,
                "adopt",
                &cycle.backing_snapshot,
                "ok",
                &cycle.detail,
            );
            tracing::warn!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, snapshot = %cycle.backing_snapshot, cycle = %id,
                clones = clones.len(),
                "cycle left by the previous leader adopted from ONTAP: releasing it"
            );
            self.metrics.orphan("cycle", "adopted", &id);
            self.started
                .insert((cycle.window.clone(), vi, cycle.window_start));
            self.cycles.insert(id, cycle);
        }
    }

    /// Discovers every cluster whose inventory is stale, due, or needed to settle a cycle.
    async fn refresh(&mut self, now: DateTime<Utc>, force: bool, only: Option<&[usize]>) {
        let mut due = Vec::new();
        for (ci, view) in self.views.iter().enumerate() {
            if only.is_some_and(|o| !o.contains(&ci)) {
                continue;
            }
            if view.retry_at.is_some_and(|r| r > now) {
                continue;
            }
            let stale = view
                .inventory
                .as_ref()
                .is_none_or(|inv| now - inv.at >= self.policy.agent.observe_interval);
            let settling = self.cycles.values().any(|c| {
                c.cluster == self.conns[ci].name
                    && self
                        .settle_after
                        .get(&c.id)
                        .is_some_and(|s| view.inventory.as_ref().is_none_or(|inv| inv.at <= *s))
            });
            if force || stale || settling || view.retry_at.is_some() {
                due.push(ci);
            }
        }
        let rounds = due.iter().map(|&ci| {
            let conn = self.conns[ci].clone();
            async move {
                let r = discovery::discover(conn.ontap.as_ref(), Depth::Full, now).await;
                (ci, r)
            }
        });
        for (ci, result) in futures_util::future::join_all(rounds).await {
            let name = self.conns[ci].name.clone();
            let view = &mut self.views[ci];
            match result {
                Ok(inv) => {
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
                Err(e) => {
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
    }

    /// The planner's view of every cluster that was discovered (last known if now unreachable).
    fn observed(&self) -> Observed {
        let mut observed = Observed::default();
        for (ci, v) in self.views.iter().enumerate() {
            if let Some(inv) = &v.inventory {
                observed.clusters.push(inv.observed(&self.conns[ci].name));
            }
        }
        observed
    }

    fn retention(&self, observed: &Observed, cycle: &Cycle) -> Option<VolumeRetention> {
        let vi = volume_index(&self.policy, &cycle.cluster, &cycle.svm, &cycle.volume)?;
        planner::volume_retention(&self.policy, observed, vi).ok()
    }

    /// Records what the listings show: conflicts, pins gone, look-alikes, objects back.
    fn observe(&mut self, now: DateTime<Utc>, observed: &Observed) {
        self.observe_driven(now, observed);
        let claimed = self.claimed();
        let prefix = self.policy.agent.snapshot_prefix.clone();
        let guard = self.policy.agent.guard;
        let mut found = Vec::new();
        let mut reopen = Vec::new();
        let mut warnings: Vec<(String, String)> = Vec::new();
        let mut unpinned = Vec::new();
        for (ci, view) in self.views.iter().enumerate() {
            let Some(inv) = &view.inventory else { continue };
            let name = &self.conns[ci].name;
            let cycles: Vec<&Cycle> = self
                .cycles
                .values()
                .chain(self.recent.iter())
                .filter(|c| &c.cluster == name)
                .collect();
            found.extend(observe::conflicts(&cycles, inv, &prefix, now, guard));
            let volumes: Vec<(String, String)> = self
                .policy
                .volumes
                .iter()
                .filter(|v| v.cluster == ci)
                .map(|v| (v.svm.clone(), v.name.clone()))
                .collect();
            // A tool's snapshot attributed to a driver cycle is that cycle's, not `foreign`.
            let mine: Vec<(String, String, String)> = claimed
                .iter()
                .filter(|(c, _, _, _)| c == name)
                .map(|(_, svm, vol, snap)| (svm.clone(), vol.clone(), snap.clone()))
                .collect();
            found.extend(observe::foreign(
                name,
                &volumes,
                inv,
                &self.policy.agent.foreign_snapshot_patterns,
                &mine,
            ));
            for c in self.cycles.values().filter(|c| &c.cluster == name) {
                if c.state == CycleState::Locked && !self.driven(c) {
                    // The space its backing snapshot holds, where ONTAP reports it (C8 evidence).
                    if let Some(bytes) = inv
                        .volume_snapshots(&c.svm, &c.volume)
                        .find(|s| s.name == c.backing_snapshot)
                        .and_then(|s| s.size)
                    {
                        let space = journal::LockedSpace {
                            cycle_id: c.id.clone(),
                            cluster: c.cluster.clone(),
                            svm: c.svm.clone(),
                            volume: c.volume.clone(),
                            snapshot: c.backing_snapshot.clone(),
                            bytes,
                            at: now,
                        };
                        if let Err(e) = self.ctx.journal.record_locked_space(&space) {
                            tracing::error!("cannot journal the space of cycle {}: {e}", c.id);
                        }
                    }
                    let pins =
                        observe::pins(c, inv, &prefix, self.retention(observed, c).as_ref(), now);
                    // Only a listing taken after the clones went can show every pin.
                    let fresh = c.clones_deleted_at.is_none_or(|t| inv.at > t);
                    if fresh && pins.snapshots.is_empty() {
                        unpinned.push(c.id.clone());
                    }
                }
            }
            // Snapshots and LUNs that look like ours.
            for s in inv
                .snapshots
                .iter()
                .filter(|s| observe::has_prefix(&s.name, &prefix))
            {
                let marker = s.comment.as_deref().and_then(cycle::cycle_id_in_comment);
                // A cycle in memory that owns this very snapshot answers without the journal
                // (every pass sees every live backing snapshot; only look-alikes and old cycles
                // need a look-up).
                let in_memory = marker.and_then(|id| {
                    self.cycles
                        .get(id)
                        .or_else(|| self.recent.iter().find(|c| c.id == id))
                        .filter(|c| {
                            c.backing_snapshot == s.name
                                && c.svm == s.svm
                                && c.volume == s.volume_name
                                && &c.cluster == name
                        })
                });
                if let Some(c) = in_memory {
                    let open = self.cycles.contains_key(&c.id);
                    if !open && inv.at > c.released_at.unwrap_or(DateTime::<Utc>::MAX_UTC) {
                        reopen.push((c.id.clone(), s.uuid.clone(), inv.at));
                    }
                    continue;
                }
                let owner = self
                    .ctx
                    .journal
                    .owner(
                        name,
                        &s.svm,
                        &s.volume_name,
                        journal::ObjectKind::Snapshot,
                        &s.name,
                    )
                    .ok()
                    .flatten();
                match (marker, owner) {
                    (Some(id), Some(o)) if o.cycle_id == id => {
                        let open = self.cycles.contains_key(id);
                        if !open && inv.at > self.released_at(id).unwrap_or(DateTime::<Utc>::MAX_UTC) {
                            reopen.push((id.to_string(), s.uuid.clone(), inv.at));
                        }
                    }
                    (None, _) => warnings.push((
                        format!("nomarker:{name}:{}", s.uuid),
                        format!(
                            "cluster {name}: snapshot {} on volume {} (svm {}) has snapwarden's prefix but not its comment marker: not snapwarden's, never touched",
                            s.name, s.volume_name, s.svm
                        )
                )),
                    (Some(_), _) => warnings.push((
                        format!("nojournal:{name}:{}", s.uuid),
                        format!(
                            "cluster {name}: snapshot {} on volume {} (svm {}) carries snapwarden's marker but this agent's journal has no record of it: never touched",
                            s.name, s.volume_name, s.svm
                        )
                )),
                }
            }
            let open_clones: HashSet<&str> = self
                .cycles
                .values()
                .filter(|c| &c.cluster == name)
                .flat_map(|c| c.clones.iter().map(|k| k.path.as_str()))
                .collect();
            for l in &inv.luns {
                let leaf = l
                    .name
                    .strip_prefix(&format!("/vol/{}/", l.volume_name))
                    .unwrap_or("");
                if !open_clones.contains(l.name.as_str()) && observe::has_prefix(leaf, &prefix) {
                    let owner = self
                        .ctx
                        .journal
                        .owner(
                            name,
                            &l.svm,
                            &l.volume_name,
                            journal::ObjectKind::Lun,
                            &l.name,
                        )
                        .ok()
                        .flatten();
                    if owner.is_none() {
                        warnings.push((
                            format!("lun:{name}:{}", l.uuid),
                            format!(
                                "cluster {name}: LUN {} (svm {}) has a clone-like path but this agent's journal has no record of it: never touched",
                                l.name, l.svm
                            )
                ));
                    }
                }
            }
        }
        for (key, message) in warnings {
            let kind = if key.starts_with("lun:") {
                "lun"
            } else {
                "snapshot"
            };
            self.metrics.orphan(kind, "ignored", &key);
            self.warn_once(key, message);
        }
        self.unpinned.extend(unpinned);
        for (id, uuid, seen_at) in reopen {
            self.reopen(&id, &uuid, seen_at);
        }
        for c in found {
            self.record_conflict(c);
        }
    }

    /// The tool snapshots attributed to driver cycles (open and recent): (cluster, svm, volume,
    /// snapshot).
    fn claimed(&self) -> Vec<(String, String, String, String)> {
        self.cycles
            .values()
            .chain(self.recent.iter())
            .filter(|c| !c.backing_snapshot.is_empty() && self.driven(c))
            .map(|c| {
                (
                    c.cluster.clone(),
                    c.svm.clone(),
                    c.volume.clone(),
                    c.backing_snapshot.clone(),
                )
            })
            .collect()
    }

    /// Driver cycles: attributes the tool's snapshot on each cycle's volume, and settles the
    /// cycles whose tool stopped — released when the snapshot is gone, `locked` (with its pins
    /// and the unlock estimate) while the tool could not delete it. Deletes nothing.
    fn observe_driven(&mut self, now: DateTime<Utc>, observed: &Observed) {
        let patterns = self.policy.agent.foreign_snapshot_patterns.clone();
        let prefix = self.policy.agent.snapshot_prefix.clone();
        let ids: Vec<String> = self
            .cycles
            .values()
            .filter(|c| self.driven(c))
            .map(|c| c.id.clone())
            .collect();
        for id in ids {
            let mut c = self.cycles[&id].clone();
            let Some(inv) = self.cluster_inventory(&c.cluster) else {
                continue;
            };
            let mut changed = false;
            let mut conflict = None;
            if c.backing_snapshot.is_empty() {
                let taken: Vec<(String, String, String)> = self
                    .claimed()
                    .into_iter()
                    .filter(|(cl, _, _, _)| *cl == c.cluster)
                    .map(|(_, svm, vol, snap)| (svm, vol, snap))
                    .collect();
                if let Some(s) = driver::attribute(&c, inv, &patterns, &taken) {
                    let t = s.create_time.with_timezone(&Utc);
                    c.backing_snapshot = s.name.clone();
                    c.created_at = Some(t);
                    if c.clone_kind == CloneKind::SnapRestore {
                        // The tool clones right after its snapshot: from then on a scheduled
                        // snapshot can capture the clone.
                        c.clones_created_at = Some(t);
                    }
                    changed = true;
                    tracing::info!(
                        cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
                        cycle = %c.id, snapshot = %c.backing_snapshot,
                        "the tool's backing snapshot (created {}) is attributed to the cycle", t.to_rfc3339()
                    );
                }
            }
            let ended = self.driver_ended.contains(&id) || c.state == CycleState::Locked;
            let fresh = c.clones_deleted_at.is_none_or(|t| inv.at > t);
            if ended && fresh {
                let alive = !c.backing_snapshot.is_empty()
                    && inv
                        .volume_snapshots(&c.svm, &c.volume)
                        .any(|s| s.name == c.backing_snapshot);
                if alive && c.state != CycleState::Locked {
                    let pins =
                        observe::pins(&c, inv, &prefix, self.retention(observed, &c).as_ref(), now);
                    c.state = CycleState::Locked;
                    changed = true;
                    conflict = Some(ObservedConflict {
                        kind: ConflictKind::Locked,
                        cluster: c.cluster.clone(),
                        svm: c.svm.clone(),
                        volume: c.volume.clone(),
                        window: Some(c.window.clone()),
                        cycle: Some(c.id.clone()),
                        at: inv.at,
                        detail: format!(
                            "backing snapshot {} is still there after the tool stopped at {} (the tool could not delete it; snapwarden never does); {}",
                            c.backing_snapshot,
                            c.clones_deleted_at.unwrap_or(now).to_rfc3339(),
                            pins.describe()
                        ),
                        key: format!("locked:{}", c.id),
                    });
                } else if !alive {
                    let was_locked = c.state == CycleState::Locked;
                    let nothing_made = c.backing_snapshot.is_empty();
                    c.state = if nothing_made && c.result == Some(CycleResult::Failed) {
                        CycleState::Failed
                    } else {
                        CycleState::Released
                    };
                    c.released_at = Some(if was_locked {
                        inv.at
                    } else {
                        c.clones_deleted_at.unwrap_or(inv.at)
                    });
                    if nothing_made {
                        let note = "no backing snapshot of the tool was seen on the volume";
                        c.detail = if c.detail.is_empty() {
                            note.to_string()
                        } else {
                            format!("{}; {note}", c.detail)
                        };
                    }
                    changed = true;
                }
            }
            if let Some(conflict) = conflict {
                self.record_conflict(conflict);
            }
            if !changed {
                continue;
            }
            let _ = self.ctx.journal.update_cycle(&c);
            if c.state.is_terminal() {
                tracing::info!(
                    cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
                    cycle = %c.id, snapshot = %c.backing_snapshot, state = c.state.as_str(),
                    result = c.result.map_or("completed", |r| r.as_str()), "driver cycle settled: {}", c.detail
                );
                self.cycles.remove(&id);
                self.driver_ended.remove(&id);
                self.settle_after.remove(&id);
                if c.result.is_none() {
                    c.result = Some(CycleResult::Completed);
                    let _ = self.ctx.journal.update_cycle(&c);
                }
                self.remember(c);
            } else {
                self.cycles.insert(id, c);
            }
        }
    }

    /// A driver's tool stopped: its outcome on the cycle; the next listing settles it.
    fn driver_ended(&mut self, id: &str, report: &driver::Report) {
        let Some(c) = self.cycles.get_mut(id) else {
            return;
        };
        c.result = report.result;
        c.detail = report.detail.clone();
        c.clones_deleted_at = Some(report.ended_at.max(c.create_at));
        let _ = self.ctx.journal.update_cycle(c);
        self.driver_ended.insert(id.to_string());
        self.settle_after.insert(id.to_string(), report.ended_at);
    }

    /// Starts a driver window's tool for one occurrence: `cycles` are its volumes' cycles.
    /// With `resume` (a restart), the cycles are already journaled and open, and the job's running
    /// session is followed without starting the job.
    fn start_driven(&mut self, wi: usize, cycles: Vec<Cycle>, resume: bool) {
        let now = self.now();
        let Some(window) = self.policy.windows.get(wi).cloned() else {
            return;
        };
        let Some(first) = cycles.first().cloned() else {
            return;
        };
        let ids: Vec<String> = cycles.iter().map(|c| c.id.clone()).collect();
        for c in cycles.into_iter().filter(|_| !resume) {
            let _ = self.ctx.journal.insert_cycle(&c, now);
            tracing::info!(
                cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
                cycle = %c.id, "driver {}: {}", window.driver.as_str(), c.detail
            );
            self.cycles.insert(c.id.clone(), c);
        }
        let clock = self.ctx.clock.clone();
        let events = self.events_tx.clone();
        let cancel = self.stop_hooks.subscribe();
        match &window.driver {
            Driver::Veeam(job) => {
                let client = self.veeam_client(job.server);
                let run = driver::VeeamRun {
                    client,
                    server: self
                        .policy
                        .veeam
                        .get(job.server)
                        .map(|s| s.name.clone())
                        .unwrap_or_default(),
                    job: job.job.clone(),
                    cycles: ids.clone(),
                    start_by: first.release_by - window.expected,
                    release_by: first.release_by,
                    follow_until: first.release_by + window.max,
                    resume,
                    fence: self.ctx.fence.clone(),
                };
                let journal = self.ctx.journal.clone();
                let (notes, noted) = (events.clone(), ids.clone());
                let note: driver::Note = Box::new(move |detail| {
                    let _ = notes.send(Event::DriverNote {
                        cycles: noted.clone(),
                        detail,
                    });
                });
                tokio::spawn(async move {
                    let report = driver::follow_veeam(run, clock, journal, note, cancel).await;
                    let _ = events.send(Event::DriverEnded {
                        cycles: ids,
                        report,
                    });
                });
            }
            Driver::Hook => {
                let Some(spec) = self.hook_spec(&first) else {
                    let report = driver::Report {
                        result: Some(CycleResult::Failed),
                        detail: "driver = \"hook\" but the window has no hook".into(),
                        ended_at: now,
                    };
                    for id in &ids {
                        self.driver_ended(id, &report);
                    }
                    return;
                };
                let deadline = backup_deadline(&window, &spec, first.release_by, now);
                let work_dir = self.options.state_dir.join("hooks");
                let http = self.http.clone();
                let on_overrun = window.on_overrun;
                tokio::spawn(async move {
                    let outcome =
                        hook::run(&spec, &first, deadline, &clock, &work_dir, &http, cancel).await;
                    let (result, detail) = finished_late(
                        hook_result(outcome),
                        on_overrun,
                        first.release_by,
                        clock.now(),
                    );
                    let detail = if detail.is_empty() {
                        format!("hook {} succeeded", spec.describe())
                    } else {
                        format!("hook {}: {detail}", spec.describe())
                    };
                    let report = driver::Report {
                        result,
                        detail,
                        ended_at: clock.now(),
                    };
                    let _ = events.send(Event::DriverEnded {
                        cycles: ids,
                        report,
                    });
                });
            }
            Driver::Snapwarden => {}
        }
    }

    /// The hook a cycle runs: `simulate`'s override, else the window's.
    fn hook_spec(&self, cycle: &Cycle) -> Option<HookSpec> {
        let window = self.policy.windows.iter().find(|w| w.name == cycle.window);
        match (&self.options.hooks, window) {
            (Some(decide), _) => decide(cycle),
            (None, Some(w)) => w.hook.as_ref().map(|h| match &h.action {
                HookAction::Command(argv) => HookSpec::Command {
                    argv: argv.clone(),
                    timeout: h.timeout,
                },
                HookAction::Webhook(url) => HookSpec::Webhook {
                    url: url.clone(),
                    timeout: h.timeout,
                },
            }),
            (None, None) => None,
        }
    }

    fn released_at(&self, id: &str) -> Option<DateTime<Utc>> {
        self.recent
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.released_at)
    }

    /// A released cycle's backing snapshot is still listed after its release: release it again.
    fn reopen(&mut self, id: &str, uuid: &str, seen_at: DateTime<Utc>) {
        let Some(pos) = self.recent.iter().position(|c| c.id == id) else {
            return;
        };
        let mut c = self.recent.remove(pos).expect("position is valid");
        self.metrics.cycle_reopened(&c.id);
        self.metrics
            .orphan("snapshot", "released", &format!("{id}:{seen_at}"));
        tracing::error!(
            cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
            snapshot = %c.backing_snapshot, cycle = %c.id,
            "backing snapshot still exists after its release (listing at {}): releasing it again",
            seen_at.to_rfc3339()
        );
        let now = self.now();
        let _ = self.ctx.journal.set_object(
            &c.id,
            journal::ObjectKind::Snapshot,
            &c.backing_snapshot,
            Some(uuid),
            journal::ObjectState::Created,
            now,
        );
        c.state = CycleState::Releasing;
        c.released_at = None;
        let _ = self.ctx.journal.update_cycle(&c);
        self.cycles.insert(c.id.clone(), c);
    }

    fn warn_once(&mut self, key: String, message: String) {
        if self.warned.insert(key) {
            tracing::warn!("{message}");
        }
    }

    fn record_conflict(&mut self, c: ObservedConflict) {
        let recorded = self.ctx.journal.record_conflict(&c);
        if let Ok(true) = recorded {
            self.metrics
                .conflict(&self.policy, &c.cluster, &c.svm, &c.volume, c.kind);
            if recommend::counts(c.kind) {
                self.reconsider
                    .insert((c.cluster.clone(), c.svm.clone(), c.volume.clone()));
            }
        }
        match recorded {
            Ok(true) => tracing::warn!(
                kind = c.kind.as_str(), cluster = %c.cluster, svm = %c.svm, volume = %c.volume,
                window = c.window.as_deref().unwrap_or(""),
                cycle = c.cycle.as_deref().unwrap_or(""),
                "conflict: {}", c.detail
            ),
            Ok(false) => {}
            Err(e) => tracing::error!("cannot record a conflict: {e}"),
        }
    }

    /// The cluster's flexclone license, when its state is known.
    fn licensed(&self, cluster: &str) -> Option<bool> {
        match self.cluster_inventory(cluster)?.flexclone {
            LicenseState::Compliant => Some(true),
            LicenseState::Unknown => None,
            LicenseState::Noncompliant | LicenseState::Unlicensed => Some(false),
        }
    }

    /// Decides the FlexClone recommendation of the volumes with a new counting conflict, and
    /// (daily) of those in force: journals, logs and sets the metric when one is raised or
    /// cleared.
    fn recommend(&mut self) {
        let now = self.now();
        let mut volumes = std::mem::take(&mut self.reconsider);
        if self
            .last_recommend_sweep
            .is_none_or(|t| now - t >= RECOMMEND_SWEEP)
        {
            self.last_recommend_sweep = Some(now);
            volumes.extend(self.recommended.keys().cloned());
        }
        let rule = self.policy.flexclone.clone();
        // Read once per decision round, on the first volume that is in force (most rounds have
        // none), not once per volume.
        let mut space: Option<Vec<journal::LockedSpace>> = None;
        for key in volumes {
            let (cluster, svm, volume) = (&key.0, &key.1, &key.2);
            let conflicts = match self.ctx.journal.volume_conflicts(cluster, svm, volume) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("cannot read the conflicts of {cluster}/{svm}/{volume}: {e}");
                    continue;
                }
            };
            let mut cycles: BTreeMap<String, Cycle> = BTreeMap::new();
            for id in conflicts.iter().filter_map(|c| c.cycle.as_deref()) {
                if !cycles.contains_key(id) {
                    if let Ok(Some(c)) = self.ctx.journal.cycle(id) {
                        cycles.insert(id.to_string(), c);
                    }
                }
            }
            let cycles: Vec<Cycle> = cycles.into_values().collect();
            let conflicts = recommend::evidence(conflicts, &cycles);
            let licensed = self.licensed(cluster);
            let raised = recommend::decide(&conflicts, rule.recommend_after, rule.within, now);
            let previous = self.recommended.get(&key).map(|f| f.since);
            if previous.is_some() && previous != raised.as_ref().map(|r| r.at) {
                self.recommended.remove(&key);
                self.metrics
                    .set_flexclone_recommended(cluster, svm, volume, false);
                self.journal_recommendation(&key, RecommendationKind::Cleared, now, String::new());
                tracing::info!(cluster = %cluster, svm = %svm, volume = %volume,
                    "FlexClone recommendation cleared: no counting conflict for {}",
                    planner::human(rule.within));
            }
            let Some(raised) = raised else { continue };
            let evidence = recommend::for_volumes(
                &conflicts,
                &cycles,
                rule.recommend_after,
                rule.within,
                now,
                &|_| licensed,
            );
            let space = space.get_or_insert_with(|| {
                self.ctx.journal.locked_space().unwrap_or_else(|e| {
                    tracing::error!("cannot read the space locked backing snapshots hold: {e}");
                    Vec::new()
                })
            });
            let (evidence, locked_bytes) =
                recommend::with_locked_space(evidence, &conflicts, space)
                    .into_iter()
                    .next()
                    .map(|r| (r.evidence, r.locked_bytes))
                    .unwrap_or_default();
            if let Some(f) = self.recommended.get_mut(&key) {
                f.evidence = evidence;
                f.locked_bytes = locked_bytes;
                f.licensed = licensed;
                continue;
            }
            self.metrics
                .set_flexclone_recommended(cluster, svm, volume, true);
            self.journal_recommendation(
                &key,
                RecommendationKind::Raised,
                raised.at,
                evidence.clone(),
            );
            tracing::warn!(cluster = %cluster, svm = %svm, volume = %volume,
                "FlexClone recommended: {evidence}");
            let f = InForce {
                since: raised.at,
                evidence,
                locked_bytes,
                licensed,
                switched: false,
            };
            self.recommended.insert(key, f);
        }
    }

    fn journal_recommendation(
        &self,
        key: &VolumeKey,
        event: RecommendationKind,
        at: DateTime<Utc>,
        evidence: String,
    ) {
        let e = RecommendationEvent {
            cluster: key.0.clone(),
            svm: key.1.clone(),
            volume: key.2.clone(),
            event,
            at,
            evidence,
        };
        if let Err(err) = self.ctx.journal.record_recommendation(&e) {
            tracing::error!("cannot journal a FlexClone recommendation: {err}");
        }
    }

    /// Starts every cycle the plan says is due now, and records the occurrences that will not
    /// run.
    async fn start_due(&mut self, now: DateTime<Utc>, observed: &Observed) {
        let back = lookback(&self.policy);
        // `planner::plan` without conflicts and suggestions, reusing the previous passes' work.
        let plan = self
            .rolling
            .plan(&self.policy, observed, now - back, back + LOOKAHEAD);
        self.metrics.scheduled(&self.policy, &plan, now);
        self.excluded.clear();
        for u in &plan.unresolved {
            self.excluded.insert(u.volume, u.reason.clone());
        }
        let present: Vec<_> = self
            .views
            .iter()
            .map(|view| view.inventory.as_ref().map(|inv| inv.present()))
            .collect();
        for (vi, v) in self.policy.volumes.iter().enumerate() {
            if let Some(Some(p)) = present.get(v.cluster) {
                if let Some(why) = p.missing(&self.policy, vi) {
                    self.excluded.insert(vi, why);
                }
            }
        }
        let excluded: Vec<(usize, String)> =
            self.excluded.iter().map(|(k, v)| (*k, v.clone())).collect();
        for (vi, why) in excluded {
            self.warn_once(
                format!("excluded:{vi}:{why}"),
                format!("volume {} is left out: {why}", self.policy.volume_id(vi)),
            );
        }

        let mut next_create: Option<DateTime<Utc>> = None;
        let mut to_start = Vec::new();
        let mut skipped = Vec::new();
        // A driver window's tool runs once per occurrence for all its volumes: it starts at the
        // earliest planned start among them.
        let mut due_occurrences: HashSet<(usize, DateTime<Utc>)> = HashSet::new();
        for vp in &plan.volumes {
            for lc in &vp.lifecycles {
                let window = &self.policy.windows[lc.window];
                if window.driver != Driver::Snapwarden
                    && lc.create_at <= now
                    && lc.outcome != Outcome::Skipped
                    && !self
                        .started
                        .contains(&(window.name.clone(), vp.volume, lc.window_start))
                {
                    due_occurrences.insert((lc.window, lc.window_start));
                }
            }
        }
        for vp in &plan.volumes {
            let vi = vp.volume;
            let volume = &self.policy.volumes[vi];
            let ci = volume.cluster;
            for lc in &vp.lifecycles {
                let window = &self.policy.windows[lc.window];
                let key = (window.name.clone(), vi, lc.window_start);
                if self.started.contains(&key) {
                    continue;
                }
                if self
                    .leading_since
                    .is_some_and(|t| lc.create_at < t && lc.create_at <= now)
                {
                    // The previous leader's: done, adopted from ONTAP, or lost with it; never
                    // started twice.
                    self.started.insert(key);
                    continue;
                }
                let due = lc.create_at <= now
                    || (lc.outcome != Outcome::Skipped
                        && due_occurrences.contains(&(lc.window, lc.window_start)));
                if !due {
                    if lc.outcome != Outcome::Skipped {
                        next_create =
                            Some(next_create.map_or(lc.create_at, |n| n.min(lc.create_at)));
                    }
                    continue;
                }
                let too_late = now + window.expected > lc.release_by;
                let skip_reason = if lc.outcome == Outcome::Skipped {
                    Some(lc.reason.clone())
                } else if let Some(why) = self.excluded.get(&vi) {
                    Some(format!("not run: {why}"))
                } else if !self.views[ci].reachable {
                    too_late.then(|| {
                        format!(
                            "not run: cluster {} was unreachable from the planned start until it was too late ({})",
                            self.conns[ci].name,
                            self.views[ci].last_error.clone().unwrap_or_default()
                        )
                    })
                } else if too_late {
                    Some(format!(
                        "not run: the agent was not running at the planned start {} and the window's expected {} no longer fits before {}",
                        lc.create_at.to_rfc3339(),
                        planner::human(window.expected),
                        lc.release_by.to_rfc3339()
                    ))
                } else {
                    to_start.push((lc.clone(), vi));
                    continue;
                };
                if let Some(reason) = skip_reason {
                    if lc.create_at >= self.started_at {
                        skipped.push((lc.clone(), vi, reason));
                    } else {
                        // Before this run: not recorded, and not looked at again.
                        self.started.insert(key);
                    }
                }
            }
        }
        self.next_create = next_create;

        for (lc, vi, reason) in skipped {
            let cycle =
                self.new_cycle(&lc, vi, CloneKind::SnapRestore, CycleState::Skipped, reason);
            if let Ok(true) = self.ctx.journal.insert_cycle(&cycle, now) {
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
            self.started
                .insert((cycle.window.clone(), vi, cycle.window_start));
        }

        let mut creates = Vec::new();
        let mut driven: BTreeMap<(usize, DateTime<Utc>), Vec<Cycle>> = BTreeMap::new();
        let policy = self.policy.clone();
        for (lc, vi) in to_start {
            let volume = &policy.volumes[vi];
            let Some(inv) = self.views[volume.cluster].inventory.as_ref() else {
                continue;
            };
            let Some(info) = inv.volume(&volume.svm, &volume.name) else {
                continue;
            };
            let vref = VolumeRef {
                uuid: info.uuid.clone(),
                name: info.name.clone(),
                svm: info.svm.clone(),
            };
            let licensed = inv.flexclone == LicenseState::Compliant;
            let window = &policy.windows[lc.window];
            if window.driver != Driver::Snapwarden {
                // The tool clones with FlexClone when the cluster is licensed (Veeam does).
                let kind = if licensed {
                    CloneKind::FlexClone
                } else {
                    CloneKind::SnapRestore
                };
                let what = match &window.driver {
                    Driver::Veeam(job) => format!(
                        "Veeam job {:?} on server {}",
                        job.job,
                        policy
                            .veeam
                            .get(job.server)
                            .map_or("?", |s| s.name.as_str())
                    ),
                    _ => "the window's hook".to_string(),
                };
                let mut cycle = self.new_cycle(
                    &lc,
                    vi,
                    kind,
                    CycleState::Backup,
                    format!("{what} started at {}; {}", now.to_rfc3339(), lc.reason),
                );
                cycle.backing_snapshot = String::new();
                cycle.clones.clear();
                self.started
                    .insert((cycle.window.clone(), vi, cycle.window_start));
                driven
                    .entry((lc.window, lc.window_start))
                    .or_default()
                    .push(cycle);
                continue;
            }
            let key: VolumeKey = (
                self.conns[volume.cluster].name.clone(),
                volume.svm.clone(),
                volume.name.clone(),
            );
            // C8: `use_when_licensed` switches a SnapRestore volume with a recommendation in
            // force to FlexClone (`auto` already uses FlexClone when licensed).
            let switch = policy.flexclone.use_when_licensed
                && licensed
                && self.recommended.contains_key(&key);
            let kind = match volume.clone {
                CloneMethod::FlexClone => CloneKind::FlexClone,
                CloneMethod::SnapRestore if switch => CloneKind::FlexClone,
                CloneMethod::SnapRestore => CloneKind::SnapRestore,
                CloneMethod::Auto if inv.flexclone == LicenseState::Compliant => {
                    CloneKind::FlexClone
                }
                CloneMethod::Auto => CloneKind::SnapRestore,
            };
            let mut cycle = self.new_cycle(&lc, vi, kind, CycleState::Creating, lc.reason.clone());
            if lc.outcome == Outcome::Conflict {
                cycle.detail = lc.reason.clone();
            }
            if switch && volume.clone == CloneMethod::SnapRestore {
                self.switched(&key, &cycle.id, now);
            }
            self.started
                .insert((cycle.window.clone(), vi, cycle.window_start));
            creates.push((self.conns[volume.cluster].clone(), vref, cycle));
        }
        for ((wi, _), cycles) in driven {
            self.start_driven(wi, cycles, false);
        }
        let ctx = self.ctx.clone();
        let results =
            futures_util::future::join_all(creates.into_iter().map(|(conn, vref, cycle)| {
                let ctx = ctx.clone();
                async move { executor::create(&ctx, &conn, &vref, cycle).await }
            }))
            .await;
        for cycle in results.into_iter().flatten() {
            self.settle_after.insert(cycle.id.clone(), self.now());
            match cycle.state {
                CycleState::Backup => {
                    let id = cycle.id.clone();
                    self.cycles.insert(id.clone(), cycle);
                    self.begin_backup(&id);
                }
                CycleState::Failed => self.remember(cycle),
                _ => {
                    self.cycles.insert(cycle.id.clone(), cycle);
                }
            }
        }
    }

    /// Journals and logs (once per recommendation) a volume's switch to FlexClone.
    fn switched(&mut self, key: &VolumeKey, cycle: &str, now: DateTime<Utc>) {
        let Some(f) = self.recommended.get_mut(key) else {
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
        tracing::warn!(cluster = %key.0, svm = %key.1, volume = %key.2, cycle = %cycle,
            "FlexClone recommended and licensed: the volume switches to FlexClone (use_when_licensed)");
        self.journal_recommendation(key, RecommendationKind::Switched, now, evidence);
    }

    fn new_cycle(
        &self,
        lc: &planner::Lifecycle,
        vi: usize,
        kind: CloneKind,
        state: CycleState,
        detail: String,
    ) -> Cycle {
        let volume = &self.policy.volumes[vi];
        let window = &self.policy.windows[lc.window];
        let name = format!(
            "{}.{}.{}",
            self.policy.agent.snapshot_prefix,
            window.name,
            lc.create_at.format("%Y%m%dT%H%M%SZ")
        );
        let mut leaves: HashSet<String> = HashSet::new();
        let clones = volume
            .luns
            .iter()
            .enumerate()
            .map(|(i, lun)| {
                let leaf = lun.rsplit('/').next().unwrap_or("lun").to_string();
                let leaf = if leaves.insert(leaf.clone()) {
                    leaf
                } else {
                    format!("{i}.{leaf}")
                };
                CloneLun {
                    source: lun.clone(),
                    path: format!("/vol/{}/{name}.{leaf}", volume.name),
                }
            })
            .collect();
        let terminal = state == CycleState::Skipped;
        Cycle {
            id: uuid::Uuid::new_v4().to_string(),
            window: window.name.clone(),
            cluster: self.policy.clusters[volume.cluster].name.clone(),
            svm: volume.svm.clone(),
            volume: volume.name.clone(),
            window_start: lc.window_start,
            create_at: lc.create_at,
            release_by: lc.release_by,
            release_deadline: lc.next_scheduled.map(|n| n.at - self.policy.agent.guard),
            backing_snapshot: name,
            clone_kind: kind,
            clones,
            state,
            result: terminal.then_some(CycleResult::Skipped),
            created_at: None,
            clones_created_at: None,
            clones_deleted_at: None,
            released_at: None,
            detail,
            replica: None,
        }
    }

    /// The clones exist: run the window's hook, or hold them for `expected` without one.
    fn begin_backup(&mut self, id: &str) {
        let Some(cycle) = self.cycles.get(id) else {
            return;
        };
        let window = self.policy.windows.iter().find(|w| w.name == cycle.window);
        let spec = self.hook_spec(cycle);
        let now = self.now();
        let Some(spec) = spec else {
            let expected = window.map(|w| w.expected).unwrap_or_default();
            let until = (now + expected).min(cycle.release_by);
            tracing::info!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, snapshot = %cycle.backing_snapshot,
                "no hook: clones held until {}", until.to_rfc3339()
            );
            self.hold_until.insert(id.to_string(), until);
            return;
        };
        let Some(window) = window else {
            return;
        };
        let deadline = backup_deadline(window, &spec, cycle.release_by, now);
        tracing::info!(
            cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
            window = %cycle.window, snapshot = %cycle.backing_snapshot,
            "backup hook started: {}; deadline {}", spec.describe(), deadline.to_rfc3339()
        );
        let cycle = cycle.clone();
        let clock = self.ctx.clock.clone();
        let work_dir = self.options.state_dir.join("hooks");
        let http = self.http.clone();
        let events = self.events_tx.clone();
        let cancel = self.stop_hooks.subscribe();
        self.running_hooks.insert(id.to_string());
        tokio::spawn(async move {
            let outcome =
                hook::run(&spec, &cycle, deadline, &clock, &work_dir, &http, cancel).await;
            let _ = events.send(Event::HookEnded {
                cycle: cycle.id.clone(),
                outcome,
            });
        });
    }

    fn hook_ended(&mut self, id: &str, outcome: HookOutcome) {
        self.running_hooks.remove(id);
        let now = self.now();
        let Some(c) = self.cycles.get_mut(id) else {
            return;
        };
        let on_overrun = self
            .policy
            .windows
            .iter()
            .find(|w| w.name == c.window)
            .map_or(OnOverrun::Release, |w| w.on_overrun);
        let (result, detail) = finished_late(hook_result(outcome), on_overrun, c.release_by, now);
        match result {
            None => tracing::info!(
                cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
                snapshot = %c.backing_snapshot, cycle = %c.id, "backup hook succeeded"
            ),
            Some(r) => tracing::warn!(
                cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
                snapshot = %c.backing_snapshot, cycle = %c.id, result = r.as_str(),
                "backup hook did not succeed: {detail}"
            ),
        }
        c.result = result;
        c.detail = detail;
        c.state = CycleState::Releasing;
        let _ = self.ctx.journal.update_cycle(c);
        let _ = self.ctx.journal.record_action(
            Some(&c.id),
            self.ctx.clock.now(),
            "hook",
            &c.backing_snapshot,
            c.result.map_or("ok", |r| r.as_str()),
            &c.detail,
        );
    }

    /// Releases every cycle that is due: hook ended, hold over, retry due, pins gone.
    async fn release_due(&mut self) {
        let now = self.now();
        let mut due = Vec::new();
        let mut gone = Vec::new();
        for (id, c) in &self.cycles {
            if self.driven(c) {
                continue;
            }
            let ready = match c.state {
                CycleState::Releasing => true,
                CycleState::Backup | CycleState::Live | CycleState::Creating => {
                    !self.running_hooks.contains(id)
                        && self.hold_until.get(id).is_none_or(|t| *t <= now)
                }
                CycleState::Locked => self.unpinned.contains(id),
                _ => false,
            };
            let waiting = self.retry.get(id).is_some_and(|(t, _)| *t > now)
                && !(c.state == CycleState::Locked && self.unpinned.contains(id));
            if !ready || waiting {
                continue;
            }
            let Some(ci) = self
                .policy
                .clusters
                .iter()
                .position(|p| p.name == c.cluster)
            else {
                continue;
            };
            let view = &self.views[ci];
            let Some(inv) = view.inventory.as_ref().filter(|_| view.reachable) else {
                continue;
            };
            let Some(info) = inv.volume(&c.svm, &c.volume) else {
                gone.push((
                    format!("novolume:{id}"),
                    format!(
                        "cluster {}: volume {} (svm {}) of cycle {} is gone; its objects went with it",
                        c.cluster, c.volume, c.svm, c.id
                    ),
                ));
                continue;
            };
            let vref = VolumeRef {
                uuid: info.uuid.clone(),
                name: info.name.clone(),
                svm: info.svm.clone(),
            };
            let fresh = self.settle_after.get(id).is_none_or(|s| inv.at > *s);
            due.push((self.conns[ci].clone(), vref, fresh.then_some(ci), c.clone()));
        }
        for (key, message) in gone {
            self.warn_once(key, message);
        }
        for (_, _, _, c) in &due {
            self.hold_until.remove(&c.id);
            self.unpinned.remove(&c.id);
        }
        let ctx = self.ctx.clone();
        let views = &self.views;
        let results =
            futures_util::future::join_all(due.into_iter().map(|(conn, vref, ci, cycle)| {
                let ctx = ctx.clone();
                let listing = ci.and_then(|ci| views[ci].inventory.as_ref());
                async move { executor::release(&ctx, &conn, &vref, listing, cycle).await }
            }))
            .await;
        // A lock is explained from a listing that shows its pins: read those clusters again.
        let mut locked_clusters: Vec<usize> = results
            .iter()
            .filter(|r| r.conflicts.iter().any(|c| c.kind == ConflictKind::Locked))
            .filter_map(|r| self.conns.iter().position(|c| c.name == r.cycle.cluster))
            .collect();
        locked_clusters.sort_unstable();
        locked_clusters.dedup();
        if !locked_clusters.is_empty() {
            self.refresh(self.now(), true, Some(&locked_clusters)).await;
        }
        let observed = self.observed();
        for r in results {
            let id = r.cycle.id.clone();
            for mut conflict in r.conflicts {
                if conflict.kind == ConflictKind::Locked {
                    if let Some(inv) = self.cluster_inventory(&r.cycle.cluster) {
                        let p = observe::pins(
                            &r.cycle,
                            inv,
                            &self.policy.agent.snapshot_prefix,
                            self.retention(&observed, &r.cycle).as_ref(),
                            now,
                        );
                        conflict.detail = format!("{}; {}", conflict.detail, p.describe());
                    }
                }
                self.record_conflict(conflict);
            }
            if r.cycle.state.is_terminal() {
                self.retry.remove(&id);
                self.settle_after.remove(&id);
                self.cycles.remove(&id);
                self.remember(r.cycle);
            } else {
                if r.again {
                    let attempt = self.retry.get(&id).map_or(0, |(_, n)| n + 1);
                    self.retry
                        .insert(id.clone(), (now + executor::retry_delay(attempt), attempt));
                } else {
                    self.retry.remove(&id);
                }
                self.cycles.insert(id, r.cycle);
            }
        }
    }

    fn cluster_inventory(&self, name: &str) -> Option<&Inventory> {
        let ci = self.conns.iter().position(|c| c.name == name)?;
        self.views[ci].inventory.as_ref()
    }

    fn remember(&mut self, cycle: Cycle) {
        let now = self.now();
        self.metrics.cycle_ended(&cycle, now);
        self.recent.push_back(cycle);
        while self
            .recent
            .front()
            .is_some_and(|c| c.released_at.is_none_or(|t| now - t > RECENT_KEEP))
        {
            self.recent.pop_front();
        }
    }

    fn prune(&mut self, now: DateTime<Utc>) {
        if self
            .last_prune
            .is_some_and(|t| now - t < TimeDelta::days(1))
        {
            return;
        }
        self.last_prune = Some(now);
        // Occurrences older than any pass looks at can be forgotten; warnings repeat daily.
        let horizon = now - lookback(&self.policy) - TimeDelta::days(1);
        self.started.retain(|(_, _, t)| *t >= horizon);
        self.warned.clear();
        match self.ctx.journal.prune(now - journal::RETENTION) {
            Ok(0) => {}
            Ok(n) => tracing::info!("journal: pruned {n} cycles older than 400 days"),
            Err(e) => tracing::error!("journal prune failed: {e}"),
        }
    }

    /// Publishes the status for the HTTP API.
    fn publish(&mut self) {
        metrics::publish(self);
        let now = self.now();
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
            live_cycles: self.cycles.values().map(LiveCycle::of).collect(),
            recent_cycles: self.journal_lists.recent.clone(),
            conflicts: self.journal_lists.conflicts.clone(),
            excluded_volumes: self
                .excluded
                .iter()
                .map(|(vi, reason)| status::ExcludedVolume {
                    volume: self.policy.volume_id(*vi),
                    reason: reason.clone(),
                })
                .collect(),
            next_create_at: self.next_create,
            flexclone_recommendations: self
                .recommended
                .iter()
                .map(|(k, f)| status::FlexCloneRecommendation {
                    cluster: k.0.clone(),
                    svm: k.1.clone(),
                    volume: k.2.clone(),
                    since: f.since,
                    evidence: f.evidence.clone(),
                    locked_bytes: f.locked_bytes,
                    licensed: f.licensed,
                })
                .collect(),
            shutting_down: self.shutting_down,
            ha: self.election.as_ref().map(|rx| {
                let e = rx.borrow();
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

    /// Stops hooks, releases what is in flight within `shutdown_timeout`, and returns what is
    /// left open for the next start.
    async fn shutdown(&mut self) -> Vec<Cycle> {
        self.shutting_down = true;
        let bound = self.now() + self.policy.agent.shutdown_timeout;
        tracing::info!(
            open_cycles = self.cycles.len(),
            "stopping: no new cycles; releasing the cycles in flight by {}",
            bound.to_rfc3339()
        );
        let _ = self.stop_hooks.send(true);
        while !self.running_hooks.is_empty() && self.now() < bound {
            let ev = tokio::select! {
                ev = self.events_rx.recv() => ev,
                _ = self.ctx.clock.sleep_until(bound) => None,
            };
            match ev {
                Some(Event::HookEnded { cycle, outcome }) => self.hook_ended(&cycle, outcome),
                Some(_) => {}
                None => break,
            }
        }
        self.hold_until.clear();
        loop {
            self.retry.retain(|_, _| false);
            self.pass(false).await;
            if !self.leading {
                // A standby changes nothing; its open cycles wait for it to lead again.
                break;
            }
            let pending = self
                .cycles
                .values()
                .any(|c| c.state != CycleState::Locked && !self.driven(c));
            let now = self.now();
            if !pending || now >= bound {
                break;
            }
            let next = (now + TimeDelta::seconds(2)).min(bound);
            self.ctx.clock.sleep_until(next).await;
        }
        let left: Vec<Cycle> = self.cycles.values().cloned().collect();
        for c in &left {
            tracing::warn!(
                cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
                snapshot = %c.backing_snapshot, cycle = %c.id, state = c.state.as_str(),
                "left for the next start (recorded in the journal)"
            );
        }
        self.publish();
        left
    }
}

/// A hook's outcome as a cycle result (`None`: succeeded) and detail.
fn hook_result(outcome: HookOutcome) -> (Option<CycleResult>, String) {
    match outcome {
        HookOutcome::Succeeded => (None, String::new()),
        HookOutcome::Failed(d) | HookOutcome::NotStarted(d) | HookOutcome::Interrupted(d) => {
            (Some(CycleResult::Failed), d)
        }
        HookOutcome::Overrun(d) => (Some(CycleResult::Overrun), d),
    }
}

/// When a backup's hook is ended: at its own `timeout`, and with `on_overrun = "release"` at the
/// latest at `release_by` (the start plus `max`), so that the release comes before the next
/// scheduled snapshot. A simulated backup (no timeout of its own) gets the default timeout of
/// the window's hooks (`OnOverrun::backup_limit`).
fn backup_deadline(
    window: &Window,
    spec: &HookSpec,
    release_by: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let limit = spec
        .timeout()
        .unwrap_or_else(|| window.on_overrun.backup_limit(window.max));
    let end = now.checked_add_signed(limit).unwrap_or(release_by);
    match window.on_overrun {
        OnOverrun::Release => end.min(release_by),
        OnOverrun::Finish => end,
    }
}

/// A backup left to finish (`on_overrun = "finish"`) that succeeded after `release_by` is an
/// overrun all the same: the cycle says how far past `max` it ran.
fn finished_late(
    (result, detail): (Option<CycleResult>, String),
    on_overrun: OnOverrun,
    release_by: DateTime<Utc>,
    ended_at: DateTime<Utc>,
) -> (Option<CycleResult>, String) {
    if result.is_some() || on_overrun != OnOverrun::Finish || ended_at <= release_by {
        return (result, detail);
    }
    let past = ended_at.signed_duration_since(release_by);
    (
        Some(CycleResult::Overrun),
        format!(
            "the backup ran {} past max and was left to finish (on_overrun = \"finish\")",
            planner::human(past)
        ),
    )
}

/// Resolves when the election changes; never without an election (or once it is gone).
async fn election_changed(rx: &mut Option<watch::Receiver<Election>>) {
    if let Some(rx) = rx {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// The policy volume at `cluster/svm/volume`.
fn volume_index(policy: &Policy, cluster: &str, svm: &str, volume: &str) -> Option<usize> {
    policy.volumes.iter().position(|v| {
        v.svm == svm && v.name == volume && policy.clusters[v.cluster].name == cluster
    })
}
