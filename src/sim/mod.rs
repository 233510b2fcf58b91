//! The ONTAP simulator: a world of clusters whose scheduled snapshots happen by themselves.
//!
//! Layout: `world` (state and typed operations, no I/O), `config` (world TOML and
//! `from_policy`), `query` (ONTAP collection query semantics), `rest` (the `/api` and
//! `/simulator/v1` handlers), `server` (HTTP(S) serving, auth, faults, the real clock), and
//! `client` (`SimClient`, the in-process `Ontap` implementation). See `docs/simulator.md`.

pub mod world;

pub use world::{Faults, Knobs, LockedOldest, SimError, World};
pub mod client;
pub mod config;
pub mod query;
pub mod rest;
pub mod server;

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

pub use client::SimClient;
pub use server::{serve, start, ServeOptions, ServerHandle, WorldSource};
pub use world::ClockEvent;

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
#[derive(Debug, thiserror::Error)]
#[error("the simulator clock is real (wall-clock); only a manual clock can be advanced")]
pub struct ClockIsReal;

/// The shared simulator: one [`World`] behind a mutex (never held across an await) and its clock.
#[derive(Debug)]
pub struct Simulator {
    world: Mutex<World>,
    clock: ClockMode,
}

impl Simulator {
    pub fn new(world: World, clock: ClockMode) -> Arc<Simulator> {
        Arc::new(Simulator {
            world: Mutex::new(world),
            clock,
        })
    }

    /// The world a policy describes (clusters with `endpoint = "simulator"`), for in-process use.
    /// `start` defaults to now.
    pub fn from_policy(
        policy: &Policy,
        clock: ClockMode,
        start: Option<DateTime<Utc>>,
    ) -> Result<Arc<Simulator>, config::WorldConfigError> {
        let start = start.unwrap_or_else(Utc::now);
        Ok(Simulator::new(
            config::world_from_policy(policy, start)?,
            clock,
        ))
    }

    pub fn clock(&self) -> ClockMode {
        self.clock
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves the world as it was at the panic; keep serving.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the world, first bringing a real clock up to now.
    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut w = self.lock();
        if self.clock == ClockMode::Real {
            w.advance_to(Utc::now());
        }
        f(&mut w)
    }

    /// Simulator time.
    pub fn now(&self) -> DateTime<Utc> {
        self.with(|w| w.now())
    }

    /// Moves a manual clock forward, firing every due schedule in order.
    pub fn advance(&self, by: chrono::TimeDelta) -> Result<Vec<ClockEvent>, ClockIsReal> {
        if self.clock == ClockMode::Real {
            return Err(ClockIsReal);
        }
        let mut w = self.lock();
        let to = w.now() + by;
        Ok(w.advance_to(to))
    }

    /// Brings a real clock up to now (called periodically by the server); no-op when manual.
    pub fn sync(&self) -> Vec<ClockEvent> {
        if self.clock == ClockMode::Real {
            self.lock().advance_to(Utc::now())
        } else {
            Vec::new()
        }
    }
}
