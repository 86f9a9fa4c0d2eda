//! The copier: the bounded streaming pipeline that moves items from a [`Source`] to a
//! [`Target`], recording progress in a [`StateStore`].
//!
//! ```text
//! list keys ─▶ skip what the state says is done ─▶ fetch bodies
//!   ─▶ [budget: items + bytes] ─▶ canonicalise + checksum (rayon) ─▶ batches
//!   ─▶ N writers: record pending ─▶ append ─▶ record done ─▶ release budget
//! ```
//!
//! Memory is bounded by a budget of items and bytes in flight, shared by all folders: an item
//! holds its share from the moment it is read until the target acknowledged it. A message larger
//! than the whole budget is admitted alone. Deciding what to skip happens before bodies are
//! fetched, so a re-run downloads nothing it already copied. Items are recorded *pending* before a
//! batch is appended and *done* after; pending items left by a crash are resolved against the
//! target before anything is written again, so a crash anywhere neither loses nor duplicates.

mod folder;
mod index;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tokio::task::JoinSet;

use crate::backend::{Source, Target};
use crate::date::InternalDate;
use crate::error::{Error, Result};
use crate::folder::{Folder, FolderPath, SpecialUse};
use crate::item::ItemMeta;
use crate::progress::{Progress, ProgressSender};
use crate::report::Report;
use crate::state::StateStore;

/// Which items to copy.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    /// Only items with an internal date at or after this.
    pub since: Option<InternalDate>,
    /// Only items with an internal date before this.
    pub before: Option<InternalDate>,
    /// Only items of at most this many bytes (as the source stores them).
    pub max_size: Option<u64>,
}

impl ItemFilter {
    /// Why `meta` is left out, or `None` to copy it. Items without a date pass date filters.
    pub fn rejects(&self, meta: &ItemMeta) -> Option<String> {
        if let Some(max) = self.max_size
            && meta.size > max
        {
            return Some(format!(
                "too large: {} bytes, the limit is {max} bytes",
                meta.size
            ));
        }
        let date = meta.internal_date?;
        if let Some(since) = self.since
            && date < since
        {
            return Some(format!("dated {date}, before --since {since}"));
        }
        if let Some(before) = self.before
            && date >= before
        {
            return Some(format!("dated {date}, not before --before {before}"));
        }
        None
    }
}

/// How a copy runs.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Names the source → target pair in the state store.
    pub migration: String,
    /// Bytes of message data in flight at most (default 24 MiB).
    pub byte_budget: u64,
    /// Items in flight at most (default 4096).
    pub item_budget: usize,
    /// Items per append batch (default 128). A big folder's batches grow beyond this, up to
    /// [`batch_items_max`](Self::batch_items_max), so that it is committed in at most about
    /// [`BATCHES_PER_FOLDER`] transactions: a server that stores mail in Maildir rescans the
    /// folder on every commit, so a 200,000-message folder in batches of 128 spends most of
    /// its time in the server's rescans (measured: 1,065 msgs/s against 10,679 for 5,000).
    pub batch_items: usize,
    /// The most items a big folder's batches grow to (default 1024; equal to `batch_items`
    /// for fixed-size batches). [`batch_bytes`](Self::batch_bytes) still caps every batch.
    pub batch_items_max: usize,
    /// How long a partial batch waits for more items before it is sent (default 50 ms).
    pub batch_linger: Duration,
    /// Bytes per append batch at most (default 8 MiB).
    pub batch_bytes: u64,
    /// Folders copied at once (default 4).
    pub folder_concurrency: usize,
    /// Concurrent append batches per folder (default 2).
    pub writers_per_folder: usize,
    /// Keys looked up in the state per round trip (default 512).
    pub list_chunk: usize,
    /// Items being canonicalised at once per folder (default: 2 × CPUs).
    pub prepare_depth: usize,
    /// Which items to copy.
    pub filter: ItemFilter,
    /// On first contact with a non-empty target folder, skip items it already holds
    /// (Message-ID or header fingerprint + size), as `skipped_existing` (default true).
    pub dedupe_existing: bool,
    /// Attempts for a batch that fails transiently (default 5).
    pub retries: u32,
    /// First backoff delay, doubled per attempt (default 200 ms).
    pub backoff: Duration,
    /// Pause between listings of a target while an uncertain append may still be committing
    /// (default 1 s; zero trusts the first listing).
    pub settle: Duration,
    /// List folders even when their status is unchanged since the last pass (default false).
    pub ignore_checkpoints: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            migration: "default".into(),
            byte_budget: 24 << 20,
            item_budget: 4096,
            batch_items: 128,
            batch_items_max: 1024,
            batch_linger: Duration::from_millis(50),
            batch_bytes: 8 << 20,
            folder_concurrency: 4,
            writers_per_folder: 2,
            list_chunk: 512,
            prepare_depth: 2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            filter: ItemFilter::default(),
            dedupe_existing: true,
            retries: 5,
            backoff: Duration::from_millis(200),
            settle: Duration::from_secs(1),
            ignore_checkpoints: false,
        }
    }
}

/// About how many append transactions a big folder is committed in (see
/// [`CopyOptions::batch_items`]).
pub const BATCHES_PER_FOLDER: u64 = 256;

impl CopyOptions {
    /// Items per batch for a folder of `count` messages: `batch_items`, grown for a big folder
    /// towards `count / BATCHES_PER_FOLDER`, at most `batch_items_max`.
    pub fn batch_items_for(&self, count: u64) -> usize {
        let base = self.batch_items.max(1);
        let grown = usize::try_from(count / BATCHES_PER_FOLDER).unwrap_or(usize::MAX);
        grown.clamp(base, self.batch_items_max.max(base))
    }
}

/// One folder to copy, and where to.
#[derive(Debug, Clone)]
pub struct FolderJob {
    /// The source folder as listed (its status is the checkpoint recorded after the pass).
    pub source: Folder,
    /// The target folder.
    pub target: FolderPath,
    /// The special-use role to give the target folder when creating it.
    pub special_use: Option<SpecialUse>,
}

impl FolderJob {
    /// Copies `folder` to the same path on the target.
    pub fn identity(folder: Folder) -> Self {
        FolderJob {
            target: folder.path.clone(),
            special_use: folder.special_use,
            source: folder,
        }
    }
}

/// Stops a run: no new items are read; batches in flight are finished and recorded.
#[derive(Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// Requests the stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The budget of items and bytes in flight. One per run by default; [`Copier::with_budget`]
/// shares one across runs, so that many mailboxes in one process hold one budget between them
/// rather than one each. Cheap to clone; clones share the budget.
#[derive(Clone)]
pub struct Budget {
    items: Arc<Semaphore>,
    kib: Arc<Semaphore>,
    max_kib: u32,
    /// Producers waiting for budget right now: batches holding budget should go at once.
    waiting: Arc<AtomicUsize>,
}

/// Counts a producer as waiting for budget while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One item's share of the budget, released when dropped.
pub(crate) struct BudgetPermit {
    _item: OwnedSemaphorePermit,
    _kib: OwnedSemaphorePermit,
}

impl Budget {
    fn new(options: &CopyOptions) -> Self {
        Self::with_limits(options.byte_budget, options.item_budget)
    }

    /// A budget of at most `bytes` of message data and `items` messages in flight.
    pub fn with_limits(bytes: u64, items: usize) -> Self {
        let max_kib = (bytes / 1024).clamp(1, u64::from(u32::MAX >> 4)) as u32;
        Budget {
            items: Arc::new(Semaphore::new(items.max(1))),
            kib: Arc::new(Semaphore::new(max_kib as usize)),
            max_kib,
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn acquire(&self, bytes: usize) -> BudgetPermit {
        // A message larger than the whole budget takes all of it: it is admitted alone.
        let kib = (bytes.div_ceil(1024) as u64).clamp(1, u64::from(self.max_kib)) as u32;
        let item = match Arc::clone(&self.items).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let _waiting = Waiting::new(&self.waiting);
                Arc::clone(&self.items)
                    .acquire_owned()
                    .await
                    .expect("the budget semaphore is never closed")
            }
        };
        let kib = match Arc::clone(&self.kib).try_acquire_many_owned(kib) {
            Ok(permit) => permit,
            Err(_) => {
                let _waiting = Waiting::new(&self.waiting);
                Arc::clone(&self.kib)
                    .acquire_many_owned(kib)
                    .await
                    .expect("the budget semaphore is never closed")
            }
        };
        BudgetPermit {
            _item: item,
            _kib: kib,
        }
    }

    /// Whether a producer is waiting for budget: then a partial batch, which holds budget,
    /// must not linger for items that cannot come until budget is freed.
    fn starved(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }
}

struct Inner {
    source: Arc<dyn Source>,
    target: Arc<dyn Target>,
    state: Arc<dyn StateStore>,
    options: CopyOptions,
    progress: ProgressSender,
    cancel: CancelToken,
    budget: Option<Budget>,
}

/// Copies folders from a source to a target. Cheap to clone; clones share the run.
#[derive(Clone)]
pub struct Copier {
    inner: Arc<Inner>,
}

impl Copier {
    /// A copier between `source` and `target`, keeping its progress in `state`.
    pub fn new(
        source: Arc<dyn Source>,
        target: Arc<dyn Target>,
        state: Arc<dyn StateStore>,
        options: CopyOptions,
    ) -> Self {
        Copier {
            inner: Arc::new(Inner {
                source,
                target,
                state,
                options,
                progress: ProgressSender::new(4096),
                cancel: CancelToken::default(),
                budget: None,
            }),
        }
    }

    /// A copier that reports to `progress`, stops on `cancel` and, when given one, takes its
    /// memory from a `budget` shared with other copiers (the engine's many-mailbox runs).
    pub fn with_budget(
        source: Arc<dyn Source>,
        target: Arc<dyn Target>,
        state: Arc<dyn StateStore>,
        options: CopyOptions,
        progress: ProgressSender,
        cancel: CancelToken,
        budget: Option<Budget>,
    ) -> Self {
        Copier {
            inner: Arc::new(Inner {
                source,
                target,
                state,
                options,
                progress,
                cancel,
                budget,
            }),
        }
    }

    /// Subscribes to progress events.
    pub fn progress(&self) -> broadcast::Receiver<Progress> {
        self.inner.progress.subscribe()
    }

    /// A token that stops the run.
    pub fn cancel_token(&self) -> CancelToken {
        self.inner.cancel.clone()
    }

    /// Every selectable source folder, copied to the same path.
    pub async fn identity_plan(&self) -> Result<Vec<FolderJob>> {
        let folders = self.inner.source.list_folders().await?;
        Ok(folders
            .into_iter()
            .filter(|f| f.selectable)
            .map(FolderJob::identity)
            .collect())
    }

    /// Copies every job's folder. Returns the report; a fatal error stops the run and is
    /// returned instead (what was copied until then is recorded in the state).
    pub async fn run(&self, jobs: Vec<FolderJob>) -> Result<Report> {
        let started = Instant::now();
        let budget =
            (self.inner.budget.clone()).unwrap_or_else(|| Budget::new(&self.inner.options));
        let limit = Arc::new(Semaphore::new(self.inner.options.folder_concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for (order, job) in jobs.into_iter().enumerate() {
            let inner = Arc::clone(&self.inner);
            let budget = budget.clone();
            let limit = Arc::clone(&limit);
            tasks.spawn(async move {
                let _slot = limit.acquire_owned().await;
                (order, inner.copy_folder(job, budget).await)
            });
        }
        let mut reports = Vec::new();
        let mut fatal: Option<Error> = None;
        while let Some(joined) = tasks.join_next().await {
            let (order, result) = joined
                .map_err(|e| Error::fatal(format!("a folder task failed unexpectedly: {e}")))?;
            match result {
                Ok(report) => reports.push((order, report)),
                Err(e) => {
                    self.inner.cancel.cancel();
                    fatal.get_or_insert(e);
                }
            }
        }
        if let Some(e) = fatal {
            return Err(e);
        }
        reports.sort_by_key(|(order, _)| *order);
        Ok(Report::finish(
            reports.into_iter().map(|(_, r)| r).collect(),
            started.elapsed().as_secs_f64(),
            self.inner.cancel.is_cancelled(),
        ))
    }
}

#[cfg(test)]
mod tests;
