//! The item model. An [`Item`] is a message as a source read it: raw bytes plus metadata. A
//! [`CanonicalItem`] is the same message after [`CanonicalItem::prepare`]: canonical bytes,
//! checksum and header facts, computed once and carried to the target and the state store.
//! Targets only accept canonical items, so no store ever receives un-normalised bytes.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::checksum::Checksum;
use crate::date::InternalDate;
use crate::error::Result;
use crate::flags::Flags;
use crate::folder::FolderPath;
use crate::headers::HeaderFacts;
use crate::normalise::{Normalisation, canonicalise};

pub use crate::key::{SourceKey, TargetKey};

/// What a source lists about an item before its body is fetched: enough to decide whether to
/// fetch it at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemMeta {
    /// The source's key.
    pub key: SourceKey,
    /// Size in bytes as the source stores it (not necessarily canonical).
    pub size: u64,
    /// Flags and keywords.
    pub flags: Flags,
    /// The internal (arrival) date, where the store has one.
    pub internal_date: Option<InternalDate>,
}

/// A message as read from a source.
#[derive(Debug, Clone)]
pub struct Item {
    /// The folder it was read from.
    pub folder: FolderPath,
    /// Key, size, flags, date.
    pub meta: ItemMeta,
    /// The raw bytes, storage escapes (such as mbox `>From ` quoting) already undone.
    pub body: Bytes,
}

/// A message ready for a target: canonical bytes, checksum and header facts.
#[derive(Debug, Clone)]
pub struct CanonicalItem {
    /// The folder it was read from.
    pub folder: FolderPath,
    /// Key, flags, date as read; `meta.size` is the source's size.
    pub meta: ItemMeta,
    /// The canonical (CRLF) bytes.
    pub body: Bytes,
    /// BLAKE3 of `body`.
    pub checksum: Checksum,
    /// Message-ID, Date, From, Subject.
    pub headers: HeaderFacts,
    /// What canonicalisation changed.
    pub normalisation: Normalisation,
}

impl CanonicalItem {
    /// Canonicalises line endings, checksums and parses the headers. CPU work: the copier runs
    /// it on the rayon pool. A parser failure is an item error naming the item.
    pub fn prepare(item: Item) -> Result<Self> {
        let (body, normalisation) = canonicalise(item.body);
        let checksum = Checksum::of(&body);
        let headers = HeaderFacts::parse(&body).map_err(|e| {
            e.context(format!("{} in {}", item.meta.key, item.folder))
                .with_item(item.meta.key.clone())
        })?;
        Ok(CanonicalItem {
            folder: item.folder,
            meta: item.meta,
            body,
            checksum,
            headers,
            normalisation,
        })
    }

    /// The canonical size in bytes.
    pub fn size(&self) -> u64 {
        self.body.len() as u64
    }

    /// The internal date to store: the source's, else the `Date` header's.
    pub fn internal_date(&self) -> Option<InternalDate> {
        self.meta.internal_date.or(self.headers.date)
    }
}
