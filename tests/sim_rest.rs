//! The ONTAP REST conventions over HTTP: Basic auth, pagination, 202 + job polling, job expiry,
//! `return_timeout`, the synchronous-mutation knob, fault injection and HTTPS with a pinnable
//! certificate.

#[path = "sim_support/mod.rs"]
mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use snapwarden::sim::{start, ClockMode, ServeOptions, WorldSource};
use support::Sim;

const START: &str = "2026-01-05T00:00:00Z";

const WORLD: &str = r#"
[[clusters]]
name = "c1"
timezone = "Etc/UTC"
[[clusters.schedules]]
name = "five"
cron = "*/5 * * * *"
[[clusters.snapshot_policies]]
name = "dense"
copies = [{ schedule = "five", count = 1000 }]
[[clusters.svms]]
name = "svm1"
[[clusters.svms.volumes]]
name = "vol1"
snapshot_policy = "none"
luns = [{ name = "lun1" }]
"#;

#[tokio::test]
async fn wrong_credentials_get_401_with_envelope() {
    let sim = Sim::start(WORLD, START).await;
    for auth in [
        Some(("admin", "wrong")),
        Some(("nobody", support::PASSWORD)),
        None,
    ] {
        let mut req = sim.http.get(format!("{}/api/cluster", sim.base));
        if let Some((u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().get("www-authenticate").is_some());
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "6");
    }
    let cluster = sim.get("/api/cluster?fields=version,timezone").await;
    assert_eq!(cluster["timezone"]["name"], "Etc/UTC");
    assert_eq!(cluster["version"]["generation"], 9);
    sim.handle.stop().await;
}

#[tokio::test]
async fn pagination_over_2500_snapshots() {
    let world = WORLD
        .replace("snapshot_policy = \"none\"", "snapshot_policy = \"dense\"")
        .replace(
            "luns = [{ name = \"lun1\" }]",
            "luns = [{ name = \"lun1\" }]\n[[clusters.svms.volumes]]\nname = \"vol2\"\nsnapshot_policy = \"dense\"\n[[clusters.svms.volumes]]\nname = \"vol3\"\nsnapshot_policy = \"dense\"",
        );
    let sim = Sim::start(&world, START).await;
    // 3 volumes x 12/hour x 70 h = 2,520 snapshots (count 1000 keeps them all).
    let adv = sim.advance(70 * 3600).await;
    assert_eq!(adv["counts"]["taken"], 2520);
    let mut href =
        "/api/storage/volumes/*/snapshots?fields=create_time&max_records=1000&order_by=create_time"
            .to_string();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = sim.get(&href).await;
        pages += 1;
        let records = page["records"].as_array().unwrap();
        assert_eq!(page["num_records"], records.len());
        for r in records {
            assert!(
                r["volume"]["name"].is_string(),
                "bulk listing carries the volume: {r}"
            );
            seen.push(r["uuid"].as_str().unwrap().to_string());
        }
        match page["_links"]["next"]["href"].as_str() {
            Some(next) => href = next.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 2520);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 2520, "no record twice");
    // Filters with wildcard and alternatives, and return_records=false.
    let vol = sim.volume_uuid("vol1").await;
    let some = sim
        .get(&format!("/api/storage/volumes/{vol}/snapshots?name=five.2026-01-05_0005|five.2026-01-05_001*&return_records=false"))
        .await;
    assert_eq!(some["num_records"], 3, "return_records=false still counts");
    assert!(some.get("records").is_none(), "but returns no records");
    let some = sim
        .get(&format!(
            "/api/storage/volumes/{vol}/snapshots?name=five.2026-01-05_0005|five.2026-01-05_001*"
        ))
        .await;
    assert_eq!(some["num_records"], 3);
    sim.handle.stop().await;
}

#[tokio::test]
async fn jobs_poll_and_expire_after_300_seconds_of_simulator_time() {
    let sim = Sim::start(
        &format!("[faults]\njob_duration_seconds = 20\n{WORLD}"),
        START,
    )
    .await;
    let vol = sim.volume_uuid("vol1").await;
    let r = sim
        .call(
            Method::POST,
            &format!("/api/storage/volumes/{vol}/snapshots?return_records=true"),
            Some(json!({"name": "s1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.body["records"][0]["name"], "s1");
    let href = r.body["job"]["_links"]["self"]["href"]
        .as_str()
        .unwrap()
        .to_string();
    let job = sim.get(&href).await;
    assert_eq!(job["state"], "running");
    assert_eq!(
        job["description"],
        format!("POST /api/storage/volumes/{vol}/snapshots/?name=s1")
    );
    sim.advance(20).await;
    let job = sim.get(&href).await;
    assert_eq!(
        (job["state"].as_str(), job["code"].as_i64()),
        (Some("success"), Some(0))
    );
    assert!(job["end_time"].is_string());
    sim.advance(299).await;
    sim.get(&href).await;
    sim.advance(1).await;
    let gone = sim.call(Method::GET, &href, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body["error"]["code"], "4");
    sim.handle.stop().await;
}

#[tokio::test]
async fn return_timeout_and_the_synchronous_knob() {
    let sim = Sim::start(WORLD, START).await;
    let vol = sim.volume_uuid("vol1").await;
    let r = sim
        .call(
            Method::POST,
            &format!("/api/storage/volumes/{vol}/snapshots?return_timeout=15"),
            Some(json!({"name": "s1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.body["job"]["uuid"].is_string());
    let dup = sim
        .call(
            Method::POST,
            &format!("/api/storage/volumes/{vol}/snapshots"),
            Some(json!({"name": "s1"})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.body["error"]["code"], "525059");
    let knobs = sim
        .call(
            Method::POST,
            "/simulator/v1/knobs",
            Some(json!({"async_mutations": false})),
        )
        .await;
    assert_eq!(knobs.body["async_mutations"], false);
    let r = sim
        .call(
            Method::POST,
            &format!("/api/storage/volumes/{vol}/snapshots?return_records=true"),
            Some(json!({"name": "s2"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.body.get("job").is_none());
    assert_eq!(r.body["records"][0]["name"], "s2");
    // ONTAP's Location for a snapshot is a query on the collection (reference notes §6.1).
    let location = r.location.unwrap();
    assert_eq!(
        location,
        format!("/api/storage/volumes/{vol}/snapshots/?name=s2")
    );
    let found = sim.get(&location).await;
    assert_eq!(found["num_records"], 1, "{found}");
    let uuid = found["records"][0]["uuid"].as_str().unwrap().to_string();
    let d = sim
        .call(
            Method::DELETE,
            &format!("/api/storage/volumes/{vol}/snapshots/{uuid}"),
            None,
        )
        .await;
    assert_eq!(d.status, StatusCode::OK);
    sim.handle.stop().await;
}

#[tokio::test]
async fn fault_injection_5xx_drops_and_failing_jobs() {
    let sim = Sim::start(WORLD, START).await;
    let set = sim
        .call(
            Method::POST,
            "/simulator/v1/faults",
            Some(json!({"error_rate": 1.0})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK);
    let r = sim.call(Method::GET, "/api/cluster", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("fault"));
    assert!(r.body["error"]["code"].is_string());
    // The admin API is not subject to faults.
    assert_eq!(
        sim.call(Method::DELETE, "/simulator/v1/faults", None)
            .await
            .status,
        StatusCode::OK
    );
    sim.get("/api/cluster").await;

    sim.call(
        Method::POST,
        "/simulator/v1/faults",
        Some(json!({"drop_rate": 1.0})),
    )
    .await;
    let dropped = sim
        .http
        .get(format!("{}/api/cluster", sim.base))
        .basic_auth(support::USER, Some(support::PASSWORD))
        .send()
        .await;
    let failed = match dropped {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "the connection is dropped");
    sim.call(Method::DELETE, "/simulator/v1/faults", None).await;

    sim.call(
        Method::POST,
        "/simulator/v1/faults",
        Some(json!({"latency_ms": 300})),
    )
    .await;
    let began = std::time::Instant::now();
    sim.get("/api/cluster").await;
    assert!(
        began.elapsed() >= std::time::Duration::from_millis(300),
        "latency is injected"
    );
    let faults = sim.call(Method::DELETE, "/simulator/v1/faults", None).await;
    assert_eq!(faults.body["latency_ms"], 0);
    sim.call(
        Method::POST,
        "/simulator/v1/faults",
        Some(json!({"job_failure_rate": 1.0})),
    )
    .await;
    let vol = sim.volume_uuid("vol1").await;
    let r = sim
        .call(
            Method::POST,
            &format!("/api/storage/volumes/{vol}/snapshots"),
            Some(json!({"name": "x"})),
        )
        .await;
    let job = sim.job(&r).await;
    assert_eq!(job["state"], "failure");
    assert!(
        sim.snapshot_names(&vol).await.is_empty(),
        "a failed job changes nothing"
    );
    sim.call(Method::DELETE, "/simulator/v1/faults", None).await;
    sim.ok_job(
        Method::POST,
        &format!("/api/storage/volumes/{vol}/snapshots"),
        Some(json!({"name": "x"})),
    )
    .await;
    sim.handle.stop().await;
}

#[tokio::test]
async fn https_with_a_pinnable_generated_certificate() {
    let handle = start(ServeOptions {
        world: WorldSource::Toml(support::world(WORLD)),
        listen: "127.0.0.1:0".parse().unwrap(),
        clock: ClockMode::Manual,
        start: Some(START.parse().unwrap()),
        tls: true,
    })
    .await
    .unwrap();
    let fingerprint = handle.fingerprint().unwrap().to_string();
    assert_eq!(fingerprint.len(), 64);
    assert!(handle.base_url().starts_with("https://127.0.0.1:"));
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .build()
        .unwrap();
    let resp = http
        .get(format!("{}/api/cluster", handle.base_url()))
        .basic_auth(support::USER, Some(support::PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let der = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("peer certificate")
        .to_vec();
    let seen: String = Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(seen, fingerprint);
    assert_eq!(
        handle.fingerprint_sha256().unwrap().to_vec(),
        Sha256::digest(&der).to_vec()
    );
    handle.stop().await;
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback() {
    let err = start(ServeOptions {
        world: WorldSource::Toml(support::world(WORLD)),
        listen: "0.0.0.0:0".parse().unwrap(),
        clock: ClockMode::Manual,
        start: None,
        tls: false,
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");
}

#[tokio::test]
async fn schedules_policies_igroups_and_maps_over_rest() {
    let sim = Sim::start(WORLD, START).await;
    let s = sim
        .call(
            Method::POST,
            "/api/cluster/schedules",
            Some(json!({"name": "nightly", "cron": {"minutes": [30], "hours": [1]}})),
        )
        .await;
    assert_eq!(s.status, StatusCode::CREATED);
    let p = sim
        .call(
            Method::POST,
            "/api/storage/snapshot-policies",
            Some(json!({"name": "p1", "copies": [{"schedule": {"name": "nightly"}, "count": 3, "prefix": "n"}]})),
        )
        .await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.body);
    let vol = sim.volume_uuid("vol1").await;
    sim.ok_job(
        Method::PATCH,
        &format!("/api/storage/volumes/{vol}"),
        Some(json!({"snapshot_policy": {"name": "p1"}})),
    )
    .await;
    sim.advance(2 * 86_400).await;
    assert_eq!(
        sim.snapshot_names(&vol).await,
        ["n.2026-01-05_0130", "n.2026-01-06_0130"]
    );
    let scheds = sim
        .get("/api/cluster/schedules?name=nightly&fields=cron,type")
        .await;
    assert_eq!(
        scheds["records"][0]["cron"],
        json!({"minutes": [30], "hours": [1]})
    );
    let pol = sim
        .get("/api/storage/snapshot-policies?name=p1&fields=copies")
        .await;
    assert_eq!(pol["records"][0]["copies"][0]["count"], 3);
    let g = sim
        .call(Method::POST, "/api/protocols/san/igroups", Some(json!({"svm": {"name": "svm1"}, "name": "g1", "os_type": "vmware", "initiators": [{"name": "iqn.x"}]})))
        .await;
    assert_eq!(g.status, StatusCode::CREATED);
    let m = sim
        .call(Method::POST, "/api/protocols/san/lun-maps", Some(json!({"svm": {"name": "svm1"}, "igroup": {"name": "g1"}, "lun": {"name": "/vol/vol1/lun1"}})))
        .await;
    assert_eq!(m.status, StatusCode::CREATED, "{}", m.body);
    let maps = sim
        .get("/api/protocols/san/lun-maps?fields=logical_unit_number")
        .await;
    assert_eq!(maps["records"][0]["logical_unit_number"], 0);
    let r = sim
        .call(Method::DELETE, m.location.as_deref().unwrap(), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let svms = sim.get("/api/svm/svms").await;
    assert_eq!(svms["records"][0]["name"], "svm1");
    let missing = sim
        .call(Method::GET, "/api/storage/volumes/nope", None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["error"]["code"], "4");
    sim.handle.stop().await;
}

#[tokio::test]
async fn real_clock_follows_the_wall_clock_and_refuses_advance() {
    let handle = start(ServeOptions {
        world: WorldSource::Toml(support::world(WORLD)),
        listen: "127.0.0.1:0".parse().unwrap(),
        clock: ClockMode::Real,
        start: None,
        tls: false,
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let before = chrono::Utc::now();
    let clock: Value = http
        .get(format!("{}/simulator/v1/clock", handle.base_url()))
        .basic_auth(support::USER, Some(support::PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let now: chrono::DateTime<chrono::Utc> = clock["now"].as_str().unwrap().parse().unwrap();
    assert!(now >= before && now <= chrono::Utc::now(), "{clock}");
    assert_eq!(clock["mode"], "real");
    let r = http
        .post(format!("{}/simulator/v1/clock/advance", handle.base_url()))
        .basic_auth(support::USER, Some(support::PASSWORD))
        .json(&json!({"seconds": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    handle.stop().await;
}

/// `GET /simulator/v1/requests` counts the `/api` requests answered over HTTP, by method, with
/// job polls apart; unauthenticated requests and the admin API are not counted. The expected
/// figures are the requests this test sends, counted by hand.
#[tokio::test]
async fn request_counter_counts_api_requests_by_method() {
    let sim = Sim::start(WORLD, START).await;
    let before = sim.get("/simulator/v1/requests").await;
    assert_eq!(before["total"], 0, "{before}");
    // Not counted: a request without credentials, and the admin API itself.
    let unauth = sim
        .http
        .get(format!("{}/api/cluster", sim.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), StatusCode::UNAUTHORIZED);
    sim.get("/simulator/v1/clock").await;
    // GET 1: the volume's uuid.
    let vol = sim.volume_uuid("vol1").await;
    // POST 1 + GET 2 (job poll 1).
    sim.ok_job(
        Method::POST,
        &format!("/api/storage/volumes/{vol}/snapshots"),
        Some(json!({"name": "counted"})),
    )
    .await;
    // GET 3: the snapshot's uuid.
    let snap = sim.snapshot(&vol, "counted").await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    // PATCH 1 (a 404 is counted too: the API answered it).
    let missing = sim
        .call(
            Method::PATCH,
            "/api/storage/volumes/no-such-uuid",
            Some(json!({})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // DELETE 1 + GET 4 (job poll 2).
    sim.ok_job(
        Method::DELETE,
        &format!("/api/storage/volumes/{vol}/snapshots/{snap}"),
        None,
    )
    .await;
    // GET 5: a job collection is not a job poll.
    sim.get("/api/cluster/jobs").await;
    let after = sim.get("/simulator/v1/requests").await;
    assert_eq!(
        after,
        json!({"total": 8, "get": 5, "post": 1, "patch": 1, "delete": 1, "other": 0, "job_polls": 2}),
    );
    sim.handle.stop().await;
}

/// A snapshot's `snapmirror_label`: sent in the POST body, listed (bulk and per volume), asked
/// for with `fields=`, filtered on, changed by PATCH; refused when out of ONTAP's 1–31.
#[tokio::test]
async fn the_snapmirror_label_round_trips() {
    let sim = Sim::start(WORLD, START).await;
    let vol = sim.volume_uuid("vol1").await;
    let snapshots = format!("/api/storage/volumes/{vol}/snapshots");
    sim.ok_job(
        Method::POST,
        &snapshots,
        Some(json!({"name": "hourly.2026-01-05_0005", "comment": "managed", "snapmirror_label": "hourly"})),
    )
    .await;
    sim.ok_job(Method::POST, &snapshots, Some(json!({"name": "plain"})))
        .await;
    let listed = sim
        .get("/api/storage/volumes/*/snapshots?fields=snapmirror_label,comment&order_by=name")
        .await;
    let records = listed["records"].as_array().unwrap();
    assert_eq!(records[0]["name"], "hourly.2026-01-05_0005");
    assert_eq!(records[0]["snapmirror_label"], "hourly");
    assert_eq!(records[0]["volume"]["name"], "vol1");
    assert!(
        records[1].get("snapmirror_label").is_none(),
        "no label, no field: {}",
        records[1]
    );
    let filtered = sim
        .get(&format!("{snapshots}?snapmirror_label=hourly&fields=name"))
        .await;
    assert_eq!(filtered["num_records"], 1, "{filtered}");
    let uuid = filtered["records"][0]["uuid"].as_str().unwrap().to_string();
    // Only the fields asked for.
    let one = sim
        .get(&format!("{snapshots}/{uuid}?fields=snapmirror_label"))
        .await;
    assert_eq!(one["snapmirror_label"], "hourly");
    assert!(one.get("comment").is_none(), "{one}");
    let patched = sim
        .call(
            Method::PATCH,
            &format!("{snapshots}/{uuid}"),
            Some(json!({"snapmirror_label": "daily"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        sim.get(&format!("{snapshots}/{uuid}")).await["snapmirror_label"],
        "daily"
    );
    for bad in [
        json!(""),
        json!("a-label-of-thirty-two-characters"),
        json!(7),
    ] {
        let r = sim
            .call(
                Method::POST,
                &snapshots,
                Some(json!({"name": "refused", "snapmirror_label": bad})),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert_eq!(r.body["error"]["target"], "snapmirror_label");
    }
    assert_eq!(sim.snapshot_names(&vol).await.len(), 2);
    sim.handle.stop().await;
}

/// Knob `reserved_snapshot_prefixes`: a POST whose name begins with a reserved prefix and a dot
/// is refused at once with 1638477 in ONTAP's envelope; other names are created; the schedule
/// still takes its own snapshots with that prefix.
#[tokio::test]
async fn reserved_prefixes_answer_1638477_and_leave_other_names_alone() {
    let world = format!(
        "[knobs]\nreserved_snapshot_prefixes = [\"five\"]\n{}",
        WORLD.replace("snapshot_policy = \"none\"", "snapshot_policy = \"dense\"")
    );
    let sim = Sim::start(&world, START).await;
    assert_eq!(
        sim.get("/simulator/v1/knobs").await["reserved_snapshot_prefixes"],
        json!(["five"])
    );
    let vol = sim.volume_uuid("vol1").await;
    let snapshots = format!("/api/storage/volumes/{vol}/snapshots");
    let refused = sim
        .call(
            Method::POST,
            &snapshots,
            Some(json!({"name": "five.2026-01-05_0005"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.body["error"]["code"], "1638477");
    assert_eq!(refused.body["error"]["target"], "name");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot begin with the specified prefix \"five.\""),
        "{}",
        refused.body
    );
    for name in ["five", "fiver.1", "weekly.five.1"] {
        sim.ok_job(Method::POST, &snapshots, Some(json!({ "name": name })))
            .await;
    }
    sim.advance(300).await;
    let names = sim.snapshot_names(&vol).await;
    assert!(
        names.contains(&"five.2026-01-05_0005".to_string()),
        "{names:?}"
    );
    // The knob is an admin setting like the others: clearing it lets the name through.
    let knobs = sim
        .call(
            Method::POST,
            "/simulator/v1/knobs",
            Some(json!({"reserved_snapshot_prefixes": []})),
        )
        .await;
    assert_eq!(knobs.status, StatusCode::OK);
    sim.ok_job(Method::POST, &snapshots, Some(json!({"name": "five.mine"})))
        .await;
    let bad = sim
        .call(
            Method::POST,
            "/simulator/v1/knobs",
            Some(json!({"reserved_snapshot_prefixes": ["a/b"]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["target"], "reserved_snapshot_prefixes");
    sim.handle.stop().await;
}

/// A name the volume holds already: 409 at once with code "525059" in ONTAP's envelope, the
/// existing snapshot untouched — also with `return_timeout` and with synchronous mutations.
#[tokio::test]
async fn a_taken_snapshot_name_answers_525059() {
    let sim = Sim::start(WORLD, START).await;
    let vol = sim.volume_uuid("vol1").await;
    let snapshots = format!("/api/storage/volumes/{vol}/snapshots");
    sim.ok_job(
        Method::POST,
        &snapshots,
        Some(json!({"name": "taken", "comment": "first"})),
    )
    .await;
    for (query, knobs) in [
        ("", json!({})),
        ("?return_timeout=15", json!({})),
        ("", json!({"async_mutations": false})),
    ] {
        sim.call(Method::POST, "/simulator/v1/knobs", Some(knobs))
            .await;
        let dup = sim
            .call(
                Method::POST,
                &format!("{snapshots}{query}"),
                Some(json!({"name": "taken", "comment": "second", "snapmirror_label": "x"})),
            )
            .await;
        assert_eq!(dup.status, StatusCode::CONFLICT, "{query}");
        assert_eq!(
            dup.body,
            json!({"error": {
                "message": "Snapshot copy \"taken\" already exists on volume \"vol1\".",
                "code": "525059",
                "target": "name"}}),
        );
    }
    let kept = sim.snapshot(&vol, "taken").await;
    assert_eq!(kept["comment"], "first");
    sim.handle.stop().await;
}

/// A snapshot held by SnapMirror (world file or admin API) lists the owner and refuses its
/// delete in a failed job, with the knob's code; released, it deletes.
#[tokio::test]
async fn a_snapshot_busy_with_a_snapmirror_owner_refuses_its_delete() {
    let world = WORLD.replace(
        "luns = [{ name = \"lun1\" }]",
        "luns = [{ name = \"lun1\" }]\n\
         [[clusters.svms.volumes.snapshots]]\n\
         name = \"vault.1\"\n\
         snapmirror_label = \"weekly\"\n\
         owners = [\"snapmirror\"]",
    );
    let sim = Sim::start(&world, START).await;
    let vol = sim.volume_uuid("vol1").await;
    let snapshots = format!("/api/storage/volumes/{vol}/snapshots");
    let vault = sim.snapshot(&vol, "vault.1").await;
    assert_eq!(vault["owners"], json!(["snapmirror"]));
    let vault_uuid = vault["uuid"].as_str().unwrap().to_string();
    let job = sim
        .failed_job(Method::DELETE, &format!("{snapshots}/{vault_uuid}"))
        .await;
    assert_eq!(job["code"], 1_638_555);
    assert!(job["message"]
        .as_str()
        .unwrap()
        .contains("has not expired or is locked"));
    // The admin API holds another snapshot, by names, on the answering cluster.
    sim.ok_job(Method::POST, &snapshots, Some(json!({"name": "dumped"})))
        .await;
    let owners = "/simulator/v1/volumes/vol1/snapshots/dumped/owners";
    let held = sim
        .call(
            Method::POST,
            owners,
            Some(json!({"owners": ["dump", "snapmirror"]})),
        )
        .await;
    assert_eq!(held.status, StatusCode::OK, "{}", held.body);
    assert_eq!(held.body["owners"], json!(["dump", "snapmirror"]));
    assert_eq!(
        sim.snapshot(&vol, "dumped").await["owners"],
        json!(["dump", "snapmirror"])
    );
    sim.call(
        Method::POST,
        "/simulator/v1/knobs",
        Some(json!({"locked_delete_code": 1_638_543})),
    )
    .await;
    let dumped = sim.snapshot(&vol, "dumped").await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let job = sim
        .failed_job(Method::DELETE, &format!("{snapshots}/{dumped}"))
        .await;
    assert_eq!(job["code"], 1_638_543);
    // Unknown owners, snapshots and volumes are refused; nothing changes.
    for (path, body, status, target) in [
        (owners, json!({"owners": ["backup-tool"]}), 400, "owners"),
        (owners, json!({"owners": "dump"}), 400, "owners"),
        (owners, json!({}), 400, "owners"),
        (
            "/simulator/v1/volumes/vol1/snapshots/nope/owners",
            json!({"owners": []}),
            404,
            "snapshot",
        ),
        (
            "/simulator/v1/volumes/nope/snapshots/dumped/owners",
            json!({"owners": []}),
            404,
            "volume",
        ),
    ] {
        let r = sim.call(Method::POST, path, Some(body)).await;
        assert_eq!(r.status.as_u16(), status, "{path}: {}", r.body);
        assert_eq!(r.body["error"]["target"], target);
    }
    // Released by the volume's and snapshot's uuids, it deletes.
    let released = sim
        .call(
            Method::POST,
            &format!("/simulator/v1/volumes/{vol}/snapshots/{dumped}/owners"),
            Some(json!({"owners": []})),
        )
        .await;
    assert_eq!(released.body["owners"], json!([]));
    assert_eq!(
        sim.get(owners).await["held_by"],
        json!([]),
        "GET reads them back"
    );
    sim.ok_job(Method::DELETE, &format!("{snapshots}/{dumped}"), None)
        .await;
    sim.handle.stop().await;
}
