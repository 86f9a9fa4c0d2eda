//! The backend traits. A [`Source`] lists folders and items and fetches bodies; a [`Target`]
//! creates folders, appends batches and shows what it already holds. Both are object-safe
//! (`Arc<dyn Source>` for backends chosen at run time from a URL) and return `Send` futures and
//! streams. They are batch-oriented, so the cost of boxing a future per call does not matter.
//! Retry, rate limits and metrics wrap backends as layers instead of living in each backend.

use std::future::Future;
use std::pin::Pin;

use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::date::InternalDate;
use crate::error::Result;
use crate::flags::Flags;
use crate::folder::{Folder, FolderPath, SpecialUse};
use crate::item::{CanonicalItem, Item, ItemMeta, TargetKey};

/// A boxed `Send` future, as the traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A boxed `Send` stream, as the traits return.
pub type BoxStream<'a, T> = Pin<Box<dyn Stream<Item = T> + Send + 'a>>;

/// Optional features a backend has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Stores arbitrary keywords.
    pub keywords: bool,
    /// Stores an internal date per message.
    pub internal_date: bool,
    /// Knows special-use roles of folders.
    pub special_use: bool,
    /// Item ids increase with arrival, so listing can start after a checkpoint
    /// ([`Checkpoint::next_id`]).
    pub ordered_ids: bool,
    /// Reports a modification sequence per folder (flag changes are visible in the status).
    pub modseq: bool,
    /// Folder names are compared case-insensitively.
    pub case_insensitive_folders: bool,
    /// The largest message it accepts, if limited.
    pub max_item_size: Option<u64>,
    /// Can change flags of stored items ([`Target::set_flags`]).
    pub set_flags: bool,
    /// Can delete stored items ([`Target::delete`]).
    pub delete: bool,
}

/// Where a previous pass over a folder stopped: items with an id at or after `next_id` are new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The validity token the ids belong to.
    pub validity: u64,
    /// The first id not yet seen.
    pub next_id: u64,
}

/// What a target holds, as listed for dedupe and crash recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingItem {
    /// The target's key.
    pub key: TargetKey,
    /// Size in bytes in wire form (bare LFs counted as CRLF, lone CRs as one byte): an IMAP
    /// server's RFC822.SIZE, and what [`CanonicalItem::size`] gives for the same message.
    pub size: u64,
    /// Internal date, where stored.
    pub internal_date: Option<InternalDate>,
    /// Flags and keywords.
    pub flags: Flags,
    /// `Message-ID` without brackets, or the header fingerprint
    /// ([`crate::HeaderFacts::fingerprint`]) when the message has none.
    pub fingerprint: Option<String>,
}

/// The outcome of appending one item: the target's key, or an item error.
pub type AppendOutcome = Result<TargetKey>;

/// A store mail is read from.
pub trait Source: Send + Sync {
    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Every folder with its status.
    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>>;

    /// The items of a folder, without bodies, in ascending id order where ids are ordered.
    /// With `after`, a backend with [`Capabilities::ordered_ids`] lists only newer items (it may
    /// list more; the copier skips what its state says is done).
    fn list_items<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<Checkpoint>,
    ) -> BoxStream<'a, Result<ItemMeta>>;

    /// Fetches the bodies of `items` (as listed), in order. A message that cannot be read is an
    /// item error naming its key; the stream goes on after it.
    fn fetch<'a>(
        &'a self,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>>;
}

/// A store mail is written to.
pub trait Target: Send + Sync {
    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Every folder with its status.
    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>>;

    /// Creates the folder (and its parents) unless it exists, with a special-use role where
    /// supported.
    fn ensure_folder<'a>(
        &'a self,
        folder: &'a FolderPath,
        special_use: Option<SpecialUse>,
    ) -> BoxFuture<'a, Result<()>>;

    /// Appends a batch. The outer error is about the whole batch (transient: the caller resolves
    /// what was stored before retrying; fatal: stop). Otherwise one outcome per item, in order;
    /// an `Ok` means the item is durable under the backend's durability policy.
    fn append<'a>(
        &'a self,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>>;

    /// What the folder already holds (empty if it does not exist).
    fn existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingItem>>;

    /// Reads stored items back, for verify and for resolving uncertain appends.
    fn read_back<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxStream<'a, Result<(TargetKey, Item)>>;

    /// Replaces the flags of stored items. Backends without [`Capabilities::set_flags`] refuse.
    fn set_flags<'a>(
        &'a self,
        folder: &'a FolderPath,
        changes: Vec<(TargetKey, Flags)>,
    ) -> BoxFuture<'a, Result<()>> {
        let _ = (folder, changes);
        Box::pin(async { Err(crate::Error::fatal("this target cannot change flags")) })
    }

    /// Deletes stored items. Backends without [`Capabilities::delete`] refuse.
    fn delete<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxFuture<'a, Result<()>> {
        let _ = (folder, keys);
        Box::pin(async { Err(crate::Error::fatal("this target cannot delete messages")) })
    }
}
