//! [`SqliteState`]: the [`StateStore`] on one SQLite file. One connection per store behind a
//! `std::sync::Mutex`; every call is one transaction run on Tokio's blocking pool. Writes begin
//! `IMMEDIATE` so that two processes sharing a file queue on the busy timeout instead of
//! failing with a lock upgrade deadlock; reads begin `DEFERRED` and see one snapshot.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mailferry_core::{
    BoxFuture, Error, ErrorKind, FolderScope, FolderStatus, ItemRecord, ItemStatus, Result,
    SourceKey, StateStore, Suspect,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

use crate::codec::{
    Failure, ITEM_COLUMNS, describe, folder_column, from_sql_u64, record_from_row, status_code,
    to_sql_u64,
};
use crate::schema;

/// How [`SqliteState::open_with`] sets the file up.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long a call waits for another process's write lock before failing transiently
    /// (default 10 s).
    pub busy_timeout: Duration,
    /// fsync every commit (`synchronous = FULL`), so that even an OS crash or power loss loses
    /// no commit. Off by default: with WAL, `NORMAL` already survives any crash of the process.
    pub sync_every_commit: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(10),
            sync_every_commit: false,
        }
    }
}

struct Db {
    conn: Mutex<Connection>,
    /// The file's path (or `:memory:`), named in every error.
    location: String,
}

/// A [`StateStore`] in a SQLite file. Cheap to clone; clones share the connection.
///
/// Calls need a Tokio runtime (they run on its blocking pool). Opening does blocking file I/O
/// once; do it before the copy starts.
#[derive(Clone)]
pub struct SqliteState {
    db: Arc<Db>,
}

impl std::fmt::Debug for SqliteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteState")
            .field("location", &self.db.location)
            .finish()
    }
}

impl SqliteState {
    /// Opens the state file at `path` with default options, creating it (mode `0600`) and its
    /// schema if needed. The parent directory must exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &SqliteOptions::default())
    }

    /// Opens the state file at `path` with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: &SqliteOptions) -> Result<Self> {
        let path = path.as_ref();
        let location = path.display().to_string();
        create_private(path)?;
        // No SQLITE_OPEN_CREATE: the file was created above with private permissions, and if it
        // vanished since, failing is better than SQLite creating it with the umask's. No URI
        // flag either, so a `?` in a path is just a character.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| Failure::Sql(e).into_error(&location, "opening"))?;
        Self::setup(conn, location, options, true)
    }

    /// A store that lives in memory and disappears when the last clone is dropped.
    pub fn in_memory() -> Result<Self> {
        let location = ":memory:".to_string();
        let conn = Connection::open_in_memory()
            .map_err(|e| Failure::Sql(e).into_error(&location, "opening"))?;
        Self::setup(conn, location, &SqliteOptions::default(), false)
    }

    fn setup(
        mut conn: Connection,
        location: String,
        options: &SqliteOptions,
        file: bool,
    ) -> Result<Self> {
        configure(&mut conn, options, file, &location)
            .and_then(|()| schema::migrate(&mut conn))
            .map_err(|f| f.into_error(&location, "opening"))?;
        Ok(SqliteState {
            db: Arc::new(Db {
                conn: Mutex::new(conn),
                location,
            }),
        })
    }

    /// The file's path, or `:memory:`.
    pub fn location(&self) -> &str {
        &self.db.location
    }

    /// The names of every migration with state in this store, sorted: what a status command
    /// lists, and what a fleet worker would choose from.
    pub fn migrations(&self) -> BoxFuture<'static, Result<Vec<String>>> {
        self.run("listing migrations".into(), |conn| {
            let tx = conn.transaction()?;
            let names = {
                let mut stmt =
                    tx.prepare_cached("SELECT DISTINCT migration FROM folders ORDER BY migration")?;
                stmt.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?
            };
            tx.commit()?;
            Ok(names)
        })
    }

    /// Runs `f` with the connection on the blocking pool and turns its failure into an error
    /// naming the file and `what` was being done.
    fn run<T, F>(&self, what: String, f: F) -> BoxFuture<'static, Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        Box::pin(async move {
            let worker = Arc::clone(&db);
            let joined = tokio::task::spawn_blocking(move || {
                // A panic inside `f` unwinds through its `Transaction`, whose drop rolls back,
                // so the connection behind a poisoned lock is consistent and still usable.
                let mut conn = worker.conn.lock().unwrap_or_else(PoisonError::into_inner);
                f(&mut conn)
            })
            .await;
            match joined {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(failure)) => Err(failure.into_error(&db.location, &what)),
                Err(e) => Err(Error::fatal(format!(
                    "state store {}: {what}: the database task failed",
                    db.location
                ))
                .with_source(e)),
            }
        })
    }
}

/// Creates the file with mode `0600` unless it exists; warns about an existing file that others
/// can read.
fn create_private(path: &Path) -> Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    match open.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(path)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(
                        path = %path.display(),
                        mode = format!("{:o}", meta.permissions().mode() & 0o777),
                        "the state file is readable by other users; it holds folder names and \
                         Message-IDs (chmod 600 it)"
                    );
                }
            }
            Ok(())
        }
        Err(e) => Err(Error::io(
            ErrorKind::Fatal,
            format!("cannot create the state file {}", path.display()),
            e,
        )),
    }
}

fn configure(
    conn: &mut Connection,
    options: &SqliteOptions,
    file: bool,
    location: &str,
) -> Result<(), Failure> {
    conn.busy_timeout(options.busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    if !file {
        return Ok(());
    }
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    let wal = mode.eq_ignore_ascii_case("wal");
    if !wal {
        // Some file systems (network mounts) cannot hold WAL's shared memory; a rollback
        // journal with NORMAL is not crash-safe, so fall back to FULL.
        tracing::warn!(
            path = location,
            journal_mode = mode,
            "WAL is not available for the state file; committing with full fsync instead"
        );
    }
    let sync = if options.sync_every_commit || !wal {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.pragma_update(None, "synchronous", sync)?;
    Ok(())
}

/// The id of the scope's row, if it exists.
fn folder_id(tx: &Transaction<'_>, scope: &FolderScope) -> Result<Option<i64>, Failure> {
    let folder = folder_column(&scope.folder)?;
    let mut stmt = tx.prepare_cached(
        "SELECT id FROM folders WHERE migration = ?1 AND folder = ?2 AND validity = ?3",
    )?;
    Ok(stmt
        .query_row(
            (&scope.migration, &folder, to_sql_u64(scope.validity)),
            |r| r.get(0),
        )
        .optional()?)
}

/// The id of the scope's row, created if needed. Looked up first, so the common case (the row
/// exists) writes nothing; the caller holds the write lock, so nobody can insert in between.
fn ensure_folder_id(tx: &Transaction<'_>, scope: &FolderScope) -> Result<i64, Failure> {
    if let Some(id) = folder_id(tx, scope)? {
        return Ok(id);
    }
    let folder = folder_column(&scope.folder)?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO folders (migration, folder, validity) VALUES (?1, ?2, ?3) RETURNING id",
    )?;
    Ok(stmt.query_row(
        (&scope.migration, &folder, to_sql_u64(scope.validity)),
        |r| r.get(0),
    )?)
}

fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

impl StateStore for SqliteState {
    fn checkpoint<'a>(
        &'a self,
        scope: &'a FolderScope,
    ) -> BoxFuture<'a, Result<Option<FolderStatus>>> {
        let what = format!("reading the checkpoint of {}", describe(scope));
        let scope = scope.clone();
        self.run(what, move |conn| {
            let tx = conn.transaction()?;
            let folder = folder_column(&scope.folder)?;
            let text: Option<String> = tx
                .query_row(
                    "SELECT checkpoint FROM folders
                     WHERE migration = ?1 AND folder = ?2 AND validity = ?3",
                    (&scope.migration, &folder, to_sql_u64(scope.validity)),
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            tx.commit()?;
            text.map(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| Failure::Corrupt(format!("the checkpoint is not valid: {e}")))
            })
            .transpose()
        })
    }

    fn set_checkpoint<'a>(
        &'a self,
        scope: &'a FolderScope,
        status: &'a FolderStatus,
    ) -> BoxFuture<'a, Result<()>> {
        let what = format!("recording the checkpoint of {}", describe(scope));
        let scope = scope.clone();
        let status = serde_json::to_string(status);
        self.run(what, move |conn| {
            let status = status.map_err(|e| Failure::Corrupt(e.to_string()))?;
            let tx = write_tx(conn)?;
            let id = ensure_folder_id(&tx, &scope)?;
            tx.execute(
                "UPDATE folders SET checkpoint = ?1 WHERE id = ?2",
                (&status, id),
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn lookup<'a>(
        &'a self,
        scope: &'a FolderScope,
        keys: &'a [SourceKey],
    ) -> BoxFuture<'a, Result<HashMap<SourceKey, ItemRecord>>> {
        let what = format!("looking up {} items of {}", keys.len(), describe(scope));
        let scope = scope.clone();
        let keys = keys.to_vec();
        self.run(what, move |conn| {
            let tx = conn.transaction()?;
            let mut found = HashMap::new();
            if let Some(id) = folder_id(&tx, &scope)? {
                // One indexed point query per key on a prepared statement: about a microsecond
                // each, and no limit on the number of keys (unlike a bound `IN (...)` list).
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {ITEM_COLUMNS} FROM items WHERE folder_id = ?1 AND key = ?2"
                ))?;
                for key in keys {
                    let record = stmt
                        .query_row((id, &key.0), |row| Ok(record_from_row(row)))
                        .optional()?
                        .transpose()?;
                    if let Some(record) = record {
                        found.insert(key, record);
                    }
                }
            }
            tx.commit()?;
            Ok(found)
        })
    }

    fn record<'a>(
        &'a self,
        scope: &'a FolderScope,
        records: &'a [ItemRecord],
    ) -> BoxFuture<'a, Result<()>> {
        if records.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        let what = format!("recording {} items of {}", records.len(), describe(scope));
        let scope = scope.clone();
        let records = records.to_vec();
        self.run(what, move |conn| {
            let tx = write_tx(conn)?;
            let id = ensure_folder_id(&tx, &scope)?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO items
                         (folder_id, key, checksum, size, fingerprint, target_key, status, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (folder_id, key) DO UPDATE SET
                         checksum = excluded.checksum, size = excluded.size,
                         fingerprint = excluded.fingerprint, target_key = excluded.target_key,
                         status = excluded.status, reason = excluded.reason",
                )?;
                for r in &records {
                    stmt.execute((
                        id,
                        &r.key.0,
                        r.checksum.as_ref().map(|c| &c.as_bytes()[..]),
                        to_sql_u64(r.size),
                        &r.fingerprint,
                        r.target_key.as_ref().map(|k| &k.0),
                        status_code(r.status),
                        &r.reason,
                    ))?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn records<'a>(
        &'a self,
        scope: &'a FolderScope,
        status: Option<ItemStatus>,
    ) -> BoxFuture<'a, Result<Vec<ItemRecord>>> {
        let what = format!("listing the items of {}", describe(scope));
        let scope = scope.clone();
        self.run(what, move |conn| {
            let tx = conn.transaction()?;
            let mut out = Vec::new();
            if let Some(id) = folder_id(&tx, &scope)? {
                // Sorted by key like MemoryState: SQLite's BINARY collation compares UTF-8 bytes,
                // which is Rust's `String` order.
                let base = format!("SELECT {ITEM_COLUMNS} FROM items WHERE folder_id = ?1");
                let mut rows_of = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
                    let mut stmt = tx.prepare_cached(sql)?;
                    let mut rows = stmt.query(params)?;
                    while let Some(row) = rows.next()? {
                        out.push(record_from_row(row)?);
                    }
                    Ok::<(), Failure>(())
                };
                match status {
                    Some(s) => rows_of(
                        &format!("{base} AND status = ?2 ORDER BY key"),
                        &[&id, &status_code(s)],
                    )?,
                    None => rows_of(&format!("{base} ORDER BY key"), &[&id])?,
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn validities<'a>(&'a self, scope: &'a FolderScope) -> BoxFuture<'a, Result<Vec<u64>>> {
        let what = format!("listing the validities of {}", describe(scope));
        let scope = scope.clone();
        self.run(what, move |conn| {
            let tx = conn.transaction()?;
            let folder = folder_column(&scope.folder)?;
            let values = {
                let mut stmt = tx.prepare_cached(
                    "SELECT validity FROM folders WHERE migration = ?1 AND folder = ?2",
                )?;
                stmt.query_map((&scope.migration, &folder), |r| r.get::<_, i64>(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()?
            };
            tx.commit()?;
            // Sorted after decoding: u64 values above i64::MAX are stored negative.
            let mut values: Vec<u64> = values.into_iter().map(crate::codec::from_sql_u64).collect();
            values.sort_unstable();
            Ok(values)
        })
    }

    fn suspects<'a>(&'a self, scope: &'a FolderScope) -> BoxFuture<'a, Result<Vec<Suspect>>> {
        let what = format!("listing the suspect appends of {}", describe(scope));
        let scope = scope.clone();
        self.run(what, move |conn| {
            let tx = conn.transaction()?;
            let mut out = Vec::new();
            if let Some(id) = folder_id(&tx, &scope)? {
                let mut stmt = tx.prepare_cached(
                    "SELECT id, key, checksum, size, high_water FROM suspects
                     WHERE folder_id = ?1 ORDER BY id",
                )?;
                let mut rows = stmt.query([id])?;
                while let Some(row) = rows.next()? {
                    let key: String = row.get(1)?;
                    let blob: Vec<u8> = row.get(2)?;
                    let bytes: [u8; 32] = blob.as_slice().try_into().map_err(|_| {
                        Failure::Corrupt(format!(
                            "the checksum of suspect {key} is {} bytes, not 32",
                            blob.len()
                        ))
                    })?;
                    out.push(Suspect {
                        id: from_sql_u64(row.get(0)?),
                        key: SourceKey(key),
                        checksum: mailferry_core::Checksum::from_bytes(bytes),
                        size: from_sql_u64(row.get(3)?),
                        high_water: row.get::<_, Option<i64>>(4)?.map(from_sql_u64),
                    });
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn add_suspects<'a>(
        &'a self,
        scope: &'a FolderScope,
        suspects: &'a [Suspect],
    ) -> BoxFuture<'a, Result<()>> {
        if suspects.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        let what = format!(
            "recording {} suspect appends of {}",
            suspects.len(),
            describe(scope)
        );
        let scope = scope.clone();
        let suspects = suspects.to_vec();
        self.run(what, move |conn| {
            let tx = write_tx(conn)?;
            let id = ensure_folder_id(&tx, &scope)?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO suspects (folder_id, key, checksum, size, high_water)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for s in &suspects {
                    stmt.execute((
                        id,
                        &s.key.0,
                        &s.checksum.as_bytes()[..],
                        to_sql_u64(s.size),
                        s.high_water.map(to_sql_u64),
                    ))?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn remove_suspects<'a>(
        &'a self,
        scope: &'a FolderScope,
        ids: &'a [u64],
    ) -> BoxFuture<'a, Result<()>> {
        if ids.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        let what = format!(
            "removing {} suspect appends of {}",
            ids.len(),
            describe(scope)
        );
        let scope = scope.clone();
        let ids = ids.to_vec();
        self.run(what, move |conn| {
            let tx = write_tx(conn)?;
            if let Some(folder) = folder_id(&tx, &scope)? {
                let mut stmt =
                    tx.prepare_cached("DELETE FROM suspects WHERE folder_id = ?1 AND id = ?2")?;
                for id in &ids {
                    stmt.execute((folder, to_sql_u64(*id)))?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }
}
