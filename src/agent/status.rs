//! What the running agent is doing, as `/api/v1/status` serves it and `snapwarden status` prints
//! it. The JSON field names are a contract scripts rely on: add fields, never rename.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::cycle::{Cycle, ObservedConflict};
use super::journal::{Journal, JournalHealth, Revision};

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
    /// FlexClone recommendations in force, sorted by cluster, svm, volume.
    #[serde(default)]
    pub flexclone_recommendations: Vec<FlexCloneRecommendation>,
    /// With `[ha]`: this replica, its role and who leads; absent when the agent runs alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<HaStatus>,
    /// Whether the journal can be written.
    #[serde(default)]
    pub journal: Option<JournalStatus>,
    /// The managed copies (`managed_snapshots` volumes): their newest snapshot, the next one
    /// due and its deadline, a snapshot waiting for a clone, a series over its count.
    #[serde(default)]
    pub managed_snapshots: Vec<super::managed::CopyStatus>,
    /// The agent's last audit (`[agent] audit_interval`): when, and its findings per severity;
    /// absent until one ran, when auditing is off, and on a standby.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hazards: Option<HazardsStatus>,
}

/// The last audit's findings per severity (`snapwarden doctor` lists them).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HazardsStatus {
    pub audited_at: DateTime<Utc>,
    pub critical: usize,
    pub warning: usize,
    pub info: usize,
}

/// The journal's writes as the agent sees them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JournalStatus {
    /// The last write succeeded (the agent is not ready while it did not).
    pub writable: bool,
    /// Writes that failed since the agent started.
    pub errors_total: u64,
    /// Why the last write failed, while writes fail.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl JournalStatus {
    pub fn of(health: &JournalHealth) -> JournalStatus {
        JournalStatus {
            writable: health.writable(),
            errors_total: health.errors(),
            last_error: health.last_error(),
        }
    }
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
    /// The window's configured start of the occurrence this cycle serves.
    #[serde(default)]
    pub window_start: Option<DateTime<Utc>>,
    /// When the planner placed the create: differs from `window_start` when it moved the start.
    #[serde(default)]
    pub create_at: Option<DateTime<Utc>>,
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
            // Once the clones were deleted (a locked cycle waits for its backing snapshot
            // only), none is listed.
            clones: if c.clones_deleted_at.is_some() {
                Vec::new()
            } else {
                c.clones.iter().map(|l| l.path.clone()).collect()
            },
            created_at: c.created_at,
            release_by: c.release_by,
            state: c.state.as_str().to_string(),
            release_deadline: c.release_deadline,
            clone_method: c.clone_kind.as_str().to_string(),
            detail: c.detail.clone(),
            window_start: Some(c.window_start),
            create_at: Some(c.create_at),
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

/// The status board's lists that come from the journal, kept between passes: read again only
/// when the journal changed since (its [`Revision`]) or the oldest conflict shown aged out, so
/// they are always what a fresh read would answer.
#[derive(Debug, Default)]
pub struct JournalLists {
    /// The journal's revision the lists were read at; `None`: read again at the next pass.
    revision: Option<Revision>,
    pub recent: Vec<RecentCycle>,
    pub conflicts: Vec<ConflictStatus>,
}

impl JournalLists {
    /// Brings the lists up to date: the newest `recent` cycles and the newest `conflicts`
    /// conflicts at or after `since`. A failed read leaves an empty list and is tried again.
    pub fn update(
        &mut self,
        journal: &Journal,
        recent: usize,
        since: DateTime<Utc>,
        conflicts: usize,
    ) {
        let revision = journal.revision().ok();
        // The journal keeps instants in milliseconds and compares them so.
        let aged = self
            .conflicts
            .last()
            .is_some_and(|c| c.at.timestamp_millis() < since.timestamp_millis());
        if revision.is_some() && revision == self.revision && !aged {
            return;
        }
        let cycles = journal.recent_cycles(DateTime::<Utc>::MIN_UTC, None, recent);
        let found = journal.conflicts(since, conflicts);
        self.revision = revision.filter(|_| cycles.is_ok() && found.is_ok());
        self.recent = cycles
            .unwrap_or_default()
            .iter()
            .map(RecentCycle::of)
            .collect();
        self.conflicts = found
            .unwrap_or_default()
            .iter()
            .map(ConflictStatus::of)
            .collect();
    }
}

/// The latest status, written by the agent after every pass and read by the HTTP API.
#[derive(Debug, Default)]
pub struct StatusBoard {
    status: RwLock<Status>,
    /// The journal whose writes decide readiness too.
    journal: RwLock<Option<Arc<JournalHealth>>>,
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

    /// Readiness also follows this journal's writes.
    pub fn watch_journal(&self, health: Arc<JournalHealth>) {
        *self.journal.write().unwrap_or_else(|e| e.into_inner()) = Some(health);
    }

    /// Ready once every cluster was reached at least once, while the journal can be written;
    /// otherwise why not.
    pub fn readiness(&self) -> Result<(), String> {
        let journal = self.journal.read().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = journal.as_ref().filter(|h| !h.writable()) {
            return Err(format!(
                "the journal cannot be written ({} failed writes; last: {})",
                h.errors(),
                h.last_error().unwrap_or_default()
            ));
        }
        let s = self.status.read().unwrap_or_else(|e| e.into_inner());
        if s.generated_at.is_some() && s.clusters.iter().all(|c| c.reached_once) {
            Ok(())
        } else {
            Err("not every cluster was reached yet".into())
        }
    }

    /// Ready ([`StatusBoard::readiness`]).
    pub fn ready(&self) -> bool {
        self.readiness().is_ok()
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::agent::cycle::{ConflictKind, CycleResult, CycleState};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn cycle(id: &str, start: &str) -> Cycle {
        Cycle::sample(id, t(start))
    }

    fn conflict(key: &str, at: &str) -> ObservedConflict {
        ObservedConflict {
            kind: ConflictKind::Locked,
            cluster: "c".into(),
            svm: "svm1".into(),
            volume: "v".into(),
            window: Some("w".into()),
            cycle: None,
            at: t(at),
            detail: format!("pinned ({key})"),
            key: key.into(),
        }
    }

    /// The kept lists after every kind of journal change equal a fresh read (the oracle): a
    /// kept list that missed an invalidation would show the state before the change.
    #[test]
    fn kept_lists_follow_every_journal_change_and_the_age_of_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let mut kept = JournalLists::default();
        let check = |kept: &mut JournalLists, since: DateTime<Utc>, recent: usize| {
            kept.update(&j, 2, since, 2);
            let mut fresh = JournalLists::default();
            fresh.update(&j, 2, since, 2);
            assert_eq!(kept.recent, fresh.recent);
            assert_eq!(kept.conflicts, fresh.conflicts);
            assert_eq!(kept.recent.len(), recent);
            kept.conflicts.len()
        };
        let early = t("2027-01-01T00:00:00Z");
        assert_eq!(check(&mut kept, early, 0), 0);
        let mut a = cycle("a", "2027-01-01T01:00:00Z");
        assert!(j.insert_cycle(&a, early).unwrap());
        assert_eq!(check(&mut kept, early, 1), 0);
        // A state change of a cycle already shown.
        a.state = CycleState::Released;
        a.result = Some(CycleResult::Completed);
        a.released_at = Some(t("2027-01-01T01:20:00Z"));
        j.update_cycle(&a).unwrap();
        check(&mut kept, early, 1);
        assert_eq!(kept.recent[0].state, "released");
        assert_eq!(kept.recent[0].result.as_deref(), Some("completed"));
        // A newer cycle goes first; a third pushes the oldest out of the two shown.
        for (id, start) in [("b", "2027-01-01T02:00:00Z"), ("c", "2027-01-01T03:00:00Z")] {
            assert!(j.insert_cycle(&cycle(id, start), early).unwrap());
        }
        check(&mut kept, early, 2);
        assert_eq!(kept.recent[0].id, "c");
        assert_eq!(kept.recent[1].id, "b");
        // Conflicts, then the oldest ages out without any journal write.
        assert!(j
            .record_conflict(&conflict("k1", "2027-01-01T01:10:00Z"))
            .unwrap());
        assert!(j
            .record_conflict(&conflict("k2", "2027-01-01T02:10:00Z"))
            .unwrap());
        assert_eq!(check(&mut kept, early, 2), 2);
        assert_eq!(check(&mut kept, t("2027-01-01T01:10:00Z"), 2), 2);
        assert_eq!(check(&mut kept, t("2027-01-01T01:10:00.001Z"), 2), 1);
        assert_eq!(kept.conflicts[0].detail, "pinned (k2)");
        // A write through another connection to the same journal.
        let other = Journal::open(dir.path()).unwrap();
        assert!(other
            .insert_cycle(&cycle("d", "2027-01-01T04:00:00Z"), early)
            .unwrap());
        check(&mut kept, t("2027-01-01T01:10:00.001Z"), 2);
        assert_eq!(kept.recent[0].id, "d");
        // Pruning deletes what was shown.
        assert_eq!(j.prune(t("2027-01-02T00:00:00Z")).unwrap().cycles, 1);
        check(&mut kept, early, 2);
        assert!(kept.recent.iter().all(|c| c.id != "a"));
    }
}
