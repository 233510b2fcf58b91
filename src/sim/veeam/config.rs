//! `[[veeam]]` in a simulator world file: Veeam servers, their users, faults and jobs, checked
//! against the ONTAP side of the same world (every protected cluster, volume and LUN must exist).

use serde::Deserialize;

use super::world::{SimJob, SimTarget, VeeamFaults, VeeamWorld};
use crate::config::parse_duration;
use crate::sim::config::WorldConfigError;
use crate::sim::World;

/// The longest job duration accepted: a week, the longest window `max` a policy accepts.
const MAX_DURATION_SECONDS: i64 = 7 * 86_400;

/// One `[[veeam]]` of a world file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VeeamFile {
    pub name: String,
    /// At least one.
    pub users: Vec<VeeamUserFile>,
    #[serde(default)]
    pub faults: VeeamFaultsFile,
    #[serde(default)]
    pub jobs: Vec<VeeamJobFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VeeamUserFile {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VeeamFaultsFile {
    #[serde(default)]
    pub down: bool,
    #[serde(default)]
    pub slow_seconds: u64,
    #[serde(default)]
    pub fail_sessions: bool,
    pub token_seconds: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VeeamJobFile {
    pub name: String,
    /// Default: a fresh UUID.
    pub id: Option<String>,
    /// How long a session runs ("20m", "PT20M"); with `duration_max`, the shortest.
    pub duration: String,
    /// The longest, when a session's duration is drawn from a range.
    pub duration_max: Option<String>,
    pub targets: Vec<VeeamTargetFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VeeamTargetFile {
    pub cluster: String,
    pub volume: String,
    /// LUN names inside the volume (`lun1` is `/vol/<volume>/lun1`).
    pub luns: Vec<String>,
}

fn seconds(text: &str, at: &str, problems: &mut Vec<String>) -> Option<u64> {
    match parse_duration(text) {
        Ok(d) if (1..=MAX_DURATION_SECONDS).contains(&d.num_seconds()) => {
            u64::try_from(d.num_seconds()).ok()
        }
        Ok(_) => {
            problems.push(format!("{at}: \"{text}\" must be between 1s and 7d"));
            None
        }
        Err(e) => {
            problems.push(format!("{at}: {e}"));
            None
        }
    }
}

/// Every `[[veeam]]` as (name, state), checked against `world`; every problem reported at once.
pub fn build(
    files: Vec<VeeamFile>,
    world: &World,
    source_name: &str,
) -> Result<Vec<(String, VeeamWorld)>, WorldConfigError> {
    let mut problems = Vec::new();
    let mut out: Vec<(String, VeeamWorld)> = Vec::new();
    for f in files {
        let at = format!("veeam.{}", f.name);
        if out.iter().any(|(n, _)| *n == f.name) {
            problems.push(format!("{at}: duplicate Veeam server name"));
        }
        if f.users.is_empty() {
            problems.push(format!("{at}.users: at least one user is required"));
        }
        let mut jobs: Vec<SimJob> = Vec::new();
        for j in f.jobs {
            let jat = format!("{at}.jobs.{}", j.name);
            let id = j.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            if jobs
                .iter()
                .any(|o| o.name == j.name || o.id.eq_ignore_ascii_case(&id))
            {
                problems.push(format!("{jat}: duplicate job name or id"));
            }
            let min = seconds(&j.duration, &format!("{jat}.duration"), &mut problems);
            let max = match &j.duration_max {
                Some(m) => seconds(m, &format!("{jat}.duration_max"), &mut problems),
                None => min,
            };
            if let (Some(a), Some(b)) = (min, max) {
                if a > b {
                    problems.push(format!("{jat}: duration is longer than duration_max"));
                }
            }
            if j.targets.is_empty() {
                problems.push(format!("{jat}.targets: at least one target is required"));
            }
            let mut targets = Vec::new();
            for t in j.targets {
                let tat = format!("{jat}.targets.{}/{}", t.cluster, t.volume);
                let Ok(ci) = world.cluster_index(&t.cluster) else {
                    problems.push(format!("{tat}: no cluster {} in the world", t.cluster));
                    continue;
                };
                if world.volume_by_name(ci, &t.volume).is_err() {
                    problems.push(format!("{tat}: no volume {} on {}", t.volume, t.cluster));
                    continue;
                }
                let mut luns = Vec::new();
                for l in &t.luns {
                    let path = format!("/vol/{}/{l}", t.volume);
                    if world.lun_index(ci, &path).is_err() {
                        problems.push(format!("{tat}: no LUN {path}"));
                    }
                    luns.push(path);
                }
                targets.push(SimTarget {
                    cluster: t.cluster,
                    volume: t.volume,
                    luns,
                });
            }
            jobs.push(SimJob {
                id,
                name: j.name,
                targets,
                duration_min: min.unwrap_or(1),
                duration_max: max.unwrap_or(1).max(min.unwrap_or(1)),
            });
        }
        let mut state = VeeamWorld::new(
            f.users.into_iter().map(|u| (u.name, u.password)).collect(),
            jobs,
        );
        state.faults = VeeamFaults {
            down: f.faults.down,
            slow_seconds: f.faults.slow_seconds.min(MAX_DURATION_SECONDS as u64),
            fail_sessions: f.faults.fail_sessions,
            token_seconds: f.faults.token_seconds.map(i64::from),
        };
        out.push((f.name, state));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(WorldConfigError {
            source_name: source_name.into(),
            problems,
        })
    }
}

/// The password of an embedded Veeam server whose `[[veeam]]` names no password source.
pub const SIMULATOR_PASSWORD: &str = "simulator";

/// One embedded Veeam server of a policy (`url = "simulator"`).
pub struct PolicyVeeam {
    pub name: String,
    pub world: VeeamWorld,
    /// The password its one user (the policy's `username`) signs in with.
    pub password: crate::ontap::secret::Secret,
}

/// The policy's embedded Veeam servers, in policy order. Each has one user (the policy's
/// `username`, with the password from its source when one is set, else [`SIMULATOR_PASSWORD`])
/// and one job per distinct job its `driver = "veeam"` windows name: it protects those windows'
/// volumes and LUNs and runs the first such window's `expected`. A job named by a UUID gets that
/// id; the others get ids in the form `00000000-0000-4000-8000-<n>`. With `every_server`
/// (`simulate`), real servers are simulated too, with [`SIMULATOR_PASSWORD`] (their password
/// source is not read).
pub fn from_policy(
    policy: &crate::config::Policy,
    every_server: bool,
) -> Result<Vec<PolicyVeeam>, String> {
    use crate::config::Driver;
    let mut out = Vec::new();
    for (si, server) in policy.veeam.iter().enumerate() {
        if !server.is_simulator() && !every_server {
            continue;
        }
        let password = match server.password.as_ref().filter(|_| server.is_simulator()) {
            Some(source) => crate::ontap::secret::Secret::load(source).map_err(|e| {
                format!(
                    "Veeam server {}: cannot load the password: {e}",
                    server.name
                )
            })?,
            None => {
                crate::ontap::secret::Secret::new(SIMULATOR_PASSWORD).expect("a non-empty constant")
            }
        };
        let mut jobs: Vec<SimJob> = Vec::new();
        for w in &policy.windows {
            let Driver::Veeam(job) = &w.driver else {
                continue;
            };
            if job.server != si {
                continue;
            }
            let targets: Vec<SimTarget> = w
                .volumes
                .iter()
                .map(|&vi| {
                    let v = &policy.volumes[vi];
                    SimTarget {
                        cluster: policy.clusters[v.cluster].name.clone(),
                        volume: v.name.clone(),
                        luns: v.luns.clone(),
                    }
                })
                .collect();
            if let Some(existing) = jobs.iter_mut().find(|j| j.name == job.job) {
                for t in targets {
                    if !existing.targets.contains(&t) {
                        existing.targets.push(t);
                    }
                }
                continue;
            }
            let seconds = u64::try_from(w.expected.num_seconds().max(1)).unwrap_or(1);
            let id = if uuid::Uuid::parse_str(&job.job).is_ok() {
                job.job.to_lowercase()
            } else {
                format!("00000000-0000-4000-8000-{:012x}", jobs.len() + 1)
            };
            jobs.push(SimJob {
                id,
                name: job.job.clone(),
                targets,
                duration_min: seconds,
                duration_max: seconds,
            });
        }
        let world = VeeamWorld::new(
            vec![(server.username.clone(), password.expose().to_string())],
            jobs,
        );
        out.push(PolicyVeeam {
            name: server.name.clone(),
            world,
            password,
        });
    }
    Ok(out)
}
