//! Serving the simulator over HTTP(S): one listener per cluster of the world (like ONTAP, where
//! each cluster has its own management address), HTTP Basic auth, fault injection, the
//! real-clock task, a generated self-signed certificate, and start/stop for the CLI and tests.
//!
//! Cluster 0 listens on `listen`, cluster `i` on `listen.port() + i` (port 0: each on its own
//! free port). Every listener also serves the world-wide admin API (one clock, one set of faults).
//! A world file's Veeam servers (`[[veeam]]`, `veeam::rest`) listen on the ports after
//! the clusters', in world order, over the same HTTP or HTTPS.
//!
//! Plain HTTP is allowed only on loopback addresses (tests and local demos); anything else needs
//! `tls`. The certificate's SHA-256 fingerprint is printed at start-up so clients can pin it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;

use super::config::{WorldFile, DEFAULT_USER};
use super::rest::{admin_router, api_router, envelope, ApiError, AppState, ClusterState};
use super::veeam::{VeeamSim, VeeamWorld};
use super::world::{codes, World};
use super::{ClockMode, Simulator};

/// Where the world comes from.
#[derive(Debug, Clone)]
pub enum WorldSource {
    /// A world TOML file (`--config FILE`).
    File(PathBuf),
    /// World TOML text (tests).
    Toml(String),
    /// An already built world (for example from a policy); its clock start is kept.
    World(Box<World>),
}

/// Options of `snapwarden simulator serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub world: WorldSource,
    /// The first cluster's address; cluster `i` listens on the next ports (`port + i`).
    /// `127.0.0.1:0` gives every cluster a free port; [`ServerHandle::clusters`] tells which.
    pub listen: SocketAddr,
    pub clock: ClockMode,
    /// Start instant of a manual clock (default: now). Ignored by a real clock.
    pub start: Option<DateTime<Utc>>,
    pub tls: bool,
}

/// One cluster's running listener.
#[derive(Debug)]
struct Listener {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    tls_handle: Option<axum_server::Handle>,
    task: JoinHandle<()>,
}

/// A running simulator server: one listener per cluster of the world.
#[derive(Debug)]
pub struct ServerHandle {
    /// (cluster name, bound address), in world order; never empty.
    clusters: Vec<(String, SocketAddr)>,
    /// (Veeam server name, bound address, its state), in world order.
    veeam: Vec<(String, SocketAddr, Arc<VeeamSim>)>,
    /// SHA-256 of the certificate (DER), when serving TLS.
    fingerprint: Option<[u8; 32]>,
    sim: Arc<Simulator>,
    listeners: Vec<Listener>,
    clock_task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The first cluster's bound address.
    pub fn addr(&self) -> SocketAddr {
        self.clusters[0].1
    }

    /// `http://addr` or `https://addr` of the first cluster.
    pub fn base_url(&self) -> String {
        self.url(self.addr())
    }

    /// Every cluster's name and bound address, in world order.
    pub fn clusters(&self) -> &[(String, SocketAddr)] {
        &self.clusters
    }

    /// `http(s)://addr` of the named cluster, if the world has it.
    pub fn base_url_of(&self, name: &str) -> Option<String> {
        self.clusters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, addr)| self.url(*addr))
    }

    fn url(&self, addr: SocketAddr) -> String {
        let scheme = if self.fingerprint.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{addr}")
    }

    /// SHA-256 of the certificate (DER), lowercase hex (a policy's `pin_sha256`), when serving TLS.
    pub fn fingerprint(&self) -> Option<String> {
        self.fingerprint
            .map(|fp| fp.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The same fingerprint as bytes, as a policy's `TlsVerify::PinSha256` holds it.
    pub fn fingerprint_sha256(&self) -> Option<[u8; 32]> {
        self.fingerprint
    }

    /// Every Veeam server's name and `http(s)://addr`, in world order.
    pub fn veeam_servers(&self) -> Vec<(String, String)> {
        self.veeam
            .iter()
            .map(|(n, addr, _)| (n.clone(), self.url(*addr)))
            .collect()
    }

    /// The named Veeam server's state (for tests and the manual clock).
    pub fn veeam_sim(&self, name: &str) -> Option<&Arc<VeeamSim>> {
        self.veeam
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, v)| v)
    }

    pub fn simulator(&self) -> &Arc<Simulator> {
        &self.sim
    }

    /// Stops accepting connections on every listener and waits for their tasks to end.
    pub async fn stop(mut self) {
        for l in &mut self.listeners {
            if let Some(tx) = l.shutdown.take() {
                let _ = tx.send(());
            }
            if let Some(h) = &l.tls_handle {
                h.graceful_shutdown(Some(Duration::from_secs(1)));
            }
        }
        if let Some(t) = self.clock_task.take() {
            t.abort();
        }
        for l in self.listeners {
            let _ = l.task.await;
        }
    }
}

/// The world, and its Veeam servers (world files only).
fn build_world(opts: &ServeOptions) -> anyhow::Result<(World, Vec<(String, VeeamWorld)>)> {
    let start = match opts.clock {
        ClockMode::Real => Utc::now(),
        ClockMode::Manual => opts.start.unwrap_or_else(Utc::now),
    };
    let (mut file, name) = match &opts.world {
        WorldSource::File(path) => (WorldFile::load(path)?, path.display().to_string()),
        WorldSource::Toml(text) => (WorldFile::parse(text, "world")?, "world".to_string()),
        WorldSource::World(w) => return Ok(((**w).clone(), Vec::new())),
    };
    let veeam = std::mem::take(&mut file.veeam);
    let world = file.build(start, &name)?;
    let veeam = super::veeam::config::build(veeam, &world, &name)?;
    Ok((world, veeam))
}

/// Whether the `Authorization` header names a configured user.
fn authorized(sim: &Simulator, req: &Request) -> bool {
    let Some(value) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return false;
    };
    let Some((user, password)) = text.split_once(':') else {
        return false;
    };
    sim.with(|w| {
        w.users
            .iter()
            .any(|u| u.name == user && u.password == password)
    })
}

async fn auth(State(sim): State<AppState>, req: Request, next: Next) -> Response {
    if authorized(&sim, &req) {
        return next.run(req).await;
    }
    let mut resp = ApiError::new(401, 6, "not authorized for that command", "").into_response();
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"ONTAP\""),
    );
    resp
}

/// A body that fails at once, so the server aborts the connection without a complete answer.
fn dropped_connection() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "simulated dropped connection",
        ))
    });
    Response::new(axum::body::Body::from_stream(stream))
}

async fn faults(State(sim): State<AppState>, req: Request, next: Next) -> Response {
    let (latency, error, dropped) = sim.with(|w| {
        let f = w.faults.clone();
        let error = f.error_rate > 0.0 && w.roll() < f.error_rate;
        let dropped = !error && f.drop_rate > 0.0 && w.roll() < f.drop_rate;
        (f.latency_ms, error, dropped)
    });
    if latency > 0 {
        // Injected latency is the fault itself, not a wait for a condition.
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if dropped {
        return dropped_connection();
    }
    if error {
        return ApiError::new(
            500,
            codes::SIMULATED_FAULT,
            "simulated internal error (fault injection)",
            "",
        )
        .into_response();
    }
    let mutating = matches!(
        *req.method(),
        axum::http::Method::POST | axum::http::Method::PATCH | axum::http::Method::DELETE
    );
    let response = next.run(req).await;
    if mutating && response.status().is_success() && sim.with(take_drop_after_apply) {
        return dropped_connection();
    }
    response
}

/// How many `/api` requests the simulator has answered over HTTP (after authentication, faults
/// included), by method, and how many of them were job polls (`GET /api/cluster/jobs/{uuid}`).
/// The admin API (`/simulator/v1`) is not counted. Read at `GET /simulator/v1/requests`, for
/// example to measure a client's REST calls per operation.
#[derive(Debug, Default)]
pub struct RequestCounts {
    get: AtomicU64,
    post: AtomicU64,
    patch: AtomicU64,
    delete: AtomicU64,
    other: AtomicU64,
    job_polls: AtomicU64,
}

impl RequestCounts {
    fn count(&self, method: &axum::http::Method, path: &str) {
        use axum::http::Method;
        let slot = match *method {
            Method::GET => &self.get,
            Method::POST => &self.post,
            Method::PATCH => &self.patch,
            Method::DELETE => &self.delete,
            _ => &self.other,
        };
        slot.fetch_add(1, Ordering::Relaxed);
        let job_poll = path
            .strip_prefix("/api/cluster/jobs/")
            .is_some_and(|uuid| !uuid.is_empty() && !uuid.contains('/'));
        if *method == Method::GET && job_poll {
            self.job_polls.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts as the admin API renders them: `total`, `get`, `post`, `patch`, `delete`,
    /// `other` (any other method) and `job_polls` (a subset of `get`).
    pub fn to_json(&self) -> serde_json::Value {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (get, post, patch, delete, other) = (
            n(&self.get),
            n(&self.post),
            n(&self.patch),
            n(&self.delete),
            n(&self.other),
        );
        let total = [get, post, patch, delete, other]
            .iter()
            .fold(0u64, |t, c| t.saturating_add(*c));
        serde_json::json!({
            "total": total,
            "get": get,
            "post": post,
            "patch": patch,
            "delete": delete,
            "other": other,
            "job_polls": n(&self.job_polls),
        })
    }
}

async fn count_request(State(sim): State<AppState>, req: Request, next: Next) -> Response {
    sim.requests().count(req.method(), req.uri().path());
    next.run(req).await
}

/// Whether the `drop_after_apply` fault takes this (applied) request, counting it down.
fn take_drop_after_apply(w: &mut World) -> bool {
    match w.faults.drop_after_apply.checked_sub(1) {
        Some(left) => {
            w.faults.drop_after_apply = left;
            true
        }
        None => false,
    }
}

/// The application of cluster `ci` (an index into the world's clusters): its `/api` (with
/// faults) and the world-wide `/simulator/v1`, both behind Basic auth.
pub fn router(sim: Arc<Simulator>, ci: usize) -> Router {
    let api = api_router()
        .layer(middleware::from_fn_with_state(sim.clone(), faults))
        .layer(middleware::from_fn_with_state(sim.clone(), count_request));
    api.merge(admin_router())
        .layer(middleware::from_fn_with_state(sim.clone(), auth))
        .layer(middleware::from_fn(envelope))
        .with_state(ClusterState { sim, ci })
}

/// Binds one listener per cluster: the first on `listen`, cluster `i` on `listen.port() + i`,
/// or each on a free port when `listen.port()` is 0.
fn bind_all(listen: SocketAddr, count: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    (0..count.max(1))
        .map(|i| {
            let mut addr = listen;
            if listen.port() != 0 {
                let port = u16::try_from(usize::from(listen.port()) + i)
                    .ok()
                    .with_context(|| {
                        format!(
                            "cluster {} would need a port above 65535 (--listen {listen})",
                            i + 1
                        )
                    })?;
                addr.set_port(port);
            }
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("binding {addr} (cluster {})", i + 1))?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
        .collect()
}

/// A self-signed certificate for `localhost`, `127.0.0.1`, `::1` and the listen address:
/// (certificate DER, key DER, SHA-256 of the certificate).
fn self_signed(addr: SocketAddr) -> anyhow::Result<(Vec<u8>, Vec<u8>, [u8; 32])> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !addr.ip().is_unspecified() && !names.contains(&addr.ip().to_string()) {
        names.push(addr.ip().to_string());
    }
    let certified = rcgen::generate_simple_self_signed(names)
        .context("generating a self-signed certificate")?;
    let cert = certified.cert.der().to_vec();
    let key = certified.key_pair.serialize_der();
    let fingerprint = crate::ontap::tls::fingerprint(&cert);
    Ok((cert, key, fingerprint))
}

/// Starts the simulator server in the background and returns once it is listening.
pub async fn start(opts: ServeOptions) -> anyhow::Result<ServerHandle> {
    if !opts.tls && !opts.listen.ip().is_loopback() {
        anyhow::bail!(
            "plain HTTP is only allowed on a loopback address; use --tls to listen on {}",
            opts.listen
        );
    }
    let (world, veeam_worlds) = build_world(&opts)?;
    let sim = Simulator::new(world, opts.clock);
    let names: Vec<String> = sim.with(|w| w.clusters.iter().map(|c| c.name.clone()).collect());
    // Veeam servers listen on the ports after the clusters'.
    let mut std_listeners = bind_all(opts.listen, names.len() + veeam_worlds.len())?;
    let veeam_listeners = std_listeners.split_off(names.len().max(1));
    let mut veeam = Vec::with_capacity(veeam_worlds.len());
    for ((name, state), l) in veeam_worlds.into_iter().zip(&veeam_listeners) {
        veeam.push((name, l.local_addr()?, VeeamSim::new(sim.clone(), state)));
    }
    let mut clusters = Vec::with_capacity(std_listeners.len());
    for (i, l) in std_listeners.iter().enumerate() {
        let name = names.get(i).cloned().unwrap_or_default();
        clusters.push((name, l.local_addr()?));
    }
    let tls = if opts.tls {
        let (cert, key, fingerprint) = self_signed(clusters[0].1)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(cert)],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
            )?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let rustls_config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config));
        Some((rustls_config, fingerprint))
    } else {
        None
    };
    let mut listeners = Vec::with_capacity(std_listeners.len());
    for (ci, std_listener) in std_listeners.into_iter().enumerate() {
        let app = router(sim.clone(), ci);
        listeners.push(match &tls {
            Some((rustls_config, _)) => serve_tls(std_listener, rustls_config.clone(), app),
            None => serve_plain(std_listener, app)?,
        });
    }
    for ((_, _, state), std_listener) in veeam.iter().zip(veeam_listeners) {
        let app = super::veeam::rest::router(state.clone());
        listeners.push(match &tls {
            Some((rustls_config, _)) => serve_tls(std_listener, rustls_config.clone(), app),
            None => serve_plain(std_listener, app)?,
        });
    }
    let clock_task = (opts.clock == ClockMode::Real).then(|| {
        let sim = sim.clone();
        let veeam: Vec<Arc<VeeamSim>> = veeam.iter().map(|(_, _, v)| v.clone()).collect();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                sim.sync();
                // Sessions that are due end within a second of their instant.
                for v in &veeam {
                    v.with(|_, _| ());
                }
            }
        })
    });
    Ok(ServerHandle {
        clusters,
        veeam,
        fingerprint: tls.map(|(_, fp)| fp),
        sim,
        listeners,
        clock_task,
    })
}

fn serve_tls(
    std_listener: std::net::TcpListener,
    config: axum_server::tls_rustls::RustlsConfig,
    app: Router,
) -> Listener {
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(std_listener, config).handle(handle.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = server.serve(app.into_make_service()).await {
            tracing::error!("simulator server: {e:#}");
        }
    });
    Listener {
        shutdown: None,
        tls_handle: Some(handle),
        task,
    }
}

fn serve_plain(std_listener: std::net::TcpListener, app: Router) -> anyhow::Result<Listener> {
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("simulator server: {e:#}");
        }
    });
    Ok(Listener {
        shutdown: Some(tx),
        tls_handle: None,
        task,
    })
}

/// Prints the start-up lines. A reader that closed stdout after the first line (a script
/// waiting only for the address) must not stop the server, so a failed write is ignored.
fn announce(lines: &[String]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for line in lines {
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return;
        }
    }
}

/// `snapwarden simulator serve`: starts, prints where it listens (and the certificate
/// fingerprint), runs until `shutdown` completes, then stops.
pub async fn serve(opts: ServeOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let handle = start(opts).await?;
    let mut lines = vec![format!(
        "snapwarden simulator listening on {}",
        handle.base_url()
    )];
    for (name, addr) in handle.clusters() {
        lines.push(format!("cluster {name}: {}", handle.url(*addr)));
    }
    for (name, url) in handle.veeam_servers() {
        lines.push(format!("veeam {name}: {url}"));
    }
    if let Some(fp) = handle.fingerprint() {
        lines.push(format!("certificate SHA-256 fingerprint: {fp}"));
    }
    let default_logins = handle.simulator().with(|w| w.default_logins.clone());
    for user in default_logins {
        lines.push(format!(
            "warning: user {user} logs in with the default password {}; configure [[users]] (or the policy's password) for anything but a demo",
            DEFAULT_USER.1
        ));
    }
    lines.push("ready; Ctrl-C stops the simulator".to_string());
    announce(&lines);
    shutdown.await;
    handle.stop().await;
    Ok(())
}
