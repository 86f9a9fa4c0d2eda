//! Progress events: a stream an embedder subscribes to (the CLI draws bars from it). Events are
//! per batch, not per item, so a slow subscriber costs nothing; a subscriber that falls behind
//! misses events rather than slowing the copy.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::folder::FolderPath;
use crate::report::Counts;

/// Something that happened during a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// Work on a folder began; `total` is its message count as the source reported it.
    FolderStarted {
        /// The source folder.
        folder: FolderPath,
        /// Messages in it.
        total: u64,
        /// Bytes in it, where known.
        bytes: Option<u64>,
    },
    /// Items were accounted for (copied, skipped, filtered or failed).
    Items {
        /// The source folder.
        folder: FolderPath,
        /// The counts of this step only.
        delta: Counts,
    },
    /// A folder is done.
    FolderFinished {
        /// The source folder.
        folder: FolderPath,
        /// Its final counts.
        counts: Counts,
    },
}

/// The sending side, cheap to clone.
#[derive(Clone)]
pub struct ProgressSender(broadcast::Sender<Progress>);

impl ProgressSender {
    /// A new channel that keeps up to `capacity` events for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        ProgressSender(broadcast::channel(capacity).0)
    }

    /// A new subscription.
    pub fn subscribe(&self) -> broadcast::Receiver<Progress> {
        self.0.subscribe()
    }

    /// Sends an event; nobody listening is fine.
    pub fn send(&self, event: Progress) {
        let _ = self.0.send(event);
    }
}

/// What the passes other than copy (verify, sync) share with it: how many folders at once, where
/// progress goes, and the token that stops them.
#[derive(Clone)]
pub struct RunControl {
    /// Folders at once.
    pub concurrency: usize,
    /// Progress events: `FolderStarted` / `FolderFinished` per folder.
    pub progress: ProgressSender,
    /// Stops the pass before its next folder.
    pub cancel: crate::copier::CancelToken,
}

impl Default for RunControl {
    fn default() -> Self {
        RunControl {
            concurrency: 1,
            progress: ProgressSender::new(16),
            cancel: crate::copier::CancelToken::default(),
        }
    }
}

impl RunControl {
    /// Runs `run` for every job, `concurrency` at a time, results in the jobs' order; each
    /// folder's start and finish (with the counts `run` returns) go to the progress stream, and
    /// no folder starts once the run is cancelled. The first error ends the pass.
    pub async fn per_folder<'j, T, F, Fut>(
        &self,
        jobs: &'j [crate::copier::FolderJob],
        run: F,
    ) -> crate::error::Result<Vec<T>>
    where
        F: Fn(&'j crate::copier::FolderJob) -> Fut,
        Fut: std::future::Future<Output = crate::error::Result<(T, Counts)>>,
    {
        use futures_util::StreamExt;
        let run = &run;
        let results: Vec<crate::error::Result<Option<T>>> = futures_util::stream::iter(jobs)
            .map(|job| async move {
                if self.cancel.is_cancelled() {
                    return Ok(None);
                }
                self.progress.send(Progress::FolderStarted {
                    folder: job.source.path.clone(),
                    total: job.source.status.count,
                    bytes: job.source.status.size,
                });
                let (out, counts) = run(job).await?;
                self.progress.send(Progress::FolderFinished {
                    folder: job.source.path.clone(),
                    counts,
                });
                Ok(Some(out))
            })
            .buffered(self.concurrency.max(1))
            .collect()
            .await;
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            out.extend(r?);
        }
        Ok(out)
    }
}
