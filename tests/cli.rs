//! End-to-end tests of `snapwarden check` and `snapwarden plan`: exit codes, output, JSON shape.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const FROM: &str = "2026-11-28T12:00:00Z";

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

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

/// The demo policy with only the windows named kept (policy files are small; this keeps tests
/// readable without a second copy of the demo).
fn demo_with_windows(dir: &Path, keep: &[&str]) -> std::path::PathBuf {
    let demo = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/planning-demo.toml"),
    )
    .unwrap();
    let mut out = String::new();
    for (i, block) in demo.split("[[window]]").enumerate() {
        if i == 0 {
            out.push_str(block);
        } else if keep
            .iter()
            .any(|w| block.contains(&format!("name = \"{w}\"")))
        {
            out.push_str("[[window]]");
            out.push_str(block);
        }
    }
    let path = dir.join("policy.toml");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn check_on_the_demo_predicts_conflicts_with_suggestions_and_exits_1() {
    let o = snapwarden(&["check", "config/planning-demo.toml", "--from", FROM]);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(
            "config/planning-demo.toml: valid (1 cluster(s), 4 volume(s), 4 window(s))"
        ),
        "{out}"
    );
    assert!(
        out.contains("chain_conflict: hourly at 23:05 falls inside the lifecycle"),
        "{out}"
    );
    assert!(out.contains("suggestion: no free gap of 1h36m (max 1h30m + guard 5m + 1m, as a start comes at the earliest the minute after a snapshot) exists in vol_files's schedule"), "{out}");
    assert!(
        out.contains("window exchange: shifted 7 times; suggestion: start at 02:20 Europe/Berlin"),
        "{out}"
    );
}

#[test]
fn check_exits_0_when_nothing_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let policy = demo_with_windows(dir.path(), &["sql-nightly", "exchange"]);
    let o = snapwarden(&["check", policy.to_str().unwrap(), "--from", FROM]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {} stderr: {}",
        stdout(&o),
        stderr(&o)
    );
    assert!(stdout(&o).contains("no conflicts predicted"));
}

#[test]
fn check_exits_2_with_located_errors_for_an_invalid_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[agent]\nguard = \"5 minutes\"\n\n[[cluster]]\nname = \"c\"\nendpoint = \"simulator\"\ntimezone = \"Europe/Berln\"\n",
    )
    .unwrap();
    let o = snapwarden(&["check", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    let file = path.display().to_string();
    assert!(err.contains(&format!("{file}:2:9: ")), "{err}");
    assert!(err.contains(&format!("{file}:7:12: ")), "{err}");
    assert!(
        err.contains("Europe/Berlin"),
        "the zone error suggests the close match: {err}"
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn a_policy_that_reads_schedules_from_ontap_is_checked_offline_as_far_as_it_can_be() {
    // Offline, minimal.toml is valid: what needs the cluster (its zone, the volume's schedules)
    // is listed as not checked, and the exit code speaks of what was checked.
    let o = snapwarden(&["check", "config/minimal.toml", "--from", FROM, "--offline"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("config/minimal.toml: valid (1 cluster(s), 1 volume(s), 1 window(s))"),
        "{out}"
    );
    assert!(
        out.contains(
            "not checked offline (these need the cluster; run check without --offline to check them):\n  \
             cluster prod-a: its time zone (timezone = \"auto\") and the snapshot schedules of vol_sql \
             (snapshot_policy = \"ontap\"); not planned: prod-a/svm1/vol_sql\n"
        ),
        "{out}"
    );
    // JSON keeps stdout to the plan; the note goes to stderr.
    let o = snapwarden(&[
        "check",
        "config/minimal.toml",
        "--from",
        FROM,
        "--offline",
        "--output",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan: Value = serde_json::from_str(&stdout(&o)).expect("JSON on stdout");
    assert_eq!(plan["volumes"], serde_json::json!([]));
    assert!(
        stderr(&o).contains("not planned: prod-a/svm1/vol_sql"),
        "{}",
        stderr(&o)
    );
    // An error elsewhere is still an error offline.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string("config/minimal.toml").unwrap();
    std::fs::write(&bad, text.replace("max = \"50m\"", "max = \"50\"")).unwrap();
    let o = snapwarden(&["check", bad.to_str().unwrap(), "--from", FROM, "--offline"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad duration for `max`"),
        "{}",
        stderr(&o)
    );
    // `plan` cannot plan what it cannot resolve: it refuses, and says what check can do.
    let o = snapwarden(&["plan", "config/minimal.toml", "--from", FROM, "--offline"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("cannot plan offline"), "{err}");
    assert!(err.contains("snapshot_policy = \"ontap\""), "{err}");
    assert!(
        err.contains("check --offline validates everything else"),
        "{err}"
    );
    // Without --offline the cluster is asked; its password cannot be read here.
    let o = snapwarden(&["check", "config/minimal.toml", "--from", FROM]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("cluster prod-a") && err.contains("SNAPWARDEN_PROD_A_PASSWORD"),
        "{err}"
    );
    assert!(err.contains("--offline"), "{err}");
}

#[test]
fn plan_json_has_the_documented_shape() {
    let o = snapwarden(&[
        "plan",
        "config/planning-demo.toml",
        "--from",
        FROM,
        "--hours",
        "24",
        "--output",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let plan: Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    assert_eq!(plan["from"], "2026-11-28T12:00:00Z");
    assert_eq!(plan["until"], "2026-11-29T12:00:00Z");
    let volumes = plan["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 4);
    let exch = volumes.iter().find(|v| v["volume"] == "vol_exch").unwrap();
    assert_eq!(exch["cluster"], "demo");
    assert_eq!(exch["svm"], "svm1");
    assert_eq!(exch["timezone"], "Europe/Berlin");
    assert_eq!(
        exch["scheduled_snapshots"].as_array().unwrap().len(),
        26,
        "24 hourly + daily + weekly (Sunday)"
    );
    assert_eq!(exch["scheduled_snapshots"][0]["schedule"], "hourly");
    assert_eq!(
        exch["scheduled_snapshots"][0]["at"],
        "2026-11-28T13:05:00+01:00"
    );
    let gaps = exch["free_gaps"].as_array().unwrap();
    assert_eq!(
        gaps[0]["start"], "2026-11-28T13:00:00+01:00",
        "the first gap opens at the horizon"
    );
    assert_eq!(gaps[0]["end"], "2026-11-28T13:05:00+01:00");
    assert_eq!(gaps[1]["seconds"], 3600);
    let l = &exch["lifecycles"][0];
    assert_eq!(l["window"], "exchange");
    assert_eq!(l["outcome"], "shifted");
    assert_eq!(l["create_at"], "2026-11-29T02:20:00+01:00");
    assert_eq!(l["release_by"], "2026-11-29T03:00:00+01:00");
    assert_eq!(l["next_scheduled_at"], "2026-11-29T03:05:00+01:00");
    assert_eq!(l["slack_seconds"], 0);
    let outcomes: Vec<&str> = volumes
        .iter()
        .flat_map(|v| v["lifecycles"].as_array().unwrap())
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    for expected in ["fits", "shifted", "skipped", "conflict"] {
        assert!(
            outcomes.contains(&expected),
            "{expected} missing from {outcomes:?}"
        );
    }
    let c = &plan["conflicts"][0];
    for key in [
        "window",
        "cluster",
        "svm",
        "volume",
        "at",
        "scheduled_at",
        "schedule",
        "kind",
        "suggestion",
    ] {
        assert!(!c[key].is_null(), "conflict lacks {key}: {c}");
    }
    assert_eq!(c["window"], "files-weekly");
    assert_eq!(c["kind"], "chain_conflict");
    assert_eq!(c["scheduled_at"], "2026-11-28T23:05:00+01:00");
}

/// A volume that hands its schedule to snapwarden: its managed snapshots and the ones each
/// lifecycle holds back are in the JSON (keys only such volumes have), the window fits, and a
/// `max_defer` too short for the backup is a predicted conflict (exit 1).
#[test]
fn plan_and_check_show_the_managed_snapshots_a_lifecycle_holds_back() {
    let o = snapwarden(&[
        "plan",
        "config/managed-demo.toml",
        "--from",
        "2027-03-01T10:00:00Z",
        "--hours",
        "1",
        "--output",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    let vol = &v["volumes"][0];
    assert_eq!(vol["scheduled_snapshots"].as_array().map(Vec::len), Some(0));
    assert_eq!(vol["managed_snapshots"].as_array().map(Vec::len), Some(30));
    assert_eq!(vol["lifecycles"][0]["outcome"], "fits");
    // The 10:00 backup may hold its clone until 10:07 (max 7m): 10:02 waits 5m10s at most.
    let d = &vol["deferrals"][0];
    assert_eq!(d["at"], "2027-03-01T10:02:00+00:00");
    assert_eq!(d["until"], "2027-03-01T10:07:10+00:00");
    assert_eq!(d["seconds"], 310);
    assert_eq!(d["exceeds_max_defer"], false);
    assert_eq!(d["window"], "db");

    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.toml");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/managed-demo.toml"),
    )
    .unwrap()
    .replace("max_defer = \"8m\"", "max_defer = \"5m\"");
    std::fs::write(&short, text).unwrap();
    let o = snapwarden(&[
        "check",
        short.to_str().unwrap(),
        "--from",
        "2027-03-01T10:00:00Z",
        "--hours",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("max_defer: two_min at 10:02"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn plan_table_reads_as_a_timeline() {
    let o = snapwarden(&[
        "plan",
        "config/planning-demo.toml",
        "--from",
        FROM,
        "--hours",
        "24",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    let sql: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("demo/svm1/vol_sql"))
        .skip_while(|l| !l.contains("01:05"))
        .take(4)
        .collect();
    assert_eq!(
        sql,
        vec![
            "  Sun 2026-11-29 01:05  scheduled snapshot  hourly",
            "  Sun 2026-11-29 01:10  create backing      sql-nightly  [fits, slack 5m] release by 01:55 + guard 5m is before hourly at 02:05",
            "  Sun 2026-11-29 01:55  release by          sql-nightly",
            "  Sun 2026-11-29 02:05  scheduled snapshot  hourly",
        ]
    );
}

#[test]
fn a_bad_from_is_a_usage_error() {
    let o = snapwarden(&["plan", "config/planning-demo.toml", "--from", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("expected RFC 3339"));
}

#[test]
fn simulator_serve_builds_its_world_from_a_policy() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;

    let mut child = Command::new(env!("CARGO_BIN_EXE_snapwarden"))
        .args([
            "simulator",
            "serve",
            "--policy",
            "config/planning-demo.toml",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--clock", "manual", "--start", FROM])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the simulator starts");
    // The first line names the bound address; reading it waits for the server, with no sleep.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first.trim().rsplit("http://").next().unwrap().to_string();
    let mut stream = TcpStream::connect(&addr).expect("the simulator accepts connections");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // admin / netapp1! (base64), the documented default for a policy without a password source.
    write!(
        stream,
        "GET /api/storage/volumes?fields=name HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic YWRtaW46bmV0YXBwMSE=\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    for volume in ["vol_sql", "vol_exch", "vol_files", "vol_erp"] {
        assert!(
            response.contains(&format!("\"name\":\"{volume}\"")),
            "{volume} missing: {response}"
        );
    }
}

/// The streamed JSON of a policy with several volumes parses to exactly the
/// hand-computed document (hourly at :05 in UTC; a 01:00 window of 40 minutes plus a 5-minute
/// guard collides with 01:05 on both volumes; the first start that fits is 01:06).
#[test]
fn streamed_plan_json_matches_a_hand_written_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.toml");
    std::fs::write(
        &path,
        r#"
[agent]
guard = "5m"

[[cluster]]
name = "c"
endpoint = "simulator"
timezone = "UTC"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "p"
copies = [{ schedule = "hourly", count = 6 }]

[[volume]]
cluster = "c"
svm = "s"
name = "v1"
luns = ["/vol/v1/lun0"]
snapshot_policy = "p"

[[volume]]
cluster = "c"
svm = "s"
name = "v2"
luns = ["/vol/v2/lun0"]
snapshot_policy = "p"

[[window]]
name = "w"
volumes = ["c/s/v1", "c/s/v2"]
start = "0 1 * * *"
timezone = "UTC"
expected = "30m"
max = "40m"
on_conflict = "run"
"#,
    )
    .unwrap();
    let o = snapwarden(&[
        "plan",
        path.to_str().unwrap(),
        "--from",
        "2027-05-01T00:30:00Z",
        "--hours",
        "2",
        "--output",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let got: Value = serde_json::from_str(&stdout(&o)).expect("valid JSON");
    let suggestion = "start at 01:06 UTC (start = \"6 1 * * *\") and window w fits all 2 occurrences in the next 2 h";
    let reason = "runs anyway (on_conflict = run): hourly at 01:05 falls inside 01:00–01:45 (max 40m + guard 5m); the clone will be captured";
    let volume = |name: &str| {
        serde_json::json!({
            "cluster": "c",
            "svm": "s",
            "volume": name,
            "timezone": "UTC",
            "scheduled_snapshots": [
                { "schedule": "hourly", "at": "2027-05-01T01:05:00+00:00" },
                { "schedule": "hourly", "at": "2027-05-01T02:05:00+00:00" },
            ],
            "free_gaps": [
                { "start": "2027-05-01T00:30:00+00:00", "end": "2027-05-01T01:05:00+00:00", "seconds": 2100 },
                { "start": "2027-05-01T01:05:00+00:00", "end": "2027-05-01T02:05:00+00:00", "seconds": 3600 },
                { "start": "2027-05-01T02:05:00+00:00", "end": "2027-05-01T02:30:00+00:00", "seconds": 1500 },
            ],
            "lifecycles": [{
                "window": "w",
                "window_start": "2027-05-01T01:00:00+00:00",
                "create_at": "2027-05-01T01:00:00+00:00",
                "release_by": "2027-05-01T01:40:00+00:00",
                "next_scheduled_at": "2027-05-01T01:05:00+00:00",
                "next_schedule": "hourly",
                "slack_seconds": -2400,
                "outcome": "conflict",
                "reason": reason,
            }],
        })
    };
    let conflict = |name: &str| {
        serde_json::json!({
            "window": "w",
            "cluster": "c",
            "svm": "s",
            "volume": name,
            "at": "2027-05-01T01:00:00+00:00",
            "scheduled_at": "2027-05-01T01:05:00+00:00",
            "schedule": "hourly",
            "kind": "chain_conflict",
            "suggestion": suggestion,
        })
    };
    let want = serde_json::json!({
        "from": "2027-05-01T00:30:00Z",
        "until": "2027-05-01T02:30:00Z",
        "guard_seconds": 300,
        "volumes": [volume("v1"), volume("v2")],
        "conflicts": [conflict("v1"), conflict("v2")],
        "suggestions": [{
            "window": "w",
            "offset_seconds": 360,
            "new_start": "6 1 * * *",
            "text": suggestion,
        }],
    });
    assert_eq!(got, want);
    assert!(
        stdout(&o).ends_with("}\n"),
        "one document, newline-terminated"
    );
}

/// Counts read as English ("shifted once", "its only occurrence").
#[test]
fn a_single_shift_and_occurrence_read_as_english() {
    let dir = tempfile::tempdir().unwrap();
    let policy = demo_with_windows(dir.path(), &["exchange"]);
    let o = snapwarden(&[
        "check",
        policy.to_str().unwrap(),
        "--from",
        FROM,
        "--hours",
        "24",
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "window exchange: shifted once; suggestion: start at 02:20 Europe/Berlin \
             (start = \"20 2 * * *\") and window exchange fits its only occurrence in the next 24 h"
        ),
        "{out}"
    );
}

#[test]
fn names_ontap_or_a_label_would_refuse_are_errors_of_check() {
    // A cluster label with a combining accent and a zero-width space, and a volume name ONTAP
    // refuses: both located, exit 2.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("names.toml");
    // The planning demo's cluster is "demo"; its first volume "vol_sql".
    let text = std::fs::read_to_string("config/planning-demo.toml").unwrap();
    let bad = text
        .replace("\"demo\"", "\"prod-e\u{301}\u{200B}\"")
        .replace("demo/", "prod-e\u{301}\u{200B}/")
        .replacen("name = \"vol_sql\"", "name = \"vol_é中\"", 1);
    std::fs::write(&path, bad).unwrap();
    let o = snapwarden(&["check", path.to_str().unwrap(), "--from", FROM]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "cluster name \"prod-e\\u{301}\\u{200b}\" has characters it cannot hold: U+0301 (a combining mark), U+200B (an invisible format character)"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "volume name \"vol_é中\" has characters it cannot hold: 'é' (U+00E9), '中' (U+4E2D)"
        ),
        "{err}"
    );
    assert!(
        err.contains("hint: ONTAP volume names are 1 to 203"),
        "{err}"
    );
}
