//! Publishing the agent's state as metrics after every pass: the series of a policy (kept in
//! line with it when it changes), the next scheduled snapshots, and each volume's gauges.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::estate::NextScheduled;
use super::*;

impl Metrics {
    /// The next scheduled snapshot of every planned volume and schedule after `now`: a volume's
    /// series are those of its schedules with a snapshot still to come (a volume the plan
    /// leaves out keeps its last ones).
    pub fn scheduled(&self, policy: &Arc<Policy>, plan: &Plan, now: DateTime<Utc>) {
        let mut estate = self.aligned(policy);
        for vp in &plan.volumes {
            let Some(row) = estate.volume(vp.volume) else {
                continue;
            };
            // By name: the earliest instant of every schedule of that name.
            let mut next: BTreeMap<&str, (usize, DateTime<Utc>)> = BTreeMap::new();
            for s in vp.scheduled.iter().filter(|s| s.at > now) {
                next.entry(vp.schedule_name(s))
                    .and_modify(|(_, t)| *t = (*t).min(s.at))
                    .or_insert((s.schedule, s.at));
            }
            row.next = (!next.is_empty()).then(|| NextScheduled {
                names: vp.schedule_names.clone(),
                at: next
                    .into_values()
                    .map(|(at, t)| (at, unix_seconds(t)))
                    .collect(),
            });
        }
    }

    /// [`Metrics::retain`] unless it was done for this very policy and no request series was
    /// added since.
    pub(super) fn retain_if_changed(&self, policy: &Arc<Policy>) {
        let retained = {
            let known = self.known();
            same_policy(&known.retained, policy) && !known.new_requests
        };
        if !retained {
            self.retain(policy);
            self.known().retained = Some(policy.clone());
        }
    }

    /// Removes every series whose cluster, volume or window left the policy, and sets the
    /// series every policy object has (zeros included) so that they exist from the start.
    pub(super) fn retain(&self, policy: &Arc<Policy>) {
        let clusters: BTreeSet<String> = policy.clusters.iter().map(|c| c.name.clone()).collect();
        {
            let mut known = self.known();
            known.new_requests = false;
            for c in known.clusters.difference(&clusters) {
                let _ = self.ontap_up.remove_label_values(&[c]);
            }
            known.requests.retain(|(c, m, code)| {
                let keep = clusters.contains(c);
                if !keep {
                    let _ = self
                        .ontap_requests
                        .remove_label_values(&[c.as_str(), m, code]);
                }
                keep
            });
            known.durations.retain(|(c, m)| {
                let keep = clusters.contains(c);
                if !keep {
                    let _ = self.ontap_duration.remove_label_values(&[c.as_str(), m]);
                }
                keep
            });
            known.clusters = clusters;
        }
        self.estate().retain(policy);
    }
}

/// The agent's state as metrics: called at the end of every pass. Series are brought in line
/// with the policy when it (or the set of request series) changed; every volume's gauges and
/// every window's activity are set.
pub fn publish(
    m: &Metrics,
    policy: &Arc<Policy>,
    views: &[ClusterView],
    memory: &Memory,
    now: DateTime<Utc>,
) {
    m.sync_journal();
    m.retain_if_changed(policy);
    for (view, cluster) in views.iter().zip(&policy.clusters) {
        m.ontap_up
            .with_label_values(&[cluster.name.as_str()])
            .set(i64::from(view.reachable));
    }
    // Open cycles per volume and state, oldest first instant, and windows in progress.
    let mut counts: BTreeMap<usize, [i64; 3]> = BTreeMap::new();
    let mut oldest: BTreeMap<usize, DateTime<Utc>> = BTreeMap::new();
    let mut active: BTreeSet<&str> = BTreeSet::new();
    let volume_index = |c: &Cycle| policy.volume_at(&c.cluster, &c.svm, &c.volume);
    for c in memory.open.values().map(|o| &o.cycle) {
        active.insert(c.window.as_str());
        let Some(vi) = volume_index(c) else {
            continue;
        };
        let state = match c.state {
            CycleState::Creating | CycleState::Live | CycleState::Backup => 0,
            CycleState::Releasing => 1,
            CycleState::Locked => 2,
            _ => continue,
        };
        let n = &mut counts.entry(vi).or_default()[state];
        *n = n.saturating_add(1);
        let since = c.created_at.unwrap_or(c.create_at);
        oldest
            .entry(vi)
            .and_modify(|t| *t = (*t).min(since))
            .or_insert(since);
    }
    // The last release of each volume among the recently released cycles.
    let mut slack: BTreeMap<usize, (DateTime<Utc>, f64)> = BTreeMap::new();
    for c in &memory.recent {
        let (Some(released), Some(deadline)) = (c.released_at, c.release_deadline) else {
            continue;
        };
        let Some(vi) = volume_index(c) else {
            continue;
        };
        let next_scheduled = deadline + policy.agent.guard;
        let margin = (next_scheduled - released).num_milliseconds() as f64 / 1000.0;
        if slack.get(&vi).is_none_or(|(t, _)| released >= *t) {
            slack.insert(vi, (released, margin));
        }
    }
    let guard = policy.agent.guard.num_milliseconds() as f64 / 1000.0;
    let mut estate = m.aligned(policy);
    for (vi, row) in estate.volumes.iter_mut().enumerate() {
        let age = oldest.get(&vi).map_or(0.0, |t| {
            ((now - *t).num_milliseconds().max(0) as f64) / 1000.0
        });
        row.backing = Some(counts.get(&vi).copied().unwrap_or_default());
        row.oldest_age = Some(age);
        row.guard = Some(guard);
        if let Some((_, margin)) = slack.get(&vi) {
            row.release_slack = Some(*margin);
        }
    }
    for (w, row) in policy.windows.iter().zip(estate.windows.iter_mut()) {
        row.active = Some(i64::from(active.contains(w.name.as_str())));
    }
}
