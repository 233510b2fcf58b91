//! `snapwarden simulator serve` arguments: a world is required and named in the
//! usage, a policy must have simulator clusters, `--start` needs a manual clock, and the
//! default-password warning appears only when the world chose no users.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

fn snapwarden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snapwarden"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .expect("snapwarden runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn serve_without_a_world_names_both_sources() {
    let o = snapwarden(&["simulator", "serve"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--config") && err.contains("--policy"),
        "{err}"
    );
}

#[test]
fn a_policy_without_simulator_clusters_is_refused() {
    let o = snapwarden(&[
        "simulator",
        "serve",
        "--policy",
        "config/minimal.toml",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("config/minimal.toml"), "{err}");
    assert!(err.contains("endpoint = \"simulator\""), "{err}");
}

#[test]
fn start_needs_a_manual_clock() {
    let o = snapwarden(&[
        "simulator",
        "serve",
        "--config",
        "config/simulator/world.example.toml",
        "--listen",
        "127.0.0.1:0",
        "--start",
        "2026-03-01T00:00:00Z",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--clock manual"), "{}", stderr(&o));
}

/// Serves `world` (TOML) until the start-up output ends; returns that output.
fn startup_output(name: &str, world: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, world).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_snapwarden"))
        .args(["simulator", "serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the simulator starts");
    let mut out = String::new();
    // The last start-up line is "ready; …"; reading waits for it (bounded by the line count).
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .take(20)
    {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        if line.starts_with("ready") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(out.contains("ready"), "{out}");
    out
}

const CLUSTER: &str = "[[clusters]]\nname = \"c1\"\n";

#[test]
fn the_default_password_warning_only_without_users() {
    let without = startup_output("no_users.toml", CLUSTER);
    assert!(
        without.contains("warning: user admin logs in with the default password"),
        "{without}"
    );
    // Even a user named like the default one, with its password, was the world's choice.
    let with = startup_output(
        "users.toml",
        &format!("[[users]]\nname = \"admin\"\npassword = \"netapp1!\"\n{CLUSTER}"),
    );
    assert!(!with.contains("warning"), "{with}");
}
