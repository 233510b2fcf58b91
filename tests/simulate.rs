//! `snapwarden simulate`: 30 days of a generated estate (three zones, the US and EU DST changes
//! of March 2027, hourly/daily/weekly policies) run by the agent in virtual time, beside the
//! uncoordinated baseline on the same world with the same drawn backups.
//!
//! The default run uses 12 volumes (every cluster × policy pair) to stay within seconds in a
//! debug build; `cargo bench --bench simulate` runs the same estate with 500 volumes.

mod simulate_support;

use std::path::Path;
use std::process::Command;

use simulate_support::{estate, FROM};
use snapwarden::config;
use snapwarden::simulate::{self, Report, Settings};

fn settings(days: i64, seed: u64, overrun_rate: f64) -> Settings {
    Settings {
        days,
        from: FROM.parse().unwrap(),
        seed,
        overrun_rate,
        state_dir: None,
    }
}

fn load(text: &str) -> config::Policy {
    config::parse_str(text, Path::new("estate.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn show(r: &Report) {
    eprintln!(
        "{:<13} cycles {} completed {} shifted {} overrun {} failed {} | chain conflicts {} | locked {} h (max {}, {} at the end) | scheduled taken {} missed {} | leaked {} | foreign deleted {}",
        r.mode,
        r.cycles_planned,
        r.cycles_completed,
        r.cycles_shifted,
        r.cycles_overrun,
        r.cycles_failed,
        r.chain_conflicts,
        r.locked_backing_snapshot_hours,
        r.max_locked_backing_snapshots,
        r.locked_at_end,
        r.scheduled_snapshots_taken,
        r.scheduled_snapshots_missed,
        r.leaked_objects,
        r.foreign_objects_deleted
    );
}

/// Window occurrences of `estate(12)` in March 2027 (from the 1st, 30 days), by hand: volumes
/// 0–2 and 9–11 are hourly-policy, 3–5 daily (one daily window each: 30 occurrences in every
/// zone, the local 00:50 / 23:30 of 30 days falling inside [Mar 1 00:00Z, Mar 31 00:00Z)), 6–8
/// weekly (Sundays 7, 14, 21, 28 at 01:00 local: 4 each).
const PLANNED_12: u64 = 9 * 30 + 3 * 4;

#[test]
fn a_month_coordinated_has_no_chain_conflicts_while_the_baseline_collides() {
    let policy = load(&estate(12, ""));
    let c = simulate::compare(&policy, &settings(30, 1, 0.0)).unwrap();
    show(&c.coordinated);
    show(&c.uncoordinated);
    let (co, un) = (&c.coordinated, &c.uncoordinated);
    assert_eq!(co.volumes, 12);
    assert_eq!(co.cycles_planned, PLANNED_12);
    assert_eq!(un.cycles_planned, PLANNED_12);
    // Every window has a fitting gap: every occurrence runs, and no scheduled snapshot captures
    // a clone. All but two are shifted off their configured start: on the DST Sundays (New York
    // Mar 14, Berlin Mar 28) the weekly snapshot's local 02:15 does not exist, so the weekly
    // window at 01:00 fits as configured there.
    assert_eq!(co.cycles_completed, PLANNED_12, "{co:?}");
    assert_eq!(co.cycles_shifted, PLANNED_12 - 2, "{co:?}");
    assert_eq!(co.cycles_skipped + co.cycles_failed + co.cycles_overrun, 0);
    assert_eq!(co.chain_conflicts, 0, "{co:?}");
    // The agent's own journal agrees with the world: nothing to record.
    assert!(co.recorded_conflicts.values().all(|n| *n == 0), "{co:?}");
    assert_eq!(co.max_locked_backing_snapshots, 0);
    assert_eq!(co.locked_backing_snapshot_hours, 0.0);
    // Every other configured start overlaps a scheduled snapshot: the baseline collides exactly
    // where the agent shifted.
    assert_eq!(un.cycles_completed, PLANNED_12, "{un:?}");
    assert_eq!(un.chain_conflicts, co.cycles_shifted, "{un:?}");
    assert!(un.locked_backing_snapshot_hours > 0.0);
    assert!(un.max_locked_backing_snapshots > 0);
    // Same world, same clock: the schedules took the same snapshots under both.
    assert_eq!(co.scheduled_snapshots_taken, un.scheduled_snapshots_taken);
    assert_eq!(co.scheduled_snapshots_missed, 0);
    for r in [co, un] {
        assert_eq!(r.leaked_objects, 0, "{r:?}");
        assert_eq!(r.foreign_objects_deleted, 0, "{r:?}");
    }
}

#[test]
fn overruns_are_cut_at_max_by_the_agent_and_run_on_in_the_baseline() {
    let policy = load(&estate(12, ""));
    let c = simulate::compare(&policy, &settings(10, 7, 0.4)).unwrap();
    show(&c.coordinated);
    show(&c.uncoordinated);
    let (co, un) = (&c.coordinated, &c.uncoordinated);
    // The same draws: the occurrences that overrun in the baseline overrun under the agent,
    // except at the edge of the period (a shifted start past the end, a backup interrupted by
    // the stop at the end).
    assert!(co.cycles_overrun > 0, "{co:?}");
    assert!(co.cycles_overrun <= un.cycles_overrun);
    assert!(co.cycles_overrun + 3 >= un.cycles_overrun, "{co:?} {un:?}");
    // The agent ends an overrunning backup at the window's max, still inside the gap.
    assert_eq!(co.chain_conflicts, 0, "{co:?}");
    assert!(un.chain_conflicts > 0);
    for r in [co, un] {
        assert_eq!(r.leaked_objects, 0, "{r:?}");
        assert_eq!(r.foreign_objects_deleted, 0, "{r:?}");
    }
}

fn write_estate(volumes: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("estate.toml");
    std::fs::write(&path, estate(volumes, "")).unwrap();
    (dir, path)
}

fn snapwarden(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_snapwarden"))
        .args(args)
        .output()
        .expect("snapwarden runs")
}

#[test]
fn the_same_policy_seed_and_from_give_byte_identical_json() {
    let (_dir, path) = write_estate(6);
    let p = path.to_str().unwrap();
    let args = [
        "simulate",
        p,
        "--days",
        "3",
        "--from",
        FROM,
        "--seed",
        "42",
        "--overrun-rate",
        "0.3",
        "--compare",
        "--output",
        "json",
    ];
    let a = snapwarden(&args);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = snapwarden(&args);
    assert!(b.status.success());
    assert_eq!(a.stdout, b.stdout);
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    for side in ["coordinated", "uncoordinated"] {
        for field in [
            "days",
            "volumes",
            "cycles_completed",
            "cycles_shifted",
            "cycles_skipped",
            "cycles_overrun",
            "chain_conflicts",
            "locked_backing_snapshot_hours",
            "max_locked_backing_snapshots",
            "scheduled_snapshots_taken",
            "scheduled_snapshots_missed",
            "retention_violations",
            "leaked_objects",
            "foreign_objects_deleted",
            "flexclone_recommendations",
        ] {
            assert!(v[side].get(field).is_some(), "{side}.{field} missing: {v}");
        }
    }
    assert_eq!(v["coordinated"]["days"], 3);
    assert_eq!(v["coordinated"]["volumes"], 6);
    // Another seed draws other backups.
    let mut other = args;
    other[7] = "43";
    let c = snapwarden(&other);
    assert!(c.status.success());
    assert_ne!(a.stdout, c.stdout);
}

#[test]
fn the_table_shows_both_runs_side_by_side() {
    let (_dir, path) = write_estate(3);
    let out = snapwarden(&[
        "simulate",
        path.to_str().unwrap(),
        "--days",
        "2",
        "--from",
        FROM,
        "--compare",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("coordinated") && text.contains("uncoordinated"),
        "{text}"
    );
    let conflicts = text
        .lines()
        .find(|l| l.starts_with("chain conflicts"))
        .unwrap_or_else(|| panic!("{text}"));
    // Two days, 3 hourly-policy volumes: 6 occurrences. The baseline collides with the :05
    // snapshot 5 times; Berlin's second (Mar 2 23:50Z) is released at the end of the period
    // (Mar 3 00:00Z), before its 00:05Z snapshot.
    let cells: Vec<&str> = conflicts.split_whitespace().collect();
    assert_eq!(cells[cells.len() - 2..], ["0", "5"], "{text}");
}

#[test]
fn bad_arguments_are_clear_errors_with_exit_2() {
    let (_dir, path) = write_estate(3);
    let p = path.to_str().unwrap();
    for (args, says) in [
        (vec!["--days", "0"], "0 days"),
        (vec!["--days", "-3"], "-3 days"),
        (vec!["--days", "100000"], "100000 days"),
        (vec!["--days", "ten"], "not a whole number"),
        (vec!["--days", "3", "--overrun-rate", "2"], "from 0 to 1"),
        (vec!["--days", "3", "--overrun-rate", "-0.5"], "from 0 to 1"),
        (vec!["--days", "3", "--overrun-rate", "NaN"], "from 0 to 1"),
        (vec!["--days", "3", "--from", "yesterday"], "RFC 3339"),
        (
            vec!["--days", "3", "--uncoordinated", "--compare"],
            "cannot be used",
        ),
    ] {
        let mut all = vec!["simulate", p];
        all.extend(&args);
        let out = snapwarden(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // A real cluster cannot be simulated.
    let real = std::fs::read_to_string(&path)
        .unwrap()
        .replacen(
            "endpoint = \"simulator\"",
            "endpoint = \"https://10.0.0.1\"\nusername = \"u\"\npassword_env = \"SW_TEST_PW\"",
            1,
        )
        .replacen(
            "simulator = { version = \"9.14.1\", licenses = [\"snaprestore\"] }",
            "",
            1,
        );
    std::fs::write(&path, real).unwrap();
    let out = snapwarden(&["simulate", p, "--days", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cluster east is a real cluster"), "{err}");
}

#[test]
fn settings_are_checked_by_the_library_too() {
    let policy = load(&estate(3, ""));
    for (days, rate) in [(0, 0.0), (-1, 0.0), (367, 0.0), (1, 1.5), (1, f64::NAN)] {
        let e = simulate::coordinated(&policy, &settings(days, 1, rate)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("--days") || text.contains("--overrun-rate"),
            "{text}"
        );
    }
}

/// A window on `hourly_0` (New York) that has no fitting gap and runs anyway: 03:00 local for up
/// to 90 minutes holds its clone over the 03:05 and 04:05 snapshots every day.
const NO_GAP: &str = r#"
[[window]]
name = "long"
volumes = ["east/svm1/hourly_0"]
start = "0 3 * * *"
timezone = "America/New_York"
expected = "50m"
max = "90m"
on_conflict = "run"

[flexclone]
recommend_after = 3
within = "7d"
"#;

#[test]
fn recurring_conflicts_raise_a_flexclone_recommendation_with_evidence() {
    let policy = load(&estate(12, NO_GAP));
    let c = simulate::compare(&policy, &settings(5, 1, 0.0)).unwrap();
    show(&c.coordinated);
    let co = &c.coordinated;
    // The world saw the captures, and the agent journaled them.
    assert!(co.chain_conflicts >= 5, "{co:?}");
    assert!(co.recorded_conflicts["chain_conflict"] >= 5, "{co:?}");
    assert_eq!(co.leaked_objects, 0);
    assert_eq!(co.foreign_objects_deleted, 0);
    let recs = &co.flexclone_recommendations;
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    assert_eq!(
        (r.cluster.as_str(), r.svm.as_str(), r.volume.as_str()),
        ("east", "svm1", "hourly_0")
    );
    assert!(r.conflicts >= 3, "{r:?}");
    assert!(r.evidence.contains("chain_conflict"), "{}", r.evidence);
    assert!(r.evidence.contains("windows long"), "{}", r.evidence);
    assert!(r.evidence.contains("not licensed"), "{}", r.evidence);
    // The baseline has no journal to recommend from.
    assert!(c.uncoordinated.flexclone_recommendations.is_empty());

    // Licensed: the evidence says to switch.
    let licensed = estate(12, NO_GAP).replacen(
        "licenses = [\"snaprestore\"]",
        "licenses = [\"snaprestore\", \"flexclone\"]",
        1,
    );
    let co = simulate::coordinated(&load(&licensed), &settings(5, 1, 0.0)).unwrap();
    assert_eq!(co.flexclone_recommendations.len(), 1);
    assert!(
        co.flexclone_recommendations[0]
            .evidence
            .contains("switch clone = \"flexclone\""),
        "{:?}",
        co.flexclone_recommendations
    );
}

#[test]
fn report_reads_a_simulated_journal_and_forwards_the_recommendation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("estate.toml");
    std::fs::write(&path, estate(12, NO_GAP)).unwrap();
    let state = dir.path().join("journal");
    let p = path.to_str().unwrap();
    let s = state.to_str().unwrap();
    let out = snapwarden(&[
        "simulate",
        p,
        "--days",
        "5",
        "--from",
        FROM,
        "--state-dir",
        s,
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sim: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = snapwarden(&[
        "report",
        "--state-dir",
        s,
        "--since",
        FROM,
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let volumes = report["volumes"].as_array().unwrap();
    // The weekly volumes have no occurrence in March 1–5 (the first Sunday is the 7th).
    assert_eq!(volumes.len(), 9, "{report}");
    // The report's cycle counts add up to what simulate counted.
    let completed: u64 = volumes
        .iter()
        .map(|v| v["cycles"]["completed"].as_u64().unwrap())
        .sum();
    assert_eq!(completed, sim["cycles_completed"].as_u64().unwrap());
    let recommended: Vec<&serde_json::Value> = volumes
        .iter()
        .filter(|v| !v["recommendation"].is_null())
        .collect();
    assert_eq!(recommended.len(), 1, "{report}");
    assert_eq!(recommended[0]["volume"], "hourly_0");
    assert_eq!(
        recommended[0]["recommendation"],
        sim["flexclone_recommendations"][0]
            .as_object()
            .map(|o| {
                // The report cannot know the license from the journal: only the evidence's
                // last clause differs.
                let mut o = o.clone();
                let e = o["evidence"].as_str().unwrap().to_string();
                let cut = e.rfind("; flexclone").unwrap();
                o.insert(
                    "evidence".into(),
                    format!(
                        "{}; the cluster's flexclone license state is not in the journal (`status` shows it)",
                        &e[..cut]
                    )
                    .into(),
                );
                serde_json::Value::Object(o)
            })
            .unwrap(),
        "{report}"
    );
    let out = snapwarden(&["report", "--state-dir", s, "--since", FROM]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("FlexClone recommended for east/svm1/hourly_0"),
        "{text}"
    );
    // No journal: exit 2.
    let out = snapwarden(&[
        "report",
        "--state-dir",
        dir.path().join("none").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}
