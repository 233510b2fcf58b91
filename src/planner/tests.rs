//! Planner tests: rendered scenarios compared with expected text, and the no-overlap property.

use std::path::PathBuf;
use std::sync::Arc;

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
                ..Agent::default()
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
                        snapmirror_label: None,
                    })
                    .collect(),
                max_defer: crate::config::model::DEFAULT_MAX_DEFER,
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
                    managed: None,
                    clone: CloneMethod::Auto,
                })
                .collect(),
            windows: self.windows.clone(),
            veeam: vec![],
            ha: None,
            volume_ids: Default::default(),
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
        driver: crate::config::Driver::default(),
    }
}

/// What discovery reads of cluster `demo` (Europe/Berlin): `vol_sql` on snapshot policy
/// `policy`, which keeps 3 copies of the job schedule `schedule` firing on `cron`.
fn one_volume_observed(policy: &str, schedule: &str, cron: &str) -> Observed {
    Observed {
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
                snapshot_policy: Some(policy.into()),
            }],
            snapshot_policies: vec![SnapshotPolicyInfo {
                name: policy.into(),
                copies: vec![crate::domain::PolicyCopies {
                    schedule: schedule.into(),
                    count: 3,
                    prefix: None,
                }],
            }],
            schedules: vec![ScheduleInfo {
                name: schedule.into(),
                recurrence: Recurrence::Cron(CronSpec::parse(cron).unwrap()),
            }],
        }],
    }
}

/// One line per lifecycle and conflict, in the volume's zone.
fn render(policy: &Policy, plan: &Plan) -> String {
    let mut out = String::new();
    for vp in &plan.volumes {
        let tz = vp.timezone;
        for l in vp.lifecycles.iter() {
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
conflict files-weekly chain_conflict hourly: no free gap of 1h36m (max 1h30m + guard 5m + 1m, as a start comes at the earliest the minute after a snapshot) exists in vol_files's schedule; the largest is 1h (hourly at Sat 12:05 to hourly at Sat 13:05). FlexClone removes the constraint (clone = \"flexclone\", needs the flexclone license), or lower max to 54m
conflict erp skipped hourly: no free gap of 1h1m (max 55m + guard 5m + 1m, as a start comes at the earliest the minute after a snapshot) exists in vol_erp's schedule; the largest is 1h (hourly at Sat 12:05 to hourly at Sat 13:05). FlexClone removes the constraint (clone = \"flexclone\", needs the flexclone license), or lower max to 54m
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
        "start at 02:20 Europe/Berlin (start = \"20 2 * * *\") and window exchange fits its only occurrence in the next 24 h"
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
    let observed = one_volume_observed("every20", "20min", "*/20 * * * *");
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
            driver: crate::config::Driver::default(),
        })
}

/// Property-test settings whose failing cases are kept in `tests.regressions` beside this file
/// (replayed before new cases; the repository's top level holds no proptest folder).
fn persisted(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(persisted(128))]

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
        for l in plan.volumes[0].lifecycles.iter() {
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

/// Hourly at :05, a 55-minute window with a 5-minute guard needs a 61-minute gap
/// and the gaps are 60 minutes, so no start can fit. The suggestion used to test starts outside
/// the computed timeline, where everything looked free ("start 9h55m earlier", 18:05, exactly on
/// a snapshot; from 06:00 "6 10 * * *", which hits 11:05).
#[test]
fn no_suggestion_when_no_start_can_fit() {
    for from in ["2027-05-01T00:00:00Z", "2027-05-01T06:00:00Z"] {
        let f = Fixture {
            tz: Tz::UTC,
            guard: TimeDelta::minutes(5),
            schedules: vec![(
                "hourly".into(),
                Recurrence::Cron(CronSpec::parse("5 * * * *").unwrap()),
            )],
            volumes: vec!["v".into()],
            windows: vec![Window {
                timezone: Tz::UTC,
                ..window("w", 0, "0 4 * * *", 55, 55, OnConflict::Run)
            }],
        };
        let policy = f.policy();
        let plan = plan(
            &policy,
            &Observed::offline(),
            utc(from),
            TimeDelta::hours(24),
        );
        assert_eq!(plan.suggestions.len(), 1, "from {from}");
        let s = &plan.suggestions[0];
        assert_eq!(
            (s.offset, s.new_start.as_deref()),
            (None, None),
            "from {from}: {}",
            s.text
        );
        assert!(
            s.text
                .starts_with("no free gap of 1h1m (max 55m + guard 5m + 1m"),
            "{}",
            s.text
        );
    }
}

/// A fractional `now` plans exactly like its whole second, and nothing in the
/// plan lies before that second.
#[test]
fn a_fractional_now_is_truncated_to_its_second() {
    let f = Fixture::demo();
    let policy = f.policy();
    let whole = utc("2026-03-07T11:00:07Z");
    let frac = plan(
        &policy,
        &Observed::offline(),
        whole + TimeDelta::nanoseconds(999_999_999),
        TimeDelta::hours(24) + TimeDelta::milliseconds(500),
    );
    let exact = plan(&policy, &Observed::offline(), whole, TimeDelta::hours(24));
    assert_eq!(frac.from, whole);
    assert_eq!(frac.until, whole + TimeDelta::hours(24));
    assert_eq!(render(&policy, &frac), render(&policy, &exact));
}

/// Durations beyond the bounds make the volumes they concern unresolved (the CLI
/// exits 2 with the reason) instead of panicking or building huge timelines.
#[test]
fn durations_beyond_the_bounds_are_refused_not_planned() {
    let mut f = Fixture::demo();
    f.windows[0].max = TimeDelta::weeks(99_999_999);
    f.schedules.push((
        "every-second".into(),
        Recurrence::Interval {
            every: TimeDelta::seconds(1),
            anchor: utc("2026-01-01T00:00:00Z"),
        },
    ));
    let policy = f.policy();
    let plan = plan(
        &policy,
        &Observed::offline(),
        utc("2026-03-07T11:00:00Z"),
        TimeDelta::hours(8784),
    );
    let reasons: Vec<&str> = plan.unresolved.iter().map(|u| u.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.starts_with(
            "window sql-nightly: max = 699999993d is outside 1s..=7d (a backup longer than a week"
        )),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with(
            "schedule every-second of volume demo/svm1/vol_sql: interval = 1s is outside 1m..=366d"
        )),
        "{reasons:?}"
    );
    assert!(
        plan.volumes.is_empty(),
        "every volume uses the 1-second schedule"
    );

    let mut f = Fixture::demo();
    f.guard = TimeDelta::weeks(500);
    let policy = f.policy();
    let plan = super::plan(
        &policy,
        &Observed::offline(),
        utc("2026-03-07T11:00:00Z"),
        TimeDelta::hours(24),
    );
    assert_eq!(plan.unresolved.len(), 4);
    assert!(
        plan.unresolved[0]
            .reason
            .starts_with("[agent]: guard = 3500d is outside 0s..=1d"),
        "{}",
        plan.unresolved[0].reason
    );
}

/// Instants in `[lo, hi)`, minute by minute, at which any schedule fires in `tz`: the brute-force
/// oracle (cron matched on the wall clock with the first-occurrence rule; intervals by
/// divisibility), independent of the timeline's stepping.
fn firing_minutes(
    schedules: &[Recurrence],
    tz: Tz,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = DateTime::from_timestamp(lo.timestamp().div_euclid(60) * 60, 0).unwrap();
    while t < hi {
        let local = t.with_timezone(&tz).naive_local();
        let fires = schedules.iter().any(|r| match r {
            Recurrence::Cron(spec) => {
                spec.matches(local) && crate::timeline::cron::first_instant(tz, local) == Some(t)
            }
            Recurrence::Interval { every, anchor } => {
                (t - *anchor).num_seconds().rem_euclid(every.num_seconds()) == 0
            }
        });
        if fires && t >= lo {
            out.push(t);
        }
        t += TimeDelta::minutes(1);
    }
    out
}

proptest! {
    #![proptest_config(persisted(96))]

    /// A suggested offset fits every occurrence on every volume (checked against
    /// minute-by-minute brute force), it is the smallest such offset (ties: later), there is none
    /// exactly when brute force finds none, and the suggested `start`, planned again, fits.
    #[test]
    fn suggestions_agree_with_brute_force(
        schedules in proptest::collection::vec(arb_schedule(), 1..4),
        second_policy in proptest::collection::btree_set(0usize..4, 1..3),
        zones in (0..ZONES.len(), 0..ZONES.len(), 0..ZONES.len()),
        (h, m) in (0u32..24, 0u32..60),
        max in 5i64..150,
        guard in 0i64..20,
        on_conflict in 0usize..3,
        limit in 0i64..240,
        start_min in 0i64..(366 * 24 * 60),
        hours in 1i64..72,
    ) {
        let mut f = Fixture {
            tz: ZONES[zones.0].parse().unwrap(),
            guard: TimeDelta::minutes(guard),
            schedules: schedules.iter().enumerate().map(|(i, r)| (format!("s{i}"), r.clone())).collect(),
            volumes: vec!["v0".into()],
            windows: vec![],
        };
        let window_tz: Tz = ZONES[zones.2].parse().unwrap();
        f.windows = vec![Window {
            volumes: vec![0, 1],
            start: CronSpec::from_lists(&[m], &[h], &[], &[], &[]).unwrap(),
            timezone: window_tz,
            expected: TimeDelta::minutes(max),
            max: TimeDelta::minutes(max),
            on_conflict: [OnConflict::Shift, OnConflict::Skip, OnConflict::Run][on_conflict],
            shift_limit: TimeDelta::minutes(limit),
            ..window("w", 0, "0 0 * * *", 1, 1, OnConflict::Run)
        }];
        let mut policy = f.policy();
        // A second volume on a second cluster (another zone) with a subset of the schedules.
        let second: Vec<usize> = second_policy.into_iter().filter(|&i| i < schedules.len()).collect();
        let second = if second.is_empty() { vec![0] } else { second };
        let mut cluster = policy.clusters[0].clone();
        cluster.name = "other".into();
        let tz1: Tz = ZONES[zones.1].parse().unwrap();
        cluster.timezone = ClusterTimezone::Named(tz1);
        policy.clusters.push(cluster);
        policy.snapshot_policies.push(SnapshotPolicy {
            name: "second".into(),
            copies: second.iter().map(|&i| Copies { schedule: i, count: 2, prefix: String::new(), snapmirror_label: None }).collect(),
            max_defer: crate::config::model::DEFAULT_MAX_DEFER,
        });
        let mut v1 = policy.volumes[0].clone();
        v1.cluster = 1;
        v1.name = "v1".into();
        v1.schedules = VolumeSchedules::Policy(1);
        policy.volumes.push(v1);

        let now = utc("2026-01-01T00:00:00Z") + TimeDelta::minutes(start_min) + TimeDelta::seconds(13);
        let horizon = TimeDelta::hours(hours);
        let planned = plan(&policy, &Observed::offline(), now, horizon);
        let (from, until) = (planned.from, planned.until);

        // Brute force: window starts, each volume's firing minutes, every offset in ±12 h.
        let span = TimeDelta::minutes(max + guard);
        let starts: Vec<DateTime<Utc>> = {
            let spec = policy.windows[0].start;
            firing_minutes(&[Recurrence::Cron(spec)], window_tz, from, until)
        };
        let margin = TimeDelta::hours(13) + span;
        let fires = [
            firing_minutes(&schedules, f.tz, from - margin, until + margin),
            firing_minutes(
                &second.iter().map(|&i| schedules[i].clone()).collect::<Vec<_>>(),
                tz1,
                from - margin,
                until + margin,
            ),
        ];
        let fits = |o: i64| {
            starts.iter().all(|&s| {
                let a = s + TimeDelta::minutes(o);
                fires.iter().all(|fs| {
                    let i = fs.partition_point(|t| *t < a);
                    fs.get(i).is_none_or(|t| *t >= a + span)
                })
            })
        };
        let best = (-720i64..=720)
            .filter(|&o| fits(o))
            .min_by_key(|&o| (o.abs(), o < 0));

        let misfit = planned.volumes.iter().flat_map(|v| v.lifecycles.iter()).any(|l| l.outcome != Outcome::Fits);
        prop_assert_eq!(planned.suggestions.len(), usize::from(misfit));
        prop_assert_eq!(misfit, !fits(0), "as configured, brute force and planner disagree");
        if let Some(s) = planned.suggestions.first() {
            prop_assert_eq!(s.offset, best.map(TimeDelta::minutes), "{}", s.text);
            if let (Some(o), Some(cron)) = (s.offset, &s.new_start) {
                let mut again = policy.clone();
                again.windows[0].start = CronSpec::parse(cron).unwrap();
                let replanned = plan(&again, &Observed::offline(), now, horizon);
                let shifted: Vec<DateTime<Utc>> = starts.iter().map(|&s| s + o).collect();
                for l in replanned.volumes.iter().flat_map(|v| v.lifecycles.iter()) {
                    if shifted.contains(&l.window_start) {
                        prop_assert_eq!(l.outcome, Outcome::Fits, "{}", l.reason);
                    }
                }
            }
        }
    }
}

fn arb_delta() -> impl Strategy<Value = TimeDelta> {
    prop_oneof![
        6 => (0i64..1_440).prop_map(TimeDelta::minutes),
        2 => (-20_000i64..20_000).prop_map(TimeDelta::minutes),
        1 => (-(i64::MAX / 1000)..=i64::MAX / 1000).prop_map(TimeDelta::seconds),
        1 => Just(TimeDelta::MAX),
        1 => Just(TimeDelta::MIN),
        1 => Just(TimeDelta::zero()),
    ]
}

fn arb_instant() -> impl Strategy<Value = DateTime<Utc>> {
    let (lo, hi) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    prop_oneof![
        (lo..=hi).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        (0i64..253_402_300_799).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        (lo..lo + 40 * 86_400).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        (hi - 40 * 86_400..=hi).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        Just(DateTime::<Utc>::MIN_UTC),
        Just(DateTime::<Utc>::MAX_UTC),
    ]
}

proptest! {
    #![proptest_config(persisted(256))]

    /// Whatever durations, anchors, `now` and horizon the planner gets, it
    /// neither panics nor builds more than a bounded timeline; out-of-bounds values are reported.
    #[test]
    fn any_duration_or_anchor_plans_without_panicking(
        max in arb_delta(),
        shift_limit in arb_delta(),
        guard in arb_delta(),
        every in arb_delta(),
        anchor in arb_instant(),
        now in arb_instant(),
        horizon in arb_delta(),
    ) {
        let mut f = Fixture::demo();
        f.guard = guard;
        f.windows[0].max = max;
        f.windows[1].shift_limit = shift_limit;
        f.schedules.push(("interval".into(), Recurrence::Interval { every, anchor }));
        let policy = f.policy();
        let planned = plan(&policy, &Observed::offline(), now, horizon);
        // One year of horizon plus reach, at most one instant a minute per schedule.
        let bound = (limits::HORIZON_MAX + TimeDelta::days(20)).num_minutes() as usize * f.schedules.len();
        for v in &planned.volumes {
            prop_assert!(v.scheduled.len() <= bound);
        }
        for u in &planned.unresolved {
            prop_assert!(u.reason.contains(" is outside "), "{}", u.reason);
        }
        let bad = !limits::GUARD.contains(guard)
            || !limits::WINDOW_MAX.contains(max)
            || !limits::SHIFT_LIMIT.contains(shift_limit)
            || !limits::INTERVAL.contains(every);
        prop_assert_eq!(bad, !planned.unresolved.is_empty());
    }
}

/// A daily interval anchored in 2030 (after the horizon): the lifecycle's next
/// scheduled snapshot is the coming midnight, with a fractional `now` as the CLI passes it and at
/// the timeline's end (hand-computed: 12:00 + 1h max + 5m guard leaves 10h55m before 00:00).
#[test]
fn an_interval_anchored_after_the_horizon_is_not_one_interval_late() {
    let f = Fixture {
        tz: Tz::UTC,
        guard: TimeDelta::minutes(5),
        schedules: vec![(
            "daily".into(),
            Recurrence::Interval {
                every: TimeDelta::days(1),
                anchor: utc("2030-01-01T00:00:00Z"),
            },
        )],
        volumes: vec!["v".into()],
        windows: vec![Window {
            timezone: Tz::UTC,
            ..window("w", 0, "0 12 * * *", 60, 60, OnConflict::Run)
        }],
    };
    let policy = f.policy();
    for now in ["2027-06-01T00:00:00Z", "2027-06-01T00:00:00.123456789Z"] {
        let p = plan(
            &policy,
            &Observed::offline(),
            utc(now),
            TimeDelta::hours(24),
        );
        let l = &p.volumes[0].lifecycles[0];
        assert_eq!(l.create_at, utc("2027-06-01T12:00:00Z"));
        assert_eq!(
            l.next_scheduled.map(|n| n.at),
            Some(utc("2027-06-02T00:00:00Z")),
            "now {now}"
        );
        assert_eq!(l.slack(p.guard), Some(TimeDelta::minutes(10 * 60 + 55)));
        // `now` is truncated to its second, so the horizon starts at midnight and includes it.
        let scheduled: Vec<DateTime<Utc>> = p.volumes[0].scheduled.iter().map(|s| s.at).collect();
        assert_eq!(scheduled, vec![utc("2027-06-01T00:00:00Z")], "now {now}");
    }
}

proptest! {
    #![proptest_config(persisted(128))]

    /// A fractional `now` plans exactly like its whole second (the one rule at the
    /// planner's edge); nothing in the plan precedes `Plan::from`; every free gap's whole seconds
    /// equal its end minus its start exactly.
    #[test]
    fn a_fractional_now_plans_like_its_second(
        schedules in proptest::collection::vec(arb_schedule(), 1..4),
        windows in proptest::collection::vec(arb_window(), 1..3),
        zone in 0..ZONES.len(),
        start_s in 0i64..(366 * 86_400),
        frac_ns in 1i64..1_000_000_000,
        hours in 1i64..72,
    ) {
        let f = Fixture {
            tz: ZONES[zone].parse().unwrap(),
            guard: TimeDelta::minutes(5),
            schedules: schedules.iter().enumerate().map(|(i, r)| (format!("s{i}"), r.clone())).collect(),
            volumes: vec!["v".into()],
            windows,
        };
        let policy = f.policy();
        let whole = utc("2026-01-01T00:00:00Z") + TimeDelta::seconds(start_s);
        let frac = plan(&policy, &Observed::offline(), whole + TimeDelta::nanoseconds(frac_ns), TimeDelta::hours(hours));
        let exact = plan(&policy, &Observed::offline(), whole, TimeDelta::hours(hours));
        prop_assert_eq!(frac.from, whole);
        prop_assert_eq!(render(&policy, &frac), render(&policy, &exact));
        let v = &frac.volumes[0];
        prop_assert_eq!(&v.scheduled, &exact.volumes[0].scheduled);
        prop_assert!(v.scheduled.iter().all(|s| s.at >= frac.from && s.at < frac.until));
        for l in v.lifecycles.iter() {
            prop_assert!(l.window_start >= frac.from);
            if l.outcome == Outcome::Shifted { prop_assert!(l.create_at >= frac.from); }
        }
        for g in crate::timeline::gaps(&v.scheduled, frac.from, frac.until) {
            let exact_ns = g.end.signed_duration_since(g.start).num_nanoseconds().unwrap();
            prop_assert_eq!(g.length().num_seconds() * 1_000_000_000, exact_ns);
        }
    }
}

/// `Rolling`'s answer as the agent reads it: every planned volume (lifecycles, scheduled
/// snapshots, zone, names) and the unresolved volumes.
fn rolled(plan: &Plan) -> String {
    format!(
        "{:?}\n{:?}\n{} {}",
        plan.volumes, plan.unresolved, plan.from, plan.until
    )
}

proptest! {
    #![proptest_config(persisted(64))]

    /// A rolling plan answers exactly what `plan` answers (volumes and unresolved) for a `now`
    /// that moves forward in uneven steps (sometimes back), across occurrences entering the
    /// horizon and shifts whose earliest start `now` clamps.
    #[test]
    fn a_rolling_plan_answers_what_plan_answers(
        schedules in proptest::collection::vec(arb_schedule(), 1..4),
        windows in proptest::collection::vec(arb_window(), 1..4),
        zone in 0..ZONES.len(),
        guard in 0i64..20,
        start_min in 0i64..(366 * 24 * 60),
        hours in 1i64..40,
        steps in proptest::collection::vec(-600i64..20_000, 1..40),
    ) {
        let f = Fixture {
            tz: ZONES[zone].parse().unwrap(),
            guard: TimeDelta::minutes(guard),
            schedules: schedules.iter().enumerate().map(|(i, r)| (format!("s{i}"), r.clone())).collect(),
            volumes: vec!["v".into(), "w".into()],
            windows: windows.into_iter().map(|mut w| { w.volumes = vec![0, 1]; w }).collect(),
        };
        let policy = Arc::new(f.policy());
        let observed = Observed::offline();
        let mut rolling = Rolling::default();
        let mut now = utc("2026-01-01T00:00:00Z") + TimeDelta::minutes(start_min) + TimeDelta::milliseconds(250);
        for step in steps {
            now += TimeDelta::seconds(step);
            let expected = plan(&policy, &observed, now, TimeDelta::hours(hours));
            let got = rolling.plan(&policy, &Arc::new(observed.clone()), now, TimeDelta::hours(hours));
            prop_assert_eq!(rolled(&got), rolled(&expected));
        }
    }
}

/// The rolling plan places again when the policy (another load) or what was observed changed:
/// each answer equals `plan` on the new inputs, which differ from the old ones' answer.
#[test]
fn a_rolling_plan_follows_a_new_policy_and_new_observations() {
    let f = Fixture::demo();
    let mut base = f.policy();
    base.clusters[0].endpoint = Endpoint::Url("https://cluster.example".into());
    base.volumes[0].schedules = VolumeSchedules::Ontap;
    let observed = |cron: &str| one_volume_observed("p", "s", cron);
    let now = utc("2026-03-07T11:00:00Z");
    let horizon = TimeDelta::hours(30);
    let mut rolling = Rolling::default();
    let first = Arc::new(base.clone());
    let (a, b) = (observed("5 * * * *"), observed("10 1 * * *"));
    let got = rolling.plan(&first, &Arc::new(a.clone()), now, horizon);
    assert_eq!(rolled(&got), rolled(&plan(&first, &a, now, horizon)));
    // The cluster's schedule changed: vol_sql's lifecycle at 01:10 no longer fits as before.
    let later = now + TimeDelta::minutes(7);
    let got = rolling.plan(&first, &Arc::new(b.clone()), later, horizon);
    assert_eq!(rolled(&got), rolled(&plan(&first, &b, later, horizon)));
    assert_ne!(rolled(&got), rolled(&plan(&first, &a, later, horizon)));
    // A reload moves the window: the new policy is planned, not the kept one.
    let mut moved = base.clone();
    moved.windows[0].start = CronSpec::parse("40 3 * * *").unwrap();
    let moved = Arc::new(moved);
    let got = rolling.plan(&moved, &Arc::new(b.clone()), later, horizon);
    assert_eq!(rolled(&got), rolled(&plan(&moved, &b, later, horizon)));
    assert_ne!(rolled(&got), rolled(&plan(&first, &b, later, horizon)));
}
