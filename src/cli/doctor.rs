//! `snapwarden doctor`: reads the policy's clusters once (GETs only), plans the next week as
//! `check` does, and prints the audit's findings (exit 0 nothing above info, 1 warnings, 2
//! critical or the audit could not run).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::{TimeDelta, Utc};

use super::{agent::open_journal_dir, Output, EXIT_INVALID};
use crate::agent::{connect, doctor};
use crate::config;
use crate::error::error_chain;
use crate::planner;
use crate::sim::{embedded, ClockMode};

/// `--older-than` at most: a year; longer is a mistyped unit, not an age a backup reaches.
const OLDER_THAN_MAX: TimeDelta = TimeDelta::days(366);

/// `--older-than`: a duration above zero and at most a year (`24h`, `3d`, `PT36H`).
pub fn parse_older_than(s: &str) -> Result<TimeDelta, String> {
    let d = crate::domain::parse_duration(s)?;
    if d <= TimeDelta::zero() {
        return Err(format!(
            "{s:?} is not above zero: give the age from which a backing snapshot is an orphan, \
             such as 24h"
        ));
    }
    if d > OLDER_THAN_MAX {
        return Err(format!(
            "{s:?} is longer than a year (366d): check the unit"
        ));
    }
    Ok(d)
}

pub struct Args {
    pub policy: PathBuf,
    pub output: Output,
    pub older_than: TimeDelta,
    pub state_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> u8 {
    let policy = match config::load(&args.policy) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return EXIT_INVALID;
        }
    };
    let open = match args.state_dir.as_deref().map(open_backing).transpose() {
        Ok(o) => o,
        Err(code) => return code,
    };
    let embedded = match embedded::connect(&policy, ClockMode::Real, None) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    let clients: Vec<_> = connect::connect(&policy, |name| embedded.client(name))
        .into_iter()
        .map(|c| (c.name, c.ontap))
        .collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return EXIT_INVALID;
        }
    };
    let now = Utc::now();
    let estate = runtime.block_on(doctor::read_clusters(&clients, now));
    if !estate.errors.is_empty() {
        for e in &estate.errors {
            eprintln!("{}", error_chain(e));
        }
        eprintln!(
            "{}: the audit could not run: every cluster of the policy must answer (doctor reads \
             only; fix the address, credentials or TLS settings above)",
            args.policy.display()
        );
        return EXIT_INVALID;
    }
    let observed = estate.observed();
    let plan = planner::plan(&policy, &observed, now, doctor::HORIZON);
    let findings = doctor::audit(&doctor::Input {
        policy: &policy,
        clusters: &estate.listings,
        observed: &observed,
        plan: &plan,
        open_backing: open.as_ref(),
        now,
        older_than: args.older_than,
    });
    let text = match args.output {
        Output::Table => doctor::render::table(&findings),
        Output::Json => doctor::render::Report::new(&findings, now, args.older_than).json(),
    };
    super::print(&text);
    doctor::exit_code(&findings)
}

/// The backing snapshots of the journal's open cycles, read-only.
fn open_backing(dir: &Path) -> Result<HashSet<[String; 4]>, u8> {
    let journal = open_journal_dir(dir)?;
    let cycles = journal.open_cycles().map_err(|e| {
        eprintln!("{e}");
        EXIT_INVALID
    })?;
    Ok(cycles
        .into_iter()
        .map(|c| [c.cluster, c.svm, c.volume, c.backing_snapshot])
        .collect())
}
