//! The audit's findings as metrics: `snapwarden_hazards` (one series per finding's place, code
//! and severity, capped), the findings per severity (never capped), how many were left out of
//! the series, when the audit last ran and its failed reads.
//!
//! `cluster` is a policy name and `code`/`severity` closed sets; `svm` and `volume` come from
//! ONTAP (an uncovered volume is not in the policy), so the series are capped at
//! [`MAX_SERIES`], most severe first, and every label value at [`MAX_LABEL`] bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use prometheus::{Gauge, IntCounter, IntGauge, IntGaugeVec, Opts, Registry};

use crate::agent::doctor::{Finding, Severity};

/// The most `snapwarden_hazards` series exported; the rest is counted in
/// `snapwarden_hazards_truncated`. Findings come most severe first, so critical ones are the
/// last to be left out.
pub const MAX_SERIES: usize = 1000;

/// Label values longer than this are cut (on a character boundary). ONTAP's names are shorter
/// (a volume name at most 203 characters); a longer one is not ONTAP's to send.
pub const MAX_LABEL: usize = 256;

const LABELS: [&str; 5] = ["cluster", "svm", "volume", "code", "severity"];

type LabelSet = [String; 5];

/// The audit's metrics.
pub struct HazardMetrics {
    hazards: IntGaugeVec,
    by_severity: IntGaugeVec,
    truncated: IntGauge,
    last_run: Gauge,
    errors: IntCounter,
    /// The label sets of `snapwarden_hazards` now exported, so that those gone are removed.
    known: Mutex<BTreeSet<LabelSet>>,
}

fn registered<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone()))
        .expect("a metric name registered once");
    c
}

/// `s`, cut to at most [`MAX_LABEL`] bytes on a character boundary.
fn bounded(s: &str) -> String {
    let mut end = s.len().min(MAX_LABEL);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn labels(f: &Finding) -> LabelSet {
    [
        bounded(&f.cluster),
        bounded(f.svm.as_deref().unwrap_or("")),
        bounded(f.volume.as_deref().unwrap_or("")),
        f.code.as_str().to_string(),
        f.severity.as_str().to_string(),
    ]
}

impl HazardMetrics {
    pub fn new(r: &Registry) -> HazardMetrics {
        let by_severity = registered(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "snapwarden_hazard_findings",
                    "The audit's current findings, by severity (critical, warning, info); never capped.",
                ),
                &["severity"],
            )
            .expect("valid metric"),
        );
        for s in Severity::ALL {
            by_severity.with_label_values(&[s.as_str()]).set(0);
        }
        HazardMetrics {
            hazards: registered(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "snapwarden_hazards",
                        "The audit's current findings of this code on this volume (most are 1); the series goes when the finding clears.",
                    ),
                    &LABELS,
                )
                .expect("valid metric"),
            ),
            by_severity,
            truncated: registered(
                r,
                IntGauge::new(
                    "snapwarden_hazards_truncated",
                    "Findings left out of snapwarden_hazards because it holds at most 1000 series (least severe first).",
                )
                .expect("valid metric"),
            ),
            last_run: registered(
                r,
                Gauge::new(
                    "snapwarden_audit_last_run_timestamp_seconds",
                    "When the agent's audit last ran (Unix seconds; 0: not yet, or [agent] audit_interval = \"0s\").",
                )
                .expect("valid metric"),
            ),
            errors: registered(
                r,
                IntCounter::new(
                    "snapwarden_audit_errors_total",
                    "Audit reads of a cluster's volume settings that failed (its last findings are kept).",
                )
                .expect("valid metric"),
            ),
            known: Mutex::new(BTreeSet::new()),
        }
    }

    /// The audit's findings now (in `audit`'s order, most severe first), at `at`; `None` when
    /// the agent does not audit (off, or a standby): every finding series goes.
    pub fn publish(&self, findings: &[Finding], at: Option<DateTime<Utc>>) {
        let mut sets: BTreeMap<LabelSet, i64> = BTreeMap::new();
        let mut truncated = 0i64;
        for f in findings {
            let key = labels(f);
            if let Some(n) = sets.get_mut(&key) {
                *n += 1;
            } else if sets.len() < MAX_SERIES {
                sets.insert(key, 1);
            } else {
                truncated += 1;
            }
        }
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        for gone in known.iter().filter(|k| !sets.contains_key(*k)) {
            let values: Vec<&str> = gone.iter().map(String::as_str).collect();
            let _ = self.hazards.remove_label_values(&values);
        }
        for (key, n) in &sets {
            let values: Vec<&str> = key.iter().map(String::as_str).collect();
            self.hazards.with_label_values(&values).set(*n);
        }
        *known = sets.into_keys().collect();
        for s in Severity::ALL {
            let n = findings.iter().filter(|f| f.severity == s).count();
            self.by_severity
                .with_label_values(&[s.as_str()])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.truncated.set(truncated);
        self.last_run
            .set(at.map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0));
    }

    /// A cluster's settings could not be read for the audit.
    pub fn read_failed(&self) {
        self.errors.inc();
    }
}
