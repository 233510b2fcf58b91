//! `snapwarden run`, `status` and `history`: the daemon and the two ways to ask what it did.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use clap::ValueEnum;

use super::tables::{cycles_table, status_table};
use super::{Output, EXIT_INVALID, EXIT_OK};
use crate::agent::journal::{Journal, JournalError};
use crate::agent::status::{RecentCycle, Status};
use crate::agent::{self, connect, Agent, Event, Options, SystemClock, Triggers};
use crate::config::{self, Policy};
use crate::domain::duration::parse_duration;
use crate::error::error_chain;
use crate::sim::{embedded, ClockMode};

/// Log line format of `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the tracing subscriber: `SNAPWARDEN_LOG` (an env filter) or `default`.
pub fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SNAPWARDEN_LOG")
        .unwrap_or_else(|_| default.into());
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// How many threads may wait on running hooks at once (one each); beyond this, hooks still run
/// but are reaped when a thread frees up.
const MAX_BLOCKING_THREADS: usize = 4096;

/// `snapwarden run`.
pub fn run(path: &Path, state_dir: Option<PathBuf>) -> u8 {
    let policy = match config::load(path) {
        Ok(p) => Arc::new(p),
        Err(errors) => {
            eprintln!("{errors}");
            return EXIT_INVALID;
        }
    };
    crate::agent::allocator::configure();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return EXIT_INVALID;
        }
    };
    runtime.block_on(run_agent(policy, state_dir))
}

async fn run_agent(policy: Arc<Policy>, state_dir: Option<PathBuf>) -> u8 {
    let state_dir = state_dir.unwrap_or_else(|| policy.agent.state_dir.clone());
    for c in &policy.clusters {
        if c.tls == config::TlsVerify::Insecure {
            tracing::warn!(cluster = %c.name, "TLS verification is off (insecure = true)");
        }
    }
    let embedded = match embedded::connect(&policy, ClockMode::Real, None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    if embedded.simulator.is_some() {
        tracing::info!(
            "clusters with endpoint = \"simulator\" run in the embedded simulator, in real time, \
             on a new world: cycles an earlier run left open find none of their objects and are \
             released without a delete"
        );
    }
    let listener = match agent::http::bind(policy.agent.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    let agent = match Agent::new(
        policy.clone(),
        connect::connect(&policy, |name| embedded.client(name)),
        Arc::new(SystemClock),
        Options {
            state_dir: state_dir.clone(),
            triggers: Triggers::Cron,
            hooks: None,
        },
    ) {
        Ok(a) => a.with_veeam(
            embedded
                .veeam
                .iter()
                .map(|v| (v.name.clone(), v.client.clone()))
                .collect(),
        ),
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    // [ha]: campaign from the start; the agent changes nothing until this replica leads.
    let elector = match crate::ha::start(policy.ha.as_ref()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{}", error_chain(&e));
            return EXIT_INVALID;
        }
    };
    let agent = match &elector {
        Some(e) => agent.with_elector(e.clone()),
        None => agent,
    };
    tracing::info!(
        policy = %policy.source.display(), state_dir = %state_dir.display(),
        listen = %policy.agent.listen, clusters = policy.clusters.len(),
        volumes = policy.volumes.len(), windows = policy.windows.len(),
        "snapwarden agent starting"
    );
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let token = match &policy.agent.token_file {
        Some(path) => match agent::http::read_token(path) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("{e}");
                return EXIT_INVALID;
            }
        },
        None => None,
    };
    // Hot reload: the policy's directories, SIGHUP and POST /-/reload.
    let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
    agent::reload::Reloader::new(policy.clone(), agent.events(), agent.metrics()).start(reload_rx);
    let api = agent::http::Api {
        board: agent.status_board(),
        metrics: agent.metrics(),
        plan: agent.plan_board(),
        reload: Some(reload_tx),
        token,
    };
    let http = tokio::spawn(agent::http::serve(listener, api, async {
        let _ = http_stop_rx.await;
    }));
    let events = agent.events();
    tokio::spawn(async move {
        forward_signals(events).await;
    });
    let result = agent.run().await;
    if let Some(e) = &elector {
        e.resign().await;
    }
    let _ = http_stop_tx.send(());
    let _ = http.await;
    match result {
        Ok(left) if left.is_empty() => {
            tracing::info!("stopped; nothing left in flight");
            EXIT_OK
        }
        Ok(left) => {
            tracing::warn!(
                cycles = left.len(),
                "stopped; cycles still owning objects are in the journal and are released at the next start"
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_INVALID
        }
    }
}

/// SIGTERM or SIGINT: a graceful stop. A second one exits at once (the journal still lets the
/// next start release what is left).
async fn forward_signals(events: tokio::sync::mpsc::UnboundedSender<Event>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let mut seen = 0u32;
    loop {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        seen += 1;
        if seen == 1 {
            tracing::info!("{name}: stopping gracefully (send it again to exit at once)");
            let _ = events.send(Event::Shutdown);
        } else {
            tracing::warn!("{name} again: exiting now; the next start releases what is left");
            std::process::exit(i32::from(EXIT_OK));
        }
    }
}

/// Where `status` finds the agent: `url`, else the policy's `[agent] listen`, else the default.
fn status_url(policy: Option<&Policy>, url: Option<String>) -> String {
    if let Some(u) = url {
        return u.trim_end_matches('/').to_string();
    }
    let listen: SocketAddr = match policy {
        Some(p) => p.agent.listen,
        None => "127.0.0.1:9464".parse().expect("default address"),
    };
    let host = match listen.ip() {
        ip if ip.is_unspecified() => {
            if ip.is_ipv4() {
                "127.0.0.1".to_string()
            } else {
                "[::1]".to_string()
            }
        }
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", listen.port())
}

/// Largest status answer read (a bounded read of a reply from outside).
const MAX_STATUS_BYTES: usize = 64 << 20;

/// `snapwarden status`: the policy (for its address and token file), or the agent's URL and the
/// token file, if it has one.
pub fn status(
    policy: Option<&Path>,
    url: Option<String>,
    token_file: Option<&Path>,
    output: Output,
) -> u8 {
    let policy = match policy.map(config::load).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    let base = status_url(policy.as_ref(), url);
    let token_file = token_file.or(policy.as_ref().and_then(|p| p.agent.token_file.as_deref()));
    let token = match token_file.map(agent::http::read_token).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    let runtime = match current_thread() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let endpoint = format!("{base}/api/v1/status");
    let body = runtime.block_on(fetch_status(&endpoint, token.as_deref()));
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    let status: Status = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{endpoint}: not a snapwarden status: {e}");
            return EXIT_INVALID;
        }
    };
    let text = match output {
        Output::Json => {
            let mut s = serde_json::to_string_pretty(&status).expect("status serializes");
            s.push('\n');
            s
        }
        Output::Table => status_table(&status),
    };
    super::print(&text);
    EXIT_OK
}

/// `GET endpoint` with the bearer token, if any: the body, read up to [`MAX_STATUS_BYTES`].
async fn fetch_status(endpoint: &str, token: Option<&str>) -> Result<Vec<u8>, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let mut request = client.get(endpoint);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let mut resp = request
        .send()
        .await
        .map_err(|e| format!("no snapwarden agent answers at {endpoint}: {}; is `snapwarden run` running, and is this its [agent] listen address?", error_chain(&e)))?;
    if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
        let why = if token.is_some() {
            "the agent refused the token: is it the one in the agent's [agent] token_file?"
        } else {
            "the agent asks for its API token: pass --config with the agent's policy, or --token-file FILE"
        };
        return Err(format!("{endpoint} answered HTTP 401: {why}"));
    }
    if !resp.status().is_success() {
        return Err(format!("{endpoint} answered HTTP {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > MAX_STATUS_BYTES {
            return Err(format!(
                "{endpoint}: answer larger than {MAX_STATUS_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `--since`: an RFC 3339 instant, or a duration meaning "that long ago" (`7d`, `PT12H`).
pub fn parse_since(s: &str) -> Result<SinceArg, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(SinceArg::At(t.with_timezone(&Utc)));
    }
    match parse_duration(s) {
        Ok(d) if d > TimeDelta::zero() && d <= TimeDelta::days(3660) => Ok(SinceArg::Ago(d)),
        _ => Err(format!(
            "\"{s}\" is neither an RFC 3339 instant (2026-11-25T00:00:00Z) nor a duration up to 3660d (7d, 12h)"
        )),
    }
}

#[derive(Debug, Clone, Copy)]
pub enum SinceArg {
    At(DateTime<Utc>),
    Ago(TimeDelta),
}

/// `[agent] state_dir` when neither `--state-dir` nor a policy names one: the policy's default.
pub(super) fn default_state_dir() -> PathBuf {
    config::Agent::default().state_dir
}

/// Where `history` and `report` took the journal's directory from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DirFrom {
    /// `--state-dir`.
    Flag,
    /// The `--config` policy's `[agent] state_dir` (its default when the policy sets none).
    Policy,
    /// Neither was given.
    Default,
}

/// Opens the journal in `--state-dir` read-only (`doctor`).
pub(super) fn open_journal_dir(dir: &Path) -> Result<Journal, u8> {
    open_journal(dir, DirFrom::Flag)
}

/// Opens the journal read-only for `history` and `report`. A journal that is not there is
/// explained: where the directory came from, and how to name the one `snapwarden run` used.
pub(super) fn open_journal(dir: &Path, from: DirFrom) -> Result<Journal, u8> {
    Journal::open_read_only(dir).map_err(|e| {
        eprintln!("{e}");
        if matches!(e, JournalError::Missing { .. }) {
            eprintln!("{}", missing_journal_hint(dir, from));
        }
        EXIT_INVALID
    })
}

/// What to do when there is no journal in `dir`.
fn missing_journal_hint(dir: &Path, from: DirFrom) -> String {
    let whence = match from {
        DirFrom::Flag => "the --state-dir given".to_string(),
        DirFrom::Policy => format!(
            "the [agent] state_dir of the --config policy ({} when it sets none)",
            default_state_dir().display()
        ),
        DirFrom::Default => {
            "the default: neither --state-dir nor --config (whose [agent] state_dir would name \
             it) was given"
                .to_string()
        }
    };
    format!(
        "hint: {} is {whence}. Pass --state-dir DIR naming the directory `snapwarden run` kept its \
         journal in: its --state-dir, else its policy's [agent] state_dir.",
        dir.display()
    )
}

/// `snapwarden history`.
pub fn history(
    policy: Option<&Path>,
    state_dir: Option<PathBuf>,
    window: Option<&str>,
    since: Option<SinceArg>,
    limit: usize,
    output: Output,
) -> u8 {
    let (dir, from) = match (state_dir, policy) {
        (Some(d), _) => (d, DirFrom::Flag),
        (None, Some(p)) => match config::load(p) {
            Ok(policy) => (policy.agent.state_dir, DirFrom::Policy),
            Err(errors) => {
                eprintln!("{errors}");
                return EXIT_INVALID;
            }
        },
        (None, None) => (default_state_dir(), DirFrom::Default),
    };
    let journal = match open_journal(&dir, from) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let since = match since.unwrap_or(SinceArg::Ago(TimeDelta::days(7))) {
        SinceArg::At(t) => t,
        SinceArg::Ago(d) => Utc::now() - d,
    };
    let cycles = match journal.recent_cycles(since, window, limit) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    let rows: Vec<RecentCycle> = cycles.iter().map(RecentCycle::of).collect();
    let text = match output {
        Output::Json => {
            let mut s = serde_json::to_string_pretty(&rows).expect("cycles serialize");
            s.push('\n');
            s
        }
        Output::Table => cycles_table(&rows),
    };
    super::print(&text);
    EXIT_OK
}

/// The runtime of a one-shot command's network calls (`status`, `check`, `plan`); its error is
/// printed and answered with the exit code.
fn current_thread() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start the async runtime: {e}");
            EXIT_INVALID
        })
}

/// Looks up every `driver = "veeam"` window's job on its (real) server, read-only: a job the
/// server does not have is a located policy error listing the jobs it has; a server that cannot
/// be asked is named with its error. The embedded simulator's jobs are the policy's own.
pub fn check_veeam_jobs(policy: &Policy) -> Result<(), u8> {
    use crate::veeam::{VeeamClient, VeeamError};
    let refs: Vec<(&config::Window, &config::VeeamJobRef)> = policy
        .windows
        .iter()
        .filter_map(|w| match &w.driver {
            config::Driver::Veeam(r) if !policy.veeam[r.server].is_simulator() => Some((w, r)),
            _ => None,
        })
        .collect();
    if refs.is_empty() {
        return Ok(());
    }
    let runtime = current_thread()?;
    // One client per server, built once; `Err(())`: its error was printed already.
    let mut clients: Vec<Option<Result<Arc<VeeamClient>, ()>>> =
        (0..policy.veeam.len()).map(|_| None).collect();
    let mut located = Vec::new();
    let mut unreachable = false;
    for (window, r) in refs {
        let server = &policy.veeam[r.server];
        let client = clients[r.server].get_or_insert_with(|| {
            VeeamClient::from_server(server).map(Arc::new).map_err(|e| {
                eprintln!("{}", error_chain(&e));
            })
        });
        let Ok(client) = client.clone() else {
            unreachable = true;
            continue;
        };
        match runtime.block_on(client.find_job(&r.job)) {
            Ok(_) => {}
            Err(VeeamError::JobNotFound { known, .. }) => located.push(r.at.diagnostic(
                format!(
                    "window \"{}\": Veeam server {} has no job {:?}",
                    window.name, server.name, r.job
                ),
                Some(format!(
                    "name one of the server's jobs (by name or id): {known}"
                )),
            )),
            Err(VeeamError::JobAmbiguous { count, .. }) => located.push(r.at.diagnostic(
                format!(
                    "window \"{}\": Veeam server {} has {count} jobs named {:?}",
                    window.name, server.name, r.job
                ),
                Some("name the job by its id (a UUID)".into()),
            )),
            Err(e) => {
                eprintln!("{}", error_chain(&e));
                clients[r.server] = Some(Err(()));
                unreachable = true;
            }
        }
    }
    if !located.is_empty() {
        eprintln!("{}", config::Diagnostics(located));
        return Err(EXIT_INVALID);
    }
    if unreachable {
        eprintln!("(use --offline to check without the Veeam servers)");
        return Err(EXIT_INVALID);
    }
    Ok(())
}

/// The read-only discovery `check` and `plan` do when the policy needs cluster facts: the
/// clusters owning unresolved volumes are read (cluster, volumes, snapshot policies, schedules).
/// An unreachable cluster is an error naming it.
pub fn discover_for_planning(
    policy: &Policy,
    plan: &crate::planner::Plan,
) -> Result<crate::planner::Observed, u8> {
    let needed: Vec<usize> = {
        let mut v: Vec<usize> = plan
            .unresolved
            .iter()
            .map(|u| policy.volumes[u.volume].cluster)
            .filter(|&ci| policy.clusters[ci].endpoint != config::Endpoint::Simulator)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    if needed.is_empty() {
        return Ok(crate::planner::Observed::offline());
    }
    let clients: Vec<(String, Arc<dyn crate::ontap::Ontap>)> = needed
        .iter()
        .map(|&ci| {
            let c = &policy.clusters[ci];
            (
                c.name.clone(),
                Arc::new(connect::LazyRest::new(c.clone(), policy.agent.concurrency))
                    as Arc<dyn crate::ontap::Ontap>,
            )
        })
        .collect();
    let runtime = current_thread()?;
    let (observed, errors) =
        runtime.block_on(agent::discovery::observe_for_planning(&clients, Utc::now()));
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{}", error_chain(e));
        }
        eprintln!("(use --offline to plan without the clusters)");
        return Err(EXIT_INVALID);
    }
    Ok(observed)
}
