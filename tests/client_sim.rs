//! The simulator driven through snapwarden's own REST client (`RestClient`, via the `Ontap`
//! trait) over loopback HTTP(S) with a manual clock: what the executor will rely on, end to end.
//!
//! `sim_clones.rs` and `sim_rest.rs` check the simulator's wire behaviour with raw HTTP; these
//! tests check that the client turns it into the right domain results and typed errors.

#[path = "sim_support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::TimeDelta;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use snapwarden::config::TlsVerify;
use snapwarden::ontap::{
    ClientOptions, JobPolling, LicenseState, LunInfo, NewSnapshot, Ontap, OntapError, RestClient,
    RetryPolicy, Secret, SnapshotInfo, VolumeRef, SNAPSHOT_LOCKED,
};
use snapwarden::sim::world::codes;
use snapwarden::sim::{start, ClockMode, ServeOptions, ServerHandle, SimClient, WorldSource};
use support::{Sim, PASSWORD, USER};

const START: &str = "2026-03-10T10:00:00Z";
/// The policy's name for the simulated cluster `c1`; every client error must carry it.
const POLICY_CLUSTER: &str = "cluster-a";
const BACKING: &str = "snapwarden.nightly.20260310T1000Z";
const COMMENT: &str = "snapwarden backing snapshot (window nightly)";

/// One cluster `c1` (UTC) with svm1/vol1 holding the mapped LUN lun1; vol1 keeps the built-in
/// `default` policy, whose hourly schedule fires at minute 5.
fn cluster(licenses: &str) -> String {
    format!(
        r#"
[[clusters]]
name = "c1"
timezone = "Etc/UTC"
licenses = [{licenses}]
[[clusters.svms]]
name = "svm1"
[[clusters.svms.igroups]]
name = "esx"
[[clusters.svms.volumes]]
name = "vol1"
luns = [{{ name = "lun1", mapped_to = ["esx"] }}]
"#
    )
}

/// Fast retries and job polls so fault tests take milliseconds, not seconds.
fn options(base_url: &str, cluster: &str, password: &str) -> ClientOptions {
    let mut o = ClientOptions::new(cluster, base_url, USER, Secret::new(password).unwrap());
    o.retry = RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
    };
    o.job_poll = JobPolling {
        initial: Duration::from_millis(1),
        max_interval: Duration::from_millis(10),
        bound: Duration::from_secs(5),
    };
    o.request_timeout = Duration::from_secs(10);
    o
}

fn client(sim: &Sim) -> RestClient {
    RestClient::new(options(&sim.base, POLICY_CLUSTER, PASSWORD)).unwrap()
}

async fn volume(ontap: &dyn Ontap, name: &str) -> VolumeRef {
    let v = ontap
        .volumes()
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("volume {name}"));
    VolumeRef {
        uuid: v.uuid,
        name: v.name,
        svm: v.svm,
    }
}

async fn snapshot(ontap: &dyn Ontap, name: &str) -> Option<SnapshotInfo> {
    ontap
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
}

async fn lun(ontap: &dyn Ontap, path: &str) -> Option<LunInfo> {
    ontap
        .luns()
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.name == path)
}

/// Asserts a typed "locked" refusal of the backing snapshot's delete, with its context.
fn assert_locked(err: &OntapError) {
    match err {
        OntapError::Api {
            cluster,
            target,
            code,
            message,
            http_status,
        } => {
            assert_eq!(cluster, POLICY_CLUSTER, "{err}");
            assert!(
                target.contains("vol1") && target.contains(BACKING),
                "{target}"
            );
            assert_eq!(*code, SNAPSHOT_LOCKED, "{err}");
            assert!(
                message.contains("has not expired or is locked"),
                "{message}"
            );
            // The refusal comes from the delete job, not from the HTTP answer.
            assert_eq!(*http_status, None, "{err}");
            assert!(!err.is_transient(), "{err}");
        }
        other => panic!("expected OntapError::Api, got {other:?}"),
    }
}

async fn set_faults(sim: &Sim, faults: Value) {
    let r = sim
        .call(Method::POST, "/simulator/v1/faults", Some(faults))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn clear_faults(sim: &Sim) {
    let r = sim.call(Method::DELETE, "/simulator/v1/faults", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn snaprestore_backing_snapshot_lifecycle() {
    let sim = Sim::start(&cluster("\"snaprestore\""), START).await;
    let ontap = client(&sim);
    let vol = volume(&ontap, "vol1").await;

    let created = ontap
        .create_snapshot(&vol, &NewSnapshot::new(BACKING, COMMENT))
        .await
        .unwrap();
    assert_eq!(created.name, BACKING);
    assert_eq!(created.comment.as_deref(), Some(COMMENT));
    assert_eq!(created.volume_name, "vol1");
    assert_eq!(created.svm, "svm1");
    assert_eq!(
        created.create_time,
        START
            .parse::<chrono::DateTime<chrono::FixedOffset>>()
            .unwrap()
    );

    let clone = ontap
        .clone_lun_snaprestore(&vol, BACKING, "/vol/vol1/lun1", "/vol/vol1/lun1_clone")
        .await
        .unwrap();
    assert_eq!(clone.name, "/vol/vol1/lun1_clone");
    assert!(clone.created_as_clone);
    let listed = lun(&ontap, "/vol/vol1/lun1_clone")
        .await
        .expect("clone listed");
    assert_eq!(listed, clone);
    assert_eq!(
        snapshot(&ontap, BACKING).await.unwrap().owners,
        ["lun_clone"]
    );

    ontap
        .delete_lun(&clone.uuid, &clone.name, false)
        .await
        .unwrap();
    assert!(lun(&ontap, "/vol/vol1/lun1_clone").await.is_none());
    // No scheduled snapshot captured the clone, so nothing pins the backing snapshot.
    ontap
        .delete_snapshot(&vol, &created.uuid.text(), BACKING)
        .await
        .unwrap();
    assert!(snapshot(&ontap, BACKING).await.is_none());
}

#[tokio::test]
async fn flexclone_backing_snapshot_lifecycle() {
    let sim = Sim::start(
        &format!(
            "[knobs]\nblock_sharing_seconds = 120\n{}",
            cluster("\"flexclone\"")
        ),
        START,
    )
    .await;
    let ontap = client(&sim);
    let vol = volume(&ontap, "vol1").await;

    let created = ontap
        .create_snapshot(&vol, &NewSnapshot::new(BACKING, COMMENT))
        .await
        .unwrap();
    let clone = ontap
        .clone_lun_flexclone(&vol, BACKING, "/vol/vol1/lun1", "/vol/vol1/lun1_clone")
        .await
        .unwrap();
    assert!(clone.created_as_clone);
    assert_eq!(clone.volume_name, "vol1");
    assert!(!clone.mapped);
    assert_eq!(
        snapshot(&ontap, BACKING).await.unwrap().owners,
        ["file_clone_dependent"]
    );

    // During block sharing the backing snapshot is locked.
    let err = ontap
        .delete_snapshot(&vol, &created.uuid.text(), BACKING)
        .await
        .unwrap_err();
    assert_locked(&err);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cluster {POLICY_CLUSTER}: ")) && text.contains("1638555"),
        "{text}"
    );

    // Block sharing ends by itself; the clone then no longer needs the snapshot.
    sim.handle
        .simulator()
        .advance(TimeDelta::seconds(121))
        .unwrap();
    assert!(snapshot(&ontap, BACKING).await.unwrap().owners.is_empty());
    ontap
        .delete_lun(&clone.uuid, &clone.name, false)
        .await
        .unwrap();
    ontap
        .delete_snapshot(&vol, &created.uuid.text(), BACKING)
        .await
        .unwrap();
    assert!(snapshot(&ontap, BACKING).await.is_none());
    assert!(lun(&ontap, "/vol/vol1/lun1_clone").await.is_none());
}

#[tokio::test]
async fn snaprestore_chain_lock_holds_until_the_pinning_snapshot_is_deleted() {
    let sim = Sim::start(&cluster("\"snaprestore\""), START).await;
    let ontap = client(&sim);
    let vol = volume(&ontap, "vol1").await;
    let backing = ontap
        .create_snapshot(&vol, &NewSnapshot::new(BACKING, COMMENT))
        .await
        .unwrap();
    let clone = ontap
        .clone_lun_snaprestore(&vol, BACKING, "/vol/vol1/lun1", "/vol/vol1/lun1_clone")
        .await
        .unwrap();

    // The default policy's hourly schedule fires at 10:05 while the clone exists.
    sim.advance(600).await;
    let scheduled = snapshot(&ontap, "hourly.2026-03-10_1005")
        .await
        .expect("scheduled snapshot taken at 10:05");
    assert!(!snapshot(&ontap, BACKING).await.unwrap().owners.is_empty());

    let err = ontap
        .delete_snapshot(&vol, &backing.uuid.text(), BACKING)
        .await
        .unwrap_err();
    assert_locked(&err);

    ontap
        .delete_lun(&clone.uuid, &clone.name, false)
        .await
        .unwrap();
    let err = ontap
        .delete_snapshot(&vol, &backing.uuid.text(), BACKING)
        .await
        .unwrap_err();
    assert_locked(&err);

    ontap
        .delete_snapshot(&vol, &scheduled.uuid.text(), &scheduled.name)
        .await
        .unwrap();
    ontap
        .delete_snapshot(&vol, &backing.uuid.text(), BACKING)
        .await
        .unwrap();
    let left: Vec<String> = ontap
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name.to_string())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn flexclone_without_its_license_is_refused() {
    let sim = Sim::start(&cluster("\"snaprestore\""), START).await;
    let ontap = client(&sim);
    let vol = volume(&ontap, "vol1").await;
    assert_eq!(
        ontap.license("flexclone").await.unwrap(),
        LicenseState::Unlicensed
    );
    assert_eq!(
        ontap.license("snaprestore").await.unwrap(),
        LicenseState::Compliant
    );
    ontap
        .create_snapshot(&vol, &NewSnapshot::new(BACKING, COMMENT))
        .await
        .unwrap();
    let err = ontap
        .clone_lun_flexclone(&vol, BACKING, "/vol/vol1/lun1", "/vol/vol1/lun1_clone")
        .await
        .unwrap_err();
    match &err {
        OntapError::Api {
            cluster,
            target,
            code,
            message,
            http_status,
        } => {
            assert_eq!(cluster, POLICY_CLUSTER);
            assert!(target.contains("/vol/vol1/lun1_clone"), "{target}");
            assert_eq!(*code, codes::LUN_CLONE_FAILED);
            assert!(message.contains("FlexClone license"), "{message}");
            assert_eq!(*http_status, Some(400));
        }
        other => panic!("expected OntapError::Api, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert!(lun(&ontap, "/vol/vol1/lun1_clone").await.is_none());

    let licensed = Sim::start(&cluster("\"flexclone\""), START).await;
    assert_eq!(
        client(&licensed).license("flexclone").await.unwrap(),
        LicenseState::Compliant
    );
}

#[tokio::test]
async fn wrong_password_is_an_auth_error_that_does_not_show_the_password() {
    let sim = Sim::start(&cluster(""), START).await;
    let wrong = "not-the-pw-7731";
    let ontap = RestClient::new(options(&sim.base, POLICY_CLUSTER, wrong)).unwrap();
    let err = ontap.cluster().await.unwrap_err();
    assert!(
        matches!(&err, OntapError::Auth { cluster, http_status: 401 } if cluster == POLICY_CLUSTER),
        "{err:?}"
    );
    assert!(!err.is_transient());
    for text in [err.to_string(), format!("{err:?}"), format!("{ontap:?}")] {
        assert!(!text.contains(wrong), "{text}");
    }
    // The right password works against the same server.
    assert_eq!(client(&sim).cluster().await.unwrap().name, "c1");
}

#[tokio::test]
async fn snapshots_pages_through_thousands_of_snapshots() {
    // Three volumes (a volume holds at most 1,023 snapshots) with a one-minute schedule keeping
    // 900 each: 2,700 snapshots after 15 hours, more than two pages of the client's default.
    let mut world = String::from(
        r#"
[[clusters]]
name = "c1"
[[clusters.schedules]]
name = "minutely"
interval = "PT1M"
[[clusters.snapshot_policies]]
name = "dense"
copies = [{ schedule = "minutely", count = 900 }]
[[clusters.svms]]
name = "svm1"
"#,
    );
    for v in ["vol1", "vol2", "vol3"] {
        world.push_str(&format!(
            "[[clusters.svms.volumes]]\nname = \"{v}\"\nsnapshot_policy = \"dense\"\n"
        ));
    }
    let sim = Sim::start(&world, START).await;
    sim.handle
        .simulator()
        .advance(TimeDelta::minutes(901))
        .unwrap();
    let held: BTreeSet<(String, String)> = sim.handle.simulator().with(|w| {
        w.clusters[0]
            .volumes
            .iter()
            .flat_map(|v| v.snapshots.iter().map(|s| (v.name.clone(), s.uuid.clone())))
            .collect()
    });
    assert_eq!(held.len(), 2_700);
    assert!(held.len() > 2 * snapwarden::ontap::DEFAULT_MAX_RECORDS as usize);

    // The simulator pages at the client's page size, so a complete list means `_links.next`
    // was followed (the client's `max_records` is checked by its unit tests).
    let first = sim
        .get(&format!(
            "/api/storage/volumes/*/snapshots?max_records={}",
            snapwarden::ontap::DEFAULT_MAX_RECORDS
        ))
        .await;
    assert_eq!(first["num_records"], 1_000);
    assert!(
        first["_links"]["next"]["href"].is_string(),
        "{}",
        first["_links"]
    );

    let listed = client(&sim).snapshots().await.unwrap();
    assert_eq!(listed.len(), held.len());
    let listed: BTreeSet<(String, String)> = listed
        .into_iter()
        .map(|s| (s.volume_name.to_string(), s.uuid.to_string()))
        .collect();
    assert_eq!(listed, held);
}

#[tokio::test]
async fn injected_faults_are_typed_retried_and_recovered_from() {
    let sim = Sim::start(&cluster("\"snaprestore\""), START).await;
    let ontap = client(&sim);
    let vol = volume(&ontap, "vol1").await;

    // Every /api request fails with 500: the client gives up after its bounded retries.
    set_faults(&sim, json!({ "error_rate": 1.0 })).await;
    let err = ontap.cluster().await.unwrap_err();
    match &err {
        OntapError::Api {
            cluster,
            code,
            http_status,
            ..
        } => {
            assert_eq!(cluster, POLICY_CLUSTER);
            assert_eq!(*code, codes::SIMULATED_FAULT);
            assert!(http_status.is_some_and(|s| s >= 500), "{err:?}");
        }
        other => panic!("expected OntapError::Api, got {other:?}"),
    }
    assert!(err.is_transient());
    // Half the requests fail: retries (up to 10 here) carry every call through.
    let mut o = options(&sim.base, POLICY_CLUSTER, PASSWORD);
    o.retry.max_retries = 10;
    let patient = RestClient::new(o).unwrap();
    set_faults(&sim, json!({ "error_rate": 0.5 })).await;
    for _ in 0..20 {
        assert_eq!(patient.cluster().await.unwrap().name, "c1");
    }
    clear_faults(&sim).await;
    assert_eq!(ontap.cluster().await.unwrap().name, "c1");

    // Dropped connections are transient transport errors, retried like 5xx.
    set_faults(&sim, json!({ "drop_rate": 1.0 })).await;
    let err = ontap.cluster().await.unwrap_err();
    assert!(
        matches!(&err, OntapError::Transport { cluster, .. } if cluster == POLICY_CLUSTER),
        "{err:?}"
    );
    assert!(err.is_transient());
    set_faults(&sim, json!({ "drop_rate": 0.5 })).await;
    for _ in 0..20 {
        assert_eq!(patient.volumes().await.unwrap().len(), 1);
    }
    clear_faults(&sim).await;

    // A failed job is final (not retried) and carries the job's code; nothing was created.
    set_faults(&sim, json!({ "job_failure_rate": 1.0 })).await;
    let err = ontap
        .create_snapshot(&vol, &NewSnapshot::new(BACKING, COMMENT))
        .await
        .unwrap_err();
    match &err {
        OntapError::Api {
            target,
            code,
            http_status,
            ..
        } => {
            assert!(
                target.contains("vol1") && target.contains(BACKING),
                "{target}"
            );
            assert_eq!(*code, codes::SIMULATED_FAULT);
            assert_eq!(*http_status, None);
        }
        other => panic!("expected OntapError::Api, got {other:?}"),
    }
    assert!(!err.is_transient());
    clear_faults(&sim).await;
    assert!(snapshot(&ontap, BACKING).await.is_none());
    ontap
        .create_snapshot(&vol, &NewSnapshot::new(BACKING, COMMENT))
        .await
        .unwrap();
}

/// How many more applied mutations the `drop_after_apply` fault will leave unanswered.
async fn drops_left(sim: &Sim) -> u64 {
    sim.get("/simulator/v1/faults").await["drop_after_apply"]
        .as_u64()
        .expect("drop_after_apply in the faults")
}

/// Arms the fault for the next applied mutation, runs `call`, and checks the fault was spent:
/// the cluster applied the request and its answer was lost, so the client had to retry.
async fn with_lost_answer<T>(sim: &Sim, call: impl std::future::Future<Output = T>) -> T {
    set_faults(sim, json!({ "drop_after_apply": 1 })).await;
    let result = call.await;
    assert_eq!(drops_left(sim).await, 0, "the answer was not dropped");
    result
}

/// Every create and delete the client makes, each once with its first answer lost after the
/// cluster applied it (`drop_after_apply`): the retry meets the first attempt's work and takes
/// it, so each call succeeds and leaves exactly one object (or none, for a delete) behind.
#[tokio::test]
async fn every_create_and_delete_survives_an_answer_lost_after_it_was_applied() {
    for async_mutations in [true, false] {
        let sim = Sim::start(
            &format!(
                "[knobs]\nasync_mutations = {async_mutations}\n{}",
                cluster("\"flexclone\", \"snaprestore\"")
            ),
            START,
        )
        .await;
        let ontap = client(&sim);
        let vol = volume(&ontap, "vol1").await;

        let created = with_lost_answer(
            &sim,
            ontap.create_snapshot(&vol, &NewSnapshot::new(BACKING, COMMENT)),
        )
        .await
        .unwrap();
        assert_eq!(created.name, BACKING);
        assert_eq!(created.comment.as_deref(), Some(COMMENT));
        let listed: Vec<SnapshotInfo> = ontap
            .snapshots()
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.name == BACKING)
            .collect();
        assert_eq!(
            listed,
            std::slice::from_ref(&created),
            "async_mutations = {async_mutations}"
        );

        let restored = with_lost_answer(
            &sim,
            ontap.clone_lun_snaprestore(&vol, BACKING, "/vol/vol1/lun1", "/vol/vol1/lun1_sr"),
        )
        .await
        .unwrap();
        assert_eq!(restored.name, "/vol/vol1/lun1_sr");
        assert!(restored.created_as_clone);
        assert_eq!(
            lun(&ontap, "/vol/vol1/lun1_sr").await.as_ref(),
            Some(&restored)
        );

        let flex = with_lost_answer(
            &sim,
            ontap.clone_lun_flexclone(&vol, BACKING, "/vol/vol1/lun1", "/vol/vol1/lun1_fc"),
        )
        .await
        .unwrap();
        assert_eq!(flex.name, "/vol/vol1/lun1_fc");
        assert!(flex.created_as_clone);
        assert_eq!(lun(&ontap, "/vol/vol1/lun1_fc").await.as_ref(), Some(&flex));
        // lun1, and one of each clone: no retry made a second object.
        assert_eq!(ontap.luns().await.unwrap().len(), 3);

        for clone in [&restored, &flex] {
            with_lost_answer(&sim, ontap.delete_lun(&clone.uuid, &clone.name, false))
                .await
                .unwrap();
            assert!(lun(&ontap, &clone.name).await.is_none());
        }
        // Block sharing of the FlexClone (60 s by default) must end before the delete.
        sim.handle
            .simulator()
            .advance(TimeDelta::seconds(61))
            .unwrap();
        with_lost_answer(
            &sim,
            ontap.delete_snapshot(&vol, &created.uuid.text(), BACKING),
        )
        .await
        .unwrap();
        assert!(snapshot(&ontap, BACKING).await.is_none());
    }
}

/// A same-named object that is not the one asked for is an error, never adopted — also with
/// the lost-answer fault armed (the first attempt fails, so nothing is dropped or retried).
#[tokio::test]
async fn a_same_named_object_that_is_something_else_is_never_adopted() {
    let sim = Sim::start(&cluster("\"flexclone\", \"snaprestore\""), START).await;
    let ontap = client(&sim);
    let vol = volume(&ontap, "vol1").await;
    let other = "snapwarden.nightly.20260309T1000Z";
    ontap
        .create_snapshot(&vol, &NewSnapshot::new(other, "made by someone else"))
        .await
        .unwrap();
    // Clones of the other snapshot at the paths the next calls ask for.
    ontap
        .clone_lun_snaprestore(&vol, other, "/vol/vol1/lun1", "/vol/vol1/lun1_sr")
        .await
        .unwrap();
    ontap
        .clone_lun_flexclone(&vol, other, "/vol/vol1/lun1", "/vol/vol1/lun1_fc")
        .await
        .unwrap();
    sim.handle
        .simulator()
        .advance(TimeDelta::seconds(61))
        .unwrap();
    ontap
        .create_snapshot(&vol, &NewSnapshot::new(BACKING, COMMENT))
        .await
        .unwrap();
    set_faults(&sim, json!({ "drop_after_apply": 1 })).await;

    // The same name with another comment.
    let err = ontap
        .create_snapshot(&vol, &NewSnapshot::new(other, COMMENT))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::SNAPSHOT_EXISTS), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("\"made by someone else\"") && text.contains("not this create's"),
        "{text}"
    );
    assert_eq!(
        snapshot(&ontap, other).await.unwrap().comment.as_deref(),
        Some("made by someone else")
    );

    // A clone path taken by a clone of another snapshot, by each clone method.
    let before = ontap.luns().await.unwrap();
    for err in [
        ontap
            .clone_lun_snaprestore(&vol, BACKING, "/vol/vol1/lun1", "/vol/vol1/lun1_sr")
            .await
            .unwrap_err(),
        ontap
            .clone_lun_flexclone(&vol, BACKING, "/vol/vol1/lun1", "/vol/vol1/lun1_fc")
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.code(), Some(codes::LUN_EXISTS), "{err}");
        assert!(err.to_string().contains("not taken as its clone"), "{err}");
    }
    assert_eq!(ontap.luns().await.unwrap(), before);
    // Every one of those calls was refused on its first attempt: nothing was applied, so the
    // fault is still armed.
    assert_eq!(drops_left(&sim).await, 1);
}

/// A TLS simulator with the test user and a manual clock.
async fn tls_sim() -> ServerHandle {
    start(ServeOptions {
        world: WorldSource::Toml(support::world(&cluster(""))),
        listen: "127.0.0.1:0".parse().unwrap(),
        clock: ClockMode::Manual,
        start: Some(START.parse().unwrap()),
        tls: true,
    })
    .await
    .expect("simulator starts")
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        text.push_str(": ");
        text.push_str(&e.to_string());
        current = e.source();
    }
    text
}

#[tokio::test]
async fn tls_with_the_pinned_certificate_and_a_wrong_pin() {
    let handle = tls_sim().await;
    assert!(handle.base_url().starts_with("https://"));
    let pin = handle.fingerprint_sha256().expect("TLS fingerprint");

    let mut o = options(&handle.base_url(), POLICY_CLUSTER, PASSWORD);
    o.tls = TlsVerify::PinSha256(pin);
    let ontap = RestClient::new(o).unwrap();
    assert_eq!(ontap.cluster().await.unwrap().name, "c1");
    assert_eq!(volume(&ontap, "vol1").await.svm, "svm1");

    let mut wrong = pin;
    wrong[0] ^= 0xff;
    let mut o = options(&handle.base_url(), POLICY_CLUSTER, PASSWORD);
    o.tls = TlsVerify::PinSha256(wrong);
    let err = RestClient::new(o).unwrap().cluster().await.unwrap_err();
    assert!(
        matches!(&err, OntapError::Transport { cluster, .. } if cluster == POLICY_CLUSTER),
        "{err:?}"
    );
    let text = error_chain(&err);
    assert!(text.contains("TLS certificate rejected"), "{text}");
    assert!(text.contains("does not match pin_sha256"), "{text}");
    handle.stop().await;
}

/// What a scenario observed, without the random uuids.
#[derive(Debug, PartialEq)]
struct Observed {
    created: (String, Option<String>, String, Vec<String>),
    listed: Vec<(String, Option<String>, String, Vec<String>)>,
    clone: (String, String, bool, bool),
    locked: (Option<u64>, String),
    after_delete: Vec<String>,
}

fn domain(s: &SnapshotInfo) -> (String, Option<String>, String, Vec<String>) {
    (
        s.name.to_string(),
        s.comment.as_deref().map(str::to_string),
        s.create_time.to_rfc3339(),
        s.owners.iter().map(|o| o.to_string()).collect(),
    )
}

/// Create a backing snapshot, clone from it, list, try to delete it while the clone exists, then
/// delete clone and snapshot and list again.
async fn scenario(ontap: &dyn Ontap) -> Observed {
    let vol = volume(ontap, "vol1").await;
    let created = ontap
        .create_snapshot(&vol, &NewSnapshot::new(BACKING, COMMENT))
        .await
        .unwrap();
    let clone = ontap
        .clone_lun_snaprestore(&vol, BACKING, "/vol/vol1/lun1", "/vol/vol1/lun1_clone")
        .await
        .unwrap();
    let mut listed: Vec<_> = ontap
        .snapshots()
        .await
        .unwrap()
        .iter()
        .map(domain)
        .collect();
    listed.sort();
    let err = ontap
        .delete_snapshot(&vol, &created.uuid.text(), BACKING)
        .await
        .unwrap_err();
    let locked = match &err {
        OntapError::Api {
            http_status,
            message,
            ..
        } => (
            err.code().filter(|_| http_status.is_none()),
            message.clone(),
        ),
        other => panic!("expected OntapError::Api, got {other:?}"),
    };
    ontap
        .delete_lun(&clone.uuid, &clone.name, false)
        .await
        .unwrap();
    ontap
        .delete_snapshot(&vol, &created.uuid.text(), BACKING)
        .await
        .unwrap();
    let mut after_delete: Vec<_> = ontap
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name.to_string())
        .collect();
    after_delete.sort();
    Observed {
        created: domain(&created),
        listed,
        clone: (
            clone.name,
            clone.volume_name,
            clone.mapped,
            clone.created_as_clone,
        ),
        locked,
        after_delete,
    }
}

#[tokio::test]
async fn rest_client_and_in_process_client_agree() {
    let over_http = Sim::start(&cluster("\"snaprestore\""), START).await;
    let in_process = Sim::start(&cluster("\"snaprestore\""), START).await;
    let rest = RestClient::new(options(&over_http.base, "c1", PASSWORD)).unwrap();
    let sim_client = SimClient::new(in_process.handle.simulator().clone(), "c1");

    let a = scenario(&rest).await;
    let b = scenario(&sim_client).await;
    assert_eq!(a, b);
    assert_eq!(a.locked.0, Some(SNAPSHOT_LOCKED));
    assert_eq!(a.created.0, BACKING);
    assert_eq!(a.created.1.as_deref(), Some(COMMENT));
    assert!(
        a.listed
            .iter()
            .any(|s| s.0 == BACKING && s.3 == ["lun_clone"]),
        "{:?}",
        a.listed
    );
    assert!(a.after_delete.is_empty(), "{:?}", a.after_delete);
}

/// A labelled create through the REST client: the label reaches the simulator and comes back in
/// the answer and in listings, the same as the in-process client reads it; a create whose answer
/// was lost after it was applied takes its own snapshot on the retry; a same-named snapshot with
/// another label is not adopted.
#[tokio::test]
async fn a_labelled_snapshot_over_rest_matches_the_in_process_client() {
    for async_mutations in [true, false] {
        let sim = Sim::start(
            &format!(
                "[knobs]\nasync_mutations = {async_mutations}\n{}",
                cluster("\"snaprestore\"")
            ),
            START,
        )
        .await;
        let ontap = client(&sim);
        let vol = volume(&ontap, "vol1").await;
        let name = "hourly.2026-03-09_1005";
        let new = NewSnapshot::new(name, COMMENT).labelled(Some("hourly"));
        let created = with_lost_answer(&sim, ontap.create_snapshot(&vol, &new))
            .await
            .unwrap();
        assert_eq!(created.snapmirror_label.as_deref(), Some("hourly"));
        let over_rest = snapshot(&ontap, name).await.unwrap();
        let in_process = SimClient::new(sim.handle.simulator().clone(), "c1");
        let seen = snapshot(&in_process, name).await.unwrap();
        assert_eq!(over_rest, created);
        assert_eq!(seen.snapmirror_label, over_rest.snapmirror_label);
        let err = ontap
            .create_snapshot(&vol, &new.labelled(Some("daily")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(codes::SNAPSHOT_EXISTS), "{err}");
        // In process: the same label goes in and comes out.
        let other = in_process
            .create_snapshot(
                &vol,
                &NewSnapshot::new("daily.2026-03-09_0010", COMMENT).labelled(Some("daily")),
            )
            .await
            .unwrap();
        assert_eq!(
            snapshot(&ontap, &other.name)
                .await
                .unwrap()
                .snapmirror_label,
            Some("daily".into())
        );
        sim.handle.stop().await;
    }
}

/// Two volumes of one SVM, each with a LUN; vol2 also has a second LUN.
fn two_volumes() -> String {
    r#"
[[clusters]]
name = "c1"
timezone = "Etc/UTC"
licenses = ["snaprestore"]
[[clusters.svms]]
name = "svm1"
[[clusters.svms.volumes]]
name = "vol1"
luns = [{ name = "lun1" }]
[[clusters.svms.volumes]]
name = "vol2"
luns = [{ name = "lun1" }, { name = "lun2" }]
"#
    .to_string()
}

/// Sorted by uuid, to compare listings whatever order each call returns them in.
fn by_uuid<T: Clone>(items: &[T], uuid: impl Fn(&T) -> String) -> Vec<T> {
    let mut v = items.to_vec();
    v.sort_by_key(|a| uuid(a));
    v
}

#[tokio::test]
async fn volumes_read_together_are_their_part_of_the_whole_listing() {
    let sim = Sim::start(&two_volumes(), START).await;
    let rest = client(&sim);
    let embedded = SimClient::new(sim.handle.simulator().clone(), "c1");
    for (i, ontap) in [&rest as &dyn Ontap, &embedded].into_iter().enumerate() {
        let vol1 = volume(ontap, "vol1").await;
        let name = format!("{BACKING}.{i}");
        ontap
            .create_snapshot(&vol1, &NewSnapshot::new(&name, COMMENT))
            .await
            .unwrap();
        ontap
            .clone_lun_snaprestore(&vol1, &name, "/vol/vol1/lun1", &format!("/vol/vol1/c{i}"))
            .await
            .unwrap();
        let snapshots = ontap.snapshots().await.unwrap();
        let luns = ontap.luns().await.unwrap();
        let both = [volume(ontap, "vol1").await, volume(ontap, "vol2").await];
        for read in [&both[..1], &both[1..], &both[..]] {
            let names: Vec<&str> = read.iter().map(|v| v.name.as_str()).collect();
            let together = ontap.volume_snapshots(read).await.unwrap();
            let part: Vec<SnapshotInfo> = snapshots
                .iter()
                .filter(|s| read.iter().any(|v| s.volume_uuid == v.uuid))
                .cloned()
                .collect();
            assert_eq!(
                part.is_empty(),
                names == ["vol2"],
                "only vol1 has snapshots"
            );
            assert_eq!(
                by_uuid(&together, |s| s.uuid.to_string()),
                by_uuid(&part, |s| s.uuid.to_string()),
                "{names:?}"
            );
            let together = ontap.volume_luns(read).await.unwrap();
            let part: Vec<LunInfo> = luns
                .iter()
                .filter(|l| names.contains(&l.volume_name.as_str()))
                .cloned()
                .collect();
            assert_eq!(
                by_uuid(&together, |l| l.uuid.clone()),
                by_uuid(&part, |l| l.uuid.clone()),
                "{names:?}"
            );
        }
        assert_eq!(
            ontap
                .volume_luns(&[volume(ontap, "vol1").await])
                .await
                .unwrap()
                .len(),
            2 + i,
            "vol1's LUN and the clones made so far"
        );
        assert!(ontap.volume_snapshots(&[]).await.unwrap().is_empty());
        assert!(ontap.volume_luns(&[]).await.unwrap().is_empty());
    }
}

/// A re-read of many volumes costs one request per 40 volumes and kind (snapshots, LUNs),
/// counted by the simulator, and gives each volume its own records; a volume gone since
/// matches nothing, as ONTAP's uuid filter does.
#[tokio::test]
async fn a_reread_of_many_volumes_takes_one_request_per_forty() {
    let mut world = String::from(
        "[[clusters]]\nname = \"c1\"\ntimezone = \"Etc/UTC\"\nlicenses = [\"snaprestore\"]\n[[clusters.svms]]\nname = \"svm1\"\n",
    );
    for i in 0..95 {
        world.push_str(&format!(
            "[[clusters.svms.volumes]]\nname = \"v{i}\"\nluns = [{{ name = \"lun1\" }}]\n"
        ));
    }
    let sim = Sim::start(&world, START).await;
    let ontap = client(&sim);
    let mut refs: Vec<VolumeRef> = ontap
        .volumes()
        .await
        .unwrap()
        .into_iter()
        .map(|v| VolumeRef {
            uuid: v.uuid,
            name: v.name,
            svm: v.svm,
        })
        .collect();
    assert_eq!(refs.len(), 95);
    for v in refs.iter().step_by(7) {
        ontap
            .create_snapshot(v, &NewSnapshot::new(BACKING, COMMENT))
            .await
            .unwrap();
    }
    refs.push(VolumeRef {
        uuid: "00000000-0000-0000-0000-00000000dead".into(),
        name: "gone".into(),
        svm: "svm1".into(),
    });
    let gets = || {
        sim.handle.simulator().requests().to_json()["get"]
            .as_u64()
            .unwrap()
    };
    let before = gets();
    let snapshots = ontap.volume_snapshots(&refs).await.unwrap();
    let luns = ontap.volume_luns(&refs).await.unwrap();
    // 96 volumes: three queries of at most 40 each, for each kind.
    assert_eq!(gets() - before, 6);
    let with_backing: BTreeSet<String> = refs.iter().step_by(7).map(|v| v.name.clone()).collect();
    let read: BTreeSet<String> = snapshots
        .iter()
        .filter(|s| s.name == BACKING)
        .map(|s| s.volume_name.to_string())
        .collect();
    assert_eq!(read, with_backing);
    assert_eq!(
        snapshots.len(),
        ontap.snapshots().await.unwrap().len(),
        "every snapshot of the 95 volumes, none of the gone one"
    );
    let lun_volumes: BTreeSet<String> = luns.iter().map(|l| l.volume_name.clone()).collect();
    assert_eq!(luns.len(), 95);
    assert_eq!(lun_volumes.len(), 95);
    assert!(!lun_volumes.contains("gone"));
    sim.handle.stop().await;
}

/// The agent's re-read of the volumes it changed gives the listing a whole read gives, as long
/// as nothing but its own calls changed the cluster (the rule the agent's refresh relies on).
#[tokio::test]
async fn a_listing_reread_for_the_changed_volumes_equals_a_whole_read() {
    use snapwarden::agent::discovery::{discover, reread, Depth};
    let sim = Sim::start(&two_volumes(), START).await;
    let ontap = client(&sim);
    let at = START.parse().unwrap();
    let mut kept = discover(&ontap, Depth::Full, at).await.unwrap();
    let vol1 = volume(&ontap, "vol1").await;
    ontap
        .create_snapshot(&vol1, &NewSnapshot::new(BACKING, COMMENT))
        .await
        .unwrap();
    let clone = ontap
        .clone_lun_snaprestore(&vol1, BACKING, "/vol/vol1/lun1", "/vol/vol1/lun1_clone")
        .await
        .unwrap();
    let changed = vec![("svm1".to_string(), "vol1".to_string())];
    assert!(reread(&ontap, &mut kept, &changed, at).await.unwrap());
    let whole = discover(&ontap, Depth::Full, at).await.unwrap();
    let snapshots = |i: &snapwarden::agent::discovery::Inventory| {
        by_uuid(&i.snapshots().cloned().collect::<Vec<_>>(), |s| {
            s.uuid.to_string()
        })
    };
    let luns = |i: &snapwarden::agent::discovery::Inventory| {
        by_uuid(&i.luns().cloned().collect::<Vec<_>>(), |l| l.uuid.clone())
    };
    assert_eq!(snapshots(&kept), snapshots(&whole));
    assert_eq!(luns(&kept), luns(&whole));
    assert!(kept.has_lun("svm1", "/vol/vol1/lun1_clone"));
    assert!(kept
        .volume_snapshots("svm1", "vol1")
        .any(|s| s.name == BACKING));
    // And after the clone and the snapshot are gone again.
    ontap
        .delete_lun(&clone.uuid, &clone.name, false)
        .await
        .unwrap();
    let backing = snapshot(&ontap, BACKING).await.unwrap();
    ontap
        .delete_snapshot(&vol1, &backing.uuid.text(), BACKING)
        .await
        .unwrap();
    assert!(reread(&ontap, &mut kept, &changed, at).await.unwrap());
    let whole = discover(&ontap, Depth::Full, at).await.unwrap();
    assert_eq!(snapshots(&kept), snapshots(&whole));
    assert_eq!(luns(&kept), luns(&whole));
    assert!(!kept.has_lun("svm1", "/vol/vol1/lun1_clone"));
    // A volume the listing does not know asks for a whole read instead.
    let unknown = vec![("svm1".to_string(), "vol9".to_string())];
    assert!(!reread(&ontap, &mut kept, &unknown, at).await.unwrap());
}
