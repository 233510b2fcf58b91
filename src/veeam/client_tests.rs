//! Tests of `VeeamClient` against a fake Veeam B&R REST API (wiremock on loopback).

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::client::*;
use super::session::MAX_TEXT;
use super::*;
use crate::ontap::Secret;

const JOB_ID: &str = "0c4b5b26-6c0d-4f2b-9f4b-1a2b3c4d5e6f";

fn options(server: &MockServer) -> VeeamOptions {
    let mut o = VeeamOptions::new(
        "vbr",
        server.uri(),
        "svc",
        Secret::new("s3cr3t-pw").unwrap(),
    );
    o.polling = SessionPolling {
        interval: Duration::from_millis(1),
        bound: Duration::from_secs(5),
    };
    o
}

fn client(server: &MockServer) -> VeeamClient {
    VeeamClient::new(options(server)).unwrap()
}

fn token(access: &str, refresh: &str, expires_in: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": access, "token_type": "bearer", "refresh_token": refresh,
        "expires_in": expires_in, ".issued": "2026-06-01T10:00:00Z", ".expires": "2026-06-01T10:15:00Z"
    }))
}

/// Accepts the password grant for svc / s3cr3t-pw (form-encoded, with x-api-version).
async fn password_grant(server: &MockServer, access: &str, expires_in: i64) {
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .and(header("x-api-version", "1.1-rev0"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("grant_type=password"))
        .and(body_string_contains("username=svc"))
        .and(body_string_contains("password=s3cr3t-pw"))
        .respond_with(token(access, &format!("{access}-refresh"), expires_in))
        .mount(server)
        .await;
}

/// The job the start tests start: "SQL nightly" with [`JOB_ID`].
fn sql_nightly(is_disabled: bool) -> Job {
    Job {
        id: JOB_ID.into(),
        name: "SQL nightly".into(),
        kind: "Backup".into(),
        is_disabled,
    }
}

/// Every `GET path` is answered with `template`.
async fn answer(server: &MockServer, at: &str, template: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(template)
        .mount(server)
        .await;
}

fn job(id: &str, name: &str) -> Value {
    json!({"id": id, "name": name, "type": "Backup", "isDisabled": false, "description": ""})
}

fn page(data: Vec<Value>, total: usize, skip: usize) -> ResponseTemplate {
    let count = data.len();
    ResponseTemplate::new(200).set_body_json(json!({
        "data": data, "pagination": {"total": total, "count": count, "skip": skip, "limit": 200}
    }))
}

fn session(id: &str, state: &str, result: Option<(&str, &str)>) -> Value {
    let mut s = json!({
        "id": id, "name": "SQL nightly", "activityId": "a", "sessionType": "Job", "state": state,
        "creationTime": "2026-06-01T10:00:00Z", "usn": 1, "resourceId": JOB_ID,
        "progressPercent": 40
    });
    if let Some((result, message)) = result {
        s["result"] = json!({"result": result, "message": message, "isCanceled": false});
    }
    s
}

/// Mounts `GET /api/v1/jobs` answering `jobs` in pages of `per_page`.
async fn jobs(server: &MockServer, bearer: &str, all: Vec<Value>, per_page: usize) {
    let total = all.len();
    for (i, chunk) in all.chunks(per_page.max(1)).enumerate() {
        let skip = i * per_page;
        Mock::given(method("GET"))
            .and(path("/api/v1/jobs"))
            .and(query_param("skip", skip.to_string()))
            .and(header("authorization", format!("Bearer {bearer}")))
            .and(header("x-api-version", "1.1-rev0"))
            .respond_with(page(chunk.to_vec(), total, skip))
            .mount(server)
            .await;
    }
}

#[tokio::test]
async fn finds_a_job_by_name_or_id_across_pages_with_a_password_grant() {
    let server = MockServer::start().await;
    password_grant(&server, "A1", 900).await;
    let mut all: Vec<Value> = (0..3)
        .map(|i| job(&format!("id-{i}"), &format!("job {i}")))
        .collect();
    all.push(job(JOB_ID, "SQL nightly"));
    // Two per page: the last job is on the second page, found only by following pagination.
    jobs(&server, "A1", all, 2).await;
    let c = client(&server);
    let found = c.find_job("SQL nightly").await.unwrap();
    assert_eq!(found.id, JOB_ID);
    assert_eq!(found.kind, "Backup");
    let by_id = c.find_job(&JOB_ID.to_uppercase()).await.unwrap();
    assert_eq!(by_id.name, "SQL nightly");
    // The token was asked for once: the cached one served every later call.
    let grants = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/api/oauth2/token")
        .count();
    assert_eq!(grants, 1);
}

#[tokio::test]
async fn a_job_that_does_not_exist_lists_the_known_ones() {
    let server = MockServer::start().await;
    password_grant(&server, "A1", 900).await;
    jobs(
        &server,
        "A1",
        vec![job("1", "Files"), job("2", "Exchange")],
        200,
    )
    .await;
    let err = client(&server).find_job("SQL").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Veeam server vbr: job \"SQL\" does not exist (jobs: \"Files\", \"Exchange\")"
    );
}

#[tokio::test]
async fn two_jobs_with_the_name_are_ambiguous() {
    let server = MockServer::start().await;
    password_grant(&server, "A1", 900).await;
    jobs(&server, "A1", vec![job("1", "SQL"), job("2", "SQL")], 200).await;
    let err = client(&server).find_job("SQL").await.unwrap_err();
    assert!(
        matches!(err, VeeamError::JobAmbiguous { count: 2, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_once_and_the_new_refresh_token_used_next() {
    let server = MockServer::start().await;
    // expires_in 10 s is inside the 60 s margin: every call renews.
    password_grant(&server, "A1", 10).await;
    for (old, new) in [("A1", "A2"), ("A2", "A3")] {
        Mock::given(method("POST"))
            .and(path("/api/oauth2/token"))
            .and(header("x-api-version", "1.1-rev0"))
            .and(body_string_contains("grant_type=refresh_token"))
            .and(body_string_contains(format!("refresh_token={old}-refresh")))
            .respond_with(token(new, &format!("{new}-refresh"), 10))
            .expect(1)
            .mount(&server)
            .await;
    }
    for bearer in ["A1", "A2", "A3"] {
        jobs(&server, bearer, vec![job(JOB_ID, "SQL")], 200).await;
    }
    let c = client(&server);
    for _ in 0..3 {
        c.find_job("SQL").await.unwrap();
    }
    server.verify().await;
}

#[tokio::test]
async fn a_refused_refresh_falls_back_to_the_password() {
    let server = MockServer::start().await;
    password_grant(&server, "A1", 10).await;
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"errorCode": "InvalidToken", "message": "The refresh token was used"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    jobs(&server, "A1", vec![job(JOB_ID, "SQL")], 200).await;
    let c = client(&server);
    c.find_job("SQL").await.unwrap();
    c.find_job("SQL").await.unwrap();
    let passwords = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("grant_type=password"))
        .count();
    assert_eq!(passwords, 2);
    server.verify().await;
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error_without_the_password() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"errorCode": "AccessDenied", "message": "Invalid user name or password"}),
        ))
        .mount(&server)
        .await;
    let err = client(&server).find_job("SQL").await.unwrap_err();
    let text = err.to_string();
    assert_eq!(
        text,
        "Veeam server vbr: job \"SQL\": sign-in refused (HTTP 401 AccessDenied: Invalid user name \
         or password); check username and password"
    );
    assert!(!format!("{err:?}").contains("s3cr3t-pw"));
    assert!(!format!("{:?}", client(&server)).contains("s3cr3t-pw"));
}

#[tokio::test]
async fn a_token_the_server_expired_early_is_replaced_once() {
    let server = MockServer::start().await;
    password_grant(&server, "A1", 900).await;
    // The server refuses A1 (as after a restart): one fresh sign-in, then the call succeeds.
    Mock::given(method("GET"))
        .and(path("/api/v1/jobs"))
        .and(header("authorization", "Bearer A1"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"errorCode": "ExpiredToken", "message": "The token has expired"}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    jobs(&server, "A1", vec![job(JOB_ID, "SQL")], 200).await;
    assert_eq!(client(&server).find_job("SQL").await.unwrap().id, JOB_ID);

    // A server that refuses every token: one retry, then the typed error.
    let server = MockServer::start().await;
    password_grant(&server, "A1", 900).await;
    Mock::given(method("GET"))
        .and(path("/api/v1/jobs"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"errorCode": "InvalidToken", "message": "nope"})),
        )
        .expect(2)
        .mount(&server)
        .await;
    let err = client(&server).find_job("SQL").await.unwrap_err();
    assert!(
        matches!(&err, VeeamError::Api { http_status: 401, error_code, .. } if error_code == "InvalidToken"),
        "{err}"
    );
    server.verify().await;
}

#[tokio::test]
async fn starting_a_job_returns_its_session_and_polling_ends_at_stopped() {
    let server = MockServer::start().await;
    password_grant(&server, "A1", 900).await;
    Mock::given(method("GET"))
        .and(path("/api/v1/sessions"))
        .and(query_param("jobIdFilter", JOB_ID))
        .respond_with(page(
            vec![session("old", "Stopped", Some(("Success", "")))],
            1,
            0,
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/api/v1/jobs/{JOB_ID}/start")))
        .and(header("x-api-version", "1.1-rev0"))
        .and(header("authorization", "Bearer A1"))
        .respond_with(ResponseTemplate::new(201).set_body_json(session("s1", "Starting", None)))
        .expect(1)
        .mount(&server)
        .await;
    // Working twice, then Stopped with a failure.
    Mock::given(method("GET"))
        .and(path("/api/v1/sessions/s1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(session("s1", "Working", None)))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    answer(
        &server,
        "/api/v1/sessions/s1",
        ResponseTemplate::new(200).set_body_json(session(
            "s1",
            "Stopped",
            Some(("Failed", "Snapshot creation failed")),
        )),
    )
    .await;
    let c = client(&server);
    let job = sql_nightly(false);
    let started = c.start_job(&job).await.unwrap();
    let Started::New(s) = &started else {
        panic!("expected a new session: {started:?}")
    };
    assert_eq!((s.id.as_str(), &s.state), ("s1", &SessionState::Starting));
    let done = c.wait_stopped("SQL nightly", "s1").await.unwrap();
    assert_eq!(done.state, SessionState::Stopped);
    assert_eq!(done.result, Some(SessionResult::Failed));
    assert_eq!(done.message.as_deref(), Some("Snapshot creation failed"));
    let polls = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/api/v1/sessions/s1")
        .count();
    assert_eq!(polls, 3);
    server.verify().await;
}

#[tokio::test]
async fn a_running_job_is_not_started_twice() {
    let server = MockServer::start().await;
    password_grant(&server, "A1", 900).await;
    answer(
        &server,
        "/api/v1/sessions",
        page(
            vec![
                session("old", "Stopped", Some(("Success", ""))),
                session("running", "Working", None),
            ],
            2,
            0,
        ),
    )
    .await;
    Mock::given(method("POST"))
        .and(path(format!("/api/v1/jobs/{JOB_ID}/start")))
        .respond_with(ResponseTemplate::new(201).set_body_json(session("s2", "Starting", None)))
        .expect(0)
        .mount(&server)
        .await;
    let job = sql_nightly(false);
    let started = client(&server).start_job(&job).await.unwrap();
    assert!(
        matches!(&started, Started::AlreadyRunning(s) if s.id == "running"),
        "{started:?}"
    );
    server.verify().await;
}

#[tokio::test]
async fn veeam_error_bodies_name_server_job_code_and_message() {
    let server = MockServer::start().await;
    password_grant(&server, "A1", 900).await;
    answer(&server, "/api/v1/sessions", page(vec![], 0, 0)).await;
    Mock::given(method("POST"))
        .and(path(format!("/api/v1/jobs/{JOB_ID}/start")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "errorCode": "UnexpectedContent", "message": "Job is disabled", "resourceId": JOB_ID
        })))
        .mount(&server)
        .await;
    let job = sql_nightly(true);
    let err = client(&server).start_job(&job).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Veeam server vbr: job \"SQL nightly\": POST /api/v1/jobs/{JOB_ID}/start: HTTP 400 \
             UnexpectedContent: Job is disabled"
        )
    );
}

#[tokio::test]
async fn a_session_that_never_stops_times_out_at_the_bound() {
    let server = MockServer::start().await;
    password_grant(&server, "A1", 900).await;
    answer(
        &server,
        "/api/v1/sessions/s1",
        ResponseTemplate::new(200).set_body_json(session("s1", "Working", None)),
    )
    .await;
    let mut o = options(&server);
    o.polling = SessionPolling {
        interval: Duration::from_millis(5),
        bound: Duration::from_millis(30),
    };
    let err = VeeamClient::new(o)
        .unwrap()
        .wait_stopped("SQL", "s1")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, VeeamError::SessionTimeout { state, .. } if state == "Working"),
        "{err}"
    );
}

#[tokio::test]
async fn no_body_makes_the_client_panic() {
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"not json".to_vec(),
        b"[]".to_vec(),
        b"{\"data\": 5}".to_vec(),
        b"{\"data\": [{\"id\": 1}]}".to_vec(),
        vec![0xff, 0xfe, 0x00],
        b"{\"access_token\": \"\", \"expires_in\": -5}".to_vec(),
    ];
    for body in bodies {
        let server = MockServer::start().await;
        // Token endpoint and API both answer the garbage.
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200).set_body_bytes(body.clone()))
            .mount(&server)
            .await;
        let err = client(&server).find_job("SQL").await.unwrap_err();
        assert!(
            matches!(err, VeeamError::Decode { .. }),
            "{:?}: {err}",
            String::from_utf8_lossy(&body)
        );
    }
    // A session body with strange values decodes into bounded fields.
    let server = MockServer::start().await;
    password_grant(&server, "A1", 900).await;
    let mut s = session("s1", "Levitating", Some(("Maybe", "")));
    s["progressPercent"] = json!(-7);
    s["name"] = json!("x".repeat(5000));
    answer(
        &server,
        "/api/v1/sessions/s1",
        ResponseTemplate::new(200).set_body_json(s),
    )
    .await;
    let got = client(&server).session("SQL", "s1").await.unwrap();
    assert_eq!(got.state, SessionState::Other("Levitating".into()));
    assert_eq!(got.result, Some(SessionResult::Other("Maybe".into())));
    assert_eq!(got.message, None);
    assert_eq!(got.progress_percent, Some(0));
    assert_eq!(got.name.chars().count(), MAX_TEXT);
}

#[tokio::test]
async fn an_answer_larger_than_the_bound_is_refused() {
    let server = MockServer::start().await;
    password_grant(&server, "A1", 900).await;
    Mock::given(method("GET"))
        .and(path("/api/v1/jobs"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b' '; MAX_BODY_BYTES + 1]))
        .mount(&server)
        .await;
    let err = client(&server).find_job("SQL").await.unwrap_err();
    assert!(matches!(err, VeeamError::TooLarge { .. }), "{err}");
}

#[tokio::test]
async fn pagination_that_never_ends_is_bounded() {
    let server = MockServer::start().await;
    password_grant(&server, "A1", 900).await;
    // Every page is full and claims a million jobs.
    Mock::given(method("GET"))
        .and(path("/api/v1/jobs"))
        .respond_with(move |r: &Request| {
            let skip: usize = r
                .url
                .query_pairs()
                .find(|(k, _)| k == "skip")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let data = (0..200)
                .map(|i| job(&format!("{}", skip + i), "x"))
                .collect();
            page(data, 1_000_000, skip)
        })
        .mount(&server)
        .await;
    let mut c = client(&server);
    c.max_pages = 3;
    let err = c.find_job("SQL").await.unwrap_err();
    assert!(
        matches!(err, VeeamError::TooManyPages { pages: 3, .. }),
        "{err}"
    );
    assert_eq!(
        server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/api/v1/jobs")
            .count(),
        3
    );
}

#[tokio::test]
async fn a_server_that_is_down_is_a_transport_error() {
    // A port nothing listens on (wiremock keeps dropped servers in a pool, still answering).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut o = VeeamOptions::new("vbr", uri, "svc", Secret::new("pw").unwrap());
    o.request_timeout = Duration::from_secs(5);
    let err = VeeamClient::new(o)
        .unwrap()
        .find_job("SQL")
        .await
        .unwrap_err();
    assert!(matches!(err, VeeamError::Transport { .. }), "{err}");
    assert!(
        err.to_string().starts_with("Veeam server vbr: job \"SQL\""),
        "{err}"
    );
}

#[test]
fn urls_with_credentials_are_refused() {
    let o = VeeamOptions::new(
        "vbr",
        "https://u:p@vbr.example.net:9419",
        "svc",
        Secret::new("pw").unwrap(),
    );
    let err = VeeamClient::new(o).unwrap_err();
    assert!(matches!(err, VeeamError::BadUrl { .. }));
    assert!(
        err.to_string()
            .contains("credentials in the URL are refused"),
        "{err}"
    );
    assert!(!err.to_string().contains("u:p"), "{err}");
}
