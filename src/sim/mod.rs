//! The ONTAP simulator: a world of clusters whose scheduled snapshots happen by themselves.
//!
//! Layout: `world` (state and typed operations, no I/O), `config` (world TOML and
//! `from_policy`), `query` (ONTAP collection query semantics), `rest` (the `/api` and
//! `/simulator/v1` handlers), `server` (HTTP(S) serving, auth, faults, the real clock), and
//! `client` (`SimClient`, the in-process `Ontap` implementation). See `docs/simulator.md`.

pub mod world;

pub use world::{Faults, Knobs, LockedOldest, SimError, World};
