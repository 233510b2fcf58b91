//! The agent's HTTP API through a running `snapwarden run`: `/api/v1/plan?hours=N` (bounded),
//! `POST /-/reload` (loopback only unless a bearer token is configured; 401 on a wrong or
//! missing token), and that no secret is ever served.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use snapwarden::agent::clock::SystemClock;
use snapwarden::agent::http::{router, Api, PlanBoard};
use snapwarden::agent::metrics::Metrics;
use snapwarden::agent::status::StatusBoard;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The agent, stopped on drop.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.0 request on loopback: status code and body; `None` while nothing listens.
fn call(port: u16, method: &str, path: &str, headers: &[&str]) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

const TOKEN: &str = "tok-5e3f9a1c-never-served";

/// A simulator policy on `port` with extra `[agent]` lines.
fn policy_text(port: u16, agent_lines: &str) -> String {
    format!(
        r#"
[agent]
listen = "127.0.0.1:{port}"
{agent_lines}

[[cluster]]
name = "lab"
endpoint = "simulator"
timezone = "UTC"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "p"
copies = [{{ schedule = "hourly", count = 6 }}]

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_a"
luns = ["/vol/vol_a/lun0"]
snapshot_policy = "p"

[[window]]
name = "yearly"
volumes = ["lab/svm1/vol_a"]
start = "0 3 29 2 *"
timezone = "UTC"
expected = "10m"
max = "20m"
"#
    )
}

/// Starts `run` on a simulator policy (a token file when `token`), waits until it is ready.
fn start(dir: &std::path::Path, token: bool) -> (Agent, u16) {
    let port = free_port();
    let token_line = if token {
        let path = dir.join("api-token");
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
        format!("token_file = \"{}\"", path.display())
    } else {
        String::new()
    };
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, policy_text(port, &token_line)).unwrap();
    let agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_snapwarden"))
            .args(["run", "--config"])
            .arg(&policy)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let end = Instant::now() + Duration::from_secs(30);
    while call(port, "GET", "/readyz", &[]).is_none_or(|(code, _)| code != 200) {
        assert!(Instant::now() < end, "the agent did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    (agent, port)
}

#[test]
fn plan_answers_for_a_bounded_number_of_hours_and_400_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let (_agent, port) = start(dir.path(), false);
    let (code, body) = call(port, "GET", "/api/v1/plan?hours=48", &[]).unwrap();
    assert_eq!(code, 200, "{body}");
    let plan: serde_json::Value = serde_json::from_str(&body).unwrap();
    let from: chrono::DateTime<chrono::Utc> = plan["from"].as_str().unwrap().parse().unwrap();
    let until: chrono::DateTime<chrono::Utc> = plan["until"].as_str().unwrap().parse().unwrap();
    assert_eq!(until - from, chrono::TimeDelta::hours(48));
    let volumes = plan["volumes"].as_array().unwrap();
    assert!(volumes.iter().any(|v| v["volume"] == "vol_a"), "{body}");
    // Without hours: a day.
    let (code, body) = call(port, "GET", "/api/v1/plan", &[]).unwrap();
    assert_eq!(code, 200, "{body}");
    let plan: serde_json::Value = serde_json::from_str(&body).unwrap();
    let from: chrono::DateTime<chrono::Utc> = plan["from"].as_str().unwrap().parse().unwrap();
    let until: chrono::DateTime<chrono::Utc> = plan["until"].as_str().unwrap().parse().unwrap();
    assert_eq!(until - from, chrono::TimeDelta::hours(24));
    for bad in ["hours=0", "hours=8785", "hours=abc", "hours=-1", "days=3"] {
        let (code, body) = call(port, "GET", &format!("/api/v1/plan?{bad}"), &[]).unwrap();
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(
            body.contains("hours") || body.contains("days"),
            "{bad}: {body}"
        );
    }
}

#[test]
fn with_a_token_every_mutating_caller_needs_it_and_the_token_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let (_agent, port) = start(dir.path(), true);
    let (code, body) = call(port, "POST", "/-/reload", &[]).unwrap();
    assert_eq!(code, 401, "{body}");
    let (code, body) = call(
        port,
        "POST",
        "/-/reload",
        &["Authorization: Bearer not-the-token"],
    )
    .unwrap();
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains(TOKEN));
    let (code, body) = call(
        port,
        "POST",
        "/-/reload",
        &[&format!("Authorization: Bearer {TOKEN}")],
    )
    .unwrap();
    assert!(code != 401 && code != 403, "{code}: {body}");
    // Reading is open, and no answer carries the token or its file's name.
    for path in [
        "/api/v1/status",
        "/api/v1/plan?hours=24",
        "/metrics",
        "/readyz",
    ] {
        let (code, body) = call(port, "GET", path, &[]).unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        assert!(!body.contains(TOKEN), "{path}: {body}");
        assert!(!body.contains("api-token"), "{path}: {body}");
    }
}

/// The router served with every caller seen as `peer`.
async fn serve_as(peer: SocketAddr, token: Option<&str>) -> String {
    let api = Api {
        board: Arc::new(StatusBoard::default()),
        metrics: Arc::new(Metrics::new()),
        plan: Arc::new(PlanBoard::new(Arc::new(SystemClock))),
        reload: None,
        token: token.map(Arc::from),
    };
    let app = router(api).layer(axum::extract::connect_info::MockConnectInfo(peer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[tokio::test]
async fn without_a_token_a_caller_off_loopback_is_refused_and_reading_stays_open() {
    let http = reqwest::Client::new();
    let far: SocketAddr = "10.20.30.40:5555".parse().unwrap();
    let url = serve_as(far, None).await;
    let r = http.post(format!("{url}/-/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("token_file"), "{body}");
    let r = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Before the first pass there is nothing to plan from: said, not an empty plan.
    let r = http.get(format!("{url}/api/v1/plan")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);

    // With a token the same caller gets through with it, and 401 without.
    let url = serve_as(far, Some("s3cret")).await;
    let r = http.post(format!("{url}/-/reload")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap(),
        "Bearer"
    );
    let r = http
        .post(format!("{url}/-/reload"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    assert!(code != 401 && code != 403, "{code}");

    // Loopback without a token gets through.
    let url = serve_as("127.0.0.1:5555".parse().unwrap(), None).await;
    let r = http.post(format!("{url}/-/reload")).send().await.unwrap();
    let code = r.status().as_u16();
    assert!(code != 401 && code != 403, "{code}");
}

#[test]
fn a_token_file_that_cannot_be_read_stops_the_start_and_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        policy_text(free_port(), "token_file = \"missing-token\""),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_snapwarden"))
        .args(["run", "--config"])
        .arg(&policy)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("[agent] token_file") && err.contains("missing-token"),
        "{err}"
    );
}
