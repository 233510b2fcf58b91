//! `/metrics` of a running `snapwarden run`, checked by Prometheus' own linter
//! (`promtool check metrics`, from Debian's `prometheus` package, which `scripts/test` installs).

mod process_support;

use std::io::Write;
use std::process::{Command, Stdio};

use process_support::{free_port, http, promtool, quiet_policy, run_ready};

#[test]
fn live_metrics_pass_promtool_check_metrics() {
    let promtool = promtool();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, quiet_policy(port, "")).unwrap();
    // Ready once the cluster was reached: by then every per-cluster series exists.
    let _agent = run_ready(&policy, &dir.path().join("state"), port);
    let (code, body) = http(port, "GET", "/metrics", &[]).expect("/metrics answers");
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
    let mut check = Command::new(promtool)
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
