//! The API's server loop: HTTP/1 connections on the listener, each bounded in how long it may
//! take to ask and to be answered, and bounded in number.
//!
//! axum's own `serve` sets no header read timeout and takes every connection, so a client that
//! never finishes its request, or many of them, holds the agent's sockets and memory for good.
//! Here (see [`Limits`]): hyper's header read timeout also runs from the end of an answer to the
//! next request's head, so it closes idle keep-alive connections too; a connection whose peer
//! takes none of an answer's bytes for a while is dropped (a reader that never reads would hold a
//! plan slot for good); and a connection beyond the limit is closed as soon as it is accepted.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::{router, Api};

/// How the server bounds its connections. [`Limits::default`] holds the documented values
/// (docs/agent.md, "HTTP API").
#[derive(Debug, Clone)]
pub struct Limits {
    /// A request head must be complete this long after the connection opened or after the
    /// previous answer was sent; otherwise the connection is closed.
    pub header_timeout: Duration,
    /// A connection whose peer takes none of an answer's bytes for this long is dropped.
    pub write_stall: Duration,
    /// Connections served at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// At shutdown, how long answers in flight get to finish.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            // A request to this API is one short head (no body but /-/reload's, which is empty):
            // any client sends it in well under a second. Ten seconds is Prometheus' default
            // scrape timeout, so the slowest legitimate asker fits; idle keep-alive connections
            // (Prometheus keeps one between scrapes) are reopened at the next request.
            header_timeout: Duration::from_secs(10),
            // A reader that has taken nothing for 30 s is not reading: a week's plan of 10,000
            // volumes is sent in seconds (docs/performance.md).
            write_stall: Duration::from_secs(30),
            // Who connects: one or two Prometheus servers, the kubelet's or systemd's probes,
            // operators' `status` and dashboards. 64 leaves room for all of them many times over
            // while bounding the sockets and buffers a flood of connections can hold.
            max_connections: 64,
            // As long as the agent's other shutdown steps take, not the answers' full length.
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Binds `addr`; the error names the address and the setting.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen on {addr} ([agent] listen): {e}; choose a free address or stop the other process")
    })
}

/// Serves with the documented [`Limits`] until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    api: Api,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_with(listener, api, Limits::default(), shutdown).await;
}

/// How long the accept loop waits after `accept` failed (out of file descriptors, most often)
/// before it tries again: long enough not to spin, short enough to go on once a socket closed.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Serves until `shutdown` resolves, then lets the answers in flight finish for
/// `limits.shutdown_grace` and drops what is left.
pub async fn serve_with(
    listener: TcpListener,
    api: Api,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = router(api);
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut full = false;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("HTTP API: cannot accept a connection: {e}");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        if connections.len() >= limits.max_connections {
            if !full {
                tracing::warn!(
                    limit = limits.max_connections,
                    "HTTP API: connection limit reached; new connections are closed until one ends"
                );
                full = true;
            }
            drop(stream);
            continue;
        }
        full = false;
        connections.spawn(connection(
            stream,
            peer,
            app.clone(),
            limits.clone(),
            closed.clone(),
        ));
    }
    let _ = closing.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            connections = connections.len(),
            "HTTP API: stopped with answers still in flight"
        );
    }
}

/// One connection, HTTP/1, until it ends or the server stops (then it ends once the answer in
/// flight is sent).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    mut closing: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    });
    let io = TokioIo::new(StallLimit::new(stream, limits.write_stall));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        // The server sets it once, to true, after the last connection was spawned; a server gone
        // (the sender dropped) means the same.
        _ = closing.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, "HTTP API: connection ended: {e}");
    }
}

/// A stream whose writes fail (`TimedOut`) once the peer has taken no bytes for `limit`.
struct StallLimit {
    inner: TcpStream,
    limit: Duration,
    /// Runs while a write waits for the peer.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl StallLimit {
    fn new(inner: TcpStream, limit: Duration) -> StallLimit {
        StallLimit {
            inner,
            limit,
            stalled: None,
        }
    }

    /// What a write that made progress answers (and the stall ends), or, while it waits, an
    /// error once it waited `limit`.
    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if stalled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the peer took no bytes for {} s", limit.as_secs()),
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for StallLimit {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallLimit {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
