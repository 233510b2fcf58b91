//! The common shop, handed over: volumes in many time zones, each with ONTAP's hourly (×6), daily
//! and weekly snapshots and one nightly backup of about two hours (SnapRestore only, no
//! FlexClone license), every volume handing those three copies to snapwarden
//! (`managed_snapshots`) and leaving overrunning backups to finish.
//!
//! The scenario test (`tests/simulate_managed.rs`) runs it at CI size against a brute-force
//! oracle; `cargo bench --bench simulate -- managed` runs it at 300 volumes × 30 days.

use std::fmt::Write;

/// Twenty zones: the northern spring-forward changes of March 2027 (US on the 14th, EU on the
/// 28th), the southern fall-back changes of April 4 (Sydney, Adelaide, Auckland; Santiago at
/// midnight between the 3rd and 4th), half-hour and quarter-hour offsets, and zones without DST.
/// The first six already hold a change of each kind in late March and early April.
pub const ZONES: [&str; 20] = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Pacific/Auckland",
    "America/Santiago",
    "Europe/London",
    "America/Chicago",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Asia/Kathmandu",
    "Australia/Adelaide",
    "America/St_Johns",
    "Europe/Helsinki",
    "Asia/Singapore",
    "America/Sao_Paulo",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "America/Denver",
    "Europe/Lisbon",
];

/// ONTAP's default job schedules, in the cluster's zone: (name, minute, hour, Sunday only).
pub const COPIES: [(&str, u32, Option<u32>, bool); 3] = [
    ("hourly", 5, None, false),
    ("daily", 10, Some(0), false),
    ("weekly", 15, Some(0), true),
];

/// How many of each copy are kept: hourly 6, daily 2, weekly 2.
pub const COUNTS: [u32; 3] = [6, 2, 2];

/// Nightly starts, local time (minute, hour): volume `i` of a cluster takes slot `i % 6`. Every
/// one is followed by managed instants within its backup's two hours; 23:45 and 00:20 also meet
/// the daily (00:10) and, on Sundays, the weekly (00:15) snapshot.
pub const STARTS: [(u32, u32); 6] = [(0, 22), (30, 22), (0, 23), (45, 23), (20, 0), (0, 1)];

/// The backup's `expected` and `max`, in minutes.
pub const EXPECTED_MINUTES: i64 = 120;
pub const MAX_MINUTES: i64 = 180;

/// How long a managed snapshot may wait for a clone. An overrun left to finish runs up to 1.5 ×
/// `max` = 4 h 30 m (`simulate::draw`); the earliest instant after a start is 5 minutes in (22:00
/// then 22:05), so a wait lasts at most 4 h 25 m and the settle: 5 h covers every one, and no
/// snapshot is ever taken over a live clone.
pub const MAX_DEFER_HOURS: i64 = 5;

/// Where the volume `i` of an estate over `zones` clusters lives: (cluster index, slot).
pub fn placement(i: usize, zones: usize) -> (usize, usize) {
    (i % zones, (i / zones) % STARTS.len())
}

/// The cluster, volume and window names of volume `i`.
pub fn names(i: usize, zones: usize) -> (String, String, String) {
    let (c, slot) = placement(i, zones);
    (
        format!("c{c}"),
        format!("vol_{i}"),
        format!("nightly-c{c}-{slot}"),
    )
}

/// The policy of `volumes` volumes over the first `zones` of [`ZONES`] (one cluster each).
pub fn estate(volumes: usize, zones: usize) -> String {
    assert!((1..=ZONES.len()).contains(&zones), "{zones} zones");
    let mut s = format!(
        r#"[agent]
guard = "5m"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[schedule]]
name = "daily"
cron = "10 0 * * *"

[[schedule]]
name = "weekly"
cron = "15 0 * * 0"

# What ONTAP itself still takes on the volumes: nothing.
[[snapshot_policy]]
name = "none"
copies = []

[[snapshot_policy]]
name = "handed-over"
max_defer = "{MAX_DEFER_HOURS}h"
copies = [
  {{ schedule = "hourly", count = {}, snapmirror_label = "hourly" }},
  {{ schedule = "daily", count = {}, snapmirror_label = "daily" }},
  {{ schedule = "weekly", count = {}, snapmirror_label = "weekly" }},
]
"#,
        COUNTS[0], COUNTS[1], COUNTS[2]
    );
    for (c, tz) in ZONES.iter().enumerate().take(zones) {
        writeln!(
            s,
            r#"
[[cluster]]
name = "c{c}"
endpoint = "simulator"
timezone = "{tz}"
simulator = {{ version = "9.14.1", licenses = ["snaprestore"] }}"#
        )
        .unwrap();
    }
    let mut members: Vec<Vec<Vec<String>>> = vec![vec![Vec::new(); STARTS.len()]; zones];
    for i in 0..volumes {
        let (c, slot) = placement(i, zones);
        let (cluster, volume, _) = names(i, zones);
        writeln!(
            s,
            r#"
[[volume]]
cluster = "{cluster}"
svm = "svm1"
name = "{volume}"
luns = ["/vol/{volume}/lun0"]
snapshot_policy = "none"
managed_snapshots = "handed-over""#
        )
        .unwrap();
        members[c][slot].push(format!("\"{cluster}/svm1/{volume}\""));
    }
    for (c, slots) in members.iter().enumerate() {
        for (slot, volumes) in slots.iter().enumerate() {
            if volumes.is_empty() {
                continue;
            }
            let (minute, hour) = STARTS[slot];
            writeln!(
                s,
                r#"
[[window]]
name = "nightly-c{c}-{slot}"
volumes = [{}]
start = "{minute} {hour} * * *"
timezone = "{}"
expected = "{EXPECTED_MINUTES}m"
max = "{MAX_MINUTES}m"
on_overrun = "finish""#,
                volumes.join(", "),
                ZONES[c]
            )
            .unwrap();
        }
    }
    s
}
