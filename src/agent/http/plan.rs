//! `GET /api/v1/plan?hours=N`: the plan from now, streamed as `plan --output json` writes it,
//! at most [`PLAN_HOURS_MAX`] hours and [`PLAN_STREAMS_MAX`] answers at once.
//!
//! Memory is bounded per answer: the planner's `Plan` for the horizon, plus [`CHUNK_BYTES`] being
//! written and [`CHUNKS_QUEUED`] chunks waiting for the connection. The JSON is written on a
//! blocking thread into a bounded channel that the response body reads; a slow reader makes the
//! writer wait, a reader that leaves makes it stop.

use std::io::Write;
use std::sync::{Arc, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::Api;
use crate::agent::clock::Clock;
use crate::config::Policy;
use crate::domain::inventory::Observed;
use crate::planner;

/// `/api/v1/plan` without `hours`.
const DEFAULT_PLAN_HOURS: i64 = 24;

/// The longest plan the API answers: a week. It shows every daily and weekly schedule and
/// window at least once, as `check`'s default horizon does; a longer look (a monthly schedule,
/// a year) is `snapwarden plan --hours N`, which plans offline and costs the agent nothing. A
/// week of 10,000 volumes is about 480 MB of JSON (docs/performance.md), which the stream bounds
/// in memory but not in time; a year was 52 times that.
pub const PLAN_HOURS_MAX: i64 = 24 * 7;

/// Plan answers in flight at once; more are answered 429. Each holds a `Plan` and a blocking
/// thread that writes it (CPU-bound for up to a second on 10,000 volumes), and the agent's own
/// passes need the same cores: two lets a dashboard and an operator ask together.
pub const PLAN_STREAMS_MAX: usize = 2;

/// `Retry-After` of a 429: about what a week's plan of 10,000 volumes takes to plan and send on
/// loopback (docs/performance.md), so a retry usually finds a free slot.
const RETRY_AFTER_SECONDS: u32 = 5;

/// Bytes of JSON sent to the connection at a time: the CLI's own output buffer size.
const CHUNK_BYTES: usize = 64 * 1024;

/// Chunks written ahead of the connection: enough to keep a fast reader busy while the next is
/// written, few enough that an answer holds at most `(CHUNKS_QUEUED + 1) * CHUNK_BYTES` of JSON.
const CHUNKS_QUEUED: usize = 4;

/// What `/api/v1/plan` plans from: the running policy and the last listings, as of the last pass;
/// and the slots of the answers in flight.
pub struct PlanBoard {
    clock: Arc<dyn Clock>,
    inputs: RwLock<Option<(Arc<Policy>, Arc<Observed>)>>,
    streams: Arc<Semaphore>,
}

impl PlanBoard {
    pub fn new(clock: Arc<dyn Clock>) -> PlanBoard {
        PlanBoard {
            clock,
            inputs: RwLock::new(None),
            streams: Arc::new(Semaphore::new(PLAN_STREAMS_MAX)),
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

/// The `hours` of `/api/v1/plan`'s query: 1 ..= [`PLAN_HOURS_MAX`], 24 when absent.
fn plan_hours(query: Option<&str>) -> Result<i64, String> {
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
            Ok(n) if (1..=PLAN_HOURS_MAX).contains(&n) => n,
            _ => {
                let value: String = value.chars().take(40).collect();
                return Err(format!(
                    "hours must be a whole number of hours from 1 to {PLAN_HOURS_MAX} (a week), \
                     not \"{value}\"; for longer, run `snapwarden plan POLICY --hours N`"
                ));
            }
        };
    }
    Ok(hours)
}

/// The plan from now over `hours`, in the shape of `snapwarden plan --output json`, streamed.
pub async fn plan(State(api): State<Api>, RawQuery(query): RawQuery) -> Response {
    let hours = match plan_hours(query.as_deref()) {
        Ok(h) => h,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let Ok(slot) = api.plan.streams.clone().try_acquire_owned() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, RETRY_AFTER_SECONDS.to_string())],
            format!(
                "at most {PLAN_STREAMS_MAX} plans are answered at once; retry in \
                 {RETRY_AFTER_SECONDS} s\n"
            ),
        )
            .into_response();
    };
    let Some((policy, observed)) = api.plan.get() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no plan yet: the agent has not finished its first pass\n",
        )
            .into_response();
    };
    let now = api.plan.clock.now();
    let (chunks, received) = mpsc::channel(CHUNKS_QUEUED);
    let (planned, placed) = oneshot::channel();
    // The slot goes with the thread: it is taken while a plan is made or written, even when the
    // client that asked has left (the thread then stops at its next chunk).
    let writer = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let plan = planner::plan(&policy, &observed, now, chrono::TimeDelta::hours(hours));
        if planned.send(()).is_err() {
            return Ok(());
        }
        let mut out = Chunks::new(chunks);
        crate::render::write_plan_json(&mut out, &policy, &plan)?;
        out.flush()
    });
    // Planning is where this can fail; once it has not, the answer is a 200 and a stream.
    if placed.await.is_err() {
        let why = match writer.await {
            Err(e) => e.to_string(),
            Ok(_) => "the planner stopped".to_string(),
        };
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("planning failed: {why}\n"),
        )
            .into_response();
    }
    let body = Body::from_stream(futures_util::stream::unfold(
        Stream {
            received,
            writer: Some(writer),
        },
        Stream::next,
    ));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The body of one plan answer: the chunks as they come, then how the writer ended.
struct Stream {
    received: mpsc::Receiver<Bytes>,
    writer: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Stream {
    /// The next chunk; after the last, an error if the writer failed (the connection is then
    /// aborted, so a client never takes a cut-off document for a whole one).
    async fn next(mut self) -> Option<(std::io::Result<Bytes>, Stream)> {
        if let Some(chunk) = self.received.recv().await {
            return Some((Ok(chunk), self));
        }
        let failed = match self.writer.take()?.await {
            Ok(Ok(())) => return None,
            Ok(Err(e)) => e,
            Err(e) => std::io::Error::other(format!("the plan writer stopped: {e}")),
        };
        tracing::warn!("GET /api/v1/plan: the answer was cut off: {failed}");
        Some((Err(failed), self))
    }
}

/// A `Write` that sends what is written as [`CHUNK_BYTES`]-sized chunks into the answer's
/// channel, waiting while [`CHUNKS_QUEUED`] are queued. Runs on a blocking thread.
struct Chunks {
    buf: Vec<u8>,
    out: mpsc::Sender<Bytes>,
}

impl Chunks {
    fn new(out: mpsc::Sender<Bytes>) -> Chunks {
        Chunks {
            buf: Vec::with_capacity(CHUNK_BYTES),
            out,
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.out.blocking_send(Bytes::from(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client is gone before the end of the plan",
            )
        })
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_hours_are_bounded_to_a_week_and_named_in_the_error() {
        assert_eq!(plan_hours(None), Ok(24));
        assert_eq!(plan_hours(Some("hours=1")), Ok(1));
        assert_eq!(plan_hours(Some("hours=168")), Ok(168));
        for bad in [
            "hours=0",
            "hours=169",
            "hours=8784",
            "hours=-3",
            "hours=1.5",
            "hours=",
            "hours=x",
        ] {
            let e = plan_hours(Some(bad)).unwrap_err();
            assert!(e.contains("from 1 to 168 (a week)"), "{bad}: {e}");
        }
        assert!(plan_hours(Some("days=2")).unwrap_err().contains("\"days\""));
    }

    #[test]
    fn chunks_are_bounded_and_end_with_the_rest() {
        let (tx, mut rx) = mpsc::channel(CHUNKS_QUEUED + 2);
        let mut out = Chunks::new(tx);
        let data = vec![b'x'; CHUNK_BYTES * 2 + 10];
        for piece in data.chunks(1000) {
            out.write_all(piece).unwrap();
        }
        out.flush().unwrap();
        drop(out);
        let mut sizes = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            sizes.push(chunk.len());
        }
        // Chunks are cut at the first write past the size, so at most one write longer.
        assert_eq!(sizes.iter().sum::<usize>(), data.len());
        assert!(sizes.iter().all(|&n| n < CHUNK_BYTES + 1000), "{sizes:?}");
        // 66 writes fill the first chunk; the rest is sent by the flush.
        assert_eq!(sizes, [66_000, data.len() - 66_000]);
    }

    #[test]
    fn a_writer_whose_reader_left_stops() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut out = Chunks::new(tx);
        let e = out.write_all(&vec![0u8; CHUNK_BYTES]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
