//! `/api/storage/volumes/{vol}/snapshots`: list, get, create, rename and delete snapshots.

use super::*;

pub(super) async fn list_snapshots(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path(vol): Path<String>,
    Query(q): Q,
) -> ApiResult {
    sim.with(|w| {
        let params = Params::new(q);
        let records = match (vol.as_str(), listed_volumes(w, ci, &params)) {
            ("*", Some(volumes)) => records_of(w, ci, volumes),
            _ => snapshot_records(w, ci, &vol)?,
        };
        let keys: &[&str] = if vol == "*" {
            &["uuid", "name", "volume"]
        } else {
            &["uuid", "name"]
        };
        ok(collection(
            records,
            &params,
            &format!("/api/storage/volumes/{vol}/snapshots"),
            keys,
        ))
    })
}

/// The volumes a `volume.uuid=a|b|…` filter names (plain uuids, no other operator), in the
/// cluster's order: a listing across volumes renders only theirs (the filter itself is
/// applied after, as to any listing). `None` without such a filter.
pub(super) fn listed_volumes(w: &World, ci: usize, params: &Params) -> Option<Vec<usize>> {
    let uuids: std::collections::HashSet<String> = uuid_list(params, "volume.uuid")?
        .iter()
        .map(|u| u.to_lowercase())
        .collect();
    Some(
        w.clusters[ci]
            .volumes
            .iter()
            .enumerate()
            .filter(|(_, v)| uuids.contains(v.uuid.as_str()))
            .map(|(vi, _)| vi)
            .collect(),
    )
}

/// Every snapshot of these volumes, rendered (their pins gathered volume by volume).
pub(super) fn records_of(w: &World, ci: usize, volumes: Vec<usize>) -> Vec<Value> {
    let mut pins = None;
    for &vi in &volumes {
        let p = w.pins(ci, Some(vi));
        match &mut pins {
            None => pins = Some(p),
            Some(all) => all.merge(p),
        }
    }
    let Some(pins) = pins else {
        return Vec::new();
    };
    volumes
        .into_iter()
        .flat_map(|vi| {
            let luns = w.volume_lun_bytes(ci, vi);
            (0..w.clusters[ci].volumes[vi].snapshots.len()).map(move |si| (vi, si, luns))
        })
        .map(|(vi, si, luns)| render_snapshot_with(w, &pins, luns, (ci, vi, si)))
        .collect()
}

/// Every snapshot of volume `vol` (a uuid, or `*` for all), rendered. One volume's listing
/// costs what that volume holds; `*` gathers the pins and the LUN bytes of every volume once.
pub(super) fn snapshot_records(w: &World, ci: usize, vol: &str) -> Result<Vec<Value>, ApiError> {
    if vol != "*" {
        let vi = w
            .volume_index(ci, vol)
            .map_err(|_| not_found("volume.uuid"))?;
        return Ok(records_of(w, ci, vec![vi]));
    }
    let (pins, bytes) = (w.pins(ci, None), w.lun_bytes_by_volume(ci));
    Ok(w.clusters[ci]
        .volumes
        .iter()
        .enumerate()
        .flat_map(|(vi, v)| {
            let luns = bytes.get(v.uuid.as_str()).copied().unwrap_or(0);
            (0..v.snapshots.len()).map(move |si| (vi, si, luns))
        })
        .map(|(vi, si, luns)| render_snapshot_with(w, &pins, luns, (ci, vi, si)))
        .collect())
}

/// Finds a snapshot by volume uuid (or `*`) and snapshot uuid.
pub(super) fn find_snapshot(
    w: &World,
    ci: usize,
    vol: &str,
    snap: &str,
) -> Result<(usize, usize), ApiError> {
    let c = &w.clusters[ci];
    let found = if vol == "*" {
        c.volumes.iter().enumerate().find_map(|(vi, v)| {
            let si = v.snapshots.iter().position(|s| s.uuid == snap)?;
            Some((vi, si))
        })
    } else {
        let vi = w
            .volume_index(ci, vol)
            .map_err(|_| not_found("volume.uuid"))?;
        let si = c.volumes[vi].snapshots.iter().position(|s| s.uuid == snap);
        si.map(|si| (vi, si))
    };
    if let Some(at) = found {
        return Ok(at);
    }
    Err(ApiError::new(
        404,
        codes::SNAPSHOT_NOT_FOUND,
        "entry doesn't exist",
        "uuid",
    ))
}

pub(super) async fn get_snapshot(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path((vol, snap)): Path<(String, String)>,
    Query(q): Q,
) -> ApiResult {
    sim.with(|w| {
        let (vi, si) = find_snapshot(w, ci, &vol, &snap)?;
        instance(render_snapshot(w, ci, vi, si), q, &["uuid", "name"])
    })
}

pub(super) async fn post_snapshot(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path(vol): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let params = Params::new(q);
    let name = required(&b, "name")?;
    let comment = optional(&b, "comment")?;
    let label = optional(&b, "snapmirror_label")?;
    sim.with(|w| {
        let vi = w
            .volume_index(ci, &vol)
            .map_err(|_| not_found("volume.uuid"))?;
        let svm = svm_of(w, ci, &w.clusters[ci].volumes[vi].svm.clone());
        mutate(
            w,
            ci,
            &params,
            format!("POST /api/storage/volumes/{vol}/snapshots/?name={name}"),
            svm,
            |w| {
                let uuid = w.create_labelled_snapshot(ci, vi, &name, comment, label)?;
                let si = w.snapshot_index(ci, vi, &uuid)?;
                // ONTAP's Location for a new snapshot is a query on the collection (reference
                // notes §6.1); a GET on it answers the snapshot as a one-record collection.
                let vol_uuid = &w.clusters[ci].volumes[vi].uuid;
                Done::created(
                    format!(
                        "/api/storage/volumes/{vol_uuid}/snapshots/?name={}",
                        encode(&name)
                    ),
                    render_snapshot(w, ci, vi, si),
                )
            },
        )
    })
}

pub(super) async fn patch_snapshot(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path((vol, snap)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let (name, comment) = (optional(&b, "name")?, optional(&b, "comment")?);
    let label = optional(&b, "snapmirror_label")?;
    sim.with(|w| {
        let (vi, si) = find_snapshot(w, ci, &vol, &snap)?;
        w.modify_snapshot(ci, vi, si, name.as_deref(), comment, label)?;
        ok(json!({}))
    })
}

pub(super) async fn delete_snapshot(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path((vol, snap)): Path<(String, String)>,
    Query(q): Q,
) -> ApiResult {
    let params = Params::new(q);
    sim.with(|w| {
        let (vi, si) = find_snapshot(w, ci, &vol, &snap)?;
        let vol_uuid = w.clusters[ci].volumes[vi].uuid.clone();
        let svm = svm_of(w, ci, &w.clusters[ci].volumes[vi].svm.clone());
        mutate(
            w,
            ci,
            &params,
            format!("DELETE /api/storage/volumes/{vol_uuid}/snapshots/{snap}"),
            svm,
            |w| {
                w.delete_snapshot(ci, vi, si)?;
                Done::ok()
            },
        )
    })
}
