//! `doctor`'s report: a table for people and the documented JSON (docs/doctor.md) for scripts.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::{counts, exit_code, Finding, Severity};

/// The JSON document `doctor --output json` prints.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub generated_at: DateTime<Utc>,
    pub older_than_seconds: i64,
    pub summary: Summary,
    pub exit_code: u8,
    pub findings: &'a [Finding],
}

/// Findings by severity.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub critical: usize,
    pub warning: usize,
    pub info: usize,
}

impl<'a> Report<'a> {
    pub fn new(findings: &'a [Finding], now: DateTime<Utc>, older_than: TimeDelta) -> Report<'a> {
        let [(_, critical), (_, warning), (_, info)] = counts(findings);
        Report {
            generated_at: now,
            older_than_seconds: older_than.num_seconds(),
            summary: Summary {
                critical,
                warning,
                info,
            },
            exit_code: exit_code(findings),
            findings,
        }
    }

    pub fn json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a report serializes");
        s.push('\n');
        s
    }
}

/// One block per finding, most severe first, then the summary line.
pub fn table(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let place: Vec<&str> = [
            Some(f.cluster.as_str()),
            f.svm.as_deref(),
            f.volume.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        out.push_str(&format!(
            "{:<8} {}  {}",
            f.severity.as_str().to_uppercase(),
            f.code.as_str(),
            place.join("/")
        ));
        if let Some(s) = &f.snapshot {
            out.push_str(&format!("  snapshot {s}"));
        }
        out.push('\n');
        out.push_str(&format!("  found:  {}\n", f.detail));
        if !f.luns.is_empty() {
            out.push_str(&format!("  LUNs:   {}\n", f.luns.join(", ")));
        }
        out.push_str(&format!("  means:  {}\n", f.impact));
        let mut first = true;
        let mut line = |label: &str, text: &str| {
            let head = if first { "  fix:    " } else { "          " };
            first = false;
            out.push_str(&format!("{head}{label}{text}\n"));
        };
        for c in &f.fix.cli {
            line("cli:    ", c);
        }
        for r in &f.fix.rest {
            line("rest:   ", r);
        }
        if let Some(p) = &f.fix.policy {
            line("policy: ", p);
        }
        out.push('\n');
    }
    let [(_, critical), (_, warning), (_, info)] = counts(findings);
    let worst = findings
        .iter()
        .map(|f| f.severity)
        .max()
        .map_or("nothing found", |s| match s {
            Severity::Critical => "critical findings",
            Severity::Warning => "warnings",
            Severity::Info => "nothing above info",
        });
    out.push_str(&format!(
        "doctor: {critical} critical, {warning} warning, {info} info: {worst} (exit {})\n",
        exit_code(findings)
    ));
    out
}
