//! Driver windows (Veeam-driven and hook-driven): a backup tool makes the backing snapshot,
//! snapwarden starts the
//! tool at the planned start and watches what it makes.
//!
//! `driver = "veeam"`: [`follow_veeam`] looks the job up, starts it (or follows its running
//! session: never started twice), and polls the session until `Stopped`; an unreachable server is
//! retried with backoff until the start no longer fits, then the cycle fails with the last error.
//! `driver = "hook"` runs the window's hook (`hook::run`). Either way the outcome comes back as a
//! [`Report`]. Attribution ([`attribute`]) ties the tool's snapshot on each volume (the policy's
//! foreign patterns) to the cycle; the observation code shared with the snapwarden driver then
//! finds its chain conflicts, late release and pins. Nothing here deletes anything.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use regex::Regex;
use tokio::sync::watch;

use super::clock::Clock;
use super::cycle::{Cycle, CycleResult};
use super::discovery::Inventory;
use super::journal::{ActionKind, ActionOutcome, Journal};
use crate::error::error_chain;
use crate::veeam::{SessionResult, SessionState, VeeamClient, VeeamError};

/// How long past the window's `max` a Veeam job is followed: snapwarden never stops it, and a
/// week is the bound of every backup duration.
pub const FOLLOW_LIMIT: TimeDelta = TimeDelta::days(7);
/// How often a running session is polled.
pub const POLL: TimeDelta = TimeDelta::seconds(10);
/// First wait before a failed start or poll is tried again; doubles up to [`MAX_RETRY`].
const RETRY: TimeDelta = TimeDelta::seconds(10);
const MAX_RETRY: TimeDelta = TimeDelta::minutes(2);

/// How a driver's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `None`: completed.
    pub result: Option<CycleResult>,
    pub detail: String,
    /// When the tool stopped (its clones are gone by then): the session's `endTime`, else the
    /// agent's clock when it saw the end.
    pub ended_at: DateTime<Utc>,
}

fn retry_after(attempt: u32) -> TimeDelta {
    RETRY
        .checked_mul(1 << attempt.min(8))
        .unwrap_or(MAX_RETRY)
        .min(MAX_RETRY)
}

/// Errors a retry cannot fix: the policy or the server's configuration must change.
fn permanent(e: &VeeamError) -> bool {
    matches!(
        e,
        VeeamError::BadUrl { .. }
            | VeeamError::Secret { .. }
            | VeeamError::Tls { .. }
            | VeeamError::Http { .. }
            | VeeamError::Auth { .. }
            | VeeamError::JobNotFound { .. }
            | VeeamError::JobAmbiguous { .. }
    )
}

/// What the Veeam task needs to know.
pub struct VeeamRun {
    pub client: Result<Arc<VeeamClient>, String>,
    pub server: String,
    pub job: String,
    /// The cycles (one per volume of the window) this run serves; the first names log lines.
    pub cycles: Vec<String>,
    /// The last instant a start still fits (`release_by - expected`).
    pub start_by: DateTime<Utc>,
    /// `create_at + max`: a session still running then has overrun.
    pub release_by: DateTime<Utc>,
    /// After this the session is no longer followed.
    pub follow_until: DateTime<Utc>,
    /// A restart: follow the job's running session, never start the job.
    pub resume: bool,
    /// With `[ha]`: re-checked right before every start, which the retries may make after the
    /// replica stepped down.
    pub fence: Option<Arc<dyn crate::ha::LeaderElector>>,
}

/// Says something about a run while it goes on (a failed attempt): the cycles' detail.
pub type Note = Box<dyn Fn(String) + Send + Sync>;

/// Starts the job and follows its session to `Stopped`.
pub async fn follow_veeam(
    run: VeeamRun,
    clock: Arc<dyn Clock>,
    journal: Arc<Journal>,
    note: Note,
    mut cancel: watch::Receiver<bool>,
) -> Report {
    let client = match &run.client {
        Ok(c) => c.clone(),
        Err(e) => {
            return Report {
                result: Some(CycleResult::Failed),
                detail: e.clone(),
                ended_at: clock.now(),
            }
        }
    };
    let journal_action = |what: ActionKind, result: ActionOutcome, detail: &str| {
        for id in &run.cycles {
            if let Err(e) =
                journal.record_action(Some(id), clock.now(), what, &run.job, result, detail)
            {
                tracing::error!(cycle = %id, job = %run.job, "journal write failed for {}: {e}", what.as_str());
            }
        }
    };
    if run.resume {
        return resume(&run, &client, &clock, &journal, &note, cancel).await;
    }
    let (job, session) =
        match start_job(&run, &client, &clock, &journal_action, &note, &mut cancel).await {
            Ok(started) => started,
            Err(report) => return report,
        };
    follow(&run, &client, job, session, &clock, &journal, &note, cancel).await
}

/// A restart: follows the job's running session again (never starts the job).
async fn resume(
    run: &VeeamRun,
    client: &VeeamClient,
    clock: &Arc<dyn Clock>,
    journal: &Journal,
    note: &Note,
    cancel: watch::Receiver<bool>,
) -> Report {
    let first = run.cycles.first().cloned().unwrap_or_default();
    let fail = |detail: String| Report {
        result: Some(CycleResult::Failed),
        detail,
        ended_at: clock.now(),
    };
    let found = match client.find_job(&run.job).await {
        Ok(job) => client.running_session(&job).await.map(|s| (job, s)),
        Err(e) => Err(e),
    };
    match found {
        Ok((job, Some(session))) => {
            tracing::info!(server = %run.server, job = %job.name, cycle = %first,
                session = %session.id, "following the Veeam job's running session again");
            follow(run, client, job, session, clock, journal, note, cancel).await
        }
        Ok((job, None)) => fail(format!(
            "the agent stopped while Veeam job {:?} ran; it is no longer running and its outcome is unknown",
            job.name
        )),
        Err(e) => fail(format!(
            "the agent stopped while the Veeam job ran; its session cannot be found again: {}",
            error_chain(&e)
        )),
    }
}

/// Starts the job (or finds it running), retried with backoff while the start still fits; the
/// job and its session, or the failed run's report.
async fn start_job(
    run: &VeeamRun,
    client: &VeeamClient,
    clock: &Arc<dyn Clock>,
    journal_action: &(dyn Fn(ActionKind, ActionOutcome, &str) + Sync),
    note: &Note,
    cancel: &mut watch::Receiver<bool>,
) -> Result<(crate::veeam::Job, crate::veeam::Session), Report> {
    let first = run.cycles.first().cloned().unwrap_or_default();
    let fail = |detail: String| Report {
        result: Some(CycleResult::Failed),
        detail,
        ended_at: clock.now(),
    };
    let mut attempt = 0u32;
    loop {
        if let Some(Err(e)) = run.fence.as_ref().map(|f| f.check()) {
            tracing::warn!(server = %run.server, job = %run.job, cycle = %first,
                "Veeam job not started: {e}");
            journal_action(
                ActionKind::VeeamStart,
                ActionOutcome::NotLeader,
                &e.to_string(),
            );
            return Err(fail(format!("Veeam job not started: {e}")));
        }
        let outcome = match client.find_job(&run.job).await {
            Ok(job) => client.start_job(&job).await.map(|s| (job, s)),
            Err(e) => Err(e),
        };
        let e = match outcome {
            Ok((job, started)) => {
                let how = match &started {
                    crate::veeam::Started::New(_) => "started",
                    crate::veeam::Started::AlreadyRunning(_) => "already running: followed",
                };
                tracing::info!(server = %run.server, job = %job.name, cycle = %first,
                    session = %started.session().id, "Veeam job {how}");
                journal_action(
                    ActionKind::VeeamStart,
                    ActionOutcome::Ok,
                    &format!("session {}", started.session().id),
                );
                return Ok((job, started.session().clone()));
            }
            Err(e) => e,
        };
        let text = error_chain(&e);
        journal_action(ActionKind::VeeamStart, ActionOutcome::Error, &text);
        let now = clock.now();
        if permanent(&e) {
            tracing::error!(server = %run.server, job = %run.job, cycle = %first,
                "Veeam job not started: {text}");
            return Err(fail(format!("Veeam job not started: {text}")));
        }
        let wait = retry_after(attempt);
        attempt = attempt.saturating_add(1);
        if now + wait > run.start_by {
            tracing::error!(server = %run.server, job = %run.job, cycle = %first,
                attempts = attempt, "Veeam job not started, no retry fits before {}: {text}",
                run.start_by.to_rfc3339());
            return Err(fail(format!(
                "Veeam job not started after {attempt} attempt(s) (the last start that fits was {}): {text}",
                run.start_by.to_rfc3339()
            )));
        }
        tracing::error!(server = %run.server, job = %run.job, cycle = %first,
            attempt = attempt, retry_in_seconds = wait.num_seconds(),
            "Veeam job not started yet: {text}");
        note(format!(
            "Veeam job not started yet ({attempt} attempt(s), next at {}): {text}",
            (now + wait).to_rfc3339()
        ));
        tokio::select! {
            _ = clock.sleep_until(now + wait) => {}
            _ = cancel.changed() => return Err(fail("the agent stopped before the Veeam job started".into())),
        }
    }
}

/// Polls `session` of `job` until `Stopped` (or `follow_until`); its outcome.
#[allow(clippy::too_many_arguments)]
async fn follow(
    run: &VeeamRun,
    client: &VeeamClient,
    job: crate::veeam::Job,
    session: crate::veeam::Session,
    clock: &Arc<dyn Clock>,
    journal: &Journal,
    note: &Note,
    cancel: watch::Receiver<bool>,
) -> Report {
    match until_stopped(run, client, &job, session, clock, note, cancel).await {
        Ok(session) => stopped(run, &job, session, clock, journal),
        Err(report) => report,
    }
}

/// Polls the session until it stops: the stopped session, or the report of a run no longer
/// followed (past `follow_until`, or the agent stopping).
async fn until_stopped(
    run: &VeeamRun,
    client: &VeeamClient,
    job: &crate::veeam::Job,
    mut session: crate::veeam::Session,
    clock: &Arc<dyn Clock>,
    note: &Note,
    mut cancel: watch::Receiver<bool>,
) -> Result<crate::veeam::Session, Report> {
    let first = run.cycles.first().cloned().unwrap_or_default();
    let fail = |detail: String| Report {
        result: Some(CycleResult::Failed),
        detail,
        ended_at: clock.now(),
    };
    let mut failures = 0u32;
    let mut last_error = String::new();
    loop {
        if session.state == SessionState::Stopped {
            break;
        }
        let now = clock.now();
        if now >= run.follow_until {
            let why = if last_error.is_empty() {
                format!("still {}", session.state.as_str())
            } else {
                format!("not readable ({last_error})")
            };
            tracing::error!(server = %run.server, job = %job.name, cycle = %first,
                session = %session.id, "Veeam session {why} at {}: no longer followed", now.to_rfc3339());
            let result = if last_error.is_empty() {
                CycleResult::Overrun
            } else {
                CycleResult::Failed
            };
            return Err(Report {
                result: Some(result),
                detail: format!(
                    "Veeam session {} of job {:?} {why} at {}; no longer followed",
                    session.id,
                    job.name,
                    now.to_rfc3339()
                ),
                ended_at: now,
            });
        }
        let wait = if failures == 0 {
            POLL
        } else {
            retry_after(failures - 1)
        };
        tokio::select! {
            _ = clock.sleep_until((now + wait).min(run.follow_until)) => {}
            _ = cancel.changed() => return Err(fail(format!("the agent stopped while following Veeam session {}", session.id))),
        }
        match client.session(&job.name, &session.id).await {
            Ok(s) => {
                session = s;
                failures = 0;
                last_error.clear();
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                last_error = error_chain(&e);
                tracing::error!(server = %run.server, job = %job.name, cycle = %first,
                    session = %session.id, failures = failures,
                    "cannot read the Veeam session (retrying): {last_error}");
                note(format!(
                    "cannot read Veeam session {} ({failures} time(s), retrying): {last_error}",
                    session.id
                ));
            }
        }
    }
    Ok(session)
}

/// The report of a stopped session: its result (an overrun when it ended past `release_by`),
/// journaled for each cycle.
fn stopped(
    run: &VeeamRun,
    job: &crate::veeam::Job,
    session: crate::veeam::Session,
    clock: &Arc<dyn Clock>,
    journal: &Journal,
) -> Report {
    let first = run.cycles.first().cloned().unwrap_or_default();
    let ended_at = session
        .end_time
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| clock.now());
    let overran = ended_at > run.release_by;
    let result = match (&session.result, overran) {
        (Some(SessionResult::Failed), _) => Some(CycleResult::Failed),
        (Some(SessionResult::Success | SessionResult::Warning), false) => None,
        (Some(SessionResult::Success | SessionResult::Warning), true) => Some(CycleResult::Overrun),
        (_, _) => Some(CycleResult::Failed),
    };
    let verdict = session
        .result
        .as_ref()
        .map_or("no result".to_string(), |r| format!("{r:?}"));
    let mut detail = format!(
        "Veeam session {} of job {:?} stopped at {}: {verdict}",
        session.id,
        job.name,
        ended_at.to_rfc3339()
    );
    if let Some(m) = &session.message {
        detail.push_str(": ");
        detail.push_str(m);
    }
    if overran {
        detail.push_str(&format!(
            " (after the window's max, {})",
            run.release_by.to_rfc3339()
        ));
    }
    tracing::info!(server = %run.server, job = %job.name, cycle = %first, session = %session.id,
        "{detail}");
    for id in &run.cycles {
        if let Err(e) = journal.record_action(
            Some(id),
            clock.now(),
            ActionKind::VeeamSession,
            &run.job,
            ActionOutcome::of_result(result),
            &detail,
        ) {
            tracing::error!(cycle = %id, job = %run.job, "journal write failed for the Veeam session: {e}");
        }
    }
    Report {
        result,
        detail,
        ended_at,
    }
}

/// How far a cluster's clock may run behind the agent's when a tool's snapshot is matched to
/// the start that made it.
pub const CLOCK_SLACK: TimeDelta = TimeDelta::seconds(5);

/// The tool's snapshot of `cycle` in `inv`: the first snapshot on its volume matching a foreign
/// pattern, created from the cycle's planned start on (less [`CLOCK_SLACK`]; the tool is started
/// then or later), that no other cycle in `taken` claims.
pub fn attribute<'a>(
    cycle: &Cycle,
    inv: &'a Inventory,
    patterns: &[Regex],
    taken: &[(String, String, String)],
) -> Option<&'a crate::ontap::SnapshotInfo> {
    let from = cycle.create_at - CLOCK_SLACK;
    inv.volume_snapshots(&cycle.svm, &cycle.volume)
        .filter(|s| patterns.iter().any(|p| p.is_match(&s.name)))
        .filter(|s| s.create_time.with_timezone(&Utc) >= from)
        .filter(|s| {
            !taken
                .iter()
                .any(|(svm, vol, name)| *svm == s.svm && *vol == s.volume_name && *name == s.name)
        })
        .min_by_key(|s| s.create_time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::cycle::CycleState;
    use crate::ontap::SnapshotInfo;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn snap(name: &str, volume: &str, at: &str) -> SnapshotInfo {
        SnapshotInfo {
            uuid: format!("u-{name}").into(),
            name: name.into(),
            volume_uuid: "vu".into(),
            volume_name: volume.into(),
            svm: "svm1".into(),
            comment: Some("Veeam Backup".into()),
            create_time: t(at).fixed_offset(),
            owners: Vec::new(),
            size: None,
            snapmirror_label: None,
            snaplock_expiry: None,
        }
    }

    #[test]
    fn the_first_unclaimed_tool_snapshot_from_the_planned_start_is_the_cycles() {
        let inv = Inventory::sample(
            vec![
                // Older than the start less the slack: a previous run's.
                snap("VeeamSourceSnapshot_old", "vol", "2027-01-01T01:09:54Z"),
                snap("hourly.2027-01-01_0110", "vol", "2027-01-01T01:10:00Z"),
                snap(
                    "VeeamSourceSnapshot_other_volume",
                    "vol_b",
                    "2027-01-01T01:10:01Z",
                ),
                snap("VeeamSourceSnapshot_claimed", "vol", "2027-01-01T01:10:01Z"),
                snap("VeeamSourceSnapshot_later", "vol", "2027-01-01T01:10:30Z"),
                // Within the slack (the cluster's clock 4 s behind the agent's).
                snap("VeeamSourceSnapshot_ours", "vol", "2027-01-01T01:09:56Z"),
            ],
            Vec::new(),
            t("2027-01-01T01:11:00Z"),
        );
        let cycle = Cycle {
            volume: "vol".into(),
            backing_snapshot: String::new(),
            clones: Vec::new(),
            state: CycleState::Backup,
            ..Cycle::sample("abc", t("2027-01-01T01:10:00Z"))
        };
        let patterns = [Regex::new("(?i)^(VeeamSourceSnapshot|VeeamAUX)").unwrap()];
        let claimed = |names: &[&str]| -> Vec<(String, String, String)> {
            names
                .iter()
                .map(|n| ("svm1".to_string(), "vol".to_string(), n.to_string()))
                .collect()
        };
        let got = attribute(
            &cycle,
            &inv,
            &patterns,
            &claimed(&["VeeamSourceSnapshot_claimed"]),
        );
        assert_eq!(
            got.map(|s| s.name.as_str()),
            Some("VeeamSourceSnapshot_ours")
        );
        let taken = claimed(&["VeeamSourceSnapshot_claimed", "VeeamSourceSnapshot_ours"]);
        let got = attribute(&cycle, &inv, &patterns, &taken);
        assert_eq!(
            got.map(|s| s.name.as_str()),
            Some("VeeamSourceSnapshot_later")
        );
    }

    #[test]
    fn retries_double_up_to_two_minutes() {
        let got: Vec<i64> = (0..6).map(|a| retry_after(a).num_seconds()).collect();
        assert_eq!(got, vec![10, 20, 40, 80, 120, 120]);
        assert_eq!(retry_after(u32::MAX), MAX_RETRY);
    }
}
