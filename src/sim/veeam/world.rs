//! The Veeam B&R simulator's state and operations: users and tokens, jobs, sessions, faults, and
//! what a running session does on the ONTAP side of the same simulated world.
//!
//! Synchronous and clock-free like `sim::world`: callers pass the world (and so its time) in. A
//! session, as Veeam runs a storage-snapshot job on NetApp (veeam-rest.md):
//! 1. at its start, a backing snapshot `VeeamSourceSnapshot_<job>_<n>` of each protected volume,
//!    then a LUN clone of each protected LUN from it: a FlexClone LUN when the cluster has the
//!    FlexClone license, else a SnapRestore-style clone (the kind that pins the snapshot);
//! 2. its duration (a fixed value or a range, drawn per session, plus the `slow_seconds` fault);
//! 3. at its end, the clones deleted, then the snapshot; a snapshot ONTAP refuses to delete
//!    (locked by a scheduled snapshot that captured the clone) stays, as in the real product, and
//!    the session ends with `Warning` and the refusal in its message.
//!
//! [`VeeamWorld::advance`] interleaves session ends with the ONTAP world's scheduled snapshots, so
//! a schedule firing after a session ended never sees its clone.
//!
//! Assumptions (the real server's behaviour is not documented for these; docs/veeam.md lists
//! them): the `x-api-version` is accepted when it has the `<major>.<minor>-rev<n>` form; a start
//! of a running job is refused with 400 `UnexpectedContent`; an unknown or expired token gets 401
//! `ExpiredToken`/`InvalidToken`; a failed session still deletes what it made.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::sim::World;

/// Access token lifetime: about 15 minutes (veeam-rest.md).
pub const TOKEN_SECONDS: i64 = 900;
/// Refresh token lifetime: about 14 days (veeam-rest.md).
pub const REFRESH_SECONDS: i64 = 14 * 86_400;
/// Sessions kept (oldest stopped ones dropped first), so a long run's memory stays bounded.
pub const MAX_SESSIONS: usize = 1000;
/// Tokens kept at most; the oldest go first.
pub const MAX_TOKENS: usize = 1000;

/// A volume (and its LUNs) a simulated job protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTarget {
    pub cluster: String,
    pub volume: String,
    /// Full LUN paths, `/vol/<volume>/<lun>`.
    pub luns: Vec<String>,
}

/// A simulated backup job.
///
/// Invariant: `duration_min <= duration_max`, both in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimJob {
    pub id: String,
    pub name: String,
    pub targets: Vec<SimTarget>,
    pub duration_min: u64,
    pub duration_max: u64,
}

/// Faults of the Veeam endpoint; all off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VeeamFaults {
    /// Every connection is dropped without an answer (the server is down).
    pub down: bool,
    /// Added to every session's duration.
    pub slow_seconds: u64,
    /// Sessions end `Failed` (after cleaning up, like a job whose target failed).
    pub fail_sessions: bool,
    /// Access tokens live this long instead of [`TOKEN_SECONDS`] (0: they are expired at once).
    pub token_seconds: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimState {
    Working,
    Stopped,
}

/// What a session made on one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub cluster: usize,
    pub volume: String,
    pub snapshot: String,
    /// Clone LUN paths.
    pub clones: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSession {
    pub id: String,
    pub job: usize,
    pub state: SimState,
    pub created: DateTime<Utc>,
    /// When the session stops (its planned end while working, its end once stopped).
    pub ends: DateTime<Utc>,
    /// `Success`, `Warning`, `Failed` once stopped; `None` while working.
    pub result: &'static str,
    pub message: String,
    pub made: Vec<Made>,
}

/// Why a Veeam call is refused: HTTP status, Veeam `errorCode`, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VeeamFault {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl VeeamFault {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> VeeamFault {
        VeeamFault {
            status,
            code,
            message: message.into(),
        }
    }
}

/// A granted token pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub access: String,
    pub refresh: String,
    pub expires_in: i64,
    pub issued: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

/// The Veeam server's state.
#[derive(Debug, Clone, Default)]
pub struct VeeamWorld {
    /// (name, password).
    pub users: Vec<(String, String)>,
    pub jobs: Vec<SimJob>,
    pub sessions: Vec<SimSession>,
    pub faults: VeeamFaults,
    /// access token → (user, expiry), in issue order.
    tokens: Vec<(String, String, DateTime<Utc>)>,
    /// refresh token → (user, expiry); removed when used (single use).
    refresh: HashMap<String, (String, DateTime<Utc>)>,
    /// Counter for names and the duration draw.
    serial: u64,
}

impl VeeamWorld {
    pub fn new(users: Vec<(String, String)>, jobs: Vec<SimJob>) -> VeeamWorld {
        VeeamWorld {
            users,
            jobs,
            ..VeeamWorld::default()
        }
    }

    fn next_serial(&mut self) -> u64 {
        self.serial = self.serial.wrapping_add(1);
        self.serial
    }

    fn grant(&mut self, user: &str, now: DateTime<Utc>) -> Grant {
        let lifetime = self.faults.token_seconds.unwrap_or(TOKEN_SECONDS).max(0);
        let expires = now
            .checked_add_signed(TimeDelta::seconds(lifetime))
            .unwrap_or(now);
        let access = format!("vat-{}", uuid::Uuid::new_v4());
        let refresh = format!("vrt-{}", uuid::Uuid::new_v4());
        if self.tokens.len() >= MAX_TOKENS {
            self.tokens.remove(0);
        }
        self.tokens.push((access.clone(), user.into(), expires));
        self.refresh.retain(|_, (_, until)| *until > now);
        let refresh_until = now
            .checked_add_signed(TimeDelta::seconds(REFRESH_SECONDS))
            .unwrap_or(now);
        if self.refresh.len() < MAX_TOKENS {
            self.refresh
                .insert(refresh.clone(), (user.into(), refresh_until));
        }
        Grant {
            access,
            refresh,
            expires_in: lifetime,
            issued: now,
            expires,
        }
    }

    /// `POST /api/oauth2/token` with the form's pairs.
    pub fn token(
        &mut self,
        form: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<Grant, VeeamFault> {
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        match get("grant_type") {
            Some("password") => {
                let (user, password) = (get("username"), get("password"));
                let ok = self
                    .users
                    .iter()
                    .any(|(u, p)| Some(u.as_str()) == user && Some(p.as_str()) == password);
                if !ok {
                    return Err(VeeamFault::new(
                        401,
                        "AccessDenied",
                        "Invalid user name or password",
                    ));
                }
                let user = user.unwrap_or_default().to_string();
                Ok(self.grant(&user, now))
            }
            Some("refresh_token") => {
                let Some(token) = get("refresh_token") else {
                    return Err(VeeamFault::new(400, "InvalidToken", "No refresh token"));
                };
                match self.refresh.remove(token) {
                    Some((user, until)) if until > now => Ok(self.grant(&user, now)),
                    Some(_) => Err(VeeamFault::new(
                        400,
                        "ExpiredToken",
                        "The refresh token has expired",
                    )),
                    None => Err(VeeamFault::new(
                        400,
                        "InvalidToken",
                        "The refresh token is not valid (refresh tokens are single use)",
                    )),
                }
            }
            _ => Err(VeeamFault::new(
                400,
                "UnexpectedContent",
                "grant_type must be password or refresh_token",
            )),
        }
    }

    /// Checks `Authorization: Bearer <token>`.
    pub fn authorize(&self, bearer: Option<&str>, now: DateTime<Utc>) -> Result<(), VeeamFault> {
        let Some(token) = bearer else {
            return Err(VeeamFault::new(401, "AccessDenied", "No bearer token"));
        };
        match self.tokens.iter().find(|(t, _, _)| t == token) {
            Some((_, _, until)) if *until > now => Ok(()),
            Some(_) => Err(VeeamFault::new(
                401,
                "ExpiredToken",
                "The access token has expired",
            )),
            None => Err(VeeamFault::new(
                401,
                "InvalidToken",
                "The access token is not valid",
            )),
        }
    }

    /// Ends every session due at or before `now` (in end order) on `world`.
    pub fn step(&mut self, world: &mut World) {
        let now = world.now();
        while let Some(i) = self.next_end().filter(|(_, at)| *at <= now).map(|(i, _)| i) {
            self.finish(world, i);
        }
    }

    /// Moves `world` to `to`, ending sessions at their instants between the world's scheduled
    /// snapshots.
    pub fn advance(&mut self, world: &mut World, to: DateTime<Utc>) {
        self.step(world);
        while let Some((i, at)) = self.next_end().filter(|(_, at)| *at <= to) {
            world.advance_to(at);
            self.finish(world, i);
        }
        world.advance_to(to);
    }

    /// The working session that ends first, and when.
    pub fn next_end(&self) -> Option<(usize, DateTime<Utc>)> {
        self.sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state == SimState::Working)
            .map(|(i, s)| (i, s.ends))
            .min_by_key(|(_, at)| *at)
    }

    /// `POST /api/v1/jobs/{id}/start`: the new session.
    pub fn start(&mut self, world: &mut World, job_id: &str) -> Result<SimSession, VeeamFault> {
        self.step(world);
        let now = world.now();
        let Some(ji) = self
            .jobs
            .iter()
            .position(|j| j.id.eq_ignore_ascii_case(job_id))
        else {
            return Err(VeeamFault::new(
                404,
                "NotFound",
                format!("Job {job_id} was not found"),
            ));
        };
        let job = self.jobs[ji].clone();
        if self
            .sessions
            .iter()
            .any(|s| s.job == ji && s.state == SimState::Working)
        {
            return Err(VeeamFault::new(
                400,
                "UnexpectedContent",
                format!("Job {} is already running", job.name),
            ));
        }
        let serial = self.next_serial();
        let span = job.duration_max.saturating_sub(job.duration_min);
        let drawn = job.duration_min.saturating_add(if span == 0 {
            0
        } else {
            serial % span.saturating_add(1)
        });
        let seconds = drawn.saturating_add(self.faults.slow_seconds);
        let ends = i64::try_from(seconds)
            .ok()
            .and_then(TimeDelta::try_seconds)
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut session = SimSession {
            id: uuid::Uuid::new_v4().to_string(),
            job: ji,
            state: SimState::Working,
            created: now,
            ends,
            result: "None",
            message: String::new(),
            made: Vec::new(),
        };
        let tag: String = job
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(64)
            .collect();
        for target in &job.targets {
            match make(
                world,
                target,
                &format!("VeeamSourceSnapshot_{tag}_{serial}"),
            ) {
                Ok(made) => session.made.push(made),
                Err((made, why)) => {
                    session.made.extend(made);
                    session.message = why;
                    session.result = "Failed";
                    session.ends = now;
                    break;
                }
            }
        }
        if self.sessions.len() >= MAX_SESSIONS {
            if let Some(old) = self
                .sessions
                .iter()
                .position(|s| s.state == SimState::Stopped)
            {
                self.sessions.remove(old);
            }
        }
        self.sessions.push(session);
        let i = self.sessions.len() - 1;
        if self.sessions[i].result == "Failed" {
            self.finish(world, i);
        }
        Ok(self.sessions[i].clone())
    }

    /// Ends session `i`: clones deleted, then snapshots; a refused snapshot delete stays.
    fn finish(&mut self, world: &mut World, i: usize) {
        let mut problems = Vec::new();
        for made in &self.sessions[i].made {
            if let Err(why) = unmake(world, made) {
                problems.push(why);
            }
        }
        let s = &mut self.sessions[i];
        s.state = SimState::Stopped;
        s.ends = world.now().max(s.created);
        if s.result == "Failed" {
            // The failure's message stays first.
        } else if self.faults.fail_sessions {
            s.result = "Failed";
            s.message = "Processing failed (simulated fault)".into();
        } else if problems.is_empty() {
            s.result = "Success";
        } else {
            s.result = "Warning";
        }
        for p in problems {
            if !s.message.is_empty() {
                s.message.push_str("; ");
            }
            s.message.push_str(&p);
        }
    }

    /// The session by id.
    pub fn session(&self, id: &str) -> Option<&SimSession> {
        self.sessions.iter().find(|s| s.id.eq_ignore_ascii_case(id))
    }
}

/// The backing snapshot and clones of one target; on failure, what was made and why.
fn make(
    world: &mut World,
    target: &SimTarget,
    snapshot: &str,
) -> Result<Made, (Vec<Made>, String)> {
    let fail = |made: Vec<Made>, what: String| Err((made, what));
    let ci = match world.cluster_index(&target.cluster) {
        Ok(ci) => ci,
        Err(e) => return fail(vec![], format!("cluster {}: {e}", target.cluster)),
    };
    let vi = match world.volume_by_name(ci, &target.volume) {
        Ok(vi) => vi,
        Err(e) => return fail(vec![], format!("volume {}: {e}", target.volume)),
    };
    if let Err(e) = world.create_snapshot(ci, vi, snapshot, Some("Veeam Backup".into())) {
        return fail(vec![], format!("Failed to create snapshot {snapshot}: {e}"));
    }
    let mut made = Made {
        cluster: ci,
        volume: target.volume.clone(),
        snapshot: snapshot.into(),
        clones: Vec::new(),
    };
    let flexclone = world.licensed(ci, "flexclone");
    for lun in &target.luns {
        let leaf = lun.rsplit('/').next().unwrap_or("lun");
        let dest = format!("/vol/{}/{leaf}_{snapshot}", target.volume);
        let cloned = if flexclone {
            let source = format!("/vol/{}/.snapshot/{snapshot}/{leaf}", target.volume);
            world.clone_lun_flexclone(ci, &source, &dest)
        } else {
            world.clone_lun_snaprestore(ci, vi, snapshot, lun, &dest)
        };
        match cloned {
            Ok(_) => made.clones.push(dest),
            Err(e) => return fail(vec![made], format!("Failed to clone LUN {lun}: {e}")),
        }
    }
    Ok(made)
}

/// Deletes a session's clones, then its snapshot; the first refusal, if any.
fn unmake(world: &mut World, made: &Made) -> Result<(), String> {
    let ci = made.cluster;
    for clone in &made.clones {
        if let Ok(li) = world.lun_index(ci, clone) {
            if let Err(e) = world.delete_lun(ci, li, true) {
                return Err(format!("Failed to delete LUN clone {clone}: {e}"));
            }
        }
    }
    let Ok(vi) = world.volume_by_name(ci, &made.volume) else {
        return Ok(());
    };
    let Ok(si) = world.snapshot_index(ci, vi, &made.snapshot) else {
        return Ok(());
    };
    world.delete_snapshot(ci, vi, si).map_err(|e| {
        format!(
            "Failed to delete snapshot {} of volume {}: {e}",
            made.snapshot, made.volume
        )
    })
}
