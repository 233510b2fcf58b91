//! The agent's HTTP API through a running `snapwarden run`: `/api/v1/plan?hours=N` (bounded to a
//! week, streamed, at most two at once, 429 beyond), the bearer token on every `/api/v1` endpoint
//! and on `POST /-/reload` (any case of the scheme name), the open probes and metrics, a listen
//! address off loopback only with a token or an explicit opt-in, and what the status may say about
//! secrets (a variable's or a file's name, never a password or the token).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod process_support;

use process_support::{
    free_port, http, quiet_policy, run_ready, KillOnDrop, TlsSimulator, MINIMAL_WORLD,
};
use snapwarden::agent::clock::SystemClock;
use snapwarden::agent::http::{router, Api, PlanBoard};
use snapwarden::agent::metrics::Metrics;
use snapwarden::agent::status::StatusBoard;

const TOKEN: &str = "tok-5e3f9a1c-never-served";

/// The longest plan the API answers, in hours (docs/agent.md, "HTTP API").
const PLAN_HOURS_MAX: i64 = 168;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snapwarden"));
    c.stdin(Stdio::null());
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes the API token file into `dir`: its `token_file` line.
fn token_line(dir: &Path) -> String {
    let path = dir.join("api-token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    format!("token_file = \"{}\"", path.display())
}

/// Starts `run` on a simulator policy (a token file when `token`), waits until it is ready.
fn start(dir: &Path, token: bool) -> (KillOnDrop, u16) {
    let port = free_port();
    let agent_lines = if token {
        token_line(dir)
    } else {
        String::new()
    };
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, quiet_policy(port, &agent_lines)).unwrap();
    let agent = run_ready(&policy, &dir.join("state"), port);
    (agent, port)
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

#[test]
fn plan_answers_for_at_most_a_week_and_400_otherwise() {
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
    // A year was the bound once; the API's is a week, and the answer says so and why.
    for bad in [
        "hours=169",
        "hours=8784",
        "hours=0",
        "hours=abc",
        "hours=-1",
    ] {
        let (code, body) = http(port, "GET", &format!("/api/v1/plan?{bad}"), &[]).unwrap();
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body.contains("from 1 to 168"), "{bad}: {body}");
    }
    let (code, body) = http(port, "GET", "/api/v1/plan?hours=8784", &[]).unwrap();
    assert_eq!(code, 400);
    assert!(body.contains("snapwarden plan"), "{body}");
    let (code, body) = http(port, "GET", "/api/v1/plan?days=3", &[]).unwrap();
    assert_eq!(code, 400);
    assert!(body.contains("\"days\""), "{body}");
}

/// [`quiet_policy`] with `volumes` volumes under a snapshot every two minutes: a week's plan of
/// 40 of them is about 47 MB of JSON, far more than a loopback connection buffers, so an answer
/// nobody reads stays in flight.
fn busy_policy(port: u16, volumes: usize) -> String {
    let mut text = quiet_policy(port, "").replace("cron = \"5 * * * *\"", "cron = \"*/2 * * * *\"");
    for i in 0..volumes {
        text.push_str(&format!(
            "\n[[volume]]\ncluster = \"lab\"\nsvm = \"svm1\"\nname = \"vol_busy{i}\"\n\
             luns = [\"/vol/vol_busy{i}/lun0\"]\nsnapshot_policy = \"p\"\n"
        ));
    }
    text
}

/// An HTTP/1.0 request whose answer is read up to the end of its head: the status code, the
/// head's lines, and the connection, positioned at the body (close-delimited: HTTP/1.0).
fn open(port: u16, path: &str, headers: &[&str]) -> (u16, Vec<String>, BufReader<TcpStream>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for h in headers {
        req.push_str(&format!("{h}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let code = head[0].split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, head, reader)
}

/// What the test checks of a streamed plan; serde reads the rest of the document through
/// (validating it) without keeping it.
#[derive(serde::Deserialize)]
struct PlanHead {
    from: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
    volumes: Vec<VolumeHead>,
}

#[derive(serde::Deserialize)]
struct VolumeHead {
    volume: String,
    scheduled_snapshots: Vec<serde::de::IgnoredAny>,
}

#[test]
fn the_longest_plan_streams_as_complete_json_and_a_third_at_once_is_429() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, busy_policy(port, 40)).unwrap();
    let _agent = run_ready(&policy, &dir.path().join("state"), port);
    let longest = format!("/api/v1/plan?hours={PLAN_HOURS_MAX}");

    // Two answers begun and not read: both are in flight.
    let (code_a, head_a, body_a) = open(port, &longest, &[]);
    let (code_b, _, body_b) = open(port, &longest, &[]);
    assert_eq!((code_a, code_b), (200, 200), "{head_a:?}");
    assert!(
        head_a
            .iter()
            .any(|h| h.eq_ignore_ascii_case("content-type: application/json")),
        "{head_a:?}"
    );
    assert!(
        !head_a
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("content-length")),
        "streamed, not built first: {head_a:?}"
    );
    // A third at once is refused, with when to come back.
    let (code, head, mut rest) = open(port, &longest, &[]);
    let mut body = String::new();
    rest.read_to_string(&mut body).unwrap();
    assert_eq!(code, 429, "{head:?} {body}");
    assert!(
        head.iter()
            .any(|h| h.to_ascii_lowercase().starts_with("retry-after: ")),
        "{head:?}"
    );
    assert!(body.contains("at most 2"), "{body}");

    // Each begun answer is the whole plan, read as it comes.
    for reader in [body_a, body_b] {
        let plan: PlanHead = serde_json::from_reader(reader).expect("complete JSON");
        assert_eq!(
            plan.until - plan.from,
            chrono::TimeDelta::hours(PLAN_HOURS_MAX)
        );
        assert_eq!(plan.volumes.len(), 42);
        let busy = plan
            .volumes
            .iter()
            .find(|v| v.volume == "vol_busy0")
            .unwrap();
        // A snapshot every two minutes for a week (one more when `from` falls on one).
        let week = (PLAN_HOURS_MAX * 30) as usize;
        let taken = busy.scheduled_snapshots.len();
        assert!((week..=week + 1).contains(&taken), "{taken}");
    }
    // Both done: the slots are free again.
    let (code, _, _) = open(port, "/api/v1/plan?hours=1", &[]);
    assert_eq!(code, 200);
}

#[test]
fn with_a_token_every_api_v1_caller_needs_it_and_probes_and_metrics_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let (_agent, port) = start(dir.path(), true);
    for path in ["/api/v1/status", "/api/v1/plan?hours=24"] {
        let (code, body) = http(port, "GET", path, &[]).unwrap();
        assert_eq!(code, 401, "{path}: {body}");
        assert!(body.contains("token_file"), "{path}: {body}");
        let (code, body) = http(port, "GET", path, &[&bearer("not-the-token")]).unwrap();
        assert_eq!(code, 401, "{path}: {body}");
        assert!(!body.contains(TOKEN));
        let (code, body) = http(port, "GET", path, &[&bearer(TOKEN)]).unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        assert!(!body.contains(TOKEN), "{path}: {body}");
        assert!(!body.contains("api-token"), "{path}: {body}");
    }
    // A wrong `hours` is not told to a caller without the token either.
    let (code, _) = http(port, "GET", "/api/v1/plan?hours=0", &[]).unwrap();
    assert_eq!(code, 401);
    // Probes and scrapers need no token, and no answer carries it or its file's name.
    for path in ["/metrics", "/healthz", "/readyz"] {
        let (code, body) = http(port, "GET", path, &[]).unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        assert!(!body.contains(TOKEN), "{path}: {body}");
        assert!(!body.contains("api-token"), "{path}: {body}");
    }
    // The mutating endpoint, as before: the token from everyone, loopback included.
    let (code, body) = http(port, "POST", "/-/reload", &[]).unwrap();
    assert_eq!(code, 401, "{body}");
    let (code, body) = http(port, "POST", "/-/reload", &[&bearer("not-the-token")]).unwrap();
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains(TOKEN));
    let (code, body) = http(port, "POST", "/-/reload", &[&bearer(TOKEN)]).unwrap();
    assert!(code != 401 && code != 403, "{code}: {body}");
}

#[test]
fn the_bearer_scheme_name_is_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let (_agent, port) = start(dir.path(), true);
    for scheme in ["bearer", "BEARER", "bEaReR", "Bearer"] {
        let header = format!("Authorization: {scheme} {TOKEN}");
        let (code, body) = http(port, "GET", "/api/v1/status", &[&header]).unwrap();
        assert_eq!(code, 200, "{scheme}: {body}");
        let (code, body) = http(port, "POST", "/-/reload", &[&header]).unwrap();
        assert!(code != 401 && code != 403, "{scheme}: {code}: {body}");
    }
    // Another scheme with the token's value is still no bearer token.
    let header = format!("Authorization: Basic {TOKEN}");
    let (code, _) = http(port, "GET", "/api/v1/status", &[&header]).unwrap();
    assert_eq!(code, 401);
}

#[test]
fn status_sends_the_policys_token_or_the_one_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let (_agent, port) = start(dir.path(), true);
    let policy = dir.path().join("policy.toml");
    let o = bin()
        .args(["status", "--output", "json", "--config"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(status["clusters"].is_array());
    // By URL, the token file is an option; without it the error says how to give one.
    let url = format!("http://127.0.0.1:{port}");
    let o = bin().args(["status", "--url", &url]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("401") && err.contains("--token-file"), "{err}");
    assert!(!err.contains(TOKEN), "{err}");
    let o = bin()
        .args(["status", "--url", &url, "--token-file"])
        .arg(dir.path().join("api-token"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
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
    let r = http
        .get(format!("{url}/api/v1/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap(),
        "Bearer"
    );

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
    let o = bin()
        .args(["run", "--config"])
        .arg(&policy)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("[agent] token_file") && err.contains("missing-token"),
        "{err}"
    );
}

/// `run` on `policy`: the exit code and stderr if it stops within 30 s, `None` if it still runs
/// then (it is killed).
fn run_briefly(policy: &Path, state: &Path) -> Option<(Option<i32>, String)> {
    let mut child = KillOnDrop(
        bin()
            .args(["run", "--config"])
            .arg(policy)
            .arg("--state-dir")
            .arg(state)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Some((status.code(), err));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn a_listen_address_off_loopback_needs_a_token_or_an_explicit_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let open_to_all = |extra: &str| {
        quiet_policy(port, extra).replace(
            &format!("listen = \"127.0.0.1:{port}\""),
            &format!("listen = \"0.0.0.0:{port}\""),
        )
    };
    let policy = dir.path().join("open.toml");
    std::fs::write(&policy, open_to_all("")).unwrap();
    let (code, err) =
        run_briefly(&policy, &dir.path().join("state")).expect("run refuses to start");
    assert_eq!(code, Some(2), "{err}");
    // Located like every policy error, naming the setting and both ways out.
    assert!(err.contains("open.toml:3:"), "{err}");
    for needle in [
        "`listen`",
        "0.0.0.0",
        "token_file",
        "listen_without_token = true",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // `check` says the same.
    let o = bin().arg("check").arg(&policy).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("listen_without_token"),
        "{}",
        stderr(&o)
    );

    // Said on purpose: it starts, and /api/v1 answers without a token.
    std::fs::write(&policy, open_to_all("listen_without_token = true")).unwrap();
    let agent = run_ready(&policy, &dir.path().join("state"), port);
    let (code, body) = http(port, "GET", "/api/v1/status", &[]).unwrap();
    assert_eq!(code, 200, "{body}");
    drop(agent);

    // With a token it starts too, and the token is asked for.
    std::fs::write(&policy, open_to_all(&token_line(dir.path()))).unwrap();
    let _agent = run_ready(&policy, &dir.path().join("state"), port);
    let (code, _) = http(port, "GET", "/api/v1/status", &[]).unwrap();
    assert_eq!(code, 401);
}

#[test]
fn status_names_a_password_variable_or_file_but_never_a_password_or_the_token() {
    const FILE_CONTENT: &str = "wrong-pw-in-file-4b1d";
    const ENV_VALUE: &str = "wrong-pw-in-env-9c2e";
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.toml");
    std::fs::write(&world, MINIMAL_WORLD).unwrap();
    let sim = TlsSimulator::start(&world, &[], Stdio::null());
    let url = sim.cluster("prod-a");
    let password_file = dir.path().join("prod-a.pass");
    std::fs::write(&password_file, format!("{FILE_CONTENT}\n")).unwrap();
    let cluster = |name: &str, secret: &str| {
        format!(
            "\n[[cluster]]\nname = \"{name}\"\nendpoint = \"{url}\"\nusername = \"snapwarden\"\n\
             {secret}\npin_sha256 = \"{}\"\n",
            sim.fingerprint
        )
    };
    let port = free_port();
    let policy = dir.path().join("policy.toml");
    let text = quiet_policy(port, &token_line(dir.path()))
        + &cluster(
            "by-file",
            &format!("password_file = \"{}\"", password_file.display()),
        )
        + &cluster(
            "by-unset-env",
            "password_env = \"SNAPWARDEN_TEST_UNSET_PW_7d\"",
        )
        + &cluster("by-env", "password_env = \"SNAPWARDEN_TEST_WRONG_PW_7d\"");
    std::fs::write(&policy, text).unwrap();
    let _agent = KillOnDrop(
        bin()
            .args(["run", "--config"])
            .arg(&policy)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .env_remove("SNAPWARDEN_TEST_UNSET_PW_7d")
            .env("SNAPWARDEN_TEST_WRONG_PW_7d", ENV_VALUE)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let errors = |status: &serde_json::Value| -> Vec<String> {
        status["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["last_error"].as_str().map(String::from))
            .collect()
    };
    let end = Instant::now() + Duration::from_secs(60);
    let (body, status) = loop {
        assert!(Instant::now() < end, "three clusters with an error");
        if let Some((200, body)) = http(port, "GET", "/api/v1/status", &[&bearer(TOKEN)]) {
            let status: serde_json::Value = serde_json::from_str(&body).unwrap();
            if errors(&status).len() == 3 {
                break (body, status);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let error_of = |name: &str| {
        status["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["last_error"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    // The variable that is not set is named: the operator knows what to fix.
    let unset = error_of("by-unset-env");
    assert!(unset.contains("SNAPWARDEN_TEST_UNSET_PW_7d"), "{unset}");
    // A wrong password read from a file or a variable is refused by the cluster; the answer says
    // so and never carries the value.
    for name in ["by-file", "by-env"] {
        let e = error_of(name);
        assert!(e.contains("authentication failed"), "{name}: {e}");
    }
    for secret in [FILE_CONTENT, ENV_VALUE, TOKEN, "s3cret"] {
        assert!(!body.contains(secret), "{secret} served: {body}");
    }
    let (_, metrics) = http(port, "GET", "/metrics", &[]).unwrap();
    for secret in [FILE_CONTENT, ENV_VALUE, TOKEN] {
        assert!(!metrics.contains(secret), "{secret} in /metrics");
    }
}
