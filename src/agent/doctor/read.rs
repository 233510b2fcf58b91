//! `doctor`'s one read-only discovery: per cluster, the full inventory (cluster, volumes,
//! policies, schedules, licenses, snapshots, LUNs) and the volumes' settings — GETs only.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::ClusterListing;
use crate::agent::discovery::{discover, Depth};
use crate::ontap::{Ontap, OntapError};
use crate::planner::Observed;

/// What the clusters said: the listings of those that answered (policy order) and the errors
/// of those that did not.
#[derive(Debug)]
pub struct Estate {
    pub listings: Vec<ClusterListing>,
    pub errors: Vec<OntapError>,
}

impl Estate {
    /// The planner's view of the clusters read.
    pub fn observed(&self) -> Observed {
        Observed {
            clusters: self
                .listings
                .iter()
                .map(|l| l.inventory.observed(&l.name))
                .collect(),
        }
    }
}

/// Reads every cluster concurrently; each cluster's calls run concurrently too.
pub async fn read_clusters(clusters: &[(String, Arc<dyn Ontap>)], at: DateTime<Utc>) -> Estate {
    let rounds = clusters.iter().map(|(name, ontap)| async move {
        let both = tokio::try_join!(
            discover(ontap.as_ref(), Depth::Full, at),
            ontap.volume_settings()
        );
        (name.clone(), both)
    });
    let mut estate = Estate {
        listings: Vec::new(),
        errors: Vec::new(),
    };
    for (name, result) in futures_util::future::join_all(rounds).await {
        match result {
            Ok((inventory, settings)) => estate.listings.push(ClusterListing {
                name,
                inventory,
                settings,
            }),
            Err(e) => estate.errors.push(e),
        }
    }
    estate
}
