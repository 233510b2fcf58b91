//! Who makes a window's backing snapshot (its driver), and the Veeam servers a driver may name.
//!
//! Validated domain types, read through `config::*` like the rest of `model`.

use super::diag::Position;
use super::model::{OnOverrun, SecretSource, TlsVerify};

/// The REST API version sent as `x-api-version` when `[[veeam]]` names none: the revision of the
/// published OpenAPI specification the client and the simulator follow (veeam-rest.md).
pub const DEFAULT_VEEAM_API_VERSION: &str = "1.1-rev0";

/// `url = "simulator"`: the Veeam simulator embedded in the agent, on the embedded ONTAP
/// simulator's world (its jobs are the policy's `driver = "veeam"` windows).
pub const VEEAM_SIMULATOR_URL: &str = "simulator";

/// A Veeam Backup & Replication server's REST API (`[[veeam]]`).
///
/// Invariants: `url` is `https://host[:port]` without credentials, path, query or fragment, or
/// [`VEEAM_SIMULATOR_URL`]; `password` is `Some` for every real server; `api_version` is
/// `<major>.<minor>-rev<n>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VeeamServer {
    pub name: String,
    pub url: String,
    pub username: String,
    /// Optional only for the embedded simulator.
    pub password: Option<SecretSource>,
    pub tls: TlsVerify,
    pub api_version: String,
}

impl VeeamServer {
    /// Whether this is the embedded simulator (`url = "simulator"`).
    pub fn is_simulator(&self) -> bool {
        self.url == VEEAM_SIMULATOR_URL
    }
}

/// The Veeam job a `driver = "veeam"` window starts.
///
/// Equality is the job's identity (server and job): moving the line in the file is no change.
#[derive(Debug, Clone)]
pub struct VeeamJobRef {
    /// Index into `Policy::veeam`.
    pub server: usize,
    /// The job's name or id (a UUID) as the policy writes it; resolved against the server's job
    /// list at discovery.
    pub job: String,
    /// Where the policy names the job, for the error when the server has no such job.
    pub at: Position,
}

impl PartialEq for VeeamJobRef {
    fn eq(&self, other: &Self) -> bool {
        self.server == other.server && self.job == other.job
    }
}

impl Eq for VeeamJobRef {}

/// Who makes a window's backing snapshot, and what happens to a backup still running at the
/// window's `max` (which only a driver snapwarden can stop has a choice about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driver {
    /// snapwarden's own lifecycle: snapshot, clones, hook or hold, release.
    Snapwarden(OnOverrun),
    /// A Veeam job started at the planned start; Veeam makes (and deletes) its own snapshots.
    /// snapwarden never stops the job: it always finishes, and its clones are followed until
    /// it does.
    Veeam(VeeamJobRef),
    /// The window's hook runs at the planned start; the hook's tool makes its own snapshots.
    Hook(OnOverrun),
}

impl Default for Driver {
    fn default() -> Driver {
        Driver::Snapwarden(OnOverrun::Release)
    }
}

impl Driver {
    /// The policy file's spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Driver::Snapwarden(_) => "snapwarden",
            Driver::Veeam(_) => "veeam",
            Driver::Hook(_) => "hook",
        }
    }

    /// snapwarden's own lifecycle (not a backup tool's).
    pub fn is_snapwarden(&self) -> bool {
        matches!(self, Driver::Snapwarden(_))
    }

    /// What happens to a backup still running at `max`: the window's `on_overrun`; a Veeam job
    /// always finishes.
    pub fn on_overrun(&self) -> OnOverrun {
        match self {
            Driver::Snapwarden(o) | Driver::Hook(o) => *o,
            Driver::Veeam(_) => OnOverrun::Finish,
        }
    }
}
