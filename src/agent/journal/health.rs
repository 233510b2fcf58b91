//! Whether the journal can be written, as its writes report it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::JournalError;

/// Whether the journal can be written: every write says how it went. While the last write
/// failed the agent is not ready (`/readyz`), and every failure is counted
/// (`snapwarden_journal_errors_total`).
#[derive(Debug, Default)]
pub struct JournalHealth {
    errors: AtomicU64,
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl JournalHealth {
    pub(super) fn note<T>(&self, r: &Result<T, JournalError>) {
        match r {
            Ok(_) => self.failing.store(false, Ordering::SeqCst),
            Err(e) => {
                self.errors.fetch_add(1, Ordering::SeqCst);
                self.failing.store(true, Ordering::SeqCst);
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            }
        }
    }

    /// Failed writes since the journal was opened.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::SeqCst)
    }

    /// The last write succeeded (or none was made yet).
    pub fn writable(&self) -> bool {
        !self.failing.load(Ordering::SeqCst)
    }

    /// The last failure's message, while writes fail.
    pub fn last_error(&self) -> Option<String> {
        if self.writable() {
            return None;
        }
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
