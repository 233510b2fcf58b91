//! Command-line interface: `init`, `check`, `plan`, `doctor`, `run`, `status`, `history`, `report`,
//! `simulate`, `simulator serve`.
//!
//! The imperative edge: it reads the clock and files, calls the pure core, prints, and maps
//! outcomes to exit codes (0 ok, 1 conflicts predicted, 2 invalid input).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, TimeDelta, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{self, Policy};
use crate::planner::{self, Observed, Plan};
use crate::render::{check_report, plan_table, write_plan_json, CHECK_LISTED};

mod agent;
mod doctor;
mod init;
mod report;
mod simulate;
mod simulator;
mod tables;

pub use agent::LogFormat;
pub use tables::status_table;

/// Exit code: valid and nothing to report.
pub const EXIT_OK: u8 = 0;
/// Exit code: valid, but conflicts are predicted.
pub const EXIT_CONFLICTS: u8 = 1;
/// Exit code: invalid input (policy errors, unusable arguments, a policy that needs a cluster).
pub const EXIT_INVALID: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "snapwarden",
    version,
    about = "Keeps backup backing snapshots clear of ONTAP scheduled snapshots"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Draft a policy from what the clusters hold (GETs only): every volume with LUNs, one
    /// window over them (exit 0 written; 2 bad argument or unreadable cluster, nothing written).
    /// Draft a policy from what the clusters hold (GETs only): every volume with LUNs, one
    /// window over them (exit 0 written; 2 bad argument or unreadable cluster, nothing written).
    Init(Box<init::Args>),
    /// Validate a policy and predict conflicts (exit 0: none, 1: conflicts, 2: invalid).
    Check {
        /// The policy TOML file (includes are read relative to it); see config/reference.toml.
        policy: PathBuf,
        #[command(flatten)]
        horizon: Horizon,
        /// List every predicted conflict in the table, not only the first 20 (the summary
        /// counts them all; the JSON always has every one).
        #[arg(long)]
        all: bool,
        /// Table for people, JSON for scripts.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Show scheduled snapshots and planned backing-snapshot lifecycles per volume.
    Plan {
        /// The policy TOML file (includes are read relative to it); see config/reference.toml.
        policy: PathBuf,
        #[command(flatten)]
        horizon: Horizon,
        /// Table for people, JSON for scripts.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Run the agent: create and release backing snapshots and clones between scheduled
    /// snapshots (exit 0 after SIGTERM/SIGINT; 2 on a bad policy or state directory).
    Run {
        /// The policy TOML file; see config/reference.toml.
        #[arg(long)]
        config: PathBuf,
        /// The journal's directory (default: `[agent] state_dir`).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Log lines as text or JSON (one object per line).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Ask the running agent what it is doing (`/api/v1/status` on `[agent] listen`).
    Status {
        /// The policy the agent runs (for its listen address; default 127.0.0.1:9464).
        #[arg(long, conflicts_with = "url")]
        config: Option<PathBuf>,
        /// The agent's base URL, for example http://127.0.0.1:9464.
        #[arg(long)]
        url: Option<String>,
        /// A file holding the agent's API token (default: the policy's `[agent] token_file`).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Table for people, JSON for scripts.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Past cycles from the journal (whether or not the agent runs).
    History {
        /// The policy (for its `[agent] state_dir`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The journal's directory (overrides the policy's).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Only this window's cycles.
        #[arg(long)]
        window: Option<String>,
        /// Cycles planned at or after this: RFC 3339, or a duration ago (default 7d).
        #[arg(long, value_parser = agent::parse_since)]
        since: Option<agent::SinceArg>,
        /// At most this many cycles, newest first.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        limit: u32,
        /// Table for people, JSON for scripts.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Per volume from the journal: cycles by result, conflicts by kind, locked hours, and the
    /// FlexClone recommendation with its evidence (exit 0; 2 no journal).
    Report {
        /// The policy (for its `[agent] state_dir` and `[flexclone]` rule; default rule 3 in 7d).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The journal's directory (overrides the policy's).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Count from this: RFC 3339, or a duration before the newest record (default 30d).
        #[arg(long, value_parser = agent::parse_since)]
        since: Option<agent::SinceArg>,
        /// Report as of this instant (RFC 3339) instead of the later of now and the newest
        /// record: a look back, or a simulated journal whose period is past.
        #[arg(long, value_parser = parse_rfc3339)]
        as_of: Option<DateTime<Utc>>,
        /// Table for people, JSON for scripts.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// What-if in virtual time: the agent over N days of a simulated world, beside a backup
    /// tool unaware of schedules (exit 0; 2 on a bad policy or argument).
    Simulate {
        /// The policy TOML file; its clusters have `endpoint = "simulator"`, or real ones are
        /// read with `--from-cluster`.
        policy: PathBuf,
        /// How many days to simulate (1 to 366).
        #[arg(long, value_parser = simulate::parse_days, allow_hyphen_values = true)]
        days: i64,
        /// Start of the simulation (RFC 3339); default: the current hour.
        #[arg(long, value_parser = parse_rfc3339)]
        from: Option<DateTime<Utc>>,
        /// Seed of the drawn backup durations (same seed, policy and --from: same output).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Share of backups that run past their window's `max` (0 to 1).
        #[arg(long, default_value_t = 0.0, value_parser = simulate::parse_rate, allow_hyphen_values = true)]
        overrun_rate: f64,
        /// Only the baseline: snapshot and clone at each window's start, release at the
        /// backup's end, ignoring schedules.
        #[arg(long, conflicts_with = "compare")]
        uncoordinated: bool,
        /// Both runs, side by side (JSON: {"coordinated": …, "uncoordinated": …}).
        #[arg(long)]
        compare: bool,
        /// Keep the simulated agent's journal here (for `history`); default: a temporary one.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Build the world of the policy's real clusters from a read-only discovery of them
        /// (GETs only; the simulation never calls them again).
        #[arg(long)]
        from_cluster: bool,
        /// Table for people, JSON for scripts.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Audit the policy's clusters read-only (GETs only) for what will break backups: each
    /// finding with a severity, a code and the fix (exit 0: nothing above info, 1: warnings,
    /// 2: critical, or the audit could not run).
    Doctor {
        /// The policy TOML file; see config/reference.toml.
        policy: PathBuf,
        /// Table for people, JSON for scripts (docs/doctor.md).
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// A backing snapshot older than this is an orphan unless an open cycle holds it
        /// (`24h`, `3d`, `PT36H`; above zero, at most a year).
        #[arg(long, default_value = "24h", value_parser = doctor::parse_older_than, allow_hyphen_values = true)]
        older_than: TimeDelta,
        /// The agent's journal directory: its open cycles' backing snapshots are not orphans
        /// (without it, every old backing snapshot of snapwarden's is).
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Run the ONTAP simulator.
    Simulator {
        #[command(subcommand)]
        command: simulator::SimulatorCommand,
    },
}

#[derive(Debug, clap::Args)]
pub struct Horizon {
    /// Start of the horizon (RFC 3339); default: now.
    #[arg(long, value_parser = parse_rfc3339)]
    pub from: Option<DateTime<Utc>>,
    /// Length of the horizon in hours (default: 168 for check, 24 for plan).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=24 * 366))]
    pub hours: Option<u32>,
    /// Plan from the policy alone: a volume that needs cluster facts (`timezone = "auto"`,
    /// `snapshot_policy = "ontap"`) is an error instead of a read-only discovery.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}; expected RFC 3339 such as 2026-11-25T00:00:00Z"))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Run { log_format, .. } => {
            agent::init_logging(*log_format, "info,tokio_cron_scheduler=warn")
        }
        // The simulated agent's conflicts are the report, not warnings.
        Command::Simulate { .. } => agent::init_logging(LogFormat::Text, "error"),
        _ => agent::init_logging(LogFormat::Text, "warn"),
    }
    let code = match cli.command {
        Command::Init(args) => init::run(*args),
        Command::Check {
            policy,
            horizon,
            all,
            output,
        } => check(&policy, &horizon, all, output),
        Command::Plan {
            policy,
            horizon,
            output,
        } => plan(&policy, &horizon, output),
        Command::Run {
            config,
            state_dir,
            log_format: _,
        } => agent::run(&config, state_dir),
        Command::Status {
            config,
            url,
            token_file,
            output,
        } => agent::status(config.as_deref(), url, token_file.as_deref(), output),
        Command::History {
            config,
            state_dir,
            window,
            since,
            limit,
            output,
        } => agent::history(
            config.as_deref(),
            state_dir,
            window.as_deref(),
            since,
            limit as usize,
            output,
        ),
        Command::Report {
            config,
            state_dir,
            since,
            as_of,
            output,
        } => report::run(config.as_deref(), state_dir, since, as_of, output),
        Command::Simulate {
            policy,
            days,
            from,
            seed,
            overrun_rate,
            uncoordinated,
            compare,
            state_dir,
            from_cluster,
            output,
        } => simulate::run(simulate::Args {
            policy,
            days,
            from,
            seed,
            overrun_rate,
            mode: match (uncoordinated, compare) {
                (_, true) => simulate::Mode::Compare,
                (true, false) => simulate::Mode::Uncoordinated,
                (false, false) => simulate::Mode::Coordinated,
            },
            state_dir,
            from_cluster,
            output,
        }),
        Command::Doctor {
            policy,
            output,
            older_than,
            state_dir,
        } => doctor::run(doctor::Args {
            policy,
            output,
            older_than,
            state_dir,
        }),
        Command::Simulator { command } => simulator::run(command),
    };
    ExitCode::from(code)
}

/// Loads the policy and plans it, from the policy alone or — when volumes need cluster facts
/// and `--offline` is not given — after a read-only discovery of the clusters that own them.
///
/// With `partial` (`check --offline`), volumes that only a cluster can resolve (on a real
/// cluster, with `timezone = "auto"` or `snapshot_policy = "ontap"`) are left out of the plan
/// rather than refused, and the returned lines say what was not checked; anything else that
/// cannot be planned is still exit 2.
fn plan_policy(
    path: &Path,
    horizon: &Horizon,
    default_hours: u32,
    partial: bool,
) -> Result<(Policy, Plan, Vec<String>), u8> {
    let policy = config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        EXIT_INVALID
    })?;
    let from = horizon.from.unwrap_or_else(Utc::now);
    let hours = TimeDelta::hours(i64::from(horizon.hours.unwrap_or(default_hours)));
    let mut plan = planner::plan(&policy, &Observed::offline(), from, hours);
    if !plan.unresolved.is_empty() && !horizon.offline {
        let observed = agent::discover_for_planning(&policy, &plan)?;
        plan = planner::plan(&policy, &observed, from, hours);
    }
    if !horizon.offline {
        agent::check_veeam_jobs(&policy)?;
    }
    let mut not_checked = Vec::new();
    if partial && horizon.offline {
        not_checked = needs_clusters(&policy);
        plan.unresolved
            .retain(|u| !needs_cluster_facts(&policy, u.volume));
        not_checked.extend(veeam_jobs_not_looked_up(&policy));
    }
    if !plan.unresolved.is_empty() {
        let how = if horizon.offline { " offline" } else { "" };
        eprintln!("{}: cannot plan{how}:", path.display());
        for u in &plan.unresolved {
            eprintln!("  {}", u.reason);
        }
        if horizon.offline && !partial {
            eprintln!("(check --offline validates everything else without the clusters)");
        }
        return Err(EXIT_INVALID);
    }
    Ok((policy, plan, not_checked))
}

/// Whether volume `vi` is planned only from facts its (real) cluster gives: its time zone
/// (`timezone = "auto"`) or its schedules (`snapshot_policy = "ontap"`).
fn needs_cluster_facts(policy: &Policy, vi: usize) -> bool {
    let volume = &policy.volumes[vi];
    let cluster = &policy.clusters[volume.cluster];
    cluster.endpoint != config::Endpoint::Simulator
        && (cluster.known_timezone().is_none()
            || volume.schedules == config::VolumeSchedules::Ontap)
}

/// What `check --offline` leaves to the clusters, one line per cluster: the facts it would read
/// and the volumes that need them.
fn needs_clusters(policy: &Policy) -> Vec<String> {
    let mut lines = Vec::new();
    for (ci, cluster) in policy.clusters.iter().enumerate() {
        let volumes: Vec<usize> = (0..policy.volumes.len())
            .filter(|&vi| policy.volumes[vi].cluster == ci && needs_cluster_facts(policy, vi))
            .collect();
        if volumes.is_empty() {
            continue;
        }
        let mut facts = Vec::new();
        if cluster.known_timezone().is_none() {
            facts.push("its time zone (timezone = \"auto\")".to_string());
        }
        let ontap: Vec<String> = volumes
            .iter()
            .filter(|&&vi| policy.volumes[vi].schedules == config::VolumeSchedules::Ontap)
            .map(|&vi| policy.volumes[vi].name.clone())
            .collect();
        if !ontap.is_empty() {
            facts.push(format!(
                "the snapshot schedules of {} (snapshot_policy = \"ontap\")",
                ontap.join(", ")
            ));
        }
        let ids: Vec<String> = volumes.iter().map(|&vi| policy.volume_id(vi)).collect();
        lines.push(format!(
            "cluster {}: {}; not planned: {}",
            cluster.name,
            facts.join(" and "),
            ids.join(", ")
        ));
    }
    lines
}

/// The Veeam windows whose job `check` looks up on its (real) server unless `--offline`.
fn veeam_jobs_not_looked_up(policy: &Policy) -> Vec<String> {
    policy
        .windows
        .iter()
        .filter_map(|w| match &w.driver {
            config::Driver::Veeam(r) if !policy.veeam[r.server].is_simulator() => Some(format!(
                "window {}: Veeam job {:?} on server {} (not looked up)",
                w.name, r.job, policy.veeam[r.server].name
            )),
            _ => None,
        })
        .collect()
}

/// The note `check --offline` ends with when something needs the clusters.
fn not_checked_note(lines: &[String]) -> String {
    let mut out = String::from(
        "not checked offline (these need the cluster; run check without --offline to check them):\n",
    );
    for l in lines {
        out.push_str(&format!("  {l}\n"));
    }
    out
}

fn check(path: &Path, horizon: &Horizon, all: bool, output: Output) -> u8 {
    let (policy, plan, not_checked) = match plan_policy(path, horizon, 168, true) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match output {
        Output::Table => {
            let listed = (!all).then_some(CHECK_LISTED);
            let mut text = check_report(&policy, &plan, listed);
            if !not_checked.is_empty() {
                text.push_str(&not_checked_note(&not_checked));
            }
            print(&text);
        }
        Output::Json => {
            print_json(&policy, &plan);
            // stdout stays the documented JSON.
            if !not_checked.is_empty() {
                eprint!("{}", not_checked_note(&not_checked));
            }
        }
    }
    // What could not be checked offline does not change the code: 0 and 1 speak of what was.
    if plan.conflicts.is_empty() {
        EXIT_OK
    } else {
        EXIT_CONFLICTS
    }
}

fn plan(path: &Path, horizon: &Horizon, output: Output) -> u8 {
    let (policy, plan, _) = match plan_policy(path, horizon, 24, false) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match output {
        Output::Table => print(&plan_table(&policy, &plan)),
        Output::Json => print_json(&policy, &plan),
    }
    EXIT_OK
}

/// Streams the plan's JSON to a buffered stdout (no document tree: large plans are hundreds of
/// MB). A closed pipe (`| head`) ends the output quietly, like [`print`].
fn print_json(policy: &Policy, plan: &Plan) {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let _ = write_plan_json(&mut out, policy, plan)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}

fn print(text: &str) {
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
