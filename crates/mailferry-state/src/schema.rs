//! The schema, versioned with `PRAGMA user_version`: [`MIGRATIONS`] is an append-only list of
//! SQL steps, step `n` taking the file from version `n` to `n + 1`. Opening a file applies the
//! missing steps in one `IMMEDIATE` transaction, so two processes opening a new file at once
//! cannot both create the tables, and a file from a newer build is refused instead of being
//! misread.

use rusqlite::{Connection, TransactionBehavior};

use crate::codec::Failure;

/// The schema steps, in order. Never edit a released step: append a new one.
///
/// - `folders`: one row per (migration, source folder, validity token); the folder is a JSON
///   array of segments; `checkpoint` is the JSON `FolderStatus` after the last complete pass.
/// - `items`: one row per source item, clustered by folder (`WITHOUT ROWID`, so a folder's
///   items are contiguous on disk and the primary key is the table).
/// - `items_by_status`: finds a folder's pending items after a crash without a scan.
/// - step 2, `suspects`: uncertain appends declared absent and sent again, whose late commit
///   would be a surplus copy (`mailferry_core::Suspect`); few rows, read per folder per run.
///   A state file from before it gains the empty table on open.
pub(crate) const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE folders (
        id         INTEGER PRIMARY KEY,
        migration  TEXT    NOT NULL,
        folder     TEXT    NOT NULL,
        validity   INTEGER NOT NULL,
        checkpoint TEXT    NULL,
        UNIQUE (migration, folder, validity)
    );
    CREATE TABLE items (
        folder_id   INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
        key         TEXT    NOT NULL,
        checksum    BLOB    NULL,
        size        INTEGER NOT NULL,
        fingerprint TEXT    NULL,
        target_key  TEXT    NULL,
        status      INTEGER NOT NULL,
        reason      TEXT    NULL,
        PRIMARY KEY (folder_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX items_by_status ON items (folder_id, status);
",
    "
    CREATE TABLE suspects (
        id         INTEGER PRIMARY KEY,
        folder_id  INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
        key        TEXT    NOT NULL,
        checksum   BLOB    NOT NULL,
        size       INTEGER NOT NULL,
        high_water INTEGER NULL
    );
    CREATE INDEX suspects_by_folder ON suspects (folder_id);
",
];

/// Brings the schema up to date.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(Failure::NewerSchema { found, known });
    }
    let done = usize::try_from(found)
        .map_err(|_| Failure::Corrupt(format!("negative schema version {found}")))?;
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        tx.execute_batch(sql)?;
        // user_version lives in the file header and is written by this transaction, so the
        // steps and the version that says they ran commit together.
        tx.pragma_update(None, "user_version", step as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op_and_sets_the_version() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("first");
        migrate(&mut conn).expect("second");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_file_of_the_first_version_gains_the_suspects_table() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(MIGRATIONS[0]).expect("version 1");
        conn.pragma_update(None, "user_version", 1)
            .expect("set version");
        conn.execute(
            "INSERT INTO folders (migration, folder, validity) VALUES ('m', '[]', 1)",
            [],
        )
        .expect("a version-1 row");
        migrate(&mut conn).expect("migrate");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM suspects", [], |r| r.get(0))
            .expect("the new table");
        let folders: i64 = conn
            .query_row("SELECT count(*) FROM folders", [], |r| r.get(0))
            .expect("old rows");
        assert_eq!((rows, folders), (0, 1));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.pragma_update(None, "user_version", 99)
            .expect("set version");
        let err = migrate(&mut conn).expect_err("newer schema");
        assert!(matches!(err, Failure::NewerSchema { found: 99, .. }));
    }
}
