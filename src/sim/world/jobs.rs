//! Jobs: the record an asynchronous mutation leaves, and injected job failures.

use super::clock::{saturating_add, seconds};
use super::{codes, Job, SimError, SimResult, Svm, World};

impl World {
    // ----- jobs -----

    /// Records a job for an operation that already ran (or failed) now; it reports `running`
    /// for `faults.job_duration_seconds`. Returns the job uuid.
    pub fn add_job(
        &mut self,
        ci: usize,
        description: String,
        svm: Option<Svm>,
        outcome: &SimResult<()>,
    ) -> String {
        let uuid = World::new_uuid();
        let end = saturating_add(self.now, seconds(self.faults.job_duration_seconds));
        self.clusters[ci].jobs.push(Job {
            uuid: uuid.clone(),
            description,
            svm,
            start: self.now,
            end,
            outcome: outcome
                .as_ref()
                .map(|_| ())
                .map_err(|e| (e.code(), e.to_string())),
        });
        uuid
    }

    pub fn job(&self, ci: usize, uuid: &str) -> SimResult<&Job> {
        let keep = seconds(self.knobs.job_retention_seconds);
        self.clusters[ci]
            .jobs
            .iter()
            .find(|j| j.uuid == uuid && self.now < saturating_add(j.end, keep))
            .ok_or_else(|| SimError::not_found(codes::NOT_FOUND, "uuid"))
    }

    /// Whether an injected job failure should happen now (consumes a roll only when the rate is set).
    pub fn roll_job_failure(&mut self) -> bool {
        let rate = self.faults.job_failure_rate;
        rate > 0.0 && self.roll() < rate
    }
}
