//! The simulator under hostile or careless input: bounded clock advances that
//! answer a summary, range-checked knobs and faults, one snapshot-name rule for create and rename,
//! ONTAP's error envelope on every error, `Accept: application/json`, and ONTAP's `Location` for a
//! created snapshot.

#[path = "sim_support/mod.rs"]
mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{Sim, PASSWORD, USER};

const START: &str = "2026-03-10T10:00:00Z";

/// One UTC cluster: vol1 on the built-in `default` policy (hourly @:05 ×6, daily 0:10 ×2, weekly
/// Sun 0:15 ×2), vol2 with a LUN and no schedule.
const WORLD: &str = r#"
[knobs]
async_mutations = false
[[clusters]]
name = "c1"
timezone = "Etc/UTC"
licenses = ["flexclone"]
[[clusters.svms]]
name = "svm1"
[[clusters.svms.volumes]]
name = "vol1"
[[clusters.svms.volumes]]
name = "vol2"
snapshot_policy = "none"
luns = [{ name = "lun1" }]
"#;

/// A request with extra headers and a raw body; answers (status, content type, body text).
async fn raw(
    sim: &Sim,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> (StatusCode, String, String) {
    let mut req = sim
        .http
        .request(method, format!("{}{}", sim.base, path))
        .basic_auth(USER, Some(PASSWORD));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, resp.text().await.expect("body"))
}

/// Asserts an ONTAP error envelope with a string code and returns it.
fn envelope(status: StatusCode, text: &str, want: StatusCode) -> Value {
    assert_eq!(status, want, "{text}");
    let v: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not an envelope ({e}): {text}"));
    assert!(v["error"]["code"].is_string(), "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    v
}

async fn post_advance(sim: &Sim, body: Value) -> support::Reply {
    sim.call(Method::POST, "/simulator/v1/clock/advance", Some(body))
        .await
}

#[tokio::test]
async fn clock_advances_are_bounded_and_answer_counts() {
    let sim = Sim::start(WORLD, START).await;
    for bad in [
        json!({"seconds": i64::MAX}),
        json!({"seconds": 366 * 86_400 + 1}),
        json!({"seconds": -1}),
        json!({"seconds": 1.5}),
        json!({"seconds": "600"}),
        json!({"seconds": u64::MAX}),
    ] {
        let r = post_advance(&sim, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert_eq!(r.body["error"]["target"], "seconds", "{}", r.body);
        assert_eq!(r.body["error"]["code"], "2");
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("366 days"), "{message}");
    }
    let r = post_advance(&sim, json!({"seconds": 60, "events": "yes"})).await;
    assert_eq!(r.body["error"]["target"], "events", "{}", r.body);
    // Nothing moved, and the server still answers.
    let clock = sim.get("/simulator/v1/clock").await;
    assert_eq!(clock["now"], "2026-03-10T10:00:00+00:00");

    // One day from Tue 10:00Z: hourly fires 24 times (10:05 .. 09:05) and keeps 6, so 18 are
    // deleted; daily fires once (00:10); weekly (Sunday) not at all. Counted by hand.
    let day = post_advance(&sim, json!({"seconds": 86_400})).await;
    assert_eq!(day.status, StatusCode::OK, "{}", day.body);
    assert_eq!(
        day.body["counts"],
        json!({"taken": 25, "deleted": 18, "skipped": 0})
    );
    assert!(day.body.get("events").is_none(), "{}", day.body);
    assert!(
        day.body.to_string().len() < 300,
        "a summary, not a log: {}",
        day.body
    );
    assert_eq!(day.body["now"], "2026-03-11T10:00:00+00:00");

    // The longest advance is accepted and bounded in what it answers.
    let year = post_advance(&sim, json!({"seconds": 366 * 86_400, "events": true})).await;
    assert_eq!(year.status, StatusCode::OK, "{}", year.body);
    let counts = &year.body["counts"];
    let total = ["taken", "deleted", "skipped"]
        .iter()
        .map(|k| counts[k].as_u64().unwrap())
        .sum::<u64>();
    let events = year.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1_000);
    assert_eq!(year.body["events_omitted"].as_u64().unwrap(), total - 1_000);
    // 366 days × 24 hourly + 366 daily + 52 weekly (Sundays from 2026-03-15 to 2027-03-07).
    assert_eq!(counts["taken"], 366 * 24 + 366 + 52);
    // At 10:05 the hourly rotation deletes the oldest of its 6, then takes the new one.
    assert_eq!(events[0]["kind"], "deleted");
    assert_eq!(events[1]["kind"], "taken");
    assert_eq!(events[1]["time"], "2026-03-11T10:05:00Z");
    sim.handle.stop().await;
}

#[tokio::test]
async fn knobs_and_faults_are_range_checked_and_name_the_field() {
    let sim = Sim::start(WORLD, START).await;
    let cases = [
        (
            "/simulator/v1/faults",
            json!({"error_rate": 2}),
            "error_rate",
        ),
        (
            "/simulator/v1/faults",
            json!({"error_rate": -1}),
            "error_rate",
        ),
        (
            "/simulator/v1/faults",
            json!({"drop_rate": 1.01}),
            "drop_rate",
        ),
        (
            "/simulator/v1/faults",
            json!({"job_failure_rate": -0.5}),
            "job_failure_rate",
        ),
        (
            "/simulator/v1/faults",
            json!({"error_rate": "often"}),
            "error_rate",
        ),
        (
            "/simulator/v1/faults",
            json!({"latency_ms": 3_600_000}),
            "latency_ms",
        ),
        (
            "/simulator/v1/faults",
            json!({"job_duration_seconds": u64::MAX}),
            "job_duration_seconds",
        ),
        ("/simulator/v1/faults", json!({"no_such": 1}), "no_such"),
        (
            "/simulator/v1/knobs",
            json!({"locked_delete_code": 4}),
            "locked_delete_code",
        ),
        (
            "/simulator/v1/knobs",
            json!({"block_sharing_seconds": u64::MAX}),
            "block_sharing_seconds",
        ),
        (
            "/simulator/v1/knobs",
            json!({"job_retention_seconds": i64::MAX}),
            "job_retention_seconds",
        ),
        (
            "/simulator/v1/knobs",
            json!({"max_snapshots_per_volume": 0}),
            "max_snapshots_per_volume",
        ),
        (
            "/simulator/v1/knobs",
            json!({"locked_oldest": "explode"}),
            "locked_oldest",
        ),
    ];
    let faults_before = sim.get("/simulator/v1/faults").await;
    let knobs_before = sim.get("/simulator/v1/knobs").await;
    for (path, body, field) in cases {
        let r = sim.call(Method::POST, path, Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.body["error"]["target"], field, "{body}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "2");
    }
    // A rejected update changes nothing, not even its valid keys.
    let r = sim
        .call(
            Method::POST,
            "/simulator/v1/faults",
            Some(json!({"latency_ms": 5, "error_rate": 7})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(sim.get("/simulator/v1/faults").await, faults_before);
    assert_eq!(sim.get("/simulator/v1/knobs").await, knobs_before);
    // Both documented codes and the ends of the ranges are accepted.
    let ok = sim
        .call(
            Method::POST,
            "/simulator/v1/knobs",
            Some(json!({"locked_delete_code": 1_638_543, "max_snapshots_per_volume": 1023})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["locked_delete_code"], 1_638_543);
    let ok = sim
        .call(
            Method::POST,
            "/simulator/v1/faults",
            Some(json!({"error_rate": 0, "drop_rate": 0.0, "job_failure_rate": 0})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    sim.handle.stop().await;
}

#[tokio::test]
async fn a_world_file_with_out_of_range_settings_does_not_start() {
    let text = support::world(&format!(
        "[knobs]\nlocked_delete_code = 4\n[faults]\nerror_rate = 2.0\n{WORLD}"
    ))
    .replace("[knobs]\nasync_mutations = false\n", "");
    let err = snapwarden::sim::start(snapwarden::sim::ServeOptions {
        world: snapwarden::sim::WorldSource::Toml(text),
        listen: "127.0.0.1:0".parse().unwrap(),
        clock: snapwarden::sim::ClockMode::Manual,
        start: None,
        tls: false,
    })
    .await
    .expect_err("out-of-range knobs and faults are refused");
    let message = format!("{err:#}");
    assert!(message.contains("knobs.locked_delete_code"), "{message}");
    assert!(message.contains("faults.error_rate"), "{message}");
}

#[tokio::test]
async fn one_snapshot_name_rule_for_create_and_rename() {
    let sim = Sim::start(WORLD, START).await;
    let vol = sim.volume_uuid("vol2").await;
    let snapshots = format!("/api/storage/volumes/{vol}/snapshots");
    let created = sim
        .call(Method::POST, &snapshots, Some(json!({"name": "good"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let good = sim.snapshot(&vol, "good").await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let instance = format!("{snapshots}/{good}");
    let bad_names = [
        String::new(),
        "a/b".into(),
        ".".into(),
        "..".into(),
        "x".repeat(256),
        "nul\0byte".into(),
        "tab\tname".into(),
        "line\nbreak".into(),
        "del\u{7f}".into(),
    ];
    for name in &bad_names {
        let c = sim
            .call(Method::POST, &snapshots, Some(json!({ "name": name })))
            .await;
        assert_eq!(
            c.status,
            StatusCode::BAD_REQUEST,
            "create {name:?}: {}",
            c.body
        );
        assert_eq!(c.body["error"]["code"], "1638518", "{}", c.body);
        assert_eq!(c.body["error"]["target"], "name");
        let r = sim
            .call(Method::PATCH, &instance, Some(json!({ "name": name })))
            .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "rename {name:?}: {}",
            r.body
        );
        assert_eq!(r.body["error"]["code"], "524508", "{}", r.body);
    }
    // 255 bytes is the longest name, on create and rename alike.
    let longest = "y".repeat(255);
    let r = sim
        .call(Method::PATCH, &instance, Some(json!({ "name": longest })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Type errors are 400s naming the field, and change nothing.
    for body in [
        json!({"name": 5}),
        json!({"name": ["a"]}),
        json!({"comment": 7}),
    ] {
        let r = sim.call(Method::PATCH, &instance, Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        let field = body.as_object().unwrap().keys().next().unwrap().clone();
        assert_eq!(r.body["error"]["target"], field.as_str());
        let c = sim.call(Method::POST, &snapshots, Some(body.clone())).await;
        assert_eq!(c.status, StatusCode::BAD_REQUEST, "{body}: {}", c.body);
    }
    assert_eq!(sim.snapshot_names(&vol).await, [longest]);
    sim.handle.stop().await;
}

#[tokio::test]
async fn clone_sources_cannot_walk_out_of_the_snapshot_directory() {
    let sim = Sim::start(WORLD, START).await;
    let vol = sim.volume_uuid("vol2").await;
    let created = sim
        .call(
            Method::POST,
            &format!("/api/storage/volumes/{vol}/snapshots"),
            Some(json!({"name": "base"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    for source in [
        "/vol/vol2/.snapshot/../lun1",
        "/vol/vol2/.snapshot/./lun1",
        "/vol/vol2/.snapshot/base/../lun1",
        "/vol/../vol2/.snapshot/base/lun1",
        "vol2/.snapshot/base/lun1",
        "/vol/vol2/.snapshot/base/",
    ] {
        let r = sim
            .call(
                Method::POST,
                "/api/storage/luns",
                Some(json!({"name": "/vol/vol2/c1", "svm": {"name": "svm1"}, "clone": {"source": {"name": source}}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{source}: {}", r.body);
        assert_eq!(r.body["error"]["target"], "clone.source.name", "{}", r.body);
    }
    // The well-formed source clones.
    let r = sim
        .call(
            Method::POST,
            "/api/storage/luns",
            Some(json!({"name": "/vol/vol2/c1", "svm": {"name": "svm1"}, "clone": {"source": {"name": "/vol/vol2/.snapshot/base/lun1"}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    sim.handle.stop().await;
}

#[tokio::test]
async fn every_error_answers_the_envelope() {
    let sim = Sim::start(WORLD, START).await;
    let vol = sim.volume_uuid("vol2").await;
    // 405: the path exists, the method does not.
    let (s, _, t) = raw(&sim, Method::PUT, "/api/cluster", &[], None).await;
    let v = envelope(s, &t, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(v["error"]["code"], "3");
    let (s, _, t) = raw(&sim, Method::DELETE, "/simulator/v1/clock", &[], None).await;
    envelope(s, &t, StatusCode::METHOD_NOT_ALLOWED);
    // 413: a body over the 2 MiB limit.
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(3 << 20));
    let (s, _, t) = raw(
        &sim,
        Method::POST,
        &format!("/api/storage/volumes/{vol}/snapshots"),
        &[],
        Some(big.into_bytes()),
    )
    .await;
    envelope(s, &t, StatusCode::PAYLOAD_TOO_LARGE);
    // 414 and 431 below the HTTP layer's own limits.
    let long = format!("/api/storage/volumes?name={}", "v".repeat(16 * 1024));
    let (s, _, t) = raw(&sim, Method::GET, &long, &[], None).await;
    assert_eq!(
        envelope(s, &t, StatusCode::URI_TOO_LONG)["error"]["target"],
        "uri"
    );
    let (s, _, t) = raw(
        &sim,
        Method::GET,
        "/api/cluster",
        &[("x-padding", "p".repeat(100 * 1024))],
        None,
    )
    .await;
    envelope(s, &t, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // A path segment that is not UTF-8, a body that is not JSON, a body of bad UTF-8.
    let (s, _, t) = raw(&sim, Method::GET, "/api/storage/volumes/%FF%FE", &[], None).await;
    envelope(s, &t, StatusCode::BAD_REQUEST);
    let (s, _, t) = raw(
        &sim,
        Method::POST,
        &format!("/api/storage/volumes/{vol}/snapshots"),
        &[],
        Some(b"{\"name\": \xff}".to_vec()),
    )
    .await;
    envelope(s, &t, StatusCode::BAD_REQUEST);
    // Unknown paths, inside and outside /api.
    let (s, _, t) = raw(&sim, Method::GET, "/api/nope", &[], None).await;
    envelope(s, &t, StatusCode::NOT_FOUND);
    let (s, _, t) = raw(&sim, Method::GET, "/nope", &[], None).await;
    envelope(s, &t, StatusCode::NOT_FOUND);
    sim.handle.stop().await;
}

#[tokio::test]
async fn accept_application_json_drops_links_except_next() {
    let sim = Sim::start(WORLD, START).await;
    sim.advance(6 * 3600).await;
    let vol = sim.volume_uuid("vol1").await;
    let path = format!("/api/storage/volumes/{vol}/snapshots?max_records=2&fields=volume,svm");
    let accept = [("accept", "application/json".to_string())];
    let (s, ct, t) = raw(&sim, Method::GET, &path, &accept, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ct, "application/json");
    let plain: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(plain["num_records"], 2);
    assert!(
        plain["_links"]["next"]["href"].is_string(),
        "next kept: {plain}"
    );
    assert!(plain["_links"].get("self").is_none(), "{plain}");
    assert!(!t.contains("\"self\""), "no self link anywhere: {t}");
    // The same request as HAL keeps every link.
    let (_, ct, t) = raw(&sim, Method::GET, &path, &[], None).await;
    assert_eq!(ct, "application/hal+json");
    let hal: Value = serde_json::from_str(&t).unwrap();
    assert!(hal["_links"]["self"].is_object());
    assert!(hal["records"][0]["_links"]["self"].is_object());
    assert!(hal["records"][0]["volume"]["_links"]["self"].is_object());
    // Apart from the links, the answers are the same.
    assert_eq!(hal["records"][0]["name"], plain["records"][0]["name"]);
    // Instances too; errors keep their envelope.
    let (_, _, t) = raw(&sim, Method::GET, "/api/cluster", &accept, None).await;
    assert!(!t.contains("_links"), "{t}");
    let (s, _, t) = raw(
        &sim,
        Method::GET,
        "/api/storage/volumes/nope",
        &accept,
        None,
    )
    .await;
    envelope(s, &t, StatusCode::NOT_FOUND);
    sim.handle.stop().await;
}

#[tokio::test]
async fn a_created_snapshot_is_found_at_its_location() {
    let sim = Sim::start(WORLD, START).await;
    let vol = sim.volume_uuid("vol2").await;
    let name = "veeam 2026/03 & co";
    let created = sim
        .call(
            Method::POST,
            &format!("/api/storage/volumes/{vol}/snapshots"),
            Some(json!({ "name": "veeam 2026-03 & co" })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let location = created.location.expect("Location");
    assert_eq!(
        location,
        format!("/api/storage/volumes/{vol}/snapshots/?name=veeam%202026-03%20%26%20co")
    );
    let found = sim.get(&location).await;
    assert_eq!(found["num_records"], 1, "{found}");
    assert_eq!(found["records"][0]["name"], "veeam 2026-03 & co");
    let uuid = found["records"][0]["uuid"].as_str().unwrap();
    let href = found["records"][0]["_links"]["self"]["href"]
        .as_str()
        .unwrap();
    assert_eq!(href, format!("/api/storage/volumes/{vol}/snapshots/{uuid}"));
    // A slash is not a valid name; it never reaches a Location.
    let r = sim
        .call(
            Method::POST,
            &format!("/api/storage/volumes/{vol}/snapshots"),
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.location.is_none());
    sim.handle.stop().await;
}

#[tokio::test]
async fn fields_of_the_wrong_type_are_400s_naming_the_field() {
    let sim = Sim::start(WORLD, START).await;
    let vol = sim.volume_uuid("vol2").await;
    let cases = [
        (
            Method::POST,
            "/api/storage/volumes".to_string(),
            json!({"name": "v9", "svm": {"name": "svm1"}, "size": "big"}),
            "size",
        ),
        (
            Method::POST,
            "/api/storage/volumes".to_string(),
            json!({"name": "v9", "svm": {"name": 1}}),
            "svm.name",
        ),
        (
            Method::PATCH,
            format!("/api/storage/volumes/{vol}"),
            json!({"snapshot_policy": {"name": 5}}),
            "snapshot_policy.name",
        ),
        (
            Method::PATCH,
            format!("/api/storage/volumes/{vol}"),
            json!({"snapshot_clone_dependency": "yes"}),
            "snapshot_clone_dependency",
        ),
        (
            Method::POST,
            "/api/storage/luns".to_string(),
            json!({"name": "/vol/vol2/l9", "svm": {"name": "svm1"}, "os_type": 5, "space": {"size": 1}}),
            "os_type",
        ),
        (
            Method::POST,
            "/api/protocols/san/igroups".to_string(),
            json!({"name": "g", "svm": {"name": "svm1"}, "os_type": "vmware", "initiators": [{"name": 5}]}),
            "initiators.name",
        ),
        (
            Method::POST,
            "/api/cluster/schedules".to_string(),
            json!({"name": "s", "interval": 3600}),
            "interval",
        ),
        (
            Method::POST,
            "/api/storage/snapshot-policies".to_string(),
            json!({"name": "p", "enabled": "no", "copies": []}),
            "enabled",
        ),
    ];
    for (method, path, body, field) in cases {
        let r = sim.call(method.clone(), &path, Some(body.clone())).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}: {}",
            r.body
        );
        assert_eq!(r.body["error"]["target"], field, "{body}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "2");
    }
    // Nothing was created or changed.
    let volumes = sim.get("/api/storage/volumes?name=v9").await;
    assert_eq!(volumes["num_records"], 0);
    let v = sim
        .get(&format!(
            "/api/storage/volumes/{vol}?fields=snapshot_policy"
        ))
        .await;
    assert_eq!(v["snapshot_policy"]["name"], "none");
    sim.handle.stop().await;
}
