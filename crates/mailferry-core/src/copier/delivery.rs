//! Delivery: the writers of one folder. Each batch is recorded *pending*, appended with retry
//! and recorded *done* (or failed) with the target's keys. A transient failure is never
//! retried blindly: what landed despite the error is found first ([`super::resolution`]), so a
//! retry re-sends only what is missing, and what is re-sent after an uncertain outcome is
//! recorded as a suspect for the reconciliation of late commits.

use tokio::sync::mpsc;

use super::Inner;
use super::index::Match;
use super::pipeline::{Batch, FolderRun, issue, record};
use crate::backend::AppendOutcome;
use crate::error::{Error, Result};
use crate::item::CanonicalItem;
use crate::report::{Counts, ItemIssue};
use crate::state::{ItemRecord, ItemStatus};

impl Inner {
    pub(super) async fn write_batches(
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
}
