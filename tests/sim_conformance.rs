//! Conformance with NetApp's official Python client: runs `tests/conformance/ontap_conformance.py`
//! against a simulator on 127.0.0.1:0 (HTTPS, generated certificate, manual clock).
//!
//! The interpreter is `SNAPWARDEN_TEST_PYTHON`, which `scripts/test` sets to its virtual
//! environment (`target/py-venv`) holding the pinned client; the system Python is never used.

use std::process::Command;

use snapwarden::sim::{start, ClockMode, ServeOptions, WorldSource};

const WORLD: &str = r#"
[[users]]
name = "conformance"
password = "c0nformance!"
[[clusters]]
name = "c1"
timezone = "Europe/Berlin"
licenses = ["snaprestore"]
[[clusters.svms]]
name = "svm1"
[[clusters.svms.volumes]]
name = "vol1"
luns = [{ name = "lun1" }]
[[clusters.svms.volumes]]
name = "vol_hazard"
snapshot_locking_enabled = true
scheduled_snapshot_naming_scheme = "ordinal"
snapshot_reserve_percent = 10
autodelete = { enabled = true, commitment = "destroy", trigger = "snap_reserve" }
luns = [{ name = "lun1" }]
[[clusters.svms.volumes.snapshots]]
name = "held"
create_time = "2026-03-10T09:00:00Z"
owners = ["snapmirror", "dump"]
size = 1048576
snaplock_expiry_time = "2030-01-01T00:00:00Z"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_conforms() {
    let python = std::env::var_os("SNAPWARDEN_TEST_PYTHON").unwrap_or_else(|| {
        panic!(
            "SNAPWARDEN_TEST_PYTHON is not set: run scripts/test, which installs NetApp's client \
             (PyPI netapp-ontap==9.19.1.0) into target/py-venv and points this variable at its python"
        )
    });
    let importable = Command::new(&python)
        .args(["-c", "import netapp_ontap"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        importable,
        "{} (SNAPWARDEN_TEST_PYTHON) cannot import netapp_ontap (NetApp's client, PyPI netapp-ontap==9.19.1.0): run scripts/test, which installs it",
        python.to_string_lossy()
    );
    let handle = start(ServeOptions {
        world: WorldSource::Toml(WORLD.into()),
        listen: "127.0.0.1:0".parse().unwrap(),
        clock: ClockMode::Manual,
        start: Some("2026-03-10T10:00:00Z".parse().unwrap()),
        tls: true,
    })
    .await
    .expect("simulator starts");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/ontap_conformance.py"
    );
    let port = handle.addr().port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args([
                script,
                "127.0.0.1",
                &port,
                "conformance",
                "c0nformance!",
                "https",
            ])
            .output()
            .expect("SNAPWARDEN_TEST_PYTHON runs")
    })
    .await
    .unwrap();
    handle.stop().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the official client found an incompatibility (exit {:?}):\n{stdout}\n{stderr}",
        output.status.code()
    );
    assert!(stdout.contains("conformance: OK"), "{stdout}");
}
