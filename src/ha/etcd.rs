//! The etcd election: a lease kept alive and one key created under it, through etcd v3's JSON
//! gateway (`/v3/…` on every member's client URL; etcd 3.4 and later serve it).
//!
//! Why the gateway rather than a gRPC client: the calls an election needs are five small JSON
//! requests (`lease/grant`, `lease/keepalive`, `lease/revoke`, `kv/range`, `kv/txn`, plus
//! `auth/authenticate` with credentials); reqwest and rustls already speak to ONTAP with the same
//! TLS settings, so no code generator (protoc) and no second HTTP stack are needed.
//!
//! The campaign: read the key; when nobody holds it, grant a lease of `lease_ttl` and create the
//! key under it in one transaction that succeeds only if the key still does not exist (its create
//! revision is 0). The winner's create revision is the fencing token. The leader renews the lease
//! every third of the TTL and reads the key back each time (still its own, under its lease);
//! when a renewal fails on every member, or the lease is gone, or the key is not its own, it steps
//! down at once. A standby reads the key every quarter of the TTL (at most every 2 s) and
//! campaigns as soon as it is gone. A leader that stepped down while the backend was unreachable
//! takes its own key back if it still holds it under its lease when the backend answers again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::{lease_end, Election, LeaderElector, Leadership, NotLeader};
use crate::config::Ha;
use crate::error::error_chain;
use crate::ontap::secret::{Secret, SecretError};
use crate::ontap::tls::{self, TlsError};

/// The largest answer read from etcd (an election's answers are a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Why the elector could not start or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("[ha]: cannot read the etcd password")]
    Secret(#[from] SecretError),
    #[error("[ha]: etcd TLS settings")]
    Tls(#[from] TlsError),
    #[error("[ha]: cannot build the etcd HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("etcd {endpoint} {path}: {message}")]
    Request {
        endpoint: String,
        path: &'static str,
        message: String,
    },
    #[error("etcd: no member answered {path}: {errors}")]
    Unreachable { path: &'static str, errors: String },
}

/// A replica's campaign on etcd.
pub struct EtcdElector {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Inner {
    leadership: Leadership,
    /// The election key and this replica's identity, base64 as the gateway wants bytes.
    key: String,
    value: String,
    ttl: Duration,
    endpoints: Vec<String>,
    http: reqwest::Client,
    credentials: Option<(String, Secret)>,
    token: Mutex<Option<String>>,
    /// The member that answered last; tried first.
    preferred: AtomicUsize,
    /// The lease this replica's key lives (or lived) under.
    lease: Mutex<Option<i64>>,
}

/// The election key as read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    identity: String,
    lease: i64,
    create_revision: i64,
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// An int64 from the gateway's JSON (proto3 writes them as strings; absent means 0).
fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

impl EtcdElector {
    /// Starts campaigning in the background (inside a tokio runtime).
    pub fn start(ha: &Ha) -> Result<EtcdElector, EtcdError> {
        let ttl = ha
            .lease_ttl
            .to_std()
            .unwrap_or(Duration::from_secs(15))
            .max(Duration::from_secs(1));
        let credentials = match (&ha.username, &ha.password) {
            (Some(u), Some(p)) => Some((u.clone(), Secret::load(p)?)),
            _ => None,
        };
        let request_timeout = (ttl / 3).clamp(Duration::from_millis(300), Duration::from_secs(5));
        let mut builder = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(request_timeout)
            .user_agent(concat!("snapwarden/", env!("CARGO_PKG_VERSION")));
        if let Some(config) = tls::client_config("etcd", &ha.tls)? {
            builder = builder.tls_backend_preconfigured(config);
        }
        let http = builder.build().map_err(EtcdError::Client)?;
        let inner = Arc::new(Inner {
            leadership: Leadership::new(ha.identity.clone()),
            key: b64(&ha.key),
            value: b64(&ha.identity),
            ttl,
            endpoints: ha.endpoints.clone(),
            http,
            credentials,
            token: Mutex::new(None),
            preferred: AtomicUsize::new(0),
            lease: Mutex::new(None),
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(inner.clone().campaign(stop_rx));
        tracing::info!(
            identity = %ha.identity, key = %ha.key, lease_ttl_seconds = ttl.as_secs(),
            endpoints = %ha.endpoints.join(","),
            "high availability: campaigning for leadership on etcd"
        );
        Ok(EtcdElector {
            inner,
            stop,
            task: Mutex::new(Some(task)),
        })
    }
}

impl Drop for EtcdElector {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

#[async_trait]
impl LeaderElector for EtcdElector {
    fn identity(&self) -> &str {
        &self.inner.leadership.identity
    }

    fn subscribe(&self) -> watch::Receiver<Election> {
        self.inner.leadership.tx.subscribe()
    }

    fn check(&self) -> Result<i64, NotLeader> {
        self.inner.leadership.check()
    }

    async fn resign(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let lease = self.inner.lease();
        let leading = self.inner.leadership.check().is_ok();
        self.inner.leadership.follow(None, true);
        if let (Some(lease), true) = (lease, leading) {
            // Revoking deletes the key: a standby takes over at its next read.
            match self.inner.call("/v3/lease/revoke", json!({ "ID": lease.to_string() })).await {
                Ok(_) => tracing::info!("high availability: leadership given up"),
                Err(e) => tracing::warn!(
                    "high availability: could not give leadership up ({}); it lapses with the lease",
                    error_chain(&e)
                ),
            }
        }
    }
}

impl Inner {
    fn lease(&self) -> Option<i64> {
        *self.lease.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_lease(&self, lease: Option<i64>) {
        *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = lease;
    }

    fn identity(&self) -> &str {
        &self.leadership.identity
    }

    /// How long a standby waits between reads of the key.
    fn poll(&self) -> Duration {
        (self.ttl / 4).clamp(Duration::from_millis(200), Duration::from_secs(2))
    }

    async fn campaign(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let wait = if self.leadership.check().is_ok() {
                self.keep().await
            } else {
                self.round().await
            };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The leader's round: renew the lease, read the key back.
    async fn keep(&self) -> Duration {
        let Some(lease) = self.lease() else {
            self.leadership.follow(None, true);
            return self.poll();
        };
        let sent = Instant::now();
        let ttl = match self.keepalive(lease).await {
            Ok(Some(ttl)) => ttl,
            Ok(None) => {
                tracing::error!(identity = %self.identity(), "high availability: the lease expired: stepping down");
                self.set_lease(None);
                self.leadership.follow(None, true);
                return self.poll();
            }
            Err(e) => {
                tracing::error!(identity = %self.identity(),
                    "high availability: keep-alive failed on every etcd member: stepping down ({})",
                    error_chain(&e));
                self.leadership.follow(None, false);
                return self.poll();
            }
        };
        match self.holder().await {
            Ok(Some(h)) if h.lease == lease && h.identity == self.identity() => {
                self.leadership.renewed(lease_end(sent, ttl));
                self.ttl / 3
            }
            Ok(other) => {
                tracing::error!(identity = %self.identity(),
                    holder = other.as_ref().map_or("nobody", |h| h.identity.as_str()),
                    "high availability: the election key is no longer this replica's: stepping down");
                self.leadership.follow(other.map(|h| h.identity), true);
                self.poll()
            }
            Err(e) => {
                tracing::error!(identity = %self.identity(),
                    "high availability: cannot read the election key back: stepping down ({})",
                    error_chain(&e));
                self.leadership.follow(None, false);
                self.poll()
            }
        }
    }

    /// A standby's round: read the key; campaign when nobody holds it.
    async fn round(&self) -> Duration {
        let holder = match self.holder().await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(identity = %self.identity(),
                    "high availability: etcd unreachable, no leadership ({})",
                    error_chain(&e));
                self.leadership.follow(None, false);
                return self.poll();
            }
        };
        if let Some(h) = holder {
            if h.identity == self.identity() && Some(h.lease) == self.lease() {
                // Still this replica's key from before the backend went away: renew and lead.
                let sent = Instant::now();
                if let Ok(Some(ttl)) = self.keepalive(h.lease).await {
                    tracing::info!(identity = %self.identity(), revision = h.create_revision,
                        "high availability: leading again (the election key survived)");
                    self.leadership
                        .lead(h.create_revision, lease_end(sent, ttl));
                    return self.ttl / 3;
                }
            }
            self.leadership.follow(Some(h.identity), true);
            return self.poll();
        }
        match self.try_lead().await {
            Ok(true) => self.ttl / 3,
            Ok(false) => self.poll(),
            Err(e) => {
                tracing::warn!(identity = %self.identity(),
                    "high availability: campaign failed ({})", error_chain(&e));
                self.leadership.follow(None, false);
                self.poll()
            }
        }
    }

    /// Grants a lease and creates the key under it unless it exists; `true` when this replica
    /// now leads.
    async fn try_lead(&self) -> Result<bool, EtcdError> {
        let sent = Instant::now();
        let ttl_seconds = self.ttl.as_secs().max(1);
        let granted = self
            .call("/v3/lease/grant", json!({ "TTL": ttl_seconds.to_string() }))
            .await?;
        let lease = int(&granted["ID"]);
        let ttl = Duration::from_secs(u64::try_from(int(&granted["TTL"])).unwrap_or(0));
        if lease == 0 || ttl.is_zero() {
            return Err(EtcdError::Request {
                endpoint: String::new(),
                path: "/v3/lease/grant",
                message: format!("no lease in the answer {granted}"),
            });
        }
        let txn = json!({
            "compare": [{ "key": self.key, "target": "CREATE", "create_revision": "0", "result": "EQUAL" }],
            "success": [{ "request_put": { "key": self.key, "value": self.value, "lease": lease.to_string() } }],
            "failure": [{ "request_range": { "key": self.key } }],
        });
        let answer = match self.call("/v3/kv/txn", txn).await {
            Ok(a) => a,
            Err(e) => {
                self.revoke(lease).await;
                return Err(e);
            }
        };
        if answer["succeeded"].as_bool() == Some(true) {
            let revision = int(&answer["header"]["revision"]);
            self.set_lease(Some(lease));
            tracing::info!(identity = %self.identity(), revision,
                "high availability: this replica leads");
            self.leadership.lead(revision, lease_end(sent, ttl));
            return Ok(true);
        }
        self.revoke(lease).await;
        let holder = answer["responses"][0]["response_range"]["kvs"][0]["value"]
            .as_str()
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        self.leadership.follow(holder, true);
        Ok(false)
    }

    async fn revoke(&self, lease: i64) {
        let _ = self
            .call("/v3/lease/revoke", json!({ "ID": lease.to_string() }))
            .await;
    }

    /// Renews `lease`: its remaining TTL, `None` when it no longer exists.
    async fn keepalive(&self, lease: i64) -> Result<Option<Duration>, EtcdError> {
        let answer = self
            .call("/v3/lease/keepalive", json!({ "ID": lease.to_string() }))
            .await?;
        let result = answer.get("result").unwrap_or(&answer);
        let ttl = int(&result["TTL"]);
        Ok((ttl > 0).then(|| Duration::from_secs(ttl.unsigned_abs())))
    }

    /// Who holds the election key, if anyone.
    async fn holder(&self) -> Result<Option<Holder>, EtcdError> {
        let answer = self
            .call("/v3/kv/range", json!({ "key": self.key }))
            .await?;
        let Some(kv) = answer["kvs"].as_array().and_then(|k| k.first()) else {
            return Ok(None);
        };
        let identity = kv["value"]
            .as_str()
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .map(|v| String::from_utf8_lossy(&v).chars().take(256).collect())
            .unwrap_or_default();
        Ok(Some(Holder {
            identity,
            lease: int(&kv["lease"]),
            create_revision: int(&kv["create_revision"]),
        }))
    }

    /// POSTs `body` to `path` on the members in turn, starting with the one that answered last.
    async fn call(&self, path: &'static str, body: Value) -> Result<Value, EtcdError> {
        let n = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut errors = Vec::new();
        for i in 0..n {
            let at = (first + i) % n;
            let endpoint = &self.endpoints[at];
            match self.call_one(endpoint, path, &body).await {
                Ok(v) => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e) => errors.push(error_chain(&e)),
            }
        }
        Err(EtcdError::Unreachable {
            path,
            errors: errors.join("; "),
        })
    }

    async fn call_one(
        &self,
        endpoint: &str,
        path: &'static str,
        body: &Value,
    ) -> Result<Value, EtcdError> {
        let mut authenticated_again = false;
        loop {
            let token = self.token(endpoint).await?;
            let mut request = self.http.post(format!("{endpoint}{path}")).json(body);
            if let Some(t) = &token {
                request = request.header("Authorization", t);
            }
            let failed = |message: String| EtcdError::Request {
                endpoint: endpoint.to_string(),
                path,
                message,
            };
            let mut response = request.send().await.map_err(|e| failed(error_chain(&e)))?;
            let status = response.status();
            let mut bytes = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| failed(error_chain(&e)))?
            {
                if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(failed(format!(
                        "answer larger than {MAX_ANSWER_BYTES} bytes"
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            // The keep-alive stream answers one message per line.
            let text = String::from_utf8_lossy(&bytes);
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let value: Value = serde_json::from_str(first)
                .map_err(|e| failed(format!("HTTP {status}: not JSON ({e})")))?;
            let error = value.get("error").filter(|e| !e.is_null());
            if status.is_success() && error.is_none() {
                return Ok(value);
            }
            let message = error
                .and_then(|e| e.get("message").or(Some(e)))
                .or_else(|| value.get("message"))
                .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
                .unwrap_or_default();
            let message: String = message.chars().take(300).collect();
            if self.credentials.is_some() && !authenticated_again && message.contains("token") {
                *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
                authenticated_again = true;
                continue;
            }
            return Err(failed(format!("HTTP {status}: {message}")));
        }
    }

    /// The auth token to send, authenticating first when there are credentials and no token.
    async fn token(&self, endpoint: &str) -> Result<Option<String>, EtcdError> {
        let Some((user, password)) = &self.credentials else {
            return Ok(None);
        };
        if let Some(t) = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(Some(t));
        }
        let path = "/v3/auth/authenticate";
        let failed = |message: String| EtcdError::Request {
            endpoint: endpoint.to_string(),
            path,
            message,
        };
        let response = self
            .http
            .post(format!("{endpoint}{path}"))
            .json(&json!({ "name": user, "password": password.expose() }))
            .send()
            .await
            .map_err(|e| failed(error_chain(&e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| failed(error_chain(&e)))?;
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(failed("answer too large".into()));
        }
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let Some(token) = value["token"].as_str().filter(|_| status.is_success()) else {
            // The password never appears in the message: only etcd's answer does.
            let message = value["message"]
                .as_str()
                .unwrap_or("no token in the answer");
            return Err(failed(format!(
                "HTTP {status}: authentication failed: {message}"
            )));
        };
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.to_string());
        Ok(Some(token.to_string()))
    }
}
