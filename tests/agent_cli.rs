//! `run`, `status`, `history`, and the discovery `check`/`plan` do, through the binary: exit
//! codes, the messages a user sees on bad input, and the status JSON contract.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod process_support;

use process_support::{free_port, quiet_policy, KillOnDrop, TlsSimulator, MINIMAL_WORLD};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snapwarden"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("snapwarden runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `snapwarden simulator serve --tls` on a world file; killed on drop.
struct Served {
    _sim: TlsSimulator,
    /// Cluster prod-a's URL.
    url: String,
    fingerprint: String,
    /// The world's first Veeam server, when it has one.
    veeam_url: Option<String>,
}

fn serve(world: &Path) -> Served {
    let sim = TlsSimulator::start(world, &[], Stdio::null());
    Served {
        url: sim.cluster("prod-a"),
        fingerprint: sim.fingerprint.clone(),
        veeam_url: sim.veeam.first().map(|(_, u)| u.clone()),
        _sim: sim,
    }
}

/// `config/minimal.toml`, pointed at the simulator.
fn minimal_against(served: &Served, dir: &Path) -> std::path::PathBuf {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/minimal.toml"))
            .unwrap()
            .replace("https://cluster-a.example.net", &served.url)
            .replace(
                "password_env = \"SNAPWARDEN_PROD_A_PASSWORD\"",
                &format!(
                    "password_env = \"SNAPWARDEN_PROD_A_PASSWORD\"\npin_sha256 = \"{}\"",
                    served.fingerprint
                ),
            );
    let path = dir.join("minimal.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `check` looks every Veeam window's job up on its server: a job the server lacks is an error
/// at the policy's `job` (file:line:column) naming the jobs the server has; `--offline` skips it.
#[test]
fn check_finds_a_veeam_job_missing_from_its_server() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.toml");
    let veeam_world = r#"
[[veeam]]
name = "vbr"
users = [{ name = "svc", password = "vpass" }]

[[veeam.jobs]]
name = "SQL nightly"
duration = "20m"
targets = [{ cluster = "prod-a", volume = "vol_sql", luns = ["lun0"] }]
"#;
    std::fs::write(&world, format!("{MINIMAL_WORLD}{veeam_world}")).unwrap();
    let served = serve(&world);
    let veeam_url = served
        .veeam_url
        .clone()
        .expect("the Veeam server's address");
    let base = minimal_against(&served, dir.path());
    let with_job = |job: &str| {
        let text = std::fs::read_to_string(&base).unwrap().replace(
            "max = \"50m\"",
            &format!("max = \"50m\"\ndriver = \"veeam\"\nveeam = {{ server = \"vbr\", job = \"{job}\" }}"),
        ) + &format!(
            "\n[[veeam]]\nname = \"vbr\"\nurl = \"{veeam_url}\"\nusername = \"svc\"\npassword_env = \"VBR_PASSWORD\"\npin_sha256 = \"{}\"\n",
            served.fingerprint
        );
        let path = dir.path().join(format!("veeam-{}.toml", job.len()));
        std::fs::write(&path, &text).unwrap();
        let line = text
            .lines()
            .position(|l| l.starts_with("veeam = {"))
            .expect("the window's veeam line")
            + 1;
        (path, line)
    };
    let check = |path: &Path, extra: &[&str]| {
        bin()
            .arg("check")
            .arg(path)
            .args(["--from", "2027-01-01T00:00:00Z"])
            .args(extra)
            .env("SNAPWARDEN_PROD_A_PASSWORD", "s3cret")
            .env("VBR_PASSWORD", "vpass")
            .output()
            .unwrap()
    };

    let (good, _) = with_job("SQL nightly");
    let o = check(&good, &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    let (bad, line) = with_job("SQL nightlyy");
    let o = check(&bad, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    // The column of the job's value in `veeam = { server = "vbr", job = "SQL nightlyy" }`.
    let column = "veeam = { server = \"vbr\", job = ".chars().count() + 1;
    assert!(
        err.contains(&format!(
            "{}:{line}:{column}: window \"sql-nightly\": Veeam server vbr has no job \"SQL nightlyy\"",
            bad.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("\"SQL nightly\""),
        "the server's jobs are listed: {err}"
    );
    // Offline nothing is asked of the Veeam server: the job is listed as not looked up, beside
    // the cluster facts the policy needs, and everything else is valid.
    let o = check(&bad, &["--offline"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("not checked offline")
            && out.contains(
                "window sql-nightly: Veeam job \"SQL nightlyy\" on server vbr (not looked up)"
            ),
        "{out}"
    );
    assert!(!stderr(&o).contains("has no job"), "{}", stderr(&o));
}

#[test]
fn check_and_plan_read_the_cluster_when_the_policy_needs_its_facts() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.toml");
    std::fs::write(&world, MINIMAL_WORLD).unwrap();
    let served = serve(&world);
    let policy = minimal_against(&served, dir.path());
    let p = policy.to_str().unwrap();
    let from = "2027-01-01T00:00:00Z";

    let o = bin()
        .args([
            "plan", p, "--from", from, "--hours", "24", "--output", "json",
        ])
        .env("SNAPWARDEN_PROD_A_PASSWORD", "s3cret")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let vol = &plan["volumes"][0];
    // The zone and the schedules came from the cluster: ONTAP's default policy in Berlin.
    assert_eq!(vol["timezone"], "Europe/Berlin");
    let schedules: Vec<&str> = vol["scheduled_snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["schedule"].as_str().unwrap())
        .collect();
    assert!(
        schedules.contains(&"hourly") && schedules.contains(&"daily"),
        "{schedules:?}"
    );
    // 01:00 Berlin + 50m + 5m guard crosses the hourly :05 snapshot: shifted to 01:06.
    let lc = &vol["lifecycles"][0];
    assert_eq!(lc["outcome"], "shifted");
    assert_eq!(lc["create_at"], "2027-01-01T01:06:00+01:00");

    let o = bin()
        .args(["check", p, "--from", from])
        .env("SNAPWARDEN_PROD_A_PASSWORD", "s3cret")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));

    // Offline the cluster is not asked: the volume is listed as not checked, nothing planned.
    let o = bin()
        .args(["check", p, "--from", from, "--offline"])
        .env("SNAPWARDEN_PROD_A_PASSWORD", "s3cret")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("not planned: prod-a/svm1/vol_sql"),
        "{}",
        stdout(&o)
    );
    let o = bin()
        .args(["plan", p, "--from", from, "--offline"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot plan offline"), "{}", stderr(&o));

    // Wrong password: the error names the cluster and says what to check.
    let o = bin()
        .args(["check", p, "--from", from])
        .env("SNAPWARDEN_PROD_A_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("cluster prod-a") && err.contains("authentication failed"),
        "{err}"
    );
}

#[test]
fn run_refuses_a_bad_policy_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "[agent]\nconcurrency = 0\n").unwrap();
    let o = run(&["run", "--config", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("bad.toml:2:15: `concurrency` must be between 1 and 64"),
        "{err}"
    );
}

/// The quiet policy written to `dir/quiet.toml`.
fn quiet_policy_file(dir: &Path, port: u16) -> std::path::PathBuf {
    let p = dir.join("quiet.toml");
    std::fs::write(&p, quiet_policy(port, "")).unwrap();
    p
}

#[test]
fn run_refuses_a_state_directory_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let policy = quiet_policy_file(dir.path(), free_port());
    let state = blocker.join("state");
    let o = run(&[
        "run",
        "--config",
        policy.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("state directory") && err.contains("not-a-dir"),
        "{err}"
    );
}

#[test]
fn status_without_an_agent_and_history_without_a_journal_say_so() {
    let port = free_port();
    let o = run(&["status", "--url", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no snapwarden agent answers"),
        "{}",
        stderr(&o)
    );
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["history", "--state-dir", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    let o = run(&[
        "history",
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--since",
        "yesterday",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("neither an RFC 3339 instant"),
        "{}",
        stderr(&o)
    );
}

/// Polls `cond` every 100 ms for at most `limit`.
fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn run_serves_status_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let policy = quiet_policy_file(dir.path(), port);
    let state = dir.path().join("state");
    let mut child = bin()
        .args([
            "run",
            "--config",
            policy.to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let mut status = serde_json::Value::Null;
    wait_until(Duration::from_secs(30), "the agent's status", || {
        let o = run(&["status", "--url", &url, "--output", "json"]);
        if o.status.code() == Some(0) {
            status = serde_json::from_slice(&o.stdout).unwrap();
            status["generated_at"].is_string()
        } else {
            false
        }
    });
    // The documented contract.
    let cluster = &status["clusters"][0];
    assert_eq!(cluster["name"], "lab");
    assert_eq!(cluster["reachable"], true);
    assert_eq!(cluster["version"], "9.14.1");
    assert_eq!(cluster["timezone"], "UTC");
    for key in ["live_cycles", "recent_cycles", "conflicts"] {
        assert!(status[key].is_array(), "{key}: {status}");
    }
    // The table form works too.
    let o = run(&["status", "--url", &url]);
    let table = stdout(&o);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("lab ") && l.contains("reachable")),
        "{table}"
    );

    // SIGTERM: exit 0, and the JSON log says it stopped.
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let end = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(Instant::now() < end, "the agent did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "snapwarden agent starting"),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"].as_str().is_some_and(|m| m.contains("stopped"))),
        "{log}"
    );

    // history reads the journal the agent left.
    let o = run(&[
        "history",
        "--state-dir",
        state.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(h.is_array());
}

#[test]
fn a_cluster_whose_password_cannot_be_read_is_reported_unreachable_and_the_agent_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let p = quiet_policy_file(dir.path(), port);
    let text = std::fs::read_to_string(&p).unwrap()
        + r#"
[[cluster]]
name = "prod"
endpoint = "https://127.0.0.1:9"
username = "snapwarden"
password_env = "SNAPWARDEN_TEST_UNSET_PASSWORD"
insecure = true
"#;
    std::fs::write(&p, text).unwrap();
    let child = bin()
        .args(["run", "--config", p.to_str().unwrap(), "--state-dir"])
        .arg(dir.path().join("state"))
        .env_remove("SNAPWARDEN_TEST_UNSET_PASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let mut status = serde_json::Value::Null;
    wait_until(
        Duration::from_secs(30),
        "both clusters in the status",
        || {
            let o = run(&["status", "--url", &url, "--output", "json"]);
            if o.status.code() != Some(0) {
                return false;
            }
            status = serde_json::from_slice(&o.stdout).unwrap();
            status["clusters"]
                .as_array()
                .is_some_and(|c| c.len() == 2 && c[1]["last_error"].is_string())
        },
    );
    assert_eq!(status["clusters"][0]["reachable"], true);
    assert_eq!(status["clusters"][1]["reachable"], false);
    let err = status["clusters"][1]["last_error"].as_str().unwrap();
    assert!(
        err.contains("cluster prod") && err.contains("SNAPWARDEN_TEST_UNSET_PASSWORD"),
        "{err}"
    );
    // No secret or password source content is served, only the variable's name.
    drop(child);
}

#[test]
fn history_filters_by_window_and_since_and_prints_recent_cycle_rows() {
    use chrono::{DateTime, TimeDelta, Utc};
    use snapwarden::agent::cycle::{CloneKind, CloneLun, Cycle, CycleResult, CycleState};
    use snapwarden::agent::journal::Journal;
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let cycle = |id: &str, window: &str, at: &str, result: CycleResult| {
        let t: DateTime<Utc> = at.parse().unwrap();
        Cycle {
            id: id.into(),
            window: window.into(),
            cluster: "c".into(),
            svm: "svm1".into(),
            volume: "v".into(),
            window_start: t,
            create_at: t,
            release_by: t + TimeDelta::minutes(30),
            release_deadline: None,
            backing_snapshot: format!("snapwarden.{window}.{id}"),
            clone_kind: CloneKind::SnapRestore,
            clones: vec![CloneLun {
                source: "/vol/v/lun0".into(),
                path: format!("/vol/v/snapwarden.{window}.{id}.lun0"),
            }],
            state: CycleState::Released,
            result: Some(result),
            created_at: Some(t),
            clones_created_at: Some(t),
            clones_deleted_at: Some(t + TimeDelta::minutes(20)),
            released_at: Some(t + TimeDelta::minutes(20)),
            detail: String::new(),
            replica: None,
        }
    };
    let now = Utc::now();
    for c in [
        cycle("a", "sql", "2027-01-01T01:00:00Z", CycleResult::Completed),
        cycle("b", "sql", "2027-01-02T01:00:00Z", CycleResult::Overrun),
        cycle("c", "files", "2027-01-02T02:00:00Z", CycleResult::Failed),
    ] {
        journal.insert_cycle(&c, now).unwrap();
        journal.update_cycle(&c).unwrap();
    }
    drop(journal);
    let d = dir.path().to_str().unwrap();
    let o = run(&[
        "history",
        "--state-dir",
        d,
        "--window",
        "sql",
        "--since",
        "2027-01-01T12:00:00Z",
        "--output",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    for key in [
        "id",
        "window",
        "cluster",
        "svm",
        "volume",
        "backing_snapshot",
        "created_at",
        "released_at",
        "result",
    ] {
        assert!(rows[0].get(key).is_some(), "{key} missing: {}", rows[0]);
    }
    assert_eq!(rows[0]["id"], "b");
    assert_eq!(rows[0]["result"], "overrun");
    let o = run(&[
        "history",
        "--state-dir",
        d,
        "--since",
        "2026-12-01T00:00:00Z",
    ]);
    let table = stdout(&o);
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(
        table.lines().nth(1).unwrap().contains("files"),
        "newest first: {table}"
    );
}
