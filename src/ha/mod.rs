//! High availability: replicas of one policy elect a leader; only the leader changes anything.
//!
//! A [`LeaderElector`] campaigns in the background and publishes what it knows ([`Election`]) on
//! a watch channel; the agent's loop wakes on every change. Right before each ONTAP mutation the
//! executor calls [`LeaderElector::check`], which answers from this process's monotonic clock:
//! leadership holds only while the lease granted at the last successful keep-alive has not run
//! out, so a leader that was paused (SIGSTOP, a stalled VM) past its lease refuses to act before
//! it has even heard from the backend. The revision `check` returns is the election key's create
//! revision, the fencing token the journal records with every action.
//!
//! Backends: [`etcd::EtcdElector`] (etcd v3 through its JSON gateway) and
//! [`memory::MemoryElection`] (in-process, driven by hand, for tests).

pub mod etcd;
pub mod memory;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;

/// What one replica knows of the election; published whenever it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Election {
    /// This replica's identity.
    pub identity: String,
    /// The fencing revision while this replica leads (the election key's create revision).
    pub revision: Option<i64>,
    /// Who leads as last seen: this replica's identity while it leads, `None` when nobody does
    /// or the backend cannot be reached.
    pub leader: Option<String>,
    /// The backend answered the last round.
    pub backend_up: bool,
    /// How many times this replica became leader or stopped being it.
    pub changes: u64,
}

impl Election {
    pub fn leading(&self) -> bool {
        self.revision.is_some()
    }
}

/// Why a mutation is refused: this replica does not hold a valid lease right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replica {identity} is not the leader ({why}); nothing is changed")]
pub struct NotLeader {
    pub identity: String,
    pub why: String,
}

/// A leader election between replicas.
#[async_trait]
pub trait LeaderElector: Send + Sync {
    /// This replica's identity.
    fn identity(&self) -> &str;
    /// The election as this replica sees it; changes wake the receiver.
    fn subscribe(&self) -> watch::Receiver<Election>;
    /// Right before a mutation: the fencing revision when this replica leads and its lease holds
    /// at this instant.
    fn check(&self) -> Result<i64, NotLeader>;
    /// Stops campaigning and gives leadership up, so that a standby takes over at once.
    async fn resign(&self);
}

/// The lease as this replica holds it, shared by the campaign task and `check`.
///
/// Invariant: `revision` is `Some` only with a `valid_until`; past `valid_until` the lease is
/// treated as lost whatever the backend would say.
#[derive(Debug, Default)]
struct Held {
    revision: Option<i64>,
    valid_until: Option<Instant>,
}

/// Leadership state shared by every backend: the held lease and the published [`Election`].
struct Leadership {
    identity: String,
    held: Mutex<Held>,
    tx: watch::Sender<Election>,
}

impl Leadership {
    fn new(identity: String) -> Leadership {
        let (tx, _) = watch::channel(Election {
            identity: identity.clone(),
            ..Election::default()
        });
        Leadership {
            identity,
            held: Mutex::new(Held::default()),
            tx,
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        // A poisoned lock only means a panic elsewhere; the data (two plain fields) is intact.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self) -> Result<i64, NotLeader> {
        let held = self.held();
        let not = |why: &str| NotLeader {
            identity: self.identity.clone(),
            why: why.to_string(),
        };
        let Some(revision) = held.revision else {
            return Err(not("another replica leads or the election is undecided"));
        };
        match held.valid_until {
            Some(t) if Instant::now() < t => Ok(revision),
            _ => Err(not("its lease ran out before it could be renewed")),
        }
    }

    /// This replica leads with `revision` until `valid_until`.
    fn lead(&self, revision: i64, valid_until: Instant) {
        {
            let mut held = self.held();
            held.revision = Some(revision);
            held.valid_until = Some(valid_until);
        }
        self.tx.send_if_modified(|e| {
            let changed = e.revision != Some(revision)
                || !e.backend_up
                || e.leader.as_deref() != Some(self.identity.as_str());
            if e.revision.is_none() {
                e.changes = e.changes.saturating_add(1);
            }
            e.revision = Some(revision);
            e.leader = Some(self.identity.clone());
            e.backend_up = true;
            changed
        });
    }

    /// The lease is renewed until `valid_until`.
    fn renewed(&self, valid_until: Instant) {
        let mut held = self.held();
        if held.revision.is_some() {
            held.valid_until = Some(valid_until);
        }
    }

    /// This replica does not lead; `leader` is who does as far as it knows.
    fn follow(&self, leader: Option<String>, backend_up: bool) {
        {
            let mut held = self.held();
            held.revision = None;
            held.valid_until = None;
        }
        self.tx.send_if_modified(|e| {
            let was_leading = e.revision.is_some();
            let changed = was_leading || e.leader != leader || e.backend_up != backend_up;
            if was_leading {
                e.changes = e.changes.saturating_add(1);
            }
            e.revision = None;
            e.leader = leader;
            e.backend_up = backend_up;
            changed
        });
    }
}

/// The instant a lease granted or renewed by a request sent at `sent` runs out for this
/// replica: nine tenths of the TTL, so that the leader stops acting before the backend can hand
/// the key to another replica (which it does only after the whole TTL, counted from when the
/// request arrived, which is after `sent`).
fn lease_end(sent: Instant, ttl: Duration) -> Instant {
    sent + ttl.mul_f64(0.9)
}

/// The elector a policy asks for, started; `None` without `[ha]`.
pub fn start(
    ha: Option<&crate::config::Ha>,
) -> Result<Option<Arc<dyn LeaderElector>>, etcd::EtcdError> {
    let Some(ha) = ha else {
        return Ok(None);
    };
    match ha.backend {
        crate::config::HaBackend::Etcd => {
            let elector: Arc<dyn LeaderElector> = Arc::new(etcd::EtcdElector::start(ha)?);
            Ok(Some(elector))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_holds_only_while_leading_and_within_the_lease() {
        let l = Leadership::new("a".into());
        assert!(l.check().is_err(), "nobody leads at first");
        l.lead(7, Instant::now() + Duration::from_secs(60));
        assert_eq!(l.check(), Ok(7));
        l.renewed(Instant::now() - Duration::from_millis(1));
        let e = l.check().expect_err("a lapsed lease does not lead");
        assert!(e.to_string().contains("lease ran out"), "{e}");
        l.follow(Some("b".into()), true);
        assert!(l.check().is_err());
        l.renewed(Instant::now() + Duration::from_secs(60));
        assert!(l.check().is_err(), "renewing without leading does not lead");
    }

    #[test]
    fn changes_count_transitions_not_rounds() {
        let l = Leadership::new("a".into());
        let rx = l.tx.subscribe();
        l.follow(Some("b".into()), true);
        l.follow(Some("b".into()), true);
        assert_eq!(rx.borrow().changes, 0);
        l.lead(3, Instant::now() + Duration::from_secs(5));
        l.lead(3, Instant::now() + Duration::from_secs(5));
        assert_eq!(rx.borrow().changes, 1);
        assert_eq!(rx.borrow().leader.as_deref(), Some("a"));
        l.follow(None, false);
        assert_eq!(rx.borrow().changes, 2);
        assert!(!rx.borrow().backend_up);
        assert_eq!(rx.borrow().leader, None);
    }

    #[test]
    fn the_lease_ends_before_the_backend_lets_it_go() {
        let t = Instant::now();
        assert_eq!(
            lease_end(t, Duration::from_secs(10)),
            t + Duration::from_secs(9)
        );
    }
}
