//! Publishing the agent's state as metrics after every pass: the series of a policy (kept in
//! line with it when it changes), the next scheduled snapshots, and each volume's gauges (set
//! only when their values changed).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::*;

impl Metrics {
    /// The next scheduled snapshot of every planned volume and schedule after `now`. A volume
    /// whose next snapshots are those last set (for the same policy) is left as it is.
    pub fn scheduled(&self, policy: &Arc<Policy>, plan: &Plan, now: DateTime<Utc>) {
        let mut known = self.known();
        let known = &mut *known;
        if !same_policy(&known.next.0, policy) {
            known.next = (Some(policy.clone()), vec![None; policy.volumes.len()]);
        }
        for vp in &plan.volumes {
            let mut next: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
            for s in vp.scheduled.iter().filter(|s| s.at > now) {
                next.entry(vp.schedule_name(s))
                    .and_modify(|t| *t = (*t).min(s.at))
                    .or_insert(s.at);
            }
            let Some(last) = known.next.1.get_mut(vp.volume) else {
                continue;
            };
            let unchanged = last.as_ref().is_some_and(|l| {
                l.len() == next.len()
                    && l.iter()
                        .zip(&next)
                        .all(|((ls, lt), (s, t))| ls == s && lt == t)
            });
            if unchanged {
                continue;
            }
            *last = Some(next.iter().map(|(s, t)| (s.to_string(), *t)).collect());
            let Some(key) = volume_key(policy, vp.volume) else {
                continue;
            };
            let previous = known.schedules.remove(&key).unwrap_or_default();
            for gone in previous.iter().filter(|p| !next.contains_key(p.as_str())) {
                let _ = self
                    .next_scheduled
                    .remove_label_values(&[&key[0], &key[1], &key[2], gone]);
            }
            for (schedule, at) in &next {
                self.next_scheduled
                    .with_label_values(&[key[0].as_str(), &key[1], &key[2], schedule])
                    .set(unix_seconds(*at));
            }
            known
                .schedules
                .insert(key, next.keys().map(|s| s.to_string()).collect());
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
    pub(super) fn retain(&self, policy: &Policy) {
        let clusters: BTreeSet<String> = policy.clusters.iter().map(|c| c.name.clone()).collect();
        let volumes: BTreeSet<VolumeKey> = (0..policy.volumes.len())
            .filter_map(|vi| volume_key(policy, vi))
            .collect();
        let windows: BTreeSet<String> = policy.windows.iter().map(|w| w.name.clone()).collect();
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
        for v in known.volumes.difference(&volumes) {
            let l = [v[0].as_str(), v[1].as_str(), v[2].as_str()];
            for state in BACKING_STATES {
                let _ = self.backing.remove_label_values(&[l[0], l[1], l[2], state]);
            }
            let _ = self.oldest_age.remove_label_values(&l);
            let _ = self.release_slack.remove_label_values(&l);
            let _ = self.guard.remove_label_values(&l);
            let _ = self.flexclone_recommended.remove_label_values(&l);
        }
        known.schedules.retain(|v, schedules| {
            let keep = volumes.contains(v);
            if !keep {
                for s in schedules.iter() {
                    let _ = self
                        .next_scheduled
                        .remove_label_values(&[&v[0], &v[1], &v[2], s]);
                }
            }
            keep
        });
        known.conflicts.retain(|(v, kind)| {
            let keep = volumes.contains(v);
            if !keep {
                let _ = self
                    .conflicts
                    .remove_label_values(&[v[0].as_str(), &v[1], &v[2], kind]);
            }
            keep
        });
        for w in known.windows.difference(&windows) {
            let _ = self.window_active.remove_label_values(&[w]);
            let _ = self.last_success.remove_label_values(&[w]);
            for r in RESULTS {
                let _ = self.cycles.remove_label_values(&[w.as_str(), r.as_str()]);
            }
        }
        for w in windows.difference(&known.windows) {
            for r in RESULTS {
                self.cycles.with_label_values(&[w.as_str(), r.as_str()]);
            }
        }
        let new: Vec<VolumeKey> = volumes.difference(&known.volumes).cloned().collect();
        for v in new {
            self.flexclone_recommended
                .with_label_values(&[&v[0], &v[1], &v[2]]);
            for kind in CONFLICT_KINDS.map(ConflictKind::as_str) {
                self.conflicts
                    .with_label_values(&[&v[0], &v[1], &v[2], kind]);
                known.conflicts.insert((v.clone(), kind));
            }
        }
        known.clusters = clusters;
        known.volumes = volumes;
        known.windows = windows;
    }
}

/// The agent's state as metrics: called at the end of every pass. Series are brought in line
/// with the policy when it (or the set of request series) changed, and a volume's gauges are
/// set when their values changed.
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
    for w in &policy.windows {
        m.window_active
            .with_label_values(&[w.name.as_str()])
            .set(i64::from(active.contains(w.name.as_str())));
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
    let mut known = m.known();
    let known = &mut *known;
    // A volume without an open cycle now, nor last time, nor a release since keeps its gauges:
    // only the others are looked at (all of them for a new policy).
    let candidates: BTreeSet<usize> = if same_policy(&known.gauges.0, policy) {
        counts
            .keys()
            .chain(oldest.keys())
            .chain(slack.keys())
            .chain(known.busy.iter())
            .copied()
            .collect()
    } else {
        known.gauges = (Some(policy.clone()), vec![None; policy.volumes.len()]);
        (0..policy.volumes.len()).collect()
    };
    known.busy = counts.keys().chain(oldest.keys()).copied().collect();
    for vi in candidates {
        let Some(last) = known.gauges.1.get_mut(vi) else {
            continue;
        };
        let n = counts.get(&vi).copied().unwrap_or_default();
        let age = oldest.get(&vi).map_or(0.0, |t| {
            ((now - *t).num_milliseconds().max(0) as f64) / 1000.0
        });
        let margin = slack.get(&vi).map(|(_, margin)| *margin);
        let values = VolumeGauges {
            backing: n,
            oldest_age: age,
            guard,
            release_slack: margin.or(last.as_ref().and_then(|g| g.release_slack)),
        };
        if last.as_ref() == Some(&values) {
            continue;
        }
        let Some(key) = volume_key(policy, vi) else {
            continue;
        };
        let l = [key[0].as_str(), key[1].as_str(), key[2].as_str()];
        for (state, value) in BACKING_STATES.iter().zip(n) {
            m.backing
                .with_label_values(&[l[0], l[1], l[2], state])
                .set(value);
        }
        m.oldest_age.with_label_values(&l).set(age);
        m.guard.with_label_values(&l).set(guard);
        if let Some(margin) = margin {
            m.release_slack.with_label_values(&l).set(margin);
        }
        *last = Some(values);
    }
}
