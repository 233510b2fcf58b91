//! `deploy/systemd/snapwarden.service`: passes `systemd-analyze verify` and an offline
//! `systemd-analyze security` bound, carries the directives docs/operations.md describes (dynamic
//! user, configuration and state directories, sandbox, SIGHUP reload, restart), and its own
//! `ExecStart=` and `ExecReload=` command lines start, reload and (with SIGTERM, systemd's stop)
//! stop the built agent.

mod process_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use process_support::{free_port, http, installed, quiet_policy, KillOnDrop};

/// Where the unit expects the binary, the policy and the journal (the .deb installs them there).
const BINARY: &str = "/usr/bin/snapwarden";
const POLICY: &str = "/etc/snapwarden/policy.toml";
const STATE: &str = "/var/lib/snapwarden";

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/snapwarden.service")
}

fn unit_text() -> String {
    let path = unit_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The unit's settings in file order: (section, key, value); comments and blank lines dropped.
/// The unit uses no line continuations (checked: no line ends with a backslash).
fn directives(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        assert!(!line.ends_with('\\'), "line {}: a continuation", n + 1);
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not key=value: {line}", n + 1));
        out.push((section.clone(), key.trim().into(), value.trim().into()));
    }
    out
}

/// The one value of `key` in `[section]`; fails when it is missing or set twice.
fn one(all: &[(String, String, String)], section: &str, key: &str) -> String {
    let values: Vec<&String> = all
        .iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!(
        values.len(),
        1,
        "[{section}] {key}= is set {} times",
        values.len()
    );
    values[0].clone()
}

/// `systemd-analyze`, or a failure saying how to install it.
fn systemd_analyze() -> &'static str {
    installed("systemd-analyze", "systemd")
}

/// A copy of the unit text in a temporary directory, named `snapwarden.service`, whose
/// `ExecStart=` names the built binary: `verify` checks that the command exists, and the test
/// machine has no /usr/bin/snapwarden.
fn unit_copy(dir: &Path, text: &str) -> PathBuf {
    let exec = format!("ExecStart={BINARY} ");
    assert_eq!(
        text.matches(&exec).count(),
        1,
        "ExecStart= must run {BINARY}"
    );
    let copy = text.replace(
        &exec,
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_snapwarden")),
    );
    let path = dir.join("snapwarden.service");
    std::fs::write(&path, copy).unwrap();
    path
}

/// `systemd-analyze verify` on `unit`: (exit status success, everything it printed).
fn verify(unit: &Path) -> (bool, String) {
    let out = Command::new(systemd_analyze())
        .arg("verify")
        .arg(unit)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn unit_passes_systemd_analyze_verify_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let text = unit_text();
    let unit = unit_copy(dir.path(), &text);
    let (ok, said) = verify(&unit);
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );

    // `verify` exits 0 on an unknown key or a bad value and only prints a warning: the check
    // above relies on the output being empty, so the same copy with two mistakes must print.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    let broken = text
        .replace("ProtectSystem=strict", "ProtectSystem=strikt")
        .replace("[Service]\n", "[Service]\nRestartt=always\n");
    let (_, said) = verify(&unit_copy(&bad, &broken));
    assert!(
        said.contains("strikt") && said.contains("Restartt"),
        "verify did not report the planted mistakes:\n{said}"
    );
}

#[test]
fn unit_exposure_stays_within_bound() {
    // `systemd-analyze security` rates a unit's sandbox from 0 (locked down) to 10 (none);
    // `--threshold` is that rating times ten. The unit rates 3.4 ("OK") today; 4.0 leaves room
    // for a changed systemd weighting but fails when a group of protections is dropped (without
    // ProtectSystem=, PrivateDevices= and the kernel protections it rates above 4).
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_copy(dir.path(), &unit_text());
    let out = Command::new(systemd_analyze())
        .args(["security", "--offline=true", "--threshold=40", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze security rates the unit above 4.0:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unit_carries_the_documented_directives() {
    let all = directives(&unit_text());
    let expect = [
        ("Service", "DynamicUser", "yes"),
        ("Service", "ConfigurationDirectory", "snapwarden"),
        ("Service", "StateDirectory", "snapwarden"),
        ("Service", "ProtectSystem", "strict"),
        ("Service", "NoNewPrivileges", "yes"),
        ("Service", "ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Service", "Restart", "on-failure"),
        ("Install", "WantedBy", "multi-user.target"),
    ];
    for (section, key, value) in expect {
        assert_eq!(one(&all, section, key), value, "[{section}] {key}=");
    }
    // The paths of ExecStart= are the ones the directories above create.
    let exec = one(&all, "Service", "ExecStart");
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(&argv[..2], [BINARY, "run"]);
    let after = |flag: &str| {
        let at = argv.iter().position(|a| *a == flag);
        at.and_then(|i| argv.get(i + 1)).copied()
    };
    assert_eq!(after("--config"), Some(POLICY));
    assert_eq!(after("--state-dir"), Some(STATE));
    let config_dir = one(&all, "Service", "ConfigurationDirectory");
    let state_dir = one(&all, "Service", "StateDirectory");
    assert!(POLICY.starts_with(&format!("/etc/{config_dir}/")));
    assert_eq!(STATE, format!("/var/lib/{state_dir}"));
    // The stop timeout covers the agent's default shutdown_timeout (2m) with room to exit.
    let stop = one(&all, "Service", "TimeoutStopSec");
    let seconds: u64 = stop.trim_end_matches('s').parse().unwrap();
    assert!(seconds > 120, "TimeoutStopSec={stop} is not above 2m");
}

/// The value of the sample `series` (name with labels, as printed) in a text exposition.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn wait(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn unit_command_lines_start_reload_and_stop_the_agent() {
    let all = directives(&unit_text());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, quiet_policy(port, "")).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();

    // ExecStart=, word for word, with the installed paths mapped into the test's directory;
    // any other absolute path in it would go unchecked, so there must be none.
    let exec = one(&all, "Service", "ExecStart");
    let mapped: Vec<String> = exec
        .split_whitespace()
        .map(|arg| match arg {
            BINARY => env!("CARGO_BIN_EXE_snapwarden").to_string(),
            POLICY => policy.display().to_string(),
            STATE => state.display().to_string(),
            other => {
                assert!(
                    !other.starts_with('/'),
                    "unmapped path {other} in ExecStart="
                );
                other.to_string()
            }
        })
        .collect();
    let log = dir.path().join("agent.log");
    let mut agent = KillOnDrop(
        Command::new(&mapped[0])
            .args(&mapped[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let ready = || http(port, "GET", "/readyz", &[]).is_some_and(|(code, _)| code == 200);
    wait("the agent to be ready", Duration::from_secs(30), ready);
    let reloads = || {
        let (_, body) = http(port, "GET", "/metrics", &[]).unwrap_or_default();
        sample(
            &body,
            r#"snapwarden_config_reloads_total{result="success"}"#,
        )
        .unwrap_or(0.0)
    };
    assert_eq!(reloads(), 0.0);

    // ExecReload=, with $MAINPID as systemd expands it.
    let reload = one(&all, "Service", "ExecReload");
    let pid = agent.id().to_string();
    let argv: Vec<String> = reload
        .split_whitespace()
        .map(|a| {
            if a == "$MAINPID" {
                pid.clone()
            } else {
                a.into()
            }
        })
        .collect();
    let status = Command::new(&argv[0]).args(&argv[1..]).status().unwrap();
    assert!(status.success(), "{reload} failed");
    wait("the SIGHUP reload", Duration::from_secs(20), || {
        reloads() == 1.0
    });

    // systemd stops a service with SIGTERM (KillSignal= is not set) and waits TimeoutStopSec=.
    assert_eq!(unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) }, 0);
    let mut code = None;
    wait("the agent to stop", Duration::from_secs(60), || {
        code = agent.try_wait().unwrap().map(|s| s.code());
        code.is_some()
    });
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, Some(Some(0)), "agent log:\n{log}");
    // `--log-format json`: every line the agent wrote is one JSON object.
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("not a JSON log line ({e}): {line}");
        });
        assert!(v.is_object(), "{line}");
    }
    assert!(log.contains("SIGHUP"), "the reload is not logged:\n{log}");
}
