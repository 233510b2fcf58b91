//! The shipped Grafana dashboards as the tests read them: every dashboard file, the PromQL of its
//! variables and panel targets, and that PromQL with Grafana's macros and variables expanded.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `dashboards/grafana/*.json`, sorted, with their file names.
pub fn dashboard_files() -> Vec<(String, serde_json::Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/grafana");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let d = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, d)
        })
        .collect()
}

/// `(where, expr)` of every PromQL expression of dashboard `name`: its query variables and its
/// panels' targets (`where` names each one apart).
pub fn dashboard_exprs(name: &str, d: &serde_json::Value) -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"].as_str().unwrap_or_default();
            exprs.push((format!("{name} variable {}", v["name"]), q.to_string()));
        }
    }
    for p in d["panels"].as_array().into_iter().flatten() {
        for (i, t) in p["targets"].as_array().into_iter().flatten().enumerate() {
            let e = t["expr"].as_str().unwrap_or_default();
            exprs.push((
                format!("{name} panel {} target {i}", p["title"]),
                e.to_string(),
            ));
        }
    }
    exprs
}

/// Grafana's macros replaced by `rate_interval` and `range`, its template variables the way
/// Grafana expands them with "All" selected (`.*`), and a variable's
/// `label_values(selector, label)` by its selector (what Grafana asks Prometheus for the label's
/// values).
pub fn grafana_to_promql(expr: &str, rate_interval: &str, range: &str) -> String {
    let expr = match expr
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        Some(args) => args.rsplit_once(',').map_or(args, |(selector, _)| selector),
        None => expr,
    };
    let mut e = expr
        .replace("$__rate_interval", rate_interval)
        .replace("$__range", range);
    for v in ["$Datacenter", "$Cluster", "$SVM", "$Volume"] {
        e = e.replace(v, ".*");
    }
    e
}
