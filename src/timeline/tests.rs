//! Tests for ONTAP cron semantics, the DST rule on real transitions, and the timeline invariants.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::cron::first_instant;
use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test instant")
        .with_timezone(&Utc)
}

fn cron(s: &str) -> Recurrence {
    Recurrence::Cron(CronSpec::parse(s).expect("test cron"))
}

/// Renders instants in the zone, one per line, so expectations read like a wall clock.
fn render(tz: Tz, instants: &[DateTime<Utc>]) -> String {
    instants
        .iter()
        .map(|t| format!("{}\n", t.with_timezone(&tz).to_rfc3339()))
        .collect()
}

/// Local-day occurrences of `r` in `tz` on `date`.
fn on_local_day(r: &Recurrence, tz: Tz, date: NaiveDate) -> Vec<DateTime<Utc>> {
    let start = tz
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .unwrap();
    let next = date.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap();
    let end = tz.from_local_datetime(&next).earliest().unwrap();
    r.occurrences(tz, start.with_timezone(&Utc), end.with_timezone(&Utc))
}

/// The oracle: walk every UTC minute and ask whether the local wall clock matches, keeping only
/// the first occurrence of a repeated local time.
fn brute_force(
    spec: &CronSpec,
    tz: Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut t = from;
    let rem = t.timestamp().rem_euclid(60);
    if rem != 0 || t.timestamp_subsec_nanos() != 0 {
        t = DateTime::from_timestamp(t.timestamp() - rem + 60, 0).unwrap();
    }
    while t < until {
        let local = t.with_timezone(&tz).naive_local();
        if spec.matches(local) && first_instant(tz, local) == Some(t) {
            out.push(t);
        }
        t += TimeDelta::minutes(1);
    }
    out
}

#[test]
fn day_of_month_and_weekday_are_ored_when_both_restricted() {
    // Every Friday and every 13th (reference notes §5.2), in March 2026: Fridays 6, 13, 20, 27.
    let r = cron("0 0 13 * 5");
    let got = r.occurrences(
        Tz::UTC,
        utc("2026-03-01T00:00:00Z"),
        utc("2026-04-01T00:00:00Z"),
    );
    let days: Vec<u32> = got
        .iter()
        .map(|t| t.date_naive().format("%d").to_string().parse().unwrap())
        .collect();
    assert_eq!(days, vec![6, 13, 20, 27]);
    // April 2026: Fridays 3, 10, 17, 24 and Monday the 13th.
    let got = r.occurrences(
        Tz::UTC,
        utc("2026-04-01T00:00:00Z"),
        utc("2026-05-01T00:00:00Z"),
    );
    let days: Vec<String> = got.iter().map(|t| t.format("%d").to_string()).collect();
    assert_eq!(days, vec!["03", "10", "13", "17", "24"]);
}

#[test]
fn only_one_day_field_restricted_uses_that_field_alone() {
    let weekdays = cron("15 0 * * 0"); // ONTAP's default weekly: Sun@0:15
    let got = weekdays.occurrences(
        Tz::UTC,
        utc("2026-03-01T00:00:00Z"),
        utc("2026-03-15T00:00:00Z"),
    );
    assert_eq!(
        render(Tz::UTC, &got),
        "2026-03-01T00:15:00+00:00\n2026-03-08T00:15:00+00:00\n"
    );
    let days = CronSpec::from_lists(&[20], &[0], &[1], &[], &[]).unwrap(); // ONTAP's monthly example
    let got = Recurrence::Cron(days).occurrences(
        Tz::UTC,
        utc("2026-01-15T00:00:00Z"),
        utc("2026-04-15T00:00:00Z"),
    );
    assert_eq!(got.len(), 3);
}

#[test]
fn empty_ontap_lists_mean_all_values_and_render_back_empty() {
    let spec = CronSpec::from_lists(&[5], &[], &[], &[], &[]).unwrap();
    assert_eq!(spec, CronSpec::parse("5 * * * *").unwrap());
    assert_eq!(spec.list(CronField::Hour), Vec::<u32>::new());
    assert_eq!(spec.list(CronField::Minute), vec![5]);
    assert_eq!(spec.to_string(), "5 * * * *");
    // Listing every weekday is the same as leaving the list empty: the OR rule does not apply.
    let all_days = CronSpec::from_lists(&[0], &[0], &[13], &[0, 1, 2, 3, 4, 5, 6], &[]).unwrap();
    assert_eq!(all_days, CronSpec::parse("0 0 13 * *").unwrap());
}

#[test]
fn parse_accepts_ranges_steps_names_and_sunday_as_seven() {
    assert_eq!(
        CronSpec::parse("*/15 8-18/2 * jan-mar mon-fri")
            .unwrap()
            .to_string(),
        "0,15,30,45 8,10,12,14,16,18 * 1,2,3 1,2,3,4,5"
    );
    assert_eq!(
        CronSpec::parse("0 0 * * 7").unwrap(),
        CronSpec::parse("0 0 * * sun").unwrap()
    );
    assert_eq!(
        CronSpec::parse("5/20 * * * *")
            .unwrap()
            .list(CronField::Minute),
        vec![5, 25, 45]
    );
}

#[test]
fn parse_errors_name_the_field_and_its_range() {
    let cases = [
        ("60 * * * *", "minute field: 60 is out of range 0-59"),
        ("0 24 * * *", "hour field: 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month field: 0 is out of range 1-31"),
        ("0 0 * 13 *", "month field: 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week field: 8 is out of range 0-6"),
        ("0 0 * * fry", "day-of-week field: \"fry\" is not a number in 0-6 or a name (sun…sat)"),
        ("0 5-2 * * *", "hour field: range \"5-2\" runs backwards; write the smaller value first"),
        ("*/0 * * * *", "minute field: step \"0\" in \"*/0\" must be a positive number"),
        ("0 0 * *", "expected 5 fields (minute hour day-of-month month day-of-week), found 4; for example \"5 * * * *\" is hourly at :05"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            CronSpec::parse(input).unwrap_err().to_string(),
            expected,
            "input {input:?}"
        );
    }
    let lists = CronSpec::from_lists(&[5], &[25], &[], &[], &[]).unwrap_err();
    assert_eq!(lists.to_string(), "hour field: 25 is out of range 0-23");
}

#[test]
fn unsatisfiable_specs_are_detected() {
    assert!(!CronSpec::parse("0 0 31 2 *").unwrap().is_satisfiable());
    assert!(CronSpec::parse("0 0 29 2 *").unwrap().is_satisfiable());
    // A restricted weekday rescues an impossible day of month through the OR rule.
    assert!(CronSpec::parse("0 0 31 2 1").unwrap().is_satisfiable());
}

#[test]
fn berlin_spring_forward_skips_the_missing_hour() {
    let tz: Tz = "Europe/Berlin".parse().unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
    let hourly = on_local_day(&cron("5 * * * *"), tz, day);
    assert_eq!(hourly.len(), 23, "02:05 does not exist on 2026-03-29");
    assert!(on_local_day(&cron("30 2 * * *"), tz, day).is_empty());
    assert_eq!(
        render(tz, &hourly[1..3]),
        "2026-03-29T01:05:00+01:00\n2026-03-29T03:05:00+02:00\n"
    );
}

#[test]
fn berlin_fall_back_fires_a_repeated_time_once_at_its_first_occurrence() {
    let tz: Tz = "Europe/Berlin".parse().unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap();
    let hourly = on_local_day(&cron("5 * * * *"), tz, day);
    assert_eq!(hourly.len(), 24, "a 25-hour day, but 02:05 fires once");
    let at_0230 = on_local_day(&cron("30 2 * * *"), tz, day);
    assert_eq!(render(tz, &at_0230), "2026-10-25T02:30:00+02:00\n");
    assert_eq!(at_0230[0], utc("2026-10-25T00:30:00Z"));
    // The gap across the repeated hour is two real hours long.
    let i = hourly
        .iter()
        .position(|t| *t == utc("2026-10-25T00:05:00Z"))
        .unwrap();
    assert_eq!(hourly[i + 1] - hourly[i], TimeDelta::hours(2));
}

#[test]
fn new_york_transitions() {
    let tz: Tz = "America/New_York".parse().unwrap();
    let spring = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
    assert!(on_local_day(&cron("30 2 * * *"), tz, spring).is_empty());
    assert_eq!(on_local_day(&cron("0,30 * * * *"), tz, spring).len(), 46);
    let fall = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    let at_0130 = on_local_day(&cron("30 1 * * *"), tz, fall);
    assert_eq!(render(tz, &at_0130), "2026-11-01T01:30:00-04:00\n");
    assert_eq!(on_local_day(&cron("5 * * * *"), tz, fall).len(), 24);
}

#[test]
fn sydney_transitions_in_the_southern_hemisphere() {
    let tz: Tz = "Australia/Sydney".parse().unwrap();
    // DST ends on 2026-04-05 at 03:00 AEDT → 02:00 AEST: 02:30 happens twice, fires once (AEDT).
    let end = NaiveDate::from_ymd_opt(2026, 4, 5).unwrap();
    let at_0230 = on_local_day(&cron("30 2 * * *"), tz, end);
    assert_eq!(render(tz, &at_0230), "2026-04-05T02:30:00+11:00\n");
    // DST starts on 2026-10-04 at 02:00 AEST → 03:00 AEDT: 02:30 does not exist.
    let start = NaiveDate::from_ymd_opt(2026, 10, 4).unwrap();
    assert!(on_local_day(&cron("30 2 * * *"), tz, start).is_empty());
    assert_eq!(on_local_day(&cron("5 * * * *"), tz, start).len(), 23);
}

#[test]
fn interval_schedules_step_from_their_anchor() {
    let r = Recurrence::Interval {
        every: TimeDelta::minutes(90),
        anchor: utc("2026-01-01T00:20:00Z"),
    };
    let got = r.occurrences(
        Tz::UTC,
        utc("2026-01-01T02:00:00Z"),
        utc("2026-01-01T06:00:00Z"),
    );
    assert_eq!(
        render(Tz::UTC, &got),
        "2026-01-01T03:20:00+00:00\n2026-01-01T04:50:00+00:00\n"
    );
    // An anchor after the horizon still yields the instants before it.
    let r = Recurrence::Interval {
        every: TimeDelta::hours(1),
        anchor: utc("2030-01-01T00:30:00Z"),
    };
    assert_eq!(
        r.next_after(Tz::UTC, utc("2026-01-01T00:00:00Z")),
        Some(utc("2026-01-01T00:30:00Z"))
    );
}

/// A daily interval anchored after the horizon, asked just before midnight (the
/// planner asks "at or after t" as "strictly after t - 1 ns"): the next instant is that midnight,
/// not the one after (hand-computed: the anchor is a whole number of days away).
#[test]
fn an_anchor_in_the_future_is_floored_not_truncated() {
    let r = Recurrence::Interval {
        every: TimeDelta::days(1),
        anchor: utc("2030-01-01T00:00:00Z"),
    };
    let just_before = utc("2027-06-02T00:00:00Z") - TimeDelta::nanoseconds(1);
    assert_eq!(
        r.next_after(Tz::UTC, just_before),
        Some(utc("2027-06-02T00:00:00Z"))
    );
    assert_eq!(
        r.next_after(Tz::UTC, utc("2027-06-01T12:00:00.5Z")),
        Some(utc("2027-06-02T00:00:00Z"))
    );
    assert_eq!(
        r.occurrences(
            Tz::UTC,
            utc("2027-06-01T00:00:00.25Z"),
            utc("2027-06-03T00:00:00Z")
        ),
        vec![utc("2027-06-02T00:00:00Z")]
    );
}

/// Extreme instants, anchors and intervals give `None` or an instant, never a
/// panic (chrono's range ends in year ±262,143).
#[test]
fn extreme_values_do_not_panic() {
    let edges = [
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MIN_UTC + TimeDelta::nanoseconds(1),
        DateTime::<Utc>::MAX_UTC - TimeDelta::days(400),
        DateTime::<Utc>::MAX_UTC - TimeDelta::nanoseconds(1),
        DateTime::<Utc>::MAX_UTC,
    ];
    let schedules = [
        cron("5 * * * *"),
        cron("0 0 29 2 *"),
        Recurrence::Interval {
            every: TimeDelta::days(366),
            anchor: utc("9999-12-31T23:59:59Z"),
        },
        Recurrence::Interval {
            every: TimeDelta::MAX,
            anchor: utc("1970-01-01T00:00:00Z"),
        },
        Recurrence::Interval {
            every: TimeDelta::seconds(1),
            anchor: DateTime::<Utc>::MAX_UTC,
        },
        Recurrence::Interval {
            every: TimeDelta::zero(),
            anchor: utc("2026-01-01T00:00:00Z"),
        },
    ];
    for tz in ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"] {
        let tz: Tz = tz.parse().unwrap();
        for r in &schedules {
            for &t in &edges {
                if let Some(next) = r.next_after(tz, t) {
                    assert!(next > t, "{r:?} after {t}: {next}");
                }
                let until = t.checked_add_signed(TimeDelta::hours(3)).unwrap_or(t);
                for at in r.occurrences(tz, t, until) {
                    assert!(at >= t && at < until);
                }
            }
        }
    }
}

#[test]
fn gaps_lie_between_scheduled_snapshots() {
    let hourly = cron("5 * * * *");
    let daily = cron("10 0 * * *");
    let from = utc("2026-01-01T00:00:00Z");
    let until = utc("2026-01-01T03:00:00Z");
    let snaps = scheduled_snapshots(&[&hourly, &daily], Tz::UTC, from, until);
    let schedules: Vec<usize> = snaps.iter().map(|s| s.schedule).collect();
    assert_eq!(schedules, vec![0, 1, 0, 0]);
    let rendered: Vec<String> = gaps(&snaps, from, until)
        .iter()
        .map(|g| {
            format!(
                "{}-{} {}m",
                g.start.format("%H:%M"),
                g.end.format("%H:%M"),
                g.length().num_minutes()
            )
        })
        .collect();
    assert_eq!(
        rendered,
        vec![
            "00:00-00:05 5m",
            "00:05-00:10 5m",
            "00:10-01:05 55m",
            "01:05-02:05 60m",
            "02:05-03:00 55m"
        ]
    );
}

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Lord_Howe", // 30-minute DST shift
    "Asia/Kolkata",        // +05:30, no DST
    "Asia/Kathmandu",      // +05:45
    "America/Santiago",
    "Pacific/Chatham", // +12:45/+13:45
];

fn subset(lo: u32, hi: u32) -> impl Strategy<Value = Vec<u32>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::btree_set(lo..=hi, 1..4).prop_map(|s| s.into_iter().collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// Occurrences equal the minute-by-minute oracle: sorted, unique, each matching the cron,
    /// none missed, the DST rule applied — across zones with odd offsets and transitions.
    #[test]
    fn occurrences_match_the_brute_force_oracle(
        minutes in subset(0, 59),
        hours in subset(0, 23),
        days in subset(1, 31),
        weekdays in subset(0, 6),
        months in subset(1, 12),
        zone in 0..ZONES.len(),
        start_minute in 0i64..(4 * 365 * 24 * 60),
        span_hours in 1i64..72,
    ) {
        // Cover real transition nights often: start near a DST change half of the time.
        let spec = CronSpec::from_lists(&minutes, &hours, &days, &weekdays, &months).unwrap();
        let tz: Tz = ZONES[zone].parse().unwrap();
        let from = utc("2025-01-01T00:00:00Z") + TimeDelta::minutes(start_minute) + TimeDelta::seconds(17);
        let until = from + TimeDelta::hours(span_hours);
        let got = Recurrence::Cron(spec).occurrences(tz, from, until);
        prop_assert_eq!(got, brute_force(&spec, tz, from, until));
    }

    /// Around the actual transition nights of each zone, with dense hourly-ish schedules.
    #[test]
    fn transition_nights_match_the_oracle(
        minutes in proptest::collection::btree_set(0u32..60, 1..5),
        zone in 1..ZONES.len(),
        year in 2025i32..2028,
        which in 0usize..2,
    ) {
        let tz: Tz = ZONES[zone].parse().unwrap();
        let minutes: Vec<u32> = minutes.into_iter().collect();
        let spec = CronSpec::from_lists(&minutes, &[], &[], &[], &[]).unwrap();
        // Find the zone's transitions in that year by watching the offset change day by day.
        let mut transitions = Vec::new();
        let mut t = Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap();
        let mut offset = t.with_timezone(&tz).offset().to_string();
        while t.year() == year {
            let next = t + TimeDelta::hours(6);
            let o = next.with_timezone(&tz).offset().to_string();
            if o != offset { transitions.push(t); offset = o; }
            t = next;
        }
        prop_assume!(transitions.len() > which);
        let from = transitions[which] - TimeDelta::hours(6);
        let until = transitions[which] + TimeDelta::hours(12);
        let got = Recurrence::Cron(spec).occurrences(tz, from, until);
        prop_assert_eq!(got, brute_force(&spec, tz, from, until));
    }

    /// An interval's next instant equals exact integer arithmetic on
    /// nanoseconds, for anchors before, inside and after the horizon and `after` with any
    /// sub-second part.
    #[test]
    fn interval_next_after_matches_exact_arithmetic(
        every_s in 1i64..(3 * 86_400),
        anchor_s in -(4 * 365 * 86_400i64)..(4 * 365 * 86_400),
        after_s in 0i64..(365 * 86_400),
        after_ns in prop_oneof![Just(0u32), Just(999_999_999u32), 0u32..1_000_000_000],
    ) {
        let base = utc("2027-01-01T00:00:00Z");
        let anchor = base + TimeDelta::seconds(anchor_s);
        let after = base + TimeDelta::seconds(after_s) + TimeDelta::nanoseconds(i64::from(after_ns));
        let r = Recurrence::Interval { every: TimeDelta::seconds(every_s), anchor };
        // Oracle: the smallest anchor + k * every strictly after `after`, in i128 nanoseconds.
        let ns = |t: DateTime<Utc>| i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos());
        let (a, x, e) = (ns(anchor), ns(after), i128::from(every_s) * 1_000_000_000);
        let k = (x - a).div_euclid(e) + 1;
        let want = a + k * e;
        let got = r.next_after(Tz::UTC, after).map(ns);
        prop_assert_eq!(got, Some(want));
    }

    /// With a fractional `from`, no occurrence lies before it, and the set equals
    /// the one from the next whole second (instants are whole seconds).
    #[test]
    fn fractional_from_returns_nothing_before_it(
        minutes in subset(0, 59),
        every_s in 60i64..7_200,
        anchor_s in -(400 * 86_400i64)..(400 * 86_400),
        start_s in 0i64..(30 * 86_400),
        frac_ns in 1u32..1_000_000_000,
    ) {
        let base = utc("2027-05-01T00:00:00Z");
        let whole = base + TimeDelta::seconds(start_s);
        let from = whole + TimeDelta::nanoseconds(i64::from(frac_ns));
        let until = whole + TimeDelta::hours(6);
        let schedules = [
            Recurrence::Cron(CronSpec::from_lists(&minutes, &[], &[], &[], &[]).unwrap()),
            Recurrence::Interval { every: TimeDelta::seconds(every_s), anchor: base + TimeDelta::seconds(anchor_s) },
        ];
        for r in &schedules {
            let got = r.occurrences(Tz::UTC, from, until);
            prop_assert!(got.iter().all(|t| *t >= from && *t < until));
            let next_second = whole + TimeDelta::seconds(1);
            prop_assert_eq!(&got, &r.occurrences(Tz::UTC, next_second, until));
        }
    }

    /// Interval occurrences are evenly spaced and aligned to the anchor.
    #[test]
    fn interval_occurrences_are_aligned(every_min in 1i64..600, anchor_min in -100_000i64..100_000, start_min in 0i64..100_000) {
        let anchor = utc("2026-01-01T00:00:00Z") + TimeDelta::minutes(anchor_min);
        let r = Recurrence::Interval { every: TimeDelta::minutes(every_min), anchor };
        let from = utc("2026-01-01T00:00:00Z") + TimeDelta::minutes(start_min);
        let until = from + TimeDelta::days(2);
        let got = r.occurrences(Tz::UTC, from, until);
        prop_assert!(!got.is_empty() || every_min > 2 * 24 * 60);
        for w in got.windows(2) { prop_assert_eq!(w[1] - w[0], TimeDelta::minutes(every_min)); }
        for t in &got {
            prop_assert!(*t >= from && *t < until);
            prop_assert_eq!((*t - anchor).num_minutes().rem_euclid(every_min), 0);
        }
        if let Some(first) = got.first() { prop_assert!(*first - TimeDelta::minutes(every_min) < from); }
    }
}
