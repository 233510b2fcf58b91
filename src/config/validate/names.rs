//! Names the policy hands to ONTAP (SVM, volume, qtree and LUN of a LUN path) checked by ONTAP's
//! rules, and snapwarden's own labels (cluster and window names) checked for what no label should
//! hold, so that `check` refuses what ONTAP, a metric or a terminal would mangle.
//!
//! ONTAP's rules, as NetApp's documentation states them (paraphrased; the pages named are on
//! docs.netapp.com unless said otherwise):
//! - **volume**: starts with a letter and is at most 203 characters (ONTAP command reference,
//!   `volume rename`, parameter `-newname`); letters, digits and underscores only (Amazon FSx for
//!   NetApp ONTAP's volume API, which states the 203 too). The rename page names only a letter as
//!   the first character; a leading underscore is accepted too (other statements of the rule
//!   allow it, and refusing a volume ONTAP holds would leave it out of every window), the one
//!   place snapwarden may be more lenient than ONTAP.
//! - **SVM**: at most 47 characters, and `all` is reserved (ONTAP command reference, `vserver
//!   create`, parameter `-vserver`); letters, digits, `.`, `-` and `_`, not starting with a
//!   hyphen, a period or a digit (NetApp's SVM naming rule as given for System Manager).
//! - **LUN**: 1 to 255 characters, no spaces, only letters, digits, `-`, `_`, `{`, `}` and `.`,
//!   starting with a letter or digit (ONTAP command reference, `lun modify`, parameter `-lun`); a
//!   LUN sits at the root of a volume or of a qtree (`lun create`).
//! - **qtree**: no `/`, at most 64 characters (`volume qtree create`, parameter `-qtree`). ONTAP
//!   says nothing of its characters: snapwarden takes visible ASCII only (no space, control,
//!   invisible or non-ASCII character) — a conservative choice of ours.
//!
//! Cluster names are snapwarden's labels (in volume ids, status, logs and Prometheus label values),
//! not ONTAP's cluster names: any visible characters, but no control, invisible (zero-width,
//! bidirectional, byte-order mark), combining, private-use or unassigned character, no space and
//! no `/`, at most [`MAX_LABEL_CHARS`]. Window names keep to `A-Z a-z 0-9 _ -` (checked in
//! `window`) and must leave the backing snapshot and clone LUN names they become within ONTAP's
//! limits ([`check_derived_lengths`]).

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use crate::config::diag::{hint, Collector};
use crate::config::load::RawPolicy;
use crate::config::model::{Agent, Volume, Window};

/// Longest cluster name, in characters: a fully qualified host name (253) fits.
pub(super) const MAX_LABEL_CHARS: usize = 255;
/// Longest volume name ONTAP accepts, in characters.
pub(super) const MAX_VOLUME_CHARS: usize = 203;
/// Longest SVM name ONTAP accepts, in characters.
pub(super) const MAX_SVM_CHARS: usize = 47;
/// Longest LUN name (the last component of its path) ONTAP accepts, in characters.
pub(super) const MAX_LUN_CHARS: usize = 255;
/// Longest qtree name ONTAP accepts, in characters.
pub(super) const MAX_QTREE_CHARS: usize = 64;
/// Longest snapshot name ONTAP accepts, in bytes (the simulator's `MAX_SNAPSHOT_NAME`).
pub(super) const MAX_SNAPSHOT_BYTES: usize = 255;
/// The UTC timestamp of a backing snapshot's name, `YYYYMMDDTHHMMSSZ`.
const TIMESTAMP_CHARS: usize = 16;

/// A name's rule: what it is called, its characters, its first character, its length.
pub(super) struct NameRule {
    /// "volume name", as messages say it.
    what: &'static str,
    allowed: fn(char) -> bool,
    first: fn(char) -> bool,
    /// What `first` takes, in words: "a letter or _".
    first_text: &'static str,
    max_chars: usize,
    reserved: &'static [&'static str],
    /// The rule in one line, with an example.
    hint: &'static str,
}

pub(super) const VOLUME: NameRule = NameRule {
    what: "volume name",
    allowed: |c| c.is_ascii_alphanumeric() || c == '_',
    first: |c| c.is_ascii_alphabetic() || c == '_',
    first_text: "a letter or _",
    max_chars: MAX_VOLUME_CHARS,
    reserved: &[],
    hint: "ONTAP volume names are 1 to 203 of A-Z a-z 0-9 _, starting with a letter or _, \
           for example \"vol_sql\"",
};

pub(super) const SVM: NameRule = NameRule {
    what: "SVM name",
    allowed: |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'),
    first: |c| c.is_ascii_alphabetic() || c == '_',
    first_text: "a letter or _",
    max_chars: MAX_SVM_CHARS,
    reserved: &["all"],
    hint: "ONTAP SVM names are 1 to 47 of A-Z a-z 0-9 . - _, not starting with a digit, . or -, \
           and not \"all\", for example \"svm1\" or \"svm.example.net\"",
};

pub(super) const LUN: NameRule = NameRule {
    what: "LUN name",
    allowed: |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '{' | '}' | '.'),
    first: |c| c.is_ascii_alphanumeric(),
    first_text: "a letter or digit",
    max_chars: MAX_LUN_CHARS,
    reserved: &[],
    hint:
        "ONTAP LUN names are 1 to 255 of A-Z a-z 0-9 - _ { } ., starting with a letter or digit; \
           a LUN path is /vol/<volume>/<lun> or /vol/<volume>/<qtree>/<lun>",
};

pub(super) const QTREE: NameRule = NameRule {
    what: "qtree name",
    allowed: |c| c.is_ascii_graphic() && c != '/',
    first: |c| c.is_ascii_graphic(),
    first_text: "a visible character",
    max_chars: MAX_QTREE_CHARS,
    reserved: &[".", ".."],
    hint: "ONTAP qtree names are at most 64 characters without /; snapwarden takes visible ASCII \
           (no space), for example \"q1\"",
};

pub(super) const CLUSTER: NameRule = NameRule {
    what: "cluster name",
    allowed: is_label_char,
    first: is_label_char,
    first_text: "a visible character",
    max_chars: MAX_LABEL_CHARS,
    reserved: &[],
    hint: "cluster names label volume ids (cluster/svm/volume), logs and metrics: visible \
           characters without spaces or '/', for example \"prod-a\"; write an accented letter \
           precomposed (é as one character, not e plus a combining accent)",
};

/// A Unicode class, as a regex matching one character of it.
fn class(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid Unicode class")
}

/// Controls (Cc).
static CONTROL: LazyLock<Regex> = LazyLock::new(|| class(r"\p{Cc}"));
/// Invisible format characters: zero-width spaces and joiners, bidirectional controls, the
/// byte-order mark (Cf).
static FORMAT: LazyLock<Regex> = LazyLock::new(|| class(r"\p{Cf}"));
/// Combining marks (M).
static MARK: LazyLock<Regex> = LazyLock::new(|| class(r"\p{M}"));
/// Separators: spaces, line and paragraph separators (Z).
static SEPARATOR: LazyLock<Regex> = LazyLock::new(|| class(r"\p{Z}"));
/// Private-use (Co) and unassigned (Cn) code points.
static NO_MEANING: LazyLock<Regex> = LazyLock::new(|| class(r"[\p{Co}\p{Cn}]"));

/// What kind of character no label holds `c` is, or `None` for one a label may hold.
fn unfit(c: char) -> Option<&'static str> {
    let mut buf = [0u8; 4];
    let s = c.encode_utf8(&mut buf);
    if CONTROL.is_match(s) {
        Some("a control character")
    } else if FORMAT.is_match(s) {
        Some("an invisible format character")
    } else if MARK.is_match(s) {
        Some("a combining mark")
    } else if SEPARATOR.is_match(s) || c.is_whitespace() {
        Some("a space")
    } else if NO_MEANING.is_match(s) {
        Some("a private-use or unassigned code point")
    } else {
        None
    }
}

/// A character a label may hold: visible, not a separator, not `/`.
fn is_label_char(c: char) -> bool {
    c != '/' && unfit(c).is_none()
}

/// `c` for a message: the character itself when it can be seen, and always its code point; an
/// invisible or combining one says what it is instead.
fn shown(c: char) -> String {
    match unfit(c) {
        Some(kind) => format!("U+{:04X} ({kind})", u32::from(c)),
        None => format!("'{c}' (U+{:04X})", u32::from(c)),
    }
}

/// Why `name` breaks `rule`, or `None`. Every character the rule refuses is named (the first few,
/// each once), so one message says all that is wrong with the name.
pub(super) fn problem(rule: &NameRule, name: &str) -> Option<String> {
    let quoted = format!("{name:?}");
    if name.is_empty() {
        return Some(format!("the {} is empty", rule.what));
    }
    const SHOWN: usize = 5;
    let mut bad: Vec<char> = Vec::new();
    let mut more = 0;
    for c in name.chars().filter(|&c| !(rule.allowed)(c)) {
        if bad.contains(&c) {
            continue;
        }
        if bad.len() < SHOWN {
            bad.push(c);
        } else {
            more += 1;
        }
    }
    let mut parts = Vec::new();
    if !bad.is_empty() {
        let mut list: Vec<String> = bad.into_iter().map(shown).collect();
        if more > 0 {
            list.push(format!("{more} more"));
        }
        parts.push(format!(
            "has characters it cannot hold: {}",
            list.join(", ")
        ));
    }
    let first = name.chars().next().expect("not empty");
    if (rule.allowed)(first) && !(rule.first)(first) {
        parts.push(format!("starts with '{first}', not {}", rule.first_text));
    }
    let chars = name.chars().count();
    if chars > rule.max_chars {
        parts.push(format!(
            "is {chars} characters long, more than {}",
            rule.max_chars
        ));
    }
    if rule.reserved.contains(&name) {
        parts.push("is reserved".into());
    }
    (!parts.is_empty()).then(|| format!("{} {quoted} {}", rule.what, parts.join("; ")))
}

/// Reports `name` at `span` when it breaks `rule`; false when it was reported.
pub(super) fn check(
    cx: &mut Collector,
    file: usize,
    span: Range<usize>,
    rule: &NameRule,
    name: &str,
) -> bool {
    match problem(rule, name) {
        None => true,
        Some(message) => {
            cx.error(file, span, message, hint(rule.hint));
            false
        }
    }
}

/// Why a LUN path of volume `volume` is not `/vol/<volume>/<lun>` or `/vol/<volume>/<qtree>/<lun>`
/// with valid names, or `None`. The message and hint of the first problem found.
pub(super) fn lun_path_problem(path: &str, volume: &str) -> Option<(String, String)> {
    let prefix = format!("/vol/{volume}/");
    let example = format!("LUN paths of this volume look like \"{prefix}lun0\"");
    let Some(rest) = path.strip_prefix(&prefix) else {
        return Some((format!("LUN path {path:?} is not under {prefix}"), example));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let (qtree, lun) = match parts.as_slice() {
        [lun] => (None, *lun),
        [qtree, lun] => (Some(*qtree), *lun),
        _ => {
            return Some((
                format!(
                    "LUN path {path:?} has {} levels below {prefix}: ONTAP keeps a LUN at the \
                     root of a volume or of a qtree",
                    parts.len()
                ),
                format!("{example} or \"{prefix}q1/lun0\""),
            ))
        }
    };
    if let Some(q) = qtree {
        if let Some(p) = problem(&QTREE, q) {
            return Some((format!("LUN path {path:?}: {p}"), QTREE.hint.into()));
        }
    }
    problem(&LUN, lun).map(|p| (format!("LUN path {path:?}: {p}"), LUN.hint.into()))
}

/// The names snapwarden makes from a window's name keep ONTAP's limits: the backing snapshot
/// `<prefix>.<window>.<YYYYMMDDTHHMMSSZ>` at most 255 bytes, and each clone LUN
/// `<backing snapshot>.<lun>` (a repeated LUN name gets its index in front) at most 255
/// characters. Reported at the window's name, once per window.
pub(super) fn check_derived_lengths(
    cx: &mut Collector,
    raw: &RawPolicy,
    agent: &Agent,
    volumes: &[Option<Volume>],
    windows: &[Option<Window>],
) {
    let prefix = &agent.snapshot_prefix;
    for (at, window) in raw.windows.iter().zip(windows) {
        let (Some(window), Some(name)) = (window, at.item.name.as_ref()) else {
            continue;
        };
        let snapshot = prefix.len() + 1 + window.name.len() + 1 + TIMESTAMP_CHARS;
        if snapshot > MAX_SNAPSHOT_BYTES {
            cx.error(
                at.file,
                name.span(),
                format!(
                    "window {:?}: its backing snapshots would be named with {snapshot} bytes \
                     (\"{prefix}.{}.YYYYMMDDTHHMMSSZ\"), more than the {MAX_SNAPSHOT_BYTES} ONTAP \
                     allows a snapshot name",
                    window.name, window.name
                ),
                hint("shorten the window's name (or [agent] snapshot_prefix)"),
            );
            continue;
        }
        let longest = window
            .volumes
            .iter()
            .filter_map(|&vi| volumes.get(vi)?.as_ref())
            .flat_map(|v| clone_leaves(&v.luns))
            .max_by_key(|leaf| leaf.len());
        if let Some(leaf) = longest {
            let clone = snapshot + 1 + leaf.len();
            if clone > MAX_LUN_CHARS {
                cx.error(
                    at.file,
                    name.span(),
                    format!(
                        "window {:?}: the clone of LUN {leaf:?} would be named with {clone} \
                         characters (\"{prefix}.{}.YYYYMMDDTHHMMSSZ.{leaf}\"), more than the \
                         {MAX_LUN_CHARS} ONTAP allows a LUN name",
                        window.name, window.name
                    ),
                    hint("shorten the window's name (or [agent] snapshot_prefix, or the LUN's)"),
                );
            }
        }
    }
}

/// The last part of each clone's name, as the agent names clones: the LUN's own name, with its
/// index in front when an earlier LUN of the volume has the same name.
fn clone_leaves(luns: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    luns.iter()
        .enumerate()
        .map(|(i, lun)| {
            let leaf = lun.rsplit('/').next().unwrap_or("lun").to_string();
            if seen.insert(leaf.clone()) {
                leaf
            } else {
                format!("{i}.{leaf}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_combining_characters_are_named_by_code_point() {
        assert_eq!(
            problem(&CLUSTER, "prod-e\u{301}\u{200B}").as_deref(),
            Some(
                "cluster name \"prod-e\\u{301}\\u{200b}\" has characters it cannot hold: \
                 U+0301 (a combining mark), U+200B (an invisible format character)"
            )
        );
        assert_eq!(problem(&CLUSTER, "Zürich-1"), None);
        assert!(problem(&CLUSTER, "a\u{202E}b").is_some(), "bidi override");
        assert!(problem(&CLUSTER, "a\u{FEFF}").is_some(), "byte-order mark");
        assert!(problem(&CLUSTER, "a\u{E000}").is_some(), "private use");
        assert!(problem(&CLUSTER, "a\u{00A0}b").is_some(), "no-break space");
        assert!(problem(&CLUSTER, "a\tb").is_some(), "tab");
    }

    #[test]
    fn ontap_names_follow_ontaps_rules() {
        assert_eq!(problem(&VOLUME, "vol_sql"), None);
        assert_eq!(problem(&VOLUME, "_vol1"), None);
        assert_eq!(
            problem(&VOLUME, "vol_é中").as_deref(),
            Some(
                "volume name \"vol_é中\" has characters it cannot hold: 'é' (U+00E9), '中' (U+4E2D)"
            )
        );
        assert_eq!(
            problem(&VOLUME, "1vol").as_deref(),
            Some("volume name \"1vol\" starts with '1', not a letter or _")
        );
        assert_eq!(problem(&VOLUME, &"v".repeat(203)), None);
        assert!(problem(&VOLUME, &"v".repeat(204)).is_some());
        assert!(problem(&VOLUME, "vol-a").is_some());
        assert_eq!(problem(&SVM, "svm1.example.net"), None);
        assert!(problem(&SVM, "all").is_some());
        assert!(problem(&SVM, "-svm").is_some());
        assert!(problem(&SVM, &"s".repeat(48)).is_some());
        assert_eq!(problem(&LUN, "lun{0}.a-b_c"), None);
        assert!(problem(&LUN, "_lun").is_some());
        assert!(problem(&LUN, "lun 0").is_some());
    }

    #[test]
    fn lun_paths_are_at_a_volume_or_qtree_root() {
        assert_eq!(lun_path_problem("/vol/v/lun0", "v"), None);
        assert_eq!(lun_path_problem("/vol/v/q1/lun0", "v"), None);
        let msg = |p: &str| lun_path_problem(p, "v").map(|(m, _)| m).unwrap_or_default();
        assert_eq!(
            msg("/vol/w/lun0"),
            "LUN path \"/vol/w/lun0\" is not under /vol/v/"
        );
        assert!(
            msg("/vol/v/a/b/lun0").contains("3 levels"),
            "{}",
            msg("/vol/v/a/b/lun0")
        );
        assert!(msg("/vol/v/").contains("the LUN name is empty"));
        assert!(msg("/vol/v/q1/").contains("the LUN name is empty"));
        assert!(msg("/vol/v//lun0").contains("the qtree name is empty"));
        assert!(msg("/vol/v/lün").contains("'ü' (U+00FC)"));
        assert!(msg(&format!("/vol/v/{}/l", "q".repeat(65))).contains("more than 64"));
    }
}
