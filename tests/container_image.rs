//! The container image, built and run with podman: `deploy/container/Containerfile` is built
//! with `--pull=never` on a Debian base made here by mmdebstrap and imported under the name its
//! `FROM` uses (no registry is reached), with this test build's binary (its debug information
//! stripped) in the place of the release binary. The image runs the README's demo
//! (`config/demo.toml`, listening off loopback with an API token) as a non-root user with a
//! read-only root, the policy and the token mounted read-only and the journal on a named volume;
//! `/healthz`, `/readyz` and `/api/v1/status` are read from the host through a published port;
//! `podman stop` ends it gracefully (exit 0, the shutdown in its log) and the journal outlives the
//! container.
//!
//! podman, runc, mmdebstrap and strip (binutils) come from Debian (`scripts/test` installs them);
//! the test fails, never skips, when one is missing. Its podman keeps its images under the target
//! directory, not in the machine's store, and removes what it made even when it fails.

mod container_support;
mod process_support;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use container_support::Recipe;
use process_support::{free_port, http, installed, output_within};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// mmdebstrap's Debian base: the essential and required packages with apt (what Debian's
/// `-slim` images hold, without manuals, documentation and translations as they do), plus
/// ca-certificates so that the recipe's apt step has nothing to fetch.
const MMDEBSTRAP_OPTIONS: &[&str] = &[
    "--variant=minbase",
    "--include=ca-certificates",
    "--format=tar",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
];

/// Making the base: about a minute on a quiet 2-core machine, most of it downloading packages.
const BASE_BOUND: Duration = Duration::from_secs(900);
/// One podman command other than the build and the stop.
const BOUND: Duration = Duration::from_secs(120);
/// The agent's default `[agent] shutdown_timeout` (2m) with room to spare: podman's stop timeout,
/// as the Kubernetes manifests' terminationGracePeriodSeconds.
const STOP_TIMEOUT_SECS: u64 = 150;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where the test keeps its base tarball and podman's store (reused by later runs).
fn work_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("container-image");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The machine's Debian release (`VERSION_CODENAME` of /etc/os-release).
fn host_suite() -> String {
    let os = std::fs::read_to_string("/etc/os-release").expect("/etc/os-release");
    os.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .expect("/etc/os-release names no VERSION_CODENAME: this test needs Debian")
}

/// The Debian release of the recipe's base, which must be the machine's: the binary in the image
/// is built here and links the machine's glibc.
fn base_suite(base: &str) -> String {
    let tag = base
        .strip_prefix("docker.io/library/debian:")
        .unwrap_or_else(|| panic!("the recipe's base {base} is not Debian's official image"));
    let suite = tag
        .strip_suffix("-slim")
        .unwrap_or_else(|| panic!("the recipe's base {base} is not a -slim image"));
    let host = host_suite();
    assert_eq!(
        suite, host,
        "the recipe's base is Debian {suite}, this machine is Debian {host}: a binary built here \
         needs the glibc of its own release"
    );
    suite.to_string()
}

/// The base tarball of `suite`, made by mmdebstrap once and kept under the target directory
/// (its name carries a digest of the options, so changed options make a new one).
fn base_tarball(suite: &str) -> PathBuf {
    let digest = Sha256::digest(format!("{suite} {}", MMDEBSTRAP_OPTIONS.join(" ")));
    let key: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let tarball = work_dir().join(format!("debian-{suite}-slim-{key}.tar"));
    if tarball.is_file() {
        return tarball;
    }
    let partial = tarball.with_extension("tar.partial");
    let mut cmd = Command::new(installed("mmdebstrap", "mmdebstrap"));
    cmd.arg("--quiet")
        .args(MMDEBSTRAP_OPTIONS)
        .arg(suite)
        .arg(&partial);
    let out = output_within(cmd, BASE_BOUND);
    assert!(out.status.success(), "mmdebstrap:\n{}", text(&out));
    std::fs::rename(&partial, &tarball).unwrap();
    tarball
}

/// podman with a store of its own under the target directory, runc and cgroupfs, and the
/// settings this kind of machine needs (no default ulimits: setting them is not permitted here).
struct Podman {
    global: Vec<String>,
    conf: PathBuf,
}

impl Podman {
    fn new() -> Podman {
        installed("runc", "runc");
        installed("podman", "podman");
        let dir = work_dir();
        let root = dir.join("storage");
        // The run root holds the containers' sockets, whose paths must stay short (108 bytes).
        let key: String = Sha256::digest(root.to_string_lossy().as_bytes())[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let run_parent = if running_as_root() {
            PathBuf::from("/run")
        } else {
            std::env::temp_dir()
        };
        let run = run_parent.join(format!("snapwarden-test-podman-{key}"));
        let conf = dir.join("containers.conf");
        std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n").unwrap();
        let global = vec![
            format!("--root={}", root.display()),
            format!("--runroot={}", run.join("storage").display()),
            format!("--tmpdir={}", run.join("libpod").display()),
            "--cgroup-manager=cgroupfs".to_string(),
            "--runtime=runc".to_string(),
        ];
        Podman { global, conf }
    }

    fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", &self.conf)
            .args(&self.global)
            .args(args);
        cmd
    }

    /// `podman args` within `bound`, whatever its exit status.
    fn output<S: AsRef<OsStr>>(&self, args: &[S], bound: Duration) -> Output {
        output_within(self.command(args), bound)
    }

    /// `podman args` within `bound`; fails the test unless it succeeds. Its standard output.
    fn run<S: AsRef<OsStr>>(&self, args: &[S], bound: Duration) -> String {
        let out = self.output(args, bound);
        let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        assert!(
            out.status.success(),
            "podman {}: {}\n{}",
            shown.join(" "),
            out.status,
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `podman inspect` of one object, as JSON.
    fn inspect(&self, kind: &str, name: &str) -> Value {
        let out = self.run(&[kind, "inspect", name], BOUND);
        let mut all: Vec<Value> = serde_json::from_str(&out).expect("podman inspect's JSON");
        assert_eq!(all.len(), 1, "{out}");
        all.remove(0)
    }
}

/// Whether the test runs as root (then podman's run root goes to /run, as podman's own does).
fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// What the test made in podman's store, removed when the test ends, passed or failed.
struct Made<'a> {
    podman: &'a Podman,
    containers: Vec<String>,
    volumes: Vec<String>,
    images: Vec<String>,
}

impl Drop for Made<'_> {
    fn drop(&mut self) {
        let p = self.podman;
        for c in &self.containers {
            let _ = p.output(&["rm", "--force", "--time=0", c], BOUND);
        }
        for v in &self.volumes {
            let _ = p.output(&["volume", "rm", "--force", v], BOUND);
        }
        for i in &self.images {
            let _ = p.output(&["rmi", "--force", i], BOUND);
        }
    }
}

/// The README's demo policy for the container: listening on every interface of the container
/// (the port is published to the host) with the API token from the mounted secret.
fn demo_policy() -> String {
    let demo = std::fs::read_to_string(repo().join("config/demo.toml")).unwrap();
    let listen = "listen = \"127.0.0.1:9464\"\n";
    assert!(
        demo.contains(listen),
        "config/demo.toml has no line {listen}"
    );
    demo.replacen(
        listen,
        "listen = \"0.0.0.0:9464\"\ntoken_file = \"/run/secrets/snapwarden/api-token\"\n",
        1,
    )
}

/// A directory with `files` (name, content), readable by the image's non-root user.
fn readable_dir(parent: &Path, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(parent).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    dir
}

/// The build context as the recipe expects it from the repository root: `.dockerignore` and
/// `target/release/snapwarden`, here this test build's binary without its debug information
/// (a release build has none; a quarter of the size to copy into the image).
fn build_context() -> tempfile::TempDir {
    let ctx = tempfile::tempdir_in(work_dir()).unwrap();
    std::fs::copy(
        repo().join(".dockerignore"),
        ctx.path().join(".dockerignore"),
    )
    .unwrap();
    let release = ctx.path().join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    let mut strip = Command::new(installed("strip", "binutils"));
    strip
        .arg("--strip-debug")
        .arg("-o")
        .arg(release.join("snapwarden"))
        .arg(env!("CARGO_BIN_EXE_snapwarden"));
    let out = output_within(strip, BOUND);
    assert!(out.status.success(), "strip:\n{}", text(&out));
    ctx
}

/// The JSON log lines' messages, in order (`--log-format json`).
fn log_messages(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            (
                v["level"].as_str().unwrap_or_default().to_string(),
                v["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Waits (at most `bound`) until `path` answers 200 on `port`, failing early with the
/// container's log when it has stopped.
fn wait_for_200(podman: &Podman, container: &str, port: u16, path: &str, bound: Duration) {
    let start = Instant::now();
    loop {
        if http(port, "GET", path, &[]).is_some_and(|(code, _)| code == 200) {
            return;
        }
        let state = podman.inspect("container", container);
        if state["State"]["Running"] != true || start.elapsed() >= bound {
            let log = podman.output(&["logs", container], BOUND);
            panic!(
                "{path} did not answer 200 in {:?} (at most {bound:?}); the container is {}:\n{}",
                start.elapsed(),
                state["State"]["Status"],
                text(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Imports the base under the recipe's `FROM` name and builds the recipe on it as `image`,
/// pulling nothing.
fn build(podman: &Podman, base: &str, image: &str) {
    let suite = base_suite(base);
    let tarball = base_tarball(&suite);
    podman.run(
        &["import", "--quiet", &tarball.to_string_lossy(), base],
        BOUND,
    );
    let ctx = build_context();
    let recipe_path = container_support::path();
    podman.run(
        &[
            OsStr::new("build"),
            OsStr::new("--pull=never"),
            OsStr::new("--file"),
            recipe_path.as_os_str(),
            OsStr::new("--tag"),
            OsStr::new(image),
            ctx.path().as_os_str(),
        ],
        Duration::from_secs(600),
    );
}

/// The image podman built says what the recipe says (the Kubernetes manifests are held to the
/// recipe by tests/deploy_kubernetes.rs).
fn assert_built_as_written(podman: &Podman, image: &str, recipe: &Recipe) {
    let config = &podman.inspect("image", image)["Config"];
    let (uid, gid) = recipe.user();
    assert_ne!(uid, 0, "the image runs as root");
    assert_eq!(config["User"], format!("{uid}:{gid}"));
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(recipe.list("ENTRYPOINT"))
    );
    assert_eq!(config["Cmd"], serde_json::json!(recipe.list("CMD")));
    let volumes: Vec<&String> = config["Volumes"].as_object().unwrap().keys().collect();
    let mut listed = recipe.list("VOLUME");
    listed.sort();
    assert_eq!(volumes, listed.iter().collect::<Vec<_>>());
    assert_eq!(config["StopSignal"], "SIGTERM");
    assert_eq!(
        config["Labels"]["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    let exposed = format!("{}/tcp", recipe.one("EXPOSE"));
    assert!(config["ExposedPorts"].get(&exposed).is_some(), "{config}");
}

/// `/api/v1/status` from the host: refused without the token; with it, the demo's cluster
/// reached and the journal on the volume writable.
fn assert_status(port: u16, token: &str) {
    let (code, _) = http(port, "GET", "/api/v1/status", &[]).expect("an answer");
    assert_eq!(code, 401, "/api/v1/status answered without the token");
    let bearer = format!("Authorization: Bearer {token}");
    let (code, body) = http(port, "GET", "/api/v1/status", &[&bearer]).expect("an answer");
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).expect("the status is JSON");
    let clusters = status["clusters"].as_array().expect("clusters");
    assert_eq!(clusters.len(), 1, "{status}");
    assert_eq!(clusters[0]["name"], "demo", "{status}");
    assert_eq!(clusters[0]["reachable"], true, "{status}");
    assert_eq!(status["journal"]["writable"], true, "{status}");
    assert_eq!(status["shutting_down"], false, "{status}");
}

/// The agent is the container's first process and runs as `uid`:`gid` (real, effective, saved
/// and file-system ids).
fn assert_first_process_runs_as(podman: &Podman, container: &str, uid: u32, gid: u32) {
    let proc1 = podman.run(&["exec", container, "cat", "/proc/1/status"], BOUND);
    let ids = |field: &str| -> Vec<u32> {
        let line = proc1
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap_or_else(|| panic!("/proc/1/status has no {field}\n{proc1}"));
        line.split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect()
    };
    assert!(proc1.contains("Name:\tsnapwarden"), "{proc1}");
    assert_eq!(ids("Uid:"), vec![uid; 4], "{proc1}");
    assert_eq!(ids("Gid:"), vec![gid; 4], "{proc1}");
}

/// `podman stop`: SIGTERM, and the agent exits 0 by itself, long before podman would kill it,
/// its log saying so in order and logging no error.
fn assert_stops_gracefully(podman: &Podman, container: &str) {
    podman.run(
        &["stop", &format!("--time={STOP_TIMEOUT_SECS}"), container],
        Duration::from_secs(STOP_TIMEOUT_SECS + 60),
    );
    let stopped = podman.inspect("container", container);
    let log = text(&podman.output(&["logs", container], BOUND));
    assert_eq!(stopped["State"]["Status"], "exited", "{log}");
    assert_eq!(stopped["State"]["ExitCode"], 0, "{log}");
    let messages = log_messages(&log);
    let at = |prefix: &str| {
        messages
            .iter()
            .position(|(_, m)| m.starts_with(prefix))
            .unwrap_or_else(|| panic!("no log line {prefix:?}:\n{log}"))
    };
    let started = at("snapwarden agent starting");
    let term = at("SIGTERM: stopping gracefully");
    let done = at("stopped; nothing left in flight");
    assert!(started < term && term < done, "{log}");
    let errors: BTreeMap<usize, &String> = messages
        .iter()
        .enumerate()
        .filter(|(_, (level, _))| level == "ERROR")
        .map(|(i, (_, m))| (i, m))
        .collect();
    assert!(errors.is_empty(), "errors logged: {errors:?}\n{log}");
}

#[test]
fn the_image_runs_the_demo_as_a_non_root_user_and_stops_gracefully_on_sigterm() {
    let recipe = Recipe::load();
    let podman = Podman::new();
    let unique = format!(
        "snapwarden-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let image = format!("localhost/{unique}:{}", env!("CARGO_PKG_VERSION"));
    let container = unique.clone();
    let state = format!("{unique}-state");
    let made = Made {
        podman: &podman,
        containers: vec![container.clone()],
        volumes: vec![state.clone()],
        images: vec![image.clone()],
    };

    build(&podman, &recipe.base(), &image);
    assert_built_as_written(&podman, &image, &recipe);

    // The demo: its policy and the token mounted read-only, the journal on a named volume (it
    // starts as the image's /var/lib/snapwarden, owned by the image's user), the root file system
    // read-only and no capabilities, as the Kubernetes manifests run it.
    let token = uuid::Uuid::new_v4().simple().to_string();
    let policy_dir = readable_dir(&work_dir(), &[("policy.toml", &demo_policy())]);
    let secrets_dir = readable_dir(&work_dir(), &[("api-token", &token)]);
    podman.run(&["volume", "create", &state], BOUND);
    let port = free_port();
    podman.run(
        &[
            "run".to_string(),
            "--detach".to_string(),
            format!("--name={container}"),
            "--read-only".to_string(),
            "--cap-drop=ALL".to_string(),
            "--security-opt=no-new-privileges".to_string(),
            format!("--publish=127.0.0.1:{port}:{}", recipe.one("EXPOSE")),
            format!(
                "--volume={}:/etc/snapwarden:ro",
                policy_dir.path().display()
            ),
            format!(
                "--volume={}:/run/secrets/snapwarden:ro",
                secrets_dir.path().display()
            ),
            format!("--volume={state}:/var/lib/snapwarden"),
            image.clone(),
        ],
        BOUND,
    );
    let bound = Duration::from_secs(60);
    wait_for_200(&podman, &container, port, "/healthz", bound);
    // Ready: the demo's simulated cluster was reached and the journal can be written.
    wait_for_200(&podman, &container, port, "/readyz", bound);
    assert_status(port, &token);
    let (uid, gid) = recipe.user();
    assert_first_process_runs_as(&podman, &container, uid, gid);
    assert_stops_gracefully(&podman, &container);

    // The journal outlives the container: a new one on the same volume reads it.
    let history = podman.run(
        &[
            "run",
            "--rm",
            "--read-only",
            &format!("--volume={state}:/var/lib/snapwarden"),
            &image,
            "history",
            "--state-dir",
            "/var/lib/snapwarden",
            "--output",
            "json",
        ],
        BOUND,
    );
    let history: Value = serde_json::from_str(&history).expect("history's JSON");
    assert!(history.is_array(), "{history}");
    drop(made);
}
