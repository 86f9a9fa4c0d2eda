//! Metrics: counters and latency histograms fed by the backends' calls, lock-free (atomics), so
//! one [`Metrics`] can be shared by every mailbox of a process. The library only counts; how the
//! figures are exposed (a Prometheus endpoint, a report) is the caller's choice, from
//! [`Metrics::snapshot`]. No label carries a mailbox or user name: the cardinality stays fixed.
//!
//! Two levels are counted in one place. The backend hooks count *calls* (appends, fetches,
//! their latency and errors). The run counters (copied, skipped by reason, failed by kind,
//! mailboxes by outcome, in flight, state commit latency) are fed from outside the layers — by
//! the mailbox runner from each migration's progress stream and report, and by
//! [`super::state_timing::TimedState`] — because only there is an item's fate known (skipped
//! items never reach a backend call).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{SourceHook, TargetHook};
use crate::backend::{AppendOutcome, BoxFuture, BoxStream, Source, Target};
use crate::error::{ErrorKind, Result};
use crate::folder::FolderPath;
use crate::item::{CanonicalItem, Item, ItemMeta};
use crate::report::Counts;

/// Upper bounds of the latency buckets, in seconds (Prometheus' `le`).
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, started: Instant) {
        let secs = started.elapsed().as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|le| secs <= *le) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        HistogramSnapshot {
            buckets: LATENCY_BUCKETS
                .iter()
                .zip(&self.buckets)
                .map(|(le, n)| {
                    cumulative += n.load(Ordering::Relaxed);
                    (*le, cumulative)
                })
                .collect(),
            count: self.count.load(Ordering::Relaxed),
            sum_secs: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// A histogram's figures: cumulative counts per upper bound, as Prometheus exposes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistogramSnapshot {
    /// `(le, observations at or below le)`.
    pub buckets: Vec<(f64, u64)>,
    /// Observations in all (the `+Inf` bucket).
    pub count: u64,
    /// Sum of the observations, in seconds.
    pub sum_secs: f64,
}

/// Counters of one process's backend calls.
#[derive(Debug, Default)]
pub struct Metrics {
    appended_items: AtomicU64,
    appended_bytes: AtomicU64,
    append_failed: [AtomicU64; 3],
    fetched_items: AtomicU64,
    fetched_bytes: AtomicU64,
    fetch_failed: [AtomicU64; 3],
    append_latency: Histogram,
    fetch_latency: Histogram,
    run: RunCounters,
}

/// What the runner counts (see the module header): indexes as in [`SKIP_REASONS`],
/// [`FAILURE_KINDS`] and [`OUTCOMES`].
#[derive(Debug, Default)]
struct RunCounters {
    copied_items: AtomicU64,
    copied_bytes: AtomicU64,
    skipped: [AtomicU64; 3],
    failed: [AtomicU64; 3],
    completed: [AtomicU64; 4],
    in_flight: AtomicI64,
    state_commit_latency: Histogram,
}

/// Why an item was not copied although it did not fail, in the order of
/// [`MetricsSnapshot::skipped`].
pub const SKIP_REASONS: [&str; 3] = ["already_copied", "existing", "filtered"];
/// Error kinds, in the order of the `*_failed` arrays.
pub const FAILURE_KINDS: [&str; 3] = ["transient", "item", "fatal"];
/// Mailbox outcomes, in the order of [`MetricsSnapshot::mailboxes_completed`] (a report's
/// `outcome`; a dry run is not counted).
pub const OUTCOMES: [&str; 4] = ["ok", "items_failed", "differ", "error"];

fn kind_index(kind: ErrorKind) -> usize {
    match kind {
        ErrorKind::Transient => 0,
        ErrorKind::Item => 1,
        ErrorKind::Fatal => 2,
    }
}

/// The figures at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Messages the target acknowledged.
    pub appended_items: u64,
    /// Their bytes.
    pub appended_bytes: u64,
    /// Messages (or whole batches, for a batch error) whose append failed: transient, item,
    /// fatal.
    pub append_failed: [u64; 3],
    /// Messages read from the source.
    pub fetched_items: u64,
    /// Their bytes.
    pub fetched_bytes: u64,
    /// Messages that could not be read: transient, item, fatal.
    pub fetch_failed: [u64; 3],
    /// Seconds per append call (one batch).
    pub append_latency: HistogramSnapshot,
    /// Seconds from a fetch call to its first message.
    pub fetch_latency: HistogramSnapshot,
    /// Messages copied (the reports' `copied`), all mailboxes.
    #[serde(default)]
    pub copied_items: u64,
    /// Their canonical bytes (the reports' `bytes`).
    #[serde(default)]
    pub copied_bytes: u64,
    /// Messages not copied, by [`SKIP_REASONS`].
    #[serde(default)]
    pub skipped: [u64; 3],
    /// Messages that failed, by [`FAILURE_KINDS`] (`item` where the report names no kind);
    /// counted as each mailbox ends, when the report knows their kind.
    #[serde(default)]
    pub failed: [u64; 3],
    /// Mailboxes ended, by [`OUTCOMES`].
    #[serde(default)]
    pub mailboxes_completed: [u64; 4],
    /// Mailboxes running now.
    #[serde(default)]
    pub mailboxes_in_flight: i64,
    /// Seconds per state store write (`record`, `set_checkpoint`).
    #[serde(default)]
    pub state_commit_latency: HistogramSnapshot,
}

impl Metrics {
    /// Fresh counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current figures.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |a: &[AtomicU64; 3]| a.each_ref().map(|n| n.load(Ordering::Relaxed));
        MetricsSnapshot {
            appended_items: self.appended_items.load(Ordering::Relaxed),
            appended_bytes: self.appended_bytes.load(Ordering::Relaxed),
            append_failed: load(&self.append_failed),
            fetched_items: self.fetched_items.load(Ordering::Relaxed),
            fetched_bytes: self.fetched_bytes.load(Ordering::Relaxed),
            fetch_failed: load(&self.fetch_failed),
            append_latency: self.append_latency.snapshot(),
            fetch_latency: self.fetch_latency.snapshot(),
            copied_items: self.run.copied_items.load(Ordering::Relaxed),
            copied_bytes: self.run.copied_bytes.load(Ordering::Relaxed),
            skipped: load(&self.run.skipped),
            failed: load(&self.run.failed),
            mailboxes_completed: self
                .run
                .completed
                .each_ref()
                .map(|n| n.load(Ordering::Relaxed)),
            mailboxes_in_flight: self.run.in_flight.load(Ordering::Relaxed),
            state_commit_latency: self.run.state_commit_latency.snapshot(),
        }
    }

    /// Counts copied and skipped items of a progress step or of a report (its `failed` is not
    /// read: failures are counted by kind with [`Metrics::count_failed`]).
    pub fn count_items(&self, delta: &Counts) {
        let r = &self.run;
        r.copied_items.fetch_add(delta.copied, Ordering::Relaxed);
        r.copied_bytes.fetch_add(delta.bytes, Ordering::Relaxed);
        for (n, by) in [delta.already_copied, delta.skipped_existing, delta.filtered]
            .into_iter()
            .zip(&r.skipped)
        {
            by.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts `n` failed items of one kind (`None`: unknown, counted as `item`).
    pub fn count_failed(&self, kind: Option<ErrorKind>, n: u64) {
        let i = kind_index(kind.unwrap_or(ErrorKind::Item));
        self.run.failed[i].fetch_add(n, Ordering::Relaxed);
    }

    /// A mailbox began running (the in-flight gauge goes up).
    pub fn mailbox_started(&self) {
        self.run.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A mailbox that [`Metrics::mailbox_started`] ended with `outcome` (a report's).
    pub fn mailbox_finished(&self, outcome: &str) {
        self.run.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.mailbox_completed(outcome);
    }

    /// Counts a mailbox's outcome without touching the gauge (one that failed before it
    /// ran). An outcome outside [`OUTCOMES`] (a dry run) is not counted.
    pub fn mailbox_completed(&self, outcome: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.run.completed[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records the duration of one state store write begun at `started`.
    pub fn observe_state_commit(&self, started: Instant) {
        self.run.state_commit_latency.observe(started);
    }
}

impl SourceHook for Metrics {
    fn fetch<'a>(
        &'a self,
        inner: &'a dyn Source,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        let started = Instant::now();
        let mut first = true;
        Box::pin(inner.fetch(folder, items).inspect(move |r| {
            if std::mem::take(&mut first) {
                self.fetch_latency.observe(started);
            }
            match r {
                Ok(item) => {
                    self.fetched_items.fetch_add(1, Ordering::Relaxed);
                    self.fetched_bytes
                        .fetch_add(item.body.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    self.fetch_failed[kind_index(e.kind())].fetch_add(1, Ordering::Relaxed);
                }
            }
        }))
    }
}

impl TargetHook for Metrics {
    fn append<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            let started = Instant::now();
            let outcome = inner.append(folder, batch).await;
            self.append_latency.observe(started);
            match &outcome {
                Ok(outcomes) => {
                    for (item, o) in batch.iter().zip(outcomes) {
                        match o {
                            Ok(_) => {
                                self.appended_items.fetch_add(1, Ordering::Relaxed);
                                self.appended_bytes
                                    .fetch_add(item.size(), Ordering::Relaxed);
                            }
                            Err(e) => {
                                self.append_failed[kind_index(e.kind())]
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                Err(e) => {
                    self.append_failed[kind_index(e.kind())]
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
            }
            outcome
        })
    }
}
