//! Shared helpers of the tests that run the `snapwarden` binary as a process: a free loopback
//! port, a child killed when the test ends, one HTTP/1.0 request, promtool, a quiet policy, and
//! `simulator serve --tls` with a REST client for it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when the test ends, whether it passed or panicked.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// One HTTP/1.0 request on loopback: status code and body; `None` while nothing listens.
pub fn http(port: u16, method: &str, path: &str, headers: &[&str]) -> Option<(u16, String)> {
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

/// `command` is on PATH, or a failure saying which Debian package `scripts/test` installs for it.
pub fn installed(command: &'static str, package: &str) -> &'static str {
    let found = Command::new(command)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{command} is not installed: run scripts/test, which installs Debian's {package} package \
         (apt-get install -y --no-install-recommends {package})"
    );
    command
}

/// `promtool`, or a failure saying how to install it.
pub fn promtool() -> &'static str {
    installed("promtool", "prometheus")
}

/// A policy on the embedded simulator listening on `port`, with extra `[agent]` lines: volumes
/// `vol_a` and `vol_b`, and a window on `vol_a` that never comes during a test (Feb 29, 03:00).
pub fn quiet_policy(port: u16, agent_lines: &str) -> String {
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

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_b"
luns = ["/vol/vol_b/lun0"]
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

/// `snapwarden run --config policy --state-dir state`, waited on until `/readyz` answers 200 on
/// `port` (at most 30 s); killed when the test ends.
pub fn run_ready(policy: &Path, state: &Path, port: u16) -> KillOnDrop {
    let agent = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_snapwarden"))
            .args(["run", "--config"])
            .arg(policy)
            .arg("--state-dir")
            .arg(state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let end = Instant::now() + Duration::from_secs(30);
    while http(port, "GET", "/readyz", &[]).is_none_or(|(code, _)| code != 200) {
        assert!(Instant::now() < end, "the agent did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    agent
}

/// A simulator world with what `config/minimal.toml` names: cluster `prod-a` (user
/// `snapwarden`, password `s3cret`), `svm1/vol_sql` with a 10 GiB `lun0`.
pub const MINIMAL_WORLD: &str = r#"
[[users]]
name = "snapwarden"
password = "s3cret"

[[clusters]]
name = "prod-a"
version = "9.15.1"
timezone = "Europe/Berlin"
licenses = ["snaprestore"]

[[clusters.svms]]
name = "svm1"

[[clusters.svms.volumes]]
name = "vol_sql"
snapshot_policy = "default"

[[clusters.svms.volumes.luns]]
name = "lun0"
size = 10737418240
"#;

/// `snapwarden simulator serve --tls` on a world file, read up to its "ready" line.
pub struct TlsSimulator {
    pub child: KillOnDrop,
    /// The base URL (`snapwarden simulator listening on …`).
    pub url: String,
    /// Each cluster's URL by name, as printed.
    pub clusters: Vec<(String, String)>,
    /// Each Veeam server's URL by name, as printed.
    pub veeam: Vec<(String, String)>,
    pub fingerprint: String,
}

impl TlsSimulator {
    /// Starts it with `clock` (e.g. `["--clock", "real"]`), its stderr to `stderr`.
    pub fn start(world: &Path, clock: &[&str], stderr: impl Into<Stdio>) -> TlsSimulator {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_snapwarden"))
            .args(["simulator", "serve", "--tls", "--listen", "127.0.0.1:0"])
            .args(clock)
            .arg("--config")
            .arg(world)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the simulator starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let child = KillOnDrop(child);
        let (mut url, mut fingerprint) = (None, None);
        let (mut clusters, mut veeam) = (Vec::new(), Vec::new());
        // The last start-up line is "ready; …"; reading waits for it (bounded by the line count).
        for line in BufReader::new(stdout).lines().take(64) {
            let line = line.expect("simulator output");
            let named = |rest: &str| {
                rest.split_once(": ")
                    .map(|(n, u)| (n.to_string(), u.trim().to_string()))
            };
            if let Some(u) = line.strip_prefix("snapwarden simulator listening on ") {
                url = Some(u.trim().to_string());
            } else if let Some(f) = line.strip_prefix("certificate SHA-256 fingerprint: ") {
                fingerprint = Some(f.trim().to_string());
            } else if let Some(c) = line.strip_prefix("cluster ").and_then(named) {
                clusters.push(c);
            } else if let Some(v) = line.strip_prefix("veeam ").and_then(named) {
                veeam.push(v);
            } else if line.starts_with("ready") {
                break;
            }
        }
        TlsSimulator {
            child,
            url: url.expect("the simulator prints its URL"),
            clusters,
            veeam,
            fingerprint: fingerprint.expect("the simulator prints its fingerprint"),
        }
    }

    /// The printed URL of cluster `name`.
    pub fn cluster(&self, name: &str) -> String {
        self.clusters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, u)| u.clone())
            .unwrap_or_else(|| panic!("the simulator serves no cluster {name}"))
    }

    /// A client for the test's own reads (the snapwarden under test pins the certificate).
    pub fn reader() -> reqwest::Client {
        reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a client")
    }
}

/// The test's own REST client of a served simulator: requests to `base` with HTTP Basic
/// credentials, answers as JSON (`null` for an empty body); a failed request fails the test.
pub struct SimRest {
    base: String,
    user: String,
    password: String,
    http: reqwest::Client,
}

impl SimRest {
    pub fn new(base: &str, user: &str, password: &str) -> SimRest {
        SimRest {
            base: base.to_string(),
            user: user.to_string(),
            password: password.to_string(),
            http: TlsSimulator::reader(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let text = resp.text().await.expect("a body");
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        self.call(reqwest::Method::GET, path, None).await
    }
}

/// The interpreter of `SNAPWARDEN_TEST_PYTHON` (the venv `scripts/test` makes), checked to import
/// NetApp's client; a failure names what to run.
pub fn netapp_python() -> std::ffi::OsString {
    let python = std::env::var_os("SNAPWARDEN_TEST_PYTHON").unwrap_or_else(|| {
        panic!(
            "SNAPWARDEN_TEST_PYTHON is not set: run scripts/test, which installs NetApp's client \
             (PyPI netapp-ontap==9.19.1.0) into target/py-venv and points this variable at its python"
        )
    });
    let importable = Command::new(&python)
        .args(["-c", "import netapp_ontap"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        importable,
        "{} (SNAPWARDEN_TEST_PYTHON) cannot import netapp_ontap (NetApp's client, PyPI netapp-ontap==9.19.1.0): run scripts/test, which installs it",
        python.to_string_lossy()
    );
    python
}

/// Runs `cmd` (stdin closed, output captured) and returns its output once it ends; kills it and
/// panics when it has not ended, or its output has not closed, within `bound`. The output is read
/// while it runs, so a command that prints more than a pipe holds does not stall.
pub fn output_within(mut cmd: Command, bound: Duration) -> std::process::Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{shown}: {e}"));
    let (tx, rx) = std::sync::mpsc::channel();
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child.stdout.take().map(|p| Box::new(p) as _),
        child.stderr.take().map(|p| Box::new(p) as _),
    ];
    for (i, pipe) in pipes.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            let _ = tx.send((i, bytes));
        });
    }
    let end = Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitpid") {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} did not end within {bound:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        let (i, bytes) = rx
            .recv_timeout(end.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| {
                panic!("{shown} ended, but a process it started held its output past {bound:?}")
            });
        out[i] = bytes;
    }
    let [stdout, stderr] = out;
    std::process::Output {
        status,
        stdout,
        stderr,
    }
}
