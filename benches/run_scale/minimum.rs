//! The fewest REST calls one backup cycle needs, measured on the simulator by doing a cycle's
//! lifecycle by hand on the calibration volume: create the backing snapshot, clone its LUN
//! (SnapRestore, the clone method on a SnapRestore-only cluster), delete the clone, delete the
//! snapshot — each mutation followed by job polls until its job has ended, as the simulator
//! answers (202 + a job under the default `async_mutations`). The simulator's own request
//! counter, read before and after each half, is the measure; the look-ups a hand-made cycle
//! needs besides (the volume's and the clone's uuids) are made outside the counted spans.

use reqwest::Method;
use serde_json::{json, Value};

use super::estate::{CALIBRATION_VOLUME, SVM};
use crate::common::sim_http::{Counts, SimHttp};

/// Polls of one job at most: the simulator's jobs end at once unless a fault delays them.
const MAX_POLLS: usize = 50;

/// The calls of each half of a cycle, as the simulator counted them.
#[derive(Debug, Clone, Copy)]
pub struct Minimum {
    /// Create the backing snapshot and clone the LUN, with their job polls.
    pub create: Counts,
    /// Delete the clone and the snapshot, with their job polls.
    pub release: Counts,
}

impl Minimum {
    pub fn per_cycle(&self) -> u64 {
        self.create.total + self.release.total
    }

    /// `create half 4 (1 POST, 1 PATCH, 2 job polls) × started + release half 4 (…) × released`.
    pub fn describe(&self, started: usize, released: usize) -> String {
        let half = |c: Counts| {
            let parts: Vec<String> = [
                (c.post, "POST"),
                (c.patch, "PATCH"),
                (c.delete, "DELETE"),
                (c.job_polls, "job polls"),
                (c.get - c.job_polls, "other GET"),
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
            format!("{} ({})", c.total, parts.join(", "))
        };
        format!(
            "({} a cycle) create half {} × {started} started + release half {} × {released} released",
            self.per_cycle(),
            half(self.create),
            half(self.release)
        )
    }
}

/// Runs one lifecycle by hand on the calibration volume of the endpoint `sim` talks to.
pub fn measure(sim: &SimHttp) -> Minimum {
    let volume = sim.get(&format!(
        "/api/storage/volumes?name={CALIBRATION_VOLUME}&svm.name={SVM}&fields=uuid"
    ))["records"][0]["uuid"]
        .as_str()
        .expect("the calibration volume's uuid")
        .to_string();
    let snapshot = "calibration.1";
    let clone = format!("/vol/{CALIBRATION_VOLUME}/clone0");

    let before = sim.requests();
    let created = mutate(
        sim,
        Method::POST,
        &format!("/api/storage/volumes/{volume}/snapshots?return_records=true"),
        Some(json!({ "name": snapshot })),
    );
    let snapshot_uuid = created["records"][0]["uuid"]
        .as_str()
        .expect("the create's record (return_records=true) carries the snapshot's uuid")
        .to_string();
    mutate(
        sim,
        Method::PATCH,
        &format!(
            "/api/storage/volumes/{volume}?restore_to.snapshot.name={snapshot}\
             &restore_to.path=/lun0&restore_to.restore_path=/clone0"
        ),
        Some(json!({})),
    );
    let create = sim.requests().since(before);

    let clone_uuid = sim.get(&format!("/api/storage/luns?name={clone}&fields=uuid"))["records"][0]
        ["uuid"]
        .as_str()
        .expect("the clone's uuid")
        .to_string();
    let before = sim.requests();
    mutate(
        sim,
        Method::DELETE,
        &format!("/api/storage/luns/{clone_uuid}"),
        None,
    );
    mutate(
        sim,
        Method::DELETE,
        &format!("/api/storage/volumes/{volume}/snapshots/{snapshot_uuid}"),
        None,
    );
    let release = sim.requests().since(before);
    Minimum { create, release }
}

/// One mutation, then its job polled until it has ended (none when the answer carries none);
/// panics unless it succeeded. Returns the mutation's answer.
fn mutate(sim: &SimHttp, method: Method, path: &str, body: Option<Value>) -> Value {
    let (status, answer) = sim.call(method.clone(), path, body);
    assert!(
        (200..300).contains(&status),
        "{method} {path}: HTTP {status}: {answer}"
    );
    let Some(job) = answer["job"]["uuid"].as_str() else {
        return answer;
    };
    for _ in 0..MAX_POLLS {
        let state = sim.get(&format!("/api/cluster/jobs/{job}?fields=state,message"));
        match state["state"].as_str() {
            Some("success") => return answer,
            Some("failure") => panic!("{method} {path}: job {job} failed: {state}"),
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
    panic!("{method} {path}: job {job} had not ended after {MAX_POLLS} polls");
}
