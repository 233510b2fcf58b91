//! What the agent's log says, read back: the demo (`config/demo.toml`) in virtual time logs the
//! start the planner moved (`exchange`), with its configured start and the planner's reason.
//!
//! A test binary of its own: the log is captured by a process-wide subscriber (tracing caches
//! callsite interest process-wide, so a thread-local one is racy beside other tests).

mod agent_support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use agent_support::{start, Setup};
use chrono::TimeDelta;
use snapwarden::agent::hook::HookSpec;
use snapwarden::config;

/// A `MakeWriter` that keeps everything written.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn the_demo_logs_the_start_the_planner_moved_with_its_reason() {
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(captured.clone())
        .with_ansi(false)
        .init();
    let policy = config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml"))
        .expect("the demo loads");
    let mut setup = Setup::at("2027-03-01T10:00:30Z");
    setup.hooks = Some(Arc::new(|_| {
        Some(HookSpec::Simulated {
            duration: TimeDelta::seconds(20),
            succeed: true,
        })
    }));
    let h = start(policy, setup);
    // exchange's 10:02 start would hold its clone over the 10:03 snapshot: it starts at 10:01.
    h.run_until("2027-03-01T10:02:30Z").await;
    h.stop().await;
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let moved: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("start moved by the planner"))
        .collect();
    assert_eq!(moved.len(), 1, "{logs}");
    for expected in [
        "start moved by the planner: shifted 1m earlier to 10:01: 3min at 10:03 falls inside",
        "window=exchange",
        "volume=vol_exch",
        "configured_start=2027-03-01T10:02:00+00:00",
        "start=2027-03-01T10:01:00+00:00",
    ] {
        assert!(
            moved[0].contains(expected),
            "{expected} missing from {}",
            moved[0]
        );
    }
    // The windows that start as configured say nothing of the kind.
    assert!(!moved[0].contains("window=sql"), "{}", moved[0]);
}
