//! The checks of `doctor`, one function per hazard, each adding its findings to a list.

use super::snapshots::snapshot_findings;
use super::{ClusterListing, Code, Finding, Fix, Input, Severity};
use crate::agent::decide::double_scheduled;
use crate::config::{CloneMethod, Policy};
use crate::ontap::{LicenseState, SnapshotInfo, VolumeSettings};
use crate::planner;

/// Where a finding is: cluster, SVM, volume.
pub(super) struct At<'a> {
    pub cluster: &'a str,
    pub svm: &'a str,
    pub volume: &'a str,
    /// The volume's uuid, for REST paths (`<uuid of VOLUME>` when unknown).
    pub uuid: String,
}

impl At<'_> {
    pub(super) fn finding(
        &self,
        severity: Severity,
        code: Code,
        detail: String,
        impact: &str,
    ) -> Finding {
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

    pub(super) fn vserver(&self) -> String {
        format!("-vserver {} -volume {}", self.svm, self.volume)
    }

    pub(super) fn volume_path(&self) -> String {
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
        if let Some(why) = inv.missing(policy, vi) {
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
        .luns()
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
            .luns()
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
