//! `[[veeam]]`: a Veeam Backup & Replication server (URL, credentials, TLS, API version), and a
//! window's `driver` with its `veeam = { server, job }` table.

use super::cluster::{password_source, tls_settings};
use super::values::Required;
use super::{Names, Reported, Subject};
use crate::config::diag::{hint, Collector};
use crate::config::driver::{
    Driver, VeeamJobRef, VeeamServer, DEFAULT_VEEAM_API_VERSION, VEEAM_SIMULATOR_URL,
};
use crate::config::load::At;
use crate::config::model::OnOverrun;
use crate::config::raw::{RawVeeam, RawWindow};

/// Longest URL, user name, job and API version accepted: typo guards, far above real values.
const MAX_URL_BYTES: usize = 2048;
const MAX_TEXT_BYTES: usize = 256;

pub(super) fn build_veeam(cx: &mut Collector, at: &At<RawVeeam>) -> Option<VeeamServer> {
    let (file, v) = (at.file, &at.item);
    let mut need = Required::new(file, &at.span, "[[veeam]]");
    let name = need.key("name", &v.name);
    let url = need.key("url", &v.url);
    let username = need.key("username", &v.username);
    need.report(cx);
    let at_name = Subject {
        span: name.map_or(at.span.clone(), |n| n.span()),
        text: name.map_or("this Veeam server".into(), |n| {
            format!("Veeam server \"{}\"", n.get_ref())
        }),
    };
    let mut ok = true;
    if let Some(n) = name {
        let name = n.get_ref();
        if name.is_empty()
            || name.len() > MAX_TEXT_BYTES
            || name.contains('/')
            || name.chars().any(char::is_whitespace)
        {
            ok = false;
            cx.error(
                file,
                n.span(),
                format!("Veeam server name \"{name}\" must be non-empty without '/' or spaces"),
                hint("windows name the server with veeam = { server = \"NAME\", … }"),
            );
        }
    }
    let simulator = url.is_some_and(|u| u.get_ref() == VEEAM_SIMULATOR_URL);
    let url = url.and_then(|u| match server_url(u.get_ref()) {
        _ if simulator => Some(VEEAM_SIMULATOR_URL.to_string()),
        Ok(url) => Some(url),
        Err(why) => {
            cx.error(
                file,
                u.span(),
                format!("bad Veeam url \"{}\": {why}", u.get_ref()),
                hint(
                    "write \"https://vbr.example.net:9419\" (the REST API's default port is 9419), or \"simulator\" for the embedded simulator",
                ),
            );
            None
        }
    });
    let username = username.and_then(|u| {
        let text = u.get_ref();
        if text.is_empty() || text.len() > MAX_TEXT_BYTES {
            cx.error(
                file,
                u.span(),
                "`username` must be non-empty and at most 256 bytes",
                hint("a Veeam user with the Backup Operator role, e.g. \"DOMAIN\\\\snapwarden\""),
            );
            None
        } else {
            Some(text.clone())
        }
    });
    let password = password_source(
        cx,
        file,
        &v.password_env,
        &v.password_file,
        &at_name,
        !simulator,
    );
    let tls = tls_settings(cx, file, &v.ca_file, &v.pin_sha256, &v.insecure);
    let api_version = match &v.api_version {
        None => Some(DEFAULT_VEEAM_API_VERSION.to_string()),
        Some(a) if is_api_version(a.get_ref()) => Some(a.get_ref().clone()),
        Some(a) => {
            cx.error(
                file,
                a.span(),
                format!(
                    "`api_version` \"{}\" is not <major>.<minor>-rev<n>",
                    a.get_ref()
                ),
                hint(format!(
                    "for example \"{DEFAULT_VEEAM_API_VERSION}\" (the default) or \"1.3-rev1\""
                )),
            );
            None
        }
    };
    Some(VeeamServer {
        name: name?.get_ref().clone(),
        url: url?,
        username: username?,
        password: password.ok()?,
        tls: tls.ok()?,
        api_version: api_version?,
    })
    .filter(|_| ok)
}

/// `https://host[:port]` only: the client builds absolute paths (`/api/…`), and credentials in a
/// URL would end up in messages (secrets never live in the policy file).
fn server_url(s: &str) -> Result<String, String> {
    if s.len() > MAX_URL_BYTES {
        return Err(format!("longer than {MAX_URL_BYTES} bytes"));
    }
    let url = reqwest::Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
    if url.scheme() != "https" {
        return Err("Veeam's REST API is served over HTTPS; write https://…".into());
    }
    if url.host().is_none() {
        return Err("no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("carries credentials; secrets never live in the policy file".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("only scheme, host and port are allowed (no path, query or fragment)".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// `<major>.<minor>-rev<n>`, digits only, as in `1.1-rev0`.
fn is_api_version(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
    let Some((version, revision)) = s.split_once("-rev") else {
        return false;
    };
    let Some((major, minor)) = version.split_once('.') else {
        return false;
    };
    digits(major) && digits(minor) && digits(revision)
}

/// A window's `driver` and its `veeam` table: the table exactly with `driver = "veeam"`, a hook
/// with `driver = "hook"`, no hook with `driver = "veeam"`. `has_hook` is whether `hook` is set.
pub(super) fn window_driver(
    cx: &mut Collector,
    file: usize,
    w: &RawWindow,
    label: &str,
    servers: &Names<'_>,
    on_overrun: OnOverrun,
) -> Result<Driver, Reported> {
    let driver = w.driver.as_ref().map(|d| (d.get_ref().as_str(), d.span()));
    let kind = match driver {
        None | Some(("snapwarden", _)) => "snapwarden",
        Some(("veeam", _)) => "veeam",
        Some(("hook", _)) => "hook",
        Some((other, span)) => {
            cx.error(
                file,
                span,
                format!("unknown driver \"{other}\""),
                hint("use snapwarden (the default), veeam or hook"),
            );
            return Err(Reported);
        }
    };
    let driver_span = driver.map(|(_, s)| s).unwrap_or_default();
    match (kind, &w.veeam) {
        ("veeam", None) => {
            cx.error(
                file,
                driver_span,
                format!("{label} has driver = \"veeam\" but no `veeam` table"),
                hint("add veeam = { server = \"NAME\", job = \"JOB NAME OR ID\" }"),
            );
            Err(Reported)
        }
        ("veeam", Some(table)) => {
            let mut ok = true;
            if let Some(hook) = &w.hook {
                ok = false;
                cx.error(
                    file,
                    hook.span(),
                    format!("{label} has driver = \"veeam\" and a `hook`"),
                    hint("the Veeam job is the backup; remove the hook, or use driver = \"hook\""),
                );
            }
            let t = table.get_ref();
            let table_span = table.span();
            let mut need = Required::new(file, &table_span, "the window's veeam table");
            let server = need.key("server", &t.server);
            let job = need.key("job", &t.job);
            need.report(cx);
            let server = server.and_then(|s| servers.resolve(cx, file, s));
            let job = job.and_then(|j| {
                let at = cx.position(file, j.span().start);
                let text = j.get_ref();
                if text.trim().is_empty() || text.len() > MAX_TEXT_BYTES {
                    cx.error(
                        file,
                        j.span(),
                        "`job` must name a Veeam job (non-empty, at most 256 bytes)",
                        hint("the job's name as the Veeam console shows it, or its id (a UUID)"),
                    );
                    None
                } else {
                    Some((text.clone(), at))
                }
            });
            match (server, job) {
                (Some(server), Some((job, at))) if ok => {
                    Ok(Driver::Veeam(VeeamJobRef { server, job, at }))
                }
                _ => Err(Reported),
            }
        }
        (other, Some(table)) => {
            cx.error(
                file,
                table.span(),
                format!(
                    "a `veeam` table needs driver = \"veeam\" ({label} has driver \"{other}\")"
                ),
                hint("add driver = \"veeam\", or remove the veeam table"),
            );
            Err(Reported)
        }
        ("hook", None) if w.hook.is_none() => {
            cx.error(
                file,
                driver_span,
                format!("{label} has driver = \"hook\" but no `hook`"),
                hint("add hook = { command = [\"/usr/local/bin/run-backup\"] } (or url = …)"),
            );
            Err(Reported)
        }
        ("hook", None) => Ok(Driver::Hook(on_overrun)),
        _ => Ok(Driver::Snapwarden(on_overrun)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_scheme_host_and_port_only() {
        assert_eq!(
            server_url("https://vbr.example.net:9419/").as_deref(),
            Ok("https://vbr.example.net:9419")
        );
        assert_eq!(
            server_url("https://VBR.example.net").as_deref(),
            Ok("https://vbr.example.net")
        );
        for bad in [
            "http://vbr:9419",
            "https://u:p@vbr:9419",
            "https://vbr:9419/api",
            "https://vbr:9419?x=1",
            "vbr:9419",
            "https://",
        ] {
            assert!(server_url(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn api_versions() {
        for good in ["1.1-rev0", "1.3-rev1", "10.22-rev333"] {
            assert!(is_api_version(good), "{good}");
        }
        for bad in [
            "1.1",
            "1-rev0",
            "1.1-rev",
            "v1.1-rev0",
            "1.1-rev0 ",
            "1.x-rev0",
            "",
        ] {
            assert!(!is_api_version(bad), "{bad}");
        }
    }
}
