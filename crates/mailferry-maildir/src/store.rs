//! The [`Maildir`] store: paths, folder listing and the per-folder file index shared by the
//! [`Source`](mailferry_core::Source) and [`Target`](mailferry_core::Target) implementations
//! (in `source.rs` and `target.rs`).
//!
//! All file work runs on tokio's blocking pool, never on the executor's threads. Keys are file
//! unique parts, but files are renamed whenever flags change, so each folder keeps an index of
//! key → current path, filled by every scan; a lookup that misses (or finds the file gone)
//! rescans the folder once before calling the item missing.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::UNIX_EPOCH;

use futures_util::{StreamExt, stream};
use mailferry_core::{
    BoxStream, Capabilities, Error, ErrorKind, Folder, FolderPath, InternalDate, Result,
};

use crate::deliver::{FsyncPolicy, ensure_maildir, sync_dir};
use crate::layout::{self, Layout};
use crate::scan::{self, Entry};

/// How a [`Maildir`] is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildirOptions {
    /// The folder layout. `None` (the default) detects it from the directories present, and
    /// uses Maildir++ for a store without folders.
    pub layout: Option<Layout>,
    /// When written data is forced to disk (default [`FsyncPolicy::PerBatch`]).
    pub fsync: FsyncPolicy,
    /// The character between a file's unique part and its info (default `:`; some stores that
    /// must live on Windows file systems use `;` or `!`).
    pub info_separator: char,
}

impl Default for MaildirOptions {
    fn default() -> Self {
        MaildirOptions {
            layout: None,
            fsync: FsyncPolicy::PerBatch,
            info_separator: ':',
        }
    }
}

/// A Maildir (or Maildir++) store, used as a source, a target, or both. Cheap to clone; clones
/// share the store.
///
/// ```
/// use mailferry_maildir::{Layout, Maildir, MaildirOptions};
/// let dir = tempfile::tempdir()?;
/// let store = Maildir::create(dir.path().join("mail"), MaildirOptions::default())?;
/// assert_eq!(store.layout(), Layout::MaildirPlusPlus);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Maildir {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) layout: Layout,
    pub(crate) options: MaildirOptions,
    /// Folder → directory as last listed (covers names that only decode literally).
    dirs: Mutex<HashMap<FolderPath, PathBuf>>,
    /// Folder directory → key → file.
    files: Mutex<HashMap<PathBuf, HashMap<String, PathBuf>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps are caches that are rebuilt on a miss; a poisoned one is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Maildir {
    /// Opens an existing store. A missing root is a fatal error.
    pub fn open(root: impl Into<PathBuf>, options: MaildirOptions) -> Result<Self> {
        let root = root.into();
        if !root.is_dir() {
            return Err(Error::fatal(format!(
                "no Maildir at {}: the directory does not exist",
                root.display()
            )));
        }
        let detected = layout::detect(&root).map_err(|e| {
            Error::io(
                ErrorKind::Fatal,
                format!("reading the Maildir {}", root.display()),
                e,
            )
        })?;
        let layout = match (options.layout, detected) {
            (Some(wanted), Some(found)) if wanted != found => {
                tracing::warn!(root = %root.display(), ?wanted, ?found, "the Maildir looks like another layout than configured; using the configured one");
                wanted
            }
            (Some(wanted), _) => wanted,
            (None, found) => found.unwrap_or_default(),
        };
        Ok(Maildir {
            inner: Arc::new(Inner {
                root,
                layout,
                options,
                dirs: Mutex::default(),
                files: Mutex::default(),
            }),
        })
    }

    /// Opens a store, creating its root and INBOX (`cur/new/tmp`, mode 0700) where missing.
    pub fn create(root: impl Into<PathBuf>, options: MaildirOptions) -> Result<Self> {
        let root = root.into();
        ensure_maildir(&root).map_err(|e| {
            Error::io(
                ErrorKind::Fatal,
                format!("creating the Maildir {}", root.display()),
                e,
            )
        })?;
        Self::open(root, options)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The layout in use.
    pub fn layout(&self) -> Layout {
        self.inner.layout
    }

    /// The directory that holds `folder`. Always inside the root; a name with no encoding (an
    /// empty segment) is an item error.
    pub fn folder_dir(&self, folder: &FolderPath) -> Result<PathBuf> {
        self.inner.folder_dir(folder)
    }

    pub(crate) fn capabilities() -> Capabilities {
        Capabilities {
            keywords: true,
            internal_date: true,
            special_use: true,
            ordered_ids: false,
            modseq: true,
            case_insensitive_folders: false,
            max_item_size: None,
            set_flags: true,
            delete: true,
            // Folder names are escaped on disk: any character goes.
            folder_delimiter: None,
        }
    }
}

/// Runs blocking file work off the executor. A panic there is reported, not propagated.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Error::transient(format!(
            "the Maildir task {what} failed unexpectedly: {e}"
        )))
    })
}

/// Streams `f` over `items`, `chunk` items per blocking task, keeping order; the next chunk is
/// read while the consumer works on the current one.
pub(crate) fn blocking_chunks<T, R, F>(
    items: Vec<T>,
    chunk: usize,
    f: F,
) -> BoxStream<'static, Result<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Option<Result<R>> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let mut chunks = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(chunk.max(1)).collect::<Vec<T>>());
    }
    let stream = stream::iter(chunks)
        .map(move |chunk| {
            let f = Arc::clone(&f);
            blocking("reading messages", move || {
                Ok(chunk.into_iter().filter_map(|t| f(t)).collect::<Vec<_>>())
            })
        })
        .buffered(2)
        .flat_map(|r| stream::iter(r.unwrap_or_else(|e| vec![Err(e)])));
    Box::pin(stream)
}

/// A file's mtime as an internal date (whole seconds, rounded down).
pub(crate) fn internal_date(meta: &std::fs::Metadata) -> Option<InternalDate> {
    let t = meta.modified().ok()?;
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => {
            let d = e.duration();
            -(d.as_secs() as i64) - i64::from(d.subsec_nanos() > 0)
        }
    };
    Some(InternalDate::from_timestamp(secs))
}

impl Inner {
    pub(crate) fn folder_dir(&self, folder: &FolderPath) -> Result<PathBuf> {
        if folder.is_inbox() {
            return Ok(self.root.clone());
        }
        if let Some(dir) = lock(&self.dirs).get(folder) {
            return Ok(dir.clone());
        }
        let relative = layout::relative_dir(folder, self.layout).map_err(|reason| {
            Error::item(format!(
                "folder {folder:?} cannot be stored in a Maildir: {reason}"
            ))
        })?;
        // The encoding cannot produce anything but plain names; this keeps it that way.
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(Error::fatal(format!(
                "folder {folder:?} encoded to {}, which would leave the Maildir root",
                relative.display()
            )));
        }
        Ok(self.root.join(relative))
    }

    pub(crate) fn separator(&self) -> char {
        self.options.info_separator
    }

    pub(crate) fn sync(&self) -> bool {
        self.options.fsync != FsyncPolicy::Never
    }

    /// Every folder with its status, INBOX first.
    pub(crate) fn list_folders(&self) -> Result<Vec<Folder>> {
        let io = |what: &Path| {
            let what = what.display().to_string();
            move |e| Error::io(ErrorKind::Fatal, format!("listing folders in {what}"), e)
        };
        let found = layout::list_dirs(&self.root, self.layout).map_err(io(&self.root))?;
        let mut folders = vec![Folder::new(
            FolderPath::inbox(),
            scan::status(&self.root, self.separator()).map_err(io(&self.root))?,
        )];
        let mut dirs: HashMap<FolderPath, PathBuf> = HashMap::new();
        for d in found {
            let mut path = d.path.clone();
            if path.is_inbox() || dirs.contains_key(&path) {
                if !d.selectable {
                    // A container for children (fs `INBOX/` holding `INBOX/Sub`): nothing to list.
                    continue;
                }
                path = self.alternative_path(&d, &dirs);
                tracing::warn!(dir = %d.dir.display(), decoded = %d.path, listed = %path, "this directory's name decodes to a folder that is already listed; it is listed under its on-disk name");
            }
            let status = if d.selectable {
                scan::status(&d.dir, self.separator()).map_err(io(&d.dir))?
            } else {
                Default::default()
            };
            let mut folder = Folder::new(path.clone(), status);
            folder.selectable = d.selectable;
            folders.push(folder);
            dirs.insert(path, d.dir);
        }
        *lock(&self.dirs) = dirs;
        folders[1..].sort_by(|a, b| a.path.cmp(&b.path));
        layout::infer_special_use(&mut folders);
        Ok(folders)
    }

    /// A path for a folder directory whose decoded name is taken (by INBOX or by another
    /// directory that decodes alike): its on-disk name as the last segment (the whole name in
    /// Maildir++), numbered if even that is taken, so its mail is still listed.
    fn alternative_path(
        &self,
        found: &layout::FoundDir,
        taken: &HashMap<FolderPath, PathBuf>,
    ) -> FolderPath {
        let raw = found
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = match self.layout {
            Layout::MaildirPlusPlus => None,
            Layout::Fs => found.path.parent(),
        };
        (1..)
            .map(|n| {
                let name = if n == 1 {
                    raw.clone()
                } else {
                    format!("{raw} ({n})")
                };
                match &parent {
                    Some(p) => p.child(name),
                    None => FolderPath::new([name]),
                }
            })
            .find(|p| !p.is_inbox() && !taken.contains_key(p))
            .unwrap_or_else(|| FolderPath::new([raw]))
    }

    /// Creates the folder's directories where missing, syncing the directories that gained an
    /// entry when the policy asks for it.
    pub(crate) fn ensure_folder(&self, folder: &FolderPath) -> Result<()> {
        let dir = self.folder_dir(folder)?;
        let complete = ["cur", "new", "tmp"].iter().all(|d| dir.join(d).is_dir());
        if !complete {
            let err = |e| {
                Error::io(
                    ErrorKind::Item,
                    format!("creating folder {folder} at {}", dir.display()),
                    e,
                )
            };
            ensure_maildir(&dir).map_err(err)?;
            if self.sync() {
                // The folder directory itself and every parent up to the root gained entries.
                for p in dir.ancestors().filter(|p| p.starts_with(&self.root)) {
                    sync_dir(p).map_err(err)?;
                }
            }
        }
        lock(&self.dirs).insert(folder.clone(), dir);
        Ok(())
    }

    /// Scans a folder, refreshing its file index.
    pub(crate) fn scan(&self, dir: &Path) -> std::io::Result<Vec<Entry>> {
        let entries = scan::entries(dir, self.separator())?;
        let index = entries
            .iter()
            .map(|e| (e.key.clone(), e.path.clone()))
            .collect();
        lock(&self.files).insert(dir.to_path_buf(), index);
        Ok(entries)
    }

    /// The current file of `key`: from the index, or (`fresh`, or not indexed) after a rescan.
    pub(crate) fn locate(
        &self,
        dir: &Path,
        key: &str,
        fresh: bool,
    ) -> std::io::Result<Option<PathBuf>> {
        if !fresh && let Some(p) = lock(&self.files).get(dir).and_then(|m| m.get(key)) {
            return Ok(Some(p.clone()));
        }
        self.scan(dir)?;
        Ok(lock(&self.files).get(dir).and_then(|m| m.get(key)).cloned())
    }

    /// Records files this process wrote or renamed.
    pub(crate) fn remember(&self, dir: &Path, files: impl IntoIterator<Item = (String, PathBuf)>) {
        let mut all = lock(&self.files);
        let index = all.entry(dir.to_path_buf()).or_default();
        index.extend(files);
    }

    /// Forgets deleted files.
    pub(crate) fn forget(&self, dir: &Path, keys: &[String]) {
        if let Some(index) = lock(&self.files).get_mut(dir) {
            for k in keys {
                index.remove(k);
            }
        }
    }

    /// Reads the file of `key`, following a rename (flag change) since it was indexed.
    /// `Ok(None)` when it is gone.
    pub(crate) fn read(
        &self,
        dir: &Path,
        key: &str,
    ) -> std::io::Result<Option<(PathBuf, Vec<u8>, std::fs::Metadata)>> {
        for fresh in [false, true] {
            // `locate` already rescans when the index does not know the key.
            let Some(path) = self.locate(dir, key, fresh)? else {
                return Ok(None);
            };
            match std::fs::read(&path) {
                Ok(body) => {
                    let meta = std::fs::metadata(&path)?;
                    return Ok(Some((path, body, meta)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The lock serialising `dovecot-keywords` updates of one folder. Process-wide, so two
    /// stores opened on the same root in one process also take turns.
    pub(crate) fn keyword_lock(&self, dir: &Path) -> Arc<Mutex<()>> {
        static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
        let locks = LOCKS.get_or_init(Mutex::default);
        Arc::clone(lock(locks).entry(dir.to_path_buf()).or_default())
    }
}
