//! Renders a plan for people (tables, the `check` report) and for scripts (the documented JSON).
//!
//! Below both edges that show a plan — `cli` (`check`, `plan`) and the agent's `/api/v1/plan` —
//! so that neither imports the other. Pure formatting: the JSON is written to any `impl Write`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::config::Policy;
use crate::planner::{human, Conflict, Outcome, Plan, VolumePlan};
use crate::timeline;

fn at(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Each planned volume's zone, by policy volume index (built once per rendering: conflicts are
/// many on large policies).
fn zones(plan: &Plan) -> HashMap<usize, Tz> {
    plan.volumes
        .iter()
        .map(|v| (v.volume, v.timezone))
        .collect()
}

/// Writes the documented `--output json` shape (docs/planning.md, "plan --output json"),
/// pretty-printed, straight to `out`: the document is streamed volume by volume, never built as a
/// tree. Keys are in alphabetical order (the order the format has always had).
pub fn write_plan_json<W: std::io::Write>(
    out: W,
    policy: &Policy,
    plan: &Plan,
) -> serde_json::Result<()> {
    serde_json::to_writer_pretty(out, &PlanJson { policy, plan })
}

/// Serializes a sequence lazily: each item is made and written in turn.
struct Seq<F>(F);

impl<I, F> Serialize for Seq<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}

struct PlanJson<'a> {
    policy: &'a Policy,
    plan: &'a Plan,
}

impl Serialize for PlanJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (policy, plan) = (self.policy, self.plan);
        let zones = zones(plan);
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry(
            "conflicts",
            &Seq(|| {
                plan.conflicts.iter().map(|c| {
                    let v = &policy.volumes[c.volume];
                    let tz = zones[&c.volume];
                    ConflictJson {
                        at: at(c.at, tz),
                        cluster: &policy.clusters[v.cluster].name,
                        kind: c.kind.as_str(),
                        schedule: &c.schedule,
                        scheduled_at: at(c.scheduled.at, tz),
                        suggestion: &c.suggestion,
                        svm: &v.svm,
                        volume: &v.name,
                        window: &policy.windows[c.window].name,
                    }
                })
            }),
        )?;
        m.serialize_entry("from", &utc(plan.from))?;
        m.serialize_entry("guard_seconds", &plan.guard.num_seconds())?;
        m.serialize_entry(
            "suggestions",
            &Seq(|| {
                plan.suggestions.iter().map(|sg| SuggestionJson {
                    new_start: sg.new_start.as_deref(),
                    offset_seconds: sg.offset.map(|o| o.num_seconds()),
                    text: &sg.text,
                    window: &policy.windows[sg.window].name,
                })
            }),
        )?;
        m.serialize_entry("until", &utc(plan.until))?;
        m.serialize_entry(
            "volumes",
            &Seq(|| {
                plan.volumes
                    .iter()
                    .map(|vp| VolumeJson { policy, plan, vp })
            }),
        )?;
        m.end()
    }
}

#[derive(Serialize)]
struct ConflictJson<'a> {
    at: String,
    cluster: &'a str,
    kind: &'a str,
    schedule: &'a str,
    scheduled_at: String,
    suggestion: &'a str,
    svm: &'a str,
    volume: &'a str,
    window: &'a str,
}

#[derive(Serialize)]
struct SuggestionJson<'a> {
    new_start: Option<&'a str>,
    offset_seconds: Option<i64>,
    text: &'a str,
    window: &'a str,
}

struct VolumeJson<'a> {
    policy: &'a Policy,
    plan: &'a Plan,
    vp: &'a VolumePlan,
}

impl Serialize for VolumeJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (policy, plan, vp) = (self.policy, self.plan, self.vp);
        let v = &policy.volumes[vp.volume];
        let tz = vp.timezone;
        let gaps = timeline::gaps(&vp.scheduled, plan.from, plan.until);
        let managed = !vp.managed.is_empty();
        let mut m = s.serialize_map(Some(if managed { 9 } else { 7 }))?;
        m.serialize_entry("cluster", &policy.clusters[v.cluster].name)?;
        if managed {
            m.serialize_entry(
                "deferrals",
                &Seq(|| {
                    vp.deferrals.iter().map(|d| DeferralJson {
                        at: at(d.at, tz),
                        exceeds_max_defer: d.exceeds(),
                        schedule: &d.prefix,
                        seconds: d.by().num_seconds(),
                        until: at(d.until, tz),
                        window: &policy.windows[d.window].name,
                        window_start: at(d.window_start, tz),
                    })
                }),
            )?;
        }
        m.serialize_entry(
            "free_gaps",
            &Seq(|| {
                gaps.iter().map(|g| GapJson {
                    end: at(g.end, tz),
                    seconds: g.length().num_seconds(),
                    start: at(g.start, tz),
                })
            }),
        )?;
        m.serialize_entry(
            "lifecycles",
            &Seq(|| {
                vp.lifecycles.iter().map(|l| LifecycleJson {
                    create_at: at(l.create_at, tz),
                    next_schedule: l.next_scheduled.map(|n| vp.schedule_name(&n)),
                    next_scheduled_at: l.next_scheduled.map(|n| at(n.at, tz)),
                    outcome: l.outcome.as_str(),
                    reason: &l.reason,
                    release_by: at(l.release_by, tz),
                    slack_seconds: l.slack(plan.guard).map(|s| s.num_seconds()),
                    window: &policy.windows[l.window].name,
                    window_start: at(l.window_start, tz),
                })
            }),
        )?;
        if managed {
            m.serialize_entry(
                "managed_snapshots",
                &Seq(|| {
                    vp.managed.iter().map(|i| ScheduledJson {
                        at: at(i.at, tz),
                        schedule: &i.prefix,
                    })
                }),
            )?;
        }
        m.serialize_entry(
            "scheduled_snapshots",
            &Seq(|| {
                vp.scheduled.iter().map(|sn| ScheduledJson {
                    at: at(sn.at, tz),
                    schedule: vp.schedule_name(sn),
                })
            }),
        )?;
        m.serialize_entry("svm", &v.svm)?;
        m.serialize_entry("timezone", tz.name())?;
        m.serialize_entry("volume", &v.name)?;
        m.end()
    }
}

#[derive(Serialize)]
struct GapJson {
    end: String,
    seconds: i64,
    start: String,
}

#[derive(Serialize)]
struct LifecycleJson<'a> {
    create_at: String,
    next_schedule: Option<&'a str>,
    next_scheduled_at: Option<String>,
    outcome: &'a str,
    reason: &'a str,
    release_by: String,
    slack_seconds: Option<i64>,
    window: &'a str,
    window_start: String,
}

#[derive(Serialize)]
struct DeferralJson<'a> {
    at: String,
    exceeds_max_defer: bool,
    schedule: &'a str,
    seconds: i64,
    until: String,
    window: &'a str,
    window_start: String,
}

#[derive(Serialize)]
struct ScheduledJson<'a> {
    at: String,
    schedule: &'a str,
}

/// A per-volume timeline: scheduled snapshots, backing-snapshot creates and release deadlines in
/// order, each lifecycle with its outcome and reason.
pub fn plan_table(policy: &Policy, plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan {} → {} ({} h), guard {}",
        utc(plan.from),
        utc(plan.until),
        (plan.until - plan.from).num_hours(),
        human(plan.guard)
    );
    for vp in &plan.volumes {
        let largest = timeline::gaps(&vp.scheduled, plan.from, plan.until)
            .iter()
            .map(|g| g.length())
            .max();
        let managed = if vp.managed.is_empty() {
            String::new()
        } else {
            format!(
                ", {} managed by snapwarden ({} deferred)",
                vp.managed.len(),
                vp.deferrals.len()
            )
        };
        let _ = writeln!(
            out,
            "\n{}  ({}; {} scheduled snapshots{managed}, largest free gap {})",
            policy.volume_id(vp.volume),
            vp.timezone,
            vp.scheduled.len(),
            largest.map_or_else(|| "none".to_string(), human)
        );
        for (_, line) in volume_events(policy, plan, vp) {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !plan.conflicts.is_empty() || !plan.suggestions.is_empty() {
        out.push('\n');
        out.push_str(&conflict_report(policy, plan));
    }
    out
}

/// Timeline lines of one volume, sorted by instant (scheduled snapshots first on ties).
fn volume_events(policy: &Policy, plan: &Plan, vp: &VolumePlan) -> Vec<(DateTime<Utc>, String)> {
    let tz = vp.timezone;
    let when = |t: DateTime<Utc>| t.with_timezone(&tz).format("%a %Y-%m-%d %H:%M").to_string();
    let mut events: Vec<(DateTime<Utc>, u8, String)> = Vec::new();
    for s in vp.scheduled.iter() {
        events.push((
            s.at,
            0,
            format!(
                "{}  scheduled snapshot  {}",
                when(s.at),
                vp.schedule_name(s)
            ),
        ));
    }
    for i in &vp.managed {
        let held = vp
            .deferrals
            .iter()
            .filter(|d| d.at == i.at && d.prefix == i.prefix)
            .max_by_key(|d| d.until);
        let note = match held {
            Some(d) => format!(
                "  [held back by {} until {} at the latest ({}){}]",
                policy.windows[d.window].name,
                when(d.until),
                human(d.by()),
                if d.exceeds() {
                    format!(": exceeds max_defer {}", human(d.max_defer))
                } else {
                    String::new()
                }
            ),
            None => String::new(),
        };
        events.push((
            i.at,
            0,
            format!("{}  managed snapshot    {}{note}", when(i.at), i.prefix),
        ));
    }
    for l in vp.lifecycles.iter() {
        let name = &policy.windows[l.window].name;
        let slack = l
            .slack(plan.guard)
            .map(|s| format!(", slack {}", human(s)))
            .unwrap_or_default();
        match l.outcome {
            Outcome::Skipped => events.push((
                l.window_start,
                1,
                format!(
                    "{}  skip                {name}  [skipped] {}",
                    when(l.window_start),
                    l.reason
                ),
            )),
            outcome => {
                events.push((
                    l.create_at,
                    1,
                    format!(
                        "{}  create backing      {name}  [{}{slack}] {}",
                        when(l.create_at),
                        outcome.as_str(),
                        l.reason
                    ),
                ));
                events.push((
                    l.release_by,
                    2,
                    format!("{}  release by          {name}", when(l.release_by)),
                ));
            }
        }
    }
    events.retain(|(t, _, _)| *t >= plan.from && *t < plan.until);
    events.sort_by_key(|e| (e.0, e.1));
    events.into_iter().map(|(t, _, line)| (t, line)).collect()
}

/// Conflicts grouped by window, each group followed by its suggestion; then shifted windows.
fn conflict_report(policy: &Policy, plan: &Plan) -> String {
    let mut out = String::new();
    let zones = zones(plan);
    let mut by_window: BTreeMap<usize, Vec<&Conflict>> = BTreeMap::new();
    for c in &plan.conflicts {
        by_window.entry(c.window).or_default().push(c);
    }
    if !by_window.is_empty() {
        let _ = writeln!(out, "conflicts ({}):", plan.conflicts.len());
    }
    for (wi, conflicts) in &by_window {
        let w = &policy.windows[*wi];
        let _ = writeln!(
            out,
            "  window {} ({} {}, max {}, on_conflict {}):",
            w.name,
            w.start,
            w.timezone,
            human(w.max),
            w.on_conflict.as_str()
        );
        for c in conflicts {
            let tz = zones[&c.volume];
            let _ = writeln!(
                out,
                "    {}  {}  {}: {} at {} falls inside the lifecycle",
                c.at.with_timezone(&tz).format("%a %Y-%m-%d %H:%M %Z"),
                policy.volume_id(c.volume),
                c.kind.as_str(),
                c.schedule,
                c.scheduled.at.with_timezone(&tz).format("%H:%M"),
            );
        }
        if let Some(c) = conflicts.first() {
            let _ = writeln!(out, "    suggestion: {}", c.suggestion);
        }
    }
    out.push_str(&shifted_report(policy, plan, |w| {
        by_window.contains_key(&w)
    }));
    out
}

/// The windows shifted at least once and not in conflict (`conflicted` says which are), each
/// with how often and its suggestion.
fn shifted_report(policy: &Policy, plan: &Plan, conflicted: impl Fn(usize) -> bool) -> String {
    let mut out = String::new();
    let shifted: Vec<_> = plan
        .suggestions
        .iter()
        .filter(|s| !conflicted(s.window))
        .collect();
    if !shifted.is_empty() {
        let mut shifts: HashMap<usize, usize> = HashMap::new();
        for l in plan.volumes.iter().flat_map(|v| v.lifecycles.iter()) {
            if l.outcome == Outcome::Shifted {
                *shifts.entry(l.window).or_default() += 1;
            }
        }
        let _ = writeln!(
            out,
            "shifted windows (safe as planned; the policy could say so):"
        );
        for s in shifted {
            let w = &policy.windows[s.window];
            let count = shifts.get(&s.window).copied().unwrap_or(0);
            let times = match count {
                1 => "once".to_string(),
                n => format!("{n} times"),
            };
            let _ = writeln!(
                out,
                "  window {}: shifted {times}; suggestion: {}",
                w.name, s.text
            );
        }
    }
    out
}

/// How many conflicts `check` lists one by one unless asked for every one (`--all`): a screenful
/// under the summary, which counts them all.
pub const CHECK_LISTED: usize = 20;

/// What `check` prints: a one-line verdict; a summary of the conflicts per window and kind (how
/// many, the first, the window's suggestion) and of the shifted windows; then the conflicts one
/// by one in time order, at most `listed` of them (`None`: every one).
pub fn check_report(policy: &Policy, plan: &Plan, listed: Option<usize>) -> String {
    let lifecycles: usize = plan.volumes.iter().map(|v| v.lifecycles.len()).sum();
    let mut out = format!(
        "{}: valid ({} cluster(s), {} volume(s), {} window(s)); {} lifecycle(s) planned {} → {}\n",
        policy.source.display(),
        policy.clusters.len(),
        policy.volumes.len(),
        policy.windows.len(),
        lifecycles,
        utc(plan.from),
        utc(plan.until),
    );
    if plan.conflicts.is_empty() {
        out.push_str("no conflicts predicted\n");
    }
    let zones = zones(plan);
    // Per window, per kind: how many and the first.
    let mut summary: BTreeMap<usize, BTreeMap<&str, (usize, &Conflict)>> = BTreeMap::new();
    for c in &plan.conflicts {
        let entry = summary
            .entry(c.window)
            .or_default()
            .entry(c.kind.as_str())
            .or_insert((0, c));
        entry.0 += 1;
        if (c.at, c.volume) < (entry.1.at, entry.1.volume) {
            entry.1 = c;
        }
    }
    if !summary.is_empty() {
        let _ = writeln!(out, "{} conflict(s) predicted:", plan.conflicts.len());
    }
    for (wi, kinds) in &summary {
        let _ = writeln!(out, "  {}:", window_heading(policy, *wi));
        for (kind, (count, first)) in kinds {
            let tz = zones[&first.volume];
            let _ = writeln!(
                out,
                "    {kind}: {count}, the first {} on {} ({} at {})",
                first.at.with_timezone(&tz).format("%a %Y-%m-%d %H:%M %Z"),
                policy.volume_id(first.volume),
                first.schedule,
                first.scheduled.at.with_timezone(&tz).format("%H:%M"),
            );
        }
        let suggestion = kinds
            .values()
            .map(|(_, c)| *c)
            .min_by_key(|c| (c.at, c.volume));
        if let Some(c) = suggestion {
            let _ = writeln!(out, "    suggestion: {}", c.suggestion);
        }
    }
    out.push_str(&shifted_report(policy, plan, |w| summary.contains_key(&w)));
    if plan.conflicts.is_empty() {
        return out;
    }
    let mut ordered: Vec<&Conflict> = plan.conflicts.iter().collect();
    ordered.sort_by_key(|c| (c.at, c.window, c.volume));
    let shown = listed.unwrap_or(usize::MAX).min(ordered.len());
    if shown < ordered.len() {
        let _ = writeln!(
            out,
            "\nthe first {shown} of {} conflicts in time order (check --all lists every one):",
            ordered.len()
        );
    } else {
        let _ = writeln!(out, "\nconflicts in time order:");
    }
    for c in &ordered[..shown] {
        let tz = zones[&c.volume];
        let _ = writeln!(
            out,
            "  {}  window {}  {}  {}: {} at {} falls inside the lifecycle",
            c.at.with_timezone(&tz).format("%a %Y-%m-%d %H:%M %Z"),
            policy.windows[c.window].name,
            policy.volume_id(c.volume),
            c.kind.as_str(),
            c.schedule,
            c.scheduled.at.with_timezone(&tz).format("%H:%M"),
        );
    }
    if shown < ordered.len() {
        let _ = writeln!(out, "  … and {} more", ordered.len() - shown);
    }
    out
}

/// `window <name> (<start> <zone>, max <max>, on_conflict <rule>)`.
fn window_heading(policy: &Policy, wi: usize) -> String {
    let w = &policy.windows[wi];
    format!(
        "window {} ({} {}, max {}, on_conflict {})",
        w.name,
        w.start,
        w.timezone,
        human(w.max),
        w.on_conflict.as_str()
    )
}
