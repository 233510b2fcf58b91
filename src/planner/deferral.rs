//! Managed snapshots in a plan: the copies a volume hands to snapwarden (`managed_snapshots`) are
//! movable, so the lifecycles are placed without them (a window that overlaps only managed
//! instants fits), and each instant that falls while a lifecycle's clones may live is deferred
//! to its release. A deferral longer than the copy's `max_defer` is a predicted conflict: the
//! agent would take that snapshot anyway, and it would capture the clone.

use chrono::{DateTime, TimeDelta, Utc};

use super::{human, Conflict, ConflictKind, Outcome, Plan, VolumePlan};
use crate::config::Policy;
use crate::timeline::ScheduledSnapshot;

/// How long after a clone is deleted a managed snapshot still waits (the agent's rule).
pub const MANAGED_SETTLE: TimeDelta = TimeDelta::seconds(10);

/// One instant of a managed copy in the plan's range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedInstant {
    /// The copy's prefix (its snapshots are `<prefix>.<YYYY-MM-DD_HHMM>`).
    pub prefix: String,
    pub at: DateTime<Utc>,
}

/// A managed snapshot a lifecycle holds back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    /// The lifecycle: its window and configured start.
    pub window: usize,
    pub window_start: DateTime<Utc>,
    pub prefix: String,
    /// The instant, and when the snapshot is taken at the latest: the lifecycle's `release_by`
    /// and the settle.
    pub at: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub max_defer: TimeDelta,
}

impl Deferral {
    pub fn by(&self) -> TimeDelta {
        self.until - self.at
    }

    /// Longer than `max_defer`: the agent takes the snapshot at `max_defer`, while the clone
    /// lives.
    pub fn exceeds(&self) -> bool {
        self.by() > self.max_defer
    }
}

/// Fills each planned volume's managed instants (`[from, until)`) and the deferrals of its
/// lifecycles, and adds a `max_defer` conflict for each deferral that exceeds it.
pub(super) fn defer(policy: &Policy, plan: &mut Plan) {
    let (from, until) = (plan.from, plan.until);
    let mut conflicts = Vec::new();
    for vp in &mut plan.volumes {
        let volume = &policy.volumes[vp.volume];
        let Some(pi) = volume.managed else { continue };
        let sp = &policy.snapshot_policies[pi];
        // The lifecycles that reach into the range may start before it (a day's backups).
        let reach = vp
            .lifecycles
            .iter()
            .map(|l| l.release_by - l.create_at)
            .max()
            .unwrap_or_default();
        for copy in &sp.copies {
            let recurrence = &policy.schedules[copy.schedule].recurrence;
            let instants = recurrence.occurrences(vp.timezone, from - reach, until + reach);
            vp.managed.extend(
                instants
                    .iter()
                    .filter(|t| **t >= from && **t < until)
                    .map(|&at| ManagedInstant {
                        prefix: copy.prefix.clone(),
                        at,
                    }),
            );
            for l in vp
                .lifecycles
                .iter()
                .filter(|l| l.outcome != Outcome::Skipped)
            {
                // An instant of the create's own second is taken before it (the agent takes the
                // snapshots due before it starts the cycles due).
                let lo = instants.partition_point(|t| *t <= l.create_at);
                let hi = instants.partition_point(|t| *t < l.release_by);
                for &at in &instants[lo..hi] {
                    let d = Deferral {
                        window: l.window,
                        window_start: l.window_start,
                        prefix: copy.prefix.clone(),
                        at,
                        until: l.release_by + MANAGED_SETTLE,
                        max_defer: sp.max_defer,
                    };
                    if d.exceeds() && l.window_start >= from && l.window_start < until {
                        conflicts.push(conflict(policy, vp, &d));
                    }
                    vp.deferrals.push(d);
                }
            }
        }
        vp.managed
            .sort_by(|a, b| (a.at, &a.prefix).cmp(&(b.at, &b.prefix)));
        vp.deferrals
            .sort_by_key(|d| (d.at, d.window_start, d.window));
    }
    plan.conflicts.extend(conflicts);
    plan.conflicts.sort_by_key(|c| (c.at, c.window, c.volume));
}

fn conflict(policy: &Policy, vp: &VolumePlan, d: &Deferral) -> Conflict {
    let sp = policy.volumes[vp.volume]
        .managed
        .map(|pi| policy.snapshot_policies[pi].name.as_str())
        .unwrap_or("");
    Conflict {
        window: d.window,
        volume: vp.volume,
        at: d.window_start,
        // The instant of the managed copy (its schedule index is not the volume's).
        scheduled: ScheduledSnapshot {
            at: d.at,
            schedule: 0,
        },
        schedule: d.prefix.clone(),
        kind: ConflictKind::MaxDefer,
        suggestion: format!(
            "managed {} at {} would wait {} for the clone, more than max_defer {}: it would be taken anyway and capture the clone; raise max_defer of [[snapshot_policy]] \"{sp}\" to at least {}, or lower the window's max",
            d.prefix,
            d.at.with_timezone(&vp.timezone).format("%H:%M"),
            human(d.by()),
            human(d.max_defer),
            human(d.by())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// A volume whose 2-minute snapshots snapwarden takes (max_defer `max_defer`), and a 7-minute
    /// window every 10 minutes on it.
    fn policy(max_defer: &str) -> Policy {
        let text = format!(
            r#"
[[cluster]]
name = "c"
endpoint = "simulator"
timezone = "UTC"

[[schedule]]
name = "two_min"
cron = "*/2 * * * *"

[[snapshot_policy]]
name = "none"
copies = []

[[snapshot_policy]]
name = "m"
max_defer = "{max_defer}"
copies = [{{ schedule = "two_min", count = 6 }}]

[[volume]]
cluster = "c"
svm = "s"
name = "v"
luns = ["/vol/v/l"]
snapshot_policy = "none"
managed_snapshots = "m"

[[window]]
name = "w"
volumes = ["c/s/v"]
start = "*/10 * * * *"
timezone = "UTC"
expected = "5m"
max = "7m"
"#
        );
        crate::config::parse_str(&text, std::path::Path::new("p.toml")).unwrap()
    }

    #[test]
    fn instants_inside_a_lifecycle_wait_for_its_release_and_the_window_still_fits() {
        let p = policy("8m");
        let plan = super::super::plan(
            &p,
            &Default::default(),
            t("2027-01-01T10:00:00Z"),
            TimeDelta::minutes(10),
        );
        let vp = &plan.volumes[0];
        // The window fits: the managed snapshots are not what it is placed between.
        assert_eq!(vp.lifecycles[0].outcome, Outcome::Fits);
        assert!(vp.scheduled.is_empty());
        let managed: Vec<DateTime<Utc>> = vp.managed.iter().map(|i| i.at).collect();
        assert_eq!(
            managed,
            ["10:00", "10:02", "10:04", "10:06", "10:08"]
                .map(|hm| t(&format!("2027-01-01T{hm}:00Z")))
        );
        // By hand: the 10:00 lifecycle's clones may live until 10:07 (its max); 10:00 is taken
        // before the create; 10:02, 10:04, 10:06 wait until 10:07:10.
        let by: Vec<(String, i64, bool)> = vp
            .deferrals
            .iter()
            .map(|d| {
                (
                    d.at.format("%H:%M").to_string(),
                    d.by().num_seconds(),
                    d.exceeds(),
                )
            })
            .collect();
        assert_eq!(
            by,
            [
                ("10:02".to_string(), 310, false),
                ("10:04".to_string(), 190, false),
                ("10:06".to_string(), 70, false)
            ]
        );
        assert!(plan.conflicts.is_empty());
    }

    #[test]
    fn a_deferral_beyond_max_defer_is_a_predicted_conflict() {
        let p = policy("5m");
        let plan = super::super::plan(
            &p,
            &Default::default(),
            t("2027-01-01T10:00:00Z"),
            TimeDelta::minutes(20),
        );
        let kinds: Vec<(&str, String, DateTime<Utc>)> = plan
            .conflicts
            .iter()
            .map(|c| (c.kind.as_str(), c.schedule.clone(), c.scheduled.at))
            .collect();
        // 10:02 would wait 5m10s (> 5m) in each of the two occurrences; 10:04 and 10:06 fit.
        assert_eq!(
            kinds,
            [
                (
                    "max_defer",
                    "two_min".to_string(),
                    t("2027-01-01T10:02:00Z")
                ),
                (
                    "max_defer",
                    "two_min".to_string(),
                    t("2027-01-01T10:12:00Z")
                )
            ]
        );
        assert!(
            plan.conflicts[0]
                .suggestion
                .contains("raise max_defer of [[snapshot_policy]] \"m\" to at least 5m10s"),
            "{}",
            plan.conflicts[0].suggestion
        );
    }
}
