//! The `/simulator/v1` admin API: clock, faults, knobs and request counts, world-wide; and the
//! owners a snapshot of the answering cluster is held by.

use super::*;
use crate::sim::world::{Faults, Knobs, SettingError, MAX_ADVANCE_SECONDS};
use crate::sim::ClockError;

pub(super) async fn get_clock(State(sim): State<AppState>) -> ApiResult {
    let mode = match sim.clock() {
        ClockMode::Real => "real",
        ClockMode::Manual => "manual",
    };
    ok(json!({"now": sim.now().to_rfc3339(), "mode": mode}))
}

/// At most this many events in one advance answer (`"events": true`); the counts cover all.
pub(super) const MAX_ADVANCE_EVENTS: usize = 1_000;

pub(super) async fn advance_clock(State(sim): State<AppState>, body: Bytes) -> ApiResult {
    let b = parse_body(&body)?;
    let out_of_range = || {
        ApiError::invalid(
            "seconds",
            format!(
                "\"seconds\" must be an integer in 0 ..= {MAX_ADVANCE_SECONDS} (366 days) per call; \
                 advance several times for longer spans"
            ),
        )
    };
    let seconds = match b.get("seconds") {
        Some(v) => v.as_i64().ok_or_else(out_of_range)?,
        None => {
            return Err(ApiError::invalid(
                "seconds",
                "Missing value for required field \"seconds\".",
            ))
        }
    };
    let want_events = match b.get("events") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(v)) => *v,
        Some(_) => {
            return Err(ApiError::invalid(
                "events",
                "\"events\" must be true or false",
            ))
        }
    };
    let cap = if want_events { MAX_ADVANCE_EVENTS } else { 0 };
    let summary = sim.advance_summarized(seconds, cap).map_err(|e| match e {
        ClockError::Real => ApiError::new(409, codes::INVALID, e.to_string(), "clock"),
        ClockError::OutOfRange { .. } | ClockError::Overflow { .. } => out_of_range(),
    })?;
    let mut body = json!({
        "now": sim.now().to_rfc3339(),
        "advanced_seconds": seconds,
        "counts": {"taken": summary.taken, "deleted": summary.deleted, "skipped": summary.skipped},
    });
    if want_events {
        body["events"] = json!(summary.events);
        body["events_omitted"] = json!(summary.omitted);
    }
    ok(body)
}

pub(super) async fn get_faults(State(sim): State<AppState>) -> ApiResult {
    sim.with(|w| ok(json!(w.faults)))
}

/// `/api` requests answered over HTTP so far, by method (see [`crate::sim::server::RequestCounts`]).
pub(super) async fn get_requests(State(sim): State<AppState>) -> ApiResult {
    ok(sim.requests().to_json())
}

/// Applies a partial JSON update to knobs or faults: every key is checked on its own (so a type
/// error names its field), then the ranges of the result; nothing changes on any error.
fn patched<T>(
    current: &T,
    patch: &Value,
    check: impl Fn(&T) -> Result<(), SettingError>,
) -> Result<T, ApiError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let patch = patch
        .as_object()
        .ok_or_else(|| ApiError::invalid("body", "the body must be a JSON object"))?;
    let mut merged = json!(current);
    for (k, v) in patch {
        let mut one = json!(current);
        if let Some(m) = one.as_object_mut() {
            m.insert(k.clone(), v.clone());
        }
        serde_json::from_value::<T>(one).map_err(|e| ApiError::invalid(k, format!("{k}: {e}")))?;
        if let Some(m) = merged.as_object_mut() {
            m.insert(k.clone(), v.clone());
        }
    }
    let next: T =
        serde_json::from_value(merged).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    check(&next).map_err(|e| ApiError::invalid(e.field, e.to_string()))?;
    Ok(next)
}

pub(super) async fn set_faults(State(sim): State<AppState>, body: Bytes) -> ApiResult {
    let b = parse_body(&body)?;
    sim.with(|w| {
        w.faults = patched(&w.faults, &b, Faults::validate)?;
        ok(json!(w.faults))
    })
}

pub(super) async fn clear_faults(State(sim): State<AppState>) -> ApiResult {
    sim.with(|w| {
        w.faults = Default::default();
        ok(json!(w.faults))
    })
}

pub(super) async fn get_knobs(State(sim): State<AppState>) -> ApiResult {
    sim.with(|w| ok(json!(w.knobs)))
}

pub(super) async fn set_knobs(State(sim): State<AppState>, body: Bytes) -> ApiResult {
    let b = parse_body(&body)?;
    sim.with(|w| {
        w.knobs = patched(&w.knobs, &b, Knobs::validate)?;
        ok(json!(w.knobs))
    })
}

/// The volume (uuid or name) and snapshot (uuid or name) of an owners call, on the answering
/// cluster.
fn held_snapshot(
    w: &crate::sim::World,
    ci: usize,
    vol: &str,
    snap: &str,
) -> Result<(usize, usize), ApiError> {
    let vi = w
        .volume_index(ci, vol)
        .or_else(|_| w.volume_by_name(ci, vol))
        .map_err(|_| not_found("volume"))?;
    let si = w.snapshot_index(ci, vi, snap).map_err(|_| {
        ApiError::new(
            404,
            codes::SNAPSHOT_NOT_FOUND,
            "entry doesn't exist",
            "snapshot",
        )
    })?;
    Ok((vi, si))
}

fn render_owners(w: &crate::sim::World, ci: usize, vi: usize, si: usize) -> Value {
    let v = &w.clusters[ci].volumes[vi];
    let s = &v.snapshots[si];
    json!({
        "volume": {"uuid": v.uuid, "name": v.name},
        "snapshot": {"uuid": s.uuid, "name": s.name},
        "held_by": s.held_by,
        "owners": w.owners(ci, vi, si),
    })
}

/// `GET /simulator/v1/volumes/{volume}/snapshots/{snapshot}/owners`: the owners `owners` shows
/// and those the snapshot is held by (world file or the POST below).
pub(super) async fn get_owners(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path((vol, snap)): Path<(String, String)>,
) -> ApiResult {
    sim.with(|w| {
        let (vi, si) = held_snapshot(w, ci, &vol, &snap)?;
        ok(render_owners(w, ci, vi, si))
    })
}

/// `POST /simulator/v1/volumes/{volume}/snapshots/{snapshot}/owners` `{"owners": [...]}`: holds
/// the snapshot by exactly these ONTAP owners (`[]` releases it); clones' owners stay.
pub(super) async fn set_owners(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path((vol, snap)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let owners: Vec<String> = match b.get("owners") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|o| o.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::invalid("owners", "\"owners\" must be an array of strings"))?,
        Some(_) => {
            return Err(ApiError::invalid(
                "owners",
                "\"owners\" must be an array of strings",
            ))
        }
        None => {
            return Err(ApiError::invalid(
                "owners",
                "Missing value for required field \"owners\".",
            ))
        }
    };
    sim.with(|w| {
        let (vi, si) = held_snapshot(w, ci, &vol, &snap)?;
        w.hold_snapshot(ci, vi, si, owners)?;
        ok(render_owners(w, ci, vi, si))
    })
}

/// The `/simulator/v1` admin router (clock, faults, knobs): world-wide, whichever cluster's
/// listener it is mounted on; the owners calls act on that listener's cluster.
pub fn admin_router() -> Router<ClusterState> {
    Router::new()
        .route("/simulator/v1/clock", get(get_clock))
        .route("/simulator/v1/clock/advance", post(advance_clock))
        .route(
            "/simulator/v1/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .route("/simulator/v1/knobs", get(get_knobs).post(set_knobs))
        .route("/simulator/v1/requests", get(get_requests))
        .route(
            "/simulator/v1/volumes/{vol}/snapshots/{snap}/owners",
            get(get_owners).post(set_owners),
        )
}
