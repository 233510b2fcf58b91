//! Veeam Backup & Replication: the REST client that starts a window's job and follows its session.
//!
//! Facts about the API are in `shared/reference/veeam-rest.md`; the client follows the published
//! OpenAPI revision `1.1-rev0` (sent as `x-api-version` unless the policy names another). Its peer
//! in tests, the Veeam simulator, lives beside the ONTAP simulator (`crate::sim::veeam`); this
//! module imports nothing from it.

pub mod client;
pub mod error;
pub mod session;

#[cfg(test)]
mod client_tests;

pub use client::{SessionPolling, VeeamClient, VeeamOptions};
pub use error::VeeamError;
pub use session::{Job, Session, SessionResult, SessionState, Started};
