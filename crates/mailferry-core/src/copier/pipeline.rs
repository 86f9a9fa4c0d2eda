//! One folder's pipeline: producer (list, skip, fetch, hand to rayon) and batcher (in order; a
//! partial batch lingers briefly for the next item, and not at all while a producer waits for
//! budget, so it never holds the budget hostage). Delivery (writers, append retry) lives in
//! [`super::delivery`], finding out what an uncertain append stored in [`super::resolution`]:
//! this module only moves items, it never decides whether one reached the target.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};

use super::index::TargetIndex;
use super::{Budget, BudgetPermit, FolderJob, Inner};
use crate::backend::Checkpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::item::{CanonicalItem, ItemMeta, TargetKey};
use crate::progress::Progress;
use crate::report::{Counts, FolderReport, ItemIssue};
use crate::state::{FolderScope, ItemRecord, ItemStatus};

/// How often a lingering batch checks whether a producer waits for budget.
const LINGER_STEP: std::time::Duration = std::time::Duration::from_millis(2);

/// An item on its way through rayon, with its budget share.
struct Preparing {
    result: oneshot::Receiver<Result<CanonicalItem>>,
    permit: BudgetPermit,
}

/// Items ready for the target.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) items: Vec<CanonicalItem>,
    pub(super) bytes: u64,
    pub(super) permits: Vec<BudgetPermit>,
}

/// What the stages of one folder share.
pub(super) struct FolderRun {
    pub(super) job: FolderJob,
    pub(super) scope: FolderScope,
    pub(super) report: Mutex<FolderReport>,
    /// Present on first contact (dedupe) or after a crash (resolution).
    pub(super) index: tokio::sync::Mutex<Option<TargetIndex>>,
    /// Appends hold it shared until recorded; resolutions hold it exclusively.
    pub(super) append_gate: tokio::sync::RwLock<()>,
}

impl FolderRun {
    pub(super) fn account(
        &self,
        inner: &Inner,
        delta: Counts,
        issues: Vec<ItemIssue>,
        filtered: bool,
    ) {
        if let Ok(mut r) = self.report.lock() {
            r.counts.add(&delta);
            if filtered {
                r.filtered.extend(issues);
            } else {
                r.failures.extend(issues);
            }
        }
        inner.progress.send(Progress::Items {
            folder: self.job.source.path.clone(),
            delta,
        });
    }
}

pub(super) fn record(
    item: &CanonicalItem,
    status: ItemStatus,
    target_key: Option<TargetKey>,
) -> ItemRecord {
    ItemRecord {
        key: item.meta.key.clone(),
        checksum: Some(item.checksum),
        size: item.size(),
        fingerprint: item.headers.fingerprint(),
        target_key,
        status,
        reason: None,
    }
}

pub(super) fn issue(key: impl ToString, err: &Error) -> ItemIssue {
    ItemIssue {
        key: key.to_string(),
        reason: err.to_string(),
        kind: Some(err.kind()),
    }
}

impl Inner {
    pub(super) async fn copy_folder(
        self: Arc<Self>,
        job: FolderJob,
        budget: Budget,
    ) -> Result<FolderReport> {
        let started = Instant::now();
        let run = FolderRun {
            scope: FolderScope {
                migration: self.options.migration.clone(),
                folder: job.source.path.clone(),
                validity: job.source.status.validity,
            },
            report: Mutex::new(FolderReport {
                source: job.source.path.clone(),
                target: job.target.clone(),
                started_unix: crate::report::unix_now(),
                ..FolderReport::default()
            }),
            index: tokio::sync::Mutex::new(None),
            append_gate: tokio::sync::RwLock::new(()),
            job,
        };
        let outcome = self.copy_folder_inner(&run, &budget).await;
        let mut report = run
            .report
            .into_inner()
            .map_err(|_| Error::fatal("folder report lock poisoned"))?;
        match outcome {
            Ok(()) => {}
            Err(e) if e.is_fatal() => {
                return Err(e.context(format!("folder {}", run.job.source.path)));
            }
            Err(e) => report.error = Some(e.to_string()),
        }
        report.duration_secs = started.elapsed().as_secs_f64();
        self.progress.send(Progress::FolderFinished {
            folder: run.job.source.path.clone(),
            counts: report.counts,
        });
        Ok(report)
    }

    /// A folder the target cannot create: every message in it is counted as failed with the
    /// folder's reason, so the report accounts for each one instead of losing them from the
    /// counts. Messages the state already has as copied (an earlier run) stay copied.
    async fn fail_whole_folder(&self, run: &FolderRun, why: &Error) {
        let mut listed = self.source.list_items(&run.job.source.path, None);
        let mut keys = Vec::new();
        while let Some(meta) = listed.next().await {
            match meta {
                Ok(meta) => keys.push(meta.key),
                Err(_) => break,
            }
        }
        let known = self
            .state
            .lookup(&run.scope, &keys)
            .await
            .unwrap_or_default();
        let mut delta = Counts::default();
        let mut issues = Vec::new();
        for key in keys {
            delta.seen += 1;
            if known
                .get(&key)
                .is_some_and(|r| r.status == ItemStatus::Done)
            {
                delta.already_copied += 1;
            } else {
                delta.failed += 1;
                issues.push(issue(&key, why));
            }
        }
        run.account(self, delta, issues, false);
    }

    async fn copy_folder_inner(&self, run: &FolderRun, budget: &Budget) -> Result<()> {
        let status = &run.job.source.status;
        if let Err(e) = self
            .target
            .ensure_folder(&run.job.target, run.job.special_use)
            .await
        {
            let e = e.context(format!("creating target folder {}", run.job.target));
            if !e.is_fatal() {
                self.fail_whole_folder(run, &e).await;
            }
            return Err(e);
        }
        let previous = self.state.checkpoint(&run.scope).await?;
        if !self.options.ignore_checkpoints && previous.as_ref() == Some(status) {
            // Nothing new to copy, but an earlier run's uncertain append may have committed
            // since: its surplus copy is removed now, not left for a run that has work to do.
            self.reconcile(run).await?;
            if let Ok(mut r) = run.report.lock() {
                r.unchanged = true;
                r.counts.seen = status.count;
                r.counts.already_copied = status.count;
            }
            return Ok(());
        }
        self.progress.send(Progress::FolderStarted {
            folder: run.job.source.path.clone(),
            total: status.count,
            bytes: status.size,
        });
        self.prepare_index(run, previous.is_none()).await?;
        // After resolution, so a pending item's copy is claimed by it first.
        self.reconcile(run).await?;

        let after = previous
            .filter(|p| {
                !self.options.ignore_checkpoints
                    && p.validity == status.validity
                    && self.source.capabilities().ordered_ids
            })
            .and_then(|p| p.next_id)
            .map(|next_id| Checkpoint {
                validity: status.validity,
                next_id,
            });
        let (item_tx, item_rx) = mpsc::channel(self.options.prepare_depth.max(1));
        let (batch_tx, batch_rx) = mpsc::channel(self.options.writers_per_folder.max(1));
        let batch_rx = tokio::sync::Mutex::new(batch_rx);
        let writers = join_all(
            (0..self.options.writers_per_folder.max(1)).map(|_| self.write_batches(run, &batch_rx)),
        );
        let (produced, (), written) = tokio::join!(
            self.produce(run, after, item_tx, budget),
            self.batch(run, item_rx, batch_tx, budget),
            writers
        );
        for w in written {
            w?;
        }
        produced?;
        // Late commits that landed while this pass ran (of appends it declared absent, or of
        // earlier ones).
        self.reconcile(run).await?;
        let clean = run
            .report
            .lock()
            .map(|r| r.counts.failed == 0 && r.error.is_none())
            .unwrap_or(false);
        if clean && !self.cancel.is_cancelled() {
            self.state.set_checkpoint(&run.scope, status).await?;
        }
        Ok(())
    }

    /// Lists, skips what is done or filtered, fetches, and hands items to rayon in order.
    async fn produce(
        &self,
        run: &FolderRun,
        after: Option<Checkpoint>,
        tx: mpsc::Sender<Preparing>,
        budget: &Budget,
    ) -> Result<()> {
        let mut metas = self.source.list_items(&run.job.source.path, after);
        let mut chunk = Vec::with_capacity(self.options.list_chunk);
        loop {
            let next = metas.next().await.transpose()?;
            let end = next.is_none();
            chunk.extend(next);
            if (chunk.len() >= self.options.list_chunk || end) && !chunk.is_empty() {
                let batch =
                    std::mem::replace(&mut chunk, Vec::with_capacity(self.options.list_chunk));
                if !self.produce_chunk(run, batch, &tx, budget).await? {
                    return Ok(());
                }
            }
            if end || self.cancel.is_cancelled() {
                return Ok(());
            }
        }
    }

    /// Returns `false` when the pipeline downstream is gone or the run was cancelled.
    async fn produce_chunk(
        &self,
        run: &FolderRun,
        chunk: Vec<ItemMeta>,
        tx: &mpsc::Sender<Preparing>,
        budget: &Budget,
    ) -> Result<bool> {
        let keys: Vec<_> = chunk.iter().map(|m| m.key.clone()).collect();
        let known = self.state.lookup(&run.scope, &keys).await?;
        let mut delta = Counts::default();
        let mut filtered = Vec::new();
        let mut wanted = Vec::with_capacity(chunk.len());
        for meta in chunk {
            delta.seen += 1;
            if known
                .get(&meta.key)
                .is_some_and(|r| r.status == ItemStatus::Done)
            {
                delta.already_copied += 1;
            } else if let Some(reason) = self.options.filter.rejects(&meta) {
                delta.filtered += 1;
                filtered.push(ItemIssue {
                    key: meta.key.to_string(),
                    reason,
                    kind: None,
                });
            } else {
                wanted.push(meta);
            }
        }
        run.account(self, delta, filtered, true);
        if wanted.is_empty() {
            return Ok(true);
        }
        let mut items = self.source.fetch(&run.job.source.path, wanted);
        while let Some(fetched) = items.next().await {
            if self.cancel.is_cancelled() {
                return Ok(false);
            }
            let item = match fetched {
                Ok(item) => item,
                Err(e) if e.kind() == ErrorKind::Item => {
                    let key = e.item_key().map(ToString::to_string).unwrap_or_default();
                    let failed = Counts {
                        failed: 1,
                        ..Counts::default()
                    };
                    run.account(self, failed, vec![issue(key, &e)], false);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let permit = budget.acquire(item.body.len()).await;
            let (result_tx, result) = oneshot::channel();
            rayon::spawn(move || {
                let key = item.meta.key.clone();
                let prepared = catch_unwind(AssertUnwindSafe(|| CanonicalItem::prepare(item)))
                    .unwrap_or_else(|_| {
                        Err(Error::item("preparing this message panicked").with_item(key))
                    });
                let _ = result_tx.send(prepared);
            });
            if tx.send(Preparing { result, permit }).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Groups prepared items into batches, in order. A batch is sent when full, or when the next
    /// item does not come within the linger time, so a partial batch never waits for long on
    /// budget it is itself holding.
    async fn batch(
        &self,
        run: &FolderRun,
        mut rx: mpsc::Receiver<Preparing>,
        tx: mpsc::Sender<Batch>,
        budget: &Budget,
    ) {
        let batch_items = self.options.batch_items_for(run.job.source.status.count);
        let mut batch = Batch::default();
        loop {
            let next = if batch.items.is_empty() {
                rx.recv().await
            } else {
                match rx.try_recv() {
                    Ok(p) => Some(p),
                    // Linger briefly for more items: on a slow link, flushing at the first gap
                    // would send many tiny batches, each paying a round trip.
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match self.linger(&mut rx, budget).await {
                            Some(next) => next,
                            None => {
                                if tx.send(std::mem::take(&mut batch)).await.is_err() {
                                    return;
                                }
                                continue;
                            }
                        }
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            let Some(Preparing { result, permit }) = next else {
                break;
            };
            match result.await {
                Ok(Ok(item)) => {
                    batch.bytes += item.size();
                    batch.items.push(item);
                    batch.permits.push(permit);
                }
                Ok(Err(e)) => {
                    let key = e.item_key().map(ToString::to_string).unwrap_or_default();
                    let failed = Counts {
                        failed: 1,
                        ..Counts::default()
                    };
                    run.account(self, failed, vec![issue(key, &e)], false);
                }
                Err(_) => {
                    let e = Error::item("a message was lost while being prepared");
                    run.account(
                        self,
                        Counts {
                            failed: 1,
                            ..Counts::default()
                        },
                        vec![issue("", &e)],
                        false,
                    );
                }
            }
            let full = batch.items.len() >= batch_items || batch.bytes >= self.options.batch_bytes;
            if full && tx.send(std::mem::take(&mut batch)).await.is_err() {
                return;
            }
        }
        if !batch.items.is_empty() {
            let _ = tx.send(batch).await;
        }
    }

    /// Waits up to `batch_linger` for the next item (`Some`, which is `None` at the end of the
    /// stream), or gives up (`None`: send the batch now). It gives up at once when a producer
    /// waits for budget: the items it would bring are held back by the budget this partial
    /// batch holds, so lingering would only stall the pipeline — on a slow link, where the
    /// budget is what fills first, that stall cost more than half the rate.
    async fn linger(
        &self,
        rx: &mut mpsc::Receiver<Preparing>,
        budget: &Budget,
    ) -> Option<Option<Preparing>> {
        let deadline = tokio::time::Instant::now() + self.options.batch_linger;
        loop {
            if budget.starved() {
                return None;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            // `recv` is cancel-safe: an item that arrives as the step ends is not lost.
            if let Ok(next) = tokio::time::timeout(left.min(LINGER_STEP), rx.recv()).await {
                return Some(next);
            }
        }
    }
}
