//! Webhook hooks in real time against a loopback HTTP server: a 2xx answer completes the cycle,
//! an error answer fails it with what the server said, and a server that does not answer by the
//! hook's timeout is an overrun — every cycle is released either way.

mod agent_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_support::{leftovers, policy, start, Setup};
use axum::routing::post;
use axum::{Json, Router};
use chrono::TimeDelta;
use snapwarden::agent::cycle::{CycleResult, CycleState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_complete_fail_or_overrun_and_every_cycle_is_released() {
    let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let seen = bodies.clone();
    let app = Router::new()
        .route(
            "/ok",
            post(move |Json(body): Json<serde_json::Value>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(body);
                    "backup done"
                }
            }),
        )
        .route(
            "/fail",
            post(|| async {
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "repository offline",
                )
            }),
        )
        .route(
            "/hang",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(300)).await;
                "too late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let window = |name: &str, volume: &str, path: &str| {
        format!(
            r#"
[[window]]
name = "{name}"
volumes = ["lab/svm1/{volume}"]
start = "10 1 * * *"
timezone = "UTC"
expected = "20s"
max = "1m"
hook = {{ url = "{base}/{path}", timeout = "2s" }}
"#
        )
    };
    let mut text = String::from(
        r#"
[agent]
guard = "30s"

[[cluster]]
name = "lab"
endpoint = "simulator"
timezone = "UTC"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "p"
copies = [{ schedule = "hourly", count = 3 }]
"#,
    );
    for v in ["vol_ok", "vol_fail", "vol_hang"] {
        text.push_str(&format!(
            "\n[[volume]]\ncluster = \"lab\"\nsvm = \"svm1\"\nname = \"{v}\"\nluns = [\"/vol/{v}/lun0\"]\nsnapshot_policy = \"p\"\n"
        ));
    }
    text.push_str(&window("ok", "vol_ok", "ok"));
    text.push_str(&window("fail", "vol_fail", "fail"));
    text.push_str(&window("hang", "vol_hang", "hang"));

    // Real time, one second before the windows open.
    let h = start(policy(&text), Setup::at("2027-01-01T01:09:59Z"));
    let end = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let cycles = h.cycles();
        if cycles.len() == 3 && cycles.iter().all(|c| c.state.is_terminal()) {
            break;
        }
        assert!(std::time::Instant::now() < end, "cycles: {cycles:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cycles = h.cycles();
    let by = |w: &str| cycles.iter().find(|c| c.window == w).unwrap().clone();
    let ok = by("ok");
    assert_eq!(ok.result, Some(CycleResult::Completed));
    let fail = by("fail");
    assert_eq!(fail.result, Some(CycleResult::Failed));
    assert!(
        fail.detail.contains("500") && fail.detail.contains("repository offline"),
        "{}",
        fail.detail
    );
    let hang = by("hang");
    assert_eq!(hang.result, Some(CycleResult::Overrun));
    assert!(
        hang.detail.contains("did not answer by the deadline"),
        "{}",
        hang.detail
    );
    // The overrun ended at the hook's 2 s timeout, not at max (1 minute).
    let held = hang.clones_deleted_at.unwrap() - hang.clones_created_at.unwrap();
    assert!(held < TimeDelta::seconds(10), "{held}");
    for c in &cycles {
        assert_eq!(c.state, CycleState::Released, "{c:?}");
    }
    assert!(leftovers(&h, "snapwarden").is_empty());

    // The webhook received the cycle as documented.
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let b = &bodies[0];
    assert_eq!(b["backing_snapshot"], "snapwarden.ok.20270101T011000Z");
    assert_eq!(b["volume"], "vol_ok");
    assert_eq!(
        b["clones"][0]["path"],
        "/vol/vol_ok/snapwarden.ok.20270101T011000Z.lun0"
    );
    assert_eq!(b["clones"][0]["source"], "/vol/vol_ok/lun0");
    assert_eq!(b["clone_method"], "snaprestore");
    h.stop().await;
}
