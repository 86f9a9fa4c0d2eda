//! Layers: cross-cutting behaviour that wraps any backend instead of living in each one (in the
//! spirit of tower and OpenDAL).
//!
//! A layer is a hook inside a [`Hooked`] backend. [`SourceHook`] and [`TargetHook`] have one
//! method per trait method; each gets the wrapped backend (`inner`) and by default passes the
//! call through, so a hook overrides only the calls it changes, and a wrapper cannot silently
//! drop a call it forgot to forward (such as `set_flags`, which falls back to "refuse" when
//! not forwarded). Tests use the same building block to make a backend misbehave on cue.
//!
//! The layers the engine applies ([`LayerStack`], built from [`LayerOptions`]), innermost
//! first:
//! - [`retry::Retry`]: retries idempotent calls on transient errors with backon's exponential
//!   backoff, then marks the error persistent so no outer loop retries it again. Appends are
//!   never retried here: only the copier knows how to find out what an interrupted append
//!   stored, so the resolution-aware append retry stays in the copier.
//! - [`rate::RateLimit`]: paces appends to messages and/or bytes per second.
//! - [`metrics::Metrics`]: counts calls, items, bytes and errors, and times appends and fetches
//!   into histograms the binary can expose.
//! - [`tracing::Traced`]: a span per call, with the folder, inside the caller's mailbox span.

pub mod metrics;
pub mod rate;
pub mod retry;
pub mod state_hook;
pub mod state_timing;
pub mod tracing;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::backend::{
    AppendOutcome, BoxFuture, BoxStream, Capabilities, Checkpoint, ExistingItem, Source, Target,
};
use crate::error::Result;
use crate::flags::Flags;
use crate::folder::{Folder, FolderPath, SpecialUse};
use crate::item::{CanonicalItem, Item, ItemMeta, TargetKey};

pub use metrics::{Metrics, MetricsSnapshot};
pub use rate::{RateLimit, RateLimitedTarget, rate_limited};
pub use retry::{Retry, RetryPolicy};
pub use state_hook::{HookedState, StateHook};
pub use state_timing::TimedState;
pub use tracing::Traced;

/// What a layer changes about a source. Each method gets the wrapped source (`inner`) and by
/// default passes the call through to it; a hook overrides only what it changes.
pub trait SourceHook: Send + Sync {
    /// Called for [`Source::list_folders`].
    fn list_folders<'a>(&'a self, inner: &'a dyn Source) -> BoxFuture<'a, Result<Vec<Folder>>> {
        inner.list_folders()
    }

    /// Called for [`Source::list_items`].
    fn list_items<'a>(
        &'a self,
        inner: &'a dyn Source,
        folder: &'a FolderPath,
        after: Option<Checkpoint>,
    ) -> BoxStream<'a, Result<ItemMeta>> {
        inner.list_items(folder, after)
    }

    /// Called for [`Source::fetch`].
    fn fetch<'a>(
        &'a self,
        inner: &'a dyn Source,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        inner.fetch(folder, items)
    }
}

/// What a layer changes about a target. Each method gets the wrapped target (`inner`) and by
/// default passes the call through to it; a hook overrides only what it changes.
pub trait TargetHook: Send + Sync {
    /// Called for [`Target::list_folders`].
    fn list_folders<'a>(&'a self, inner: &'a dyn Target) -> BoxFuture<'a, Result<Vec<Folder>>> {
        inner.list_folders()
    }

    /// Called for [`Target::ensure_folder`].
    fn ensure_folder<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        special_use: Option<SpecialUse>,
    ) -> BoxFuture<'a, Result<()>> {
        inner.ensure_folder(folder, special_use)
    }

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

    /// Called for [`Target::set_flags`].
    fn set_flags<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        changes: Vec<(TargetKey, Flags)>,
    ) -> BoxFuture<'a, Result<()>> {
        inner.set_flags(folder, changes)
    }

    /// Called for [`Target::delete`].
    fn delete<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxFuture<'a, Result<()>> {
        inner.delete(folder, keys)
    }
}

impl<H: SourceHook + ?Sized> SourceHook for Arc<H> {
    fn list_folders<'a>(&'a self, inner: &'a dyn Source) -> BoxFuture<'a, Result<Vec<Folder>>> {
        (**self).list_folders(inner)
    }
    fn list_items<'a>(
        &'a self,
        inner: &'a dyn Source,
        folder: &'a FolderPath,
        after: Option<Checkpoint>,
    ) -> BoxStream<'a, Result<ItemMeta>> {
        (**self).list_items(inner, folder, after)
    }
    fn fetch<'a>(
        &'a self,
        inner: &'a dyn Source,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        (**self).fetch(inner, folder, items)
    }
}

impl<H: TargetHook + ?Sized> TargetHook for Arc<H> {
    fn list_folders<'a>(&'a self, inner: &'a dyn Target) -> BoxFuture<'a, Result<Vec<Folder>>> {
        (**self).list_folders(inner)
    }
    fn ensure_folder<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        special_use: Option<SpecialUse>,
    ) -> BoxFuture<'a, Result<()>> {
        (**self).ensure_folder(inner, folder, special_use)
    }
    fn append<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        (**self).append(inner, folder, batch)
    }
    fn existing<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
    ) -> BoxStream<'a, Result<ExistingItem>> {
        (**self).existing(inner, folder)
    }
    fn read_back<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxStream<'a, Result<(TargetKey, Item)>> {
        (**self).read_back(inner, folder, keys)
    }
    fn set_flags<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        changes: Vec<(TargetKey, Flags)>,
    ) -> BoxFuture<'a, Result<()>> {
        (**self).set_flags(inner, folder, changes)
    }
    fn delete<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxFuture<'a, Result<()>> {
        (**self).delete(inner, folder, keys)
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
        self.hook.list_folders(&*self.inner)
    }

    fn ensure_folder<'a>(
        &'a self,
        folder: &'a FolderPath,
        special_use: Option<SpecialUse>,
    ) -> BoxFuture<'a, Result<()>> {
        self.hook.ensure_folder(&*self.inner, folder, special_use)
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
        self.hook.set_flags(&*self.inner, folder, changes)
    }

    fn delete<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxFuture<'a, Result<()>> {
        self.hook.delete(&*self.inner, folder, keys)
    }
}

/// A source that forwards every call to `inner`, through `hook` where the hook has a say.
pub struct HookedSource<H> {
    inner: Arc<dyn Source>,
    hook: H,
}

impl<H: SourceHook> HookedSource<H> {
    /// Wraps `inner` in `hook`.
    pub fn new(inner: Arc<dyn Source>, hook: H) -> Self {
        HookedSource { inner, hook }
    }

    /// The hook, for its counters and settings.
    pub fn hook(&self) -> &H {
        &self.hook
    }
}

impl<H: SourceHook> Source for HookedSource<H> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        self.hook.list_folders(&*self.inner)
    }

    fn list_items<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<Checkpoint>,
    ) -> BoxStream<'a, Result<ItemMeta>> {
        self.hook.list_items(&*self.inner, folder, after)
    }

    fn fetch<'a>(
        &'a self,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        self.hook.fetch(&*self.inner, folder, items)
    }
}

/// Which layers the engine puts around a mailbox's backends. Serde, so that plan files and the
/// command line choose them the same way; the library builds and applies them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LayerOptions {
    /// Retry idempotent calls on transient errors (default: on).
    pub retry: RetryPolicy,
    /// Appended messages per second at most (default: no limit).
    pub max_msgs_per_sec: Option<f64>,
    /// Appended bytes per second at most (default: no limit).
    pub max_bytes_per_sec: Option<u64>,
    /// A span per backend call (default: on; costs nothing when no subscriber listens).
    pub tracing: bool,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            retry: RetryPolicy::default(),
            max_msgs_per_sec: None,
            max_bytes_per_sec: None,
            tracing: true,
        }
    }
}

/// The layers built for one mailbox, and the metrics they feed.
#[derive(Clone)]
pub struct LayerStack {
    options: LayerOptions,
    metrics: Arc<Metrics>,
    /// Shared by every writer of the mailbox, so the rate is the mailbox's, not each writer's.
    rate: Option<Arc<RateLimit>>,
}

impl LayerStack {
    /// Builds the layers `options` ask for, feeding `metrics` (shared by every mailbox of a
    /// process when the caller passes the same one).
    pub fn new(options: LayerOptions, metrics: Arc<Metrics>) -> Self {
        let rate = RateLimit::new(
            options.max_msgs_per_sec,
            options.max_bytes_per_sec.map(|b| b as f64),
        )
        .map(Arc::new);
        LayerStack {
            options,
            metrics,
            rate,
        }
    }

    /// The metrics the layers feed.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Wraps a source: retry, metrics, tracing (innermost first).
    pub fn source(&self, inner: Arc<dyn Source>) -> Arc<dyn Source> {
        let mut s = inner;
        if self.options.retry.enabled() {
            s = Arc::new(HookedSource::new(s, Retry::new(self.options.retry.clone())));
        }
        s = Arc::new(HookedSource::new(s, Arc::clone(&self.metrics)));
        if self.options.tracing {
            s = Arc::new(HookedSource::new(s, Traced::source()));
        }
        s
    }

    /// Wraps a target: retry, rate, metrics, tracing (innermost first).
    pub fn target(&self, inner: Arc<dyn Target>) -> Arc<dyn Target> {
        let mut t = inner;
        if self.options.retry.enabled() {
            t = Arc::new(Hooked::new(t, Retry::new(self.options.retry.clone())));
        }
        if let Some(rate) = &self.rate {
            t = Arc::new(Hooked::new(t, Arc::clone(rate)));
        }
        t = Arc::new(Hooked::new(t, Arc::clone(&self.metrics)));
        if self.options.tracing {
            t = Arc::new(Hooked::new(t, Traced::target()));
        }
        t
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
            started.elapsed() >= std::time::Duration::from_millis(4_500),
            "{:?}",
            started.elapsed()
        );
    }

    /// Fails the first `failures` listings and appends with a transient error.
    #[derive(Default)]
    struct Flaky {
        failures: usize,
        listings: AtomicUsize,
        appends: AtomicUsize,
    }

    impl TargetHook for Flaky {
        fn list_folders<'a>(&'a self, inner: &'a dyn Target) -> BoxFuture<'a, Result<Vec<Folder>>> {
            let n = self.listings.fetch_add(1, Ordering::SeqCst);
            if n < self.failures {
                return Box::pin(async { Err(Error::transient("connection reset")) });
            }
            inner.list_folders()
        }

        fn existing<'a>(
            &'a self,
            inner: &'a dyn Target,
            folder: &'a FolderPath,
        ) -> BoxStream<'a, Result<ExistingItem>> {
            let n = self.listings.fetch_add(1, Ordering::SeqCst);
            if n < self.failures {
                return Box::pin(futures_util::stream::iter([Err(Error::transient("reset"))]));
            }
            inner.existing(folder)
        }

        fn append<'a>(
            &'a self,
            _inner: &'a dyn Target,
            _folder: &'a FolderPath,
            _batch: &'a [CanonicalItem],
        ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
            self.appends.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Err(Error::transient("connection reset")) })
        }
    }

    fn fast_retry(attempts: u32) -> Retry {
        Retry::new(RetryPolicy {
            attempts,
            first_delay_ms: 1,
            max_delay_ms: 2,
        })
    }

    #[tokio::test]
    async fn retry_recovers_idempotent_calls_and_never_repeats_an_append() {
        let flaky = Arc::new(Flaky {
            failures: 2,
            ..Flaky::default()
        });
        let store = MemoryStore::new();
        store.insert(
            &FolderPath::inbox(),
            bytes::Bytes::from_static(b"S: x\r\n\r\n"),
            Flags::default(),
            None,
        );
        let inner: Arc<dyn Target> = Arc::new(Hooked::new(Arc::new(store), Arc::clone(&flaky)));
        let target = Hooked::new(inner, fast_retry(5));
        assert_eq!(
            target.list_folders().await.expect("listing recovers").len(),
            1
        );
        assert_eq!(flaky.listings.load(Ordering::SeqCst), 3);

        flaky.listings.store(0, Ordering::SeqCst);
        let existing: Vec<_> = target.existing(&FolderPath::inbox()).collect().await;
        assert!(matches!(&existing[..], [Ok(_)]), "{existing:?}");

        let err = target
            .append(&FolderPath::inbox(), &[])
            .await
            .expect_err("append fails");
        assert!(err.is_retryable(), "the layer leaves appends to the copier");
        assert_eq!(flaky.appends.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retry_gives_up_with_a_persistent_error_that_outer_loops_leave_alone() {
        let flaky = Arc::new(Flaky {
            failures: 100,
            ..Flaky::default()
        });
        let inner: Arc<dyn Target> = Arc::new(Hooked::new(
            Arc::new(MemoryStore::new()),
            Arc::clone(&flaky),
        ));
        let inner_retry: Arc<dyn Target> = Arc::new(Hooked::new(inner, fast_retry(3)));
        let outer = Hooked::new(inner_retry, fast_retry(3));
        let err = outer.list_folders().await.expect_err("gives up");
        assert!(err.is_transient() && !err.is_retryable());
        // Three attempts by the inner loop; the outer one did not multiply them.
        assert_eq!(flaky.listings.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_stream_that_ends_at_once_is_not_polled_again() {
        let target = Hooked::new(Arc::new(MemoryStore::new()), fast_retry(3));
        let none: Vec<_> = target
            .existing(&FolderPath::new(["Nothing"]))
            .collect()
            .await;
        assert!(none.is_empty());
    }
}
