//! Veeam Backup & Replication: the REST client that starts a window's job and follows its session.
//!
//! Facts about the API are in `shared/reference/veeam-rest.md`; the client follows the published
//! OpenAPI revision `1.1-rev0` (sent as `x-api-version` unless the policy names another). `sim`
//! and `sim_rest` are a Veeam simulator acting on the ONTAP simulator's world, the client's peer
//! in tests.

pub mod client;
pub mod sim;
pub mod sim_config;
pub mod sim_rest;

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod sim_tests;

pub use client::{
    Job, Session, SessionPolling, SessionResult, SessionState, Started, VeeamClient, VeeamError,
    VeeamOptions,
};
