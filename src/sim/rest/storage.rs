//! `/api/svm` and `/api/storage`: SVMs, volumes (with SnapRestore and FlexClone) and snapshot policies.

use super::*;

pub(super) async fn list_svms(State(st): State<ClusterState>, Query(q): Q) -> ApiResult {
    list_all(&st, q, &SVMS)
}

pub(super) async fn get_svm(
    State(st): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    get_one(&st, q, &SVMS, |w, ci| {
        position(w.clusters[ci].svms.iter().position(|s| s.uuid == uuid))
    })
}

pub(super) async fn list_volumes(State(st): State<ClusterState>, Query(q): Q) -> ApiResult {
    list_all(&st, q, &VOLUMES)
}

pub(super) async fn get_volume(
    State(st): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    get_one(&st, q, &VOLUMES, |w, ci| {
        w.volume_index(ci, &uuid).map_err(|_| not_found("uuid"))
    })
}

pub(super) async fn post_volume(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let params = Params::new(q);
    let name = required(&b, "name")?;
    let svm = either(&b, "svm.name", "svm.uuid")?
        .ok_or_else(|| ApiError::invalid("svm", "Missing value for required field \"svm\"."))?;
    let flexclone = optional_bool(&b, "clone.is_flexclone")?.unwrap_or(false);
    let parent = either(&b, "clone.parent_volume.name", "clone.parent_volume.uuid")?;
    let parent_snapshot = either(
        &b,
        "clone.parent_snapshot.name",
        "clone.parent_snapshot.uuid",
    )?;
    let size = optional_u64(&b, "size")?.unwrap_or(20 << 30);
    let policy = optional(&b, "snapshot_policy.name")?.unwrap_or_else(|| "default".into());
    sim.with(|w| {
        let svm_obj = svm_of(w, ci, &svm)
            .or_else(|| w.clusters[ci].svms.iter().find(|s| s.uuid == svm).cloned());
        mutate(
            w,
            ci,
            &params,
            "POST /api/storage/volumes".into(),
            svm_obj,
            |w| {
                let uuid = if flexclone {
                    let parent = parent.as_deref().ok_or_else(|| SimError::Invalid {
                        target: "clone.parent_volume".into(),
                        message: "Missing value for required field \"clone.parent_volume\".".into(),
                    })?;
                    w.clone_volume(ci, &svm, &name, parent, parent_snapshot.as_deref())?
                } else {
                    w.create_volume(ci, &svm, &name, size, &policy)?
                };
                let vi = w.volume_index(ci, &uuid)?;
                Done::created(
                    format!("/api/storage/volumes/{uuid}"),
                    render_volume(w, ci, vi),
                )
            },
        )
    })
}

pub(super) async fn patch_volume(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let params = Params::new(q);
    let restore = |key: &str| -> Result<Option<String>, ApiError> {
        match params.get(&format!("restore_to.{key}")) {
            Some(v) => Ok(Some(v.to_string())),
            None => optional(&b, &format!("restore_to.{key}")),
        }
    };
    let snap = match restore("snapshot.name")? {
        Some(s) => Some(s),
        None => restore("snapshot.uuid")?,
    };
    let (path, restore_path) = (restore("path")?, restore("restore_path")?);
    let policy = optional(&b, "snapshot_policy.name")?;
    let split = optional_bool(&b, "clone.split_initiated")?;
    let dependency = optional_bool(&b, "snapshot_clone_dependency")?;
    let settings = VolumeSettingsPatch::parse(&b)?;
    sim.with(|w| {
        let vi = w.volume_index(ci, &uuid).map_err(|_| not_found("uuid"))?;
        let svm = svm_of(w, ci, &w.clusters[ci].volumes[vi].svm.clone());
        mutate(w, ci, &params, format!("PATCH /api/storage/volumes/{uuid}"), svm, |w| {
            if let Some(snap) = &snap {
                let (path, restore_path) = match (&path, &restore_path) {
                    (Some(p), Some(r)) => (p.clone(), r.clone()),
                    _ => return Err(SimError::Invalid { target: "restore_to.path".into(), message: "restore_to.path and restore_to.restore_path are required for a single-file restore in this simulator.".into() }),
                };
                w.clone_lun_snaprestore(ci, vi, snap, &path, &restore_path)?;
            }
            if let Some(policy) = &policy {
                w.set_volume_policy(ci, vi, policy)?;
            }
            if split == Some(true) {
                w.split_clone(ci, vi)?;
            }
            if let Some(dep) = dependency {
                w.clusters[ci].volumes[vi].snapshot_clone_dependency = dep;
            }
            settings.apply(&mut w.clusters[ci].volumes[vi]);
            Done::ok()
        })
    })
}

/// The volume settings a PATCH may change: `space.snapshot.autodelete.{enabled,commitment,
/// trigger}` (and the older `space.snapshot.autodelete_enabled`), `space.snapshot.reserve_percent`
/// and `scheduled_snapshot_naming_scheme`; each value checked before anything changes.
struct VolumeSettingsPatch {
    enabled: Option<bool>,
    commitment: Option<String>,
    trigger: Option<String>,
    reserve_percent: Option<u8>,
    naming: Option<NamingScheme>,
}

impl VolumeSettingsPatch {
    fn parse(b: &Value) -> Result<VolumeSettingsPatch, ApiError> {
        let one_of = |key: &str, allowed: &[&str]| -> Result<Option<String>, ApiError> {
            match optional(b, key)? {
                Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::invalid(
                    key,
                    format!("\"{v}\" is not one of {}.", allowed.join(", ")),
                )),
                v => Ok(v),
            }
        };
        let reserve_percent = match optional_u64(b, "space.snapshot.reserve_percent")? {
            Some(p) if p > 90 => {
                return Err(ApiError::invalid(
                    "space.snapshot.reserve_percent",
                    format!("{p} is out of range: at most 90."),
                ))
            }
            p => p.and_then(|p| u8::try_from(p).ok()),
        };
        let naming = one_of(
            "scheduled_snapshot_naming_scheme",
            &["create_time", "ordinal"],
        )?
        .and_then(|n| NamingScheme::parse(&n));
        Ok(VolumeSettingsPatch {
            enabled: match optional_bool(b, "space.snapshot.autodelete.enabled")? {
                Some(e) => Some(e),
                None => optional_bool(b, "space.snapshot.autodelete_enabled")?,
            },
            commitment: one_of(
                "space.snapshot.autodelete.commitment",
                AUTODELETE_COMMITMENTS,
            )?,
            trigger: one_of("space.snapshot.autodelete.trigger", AUTODELETE_TRIGGERS)?,
            reserve_percent,
            naming,
        })
    }

    fn apply(self, v: &mut crate::sim::world::Volume) {
        if let Some(e) = self.enabled {
            v.autodelete.enabled = e;
        }
        if let Some(c) = self.commitment {
            v.autodelete.commitment = c;
        }
        if let Some(t) = self.trigger {
            v.autodelete.trigger = t;
        }
        if let Some(p) = self.reserve_percent {
            v.snapshot_reserve_percent = p;
        }
        if let Some(n) = self.naming {
            v.naming = n;
        }
    }
}

pub(super) async fn delete_volume(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let params = Params::new(q);
    sim.with(|w| {
        let vi = w.volume_index(ci, &uuid).map_err(|_| not_found("uuid"))?;
        let svm = svm_of(w, ci, &w.clusters[ci].volumes[vi].svm.clone());
        mutate(
            w,
            ci,
            &params,
            format!("DELETE /api/storage/volumes/{uuid}"),
            svm,
            |w| {
                w.delete_volume(ci, vi)?;
                Done::ok()
            },
        )
    })
}

// ----- handlers: snapshot policies -----

pub(super) async fn list_policies(State(st): State<ClusterState>, Query(q): Q) -> ApiResult {
    list_all(&st, q, &POLICIES)
}

pub(super) async fn get_policy(
    State(st): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    get_one(&st, q, &POLICIES, |w, ci| {
        position(w.clusters[ci].policies.iter().position(|p| p.uuid == uuid))
    })
}

pub(super) async fn post_policy(
    State(ClusterState { sim, ci }): State<ClusterState>,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let name = required(&b, "name")?;
    let comment = optional(&b, "comment")?.unwrap_or_default();
    let enabled = optional_bool(&b, "enabled")?;
    let mut copies = Vec::new();
    for c in b
        .get("copies")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let schedule = required(&c, "schedule.name")?;
        let count = optional_u64(&c, "count")?.ok_or_else(|| {
            ApiError::new(
                400,
                1_638_407,
                "Count is required for each schedule.",
                "copies.count",
            )
        })?;
        // ONTAP keeps at most 1023 snapshots per volume (reference notes §2.1).
        let count = u32::try_from(count)
            .ok()
            .filter(|n| *n <= 1023)
            .ok_or_else(|| {
                ApiError::invalid(
                    "copies.count",
                    format!("Count {count} is out of range: at most 1023."),
                )
            })?;
        copies.push(PolicyCopy {
            schedule,
            count,
            prefix: optional(&c, "prefix")?,
            snapmirror_label: optional(&c, "snapmirror_label")?,
            retention_period: optional_duration(&c, "retention_period")?,
        });
    }
    sim.with(|w| {
        let uuid = w.add_policy(ci, &name, &comment, copies)?;
        if enabled == Some(false) {
            if let Some(p) = w.clusters[ci].policies.last_mut() {
                p.enabled = false;
            }
        }
        let r = render_policy(w, ci, w.clusters[ci].policies.len() - 1);
        Ok(with_location(
            hal(
                StatusCode::CREATED,
                json!({"num_records": 1, "records": [r]}),
            ),
            Some(format!("/api/storage/snapshot-policies/{uuid}")),
        ))
    })
}
