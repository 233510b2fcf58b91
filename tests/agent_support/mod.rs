//! Shared harness of the agent's virtual-time tests: a policy, the in-process simulator following
//! a paused tokio clock, and the agent running in a task.

#![allow(dead_code)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use snapwarden::agent::clock::reader;
use snapwarden::agent::cycle::{Cycle, CycleResult};
use snapwarden::agent::journal::Journal;
use snapwarden::agent::status::{Status, StatusBoard};
use snapwarden::agent::{Agent, ClusterClient, Event, HookOverride, Options, TokioClock, Triggers};
use snapwarden::config::{self, Policy};
use snapwarden::ontap::{Call, Layer, Ontap, OntapError, Resolve, Via};
use snapwarden::sim::embedded::{connect_virtual, ClockedSim};
use snapwarden::sim::Simulator;

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("RFC 3339")
}

pub fn policy(text: &str) -> Policy {
    config::parse_str(text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
}

pub struct Harness {
    pub task: tokio::task::JoinHandle<Result<Vec<Cycle>, snapwarden::agent::AgentError>>,
    pub events: tokio::sync::mpsc::UnboundedSender<Event>,
    pub board: Arc<StatusBoard>,
    pub metrics: Arc<snapwarden::agent::metrics::Metrics>,
    pub journal: Arc<Journal>,
    pub sim: Arc<Simulator>,
    pub clock: Arc<TokioClock>,
    pub dir: Arc<tempfile::TempDir>,
    pub down: Arc<AtomicBool>,
}

/// A change made to the simulated world before the agent starts.
pub type Prepare = Box<dyn FnOnce(&Arc<Simulator>)>;

/// How a harness is built.
pub struct Setup {
    pub epoch: DateTime<Utc>,
    pub hooks: Option<HookOverride>,
    /// Changes made to the simulated world before the agent starts.
    pub prepare: Option<Prepare>,
    /// Reuse this state directory (a restart after a crash).
    pub dir: Option<Arc<tempfile::TempDir>>,
    /// Reuse this simulator (a restart).
    pub sim: Option<Arc<Simulator>>,
    /// The first cluster fails every call while this is set.
    pub down: Option<Arc<AtomicBool>>,
    /// Every mutating call takes this long (virtual time) and is counted per cluster.
    pub slow: Option<(std::time::Duration, Arc<InFlight>)>,
    /// While this is set, every mutating call hangs (a cluster that accepts and never answers).
    pub hang: Option<Arc<AtomicBool>>,
    /// Every read of a whole cluster's snapshots takes this long (virtual time), as at 10,000
    /// volumes.
    pub slow_reads: Option<std::time::Duration>,
    /// How planned instants wake the loop (default: the clock; `Cron` needs real time).
    pub triggers: Triggers,
    /// An agent that publishes neither metrics nor the status board, as `simulate` runs it.
    pub unobserved: bool,
}

/// The most mutating calls seen in flight at once, per cluster name.
#[derive(Default)]
pub struct InFlight {
    pub now: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    pub max: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl Setup {
    pub fn at(epoch: &str) -> Setup {
        Setup {
            epoch: t(epoch),
            hooks: None,
            prepare: None,
            dir: None,
            sim: None,
            down: None,
            slow: None,
            hang: None,
            slow_reads: None,
            triggers: Triggers::Clock,
            unobserved: false,
        }
    }
}

pub fn start(policy: Policy, setup: Setup) -> Harness {
    let policy = Arc::new(policy);
    let clock = Arc::new(TokioClock::starting_at(setup.epoch));
    let (clients, sim): (Vec<ClusterClient>, _) = match setup.sim {
        Some(sim) => {
            // Same world, a new agent: clients over the existing simulator.
            let clients = policy
                .clusters
                .iter()
                .map(|c| ClusterClient {
                    name: c.name.clone(),
                    ontap: Arc::new(ClockedSim::new(sim.clone(), &c.name, reader(clock.clone())))
                        as Arc<dyn Ontap>,
                })
                .collect();
            (clients, sim)
        }
        None => {
            let conns =
                connect_virtual(&policy, reader(clock.clone())).expect("simulator clusters");
            let clients = conns
                .clients
                .into_iter()
                .map(|ontap| ClusterClient {
                    name: ontap.cluster_name().to_string(),
                    ontap,
                })
                .collect();
            (clients, conns.simulator.expect("a simulator"))
        }
    };
    if let Some(prepare) = setup.prepare {
        prepare(&sim);
    }
    let down = setup.down.unwrap_or_default();
    let clients: Vec<ClusterClient> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                ClusterClient {
                    ontap: Arc::new(Via::new(
                        c.name.clone(),
                        Switch {
                            inner: c.ontap,
                            down: down.clone(),
                        },
                    )),
                    name: c.name,
                }
            } else {
                c
            }
        })
        .collect();
    let slow = match (&setup.slow, &setup.hang, setup.slow_reads) {
        (Some((delay, counts)), _, _) => Some((*delay, counts.clone(), None)),
        // A year is as good as forever in a test.
        (None, Some(gate), _) => Some((
            std::time::Duration::from_secs(366 * 86_400),
            Arc::new(InFlight::default()),
            Some(gate.clone()),
        )),
        (None, None, Some(_)) => Some((
            std::time::Duration::ZERO,
            Arc::new(InFlight::default()),
            None,
        )),
        (None, None, None) => None,
    };
    let reads = setup.slow_reads.unwrap_or_default();
    let clients: Vec<ClusterClient> = match slow {
        None => clients,
        Some((delay, counts, gate)) => clients
            .into_iter()
            .map(|c| ClusterClient {
                ontap: Arc::new(Via::new(
                    c.name.clone(),
                    Slow {
                        inner: c.ontap,
                        delay,
                        reads,
                        counts: counts.clone(),
                        gate: gate.clone(),
                    },
                )),
                name: c.name,
            })
            .collect(),
    };
    let dir = setup
        .dir
        .unwrap_or_else(|| Arc::new(tempfile::tempdir().expect("tempdir")));
    let mut agent = Agent::new(
        policy,
        clients,
        clock.clone(),
        Options {
            state_dir: dir.path().join("state"),
            triggers: setup.triggers,
            hooks: setup.hooks,
        },
    )
    .expect("agent starts");
    if setup.unobserved {
        agent = agent.unobserved();
    }
    let events = agent.events();
    let board = agent.status_board();
    let metrics = agent.metrics();
    let journal = agent.journal();
    let task = tokio::spawn(agent.run());
    Harness {
        task,
        events,
        board,
        metrics,
        journal,
        sim,
        clock,
        dir,
        down,
    }
}

impl Harness {
    pub fn now(&self) -> DateTime<Utc> {
        use snapwarden::agent::clock::Clock;
        self.clock.now()
    }

    pub fn status(&self) -> Status {
        self.board.get()
    }

    /// Lets virtual time pass until `at`.
    pub async fn run_until(&self, at: &str) {
        let at = t(at);
        while self.now() < at {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// Waits (virtual time, at most `limit`) until `cond` holds; panics with `what` otherwise.
    pub async fn wait_for(&self, what: &str, limit: TimeDelta, cond: impl Fn(&Harness) -> bool) {
        let end = self.now() + limit;
        while !cond(self) {
            assert!(
                self.now() < end,
                "timed out (virtual {limit}) waiting for {what}"
            );
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// SIGTERM: stops the agent and returns the cycles it left open.
    pub async fn stop(self) -> (Vec<Cycle>, Arc<Simulator>, Arc<tempfile::TempDir>) {
        let _ = self.events.send(Event::Shutdown);
        let left = self.task.await.expect("agent task").expect("agent ran");
        (left, self.sim, self.dir)
    }

    /// Every cycle in the journal, oldest first.
    pub fn cycles(&self) -> Vec<Cycle> {
        let mut c = self
            .journal
            .recent_cycles(DateTime::<Utc>::MIN_UTC, None, 100_000)
            .expect("journal");
        c.reverse();
        c
    }

    pub fn results(&self) -> Vec<(String, Option<CycleResult>)> {
        self.cycles()
            .into_iter()
            .map(|c| (c.window, c.result))
            .collect()
    }

    /// Snapshot names on a volume of the first cluster.
    pub fn snapshots(&self, volume: &str) -> Vec<String> {
        self.sim.with(|w| {
            let v = w.clusters[0]
                .volumes
                .iter()
                .find(|v| v.name == volume)
                .expect("volume");
            v.snapshots.iter().map(|s| s.name.clone()).collect()
        })
    }

    /// LUN paths of the first cluster.
    pub fn luns(&self) -> Vec<String> {
        self.sim
            .with(|w| w.clusters[0].luns.iter().map(|l| l.name.clone()).collect())
    }
}

/// Snapshots and LUN paths whose names carry the prefix: what snapwarden may have left.
pub fn leftovers(h: &Harness, prefix: &str) -> Vec<String> {
    h.sim.with(|w| {
        let mut out = Vec::new();
        for c in &w.clusters {
            for v in &c.volumes {
                for s in &v.snapshots {
                    if s.name.starts_with(&format!("{prefix}.")) {
                        out.push(format!("{}:{}", v.name, s.name));
                    }
                }
            }
            for l in &c.luns {
                if l.name.contains(&format!("/{prefix}.")) {
                    out.push(l.name.clone());
                }
            }
        }
        out
    })
}

/// Fails every call with a transport error while `down` is set.
pub struct Switch {
    pub inner: Arc<dyn Ontap>,
    pub down: Arc<AtomicBool>,
}

impl Resolve for Switch {
    fn resolve(&self) -> Result<Arc<dyn Ontap>, OntapError> {
        if self.down.load(Ordering::SeqCst) {
            Err(OntapError::Transport {
                cluster: self.inner.cluster_name().to_string(),
                context: "connect".into(),
                source: "connection refused (test switch)".into(),
            })
        } else {
            Ok(self.inner.clone())
        }
    }
}

/// Mutating calls take `delay` (only while `gate` is set, when there is one) and are counted
/// while in flight.
pub struct Slow {
    inner: Arc<dyn Ontap>,
    delay: std::time::Duration,
    /// How long a whole cluster's snapshot listing takes.
    reads: std::time::Duration,
    counts: Arc<InFlight>,
    gate: Option<Arc<AtomicBool>>,
}

#[async_trait]
impl Layer for Slow {
    async fn before(&self, call: Call) -> Result<Arc<dyn Ontap>, OntapError> {
        if call == Call::Snapshots && !self.reads.is_zero() {
            tokio::time::sleep(self.reads).await;
        }
        if call.mutates() {
            let name = self.inner.cluster_name().to_string();
            {
                let mut now = self.counts.now.lock().unwrap();
                let n = now.entry(name.clone()).or_default();
                *n += 1;
                let mut max = self.counts.max.lock().unwrap();
                let m = max.entry(name).or_default();
                *m = (*m).max(*n);
            }
            if self.gate.as_ref().is_none_or(|g| g.load(Ordering::SeqCst)) && !self.delay.is_zero()
            {
                tokio::time::sleep(self.delay).await;
            }
        }
        Ok(self.inner.clone())
    }

    fn after(&self, call: Call, _: Result<(), &OntapError>, _: std::time::Duration) {
        if call.mutates() {
            let name = self.inner.cluster_name();
            *self.counts.now.lock().unwrap().get_mut(name).unwrap() -= 1;
        }
    }
}

/// One UTC simulator cluster `lab` (`licenses`, a TOML list body), hourly snapshots at :05 (keep
/// 3), guard 5m, volumes vol_a (two LUNs) and vol_b with `clone`, and a window `nightly` on vol_a
/// whose start and durations are `nightly`; `extra` is appended (more windows).
pub fn lab_policy(licenses: &str, clone: &str, nightly: &str, extra: &str) -> String {
    format!(
        r#"
[agent]
guard = "5m"
observe_interval = "1m"

[[cluster]]
name = "lab"
endpoint = "simulator"
timezone = "UTC"
simulator = {{ version = "9.14.1", licenses = [{licenses}] }}

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "p"
copies = [{{ schedule = "hourly", count = 3 }}]

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_a"
luns = ["/vol/vol_a/lun0", "/vol/vol_a/lun1"]
snapshot_policy = "p"
clone = "{clone}"

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_b"
luns = ["/vol/vol_b/lun0"]
snapshot_policy = "p"
clone = "{clone}"

[[window]]
name = "nightly"
volumes = ["lab/svm1/vol_a"]
timezone = "UTC"
{nightly}
{extra}
"#
    )
}

/// The value of `name{labels}` in the text exposition (labels in any order), if exported.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.sort();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ')?;
        let (n, mut have) = match series.split_once('{') {
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let have: Vec<(String, String)> = body
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').expect("label=value");
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (n, have)
            }
            None => (series, Vec::new()),
        };
        have.sort();
        if n == name && have == want {
            return Some(value.parse().expect("a number"));
        }
    }
    None
}
