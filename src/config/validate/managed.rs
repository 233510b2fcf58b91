//! Managed schedules: the checks on a `[[snapshot_policy]]` a volume hands to snapwarden through
//! `managed_snapshots`, run once every volume is built.
//!
//! Per managed policy (reported once, however many volumes name it): it has copies, their
//! prefixes are distinct, none is or extends `[agent] snapshot_prefix`, and each starts a valid
//! snapshot name. Per volume: no prefix is taken both by ONTAP (the volume's inline
//! `snapshot_policy`) and by snapwarden (never two schedulers).

use std::collections::BTreeSet;
use std::ops::Range;

use toml::Spanned;

use crate::config::diag::{hint, Collector};
use crate::config::load::{At, RawPolicy};
use crate::config::model::{Agent, Volume, VolumeSchedules};
use crate::config::raw::{RawCopies, RawSnapshotPolicy};

/// `.YYYY-MM-DD_HHMM`, the part ONTAP's naming adds after a scheduled snapshot's prefix.
const DATE_SUFFIX_BYTES: usize = 16;
/// Longest managed prefix: ONTAP's 255-byte snapshot names less the date suffix.
const MAX_MANAGED_PREFIX: usize = 255 - DATE_SUFFIX_BYTES;

/// One copies entry as the file spells it: its effective prefix (the `prefix`, else the schedule
/// name) and where that is written, and its schedule name.
struct RawCopy<'r> {
    prefix: &'r str,
    span: Range<usize>,
    schedule: &'r str,
}

fn raw_copies(policy: &RawSnapshotPolicy) -> Vec<RawCopy<'_>> {
    let listed: &[Spanned<RawCopies>] = policy.copies.as_ref().map_or(&[], |c| c.get_ref());
    listed
        .iter()
        .filter_map(|entry| {
            let c = entry.get_ref();
            let schedule = c.schedule.as_ref()?;
            let (prefix, span) = match &c.prefix {
                Some(p) => (p.get_ref().as_str(), p.span()),
                None => (schedule.get_ref().as_str(), schedule.span()),
            };
            Some(RawCopy {
                prefix,
                span,
                schedule: schedule.get_ref(),
            })
        })
        .collect()
}

fn policy_name(p: &At<RawSnapshotPolicy>) -> &str {
    p.item.name.as_ref().map_or("", |n| n.get_ref().as_str())
}

/// Runs every managed-schedule check; `volumes` are the built volumes, in `raw.volumes` order.
pub(super) fn check_managed(cx: &mut Collector, raw: &RawPolicy, volumes: &[Option<Volume>]) {
    let agent_prefix = raw
        .agent
        .as_ref()
        .and_then(|a| a.item.snapshot_prefix.as_ref())
        .map_or_else(|| Agent::default().snapshot_prefix, |p| p.get_ref().clone());
    let managed: BTreeSet<usize> = volumes.iter().flatten().filter_map(|v| v.managed).collect();
    for &i in &managed {
        if let Some(policy) = raw.snapshot_policies.get(i) {
            check_policy(cx, policy, &agent_prefix);
        }
    }
    for (at, volume) in raw.volumes.iter().zip(volumes) {
        let (Some(volume), Some(value)) = (volume, &at.item.managed_snapshots) else {
            continue;
        };
        let Some(m) = volume.managed else { continue };
        let (Some(handed), VolumeSchedules::Policy(kept)) =
            (raw.snapshot_policies.get(m), &volume.schedules)
        else {
            continue;
        };
        let Some(ontap) = raw.snapshot_policies.get(*kept) else {
            continue;
        };
        let id = format!(
            "{}/{}/{}",
            at.item.cluster.as_ref().map_or("", |c| c.get_ref()),
            volume.svm,
            volume.name
        );
        if *kept == m {
            cx.error(
                at.file,
                value.span(),
                format!(
                    "volume \"{id}\" names snapshot policy \"{}\" in both `snapshot_policy` and \
                     `managed_snapshots`",
                    policy_name(handed)
                ),
                hint(
                    "snapshot_policy says what ONTAP still takes and managed_snapshots what \
                     snapwarden takes instead; point snapshot_policy at a policy without the \
                     handed-over copies (copies = [] when ONTAP takes none)",
                ),
            );
            continue;
        }
        let ours = raw_copies(&handed.item);
        for theirs in raw_copies(&ontap.item) {
            let Some(twin) = ours.iter().find(|c| c.prefix == theirs.prefix) else {
                continue;
            };
            cx.error(
                at.file,
                value.span(),
                format!(
                    "volume \"{id}\": prefix \"{}\" would have two schedulers: ONTAP (snapshot \
                     policy \"{}\", schedule \"{}\") and snapwarden (managed snapshot policy \
                     \"{}\", schedule \"{}\")",
                    theirs.prefix,
                    policy_name(ontap),
                    theirs.schedule,
                    policy_name(handed),
                    twin.schedule
                ),
                hint(format!(
                    "remove that copy from the volume's ONTAP policy on the cluster and from \
                     [[snapshot_policy]] \"{}\" (snapwarden never edits ONTAP's policies), or \
                     keep it with ONTAP and remove it from \"{}\"",
                    policy_name(ontap),
                    policy_name(handed)
                )),
            );
        }
    }
}

/// The checks of one managed policy.
fn check_policy(cx: &mut Collector, at: &At<RawSnapshotPolicy>, agent_prefix: &str) {
    let (file, name) = (at.file, policy_name(at));
    let copies = raw_copies(&at.item);
    if let (Some(listed), true) = (&at.item.copies, copies.is_empty()) {
        if listed.get_ref().is_empty() {
            cx.error(
                file,
                listed.span(),
                format!("managed snapshot policy \"{name}\" has no copies for snapwarden to take"),
                hint("add copies = [ { schedule = \"hourly\", count = 24 } ], or remove managed_snapshots from the volumes naming it"),
            );
        }
    }
    for (k, copy) in copies.iter().enumerate() {
        if let Some(first) = copies[..k].iter().find(|c| c.prefix == copy.prefix) {
            let seen = cx.sources.describe(file, &first.span, file);
            cx.error(
                file,
                copy.span.clone(),
                format!(
                    "copies of managed snapshot policy \"{name}\" share the prefix \"{}\" (first at {seen})",
                    copy.prefix
                ),
                hint("snapwarden keeps each copy's count by its prefix; give each copy its own `prefix`"),
            );
            continue;
        }
        if copy.prefix == agent_prefix || copy.prefix.starts_with(&format!("{agent_prefix}.")) {
            cx.error(
                file,
                copy.span.clone(),
                format!(
                    "managed prefix \"{}\" is taken by [agent] snapshot_prefix \"{agent_prefix}\"",
                    copy.prefix
                ),
                hint(format!(
                    "backing snapshots are named {agent_prefix}.<window>.<UTC timestamp>; set \
                     another `prefix` on this copy"
                )),
            );
            continue;
        }
        let starts_well = copy
            .prefix
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        // Characters outside ONTAP's set are reported by the policy's own checks.
        let charset = copy
            .prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if charset && (!starts_well || copy.prefix.len() > MAX_MANAGED_PREFIX) {
            cx.error(
                file,
                copy.span.clone(),
                format!(
                    "managed prefix \"{}\" cannot start an ONTAP snapshot name",
                    copy.prefix
                ),
                hint(format!(
                    "snapwarden names these snapshots <prefix>.<YYYY-MM-DD_HHMM>: start the \
                     prefix with a letter, a digit or _ and keep it to {MAX_MANAGED_PREFIX} bytes"
                )),
            );
        }
    }
}
