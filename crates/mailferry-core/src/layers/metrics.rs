//! Metrics: counters and latency histograms fed by the backends' calls, lock-free (atomics), so
//! one [`Metrics`] can be shared by every mailbox of a process. The library only counts; how the
//! figures are exposed (a Prometheus endpoint, a report) is the caller's choice, from
//! [`Metrics::snapshot`]. No label carries a mailbox or user name: the cardinality stays fixed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{SourceHook, TargetHook};
use crate::backend::{AppendOutcome, BoxFuture, BoxStream, Source, Target};
use crate::error::{ErrorKind, Result};
use crate::folder::FolderPath;
use crate::item::{CanonicalItem, Item, ItemMeta};

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
}

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
        }
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
