//! The journal: an SQLite database in the state directory recording cycles, the ONTAP objects
//! they own, every action and every observed conflict.
//!
//! It is one of the three proofs of ownership (name prefix, comment marker, journal entry): an
//! object's *intent* is written before the ONTAP call that creates it, so a crash between the two
//! leaves a record that lets the next start find and release the object. State is otherwise
//! re-derived from ONTAP; the journal adds what ONTAP cannot say (what we meant to create,
//! how cycles ended, conflicts seen).
//!
//! Durability: WAL with `synchronous = NORMAL` — a committed write survives the process being
//! killed (the protection snapwarden needs), not necessarily a power loss of the host.
//!
//! Opening: the file is identified read-only first (`identify`): nothing is written to a file
//! that is not a snapwarden journal, to one of a newer or mismatched schema, or to a damaged one
//! (`PRAGMA quick_check` at start); only an identified journal is switched to WAL and migrated.
//! New journals carry [`APPLICATION_ID`].

use std::path::{Path, PathBuf};

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use super::cycle::{
    CloneKind, CloneLun, ConflictKind, Cycle, CycleResult, CycleState, ObservedConflict,
};
use super::recommend::CycleEnd;

mod ephemeral;
mod health;
mod identify;
mod kinds;
mod managed;
mod prune;
mod records;
mod schema;
mod written;

pub use health::JournalHealth;
use identify::Found;
pub use identify::{APPLICATION_ID, INTEGRITY_BUDGET};
pub use kinds::*;
pub use managed::ManagedRecord;
pub use prune::Pruned;
#[cfg(test)]
use prune::PRUNE;
pub use schema::SCHEMA_VERSION;
use schema::{LOCKED_SPACE_FROM, MANAGED_FROM, MIGRATIONS};
pub use written::{CycleWrite, Written};

/// File name of the journal inside the state directory.
pub const FILE_NAME: &str = "journal.sqlite3";

/// Everything that can go wrong with the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("state directory {}: cannot create or write it: {source}; point --state-dir (or [agent] state_dir) at a writable directory", dir.display())]
    StateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a snapwarden journal: another program's database, or not SQLite at all.
    #[error("journal {} is not a snapwarden journal ({detail}); it was left untouched — move it aside (or point --state-dir elsewhere) to start a new journal", path.display())]
    Foreign { path: PathBuf, detail: String },
    /// A snapwarden journal with damaged pages.
    #[error("journal {p} is damaged ({detail}); it was left untouched — move it aside (mv {p} {p}.damaged) to start a new journal; backing snapshots and clones only the damaged one records are then left alone (logged as look-alikes) for you to release", p = path.display())]
    Damaged { path: PathBuf, detail: String },
    #[error("journal {} has schema version {found}, newer than this snapwarden understands ({supported}); it was left untouched — run a newer snapwarden", path.display())]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// A snapwarden journal whose tables are not those its schema version says.
    #[error("journal {} says schema version {found}, but {detail}; it was left untouched — move it aside to start a new journal", path.display())]
    MismatchedSchema {
        path: PathBuf,
        found: i64,
        detail: String,
    },
    #[error("journal {} does not exist or holds no journal yet (has the agent run with this state directory?)", path.display())]
    Missing { path: PathBuf },
    #[error("journal {}: cannot read it: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("journal {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// The journal. Cheap operations behind one mutex (never held across an `.await`).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    conn: Mutex<Connection>,
    health: Arc<JournalHealth>,
    /// Who writes (with `[ha]`): the replica's identity and the leader revision it acts under,
    /// recorded with every new cycle and action.
    stamp: Mutex<Stamp>,
    /// Writes since an [`ephemeral`](Journal::ephemeral) journal last committed; `None`: every
    /// write commits on its own (`ephemeral.rs`).
    batch: Mutex<Option<usize>>,
    /// The cycles written lately (`written.rs`).
    cycle_writes: Mutex<written::CycleWrites>,
}

/// What [`Journal::revision`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revision {
    own: u64,
    others: i64,
}

/// The replica and its fencing revision, as recorded with cycles and actions.
#[derive(Debug, Default, Clone)]
struct Stamp {
    replica: Option<String>,
    revision: Option<i64>,
}

/// How many prepared statements a connection keeps: every statement the journal runs, so that
/// a pass parses none of them again (`simulate` makes tens of thousands of passes).
const STATEMENT_CACHE: usize = 64;

/// Keeps a connection's statements prepared once: the cache holds every one, and the query
/// planner's stability guarantee is on. Without it a statement with a bound `LIMIT` is compiled
/// again at each run: SQLite plans it for the value bound, and the cache clears the bindings
/// of every statement it takes back, which SQLite counts as a change of that value.
fn prepare_once(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map(|_| ())
}

/// `execute` through the connection's statement cache (parsed once, not per call).
trait CachedExec {
    fn exec_cached(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize>;
}

impl CachedExec for Connection {
    fn exec_cached(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// What the journal holds of a cycle's end once it has written `c`: the clone method, and the
/// release instant cut to the millisecond (what [`Journal::cycle_end`] reads back).
fn journaled_end(c: &Cycle) -> CycleEnd {
    CycleEnd {
        released_at: c.released_at.map(|t| from_ms(ms(t))),
        ..CycleEnd::from(c)
    }
}

fn opt_ms(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(ms)
}

impl Journal {
    /// Opens (creating if needed) the journal in `state_dir`, applying migrations. The file is
    /// identified read-only first: one that is not a journal, is of a newer or mismatched
    /// schema, or is damaged (`PRAGMA quick_check`, within [`INTEGRITY_BUDGET`]) is refused and
    /// left as it is, byte for byte.
    pub fn open(state_dir: &Path) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(state_dir).map_err(|source| JournalError::StateDir {
            dir: state_dir.to_path_buf(),
            source,
        })?;
        let path = state_dir.join(FILE_NAME);
        // Probe writability with a file of our own: SQLite's own error would not name the dir.
        let probe = state_dir.join(".snapwarden-write-probe");
        std::fs::write(&probe, b"")
            .and_then(|_| std::fs::remove_file(&probe))
            .map_err(|source| JournalError::StateDir {
                dir: state_dir.to_path_buf(),
                source,
            })?;
        let found = identify::identify(&path, true)?;
        let create = if found == Found::Absent {
            OpenFlags::SQLITE_OPEN_CREATE
        } else {
            OpenFlags::empty()
        };
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | create | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| classify(&path, e))?;
        prepare_once(&conn).map_err(|e| classify(&path, e))?;
        let journal = Journal {
            path: path.clone(),
            conn: Mutex::new(conn),
            health: Arc::default(),
            stamp: Mutex::new(Stamp::default()),
            batch: Mutex::new(None),
            cycle_writes: Mutex::default(),
        };
        journal.migrate()?;
        Ok(journal)
    }

    /// Opens an existing journal for reading (`history`, `report`); never creates, migrates or
    /// writes, and refuses a file that is not a journal or is of a newer or mismatched schema.
    pub fn open_read_only(state_dir: &Path) -> Result<Journal, JournalError> {
        let path = state_dir.join(FILE_NAME);
        match identify::identify(&path, false)? {
            Found::Absent | Found::Empty => return Err(JournalError::Missing { path }),
            // `history` and `report` read the tables of migration 1: a journal not yet migrated
            // by this build's `run` is read as it is.
            Found::Journal { .. } => {}
        }
        // Without a `-wal` beside it the journal is closed (no agent is writing): read it as
        // immutable, so SQLite creates no `-wal`/`-shm`. Made by another user (root running
        // `history`), those files would lock the agent's own service user out of its journal.
        let conn = identify::open_read_only(&path)?;
        prepare_once(&conn).map_err(|e| classify(&path, e))?;
        Ok(Journal {
            path,
            conn: Mutex::new(conn),
            health: Arc::default(),
            stamp: Mutex::new(Stamp::default()),
            batch: Mutex::new(None),
            cycle_writes: Mutex::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the writes went ([`JournalHealth`]).
    pub fn health(&self) -> Arc<JournalHealth> {
        self.health.clone()
    }

    /// Records `replica` with every cycle and action written from now on (`[ha]`).
    pub fn set_replica(&self, replica: &str) {
        self.stamp.lock().unwrap_or_else(|p| p.into_inner()).replica = Some(replica.to_string());
    }

    /// The leader revision this replica acts under (`None` while it does not lead).
    pub fn set_revision(&self, revision: Option<i64>) {
        self.stamp
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .revision = revision;
    }

    fn stamp(&self) -> Stamp {
        self.stamp.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self, e: rusqlite::Error) -> JournalError {
        classify(&self.path, e)
    }

    fn user_version(&self) -> Result<i64, JournalError> {
        self.lock()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Brings an identified journal (or an empty file) to this build's schema: WAL, foreign keys,
    /// the migrations it lacks (each in its own transaction with its `user_version`), and
    /// [`APPLICATION_ID`].
    fn migrate(&self) -> Result<(), JournalError> {
        let version = self.user_version()?;
        if version > SCHEMA_VERSION {
            return Err(JournalError::NewerSchema {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let mut conn = self.lock();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(|e| classify(&self.path, e))?;
        let start = usize::try_from(version).unwrap_or(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(start) {
            let tx = conn.transaction().map_err(|e| classify(&self.path, e))?;
            tx.execute_batch(sql).map_err(|e| classify(&self.path, e))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| classify(&self.path, e))?;
            tx.commit().map_err(|e| classify(&self.path, e))?;
        }
        let app_id: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| classify(&self.path, e))?;
        if app_id != APPLICATION_ID {
            // Journals written before the id was set are identified by their tables.
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(|e| classify(&self.path, e))?;
        }
        Ok(())
    }

    /// Records a new cycle and the intents of every object it will create, in one transaction.
    /// Returns `false` (and writes nothing) when the occurrence already has a cycle.
    pub fn insert_cycle(&self, c: &Cycle, now: DateTime<Utc>) -> Result<bool, JournalError> {
        let inserted = self.wrote((|| {
            let mut conn = self.lock();
            // A savepoint: a transaction of its own, or part of an ephemeral journal's batch.
            let tx = conn.savepoint().map_err(|e| self.err(e))?;
            let inserted = tx
                .exec_cached(
                    "INSERT OR IGNORE INTO cycles (id, window, cluster, svm, volume, window_start,
                        create_at, release_by, release_deadline, backing_snapshot, clone_kind, state,
                        result, created_at, clones_created_at, clones_deleted_at, released_at, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                    params![
                        c.id,
                        c.window,
                        c.cluster,
                        c.svm,
                        c.volume,
                        ms(c.window_start),
                        ms(c.create_at),
                        ms(c.release_by),
                        opt_ms(c.release_deadline),
                        c.backing_snapshot,
                        c.clone_kind.as_str(),
                        c.state.as_str(),
                        c.result.map(|r| r.as_str()),
                        opt_ms(c.created_at),
                        opt_ms(c.clones_created_at),
                        opt_ms(c.clones_deleted_at),
                        opt_ms(c.released_at),
                        c.detail,
                    ],
                )
                .map_err(|e| self.err(e))?
                == 1;
            let stamp = self.stamp();
            if inserted && stamp.replica.is_some() {
                tx.exec_cached(
                    "UPDATE cycles SET replica = ?2, leader_revision = ?3 WHERE id = ?1",
                    params![c.id, stamp.replica, stamp.revision],
                )
                .map_err(|e| self.err(e))?;
            }
            // A driver cycle (a backup tool makes the snapshot; its name is empty until attributed)
            // owns nothing: no object intents.
            if inserted && c.state != CycleState::Skipped && !c.backing_snapshot.is_empty() {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO objects (cycle_id, kind, cluster, svm, volume, name, source, uuid,
                            state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, 'intent', ?8)",
                    )
                    .map_err(|e| self.err(e))?;
                stmt.execute(params![
                    c.id,
                    ObjectKind::Snapshot.as_str(),
                    c.cluster,
                    c.svm,
                    c.volume,
                    c.backing_snapshot,
                    Option::<String>::None,
                    ms(now)
                ])
                .map_err(|e| self.err(e))?;
                for clone in &c.clones {
                    stmt.execute(params![
                        c.id,
                        ObjectKind::Lun.as_str(),
                        c.cluster,
                        c.svm,
                        c.volume,
                        clone.path,
                        clone.source,
                        ms(now)
                    ])
                    .map_err(|e| self.err(e))?;
                }
            }
            tx.commit().map_err(|e| self.err(e))?;
            Ok(inserted)
        })());
        let end = matches!(inserted, Ok(true)).then(|| journaled_end(c));
        self.note_cycle_write(Some((c.id.clone(), end)));
        inserted
    }

    /// Writes a cycle's mutable fields (state, result, times, detail).
    pub fn update_cycle(&self, c: &Cycle) -> Result<(), JournalError> {
        // Its own statement: the connection's guard is dropped before `wrote`, which may commit.
        let updated = self
            .lock()
            .exec_cached(
                "UPDATE cycles SET state = ?2, result = ?3, created_at = ?4, clones_created_at = ?5,
                    clones_deleted_at = ?6, released_at = ?7, detail = ?8, clone_kind = ?9,
                    backing_snapshot = ?10
                 WHERE id = ?1",
                params![
                    c.id,
                    c.state.as_str(),
                    c.result.map(|r| r.as_str()),
                    opt_ms(c.created_at),
                    opt_ms(c.clones_created_at),
                    opt_ms(c.clones_deleted_at),
                    opt_ms(c.released_at),
                    c.detail,
                    c.clone_kind.as_str(),
                    c.backing_snapshot,
                ],
            )
            .map_err(|e| self.err(e));
        let updated = self.wrote(updated);
        let end = matches!(updated, Ok(1)).then(|| journaled_end(c));
        self.note_cycle_write(Some((c.id.clone(), end)));
        updated.map(|_| ())
    }

    /// Sets an owned object's state (and its uuid once known).
    pub fn set_object(
        &self,
        cycle_id: &str,
        kind: ObjectKind,
        name: &str,
        uuid: Option<&str>,
        state: ObjectState,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        self.wrote((|| {
            self.lock()
                .exec_cached(
                    "UPDATE objects SET state = ?4, uuid = COALESCE(?5, uuid), updated_at = ?6
                     WHERE cycle_id = ?1 AND kind = ?2 AND name = ?3",
                    params![cycle_id, kind.as_str(), name, state.as_str(), uuid, ms(now)],
                )
                .map_err(|e| self.err(e))?;
            Ok(())
        })())
    }

    /// The objects of one cycle.
    pub fn objects(&self, cycle_id: &str) -> Result<Vec<ObjectRecord>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT cycle_id, kind, cluster, svm, volume, name, uuid, state FROM objects
                 WHERE cycle_id = ?1 ORDER BY kind DESC, name",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![cycle_id], object_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The journaled owner of an object on a volume, if snapwarden recorded one by that name.
    pub fn owner(
        &self,
        cluster: &str,
        svm: &str,
        volume: &str,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Option<ObjectRecord>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT cycle_id, kind, cluster, svm, volume, name, uuid, state FROM objects
                 WHERE cluster = ?1 AND svm = ?2 AND volume = ?3 AND kind = ?4 AND name = ?5",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_row(
            params![cluster, svm, volume, kind.as_str(), name],
            object_row,
        )
        .optional()
        .map_err(|e| self.err(e))
    }

    /// Appends one action to the log.
    pub fn record_action(
        &self,
        cycle_id: Option<&str>,
        at: DateTime<Utc>,
        action: ActionKind,
        object: &str,
        outcome: ActionOutcome,
        detail: &str,
    ) -> Result<(), JournalError> {
        self.wrote((|| {
            let stamp = self.stamp();
            self.lock()
                .exec_cached(
                    "INSERT INTO actions (cycle_id, at, action, object, outcome, detail, replica,
                        leader_revision)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        cycle_id,
                        ms(at),
                        action.as_str(),
                        object,
                        outcome.as_str(),
                        detail,
                        stamp.replica,
                        stamp.revision
                    ],
                )
                .map_err(|e| self.err(e))?;
            Ok(())
        })())
    }

    /// The cycle serving a window occurrence on a volume, if one was recorded.
    pub fn cycle_for(
        &self,
        window: &str,
        cluster: &str,
        svm: &str,
        volume: &str,
        window_start: DateTime<Utc>,
    ) -> Result<Option<Cycle>, JournalError> {
        let ids: Vec<String> = {
            let conn = self.lock();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id FROM cycles WHERE window = ?1 AND cluster = ?2 AND svm = ?3
                     AND volume = ?4 AND window_start = ?5",
                )
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map(
                    params![window, cluster, svm, volume, ms(window_start)],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))?
        };
        match ids.first() {
            Some(id) => self.cycle(id),
            None => Ok(None),
        }
    }

    /// One cycle by id.
    pub fn cycle(&self, id: &str) -> Result<Option<Cycle>, JournalError> {
        let mut found = self.query_cycles("WHERE id = ?1", params![id])?;
        Ok(found.pop())
    }

    /// Every cycle that may still own an object on a cluster (not terminal).
    pub fn open_cycles(&self) -> Result<Vec<Cycle>, JournalError> {
        self.query_cycles(
            "WHERE state NOT IN ('released', 'failed', 'skipped') ORDER BY create_at, id",
            params![],
        )
    }

    /// A stamp that changes whenever the journal's content may have changed: the rows this
    /// connection inserted, updated or deleted (SQLite's total changes) and the commits of
    /// other connections (`PRAGMA data_version`). Equal stamps: what was read is still current.
    pub fn revision(&self) -> Result<Revision, JournalError> {
        let conn = self.lock();
        let others: i64 = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        Ok(Revision {
            own: conn.total_changes(),
            others,
        })
    }

    /// Cycles created at or after `since` (optionally of one window), newest first, at most
    /// `limit`.
    pub fn recent_cycles(
        &self,
        since: DateTime<Utc>,
        window: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Cycle>, JournalError> {
        match window {
            Some(w) => self.query_cycles(
                "WHERE create_at >= ?1 AND window = ?2 ORDER BY create_at DESC, id LIMIT ?3",
                params![ms(since), w, limit_i64(limit)],
            ),
            None => self.query_cycles(
                "WHERE create_at >= ?1 ORDER BY create_at DESC, id LIMIT ?2",
                params![ms(since), limit_i64(limit)],
            ),
        }
    }

    fn query_cycles(
        &self,
        tail: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Cycle>, JournalError> {
        self.query_cycles_with(tail, args, None)
    }

    /// The cycles `tail` selects, with their clones: read per cycle, or, given `clones` (a
    /// query of `cycle_id, source, name` over the same `args`, in row order), all at once.
    fn query_cycles_with(
        &self,
        tail: &str,
        args: &[&dyn rusqlite::ToSql],
        clones: Option<&str>,
    ) -> Result<Vec<Cycle>, JournalError> {
        let conn = self.lock();
        let sql = format!(
            "SELECT id, window, cluster, svm, volume, window_start, create_at, release_by,
                release_deadline, backing_snapshot, clone_kind, state, result, created_at,
                clones_created_at, clones_deleted_at, released_at, detail, replica FROM cycles {tail}"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map(args, cycle_row).map_err(|e| self.err(e))?;
        let mut cycles = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        let clone_lun = |r: &Row<'_>, at: usize| -> rusqlite::Result<CloneLun> {
            Ok(CloneLun {
                source: r.get::<_, Option<String>>(at)?.unwrap_or_default(),
                path: r.get(at + 1)?,
            })
        };
        if let Some(sql) = clones {
            let mut stmt = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map(args, |r| Ok((r.get::<_, String>(0)?, clone_lun(r, 1)?)))
                .map_err(|e| self.err(e))?;
            let mut by_cycle: std::collections::HashMap<String, Vec<CloneLun>> =
                std::collections::HashMap::new();
            for row in rows {
                let (id, clone) = row.map_err(|e| self.err(e))?;
                by_cycle.entry(id).or_default().push(clone);
            }
            for c in &mut cycles {
                c.clones = by_cycle.remove(&c.id).unwrap_or_default();
            }
            return Ok(cycles);
        }
        let mut clones = conn
            .prepare_cached(
                "SELECT source, name FROM objects WHERE cycle_id = ?1 AND kind = 'lun'
                 ORDER BY rowid",
            )
            .map_err(|e| self.err(e))?;
        for c in &mut cycles {
            let rows = clones
                .query_map(params![c.id], |r| clone_lun(r, 0))
                .map_err(|e| self.err(e))?;
            c.clones = rows
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))?;
        }
        Ok(cycles)
    }
}

/// How long terminal cycles and conflicts are kept: a year of history for `report` and the
/// longest FlexClone `within` (366 days), plus a margin.
pub const RETENTION: TimeDelta = TimeDelta::days(400);

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// `file:` URI of `path` opened as immutable; bytes outside the URI's unreserved set are
/// percent-encoded (a state directory may hold `?`, `#` or `%`).
fn immutable_uri(path: &Path) -> String {
    use std::fmt::Write;
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            let _ = write!(uri, "%{b:02X}");
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// A SQLite error as a journal error: a file SQLite finds malformed is [`JournalError::Damaged`].
fn classify(path: &Path, e: rusqlite::Error) -> JournalError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => JournalError::Damaged {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        _ => JournalError::Sqlite {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

fn conflict_row(r: &Row<'_>) -> rusqlite::Result<ObservedConflict> {
    let kind: String = r.get(0)?;
    Ok(ObservedConflict {
        kind: ConflictKind::parse(&kind).unwrap_or(ConflictKind::ChainConflict),
        cluster: r.get(1)?,
        svm: r.get(2)?,
        volume: r.get(3)?,
        window: r.get(4)?,
        cycle: r.get(5)?,
        at: from_ms(r.get(6)?),
        detail: r.get(7)?,
        key: r.get(8)?,
    })
}

fn object_row(r: &Row<'_>) -> rusqlite::Result<ObjectRecord> {
    let kind: String = r.get(1)?;
    let state: String = r.get(7)?;
    Ok(ObjectRecord {
        cycle_id: r.get(0)?,
        kind: ObjectKind::parse(&kind).unwrap_or(ObjectKind::Snapshot),
        cluster: r.get(2)?,
        svm: r.get(3)?,
        volume: r.get(4)?,
        name: r.get(5)?,
        uuid: r.get(6)?,
        // An unknown state is treated as "may exist": the next listing settles it.
        state: ObjectState::parse(&state).unwrap_or(ObjectState::Intent),
    })
}

fn cycle_row(r: &Row<'_>) -> rusqlite::Result<Cycle> {
    let clone_kind: String = r.get(10)?;
    let state: String = r.get(11)?;
    let result: Option<String> = r.get(12)?;
    let opt = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(from_ms))
    };
    Ok(Cycle {
        id: r.get(0)?,
        window: r.get(1)?,
        cluster: r.get(2)?,
        svm: r.get(3)?,
        volume: r.get(4)?,
        window_start: from_ms(r.get(5)?),
        create_at: from_ms(r.get(6)?),
        release_by: from_ms(r.get(7)?),
        release_deadline: opt(8)?,
        backing_snapshot: r.get(9)?,
        clone_kind: CloneKind::parse(&clone_kind).unwrap_or(CloneKind::SnapRestore),
        clones: Vec::new(),
        // An unknown state means "may own objects": releasing is the safe reading.
        state: CycleState::parse(&state).unwrap_or(CycleState::Releasing),
        result: result.as_deref().and_then(CycleResult::parse),
        created_at: opt(13)?,
        clones_created_at: opt(14)?,
        clones_deleted_at: opt(15)?,
        released_at: opt(16)?,
        detail: r.get(17)?,
        replica: r.get(18)?,
    })
}

#[cfg(test)]
mod tests;
