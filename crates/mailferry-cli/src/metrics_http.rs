//! `--metrics-addr`: the process's [`Metrics`] served as `GET /metrics` in the Prometheus
//! (OpenMetrics) text format while a run goes on.
//!
//! Design decisions, and why:
//! - **A custom `prometheus-client` [`Collector`] reads [`Metrics::snapshot`] at scrape time.**
//!   The library already counts with atomics; mirroring each figure into registered
//!   prometheus-client metrics would count everything twice and could drift. The library stays
//!   free of any exporter (it only counts); the names and units live here, in one table.
//! - **A tiny HTTP/1.1 responder on a tokio `TcpListener`** (one request per connection,
//!   `Connection: close`, 200 for `GET /metrics`, 404 otherwise) instead of hyper or axum: a
//!   scrape endpoint needs nothing more, and the dependency tree stays lean.
//! - **`--metrics-linger SECS`**: a run can end between two scrapes, and its last figures would
//!   never be seen. After the run (and its report) the endpoint stays up until one scrape has
//!   been answered with the final figures, or SECS have passed, whichever comes first; so a
//!   linger of one scrape interval costs at most that, usually less.
//! - Names follow Prometheus' conventions: `mailferry_` prefix, base units (seconds, bytes),
//!   `_total` on counters, and no mailbox or user label (the cardinality stays fixed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use mailferry::core::layers::Metrics;
use mailferry::core::layers::metrics::{FAILURE_KINDS, HistogramSnapshot, OUTCOMES, SKIP_REASONS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::Failure;
use crate::args::{LogFormat, MetricsArgs};

/// Reads the figures at scrape time.
#[derive(Debug)]
struct MetricsCollector(Arc<Metrics>);

/// A counter without labels.
fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    e.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

/// A counter with one label, one series per value (all series are always present, at 0 too).
fn labelled(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: &[&str],
    counts: &[u64],
) -> std::fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values.iter().zip(counts) {
        let labels = [(label, *value)];
        family
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(n, None)?;
    }
    Ok(())
}

fn histogram(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    h: &HistogramSnapshot,
) -> std::fmt::Result {
    // The snapshot's buckets are cumulative; the encoder wants each bucket's own count.
    let mut below = 0;
    let mut buckets: Vec<(f64, u64)> = h
        .buckets
        .iter()
        .map(|(le, cumulative)| {
            let own = cumulative.saturating_sub(below);
            below = *cumulative;
            (*le, own)
        })
        .collect();
    buckets.push((f64::INFINITY, h.count.saturating_sub(below)));
    e.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(h.sum_secs, h.count, &buckets, None)
}

impl Collector for MetricsCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let s = self.0.snapshot();
        let e = &mut e;
        counter(
            e,
            "mailferry_messages_copied",
            "Messages written to targets.",
            s.copied_items,
        )?;
        counter(
            e,
            "mailferry_bytes_copied",
            "Canonical bytes written to targets.",
            s.copied_bytes,
        )?;
        labelled(
            e,
            "mailferry_messages_skipped",
            "Messages not copied: copied by an earlier run, found in the target, or filtered.",
            "reason",
            &SKIP_REASONS,
            &s.skipped,
        )?;
        labelled(
            e,
            "mailferry_messages_failed",
            "Messages that failed, by error kind (counted as each mailbox ends).",
            "kind",
            &FAILURE_KINDS,
            &s.failed,
        )?;
        labelled(
            e,
            "mailferry_mailboxes_completed",
            "Mailboxes ended, by outcome.",
            "outcome",
            &OUTCOMES,
            &s.mailboxes_completed,
        )?;
        e.encode_descriptor(
            "mailferry_mailboxes_in_flight",
            "Mailboxes running now.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&s.mailboxes_in_flight)?;
        counter(
            e,
            "mailferry_messages_fetched",
            "Messages read from sources.",
            s.fetched_items,
        )?;
        counter(
            e,
            "mailferry_bytes_fetched",
            "Bytes read from sources.",
            s.fetched_bytes,
        )?;
        labelled(
            e,
            "mailferry_append_errors",
            "Messages whose append call failed, by error kind (retried ones included).",
            "kind",
            &FAILURE_KINDS,
            &s.append_failed,
        )?;
        labelled(
            e,
            "mailferry_fetch_errors",
            "Messages whose fetch failed, by error kind (retried ones included).",
            "kind",
            &FAILURE_KINDS,
            &s.fetch_failed,
        )?;
        histogram(
            e,
            "mailferry_append_duration",
            "Seconds per append call (one batch).",
            &s.append_latency,
        )?;
        histogram(
            e,
            "mailferry_fetch_duration",
            "Seconds from a fetch call to its first message.",
            &s.fetch_latency,
        )?;
        histogram(
            e,
            "mailferry_state_commit_duration",
            "Seconds per state store write.",
            &s.state_commit_latency,
        )
    }
}

/// The metrics as `GET /metrics` answers them.
pub fn render(metrics: &Arc<Metrics>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(MetricsCollector(Arc::clone(metrics))));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// What the server and the run share.
struct Shared {
    metrics: Arc<Metrics>,
    /// The run has ended: the next scrape sees the final figures.
    ended: AtomicBool,
    /// A scrape begun after the end was answered.
    final_scrape: Notify,
}

/// A running endpoint.
pub struct Exporter {
    shared: Arc<Shared>,
    linger: Duration,
    task: JoinHandle<()>,
}

impl Exporter {
    /// Binds `--metrics-addr` (if given) and serves until [`Exporter::finish`]; says on stderr
    /// where it listens (the port chosen, for `:0`).
    pub async fn start(args: &MetricsArgs, format: LogFormat) -> Result<Option<Self>, Failure> {
        let Some(addr) = args.metrics_addr else {
            return Ok(None);
        };
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for --metrics-addr"))
            .map_err(Failure::usage)?;
        let bound: SocketAddr = listener
            .local_addr()
            .map_err(|e| Failure::usage(anyhow!("--metrics-addr: {e}")))?;
        match format {
            LogFormat::Text => eprintln!("mailferry: metrics at http://{bound}/metrics"),
            LogFormat::Json => eprintln!(
                "{}",
                serde_json::json!({"event": "metrics_listening", "addr": bound.to_string()})
            ),
        }
        let shared = Arc::new(Shared {
            metrics: Arc::new(Metrics::new()),
            ended: AtomicBool::new(false),
            final_scrape: Notify::new(),
        });
        let server = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of file descriptors, say: try again shortly rather than spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let shared = Arc::clone(&server);
                tokio::spawn(async move {
                    // A client that sends nothing is dropped, not waited for.
                    let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, &shared))
                        .await;
                });
            }
        });
        Ok(Some(Exporter {
            shared,
            linger: Duration::from_secs(args.metrics_linger),
            task,
        }))
    }

    /// The metrics the run must feed.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// The run has ended: waits for one scrape of the final figures or `--metrics-linger`,
    /// whichever comes first, then stops serving.
    pub async fn finish(self) {
        self.shared.ended.store(true, Ordering::SeqCst);
        if !self.linger.is_zero() {
            let _ = tokio::time::timeout(self.linger, self.shared.final_scrape.notified()).await;
        }
        self.task.abort();
    }
}

/// Answers one request on `stream`.
async fn answer(mut stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut words = std::str::from_utf8(line).unwrap_or("").split_whitespace();
    let (method, target) = (words.next(), words.next());
    let path = target.map(|t| t.split('?').next().unwrap_or(t));
    let after_end = shared.ended.load(Ordering::SeqCst);
    let (status, content_type, body) = if method == Some("GET") && path == Some("/metrics") {
        match render(&shared.metrics) {
            Ok(text) => (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Err(_) => (
                "500 Internal Server Error",
                "text/plain",
                "cannot encode\n".into(),
            ),
        }
    } else {
        (
            "404 Not Found",
            "text/plain",
            "not found; try /metrics\n".into(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    if after_end && status.starts_with("200") {
        shared.final_scrape.notify_one();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions_and_histograms_are_cumulative() {
        let metrics = Arc::new(Metrics::new());
        metrics.count_items(&mailferry::core::Counts {
            copied: 3,
            bytes: 300,
            filtered: 1,
            ..Default::default()
        });
        metrics.observe_state_commit(std::time::Instant::now());
        let text = render(&metrics).expect("render");
        assert!(
            text.contains("mailferry_messages_copied_total 3\n"),
            "{text}"
        );
        assert!(
            text.contains("mailferry_bytes_copied_total 300\n"),
            "{text}"
        );
        assert!(text.contains("mailferry_messages_skipped_total{reason=\"filtered\"} 1\n"));
        assert!(text.contains("mailferry_mailboxes_in_flight 0\n"));
        assert!(text.contains("mailferry_state_commit_duration_seconds_count 1\n"));
        assert!(text.contains("mailferry_state_commit_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.ends_with("# EOF\n"));
    }
}
