//! `snapwarden doctor` through the binary against `simulator serve --tls` on the hazards demo
//! world (config/simulator/hazards.toml) and its policy (config/hazards.toml): every planted
//! hazard reported with its code, severity and fix, nothing above info for the clean volume,
//! the documented JSON, GETs only; and bad input (unreachable cluster, refused credentials, bad
//! `--older-than`) answered with a clear error and exit 2; and `init` then `doctor` on the same
//! world, which reports the hazards the world plants on its volumes.

mod process_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use process_support::{free_port, output_within, SimRest, TlsSimulator};
use serde_json::Value;

const BOUND: Duration = Duration::from_secs(60);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The world's clock is the one docs/doctor.md serves it with: pinned the hour after its
/// newest snapshot. On a real clock its snapshots keep growing with the date, and a week later
/// vol_locked's backing snapshot fills the reserve: a finding the world does not plant.
const WORLD_START: &str = "2026-12-01T03:00:00Z";

fn serve() -> TlsSimulator {
    TlsSimulator::start(
        &repo("config/simulator/hazards.toml"),
        &["--clock", "manual", "--start", WORLD_START],
        Stdio::null(),
    )
}

/// config/hazards.toml pointed at `url`, pinning `fingerprint` instead of `insecure = true`.
fn policy_against(url: &str, fingerprint: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo("config/hazards.toml"))
        .unwrap()
        .replace("https://127.0.0.1:8443", url)
        .replace(
            "insecure = true",
            &format!("pin_sha256 = \"{fingerprint}\""),
        );
    assert!(text.contains(url) && text.contains("pin_sha256"), "{text}");
    let path = dir.join("hazards.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn doctor(policy: &Path, password: &str, extra: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_snapwarden"));
    cmd.arg("doctor")
        .arg(policy)
        .args(extra)
        .env("SNAPWARDEN_HAZARDS_PASSWORD", password);
    output_within(cmd, BOUND)
}

fn requests(rest: &SimRest) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(rest.get("/simulator/v1/requests"))
}

/// The findings of one volume with one code.
fn of<'a>(findings: &'a [Value], volume: &str, code: &str) -> Vec<&'a Value> {
    findings
        .iter()
        .filter(|f| f["volume"] == volume && f["code"] == code)
        .collect()
}

/// Each planted hazard: (volume, code, severity, a fix that must appear, whether the world alone
/// plants it — on the volume under any policy that covers it — rather than config/hazards.toml:
/// its clone method, managed copies, window or coverage).
#[rustfmt::skip]
const PLANTED: [(&str, &str, &str, &str, bool); 13] = [
    ("vol_autodelete", "autodelete_destroy", "critical", "-commitment try", true),
    ("vol_flexclone", "license_missing", "critical", "system license show -package flexclone", false),
    ("vol_locked", "chain_lock", "critical", "volume snapshot delete -vserver svm1 -volume vol_locked -snapshot hourly.2026-11-30_2305", true),
    ("vol_locked", "snapshot_locking", "warning", "snaplock_expiry_time", true),
    ("vol_locked", "orphan_foreign_snapshot", "warning", "lun delete -vserver svm1 -path /vol/vol_locked/veeam_restore_lun0", true),
    ("vol_ordinal", "ordinal_naming", "warning", "\"scheduled_snapshot_naming_scheme\": \"create_time\"", true),
    ("vol_managed", "double_schedule", "warning", "-snapshot-policy", false),
    ("vol_mirror", "busy_snapshot", "warning", "snapmirror show -source-path svm1:vol_mirror", true),
    ("vol_orphans", "orphan_backing_snapshot", "warning", "volume snapshot delete -vserver svm1 -volume vol_orphans -snapshot snapwarden.nightly.20261130T021000Z", true),
    ("vol_orphans", "orphan_foreign_snapshot", "warning", "VeeamAUX_vol_orphans_restore", true),
    ("vol_orphans", "snapshot_reserve_exceeded", "warning", "-percent-snapshot-space", true),
    ("vol_uncovered", "volume_not_covered", "warning", "name = \"vol_uncovered\"", false),
    ("vol_conflict", "predicted_conflict", "warning", "start = ", false),
];

#[test]
fn doctor_reports_every_planted_hazard_with_its_fix_reading_only() {
    let sim = serve();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_against(&sim.cluster("hazards"), &sim.fingerprint, dir.path());
    let rest = SimRest::new(&sim.url, "admin", "netapp1!");
    let before = requests(&rest);

    let out = doctor(&policy, "netapp1!", &["--output", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "critical findings: exit 2\n{stdout}\n{stderr}"
    );

    // Read-only: the simulator answered GETs and nothing else.
    let after = requests(&rest);
    for method in ["post", "patch", "delete", "other"] {
        assert_eq!(
            after[method], before[method],
            "doctor sent a {method}: {after}"
        );
    }
    assert!(
        after["get"].as_u64().unwrap() > before["get"].as_u64().unwrap(),
        "{before} → {after}"
    );

    // The documented JSON (docs/doctor.md), field by field.
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(doc["older_than_seconds"], 86_400);
    assert!(doc["generated_at"].as_str().unwrap().ends_with('Z'));
    let findings = doc["findings"].as_array().unwrap().clone();
    for severity in ["critical", "warning", "info"] {
        let n = findings
            .iter()
            .filter(|f| f["severity"] == severity)
            .count();
        assert_eq!(doc["summary"][severity], n, "summary.{severity}");
    }
    for f in &findings {
        assert_eq!(f["cluster"], "hazards", "{f}");
        for key in ["severity", "code", "detail", "impact"] {
            assert!(f[key].as_str().is_some_and(|s| !s.is_empty()), "{key}: {f}");
        }
        let fix = &f["fix"];
        assert!(fix["cli"].is_array() && fix["rest"].is_array(), "{f}");
        if f["severity"] != "info" {
            let has_fix = !fix["cli"].as_array().unwrap().is_empty()
                || !fix["rest"].as_array().unwrap().is_empty()
                || fix["policy"].is_string();
            assert!(has_fix, "a finding above info names its fix: {f}");
        }
    }
    // Most severe first.
    let rank = |s: &Value| match s.as_str() {
        Some("critical") => 0,
        Some("warning") => 1,
        _ => 2,
    };
    assert!(findings
        .windows(2)
        .all(|w| rank(&w[0]["severity"]) <= rank(&w[1]["severity"])));

    for (volume, code, severity, fix, _) in PLANTED {
        let found = of(&findings, volume, code);
        assert!(!found.is_empty(), "{volume} {code} missing:\n{stdout}");
        for f in &found {
            assert_eq!(f["severity"], severity, "{f}");
        }
        assert!(
            found
                .iter()
                .any(|f| f["fix"].to_string().contains(&fix.replace('"', "\\\""))),
            "{volume} {code}: no fix with {fix:?}: {found:?}"
        );
    }
    // Details the hazards carry.
    let chain = of(&findings, "vol_locked", "chain_lock")[0];
    assert_eq!(chain["snapshot"], "VeeamSourceSnapshot_vol_locked_1");
    assert_eq!(chain["luns"][0], "/vol/vol_locked/veeam_restore_lun0");
    let detail = chain["detail"].as_str().unwrap();
    assert!(
        detail.contains("hourly.2026-11-30_2305, hourly.2026-12-01_0005")
            && detail.contains("locked until 2036-01-01T00:00:00+00:00")
            && detail.contains("rotates out at"),
        "{detail}"
    );
    let busy: Vec<&str> = of(&findings, "vol_mirror", "busy_snapshot")
        .iter()
        .map(|f| f["detail"].as_str().unwrap())
        .collect();
    assert!(
        busy.iter().any(|d| d.ends_with("owners snapmirror")),
        "{busy:?}"
    );
    assert!(busy.iter().any(|d| d.ends_with("owners dump")), "{busy:?}");
    let orphan = of(&findings, "vol_orphans", "orphan_backing_snapshot")[0];
    assert_eq!(
        orphan["luns"][0],
        "/vol/vol_orphans/snapwarden.nightly.20261130T021000Z.lun0"
    );
    assert!(orphan["bytes"].as_u64().unwrap() >= 8 << 30, "{orphan}");

    // The clean volume: nothing above info.
    let clean: Vec<&Value> = findings
        .iter()
        .filter(|f| f["volume"] == "vol_clean")
        .collect();
    assert!(
        clean.iter().all(|f| f["severity"] == "info"),
        "vol_clean: {clean:?}"
    );

    // The table says the same for people.
    let out = doctor(&policy, "netapp1!", &[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        table.contains("CRITICAL autodelete_destroy  hazards/svm1/vol_autodelete"),
        "{table}"
    );
    assert!(table.contains("(exit 2)"), "{table}");
}

#[test]
fn refused_credentials_and_an_unreachable_cluster_end_the_audit_with_exit_2() {
    let sim = serve();
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_against(&sim.cluster("hazards"), &sim.fingerprint, dir.path());
    let out = doctor(&policy, "wrong", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cluster hazards: authentication failed")
            && stderr.contains("could not run"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no findings without every cluster");

    let closed = format!("https://127.0.0.1:{}", free_port());
    let policy = policy_against(&closed, &sim.fingerprint, dir.path());
    let out = doctor(&policy, "netapp1!", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cluster hazards"), "{stderr}");
}

#[test]
fn bad_older_than_values_are_refused_before_any_cluster_is_asked() {
    let policy = repo("config/hazards.toml");
    for (value, says) in [
        ("0", "no unit"),
        ("0s", "not above zero"),
        ("-1h", ""),
        ("400d", "longer than a year"),
        ("99999999999999d", ""),
        ("soon", ""),
    ] {
        let out = doctor(&policy, "netapp1!", &["--older-than", value]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.contains("--older-than"), "{value}: {stderr}");
        assert!(stderr.contains(says), "{value}: {stderr}");
    }
    let out = doctor(&policy, "netapp1!", &["--output", "yaml"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The three commands of docs/doctor.md: serve the hazards world, `init` a policy from it
/// (pinning the certificate), `doctor` that policy. Every hazard the world plants on its
/// volumes is reported as config/hazards.toml's audit reports it; those of that hand-written
/// policy are not (init's policy lets `clone` default to `auto`, hands no copies over and covers
/// every volume with LUNs).
#[test]
fn init_then_doctor_on_the_hazards_world_reports_its_planted_hazards() {
    let sim = serve();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let mut init = Command::new(env!("CARGO_BIN_EXE_snapwarden"));
    init.arg("init")
        .args(["--cluster", &format!("hazards={}", sim.cluster("hazards"))])
        .args([
            "--username",
            "admin",
            "--password-env",
            "SNAPWARDEN_HAZARDS_PASSWORD",
        ])
        .args(["--pin-sha256", &sim.fingerprint])
        .arg("--output-file")
        .arg(&policy)
        .env("SNAPWARDEN_HAZARDS_PASSWORD", "netapp1!");
    let out = output_within(init, BOUND);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = doctor(&policy, "netapp1!", &["--output", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "critical findings: exit 2\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let findings = doc["findings"].as_array().unwrap().clone();
    for (volume, code, severity, fix, of_the_world) in PLANTED {
        let found = of(&findings, volume, code);
        if !of_the_world {
            assert!(found.is_empty(), "{volume} {code}: {found:?}");
            continue;
        }
        assert!(!found.is_empty(), "{volume} {code} missing:\n{stdout}");
        for f in &found {
            assert_eq!(f["severity"], severity, "{f}");
        }
        assert!(
            found
                .iter()
                .any(|f| f["fix"].to_string().contains(&fix.replace('"', "\\\""))),
            "{volume} {code}: no fix with {fix:?}: {found:?}"
        );
    }
    // Nothing above info but what the world plants (a predicted conflict would be the window
    // init drafted, which the planner moves to fit here).
    let planted: Vec<(&str, &str)> = PLANTED.iter().filter(|p| p.4).map(|p| (p.0, p.1)).collect();
    let above_info: Vec<&Value> = findings
        .iter()
        .filter(|f| f["severity"] != "info")
        .filter(|f| {
            !planted.contains(&(
                f["volume"].as_str().unwrap_or_default(),
                f["code"].as_str().unwrap_or_default(),
            ))
        })
        .collect();
    assert!(above_info.is_empty(), "{above_info:#?}");
}

/// docs/doctor.md and the headers of the world and its policy serve it on the clock these tests use, so what
/// they say it reports is what it reports on any day.
#[test]
fn the_documented_commands_serve_the_world_on_this_clock() {
    let clock = format!("--clock manual --start {WORLD_START}");
    for file in [
        "docs/doctor.md",
        "config/simulator/hazards.toml",
        "config/hazards.toml",
    ] {
        let text = std::fs::read_to_string(repo(file)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let serves: Vec<usize> = (0..lines.len())
            .filter(|&i| {
                lines[i].contains("simulator serve --config config/simulator/hazards.toml")
            })
            .collect();
        assert!(!serves.is_empty(), "{file}: no serve command");
        for i in serves {
            let command = lines[i..lines.len().min(i + 2)].join("\n");
            assert!(command.contains(&clock), "{file}:{}: {command}", i + 1);
        }
    }
}
