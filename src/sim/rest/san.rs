//! `/api/storage/luns` and `/api/protocols/san`: LUNs (and LUN clones), igroups and LUN maps.

use super::*;

pub(super) async fn list_luns(State(st): State<ClusterState>, Query(q): Q) -> ApiResult {
    list_all(&st, q, &LUNS)
}

pub(super) async fn get_lun(
    State(st): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    get_one(&st, q, &LUNS, |w, ci| {
        w.clusters[ci]
            .lun_by_uuid(&uuid)
            .ok_or_else(|| ApiError::new(404, codes::LUN_NOT_FOUND, "entry doesn't exist", "uuid"))
    })
}

pub(super) async fn post_lun(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let params = Params::new(q);
    let name = required(&b, "name")?;
    let svm = either(&b, "svm.name", "svm.uuid")?
        .ok_or_else(|| ApiError::invalid("svm", "Missing value for required field \"svm\"."))?;
    let clone_name = optional(&b, "clone.source.name")?;
    let clone_uuid = optional(&b, "clone.source.uuid")?;
    let os_type = optional(&b, "os_type")?;
    let size = optional_u64(&b, "space.size")?;
    let is_clone = clone_name.is_some() || clone_uuid.is_some();
    if is_clone && (os_type.is_some() || size.is_some()) {
        return Err(ApiError::new(
            400,
            5_374_883,
            "The \"os_type\" and \"space.size\" fields cannot be specified when cloning a LUN.",
            "os_type",
        ));
    }
    sim.with(|w| {
        let svm_obj = svm_of(w, ci, &svm)
            .or_else(|| w.clusters[ci].svms.iter().find(|s| s.uuid == svm).cloned());
        mutate(
            w,
            ci,
            &params,
            "POST /api/storage/luns".into(),
            svm_obj,
            |w| {
                let source = match (&clone_name, &clone_uuid) {
                    (Some(n), _) => Some(n.clone()),
                    (None, Some(u)) => {
                        let li = w.lun_index(ci, u)?;
                        Some(w.clusters[ci].luns[li].name.clone())
                    }
                    (None, None) => None,
                };
                let uuid = if let Some(source) = source {
                    w.clone_lun_flexclone(ci, &source, &name)?
                } else {
                    let os_type = os_type.clone().ok_or_else(|| SimError::Invalid {
                        target: "os_type".into(),
                        message: "Missing value for required field \"os_type\".".into(),
                    })?;
                    let size = size.ok_or_else(|| SimError::Invalid {
                        target: "space.size".into(),
                        message: "Missing value for required field \"space.size\".".into(),
                    })?;
                    w.create_lun(ci, &name, size, &os_type)?
                };
                let li = w.lun_index(ci, &uuid)?;
                Done::created(format!("/api/storage/luns/{uuid}"), render_lun(w, ci, li))
            },
        )
    })
}

pub(super) async fn delete_lun(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let params = Params::new(q);
    let allow = params.flag("allow_delete_while_mapped", false);
    sim.with(|w| {
        let li = w.clusters[ci].lun_by_uuid(&uuid).ok_or_else(|| {
            ApiError::new(404, codes::LUN_NOT_FOUND, "entry doesn't exist", "uuid")
        })?;
        let svm = svm_of(w, ci, &w.clusters[ci].luns[li].svm.clone());
        mutate(
            w,
            ci,
            &params,
            format!("DELETE /api/storage/luns/{uuid}"),
            svm,
            |w| {
                w.delete_lun(ci, li, allow)?;
                Done::ok()
            },
        )
    })
}

pub(super) async fn list_igroups(State(st): State<ClusterState>, Query(q): Q) -> ApiResult {
    list_all(&st, q, &IGROUPS)
}

pub(super) async fn get_igroup(
    State(st): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    get_one(&st, q, &IGROUPS, |w, ci| {
        position(w.clusters[ci].igroups.iter().position(|g| g.uuid == uuid))
    })
}

pub(super) async fn post_igroup(
    State(ClusterState { sim, ci }): State<ClusterState>,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let name = required(&b, "name")?;
    let svm = either(&b, "svm.name", "svm.uuid")?
        .ok_or_else(|| ApiError::invalid("svm", "Missing value for required field \"svm\"."))?;
    let os_type = required(&b, "os_type")?;
    let protocol = optional(&b, "protocol")?.unwrap_or_else(|| "mixed".into());
    let initiators = match optional_as(&b, "initiators", "an array", |v| v.as_array().cloned())? {
        None => Vec::new(),
        Some(items) => items
            .iter()
            .map(|i| match i.get("name") {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(ApiError::invalid(
                    "initiators.name",
                    "Each initiator needs a string \"name\".",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    sim.with(|w| {
        let uuid = w.create_igroup(ci, &svm, &name, &os_type, &protocol, initiators)?;
        let r = render_igroup(w, ci, w.clusters[ci].igroups.len() - 1);
        Ok(with_location(
            hal(
                StatusCode::CREATED,
                json!({"num_records": 1, "records": [r]}),
            ),
            Some(format!("/api/protocols/san/igroups/{uuid}")),
        ))
    })
}

pub(super) async fn list_lun_maps(State(st): State<ClusterState>, Query(q): Q) -> ApiResult {
    list_all(&st, q, &LUN_MAPS)
}

pub(super) async fn get_lun_map(
    State(st): State<ClusterState>,
    Path((lun, igroup)): Path<(String, String)>,
    Query(q): Q,
) -> ApiResult {
    get_one(&st, q, &LUN_MAPS, |w, ci| {
        let maps = &w.clusters[ci].lun_maps;
        maps.iter()
            .position(|m| m.lun_uuid == lun && m.igroup_uuid == igroup)
            .ok_or_else(|| {
                ApiError::new(404, codes::MAP_NOT_FOUND, "entry doesn't exist", "lun.uuid")
            })
    })
}

pub(super) async fn post_lun_map(
    State(ClusterState { sim, ci }): State<ClusterState>,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let lun = either(&b, "lun.uuid", "lun.name")?
        .ok_or_else(|| ApiError::invalid("lun", "Missing value for required field \"lun\"."))?;
    let igroup = either(&b, "igroup.uuid", "igroup.name")?.ok_or_else(|| {
        ApiError::invalid("igroup", "Missing value for required field \"igroup\".")
    })?;
    sim.with(|w| {
        w.map_lun(ci, &lun, &igroup)?;
        let i = w.clusters[ci].lun_maps.len() - 1;
        let m = &w.clusters[ci].lun_maps[i];
        let href = format!(
            "/api/protocols/san/lun-maps/{}/{}",
            m.lun_uuid, m.igroup_uuid
        );
        let r = render_lun_map(w, ci, i);
        Ok(with_location(
            hal(
                StatusCode::CREATED,
                json!({"num_records": 1, "records": [r]}),
            ),
            Some(href),
        ))
    })
}

pub(super) async fn delete_lun_map(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path((lun, igroup)): Path<(String, String)>,
) -> ApiResult {
    sim.with(|w| {
        w.unmap_lun(ci, &lun, &igroup)?;
        ok(json!({}))
    })
}
