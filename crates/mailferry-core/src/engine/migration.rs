//! [`Migration`]: one mailbox's run (see the module docs of [`crate::engine`]).

use std::sync::Arc;

use tokio::sync::broadcast;
use tracing::Instrument;

use super::options::MigrationOptions;
use crate::backend::{Source, Target};
use crate::copier::{Budget, CancelToken, Copier, FolderJob};
use crate::error::Result;
use crate::folder::Folder;
use crate::layers::{LayerStack, Metrics};
use crate::mapping::{FolderMapper, MappingPlan};
use crate::progress::{Progress, ProgressSender};
use crate::report::Report;
use crate::state::StateStore;
use crate::sync::{FolderSync, SyncOptions, sync_changes_with};
use crate::verify::{RewriteCheck, Verification, VerifyOptions, spot_check, verify_with};

/// Where each source folder goes, and what the run will not do: the folder plan a dry run
/// prints (its `Display`) and every mode runs.
#[derive(Debug, Clone)]
pub struct FolderPlan {
    /// The mapping: jobs, exclusions, conflicts.
    pub mapping: MappingPlan,
    /// The source's folders as listed.
    pub source_folders: Vec<Folder>,
    /// The target's folders as listed.
    pub target_folders: Vec<Folder>,
}

impl FolderPlan {
    /// The folder jobs to run.
    pub fn jobs(&self) -> Vec<FolderJob> {
        self.mapping.folder_jobs()
    }

    /// Messages in the folders to run, as the source reported them.
    pub fn total_items(&self) -> u64 {
        self.jobs().iter().map(|j| j.source.status.count).sum()
    }
}

impl std::fmt::Display for FolderPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.mapping.fmt(f)
    }
}

/// What `sync` did: the copy, then the flag changes and deletions per folder.
#[derive(Debug, Clone)]
pub struct SyncReport {
    /// The copy pass.
    pub copy: Report,
    /// The change pass, per folder.
    pub folders: Vec<FolderSync>,
}

/// One mailbox's migration (see the module docs of [`crate::engine`]).
pub struct Migration {
    name: String,
    source: Arc<dyn Source>,
    target: Arc<dyn Target>,
    state: Arc<dyn StateStore>,
    options: MigrationOptions,
    layers: LayerStack,
    budget: Option<Budget>,
    progress: ProgressSender,
    cancel: CancelToken,
}

impl Migration {
    /// A migration named `name` (the key of its records in `state`) from `source` to `target`.
    /// The layers `options` ask for are put around both backends here. Fails on options that
    /// cannot be right (a bad date, a bad rule).
    pub fn new(
        name: impl Into<String>,
        source: Arc<dyn Source>,
        target: Arc<dyn Target>,
        state: Arc<dyn StateStore>,
        options: MigrationOptions,
    ) -> Result<Self> {
        Self::with_metrics(
            name,
            source,
            target,
            state,
            options,
            Arc::new(Metrics::new()),
        )
    }

    /// Like [`Migration::new`], feeding `metrics` (share one between the mailboxes of a
    /// process to expose process-wide figures).
    pub fn with_metrics(
        name: impl Into<String>,
        source: Arc<dyn Source>,
        target: Arc<dyn Target>,
        state: Arc<dyn StateStore>,
        options: MigrationOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        options.validate()?;
        let layers = LayerStack::new(options.layers.clone(), metrics);
        Ok(Migration {
            name: name.into(),
            source: layers.source(source),
            target: layers.target(target),
            state,
            options,
            layers,
            budget: None,
            progress: ProgressSender::new(4096),
            cancel: CancelToken::default(),
        })
    }

    /// Takes message memory from `budget`, shared with other migrations, instead of a budget
    /// of its own ([`super::many`] does this).
    pub fn share_budget(mut self, budget: Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Stops on `cancel` (share one token to stop many migrations at once).
    pub fn with_cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// The migration's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its options.
    pub fn options(&self) -> &MigrationOptions {
        &self.options
    }

    /// The source, with its layers.
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.source
    }

    /// The target, with its layers.
    pub fn target(&self) -> &Arc<dyn Target> {
        &self.target
    }

    /// The metrics its layers feed.
    pub fn metrics(&self) -> &Arc<Metrics> {
        self.layers.metrics()
    }

    /// Subscribes to progress events of every mode.
    pub fn progress(&self) -> broadcast::Receiver<Progress> {
        self.progress.subscribe()
    }

    /// A token that stops the run: no new items are read; batches in flight finish and are
    /// recorded.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    fn span(&self, mode: &'static str) -> tracing::Span {
        tracing::info_span!("mailbox", migration = %self.name, mode)
    }

    /// Lists both sides and maps the folders: what a dry run prints, and what every mode runs.
    /// The two listings run at once (on a no-change re-run they are most of the time spent).
    pub async fn plan(&self) -> Result<FolderPlan> {
        async {
            let (source_folders, target_folders) =
                tokio::join!(self.source.list_folders(), self.target.list_folders());
            let (source_folders, target_folders) = (
                source_folders.map_err(|e| e.context("listing the source's folders"))?,
                target_folders.map_err(|e| e.context("listing the target's folders"))?,
            );
            let caps = self.target.capabilities();
            let mut rules = self.options.mapping.rules(caps.case_insensitive_folders)?;
            rules.target_delimiter = caps.folder_delimiter;
            let mapping = FolderMapper::new(rules).plan(&source_folders, &target_folders);
            Ok(FolderPlan {
                mapping,
                source_folders,
                target_folders,
            })
        }
        .instrument(self.span("plan"))
        .await
    }

    fn copier(&self) -> Result<Copier> {
        Ok(Copier::with_budget(
            Arc::clone(&self.source),
            Arc::clone(&self.target),
            Arc::clone(&self.state),
            self.options.copy_options(&self.name)?,
            self.progress.clone(),
            self.cancel.clone(),
            self.budget.clone(),
        ))
    }

    /// Copies everything new ([`Migration::plan`] first).
    pub async fn copy(&self) -> Result<Report> {
        let plan = self.plan().await?;
        self.copy_planned(&plan).await
    }

    /// Copies the folders of a plan made earlier (to show it first, say).
    pub async fn copy_planned(&self, plan: &FolderPlan) -> Result<Report> {
        let copier = self.copier()?;
        copier.run(plan.jobs()).instrument(self.span("copy")).await
    }

    /// Copies, then carries flag changes and, if the options say so, deletions.
    pub async fn sync(&self) -> Result<SyncReport> {
        let plan = self.plan().await?;
        self.sync_planned(&plan).await
    }

    /// [`Migration::sync`] over a plan made earlier.
    pub async fn sync_planned(&self, plan: &FolderPlan) -> Result<SyncReport> {
        let copy = self.copy_planned(plan).await?;
        let options = SyncOptions {
            migration: self.name.clone(),
            flags: true,
            delete: self.options.delete,
            max_delete_percent: self.options.max_delete_percent,
            force: self.options.force,
        };
        let folders = sync_changes_with(
            &*self.source,
            &*self.target,
            &*self.state,
            &plan.jobs(),
            &options,
            self.control(),
        )
        .instrument(self.span("sync"))
        .await?;
        Ok(SyncReport { copy, folders })
    }

    /// Compares source and target.
    pub async fn verify(&self) -> Result<Verification> {
        let plan = self.plan().await?;
        self.verify_planned(&plan).await
    }

    /// [`Migration::verify`] over a plan made earlier.
    pub async fn verify_planned(&self, plan: &FolderPlan) -> Result<Verification> {
        let caps = self.target.capabilities();
        let options = VerifyOptions {
            migration: self.name.clone(),
            read_back: self.options.read_back,
            compare_flags: true,
            compare_keywords: caps.keywords,
            compare_dates: caps.internal_date,
        };
        verify_with(
            &*self.source,
            &*self.target,
            &*self.state,
            &plan.jobs(),
            &options,
            self.control(),
        )
        .instrument(self.span("verify"))
        .await
    }

    /// After a copy: reads back up to `per_folder` items of each folder `copied` wrote to, from
    /// both sides, and reports what the target stored differently ([`crate::verify::spot_check`]).
    /// `None` when the copy wrote nothing.
    pub async fn spot_check_planned(
        &self,
        plan: &FolderPlan,
        copied: &Report,
        per_folder: usize,
    ) -> Result<Option<RewriteCheck>> {
        let written: Vec<FolderJob> = plan
            .jobs()
            .into_iter()
            .filter(|j| {
                copied
                    .folders
                    .iter()
                    .any(|f| f.source == j.source.path && f.counts.copied > 0)
            })
            .collect();
        if written.is_empty() {
            return Ok(None);
        }
        spot_check(
            &*self.source,
            &*self.target,
            &*self.state,
            &written,
            &self.name,
            per_folder,
        )
        .instrument(self.span("spot check"))
        .await
        .map(Some)
    }

    fn control(&self) -> crate::progress::RunControl {
        crate::progress::RunControl {
            concurrency: self.options.jobs.max(1),
            progress: self.progress.clone(),
            cancel: self.cancel.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{Flags, FolderPath, MemoryState, MemoryStore};

    fn three_folders() -> MemoryStore {
        let store = MemoryStore::new();
        for f in ["INBOX", "Archive", "Work"] {
            for i in 0..5 {
                store.insert(
                    &FolderPath::new([f]),
                    Bytes::from(format!("Subject: {f} {i}\r\n\r\nbody\r\n")),
                    Flags::default(),
                    None,
                );
            }
        }
        store
    }

    fn migration(source: MemoryStore, target: MemoryStore) -> Migration {
        let options = MigrationOptions {
            jobs: 2,
            ..MigrationOptions::default()
        };
        Migration::new(
            "test",
            Arc::new(source),
            Arc::new(target),
            Arc::new(MemoryState::new()),
            options,
        )
        .expect("options")
    }

    #[tokio::test]
    async fn verify_and_sync_report_progress_per_folder_like_copy() {
        let target = MemoryStore::new();
        let m = migration(three_folders(), target);
        let mut events = m.progress();
        assert_eq!(m.copy().await.expect("copy").totals.copied, 15);
        let verification = m.verify().await.expect("verify");
        assert!(verification.is_match(), "{verification:#?}");
        let synced = m.sync().await.expect("sync");
        assert_eq!(synced.folders.len(), 3);
        let mut finished = 0;
        while let Ok(e) = events.try_recv() {
            if matches!(e, Progress::FolderFinished { .. }) {
                finished += 1;
            }
        }
        // copy, verify, sync's copy and sync's change pass: four passes over three folders.
        assert_eq!(finished, 12);
    }

    #[tokio::test]
    async fn a_cancelled_migration_starts_no_folder_in_any_mode() {
        let m = migration(three_folders(), MemoryStore::new());
        m.cancel_token().cancel();
        let verification = m.verify().await.expect("verify");
        assert!(verification.folders.is_empty());
        let report = m.copy().await.expect("copy");
        assert!(report.cancelled);
        assert_eq!(report.totals.copied, 0);
    }

    /// Refuses to create one folder, as a server refuses a name it cannot hold.
    struct RefusesWork;

    impl crate::TargetHook for RefusesWork {
        fn ensure_folder<'a>(
            &'a self,
            inner: &'a dyn Target,
            folder: &'a FolderPath,
            special_use: Option<crate::SpecialUse>,
        ) -> crate::BoxFuture<'a, Result<()>> {
            if folder == &FolderPath::new(["Work"]) {
                return Box::pin(async { Err(crate::Error::item("NO [CANNOT] invalid name")) });
            }
            inner.ensure_folder(folder, special_use)
        }
    }

    #[tokio::test]
    async fn every_message_of_a_folder_the_target_cannot_create_is_counted_as_failed() {
        let target = crate::Hooked::new(Arc::new(MemoryStore::new()), RefusesWork);
        let m = Migration::new(
            "test",
            Arc::new(three_folders()),
            Arc::new(target),
            Arc::new(MemoryState::new()),
            MigrationOptions::default(),
        )
        .expect("options");
        let report = m.copy().await.expect("copy");
        assert_eq!(report.totals.copied, 10);
        assert_eq!(report.totals.failed, 5, "{:?}", report.totals);
        assert_eq!(report.totals.seen, 15);
        let work = report
            .folders
            .iter()
            .find(|f| f.source == FolderPath::new(["Work"]))
            .expect("Work is reported");
        assert_eq!(work.failures.len(), 5);
        assert!(work.failures[0].reason.contains("invalid name"), "{work:?}");
        assert!(work.error.is_some());
    }
}
