//! The agent's HTTP server against slow and many clients, on loopback: through a running
//! `snapwarden run` with its documented bounds (a request head within 10 s of the connection
//! opening or of the previous answer, so half-sent requests and idle keep-alive connections are
//! closed; at most 64 connections at once, more closed at once), and in process with short bounds
//! (a client that takes none of a plan's bytes is dropped and its plan slot freed).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod process_support;

use process_support::{free_port, http, quiet_policy, run_ready, KillOnDrop};
use snapwarden::agent::clock::SystemClock;
use snapwarden::agent::http::{serve_with, Api, Limits, PlanBoard};
use snapwarden::agent::metrics::Metrics;
use snapwarden::agent::status::StatusBoard;

/// `[agent]`'s documented bounds (docs/agent.md, "HTTP API").
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 64;

fn start(dir: &std::path::Path) -> (KillOnDrop, u16) {
    let port = free_port();
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, quiet_policy(port, "")).unwrap();
    (run_ready(&policy, &dir.join("state"), port), port)
}

fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).unwrap()
}

/// Reads (and discards) until the server closes `s`; fails the test if it is still open at
/// `deadline`.
fn closed_by(s: &mut TcpStream, deadline: Instant, what: &str) {
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{what}: still open");
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("{what}: still open ({e})"),
        }
    }
}

#[test]
fn half_sent_requests_and_idle_connections_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (_agent, port) = start(dir.path());
    let opened = Instant::now();
    // Twenty requests whose head never ends, and a connection that sends nothing.
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|i| {
            let mut s = connect(port);
            write!(
                s,
                "GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-{i}: "
            )
            .unwrap();
            s
        })
        .collect();
    slow.push(connect(port));
    // A keep-alive connection that asked once and then stays silent.
    let mut kept = connect(port);
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(kept.try_clone().unwrap());
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(n) = line.strip_prefix("content-length: ") {
            length = Some(n.parse::<usize>().unwrap());
        }
    }
    let mut body = vec![0u8; length.expect("a sized answer")];
    reader.read_exact(&mut body).unwrap();
    assert_eq!(body, b"ok\n");
    let answered = Instant::now();
    // Meanwhile others are served.
    let (code, _) = http(port, "GET", "/healthz", &[]).unwrap();
    assert_eq!(code, 200);

    // All are closed by the server, not before the timeout and not long after it.
    let deadline = opened + HEADER_TIMEOUT + Duration::from_secs(5);
    for (i, s) in slow.iter_mut().enumerate() {
        closed_by(s, deadline, &format!("slow connection {i}"));
    }
    assert!(opened.elapsed() >= HEADER_TIMEOUT - Duration::from_secs(1));
    closed_by(
        &mut kept,
        answered + HEADER_TIMEOUT + Duration::from_secs(5),
        "idle keep-alive connection",
    );
    assert!(answered.elapsed() >= HEADER_TIMEOUT - Duration::from_secs(1));
}

#[test]
fn connections_beyond_the_limit_are_closed_at_once_and_served_again_when_one_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (_agent, port) = start(dir.path());
    let held: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| connect(port)).collect();
    // One more is closed at once: well before the header timeout would close it.
    let mut extra = connect(port);
    closed_by(
        &mut extra,
        Instant::now() + HEADER_TIMEOUT / 2,
        "a connection beyond the limit",
    );
    drop(held);
    let end = Instant::now() + Duration::from_secs(10);
    while http(port, "GET", "/healthz", &[]).is_none_or(|(code, _)| code != 200) {
        assert!(Instant::now() < end, "served again once connections ended");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A policy whose week-long plan is about 47 MB of JSON (far more than loopback buffers).
fn busy_policy() -> snapwarden::config::Policy {
    let mut text = quiet_policy(9464, "").replace("cron = \"5 * * * *\"", "cron = \"*/2 * * * *\"");
    for i in 0..40 {
        text.push_str(&format!(
            "\n[[volume]]\ncluster = \"lab\"\nsvm = \"svm1\"\nname = \"vol_busy{i}\"\n\
             luns = [\"/vol/vol_busy{i}/lun0\"]\nsnapshot_policy = \"p\"\n"
        ));
    }
    snapwarden::config::parse_str(&text, std::path::Path::new("busy.toml")).expect("valid")
}

/// The status code of a plan request on `port` whose answer is then left unread.
async fn plan_unread(port: u16) -> (u16, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /api/v1/plan?hours=168 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    s.read_exact(&mut first).await.unwrap();
    let code = std::str::from_utf8(&first[9..12]).unwrap().parse().unwrap();
    (code, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_takes_none_of_a_plan_is_dropped_and_its_slot_freed() {
    let plan = Arc::new(PlanBoard::new(Arc::new(SystemClock)));
    plan.set(Arc::new(busy_policy()), Arc::default());
    let api = Api {
        board: Arc::new(StatusBoard::default()),
        metrics: Arc::new(Metrics::new()),
        plan,
        reload: None,
        token: None,
    };
    let limits = Limits {
        write_stall: Duration::from_secs(1),
        ..Limits::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve_with(listener, api, limits, std::future::pending()));

    // Both plan slots taken by readers that read nothing more: a third is refused…
    let (a, _held_a) = plan_unread(port).await;
    let (b, _held_b) = plan_unread(port).await;
    assert_eq!((a, b), (200, 200));
    let (c, _) = plan_unread(port).await;
    assert_eq!(c, 429);
    // …until the stalled answers are dropped, a second after the connections stop taking bytes.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _) = plan_unread(port).await;
        if code == 200 {
            break;
        }
        assert_eq!(code, 429);
        assert!(
            Instant::now() < end,
            "the stalled plans still hold their slots"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
