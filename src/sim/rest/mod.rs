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
mod envelope;
mod render;
mod san;
mod snapshots;
mod storage;
#[cfg(test)]
mod tests;

pub use admin::admin_router;
use cluster::*;
pub use envelope::{envelope, MAX_HEADER_BYTES, MAX_URI_BYTES};
use render::*;
use san::*;
use snapshots::*;
use storage::*;

use super::query::{collection, encode, project, Params};
use super::world::{
    codes, Cluster, JobState, NamingScheme, Pins, PolicyCopy, SimError, SimResult, Svm, World,
    AUTODELETE_COMMITMENTS, AUTODELETE_TRIGGERS,
};
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

/// The value at a dotted path, flat (`{"svm.name":…}`) or nested (`{"svm":{"name":…}}`).
fn value_at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    v.get(path)
        .or_else(|| path.split('.').try_fold(v, |cur, k| cur.get(k)))
}

/// A JSON value's kind, for messages (never the value: it may be large or secret).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A field that may be absent (or `null`); present, `get` must accept it, else a 400 naming the
/// field and the `expected` type.
fn optional_as<T>(
    v: &Value,
    path: &str,
    expected: &str,
    get: impl Fn(&Value) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    match value_at(v, path) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => get(x).map(Some).ok_or_else(|| {
            ApiError::invalid(
                path,
                format!(
                    "Invalid value for field \"{path}\": expected {expected}, got {}.",
                    kind(x)
                ),
            )
        }),
    }
}

/// An optional string field (see [`optional_as`]).
fn optional(v: &Value, path: &str) -> Result<Option<String>, ApiError> {
    optional_as(v, path, "a string", |x| x.as_str().map(str::to_string))
}

/// An optional boolean field (see [`optional_as`]).
fn optional_bool(v: &Value, path: &str) -> Result<Option<bool>, ApiError> {
    optional_as(v, path, "true or false", Value::as_bool)
}

/// An optional non-negative integer field (see [`optional_as`]).
fn optional_u64(v: &Value, path: &str) -> Result<Option<u64>, ApiError> {
    optional_as(v, path, "a non-negative integer", Value::as_u64)
}

/// An optional ISO-8601 duration field such as `copies.retention_period` (`"P30D"`); one that
/// does not parse is a 400 naming it.
fn optional_duration(v: &Value, path: &str) -> Result<Option<chrono::TimeDelta>, ApiError> {
    optional(v, path)?
        .map(|s| {
            crate::domain::duration::parse_iso8601_duration(&s)
                .map_err(|e| ApiError::invalid(path, format!("\"{s}\": {e}")))
        })
        .transpose()
}

/// The first of two optional string fields that is present (`svm.name`, else `svm.uuid`).
fn either(v: &Value, first: &str, second: &str) -> Result<Option<String>, ApiError> {
    match optional(v, first)? {
        Some(s) => Ok(Some(s)),
        None => optional(v, second),
    }
}

/// A string field that must be present; a missing field or another type is a 400 naming it.
fn required(v: &Value, path: &str) -> Result<String, ApiError> {
    optional(v, path)?.ok_or_else(|| {
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
    /// The listing's indices, when it has some.
    indexed: Option<Indexed>,
}

/// A listing's indices: for a query they answer, the records (ascending) that can match it, so
/// that only those are rendered instead of every one; `None` when no index answers it.
type Indexed = fn(&Cluster, &Params) -> Option<Vec<usize>>;

const SCHEDULES: Listing = Listing {
    path: "/api/cluster/schedules",
    keys: &["uuid", "name"],
    len: |c| c.schedules.len(),
    render: render_schedule,
    indexed: None,
};
const SVMS: Listing = Listing {
    path: "/api/svm/svms",
    keys: &["uuid", "name"],
    len: |c| c.svms.len(),
    render: render_svm,
    indexed: None,
};
const VOLUMES: Listing = Listing {
    path: "/api/storage/volumes",
    keys: &["uuid", "name"],
    len: |c| c.volumes.len(),
    render: render_volume,
    indexed: Some(|c, params| Some(c.volumes_named(literal(params, "name")?).to_vec())),
};
const POLICIES: Listing = Listing {
    path: "/api/storage/snapshot-policies",
    keys: &["uuid", "name"],
    len: |c| c.policies.len(),
    render: render_policy,
    indexed: None,
};
const LUNS: Listing = Listing {
    path: "/api/storage/luns",
    keys: &["uuid", "name"],
    len: |c| c.luns.len(),
    render: render_lun,
    indexed: Some(indexed_luns),
};
const IGROUPS: Listing = Listing {
    path: "/api/protocols/san/igroups",
    keys: &["uuid", "name"],
    len: |c| c.igroups.len(),
    render: render_igroup,
    indexed: None,
};
const LUN_MAPS: Listing = Listing {
    path: "/api/protocols/san/lun-maps",
    keys: &["lun", "igroup", "svm"],
    len: |c| c.lun_maps.len(),
    render: render_lun_map,
    indexed: None,
};

/// `GET` on a collection: every record, then ONTAP's query semantics (filters, fields, paging).
fn list_all(st: &ClusterState, q: Vec<(String, String)>, listing: &Listing) -> ApiResult {
    let params = Params::new(q);
    st.sim.with(|w| {
        let records = candidates(w, st.ci, listing, &params);
        ok(collection(records, &params, listing.path, listing.keys))
    })
}

/// The value of the query's one filter on `field` when it is a literal (no `*`, `|`, `!`, `<`,
/// `>`, not `null`): the records it matches are those whose value equals it ignoring case.
fn literal<'a>(params: &'a Params, field: &str) -> Option<&'a str> {
    let mut values = params
        .filters()
        .filter(|(k, _)| *k == field)
        .map(|(_, v)| v);
    match (values.next(), values.next()) {
        (Some(v), None) if !v.contains(['*', '|', '!', '<', '>']) && v != "null" => Some(v),
        _ => None,
    }
}

/// The values of the query's one filter on `field` when it is an OR list of plain uuids
/// (`a|b|…`, [`crate::ontap::plain_uuid`]: no other operator).
pub(super) fn uuid_list<'a>(params: &'a Params, field: &str) -> Option<Vec<&'a str>> {
    let mut values = params
        .filters()
        .filter(|(k, _)| *k == field)
        .map(|(_, v)| v);
    let (Some(list), None) = (values.next(), values.next()) else {
        return None;
    };
    let uuids: Vec<&str> = list.split('|').collect();
    uuids
        .iter()
        .all(|u| crate::ontap::plain_uuid(u))
        .then_some(uuids)
}

/// The LUNs a query can match, through the first index it answers: a literal `name`, a
/// literal `location.volume.uuid` (volume uuids are lowercase, as the world makes them) or a
/// literal `location.volume.name` — a listing of one volume's LUNs renders only those.
fn indexed_luns(c: &Cluster, params: &Params) -> Option<Vec<usize>> {
    if let Some(name) = literal(params, "name") {
        return Some(c.luns_named(name));
    }
    if let Some(uuid) = literal(params, "location.volume.uuid") {
        return Some(c.luns_of_volume(&uuid.to_lowercase()));
    }
    if let Some(uuids) = uuid_list(params, "location.volume.uuid") {
        let mut luns: Vec<usize> = uuids
            .iter()
            .flat_map(|u| c.luns_of_volume(&u.to_lowercase()))
            .collect();
        luns.sort_unstable();
        luns.dedup();
        return Some(luns);
    }
    let volume = literal(params, "location.volume.name")?;
    let mut luns: Vec<usize> = c
        .volumes_named(volume)
        .iter()
        .flat_map(|&vi| c.luns_of_volume(&c.volumes[vi].uuid))
        .collect();
    luns.sort_unstable();
    Some(luns)
}

/// The records a collection query has to look at, rendered: those the listing's indices give
/// for it, else every record. `collection` still applies every filter.
fn candidates(w: &World, ci: usize, listing: &Listing, params: &Params) -> Vec<Value> {
    let c = &w.clusters[ci];
    let indices: Vec<usize> = listing
        .indexed
        .and_then(|indexed| indexed(c, params))
        .unwrap_or_else(|| (0..(listing.len)(c)).collect());
    indices
        .into_iter()
        .map(|i| (listing.render)(w, ci, i))
        .collect()
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
        // `…/snapshots/?name=<name>` is the Location of a created snapshot (§6.1).
        .route("/api/storage/volumes/{vol}/snapshots/", get(list_snapshots))
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
