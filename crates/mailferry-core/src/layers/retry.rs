//! Retry of idempotent calls, on backon's exponential backoff with jitter.
//!
//! Which calls: listing folders, creating a folder (it is created "unless it exists"), setting
//! flags and deleting (both converge on the same end state), and the listing/reading streams
//! *before they yield anything* (a stream that failed part-way would repeat what it already
//! gave, so its error goes up instead). Appends are never retried here: an append that failed
//! may still have stored some messages, and only the copier can find out which ones before it
//! writes again.
//!
//! When the policy gives up, a transient error is marked persistent
//! ([`crate::Error::persistent`]): every loop outside this one sees it is not to be retried
//! again, so retries never nest.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use futures_util::{FutureExt, StreamExt, stream};
use serde::{Deserialize, Serialize};

use super::{SourceHook, TargetHook};
use crate::backend::{BoxFuture, BoxStream, Checkpoint, ExistingItem, Source, Target};
use crate::error::{Error, Result};
use crate::flags::Flags;
use crate::folder::{Folder, FolderPath, SpecialUse};
use crate::item::{Item, ItemMeta, TargetKey};

/// How transient failures are retried: the one schedule every retry loop of mailferry uses
/// (the retry layer, the copier's resolution-aware append retry, the IMAP backend's
/// reconnects).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 5; 1 disables retries).
    pub attempts: u32,
    /// Delay before the first retry, in milliseconds, doubled per attempt (default 200).
    pub first_delay_ms: u64,
    /// The longest delay between attempts, in milliseconds (default 30,000).
    pub max_delay_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_delay_ms: 200,
            max_delay_ms: 30_000,
        }
    }
}

impl RetryPolicy {
    /// Whether any retry happens.
    pub fn enabled(&self) -> bool {
        self.attempts > 1
    }

    /// The backoff schedule: exponential from `first_delay_ms`, capped, with jitter.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.first_delay_ms.max(1)))
            .with_max_delay(Duration::from_millis(
                self.max_delay_ms.max(self.first_delay_ms),
            ))
            .with_max_times(self.attempts.saturating_sub(1) as usize)
            .with_jitter()
    }

    /// The delay before retry `attempt` (1-based), without jitter: for loops that resume what
    /// they were doing (an IMAP listing that shrinks its range) rather than repeat a call.
    pub fn delay(&self, attempt: u32) -> Duration {
        let first = self.first_delay_ms.max(1);
        let ms = first.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        Duration::from_millis(ms.min(self.max_delay_ms.max(first)))
    }

    /// Whether a loop that has made `attempt` attempts may make another.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.attempts
    }

    /// The delays between attempts, in order (what [`backoff`](Self::backoff) builds).
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        self.backoff().build()
    }

    /// Runs `call` until it succeeds, fails with an error that is not retryable, or the policy
    /// gives up (then the error is marked persistent).
    pub async fn run<T, F, Fut>(&self, what: &str, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        call.retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(Error::is_retryable)
            .notify(|e: &Error, delay: Duration| {
                tracing::warn!(error = %e, "{what} failed, retrying in {delay:?}");
            })
            .await
            .map_err(give_up)
    }

    /// A stream made by `make`, made again while its first element is a retryable error.
    pub fn stream<'a, T: Send + 'a>(
        &self,
        make: impl Fn() -> BoxStream<'a, Result<T>> + Send + 'a,
    ) -> BoxStream<'a, Result<T>> {
        let mut delays = self.delays();
        let start = async move {
            loop {
                let mut s = make();
                match s.next().await {
                    Some(Err(e)) if e.is_retryable() => match delays.next() {
                        Some(delay) => {
                            tracing::warn!(error = %e, "listing failed, retrying in {delay:?}");
                            tokio::time::sleep(delay).await;
                        }
                        None => return stream::iter([Err(give_up(e))]).boxed(),
                    },
                    // An ended stream must not be polled again (some panic when they are).
                    None => return stream::empty().boxed(),
                    Some(first) => return stream::iter([first]).chain(s).boxed(),
                }
            }
        };
        Box::pin(start.into_stream().flatten())
    }
}

/// What a retry loop returns when it stops: a transient error it gave up on is marked
/// persistent, so no loop outside retries it again.
pub fn give_up(e: Error) -> Error {
    if e.is_transient() { e.persistent() } else { e }
}

/// The retry layer (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Retry {
    policy: RetryPolicy,
}

impl Retry {
    /// A layer retrying with `policy`.
    pub fn new(policy: RetryPolicy) -> Self {
        Retry { policy }
    }
}

impl SourceHook for Retry {
    fn list_folders<'a>(&'a self, inner: &'a dyn Source) -> BoxFuture<'a, Result<Vec<Folder>>> {
        Box::pin(
            self.policy
                .run("listing source folders", || inner.list_folders()),
        )
    }

    fn list_items<'a>(
        &'a self,
        inner: &'a dyn Source,
        folder: &'a FolderPath,
        after: Option<Checkpoint>,
    ) -> BoxStream<'a, Result<ItemMeta>> {
        self.policy.stream(move || inner.list_items(folder, after))
    }

    fn fetch<'a>(
        &'a self,
        inner: &'a dyn Source,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        self.policy
            .stream(move || inner.fetch(folder, items.clone()))
    }
}

impl TargetHook for Retry {
    fn list_folders<'a>(&'a self, inner: &'a dyn Target) -> BoxFuture<'a, Result<Vec<Folder>>> {
        Box::pin(
            self.policy
                .run("listing target folders", || inner.list_folders()),
        )
    }

    fn ensure_folder<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        special_use: Option<SpecialUse>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.policy.run("creating a folder", move || {
            inner.ensure_folder(folder, special_use)
        }))
    }

    fn existing<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
    ) -> BoxStream<'a, Result<ExistingItem>> {
        self.policy.stream(move || inner.existing(folder))
    }

    fn read_back<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxStream<'a, Result<(TargetKey, Item)>> {
        self.policy
            .stream(move || inner.read_back(folder, keys.clone()))
    }

    fn set_flags<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        changes: Vec<(TargetKey, Flags)>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.policy.run("setting flags", move || {
            inner.set_flags(folder, changes.clone())
        }))
    }

    fn delete<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.policy.run("deleting messages", move || {
            inner.delete(folder, keys.clone())
        }))
    }
}
