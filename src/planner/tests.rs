//! Planner tests: rendered scenarios compared with expected text, and the no-overlap property.

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::*;
use crate::config::{
    Agent, CloneMethod, Cluster, ClusterTimezone, Copies, Endpoint, FlexCloneRule, JobSchedule,
    OnConflict, SimulatedCluster, SnapshotPolicy, TlsVerify, Volume, VolumeSchedules, Window,
};
use crate::domain::{ClusterInfo, ScheduleInfo, SnapshotPolicyInfo, VolumeInfo};
use crate::timeline::CronSpec;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A one-cluster policy: every volume uses every schedule; windows as given.
pub(crate) struct Fixture {
    pub tz: Tz,
    pub guard: TimeDelta,
    pub schedules: Vec<(String, Recurrence)>,
    pub volumes: Vec<String>,
    pub windows: Vec<Window>,
}

impl Fixture {
    pub fn demo() -> Fixture {
        Fixture {
            tz: "Europe/Berlin".parse().unwrap(),
            guard: TimeDelta::minutes(5),
            schedules: vec![
                (
                    "hourly".into(),
                    Recurrence::Cron(CronSpec::parse("5 * * * *").unwrap()),
                ),
                (
                    "daily".into(),
                    Recurrence::Cron(CronSpec::parse("10 0 * * *").unwrap()),
                ),
                (
                    "weekly".into(),
                    Recurrence::Cron(CronSpec::parse("15 0 * * 0").unwrap()),
                ),
            ],
            volumes: vec![
                "vol_sql".into(),
                "vol_exch".into(),
                "vol_files".into(),
                "vol_erp".into(),
            ],
            windows: vec![
                window("sql-nightly", 0, "10 1 * * *", 35, 45, OnConflict::Shift),
                window("exchange", 1, "30 2 * * *", 30, 40, OnConflict::Shift),
                window("files-weekly", 2, "0 23 * * 6", 70, 90, OnConflict::Run),
                window("erp", 3, "0 4 * * *", 40, 55, OnConflict::Skip),
            ],
        }
    }

    pub fn policy(&self) -> Policy {
        let tz = self.tz;
        Policy {
            source: PathBuf::from("fixture.toml"),
            files: vec![PathBuf::from("fixture.toml")],
            agent: Agent {
                listen: "127.0.0.1:9464".parse().unwrap(),
                state_dir: PathBuf::from("/tmp/snapwarden"),
                snapshot_prefix: "snapwarden".into(),
                guard: self.guard,
            },
            flexclone: FlexCloneRule {
                recommend_after: 3,
                within: TimeDelta::days(7),
                use_when_licensed: false,
            },
            clusters: vec![Cluster {
                name: "demo".into(),
                endpoint: Endpoint::Simulator,
                username: "admin".into(),
                password: None,
                tls: TlsVerify::System,
                timezone: ClusterTimezone::Named(tz),
                simulator: Some(SimulatedCluster {
                    version: "9.14.1".into(),
                    licenses: vec![],
                }),
            }],
            schedules: self
                .schedules
                .iter()
                .map(|(name, r)| JobSchedule {
                    name: name.clone(),
                    recurrence: r.clone(),
                })
                .collect(),
            snapshot_policies: vec![SnapshotPolicy {
                name: "default".into(),
                copies: (0..self.schedules.len())
                    .map(|i| Copies {
                        schedule: i,
                        count: 2,
                        prefix: self.schedules[i].0.clone(),
                    })
                    .collect(),
            }],
            volumes: self
                .volumes
                .iter()
                .map(|name| Volume {
                    cluster: 0,
                    svm: "svm1".into(),
                    name: name.clone(),
                    luns: vec![format!("/vol/{name}/lun0")],
                    schedules: VolumeSchedules::Policy(0),
                    clone: CloneMethod::Auto,
                })
                .collect(),
            windows: self.windows.clone(),
        }
    }
}

fn window(
    name: &str,
    volume: usize,
    start: &str,
    expected: i64,
    max: i64,
    on_conflict: OnConflict,
) -> Window {
    Window {
        name: name.into(),
        volumes: vec![volume],
        start: CronSpec::parse(start).unwrap(),
        timezone: "Europe/Berlin".parse().unwrap(),
        expected: TimeDelta::minutes(expected),
        max: TimeDelta::minutes(max),
        on_conflict,
        shift_limit: TimeDelta::hours(2),
        hook: None,
    }
}

/// One line per lifecycle and conflict, in the volume's zone.
fn render(policy: &Policy, plan: &Plan) -> String {
    let mut out = String::new();
    for vp in &plan.volumes {
        let tz = vp.timezone;
        for l in &vp.lifecycles {
            out.push_str(&format!(
                "{} {} {} {}-{} {}: {}\n",
                policy.volumes[vp.volume].name,
                policy.windows[l.window].name,
                l.window_start.with_timezone(&tz).format("%a"),
                l.create_at.with_timezone(&tz).format("%H:%M"),
                l.release_by.with_timezone(&tz).format("%H:%M"),
                l.outcome.as_str(),
                l.reason
            ));
        }
    }
    for c in &plan.conflicts {
        out.push_str(&format!(
            "conflict {} {} {}: {}\n",
            policy.windows[c.window].name,
            c.kind.as_str(),
            c.schedule,
            c.suggestion
        ));
    }
    out
}

#[test]
fn demo_day_places_fits_shifts_skips_and_conflicts() {
    let f = Fixture::demo();
    let policy = f.policy();
    // Saturday 2026-03-07 12:00 Berlin, 24 hours: one occurrence of each window.
    let plan = plan(
        &policy,
        &Observed::offline(),
        utc("2026-03-07T11:00:00Z"),
        TimeDelta::hours(24),
    );
    assert_eq!(
        render(&policy, &plan),
        "\
vol_sql sql-nightly Sun 01:10-01:55 fits: release by 01:55 + guard 5m is before hourly at 02:05
vol_exch exchange Sun 02:20-03:00 shifted: shifted 10m earlier to 02:20: hourly at 03:05 falls inside 02:30–03:15 (max 40m + guard 5m)
vol_files files-weekly Sat 23:00-00:30 conflict: runs anyway (on_conflict = run): hourly at 23:05 falls inside 23:00–00:35 (max 1h30m + guard 5m); the clone will be captured
vol_erp erp Sun 04:00-04:55 skipped: skipped (on_conflict = skip): hourly at 04:05 falls inside 04:00–05:00 (max 55m + guard 5m)
conflict files-weekly chain_conflict hourly: no free gap of 1h36m (max 1h30m + guard 5m) exists in vol_files's schedule; the largest is 1h (hourly at Sat 12:05 to hourly at Sat 13:05). FlexClone removes the constraint (clone = \"flexclone\", needs the flexclone license), or lower max to 54m
conflict erp skipped hourly: no free gap of 1h1m (max 55m + guard 5m) exists in vol_erp's schedule; the largest is 1h (hourly at Sat 12:05 to hourly at Sat 13:05). FlexClone removes the constraint (clone = \"flexclone\", needs the flexclone license), or lower max to 54m
"
    );
    let exchange = plan
        .suggestions
        .iter()
        .find(|s| policy.windows[s.window].name == "exchange")
        .unwrap();
    assert_eq!(exchange.offset, Some(TimeDelta::minutes(-10)));
    assert_eq!(exchange.new_start.as_deref(), Some("20 2 * * *"));
    assert_eq!(
        exchange.text,
        "start at 02:20 Europe/Berlin (start = \"20 2 * * *\") and window exchange fits all 1 occurrences in the next 24 h"
    );
    let sql = &plan.volumes[0].lifecycles[0];
    assert_eq!(sql.slack(plan.guard), Some(TimeDelta::minutes(5)));
}

#[test]
fn shift_respects_its_limit_and_skips_when_nothing_fits() {
    let mut f = Fixture::demo();
    f.windows = vec![Window {
        shift_limit: TimeDelta::minutes(5),
        ..window("w", 0, "30 2 * * *", 30, 40, OnConflict::Shift)
    }];
    let policy = f.policy();
    let plan = plan(
        &policy,
        &Observed::offline(),
        utc("2026-03-07T11:00:00Z"),
        TimeDelta::hours(24),
    );
    let l = &plan.volumes[0].lifecycles[0];
    assert_eq!(l.outcome, Outcome::Skipped);
    assert_eq!(plan.conflicts.len(), 1);
    assert_eq!(plan.conflicts[0].kind, ConflictKind::NoGap);
    // The suggestion still finds the start that fits every night.
    assert_eq!(plan.suggestions[0].offset, Some(TimeDelta::minutes(-10)));
}

#[test]
fn a_shift_never_moves_into_the_past() {
    let mut f = Fixture::demo();
    f.windows = vec![window("w", 0, "30 2 * * *", 30, 40, OnConflict::Shift)];
    let policy = f.policy();
    // `now` is 02:25 Berlin: 02:20 is gone, so the next fitting start is 03:06.
    let plan = plan(
        &policy,
        &Observed::offline(),
        utc("2026-03-08T01:25:00Z"),
        TimeDelta::hours(2),
    );
    let l = &plan.volumes[0].lifecycles[0];
    assert_eq!(l.outcome, Outcome::Shifted);
    assert_eq!(l.create_at, utc("2026-03-08T02:06:00Z"));
}

#[test]
fn suggestion_finds_one_start_for_every_night() {
    let mut f = Fixture::demo();
    // 00:50 for 50 minutes (+5m guard) collides with hourly at 01:05 every night; nothing earlier
    // fits (00:11 + 55m runs past 01:05), so the nearest start is 01:06.
    f.windows = vec![window("sql", 0, "50 0 * * *", 40, 50, OnConflict::Run)];
    let policy = f.policy();
    let plan = plan(
        &policy,
        &Observed::offline(),
        utc("2026-03-02T00:00:00Z"),
        TimeDelta::days(7),
    );
    assert_eq!(plan.conflicts.len(), 7);
    assert_eq!(
        plan.suggestions[0].text,
        "start at 01:06 Europe/Berlin (start = \"6 1 * * *\") and window sql fits all 7 occurrences in the next 168 h"
    );
    assert_eq!(plan.conflicts[0].suggestion, plan.suggestions[0].text);
}

#[test]
fn ontap_schedules_need_a_cluster_offline() {
    let f = Fixture::demo();
    let mut policy = f.policy();
    policy.volumes[1].schedules = VolumeSchedules::Ontap;
    let plan = plan(
        &policy,
        &Observed::offline(),
        utc("2026-03-07T11:00:00Z"),
        TimeDelta::hours(24),
    );
    assert_eq!(plan.unresolved.len(), 1);
    assert!(
        plan.unresolved[0]
            .reason
            .contains("vol_exch has snapshot_policy = \"ontap\""),
        "{}",
        plan.unresolved[0].reason
    );
    assert_eq!(plan.volumes.len(), 3, "the other volumes are still planned");
}

#[test]
fn observed_schedules_and_zone_are_used_when_the_policy_defers_to_the_cluster() {
    let f = Fixture::demo();
    let mut policy = f.policy();
    policy.clusters[0].endpoint = Endpoint::Url("https://cluster.example".into());
    policy.clusters[0].timezone = ClusterTimezone::Auto;
    policy.volumes[0].schedules = VolumeSchedules::Ontap;
    let observed = Observed {
        clusters: vec![ObservedCluster {
            name: "demo".into(),
            info: ClusterInfo {
                name: "c1".into(),
                uuid: "u".into(),
                version: "9.14.1".into(),
                timezone: "Europe/Berlin".into(),
            },
            volumes: vec![VolumeInfo {
                uuid: "v".into(),
                name: "vol_sql".into(),
                svm: "svm1".into(),
                snapshot_policy: Some("every20".into()),
            }],
            snapshot_policies: vec![SnapshotPolicyInfo {
                name: "every20".into(),
                copies: vec![crate::domain::PolicyCopies {
                    schedule: "20min".into(),
                    count: 3,
                    prefix: None,
                }],
            }],
            schedules: vec![ScheduleInfo {
                name: "20min".into(),
                recurrence: Recurrence::Cron(CronSpec::parse("*/20 * * * *").unwrap()),
            }],
        }],
    };
    let plan = plan(
        &policy,
        &observed,
        utc("2026-03-07T11:00:00Z"),
        TimeDelta::hours(24),
    );
    assert!(plan.unresolved.is_empty());
    let vp = plan.volumes.iter().find(|v| v.volume == 0).unwrap();
    assert_eq!(vp.scheduled.len(), 72);
    assert_eq!(vp.schedule_name(&vp.scheduled[0]), "20min");
    // A 45-minute window cannot fit between snapshots 20 minutes apart.
    assert_eq!(vp.lifecycles[0].outcome, Outcome::Skipped);
}

#[test]
fn human_durations() {
    assert_eq!(human(TimeDelta::minutes(90)), "1h30m");
    assert_eq!(human(TimeDelta::seconds(-45)), "-45s");
    assert_eq!(human(TimeDelta::zero()), "0m");
    assert_eq!(human(TimeDelta::days(7)), "7d");
}

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kathmandu",
];

fn arb_schedule() -> impl Strategy<Value = Recurrence> {
    prop_oneof![
        (
            proptest::collection::btree_set(0u32..60, 1..4),
            proptest::collection::btree_set(0u32..24, 0..6)
        )
            .prop_map(|(m, h)| {
                let m: Vec<u32> = m.into_iter().collect();
                let h: Vec<u32> = h.into_iter().collect();
                Recurrence::Cron(CronSpec::from_lists(&m, &h, &[], &[], &[]).unwrap())
            }),
        (30i64..600).prop_map(|m| Recurrence::Interval {
            every: TimeDelta::minutes(m),
            anchor: utc("2026-01-01T00:07:00Z")
        }),
    ]
}

fn arb_window() -> impl Strategy<Value = Window> {
    (
        0u32..24,
        0u32..60,
        5i64..180,
        0usize..3,
        0i64..240,
        0usize..ZONES.len(),
    )
        .prop_map(|(h, m, max, oc, limit, z)| Window {
            name: "w".into(),
            volumes: vec![0],
            start: CronSpec::from_lists(&[m], &[h], &[], &[], &[]).unwrap(),
            timezone: ZONES[z].parse().unwrap(),
            expected: TimeDelta::minutes(max),
            max: TimeDelta::minutes(max),
            on_conflict: [OnConflict::Shift, OnConflict::Skip, OnConflict::Run][oc],
            shift_limit: TimeDelta::minutes(limit),
            hook: None,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// No planned lifecycle (with guard) contains a scheduled snapshot unless it is marked as a
    /// predicted conflict; shifts stay within their limit and never start before `now`.
    #[test]
    fn no_lifecycle_contains_a_scheduled_snapshot_unless_marked(
        schedules in proptest::collection::vec(arb_schedule(), 1..4),
        windows in proptest::collection::vec(arb_window(), 1..4),
        zone in 0..ZONES.len(),
        guard in 0i64..20,
        start_min in 0i64..(366 * 24 * 60),
        hours in 1i64..96,
    ) {
        let f = Fixture {
            tz: ZONES[zone].parse().unwrap(),
            guard: TimeDelta::minutes(guard),
            schedules: schedules.iter().enumerate().map(|(i, r)| (format!("s{i}"), r.clone())).collect(),
            volumes: vec!["v".into()],
            windows,
        };
        let policy = f.policy();
        let now = utc("2026-01-01T00:00:00Z") + TimeDelta::minutes(start_min) + TimeDelta::seconds(13);
        let plan = plan(&policy, &Observed::offline(), now, TimeDelta::hours(hours));
        // An independent list of every scheduled instant around the horizon.
        let all: Vec<DateTime<Utc>> = schedules
            .iter()
            .flat_map(|r| r.occurrences(f.tz, now - TimeDelta::days(2), now + TimeDelta::hours(hours) + TimeDelta::days(2)))
            .collect();
        for l in &plan.volumes[0].lifecycles {
            let w = &policy.windows[l.window];
            let inside = all.iter().any(|t| *t >= l.create_at && *t < l.release_by + f.guard);
            match l.outcome {
                Outcome::Fits | Outcome::Shifted => prop_assert!(!inside, "{:?} contains a scheduled snapshot", l),
                Outcome::Conflict => prop_assert!(inside, "{:?} is marked but fits", l),
                Outcome::Skipped => {}
            }
            prop_assert_eq!(l.release_by - l.create_at, w.max);
            if l.outcome == Outcome::Fits { prop_assert_eq!(l.create_at, l.window_start); }
            if l.outcome == Outcome::Shifted {
                prop_assert!((l.create_at - l.window_start).abs() <= w.shift_limit);
                prop_assert!(l.create_at >= now);
            }
        }
        // Every conflict names a scheduled snapshot that really lies inside its span.
        for c in &plan.conflicts {
            let w = &policy.windows[c.window];
            prop_assert!(c.scheduled.at >= c.at && c.scheduled.at < c.at + w.max + f.guard);
            prop_assert!(!c.suggestion.is_empty());
        }
    }
}
