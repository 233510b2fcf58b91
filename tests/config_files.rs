//! Every file shipped in `config/` loads cleanly — policies at the top, simulator worlds in
//! `config/simulator/` — and the demo policy says what the README claims.

use std::path::{Path, PathBuf};

use snapwarden::config::{self, CloneMethod, Endpoint, OnConflict, VolumeSchedules};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

#[test]
fn every_shipped_policy_loads() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(config_dir())
        .expect("config/ exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.toml files in config/");
    for file in &files {
        if let Err(diags) = config::load(file) {
            panic!("{} does not load:\n{diags}", file.display());
        }
    }
}

#[test]
fn every_shipped_simulator_world_loads() {
    let dir = config_dir().join("simulator");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("config/simulator/ exists") {
        let path = entry.expect("readable directory entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let world = snapwarden::sim::config::WorldFile::load(&path)
                .and_then(|w| w.build(chrono::Utc::now(), &path.display().to_string()));
            if let Err(e) = world {
                panic!("{e}");
            }
            count += 1;
        }
    }
    assert!(count > 0, "no *.toml files in config/simulator/");
}

#[test]
fn reference_policy_reads_its_include() {
    let policy = config::load(&config_dir().join("reference.toml")).expect("reference loads");
    assert_eq!(policy.files.len(), 2);
    assert!(policy.windows.iter().any(|w| w.name == "reports-weekly"));
}

#[test]
fn demo_policy_has_the_documented_shape() {
    let policy = config::load(&config_dir().join("planning-demo.toml")).expect("demo loads");
    assert_eq!(policy.clusters.len(), 1);
    let cluster = &policy.clusters[0];
    assert_eq!(cluster.name, "demo");
    assert_eq!(cluster.endpoint, Endpoint::Simulator);
    assert_eq!(
        cluster.simulator.as_ref().map(|s| s.licenses.clone()),
        Some(vec!["snaprestore".to_string()])
    );
    let schedules: Vec<(String, String)> = policy
        .schedules
        .iter()
        .map(|s| match &s.recurrence {
            snapwarden::timeline::Recurrence::Cron(c) => (s.name.clone(), c.to_string()),
            other => panic!("{} is not cron: {other:?}", s.name),
        })
        .collect();
    assert_eq!(
        schedules,
        [
            ("hourly", "5 * * * *"),
            ("daily", "10 0 * * *"),
            ("weekly", "15 0 * * 0"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(policy.agent.guard, chrono::TimeDelta::minutes(5));
    let volumes: Vec<&str> = policy.volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(volumes, ["vol_sql", "vol_exch", "vol_files", "vol_erp"]);
    assert!(policy
        .volumes
        .iter()
        .all(|v| v.schedules == VolumeSchedules::Policy(0) && v.clone == CloneMethod::Auto));
    let windows: Vec<(&str, OnConflict, i64, i64)> = policy
        .windows
        .iter()
        .map(|w| {
            (
                w.name.as_str(),
                w.on_conflict,
                w.expected.num_minutes(),
                w.max.num_minutes(),
            )
        })
        .collect();
    assert_eq!(
        windows,
        [
            ("sql-nightly", OnConflict::Shift, 35, 45),
            ("exchange", OnConflict::Shift, 30, 40),
            ("files-weekly", OnConflict::Run, 70, 90),
            ("erp", OnConflict::Skip, 40, 55),
        ]
    );
}

/// Every argument of `check` and `plan` says what it is in `--help` (`<POLICY>` once had no text).
#[test]
fn check_and_plan_arguments_have_help() {
    use clap::CommandFactory;
    let cli = snapwarden::cli::Cli::command();
    for name in ["check", "plan"] {
        let command = cli
            .find_subcommand(name)
            .unwrap_or_else(|| panic!("no `{name}` subcommand"));
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            assert!(
                arg.get_help().is_some_and(|h| !h.to_string().is_empty()),
                "`{name}` argument `{id}` has no help text"
            );
        }
    }
}

/// The reference policy documents a Veeam server and a `driver = "veeam"` window that names it.
#[test]
fn reference_policy_has_a_veeam_driver_window() {
    use snapwarden::config::{Driver, VeeamJobRef};
    let policy = config::load(&config_dir().join("reference.toml")).expect("reference loads");
    assert_eq!(policy.veeam.len(), 1);
    assert_eq!(policy.veeam[0].url, "https://vbr.example.net:9419");
    assert_eq!(policy.veeam[0].api_version, "1.1-rev0");
    let window = policy
        .windows
        .iter()
        .find(|w| w.name == "reports-veeam")
        .expect("the Veeam window");
    assert_eq!(
        window.driver,
        Driver::Veeam(VeeamJobRef {
            server: 0,
            job: "Reports LUN backup".into(),
            at: Default::default(),
        })
    );
}

/// The example world's `[[veeam]]` builds against its clusters (`simulator serve` would serve it).
#[test]
fn the_example_worlds_veeam_server_builds() {
    let path = config_dir().join("simulator/world.example.toml");
    let mut file = snapwarden::sim::config::WorldFile::load(&path).expect("example world loads");
    let veeam = std::mem::take(&mut file.veeam);
    let world = file
        .build(chrono::Utc::now(), "example")
        .expect("world builds");
    let servers =
        snapwarden::sim::veeam::config::build(veeam, &world, "example").expect("veeam builds");
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].0, "vbr");
    assert_eq!(servers[0].1.jobs[0].targets[0].luns, ["/vol/vmfs01/lun1"]);
}
