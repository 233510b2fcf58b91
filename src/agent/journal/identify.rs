//! What is at the journal's path, found out read-only before the journal writes a byte: nothing
//! yet, a snapwarden journal of some schema version (intact or damaged), or somebody else's file.
//!
//! The file is first read as plain bytes (its type and SQLite's 16-byte magic), then opened by
//! SQLite read-only — as `immutable` when no `-wal` file is beside it, so SQLite makes no side
//! file and takes no lock — to read `application_id`, `user_version` and the tables. A journal
//! carries [`APPLICATION_ID`] (journals written before it was set carry 0 and are recognised by
//! their tables); its tables must be exactly those its `user_version` says (the migrations up to
//! it, applied to an empty database here for comparison). Only then, for [`Journal::open`], is
//! its integrity checked with `PRAGMA quick_check` (every page read once, linear in the file's
//! size; index contents are not compared with their tables, which `integrity_check` would do at
//! `O(n log n)`), bounded by [`INTEGRITY_BUDGET`].
//!
//! Invariant: nothing here writes to the file; the caller opens it for writing (WAL switch,
//! migrations) only once it is identified as a journal.
//!
//! [`Journal::open`]: super::Journal::open

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{classify, immutable_uri, JournalError, MIGRATIONS, SCHEMA_VERSION};

/// `PRAGMA application_id` of a snapwarden journal: "SnWd" in ASCII. SQLite reserves the header
/// field for this ("the application that owns the database"); `file(1)` shows it too.
pub const APPLICATION_ID: i32 = 0x536E_5764;

/// How long the integrity check at start may take. `quick_check` reads every page once: a
/// journal keeps 400 days of cycles, tens of MB for large estates, read in well under a second;
/// the budget covers files a hundred times that size on a slow disk. A check that runs out of it
/// is logged and skipped: a damaged page is then met at the first write, which the journal's
/// health reports (`/readyz`, `snapwarden_journal_writable`).
pub const INTEGRITY_BUDGET: Duration = Duration::from_secs(30);

/// SQLite's file magic, the first 16 bytes of every database file.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The core tables of every schema version: a database with them is a journal, whatever else.
const CORE_TABLES: &[&str] = &["cycles", "objects", "actions", "conflicts"];

/// What the path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// No file.
    Absent,
    /// An empty file, or an SQLite database without tables or schema version: a journal is
    /// made in it.
    Empty,
    /// A snapwarden journal whose tables are those of `version` (at most [`SCHEMA_VERSION`]).
    Journal { version: i64 },
}

/// Identifies the file at `path` read-only, and with `check_integrity` also checks its pages.
pub(super) fn identify(path: &Path, check_integrity: bool) -> Result<Found, JournalError> {
    let foreign = |detail: String| JournalError::Foreign {
        path: path.to_path_buf(),
        detail,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Absent),
        Err(source) => {
            return Err(JournalError::Unreadable {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !meta.is_file() {
        return Err(foreign("it is not a regular file".into()));
    }
    if meta.len() == 0 {
        return Ok(Found::Empty);
    }
    let mut head = [0u8; MAGIC.len()];
    let read = std::fs::File::open(path)
        .and_then(|f| f.take(MAGIC.len() as u64).read(&mut head))
        .map_err(|source| JournalError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
    if read < MAGIC.len() || &head != MAGIC {
        return Err(foreign("not an SQLite database".into()));
    }

    let conn = open_read_only(path)?;
    let err = |e: rusqlite::Error| classify(path, e);
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let found = Schema::of(&conn).map_err(err)?;
    if app_id != APPLICATION_ID && app_id != 0 {
        return Err(foreign(format!(
            "an SQLite database of another program (application_id 0x{app_id:08X})"
        )));
    }
    let ours = app_id == APPLICATION_ID || CORE_TABLES.iter().all(|t| found.has(t));
    if !ours {
        if version == 0 && found.is_empty() {
            return Ok(Found::Empty);
        }
        return Err(foreign(format!(
            "an SQLite database with {} and no snapwarden journal in it",
            found.describe()
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(JournalError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 && found.is_empty() {
        return Ok(Found::Empty);
    }
    let expected = Schema::of_version(version);
    if found != expected {
        return Err(JournalError::MismatchedSchema {
            path: path.to_path_buf(),
            found: version,
            detail: mismatch(version, &found, &expected),
        });
    }
    if check_integrity {
        integrity(&conn, path, INTEGRITY_BUDGET)?;
    }
    Ok(Found::Journal { version })
}

/// `path` opened read-only: as immutable without a `-wal` beside it (no side files, no locks: a
/// closed journal, or anything else), plainly otherwise (a journal whose writer may be running or
/// was killed, whose last commits are in the `-wal`).
pub(super) fn open_read_only(path: &Path) -> Result<Connection, JournalError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if PathBuf::from(wal).exists() {
        Connection::open_with_flags(path, flags)
    } else {
        Connection::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)
    }
    .map_err(|e| classify(path, e))
}

/// `PRAGMA quick_check` within `budget`: `Ok` when it answers `ok` or runs out of time (logged),
/// [`JournalError::Damaged`] with the first problems it found otherwise.
pub(super) fn integrity(
    conn: &Connection,
    path: &Path,
    budget: Duration,
) -> Result<(), JournalError> {
    /// Problems listed in the message (`quick_check` stops after this many).
    const PROBLEMS: usize = 5;
    let interrupt = conn.get_interrupt_handle();
    let (done, wait) = mpsc::channel::<()>();
    let timer = std::thread::spawn(move || {
        let ran_out = matches!(
            wait.recv_timeout(budget),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        if ran_out {
            interrupt.interrupt();
        }
        ran_out
    });
    let answer: rusqlite::Result<Vec<String>> = conn
        .prepare(&format!("PRAGMA quick_check({PROBLEMS})"))
        .and_then(|mut stmt| stmt.query_map([], |r| r.get::<_, String>(0))?.collect());
    drop(done);
    let ran_out = timer.join().unwrap_or(false);
    let damaged = |detail: String| JournalError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    match answer {
        Ok(lines) if lines.iter().all(|l| l == "ok") => Ok(()),
        Ok(lines) => Err(damaged(format!("quick_check: {}", lines.join("; ")))),
        Err(e)
            if ran_out
                || e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) =>
        {
            tracing::warn!(
                journal = %path.display(),
                "the journal's integrity check did not finish within {}s; starting without it \
                 (a damaged page is reported when a write meets it)",
                budget.as_secs()
            );
            Ok(())
        }
        Err(e) => Err(damaged(format!("quick_check: {e}"))),
    }
}

/// A database's own tables (with their columns, in order) and indexes; SQLite's internal
/// `sqlite_*` objects are left out.
#[derive(Debug, Default, PartialEq, Eq)]
struct Schema {
    tables: BTreeMap<String, Vec<String>>,
    indexes: BTreeSet<String>,
}

impl Schema {
    fn of(conn: &Connection) -> rusqlite::Result<Schema> {
        let mut schema = Schema::default();
        let mut objects = conn.prepare(
            "SELECT type, name FROM sqlite_master \
             WHERE type IN ('table', 'index') AND substr(name, 1, 7) != 'sqlite_'",
        )?;
        let rows: Vec<(String, String)> = objects
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut columns = conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
        for (kind, name) in rows {
            if kind == "index" {
                schema.indexes.insert(name);
                continue;
            }
            let cols = columns
                .query_map([&name], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            schema.tables.insert(name, cols);
        }
        Ok(schema)
    }

    /// The schema migrations `1..=version` make in an empty database.
    fn of_version(version: i64) -> Schema {
        let conn = Connection::open_in_memory().expect("an in-memory database");
        let n = usize::try_from(version).unwrap_or(0);
        for sql in &MIGRATIONS[..n.min(MIGRATIONS.len())] {
            conn.execute_batch(sql)
                .expect("the migrations apply in order");
        }
        Schema::of(&conn).expect("the schema of an in-memory database reads")
    }

    fn has(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.indexes.is_empty()
    }

    /// "3 tables (notes, tags, …)", for a message.
    fn describe(&self) -> String {
        if self.tables.is_empty() {
            return "no tables".into();
        }
        let names: Vec<&str> = self.tables.keys().map(String::as_str).take(5).collect();
        let more = if self.tables.len() > names.len() {
            ", …"
        } else {
            ""
        };
        format!(
            "{} table(s) ({}{more})",
            self.tables.len(),
            names.join(", ")
        )
    }
}

/// How `found` differs from the schema of `version`: the version whose schema it is when one of
/// this build's is, otherwise the first differences.
fn mismatch(version: i64, found: &Schema, expected: &Schema) -> String {
    if let Some(v) = (1..=SCHEMA_VERSION).find(|&v| Schema::of_version(v) == *found) {
        return format!("its tables are those of schema version {v}");
    }
    let mut diffs = Vec::new();
    for (table, cols) in &expected.tables {
        match found.tables.get(table) {
            None => diffs.push(format!("table {table} is missing")),
            Some(have) if have != cols => {
                let extra: Vec<&str> = have
                    .iter()
                    .filter(|c| !cols.contains(c))
                    .map(String::as_str)
                    .collect();
                let lacking: Vec<&str> = cols
                    .iter()
                    .filter(|c| !have.contains(c))
                    .map(String::as_str)
                    .collect();
                let mut d = format!("table {table}");
                if !extra.is_empty() {
                    d.push_str(&format!(" has {}", extra.join(", ")));
                }
                if !lacking.is_empty() {
                    if !extra.is_empty() {
                        d.push(',');
                    }
                    d.push_str(&format!(" lacks {}", lacking.join(", ")));
                }
                if extra.is_empty() && lacking.is_empty() {
                    d.push_str(" has its columns in another order");
                }
                diffs.push(d);
            }
            Some(_) => {}
        }
    }
    for table in found.tables.keys().filter(|t| !expected.has(t)) {
        diffs.push(format!("table {table} is not part of it"));
    }
    for index in found.indexes.symmetric_difference(&expected.indexes) {
        let what = if expected.indexes.contains(index) {
            "is missing"
        } else {
            "is not part of it"
        };
        diffs.push(format!("index {index} {what}"));
    }
    const SHOWN: usize = 4;
    let more = diffs.len().saturating_sub(SHOWN);
    diffs.truncate(SHOWN);
    if more > 0 {
        diffs.push(format!("{more} more difference(s)"));
    }
    format!(
        "its tables are not those of schema version {version}: {}",
        diffs.join("; ")
    )
}
