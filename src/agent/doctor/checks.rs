//! The checks of `doctor`, one function per hazard, each adding its findings to a list.

use chrono::{DateTime, Utc};

use super::{ClusterListing, Code, Finding, Fix, Input, Severity};
use crate::agent::decide::double_scheduled;
use crate::agent::observe::{has_prefix, is_snapwardens};
use crate::config::{CloneMethod, Policy};
use crate::ontap::{LicenseState, SnapshotInfo, VolumeSettings};
use crate::planner::{self, VolumeRetention};

/// Owners that mean a LUN clone is backed by the snapshot (reference notes §1.4, §2.3).
const CLONE_OWNERS: &[&str] = &["lun_clone", "file_clone_dependent", "snap_restore"];

/// Where a finding is: cluster, SVM, volume.
struct At<'a> {
    cluster: &'a str,
    svm: &'a str,
    volume: &'a str,
    /// The volume's uuid, for REST paths (`<uuid of VOLUME>` when unknown).
    uuid: String,
}

impl At<'_> {
    fn finding(&self, severity: Severity, code: Code, detail: String, impact: &str) -> Finding {
        Finding {
            severity,
            code,
            cluster: self.cluster.to_string(),
            svm: Some(self.svm.to_string()),
            volume: Some(self.volume.to_string()),
            snapshot: None,
            luns: Vec::new(),
            bytes: None,
            detail,
            impact: impact.to_string(),
            fix: Fix::default(),
        }
    }

    fn vserver(&self) -> String {
        format!("-vserver {} -volume {}", self.svm, self.volume)
    }

    fn volume_path(&self) -> String {
        format!("/api/storage/volumes/{}", self.uuid)
    }
}

/// Every check of one cluster's policy volumes, then its coverage.
pub(super) fn cluster(
    input: &Input<'_>,
    ci: usize,
    listing: &ClusterListing,
    out: &mut Vec<Finding>,
) {
    let policy = input.policy;
    let inv = &listing.inventory;
    let present = inv.present();
    for vi in (0..policy.volumes.len()).filter(|&vi| policy.volumes[vi].cluster == ci) {
        let v = &policy.volumes[vi];
        let settings = listing
            .settings
            .iter()
            .find(|s| s.svm == v.svm && s.name == v.name);
        let at = At {
            cluster: &listing.name,
            svm: &v.svm,
            volume: &v.name,
            uuid: inv
                .volume(&v.svm, &v.name)
                .map_or_else(|| format!("<uuid of {}>", v.name), |i| i.uuid.clone()),
        };
        if let Some(why) = present.missing(policy, vi) {
            let mut f = at.finding(
                Severity::Critical,
                Code::VolumeMissing,
                why,
                "no backup of this volume can run: snapwarden has nothing to snapshot or clone",
            );
            f.fix.policy = Some(
                "correct the volume's cluster, svm, name or luns in the policy, or remove it"
                    .into(),
            );
            f.fix.cli.push(format!("lun show -vserver {}", v.svm));
            f.fix.rest.push(format!(
                "GET /api/storage/luns?svm.name={}&fields=name,location.volume.name",
                v.svm
            ));
            out.push(f);
            continue;
        }
        let snaprestore = clones_by_snaprestore(policy, vi, inv.flexclone);
        licenses(policy, vi, &at, inv.flexclone, inv.snaprestore, out);
        if let Some(s) = settings {
            autodelete(&at, s, out);
            locking(&at, s, snaprestore, out);
            if s.naming_scheme.as_deref() == Some("ordinal") {
                let mut f = at.finding(
                    Severity::Warning,
                    Code::OrdinalNaming,
                    "scheduled_snapshot_naming_scheme is ordinal: the newest scheduled snapshot \
                     is <prefix>.0, renamed at the next one"
                        .into(),
                    "names without a timestamp: snapwarden cannot tell from a name when a \
                     scheduled snapshot was taken or which schedule it rotates with",
                );
                f.fix.rest.push(format!(
                    "PATCH {} {{\"scheduled_snapshot_naming_scheme\": \"create_time\"}}",
                    at.volume_path()
                ));
                out.push(f);
            }
        }
        if let Some(d) = double_scheduled(policy, vi, inv) {
            let mut f = at.finding(
                Severity::Warning,
                Code::DoubleSchedule,
                format!(
                    "ONTAP's snapshot policy {:?} on the volume also takes the {} snapshots that \
                     managed policy {:?} hands to snapwarden",
                    d.ontap_policy,
                    d.prefixes.join(", "),
                    d.managed
                ),
                "two schedulers of one series: the agent leaves the volume's managed snapshots \
                 out until ONTAP's policy stops taking them",
            );
            f.fix.cli.push(format!(
                "volume modify {} -snapshot-policy <policy without {}>",
                at.vserver(),
                d.prefixes.join(", ")
            ));
            f.fix.rest.push(format!(
                "PATCH {} {{\"snapshot_policy\": {{\"name\": \"<policy without {}>\"}}}}",
                at.volume_path(),
                d.prefixes.join(", ")
            ));
            out.push(f);
        }
        let retention = planner::volume_retention(policy, input.observed, vi).ok();
        let snapshots: Vec<&SnapshotInfo> = inv.volume_snapshots(&v.svm, &v.name).collect();
        let held = snapshot_findings(input, &at, listing, &snapshots, retention.as_ref(), out);
        if let Some(s) = settings {
            space(&at, s, &snapshots, held, out);
        }
    }
    coverage(policy, ci, listing, out);
}

/// Whether policy volume `vi` backs its LUNs with SnapRestore clones, which a scheduled
/// snapshot captures (the start stage's choice: `auto` takes FlexClone when licensed).
fn clones_by_snaprestore(policy: &Policy, vi: usize, flexclone: LicenseState) -> bool {
    match policy.volumes[vi].clone {
        CloneMethod::FlexClone => false,
        CloneMethod::SnapRestore => true,
        CloneMethod::Auto => flexclone != LicenseState::Compliant,
    }
}

fn license_text(state: LicenseState) -> &'static str {
    match state {
        LicenseState::Compliant => "compliant",
        LicenseState::Noncompliant => "noncompliant",
        LicenseState::Unlicensed => "not installed",
        LicenseState::Unknown => "of unknown state",
    }
}

/// The volume's `clone` setting against the FlexClone and SnapRestore licenses.
fn licenses(
    policy: &Policy,
    vi: usize,
    at: &At<'_>,
    flexclone: LicenseState,
    snaprestore: LicenseState,
    out: &mut Vec<Finding>,
) {
    let v = &policy.volumes[vi];
    let (needed, state, alternative) = match v.clone {
        CloneMethod::FlexClone => ("flexclone", flexclone, "snaprestore"),
        CloneMethod::SnapRestore => ("snaprestore", snaprestore, "flexclone"),
        CloneMethod::Auto if flexclone == LicenseState::Compliant => return,
        CloneMethod::Auto => ("snaprestore", snaprestore, "flexclone"),
    };
    if state != LicenseState::Compliant {
        let severity = if state == LicenseState::Noncompliant {
            Severity::Warning
        } else {
            Severity::Critical
        };
        let mut f = at.finding(
            severity,
            Code::LicenseMissing,
            format!(
                "the volume clones with {needed} (clone = {:?}) and the {needed} license is {}",
                clone_setting(v.clone),
                license_text(state)
            ),
            "every backup cycle of the volume fails when it creates its LUN clones",
        );
        f.fix
            .cli
            .push(format!("system license show -package {needed}"));
        f.fix
            .cli
            .push("system license add -license-code <license key>".into());
        f.fix.rest.push(format!(
            "GET /api/cluster/licensing/licenses/{needed}?fields=state"
        ));
        f.fix
            .rest
            .push("POST /api/cluster/licensing/licenses {\"keys\": [\"<license key>\"]}".into());
        f.fix.policy = Some(format!(
            "or set clone = \"{alternative}\" on volume {} when that license is installed",
            v.name
        ));
        out.push(f);
        return;
    }
    if clones_by_snaprestore(policy, vi, flexclone) {
        let mut f = at.finding(
            Severity::Info,
            Code::SnaprestoreClones,
            format!(
                "the volume clones with SnapRestore (clone = {:?}; FlexClone {})",
                clone_setting(v.clone),
                license_text(flexclone)
            ),
            "a scheduled snapshot taken while a clone lives captures it and locks the backing \
             snapshot into the chain; snapwarden plans around the schedules, FlexClone removes \
             the risk",
        );
        f.fix.policy = Some(format!(
            "install FlexClone and set clone = \"flexclone\" (or \"auto\") on volume {}",
            v.name
        ));
        f.fix
            .cli
            .push("system license show -package flexclone".into());
        f.fix
            .rest
            .push("GET /api/cluster/licensing/licenses/flexclone?fields=state".into());
        out.push(f);
    }
}

fn clone_setting(c: CloneMethod) -> &'static str {
    match c {
        CloneMethod::Auto => "auto",
        CloneMethod::FlexClone => "flexclone",
        CloneMethod::SnapRestore => "snaprestore",
    }
}

/// Autodelete with `commitment = destroy` (deletes snapshots locked by LUN clones, and the
/// clones) or `disrupt` (deletes snapshots locked by data-protection and clone operations).
fn autodelete(at: &At<'_>, s: &VolumeSettings, out: &mut Vec<Finding>) {
    if !s.autodelete.enabled {
        return;
    }
    let commitment = s.autodelete.commitment.as_deref().unwrap_or("try");
    let trigger = s.autodelete.trigger.as_deref().unwrap_or("volume");
    let (severity, code, impact) = match commitment {
        "destroy" => (
            Severity::Critical,
            Code::AutodeleteDestroy,
            "when the volume runs short of space ONTAP deletes snapshots locked by LUN clones \
             and the clones with them: a backup reading a clone loses it mid-run",
        ),
        "disrupt" => (
            Severity::Warning,
            Code::AutodeleteDisrupt,
            "when the volume runs short of space ONTAP may delete snapshots that SnapMirror or \
             dump hold, including a backup's backing snapshot",
        ),
        _ => return,
    };
    let mut f = at.finding(
        severity,
        code,
        format!(
            "snapshot autodelete is enabled with commitment = {commitment}, trigger = {trigger}"
        ),
        impact,
    );
    f.fix.cli.push(format!(
        "volume snapshot autodelete modify {} -commitment try",
        at.vserver()
    ));
    f.fix.rest.push(format!(
        "PATCH {} {{\"space\": {{\"snapshot\": {{\"autodelete\": {{\"commitment\": \"try\"}}}}}}}}",
        at.volume_path()
    ));
    out.push(f);
}

/// Snapshot locking: the volume's scheduled snapshots can be tamper-proof until their expiry.
fn locking(at: &At<'_>, s: &VolumeSettings, snaprestore: bool, out: &mut Vec<Finding>) {
    if !s.snapshot_locking {
        return;
    }
    let (severity, impact) = if snaprestore {
        (
            Severity::Warning,
            "a scheduled snapshot that captures a SnapRestore clone is locked until its expiry: \
             the backing snapshot it pins cannot be freed before then, whatever rotation says",
        )
    } else {
        (
            Severity::Info,
            "FlexClone clones are not captured, so locked scheduled snapshots pin no backing \
             snapshot; a SnapRestore clone would stay locked until their expiry",
        )
    };
    let mut f = at.finding(
        severity,
        Code::SnapshotLocking,
        "snapshot_locking_enabled is true: scheduled snapshots with a retention period carry a \
         snaplock_expiry_time"
            .into(),
        impact,
    );
    f.fix.policy = Some(format!(
        "clone with FlexClone on this volume (clone = \"flexclone\"), so no snapshot captures a \
         clone; keep the schedules' retention periods short on {}",
        at.volume
    ));
    f.fix.cli.push(format!(
        "volume snapshot show {} -fields snaplock-expiry-time,owners",
        at.vserver()
    ));
    f.fix.rest.push(format!(
        "GET {}/snapshots?fields=name,snaplock_expiry_time,owners",
        at.volume_path()
    ));
    out.push(f);
}

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
        .luns
        .iter()
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
fn snapshot_findings(
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
                s.svm.clone(),
                s.volume_name.clone(),
                s.name.clone(),
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
        f.snapshot = Some(s.name.clone());
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
    f.snapshot = Some(s.name.clone());
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
    f.snapshot = Some(s.name.clone());
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

/// The snapshots' use of the reserve, and how much of it locked or orphaned backing
/// snapshots hold.
fn space(
    at: &At<'_>,
    s: &VolumeSettings,
    snapshots: &[&SnapshotInfo],
    held: u64,
    out: &mut Vec<Finding>,
) {
    let (Some(used), Some(reserve)) = (s.snapshot_used, s.reserve_size) else {
        return;
    };
    if snapshots.is_empty() {
        return;
    }
    let percent = s.reserve_percent.unwrap_or(0);
    let detail = format!(
        "snapshots use {} of the {} snapshot reserve ({percent} %); locked or orphaned backing \
         snapshots hold {}",
        bytes(used),
        bytes(reserve),
        bytes(held)
    );
    if used > reserve {
        let mut f = at.finding(
            Severity::Warning,
            Code::SnapshotReserveExceeded,
            detail,
            "snapshots spill into the active file system: the LUNs can run out of space, and \
             autodelete with trigger snap_reserve starts deleting snapshots",
        );
        f.bytes = Some(used);
        let want = reserve_percent_for(used, reserve, percent);
        f.fix.cli.push(format!(
            "volume modify {} -percent-snapshot-space {want}",
            at.vserver()
        ));
        f.fix.rest.push(format!(
            "PATCH {} {{\"space\": {{\"snapshot\": {{\"reserve_percent\": {want}}}}}}}",
            at.volume_path()
        ));
        out.push(f);
    } else {
        let mut f = at.finding(
            Severity::Info,
            Code::SnapshotSpace,
            detail,
            "within the reserve",
        );
        f.bytes = Some(used);
        out.push(f);
    }
}

/// The reserve percentage that would hold `used` (rounded up, at most 90, ONTAP's limit).
pub(super) fn reserve_percent_for(used: u64, reserve: u64, percent: u64) -> u64 {
    if reserve == 0 || percent == 0 {
        return 5;
    }
    let volume = u128::from(reserve) * 100 / u128::from(percent);
    let want = (u128::from(used) * 100).div_ceil(volume.max(1));
    u64::try_from(want).unwrap_or(90).clamp(1, 90)
}

/// Bytes for people: `1.5 GiB`.
pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Volumes of the cluster that hold LUNs (not clones) but are not in the policy.
fn coverage(policy: &Policy, ci: usize, listing: &ClusterListing, out: &mut Vec<Finding>) {
    let name = &policy.clusters[ci].name;
    let mut volumes: Vec<(&str, &str)> = listing
        .inventory
        .luns
        .iter()
        .filter(|l| !l.created_as_clone)
        .map(|l| (l.svm.as_str(), l.volume_name.as_str()))
        .collect();
    volumes.sort_unstable();
    volumes.dedup();
    for (svm, volume) in volumes {
        let covered = policy
            .volumes
            .iter()
            .any(|v| v.cluster == ci && v.svm == svm && v.name == volume);
        if covered {
            continue;
        }
        let luns: Vec<String> = listing
            .inventory
            .luns
            .iter()
            .filter(|l| l.svm == svm && l.volume_name == volume && !l.created_as_clone)
            .map(|l| l.name.clone())
            .collect();
        let at = At {
            cluster: name,
            svm,
            volume,
            uuid: listing
                .inventory
                .volume(svm, volume)
                .map_or_else(|| format!("<uuid of {volume}>"), |v| v.uuid.clone()),
        };
        let mut f = at.finding(
            Severity::Warning,
            Code::VolumeNotCovered,
            format!(
                "volume {volume} holds {} LUN(s) and is not in the policy",
                luns.len()
            ),
            "backups of its LUNs are not coordinated with its scheduled snapshots",
        );
        f.fix.policy = Some(format!(
            "[[volume]] cluster = \"{name}\", svm = \"{svm}\", name = \"{volume}\", luns = [{}] \
             — and a window naming it",
            luns.iter()
                .map(|l| format!("\"{l}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        f.fix
            .cli
            .push(format!("lun show -vserver {svm} -volume {volume}"));
        f.fix.rest.push(format!(
            "GET /api/storage/luns?svm.name={svm}&location.volume.name={volume}&fields=name"
        ));
        f.luns = luns;
        out.push(f);
    }
}

/// Every conflict `check` predicts for the plan's horizon.
pub(super) fn conflicts(input: &Input<'_>, out: &mut Vec<Finding>) {
    let policy = input.policy;
    for c in &input.plan.conflicts {
        let v = &policy.volumes[c.volume];
        let window = &policy.windows[c.window];
        out.push(Finding {
            severity: Severity::Warning,
            code: Code::PredictedConflict,
            cluster: policy.clusters[v.cluster].name.clone(),
            svm: Some(v.svm.clone()),
            volume: Some(v.name.clone()),
            snapshot: None,
            luns: Vec::new(),
            bytes: None,
            detail: format!(
                "window {} at {}: {} — scheduled snapshot {} at {}",
                window.name,
                c.at.to_rfc3339(),
                c.kind.as_str(),
                c.schedule,
                c.scheduled.at.to_rfc3339()
            ),
            impact: match c.kind {
                planner::ConflictKind::Skipped | planner::ConflictKind::NoGap => {
                    "the occurrence does not run: no backup then"
                }
                _ => "a scheduled snapshot will capture the clone and lock the backing snapshot",
            }
            .to_string(),
            fix: Fix {
                cli: Vec::new(),
                rest: Vec::new(),
                policy: Some(c.suggestion.clone()),
            },
        });
    }
}
