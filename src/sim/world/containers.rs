//! Clusters and what holds volumes: SVMs, schedules, snapshot policies, licenses, built-ins.

use std::collections::{BTreeSet, HashMap};

use chrono_tz::Tz;

use super::{
    codes, Cluster, PolicyCopy, Schedule, SimError, SimResult, SnapshotPolicy, Svm, World,
};
use crate::timeline::Recurrence;

impl World {
    pub fn add_cluster(&mut self, name: &str, version: &str, tz: Tz) -> usize {
        let mut licenses = BTreeSet::new();
        licenses.insert("base".to_string());
        self.clusters.push(Cluster {
            name: name.to_string(),
            uuid: World::new_uuid(),
            version: version.to_string(),
            tz,
            licenses,
            svms: Vec::new(),
            schedules: Vec::new(),
            policies: Vec::new(),
            volumes: Vec::new(),
            volume_uuids: HashMap::default(),
            volume_names: HashMap::default(),
            clone_children: HashMap::default(),
            luns: Vec::new(),
            next_lun_seq: 0,
            lun_names: HashMap::default(),
            lun_uuids: HashMap::default(),
            volume_luns: HashMap::default(),
            igroups: Vec::new(),
            lun_maps: Vec::new(),
            lun_maps_of: HashMap::default(),
            block_sharing: HashMap::default(),
            jobs: Vec::new(),
        });
        self.clusters.len() - 1
    }

    /// Adds ONTAP's built-in schedules (`hourly` @:05, `daily` @0:10, `weekly` Sun@0:15) and
    /// policies (`default`, `none`) where the cluster does not define them (reference notes §5.1–5.2).
    pub fn add_builtins(&mut self, ci: usize) {
        use crate::timeline::CronSpec;
        let builtins = [
            ("hourly", CronSpec::from_lists(&[5], &[], &[], &[], &[])),
            ("daily", CronSpec::from_lists(&[10], &[0], &[], &[], &[])),
            ("weekly", CronSpec::from_lists(&[15], &[0], &[], &[0], &[])),
        ];
        for (name, spec) in builtins {
            let spec = spec.expect("built-in schedules are valid");
            if self.clusters[ci].schedules.iter().all(|s| s.name != name) {
                self.clusters[ci].schedules.push(Schedule {
                    uuid: World::new_uuid(),
                    name: name.to_string(),
                    recurrence: Recurrence::Cron(spec),
                });
            }
        }
        let copy = |schedule: &str, count| PolicyCopy {
            schedule: schedule.to_string(),
            count,
            prefix: None,
            snapmirror_label: None,
            retention_period: None,
        };
        let policies = [
            (
                "default",
                vec![copy("hourly", 6), copy("daily", 2), copy("weekly", 2)],
            ),
            ("none", vec![]),
        ];
        for (name, copies) in policies {
            if self.clusters[ci].policies.iter().all(|p| p.name != name) {
                self.clusters[ci].policies.push(SnapshotPolicy {
                    uuid: World::new_uuid(),
                    name: name.to_string(),
                    comment: String::new(),
                    enabled: true,
                    copies,
                });
            }
        }
    }

    pub fn cluster_index(&self, name: &str) -> SimResult<usize> {
        self.clusters
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| SimError::not_found(codes::NOT_FOUND, name))
    }

    // ----- configuration-time and REST creation of containers -----

    pub fn add_svm(&mut self, ci: usize, name: &str) -> SimResult<String> {
        let c = &mut self.clusters[ci];
        if c.svms.iter().any(|s| s.name == name) {
            return Err(SimError::Duplicate {
                code: codes::DUPLICATE,
                target: name.to_string(),
                message: format!("duplicate entry: SVM \"{name}\" already exists"),
            });
        }
        let uuid = World::new_uuid();
        c.svms.push(Svm {
            uuid: uuid.clone(),
            name: name.to_string(),
        });
        Ok(uuid)
    }

    pub fn add_schedule(
        &mut self,
        ci: usize,
        name: &str,
        recurrence: Recurrence,
    ) -> SimResult<String> {
        let c = &mut self.clusters[ci];
        if c.schedules.iter().any(|s| s.name == name) {
            return Err(SimError::Duplicate {
                code: codes::DUPLICATE,
                target: "name".into(),
                message: format!("duplicate entry: schedule \"{name}\" already exists"),
            });
        }
        let uuid = World::new_uuid();
        c.schedules.push(Schedule {
            uuid: uuid.clone(),
            name: name.to_string(),
            recurrence,
        });
        Ok(uuid)
    }

    pub fn add_policy(
        &mut self,
        ci: usize,
        name: &str,
        comment: &str,
        copies: Vec<PolicyCopy>,
    ) -> SimResult<String> {
        let c = &mut self.clusters[ci];
        if c.policies.iter().any(|p| p.name == name) {
            return Err(SimError::Duplicate {
                code: 1_638_527,
                target: "name".into(),
                message: format!("Snapshot policy \"{name}\" already exists."),
            });
        }
        for copy in &copies {
            if c.schedules.iter().all(|s| s.name != copy.schedule) {
                return Err(SimError::NotFound {
                    code: 1_638_413,
                    target: format!("copies.schedule.name {}", copy.schedule),
                });
            }
            if let Some(problem) = copy
                .snapmirror_label
                .as_deref()
                .and_then(super::snapmirror_label_problem)
            {
                return Err(SimError::invalid("copies.snapmirror_label", problem));
            }
        }
        let uuid = World::new_uuid();
        c.policies.push(SnapshotPolicy {
            uuid: uuid.clone(),
            name: name.to_string(),
            comment: comment.to_string(),
            enabled: true,
            copies,
        });
        Ok(uuid)
    }

    pub fn add_license(&mut self, ci: usize, package: &str) {
        self.clusters[ci].licenses.insert(package.to_string());
    }

    pub fn licensed(&self, ci: usize, package: &str) -> bool {
        self.clusters[ci].licenses.contains(package)
    }

    pub fn svm_index(&self, ci: usize, name: &str) -> SimResult<usize> {
        self.clusters[ci]
            .svms
            .iter()
            .position(|s| s.name == name || s.uuid == name)
            .ok_or_else(|| SimError::not_found(2_621_462, format!("svm {name}")))
    }
}
