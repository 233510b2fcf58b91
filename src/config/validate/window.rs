//! `[[window]]`: a backup window's volumes, start, zone, durations, conflict and overrun rules
//! and hook (its driver is checked in `veeam`).

use chrono::TimeDelta;

use super::values::{bounded_duration, cron_string, timezone, Bounds, Required};
use super::Names;
use crate::config::diag::{hint, Collector};
use crate::config::load::At;
use crate::config::model::*;
use crate::config::raw::{RawHook, RawWindow};
use toml::Spanned;

/// Two hours: room to move a nightly window past a couple of hourly snapshots.
const DEFAULT_SHIFT_LIMIT_SECONDS: i64 = 2 * 3600;

/// A week: a backup longer than that cannot sit between two snapshots of any schedule that takes
/// weekly snapshots, so larger values are typos.
const WEEK_SECONDS: i64 = 7 * 86_400;

/// `expected` and `max`: 1s ..= 7d.
const LENGTH: Bounds = Bounds {
    min_seconds: 1,
    max_seconds: WEEK_SECONDS,
    why: "a backup takes at least a second, and one longer than a week (7d) cannot sit between \
          two snapshots of a weekly schedule",
};

/// `shift_limit`: 0s ..= 7d.
const SHIFT_LIMIT: Bounds = Bounds {
    min_seconds: 0,
    max_seconds: WEEK_SECONDS,
    why: "0s never shifts; shifting by more than a week (7d) moves a run past the next week's",
};

/// Hook `timeout`: 1s ..= 7d.
const HOOK_TIMEOUT: Bounds = Bounds {
    min_seconds: 1,
    max_seconds: WEEK_SECONDS,
    why: "the hook runs the backup, which takes between a second and a week (7d), like `max`",
};

pub(super) fn build_window(
    cx: &mut Collector,
    at: &At<RawWindow>,
    volumes_by_id: &Names<'_>,
    veeam_servers: &Names<'_>,
) -> Option<Window> {
    let (file, w) = (at.file, &at.item);
    let mut need = Required::new(file, &at.span, "[[window]]");
    let name = need.key("name", &w.name);
    let listed = need.key("volumes", &w.volumes);
    let start = need.key("start", &w.start);
    let zone = need.key("timezone", &w.timezone);
    let expected_raw = need.key("expected", &w.expected);
    let max_raw = need.key("max", &w.max);
    need.report(cx);
    let mut ok = true;
    if let Some(n) = name {
        let name = n.get_ref();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            ok = false;
            cx.error(
                file,
                n.span(),
                format!("window name \"{name}\" may only use A-Z a-z 0-9 _ -"),
                hint("window names become part of backing snapshot names, e.g. \"sql-nightly\""),
            );
        }
    }
    let label = name.map_or("this window".into(), |n| {
        format!("window \"{}\"", n.get_ref())
    });
    let (volumes, volumes_ok) = window_volumes(cx, file, listed, &label, volumes_by_id);
    ok &= volumes_ok;
    let start = start.and_then(|s| cron_string(cx, file, s, "start"));
    let timezone = zone.and_then(|z| timezone(cx, file, z));
    let expected = expected_raw.and_then(|e| bounded_duration(cx, file, e, "expected", &LENGTH));
    let max = max_raw.and_then(|m| bounded_duration(cx, file, m, "max", &LENGTH));
    if let (Some(e), Some(m), Some(e_raw), Some(m_raw)) = (expected, max, expected_raw, max_raw) {
        if e > m {
            ok = false;
            cx.error(
                file,
                e_raw.span(),
                format!(
                    "`expected` ({}) is longer than `max` ({})",
                    e_raw.get_ref(),
                    m_raw.get_ref()
                ),
                hint("`max` bounds the backup; raise it or lower `expected`"),
            );
        }
    }
    let on_conflict = on_conflict(cx, file, &w.on_conflict);
    let on_overrun = on_overrun(cx, file, &w.on_overrun);
    if let (Some(o), Some(d)) = (&w.on_overrun, &w.driver) {
        if d.get_ref() == "veeam" {
            ok = false;
            cx.error(
                file,
                o.span(),
                format!("{label} has driver = \"veeam\" and `on_overrun`"),
                hint("snapwarden never stops a Veeam job: a Veeam window always finishes; remove on_overrun"),
            );
        }
    }
    let shift_limit = match &w.shift_limit {
        None => Some(TimeDelta::seconds(DEFAULT_SHIFT_LIMIT_SECONDS)),
        Some(s) => bounded_duration(cx, file, s, "shift_limit", &SHIFT_LIMIT),
    };
    let hook = match &w.hook {
        None => Some(None),
        Some(spanned) => {
            let (hook, hook_ok) = window_hook(cx, file, spanned, max, on_overrun);
            ok &= hook_ok;
            hook.map(Some)
        }
    };
    let driver = on_overrun
        .ok_or(super::Reported)
        .and_then(|o| super::veeam::window_driver(cx, file, w, &label, veeam_servers, o));
    Some(Window {
        name: name?.get_ref().clone(),
        volumes,
        start: start?,
        timezone: timezone?,
        expected: expected?,
        max: max?,
        on_conflict: on_conflict?,
        shift_limit: shift_limit?,
        hook: hook?,
        driver: driver.ok()?,
    })
    .filter(|_| ok)
}

/// `on_conflict`: `shift` (the default), `skip` or `run`; `None` when unknown (reported).
fn on_conflict(
    cx: &mut Collector,
    file: usize,
    raw: &Option<Spanned<String>>,
) -> Option<OnConflict> {
    match raw.as_ref().map(|c| c.get_ref().as_str()) {
        None | Some("shift") => Some(OnConflict::Shift),
        Some("skip") => Some(OnConflict::Skip),
        Some("run") => Some(OnConflict::Run),
        Some(other) => {
            let span = raw.as_ref().map(|c| c.span()).unwrap_or_default();
            cx.error(
                file,
                span,
                format!("unknown on_conflict \"{other}\""),
                hint("use shift, skip or run"),
            );
            None
        }
    }
}

/// `on_overrun`: `release` (the default) or `finish`; `None` when unknown (reported).
fn on_overrun(cx: &mut Collector, file: usize, raw: &Option<Spanned<String>>) -> Option<OnOverrun> {
    match raw.as_ref().map(|c| c.get_ref().as_str()) {
        None | Some("release") => Some(OnOverrun::Release),
        Some("finish") => Some(OnOverrun::Finish),
        Some(other) => {
            let span = raw.as_ref().map(|c| c.span()).unwrap_or_default();
            cx.error(
                file,
                span,
                format!("unknown on_overrun \"{other}\""),
                hint("use release (end the backup at max) or finish (let it finish, at the risk of a chain conflict)"),
            );
            None
        }
    }
}

/// The window's volumes, by policy index: the list is not empty, and each volume is known and
/// listed once. `false` when it is not so (every problem reported).
fn window_volumes(
    cx: &mut Collector,
    file: usize,
    listed: Option<&Spanned<Vec<Spanned<String>>>>,
    label: &str,
    volumes_by_id: &Names<'_>,
) -> (Vec<usize>, bool) {
    let mut ok = true;
    let mut volumes = Vec::new();
    match listed {
        Some(l) if l.get_ref().is_empty() => {
            ok = false;
            cx.error(
                file,
                l.span(),
                format!("{label} names no volumes"),
                hint("add volumes = [\"cluster/svm/volume\"]"),
            );
        }
        Some(_) => {}
        None => ok = false,
    }
    for id in listed.map_or(&[][..], |l| l.get_ref()) {
        match volumes_by_id.resolve(cx, file, id) {
            Some(i) if volumes.contains(&i) => {
                ok = false;
                cx.error(
                    file,
                    id.span(),
                    format!("volume \"{}\" is listed twice in {label}", id.get_ref()),
                    hint("list each volume once"),
                );
            }
            Some(i) => volumes.push(i),
            None => ok = false,
        }
    }
    (volumes, ok)
}

/// A window's `hook`: a program or a webhook, and its `timeout` (by default the window's
/// backup limit). The hook is `None` when its action or timeout is unusable; `false` when the
/// hook is invalid (every problem reported).
fn window_hook(
    cx: &mut Collector,
    file: usize,
    spanned: &Spanned<RawHook>,
    max: Option<TimeDelta>,
    on_overrun: Option<OnOverrun>,
) -> (Option<Hook>, bool) {
    let mut ok = true;
    let h = spanned.get_ref();
    let action = match (&h.command, &h.url) {
        (Some(command), None) => {
            let argv: Vec<String> = command
                .get_ref()
                .iter()
                .map(|c| c.get_ref().clone())
                .collect();
            if argv.first().is_none_or(String::is_empty) {
                ok = false;
                cx.error(
                    file,
                    command.span(),
                    "hook `command` needs a program",
                    hint("command = [\"/usr/local/bin/run-backup\", \"--arg\"]"),
                );
            }
            Some(HookAction::Command(argv))
        }
        (None, Some(url)) => match webhook_url(url.get_ref()) {
            Ok(u) => Some(HookAction::Webhook(u)),
            Err(why) => {
                ok = false;
                cx.error(
                    file,
                    url.span(),
                    format!("hook `url` \"{}\" {why}", url.get_ref()),
                    hint("url = \"https://backup.example.net/api/snapwarden\""),
                );
                None
            }
        },
        (Some(_), Some(url)) => {
            ok = false;
            cx.error(
                file,
                url.span(),
                "a hook has either `command` or `url`, not both",
                hint("keep `command` to run a program, or `url` to call a webhook"),
            );
            None
        }
        (None, None) => {
            ok = false;
            cx.error(
                file,
                spanned.span(),
                "a hook needs `command` (a program) or `url` (a webhook)",
                hint("hook = { command = [\"/usr/local/bin/run-backup\"] }"),
            );
            None
        }
    };
    let timeout = match &h.timeout {
        None => max.zip(on_overrun).map(|(m, o)| o.backup_limit(m)),
        Some(t) => bounded_duration(cx, file, t, "timeout", &HOOK_TIMEOUT),
    };
    let hook = match (action, timeout) {
        (Some(action), Some(timeout)) => Some(Hook { action, timeout }),
        _ => None,
    };
    (hook, ok)
}

/// Longest webhook URL accepted (a typo guard; real endpoints are far shorter).
const MAX_URL_BYTES: usize = 2048;

/// A webhook URL: absolute `http(s)://host…`, no credentials (secrets never live in the policy).
fn webhook_url(s: &str) -> Result<String, String> {
    if s.len() > MAX_URL_BYTES {
        return Err(format!("is longer than {MAX_URL_BYTES} bytes"));
    }
    let url = reqwest::Url::parse(s).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("carries credentials; secrets never live in the policy file".into());
    }
    Ok(url.to_string())
}
