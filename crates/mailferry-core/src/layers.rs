//! Layers: cross-cutting behaviour that wraps any backend instead of living in each one (in the
//! spirit of tower and OpenDAL). [`RateLimitedTarget`] paces appends to a number of messages
//! and/or bytes per second, as providers' throttling policies demand.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{AppendOutcome, BoxFuture, BoxStream, Capabilities, ExistingItem, Target};
use crate::error::Result;
use crate::flags::Flags;
use crate::folder::{Folder, FolderPath, SpecialUse};
use crate::item::{CanonicalItem, Item, TargetKey};

/// A target whose appends are paced. Pacing reserves time slots in order, so concurrent
/// writers share the rate instead of each getting it.
pub struct RateLimitedTarget {
    inner: Arc<dyn Target>,
    items_per_sec: Option<f64>,
    bytes_per_sec: Option<f64>,
    next_free: Mutex<Instant>,
}

/// Wraps `inner` when a limit is given; returns it unchanged otherwise.
pub fn rate_limited(
    inner: Arc<dyn Target>,
    items_per_sec: Option<f64>,
    bytes_per_sec: Option<f64>,
) -> Arc<dyn Target> {
    let valid = |r: Option<f64>| r.filter(|r| *r > 0.0 && r.is_finite());
    let (items_per_sec, bytes_per_sec) = (valid(items_per_sec), valid(bytes_per_sec));
    if items_per_sec.is_none() && bytes_per_sec.is_none() {
        return inner;
    }
    Arc::new(RateLimitedTarget {
        inner,
        items_per_sec,
        bytes_per_sec,
        next_free: Mutex::new(Instant::now()),
    })
}

impl RateLimitedTarget {
    /// Reserves the time a batch costs and returns when it may start.
    fn reserve(&self, items: usize, bytes: u64) -> Instant {
        let cost = self
            .items_per_sec
            .map_or(0.0, |r| items as f64 / r)
            .max(self.bytes_per_sec.map_or(0.0, |r| bytes as f64 / r));
        let now = Instant::now();
        let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        let start = (*next).max(now);
        *next = start + Duration::from_secs_f64(cost);
        start
    }
}

impl Target for RateLimitedTarget {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        self.inner.list_folders()
    }

    fn ensure_folder<'a>(
        &'a self,
        folder: &'a FolderPath,
        special_use: Option<SpecialUse>,
    ) -> BoxFuture<'a, Result<()>> {
        self.inner.ensure_folder(folder, special_use)
    }

    fn append<'a>(
        &'a self,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            let bytes = batch.iter().map(CanonicalItem::size).sum();
            let start = self.reserve(batch.len(), bytes);
            tokio::time::sleep_until(start.into()).await;
            self.inner.append(folder, batch).await
        })
    }

    fn existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingItem>> {
        self.inner.existing(folder)
    }

    fn read_back<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxStream<'a, Result<(TargetKey, Item)>> {
        self.inner.read_back(folder, keys)
    }

    fn set_flags<'a>(
        &'a self,
        folder: &'a FolderPath,
        changes: Vec<(TargetKey, Flags)>,
    ) -> BoxFuture<'a, Result<()>> {
        self.inner.set_flags(folder, changes)
    }

    fn delete<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxFuture<'a, Result<()>> {
        self.inner.delete(folder, keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Copier, CopyOptions, MemoryState, MemoryStore};

    #[tokio::test(start_paused = true)]
    async fn paces_appends_to_the_message_rate() {
        let source = MemoryStore::new();
        for i in 0..50 {
            source.insert(
                &FolderPath::inbox(),
                bytes::Bytes::from(format!("Subject: {i}\r\n\r\n")),
                Flags::default(),
                None,
            );
        }
        let target = rate_limited(Arc::new(MemoryStore::new()), Some(10.0), None);
        let options = CopyOptions {
            batch_items: 5,
            ..CopyOptions::default()
        };
        let copier = Copier::new(
            Arc::new(source),
            target,
            Arc::new(MemoryState::new()),
            options,
        );
        let started = tokio::time::Instant::now();
        let report = copier
            .run(copier.identity_plan().await.expect("plan"))
            .await
            .expect("run");
        assert_eq!(report.totals.copied, 50);
        // 50 messages at 10/s: the last batch starts no earlier than 4.5 s in (virtual time).
        assert!(
            started.elapsed() >= Duration::from_millis(4_500),
            "{:?}",
            started.elapsed()
        );
    }
}
