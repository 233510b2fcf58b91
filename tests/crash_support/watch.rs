//! The cluster watched through the campaign, once a second, by a task of its own: every snapshot
//! ever listed (with when it was first listed and when it was first missing), and what must hold
//! at every listing — a managed series never falls below its count (once it had that many) and
//! loses its snapshots oldest first. The watcher also plays SnapMirror: it holds the backing
//! snapshots of a volume's first SnapRestore cycles busy, so that their release is refused as
//! locked and retried (the locked-retry stage) until the test lets them go.
//!
//! A snapshot that lives less than a second can be missed; every one the checks rely on lives
//! longer (a managed snapshot stays at least until `count` newer ones exist).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use snapwarden::agent::cycle::{CloneKind, CycleState};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::checks::follows_pattern;
use super::{hold, journal, objects, Snap};
use crate::process_support::SimRest;

/// A managed copy as the watcher checks it.
#[derive(Debug, Clone)]
pub struct ManagedSeries {
    pub volume: String,
    pub prefix: String,
    pub count: usize,
}

/// Which backing snapshots to hold busy: those of the first `max` SnapRestore cycles on `volume`.
#[derive(Debug, Clone)]
pub struct Holds {
    pub volume: String,
    pub max: usize,
}

/// A snapshot as the watcher saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub snap: Snap,
    pub first_seen: DateTime<Utc>,
    /// The first listing that no longer showed it.
    pub gone_at: Option<DateTime<Utc>>,
}

/// A backing snapshot the watcher holds busy.
#[derive(Debug, Clone)]
pub struct Held {
    pub volume: String,
    pub uuid: String,
    pub name: String,
}

/// What the watcher saw.
#[derive(Debug, Default)]
pub struct History {
    /// By uuid.
    pub seen: BTreeMap<String, Seen>,
    /// Broken rules, with the listing's time.
    pub violations: Vec<String>,
    pub held: Vec<Held>,
    pub listings: usize,
    /// The first and the last listing.
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
}

impl History {
    /// The snapshots of a managed series ever seen, by uuid.
    pub fn series<'a>(&'a self, s: &'a ManagedSeries) -> impl Iterator<Item = &'a Seen> + 'a {
        self.seen
            .values()
            .filter(|x| x.snap.volume == s.volume && follows_pattern(&s.prefix, &x.snap.name))
    }
}

pub struct Watcher {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    history: Arc<Mutex<History>>,
    holding: Arc<AtomicBool>,
    url: String,
}

impl Watcher {
    pub fn start(
        rest: SimRest,
        url: &str,
        state: PathBuf,
        series: Vec<ManagedSeries>,
        holds: Holds,
    ) -> Watcher {
        let (stop, mut stopped) = oneshot::channel();
        let history = Arc::new(Mutex::new(History::default()));
        let holding = Arc::new(AtomicBool::new(true));
        let watch = Watch {
            rest,
            url: url.to_string(),
            state,
            series,
            holds,
            history: history.clone(),
            holding: holding.clone(),
        };
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                watch.sample().await;
            }
            watch.sample().await;
        });
        Watcher {
            stop,
            task,
            history,
            holding,
            url: url.to_string(),
        }
    }

    /// Holds no more snapshots and lets the held ones go; those it held.
    pub async fn let_go(&self) -> Vec<Held> {
        self.holding.store(false, Ordering::SeqCst);
        let held = self.history.lock().expect("history").held.clone();
        for h in &held {
            hold(&self.url, &h.volume, &h.uuid, &[]).await;
        }
        held
    }

    /// Stops after one last listing; what it saw.
    pub async fn finish(self) -> History {
        let _ = self.stop.send(());
        self.task.await.expect("the watcher ends");
        let mut history = self.history.lock().expect("history");
        std::mem::take(&mut *history)
    }
}

/// The watcher's task: what it reads and where it writes.
struct Watch {
    rest: SimRest,
    url: String,
    state: PathBuf,
    series: Vec<ManagedSeries>,
    holds: Holds,
    history: Arc<Mutex<History>>,
    holding: Arc<AtomicBool>,
}

impl Watch {
    async fn sample(&self) {
        let listed = objects(&self.rest).await;
        let at = Utc::now();
        let wanted = {
            let mut history = self.history.lock().expect("history");
            record(&mut history, &listed.snapshots, &self.series, at);
            let room = self.holds.max.saturating_sub(history.held.len());
            if self.holding.load(Ordering::SeqCst) && room > 0 {
                self.to_hold(&listed.snapshots, &history.held, room)
            } else {
                Vec::new()
            }
        };
        for h in wanted {
            // Holding stops before the test lets the held ones go: never hold after that.
            if self.holding.load(Ordering::SeqCst)
                && hold(&self.url, &h.volume, &h.uuid, &["snapmirror"]).await
            {
                self.history.lock().expect("history").held.push(h);
            }
        }
    }

    /// Backing snapshots of the hold volume's SnapRestore cycles, not held yet, at most `room`.
    fn to_hold(&self, listed: &[Snap], held: &[Held], room: usize) -> Vec<Held> {
        let Some(journal) = journal(&self.state) else {
            return Vec::new();
        };
        let Ok(open) = journal.open_cycles() else {
            return Vec::new();
        };
        open.iter()
            .filter(|c| {
                c.volume == self.holds.volume
                    && c.clone_kind == CloneKind::SnapRestore
                    && matches!(
                        c.state,
                        CycleState::Live | CycleState::Backup | CycleState::Releasing
                    )
                    && !held.iter().any(|h| h.name == c.backing_snapshot)
            })
            .filter_map(|c| {
                listed
                    .iter()
                    .find(|s| s.volume == c.volume && s.name == c.backing_snapshot)
            })
            .take(room)
            .map(|s| Held {
                volume: s.volume.clone(),
                uuid: s.uuid.clone(),
                name: s.name.clone(),
            })
            .collect()
    }
}

/// One listing into the history, and the rules every listing must keep.
fn record(history: &mut History, listed: &[Snap], series: &[ManagedSeries], at: DateTime<Utc>) {
    history.listings += 1;
    history.first_at.get_or_insert(at);
    history.last_at = Some(at);
    for s in listed {
        history.seen.entry(s.uuid.clone()).or_insert_with(|| Seen {
            snap: s.clone(),
            first_seen: at,
            gone_at: None,
        });
    }
    let mut gone = Vec::new();
    for (uuid, seen) in history.seen.iter_mut() {
        if seen.gone_at.is_none() && !listed.iter().any(|s| &s.uuid == uuid) {
            seen.gone_at = Some(at);
            gone.push(seen.snap.clone());
        }
    }
    for copy in series {
        let now: Vec<&Snap> = listed
            .iter()
            .filter(|s| s.volume == copy.volume && follows_pattern(&copy.prefix, &s.name))
            .collect();
        let ever = history.series(copy).count();
        let floor = copy.count.min(ever);
        if now.len() < floor {
            history.violations.push(format!(
                "{at}: the {} series of {} has {} snapshots, fewer than its count {} ({ever} ever made): one deleted too many: {:?}",
                copy.prefix,
                copy.volume,
                now.len(),
                copy.count,
                now.iter().map(|s| &s.name).collect::<Vec<_>>()
            ));
        }
        for g in gone
            .iter()
            .filter(|g| g.volume == copy.volume && follows_pattern(&copy.prefix, &g.name))
        {
            if let Some(older) = now
                .iter()
                .find(|s| s.create_time < g.create_time && !s.busy)
            {
                history.violations.push(format!(
                    "{at}: {} of {} was deleted while the older {} (not busy) stays: rotation deletes the oldest first",
                    g.name, copy.volume, older.name
                ));
            }
        }
    }
}
