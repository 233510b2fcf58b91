//! The Veeam simulator's REST endpoint: token, jobs, job start and sessions over HTTP, shaped like
//! the published OpenAPI (`1.1-rev0`), with `x-api-version` required and the faults applied.
//!
//! State: a [`VeeamSim`] holds the Veeam side ([`VeeamWorld`]) and the shared ONTAP
//! [`Simulator`]; every request first ends the sessions that are due by the world's clock. Lock
//! order: the Veeam state, then the world (through `Simulator::with`); neither is held across an
//! await.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use super::world::{SimSession, SimState, VeeamFault, VeeamWorld};
use crate::sim::{ClockError, ClockMode, Simulator, World};

/// Largest page of a collection: an assumption (the specification states no maximum).
pub const MAX_LIMIT: usize = 1000;

/// The Veeam side of a simulated world, beside its ONTAP side.
#[derive(Debug)]
pub struct VeeamSim {
    pub sim: Arc<Simulator>,
    state: Mutex<VeeamWorld>,
}

impl VeeamSim {
    pub fn new(sim: Arc<Simulator>, world: VeeamWorld) -> Arc<VeeamSim> {
        Arc::new(VeeamSim {
            sim,
            state: Mutex::new(world),
        })
    }

    /// The Veeam state, for callers that bring several servers and the world along together
    /// (lock order: Veeam states, then the world).
    pub fn lock(&self) -> MutexGuard<'_, VeeamWorld> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on both sides, after ending the sessions due by the world's clock.
    pub fn with<R>(&self, f: impl FnOnce(&mut VeeamWorld, &mut World) -> R) -> R {
        let mut v = self.lock();
        self.sim.with(|w| {
            v.step(w);
            f(&mut v, w)
        })
    }

    /// Moves a manual clock forward by `by`, ending sessions between scheduled snapshots.
    pub fn advance(&self, by: TimeDelta) -> Result<(), ClockError> {
        if self.sim.clock() == ClockMode::Real {
            return Err(ClockError::Real);
        }
        self.with(|v, w| {
            let to = w.now().checked_add_signed(by).ok_or(ClockError::Overflow {
                seconds: by.num_seconds(),
                now: w.now(),
            })?;
            v.advance(w, to);
            Ok(())
        })
    }
}

fn fault(f: VeeamFault) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        Json(json!({"errorCode": f.code, "message": f.message})),
    )
        .into_response()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn render_session(v: &VeeamWorld, s: &SimSession, now: DateTime<Utc>) -> Value {
    let job = &v.jobs[s.job];
    let total = (s.ends - s.created).num_seconds().max(1);
    let progress = match s.state {
        SimState::Stopped => 100,
        SimState::Working => ((now - s.created).num_seconds().clamp(0, total) * 100) / total,
    };
    let mut out = json!({
        "id": s.id, "name": job.name, "activityId": s.id, "sessionType": "Job",
        "state": match s.state { SimState::Working => "Working", SimState::Stopped => "Stopped" },
        "creationTime": rfc3339(s.created), "usn": 0, "progressPercent": progress,
        "resourceId": job.id,
        "result": {"result": s.result, "message": s.message, "isCanceled": false},
    });
    if s.state == SimState::Stopped {
        out["endTime"] = json!(rfc3339(s.ends));
    }
    out
}

/// The server is down: the connection ends without an answer.
fn dropped() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "simulated Veeam server down",
        ))
    });
    Response::new(axum::body::Body::from_stream(stream))
}

/// Faults first, then `x-api-version` on every call (the token request included).
async fn gate(State(veeam): State<Arc<VeeamSim>>, req: Request, next: Next) -> Response {
    if veeam.lock().faults.down {
        return dropped();
    }
    let version = req
        .headers()
        .get("x-api-version")
        .and_then(|v| v.to_str().ok());
    if !version.is_some_and(is_api_version) {
        return fault(VeeamFault {
            status: 400,
            code: "UnexpectedContent",
            message: "The x-api-version header is missing or malformed (expected e.g. 1.1-rev0)"
                .into(),
        });
    }
    next.run(req).await
}

fn is_api_version(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
    match s.split_once("-rev") {
        Some((v, r)) => v
            .split_once('.')
            .is_some_and(|(a, b)| digits(a) && digits(b) && digits(r)),
        None => false,
    }
}

/// Bearer tokens on `/api/v1`.
async fn bearer(State(veeam): State<Arc<VeeamSim>>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let checked = veeam.with(|v, w| v.authorize(token.as_deref(), w.now()));
    match checked {
        Ok(()) => next.run(req).await,
        Err(f) => fault(f),
    }
}

async fn token(State(veeam): State<Arc<VeeamSim>>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    let mut url = reqwest::Url::parse("form:").expect("a constant URL parses");
    url.set_query(Some(&text));
    let form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    match veeam.with(|v, w| v.token(&form, w.now())) {
        Ok(g) => Json(json!({
            "access_token": g.access, "token_type": "bearer", "refresh_token": g.refresh,
            "expires_in": g.expires_in, ".issued": rfc3339(g.issued), ".expires": rfc3339(g.expires),
        }))
        .into_response(),
        Err(f) => fault(f),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Paging {
    skip: Option<usize>,
    limit: Option<usize>,
    job_id_filter: Option<String>,
}

fn page(items: Vec<Value>, p: &Paging) -> Response {
    let total = items.len();
    let skip = p.skip.unwrap_or(0);
    let limit = p.limit.unwrap_or(200).clamp(1, MAX_LIMIT);
    let data: Vec<Value> = items.into_iter().skip(skip).take(limit).collect();
    Json(json!({
        "data": data,
        "pagination": {"total": total, "count": data.len(), "skip": skip, "limit": limit},
    }))
    .into_response()
}

async fn jobs(State(veeam): State<Arc<VeeamSim>>, Query(p): Query<Paging>) -> Response {
    let items = veeam.with(|v, _| {
        v.jobs
            .iter()
            .map(|j| {
                json!({"id": j.id, "name": j.name, "type": "Backup", "isDisabled": false,
                       "description": "", "isHighPriority": false})
            })
            .collect()
    });
    page(items, &p)
}

async fn start(State(veeam): State<Arc<VeeamSim>>, Path(id): Path<String>) -> Response {
    veeam.with(|v, w| match v.start(w, &id) {
        Ok(s) => (StatusCode::CREATED, Json(render_session(v, &s, w.now()))).into_response(),
        Err(f) => fault(f),
    })
}

async fn sessions(State(veeam): State<Arc<VeeamSim>>, Query(p): Query<Paging>) -> Response {
    let items = veeam.with(|v, w| {
        v.sessions
            .iter()
            .filter(|s| {
                p.job_id_filter
                    .as_deref()
                    .is_none_or(|id| v.jobs[s.job].id.eq_ignore_ascii_case(id))
            })
            .map(|s| render_session(v, s, w.now()))
            .collect()
    });
    page(items, &p)
}

async fn session(State(veeam): State<Arc<VeeamSim>>, Path(id): Path<String>) -> Response {
    veeam.with(|v, w| match v.session(&id) {
        Some(s) => Json(render_session(v, s, w.now())).into_response(),
        None => fault(VeeamFault {
            status: 404,
            code: "NotFound",
            message: format!("Session {id} was not found"),
        }),
    })
}

/// The Veeam REST application.
pub fn router(veeam: Arc<VeeamSim>) -> Router {
    let api = Router::new()
        .route("/api/v1/jobs", get(jobs))
        .route("/api/v1/jobs/{id}/start", post(start))
        .route("/api/v1/sessions", get(sessions))
        .route("/api/v1/sessions/{id}", get(session))
        .layer(middleware::from_fn_with_state(veeam.clone(), bearer));
    Router::new()
        .route("/api/oauth2/token", post(token))
        .merge(api)
        .layer(middleware::from_fn_with_state(veeam.clone(), gate))
        .with_state(veeam)
}

/// A running Veeam endpoint.
#[derive(Debug)]
pub struct VeeamServerHandle {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl VeeamServerHandle {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }
}

/// Moves the world to `to`, ending the sessions of every Veeam server in `veeams` at their own
/// instants between the world's scheduled snapshots (the in-process form of
/// [`VeeamSim::advance`] for several servers on one world). Lock order as everywhere: the Veeam
/// states (in slice order), then the world.
pub fn advance_all(sim: &Simulator, veeams: &[Arc<VeeamSim>], to: DateTime<Utc>) {
    let mut states: Vec<MutexGuard<'_, VeeamWorld>> = veeams.iter().map(|v| v.lock()).collect();
    sim.with(|w| {
        loop {
            for s in states.iter_mut() {
                s.step(w);
            }
            let next = states
                .iter()
                .filter_map(|s| s.next_end().map(|(_, at)| at))
                .filter(|at| *at <= to)
                .min();
            let Some(at) = next else { break };
            if at > w.now() {
                w.advance_summarized(at, 0);
            }
        }
        if to > w.now() {
            w.advance_summarized(to, 0);
        }
    });
}

/// The simulator's own router answering a [`VeeamClient`](crate::veeam::VeeamClient) in process,
/// after `before` (which brings the world to the caller's clock). Nothing touches the network, so
/// it runs on a paused tokio clock (virtual time).
pub struct InProcess {
    router: Router,
    before: Box<dyn Fn() + Send + Sync>,
}

impl InProcess {
    pub fn new(veeam: Arc<VeeamSim>, before: Box<dyn Fn() + Send + Sync>) -> InProcess {
        InProcess {
            router: router(veeam),
            before,
        }
    }
}

#[async_trait::async_trait]
impl crate::veeam::client::LocalTransport for InProcess {
    async fn send(
        &self,
        request: reqwest::Request,
    ) -> Result<(StatusCode, Vec<u8>), Box<dyn std::error::Error + Send + Sync>> {
        (self.before)();
        let mut builder = axum::http::Request::builder()
            .method(request.method().clone())
            .uri(request.url().as_str());
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        let body = request
            .body()
            .and_then(|b| b.as_bytes())
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let req = builder.body(axum::body::Body::from(body))?;
        let response = tower::ServiceExt::oneshot(self.router.clone(), req).await?;
        let status = response.status();
        // One byte over the client's bound is enough for it to refuse the answer.
        let limit = crate::veeam::client::MAX_BODY_BYTES.saturating_add(1);
        let bytes = axum::body::to_bytes(response.into_body(), limit).await?;
        Ok((status, bytes.to_vec()))
    }
}

/// Serves `veeam` over plain HTTP on a loopback `listen` address (tests and local demos).
pub async fn start_server(
    veeam: Arc<VeeamSim>,
    listen: SocketAddr,
) -> anyhow::Result<VeeamServerHandle> {
    if !listen.ip().is_loopback() {
        anyhow::bail!("the Veeam simulator serves plain HTTP on loopback addresses only");
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(veeam);
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("Veeam simulator: {e:#}");
        }
    });
    Ok(VeeamServerHandle {
        addr,
        shutdown: Some(tx),
        task,
    })
}
