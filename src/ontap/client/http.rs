//! One HTTP exchange with ONTAP and what is built on it: the permit, the send and its
//! classification, retries of transient failures, GETs of an object or of a paged collection
//! (same origin, bounded page count), and mutations with the jobs they start.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use super::{Failure, Fields, RestClient, Sent, JOB_FIELDS};
use crate::ontap::wire::{self, Collection, ErrorBody, Job, JobState, MutationResponse};
use crate::ontap::OntapError;

impl RestClient {
    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url.set_query(None);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    pub(super) fn decode_error(&self, url: &Url, detail: impl Into<String>) -> OntapError {
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
    pub(super) async fn get_object<W: DeserializeOwned>(
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
    /// selects, each record decoded as `W`.
    pub(super) async fn get_collection<W: DeserializeOwned>(
        &self,
        path: &str,
        fields: Fields,
        filter: &[(&str, &str)],
        target: &str,
    ) -> Result<Vec<W>, OntapError> {
        let mut records = Vec::new();
        self.each_page(path, fields, filter, target, |url, bytes| {
            let page: Collection<W> =
                serde_json::from_slice(bytes).map_err(|e| self.decode_error(url, e.to_string()))?;
            let next = page.next_href().map(str::to_string);
            records.extend(page.records);
            Ok(next)
        })
        .await?;
        Ok(records)
    }

    /// GETs a collection page by page, as [`Self::get_collection`], handing each page's body to
    /// `fold`, which takes what it keeps from it (the page is dropped before the next is read)
    /// and returns the page's `_links.next.href`; follows it (it carries the query on) until it
    /// is absent.
    ///
    /// A `next` link is followed only to the endpoint's own origin (scheme, host and port): it
    /// is sent with the credentials. At most `max_pages` pages are read.
    pub(super) async fn each_page(
        &self,
        path: &str,
        fields: Fields,
        filter: &[(&str, &str)],
        target: &str,
        mut fold: impl FnMut(&Url, &[u8]) -> Result<Option<String>, OntapError>,
    ) -> Result<(), OntapError> {
        let mut query = filter.to_vec();
        query.push(("fields", fields.0));
        query.push(("max_records", &self.max_records));
        let mut url = self.url(path, &query);
        for _ in 0..self.max_pages {
            let bytes = self
                .send(Method::GET, &url, None, target)
                .await
                .map_err(|f| f.error)?
                .body;
            let next = fold(&url, &bytes)?;
            drop(bytes);
            let Some(href) = next else {
                return Ok(());
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
    pub(super) async fn mutate(
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
    pub(super) async fn mutate_for_records(
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
pub(super) fn reached_the_cluster(error: &OntapError) -> bool {
    match error {
        OntapError::Transport { source, .. } => !source
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_connect),
        OntapError::Api { http_status, .. } => http_status.is_some_and(|s| s >= 500),
        _ => false,
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
