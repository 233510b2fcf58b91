//! One policy value checked on its own, by the very functions validation runs on a policy file,
//! for code that writes policies (`init`): what these accept, `check` accepts in a policy.
//!
//! Each check returns the value's problem as validation words it — the message, then the hint
//! on its own line (`\n  hint: …`) — without a file position: the caller says where the value
//! came from (a command-line flag, a name a cluster reported).

use std::path::PathBuf;
use std::sync::Arc;

use chrono::TimeDelta;
use chrono_tz::Tz;
use toml::Spanned;

use super::names::{self, NameRule};
use super::values::{bounded_duration, cron_string};
use super::window::LENGTH;
use crate::config::diag::Collector;
use crate::timeline::CronSpec;

/// The value's problem as one text: message, then its hint on the next line.
fn words(message: &str, hint: Option<&str>) -> String {
    match hint {
        Some(h) => format!("{message}\n  hint: {h}"),
        None => message.to_string(),
    }
}

/// Runs a validation function on `text` as if it were a policy value of its own, and returns
/// what it built or the first problem it reported.
fn one<T>(
    text: &str,
    check: impl FnOnce(&mut Collector, usize, &Spanned<String>) -> Option<T>,
) -> Result<T, String> {
    let mut cx = Collector::default();
    let file = cx
        .sources
        .add(PathBuf::from("<value>"), Arc::from(text.to_string()));
    let value = Spanned::new(0..text.len(), text.to_string());
    let built = check(&mut cx, file, &value);
    match (built, cx.diags.first()) {
        (Some(v), None) => Ok(v),
        (_, Some(d)) => Err(words(&d.message, d.hint.as_deref())),
        (None, None) => Err(format!("{text:?} is not valid")),
    }
}

fn name(rule: &NameRule, name: &str) -> Result<(), String> {
    match names::problem(rule, name) {
        None => Ok(()),
        Some(message) => Err(words(&message, Some(rule.hint))),
    }
}

/// A `[[cluster]] name` (snapwarden's label for the cluster).
pub fn cluster_name(text: &str) -> Result<(), String> {
    name(&names::CLUSTER, text)
}

/// A `[[volume]] svm`, by ONTAP's SVM naming rule.
pub fn svm_name(text: &str) -> Result<(), String> {
    name(&names::SVM, text)
}

/// A `[[volume]] name`, by ONTAP's volume naming rule.
pub fn volume_name(text: &str) -> Result<(), String> {
    name(&names::VOLUME, text)
}

/// One of `luns` of volume `volume`: `/vol/<volume>/[<qtree>/]<lun>` with names ONTAP takes.
pub fn lun_path(path: &str, volume: &str) -> Result<(), String> {
    match names::lun_path_problem(path, volume) {
        None => Ok(()),
        Some((message, h)) => Err(words(&message, Some(&h))),
    }
}

/// A `[[window]] name`.
pub fn window_name(text: &str) -> Result<(), String> {
    match names::window_name_problem(text) {
        None => Ok(()),
        Some((message, h)) => Err(words(&message, Some(&h))),
    }
}

/// Whether window `window`'s backing snapshots (under snapshot prefix `prefix`) and the clones
/// it makes of `luns` keep ONTAP's name lengths.
pub fn window_derived_names(prefix: &str, window: &str, luns: &[String]) -> Result<(), String> {
    match names::derived_length_problem(prefix, window, std::iter::once(luns)) {
        None => Ok(()),
        Some((message, h)) => Err(words(&message, Some(&h))),
    }
}

/// A `[[window]] start`: a 5-field cron that fires.
pub fn window_start(text: &str) -> Result<CronSpec, String> {
    one(text, |cx, file, v| cron_string(cx, file, v, "start"))
}

/// A `[[window]] expected` or `max` (`key`), within the bounds validation sets.
pub fn window_length(key: &str, text: &str) -> Result<TimeDelta, String> {
    one(text, |cx, file, v| {
        bounded_duration(cx, file, v, key, &LENGTH)
    })
}

/// A `[[window]] timezone`: an IANA zone name.
pub fn timezone(text: &str) -> Result<Tz, String> {
    one(text, super::values::timezone)
}

/// A `[[cluster]] pin_sha256`: 64 hexadecimal digits, colons allowed.
pub fn pin_sha256(text: &str) -> Result<[u8; 32], String> {
    super::cluster::parse_pin(text).ok_or_else(|| {
        words(
            "`pin_sha256` must be 64 hexadecimal digits (colons allowed)",
            Some(
                "the SHA-256 of the certificate in DER form, e.g. from `openssl x509 -noout \
                 -fingerprint -sha256`",
            ),
        )
    })
}

/// Whether `c` may stand as itself in a comment of a written policy: a space, or a character a
/// label may hold (no control, invisible, combining or unassigned character), or `/`.
pub fn shows_in_comment(c: char) -> bool {
    c == ' ' || c == '/' || names::is_label_char(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_judged_as_in_a_policy_file() {
        assert!(window_start("0 1 * * *").is_ok());
        let e = window_start("0 25 * * *").unwrap_err();
        assert!(
            e.contains("bad cron in `start`") && e.contains("hint:"),
            "{e}"
        );
        assert!(window_start("0 0 30 2 *")
            .unwrap_err()
            .contains("never fires"));
        assert_eq!(window_length("max", "2h"), Ok(TimeDelta::hours(2)));
        let e = window_length("max", "8d").unwrap_err();
        assert!(e.contains("`max` \"8d\" is out of range 1s..=7d"), "{e}");
        assert!(window_length("expected", "soon")
            .unwrap_err()
            .contains("bad duration for `expected`"));
        assert!(timezone("Europe/Berlin").is_ok());
        assert!(timezone("europe/berlin")
            .unwrap_err()
            .contains("did you mean \"Europe/Berlin\"?"));
        assert!(cluster_name("prod-a").is_ok());
        assert!(cluster_name("prod a").is_err());
        assert!(cluster_name(&"c".repeat(256))
            .unwrap_err()
            .contains("more than 255"));
        assert!(volume_name("vol-a").is_err());
        assert!(svm_name("all").unwrap_err().contains("reserved"));
        assert!(lun_path("/vol/v/q1/lun0", "v").is_ok());
        assert!(lun_path("/vol/w/lun0", "v").is_err());
        assert!(window_name("nightly").is_ok());
        assert!(window_name("night ly").is_err());
        assert!(window_derived_names("snapwarden", "nightly", &["/vol/v/lun0".into()]).is_ok());
        let long = format!("/vol/v/{}", "l".repeat(230));
        assert!(window_derived_names("snapwarden", "nightly", &[long])
            .unwrap_err()
            .contains("more than the 255 ONTAP allows a LUN name"));
        assert!(pin_sha256(&"ab".repeat(32)).is_ok());
        assert!(pin_sha256("ab").is_err());
    }
}
