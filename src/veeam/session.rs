//! What a Veeam server reports about jobs and sessions — `Job`, `Session` and its state and
//! result, what a job start did — and the JSON shapes they are read from (every text bounded).

use serde::Deserialize;

/// A job of `GET /api/v1/jobs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub name: String,
    /// Veeam's `type`, for example `Backup`.
    pub kind: String,
    pub is_disabled: bool,
}

/// A session's `state` (OpenAPI `ESessionState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    Stopped,
    Starting,
    Stopping,
    Working,
    Pausing,
    Resuming,
    WaitingTape,
    Idle,
    Postprocessing,
    WaitingRepository,
    /// A state newer than the specification; treated as still running.
    Other(String),
}

impl SessionState {
    fn parse(s: &str) -> SessionState {
        match s {
            "Stopped" => SessionState::Stopped,
            "Starting" => SessionState::Starting,
            "Stopping" => SessionState::Stopping,
            "Working" => SessionState::Working,
            "Pausing" => SessionState::Pausing,
            "Resuming" => SessionState::Resuming,
            "WaitingTape" => SessionState::WaitingTape,
            "Idle" => SessionState::Idle,
            "Postprocessing" => SessionState::Postprocessing,
            "WaitingRepository" => SessionState::WaitingRepository,
            other => SessionState::Other(bounded_text(other)),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            SessionState::Stopped => "Stopped",
            SessionState::Starting => "Starting",
            SessionState::Stopping => "Stopping",
            SessionState::Working => "Working",
            SessionState::Pausing => "Pausing",
            SessionState::Resuming => "Resuming",
            SessionState::WaitingTape => "WaitingTape",
            SessionState::Idle => "Idle",
            SessionState::Postprocessing => "Postprocessing",
            SessionState::WaitingRepository => "WaitingRepository",
            SessionState::Other(s) => s,
        }
    }
}

/// A session's `result.result` (OpenAPI `ESessionResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionResult {
    None,
    Success,
    Warning,
    Failed,
    Other(String),
}

impl SessionResult {
    fn parse(s: &str) -> SessionResult {
        match s {
            "None" => SessionResult::None,
            "Success" => SessionResult::Success,
            "Warning" => SessionResult::Warning,
            "Failed" => SessionResult::Failed,
            other => SessionResult::Other(bounded_text(other)),
        }
    }
}

/// A job session (`GET /api/v1/sessions/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub name: String,
    pub state: SessionState,
    /// The job the session runs (`resourceId`), when the server says.
    pub job_id: Option<String>,
    pub creation_time: String,
    pub end_time: Option<String>,
    pub progress_percent: Option<u32>,
    /// `result.result`; `None` when the server sent no result.
    pub result: Option<SessionResult>,
    /// `result.message`, at most [`MAX_TEXT`] characters.
    pub message: Option<String>,
}

/// How [`VeeamClient::start_job`](super::VeeamClient::start_job) got its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// The job was started by this call.
    New(Session),
    /// The job was already running: its session, and the job was not started again.
    AlreadyRunning(Session),
}

impl Started {
    pub fn session(&self) -> &Session {
        match self {
            Started::New(s) | Started::AlreadyRunning(s) => s,
        }
    }
}

/// Longest text kept from an answer (messages, names): a typo guard for log lines.
pub const MAX_TEXT: usize = 1000;

pub(super) fn bounded_text(s: &str) -> String {
    s.chars().take(MAX_TEXT).collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireJob {
    pub(super) id: String,
    pub(super) name: String,
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) is_disabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireSession {
    id: String,
    name: Option<String>,
    state: String,
    creation_time: Option<String>,
    end_time: Option<String>,
    progress_percent: Option<i64>,
    resource_id: Option<String>,
    result: Option<WireResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResult {
    result: Option<String>,
    message: Option<String>,
}

impl From<WireSession> for Session {
    fn from(w: WireSession) -> Session {
        let (result, message) = match w.result {
            Some(r) => (
                r.result.as_deref().map(SessionResult::parse),
                r.message
                    .as_deref()
                    .filter(|m| !m.is_empty())
                    .map(bounded_text),
            ),
            None => (None, None),
        };
        Session {
            id: bounded_text(&w.id),
            name: bounded_text(w.name.as_deref().unwrap_or("")),
            state: SessionState::parse(&w.state),
            job_id: w.resource_id.as_deref().map(bounded_text),
            creation_time: bounded_text(w.creation_time.as_deref().unwrap_or("")),
            end_time: w.end_time.as_deref().map(bounded_text),
            progress_percent: w
                .progress_percent
                .and_then(|p| u32::try_from(p.clamp(0, 100)).ok()),
            result,
            message,
        }
    }
}
