//! The journal's schema: its migrations in order (the version is how many were applied).

/// Schema versions, in order; `user_version` holds the number of migrations applied.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 2: FlexClone recommendations: raised, switched and cleared, per volume.
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
    // 4: the space a locked backing snapshot holds, as ONTAP last reported it (evidence for the FlexClone recommendation).
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
    // 6: a cycle's objects by cycle — the status reads the clones of the recent cycles after
    // every pass that wrote, which scanned every object the journal ever held.
    "CREATE INDEX objects_by_cycle ON objects(cycle_id, kind);",
    // 7: what the daily prune deletes by age — actions tied to no cycle and managed snapshots —
    // by instant: it scanned every action and every managed snapshot the journal held.
    "CREATE INDEX actions_unowned_by_at ON actions(at) WHERE cycle_id IS NULL;
    CREATE INDEX managed_by_asked ON managed_snapshots(asked_at);",
];

/// The schema version that added `managed_snapshots`.
pub(super) const MANAGED_FROM: i64 = 5;

/// The schema version that added `locked_space`; older journals (read only) have none.
pub(super) const LOCKED_SPACE_FROM: i64 = 4;

/// The schema this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
