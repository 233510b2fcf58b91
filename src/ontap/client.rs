//! `RestClient`: the [`Ontap`] trait over ONTAP's REST API (reqwest + rustls).
//!
//! What every call does, in order:
//! 1. builds the URL from the base URL, the path and, for a GET, a [`Fields`] list — a required
//!    argument of both GET helpers, so a GET without `fields=` cannot be written (never `*`/`**`);
//! 2. takes a permit of the per-client semaphore (bounded concurrency per cluster, reference §6.6),
//!    held for one HTTP exchange only — never while sleeping between retries or job polls;
//! 3. sends with HTTP Basic auth (the password is a [`Secret`]; reqwest marks the header
//!    sensitive and nothing here logs headers);
//! 4. classifies the answer: 401/403 → [`OntapError::Auth`]; any other non-2xx → the error
//!    envelope (`code` is a JSON *string*) → [`OntapError::Api`] with `http_status`; transport
//!    failures → [`OntapError::Transport`];
//! 5. retries with exponential backoff only when [`OntapError::is_transient`] says so (5xx,
//!    transport, "temporarily locked"), never on 4xx, never on a failed job, and never on a
//!    rejected TLS certificate (which no retry can fix);
//! 6. for POST/PATCH/DELETE, follows the answer's job(s) (202, or a 200/201 that carries a job,
//!    reference §6.1 and §9.7) by polling `/api/cluster/jobs/{uuid}` with backoff until
//!    `success`/`failure` or the polling bound; a failed job's *integer* `code` becomes
//!    [`OntapError::Api`] with `http_status: None`; a snapshot create asks for
//!    `return_records=true` and takes the new snapshot from a complete record in the answer
//!    instead of reading it back (one GET less per create; an incomplete record is read back);
//! 7. for collections, asks for at most `max_records` records per page and follows
//!    `_links.next.href` until it is absent — only to the endpoint's own origin (scheme, host,
//!    port: the credentials go nowhere else) and for at most [`MAX_PAGES`] pages;
//! 8. makes every create idempotent across a retry whose first attempt was applied but whose
//!    answer was lost: "already exists" is answered by reading the object that was asked for and
//!    taking it when it is that object (a snapshot with the same name and comment; a LUN clone at
//!    the same path, in the same volume, when an earlier attempt of this very call may have made
//!    it), never a same-named object that is something else. A retried delete that finds its
//!    object gone (404) after such a lost answer has done its work.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::secret::{Secret, SecretError};
use super::tls::{self, TlsError};
use super::wire::{
    self, ClusterWire, Collection, ErrorBody, Job, JobState, LicensePackageWire, LunWire,
    MutationResponse, ScheduleWire, SnapshotPolicyWire, SnapshotWire, VolumeWire,
};
use super::{
    lun_in_snapshot, path_in_volume, ClusterInfo, LicenseState, LunInfo, NewSnapshot, Ontap,
    OntapError, ScheduleInfo, SnapshotInfo, SnapshotPolicyInfo, VolumeInfo, VolumeRef,
};
use crate::config::{Cluster, Endpoint, TlsVerify};

/// A `fields=` list: what a GET reads. ONTAP returns only the fields a GET names (`**` is
/// expensive and `*` varies by release), so both GET helpers take one as a required argument.
///
/// Invariant: non-empty and without `*`; [`Fields::new`] checks it when the constant holding the
/// list is evaluated, so a bad list fails the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields(&'static str);

impl Fields {
    const fn new(list: &'static str) -> Fields {
        let bytes = list.as_bytes();
        assert!(!bytes.is_empty(), "a fields= list names at least one field");
        let mut i = 0;
        while i < bytes.len() {
            assert!(
                bytes[i] != b'*',
                "a fields= list names its fields (no * or **)"
            );
            i += 1;
        }
        Fields(list)
    }
}

/// `fields=` of every snapshot read (bulk listing and the look-up after a create).
const SNAPSHOT_FIELDS: Fields = Fields::new(
    "uuid,name,comment,create_time,owners,size,snapmirror_label,volume.uuid,volume.name,svm.name",
);
const VOLUME_FIELDS: Fields = Fields::new("uuid,name,svm.name,snapshot_policy.name");
/// `status.mapped` and `clone.created_as_clone` are gettable LUN fields (reference §3.1).
const LUN_FIELDS: Fields = Fields::new(
    "uuid,name,svm.name,location.volume.name,status.mapped,clone.created_as_clone,space.size",
);
const JOB_FIELDS: Fields = Fields::new("uuid,state,code,message,error");
const CLUSTER_FIELDS: Fields = Fields::new("name,uuid,version,timezone");
const POLICY_FIELDS: Fields = Fields::new("name,copies");
const SCHEDULE_FIELDS: Fields = Fields::new("name,type,cron,interval");
const LICENSE_FIELDS: Fields = Fields::new("name,state");
/// Records per collection page (`max_records`) unless overridden. ONTAP's own default is 10,000;
/// a bounded page keeps each answer small and each request well inside the request timeout on a
/// cluster with thousands of snapshots, at the price of a few more round trips.
pub const DEFAULT_MAX_RECORDS: u32 = 1_000;
/// "A snapshot with that name already exists" (POST snapshot, reference §2.4).
const SNAPSHOT_EXISTS: u64 = 525_059;
/// "A LUN or namespace already exists at path" (5374242) and "destination exists" (1260136),
/// the answers to a LUN create onto a taken path (reference §3.2). ONTAP documents no code of
/// its own for a SnapRestore onto a taken path (§3.4 names only the generic 524511); the
/// simulator answers 5374242 there, as a LUN create does.
const LUN_EXISTS: [u64; 2] = [5_374_242, 1_260_136];
/// Pages of one collection read at most. At the default page size that is 10 million records:
/// 1,000 volumes at ONTAP's limit of 1,023 snapshots each (reference §2.1), ten times over, and
/// gigabytes in memory — more than any real listing. Only a server whose `_links.next` never
/// ends (a bug, or an endpoint that is not ONTAP) gets there; it gets an error, not an endless
/// read.
pub const MAX_PAGES: usize = 10_000;

/// How a job is polled after a 202.
///
/// Invariant: `initial <= max_interval`; the wait between polls starts at `initial` and doubles
/// up to `max_interval`; after `bound` in total the call fails with [`OntapError::JobTimeout`].
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

/// Everything a [`RestClient`] needs.
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

/// Tuning that [`RestClient::from_cluster`] takes on top of the policy's `Cluster`; `None` keeps
/// the default of [`ClientOptions::new`].
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

/// A typed ONTAP REST client for one cluster.
///
/// Invariant: at most `max_concurrency` HTTP exchanges with the cluster are in flight across all
/// clones of the semaphore handle; the password is only read when a request is sent.
#[derive(Debug)]
pub struct RestClient {
    cluster: String,
    base: Url,
    username: String,
    password: Secret,
    http: reqwest::Client,
    permits: Arc<Semaphore>,
    job_poll: JobPolling,
    retry: RetryPolicy,
    /// `max_records` of collection GETs, as a query value.
    max_records: String,
    /// Pages of one collection read at most: [`MAX_PAGES`] (tests lower it).
    pub(super) max_pages: usize,
}

/// A 2xx answer of [`RestClient::send`].
#[derive(Debug)]
struct Sent {
    status: StatusCode,
    body: Vec<u8>,
    /// An earlier attempt failed after the request may have reached the cluster.
    earlier_attempt_may_have_applied: bool,
}

/// A failed call, and whether an earlier attempt of it may have been applied by the cluster: its
/// answer was lost (a dropped connection, a timeout, a 5xx) and the request was sent again.
/// That is what lets a create take "already exists" as its own first attempt's work.
#[derive(Debug)]
struct Failure {
    error: OntapError,
    earlier_attempt_may_have_applied: bool,
}

impl RestClient {
    pub fn new(options: ClientOptions) -> Result<RestClient, ClientBuildError> {
        let cluster = options.cluster_name.clone();
        let bad_url = |detail: String| ClientBuildError::BadUrl {
            cluster: cluster.clone(),
            url: options.base_url.clone(),
            detail,
        };
        let base = Url::parse(&options.base_url).map_err(|e| bad_url(e.to_string()))?;
        if !matches!(base.scheme(), "https" | "http") || base.host().is_none() {
            return Err(bad_url("expected https://host[:port]".into()));
        }
        // Credentials in the URL would end up in error messages and logs.
        if !base.username().is_empty() || base.password().is_some() {
            return Err(bad_url(
                "credentials in the URL are refused; use username and password_env/password_file"
                    .into(),
            ));
        }
        if base.scheme() == "http" {
            tracing::warn!(
                cluster = %cluster,
                "endpoint uses plain http: the password travels unencrypted"
            );
        }
        if options.max_concurrency == 0 {
            return Err(ClientBuildError::ZeroConcurrency { cluster });
        }
        if options.max_records == 0 {
            return Err(ClientBuildError::ZeroMaxRecords { cluster });
        }
        let mut builder = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.request_timeout.min(Duration::from_secs(15)))
            .user_agent(concat!("snapwarden/", env!("CARGO_PKG_VERSION")));
        let tls_config =
            tls::client_config(&cluster, &options.tls).map_err(|source| ClientBuildError::Tls {
                cluster: cluster.clone(),
                source,
            })?;
        if let Some(config) = tls_config {
            builder = builder.tls_backend_preconfigured(config);
        }
        let http = builder.build().map_err(|source| ClientBuildError::Http {
            cluster: cluster.clone(),
            source,
        })?;
        Ok(RestClient {
            cluster,
            base,
            username: options.username,
            password: options.password,
            http,
            permits: Arc::new(Semaphore::new(options.max_concurrency)),
            job_poll: options.job_poll,
            retry: options.retry,
            max_records: options.max_records.to_string(),
            max_pages: MAX_PAGES,
        })
    }

    /// A client for a policy cluster with an `https://` endpoint: loads the password from its
    /// source and builds the TLS settings (`ca_file`, `pin_sha256`, `insecure` or system roots).
    pub fn from_cluster(
        cluster: &Cluster,
        overrides: ClientOverrides,
    ) -> Result<RestClient, ClientBuildError> {
        let name = cluster.name.clone();
        let url = match &cluster.endpoint {
            Endpoint::Url(url) => url.clone(),
            Endpoint::Simulator => {
                return Err(ClientBuildError::SimulatorEndpoint { cluster: name })
            }
        };
        let source = cluster
            .password
            .as_ref()
            .ok_or_else(|| ClientBuildError::NoPassword {
                cluster: name.clone(),
            })?;
        let password = Secret::load(source).map_err(|source| ClientBuildError::Secret {
            cluster: name.clone(),
            source,
        })?;
        let mut options = ClientOptions::new(name, url, cluster.username.clone(), password);
        options.tls = cluster.tls.clone();
        if let Some(v) = overrides.max_concurrency {
            options.max_concurrency = v;
        }
        if let Some(v) = overrides.request_timeout {
            options.request_timeout = v;
        }
        if let Some(v) = overrides.job_poll {
            options.job_poll = v;
        }
        if let Some(v) = overrides.retry {
            options.retry = v;
        }
        if let Some(v) = overrides.max_records {
            options.max_records = v;
        }
        RestClient::new(options)
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url.set_query(None);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    fn decode_error(&self, url: &Url, detail: impl Into<String>) -> OntapError {
        OntapError::Decode {
            cluster: self.cluster.clone(),
            context: url.path().to_string(),
            detail: detail.into(),
        }
    }

    /// One HTTP exchange: permit, send, classify. Returns the 2xx status and body.
    async fn exchange(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        target: &str,
    ) -> Result<(StatusCode, Vec<u8>), OntapError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let started = Instant::now();
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .basic_auth(&self.username, Some(self.password.expose()))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let path_and_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let transport = |e: reqwest::Error| {
            let context = match certificate_rejection(&e) {
                Some(reason) => format!(
                    "{method} {}: TLS certificate rejected: {reason}",
                    url.path()
                ),
                None => format!("{method} {}", url.path()),
            };
            OntapError::Transport {
                cluster: self.cluster.clone(),
                context,
                source: Box::new(e),
            }
        };
        let response = request.send().await.map_err(|e| {
            tracing::debug!(cluster = %self.cluster, %method, path = %path_and_query,
                elapsed_ms = millis(started.elapsed()), error = %e, "ONTAP request failed");
            transport(e)
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?.to_vec();
        tracing::debug!(cluster = %self.cluster, %method, path = %path_and_query,
            status = status.as_u16(), elapsed_ms = millis(started.elapsed()),
            "ONTAP request");
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(OntapError::Auth {
                cluster: self.cluster.clone(),
                http_status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(self.envelope_error(status, &bytes, target));
        }
        Ok((status, bytes))
    }

    /// A non-2xx answer as [`OntapError::Api`]: the envelope's string `code` parsed, or code 0
    /// when the body is not an ONTAP envelope (for example a proxy's 502 page).
    fn envelope_error(&self, status: StatusCode, body: &[u8], target: &str) -> OntapError {
        let envelope = serde_json::from_slice::<wire::ErrorEnvelope>(body)
            .ok()
            .and_then(|e| e.error);
        let (code, message) = match envelope {
            Some(error) => error_body_parts(&error),
            None => (
                0,
                format!(
                    "HTTP {status} without an ONTAP error body: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            ),
        };
        OntapError::Api {
            cluster: self.cluster.clone(),
            target: target.to_string(),
            code,
            message,
            http_status: Some(status.as_u16()),
        }
    }

    /// [`Self::exchange`] with retries on transient failures; says too whether an earlier
    /// attempt may have been applied by the cluster before its answer was lost.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        target: &str,
    ) -> Result<Sent, Failure> {
        let mut attempt = 0u32;
        let mut may_have_applied = false;
        loop {
            match self.exchange(&method, url, body, target).await {
                Ok((status, body)) => {
                    return Ok(Sent {
                        status,
                        body,
                        earlier_attempt_may_have_applied: may_have_applied,
                    })
                }
                Err(e) if attempt < self.retry.max_retries && retryable(&e) => {
                    may_have_applied |= reached_the_cluster(&e);
                    let wait = backoff(self.retry.initial_backoff, self.retry.max_backoff, attempt);
                    tracing::debug!(cluster = %self.cluster, %method, path = url.path(),
                        attempt = attempt + 1, wait_ms = millis(wait),
                        error = %e, "transient ONTAP failure; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(error) => {
                    return Err(Failure {
                        error,
                        earlier_attempt_may_have_applied: may_have_applied,
                    })
                }
            }
        }
    }

    /// GET one object, reading `fields`.
    async fn get_object<W: DeserializeOwned>(
        &self,
        path: &str,
        fields: Fields,
        target: &str,
    ) -> Result<W, OntapError> {
        let url = self.url(path, &[("fields", fields.0)]);
        let bytes = self
            .send(Method::GET, &url, None, target)
            .await
            .map_err(|f| f.error)?
            .body;
        serde_json::from_slice(&bytes).map_err(|e| self.decode_error(&url, e.to_string()))
    }

    /// GET a collection in pages of `max_records`, reading `fields` of the records `filter`
    /// selects, following `_links.next.href` (which carries the query on) until it is absent.
    ///
    /// A `next` link is followed only to the endpoint's own origin (scheme, host and port): it
    /// is sent with the credentials. At most `max_pages` pages are read.
    async fn get_collection<W: DeserializeOwned>(
        &self,
        path: &str,
        fields: Fields,
        filter: &[(&str, &str)],
        target: &str,
    ) -> Result<Vec<W>, OntapError> {
        let mut query = filter.to_vec();
        query.push(("fields", fields.0));
        query.push(("max_records", &self.max_records));
        let mut url = self.url(path, &query);
        let mut records = Vec::new();
        for _ in 0..self.max_pages {
            let bytes = self
                .send(Method::GET, &url, None, target)
                .await
                .map_err(|f| f.error)?
                .body;
            let page: Collection<W> = serde_json::from_slice(&bytes)
                .map_err(|e| self.decode_error(&url, e.to_string()))?;
            let next = page.next_href().map(str::to_string);
            records.extend(page.records);
            let Some(href) = next else {
                return Ok(records);
            };
            let next_url = self
                .base
                .join(&href)
                .map_err(|e| self.decode_error(&url, format!("_links.next {href:?}: {e}")))?;
            if next_url.origin() != self.base.origin() {
                return Err(self.decode_error(
                    &url,
                    format!(
                        "_links.next {href:?} leaves the endpoint {}; not followed, the \
                         credentials are sent to the endpoint only",
                        self.base.origin().ascii_serialization()
                    ),
                ));
            }
            if next_url == url {
                return Err(self.decode_error(&url, "_links.next points at the same page"));
            }
            url = next_url;
        }
        Err(self.decode_error(
            &url,
            format!(
                "_links.next still present after {} pages of {} records; stopped",
                self.max_pages, self.max_records
            ),
        ))
    }

    /// POST/PATCH/DELETE and wait for the job(s) the answer names, if any.
    async fn mutate(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
        target: &str,
    ) -> Result<(), Failure> {
        self.mutate_for_records(method, path, query, body, target)
            .await
            .map(|_| ())
    }

    /// [`Self::mutate`], returning the `records` the answer carried (a POST with
    /// `return_records=true`), once its job(s) succeeded; empty when it carried none.
    async fn mutate_for_records(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
        target: &str,
    ) -> Result<Vec<Value>, Failure> {
        let url = self.url(path, query);
        let sent = self.send(method, &url, body.as_ref(), target).await?;
        let (status, bytes) = (sent.status, sent.body);
        let answered = |error: OntapError| Failure {
            error,
            earlier_attempt_may_have_applied: sent.earlier_attempt_may_have_applied,
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        let answer: MutationResponse = serde_json::from_slice(&bytes)
            .map_err(|e| answered(self.decode_error(&url, e.to_string())))?;
        if let Some(error) = answer.error {
            let (code, message) = error_body_parts(&error);
            return Err(answered(OntapError::Api {
                cluster: self.cluster.clone(),
                target: target.to_string(),
                code,
                message,
                http_status: Some(status.as_u16()),
            }));
        }
        for job in answer.job.into_iter().chain(answer.jobs) {
            self.wait_job(job, target).await.map_err(answered)?;
        }
        Ok(answer.records)
    }

    /// Polls a job until it succeeds, fails, or the polling bound passes. A job that arrives
    /// already terminal (200/201 with `return_timeout`) is decided without a request.
    async fn wait_job(&self, mut job: Job, target: &str) -> Result<(), OntapError> {
        if job.uuid.is_empty() && job.state().is_none() {
            return Err(OntapError::Decode {
                cluster: self.cluster.clone(),
                context: target.to_string(),
                detail: "job without uuid or state".into(),
            });
        }
        let uuid = job.uuid.clone();
        let started = Instant::now();
        let mut wait = self.job_poll.initial;
        loop {
            match job.state() {
                Some(JobState::Success) => return Ok(()),
                Some(JobState::Failure) => {
                    let (code, message) = job.failure();
                    return Err(OntapError::Api {
                        cluster: self.cluster.clone(),
                        target: target.to_string(),
                        code,
                        message,
                        http_status: None,
                    });
                }
                Some(JobState::Pending) => {
                    let elapsed = started.elapsed();
                    if elapsed >= self.job_poll.bound {
                        return Err(OntapError::JobTimeout {
                            cluster: self.cluster.clone(),
                            target: target.to_string(),
                            job: uuid,
                            waited_seconds: elapsed.as_secs(),
                        });
                    }
                    tokio::time::sleep(wait.min(self.job_poll.bound - elapsed)).await;
                    wait = (wait * 2).min(self.job_poll.max_interval);
                }
                // Only a link so far: ask right away.
                None => {}
            }
            if uuid.is_empty() {
                return Err(OntapError::Decode {
                    cluster: self.cluster.clone(),
                    context: target.to_string(),
                    detail: "pending job without uuid".into(),
                });
            }
            job = self
                .get_object(&format!("/api/cluster/jobs/{uuid}"), JOB_FIELDS, target)
                .await?;
            if job.uuid.is_empty() {
                job.uuid.clone_from(&uuid);
            }
            if job.state().is_none() {
                return Err(OntapError::Decode {
                    cluster: self.cluster.clone(),
                    context: format!("job {uuid}"),
                    detail: "job without state".into(),
                });
            }
        }
    }

    fn convert<W, D>(
        &self,
        records: Vec<W>,
        context: &str,
        f: impl Fn(W) -> Result<D, String>,
    ) -> Result<Vec<D>, OntapError> {
        records
            .into_iter()
            .map(|r| {
                f(r).map_err(|detail| OntapError::Decode {
                    cluster: self.cluster.clone(),
                    context: context.to_string(),
                    detail,
                })
            })
            .collect()
    }

    async fn find_snapshot(
        &self,
        volume: &VolumeRef,
        name: &str,
        target: &str,
    ) -> Result<SnapshotInfo, OntapError> {
        let records: Vec<SnapshotWire> = self
            .get_collection(
                &format!("/api/storage/volumes/{}/snapshots", volume.uuid),
                SNAPSHOT_FIELDS,
                &[("name", name)],
                target,
            )
            .await?;
        let found = self.convert(records, target, SnapshotWire::into_domain)?;
        found
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| OntapError::Decode {
                cluster: self.cluster.clone(),
                context: target.to_string(),
                detail: "created snapshot not found by name".into(),
            })
    }

    async fn find_lun(&self, svm: &str, path: &str, target: &str) -> Result<LunInfo, OntapError> {
        let records: Vec<LunWire> = self
            .get_collection(
                "/api/storage/luns",
                LUN_FIELDS,
                &[("name", path), ("svm.name", svm)],
                target,
            )
            .await?;
        let found = self.convert(records, target, LunWire::into_domain)?;
        found
            .into_iter()
            .find(|l| l.name == path)
            .ok_or_else(|| OntapError::Decode {
                cluster: self.cluster.clone(),
                context: target.to_string(),
                detail: "created LUN not found by name".into(),
            })
    }

    /// A LUN clone create that failed: when the path is taken ("already exists") after an
    /// earlier attempt of this very call may have been applied, the clone that attempt made is
    /// the one asked for — if the LUN there is a clone in the same volume and SVM. ONTAP's GET
    /// does not say which snapshot backs a clone (reference §3.1), so a taken path is never
    /// adopted when this call's first answer was "already exists": that LUN existed before.
    async fn retried_clone(
        &self,
        failure: Failure,
        volume: &VolumeRef,
        clone_path: &str,
        target: &str,
    ) -> Result<LunInfo, OntapError> {
        if !failure
            .error
            .code()
            .is_some_and(|code| LUN_EXISTS.contains(&code))
        {
            return Err(failure.error);
        }
        if !failure.earlier_attempt_may_have_applied {
            return Err(with_note(
                failure.error,
                "the path was taken before this create; that LUN is not taken as its clone",
            ));
        }
        let Ok(found) = self.find_lun(&volume.svm, clone_path, target).await else {
            return Err(failure.error);
        };
        if found.created_as_clone && found.volume_name == volume.name && found.svm == volume.svm {
            tracing::debug!(cluster = %self.cluster, target = %target,
                "clone already exists after a retry whose first answer was lost; taking it as created");
            return Ok(found);
        }
        Err(with_note(
            failure.error,
            &format!(
                "the LUN at that path is not a clone in volume {} of svm {}; it is not this create's",
                volume.name, volume.svm
            ),
        ))
    }

    /// A delete's outcome: a 404 after an earlier attempt of this call may have been applied
    /// means that attempt deleted the object, so the delete has done its work.
    fn gone_after_retry(
        &self,
        deleted: Result<(), Failure>,
        target: &str,
    ) -> Result<(), OntapError> {
        match deleted {
            Ok(()) => Ok(()),
            Err(Failure {
                error:
                    OntapError::Api {
                        http_status: Some(404),
                        ..
                    },
                earlier_attempt_may_have_applied: true,
            }) => {
                tracing::debug!(cluster = %self.cluster, target = %target,
                    "already gone after a retry whose first answer was lost; taking it as deleted");
                Ok(())
            }
            Err(failure) => Err(failure.error),
        }
    }
}

fn error_body_parts(error: &ErrorBody) -> (u64, String) {
    let code = error.code.as_ref().and_then(wire::parse_code).unwrap_or(0);
    let mut message = error.message.clone().unwrap_or_default();
    if let Some(target) = error.target.as_deref().filter(|t| !t.is_empty()) {
        message = format!("{message} (field {target})");
    }
    (code, message)
}

/// Whether to retry: transient, and not a TLS certificate rejection (which no retry fixes).
fn retryable(error: &OntapError) -> bool {
    match error {
        OntapError::Transport { source, .. } => {
            let mut current: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
            while let Some(e) = current {
                if rustls_error(e).is_some() {
                    return false;
                }
                current = e.source();
            }
            true
        }
        other => other.is_transient(),
    }
}

/// The rustls error behind an error, looking inside (possibly nested) `io::Error`s, whose
/// `source()` skips the wrapped error itself (hyper-util wraps the TLS error in two of them).
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = e;
    loop {
        if let Some(found) = current.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        let inner = current.downcast_ref::<std::io::Error>()?.get_ref()?;
        current = inner;
    }
}

/// A human reason when `e` is a rejected server certificate (for example a pin mismatch).
fn certificate_rejection(e: &reqwest::Error) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(rustls::Error::InvalidCertificate(cert)) = rustls_error(err) {
            return Some(match cert {
                rustls::CertificateError::Other(other) => other.0.to_string(),
                other => format!("{other:?}"),
            });
        }
        current = err.source();
    }
    None
}

/// Whether a failed attempt may have reached the cluster, and so may have been applied: a 5xx, or
/// a transport failure other than failing to connect (a dropped connection, a timeout).
fn reached_the_cluster(error: &OntapError) -> bool {
    match error {
        OntapError::Transport { source, .. } => !source
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_connect),
        OntapError::Api { http_status, .. } => http_status.is_some_and(|s| s >= 500),
        _ => false,
    }
}

/// `error` with `note` added to its message, when it is an ONTAP answer (keeping its code).
fn with_note(error: OntapError, note: &str) -> OntapError {
    match error {
        OntapError::Api {
            cluster,
            target,
            code,
            message,
            http_status,
        } => OntapError::Api {
            cluster,
            target,
            code,
            message: format!("{message} ({note})"),
            http_status,
        },
        other => other,
    }
}

/// A duration in whole milliseconds for a log field, saturating (no `as` truncation).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    initial
        .checked_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max)
}

fn volume_target(volume: &VolumeRef) -> String {
    format!("volume {} (svm {})", volume.name, volume.svm)
}

#[async_trait::async_trait]
impl Ontap for RestClient {
    fn cluster_name(&self) -> &str {
        &self.cluster
    }

    async fn cluster(&self) -> Result<ClusterInfo, OntapError> {
        let wire: ClusterWire = self
            .get_object("/api/cluster", CLUSTER_FIELDS, "cluster")
            .await?;
        wire.into_domain().map_err(|detail| OntapError::Decode {
            cluster: self.cluster.clone(),
            context: "GET /api/cluster".into(),
            detail,
        })
    }

    async fn volumes(&self) -> Result<Vec<VolumeInfo>, OntapError> {
        let records: Vec<VolumeWire> = self
            .get_collection("/api/storage/volumes", VOLUME_FIELDS, &[], "volumes")
            .await?;
        self.convert(records, "volumes", VolumeWire::into_domain)
    }

    async fn snapshot_policies(&self) -> Result<Vec<SnapshotPolicyInfo>, OntapError> {
        let records: Vec<SnapshotPolicyWire> = self
            .get_collection(
                "/api/storage/snapshot-policies",
                POLICY_FIELDS,
                &[],
                "snapshot policies",
            )
            .await?;
        self.convert(
            records,
            "snapshot policies",
            SnapshotPolicyWire::into_domain,
        )
    }

    async fn schedules(&self) -> Result<Vec<ScheduleInfo>, OntapError> {
        let records: Vec<ScheduleWire> = self
            .get_collection("/api/cluster/schedules", SCHEDULE_FIELDS, &[], "schedules")
            .await?;
        self.convert(records, "schedules", ScheduleWire::into_domain)
    }

    /// `GET /api/cluster/licensing/licenses/{package}`: 404 means the package is not installed
    /// (unlicensed packages are hidden by default, reference §4.2).
    async fn license(&self, package: &str) -> Result<LicenseState, OntapError> {
        let target = format!("license {package}");
        match self
            .get_object::<LicensePackageWire>(
                &format!("/api/cluster/licensing/licenses/{package}"),
                LICENSE_FIELDS,
                &target,
            )
            .await
        {
            Ok(wire) => Ok(wire.state()),
            Err(OntapError::Api {
                http_status: Some(404),
                ..
            }) => Ok(LicenseState::Unlicensed),
            Err(e) => Err(e),
        }
    }

    async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, OntapError> {
        let records: Vec<SnapshotWire> = self
            .get_collection(
                "/api/storage/volumes/*/snapshots",
                SNAPSHOT_FIELDS,
                &[],
                "snapshots",
            )
            .await?;
        self.convert(records, "snapshots", SnapshotWire::into_domain)
    }

    async fn luns(&self) -> Result<Vec<LunInfo>, OntapError> {
        let records: Vec<LunWire> = self
            .get_collection("/api/storage/luns", LUN_FIELDS, &[], "luns")
            .await?;
        self.convert(records, "luns", LunWire::into_domain)
    }

    async fn create_snapshot(
        &self,
        volume: &VolumeRef,
        new: &NewSnapshot<'_>,
    ) -> Result<SnapshotInfo, OntapError> {
        let (name, comment) = (new.name, new.comment);
        let target = format!("{} snapshot {name}", volume_target(volume));
        let mut body = json!({ "name": name, "comment": comment });
        if let Some(label) = new.snapmirror_label {
            body["snapmirror_label"] = json!(label);
        }
        let created = self
            .mutate_for_records(
                Method::POST,
                &format!("/api/storage/volumes/{}/snapshots", volume.uuid),
                &[("return_records", "true")],
                Some(body),
                &target,
            )
            .await;
        match created {
            // The answer's record, when it is complete, saves reading the snapshot back (one
            // GET per create; ONTAP may return only some fields, then the GET is made).
            Ok(records) => match created_snapshot(records, volume, new) {
                Some(info) => Ok(info),
                None => self.find_snapshot(volume, name, &target).await,
            },
            // A POST retried after its answer was lost may find its own first attempt's
            // snapshot, and a pass after a crash its predecessor's. Same name, same comment and
            // same label: that is the snapshot asked for, so the create is idempotent. Anything
            // else keeps the error: a same-named snapshot that is not this one is never adopted.
            Err(failure) if failure.error.code() == Some(SNAPSHOT_EXISTS) => {
                let found = self.find_snapshot(volume, name, &target).await;
                match found {
                    Ok(found) if is_asked(&found, new) => {
                        tracing::debug!(cluster = %self.cluster, target = %target,
                            "snapshot already exists with this comment; taking it as created");
                        Ok(found)
                    }
                    Ok(found) => Err(with_note(
                        failure.error,
                        &format!(
                            "the existing snapshot's comment is {:?} and label {:?}, not {comment:?} \
                             and {:?}: it is not this create's",
                            found.comment.as_deref().unwrap_or(""),
                            found.snapmirror_label.as_deref().unwrap_or(""),
                            new.snapmirror_label.unwrap_or("")
                        ),
                    )),
                    Err(_) => Err(failure.error),
                }
            }
            Err(failure) => Err(failure.error),
        }
    }

    async fn delete_snapshot(
        &self,
        volume: &VolumeRef,
        snapshot_uuid: &str,
        snapshot_name: &str,
    ) -> Result<(), OntapError> {
        let target = format!("{} snapshot {snapshot_name}", volume_target(volume));
        let deleted = self
            .mutate(
                Method::DELETE,
                &format!(
                    "/api/storage/volumes/{}/snapshots/{snapshot_uuid}",
                    volume.uuid
                ),
                &[],
                None,
                &target,
            )
            .await;
        self.gone_after_retry(deleted, &target)
    }

    async fn clone_lun_flexclone(
        &self,
        volume: &VolumeRef,
        snapshot_name: &str,
        source_lun: &str,
        clone_path: &str,
    ) -> Result<LunInfo, OntapError> {
        let target = format!("lun {clone_path}");
        let source = lun_in_snapshot(&volume.name, snapshot_name, source_lun);
        let created = self
            .mutate(
                Method::POST,
                "/api/storage/luns",
                &[],
                Some(json!({
                    "svm": { "name": volume.svm },
                    "name": clone_path,
                    "clone": { "source": { "name": source } },
                })),
                &target,
            )
            .await;
        match created {
            Ok(()) => self.find_lun(&volume.svm, clone_path, &target).await,
            Err(failure) => {
                self.retried_clone(failure, volume, clone_path, &target)
                    .await
            }
        }
    }

    async fn clone_lun_snaprestore(
        &self,
        volume: &VolumeRef,
        snapshot_name: &str,
        source_lun: &str,
        clone_path: &str,
    ) -> Result<LunInfo, OntapError> {
        let target = format!("lun {clone_path}");
        let path = path_in_volume(&volume.name, source_lun);
        let restore_path = path_in_volume(&volume.name, clone_path);
        let created = self
            .mutate(
                Method::PATCH,
                &format!("/api/storage/volumes/{}", volume.uuid),
                &[
                    ("restore_to.snapshot.name", snapshot_name),
                    ("restore_to.path", &path),
                    ("restore_to.restore_path", &restore_path),
                ],
                Some(json!({})),
                &target,
            )
            .await;
        match created {
            Ok(()) => self.find_lun(&volume.svm, clone_path, &target).await,
            Err(failure) => {
                self.retried_clone(failure, volume, clone_path, &target)
                    .await
            }
        }
    }

    async fn delete_lun(
        &self,
        lun_uuid: &str,
        lun_path: &str,
        allow_delete_while_mapped: bool,
    ) -> Result<(), OntapError> {
        let target = format!("lun {lun_path}");
        let deleted = self
            .mutate(
                Method::DELETE,
                &format!("/api/storage/luns/{lun_uuid}"),
                &[(
                    "allow_delete_while_mapped",
                    if allow_delete_while_mapped {
                        "true"
                    } else {
                        "false"
                    },
                )],
                None,
                &target,
            )
            .await;
        self.gone_after_retry(deleted, &target)
    }
}

/// The snapshot a create's answer carried (`return_records=true`), when its record is complete
/// and is the snapshot asked for: the name and comment asked for, on the volume asked for.
/// `None` sends the caller to read the snapshot back.
fn created_snapshot(
    records: Vec<Value>,
    volume: &VolumeRef,
    new: &NewSnapshot<'_>,
) -> Option<SnapshotInfo> {
    let record = records.into_iter().next()?;
    let info = serde_json::from_value::<SnapshotWire>(record)
        .ok()?
        .into_domain()
        .ok()?;
    (info.volume_uuid == volume.uuid && is_asked(&info, new)).then_some(info)
}

/// Whether `found` is the snapshot `new` asks for: same name, comment and SnapMirror label (a
/// record without the label, such as a partial answer, is not taken for a labelled create).
fn is_asked(found: &SnapshotInfo, new: &NewSnapshot<'_>) -> bool {
    found.name == new.name
        && found.comment.as_deref().unwrap_or("") == new.comment
        && found.snapmirror_label.as_deref() == new.snapmirror_label
}

#[cfg(test)]
mod tests {
    use super::{reached_the_cluster, Fields, OntapError};

    /// Constants are checked when the build evaluates them; the same check, run here, refuses
    /// an empty list and the wildcards.
    #[test]
    fn a_fields_list_names_its_fields() {
        assert_eq!(Fields::new("uuid,name").0, "uuid,name");
        for bad in ["", "*", "**", "uuid,**"] {
            assert!(
                std::panic::catch_unwind(|| Fields::new(bad)).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    fn api(http_status: u16) -> OntapError {
        OntapError::Api {
            cluster: "c".into(),
            target: "t".into(),
            code: 0,
            message: String::new(),
            http_status: Some(http_status),
        }
    }

    /// Only an attempt that may have reached the cluster makes "already exists" on the retry
    /// plausibly this call's own work: a 5xx or a lost connection, not a refused connect.
    #[tokio::test]
    async fn which_failed_attempts_may_have_been_applied() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let refused = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/api/storage/luns"))
            .send()
            .await
            .unwrap_err();
        assert!(refused.is_connect(), "{refused:?}");
        let not_connected = OntapError::Transport {
            cluster: "c".into(),
            context: "POST /api/storage/luns".into(),
            source: Box::new(refused),
        };
        assert!(!reached_the_cluster(&not_connected));
        let lost = OntapError::Transport {
            cluster: "c".into(),
            context: "POST /api/storage/luns".into(),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        };
        assert!(reached_the_cluster(&lost));
        assert!(reached_the_cluster(&api(500)) && reached_the_cluster(&api(503)));
        assert!(!reached_the_cluster(&api(409)) && !reached_the_cluster(&api(404)));
    }
}
