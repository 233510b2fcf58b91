//! `VeeamClient`: OAuth2 tokens, the jobs collection, job start and session polling on one Veeam
//! Backup & Replication server.
//!
//! Every call:
//! 1. takes a bearer token: the cached one while it is valid for longer than the refresh margin,
//!    else a refresh grant with the (single-use) refresh token, else — no refresh token, or the
//!    refresh refused — a password grant (`application/x-www-form-urlencoded`);
//! 2. carries `x-api-version` (token requests too);
//! 3. reads at most [`MAX_BODY_BYTES`] of the answer and decodes it without panicking on any body;
//!    a non-2xx answer becomes [`VeeamError::Api`] with Veeam's `errorCode` and `message`;
//! 4. on a 401 with a cached token (revoked or expired early on the server), drops the token and
//!    tries once more with a fresh password grant.
//!
//! Nothing retries on its own beyond that: the agent's next pass is the retry. The password and
//! the tokens are [`Secret`]s: never in logs, `Debug` or errors.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::error::VeeamError;
use super::session::{bounded_text, Job, Session, SessionState, Started, WireJob, WireSession};
use crate::config::{SecretSource, TlsVerify, VeeamServer};
use crate::ontap::secret::Secret;
use crate::ontap::tls;

/// Largest answer read: a page of 200 jobs is a few hundred kilobytes; anything far beyond that is
/// not the Veeam REST API.
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// Jobs per page of `GET /api/v1/jobs`.
pub const PAGE_LIMIT: u32 = 200;

/// Pages of one collection read at most: 500 pages of 200 is 100,000 jobs or sessions, far above
/// any server's; a server whose pagination never ends gets an error instead of an endless read.
pub const MAX_PAGES: usize = 500;

/// How a session is followed until `Stopped`.
///
/// Invariant: the wait between polls is `interval`; after `bound` in total the wait fails with
/// [`VeeamError::SessionTimeout`] (the session itself keeps running on the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolling {
    pub interval: Duration,
    pub bound: Duration,
}

impl Default for SessionPolling {
    /// Every 10 s for at most a week: the longest window `max` the policy accepts (7d).
    fn default() -> SessionPolling {
        SessionPolling {
            interval: Duration::from_secs(10),
            bound: Duration::from_secs(7 * 86_400),
        }
    }
}

/// Everything a [`VeeamClient`] needs.
#[derive(Debug, Clone)]
pub struct VeeamOptions {
    /// The policy's name for the server; in every error and log line.
    pub server_name: String,
    /// Scheme, host and port, for example `https://vbr.example.net:9419`.
    pub base_url: String,
    pub username: String,
    pub password: Secret,
    pub tls: TlsVerify,
    /// `x-api-version`, for example `1.1-rev0`.
    pub api_version: String,
    /// Whole-request timeout of one HTTP exchange (default 60 s).
    pub request_timeout: Duration,
    /// A token is renewed when it expires within this margin (default 60 s, a fifteenth of the
    /// access token's usual 15 minutes).
    pub refresh_margin: Duration,
    pub polling: SessionPolling,
}

impl VeeamOptions {
    pub fn new(
        server_name: impl Into<String>,
        base_url: impl Into<String>,
        username: impl Into<String>,
        password: Secret,
    ) -> VeeamOptions {
        VeeamOptions {
            server_name: server_name.into(),
            base_url: base_url.into(),
            username: username.into(),
            password,
            tls: TlsVerify::System,
            api_version: crate::config::DEFAULT_VEEAM_API_VERSION.into(),
            request_timeout: Duration::from_secs(60),
            refresh_margin: Duration::from_secs(60),
            polling: SessionPolling::default(),
        }
    }
}

/// A cached token.
struct Token {
    access: Secret,
    refresh: Option<Secret>,
    /// When the access token stops working, by the client's clock.
    expires_at: Instant,
}

/// A client for one Veeam server.
///
/// Invariant: at most one token request is in flight (the token lock is held across it), and a
/// refresh token is sent at most once (it is taken out of the cache before it is used).
pub struct VeeamClient {
    server: String,
    base: Url,
    username: String,
    password: Secret,
    api_version: String,
    http: reqwest::Client,
    refresh_margin: Duration,
    polling: SessionPolling,
    token: Mutex<Option<Token>>,
    /// Pages of one collection read at most: [`MAX_PAGES`] (tests lower it).
    pub(super) max_pages: usize,
    /// When set, requests go to this in-process server instead of the network.
    local: Option<std::sync::Arc<dyn LocalTransport>>,
}

/// An in-process Veeam server (the embedded simulator): takes a built request, answers with the
/// status and body, or fails like a dropped connection.
#[async_trait::async_trait]
pub trait LocalTransport: Send + Sync {
    async fn send(
        &self,
        request: reqwest::Request,
    ) -> Result<(StatusCode, Vec<u8>), Box<dyn std::error::Error + Send + Sync>>;
}

impl std::fmt::Debug for VeeamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VeeamClient")
            .field("server", &self.server)
            .field("base", &self.base.as_str())
            .field("username", &self.username)
            .field("password", &self.password)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct WireToken {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireError {
    error_code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct WirePage<T> {
    data: Option<Vec<T>>,
    pagination: Option<WirePagination>,
}

#[derive(Deserialize)]
struct WirePagination {
    total: Option<u64>,
}

/// A 2xx answer, or the parts of an error.
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl VeeamClient {
    pub fn new(options: VeeamOptions) -> Result<VeeamClient, VeeamError> {
        let server = options.server_name.clone();
        let bad_url = |detail: &str| VeeamError::BadUrl {
            server: server.clone(),
            url: options.base_url.clone(),
            detail: detail.into(),
        };
        let base = Url::parse(&options.base_url).map_err(|e| bad_url(&e.to_string()))?;
        if !matches!(base.scheme(), "https" | "http") || base.host().is_none() {
            return Err(bad_url("expected https://host[:port]"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            let mut shown = base.clone();
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            return Err(VeeamError::BadUrl {
                server,
                url: shown.to_string(),
                detail: "credentials in the URL are refused".into(),
            });
        }
        if base.scheme() == "http" {
            tracing::warn!(server = %server, "Veeam url uses plain http: the password travels unencrypted");
        }
        let mut builder = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.request_timeout.min(Duration::from_secs(15)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("snapwarden/", env!("CARGO_PKG_VERSION")));
        let tls_config =
            tls::client_config(&server, &options.tls).map_err(|source| VeeamError::Tls {
                server: server.clone(),
                source,
            })?;
        if let Some(config) = tls_config {
            builder = builder.tls_backend_preconfigured(config);
        }
        let http = builder.build().map_err(|source| VeeamError::Http {
            server: server.clone(),
            source,
        })?;
        Ok(VeeamClient {
            server,
            base,
            username: options.username,
            password: options.password,
            api_version: options.api_version,
            http,
            refresh_margin: options.refresh_margin,
            polling: options.polling,
            token: Mutex::new(None),
            max_pages: MAX_PAGES,
            local: None,
        })
    }

    /// The same client, its requests answered in process by `local` (the embedded simulator).
    pub fn with_local(mut self, local: std::sync::Arc<dyn LocalTransport>) -> VeeamClient {
        self.local = Some(local);
        self
    }

    /// A client for a policy `[[veeam]]`: loads the password and builds the TLS settings.
    pub fn from_server(server: &VeeamServer) -> Result<VeeamClient, VeeamError> {
        let Some(source) = &server.password else {
            return Err(VeeamError::BadUrl {
                server: server.name.clone(),
                url: server.url.clone(),
                detail: "no password source (only the embedded simulator goes without)".into(),
            });
        };
        let password = load_password(&server.name, source)?;
        let mut options = VeeamOptions::new(
            server.name.clone(),
            server.url.clone(),
            server.username.clone(),
            password,
        );
        options.tls = server.tls.clone();
        options.api_version = server.api_version.clone();
        VeeamClient::new(options)
    }

    pub fn server(&self) -> &str {
        &self.server
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

    /// One HTTP exchange; the body read up to [`MAX_BODY_BYTES`].
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        target: &str,
        context: &str,
    ) -> Result<Answer, VeeamError> {
        let started = Instant::now();
        let transport = |source: Box<dyn std::error::Error + Send + Sync>| VeeamError::Transport {
            server: self.server.clone(),
            target: target.into(),
            context: context.into(),
            source,
        };
        let request = request
            .header("x-api-version", &self.api_version)
            .header(reqwest::header::ACCEPT, "application/json")
            .build()
            .map_err(|e| transport(Box::new(e)))?;
        let (status, body) = match &self.local {
            Some(local) => {
                let (status, body) = local.send(request).await.map_err(transport)?;
                if body.len() > MAX_BODY_BYTES {
                    return Err(self.too_large(target, context));
                }
                (status, body)
            }
            None => {
                let mut response = self
                    .http
                    .execute(request)
                    .await
                    .map_err(|e| transport(Box::new(e)))?;
                let status = response.status();
                let mut body = Vec::new();
                while let Some(chunk) =
                    response.chunk().await.map_err(|e| transport(Box::new(e)))?
                {
                    if body.len().saturating_add(chunk.len()) > MAX_BODY_BYTES {
                        return Err(self.too_large(target, context));
                    }
                    body.extend_from_slice(&chunk);
                }
                (status, body)
            }
        };
        tracing::debug!(server = %self.server, %context, status = status.as_u16(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "Veeam request");
        Ok(Answer { status, body })
    }

    fn too_large(&self, target: &str, context: &str) -> VeeamError {
        VeeamError::TooLarge {
            server: self.server.clone(),
            target: target.into(),
            context: context.into(),
            limit: MAX_BODY_BYTES,
        }
    }

    /// Veeam's `{errorCode, message}`, or the start of a body that is not one.
    fn error_parts(status: StatusCode, body: &[u8]) -> (String, String) {
        match serde_json::from_slice::<WireError>(body) {
            Ok(WireError {
                error_code: Some(code),
                message,
            }) => (
                bounded_text(&code),
                bounded_text(message.as_deref().unwrap_or("")),
            ),
            _ => (
                "-".into(),
                format!(
                    "HTTP {status} without a Veeam error body: {}",
                    bounded_text(&String::from_utf8_lossy(&body[..body.len().min(200)]))
                ),
            ),
        }
    }

    fn decode<T: DeserializeOwned>(
        &self,
        body: &[u8],
        target: &str,
        context: &str,
    ) -> Result<T, VeeamError> {
        serde_json::from_slice(body).map_err(|e| VeeamError::Decode {
            server: self.server.clone(),
            target: target.into(),
            context: context.into(),
            detail: bounded_text(&e.to_string()),
        })
    }

    /// `POST /api/oauth2/token` with `form`; the token, or why not.
    async fn token_request(
        &self,
        form: &[(&str, &str)],
        target: &str,
    ) -> Result<Token, VeeamError> {
        let context = "POST /api/oauth2/token";
        let url = self.url("/api/oauth2/token", &[]);
        let answer = self
            .exchange(
                self.http
                    .post(url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form_urlencoded(form)),
                target,
                context,
            )
            .await?;
        if !answer.status.is_success() {
            let (error_code, message) = Self::error_parts(answer.status, &answer.body);
            if !matches!(answer.status.as_u16(), 400 | 401 | 403) {
                return Err(VeeamError::Api {
                    server: self.server.clone(),
                    target: target.into(),
                    context: context.into(),
                    http_status: answer.status.as_u16(),
                    error_code,
                    message,
                });
            }
            return Err(VeeamError::Auth {
                server: self.server.clone(),
                target: target.into(),
                http_status: answer.status.as_u16(),
                error_code,
                message,
            });
        }
        let wire: WireToken = self.decode(&answer.body, target, context)?;
        let decode = |detail: &str| VeeamError::Decode {
            server: self.server.clone(),
            target: target.into(),
            context: context.into(),
            detail: detail.into(),
        };
        let access = wire
            .access_token
            .and_then(Secret::new)
            .ok_or_else(|| decode("no access_token"))?;
        let expires_in = wire
            .expires_in
            .filter(|s| *s > 0)
            .ok_or_else(|| decode("no positive expires_in"))?;
        // A token longer than a day would be a server bug; cap it so a huge value cannot overflow
        // the clock and the client still renews daily.
        let lifetime = Duration::from_secs(u64::try_from(expires_in.min(86_400)).unwrap_or(0));
        Ok(Token {
            access,
            refresh: wire.refresh_token.and_then(Secret::new),
            expires_at: Instant::now() + lifetime,
        })
    }

    /// A valid access token: cached, refreshed, or from a password grant.
    async fn bearer(&self, target: &str) -> Result<Secret, VeeamError> {
        let mut cached = self.token.lock().await;
        let now = Instant::now();
        if let Some(t) = cached.as_ref() {
            if t.expires_at > now + self.refresh_margin {
                return Ok(t.access.clone());
            }
        }
        // The refresh token is single use: take it out before sending it.
        let refresh = cached.take().and_then(|t| t.refresh);
        if let Some(refresh) = refresh {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.expose()),
            ];
            match self.token_request(&form, target).await {
                Ok(token) => {
                    tracing::debug!(server = %self.server, "Veeam token refreshed");
                    let access = token.access.clone();
                    *cached = Some(token);
                    return Ok(access);
                }
                Err(e) => {
                    tracing::info!(server = %self.server, error = %e,
                        "Veeam token refresh refused; signing in with the password");
                }
            }
        }
        let form = [
            ("grant_type", "password"),
            ("username", self.username.as_str()),
            ("password", self.password.expose()),
        ];
        let token = self.token_request(&form, target).await?;
        let access = token.access.clone();
        *cached = Some(token);
        Ok(access)
    }

    /// An authenticated call; one retry with a fresh sign-in when the server refuses the token.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        target: &str,
    ) -> Result<Answer, VeeamError> {
        let context = format!("{method} {path}");
        let url = self.url(path, query);
        let mut fresh = false;
        loop {
            let token = self.bearer(target).await?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose());
            if let Some(body) = body {
                request = request.json(body);
            }
            let answer = self.exchange(request, target, &context).await?;
            if answer.status.is_success() {
                return Ok(answer);
            }
            let (error_code, message) = Self::error_parts(answer.status, &answer.body);
            if answer.status == StatusCode::UNAUTHORIZED && !fresh {
                tracing::info!(server = %self.server, %error_code,
                    "Veeam refused the token; signing in again");
                *self.token.lock().await = None;
                fresh = true;
                continue;
            }
            return Err(VeeamError::Api {
                server: self.server.clone(),
                target: target.into(),
                context,
                http_status: answer.status.as_u16(),
                error_code,
                message,
            });
        }
    }

    /// Every entry of a `{data, pagination}` collection, `PAGE_LIMIT` at a time, at most
    /// `max_pages` pages.
    async fn collection<W: DeserializeOwned>(
        &self,
        path: &str,
        filter: &[(&str, &str)],
        target: &str,
    ) -> Result<Vec<W>, VeeamError> {
        let mut out = Vec::new();
        let limit = PAGE_LIMIT.to_string();
        for _ in 0..self.max_pages {
            let skip = out.len().to_string();
            let mut query = vec![("skip", skip.as_str()), ("limit", limit.as_str())];
            query.extend_from_slice(filter);
            let answer = self.call(Method::GET, path, &query, None, target).await?;
            let page: WirePage<W> = self.decode(&answer.body, target, &format!("GET {path}"))?;
            let data = page.data.unwrap_or_default();
            let got = data.len();
            out.extend(data);
            let total = page.pagination.as_ref().and_then(|p| p.total);
            // A server may cap `limit` below ours, so a short page ends the read only when the
            // server gives no total.
            let done = got == 0
                || total.is_some_and(|t| u64::try_from(out.len()).unwrap_or(u64::MAX) >= t)
                || (total.is_none() && got < PAGE_LIMIT as usize);
            if done {
                return Ok(out);
            }
        }
        Err(VeeamError::TooManyPages {
            server: self.server.clone(),
            target: target.into(),
            context: format!("GET {path}"),
            pages: self.max_pages,
        })
    }

    /// The job `name_or_id` names: by id (case-insensitive) when it is one, else by exact name.
    pub async fn find_job(&self, name_or_id: &str) -> Result<Job, VeeamError> {
        let target = format!("job {name_or_id:?}");
        let jobs: Vec<WireJob> = self.collection("/api/v1/jobs", &[], &target).await?;
        let jobs: Vec<Job> = jobs
            .into_iter()
            .map(|j| Job {
                id: bounded_text(&j.id),
                name: bounded_text(&j.name),
                kind: bounded_text(j.kind.as_deref().unwrap_or("")),
                is_disabled: j.is_disabled.unwrap_or(false),
            })
            .collect();
        if let Some(job) = jobs.iter().find(|j| j.id.eq_ignore_ascii_case(name_or_id)) {
            return Ok(job.clone());
        }
        let named: Vec<&Job> = jobs.iter().filter(|j| j.name == name_or_id).collect();
        match named.as_slice() {
            [job] => Ok((*job).clone()),
            [] => {
                const SHOWN: usize = 10;
                let mut known: Vec<String> = jobs
                    .iter()
                    .take(SHOWN)
                    .map(|j| format!("{:?}", j.name))
                    .collect();
                if jobs.len() > SHOWN {
                    known.push(format!("… {} more", jobs.len() - SHOWN));
                }
                Err(VeeamError::JobNotFound {
                    server: self.server.clone(),
                    job: name_or_id.into(),
                    known: if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    },
                })
            }
            many => Err(VeeamError::JobAmbiguous {
                server: self.server.clone(),
                job: name_or_id.into(),
                count: many.len(),
            }),
        }
    }

    /// The job's running session (any state but `Stopped`), if there is one.
    ///
    /// Asks `GET /api/v1/sessions` narrowed by `jobIdFilter` and checks `resourceId` itself as
    /// well, so a server that ignores the filter gives the same answer.
    pub async fn running_session(&self, job: &Job) -> Result<Option<Session>, VeeamError> {
        let target = format!("job {:?}", job.name);
        let sessions: Vec<WireSession> = self
            .collection(
                "/api/v1/sessions",
                &[("jobIdFilter", job.id.as_str())],
                &target,
            )
            .await?;
        Ok(sessions.into_iter().map(Session::from).find(|s| {
            s.state != SessionState::Stopped
                && s.job_id
                    .as_deref()
                    .is_some_and(|id| id.eq_ignore_ascii_case(&job.id))
        }))
    }

    /// Starts `job` unless it is already running, in which case its running session is returned
    /// and nothing is started.
    pub async fn start_job(&self, job: &Job) -> Result<Started, VeeamError> {
        if let Some(session) = self.running_session(job).await? {
            tracing::info!(server = %self.server, job = %job.name, session = %session.id,
                "Veeam job already running; following its session instead of starting it");
            return Ok(Started::AlreadyRunning(session));
        }
        let target = format!("job {:?}", job.name);
        let path = format!("/api/v1/jobs/{}/start", job.id);
        let body = serde_json::json!({"performActiveFull": false, "startChainedJobs": false});
        let answer = self
            .call(Method::POST, &path, &[], Some(&body), &target)
            .await?;
        let wire: WireSession = self.decode(&answer.body, &target, &format!("POST {path}"))?;
        let session = Session::from(wire);
        tracing::info!(server = %self.server, job = %job.name, session = %session.id,
            "Veeam job started");
        Ok(Started::New(session))
    }

    /// `GET /api/v1/sessions/{id}`.
    pub async fn session(&self, job: &str, id: &str) -> Result<Session, VeeamError> {
        let target = format!("job {job:?}");
        let path = format!("/api/v1/sessions/{id}");
        let answer = self.call(Method::GET, &path, &[], None, &target).await?;
        let wire: WireSession = self.decode(&answer.body, &target, &format!("GET {path}"))?;
        Ok(Session::from(wire))
    }

    /// Polls the session until `Stopped` (its result and message then say how it ended), for at
    /// most the polling bound.
    pub async fn wait_stopped(&self, job: &str, id: &str) -> Result<Session, VeeamError> {
        let started = Instant::now();
        loop {
            let session = self.session(job, id).await?;
            if session.state == SessionState::Stopped {
                return Ok(session);
            }
            let waited = started.elapsed();
            if waited >= self.polling.bound {
                return Err(VeeamError::SessionTimeout {
                    server: self.server.clone(),
                    job: job.into(),
                    session: session.id,
                    state: session.state.as_str().into(),
                    waited,
                });
            }
            tokio::time::sleep(self.polling.interval.min(self.polling.bound - waited)).await;
        }
    }
}

/// `application/x-www-form-urlencoded` text of `pairs`, with the URL crate's form serializer
/// (reqwest's own `form` needs a feature this crate does not enable).
fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    let mut url = Url::parse("form:").expect("a constant URL parses");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or("").to_string()
}

fn load_password(server: &str, source: &SecretSource) -> Result<Secret, VeeamError> {
    Secret::load(source).map_err(|source| VeeamError::Secret {
        server: server.into(),
        source,
    })
}
