//! `snapwarden simulate`: the agent's own loop in virtual time against the in-process simulator,
//! and an uncoordinated baseline on the same world with the same drawn backups.
//!
//! The coordinated run is [`Agent::run`] unchanged (planner, executor, journal), on a paused
//! current-thread tokio runtime: hours pass as fast as the loop can plan them. Hooks are replaced
//! by [`HookSpec::Simulated`] backups drawn per occurrence ([`draw`]). The baseline
//! ([`baseline`]) snapshots and clones at every window's configured start and releases when the
//! drawn backup ends, ignoring schedules. Both reach the world only through [`meter`]'s clients,
//! which measure the schedules' side (taken, missed, chain conflicts, locks, retention) the same
//! way for both; the cycle counts come from the agent's journal and the baseline's own tally.
//!
//! Copies a volume hands to snapwarden (`managed_snapshots`) are the agent's to take in the
//! coordinated run (the meter reads each from the world; the journal says which waited for a
//! clone and how many instants each covered). The baseline models the shop before the hand-over:
//! ONTAP takes them on its schedule (`ManagedCopies::Ontap`), so they are scheduled snapshots
//! there, never deferred.
//!
//! `driver = "veeam"` windows run a simulated Veeam job (every `[[veeam]]` is simulated, its
//! jobs from the policy's windows: `sim::veeam::config::from_policy`) on the same world: the agent
//! starts it at its planned start through its `VeeamClient` (answered in process); the baseline
//! starts it at the window's configured start. Its duration is the window's `expected` (the
//! simulated job's own), not a draw.

mod baseline;
mod census;
pub mod draw;
pub mod estate;
mod meter;
pub mod progress;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::agent::clock::Clock;
use crate::agent::cycle::{ConflictKind, Cycle, CycleResult, ObservedConflict};
use crate::agent::hook::HookSpec;
use crate::agent::journal::{ManagedRecord, ObjectState};
use crate::agent::recommend;
use crate::agent::{
    Agent, AgentError, ClusterClient, Event, HookOverride, Options, TokioClock, Triggers,
};
use crate::config::{Endpoint, Policy};
use crate::sim::config::ManagedCopies;
use crate::sim::veeam::{InProcess, VeeamSim};
use crate::sim::{ClockMode, Simulator, World};

use crate::agent::state::OccurrenceRef;
use census::{census, foreign_deleted, leaked};
use draw::Draws;
pub use estate::Estate;
use meter::{Measured, Meter};

/// The longest simulation, in days (a year of every schedule; longer is not a what-if).
pub const MAX_DAYS: i64 = 366;

/// How the simulated agent observes: hourly, the coarsest `observe_interval` the policy allows.
/// Planned creates and hook ends still wake the loop at their instant; only periodic listings
/// are sparser, which is what makes a month of 500 volumes take seconds.
pub const OBSERVE_INTERVAL: TimeDelta = TimeDelta::hours(1);

/// A foreign snapshot put on every volume before the run: neither driver may delete it.
pub const FOREIGN_SNAPSHOT: &str = "admin.keep-before-upgrade";

/// How long before `--from` the simulated world begins (see [`world`]).
const WORLD_LEAD: TimeDelta = TimeDelta::minutes(1);

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Settings {
    pub days: i64,
    pub from: DateTime<Utc>,
    pub seed: u64,
    pub overrun_rate: f64,
    /// Keep the coordinated run's journal here (default: a temporary directory, removed).
    pub state_dir: Option<PathBuf>,
}

/// Why a simulation cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("--days {0}: expected a whole number of days from 1 to {MAX_DAYS}")]
    Days(i64),
    #[error("--overrun-rate {0}: expected a share from 0 to 1 (0.1 is one backup in ten)")]
    OverrunRate(f64),
    #[error("cluster {0} is a real cluster: give --from-cluster to build the simulated world from a read-only discovery of it, or endpoint = \"simulator\" to simulate it from the policy")]
    RealCluster(String),
    #[error("cannot build the simulated world: {0}")]
    World(String),
    #[error("the simulation's state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("the agent: {0}")]
    Agent(#[from] AgentError),
    #[error("the agent task ended abnormally: {0}")]
    Task(String),
}

impl Settings {
    /// Checks the numbers given on the command line.
    pub fn validate(&self) -> Result<(), SimulateError> {
        if !(1..=MAX_DAYS).contains(&self.days) {
            return Err(SimulateError::Days(self.days));
        }
        if !(0.0..=1.0).contains(&self.overrun_rate) {
            return Err(SimulateError::OverrunRate(self.overrun_rate));
        }
        Ok(())
    }

    fn end(&self) -> DateTime<Utc> {
        self.from + TimeDelta::days(self.days)
    }

    fn draws(&self) -> Draws {
        Draws {
            seed: self.seed,
            overrun_rate: self.overrun_rate,
        }
    }
}

pub use crate::agent::recommend::Recommendation;

/// The outcome of one simulated run. Field order is the JSON's.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// `coordinated` (the agent) or `uncoordinated` (the baseline).
    pub mode: &'static str,
    pub from: DateTime<Utc>,
    pub days: i64,
    pub seed: u64,
    pub overrun_rate: f64,
    pub volumes: usize,
    /// Window occurrences that were due in the period.
    pub cycles_planned: u64,
    pub cycles_completed: u64,
    /// Completed or overrun at a start other than the window's configured start.
    pub cycles_shifted: u64,
    pub cycles_skipped: u64,
    pub cycles_overrun: u64,
    pub cycles_failed: u64,
    /// Scheduled snapshots that captured a live SnapRestore clone of a backing snapshot.
    pub chain_conflicts: u64,
    /// Backing snapshots pinned by a scheduled snapshot, × hours.
    pub locked_backing_snapshot_hours: f64,
    pub max_locked_backing_snapshots: u64,
    /// Backing snapshots still pinned at the end (recorded, released by a later start).
    pub locked_at_end: u64,
    /// Snapshots ONTAP's schedules took (the baseline's include the copies handed over).
    pub scheduled_snapshots_taken: u64,
    pub scheduled_snapshots_missed: u64,
    /// Snapshots of the copies handed to snapwarden (`managed_snapshots`) that the agent took,
    /// read from the world (0 for the baseline: ONTAP takes them).
    pub managed_snapshots_taken: u64,
    /// Managed snapshots that waited for a clone to go (the agent's journal; 0 for the baseline,
    /// whose schedules never wait).
    pub scheduled_snapshots_deferred: u64,
    /// Instants covered by a deferred snapshot beyond its first (the agent's journal).
    pub scheduled_snapshots_coalesced: u64,
    /// The longest a deferred snapshot waited after its first instant, in seconds.
    pub max_defer_seconds: u64,
    /// Times a schedule kept more snapshots than its count because some were locked, and managed
    /// snapshots taken while their series held more than its count.
    pub retention_violations: u64,
    /// snapwarden-named objects left that belong to no open (locked) cycle.
    pub leaked_objects: u64,
    /// Non-snapwarden snapshots and LUNs that disappeared, beyond the schedules' rotation.
    pub foreign_objects_deleted: u64,
    /// Conflicts the agent itself recorded in its journal, by kind (empty for the baseline).
    pub recorded_conflicts: BTreeMap<&'static str, u64>,
    pub flexclone_recommendations: Vec<Recommendation>,
}

/// The world a policy describes, with a foreign snapshot on every volume, and `managed` saying
/// who takes the copies volumes hand over (`managed_snapshots`): snapwarden for the agent, ONTAP
/// for the baseline (the shop before the hand-over). Real clusters come from `estate`
/// (`--from-cluster`); without it they are refused.
fn world(
    policy: &Policy,
    from: DateTime<Utc>,
    estate: Option<&Estate>,
    managed: ManagedCopies,
) -> Result<Arc<Simulator>, SimulateError> {
    if let Some((_, c)) =
        policy.clusters.iter().enumerate().find(|(ci, c)| {
            c.endpoint != Endpoint::Simulator && !estate.is_some_and(|e| e.has(*ci))
        })
    {
        return Err(SimulateError::RealCluster(c.name.clone()));
    }
    // The world begins a minute early so its foreign snapshots predate anything the run does
    // (a snapshot stamped with the same instant as a clone would read as having captured it).
    let start = from - WORLD_LEAD;
    let sim = match estate {
        None => Simulator::from_policy_with(policy, ClockMode::Manual, Some(start), managed)
            .map_err(|e| SimulateError::World(e.to_string()))?,
        Some(estate) => {
            let simulated = policy
                .clusters
                .iter()
                .any(|c| c.endpoint == Endpoint::Simulator);
            let mut w = if simulated {
                crate::sim::config::world_from_policy_with(policy, start, managed)
                    .map_err(|e| SimulateError::World(e.to_string()))?
            } else {
                World::new(start, Default::default())
            };
            estate::add_to_world(&mut w, policy, estate).map_err(SimulateError::World)?;
            Simulator::new(w, ClockMode::Manual)
        }
    };
    sim.with(|w| {
        for ci in 0..w.clusters.len() {
            for vi in 0..w.clusters[ci].volumes.len() {
                // A fresh volume has room; a refusal only means one foreign snapshot fewer.
                let _ =
                    w.create_snapshot(ci, vi, FOREIGN_SNAPSHOT, Some("taken by an admin".into()));
            }
        }
    });
    Ok(sim)
}

/// Every `[[veeam]]` of the policy as a simulated server on `sim`: (name, state, password).
fn veeam_servers(
    policy: &Policy,
    sim: &Arc<Simulator>,
) -> Result<Vec<(String, Arc<VeeamSim>, crate::ontap::secret::Secret)>, SimulateError> {
    let servers =
        crate::sim::veeam::config::from_policy(policy, true).map_err(SimulateError::World)?;
    Ok(servers
        .into_iter()
        .map(|s| (s.name, VeeamSim::new(sim.clone(), s.world), s.password))
        .collect())
}

fn runtime() -> Result<tokio::runtime::Runtime, SimulateError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(SimulateError::Runtime)
}

/// Window occurrences due in `[from, end)`: (window index, volume index, configured start).
fn occurrences(
    policy: &Policy,
    from: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<(usize, usize, DateTime<Utc>)> {
    let mut out = Vec::new();
    for (wi, w) in policy.windows.iter().enumerate() {
        let mut t = w.start.next_after(w.timezone, from - TimeDelta::seconds(1));
        while let Some(at) = t.filter(|at| *at < end) {
            for &vi in &w.volumes {
                out.push((wi, vi, at));
            }
            t = w.start.next_after(w.timezone, at);
        }
    }
    out.sort_by_key(|(wi, vi, at)| (*at, *wi, *vi));
    out
}

/// Told the run (`coordinated` or `uncoordinated`) and the days simulated so far, once per
/// simulated day.
pub type OnDay<'a> = &'a mut dyn FnMut(&'static str, i64);

/// Runs the agent for the period and reports.
pub fn coordinated(policy: &Policy, settings: &Settings) -> Result<Report, SimulateError> {
    coordinated_on(policy, settings, None, &mut |_, _| {})
}

/// Sleeps on the virtual clock to the end of the period, telling `on_day` as each day passes.
/// Its own timer: the agent's or baseline's instants are the same with or without it.
async fn days_pass(clock: &TokioClock, settings: &Settings, mode: &'static str, on_day: OnDay<'_>) {
    for day in 1..=settings.days {
        let at = settings.from + TimeDelta::days(day);
        if at > clock.now() {
            clock.sleep_until(at).await;
        }
        on_day(mode, day);
    }
}

/// [`coordinated`] on a world that holds `estate`'s discovered clusters too, telling `on_day` as each
/// simulated day passes.
pub fn coordinated_on(
    policy: &Policy,
    settings: &Settings,
    estate: Option<&Estate>,
    on_day: OnDay<'_>,
) -> Result<Report, SimulateError> {
    settings.validate()?;
    // A what-if run allocates far more than it keeps: mimalloc's pace (`heap`).
    crate::heap::favour_throughput();
    let mut policy = policy.clone();
    policy.agent.observe_interval = OBSERVE_INTERVAL;
    // The comparison measures the schedules, not the audit's settings reads.
    policy.agent.audit_interval = None;
    let policy = Arc::new(policy);
    let (state_dir, temporary) = match &settings.state_dir {
        Some(d) => (d.clone(), false),
        None => (temp_dir(), true),
    };
    std::fs::create_dir_all(&state_dir).map_err(|source| SimulateError::StateDir {
        path: state_dir.clone(),
        source,
    })?;
    let result = runtime()?.block_on(run_agent(
        policy.clone(),
        settings,
        state_dir.clone(),
        estate,
        on_day,
    ));
    if temporary {
        let _ = std::fs::remove_dir_all(&state_dir);
    }
    result
}

static RUNS: AtomicU64 = AtomicU64::new(0);

fn temp_dir() -> PathBuf {
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "snapwarden-simulate-{}-{n}-{}",
        std::process::id(),
        Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ))
}

async fn run_agent(
    policy: Arc<Policy>,
    settings: &Settings,
    state_dir: PathBuf,
    estate: Option<&Estate>,
    on_day: OnDay<'_>,
) -> Result<Report, SimulateError> {
    let from = settings.from;
    let end = settings.end();
    let clock = Arc::new(TokioClock::starting_at(from));
    let sim = world(&policy, from, estate, ManagedCopies::Snapwarden)?;
    let prefix = policy.agent.snapshot_prefix.clone();
    let before = sim.with(|w| census(w, &prefix));
    let servers = veeam_servers(&policy, &sim)?;
    let meter = Meter::with_veeam(
        sim.clone(),
        clock.clone(),
        servers.iter().map(|(_, v, _)| v.clone()).collect(),
        &policy,
    );
    let veeam_clients = metered_veeam_clients(&policy, &meter, servers)?;
    let clients = policy
        .clusters
        .iter()
        .map(|c| ClusterClient {
            name: c.name.clone(),
            ontap: meter.client(&c.name),
        })
        .collect();
    let hooks = drawn_backups(policy.clone(), settings.draws());
    let agent = Agent::new(
        policy.clone(),
        clients,
        clock.clone(),
        Options {
            state_dir: state_dir.clone(),
            triggers: Triggers::Clock,
            hooks: Some(hooks),
        },
    )?
    .with_veeam(veeam_clients)
    .unobserved();
    let events = agent.events();
    let journal = agent.journal();
    journal.ephemeral().map_err(AgentError::from)?;
    let task = tokio::spawn(agent.run());
    days_pass(&clock, settings, "coordinated", on_day).await;
    clock.sleep_until(end).await;
    let _ = events.send(Event::Shutdown);
    let left = task
        .await
        .map_err(|e| SimulateError::Task(e.to_string()))??;
    journal.flush().map_err(AgentError::from)?;
    meter.sync();
    let measured = meter.measured();
    let after = sim.with(|w| census(w, &prefix));

    let cycles = journal
        .recent_cycles(DateTime::<Utc>::MIN_UTC, None, usize::MAX >> 1)
        .map_err(AgentError::from)?;
    let mut report = base_report("coordinated", &policy, settings, &measured);
    count_cycles(&mut report, &cycles, settings.from, end);
    let conflicts = journal
        .conflicts(DateTime::<Utc>::MIN_UTC, usize::MAX >> 1)
        .map_err(AgentError::from)?;
    count_conflicts(&mut report, &conflicts);
    let taken = journal
        .managed(settings.from - WORLD_LEAD, false)
        .map_err(AgentError::from)?;
    count_deferrals(&mut report, &taken, settings.from, end);
    let licensed: Vec<(String, bool)> = sim.with(|w| {
        w.clusters
            .iter()
            .enumerate()
            .map(|(ci, c)| (c.name.clone(), w.licensed(ci, "flexclone")))
            .collect()
    });
    let rule = &policy.flexclone;
    let space = journal.locked_space().map_err(AgentError::from)?;
    report.flexclone_recommendations = recommend::with_locked_space(
        recommend::for_volumes(
            &conflicts,
            &recommend::ends(&cycles),
            rule.recommend_after,
            rule.within,
            end,
            &|cluster: &str| licensed.iter().find(|(c, _)| c == cluster).map(|(_, l)| *l),
        ),
        &conflicts,
        &space,
    );
    let open: HashSet<(String, String, String)> = left
        .iter()
        .map(|c| {
            (
                c.cluster.clone(),
                c.volume.clone(),
                c.backing_snapshot.clone(),
            )
        })
        .collect();
    let open_luns: HashSet<(String, String)> = left
        .iter()
        .flat_map(|c| c.clones.iter().map(|l| (c.cluster.clone(), l.path.clone())))
        .collect();
    report.locked_at_end = u64::try_from(left.len()).unwrap_or(u64::MAX);
    report.leaked_objects = leaked(&after, &open, &open_luns);
    report.foreign_objects_deleted = foreign_deleted(&before, &after, &measured);
    Ok(report)
}

/// The agent's clients of the simulated Veeam servers, answered in process after a meter sync.
fn metered_veeam_clients(
    policy: &Policy,
    meter: &Arc<Meter>,
    servers: Vec<(String, Arc<VeeamSim>, crate::ontap::secret::Secret)>,
) -> Result<Vec<(String, Arc<crate::veeam::VeeamClient>)>, SimulateError> {
    let mut veeam_clients = Vec::new();
    for (name, vsim, password) in servers {
        let pc = policy.veeam.iter().find(|v| v.name == name);
        let mut options = crate::veeam::VeeamOptions::new(
            name.clone(),
            "https://veeam-simulator.invalid",
            pc.map(|p| p.username.clone()).unwrap_or_default(),
            password,
        );
        if let Some(p) = pc {
            options.api_version = p.api_version.clone();
        }
        let m = meter.clone();
        let client = crate::veeam::VeeamClient::new(options)
            .map_err(|e| SimulateError::World(e.to_string()))?
            .with_local(Arc::new(InProcess::new(vsim, Box::new(move || m.sync()))));
        veeam_clients.push((name, Arc::new(client)));
    }
    Ok(veeam_clients)
}

/// The agent's hooks replaced: each backup takes its drawn duration and succeeds.
fn drawn_backups(policy: Arc<Policy>, draws: Draws) -> HookOverride {
    Arc::new(move |c: &Cycle| {
        let w = policy.windows.iter().find(|w| w.name == c.window)?;
        let backup = draws.backup(
            &OccurrenceRef {
                cluster: &c.cluster,
                svm: &c.svm,
                volume: &c.volume,
                window: &c.window,
                start: c.window_start,
            },
            w.expected,
            w.max,
        );
        Some(HookSpec::Simulated {
            duration: backup.duration,
            succeed: true,
        })
    })
}

/// The journaled cycles of occurrences in `[from, end)`, by result, and the shifted ones.
fn count_cycles(report: &mut Report, cycles: &[Cycle], from: DateTime<Utc>, end: DateTime<Utc>) {
    for c in cycles
        .iter()
        .filter(|c| c.window_start >= from && c.window_start < end)
    {
        match c.result {
            Some(CycleResult::Completed) => report.cycles_completed += 1,
            Some(CycleResult::Overrun) => report.cycles_overrun += 1,
            Some(CycleResult::Failed) => report.cycles_failed += 1,
            Some(CycleResult::Skipped) => report.cycles_skipped += 1,
            None => {}
        }
        if matches!(
            c.result,
            Some(CycleResult::Completed | CycleResult::Overrun)
        ) && c.create_at != c.window_start
        {
            report.cycles_shifted += 1;
        }
    }
}

/// The journaled conflicts by kind, every kind named (0 when none).
fn count_conflicts(report: &mut Report, conflicts: &[ObservedConflict]) {
    for k in [
        ConflictKind::ChainConflict,
        ConflictKind::Locked,
        ConflictKind::LateRelease,
        ConflictKind::Foreign,
        ConflictKind::Skipped,
    ] {
        let n = conflicts.iter().filter(|c| c.kind == k).count();
        report
            .recorded_conflicts
            .insert(k.as_str(), u64::try_from(n).unwrap_or(u64::MAX));
    }
}

/// The managed snapshots the agent journaled as made in `[from, end]`: those that waited for a
/// clone (`deferred`, or `max_defer` when the wait ran out), the instants they covered beyond
/// their first, and the longest wait.
fn count_deferrals(
    report: &mut Report,
    records: &[ManagedRecord],
    from: DateTime<Utc>,
    end: DateTime<Utc>,
) {
    for r in records.iter().filter(|r| {
        r.state == ObjectState::Created
            && r.asked_at >= from
            && r.asked_at <= end
            && matches!(r.reason.as_str(), "deferred" | "max_defer")
    }) {
        report.scheduled_snapshots_deferred += 1;
        report.scheduled_snapshots_coalesced += u64::from(r.instants.saturating_sub(1));
        let waited = u64::try_from(r.waited.num_seconds()).unwrap_or(0);
        report.max_defer_seconds = report.max_defer_seconds.max(waited);
    }
}

fn base_report(mode: &'static str, policy: &Policy, settings: &Settings, m: &Measured) -> Report {
    let planned = occurrences(policy, settings.from, settings.end()).len();
    Report {
        mode,
        from: settings.from,
        days: settings.days,
        seed: settings.seed,
        overrun_rate: settings.overrun_rate,
        volumes: policy.volumes.len(),
        cycles_planned: u64::try_from(planned).unwrap_or(u64::MAX),
        cycles_completed: 0,
        cycles_shifted: 0,
        cycles_skipped: 0,
        cycles_overrun: 0,
        cycles_failed: 0,
        chain_conflicts: m.chain_conflicts,
        // Hundredths of an hour: stable text in the JSON.
        locked_backing_snapshot_hours: (m.locked_seconds / 36) as f64 / 100.0,
        max_locked_backing_snapshots: m.max_locked,
        locked_at_end: 0,
        scheduled_snapshots_taken: m.scheduled_snapshots_taken,
        scheduled_snapshots_missed: m.scheduled_snapshots_missed,
        managed_snapshots_taken: m.managed_snapshots_taken,
        scheduled_snapshots_deferred: 0,
        scheduled_snapshots_coalesced: 0,
        max_defer_seconds: 0,
        retention_violations: m.retention_violations,
        leaked_objects: 0,
        foreign_objects_deleted: 0,
        recorded_conflicts: BTreeMap::new(),
        flexclone_recommendations: Vec::new(),
    }
}

/// Runs the uncoordinated baseline for the period and reports.
pub fn uncoordinated(policy: &Policy, settings: &Settings) -> Result<Report, SimulateError> {
    uncoordinated_on(policy, settings, None, &mut |_, _| {})
}

/// [`uncoordinated`] on a world that holds `estate`'s discovered clusters too.
pub fn uncoordinated_on(
    policy: &Policy,
    settings: &Settings,
    estate: Option<&Estate>,
    on_day: OnDay<'_>,
) -> Result<Report, SimulateError> {
    settings.validate()?;
    crate::heap::favour_throughput();
    let from = settings.from;
    let end = settings.end();
    runtime()?.block_on(async {
        let clock = Arc::new(TokioClock::starting_at(from));
        let sim = world(policy, from, estate, ManagedCopies::Ontap)?;
        let prefix = policy.agent.snapshot_prefix.clone();
        let before = sim.with(|w| census(w, &prefix));
        let servers = veeam_servers(policy, &sim)?;
        let veeam: Vec<(String, Arc<VeeamSim>)> =
            servers.into_iter().map(|(n, v, _)| (n, v)).collect();
        let meter = Meter::with_veeam(
            sim.clone(),
            clock.clone(),
            veeam.iter().map(|(_, v)| v.clone()).collect(),
            policy,
        );
        let occurrences = occurrences(policy, from, end);
        let (tally, ()) = tokio::join!(
            baseline::run(
                policy,
                &meter,
                clock.as_ref(),
                settings.draws(),
                &occurrences,
                end,
                &veeam,
            ),
            days_pass(&clock, settings, "uncoordinated", on_day)
        );
        clock.sleep_until(end.max(clock.now())).await;
        meter.sync();
        let measured = meter.measured();
        let after = sim.with(|w| census(w, &prefix));
        let mut report = base_report("uncoordinated", policy, settings, &measured);
        report.cycles_completed = tally.completed;
        report.cycles_overrun = tally.overrun;
        report.cycles_failed = tally.failed;
        report.locked_at_end = u64::try_from(tally.locked.len()).unwrap_or(u64::MAX);
        let open: HashSet<(String, String, String)> = tally.locked.into_iter().collect();
        report.leaked_objects = leaked(&after, &open, &HashSet::new());
        report.foreign_objects_deleted = foreign_deleted(&before, &after, &measured);
        Ok(report)
    })
}

/// Both runs, for `--compare`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    pub coordinated: Report,
    pub uncoordinated: Report,
}

pub fn compare(policy: &Policy, settings: &Settings) -> Result<Comparison, SimulateError> {
    compare_on(policy, settings, None, &mut |_, _| {})
}

/// [`compare`] on a world that holds `estate`'s discovered clusters too.
pub fn compare_on(
    policy: &Policy,
    settings: &Settings,
    estate: Option<&Estate>,
    on_day: OnDay<'_>,
) -> Result<Comparison, SimulateError> {
    Ok(Comparison {
        coordinated: coordinated_on(policy, settings, estate, on_day)?,
        uncoordinated: uncoordinated_on(policy, settings, estate, on_day)?,
    })
}
