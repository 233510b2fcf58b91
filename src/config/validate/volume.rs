//! `[[volume]]`: the volume's id, LUNs, snapshot policy and clone method.

use super::Names;
use crate::config::diag::{hint, Collector};
use crate::config::load::At;
use crate::config::model::*;
use crate::config::raw::RawVolume;

pub(super) fn volume_id(v: &RawVolume) -> String {
    format!(
        "{}/{}/{}",
        v.cluster.get_ref(),
        v.svm.get_ref(),
        v.name.get_ref()
    )
}

pub(super) fn build_volume(
    cx: &mut Collector,
    at: &At<RawVolume>,
    clusters: &Names<'_>,
    policies: &Names<'_>,
) -> Option<Volume> {
    let (file, v) = (at.file, &at.item);
    let mut ok = true;
    for (key, value) in [("svm", &v.svm), ("name", &v.name)] {
        let s = value.get_ref();
        if s.is_empty() || s.contains('/') || s.chars().any(char::is_whitespace) {
            ok = false;
            cx.error(
                file,
                value.span(),
                format!("volume `{key}` \"{s}\" must be non-empty without '/' or spaces"),
                hint("volume ids are written cluster/svm/volume"),
            );
        }
    }
    let cluster = clusters.resolve(cx, file, &v.cluster);
    let schedules = if v.snapshot_policy.get_ref() == "ontap" {
        Some(VolumeSchedules::Ontap)
    } else {
        policies
            .resolve(cx, file, &v.snapshot_policy)
            .map(VolumeSchedules::Policy)
    };
    let name = v.name.get_ref();
    if v.luns.get_ref().is_empty() {
        ok = false;
        cx.error(
            file,
            v.luns.span(),
            format!("volume \"{name}\" lists no LUNs"),
            hint(format!("add luns = [\"/vol/{name}/lun0\"]")),
        );
    }
    let prefix = format!("/vol/{name}/");
    for (i, lun) in v.luns.get_ref().iter().enumerate() {
        let path = lun.get_ref();
        if v.luns.get_ref()[..i].iter().any(|l| l.get_ref() == path) {
            ok = false;
            cx.error(
                file,
                lun.span(),
                format!("LUN \"{path}\" is listed twice"),
                hint("list each LUN once"),
            );
        }
        let rest = path.strip_prefix(&prefix);
        if rest.is_none_or(|r| r.is_empty() || r.ends_with('/')) {
            ok = false;
            cx.error(
                file,
                lun.span(),
                format!("LUN path \"{path}\" is not under {prefix}"),
                hint(format!(
                    "LUN paths of this volume look like \"{prefix}lun0\""
                )),
            );
        }
    }
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
        svm: v.svm.get_ref().clone(),
        name: name.clone(),
        luns: v
            .luns
            .get_ref()
            .iter()
            .map(|l| l.get_ref().clone())
            .collect(),
        schedules: schedules?,
        clone: clone?,
    })
    .filter(|_| ok)
}
