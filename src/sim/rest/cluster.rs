//! `/api/cluster`: the cluster, jobs, job schedules and licenses.

use super::*;

pub(super) async fn get_cluster(State(ClusterState { sim, ci }): State<ClusterState>) -> ApiResult {
    sim.with(|w| ok(render_cluster(w, ci)))
}

pub(super) async fn list_jobs(
    State(ClusterState { sim, ci }): State<ClusterState>,
    Query(q): Q,
) -> ApiResult {
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

pub(super) async fn get_job(
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

pub(super) async fn list_schedules(State(st): State<ClusterState>, Query(q): Q) -> ApiResult {
    list_all(&st, q, &SCHEDULES)
}

pub(super) async fn get_schedule(
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

pub(super) fn ints(v: Option<&Value>) -> Result<Vec<u32>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "cron",
                            format!("cron values must be small non-negative integers, not {i}"),
                        )
                    })
            })
            .collect(),
        Some(_) => Err(ApiError::invalid("cron", "cron fields must be arrays")),
    }
}

pub(super) async fn post_schedule(
    State(ClusterState { sim, ci }): State<ClusterState>,
    body: Bytes,
) -> ApiResult {
    let b = parse_body(&body)?;
    let name = required(&b, "name")?;
    let interval = optional(&b, "interval")?;
    sim.with(|w| {
        let rec = if let Some(iv) = interval {
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

pub(super) async fn list_licenses(
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

pub(super) async fn get_license(
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
