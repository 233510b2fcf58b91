//! Validating a policy: raw types → `model::Policy`, one pass that reports every error at once.
//!
//! [`load`] and [`parse_str`] run stages 1–3 (`load`: files, includes, unknown keys, TOML types)
//! and then stage 4 here: required keys, values, uniqueness and cross-references. Every stage adds
//! to one list of located diagnostics; within an entry, every missing key and every bad value is
//! reported (a problem in one key never hides another).
//!
//! Invariant: `Ok(Policy)` only when no stage produced a diagnostic.
//!
//! By concern: `values` (durations, zones, crons, paths shared by every section), `agent`
//! (`[agent]`, `[flexclone]`), `cluster`, `schedule` (job schedules and snapshot policies),
//! `volume`, `managed` (the policies volumes hand to snapwarden), `window`, `veeam` (Veeam
//! servers and window drivers), `ha` (leader election) and `names` (ONTAP's naming rules and
//! snapwarden's labels); this file holds the entry points, the
//! pass over all sections and the name index used for duplicates and references.

mod agent;
mod cluster;
mod ha;
mod managed;
mod names;
mod schedule;
pub mod single;
#[cfg(test)]
mod tests;
mod values;
mod veeam;
mod volume;
mod window;

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use toml::Spanned;

use super::diag::{hint, Collector, Diagnostics};
use super::load::{read, read_path, RawPolicy};
use super::model::*;

use agent::{build_agent, build_flexclone};
use cluster::build_cluster;
use ha::build_ha;
use managed::check_managed;
use schedule::{build_schedule, build_snapshot_policy};
use veeam::build_veeam;
use volume::{build_volume, volume_id};
use window::build_window;

/// Loads and validates the policy at `path` and every file it includes.
pub fn load(path: &Path) -> Result<Policy, Diagnostics> {
    let (cx, raw) = read_path(path);
    validate(cx, raw)
}

/// Validates policy `text` as if it were the file at `path`; `include`s are read from disk,
/// relative to `path`'s directory.
pub fn parse_str(text: &str, path: &Path) -> Result<Policy, Diagnostics> {
    let (cx, raw) = read(text, path);
    validate(cx, raw)
}

/// Stage 4 after stages 1–3 have read `raw` (`None` after a syntax error).
fn validate(mut cx: Collector, raw: Option<RawPolicy>) -> Result<Policy, Diagnostics> {
    let policy = raw.and_then(|raw| build(&mut cx, raw));
    match policy {
        Some(policy) if cx.diags.is_empty() => Ok(policy),
        _ => Err(cx.finish()),
    }
}

/// The entries of one kind (clusters, schedules, …) by name, for duplicates and references.
///
/// Invariant: `index` maps each name to its first entry; `defined` lists names in file order.
struct Names<'r> {
    /// The policy section, as in `[[cluster]]`.
    section: &'static str,
    /// What a reference names, as users read it ("snapshot policy").
    what: &'static str,
    index: HashMap<String, usize>,
    defined: Vec<String>,
    raw: &'r RawPolicy,
}

impl<'r> Names<'r> {
    /// Indexes `entries` (name, file, span; `None` for an entry without a name, already reported)
    /// and reports each duplicate at the later entry.
    fn new(
        cx: &mut Collector,
        raw: &'r RawPolicy,
        section: &'static str,
        what: &'static str,
        entries: impl Iterator<Item = Option<(String, usize, Range<usize>)>>,
    ) -> Self {
        let label = if section == "volume" {
            what.to_string()
        } else {
            format!("{what} name")
        };
        let mut first: HashMap<String, (usize, usize, Range<usize>)> = HashMap::new();
        let mut defined = Vec::new();
        for (i, entry) in entries.enumerate() {
            let Some((key, file, span)) = entry else {
                continue;
            };
            if let Some((_, f0, s0)) = first.get(&key) {
                let at = cx.sources.describe(*f0, s0, file);
                cx.error(
                    file,
                    span,
                    format!("duplicate {label} \"{key}\" (first defined at {at})"),
                    hint(format!("each {label} must be unique; rename or remove one")),
                );
            } else {
                defined.push(key.clone());
                first.insert(key, (i, file, span));
            }
        }
        let index = first.into_iter().map(|(k, (i, _, _))| (k, i)).collect();
        Names {
            section,
            what,
            index,
            defined,
            raw,
        }
    }

    /// The entry `value` names; reports it when undefined, unless an entry by that name exists
    /// but failed to parse (already reported).
    pub(super) fn resolve(
        &self,
        cx: &mut Collector,
        file: usize,
        value: &Spanned<String>,
    ) -> Option<usize> {
        let name = value.get_ref();
        if let Some(&i) = self.index.get(name.as_str()) {
            return Some(i);
        }
        if !self.raw.is_broken(self.section, name) {
            let list = if self.defined.is_empty() {
                format!("none are defined; add a [[{}]]", self.section)
            } else {
                format!("defined: {}", self.defined.join(", "))
            };
            cx.error(
                file,
                value.span(),
                format!("{} \"{name}\" is not defined", self.what),
                hint(list),
            );
        }
        None
    }
}

fn build(cx: &mut Collector, raw: RawPolicy) -> Option<Policy> {
    let raw = &raw;
    let agent = build_agent(cx, raw.agent.as_ref());
    let flexclone = build_flexclone(cx, raw.flexclone.as_ref());
    let ha = build_ha(cx, raw.ha.as_ref());
    let named = |e: &Option<Spanned<String>>, file: usize| {
        e.as_ref().map(|e| (e.get_ref().clone(), file, e.span()))
    };

    let cluster_names = Names::new(
        cx,
        raw,
        "cluster",
        "cluster",
        raw.clusters.iter().map(|c| named(&c.item.name, c.file)),
    );
    let clusters: Vec<_> = raw.clusters.iter().map(|c| build_cluster(cx, c)).collect();

    let schedule_names = Names::new(
        cx,
        raw,
        "schedule",
        "schedule",
        raw.schedules.iter().map(|s| named(&s.item.name, s.file)),
    );
    let schedules: Vec<_> = raw
        .schedules
        .iter()
        .map(|s| build_schedule(cx, s))
        .collect();

    let mut policy_names = Names::new(
        cx,
        raw,
        "snapshot_policy",
        "snapshot policy",
        raw.snapshot_policies
            .iter()
            .map(|p| named(&p.item.name, p.file)),
    );
    policy_names.defined.insert(0, "ontap".into());
    let snapshot_policies: Vec<_> = raw
        .snapshot_policies
        .iter()
        .map(|p| build_snapshot_policy(cx, p, &schedule_names))
        .collect();

    let volume_names = Names::new(
        cx,
        raw,
        "volume",
        "volume",
        raw.volumes
            .iter()
            .map(|v| Some((volume_id(&v.item)?, v.file, v.item.name.as_ref()?.span()))),
    );
    let volumes: Vec<_> = raw
        .volumes
        .iter()
        .map(|v| build_volume(cx, v, &cluster_names, &policy_names))
        .collect();
    check_managed(cx, raw, &volumes);
    if raw.volumes.is_empty() && !raw.broken.contains_key("volume") {
        cx.error(
            0,
            0..0,
            "the policy defines no [[volume]]",
            hint("add at least one [[volume]] with cluster, svm, name, luns and snapshot_policy"),
        );
    }

    let veeam_names = Names::new(
        cx,
        raw,
        "veeam",
        "Veeam server",
        raw.veeam.iter().map(|v| named(&v.item.name, v.file)),
    );
    let veeam: Vec<_> = raw.veeam.iter().map(|v| build_veeam(cx, v)).collect();

    Names::new(
        cx,
        raw,
        "window",
        "window",
        raw.windows.iter().map(|w| named(&w.item.name, w.file)),
    );
    let windows: Vec<_> = raw
        .windows
        .iter()
        .map(|w| build_window(cx, w, &volume_names, &veeam_names))
        .collect();
    if let Some(agent) = &agent {
        names::check_derived_lengths(cx, raw, agent, &volumes, &windows);
    }

    Some(Policy {
        source: cx.sources.path(0).clone(),
        files: cx.sources.paths(),
        agent: agent?,
        flexclone: flexclone?,
        clusters: clusters.into_iter().collect::<Option<_>>()?,
        schedules: schedules.into_iter().collect::<Option<_>>()?,
        snapshot_policies: snapshot_policies.into_iter().collect::<Option<_>>()?,
        volumes: volumes.into_iter().collect::<Option<_>>()?,
        windows: windows.into_iter().collect::<Option<_>>()?,
        veeam: veeam.into_iter().collect::<Option<_>>()?,
        ha: ha.ok()?,
        volume_ids: Default::default(),
    })
}

/// A diagnostic has been recorded; the value it concerns is unusable.
struct Reported;

/// How a message points at an entry as a whole: at its name and by name, or at its table when the
/// name is missing.
struct Subject {
    span: Range<usize>,
    /// "cluster \"prod\"", or "this cluster".
    text: String,
}
