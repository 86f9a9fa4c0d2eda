//! # mailferry-state
//!
//! State stores for mailferry: [`SqliteState`], the embedded default, implements
//! [`mailferry_core::StateStore`] on one SQLite file.
//!
//! Design decisions, and why:
//! - **One file, WAL, `synchronous = NORMAL`.** In WAL mode a commit is a sequential append to
//!   the `-wal` file; with `NORMAL` it is not fsynced, but it is in the operating system's page
//!   cache the moment `COMMIT` returns, so a crash or `kill -9` of the process loses nothing.
//!   Only an OS crash or power loss can lose the last few commits (never corrupt the file);
//!   [`SqliteOptions::sync_every_commit`] trades speed for that case too.
//! - **Whole batches per transaction with a prepared statement**, because the copier records
//!   per batch and SQLite's cost is per transaction, not per row.
//! - **Blocking calls off the executor.** The connection sits behind a `std::sync::Mutex` and
//!   every call runs on `tokio::task::spawn_blocking`, so a slow disk never stalls the async
//!   pipeline.
//! - **No process-global state; the unit of work is a migration** (one source mailbox → target
//!   mailbox pair, named by the caller). The schema — `folders` keyed by (migration, folder,
//!   validity) and `items` keyed by (folder, source key) — maps one to one onto PostgreSQL, so a
//!   fleet store can follow with the same tables plus a claims table.
//! - **Nothing secret is stored.** Passwords and tokens never reach the state store; the
//!   migration name is chosen by the caller and must not contain secrets (build it from user
//!   names and hosts, never from a URL with credentials). The file is still created `0600`
//!   (and SQLite gives its `-wal`/`-shm` files the database's permissions), because folder names
//!   and Message-IDs are private.
//!
//! ```
//! use mailferry_core::{FolderPath, FolderScope, FolderStatus, StateStore};
//! use mailferry_state::SqliteState;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let state = SqliteState::open(dir.path().join("state.sqlite"))?;
//! let scope = FolderScope { migration: "ann@old → ann@new".into(), folder: FolderPath::inbox(), validity: 7 };
//! let status = FolderStatus { count: 3, validity: 7, ..FolderStatus::default() };
//! state.set_checkpoint(&scope, &status).await?;
//! assert_eq!(state.checkpoint(&scope).await?, Some(status));
//! # Ok::<(), mailferry_core::Error>(())
//! # }).unwrap();
//! ```

mod codec;
mod schema;
mod sqlite;

pub use sqlite::{SqliteOptions, SqliteState};
