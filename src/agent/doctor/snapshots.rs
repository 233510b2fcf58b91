//! `doctor`'s checks of a volume's snapshots: chain locks with their pins, snapshots busy with
//! other owners, and orphaned backing snapshots with their LUN clones.

use chrono::{DateTime, Utc};

use super::checks::At;
use super::{ClusterListing, Code, Finding, Input, Severity};
use crate::agent::observe::{has_prefix, is_snapwardens};
use crate::config::Policy;
use crate::ontap::SnapshotInfo;
use crate::planner::VolumeRetention;

/// Owners that mean a LUN clone is backed by the snapshot (reference notes §1.4, §2.3).
const CLONE_OWNERS: &[&str] = &["lun_clone", "file_clone_dependent", "snap_restore"];

/// Whose backing snapshot a snapshot is, if any: snapwarden's (prefix and marker) or a backup
/// tool's (a `foreign_snapshot_patterns` match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backing {
    Snapwarden,
    Foreign,
}

fn backing(policy: &Policy, s: &SnapshotInfo) -> Option<Backing> {
    let prefix = &policy.agent.snapshot_prefix;
    if is_snapwardens(s, prefix) {
        Some(Backing::Snapwarden)
    } else if policy
        .agent
        .foreign_snapshot_patterns
        .iter()
        .any(|p| p.is_match(&s.name))
    {
        Some(Backing::Foreign)
    } else {
        None
    }
}

/// The LUN clones that belong to a backing snapshot: snapwarden names its clones
/// `/vol/<volume>/<snapshot>.<lun>`; ONTAP does not say which snapshot backs a clone, so a
/// tool's snapshot is given every other clone on its volume.
fn clones_of(
    listing: &ClusterListing,
    s: &SnapshotInfo,
    kind: Backing,
    prefix: &str,
) -> Vec<String> {
    let own = format!("/vol/{}/{}.", s.volume_name, s.name);
    let snapwardens = format!("/vol/{}/", s.volume_name);
    listing
        .inventory
        .luns()
        .filter(|l| l.svm == s.svm && l.volume_name == s.volume_name && l.created_as_clone)
        .filter(|l| match kind {
            Backing::Snapwarden => l.name.starts_with(&own),
            Backing::Foreign => !l
                .name
                .strip_prefix(&snapwardens)
                .is_some_and(|leaf| has_prefix(leaf, prefix)),
        })
        .map(|l| l.name.clone())
        .collect()
}

/// Busy snapshots (chain locks with their pins, other owners) and orphaned backing snapshots
/// of one volume. Returns the bytes held by locked or orphaned backing snapshots.
pub(super) fn snapshot_findings(
    input: &Input<'_>,
    at: &At<'_>,
    listing: &ClusterListing,
    snapshots: &[&SnapshotInfo],
    retention: Option<&VolumeRetention>,
    out: &mut Vec<Finding>,
) -> u64 {
    let policy = input.policy;
    let mut held = 0u64;
    for s in snapshots {
        let kind = backing(policy, s);
        let created = s.create_time.with_timezone(&Utc);
        let old = input.now.signed_duration_since(created) >= input.older_than;
        let open = input.open_backing.is_some_and(|o| {
            o.contains(&[
                at.cluster.to_string(),
                s.svm.to_string(),
                s.volume_name.to_string(),
                s.name.to_string(),
            ])
        });
        let orphan = match kind {
            Some(Backing::Snapwarden) => old && !open,
            Some(Backing::Foreign) => old,
            None => false,
        };
        let clone_owned = s.owners.iter().any(|o| CLONE_OWNERS.contains(&o.as_str()));
        let pins = match kind {
            Some(_) if clone_owned => pins_of(s, snapshots, retention),
            _ => Vec::new(),
        };
        if kind.is_some() && (orphan || !pins.is_empty()) {
            held = held.saturating_add(s.size.unwrap_or(0));
        }
        if !pins.is_empty() {
            let prefix = &policy.agent.snapshot_prefix;
            let lock = Chain {
                now: input.now,
                prefix,
                retention,
            };
            out.push(lock.finding(at, listing, s, kind, &pins));
        } else if s.owners.iter().any(|o| !CLONE_OWNERS.contains(&o.as_str()))
            || (clone_owned && kind.is_none())
        {
            // A backing snapshot's own clones are its backup's (or, when old, its orphan
            // finding's); anything else holding a snapshot is reported here.
            out.push(busy(at, s));
        }
        if orphan {
            let kind = kind.expect("only backing snapshots are orphans");
            let prefix = &policy.agent.snapshot_prefix;
            out.push(orphan_finding(
                input,
                at,
                s,
                kind,
                clones_of(listing, s, kind, prefix),
            ));
        }
    }
    held
}

/// The snapshots taken after a clone-locked backing snapshot on its volume that are not
/// backing snapshots themselves: each may have captured its clone (the listing cannot say
/// when the clone was deleted, so every later one counts).
fn pins_of<'a>(
    s: &SnapshotInfo,
    snapshots: &[&'a SnapshotInfo],
    retention: Option<&VolumeRetention>,
) -> Vec<&'a SnapshotInfo> {
    snapshots
        .iter()
        .copied()
        .filter(|t| t.create_time > s.create_time)
        .filter(|t| {
            retention.is_some_and(|r| r.schedule_of(&t.name).is_some())
                || t.snaplock_expiry.is_some()
        })
        .collect()
}

/// What a chain-lock finding is computed with.
struct Chain<'a> {
    now: DateTime<Utc>,
    prefix: &'a str,
    retention: Option<&'a VolumeRetention>,
}

impl Chain<'_> {
    fn finding(
        &self,
        at: &At<'_>,
        listing: &ClusterListing,
        s: &SnapshotInfo,
        kind: Option<Backing>,
        pins: &[&SnapshotInfo],
    ) -> Finding {
        let (now, retention) = (self.now, self.retention);
        let rotates = pins
            .iter()
            .map(|p| {
                retention.and_then(|r| {
                    r.schedule_of(&p.name).and_then(|sched| {
                        r.rotates_out_at(sched, p.create_time.with_timezone(&Utc))
                    })
                })
            })
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max());
        let locked_until = pins
            .iter()
            .filter_map(|p| p.snaplock_expiry.map(|t| t.with_timezone(&Utc)))
            .filter(|t| *t > now)
            .max();
        let names: Vec<&str> = pins.iter().map(|p| p.name.as_str()).collect();
        let mut detail = format!(
        "backing snapshot {} is busy ({}) and pinned by {} scheduled snapshot(s) taken after it: {}",
        s.name,
        s.owners.join(", "),
        pins.len(),
        names.join(", ")
    );
        match rotates {
            Some(t) => detail.push_str(&format!(
                "; the last rotates out at {} (estimate from the schedules' counts)",
                t.to_rfc3339()
            )),
            None => detail
                .push_str("; not every pin belongs to a known schedule: they stay until deleted"),
        }
        let severity = match locked_until {
            Some(t) => {
                detail.push_str(&format!(
                    "; tamper-proof pins are locked until {}",
                    t.to_rfc3339()
                ));
                Severity::Critical
            }
            None => Severity::Warning,
        };
        let mut f = at.finding(
        severity,
        Code::ChainLock,
        detail,
        if locked_until.is_some() {
            "the backing snapshot and its space cannot be freed before the pins' SnapLock expiry"
        } else {
            "the backing snapshot and the space it holds stay until every pin rotates out"
        },
    );
        f.snapshot = Some(s.name.to_string());
        f.bytes = s.size;
        f.luns = kind.map_or_else(Vec::new, |k| clones_of(listing, s, k, self.prefix));
        for p in pins {
            f.fix.cli.push(format!(
                "volume snapshot delete {} -snapshot {}",
                at.vserver(),
                p.name
            ));
            f.fix
                .rest
                .push(format!("DELETE {}/snapshots/{}", at.volume_path(), p.uuid));
        }
        f.fix.policy = Some(
            "only once the pins' data is protected elsewhere; FlexClone (clone = \"flexclone\") \
         avoids chain locks"
                .into(),
        );
        f
    }
}

fn busy(at: &At<'_>, s: &SnapshotInfo) -> Finding {
    let snapmirror = s.owners.iter().any(|o| o.starts_with("snapmirror"));
    let mut f = at.finding(
        Severity::Warning,
        Code::BusySnapshot,
        format!(
            "snapshot {} is busy: owners {}",
            s.name,
            s.owners.join(", ")
        ),
        if snapmirror {
            "a SnapMirror transfer holds it: rotation keeps it and the snapshots a backup \
             needs may run short of space or slots until the transfer ends"
        } else {
            "its owner holds it: it cannot be deleted or rotated until released"
        },
    );
    f.snapshot = Some(s.name.to_string());
    f.bytes = s.size;
    f.fix.cli.push(format!(
        "volume snapshot show {} -snapshot {} -fields owners,busy",
        at.vserver(),
        s.name
    ));
    if snapmirror {
        f.fix.cli.push(format!(
            "snapmirror show -source-path {}:{} -fields status,state",
            at.svm, at.volume
        ));
        f.fix.rest.push(format!(
            "GET /api/snapmirror/relationships?source.path={}:{}&fields=state,transfer.state",
            at.svm, at.volume
        ));
    }
    f.fix.rest.push(format!(
        "GET {}/snapshots/{}?fields=owners",
        at.volume_path(),
        s.uuid
    ));
    f
}

fn orphan_finding(
    input: &Input<'_>,
    at: &At<'_>,
    s: &SnapshotInfo,
    kind: Backing,
    clones: Vec<String>,
) -> Finding {
    let age = input
        .now
        .signed_duration_since(s.create_time.with_timezone(&Utc));
    let hours = age.num_hours();
    let (code, whose) = match kind {
        Backing::Snapwarden => (
            Code::OrphanBackingSnapshot,
            if input.open_backing.is_some() {
                "snapwarden's, and no open cycle in the journal holds it"
            } else {
                "snapwarden's (no journal read: pass --state-dir to tell open cycles apart)"
            },
        ),
        Backing::Foreign => (
            Code::OrphanForeignSnapshot,
            "a backup tool's (it matches foreign_snapshot_patterns; snapwarden never deletes it)",
        ),
    };
    let mut f = at.finding(
        Severity::Warning,
        code,
        format!(
            "backing snapshot {} is {hours} h old and {whose}{}",
            s.name,
            if clones.is_empty() {
                String::new()
            } else {
                format!("; LUN clones on the volume: {}", clones.join(", "))
            }
        ),
        "it holds space and a snapshot slot, and a scheduled snapshot that captures one of its \
         SnapRestore clones locks it into the chain",
    );
    f.snapshot = Some(s.name.to_string());
    f.bytes = s.size;
    for c in &clones {
        f.fix
            .cli
            .push(format!("lun delete -vserver {} -path {c}", at.svm));
        f.fix
            .rest
            .push(format!("DELETE /api/storage/luns/<uuid of {c}>"));
    }
    f.fix.cli.push(format!(
        "volume snapshot delete {} -snapshot {}",
        at.vserver(),
        s.name
    ));
    f.fix
        .rest
        .push(format!("DELETE {}/snapshots/{}", at.volume_path(), s.uuid));
    if kind == Backing::Foreign {
        f.fix.policy = Some("first check in the backup tool that no job or restore uses it".into());
    }
    f.luns = clones;
    f
}
