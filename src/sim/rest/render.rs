//! JSON rendering of world objects as ONTAP answers them (`_links`, nested references).

use super::*;

pub(super) fn svm_ref(w: &World, ci: usize, name: &str) -> Value {
    let uuid = w.clusters[ci]
        .svms
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.uuid.clone())
        .unwrap_or_default();
    json!({"name": name, "uuid": uuid, "_links": links(&format!("/api/svm/svms/{uuid}"))})
}

pub(super) fn svm_of(w: &World, ci: usize, name: &str) -> Option<Svm> {
    w.clusters[ci].svms.iter().find(|s| s.name == name).cloned()
}

pub(super) fn render_cluster(w: &World, ci: usize) -> Value {
    let c = &w.clusters[ci];
    let mut parts = c.version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (gen, major, minor) = (
        parts.next().unwrap_or(9),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    json!({
        "name": c.name, "uuid": c.uuid,
        "version": {"full": format!("NetApp Release {} (snapwarden simulator)", c.version), "generation": gen, "major": major, "minor": minor},
        "timezone": {"name": c.tz.name()},
        "_links": links("/api/cluster"),
    })
}

pub(super) fn render_volume(w: &World, ci: usize, vi: usize) -> Value {
    let c = &w.clusters[ci];
    let v = &c.volumes[vi];
    let policy_uuid = c
        .policies
        .iter()
        .find(|p| p.name == v.snapshot_policy)
        .map(|p| p.uuid.clone());
    let mut clone = json!({"is_flexclone": v.clone_parent.is_some(), "has_flexclone": !c.clone_children_of(&v.uuid).is_empty()});
    if let Some(p) = &v.clone_parent {
        let parent = w
            .volume_index(ci, &p.volume_uuid)
            .ok()
            .map(|pi| &c.volumes[pi]);
        let snap = parent.and_then(|x| x.snapshots.iter().find(|s| s.uuid == p.snapshot_uuid));
        clone["parent_volume"] =
            json!({"uuid": p.volume_uuid, "name": parent.map(|x| x.name.clone())});
        clone["parent_snapshot"] =
            json!({"uuid": p.snapshot_uuid, "name": snap.map(|s| s.name.clone())});
        clone["split_initiated"] = json!(false);
    }
    json!({
        "uuid": v.uuid, "name": v.name, "svm": svm_ref(w, ci, &v.svm), "size": v.size,
        "state": "online", "style": "flexvol", "type": "rw",
        "create_time": w.local(ci, v.create_time).to_rfc3339(),
        "snapshot_policy": {"name": v.snapshot_policy, "uuid": policy_uuid},
        "snapshot_count": v.snapshots.len(),
        "scheduled_snapshot_naming_scheme": v.naming.as_str(),
        "snapshot_locking_enabled": v.snapshot_locking,
        "space": render_volume_space(w, ci, vi),
        "clone": clone,
        "_links": links(&format!("/api/storage/volumes/{}", v.uuid)),
    })
}

/// `space.snapshot` of a volume: reserve, what snapshots use of it, and autodelete (both the
/// deprecated `autodelete_enabled`/`autodelete_trigger` and the `autodelete` object, as ONTAP
/// 9.13 and later answer).
fn render_volume_space(w: &World, ci: usize, vi: usize) -> Value {
    let v = &w.clusters[ci].volumes[vi];
    let space = w.snapshot_space(ci, vi);
    let used_percent = space
        .used
        .saturating_mul(100)
        .checked_div(space.reserve_size)
        .unwrap_or(0);
    json!({"snapshot": {
        "reserve_percent": v.snapshot_reserve_percent,
        "reserve_size": space.reserve_size,
        "reserve_available": space.reserve_size.saturating_sub(space.used),
        "used": space.used,
        "space_used_percent": used_percent,
        "autodelete_enabled": v.autodelete.enabled,
        "autodelete_trigger": v.autodelete.trigger,
        "autodelete": {
            "enabled": v.autodelete.enabled,
            "commitment": v.autodelete.commitment,
            "trigger": v.autodelete.trigger,
            "delete_order": "oldest_first",
            "defer_delete": "user_created",
        },
    }})
}

pub(super) fn render_snapshot(w: &World, ci: usize, vi: usize, si: usize) -> Value {
    let luns = w.volume_lun_bytes(ci, vi);
    render_snapshot_with(w, &w.pins(ci, Some(vi)), luns, (ci, vi, si))
}

/// [`render_snapshot`] with the cluster's clone pins and the volume's LUN bytes gathered once
/// for a whole listing.
pub(super) fn render_snapshot_with(
    w: &World,
    pins: &Pins<'_>,
    luns: u64,
    (ci, vi, si): (usize, usize, usize),
) -> Value {
    let v = &w.clusters[ci].volumes[vi];
    let s = &v.snapshots[si];
    let mut r = json!({
        "uuid": s.uuid, "name": s.name,
        "create_time": w.local(ci, s.create_time).to_rfc3339(),
        "size": w.snapshot_size_over(ci, vi, si, luns), "state": "valid",
        "volume": {"uuid": v.uuid, "name": v.name, "_links": links(&format!("/api/storage/volumes/{}", v.uuid))},
        "svm": svm_ref(w, ci, &v.svm),
        "_links": links(&format!("/api/storage/volumes/{}/snapshots/{}", v.uuid, s.uuid)),
    });
    if let Some(c) = &s.comment {
        r["comment"] = json!(c);
    }
    if let Some(label) = &s.snapmirror_label {
        r["snapmirror_label"] = json!(label);
    }
    let owners = w.owners_with(pins, (ci, vi, si));
    if !owners.is_empty() {
        r["owners"] = json!(owners);
    }
    if let Some(t) = s.snaplock_expiry {
        let at = w.local(ci, t).to_rfc3339();
        r["snaplock_expiry_time"] = json!(at);
        r["snaplock"] = json!({"expiry_time": at, "expired": w.now() >= t});
    }
    r
}

pub(super) fn render_lun(w: &World, ci: usize, li: usize) -> Value {
    let c = &w.clusters[ci];
    let l = &c.luns[li];
    let vol = w
        .volume_index(ci, &l.volume_uuid)
        .ok()
        .map(|vi| &c.volumes[vi]);
    let maps: Vec<Value> = c
        .lun_maps_of(&l.uuid)
        .iter()
        .map(|(igroup, number)| {
            let g = c.igroups.iter().find(|g| g.uuid == *igroup);
            json!({"igroup": {"uuid": igroup, "name": g.map(|g| g.name.clone())}, "logical_unit_number": number})
        })
        .collect();
    let mut r = json!({
        "uuid": l.uuid, "name": l.name,
        "location": {"logical_unit": l.name.rsplit('/').next(), "volume": {"uuid": l.volume_uuid, "name": vol.map(|v| v.name.clone())}},
        "svm": svm_ref(w, ci, &l.svm), "os_type": l.os_type, "class": "regular",
        "serial_number": l.serial_number, "create_time": w.local(ci, l.create_time).to_rfc3339(),
        "enabled": true,
        "status": {"state": "online", "container_state": "online", "read_only": false, "mapped": !maps.is_empty()},
        "space": {"size": l.size, "used": 0, "guarantee": {"requested": false, "reserved": false}},
        "lun_maps": maps,
        "_links": links(&format!("/api/storage/luns/{}", l.uuid)),
    });
    if l.created_as_clone {
        r["clone"] = json!({"created_as_clone": true});
    }
    r
}

pub(super) fn render_schedule(w: &World, ci: usize, i: usize) -> Value {
    let c = &w.clusters[ci];
    let s = &c.schedules[i];
    let mut r = json!({
        "uuid": s.uuid, "name": s.name, "scope": "cluster",
        "cluster": {"name": c.name, "uuid": c.uuid},
        "_links": links(&format!("/api/cluster/schedules/{}", s.uuid)),
    });
    match &s.recurrence {
        Recurrence::Cron(spec) => {
            r["type"] = json!("cron");
            let mut cron = serde_json::Map::new();
            for (field, key) in [
                (CronField::Minute, "minutes"),
                (CronField::Hour, "hours"),
                (CronField::DayOfMonth, "days"),
                (CronField::DayOfWeek, "weekdays"),
                (CronField::Month, "months"),
            ] {
                let list = spec.list(field);
                if !list.is_empty() || field == CronField::Minute {
                    let list = if list.is_empty() {
                        (0..60).collect()
                    } else {
                        list
                    };
                    cron.insert(key.into(), json!(list));
                }
            }
            r["cron"] = Value::Object(cron);
        }
        Recurrence::Interval { every, .. } => {
            r["type"] = json!("interval");
            r["interval"] = json!(format_iso8601_duration(*every));
        }
    }
    r
}

pub(super) fn render_policy(w: &World, ci: usize, i: usize) -> Value {
    let c = &w.clusters[ci];
    let p = &c.policies[i];
    let copies: Vec<Value> = p
        .copies
        .iter()
        .map(|copy| {
            let uuid = c.schedules.iter().find(|s| s.name == copy.schedule).map(|s| s.uuid.clone());
            let mut r = json!({"schedule": {"name": copy.schedule, "uuid": uuid}, "count": copy.count, "prefix": copy.effective_prefix()});
            if let Some(label) = &copy.snapmirror_label {
                r["snapmirror_label"] = json!(label);
            }
            if let Some(period) = copy.retention_period {
                r["retention_period"] = json!(crate::domain::format_iso8601_duration(period));
            }
            r
        })
        .collect();
    json!({
        "uuid": p.uuid, "name": p.name, "comment": p.comment, "enabled": p.enabled, "scope": "cluster",
        "copies": copies,
        "_links": links(&format!("/api/storage/snapshot-policies/{}", p.uuid)),
    })
}

/// License packages the simulator knows; installed ones are `compliant`, others `unlicensed`.
pub(super) const PACKAGES: &[(&str, &str)] = &[
    ("base", "Cluster Base License"),
    ("nfs", "NFS License"),
    ("cifs", "CIFS License"),
    ("iscsi", "iSCSI License"),
    ("fcp", "FCP License"),
    ("snaprestore", "SnapRestore License"),
    ("snapmirror", "SnapMirror License"),
    ("flexclone", "FlexClone License"),
    ("snapvault", "SnapVault License"),
];

pub(super) fn render_license(w: &World, ci: usize, name: &str, description: &str) -> Value {
    let c = &w.clusters[ci];
    let installed = c.licenses.contains(name);
    let licenses = if installed {
        json!([{"owner": c.name, "serial_number": format!("1-80-{:06}", name.len() * 1000), "active": true, "evaluation": false, "installed_license": "Core Bundle", "compliance": {"state": "compliant"}}])
    } else {
        json!([])
    };
    json!({
        "name": name, "description": description, "scope": "cluster",
        "state": if installed { "compliant" } else { "unlicensed" },
        "licenses": licenses,
        "_links": links(&format!("/api/cluster/licensing/licenses/{name}")),
    })
}

pub(super) fn render_svm(w: &World, ci: usize, i: usize) -> Value {
    let s = &w.clusters[ci].svms[i];
    json!({"uuid": s.uuid, "name": s.name, "state": "running", "subtype": "default", "_links": links(&format!("/api/svm/svms/{}", s.uuid))})
}

pub(super) fn render_igroup(w: &World, ci: usize, i: usize) -> Value {
    let g = &w.clusters[ci].igroups[i];
    json!({
        "uuid": g.uuid, "name": g.name, "svm": svm_ref(w, ci, &g.svm), "os_type": g.os_type, "protocol": g.protocol,
        "initiators": g.initiators.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
        "_links": links(&format!("/api/protocols/san/igroups/{}", g.uuid)),
    })
}

pub(super) fn render_lun_map(w: &World, ci: usize, i: usize) -> Value {
    let c = &w.clusters[ci];
    let m = &c.lun_maps[i];
    let lun = c.lun_by_uuid(&m.lun_uuid).map(|li| &c.luns[li]);
    let g = c.igroups.iter().find(|g| g.uuid == m.igroup_uuid);
    json!({
        "lun": {"uuid": m.lun_uuid, "name": lun.map(|l| l.name.clone())},
        "igroup": {"uuid": m.igroup_uuid, "name": g.map(|g| g.name.clone())},
        "svm": lun.map(|l| svm_ref(w, ci, &l.svm)),
        "logical_unit_number": m.logical_unit_number,
        "_links": links(&format!("/api/protocols/san/lun-maps/{}/{}", m.lun_uuid, m.igroup_uuid)),
    })
}

pub(super) fn render_job(w: &World, ci: usize, uuid: &str) -> SimResult<Value> {
    let j = w.job(ci, uuid)?;
    let state = j.state(w.now());
    let mut r = json!({
        "uuid": j.uuid, "description": j.description, "state": state.as_str(),
        "start_time": w.local(ci, j.start).to_rfc3339(),
        "_links": links(&format!("/api/cluster/jobs/{}", j.uuid)),
    });
    match (state, &j.outcome) {
        (JobState::Running, _) => {
            r["message"] = json!("Job is running.");
            r["code"] = json!(0);
        }
        (_, Ok(())) => {
            r["message"] = json!("success");
            r["code"] = json!(0);
            r["end_time"] = json!(w.local(ci, j.end).to_rfc3339());
        }
        (_, Err((code, message))) => {
            r["message"] = json!(message);
            r["code"] = json!(code);
            r["error"] = json!({"code": code.to_string(), "message": message});
            r["end_time"] = json!(w.local(ci, j.end).to_rfc3339());
        }
    }
    if let Some(svm) = &j.svm {
        r["svm"] = json!({"name": svm.name, "uuid": svm.uuid});
    }
    Ok(r)
}
