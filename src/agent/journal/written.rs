//! Which cycles the journal wrote lately, each with what it now holds of the cycle's end, for
//! a reader that keeps what it read of them (the recommend stage keeps each conflict's cycle).

use std::collections::VecDeque;

use super::Journal;
use crate::agent::recommend::CycleEnd;

/// A write of one cycle: its id, and its end as the journal now holds it when the write took
/// effect (`None`: it failed or changed no row, so the journal's row is not known).
pub type CycleWrite = (String, Option<CycleEnd>);

/// How many of the last writes are remembered; a reader further behind reads everything again.
const KEPT: usize = 8192;

/// The journal's cycle writes, counted, with the last [`KEPT`] of them.
#[derive(Debug, Default)]
pub(super) struct CycleWrites {
    /// Writes so far: each cycle inserted or updated, and each prune that deleted cycles.
    count: u64,
    /// The last writes with their count; `None` is a prune that deleted cycles (or may have):
    /// any cycle may have gone.
    last: VecDeque<(u64, Option<CycleWrite>)>,
}

/// The cycles written since a reader's mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// These (perhaps repeated, in the order written), and no other.
    Cycles(Vec<CycleWrite>),
    /// Any cycle may have changed: more writes than are remembered, or a prune that deleted
    /// cycles.
    Any,
}

impl CycleWrites {
    fn note(&mut self, write: Option<CycleWrite>) {
        self.count += 1;
        if self.last.len() == KEPT {
            self.last.pop_front();
        }
        self.last.push_back((self.count, write));
    }

    fn since(&self, mark: u64) -> Written {
        if mark >= self.count {
            return Written::Cycles(Vec::new());
        }
        // Writes `mark + 1 ..= count` are needed; the oldest remembered must be among them.
        if self.last.front().is_none_or(|(n, _)| *n > mark + 1) {
            return Written::Any;
        }
        let mut ids = Vec::new();
        for (_, write) in self.last.iter().filter(|(n, _)| *n > mark) {
            match write {
                Some(write) => ids.push(write.clone()),
                None => return Written::Any,
            }
        }
        Written::Cycles(ids)
    }
}

impl Journal {
    /// Notes a write of a cycle, whether or not it took effect (`None`: a prune that deleted
    /// cycles, or failed).
    pub(super) fn note_cycle_write(&self, write: Option<CycleWrite>) {
        self.cycle_writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(write);
    }

    /// The mark to give next time, and the cycles written since `mark` (0: since the journal
    /// was opened). Only this process's writes are counted: the journal has one writer.
    pub fn cycles_written_since(&self, mark: u64) -> (u64, Written) {
        let writes = self.cycle_writes.lock().unwrap_or_else(|p| p.into_inner());
        (writes.count, writes.since(mark))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every mark against the list of all writes, kept whole: the ids written after it, or
    /// `Any` when a prune came after it or it is older than the remembered writes.
    #[test]
    fn a_mark_gets_the_cycles_written_after_it_or_any_when_too_far_behind() {
        let mut w = CycleWrites::default();
        let mut all: Vec<Option<CycleWrite>> = Vec::new();
        for i in 0..(KEPT + 300) {
            // Now and then a write that did not take effect, or a cycle's release.
            let end = (i % 5 != 0).then_some(CycleEnd {
                flexclone: i % 3 == 0,
                released_at: (i % 2 == 0).then(chrono::Utc::now),
            });
            let write = if i == 5000 {
                None
            } else {
                Some((format!("c{}", i % 97), end))
            };
            w.note(write.clone());
            all.push(write);
            let count = all.len() as u64;
            for mark in [
                0,
                1,
                count.saturating_sub(1),
                count.saturating_sub(KEPT as u64),
                count / 2,
                count,
            ] {
                let after = &all[(mark as usize).min(all.len())..];
                let expect = if all.len() - after.len() + KEPT < all.len()
                    || after.iter().any(Option::is_none)
                {
                    Written::Any
                } else {
                    Written::Cycles(after.iter().flatten().cloned().collect())
                };
                assert_eq!(w.since(mark), expect, "after {count} writes, mark {mark}");
            }
        }
    }
}
