//! `snapwarden simulator serve`: runs the ONTAP simulator from a world file or a policy.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Subcommand};

use super::{parse_rfc3339, EXIT_INVALID, EXIT_OK};
use crate::config;
use crate::sim::{self, ClockMode, ServeOptions, WorldSource};

#[derive(Debug, Subcommand)]
pub enum SimulatorCommand {
    /// Serve an ONTAP-shaped REST API (and `/simulator/v1` admin API) until interrupted.
    ///
    /// The world comes from exactly one of --config (a world file) or --policy (a policy's
    /// `endpoint = "simulator"` clusters).
    #[command(group(ArgGroup::new("world").required(true).args(["config", "policy"])))]
    Serve {
        /// A world TOML file (see docs/simulator.md and config/simulator/world.example.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// A snapwarden policy: its `endpoint = "simulator"` clusters become the world (at least
        /// one is needed).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Address of the first cluster; cluster i listens on port + i (port 0: free ports).
        /// Plain HTTP is allowed on loopback only.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// `real` follows the wall clock; `manual` moves only through the admin API.
        #[arg(long, default_value = "real", value_parser = parse_clock)]
        clock: ClockMode,
        /// Start instant of a manual clock (RFC 3339); default now. Needs `--clock manual`: a
        /// real clock always starts now.
        #[arg(long, value_parser = parse_rfc3339)]
        start: Option<DateTime<Utc>>,
        /// Serve HTTPS with a generated self-signed certificate (its SHA-256 is printed).
        #[arg(long)]
        tls: bool,
    },
}

fn parse_clock(s: &str) -> Result<ClockMode, String> {
    s.parse()
}

pub fn run(command: SimulatorCommand) -> u8 {
    let SimulatorCommand::Serve {
        config: world_file,
        policy,
        listen,
        clock,
        start,
        tls,
    } = command;
    if start.is_some() && clock != ClockMode::Manual {
        eprintln!("--start needs --clock manual: a real clock always starts now");
        return EXIT_INVALID;
    }
    let world = match (world_file, policy) {
        (Some(path), _) => WorldSource::File(path),
        (None, Some(path)) => {
            let policy = match config::load(&path) {
                Ok(p) => p,
                Err(errors) => {
                    eprintln!("{errors}");
                    return EXIT_INVALID;
                }
            };
            let begin = match clock {
                ClockMode::Manual => start.unwrap_or_else(Utc::now),
                ClockMode::Real => Utc::now(),
            };
            match sim::config::world_from_policy(&policy, begin) {
                Ok(world) => WorldSource::World(Box::new(world)),
                Err(mut e) => {
                    e.source_name = path.display().to_string();
                    eprintln!("{e}");
                    return EXIT_INVALID;
                }
            }
        }
        (None, None) => {
            eprintln!("simulator serve needs --config <FILE> (a world file) or --policy <FILE>");
            return EXIT_INVALID;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return EXIT_INVALID;
        }
    };
    let opts = ServeOptions {
        world,
        listen,
        clock,
        start,
        tls,
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match runtime.block_on(sim::serve(opts, shutdown)) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("simulator: {e:#}");
            EXIT_INVALID
        }
    }
}
