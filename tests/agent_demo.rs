//! The README's promises about the demo and the real-time trigger: `config/demo.toml`, run in
//! virtual time with its hooks' durations, shows within five minutes completed cycles, a shifted
//! start and a recorded, explained conflict; and in real time a window is started by the
//! tokio-cron-scheduler trigger, never before its instant.

mod agent_support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use agent_support::{leftovers, start, t, Setup};
use chrono::TimeDelta;
use snapwarden::agent::cycle::CycleResult;
use snapwarden::agent::hook::HookSpec;
use snapwarden::agent::Triggers;
use snapwarden::config::{self, HookAction};

/// `config/managed-demo.toml` in virtual time, its hook's `sleep` as the backup's duration: within
/// ten minutes a backup longer than the gap completes with no chain conflict, the managed
/// snapshots due during it wait for its release and are taken as one, and the series is kept
/// at its count.
#[tokio::test(start_paused = true)]
async fn the_managed_demo_runs_a_backup_longer_than_the_gap_with_no_chain_conflict() {
    let policy =
        config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/managed-demo.toml"))
            .expect("the managed demo loads");
    let Some(HookAction::Command(argv)) = policy.windows[0].hook.as_ref().map(|h| &h.action) else {
        panic!("the demo's window has a command hook")
    };
    assert_eq!(argv[0], "sleep");
    let secs: i64 = argv[1].parse().unwrap();
    let mut setup = Setup::at("2027-03-01T09:58:30Z");
    setup.hooks = Some(Arc::new(move |_| {
        Some(HookSpec::Simulated {
            duration: TimeDelta::seconds(secs),
            succeed: true,
        })
    }));
    let h = start(policy, setup);
    h.run_until("2027-03-01T10:08:00Z").await;
    let cycles = h.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert_eq!(cycles[0].result, Some(CycleResult::Completed));
    let status = h.status();
    assert!(status.conflicts.is_empty(), "{:?}", status.conflicts);
    let taken = h.journal.managed(t("2027-03-01T00:00:00Z"), false).unwrap();
    let deferred: Vec<_> = taken.iter().filter(|m| m.reason == "deferred").collect();
    // 10:02 and 10:04 passed during the 10:00–10:05 backup: one snapshot after its release.
    assert_eq!(deferred.len(), 1, "{taken:?}");
    assert_eq!(deferred[0].instants, 2, "{taken:?}");
    assert!(
        deferred[0].name.starts_with("two_min.2027-03-01_1005"),
        "{taken:?}"
    );
    let series: Vec<String> = h
        .snapshots("vol_db")
        .into_iter()
        .filter(|s| s.starts_with("two_min."))
        .collect();
    assert!(series.len() <= 6, "{series:?}");
    assert_eq!(leftovers(&h, "snapwarden"), Vec::<String>::new());
    let (left, _, _) = h.stop().await;
    assert!(left.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_demo_shows_completed_shifted_and_conflicting_cycles_within_five_minutes() {
    let policy = config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml"))
        .expect("the demo loads");
    // The demo's hooks are `sleep N`: in virtual time they take those N seconds.
    let sleeps: Vec<(String, i64)> = policy
        .windows
        .iter()
        .map(|w| {
            let Some(HookAction::Command(argv)) = w.hook.as_ref().map(|h| &h.action) else {
                panic!("demo window {} has a command hook", w.name)
            };
            assert_eq!(argv[0], "sleep");
            (w.name.clone(), argv[1].parse().unwrap())
        })
        .collect();
    let mut setup = Setup::at("2027-03-01T10:00:30Z");
    setup.hooks = Some(Arc::new(move |c| {
        let secs = sleeps.iter().find(|(w, _)| *w == c.window).unwrap().1;
        Some(HookSpec::Simulated {
            duration: TimeDelta::seconds(secs),
            succeed: true,
        })
    }));
    let h = start(policy, setup);
    h.run_until("2027-03-01T10:05:30Z").await;
    let cycles = h.cycles();
    let sql = cycles
        .iter()
        .find(|c| c.window == "sql")
        .expect("an sql cycle");
    assert_eq!(sql.result, Some(CycleResult::Completed));
    let exchange = cycles
        .iter()
        .find(|c| c.window == "exchange")
        .expect("an exchange cycle");
    assert!(exchange.create_at < exchange.window_start, "{exchange:?}");
    assert_eq!(exchange.result, Some(CycleResult::Completed));
    let status = h.status();
    let kinds: Vec<&str> = status.conflicts.iter().map(|c| c.kind.as_str()).collect();
    assert!(kinds.contains(&"chain_conflict"), "{kinds:?}");
    assert!(kinds.contains(&"locked"), "{kinds:?}");
    let locked = status
        .conflicts
        .iter()
        .find(|c| c.kind == "locked")
        .unwrap();
    assert!(
        locked.detail.contains("pinned by 3min."),
        "{}",
        locked.detail
    );
    assert!(
        locked.detail.contains("rotates out at"),
        "{}",
        locked.detail
    );
    // Every pinned backing snapshot goes once its pin rotates out (5 × 3 minutes).
    h.run_until("2027-03-01T10:40:00Z").await;
    // A backing snapshot made at T is pinned by the snapshot at T+1..3m, which the sixth
    // snapshot after it rotates out: everything made before 10:20 is gone by 10:40.
    let old: Vec<String> = leftovers(&h, "snapwarden")
        .into_iter()
        .filter(|l| {
            l.rsplit('.')
                .next()
                .is_some_and(|ts| ts < "20270301T102000Z")
        })
        .collect();
    assert!(old.is_empty(), "{old:?}");
    let locked_live = h
        .status()
        .live_cycles
        .iter()
        .filter(|c| c.state == "locked")
        .count();
    assert!(locked_live <= 6, "{locked_live}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cron_trigger_starts_a_window_at_its_instant_and_never_before() {
    let text = r#"
[agent]
guard = "5s"

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

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_a"
luns = ["/vol/vol_a/lun0"]
snapshot_policy = "p"

[[window]]
name = "w"
volumes = ["lab/svm1/vol_a"]
start = "10 1 * * *"
timezone = "UTC"
expected = "1s"
max = "1m"
"#;
    let mut setup = Setup::at("2027-01-01T01:09:58.500Z");
    setup.triggers = Triggers::Cron;
    let h = start(agent_support::policy(text), setup);
    let end = std::time::Instant::now() + Duration::from_secs(15);
    while h.cycles().is_empty() {
        assert!(std::time::Instant::now() < end, "the trigger never fired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let c = &h.cycles()[0];
    assert!(c.created_at.unwrap() >= t("2027-01-01T01:10:00Z"), "{c:?}");
    assert!(c.created_at.unwrap() < t("2027-01-01T01:10:03Z"), "{c:?}");
    h.stop().await;
}
