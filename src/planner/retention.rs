//! Retention: which schedule took a scheduled snapshot and when ONTAP will rotate it out.
//!
//! A backing snapshot locked by the chain stays until every scheduled snapshot that pins it is
//! gone; those go only by rotation (a schedule keeps its newest `count` snapshots). This module
//! answers "when" from the same schedules the planner uses, without I/O.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{resolve_zone, Observed};
use crate::config::{Policy, VolumeSchedules};
use crate::timeline::Recurrence;

/// One schedule of a volume's snapshot policy with its retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedSchedule {
    pub name: String,
    /// Scheduled snapshots are named `<prefix>.<YYYY-MM-DD_HHMM>`.
    pub prefix: String,
    /// Copies kept.
    pub count: u32,
    pub recurrence: Recurrence,
}

/// A volume's schedules, in its cluster's zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRetention {
    pub tz: Tz,
    pub schedules: Vec<RetainedSchedule>,
}

impl VolumeRetention {
    /// The schedule whose naming a snapshot follows (`<prefix>.` then a date), if any.
    pub fn schedule_of(&self, snapshot: &str) -> Option<&RetainedSchedule> {
        self.schedules
            .iter()
            .filter(|s| {
                snapshot
                    .strip_prefix(s.prefix.as_str())
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
            // Prefixes can nest (`daily` / `daily-long`): the longest match names it.
            .max_by_key(|s| s.prefix.len())
    }

    /// When a snapshot `schedule` took at `taken` is rotated out: at the schedule's `count`-th
    /// following instant, when it becomes the oldest beyond `count`. `None` when the schedule
    /// stops firing first.
    pub fn rotates_out_at(
        &self,
        schedule: &RetainedSchedule,
        taken: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut at = taken;
        for _ in 0..schedule.count {
            at = schedule.recurrence.next_after(self.tz, at)?;
        }
        Some(at)
    }
}

/// The schedules and zone of policy volume `vi`, from the policy or from what was observed.
pub fn volume_retention(
    policy: &Policy,
    observed: &Observed,
    vi: usize,
) -> Result<VolumeRetention, String> {
    let tz = resolve_zone(policy, observed, vi)?;
    let volume = &policy.volumes[vi];
    let cluster = &policy.clusters[volume.cluster];
    let schedules = match &volume.schedules {
        VolumeSchedules::Policy(pi) => policy.snapshot_policies[*pi]
            .copies
            .iter()
            .map(|c| RetainedSchedule {
                name: policy.schedules[c.schedule].name.clone(),
                prefix: c.prefix.clone(),
                count: c.count,
                recurrence: policy.schedules[c.schedule].recurrence.clone(),
            })
            .collect(),
        VolumeSchedules::Ontap => {
            let c = observed
                .clusters
                .iter()
                .find(|c| c.name == cluster.name)
                .ok_or_else(|| format!("cluster {} was not discovered", cluster.name))?;
            let v = c
                .volumes
                .iter()
                .find(|v| v.svm == volume.svm && v.name == volume.name)
                .ok_or_else(|| {
                    format!(
                        "volume {} was not found on the cluster",
                        policy.volume_id(vi)
                    )
                })?;
            let Some(policy_name) = v.snapshot_policy.as_deref() else {
                return Ok(VolumeRetention {
                    tz,
                    schedules: Vec::new(),
                });
            };
            let sp = c.snapshot_policies.iter().find(|p| p.name == policy_name);
            let mut out = Vec::new();
            for copies in sp.map(|p| p.copies.as_slice()).unwrap_or_default() {
                let Some(s) = c.schedules.iter().find(|s| s.name == copies.schedule) else {
                    continue;
                };
                out.push(RetainedSchedule {
                    name: s.name.clone(),
                    prefix: copies.prefix.clone().unwrap_or_else(|| s.name.clone()),
                    count: copies.count,
                    recurrence: s.recurrence.clone(),
                });
            }
            out
        }
    };
    // The copies snapwarden takes itself rotate by their counts as well (a deferral that
    // reached max_defer leaves one pinning a backing snapshot).
    let managed = volume
        .managed
        .map(|pi| policy.snapshot_policies[pi].copies.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| RetainedSchedule {
            name: policy.schedules[c.schedule].name.clone(),
            prefix: c.prefix.clone(),
            count: c.count,
            recurrence: policy.schedules[c.schedule].recurrence.clone(),
        });
    let schedules: Vec<RetainedSchedule> = schedules.into_iter().chain(managed).collect();
    Ok(VolumeRetention { tz, schedules })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::CronSpec;

    fn retention() -> VolumeRetention {
        let cron = |s: &str| Recurrence::Cron(CronSpec::parse(s).unwrap());
        VolumeRetention {
            tz: "Europe/Berlin".parse().unwrap(),
            schedules: vec![
                RetainedSchedule {
                    name: "hourly".into(),
                    prefix: "hourly".into(),
                    count: 6,
                    recurrence: cron("5 * * * *"),
                },
                RetainedSchedule {
                    name: "daily".into(),
                    prefix: "daily".into(),
                    count: 2,
                    recurrence: cron("10 0 * * *"),
                },
                RetainedSchedule {
                    name: "daily-long".into(),
                    prefix: "daily-long".into(),
                    count: 30,
                    recurrence: cron("20 0 * * *"),
                },
            ],
        }
    }

    #[test]
    fn a_scheduled_snapshot_is_recognised_by_its_prefix_and_date() {
        let r = retention();
        assert_eq!(
            r.schedule_of("hourly.2027-01-01_0105").unwrap().name,
            "hourly"
        );
        assert_eq!(
            r.schedule_of("daily-long.2027-01-01_0020").unwrap().name,
            "daily-long"
        );
        assert!(r.schedule_of("hourlyX.2027").is_none());
        assert!(r.schedule_of("hourly.manual").is_none());
        assert!(r.schedule_of("snapwarden.w.20270101T010000Z").is_none());
    }

    #[test]
    fn rotation_is_the_counth_following_instant() {
        // Hand-computed: hourly at :05 Berlin (UTC+1 in January), count 6. A snapshot taken at
        // 01:05 local (00:05Z) is the oldest beyond six when the sixth one after it is taken,
        // at 07:05 local = 06:05Z.
        let r = retention();
        let hourly = r.schedule_of("hourly.2027-01-01_0105").unwrap();
        let taken: DateTime<Utc> = "2027-01-01T00:05:00Z".parse().unwrap();
        assert_eq!(
            r.rotates_out_at(hourly, taken).unwrap(),
            "2027-01-01T06:05:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        // daily at 00:10 local, count 2: taken 2027-01-01 00:10 local → gone 2027-01-03 00:10
        // local = 2027-01-02T23:10Z.
        let daily = r.schedule_of("daily.2027-01-01_0010").unwrap();
        let taken: DateTime<Utc> = "2026-12-31T23:10:00Z".parse().unwrap();
        assert_eq!(
            r.rotates_out_at(daily, taken).unwrap(),
            "2027-01-02T23:10:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
