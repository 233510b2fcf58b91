//! The release stage: which open cycles are released now — a backup that ended (or a create
//! that failed, or a cycle a previous run left), a hold that is over, a retry whose backoff is
//! over, a locked cycle whose pins are gone. A cycle on a cluster not reachable now waits; one
//! whose volume is gone is reported (its objects went with it). Newest backing snapshot first.

use chrono::{DateTime, Utc};

use super::{Action, ReleaseWhy, View};
use crate::agent::state::Step;
use crate::ontap::VolumeRef;

pub(super) fn decide(view: &View<'_>, now: DateTime<Utc>) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut due: Vec<_> = view
        .memory
        .open
        .iter()
        .filter_map(|(id, o)| {
            let why = match o.step {
                Step::Release => ReleaseWhy::Ended,
                Step::Held { until } if until <= now => ReleaseWhy::HoldOver,
                Step::Retry(r) if r.at <= now => ReleaseWhy::RetryDue,
                Step::Locked { unpinned: true, .. } => ReleaseWhy::Unpinned,
                _ => return None,
            };
            Some((id, o, why))
        })
        .collect();
    // Newest backing snapshot first: an older one on the same volume is often pinned by a
    // newer one that captured its clone, and is freed once that one is deleted. Then by volume,
    // window and occurrence, so that the order never depends on the cycles' random ids (an
    // occurrence has one cycle; the id only settles what cannot differ).
    due.sort_by(|(a_id, a, _), (b_id, b, _)| {
        let (a, b) = (&a.cycle, &b.cycle);
        b.create_at
            .cmp(&a.create_at)
            .then_with(|| {
                (&a.cluster, &a.svm, &a.volume, &a.window, a.window_start).cmp(&(
                    &b.cluster,
                    &b.svm,
                    &b.volume,
                    &b.window,
                    b.window_start,
                ))
            })
            .then_with(|| a_id.cmp(b_id))
    });
    for (id, o, why) in due {
        let c = &o.cycle;
        let Some((_, cv)) = view.cluster(&c.cluster) else {
            continue;
        };
        let Some(inv) = cv.inventory.as_ref().filter(|_| cv.reachable) else {
            continue;
        };
        let Some(info) = inv.volume(&c.svm, &c.volume) else {
            actions.push(Action::Warn {
                key: format!("novolume:{id}"),
                message: format!(
                    "cluster {}: volume {} (svm {}) of cycle {} is gone; its objects went with it",
                    c.cluster, c.volume, c.svm, c.id
                ),
                orphan: None,
            });
            continue;
        };
        actions.push(Action::Release {
            cycle: id.clone(),
            volume: VolumeRef {
                uuid: info.uuid.clone(),
                name: info.name.clone(),
                svm: info.svm.clone(),
            },
            fresh: o.settle_after.is_none_or(|s| inv.at > s),
            why,
        });
    }
    actions
}
