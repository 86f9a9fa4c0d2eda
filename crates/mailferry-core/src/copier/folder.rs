//! One folder's pipeline: producer (list, skip, fetch, hand to rayon), batcher (in order; a
//! partial batch lingers briefly for the next item, and not at all while a producer waits for
//! budget, so it never holds the budget hostage), and writers (dedupe, record pending, append
//! with retry, record outcome).

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};

use super::index::{Match, TargetIndex, Uncertain};
use super::{Budget, BudgetPermit, FolderJob, Inner};
use crate::backend::{AppendOutcome, Checkpoint};
use crate::error::{Error, ErrorKind, Result};
use crate::item::{CanonicalItem, ItemMeta, SourceKey, TargetKey};
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
struct Batch {
    items: Vec<CanonicalItem>,
    bytes: u64,
    permits: Vec<BudgetPermit>,
}

/// What the stages of one folder share.
struct FolderRun {
    job: FolderJob,
    scope: FolderScope,
    report: Mutex<FolderReport>,
    /// Present on first contact (dedupe) or after a crash (resolution).
    index: tokio::sync::Mutex<Option<TargetIndex>>,
    /// Appends hold it shared until recorded; resolutions hold it exclusively.
    append_gate: tokio::sync::RwLock<()>,
}

impl FolderRun {
    fn account(&self, inner: &Inner, delta: Counts, issues: Vec<ItemIssue>, filtered: bool) {
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

fn record(item: &CanonicalItem, status: ItemStatus, target_key: Option<TargetKey>) -> ItemRecord {
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

fn issue(key: impl ToString, err: &Error) -> ItemIssue {
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

    async fn copy_folder_inner(&self, run: &FolderRun, budget: &Budget) -> Result<()> {
        let status = &run.job.source.status;
        self.target
            .ensure_folder(&run.job.target, run.job.special_use)
            .await
            .map_err(|e| e.context(format!("creating target folder {}", run.job.target)))?;
        let previous = self.state.checkpoint(&run.scope).await?;
        if !self.options.ignore_checkpoints && previous.as_ref() == Some(status) {
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

    /// Builds the target index when it is needed, resolves pending items left by a crash, and,
    /// when the source renumbered the folder, indexes what was copied under the old validity.
    async fn prepare_index(&self, run: &FolderRun, first_contact: bool) -> Result<()> {
        let pending = self
            .state
            .records(&run.scope, Some(ItemStatus::Pending))
            .await?;
        let mut renumbered = Vec::new();
        if first_contact {
            for validity in self.state.validities(&run.scope).await? {
                if validity == run.scope.validity {
                    continue;
                }
                let old = FolderScope {
                    validity,
                    ..run.scope.clone()
                };
                renumbered.extend(
                    self.state
                        .records(&old, Some(ItemStatus::Done))
                        .await?
                        .into_iter()
                        .filter_map(|r| Some((r.checksum?, r.target_key?))),
                );
            }
        }
        let wanted = !pending.is_empty()
            || !renumbered.is_empty()
            || (first_contact && self.options.dedupe_existing);
        if !wanted {
            return Ok(());
        }
        let uncertain: Vec<Uncertain> = pending
            .iter()
            .filter_map(|r| {
                Some(Uncertain {
                    key: r.key.clone(),
                    checksum: r.checksum?,
                    size: r.size,
                })
            })
            .collect();
        let (found, mut index) = self.resolve_settled(run, &uncertain).await?;
        if !renumbered.is_empty() {
            tracing::info!(
                folder = %run.job.source.path,
                "the source renumbered this folder; matching its items by checksum"
            );
            index.add_copied(renumbered);
        }
        let resolved: Vec<ItemRecord> = pending
            .into_iter()
            .filter_map(|mut r| {
                r.target_key = Some(found.get(&r.key)?.clone());
                r.status = ItemStatus::Done;
                Some(r)
            })
            .collect();
        if !resolved.is_empty() {
            tracing::info!(
                folder = %run.job.source.path,
                resolved = resolved.len(),
                "pending items from an interrupted run were found in the target"
            );
            self.state.record(&run.scope, &resolved).await?;
        }
        if !index.is_empty() {
            *run.index.lock().await = Some(index);
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

    async fn write_batches(
        &self,
        run: &FolderRun,
        rx: &tokio::sync::Mutex<mpsc::Receiver<Batch>>,
    ) -> Result<()> {
        loop {
            let Some(batch) = rx.lock().await.recv().await else {
                return Ok(());
            };
            if let Err(e) = self.write_batch(run, batch).await {
                if e.is_fatal() {
                    self.cancel.cancel();
                    // Keep draining so the batcher and producer are not blocked forever.
                    while rx.lock().await.recv().await.is_some() {}
                    return Err(e);
                }
                if let Ok(mut r) = run.report.lock() {
                    r.error.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }

    async fn write_batch(&self, run: &FolderRun, batch: Batch) -> Result<()> {
        let Batch { items, permits, .. } = batch;
        let mut delta = Counts::default();
        let mut done = Vec::new();
        let mut to_write = Vec::with_capacity(items.len());
        {
            let mut index = run.index.lock().await;
            for item in items {
                match index.as_mut().and_then(|i| i.claim_match(&item)) {
                    Some(Match::Copied(target_key)) => {
                        done.push(record(&item, ItemStatus::Done, Some(target_key)));
                        delta.already_copied += 1;
                    }
                    Some(Match::Existing(target_key)) if self.options.dedupe_existing => {
                        done.push(record(&item, ItemStatus::Done, Some(target_key)));
                        delta.skipped_existing += 1;
                    }
                    Some(Match::Existing(_)) | None => to_write.push(item),
                }
            }
        }
        // One record per item to write, in the same order; after the append each becomes the
        // item's done or failed record, so its key and fingerprint are built once per item.
        let mut pending: Vec<ItemRecord> = to_write
            .iter()
            .map(|i| record(i, ItemStatus::Pending, None))
            .collect();
        pending.append(&mut done);
        self.state.record(&run.scope, &pending).await?;
        pending.truncate(to_write.len());

        let mut resolved = Vec::new();
        let (outcomes, gate) = self
            .append_with_retry(run, &mut to_write, &mut pending, &mut resolved)
            .await;
        let mut records = Vec::with_capacity(resolved.len() + to_write.len());
        // Items that reached the target before a transient error count as copied.
        delta.copied += resolved.len() as u64;
        delta.bytes += resolved.iter().map(|r| r.size).sum::<u64>();
        records.append(&mut resolved);
        let mut issues = Vec::new();
        let mut fatal: Option<Error> = None;
        let mut normalisation = crate::normalise::Normalisation::default();
        let mut changed = Vec::new();
        match outcomes {
            Ok(outcomes) => {
                for ((item, outcome), mut r) in to_write.iter().zip(outcomes).zip(pending) {
                    match outcome {
                        Ok(target_key) => {
                            delta.copied += 1;
                            delta.bytes += item.size();
                            normalisation.add(item.normalisation);
                            if let Some(what) = item.normalisation.describe_change() {
                                changed.push(ItemIssue {
                                    key: item.meta.key.to_string(),
                                    reason: what,
                                    kind: None,
                                });
                            }
                            r.status = ItemStatus::Done;
                            r.target_key = Some(target_key);
                            records.push(r);
                        }
                        Err(e) => {
                            if e.is_fatal() {
                                fatal.get_or_insert(
                                    e.context(format!("appending {}", item.meta.key)),
                                );
                                continue;
                            }
                            delta.failed += 1;
                            r.status = ItemStatus::Failed;
                            r.reason = Some(e.to_string());
                            records.push(r);
                            issues.push(issue(&item.meta.key, &e));
                        }
                    }
                }
            }
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => {
                // Retries exhausted: the items stay pending, resolved on the next run.
                for item in &to_write {
                    delta.failed += 1;
                    issues.push(issue(&item.meta.key, &e));
                }
            }
        }
        self.state.record(&run.scope, &records).await?;
        // Only now may a resolution see these target keys: they are accounted for.
        drop(gate);
        if let Ok(mut r) = run.report.lock() {
            r.normalisation.add(normalisation);
            r.changed.append(&mut changed);
        }
        run.account(self, delta, issues, false);
        drop(permits);
        // A fatal outcome for one item (a full disk, say) stops the run; that item stays
        // pending and is resolved on the next run.
        fatal.map_or(Ok(()), Err)
    }

    /// Appends, retrying transient failures with backoff. Before each retry the items that did
    /// reach the target despite the error are found (by checksum) and taken out of `items` and
    /// of `pending` (their records, in the same order); those records, now done, go to
    /// `resolved`. An append is never repeated blindly: when what landed cannot be found out
    /// (the resolution itself keeps failing), the error is returned and the items stay pending
    /// for the next run to resolve.
    ///
    /// Appends hold the folder's gate shared until their outcome is recorded (the returned
    /// guard); a resolution takes it exclusively, so it never sees another writer's freshly
    /// appended item as unaccounted for and claims it (which would lose a byte-identical
    /// duplicate).
    async fn append_with_retry<'r>(
        &self,
        run: &'r FolderRun,
        items: &mut Vec<CanonicalItem>,
        pending: &mut Vec<ItemRecord>,
        resolved: &mut Vec<ItemRecord>,
    ) -> (
        Result<Vec<AppendOutcome>>,
        Option<tokio::sync::RwLockReadGuard<'r, ()>>,
    ) {
        let mut attempt = 0;
        loop {
            if items.is_empty() {
                return (Ok(Vec::new()), None);
            }
            let gate = run.append_gate.read().await;
            let err = match self.target.append(&run.job.target, items).await {
                Ok(outcomes) if outcomes.len() == items.len() => return (Ok(outcomes), Some(gate)),
                Ok(outcomes) => Error::fatal(format!(
                    "the target answered {} outcomes for a batch of {}",
                    outcomes.len(),
                    items.len()
                )),
                Err(e) => e,
            };
            drop(gate);
            attempt += 1;
            if !err.is_transient() || attempt >= self.options.retries {
                return (Err(err), None);
            }
            let delay = self.options.backoff * 2u32.saturating_pow(attempt - 1);
            tracing::warn!(folder = %run.job.target, attempt, error = %err, "append failed, retrying in {delay:?}");
            tokio::time::sleep(delay).await;
            let found = match self.find_landed(run, items).await {
                Ok(found) => found,
                Err(e) => return (Err(e), None),
            };
            let mut i = 0;
            while i < items.len() {
                let Some(target_key) = found.get(&items[i].meta.key) else {
                    i += 1;
                    continue;
                };
                items.remove(i);
                let mut r = pending.remove(i);
                r.status = ItemStatus::Done;
                r.target_key = Some(target_key.clone());
                resolved.push(r);
            }
        }
    }

    /// Which of `items` are in the target after an append failed: lists the target folder
    /// (leaving out what the state accounts for) and compares checksums of same-sized
    /// candidates. Retried with backoff on transient errors; holds the folder's gate.
    async fn find_landed(
        &self,
        run: &FolderRun,
        items: &[CanonicalItem],
    ) -> Result<HashMap<SourceKey, TargetKey>> {
        let _exclusive = run.append_gate.write().await;
        let uncertain: Vec<Uncertain> = items
            .iter()
            .map(|i| Uncertain {
                key: i.meta.key.clone(),
                checksum: i.checksum,
                size: i.size(),
            })
            .collect();
        let mut attempt = 0;
        loop {
            match self.resolve_settled(run, &uncertain).await {
                Ok((found, _)) => return Ok(found),
                Err(e) if e.is_transient() && attempt + 1 < self.options.retries => {
                    attempt += 1;
                    let delay = self.options.backoff * 2u32.saturating_pow(attempt - 1);
                    tracing::warn!(folder = %run.job.target, attempt, error = %e, "finding what an interrupted append stored failed, retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Finds which `uncertain` items are in the target. A server may still commit an append
    /// whose connection is gone (an IMAP MULTIAPPEND sent with LITERAL+ before a kill or a cut),
    /// so while some are missing, the target is listed again after a pause until its listing
    /// stops changing: an item is declared absent only from a settled target. Returns the items
    /// found and the last index (with those claimed).
    async fn resolve_settled(
        &self,
        run: &FolderRun,
        uncertain: &[Uncertain],
    ) -> Result<(HashMap<SourceKey, TargetKey>, TargetIndex)> {
        let accounted: HashSet<TargetKey> = self
            .state
            .records(&run.scope, Some(ItemStatus::Done))
            .await?
            .into_iter()
            .filter_map(|r| r.target_key)
            .collect();
        let mut found: HashMap<SourceKey, TargetKey> = HashMap::new();
        let mut last_listed = None;
        loop {
            let mut taken = accounted.clone();
            taken.extend(found.values().cloned());
            let mut index = TargetIndex::build(&*self.target, &run.job.target, &taken).await?;
            let listed = index.listed() + found.len();
            let missing: Vec<&Uncertain> = uncertain
                .iter()
                .filter(|u| !found.contains_key(&u.key))
                .collect();
            if !missing.is_empty() {
                let remaining: Vec<Uncertain> = missing
                    .iter()
                    .map(|u| Uncertain {
                        key: u.key.clone(),
                        checksum: u.checksum,
                        size: u.size,
                    })
                    .collect();
                found.extend(
                    index
                        .resolve(&*self.target, &run.job.target, &remaining)
                        .await?,
                );
            }
            let settled = last_listed == Some(listed);
            if found.len() == uncertain.len() || settled || self.options.settle.is_zero() {
                return Ok((found, index));
            }
            last_listed = Some(listed);
            tokio::time::sleep(self.options.settle).await;
        }
    }
}
