//! `VeeamError`: a failed Veeam call, naming the server and, when the call concerns one, the job.

use std::time::Duration;

use crate::ontap::secret::SecretError;
use crate::ontap::tls::TlsError;

/// A failed Veeam call. Names the server, and the job when the call concerns one.
#[derive(Debug, thiserror::Error)]
pub enum VeeamError {
    #[error("Veeam server {server}: url {url:?} is not usable: {detail}")]
    BadUrl {
        server: String,
        url: String,
        detail: String,
    },
    #[error("Veeam server {server}: cannot load the password")]
    Secret {
        server: String,
        #[source]
        source: SecretError,
    },
    #[error("Veeam server {server}: TLS settings")]
    Tls {
        server: String,
        #[source]
        source: TlsError,
    },
    #[error("Veeam server {server}: cannot build the HTTP client")]
    Http {
        server: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Veeam server {server}: {target}: {context}: unreachable")]
    Transport {
        server: String,
        target: String,
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("Veeam server {server}: {target}: sign-in refused (HTTP {http_status} {error_code}: {message}); check username and password")]
    Auth {
        server: String,
        target: String,
        http_status: u16,
        error_code: String,
        message: String,
    },
    #[error(
        "Veeam server {server}: {target}: {context}: HTTP {http_status} {error_code}: {message}"
    )]
    Api {
        server: String,
        target: String,
        context: String,
        http_status: u16,
        error_code: String,
        message: String,
    },
    #[error("Veeam server {server}: {target}: {context}: unexpected answer: {detail}")]
    Decode {
        server: String,
        target: String,
        context: String,
        detail: String,
    },
    #[error("Veeam server {server}: {target}: {context}: answer larger than {limit} bytes")]
    TooLarge {
        server: String,
        target: String,
        context: String,
        limit: usize,
    },
    #[error("Veeam server {server}: {target}: {context}: more than {pages} pages")]
    TooManyPages {
        server: String,
        target: String,
        context: String,
        pages: usize,
    },
    #[error("Veeam server {server}: job {job:?} does not exist (jobs: {known})")]
    JobNotFound {
        server: String,
        job: String,
        known: String,
    },
    #[error("Veeam server {server}: {count} jobs are named {job:?}; name the job by its id")]
    JobAmbiguous {
        server: String,
        job: String,
        count: usize,
    },
    #[error(
        "Veeam server {server}: job {job:?}: session {session} still {state} after {waited:?}"
    )]
    SessionTimeout {
        server: String,
        job: String,
        session: String,
        state: String,
        waited: Duration,
    },
}
