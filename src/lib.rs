//! snapwarden: plans backing-snapshot lifecycles between NetApp ONTAP scheduled snapshots.
//!
//! The crate is one library plus a thin binary (`main.rs`). See `ARCHITECTURE.md` for the map.

pub mod agent;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod fasthash;
pub mod ha;
pub mod heap;
pub mod init;
pub mod ontap;
pub mod planner;
pub mod render;
pub mod sim;
pub mod simulate;
pub mod timeline;
pub mod veeam;
