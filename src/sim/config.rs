//! World descriptions: the simulator's TOML file format and the world made from a snapwarden policy.
//!
//! Raw serde types (`deny_unknown_fields`) are turned into a [`World`] in one pass that collects
//! every error with its location. The format is documented in `docs/simulator.md`, with an example
//! at `config/simulator/world.example.toml`.

use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use super::world::{Faults, Knobs, PolicyCopy, User, World};
use crate::config::model::{Endpoint, Policy, VolumeSchedules};
use crate::config::parse_iso8601_duration;
use crate::ontap::secret::Secret;
use crate::timeline::{CronSpec, Recurrence};

/// A world description that could not be used; lists every problem found.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: invalid simulator world:\n  - {}", problems.join("\n  - "))]
pub struct WorldConfigError {
    /// The file name, or `policy` for `from_policy`.
    pub source_name: String,
    pub problems: Vec<String>,
}

const GIB: u64 = 1 << 30;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldFile {
    #[serde(default)]
    pub knobs: Knobs,
    #[serde(default)]
    pub faults: Faults,
    #[serde(default)]
    pub users: Vec<User>,
    pub clusters: Vec<ClusterFile>,
    /// Veeam B&R servers served beside the clusters (`super::veeam::config`); `build`
    /// leaves them to the server.
    #[serde(default)]
    pub veeam: Vec<super::veeam::config::VeeamFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub name: String,
    #[serde(default = "default_version")]
    pub version: String,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default)]
    pub licenses: Vec<String>,
    #[serde(default)]
    pub schedules: Vec<ScheduleFile>,
    #[serde(default)]
    pub snapshot_policies: Vec<PolicyFile>,
    #[serde(default)]
    pub svms: Vec<SvmFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    pub name: String,
    /// Five-field cron in the cluster's zone, for example `"5 * * * *"`.
    pub cron: Option<String>,
    /// ISO-8601 duration, for example `"PT30M"`; anchored at the simulator's start instant.
    pub interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub name: String,
    #[serde(default)]
    pub comment: String,
    pub copies: Vec<CopyFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyFile {
    pub schedule: String,
    pub count: u32,
    pub prefix: Option<String>,
    /// Given to every snapshot the copy takes.
    pub snapmirror_label: Option<String>,
    /// ISO-8601 (`"P7D"`): on a volume with `snapshot_locking_enabled`, each snapshot the copy
    /// takes is tamper-proof this long (its `snaplock_expiry_time`).
    pub retention_period: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SvmFile {
    pub name: String,
    #[serde(default)]
    pub volumes: Vec<VolumeFile>,
    #[serde(default)]
    pub igroups: Vec<IgroupFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeFile {
    pub name: String,
    #[serde(default = "default_volume_size")]
    pub size: u64,
    #[serde(default = "default_policy")]
    pub snapshot_policy: String,
    #[serde(default)]
    pub snapshot_clone_dependency: bool,
    /// `space.snapshot.reserve_percent` (0 to 90; default 5).
    pub snapshot_reserve_percent: Option<u8>,
    /// `snapshot_locking_enabled`.
    #[serde(default)]
    pub snapshot_locking_enabled: bool,
    /// `create_time` (default) or `ordinal`.
    pub scheduled_snapshot_naming_scheme: Option<String>,
    /// `space.snapshot.autodelete`; default disabled, `try`, `volume`.
    pub autodelete: Option<AutodeleteFile>,
    #[serde(default)]
    pub luns: Vec<LunFile>,
    /// Snapshots the volume holds when the world begins.
    #[serde(default)]
    pub snapshots: Vec<SnapshotFile>,
}

/// A snapshot a volume already holds when the world begins (never one a schedule took, so
/// rotation leaves it alone).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotFile {
    pub name: String,
    pub comment: Option<String>,
    pub snapmirror_label: Option<String>,
    /// RFC 3339, not after the world's start; default the start. A volume's snapshots are
    /// listed oldest first whatever their order here.
    pub create_time: Option<String>,
    /// ONTAP owners it is busy with (`snapmirror`, `dump`, …; reference notes §1.4): listed in
    /// `owners`, and its delete fails as a locked snapshot's does.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Bytes it holds when the world begins (default: a few KiB); it grows as the volume's
    /// LUNs change.
    pub size: Option<u64>,
    /// RFC 3339: the snapshot is tamper-proof (`snaplock_expiry_time`) until then.
    pub snaplock_expiry_time: Option<String>,
}

/// A volume's `space.snapshot.autodelete` in a world file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutodeleteFile {
    #[serde(default)]
    pub enabled: bool,
    /// `try`, `disrupt` or `destroy`.
    pub commitment: Option<String>,
    /// `volume` or `snap_reserve`.
    pub trigger: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LunFile {
    /// LUN name inside the volume (`lun1` becomes `/vol/<volume>/lun1`).
    pub name: String,
    #[serde(default = "default_lun_size")]
    pub size: u64,
    #[serde(default = "default_os_type")]
    pub os_type: String,
    /// igroups (of the same SVM) the LUN is mapped to.
    #[serde(default)]
    pub mapped_to: Vec<String>,
    /// Makes this LUN a SnapRestore clone of another LUN of the volume as a snapshot of it
    /// holds it (`{ snapshot = "…", lun = "lun0" }`): the snapshot is then busy (`lun_clone`).
    pub clone_of: Option<CloneOfFile>,
}

/// The source of a LUN clone planted in a world file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloneOfFile {
    pub snapshot: String,
    /// The source LUN's name inside the volume.
    pub lun: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgroupFile {
    pub name: String,
    #[serde(default = "default_os_type")]
    pub os_type: String,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    #[serde(default)]
    pub initiators: Vec<String>,
}

fn default_version() -> String {
    "9.14.1".into()
}
fn default_timezone() -> String {
    "Etc/UTC".into()
}
fn default_volume_size() -> u64 {
    100 * GIB
}
fn default_lun_size() -> u64 {
    10 * GIB
}
fn default_policy() -> String {
    "default".into()
}
fn default_os_type() -> String {
    "vmware".into()
}
fn default_protocol() -> String {
    "iscsi".into()
}

/// The user a world without `[[users]]` accepts (documented in `docs/simulator.md`).
pub const DEFAULT_USER: (&str, &str) = ("admin", "netapp1!");

impl WorldFile {
    pub fn parse(text: &str, source_name: &str) -> Result<WorldFile, WorldConfigError> {
        toml::from_str(text).map_err(|e| WorldConfigError {
            source_name: source_name.to_string(),
            problems: vec![e.to_string()],
        })
    }

    pub fn load(path: &Path) -> Result<WorldFile, WorldConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| WorldConfigError {
            source_name: name.clone(),
            problems: vec![format!("cannot read: {e}")],
        })?;
        WorldFile::parse(&text, &name)
    }

    /// Builds the world with its clock at `start`.
    pub fn build(self, start: DateTime<Utc>, source_name: &str) -> Result<World, WorldConfigError> {
        let mut problems = Vec::new();
        if let Err(e) = self.knobs.validate() {
            problems.push(format!("knobs.{e}"));
        }
        if let Err(e) = self.faults.validate() {
            problems.push(format!("faults.{e}"));
        }
        let mut w = World::new(start, self.knobs);
        w.faults = self.faults;
        w.users = self.users;
        if w.users.is_empty() {
            w.default_logins.push(DEFAULT_USER.0.into());
            w.users.push(User {
                name: DEFAULT_USER.0.into(),
                password: DEFAULT_USER.1.into(),
            });
        }
        if self.clusters.is_empty() {
            problems.push("at least one [[clusters]] entry is required".to_string());
        }
        for c in self.clusters {
            let at = format!("clusters.{}", c.name);
            let tz: Tz = match c.timezone.parse() {
                Ok(tz) => tz,
                Err(_) => {
                    problems.push(format!(
                        "{at}.timezone: unknown time zone \"{}\"",
                        c.timezone
                    ));
                    Tz::UTC
                }
            };
            let ci = w.add_cluster(&c.name, &c.version, tz);
            for l in &c.licenses {
                w.add_license(ci, l);
            }
            for s in c.schedules {
                match s.recurrence(start) {
                    Ok(rec) => {
                        if let Err(e) = w.add_schedule(ci, &s.name, rec) {
                            problems.push(format!("{at}.schedules.{}: {e}", s.name));
                        }
                    }
                    Err(e) => problems.push(format!("{at}.schedules.{}: {e}", s.name)),
                }
            }
            w.add_builtins(ci);
            for p in c.snapshot_policies {
                let mut copies = Vec::new();
                for c in p.copies {
                    let retention_period = match c.retention_period.as_deref().map(|r| {
                        parse_iso8601_duration(r)
                            .map_err(|e| format!("copies.retention_period \"{r}\": {e}"))
                    }) {
                        Some(Err(e)) => {
                            problems.push(format!("{at}.snapshot_policies.{}.{e}", p.name));
                            None
                        }
                        Some(Ok(d)) => Some(d),
                        None => None,
                    };
                    copies.push(PolicyCopy {
                        schedule: c.schedule,
                        count: c.count,
                        prefix: c.prefix,
                        snapmirror_label: c.snapmirror_label,
                        retention_period,
                    });
                }
                if let Err(e) = w.add_policy(ci, &p.name, &p.comment, copies) {
                    problems.push(format!(
                        "{at}.snapshot_policies.{}: {e} ({})",
                        p.name,
                        e.target()
                    ));
                }
            }
            for svm in c.svms {
                svm.add_to(&mut w, ci, &at, &mut problems);
            }
        }
        if problems.is_empty() {
            Ok(w)
        } else {
            Err(WorldConfigError {
                source_name: source_name.to_string(),
                problems,
            })
        }
    }
}

impl ScheduleFile {
    /// The schedule's recurrence; an interval is anchored at the world's `start`.
    fn recurrence(&self, start: DateTime<Utc>) -> Result<Recurrence, String> {
        match (&self.cron, &self.interval) {
            (Some(cron), None) => CronSpec::parse(cron)
                .map(Recurrence::Cron)
                .map_err(|e| format!("{e}")),
            (None, Some(iv)) => parse_iso8601_duration(iv).and_then(|every| {
                (every > TimeDelta::zero())
                    .then_some(Recurrence::Interval {
                        every,
                        anchor: start,
                    })
                    .ok_or_else(|| format!("interval \"{iv}\" must be longer than zero"))
            }),
            _ => Err("exactly one of `cron` or `interval` is required".to_string()),
        }
    }
}

impl SvmFile {
    /// Adds the SVM with its igroups, volumes (and their snapshots) and LUNs to cluster `ci`;
    /// problems are located under `at` (the cluster's path in the file).
    fn add_to(self, w: &mut World, ci: usize, at: &str, problems: &mut Vec<String>) {
        let sat = format!("{at}.svms.{}", self.name);
        if let Err(e) = w.add_svm(ci, &self.name) {
            problems.push(format!("{sat}: {e}"));
            return;
        }
        for g in self.igroups {
            if let Err(e) = w.create_igroup(
                ci,
                &self.name,
                &g.name,
                &g.os_type,
                &g.protocol,
                g.initiators,
            ) {
                problems.push(format!("{sat}.igroups.{}: {e}", g.name));
            }
        }
        for v in self.volumes {
            let vat = format!("{sat}.volumes.{}", v.name);
            let vol = match w.create_volume(ci, &self.name, &v.name, v.size, &v.snapshot_policy) {
                Ok(uuid) => uuid,
                Err(e) => {
                    problems.push(format!("{vat}: {e}"));
                    continue;
                }
            };
            let vi = w.volume_index(ci, &vol).expect("just created");
            w.clusters[ci].volumes[vi].snapshot_clone_dependency = v.snapshot_clone_dependency;
            settings_of(&v, &mut w.clusters[ci].volumes[vi], &vat, problems);
            add_snapshots(w, ci, vi, v.snapshots, &vat, problems);
            // Clones last: their sources are the volume's other LUNs.
            let (clones, luns): (Vec<LunFile>, Vec<LunFile>) =
                v.luns.into_iter().partition(|l| l.clone_of.is_some());
            for l in luns {
                let path = format!("/vol/{}/{}", v.name, l.name);
                if let Err(e) = w.create_lun(ci, &path, l.size, &l.os_type) {
                    problems.push(format!("{vat}.luns.{}: {e}", l.name));
                    continue;
                }
                for g in &l.mapped_to {
                    if let Err(e) = w.map_lun(ci, &path, g) {
                        problems.push(format!("{vat}.luns.{}.mapped_to {g}: {e}", l.name));
                    }
                }
            }
            for l in clones {
                let Some(from) = &l.clone_of else { continue };
                if let Err(e) = w.clone_lun_snaprestore(ci, vi, &from.snapshot, &from.lun, &l.name)
                {
                    problems.push(format!("{vat}.luns.{}.clone_of: {e}", l.name));
                }
            }
        }
    }
}

/// A volume's autodelete, locking, naming and reserve from its world-file entry.
fn settings_of(
    v: &VolumeFile,
    vol: &mut super::world::Volume,
    at: &str,
    problems: &mut Vec<String>,
) {
    use super::world::{NamingScheme, AUTODELETE_COMMITMENTS, AUTODELETE_TRIGGERS};
    vol.snapshot_locking = v.snapshot_locking_enabled;
    if let Some(p) = v.snapshot_reserve_percent {
        // ONTAP's `-percent-snapshot-space` tops out at 90.
        match p {
            0..=90 => vol.snapshot_reserve_percent = p,
            _ => problems.push(format!("{at}.snapshot_reserve_percent: {p} is over 90")),
        }
    }
    if let Some(s) = &v.scheduled_snapshot_naming_scheme {
        match NamingScheme::parse(s) {
            Some(n) => vol.naming = n,
            None => problems.push(format!(
                "{at}.scheduled_snapshot_naming_scheme: \"{s}\" is not create_time or ordinal"
            )),
        }
    }
    let Some(a) = &v.autodelete else { return };
    vol.autodelete.enabled = a.enabled;
    let mut one_of =
        |value: &Option<String>, allowed: &[&str], key: &str, slot: &mut String| match value {
            Some(x) if allowed.contains(&x.as_str()) => *slot = x.clone(),
            Some(x) => problems.push(format!(
                "{at}.autodelete.{key}: \"{x}\" is not one of {}",
                allowed.join(", ")
            )),
            None => {}
        };
    one_of(
        &a.commitment,
        AUTODELETE_COMMITMENTS,
        "commitment",
        &mut vol.autodelete.commitment,
    );
    one_of(
        &a.trigger,
        AUTODELETE_TRIGGERS,
        "trigger",
        &mut vol.autodelete.trigger,
    );
}

/// A volume's existing snapshots (`snapshots` in the world file), oldest first; each problem is
/// added to `problems` under `at`.
fn add_snapshots(
    w: &mut World,
    ci: usize,
    vi: usize,
    snapshots: Vec<SnapshotFile>,
    at: &str,
    problems: &mut Vec<String>,
) {
    let start = w.now();
    let mut timed = Vec::new();
    for s in snapshots {
        let time = match &s.create_time {
            None => start,
            Some(t) => match DateTime::parse_from_rfc3339(t) {
                Ok(t) => t.with_timezone(&Utc),
                Err(e) => {
                    problems.push(format!(
                        "{at}.snapshots.{}.create_time: \"{t}\" is not RFC 3339: {e}",
                        s.name
                    ));
                    continue;
                }
            },
        };
        timed.push((time, s));
    }
    timed.sort_by_key(|(time, _)| *time);
    for (time, s) in timed {
        let sat = format!("{at}.snapshots.{}", s.name);
        let added = w.add_existing_snapshot(ci, vi, &s.name, s.comment, s.snapmirror_label, time);
        match added {
            Ok(si) => {
                if let Err(e) = w.hold_snapshot(ci, vi, si, s.owners) {
                    problems.push(format!("{sat}.owners: {e}"));
                }
                let snap = &mut w.clusters[ci].volumes[vi].snapshots[si];
                if let Some(size) = s.size {
                    snap.size = size;
                }
                match s
                    .snaplock_expiry_time
                    .as_deref()
                    .map(DateTime::parse_from_rfc3339)
                {
                    Some(Ok(t)) => snap.snaplock_expiry = Some(t.with_timezone(&Utc)),
                    Some(Err(e)) => {
                        problems.push(format!("{sat}.snaplock_expiry_time: not RFC 3339: {e}"))
                    }
                    None => {}
                }
            }
            Err(e) => problems.push(format!("{sat}: {e}")),
        }
    }
}

/// Who takes the copies of a volume's `managed_snapshots` in a world built from a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManagedCopies {
    /// snapwarden does, as the policy says: ONTAP's policy on the volume is its
    /// `snapshot_policy` alone.
    #[default]
    Snapwarden,
    /// ONTAP does, as before they were handed over (what `simulate`'s baseline compares with):
    /// the volume's ONTAP policy is its `snapshot_policy`'s copies followed by the managed
    /// policy's, a managed copy replacing a copy with the same prefix (possible only when the
    /// volume's schedules come from ONTAP, whose `default` policy it then gets).
    Ontap,
}

/// The world a snapwarden policy describes for its clusters whose endpoint is `"simulator"`:
/// their schedules, snapshot policies, volumes and LUNs, licenses and version.
/// Volumes whose schedules come from ONTAP get ONTAP's built-in `default` policy; managed copies
/// are left to snapwarden ([`ManagedCopies::Snapwarden`]).
pub fn world_from_policy(policy: &Policy, start: DateTime<Utc>) -> Result<World, WorldConfigError> {
    world_from_policy_with(policy, start, ManagedCopies::Snapwarden)
}

/// [`world_from_policy`], with `managed` saying who takes the volumes' managed copies.
pub fn world_from_policy_with(
    policy: &Policy,
    start: DateTime<Utc>,
    managed: ManagedCopies,
) -> Result<World, WorldConfigError> {
    let mut problems = Vec::new();
    let mut w = World::new(start, Knobs::default());
    let mut index = vec![None; policy.clusters.len()];
    for (pi, c) in policy.clusters.iter().enumerate() {
        if c.endpoint != Endpoint::Simulator {
            continue;
        }
        let tz = c.known_timezone().unwrap_or(Tz::UTC);
        let sim = c
            .simulator
            .clone()
            .unwrap_or_else(|| crate::config::model::SimulatedCluster {
                version: default_version(),
                licenses: Vec::new(),
            });
        let ci = w.add_cluster(&c.name, &sim.version, tz);
        for l in &sim.licenses {
            w.add_license(ci, l);
        }
        add_policy_schedules(&mut w, ci, policy, &c.name, &mut problems);
        // After the policy's own: a policy may redefine `default`, `hourly` and the other built-ins.
        w.add_builtins(ci);
        // The policy's credentials for this cluster log in; without a password source the
        // documented default password applies.
        let password = match &c.password {
            Some(source) => match Secret::load(source) {
                Ok(secret) => secret.expose().to_string(),
                Err(e) => {
                    problems.push(format!("cluster {}: {e}", c.name));
                    continue;
                }
            },
            None => {
                w.default_logins.push(c.username.clone());
                DEFAULT_USER.1.to_string()
            }
        };
        if !w
            .users
            .iter()
            .any(|u| u.name == c.username && u.password == password)
        {
            w.users.push(User {
                name: c.username.clone(),
                password,
            });
        }
        index[pi] = Some(ci);
    }
    if w.clusters.is_empty() {
        problems.push(
            "no cluster has endpoint = \"simulator\": the simulator serves only those (see docs/simulator.md)"
                .to_string(),
        );
    }
    for v in &policy.volumes {
        let Some(ci) = index[v.cluster] else { continue };
        if w.svm_index(ci, &v.svm).is_err() {
            w.add_svm(ci, &v.svm).expect("svm is new");
        }
        let mut snapshot_policy = match v.schedules {
            VolumeSchedules::Policy(i) => policy.snapshot_policies[i].name.clone(),
            VolumeSchedules::Ontap => "default".to_string(),
        };
        if let (ManagedCopies::Ontap, Some(m)) = (managed, v.managed) {
            match with_managed_copies(&mut w, ci, policy, &snapshot_policy, m) {
                Ok(name) => snapshot_policy = name,
                Err(e) => {
                    problems.push(format!("volume {}: {e}", v.name));
                    continue;
                }
            }
        }
        if let Err(e) =
            w.create_volume(ci, &v.svm, &v.name, default_volume_size(), &snapshot_policy)
        {
            problems.push(format!("volume {}: {e}", v.name));
            continue;
        }
        for lun in &v.luns {
            if let Err(e) = w.create_lun(ci, lun, default_lun_size(), "vmware") {
                problems.push(format!("volume {}: LUN {lun}: {e}", v.name));
            }
        }
    }
    if problems.is_empty() {
        Ok(w)
    } else {
        Err(WorldConfigError {
            source_name: "policy".into(),
            problems,
        })
    }
}

/// The policy's schedules and snapshot policies on simulator cluster `ci` (named `cluster` in
/// problems).
fn add_policy_schedules(
    w: &mut World,
    ci: usize,
    policy: &Policy,
    cluster: &str,
    problems: &mut Vec<String>,
) {
    for s in &policy.schedules {
        if let Err(e) = w.add_schedule(ci, &s.name, s.recurrence.clone()) {
            problems.push(format!("cluster {}: schedule {}: {e}", cluster, s.name));
        }
    }
    for p in &policy.snapshot_policies {
        let copies = p
            .copies
            .iter()
            .map(|copy| {
                let schedule = policy.schedules[copy.schedule].name.clone();
                let prefix = (copy.prefix != schedule).then(|| copy.prefix.clone());
                PolicyCopy {
                    schedule,
                    count: copy.count,
                    prefix,
                    snapmirror_label: copy.snapmirror_label.clone(),
                    retention_period: None,
                }
            })
            .collect();
        if let Err(e) = w.add_policy(ci, &p.name, "", copies) {
            problems.push(format!(
                "cluster {}: snapshot policy {}: {e}",
                cluster, p.name
            ));
        }
    }
}

/// The ONTAP policy that takes `base`'s copies and those of the policy's snapshot policy
/// `managed` ([`ManagedCopies::Ontap`]): `<base>-with-<managed>` (a number appended when a policy
/// has that name already), added once per cluster and pair.
fn with_managed_copies(
    w: &mut World,
    ci: usize,
    policy: &Policy,
    base: &str,
    managed: usize,
) -> Result<String, String> {
    let handed = &policy.snapshot_policies[managed];
    let name = format!("{base}-with-{}", handed.name);
    let comment = format!("{base} and the copies of {} (managed)", handed.name);
    let policies = &w.clusters[ci].policies;
    if let Some(p) = policies
        .iter()
        .find(|p| p.name.starts_with(&name) && p.comment == comment)
    {
        return Ok(p.name.clone());
    }
    let name = (0..)
        .map(|n| match n {
            0 => name.clone(),
            n => format!("{name}-{n}"),
        })
        .find(|n| policies.iter().all(|p| p.name != *n))
        .expect("some suffix is free");
    let ours: Vec<PolicyCopy> = handed
        .copies
        .iter()
        .map(|copy| {
            let schedule = policy.schedules[copy.schedule].name.clone();
            PolicyCopy {
                prefix: (copy.prefix != schedule).then(|| copy.prefix.clone()),
                schedule,
                count: copy.count,
                snapmirror_label: copy.snapmirror_label.clone(),
                retention_period: None,
            }
        })
        .collect();
    let kept = policies
        .iter()
        .find(|p| p.name == base)
        .map(|p| p.copies.clone())
        .ok_or_else(|| format!("snapshot policy {base} does not exist"))?;
    let mut copies: Vec<PolicyCopy> = kept
        .into_iter()
        .filter(|k| {
            ours.iter()
                .all(|o| o.effective_prefix() != k.effective_prefix())
        })
        .collect();
    copies.extend(ours);
    w.add_policy(ci, &name, &comment, copies)
        .map_err(|e| format!("snapshot policy {name}: {e}"))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_world_file_builds() {
        let text = include_str!("../../config/simulator/world.example.toml");
        let w = WorldFile::parse(text, "example")
            .unwrap()
            .build(Utc::now(), "example")
            .unwrap();
        assert!(!w.clusters.is_empty());
        assert!(!w.clusters[0].volumes.is_empty());
    }

    #[test]
    fn errors_are_collected() {
        let text = r#"
            [[clusters]]
            name = "c"
            timezone = "Mars/Olympus"
            [[clusters.schedules]]
            name = "bad"
            cron = "61 * * * *"
            [[clusters.svms]]
            name = "s"
            [[clusters.svms.volumes]]
            name = "v"
            snapshot_policy = "nope"
        "#;
        let err = WorldFile::parse(text, "t")
            .unwrap()
            .build(Utc::now(), "t")
            .unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
    }

    const LABELLED: &str = r#"
        [knobs]
        reserved_snapshot_prefixes = ["hourly"]
        [[clusters]]
        name = "c"
        [[clusters.schedules]]
        name = "hourly"
        cron = "5 * * * *"
        [[clusters.snapshot_policies]]
        name = "p"
        copies = [{ schedule = "hourly", count = 2, snapmirror_label = "hourly" }]
        [[clusters.svms]]
        name = "s"
        [[clusters.svms.volumes]]
        name = "v"
        snapshot_policy = "p"
        [[clusters.svms.volumes.snapshots]]
        name = "mirror.2"
        snapmirror_label = "weekly"
        owners = ["snapmirror"]
        [[clusters.svms.volumes.snapshots]]
        name = "hourly.2026-05-31_2305"
        comment = "taken by ONTAP before the world began"
        create_time = "2026-05-31T23:05:00Z"
    "#;

    #[test]
    fn a_world_file_holds_labelled_and_busy_snapshots_and_reserved_prefixes() {
        let start: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
        let mut w = WorldFile::parse(LABELLED, "t")
            .unwrap()
            .build(start, "t")
            .unwrap();
        assert_eq!(w.knobs.reserved_snapshot_prefixes, ["hourly"]);
        let v = &w.clusters[0].volumes[0];
        let shown: Vec<(&str, Option<&str>, &[String])> = v
            .snapshots
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.snapmirror_label.as_deref(),
                    &s.held_by[..],
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("hourly.2026-05-31_2305", None, &[][..]),
                ("mirror.2", Some("weekly"), &["snapmirror".to_string()][..]),
            ],
            "oldest first"
        );
        assert_eq!(w.owners(0, 0, 1), ["snapmirror"]);
        assert_eq!(
            w.delete_snapshot(0, 0, 1).unwrap_err().code(),
            crate::ontap::SNAPSHOT_LOCKED
        );
        w.advance_to("2026-06-01T00:10:00Z".parse().unwrap());
        let taken = w.clusters[0].volumes[0].snapshots.last().unwrap();
        assert_eq!(
            (taken.name.as_str(), taken.snapmirror_label.as_deref()),
            ("hourly.2026-06-01_0005", Some("hourly"))
        );
    }

    #[test]
    fn bad_snapshots_labels_and_prefixes_are_collected() {
        let text = LABELLED
            .replace("[\"hourly\"]\n", "[\"a/b\"]\n")
            .replace(
                "[[clusters.svms]]",
                "[[clusters.snapshot_policies]]\nname = \"q\"\n\
                 copies = [{ schedule = \"hourly\", count = 1, snapmirror_label = \"\" }]\n\
                 [[clusters.svms]]",
            )
            .replace("[\"snapmirror\"]", "[\"backup-tool\"]")
            .replace("2026-05-31T23:05:00Z", "yesterday")
            + "[[clusters.svms.volumes.snapshots]]\nname = \"mirror.2\"\n";
        let err = WorldFile::parse(&text, "t")
            .unwrap()
            .build("2026-06-01T00:00:00Z".parse().unwrap(), "t")
            .unwrap_err();
        let all = err.problems.join("\n");
        for expected in [
            "knobs.reserved_snapshot_prefixes",
            "clusters.c.snapshot_policies.q: \"snapmirror_label\" must be 1 to 31 characters",
            "clusters.c.svms.s.volumes.v.snapshots.mirror.2.owners",
            "clusters.c.svms.s.volumes.v.snapshots.hourly.2026-05-31_2305.create_time",
            "already exists",
        ] {
            assert!(all.contains(expected), "{expected} in:\n{all}");
        }
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;
    use crate::config::model::*;
    use crate::ontap::Ontap;
    use crate::sim::{ClockMode, SimClient, Simulator};

    fn policy() -> Policy {
        let cluster = |name: &str, endpoint: Endpoint| Cluster {
            name: name.into(),
            endpoint: endpoint.clone(),
            username: "admin".into(),
            password: None,
            tls: TlsVerify::Insecure,
            timezone: ClusterTimezone::Named(chrono_tz::Europe::Berlin),
            simulator: (endpoint == Endpoint::Simulator).then(|| SimulatedCluster {
                version: "9.15.1".into(),
                licenses: vec!["flexclone".into()],
            }),
        };
        Policy {
            source: "p.toml".into(),
            files: vec!["p.toml".into()],
            agent: Agent {
                listen: "127.0.0.1:9100".parse().unwrap(),
                state_dir: "/tmp".into(),
                snapshot_prefix: "snapwarden".into(),
                guard: TimeDelta::minutes(5),
                ..Agent::default()
            },
            flexclone: FlexCloneRule {
                recommend_after: 3,
                within: TimeDelta::days(7),
                use_when_licensed: true,
            },
            clusters: vec![
                cluster("real", Endpoint::Url("https://ontap.example".into())),
                cluster("sim", Endpoint::Simulator),
            ],
            schedules: vec![JobSchedule {
                name: "q".into(),
                recurrence: Recurrence::Cron(CronSpec::parse("*/15 * * * *").unwrap()),
            }],
            snapshot_policies: vec![SnapshotPolicy {
                name: "quarter".into(),
                copies: vec![Copies {
                    schedule: 0,
                    count: 4,
                    prefix: "qh".into(),
                    snapmirror_label: None,
                }],
                max_defer: DEFAULT_MAX_DEFER,
            }],
            volumes: vec![
                Volume {
                    cluster: 1,
                    svm: "svm1".into(),
                    name: "vol1".into(),
                    luns: vec!["/vol/vol1/lun1".into()],
                    schedules: VolumeSchedules::Policy(0),
                    managed: None,
                    clone: CloneMethod::Auto,
                },
                Volume {
                    cluster: 0,
                    svm: "svm9".into(),
                    name: "elsewhere".into(),
                    luns: vec![],
                    schedules: VolumeSchedules::Ontap,
                    managed: None,
                    clone: CloneMethod::Auto,
                },
            ],
            windows: vec![],
            veeam: vec![],
            ha: None,
            volume_ids: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_policy_with_a_simulator_endpoint_makes_its_world() {
        let start = "2026-06-01T10:00:00Z".parse().unwrap();
        let sim = Simulator::from_policy(&policy(), ClockMode::Manual, Some(start)).unwrap();
        let names: Vec<String> = sim.with(|w| w.clusters.iter().map(|c| c.name.clone()).collect());
        assert_eq!(names, ["sim"], "only the simulator cluster");
        let c = &SimClient::new(sim.clone(), "sim");
        let info = c.cluster().await.unwrap();
        assert_eq!(
            (
                info.name.as_str(),
                info.version.as_str(),
                info.timezone.as_str()
            ),
            ("sim", "9.15.1", "Europe/Berlin")
        );
        assert_eq!(
            c.license("flexclone").await.unwrap(),
            crate::ontap::LicenseState::Compliant
        );
        let vols = c.volumes().await.unwrap();
        assert_eq!(vols.len(), 1);
        assert_eq!(vols[0].snapshot_policy.as_deref(), Some("quarter"));
        assert_eq!(c.luns().await.unwrap()[0].name, "/vol/vol1/lun1");
        // 10:00Z is 12:00 in Berlin (CEST); two hours of quarter-hourly snapshots, count 4.
        sim.advance(TimeDelta::hours(2)).unwrap();
        let names: Vec<String> = c
            .snapshots()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name.into())
            .collect();
        assert_eq!(
            names,
            [
                "qh.2026-06-01_1315",
                "qh.2026-06-01_1330",
                "qh.2026-06-01_1345",
                "qh.2026-06-01_1400"
            ]
        );
    }
}

#[cfg(test)]
mod managed_tests {
    use super::*;
    use crate::sim::{ClockMode, Simulator};

    /// `all` hands every copy over (its ONTAP policy takes nothing), `some` keeps hourly with
    /// ONTAP and hands daily over, `read` reads its policy from ONTAP and hands hourly over.
    const POLICY: &str = r#"
[[cluster]]
name = "c"
endpoint = "simulator"
timezone = "UTC"
[[schedule]]
name = "hourly"
cron = "5 * * * *"
[[schedule]]
name = "daily"
cron = "10 0 * * *"
[[snapshot_policy]]
name = "none-here"
copies = []
[[snapshot_policy]]
name = "kept"
copies = [{ schedule = "hourly", count = 6 }]
[[snapshot_policy]]
name = "handed"
copies = [
  { schedule = "hourly", count = 24, snapmirror_label = "hourly" },
  { schedule = "daily", count = 7, prefix = "nightly", snapmirror_label = "daily" },
]
[[snapshot_policy]]
name = "daily-handed"
copies = [{ schedule = "daily", count = 7, prefix = "nightly", snapmirror_label = "daily" }]
[[volume]]
cluster = "c"
svm = "s"
name = "all"
luns = ["/vol/all/lun0"]
snapshot_policy = "none-here"
managed_snapshots = "handed"
[[volume]]
cluster = "c"
svm = "s"
name = "some"
luns = ["/vol/some/lun0"]
snapshot_policy = "kept"
managed_snapshots = "daily-handed"
[[volume]]
cluster = "c"
svm = "s"
name = "read"
luns = ["/vol/read/lun0"]
snapshot_policy = "ontap"
managed_snapshots = "handed"
"#;

    fn policy() -> Policy {
        crate::config::parse_str(POLICY, Path::new("p.toml")).unwrap_or_else(|d| panic!("{d}"))
    }

    /// (prefix, SnapMirror label) of each copy of a policy.
    type Copies = Vec<(String, Option<String>)>;

    /// Each volume's name, ONTAP policy and that policy's copies.
    fn ontap_policies(w: &World) -> Vec<(String, String, Copies)> {
        let c = &w.clusters[0];
        c.volumes
            .iter()
            .map(|v| {
                let p = c
                    .policies
                    .iter()
                    .find(|p| p.name == v.snapshot_policy)
                    .unwrap();
                let copies = p
                    .copies
                    .iter()
                    .map(|k| (k.effective_prefix().to_string(), k.snapmirror_label.clone()))
                    .collect();
                (v.name.clone(), p.name.clone(), copies)
            })
            .collect()
    }

    fn copies(list: &[(&str, Option<&str>)]) -> Copies {
        list.iter()
            .map(|(p, l)| (p.to_string(), l.map(str::to_string)))
            .collect()
    }

    #[test]
    fn a_managed_volume_gets_its_snapshot_policy_only() {
        let start = "2026-06-01T00:00:00Z".parse().unwrap();
        let sim = Simulator::from_policy(&policy(), ClockMode::Manual, Some(start)).unwrap();
        let got = sim.with(|w| ontap_policies(w));
        let expected = [
            ("all", "none-here", copies(&[])),
            ("some", "kept", copies(&[("hourly", None)])),
            (
                "read",
                "default",
                copies(&[("hourly", None), ("daily", None), ("weekly", None)]),
            ),
        ]
        .map(|(v, p, c)| (v.to_string(), p.to_string(), c));
        assert_eq!(got, expected);
        // ONTAP takes nothing on `all` while the clock runs.
        sim.advance(TimeDelta::days(1)).unwrap();
        sim.with(|w| assert!(w.clusters[0].volumes[0].snapshots.is_empty()));
    }

    #[test]
    fn the_baseline_world_has_ontap_take_the_managed_copies_too() {
        let start = "2026-06-01T00:00:00Z".parse().unwrap();
        let sim = Simulator::from_policy_with(
            &policy(),
            ClockMode::Manual,
            Some(start),
            ManagedCopies::Ontap,
        )
        .unwrap();
        let got = sim.with(|w| ontap_policies(w));
        let expected = [
            (
                "all",
                "none-here-with-handed",
                copies(&[("hourly", Some("hourly")), ("nightly", Some("daily"))]),
            ),
            (
                "some",
                "kept-with-daily-handed",
                copies(&[("hourly", None), ("nightly", Some("daily"))]),
            ),
            // `default`'s hourly gives way to the managed hourly copy (same prefix).
            (
                "read",
                "default-with-handed",
                copies(&[
                    ("daily", None),
                    ("weekly", None),
                    ("hourly", Some("hourly")),
                    ("nightly", Some("daily")),
                ]),
            ),
        ]
        .map(|(v, p, c)| (v.to_string(), p.to_string(), c));
        assert_eq!(got, expected);
        sim.advance(TimeDelta::minutes(15)).unwrap();
        sim.with(|w| {
            let s = &w.clusters[0].volumes[0].snapshots;
            let taken: Vec<(&str, Option<&str>)> = s
                .iter()
                .map(|s| (s.name.as_str(), s.snapmirror_label.as_deref()))
                .collect();
            assert_eq!(
                taken,
                [
                    ("hourly.2026-06-01_0005", Some("hourly")),
                    ("nightly.2026-06-01_0010", Some("daily"))
                ]
            );
        });
        // A second volume with the same pair shares the policy.
        let mut p = policy();
        let mut twin = p.volumes[0].clone();
        twin.name = "twin".into();
        twin.luns = vec!["/vol/twin/lun0".into()];
        p.volumes.push(twin);
        let w = world_from_policy_with(&p, start, ManagedCopies::Ontap).unwrap();
        let names: Vec<&str> = w.clusters[0]
            .volumes
            .iter()
            .map(|v| v.snapshot_policy.as_str())
            .collect();
        assert_eq!(names[0], names[3]);
    }
}
