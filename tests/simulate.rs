//! `snapwarden simulate`: 30 days of a generated estate (three zones, the US and EU DST changes
//! of March 2027, hourly/daily/weekly policies) run by the agent in virtual time, beside the
//! uncoordinated baseline on the same world with the same drawn backups.
//!
//! Most tests use 12 volumes (every cluster × policy pair); two run the month over 200 volumes
//! against a brute-force oracle (minute-by-minute local times, no cron parser or timeline), one
//! 60 volumes for the month with overrunning backups left to finish (`on_overrun = "finish"`);
//! `cargo bench --bench simulate` runs the same estate with 500 volumes.

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
    // stderr is a pipe here, not a terminal: no progress line, nothing at all.
    assert!(
        out.stderr.is_empty(),
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
    // As of the end of the simulated period, where simulate decides its recommendations: on
    // the clock, once that week is past, the recommendation has cleared.
    const END: &str = "2027-03-06T00:00:00Z";
    let out = snapwarden(&[
        "report",
        "--state-dir",
        s,
        "--since",
        FROM,
        "--as-of",
        END,
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
    let out = snapwarden(&["report", "--state-dir", s, "--since", FROM, "--as-of", END]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("FlexClone recommended for east/svm1/hourly_0"),
        "{text}"
    );
    // Eight days without a conflict later (the rule's week has passed): cleared.
    let later = [
        "report",
        "--state-dir",
        s,
        "--as-of",
        "2027-03-14T00:00:00Z",
    ];
    let out = snapwarden(&[&later[..], &["--output", "json"]].concat());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let volumes = report["volumes"].as_array().unwrap();
    assert!(
        volumes.iter().all(|v| v["recommendation"].is_null()),
        "{report}"
    );
    assert_eq!(report["generated_at"], "2027-03-14T00:00:00Z", "{report}");
    // Before the period: nothing counted yet. A `--since` after `--as-of`, or an instant that
    // is not RFC 3339: exit 2, saying why.
    let before = [
        "report",
        "--state-dir",
        s,
        "--as-of",
        "2027-02-01T00:00:00Z",
    ];
    let out = snapwarden(&[&before[..], &["--output", "json"]].concat());
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for v in report["volumes"].as_array().unwrap() {
        assert!(v["recommendation"].is_null(), "{report}");
        assert_eq!(v["locked_bytes"], serde_json::Value::Null, "{report}");
        assert!(v["cycles"].as_object().unwrap().values().all(|n| n == 0));
        assert!(v["conflicts"].as_object().unwrap().values().all(|n| n == 0));
    }
    let out = snapwarden(&["report", "--state-dir", s, "--since", END, "--as-of", FROM]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("is after --as-of"), "{err}");
    for bad in ["yesterday", "2027-13-01T00:00:00Z", "0"] {
        let out = snapwarden(&["report", "--state-dir", s, "--as-of", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("RFC 3339"), "{bad}: {err}");
    }
    // Absurd but valid instants: a report, not a panic.
    for edge in ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"] {
        let out = snapwarden(&["report", "--state-dir", s, "--as-of", edge]);
        assert_eq!(out.status.code(), Some(0), "{edge}");
    }
    // No journal: exit 2.
    let out = snapwarden(&[
        "report",
        "--state-dir",
        dir.path().join("none").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// The estate's zones by cluster, as `simulate_support::estate` assigns them (volume `i` is on
/// cluster `i % 3`, of kind `(i / 3) % 3`: hourly, daily, weekly).
const ZONES: [&str; 3] = ["America/New_York", "Europe/Berlin", "Asia/Tokyo"];

/// Local wall-clock patterns, checked minute by minute (an oracle independent of the cron
/// parser and of `timeline`): `(minute, hour or any, Sunday only)`.
type Pattern = (u32, Option<u32>, bool);

/// Every UTC minute in `[from, until)` whose local time in `zone` matches one of `patterns`. A
/// local time skipped by a DST change never matches, as ONTAP takes no snapshot then.
fn brute_instants(
    zone: &str,
    patterns: &[Pattern],
    from: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
) -> Vec<chrono::DateTime<chrono::Utc>> {
    use chrono::{Datelike, Timelike};
    let tz: chrono_tz::Tz = zone.parse().unwrap();
    let mut out = Vec::new();
    let mut t = from;
    while t < until {
        let l = t.with_timezone(&tz);
        if patterns.iter().any(|(m, h, sunday)| {
            l.minute() == *m
                && h.is_none_or(|h| l.hour() == h)
                && (!sunday || l.weekday() == chrono::Weekday::Sun)
        }) {
            out.push(t);
        }
        t += chrono::TimeDelta::minutes(1);
    }
    out
}

/// The scheduled snapshots of a volume of `kind` (the estate's policies: hourly :05 + daily
/// 00:00, daily 00:00, weekly Sunday 02:15).
fn schedule_patterns(kind: usize) -> &'static [Pattern] {
    match kind {
        0 => &[(5, None, false), (0, Some(0), false)],
        1 => &[(0, Some(0), false)],
        _ => &[(15, Some(2), true)],
    }
}

/// The estate's windows by kind: (name prefix, local start, expected, max).
fn window_of(kind: usize) -> (&'static str, Pattern, i64, i64) {
    match kind {
        0 => ("h", (50, Some(0), false), 30, 45),
        1 => ("d", (30, Some(23), false), 120, 240),
        _ => ("w", (0, Some(1), true), 360, 600),
    }
}

/// What a brute-force look at the estate says, per occurrence of every window on every volume.
struct Oracle {
    occurrences: u64,
    /// Occurrences with a start within `shift_limit` after the configured one at which `max`
    /// plus the guard on both sides holds no scheduled snapshot.
    with_fitting_gap: u64,
    /// Occurrences whose backup may still run at the end of the period (configured start plus
    /// `shift_limit` and `max` past it): the agent stops those and records them failed.
    near_end: u64,
    /// Scheduled snapshots taken while the baseline's clone lives: strictly after the
    /// configured start and before the drawn backup's end (capped at the end of the period).
    baseline_captures: u64,
}

/// The backup drawn for the occurrence of `window` on `volume` configured at `start`.
fn drawn(
    draws: &simulate::draw::Draws,
    cluster: &str,
    volume: &str,
    window: &str,
    start: chrono::DateTime<chrono::Utc>,
    expected_minutes: i64,
    max: chrono::TimeDelta,
) -> simulate::draw::Backup {
    draws.backup(
        &snapwarden::agent::state::OccurrenceRef {
            cluster,
            svm: "svm1",
            volume,
            window,
            start,
        },
        chrono::TimeDelta::minutes(expected_minutes),
        max,
    )
}

fn oracle(volumes: usize, days: i64, draws: simulate::draw::Draws) -> Oracle {
    use chrono::TimeDelta;
    let from: chrono::DateTime<chrono::Utc> = FROM.parse().unwrap();
    let end = from + TimeDelta::days(days);
    let guard = TimeDelta::minutes(5);
    let shift_limit = TimeDelta::hours(2);
    let mut o = Oracle {
        occurrences: 0,
        with_fitting_gap: 0,
        near_end: 0,
        baseline_captures: 0,
    };
    let clusters = ["east", "west", "tokyo"];
    // Instants per (cluster, kind): volumes of one pair share them.
    let mut memo: std::collections::HashMap<(usize, usize), (Vec<_>, Vec<_>)> =
        std::collections::HashMap::new();
    for i in 0..volumes {
        let (ci, kind) = (i % 3, (i / 3) % 3);
        let zone = ZONES[ci];
        let volume = format!("{}_{i}", ["hourly", "daily", "weekly"][kind]);
        let (prefix, start, expected, max) = window_of(kind);
        let max = TimeDelta::minutes(max);
        let (snaps, starts) = memo.entry((ci, kind)).or_insert_with(|| {
            (
                brute_instants(
                    zone,
                    schedule_patterns(kind),
                    from - TimeDelta::days(1),
                    end + TimeDelta::days(2),
                ),
                brute_instants(zone, &[start], from, end),
            )
        });
        let clear = |a, b| !snaps.iter().any(|x| *x >= a && *x <= b);
        let window = format!("{prefix}-{}", clusters[ci]);
        for &s in starts.iter() {
            o.occurrences += 1;
            if s + shift_limit + max > end {
                o.near_end += 1;
            }
            let mut t = s;
            while t <= s + shift_limit {
                if clear(t - guard, t + max + guard) {
                    o.with_fitting_gap += 1;
                    break;
                }
                t += TimeDelta::minutes(1);
            }
            let backup = drawn(&draws, clusters[ci], &volume, &window, s, expected, max);
            let until = (s + backup.duration).min(end);
            o.baseline_captures += snaps.iter().filter(|x| **x > s && **x < until).count() as u64;
        }
    }
    o
}

#[test]
fn two_hundred_volumes_for_a_month_coordinated_against_a_brute_force_oracle() {
    let policy = load(&estate(200, ""));
    let s = settings(30, 11, 0.0);
    let o = oracle(200, 30, s_draws(&s));
    let c = simulate::compare(&policy, &s).unwrap();
    show(&c.coordinated);
    show(&c.uncoordinated);
    eprintln!(
        "oracle: {} occurrences, {} with a fitting gap, {} near the end; the baseline's clones capture {} scheduled snapshots",
        o.occurrences, o.with_fitting_gap, o.near_end, o.baseline_captures
    );
    let (co, un) = (&c.coordinated, &c.uncoordinated);
    assert_eq!(co.volumes, 200);
    assert_eq!(co.cycles_planned, o.occurrences);
    assert_eq!(un.cycles_planned, o.occurrences);
    // Every occurrence of every window has a fitting gap (by the oracle, not the planner):
    // the agent runs them all and no scheduled snapshot captures a clone.
    assert_eq!(o.with_fitting_gap, o.occurrences);
    // Completed, but for backups still running at the end of the period (stopped, failed).
    assert_eq!(co.cycles_skipped + co.cycles_overrun, 0, "{co:?}");
    assert_eq!(
        co.cycles_completed + co.cycles_failed,
        o.occurrences,
        "{co:?}"
    );
    assert!(
        co.cycles_failed <= o.near_end,
        "{co:?} near the end: {}",
        o.near_end
    );
    assert_eq!(co.chain_conflicts, 0, "{co:?}");
    assert!(co.recorded_conflicts.values().all(|n| *n == 0), "{co:?}");
    assert_eq!(co.max_locked_backing_snapshots, 0);
    // The schedule-blind baseline collides exactly as often as the oracle counts.
    assert!(un.chain_conflicts > 0);
    assert_eq!(un.chain_conflicts, o.baseline_captures, "{un:?}");
    assert!(un.locked_backing_snapshot_hours > 0.0);
    for r in [co, un] {
        assert_eq!(r.leaked_objects, 0, "{r:?}");
        assert_eq!(r.foreign_objects_deleted, 0, "{r:?}");
    }
}

fn s_draws(s: &Settings) -> simulate::draw::Draws {
    simulate::draw::Draws {
        seed: s.seed,
        overrun_rate: s.overrun_rate,
    }
}

#[test]
fn two_hundred_volumes_overruns_and_a_gapless_window_recommend_then_switch_to_flexclone() {
    // A week: the rule's period (3 within 7d), long enough to raise, switch and stay quiet.
    const DAYS: i64 = 7;
    // Overruns everywhere, and `long` on east/svm1/hourly_0 has no fitting gap at all: every
    // day its clone lives over 03:05 (and 04:05 when it runs long).
    let from: chrono::DateTime<chrono::Utc> = FROM.parse().unwrap();
    let end = from + chrono::TimeDelta::days(DAYS);
    let snaps = brute_instants(
        ZONES[0],
        schedule_patterns(0),
        from,
        end + chrono::TimeDelta::days(1),
    );
    let starts = brute_instants(ZONES[0], &[(0, Some(3), false)], from, end);
    assert_eq!(starts.len(), DAYS as usize);
    for s in &starts {
        // No start in the next two hours keeps 90 minutes plus the guards clear of :05.
        let fits = (0..=120).any(|m| {
            let t = *s + chrono::TimeDelta::minutes(m);
            let (a, b) = (
                t - chrono::TimeDelta::minutes(5),
                t + chrono::TimeDelta::minutes(95),
            );
            !snaps.iter().any(|x| *x >= a && *x <= b)
        });
        assert!(!fits, "{s}");
    }
    let text = estate(200, NO_GAP);
    let unlicensed = simulate::coordinated(&load(&text), &settings(DAYS, 5, 0.2)).unwrap();
    show(&unlicensed);
    assert!(unlicensed.cycles_overrun > 0, "{unlicensed:?}");
    // One a day at least, all on hourly_0: its occurrences are recorded as conflicts and raise
    // a recommendation for that volume only.
    assert!(unlicensed.chain_conflicts >= DAYS as u64, "{unlicensed:?}");
    assert_eq!(
        unlicensed.recorded_conflicts["chain_conflict"], unlicensed.chain_conflicts,
        "{unlicensed:?}"
    );
    let recs = &unlicensed.flexclone_recommendations;
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].volume, "hourly_0");
    assert!(
        recs[0].evidence.contains("not licensed"),
        "{}",
        recs[0].evidence
    );
    assert_eq!(unlicensed.leaked_objects, 0, "{unlicensed:?}");
    assert_eq!(unlicensed.foreign_objects_deleted, 0, "{unlicensed:?}");

    // Licensed with `use_when_licensed`: after the third conflict the volume switches to
    // FlexClone, and its conflicts stop (the rest of the week has none).
    let switching = text
        .replacen(
            "licenses = [\"snaprestore\"]",
            "licenses = [\"snaprestore\", \"flexclone\"]",
            1,
        )
        .replace(
            "within = \"7d\"",
            "within = \"7d\"\nuse_when_licensed = true",
        );
    let switched = simulate::coordinated(&load(&switching), &settings(DAYS, 5, 0.2)).unwrap();
    show(&switched);
    // The switch comes once three counting conflicts (chain conflicts, locked backing
    // snapshots, late releases) are journaled: the first days at most. After it, FlexClone
    // clones capture nothing: far fewer chain conflicts than the unlicensed week's.
    let counting: u64 = ["chain_conflict", "locked", "late_release"]
        .iter()
        .map(|k| switched.recorded_conflicts[*k])
        .sum();
    assert!(counting >= 3, "{switched:?}");
    assert!(switched.chain_conflicts >= 1, "{switched:?}");
    assert!(switched.chain_conflicts <= 4, "{switched:?}");
    assert!(
        switched.chain_conflicts * 2 < unlicensed.chain_conflicts,
        "{switched:?} {unlicensed:?}"
    );
    assert_eq!(switched.leaked_objects, 0, "{switched:?}");
    assert_eq!(switched.foreign_objects_deleted, 0, "{switched:?}");
}

/// `estate(volumes)` with every window left to finish when it overruns, and `[flexclone]`
/// recommending after `after` counting conflicts within 30 days (none clears within the month).
fn finishing_estate(volumes: usize, after: u64, licensed: bool) -> String {
    let mut text = estate(
        volumes,
        &format!(
            "\n[flexclone]\nrecommend_after = {after}\nwithin = \"30d\"\nuse_when_licensed = true\n"
        ),
    )
    .replace(
        "shift_limit = \"2h\"",
        "shift_limit = \"2h\"\non_overrun = \"finish\"",
    );
    if licensed {
        text = text.replace(
            "licenses = [\"snaprestore\"]",
            "licenses = [\"snaprestore\", \"flexclone\"]",
        );
    }
    text
}

/// What a brute-force look predicts for backups left to finish, per hourly-policy volume (the
/// only kind whose overruns can reach a scheduled snapshot: see the assertion in the oracle).
#[derive(Debug, Default)]
struct Finishing {
    /// Scheduled snapshots taken while a SnapRestore clone lived, all runs on SnapRestore.
    captures: u64,
    /// Backups configured in the period (what the report counts) that ran past `max` and ended
    /// inside the period.
    overruns: u64,
    /// Backups configured in the period that ran past `max` whose `max` ended inside the period
    /// (ended there when not left to finish).
    cut_overruns: u64,
    /// Per volume: counting conflicts (captures are chain conflicts, plus a late release and a
    /// locked backing snapshot; an overrun that captures nothing but ends past the release
    /// deadline is a late release), in occurrence order, and the captures of each occurrence.
    per_volume: std::collections::BTreeMap<String, Vec<(u64, u64)>>,
}

fn finishing_oracle(volumes: usize, days: i64, draws: simulate::draw::Draws) -> Finishing {
    use chrono::TimeDelta;
    let from: chrono::DateTime<chrono::Utc> = FROM.parse().unwrap();
    let end = from + TimeDelta::days(days);
    let guard = TimeDelta::minutes(5);
    let shift_limit = TimeDelta::hours(2);
    let clusters = ["east", "west", "tokyo"];
    let mut f = Finishing::default();
    for i in 0..volumes {
        let (ci, kind) = (i % 3, (i / 3) % 3);
        let volume = format!("{}_{i}", ["hourly", "daily", "weekly"][kind]);
        let (prefix, start, expected, max) = window_of(kind);
        let max = TimeDelta::minutes(max);
        let snaps = brute_instants(
            ZONES[ci],
            schedule_patterns(kind),
            from - TimeDelta::days(1),
            end + TimeDelta::days(2),
        );
        let window = format!("{prefix}-{}", clusters[ci]);
        let mut mine = Vec::new();
        // The agent runs an occurrence configured before the period whose start it shifts
        // into the period.
        for s in brute_instants(ZONES[ci], &[start], from - shift_limit, end) {
            // The nearest fitting start, earlier or later (no ties in this estate): no
            // scheduled snapshot from the start until `max` and the guard after it.
            let fits = |t| !snaps.iter().any(|x| *x >= t && *x < t + max + guard);
            let (mut later, mut earlier) = (None, None);
            let mut d = TimeDelta::zero();
            while d <= shift_limit && later.is_none() && earlier.is_none() {
                later = fits(s + d).then_some(s + d);
                earlier = fits(s - d).then_some(s - d);
                d += TimeDelta::minutes(1);
            }
            assert!(later.is_none() || earlier.is_none() || d == TimeDelta::minutes(1));
            let at = later
                .or(earlier)
                .expect("every occurrence has a fitting gap");
            let backup = drawn(&draws, clusters[ci], &volume, &window, s, expected, max);
            if at < from || at >= end {
                // Shifted out of the period: not run.
                continue;
            }
            let ends = at + backup.duration;
            // A backup still running at the end of the period is stopped there (failed).
            // The report counts cycles by their configured start (the world's counts are all).
            let in_period = s >= from;
            if backup.overruns && in_period && at + max < end {
                f.cut_overruns += 1;
            }
            if ends >= end {
                // Stopped at the end (failed); none of these meets a snapshot before it.
                assert!(
                    !snaps.iter().any(|x| *x > at && *x < end),
                    "{volume} at {at}"
                );
                continue;
            }
            let next = snaps.iter().find(|x| **x > at).copied();
            let captures = snaps.iter().filter(|x| **x > at && **x < ends).count() as u64;
            if kind != 0 {
                assert_eq!(captures, 0, "{volume} at {at}");
            }
            // Released when the backup ends; late past the next snapshot less the guard.
            let counting = match (captures, next.is_some_and(|n| ends > n - guard)) {
                (0, false) => 0,
                (0, true) => 1,
                (n, _) => n + 2,
            };
            f.overruns += u64::from(backup.overruns && in_period);
            f.captures += captures;
            mine.push((counting, captures));
        }
        if kind == 0 {
            f.per_volume.insert(volume, mine);
        }
    }
    f
}

#[test]
fn overruns_left_to_finish_are_recorded_conflicts_that_recommend_then_switch_to_flexclone() {
    const VOLUMES: usize = 60;
    const DAYS: i64 = 30;
    const AFTER: u64 = 30;
    let s = settings(DAYS, 3, 0.5);
    let o = finishing_oracle(VOLUMES, DAYS, s_draws(&s));
    eprintln!("oracle: {o:?}");
    assert!(o.captures > 0 && o.overruns > o.captures, "{o:?}");

    // The default (`on_overrun = "release"`) ends those same backups at max: no conflicts.
    let cut = simulate::coordinated(&load(&estate(VOLUMES, "")), &s).unwrap();
    show(&cut);
    assert_eq!(cut.cycles_overrun, o.cut_overruns, "{cut:?}");
    assert_eq!(cut.chain_conflicts, 0, "{cut:?}");

    // Left to finish, every capture the oracle counts happens and is journaled.
    let text = finishing_estate(VOLUMES, AFTER, false);
    let fin = simulate::coordinated(&load(&text), &s).unwrap();
    show(&fin);
    assert_eq!(fin.cycles_overrun, o.overruns, "{fin:?}");
    assert_eq!(fin.chain_conflicts, o.captures, "{fin:?}");
    assert_eq!(
        fin.recorded_conflicts["chain_conflict"], o.captures,
        "{fin:?}"
    );
    assert_eq!(fin.recorded_conflicts["locked"], o.captures, "{fin:?}");
    let late: u64 = o
        .per_volume
        .values()
        .flatten()
        .filter(|(c, _)| *c > 0)
        .count() as u64;
    assert_eq!(fin.recorded_conflicts["late_release"], late, "{fin:?}");
    assert!(fin.locked_backing_snapshot_hours > 0.0, "{fin:?}");
    // Recurring: a volume is recommended exactly when its conflicts reach `recommend_after`.
    let want: Vec<(&str, u64)> = o
        .per_volume
        .iter()
        .map(|(v, occ)| (v.as_str(), occ.iter().map(|(c, _)| c).sum::<u64>()))
        .filter(|(_, n)| *n >= AFTER)
        .collect();
    // The threshold tells volumes apart: some recur enough, some do not.
    assert!(!want.is_empty() && want.len() < o.per_volume.len(), "{o:?}");
    let got: Vec<(&str, u64)> = fin
        .flexclone_recommendations
        .iter()
        .map(|r| (r.volume.as_str(), r.conflicts))
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, want, "{fin:?}");
    for r in [&cut, &fin] {
        assert_eq!(r.leaked_objects, 0, "{r:?}");
        assert_eq!(r.foreign_objects_deleted, 0, "{r:?}");
    }

    // Licensed with `use_when_licensed`: a volume switches to FlexClone at the first start after
    // its recommendation, and its captures stop there.
    let switched =
        simulate::coordinated(&load(&finishing_estate(VOLUMES, AFTER, true)), &s).unwrap();
    show(&switched);
    let until_switch: u64 = o
        .per_volume
        .values()
        .map(|occ| {
            let mut counted = 0;
            let mut captures = 0;
            for (c, n) in occ {
                if counted >= AFTER {
                    break;
                }
                counted += c;
                captures += n;
            }
            captures
        })
        .sum();
    assert!(until_switch < o.captures, "{o:?}");
    assert_eq!(switched.chain_conflicts, until_switch, "{switched:?}");
    assert_eq!(switched.cycles_overrun, o.overruns, "{switched:?}");
    assert_eq!(switched.leaked_objects, 0, "{switched:?}");
    assert_eq!(switched.foreign_objects_deleted, 0, "{switched:?}");
}
