//! `dashboards/`: the Prometheus alerting rules pass `promtool check rules` and their unit tests
//! (`promtool test rules`), and every metric they name is one the agent exports (the families of
//! a virtual-time agent's registry after a whole cycle).

mod agent_support;
mod grafana_support;
mod process_support;

use grafana_support::{dashboard_exprs, grafana_to_promql};
use process_support::promtool;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use agent_support::{policy, start, Setup};
use chrono::TimeDelta;
use snapwarden::agent::cycle::ConflictKind;
use snapwarden::agent::hook::HookSpec;

fn dashboards() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `promtool <args>` in `dir`; panics with its output when it fails.
fn run_promtool(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("promtool {args:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The families a running agent exports: a virtual-time agent taken through one whole cycle
/// (create, backup, release), plus one conflict and one orphan, read from its text exposition.
#[tokio::test(start_paused = true)]
async fn exported_families_are_the_documented_ones() {
    let families = exported().await;
    // The metrics of docs/metrics-and-alerts.md, written out by hand.
    let documented: BTreeSet<&str> = [
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
        "snapwarden_release_slack_seconds",
        "snapwarden_cycles_total",
        "snapwarden_conflicts_total",
        "snapwarden_flexclone_recommended",
        "snapwarden_last_success_timestamp_seconds",
        "snapwarden_reconcile_orphans_total",
        "snapwarden_journal_errors_total",
        "snapwarden_journal_writable",
        // Managed schedules.
        "snapwarden_managed_snapshots_total",
        "snapwarden_managed_instants_coalesced_total",
        "snapwarden_managed_snapshot_deferral_seconds",
        "snapwarden_managed_rotations_total",
        "snapwarden_managed_snapshot_last_timestamp_seconds",
        "snapwarden_managed_snapshot_deadline_timestamp_seconds",
        "snapwarden_managed_snapshot_waiting",
        "snapwarden_managed_snapshots_over_count",
        "snapwarden_volume_excluded",
        // The release-late alert compares against it.
        "snapwarden_guard_seconds",
        // The audit.
        "snapwarden_hazards",
        "snapwarden_hazard_findings",
        "snapwarden_hazards_truncated",
        "snapwarden_audit_last_run_timestamp_seconds",
        "snapwarden_audit_errors_total",
        // High availability.
        "snapwarden_leader",
        "snapwarden_leader_changes_total",
        "snapwarden_ha_backend_up",
    ]
    .into_iter()
    .collect();
    let have: BTreeSet<&str> = families.iter().map(String::as_str).collect();
    assert_eq!(have, documented);
}

async fn exported() -> BTreeSet<String> {
    exposition()
        .await
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The text exposition of the agent of [`exported`].
async fn exposition() -> String {
    let text = r#"
[agent]
guard = "5m"
observe_interval = "1m"

[[cluster]]
name = "lab"
endpoint = "simulator"
timezone = "UTC"
simulator = { version = "9.14.1", licenses = ["snaprestore"] }

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "p"
copies = [{ schedule = "hourly", count = 3 }]

[[snapshot_policy]]
name = "nothing"
copies = []

[[snapshot_policy]]
name = "handed-over"
copies = [{ schedule = "hourly", count = 1, snapmirror_label = "hourly" }]

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_a"
luns = ["/vol/vol_a/lun0"]
snapshot_policy = "p"

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_m"
luns = ["/vol/vol_m/lun0"]
snapshot_policy = "nothing"
managed_snapshots = "handed-over"

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_gone"
luns = ["/vol/vol_gone/lun0"]
snapshot_policy = "p"

[[window]]
name = "nightly"
volumes = ["lab/svm1/vol_a"]
timezone = "UTC"
start = "10 1 * * *"
expected = "20m"
max = "40m"

[[window]]
name = "managed-nightly"
volumes = ["lab/svm1/vol_m"]
timezone = "UTC"
start = "0 1 * * *"
expected = "20m"
max = "40m"
"#;
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    // vol_gone's LUN is not on the cluster: the volume is left out.
    setup.prepare = Some(Box::new(|sim| {
        sim.with(|w| {
            w.clusters[0]
                .luns
                .retain(|l| !l.name.starts_with("/vol/vol_gone/"))
        })
    }));
    setup.hooks = Some(Arc::new(|_c| {
        Some(HookSpec::Simulated {
            duration: TimeDelta::minutes(20),
            succeed: true,
        })
    }));
    let p = policy(text);
    let h = start(p.clone(), setup);
    // 01:10 create, 20 minutes of backup, released by 01:35. vol_m: its 23:05 snapshot taken
    // at start (overdue), 01:05 deferred by the 01:00 backup to 01:20, the older one rotated.
    h.run_until("2027-01-01T01:45:00Z").await;
    h.metrics
        .conflict(&p, "lab", "svm1", "vol_a", ConflictKind::Foreign);
    h.metrics.orphan("snapshot", "ignored", "lab:uuid-1");
    let rendered = h.metrics.render();
    let _ = h.stop().await;
    rendered
}

/// The release-late alert reads the guard from the agent: each policy volume exports the
/// policy's `[agent] guard` (5m in [`exposition`]'s policy) with Harvest's volume labels.
#[tokio::test(start_paused = true)]
async fn the_guard_is_exported_per_volume_as_the_policy_sets_it() {
    let text = exposition().await;
    let guard: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("snapwarden_guard_seconds"))
        .collect();
    assert_eq!(
        guard,
        [
            "snapwarden_guard_seconds{cluster=\"lab\",svm=\"svm1\",volume=\"vol_a\"} 300",
            "snapwarden_guard_seconds{cluster=\"lab\",svm=\"svm1\",volume=\"vol_gone\"} 300",
            "snapwarden_guard_seconds{cluster=\"lab\",svm=\"svm1\",volume=\"vol_m\"} 300"
        ],
        "{text}"
    );
}

/// Whether `name` is a series of an exported family (histograms export `_bucket`, `_sum` and
/// `_count`), or Prometheus' own `up` of the scrape.
fn is_exported(families: &BTreeSet<String>, name: &str) -> bool {
    name == "up"
        || families.contains(name)
        || ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .any(|base| families.contains(base))
}

/// Every metric a PromQL expression names: the `snapwarden_` identifiers, and every identifier
/// directly followed by a label matcher (`name{`). Those are all the selectors the shipped
/// expressions write; a misspelt family in either form is caught.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        // Skip quoted label values.
        if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b':' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            // `$Cluster`, `$__rate_interval`: Grafana variables, not metrics.
            let variable = s > 0 && b[s - 1] == b'$';
            let word = &expr[s..i];
            if !variable && (word.starts_with("snapwarden_") || b.get(i) == Some(&b'{')) {
                names.insert(word.to_string());
            }
            continue;
        }
        i += 1;
    }
    names
}

#[test]
fn metric_names_finds_selectors_and_skips_label_values_and_variables() {
    let names = metric_names(
        r#"sum by (volume) (rate(snapwarden_conflicts_total{kind="snapwarden_x", volume=~"$Volume"}[$__rate_interval])) and on (volume) up{job="a"} > snapwarden_typo"#,
    );
    let want: BTreeSet<String> = ["snapwarden_conflicts_total", "up", "snapwarden_typo"]
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(names, want);
}

/// The `expr` of every rule of a Prometheus rules file, inline (`expr: …`) or a block scalar
/// (`expr: |` followed by more-indented lines).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let mut exprs = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if rest == "|" || rest == ">" {
            let indent = line.len() - trimmed.len();
            let mut block = String::new();
            while let Some(next) = lines.peek() {
                let t = next.trim_start();
                if !t.is_empty() && next.len() - t.len() <= indent {
                    break;
                }
                block.push_str(t);
                block.push('\n');
                lines.next();
            }
            exprs.push(block);
        } else {
            exprs.push(rest.to_string());
        }
    }
    exprs
}

/// The alert names of a Prometheus rules file (`- alert: Name`).
fn alert_names(yaml: &str) -> BTreeSet<String> {
    yaml.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

const RULES: &str = "snapwarden.rules.yml";
const RULE_TESTS: &str = "snapwarden.rules.test.yml";

#[test]
fn the_alerting_rules_pass_promtool_check_rules() {
    let dir = dashboards().join("prometheus");
    let out = run_promtool(&dir, &["check", "rules", RULES]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_alerting_rules_pass_their_promtool_unit_tests() {
    let dir = dashboards().join("prometheus");
    run_promtool(&dir, &["test", "rules", RULE_TESTS]);
    // Every alert is tested, firing (it appears in an `exp_alerts` list after its name) and not
    // firing (an empty `exp_alerts: []`).
    let tests = read(&dir.join(RULE_TESTS));
    for alert in alert_names(&read(&dir.join(RULES))) {
        let mut fired = false;
        let mut quiet = false;
        let mut lines = tests.lines().map(str::trim).peekable();
        while let Some(l) = lines.next() {
            if l != format!("alertname: {alert}") {
                continue;
            }
            match lines.peek() {
                Some(&"exp_alerts: []") => quiet = true,
                Some(&"exp_alerts:") => fired = true,
                _ => {}
            }
        }
        assert!(fired, "{alert}: no unit test expects it to fire");
        assert!(quiet, "{alert}: no unit test expects it to stay quiet");
    }
}

#[test]
fn every_alert_is_shipped_with_a_runbook() {
    let rules = read(&dashboards().join("prometheus").join(RULES));
    let names = alert_names(&rules);
    let want: BTreeSet<String> = [
        "SnapwardenAgentDown",
        "SnapwardenOntapUnreachable",
        "SnapwardenReloadFailed",
        "SnapwardenBackingSnapshotLocked",
        "SnapwardenReleaseLate",
        "SnapwardenNoSuccessfulCycle",
        "SnapwardenFlexCloneRecommended",
        // High availability.
        "SnapwardenNoLeader",
        // The journal refuses writes.
        "SnapwardenJournalWriteFailing",
        // Managed schedules.
        "SnapwardenManagedSnapshotOverdue",
        // The agent's audit.
        "SnapwardenCriticalHazard",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(names, want);
    let readme = read(&dashboards().join("README.md"));
    for alert in &names {
        assert!(
            readme.contains(&format!("### {alert}")),
            "dashboards/README.md has no runbook section for {alert}"
        );
        assert!(
            rules.contains(&format!(
                "runbook_url: \"dashboards/README.md#{}\"",
                alert.to_lowercase()
            )),
            "{alert}: no runbook_url pointing at its section"
        );
    }
    // Every alert has a summary and a description (one each per rule).
    let rule_count = rules.matches("- alert:").count();
    assert_eq!(rules.matches("summary:").count(), rule_count);
    assert_eq!(rules.matches("description:").count(), rule_count);
}

#[tokio::test(start_paused = true)]
async fn every_metric_the_rules_and_their_tests_name_is_exported() {
    let families = exported().await;
    let dir = dashboards().join("prometheus");
    let rules = read(&dir.join(RULES));
    let exprs = rule_exprs(&rules);
    assert_eq!(
        exprs.len(),
        rules.matches("- alert:").count(),
        "one expr per rule"
    );
    let mut named = BTreeSet::new();
    for e in &exprs {
        named.extend(metric_names(e));
    }
    // The unit tests' input series are what the agent exports too.
    for l in read(&dir.join(RULE_TESTS)).lines() {
        if let Some(s) = l.trim().strip_prefix("- series:") {
            named.extend(metric_names(s.trim().trim_matches('\'')));
        }
    }
    assert!(named.len() >= 8, "{named:?}");
    let unknown: Vec<&String> = named
        .iter()
        .filter(|n| !is_exported(&families, n))
        .collect();
    assert!(
        unknown.is_empty(),
        "not exported: {unknown:?}; exported: {families:?}"
    );
}

const DASHBOARDS: [&str; 2] = ["snapwarden-overview.json", "snapwarden-volume.json"];

fn dashboard(name: &str) -> serde_json::Value {
    let path = dashboards().join("grafana").join(name);
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The datasource of a panel, target or variable is the `DS_PROMETHEUS` variable.
fn uses_datasource_variable(v: &serde_json::Value) -> bool {
    v["datasource"]["uid"] == "${DS_PROMETHEUS}"
}

#[test]
fn dashboards_take_the_datasource_and_the_harvest_variables_chained() {
    for name in DASHBOARDS {
        let d = dashboard(name);
        assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()), "{name}");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{name}");
        let vars = d["templating"]["list"].as_array().expect("templating.list");
        let names: Vec<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
        assert_eq!(
            names,
            ["DS_PROMETHEUS", "Datacenter", "Cluster", "SVM", "Volume"],
            "{name}"
        );
        assert_eq!(vars[0]["type"], "datasource", "{name}");
        assert_eq!(vars[0]["query"], "prometheus", "{name}");
        // Each variable narrows by the one before it, multi-select with "All".
        for (v, previous) in vars[1..]
            .iter()
            .zip(["", "$Datacenter", "$Cluster", "$SVM"])
        {
            let var = &v["name"];
            assert_eq!(v["type"], "query", "{name} {var}");
            assert!(uses_datasource_variable(v), "{name} {var}");
            assert_eq!(v["multi"], true, "{name} {var}");
            assert_eq!(v["includeAll"], true, "{name} {var}");
            let q = v["query"].as_str().unwrap_or_default();
            assert!(q.starts_with("label_values("), "{name} {var}: {q}");
            assert!(
                q.contains(previous),
                "{name} {var} does not use {previous}: {q}"
            );
        }
    }
}

#[test]
fn every_panel_has_the_datasource_variable_and_a_snapwarden_query() {
    for name in DASHBOARDS {
        let d = dashboard(name);
        let panels = d["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{name}");
        for p in panels {
            let title = &p["title"];
            assert!(uses_datasource_variable(p), "{name} panel {title}");
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name} panel {title}: no query");
            for t in targets {
                assert!(uses_datasource_variable(t), "{name} panel {title}");
                let e = t["expr"].as_str().unwrap_or_default();
                assert!(
                    metric_names(e).iter().any(|m| m.starts_with("snapwarden_")),
                    "{name} panel {title}: {e:?} names no snapwarden metric"
                );
            }
        }
    }
}

#[test]
fn the_dashboards_show_what_the_docs_describe() {
    // Overview: clusters up, cycles, conflicts, locked backing snapshots, recommendations,
    // reload state, the audit's hazards. Per volume: next scheduled snapshots, live backing snapshots against their
    // deadline, release slack, conflicts by kind.
    let wants: [(&str, &[&str]); 2] = [
        (
            "snapwarden-overview.json",
            &[
                "snapwarden_ontap_up",
                "snapwarden_cycles_total",
                "snapwarden_conflicts_total",
                "state=\"locked\"",
                "snapwarden_flexclone_recommended",
                "snapwarden_config_last_reload_successful",
                "snapwarden_hazards{",
            ],
        ),
        (
            "snapwarden-volume.json",
            &[
                "snapwarden_next_scheduled_snapshot_timestamp_seconds",
                "snapwarden_backing_snapshot_oldest_age_seconds",
                "state=~\"live|releasing\"",
                "snapwarden_release_slack_seconds",
                "sum by (volume, kind) (increase(snapwarden_conflicts_total",
            ],
        ),
    ];
    for (name, want) in wants {
        let exprs = dashboard_exprs(name, &dashboard(name));
        for w in want {
            assert!(
                exprs.iter().any(|(_, e)| e.contains(w)),
                "{name}: no panel queries {w}"
            );
        }
    }
}

/// Writes every expression as a recording rule and has `promtool check rules` parse them.
fn promtool_parses(what: &str, exprs: &[(String, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::from("groups:\n  - name: parse\n    rules:\n");
    for (i, (_, e)) in exprs.iter().enumerate() {
        let quoted = serde_json::to_string(&grafana_to_promql(e, "5m", "1d")).unwrap();
        yaml.push_str(&format!(
            "      - record: parse:expr_{i}\n        expr: {quoted}\n"
        ));
    }
    std::fs::write(dir.path().join("parse.yml"), &yaml).unwrap();
    let out = Command::new(promtool())
        .args(["check", "rules", "parse.yml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what}: an expression does not parse:\n{text}\n{}",
        exprs
            .iter()
            .enumerate()
            .map(|(i, (w, e))| format!("expr_{i}: {w}: {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_dashboard_query_parses() {
    for name in DASHBOARDS {
        promtool_parses(name, &dashboard_exprs(name, &dashboard(name)));
    }
}

#[tokio::test(start_paused = true)]
async fn every_metric_the_dashboards_name_is_exported() {
    let families = exported().await;
    for name in DASHBOARDS {
        for (what, e) in dashboard_exprs(name, &dashboard(name)) {
            let unknown: Vec<String> = metric_names(&e)
                .into_iter()
                .filter(|n| n == "up" || !is_exported(&families, n))
                .collect();
            assert!(
                unknown.is_empty(),
                "{what}: not exported: {unknown:?} in {e}"
            );
        }
    }
}

/// The Grafana alert-rule provisioning file: JSON (which is YAML) after its `#` comment lines.
fn grafana_alerting() -> serde_json::Value {
    let path = dashboards().join("grafana/alerting/snapwarden.yml");
    let body: String = read(&path)
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn non_empty_str(v: &serde_json::Value) -> bool {
    v.as_str().is_some_and(|s| !s.trim().is_empty())
}

#[test]
fn grafana_alert_provisioning_has_the_required_keys_and_the_same_alerts() {
    let doc = grafana_alerting();
    assert_eq!(doc["apiVersion"], 1);
    let groups = doc["groups"].as_array().expect("groups");
    assert!(!groups.is_empty());
    let mut titles = BTreeSet::new();
    let mut uids = BTreeSet::new();
    let mut exprs = Vec::new();
    for g in groups {
        for key in ["name", "folder", "interval"] {
            assert!(non_empty_str(&g[key]), "group {} without {key}", g["name"]);
        }
        let rules = g["rules"].as_array().expect("rules");
        assert!(!rules.is_empty(), "group {} has no rules", g["name"]);
        for r in rules {
            for key in ["uid", "title", "condition"] {
                assert!(non_empty_str(&r[key]), "rule {} without {key}", r["title"]);
            }
            let uid = r["uid"].as_str().unwrap_or_default();
            // Grafana's limit on a uid's length.
            assert!(uid.len() <= 40, "{uid}: longer than 40 characters");
            assert!(uids.insert(uid.to_string()), "uid {uid} twice");
            titles.insert(r["title"].as_str().unwrap_or_default().to_string());
            let data = r["data"].as_array().expect("data");
            assert!(!data.is_empty(), "{uid}: no data");
            let refs: BTreeSet<&str> = data.iter().filter_map(|d| d["refId"].as_str()).collect();
            assert_eq!(refs.len(), data.len(), "{uid}: refIds missing or repeated");
            assert!(
                refs.contains(r["condition"].as_str().unwrap_or_default()),
                "{uid}: the condition is not one of its refIds"
            );
            for d in data {
                assert!(non_empty_str(&d["datasourceUid"]), "{uid}: {d}");
                assert_eq!(d["model"]["refId"], d["refId"], "{uid}: {d}");
                if d["datasourceUid"] != "__expr__" {
                    let e = d["model"]["expr"].as_str().unwrap_or_default();
                    exprs.push((format!("{uid} {}", d["refId"]), e.to_string()));
                }
            }
            for key in ["summary", "description", "runbook_url"] {
                assert!(non_empty_str(&r["annotations"][key]), "{uid}: no {key}");
            }
        }
    }
    // The same alerts as the Prometheus rules, on the same expressions.
    let rules = read(&dashboards().join("prometheus").join(RULES));
    assert_eq!(titles, alert_names(&rules));
    let collapse = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for e in rule_exprs(&rules) {
        let e = collapse(&e);
        assert!(
            exprs
                .iter()
                .any(|(_, g)| collapse(g) == format!("({e}) * 0 + 1")),
            "no Grafana rule queries {e}"
        );
    }
    promtool_parses("grafana alerting", &exprs);
}

#[tokio::test(start_paused = true)]
async fn every_metric_the_grafana_alerts_name_is_exported() {
    let families = exported().await;
    let doc = grafana_alerting();
    for g in doc["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            for d in r["data"].as_array().into_iter().flatten() {
                let e = d["model"]["expr"].as_str().unwrap_or_default();
                let unknown: Vec<String> = metric_names(e)
                    .into_iter()
                    .filter(|n| !is_exported(&families, n))
                    .collect();
                assert!(
                    unknown.is_empty(),
                    "{}: not exported: {unknown:?}",
                    r["uid"]
                );
            }
        }
    }
}
