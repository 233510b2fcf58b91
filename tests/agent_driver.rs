//! Driver windows (Veeam-driven and hook-driven) beside a snapwarden window: a `driver = "hook"` window runs its hook
//! at the planned start and makes nothing itself; a `driver = "veeam"` window whose server cannot
//! be reached (its password variable is not set) is recorded as failed with that error, never
//! skipped silently; the snapwarden window runs as usual; a hook-driven backup left to finish
//! (`on_overrun = "finish"`) runs past `max`. (The Veeam lifecycle itself, on the embedded Veeam
//! simulator: `agent_veeam.rs`.)

mod agent_support;

use std::sync::Arc;

use agent_support::{leftovers, policy, start, Setup};
use chrono::TimeDelta;
use snapwarden::agent::cycle::CycleResult;
use snapwarden::agent::hook::HookSpec;

const POLICY: &str = r#"
[agent]
guard = "5m"
observe_interval = "1m"

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

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_b"
luns = ["/vol/vol_b/lun0"]
snapshot_policy = "p"

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_c"
luns = ["/vol/vol_c/lun0"]
snapshot_policy = "p"

[[veeam]]
name = "vbr"
url = "https://vbr.example.net:9419"
username = "svc"
password_env = "SNAPWARDEN_TEST_VBR_PASSWORD_UNSET"

[[window]]
name = "by-veeam"
volumes = ["lab/svm1/vol_a"]
start = "10 1 * * *"
timezone = "UTC"
expected = "20m"
max = "30m"
driver = "veeam"
veeam = { server = "vbr", job = "SQL nightly" }

[[window]]
name = "by-hook"
volumes = ["lab/svm1/vol_c"]
start = "10 1 * * *"
timezone = "UTC"
expected = "20m"
max = "30m"
driver = "hook"
hook = { command = ["/bin/false"] }

[[window]]
name = "ours"
volumes = ["lab/svm1/vol_b"]
start = "10 1 * * *"
timezone = "UTC"
expected = "20m"
max = "30m"
"#;

#[tokio::test(start_paused = true)]
async fn driver_windows_run_their_tool_and_snapwarden_windows_run() {
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(Arc::new(|_c| {
        Some(HookSpec::Simulated {
            duration: TimeDelta::minutes(20),
            succeed: true,
        })
    }));
    let h = start(policy(POLICY), setup);
    h.run_until("2027-01-01T01:45:00Z").await;
    let mut cycles = h.cycles();
    cycles.sort_by(|a, b| a.window.cmp(&b.window));
    let windows: Vec<(&str, Option<CycleResult>)> = cycles
        .iter()
        .map(|c| (c.window.as_str(), c.result))
        .collect();
    assert_eq!(
        windows,
        [
            ("by-hook", Some(CycleResult::Completed)),
            ("by-veeam", Some(CycleResult::Failed)),
            ("ours", Some(CycleResult::Completed)),
        ]
    );
    // The hook ran from the planned start for its 20 minutes; the tool's snapshot is the tool's.
    let hook = &cycles[0];
    assert_eq!(hook.create_at, agent_support::t("2027-01-01T01:10:00Z"));
    assert_eq!(
        hook.clones_deleted_at,
        Some(agent_support::t("2027-01-01T01:30:00Z"))
    );
    assert!(
        hook.detail.contains("simulated backup of 1200s succeeded"),
        "{}",
        hook.detail
    );
    let veeam = &cycles[1];
    assert!(
        veeam
            .detail
            .contains("Veeam server vbr: cannot load the password")
            && veeam.detail.contains("SNAPWARDEN_TEST_VBR_PASSWORD_UNSET"),
        "{}",
        veeam.detail
    );
    for volume in ["vol_a", "vol_c"] {
        assert!(
            !h.snapshots(volume)
                .iter()
                .any(|s| s.starts_with("snapwarden")),
            "{volume}: {:?}",
            h.snapshots(volume)
        );
    }
    assert_eq!(leftovers(&h, "snapwarden"), Vec::<String>::new());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_hook_driven_backup_left_to_finish_runs_past_max_and_is_an_overrun() {
    // 40-minute backups against max 30m: by-hook left to finish, ours ended at max.
    let text = POLICY.replace(
        "driver = \"hook\"",
        "driver = \"hook\"\non_overrun = \"finish\"",
    );
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(Arc::new(|_c| {
        Some(HookSpec::Simulated {
            duration: TimeDelta::minutes(40),
            succeed: true,
        })
    }));
    let h = start(policy(&text), setup);
    h.run_until("2027-01-01T01:55:00Z").await;
    let cycles = h.cycles();
    let of = |w: &str| cycles.iter().find(|c| c.window == w).expect(w).clone();
    let (hook, ours) = (of("by-hook"), of("ours"));
    assert_eq!(hook.result, Some(CycleResult::Overrun));
    assert!(
        hook.detail
            .contains("ran 10m past max and was left to finish"),
        "{}",
        hook.detail
    );
    assert_eq!(
        hook.clones_deleted_at,
        Some(agent_support::t("2027-01-01T01:50:00Z"))
    );
    assert_eq!(ours.result, Some(CycleResult::Overrun));
    assert!(
        ours.detail.contains("still running at the deadline"),
        "{}",
        ours.detail
    );
    let released = ours.released_at.expect("released");
    assert!(
        released < agent_support::t("2027-01-01T01:41:00Z"),
        "{released}"
    );
    assert_eq!(leftovers(&h, "snapwarden"), Vec::<String>::new());
    h.stop().await;
}
