//! [`Source`] and [`Target`] for [`Mbox`]. File I/O is blocking, so every operation runs on
//! tokio's blocking pool and streams its results through a bounded channel: a reader is at most
//! [`CHANNEL_DEPTH`] messages ahead of its consumer, whatever the size of the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use mailferry_core::normalise::wire_len;
use mailferry_core::{
    AppendOutcome, BoxFuture, BoxStream, CanonicalItem, Capabilities, Checkpoint, Error, ErrorKind,
    ExistingItem, Folder, FolderPath, HeaderFacts, Item, ItemMeta, Result, Source, SourceKey,
    SpecialUse, Target, TargetKey,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::layout::FolderFile;
use crate::scan::{Message, Scanner};
use crate::store::{Inner, Mbox, io_error, open_input, resume_offset};
use crate::{takeout, write};

/// Messages (or listings) a blocking reader may run ahead of its consumer.
pub const CHANNEL_DEPTH: usize = 16;

type Sender<T> = mpsc::Sender<Result<T>>;

/// Runs `work` on the blocking pool when the stream is first polled and yields what it sends.
/// A panic in `work` ends the stream with a fatal error, never with a silent early end (which
/// the copier would take for a complete listing).
fn blocking_stream<T, F>(work: F) -> BoxStream<'static, Result<T>>
where
    T: Send + 'static,
    F: FnOnce(&Sender<T>) + Send + 'static,
{
    enum State<F, T> {
        Idle(F),
        Running(mpsc::Receiver<Result<T>>, Option<JoinHandle<()>>),
        Done,
    }
    Box::pin(stream::unfold(State::Idle(work), |state| async move {
        let (mut rx, mut handle) = match state {
            State::Idle(work) => {
                let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
                let handle = tokio::task::spawn_blocking(move || work(&tx));
                (rx, Some(handle))
            }
            State::Running(rx, handle) => (rx, handle),
            State::Done => return None,
        };
        if let Some(next) = rx.recv().await {
            return Some((next, State::Running(rx, handle)));
        }
        match handle.take()?.await {
            Ok(()) => None,
            Err(e) => Some((
                Err(Error::fatal(format!(
                    "the mbox reader stopped unexpectedly: {e}"
                ))),
                State::Done,
            )),
        }
    }))
}

fn capabilities() -> Capabilities {
    Capabilities {
        keywords: true,
        internal_date: true,
        special_use: true,
        ordered_ids: true,
        ..Capabilities::default()
    }
}

fn key_offset(key: &str, folder: &FolderPath) -> Result<u64> {
    key.parse()
        .map_err(|_| Error::item(format!("{key:?} is not an mbox offset (in {folder})")))
}

impl Mbox {
    fn file_of(&self, folder: &FolderPath) -> Result<(FolderFile, PathBuf)> {
        let entry = self.inner.resolve(folder)?;
        let path = entry
            .file
            .clone()
            .ok_or_else(|| Error::item(format!("{folder} holds no messages")))?;
        Ok((entry, path))
    }

    /// Opens the scanner for `folder`'s file at offset 0. A missing file is about that folder
    /// (an item error, as every backend reports a missing folder); any other failure is fatal.
    fn scanner(inner: &Inner, path: &Path, gzip: bool, folder: &FolderPath) -> Result<Scanner> {
        let input = open_input(path, gzip).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                ErrorKind::Item
            } else {
                ErrorKind::Fatal
            };
            io_error(
                kind,
                format!("opening {} for folder {folder}", path.display()),
                e,
            )
        })?;
        Ok(Scanner::new(input, 0, inner.options.variant))
    }
}

fn read_error(path: &Path, e: std::io::Error) -> Error {
    io_error(ErrorKind::Item, format!("reading {}", path.display()), e)
}

/// Sends every message the scanner yields (through `keep`) as `T`; stops when the consumer
/// is gone.
fn scan_all<T>(
    mut scanner: Scanner,
    want_body: bool,
    path: &Path,
    tx: &Sender<T>,
    mut keep: impl FnMut(Message) -> Option<T>,
) {
    loop {
        let next = match scanner.next_message(want_body) {
            Ok(Some(m)) => keep(m).map(Ok),
            Ok(None) => return,
            Err(e) => Some(Err(read_error(path, e))),
        };
        let failed = matches!(next, Some(Err(_)));
        if let Some(next) = next
            && tx.blocking_send(next).is_err()
        {
            return;
        }
        if failed {
            return;
        }
    }
}

impl Source for Mbox {
    fn capabilities(&self) -> Capabilities {
        capabilities()
    }

    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || inner.list_folders())
                .await
                .map_err(|e| Error::fatal(format!("listing mbox folders failed: {e}")))?
        })
    }

    fn list_items<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<Checkpoint>,
    ) -> BoxStream<'a, Result<ItemMeta>> {
        let inner = Arc::clone(&self.inner);
        let folder = folder.clone();
        blocking_stream(move |tx: &Sender<ItemMeta>| {
            let setup = || -> Result<Option<(Scanner, PathBuf)>> {
                let (entry, path) = Mbox {
                    inner: Arc::clone(&inner),
                }
                .file_of(&folder)?;
                let mut scanner = Mbox::scanner(&inner, &path, entry.gzip, &folder)?;
                if let Some(after) = after.filter(|_| !entry.gzip) {
                    match resume_offset(&path, after.next_id).map_err(|e| read_error(&path, e))? {
                        None => return Ok(None),
                        Some(offset) => scanner.seek(offset).map_err(|e| read_error(&path, e))?,
                    }
                }
                Ok(Some((scanner, path)))
            };
            let (scanner, path) = match setup() {
                Ok(Some(found)) => found,
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            let labels = inner.options.gmail_labels;
            scan_all(scanner, false, &path, tx, |m| {
                let mut flags = m.flags;
                if labels
                    && !takeout::apply_labels(m.gmail_labels.as_deref(), &mut flags)
                        .contains(&folder)
                {
                    return None;
                }
                Some(ItemMeta {
                    key: SourceKey(m.offset.to_string()),
                    size: m.size,
                    flags,
                    internal_date: m.date,
                })
            });
        })
    }

    fn fetch<'a>(
        &'a self,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        let store = self.clone();
        let folder = folder.clone();
        blocking_stream(move |tx: &Sender<Item>| {
            let (entry, path) = match store.file_of(&folder) {
                Ok(found) => found,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            let mut scanner = match Mbox::scanner(&store.inner, &path, entry.gzip, &folder) {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            // After an I/O error the reader's position is unknown: the remaining items are
            // reported failed (each by key) rather than left out.
            let mut broken: Option<String> = None;
            for meta in items {
                let body = match &broken {
                    Some(why) => Err(Error::item(format!(
                        "not read after an earlier error: {why}"
                    ))),
                    None => match key_offset(&meta.key.0, &folder)
                        .map_err(|e| FetchError::Missing(e.to_string()))
                        .and_then(|offset| read_at(&mut scanner, entry.gzip, offset))
                    {
                        Ok(m) => Ok(m.body.unwrap_or_default()),
                        Err(FetchError::Missing(why)) => {
                            Err(Error::item(format!("{}: {why}", path.display())))
                        }
                        Err(FetchError::Io(e)) => {
                            let err = read_error(&path, e);
                            broken = Some(err.to_string());
                            Err(err)
                        }
                    },
                };
                let result = match body {
                    Ok(body) => Ok(Item {
                        folder: folder.clone(),
                        body: Bytes::from(body),
                        meta,
                    }),
                    Err(e) => Err(e.with_item(meta.key.clone())),
                };
                if tx.blocking_send(result).is_err() {
                    return;
                }
            }
        })
    }
}

/// A read-back: the scanner, whether the file is gzip, its path, and the keys by offset.
type ReadBackPlan = (Scanner, bool, PathBuf, Vec<(u64, TargetKey)>);

/// Why one message could not be read.
enum FetchError {
    /// Nothing (or not a message) at that key: this item only.
    Missing(String),
    /// The file could not be read.
    Io(std::io::Error),
}

impl From<std::io::Error> for FetchError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
                FetchError::Missing(e.to_string())
            }
            _ => FetchError::Io(e),
        }
    }
}

/// Reads the message whose `From ` line is at `key`: a seek for plain files, a forward decode
/// for gzip (keys come in ascending order, so one pass serves a whole fetch).
fn read_at(
    scanner: &mut Scanner,
    gzip: bool,
    offset: u64,
) -> std::result::Result<Message, FetchError> {
    if gzip {
        scanner.advance_to(offset)?;
    } else {
        scanner.seek(offset)?;
    }
    match scanner.next_message(true)? {
        Some(m) if m.offset == offset => Ok(m),
        _ => Err(FetchError::Missing(format!(
            "no message at offset {offset}: the file changed since it was listed"
        ))),
    }
}

fn existing_item(m: Message) -> ExistingItem {
    let body = m.body.unwrap_or_default();
    ExistingItem {
        key: TargetKey(m.offset.to_string()),
        size: wire_len(&body),
        internal_date: m.date,
        flags: m.flags,
        fingerprint: HeaderFacts::fingerprint_of(&body),
    }
}

impl Mbox {
    fn append_lock(&self, path: &Path) -> Arc<tokio::sync::Mutex<Option<write::GzTail>>> {
        let mut locks = self
            .inner
            .appends
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(locks.entry(path.to_path_buf()).or_default())
    }

    fn writable(&self, folder: &FolderPath) -> Result<(FolderFile, PathBuf)> {
        if self.inner.options.gmail_labels {
            return Err(Error::fatal(format!(
                "{}: a store opened with Gmail labels is read-only",
                self.inner.root.display()
            )));
        }
        self.file_of(folder)
    }
}

fn write_error(path: &std::path::Path, e: std::io::Error) -> Error {
    let kind = if e.kind() == std::io::ErrorKind::InvalidFilename {
        ErrorKind::Item
    } else {
        ErrorKind::Fatal
    };
    io_error(kind, format!("writing {}", path.display()), e)
}

impl Target for Mbox {
    fn capabilities(&self) -> Capabilities {
        capabilities()
    }

    /// A target that does not exist yet holds no folders: it is created by the first
    /// `ensure_folder`, so the command can plan a copy into a new directory or file.
    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                if inner.root.exists() {
                    inner.list_folders()
                } else {
                    Ok(Vec::new())
                }
            })
            .await
            .map_err(|e| Error::fatal(format!("listing mbox folders failed: {e}")))?
        })
    }

    fn ensure_folder<'a>(
        &'a self,
        folder: &'a FolderPath,
        _special_use: Option<SpecialUse>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (entry, path) = self.writable(folder)?;
            tokio::task::spawn_blocking(move || {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    write::create_dirs(dir).map_err(|e| write_error(dir, e))?;
                }
                write::create_file(&path, entry.gzip).map_err(|e| write_error(&path, e))
            })
            .await
            .map_err(|e| Error::fatal(format!("creating folder {folder} failed: {e}")))?
        })
    }

    fn append<'a>(
        &'a self,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            let (entry, path) = self.writable(folder)?;
            let tail = self.append_lock(&path).lock_owned().await;
            let items = batch.to_vec();
            let folder_name = folder.clone();
            tokio::task::spawn_blocking(move || {
                let folder = folder_name;
                let mut tail = tail;
                let now = write::now();
                let mut rendered = Vec::with_capacity(items.len());
                let mut refused = Vec::with_capacity(items.len());
                for item in &items {
                    let mut out = Vec::new();
                    match write::render(item, now, &mut out) {
                        Ok(()) => {
                            rendered.push(out);
                            refused.push(None);
                        }
                        Err(why) => refused.push(Some(
                            Error::item(format!(
                                "{} in {}: cannot be stored in mbox as-is: {why}",
                                item.meta.key, item.folder
                            ))
                            .with_item(item.meta.key.clone()),
                        )),
                    }
                }
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    write::create_dirs(dir).map_err(|e| write_error(dir, e))?;
                }
                let mut offsets = write::append(&path, entry.gzip, &rendered, &mut tail)
                    .map_err(|e| write_error(&path, e).context(format!("folder {folder}")))?
                    .into_iter();
                Ok(refused
                    .into_iter()
                    .map(|refusal| match refusal {
                        Some(e) => Err(e),
                        None => offsets
                            .next()
                            .map(|o| TargetKey(o.to_string()))
                            .ok_or_else(|| Error::fatal("fewer offsets than messages written")),
                    })
                    .collect())
            })
            .await
            .map_err(|e| Error::fatal(format!("appending to {folder} failed: {e}")))?
        })
    }

    fn existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingItem>> {
        let store = self.clone();
        let folder = folder.clone();
        blocking_stream(move |tx: &Sender<ExistingItem>| {
            let (entry, path) = match store.file_of(&folder) {
                Ok(found) => found,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            if !path.exists() {
                return;
            }
            match Mbox::scanner(&store.inner, &path, entry.gzip, &folder) {
                Ok(scanner) => scan_all(scanner, true, &path, tx, |m| Some(existing_item(m))),
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                }
            }
        })
    }

    fn read_back<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxStream<'a, Result<(TargetKey, Item)>> {
        let store = self.clone();
        let folder = folder.clone();
        blocking_stream(move |tx: &Sender<(TargetKey, Item)>| {
            let setup = || -> Result<ReadBackPlan> {
                let (entry, path) = store.file_of(&folder)?;
                let mut keys = keys
                    .into_iter()
                    .map(|k| Ok((key_offset(&k.0, &folder)?, k)))
                    .collect::<Result<Vec<_>>>()?;
                keys.sort();
                let scanner = Mbox::scanner(&store.inner, &path, entry.gzip, &folder)?;
                Ok((scanner, entry.gzip, path, keys))
            };
            let (mut scanner, gzip, path, keys) = match setup() {
                Ok(found) => found,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            for (offset, key) in keys {
                let read = read_at(&mut scanner, gzip, offset);
                let stop = matches!(read, Err(FetchError::Io(_)));
                let result = match read {
                    Ok(m) => Ok((
                        key.clone(),
                        Item {
                            folder: folder.clone(),
                            meta: ItemMeta {
                                key: SourceKey(key.0),
                                size: m.size,
                                flags: m.flags,
                                internal_date: m.date,
                            },
                            body: Bytes::from(m.body.unwrap_or_default()),
                        },
                    )),
                    Err(FetchError::Missing(why)) => Err(Error::item(format!(
                        "{key} in {folder} ({}): {why}",
                        path.display()
                    ))),
                    Err(FetchError::Io(e)) => Err(read_error(&path, e)),
                };
                if tx.blocking_send(result).is_err() || stop {
                    return;
                }
            }
        })
    }
}
