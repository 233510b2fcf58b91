//! An in-process election for tests: the test decides who leads and when leadership is lost.
//!
//! [`MemoryElection`] is the "backend" every replica of a test joins; [`MemoryElection::elect`]
//! hands leadership to one replica with a new revision (the others follow it) and
//! [`MemoryElection::depose`] takes it away from everyone, as a lost quorum would.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;

use super::{Election, LeaderElector, Leadership, NotLeader};

/// How long a lease handed out by [`MemoryElection::elect`] lasts: longer than any test.
const MEMORY_LEASE: Duration = Duration::from_secs(24 * 3600);

/// The shared "backend" of an in-process election.
#[derive(Default)]
pub struct MemoryElection {
    inner: Mutex<Members>,
}

#[derive(Default)]
struct Members {
    replicas: Vec<Arc<MemoryElector>>,
    revision: i64,
}

impl MemoryElection {
    pub fn new() -> Arc<MemoryElection> {
        Arc::new(MemoryElection::default())
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Members> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new replica named `identity`; it follows whoever leads.
    pub fn join(self: &Arc<Self>, identity: &str) -> Arc<MemoryElector> {
        let replica = Arc::new(MemoryElector {
            leadership: Leadership::new(identity.to_string()),
            election: Arc::downgrade(self),
        });
        let mut m = self.members();
        let leader = m
            .replicas
            .iter()
            .find(|r| r.leadership.check().is_ok())
            .map(|r| r.leadership.identity.clone());
        replica.leadership.follow(leader, true);
        m.replicas.push(replica.clone());
        replica
    }

    /// `identity` leads from now on, with a revision no earlier leader had; the others follow.
    pub fn elect(&self, identity: &str) -> i64 {
        let mut m = self.members();
        m.revision = m.revision.saturating_add(1);
        let revision = m.revision;
        for r in &m.replicas {
            if r.leadership.identity == identity {
                r.leadership.lead(revision, Instant::now() + MEMORY_LEASE);
            } else {
                r.leadership.follow(Some(identity.to_string()), true);
            }
        }
        revision
    }

    /// Nobody leads (the backend lost its quorum).
    pub fn depose(&self) {
        for r in &self.members().replicas {
            r.leadership.follow(None, false);
        }
    }
}

/// One replica of a [`MemoryElection`].
pub struct MemoryElector {
    leadership: Leadership,
    election: std::sync::Weak<MemoryElection>,
}

#[async_trait]
impl LeaderElector for MemoryElector {
    fn identity(&self) -> &str {
        &self.leadership.identity
    }

    fn subscribe(&self) -> watch::Receiver<Election> {
        self.leadership.tx.subscribe()
    }

    fn check(&self) -> Result<i64, NotLeader> {
        self.leadership.check()
    }

    async fn resign(&self) {
        if self.leadership.check().is_ok() {
            if let Some(e) = self.election.upgrade() {
                for r in &e.members().replicas {
                    r.leadership.follow(None, true);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_at_a_time_with_growing_revisions() {
        let e = MemoryElection::new();
        let a = e.join("a");
        let b = e.join("b");
        assert!(a.check().is_err() && b.check().is_err());
        let mut rx = b.subscribe();
        let r1 = e.elect("a");
        assert_eq!(a.check(), Ok(r1));
        assert!(b.check().is_err());
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().leader.as_deref(), Some("a"));
        let r2 = e.elect("b");
        assert!(r2 > r1);
        assert!(a.check().is_err(), "the old leader is fenced off");
        assert_eq!(b.check(), Ok(r2));
        e.depose();
        assert!(b.check().is_err());
        assert!(!b.subscribe().borrow().backend_up);
        e.elect("a");
        a.resign().await;
        assert!(a.check().is_err());
        assert_eq!(b.subscribe().borrow().leader, None);
        let c = e.join("c");
        assert_eq!(c.subscribe().borrow().leader, None);
    }
}
