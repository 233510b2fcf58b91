//! The simulator over HTTPS from a benchmark: its admin API (the request counter, knobs, faults),
//! ONTAP REST calls made by hand, and plain GETs of the agent's own API — every call bounded by
//! a timeout.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One cluster endpoint of `simulator serve --tls`, with a user of its world.
pub struct SimHttp {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

impl SimHttp {
    /// A client of the endpoint `base` (`https://127.0.0.1:PORT`); the simulator's certificate
    /// is self-signed, so it is not verified (loopback only).
    pub fn new(base: &str, user: &str, password: &str) -> SimHttp {
        SimHttp {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            http: reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .timeout(CALL_TIMEOUT)
                .build()
                .expect("HTTP client"),
            base: base.to_string(),
            user: user.to_string(),
            password: password.to_string(),
        }
    }

    /// One authenticated call of `path` (with its query): the HTTP status and the JSON body
    /// (`null` when there is none).
    pub fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.rt.block_on(async {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .basic_auth(&self.user, Some(&self.password));
            if let Some(body) = body {
                req = req.json(&body);
            }
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let status = resp.status().as_u16();
            let bytes = resp
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        })
    }

    /// An authenticated GET that must succeed.
    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None);
        assert!(
            (200..300).contains(&status),
            "GET {path}: HTTP {status}: {body}"
        );
        body
    }

    /// A GET of any URL without credentials (the agent's `/api/v1/status`); `None` while
    /// nothing answers or the answer is not JSON.
    pub fn json_at(&self, url: &str) -> Option<Value> {
        self.rt.block_on(async {
            let resp = self.http.get(url).send().await.ok()?;
            resp.json().await.ok()
        })
    }

    /// The simulator's count of the `/api` requests it answered so far.
    pub fn requests(&self) -> Counts {
        let v = self.get("/simulator/v1/requests");
        let n = |k: &str| v[k].as_u64().expect("request count");
        Counts {
            total: n("total"),
            get: n("get"),
            post: n("post"),
            patch: n("patch"),
            delete: n("delete"),
            job_polls: n("job_polls"),
        }
    }
}

/// `/api` requests by method, as `GET /simulator/v1/requests` counts them (`job_polls`, the GETs
/// of `/api/cluster/jobs/{uuid}`, are part of `get`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub total: u64,
    pub get: u64,
    pub post: u64,
    pub patch: u64,
    pub delete: u64,
    pub job_polls: u64,
}

impl Counts {
    /// The requests made since `before` was read.
    pub fn since(self, before: Counts) -> Counts {
        Counts {
            total: self.total - before.total,
            get: self.get - before.get,
            post: self.post - before.post,
            patch: self.patch - before.patch,
            delete: self.delete - before.delete,
            job_polls: self.job_polls - before.job_polls,
        }
    }

    /// The counts per `unit` (a volume, a cycle), as text.
    pub fn breakdown(self, unit: f64) -> String {
        let per = |n: u64| n as f64 / unit.max(1.0);
        format!(
            "{:.3} GET ({:.3} job polls, {:.3} other reads), {:.3} POST, {:.3} PATCH, {:.3} DELETE",
            per(self.get),
            per(self.job_polls),
            per(self.get - self.job_polls),
            per(self.post),
            per(self.patch),
            per(self.delete)
        )
    }
}
