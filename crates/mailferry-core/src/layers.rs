//! Layers: cross-cutting behaviour that wraps any backend instead of living in each one (in the
//! spirit of tower and OpenDAL).
//!
//! A layer is a [`TargetHook`] inside a [`Hooked`] target. The hook overrides only the calls it
//! changes and gets the wrapped target to call on; `Hooked` forwards every other call as it is.
//! A wrapper thus says only what it does differently, and cannot silently drop a call it
//! forgot to forward (such as `set_flags`, which falls back to "refuse" when not forwarded).
//! Tests use the same building block to make a target misbehave on cue.
//!
//! [`RateLimit`] paces appends to a number of messages and/or bytes per second, as providers'
//! throttling policies demand ([`rate_limited`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{AppendOutcome, BoxFuture, BoxStream, Capabilities, ExistingItem, Target};
use crate::error::Result;
use crate::flags::Flags;
use crate::folder::{Folder, FolderPath, SpecialUse};
use crate::item::{CanonicalItem, Item, TargetKey};

/// What a layer changes about a target. Each method gets the wrapped target (`inner`) and by
/// default passes the call through to it; a hook overrides only what it changes.
pub trait TargetHook: Send + Sync {
    /// Called for [`Target::append`].
    fn append<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        inner.append(folder, batch)
    }

    /// Called for [`Target::existing`].
    fn existing<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
    ) -> BoxStream<'a, Result<ExistingItem>> {
        inner.existing(folder)
    }

    /// Called for [`Target::read_back`].
    fn read_back<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxStream<'a, Result<(TargetKey, Item)>> {
        inner.read_back(folder, keys)
    }
}

/// A target that forwards every call to `inner`, through `hook` where the hook has a say.
pub struct Hooked<H> {
    inner: Arc<dyn Target>,
    hook: H,
}

impl<H: TargetHook> Hooked<H> {
    /// Wraps `inner` in `hook`.
    pub fn new(inner: Arc<dyn Target>, hook: H) -> Self {
        Hooked { inner, hook }
    }

    /// The hook, for its counters and settings.
    pub fn hook(&self) -> &H {
        &self.hook
    }

    /// The wrapped target.
    pub fn inner(&self) -> &Arc<dyn Target> {
        &self.inner
    }
}

impl<H: TargetHook> Target for Hooked<H> {
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
        self.hook.append(&*self.inner, folder, batch)
    }

    fn existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingItem>> {
        self.hook.existing(&*self.inner, folder)
    }

    fn read_back<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxStream<'a, Result<(TargetKey, Item)>> {
        self.hook.read_back(&*self.inner, folder, keys)
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

/// Paces appends. Pacing reserves time slots in order, so concurrent writers share the rate
/// instead of each getting it.
pub struct RateLimit {
    items_per_sec: Option<f64>,
    bytes_per_sec: Option<f64>,
    next_free: Mutex<Instant>,
}

/// A target whose appends are paced ([`rate_limited`] builds one).
pub type RateLimitedTarget = Hooked<RateLimit>;

/// Wraps `inner` when a limit is given; returns it unchanged otherwise.
pub fn rate_limited(
    inner: Arc<dyn Target>,
    items_per_sec: Option<f64>,
    bytes_per_sec: Option<f64>,
) -> Arc<dyn Target> {
    match RateLimit::new(items_per_sec, bytes_per_sec) {
        Some(limit) => Arc::new(Hooked::new(inner, limit)),
        None => inner,
    }
}

impl RateLimit {
    /// A pace of at most `items_per_sec` messages and `bytes_per_sec` bytes per second; `None`
    /// when neither is a positive finite rate (nothing to limit).
    pub fn new(items_per_sec: Option<f64>, bytes_per_sec: Option<f64>) -> Option<Self> {
        let valid = |r: Option<f64>| r.filter(|r| *r > 0.0 && r.is_finite());
        let (items_per_sec, bytes_per_sec) = (valid(items_per_sec), valid(bytes_per_sec));
        if items_per_sec.is_none() && bytes_per_sec.is_none() {
            return None;
        }
        Some(RateLimit {
            items_per_sec,
            bytes_per_sec,
            next_free: Mutex::new(Instant::now()),
        })
    }

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

impl TargetHook for RateLimit {
    fn append<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            let bytes = batch.iter().map(CanonicalItem::size).sum();
            let start = self.reserve(batch.len(), bytes);
            tokio::time::sleep_until(start.into()).await;
            inner.append(folder, batch).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::StreamExt;

    use super::*;
    use crate::{Copier, CopyOptions, Error, ItemMeta, MemoryState, MemoryStore};

    /// Refuses every appended item without letting it reach the store; says nothing else.
    #[derive(Default)]
    struct RefusesAppends {
        refused: AtomicUsize,
    }

    impl TargetHook for RefusesAppends {
        fn append<'a>(
            &'a self,
            _inner: &'a dyn Target,
            _folder: &'a FolderPath,
            batch: &'a [CanonicalItem],
        ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
            self.refused.fetch_add(batch.len(), Ordering::SeqCst);
            let refuse = |i: &CanonicalItem| {
                Err(Error::item("refused by the hook").with_item(i.meta.key.clone()))
            };
            Box::pin(async move { Ok(batch.iter().map(refuse).collect()) })
        }
    }

    #[tokio::test]
    async fn a_hook_changes_only_append_and_everything_else_reaches_the_inner_store() {
        let store = MemoryStore::new();
        let inbox = FolderPath::inbox();
        let body = bytes::Bytes::from_static(b"Subject: kept\r\n\r\nhi\r\n");
        store.insert(&inbox, body.clone(), Flags::default(), None);
        let target = Hooked::new(Arc::new(store.clone()), RefusesAppends::default());
        assert_eq!(
            target.capabilities(),
            Target::capabilities(&store),
            "capabilities"
        );

        // Intercepted: the hook answers, the store never sees the batch.
        let item = CanonicalItem::prepare(Item {
            folder: inbox.clone(),
            meta: ItemMeta {
                key: "9".into(),
                size: 20,
                flags: Flags::default(),
                internal_date: None,
            },
            body: bytes::Bytes::from_static(b"Subject: new\r\n\r\n"),
        })
        .expect("prepare");
        let outcomes = target.append(&inbox, &[item]).await.expect("append");
        assert!(matches!(&outcomes[..], [Err(_)]), "{outcomes:?}");
        assert_eq!(target.hook().refused.load(Ordering::SeqCst), 1);
        assert_eq!(store.messages(&inbox).len(), 1);

        // Passed through: folders, listing, read-back, flags and deletion act on the store.
        let archive = FolderPath::new(["Archive"]);
        target.ensure_folder(&archive, None).await.expect("ensure");
        assert!(store.folder_paths().contains(&archive));
        let folders = target.list_folders().await.expect("folders");
        assert_eq!(folders.len(), 2, "{folders:?}");
        let existing: Vec<ExistingItem> = target
            .existing(&inbox)
            .map(|r| r.expect("existing"))
            .collect()
            .await;
        assert_eq!(existing.len(), 1);
        let key = existing[0].key.clone();
        let read: Vec<(TargetKey, Item)> = target
            .read_back(&inbox, vec![key.clone()])
            .map(|r| r.expect("read back"))
            .collect()
            .await;
        assert_eq!(read[0].1.body, body);
        let seen = Flags {
            seen: true,
            ..Flags::default()
        };
        target
            .set_flags(&inbox, vec![(key.clone(), seen.clone())])
            .await
            .expect("set flags");
        assert_eq!(store.messages(&inbox)[&1].flags, seen);
        target.delete(&inbox, vec![key]).await.expect("delete");
        assert!(store.messages(&inbox).is_empty());
    }

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
