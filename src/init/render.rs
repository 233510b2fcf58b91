//! A [`Draft`] as the policy file a person reads and edits next: TOML with a comment on every
//! section saying what it is and what to change.
//!
//! Values are written by the `toml` crate (the same one `config` reads them with), so any name is
//! quoted and escaped as TOML wants. Comments carry names ONTAP reported, including names the
//! policy refuses: every character that could end or garble a comment line (a control,
//! invisible or combining character, a line separator) is written as `\u{…}` instead.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

use super::{Draft, DraftCluster, DraftVolume};
use crate::config::{single, SecretSource, TlsVerify};

/// Where the comments wrap the lists of names they carry.
const WRAP: usize = 96;

/// A TOML string literal of `s`.
fn string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML array of strings, one per line.
fn array(items: &[String]) -> String {
    let mut out = String::from("[\n");
    for i in items {
        let _ = writeln!(out, "    {},", string(i));
    }
    out.push(']');
    out
}

/// `text` safe inside a comment: characters that cannot show as themselves become `\u{…}`.
pub(super) fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if single::shows_in_comment(c) {
            out.push(c);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
    out
}

/// Appends `text` as comment lines, one per line of it, each prefixed by `indent`. A name inside
/// `text` must have been passed through [`shown`] (which keeps it on one line).
fn comment(out: &mut String, indent: &str, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "#{indent}{}", shown(line).trim_end());
    }
}

/// Appends `items` as comment lines after `# {indent}`, comma-separated, wrapped at [`WRAP`].
fn comment_list(out: &mut String, indent: &str, items: &[String]) {
    let mut line = String::new();
    for (i, item) in items.iter().enumerate() {
        let item = shown(item);
        let sep = if i + 1 < items.len() { "," } else { "" };
        if !line.is_empty() && line.len() + 1 + item.len() + sep.len() > WRAP {
            let _ = writeln!(out, "#{indent}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&item);
        line.push_str(sep);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "#{indent}{line}");
    }
}

fn section(out: &mut String, title: &str) {
    let rule = "-".repeat(WRAP.saturating_sub(title.len() + 6));
    let _ = write!(out, "\n# -- {title} {rule}\n");
}

/// The policy text of `draft`, written at `at` to the file `named` (how the next steps name it).
pub fn render(draft: &Draft, at: DateTime<Utc>, named: &str) -> String {
    let mut out = String::new();
    header(&mut out, draft, at, named);
    clusters(&mut out, draft);
    volumes(&mut out, draft);
    left_out(&mut out, draft);
    window(&mut out, draft);
    out
}

fn header(out: &mut String, draft: &Draft, at: DateTime<Utc>, named: &str) {
    let names: Vec<String> = draft
        .clusters
        .iter()
        .map(|c| format!("{} ({})", c.target.name, c.target.endpoint))
        .collect();
    let scope = if draft.svms.is_empty() {
        String::new()
    } else {
        format!(", SVM {} only", draft.svms.join(", "))
    };
    comment(
        out,
        " ",
        &format!(
            "snapwarden policy drafted by `snapwarden init` at {}\n\
             from {}{scope}.",
            at.to_rfc3339_opts(SecondsFormat::Secs, true),
            names.join(", "),
        ),
    );
    let named = shown(named);
    let _ = write!(
        out,
        "#\n\
# It holds the clusters as init reached them, one [[volume]] per volume that holds LUNs, and one\n\
# [[window]] over all of them. init only read the clusters (GET requests) and changed nothing.\n\
# ONTAP keeps taking its scheduled snapshots as before: snapshot_policy = \"ontap\" means each\n\
# volume's schedules are ONTAP's, read from the cluster; snapwarden places its backups between\n\
# them and never changes an ONTAP snapshot policy.\n\
#\n\
# What to do next:\n\
#   1. snapwarden check {named}\n\
#      validates this file, reads the schedules (GETs only) and shows where the window meets a\n\
#      scheduled snapshot, with a start that fits.\n\
#   2. Make the [[window]] yours: its start, expected and max; one window per backup job; the\n\
#      hook that runs the backup (docs/policy.md, steps 4 to 6).\n\
#   3. Delete the volumes you do not back up (and their ids in the window).\n\
#   4. snapwarden plan {named}, then snapwarden run --config {named}.\n\
# Every key, its default and its bounds: config/reference.toml.\n"
    );
}

fn clusters(out: &mut String, draft: &Draft) {
    section(out, "Clusters");
    out.push_str(
        "# How snapwarden reaches each cluster. No password is written here: snapwarden reads it\n\
         # from the environment variable (password_env) or file (password_file) named below, the\n\
         # one init was given. The time zone is left to the cluster (timezone = \"auto\").\n",
    );
    for c in &draft.clusters {
        cluster(out, c);
    }
}

fn cluster(out: &mut String, c: &DraftCluster) {
    let t = &c.target;
    out.push('\n');
    comment(
        out,
        " ",
        &format!(
            "ONTAP {}, time zone {} (as the cluster reports them).",
            c.version, c.zone
        ),
    );
    let _ = writeln!(out, "[[cluster]]");
    let _ = writeln!(out, "name = {}", string(&t.name));
    let _ = writeln!(out, "endpoint = {}", string(&t.endpoint));
    let _ = writeln!(out, "username = {}", string(&t.username));
    match &t.password {
        SecretSource::Env(var) => {
            let _ = writeln!(out, "password_env = {}", string(var));
        }
        SecretSource::File(path) => {
            let _ = writeln!(out, "password_file = {}", string(&path.to_string_lossy()));
        }
    }
    match &t.tls {
        TlsVerify::System => {
            out.push_str("# TLS: the certificate is verified against the system's trust roots.\n");
        }
        TlsVerify::CaFile(path) => {
            let _ = writeln!(out, "ca_file = {}", string(&path.to_string_lossy()));
        }
        TlsVerify::PinSha256(pin) => {
            let hex: String = pin.iter().map(|b| format!("{b:02x}")).collect();
            let _ = writeln!(out, "pin_sha256 = {}", string(&hex));
        }
        TlsVerify::Insecure => {
            out.push_str(
                "# The certificate is not verified (init was given --insecure): before production,\n\
                 # trust its CA (ca_file) or pin it (pin_sha256) instead.\n\
                 insecure = true\n",
            );
        }
    }
}

fn volumes(out: &mut String, draft: &Draft) {
    section(out, "Volumes");
    out.push_str(
        "# One entry per volume that holds LUNs. `luns` are the LUNs a backup of the volume reads,\n\
         # through clones of a backing snapshot snapwarden makes. snapshot_policy = \"ontap\": the\n\
         # volume's snapshot schedules are ONTAP's, read at every check and pass; ONTAP keeps\n\
         # taking them.\n",
    );
    for v in &draft.volumes {
        volume(out, draft, v);
    }
}

fn volume(out: &mut String, draft: &Draft, v: &DraftVolume) {
    out.push('\n');
    let policy = match &v.ontap_policy {
        Some(p) => format!("ONTAP snapshot policy {p:?}"),
        None => "no ONTAP snapshot policy reported".into(),
    };
    comment(out, " ", &format!("{}/{}: {policy}.", v.svm, v.name));
    let _ = writeln!(out, "[[volume]]");
    let _ = writeln!(
        out,
        "cluster = {}",
        string(&draft.clusters[v.cluster].target.name)
    );
    let _ = writeln!(out, "svm = {}", string(&v.svm));
    let _ = writeln!(out, "name = {}", string(&v.name));
    let _ = writeln!(out, "luns = {}", array(&v.luns));
    let _ = writeln!(out, "snapshot_policy = \"ontap\"");
    for (path, why) in &v.left_out_luns {
        comment(out, " ", &format!("Not listed: LUN {}:", shown(path)));
        comment(out, "   ", why);
    }
}

fn left_out(out: &mut String, draft: &Draft) {
    let without: usize = draft.without_luns.iter().map(Vec::len).sum();
    if draft.left_out.is_empty() && without == 0 {
        return;
    }
    section(out, "Left out");
    if !draft.left_out.is_empty() {
        out.push_str(
            "# Volumes that hold LUNs but that this policy cannot name as ONTAP reports them, and\n\
             # why (`check` would refuse them). Rename them on ONTAP, then add them by hand.\n",
        );
        for (id, why) in &draft.left_out {
            comment(out, "   ", &format!("{}:", shown(id)));
            comment(out, "     ", why);
        }
    }
    if without > 0 {
        out.push_str(
            "# Volumes without LUNs: nothing for a backup window to clone, so not listed.\n",
        );
        for (c, names) in draft.clusters.iter().zip(&draft.without_luns) {
            if names.is_empty() {
                continue;
            }
            comment(out, "   ", &format!("{} ({}):", c.target.name, names.len()));
            comment_list(out, "     ", names);
        }
    }
}

fn window(out: &mut String, draft: &Draft) {
    let w = &draft.window;
    section(out, "Window");
    out.push_str(
        "# One backup window over every volume above. start: when the backup begins, a 5-field\n\
         # cron (minute hour day-of-month month day-of-week) in `timezone`; expected: how long it\n\
         # usually takes; max: the longest it may take. When a scheduled snapshot would fall\n\
         # inside, snapwarden moves the start (on_conflict = \"shift\", by up to shift_limit =\n\
         # \"2h\") or reports why it cannot; `check` shows both before anything runs.\n",
    );
    let zones: std::collections::BTreeSet<&str> =
        draft.clusters.iter().map(|c| c.zone.as_str()).collect();
    if w.args.timezone.is_none() && zones.len() > 1 {
        comment(
            out,
            " ",
            &format!(
                "The clusters report different zones ({}); the window takes the first \
                 cluster's.",
                zones.into_iter().collect::<Vec<_>>().join(", ")
            ),
        );
    }
    let ids: Vec<String> = draft
        .volumes
        .iter()
        .map(|v| {
            format!(
                "{}/{}/{}",
                draft.clusters[v.cluster].target.name, v.svm, v.name
            )
        })
        .collect();
    let _ = writeln!(out, "[[window]]");
    let _ = writeln!(out, "name = {}", string(&w.args.name));
    let _ = writeln!(out, "volumes = {}", array(&ids));
    let _ = writeln!(out, "start = {}", string(&w.args.start));
    let _ = writeln!(out, "timezone = {}", string(&w.timezone));
    let _ = writeln!(out, "expected = {}", string(&w.args.expected));
    let _ = writeln!(out, "max = {}", string(&w.args.max));
}
