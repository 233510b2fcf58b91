//! `Changes`: the layer over every cluster client that notes which volumes the agent's own
//! calls may have changed since the cluster was last listed, so that a pass re-reads those
//! volumes instead of the whole cluster.
//!
//! A volume's snapshots and LUNs change only through a call that mutates it (the agent's, noted
//! here), a scheduled snapshot or its rotation (instants the schedules tell), or somebody else
//! (a backup tool the agent follows, an admin: what the full listing at `observe_interval`
//! catches). The refresh reads the whole cluster when a scheduled instant passed since the
//! listing was last up to date, and only the noted volumes otherwise.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ontap::{Call, Layer, Ontap, OntapError, Target, Via};

/// The volumes changed since they were last read, by SVM and name; a deleted LUN names its
/// volume only by name (its path), so it marks that name in every SVM.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changed {
    pub volumes: HashSet<(String, String)>,
    pub volume_names: HashSet<String>,
}

impl Changed {
    /// Adds what `other` noted (a re-read that failed gives its volumes back).
    pub fn merge(&mut self, other: Changed) {
        self.volumes.extend(other.volumes);
        self.volume_names.extend(other.volume_names);
    }
}

/// What the layer noted, shared with the agent that takes it at each refresh.
#[derive(Debug, Default)]
pub struct Noted(Mutex<Changed>);

impl Noted {
    /// Everything noted so far, leaving nothing.
    pub fn take(&self) -> Changed {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Gives back what a refresh took and could not read.
    pub fn give_back(&self, changed: Changed) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(changed);
    }

    fn note(&self, target: Target<'_>) {
        let mut changed = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match target {
            Target::Volume(v) => {
                changed.volumes.insert((v.svm.clone(), v.name.clone()));
            }
            // A path of no volume changes no listing the agent keeps by volume; the next whole
            // read shows whatever it did.
            Target::Lun(path) => {
                if let Some(name) = crate::agent::discovery::lun_volume(path) {
                    changed.volume_names.insert(name.to_string());
                }
            }
        }
    }
}

/// The [`Layer`] that notes the volumes mutating calls touch.
pub struct Changes {
    inner: Arc<dyn Ontap>,
    noted: Arc<Noted>,
}

impl Changes {
    /// `inner`, with its mutations noted in `noted`.
    pub fn new(inner: Arc<dyn Ontap>, noted: Arc<Noted>) -> Via<Changes> {
        Via::new(inner.cluster_name().to_string(), Changes { inner, noted })
    }
}

#[async_trait]
impl Layer for Changes {
    async fn before(&self, _call: Call) -> Result<Arc<dyn Ontap>, OntapError> {
        Ok(self.inner.clone())
    }

    fn changes(&self, target: Target<'_>) {
        self.noted.note(target);
    }
}
