//! ONTAP JSON as it arrives on the wire (serde types, liberal on input) and its conversion to the
//! domain types of [`crate::ontap`].
//!
//! Every struct takes `#[serde(default)]` so a field ONTAP leaves out (it only returns what
//! `fields=` asked for, and releases differ) never fails decoding by itself; the conversions
//! decide which missing fields are errors. Conversions return a plain message; the client wraps it
//! into `OntapError::Decode` with the cluster and the request.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use serde::Deserialize;

use super::{
    Autodelete, ClusterInfo, Interner, LicenseState, LunInfo, PolicyCopies, ScheduleInfo,
    SnapshotInfo, SnapshotPolicyInfo, VolumeInfo, VolumeSettings,
};
use crate::domain::duration::parse_iso8601_duration;
use crate::timeline::{CronSpec, Recurrence};

/// `{"name": …}` references (`svm`, `volume`, `snapshot_policy`, `schedule`…).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NameRef {
    pub name: Option<String>,
    pub uuid: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Href {
    pub href: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Links {
    pub next: Option<Href>,
}

/// A collection page: `{"records":[…],"num_records":N,"_links":{"next":{"href":…}}}`.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Collection<T> {
    #[serde(default = "Vec::new")]
    pub records: Vec<T>,
    #[serde(default, rename = "_links")]
    pub links: Links,
}

impl<T> Collection<T> {
    /// The next page's href (it carries every query parameter), if any.
    pub fn next_href(&self) -> Option<&str> {
        self.links
            .next
            .as_ref()
            .map(|h| h.href.as_str())
            .filter(|h| !h.is_empty())
    }
}

/// `{"error":{"message":…,"code":"4","target":…}}`. The code is a JSON string per the swagger;
/// a number is accepted too.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorEnvelope {
    pub error: Option<ErrorBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    pub code: Option<serde_json::Value>,
    pub message: Option<String>,
    pub target: Option<String>,
}

/// A numeric ONTAP code from a JSON string (`"1638555"`) or number.
pub fn parse_code(value: &serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// The answer to a POST/PATCH/DELETE: empty, a job link (202, or 200/201 with `return_timeout`),
/// a list of jobs (query-based PATCH/DELETE), or an error envelope in a 2xx (reference §9.7);
/// with `return_records=true`, also the created records.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MutationResponse {
    pub job: Option<Job>,
    pub jobs: Vec<Job>,
    pub error: Option<ErrorBody>,
    /// The created object(s), on a POST with `return_records=true`.
    pub records: Vec<serde_json::Value>,
}

/// `/api/cluster/jobs/{uuid}`, or the `job` object of a mutation's answer (which may carry only
/// `uuid` and `_links`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Job {
    pub uuid: String,
    pub state: Option<String>,
    /// Integer in job objects ("the final error code"; 0 on success).
    pub code: Option<serde_json::Value>,
    pub message: Option<String>,
    /// Newer releases: `{code (string), message}`.
    pub error: Option<ErrorBody>,
}

/// A job's state, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// `queued`, `running`, `paused`, or a state this client does not know (keeps polling).
    Pending,
    Success,
    Failure,
}

impl Job {
    pub fn state(&self) -> Option<JobState> {
        self.state.as_deref().map(|s| match s {
            "success" => JobState::Success,
            "failure" => JobState::Failure,
            _ => JobState::Pending,
        })
    }

    /// The failure's code and message: the integer `code`, else `error.code`; 0 when neither.
    pub fn failure(&self) -> (u64, String) {
        let code = self
            .code
            .as_ref()
            .and_then(parse_code)
            .filter(|c| *c != 0)
            .or_else(|| {
                self.error
                    .as_ref()
                    .and_then(|e| e.code.as_ref())
                    .and_then(parse_code)
            })
            .unwrap_or(0);
        let message = self
            .message
            .clone()
            .filter(|m| !m.is_empty())
            .or_else(|| self.error.as_ref().and_then(|e| e.message.clone()))
            .unwrap_or_else(|| "job failed without a message".into());
        (code, message)
    }
}

fn required(value: Option<String>, what: &str) -> Result<String, String> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{what} missing"))
}

fn name_of(r: Option<NameRef>) -> Option<String> {
    r.and_then(|r| r.name)
}

// ---- /api/cluster ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClusterWire {
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub version: Option<VersionWire>,
    pub timezone: Option<NameRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VersionWire {
    pub full: Option<String>,
    pub generation: Option<u32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
}

impl ClusterWire {
    pub fn into_domain(self) -> Result<ClusterInfo, String> {
        let version = match self.version {
            Some(VersionWire {
                generation: Some(g),
                major: Some(ma),
                minor: Some(mi),
                ..
            }) => format!("{g}.{ma}.{mi}"),
            Some(VersionWire { full: Some(f), .. }) => f,
            _ => return Err("version missing".into()),
        };
        Ok(ClusterInfo {
            name: required(self.name, "name")?,
            uuid: required(self.uuid, "uuid")?,
            version,
            timezone: required(name_of(self.timezone), "timezone.name")?,
        })
    }
}

// ---- volumes ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VolumeWire {
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub svm: Option<NameRef>,
    pub snapshot_policy: Option<NameRef>,
}

impl VolumeWire {
    pub fn into_domain(self) -> Result<VolumeInfo, String> {
        Ok(VolumeInfo {
            uuid: required(self.uuid, "volume uuid")?,
            name: required(self.name, "volume name")?,
            svm: required(name_of(self.svm), "svm.name")?,
            snapshot_policy: name_of(self.snapshot_policy).filter(|n| !n.is_empty()),
        })
    }
}

/// A volume with the fields of `VOLUME_SETTINGS_FIELDS`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VolumeSettingsWire {
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub svm: Option<NameRef>,
    pub space: Option<VolumeSpaceWire>,
    pub snapshot_locking_enabled: Option<bool>,
    pub scheduled_snapshot_naming_scheme: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VolumeSpaceWire {
    pub snapshot: Option<VolumeSpaceSnapshotWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VolumeSpaceSnapshotWire {
    pub autodelete_enabled: Option<bool>,
    pub autodelete: Option<AutodeleteWire>,
    pub reserve_percent: Option<u64>,
    pub reserve_size: Option<u64>,
    pub used: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AutodeleteWire {
    /// Only patchable in NetApp's client, but some releases return it: taken when
    /// `autodelete_enabled` is absent.
    pub enabled: Option<bool>,
    pub commitment: Option<String>,
    pub trigger: Option<String>,
}

impl VolumeSettingsWire {
    pub fn into_domain(self) -> Result<VolumeSettings, String> {
        let name = required(self.name, "volume name")?;
        let snapshot = self.space.and_then(|s| s.snapshot).unwrap_or_default();
        let autodelete = snapshot.autodelete.unwrap_or_default();
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(VolumeSettings {
            uuid: required(self.uuid, "volume uuid").map_err(|e| format!("{name}: {e}"))?,
            svm: required(name_of(self.svm), "svm.name").map_err(|e| format!("{name}: {e}"))?,
            autodelete: Autodelete {
                enabled: snapshot
                    .autodelete_enabled
                    .or(autodelete.enabled)
                    .unwrap_or(false),
                commitment: non_empty(autodelete.commitment),
                trigger: non_empty(autodelete.trigger),
            },
            snapshot_locking: self.snapshot_locking_enabled.unwrap_or(false),
            naming_scheme: non_empty(self.scheduled_snapshot_naming_scheme),
            reserve_percent: snapshot.reserve_percent,
            reserve_size: snapshot.reserve_size,
            snapshot_used: snapshot.used,
            name,
        })
    }
}

// ---- snapshot policies ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SnapshotPolicyWire {
    pub name: Option<String>,
    pub copies: Vec<CopiesWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CopiesWire {
    pub count: Option<u32>,
    pub prefix: Option<String>,
    pub schedule: Option<NameRef>,
}

impl SnapshotPolicyWire {
    pub fn into_domain(self) -> Result<SnapshotPolicyInfo, String> {
        let name = required(self.name, "snapshot policy name")?;
        let copies = self
            .copies
            .into_iter()
            .map(|c| {
                Ok(PolicyCopies {
                    schedule: required(name_of(c.schedule), "copies.schedule.name")
                        .map_err(|e| format!("policy {name}: {e}"))?,
                    count: c.count.unwrap_or(0),
                    prefix: c.prefix.filter(|p| !p.is_empty()),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(SnapshotPolicyInfo { name, copies })
    }
}

// ---- schedules ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ScheduleWire {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub cron: Option<CronWire>,
    pub interval: Option<String>,
}

/// ONTAP cron lists; an empty or absent list means "all values".
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CronWire {
    pub minutes: Vec<u32>,
    pub hours: Vec<u32>,
    pub days: Vec<u32>,
    pub weekdays: Vec<u32>,
    pub months: Vec<u32>,
}

impl ScheduleWire {
    /// Interval schedules are anchored at the Unix epoch: ONTAP does not expose the instant an
    /// interval schedule started counting from (it runs relative to job creation / last run),
    /// so the epoch is a documented, deterministic stand-in.
    pub fn into_domain(self) -> Result<ScheduleInfo, String> {
        let name = required(self.name, "schedule name")?;
        let kind = self.kind.as_deref().unwrap_or(if self.interval.is_some() {
            "interval"
        } else {
            "cron"
        });
        let recurrence = match kind {
            "cron" => {
                let c = self.cron.unwrap_or_default();
                let spec =
                    CronSpec::from_lists(&c.minutes, &c.hours, &c.days, &c.weekdays, &c.months)
                        .map_err(|e| format!("schedule {name}: {e}"))?;
                Recurrence::Cron(spec)
            }
            "interval" => {
                let text = self
                    .interval
                    .ok_or_else(|| format!("schedule {name}: interval missing"))?;
                let every = parse_iso8601_duration(&text)
                    .and_then(|d| {
                        (d > TimeDelta::zero())
                            .then_some(d)
                            .ok_or_else(|| "zero interval".to_string())
                    })
                    .map_err(|e| format!("schedule {name}: interval {text:?}: {e}"))?;
                Recurrence::Interval {
                    every,
                    anchor: DateTime::<Utc>::UNIX_EPOCH,
                }
            }
            other => return Err(format!("schedule {name}: unknown type {other:?}")),
        };
        Ok(ScheduleInfo { name, recurrence })
    }
}

// ---- licenses ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LicensePackageWire {
    pub name: Option<String>,
    pub state: Option<String>,
}

impl LicensePackageWire {
    pub fn state(&self) -> LicenseState {
        match self.state.as_deref() {
            Some("compliant") => LicenseState::Compliant,
            Some("noncompliant") => LicenseState::Noncompliant,
            Some("unlicensed") => LicenseState::Unlicensed,
            _ => LicenseState::Unknown,
        }
    }
}

// ---- snapshots ----

/// A JSON string borrowed from the page it was read from, or owned when it had to be unescaped:
/// a listing's records are read without a copy of each string.
#[derive(Debug, Default)]
pub struct Str<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Str<'a>, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit)
    }
}

impl Str<'_> {
    fn text(&self) -> &str {
        &self.0
    }
}

/// `{"name": …, "uuid": …}` of a snapshot record, borrowed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NameRefStr<'a> {
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    #[serde(borrow)]
    pub uuid: Option<Str<'a>>,
}

/// A snapshot record, its strings borrowed from the page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SnapshotWire<'a> {
    #[serde(borrow)]
    pub uuid: Option<Str<'a>>,
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    #[serde(borrow)]
    pub comment: Option<Str<'a>>,
    #[serde(borrow)]
    pub create_time: Option<Str<'a>>,
    #[serde(borrow)]
    pub owners: Vec<Str<'a>>,
    pub size: Option<u64>,
    #[serde(borrow)]
    pub volume: Option<NameRefStr<'a>>,
    #[serde(borrow)]
    pub svm: Option<NameRefStr<'a>>,
    #[serde(borrow)]
    pub snapmirror_label: Option<Str<'a>>,
    #[serde(borrow)]
    pub snaplock_expiry_time: Option<Str<'a>>,
}

/// A borrowed string, when present and non-empty.
fn non_empty<'s>(value: &'s Option<Str<'_>>) -> Option<&'s str> {
    value.as_ref().map(Str::text).filter(|v| !v.is_empty())
}

/// A borrowed string that must be present and non-empty.
fn required_str<'s>(value: &'s Option<Str<'_>>, what: &str) -> Result<&'s str, String> {
    value
        .as_ref()
        .map(Str::text)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{what} missing"))
}

impl SnapshotWire<'_> {
    /// The domain snapshot; the values snapshots repeat (volume, SVM, comment, label, owners)
    /// come from `interner`, so a listing holds each once.
    pub fn into_domain(self, interner: &mut Interner) -> Result<SnapshotInfo, String> {
        let name = required_str(&self.name, "snapshot name")?;
        let create_time = required_str(&self.create_time, "create_time")
            .and_then(|t| {
                DateTime::<FixedOffset>::parse_from_rfc3339(t)
                    .map_err(|e| format!("create_time {t:?}: {e}"))
            })
            .map_err(|e| format!("snapshot {name}: {e}"))?;
        let volume = self.volume.unwrap_or_default();
        let svm = self.svm.unwrap_or_default();
        let in_snapshot = |e: String| format!("snapshot {name}: {e}");
        Ok(SnapshotInfo {
            uuid: required_str(&self.uuid, "snapshot uuid")
                .map_err(|e| format!("{name}: {e}"))?
                .into(),
            volume_uuid: interner
                .get(required_str(&volume.uuid, "volume.uuid").map_err(in_snapshot)?),
            volume_name: interner
                .get(required_str(&volume.name, "volume.name").map_err(in_snapshot)?),
            svm: interner.get(required_str(&svm.name, "svm.name").map_err(in_snapshot)?),
            comment: non_empty(&self.comment).map(|c| interner.get(c)),
            create_time,
            owners: self.owners.iter().map(|o| interner.get(o.text())).collect(),
            size: self.size,
            snapmirror_label: non_empty(&self.snapmirror_label).map(|l| interner.get(l)),
            snaplock_expiry: self
                .snaplock_expiry_time
                .as_ref()
                .map(|t| {
                    DateTime::<FixedOffset>::parse_from_rfc3339(t.text()).map_err(|e| {
                        format!("snapshot {name}: snaplock_expiry_time {:?}: {e}", t.text())
                    })
                })
                .transpose()?,
            name: name.into(),
        })
    }
}

// ---- LUNs ----

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LunWire {
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub svm: Option<NameRef>,
    pub location: Option<LunLocationWire>,
    pub status: Option<LunStatusWire>,
    pub clone: Option<LunCloneWire>,
    pub space: Option<LunSpaceWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LunSpaceWire {
    pub size: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LunLocationWire {
    pub volume: Option<NameRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LunStatusWire {
    pub mapped: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LunCloneWire {
    /// "unset for LUNs that are not clones" (reference §3.1): absent means false.
    pub created_as_clone: Option<bool>,
}

impl LunWire {
    pub fn into_domain(self) -> Result<LunInfo, String> {
        let name = required(self.name, "lun name")?;
        Ok(LunInfo {
            uuid: required(self.uuid, "lun uuid").map_err(|e| format!("{name}: {e}"))?,
            svm: required(name_of(self.svm), "svm.name").map_err(|e| format!("lun {name}: {e}"))?,
            volume_name: required(
                self.location.and_then(|l| name_of(l.volume)),
                "location.volume.name",
            )
            .map_err(|e| format!("lun {name}: {e}"))?,
            mapped: self.status.and_then(|s| s.mapped).unwrap_or(false),
            created_as_clone: self.clone.and_then(|c| c.created_as_clone).unwrap_or(false),
            size: self.space.and_then(|s| s.size),
            name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schedule(v: serde_json::Value) -> Result<ScheduleInfo, String> {
        serde_json::from_value::<ScheduleWire>(v)
            .unwrap()
            .into_domain()
    }

    #[test]
    fn cron_schedule_with_empty_lists_means_all() {
        let s = schedule(json!({"name":"hourly","type":"cron","cron":{"minutes":[5]}})).unwrap();
        let expected = CronSpec::from_lists(&[5], &[], &[], &[], &[]).unwrap();
        assert_eq!(s.name, "hourly");
        assert_eq!(s.recurrence, Recurrence::Cron(expected));
        // Absent lists and explicit empty lists decode the same way.
        let s2 = schedule(json!({"name":"hourly","type":"cron",
            "cron":{"minutes":[5],"hours":[],"days":[],"weekdays":[],"months":[]}}))
        .unwrap();
        assert_eq!(s2.recurrence, Recurrence::Cron(expected));
        let weekly = schedule(json!({"name":"weekly","type":"cron",
            "cron":{"minutes":[15],"hours":[0],"weekdays":[0]}}))
        .unwrap();
        assert_eq!(
            weekly.recurrence,
            Recurrence::Cron(CronSpec::from_lists(&[15], &[0], &[], &[0], &[]).unwrap())
        );
        assert!(schedule(json!({"name":"bad","type":"cron","cron":{"minutes":[75]}})).is_err());
    }

    #[test]
    fn interval_schedule_is_anchored_at_epoch() {
        let s = schedule(json!({"name":"5min","type":"interval","interval":"PT7M30S"})).unwrap();
        assert_eq!(
            s.recurrence,
            Recurrence::Interval {
                every: TimeDelta::seconds(450),
                anchor: DateTime::<Utc>::UNIX_EPOCH
            }
        );
        assert!(schedule(json!({"name":"x","type":"interval","interval":"P1M"})).is_err());
    }

    /// A page's records as the client decodes them: escaped strings unescaped, the values
    /// records repeat handed out once, a record without its volume refused with its name.
    #[test]
    fn snapshot_records_decode_from_the_page_and_share_repeated_values() {
        let page = br#"{"records":[
            {"uuid":"u1","name":"hourly.0505","comment":"caf\u00e9 \"quoted\"",
             "create_time":"2026-12-06T05:05:00+01:00","owners":["lun_clone"],"size":4096,
             "volume":{"uuid":"vu","name":"vol1"},"svm":{"name":"svm1"},"snapmirror_label":"hourly"},
            {"uuid":"u2","name":"hourly.0605","create_time":"2026-12-06T06:05:00+01:00",
             "owners":["lun_clone"],"volume":{"uuid":"vu","name":"vol1"},"svm":{"name":"svm1"},
             "snapmirror_label":"hourly","snaplock_expiry_time":"2027-01-01T00:00:00Z"},
            {"uuid":"u3","name":"lost","create_time":"2026-12-06T06:05:00Z","svm":{"name":"svm1"}}
        ],"num_records":3}"#;
        let page: Collection<SnapshotWire<'_>> = serde_json::from_slice(page).unwrap();
        let mut interner = Interner::default();
        let mut records = page.records.into_iter();
        let a = records.next().unwrap().into_domain(&mut interner).unwrap();
        let b = records.next().unwrap().into_domain(&mut interner).unwrap();
        assert_eq!(a.comment.as_deref(), Some("café \"quoted\""));
        assert_eq!((a.name.as_str(), &*a.uuid.text()), ("hourly.0505", "u1"));
        assert_eq!(a.create_time.to_rfc3339(), "2026-12-06T05:05:00+01:00");
        assert_eq!((a.size, b.size), (Some(4096), None));
        assert_eq!(b.comment, None);
        assert_eq!(
            b.snaplock_expiry.map(|t| t.to_rfc3339()).as_deref(),
            Some("2027-01-01T00:00:00+00:00")
        );
        for (x, y) in [
            (&a.volume_uuid, &b.volume_uuid),
            (&a.volume_name, &b.volume_name),
            (&a.svm, &b.svm),
            (&a.owners[0], &b.owners[0]),
            (
                a.snapmirror_label.as_ref().unwrap(),
                b.snapmirror_label.as_ref().unwrap(),
            ),
        ] {
            assert_eq!(x, y);
            assert!(std::ptr::eq(x.as_str(), y.as_str()), "{x} is held twice");
        }
        assert_eq!((a.volume_name.as_str(), a.svm.as_str()), ("vol1", "svm1"));
        let lost = records.next().unwrap().into_domain(&mut interner);
        assert_eq!(lost.unwrap_err(), "snapshot lost: volume.uuid missing");
    }

    #[test]
    fn job_failure_prefers_integer_code() {
        let job: Job = serde_json::from_value(json!({"uuid":"j","state":"failure","code":1638555,
            "message":"locked","error":{"code":"99","message":"other"}}))
        .unwrap();
        assert_eq!(job.state(), Some(JobState::Failure));
        assert_eq!(job.failure(), (1_638_555, "locked".to_string()));
        let job: Job = serde_json::from_value(
            json!({"uuid":"j","state":"failure","code":0,"error":{"code":"524511","message":"m"}}),
        )
        .unwrap();
        assert_eq!(job.failure(), (524_511, "m".to_string()));
    }
}
