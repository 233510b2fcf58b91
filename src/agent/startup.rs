//! What an agent starts from: its memory rebuilt from the journal (the cycles that may still own
//! objects, the managed creates whose answer was lost, the occurrences already accounted for,
//! the FlexClone recommendations in force) and its connections to the policy's clusters.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Semaphore;

use super::changes::{Changes, Noted};
use super::cycle::CycleState;
use super::executor::ClusterConn;
use super::journal::{Journal, JournalError, RecommendationKind};
use super::managed::{self, CopyKey};
use super::metrics::{self, Metrics};
use super::state::{InForce, Memory, Occurrence, Open, Step, VolumeKey};
use super::{decide, observe, ClusterClient};
use crate::config::Policy;
use crate::ontap::Ontap;

/// The memory the journal leaves: each open cycle in the step the recover stage decides from
/// (nothing runs until it has), the managed creates to settle, the occurrences started within
/// a lookback, the recommendations in force.
pub(super) fn memory(
    journal: &Journal,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Memory, JournalError> {
    let prefix = &policy.agent.snapshot_prefix;
    let mut memory = Memory::default();
    for c in journal.open_cycles()? {
        let step = if !observe::has_prefix(&c.backing_snapshot, prefix) {
            Step::ToolEnded
        } else if c.state == CycleState::Locked {
            Step::Locked {
                unpinned: false,
                retry: None,
            }
        } else {
            Step::Release
        };
        let open = Open {
            cycle: c,
            step,
            settle_after: Some(now),
        };
        memory.open.insert(open.cycle.id.clone(), open);
    }
    for m in journal.managed(now - managed::LOOKBACK, true)? {
        let key = CopyKey {
            volume: VolumeKey {
                cluster: m.cluster,
                svm: m.svm,
                volume: m.volume,
            },
            prefix: m.prefix,
        };
        memory.managed.entry(key).or_default().pending = Some((m.name, m.asked_at));
    }
    let since = now - decide::lookback(policy) - TimeDelta::days(1);
    for c in journal.recent_cycles(since, None, 1_000_000)? {
        memory.started.insert(Occurrence::of_cycle(&c));
    }
    for e in journal.recommendation_events()? {
        let key = VolumeKey {
            cluster: e.cluster,
            svm: e.svm,
            volume: e.volume,
        };
        match e.event {
            RecommendationKind::Raised => {
                let f = InForce {
                    since: e.at,
                    evidence: e.evidence,
                    locked_bytes: None,
                    licensed: None,
                    switched: false,
                };
                memory.recommended.insert(key, f);
            }
            RecommendationKind::Switched => {
                if let Some(f) = memory.recommended.get_mut(&key) {
                    f.switched = true;
                }
            }
            RecommendationKind::Cleared => {
                memory.recommended.remove(&key);
            }
        }
    }
    Ok(memory)
}

/// One connection per policy cluster, in policy order: its client counted by the metrics, and
/// the semaphore that bounds its operations in flight (`[agent] concurrency`).
pub(super) fn connections(
    policy: &Policy,
    clusters: &[ClusterClient],
    metrics: &Arc<Metrics>,
) -> Vec<Arc<ClusterConn>> {
    policy
        .clusters
        .iter()
        .map(|pc| {
            let ontap = clusters
                .iter()
                .find(|c| c.name == pc.name)
                .map(|c| c.ontap.clone())
                .expect("a client for every policy cluster");
            let ontap: Arc<dyn Ontap> =
                Arc::new(metrics::Counted::new(ontap, metrics.clone(), &pc.name));
            let changed = Arc::new(Noted::default());
            let ontap: Arc<dyn Ontap> = Arc::new(Changes::new(ontap, changed.clone()));
            Arc::new(ClusterConn {
                name: pc.name.clone(),
                ontap,
                changed,
                permits: Arc::new(Semaphore::new(policy.agent.concurrency)),
            })
        })
        .collect()
}
