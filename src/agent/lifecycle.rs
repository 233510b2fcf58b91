//! A cycle's life after the decision to start or release it: the executor's creates and
//! releases (concurrent, bounded per cluster), the backup that follows the creates (the
//! window's hook, or a hold of `expected` without one), the backup tool of a driver window, and
//! the events that end them. The rules that decide a backup's end (`backup_deadline`,
//! `finished_late`) are pure functions at the bottom.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::cycle::{CloneKind, ConflictKind, Cycle, CycleResult, CycleState};
use super::executor;
use super::hook::{self, HookOutcome, HookSpec};
use super::journal::{ActionKind, ActionOutcome};
use super::observe;
use super::stage::{self, Stage};
use super::state::{Occurrence, Open, Retry, Step, VolumeKey};
use super::{driver, Agent, Event};
use crate::config::{CloneMethod, Driver, HookAction, OnOverrun, Window};
use crate::error::error_chain;
use crate::ontap::VolumeRef;
use crate::planner;

impl Agent {
    /// Runs the executor's creates, then starts each backup whose clones exist.
    pub(super) async fn create_all(&mut self, creates: Vec<(Cycle, VolumeRef)>) {
        let ctx = self.ctx.clone();
        let conns = self.conns.clone();
        let policy = self.policy.clone();
        let results =
            futures_util::future::join_all(creates.into_iter().filter_map(|(cycle, vref)| {
                let conn = conns.iter().find(|c| c.name == cycle.cluster)?.clone();
                let ctx = ctx.clone();
                // A FlexClone cycle on a `snaprestore` volume: the recommendation switched it.
                let switched = cycle.clone_kind == CloneKind::FlexClone
                    && VolumeKey::of_cycle(&cycle)
                        .index_in(&policy)
                        .is_some_and(|vi| policy.volumes[vi].clone == CloneMethod::SnapRestore);
                Some(async move {
                    let _in_stage =
                        switched.then(|| stage::enter(Stage::Switch, &cycle.backing_snapshot));
                    executor::create(&ctx, &conn, &vref, cycle).await
                })
            }))
            .await;
        // Creating stopped now: only a listing taken later may settle what the creates left.
        let stopped = self.ctx.clock.now();
        for cycle in results.into_iter().flatten() {
            match cycle.state {
                CycleState::Backup => {
                    let step = self.begin_backup(&cycle);
                    let id = cycle.id.clone();
                    let open = Open {
                        cycle,
                        step,
                        settle_after: Some(stopped),
                    };
                    self.memory.open.insert(id, open);
                }
                CycleState::Failed => self.remember(cycle, stopped),
                _ => {
                    let open = Open {
                        cycle,
                        step: Step::Release,
                        settle_after: Some(stopped),
                    };
                    self.memory.open.insert(open.cycle.id.clone(), open);
                }
            }
        }
    }

    /// The clones exist: runs the window's hook, or holds them for `expected` from when they
    /// were made. The step the cycle is in.
    fn begin_backup(&mut self, cycle: &Cycle) -> Step {
        let window = self.policy.windows.iter().find(|w| w.name == cycle.window);
        let began = cycle.clones_created_at.unwrap_or(cycle.create_at);
        let Some(spec) = self.hook_spec(cycle) else {
            let expected = window.map(|w| w.expected).unwrap_or_default();
            let until = (began + expected).min(cycle.release_by);
            tracing::info!(
                cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
                window = %cycle.window, snapshot = %cycle.backing_snapshot,
                "no hook: clones held until {}", until.to_rfc3339()
            );
            return Step::Held { until };
        };
        let Some(window) = window else {
            return Step::Release;
        };
        let deadline = backup_deadline(window, &spec, cycle.release_by, began);
        tracing::info!(
            cluster = %cycle.cluster, svm = %cycle.svm, volume = %cycle.volume,
            window = %cycle.window, snapshot = %cycle.backing_snapshot,
            "backup hook started: {}; deadline {}", spec.describe(), deadline.to_rfc3339()
        );
        let cycle = cycle.clone();
        let clock = self.ctx.clock.clone();
        let work_dir = self.options.state_dir.join("hooks");
        let http = self.http.clone();
        let events = self.events_tx.clone();
        let cancel = self.stop_hooks.subscribe();
        tokio::spawn(async move {
            let in_stage = stage::enter(Stage::Hook, &cycle.backing_snapshot);
            let outcome =
                hook::run(&spec, &cycle, deadline, &clock, &work_dir, &http, cancel).await;
            drop(in_stage);
            // The loop is gone only when the agent stopped: nobody to tell.
            let _ = events.send(Event::HookEnded {
                cycle: cycle.id.clone(),
                outcome,
            });
        });
        Step::Hook
    }

    /// The hook a cycle runs: `simulate`'s override, else the window's.
    fn hook_spec(&self, cycle: &Cycle) -> Option<HookSpec> {
        let window = self.policy.windows.iter().find(|w| w.name == cycle.window);
        match (&self.options.hooks, window) {
            (Some(decide), _) => decide(cycle),
            (None, Some(w)) => w.hook.as_ref().map(|h| match &h.action {
                HookAction::Command(argv) => HookSpec::Command {
                    argv: argv.clone(),
                    timeout: h.timeout,
                },
                HookAction::Webhook(url) => HookSpec::Webhook {
                    url: url.clone(),
                    timeout: h.timeout,
                },
            }),
            (None, None) => None,
        }
    }

    /// One release attempt of each cycle; a lock is explained from a listing that shows its
    /// pins (read again); each cycle's next step from its result.
    pub(super) async fn release_all(
        &mut self,
        releases: Vec<(String, VolumeRef, bool)>,
        now: DateTime<Utc>,
    ) {
        let ctx = self.ctx.clone();
        let mut due = Vec::new();
        for (id, vref, fresh) in releases {
            let Some(o) = self.memory.open.get(&id) else {
                continue;
            };
            let Some(ci) = self.conns.iter().position(|c| c.name == o.cycle.cluster) else {
                continue;
            };
            due.push((
                self.conns[ci].clone(),
                vref,
                fresh.then_some(ci),
                o.cycle.clone(),
            ));
        }
        let views = &self.views;
        let results =
            futures_util::future::join_all(due.into_iter().map(|(conn, vref, ci, cycle)| {
                let ctx = ctx.clone();
                let listing = ci.and_then(|ci| views[ci].inventory.as_ref());
                async move { executor::release(&ctx, &conn, &vref, listing, cycle).await }
            }))
            .await;
        let mut locked_clusters: Vec<usize> = results
            .iter()
            .filter(|r| r.conflicts.iter().any(|c| c.kind == ConflictKind::Locked))
            .filter_map(|r| self.conns.iter().position(|c| c.name == r.cycle.cluster))
            .collect();
        locked_clusters.sort_unstable();
        locked_clusters.dedup();
        if !locked_clusters.is_empty() {
            let listed = self.ctx.clock.now();
            self.refresh(listed, true, false, Some(&locked_clusters))
                .await;
        }
        let observed = self.observed();
        for r in results {
            let id = r.cycle.id.clone();
            for mut conflict in r.conflicts {
                if conflict.kind == ConflictKind::Locked {
                    if let Some(p) = self.pins(&observed, &r.cycle, now) {
                        conflict.detail = format!("{}; {}", conflict.detail, p.describe());
                    }
                }
                self.record_conflict(conflict);
            }
            let previous = self.memory.open.remove(&id);
            if r.cycle.state.is_terminal() {
                self.remember(r.cycle, now);
                continue;
            }
            let attempt = previous
                .as_ref()
                .and_then(|o| match o.step {
                    Step::Retry(r) => Some(r.attempt + 1),
                    Step::Locked { retry, .. } => retry.map(|r| r.attempt + 1),
                    _ => None,
                })
                .unwrap_or(0);
            let retry = r.again.then(|| Retry {
                at: now + executor::retry_delay(attempt),
                attempt,
            });
            let step = match (r.cycle.state, retry) {
                (CycleState::Locked, retry) => Step::Locked {
                    unpinned: false,
                    retry,
                },
                (_, Some(retry)) => Step::Retry(retry),
                (_, None) => Step::Release,
            };
            let open = Open {
                cycle: r.cycle,
                step,
                settle_after: previous.and_then(|o| o.settle_after),
            };
            self.memory.open.insert(id, open);
        }
    }

    /// The pins of a cycle's backing snapshot in its cluster's latest listing.
    fn pins(
        &self,
        observed: &crate::planner::Observed,
        cycle: &Cycle,
        now: DateTime<Utc>,
    ) -> Option<observe::Pins> {
        let ci = self.conns.iter().position(|c| c.name == cycle.cluster)?;
        let inv = self.views[ci].inventory.as_ref()?;
        let retention = VolumeKey::of_cycle(cycle)
            .index_in(&self.policy)
            .and_then(|vi| planner::volume_retention(&self.policy, observed, vi).ok());
        Some(observe::pins(
            cycle,
            inv,
            &self.policy.agent.snapshot_prefix,
            retention.as_ref(),
            now,
        ))
    }

    /// Starts a driver window's tool for one occurrence: `cycles` are its volumes' cycles.
    /// With `resume` (a restart), the cycles are journaled and open already, and the job's
    /// running session is followed without starting the job.
    pub(super) fn start_tool(
        &mut self,
        window: &str,
        cycles: Vec<Cycle>,
        resume: bool,
        now: DateTime<Utc>,
    ) {
        let Some(window) = self
            .policy
            .windows
            .iter()
            .find(|w| w.name == window)
            .cloned()
        else {
            return;
        };
        let mut ids = Vec::new();
        for mut c in cycles {
            if resume {
                tracing::warn!(
                    cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
                    cycle = %c.id, "Veeam cycle left open by the previous run: following the job's running session again"
                );
            } else {
                c.id = uuid::Uuid::new_v4().to_string();
                let r = self.ctx.journal.insert_cycle(&c, now);
                self.journaled(r, || format!("driver cycle {}", c.id));
                tracing::info!(
                    cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
                    cycle = %c.id, "driver {}: {}", window.driver.as_str(), c.detail
                );
                self.memory.started.insert(Occurrence::of_cycle(&c));
            }
            ids.push(c.id.clone());
            let settle_after = self.memory.open.get(&c.id).and_then(|o| o.settle_after);
            let open = Open {
                cycle: c,
                step: Step::Tool,
                settle_after,
            };
            self.memory.open.insert(open.cycle.id.clone(), open);
        }
        let Some(first) = ids
            .first()
            .and_then(|id| self.memory.open.get(id))
            .map(|o| o.cycle.clone())
        else {
            return;
        };
        match &window.driver {
            Driver::Veeam(job) => self.spawn_veeam(&window, job, ids, &first, resume),
            Driver::Hook(on_overrun) => self.spawn_hook(&window, *on_overrun, ids, first, now),
            Driver::Snapwarden(_) => {}
        }
    }

    /// Follows a Veeam job for one occurrence's cycles (`ids`) in a task of its own.
    fn spawn_veeam(
        &mut self,
        window: &Window,
        job: &crate::config::VeeamJobRef,
        ids: Vec<String>,
        first: &Cycle,
        resume: bool,
    ) {
        let clock = self.ctx.clock.clone();
        let events = self.events_tx.clone();
        let cancel = self.stop_hooks.subscribe();
        let client = self.veeam_client(job.server);
        let run = driver::VeeamRun {
            client,
            server: self
                .policy
                .veeam
                .get(job.server)
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            job: job.job.clone(),
            cycles: ids.clone(),
            start_by: first.release_by - window.expected,
            release_by: first.release_by,
            follow_until: first.release_by + driver::FOLLOW_LIMIT,
            resume,
            fence: self.ctx.fence.clone(),
        };
        let journal = self.ctx.journal.clone();
        let (notes, noted) = (events.clone(), ids.clone());
        let note: driver::Note = Box::new(move |detail| {
            // The loop is gone only when the agent stopped: nobody to tell.
            let _ = notes.send(Event::DriverNote {
                cycles: noted.clone(),
                detail,
            });
        });
        tokio::spawn(async move {
            let report = driver::follow_veeam(run, clock, journal, note, cancel).await;
            let _ = events.send(Event::DriverEnded {
                cycles: ids,
                report,
            });
        });
    }

    /// Runs a hook-driven window's hook for one occurrence's cycles (`ids`) in a task of its own.
    fn spawn_hook(
        &mut self,
        window: &Window,
        on_overrun: OnOverrun,
        ids: Vec<String>,
        first: Cycle,
        now: DateTime<Utc>,
    ) {
        let Some(spec) = self.hook_spec(&first) else {
            let report = driver::Report {
                result: Some(CycleResult::Failed),
                detail: "driver = \"hook\" but the window has no hook".into(),
                ended_at: now,
            };
            for id in &ids {
                self.driver_ended(id, &report);
            }
            return;
        };
        let clock = self.ctx.clock.clone();
        let events = self.events_tx.clone();
        let cancel = self.stop_hooks.subscribe();
        let deadline = backup_deadline(window, &spec, first.release_by, now);
        let work_dir = self.options.state_dir.join("hooks");
        let http = self.http.clone();
        tokio::spawn(async move {
            let outcome =
                hook::run(&spec, &first, deadline, &clock, &work_dir, &http, cancel).await;
            let (result, detail) = finished_late(
                hook_result(outcome),
                on_overrun,
                first.release_by,
                clock.now(),
            );
            let detail = if detail.is_empty() {
                format!("hook {} succeeded", spec.describe())
            } else {
                format!("hook {}: {detail}", spec.describe())
            };
            let report = driver::Report {
                result,
                detail,
                ended_at: clock.now(),
            };
            let _ = events.send(Event::DriverEnded {
                cycles: ids,
                report,
            });
        });
    }

    /// The Veeam client of `[[veeam]]` number `server`.
    fn veeam_client(&mut self, server: usize) -> Result<Arc<crate::veeam::VeeamClient>, String> {
        let Some(s) = self.policy.veeam.get(server) else {
            return Err(format!("Veeam server #{server} is not in the policy"));
        };
        if let Some(c) = self.veeam.given.get(&s.name) {
            return Ok(c.clone());
        }
        if s.is_simulator() {
            return Err(format!(
                "Veeam server {}: url = \"simulator\" needs the embedded simulator (clusters with endpoint = \"simulator\")",
                s.name
            ));
        }
        if let Some((built_from, c)) = self.veeam.built.get(&s.name) {
            if built_from == s {
                return Ok(c.clone());
            }
        }
        // Not cached when it fails: a fixed secret is picked up at the next start.
        let c = Arc::new(crate::veeam::VeeamClient::from_server(s).map_err(|e| error_chain(&e))?);
        self.veeam
            .built
            .insert(s.name.clone(), (s.clone(), c.clone()));
        Ok(c)
    }

    /// An event between passes: a hook or tool that ended, a tool's note.
    pub(super) fn event(&mut self, ev: Event) {
        match ev {
            Event::HookEnded { cycle, outcome } => self.hook_ended(&cycle, outcome),
            Event::DriverEnded { cycles, report } => {
                for id in cycles {
                    self.driver_ended(&id, &report);
                }
            }
            Event::DriverNote { cycles, detail } => {
                for id in cycles {
                    let Some(o) = self.memory.open.get_mut(&id) else {
                        continue;
                    };
                    o.cycle.detail = detail.clone();
                    let r = self.ctx.journal.update_cycle(&o.cycle);
                    self.journaled(r, || format!("driver cycle {id}"));
                }
            }
            Event::Trigger(_) | Event::Shutdown | Event::Reload { .. } => {}
        }
    }

    fn hook_ended(&mut self, id: &str, outcome: HookOutcome) {
        let now = self.ctx.clock.now();
        let on_overrun = self
            .memory
            .open
            .get(id)
            .and_then(|o| {
                self.policy
                    .windows
                    .iter()
                    .find(|w| w.name == o.cycle.window)
            })
            .map_or(OnOverrun::Release, |w| w.driver.on_overrun());
        let Some(o) = self.memory.open.get_mut(id) else {
            return;
        };
        let c = &mut o.cycle;
        let (result, detail) = finished_late(hook_result(outcome), on_overrun, c.release_by, now);
        match result {
            None => tracing::info!(
                cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
                snapshot = %c.backing_snapshot, cycle = %c.id, "backup hook succeeded"
            ),
            Some(r) => tracing::warn!(
                cluster = %c.cluster, svm = %c.svm, volume = %c.volume, window = %c.window,
                snapshot = %c.backing_snapshot, cycle = %c.id, result = r.as_str(),
                "backup hook did not succeed: {detail}"
            ),
        }
        c.result = result;
        c.detail = detail;
        c.state = CycleState::Releasing;
        o.step = Step::Release;
        let c = o.cycle.clone();
        let r = self.ctx.journal.update_cycle(&c);
        self.journaled(r, || format!("cycle {id}"));
        let r = self.ctx.journal.record_action(
            Some(&c.id),
            now,
            ActionKind::Hook,
            &c.backing_snapshot,
            ActionOutcome::of_result(c.result),
            &c.detail,
        );
        self.journaled(r, || format!("the hook of cycle {id}"));
    }

    /// A driver's tool stopped: its outcome on the cycle; the next listing settles it.
    pub(super) fn driver_ended(&mut self, id: &str, report: &driver::Report) {
        let Some(o) = self.memory.open.get_mut(id) else {
            return;
        };
        o.cycle.result = report.result;
        o.cycle.detail = report.detail.clone();
        o.cycle.clones_deleted_at = Some(report.ended_at.max(o.cycle.create_at));
        o.step = Step::ToolEnded;
        o.settle_after = Some(report.ended_at);
        let c = o.cycle.clone();
        let r = self.ctx.journal.update_cycle(&c);
        self.journaled(r, || format!("driver cycle {id}"));
    }
}

/// A hook's outcome as a cycle result (`None`: succeeded) and detail.
fn hook_result(outcome: HookOutcome) -> (Option<CycleResult>, String) {
    match outcome {
        HookOutcome::Succeeded => (None, String::new()),
        HookOutcome::Failed(d) | HookOutcome::NotStarted(d) | HookOutcome::Interrupted(d) => {
            (Some(CycleResult::Failed), d)
        }
        HookOutcome::Overrun(d) => (Some(CycleResult::Overrun), d),
    }
}

/// When a backup's hook is ended: at its own `timeout` from `began`, and with
/// `on_overrun = "release"` at the latest at `release_by` (the start plus `max`), so that the
/// release comes before the next scheduled snapshot. A simulated backup (no timeout of its own)
/// gets the default timeout of the window's hooks (`OnOverrun::backup_limit`).
pub(super) fn backup_deadline(
    window: &Window,
    spec: &HookSpec,
    release_by: DateTime<Utc>,
    began: DateTime<Utc>,
) -> DateTime<Utc> {
    let on_overrun = window.driver.on_overrun();
    let limit = spec
        .timeout()
        .unwrap_or_else(|| on_overrun.backup_limit(window.max));
    let end = began.checked_add_signed(limit).unwrap_or(release_by);
    match on_overrun {
        OnOverrun::Release => end.min(release_by),
        OnOverrun::Finish => end,
    }
}

/// A backup left to finish (`on_overrun = "finish"`) that succeeded after `release_by` is an
/// overrun all the same: the cycle says how far past `max` it ran.
pub(super) fn finished_late(
    (result, detail): (Option<CycleResult>, String),
    on_overrun: OnOverrun,
    release_by: DateTime<Utc>,
    ended_at: DateTime<Utc>,
) -> (Option<CycleResult>, String) {
    if result.is_some() || on_overrun != OnOverrun::Finish || ended_at <= release_by {
        return (result, detail);
    }
    let past = ended_at.signed_duration_since(release_by);
    (
        Some(CycleResult::Overrun),
        format!(
            "the backup ran {} past max and was left to finish (on_overrun = \"finish\")",
            planner::human(past)
        ),
    )
}
