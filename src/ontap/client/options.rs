//! What a [`RestClient`](super::RestClient) is built from: its options, the tuning a policy
//! cluster may override, the bounds of job polling and retries, and why a build fails.

use std::time::Duration;

use crate::config::TlsVerify;
use crate::ontap::secret::{Secret, SecretError};
use crate::ontap::tls::TlsError;

/// Records per collection page (`max_records`) unless overridden. ONTAP's own default is 10,000;
/// a bounded page keeps each answer small and each request well inside the request timeout on a
/// cluster with thousands of snapshots, at the price of a few more round trips.
pub const DEFAULT_MAX_RECORDS: u32 = 1_000;

/// How a job is polled after a 202.
///
/// Invariant: `initial <= max_interval`; the wait between polls starts at `initial` and doubles
/// up to `max_interval`; after `bound` in total the call fails with
/// [`OntapError::JobTimeout`](crate::ontap::OntapError::JobTimeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobPolling {
    pub initial: Duration,
    pub max_interval: Duration,
    pub bound: Duration,
}

impl Default for JobPolling {
    /// 250 ms doubling to 5 s, for at most 120 s: Trident polls 1 s→2 s for up to 2 min
    /// (reference §6.2); the shorter start suits snapshot operations, which usually finish in
    /// well under a second.
    fn default() -> JobPolling {
        JobPolling {
            initial: Duration::from_millis(250),
            max_interval: Duration::from_secs(5),
            bound: Duration::from_secs(120),
        }
    }
}

/// Retries of one HTTP exchange on transient failures.
///
/// Invariant: at most `1 + max_retries` attempts; the wait before retry `n` (0-based) is
/// `initial_backoff * 2^n`, capped at `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 3 retries, 500 ms doubling to 5 s (Ansible retries "temporarily locked" 3 times,
    /// reference §6.6).
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Everything a [`RestClient`](super::RestClient) needs.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The policy's name for the cluster; in every error and log line.
    pub cluster_name: String,
    /// Scheme, host and port only, for example `https://cluster-a.example.net` (paths are
    /// absolute, `/api/...`).
    pub base_url: String,
    pub username: String,
    pub password: Secret,
    pub tls: TlsVerify,
    /// In-flight requests to this cluster at most (default 4). Must be at least 1.
    pub max_concurrency: usize,
    /// Whole-request timeout of one HTTP exchange (default 60 s).
    pub request_timeout: Duration,
    pub job_poll: JobPolling,
    pub retry: RetryPolicy,
    /// `max_records` of every collection GET (default [`DEFAULT_MAX_RECORDS`]). Must be at
    /// least 1.
    pub max_records: u32,
}

impl ClientOptions {
    /// Options with the defaults: 4 requests in flight, 60 s per request, [`JobPolling::default`],
    /// [`RetryPolicy::default`], [`DEFAULT_MAX_RECORDS`] per page, system trust roots.
    pub fn new(
        cluster_name: impl Into<String>,
        base_url: impl Into<String>,
        username: impl Into<String>,
        password: Secret,
    ) -> ClientOptions {
        ClientOptions {
            cluster_name: cluster_name.into(),
            base_url: base_url.into(),
            username: username.into(),
            password,
            tls: TlsVerify::System,
            max_concurrency: 4,
            request_timeout: Duration::from_secs(60),
            job_poll: JobPolling::default(),
            retry: RetryPolicy::default(),
            max_records: DEFAULT_MAX_RECORDS,
        }
    }
}

/// Tuning that [`RestClient::from_cluster`](super::RestClient::from_cluster) takes on top of the
/// policy's `Cluster`; `None` keeps the default of [`ClientOptions::new`].
#[derive(Debug, Clone, Default)]
pub struct ClientOverrides {
    pub max_concurrency: Option<usize>,
    pub request_timeout: Option<Duration>,
    pub job_poll: Option<JobPolling>,
    pub retry: Option<RetryPolicy>,
    pub max_records: Option<u32>,
}

/// Why a client could not be built (before any request is made).
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("cluster {cluster}: endpoint is the simulator; the REST client needs an https:// URL")]
    SimulatorEndpoint { cluster: String },
    #[error("cluster {cluster}: no password source (password_env or password_file)")]
    NoPassword { cluster: String },
    #[error("cluster {cluster}: cannot load the password")]
    Secret {
        cluster: String,
        #[source]
        source: SecretError,
    },
    #[error("cluster {cluster}: TLS settings")]
    Tls {
        cluster: String,
        #[source]
        source: TlsError,
    },
    #[error("cluster {cluster}: endpoint {url:?} is not a usable http(s) URL: {detail}")]
    BadUrl {
        cluster: String,
        url: String,
        detail: String,
    },
    #[error("cluster {cluster}: cannot build the HTTP client")]
    Http {
        cluster: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("cluster {cluster}: max_concurrency must be at least 1")]
    ZeroConcurrency { cluster: String },
    #[error("cluster {cluster}: max_records must be at least 1")]
    ZeroMaxRecords { cluster: String },
}
