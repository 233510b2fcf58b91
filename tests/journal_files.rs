//! The journal's file through the binary: `run` refuses a damaged journal, a foreign SQLite
//! database and a journal of a mismatched schema at start (exit 2, the file named, what to do),
//! instead of starting to serve, and leaves each file as it was (SHA-256 before and after, no side
//! files); `history` refuses the foreign one likewise.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use rusqlite::Connection;
use sha2::{Digest, Sha256};
use snapwarden::agent::journal::{Journal, FILE_NAME};

mod process_support;

use process_support::{free_port, output_within, quiet_policy};

/// How long a refusal at start may take: it is immediate; the bound only covers a loaded machine.
const BOUND: Duration = Duration::from_secs(30);

/// SHA-256 of the journal file and the names of the files beside it.
fn fingerprint(state: &Path) -> (String, Vec<String>) {
    let bytes = std::fs::read(state.join(FILE_NAME)).unwrap();
    let hex = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut beside: Vec<String> = std::fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != FILE_NAME)
        .collect();
    beside.sort();
    (hex, beside)
}

/// `snapwarden run` on a quiet policy over `state`: its output once it exits (within [`BOUND`]; an
/// agent that started serving instead would not exit).
fn run(dir: &Path, state: &Path) -> Output {
    let port = free_port();
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, quiet_policy(port, "")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_snapwarden"));
    cmd.args(["run", "--config"])
        .arg(&policy)
        .arg("--state-dir")
        .arg(state);
    output_within(cmd, BOUND)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A closed journal made by this build in `state`.
fn journal(state: &Path) {
    drop(Journal::open(state).unwrap());
}

#[test]
fn run_refuses_a_journal_with_damaged_pages_and_leaves_it_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    journal(&state);
    let path = state.join(FILE_NAME);
    // Pages 2 to 4 overwritten; page 1 (header and schema) intact, so the file still opens and
    // only reading those tables would meet the damage.
    let mut bytes = std::fs::read(&path).unwrap();
    let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    assert!(bytes.len() >= 4 * page);
    bytes[page..4 * page].fill(0x5A);
    std::fs::write(&path, &bytes).unwrap();
    let before = fingerprint(&state);

    let o = run(dir.path(), &state);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "journal {} is damaged (quick_check: ",
            path.display()
        )) && err.contains("it was left untouched")
            && err.contains(&format!("mv {0} {0}.damaged", path.display())),
        "{err}"
    );
    assert_eq!(fingerprint(&state), before);
}

#[test]
fn run_and_history_leave_a_foreign_sqlite_database_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let path = state.join(FILE_NAME);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('keep');")
        .unwrap();
    drop(conn);
    let before = fingerprint(&state);

    let o = run(dir.path(), &state);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "journal {} is not a snapwarden journal (an SQLite database with 1 table(s) (notes) \
             and no snapwarden journal in it); it was left untouched",
            path.display()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(fingerprint(&state), before);

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_snapwarden"));
    cmd.args(["history", "--state-dir"]).arg(&state);
    let o = output_within(cmd, BOUND);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not a snapwarden journal"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fingerprint(&state), before);
    // Still in rollback-journal mode: never switched to WAL.
    assert_eq!(std::fs::read(&path).unwrap()[18..20], [1, 1]);
}

#[test]
fn run_names_a_journal_whose_tables_are_not_those_of_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    journal(&state);
    let conn = Connection::open(state.join(FILE_NAME)).unwrap();
    conn.pragma_update(None, "user_version", 2i64).unwrap();
    drop(conn);
    let before = fingerprint(&state);

    let o = run(dir.path(), &state);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "journal {} says schema version 2, but its tables are those of schema version {}",
            state.join(FILE_NAME).display(),
            snapwarden::agent::journal::SCHEMA_VERSION
        )) && !err.contains("duplicate column"),
        "{err}"
    );
    assert_eq!(fingerprint(&state), before);
}
