//! The ONTAP simulator: a world of clusters whose scheduled snapshots happen by themselves.
//!
//! Layout: `world` (state and typed operations, no I/O), `config` (world TOML and
//! `from_policy`), `query` (ONTAP collection query semantics), `rest` (the `/api` and
//! `/simulator/v1` handlers), `server` (HTTP(S) serving, auth, faults, the real clock), and
//! `client` (`SimClient`, the in-process `Ontap` implementation), `veeam`, the Veeam B&R simulator
//! acting on the same world, and `embedded`, a policy's simulator clusters and Veeam servers as
//! in-process clients. See `docs/simulator.md`.

pub mod world;

pub use world::{Faults, Knobs, LockedOldest, SimError, World};
pub mod client;
pub mod config;
pub mod embedded;
pub mod query;
pub mod rest;
pub mod server;
pub mod veeam;

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

pub use client::SimClient;
pub use server::{serve, start, ServeOptions, ServerHandle, WorldSource};
pub use world::{ClockEvent, ClockSummary, MAX_ADVANCE_SECONDS};

use crate::config::model::Policy;

/// Who moves the simulator's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    /// Wall-clock time: the world is advanced to `Utc::now()` before every operation and by a
    /// background task.
    Real,
    /// Starts at a given instant and moves only through [`Simulator::advance`].
    Manual,
}

impl std::str::FromStr for ClockMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "real" => Ok(ClockMode::Real),
            "manual" => Ok(ClockMode::Manual),
            other => Err(format!(
                "unknown clock mode \"{other}\" (expected real or manual)"
            )),
        }
    }
}

/// The clock refused to move.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("the simulator clock is real (wall-clock); only a manual clock can be advanced")]
    Real,
    #[error(
        "an advance must be 0 ..= {max} seconds (366 days) per call; {seconds} is out of range"
    )]
    OutOfRange { seconds: i64, max: i64 },
    #[error("advancing {seconds} seconds from {now} leaves the representable time range")]
    Overflow { seconds: i64, now: DateTime<Utc> },
}

/// The shared simulator: one [`World`] behind a mutex (never held across an await) and its clock.
#[derive(Debug)]
pub struct Simulator {
    world: Mutex<World>,
    clock: ClockMode,
    /// `/api` requests served over HTTP (`GET /simulator/v1/requests`).
    requests: server::RequestCounts,
}

impl Simulator {
    pub fn new(world: World, clock: ClockMode) -> Arc<Simulator> {
        Arc::new(Simulator {
            world: Mutex::new(world),
            clock,
            requests: server::RequestCounts::default(),
        })
    }

    /// The world a policy describes (clusters with `endpoint = "simulator"`), for in-process use.
    /// `start` defaults to now. Volumes' managed copies are left to snapwarden.
    pub fn from_policy(
        policy: &Policy,
        clock: ClockMode,
        start: Option<DateTime<Utc>>,
    ) -> Result<Arc<Simulator>, config::WorldConfigError> {
        Simulator::from_policy_with(policy, clock, start, config::ManagedCopies::Snapwarden)
    }

    /// [`Simulator::from_policy`], with `managed` saying who takes the volumes' managed copies
    /// (`ManagedCopies::Ontap`: ONTAP, as before they were handed over).
    pub fn from_policy_with(
        policy: &Policy,
        clock: ClockMode,
        start: Option<DateTime<Utc>>,
        managed: config::ManagedCopies,
    ) -> Result<Arc<Simulator>, config::WorldConfigError> {
        let start = start.unwrap_or_else(Utc::now);
        Ok(Simulator::new(
            config::world_from_policy_with(policy, start, managed)?,
            clock,
        ))
    }

    pub fn clock(&self) -> ClockMode {
        self.clock
    }

    /// The `/api` requests this simulator has answered over HTTP so far.
    pub fn requests(&self) -> &server::RequestCounts {
        &self.requests
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves the world as it was at the panic; keep serving.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the world, first bringing a real clock up to now.
    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut w = self.lock();
        if self.clock == ClockMode::Real {
            w.advance_summarized(Utc::now(), 0);
        }
        f(&mut w)
    }

    /// Simulator time.
    pub fn now(&self) -> DateTime<Utc> {
        self.with(|w| w.now())
    }

    /// Moves a manual clock forward by the whole seconds of `by` (0 ..= [`MAX_ADVANCE_SECONDS`]),
    /// firing every due schedule in order; returns every event.
    pub fn advance(&self, by: chrono::TimeDelta) -> Result<Vec<ClockEvent>, ClockError> {
        self.advance_summarized(by.num_seconds(), usize::MAX)
            .map(|s| s.events)
    }

    /// Moves a manual clock forward by `seconds` (0 ..= [`MAX_ADVANCE_SECONDS`]); returns the
    /// counts and at most `cap` events.
    pub fn advance_summarized(&self, seconds: i64, cap: usize) -> Result<ClockSummary, ClockError> {
        if self.clock == ClockMode::Real {
            return Err(ClockError::Real);
        }
        if !(0..=MAX_ADVANCE_SECONDS).contains(&seconds) {
            return Err(ClockError::OutOfRange {
                seconds,
                max: MAX_ADVANCE_SECONDS,
            });
        }
        let mut w = self.lock();
        let now = w.now();
        let to = chrono::TimeDelta::try_seconds(seconds)
            .and_then(|by| now.checked_add_signed(by))
            .ok_or(ClockError::Overflow { seconds, now })?;
        Ok(w.advance_summarized(to, cap))
    }

    /// Brings a real clock up to now (called periodically by the server); no-op when manual.
    pub fn sync(&self) {
        if self.clock == ClockMode::Real {
            self.lock().advance_summarized(Utc::now(), 0);
        }
    }
}
