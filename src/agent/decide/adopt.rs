//! The adopt stage (with `[ha]`): a new leader takes over the cycles another replica left on
//! ONTAP. A backing snapshot on a policy volume with the prefix and the marker of a cycle this
//! journal does not know, created within a pass's lookback before this replica became leader,
//! is adopted (its clones found in the same listing) and released. Older look-alikes are
//! reported by the observe stage, never adopted.

use chrono::{DateTime, Utc};

use super::{Action, View};
use crate::agent::cycle::{self, CloneKind, CloneLun, Cycle, CycleResult, CycleState};
use crate::agent::state::volume_index;

pub(super) fn decide(view: &View<'_>, now: DateTime<Utc>) -> Vec<Action> {
    let since = view.leading_since.unwrap_or(now);
    let lookback = super::start::lookback(view.policy);
    let mut actions = Vec::new();
    for (ci, cv) in view.clusters.iter().enumerate() {
        let Some(inv) = cv.inventory.as_ref().filter(|i| i.at >= since) else {
            continue;
        };
        let cluster = &view.policy.clusters[ci].name;
        for s in inv.prefixed_snapshots(view.prefix()) {
            let Some(comment) = s.comment.as_deref() else {
                continue;
            };
            let Some(id) = cycle::cycle_id_in_comment(comment) else {
                continue;
            };
            if view.memory.cycle(id).is_some() || view.journal.known_cycles.contains(id) {
                continue;
            }
            let Some(vi) = volume_index(view.policy, cluster, &s.svm, &s.volume_name) else {
                continue;
            };
            let window = comment
                .split(' ')
                .find_map(|w| w.strip_prefix("window="))
                .unwrap_or("");
            let Some(window) = view.policy.windows.iter().find(|w| w.name == window) else {
                continue;
            };
            let Some(create_at) = s
                .name
                .rsplit('.')
                .next()
                .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ").ok())
                .map(|t| t.and_utc())
            else {
                continue;
            };
            // Only a cycle the previous leader can have been running: its planned create lies
            // within a pass's lookback.
            if create_at > now || create_at < since - lookback {
                continue;
            }
            let clones: Vec<(CloneLun, String)> = inv
                .luns()
                .filter(|l| {
                    l.svm == s.svm
                        && l.volume_name == s.volume_name
                        && l.created_as_clone
                        && l.name
                            .strip_prefix(&format!("/vol/{}/{}.", s.volume_name, s.name))
                            .is_some()
                })
                .map(|l| {
                    let lun = CloneLun {
                        source: String::new(),
                        path: l.name.clone(),
                    };
                    (lun, l.uuid.clone())
                })
                .collect();
            let volume = &view.policy.volumes[vi];
            let cycle = Cycle {
                id: id.to_string(),
                window: window.name.clone(),
                cluster: cluster.clone(),
                svm: volume.svm.clone(),
                volume: volume.name.clone(),
                window_start: create_at,
                create_at,
                release_by: now,
                release_deadline: None,
                backing_snapshot: s.name.to_string(),
                clone_kind: CloneKind::SnapRestore,
                clones: clones.iter().map(|(c, _)| c.clone()).collect(),
                state: CycleState::Releasing,
                result: Some(CycleResult::Failed),
                created_at: None,
                clones_created_at: None,
                clones_deleted_at: None,
                released_at: None,
                detail: format!(
                    "adopted from ONTAP by {} after a change of leader: released",
                    view.replica.unwrap_or("")
                ),
                replica: view.replica.map(str::to_string),
            };
            actions.push(Action::Adopt {
                cycle,
                snapshot_uuid: s.uuid.to_string(),
                clones,
            });
        }
    }
    actions
}
