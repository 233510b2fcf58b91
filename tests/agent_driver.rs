//! Driver windows (issue 10) are validated but not coordinated yet: the agent starts nothing for a
//! `driver = "veeam"` or `"hook"` window, while a snapwarden window beside them runs as usual.

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
async fn driver_windows_start_nothing_and_snapwarden_windows_run() {
    let mut setup = Setup::at("2027-01-01T00:50:00Z");
    setup.hooks = Some(Arc::new(|_c| {
        Some(HookSpec::Simulated {
            duration: TimeDelta::minutes(20),
            succeed: true,
        })
    }));
    let h = start(policy(POLICY), setup);
    h.run_until("2027-01-01T01:45:00Z").await;
    let cycles = h.cycles();
    let windows: Vec<(&str, Option<CycleResult>)> = cycles
        .iter()
        .map(|c| (c.window.as_str(), c.result))
        .collect();
    assert_eq!(windows, [("ours", Some(CycleResult::Completed))]);
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
