//! Benchmark: the heap the agent's Prometheus metrics hold for an estate, and what one scrape
//! (`Metrics::render`) allocates on top, counted by a counting global allocator.
//!
//! The estate is the shape of the scaling bench's `run` half, built in memory: four clusters,
//! N volumes with ONTAP's `default` policy shape (hourly, daily, weekly) and one window each, a
//! pass's worth of cycles in flight (N / 6, as at 10,000 volumes 1,300–1,700 are), N / 15 cycles
//! ended and released, N / 100 conflicts and FlexClone recommendations — then, apart, three
//! managed copies per volume. For each it prints the heap the metrics hold after the agent's
//! calls (what stays between passes), the peak a render adds, the text's size, and the time of
//! the calls and of the render — of the first render, and of the next of the same state (which
//! knows how long the last text was).
//!
//! `cargo bench --bench metrics_memory` (10,000 volumes), or `-- 2000` for another size. With
//! `SNAPWARDEN_BENCH_TEXT_DIR=DIR` it also writes each render's text to `DIR/estate.prom` and
//! `DIR/managed.prom`, so that two builds' expositions of the same state can be compared.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use snapwarden::agent::cycle::{CloneKind, ConflictKind, Cycle, CycleResult, CycleState};
use snapwarden::agent::decide::TakeWhy;
use snapwarden::agent::managed::{CopyKey, CopyStatus};
use snapwarden::agent::metrics::{publish, Metrics};
use snapwarden::agent::state::{ClusterView, Memory, Open, Step, VolumeKey};
use snapwarden::config::Policy;
use snapwarden::domain::Observed;

/// The system allocator, counting the bytes live now and the most live at once.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is passed to `System` unchanged; the counters only observe the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Starts a new peak from the bytes live now.
fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

const CLUSTERS: [(&str, &str); 4] = [
    ("cluster0", "Etc/UTC"),
    ("cluster1", "Europe/Berlin"),
    ("cluster2", "America/New_York"),
    ("cluster3", "Asia/Tokyo"),
];

fn volume_name(i: usize) -> String {
    format!("vol{i:05}")
}

/// The policy: the clusters, the `default` shape inline, `volumes` volumes with a window each.
fn policy(volumes: usize) -> Policy {
    let mut p = String::new();
    for (name, zone) in CLUSTERS {
        let _ = write!(
            p,
            "[[cluster]]\nname = \"{name}\"\nendpoint = \"https://{name}.example\"\nusername = \"bench\"\n\
             password_env = \"SNAPWARDEN_BENCH_PASSWORD\"\ntimezone = \"{zone}\"\n"
        );
    }
    p.push_str(
        "[[schedule]]\nname = \"hourly\"\ncron = \"5 * * * *\"\n\
         [[schedule]]\nname = \"daily\"\ncron = \"10 0 * * *\"\n\
         [[schedule]]\nname = \"weekly\"\ncron = \"15 0 * * 0\"\n\
         [[snapshot_policy]]\nname = \"default\"\n\
         copies = [{ schedule = \"hourly\", count = 6 }, { schedule = \"daily\", count = 2 }, \
         { schedule = \"weekly\", count = 2 }]\n",
    );
    for i in 0..volumes {
        let (cluster, _) = CLUSTERS[i % CLUSTERS.len()];
        let v = volume_name(i);
        let _ = write!(
            p,
            "[[volume]]\ncluster = \"{cluster}\"\nsvm = \"svm1\"\nname = \"{v}\"\n\
             luns = [\"/vol/{v}/lun0\"]\nsnapshot_policy = \"default\"\n\
             [[window]]\nname = \"w{i:05}\"\nvolumes = [\"{cluster}/svm1/{v}\"]\n\
             start = \"{} 1 * * *\"\ntimezone = \"UTC\"\nexpected = \"4m\"\nmax = \"6m\"\n",
            20 + (i / CLUSTERS.len()) % 30
        );
    }
    snapwarden::config::parse_str(&p, Path::new("bench.toml")).expect("the bench policy is valid")
}

/// Volume `i`'s cycle of the night of `now`, in `state`.
fn cycle(i: usize, state: CycleState, now: DateTime<Utc>) -> Cycle {
    let (cluster, _) = CLUSTERS[i % CLUSTERS.len()];
    let created = now - TimeDelta::seconds(30 + (i % 200) as i64);
    Cycle {
        id: format!("cycle-{i:05}"),
        window: format!("w{i:05}"),
        cluster: cluster.into(),
        svm: "svm1".into(),
        volume: volume_name(i),
        window_start: created,
        create_at: created,
        release_by: created + TimeDelta::minutes(6),
        release_deadline: Some(created + TimeDelta::minutes(40)),
        backing_snapshot: format!("snapwarden.w{i:05}.20270101T012000Z"),
        clone_kind: CloneKind::SnapRestore,
        clones: Vec::new(),
        state,
        result: None,
        created_at: Some(created),
        clones_created_at: None,
        clones_deleted_at: None,
        released_at: None,
        detail: String::new(),
        replica: None,
    }
}

/// The agent's memory in the middle of the night: `volumes / 6` cycles in flight, `volumes /
/// 15` released.
fn memory(volumes: usize, now: DateTime<Utc>) -> (Memory, Vec<Cycle>) {
    let mut memory = Memory::default();
    for i in (0..volumes).step_by(6) {
        let state = match i % 5 {
            0 => CycleState::Releasing,
            1 => CycleState::Locked,
            _ => CycleState::Live,
        };
        let c = cycle(i, state, now);
        let open = Open {
            step: Step::Held {
                until: now + TimeDelta::minutes(2),
            },
            settle_after: None,
            cycle: c,
        };
        memory.open.insert(open.cycle.id.clone(), open);
    }
    let mut ended = Vec::new();
    for i in (3..volumes).step_by(15) {
        let mut c = cycle(i, CycleState::Released, now);
        c.result = Some(if i % 4 == 0 {
            CycleResult::Failed
        } else {
            CycleResult::Completed
        });
        c.released_at = Some(now - TimeDelta::seconds(5));
        memory.recent.push_back(c.clone());
        ended.push(c);
    }
    (memory, ended)
}

/// One render of `/metrics`: the text, its time, and the most it allocated at once on top of
/// what was live before, the text counted at its length once written (its room at the peak
/// counted as it was then).
fn render(m: &Metrics) -> (String, std::time::Duration, usize) {
    reset_peak();
    let started = Instant::now();
    let text = m.render();
    let took = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - live() + text.len();
    (text, took, peak)
}

/// Prints the heap `calls` leaves held beyond what was live before it, then renders twice (the
/// first scrape, and the next of the same state) and prints what each render adds at its
/// peak.
fn measure(label: &str, file: &str, metrics: impl FnOnce() -> Metrics) -> Metrics {
    let before = live();
    let started = Instant::now();
    let m = metrics();
    let calls = started.elapsed();
    let held = live() - before;
    let (text, first, first_peak) = render(&m);
    // The next scrape of the same state: the agent's every scrape after its first.
    let (again, next, next_peak) = render(&m);
    assert!(again == text, "two renders of the same state differ");
    drop(again);
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    println!(
        "{label}: {series} series; held {:.1} MiB ({:.0} bytes a series); calls {:.0} ms; \
         render: peak +{:.1} MiB, text {:.1} MiB, {:.0} ms; the next: peak +{:.1} MiB, {:.0} ms",
        mib(held),
        held as f64 / series.max(1) as f64,
        calls.as_secs_f64() * 1000.0,
        mib(first_peak),
        mib(text.len()),
        first.as_secs_f64() * 1000.0,
        mib(next_peak),
        next.as_secs_f64() * 1000.0
    );
    if let Some(dir) = std::env::var_os("SNAPWARDEN_BENCH_TEXT_DIR") {
        let path = Path::new(&dir).join(file);
        std::fs::write(&path, &text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
    drop(text);
    m
}

fn main() {
    let volumes = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or(10_000, |a| a.parse().expect("the volume count, a number"));
    let now: DateTime<Utc> = "2027-01-05T01:30:00Z".parse().expect("a time");
    let policy = Arc::new(policy(volumes));
    let plan = snapwarden::planner::plan(&policy, &Observed::default(), now, TimeDelta::days(8));
    let (memory, ended) = memory(volumes, now);
    let views: Vec<ClusterView> = CLUSTERS
        .iter()
        .map(|_| ClusterView {
            reachable: true,
            ..ClusterView::default()
        })
        .collect();
    println!("{volumes} volumes, {} windows", policy.windows.len());
    // The policy's volume index is the policy's, built on first use: not the metrics'.
    let _ = policy.volume_at("", "", "");

    let m = measure("estate", "estate.prom", || {
        let m = Metrics::new();
        m.config_loaded(&policy, now);
        m.scheduled(&policy, &plan, now);
        for i in (0..volumes).step_by(100) {
            let v = &policy.volumes[i];
            let cluster = &policy.clusters[v.cluster].name;
            m.conflict(
                &policy,
                cluster,
                &v.svm,
                &v.name,
                ConflictKind::ChainConflict,
            );
            m.set_flexclone_recommended(cluster, &v.svm, &v.name, true);
        }
        for c in &ended {
            m.cycle_ended(c, now);
        }
        publish(&m, &policy, &views, &memory, now);
        m
    });
    drop(m);

    let copies: Vec<CopyStatus> = policy
        .volumes
        .iter()
        .flat_map(|v| {
            let cluster = policy.clusters[v.cluster].name.clone();
            ["hourly", "daily", "weekly"].map(|prefix| CopyStatus {
                cluster: cluster.clone(),
                svm: v.svm.clone(),
                volume: v.name.clone(),
                prefix: format!("snapwarden.{prefix}"),
                policy: "default".into(),
                schedule: prefix.into(),
                count: 6,
                snapshots: 6,
                over_count: 0,
                last_at: Some(now - TimeDelta::minutes(25)),
                next_due: Some(now + TimeDelta::minutes(35)),
                deadline: Some(now + TimeDelta::minutes(95)),
                waiting_since: None,
                waiting_for: None,
                last_error: None,
            })
        })
        .collect();
    let m = measure("managed copies", "managed.prom", || {
        let m = Metrics::new();
        m.managed.publish(&copies, &[]);
        for c in copies.iter().step_by(3) {
            let key = CopyKey {
                volume: VolumeKey {
                    cluster: c.cluster.clone(),
                    svm: c.svm.clone(),
                    volume: c.volume.clone(),
                },
                prefix: c.prefix.clone(),
            };
            m.managed.taken(&key, &TakeWhy::OnTime, 1);
        }
        m
    });
    drop(m);
}
