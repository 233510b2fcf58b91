//! `snapwarden simulate --from-cluster` against `snapwarden simulator serve --tls` (a real REST
//! peer): the simulated world is the discovered estate (zone, schedules, snapshot policy,
//! licenses, LUN sizes, existing snapshots), and the discovery made GET requests only (the
//! simulator's own request counts). Without the flag, a real cluster is refused naming it.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

mod process_support;

use process_support::{SimRest, TlsSimulator, MINIMAL_WORLD};

const PASSWORD: &str = "s3cret";

/// A snapshot already on the volume, named like snapwarden's but made by someone else (no
/// journal entry, no ownership marker): neither run may delete it.
const LOOK_ALIKE: &str = "snapwarden.sql-nightly.20261231T230000Z";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snapwarden"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Served {
    _child: TlsSimulator,
    url: String,
    fingerprint: String,
    rest: SimRest,
}

/// Its REST calls are [`SimRest`]'s.
impl std::ops::Deref for Served {
    type Target = SimRest;
    fn deref(&self) -> &SimRest {
        &self.rest
    }
}

impl Served {
    fn start(world: &Path) -> Served {
        let sim = TlsSimulator::start(
            world,
            &["--clock", "manual", "--start", "2027-01-01T00:00:00Z"],
            Stdio::null(),
        );
        let url = sim.cluster("prod-a");
        Served {
            rest: SimRest::new(&url, "snapwarden", PASSWORD),
            url,
            fingerprint: sim.fingerprint.clone(),
            _child: sim,
        }
    }

    async fn requests(&self) -> Value {
        self.call(reqwest::Method::GET, "/simulator/v1/requests", None)
            .await
    }
}

/// `config/minimal.toml` (volume schedules from ONTAP), pointed at the simulator.
fn minimal_against(served: &Served, dir: &Path) -> std::path::PathBuf {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/minimal.toml"))
            .expect("config/minimal.toml")
            .replace("https://cluster-a.example.net", &served.url)
            .replace(
                "password_env = \"SNAPWARDEN_PROD_A_PASSWORD\"",
                &format!(
                    "password_env = \"SNAPWARDEN_PROD_A_PASSWORD\"\npin_sha256 = \"{}\"",
                    served.fingerprint
                ),
            );
    let path = dir.join("minimal.toml");
    std::fs::write(&path, text).expect("policy written");
    path
}

fn simulate(policy: &Path, extra: &[&str]) -> Output {
    bin()
        .args(["simulate"])
        .arg(policy)
        .args([
            "--days",
            "3",
            "--from",
            "2027-01-01T00:00:00Z",
            "--output",
            "json",
        ])
        .args(extra)
        .env("SNAPWARDEN_PROD_A_PASSWORD", PASSWORD)
        .output()
        .expect("snapwarden runs")
}

fn json_of(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("JSON report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn from_cluster_simulates_the_discovered_estate_with_gets_only() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let world = dir.path().join("world.toml");
    std::fs::write(&world, MINIMAL_WORLD).expect("world written");
    let served = Served::start(&world);
    let policy = minimal_against(&served, dir.path());

    // The estate's existing snapshot, made before the discovery.
    let vols = served
        .call(
            reqwest::Method::GET,
            "/api/storage/volumes?name=vol_sql&fields=uuid",
            None,
        )
        .await;
    let uuid = vols["records"][0]["uuid"]
        .as_str()
        .expect("uuid")
        .to_string();
    served
        .call(
            reqwest::Method::POST,
            &format!("/api/storage/volumes/{uuid}/snapshots"),
            Some(json!({"name": LOOK_ALIKE, "comment": "made by hand"})),
        )
        .await;

    // Without the flag: refused, naming the cluster and the flag; nothing asked of the cluster.
    let before = served.requests().await;
    let o = simulate(&policy, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("cluster prod-a") && err.contains("--from-cluster"),
        "{err}"
    );
    assert_eq!(served.requests().await, before);

    let (coordinated, uncoordinated) = tokio::task::spawn_blocking(move || {
        let c = json_of(&simulate(&policy, &["--from-cluster"]));
        let u = json_of(&simulate(&policy, &["--from-cluster", "--uncoordinated"]));
        (c, u)
    })
    .await
    .expect("the runs");

    // Only GETs reached the cluster: one discovery per run, no create, change or delete.
    let after = served.requests().await;
    for method in ["post", "patch", "delete", "other"] {
        assert_eq!(after[method], before[method], "{method}: {after}");
    }
    let gets = after["get"].as_u64().unwrap() - before["get"].as_u64().unwrap();
    assert!(gets >= 2, "{after}");
    // The simulator's clock is manual: nothing happened on the real estate meanwhile.
    let snaps = served
        .call(
            reqwest::Method::GET,
            &format!("/api/storage/volumes/{uuid}/snapshots?fields=name"),
            None,
        )
        .await;
    assert_eq!(snaps["num_records"], 1, "{snaps}");

    // The discovered `default` policy (hourly at :05) in Berlin: the baseline's 01:00 Berlin
    // clone, held 40 minutes or longer, is captured by the 01:05 hourly snapshot every night.
    assert_eq!(uncoordinated["cycles_planned"], 3, "{uncoordinated}");
    let conflicts = uncoordinated["chain_conflicts"].as_u64().unwrap();
    assert!(conflicts >= 3, "{uncoordinated}");
    // The agent read the same schedules and moved each create past the :05 snapshot.
    assert_eq!(coordinated["chain_conflicts"], 0, "{coordinated}");
    assert_eq!(coordinated["cycles_completed"], 3, "{coordinated}");
    assert_eq!(coordinated["cycles_shifted"], 3, "{coordinated}");
    // [Jan 1 01:00, Jan 4 01:00) Berlin: hourly at :05 (72), daily at 00:10 on the 2nd, 3rd
    // and 4th (3), weekly at Sunday 00:15 on the 3rd (1; Jan 1 2027 is a Friday).
    assert_eq!(
        coordinated["scheduled_snapshots_taken"], 76,
        "{coordinated}"
    );
    // The existing look-alike came with the estate and survived both runs untouched (it is
    // the one snapwarden-named object no cycle accounts for).
    for r in [&coordinated, &uncoordinated] {
        assert_eq!(r["leaked_objects"], 1, "{r}");
        assert_eq!(r["foreign_objects_deleted"], 0, "{r}");
    }
}
