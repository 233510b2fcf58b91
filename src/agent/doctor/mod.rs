//! `doctor`: what will break backups on a policy's clusters, found before they run — a pure
//! audit of one read-only discovery per cluster, each finding with a severity, a stable code,
//! where it is, what it means for backups and the exact fix (ONTAP CLI and REST).
//!
//! `audit` is a function of its [`Input`] (policy, listings, plan, journal facts, `now`): no
//! clock, no I/O. `read` gathers the listings (GETs only); `render` prints them for people and
//! scripts; the agent runs the same audit after its discovery and exports it as a metric.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::discovery::Inventory;
use crate::config::Policy;
use crate::ontap::VolumeSettings;
use crate::planner::{Observed, Plan};

mod checks;
mod read;
pub mod render;
mod snapshots;
#[cfg(test)]
mod tests;

pub use read::{read_clusters, Estate};

/// The horizon whose predicted conflicts are findings: `check`'s default week.
pub const HORIZON: TimeDelta = TimeDelta::days(7);

/// The agent's age from which a backing snapshot no open cycle holds is an orphan (`doctor
/// --older-than`'s default).
pub const ORPHAN_AGE: TimeDelta = TimeDelta::hours(24);

/// How bad a finding is for backups. Ordered: `Info < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing breaks because of it.
    Info,
    /// Backups run but something defeats coordination (a lock, a conflict, a leftover).
    Warning,
    /// Backups fail or lose data: a clone deleted mid-backup, no usable clone method, a
    /// volume that is not there.
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Critical, Severity::Warning, Severity::Info];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What a finding is about: stable names, the same in the table, the JSON, the metric's `code`
/// label and the docs (docs/doctor.md lists each with its meaning and fix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    VolumeMissing,
    LicenseMissing,
    AutodeleteDestroy,
    AutodeleteDisrupt,
    SnapshotLocking,
    OrdinalNaming,
    DoubleSchedule,
    ChainLock,
    BusySnapshot,
    OrphanBackingSnapshot,
    OrphanForeignSnapshot,
    SnapshotReserveExceeded,
    SnapshotSpace,
    SnaprestoreClones,
    VolumeNotCovered,
    PredictedConflict,
}

impl Code {
    pub const ALL: [Code; 16] = [
        Code::VolumeMissing,
        Code::LicenseMissing,
        Code::AutodeleteDestroy,
        Code::AutodeleteDisrupt,
        Code::SnapshotLocking,
        Code::OrdinalNaming,
        Code::DoubleSchedule,
        Code::ChainLock,
        Code::BusySnapshot,
        Code::OrphanBackingSnapshot,
        Code::OrphanForeignSnapshot,
        Code::SnapshotReserveExceeded,
        Code::SnapshotSpace,
        Code::SnaprestoreClones,
        Code::VolumeNotCovered,
        Code::PredictedConflict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::VolumeMissing => "volume_missing",
            Code::LicenseMissing => "license_missing",
            Code::AutodeleteDestroy => "autodelete_destroy",
            Code::AutodeleteDisrupt => "autodelete_disrupt",
            Code::SnapshotLocking => "snapshot_locking",
            Code::OrdinalNaming => "ordinal_naming",
            Code::DoubleSchedule => "double_schedule",
            Code::ChainLock => "chain_lock",
            Code::BusySnapshot => "busy_snapshot",
            Code::OrphanBackingSnapshot => "orphan_backing_snapshot",
            Code::OrphanForeignSnapshot => "orphan_foreign_snapshot",
            Code::SnapshotReserveExceeded => "snapshot_reserve_exceeded",
            Code::SnapshotSpace => "snapshot_space",
            Code::SnaprestoreClones => "snaprestore_clones",
            Code::VolumeNotCovered => "volume_not_covered",
            Code::PredictedConflict => "predicted_conflict",
        }
    }
}

/// The fix of a finding: ONTAP CLI commands and REST calls, in order, and what to change in
/// the policy. `doctor` never runs them: it only reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fix {
    pub cli: Vec<String>,
    pub rest: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// One thing found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: Code,
    /// The policy's name for the cluster.
    pub cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub svm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// LUN paths the finding concerns (a snapshot's clones, a volume's LUNs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub luns: Vec<String>,
    /// Bytes held (a snapshot's size, the snapshots' use of the reserve), when it matters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// What was found, with the facts behind it.
    pub detail: String,
    /// What it means for backups.
    pub impact: String,
    pub fix: Fix,
}

/// One cluster's listings: the discovery inventory and its volumes' settings.
#[derive(Debug, Clone)]
pub struct ClusterListing {
    /// The policy's name for the cluster.
    pub name: String,
    pub inventory: Inventory,
    pub settings: Vec<VolumeSettings>,
}

/// Everything the audit reads.
pub struct Input<'a> {
    pub policy: &'a Policy,
    /// The clusters that could be read, by the policy's name.
    pub clusters: &'a [ClusterListing],
    /// What the planner was given (for the volumes' schedules and zones).
    pub observed: &'a Observed,
    /// The plan for the next days (`check`'s): its conflicts are findings.
    pub plan: &'a Plan,
    /// Backing snapshots of open cycles as `(cluster, svm, volume, snapshot)`, when a journal
    /// was read; `None` without one (every old backing snapshot of snapwarden's is an orphan).
    pub open_backing: Option<&'a HashSet<[String; 4]>>,
    pub now: DateTime<Utc>,
    /// Backing snapshots younger than this are not orphans (a backup may still use them).
    pub older_than: TimeDelta,
}

/// The findings, most severe first, then by cluster, SVM, volume, code and snapshot.
pub fn audit(input: &Input<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for listing in input.clusters {
        let Some(ci) = input
            .policy
            .clusters
            .iter()
            .position(|c| c.name == listing.name)
        else {
            continue;
        };
        checks::cluster(input, ci, listing, &mut out);
    }
    checks::conflicts(input, &mut out);
    sort(&mut out);
    out
}

/// Most severe first, then by cluster, SVM, volume, code and snapshot (`audit`'s order).
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.cluster.cmp(&b.cluster))
            .then_with(|| a.svm.cmp(&b.svm))
            .then_with(|| a.volume.cmp(&b.volume))
            .then_with(|| a.code.cmp(&b.code))
            .then_with(|| a.snapshot.cmp(&b.snapshot))
    });
}

/// The exit code of a finished audit: 0 nothing above `info`, 1 warnings, 2 critical.
pub fn exit_code(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Critical) => 2,
        Some(Severity::Warning) => 1,
        _ => 0,
    }
}

/// How many findings of each severity, most severe first.
pub fn counts(findings: &[Finding]) -> [(Severity, usize); 3] {
    Severity::ALL.map(|s| (s, findings.iter().filter(|f| f.severity == s).count()))
}
