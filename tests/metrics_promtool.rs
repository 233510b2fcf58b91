//! `/metrics` of a running `snapwarden run`, checked by Prometheus' own linter
//! (`promtool check metrics`, from Debian's `prometheus` package, which `scripts/test` installs).

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nobody listens on right now.
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

/// One HTTP/1.0 GET on loopback: status code and body; `None` while nothing listens.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

fn promtool() -> String {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "promtool is not installed: run scripts/test, which installs Debian's prometheus package \
         (apt-get install -y --no-install-recommends prometheus)"
    );
    "promtool".into()
}

#[test]
fn live_metrics_pass_promtool_check_metrics() {
    let promtool = promtool();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            r#"
[agent]
listen = "127.0.0.1:{port}"

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
        ),
    )
    .unwrap();
    let _agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_snapwarden"))
            .args(["run", "--config"])
            .arg(&policy)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Ready once the cluster was reached: by then every per-cluster series exists.
    let end = Instant::now() + Duration::from_secs(30);
    while get(port, "/readyz").is_none_or(|(code, _)| code != 200) {
        assert!(Instant::now() < end, "the agent did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, body) = get(port, "/metrics").expect("/metrics answers");
    assert_eq!(code, 200, "{body}");
    for family in [
        "snapwarden_build_info",
        "snapwarden_config_last_reload_successful",
        "snapwarden_config_last_reload_success_timestamp_seconds",
        "snapwarden_config_hash",
        "snapwarden_config_reloads_total",
        "snapwarden_ontap_up",
        "snapwarden_ontap_requests_total",
        "snapwarden_ontap_request_duration_seconds",
        "snapwarden_next_scheduled_snapshot_timestamp_seconds",
        "snapwarden_window_active",
        "snapwarden_backing_snapshots",
        "snapwarden_backing_snapshot_oldest_age_seconds",
        "snapwarden_cycles_total",
        "snapwarden_flexclone_recommended",
    ] {
        assert!(
            body.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{body}"
        );
    }
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}\non:\n{body}"
    );
}
