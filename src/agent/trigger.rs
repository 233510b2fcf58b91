//! Real-time wake-ups at planned instants through tokio-cron-scheduler.
//!
//! `timeline` and the planner decide *when* (ONTAP cron semantics, DST); this only turns the next
//! instant into a one-shot job that sends [`Event::Trigger`] and re-arms it when the plan changes.
//! The crate rounds one-shot jobs to whole seconds and can fire up to a second early, so the loop
//! re-reads the clock and waits out the remainder (see `Agent::run`). In virtual time the loop's
//! own clock sleep plays this part (the crate cannot run on tokio's paused clock).

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedSender;
use tokio_cron_scheduler::{Job, JobScheduler};
use uuid::Uuid;

use super::Event;

/// The armed one-shot job, if any.
pub(crate) struct CronTrigger {
    scheduler: JobScheduler,
    armed: Option<(Uuid, DateTime<Utc>)>,
    events: UnboundedSender<Event>,
}

impl CronTrigger {
    pub async fn start(events: UnboundedSender<Event>) -> Result<CronTrigger, String> {
        let scheduler = JobScheduler::new()
            .await
            .map_err(|e| format!("cannot create the trigger scheduler: {e}"))?;
        scheduler
            .start()
            .await
            .map_err(|e| format!("cannot start the trigger scheduler: {e}"))?;
        Ok(CronTrigger {
            scheduler,
            armed: None,
            events,
        })
    }

    /// Arms a one-shot job at `at` (replacing the previous one unless it is the same instant).
    /// `now` is the agent clock's reading, used to turn `at` into a monotonic instant.
    pub async fn arm(&mut self, at: DateTime<Utc>, now: DateTime<Utc>) {
        if self.armed.as_ref().is_some_and(|(_, t)| *t == at) {
            return;
        }
        if let Some((id, _)) = self.armed.take() {
            // Removing a job that already fired is harmless.
            let _ = self.scheduler.remove(&id).await;
        }
        let wait = (at - now).to_std().unwrap_or_default();
        let Some(instant) = std::time::Instant::now().checked_add(wait) else {
            return;
        };
        let events = self.events.clone();
        let job = Job::new_one_shot_at_instant(instant, move |_id, _lock| {
            let _ = events.send(Event::Trigger(at));
        });
        match job {
            Ok(job) => match self.scheduler.add(job).await {
                Ok(id) => self.armed = Some((id, at)),
                Err(e) => tracing::warn!("cannot arm the trigger for {}: {e}", at.to_rfc3339()),
            },
            Err(e) => tracing::warn!("cannot arm the trigger for {}: {e}", at.to_rfc3339()),
        }
    }

    pub async fn stop(mut self) {
        let _ = self.scheduler.shutdown().await;
    }
}
