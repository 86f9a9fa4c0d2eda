//! `SqliteState` on real files: persistence, permissions, the file's settings, errors that name
//! the file, and bulk speed.

use std::path::Path;
use std::time::{Duration, Instant};

use mailferry_core::{FolderPath, FolderStatus, ItemStatus, SourceKey, StateStore};
use mailferry_state::{SqliteOptions, SqliteState};

use crate::behaviour::{record, scope};

#[tokio::test]
async fn state_persists_across_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.db");
    let s = scope("ann", FolderPath::new(["Ünïcødé", "Sub"]), 5);
    let status = FolderStatus {
        count: 2,
        validity: 5,
        next_id: Some(3),
        ..FolderStatus::default()
    };
    let written = [
        record("1", ItemStatus::Done),
        record("2", ItemStatus::Pending),
    ];
    {
        let state = SqliteState::open(&path).expect("open");
        state.record(&s, &written).await.expect("record");
        state.set_checkpoint(&s, &status).await.expect("checkpoint");
    }
    let state = SqliteState::open(&path).expect("reopen");
    assert_eq!(state.checkpoint(&s).await.expect("read"), Some(status));
    assert_eq!(
        state.records(&s, None).await.expect("records"),
        written.to_vec()
    );
    assert_eq!(
        state.migrations().await.expect("migrations"),
        vec!["ann".to_string()]
    );
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn state_file_and_its_wal_and_shm_files_are_private() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.db");
    let state = SqliteState::open(&path).expect("open");
    state
        .record(
            &scope("ann", FolderPath::inbox(), 1),
            &[record("1", ItemStatus::Done)],
        )
        .await
        .expect("record");
    // The -wal and -shm files exist while the connection is open.
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.path().join(format!("state.db{suffix}"));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[tokio::test]
async fn the_file_is_in_wal_mode_at_the_current_schema_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.db");
    let _state = SqliteState::open(&path).expect("open");
    let raw = rusqlite::Connection::open(&path).expect("raw open");
    let journal: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal mode");
    assert_eq!(journal, "wal");
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 2);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_fatal_error_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are my notes, not a database\n".repeat(50)).expect("write");
    let err = SqliteState::open(&path).expect_err("not a database");
    assert!(err.is_fatal(), "{err}");
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert!(
        err.to_string().contains("not a mailferry state file"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_directory_is_a_fatal_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("no-such-dir").join("state.db");
    let err = SqliteState::open(&path).expect_err("missing directory");
    assert!(err.is_fatal(), "{err}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[tokio::test]
async fn a_file_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.db");
    drop(SqliteState::open(&path).expect("create"));
    let raw = rusqlite::Connection::open(&path).expect("raw open");
    raw.pragma_update(None, "user_version", 7).expect("bump");
    drop(raw);
    let err = SqliteState::open(&path).expect_err("newer schema");
    assert!(err.is_fatal());
    assert!(err.to_string().contains("newer mailferry"), "{err}");
}

#[tokio::test]
async fn a_write_lock_held_elsewhere_is_a_transient_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.db");
    let options = SqliteOptions {
        busy_timeout: Duration::from_millis(50),
        ..SqliteOptions::default()
    };
    let state = SqliteState::open_with(&path, &options).expect("open");
    let other = rusqlite::Connection::open(&path).expect("second connection");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the lock");
    let s = scope("ann", FolderPath::inbox(), 1);
    let err = state
        .record(&s, &[record("1", ItemStatus::Done)])
        .await
        .expect_err("locked");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("state.db"), "{err}");
    other.execute_batch("ROLLBACK").expect("release");
    state
        .record(&s, &[record("1", ItemStatus::Done)])
        .await
        .expect("works once the lock is released");
}

#[tokio::test]
async fn bulk_upsert_of_100k_records_then_lookup() {
    const N: usize = 100_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let state = SqliteState::open(dir.path().join("state.db")).expect("open");
    let s = scope("bulk", FolderPath::inbox(), 1);
    let records: Vec<_> = (0..N)
        .map(|i| record(&i.to_string(), ItemStatus::Pending))
        .collect();

    let started = Instant::now();
    state.record(&s, &records).await.expect("insert");
    let insert = started.elapsed();
    let done: Vec<_> = (0..N)
        .map(|i| record(&i.to_string(), ItemStatus::Done))
        .collect();
    let started = Instant::now();
    state.record(&s, &done).await.expect("upsert");
    let upsert = started.elapsed();
    let keys: Vec<SourceKey> = done.iter().map(|r| r.key.clone()).collect();
    let started = Instant::now();
    let found = state.lookup(&s, &keys).await.expect("lookup");
    let lookup = started.elapsed();

    let rate = |d: Duration| N as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "{N} records: insert {:.0} records/s, upsert {:.0} records/s, lookup {:.0} keys/s \
         ({} build)",
        rate(insert),
        rate(upsert),
        rate(lookup),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    assert_eq!(found.len(), N);
    assert_eq!(found[&SourceKey("99999".into())], done[99_999]);
    let pending = state
        .records(&s, Some(ItemStatus::Pending))
        .await
        .expect("pending");
    assert!(pending.is_empty(), "{} still pending", pending.len());
}
