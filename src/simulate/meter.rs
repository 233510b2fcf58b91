//! The simulated world, metered: a clock-following [`Ontap`] client over the in-process simulator
//! that counts what the schedules did and what the backing snapshots suffered.
//!
//! Both drivers (the agent and the uncoordinated baseline) reach the world only through these
//! clients, so the same numbers are measured the same way for both. Before every call the world
//! is advanced to the driver's clock (scheduled snapshots are taken exactly as virtual time passes
//! them) and the advance is read: snapshots taken, missed, rotated, chain conflicts (a scheduled
//! snapshot that captured a live SnapRestore clone of a backing snapshot), and retention
//! violations (a schedule that kept more snapshots than its count). The managed snapshots the
//! agent takes itself (`managed_snapshots`) are read from the world after each create: how many,
//! whether one captured a live clone (a chain conflict like a schedule's), and whether its series
//! still held more than its count when it was taken. Locked backing snapshots —
//! pinned by a scheduled snapshot that captured their clone — are counted after every advance
//! and integrated over virtual time between advances (both drivers call at least hourly).
//! Veeam jobs (driver windows) run on the same world: their sessions end at their own instants
//! within an advance, between the schedules' snapshots.

use crate::fasthash::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::agent::clock::Clock;
use crate::agent::managed;
use crate::config::Policy;
use crate::ontap::{Call, Layer, Ontap, OntapError, Via};
use crate::sim::veeam::VeeamSim;
use crate::sim::{ClockSummary, SimClient, Simulator, World};

/// What was measured over a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    pub scheduled_snapshots_taken: u64,
    pub scheduled_snapshots_missed: u64,
    /// Scheduled snapshots deleted by their schedule's rotation.
    pub scheduled_snapshots_rotated: u64,
    /// Managed snapshots snapwarden took (marked `created-by=snapwarden schedule=<prefix>`).
    pub managed_snapshots_taken: u64,
    /// Scheduled or managed snapshots that captured a live SnapRestore clone.
    pub chain_conflicts: u64,
    /// Scheduled snapshots taken while their schedule kept more than its count, and managed
    /// snapshots taken while their series held more than its count.
    pub retention_violations: u64,
    /// Locked backing snapshots × seconds.
    pub locked_seconds: i64,
    pub max_locked: u64,
}

/// The meter's running state, shared by the clients of every cluster.
#[derive(Debug, Default)]
struct State {
    measured: Measured,
    /// Locked backing snapshots after the last call, and when that was.
    locked_now: u64,
    last: Option<DateTime<Utc>>,
    /// (cluster, volume name) → world indices (several when names repeat across SVMs).
    volumes: HashMap<(String, String), Vec<(usize, usize)>>,
    /// Per world cluster: its volumes that hand copies to snapwarden, by volume index.
    managed: Vec<HashMap<usize, ManagedVolume>>,
    /// A mutating call went to the world since the locks were last counted (the count is a
    /// function of the world, which only advances and mutating calls change: without either
    /// it is still right, and counting walks every snapshot of the world).
    dirty: bool,
}

/// A volume whose copies snapwarden takes (`managed_snapshots`), as the meter reads it.
#[derive(Debug)]
struct ManagedVolume {
    /// Its managed copies: (prefix, count).
    copies: Vec<(String, u64)>,
    /// The uuid of its newest managed snapshot already counted.
    seen: Option<String>,
}

/// The shared meter over one simulator.
pub struct Meter {
    sim: Arc<Simulator>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    veeam: Vec<Arc<VeeamSim>>,
}

impl Meter {
    /// A meter whose advances also end the sessions of these Veeam servers.
    /// The managed copies of `policy`'s volumes are read where they are on the world.
    pub fn with_veeam(
        sim: Arc<Simulator>,
        clock: Arc<dyn Clock>,
        veeam: Vec<Arc<VeeamSim>>,
        policy: &Policy,
    ) -> Arc<Meter> {
        let mut state = State {
            dirty: true,
            ..State::default()
        };
        sim.with(|w| {
            for (ci, c) in w.clusters.iter().enumerate() {
                for (vi, v) in c.volumes.iter().enumerate() {
                    state
                        .volumes
                        .entry((c.name.clone(), v.name.clone()))
                        .or_default()
                        .push((ci, vi));
                }
            }
            state.managed = managed_volumes(w, policy);
        });
        Arc::new(Meter {
            sim,
            clock,
            state: Mutex::new(state),
            veeam,
        })
    }

    /// A client of one cluster.
    pub fn client(self: &Arc<Meter>, cluster: &str) -> Arc<dyn Ontap> {
        let index = self.sim.with(|w| w.cluster_index(cluster).ok());
        Arc::new(Via::new(
            cluster,
            Metered {
                inner: Arc::new(SimClient::new(self.sim.clone(), cluster)),
                meter: self.clone(),
                cluster: index,
            },
        ))
    }

    /// After a snapshot was created on world cluster `ci`: counts the managed snapshot it made,
    /// if it made one. The world says which volume its last create went to, and a create
    /// appends its snapshot to that volume's list, so the newest snapshot of that volume, if it
    /// is a managed volume, is the only one to look at.
    fn created(&self, ci: usize) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *st;
        let Some(volumes) = st.managed.get_mut(ci) else {
            return;
        };
        if volumes.is_empty() {
            return;
        }
        let m = &mut st.measured;
        self.sim.with(|w| {
            let Some(vi) = w.last_created().filter(|at| at.0 == ci).map(|at| at.1) else {
                return;
            };
            let Some(mv) = volumes.get_mut(&vi) else {
                return;
            };
            let Some(snapshots) = w
                .clusters
                .get(ci)
                .and_then(|c| c.volumes.get(vi))
                .map(|v| &v.snapshots)
            else {
                return;
            };
            let Some(newest) = snapshots.last() else {
                return;
            };
            if mv.seen.as_deref() == Some(newest.uuid.as_str()) {
                return;
            }
            let Some((prefix, count)) = mv
                .copies
                .iter()
                .find(|(p, _)| managed::is_marked(newest.comment.as_deref(), p))
            else {
                return;
            };
            mv.seen = Some(newest.uuid.clone());
            m.managed_snapshots_taken = m.managed_snapshots_taken.saturating_add(1);
            if !newest.captures.is_empty() {
                m.chain_conflicts = m.chain_conflicts.saturating_add(1);
            }
            // The series before this snapshot: more than its count means an earlier snapshot
            // could not be deleted.
            let before = snapshots[..snapshots.len() - 1]
                .iter()
                .filter(|s| managed::follows_pattern(prefix, &s.name))
                .count();
            if u64::try_from(before).unwrap_or(u64::MAX) > *count {
                m.retention_violations = m.retention_violations.saturating_add(1);
            }
        });
    }

    /// Brings the world to the clock and measures (what [`Metered`] does before every call).
    pub fn sync(&self) {
        let now = self.clock.now();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut veeam: Vec<_> = self.veeam.iter().map(|v| v.lock()).collect();
        self.sim.with(|w| {
            // Time between the previous call and now at the count the previous call left.
            if let Some(last) = st.last.filter(|l| now > *l) {
                let secs = (now - last).num_seconds();
                let add = i64::try_from(st.locked_now)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(secs);
                st.measured.locked_seconds = st.measured.locked_seconds.saturating_add(add);
            }
            if now > w.now() {
                // Veeam sessions due within the advance end at their instants.
                loop {
                    for v in veeam.iter_mut() {
                        v.step(w);
                    }
                    let next = veeam
                        .iter()
                        .filter_map(|v| v.next_end().map(|(_, at)| at))
                        .filter(|at| *at <= now && *at > w.now())
                        .min();
                    let Some(at) = next else { break };
                    let summary = w.advance_summarized(at, usize::MAX);
                    st.read(w, &summary);
                }
                let summary = w.advance_summarized(now, usize::MAX);
                st.read(w, &summary);
                for v in veeam.iter_mut() {
                    v.step(w);
                }
                // A Veeam session makes and deletes snapshots and clones as the clock moves.
                if !veeam.is_empty() {
                    st.dirty = true;
                }
                // Captures and rotations change which backing snapshots are pinned.
                let fired = summary.taken > 0 || summary.deleted > 0 || summary.skipped > 0;
                if fired || st.dirty {
                    let n = locked_backing_snapshots(w);
                    st.locked_now = n;
                    st.measured.max_locked = st.measured.max_locked.max(n);
                    st.dirty = false;
                }
            }
            if st.last.is_none_or(|l| now >= l) {
                st.last = Some(now);
            }
        });
    }

    /// Everything measured so far (call [`Meter::sync`] at the end instant first).
    pub fn measured(&self) -> Measured {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .measured
            .clone()
    }
}

impl State {
    /// Reads one advance: counts, chain conflicts and retention violations of the snapshots taken.
    fn read(&mut self, w: &World, summary: &ClockSummary) {
        let m = &mut self.measured;
        m.scheduled_snapshots_taken = m.scheduled_snapshots_taken.saturating_add(summary.taken);
        m.scheduled_snapshots_missed = m.scheduled_snapshots_missed.saturating_add(summary.skipped);
        m.scheduled_snapshots_rotated = m
            .scheduled_snapshots_rotated
            .saturating_add(summary.deleted);
        for e in summary.events.iter().filter(|e| e.kind == "taken") {
            let Some(uuid) = e.uuid.as_deref() else {
                continue;
            };
            let Some(at) = self.volumes.get(&(e.cluster.clone(), e.volume.clone())) else {
                continue;
            };
            for &(ci, vi) in at {
                let c = &w.clusters[ci];
                let v = &c.volumes[vi];
                let Some(s) = v.snapshots.iter().find(|s| s.uuid == uuid) else {
                    continue;
                };
                if !s.captures.is_empty() {
                    m.chain_conflicts = m.chain_conflicts.saturating_add(1);
                }
                // Retention: only locked snapshots can keep a schedule above its count.
                let Some(prefix) = s.schedule_prefix.as_deref() else {
                    continue;
                };
                let count = c
                    .policies
                    .iter()
                    .find(|p| p.name == v.snapshot_policy)
                    .and_then(|p| p.copies.iter().find(|k| k.effective_prefix() == prefix))
                    .map(|k| u64::from(k.count.max(1)));
                let kept = v
                    .snapshots
                    .iter()
                    .filter(|t| t.schedule_prefix.as_deref() == Some(prefix))
                    .count();
                if count.is_some_and(|n| u64::try_from(kept).unwrap_or(u64::MAX) > n) {
                    m.retention_violations = m.retention_violations.saturating_add(1);
                }
            }
        }
    }
}

/// Backing snapshots pinned by a scheduled (or any) snapshot that captured one of their
/// SnapRestore clones: their delete is refused until the capturing snapshot rotates away.
///
/// Only a clock advance changes this (a capture happens when a snapshot is taken, an unpin when
/// the capturing snapshot rotates out; deleting a captured clone does not unpin, and a pinned
/// snapshot cannot be deleted), so it is counted after each advance. The world keeps the count
/// as captures come and go ([`World::pinned_backing_count`]).
fn locked_backing_snapshots(w: &World) -> u64 {
    u64::try_from(w.pinned_backing_count()).unwrap_or(u64::MAX)
}

/// The uuids of the backing snapshots [`locked_backing_snapshots`] counts.
pub fn pinned_backing_snapshots(w: &World) -> HashSet<&str> {
    w.pinned_backings().collect()
}

/// Per world cluster, the volumes of `policy` with `managed_snapshots` on it and their copies.
fn managed_volumes(w: &World, policy: &Policy) -> Vec<HashMap<usize, ManagedVolume>> {
    let mut out: Vec<HashMap<usize, ManagedVolume>> =
        w.clusters.iter().map(|_| HashMap::default()).collect();
    for v in &policy.volumes {
        let Some(pi) = v.managed else { continue };
        let Some(cluster) = policy.clusters.get(v.cluster) else {
            continue;
        };
        let Ok(ci) = w.cluster_index(&cluster.name) else {
            continue;
        };
        let Some(vi) = w
            .volume_by_name(ci, &v.name)
            .ok()
            .filter(|&vi| w.clusters[ci].volumes[vi].svm == v.svm)
        else {
            continue;
        };
        let copies = policy.snapshot_policies[pi]
            .copies
            .iter()
            .map(|c| (c.prefix.clone(), u64::from(c.count.max(1))))
            .collect();
        // What the volume holds when the run begins is not counted (a discovered estate's series).
        let seen = w.clusters[ci].volumes[vi]
            .snapshots
            .last()
            .map(|s| s.uuid.clone());
        out[ci].insert(vi, ManagedVolume { copies, seen });
    }
    out
}

/// A cluster's client: the simulator, advanced and measured before every call.
struct Metered {
    inner: Arc<dyn Ontap>,
    meter: Arc<Meter>,
    /// The cluster's index in the world (`None`: not in it; every call then fails there).
    cluster: Option<usize>,
}

#[async_trait]
impl Layer for Metered {
    async fn before(&self, call: Call) -> Result<Arc<dyn Ontap>, OntapError> {
        self.meter.sync();
        if call.mutates() {
            // The call may change the world: count the locks again at the next advance.
            self.meter
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .dirty = true;
        }
        Ok(self.inner.clone())
    }

    fn after(&self, call: Call, outcome: Result<(), &OntapError>, _elapsed: Duration) {
        if let (Call::CreateSnapshot, Ok(()), Some(ci)) = (call, outcome, self.cluster) {
            self.meter.created(ci);
        }
    }
}
