//! An in-memory store that is both a [`Source`] and a [`Target`], for tests, benches and
//! embedders' experiments. It behaves like a small IMAP server: per-folder UIDVALIDITY, UIDs
//! that increase, a modification sequence, wire-form sizes; it stores the bytes it is given. It can be told to reject items
//! containing some bytes, to exercise per-item error handling.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures_util::stream;

use crate::backend::{
    AppendOutcome, BoxFuture, BoxStream, Capabilities, Checkpoint, ExistingItem, Source, Target,
};
use crate::date::InternalDate;
use crate::error::{Error, Result};
use crate::flags::Flags;
use crate::folder::{Folder, FolderPath, FolderStatus, SpecialUse};
use crate::headers::HeaderFacts;
use crate::item::{CanonicalItem, Item, ItemMeta, SourceKey, TargetKey};
use crate::normalise::wire_len;

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its bytes as stored.
    pub body: Bytes,
    /// Flags and keywords.
    pub flags: Flags,
    /// Internal date.
    pub internal_date: Option<InternalDate>,
}

#[derive(Debug, Clone)]
struct MemFolder {
    special_use: Option<SpecialUse>,
    validity: u64,
    next_uid: u64,
    modseq: u64,
    messages: BTreeMap<u64, StoredMessage>,
}

#[derive(Default)]
struct MemInner {
    folders: BTreeMap<FolderPath, MemFolder>,
    next_validity: u64,
    reject: Option<Vec<u8>>,
}

/// An in-memory mail store. Clones share the same store.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<MemInner>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemInner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters for a test store, so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a folder if it does not exist.
    pub fn create_folder(&self, path: &FolderPath, special_use: Option<SpecialUse>) {
        let mut inner = self.lock();
        inner.next_validity += 1;
        let validity = inner.next_validity;
        inner.folders.entry(path.clone()).or_insert(MemFolder {
            special_use,
            validity,
            next_uid: 1,
            modseq: 1,
            messages: BTreeMap::new(),
        });
    }

    /// Stores a message (creating the folder) and returns its UID.
    pub fn insert(
        &self,
        path: &FolderPath,
        body: Bytes,
        flags: Flags,
        internal_date: Option<InternalDate>,
    ) -> u64 {
        self.create_folder(path, None);
        let mut inner = self.lock();
        let folder = inner
            .folders
            .get_mut(path)
            .expect("the folder was just created");
        let uid = folder.next_uid;
        folder.next_uid += 1;
        folder.modseq += 1;
        folder.messages.insert(
            uid,
            StoredMessage {
                body,
                flags,
                internal_date,
            },
        );
        uid
    }

    /// The messages of a folder by UID.
    pub fn messages(&self, path: &FolderPath) -> BTreeMap<u64, StoredMessage> {
        self.lock()
            .folders
            .get(path)
            .map(|f| f.messages.clone())
            .unwrap_or_default()
    }

    /// One stored message (its bytes are shared, not copied).
    fn message(&self, path: &FolderPath, uid: u64) -> Option<StoredMessage> {
        self.lock()
            .folders
            .get(path)
            .and_then(|f| f.messages.get(&uid).cloned())
    }

    /// Every folder's path.
    pub fn folder_paths(&self) -> Vec<FolderPath> {
        self.lock().folders.keys().cloned().collect()
    }

    /// Makes appends reject (as an item error) every message containing `needle`.
    pub fn reject_items_containing(&self, needle: &[u8]) {
        self.lock().reject = Some(needle.to_vec());
    }

    /// Gives a folder a new validity token, as a server does when it renumbers.
    pub fn renumber(&self, path: &FolderPath) {
        let mut inner = self.lock();
        inner.next_validity += 1;
        let validity = inner.next_validity;
        if let Some(f) = inner.folders.get_mut(path) {
            f.validity = validity;
        }
    }

    fn capabilities() -> Capabilities {
        Capabilities {
            keywords: true,
            internal_date: true,
            special_use: true,
            ordered_ids: true,
            modseq: true,
            set_flags: true,
            delete: true,
            ..Capabilities::default()
        }
    }

    fn folders(&self) -> Vec<Folder> {
        self.lock()
            .folders
            .iter()
            .map(|(path, f)| Folder {
                path: path.clone(),
                special_use: f.special_use,
                selectable: true,
                status: FolderStatus {
                    count: f.messages.len() as u64,
                    validity: f.validity,
                    next_id: Some(f.next_uid),
                    modseq: Some(f.modseq),
                    size: Some(f.messages.values().map(|m| m.body.len() as u64).sum()),
                },
            })
            .collect()
    }

    /// A missing folder is about that folder, never the end of the run (the conformance rule).
    fn missing(path: &FolderPath) -> Error {
        Error::item(format!("no folder {path} in the memory store"))
    }
}

fn uid_of(key: &str) -> Result<u64> {
    key.parse()
        .map_err(|_| Error::item(format!("not a key of this store: {key:?}")))
}

impl Source for MemoryStore {
    fn capabilities(&self) -> Capabilities {
        Self::capabilities()
    }

    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        Box::pin(async move { Ok(self.folders()) })
    }

    fn list_items<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<Checkpoint>,
    ) -> BoxStream<'a, Result<ItemMeta>> {
        let inner = self.lock();
        let Some(f) = inner.folders.get(folder) else {
            return Box::pin(stream::iter([Err(Self::missing(folder))]));
        };
        let from = after
            .filter(|c| c.validity == f.validity)
            .map_or(0, |c| c.next_id);
        let metas: Vec<Result<ItemMeta>> = f
            .messages
            .range(from..)
            .map(|(uid, m)| {
                Ok(ItemMeta {
                    key: SourceKey(uid.to_string()),
                    size: m.body.len() as u64,
                    flags: m.flags.clone(),
                    internal_date: m.internal_date,
                })
            })
            .collect();
        Box::pin(stream::iter(metas))
    }

    fn fetch<'a>(
        &'a self,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        // Looked up one at a time: cloning the folder's map per call made a folder's fetches
        // quadratic in its size.
        let folder = folder.clone();
        Box::pin(stream::iter(items.into_iter().map(move |meta| {
            let uid = uid_of(&meta.key.0).map_err(|e| e.with_item(meta.key.clone()))?;
            let stored = self.message(&folder, uid).ok_or_else(|| {
                Error::item(format!("message {uid} vanished from {folder}"))
                    .with_item(meta.key.clone())
            })?;
            Ok(Item {
                folder: folder.clone(),
                body: stored.body,
                meta,
            })
        })))
    }
}

impl Target for MemoryStore {
    fn capabilities(&self) -> Capabilities {
        Self::capabilities()
    }

    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        Box::pin(async move { Ok(self.folders()) })
    }

    fn ensure_folder<'a>(
        &'a self,
        folder: &'a FolderPath,
        special_use: Option<SpecialUse>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.create_folder(folder, special_use);
            Ok(())
        })
    }

    fn append<'a>(
        &'a self,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            let reject = self.lock().reject.clone();
            Ok(batch
                .iter()
                .map(|item| {
                    if let Some(needle) = &reject
                        && memchr::memmem::find(&item.body, needle).is_some()
                    {
                        return Err(Error::item("the memory store was told to reject this")
                            .with_item(item.meta.key.clone()));
                    }
                    let uid = self.insert(
                        folder,
                        item.body.clone(),
                        item.meta.flags.clone(),
                        item.internal_date(),
                    );
                    Ok(TargetKey(uid.to_string()))
                })
                .collect())
        })
    }

    fn existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingItem>> {
        let items: Vec<Result<ExistingItem>> = self
            .messages(folder)
            .into_iter()
            .map(|(uid, m)| {
                Ok(ExistingItem {
                    key: TargetKey(uid.to_string()),
                    size: wire_len(&m.body),
                    internal_date: m.internal_date,
                    flags: m.flags,
                    fingerprint: HeaderFacts::fingerprint_of(&m.body),
                })
            })
            .collect();
        Box::pin(stream::iter(items))
    }

    fn read_back<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxStream<'a, Result<(TargetKey, Item)>> {
        let folder = folder.clone();
        Box::pin(stream::iter(keys.into_iter().map(move |key| {
            let uid = uid_of(&key.0)?;
            let m = self
                .message(&folder, uid)
                .ok_or_else(|| Error::item(format!("no message {uid} in {folder}")))?;
            let item = Item {
                folder: folder.clone(),
                meta: ItemMeta {
                    key: SourceKey(key.0.clone()),
                    size: m.body.len() as u64,
                    flags: m.flags,
                    internal_date: m.internal_date,
                },
                body: m.body,
            };
            Ok((key, item))
        })))
    }

    fn set_flags<'a>(
        &'a self,
        folder: &'a FolderPath,
        changes: Vec<(TargetKey, Flags)>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut inner = self.lock();
            let f = inner
                .folders
                .get_mut(folder)
                .ok_or_else(|| Self::missing(folder))?;
            for (key, flags) in changes {
                if let Some(m) = f.messages.get_mut(&uid_of(&key.0)?) {
                    m.flags = flags;
                }
            }
            f.modseq += 1;
            Ok(())
        })
    }

    fn delete<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut inner = self.lock();
            let f = inner
                .folders
                .get_mut(folder)
                .ok_or_else(|| Self::missing(folder))?;
            for key in keys {
                f.messages.remove(&uid_of(&key.0)?);
            }
            f.modseq += 1;
            Ok(())
        })
    }
}
