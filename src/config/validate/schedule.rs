//! `[[schedule]]` (cron or interval job schedules) and `[[snapshot_policy]]` (copies per schedule).

use std::collections::HashMap;
use std::ops::Range;

use chrono::{DateTime, Utc};
use toml::Spanned;

use super::values::{
    bounded_duration, cron_hint, cron_string, is_snapmirror_label, is_snapshot_charset,
    satisfiable, Bounds, Required, MAX_SNAPMIRROR_LABEL,
};
use super::Names;
use crate::config::diag::{hint, Collector};
use crate::config::load::At;
use crate::config::model::*;
use crate::config::raw::*;
use crate::timeline::{CronField, CronSpec, Recurrence};

pub(super) fn build_schedule(cx: &mut Collector, at: &At<RawSchedule>) -> Option<JobSchedule> {
    let (file, s) = (at.file, &at.item);
    let mut need = Required::new(file, &at.span, "[[schedule]]");
    let name = need.key("name", &s.name);
    need.report(cx);
    let mut ok = true;
    if let Some(n) = name.filter(|n| n.get_ref().is_empty()) {
        ok = false;
        cx.error(
            file,
            n.span(),
            "schedule name is empty",
            hint("for example \"hourly\""),
        );
    }
    let (at_name, label) = match name {
        Some(n) => (n.span(), format!("schedule \"{}\"", n.get_ref())),
        None => (at.span.start..at.span.start, "this schedule".into()),
    };
    if let (Some(anchor), None) = (&s.anchor, &s.interval) {
        ok = false;
        cx.error(
            file,
            anchor.span(),
            "`anchor` only applies to `interval` schedules",
            hint("remove `anchor`, or replace `cron` with `interval`"),
        );
    }
    let recurrence = match (&s.cron, &s.interval) {
        (Some(_), Some(interval)) => {
            cx.error(
                file,
                interval.span(),
                format!("{label} sets both `cron` and `interval`"),
                hint("a job schedule is either cron or interval; keep one"),
            );
            None
        }
        (None, None) => {
            cx.error(
                file,
                at_name,
                format!("{label} has neither `cron` nor `interval`"),
                hint("add cron = \"5 * * * *\" or interval = \"PT30M\""),
            );
            None
        }
        (Some(cron), None) => match cron.get_ref() {
            RawCron::Expr(expr) => {
                let spanned = Spanned::new(cron.span(), expr.clone());
                cron_string(cx, file, &spanned, "cron")
            }
            RawCron::Lists(lists) => cron_lists(cx, file, cron.span(), lists),
        }
        .map(Recurrence::Cron),
        (None, Some(interval)) => {
            let every = bounded_duration(cx, file, interval, "interval", &INTERVAL);
            let anchor = match &s.anchor {
                None => Some(DateTime::<Utc>::UNIX_EPOCH),
                Some(a) => anchor(cx, file, a),
            };
            every
                .zip(anchor)
                .map(|(every, anchor)| Recurrence::Interval { every, anchor })
        }
    };
    Some(JobSchedule {
        name: name?.get_ref().clone(),
        recurrence: recurrence?,
    })
    .filter(|_| ok)
}

/// `interval`: 1m ..= 366d.
const INTERVAL: Bounds = Bounds {
    min_seconds: 60,
    max_seconds: 366 * 86_400,
    why: "ONTAP keeps at most 1023 snapshots per volume, so a sub-minute interval is never a real \
          snapshot schedule (1m keeps a year's horizon at 527,040 instants); 366d is one a year",
};

/// The first and last instants an `anchor` may name: years 1970 to 9999 (UTC).
const ANCHOR_RANGE: (i64, i64) = (0, 253_402_300_799);

/// An RFC 3339 `anchor` within [`ANCHOR_RANGE`].
fn anchor(cx: &mut Collector, file: usize, a: &Spanned<String>) -> Option<DateTime<Utc>> {
    let t = match DateTime::parse_from_rfc3339(a.get_ref()) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => {
            cx.error(
                file,
                a.span(),
                format!("bad `anchor` \"{}\": {e}", a.get_ref()),
                hint("write an RFC 3339 time with offset, e.g. \"2026-01-01T00:00:00Z\""),
            );
            return None;
        }
    };
    let (first, last) = ANCHOR_RANGE;
    if !(first..=last).contains(&t.timestamp()) {
        cx.error(
            file,
            a.span(),
            format!(
                "`anchor` \"{}\" is out of range 1970-01-01T00:00:00Z..=9999-12-31T23:59:59Z",
                a.get_ref()
            ),
            hint("an interval counts from an instant between the Unix epoch and the year 9999"),
        );
        return None;
    }
    Some(t)
}

fn cron_lists(
    cx: &mut Collector,
    file: usize,
    span: Range<usize>,
    lists: &RawCronLists,
) -> Option<CronSpec> {
    let get =
        |l: &Option<Spanned<Vec<u32>>>| l.as_ref().map(|v| v.get_ref().clone()).unwrap_or_default();
    let result = CronSpec::from_lists(
        &get(&lists.minutes),
        &get(&lists.hours),
        &get(&lists.days),
        &get(&lists.weekdays),
        &get(&lists.months),
    );
    match result {
        Ok(spec) => {
            let shown = spec.to_string();
            satisfiable(cx, file, span, spec, &shown)
        }
        Err(e) => {
            let field_span = e
                .field
                .and_then(|f| {
                    let list = match f {
                        CronField::Minute => &lists.minutes,
                        CronField::Hour => &lists.hours,
                        CronField::DayOfMonth => &lists.days,
                        CronField::Month => &lists.months,
                        CronField::DayOfWeek => &lists.weekdays,
                    };
                    list.as_ref().map(|l| l.span())
                })
                .unwrap_or(span);
            let key = e.field.map(|f| f.ontap_key()).unwrap_or("cron");
            cx.error(
                file,
                field_span,
                format!("bad cron list `{key}`: {e}"),
                hint(cron_hint(
                    &e,
                    "lists are minutes, hours, days, weekdays (0 = Sunday) and months; empty = all",
                )),
            );
            None
        }
    }
}

/// `max_defer`: the bound of `domain::limits`.
const MAX_DEFER: Bounds = Bounds::of(&crate::domain::limits::MAX_DEFER);

/// ONTAP accepts 1 to 1023 copies per schedule in a snapshot policy.
const MAX_COPIES: u32 = 1023;

/// A copies entry's `count`: 1 ..= [`MAX_COPIES`]; `None` when out of range (reported).
fn copy_count(cx: &mut Collector, file: usize, n: &Spanned<i64>) -> Option<u32> {
    let valid = u32::try_from(*n.get_ref())
        .ok()
        .filter(|n| (1..=MAX_COPIES).contains(n));
    if valid.is_none() {
        cx.error(
            file,
            n.span(),
            format!("count {} is out of range 1..=1023", n.get_ref()),
            hint("ONTAP keeps between 1 and 1023 copies per schedule"),
        );
    }
    valid
}

/// A copies entry's `snapmirror_label`; `None` when it is not a SnapMirror label (reported).
fn snapmirror_label(cx: &mut Collector, file: usize, l: &Spanned<String>) -> Option<String> {
    let valid = is_snapmirror_label(l.get_ref());
    if !valid {
        cx.error(
            file,
            l.span(),
            format!(
                "`snapmirror_label` \"{}\" is not an ONTAP SnapMirror label",
                l.get_ref()
            ),
            hint(format!(
                "1 to {MAX_SNAPMIRROR_LABEL} of A-Z a-z 0-9 _ . -, for example \"hourly\""
            )),
        );
    }
    valid.then(|| l.get_ref().clone())
}

pub(super) fn build_snapshot_policy(
    cx: &mut Collector,
    at: &At<RawSnapshotPolicy>,
    schedules: &Names<'_>,
) -> Option<SnapshotPolicy> {
    let (file, p) = (at.file, &at.item);
    let mut need = Required::new(file, &at.span, "[[snapshot_policy]]");
    let name = need.key("name", &p.name);
    let listed = need.key("copies", &p.copies);
    need.report(cx);
    let mut ok = true;
    if let Some(n) = name.filter(|n| n.get_ref() == "ontap" || n.get_ref().is_empty()) {
        ok = false;
        cx.error(
            file,
            n.span(),
            format!("snapshot policy name \"{}\" is reserved or empty", n.get_ref()),
            hint("volumes use snapshot_policy = \"ontap\" to read the policy from the cluster; pick another name"),
        );
    }
    let label = name.map_or("this snapshot policy".into(), |n| {
        format!("snapshot policy \"{}\"", n.get_ref())
    });
    // `copies = []` is ONTAP's `none`: the volumes naming it get no scheduled snapshots from
    // ONTAP (those handing every copy to snapwarden name such a policy).
    let listed: &[Spanned<RawCopies>] = match listed {
        Some(l) => l.get_ref(),
        None => {
            ok = false;
            &[]
        }
    };
    let max_defer = match &p.max_defer {
        None => Some(DEFAULT_MAX_DEFER),
        Some(d) => bounded_duration(cx, file, d, "max_defer", &MAX_DEFER),
    };
    let mut copies = Vec::new();
    let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
    for entry in listed {
        let c = entry.get_ref();
        let entry_span = entry.span();
        let mut need = Required::new(file, &entry_span, "a copies entry");
        let schedule = need.key("schedule", &c.schedule);
        let count = need.key("count", &c.count);
        need.report(cx);
        if let Some(s) = schedule {
            if let Some(first) = seen.get(s.get_ref().as_str()) {
                ok = false;
                let at = cx.sources.describe(file, first, file);
                cx.error(
                    file,
                    s.span(),
                    format!(
                        "schedule \"{}\" appears twice in {label} (first at {at})",
                        s.get_ref()
                    ),
                    hint("ONTAP allows each schedule once per snapshot policy; merge the counts"),
                );
            } else {
                seen.insert(s.get_ref(), s.span());
            }
        }
        let index = schedule.and_then(|s| schedules.resolve(cx, file, s));
        let count = count.and_then(|n| copy_count(cx, file, n));
        let prefix = match (&c.prefix, schedule) {
            (Some(p), _) => Some((p.get_ref().clone(), p.span())),
            (None, Some(s)) => Some((s.get_ref().clone(), s.span())),
            (None, None) => None,
        };
        if let Some((prefix, span)) = &prefix {
            if !is_snapshot_charset(prefix) {
                ok = false;
                cx.error(
                    file,
                    span.clone(),
                    format!("snapshot prefix \"{prefix}\" is not a valid ONTAP snapshot name"),
                    hint("use one or more of A-Z a-z 0-9 _ . - (set `prefix` if the schedule name has others)"),
                );
            }
        }
        let mirror = c
            .snapmirror_label
            .as_ref()
            .map(|l| snapmirror_label(cx, file, l));
        match (index, count, prefix, mirror) {
            (Some(schedule), Some(count), Some((prefix, _)), None) => copies.push(Copies {
                schedule,
                count,
                prefix,
                snapmirror_label: None,
            }),
            (Some(schedule), Some(count), Some((prefix, _)), Some(Some(label))) => {
                copies.push(Copies {
                    schedule,
                    count,
                    prefix,
                    snapmirror_label: Some(label),
                })
            }
            _ => ok = false,
        }
    }
    let name = name?.get_ref().clone();
    let max_defer = max_defer?;
    ok.then_some(SnapshotPolicy {
        name,
        copies,
        max_defer,
    })
}
