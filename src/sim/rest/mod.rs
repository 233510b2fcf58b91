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

mod admin;
mod cluster;
mod render;
mod san;
mod snapshots;
mod storage;

pub use admin::admin_router;
use cluster::*;
use render::*;
use san::*;
use snapshots::*;
use storage::*;

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
