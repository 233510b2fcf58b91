//! `[ha]`: the election backend, its members, the lease, the key, this replica's identity, and
//! the credentials and TLS settings for the election service (the same keys clusters take).

use toml::Spanned;

use super::cluster::{password_source, tls_settings};
use super::values::{bounded_duration, Bounds, Required};
use super::{Reported, Subject};
use crate::config::diag::{hint, Collector};
use crate::config::load::At;
use crate::config::model::{Ha, HaBackend, TlsVerify};
use crate::config::raw::RawHa;

/// `[ha] lease_ttl`: 2s ..= 5m.
const LEASE_TTL: Bounds = Bounds {
    min_seconds: 2,
    max_seconds: 300,
    why: "leadership lapses this long after the leader's last keep-alive: under 2s a busy host \
          loses leadership between keep-alives, over 5 minutes a dead leader blocks every cycle \
          for too long",
};

/// Default `lease_ttl`: a dead leader is replaced within a quarter minute.
const DEFAULT_LEASE_TTL_SECONDS: i64 = 15;

/// At most this many `endpoints` (an etcd cluster has 3, 5 or 7 members).
const MAX_ENDPOINTS: usize = 16;

/// Longest election key and identity (etcd keys are bytes; this keeps them readable in logs).
const MAX_KEY_BYTES: usize = 512;
const MAX_IDENTITY_BYTES: usize = 128;

pub(super) fn build_ha(
    cx: &mut Collector,
    raw: Option<&At<RawHa>>,
) -> Result<Option<Ha>, Reported> {
    let Some(at) = raw else {
        return Ok(None);
    };
    let (file, h) = (at.file, &at.item);
    let mut need = Required::new(file, &at.span, "[ha]");
    let backend = need.key("backend", &h.backend);
    let endpoints = need.key("endpoints", &h.endpoints);
    need.report(cx);
    let mut ok = backend.is_some() && endpoints.is_some();

    if let Some(b) = backend {
        if b.get_ref() != "etcd" {
            ok = false;
            cx.error(
                file,
                b.span(),
                format!("unknown `backend` \"{}\"", b.get_ref()),
                hint("the election backend snapwarden supports is \"etcd\""),
            );
        }
    }

    let (urls, urls_ok) = endpoints.map_or((Vec::new(), true), |l| members(cx, file, l));
    ok &= urls_ok;
    let any_https = urls.iter().any(|u| u.starts_with("https://"));

    let lease_ttl = match &h.lease_ttl {
        None => Some(chrono::TimeDelta::seconds(DEFAULT_LEASE_TTL_SECONDS)),
        Some(t) => bounded_duration(cx, file, t, "lease_ttl", &LEASE_TTL),
    };
    ok &= lease_ttl.is_some();

    let key = match &h.key {
        None => Some(default_key(cx.sources.path(0))),
        Some(k) => text(
            cx,
            file,
            k,
            "key",
            MAX_KEY_BYTES,
            |s| s.starts_with('/'),
            "an absolute key, for example \"/snapwarden/prod/leader\"",
        ),
    };
    ok &= key.is_some();
    let identity = match &h.identity {
        None => Some(default_identity()),
        Some(i) => text(
            cx,
            file,
            i,
            "identity",
            MAX_IDENTITY_BYTES,
            |s| !s.chars().any(char::is_whitespace),
            "a name without spaces, for example \"snapwarden-a\"",
        ),
    };
    ok &= identity.is_some();

    let at_ha = Subject {
        span: at.span.clone(),
        text: "[ha]".into(),
    };
    let username = username(cx, file, &h.username);
    let with_user = matches!(username, Ok(Some(_)));
    let password = password_source(
        cx,
        file,
        &h.password_env,
        &h.password_file,
        &at_ha,
        with_user,
    );
    if let (Ok(None), Ok(Some(_))) = (&username, &password) {
        ok = false;
        cx.error(
            file,
            at.span.start..at.span.start,
            "[ha] has a password source but no `username`",
            hint("etcd authenticates a user name and a password: add username = \"snapwarden\""),
        );
    }
    let tls = tls_settings(cx, file, &h.ca_file, &h.pin_sha256, &h.insecure);
    if let Ok(t) = &tls {
        if *t != TlsVerify::System && !any_https && !urls.is_empty() {
            ok = false;
            tls_without_https(cx, at);
        }
    }
    if !ok {
        return Err(Reported);
    }
    Ok(Some(Ha {
        backend: HaBackend::Etcd,
        endpoints: urls,
        lease_ttl: lease_ttl.ok_or(Reported)?,
        key: key.ok_or(Reported)?,
        identity: identity.ok_or(Reported)?,
        username: username?,
        password: password?,
        tls: tls?,
    }))
}

/// `username`: not empty when given.
fn username(
    cx: &mut Collector,
    file: usize,
    raw: &Option<Spanned<String>>,
) -> Result<Option<String>, Reported> {
    match raw {
        Some(u) if u.get_ref().is_empty() => {
            cx.error(
                file,
                u.span(),
                "`username` is empty",
                hint("an etcd user, for example \"snapwarden\""),
            );
            Err(Reported)
        }
        Some(u) => Ok(Some(u.get_ref().clone())),
        None => Ok(None),
    }
}

/// Reports TLS settings given while no member is reached over `https://`, at the first of them.
fn tls_without_https(cx: &mut Collector, at: &At<RawHa>) {
    let h = &at.item;
    let span = [&h.ca_file, &h.pin_sha256]
        .into_iter()
        .flatten()
        .map(|v| v.span())
        .chain(h.insecure.as_ref().map(|v| v.span()))
        .next()
        .unwrap_or(at.span.clone());
    cx.error(
        at.file,
        span,
        "TLS settings in [ha] but no `https://` endpoint",
        hint("write the endpoints as https://… or remove ca_file, pin_sha256 and insecure"),
    );
}

/// `endpoints`: 1 to [`MAX_ENDPOINTS`] etcd client URLs, each usable; `false` when not so
/// (every problem reported).
fn members(
    cx: &mut Collector,
    file: usize,
    list: &Spanned<Vec<Spanned<String>>>,
) -> (Vec<String>, bool) {
    let mut ok = true;
    let mut urls = Vec::new();
    if list.get_ref().is_empty() || list.get_ref().len() > MAX_ENDPOINTS {
        ok = false;
        cx.error(
            file,
            list.span(),
            format!("`endpoints` must list 1 to {MAX_ENDPOINTS} members"),
            hint("for example [\"http://10.0.0.1:2379\", \"http://10.0.0.2:2379\", \"http://10.0.0.3:2379\"]"),
        );
    }
    for e in list.get_ref() {
        match endpoint(e) {
            Ok(url) => urls.push(url),
            Err(message) => {
                ok = false;
                cx.error(
                    file,
                    e.span(),
                    message,
                    hint("an etcd client URL, for example \"http://127.0.0.1:2379\" or \"https://etcd-1.example.net:2379\""),
                );
            }
        }
    }
    (urls, ok)
}

/// An etcd client URL: `http(s)://host:port` with nothing after the port but an optional `/`.
fn endpoint(e: &Spanned<String>) -> Result<String, String> {
    let url = e.get_ref().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            format!(
                "bad endpoint \"{}\": not an http:// or https:// URL",
                e.get_ref()
            )
        })?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("bad endpoint \"{}\": no port", e.get_ref()))?;
    let host_ok = !host.is_empty()
        && !host.contains(['/', '@', '?', '#'])
        && !host.chars().any(char::is_whitespace);
    if !host_ok || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!(
            "bad endpoint \"{}\": expected scheme://host:port",
            e.get_ref()
        ));
    }
    Ok(url.to_string())
}

/// A non-empty bounded string value that passes `valid`.
fn text(
    cx: &mut Collector,
    file: usize,
    value: &Spanned<String>,
    key: &str,
    max: usize,
    valid: impl Fn(&str) -> bool,
    expected: &str,
) -> Option<String> {
    let s = value.get_ref();
    if s.is_empty() || s.len() > max || s.chars().any(char::is_control) || !valid(s) {
        cx.error(
            file,
            value.span(),
            format!("bad `{key}` \"{}\"", s.chars().take(80).collect::<String>()),
            hint(format!("{expected}; at most {max} bytes")),
        );
        return None;
    }
    Some(s.clone())
}

/// `/snapwarden/<policy file stem>/leader`: replicas of one policy file share the key.
fn default_key(policy: &std::path::Path) -> String {
    let stem = policy
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "policy".into());
    format!("/snapwarden/{stem}/leader")
}

/// `<host name>-<pid>`: unique among the replicas of one host and readable in `status`.
pub fn default_identity() -> String {
    // The kernel's host name (what `hostname` prints); the file is one short line.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .take(64)
        .collect();
    let host = if host.is_empty() {
        "snapwarden".into()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}
