//! A [`TargetHook`] that passes every call through and watches how the copier treats uncertain
//! appends, so a fault test that finds duplicates can say where they came from. An append that
//! failed transiently leaves its items *uncertain* until a listing of the folder (`existing`,
//! which the copier's resolution starts with) completes; appending an uncertain item again
//! before that is a **blind re-append**: if the first append had landed, that is a duplicate.
//!
//! The copier must never do that: after a failed append it lists the folder (under the
//! folder's append gate) before anything is appended again, so the fault test asserts that
//! [`Watcher::blind`] stays 0.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use mailferry_core::{
    AppendOutcome, BoxFuture, BoxStream, CanonicalItem, ExistingItem, FolderPath, Item, Result,
    SourceKey, Target, TargetHook, TargetKey,
};

/// Watches a target it is hooked into ([`mailferry_core::Hooked`]); see the module docs.
#[derive(Default)]
pub struct Watcher {
    uncertain: Mutex<HashMap<FolderPath, HashSet<SourceKey>>>,
    blind: AtomicU64,
    failed_appends: AtomicU64,
    failed_listings: AtomicU64,
    failed_read_backs: AtomicU64,
}

impl Watcher {
    /// Read-backs that yielded a transient error.
    pub fn failed_read_backs(&self) -> u64 {
        self.failed_read_backs.load(Ordering::SeqCst)
    }

    /// Items appended again while uncertain.
    pub fn blind(&self) -> u64 {
        self.blind.load(Ordering::SeqCst)
    }

    /// Appends that failed as a whole (transiently).
    pub fn failed_appends(&self) -> u64 {
        self.failed_appends.load(Ordering::SeqCst)
    }

    /// Listings (`existing`) that ended in an error.
    pub fn failed_listings(&self) -> u64 {
        self.failed_listings.load(Ordering::SeqCst)
    }
}

impl TargetHook for Watcher {
    fn append<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            if let Ok(uncertain) = self.uncertain.lock()
                && let Some(keys) = uncertain.get(folder)
            {
                let blind = batch.iter().filter(|i| keys.contains(&i.meta.key)).count();
                self.blind.fetch_add(blind as u64, Ordering::SeqCst);
            }
            let result = inner.append(folder, batch).await;
            if let Ok(mut uncertain) = self.uncertain.lock() {
                let keys = uncertain.entry(folder.clone()).or_default();
                let batch_keys = batch.iter().map(|i| i.meta.key.clone());
                match &result {
                    Err(e) if e.is_transient() => {
                        self.failed_appends.fetch_add(1, Ordering::SeqCst);
                        keys.extend(batch_keys);
                    }
                    _ => batch_keys.for_each(|k| {
                        keys.remove(&k);
                    }),
                }
            }
            result
        })
    }

    fn existing<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
    ) -> BoxStream<'a, Result<ExistingItem>> {
        let inner = inner.existing(folder);
        Box::pin(futures_util::stream::unfold(
            inner,
            move |mut inner| async move {
                match inner.next().await {
                    // The copier stops reading at the first error, so it is counted here.
                    Some(Err(e)) => {
                        self.failed_listings.fetch_add(1, Ordering::SeqCst);
                        Some((Err(e), inner))
                    }
                    Some(item) => Some((item, inner)),
                    None => {
                        if let Ok(mut uncertain) = self.uncertain.lock() {
                            // A complete listing lets the copier resolve what is uncertain.
                            uncertain.remove(folder);
                        }
                        None
                    }
                }
            },
        ))
    }

    fn read_back<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxStream<'a, Result<(TargetKey, Item)>> {
        Box::pin(inner.read_back(folder, keys).map(move |r| {
            r.inspect_err(|e| {
                if e.is_transient() {
                    self.failed_read_backs.fetch_add(1, Ordering::SeqCst);
                }
            })
        }))
    }
}
