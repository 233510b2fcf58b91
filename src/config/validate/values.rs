//! Value parsers shared by every section: paths, durations, time zones, crons, snapshot names.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::TimeDelta;
use chrono_tz::Tz;
use toml::Spanned;

use crate::config::diag::{hint, Collector};
use crate::config::duration::parse_duration;
use crate::timeline::{CronError, CronSpec};

/// A path from the policy (`state_dir`, `ca_file`, …): as written when absolute, otherwise relative
/// to the directory of the file that names it.
pub(super) fn resolve_path(cx: &Collector, file: usize, value: &str) -> PathBuf {
    let p = Path::new(value);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    cx.sources
        .path(file)
        .parent()
        .unwrap_or(Path::new(""))
        .join(p)
}

fn duration(
    cx: &mut Collector,
    file: usize,
    value: &Spanned<String>,
    key: &str,
) -> Option<TimeDelta> {
    match parse_duration(value.get_ref()) {
        Ok(d) => Some(d),
        Err(e) => {
            cx.error(
                file,
                value.span(),
                format!("bad duration for `{key}`: {e}"),
                hint("human units are w, d, h, m, s (largest first); ISO-8601 is PnWnDTnHnMnS"),
            );
            None
        }
    }
}

/// The required keys missing from one entry (`what`, as in "[[window]]"), reported together in
/// one diagnostic at the entry's start so they do not hide each other or the entry's other errors.
pub(super) struct Required<'e> {
    file: usize,
    entry: &'e Range<usize>,
    what: &'static str,
    missing: Vec<&'static str>,
}

impl<'e> Required<'e> {
    pub(super) fn new(file: usize, entry: &'e Range<usize>, what: &'static str) -> Self {
        Required {
            file,
            entry,
            what,
            missing: Vec::new(),
        }
    }

    /// The value of required `key`, remembering it as missing when it is.
    pub(super) fn key<'a, T>(
        &mut self,
        key: &'static str,
        value: &'a Option<Spanned<T>>,
    ) -> Option<&'a Spanned<T>> {
        if value.is_none() {
            self.missing.push(key);
        }
        value.as_ref()
    }

    pub(super) fn report(self, cx: &mut Collector) {
        let keys: Vec<String> = self.missing.iter().map(|k| format!("`{k}`")).collect();
        let message = match keys.len() {
            0 => return,
            1 => format!("in {}: missing required key {}", self.what, keys[0]),
            _ => format!(
                "in {}: missing required keys {}",
                self.what,
                keys.join(", ")
            ),
        };
        cx.error(
            self.file,
            self.entry.start..self.entry.start,
            message,
            hint("config/reference.toml documents every key and its type"),
        );
    }
}

/// The values a duration key accepts, inclusive, and why: `config/reference.toml` documents the
/// same bounds with the same reasons.
///
/// Invariant: `0 <= min <= max`; every bound of the policy is far inside chrono's range, so the
/// planner and timeline can add these durations to any instant of a horizon without overflow.
pub(super) struct Bounds {
    pub(super) min_seconds: i64,
    pub(super) max_seconds: i64,
    /// Shown as the hint when a value is out of range.
    pub(super) why: &'static str,
}

impl Bounds {
    /// The same bounds as a `domain::limits` bound, with its reason.
    pub(super) const fn of(bound: &crate::domain::limits::Bound) -> Bounds {
        Bounds {
            min_seconds: bound.min.num_seconds(),
            max_seconds: bound.max.num_seconds(),
            why: bound.why,
        }
    }
}

/// A duration within `bounds`; a value outside is reported at the value with the bounds' reason.
pub(super) fn bounded_duration(
    cx: &mut Collector,
    file: usize,
    value: &Spanned<String>,
    key: &str,
    bounds: &Bounds,
) -> Option<TimeDelta> {
    let d = duration(cx, file, value, key)?;
    let within = d.num_seconds() >= bounds.min_seconds
        && d.num_seconds() <= bounds.max_seconds
        && d.subsec_nanos() == 0;
    if !within {
        cx.error(
            file,
            value.span(),
            format!(
                "`{key}` \"{}\" is out of range {}..={}",
                value.get_ref(),
                human(bounds.min_seconds),
                human(bounds.max_seconds)
            ),
            hint(bounds.why),
        );
        return None;
    }
    Some(d)
}

/// Whole seconds in days, hours, minutes and seconds as the policy writes them: "7d", "1h30m".
pub(super) fn human(seconds: i64) -> String {
    if seconds == 0 {
        return "0s".into();
    }
    let mut rest = seconds;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        let n = rest / size;
        if n != 0 {
            out.push_str(&format!("{n}{unit}"));
            rest %= size;
        }
    }
    out
}

/// ONTAP snapshot names take `[A-Za-z0-9_.-]`.
pub(super) fn is_snapshot_charset(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Longest `snapmirror_label` ONTAP accepts, in characters (reference notes §2.2).
pub(super) const MAX_SNAPMIRROR_LABEL: usize = 31;

/// A SnapMirror label: 1 to 31 of `[A-Za-z0-9_.-]`. ONTAP documents only the length; the
/// characters are the ones snapshot names take, which every label ONTAP's own policies use
/// (`hourly`, `daily`, `weekly`, `5min`) keeps to.
pub(super) fn is_snapmirror_label(s: &str) -> bool {
    is_snapshot_charset(s) && s.len() <= MAX_SNAPMIRROR_LABEL
}

/// Parses an IANA zone name; the error is (message, hint) with a close match when one exists.
pub(super) fn parse_tz(name: &str) -> Result<Tz, (String, String)> {
    if let Ok(tz) = Tz::from_str(name) {
        return Ok(tz);
    }
    let message = format!("unknown time zone \"{name}\"");
    let lower = name.trim().to_lowercase().replace(' ', "_");
    if let Some(tz) = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().to_lowercase() == lower)
    {
        return Err((message, format!("did you mean \"{}\"?", tz.name())));
    }
    let city = lower.rsplit('/').next().unwrap_or(&lower);
    if let Some(tz) = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().to_lowercase().rsplit('/').next() == Some(city))
    {
        return Err((message, format!("did you mean \"{}\"?", tz.name())));
    }
    Err((
        message,
        "use an IANA time zone name such as \"Europe/Berlin\" or \"America/New_York\"".into(),
    ))
}

pub(super) fn timezone(cx: &mut Collector, file: usize, value: &Spanned<String>) -> Option<Tz> {
    match parse_tz(value.get_ref()) {
        Ok(tz) => Some(tz),
        Err((message, h)) => {
            cx.error(file, value.span(), message, hint(h));
            None
        }
    }
}

pub(super) fn cron_hint(e: &CronError, form: &str) -> String {
    match e.field {
        Some(f) => {
            let (lo, hi) = f.range();
            format!("the {} field takes {lo}-{hi}; {form}", f.name())
        }
        None => format!("{form}; for example \"5 * * * *\" is every hour at :05"),
    }
}

const CRON_FORM: &str = "fields are minute hour day-of-month month day-of-week";

pub(super) fn cron_string(
    cx: &mut Collector,
    file: usize,
    value: &Spanned<String>,
    key: &str,
) -> Option<CronSpec> {
    match CronSpec::parse(value.get_ref()) {
        Ok(spec) => satisfiable(cx, file, value.span(), spec, value.get_ref()),
        Err(e) => {
            cx.error(
                file,
                value.span(),
                format!("bad cron in `{key}`: {e}"),
                hint(cron_hint(&e, CRON_FORM)),
            );
            None
        }
    }
}

pub(super) fn satisfiable(
    cx: &mut Collector,
    file: usize,
    span: Range<usize>,
    spec: CronSpec,
    shown: &str,
) -> Option<CronSpec> {
    if spec.is_satisfiable() {
        return Some(spec);
    }
    cx.error(
        file,
        span,
        format!("cron \"{shown}\" never fires: no date matches its day and month fields"),
        hint("check day-of-month against month (February has no 30th or 31st, April no 31st)"),
    );
    None
}
