//! The agent's audit: `doctor`'s pure `audit` over the pass's own discovery, every
//! `[agent] audit_interval`, exported as `snapwarden_hazards`.
//!
//! The snapshots, LUNs, licenses and policies come from the listing the pass just took (a pass
//! where the audit is due rediscovers its clusters, so nothing is read twice); the volumes'
//! settings (`Ontap::volume_settings`) are read only here, once per audit. The conflicts are
//! `planner::plan`'s for `doctor::HORIZON`, and the open and recently released cycles hold their
//! backing snapshots (none is an orphan). Only a leader audits: a standby knows no open cycles.
//!
//! An audit never fails a pass: a cluster that cannot be read (unreachable, or its settings
//! refused) is logged and counted, and keeps its last findings until it answers again.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Utc};

use super::doctor::{self, ClusterListing, Finding, Severity};
use super::status::HazardsStatus;
use super::Agent;
use crate::error::error_chain;
use crate::planner::{self, Observed};

/// Findings named in the log per audit when they appear or clear; the rest are counted.
const LOGGED: usize = 20;

/// What the agent keeps of its audits.
#[derive(Debug, Default)]
pub(super) struct Audits {
    /// When the audit last ran (`None`: not yet since start, a reload, or leading).
    last_run: Option<DateTime<Utc>>,
    /// The current findings, in `audit`'s order.
    findings: Vec<Finding>,
    /// Whether the metrics hold findings (to clear them once when auditing stops).
    published: bool,
}

impl Audits {
    /// When the next audit is due (`None`: not auditing, or due at the next pass).
    pub(super) fn next_at(&self, interval: Option<chrono::TimeDelta>) -> Option<DateTime<Utc>> {
        Some(self.last_run? + interval?)
    }

    /// Whether an audit is due at `now`.
    pub(super) fn due(&self, interval: Option<chrono::TimeDelta>, now: DateTime<Utc>) -> bool {
        interval.is_some() && self.next_at(interval).is_none_or(|at| at <= now)
    }

    /// The last audit's findings per severity, for the status (`None`: none ran).
    pub(super) fn status(&self) -> Option<HazardsStatus> {
        let of = |s: Severity| self.findings.iter().filter(|f| f.severity == s).count();
        Some(HazardsStatus {
            audited_at: self.last_run?,
            critical: of(Severity::Critical),
            warning: of(Severity::Warning),
            info: of(Severity::Info),
        })
    }

    /// Forgets when the audit ran, so that the next pass audits (a new policy).
    pub(super) fn rerun(&mut self) {
        self.last_run = None;
    }
}

/// One finding's identity, to log what appeared and what cleared.
fn identity(f: &Finding) -> (doctor::Code, &str, Option<&str>, Option<&str>, Option<&str>) {
    (
        f.code,
        &f.cluster,
        f.svm.as_deref(),
        f.volume.as_deref(),
        f.snapshot.as_deref(),
    )
}

impl Agent {
    /// Audits when due (`due`, decided before this pass's discovery), or clears the findings
    /// when this replica does not audit (off, or standing by).
    pub(super) async fn audit(
        &mut self,
        now: DateTime<Utc>,
        observed: &Observed,
        leading: bool,
        due: bool,
    ) {
        if !leading || self.policy.agent.audit_interval.is_none() {
            self.audits.last_run = None;
            if self.audits.published {
                self.audits.findings.clear();
                self.audits.published = false;
                self.metrics.hazards.publish(&[], None);
            }
            return;
        }
        if !due {
            return;
        }
        self.audits.last_run = Some(now);
        let reads = self
            .views
            .iter()
            .enumerate()
            .filter(|(_, v)| v.reachable && v.inventory.is_some())
            .map(|(ci, _)| {
                let conn = self.conns[ci].clone();
                async move { (ci, conn.ontap.volume_settings().await) }
            });
        let mut listings = Vec::new();
        for (ci, result) in futures_util::future::join_all(reads).await {
            let name = &self.conns[ci].name;
            match (result, &self.views[ci].inventory) {
                (Ok(settings), Some(inventory)) => listings.push(ClusterListing {
                    name: name.clone(),
                    inventory: inventory.clone(),
                    settings,
                }),
                (Ok(_), None) => {}
                (Err(e), _) => {
                    self.metrics.hazards.read_failed();
                    tracing::error!(
                        cluster = %name,
                        "audit: cannot read the volumes' settings: {}; the cluster keeps its last findings",
                        error_chain(&e)
                    );
                }
            }
        }
        let plan = planner::plan(&self.policy, observed, now, doctor::HORIZON);
        let holding: HashSet<[String; 4]> = self
            .memory
            .open
            .values()
            .map(|o| &o.cycle)
            .chain(&self.memory.recent)
            .map(|c| {
                [
                    c.cluster.clone(),
                    c.svm.clone(),
                    c.volume.clone(),
                    c.backing_snapshot.clone(),
                ]
            })
            .collect();
        let mut fresh = doctor::audit(&doctor::Input {
            policy: &self.policy,
            clusters: &listings,
            observed,
            plan: &plan,
            open_backing: Some(&holding),
            now,
            older_than: doctor::ORPHAN_AGE,
        });
        let audited: HashSet<&str> = listings.iter().map(|l| l.name.as_str()).collect();
        // The plan's conflicts cover every cluster: those not read now keep what they had.
        fresh.retain(|f| audited.contains(f.cluster.as_str()));
        let in_policy: HashSet<&str> = self
            .policy
            .clusters
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let kept = self.audits.findings.iter().filter(|f| {
            !audited.contains(f.cluster.as_str()) && in_policy.contains(f.cluster.as_str())
        });
        let mut findings: Vec<Finding> = kept.cloned().chain(fresh).collect();
        doctor::sort(&mut findings);
        log_changes(&self.audits.findings, &findings);
        self.audits.findings = findings;
        self.audits.published = true;
        self.metrics
            .hazards
            .publish(&self.audits.findings, Some(now));
    }
}

/// Logs the findings that appeared (critical ones as errors) and those that cleared.
fn log_changes(before: &[Finding], after: &[Finding]) {
    let old: BTreeSet<_> = before.iter().map(identity).collect();
    let new: BTreeSet<_> = after.iter().map(identity).collect();
    // Info findings (a SnapRestore volume, the reserve's use) are the status's, not the log's.
    let appeared: Vec<&Finding> = after
        .iter()
        .filter(|f| f.severity > Severity::Info && !old.contains(&identity(f)))
        .collect();
    for f in appeared.iter().take(LOGGED) {
        let at = format!(
            "{}{}{}",
            f.cluster,
            f.svm
                .as_deref()
                .map(|s| format!("/{s}"))
                .unwrap_or_default(),
            f.volume
                .as_deref()
                .map(|v| format!("/{v}"))
                .unwrap_or_default()
        );
        if f.severity == Severity::Critical {
            tracing::error!(code = f.code.as_str(), at = %at, "hazard (critical): {} — {}", f.detail, f.impact);
        } else {
            tracing::warn!(code = f.code.as_str(), at = %at, "hazard: {} — {}", f.detail, f.impact);
        }
    }
    if appeared.len() > LOGGED {
        tracing::warn!(
            "{} more hazards found (`snapwarden doctor` lists them all)",
            appeared.len() - LOGGED
        );
    }
    let cleared = before
        .iter()
        .filter(|f| !new.contains(&identity(f)))
        .count();
    if cleared > 0 {
        tracing::info!("{cleared} hazards cleared since the last audit");
    }
}
