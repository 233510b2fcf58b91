//! The agent's HTTP API through a running `snapwarden run`: `/api/v1/plan?hours=N` (bounded),
//! `POST /-/reload` (loopback only unless a bearer token is configured; 401 on a wrong or
//! missing token), and that no secret is ever served.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

mod process_support;

use process_support::{free_port, http, quiet_policy, run_ready, KillOnDrop};
use snapwarden::agent::clock::SystemClock;
use snapwarden::agent::http::{router, Api, PlanBoard};
use snapwarden::agent::metrics::Metrics;
use snapwarden::agent::status::StatusBoard;

const TOKEN: &str = "tok-5e3f9a1c-never-served";

/// Starts `run` on a simulator policy (a token file when `token`), waits until it is ready.
fn start(dir: &std::path::Path, token: bool) -> (KillOnDrop, u16) {
    let port = free_port();
    let token_line = if token {
        let path = dir.join("api-token");
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
        format!("token_file = \"{}\"", path.display())
    } else {
        String::new()
    };
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, quiet_policy(port, &token_line)).unwrap();
    let agent = run_ready(&policy, &dir.join("state"), port);
    (agent, port)
}

#[test]
fn plan_answers_for_a_bounded_number_of_hours_and_400_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let (_agent, port) = start(dir.path(), false);
    let (code, body) = http(port, "GET", "/api/v1/plan?hours=48", &[]).unwrap();
    assert_eq!(code, 200, "{body}");
    let plan: serde_json::Value = serde_json::from_str(&body).unwrap();
    let from: chrono::DateTime<chrono::Utc> = plan["from"].as_str().unwrap().parse().unwrap();
    let until: chrono::DateTime<chrono::Utc> = plan["until"].as_str().unwrap().parse().unwrap();
    assert_eq!(until - from, chrono::TimeDelta::hours(48));
    let volumes = plan["volumes"].as_array().unwrap();
    assert!(volumes.iter().any(|v| v["volume"] == "vol_a"), "{body}");
    // Without hours: a day.
    let (code, body) = http(port, "GET", "/api/v1/plan", &[]).unwrap();
    assert_eq!(code, 200, "{body}");
    let plan: serde_json::Value = serde_json::from_str(&body).unwrap();
    let from: chrono::DateTime<chrono::Utc> = plan["from"].as_str().unwrap().parse().unwrap();
    let until: chrono::DateTime<chrono::Utc> = plan["until"].as_str().unwrap().parse().unwrap();
    assert_eq!(until - from, chrono::TimeDelta::hours(24));
    for bad in ["hours=0", "hours=8785", "hours=abc", "hours=-1", "days=3"] {
        let (code, body) = http(port, "GET", &format!("/api/v1/plan?{bad}"), &[]).unwrap();
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
    let (code, body) = http(port, "POST", "/-/reload", &[]).unwrap();
    assert_eq!(code, 401, "{body}");
    let (code, body) = http(
        port,
        "POST",
        "/-/reload",
        &["Authorization: Bearer not-the-token"],
    )
    .unwrap();
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains(TOKEN));
    let (code, body) = http(
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
        let (code, body) = http(port, "GET", path, &[]).unwrap();
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
        quiet_policy(free_port(), "token_file = \"missing-token\""),
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
