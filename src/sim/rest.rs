//! HTTP handlers: the ONTAP-shaped `/api` surface and the `/simulator/v1` admin API.
//!
//! `/api` handlers serve one cluster ([`ClusterState`]: the simulator and a cluster index; each
//! cluster has its own listener); the admin handlers act on the whole world ([`AppState`]).
//!
//! Handlers are thin: parse the request, run one typed [`World`] operation under the lock, render
//! JSON. Mutations answer 202 + job (knob `async_mutations`) or 201/200, honour `return_timeout`
//! and `return_records`, and map [`SimError`] to ONTAP's error envelope with a string `code`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::query::{collection, project, Params};
use super::world::{codes, Cluster, JobState, PolicyCopy, SimError, SimResult, Svm, World};
use super::{ClockMode, Simulator};
use crate::config::{format_iso8601_duration, parse_iso8601_duration};
use crate::timeline::{CronField, CronSpec, Recurrence};

/// The world-wide state: the admin API and the middleware use it.
pub type AppState = Arc<Simulator>;

/// Handler state of one cluster's listener: the shared simulator and which of its clusters this
/// endpoint is (an index into `World::clusters`).
#[derive(Debug, Clone)]
pub struct ClusterState {
    pub sim: Arc<Simulator>,
    pub ci: usize,
}

impl FromRef<ClusterState> for AppState {
    fn from_ref(state: &ClusterState) -> AppState {
        state.sim.clone()
    }
}

/// An error envelope `{"error":{"message","code","target"}}` with its HTTP status.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: u64,
    pub message: String,
    pub target: String,
}

impl From<SimError> for ApiError {
    fn from(e: SimError) -> ApiError {
        ApiError {
            status: e.http_status(),
            code: e.code(),
            message: e.to_string(),
            target: e.target(),
        }
    }
}

impl ApiError {
    pub fn new(
        status: u16,
        code: u64,
        message: impl Into<String>,
        target: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            target: target.into(),
        }
    }

    fn invalid(target: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, codes::INVALID, message, target)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "code": self.code.to_string(), "target": self.target}});
        hal(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
    }
}

type ApiResult = Result<Response, ApiError>;
type Q = Query<Vec<(String, String)>>;

fn hal(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/hal+json"),
    );
    resp
}

fn ok(body: Value) -> ApiResult {
    Ok(hal(StatusCode::OK, body))
}

fn links(href: &str) -> Value {
    json!({"self": {"href": href}})
}

fn parse_body(bytes: &Bytes) -> Result<Value, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(json!({}));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid("body", format!("invalid JSON body: {e}")))
}

/// A string at a dotted path, nested (`{"svm":{"name":…}}`) or flat (`{"svm.name":…}`).
fn str_at(v: &Value, path: &str) -> Option<String> {
    if let Some(s) = v.get(path).and_then(Value::as_str) {
        return Some(s.to_string());
    }
    path.split('.')
        .try_fold(v, |cur, k| cur.get(k))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn value_at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    v.get(path)
        .or_else(|| path.split('.').try_fold(v, |cur, k| cur.get(k)))
}

fn required(v: &Value, path: &str) -> Result<String, ApiError> {
    str_at(v, path).ok_or_else(|| {
        ApiError::invalid(
            path,
            format!("Missing value for required field \"{path}\"."),
        )
    })
}

fn not_found(target: &str) -> ApiError {
    ApiError::new(404, codes::NOT_FOUND, "entry doesn't exist", target)
}

// ----- rendering -----

fn svm_ref(w: &World, ci: usize, name: &str) -> Value {
    let uuid = w.clusters[ci]
        .svms
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.uuid.clone())
        .unwrap_or_default();
    json!({"name": name, "uuid": uuid, "_links": links(&format!("/api/svm/svms/{uuid}"))})
}

fn svm_of(w: &World, ci: usize, name: &str) -> Option<Svm> {
    w.clusters[ci].svms.iter().find(|s| s.name == name).cloned()
}

fn render_cluster(w: &World, ci: usize) -> Value {
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

fn render_volume(w: &World, ci: usize, vi: usize) -> Value {
    let c = &w.clusters[ci];
    let v = &c.volumes[vi];
    let policy_uuid = c
        .policies
        .iter()
        .find(|p| p.name == v.snapshot_policy)
        .map(|p| p.uuid.clone());
    let mut clone = json!({"is_flexclone": v.clone_parent.is_some(), "has_flexclone": c.volumes.iter().any(|x| x.clone_parent.as_ref().is_some_and(|p| p.volume_uuid == v.uuid))});
    if let Some(p) = &v.clone_parent {
        let parent = c.volumes.iter().find(|x| x.uuid == p.volume_uuid);
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
        "scheduled_snapshot_naming_scheme": "create_time",
        "clone": clone,
        "_links": links(&format!("/api/storage/volumes/{}", v.uuid)),
    })
}

fn render_snapshot(w: &World, ci: usize, vi: usize, si: usize) -> Value {
    let v = &w.clusters[ci].volumes[vi];
    let s = &v.snapshots[si];
    let mut r = json!({
        "uuid": s.uuid, "name": s.name,
        "create_time": w.local(ci, s.create_time).to_rfc3339(),
        "size": s.size, "state": "valid",
        "volume": {"uuid": v.uuid, "name": v.name, "_links": links(&format!("/api/storage/volumes/{}", v.uuid))},
        "svm": svm_ref(w, ci, &v.svm),
        "_links": links(&format!("/api/storage/volumes/{}/snapshots/{}", v.uuid, s.uuid)),
    });
    if let Some(c) = &s.comment {
        r["comment"] = json!(c);
    }
    let owners = w.owners(ci, vi, si);
    if !owners.is_empty() {
        r["owners"] = json!(owners);
    }
    r
}

fn render_lun(w: &World, ci: usize, li: usize) -> Value {
    let c = &w.clusters[ci];
    let l = &c.luns[li];
    let vol = c.volumes.iter().find(|v| v.uuid == l.volume_uuid);
    let maps: Vec<Value> = c
        .lun_maps
        .iter()
        .filter(|m| m.lun_uuid == l.uuid)
        .map(|m| {
            let g = c.igroups.iter().find(|g| g.uuid == m.igroup_uuid);
            json!({"igroup": {"uuid": m.igroup_uuid, "name": g.map(|g| g.name.clone())}, "logical_unit_number": m.logical_unit_number})
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

fn render_schedule(w: &World, ci: usize, i: usize) -> Value {
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

fn render_policy(w: &World, ci: usize, i: usize) -> Value {
    let c = &w.clusters[ci];
    let p = &c.policies[i];
    let copies: Vec<Value> = p
        .copies
        .iter()
        .map(|copy| {
            let uuid = c.schedules.iter().find(|s| s.name == copy.schedule).map(|s| s.uuid.clone());
            json!({"schedule": {"name": copy.schedule, "uuid": uuid}, "count": copy.count, "prefix": copy.effective_prefix()})
        })
        .collect();
    json!({
        "uuid": p.uuid, "name": p.name, "comment": p.comment, "enabled": p.enabled, "scope": "cluster",
        "copies": copies,
        "_links": links(&format!("/api/storage/snapshot-policies/{}", p.uuid)),
    })
}

/// License packages the simulator knows; installed ones are `compliant`, others `unlicensed`.
const PACKAGES: &[(&str, &str)] = &[
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

fn render_license(w: &World, ci: usize, name: &str, description: &str) -> Value {
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

fn render_svm(w: &World, ci: usize, i: usize) -> Value {
    let s = &w.clusters[ci].svms[i];
    json!({"uuid": s.uuid, "name": s.name, "state": "running", "subtype": "default", "_links": links(&format!("/api/svm/svms/{}", s.uuid))})
}

fn render_igroup(w: &World, ci: usize, i: usize) -> Value {
    let g = &w.clusters[ci].igroups[i];
    json!({
        "uuid": g.uuid, "name": g.name, "svm": svm_ref(w, ci, &g.svm), "os_type": g.os_type, "protocol": g.protocol,
        "initiators": g.initiators.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
        "_links": links(&format!("/api/protocols/san/igroups/{}", g.uuid)),
    })
}

fn render_lun_map(w: &World, ci: usize, i: usize) -> Value {
    let c = &w.clusters[ci];
    let m = &c.lun_maps[i];
    let lun = c.luns.iter().find(|l| l.uuid == m.lun_uuid);
    let g = c.igroups.iter().find(|g| g.uuid == m.igroup_uuid);
    json!({
        "lun": {"uuid": m.lun_uuid, "name": lun.map(|l| l.name.clone())},
        "igroup": {"uuid": m.igroup_uuid, "name": g.map(|g| g.name.clone())},
        "svm": lun.map(|l| svm_ref(w, ci, &l.svm)),
        "logical_unit_number": m.logical_unit_number,
        "_links": links(&format!("/api/protocols/san/lun-maps/{}/{}", m.lun_uuid, m.igroup_uuid)),
    })
}

fn render_job(w: &World, ci: usize, uuid: &str) -> SimResult<Value> {
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

// ----- mutations -----

/// What a successful mutation produced.
struct Done {
    status: StatusCode,
    location: Option<String>,
    record: Option<Value>,
}

impl Done {
    fn created(location: String, record: Value) -> SimResult<Done> {
        Ok(Done {
            status: StatusCode::CREATED,
            location: Some(location),
            record: Some(record),
        })
    }

    fn ok() -> SimResult<Done> {
        Ok(Done {
            status: StatusCode::OK,
            location: None,
            record: None,
        })
    }
}

/// Runs `op` unless an injected job failure wins the roll, then answers as ONTAP would.
fn mutate(
    w: &mut World,
    ci: usize,
    params: &Params,
    description: String,
    svm: Option<Svm>,
    op: impl FnOnce(&mut World) -> SimResult<Done>,
) -> ApiResult {
    let is_async = w.knobs.async_mutations;
    let result = if w.roll_job_failure() {
        Err(SimError::InjectedJobFailure)
    } else {
        op(w)
    };
    let result = match result {
        Err(e) if !(is_async && e.is_job_failure()) => return Err(e.into()),
        other => other,
    };
    if !is_async {
        let done = result.map_err(ApiError::from)?;
        let mut body = json!({});
        if let Some(r) = done.record.filter(|_| params.flag("return_records", false)) {
            body = json!({"num_records": 1, "records": [r]});
        }
        return Ok(with_location(hal(done.status, body), done.location));
    }
    let outcome = result.as_ref().map(|_| ()).map_err(Clone::clone);
    let job = w.add_job(ci, description, svm, &outcome);
    let finished = w
        .job(ci, &job)
        .map(|j| j.state(w.now()) != JobState::Running)
        .unwrap_or(true);
    let waited = params.number("return_timeout").unwrap_or(0) > 0;
    let mut body =
        json!({"job": {"uuid": job, "_links": links(&format!("/api/cluster/jobs/{job}"))}});
    match result {
        Err(e) if waited && finished => Err(e.into()),
        Err(_) => Ok(hal(StatusCode::ACCEPTED, body)),
        Ok(done) => {
            let status = if waited && finished {
                done.status
            } else {
                StatusCode::ACCEPTED
            };
            if let Some(r) = done.record.filter(|_| params.flag("return_records", false)) {
                body["num_records"] = json!(1);
                body["records"] = json!([r]);
            }
            Ok(with_location(hal(status, body), done.location))
        }
    }
}

fn with_location(mut resp: Response, location: Option<String>) -> Response {
    if let Some(loc) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp
}

// ----- handlers: cluster -----

async fn get_cluster(State(ClusterState { sim, ci }): State<ClusterState>) -> ApiResult {
    sim.with(|w| ok(render_cluster(w, ci)))
}

async fn list_jobs(State(ClusterState { sim, ci }): State<ClusterState>, Query(q): Q) -> ApiResult {
    sim.with(|w| {
        let records = w.clusters[ci]
            .jobs
            .iter()
            .filter_map(|j| render_job(w, ci, &j.uuid).ok())
            .collect();
        ok(collection(
            records,
            &Params::new(q),
            "/api/cluster/jobs",
            &["uuid"],
        ))
    })
}

async fn get_job(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    sim.with(|w| {
        let r = render_job(w, ci, &uuid)?;
        ok(project(
            &r,
            Some(&Params::new(q).fields().unwrap_or_else(|| vec!["*".into()])),
            &["uuid"],
        ))
    })
}

async fn list_schedules(State(st): State<ClusterState>, Query(q): Q) -> ApiResult {
    list_all(&st, q, &SCHEDULES)
}

async fn get_schedule(
    State(st): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    get_one(&st, q, &SCHEDULES, |w, ci| {
        position(
            w.clusters[ci]
                .schedules
                .iter()
                .position(|s| s.uuid == uuid || s.name == uuid),
        )
    })
}

fn ints(v: Option<&Value>) -> Result<Vec<u32>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_u64()
                    .map(|n| n as u32)
                    .ok_or_else(|| ApiError::invalid("cron", "cron values must be integers"))
            })
            .collect(),
        Some(_) => Err(ApiError::invalid("cron", "cron fields must be arrays")),
    }
}

async fn post_schedule(
    State(ClusterState { sim, ci }): State<ClusterState>,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let name = required(&b, "name")?;
    sim.with(|w| {
        let rec = if let Some(iv) = str_at(&b, "interval") {
            let every = parse_iso8601_duration(&iv)
                .ok()
                .filter(|d| *d > chrono::TimeDelta::zero())
                .ok_or_else(|| {
                    ApiError::invalid("interval", format!("invalid ISO-8601 duration \"{iv}\""))
                })?;
            Recurrence::Interval {
                every,
                anchor: w.now(),
            }
        } else {
            let cron = value_at(&b, "cron").ok_or_else(|| {
                ApiError::invalid(
                    "cron.minutes",
                    "Missing value for required field \"cron.minutes\".",
                )
            })?;
            let minutes = ints(cron.get("minutes"))?;
            if minutes.is_empty() {
                return Err(ApiError::invalid(
                    "cron.minutes",
                    "Missing value for required field \"cron.minutes\".",
                ));
            }
            let spec = CronSpec::from_lists(
                &minutes,
                &ints(cron.get("hours"))?,
                &ints(cron.get("days"))?,
                &ints(cron.get("weekdays"))?,
                &ints(cron.get("months"))?,
            )
            .map_err(|e| ApiError::invalid("cron", e.to_string()))?;
            Recurrence::Cron(spec)
        };
        let uuid = w.add_schedule(ci, &name, rec)?;
        let i = w.clusters[ci].schedules.len() - 1;
        let href = format!("/api/cluster/schedules/{uuid}");
        let r = render_schedule(w, ci, i);
        Ok(with_location(
            hal(
                StatusCode::CREATED,
                json!({"num_records": 1, "records": [r]}),
            ),
            Some(href),
        ))
    })
}

async fn list_licenses(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Query(q): Q,
) -> ApiResult {
    let mut params = Params::new(q);
    if params.get("state").is_none() {
        params.pairs.push(("state".into(), "!unlicensed".into()));
    }
    sim.with(|w| {
        let records = PACKAGES
            .iter()
            .map(|(n, d)| render_license(w, ci, n, d))
            .collect();
        let mut body = collection(
            records,
            &params,
            "/api/cluster/licensing/licenses",
            &["name"],
        );
        body["_links"] = links("/api/cluster/licensing/licenses");
        ok(body)
    })
}

async fn get_license(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path(name): Path<String>,
    Query(q): Q,
) -> ApiResult {
    sim.with(|w| {
        let (n, d) = PACKAGES
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| not_found("name"))?;
        instance(render_license(w, ci, n, d), q, &["name"])
    })
}

fn instance(r: Value, q: Vec<(String, String)>, keys: &[&str]) -> ApiResult {
    let fields = Params::new(q).fields().unwrap_or_else(|| vec!["*".into()]);
    ok(project(&r, Some(&fields), keys))
}

// ----- the simple per-cluster collections: one listing, one instance look-up -----

/// A per-cluster collection whose records are rendered by index: where it lives, the fields a
/// record always carries, how many there are and how one renders.
struct Listing {
    path: &'static str,
    keys: &'static [&'static str],
    len: fn(&Cluster) -> usize,
    render: fn(&World, usize, usize) -> Value,
}

const SCHEDULES: Listing = Listing {
    path: "/api/cluster/schedules",
    keys: &["uuid", "name"],
    len: |c| c.schedules.len(),
    render: render_schedule,
};
const SVMS: Listing = Listing {
    path: "/api/svm/svms",
    keys: &["uuid", "name"],
    len: |c| c.svms.len(),
    render: render_svm,
};
const VOLUMES: Listing = Listing {
    path: "/api/storage/volumes",
    keys: &["uuid", "name"],
    len: |c| c.volumes.len(),
    render: render_volume,
};
const POLICIES: Listing = Listing {
    path: "/api/storage/snapshot-policies",
    keys: &["uuid", "name"],
    len: |c| c.policies.len(),
    render: render_policy,
};
const LUNS: Listing = Listing {
    path: "/api/storage/luns",
    keys: &["uuid", "name"],
    len: |c| c.luns.len(),
    render: render_lun,
};
const IGROUPS: Listing = Listing {
    path: "/api/protocols/san/igroups",
    keys: &["uuid", "name"],
    len: |c| c.igroups.len(),
    render: render_igroup,
};
const LUN_MAPS: Listing = Listing {
    path: "/api/protocols/san/lun-maps",
    keys: &["lun", "igroup", "svm"],
    len: |c| c.lun_maps.len(),
    render: render_lun_map,
};

/// `GET` on a collection: every record, then ONTAP's query semantics (filters, fields, paging).
fn list_all(st: &ClusterState, q: Vec<(String, String)>, listing: &Listing) -> ApiResult {
    st.sim.with(|w| {
        let records = (0..(listing.len)(&w.clusters[st.ci]))
            .map(|i| (listing.render)(w, st.ci, i))
            .collect();
        ok(collection(
            records,
            &Params::new(q),
            listing.path,
            listing.keys,
        ))
    })
}

/// `GET` on an instance that `find` locates (its error is the 404 to answer).
fn get_one(
    st: &ClusterState,
    q: Vec<(String, String)>,
    listing: &Listing,
    find: impl FnOnce(&World, usize) -> Result<usize, ApiError>,
) -> ApiResult {
    st.sim.with(|w| {
        let i = find(w, st.ci)?;
        instance((listing.render)(w, st.ci, i), q, listing.keys)
    })
}

/// A generic "entry doesn't exist" for a look-up by uuid that found nothing.
fn position(found: Option<usize>) -> Result<usize, ApiError> {
    found.ok_or_else(|| not_found("uuid"))
}

// ----- handlers: SVMs, volumes -----

async fn list_svms(State(st): State<ClusterState>, Query(q): Q) -> ApiResult {
    list_all(&st, q, &SVMS)
}

async fn get_svm(
    State(st): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    get_one(&st, q, &SVMS, |w, ci| {
        position(w.clusters[ci].svms.iter().position(|s| s.uuid == uuid))
    })
}

async fn list_volumes(State(st): State<ClusterState>, Query(q): Q) -> ApiResult {
    list_all(&st, q, &VOLUMES)
}

async fn get_volume(
    State(st): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    get_one(&st, q, &VOLUMES, |w, ci| {
        w.volume_index(ci, &uuid).map_err(|_| not_found("uuid"))
    })
}

async fn post_volume(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let params = Params::new(q);
    let name = required(&b, "name")?;
    let svm = str_at(&b, "svm.name")
        .or_else(|| str_at(&b, "svm.uuid"))
        .ok_or_else(|| ApiError::invalid("svm", "Missing value for required field \"svm\"."))?;
    let flexclone = value_at(&b, "clone.is_flexclone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
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
                    let parent = str_at(&b, "clone.parent_volume.name")
                        .or_else(|| str_at(&b, "clone.parent_volume.uuid"))
                        .ok_or_else(|| SimError::Invalid {
                            target: "clone.parent_volume".into(),
                            message: "Missing value for required field \"clone.parent_volume\"."
                                .into(),
                        })?;
                    let snap = str_at(&b, "clone.parent_snapshot.name")
                        .or_else(|| str_at(&b, "clone.parent_snapshot.uuid"));
                    w.clone_volume(ci, &svm, &name, &parent, snap.as_deref())?
                } else {
                    let size = value_at(&b, "size")
                        .and_then(Value::as_u64)
                        .unwrap_or(20 << 30);
                    let policy =
                        str_at(&b, "snapshot_policy.name").unwrap_or_else(|| "default".into());
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

async fn patch_volume(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let params = Params::new(q);
    let restore = |key: &str| {
        params
            .get(&format!("restore_to.{key}"))
            .map(str::to_string)
            .or_else(|| str_at(&b, &format!("restore_to.{key}")))
    };
    let (snap, path, restore_path) = (
        restore("snapshot.name").or_else(|| restore("snapshot.uuid")),
        restore("path"),
        restore("restore_path"),
    );
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
            if let Some(policy) = str_at(&b, "snapshot_policy.name") {
                w.set_volume_policy(ci, vi, &policy)?;
            }
            if value_at(&b, "clone.split_initiated").and_then(Value::as_bool) == Some(true) {
                w.split_clone(ci, vi)?;
            }
            if let Some(dep) = value_at(&b, "snapshot_clone_dependency").and_then(Value::as_bool) {
                w.clusters[ci].volumes[vi].snapshot_clone_dependency = dep;
            }
            Done::ok()
        })
    })
}

async fn delete_volume(
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

// ----- handlers: snapshots -----

async fn list_snapshots(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path(vol): Path<String>,
    Query(q): Q,
) -> ApiResult {
    sim.with(|w| {
        let volumes: Vec<usize> = if vol == "*" {
            (0..w.clusters[ci].volumes.len()).collect()
        } else {
            vec![w
                .volume_index(ci, &vol)
                .map_err(|_| not_found("volume.uuid"))?]
        };
        let records = volumes
            .into_iter()
            .flat_map(|vi| (0..w.clusters[ci].volumes[vi].snapshots.len()).map(move |si| (vi, si)))
            .map(|(vi, si)| render_snapshot(w, ci, vi, si))
            .collect();
        let keys: &[&str] = if vol == "*" {
            &["uuid", "name", "volume"]
        } else {
            &["uuid", "name"]
        };
        ok(collection(
            records,
            &Params::new(q),
            &format!("/api/storage/volumes/{vol}/snapshots"),
            keys,
        ))
    })
}

/// Finds a snapshot by volume uuid (or `*`) and snapshot uuid.
fn find_snapshot(w: &World, ci: usize, vol: &str, snap: &str) -> Result<(usize, usize), ApiError> {
    let c = &w.clusters[ci];
    for (vi, v) in c.volumes.iter().enumerate() {
        if vol != "*" && v.uuid != vol {
            continue;
        }
        if let Some(si) = v.snapshots.iter().position(|s| s.uuid == snap) {
            return Ok((vi, si));
        }
    }
    if vol != "*" && c.volumes.iter().all(|v| v.uuid != vol) {
        return Err(not_found("volume.uuid"));
    }
    Err(ApiError::new(
        404,
        codes::SNAPSHOT_NOT_FOUND,
        "entry doesn't exist",
        "uuid",
    ))
}

async fn get_snapshot(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path((vol, snap)): Path<(String, String)>,
    Query(q): Q,
) -> ApiResult {
    sim.with(|w| {
        let (vi, si) = find_snapshot(w, ci, &vol, &snap)?;
        instance(render_snapshot(w, ci, vi, si), q, &["uuid", "name"])
    })
}

async fn post_snapshot(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path(vol): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let params = Params::new(q);
    let name = required(&b, "name")?;
    let comment = str_at(&b, "comment");
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
                let uuid = w.create_snapshot(ci, vi, &name, comment)?;
                let si = w.snapshot_index(ci, vi, &uuid)?;
                Done::created(
                    format!("/api/storage/volumes/{vol}/snapshots/{uuid}"),
                    render_snapshot(w, ci, vi, si),
                )
            },
        )
    })
}

async fn patch_snapshot(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path((vol, snap)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    sim.with(|w| {
        let (vi, si) = find_snapshot(w, ci, &vol, &snap)?;
        w.modify_snapshot(
            ci,
            vi,
            si,
            str_at(&b, "name").as_deref(),
            str_at(&b, "comment"),
        )?;
        ok(json!({}))
    })
}

async fn delete_snapshot(
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

// ----- handlers: snapshot policies -----

async fn list_policies(State(st): State<ClusterState>, Query(q): Q) -> ApiResult {
    list_all(&st, q, &POLICIES)
}

async fn get_policy(
    State(st): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    get_one(&st, q, &POLICIES, |w, ci| {
        position(w.clusters[ci].policies.iter().position(|p| p.uuid == uuid))
    })
}

async fn post_policy(
    State(ClusterState { sim, ci }): State<ClusterState>,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let name = required(&b, "name")?;
    let comment = str_at(&b, "comment").unwrap_or_default();
    let mut copies = Vec::new();
    for c in b
        .get("copies")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let schedule = required(&c, "schedule.name")?;
        let count = c.get("count").and_then(Value::as_u64).ok_or_else(|| {
            ApiError::new(
                400,
                1_638_407,
                "Count is required for each schedule.",
                "copies.count",
            )
        })?;
        copies.push(PolicyCopy {
            schedule,
            count: count as u32,
            prefix: str_at(&c, "prefix"),
        });
    }
    sim.with(|w| {
        let uuid = w.add_policy(ci, &name, &comment, copies)?;
        if value_at(&b, "enabled").and_then(Value::as_bool) == Some(false) {
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

// ----- handlers: LUNs, igroups, maps -----

async fn list_luns(State(st): State<ClusterState>, Query(q): Q) -> ApiResult {
    list_all(&st, q, &LUNS)
}

async fn get_lun(
    State(st): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    get_one(&st, q, &LUNS, |w, ci| {
        w.clusters[ci]
            .luns
            .iter()
            .position(|l| l.uuid == uuid)
            .ok_or_else(|| ApiError::new(404, codes::LUN_NOT_FOUND, "entry doesn't exist", "uuid"))
    })
}

async fn post_lun(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Query(q): Q,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let params = Params::new(q);
    let name = required(&b, "name")?;
    let svm = str_at(&b, "svm.name")
        .or_else(|| str_at(&b, "svm.uuid"))
        .ok_or_else(|| ApiError::invalid("svm", "Missing value for required field \"svm\"."))?;
    let clone_name = str_at(&b, "clone.source.name");
    let clone_uuid = str_at(&b, "clone.source.uuid");
    let is_clone = clone_name.is_some() || clone_uuid.is_some();
    if is_clone && (value_at(&b, "os_type").is_some() || value_at(&b, "space.size").is_some()) {
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
                    let os_type = str_at(&b, "os_type").ok_or_else(|| SimError::Invalid {
                        target: "os_type".into(),
                        message: "Missing value for required field \"os_type\".".into(),
                    })?;
                    let size = value_at(&b, "space.size")
                        .and_then(Value::as_u64)
                        .ok_or_else(|| SimError::Invalid {
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

async fn delete_lun(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    let params = Params::new(q);
    let allow = params.flag("allow_delete_while_mapped", false);
    sim.with(|w| {
        let li = w.clusters[ci]
            .luns
            .iter()
            .position(|l| l.uuid == uuid)
            .ok_or_else(|| {
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

async fn list_igroups(State(st): State<ClusterState>, Query(q): Q) -> ApiResult {
    list_all(&st, q, &IGROUPS)
}

async fn get_igroup(
    State(st): State<ClusterState>,
    Path(uuid): Path<String>,
    Query(q): Q,
) -> ApiResult {
    get_one(&st, q, &IGROUPS, |w, ci| {
        position(w.clusters[ci].igroups.iter().position(|g| g.uuid == uuid))
    })
}

async fn post_igroup(
    State(ClusterState { sim, ci }): State<ClusterState>,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let name = required(&b, "name")?;
    let svm = str_at(&b, "svm.name")
        .or_else(|| str_at(&b, "svm.uuid"))
        .ok_or_else(|| ApiError::invalid("svm", "Missing value for required field \"svm\"."))?;
    let os_type = required(&b, "os_type")?;
    let protocol = str_at(&b, "protocol").unwrap_or_else(|| "mixed".into());
    let initiators = b
        .get("initiators")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|i| str_at(i, "name")).collect())
        .unwrap_or_default();
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

async fn list_lun_maps(State(st): State<ClusterState>, Query(q): Q) -> ApiResult {
    list_all(&st, q, &LUN_MAPS)
}

async fn get_lun_map(
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

async fn post_lun_map(
    State(ClusterState { sim, ci }): State<ClusterState>,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let lun = str_at(&b, "lun.uuid")
        .or_else(|| str_at(&b, "lun.name"))
        .ok_or_else(|| ApiError::invalid("lun", "Missing value for required field \"lun\"."))?;
    let igroup = str_at(&b, "igroup.uuid")
        .or_else(|| str_at(&b, "igroup.name"))
        .ok_or_else(|| {
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

async fn delete_lun_map(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Path((lun, igroup)): Path<(String, String)>,
) -> ApiResult {
    sim.with(|w| {
        w.unmap_lun(ci, &lun, &igroup)?;
        ok(json!({}))
    })
}

async fn api_fallback() -> ApiError {
    ApiError::new(404, codes::NOT_FOUND, "API not found", "uri")
}

/// The `/api` router of the cluster in its [`ClusterState`].
pub fn api_router() -> Router<ClusterState> {
    Router::new()
        .route("/api/cluster", get(get_cluster))
        .route("/api/cluster/jobs", get(list_jobs))
        .route("/api/cluster/jobs/{uuid}", get(get_job))
        .route(
            "/api/cluster/schedules",
            get(list_schedules).post(post_schedule),
        )
        .route("/api/cluster/schedules/{uuid}", get(get_schedule))
        .route("/api/cluster/licensing/licenses", get(list_licenses))
        .route("/api/cluster/licensing/licenses/{name}", get(get_license))
        .route("/api/svm/svms", get(list_svms))
        .route("/api/svm/svms/{uuid}", get(get_svm))
        .route("/api/storage/volumes", get(list_volumes).post(post_volume))
        .route(
            "/api/storage/volumes/{uuid}",
            get(get_volume).patch(patch_volume).delete(delete_volume),
        )
        .route(
            "/api/storage/volumes/{vol}/snapshots",
            get(list_snapshots).post(post_snapshot),
        )
        .route(
            "/api/storage/volumes/{vol}/snapshots/{uuid}",
            get(get_snapshot)
                .patch(patch_snapshot)
                .delete(delete_snapshot),
        )
        .route(
            "/api/storage/snapshot-policies",
            get(list_policies).post(post_policy),
        )
        .route("/api/storage/snapshot-policies/{uuid}", get(get_policy))
        .route("/api/storage/luns", get(list_luns).post(post_lun))
        .route("/api/storage/luns/{uuid}", get(get_lun).delete(delete_lun))
        .route(
            "/api/protocols/san/igroups",
            get(list_igroups).post(post_igroup),
        )
        .route("/api/protocols/san/igroups/{uuid}", get(get_igroup))
        .route(
            "/api/protocols/san/lun-maps",
            get(list_lun_maps).post(post_lun_map),
        )
        .route(
            "/api/protocols/san/lun-maps/{lun}/{igroup}",
            get(get_lun_map).delete(delete_lun_map),
        )
        .fallback(api_fallback)
}

// ----- admin API -----

async fn get_clock(State(sim): State<AppState>) -> ApiResult {
    let mode = match sim.clock() {
        ClockMode::Real => "real",
        ClockMode::Manual => "manual",
    };
    ok(json!({"now": sim.now().to_rfc3339(), "mode": mode}))
}

async fn advance_clock(State(sim): State<AppState>, body: Bytes) -> ApiResult {
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

async fn get_faults(State(sim): State<AppState>) -> ApiResult {
    sim.with(|w| ok(json!(w.faults)))
}

async fn set_faults(State(sim): State<AppState>, body: Bytes) -> ApiResult {
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

async fn clear_faults(State(sim): State<AppState>) -> ApiResult {
    sim.with(|w| {
        w.faults = Default::default();
        ok(json!(w.faults))
    })
}

async fn get_knobs(State(sim): State<AppState>) -> ApiResult {
    sim.with(|w| ok(json!(w.knobs)))
}

async fn set_knobs(State(sim): State<AppState>, body: Bytes) -> ApiResult {
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
