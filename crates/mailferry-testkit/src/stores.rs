//! Synthetic stores for benches and memory checks: a [`GeneratedSource`] that produces a corpus
//! on the fly (a multi-GB mailbox that never exists in memory or on disk) and a [`NullTarget`]
//! that acknowledges and drops everything, so a measurement sees only the pipeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::stream;
use mailferry_core::{
    AppendOutcome, BoxFuture, BoxStream, CanonicalItem, Capabilities, Checkpoint, ExistingItem,
    Folder, FolderPath, FolderStatus, Item, ItemMeta, Result, Source, SourceKey, SpecialUse,
    Target, TargetKey,
};

use crate::corpus::CorpusSpec;

/// A source whose single folder (INBOX) holds a generated corpus, produced lazily.
pub struct GeneratedSource {
    spec: CorpusSpec,
}

impl GeneratedSource {
    /// All messages of `spec` go to INBOX, whatever folders the spec names.
    pub fn new(spec: CorpusSpec) -> Self {
        GeneratedSource {
            spec: spec.in_folders(vec![FolderPath::inbox()]),
        }
    }
}

impl Source for GeneratedSource {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ordered_ids: true,
            internal_date: true,
            keywords: true,
            ..Capabilities::default()
        }
    }

    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        let count = self.spec.count as u64;
        Box::pin(async move {
            Ok(vec![Folder::new(
                FolderPath::inbox(),
                FolderStatus {
                    count,
                    validity: 1,
                    next_id: Some(count),
                    ..FolderStatus::default()
                },
            )])
        })
    }

    fn list_items<'a>(
        &'a self,
        _folder: &'a FolderPath,
        after: Option<Checkpoint>,
    ) -> BoxStream<'a, Result<ItemMeta>> {
        let skip = after.map_or(0, |c| c.next_id as usize);
        Box::pin(stream::iter(
            self.spec.generate().enumerate().skip(skip).map(|(i, m)| {
                Ok(ItemMeta {
                    key: SourceKey(i.to_string()),
                    size: m.body.len() as u64,
                    flags: m.flags,
                    internal_date: Some(m.internal_date),
                })
            }),
        ))
    }

    fn fetch<'a>(
        &'a self,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        // Keys are generation indexes in ascending order: one forward pass picks them.
        let mut wanted = items.into_iter().peekable();
        let mut generator = self.spec.generate().enumerate();
        let folder = folder.clone();
        Box::pin(stream::iter(std::iter::from_fn(move || {
            let meta = wanted.next()?;
            let index: usize = meta.key.0.parse().ok()?;
            let (_, m) = generator.find(|(i, _)| *i == index)?;
            Some(Ok(Item {
                folder: folder.clone(),
                meta,
                body: m.body,
            }))
        })))
    }
}

/// A target that acknowledges every item and keeps only counts.
#[derive(Clone, Default)]
pub struct NullTarget {
    items: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl NullTarget {
    /// A new sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Items acknowledged so far.
    pub fn items(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
    }

    /// Canonical bytes acknowledged so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Target for NullTarget {
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn ensure_folder<'a>(
        &'a self,
        _folder: &'a FolderPath,
        _special_use: Option<SpecialUse>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn append<'a>(
        &'a self,
        _folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            let first = self.items.fetch_add(batch.len() as u64, Ordering::Relaxed);
            self.bytes.fetch_add(
                batch.iter().map(CanonicalItem::size).sum(),
                Ordering::Relaxed,
            );
            Ok((0..batch.len() as u64)
                .map(|i| Ok(TargetKey((first + i).to_string())))
                .collect())
        })
    }

    fn existing<'a>(&'a self, _folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingItem>> {
        Box::pin(stream::empty())
    }

    fn read_back<'a>(
        &'a self,
        _folder: &'a FolderPath,
        _keys: Vec<TargetKey>,
    ) -> BoxStream<'a, Result<(TargetKey, Item)>> {
        Box::pin(stream::empty())
    }
}
