//! The state store: what has been copied, so that re-runs copy only what is new and a crash
//! neither loses nor duplicates. Keys are scoped by (migration, source folder, validity token);
//! a migration names one source mailbox → target mailbox pair, so many workers can share one
//! store without any process-global state. [`MemoryState`] is the in-process implementation for
//! tests and embedders that keep state themselves; `mailferry-state` has SQLite.
//!
//! Besides item records, a store keeps [`Suspect`]s: appends whose outcome was uncertain (the
//! run died, or the connection was cut, before the target answered) and which were declared
//! absent and sent again. A target may still commit such an append later — a server finishing a
//! dead session's MULTIAPPEND — and no listing, however long one waits, can rule that out. So
//! the copier does not guess when the target has settled: it remembers the suspects and removes
//! (or reports) their late copies whenever they show up ([`crate::copier`]).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::backend::BoxFuture;
use crate::checksum::Checksum;
use crate::error::{Error, Result};
use crate::folder::{FolderPath, FolderStatus};
use crate::item::{SourceKey, TargetKey};

/// The unit state is kept for: one source folder of one migration under one validity token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FolderScope {
    /// Names the source mailbox → target mailbox pair (never contains secrets).
    pub migration: String,
    /// The source folder.
    pub folder: FolderPath,
    /// The source folder's validity token (IMAP UIDVALIDITY).
    pub validity: u64,
}

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// About to be written; whether it reached the target is unknown until resolved.
    Pending,
    /// Acknowledged by the target (durable).
    Done,
    /// Rejected; `reason` says why. Retried on the next pass.
    Failed,
}

/// One item's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The source's key.
    pub key: SourceKey,
    /// Checksum of the canonical bytes.
    pub checksum: Option<Checksum>,
    /// Canonical size.
    pub size: u64,
    /// Message-ID or header fingerprint, for resolving pending items.
    pub fingerprint: Option<String>,
    /// The target's key once written.
    pub target_key: Option<TargetKey>,
    /// Status.
    pub status: ItemStatus,
    /// Why it failed.
    pub reason: Option<String>,
}

/// An uncertain append that was declared absent and sent again: a late commit of it would be
/// a surplus copy, byte-identical to the item's accounted one (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspect {
    /// Assigned by the store when added (ignored by [`StateStore::add_suspects`]).
    pub id: u64,
    /// The source item whose earlier append is outstanding.
    pub key: SourceKey,
    /// Checksum of its canonical bytes: a late copy has the same.
    pub checksum: Checksum,
    /// Its canonical size.
    pub size: u64,
    /// For targets whose keys are increasing numbers (IMAP UIDs): every key the target had
    /// assigned when the item was declared absent is below this, so a late commit is at or
    /// above it. `None` when the target's keys are not ordered: then a late copy cannot be told
    /// apart from an identical message someone else put there, and it is reported, not removed.
    pub high_water: Option<u64>,
}

/// Persistent progress of migrations. Every method is one transaction; `record` takes whole
/// batches so a store can commit once per batch.
pub trait StateStore: Send + Sync {
    /// The folder status recorded after the last complete pass, if any.
    fn checkpoint<'a>(
        &'a self,
        scope: &'a FolderScope,
    ) -> BoxFuture<'a, Result<Option<FolderStatus>>>;

    /// Records the folder status after a complete pass.
    fn set_checkpoint<'a>(
        &'a self,
        scope: &'a FolderScope,
        status: &'a FolderStatus,
    ) -> BoxFuture<'a, Result<()>>;

    /// The records of `keys` that exist.
    fn lookup<'a>(
        &'a self,
        scope: &'a FolderScope,
        keys: &'a [SourceKey],
    ) -> BoxFuture<'a, Result<HashMap<SourceKey, ItemRecord>>>;

    /// Inserts or replaces records, atomically.
    fn record<'a>(
        &'a self,
        scope: &'a FolderScope,
        records: &'a [ItemRecord],
    ) -> BoxFuture<'a, Result<()>>;

    /// Every record of the folder with the given status, or all with `None`.
    fn records<'a>(
        &'a self,
        scope: &'a FolderScope,
        status: Option<ItemStatus>,
    ) -> BoxFuture<'a, Result<Vec<ItemRecord>>>;

    /// The validity tokens this migration has state for in this folder (`scope.validity` is
    /// ignored). When a source renumbers a folder (IMAP UIDVALIDITY changes), the records of the
    /// old validity let the copier match the renumbered items by checksum instead of copying
    /// them all again.
    fn validities<'a>(&'a self, scope: &'a FolderScope) -> BoxFuture<'a, Result<Vec<u64>>>;

    /// The folder's outstanding [`Suspect`]s. Required, with no default: a store (or a
    /// decorator around one) that silently kept none would let late commits stay as duplicates.
    fn suspects<'a>(&'a self, scope: &'a FolderScope) -> BoxFuture<'a, Result<Vec<Suspect>>>;

    /// Adds suspects (their `id` is assigned by the store), atomically. Called before the items
    /// are sent again, so a crash in between leaves nothing unremembered.
    fn add_suspects<'a>(
        &'a self,
        scope: &'a FolderScope,
        suspects: &'a [Suspect],
    ) -> BoxFuture<'a, Result<()>>;

    /// Removes suspects whose late copy was found and removed.
    fn remove_suspects<'a>(
        &'a self,
        scope: &'a FolderScope,
        ids: &'a [u64],
    ) -> BoxFuture<'a, Result<()>>;
}

#[derive(Default)]
struct FolderState {
    checkpoint: Option<FolderStatus>,
    items: HashMap<SourceKey, ItemRecord>,
    suspects: Vec<Suspect>,
}

/// A [`StateStore`] in memory.
#[derive(Default)]
pub struct MemoryState {
    folders: Mutex<HashMap<FolderScope, FolderState>>,
    next_suspect: std::sync::atomic::AtomicU64,
}

impl MemoryState {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, scope: &FolderScope, f: impl FnOnce(&mut FolderState) -> T) -> Result<T> {
        let mut map = self
            .folders
            .lock()
            .map_err(|_| Error::fatal("state store lock poisoned"))?;
        Ok(f(map.entry(scope.clone()).or_default()))
    }
}

impl StateStore for MemoryState {
    fn checkpoint<'a>(
        &'a self,
        scope: &'a FolderScope,
    ) -> BoxFuture<'a, Result<Option<FolderStatus>>> {
        Box::pin(async move { self.with(scope, |f| f.checkpoint.clone()) })
    }

    fn set_checkpoint<'a>(
        &'a self,
        scope: &'a FolderScope,
        status: &'a FolderStatus,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.with(scope, |f| f.checkpoint = Some(status.clone())) })
    }

    fn lookup<'a>(
        &'a self,
        scope: &'a FolderScope,
        keys: &'a [SourceKey],
    ) -> BoxFuture<'a, Result<HashMap<SourceKey, ItemRecord>>> {
        Box::pin(async move {
            self.with(scope, |f| {
                keys.iter()
                    .filter_map(|k| f.items.get(k).map(|r| (k.clone(), r.clone())))
                    .collect()
            })
        })
    }

    fn record<'a>(
        &'a self,
        scope: &'a FolderScope,
        records: &'a [ItemRecord],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.with(scope, |f| {
                for r in records {
                    f.items.insert(r.key.clone(), r.clone());
                }
            })
        })
    }

    fn records<'a>(
        &'a self,
        scope: &'a FolderScope,
        status: Option<ItemStatus>,
    ) -> BoxFuture<'a, Result<Vec<ItemRecord>>> {
        Box::pin(async move {
            self.with(scope, |f| {
                let mut v: Vec<ItemRecord> = f
                    .items
                    .values()
                    .filter(|r| status.is_none_or(|s| r.status == s))
                    .cloned()
                    .collect();
                v.sort_by(|a, b| a.key.cmp(&b.key));
                v
            })
        })
    }

    fn validities<'a>(&'a self, scope: &'a FolderScope) -> BoxFuture<'a, Result<Vec<u64>>> {
        Box::pin(async move {
            let map = self
                .folders
                .lock()
                .map_err(|_| Error::fatal("state store lock poisoned"))?;
            let mut v: Vec<u64> = map
                .keys()
                .filter(|k| k.migration == scope.migration && k.folder == scope.folder)
                .map(|k| k.validity)
                .collect();
            v.sort_unstable();
            Ok(v)
        })
    }

    fn suspects<'a>(&'a self, scope: &'a FolderScope) -> BoxFuture<'a, Result<Vec<Suspect>>> {
        Box::pin(async move { self.with(scope, |f| f.suspects.clone()) })
    }

    fn add_suspects<'a>(
        &'a self,
        scope: &'a FolderScope,
        suspects: &'a [Suspect],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.with(scope, |f| {
                for s in suspects {
                    let id = self
                        .next_suspect
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                        + 1;
                    f.suspects.push(Suspect { id, ..s.clone() });
                }
            })
        })
    }

    fn remove_suspects<'a>(
        &'a self,
        scope: &'a FolderScope,
        ids: &'a [u64],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.with(scope, |f| f.suspects.retain(|s| !ids.contains(&s.id))) })
    }
}
