//! `Counted`: the [`Layer`] around every cluster client that counts and times its calls into
//! the metrics, by method and outcome.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Metrics;
use crate::ontap::{Call, Layer, Ontap, OntapError, Via};

/// The `code` label of an ONTAP call's outcome: `ok`, ONTAP's error code, or the kind of failure.
pub(super) fn outcome(r: Result<(), &OntapError>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(OntapError::Api { code, .. }) => code.to_string(),
        Err(OntapError::Auth { .. }) => "auth".into(),
        Err(OntapError::Transport { .. }) => "transport".into(),
        Err(OntapError::JobTimeout { .. }) => "job_timeout".into(),
        Err(OntapError::Decode { .. }) => "decode".into(),
    }
}

/// The [`Layer`] that counts and times every call in the metrics, by method and outcome.
pub struct Counted {
    inner: Arc<dyn Ontap>,
    metrics: Arc<Metrics>,
    cluster: String,
}

impl Counted {
    /// `inner`, counted; `cluster` is the policy's name for it (the `cluster` label).
    pub fn new(inner: Arc<dyn Ontap>, metrics: Arc<Metrics>, cluster: &str) -> Via<Counted> {
        Via::new(
            inner.cluster_name().to_string(),
            Counted {
                inner,
                metrics,
                cluster: cluster.to_string(),
            },
        )
    }
}

#[async_trait]
impl Layer for Counted {
    async fn before(&self, _call: Call) -> Result<Arc<dyn Ontap>, OntapError> {
        Ok(self.inner.clone())
    }

    fn after(&self, call: Call, r: Result<(), &OntapError>, elapsed: Duration) {
        self.metrics.ontap_request(
            &self.cluster,
            call.name(),
            outcome(r),
            elapsed.as_secs_f64(),
        );
    }
}
