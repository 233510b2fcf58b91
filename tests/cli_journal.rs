//! `history` and `report` find the journal the agent kept: the demo policies name their state
//! directory (the one the README's `run` commands pass), and a journal that is not there is
//! explained with what to pass instead.

use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn snapwarden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snapwarden"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the snapwarden binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

/// `path` with `.` and `dir/..` taken out, without touching the file system.
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Every `run --config config/X.toml --state-dir target/Y` in the README: the policy names
/// the same directory, so `history --config` and `report --config` read the journal `run` wrote.
#[test]
fn the_demo_policies_name_the_state_directory_the_readme_runs_them_with() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut seen = 0;
    for line in readme.lines() {
        let Some(run) = line.split("cargo run --release -- run ").nth(1) else {
            continue;
        };
        let words: Vec<&str> = run.split_whitespace().collect();
        let after = |flag: &str| {
            let i = words.iter().position(|w| *w == flag).expect(flag);
            words[i + 1]
        };
        let (config, state_dir) = (after("--config"), after("--state-dir"));
        let policy = snapwarden::config::load(&repo().join(config)).unwrap();
        assert_eq!(
            normal(&policy.agent.state_dir),
            repo().join(state_dir),
            "{config}"
        );
        seen += 1;
    }
    assert_eq!(
        seen, 3,
        "the README runs the demo, the managed demo and the Veeam demo"
    );
}

/// A journal that is not there: the message says where the directory came from and names
/// `--state-dir` and the policy's `[agent] state_dir`; once the journal exists, both commands
/// read it through the policy alone.
#[test]
fn history_and_report_explain_a_missing_journal_and_read_the_policys() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("config")).unwrap();
    let policy = tmp.path().join("config/demo.toml");
    std::fs::copy(repo().join("config/demo.toml"), &policy).unwrap();
    let policy = policy.to_str().unwrap();
    let journal_dir = tmp.path().join("target/demo-state");
    for command in ["history", "report"] {
        let o = snapwarden(&[command, "--config", policy]);
        assert_eq!(o.status.code(), Some(2), "{command}");
        let err = stderr(&o);
        assert!(
            err.contains("/target/demo-state/journal.sqlite3 does not exist"),
            "{err}"
        );
        assert!(
            err.contains("is the [agent] state_dir of the --config policy"),
            "{err}"
        );
        assert!(err.contains("Pass --state-dir DIR"), "{err}");
        let o = snapwarden(&[command, "--state-dir", "/nonexistent/snapwarden-state"]);
        assert_eq!(o.status.code(), Some(2));
        let err = stderr(&o);
        assert!(
            err.contains("hint: /nonexistent/snapwarden-state is the --state-dir given."),
            "{err}"
        );
    }
    snapwarden::agent::journal::Journal::open(&journal_dir).unwrap();
    for command in ["history", "report"] {
        let o = snapwarden(&[command, "--config", policy]);
        assert_eq!(o.status.code(), Some(0), "{command}: {}", stderr(&o));
    }
}
