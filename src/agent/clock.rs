//! The agent's clock: wall-clock time in `run`, virtual time in tests and `simulate`.
//!
//! Everything in the agent that needs "now" or waits for an instant takes a [`Clock`], so the same
//! reconcile loop runs in real time and in virtual time. [`TokioClock`] is both: its `now` is an
//! epoch plus the time elapsed on tokio's clock, so in a runtime with paused time (tests,
//! `simulate`) it jumps to the next timer as soon as every task waits, and in a normal runtime it
//! is wall-clock time shifted to the epoch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

/// A future that resolves when the clock reaches an instant.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where the agent's time comes from.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
    /// Resolves once `now() >= at` (at once when `at` is already past).
    fn sleep_until(&self, at: DateTime<Utc>) -> Sleep;
}

/// `clock`'s `now` as a plain function, for what follows the agent's time without knowing the
/// agent (the embedded simulator's clients, `sim::embedded`).
pub fn reader<C: Clock + ?Sized>(clock: Arc<C>) -> Arc<dyn Fn() -> DateTime<Utc> + Send + Sync> {
    Arc::new(move || clock.now())
}

/// Longest single tokio sleep; longer waits re-check the clock (tokio timers cap at about 2 years,
/// and a wall clock that jumps is re-read at least this often).
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(3600);

/// Wall-clock time (`Utc::now`); waits use tokio timers and re-read the clock when they end.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> Sleep {
        Box::pin(async move {
            loop {
                let left = at - Utc::now();
                if left <= TimeDelta::zero() {
                    return;
                }
                let d = left.to_std().unwrap_or_default().min(MAX_SLEEP);
                tokio::time::sleep(d).await;
            }
        })
    }
}

/// `epoch` plus the time elapsed on tokio's clock since construction.
///
/// In a runtime whose time is paused this is virtual time: it advances only by sleeping, and
/// tokio moves it to the next timer whenever all tasks wait (blocking tasks hold it still).
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    epoch: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `epoch` now. Must be called inside a tokio runtime.
    pub fn starting_at(epoch: DateTime<Utc>) -> TokioClock {
        TokioClock {
            epoch,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.start.elapsed()).unwrap_or(TimeDelta::MAX);
        self.epoch
            .checked_add_signed(elapsed)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> Sleep {
        let clock = *self;
        Box::pin(async move {
            loop {
                let left = at - clock.now();
                if left <= TimeDelta::zero() {
                    return;
                }
                let d = left.to_std().unwrap_or_default().min(MAX_SLEEP);
                tokio::time::sleep(d).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_in_paused_time_jumps_to_the_instant_slept_for() {
        let epoch = "2027-03-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let clock = TokioClock::starting_at(epoch);
        assert_eq!(clock.now(), epoch);
        let later = epoch + TimeDelta::days(3);
        clock.sleep_until(later).await;
        // Paused time moves exactly to the timer (tokio's resolution is one millisecond).
        let now = clock.now();
        assert!(
            now >= later && now - later < TimeDelta::milliseconds(2),
            "{now}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sleeping_until_a_past_instant_returns_at_once() {
        let epoch = "2027-03-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let clock = TokioClock::starting_at(epoch);
        clock.sleep_until(epoch - TimeDelta::hours(1)).await;
        assert_eq!(clock.now(), epoch);
    }
}
