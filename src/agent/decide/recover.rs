//! The recover stage: at start, what becomes of each cycle the journal left open. Hooks did not
//! survive the restart, so snapwarden's own cycles are released; a Veeam job may still run, so
//! its cycles follow the job's running session again (the job is never started twice); any
//! other driver cycle is settled by the next listing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Action, View};
use crate::agent::cycle::{CycleResult, CycleState};
use crate::agent::observe::has_prefix;
use crate::agent::state::{Step, VolumeKey};
use crate::config::Driver;

pub(super) fn decide(view: &View<'_>, now: DateTime<Utc>) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut resume: BTreeMap<(usize, DateTime<Utc>), Vec<crate::agent::cycle::Cycle>> =
        BTreeMap::new();
    for open in view.memory.open.values() {
        let mut c = open.cycle.clone();
        let driven = !has_prefix(&c.backing_snapshot, view.prefix());
        let veeam_window = view
            .policy
            .windows
            .iter()
            .position(|w| w.name == c.window && matches!(w.driver, Driver::Veeam(_)));
        if driven && c.state == CycleState::Backup && c.result.is_none() {
            if let Some(wi) = veeam_window {
                resume.entry((wi, c.window_start)).or_default().push(c);
                continue;
            }
        }
        if driven {
            // The tool's snapshot is the tool's: nothing to release; the next listing settles
            // the cycle (released or locked).
            let mut why = String::new();
            if c.state != CycleState::Locked {
                why = format!(
                    "driver cycle {} of window {} on {} left open by the previous run: its tool was not followed to the end",
                    c.id,
                    c.window,
                    VolumeKey::of_cycle(&c)
                );
                if c.result.is_none() {
                    c.result = Some(CycleResult::Failed);
                    c.detail = format!(
                        "interrupted in state {} (the agent stopped while the tool ran); its outcome is unknown",
                        c.state.as_str()
                    );
                }
                c.clones_deleted_at.get_or_insert(now);
            }
            actions.push(Action::Resume {
                cycle: c,
                step: Step::ToolEnded,
                why,
                orphan: false,
            });
            continue;
        }
        if c.state == CycleState::Locked {
            actions.push(Action::Resume {
                cycle: c,
                step: Step::Locked {
                    unpinned: false,
                    retry: None,
                },
                why: String::new(),
                orphan: false,
            });
            continue;
        }
        let why = format!(
            "cycle {} of window {} on {} (backing snapshot {}, state {}) left open by the previous run: releasing it",
            c.id,
            c.window,
            VolumeKey::of_cycle(&c),
            c.backing_snapshot,
            c.state.as_str()
        );
        if c.state != CycleState::Releasing && c.result.is_none() {
            c.result = Some(CycleResult::Failed);
            c.detail = format!(
                "interrupted in state {} (the agent stopped); released at the next start",
                c.state.as_str()
            );
        }
        c.state = CycleState::Releasing;
        actions.push(Action::Resume {
            cycle: c,
            step: Step::Release,
            why,
            orphan: true,
        });
    }
    for ((wi, _), cycles) in resume {
        actions.push(Action::StartTool {
            window: view.policy.windows[wi].name.clone(),
            cycles,
            resume: true,
        });
    }
    actions
}
