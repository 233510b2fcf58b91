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
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::draw::Draws;
use super::meter::Meter;
use crate::agent::clock::Clock;
use crate::agent::state::OccurrenceRef;
use crate::config::{CloneMethod, Driver, Policy, VeeamJobRef};
use crate::ontap::{LicenseState, NewSnapshot, Ontap, VolumeRef};
use crate::sim::veeam::world::SimState;
use crate::sim::veeam::VeeamSim;

/// How often a refused delete is tried again.
const RETRY: TimeDelta = TimeDelta::hours(1);

/// How the baseline's cycles went.
#[derive(Debug, Default)]
pub struct Tally {
    pub completed: u64,
    pub overrun: u64,
    /// The snapshot or a clone could not be created.
    pub failed: u64,
    /// Backing snapshots locked at the end: the baseline's own whose delete is still refused, and
    /// the Veeam jobs' still pinned by a capture (cluster, volume, snapshot name).
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

#[derive(Clone, Copy)]
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
    let mut b = Baseline::new(policy, meter, draws, end, veeam).await;
    for &(window, volume, start) in occurrences {
        b.schedule(
            start,
            Step::Create {
                window,
                volume,
                start,
            },
        );
    }
    while let Some(Reverse((at, step))) = b.queue.pop() {
        clock.sleep_until(at).await;
        match b.steps[step] {
            Step::Create {
                window,
                volume,
                start,
            } => match &policy.windows[window].driver {
                Driver::Veeam(job) => b.start_job(window, start, job),
                _ => b.create(at, window, volume, start).await,
            },
            Step::Release(id) => b.release(at, id).await,
        }
    }
    // The Veeam jobs run on without a step of ours: their sessions and the captures pinning their
    // snapshots are read at the end of the period, not at the last start.
    clock.sleep_until(end.max(clock.now())).await;
    b.finish()
}

/// The baseline over one run: its clients, its steps in time order, what is running.
struct Baseline<'a> {
    policy: &'a Policy,
    meter: &'a Arc<Meter>,
    draws: Draws,
    end: DateTime<Utc>,
    veeam: &'a [(String, Arc<VeeamSim>)],
    clients: Vec<Arc<dyn Ontap>>,
    /// (cluster, svm, volume name) → the volume as the mutating calls need it.
    refs: HashMap<(usize, String, String), VolumeRef>,
    /// Per cluster: the FlexClone license is in force.
    flexclone: Vec<bool>,
    steps: Vec<Step>,
    /// (instant, step), earliest first.
    queue: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
    running: Vec<Option<Running>>,
    /// Veeam sessions started: (server index, session id, volumes of the window: one cycle each).
    sessions: Vec<(usize, String, u64)>,
    /// Veeam-driven occurrences already started: (window, start).
    jobs_started: HashSet<(usize, DateTime<Utc>)>,
    tally: Tally,
}

impl<'a> Baseline<'a> {
    /// Reads every cluster's volumes and FlexClone license once, through the meter.
    async fn new(
        policy: &'a Policy,
        meter: &'a Arc<Meter>,
        draws: Draws,
        end: DateTime<Utc>,
        veeam: &'a [(String, Arc<VeeamSim>)],
    ) -> Baseline<'a> {
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
        Baseline {
            policy,
            meter,
            draws,
            end,
            veeam,
            clients,
            refs,
            flexclone,
            steps: Vec::new(),
            queue: BinaryHeap::new(),
            running: Vec::new(),
            sessions: Vec::new(),
            jobs_started: HashSet::new(),
            tally: Tally::default(),
        }
    }

    fn schedule(&mut self, at: DateTime<Utc>, step: Step) {
        self.queue.push(Reverse((at, self.steps.len())));
        self.steps.push(step);
    }

    /// A Veeam-driven occurrence: starts the window's job once for all its volumes.
    fn start_job(&mut self, window: usize, start: DateTime<Utc>, job: &VeeamJobRef) {
        if !self.jobs_started.insert((window, start)) {
            return;
        }
        let w = &self.policy.windows[window];
        let name = self.policy.veeam.get(job.server).map(|s| s.name.as_str());
        let Some(si) = self
            .veeam
            .iter()
            .position(|(n, _)| Some(n.as_str()) == name)
        else {
            self.tally.failed += 1;
            return;
        };
        self.meter.sync();
        let started = self.veeam[si].1.with(|state, world| {
            let id = state
                .jobs
                .iter()
                .find(|j| j.name == job.job || j.id.eq_ignore_ascii_case(&job.job))
                .map(|j| j.id.clone())
                .unwrap_or_default();
            state.start(world, &id).map(|s| s.id)
        });
        match started {
            Ok(id) => self.sessions.push((si, id, w.volumes.len() as u64)),
            Err(_) => self.tally.failed += w.volumes.len() as u64,
        }
    }

    /// At the configured start: the snapshot, then a clone of each LUN; the release is scheduled
    /// at the drawn backup's end.
    async fn create(
        &mut self,
        at: DateTime<Utc>,
        window: usize,
        volume: usize,
        start: DateTime<Utc>,
    ) {
        let policy = self.policy;
        let w = &policy.windows[window];
        let v = &policy.volumes[volume];
        let cluster = &policy.clusters[v.cluster];
        let Some(vref) = self.refs.get(&(v.cluster, v.svm.clone(), v.name.clone())) else {
            self.tally.failed += 1;
            return;
        };
        let backup = self.draws.backup(
            &OccurrenceRef {
                cluster: &cluster.name,
                svm: &v.svm,
                volume: &v.name,
                window: &w.name,
                start,
            },
            w.expected,
            w.max,
        );
        let client = &self.clients[v.cluster];
        let prefix = &policy.agent.snapshot_prefix;
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
                self.tally.failed += 1;
                return;
            }
        };
        let flex = match v.clone {
            CloneMethod::FlexClone => true,
            CloneMethod::SnapRestore => false,
            CloneMethod::Auto => self.flexclone[v.cluster],
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
            self.tally.failed += 1;
        }
        let id = self.running.len();
        self.running.push(Some(Running {
            cluster: v.cluster,
            volume: vref.clone(),
            snapshot_uuid: snap.uuid.to_string(),
            snapshot: name,
            clones,
            overruns: backup.overruns,
        }));
        let release = (at + backup.duration).min(self.end);
        self.schedule(release, Step::Release(id));
    }

    /// Deletes the clones, then the snapshot; what is refused is tried again an hour later.
    async fn release(&mut self, at: DateTime<Utc>, id: usize) {
        let Some(r) = self.running[id].as_mut() else {
            return;
        };
        let client = &self.clients[r.cluster];
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
                self.tally.overrun += 1;
            } else {
                self.tally.completed += 1;
            }
            self.running[id] = None;
        } else if at < self.end {
            let next = (at + RETRY).min(self.end);
            self.schedule(next, Step::Release(id));
        }
    }

    /// At the end: the Veeam sessions' results and the snapshots they left, and the backups
    /// still running or locked.
    fn finish(mut self) -> Tally {
        self.meter.sync();
        // Only what a capture still pins is locked: Veeam leaves a snapshot whose delete was
        // refused, and it stays, unlocked, once its capturing snapshot has rotated out.
        let pinned: HashSet<String> = self
            .veeam
            .first()
            .map(|(_, v)| {
                v.with(|_, w| {
                    super::meter::pinned_backing_snapshots(w)
                        .into_iter()
                        .map(str::to_string)
                        .collect()
                })
            })
            .unwrap_or_default();
        for (si, id, n) in std::mem::take(&mut self.sessions) {
            let vsim = &self.veeam[si].1;
            let Some((state, result, made)) = vsim.with(|v, w| {
                v.session(&id).map(|s| {
                    let kept: Vec<(String, String, String)> = s
                        .made
                        .iter()
                        .filter(|m| {
                            w.volume_by_name(m.cluster, &m.volume).is_ok_and(|vi| {
                                w.snapshot_index(m.cluster, vi, &m.snapshot)
                                    .is_ok_and(|si| {
                                        let uuid =
                                            &w.clusters[m.cluster].volumes[vi].snapshots[si].uuid;
                                        pinned.contains(uuid.as_str())
                                    })
                            })
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
                (SimState::Working, _) => self.tally.overrun += n,
                (_, "Failed") => self.tally.failed += n,
                _ => self.tally.completed += n,
            }
            self.tally.locked.extend(made);
        }
        let mut tally = self.tally;
        for r in self.running.into_iter().flatten() {
            if r.overruns {
                tally.overrun += 1;
            } else {
                tally.completed += 1;
            }
            tally.locked.push((
                self.policy.clusters[r.cluster].name.clone(),
                r.volume.name.clone(),
                r.snapshot,
            ));
        }
        tally
    }
}
