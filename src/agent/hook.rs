//! Backup hooks: the program or webhook that reads the clones while a cycle is live.
//!
//! A command hook is started with the cycle in its environment and in a JSON file, in its own
//! process group; when it is still running at the deadline it gets SIGTERM, then SIGKILL after a
//! grace period, and the cycle is an overrun. On Linux it also gets SIGTERM when the agent dies
//! (even by SIGKILL): the next start releases the cycle's clones, and a hook must not outlive
//! them. A webhook hook is one POST of the cycle JSON whose
//! answer means "the backup is done": 2xx is success. A simulated hook (for `simulate` and tests)
//! takes a given time on the agent's clock.
//!
//! Waiting for a command runs on a blocking thread: in virtual time (paused tokio clock) that
//! holds the clock still while the real process runs, so a hook takes no virtual time unless it
//! is a simulated one; in real time it costs one thread per running hook.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use tokio::sync::watch;

use super::clock::Clock;
use super::cycle::{CloneLun, Cycle};

/// How a window's backup runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookSpec {
    /// Run a program (argv, no shell).
    Command {
        argv: Vec<String>,
        timeout: TimeDelta,
    },
    /// POST the cycle JSON; the answer ends the backup.
    Webhook { url: String, timeout: TimeDelta },
    /// Take `duration` on the agent's clock, then succeed or fail (`simulate`, tests).
    Simulated { duration: TimeDelta, succeed: bool },
}

/// How a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    Succeeded,
    /// It ran and reported failure (exit status, HTTP status), with what it said.
    Failed(String),
    /// Still running at the deadline: terminated.
    Overrun(String),
    /// It could not be started (missing program, bad URL).
    NotStarted(String),
    /// The agent is stopping: terminated like an overrun, but not the hook's fault.
    Interrupted(String),
}

/// The cycle as a hook sees it: the JSON file's content and the webhook's body.
#[derive(Debug, Clone, Serialize)]
pub struct CycleDescription<'a> {
    pub id: &'a str,
    pub window: &'a str,
    pub cluster: &'a str,
    pub svm: &'a str,
    pub volume: &'a str,
    pub backing_snapshot: &'a str,
    pub clone_method: &'a str,
    pub clones: &'a [CloneLun],
    pub created_at: Option<DateTime<Utc>>,
    pub release_by: DateTime<Utc>,
    /// The hook is terminated at this instant.
    pub hook_deadline: DateTime<Utc>,
}

impl<'a> CycleDescription<'a> {
    pub fn of(cycle: &'a Cycle, hook_deadline: DateTime<Utc>) -> CycleDescription<'a> {
        CycleDescription {
            id: &cycle.id,
            window: &cycle.window,
            cluster: &cycle.cluster,
            svm: &cycle.svm,
            volume: &cycle.volume,
            backing_snapshot: &cycle.backing_snapshot,
            clone_method: cycle.clone_kind.as_str(),
            clones: &cycle.clones,
            created_at: cycle.created_at,
            release_by: cycle.release_by,
            hook_deadline,
        }
    }
}

/// After SIGTERM, how long a hook gets to exit before SIGKILL.
pub const TERMINATE_GRACE: TimeDelta = TimeDelta::seconds(10);
/// Lines of a command's output kept for the log (the rest is dropped as it streams).
const OUTPUT_TAIL_LINES: usize = 20;
/// Longest output line kept, in bytes.
const OUTPUT_LINE_BYTES: usize = 512;
/// Bytes of a webhook's answer kept for the log.
const WEBHOOK_BODY_BYTES: usize = 512;

/// Runs a hook for `cycle` until it ends or `deadline` passes.
///
/// `work_dir` receives `<cycle id>.json` (removed afterwards). `http` serves webhooks. When
/// `cancel` turns true the hook is ended as at the deadline and reported as interrupted.
pub async fn run(
    spec: &HookSpec,
    cycle: &Cycle,
    deadline: DateTime<Utc>,
    clock: &Arc<dyn Clock>,
    work_dir: &Path,
    http: &reqwest::Client,
    cancel: watch::Receiver<bool>,
) -> HookOutcome {
    let description = CycleDescription::of(cycle, deadline);
    let stop = Stop {
        clock: clock.clone(),
        deadline,
        cancel,
    };
    match spec {
        HookSpec::Command { argv, .. } => run_command(argv, &description, stop, work_dir).await,
        HookSpec::Webhook { url, .. } => run_webhook(url, &description, stop, http).await,
        HookSpec::Simulated { duration, succeed } => {
            let end = (clock.now() + *duration).min(deadline);
            let ran_out = end == deadline && clock.now() + *duration > deadline;
            let mut stop = Stop {
                deadline: end,
                ..stop
            };
            if let Why::Cancelled = stop.reached().await {
                return HookOutcome::Interrupted("the agent is stopping".into());
            }
            if ran_out {
                HookOutcome::Overrun(format!(
                    "simulated backup of {}s still running at the deadline",
                    duration.num_seconds()
                ))
            } else if *succeed {
                HookOutcome::Succeeded
            } else {
                HookOutcome::Failed("simulated backup failed".into())
            }
        }
    }
}

/// Why a hook is being stopped.
enum Why {
    Deadline,
    Cancelled,
}

/// The deadline or the agent's stop, whichever comes first.
struct Stop {
    clock: Arc<dyn Clock>,
    deadline: DateTime<Utc>,
    cancel: watch::Receiver<bool>,
}

impl Stop {
    async fn reached(&mut self) -> Why {
        if *self.cancel.borrow() {
            return Why::Cancelled;
        }
        let cancelled = async {
            // An error means the sender is gone: nobody can cancel any more.
            let gone = self.cancel.wait_for(|c| *c).await.is_err();
            if gone {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = self.clock.sleep_until(self.deadline) => Why::Deadline,
            _ = cancelled => Why::Cancelled,
        }
    }
}

impl HookSpec {
    /// The hook's own time limit.
    pub fn timeout(&self) -> Option<TimeDelta> {
        match self {
            HookSpec::Command { timeout, .. } | HookSpec::Webhook { timeout, .. } => Some(*timeout),
            HookSpec::Simulated { .. } => None,
        }
    }

    /// What the hook is, for log lines.
    pub fn describe(&self) -> String {
        match self {
            HookSpec::Command { argv, .. } => format!("command {}", argv.join(" ")),
            HookSpec::Webhook { url, .. } => format!("webhook {url}"),
            HookSpec::Simulated { duration, .. } => {
                format!("simulated backup of {}s", duration.num_seconds())
            }
        }
    }
}

fn environment(d: &CycleDescription<'_>, json: &Path) -> Vec<(&'static str, String)> {
    let clones: Vec<&str> = d.clones.iter().map(|c| c.path.as_str()).collect();
    let sources: Vec<&str> = d.clones.iter().map(|c| c.source.as_str()).collect();
    vec![
        ("SNAPWARDEN_CYCLE_ID", d.id.to_string()),
        ("SNAPWARDEN_WINDOW", d.window.to_string()),
        ("SNAPWARDEN_CLUSTER", d.cluster.to_string()),
        ("SNAPWARDEN_SVM", d.svm.to_string()),
        ("SNAPWARDEN_VOLUME", d.volume.to_string()),
        (
            "SNAPWARDEN_BACKING_SNAPSHOT",
            d.backing_snapshot.to_string(),
        ),
        ("SNAPWARDEN_CLONE_METHOD", d.clone_method.to_string()),
        ("SNAPWARDEN_CLONES", clones.join("\n")),
        ("SNAPWARDEN_CLONE_SOURCES", sources.join("\n")),
        ("SNAPWARDEN_RELEASE_BY", d.release_by.to_rfc3339()),
        ("SNAPWARDEN_HOOK_DEADLINE", d.hook_deadline.to_rfc3339()),
        ("SNAPWARDEN_CYCLE_JSON", json.display().to_string()),
    ]
}

async fn run_command(
    argv: &[String],
    d: &CycleDescription<'_>,
    stop: Stop,
    work_dir: &Path,
) -> HookOutcome {
    let Some((program, args)) = argv.split_first() else {
        return HookOutcome::NotStarted("hook command is empty".into());
    };
    let json_path: PathBuf = work_dir.join(format!("{}.json", d.id));
    let body = match serde_json::to_vec_pretty(d) {
        Ok(b) => b,
        Err(e) => return HookOutcome::NotStarted(format!("cannot encode the cycle: {e}")),
    };
    if let Err(e) = std::fs::create_dir_all(work_dir).and_then(|_| std::fs::write(&json_path, body))
    {
        return HookOutcome::NotStarted(format!(
            "cannot write the cycle file {}: {e}",
            json_path.display()
        ));
    }
    let outcome = spawn_and_wait(program, args, d, &json_path, stop).await;
    let _ = std::fs::remove_file(&json_path);
    outcome
}

async fn spawn_and_wait(
    program: &str,
    args: &[String],
    d: &CycleDescription<'_>,
    json_path: &Path,
    mut stop: Stop,
) -> HookOutcome {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    let (reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return HookOutcome::NotStarted(format!("cannot create a pipe: {e}")),
    };
    let writer2 = match writer.try_clone() {
        Ok(w) => w,
        Err(e) => return HookOutcome::NotStarted(format!("cannot create a pipe: {e}")),
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(environment(d, json_path))
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .process_group(0);
    die_with_agent(&mut command);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return HookOutcome::NotStarted(format!("cannot start {program}: {e}"));
        }
    };
    // The parent's copies of the write end must go, or the reader never sees end of file.
    drop(command);
    let pid = child.id();
    let exited = Arc::new(AtomicBool::new(false));
    let exited_flag = exited.clone();
    let waiter = tokio::task::spawn_blocking(move || {
        let mut tail: VecDeque<String> = VecDeque::with_capacity(OUTPUT_TAIL_LINES);
        let mut lines = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            // Bounded line reads: a line without a newline is cut at OUTPUT_LINE_BYTES.
            match read_bounded_line(&mut lines, &mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    if tail.len() == OUTPUT_TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
                Err(_) => break,
            }
        }
        let status = child.wait();
        exited_flag.store(true, Ordering::SeqCst);
        (status, tail)
    });
    tokio::pin!(waiter);
    let why = tokio::select! {
        done = &mut waiter => return finished(program, done),
        why = stop.reached() => why,
    };
    let clock = stop.clock.clone();
    let deadline = stop.deadline;
    signal_group(pid, &exited, libc::SIGTERM);
    let grace_end = clock.now() + TERMINATE_GRACE;
    let mut killed = false;
    let done = tokio::select! {
        done = &mut waiter => Some(done),
        _ = clock.sleep_until(grace_end) => None,
    };
    let done = match done {
        Some(d) => Some(d),
        None => {
            signal_group(pid, &exited, libc::SIGKILL);
            killed = true;
            let bound = clock.now() + TERMINATE_GRACE;
            tokio::select! {
                done = &mut waiter => Some(done),
                _ = clock.sleep_until(bound) => None,
            }
        }
    };
    let how = if killed { "SIGKILL" } else { "SIGTERM" };
    let tail = done
        .and_then(|d| d.ok())
        .map(|(_, tail)| tail_text(&tail))
        .unwrap_or_default();
    match why {
        Why::Deadline => HookOutcome::Overrun(format!(
            "{program} was still running at the deadline {}; ended with {how}{tail}",
            deadline.to_rfc3339()
        )),
        Why::Cancelled => HookOutcome::Interrupted(format!(
            "the agent is stopping; {program} ended with {how}{tail}"
        )),
    }
}

/// Makes a hook die with the agent (Linux): the kernel sends it SIGTERM when the thread that
/// started it ends. Hooks start on a tokio worker thread, which lives as long as the runtime, so
/// in effect when the agent process dies, SIGKILL included. Without this a killed agent leaves
/// its hooks running, past their deadline and against clones the next start deletes. Only the
/// hook's own process gets the signal, not the other members of its process group.
fn die_with_agent(command: &mut std::process::Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let agent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and makes only
        // async-signal-safe calls (prctl, getppid); it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The agent died before the request took effect: do not start at all.
                if u32::try_from(libc::getppid()).ok() != Some(agent) {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// Reads one line of at most `OUTPUT_LINE_BYTES` into `buf` (the rest of a longer line is
/// skipped); returns the bytes consumed, 0 at end of file.
fn read_bounded_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = OUTPUT_LINE_BYTES.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        r.consume(take);
        consumed += take;
        if done {
            return Ok(consumed);
        }
    }
}

fn signal_group(pid: u32, exited: &AtomicBool, signal: libc::c_int) {
    if exited.load(Ordering::SeqCst) {
        return;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals the process group the hook leads
    // (`process_group(0)` made its pid the group id); no memory is touched.
    unsafe {
        libc::kill(-pid, signal);
    }
}

type Waited = (std::io::Result<std::process::ExitStatus>, VecDeque<String>);

fn finished(program: &str, done: Result<Waited, tokio::task::JoinError>) -> HookOutcome {
    match done {
        Ok((Ok(status), tail)) if status.success() => {
            let _ = tail;
            HookOutcome::Succeeded
        }
        Ok((Ok(status), tail)) => HookOutcome::Failed(format!(
            "{program} exited with {status}{}",
            tail_text(&tail)
        )),
        Ok((Err(e), _)) => HookOutcome::Failed(format!("waiting for {program}: {e}")),
        Err(e) => HookOutcome::Failed(format!("waiting for {program}: {e}")),
    }
}

fn tail_text(tail: &VecDeque<String>) -> String {
    let lines: Vec<&str> = tail
        .iter()
        .map(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    match lines.len() {
        0 => String::new(),
        _ => format!("; last output: {}", lines.join(" | ")),
    }
}

async fn run_webhook(
    url: &str,
    d: &CycleDescription<'_>,
    mut stop: Stop,
    http: &reqwest::Client,
) -> HookOutcome {
    let deadline = stop.deadline;
    let left = (deadline - stop.clock.now()).to_std().unwrap_or_default();
    if left.is_zero() {
        return HookOutcome::Overrun(format!("webhook {url}: the deadline had already passed"));
    }
    let request = http.post(url).json(d).timeout(left).send();
    let answer = tokio::select! {
        a = request => a,
        why = stop.reached() => {
            return match why {
                Why::Deadline => HookOutcome::Overrun(format!(
                    "webhook {url} did not answer by the deadline {}", deadline.to_rfc3339()
                )),
                Why::Cancelled => HookOutcome::Interrupted(format!(
                    "the agent is stopping; webhook {url} abandoned"
                )),
            };
        }
    };
    match answer {
        Ok(resp) if resp.status().is_success() => HookOutcome::Succeeded,
        Ok(resp) => {
            let status = resp.status();
            let body = read_capped(resp).await;
            HookOutcome::Failed(format!("webhook {url} answered HTTP {status}: {body}"))
        }
        Err(e) if e.is_timeout() => HookOutcome::Overrun(format!(
            "webhook {url} did not answer by the deadline {}",
            deadline.to_rfc3339()
        )),
        Err(e) if e.is_builder() => HookOutcome::NotStarted(format!("webhook {url}: {e}")),
        Err(e) => HookOutcome::Failed(format!("webhook {url}: {}", crate::error::error_chain(&e))),
    }
}

async fn read_capped(mut resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = WEBHOOK_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= WEBHOOK_BODY_BYTES {
            break;
        }
    }
    String::from_utf8_lossy(&body).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::clock::{SystemClock, TokioClock};
    use crate::agent::cycle::{CloneKind, CycleState};

    fn cycle() -> Cycle {
        let t: DateTime<Utc> = "2027-01-01T01:00:00Z".parse().unwrap();
        Cycle {
            id: "c-1".into(),
            window: "w".into(),
            cluster: "prod".into(),
            svm: "svm1".into(),
            volume: "vol".into(),
            window_start: t,
            create_at: t,
            release_by: t + TimeDelta::minutes(30),
            release_deadline: None,
            backing_snapshot: "snapwarden.w.20270101T010000Z".into(),
            clone_kind: CloneKind::SnapRestore,
            clones: vec![
                CloneLun {
                    source: "/vol/vol/lun0".into(),
                    path: "/vol/vol/snapwarden.w.20270101T010000Z.lun0".into(),
                },
                CloneLun {
                    source: "/vol/vol/lun1".into(),
                    path: "/vol/vol/snapwarden.w.20270101T010000Z.lun1".into(),
                },
            ],
            state: CycleState::Backup,
            result: None,
            created_at: Some(t),
            clones_created_at: Some(t),
            clones_deleted_at: None,
            released_at: None,
            detail: String::new(),
            replica: None,
        }
    }

    fn never() -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        // Keep the sender alive for the test's duration.
        std::mem::forget(tx);
        rx
    }

    fn sh(script: &str) -> HookSpec {
        HookSpec::Command {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            timeout: TimeDelta::minutes(1),
        }
    }

    async fn run_real(spec: &HookSpec, within: TimeDelta) -> (HookOutcome, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let deadline = clock.now() + within;
        let out = run(
            spec,
            &cycle(),
            deadline,
            &clock,
            dir.path(),
            &reqwest::Client::new(),
            never(),
        )
        .await;
        (out, dir)
    }

    #[tokio::test]
    async fn a_command_sees_the_cycle_in_its_environment_and_json_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("seen");
        let script = format!(
            "printf '%s|%s|%s|%s|%s\\n' \"$SNAPWARDEN_CLUSTER\" \"$SNAPWARDEN_SVM\" \"$SNAPWARDEN_VOLUME\" \
             \"$SNAPWARDEN_BACKING_SNAPSHOT\" \"$SNAPWARDEN_CLONE_METHOD\" > {o}; \
             printf '%s\\n' \"$SNAPWARDEN_CLONES\" >> {o}; cat \"$SNAPWARDEN_CYCLE_JSON\" > {o}.json",
            o = out.display()
        );
        let (outcome, work) = run_real(&sh(&script), TimeDelta::seconds(30)).await;
        assert_eq!(outcome, HookOutcome::Succeeded);
        let seen = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            seen,
            "prod|svm1|vol|snapwarden.w.20270101T010000Z|snaprestore\n\
             /vol/vol/snapwarden.w.20270101T010000Z.lun0\n\
             /vol/vol/snapwarden.w.20270101T010000Z.lun1\n"
        );
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{}.json", out.display())).unwrap(),
        )
        .unwrap();
        assert_eq!(json["backing_snapshot"], "snapwarden.w.20270101T010000Z");
        assert_eq!(json["clones"][1]["source"], "/vol/vol/lun1");
        assert_eq!(json["release_by"], "2027-01-01T01:30:00Z");
        // The cycle file is removed once the hook ended.
        assert!(!work.path().join("c-1.json").exists());
    }

    #[tokio::test]
    async fn a_failing_command_reports_its_status_and_last_output() {
        let (outcome, _d) = run_real(
            &sh("echo 'repository offline' >&2; exit 3"),
            TimeDelta::seconds(30),
        )
        .await;
        match outcome {
            HookOutcome::Failed(detail) => {
                assert!(detail.contains("exit status: 3"), "{detail}");
                assert!(detail.contains("repository offline"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_missing_program_is_not_started_and_named() {
        let spec = HookSpec::Command {
            argv: vec!["/nonexistent/run-backup".into()],
            timeout: TimeDelta::minutes(1),
        };
        let (outcome, _d) = run_real(&spec, TimeDelta::seconds(30)).await;
        match outcome {
            HookOutcome::NotStarted(detail) => {
                assert!(detail.contains("/nonexistent/run-backup"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_command_past_its_deadline_is_terminated_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let child_pid = dir.path().join("child.pid");
        // The hook starts a grandchild in its process group; both must be gone afterwards.
        let script = format!("sleep 300 & echo $! > {}; wait", child_pid.display());
        let started = std::time::Instant::now();
        let (outcome, _d) = run_real(&sh(&script), TimeDelta::seconds(1)).await;
        assert!(
            matches!(outcome, HookOutcome::Overrun(ref d) if d.contains("SIGTERM")),
            "{outcome:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(15));
        let pid: i32 = std::fs::read_to_string(&child_pid)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // kill(pid, 0) fails with ESRCH once the grandchild is gone (reaped by init).
        let mut gone = false;
        for _ in 0..200 {
            // SAFETY: signal 0 only checks whether the process exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(") Z "))
                    .unwrap_or(true);
            if !alive {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert!(gone, "grandchild {pid} survived the hook's termination");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_hook_dies_with_the_agent_that_started_it() {
        use std::os::unix::process::CommandExt;
        // The agent is a thread here: the kernel signals the hook when the thread that started
        // it ends, which is what happens to every thread of a SIGKILLed agent.
        let pid = std::thread::spawn(|| {
            let mut command = std::process::Command::new("sleep");
            command.arg("300").process_group(0);
            die_with_agent(&mut command);
            command.spawn().expect("sleep starts").id()
        })
        .join()
        .expect("the starting thread");
        let pid = libc::pid_t::try_from(pid).unwrap();
        let mut status = 0;
        let mut ended = false;
        for _ in 0..200 {
            // SAFETY: waitpid on this process's own child without blocking; `status` is a
            // valid out pointer.
            if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                ended = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        if !ended {
            // SAFETY: as above; the hook is ended and reaped so the test leaves nothing behind.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
        }
        assert!(ended, "the hook outlived the agent that started it");
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGTERM,
            "ended by SIGTERM, not {status:#x}"
        );
    }

    #[tokio::test]
    async fn a_command_that_ignores_sigterm_is_killed() {
        let (outcome, _d) = run_real(
            &sh("trap '' TERM; while :; do sleep 1; done"),
            TimeDelta::seconds(1),
        )
        .await;
        assert!(
            matches!(outcome, HookOutcome::Overrun(ref d) if d.contains("SIGKILL")),
            "{outcome:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_takes_no_virtual_time_and_a_simulated_backup_takes_its_duration() {
        let epoch: DateTime<Utc> = "2027-01-01T01:00:00Z".parse().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(epoch));
        let dir = tempfile::tempdir().unwrap();
        let http = reqwest::Client::new();
        let deadline = epoch + TimeDelta::minutes(30);
        let out = run(
            &sh("sleep 0.2"),
            &cycle(),
            deadline,
            &clock,
            dir.path(),
            &http,
            never(),
        )
        .await;
        assert_eq!(out, HookOutcome::Succeeded);
        assert!(
            clock.now() - epoch < TimeDelta::seconds(1),
            "{}",
            clock.now()
        );

        let ten = HookSpec::Simulated {
            duration: TimeDelta::minutes(10),
            succeed: true,
        };
        let start = clock.now();
        assert_eq!(
            run(&ten, &cycle(), deadline, &clock, dir.path(), &http, never()).await,
            HookOutcome::Succeeded
        );
        assert_eq!((clock.now() - start).num_minutes(), 10);

        let long = HookSpec::Simulated {
            duration: TimeDelta::hours(1),
            succeed: true,
        };
        let out = run(
            &long,
            &cycle(),
            deadline,
            &clock,
            dir.path(),
            &http,
            never(),
        )
        .await;
        assert!(matches!(out, HookOutcome::Overrun(_)), "{out:?}");
        assert!(clock.now() >= deadline);
    }

    #[tokio::test]
    async fn a_running_command_is_interrupted_when_the_agent_stops() {
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (tx, rx) = watch::channel(false);
        let deadline = clock.now() + TimeDelta::minutes(10);
        let spec = sh("sleep 300");
        let http = reqwest::Client::new();
        let c = cycle();
        let hook = run(&spec, &c, deadline, &clock, dir.path(), &http, rx);
        let stopper = async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            tx.send(true).unwrap();
            std::future::pending::<()>().await
        };
        let out = tokio::select! { o = hook => o, _ = stopper => unreachable!() };
        assert!(
            matches!(out, HookOutcome::Interrupted(ref d) if d.contains("stopping")),
            "{out:?}"
        );
    }

    #[test]
    fn long_output_lines_are_cut() {
        let text = format!("{}\nshort\n", "x".repeat(10_000));
        let mut r = BufReader::new(text.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(read_bounded_line(&mut r, &mut buf).unwrap(), 10_001);
        assert_eq!(buf.len(), OUTPUT_LINE_BYTES);
        buf.clear();
        read_bounded_line(&mut r, &mut buf).unwrap();
        assert_eq!(buf, b"short\n");
    }
}
