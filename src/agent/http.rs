//! The agent's HTTP API on `[agent] listen`: `/api/v1/status`, `/metrics`, `/healthz`,
//! `/readyz`.
//!
//! Read-only for now; nothing about the policy's secrets is ever served (the status holds names,
//! times and ONTAP messages only).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::metrics::Metrics;
use super::status::StatusBoard;

/// What the API serves: the agent's status board and metrics.
#[derive(Clone)]
pub struct Api {
    pub board: Arc<StatusBoard>,
    pub metrics: Arc<Metrics>,
}

/// The router over the agent's status and metrics.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(api)
}

async fn status(State(api): State<Api>) -> Response {
    Json(api.board.get()).into_response()
}

/// The Prometheus text exposition format, version 0.0.4.
async fn metrics(State(api): State<Api>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
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
    if api.board.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: not every cluster was reached yet\n",
        )
            .into_response()
    }
}

/// Binds `addr`; the error names the address and the setting.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen on {addr} ([agent] listen): {e}; choose a free address or stop the other process")
    })
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Api,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!("HTTP API stopped: {e}");
    }
}
