//! Counting the objects of the world before and after a run: snapwarden's own (snapshots and LUNs
//! named with its prefix), the agent's managed snapshots (marked by their comment), and everything
//! else (foreign), so that a run's leaks and the foreign objects it deleted can be told apart
//! from what the schedules rotated.

use std::collections::HashSet;

use super::meter::Measured;
use crate::agent::managed;
use crate::sim::World;

/// Objects in the world at one instant.
#[derive(Debug, Default)]
pub struct Census {
    /// Snapshots neither named by snapwarden nor marked as its managed snapshots.
    foreign_snapshots: u64,
    /// LUNs whose leaf is not snapwarden-named.
    foreign_luns: u64,
    /// snapwarden-named objects: (cluster, volume, snapshot name) and (cluster, LUN path).
    our_snapshots: Vec<(String, String, String)>,
    our_luns: Vec<(String, String)>,
}

pub fn census(w: &World, prefix: &str) -> Census {
    let ours = format!("{prefix}.");
    let mut c = Census::default();
    for cl in &w.clusters {
        for v in &cl.volumes {
            for s in &v.snapshots {
                if s.name.starts_with(&ours) {
                    c.our_snapshots
                        .push((cl.name.clone(), v.name.clone(), s.name.clone()));
                } else if !managed::marked_by_snapwarden(s.comment.as_deref()) {
                    // The agent's managed snapshots are neither foreign nor a cycle's: the
                    // meter counts them, and their series' retention.
                    c.foreign_snapshots += 1;
                }
            }
        }
        for l in &cl.luns {
            let leaf = l.name.rsplit('/').next().unwrap_or("");
            if leaf.starts_with(&ours) {
                c.our_luns.push((cl.name.clone(), l.name.clone()));
            } else {
                c.foreign_luns += 1;
            }
        }
    }
    c
}

/// Non-snapwarden objects gone between two censuses, beyond the snapshots rotation deleted.
pub fn foreign_deleted(before: &Census, after: &Census, m: &Measured) -> u64 {
    let expected = (before.foreign_snapshots + m.scheduled_snapshots_taken)
        .saturating_sub(m.scheduled_snapshots_rotated);
    expected.saturating_sub(after.foreign_snapshots)
        + before.foreign_luns.saturating_sub(after.foreign_luns)
}

/// snapwarden objects left that no open cycle accounts for.
pub fn leaked(
    after: &Census,
    open: &HashSet<(String, String, String)>,
    open_luns: &HashSet<(String, String)>,
) -> u64 {
    let snaps = after
        .our_snapshots
        .iter()
        .filter(|s| !open.contains(*s))
        .count();
    let luns = after
        .our_luns
        .iter()
        .filter(|l| !open_luns.contains(*l))
        .count();
    u64::try_from(snaps + luns).unwrap_or(u64::MAX)
}
