//! Shared helpers for the `sim_*` integration tests: start a simulator on loopback with a manual
//! clock and talk to it with plain reqwest + serde_json, as any ONTAP client would.
#![allow(dead_code)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use snapwarden::sim::{start, ClockMode, ServeOptions, ServerHandle, WorldSource};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "secret-pw";

/// A world TOML with the test user; `body` adds clusters and knobs.
pub fn world(body: &str) -> String {
    format!("[[users]]\nname = \"{USER}\"\npassword = \"{PASSWORD}\"\n{body}")
}

pub struct Sim {
    pub handle: ServerHandle,
    pub http: reqwest::Client,
    pub base: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub location: Option<String>,
}

impl Sim {
    /// Starts a plain-HTTP simulator on 127.0.0.1:0 with a manual clock at `start` (RFC 3339).
    pub async fn start(world_toml: &str, start_at: &str) -> Sim {
        let handle = start(ServeOptions {
            world: WorldSource::Toml(world(world_toml)),
            listen: "127.0.0.1:0".parse().unwrap(),
            clock: ClockMode::Manual,
            start: Some(start_at.parse().unwrap()),
            tls: false,
        })
        .await
        .expect("simulator starts");
        let base = handle.base_url();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Sim { handle, http, base }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let url = format!("{}{}", self.base, path);
        let mut req = self
            .http
            .request(method, url)
            .basic_auth(USER, Some(PASSWORD));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        Reply {
            status,
            body,
            location,
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self.call(Method::GET, path, None).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.body);
        r.body
    }

    /// Waits (bounded) for the job in a 202 answer to end and returns the job record.
    pub async fn job(&self, reply: &Reply) -> Value {
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        let href = reply.body["job"]["_links"]["self"]["href"]
            .as_str()
            .expect("job link")
            .to_string();
        for _ in 0..100 {
            let job = self.get(&href).await;
            if job["state"] != "running" && job["state"] != "queued" {
                return job;
            }
            tokio::task::yield_now().await;
        }
        panic!("job {href} did not end");
    }

    /// Runs a mutation that must answer 202 and end in a successful job; returns the Location.
    pub async fn ok_job(&self, method: Method, path: &str, body: Option<Value>) -> Option<String> {
        let r = self.call(method, path, body).await;
        let job = self.job(&r).await;
        assert_eq!(job["state"], "success", "{path}: {job}");
        r.location
    }

    /// Runs a mutation that must answer 202 and end in a failed job; returns the job.
    pub async fn failed_job(&self, method: Method, path: &str) -> Value {
        let r = self.call(method, path, None).await;
        let job = self.job(&r).await;
        assert_eq!(job["state"], "failure", "{path}: {job}");
        job
    }

    /// Advances the manual clock; the answer has `now` and `counts` (no events).
    pub async fn advance(&self, seconds: i64) -> Value {
        self.advance_with(json!({ "seconds": seconds })).await
    }

    /// Advances the manual clock asking for the events too (`"events": true`).
    pub async fn advance_events(&self, seconds: i64) -> Value {
        self.advance_with(json!({ "seconds": seconds, "events": true }))
            .await
    }

    async fn advance_with(&self, body: Value) -> Value {
        let r = self
            .call(Method::POST, "/simulator/v1/clock/advance", Some(body))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }

    pub async fn volume_uuid(&self, name: &str) -> String {
        let v = self.get(&format!("/api/storage/volumes?name={name}")).await;
        v["records"][0]["uuid"]
            .as_str()
            .expect("volume")
            .to_string()
    }

    pub async fn snapshot(&self, vol: &str, name: &str) -> Value {
        let s = self
            .get(&format!(
                "/api/storage/volumes/{vol}/snapshots?name={name}&fields=owners,create_time,comment"
            ))
            .await;
        assert_eq!(s["num_records"], 1, "snapshot {name}: {s}");
        s["records"][0].clone()
    }

    pub async fn snapshot_names(&self, vol: &str) -> Vec<String> {
        let s = self
            .get(&format!(
                "/api/storage/volumes/{vol}/snapshots?order_by=create_time"
            ))
            .await;
        s["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn lun_uuid(&self, path: &str) -> String {
        let l = self.get(&format!("/api/storage/luns?name={path}")).await;
        l["records"][0]["uuid"].as_str().expect("lun").to_string()
    }
}
