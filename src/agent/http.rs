//! The agent's HTTP API on `[agent] listen`: `/api/v1/status`, `/healthz`, `/readyz`.
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

use super::status::StatusBoard;

/// The router over a status board.
pub fn router(board: Arc<StatusBoard>) -> Router {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(board)
}

async fn status(State(board): State<Arc<StatusBoard>>) -> Response {
    Json(board.get()).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(board): State<Arc<StatusBoard>>) -> Response {
    if board.ready() {
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
    board: Arc<StatusBoard>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, router(board))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!("HTTP API stopped: {e}");
    }
}
