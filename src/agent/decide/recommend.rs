//! The recommend stage: the FlexClone recommendation of each volume with a new counting
//! conflict since it was last decided (and, once a day, of every volume with one in force, so
//! that it clears without a new conflict) — raised with its evidence, brought up to date, or
//! cleared. The rule itself is `agent::recommend`'s, a pure function of the volume's journaled
//! conflicts.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};

use super::{Action, View};
use crate::agent::cycle::ObservedConflict;
use crate::agent::journal::LockedSpace;
use crate::agent::recommend as rule;
use crate::agent::state::{Memory, VolumeKey};
use crate::ontap::LicenseState;

/// How often every recommendation in force is decided again, so that it clears without a new
/// conflict.
pub(crate) const SWEEP: TimeDelta = TimeDelta::days(1);

/// One volume's journaled conflicts (with what the rule reads of the cycles they name), as the
/// stage decides from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeConflicts {
    /// Every conflict of the volume, in journal order (by instant, then as recorded).
    pub conflicts: Vec<ObservedConflict>,
    pub cycles: rule::CycleEnds,
    /// The space its locked backing snapshots hold, read when its recommendation is in force.
    pub locked_space: Vec<LockedSpace>,
    /// The rule's answer from these conflicts at the stage's instant, when reading them already
    /// asked it (`None`: not asked; the stage asks).
    pub raised: Option<Option<rule::Raised>>,
}

impl VolumeConflicts {
    /// Its conflicts that are evidence for FlexClone ([`rule::is_evidence`]), in journal order.
    pub fn evidence(&self) -> impl Iterator<Item = &ObservedConflict> + Clone {
        // A cycle's conflicts mostly follow one another: its answer is looked up once for them.
        let mut last: Option<(&str, bool)> = None;
        self.conflicts.iter().filter(move |c| {
            let Some(id) = c.cycle.as_deref() else {
                return true;
            };
            match last {
                Some((l, answer)) if l == id => answer,
                _ => {
                    let answer = rule::is_evidence(c, &self.cycles);
                    last = Some((id, answer));
                    answer
                }
            }
        })
    }
}

/// The volumes whose recommendation is decided now: those with a new counting conflict, and
/// every one in force when the daily sweep is due (`true`: it is).
pub(crate) fn candidates(memory: &Memory, now: DateTime<Utc>) -> (BTreeSet<VolumeKey>, bool) {
    let mut volumes = memory.reconsider.clone();
    let sweep = memory.last_recommend_sweep.is_none_or(|t| now - t >= SWEEP);
    if sweep {
        volumes.extend(memory.recommended.keys().cloned());
    }
    (volumes, sweep)
}

pub(super) fn decide(view: &View<'_>, now: DateTime<Utc>) -> Vec<Action> {
    let rule_of = &view.policy.flexclone;
    let mut actions = Vec::new();
    for (key, found) in &view.journal.conflicts {
        let licensed = view
            .cluster(&key.cluster)
            .and_then(|(_, cv)| cv.inventory.as_ref())
            .and_then(|inv| match inv.flexclone {
                LicenseState::Compliant => Some(true),
                LicenseState::Unknown => None,
                LicenseState::Noncompliant | LicenseState::Unlicensed => Some(false),
            });
        // Picked once: the rule, the sentence and the space each walk it.
        let evidence: Vec<&ObservedConflict> = found.evidence().collect();
        let asked;
        let raised = match &found.raised {
            Some(raised) => raised.as_ref(),
            None => {
                asked = rule::decide(
                    evidence.iter().copied(),
                    rule_of.recommend_after,
                    rule_of.within,
                    now,
                );
                asked.as_ref()
            }
        };
        let previous = view.memory.recommended.get(key).map(|f| f.since);
        let cleared = previous.is_some() && previous != raised.map(|r| r.at);
        if cleared {
            actions.push(Action::Clear {
                volume: key.clone(),
                within: rule_of.within,
            });
        }
        let Some(raised) = raised else { continue };
        let rule = rule::Rule {
            recommend_after: rule_of.recommend_after,
            within: rule_of.within,
            now,
        };
        let in_force = rule::recommendation(
            [&key.cluster, &key.svm, &key.volume],
            evidence.iter().copied(),
            raised,
            &found.cycles,
            &rule,
            licensed,
        );
        let (evidence, locked_bytes) = rule::with_locked_space(
            vec![in_force],
            evidence.iter().copied(),
            &found.locked_space,
        )
        .into_iter()
        .next()
        .map(|r| (r.evidence, r.locked_bytes))
        .unwrap_or_default();
        if previous.is_some() && !cleared {
            actions.push(Action::Refresh {
                volume: key.clone(),
                evidence,
                locked_bytes,
                licensed,
            });
        } else {
            actions.push(Action::Raise {
                volume: key.clone(),
                since: raised.at,
                evidence,
                locked_bytes,
                licensed,
            });
        }
    }
    actions
}
