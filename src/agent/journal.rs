//! The journal: an SQLite database in the state directory recording cycles, the ONTAP objects
//! they own, every action and every observed conflict (C13).
//!
//! It is one of the three proofs of ownership (name prefix, comment marker, journal entry): an
//! object's *intent* is written before the ONTAP call that creates it, so a crash between the two
//! leaves a record that lets the next start find and release the object. State is otherwise
//! re-derived from ONTAP (C7); the journal adds what ONTAP cannot say (what we meant to create,
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use super::cycle::{
    CloneKind, CloneLun, ConflictKind, Cycle, CycleResult, CycleState, ObservedConflict,
};

mod identify;

use identify::Found;
pub use identify::{APPLICATION_ID, INTEGRITY_BUDGET};

/// File name of the journal inside the state directory.
pub const FILE_NAME: &str = "journal.sqlite3";

/// Schema versions, in order; `user_version` holds the number of migrations applied.
const MIGRATIONS: &[&str] = &[
    // 1: cycles, the objects they own, actions and conflicts.
    "CREATE TABLE cycles (
        id TEXT PRIMARY KEY,
        window TEXT NOT NULL,
        cluster TEXT NOT NULL,
        svm TEXT NOT NULL,
        volume TEXT NOT NULL,
        window_start INTEGER NOT NULL,
        create_at INTEGER NOT NULL,
        release_by INTEGER NOT NULL,
        release_deadline INTEGER,
        backing_snapshot TEXT NOT NULL,
        clone_kind TEXT NOT NULL,
        state TEXT NOT NULL,
        result TEXT,
        created_at INTEGER,
        clones_created_at INTEGER,
        clones_deleted_at INTEGER,
        released_at INTEGER,
        detail TEXT NOT NULL DEFAULT '',
        UNIQUE (window, cluster, svm, volume, window_start)
    );
    CREATE INDEX cycles_by_state ON cycles(state);
    CREATE INDEX cycles_by_create ON cycles(create_at);
    CREATE TABLE objects (
        cycle_id TEXT NOT NULL REFERENCES cycles(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        cluster TEXT NOT NULL,
        svm TEXT NOT NULL,
        volume TEXT NOT NULL,
        name TEXT NOT NULL,
        source TEXT,
        uuid TEXT,
        state TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (cycle_id, kind, name)
    );
    CREATE INDEX objects_by_name ON objects(cluster, svm, volume, kind, name);
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY,
        cycle_id TEXT,
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        object TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX actions_by_cycle ON actions(cycle_id);
    CREATE TABLE conflicts (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        cluster TEXT NOT NULL,
        svm TEXT NOT NULL,
        volume TEXT NOT NULL,
        window TEXT,
        cycle_id TEXT,
        at INTEGER NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX conflicts_by_at ON conflicts(at);",
    // 2: FlexClone recommendations (C8): raised, switched and cleared, per volume.
    "CREATE TABLE recommendations (
        id INTEGER PRIMARY KEY,
        cluster TEXT NOT NULL,
        svm TEXT NOT NULL,
        volume TEXT NOT NULL,
        event TEXT NOT NULL,
        at INTEGER NOT NULL,
        evidence TEXT NOT NULL
    );
    CREATE INDEX recommendations_by_volume ON recommendations(cluster, svm, volume, id);
    CREATE INDEX conflicts_by_volume ON conflicts(cluster, svm, volume);",
    // 3: high availability: which replica acted, under which leader revision (fencing token).
    "ALTER TABLE cycles ADD COLUMN replica TEXT;
    ALTER TABLE cycles ADD COLUMN leader_revision INTEGER;
    ALTER TABLE actions ADD COLUMN replica TEXT;
    ALTER TABLE actions ADD COLUMN leader_revision INTEGER;",
    // 4: the space a locked backing snapshot holds, as ONTAP last reported it (C8 evidence).
    "CREATE TABLE locked_space (
        cycle_id TEXT PRIMARY KEY,
        cluster TEXT NOT NULL,
        svm TEXT NOT NULL,
        volume TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX locked_space_by_volume ON locked_space(cluster, svm, volume);",
    // 5: managed snapshots: each one snapwarden took (or meant to take) of a copy it manages.
    "CREATE TABLE managed_snapshots (
        id INTEGER PRIMARY KEY,
        cluster TEXT NOT NULL,
        svm TEXT NOT NULL,
        volume TEXT NOT NULL,
        prefix TEXT NOT NULL,
        name TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        instants INTEGER NOT NULL,
        waited_ms INTEGER NOT NULL,
        reason TEXT NOT NULL,
        state TEXT NOT NULL,
        uuid TEXT,
        asked_at INTEGER NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        UNIQUE (cluster, svm, volume, name)
    );
    CREATE INDEX managed_by_copy ON managed_snapshots(cluster, svm, volume, prefix, asked_at);",
];

/// The schema version that added `managed_snapshots`.
const MANAGED_FROM: i64 = 5;

/// The schema version that added `locked_space`; older journals (read only) have none.
const LOCKED_SPACE_FROM: i64 = 4;

/// The schema this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// What happened to a volume's FlexClone recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecommendationKind {
    /// Raised: `recommend_after` conflicts within `within`.
    Raised,
    /// The volume switched to FlexClone (`use_when_licensed`).
    Switched,
    /// Cleared after a conflict-free `within`.
    Cleared,
}

impl RecommendationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecommendationKind::Raised => "raised",
            RecommendationKind::Switched => "switched",
            RecommendationKind::Cleared => "cleared",
        }
    }

    fn parse(s: &str) -> Option<RecommendationKind> {
        match s {
            "raised" => Some(RecommendationKind::Raised),
            "switched" => Some(RecommendationKind::Switched),
            "cleared" => Some(RecommendationKind::Cleared),
            _ => None,
        }
    }
}

/// A journaled recommendation event. `at` is the raising conflict's instant for `raised`, the
/// agent's clock otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecommendationEvent {
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    pub event: RecommendationKind,
    pub at: DateTime<Utc>,
    pub evidence: String,
}

/// Kinds of ONTAP object a cycle owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Snapshot,
    Lun,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Snapshot => "snapshot",
            ObjectKind::Lun => "lun",
        }
    }

    fn parse(s: &str) -> Option<ObjectKind> {
        match s {
            "snapshot" => Some(ObjectKind::Snapshot),
            "lun" => Some(ObjectKind::Lun),
            _ => None,
        }
    }
}

/// What the journal knows of an owned object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectState {
    /// About to be created (or created, answer lost): look it up by name.
    Intent,
    /// ONTAP confirmed the create.
    Created,
    /// ONTAP confirmed the delete, or a listing no longer shows it.
    Deleted,
    /// Never created (a listing after the intent did not show it).
    Absent,
}

impl ObjectState {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectState::Intent => "intent",
            ObjectState::Created => "created",
            ObjectState::Deleted => "deleted",
            ObjectState::Absent => "absent",
        }
    }

    fn parse(s: &str) -> Option<ObjectState> {
        [
            ObjectState::Intent,
            ObjectState::Created,
            ObjectState::Deleted,
            ObjectState::Absent,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// The object may exist on the cluster.
    pub fn may_exist(self) -> bool {
        matches!(self, ObjectState::Intent | ObjectState::Created)
    }
}

/// One owned object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    pub cycle_id: String,
    pub kind: ObjectKind,
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    /// Snapshot name, or LUN path.
    pub name: String,
    pub uuid: Option<String>,
    pub state: ObjectState,
}

/// A conflict as the journal holds it.
pub type ConflictRecord = ObservedConflict;

/// The bytes a locked backing snapshot held when last observed (ONTAP's snapshot `size`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedSpace {
    pub cycle_id: String,
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    pub snapshot: String,
    pub bytes: u64,
    pub at: DateTime<Utc>,
}

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
    fn note<T>(&self, r: &Result<T, JournalError>) {
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

/// What the journal records an action as (`actions.action`): the spelling is the journal's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    CreateSnapshot,
    CreateClone,
    Hook,
    DeleteClone,
    DeleteSnapshot,
    /// A new leader took over another replica's cycle.
    Adopt,
    /// A driver window's Veeam job was started (or found running).
    VeeamStart,
    /// A driver window's Veeam session stopped.
    VeeamSession,
    /// A managed copy's series was trimmed to its count (the oldest deleted).
    RotateSnapshot,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::CreateSnapshot => "create_snapshot",
            ActionKind::CreateClone => "create_clone",
            ActionKind::Hook => "hook",
            ActionKind::DeleteClone => "delete_clone",
            ActionKind::DeleteSnapshot => "delete_snapshot",
            ActionKind::Adopt => "adopt",
            ActionKind::VeeamStart => "veeam-start",
            ActionKind::VeeamSession => "veeam-session",
            ActionKind::RotateSnapshot => "rotate_snapshot",
        }
    }
}

/// How an action went (`actions.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionOutcome {
    Ok,
    /// ONTAP (or the tool) refused or failed; the detail says why.
    Error,
    /// The object was gone already (a delete answered 404).
    Gone,
    /// The backing snapshot's delete answered 1638555.
    Locked,
    /// A backup (hook, job) failed.
    Failed,
    /// A backup ran past its window's `max`.
    Overrun,
    /// Not attempted: this replica does not lead.
    NotLeader,
    /// Not deleted: the snapshot has owners (busy).
    Busy,
}

impl ActionOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::Ok => "ok",
            ActionOutcome::Error => "error",
            ActionOutcome::Gone => "gone",
            ActionOutcome::Locked => "locked",
            ActionOutcome::Failed => "failed",
            ActionOutcome::Overrun => "overrun",
            ActionOutcome::NotLeader => "not-leader",
            ActionOutcome::Busy => "busy",
        }
    }

    /// A backup's outcome from its cycle's result (`None`: it succeeded).
    pub fn of_result(result: Option<CycleResult>) -> ActionOutcome {
        match result {
            None | Some(CycleResult::Completed) => ActionOutcome::Ok,
            Some(CycleResult::Overrun) => ActionOutcome::Overrun,
            Some(CycleResult::Failed | CycleResult::Skipped) => ActionOutcome::Failed,
        }
    }
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
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let journal = Journal {
            path: path.clone(),
            conn: Mutex::new(conn),
            health: Arc::default(),
            stamp: Mutex::new(Stamp::default()),
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
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Journal {
            path,
            conn: Mutex::new(conn),
            health: Arc::default(),
            stamp: Mutex::new(Stamp::default()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the writes went ([`JournalHealth`]).
    pub fn health(&self) -> Arc<JournalHealth> {
        self.health.clone()
    }

    /// A write's result, noted in the journal's health.
    fn wrote<T>(&self, r: Result<T, JournalError>) -> Result<T, JournalError> {
        self.health.note(&r);
        r
    }

    /// For a journal that lives only as long as its process (`simulate`): no fsync and no file
    /// lock per transaction (the process holds the lock until it closes the journal). What is
    /// written is unchanged; only a crash or a second writer could notice.
    pub fn ephemeral(&self) -> Result<(), JournalError> {
        self.lock()
            .execute_batch("PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE;")
            .map_err(|e| self.err(e))
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
        self.wrote((|| {
            let mut conn = self.lock();
            let tx = conn.transaction().map_err(|e| self.err(e))?;
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
        })())
    }

    /// Writes a cycle's mutable fields (state, result, times, detail).
    pub fn update_cycle(&self, c: &Cycle) -> Result<(), JournalError> {
        self.wrote((|| {
            self.lock()
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
                .map_err(|e| self.err(e))?;
            Ok(())
        })())
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

    /// Records a conflict; `false` when the same conflict (by key) was recorded before.
    pub fn record_conflict(&self, c: &ObservedConflict) -> Result<bool, JournalError> {
        self.wrote((|| {
            let n = self
                .lock()
                .exec_cached(
                    "INSERT OR IGNORE INTO conflicts (key, kind, cluster, svm, volume, window, cycle_id,
                        at, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        c.key,
                        c.kind.as_str(),
                        c.cluster,
                        c.svm,
                        c.volume,
                        c.window,
                        c.cycle,
                        ms(c.at),
                        c.detail
                    ],
                )
                .map_err(|e| self.err(e))?;
            Ok(n == 1)
        })())
    }

    /// Every conflict recorded on one volume, oldest first (what a recommendation is decided
    /// from; the journal keeps 400 days).
    pub fn volume_conflicts(
        &self,
        cluster: &str,
        svm: &str,
        volume: &str,
    ) -> Result<Vec<ConflictRecord>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT kind, cluster, svm, volume, window, cycle_id, at, detail, key
                 FROM conflicts WHERE cluster = ?1 AND svm = ?2 AND volume = ?3
                 ORDER BY at, id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![cluster, svm, volume], conflict_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Records the space a locked cycle's backing snapshot holds; a later report of the same
    /// cycle replaces it (an unchanged size is not rewritten).
    pub fn record_locked_space(&self, l: &LockedSpace) -> Result<(), JournalError> {
        self.wrote((|| {
            self.lock()
                .execute(
                    "INSERT INTO locked_space (cycle_id, cluster, svm, volume, snapshot, bytes, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(cycle_id) DO UPDATE SET bytes = excluded.bytes, at = excluded.at
                     WHERE locked_space.bytes != excluded.bytes",
                    params![
                        l.cycle_id,
                        l.cluster,
                        l.svm,
                        l.volume,
                        l.snapshot,
                        i64::try_from(l.bytes).unwrap_or(i64::MAX),
                        ms(l.at)
                    ],
                )
                .map_err(|e| self.err(e))?;
            Ok(())
        })())
    }

    /// Every locked-space record, by cluster, SVM, volume and cycle (none in a journal older
    /// than migration 4, which `report` may read before `run` migrated it).
    pub fn locked_space(&self) -> Result<Vec<LockedSpace>, JournalError> {
        if self.user_version()? < LOCKED_SPACE_FROM {
            return Ok(Vec::new());
        }
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT cycle_id, cluster, svm, volume, snapshot, bytes, at FROM locked_space
                 ORDER BY cluster, svm, volume, cycle_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let bytes: i64 = r.get(5)?;
                Ok(LockedSpace {
                    cycle_id: r.get(0)?,
                    cluster: r.get(1)?,
                    svm: r.get(2)?,
                    volume: r.get(3)?,
                    snapshot: r.get(4)?,
                    bytes: u64::try_from(bytes).unwrap_or(0),
                    at: from_ms(r.get(6)?),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Records a recommendation event (raised, switched, cleared).
    pub fn record_recommendation(&self, e: &RecommendationEvent) -> Result<(), JournalError> {
        self.wrote((|| {
            self.lock()
                .exec_cached(
                    "INSERT INTO recommendations (cluster, svm, volume, event, at, evidence)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        e.cluster,
                        e.svm,
                        e.volume,
                        e.event.as_str(),
                        ms(e.at),
                        e.evidence
                    ],
                )
                .map_err(|e| self.err(e))?;
            Ok(())
        })())
    }

    /// Every recommendation event, in the order they were recorded.
    pub fn recommendation_events(&self) -> Result<Vec<RecommendationEvent>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT cluster, svm, volume, event, at, evidence FROM recommendations ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let event: String = r.get(3)?;
                Ok(RecommendationEvent {
                    cluster: r.get(0)?,
                    svm: r.get(1)?,
                    volume: r.get(2)?,
                    event: RecommendationKind::parse(&event).unwrap_or(RecommendationKind::Raised),
                    at: from_ms(r.get(4)?),
                    evidence: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Conflicts at or after `since`, newest first, at most `limit`.
    pub fn conflicts(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ConflictRecord>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT kind, cluster, svm, volume, window, cycle_id, at, detail, key
                 FROM conflicts WHERE at >= ?1 ORDER BY at DESC, id DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![ms(since), limit_i64(limit)], conflict_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
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
        args: impl rusqlite::Params,
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
        let mut clones = conn
            .prepare_cached(
                "SELECT source, name FROM objects WHERE cycle_id = ?1 AND kind = 'lun'
                 ORDER BY rowid",
            )
            .map_err(|e| self.err(e))?;
        for c in &mut cycles {
            let rows = clones
                .query_map(params![c.id], |r| {
                    Ok(CloneLun {
                        source: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        path: r.get(1)?,
                    })
                })
                .map_err(|e| self.err(e))?;
            c.clones = rows
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))?;
        }
        Ok(cycles)
    }

    /// Deletes terminal cycles (with their objects and actions) and conflicts older than
    /// `before`; returns how many cycles went.
    pub fn prune(&self, before: DateTime<Utc>) -> Result<usize, JournalError> {
        self.wrote((|| {
            let mut conn = self.lock();
            let tx = conn.transaction().map_err(|e| self.err(e))?;
            let cut = ms(before);
            tx.exec_cached(
                "DELETE FROM actions WHERE cycle_id IN (SELECT id FROM cycles
                   WHERE create_at < ?1 AND state IN ('released', 'failed', 'skipped'))",
                params![cut],
            )
            .map_err(|e| self.err(e))?;
            let n = tx
                .exec_cached(
                    "DELETE FROM cycles WHERE create_at < ?1 AND state IN ('released', 'failed', 'skipped')",
                    params![cut],
                )
                .map_err(|e| self.err(e))?;
            tx.exec_cached("DELETE FROM conflicts WHERE at < ?1", params![cut])
                .map_err(|e| self.err(e))?;
            tx.exec_cached(
                "DELETE FROM managed_snapshots WHERE asked_at < ?1",
                params![cut],
            )
            .map_err(|e| self.err(e))?;
            tx.exec_cached("DELETE FROM locked_space WHERE at < ?1", params![cut])
                .map_err(|e| self.err(e))?;
            tx.exec_cached(
                "DELETE FROM actions WHERE cycle_id IS NULL AND at < ?1",
                params![cut],
            )
            .map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))?;
            Ok(n)
        })())
    }
}

/// One managed snapshot as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedRecord {
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    /// The copy's prefix.
    pub prefix: String,
    pub name: String,
    /// The first instant of the copy it covers.
    pub due_at: DateTime<Utc>,
    /// How many of the copy's instants it covers.
    pub instants: u32,
    /// How long it waited for a clone to go.
    pub waited: TimeDelta,
    /// `on_time`, `deferred`, `max_defer`, `overdue`.
    pub reason: String,
    /// Intent (asked, answer unknown), created, or absent (never made).
    pub state: ObjectState,
    pub uuid: Option<String>,
    /// When the create was asked.
    pub asked_at: DateTime<Utc>,
    pub detail: String,
}

impl Journal {
    /// Records the intent to take a managed snapshot, before the call that makes it; `false`
    /// when the journal holds that name on that volume already, asked or made (one never made
    /// is asked again).
    pub fn insert_managed(&self, m: &ManagedRecord) -> Result<bool, JournalError> {
        self.wrote((|| {
            let n = self
                .lock()
                .exec_cached(
                    "INSERT INTO managed_snapshots (cluster, svm, volume, prefix, name,
                        due_at, instants, waited_ms, reason, state, uuid, asked_at, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                     ON CONFLICT (cluster, svm, volume, name) DO UPDATE SET
                        due_at = excluded.due_at, instants = excluded.instants,
                        waited_ms = excluded.waited_ms, reason = excluded.reason,
                        state = excluded.state, asked_at = excluded.asked_at,
                        detail = excluded.detail
                     WHERE managed_snapshots.state = 'absent'",
                    params![
                        m.cluster,
                        m.svm,
                        m.volume,
                        m.prefix,
                        m.name,
                        ms(m.due_at),
                        m.instants,
                        m.waited.num_milliseconds(),
                        m.reason,
                        m.state.as_str(),
                        m.uuid,
                        ms(m.asked_at),
                        m.detail
                    ],
                )
                .map_err(|e| self.err(e))?;
            Ok(n == 1)
        })())
    }

    /// Settles a managed snapshot's intent: created (with its uuid) or absent, with a detail.
    pub fn settle_managed(
        &self,
        volume: &super::state::VolumeKey,
        name: &str,
        state: ObjectState,
        uuid: Option<&str>,
        detail: &str,
    ) -> Result<(), JournalError> {
        self.wrote((|| {
            self.lock()
                .exec_cached(
                    "UPDATE managed_snapshots SET state = ?5, uuid = COALESCE(?6, uuid),
                        detail = ?7
                     WHERE cluster = ?1 AND svm = ?2 AND volume = ?3 AND name = ?4",
                    params![
                        volume.cluster,
                        volume.svm,
                        volume.volume,
                        name,
                        state.as_str(),
                        uuid,
                        detail
                    ],
                )
                .map_err(|e| self.err(e))?;
            Ok(())
        })())
    }

    /// Managed snapshots asked at or after `since`, oldest first; with `pending`, only the
    /// intents whose answer is unknown. None in a journal older than migration 5.
    pub fn managed(
        &self,
        since: DateTime<Utc>,
        pending: bool,
    ) -> Result<Vec<ManagedRecord>, JournalError> {
        if self.user_version()? < MANAGED_FROM {
            return Ok(Vec::new());
        }
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT cluster, svm, volume, prefix, name, due_at, instants, waited_ms, reason,
                    state, uuid, asked_at, detail FROM managed_snapshots
                 WHERE asked_at >= ?1 AND (?2 = 0 OR state = 'intent')
                 ORDER BY asked_at, id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![ms(since), i64::from(pending)], |r| {
                let state: String = r.get(9)?;
                Ok(ManagedRecord {
                    cluster: r.get(0)?,
                    svm: r.get(1)?,
                    volume: r.get(2)?,
                    prefix: r.get(3)?,
                    name: r.get(4)?,
                    due_at: from_ms(r.get(5)?),
                    instants: r.get(6)?,
                    waited: TimeDelta::milliseconds(r.get(7)?),
                    reason: r.get(8)?,
                    state: ObjectState::parse(&state).unwrap_or(ObjectState::Intent),
                    uuid: r.get(10)?,
                    asked_at: from_ms(r.get(11)?),
                    detail: r.get(12)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
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
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn cycle(id: &str, start: &str) -> Cycle {
        Cycle {
            release_deadline: Some(t(start) + TimeDelta::minutes(55)),
            ..Cycle::sample(id, t(start))
        }
    }

    #[test]
    fn a_cycle_and_its_intents_round_trip_and_an_occurrence_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let c = cycle("a1", "2027-01-01T01:00:00Z");
        assert!(j.insert_cycle(&c, t("2027-01-01T01:00:00Z")).unwrap());
        let mut again = cycle("a2", "2027-01-01T01:00:00Z");
        again.backing_snapshot = "other".into();
        assert!(!j.insert_cycle(&again, t("2027-01-01T01:00:00Z")).unwrap());

        let read = j.cycle("a1").unwrap().unwrap();
        assert_eq!(read, c);
        let objects = j.objects("a1").unwrap();
        assert_eq!(objects.len(), 2);
        assert!(objects.iter().all(|o| o.state == ObjectState::Intent));
        assert_eq!(
            j.owner("c", "svm1", "v", ObjectKind::Snapshot, "snapwarden.w.a1")
                .unwrap()
                .unwrap()
                .cycle_id,
            "a1"
        );
        assert!(j
            .owner("c", "svm1", "v", ObjectKind::Snapshot, "snapwarden.w.zz")
            .unwrap()
            .is_none());
        assert!(j.cycle("a2").unwrap().is_none());
        assert_eq!(
            j.cycle_for("w", "c", "svm1", "v", t("2027-01-01T01:00:00Z"))
                .unwrap()
                .unwrap()
                .id,
            "a1"
        );
    }

    /// With `[ha]`, every cycle and action carries the replica and the leader revision it was
    /// written under; without it, neither.
    #[test]
    fn cycles_and_actions_record_the_replica_and_its_leader_revision() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let now = t("2026-11-25T10:00:00Z");
        let alone = cycle("alone", "2026-11-25T09:00:00Z");
        assert!(j.insert_cycle(&alone, now).unwrap());
        j.record_action(
            Some("alone"),
            now,
            ActionKind::CreateSnapshot,
            "s",
            ActionOutcome::Ok,
            "",
        )
        .unwrap();
        j.set_replica("replica-a");
        j.set_revision(Some(42));
        let led = cycle("led", "2026-11-25T10:00:00Z");
        assert!(j.insert_cycle(&led, now).unwrap());
        j.record_action(
            Some("led"),
            now,
            ActionKind::CreateSnapshot,
            "s",
            ActionOutcome::Ok,
            "",
        )
        .unwrap();
        j.set_revision(None);
        j.record_action(
            Some("led"),
            now,
            ActionKind::Hook,
            "s",
            ActionOutcome::Ok,
            "",
        )
        .unwrap();
        assert_eq!(j.cycle("alone").unwrap().unwrap().replica, None);
        assert_eq!(
            j.cycle("led").unwrap().unwrap().replica.as_deref(),
            Some("replica-a")
        );
        let conn = j.lock();
        let rows: Vec<(String, Option<String>, Option<i64>)> = conn
            .prepare_cached("SELECT action, replica, leader_revision FROM actions ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                ("create_snapshot".into(), None, None),
                ("create_snapshot".into(), Some("replica-a".into()), Some(42)),
                ("hook".into(), Some("replica-a".into()), None),
            ]
        );
        let revision: Option<i64> = conn
            .query_row(
                "SELECT leader_revision FROM cycles WHERE id = 'led'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(revision, Some(42));
    }

    #[test]
    fn open_cycles_are_those_that_may_still_own_objects() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let now = t("2027-01-01T00:00:00Z");
        let mut a = cycle("a", "2027-01-01T01:00:00Z");
        let mut b = cycle("b", "2027-01-01T02:00:00Z");
        j.insert_cycle(&a, now).unwrap();
        j.insert_cycle(&b, now).unwrap();
        a.state = CycleState::Released;
        a.result = Some(CycleResult::Completed);
        a.released_at = Some(now);
        j.update_cycle(&a).unwrap();
        b.state = CycleState::Locked;
        j.update_cycle(&b).unwrap();
        let open: Vec<String> = j.open_cycles().unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(open, vec!["b"]);
        assert_eq!(j.cycle("a").unwrap().unwrap(), a);
        j.set_object(
            "b",
            ObjectKind::Snapshot,
            "snapwarden.w.b",
            Some("u-1"),
            ObjectState::Created,
            now,
        )
        .unwrap();
        let objects = j.objects("b").unwrap();
        let snap = objects
            .iter()
            .find(|o| o.kind == ObjectKind::Snapshot)
            .unwrap();
        assert_eq!(snap.kind, ObjectKind::Snapshot);
        assert_eq!(snap.uuid.as_deref(), Some("u-1"));
        assert_eq!(snap.state, ObjectState::Created);
    }

    #[test]
    fn conflicts_are_recorded_once_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let c = ObservedConflict {
            kind: ConflictKind::Locked,
            cluster: "c".into(),
            svm: "s".into(),
            volume: "v".into(),
            window: Some("w".into()),
            cycle: Some("a".into()),
            at: t("2027-01-01T00:00:00Z"),
            detail: "pinned by hourly.2027-01-01_0005".into(),
            key: "locked:a".into(),
        };
        assert!(j.record_conflict(&c).unwrap());
        assert!(!j.record_conflict(&c).unwrap());
        assert_eq!(j.conflicts(t("2026-01-01T00:00:00Z"), 10).unwrap(), vec![c]);
    }

    #[test]
    fn reading_a_closed_journal_creates_no_side_files_and_an_open_one_is_read_live() {
        let root = tempfile::tempdir().unwrap();
        // A state directory whose name needs escaping in a `file:` URI.
        let dir = root.path().join("state ?#%dir");
        std::fs::create_dir(&dir).unwrap();
        let writer = Journal::open(&dir).unwrap();
        writer
            .insert_cycle(
                &cycle("c1", "2026-01-01T00:00:00Z"),
                t("2026-01-01T00:00:00Z"),
            )
            .unwrap();
        drop(writer);
        let side_files = |dir: &Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n != FILE_NAME)
                .collect();
            names.sort();
            names
        };
        assert!(side_files(&dir).is_empty(), "{:?}", side_files(&dir));
        let ro = Journal::open_read_only(&dir).unwrap();
        assert_eq!(ro.open_cycles().unwrap().len(), 1);
        drop(ro);
        // `history` run by another user must not leave files the agent's user cannot open.
        assert!(side_files(&dir).is_empty(), "{:?}", side_files(&dir));

        // While the agent writes, a reader sees its committed rows through the WAL.
        let writer = Journal::open(&dir).unwrap();
        writer
            .insert_cycle(
                &cycle("c2", "2026-01-02T00:00:00Z"),
                t("2026-01-02T00:00:00Z"),
            )
            .unwrap();
        let ro = Journal::open_read_only(&dir).unwrap();
        assert_eq!(ro.open_cycles().unwrap().len(), 2);
    }

    #[test]
    fn a_version_1_journal_migrates_to_recommendations_and_keeps_its_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        // A journal as the first release wrote it: migration 1 only, with one conflict.
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1i64).unwrap();
        conn.execute(
            "INSERT INTO conflicts (key, kind, cluster, svm, volume, window, cycle_id, at, detail)
             VALUES ('k', 'chain_conflict', 'c', 's', 'v', 'w', NULL, 0, 'd')",
            [],
        )
        .unwrap();
        drop(conn);
        // `history` and `report` read it before any `run` migrated it.
        let ro = Journal::open_read_only(dir.path()).unwrap();
        assert_eq!(
            ro.conflicts(t("1970-01-01T00:00:00Z"), 10).unwrap().len(),
            1
        );
        drop(ro);
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.user_version().unwrap(), SCHEMA_VERSION);
        let kept = j.volume_conflicts("c", "s", "v").unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].key, "k");
        assert!(j.volume_conflicts("c", "s", "other").unwrap().is_empty());
        let raised = RecommendationEvent {
            cluster: "c".into(),
            svm: "s".into(),
            volume: "v".into(),
            event: RecommendationKind::Raised,
            at: t("2027-01-02T00:00:00Z"),
            evidence: "3 conflicts".into(),
        };
        let cleared = RecommendationEvent {
            event: RecommendationKind::Cleared,
            at: t("2027-01-09T00:00:00Z"),
            evidence: String::new(),
            ..raised.clone()
        };
        j.record_recommendation(&raised).unwrap();
        j.record_recommendation(&cleared).unwrap();
        assert_eq!(j.recommendation_events().unwrap(), vec![raised, cleared]);
    }

    #[test]
    fn a_file_that_is_not_a_journal_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let garbage = b"this is not sqlite, it is somebody's notes\n".repeat(100);
        std::fs::write(&path, &garbage).unwrap();
        let err = Journal::open(dir.path()).unwrap_err();
        assert!(matches!(err, JournalError::Foreign { .. }), "{err}");
        assert!(
            err.to_string().contains("(not an SQLite database)")
                && err.to_string().contains("left untouched"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), garbage);
    }

    #[test]
    fn a_journal_from_a_newer_snapwarden_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Journal::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let err = Journal::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, JournalError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1),
            "{err}"
        );
        assert!(matches!(
            Journal::open_read_only(dir.path()).unwrap_err(),
            JournalError::NewerSchema { .. }
        ));
    }

    #[test]
    fn another_programs_database_is_not_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.execute_batch("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('keep');")
            .unwrap();
        drop(conn);
        let err = Journal::open(dir.path()).unwrap_err();
        assert!(matches!(err, JournalError::Foreign { .. }), "{err}");
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        let kept: String = conn
            .query_row("SELECT x FROM notes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, "keep");
    }

    #[test]
    fn an_unwritable_state_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let err = Journal::open(&file.join("state")).unwrap_err();
        assert!(matches!(err, JournalError::StateDir { .. }), "{err}");
        assert!(err.to_string().contains("plain-file"), "{err}");
    }

    #[test]
    fn prune_drops_old_terminal_cycles_only() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let now = t("2027-01-01T00:00:00Z");
        let mut old = cycle("old", "2025-01-01T01:00:00Z");
        let stuck = cycle("stuck", "2025-01-02T01:00:00Z");
        j.insert_cycle(&old, now).unwrap();
        j.insert_cycle(&stuck, now).unwrap();
        old.state = CycleState::Released;
        j.update_cycle(&old).unwrap();
        assert_eq!(j.prune(now - RETENTION).unwrap(), 1);
        assert!(j.cycle("old").unwrap().is_none());
        assert!(j.objects("old").unwrap().is_empty());
        assert!(j.cycle("stuck").unwrap().is_some());
    }

    #[test]
    fn locked_space_is_kept_per_cycle_replaced_by_a_new_size_and_absent_before_migration_4() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let mut l = LockedSpace {
            cycle_id: "c1".into(),
            cluster: "c".into(),
            svm: "s".into(),
            volume: "v".into(),
            snapshot: "snapwarden.w.1".into(),
            bytes: 4096,
            at: t("2027-01-01T01:00:00Z"),
        };
        j.record_locked_space(&l).unwrap();
        l.bytes = 9338;
        l.at = t("2027-01-01T06:00:00Z");
        j.record_locked_space(&l).unwrap();
        assert_eq!(j.locked_space().unwrap(), vec![l.clone()]);
        // Pruned with the conflicts of its age.
        j.prune(t("2027-01-02T00:00:00Z")).unwrap();
        assert!(j.locked_space().unwrap().is_empty());

        // A version-3 journal, read only, has no such table: nothing, not an error.
        let old = tempfile::tempdir().unwrap();
        let conn = Connection::open(old.path().join(FILE_NAME)).unwrap();
        for m in &MIGRATIONS[..3] {
            conn.execute_batch(m).unwrap();
        }
        conn.pragma_update(None, "user_version", 3i64).unwrap();
        drop(conn);
        let ro = Journal::open_read_only(old.path()).unwrap();
        assert!(ro.locked_space().unwrap().is_empty());
        drop(ro);
        // Opened to write, it migrates and records.
        let j = Journal::open(old.path()).unwrap();
        j.record_locked_space(&l).unwrap();
        assert_eq!(j.locked_space().unwrap().len(), 1);
    }

    /// The file's bytes, and whether SQLite left a side file beside it.
    fn snapshot_of(dir: &Path) -> (Vec<u8>, Vec<String>) {
        let bytes = std::fs::read(dir.join(FILE_NAME)).unwrap();
        let mut side: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != FILE_NAME)
            .collect();
        side.sort();
        (bytes, side)
    }

    /// A closed journal of this build with a few cycles (so its tables have pages of their own).
    fn written_journal(dir: &Path) {
        let j = Journal::open(dir).unwrap();
        for i in 0..20 {
            j.insert_cycle(
                &cycle(&format!("c{i}"), &format!("2026-01-01T{:02}:00:00Z", i)),
                t("2026-01-01T00:00:00Z"),
            )
            .unwrap();
        }
    }

    #[test]
    fn a_journal_with_damaged_pages_is_refused_at_open_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        written_journal(dir.path());
        let path = dir.path().join(FILE_NAME);
        // Pages 2 to 4 (the first tables' roots) overwritten, as a bad disk or a stray write
        // would: page 1 (the header and the schema) still reads.
        let mut bytes = std::fs::read(&path).unwrap();
        let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
        assert!(bytes.len() >= 4 * page, "{} bytes", bytes.len());
        for b in &mut bytes[page..4 * page] {
            *b = 0xA5;
        }
        std::fs::write(&path, &bytes).unwrap();
        let before = snapshot_of(dir.path());
        let err = Journal::open(dir.path()).unwrap_err();
        assert!(matches!(err, JournalError::Damaged { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "journal {} is damaged (quick_check: ",
                path.display()
            )) && text.contains("left untouched")
                && text.contains(&format!("mv {0} {0}.damaged", path.display())),
            "{text}"
        );
        assert_eq!(snapshot_of(dir.path()), before);
        assert!(before.1.is_empty(), "{:?}", before.1);
    }

    #[test]
    fn a_foreign_database_is_identified_read_only_and_never_changed() {
        // Another program's database, in rollback-journal mode, and one marked with its own
        // application_id in WAL mode: not a byte changes, no WAL switch.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('keep'); \
             CREATE TABLE tags (t TEXT);",
        )
        .unwrap();
        drop(conn);
        let before = snapshot_of(dir.path());
        assert_eq!(before.0[18..20], [1, 1], "rollback-journal mode");
        let err = Journal::open(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "journal {} is not a snapwarden journal (an SQLite database with 2 table(s) \
                 (notes, tags) and no snapwarden journal in it); it was left untouched — move it \
                 aside (or point --state-dir elsewhere) to start a new journal",
                path.display()
            )
        );
        assert_eq!(snapshot_of(dir.path()), before);
        let err = Journal::open_read_only(dir.path()).unwrap_err();
        assert!(matches!(err, JournalError::Foreign { .. }), "{err}");
        assert_eq!(snapshot_of(dir.path()), before);

        std::fs::remove_file(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA application_id = 1234; \
             CREATE TABLE cycles (id TEXT);",
        )
        .unwrap();
        drop(conn);
        let before = snapshot_of(dir.path());
        let err = Journal::open(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("an SQLite database of another program (application_id 0x000004D2)"),
            "{err}"
        );
        assert_eq!(snapshot_of(dir.path()), before);
    }

    #[test]
    fn a_journal_of_a_mismatched_schema_says_so_and_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        written_journal(dir.path());
        // Version 2 in the header, the tables of version 4 (migration 3 would fail with
        // "duplicate column name: replica").
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.pragma_update(None, "user_version", 2i64).unwrap();
        drop(conn);
        let before = snapshot_of(dir.path());
        let err = Journal::open(dir.path()).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "journal {} says schema version 2, but its tables are those of schema version \
                 {SCHEMA_VERSION}; it was left untouched",
                dir.path().join(FILE_NAME).display()
            )),
            "{err}"
        );
        assert_eq!(snapshot_of(dir.path()), before);

        // A column dropped from a table: named.
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.execute_batch("ALTER TABLE actions DROP COLUMN leader_revision;")
            .unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .unwrap();
        drop(conn);
        let err = Journal::open_read_only(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "its tables are not those of schema version {SCHEMA_VERSION}: table actions \
                 lacks leader_revision"
            )),
            "{err}"
        );
    }

    #[test]
    fn a_new_journal_is_marked_and_an_old_one_gains_the_mark_when_migrated() {
        let dir = tempfile::tempdir().unwrap();
        drop(Journal::open(dir.path()).unwrap());
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(
            i32::from_be_bytes([bytes[68], bytes[69], bytes[70], bytes[71]]),
            APPLICATION_ID
        );
        // A journal from before the mark (application_id 0) is recognised by its tables.
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.pragma_update(None, "application_id", 0).unwrap();
        drop(conn);
        drop(Journal::open_read_only(dir.path()).unwrap());
        let j = Journal::open(dir.path()).unwrap();
        let id: i32 = j
            .lock()
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .unwrap();
        assert_eq!(id, APPLICATION_ID);
        // An empty file is no journal to read, but one to start.
        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join(FILE_NAME), b"").unwrap();
        assert!(matches!(
            Journal::open_read_only(empty.path()).unwrap_err(),
            JournalError::Missing { .. }
        ));
        drop(Journal::open(empty.path()).unwrap());
    }

    #[test]
    fn a_journal_of_a_newer_snapwarden_is_left_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        written_journal(dir.path());
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let before = snapshot_of(dir.path());
        assert!(matches!(
            Journal::open(dir.path()).unwrap_err(),
            JournalError::NewerSchema { .. }
        ));
        assert_eq!(snapshot_of(dir.path()), before);
    }
}
