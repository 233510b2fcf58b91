//! Benchmark: hot-reload latency — from the policy file written to the new policy in effect —
//! with a few volumes and with 10,000, next to the alternatives an admin has without the watcher:
//! SIGHUP after the write (the same load, without the watcher's debounce), and restarting the
//! agent.
//!
//! Run with `cargo bench --bench reload` (`-- --edits N` sets the edits per size, default 30).
//!
//! What it does, for each size (2 and 10,000 volumes on the embedded simulator, one window per
//! 100 volumes, none due during the run):
//! 1. starts `snapwarden run` on the policy and waits until its first pass is published
//!    (`/api/v1/status` has `generated_at`);
//! 2. watcher: N times, writes the policy plus one volume the cluster does not have (`ghostN`,
//!    a new name each time) to a temporary file and renames it over the policy (an editor's
//!    save), and polls `/api/v1/status` (a small document whatever the policy's size) every
//!    2 ms until `excluded_volumes` names `ghostN`: the agent has loaded and validated the file,
//!    swapped it in, re-planned and published a pass under it;
//! 3. SIGHUP: the same edits written where the watcher does not look (the policy is at first a
//!    symlink into an unwatched directory, and the edit goes to its target), each followed at
//!    once by SIGHUP: the reload itself, without the watcher's 100 ms debounce. (Run first: the
//!    watcher's first save replaces the symlink.)
//! 4. restart: SIGTERM, wait for the exit, start the agent again on the edited policy and wait
//!    for its first published pass (fewer rounds: each is a whole start).
//!
//! Prints p50, p95 and max per approach and size. Targets: p50 under 300 ms with a few
//! volumes, under 1 s with 10,000.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};

/// One HTTP/1.0 request on loopback: status and body; `None` while nothing answers.
fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    Some((
        head.split_whitespace().nth(1)?.parse().ok()?,
        body.to_string(),
    ))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// The policy: `volumes` volumes on one simulated cluster, a window per 100 volumes starting
/// between 3 and 20 hours from now (none is due while the bench runs), and the extra `ghost`
/// volume the cluster does not have.
fn policy_text(port: u16, volumes: usize, ghost: Option<usize>) -> String {
    use std::fmt::Write as _;
    let mut t = format!(
        r#"[agent]
listen = "127.0.0.1:{port}"

[[cluster]]
name = "lab"
endpoint = "simulator"
timezone = "UTC"
simulator = {{ version = "9.14.1", licenses = ["snaprestore"] }}

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[schedule]]
name = "daily"
cron = "10 0 * * *"

[[snapshot_policy]]
name = "p"
copies = [{{ schedule = "hourly", count = 6 }}, {{ schedule = "daily", count = 2 }}]
"#
    );
    for i in 0..volumes {
        let _ = write!(
            t,
            "\n[[volume]]\ncluster = \"lab\"\nsvm = \"svm1\"\nname = \"vol{i:05}\"\nluns = [\"/vol/vol{i:05}/lun0\"]\nsnapshot_policy = \"p\"\n"
        );
    }
    if let Some(g) = ghost {
        let _ = write!(
            t,
            "\n[[volume]]\ncluster = \"lab\"\nsvm = \"svm1\"\nname = \"ghost{g}\"\nluns = [\"/vol/ghost{g}/lun0\"]\nsnapshot_policy = \"p\"\n"
        );
    }
    let hour = Utc::now().hour() as usize;
    for (w, chunk) in (0..volumes).collect::<Vec<_>>().chunks(100).enumerate() {
        let list: Vec<String> = chunk
            .iter()
            .map(|i| format!("\"lab/svm1/vol{i:05}\""))
            .collect();
        let _ = write!(
            t,
            "\n[[window]]\nname = \"w{w:03}\"\nvolumes = [{}]\nstart = \"{} {} * * *\"\ntimezone = \"UTC\"\nexpected = \"20m\"\nmax = \"40m\"\n",
            list.join(", "),
            (w * 7) % 60,
            (hour + 3 + w % 18) % 24
        );
    }
    t
}

/// Writes `text` as an editor saves: a temporary file renamed over the policy.
fn save(policy: &Path, text: &str) {
    let tmp = policy.with_file_name(".policy.toml.tmp");
    std::fs::write(&tmp, text).expect("write the temporary file");
    std::fs::rename(&tmp, policy).expect("rename it over the policy");
}

struct Agent {
    child: Child,
    port: u16,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn spawn(policy: &Path, state: &Path, port: u16) -> Agent {
        let child = Command::new(env!("CARGO_BIN_EXE_snapwarden"))
            .args(["run", "--config"])
            .arg(policy)
            .arg("--state-dir")
            .arg(state)
            .env("SNAPWARDEN_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start snapwarden run");
        Agent { child, port }
    }

    fn status(&self) -> Option<serde_json::Value> {
        let (code, body) = http(self.port, "GET", "/api/v1/status")?;
        if code != 200 {
            return None;
        }
        serde_json::from_str(&body).ok()
    }

    /// Polls the status every 2 ms until `cond` holds (at most 120 s).
    fn until(&self, what: &str, cond: impl Fn(&serde_json::Value) -> bool) {
        let end = Instant::now() + Duration::from_secs(120);
        loop {
            if self.status().is_some_and(|s| cond(&s)) {
                return;
            }
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn published(&self) {
        self.until("the first pass", |s| !s["generated_at"].is_null());
    }

    /// Stops the agent with SIGTERM and waits for its exit.
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

fn excludes(s: &serde_json::Value, ghost: usize) -> bool {
    let want = format!("lab/svm1/ghost{ghost}");
    s["excluded_volumes"]
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e["volume"] == want.as_str()))
}

/// p50, p95 (nearest rank) and max, in milliseconds.
fn summary(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = ((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
        ms[i - 1]
    };
    (rank(0.50), rank(0.95), ms[ms.len() - 1])
}

struct Row {
    volumes: usize,
    approach: &'static str,
    n: usize,
    stats: (f64, f64, f64),
}

fn measure(dir: &Path, volumes: usize, edits: usize, restarts: usize, rows: &mut Vec<Row>) {
    let port = free_port();
    // conf/policy.toml is at first a symlink to real/policy.toml, a directory the agent does
    // not watch: edits there are seen only on SIGHUP.
    let conf = dir.join(format!("conf{volumes}"));
    let real = dir.join(format!("real{volumes}"));
    std::fs::create_dir_all(&conf).expect("policy directory");
    std::fs::create_dir_all(&real).expect("symlink target directory");
    let policy = conf.join("policy.toml");
    let target = real.join("policy.toml");
    std::fs::write(&target, policy_text(port, volumes, None)).expect("write the policy");
    std::os::unix::fs::symlink(&target, &policy).expect("symlink the policy");
    let state = dir.join(format!("state{volumes}"));
    let started = Instant::now();
    let agent = Agent::spawn(&policy, &state, port);
    agent.published();
    eprintln!(
        "{volumes} volumes: agent up in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let mut ghost = 0;
    let mut measured = Vec::new();
    for sighup in [true, false] {
        let mut ms = Vec::new();
        for _ in 0..edits {
            ghost += 1;
            let text = policy_text(port, volumes, Some(ghost));
            let t0 = Instant::now();
            if sighup {
                save(&target, &text);
                // SAFETY: kill(2) on our own child.
                unsafe {
                    libc::kill(agent.child.id() as i32, libc::SIGHUP);
                }
            } else {
                // The first save replaces the symlink by the file: from then on a plain policy.
                save(&policy, &text);
            }
            agent.until("the edit in effect", |s| excludes(s, ghost));
            ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            // Let the watcher's debounce of this edit run out before the next one.
            std::thread::sleep(Duration::from_millis(250));
        }
        measured.push(ms);
    }
    let sighup = measured.remove(0);
    let watcher = measured.remove(0);
    rows.push(Row {
        volumes,
        approach: "file watcher (rename over the policy)",
        n: watcher.len(),
        stats: summary(watcher),
    });
    rows.push(Row {
        volumes,
        approach: "SIGHUP, no watcher event",
        n: sighup.len(),
        stats: summary(sighup),
    });
    let mut agent = Some(agent);
    let mut ms = Vec::new();
    for _ in 0..restarts {
        ghost += 1;
        let t0 = Instant::now();
        save(&policy, &policy_text(port, volumes, Some(ghost)));
        if let Some(a) = agent.take() {
            a.stop();
        }
        let a = Agent::spawn(&policy, &state, port);
        a.published();
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        agent = Some(a);
    }
    rows.push(Row {
        volumes,
        approach: "restart (SIGTERM, start, first pass)",
        n: ms.len(),
        stats: summary(ms),
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let edits = args
        .iter()
        .position(|a| a == "--edits")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(30usize)
        .clamp(1, 1000);
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut rows = Vec::new();
    measure(dir.path(), 2, edits, 5, &mut rows);
    measure(dir.path(), 10_000, edits, 3, &mut rows);
    println!();
    println!(
        "| volumes | approach                               |  n |     p50 |     p95 |     max |"
    );
    println!(
        "|---------|----------------------------------------|----|---------|---------|---------|"
    );
    for r in rows {
        let (p50, p95, max) = r.stats;
        println!(
            "| {:>7} | {:<38} | {:>2} | {:>4.0} ms | {:>4.0} ms | {:>4.0} ms |",
            r.volumes, r.approach, r.n, p50, p95, max
        );
    }
}
