//! Turns a policy's clusters into [`Ontap`] clients: the in-process simulator for
//! `endpoint = "simulator"`, the REST client for `https://` endpoints.
//!
//! A REST client that cannot be built (a password variable not set yet, a CA file missing) is
//! not fatal: the cluster answers every call with that error, the agent reports it unreachable
//! and retries with backoff, and each retry builds the client again — so fixing the secret is
//! picked up without a restart while the other clusters keep running.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::ClusterClient;
use crate::config::{Cluster, Endpoint, Policy};
use crate::ontap::{ClientOverrides, Ontap, OntapError, Resolve, RestClient, Via};
use crate::sim::veeam::{advance_all, InProcess, VeeamSim};
use crate::sim::{ClockMode, SimClient, Simulator};
use crate::veeam::{VeeamClient, VeeamOptions};

/// The clients of a policy, and the embedded simulator when the policy has simulator clusters.
pub struct Connections {
    pub clients: Vec<ClusterClient>,
    pub simulator: Option<Arc<Simulator>>,
    /// The embedded Veeam servers (`url = "simulator"`), for the agent ([`super::Agent::with_veeam`]).
    pub veeam: Vec<VeeamConn>,
}

/// An embedded Veeam server: the policy's name, the agent's client, the simulator's state.
pub struct VeeamConn {
    pub name: String,
    pub client: Arc<VeeamClient>,
    pub sim: Arc<VeeamSim>,
}

/// The policy has a `[[veeam]]` with `url = "simulator"`.
fn needs_veeam_sim(policy: &Policy) -> bool {
    policy.veeam.iter().any(|v| v.is_simulator())
}

/// The embedded Veeam servers of `policy` on `sim`, each client answered in process after the
/// world is brought to `clock`.
fn embedded_veeam(
    policy: &Policy,
    sim: &Arc<Simulator>,
    clock: Arc<dyn super::Clock>,
) -> Result<Vec<VeeamConn>, String> {
    let servers = crate::sim::veeam::config::from_policy(policy, false)?;
    let sims: Vec<Arc<VeeamSim>> = servers
        .iter()
        .map(|s| VeeamSim::new(sim.clone(), s.world.clone()))
        .collect();
    let mut out = Vec::new();
    for (server, vsim) in servers.into_iter().zip(&sims) {
        let pc = policy
            .veeam
            .iter()
            .find(|v| v.name == server.name)
            .expect("from_policy names policy servers");
        let mut options = VeeamOptions::new(
            server.name.clone(),
            "https://veeam-simulator.invalid",
            pc.username.clone(),
            server.password,
        );
        options.api_version = pc.api_version.clone();
        let (world, all, clock) = (sim.clone(), sims.clone(), clock.clone());
        let before = Box::new(move || advance_all(&world, &all, clock.now()));
        let client = VeeamClient::new(options)
            .map_err(|e| format!("{e}"))?
            .with_local(Arc::new(InProcess::new(vsim.clone(), before)));
        out.push(VeeamConn {
            name: server.name,
            client: Arc::new(client),
            sim: vsim.clone(),
        });
    }
    Ok(out)
}

/// Builds one client per policy cluster. `sim_clock`/`sim_start` set the embedded simulator's
/// clock (real time for `run`).
pub fn connect(
    policy: &Policy,
    sim_clock: ClockMode,
    sim_start: Option<DateTime<Utc>>,
) -> Result<Connections, String> {
    let needs_sim = policy
        .clusters
        .iter()
        .any(|c| c.endpoint == Endpoint::Simulator);
    if needs_veeam_sim(policy) {
        if !needs_sim {
            return Err(
                "a [[veeam]] with url = \"simulator\" needs the embedded ONTAP simulator: give its windows' clusters endpoint = \"simulator\"".into(),
            );
        }
        // One manual world on the agent's wall clock: sessions and schedules in their order.
        let sim = Simulator::from_policy(
            policy,
            ClockMode::Manual,
            Some(sim_start.unwrap_or_else(Utc::now)),
        )
        .map_err(|e| format!("{e}"))?;
        return embedded(policy, sim, Arc::new(super::SystemClock));
    }
    let simulator = if needs_sim {
        Some(Simulator::from_policy(policy, sim_clock, sim_start).map_err(|e| format!("{e}"))?)
    } else {
        None
    };
    let clients = policy
        .clusters
        .iter()
        .map(|c| {
            let ontap: Arc<dyn Ontap> = match (&c.endpoint, &simulator) {
                (Endpoint::Simulator, Some(sim)) => Arc::new(SimClient::new(sim.clone(), &c.name)),
                _ => Arc::new(LazyRest::new(c.clone(), policy.agent.concurrency)),
            };
            ClusterClient {
                name: c.name.clone(),
                ontap,
            }
        })
        .collect();
    Ok(Connections {
        clients,
        simulator,
        veeam: Vec::new(),
    })
}

/// A REST client built on first use, and built again after a failed build.
pub struct LazyRest {
    cluster: Cluster,
    concurrency: usize,
    client: Mutex<Option<Arc<RestClient>>>,
}

impl LazyRest {
    /// The client of `cluster` as an [`Ontap`].
    pub fn new(cluster: Cluster, concurrency: usize) -> Via<LazyRest> {
        Via::new(
            cluster.name.clone(),
            LazyRest {
                cluster,
                concurrency,
                client: Mutex::new(None),
            },
        )
    }
}

impl Resolve for LazyRest {
    fn resolve(&self) -> Result<Arc<dyn Ontap>, OntapError> {
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let overrides = ClientOverrides {
            max_concurrency: Some(self.concurrency),
            ..ClientOverrides::default()
        };
        match RestClient::from_cluster(&self.cluster, overrides) {
            Ok(c) => {
                let c = Arc::new(c);
                *slot = Some(c.clone());
                Ok(c)
            }
            Err(e) => Err(OntapError::Transport {
                cluster: self.cluster.name.clone(),
                context: "cannot build the REST client".into(),
                source: Box::new(e),
            }),
        }
    }
}

/// The policy's simulator clusters on a manual simulator that follows the agent's (virtual)
/// clock: before every call the simulator is advanced to the clock's now, so scheduled snapshots
/// happen exactly when virtual time passes them. Every policy cluster must be a simulator one.
pub fn connect_virtual(
    policy: &Policy,
    clock: Arc<dyn super::Clock>,
) -> Result<Connections, String> {
    if let Some(c) = policy
        .clusters
        .iter()
        .find(|c| c.endpoint != Endpoint::Simulator)
    {
        return Err(format!(
            "cluster {} is not a simulator cluster; virtual time needs endpoint = \"simulator\"",
            c.name
        ));
    }
    let sim = Simulator::from_policy(policy, ClockMode::Manual, Some(clock.now()))
        .map_err(|e| format!("{e}"))?;
    embedded(policy, sim, clock)
}

/// Every policy cluster on the manual simulator `sim`, and the embedded Veeam servers, all brought
/// to `clock` before every call.
fn embedded(
    policy: &Policy,
    sim: Arc<Simulator>,
    clock: Arc<dyn super::Clock>,
) -> Result<Connections, String> {
    let veeam = embedded_veeam(policy, &sim, clock.clone())?;
    let sims: Vec<Arc<VeeamSim>> = veeam.iter().map(|v| v.sim.clone()).collect();
    let clients = policy
        .clusters
        .iter()
        .map(|c| ClusterClient {
            name: c.name.clone(),
            ontap: Arc::new(ClockedSim::with_veeam(
                sim.clone(),
                &c.name,
                clock.clone(),
                sims.clone(),
            )) as Arc<dyn Ontap>,
        })
        .collect();
    Ok(Connections {
        clients,
        simulator: Some(sim),
        veeam,
    })
}

/// A [`SimClient`] whose simulator is brought up to the agent clock before every call.
pub struct ClockedSim {
    inner: Arc<SimClient>,
    sim: Arc<Simulator>,
    clock: Arc<dyn super::Clock>,
    /// Embedded Veeam servers on the same world: their sessions end in order with the schedules.
    veeam: Vec<Arc<VeeamSim>>,
}

impl ClockedSim {
    pub fn new(
        sim: Arc<Simulator>,
        cluster: &str,
        clock: Arc<dyn super::Clock>,
    ) -> Via<ClockedSim> {
        ClockedSim::with_veeam(sim, cluster, clock, Vec::new())
    }

    /// The same, with the Veeam servers whose sessions act on this world.
    pub fn with_veeam(
        sim: Arc<Simulator>,
        cluster: &str,
        clock: Arc<dyn super::Clock>,
        veeam: Vec<Arc<VeeamSim>>,
    ) -> Via<ClockedSim> {
        Via::new(
            cluster,
            ClockedSim {
                inner: Arc::new(SimClient::new(sim.clone(), cluster)),
                sim,
                clock,
                veeam,
            },
        )
    }
}

impl Resolve for ClockedSim {
    fn resolve(&self) -> Result<Arc<dyn Ontap>, OntapError> {
        let now = self.clock.now();
        if !self.veeam.is_empty() {
            advance_all(&self.sim, &self.veeam, now);
            return Ok(self.inner.clone());
        }
        self.sim.with(|w| {
            if now > w.now() {
                w.advance_summarized(now, 0);
            }
        });
        Ok(self.inner.clone())
    }
}
