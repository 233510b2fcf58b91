//! Clone semantics over HTTP: the SnapRestore chain lock, `snapshot_clone_dependency`, FlexClone
//! LUN block sharing, the FlexClone license refusal and the FlexClone volume parent lock.

#[path = "sim_support/mod.rs"]
mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::Sim;

const START: &str = "2026-03-10T10:00:00Z";

fn cluster(licenses: &str, dependency: bool) -> String {
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
snapshot_clone_dependency = {dependency}
luns = [{{ name = "lun1", mapped_to = ["esx"] }}]
"#
    )
}

/// The uuid of a created snapshot, by following its Location (`…/snapshots/?name=<name>`, a
/// one-record collection, as ONTAP answers it).
async fn snapshot_uuid(sim: &Sim, location: &Option<String>) -> String {
    let found = sim.get(location.as_deref().expect("Location")).await;
    assert_eq!(found["num_records"], 1, "{found}");
    found["records"][0]["uuid"]
        .as_str()
        .expect("uuid")
        .to_string()
}

/// Backing snapshot + SnapRestore clone; returns (volume uuid, backing uuid).
async fn backing_and_clone(sim: &Sim) -> (String, String) {
    let vol = sim.volume_uuid("vol1").await;
    let loc = sim
        .ok_job(
            Method::POST,
            &format!("/api/storage/volumes/{vol}/snapshots"),
            Some(json!({"name": "backing", "comment": "veeam"})),
        )
        .await;
    let backing = snapshot_uuid(sim, &loc).await;
    sim.ok_job(
        Method::PATCH,
        &format!("/api/storage/volumes/{vol}?restore_to.snapshot.name=backing&restore_to.path=/lun1&restore_to.restore_path=/lun1_clone"),
        None,
    )
    .await;
    let s = sim.snapshot(&vol, "backing").await;
    assert_eq!(s["owners"], json!(["lun_clone"]));
    assert_eq!(s["uuid"], backing.as_str());
    (vol, backing)
}

#[tokio::test]
async fn snaprestore_clone_chain_lock() {
    let sim = Sim::start(&cluster("\"snaprestore\"", false), START).await;
    let (vol, backing) = backing_and_clone(&sim).await;
    // The default policy's hourly schedule fires at 10:05 and captures the clone.
    let adv = sim.advance_events(600).await;
    assert_eq!(adv["counts"]["taken"], 1, "{adv}");
    let taken: Vec<&Value> = adv["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "taken")
        .collect();
    assert_eq!(taken.len(), 1, "{adv}");
    assert_eq!(taken[0]["snapshot"], "hourly.2026-03-10_1005");
    let delete_backing = format!("/api/storage/volumes/{vol}/snapshots/{backing}");
    let job = sim.failed_job(Method::DELETE, &delete_backing).await;
    assert_eq!(job["code"], 1_638_555);
    let message = job["message"].as_str().unwrap();
    assert!(message.contains("Snapshot copy \"backing\" of volume \"vol1\" on Vserver \"svm1\" has not expired or is locked"), "{message}");

    let clone = sim.lun_uuid("/vol/vol1/lun1_clone").await;
    assert_eq!(
        sim.get(&format!("/api/storage/luns/{clone}?fields=clone"))
            .await["clone"]["created_as_clone"],
        true
    );
    sim.ok_job(Method::DELETE, &format!("/api/storage/luns/{clone}"), None)
        .await;
    let job = sim.failed_job(Method::DELETE, &delete_backing).await;
    assert_eq!(
        job["code"], 1_638_555,
        "deleting the clone alone does not unlock it"
    );

    let pin = sim.snapshot(&vol, "hourly.2026-03-10_1005").await;
    assert!(
        pin.get("owners").is_none(),
        "the pinning snapshot itself is not locked: {pin}"
    );
    sim.ok_job(
        Method::DELETE,
        &format!(
            "/api/storage/volumes/{vol}/snapshots/{}",
            pin["uuid"].as_str().unwrap()
        ),
        None,
    )
    .await;
    sim.ok_job(Method::DELETE, &delete_backing, None).await;
    assert_eq!(sim.snapshot_names(&vol).await, Vec::<String>::new());
    sim.handle.stop().await;
}

#[tokio::test]
async fn snapshot_clone_dependency_on_frees_backing_when_clone_is_deleted() {
    let sim = Sim::start(&cluster("\"snaprestore\"", true), START).await;
    let (vol, backing) = backing_and_clone(&sim).await;
    sim.advance(600).await;
    let delete_backing = format!("/api/storage/volumes/{vol}/snapshots/{backing}");
    assert_eq!(
        sim.failed_job(Method::DELETE, &delete_backing).await["code"],
        1_638_555,
        "locked while the clone exists"
    );
    let clone = sim.lun_uuid("/vol/vol1/lun1_clone").await;
    sim.ok_job(Method::DELETE, &format!("/api/storage/luns/{clone}"), None)
        .await;
    sim.ok_job(Method::DELETE, &delete_backing, None).await;
    assert_eq!(
        sim.snapshot_names(&vol).await,
        vec!["hourly.2026-03-10_1005".to_string()]
    );
    sim.handle.stop().await;
}

#[tokio::test]
async fn flexclone_lun_locks_only_during_block_sharing() {
    let sim = Sim::start(
        &format!(
            "[knobs]\nblock_sharing_seconds = 120\n{}",
            cluster("\"flexclone\"", false)
        ),
        START,
    )
    .await;
    let vol = sim.volume_uuid("vol1").await;
    let loc = sim
        .ok_job(
            Method::POST,
            &format!("/api/storage/volumes/{vol}/snapshots"),
            Some(json!({"name": "b"})),
        )
        .await;
    let b = snapshot_uuid(&sim, &loc).await;
    let lun = sim
        .ok_job(
            Method::POST,
            "/api/storage/luns",
            Some(json!({"svm": {"name": "svm1"}, "name": "/vol/vol1/fc1", "clone": {"source": {"name": "/vol/vol1/.snapshot/b/lun1"}}})),
        )
        .await;
    assert!(lun.unwrap().starts_with("/api/storage/luns/"));
    assert_eq!(
        sim.snapshot(&vol, "b").await["owners"],
        json!(["file_clone_dependent"])
    );
    let job = sim
        .failed_job(
            Method::DELETE,
            &format!("/api/storage/volumes/{vol}/snapshots/{b}"),
        )
        .await;
    assert_eq!(job["code"], 1_638_555);
    // New snapshots are refused while block sharing runs.
    let r = sim
        .call(
            Method::POST,
            &format!("/api/storage/volumes/{vol}/snapshots"),
            Some(json!({"name": "during"})),
        )
        .await;
    let job = sim.job(&r).await;
    assert_eq!(job["state"], "failure");
    assert!(
        job["message"]
            .as_str()
            .unwrap()
            .contains("clones backed by snapshots"),
        "{job}"
    );
    sim.advance(120).await;
    assert!(sim.snapshot(&vol, "b").await.get("owners").is_none());
    sim.ok_job(
        Method::POST,
        &format!("/api/storage/volumes/{vol}/snapshots"),
        Some(json!({"name": "after"})),
    )
    .await;
    sim.ok_job(
        Method::DELETE,
        &format!("/api/storage/volumes/{vol}/snapshots/{b}"),
        None,
    )
    .await;
    sim.handle.stop().await;
}

#[tokio::test]
async fn flexclone_needs_its_license() {
    let sim = Sim::start(&cluster("\"snaprestore\"", false), START).await;
    let lic = sim
        .get("/api/cluster/licensing/licenses?fields=state")
        .await;
    let names: Vec<&str> = lic["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["base", "snaprestore"],
        "unlicensed packages are hidden"
    );
    let lic = sim
        .get("/api/cluster/licensing/licenses?state=unlicensed&name=flexclone")
        .await;
    assert_eq!(lic["num_records"], 1);
    assert_eq!(
        sim.get("/api/cluster/licensing/licenses/flexclone?fields=state")
            .await["state"],
        "unlicensed"
    );
    let vol = sim.volume_uuid("vol1").await;
    sim.ok_job(
        Method::POST,
        &format!("/api/storage/volumes/{vol}/snapshots"),
        Some(json!({"name": "b"})),
    )
    .await;
    let r = sim
        .call(
            Method::POST,
            "/api/storage/luns",
            Some(json!({"svm": {"name": "svm1"}, "name": "/vol/vol1/fc1", "clone": {"source": {"name": "/vol/vol1/.snapshot/b/lun1"}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["code"], "13565952");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("FlexClone license"),
        "{}",
        r.body
    );
    sim.handle.stop().await;
}

#[tokio::test]
async fn flexclone_volume_locks_its_parent_snapshot() {
    let sim = Sim::start(&cluster("\"flexclone\"", false), START).await;
    let vol = sim.volume_uuid("vol1").await;
    let loc = sim
        .ok_job(
            Method::POST,
            &format!("/api/storage/volumes/{vol}/snapshots"),
            Some(json!({"name": "base"})),
        )
        .await;
    let base = snapshot_uuid(&sim, &loc).await;
    let clone_loc = sim
        .ok_job(
            Method::POST,
            "/api/storage/volumes",
            Some(json!({"name": "vol1_clone", "svm": {"name": "svm1"}, "clone": {"is_flexclone": true, "parent_volume": {"name": "vol1"}, "parent_snapshot": {"name": "base"}}})),
        )
        .await
        .unwrap();
    let clone = sim.get(&format!("{clone_loc}?fields=clone")).await;
    assert_eq!(clone["clone"]["is_flexclone"], true);
    assert_eq!(clone["clone"]["parent_snapshot"]["name"], "base");
    assert_eq!(
        sim.snapshot(&vol, "base").await["owners"],
        json!(["volume_clone"])
    );
    let delete_base = format!("/api/storage/volumes/{vol}/snapshots/{base}");
    assert_eq!(
        sim.failed_job(Method::DELETE, &delete_base).await["code"],
        1_638_555
    );
    sim.ok_job(Method::DELETE, &clone_loc, None).await;
    sim.ok_job(Method::DELETE, &delete_base, None).await;
    sim.handle.stop().await;
}

#[tokio::test]
async fn mapped_lun_delete_needs_allow_delete_while_mapped() {
    let sim = Sim::start(&cluster("", false), START).await;
    let missing = sim
        .call(
            Method::POST,
            "/api/storage/luns",
            Some(json!({"svm": {"name": "svm1"}, "name": "/vol/vol1/new"})),
        )
        .await;
    assert_eq!(
        missing.status,
        StatusCode::BAD_REQUEST,
        "os_type and space.size are required"
    );
    let created = sim
        .ok_job(
            Method::POST,
            "/api/storage/luns",
            Some(json!({"svm": {"name": "svm1"}, "name": "/vol/vol1/new", "os_type": "linux", "space": {"size": 1048576}})),
        )
        .await
        .unwrap();
    let lun = sim
        .get(&format!("{created}?fields=os_type,space.size,location"))
        .await;
    assert_eq!(
        (lun["os_type"].as_str(), lun["space"]["size"].as_u64()),
        (Some("linux"), Some(1_048_576))
    );
    assert_eq!(lun["location"]["volume"]["name"], "vol1");
    let lun = sim.lun_uuid("/vol/vol1/lun1").await;
    assert_eq!(
        sim.get(&format!("/api/storage/luns/{lun}?fields=status.mapped"))
            .await["status"]["mapped"],
        true
    );
    let r = sim
        .call(Method::DELETE, &format!("/api/storage/luns/{lun}"), None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["code"], "1254197");
    sim.ok_job(
        Method::DELETE,
        &format!("/api/storage/luns/{lun}?allow_delete_while_mapped=true"),
        None,
    )
    .await;
    sim.handle.stop().await;
}
