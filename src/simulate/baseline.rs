//! The uncoordinated baseline: what a backup tool unaware of snapshot schedules does. At each
//! window's configured start it snapshots the volume and clones its LUNs; when the drawn backup
//! ends it deletes the clones and the snapshot. A delete refused (a scheduled snapshot pinned the
//! backing snapshot, or a clone is still there) is retried hourly until the end of the period.
//!
//! It runs against the same metered simulator as the agent, so its chain conflicts and locks are
//! the simulator's own, not a model of them.
//!
//! A `driver = "veeam"` window's occurrence starts its simulated Veeam job instead, once for all
//! the window's volumes, at the configured start: the job makes and deletes its own snapshot and
//! clone; a snapshot it could not delete stays (locked), as Veeam leaves it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::draw::{Draws, Occurrence};
use super::meter::Meter;
use crate::agent::clock::Clock;
use crate::config::{CloneMethod, Driver, Policy};
use crate::ontap::{LicenseState, NewSnapshot, Ontap, VolumeRef};
use crate::veeam::sim::SimState;
use crate::veeam::sim_rest::VeeamSim;

/// How often a refused delete is tried again.
const RETRY: TimeDelta = TimeDelta::hours(1);

/// How the baseline's cycles went.
#[derive(Debug, Default)]
pub struct Tally {
    pub completed: u64,
    pub overrun: u64,
    /// The snapshot or a clone could not be created.
    pub failed: u64,
    /// Backing snapshots still refused at the end: (cluster, volume, snapshot name).
    pub locked: Vec<(String, String, String)>,
}

/// One backup in flight or waiting for its snapshot's delete.
struct Running {
    cluster: usize,
    volume: VolumeRef,
    snapshot_uuid: String,
    snapshot: String,
    clones: Vec<(String, String)>,
    overruns: bool,
}

enum Step {
    Create {
        window: usize,
        volume: usize,
        start: DateTime<Utc>,
    },
    Release(usize),
}

pub async fn run(
    policy: &Policy,
    meter: &Arc<Meter>,
    clock: &dyn Clock,
    draws: Draws,
    occurrences: &[(usize, usize, DateTime<Utc>)],
    end: DateTime<Utc>,
    veeam: &[(String, Arc<VeeamSim>)],
) -> Tally {
    // Veeam sessions started: (server index, session id, volumes of the window: one cycle each).
    let mut sessions: Vec<(usize, String, u64)> = Vec::new();
    let mut jobs_started: std::collections::HashSet<(usize, DateTime<Utc>)> =
        std::collections::HashSet::new();
    let clients: Vec<Arc<dyn Ontap>> = policy
        .clusters
        .iter()
        .map(|c| meter.client(&c.name))
        .collect();
    let mut refs: HashMap<(usize, String, String), VolumeRef> = HashMap::new();
    let mut flexclone = Vec::new();
    for (ci, client) in clients.iter().enumerate() {
        for v in client.volumes().await.unwrap_or_default() {
            refs.insert(
                (ci, v.svm.clone(), v.name.clone()),
                VolumeRef {
                    uuid: v.uuid,
                    name: v.name,
                    svm: v.svm,
                },
            );
        }
        flexclone.push(
            client
                .license("flexclone")
                .await
                .is_ok_and(|l| l == LicenseState::Compliant),
        );
    }
    let mut steps: Vec<Step> = Vec::new();
    let mut queue: BinaryHeap<Reverse<(DateTime<Utc>, usize)>> = BinaryHeap::new();
    for &(window, volume, start) in occurrences {
        queue.push(Reverse((start, steps.len())));
        steps.push(Step::Create {
            window,
            volume,
            start,
        });
    }
    let mut running: Vec<Option<Running>> = Vec::new();
    let mut tally = Tally::default();
    let prefix = &policy.agent.snapshot_prefix;
    while let Some(Reverse((at, step))) = queue.pop() {
        clock.sleep_until(at).await;
        match &steps[step] {
            Step::Create {
                window,
                volume,
                start,
            } => {
                let w = &policy.windows[*window];
                if let Driver::Veeam(job) = &w.driver {
                    if !jobs_started.insert((*window, *start)) {
                        continue;
                    }
                    let name = policy.veeam.get(job.server).map(|s| s.name.as_str());
                    let Some(si) = veeam.iter().position(|(n, _)| Some(n.as_str()) == name) else {
                        tally.failed += 1;
                        continue;
                    };
                    meter.sync();
                    let started = veeam[si].1.with(|state, world| {
                        let id = state
                            .jobs
                            .iter()
                            .find(|j| j.name == job.job || j.id.eq_ignore_ascii_case(&job.job))
                            .map(|j| j.id.clone())
                            .unwrap_or_default();
                        state.start(world, &id).map(|s| s.id)
                    });
                    match started {
                        Ok(id) => sessions.push((si, id, w.volumes.len() as u64)),
                        Err(_) => tally.failed += w.volumes.len() as u64,
                    }
                    continue;
                }
                let v = &policy.volumes[*volume];
                let cluster = &policy.clusters[v.cluster];
                let Some(vref) = refs.get(&(v.cluster, v.svm.clone(), v.name.clone())) else {
                    tally.failed += 1;
                    continue;
                };
                let backup = draws.backup(
                    &Occurrence {
                        cluster: &cluster.name,
                        svm: &v.svm,
                        volume: &v.name,
                        window: &w.name,
                        start: *start,
                    },
                    w.expected,
                    w.max,
                );
                let client = &clients[v.cluster];
                let name = format!("{prefix}.{}.{}", w.name, start.format("%Y%m%dT%H%M%SZ"));
                let snap = match client
                    .create_snapshot(
                        vref,
                        &NewSnapshot::new(&name, "created-by=backup-tool (uncoordinated)"),
                    )
                    .await
                {
                    Ok(s) => s,
                    Err(_) => {
                        tally.failed += 1;
                        continue;
                    }
                };
                let flex = match v.clone {
                    CloneMethod::FlexClone => true,
                    CloneMethod::SnapRestore => false,
                    CloneMethod::Auto => flexclone[v.cluster],
                };
                let mut clones = Vec::new();
                let mut ok = true;
                for (i, lun) in v.luns.iter().enumerate() {
                    let leaf = lun.rsplit('/').next().unwrap_or("lun");
                    let path = format!("/vol/{}/{name}.{i}.{leaf}", v.name);
                    let made = if flex {
                        client.clone_lun_flexclone(vref, &name, lun, &path).await
                    } else {
                        client.clone_lun_snaprestore(vref, &name, lun, &path).await
                    };
                    match made {
                        Ok(l) => clones.push((l.uuid, path)),
                        Err(_) => ok = false,
                    }
                }
                if !ok {
                    tally.failed += 1;
                }
                let id = running.len();
                running.push(Some(Running {
                    cluster: v.cluster,
                    volume: vref.clone(),
                    snapshot_uuid: snap.uuid,
                    snapshot: name,
                    clones,
                    overruns: backup.overruns,
                }));
                let release = (at + backup.duration).min(end);
                queue.push(Reverse((release, steps.len())));
                steps.push(Step::Release(id));
            }
            Step::Release(id) => {
                let id = *id;
                let Some(r) = running[id].as_mut() else {
                    continue;
                };
                let client = &clients[r.cluster];
                let mut kept = Vec::new();
                for (uuid, path) in r.clones.drain(..) {
                    if client.delete_lun(&uuid, &path, false).await.is_err() {
                        kept.push((uuid, path));
                    }
                }
                r.clones = kept;
                let deleted = r.clones.is_empty()
                    && client
                        .delete_snapshot(&r.volume, &r.snapshot_uuid, &r.snapshot)
                        .await
                        .is_ok();
                if deleted {
                    if r.overruns {
                        tally.overrun += 1;
                    } else {
                        tally.completed += 1;
                    }
                    running[id] = None;
                } else if at < end {
                    let next = (at + RETRY).min(end);
                    queue.push(Reverse((next, steps.len())));
                    steps.push(Step::Release(id));
                }
            }
        }
    }
    meter.sync();
    for (si, id, n) in sessions {
        let vsim = &veeam[si].1;
        let Some((state, result, made)) = vsim.with(|v, w| {
            v.session(&id).map(|s| {
                let kept: Vec<(String, String, String)> = s
                    .made
                    .iter()
                    .filter(|m| {
                        w.volume_by_name(m.cluster, &m.volume)
                            .is_ok_and(|vi| w.snapshot_index(m.cluster, vi, &m.snapshot).is_ok())
                    })
                    .map(|m| {
                        (
                            w.clusters[m.cluster].name.clone(),
                            m.volume.clone(),
                            m.snapshot.clone(),
                        )
                    })
                    .collect();
                (s.state, s.result, kept)
            })
        }) else {
            continue;
        };
        match (state, result) {
            (SimState::Working, _) => tally.overrun += n,
            (_, "Failed") => tally.failed += n,
            _ => tally.completed += n,
        }
        tally.locked.extend(made);
    }
    for r in running.into_iter().flatten() {
        if r.overruns {
            tally.overrun += 1;
        } else {
            tally.completed += 1;
        }
        tally.locked.push((
            policy.clusters[r.cluster].name.clone(),
            r.volume.name.clone(),
            r.snapshot,
        ));
    }
    tally
}
