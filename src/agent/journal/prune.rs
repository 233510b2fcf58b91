//! The daily prune: what the journal deletes once it is older than its retention, and what it
//! tells the readers that keep some of it.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{ms, CachedExec, Journal, JournalError};

impl Journal {
    /// Deletes terminal cycles (with their objects and actions), conflicts, managed snapshots
    /// and locked space older than `before`; says what went of what readers keep.
    pub fn prune(&self, before: DateTime<Utc>) -> Result<Pruned, JournalError> {
        let pruned = self.wrote((|| {
            let mut conn = self.lock();
            let tx = conn.savepoint().map_err(|e| self.err(e))?;
            let mut pruned = Pruned::default();
            for (i, sql) in PRUNE.iter().enumerate() {
                let n = tx
                    .exec_cached(sql, params![ms(before)])
                    .map_err(|e| self.err(e))?;
                match i {
                    PRUNE_CYCLES => pruned.cycles = n,
                    PRUNE_CONFLICTS => pruned.conflicts = n,
                    PRUNE_LOCKED_SPACE => pruned.locked_space = n,
                    _ => {}
                }
            }
            tx.commit().map_err(|e| self.err(e))?;
            Ok(pruned)
        })());
        // Any cycle may have gone, unless the prune surely deleted none.
        if !matches!(pruned, Ok(Pruned { cycles: 0, .. })) {
            self.note_cycle_write(None);
        }
        pruned
    }
}

/// What a [`Journal::prune`] deleted, of what its readers keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub cycles: usize,
    pub conflicts: usize,
    pub locked_space: usize,
}

/// The daily prune's statements, in order, each deleting what is older than `?1`: actions and
/// terminal cycles (their objects go with them), conflicts, managed snapshots, locked space,
/// and actions of no cycle. `+state` makes SQLite search cycles by `create_at` (the few older
/// than the cut) instead of by state, which is every released cycle ever kept.
pub(super) const PRUNE: [&str; 6] = [
    "DELETE FROM actions WHERE cycle_id IN (SELECT id FROM cycles
       WHERE create_at < ?1 AND +state IN ('released', 'failed', 'skipped'))",
    "DELETE FROM cycles WHERE create_at < ?1 AND +state IN ('released', 'failed', 'skipped')",
    "DELETE FROM conflicts WHERE at < ?1",
    "DELETE FROM managed_snapshots WHERE asked_at < ?1",
    "DELETE FROM locked_space WHERE at < ?1",
    "DELETE FROM actions INDEXED BY actions_unowned_by_at WHERE cycle_id IS NULL AND at < ?1",
];

/// The statements of [`PRUNE`] whose counts are the cycles, conflicts and locked space deleted.
const PRUNE_CYCLES: usize = 1;
const PRUNE_CONFLICTS: usize = 2;
const PRUNE_LOCKED_SPACE: usize = 4;
