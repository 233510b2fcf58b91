//! End to end with the real components: `snapwarden run` on a minute-scale copy of the demo, a
//! real Prometheus on loopback scraping it every second and evaluating the shipped alerting rules
//! (`dashboards/prometheus/snapwarden.rules.yml`, unchanged: the alerts this test waits for have
//! no `for:`), and a real Alertmanager receiving Prometheus' alerts. Every Grafana panel and
//! variable query and every alert expression goes through Prometheus' `/api/v1/query`: each must
//! parse, and every panel must return series at some point while the demo runs. The demo's
//! locked backing snapshot and its FlexClone recommendation must reach Alertmanager
//! (`/api/v2/alerts`), and the release-late alert must fire on the late volume only (against the
//! guard the agent exports). The agent's audit finds a volume whose clone method has no license,
//! and `SnapwardenCriticalHazard` reaches Alertmanager for it.
//!
//! Prometheus and Alertmanager come from Debian's `prometheus` and `prometheus-alertmanager`
//! packages, which `scripts/test` installs. Every process is killed when the test ends.

mod grafana_support;
mod process_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use grafana_support::{dashboard_exprs, dashboard_files, grafana_to_promql};
use process_support::{free_port, http, installed, KillOnDrop};

/// The test's copy of `config/demo.toml`, at second scale so that it plays out within a minute of
/// the agent's start. The cluster takes a scheduled snapshot at 8 s past every minute; both
/// windows start on the minute. `sql` fits (a 1 s backup, released before 8 s less the 3 s
/// guard); `files` runs anyway over the snapshot (on_conflict = "run"): the snapshot captures its
/// SnapRestore clone (chain conflict), its backing snapshot's delete is refused (locked, 1638555),
/// and two conflicts (`recommend_after = 2`, the late release and the lock, without waiting
/// for the next observation to see the chain conflict) make snapwarden recommend FlexClone.
/// `vol_logs` hands its snapshots (30 s past every minute) to snapwarden: its `logs` backup (40 s)
/// holds the one due at 30 s until its clone is gone. `vol_db` is in no window and clones with
/// FlexClone, which the cluster lacks: the agent's first audit finds `license_missing`
/// (critical) on it.
fn demo_policy(port: u16) -> String {
    format!(
        r#"
[agent]
listen = "127.0.0.1:{port}"
guard = "3s"
observe_interval = "10s"

[flexclone]
recommend_after = 2

[[cluster]]
name = "demo"
endpoint = "simulator"
timezone = "UTC"
simulator = {{ version = "9.14.1", licenses = ["snaprestore"] }}

[[schedule]]
name = "minutely"
interval = "1m"
anchor = "2026-01-01T00:00:08Z"

[[snapshot_policy]]
name = "demo"
copies = [{{ schedule = "minutely", count = 5 }}]

[[schedule]]
name = "minutely-managed"
interval = "1m"
anchor = "2026-01-01T00:00:30Z"

[[snapshot_policy]]
name = "nothing"
copies = []

[[snapshot_policy]]
name = "handed-over"
max_defer = "1m"
copies = [{{ schedule = "minutely-managed", count = 3 }}]

[[volume]]
cluster = "demo"
svm = "svm1"
name = "vol_logs"
luns = ["/vol/vol_logs/lun0"]
snapshot_policy = "nothing"
managed_snapshots = "handed-over"

[[window]]
name = "logs"
volumes = ["demo/svm1/vol_logs"]
start = "* * * * *"
timezone = "UTC"
expected = "40s"
max = "50s"
hook = {{ command = ["sleep", "40"] }}

[[volume]]
cluster = "demo"
svm = "svm1"
name = "vol_sql"
luns = ["/vol/vol_sql/lun0"]
snapshot_policy = "demo"

[[volume]]
cluster = "demo"
svm = "svm1"
name = "vol_files"
luns = ["/vol/vol_files/lun0"]
snapshot_policy = "demo"

[[volume]]
cluster = "demo"
svm = "svm1"
name = "vol_db"
luns = ["/vol/vol_db/lun0"]
snapshot_policy = "demo"
clone = "flexclone"

[[window]]
name = "sql"
volumes = ["demo/svm1/vol_sql"]
start = "* * * * *"
timezone = "UTC"
expected = "2s"
max = "4s"
hook = {{ command = ["sleep", "1"] }}

[[window]]
name = "files"
volumes = ["demo/svm1/vol_files"]
start = "* * * * *"
timezone = "UTC"
expected = "12s"
max = "15s"
on_conflict = "run"
hook = {{ command = ["sleep", "10"] }}
"#
    )
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Starts `command args…` with its output in `log`, killed when the test ends.
fn spawn(command: &str, args: &[String], log: &Path) -> KillOnDrop {
    let out = std::fs::File::create(log).unwrap();
    KillOnDrop(
        Command::new(command)
            .args(args)
            .env("SNAPWARDEN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{command}: {e}")),
    )
}

/// Percent-encodes a query-string value (everything but RFC 3986's unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET path` on loopback `port` as JSON; `None` while nothing answers or the body is no JSON.
fn get_json(port: u16, path: &str) -> Option<(u16, serde_json::Value)> {
    let (code, body) = http(port, "GET", path, &[])?;
    Some((code, serde_json::from_str(&body).ok()?))
}

/// `(where, expr)` of every query of the shipped Grafana dashboards: variables and panel targets.
fn dashboard_queries() -> Vec<(String, String)> {
    let files = dashboard_files();
    assert!(files.len() >= 2, "{} dashboards", files.len());
    files
        .iter()
        .flat_map(|(name, d)| dashboard_exprs(name, d))
        .collect()
}

/// Whether `SnapwardenReleaseLate` fired for `volume` in the last 10 minutes (Prometheus keeps
/// its alerts' states as the `ALERTS` series; the alert itself lasts only seconds in the demo).
fn release_late(volume: &str) -> String {
    format!(
        "max_over_time(ALERTS{{alertname=\"SnapwardenReleaseLate\", alertstate=\"firing\", \
         volume=\"{volume}\"}}[10m])"
    )
}

/// Runs an instant query: `Ok(number of series)`, or `Err` with Prometheus' error (a parse
/// error is `bad_data`).
fn query(prom: u16, promql: &str) -> Result<usize, String> {
    let path = format!("/api/v1/query?query={}", encode(promql));
    let Some((code, v)) = get_json(prom, &path) else {
        return Err("no JSON answer".into());
    };
    if code != 200 || v["status"] != "success" {
        return Err(format!("{code}: {} {}", v["errorType"], v["error"]));
    }
    match v["data"]["resultType"].as_str() {
        Some("vector") | Some("matrix") => Ok(v["data"]["result"].as_array().map_or(0, Vec::len)),
        Some("scalar") | Some("string") => Ok(1),
        other => Err(format!("unexpected result type {other:?}")),
    }
}

/// Polls `cond` every 200 ms until it holds; panics after `limit` with `what` and `context()`.
fn wait_for(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < end,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn prometheus_evaluates_the_shipped_rules_and_dashboards_and_alertmanager_gets_the_demo_alerts() {
    let started = Instant::now();
    let prometheus = installed("prometheus", "prometheus");
    let alertmanager = installed("prometheus-alertmanager", "prometheus-alertmanager");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (agent_port, prom_port, am_port) = (free_port(), free_port(), free_port());

    // The agent first: the demo plays out on the next minute whatever the others do meanwhile.
    let policy = d.join("demo.toml");
    std::fs::write(&policy, demo_policy(agent_port)).unwrap();
    let agent_log = d.join("agent.log");
    let _agent = spawn(
        env!("CARGO_BIN_EXE_snapwarden"),
        &[
            "run".into(),
            "--config".into(),
            policy.display().to_string(),
            "--state-dir".into(),
            d.join("state").display().to_string(),
        ],
        &agent_log,
    );

    // Alertmanager: one receiver that only keeps the alerts (its API lists them); no clustering.
    let am_config = d.join("alertmanager.yml");
    std::fs::write(
        &am_config,
        "route:\n  receiver: keep\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: keep\n",
    )
    .unwrap();
    let am_log = d.join("alertmanager.log");
    let _am = spawn(
        alertmanager,
        &[
            format!("--config.file={}", am_config.display()),
            format!("--storage.path={}", d.join("am").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
        &am_log,
    );

    // Prometheus: scrapes the agent every second (with Harvest's `datacenter` label, which the
    // dashboards' first variable reads), evaluates the shipped rules every second, alerts to
    // the Alertmanager.
    let rules = repo().join("dashboards/prometheus/snapwarden.rules.yml");
    let prom_config = d.join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{am_port}"]
scrape_configs:
  - job_name: snapwarden
    static_configs:
      - targets: ["127.0.0.1:{agent_port}"]
        labels:
          datacenter: dc1
"#,
            rules = serde_json::to_string(&rules.display().to_string()).unwrap()
        ),
    )
    .unwrap();
    let prom_log = d.join("prometheus.log");
    let _prom = spawn(
        prometheus,
        &[
            format!("--config.file={}", prom_config.display()),
            format!("--storage.tsdb.path={}", d.join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &prom_log,
    );

    let logs = || {
        format!(
            "agent log:\n{}\nprometheus log:\n{}\nalertmanager log:\n{}",
            tail(&agent_log),
            tail(&prom_log),
            tail(&am_log)
        )
    };
    let ready = |port: u16, path: &str| http(port, "GET", path, &[]).is_some_and(|(c, _)| c == 200);
    let limit = Duration::from_secs(30);
    wait_for(
        "the agent to be ready",
        limit,
        || ready(agent_port, "/readyz"),
        logs,
    );
    wait_for(
        "Alertmanager to be ready",
        limit,
        || ready(am_port, "/-/ready"),
        logs,
    );
    wait_for(
        "Prometheus to be ready",
        limit,
        || ready(prom_port, "/-/ready"),
        logs,
    );
    wait_for(
        "Prometheus to scrape the agent",
        limit,
        || query(prom_port, "up{job=\"snapwarden\"} == 1") == Ok(1),
        logs,
    );

    // Prometheus loaded every alerting rule of the shipped file, and each is healthy.
    let (_, loaded) = get_json(prom_port, "/api/v1/rules?type=alert").expect("/api/v1/rules");
    let mut alert_exprs: Vec<(String, String)> = Vec::new();
    for g in loaded["data"]["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            let name = r["name"].as_str().unwrap_or_default().to_string();
            alert_exprs.push((name, r["query"].as_str().unwrap_or_default().to_string()));
        }
    }
    let shipped = std::fs::read_to_string(&rules).unwrap();
    assert_eq!(
        alert_exprs.len(),
        shipped.matches("- alert:").count(),
        "Prometheus loaded {alert_exprs:?}"
    );
    // Every alert expression parses and evaluates (most select nothing while all is well).
    for (name, e) in &alert_exprs {
        if let Err(err) = query(prom_port, e) {
            panic!("alert {name}: {e}: {err}");
        }
    }

    // Every dashboard query parses now, and returns series at some point while the demo runs
    // (conflicts, locks, recommendations and releases come with the first cycles; a live
    // backing snapshot against its deadline only while `files`' backup runs).
    let queries: Vec<(String, String, String)> = dashboard_queries()
        .into_iter()
        .map(|(w, e)| {
            let q = grafana_to_promql(&e, "1m", "1h");
            (w, e, q)
        })
        .collect();
    assert!(queries.len() >= 20, "{queries:?}");
    for (what, e, q) in &queries {
        if let Err(err) = query(prom_port, q) {
            panic!("{what}: {e}\nas {q}: {err}");
        }
    }
    let mut seen: BTreeMap<&str, bool> = queries
        .iter()
        .map(|(w, _, _)| (w.as_str(), false))
        .collect();
    let alerts_wanted = [
        ("SnapwardenBackingSnapshotLocked", "critical", "vol_files"),
        ("SnapwardenFlexCloneRecommended", "info", "vol_files"),
        ("SnapwardenCriticalHazard", "critical", "vol_db"),
    ];
    let mut in_alertmanager: Vec<serde_json::Value>;
    // The windows start on the next minute (at most 60 s away); the demo is over about 15 s
    // later. The bound leaves room for a loaded machine.
    let end = Instant::now() + Duration::from_secs(100);
    loop {
        for (what, _, q) in &queries {
            if !seen[what.as_str()] && query(prom_port, q).is_ok_and(|n| n > 0) {
                seen.insert(what, true);
                eprintln!("{:?} series: {what}", started.elapsed());
            }
        }
        in_alertmanager = get_json(am_port, "/api/v2/alerts")
            .and_then(|(_, v)| v.as_array().cloned())
            .unwrap_or_default();
        let arrived = alerts_wanted.iter().all(|(name, _, _)| {
            in_alertmanager
                .iter()
                .any(|a| a["labels"]["alertname"] == *name)
        });
        let late = query(prom_port, &release_late("vol_files")).is_ok_and(|n| n > 0);
        if arrived && late && seen.values().all(|s| *s) {
            break;
        }
        if Instant::now() >= end {
            let missing: Vec<String> = queries
                .iter()
                .filter(|(w, _, _)| !seen[w.as_str()])
                .map(|(w, e, _)| format!("{w}: {e}"))
                .collect();
            panic!(
                "timed out waiting for every panel to return series, the demo's alerts to reach \
                 Alertmanager and SnapwardenReleaseLate to fire on vol_files\npanels without series: {missing:#?}\nAlertmanager lists: \
                 {in_alertmanager:#?}\n{}",
                logs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The alerts as Alertmanager has them: the demo's volume, the rule's labels and annotations.
    for (name, severity, volume) in alerts_wanted {
        let a = in_alertmanager
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .unwrap();
        assert_eq!(a["labels"]["cluster"], "demo", "{a:#}");
        assert_eq!(a["labels"]["svm"], "svm1", "{a:#}");
        assert_eq!(a["labels"]["volume"], volume, "{a:#}");
        assert_eq!(a["labels"]["job"], "snapwarden", "{a:#}");
        assert_eq!(a["labels"]["severity"], severity, "{a:#}");
        assert_eq!(a["status"]["state"], "active", "{a:#}");
        let description = a["annotations"]["description"].as_str().unwrap_or_default();
        assert!(description.contains(volume), "{a:#}");
        assert!(
            a["annotations"]["runbook_url"]
                .as_str()
                .is_some_and(|u| u.ends_with(&format!("#{}", name.to_lowercase()))),
            "{a:#}"
        );
    }
    // The release-late alert compares against the guard the agent exports (3 s here): it fired
    // for vol_files (live from 5 s before the snapshot) but never for vol_sql, whose backing
    // snapshot lives within 300 s (the default guard) of the snapshot but is gone 7 s before it.
    assert_eq!(query(prom_port, &release_late("vol_sql")), Ok(0));
    // The hazard is the one planted, and the only critical one: `vol_db`'s missing license
    // (docs/doctor.md).
    let hazards: Vec<&serde_json::Value> = in_alertmanager
        .iter()
        .filter(|a| a["labels"]["alertname"] == "SnapwardenCriticalHazard")
        .collect();
    assert_eq!(hazards.len(), 1, "{hazards:#?}");
    assert_eq!(
        hazards[0]["labels"]["code"], "license_missing",
        "{hazards:#?}"
    );
    // The fitting window's volume raised nothing.
    assert!(
        !in_alertmanager
            .iter()
            .any(|a| a["labels"]["volume"] == "vol_sql"),
        "{in_alertmanager:#?}"
    );
    eprintln!("end to end in {:?}", started.elapsed());
}
