//! One simulator, several clusters: every cluster of the world has its own REST endpoint (its own
//! name, time zone, volumes and snapshots), while the clock and the admin API are shared.

#[path = "sim_support/mod.rs"]
mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use snapwarden::sim::{start, ClockMode, ServeOptions, WorldSource};
use support::Sim;

const START: &str = "2026-01-05T00:00:00Z";

/// Two clusters in different zones; both take an hourly snapshot of each of their volumes.
const WORLD: &str = r#"
[[clusters]]
name = "tokyo"
timezone = "Asia/Tokyo"
[[clusters.schedules]]
name = "hourly"
cron = "0 * * * *"
[[clusters.snapshot_policies]]
name = "hourly"
copies = [{ schedule = "hourly", count = 48 }]
[[clusters.svms]]
name = "svm_t"
[[clusters.svms.volumes]]
name = "vol_t1"
snapshot_policy = "hourly"
[[clusters.svms.volumes]]
name = "vol_t2"
snapshot_policy = "hourly"

[[clusters]]
name = "newyork"
timezone = "America/New_York"
[[clusters.schedules]]
name = "hourly"
cron = "0 * * * *"
[[clusters.snapshot_policies]]
name = "hourly"
copies = [{ schedule = "hourly", count = 48 }]
[[clusters.svms]]
name = "svm_n"
[[clusters.svms.volumes]]
name = "vol_n1"
snapshot_policy = "hourly"
"#;

/// A request with the test user against one cluster's base URL; answers (status, JSON body).
async fn call(sim: &Sim, base: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut req = sim
        .http
        .request(method, format!("{base}{path}"))
        .basic_auth(support::USER, Some(support::PASSWORD));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    Reply { status, body }
}

struct Reply {
    status: StatusCode,
    body: Value,
}

async fn get(sim: &Sim, base: &str, path: &str) -> Value {
    let r = call(sim, base, Method::GET, path, None).await;
    assert_eq!(r.status, StatusCode::OK, "GET {base}{path}: {}", r.body);
    r.body
}

fn names(collection: &Value) -> Vec<String> {
    let mut out: Vec<String> = collection["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_string())
        .collect();
    out.sort();
    out
}

async fn advance(sim: &Sim, base: &str, seconds: i64) -> Value {
    let r = call(
        sim,
        base,
        Method::POST,
        "/simulator/v1/clock/advance",
        Some(json!({ "seconds": seconds })),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

async fn snapshot_names(sim: &Sim, base: &str, vol_uuid: &str) -> Vec<String> {
    names(
        &get(
            sim,
            base,
            &format!("/api/storage/volumes/{vol_uuid}/snapshots?order_by=create_time"),
        )
        .await,
    )
}

async fn volume_uuid(sim: &Sim, base: &str, name: &str) -> String {
    let v = get(sim, base, &format!("/api/storage/volumes?name={name}")).await;
    assert_eq!(v["num_records"], 1, "{name} on {base}: {v}");
    v["records"][0]["uuid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_cluster_has_its_own_endpoint_and_they_share_one_clock() {
    let sim = Sim::start(WORLD, START).await;
    let clusters = sim.handle.clusters().to_vec();
    assert_eq!(
        clusters.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["tokyo", "newyork"]
    );
    assert_ne!(clusters[0].1, clusters[1].1);
    assert_eq!(clusters[0].1, sim.handle.addr());
    let tokyo = sim.handle.base_url_of("tokyo").expect("tokyo");
    let newyork = sim.handle.base_url_of("newyork").expect("newyork");
    assert_eq!(tokyo, sim.handle.base_url());
    assert_eq!(newyork, format!("http://{}", clusters[1].1));
    assert!(sim.handle.base_url_of("paris").is_none());

    // Each endpoint is its own cluster: name, zone, SVMs and volumes.
    for (base, name, zone, svms, volumes) in [
        (
            &tokyo,
            "tokyo",
            "Asia/Tokyo",
            ["svm_t"],
            vec!["vol_t1", "vol_t2"],
        ),
        (
            &newyork,
            "newyork",
            "America/New_York",
            ["svm_n"],
            vec!["vol_n1"],
        ),
    ] {
        let c = get(&sim, base, "/api/cluster?fields=name,timezone").await;
        assert_eq!(c["name"], name, "{c}");
        assert_eq!(c["timezone"]["name"], zone, "{c}");
        assert_eq!(names(&get(&sim, base, "/api/svm/svms").await), svms);
        assert_eq!(
            names(&get(&sim, base, "/api/storage/volumes").await),
            volumes
        );
    }
    let t1 = volume_uuid(&sim, &tokyo, "vol_t1").await;
    let t2 = volume_uuid(&sim, &tokyo, "vol_t2").await;
    let n1 = volume_uuid(&sim, &newyork, "vol_n1").await;

    // One clock: advancing through New York's admin API fires Tokyo's schedules too, and each
    // cluster names its snapshots in its own local time (01:00Z = 10:00 JST = 20:00 EST).
    let adv = advance(&sim, &newyork, 3600).await;
    assert_eq!(adv["counts"]["taken"], 3, "{adv}");
    for vol in [&t1, &t2] {
        assert_eq!(
            snapshot_names(&sim, &tokyo, vol).await,
            ["hourly.2026-01-05_1000"]
        );
    }
    assert_eq!(
        snapshot_names(&sim, &newyork, &n1).await,
        ["hourly.2026-01-04_2000"]
    );
    let snap = get(
        &sim,
        &newyork,
        &format!("/api/storage/volumes/{n1}/snapshots?fields=create_time"),
    )
    .await;
    assert!(
        snap["records"][0]["create_time"]
            .as_str()
            .unwrap()
            .ends_with("-05:00"),
        "{snap}"
    );

    // ... and through Tokyo's, New York's.
    advance(&sim, &tokyo, 3600).await;
    assert_eq!(
        snapshot_names(&sim, &newyork, &n1).await,
        ["hourly.2026-01-04_2000", "hourly.2026-01-04_2100"]
    );
    assert_eq!(snapshot_names(&sim, &tokyo, &t1).await.len(), 2);
    for base in [&tokyo, &newyork] {
        let clock = get(&sim, base, "/simulator/v1/clock").await;
        assert_eq!(
            clock["now"]
                .as_str()
                .unwrap()
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap(),
            "2026-01-05T02:00:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
        );
    }

    // A snapshot made on New York exists only there.
    let created = call(
        &sim,
        &newyork,
        Method::POST,
        &format!("/api/storage/volumes/{n1}/snapshots?return_timeout=15"),
        Some(json!({"name": "manual_ny"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let on_ny = get(
        &sim,
        &newyork,
        "/api/storage/volumes/*/snapshots?name=manual_ny",
    )
    .await;
    assert_eq!(on_ny["num_records"], 1, "{on_ny}");
    let on_tokyo = get(
        &sim,
        &tokyo,
        "/api/storage/volumes/*/snapshots?name=manual_ny",
    )
    .await;
    assert_eq!(on_tokyo["num_records"], 0, "{on_tokyo}");
    let foreign = call(
        &sim,
        &tokyo,
        Method::GET,
        &format!("/api/storage/volumes/{n1}/snapshots"),
        None,
    )
    .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.body);
    let foreign = call(
        &sim,
        &tokyo,
        Method::GET,
        &format!("/api/storage/volumes/{n1}"),
        None,
    )
    .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.body);
    sim.handle.stop().await;
}

/// A port that was free a moment ago and whose successor was too (another process may take
/// either meanwhile, so callers retry a bounded number of times).
fn free_port_pair() -> Option<u16> {
    let first = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    let port = first.local_addr().ok()?.port();
    let second = std::net::TcpListener::bind(("127.0.0.1", port.checked_add(1)?)).ok()?;
    drop((first, second));
    Some(port)
}

#[tokio::test]
async fn clusters_listen_on_consecutive_ports_all_over_one_certificate() {
    let mut started = None;
    for _ in 0..20 {
        let Some(port) = free_port_pair() else {
            continue;
        };
        if let Ok(handle) = start(ServeOptions {
            world: WorldSource::Toml(support::world(WORLD)),
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            clock: ClockMode::Manual,
            start: Some(START.parse().unwrap()),
            tls: true,
        })
        .await
        {
            started = Some((port, handle));
            break;
        }
    }
    let (port, handle) = started.expect("two consecutive free loopback ports");
    let ports: Vec<u16> = handle.clusters().iter().map(|(_, a)| a.port()).collect();
    assert_eq!(ports, [port, port + 1]);
    let fingerprint = handle.fingerprint().unwrap().to_string();
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .build()
        .unwrap();
    for (name, _) in handle.clusters() {
        let base = handle.base_url_of(name).unwrap();
        assert!(base.starts_with("https://127.0.0.1:"), "{base}");
        let resp = http
            .get(format!("{base}/api/cluster"))
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
        let body: Value = resp.json().await.unwrap();
        assert_eq!(&body["name"], name.as_str());
    }
    handle.stop().await;
}
