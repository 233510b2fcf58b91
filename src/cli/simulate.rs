//! `snapwarden simulate`: the agent in virtual time on a simulated world, with the uncoordinated
//! baseline beside it; a table for people, JSON for scripts.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::{Output, EXIT_INVALID, EXIT_OK};
use crate::config;
use crate::ontap::Ontap;
use crate::simulate::{self, Report, Settings};

/// Which runs to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Coordinated,
    Uncoordinated,
    Compare,
}

/// `--days`: read as a signed number so that a negative one gets the same clear error.
pub fn parse_days(s: &str) -> Result<i64, String> {
    let days: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number of days"))?;
    if !(1..=simulate::MAX_DAYS).contains(&days) {
        return Err(format!(
            "{days} days: expected 1 to {} (a year of every schedule)",
            simulate::MAX_DAYS
        ));
    }
    Ok(days)
}

/// `--overrun-rate`: a share from 0 to 1.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !r.is_finite() || !(0.0..=1.0).contains(&r) {
        return Err(format!(
            "{s}: expected a share from 0 to 1 (0.1 is one backup in ten)"
        ));
    }
    Ok(r)
}

/// Everything `simulate` was asked.
pub struct Args {
    pub policy: PathBuf,
    pub days: i64,
    pub from: Option<DateTime<Utc>>,
    pub seed: u64,
    pub overrun_rate: f64,
    pub mode: Mode,
    pub state_dir: Option<PathBuf>,
    /// `--from-cluster`: discover the real clusters (read-only) and simulate them.
    pub from_cluster: bool,
    pub output: Output,
}

pub fn run(args: Args) -> u8 {
    let policy = match config::load(&args.policy) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return EXIT_INVALID;
        }
    };
    // Without --from: the current hour (a rerun within the hour gives the same numbers).
    let from = args.from.unwrap_or_else(|| {
        Utc::now()
            .duration_trunc(TimeDelta::hours(1))
            .unwrap_or_else(|_| Utc::now())
    });
    let settings = Settings {
        days: args.days,
        from,
        seed: args.seed,
        overrun_rate: args.overrun_rate,
        state_dir: args.state_dir,
    };
    if let Err(e) = settings.validate() {
        eprintln!("{}: {e}", args.policy.display());
        return EXIT_INVALID;
    }
    let estate = if args.from_cluster {
        match discover(&policy) {
            Ok(e) => Some(e),
            Err(e) => {
                eprintln!("{}: {e}", args.policy.display());
                return EXIT_INVALID;
            }
        }
    } else {
        None
    };
    let estate = estate.as_ref();
    // A progress line only for a person watching: stderr a terminal, and a table asked for.
    let mut bar = Bar::new(
        args.output == Output::Table && std::io::stderr().is_terminal(),
        settings.days,
    );
    let on_day = &mut |mode, day| bar.day(mode, day);
    let text = match args.mode {
        Mode::Coordinated => simulate::coordinated_on(&policy, &settings, estate, on_day)
            .map(|r| render(args.output, &args.policy, &[&r], &r)),
        Mode::Uncoordinated => simulate::uncoordinated_on(&policy, &settings, estate, on_day)
            .map(|r| render(args.output, &args.policy, &[&r], &r)),
        Mode::Compare => {
            simulate::compare_on(&policy, &settings, estate, on_day).map(|c| match args.output {
                Output::Json => json(&c),
                Output::Table => table(&args.policy, &[&c.coordinated, &c.uncoordinated]),
            })
        }
    };
    bar.finish();
    match text {
        Ok(t) => {
            super::print(&t);
            EXIT_OK
        }
        Err(e) => {
            eprintln!(
                "{}: {}",
                args.policy.display(),
                crate::error::error_chain(&e)
            );
            EXIT_INVALID
        }
    }
}

/// `--from-cluster`: one read-only discovery of each real cluster of the policy, in real time.
fn discover(policy: &config::Policy) -> Result<simulate::Estate, String> {
    let clients: Vec<(usize, Arc<dyn Ontap>)> = policy
        .clusters
        .iter()
        .enumerate()
        .filter(|(_, c)| c.endpoint != config::Endpoint::Simulator)
        .map(|(ci, c)| {
            let ontap: Arc<dyn Ontap> = Arc::new(crate::agent::connect::LazyRest::new(
                c.clone(),
                policy.agent.concurrency,
            ));
            (ci, ontap)
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(simulate::estate::discover(policy, &clients, Utc::now()))
}

/// The progress line on stderr (see [`simulate::progress::line`]), redrawn in place each day.
struct Bar {
    draw: bool,
    total: i64,
    /// The run being drawn, when it began (wall clock), and the last day's instant.
    mode: Option<&'static str>,
    started: Instant,
    last: Instant,
}

impl Bar {
    fn new(draw: bool, total: i64) -> Bar {
        let now = Instant::now();
        Bar {
            draw,
            total,
            mode: None,
            started: now,
            last: now,
        }
    }

    fn day(&mut self, mode: &'static str, day: i64) {
        if !self.draw {
            return;
        }
        if self.mode.is_some_and(|m| m != mode) {
            // The previous run's line stays, finished; the next run began when it ended.
            eprintln!();
            self.started = self.last;
        }
        self.mode = Some(mode);
        self.last = Instant::now();
        let text = simulate::progress::line(mode, day, self.total, self.started.elapsed());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{text}");
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.draw && self.mode.is_some() {
            eprintln!();
        }
    }
}

fn render(output: Output, path: &Path, reports: &[&Report], one: &Report) -> String {
    match output {
        Output::Json => json(one),
        Output::Table => table(path, reports),
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    let mut s =
        serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// One row per measure, one column per run.
pub fn table(path: &Path, reports: &[&Report]) -> String {
    let Some(first) = reports.first() else {
        return String::new();
    };
    let mut out = format!(
        "{}: {} days from {} over {} volumes (seed {}, overrun rate {})\n\n",
        path.display(),
        first.days,
        first.from.to_rfc3339(),
        first.volumes,
        first.seed,
        first.overrun_rate
    );
    type Row = (&'static str, fn(&Report) -> String);
    let rows: [Row; 21] = [
        ("cycles planned", |r| r.cycles_planned.to_string()),
        ("cycles completed", |r| r.cycles_completed.to_string()),
        ("cycles shifted", |r| r.cycles_shifted.to_string()),
        ("cycles skipped", |r| r.cycles_skipped.to_string()),
        ("cycles overrun", |r| r.cycles_overrun.to_string()),
        ("cycles failed", |r| r.cycles_failed.to_string()),
        ("chain conflicts", |r| r.chain_conflicts.to_string()),
        ("locked backing-snapshot hours", |r| {
            format!("{:.2}", r.locked_backing_snapshot_hours)
        }),
        ("max locked backing snapshots", |r| {
            r.max_locked_backing_snapshots.to_string()
        }),
        ("locked at the end", |r| r.locked_at_end.to_string()),
        ("scheduled snapshots taken", |r| {
            r.scheduled_snapshots_taken.to_string()
        }),
        ("scheduled snapshots missed", |r| {
            r.scheduled_snapshots_missed.to_string()
        }),
        ("managed snapshots taken", |r| {
            r.managed_snapshots_taken.to_string()
        }),
        ("scheduled snapshots deferred", |r| {
            r.scheduled_snapshots_deferred.to_string()
        }),
        ("scheduled snapshots coalesced", |r| {
            r.scheduled_snapshots_coalesced.to_string()
        }),
        ("max deferral", |r| {
            crate::planner::human(TimeDelta::seconds(
                i64::try_from(r.max_defer_seconds).unwrap_or(i64::MAX),
            ))
        }),
        ("retention violations", |r| {
            r.retention_violations.to_string()
        }),
        ("leaked objects", |r| r.leaked_objects.to_string()),
        ("foreign objects deleted", |r| {
            r.foreign_objects_deleted.to_string()
        }),
        ("conflicts recorded", |r| {
            if r.mode == "uncoordinated" {
                "-".to_string()
            } else {
                r.recorded_conflicts
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }),
        ("flexclone recommendations", |r| {
            r.flexclone_recommendations.len().to_string()
        }),
    ];
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    out.push_str(&format!("{:width$}", ""));
    for r in reports {
        out.push_str(&format!("  {:>15}", r.mode));
    }
    out.push('\n');
    for (name, cell) in rows {
        out.push_str(&format!("{name:width$}"));
        for r in reports {
            let c = cell(r);
            out.push_str(&format!("  {c:>15}"));
        }
        out.push('\n');
    }
    out
}
