//! Turns a policy's clusters into [`Ontap`] clients: the REST client for `https://` endpoints,
//! and whatever in-process client the caller hands in for the others (the edges pass the embedded
//! simulator's, `sim::embedded`, for `endpoint = "simulator"`; the agent imports no simulator).
//!
//! A REST client that cannot be built (a password variable not set yet, a CA file missing) is
//! not fatal: the cluster answers every call with that error, the agent reports it unreachable
//! and retries with backoff, and each retry builds the client again — so fixing the secret is
//! picked up without a restart while the other clusters keep running.

use std::sync::{Arc, Mutex};

use super::ClusterClient;
use crate::config::{Cluster, Policy};
use crate::ontap::{ClientOverrides, Ontap, OntapError, Resolve, RestClient, Via};

/// One client per policy cluster, in policy order: `in_process`'s for the clusters it serves
/// (by the policy's name), a [`LazyRest`] for the others.
pub fn connect(
    policy: &Policy,
    in_process: impl Fn(&str) -> Option<Arc<dyn Ontap>>,
) -> Vec<ClusterClient> {
    policy
        .clusters
        .iter()
        .map(|c| ClusterClient {
            name: c.name.clone(),
            ontap: in_process(&c.name)
                .unwrap_or_else(|| Arc::new(LazyRest::new(c.clone(), policy.agent.concurrency))),
        })
        .collect()
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
