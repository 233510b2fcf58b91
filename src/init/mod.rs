//! `snapwarden init`: a first policy drafted from what the clusters hold.
//!
//! [`read`] reads each cluster once (GETs only: the cluster, its volumes, its LUNs); [`draft`]
//! (pure) turns those listings into a [`Draft`]: the clusters as the operator reached them, one
//! volume per volume that holds LUNs (its LUN paths, `snapshot_policy = "ontap"`), one window
//! over them, and what was left out and why; `render` writes it as commented TOML.
//!
//! **Invariant:** every name a draft lists passes the checks `check` makes of it
//! (`config::single`, the validator's own functions); a name `check` would refuse is left out
//! with its reason, never written into a value. The command line parses the rendered text back
//! with `config::parse_str` before writing it.

mod render;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::config::{single, SecretSource, TlsVerify};
use crate::ontap::{ClusterInfo, LunInfo, Ontap, OntapError, VolumeInfo};

pub use render::render;

/// A cluster as the operator names it on the command line, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The policy's name for it (checked by the cluster-name rule).
    pub name: String,
    /// `https://host[:port]`: an origin, nothing more.
    pub endpoint: String,
    pub username: String,
    /// The variable or file the operator gave: the policy names the same one.
    pub password: SecretSource,
    pub tls: TlsVerify,
}

/// What one cluster holds, as read.
#[derive(Debug, Clone)]
pub struct Listing {
    pub info: ClusterInfo,
    pub volumes: Vec<VolumeInfo>,
    pub luns: Vec<LunInfo>,
}

/// Reads one cluster: three collections, concurrently, GETs only.
pub async fn read(ontap: &dyn Ontap) -> Result<Listing, OntapError> {
    let (info, volumes, luns) = tokio::try_join!(ontap.cluster(), ontap.volumes(), ontap.luns())?;
    Ok(Listing {
        info,
        volumes,
        luns,
    })
}

/// The window the draft puts every volume in; values already checked by `config::single`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowArgs {
    pub name: String,
    pub start: String,
    pub expected: String,
    pub max: String,
    /// `None`: the first cluster's zone, as it reports it.
    pub timezone: Option<String>,
}

/// The snapshot prefix the written policy leaves at its default (`[agent] snapshot_prefix`):
/// clone names are measured with it.
pub const SNAPSHOT_PREFIX: &str = "snapwarden";

/// A policy to write.
#[derive(Debug, Clone)]
pub struct Draft {
    pub clusters: Vec<DraftCluster>,
    pub volumes: Vec<DraftVolume>,
    /// Volumes with LUNs that the policy cannot list, with the reason (`cluster/svm/volume`).
    pub left_out: Vec<(String, String)>,
    /// Per cluster (index into `clusters`): the volumes read that hold no LUN (`svm/volume`).
    pub without_luns: Vec<Vec<String>>,
    /// `--svm`, when given: the SVMs the draft is restricted to.
    pub svms: Vec<String>,
    pub window: DraftWindow,
}

#[derive(Debug, Clone)]
pub struct DraftCluster {
    pub target: Target,
    pub version: String,
    /// The zone the cluster reports (`/api/cluster` `timezone.name`).
    pub zone: String,
}

#[derive(Debug, Clone)]
pub struct DraftVolume {
    /// Index into `Draft::clusters`.
    pub cluster: usize,
    pub svm: String,
    pub name: String,
    /// The ONTAP snapshot policy the volume has, as read.
    pub ontap_policy: Option<String>,
    pub luns: Vec<String>,
    /// LUNs of the volume that are not listed, with the reason.
    pub left_out_luns: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct DraftWindow {
    pub args: WindowArgs,
    /// The zone written: `--timezone`, or the first cluster's.
    pub timezone: String,
}

/// Builds the draft from each target's listing (same order). Errors: an `--svm` no cluster
/// has, a cluster zone that is no IANA zone (without `--timezone`), and no volume to list.
pub fn draft(
    read: Vec<(Target, Listing)>,
    svms: &[String],
    window: &WindowArgs,
) -> Result<Draft, String> {
    let seen: BTreeSet<&str> = read
        .iter()
        .flat_map(|(_, l)| l.volumes.iter().map(|v| v.svm.as_str()))
        .collect();
    let unknown: Vec<&String> = svms.iter().filter(|s| !seen.contains(s.as_str())).collect();
    if !unknown.is_empty() {
        let seen: Vec<&str> = seen.into_iter().collect();
        return Err(format!(
            "--svm {}: no volume of {} is in that SVM (SVMs with volumes: {})",
            unknown
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            cluster_list(&read),
            if seen.is_empty() {
                "none".into()
            } else {
                seen.join(", ")
            }
        ));
    }
    let timezone = match &window.timezone {
        Some(tz) => tz.clone(),
        None => {
            let (target, first) = read.first().ok_or("no cluster to read")?;
            single::timezone(&first.info.timezone).map_err(|e| {
                format!(
                    "cluster {}: it reports time zone {:?}, which the window cannot take ({}); \
                     give the window's zone with --timezone",
                    target.name,
                    first.info.timezone,
                    e.lines().next().unwrap_or_default()
                )
            })?;
            first.info.timezone.clone()
        }
    };
    let mut out = Draft {
        clusters: Vec::new(),
        volumes: Vec::new(),
        left_out: Vec::new(),
        without_luns: Vec::new(),
        svms: svms.to_vec(),
        window: DraftWindow {
            args: window.clone(),
            timezone,
        },
    };
    let names = cluster_list(&read);
    for (ci, (target, listing)) in read.into_iter().enumerate() {
        let mut without = Vec::new();
        add_cluster(&mut out, ci, &target, &listing, svms, &mut without);
        out.without_luns.push(without);
        out.clusters.push(DraftCluster {
            target,
            version: listing.info.version,
            zone: listing.info.timezone,
        });
    }
    if out.volumes.is_empty() {
        let scope = if svms.is_empty() {
            String::new()
        } else {
            format!(" in SVM {}", svms.join(", "))
        };
        let also = if out.left_out.is_empty() {
            String::new()
        } else {
            format!("; left out: {}", summary(&out.left_out, " (", ")", ", "))
        };
        return Err(format!(
            "{names}{scope}: no volume holds a LUN the policy can list{also}"
        ));
    }
    Ok(out)
}

/// `what (the first line of why)` for each item, on one line: `open` and `close` around the
/// reason, `sep` between items (names kept on the line by `render::shown`).
fn summary(items: &[(String, String)], open: &str, close: &str, sep: &str) -> String {
    items
        .iter()
        .map(|(what, why)| {
            let why = why.lines().next().unwrap_or_default();
            format!("{}{open}{why}{close}", render::shown(what))
        })
        .collect::<Vec<_>>()
        .join(sep)
}

fn cluster_list(read: &[(Target, Listing)]) -> String {
    let names: Vec<&str> = read.iter().map(|(t, _)| t.name.as_str()).collect();
    match names.as_slice() {
        [one] => format!("cluster {one}"),
        _ => format!("clusters {}", names.join(", ")),
    }
}

/// The volumes of one cluster in the draft, sorted by SVM and name.
fn add_cluster(
    out: &mut Draft,
    ci: usize,
    target: &Target,
    listing: &Listing,
    svms: &[String],
    without_luns: &mut Vec<String>,
) {
    let mut luns: BTreeMap<(&str, &str), Vec<&LunInfo>> = BTreeMap::new();
    for l in &listing.luns {
        luns.entry((l.svm.as_str(), l.volume_name.as_str()))
            .or_default()
            .push(l);
    }
    let mut volumes: Vec<&VolumeInfo> = listing
        .volumes
        .iter()
        .filter(|v| svms.is_empty() || svms.contains(&v.svm))
        .collect();
    volumes.sort_by(|a, b| (&a.svm, &a.name).cmp(&(&b.svm, &b.name)));
    let mut done: HashSet<(&str, &str)> = HashSet::new();
    for v in volumes {
        let key = (v.svm.as_str(), v.name.as_str());
        if !done.insert(key) {
            continue; // ONTAP lists a volume once; a repeat adds nothing.
        }
        let id = format!("{}/{}/{}", target.name, v.svm, v.name);
        let Some(found) = luns.get_mut(&key) else {
            without_luns.push(format!("{}/{}", v.svm, v.name));
            continue;
        };
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.dedup_by(|a, b| a.name == b.name);
        if let Err(e) = single::svm_name(&v.svm).and_then(|()| single::volume_name(&v.name)) {
            out.left_out.push((id, e));
            continue;
        }
        let (listed, left_out_luns) = sort_luns(&v.name, found, &out.window.args.name);
        if listed.is_empty() {
            let n = left_out_luns.len();
            out.left_out.push((
                id,
                format!(
                    "none of its {n} LUN{} can be listed: {}",
                    if n == 1 { "" } else { "s" },
                    summary(&left_out_luns, ": ", "", "; ")
                ),
            ));
            continue;
        }
        if let Err(e) =
            single::window_derived_names(SNAPSHOT_PREFIX, &out.window.args.name, &listed)
        {
            out.left_out.push((id, e));
            continue;
        }
        out.volumes.push(DraftVolume {
            cluster: ci,
            svm: v.svm.clone(),
            name: v.name.clone(),
            ontap_policy: v.snapshot_policy.clone(),
            luns: listed,
            left_out_luns,
        });
    }
}

/// A volume's LUNs split into those the policy lists and those it leaves out, with the reason:
/// a LUN made as a clone (a backup's clone, or a copy: not what a window backs up unless the
/// operator says so), or a path `check` would refuse (a name ONTAP's rules refuse, or a clone
/// name the window would make too long).
fn sort_luns(
    volume: &str,
    luns: &[&LunInfo],
    window: &str,
) -> (Vec<String>, Vec<(String, String)>) {
    let mut listed = Vec::new();
    let mut left_out = Vec::new();
    for l in luns {
        let problem = if l.created_as_clone {
            Err(
                "ONTAP says it was created as a clone (a backup's LUN clone, or a copy); \
                 add it to `luns` yourself if a backup is to read it"
                    .to_string(),
            )
        } else {
            single::lun_path(&l.name, volume).and_then(|()| {
                single::window_derived_names(SNAPSHOT_PREFIX, window, std::slice::from_ref(&l.name))
            })
        };
        match problem {
            Ok(()) => listed.push(l.name.clone()),
            Err(why) => left_out.push((l.name.clone(), why)),
        }
    }
    (listed, left_out)
}

#[cfg(test)]
mod tests;
