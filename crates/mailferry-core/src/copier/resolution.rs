//! Resolution: finding out what an uncertain append stored, and removing what a late commit
//! stored twice.
//!
//! An append is uncertain when the run died, or the connection was cut, after the items were
//! recorded *pending* and before the target answered. Resolution lists the target and claims,
//! by checksum, an unaccounted copy for each uncertain item; an item without one is declared
//! absent and sent again. But absence is never certain: a server may still commit the dead
//! session's MULTIAPPEND seconds or hours later (a frozen process, a slow disk, a 15 MB literal
//! being fsynced). Waiting for the listing to settle ([`CopyOptions::settle`]) only makes that
//! rarer; it cannot rule it out, so correctness does not rest on it.
//!
//! Design decisions, and why:
//! - **Every item declared absent becomes a [`Suspect`]** in the state, recorded before it is
//!   sent again, with the target's key high-water at the listing that found it absent: a late
//!   commit can only get a key at or above it (IMAP UIDs only grow).
//! - **Reconciliation** (`Inner::reconcile`, [`find_surplus`]) runs for every folder with suspects at the start
//!   of every pass — even one that skips the folder as unchanged — after resolving pending items,
//!   and again at its end. A target item is a surplus copy only if all of these hold: no record
//!   of this migration accounts for it (any status, any validity); its key is at or above a
//!   suspect's high-water; its canonical checksum is that suspect's; and the suspect's item is
//!   *done* with its accounted copy present in the target. Each suspect explains at most one
//!   copy (one uncertain append commits at most once) and is consumed by it. So a message is
//!   never lost (only a second copy of a done item is removed), and byte-identical duplicates in
//!   the source are never collapsed (each is accounted by its own record).
//! - **Remove where possible, report otherwise**: with [`Capabilities::delete`] (IMAP with
//!   UIDPLUS: `UID EXPUNGE`) and ordered keys the copy is removed and counted
//!   ([`FolderReport::surplus_removed`]); otherwise it is reported per item
//!   ([`FolderReport::surplus`]) and `verify` names it. A pending item whose copy a
//!   reconciliation removed stays pending and is sent again: removal never loses it.
//! - Suspects whose append never commits stay, costing one listing of their folder per pass;
//!   no delay can prove that a dead session will not commit, so none is assumed.
//!
//! [`CopyOptions::settle`]: super::CopyOptions::settle
//! [`Suspect`]: crate::state::Suspect
//! [`Capabilities::delete`]: crate::backend::Capabilities::delete
//! [`FolderReport::surplus_removed`]: crate::report::FolderReport::surplus_removed
//! [`FolderReport::surplus`]: crate::report::FolderReport::surplus

use std::collections::{HashMap, HashSet};

use super::Inner;
use super::index::{TargetIndex, Uncertain};
use super::pipeline::FolderRun;
use super::surplus::find_surplus;
use crate::error::Result;
use crate::item::{CanonicalItem, SourceKey, TargetKey};
use crate::report::ItemIssue;
use crate::state::{FolderScope, ItemRecord, ItemStatus, Suspect};

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

    /// Finds which `uncertain` items are in the target, and records the others as suspects
    /// before anyone sends them again. A server may still commit an append whose connection is
    /// gone (an IMAP MULTIAPPEND sent with LITERAL+ before a kill or a cut); while some are
    /// missing, the target is listed again after a pause until its listing stops changing —
    /// an optimisation that saves a second copy and its removal in the common case, not what
    /// correctness rests on (see the module docs). Returns the items found and the last index
    /// (with those claimed).
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
                let suspects: Vec<Suspect> = uncertain
                    .iter()
                    .filter(|u| !found.contains_key(&u.key))
                    .map(|u| Suspect {
                        id: 0,
                        key: u.key.clone(),
                        checksum: u.checksum,
                        size: u.size,
                        high_water: index.high_water(),
                    })
                    .collect();
                if !suspects.is_empty() {
                    tracing::info!(
                        folder = %run.job.source.path,
                        absent = suspects.len(),
                        "uncertain appends not in the target: sending them again, watching for late commits"
                    );
                    self.state.add_suspects(&run.scope, &suspects).await?;
                }
                return Ok((found, index));
            }
            last_listed = Some(listed);
            tokio::time::sleep(self.options.settle).await;
        }
    }

    /// Removes (or reports) surplus copies left by late commits of this folder's suspects (see
    /// [`find_surplus`] for when a target item counts as one). Holds the folder's gate, so no
    /// writer's freshly appended, not yet recorded item is mistaken for one.
    pub(super) async fn reconcile(&self, run: &FolderRun) -> Result<()> {
        if self.state.suspects(&run.scope).await?.is_empty() {
            return Ok(());
        }
        let _exclusive = run.append_gate.write().await;
        let surplus =
            find_surplus(&*self.target, &*self.state, &run.scope, &run.job.target).await?;
        let removable = self.target.capabilities().delete;
        let (mut remove, mut consumed, mut reported) = (Vec::new(), Vec::new(), Vec::new());
        for (key, suspect) in surplus {
            if removable && suspect.high_water.is_some() {
                remove.push(key);
                consumed.push(suspect.id);
            } else {
                reported.push(ItemIssue {
                    key: suspect.key.to_string(),
                    reason: format!(
                        "target item {key} is a surplus copy of this message (an interrupted \
                         append committed after it was sent again); left in place because this \
                         target cannot tell it apart from an identical message or delete it"
                    ),
                    kind: None,
                });
            }
        }
        if !remove.is_empty() {
            self.target.delete(&run.job.target, remove.clone()).await?;
            self.state.remove_suspects(&run.scope, &consumed).await?;
            tracing::warn!(
                folder = %run.job.target,
                removed = remove.len(),
                "removed surplus copies that interrupted appends committed late"
            );
            if let Some(index) = run.index.lock().await.as_mut() {
                index.forget(&remove);
            }
        }
        if let Ok(mut r) = run.report.lock() {
            r.surplus_removed += remove.len() as u64;
            // A later pass finds the same copies again: report each once per pass.
            r.surplus
                .retain(|i| !reported.iter().any(|n| n.reason == i.reason));
            r.surplus.extend(reported);
        }
        Ok(())
    }
}
