//! Hot reload through a running `snapwarden run` (real time, real files): every way an admin or
//! a platform rewrites the policy is picked up, a bad or non-reloadable edit changes nothing and
//! says so in the log and the metrics, and a burst of edits ends on the last content. Every test
//! waits on a condition with a bound, read from `/metrics`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod process_support;

use process_support::{free_port, http};

/// One request without extra headers.
fn call(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    http(port, method, path, &[])
}

/// A simulator policy: `volumes` on cluster lab, one window named `window` over the first.
fn policy_text(port: u16, volumes: &[&str], window: &str) -> String {
    let mut text = format!(
        r#"[agent]
listen = "127.0.0.1:{port}"

[[cluster]]
name = "lab"
endpoint = "simulator"
timezone = "UTC"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "p"
copies = [{{ schedule = "hourly", count = 6 }}]
"#
    );
    for v in volumes {
        text.push_str(&format!(
            "\n[[volume]]\ncluster = \"lab\"\nsvm = \"svm1\"\nname = \"{v}\"\nluns = [\"/vol/{v}/lun0\"]\nsnapshot_policy = \"p\"\n"
        ));
    }
    text.push_str(&format!(
        "\n[[window]]\nname = \"{window}\"\nvolumes = [\"lab/svm1/{}\"]\nstart = \"0 3 29 2 *\"\ntimezone = \"UTC\"\nexpected = \"10m\"\nmax = \"20m\"\n",
        volumes[0]
    ));
    text
}

/// The agent on `policy`, its log in a file; killed on drop.
struct Agent {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(dir: &Path, policy: &Path, port: u16) -> Agent {
        let log = dir.join("agent.log");
        let child = Command::new(env!("CARGO_BIN_EXE_snapwarden"))
            .args(["run", "--config"])
            .arg(policy)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .env("SNAPWARDEN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let agent = Agent { child, port, log };
        agent.wait("the agent is ready", || {
            call(port, "GET", "/readyz").is_some_and(|(c, _)| c == 200)
        });
        agent
    }

    fn metrics(&self) -> String {
        call(self.port, "GET", "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `cond` every 20 ms for at most 20 s.
    fn wait(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}\nmetrics:\n{}\nlog:\n{}",
                self.metrics(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn reloads(&self, result: &str) -> f64 {
        value(
            &self.metrics(),
            &format!("snapwarden_config_reloads_total{{result=\"{result}\"}}"),
        )
    }

    /// Whether the running policy has `volume` (its series exist) and window `window`.
    fn runs(&self, volume: &str, window: &str) -> bool {
        let m = self.metrics();
        m.contains(&format!(
            "snapwarden_flexclone_recommended{{cluster=\"lab\",svm=\"svm1\",volume=\"{volume}\"}}"
        )) && m.contains(&format!("snapwarden_window_active{{window=\"{window}\"}}"))
    }
}

/// The value of an exact series line (`name{labels}`), 0 when absent.
fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn setup() -> (tempfile::TempDir, PathBuf, u16) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    let policy = conf.join("policy.toml");
    std::fs::write(&policy, policy_text(port, &["vol_a"], "yearly")).unwrap();
    (dir, policy, port)
}

#[test]
fn an_editor_that_writes_a_temporary_file_and_renames_it_is_picked_up() {
    let (dir, policy, port) = setup();
    let a = Agent::start(dir.path(), &policy, port);
    assert!(a.runs("vol_a", "yearly"));
    let tmp = policy.with_file_name(".policy.toml.swp");
    std::fs::write(&tmp, policy_text(port, &["vol_a", "vol_b"], "yearly")).unwrap();
    std::fs::rename(&tmp, &policy).unwrap();
    a.wait("vol_b in effect", || a.runs("vol_b", "yearly"));
    assert_eq!(a.reloads("success"), 1.0);
    assert_eq!(a.reloads("failure"), 0.0);
    assert_eq!(
        value(&a.metrics(), "snapwarden_config_last_reload_successful"),
        1.0
    );
    assert!(
        a.log().contains("volumes added: lab/svm1/vol_b"),
        "{}",
        a.log()
    );
}

#[test]
fn sed_in_place_is_picked_up_and_the_old_window_loses_its_series() {
    let (dir, policy, port) = setup();
    let a = Agent::start(dir.path(), &policy, port);
    let hash = value(&a.metrics(), "snapwarden_config_hash");
    let o = Command::new("sed")
        .args(["-i", "s/name = \"yearly\"/name = \"leap\"/"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    a.wait("window leap in effect", || a.runs("vol_a", "leap"));
    let m = a.metrics();
    assert!(!m.contains("window=\"yearly\""), "{m}");
    assert_ne!(value(&m, "snapwarden_config_hash"), hash);
}

#[test]
fn a_write_in_place_is_picked_up() {
    let (dir, policy, port) = setup();
    let a = Agent::start(dir.path(), &policy, port);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&policy)
        .unwrap();
    f.write_all(policy_text(port, &["vol_a", "vol_b"], "yearly").as_bytes())
        .unwrap();
    drop(f);
    a.wait("vol_b in effect", || a.runs("vol_b", "yearly"));
}

#[test]
fn a_configmap_data_symlink_swap_is_picked_up() {
    // Kubernetes' layout: policy.toml -> ..data/policy.toml, ..data -> ..<timestamp>/; an update
    // writes a new timestamped directory and renames a new ..data symlink over the old one.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cm = dir.path().join("cm");
    let first = cm.join("..2026_11_25_10_00_00.1");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::write(
        first.join("policy.toml"),
        policy_text(port, &["vol_a"], "yearly"),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_25_10_00_00.1", cm.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/policy.toml", cm.join("policy.toml")).unwrap();
    let a = Agent::start(dir.path(), &cm.join("policy.toml"), port);
    let second = cm.join("..2026_11_25_10_05_00.2");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::write(
        second.join("policy.toml"),
        policy_text(port, &["vol_a", "vol_b"], "yearly"),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_25_10_05_00.2", cm.join("..data_tmp")).unwrap();
    std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();
    a.wait("vol_b in effect", || a.runs("vol_b", "yearly"));
}

#[test]
fn a_bad_edit_changes_nothing_is_located_in_the_log_and_the_next_good_edit_is_picked_up() {
    let (dir, policy, port) = setup();
    let a = Agent::start(dir.path(), &policy, port);
    let hash = value(&a.metrics(), "snapwarden_config_hash");
    let good = policy_text(port, &["vol_a", "vol_b"], "yearly");
    // Line 21 of the new file: `name = 42` in the second volume.
    let bad = good.replace("name = \"vol_b\"", "name = 42");
    std::fs::write(&policy, &bad).unwrap();
    a.wait("the failed reload", || a.reloads("failure") >= 1.0);
    let m = a.metrics();
    assert_eq!(value(&m, "snapwarden_config_last_reload_successful"), 0.0);
    assert_eq!(value(&m, "snapwarden_config_hash"), hash);
    assert!(a.runs("vol_a", "yearly") && !a.runs("vol_b", "yearly"));
    let line = bad
        .lines()
        .position(|l| l == "name = 42")
        .map(|i| i + 1)
        .unwrap();
    let location = format!("policy.toml:{line}:");
    let log = a.log();
    assert!(
        log.contains("policy reload failed") && log.contains(&location),
        "{location}: {log}"
    );
    // The agent still serves; the next good edit is picked up.
    std::fs::write(&policy, &good).unwrap();
    a.wait("vol_b in effect", || a.runs("vol_b", "yearly"));
    let m = a.metrics();
    assert_eq!(value(&m, "snapwarden_config_last_reload_successful"), 1.0);
    assert_eq!(
        value(&m, "snapwarden_config_reloads_total{result=\"success\"}"),
        1.0
    );
}

#[test]
fn a_new_listen_address_is_refused_by_name_and_the_old_policy_keeps_running() {
    let (dir, policy, port) = setup();
    let a = Agent::start(dir.path(), &policy, port);
    let other = free_port();
    let moved = policy_text(other, &["vol_a", "vol_b"], "yearly");
    std::fs::write(&policy, &moved).unwrap();
    a.wait("the refused reload", || a.reloads("failure") >= 1.0);
    assert!(a.log().contains("[agent] listen"), "{}", a.log());
    assert!(a.runs("vol_a", "yearly") && !a.runs("vol_b", "yearly"));
    // Still on the old address; an explicit reload says why, by name.
    let (code, body) = call(port, "POST", "/-/reload").unwrap();
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("[agent] listen") && body.contains("restart"),
        "{body}"
    );
}

#[test]
fn sighup_and_post_reload_reload_an_unchanged_policy() {
    let (dir, policy, port) = setup();
    let a = Agent::start(dir.path(), &policy, port);
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(a.child.id() as i32, libc::SIGHUP);
    }
    a.wait("the SIGHUP reload", || a.reloads("success") == 1.0);
    let (code, body) = call(port, "POST", "/-/reload").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("policy reloaded"), "{body}");
    assert_eq!(a.reloads("success"), 2.0);
    assert!(a.log().contains("trigger=\"SIGHUP\"") || a.log().contains("SIGHUP"));
}

#[test]
fn a_burst_of_100_edits_ends_on_the_last_content() {
    let (dir, policy, port) = setup();
    let a = Agent::start(dir.path(), &policy, port);
    for i in 0..100 {
        let text = if i % 10 == 5 {
            // Some edits in the burst are broken halfway.
            "[[volume]\n".to_string()
        } else {
            policy_text(port, &["vol_a"], &format!("w{i}"))
        };
        std::fs::write(&policy, text).unwrap();
    }
    a.wait("window w99 in effect", || a.runs("vol_a", "w99"));
    let m = a.metrics();
    assert_eq!(value(&m, "snapwarden_config_last_reload_successful"), 1.0);
    let windows: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("snapwarden_window_active{"))
        .collect();
    assert_eq!(windows, vec!["snapwarden_window_active{window=\"w99\"} 0"]);
}

/// `[[volume]]` entries on cluster lab.
fn volumes_text(volumes: &[&str]) -> String {
    volumes
        .iter()
        .map(|v| {
            format!(
                "\n[[volume]]\ncluster = \"lab\"\nsvm = \"svm1\"\nname = \"{v}\"\nluns = [\"/vol/{v}/lun0\"]\nsnapshot_policy = \"p\"\n"
            )
        })
        .collect()
}

/// A `[[window]]` named `name` over `volume`, in the Feb 29 slot of [`policy_text`].
fn window_text(name: &str, volume: &str) -> String {
    format!(
        "\n[[window]]\nname = \"{name}\"\nvolumes = [\"lab/svm1/{volume}\"]\nstart = \"0 3 29 2 *\"\ntimezone = \"UTC\"\nexpected = \"10m\"\nmax = \"20m\"\n"
    )
}

#[test]
fn edits_of_included_files_in_other_directories_are_picked_up_also_of_a_newly_included_one() {
    // conf/policy.toml includes ../windows/w.toml; later also ../more/v.toml, a directory the
    // agent did not watch when it started.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    for sub in ["conf", "windows", "more"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let policy = dir.path().join("conf/policy.toml");
    let windows = dir.path().join("windows/w.toml");
    let more = dir.path().join("more/v.toml");
    let main = |includes: &[&str]| -> String {
        let full = policy_text(port, &["vol_a"], "unused");
        let head = &full[..full.find("\n[[window]]").unwrap()];
        let list: Vec<String> = includes.iter().map(|i| format!("\"{i}\"")).collect();
        format!("include = [{}]\n{head}", list.join(", "))
    };
    std::fs::write(&windows, window_text("yearly", "vol_a")).unwrap();
    std::fs::write(&policy, main(&["../windows/w.toml"])).unwrap();
    let a = Agent::start(dir.path(), &policy, port);
    assert!(a.runs("vol_a", "yearly"), "{}", a.metrics());
    // An included file written in place, in its own directory.
    std::fs::write(&windows, window_text("leap", "vol_a")).unwrap();
    a.wait("window leap in effect", || a.runs("vol_a", "leap"));
    // A new include in a directory nobody watched so far …
    std::fs::write(&more, volumes_text(&["vol_b"])).unwrap();
    std::fs::write(&policy, main(&["../windows/w.toml", "../more/v.toml"])).unwrap();
    a.wait("vol_b in effect", || a.runs("vol_b", "leap"));
    // … is watched from then on: renaming a temporary file over it is picked up.
    let tmp = more.with_file_name("v.toml.tmp");
    std::fs::write(&tmp, volumes_text(&["vol_c"])).unwrap();
    std::fs::rename(&tmp, &more).unwrap();
    a.wait("vol_c in effect", || a.runs("vol_c", "leap"));
    assert!(!a.runs("vol_b", "leap"), "{}", a.metrics());
    assert_eq!(a.reloads("success"), 3.0);
    assert_eq!(a.reloads("failure"), 0.0);
}

#[test]
fn a_new_state_directory_is_refused_by_name_and_the_old_policy_keeps_running() {
    let (dir, policy, port) = setup();
    let a = Agent::start(dir.path(), &policy, port);
    let hash = value(&a.metrics(), "snapwarden_config_hash");
    let moved = policy_text(port, &["vol_a", "vol_b"], "yearly").replacen(
        "[agent]\n",
        "[agent]\nstate_dir = \"/var/lib/elsewhere\"\n",
        1,
    );
    std::fs::write(&policy, &moved).unwrap();
    a.wait("the refused reload", || a.reloads("failure") >= 1.0);
    let m = a.metrics();
    assert_eq!(value(&m, "snapwarden_config_last_reload_successful"), 0.0);
    assert_eq!(value(&m, "snapwarden_config_hash"), hash);
    assert!(a.runs("vol_a", "yearly") && !a.runs("vol_b", "yearly"));
    let log = a.log();
    assert!(
        log.contains("policy reload refused") && log.contains("[agent] state_dir"),
        "{log}"
    );
}

#[test]
fn a_symlinked_policy_is_reloaded_when_its_target_elsewhere_changes_and_when_the_link_moves() {
    // conf/policy.toml -> ../real1/policy.toml: the target lives in a directory of its own.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    for sub in ["conf", "real1", "real2"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let first = dir.path().join("real1/policy.toml");
    let second = dir.path().join("real2/other.toml");
    let link = dir.path().join("conf/policy.toml");
    std::fs::write(&first, policy_text(port, &["vol_a"], "yearly")).unwrap();
    std::os::unix::fs::symlink("../real1/policy.toml", &link).unwrap();
    let a = Agent::start(dir.path(), &link, port);
    assert!(a.runs("vol_a", "yearly"), "{}", a.metrics());

    // The target written in place, in its own directory.
    std::fs::write(&first, policy_text(port, &["vol_a", "vol_b"], "yearly")).unwrap();
    a.wait("vol_b in effect", || a.runs("vol_b", "yearly"));

    // The link re-pointed (as `ln -sfn` does: a new link renamed over it) at a file in a third
    // directory.
    std::fs::write(&second, policy_text(port, &["vol_a", "vol_c"], "yearly")).unwrap();
    let tmp = dir.path().join("conf/.policy.toml.new");
    std::os::unix::fs::symlink("../real2/other.toml", &tmp).unwrap();
    std::fs::rename(&tmp, &link).unwrap();
    a.wait("vol_c in effect", || {
        a.runs("vol_c", "yearly") && !a.runs("vol_b", "yearly")
    });

    // The new target is watched from then on.
    std::fs::write(&second, policy_text(port, &["vol_a", "vol_d"], "yearly")).unwrap();
    a.wait("vol_d in effect", || a.runs("vol_d", "yearly"));
    assert_eq!(a.reloads("success"), 3.0);
    assert_eq!(a.reloads("failure"), 0.0);
}

#[test]
fn an_edit_that_includes_a_fifo_fails_at_once_and_the_next_good_edit_is_picked_up() {
    let (dir, policy, port) = setup();
    let a = Agent::start(dir.path(), &policy, port);
    let fifo = policy.with_file_name("windows.toml");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; nobody ever writes to the FIFO.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let good = policy_text(port, &["vol_a", "vol_b"], "yearly");
    std::fs::write(&policy, format!("include = [\"windows.toml\"]\n{good}")).unwrap();
    a.wait("the failed reload", || a.reloads("failure") >= 1.0);
    let log = a.log();
    assert!(
        log.contains("policy reload failed")
            && log.contains("policy.toml:1:12: cannot read included file")
            && log.contains("FIFO"),
        "{log}"
    );
    // The reloader did not block on the FIFO: the next good edit is picked up.
    std::fs::write(&policy, &good).unwrap();
    a.wait("vol_b in effect", || a.runs("vol_b", "yearly"));
}
