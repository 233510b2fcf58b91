//! An ephemeral journal (`simulate`): no fsync, writes grouped into one transaction per
//! [`BATCH`] writes, committed at [`Journal::flush`] and when the journal is dropped.

use super::*;

/// How many writes an ephemeral journal groups into one commit: each commit writes every page
/// its writes touched once, where a commit per write wrote the same index pages again and again
/// (8,192 against 256: a fifth less time for `simulate` at 500 volumes).
pub(super) const BATCH: usize = 8192;

impl Drop for Journal {
    /// An ephemeral journal commits its last batch (a `--state-dir` keeps it for `history`).
    fn drop(&mut self) {
        let batched = self.batch.get_mut().map(|b| b.is_some()).unwrap_or(false);
        if let (true, Ok(conn)) = (batched, self.conn.get_mut()) {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("COMMIT;");
            }
        }
    }
}

impl Journal {
    /// A write's result, noted in the journal's health; an ephemeral journal commits every
    /// [`BATCH`] writes.
    pub(super) fn wrote<T>(&self, r: Result<T, JournalError>) -> Result<T, JournalError> {
        self.health.note(&r);
        let full = {
            let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
            match batch.as_mut() {
                Some(n) => {
                    *n += 1;
                    *n >= BATCH
                }
                None => false,
            }
        };
        if full {
            let committed = self.flush();
            self.health.note(&committed);
        }
        r
    }

    /// For a journal that lives only as long as its process (`simulate`): its rollback journal
    /// in memory instead of the write-ahead log (a commit writes each page it touched once,
    /// into the file, where the log wrote it twice and read it back to checkpoint: a simulated
    /// year made hundreds of thousands of reads and writes), no fsync, no file lock per
    /// transaction (the process holds the lock until it closes the journal), a page
    /// cache of up to 32 MiB (a recommendation reads a volume's whole history), statement
    /// journals (a savepoint's undo, written by every cycle's insert) in memory, not temporary
    /// files, and writes grouped into one transaction committed every [`BATCH`] writes, at
    /// [`flush`](Journal::flush) and when the journal is dropped. What is written is unchanged;
    /// only a crash or a second connection could notice.
    pub fn ephemeral(&self) -> Result<(), JournalError> {
        self.lock()
            .execute_batch(concat!(
                "PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF; ",
                "PRAGMA locking_mode = EXCLUSIVE; PRAGMA cache_size = -32768; ",
                "PRAGMA temp_store = MEMORY; BEGIN;"
            ))
            .map_err(|e| self.err(e))?;
        *self.batch.lock().unwrap_or_else(|p| p.into_inner()) = Some(0);
        Ok(())
    }

    /// Commits what an ephemeral journal wrote since its last commit (nothing to do for one
    /// that commits every write).
    pub fn flush(&self) -> Result<(), JournalError> {
        let mut batch = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        if batch.is_none() {
            return Ok(());
        }
        let conn = self.lock();
        if !conn.is_autocommit() {
            conn.execute_batch("COMMIT; BEGIN;")
                .map_err(|e| self.err(e))?;
        }
        *batch = Some(0);
        Ok(())
    }
}
