//! The `/simulator/v1` admin API: clock, faults and knobs, world-wide.

use super::*;

pub(super) async fn get_clock(State(sim): State<AppState>) -> ApiResult {
    let mode = match sim.clock() {
        ClockMode::Real => "real",
        ClockMode::Manual => "manual",
    };
    ok(json!({"now": sim.now().to_rfc3339(), "mode": mode}))
}

pub(super) async fn advance_clock(State(sim): State<AppState>, body: Bytes) -> ApiResult {
    let b = parse_body(&body)?;
    let seconds = b
        .get("seconds")
        .and_then(Value::as_i64)
        .filter(|s| *s >= 0)
        .ok_or_else(|| {
            ApiError::invalid("seconds", "\"seconds\" must be a non-negative integer")
        })?;
    let events = sim
        .advance(chrono::TimeDelta::seconds(seconds))
        .map_err(|e| ApiError::new(409, codes::INVALID, e.to_string(), "clock"))?;
    let taken: Vec<_> = events.iter().filter(|e| e.kind == "taken").collect();
    ok(json!({"now": sim.now().to_rfc3339(), "snapshots": taken, "events": events}))
}

pub(super) async fn get_faults(State(sim): State<AppState>) -> ApiResult {
    sim.with(|w| ok(json!(w.faults)))
}

pub(super) async fn set_faults(State(sim): State<AppState>, body: Bytes) -> ApiResult {
    let b = parse_body(&body)?;
    sim.with(|w| {
        let mut merged = json!(w.faults);
        if let (Some(m), Some(patch)) = (merged.as_object_mut(), b.as_object()) {
            for (k, v) in patch {
                m.insert(k.clone(), v.clone());
            }
        }
        w.faults = serde_json::from_value(merged)
            .map_err(|e| ApiError::invalid("faults", e.to_string()))?;
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
        let mut merged = json!(w.knobs);
        if let (Some(m), Some(patch)) = (merged.as_object_mut(), b.as_object()) {
            for (k, v) in patch {
                m.insert(k.clone(), v.clone());
            }
        }
        w.knobs = serde_json::from_value(merged)
            .map_err(|e| ApiError::invalid("knobs", e.to_string()))?;
        ok(json!(w.knobs))
    })
}

/// The `/simulator/v1` admin router (clock, faults, knobs): world-wide, whichever cluster's
/// listener it is mounted on.
pub fn admin_router() -> Router<ClusterState> {
    Router::new()
        .route("/simulator/v1/clock", get(get_clock))
        .route("/simulator/v1/clock/advance", post(advance_clock))
        .route(
            "/simulator/v1/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .route("/simulator/v1/knobs", get(get_knobs).post(set_knobs))
}
