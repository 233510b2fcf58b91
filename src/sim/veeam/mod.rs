//! The Veeam B&R simulator: a Veeam server whose jobs act on the ONTAP simulator's world.
//!
//! Layout: `world` (the Veeam state and its operations on the ONTAP `World`, no I/O), `rest` (its
//! REST endpoint, `VeeamSim` = Veeam state + the shared `Simulator`, and `InProcess`, which
//! answers a `VeeamClient` through the same router without a network), `config` (a world file's
//! `[[veeam]]` and the embedded servers of a policy). It imports the production client
//! (`crate::veeam`) only for the transport it plugs into and the limits it must honour; the client
//! imports nothing from here.

pub mod config;
pub mod rest;
pub mod world;

#[cfg(test)]
mod tests;

pub use rest::{advance_all, InProcess, VeeamSim};
pub use world::VeeamWorld;
