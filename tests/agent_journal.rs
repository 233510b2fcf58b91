//! The agent when its journal cannot be written: not ready (`/readyz` 503) and counted
//! (`snapwarden_journal_errors_total`, `snapwarden_journal_writable`) while writes fail, ready
//! again after the next write succeeds — and nothing made on ONTAP without its intent on disk.
//!
//! The journal is made unwritable the way another writer makes it so: an exclusive SQLite
//! transaction held by the test on the same file (every write of the agent then fails with
//! "database is locked" after SQLite's busy wait).

mod agent_support;

use agent_support::{leftovers, policy, start, Setup};
use snapwarden::agent::http::{self, Api};
use tower::ServiceExt;

/// The lab policy with window `hourly-backup` every hour at :10 (20m expected, 40m max) on vol_a.
fn hourly() -> String {
    agent_support::lab_policy(
        "\"snaprestore\"",
        "snaprestore",
        "start = \"10 * * * *\"\nexpected = \"20m\"\nmax = \"40m\"",
        "",
    )
}

async fn readyz(api: &Api) -> (u16, String) {
    let resp = http::router(api.clone())
        .oneshot(
            axum::http::Request::get("/readyz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(start_paused = true)]
async fn a_journal_that_cannot_be_written_makes_the_agent_unready_until_a_write_succeeds() {
    let h = start(policy(&hourly()), Setup::at("2027-01-01T00:50:00Z"));
    let api = Api {
        board: h.board.clone(),
        metrics: h.metrics.clone(),
        plan: std::sync::Arc::new(http::PlanBoard::new(h.clock.clone())),
        reload: None,
        token: None,
    };
    h.wait_for("the first pass", chrono::TimeDelta::minutes(1), |h| {
        h.board.ready()
    })
    .await;
    assert_eq!(readyz(&api).await.0, 200);
    let metrics = h.metrics.render();
    assert_eq!(
        sample(&metrics, "snapwarden_journal_errors_total"),
        Some(0.0)
    );
    assert_eq!(sample(&metrics, "snapwarden_journal_writable"), Some(1.0));

    // Another writer holds the journal: the 01:10 cycle's intent cannot be written.
    let lock = rusqlite::Connection::open(h.journal.path()).expect("the journal opens");
    lock.execute_batch("BEGIN EXCLUSIVE")
        .expect("an exclusive lock");
    h.wait_for(
        "a failed journal write",
        chrono::TimeDelta::minutes(30),
        |h| !h.board.ready(),
    )
    .await;
    let (code, body) = readyz(&api).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("the journal cannot be written"), "{body}");
    assert!(body.contains("database is locked"), "{body}");
    let metrics = h.metrics.render();
    assert!(
        sample(&metrics, "snapwarden_journal_errors_total").is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "snapwarden_journal_writable"), Some(0.0));
    let journal = h.status().journal.expect("the journal's status");
    assert!(
        !journal.writable && journal.errors_total >= 1,
        "{journal:?}"
    );
    // Without its intent on disk nothing was created.
    assert_eq!(leftovers(&h, "snapwarden"), Vec::<String>::new());

    // The other writer lets go: the next cycle's writes succeed and the agent is ready again.
    lock.execute_batch("ROLLBACK").expect("the lock goes");
    h.wait_for(
        "a journal write that succeeds",
        chrono::TimeDelta::hours(2),
        |h| h.board.ready(),
    )
    .await;
    assert_eq!(readyz(&api).await.0, 200);
    assert_eq!(
        sample(&h.metrics.render(), "snapwarden_journal_writable"),
        Some(1.0)
    );
    // The next occurrence ran and left nothing behind.
    h.run_until("2027-01-01T02:40:00Z").await;
    let ran: Vec<_> = h
        .cycles()
        .into_iter()
        .map(|c| (c.window_start.to_rfc3339(), c.state.as_str()))
        .collect();
    assert!(
        ran.contains(&("2027-01-01T02:10:00+00:00".to_string(), "released")),
        "{ran:?}"
    );
    assert_eq!(leftovers(&h, "snapwarden"), Vec::<String>::new());
    let (left, _, _) = h.stop().await;
    assert!(left.is_empty(), "{left:?}");
}
