//! `[[volume]]`: the volume's id, LUNs, snapshot policy and clone method.

use toml::Spanned;

use super::names;
use super::values::Required;
use super::Names;
use crate::config::diag::{hint, Collector};
use crate::config::load::At;
use crate::config::model::*;
use crate::config::raw::RawVolume;

/// `cluster/svm/name`, when the entry has all three.
pub(super) fn volume_id(v: &RawVolume) -> Option<String> {
    Some(format!(
        "{}/{}/{}",
        v.cluster.as_ref()?.get_ref(),
        v.svm.as_ref()?.get_ref(),
        v.name.as_ref()?.get_ref()
    ))
}

pub(super) fn build_volume(
    cx: &mut Collector,
    at: &At<RawVolume>,
    clusters: &Names<'_>,
    policies: &Names<'_>,
) -> Option<Volume> {
    let (file, v) = (at.file, &at.item);
    let mut need = Required::new(file, &at.span, "[[volume]]");
    let cluster = need.key("cluster", &v.cluster);
    let svm = need.key("svm", &v.svm);
    let name = need.key("name", &v.name);
    let luns = need.key("luns", &v.luns);
    let snapshot_policy = need.key("snapshot_policy", &v.snapshot_policy);
    need.report(cx);
    let mut ok = true;
    for (rule, value) in [(&names::SVM, svm), (&names::VOLUME, name)] {
        if let Some(value) = value {
            ok &= names::check(cx, file, value.span(), rule, value.get_ref());
        }
    }
    let cluster = cluster.and_then(|c| clusters.resolve(cx, file, c));
    let schedules = snapshot_policy.and_then(|p| {
        if p.get_ref() == "ontap" {
            Some(VolumeSchedules::Ontap)
        } else {
            policies.resolve(cx, file, p).map(VolumeSchedules::Policy)
        }
    });
    let managed = match &v.managed_snapshots {
        None => Some(None),
        Some(m) => managed_policy(cx, file, m, policies).map(Some),
    };
    let name = name.map(|n| n.get_ref());
    let luns = luns.map(|luns| {
        ok &= check_luns(cx, file, luns, name);
        luns.get_ref().iter().map(|l| l.get_ref().clone()).collect()
    });
    let clone = match v.clone.as_ref().map(|c| c.get_ref().as_str()) {
        None | Some("auto") => Some(CloneMethod::Auto),
        Some("flexclone") => Some(CloneMethod::FlexClone),
        Some("snaprestore") => Some(CloneMethod::SnapRestore),
        Some(other) => {
            let span = v.clone.as_ref().map(|c| c.span()).unwrap_or_default();
            cx.error(
                file,
                span,
                format!("unknown clone method \"{other}\""),
                hint("use auto, flexclone or snaprestore"),
            );
            None
        }
    };
    Some(Volume {
        cluster: cluster?,
        svm: svm?.get_ref().clone(),
        name: name?.clone(),
        luns: luns?,
        schedules: schedules?,
        managed: managed?,
        clone: clone?,
    })
    .filter(|_| ok)
}

/// The inline policy `managed_snapshots` names; reported when it is `"ontap"` or undefined.
fn managed_policy(
    cx: &mut Collector,
    file: usize,
    value: &Spanned<String>,
    policies: &Names<'_>,
) -> Option<usize> {
    let name = value.get_ref();
    if name == "ontap" {
        cx.error(
            file,
            value.span(),
            "`managed_snapshots` cannot be \"ontap\": snapwarden takes only copies the policy file defines",
            hint("name an inline [[snapshot_policy]] holding the copies snapwarden takes instead of ONTAP"),
        );
        return None;
    }
    if let Some(&i) = policies.index.get(name.as_str()) {
        return Some(i);
    }
    if !policies.raw.is_broken(policies.section, name) {
        let inline: Vec<&str> = policies
            .defined
            .iter()
            .map(String::as_str)
            .filter(|n| *n != "ontap")
            .collect();
        let list = if inline.is_empty() {
            "none are defined; add a [[snapshot_policy]] with the copies snapwarden takes".into()
        } else {
            format!("defined: {}", inline.join(", "))
        };
        cx.error(
            file,
            value.span(),
            format!("managed snapshot policy \"{name}\" is not defined"),
            hint(list),
        );
    }
    None
}

/// At least one LUN, each once, each `/vol/<name>/[<qtree>/]<lun>` with names ONTAP takes (when
/// the volume's name is known); false when a problem was reported.
fn check_luns(
    cx: &mut Collector,
    file: usize,
    luns: &Spanned<Vec<Spanned<String>>>,
    name: Option<&String>,
) -> bool {
    let mut ok = true;
    let shown = name.map_or("", |n| n.as_str());
    if luns.get_ref().is_empty() {
        ok = false;
        let example = name.map_or("/vol/<name>/lun0".into(), |n| format!("/vol/{n}/lun0"));
        cx.error(
            file,
            luns.span(),
            format!("volume \"{shown}\" lists no LUNs"),
            hint(format!("add luns = [\"{example}\"]")),
        );
    }
    for (i, lun) in luns.get_ref().iter().enumerate() {
        let path = lun.get_ref();
        if luns.get_ref()[..i].iter().any(|l| l.get_ref() == path) {
            ok = false;
            cx.error(
                file,
                lun.span(),
                format!("LUN \"{path}\" is listed twice"),
                hint("list each LUN once"),
            );
        }
        let Some(name) = name else { continue };
        if let Some((message, h)) = names::lun_path_problem(path, name) {
            ok = false;
            cx.error(file, lun.span(), message, hint(h));
        }
    }
    ok
}
