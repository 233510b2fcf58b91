//! Benchmark: what one whole read of every cluster costs the agent in memory and time — the
//! read `snapwarden run` makes once per `observe_interval` — over the REST client against
//! `snapwarden simulator serve --tls`, on the estate of the scaling bench's `run` half.
//!
//! In this process, on a multi-threaded runtime as `run` has: `discovery::discover` of the four
//! clusters at once (as a pass refreshes them), then a second such read while the first
//! inventories are still held (a refresh builds the new listing before it drops the old). For
//! each it prints wall time, CPU seconds, resident memory after it and the peak so far
//! (`VmHWM`), with the listing's snapshot and LUN counts.
//!
//! `cargo bench --bench discover_peak` (10,000 volumes), or `-- 2000` for another size.

mod common;
#[path = "run_scale/estate.rs"]
#[allow(dead_code)]
mod estate;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeDelta, Utc};
use snapwarden::agent::discovery::{self, Depth, Inventory};
use snapwarden::config::TlsVerify;
use snapwarden::ontap::{ClientOptions, Ontap, RestClient, Secret};

use common::{cpu_seconds, peak_rss_mib, serve_world};
use estate::{minute_ceil, Estate, PASSWORD, USER};

/// `VmRSS` of this process, in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Reads every cluster whole, at once; prints the round's figures.
async fn round(label: &str, clients: &[Arc<dyn Ontap>]) -> Vec<Inventory> {
    let me = std::process::id();
    let (cpu, wall) = (cpu_seconds(me), Instant::now());
    let reads = clients
        .iter()
        .map(|c| discovery::discover(c.as_ref(), Depth::Full, Utc::now()));
    let inventories = futures_util::future::try_join_all(reads)
        .await
        .expect("every cluster is read");
    let snapshots: usize = inventories.iter().map(|i| i.snapshots().count()).sum();
    let luns: usize = inventories.iter().map(|i| i.luns().count()).sum();
    println!(
        "{label}: {:.1} s, {:.2} CPU s, {snapshots} snapshots and {luns} LUNs; RSS {:.0} MiB, \
         peak {:.0} MiB",
        wall.elapsed().as_secs_f64(),
        cpu_seconds(me) - cpu,
        rss_mib(),
        peak_rss_mib()
    );
    inventories
}

fn main() {
    let volumes = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or(10_000, |a| a.parse().expect("the volume count, a number"));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_snapwarden"));
    let dir = tempfile::tempdir().expect("temp dir");
    let now = Utc::now();
    let estate = Estate::new(
        volumes,
        now,
        minute_ceil(now + TimeDelta::minutes(2)),
        TimeDelta::minutes(4),
    );
    let world = dir.path().join("world.toml");
    std::fs::write(&world, estate.world_toml()).expect("write world");
    let served = serve_world(&bin, &world);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let clients: Vec<Arc<dyn Ontap>> = served
        .clusters
        .iter()
        .map(|(name, url)| {
            let mut o = ClientOptions::new(
                name.clone(),
                url.clone(),
                USER,
                Secret::new(PASSWORD).expect("a password"),
            );
            // Loopback to the simulator's own certificate.
            o.tls = TlsVerify::Insecure;
            Arc::new(RestClient::new(o).expect("client")) as Arc<dyn Ontap>
        })
        .collect();
    println!(
        "{volumes} volumes on {} clusters; before: RSS {:.0} MiB, peak {:.0} MiB",
        clients.len(),
        rss_mib(),
        peak_rss_mib()
    );
    runtime.block_on(async {
        let first = round("first whole read", &clients).await;
        let second = round("second, the first still held", &clients).await;
        drop(first);
        println!("first dropped: RSS {:.0} MiB", rss_mib());
        drop(second);
        println!("both dropped: RSS {:.0} MiB", rss_mib());
    });
}
