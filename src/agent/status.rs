//! What the running agent is doing, as `/api/v1/status` serves it and `snapwarden status` prints
//! it. The JSON field names are a contract scripts rely on: add fields, never rename.

use std::sync::RwLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::cycle::{Cycle, ObservedConflict};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub generated_at: Option<DateTime<Utc>>,
    pub clusters: Vec<ClusterStatus>,
    pub live_cycles: Vec<LiveCycle>,
    pub recent_cycles: Vec<RecentCycle>,
    pub conflicts: Vec<ConflictStatus>,
    /// Volumes the agent leaves out, and why (missing volume or LUN, unresolved schedules).
    #[serde(default)]
    pub excluded_volumes: Vec<ExcludedVolume>,
    /// The next planned backing-snapshot create.
    #[serde(default)]
    pub next_create_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub shutting_down: bool,
    /// FlexClone recommendations in force (C8), sorted by cluster, svm, volume.
    #[serde(default)]
    pub flexclone_recommendations: Vec<FlexCloneRecommendation>,
    /// With `[ha]`: this replica, its role and who leads; absent when the agent runs alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<HaStatus>,
}

/// The election as this replica sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HaStatus {
    /// This replica's identity.
    pub identity: String,
    /// `leader` or `standby`.
    pub role: String,
    /// Who leads as last seen; `null` when nobody does or the backend is unreachable.
    pub leader: Option<String>,
    /// The fencing revision while this replica leads.
    pub revision: Option<i64>,
    pub backend_up: bool,
    pub leader_changes: u64,
}

/// A volume's FlexClone recommendation in force.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlexCloneRecommendation {
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    /// The conflict that raised it.
    pub since: DateTime<Utc>,
    pub evidence: String,
    /// Bytes the volume's locked backing snapshots hold, as ONTAP last reported each snapshot's
    /// size: `null` when ONTAP reported none (or not yet evaluated since the agent started).
    #[serde(default)]
    pub locked_bytes: Option<u64>,
    /// The cluster's flexclone license: `null` while its state is unknown.
    pub licensed: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterStatus {
    pub name: String,
    pub reachable: bool,
    pub version: Option<String>,
    pub timezone: Option<String>,
    /// Whether this cluster was reached at least once since the agent started.
    #[serde(default)]
    pub reached_once: bool,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub flexclone_license: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LiveCycle {
    pub id: String,
    pub window: String,
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    pub backing_snapshot: String,
    pub clones: Vec<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub release_by: DateTime<Utc>,
    pub state: String,
    #[serde(default)]
    pub release_deadline: Option<DateTime<Utc>>,
    #[serde(default)]
    pub clone_method: String,
    #[serde(default)]
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RecentCycle {
    pub id: String,
    pub window: String,
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    pub backing_snapshot: String,
    pub created_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
    /// `completed | overrun | failed | skipped`; `null` while the cycle is still open.
    pub result: Option<String>,
    #[serde(default)]
    pub window_start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub create_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub detail: String,
    /// With `[ha]`: the replica that acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConflictStatus {
    /// `chain_conflict | locked | late_release | foreign | skipped`.
    pub kind: String,
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    pub window: Option<String>,
    pub at: DateTime<Utc>,
    pub detail: String,
    #[serde(default)]
    pub cycle: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExcludedVolume {
    /// `cluster/svm/volume`.
    pub volume: String,
    pub reason: String,
}

impl LiveCycle {
    pub fn of(c: &Cycle) -> LiveCycle {
        LiveCycle {
            id: c.id.clone(),
            window: c.window.clone(),
            cluster: c.cluster.clone(),
            svm: c.svm.clone(),
            volume: c.volume.clone(),
            backing_snapshot: c.backing_snapshot.clone(),
            clones: c.clones.iter().map(|l| l.path.clone()).collect(),
            created_at: c.created_at,
            release_by: c.release_by,
            state: c.state.as_str().to_string(),
            release_deadline: c.release_deadline,
            clone_method: c.clone_kind.as_str().to_string(),
            detail: c.detail.clone(),
        }
    }
}

impl RecentCycle {
    pub fn of(c: &Cycle) -> RecentCycle {
        RecentCycle {
            id: c.id.clone(),
            window: c.window.clone(),
            cluster: c.cluster.clone(),
            svm: c.svm.clone(),
            volume: c.volume.clone(),
            backing_snapshot: c.backing_snapshot.clone(),
            created_at: c.created_at,
            released_at: c.released_at,
            result: c.result.map(|r| r.as_str().to_string()),
            window_start: Some(c.window_start),
            create_at: Some(c.create_at),
            state: c.state.as_str().to_string(),
            detail: c.detail.clone(),
            replica: c.replica.clone(),
        }
    }
}

impl ConflictStatus {
    pub fn of(c: &ObservedConflict) -> ConflictStatus {
        ConflictStatus {
            kind: c.kind.as_str().to_string(),
            cluster: c.cluster.clone(),
            svm: c.svm.clone(),
            volume: c.volume.clone(),
            window: c.window.clone(),
            at: c.at,
            detail: c.detail.clone(),
            cycle: c.cycle.clone(),
        }
    }
}

/// The latest status, written by the agent after every pass and read by the HTTP API.
#[derive(Debug, Default)]
pub struct StatusBoard {
    status: RwLock<Status>,
}

impl StatusBoard {
    pub fn get(&self) -> Status {
        self.status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set(&self, s: Status) {
        *self.status.write().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// Ready once every cluster was reached at least once.
    pub fn ready(&self) -> bool {
        let s = self.status.read().unwrap_or_else(|e| e.into_inner());
        s.generated_at.is_some() && s.clusters.iter().all(|c| c.reached_once)
    }
}
