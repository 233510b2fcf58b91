//! The agent's HTTP API on `[agent] listen`: `/api/v1/status`, `/api/v1/plan?hours=N`,
//! `/metrics`, `/healthz`, `/readyz`, and `POST /-/reload`.
//!
//! Mutating endpoints (`/-/reload`) answer loopback callers only, unless `[agent] token_file` is
//! set: then every caller must send `Authorization: Bearer <token>` (401 otherwise). Nothing
//! about the policy's secrets is ever served: the status holds names, times and ONTAP messages;
//! the plan holds volumes, windows and instants; the token is never echoed.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot};

use super::clock::Clock;
use super::metrics::Metrics;
use super::status::StatusBoard;
use crate::config::Policy;
use crate::domain::inventory::Observed;
use crate::domain::limits::HORIZON_MAX;
use crate::planner;

/// `/api/v1/plan` without `hours`.
const DEFAULT_PLAN_HOURS: i64 = 24;

/// A reload asked for over HTTP: the answer is what the reload did (`Ok`) or why it changed
/// nothing (`Err`).
pub type ReloadRequest = oneshot::Sender<Result<String, String>>;

/// What `/api/v1/plan` plans from: the running policy and the last listings, as of the last pass.
pub struct PlanBoard {
    clock: Arc<dyn Clock>,
    inputs: RwLock<Option<(Arc<Policy>, Arc<Observed>)>>,
}

impl PlanBoard {
    pub fn new(clock: Arc<dyn Clock>) -> PlanBoard {
        PlanBoard {
            clock,
            inputs: RwLock::new(None),
        }
    }

    pub fn set(&self, policy: Arc<Policy>, observed: Arc<Observed>) {
        *self.inputs.write().unwrap_or_else(|e| e.into_inner()) = Some((policy, observed));
    }

    fn get(&self) -> Option<(Arc<Policy>, Arc<Observed>)> {
        self.inputs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What the API serves.
#[derive(Clone)]
pub struct Api {
    pub board: Arc<StatusBoard>,
    pub metrics: Arc<Metrics>,
    pub plan: Arc<PlanBoard>,
    /// Where `POST /-/reload` asks for a reload; `None`: reload is not available.
    pub reload: Option<mpsc::UnboundedSender<ReloadRequest>>,
    /// The bearer token of the mutating endpoints (`[agent] token_file`).
    pub token: Option<Arc<str>>,
}

/// The router over the agent's status, plan and metrics.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/plan", get(plan))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/-/reload", post(reload))
        .with_state(api)
}

async fn status(State(api): State<Api>) -> Response {
    Json(api.board.get()).into_response()
}

/// The Prometheus text exposition format, version 0.0.4.
async fn metrics(State(api): State<Api>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        api.metrics.render(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(api): State<Api>) -> Response {
    match api.board.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// The `hours` of `/api/v1/plan`'s query: 1 ..= the planner's horizon limit, 24 when absent.
fn plan_hours(query: Option<&str>) -> Result<i64, String> {
    let max = HORIZON_MAX.num_hours();
    let mut hours = DEFAULT_PLAN_HOURS;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "hours" {
            let key: String = key.chars().take(40).collect();
            return Err(format!(
                "unknown query parameter \"{key}\": /api/v1/plan takes hours=N only"
            ));
        }
        hours = match value.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                let value: String = value.chars().take(40).collect();
                return Err(format!(
                    "hours must be a whole number of hours from 1 to {max}, not \"{value}\""
                ));
            }
        };
    }
    Ok(hours)
}

/// The plan from now over `hours`, in the shape of `snapwarden plan --output json`.
async fn plan(State(api): State<Api>, RawQuery(query): RawQuery) -> Response {
    let hours = match plan_hours(query.as_deref()) {
        Ok(h) => h,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let Some((policy, observed)) = api.plan.get() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no plan yet: the agent has not finished its first pass\n",
        )
            .into_response();
    };
    let now = api.plan.clock.now();
    let rendered = tokio::task::spawn_blocking(move || {
        let plan = planner::plan(&policy, &observed, now, chrono::TimeDelta::hours(hours));
        let mut out = Vec::new();
        crate::render::write_plan_json(&mut out, &policy, &plan).map(|()| out)
    })
    .await;
    match rendered {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the plan: {e}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("planning failed: {e}\n"),
        )
            .into_response(),
    }
}

/// Equal without an early exit on the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a mutating request may go on: with a token, the caller must present it (401
/// otherwise); without one, the caller must be on loopback (403 otherwise).
pub fn authorize(
    token: Option<&str>,
    peer: std::net::IpAddr,
    authorization: Option<&str>,
) -> Result<(), (StatusCode, &'static str)> {
    match token {
        Some(token) => {
            let presented = authorization.and_then(|h| h.strip_prefix("Bearer "));
            match presented {
                Some(p) if same_secret(p.trim().as_bytes(), token.as_bytes()) => Ok(()),
                Some(_) => Err((StatusCode::UNAUTHORIZED, "wrong bearer token\n")),
                None => Err((
                    StatusCode::UNAUTHORIZED,
                    "missing bearer token: send Authorization: Bearer <token> ([agent] token_file)\n",
                )),
            }
        }
        None if peer.is_loopback()
            || matches!(peer, std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())) =>
        {
            Ok(())
        }
        None => Err((
            StatusCode::FORBIDDEN,
            "mutating endpoints answer loopback callers only; set [agent] token_file to allow others with a bearer token\n",
        )),
    }
}

async fn reload(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err((code, message)) = authorize(api.token.as_deref(), peer.ip(), authorization) {
        let mut r = (code, message).into_response();
        if code == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        return r;
    }
    let Some(tx) = &api.reload else {
        return (StatusCode::SERVICE_UNAVAILABLE, "reload is not available\n").into_response();
    };
    let (reply, answer) = oneshot::channel();
    if tx.send(reply).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping\n").into_response();
    }
    match answer.await {
        Ok(Ok(what)) => (StatusCode::OK, format!("{what}\n")).into_response(),
        Ok(Err(why)) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{why}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping\n").into_response(),
    }
}

/// Binds `addr`; the error names the address and the setting.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen on {addr} ([agent] listen): {e}; choose a free address or stop the other process")
    })
}

/// Reads `[agent] token_file`: the token is the file's content without surrounding whitespace.
/// The error names the setting and the file, never the content.
pub fn read_token(path: &std::path::Path) -> Result<Arc<str>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the API token file {} ([agent] token_file): {e}",
            path.display()
        )
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!(
            "the API token file {} ([agent] token_file) is empty",
            path.display()
        ));
    }
    Ok(Arc::from(token))
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Api,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let app = router(api).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!("HTTP API stopped: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn plan_hours_are_bounded_and_named_in_the_error() {
        assert_eq!(plan_hours(None), Ok(24));
        assert_eq!(plan_hours(Some("hours=1")), Ok(1));
        assert_eq!(plan_hours(Some("hours=8784")), Ok(8784));
        for bad in [
            "hours=0",
            "hours=8785",
            "hours=-3",
            "hours=1.5",
            "hours=",
            "hours=x",
        ] {
            let e = plan_hours(Some(bad)).unwrap_err();
            assert!(e.contains("from 1 to 8784"), "{bad}: {e}");
        }
        assert!(plan_hours(Some("days=2")).unwrap_err().contains("\"days\""));
    }

    #[test]
    fn mutating_calls_need_loopback_or_the_token() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let far: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(authorize(None, lo, None).is_ok());
        assert!(authorize(None, lo6, None).is_ok());
        assert!(authorize(None, mapped, None).is_ok());
        assert_eq!(
            authorize(None, far, None).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        // With a token, everyone needs it, loopback included.
        let t = Some("s3cret");
        assert!(authorize(t, far, Some("Bearer s3cret")).is_ok());
        for (peer, header) in [
            (far, None),
            (lo, None),
            (far, Some("Bearer wrong")),
            (far, Some("Bearer s3cre")),
            (far, Some("Basic s3cret")),
        ] {
            let (code, message) = authorize(t, peer, header).unwrap_err();
            assert_eq!(code, StatusCode::UNAUTHORIZED, "{header:?}");
            assert!(!message.contains("s3cret"));
        }
    }
}
