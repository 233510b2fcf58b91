//! `[[cluster]]`: endpoint, credentials, TLS verification, time zone and simulator settings.

use std::ops::Range;

use toml::Spanned;

use super::names;
use super::values::{parse_tz, resolve_path, Required};
use super::{Reported, Subject};
use crate::config::diag::{hint, Collector};
use crate::config::load::{closest, At};
use crate::config::model::*;
use crate::config::raw::{RawCluster, RawSimulator};

/// License packages the simulator knows (ONTAP package names).
const KNOWN_LICENSES: &[&str] = &[
    "base",
    "nfs",
    "cifs",
    "iscsi",
    "fcp",
    "nvme_of",
    "s3",
    "snaprestore",
    "snapmirror",
    "snapmirror_sync",
    "flexclone",
    "snapvault",
    "snaplock",
    "snapmanagersuite",
    "snapprotectapps",
    "fabricpool",
];

pub(super) fn build_cluster(cx: &mut Collector, at: &At<RawCluster>) -> Option<Cluster> {
    let (file, c) = (at.file, &at.item);
    let mut need = Required::new(file, &at.span, "[[cluster]]");
    let name = need.key("name", &c.name);
    let endpoint = need.key("endpoint", &c.endpoint);
    need.report(cx);
    // Where to point at the cluster as a whole: its name, or its table when the name is missing.
    let at_name = Subject {
        span: name.map_or(at.span.clone(), |n| n.span()),
        text: name.map_or("this cluster".into(), |n| {
            format!("cluster \"{}\"", n.get_ref())
        }),
    };
    let mut ok = name.is_some();
    if let Some(n) = name {
        ok &= names::check(cx, file, n.span(), &names::CLUSTER, n.get_ref());
    }
    let endpoint = endpoint.map_or(Err(Reported), |e| cluster_endpoint(cx, file, e));
    // With an unusable endpoint, checks that depend on its kind are skipped (they would guess).
    let simulated = matches!(endpoint, Ok(Endpoint::Simulator));
    let real = matches!(endpoint, Ok(Endpoint::Url(_)));

    let username = match &c.username {
        Some(u) if u.get_ref().is_empty() => {
            cx.error(
                file,
                u.span(),
                "`username` is empty",
                hint("for example \"snapwarden\""),
            );
            Err(Reported)
        }
        Some(u) => Ok(u.get_ref().clone()),
        None if real => {
            cx.error(
                file,
                at_name.span.clone(),
                format!("{} has no `username`", at_name.text),
                hint("add username = \"snapwarden\" (an ONTAP user with the REST role)"),
            );
            Err(Reported)
        }
        None => Ok(SIMULATOR_USERNAME.into()),
    };
    let password = cluster_password(cx, file, c, &at_name, real);
    let tls = cluster_tls(cx, file, c);
    let timezone = match &c.timezone {
        None => Ok(ClusterTimezone::Auto),
        Some(tz) if tz.get_ref() == "auto" => Ok(ClusterTimezone::Auto),
        Some(tz) => parse_tz(tz.get_ref())
            .map(ClusterTimezone::Named)
            .map_err(|(message, h)| {
                let h = format!("{h} (or \"auto\" to read it from the cluster)");
                cx.error(file, tz.span(), message, hint(h));
                Reported
            }),
    };
    let simulator = match (&c.simulator, simulated) {
        (Some(sim), false) => {
            if real {
                cx.error(
                    file,
                    sim.span(),
                    "`simulator` settings are only allowed with endpoint = \"simulator\"",
                    hint("remove the simulator table or set endpoint = \"simulator\""),
                );
            }
            Err(Reported)
        }
        (None, false) => Ok(None),
        (sim, true) => simulator_settings(cx, file, sim.as_ref().map(|s| s.get_ref())).map(Some),
    };
    Some(Cluster {
        name: name?.get_ref().clone(),
        endpoint: endpoint.ok()?,
        username: username.ok()?,
        password: password.ok()?,
        tls: tls.ok()?,
        timezone: timezone.ok()?,
        simulator: simulator.ok()?,
    })
    .filter(|_| ok)
}

/// The simulator's user when the policy names none (the simulator accepts any password).
const SIMULATOR_USERNAME: &str = "admin";

fn cluster_endpoint(
    cx: &mut Collector,
    file: usize,
    endpoint: &Spanned<String>,
) -> Result<Endpoint, Reported> {
    match endpoint.get_ref().as_str() {
        "simulator" => Ok(Endpoint::Simulator),
        url if url.starts_with("https://") && url.len() > "https://".len() => {
            Ok(Endpoint::Url(url.to_string()))
        }
        url => {
            let h = if url.starts_with("http://") {
                "ONTAP's REST API is served over HTTPS; write \"https://…\""
            } else {
                "write \"https://cluster.example.net\" or \"simulator\""
            };
            cx.error(
                file,
                endpoint.span(),
                format!("bad endpoint \"{url}\""),
                hint(h),
            );
            Err(Reported)
        }
    }
}

/// Exactly one of `password_env`/`password_file` for a real cluster, at most one otherwise.
fn cluster_password(
    cx: &mut Collector,
    file: usize,
    c: &RawCluster,
    at_name: &Subject,
    real: bool,
) -> Result<Option<SecretSource>, Reported> {
    password_source(cx, file, &c.password_env, &c.password_file, at_name, real)
}

/// Exactly one of `password_env`/`password_file` when `required`, at most one otherwise (shared
/// by `[[cluster]]` and `[[veeam]]`).
pub(super) fn password_source(
    cx: &mut Collector,
    file: usize,
    password_env: &Option<Spanned<String>>,
    password_file: &Option<Spanned<String>>,
    at_name: &Subject,
    required: bool,
) -> Result<Option<SecretSource>, Reported> {
    match (password_env, password_file) {
        (Some(_), Some(f)) => {
            cx.error(
                file,
                f.span(),
                "`password_env` and `password_file` are both set",
                hint("keep one: the password comes from an environment variable or a file"),
            );
            Err(Reported)
        }
        (Some(env), None) if env.get_ref().is_empty() => {
            cx.error(
                file,
                env.span(),
                "`password_env` is empty",
                hint("name an environment variable, for example \"SNAPWARDEN_PROD_A_PASSWORD\""),
            );
            Err(Reported)
        }
        (Some(env), None) => Ok(Some(SecretSource::Env(env.get_ref().clone()))),
        (None, Some(f)) => Ok(Some(SecretSource::File(resolve_path(
            cx,
            file,
            f.get_ref(),
        )))),
        (None, None) if required => {
            cx.error(
                file,
                at_name.span.clone(),
                format!("{} has no password source", at_name.text),
                hint(
                    "add password_env = \"NAME\" or password_file = \"/path\"; secrets never \
                     live in the policy file",
                ),
            );
            Err(Reported)
        }
        (None, None) => Ok(None),
    }
}

/// At most one of `ca_file`, `pin_sha256` and `insecure = true`; none means the system roots.
fn cluster_tls(cx: &mut Collector, file: usize, c: &RawCluster) -> Result<TlsVerify, Reported> {
    tls_settings(cx, file, &c.ca_file, &c.pin_sha256, &c.insecure)
}

/// At most one of `ca_file`, `pin_sha256` and `insecure = true` (shared by `[[cluster]]` and
/// `[[veeam]]`).
pub(super) fn tls_settings(
    cx: &mut Collector,
    file: usize,
    ca_file: &Option<Spanned<String>>,
    pin_sha256: &Option<Spanned<String>>,
    insecure: &Option<Spanned<bool>>,
) -> Result<TlsVerify, Reported> {
    let insecure = insecure.as_ref().filter(|i| *i.get_ref());
    let chosen: Vec<(&str, Range<usize>)> = [
        ca_file.as_ref().map(|v| ("ca_file", v.span())),
        pin_sha256.as_ref().map(|v| ("pin_sha256", v.span())),
        insecure.map(|v| ("insecure", v.span())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some((first, _)) = chosen.first() {
        for (key, span) in &chosen[1..] {
            cx.error(
                file,
                span.clone(),
                format!("`{key}` conflicts with `{first}`"),
                hint("choose one of ca_file, pin_sha256 and insecure = true (none = system roots)"),
            );
        }
    }
    if chosen.len() > 1 {
        return Err(Reported);
    }
    if let Some(ca) = ca_file {
        return Ok(TlsVerify::CaFile(resolve_path(cx, file, ca.get_ref())));
    }
    if let Some(pin) = pin_sha256 {
        return parse_pin(pin.get_ref())
            .map(TlsVerify::PinSha256)
            .ok_or_else(|| {
                cx.error(
                file,
                pin.span(),
                "`pin_sha256` must be 64 hexadecimal digits (colons allowed)",
                hint(
                    "the SHA-256 of the certificate in DER form, e.g. from `openssl x509 -noout \
                     -fingerprint -sha256`",
                ),
            );
                Reported
            });
    }
    Ok(if insecure.is_some() {
        TlsVerify::Insecure
    } else {
        TlsVerify::System
    })
}

/// Settings of a simulated cluster, defaults filled in: version 9.14.1, licenses [snaprestore].
fn simulator_settings(
    cx: &mut Collector,
    file: usize,
    sim: Option<&RawSimulator>,
) -> Result<SimulatedCluster, Reported> {
    let mut settings = SimulatedCluster {
        version: "9.14.1".into(),
        licenses: vec!["snaprestore".into()],
    };
    let Some(sim) = sim else {
        return Ok(settings);
    };
    let mut ok = true;
    if let Some(v) = &sim.version {
        let parts: Vec<&str> = v.get_ref().split('.').collect();
        if parts.len() >= 2
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            settings.version = v.get_ref().clone();
        } else {
            ok = false;
            cx.error(
                file,
                v.span(),
                format!(
                    "simulator version \"{}\" is not an ONTAP version",
                    v.get_ref()
                ),
                hint("for example \"9.14.1\""),
            );
        }
    }
    if let Some(licenses) = &sim.licenses {
        settings.licenses.clear();
        for l in licenses {
            if KNOWN_LICENSES.contains(&l.get_ref().as_str()) {
                settings.licenses.push(l.get_ref().clone());
            } else {
                ok = false;
                let near = closest(l.get_ref(), KNOWN_LICENSES)
                    .map(|s| format!("did you mean \"{s}\"? "))
                    .unwrap_or_default();
                cx.error(
                    file,
                    l.span(),
                    format!("unknown license package \"{}\"", l.get_ref()),
                    hint(format!("{near}known: {}", KNOWN_LICENSES.join(", "))),
                );
            }
        }
    }
    if ok {
        Ok(settings)
    } else {
        Err(Reported)
    }
}

/// 64 hex digits, optionally separated by colons, as 32 bytes.
fn parse_pin(text: &str) -> Option<[u8; 32]> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}
