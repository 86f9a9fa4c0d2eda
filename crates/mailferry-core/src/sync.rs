//! Carrying changes after the copy: flag changes and, only on explicit request, deletions.
//!
//! Deletion is where migrations lose mail, so it is guarded: it is never done from an empty or
//! failed source listing, and it refuses to delete more than a ceiling (a percentage of the
//! folder's copied items) unless forced. A folder whose status has not changed since the last
//! sync (a checkpoint kept under its own scope) is skipped without listing.

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::backend::{Source, Target};
use crate::copier::FolderJob;
use crate::error::{Error, Result};
use crate::flags::Flags;
use crate::item::{SourceKey, TargetKey};
use crate::progress::RunControl;
use crate::state::{FolderScope, ItemStatus, StateStore};

/// What to carry over.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The migration name used when copying.
    pub migration: String,
    /// Carry flag and keyword changes.
    pub flags: bool,
    /// Delete target items whose source item is gone.
    pub delete: bool,
    /// Refuse to delete more than this percentage of a folder's copied items (default 10).
    pub max_delete_percent: f64,
    /// Delete even above the ceiling.
    pub force: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            migration: "default".into(),
            flags: true,
            delete: false,
            max_delete_percent: 10.0,
            force: false,
        }
    }
}

/// What a sync did to one folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderSync {
    /// The source folder.
    pub source: crate::FolderPath,
    /// Target items whose flags were replaced.
    pub flags_updated: u64,
    /// Target items deleted.
    pub deleted: u64,
    /// Deletions refused, and why.
    pub refused: Option<String>,
    /// Skipped: unchanged since the last sync.
    pub unchanged: bool,
}

/// Carries flag changes and (if asked) deletions for every job's folder.
pub async fn sync_changes(
    source: &dyn Source,
    target: &dyn Target,
    state: &dyn StateStore,
    jobs: &[FolderJob],
    options: &SyncOptions,
) -> Result<Vec<FolderSync>> {
    sync_changes_with(source, target, state, jobs, options, RunControl::default()).await
}

/// [`sync_changes`] with `control.concurrency` folders at once (results in the jobs' order),
/// progress events per folder, and a stop before the next folder once `control.cancel` is set.
pub async fn sync_changes_with(
    source: &dyn Source,
    target: &dyn Target,
    state: &dyn StateStore,
    jobs: &[FolderJob],
    options: &SyncOptions,
    control: RunControl,
) -> Result<Vec<FolderSync>> {
    let caps = target.capabilities();
    if options.flags && !caps.set_flags {
        return Err(
            Error::fatal("the target cannot change flags; run copy instead of sync")
                .with_domain(crate::error::ErrorDomain::Config),
        );
    }
    if options.delete && !caps.delete {
        return Err(
            Error::fatal("the target cannot delete messages; drop --delete")
                .with_domain(crate::error::ErrorDomain::Config),
        );
    }
    control
        .per_folder(jobs, |job| async move {
            let s = sync_folder(source, target, state, job, options).await?;
            Ok((s, crate::report::Counts::default()))
        })
        .await
}

async fn sync_folder(
    source: &dyn Source,
    target: &dyn Target,
    state: &dyn StateStore,
    job: &FolderJob,
    options: &SyncOptions,
) -> Result<FolderSync> {
    let mut out = FolderSync {
        source: job.source.path.clone(),
        ..FolderSync::default()
    };
    let scope = FolderScope {
        migration: options.migration.clone(),
        folder: job.source.path.clone(),
        validity: job.source.status.validity,
    };
    let sync_scope = FolderScope {
        // Per mode: a flags-only pass says nothing about deletions.
        migration: format!(
            "{}#sync{}{}",
            options.migration,
            if options.flags { "+flags" } else { "" },
            if options.delete { "+delete" } else { "" }
        ),
        ..scope.clone()
    };
    if state.checkpoint(&sync_scope).await?.as_ref() == Some(&job.source.status) {
        out.unchanged = true;
        return Ok(out);
    }
    let mut listing = source.list_items(&job.source.path, None);
    let mut source_flags: HashMap<SourceKey, Flags> = HashMap::new();
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        source_flags.insert(meta.key, meta.flags);
    }
    drop(listing);
    let mut target_flags: HashMap<TargetKey, Flags> = HashMap::new();
    let mut existing = target.existing(&job.target);
    while let Some(item) = existing.next().await {
        let item = item?;
        target_flags.insert(item.key, item.flags);
    }
    drop(existing);
    let records = state.records(&scope, Some(ItemStatus::Done)).await?;

    if options.flags {
        let changes: Vec<(TargetKey, Flags)> = records
            .iter()
            .filter_map(|r| {
                let wanted = source_flags.get(&r.key)?;
                let key = r.target_key.as_ref()?;
                (target_flags.get(key)? != wanted).then(|| (key.clone(), wanted.clone()))
            })
            .collect();
        out.flags_updated = changes.len() as u64;
        for chunk in changes.chunks(500) {
            target.set_flags(&job.target, chunk.to_vec()).await?;
        }
    }
    if options.delete {
        let gone: Vec<TargetKey> = records
            .iter()
            .filter(|r| !source_flags.contains_key(&r.key))
            .filter_map(|r| r.target_key.clone())
            .filter(|k| target_flags.contains_key(k))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let percent = 100.0 * gone.len() as f64 / records.len().max(1) as f64;
        if gone.is_empty() {
        } else if source_flags.is_empty() {
            out.refused = Some(format!(
                "the source listed no messages in {}; refusing to delete {} target messages",
                job.source.path,
                gone.len()
            ));
        } else if percent > options.max_delete_percent && !options.force {
            out.refused = Some(format!(
                "{} of {} messages ({percent:.0}%) would be deleted from {}, above the {}% ceiling; pass --force to delete them",
                gone.len(),
                records.len(),
                job.target,
                options.max_delete_percent
            ));
        } else {
            out.deleted = gone.len() as u64;
            for chunk in gone.chunks(500) {
                target.delete(&job.target, chunk.to_vec()).await?;
            }
        }
    }
    if out.refused.is_none() {
        state
            .set_checkpoint(&sync_scope, &job.source.status)
            .await?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::{Copier, CopyOptions, FolderPath, MemoryState, MemoryStore};

    async fn setup(n: usize) -> (MemoryStore, MemoryStore, Arc<MemoryState>) {
        let source = MemoryStore::new();
        for i in 0..n {
            source.insert(
                &FolderPath::inbox(),
                Bytes::from(format!("Subject: {i}\n\n{i}\n")),
                Flags::default(),
                None,
            );
        }
        let target = MemoryStore::new();
        let state = Arc::new(MemoryState::new());
        let copier = Copier::new(
            Arc::new(source.clone()),
            Arc::new(target.clone()),
            state.clone(),
            CopyOptions::default(),
        );
        copier
            .run(copier.identity_plan().await.expect("plan"))
            .await
            .expect("copy");
        (source, target, state)
    }

    async fn jobs(source: &MemoryStore) -> Vec<FolderJob> {
        Source::list_folders(source)
            .await
            .expect("folders")
            .into_iter()
            .map(FolderJob::identity)
            .collect()
    }

    #[tokio::test]
    async fn flag_changes_are_carried_and_unchanged_folders_skipped() {
        let (source, target, state) = setup(5).await;
        let inbox = FolderPath::inbox();
        source
            .set_flags(
                &inbox,
                vec![(TargetKey("2".into()), Flags::from_imap(["\\Seen", "Work"]))],
            )
            .await
            .expect("flag");
        let r = sync_changes(
            &source,
            &target,
            &*state,
            &jobs(&source).await,
            &SyncOptions::default(),
        )
        .await
        .expect("sync");
        assert_eq!(r[0].flags_updated, 1);
        assert_eq!(
            target.messages(&inbox)[&2].flags,
            Flags::from_imap(["\\Seen", "Work"])
        );
        let r = sync_changes(
            &source,
            &target,
            &*state,
            &jobs(&source).await,
            &SyncOptions::default(),
        )
        .await
        .expect("sync");
        assert!(r[0].unchanged);
    }

    #[tokio::test]
    async fn deletions_only_when_asked_and_below_the_ceiling() {
        let (source, target, state) = setup(20).await;
        let inbox = FolderPath::inbox();
        source
            .delete(&inbox, vec![TargetKey("1".into())])
            .await
            .expect("delete");
        let plain = sync_changes(
            &source,
            &target,
            &*state,
            &jobs(&source).await,
            &SyncOptions::default(),
        )
        .await
        .expect("sync");
        assert_eq!(plain[0].deleted, 0);
        assert_eq!(target.messages(&inbox).len(), 20);
        let delete = SyncOptions {
            delete: true,
            ..SyncOptions::default()
        };
        let r = sync_changes(&source, &target, &*state, &jobs(&source).await, &delete)
            .await
            .expect("sync");
        assert_eq!(r[0].deleted, 1);
        assert_eq!(target.messages(&inbox).len(), 19);
        // Deleting 5 of 20 (25%) is above the 10% ceiling: refused unless forced.
        source
            .delete(&inbox, (2..7).map(|i| TargetKey(i.to_string())).collect())
            .await
            .expect("delete");
        let r = sync_changes(&source, &target, &*state, &jobs(&source).await, &delete)
            .await
            .expect("sync");
        assert!(
            r[0].refused
                .as_deref()
                .is_some_and(|s| s.contains("ceiling")),
            "{r:?}"
        );
        assert_eq!(target.messages(&inbox).len(), 19);
        let forced = SyncOptions {
            force: true,
            ..delete
        };
        let r = sync_changes(&source, &target, &*state, &jobs(&source).await, &forced)
            .await
            .expect("sync");
        assert_eq!(r[0].deleted, 5);
    }

    #[tokio::test]
    async fn an_empty_source_listing_never_deletes() {
        let (source, target, state) = setup(3).await;
        let inbox = FolderPath::inbox();
        source
            .delete(&inbox, (1..=3).map(|i| TargetKey(i.to_string())).collect())
            .await
            .expect("delete");
        let forced = SyncOptions {
            delete: true,
            force: true,
            ..SyncOptions::default()
        };
        let r = sync_changes(&source, &target, &*state, &jobs(&source).await, &forced)
            .await
            .expect("sync");
        assert!(
            r[0].refused
                .as_deref()
                .is_some_and(|s| s.contains("no messages")),
            "{r:?}"
        );
        assert_eq!(target.messages(&inbox).len(), 3);
    }
}
