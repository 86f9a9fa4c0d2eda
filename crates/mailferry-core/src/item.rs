//! The item model. An [`Item`] is a message as a source read it: raw bytes plus metadata. A
//! [`CanonicalItem`] is the same message after [`CanonicalItem::prepare`]: its bytes in wire
//! form (the source's bytes, bare LFs made CRLF, lone CRs kept: [`crate::normalise`]), the
//! checksum of its canonical form and header facts, computed once and carried to the target and
//! the state store. Targets only accept prepared items, so every store receives the source's
//! bytes changed only where its format demands it. One copy of the bytes is held per item: the
//! wire form replaces the source's bytes (and *is* them, without a copy, when the source served
//! CRLF), and the canonical form is streamed into the checksum, never built.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::checksum::Checksum;
use crate::date::InternalDate;
use crate::error::Result;
use crate::flags::Flags;
use crate::folder::FolderPath;
use crate::headers::HeaderFacts;
use crate::normalise::{Normalisation, canonical_head, to_wire};

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

/// A message ready for a target: wire-form bytes, checksum and header facts.
#[derive(Debug, Clone)]
pub struct CanonicalItem {
    /// The folder it was read from.
    pub folder: FolderPath,
    /// Key, flags, date as read; `meta.size` is the source's size.
    pub meta: ItemMeta,
    /// The message in wire form: the source's bytes with bare LFs made CRLF; lone CRs, NULs
    /// and everything else as the source holds them. IMAP targets write it as it is; LF stores
    /// write [`crate::normalise::write_lf`] of it.
    pub body: Bytes,
    /// BLAKE3 of the canonical form of `body` ([`Checksum::of_message`]).
    pub checksum: Checksum,
    /// Message-ID, Date, From, Subject.
    pub headers: HeaderFacts,
    /// What putting the message in wire form changed, and the lone CRs it kept.
    pub normalisation: Normalisation,
}

impl CanonicalItem {
    /// Puts the bytes in wire form, checksums their canonical form and parses the headers. CPU
    /// work: the copier runs it on the rayon pool. A parser failure is an item error naming the
    /// item.
    pub fn prepare(item: Item) -> Result<Self> {
        let (body, normalisation) = to_wire(item.body);
        // Without lone CRs the wire form is the canonical form: hashed as it is, in one call.
        let checksum = if normalisation.lone_cr == 0 {
            Checksum::of(&body)
        } else {
            Checksum::of_message(&body)
        };
        // Header facts from the canonical head, as every store's listing computes them, so
        // fingerprints agree however a store keeps lone CRs.
        let head = if normalisation.lone_cr == 0 {
            std::borrow::Cow::Borrowed(&body[..])
        } else {
            canonical_head(&body)
        };
        let headers = HeaderFacts::parse(&head).map_err(|e| {
            e.context(format!("{} in {}", item.meta.key, item.folder))
                .with_item(item.meta.key.clone())
        })?;
        drop(head);
        Ok(CanonicalItem {
            folder: item.folder,
            meta: item.meta,
            body,
            checksum,
            headers,
            normalisation,
        })
    }

    /// The size in bytes in wire form (what an IMAP server reports as RFC822.SIZE, and what
    /// [`crate::ExistingItem::size`] holds).
    pub fn size(&self) -> u64 {
        self.body.len() as u64
    }

    /// The internal date to store: the source's, else the `Date` header's.
    pub fn internal_date(&self) -> Option<InternalDate> {
        self.meta.internal_date.or(self.headers.date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalise::canonicalise;

    fn prepare(body: Bytes) -> CanonicalItem {
        CanonicalItem::prepare(Item {
            folder: FolderPath::inbox(),
            meta: ItemMeta {
                key: SourceKey::from("1"),
                size: body.len() as u64,
                flags: Flags::default(),
                internal_date: None,
            },
            body,
        })
        .expect("prepares")
    }

    #[test]
    fn lone_crs_are_carried_without_a_copy_and_checksummed_in_canonical_form() {
        let raw = Bytes::from(b"Subject: mac\r\rX-Odd: 1\r\n\r\nold\rmac\r".to_vec());
        let item = prepare(raw.clone());
        // The source's bytes themselves: no second copy of the message is held.
        assert_eq!(item.body.as_ptr(), raw.as_ptr());
        assert_eq!(item.body, raw);
        assert_eq!(item.size(), raw.len() as u64);
        assert_eq!(item.checksum, Checksum::of(&canonicalise(raw).0));
        assert_eq!(item.normalisation.lone_cr, 4);
        assert!(item.normalisation.is_unchanged());
        // Header facts as from the canonical form: the lone CR ends the Subject line.
        assert_eq!(item.headers.subject.as_deref(), Some("mac"));
    }

    #[test]
    fn an_lf_message_becomes_crlf_and_keeps_its_checksum() {
        let raw = Bytes::from_static(b"Subject: lf\n\nbody\rwith a lone cr\n");
        let item = prepare(raw.clone());
        assert_eq!(
            &item.body[..],
            b"Subject: lf\r\n\r\nbody\rwith a lone cr\r\n"
        );
        assert_eq!(item.checksum, Checksum::of(&canonicalise(raw).0));
        assert_eq!(
            (item.normalisation.bare_lf, item.normalisation.lone_cr),
            (3, 1)
        );
        assert_eq!(item.normalisation.mixed_endings, 0);
    }
}
