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
//!    it — and, for a FlexClone LUN, created no earlier than the backing snapshot it clones),
//!    never a same-named object that is something else. A retried delete that finds its
//!    object gone (404) after such a lost answer has done its work.
//!
//! Layout: `options` (what a client is built from, and why a build fails), `http` (one exchange,
//! retries, GETs of objects and pages, mutations and their jobs) and `calls` (the [`Ontap`] trait:
//! each call's path, fields and target, and the idempotent creates and deletes).
//!
//! [`Ontap`]: super::Ontap

mod calls;
mod http;
mod options;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{StatusCode, Url};
use tokio::sync::Semaphore;

use super::secret::Secret;
use super::tls;
use super::OntapError;
use crate::config::{Cluster, Endpoint};

pub use options::{
    ClientBuildError, ClientOptions, ClientOverrides, JobPolling, RetryPolicy, DEFAULT_MAX_RECORDS,
};

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
/// `fields=` of the look-up of a FlexClone LUN's path after a lost answer: [`LUN_FIELDS`] and
/// when the LUN was created, which tells a clone that call made from a LUN that was there
/// before its backing snapshot.
const LUN_BORN_FIELDS: Fields = Fields::new(
    "uuid,name,svm.name,location.volume.name,status.mapped,clone.created_as_clone,space.size,\
     create_time",
);
const JOB_FIELDS: Fields = Fields::new("uuid,state,code,message,error");
const CLUSTER_FIELDS: Fields = Fields::new("name,uuid,version,timezone");
const POLICY_FIELDS: Fields = Fields::new("name,copies");
const SCHEDULE_FIELDS: Fields = Fields::new("name,type,cron,interval");
const LICENSE_FIELDS: Fields = Fields::new("name,state");
/// Pages of one collection read at most. At the default page size that is 10 million records:
/// 1,000 volumes at ONTAP's limit of 1,023 snapshots each (reference §2.1), ten times over, and
/// gigabytes in memory — more than any real listing. Only a server whose `_links.next` never
/// ends (a bug, or an endpoint that is not ONTAP) gets there; it gets an error, not an endless
/// read.
pub const MAX_PAGES: usize = 10_000;

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
}

#[cfg(test)]
mod tests {
    use super::http::reached_the_cluster;
    use super::{Fields, OntapError};

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
