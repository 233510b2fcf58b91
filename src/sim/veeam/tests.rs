//! The Veeam simulator with the real client as its peer: jobs run against the ONTAP simulator's
//! world in manual time, tokens expire, faults bite, and a colliding scheduled snapshot locks the
//! backing snapshot as it does on a real system.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::rest::{start_server, VeeamServerHandle, VeeamSim};
use super::world::{SimJob, SimTarget, VeeamWorld};
use crate::ontap::Secret;
use crate::sim::config::WorldFile;
use crate::sim::{ClockMode, Simulator};
use crate::veeam::client::*;
use crate::veeam::*;

const JOB_ID: &str = "6a1f2c3d-0000-4000-8000-000000000001";

fn start_instant() -> DateTime<Utc> {
    "2026-06-01T10:06:00Z".parse().unwrap()
}

/// One cluster (UTC, hourly snapshots at :05 by the built-in `default` policy), volume `vol1`
/// with LUN `lun1`; `licenses` as given.
fn world(licenses: &str) -> crate::sim::World {
    let text = format!(
        r#"
[[clusters]]
name = "c1"
timezone = "UTC"
licenses = [{licenses}]
[[clusters.svms]]
name = "svm1"
[[clusters.svms.volumes]]
name = "vol1"
snapshot_policy = "default"
[[clusters.svms.volumes.luns]]
name = "lun1"
"#
    );
    WorldFile::parse(&text, "t")
        .unwrap()
        .build(start_instant(), "t")
        .unwrap()
}

/// A Veeam server with user svc / pw and job "SQL nightly" protecting c1/vol1 for `minutes`.
async fn setup(licenses: &str, minutes: u64) -> (Arc<VeeamSim>, VeeamServerHandle) {
    let sim = Simulator::new(world(licenses), ClockMode::Manual);
    let job = SimJob {
        id: JOB_ID.into(),
        name: "SQL nightly".into(),
        targets: vec![SimTarget {
            cluster: "c1".into(),
            volume: "vol1".into(),
            luns: vec!["/vol/vol1/lun1".into()],
        }],
        duration_min: minutes * 60,
        duration_max: minutes * 60,
    };
    let veeam = VeeamSim::new(
        sim,
        VeeamWorld::new(vec![("svc".into(), "pw".into())], vec![job]),
    );
    let server = start_server(veeam.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (veeam, server)
}

fn client(server: &VeeamServerHandle, password: &str) -> VeeamClient {
    let mut o = VeeamOptions::new(
        "vbr",
        server.base_url(),
        "svc",
        Secret::new(password).unwrap(),
    );
    o.polling = SessionPolling {
        interval: Duration::from_millis(1),
        bound: Duration::from_secs(5),
    };
    o.request_timeout = Duration::from_secs(10);
    VeeamClient::new(o).unwrap()
}

/// Snapshot names of c1/vol1, and LUN names of c1.
fn ontap(veeam: &VeeamSim) -> (Vec<String>, Vec<String>) {
    veeam.with(|_, w| {
        let c = &w.clusters[0];
        (
            c.volumes[0]
                .snapshots
                .iter()
                .map(|s| s.name.clone())
                .collect(),
            c.luns.iter().map(|l| l.name.clone()).collect(),
        )
    })
}

fn veeam_snapshots(names: &[String]) -> Vec<&String> {
    names
        .iter()
        .filter(|n| n.starts_with("VeeamSourceSnapshot_"))
        .collect()
}

#[tokio::test]
async fn a_job_in_a_gap_makes_its_snapshot_and_clone_then_removes_both() {
    let (veeam, server) = setup("\"snaprestore\"", 20).await;
    let c = client(&server, "pw");
    let job = c.find_job("SQL nightly").await.unwrap();
    let started = c.start_job(&job).await.unwrap();
    let Started::New(session) = started else {
        panic!("{started:?}")
    };
    assert_eq!(session.state, SessionState::Working);
    let (snaps, luns) = ontap(&veeam);
    assert_eq!(
        veeam_snapshots(&snaps),
        [&"VeeamSourceSnapshot_SQL_nightly_1".to_string()]
    );
    assert!(
        luns.contains(&"/vol/vol1/lun1_VeeamSourceSnapshot_SQL_nightly_1".to_string()),
        "{luns:?}"
    );
    // 10:06 → 10:27: the job (20 minutes) ends long before the hourly snapshot at 11:05.
    veeam.advance(TimeDelta::minutes(21)).unwrap();
    let done = c.wait_stopped("SQL nightly", &session.id).await.unwrap();
    assert_eq!(done.result, Some(SessionResult::Success));
    assert_eq!(done.end_time.as_deref(), Some("2026-06-01T10:26:00Z"));
    let (snaps, luns) = ontap(&veeam);
    assert!(veeam_snapshots(&snaps).is_empty(), "{snaps:?}");
    assert_eq!(luns, ["/vol/vol1/lun1"]);
    server.stop().await;
}

#[tokio::test]
async fn a_scheduled_snapshot_during_the_job_locks_the_backing_snapshot_which_stays() {
    let (veeam, server) = setup("\"snaprestore\"", 30).await;
    let c = client(&server, "pw");
    let job = c.find_job(JOB_ID).await.unwrap();
    veeam.advance(TimeDelta::minutes(55)).unwrap();
    let session = c.start_job(&job).await.unwrap().session().clone();
    // Started at 11:01: the hourly snapshot at 11:05 captures the clone; at 11:31 the clone goes
    // but the snapshot cannot.
    veeam.advance(TimeDelta::minutes(40)).unwrap();
    let done = c.wait_stopped("SQL nightly", &session.id).await.unwrap();
    assert_eq!(done.result, Some(SessionResult::Warning));
    let message = done.message.unwrap_or_default();
    assert!(
        message.starts_with(
            "Failed to delete snapshot VeeamSourceSnapshot_SQL_nightly_1 of volume vol1"
        ),
        "{message}"
    );
    let (snaps, luns) = ontap(&veeam);
    assert_eq!(veeam_snapshots(&snaps).len(), 1, "{snaps:?}");
    assert!(
        snaps.iter().any(|s| s == "hourly.2026-06-01_1105"),
        "{snaps:?}"
    );
    assert_eq!(luns, ["/vol/vol1/lun1"]);
    server.stop().await;
}

#[tokio::test]
async fn with_flexclone_a_scheduled_snapshot_does_not_lock_the_backing_snapshot() {
    let (veeam, server) = setup("\"snaprestore\", \"flexclone\"", 30).await;
    let c = client(&server, "pw");
    let job = c.find_job("SQL nightly").await.unwrap();
    veeam.advance(TimeDelta::minutes(55)).unwrap();
    let session = c.start_job(&job).await.unwrap().session().clone();
    // 11:01 → 11:31 across the 11:05 snapshot.
    veeam.advance(TimeDelta::minutes(40)).unwrap();
    let done = c.wait_stopped("SQL nightly", &session.id).await.unwrap();
    assert_eq!(done.result, Some(SessionResult::Success), "{done:?}");
    let (snaps, _) = ontap(&veeam);
    assert!(veeam_snapshots(&snaps).is_empty(), "{snaps:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_running_job_is_followed_not_started_again() {
    let (veeam, server) = setup("\"snaprestore\"", 20).await;
    let c = client(&server, "pw");
    let job = c.find_job("SQL nightly").await.unwrap();
    let first = c.start_job(&job).await.unwrap();
    let second = c.start_job(&job).await.unwrap();
    assert_eq!(second, Started::AlreadyRunning(second.session().clone()));
    assert_eq!(second.session().id, first.session().id);
    assert_eq!(veeam.with(|v, _| v.sessions.len()), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_token_that_expires_in_the_middle_of_a_job_is_replaced() {
    let (veeam, server) = setup("\"snaprestore\"", 20).await;
    veeam.with(|v, _| v.faults.token_seconds = Some(300));
    let c = client(&server, "pw");
    let job = c.find_job("SQL nightly").await.unwrap();
    let session = c.start_job(&job).await.unwrap().session().clone();
    // The server's clock passes the token's 5 minutes; the client's (real) clock does not.
    veeam.advance(TimeDelta::minutes(10)).unwrap();
    let mid = c.session("SQL nightly", &session.id).await.unwrap();
    assert_eq!(mid.state, SessionState::Working);
    assert_eq!(mid.progress_percent, Some(50));
    veeam.advance(TimeDelta::minutes(11)).unwrap();
    let done = c.wait_stopped("SQL nightly", &session.id).await.unwrap();
    assert_eq!(done.result, Some(SessionResult::Success));
    server.stop().await;
}

#[tokio::test]
async fn wrong_credentials_and_unknown_jobs_are_clear_errors() {
    let (_veeam, server) = setup("\"snaprestore\"", 20).await;
    let err = client(&server, "wrong")
        .find_job("SQL nightly")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, VeeamError::Auth { http_status: 401, error_code, .. } if error_code == "AccessDenied"),
        "{err}"
    );
    let err = client(&server, "pw")
        .find_job("Exchange")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Veeam server vbr: job \"Exchange\" does not exist (jobs: \"SQL nightly\")"
    );
    server.stop().await;
}

#[tokio::test]
async fn every_call_needs_an_api_version() {
    let (_veeam, server) = setup("\"snaprestore\"", 20).await;
    let answer = reqwest::Client::new()
        .post(format!("{}/api/oauth2/token", server.base_url()))
        .body("grant_type=password&username=svc&password=pw")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["errorCode"], "UnexpectedContent");
    // A newer revision is accepted.
    let mut o = VeeamOptions::new("vbr", server.base_url(), "svc", Secret::new("pw").unwrap());
    o.api_version = "1.3-rev1".into();
    VeeamClient::new(o)
        .unwrap()
        .find_job("SQL nightly")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn faults_server_down_failed_and_slow_sessions() {
    let (veeam, server) = setup("\"snaprestore\"", 20).await;
    let c = client(&server, "pw");
    let job = c.find_job("SQL nightly").await.unwrap();

    veeam.with(|v, _| v.faults.down = true);
    let err = c.start_job(&job).await.unwrap_err();
    assert!(matches!(err, VeeamError::Transport { .. }), "{err}");
    assert_eq!(veeam.with(|v, _| v.sessions.len()), 0);
    veeam.with(|v, _| v.faults.down = false);

    veeam.with(|v, _| v.faults.slow_seconds = 600);
    let session = c.start_job(&job).await.unwrap().session().clone();
    veeam.advance(TimeDelta::minutes(21)).unwrap();
    let slow = c.session("SQL nightly", &session.id).await.unwrap();
    assert_eq!(slow.state, SessionState::Working, "20 minutes + 10 slow");

    veeam.with(|v, _| v.faults.fail_sessions = true);
    veeam.advance(TimeDelta::minutes(10)).unwrap();
    let done = c.wait_stopped("SQL nightly", &session.id).await.unwrap();
    assert_eq!(done.result, Some(SessionResult::Failed));
    assert_eq!(
        done.message.as_deref(),
        Some("Processing failed (simulated fault)")
    );
    // A failed session still removed what it made.
    let (snaps, luns) = ontap(&veeam);
    assert!(veeam_snapshots(&snaps).is_empty(), "{snaps:?}");
    assert_eq!(luns, ["/vol/vol1/lun1"]);
    server.stop().await;
}

#[tokio::test]
async fn refresh_tokens_are_single_use() {
    let sim = Simulator::new(world("\"snaprestore\""), ClockMode::Manual);
    let veeam = VeeamSim::new(
        sim,
        VeeamWorld::new(vec![("svc".into(), "pw".into())], vec![]),
    );
    let form = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let grant = veeam
        .with(|v, w| {
            v.token(
                &form(&[
                    ("grant_type", "password"),
                    ("username", "svc"),
                    ("password", "pw"),
                ]),
                w.now(),
            )
        })
        .unwrap();
    let again = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &grant.refresh),
    ]);
    assert!(veeam.with(|v, w| v.token(&again, w.now())).is_ok());
    let second = veeam.with(|v, w| v.token(&again, w.now())).unwrap_err();
    assert_eq!((second.status, second.code), (400, "InvalidToken"));
}

/// One advance across the job's end and a later scheduled snapshot: the session ends at its own
/// instant, before the snapshot, so the snapshot never sees the clone (a world advanced first and
/// the session ended afterwards would have locked the backing snapshot).
#[tokio::test]
async fn sessions_end_at_their_instant_within_one_long_advance() {
    let (veeam, server) = setup("\"snaprestore\"", 20).await;
    let c = client(&server, "pw");
    let job = c.find_job("SQL nightly").await.unwrap();
    let session = c.start_job(&job).await.unwrap().session().clone();
    // 10:06 → 11:36 in one step: the job ends at 10:26, the hourly snapshot comes at 11:05.
    veeam.advance(TimeDelta::minutes(90)).unwrap();
    let done = c.wait_stopped("SQL nightly", &session.id).await.unwrap();
    assert_eq!(done.result, Some(SessionResult::Success), "{done:?}");
    assert_eq!(done.end_time.as_deref(), Some("2026-06-01T10:26:00Z"));
    let (snaps, _) = ontap(&veeam);
    assert_eq!(snaps, ["hourly.2026-06-01_1105"]);
    server.stop().await;
}

const SERVED_WORLD: &str = r#"
[[clusters]]
name = "c1"
timezone = "UTC"
licenses = ["snaprestore"]
[[clusters.svms]]
name = "svm1"
[[clusters.svms.volumes]]
name = "vol1"
[[clusters.svms.volumes.luns]]
name = "lun1"

[[veeam]]
name = "vbr"
users = [{ name = "svc", password = "pw" }]
[[veeam.jobs]]
name = "SQL nightly"
duration = "20m"
targets = [{ cluster = "c1", volume = "vol1", luns = ["lun1"] }]
"#;

fn serve_options(world: &str) -> crate::sim::ServeOptions {
    crate::sim::ServeOptions {
        world: crate::sim::WorldSource::Toml(world.into()),
        listen: "127.0.0.1:0".parse().unwrap(),
        clock: ClockMode::Manual,
        start: Some(start_instant()),
        tls: false,
    }
}

/// `simulator serve` serves a world file's `[[veeam]]` beside its clusters, acting on them.
#[tokio::test]
async fn simulator_serve_serves_the_worlds_veeam_servers() {
    let handle = crate::sim::start(serve_options(SERVED_WORLD))
        .await
        .unwrap();
    let servers = handle.veeam_servers();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].0, "vbr");
    assert_ne!(servers[0].1, handle.base_url(), "its own port");
    let mut o = VeeamOptions::new(
        "vbr",
        servers[0].1.clone(),
        "svc",
        Secret::new("pw").unwrap(),
    );
    o.polling.interval = Duration::from_millis(1);
    let c = VeeamClient::new(o).unwrap();
    let job = c.find_job("SQL nightly").await.unwrap();
    let session = c.start_job(&job).await.unwrap().session().clone();
    let snaps = handle.simulator().with(|w| {
        w.clusters[0].volumes[0]
            .snapshots
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    });
    assert_eq!(snaps, ["VeeamSourceSnapshot_SQL_nightly_1"]);
    let veeam = handle.veeam_sim("vbr").unwrap().clone();
    veeam.advance(TimeDelta::minutes(20)).unwrap();
    let done = c.wait_stopped("SQL nightly", &session.id).await.unwrap();
    assert_eq!(done.result, Some(SessionResult::Success));
    handle.stop().await;
}

#[tokio::test]
async fn a_veeam_job_must_protect_what_the_world_has() {
    let bad = SERVED_WORLD
        .replace("luns = [\"lun1\"]", "luns = [\"lun9\"]")
        .replace("duration = \"20m\"", "duration = \"8d\"");
    let err = crate::sim::start(serve_options(&bad)).await.unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "world: invalid simulator world:\n  - veeam.vbr.jobs.SQL nightly.duration: \"8d\" must be \
         between 1s and 7d\n  - veeam.vbr.jobs.SQL nightly.targets.c1/vol1: no LUN /vol/vol1/lun9"
    );
}

/// A policy `[[veeam]]` with the served certificate pinned: the client speaks TLS to the served
/// simulator through the ONTAP client's TLS settings; a wrong pin is refused.
#[tokio::test]
async fn a_policy_server_reaches_the_served_simulator_over_pinned_tls() {
    let mut opts = serve_options(SERVED_WORLD);
    opts.tls = true;
    let handle = crate::sim::start(opts).await.unwrap();
    let url = handle.veeam_servers()[0].1.clone();
    assert!(url.starts_with("https://"), "{url}");
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("vbr.pass");
    std::fs::write(&password, "pw\n").unwrap();
    let mut server = crate::config::VeeamServer {
        name: "vbr".into(),
        url,
        username: "svc".into(),
        password: Some(crate::config::SecretSource::File(password)),
        tls: crate::config::TlsVerify::PinSha256(handle.fingerprint_sha256().unwrap()),
        api_version: "1.1-rev0".into(),
    };
    let job = VeeamClient::from_server(&server)
        .unwrap()
        .find_job("SQL nightly")
        .await
        .unwrap();
    assert_eq!(job.name, "SQL nightly");
    server.tls = crate::config::TlsVerify::PinSha256([0; 32]);
    let err = VeeamClient::from_server(&server)
        .unwrap()
        .find_job("SQL nightly")
        .await
        .unwrap_err();
    assert!(matches!(err, VeeamError::Transport { .. }), "{err}");
    server.password = Some(crate::config::SecretSource::Env(
        "SNAPWARDEN_TEST_VBR_SURELY_UNSET".into(),
    ));
    let err = VeeamClient::from_server(&server).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Veeam server vbr: cannot load the password"
    );
    assert!(std::error::Error::source(&err)
        .is_some_and(|s| s.to_string().contains("SNAPWARDEN_TEST_VBR_SURELY_UNSET")));
    handle.stop().await;
}

/// A job with a duration range runs each session for a duration inside it (both ends included).
#[test]
fn session_durations_are_drawn_from_the_jobs_range() {
    let mut w = world("\"snaprestore\"");
    let job = SimJob {
        id: JOB_ID.into(),
        name: "ranged".into(),
        targets: vec![SimTarget {
            cluster: "c1".into(),
            volume: "vol1".into(),
            luns: vec!["/vol/vol1/lun1".into()],
        }],
        duration_min: 600,
        duration_max: 720,
    };
    let mut v = VeeamWorld::new(vec![], vec![job]);
    let mut seen = Vec::new();
    for _ in 0..5 {
        let s = v.start(&mut w, JOB_ID).unwrap();
        let seconds = (s.ends - s.created).num_seconds();
        assert!((600..=720).contains(&seconds), "{seconds}");
        seen.push(seconds);
        let end = s.ends;
        v.advance(&mut w, end);
    }
    assert!(seen.iter().any(|s| *s != seen[0]), "{seen:?}");
}
