//! A [`StateStore`] decorator that times the store's writes (`record`, `set_checkpoint`) into
//! [`Metrics`]' state commit histogram. A decorator rather than a hook in each store: every
//! store (SQLite, in memory, an embedder's own) is timed the same way, and the stores stay free
//! of metrics. Reads pass through untimed: a commit is what a slow disk makes slow.

use std::sync::Arc;
use std::time::Instant;

use super::Metrics;
use super::state_hook::{HookedState, StateHook};
use crate::backend::BoxFuture;
use crate::error::Result;
use crate::folder::FolderStatus;
use crate::state::{FolderScope, ItemRecord, StateStore};

/// Times a state store's writes (a [`StateHook`]; [`TimedState::wrap`] puts it on).
pub struct TimedState {
    metrics: Arc<Metrics>,
}

impl TimedState {
    /// Wraps `inner`; its write latencies go to `metrics`.
    pub fn wrap(inner: Arc<dyn StateStore>, metrics: Arc<Metrics>) -> Arc<dyn StateStore> {
        Arc::new(HookedState::new(inner, TimedState { metrics }))
    }
}

impl StateHook for TimedState {
    fn set_checkpoint<'a>(
        &'a self,
        inner: &'a dyn StateStore,
        scope: &'a FolderScope,
        status: &'a FolderStatus,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let started = Instant::now();
            let out = inner.set_checkpoint(scope, status).await;
            self.metrics.observe_state_commit(started);
            out
        })
    }

    fn record<'a>(
        &'a self,
        inner: &'a dyn StateStore,
        scope: &'a FolderScope,
        records: &'a [ItemRecord],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let started = Instant::now();
            let out = inner.record(scope, records).await;
            self.metrics.observe_state_commit(started);
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::FolderPath;
    use crate::state::MemoryState;

    #[tokio::test]
    async fn writes_are_timed_and_reads_are_not() {
        let metrics = Arc::new(Metrics::new());
        let state = TimedState::wrap(Arc::new(MemoryState::new()), Arc::clone(&metrics));
        let scope = FolderScope {
            migration: "m".into(),
            folder: FolderPath::new(["INBOX"]),
            validity: 1,
        };
        state.record(&scope, &[]).await.expect("record");
        state
            .set_checkpoint(&scope, &FolderStatus::default())
            .await
            .expect("checkpoint");
        state.checkpoint(&scope).await.expect("read");
        state.lookup(&scope, &[]).await.expect("lookup");
        let snap = metrics.snapshot().state_commit_latency;
        assert_eq!(snap.count, 2);
        assert_eq!(snap.buckets.last().map(|b| b.1), Some(2));
    }
}
