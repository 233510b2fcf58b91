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
    /// Veeam B&R servers served beside the clusters (`crate::veeam::sim_config`); `build`
    /// leaves them to the server.
    #[serde(default)]
    pub veeam: Vec<crate::veeam::sim_config::VeeamFile>,
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
    #[serde(default)]
    pub luns: Vec<LunFile>,
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
                let rec = match (s.cron, s.interval) {
                    (Some(cron), None) => CronSpec::parse(&cron)
                        .map(Recurrence::Cron)
                        .map_err(|e| format!("{e}")),
                    (None, Some(iv)) => parse_iso8601_duration(&iv).and_then(|every| {
                        (every > TimeDelta::zero())
                            .then_some(Recurrence::Interval {
                                every,
                                anchor: start,
                            })
                            .ok_or_else(|| format!("interval \"{iv}\" must be longer than zero"))
                    }),
                    _ => Err("exactly one of `cron` or `interval` is required".to_string()),
                };
                match rec {
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
                let copies = p
                    .copies
                    .into_iter()
                    .map(|c| PolicyCopy {
                        schedule: c.schedule,
                        count: c.count,
                        prefix: c.prefix,
                    })
                    .collect();
                if let Err(e) = w.add_policy(ci, &p.name, &p.comment, copies) {
                    problems.push(format!(
                        "{at}.snapshot_policies.{}: {e} ({})",
                        p.name,
                        e.target()
                    ));
                }
            }
            for svm in c.svms {
                let sat = format!("{at}.svms.{}", svm.name);
                if let Err(e) = w.add_svm(ci, &svm.name) {
                    problems.push(format!("{sat}: {e}"));
                    continue;
                }
                for g in svm.igroups {
                    if let Err(e) = w.create_igroup(
                        ci,
                        &svm.name,
                        &g.name,
                        &g.os_type,
                        &g.protocol,
                        g.initiators,
                    ) {
                        problems.push(format!("{sat}.igroups.{}: {e}", g.name));
                    }
                }
                for v in svm.volumes {
                    let vat = format!("{sat}.volumes.{}", v.name);
                    let vol =
                        match w.create_volume(ci, &svm.name, &v.name, v.size, &v.snapshot_policy) {
                            Ok(uuid) => uuid,
                            Err(e) => {
                                problems.push(format!("{vat}: {e}"));
                                continue;
                            }
                        };
                    let vi = w.volume_index(ci, &vol).expect("just created");
                    w.clusters[ci].volumes[vi].snapshot_clone_dependency =
                        v.snapshot_clone_dependency;
                    for l in v.luns {
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
                }
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

/// The world a snapwarden policy describes for its clusters whose endpoint is `"simulator"`:
/// their schedules, snapshot policies, volumes and LUNs, licenses and version.
/// Volumes whose schedules come from ONTAP get ONTAP's built-in `default` policy.
pub fn world_from_policy(policy: &Policy, start: DateTime<Utc>) -> Result<World, WorldConfigError> {
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
        for s in &policy.schedules {
            if let Err(e) = w.add_schedule(ci, &s.name, s.recurrence.clone()) {
                problems.push(format!("cluster {}: schedule {}: {e}", c.name, s.name));
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
                    }
                })
                .collect();
            if let Err(e) = w.add_policy(ci, &p.name, "", copies) {
                problems.push(format!(
                    "cluster {}: snapshot policy {}: {e}",
                    c.name, p.name
                ));
            }
        }
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
        let snapshot_policy = match v.schedules {
            VolumeSchedules::Policy(i) => policy.snapshot_policies[i].name.clone(),
            VolumeSchedules::Ontap => "default".to_string(),
        };
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
            .map(|s| s.name)
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
