//! Resolution: finding out what an uncertain append stored, and removing what a late commit
//! stored twice.

use std::collections::{HashMap, HashSet};

use super::Inner;
use super::index::{TargetIndex, Uncertain};
use super::pipeline::FolderRun;
use crate::error::Result;
use crate::item::{CanonicalItem, SourceKey, TargetKey};
use crate::state::{FolderScope, ItemRecord, ItemStatus};

impl Inner {
    /// Builds the target index when it is needed, resolves pending items left by a crash, and,
    /// when the source renumbered the folder, indexes what was copied under the old validity.
    pub(super) async fn prepare_index(&self, run: &FolderRun, first_contact: bool) -> Result<()> {
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

    /// Which of `items` are in the target after an append failed: lists the target folder
    /// (leaving out what the state accounts for) and compares checksums of same-sized
    /// candidates. Retried with backoff on transient errors; holds the folder's gate.
    pub(super) async fn find_landed(
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
