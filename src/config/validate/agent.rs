//! `[agent]` and `[flexclone]`: the agent's own settings and the FlexClone recommendation rule.

use std::net::SocketAddr;

use chrono::TimeDelta;
use toml::Spanned;

use super::values::{bounded_duration, is_snapshot_charset, resolve_path, Bounds};
use crate::config::diag::{hint, Collector};
use crate::config::load::At;
use crate::config::model::{foreign_pattern, is_loopback, Agent, FlexCloneRule, MAX_PATTERNS};
use crate::config::raw::{RawAgent, RawFlexClone};

/// `[agent] guard`: 0s ..= 1d.
const GUARD: Bounds = Bounds {
    min_seconds: 0,
    max_seconds: 86_400,
    why: "the guard is the margin kept before a scheduled snapshot; more than a day would keep \
          backing snapshots from ever fitting between daily snapshots",
};

/// `[flexclone] within`: 1h ..= 366d.
const WITHIN: Bounds = Bounds {
    min_seconds: 3_600,
    max_seconds: 366 * 86_400,
    why: "conflicts are counted over this period: under an hour counts too few to recommend \
          anything, and a year (366d) is the longest horizon snapwarden plans",
};

/// `[agent] concurrency`: 1 ..= 64 ONTAP operations in flight per cluster.
const MAX_CONCURRENCY: i64 = 64;

/// `[agent] shutdown_timeout`: 1s ..= 1h.
const SHUTDOWN_TIMEOUT: Bounds = Bounds {
    min_seconds: 1,
    max_seconds: 3_600,
    why: "SIGTERM waits this long to release cycles in flight; service managers kill a process \
          that takes longer than minutes to stop",
};

/// `[agent] observe_interval`: 10s ..= 1h.
const OBSERVE_INTERVAL: Bounds = Bounds {
    min_seconds: 10,
    max_seconds: 3_600,
    why: "each observation lists every snapshot of the cluster; more often than every 10s loads \
          the cluster for nothing, less often than hourly misses conflicts for too long",
};

/// `[agent] audit_interval`: `0s` (off) or 10s ..= 1d.
const AUDIT_INTERVAL: Bounds = Bounds {
    min_seconds: 0,
    max_seconds: 86_400,
    why: "each audit lists every volume's settings besides the snapshots and LUNs; 0s turns it \
          off, more often than every 10s loads the cluster for nothing, less often than daily \
          finds a hazard after the night's backups it defeats",
};

/// The shortest audit interval that is not `0s` (off).
const AUDIT_INTERVAL_MIN: i64 = 10;

pub(super) fn build_agent(cx: &mut Collector, raw: Option<&At<RawAgent>>) -> Option<Agent> {
    let mut ok = true;
    let mut agent = Agent::default();
    let Some(At { file, item, .. }) = raw else {
        return Some(agent);
    };
    let file = *file;
    if let Some(listen) = &item.listen {
        match listen.get_ref().parse::<SocketAddr>() {
            Ok(addr) => agent.listen = addr,
            Err(e) => {
                ok = false;
                cx.error(
                    file,
                    listen.span(),
                    format!("bad `listen` address \"{}\": {e}", listen.get_ref()),
                    hint("write an IP address and a port, for example \"127.0.0.1:9464\""),
                );
            }
        }
    }
    if let Some(dir) = &item.state_dir {
        if dir.get_ref().is_empty() {
            ok = false;
            cx.error(
                file,
                dir.span(),
                "`state_dir` is empty",
                hint("for example \"/var/lib/snapwarden\""),
            );
        } else {
            agent.state_dir = resolve_path(cx, file, dir.get_ref());
        }
    }
    if let Some(prefix) = &item.snapshot_prefix {
        match snapshot_prefix(cx, file, prefix) {
            Some(p) => agent.snapshot_prefix = p,
            None => ok = false,
        }
    }
    if let Some(guard) = &item.guard {
        match bounded_duration(cx, file, guard, "guard", &GUARD) {
            Some(d) => agent.guard = d,
            None => ok = false,
        }
    }
    if let Some(n) = &item.concurrency {
        match usize::try_from(*n.get_ref()) {
            Ok(v) if (1..=MAX_CONCURRENCY as usize).contains(&v) => agent.concurrency = v,
            _ => {
                ok = false;
                cx.error(
                    file,
                    n.span(),
                    format!(
                        "`concurrency` must be between 1 and {MAX_CONCURRENCY}, not {}",
                        n.get_ref()
                    ),
                    hint("ONTAP operations in flight per cluster; the default is 4"),
                );
            }
        }
    }
    if let Some(t) = &item.shutdown_timeout {
        match bounded_duration(cx, file, t, "shutdown_timeout", &SHUTDOWN_TIMEOUT) {
            Some(d) => agent.shutdown_timeout = d,
            None => ok = false,
        }
    }
    if let Some(t) = &item.observe_interval {
        match bounded_duration(cx, file, t, "observe_interval", &OBSERVE_INTERVAL) {
            Some(d) => agent.observe_interval = d,
            None => ok = false,
        }
    }
    if let Some(t) = &item.audit_interval {
        match bounded_duration(cx, file, t, "audit_interval", &AUDIT_INTERVAL) {
            Some(d) if d.is_zero() => agent.audit_interval = None,
            Some(d) if d.num_seconds() < AUDIT_INTERVAL_MIN => {
                ok = false;
                cx.error(
                    file,
                    t.span(),
                    format!(
                        "`audit_interval` \"{}\" is out of range: 0s (off) or \
                         10s..=1d",
                        t.get_ref()
                    ),
                    hint(AUDIT_INTERVAL.why),
                );
            }
            Some(d) => agent.audit_interval = Some(d),
            None => ok = false,
        }
    }
    if let Some(path) = &item.token_file {
        if path.get_ref().is_empty() {
            ok = false;
            cx.error(
                file,
                path.span(),
                "`token_file` is empty",
                hint(
                    "a file holding the API's bearer token, for example \"/etc/snapwarden/token\"",
                ),
            );
        } else {
            agent.token_file = Some(resolve_path(cx, file, path.get_ref()));
        }
    }
    ok &= open_listen(cx, file, item, &mut agent);
    if let Some(list) = &item.foreign_snapshot_patterns {
        match foreign_patterns(cx, file, list) {
            Some(patterns) => agent.foreign_snapshot_patterns = patterns,
            None => ok = false,
        }
    }
    ok.then_some(agent)
}

/// `foreign_snapshot_patterns`: at most [`MAX_PATTERNS`] regular expressions, each usable;
/// `None` when not so (every problem reported).
fn foreign_patterns(
    cx: &mut Collector,
    file: usize,
    list: &Spanned<Vec<Spanned<String>>>,
) -> Option<Vec<regex::Regex>> {
    if list.get_ref().len() > MAX_PATTERNS {
        cx.error(
            file,
            list.span(),
            format!("at most {MAX_PATTERNS} `foreign_snapshot_patterns`"),
            hint("combine patterns with |, for example \"^(VeeamSourceSnapshot|VeeamAUX)\""),
        );
        return None;
    }
    let mut ok = true;
    let mut patterns = Vec::new();
    for p in list.get_ref() {
        match foreign_pattern(p.get_ref()) {
            Ok(re) => patterns.push(re),
            Err(why) => {
                ok = false;
                cx.error(
                    file,
                    p.span(),
                    format!("foreign snapshot pattern \"{}\" {why}", p.get_ref().chars().take(80).collect::<String>()),
                    hint("a regular expression matched case-insensitively against snapshot names, for example \"^VeeamSourceSnapshot\""),
                );
            }
        }
    }
    ok.then_some(patterns)
}

/// `listen_without_token`, and the rule it opts out of: a `listen` address off loopback serves the
/// status and the plan to the network, so it needs `token_file`, or `listen_without_token = true`
/// to say an open API is meant. Runs after `listen` and `token_file` are read into `agent`.
fn open_listen(cx: &mut Collector, file: usize, item: &RawAgent, agent: &mut Agent) -> bool {
    if let Some(flag) = &item.listen_without_token {
        agent.listen_without_token = *flag.get_ref();
        if agent.listen_without_token && agent.token_file.is_some() {
            cx.error(
                file,
                flag.span(),
                "`listen_without_token = true` contradicts `token_file`: with a token, every \
                 /api/v1 caller must send it",
                hint("remove one of the two"),
            );
            return false;
        }
    }
    let Some(listen) = &item.listen else {
        // The default address is on loopback.
        return true;
    };
    if is_loopback(agent.listen.ip()) || agent.token_file.is_some() || agent.listen_without_token {
        return true;
    }
    cx.error(
        file,
        listen.span(),
        format!(
            "`listen` address \"{}\" is off loopback and no `token_file` is set: anyone who \
             reaches it would read the status and the plan",
            agent.listen
        ),
        hint(
            "set `token_file` to a file holding a bearer token, listen on 127.0.0.1, or add \
             `listen_without_token = true` if the network is trusted",
        ),
    );
    false
}

/// `snapshot_prefix`: ONTAP snapshot-name characters, starting with a letter or digit (clone
/// LUNs are named `<prefix>.<window>.<timestamp>.<lun>`, and ONTAP's LUN names start so; see
/// `names`). Reported at the value when it is not.
fn snapshot_prefix(cx: &mut Collector, file: usize, prefix: &Spanned<String>) -> Option<String> {
    let value = prefix.get_ref();
    if !is_snapshot_charset(value) {
        cx.error(
            file,
            prefix.span(),
            format!("`snapshot_prefix` \"{value}\" is not a valid ONTAP snapshot name"),
            hint("use one or more of A-Z a-z 0-9 _ . -, for example \"snapwarden\""),
        );
        return None;
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        cx.error(
            file,
            prefix.span(),
            format!("`snapshot_prefix` \"{value}\" must start with a letter or digit"),
            hint(
                "clone LUNs are named after the backing snapshot, and ONTAP's LUN names start \
                 with a letter or digit; for example \"snapwarden\"",
            ),
        );
        return None;
    }
    Some(value.clone())
}

pub(super) fn build_flexclone(
    cx: &mut Collector,
    raw: Option<&At<RawFlexClone>>,
) -> Option<FlexCloneRule> {
    let mut rule = FlexCloneRule {
        recommend_after: 3,
        within: TimeDelta::days(7),
        use_when_licensed: false,
    };
    let Some(At { file, item, .. }) = raw else {
        return Some(rule);
    };
    let mut ok = true;
    if let Some(n) = &item.recommend_after {
        match u32::try_from(*n.get_ref()) {
            Ok(v) if v >= 1 => rule.recommend_after = v,
            _ => {
                ok = false;
                cx.error(
                    *file,
                    n.span(),
                    format!("`recommend_after` must be at least 1, not {}", n.get_ref()),
                    hint("the number of conflicts on one volume before FlexClone is recommended"),
                );
            }
        }
    }
    if let Some(within) = &item.within {
        match bounded_duration(cx, *file, within, "within", &WITHIN) {
            Some(d) => rule.within = d,
            None => ok = false,
        }
    }
    if let Some(b) = item.use_when_licensed {
        rule.use_when_licensed = b;
    }
    ok.then_some(rule)
}
