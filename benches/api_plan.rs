//! Benchmark: what `GET /api/v1/plan` costs the running agent in memory and time.
//!
//! Run with `cargo bench --bench api_plan` (options after `--`: `--hours H`, default 168;
//! `--requests N` sent at once, default 4; `--bin PATH` to measure another build of snapwarden,
//! an older one for example, instead of this one; `--only demo` or `--only estate` for one
//! policy: a year of the 10,000 volumes from a build without the week's bound is about 25 GB).
//!
//! For each policy — the demo (`config/demo.toml`, three volumes) and the 10,000 volumes of
//! `common` on the embedded simulator — it starts `snapwarden run`, waits for its first published
//! pass, then sends the N requests at once, each read to its end by its own thread into a byte
//! counter, and reads the agent's `/proc/<pid>/status`: its peak RSS (`VmHWM`) before and after
//! the requests, and its RSS once they are answered. Prints one row per policy: what each request
//! got (status, bytes, seconds) and the three memory figures.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// One HTTP/1.0 GET on loopback, read to the end into a counter: status, bytes after the head,
/// seconds; `None` while nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, u64, f64)> {
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(300))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = vec![0u8; 1 << 16];
    let mut head = Vec::new();
    let mut body = 0u64;
    loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        if body == 0 && !head.ends_with(b"\r\n\r\n") {
            head.extend_from_slice(&buf[..n]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                body = (head.len() - end - 4) as u64;
                head.truncate(end + 4);
            }
        } else {
            body += n as u64;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body, started.elapsed().as_secs_f64()))
}

/// `VmHWM` and `VmRSS` of `pid`, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the agent runs");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `snapwarden run` on `policy`, once `/api/v1/status` shows its first pass.
fn start(bin: &Path, policy: &Path, state: &Path, port: u16) -> Agent {
    let agent = Agent(
        Command::new(bin)
            .args(["run", "--config"])
            .arg(policy)
            .arg("--state-dir")
            .arg(state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("snapwarden starts"),
    );
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let mut s = String::new();
        let published = std::net::TcpStream::connect(("127.0.0.1", port))
            .and_then(|mut c| {
                write!(c, "GET /api/v1/status HTTP/1.0\r\nHost: x\r\n\r\n")?;
                c.read_to_string(&mut s)
            })
            .is_ok_and(|_| s.contains("\"generated_at\":\""));
        if published {
            return agent;
        }
        assert!(Instant::now() < end, "the agent published no pass");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One row: `name` in the table, `stem` for its files.
fn measure(
    bin: &Path,
    (name, stem): (&str, &str),
    text: &str,
    hours: u32,
    requests: usize,
    dir: &Path,
) {
    let port = free_port();
    let policy = dir.join(format!("{stem}.toml"));
    let text = text.replacen(
        "[agent]\n",
        &format!("[agent]\nlisten = \"127.0.0.1:{port}\"\n"),
        1,
    );
    std::fs::write(&policy, text).expect("policy written");
    let agent = start(bin, &policy, &dir.join(format!("{stem}-state")), port);
    let pid = agent.0.id();
    let (peak_before, _) = memory(pid);
    let path = format!("/api/v1/plan?hours={hours}");
    let answers: Vec<(u16, u64, f64)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..requests)
            .map(|_| s.spawn(|| get(port, &path).expect("an answer")))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("request thread"))
            .collect()
    });
    let (peak_after, rss_after) = memory(pid);
    let answers: Vec<String> = answers
        .iter()
        .map(|(code, bytes, secs)| format!("{code} {:.1} MB {secs:.2} s", *bytes as f64 / 1e6))
        .collect();
    println!(
        "| {name:<14} | {hours:>5} | {:<70} | {peak_before:>7.1} MiB | {peak_after:>7.1} MiB | {rss_after:>7.1} MiB |",
        answers.join(", ")
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let hours: u32 = arg("--hours").and_then(|h| h.parse().ok()).unwrap_or(168);
    let requests: usize = arg("--requests")
        .and_then(|n| n.parse().ok())
        .unwrap_or(4)
        .clamp(1, 64);
    let bin = arg("--bin")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_snapwarden")));
    let dir = tempfile::tempdir().expect("temporary directory");
    let demo =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml"))
            .expect("config/demo.toml")
            .replace("listen = \"127.0.0.1:9464\"\n", "");
    let estate = common::policy_toml(&common::policy());
    println!("{requests} requests at once, {}", bin.display());
    println!();
    println!(
        "| policy         | hours | answers (status, body, time)                                           | peak before | peak after  | RSS after   |"
    );
    println!(
        "|----------------|-------|------------------------------------------------------------------------|-------------|-------------|-------------|"
    );
    let only = arg("--only");
    if only.as_deref() != Some("estate") {
        measure(&bin, ("demo", "demo"), &demo, hours, requests, dir.path());
    }
    if only.as_deref() != Some("demo") {
        measure(
            &bin,
            ("10,000 volumes", "estate"),
            &estate,
            hours,
            requests,
            dir.path(),
        );
    }
}
