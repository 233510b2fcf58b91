//! The journal's tests: cycles and their intents, conflicts, recommendations, locked space,
//! managed snapshots, pruning, identification and migration of older and foreign files.

use super::*;
use crate::agent::recommend::CycleEnd;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn cycle(id: &str, start: &str) -> Cycle {
    Cycle {
        release_deadline: Some(t(start) + TimeDelta::minutes(55)),
        ..Cycle::sample(id, t(start))
    }
}

/// The `locked` conflict of cycle `c`: its delete refused at `at`.
fn locked(c: &Cycle, at: DateTime<Utc>) -> ObservedConflict {
    ObservedConflict {
        kind: ConflictKind::Locked,
        cluster: c.cluster.clone(),
        svm: c.svm.clone(),
        volume: c.volume.clone(),
        window: Some(c.window.clone()),
        cycle: Some(c.id.clone()),
        at,
        detail: String::new(),
        key: format!("locked:{}", c.id),
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

/// Every statement the journal runs is compiled once per connection, whatever it binds: none
/// is compiled again at a later run (SQLite's own count of each statement's recompilations,
/// read from every statement the connection holds).
#[test]
fn each_statement_is_compiled_once_whatever_it_binds() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let since = t("2026-12-01T00:00:00Z");
    for i in 0..6usize {
        let c = cycle(&format!("c{i}"), &format!("2027-01-0{}T01:00:00Z", i + 1));
        assert!(j.insert_cycle(&c, c.create_at).unwrap());
        j.update_cycle(&c).unwrap();
        j.record_conflict(&locked(&c, c.create_at)).unwrap();
        // The same limits as a pass asks, and others.
        for limit in [50, 50 + i] {
            assert_eq!(j.recent_cycles(since, None, limit).unwrap().len(), i + 1);
            let w = Some(c.window.as_str());
            assert_eq!(j.recent_cycles(since, w, limit).unwrap().len(), i + 1);
            assert_eq!(j.conflicts(since, limit).unwrap().len(), i + 1);
            assert_eq!(j.conflicts_after(0, limit).unwrap().len(), i + 1);
        }
    }
    let conn = j.lock();
    let mut seen = Vec::new();
    // SAFETY: the connection is held (locked) throughout; each statement pointer comes from
    // SQLite's own list of the connection's statements and is only read.
    unsafe {
        let db = conn.handle();
        let mut stmt = rusqlite::ffi::sqlite3_next_stmt(db, std::ptr::null_mut());
        while !stmt.is_null() {
            let sql = std::ffi::CStr::from_ptr(rusqlite::ffi::sqlite3_sql(stmt))
                .to_string_lossy()
                .into_owned();
            let again = rusqlite::ffi::sqlite3_stmt_status(
                stmt,
                rusqlite::ffi::SQLITE_STMTSTATUS_REPREPARE,
                0,
            );
            seen.push((again, sql));
            stmt = rusqlite::ffi::sqlite3_next_stmt(db, stmt);
        }
    }
    assert!(seen.len() >= 8, "{seen:#?}");
    let compiled_again: Vec<_> = seen.iter().filter(|(n, _)| *n > 0).collect();
    assert!(compiled_again.is_empty(), "{compiled_again:#?}");
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
    assert_eq!(j.prune(now - RETENTION).unwrap().cycles, 1);
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

/// A recommendation reads one volume's conflicts, the cycles they name and its locked space
/// by index; each read answers what the whole-table reads filtered to the volume answer.
#[test]
fn a_volumes_conflict_cycles_and_locked_space_are_the_whole_tables_filtered_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let volumes = ["v", "w"];
    for (i, volume) in (0..12).map(|i| (i, volumes[i % 2])) {
        let id = format!("y{i:02}");
        let mut c = cycle(&id, &format!("2027-01-{:02}T01:00:00Z", i + 1));
        c.volume = volume.into();
        c.backing_snapshot = format!("snapwarden.w.{id}");
        c.clones = vec![CloneLun {
            source: format!("/vol/{volume}/lun0"),
            path: format!("/vol/{volume}/snapwarden.w.{id}.lun0"),
        }];
        assert!(j.insert_cycle(&c, c.create_at).unwrap());
        if matches!(i, 1 | 2 | 7) {
            // Switched to FlexClone and released, as the rule reads it.
            c.clone_kind = CloneKind::FlexClone;
            c.released_at = Some(c.create_at + TimeDelta::hours(3));
            j.update_cycle(&c).unwrap();
        }
        // Two conflicts of some cycles, none of others; one naming a cycle never journaled,
        // one naming none.
        for k in 0..(i % 3) {
            let conflict = ObservedConflict {
                kind: ConflictKind::Locked,
                cluster: "c".into(),
                svm: "svm1".into(),
                volume: volume.into(),
                window: Some("w".into()),
                cycle: Some(if i == 5 { "gone".into() } else { id.clone() }),
                at: c.create_at + TimeDelta::hours(k as i64 + 1),
                detail: String::new(),
                key: format!("locked:{id}:{k}"),
            };
            assert!(j.record_conflict(&conflict).unwrap());
        }
        if i % 3 == 0 {
            j.record_locked_space(&LockedSpace {
                cycle_id: id.clone(),
                cluster: "c".into(),
                svm: "svm1".into(),
                volume: volume.into(),
                snapshot: c.backing_snapshot.clone(),
                bytes: 4096 * (i as u64 + 1),
                at: c.create_at,
            })
            .unwrap();
        }
    }
    j.record_conflict(&ObservedConflict {
        kind: ConflictKind::ChainConflict,
        cluster: "c".into(),
        svm: "svm1".into(),
        volume: "v".into(),
        window: None,
        cycle: None,
        at: t("2027-02-01T00:00:00Z"),
        detail: String::new(),
        key: "chain:none".into(),
    })
    .unwrap();
    let space = j.locked_space().unwrap();
    for volume in volumes {
        let mut ids: Vec<String> = j
            .volume_conflicts("c", "svm1", volume)
            .unwrap()
            .into_iter()
            .filter_map(|c| c.cycle)
            .collect();
        ids.sort();
        ids.dedup();
        // Each cycle's end is what its whole record says; a cycle never journaled has none.
        let (mut found, mut flexclone) = (0, 0);
        for id in &ids {
            let end = j.cycle_end(id).unwrap();
            let whole = j.cycle(id).unwrap();
            assert_eq!(end, whole.as_ref().map(CycleEnd::from), "{id}");
            found += usize::from(end.is_some());
            flexclone += usize::from(end.is_some_and(|e| e.flexclone && e.released_at.is_some()));
        }
        assert!(found > 0 && flexclone > 0);
        let mine: Vec<LockedSpace> = space
            .iter()
            .filter(|l| l.volume == volume)
            .cloned()
            .collect();
        assert!(!mine.is_empty());
        assert_eq!(j.volume_locked_space("c", "svm1", volume).unwrap(), mine);
    }
    // Read in two parts by row id, a volume's conflicts are its whole list in the same order.
    for volume in volumes {
        let whole = j.volume_conflicts("c", "svm1", volume).unwrap();
        let all = j.volume_conflicts_after("c", "svm1", volume, 0).unwrap();
        let cut = all[all.len() / 2].0;
        let mut parts = j.volume_conflicts_after("c", "svm1", volume, -1).unwrap();
        parts.truncate(all.len() / 2 + 1);
        parts.extend(j.volume_conflicts_after("c", "svm1", volume, cut).unwrap());
        parts.sort_by_key(|(id, c)| (c.at, *id));
        let parts: Vec<ObservedConflict> = parts.into_iter().map(|(_, c)| c).collect();
        assert_eq!(parts, whole);
    }
    assert!(j.volume_locked_space("c", "other", "v").unwrap().is_empty());
}

/// An ephemeral journal groups writes into batches: each write is read back at once on the
/// journal itself, a refused insert leaves the rest of its batch, a batch fills on every kind
/// of write (and commits from inside it: a write still holding the connection then would never
/// return), and everything is in the file after the journal is dropped (`simulate --state-dir`
/// keeps it for `history`).
#[test]
fn an_ephemeral_journal_batches_its_writes_and_keeps_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    j.ephemeral().unwrap();
    let n = ephemeral::BATCH + ephemeral::BATCH / 2;
    // Seven writes a round: over ten commits, the write that fills a batch is each kind in turn.
    let (done, finished) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        for i in 0..n {
            let start = t("2027-01-01T00:00:00Z") + TimeDelta::minutes(i as i64);
            let mut c = cycle(&format!("b{i:04}"), &start.to_rfc3339());
            assert!(j.insert_cycle(&c, start).unwrap());
            // The same occurrence again: refused, and nothing of the batch is lost.
            let again = cycle(&format!("x{i:04}"), &start.to_rfc3339());
            assert!(!j.insert_cycle(&again, start).unwrap());
            c.state = CycleState::Released;
            c.released_at = Some(start);
            j.update_cycle(&c).unwrap();
            let (kind, name) = (ObjectKind::Snapshot, &c.backing_snapshot);
            let (state, uuid) = (ObjectState::Deleted, Some("u"));
            j.set_object(&c.id, kind, name, uuid, state, start).unwrap();
            let (action, ok) = (ActionKind::DeleteSnapshot, ActionOutcome::Ok);
            j.record_action(Some(&c.id), start, action, name, ok, "")
                .unwrap();
            assert!(j.record_conflict(&locked(&c, start)).unwrap());
            j.record_locked_space(&LockedSpace {
                cycle_id: c.id.clone(),
                cluster: c.cluster.clone(),
                svm: c.svm.clone(),
                volume: c.volume.clone(),
                snapshot: c.backing_snapshot.clone(),
                bytes: 4096,
                at: start,
            })
            .unwrap();
            assert_eq!(j.cycle(&c.id).unwrap().as_ref(), Some(&c));
        }
        assert!(j.health().writable());
        done.send(()).unwrap();
        j
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(300))
        .expect("every write returns");
    let j = writer.join().unwrap();
    drop(j);
    let reopened = Journal::open(dir.path()).unwrap();
    let all = reopened
        .recent_cycles(DateTime::<Utc>::MIN_UTC, None, 10 * n)
        .unwrap();
    assert_eq!(all.len(), n);
    assert!(all.iter().all(|c| c.id.starts_with('b')));
}

/// The daily prune deletes by age through indexes: SQLite's own query plan for each of its
/// statements scans none of the tables that grow with every cycle and searches cycles and
/// actions by age, not by state (a search by state is every released cycle: each day's prune
/// cost the whole history).
#[test]
fn the_prune_finds_what_it_deletes_through_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path()).unwrap();
    let conn = j.lock();
    for sql in super::PRUNE {
        let mut plan = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let steps: Vec<String> = plan
            .query_map([0i64], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for step in &steps {
            // locked_space holds one row per locked cycle, a few per volume a year.
            let scan = step.starts_with("SCAN") && step != "SCAN locked_space";
            assert!(!scan && !step.contains("(state=?)"), "{sql}: {steps:?}");
        }
        if sql.contains("FROM cycles") {
            assert!(
                steps.iter().any(|s| s.contains("cycles_by_create")),
                "{sql}: {steps:?}"
            );
        }
    }
}
