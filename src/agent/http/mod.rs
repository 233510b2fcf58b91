//! The agent's HTTP API on `[agent] listen`: `/api/v1/status`, `/api/v1/plan?hours=N`,
//! `/metrics`, `/healthz`, `/readyz`, and `POST /-/reload`.
//!
//! Who may ask (`auth`): with `[agent] token_file`, every `/api/v1` endpoint and `/-/reload` need
//! `Authorization: Bearer <token>` (401 otherwise); without it `/api/v1` answers anyone who
//! reaches the address (validation allows an address off loopback without a token only with
//! `listen_without_token = true`) and `/-/reload` loopback callers only. `/metrics`, `/healthz`
//! and `/readyz` are always open: scrapers and probes carry no token.
//!
//! What it costs (`plan`, `server`): a plan is at most a week, streamed in chunks as it is
//! written, two at once (429 beyond); a connection must send a request head within 10 s, at most
//! 64 are served at once, and one whose peer takes no bytes for 30 s is dropped.
//!
//! What it tells: the status holds names, times and ONTAP messages — a cluster's `last_error` may
//! name the environment variable or file its password comes from, never the password; the plan
//! holds volumes, windows and instants; the token and its file's name are never served.

mod auth;
mod plan;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot};

use super::metrics::Metrics;
use super::status::StatusBoard;

pub use auth::{authorize, read_token};
pub use plan::{PlanBoard, PLAN_HOURS_MAX, PLAN_STREAMS_MAX};
pub use server::{bind, serve, serve_with, Limits};

/// A reload asked for over HTTP: the answer is what the reload did (`Ok`) or why it changed
/// nothing (`Err`).
pub type ReloadRequest = oneshot::Sender<Result<String, String>>;

/// What the API serves.
#[derive(Clone)]
pub struct Api {
    pub board: Arc<StatusBoard>,
    pub metrics: Arc<Metrics>,
    pub plan: Arc<PlanBoard>,
    /// Where `POST /-/reload` asks for a reload; `None`: reload is not available.
    pub reload: Option<mpsc::UnboundedSender<ReloadRequest>>,
    /// The bearer token of `/api/v1` and `/-/reload` (`[agent] token_file`).
    pub token: Option<Arc<str>>,
}

/// The router over the agent's status, plan and metrics.
pub fn router(api: Api) -> Router {
    let v1 = Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/plan", get(plan::plan))
        .route_layer(middleware::from_fn_with_state(
            api.clone(),
            auth::require_token,
        ));
    Router::new()
        .merge(v1)
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

async fn reload(
    State(api): State<Api>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(refused) = authorize(api.token.as_deref(), peer.ip(), authorization) {
        return auth::refusal(refused);
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
