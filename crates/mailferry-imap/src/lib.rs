//! # mailferry-imap
//!
//! IMAP as a mailferry [`Source`](mailferry_core::Source) and
//! [`Target`](mailferry_core::Target): async-imap 0.12 on tokio, rustls (ring provider), a pool
//! of sessions per account.
//!
//! Design decisions, and why:
//! - **async-imap for parsing and login, our own command loop for everything else** (`conn`):
//!   its typed commands hide NO/BAD answers to `UID FETCH`, drop unsolicited responses beyond
//!   100, wait for a continuation per APPEND and cannot pipeline. Our loop tags commands itself,
//!   sees every response, and bounds every read and write with a timeout.
//! - **Round trips are the cost** on a real link: MULTIAPPEND with LITERAL+ stores a whole batch
//!   in one round trip; folder status comes with the LIST (LIST-STATUS); folder creation and
//!   flag stores are pipelined.
//! - **A pool, checked out per operation** (`pool`): listing releases its session between UID
//!   ranges, so the copier can keep a listing open while it fetches and appends; a session that
//!   saw any error is dropped, never reused.
//! - **Nothing lost silently**: a UID asked for and not returned is an item error; a refused
//!   message in an atomic MULTIAPPEND is found by appending one by one.
//! - **Secure by default**: TLS verified against webpki roots (plus an optional CA file);
//!   plaintext only when chosen; STARTTLS never falls back; secrets are redacted in `Debug`.
//!
//! ```no_run
//! use mailferry_imap::{Auth, ImapConfig, ImapStore, Security};
//! # async fn run() -> mailferry_core::Result<()> {
//! let config = ImapConfig::new(
//!     "imap.example.org",
//!     993,
//!     Security::Tls,
//!     Auth::Login { user: "ann".into(), password: "secret".into() },
//! );
//! let store = ImapStore::connect(config).await?; // bad credentials fail here, fatally
//! let folders = mailferry_core::Source::list_folders(&store).await?;
//! # let _ = folders;
//! # Ok(()) }
//! ```

mod append;
mod auth;
pub mod config;
mod conn;
mod fetch;
mod folders;
mod handshake;
mod pool;
mod proto;
mod reader;
mod source;
mod target;
mod transport;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use mailferry_core::{Capabilities, Folder, FolderPath, Result};

pub use config::{Auth, Compression, ImapConfig, Secret, Security, TokenProvider};
pub use wire::WireTrace;

/// The pure parsers behind the client, for the fuzz targets under `fuzz/`. Not a stable API:
/// names change with the modules they come from.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::folders::{Naming, decode_name, special_use};
    pub use crate::proto::{
        Answer, Code, Namespaces, Tagged, expand_uid_set, parse_namespace, uid_set,
    };
}

use conn::ServerInfo;
use folders::Naming;
use pool::Pool;

/// One IMAP account as a source and a target, with a pool of sessions.
pub struct ImapStore {
    pool: Pool,
    info: ServerInfo,
    naming: Naming,
    /// Server names of listed folders, for names that do not round-trip through our encoding.
    names: Mutex<HashMap<FolderPath, String>>,
    /// Folders known to exist (created or confirmed), to skip repeated CREATEs.
    created: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for ImapStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapStore")
            .field("endpoint", &self.pool.config().label())
            .field("delimiter", &self.naming.delimiter)
            .field("prefix", &self.naming.prefix)
            .finish()
    }
}

impl ImapStore {
    /// Connects and logs in once, so that bad credentials or an untrusted certificate fail here
    /// (fatal errors naming `user@host:port`); learns capabilities, namespace and delimiter.
    /// Transient connection failures are retried with backoff.
    pub async fn connect(config: ImapConfig) -> Result<Self> {
        let pool = Pool::new(config)?;
        let (mut conn, info) = pool.open().await?;
        let mut naming = Naming::default();
        if let Some(ns) = &info.namespaces {
            if let Some((prefix, delimiter)) = &ns.personal {
                naming.prefix = prefix.clone();
                naming.delimiter = *delimiter;
            }
            naming.foreign = ns.foreign.clone();
        }
        if naming.delimiter.is_none() {
            naming.delimiter = folders::delimiter(&mut conn).await?;
        }
        tracing::debug!(
            endpoint = %pool.config().label(),
            compressed = info.compressed,
            delimiter = ?naming.delimiter,
            prefix = %naming.prefix,
            "connected"
        );
        pool.put(conn);
        Ok(ImapStore {
            pool,
            info,
            naming,
            names: Mutex::new(HashMap::new()),
            created: Mutex::new(HashSet::new()),
        })
    }

    /// The capabilities the server advertised after login, sorted.
    pub fn server_capabilities(&self) -> Vec<String> {
        let mut caps: Vec<String> = self.info.caps.iter().cloned().collect();
        caps.sort();
        caps
    }

    /// Whether sessions run COMPRESS=DEFLATE.
    pub fn is_compressed(&self) -> bool {
        self.info.compressed
    }

    /// The server's hierarchy delimiter.
    pub fn delimiter(&self) -> Option<char> {
        self.naming.delimiter
    }

    /// The server's name for a folder: as listed, else encoded from the path.
    fn server_name(&self, path: &FolderPath) -> Result<String> {
        if let Some(name) = self.names.lock().ok().and_then(|n| n.get(path).cloned()) {
            return Ok(name);
        }
        self.naming.encode(path)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            keywords: true,
            internal_date: true,
            special_use: true,
            ordered_ids: true,
            modseq: self.info.has("CONDSTORE"),
            case_insensitive_folders: false,
            max_item_size: self.info.append_limit(),
            set_flags: true,
            delete: self.info.has("UIDPLUS"),
            folder_delimiter: self.naming.delimiter,
        }
    }

    /// Runs an idempotent operation, retrying transient failures (a pooled session that the
    /// server dropped, a cut link) on fresh sessions with exponential backoff. An error it gives
    /// up on is marked persistent, so the engine's retry layer does not retry it again.
    async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if e.is_transient() && attempt < fetch::ATTEMPTS => {
                    tracing::warn!(endpoint = %self.pool.config().label(), attempt, error = %e,
                        "{what} failed, retrying");
                    tokio::time::sleep(fetch::backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other.map_err(mailferry_core::layers::retry::give_up),
            }
        }
    }

    async fn folders(&self) -> Result<Vec<Folder>> {
        self.retry("listing folders", || self.folders_once()).await
    }

    async fn folders_once(&self) -> Result<Vec<Folder>> {
        let mut lease = self.pool.get().await?;
        let (folders, names) = folders::list(lease.conn(), &self.info, &self.naming).await?;
        lease.release();
        // A selectable folder the server listed exists: `ensure_folder` need not CREATE it
        // again, which on a no-change re-run would cost a session and a round trip per folder.
        if let Ok(mut created) = self.created.lock() {
            created.extend(
                folders
                    .iter()
                    .filter(|f| f.selectable)
                    .filter_map(|f| names.get(&f.path).cloned()),
            );
        }
        if let Ok(mut known) = self.names.lock() {
            known.extend(names);
        }
        Ok(folders)
    }
}
