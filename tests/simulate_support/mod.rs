//! A generated estate for the simulation scenarios and benchmark: three simulator clusters in
//! three zones (two with a DST change in March 2027), hourly/daily/weekly snapshot policies,
//! and windows of varied length that each have a fitting gap.

#![allow(dead_code)]

pub mod managed;

use std::fmt::Write;

/// Where a scenario starts: March 2027 holds the US (14th) and EU (28th) spring-forward changes.
pub const FROM: &str = "2027-03-01T00:00:00Z";

/// The policy text of `volumes` volumes spread over three clusters.
///
/// Every window's configured start overlaps a scheduled snapshot (hourly at :05, daily at 00:00,
/// weekly Sunday 02:15, in the cluster's zone; `guard = 5m`), and every window has a fitting gap
/// within its `shift_limit`, so a schedule-aware agent shifts and a schedule-blind tool collides:
/// - `hourly_*` volumes: window `h-<cluster>` at 00:50 local, max 45m, overlaps 01:05; the gap
///   01:05–02:05 fits from 01:06 (shifted by 16m);
/// - `daily_*` volumes: window `d-<cluster>` at 23:30 local, max 4h, overlaps 00:00;
/// - `weekly_*` volumes: window `w-<cluster>` Sundays 01:00 local, max 10h, overlaps 02:15.
///
/// `extra` is appended (more windows, a `[flexclone]` section).
pub fn estate(volumes: usize, extra: &str) -> String {
    let clusters = [
        ("east", "America/New_York"),
        ("west", "Europe/Berlin"),
        ("tokyo", "Asia/Tokyo"),
    ];
    let mut s = String::from(
        r#"[agent]
guard = "5m"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[schedule]]
name = "daily"
cron = "0 0 * * *"

[[schedule]]
name = "weekly"
cron = "15 2 * * 0"

[[snapshot_policy]]
name = "hourly"
copies = [{ schedule = "hourly", count = 6 }, { schedule = "daily", count = 2 }]

[[snapshot_policy]]
name = "daily"
copies = [{ schedule = "daily", count = 7 }]

[[snapshot_policy]]
name = "weekly"
copies = [{ schedule = "weekly", count = 4 }]
"#,
    );
    for (name, tz) in clusters {
        writeln!(
            s,
            r#"
[[cluster]]
name = "{name}"
endpoint = "simulator"
timezone = "{tz}"
simulator = {{ version = "9.14.1", licenses = ["snaprestore"] }}"#
        )
        .unwrap();
    }
    let mut members: Vec<Vec<Vec<String>>> = vec![vec![Vec::new(); 3]; 3];
    for i in 0..volumes {
        let (cluster, _) = clusters[i % 3];
        let kind = (i / 3) % 3;
        let policy = ["hourly", "daily", "weekly"][kind];
        let name = format!("{policy}_{i}");
        writeln!(
            s,
            r#"
[[volume]]
cluster = "{cluster}"
svm = "svm1"
name = "{name}"
luns = ["/vol/{name}/lun0"]
snapshot_policy = "{policy}"
clone = "snaprestore""#
        )
        .unwrap();
        members[i % 3][kind].push(format!("\"{cluster}/svm1/{name}\""));
    }
    for (ci, (cluster, tz)) in clusters.iter().enumerate() {
        let windows = [
            ("h", "50 0 * * *", "30m", "45m"),
            ("d", "30 23 * * *", "2h", "4h"),
            ("w", "0 1 * * 0", "6h", "10h"),
        ];
        for (kind, (prefix, cron, expected, max)) in windows.iter().enumerate() {
            if members[ci][kind].is_empty() {
                continue;
            }
            writeln!(
                s,
                r#"
[[window]]
name = "{prefix}-{cluster}"
volumes = [{}]
start = "{cron}"
timezone = "{tz}"
expected = "{expected}"
max = "{max}"
shift_limit = "2h""#,
                members[ci][kind].join(", ")
            )
            .unwrap();
        }
    }
    s.push_str(extra);
    s
}
