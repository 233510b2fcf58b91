//! The simulator as a policy's clusters, in process: the clients the edges (`run`, the tests) hand
//! the agent for `endpoint = "simulator"` clusters and `url = "simulator"` Veeam servers.
//!
//! The agent never builds these itself: it is given [`Ontap`] clients and Veeam clients, and does
//! not know whether a simulator answers them. Time comes in as a [`Now`] (the agent's clock, read
//! before every call), so the simulator does not depend on the agent either.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::veeam::{advance_all, InProcess, VeeamSim};
use super::{ClockMode, SimClient, Simulator};
use crate::config::{Endpoint, Policy};
use crate::ontap::{Ontap, OntapError, Resolve, Via};
use crate::veeam::{VeeamClient, VeeamOptions};

/// Where an embedded world takes "now" from before every call: the caller's clock.
pub type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The in-process clients of a policy, and the simulator behind them.
pub struct Embedded {
    /// One client per cluster the simulator serves, in policy order, each named by the policy's
    /// name for it (`Ontap::cluster_name`).
    pub clients: Vec<Arc<dyn Ontap>>,
    /// The embedded simulator, when the policy has simulator clusters.
    pub simulator: Option<Arc<Simulator>>,
    /// The embedded Veeam servers (`url = "simulator"`), for `Agent::with_veeam`.
    pub veeam: Vec<VeeamConn>,
}

impl Embedded {
    /// The client of policy cluster `name`, when the simulator serves it.
    pub fn client(&self, name: &str) -> Option<Arc<dyn Ontap>> {
        self.clients
            .iter()
            .find(|c| c.cluster_name() == name)
            .cloned()
    }
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
/// world is brought to `now`.
fn embedded_veeam(
    policy: &Policy,
    sim: &Arc<Simulator>,
    now: Now,
) -> Result<Vec<VeeamConn>, String> {
    let servers = super::veeam::config::from_policy(policy, false)?;
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
        let (world, all, now) = (sim.clone(), sims.clone(), now.clone());
        let before = Box::new(move || advance_all(&world, &all, now()));
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

/// The simulator clusters of `policy` on one embedded simulator whose clock is `sim_clock`
/// (starting at `sim_start`, default now; real time for `run`). The policy's other clusters get
/// no client here: the caller connects them over REST.
///
/// With an embedded Veeam server every cluster runs on one manual world brought to the wall
/// clock before every call, so that sessions and schedules happen in their order.
pub fn connect(
    policy: &Policy,
    sim_clock: ClockMode,
    sim_start: Option<DateTime<Utc>>,
) -> Result<Embedded, String> {
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
        return clocked(policy, sim, Arc::new(Utc::now));
    }
    if !needs_sim {
        return Ok(Embedded {
            clients: Vec::new(),
            simulator: None,
            veeam: Vec::new(),
        });
    }
    let sim = Simulator::from_policy(policy, sim_clock, sim_start).map_err(|e| format!("{e}"))?;
    let clients = policy
        .clusters
        .iter()
        .filter(|c| c.endpoint == Endpoint::Simulator)
        .map(|c| Arc::new(SimClient::new(sim.clone(), &c.name)) as Arc<dyn Ontap>)
        .collect();
    Ok(Embedded {
        clients,
        simulator: Some(sim),
        veeam: Vec::new(),
    })
}

/// The policy's clusters on a manual simulator that follows `now` (the agent's virtual clock):
/// before every call the simulator is advanced to `now()`, so scheduled snapshots happen exactly
/// when virtual time passes them. Every policy cluster must be a simulator one.
pub fn connect_virtual(policy: &Policy, now: Now) -> Result<Embedded, String> {
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
    let sim = Simulator::from_policy(policy, ClockMode::Manual, Some(now()))
        .map_err(|e| format!("{e}"))?;
    clocked(policy, sim, now)
}

/// Every policy cluster on the manual simulator `sim`, and the embedded Veeam servers, all brought
/// to `now` before every call.
fn clocked(policy: &Policy, sim: Arc<Simulator>, now: Now) -> Result<Embedded, String> {
    let veeam = embedded_veeam(policy, &sim, now.clone())?;
    let sims: Vec<Arc<VeeamSim>> = veeam.iter().map(|v| v.sim.clone()).collect();
    let clients = policy
        .clusters
        .iter()
        .map(|c| {
            Arc::new(ClockedSim::with_veeam(
                sim.clone(),
                &c.name,
                now.clone(),
                sims.clone(),
            )) as Arc<dyn Ontap>
        })
        .collect();
    Ok(Embedded {
        clients,
        simulator: Some(sim),
        veeam,
    })
}

/// A [`SimClient`] whose simulator is brought up to a clock before every call: the layer of the
/// embedded simulator's clients in virtual time.
pub struct ClockedSim {
    inner: Arc<SimClient>,
    sim: Arc<Simulator>,
    now: Now,
    /// Embedded Veeam servers on the same world: their sessions end in order with the schedules.
    veeam: Vec<Arc<VeeamSim>>,
}

impl ClockedSim {
    pub fn new(sim: Arc<Simulator>, cluster: &str, now: Now) -> Via<ClockedSim> {
        ClockedSim::with_veeam(sim, cluster, now, Vec::new())
    }

    /// The same, with the Veeam servers whose sessions act on this world.
    pub fn with_veeam(
        sim: Arc<Simulator>,
        cluster: &str,
        now: Now,
        veeam: Vec<Arc<VeeamSim>>,
    ) -> Via<ClockedSim> {
        Via::new(
            cluster,
            ClockedSim {
                inner: Arc::new(SimClient::new(sim.clone(), cluster)),
                sim,
                now,
                veeam,
            },
        )
    }
}

impl Resolve for ClockedSim {
    fn resolve(&self) -> Result<Arc<dyn Ontap>, OntapError> {
        let now = (self.now)();
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
