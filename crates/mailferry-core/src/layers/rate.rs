//! Pacing: at most so many messages and/or bytes appended per second, as providers' throttling
//! policies demand. Time slots are reserved in order, so concurrent writers share the rate
//! instead of each getting it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Hooked, TargetHook};
use crate::backend::{AppendOutcome, BoxFuture, Target};
use crate::error::Result;
use crate::folder::FolderPath;
use crate::item::CanonicalItem;

/// Paces appends. Pacing reserves time slots in order, so concurrent writers share the rate
/// instead of each getting it.
pub struct RateLimit {
    items_per_sec: Option<f64>,
    bytes_per_sec: Option<f64>,
    next_free: Mutex<Instant>,
}

/// A target whose appends are paced ([`rate_limited`] builds one).
pub type RateLimitedTarget = Hooked<RateLimit>;

/// Wraps `inner` when a limit is given; returns it unchanged otherwise.
pub fn rate_limited(
    inner: Arc<dyn Target>,
    items_per_sec: Option<f64>,
    bytes_per_sec: Option<f64>,
) -> Arc<dyn Target> {
    match RateLimit::new(items_per_sec, bytes_per_sec) {
        Some(limit) => Arc::new(Hooked::new(inner, limit)),
        None => inner,
    }
}

impl RateLimit {
    /// A pace of at most `items_per_sec` messages and `bytes_per_sec` bytes per second; `None`
    /// when neither is a positive finite rate (nothing to limit).
    pub fn new(items_per_sec: Option<f64>, bytes_per_sec: Option<f64>) -> Option<Self> {
        let valid = |r: Option<f64>| r.filter(|r| *r > 0.0 && r.is_finite());
        let (items_per_sec, bytes_per_sec) = (valid(items_per_sec), valid(bytes_per_sec));
        if items_per_sec.is_none() && bytes_per_sec.is_none() {
            return None;
        }
        Some(RateLimit {
            items_per_sec,
            bytes_per_sec,
            next_free: Mutex::new(Instant::now()),
        })
    }

    /// Reserves the time a batch costs and returns when it may start.
    fn reserve(&self, items: usize, bytes: u64) -> Instant {
        let cost = self
            .items_per_sec
            .map_or(0.0, |r| items as f64 / r)
            .max(self.bytes_per_sec.map_or(0.0, |r| bytes as f64 / r));
        let now = Instant::now();
        let mut next = self.next_free.lock().unwrap_or_else(|p| p.into_inner());
        let start = (*next).max(now);
        *next = start + Duration::from_secs_f64(cost);
        start
    }
}

impl TargetHook for RateLimit {
    fn append<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            let bytes = batch.iter().map(CanonicalItem::size).sum();
            let start = self.reserve(batch.len(), bytes);
            tokio::time::sleep_until(start.into()).await;
            inner.append(folder, batch).await
        })
    }
}
