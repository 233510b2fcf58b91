//! `snapwarden check`'s table leads with a summary (per window and kind: how many, the first,
//! the suggestion) and lists a bounded number of conflicts unless `--all` is given; its JSON is
//! the same document as before, byte for byte.

use std::process::{Command, Output};

/// Monday 10:00 UTC: the demo's three-minute schedule and windows over the default 7 days.
const DEMO_FROM: &str = "2027-03-01T10:00:00Z";

fn snapwarden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snapwarden"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the snapwarden binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

/// Lines that list one conflict each (the table's listing, not its summary).
fn listed(table: &str) -> usize {
    table
        .lines()
        .filter(|l| l.ends_with("falls inside the lifecycle"))
        .count()
}

#[test]
fn the_demo_check_leads_with_a_summary_and_lists_twenty_conflicts() {
    let o = snapwarden(&["check", "config/demo.toml", "--from", DEMO_FROM]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    // Every predicted conflict was printed before: 3,366 lines.
    assert!(out.lines().count() < 40, "{out}");
    let summary = out
        .split_once(
            "\nthe first 20 of 3360 conflicts in time order (check --all lists every one):\n",
        )
        .unwrap_or_else(|| panic!("no bounded listing in {out}"))
        .0;
    for line in [
        "3360 conflict(s) predicted:",
        "  window files (1,4,7,",
        "    chain_conflict: 3360, the first Mon 2027-03-01 10:01 UTC on demo/svm1/vol_files (3min at 10:03)",
        "    suggestion: no free gap of 3m45s",
        "  window exchange: shifted 3360 times; suggestion: start 1m earlier",
    ] {
        assert!(
            summary.lines().any(|l| l.starts_with(line)),
            "{line:?} missing from the summary:\n{summary}"
        );
    }
    assert_eq!(listed(&out), 20, "{out}");
    assert!(
        out.contains("  Mon 2027-03-01 10:01 UTC  window files  demo/svm1/vol_files  chain_conflict: 3min at 10:03 falls inside the lifecycle\n"),
        "{out}"
    );
    assert!(out.ends_with("  … and 3340 more\n"), "{out}");
}

#[test]
fn check_all_lists_every_conflict_in_time_order() {
    let o = snapwarden(&["check", "config/demo.toml", "--from", DEMO_FROM, "--all"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("\nconflicts in time order:\n"), "{out}");
    assert_eq!(listed(&out), 3360);
    assert!(!out.contains("more\n"));
    // `  Mon 2027-03-01 10:01 UTC  …`: the date and time, in UTC here.
    let times: Vec<&str> = out
        .lines()
        .filter(|l| l.ends_with("falls inside the lifecycle"))
        .map(|l| &l[6..22])
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "not in time order");
}

/// The JSON is what it was before the summary (`tests/data/check_json_small.json` is the output
/// of the release before it, on `tests/data/check_small.toml`), and `--all` does not touch it.
#[test]
fn check_json_is_unchanged_byte_for_byte() {
    let args = [
        "check",
        "tests/data/check_small.toml",
        "--from",
        "2027-03-28T00:00:00Z",
        "--hours",
        "4",
        "--output",
        "json",
    ];
    let expected = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/check_json_small.json"),
    )
    .unwrap();
    let o = snapwarden(&args);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout == expected, "{}", stdout(&o));
    let mut all = args.to_vec();
    all.push("--all");
    assert!(snapwarden(&all).stdout == expected);
    // On the demo's 3,360 conflicts too: --all changes the table only.
    let demo = [
        "check",
        "config/demo.toml",
        "--from",
        DEMO_FROM,
        "--output",
        "json",
    ];
    let mut demo_all = demo.to_vec();
    demo_all.push("--all");
    let (a, b) = (snapwarden(&demo), snapwarden(&demo_all));
    assert!(a.stdout == b.stdout);
    let doc: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(doc["conflicts"].as_array().unwrap().len(), 3360);
}

#[test]
fn a_small_check_lists_every_conflict_without_the_flag() {
    let o = snapwarden(&[
        "check",
        "tests/data/check_small.toml",
        "--from",
        "2027-03-28T00:00:00Z",
        "--hours",
        "4",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let expected = "\
5 conflict(s) predicted:
  window often (0,30 * * * * Europe/Berlin, max 10m, on_conflict run):
    chain_conflict: 4, the first Sun 2027-03-28 01:00 CET on lab/svm1/vol_a (hourly at 01:05)
    suggestion: start 6m later and window often fits all 8 occurrences in the next 4 h
  window rare (0 0,2,4,6,8,10,12,14,16,18,20,22 * * * Europe/Berlin, max 20m, on_conflict skip):
    skipped: 1, the first Sun 2027-03-28 04:00 CEST on lab/svm1/vol_a (hourly at 04:05)
    suggestion: start 6m later and window rare fits its only occurrence in the next 4 h

conflicts in time order:
  Sun 2027-03-28 01:00 CET  window often  lab/svm1/vol_a  chain_conflict: hourly at 01:05 falls inside the lifecycle
  Sun 2027-03-28 03:00 CEST  window often  lab/svm1/vol_a  chain_conflict: hourly at 03:05 falls inside the lifecycle
  Sun 2027-03-28 04:00 CEST  window often  lab/svm1/vol_a  chain_conflict: hourly at 04:05 falls inside the lifecycle
  Sun 2027-03-28 04:00 CEST  window rare  lab/svm1/vol_a  skipped: hourly at 04:05 falls inside the lifecycle
  Sun 2027-03-28 05:00 CEST  window often  lab/svm1/vol_a  chain_conflict: hourly at 05:05 falls inside the lifecycle
";
    let (_, rest) = out.split_once('\n').unwrap();
    assert_eq!(rest, expected);
}
