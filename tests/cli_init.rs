//! `snapwarden init` against `snapwarden simulator serve --tls` (a real REST peer): the written
//! policy names exactly the world file's volumes that hold LUNs (read from the world file here,
//! not from init), `check` accepts it, the read made GET requests only (the simulator's own
//! counts), `--svm` restricts it; and every bad input is exit 2 with the problem named and
//! nothing written.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

mod process_support;

use process_support::{free_port, output_within, SimRest, TlsSimulator};

const PASSWORD: &str = "s3cret-init";
const PASSWORD_ENV: &str = "SNAPWARDEN_INIT_TEST_PASSWORD";

/// Two clusters; volumes with LUNs at the root of the volume, one without LUNs, one whose
/// name ONTAP allows but the policy's volume rule refuses (`-`), and two SVMs.
const WORLD: &str = r#"
[[users]]
name = "snapwarden"
password = "s3cret-init"

[[clusters]]
name = "prod-a"
timezone = "Europe/Berlin"

[[clusters.svms]]
name = "svm1"
[[clusters.svms.volumes]]
name = "vol_sql"
luns = [{ name = "lun0" }, { name = "log0" }]
[[clusters.svms.volumes]]
name = "vol_nfs"
[[clusters.svms.volumes]]
name = "vol-dash"
luns = [{ name = "lun0" }]

[[clusters.svms]]
name = "svm2"
[[clusters.svms.volumes]]
name = "vol_vm"
luns = [{ name = "esx0" }]

[[clusters]]
name = "prod-b"
timezone = "America/New_York"

[[clusters.svms]]
name = "svm_b"
[[clusters.svms.volumes]]
name = "vol_db"
luns = [{ name = "data" }, { name = "logs" }]
"#;

/// The world's volumes the policy's naming rules refuse (docs/policy.md, "Names"), by hand.
const REFUSED: &[&str] = &["vol-dash"];

/// (cluster, svm, volume) → sorted LUN paths.
type Volumes = BTreeMap<(String, String, String), Vec<String>>;

/// What the world file holds: every volume with LUNs whose name the policy takes, with its
/// LUN paths, read from the world file's own TOML.
fn world_volumes(svm_filter: Option<&str>, clusters: &[&str]) -> Volumes {
    let world: toml::Value = toml::from_str(WORLD).unwrap();
    let mut out = Volumes::new();
    for c in world["clusters"].as_array().unwrap() {
        let cluster = c["name"].as_str().unwrap();
        if !clusters.contains(&cluster) {
            continue;
        }
        for s in c["svms"].as_array().unwrap() {
            let svm = s["name"].as_str().unwrap();
            if svm_filter.is_some_and(|f| f != svm) {
                continue;
            }
            for v in s["volumes"].as_array().unwrap() {
                let name = v["name"].as_str().unwrap();
                let luns = v.get("luns").and_then(|l| l.as_array());
                let Some(luns) = luns.filter(|l| !l.is_empty()) else {
                    continue;
                };
                if REFUSED.contains(&name) {
                    continue;
                }
                let mut paths: Vec<String> = luns
                    .iter()
                    .map(|l| format!("/vol/{name}/{}", l["name"].as_str().unwrap()))
                    .collect();
                paths.sort();
                out.insert((cluster.into(), svm.into(), name.into()), paths);
            }
        }
    }
    out
}

/// What a written policy lists, read with the `toml` crate (not snapwarden's reader).
fn policy_volumes(text: &str) -> (Volumes, Vec<String>, toml::Value) {
    let policy: toml::Value = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut out = Volumes::new();
    for v in policy["volume"].as_array().unwrap() {
        assert_eq!(v["snapshot_policy"].as_str(), Some("ontap"), "{v}");
        let mut luns: Vec<String> = v["luns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        luns.sort();
        let key = |k: &str| v[k].as_str().unwrap().to_string();
        out.insert((key("cluster"), key("svm"), key("name")), luns);
    }
    let windows = policy["window"].as_array().unwrap();
    assert_eq!(windows.len(), 1, "{text}");
    let ids = windows[0]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    (out, ids, policy)
}

struct Served {
    sim: TlsSimulator,
    admin: SimRest,
}

impl Served {
    fn start() -> (Served, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let world = dir.path().join("world.toml");
        std::fs::write(&world, WORLD).unwrap();
        let sim = TlsSimulator::start(&world, &["--clock", "manual"], std::process::Stdio::null());
        let admin = SimRest::new(&sim.cluster("prod-a"), "snapwarden", PASSWORD);
        (Served { sim, admin }, dir)
    }

    fn cluster_arg(&self, name: &str) -> String {
        format!("{name}={}", self.sim.cluster(name))
    }

    async fn requests(&self) -> Value {
        self.admin.get("/simulator/v1/requests").await
    }
}

fn init(args: &[String], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_snapwarden"));
    cmd.arg("init").args(args).env_remove(PASSWORD_ENV);
    for (k, v) in env {
        cmd.env(k, v);
    }
    output_within(cmd, Duration::from_secs(60))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_the_volumes_with_luns_that_check_accepts_with_gets_only() {
    let (served, dir) = Served::start();
    let out = dir.path().join("policy.toml");
    let before = served.requests().await;
    let mut args = vec![
        "--cluster".into(),
        served.cluster_arg("prod-a"),
        "--cluster".into(),
        served.cluster_arg("prod-b"),
        "--username".into(),
        "snapwarden".into(),
        "--password-env".into(),
        PASSWORD_ENV.into(),
        "--pin-sha256".into(),
        served.sim.fingerprint.clone(),
        "--output-file".into(),
    ];
    args.push(out.to_string_lossy().into_owned());
    let o = init(&args, &[(PASSWORD_ENV, PASSWORD)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));

    // Read-only: GETs, nothing else, reached the clusters.
    let after = served.requests().await;
    for method in ["post", "patch", "delete", "other"] {
        assert_eq!(after[method], before[method], "{method}: {after}");
    }
    assert!(after["get"].as_u64() > before["get"].as_u64(), "{after}");

    let written = std::fs::read_to_string(&out).unwrap();
    let (volumes, ids, policy) = policy_volumes(&written);
    assert_eq!(volumes, world_volumes(None, &["prod-a", "prod-b"]));
    let expected_ids: Vec<String> = volumes
        .keys()
        .map(|(c, s, v)| format!("{c}/{s}/{v}"))
        .collect();
    assert_eq!(ids, expected_ids);
    // The first cluster's zone, as it reports it.
    assert_eq!(
        policy["window"][0]["timezone"].as_str(),
        Some("Europe/Berlin")
    );
    // The credentials are named, never written; TLS is the operator's pin.
    assert!(!written.contains(PASSWORD));
    for c in policy["cluster"].as_array().unwrap() {
        assert_eq!(c["password_env"].as_str(), Some(PASSWORD_ENV));
        assert_eq!(c["username"].as_str(), Some("snapwarden"));
        assert!(c["pin_sha256"].is_str());
    }
    // What was left out is said, with the reason.
    assert!(
        written.contains("prod-a/svm1/vol-dash:")
            && written.contains("volume name \"vol-dash\" has characters it cannot hold"),
        "{written}"
    );
    assert!(written.contains("svm1/vol_nfs"), "{written}");
    assert!(written.contains("ONTAP keeps taking its scheduled snapshots"));

    // `check` accepts it as written (it reads the schedules from the clusters).
    let mut check = Command::new(env!("CARGO_BIN_EXE_snapwarden"));
    check.arg("check").arg(&out).env(PASSWORD_ENV, PASSWORD);
    let c = output_within(check, Duration::from_secs(60));
    let report = text(&c.stdout);
    assert!(
        matches!(c.status.code(), Some(0 | 1)),
        "{report}{}",
        text(&c.stderr)
    );
    assert!(
        report.contains("valid (2 cluster(s), 3 volume(s), 1 window(s))"),
        "{report}"
    );
    // Nothing but the policy in the directory: no temporary file left.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}"); // world.toml and policy.toml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svm_restricts_the_policy_to_its_volumes() {
    let (served, _dir) = Served::start();
    let mut args = strings(&["--cluster"]);
    args.push(served.cluster_arg("prod-a"));
    args.extend(strings(&[
        "--username",
        "snapwarden",
        "--password-env",
        PASSWORD_ENV,
        "--insecure",
        "--svm",
        "svm2",
        "--window-start",
        "30 22 * * 1-5",
        "--expected",
        "20m",
        "--max",
        "40m",
        "--timezone",
        "Asia/Tokyo",
    ]));
    let o = init(&args, &[(PASSWORD_ENV, PASSWORD)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let written = text(&o.stdout);
    let (volumes, ids, policy) = policy_volumes(&written);
    assert_eq!(volumes, world_volumes(Some("svm2"), &["prod-a"]));
    assert_eq!(ids, vec!["prod-a/svm2/vol_vm".to_string()]);
    let w = &policy["window"][0];
    assert_eq!(w["start"].as_str(), Some("30 22 * * 1-5"));
    assert_eq!(w["expected"].as_str(), Some("20m"));
    assert_eq!(w["max"].as_str(), Some("40m"));
    assert_eq!(w["timezone"].as_str(), Some("Asia/Tokyo"));
    assert_eq!(policy["cluster"][0]["insecure"].as_bool(), Some(true));
}

/// One bad invocation: exit 2, stderr naming the problem, nothing written.
fn refused(dir: &Path, args: &[String], env: &[(&str, &str)], says: &str) {
    let out = dir.join("refused.toml");
    let mut all = args.to_vec();
    all.extend(["--output-file".to_string(), out.to_string_lossy().into()]);
    let o = init(&all, env);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: expected {says:?} in:\n{err}");
    assert!(o.stdout.is_empty(), "{args:?}");
    assert!(!out.exists(), "{args:?} wrote {}", out.display());
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(left.len() <= 1, "{args:?} left {left:?}"); // only the world file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_exit_2_naming_the_problem_and_writes_nothing() {
    let (served, dir) = Served::start();
    let d = dir.path();
    let good = served.cluster_arg("prod-a");
    let with = |cluster: &str, extra: &[&str]| {
        let mut a = vec!["--cluster".to_string(), cluster.to_string()];
        a.extend(strings(&[
            "--username",
            "snapwarden",
            "--password-env",
            PASSWORD_ENV,
            "--insecure",
        ]));
        a.extend(strings(extra));
        a
    };
    let pw = [(PASSWORD_ENV, PASSWORD)];
    let before = served.requests().await;

    // Arguments: each refused before any cluster is asked.
    let long = format!("{}=https://127.0.0.1:1", "c".repeat(300));
    let clusters: &[(&str, &str)] = &[
        ("prod-a", "has no '='"),
        ("=https://127.0.0.1:1", "name before '=' is empty"),
        ("prod-a=http://127.0.0.1:1", "served over HTTPS"),
        (&long, "is 300 characters long, more than 255"),
        ("prod a=https://h", "cluster name \"prod a\""),
    ];
    for (cluster, says) in clusters {
        refused(d, &with(cluster, &[]), &pw, says);
    }
    let unset = format!("environment variable {PASSWORD_ENV} is not set");
    refused(d, &with(&good, &[]), &[], &unset);
    let window: &[(&[&str], &str)] = &[
        (&["--expected", "10x"], "bad duration for `expected`"),
        (&["--max", "8d"], "`max` \"8d\" is out of range 1s..=7d"),
        (&["--window-start", "61 * * * *"], "bad cron in `start`"),
        (&["--window-start", "0 0 31 2 *"], "never fires"),
        (
            &["--expected", "2h", "--max", "1h"],
            "--expected 2h is longer than --max 1h",
        ),
        (&["--timezone", "Mars/Olympus"], "unknown time zone"),
        (&["--window-name", "night ly"], "window name \"night ly\""),
        (&["--svm", "all"], "SVM name \"all\" is reserved"),
    ];
    for (extra, says) in window {
        refused(d, &with(&good, extra), &pw, says);
    }
    let after = served.requests().await;
    assert_eq!(after["total"], before["total"], "{after}");

    // The cluster: unreachable, credentials refused, an SVM it does not have.
    let dead = format!("dead=https://127.0.0.1:{}", free_port());
    refused(d, &with(&dead, &[]), &pw, "cluster dead");
    refused(
        d,
        &with(&good, &[]),
        &[(PASSWORD_ENV, "wrong")],
        "cluster prod-a: authentication failed (HTTP 401)",
    );
    refused(
        d,
        &with(&good, &["--svm", "svm9"]),
        &pw,
        "--svm \"svm9\": no volume of cluster prod-a",
    );

    // An existing file is kept without --force, replaced with it.
    let existing = d.join("existing.toml");
    std::fs::write(&existing, "keep me\n").unwrap();
    let mut args = with(&good, &["--output-file"]);
    args.push(existing.to_string_lossy().into());
    let o = init(&args, &pw);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("exists: give --force to replace it"));
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me\n");
    args.push("--force".into());
    let o = init(&args, &pw);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let (volumes, _, _) = policy_volumes(&std::fs::read_to_string(&existing).unwrap());
    assert_eq!(volumes, world_volumes(None, &["prod-a"]));
}
