//! The estate `snapwarden run` is measured on: a simulator world file and a policy for N
//! volumes, laid out around the bench's start so that every window fits between two scheduled
//! snapshots.
//!
//! Four clusters in whole-hour zones (so a cron minute is the same minute in UTC), each running
//! ONTAP's `default` policy shape — hourly (6 kept), daily (2) and weekly (2) — but at minute
//! `M`, the minute before the world was written: the last hourly snapshot was just taken and
//! the next comes 59 minutes later, a gap every window lies in. Each volume starts with the ten
//! snapshots that policy keeps, as a cluster that has run it for weeks holds them (the agent
//! lists them on every observation). Volume `i` lives on cluster `i % 4` and has its own window,
//! starting `(i / 4) % 30` minutes after the first window (one of [`SPREAD_MINUTES`] minute
//! slots), so each minute starts about N/30 cycles spread over the four clusters.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc, Weekday};
use chrono_tz::Tz;

/// Whole-hour zones (their DST changes are whole hours too).
pub const CLUSTERS: [(&str, &str); 4] = [
    ("cluster0", "Etc/UTC"),
    ("cluster1", "Europe/Berlin"),
    ("cluster2", "America/New_York"),
    ("cluster3", "Asia/Tokyo"),
];
/// Window starts are spread over this many minutes from the first one: at 10,000 volumes about
/// 333 cycles are due each minute, and with a 4-minute hold 1,300–1,700 are in flight at once
/// when the agent keeps up.
pub const SPREAD_MINUTES: usize = 30;
/// Copies kept per schedule, as ONTAP's built-in `default` policy keeps them.
const KEPT: [(&str, usize); 3] = [("hourly", 6), ("daily", 2), ("weekly", 2)];
/// The volume the lifecycle's minimum is measured on by hand; on the first cluster, not in the
/// policy.
pub const CALIBRATION_VOLUME: &str = "calibration";
pub const USER: &str = "bench";
pub const PASSWORD: &str = "bench-pw-1";
pub const PASSWORD_ENV: &str = "SNAPWARDEN_BENCH_PASSWORD";
pub const SVM: &str = "svm1";
/// `max` is the hold plus this: the planner's reservation of a window.
const MAX_OVER_HOLD: TimeDelta = TimeDelta::minutes(2);

/// One estate: its size, its scheduled snapshots' minute, its first window and the hold.
pub struct Estate {
    pub volumes: usize,
    /// The minute (of every hour, in UTC and in every cluster's zone) the schedules fire at.
    pub snapshot_minute: u32,
    /// The last hourly snapshot before the world was written.
    pub last_snapshot: DateTime<Utc>,
    /// The first window's start (a minute boundary).
    pub first_window: DateTime<Utc>,
    /// How long each cycle holds its clone (`expected`, no hook).
    pub hold: TimeDelta,
}

impl Estate {
    /// An estate written at `now` whose first window opens at `first_window`. Every window
    /// ends, `max` and the default 5-minute guard included, before the next hourly snapshot.
    pub fn new(
        volumes: usize,
        now: DateTime<Utc>,
        first_window: DateTime<Utc>,
        hold: TimeDelta,
    ) -> Estate {
        let last_snapshot = minute_floor(now - TimeDelta::minutes(1));
        let last_end = first_window
            + TimeDelta::minutes(SPREAD_MINUTES as i64 - 1)
            + hold
            + MAX_OVER_HOLD
            + TimeDelta::minutes(5);
        assert!(
            last_end <= last_snapshot + TimeDelta::hours(1),
            "the windows ({first_window} + {SPREAD_MINUTES} min) must end before the next \
             hourly snapshot at {}",
            last_snapshot + TimeDelta::hours(1)
        );
        Estate {
            volumes,
            snapshot_minute: last_snapshot.minute(),
            last_snapshot,
            first_window,
            hold,
        }
    }

    pub fn volume_name(i: usize) -> String {
        format!("vol{i:05}")
    }

    pub fn cluster_of(i: usize) -> usize {
        i % CLUSTERS.len()
    }

    /// Volume `i`'s window start (UTC).
    pub fn start_of(&self, i: usize) -> DateTime<Utc> {
        let slot = (i / CLUSTERS.len()) % SPREAD_MINUTES;
        self.first_window + TimeDelta::minutes(slot as i64)
    }

    /// Volumes per cluster.
    pub fn volumes_on(&self, cluster: usize) -> usize {
        (0..self.volumes)
            .filter(|&i| Self::cluster_of(i) == cluster)
            .count()
    }

    /// Snapshots each volume starts with.
    pub fn snapshots_per_volume() -> usize {
        KEPT.iter().map(|(_, n)| n).sum()
    }

    /// The simulator's world: the clusters, their schedules and policy, the volumes with one
    /// LUN and their snapshots, and the calibration volume.
    pub fn world_toml(&self) -> String {
        let m = self.snapshot_minute;
        let mut w = format!("[[users]]\nname = \"{USER}\"\npassword = \"{PASSWORD}\"\n");
        for (ci, (name, zone)) in CLUSTERS.iter().enumerate() {
            let _ = write!(
                w,
                "\n[[clusters]]\nname = \"{name}\"\ntimezone = \"{zone}\"\nlicenses = [\"snaprestore\"]\n\n\
                 [[clusters.schedules]]\nname = \"hourly\"\ncron = \"{m} * * * *\"\n\n\
                 [[clusters.schedules]]\nname = \"daily\"\ncron = \"{m} 0 * * *\"\n\n\
                 [[clusters.schedules]]\nname = \"weekly\"\ncron = \"{m} 0 * * 0\"\n\n\
                 [[clusters.snapshot_policies]]\nname = \"bench\"\ncopies = [{}]\n\n\
                 [[clusters.svms]]\nname = \"{SVM}\"\n",
                KEPT.iter()
                    .map(|(s, n)| format!("{{ schedule = \"{s}\", count = {n} }}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let zone: Tz = zone.parse().expect("bench zone");
            let snapshots = self.kept_snapshots(zone);
            let names = (0..self.volumes)
                .filter(|&i| Self::cluster_of(i) == ci)
                .map(Self::volume_name)
                .chain((ci == 0).then(|| CALIBRATION_VOLUME.to_string()));
            for v in names {
                let _ = write!(
                    w,
                    "\n[[clusters.svms.volumes]]\nname = \"{v}\"\nsnapshot_policy = \"bench\"\n\
                     luns = [{{ name = \"lun0\" }}]\nsnapshots = [{snapshots}]\n"
                );
            }
        }
        w
    }

    /// The snapshots the `bench` policy keeps at the world's start in `zone`, as an inline
    /// TOML array: the newest 6 hourly, 2 daily (00:M) and 2 weekly (Sunday 00:M) instants,
    /// named `<schedule>.<YYYY-MM-DD_HHMM>` in the zone's local time as the simulator names
    /// its own.
    fn kept_snapshots(&self, zone: Tz) -> String {
        let mut entries = Vec::new();
        for (schedule, count) in KEPT {
            let due = |t: DateTime<Utc>| {
                let local = t.with_timezone(&zone);
                match schedule {
                    "hourly" => true,
                    "daily" => local.hour() == 0,
                    _ => local.hour() == 0 && local.weekday() == Weekday::Sun,
                }
            };
            // Walking back hour by hour: two weeks and a day hold two weekly instants. The hour
            // a fall-back repeats would repeat a name: its earlier instant is left out.
            let mut names = HashSet::new();
            let instants = (0..24 * 15)
                .map(|h| self.last_snapshot - TimeDelta::hours(h))
                .filter(|&t| due(t))
                .map(|t| {
                    let local = t.with_timezone(&zone);
                    (format!("{schedule}.{}", local.format("%Y-%m-%d_%H%M")), t)
                })
                .filter(|(name, _)| names.insert(name.clone()))
                .take(count);
            for (name, t) in instants {
                entries.push(format!(
                    "{{ name = \"{name}\", create_time = \"{}\" }}",
                    t.to_rfc3339()
                ));
            }
        }
        entries.join(", ")
    }

    /// The agent's policy: the clusters at the simulator's `urls` (pinned to its certificate
    /// `pin`), the volumes (their schedules read from the cluster) and one window each, UTC,
    /// `expected` = the hold, no hook. Every `[agent]` setting but `listen` and `state_dir`
    /// is the default.
    pub fn policy_toml(
        &self,
        listen: u16,
        state_dir: &Path,
        urls: &[(String, String)],
        pin: &str,
    ) -> String {
        let mut p = format!(
            "[agent]\nlisten = \"127.0.0.1:{listen}\"\nstate_dir = \"{}\"\n",
            state_dir.display()
        );
        for (name, _) in CLUSTERS {
            let url = urls
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, u)| u)
                .unwrap_or_else(|| panic!("the simulator serves no {name}"));
            let _ = write!(
                p,
                "\n[[cluster]]\nname = \"{name}\"\nendpoint = \"{url}\"\nusername = \"{USER}\"\n\
                 password_env = \"{PASSWORD_ENV}\"\npin_sha256 = \"{pin}\"\ntimezone = \"auto\"\n"
            );
        }
        let hold = self.hold.num_seconds();
        let max = (self.hold + MAX_OVER_HOLD).num_seconds();
        for i in 0..self.volumes {
            let (v, c) = (Self::volume_name(i), CLUSTERS[Self::cluster_of(i)].0);
            let start = self.start_of(i);
            let _ = write!(
                p,
                "\n[[volume]]\ncluster = \"{c}\"\nsvm = \"{SVM}\"\nname = \"{v}\"\n\
                 luns = [\"/vol/{v}/lun0\"]\nsnapshot_policy = \"ontap\"\n\n\
                 [[window]]\nname = \"w{i:05}\"\nvolumes = [\"{c}/{SVM}/{v}\"]\n\
                 start = \"{} {} * * *\"\ntimezone = \"UTC\"\nexpected = \"{hold}s\"\nmax = \"{max}s\"\n",
                start.minute(),
                start.hour()
            );
        }
        p
    }
}

/// `t` with its seconds dropped.
pub fn minute_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("a minute boundary exists")
}

/// The first minute boundary at or after `t`.
pub fn minute_ceil(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = minute_floor(t);
    if floor == t {
        t
    } else {
        floor + TimeDelta::minutes(1)
    }
}
