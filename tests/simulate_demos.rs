//! `snapwarden simulate --compare` on the minute-scale demos (`config/demo.toml`,
//! `config/managed-demo.toml`, `config/veeam-demo.toml`): backups drawn at a resolution their
//! one- and two-minute windows respect, so the agent completes what fits and collides less than
//! the uncoordinated baseline; and the baseline's Veeam snapshots counted as locked at the end
//! only while a capture still pins them.

use std::path::Path;

use snapwarden::config;
use snapwarden::simulate::{self, Comparison, Report, Settings};

fn demo(file: &str, edit: impl Fn(String) -> String) -> config::Policy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    config::parse_str(&edit(text), &path).unwrap_or_else(|e| panic!("{e}"))
}

fn compare(policy: &config::Policy, overrun_rate: f64) -> Comparison {
    let settings = Settings {
        days: 1,
        from: "2027-03-01T00:00:00Z".parse().unwrap(),
        seed: 1,
        overrun_rate,
        state_dir: None,
    };
    let c = simulate::compare(policy, &settings).unwrap();
    show(&c.coordinated);
    show(&c.uncoordinated);
    c
}

fn show(r: &Report) {
    eprintln!(
        "{:<13} cycles {} completed {} shifted {} overrun {} failed {} | chain conflicts {} | locked max {} at the end {} | managed taken {} deferred {} coalesced {} max wait {} s",
        r.mode,
        r.cycles_planned,
        r.cycles_completed,
        r.cycles_shifted,
        r.cycles_overrun,
        r.cycles_failed,
        r.chain_conflicts,
        r.max_locked_backing_snapshots,
        r.locked_at_end,
        r.managed_snapshots_taken,
        r.scheduled_snapshots_deferred,
        r.scheduled_snapshots_coalesced,
        r.max_defer_seconds
    );
}

/// `config/demo.toml` with its windows (every 3 minutes) limited to 08:00–11:59, to keep the
/// day short: 80 occurrences each.
fn demo_morning() -> config::Policy {
    demo("demo.toml", |t| {
        t.replace("\"1-59/3 * * * *\"", "\"1-59/3 8-11 * * *\"")
            .replace("\"2-59/3 * * * *\"", "\"2-59/3 8-11 * * *\"")
    })
}

#[test]
fn the_demo_backups_fit_their_minute_windows_and_the_agent_collides_less() {
    // Without overruns, no backup runs past its max (30 s expected, 1 m max; 2 m and 2 m 30 s
    // for files): every one completes, all but the last few minutes' locked ones.
    let c = compare(&demo_morning(), 0.0);
    let (co, un) = (&c.coordinated, &c.uncoordinated);
    assert_eq!(co.cycles_planned, 240);
    assert_eq!(co.cycles_overrun + un.cycles_overrun, 0, "{co:?} {un:?}");
    assert_eq!(co.cycles_completed, 240, "{co:?}");
    assert_eq!(co.cycles_shifted, 80, "exchange moves to :01: {co:?}");
    // files runs into the :03 snapshot in both (on_conflict = "run"); exchange at its configured
    // :02 ends before :03 when it does not overrun.
    assert!(co.chain_conflicts > 0, "{co:?}");
    assert!(co.chain_conflicts <= un.chain_conflicts, "{co:?} {un:?}");

    // A tenth overrunning: the agent ends them at max (and starts exchange in the gap); the
    // baseline's overrunning exchange backups at :02 reach the :03 snapshot.
    let c = compare(&demo_morning(), 0.1);
    let (co, un) = (&c.coordinated, &c.uncoordinated);
    assert!(co.cycles_completed * 10 >= co.cycles_planned * 8, "{co:?}");
    assert!(co.cycles_overrun > 0 && co.cycles_overrun * 5 < co.cycles_planned);
    assert!(co.chain_conflicts < un.chain_conflicts, "{co:?} {un:?}");
}

#[test]
fn the_managed_demo_defers_its_snapshots_where_ontap_collides() {
    let policy = demo("managed-demo.toml", |t| t);
    let c = compare(&policy, 0.0);
    let (co, un) = (&c.coordinated, &c.uncoordinated);
    // A backup every 10 minutes (5 m expected, 7 m max), none overrunning.
    assert_eq!(co.cycles_planned, 144);
    assert_eq!((co.cycles_completed, co.cycles_overrun), (144, 0), "{co:?}");
    assert_eq!(co.chain_conflicts, 0, "{co:?}");
    assert_eq!(co.scheduled_snapshots_taken, 0, "{co:?}");
    // Each backup (3 to 6 minutes) holds one to three two-minute instants back: one snapshot
    // after it. Every instant of the day is covered once: 720, the first (00:00) by the
    // snapshot the agent takes as it starts.
    assert_eq!(co.scheduled_snapshots_deferred, 144, "{co:?}");
    assert!(co.scheduled_snapshots_coalesced > 100, "{co:?}");
    assert_eq!(
        co.managed_snapshots_taken + co.scheduled_snapshots_coalesced,
        720,
        "{co:?}"
    );
    assert!(co.max_defer_seconds <= 8 * 60, "{co:?}");
    assert_eq!(co.retention_violations, 0, "{co:?}");
    assert_eq!(
        (co.leaked_objects, co.foreign_objects_deleted),
        (0, 0),
        "{co:?}"
    );
    // ONTAP takes them on time instead, into every backup's clone.
    assert!(un.chain_conflicts > 144, "{un:?}");
    assert_eq!(
        un.scheduled_snapshots_deferred + un.managed_snapshots_taken,
        0
    );
    // One per two-minute instant of the day.
    assert!(un.scheduled_snapshots_taken >= 720, "{un:?}");
}

#[test]
fn the_veeam_baseline_counts_as_locked_at_the_end_only_what_is_still_pinned() {
    let c = compare(&demo("veeam-demo.toml", |t| t), 0.0);
    let (co, un) = (&c.coordinated, &c.uncoordinated);
    assert_eq!(co.cycles_planned, 480);
    assert_eq!(co.cycles_completed, 480, "{co:?}");
    assert_eq!((co.chain_conflicts, co.locked_at_end), (0, 0), "{co:?}");
    // At :02 the job's clone lives across the snapshot at :03: every run captured and its
    // snapshot left by Veeam. A capture pins it only until its snapshot rotates out (five kept,
    // every 3 minutes): what is locked at the end is the last runs', never more than were ever
    // locked at once — not every snapshot the job left.
    assert_eq!(un.chain_conflicts, 480, "{un:?}");
    assert!(un.locked_at_end > 0, "{un:?}");
    assert!(
        un.locked_at_end <= un.max_locked_backing_snapshots,
        "{un:?}"
    );
    assert!(un.max_locked_backing_snapshots <= 6, "{un:?}");
}

/// Backups that overrun on the managed demo leave backing snapshots that pin one another (a
/// newer one captured an older one's clone) and are released in the same pass. The cycles' ids
/// are random in every run; the report is the same in every run all the same.
#[test]
fn a_fortnight_of_overruns_on_the_managed_demo_reports_the_same_in_every_run() {
    let policy = demo("managed-demo.toml", |t| t);
    let settings = Settings {
        days: 14,
        from: "2027-01-04T00:00:00Z".parse().unwrap(),
        seed: 1,
        overrun_rate: 0.2,
        state_dir: None,
    };
    let run = || {
        let r = simulate::coordinated(&policy, &settings).unwrap();
        assert!(
            r.cycles_overrun > 0 && r.locked_backing_snapshot_hours > 0.0,
            "{r:?}"
        );
        serde_json::to_string(&r).unwrap()
    };
    let first = run();
    for _ in 0..3 {
        assert_eq!(run(), first);
    }
}
