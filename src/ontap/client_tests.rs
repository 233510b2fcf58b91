//! Tests of `RestClient` against a fake ONTAP (wiremock on loopback) and a loopback TLS server.
//!
//! Every test installs `fields_guard`, which fails the test if any GET arrives without an
//! explicit `fields=` list (or with `fields=**`). Backoffs are a few milliseconds so the suite is fast.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{
    basic_auth, body_partial_json, method, path, query_param, query_param_is_missing,
};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

use super::client::{ClientOptions, JobPolling, RestClient, RetryPolicy};
use super::{
    LicenseState, NewSnapshot, Ontap, OntapError, Secret, VolumeRef, LUN_MAPPED, SNAPSHOT_LOCKED,
};
use crate::config::TlsVerify;
use crate::timeline::{CronSpec, Recurrence};

const SNAPSHOT_FIELDS: &str =
    "uuid,name,comment,create_time,owners,size,snapmirror_label,volume.uuid,volume.name,svm.name";
const LUN_FIELDS: &str =
    "uuid,name,svm.name,location.volume.name,status.mapped,clone.created_as_clone,space.size";

/// Matches a GET whose `fields=` is missing, empty or `**`.
struct GetWithoutExplicitFields;

impl Match for GetWithoutExplicitFields {
    fn matches(&self, request: &Request) -> bool {
        if request.method != wiremock::http::Method::GET {
            return false;
        }
        let fields = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "fields")
            .map(|(_, v)| v.into_owned());
        !matches!(fields, Some(f) if !f.is_empty() && !f.contains("**"))
    }
}

async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(GetWithoutExplicitFields)
        .respond_with(ResponseTemplate::new(599))
        .expect(0)
        .named("GET without explicit fields=")
        .with_priority(1)
        .mount(&server)
        .await;
    server
}

fn options(server: &MockServer) -> ClientOptions {
    let mut o = ClientOptions::new(
        "prod-a",
        server.uri(),
        "snapwarden",
        Secret::new("s3cret-pw").unwrap(),
    );
    o.retry = RetryPolicy {
        max_retries: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    };
    o.job_poll = JobPolling {
        initial: Duration::from_millis(2),
        max_interval: Duration::from_millis(10),
        bound: Duration::from_secs(5),
    };
    o.request_timeout = Duration::from_secs(10);
    o
}

fn client(server: &MockServer) -> RestClient {
    RestClient::new(options(server)).unwrap()
}

fn vol() -> VolumeRef {
    VolumeRef {
        uuid: "vol-uuid-1".into(),
        name: "vol_sql".into(),
        svm: "svm1".into(),
    }
}

fn snapshot_record(name: &str) -> serde_json::Value {
    json!({"uuid":"snap-uuid-1","name":name,"comment":"snapwarden","create_time":"2024-03-13T13:05:00-04:00",
           "owners":["lun_clone"],"size":122880,
           "volume":{"uuid":"vol-uuid-1","name":"vol_sql"},"svm":{"name":"svm1"}})
}

fn lun_record(name: &str, mapped: bool) -> serde_json::Value {
    json!({"uuid":"lun-uuid-9","name":name,"svm":{"name":"svm1"},
           "location":{"volume":{"name":"vol_sql"}},"status":{"mapped":mapped},
           "clone":{"created_as_clone":true}})
}

#[tokio::test]
async fn collection_follows_links_next_with_basic_auth() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/api/storage/volumes"))
        .and(query_param("fields", "uuid,name,svm.name,snapshot_policy.name"))
        .and(query_param("max_records", "1000"))
        .and(query_param_is_missing("start.uuid"))
        .and(basic_auth("snapwarden", "s3cret-pw"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "records":[
                {"uuid":"u1","name":"vol_a","svm":{"name":"svm1"},"snapshot_policy":{"name":"default"}},
                {"uuid":"u2","name":"vol_b","svm":{"name":"svm1"}}],
            "num_records":2,
            "_links":{"self":{"href":"/api/storage/volumes"},
                      "next":{"href":"/api/storage/volumes?fields=uuid,name,svm.name,snapshot_policy.name&start.uuid=u2"}}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/storage/volumes"))
        .and(query_param("start.uuid", "u2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "records":[{"uuid":"u3","name":"vol_c","svm":{"name":"svm2"},"snapshot_policy":{"name":"none"}}],
            "num_records":1,"_links":{"self":{"href":"/api/storage/volumes"}}})))
        .expect(1)
        .mount(&server)
        .await;

    let volumes = client(&server).volumes().await.unwrap();
    let names: Vec<_> = volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["vol_a", "vol_b", "vol_c"]);
    assert_eq!(volumes[0].snapshot_policy.as_deref(), Some("default"));
    assert_eq!(volumes[1].snapshot_policy, None);
    assert_eq!(volumes[2].svm, "svm2");
}

#[tokio::test]
async fn bulk_snapshots_and_luns_decode() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/api/storage/volumes/*/snapshots"))
        .and(query_param("fields", SNAPSHOT_FIELDS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "records":[snapshot_record("hourly.2024-03-13_1305")],"num_records":1})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/storage/luns"))
        .and(query_param("fields", LUN_FIELDS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "records":[lun_record("/vol/vol_sql/lun0", true),
                       {"uuid":"l2","name":"/vol/vol_sql/lun1","svm":{"name":"svm1"},
                        "location":{"volume":{"name":"vol_sql"}}}]})))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let snaps = c.snapshots().await.unwrap();
    assert_eq!(snaps.len(), 1);
    let s = &snaps[0];
    assert_eq!(s.volume_name, "vol_sql");
    assert_eq!(s.owners, ["lun_clone"]);
    assert_eq!(s.create_time.to_rfc3339(), "2024-03-13T13:05:00-04:00");
    assert_eq!(s.comment.as_deref(), Some("snapwarden"));
    let luns = c.luns().await.unwrap();
    assert!(luns[0].mapped && luns[0].created_as_clone);
    assert!(
        !luns[1].mapped && !luns[1].created_as_clone,
        "absent means false"
    );
}

#[tokio::test]
async fn envelope_error_with_string_code_is_typed_and_400_is_not_retried() {
    let server = server().await;
    Mock::given(method("DELETE"))
        .and(path(
            "/api/storage/volumes/vol-uuid-1/snapshots/snap-uuid-1",
        ))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error":{"message":"The snapshot does not exist.","code":"1638600","target":"uuid"}})))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .delete_snapshot(&vol(), "snap-uuid-1", "snapwarden.x")
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
            assert_eq!(cluster, "prod-a");
            assert_eq!(target, "volume vol_sql (svm svm1) snapshot snapwarden.x");
            assert_eq!(*code, 1_638_600);
            assert!(
                message.starts_with("The snapshot does not exist."),
                "{message}"
            );
            assert_eq!(*http_status, Some(400));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.is_transient());
}

#[tokio::test]
async fn create_snapshot_202_polls_job_through_running_then_reads_snapshot() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path("/api/storage/volumes/vol-uuid-1/snapshots"))
        .and(body_partial_json(
            json!({"name":"snapwarden.w.20240313T1700Z","comment":"made by snapwarden"}),
        ))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({
            "job":{"uuid":"job-1","_links":{"self":{"href":"/api/cluster/jobs/job-1"}}}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/cluster/jobs/job-1"))
        .and(query_param("fields", "uuid,state,code,message,error"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"uuid":"job-1","state":"running"})),
        )
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/cluster/jobs/job-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"uuid":"job-1","state":"success","code":0,"message":"success"}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/storage/volumes/vol-uuid-1/snapshots"))
        .and(query_param("name", "snapwarden.w.20240313T1700Z"))
        .and(query_param("fields", SNAPSHOT_FIELDS))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"records":[snapshot_record("snapwarden.w.20240313T1700Z")]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let snap = client(&server)
        .create_snapshot(
            &vol(),
            &NewSnapshot::new("snapwarden.w.20240313T1700Z", "made by snapwarden"),
        )
        .await
        .unwrap();
    assert_eq!(snap.name, "snapwarden.w.20240313T1700Z");
    assert_eq!(snap.uuid, "snap-uuid-1");
    assert_eq!(snap.volume_uuid, "vol-uuid-1");
}

/// With `return_records=true` the 202 carries the new snapshot: once its job succeeded, the
/// create takes it from the answer and never reads it back.
#[tokio::test]
async fn create_snapshot_takes_the_record_from_the_answer_without_reading_back() {
    let server = server().await;
    let name = "snapwarden.w.20240313T1700Z";
    let mut record = snapshot_record(name);
    record["comment"] = json!("made by snapwarden");
    Mock::given(method("POST"))
        .and(path("/api/storage/volumes/vol-uuid-1/snapshots"))
        .and(query_param("return_records", "true"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({
            "job":{"uuid":"job-1","_links":{"self":{"href":"/api/cluster/jobs/job-1"}}},
            "num_records":1,"records":[record]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/cluster/jobs/job-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"uuid":"job-1","state":"success","code":0,"message":"success"}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/storage/volumes/vol-uuid-1/snapshots"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let snap = client(&server)
        .create_snapshot(&vol(), &NewSnapshot::new(name, "made by snapwarden"))
        .await
        .unwrap();
    assert_eq!(snap.uuid, "snap-uuid-1");
    assert_eq!(snap.comment.as_deref(), Some("made by snapwarden"));
}

/// A record without the fields the agent relies on (here: only uuid and name, or another
/// comment) is not trusted: the create reads the snapshot back, as without records.
#[tokio::test]
async fn create_snapshot_reads_back_when_the_answer_record_is_incomplete() {
    let name = "snapwarden.w.20240313T1700Z";
    let mut other_comment = snapshot_record(name);
    other_comment["comment"] = json!("someone else's");
    for record in [json!({"uuid":"snap-uuid-1","name":name}), other_comment] {
        let server = server().await;
        Mock::given(method("POST"))
            .and(path("/api/storage/volumes/vol-uuid-1/snapshots"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "num_records":1,"records":[record]})))
            .expect(1)
            .mount(&server)
            .await;
        let mut back = snapshot_record(name);
        back["comment"] = json!("made by snapwarden");
        Mock::given(method("GET"))
            .and(path("/api/storage/volumes/vol-uuid-1/snapshots"))
            .and(query_param("name", name))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records":[back]})))
            .expect(1)
            .mount(&server)
            .await;
        let snap = client(&server)
            .create_snapshot(&vol(), &NewSnapshot::new(name, "made by snapwarden"))
            .await
            .unwrap();
        assert_eq!(snap.comment.as_deref(), Some("made by snapwarden"));
    }
}

/// Matches a request whose JSON body lacks a key.
struct BodyWithout(&'static str);

impl Match for BodyWithout {
    fn matches(&self, request: &Request) -> bool {
        serde_json::from_slice::<serde_json::Value>(&request.body)
            .is_ok_and(|b| b.get(self.0).is_none())
    }
}

/// A label goes into the POST body only when the create has one, and comes back in the
/// snapshot the create answers.
#[tokio::test]
async fn create_snapshot_sends_the_snapmirror_label_only_when_set() {
    let server = server().await;
    let mut labelled = snapshot_record("hourly.2024-03-13_1305");
    labelled["comment"] = json!("managed by snapwarden");
    labelled["snapmirror_label"] = json!("hourly");
    Mock::given(method("POST"))
        .and(path("/api/storage/volumes/vol-uuid-1/snapshots"))
        .and(body_partial_json(json!({"name":"hourly.2024-03-13_1305",
            "comment":"managed by snapwarden","snapmirror_label":"hourly"})))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"num_records":1,"records":[labelled]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut plain = snapshot_record("snapwarden.x");
    plain["comment"] = json!("snapwarden");
    Mock::given(method("POST"))
        .and(path("/api/storage/volumes/vol-uuid-1/snapshots"))
        .and(body_partial_json(json!({"name":"snapwarden.x"})))
        .and(BodyWithout("snapmirror_label"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"num_records":1,"records":[plain]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let new = NewSnapshot::new("hourly.2024-03-13_1305", "managed by snapwarden")
        .labelled(Some("hourly"));
    let snap = c.create_snapshot(&vol(), &new).await.unwrap();
    assert_eq!(snap.snapmirror_label.as_deref(), Some("hourly"));
    let snap = c
        .create_snapshot(&vol(), &NewSnapshot::new("snapwarden.x", "snapwarden"))
        .await
        .unwrap();
    assert_eq!(snap.snapmirror_label, None);
}

/// After "already exists" (525059) a labelled create takes the existing snapshot only when its
/// comment and its label are the ones asked for.
#[tokio::test]
async fn a_labelled_create_adopts_only_a_snapshot_with_its_label() {
    let server = server().await;
    let name = "hourly.2024-03-13_1305";
    Mock::given(method("POST"))
        .and(path("/api/storage/volumes/vol-uuid-1/snapshots"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({"error":{
            "code":"525059","message":"Snapshot copy \"hourly.2024-03-13_1305\" already exists."}})))
        .expect(3)
        .mount(&server)
        .await;
    let mut existing = snapshot_record(name);
    existing["snapmirror_label"] = json!("hourly");
    Mock::given(method("GET"))
        .and(path("/api/storage/volumes/vol-uuid-1/snapshots"))
        .and(query_param("name", name))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records":[existing]})))
        .expect(3)
        .mount(&server)
        .await;
    let c = client(&server);
    let asked = NewSnapshot::new(name, "snapwarden");
    let snap = c
        .create_snapshot(&vol(), &asked.labelled(Some("hourly")))
        .await
        .unwrap();
    assert_eq!(snap.snapmirror_label.as_deref(), Some("hourly"));
    for other in [Some("daily"), None] {
        let err = c
            .create_snapshot(&vol(), &asked.labelled(other))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(525_059), "{err}");
        assert!(err.to_string().contains("label \"hourly\""), "{err}");
    }
}

#[tokio::test]
async fn failed_job_integer_code_is_typed_and_not_transient() {
    let server = server().await;
    Mock::given(method("DELETE"))
        .and(path(
            "/api/storage/volumes/vol-uuid-1/snapshots/snap-uuid-1",
        ))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({
            "job":{"uuid":"job-2","_links":{"self":{"href":"/api/cluster/jobs/job-2"}}}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/cluster/jobs/job-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "uuid":"job-2","state":"failure","code":1638555,
            "message":"Snapshot copy \"snapwarden.x\" of volume \"vol_sql\" on Vserver \"svm1\" has not expired or is locked."})))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .delete_snapshot(&vol(), "snap-uuid-1", "snapwarden.x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(SNAPSHOT_LOCKED));
    assert!(!err.is_transient());
    match err {
        OntapError::Api {
            http_status,
            target,
            message,
            ..
        } => {
            assert_eq!(http_status, None);
            assert_eq!(target, "volume vol_sql (svm svm1) snapshot snapwarden.x");
            assert!(message.contains("has not expired or is locked"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn ok_answer_carrying_a_failed_job_is_an_error_without_polling() {
    let server = server().await;
    Mock::given(method("DELETE"))
        .and(path("/api/storage/luns/lun-uuid-9"))
        .and(query_param("allow_delete_while_mapped", "false"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "job":{"uuid":"job-3","state":"failure","code":1254197,"message":"The LUN is mapped"}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/cluster/jobs/job-3"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let err = client(&server)
        .delete_lun("lun-uuid-9", "/vol/vol_sql/clone0", false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(LUN_MAPPED));
    assert!(err.to_string().contains("lun /vol/vol_sql/clone0"), "{err}");
}

#[tokio::test]
async fn ok_answer_carrying_an_error_envelope_is_an_error() {
    let server = server().await;
    Mock::given(method("DELETE"))
        .and(path("/api/storage/luns/lun-uuid-9"))
        .and(query_param("allow_delete_while_mapped", "true"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"error":{"code":"5374876","message":"LUN not found"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .delete_lun("lun-uuid-9", "/vol/vol_sql/clone0", true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(5_374_876));
}

#[tokio::test]
async fn unauthorized_is_auth_and_not_retried() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/api/cluster"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(
                json!({"error":{"code":"6691623","message":"User is not authorized"}}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server).cluster().await.unwrap_err();
    assert!(
        matches!(&err, OntapError::Auth { cluster, http_status: 401 } if cluster == "prod-a"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("s3cret-pw"));
}

#[tokio::test]
async fn server_error_then_success_is_retried() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/api/cluster"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error":{"code":"1","message":"internal error"}})),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/cluster"))
        .and(query_param("fields", "name,uuid,version,timezone"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name":"cluster-a","uuid":"c-uuid",
            "version":{"full":"NetApp Release 9.14.1: …","generation":9,"major":14,"minor":1},
            "timezone":{"name":"America/New_York"}})))
        .expect(1)
        .mount(&server)
        .await;
    let info = client(&server).cluster().await.unwrap();
    assert_eq!(info.version, "9.14.1");
    assert_eq!(info.timezone, "America/New_York");
    assert_eq!(info.name, "cluster-a");
}

#[tokio::test]
async fn server_error_forever_stops_after_the_retry_bound() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/api/cluster/schedules"))
        .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
        .expect(4) // one try plus max_retries = 3
        .mount(&server)
        .await;
    let err = client(&server).schedules().await.unwrap_err();
    assert!(err.is_transient());
    assert!(
        matches!(
            err,
            OntapError::Api {
                http_status: Some(503),
                code: 0,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn job_that_never_ends_times_out() {
    let server = server().await;
    Mock::given(method("DELETE"))
        .and(path(
            "/api/storage/volumes/vol-uuid-1/snapshots/snap-uuid-1",
        ))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"job":{"uuid":"job-4"}})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/cluster/jobs/job-4"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"uuid":"job-4","state":"queued"})),
        )
        .mount(&server)
        .await;
    let mut o = options(&server);
    o.job_poll.bound = Duration::from_millis(150);
    let err = RestClient::new(o)
        .unwrap()
        .delete_snapshot(&vol(), "snap-uuid-1", "snapwarden.x")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OntapError::JobTimeout { job, target, .. }
            if job == "job-4" && target.ends_with("snapshot snapwarden.x")),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn license_states() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/api/cluster/licensing/licenses/flexclone"))
        .and(query_param("fields", "name,state"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"error":{"code":"4","message":"entry doesn't exist"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/cluster/licensing/licenses/snaprestore"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name":"snaprestore","state":"compliant"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    assert_eq!(
        c.license("flexclone").await.unwrap(),
        LicenseState::Unlicensed
    );
    assert_eq!(
        c.license("snaprestore").await.unwrap(),
        LicenseState::Compliant
    );
}

#[tokio::test]
async fn schedules_and_policies_decode() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/api/cluster/schedules"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records":[
            {"name":"hourly","type":"cron","cron":{"minutes":[5]}},
            {"name":"weekly","type":"cron","cron":{"minutes":[15],"hours":[0],"weekdays":[0],"days":[],"months":[]}},
            {"name":"5min","type":"interval","interval":"PT5M"}]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/storage/snapshot-policies"))
        .and(query_param("fields", "name,copies"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records":[
            {"name":"default","copies":[
                {"count":6,"schedule":{"name":"hourly"}},
                {"count":2,"prefix":"nightly","schedule":{"name":"daily"}}]}]})))
        .mount(&server)
        .await;
    let c = client(&server);
    let schedules = c.schedules().await.unwrap();
    assert_eq!(
        schedules[0].recurrence,
        Recurrence::Cron(CronSpec::from_lists(&[5], &[], &[], &[], &[]).unwrap())
    );
    assert_eq!(
        schedules[1].recurrence,
        Recurrence::Cron(CronSpec::from_lists(&[15], &[0], &[], &[0], &[]).unwrap())
    );
    assert!(matches!(
        schedules[2].recurrence,
        Recurrence::Interval { every, .. } if every.num_seconds() == 300
    ));
    let policies = c.snapshot_policies().await.unwrap();
    assert_eq!(policies[0].copies.len(), 2);
    assert_eq!(policies[0].copies[1].prefix.as_deref(), Some("nightly"));
    assert_eq!(policies[0].copies[0].count, 6);
}

#[tokio::test]
async fn flexclone_lun_posts_clone_source_and_reads_the_clone() {
    let server = server().await;
    Mock::given(method("POST"))
        .and(path("/api/storage/luns"))
        .and(body_partial_json(json!({
            "svm":{"name":"svm1"},"name":"/vol/vol_sql/lun0_clone",
            "clone":{"source":{"name":"/vol/vol_sql/.snapshot/snapwarden.x/lun0"}}})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"num_records":1})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/storage/luns"))
        .and(query_param("name", "/vol/vol_sql/lun0_clone"))
        .and(query_param("svm.name", "svm1"))
        .and(query_param("fields", LUN_FIELDS))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"records":[lun_record("/vol/vol_sql/lun0_clone", false)]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let lun = client(&server)
        .clone_lun_flexclone(
            &vol(),
            "snapwarden.x",
            "/vol/vol_sql/lun0",
            "/vol/vol_sql/lun0_clone",
        )
        .await
        .unwrap();
    assert_eq!(lun.name, "/vol/vol_sql/lun0_clone");
    assert!(lun.created_as_clone);
}

#[tokio::test]
async fn snaprestore_clone_patches_restore_to_and_reads_the_clone() {
    let server = server().await;
    Mock::given(method("PATCH"))
        .and(path("/api/storage/volumes/vol-uuid-1"))
        .and(query_param("restore_to.snapshot.name", "snapwarden.x"))
        .and(query_param("restore_to.path", "/lun0"))
        .and(query_param("restore_to.restore_path", "/lun0_clone"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"job":{"uuid":"job-5"}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/cluster/jobs/job-5"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"uuid":"job-5","state":"success"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/storage/luns"))
        .and(query_param("name", "/vol/vol_sql/lun0_clone"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"records":[lun_record("/vol/vol_sql/lun0_clone", false)]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let lun = client(&server)
        .clone_lun_snaprestore(&vol(), "snapwarden.x", "lun0", "/vol/vol_sql/lun0_clone")
        .await
        .unwrap();
    assert_eq!(lun.uuid, "lun-uuid-9");
}

#[tokio::test]
async fn concurrency_is_bounded_per_client() {
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/api/cluster/licensing/licenses/flexclone"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name":"flexclone","state":"compliant"}))
                .set_delay(Duration::from_millis(100)),
        )
        .expect(3)
        .mount(&server)
        .await;
    let mut o = options(&server);
    o.max_concurrency = 1;
    let c = RestClient::new(o).unwrap();
    let started = std::time::Instant::now();
    let (a, b, d) = tokio::join!(
        c.license("flexclone"),
        c.license("flexclone"),
        c.license("flexclone")
    );
    assert!(a.is_ok() && b.is_ok() && d.is_ok());
    // One at a time: three 100 ms answers cannot overlap.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn client_debug_never_shows_the_password() {
    let server = server().await;
    let c = client(&server);
    let text = format!("{c:?} {:?}", options(&server));
    assert!(!text.contains("s3cret-pw"), "{text}");
}

// ---- TLS against a loopback HTTPS server with an rcgen self-signed certificate ----

struct TlsServer {
    url: String,
    cert_der: Vec<u8>,
    cert_pem: String,
    handle: axum_server::Handle,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// Serves `GET /api/cluster` over HTTPS on 127.0.0.1 with a fresh self-signed certificate whose
/// SANs are `127.0.0.1` and `localhost`. `as_ca` marks it `CA:TRUE` (as ONTAP's own self-signed
/// certificates are); otherwise it is a plain end-entity certificate.
async fn tls_server(as_ca: bool) -> TlsServer {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    if as_ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    let cert = params.self_signed(&key).unwrap();
    let cert_der = cert.der().to_vec();
    let config = rustls::ServerConfig::builder_with_provider(super::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let app = axum::Router::new().route(
        "/api/cluster",
        axum::routing::get(|| async {
            axum::Json(json!({"name":"tls-cluster","uuid":"c1",
                "version":{"generation":9,"major":15,"minor":1},"timezone":{"name":"Etc/UTC"}}))
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)),
    )
    .handle(handle.clone());
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    TlsServer {
        url: format!("https://127.0.0.1:{port}"),
        cert_der,
        cert_pem: cert.pem(),
        handle,
    }
}

fn tls_client(url: &str, tls: TlsVerify) -> RestClient {
    let mut o = ClientOptions::new("tls", url, "u", Secret::new("p").unwrap());
    o.tls = tls;
    o.retry.initial_backoff = Duration::from_millis(1);
    o.retry.max_backoff = Duration::from_millis(2);
    RestClient::new(o).unwrap()
}

fn chain(err: &dyn std::error::Error) -> String {
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
async fn pinned_self_signed_certificate_is_accepted() {
    for as_ca in [false, true] {
        let srv = tls_server(as_ca).await;
        let pin = super::tls::fingerprint(&srv.cert_der);
        let info = tls_client(&srv.url, TlsVerify::PinSha256(pin))
            .cluster()
            .await
            .unwrap();
        assert_eq!(info.name, "tls-cluster");
        assert_eq!(info.version, "9.15.1");
    }
}

#[tokio::test]
async fn wrong_pin_is_rejected_with_a_clear_error() {
    let srv = tls_server(false).await;
    let mut o = ClientOptions::new("tls", srv.url.as_str(), "u", Secret::new("p").unwrap());
    o.tls = TlsVerify::PinSha256([0xab; 32]);
    // A retry would sleep 5 s: the quick failure below shows a rejected certificate is final.
    o.retry.initial_backoff = Duration::from_secs(5);
    o.retry.max_backoff = Duration::from_secs(5);
    let started = std::time::Instant::now();
    let err = RestClient::new(o).unwrap().cluster().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "retried a certificate rejection"
    );
    assert!(matches!(err, OntapError::Transport { .. }), "{err:?}");
    let text = chain(&err);
    assert!(text.contains("TLS certificate rejected"), "{text}");
    assert!(
        text.contains("does not match pin_sha256 ab:ab:ab"),
        "{text}"
    );
}

#[tokio::test]
async fn insecure_accepts_any_certificate() {
    let srv = tls_server(false).await;
    let info = tls_client(&srv.url, TlsVerify::Insecure)
        .cluster()
        .await
        .unwrap();
    assert_eq!(info.name, "tls-cluster");
}

/// Measured behaviour of `ca_file` holding the server's own self-signed certificate
/// (rustls 0.23.46, rustls-webpki 0.103):
/// - a plain self-signed end-entity certificate (no `CA:TRUE`) is **accepted**: webpki finds the
///   trust anchor by subject and checks the signature with its key;
/// - a self-signed certificate marked `CA:TRUE` is **rejected** with `CaUsedAsEndEntity`. This
///   is the case DESIGN §4 describes; `pin_sha256` accepts both (see
///   `pinned_self_signed_certificate_is_accepted`).
#[tokio::test]
async fn ca_file_with_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    for as_ca in [false, true] {
        let srv = tls_server(as_ca).await;
        let ca = dir.path().join(format!("ca-{as_ca}.pem"));
        std::fs::write(&ca, &srv.cert_pem).unwrap();
        let result = tls_client(&srv.url, TlsVerify::CaFile(ca)).cluster().await;
        if as_ca {
            let err = result.unwrap_err();
            let text = chain(&err);
            assert!(text.contains("CaUsedAsEndEntity"), "{text}");
        } else {
            assert_eq!(result.unwrap().name, "tls-cluster");
        }
    }
}

#[test]
fn ca_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let mut o = ClientOptions::new("c", "https://127.0.0.1:1", "u", Secret::new("p").unwrap());
    o.tls = TlsVerify::CaFile(empty.clone());
    let err = RestClient::new(o).unwrap_err();
    assert!(chain(&err).contains("empty.pem"), "{}", chain(&err));
}

// ---- construction from the policy, and logs ----

fn policy_cluster(
    endpoint: crate::config::Endpoint,
    password: Option<crate::config::SecretSource>,
) -> crate::config::Cluster {
    crate::config::Cluster {
        name: "prod-a".into(),
        endpoint,
        username: "snapwarden".into(),
        password,
        tls: TlsVerify::System,
        timezone: crate::config::ClusterTimezone::Auto,
        simulator: None,
    }
}

#[tokio::test]
async fn from_cluster_loads_the_password_file_and_applies_overrides() {
    use super::client::{ClientBuildError, ClientOverrides};
    use crate::config::{Endpoint, SecretSource};

    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/api/cluster/licensing/licenses/flexclone"))
        .and(basic_auth("snapwarden", "from-file"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name":"flexclone","state":"noncompliant"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "from-file\n").unwrap();
    let cluster = policy_cluster(Endpoint::Url(server.uri()), Some(SecretSource::File(pw)));
    let client = RestClient::from_cluster(
        &cluster,
        ClientOverrides {
            max_concurrency: Some(2),
            ..ClientOverrides::default()
        },
    )
    .unwrap();
    assert_eq!(client.cluster_name(), "prod-a");
    assert_eq!(
        client.license("flexclone").await.unwrap(),
        LicenseState::Noncompliant
    );

    assert!(matches!(
        RestClient::from_cluster(
            &cluster,
            ClientOverrides {
                max_records: Some(0),
                ..ClientOverrides::default()
            },
        ),
        Err(ClientBuildError::ZeroMaxRecords { .. })
    ));

    let sim = policy_cluster(Endpoint::Simulator, None);
    assert!(matches!(
        RestClient::from_cluster(&sim, ClientOverrides::default()),
        Err(ClientBuildError::SimulatorEndpoint { .. })
    ));
    let no_pw = policy_cluster(Endpoint::Url(server.uri()), None);
    assert!(matches!(
        RestClient::from_cluster(&no_pw, ClientOverrides::default()),
        Err(ClientBuildError::NoPassword { .. })
    ));
    let missing = policy_cluster(
        Endpoint::Url(server.uri()),
        Some(SecretSource::File(dir.path().join("absent"))),
    );
    let err = RestClient::from_cluster(&missing, ClientOverrides::default()).unwrap_err();
    assert!(chain(&err).contains("absent"), "{}", chain(&err));
    let userinfo = policy_cluster(
        Endpoint::Url("https://admin:pw@cluster.example".into()),
        Some(SecretSource::File(dir.path().join("pw"))),
    );
    assert!(matches!(
        RestClient::from_cluster(&userinfo, ClientOverrides::default()),
        Err(ClientBuildError::BadUrl { .. })
    ));
}

#[tokio::test]
async fn temporarily_locked_is_retried_and_existing_own_snapshot_is_taken() {
    let server = server().await;
    // First attempt: a transient "temporarily locked" refusal (retried although it is a 409).
    Mock::given(method("POST"))
        .and(path("/api/storage/volumes/vol-uuid-1/snapshots"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({"error":{
            "code":"2","message":"Volume vol_sql is temporarily locked by another operation"}})))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    // Second attempt: the first one had in fact created it.
    Mock::given(method("POST"))
        .and(path("/api/storage/volumes/vol-uuid-1/snapshots"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({"job":{
            "uuid":"job-6","state":"failure","code":525059,
            "message":"A snapshot with that name already exists"}})))
        .expect(2) // once per create_snapshot call
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/storage/volumes/vol-uuid-1/snapshots"))
        .and(query_param("name", "snapwarden.x"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"records":[snapshot_record("snapwarden.x")]})),
        )
        .expect(2)
        .mount(&server)
        .await;
    let c = client(&server);
    let snap = c
        .create_snapshot(&vol(), &NewSnapshot::new("snapwarden.x", "snapwarden"))
        .await
        .unwrap();
    assert_eq!(snap.uuid, "snap-uuid-1");
    // A different comment means someone else's snapshot: the error stands.
    let err = c
        .create_snapshot(&vol(), &NewSnapshot::new("snapwarden.x", "other"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(525_059));
}

/// One page of `/api/storage/volumes` with one volume and, when given, a `next` link.
fn volume_page(uuid: &str, next: Option<&str>) -> ResponseTemplate {
    let mut body = json!({"records":[{"uuid":uuid,"name":format!("vol_{uuid}"),"svm":{"name":"svm1"}}],
                          "num_records":1});
    if let Some(next) = next {
        body["_links"] = json!({"next":{"href":next}});
    }
    ResponseTemplate::new(200).set_body_json(body)
}

#[tokio::test]
async fn links_next_is_followed_only_to_the_endpoints_own_origin() {
    // Another origin, here the same host on another port: must never see a request (the
    // credentials travel with every request).
    let elsewhere = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(volume_page("stolen", None))
        .expect(0)
        .named("a request to another origin")
        .mount(&elsewhere)
        .await;
    let server = server().await;
    let own_port = server.address().port();
    for (case, next) in [
        (
            "another port",
            format!("{}/api/storage/volumes?start.uuid=u1", elsewhere.uri()),
        ),
        (
            "another scheme",
            format!("https://127.0.0.1:{own_port}/api/storage/volumes?start.uuid=u1"),
        ),
        (
            "another host",
            format!("http://localhost:{own_port}/api/storage/volumes?start.uuid=u1"),
        ),
        (
            "scheme-relative",
            format!("//localhost:{own_port}/api/storage/volumes?start.uuid=u1"),
        ),
    ] {
        server.reset().await;
        Mock::given(method("GET"))
            .and(path("/api/storage/volumes"))
            .respond_with(volume_page("u1", Some(&next)))
            .expect(1)
            .mount(&server)
            .await;
        let err = client(&server).volumes().await.unwrap_err();
        match &err {
            OntapError::Decode {
                cluster, detail, ..
            } => {
                assert_eq!(cluster, "prod-a", "{case}");
                assert!(
                    detail.contains("leaves the endpoint") && detail.contains(&next),
                    "{case}: {detail}"
                );
            }
            other => panic!("{case}: expected OntapError::Decode, got {other:?}"),
        }
        server.verify().await;
    }

    // The same origin, written out in full, is followed.
    server.reset().await;
    let absolute = format!("{}/api/storage/volumes?start.uuid=u1", server.uri());
    Mock::given(method("GET"))
        .and(path("/api/storage/volumes"))
        .and(query_param_is_missing("start.uuid"))
        .respond_with(volume_page("u1", Some(&absolute)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/storage/volumes"))
        .and(query_param("start.uuid", "u1"))
        .and(basic_auth("snapwarden", "s3cret-pw"))
        .respond_with(volume_page("u2", None))
        .expect(1)
        .mount(&server)
        .await;
    let volumes = client(&server).volumes().await.unwrap();
    let uuids: Vec<_> = volumes.iter().map(|v| v.uuid.as_str()).collect();
    assert_eq!(uuids, ["u1", "u2"]);
}

/// Answers page `n` (query `page`, absent = 1) with a `next` link to page `n + 1`, up to `last`
/// (`None`: never ends).
struct Pages {
    last: Option<u32>,
}

impl wiremock::Respond for Pages {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let page: u32 = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "page")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(1);
        let next = (self.last != Some(page))
            .then(|| format!("/api/storage/volumes?fields=uuid&page={}", page + 1));
        volume_page(&format!("u{page}"), next.as_deref())
    }
}

#[tokio::test]
async fn the_page_count_is_capped() {
    assert_eq!(
        client(&MockServer::start().await).max_pages,
        super::client::MAX_PAGES
    );
    // The cap itself is a large constant; 5 keeps the test quick.
    let server = server().await;
    Mock::given(method("GET"))
        .and(path("/api/storage/volumes"))
        .respond_with(Pages { last: Some(5) })
        .expect(5)
        .mount(&server)
        .await;
    let mut c = client(&server);
    c.max_pages = 5;
    // Exactly at the cap: the listing ends on its own and is complete.
    assert_eq!(c.volumes().await.unwrap().len(), 5);
    server.verify().await;

    // A `next` that never ends: five pages are read, then a clear error.
    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/api/storage/volumes"))
        .respond_with(Pages { last: None })
        .expect(5)
        .mount(&server)
        .await;
    let err = c.volumes().await.unwrap_err();
    assert!(
        matches!(&err, OntapError::Decode { detail, .. }
            if detail.contains("still present after 5 pages of 1000 records")),
        "{err:?}"
    );
}

const LUN_BORN_FIELDS: &str = "uuid,name,svm.name,location.volume.name,status.mapped,\
                               clone.created_as_clone,space.size,create_time";

/// A clone create whose first attempt got a 5xx (the cluster may have acted) and whose retry
/// meets "already exists", with `existing` at the path and `snapwarden.x` (created
/// 2024-03-13T17:05:00Z) as the backing snapshot: the clone `clone` asks for, taken or refused.
async fn retried_into(
    existing: serde_json::Value,
    flexclone: bool,
    snapshot_reads: u64,
) -> Result<super::LunInfo, OntapError> {
    let server = server().await;
    let (verb, at) = if flexclone {
        ("POST", "/api/storage/luns")
    } else {
        ("PATCH", "/api/storage/volumes/vol-uuid-1")
    };
    Mock::given(method(verb))
        .and(path(at))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"error":{"code":"1","message":"internal error"}})),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method(verb))
        .and(path(at))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({"error":{
            "code":"5374242",
            "message":"A LUN or NVMe namespace already exists at path \"/vol/vol_sql/lun0_clone\"."}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/storage/luns"))
        .and(query_param("name", "/vol/vol_sql/lun0_clone"))
        .and(query_param("fields", LUN_BORN_FIELDS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"records":[existing]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/storage/volumes/vol-uuid-1/snapshots"))
        .and(query_param("name", "snapwarden.x"))
        .and(query_param("fields", SNAPSHOT_FIELDS))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"records":[snapshot_record("snapwarden.x")]})),
        )
        .expect(snapshot_reads)
        .mount(&server)
        .await;
    let c = client(&server);
    if flexclone {
        c.clone_lun_flexclone(&vol(), "snapwarden.x", "lun0", "/vol/vol_sql/lun0_clone")
            .await
    } else {
        c.clone_lun_snaprestore(&vol(), "snapwarden.x", "lun0", "/vol/vol_sql/lun0_clone")
            .await
    }
}

/// `lun_record`'s clone at the clone path, created at `born` (or with no `create_time`).
fn clone_born(born: Option<&str>) -> serde_json::Value {
    let mut lun = lun_record("/vol/vol_sql/lun0_clone", false);
    if let Some(born) = born {
        lun["create_time"] = json!(born);
    }
    lun
}

/// A clone create whose first attempt got a 5xx (the cluster may have acted) and whose retry
/// meets "already exists": the LUN at the path is taken only when it is a clone in the volume —
/// and, for a FlexClone LUN, one created no earlier than the backing snapshot it clones.
#[tokio::test]
async fn retried_flexclone_create_takes_only_a_clone_of_its_backing_snapshot() {
    // The backing snapshot was created at 17:05:00Z; the clone at its time or after.
    for born in ["2024-03-13T17:05:30Z", "2024-03-13T13:05:00-04:00"] {
        let taken = retried_into(clone_born(Some(born)), true, 1).await;
        assert_eq!(taken.unwrap().uuid, "lun-uuid-9", "{born}");
    }
    // A clone that was there before the backing snapshot existed is not its clone.
    let err = retried_into(clone_born(Some("2024-03-13T17:04:59Z")), true, 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(5_374_242), "{err}");
    assert!(
        err.to_string().contains(
            "created at 2024-03-13T17:04:59+00:00, before backing snapshot snapwarden.x \
             (2024-03-13T13:05:00-04:00): it is not a clone of it"
        ),
        "{err}"
    );
    // Without a creation time nothing tells it from a LUN that was there before.
    let err = retried_into(clone_born(None), true, 0).await.unwrap_err();
    assert!(err.to_string().contains("did not say when"), "{err}");
    // Not a clone, or a clone in another volume: not even the snapshot is read.
    for existing in [
        json!({"uuid":"lun-uuid-9","name":"/vol/vol_sql/lun0_clone","svm":{"name":"svm1"},
               "location":{"volume":{"name":"vol_sql"}},"create_time":"2024-03-13T17:06:00Z"}),
        json!({"uuid":"lun-uuid-9","name":"/vol/vol_sql/lun0_clone","svm":{"name":"svm1"},
               "location":{"volume":{"name":"vol_other"}},"clone":{"created_as_clone":true},
               "create_time":"2024-03-13T17:06:00Z"}),
    ] {
        let err = retried_into(existing, true, 0).await.unwrap_err();
        assert_eq!(err.code(), Some(5_374_242), "{err}");
        assert!(
            err.to_string().contains("not a clone in volume vol_sql"),
            "{err}"
        );
    }
}

/// A SnapRestore clone is told by its path, volume and SVM only: a restored file may keep the
/// times of the LUN it came from, so its creation time proves nothing (and no snapshot is read).
#[tokio::test]
async fn retried_snaprestore_create_takes_a_clone_in_its_volume_whatever_its_time() {
    let taken = retried_into(clone_born(Some("2020-01-01T00:00:00Z")), false, 0).await;
    assert_eq!(taken.unwrap().uuid, "lun-uuid-9");
}

/// A delete whose first attempt got a 5xx and whose retry finds the object gone has done its
/// work; a 404 on the first attempt is still an error.
#[tokio::test]
async fn retried_delete_that_finds_its_object_gone_succeeds() {
    let server = server().await;
    let gone = ResponseTemplate::new(404)
        .set_body_json(json!({"error":{"code":"4","message":"entry doesn't exist"}}));
    Mock::given(method("DELETE"))
        .and(path("/api/storage/luns/lun-uuid-9"))
        .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/api/storage/luns/lun-uuid-9"))
        .respond_with(gone.clone())
        .expect(2)
        .mount(&server)
        .await;
    let c = client(&server);
    c.delete_lun("lun-uuid-9", "/vol/vol_sql/lun0_clone", false)
        .await
        .unwrap();
    let err = c
        .delete_lun("lun-uuid-9", "/vol/vol_sql/lun0_clone", false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OntapError::Api {
                http_status: Some(404),
                code: 4,
                ..
            }
        ),
        "{err:?}"
    );
}
